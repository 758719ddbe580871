#!/usr/bin/env bash
# Benchmark: a rolling upgrade with `bootstrap up`, on a local testbed: build a cluster at
# FROM, raise the inventory to TO, run up (the upgrade), then a converged re-run.
#
#   sudo bench/upgrade.sh [HOSTS] [TIME_SCALE] [FROM] [TO] [UP_ARGS...]
#   (defaults: 4 hosts = 1 control plane + 3 workers, time scale 1, 1.33.4 -> 1.34.2)
#
# With TIME_SCALE 1 the stand-ins take their documented durations (kubeadm upgrade apply
# ~120 s, upgrade node ~10 s per worker, package installs, kubelet restarts): the wall
# time can be set against the procedure's critical path. Prints one line per run.
set -euo pipefail
hosts=${1:-4}
scale=${2:-1}
from=${3:-1.33.4}
to=${4:-1.34.2}
shift $(($# < 4 ? $# : 4))
extra=("$@")
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
inventory() {
  jq -r --arg d "$dir" --arg v "$1" '
    "cluster: {name: bench, kubernetesVersion: \($v)}",
    "ssh: {user: root, identityFile: \($d)/id_ed25519, knownHostsFile: \($d)/known_hosts}",
    "hosts:",
    (to_entries[] | if .key == 0
      then "  - {name: \(.value.name), address: \(.value.address), role: control-plane}"
      else "  - {name: \(.value.name), address: \(.value.address), role: worker}" end)
  ' "$dir/hosts.json" >"$dir/inventory.yaml"
}

for run in "build $from" "upgrade $to" "converged $to"; do
  read -r name version <<<"$run"
  inventory "$version"
  /usr/bin/time -f "%e %M" -o "$dir/time" \
    env CI=1 "$bin/bootstrap" up "$dir/inventory.yaml" --log-dir "$dir/logs" ${extra[@]+"${extra[@]}"} \
    >/dev/null 2>"$dir/$name.log" \
    || { echo "bootstrap up failed ($name run):"; tail -20 "$dir/$name.log"; exit 1; }
  read -r wall rss <"$dir/time"
  printf 'hosts=%s scale=%s run=%s version=%s wall=%ss peak_rss=%sKiB\n' "$hosts" "$scale" "$name" "$version" "$wall" "$rss"
done
