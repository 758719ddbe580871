//! Real holders of apt's and dpkg's locks, as apt-daily and unattended-upgrades are on
//! a fresh cloud VM (`Fault::AptDaily`, `Fault::DpkgLock`): a process with the holder's
//! name takes real fcntl locks, so the machine's apt and dpkg see them as they would.

use std::fs::File;
use std::os::unix::io::AsRawFd;

/// A held lock; released when dropped (the fd closes).
struct Guard(#[allow(dead_code)] File);

/// Takes the fcntl write lock on `path` as apt and dpkg do (F_SETLK, no wait).
fn try_lock(path: &str) -> std::io::Result<Option<Guard>> {
    if let Some(d) = std::path::Path::new(path).parent() {
        let _ = std::fs::create_dir_all(d);
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as _;
    fl.l_whence = libc::SEEK_SET as _;
    let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &fl) };
    Ok((r == 0).then_some(Guard(f)))
}

/// `tb-sim hold-locks NAME SECONDS PATH...`: a process named NAME (its `comm`, which apt
/// and dpkg print as the holder) takes real fcntl write locks on every PATH, as
/// apt-daily (`apt-get update`: the lists and dpkg frontend locks) or unattended-upgrades
/// (dpkg's frontend and database locks) do, and keeps them for SECONDS. Returns once the
/// locks are held; the holder lives on in the background (the host's PID 1 reaps it).
/// For hosts with the real package tools, where no stand-in can pretend.
pub fn hold_locks(args: &[String]) -> i32 {
    // `--while FILE`: let go early once FILE is gone (`Testbed::clear_fault`).
    let (until_gone, args) = super::holder::while_flag(args);
    let (Some(name), Some(secs), paths) = (
        args.first(),
        args.get(1).and_then(|s| s.parse::<f64>().ok()),
        args.get(2..).unwrap_or_default(),
    ) else {
        eprintln!("usage: tb-sim hold-locks [--while FILE] NAME SECONDS PATH...");
        return 2;
    };
    super::holder::hold(
        "hold-locks",
        name,
        until_gone.as_deref(),
        secs,
        &paths.join(", "),
        || {
            paths
                .iter()
                .map(|p| try_lock(p).ok().flatten())
                .collect::<Option<Vec<Guard>>>()
        },
    )
}
