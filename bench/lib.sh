# Shared by the bench/*.sh scripts (sourced): builds the release binaries, makes a
# testbed of $hosts hosts at time scale $scale in a temporary directory ($dir) that is
# torn down on exit, and sets $bin.
root=$(cd "$(dirname "$0")/.." && pwd)
# BENCH_PROFILE=debug measures the debug build instead (say so next to the figures).
profile=${BENCH_PROFILE:-release}
if [ "$profile" = release ]; then
  cargo build --release --workspace --quiet --manifest-path "$root/Cargo.toml"
else
  cargo build --workspace --quiet --manifest-path "$root/Cargo.toml"
fi
bin=${CARGO_TARGET_DIR:-$root/target}/$( [ "$profile" = release ] && echo release || echo debug)
dir=$(mktemp -d /tmp/bootstrap-bench.XXXXXX)
trap '"$bin/testbed" down --dir "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
# BENCH_REAL_K8S=RELEASE: the REAL control plane of that release (testbed up
# --real-kubernetes; the first call builds it, minutes) and the inventory at its version;
# default v1.35.4, testbed::k8s::DEFAULT_RELEASE. The time scale only applies to the
# stand-ins (packages' downloads, the kubelet's timings).
real_k8s=${BENCH_REAL_K8S:-v1.35.4}
"$bin/testbed" up --hosts "$hosts" --dir "$dir" --time-scale "$scale" \
  ${real_k8s:+--real-kubernetes "$real_k8s"} >/dev/null
# Writes $dir/inventory.yaml in the article's layout: the first host is the control plane
# (type=mysql, no taint), the others workers (type=wordpress).
write_article_inventory() {
  jq -r --arg d "$dir" --arg v "${real_k8s#v}" '
    "cluster: {name: bench\(if $v == "" then "" else ", kubernetesVersion: \($v)" end)}",
    "ssh: {user: root, identityFile: \($d)/id_ed25519, knownHostsFile: \($d)/known_hosts}",
    "hosts:",
    (to_entries[] | if .key == 0
      then "  - {name: \(.value.name), address: \(.value.address), role: control-plane, labels: {type: mysql}, taints: []}"
      else "  - {name: \(.value.name), address: \(.value.address), role: worker, labels: {type: wordpress}}" end)
  ' "$dir/hosts.json" >"$dir/inventory.yaml"
}
