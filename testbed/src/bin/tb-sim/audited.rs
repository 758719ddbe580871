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
//! nothing when it is not. A package of a release that is not built links `/usr/bin/NAME`
//! to tb-sim itself (the simulated program), which is never run through here.

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

/// The programs of [`PROGRAMS`] that are real only in some packages (see the module doc).
const REAL_IN_BUILT_PACKAGES: &[&str] = &["kubeadm", "kubectl"];

pub fn lookup(name: &str) -> Option<Standin> {
    let (_, path) = PROGRAMS.iter().find(|(n, _)| *n == name)?;
    if REAL_IN_BUILT_PACKAGES.contains(&name) && !is_real_program(path) {
        return None;
    }
    Some(run)
}

/// Whether `path` is a program other than this stand-in binary (following links; the
/// same file by device and inode, whatever path the mounts show it under).
fn is_real_program(path: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(target), Ok(me)) = (std::fs::metadata(path), std::fs::metadata("/proc/self/exe"))
    else {
        return false;
    };
    (target.dev(), target.ino()) != (me.dev(), me.ino())
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
