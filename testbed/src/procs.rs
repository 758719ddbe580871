//! Processes of a host, found the way `ip netns pids` finds them: every process whose
//! network namespace is the host's. This catches what runs in the host however it got
//! there (sshd sessions, daemons, `testbed exec`, stray `ip netns exec`).

use std::time::{Duration, Instant};

/// Pids (root namespace numbering) whose network namespace has inode `netns_ino`.
pub fn in_netns(netns_ino: u64) -> Vec<i32> {
    let want = format!("net:[{netns_ino}]");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/net"))
                .map(|l| l.to_string_lossy() == want)
                .unwrap_or(false)
        })
        .collect()
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may itself contain ')'.
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

pub fn signal(pids: &[i32], sig: i32) {
    for &pid in pids {
        unsafe { libc::kill(pid, sig) };
    }
}

/// Kills every process in the namespace and waits (up to `timeout`) until none is left.
/// Returns the pids still alive after the timeout.
pub fn kill_all(netns_ino: u64, timeout: Duration) -> Vec<i32> {
    let start = Instant::now();
    loop {
        let pids: Vec<i32> = in_netns(netns_ino)
            .into_iter()
            .filter(|p| alive(*p))
            .collect();
        if pids.is_empty() || start.elapsed() > timeout {
            return pids;
        }
        // SIGCONT too, so a frozen host dies as well (SIGKILL works on stopped processes,
        // but a thawed leftover is easier to diagnose than a stopped one).
        signal(&pids, libc::SIGKILL);
        signal(&pids, libc::SIGCONT);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Children of `pid` (root namespace numbering), from /proc/PID/task/*/children.
pub fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return vec![];
    };
    let mut out = vec![];
    for t in tasks.filter_map(|t| t.ok()) {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(s.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
        }
    }
    out
}

pub fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
