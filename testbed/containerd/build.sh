#!/usr/bin/env bash
# Builds the real containerd of one release from source (the Go module proxy) for the
# testbed: containerd, ctr and containerd-shim-runc-v2, the programs of the `containerd`
# package hosts install (issue 9 item 4; testbed/containerd/README.md says why this one).
#
#   testbed/containerd/build.sh build VERSION   # e.g. 1.7.24; prints the cache directory
#
# VERSION is the upstream version of the testbed archive's containerd package
# (1.7.24-0ubuntu1~24.04.2 -> 1.7.24); its module is testbed/containerd/vVERSION/ (a
# go.mod naming the three commands as `tool` lines, with its committed go.sum).
#
# Flags follow containerd's Makefile: -trimpath, ldflags -X version.Version,
# version.Revision (empty: the module proxy serves no commit id; Ubuntu's build prints
# none either) and version.Package, "-s -w". CGO_ENABLED=0 leaves out the btrfs
# snapshotter (cgo only), which the testbed cannot use anyway.
#
# Output: $TESTBED_CONTAINERD_CACHE/VERSION/{containerd,ctr,containerd-shim-runc-v2}
# (default /var/cache/bootstrap-testbed/containerd: under /var so that hosts see it
# through their /var overlay). Reused when each binary reports VERSION and the stamp (a
# hash of this script and the module) matches. Go caches as testbed/k8s/build.sh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="${TESTBED_CONTAINERD_CACHE:-/var/cache/bootstrap-testbed/containerd}"
go_root="$(dirname "$root")/go"
export GOMODCACHE="${GOMODCACHE:-$go_root/mod}"
export GOCACHE="${GOCACHE:-$go_root/build}"
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0
command -v go >/dev/null || PATH="$PATH:/usr/local/go/bin"

cmds=(containerd ctr containerd-shim-runc-v2)
pkg=github.com/containerd/containerd

die() { echo "containerd/build.sh: $*" >&2; exit 1; }
log() { echo "containerd/build.sh: $*" >&2; }

# What BINARY says its version is: "containerd github.com/containerd/containerd 1.7.24 ",
# "ctr github.com/containerd/containerd 1.7.24", the shim's "  Version:  1.7.24".
reported_version() {
  [ -x "$1" ] || return 0
  case "$(basename "$1")" in
    containerd-shim-runc-v2) "$1" -v 2>/dev/null | sed -n 's/^\s*Version:\s*\(\S*\)$/\1/p' ;;
    *) "$1" --version 2>/dev/null | sed -n 's/^\S* \S* \(\S*\)\s*$/\1/p' ;;
  esac || true
}

cmd_build() {
  local ver="$1" dir out stamp
  [[ "$ver" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "version must look like 1.7.24, got '$ver'"
  dir="$here/v$ver"
  [ -f "$dir/go.mod" ] || die "no $dir/go.mod (a module requiring $pkg v$ver, see README.md)"
  command -v go >/dev/null || die "building containerd $ver needs Go (https://go.dev/dl/) and the Go module proxy"
  out="$root/$ver"
  mkdir -p "$out" "$GOMODCACHE" "$GOCACHE"
  exec 9>"$root/$ver.lock"
  flock 9
  stamp="$(cat "$here/build.sh" "$dir/go.mod" "$dir/go.sum" | sha256sum | cut -c1-16)"
  local fresh=1
  for c in "${cmds[@]}"; do
    [ "$(reported_version "$out/$c")" = "$ver" ] || fresh=
  done
  if [ -n "$fresh" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
    log "$ver: cached in $out"
    echo "$out"
    return
  fi
  log "$ver: building ${cmds[*]} (GOMODCACHE=$GOMODCACHE GOCACHE=$GOCACHE)"
  rm -f "$out/.stamp"
  local tmp="$out/.tmp" x=""
  rm -rf "$tmp" && mkdir -p "$tmp"
  x="-X '$pkg/version.Version=$ver' -X '$pkg/version.Revision=' -X '$pkg/version.Package=$pkg'"
  (cd "$dir" && nice -n 10 go build -trimpath -ldflags "$x -s -w" -o "$tmp/" \
    "${cmds[@]/#/$pkg/cmd/}")
  for c in "${cmds[@]}"; do
    mv -f "$tmp/$c" "$out/$c"
    local got
    got="$(reported_version "$out/$c")"
    [ "$got" = "$ver" ] || die "$out/$c reports version '$got', expected '$ver'"
  done
  rmdir "$tmp"
  echo "$stamp" >"$out/.stamp"
  log "$ver: built in $out"
  echo "$out"
}

case "${1:-}" in
  build) [ $# -eq 2 ] || die "usage: $0 build VERSION"; cmd_build "$2" ;;
  *) die "usage: $0 build VERSION" ;;
esac
