# Shared by the bench/*.sh scripts (sourced): builds the release binaries, makes a
# testbed of $hosts hosts at time scale $scale in a temporary directory ($dir) that is
# torn down on exit, and sets $bin.
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --workspace --quiet --manifest-path "$root/Cargo.toml"
bin=$root/target/release
dir=$(mktemp -d /tmp/bootstrap-bench.XXXXXX)
trap '"$bin/testbed" down --dir "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
"$bin/testbed" up --hosts "$hosts" --dir "$dir" --time-scale "$scale" >/dev/null
