//! Real processes that hold something on a host while a fault lasts (`Fault::AptDaily`,
//! `Fault::DpkgLock`: apt's and dpkg's locks; `Fault::PortInUse`: a listening TCP port),
//! so the machine's programs (apt, dpkg, the real kubeadm) meet the real condition and
//! print their own errors. Each holder runs in the background of the host (its PID 1
//! reaps it) until its time is up or, with `--while FILE`, until FILE is gone
//! (`Testbed::clear_fault`). While it lives it keeps an flock on FILE, so
//! `clear_fault` can wait for it to be gone, and what it held to be free again.

use std::os::unix::io::AsRawFd;
use std::time::{Duration, Instant};

/// `[--while FILE] REST...` -> (FILE, REST).
pub fn while_flag(args: &[String]) -> (Option<String>, &[String]) {
    match args {
        [flag, file, rest @ ..] if flag == "--while" => (Some(file.clone()), rest),
        _ => (None, args),
    }
}

/// Forks a process named `name` (its `comm`, which apt and dpkg print as a lock's
/// holder) that runs `take` and, if it returns something, keeps it for `secs` or while
/// `until_gone` exists, then exits (dropping it releases it). Returns once it is held
/// (0), or 1 naming `what` if `take` failed. The holder closes its stdio: nothing of
/// the caller's session (exec, SSH) waits for it.
pub fn hold<T>(
    cmd: &str,
    name: &str,
    until_gone: Option<&str>,
    secs: f64,
    what: &str,
    take: impl FnOnce() -> Option<T>,
) -> i32 {
    let mut fds = [0; 2];
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        eprintln!("tb-sim {cmd}: pipe: {}", std::io::Error::last_os_error());
        return 1;
    }
    match unsafe { libc::fork() } {
        -1 => {
            eprintln!("tb-sim {cmd}: fork: {}", std::io::Error::last_os_error());
            1
        }
        0 => {
            unsafe {
                libc::close(fds[0]);
                libc::setsid();
            }
            let cname = std::ffi::CString::new(name).unwrap_or_default();
            unsafe { libc::prctl(libc::PR_SET_NAME, cname.as_ptr()) };
            // Closed (and so unlocked) only when this process is gone.
            let marker = until_gone.and_then(|f| std::fs::File::open(f).ok());
            if let Some(m) = &marker {
                unsafe { libc::flock(m.as_raw_fd(), libc::LOCK_EX) };
            }
            let Some(held) = take() else {
                std::process::exit(1)
            };
            unsafe {
                libc::write(fds[1], b"k".as_ptr().cast(), 1);
                libc::close(fds[1]);
                libc::close(0);
                libc::close(1);
                libc::close(2);
            }
            let end = Instant::now() + Duration::from_secs_f64(secs.max(0.0));
            while Instant::now() < end
                && until_gone.is_none_or(|f| std::path::Path::new(f).exists())
            {
                std::thread::sleep(Duration::from_millis(50).min(end - Instant::now()));
            }
            drop(held);
            std::process::exit(0);
        }
        _ => {
            unsafe { libc::close(fds[1]) };
            let mut b = [0u8; 1];
            let n = unsafe { libc::read(fds[0], b.as_mut_ptr().cast(), 1) };
            if n == 1 {
                0
            } else {
                eprintln!("tb-sim {cmd}: could not take {what}");
                1
            }
        }
    }
}

/// `tb-sim hold-port [--while FILE] NAME PORT`: a process named NAME listens on TCP
/// PORT on every address of the host (IPv6 and IPv4 where the host has IPv6), as a
/// stray service does, until FILE is gone. kubeadm's preflight (PortOpenCheck) then
/// fails with `[ERROR Port-PORT]: Port PORT is in use`.
pub fn hold_port(args: &[String]) -> i32 {
    let (until_gone, args) = while_flag(args);
    let (Some(name), Some(port)) = (
        args.first(),
        args.get(1).and_then(|p| p.parse::<u16>().ok()),
    ) else {
        eprintln!("usage: tb-sim hold-port [--while FILE] NAME PORT");
        return 2;
    };
    hold(
        "hold-port",
        name,
        until_gone.as_deref(),
        f64::from(u32::MAX),
        &format!("TCP port {port}"),
        || {
            std::net::TcpListener::bind(("::", port))
                .or_else(|_| std::net::TcpListener::bind(("0.0.0.0", port)))
                .ok()
        },
    )
}
