#!/usr/bin/env bash
# Benchmark: `bootstrap up` from fresh hosts, then a converged re-run, on a local testbed.
#
#   sudo bench/up.sh [HOSTS] [TIME_SCALE]      (defaults: 3 hosts, time scale 1)
#   sudo BENCH_REAL_K8S=v1.35.4 bench/up.sh ...  (the REAL control plane: bench/lib.sh)
#
# With TIME_SCALE 1 every stand-in takes its documented real-world duration (kubeadm init
# ~60 s, join ~15 s ...) and the testbed's repository sends each package after its install
# duration (docker.io 18 s ...), so the first run's wall time can be compared with the
# critical path of the procedure; with 0 it measures the tool's own overhead (and the real
# apt's and dpkg's). Prints one line per run: hosts, scale, run, wall seconds, peak RSS,
# and every finished phase's time (e.g. runtime: docker.io; packages: kubelet, kubeadm,
# kubectl).
set -euo pipefail
hosts=${1:-3}
scale=${2:-1}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
write_article_inventory

for run in first converged; do
  ok=1
  /usr/bin/time -f "%e %M" -o "$dir/time" \
    env CI=1 "$bin/bootstrap" up "$dir/inventory.yaml" --log-dir "$dir/logs" >/dev/null 2>"$dir/$run.log" \
    || ok=0
  phases=$(sed -n 's/.*\[\([^]]*\)\] done in \([^:]*\):.*/\1=\2/p' "$dir/$run.log" | tr '\n' ' ')
  if [ "$ok" = 0 ]; then
    # The phases that finished still say how long they took.
    echo "bootstrap up failed ($run run; phases done: $phases):"
    tail -20 "$dir/$run.log"
    exit 1
  fi
  read -r wall rss <"$dir/time"
  printf 'hosts=%s scale=%s run=%s wall=%ss peak_rss=%sKiB %s\n' "$hosts" "$scale" "$run" "$wall" "$rss" "$phases"
done
