#!/usr/bin/env bash
# Benchmark: a converged re-run of `bootstrap up` on HOSTS hosts reached directly vs
# through one bastion (ssh.proxyJump), on the same testbed in the same run.
#
#   sudo bench/bastion.sh [HOSTS] [RUNS]      (defaults: 100 hosts, 3 runs each way)
#
# The testbed has HOSTS+1 hosts at time scale 0 (the tool's own overhead): the last one
# is the bastion, the others the cluster (converged once first). Then RUNS converged
# re-runs each way, alternating, so load changes hit both alike. Every host is reachable
# both ways; the bastion run connects to it once and carries every host's SSH session on
# channels of that connection. Prints one line per run: how, wall seconds, peak RSS.
set -euo pipefail
cluster=${1:-100}
runs=${2:-3}
hosts=$((cluster + 1))
scale=0
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

bastion=$(jq -r '.[-1].address' "$dir/hosts.json")
jq -r --arg d "$dir" --argjson n "$cluster" '
  "cluster: {name: bench}",
  "ssh: {user: root, identityFile: \($d)/id_ed25519, knownHostsFile: \($d)/known_hosts}",
  "hosts:",
  (to_entries[:$n][] | if .key == 0
    then "  - {name: \(.value.name), address: \(.value.address), role: control-plane}"
    else "  - {name: \(.value.name), address: \(.value.address), role: worker}" end)
' "$dir/hosts.json" >"$dir/direct.yaml"
sed "s|^ssh: {|ssh: {proxyJump: \"root@$bastion\", |" "$dir/direct.yaml" >"$dir/bastion.yaml"

up() {
  /usr/bin/time -f "%e %M" -o "$dir/time" \
    env CI=1 "$bin/bootstrap" up "$dir/$1.yaml" --log-dir "$dir/logs" >/dev/null 2>"$dir/$1.log" \
    || { echo "bootstrap up failed ($1):"; tail -20 "$dir/$1.log"; exit 1; }
}

up direct # converge first
for i in $(seq "$runs"); do
  for how in direct bastion; do
    up "$how"
    read -r wall rss <"$dir/time"
    printf 'hosts=%s run=converged via=%s #%s wall=%ss peak_rss=%sKiB\n' \
      "$cluster" "$how" "$i" "$wall" "$rss"
  done
done
# The bastion's sshd log: one login per bastion run, not one per host.
logins=$(grep -c "Accepted publickey" "$dir/hosts/$(jq -r '.[-1].name' "$dir/hosts.json")/init.log" || true)
echo "bastion sshd logins over the $runs bastion runs: $logins"
