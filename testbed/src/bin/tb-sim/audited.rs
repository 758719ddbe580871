//! The machine's real package programs (apt-get, apt, apt-cache, apt-mark, dpkg,
//! dpkg-query, curl, gpg), run through the host's audit log: the links in
//! `/usr/local/sbin` (first on PATH, also in sudo's secure_path) lead here, and this
//! runs `/usr/bin/NAME` with the same arguments, environment and standard streams,
//! waits for it and returns its exit status, which `main` records like any other
//! command's. It adds nothing to what the program does except an injected
//! `Fault::Slow` for its name (before it starts). apt's own calls of dpkg use the
//! absolute path and are not recorded, as on a host with auditd rules for commands
//! typed by an operator.
//!
//! The real kubeadm and kubectl (the packages of a release built by testbed/k8s/build.sh)
//! are recorded the same way: such a package ships, besides `/usr/bin/NAME` (the real
//! program), a link `/usr/local/sbin/NAME` to tb-sim (tb-sim's `repo::build`), so that
//! the command is audited exactly while the package is installed and `command -v` finds
//! nothing when it is not. Only built releases have packages (tb-sim's `repo::catalog`).

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::Command;

use crate::common::Ctx;
use crate::Standin;

/// The programs recorded this way, and where Debian installs each.
const PROGRAMS: &[(&str, &str)] = &[
    ("apt-get", "/usr/bin/apt-get"),
    ("apt", "/usr/bin/apt"),
    ("apt-cache", "/usr/bin/apt-cache"),
    ("apt-mark", "/usr/bin/apt-mark"),
    ("dpkg", "/usr/bin/dpkg"),
    ("dpkg-query", "/usr/bin/dpkg-query"),
    ("curl", "/usr/bin/curl"),
    ("gpg", "/usr/bin/gpg"),
    ("kubeadm", "/usr/bin/kubeadm"),
    ("kubectl", "/usr/bin/kubectl"),
];

pub fn lookup(name: &str) -> Option<Standin> {
    PROGRAMS
        .iter()
        .any(|(n, _)| *n == name)
        .then_some(run as Standin)
}

/// dpkg's database: a run changed the host's packages (install, remove, hold) when it
/// rewrote this file.
const DPKG_STATUS: &str = "/var/lib/dpkg/status";

fn run(ctx: &mut Ctx, args: &[String]) -> i32 {
    let Some((_, path)) = PROGRAMS.iter().find(|(n, _)| *n == ctx.name) else {
        return 127;
    };
    ctx.take_time(0.0);
    let before = status_stamp();
    let status = Command::new(path).arg0(&ctx.name).args(args).status();
    if status_stamp() != before {
        ctx.changed();
    }
    match status {
        Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
        Err(e) => {
            eprintln!("{}: {e}", ctx.name);
            if Path::new(path).exists() {
                126
            } else {
                127
            }
        }
    }
}

/// The status file's modification time and size (None: absent).
fn status_stamp() -> Option<(std::time::SystemTime, u64)> {
    let m = std::fs::metadata(DPKG_STATUS).ok()?;
    Some((m.modified().ok()?, m.len()))
}
