# bootstrap_dpkg_wait CMD...: runs CMD and, while it fails because another process holds
# dpkg's lock or apt's lists lock, runs it again, for up to the inventory's
# cluster.packageLockWait ({{ cluster.package_lock_wait }} s; the same number is every apt-get's
# -o DPkg::Lock::Timeout in the playbooks, lowered for a retry to what is left of it).
#
# `apt-get update` takes /var/lib/apt/lists/lock without waiting, whatever
# DPkg::Lock::Timeout says (that covers dpkg's frontend lock only): on a cloud VM's first
# boot apt-daily holds it and update fails at once ("E: Could not get lock
# /var/lib/apt/lists/lock. It is held by process N (apt-get)", exit 100). Likewise
# `apt-get install`/`purge` take /var/cache/apt/archives/lock without waiting
# (apt-private/private-install.cc: "Unable to lock the download directory"), which
# apt-daily's download phase (unattended-upgrade --download-only) holds: the steps that
# install or remove packages go through this wrapper too.
#
# apt-get waits for the lock itself (-o DPkg::Lock::Timeout), but dpkg has no such
# option and neither does apt-mark: `apt-mark hold` pipes into `dpkg --set-selections`,
# and both dpkg commands fail at once ("dpkg: error: dpkg frontend lock was locked by
# another process with pid N", exit 2) while unattended-upgrades runs on a fresh Ubuntu
# host, often for minutes. Retrying the command itself is what apt's timeout and
# Ansible's apt lock_timeout do: dpkg decides whether the lock is free, so nothing races
# or guesses (fuser/lsof only see who has the file open, and `flock` is not the fcntl
# lock dpkg takes). A failed attempt changed nothing: dpkg takes the lock before anything
# else. Any other failure is reported at once.
#
# A held lock is recognised by the ERROR lines only: apt's "E: Could not get lock FILE"
# (apt-pkg/contrib/fileutl.cc GetLock, printed with "E: " by DumpErrors) and dpkg's "...
# locked by another process". While apt-get waits for dpkg's frontend lock
# (DPkg::Lock::Timeout) it prints "Waiting for cache lock: Could not get lock ..." as
# progress (apt-pkg/deb/debsystem.cc GetLockMaybeWait, throttled by OpTextProgress):
# an install that waited, got the lock and then failed for another reason is reported
# with its own error, not retried as a held lock; one that waited the whole timeout
# ends with "E: Unable to acquire the dpkg frontend lock (...)", reported as given up.
#
# The command runs with LC_ALL=C: apt and dpkg translate their lock messages, and the
# retry decision below reads the English ones (as Ansible's apt module runs apt in the C
# locale for the same reason).
#
# Safe under `set -e` (the steps that include it use it): a failing command is tested in
# an `if`, where errexit does not apply, so a held lock is retried instead of ending the
# shell at `_bs_out=$(...)`.
bootstrap_dpkg_wait() {
  _bs_start=$(date +%s)
  _bs_noted=-1
  while :; do
    if _bs_out=$(LC_ALL=C "$@" 2>&1); then _bs_rc=0; else _bs_rc=$?; fi
    case "$_bs_rc:$_bs_out" in
      0:*)
        [ -z "$_bs_out" ] || printf '%s\n' "$_bs_out"
        return 0
        ;;
      *"locked by another process"* | *"E: Could not get lock"*) ;;
      *"E: Unable to acquire the dpkg frontend lock"*)
        # apt-get itself waited DPkg::Lock::Timeout for dpkg's lock ("Waiting for cache
        # lock: ..." above) and gave up: the wait is spent, so not retried.
        printf '%s\n' "$_bs_out" >&2
        echo "gave up: another process held dpkg's lock for $(($(date +%s) - _bs_start))s (apt-get's DPkg::Lock::Timeout ran out)" >&2
        return "$_bs_rc"
        ;;
      *)
        printf '%s\n' "$_bs_out" >&2
        return "$_bs_rc"
        ;;
    esac
    _bs_waited=$(($(date +%s) - _bs_start))
    _bs_held=$(printf '%s\n' "$_bs_out" | grep -m1 -e 'locked by another process' -e '^E: Could not get lock') || :
    case $_bs_held in
      */var/lib/apt/lists/*) _bs_what="apt's lists lock" ;;
      */var/cache/apt/archives/*) _bs_what="apt's archives lock" ;;
      *) _bs_what="dpkg's lock" ;;
    esac
    if [ "$_bs_waited" -ge {{ cluster.package_lock_wait }} ]; then
      printf '%s\n' "$_bs_out" >&2
      echo "gave up: another process held $_bs_what for ${_bs_waited}s" >&2
      return "$_bs_rc"
    fi
    if [ $((_bs_waited / 30)) -ne "$_bs_noted" ]; then
      _bs_noted=$((_bs_waited / 30))
      echo "waiting for $_bs_what (${_bs_waited}s): $_bs_held" >&2
    fi
    sleep 2
    # What is left of the wait is all the next try's apt-get may wait for dpkg's lock
    # itself (its -o DPkg::Lock::Timeout=N), so a lists or archives lock held first does
    # not add a whole DPkg::Lock::Timeout on top.
    _bs_left=$(({{ cluster.package_lock_wait }} - ($(date +%s) - _bs_start)))
    [ "$_bs_left" -ge 0 ] || _bs_left=0
    for _bs_a in "$@"; do
      shift
      case $_bs_a in DPkg::Lock::Timeout=*) _bs_a=DPkg::Lock::Timeout=$_bs_left ;; esac
      set -- "$@" "$_bs_a"
    done
  done
}

# bootstrap_apt_update: `apt-get update` through bootstrap_dpkg_wait, failing when apt
# could not fetch an index. apt counts a network failure (a mirror that times out after
# Acquire::http::Timeout, refuses or resets: "W: Failed to fetch URL  Connection failed
# [IP: ...]", then "W: Some index files failed to download. They have been ignored, or old
# ones used instead.") as a warning and exits 0 (apt-pkg/update.cc AcquireUpdate: a
# transient network error is a warning, other failures an error), keeping the old lists
# or none; the install after it would then fail with a misleading "Unable to locate
# package", or install what the stale lists name. So the step fails here, with apt's
# own lines, and a later run retries it.
bootstrap_apt_update() {
  if _bs_upd=$(bootstrap_dpkg_wait apt-get -o DPkg::Lock::Timeout={{ cluster.package_lock_wait }} update); then :; else return $?; fi
  case $_bs_upd in
    *"W: Failed to fetch "*)
      printf '%s\n' "$_bs_upd" >&2
      echo "apt-get update could not fetch every package index (the W: lines above); the step fails rather than install from old or missing lists" >&2
      return 100
      ;;
  esac
  [ -z "$_bs_upd" ] || printf '%s\n' "$_bs_upd"
}
