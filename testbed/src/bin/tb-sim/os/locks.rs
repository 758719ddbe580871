//! Real holders of apt's and dpkg's locks, as apt-daily and unattended-upgrades are on
//! a fresh cloud VM (`Fault::AptDaily`, `Fault::DpkgLock`): a process with the holder's
//! name takes real fcntl locks, so the machine's apt and dpkg see them as they would.

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::time::{Duration, Instant};

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
                    Ok(Some(g)) => guards.push(g),
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
