//! apt's and dpkg's locks: a real fcntl write lock on the lock file (so two concurrent
//! apt-gets on one host collide like apt), plus the injected `dpkg-lock` fault that
//! plays unattended-upgrades holding the frontend lock on first boot.

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::time::{Duration, Instant};

use testbed::layout::Fault;

use crate::common;

pub const FRONTEND: &str = "/var/lib/dpkg/lock-frontend";
pub const LISTS: &str = "/var/lib/apt/lists/lock";
/// dpkg's database lock, taken by dpkg itself after the frontend lock.
pub const DB: &str = "/var/lib/dpkg/lock";

/// A held lock; released when dropped (the fd closes).
pub struct Guard(#[allow(dead_code)] File);

/// Who holds a lock: pid and command name.
pub type Holder = (i32, String);

fn try_lock(path: &str) -> Result<Result<Guard, Holder>, std::io::Error> {
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
    if r == 0 {
        return Ok(Ok(Guard(f)));
    }
    let mut q: libc::flock = unsafe { std::mem::zeroed() };
    q.l_type = libc::F_WRLCK as _;
    q.l_whence = libc::SEEK_SET as _;
    unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETLK, &mut q) };
    let pid = q.l_pid;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "apt-get".into());
    Ok(Err((pid, comm)))
}

/// The holder of the simulated unattended-upgrades lock, while the fault is active.
fn fault_holder() -> Option<Holder> {
    match common::fault("dpkg-lock") {
        Some(Fault::DpkgLock { until }) if until > common::now() => {
            Some((1234, "unattended-upgr".into()))
        }
        _ => None,
    }
}

/// Takes `path` like apt: at once, or waiting up to `timeout` seconds
/// (`-o DPkg::Lock::Timeout=N`), printing apt's "Waiting for cache lock" lines. On failure
/// returns the holder.
pub fn acquire(path: &str, timeout: f64) -> Result<Guard, LockError> {
    let start = Instant::now();
    let mut last_note = -1i64;
    loop {
        let holder = match fault_holder() {
            Some(h) if path == FRONTEND || path == DB => Err(h),
            _ => match try_lock(path) {
                Ok(r) => r,
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    return Err(LockError::Denied)
                }
                Err(_) => return Err(LockError::Denied),
            },
        };
        match holder {
            Ok(g) => return Ok(g),
            Err(h) => {
                let waited = start.elapsed().as_secs_f64();
                if waited >= timeout {
                    return Err(LockError::Held(h));
                }
                let secs = waited as i64;
                if secs != last_note {
                    last_note = secs;
                    eprintln!(
                        "Waiting for cache lock: Could not get lock {path}. It is held by process {} ({})... {}s",
                        h.0, h.1, secs
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

pub enum LockError {
    Denied,
    Held(Holder),
}

/// apt's messages for a failed frontend/lists lock; apt exits 100 after them.
pub fn report(path: &str, e: &LockError) {
    let what = if path == LISTS {
        "E: Unable to lock directory /var/lib/apt/lists/".to_string()
    } else {
        format!(
            "E: Unable to acquire the dpkg frontend lock ({path}), is another process using it?"
        )
    };
    match e {
        LockError::Denied => {
            eprintln!("E: Could not open lock file {path} - open (13: Permission denied)");
            if path == LISTS {
                eprintln!("{what}");
            } else {
                eprintln!("E: Unable to acquire the dpkg frontend lock ({path}), are you root?");
            }
        }
        LockError::Held((pid, comm)) => {
            eprintln!("E: Could not get lock {path}. It is held by process {pid} ({comm})");
            eprintln!("N: Be aware that removing the lock file is not a solution and may break your system.");
            eprintln!("{what}");
        }
    }
}

/// The note dpkg prints after a lock failure: reworded (and the FAQ link anchored) in
/// dpkg 1.21.2, so Ubuntu 22.04 (dpkg 1.21.1) still has the old text.
pub fn dpkg_lock_note(os: &str) -> &'static str {
    if os == "ubuntu-22.04" {
        "Note: removing the lock file is always wrong, and can end up damaging the\nlocked area and the entire system. See <https://wiki.debian.org/Teams/Dpkg/FAQ>."
    } else {
        "Note: removing the lock file is always wrong, can damage the locked area\nand the entire system. See <https://wiki.debian.org/Teams/Dpkg/FAQ#db-lock>."
    }
}

/// dpkg's error for a lock held by `pid` (lib/dpkg/file.c `file_lock`, dpkg < 1.22.7,
/// which does not yet name the holder's executable).
pub fn dpkg_lock_error(os: &str, desc: &str, pid: i32) -> String {
    format!(
        "dpkg: error: {desc} was locked by another process with pid {pid}\n{}",
        dpkg_lock_note(os)
    )
}

/// Takes dpkg's own locks the way dpkg does when it modifies its database
/// (lib/dpkg/dbmodify.c `modstatdb_lock`): the frontend lock, then the database lock,
/// both without waiting (dpkg has no lock timeout). On failure returns dpkg's message;
/// dpkg exits 2 after it.
pub fn dpkg_locks(os: &str) -> Result<(Guard, Guard), String> {
    let mut guards = Vec::new();
    for (path, desc) in [(FRONTEND, "dpkg frontend lock"), (DB, "dpkg database lock")] {
        match acquire(path, 0.0) {
            Ok(g) => guards.push(g),
            Err(LockError::Held((pid, _))) => return Err(dpkg_lock_error(os, desc, pid)),
            Err(LockError::Denied) => {
                return Err(
                    "dpkg: error: you do not have permission to lock the dpkg database directory /var/lib/dpkg".into(),
                )
            }
        }
    }
    let db = guards.pop().unwrap();
    let frontend = guards.pop().unwrap();
    Ok((frontend, db))
}

/// `tb-sim hold-locks NAME SECONDS PATH...`: a process named NAME (its `comm`, which apt
/// and dpkg print as the holder) takes real fcntl write locks on every PATH, as
/// apt-daily (`apt-get update`: the lists and dpkg frontend locks) or unattended-upgrades
/// (dpkg's frontend and database locks) do, and keeps them for SECONDS. Returns once the
/// locks are held; the holder lives on in the background (the host's PID 1 reaps it).
/// For hosts with the real package tools, where no stand-in can pretend.
pub fn hold_locks(args: &[String]) -> i32 {
    // `--while FILE`: let go early once FILE is gone (`Testbed::clear_fault`).
    let (until_gone, args) = match args {
        [flag, file, rest @ ..] if flag == "--while" => (Some(file.clone()), rest),
        _ => (None, args),
    };
    let (Some(name), Some(secs), paths) = (
        args.first(),
        args.get(1).and_then(|s| s.parse::<f64>().ok()),
        args.get(2..).unwrap_or_default(),
    ) else {
        eprintln!("usage: tb-sim hold-locks [--while FILE] NAME SECONDS PATH...");
        return 2;
    };
    let mut fds = [0; 2];
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        eprintln!(
            "tb-sim hold-locks: pipe: {}",
            std::io::Error::last_os_error()
        );
        return 1;
    }
    match unsafe { libc::fork() } {
        -1 => {
            eprintln!(
                "tb-sim hold-locks: fork: {}",
                std::io::Error::last_os_error()
            );
            1
        }
        0 => {
            unsafe {
                libc::close(fds[0]);
                libc::setsid();
            }
            let cname = std::ffi::CString::new(name.as_str()).unwrap_or_default();
            unsafe { libc::prctl(libc::PR_SET_NAME, cname.as_ptr()) };
            let mut guards = Vec::new();
            for p in paths {
                match try_lock(p) {
                    Ok(Ok(g)) => guards.push(g),
                    _ => std::process::exit(1),
                }
            }
            unsafe {
                libc::write(fds[1], b"k".as_ptr().cast(), 1);
                libc::close(fds[1]);
                // Nothing of the caller's session may wait for us (exec, SSH).
                libc::close(0);
                libc::close(1);
                libc::close(2);
            }
            let end = Instant::now() + Duration::from_secs_f64(secs.max(0.0));
            while Instant::now() < end
                && until_gone
                    .as_ref()
                    .is_none_or(|f| std::path::Path::new(f).exists())
            {
                std::thread::sleep(Duration::from_millis(50).min(end - Instant::now()));
            }
            drop(guards);
            std::process::exit(0);
        }
        _ => {
            unsafe { libc::close(fds[1]) };
            let mut b = [0u8; 1];
            let n = unsafe { libc::read(fds[0], b.as_mut_ptr().cast(), 1) };
            if n == 1 {
                0
            } else {
                eprintln!("tb-sim hold-locks: could not take {}", paths.join(", "));
                1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_lock_texts() {
        assert_eq!(
            dpkg_lock_error("ubuntu-24.04", "dpkg frontend lock", 1234),
            "dpkg: error: dpkg frontend lock was locked by another process with pid 1234\n\
             Note: removing the lock file is always wrong, can damage the locked area\n\
             and the entire system. See <https://wiki.debian.org/Teams/Dpkg/FAQ#db-lock>."
        );
        assert!(dpkg_lock_note("ubuntu-22.04").contains("and can end up damaging the\nlocked area"));
    }
}
