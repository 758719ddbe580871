#!/usr/bin/env bash
# Builds tb-cri, the CRI client of the testbed's kubelet stand-in (main.go: RunPodSandbox,
# StopPodSandbox, ... against the REAL containerd; testbed/STANDINS-kubelet-real.md, "Pod
# sandboxes"), from this module (k8s.io/cri-api and gRPC from the Go module proxy, pinned
# by the committed go.sum).
#
#   testbed/cri/build.sh build VERSION   # VERSION: k8s.io/cri-api's, as go.mod requires
#                                        # it (0.35.4); prints the cache directory
#
# Output: $TESTBED_CRI_CACHE/VERSION-STAMP/tb-cri (default /var/cache/bootstrap-testbed/cri:
# under /var so that hosts see it through their /var overlay), STAMP a hash of this
# script, go.mod, go.sum and main.go: a change of the sources builds a new directory, and
# the binary a running testbed uses (or a worktree of other sources) is never replaced. Go caches as
# testbed/k8s/build.sh. About 45 s of CPU with warm module caches.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="${TESTBED_CRI_CACHE:-/var/cache/bootstrap-testbed/cri}"
go_root="$(dirname "$root")/go"
export GOMODCACHE="${GOMODCACHE:-$go_root/mod}"
export GOCACHE="${GOCACHE:-$go_root/build}"
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0
command -v go >/dev/null || PATH="$PATH:/usr/local/go/bin"

die() { echo "cri/build.sh: $*" >&2; exit 1; }
log() { echo "cri/build.sh: $*" >&2; }

cmd_build() {
  local ver="$1" out stamp
  grep -q "k8s.io/cri-api v$ver\$" "$here/go.mod" || die "go.mod does not require k8s.io/cri-api v$ver"
  command -v go >/dev/null || die "building tb-cri needs Go (https://go.dev/dl/) and the Go module proxy"
  stamp="$(cat "$here/build.sh" "$here/go.mod" "$here/go.sum" "$here/main.go" | sha256sum | cut -c1-16)"
  out="$root/$ver-$stamp"
  mkdir -p "$out" "$GOMODCACHE" "$GOCACHE"
  exec 9>"$root/$ver.lock"
  flock 9
  if [ -x "$out/tb-cri" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
    log "$ver: cached in $out"
    echo "$out"
    return
  fi
  log "$ver: building tb-cri (GOMODCACHE=$GOMODCACHE GOCACHE=$GOCACHE)"
  rm -f "$out/.stamp"
  (cd "$here" && nice -n 10 go build -trimpath -ldflags "-s -w" -o "$out/tb-cri.tmp" .)
  mv -f "$out/tb-cri.tmp" "$out/tb-cri"
  echo "$stamp" >"$out/.stamp"
  log "$ver: built in $out"
  echo "$out"
}

case "${1:-}" in
  build) [ $# -eq 2 ] || die "usage: $0 build VERSION"; cmd_build "$2" ;;
  *) die "usage: $0 build VERSION" ;;
esac
