#!/usr/bin/env bash
# Where CI's CPU goes: runs `CI=true scripts/test` (what .ci/run runs) under the kernel's
# process accounting (acct(2), `accton` from Debian's acct package) and prints the CPU
# seconds (user + system) of every program that exited during the run, most first, with
# how many processes of it ran.
#
#   sudo bench/ci-cpu.sh [TOP]          (default: the top 25 programs)
#
# Accounting records a process when it exits, under the name of its last thread (15
# characters): "ctrl-c" is rustc's and cargo's, and long-running daemons count once the
# testbed that started them is torn down. The record file stays in $TMPDIR for `sa` or
# `lastcomm -f FILE --pid`. Needs root. Stops accounting when it ends, pass or fail.
set -euo pipefail
top=${1:-25}
root=$(cd "$(dirname "$0")/.." && pwd)
command -v accton >/dev/null || { echo "needs accton (apt-get install acct)" >&2; exit 2; }
record=$(mktemp "${TMPDIR:-/tmp}/ci-cpu.XXXXXX")
accton "$record" >/dev/null
trap 'accton off >/dev/null' EXIT
start=$(date +%s)
rc=0
(cd "$root" && CI=true scripts/test) || rc=$?
accton off >/dev/null
trap - EXIT
echo "scripts/test exit $rc after $(( $(date +%s) - start )) s; accounting record: $record"
# lastcomm: COMMAND [FLAGS] USER TTY CPU secs DATE...; the CPU figure precedes "secs".
lastcomm -f "$record" | awk '
  { for (i = 1; i <= NF; i++) if ($i == "secs") cpu = $(i - 1);
    t[$1] += cpu; n[$1]++; total += cpu }
  END { printf "%9.1f CPU-s in %d processes\n", total, NR;
        for (c in t) printf "%9.1f %5.1f%% %7d  %s\n", t[c], 100 * t[c] / total, n[c], c }
' | { read -r head; echo "$head"; sort -rn | head -n "$top"; }
exit "$rc"
