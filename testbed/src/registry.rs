//! A machine-wide list of the testbeds that exist (`/run/testbed/tbX.json`), so that a
//! testbed whose owner died without tearing it down (a test binary killed by a timeout,
//! SIGKILL, a crash in Drop) is removed by the next testbed that is built, instead of
//! piling up namespaces, sshds and subnets run after run.
//!
//! Testbeds made by `testbed up` have no owner process and are never reaped.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::net;
use crate::procs;

pub const REGISTRY_DIR: &str = "/run/testbed";

/// The process that owns a testbed: its pid and its start time (so a reused pid doesn't
/// look like the owner).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Owner {
    pub pid: i32,
    pub start_time: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub subnet: u8,
    pub dir: PathBuf,
    pub owner: Option<Owner>,
    /// Whether the owner created the directory (then it is removed too).
    pub owned_dir: bool,
}

fn entry_path(x: u8) -> PathBuf {
    Path::new(REGISTRY_DIR).join(format!("tb{x}.json"))
}

fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // Field 22 overall; the 20th after the command name.
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl Owner {
    pub fn me() -> Owner {
        let pid = std::process::id() as i32;
        Owner {
            pid,
            start_time: start_time(pid).unwrap_or(0),
        }
    }
    fn alive(&self) -> bool {
        procs::alive(self.pid) && start_time(self.pid) == Some(self.start_time)
    }
}

pub fn register(e: &Entry) {
    let _ = std::fs::create_dir_all(REGISTRY_DIR);
    let _ = crate::state::write_json(&entry_path(e.subnet), e);
}

pub fn unregister(x: u8) {
    let _ = std::fs::remove_file(entry_path(x));
}

/// Tears down every registered testbed whose owner process is gone. Best effort: a
/// failure is printed, never returned (it must not stop a new testbed from being built).
pub fn reap_orphans() {
    let Ok(dir) = std::fs::read_dir(REGISTRY_DIR) else {
        return;
    };
    for f in dir.filter_map(|f| f.ok()) {
        let path = f.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let Some(entry) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| serde_json::from_str::<Entry>(&s).ok())
        else {
            continue;
        };
        if entry.owner.as_ref().is_none_or(|o| o.alive()) {
            continue;
        }
        // Claim it: of several reapers, only the one whose rename succeeds goes on.
        let claimed = path.with_extension("reaping");
        if std::fs::rename(&path, &claimed).is_err() {
            continue;
        }
        eprintln!(
            "testbed: removing testbed {} (10.200.{}.0/24) left behind by dead process {}",
            entry.dir.display(),
            entry.subnet,
            entry.owner.as_ref().map(|o| o.pid).unwrap_or_default()
        );
        if let Err(e) = crate::Testbed::reap(&entry) {
            eprintln!("testbed: {e}; removing its network by name");
            net::remove_by_subnet(entry.subnet);
        }
        let _ = std::fs::remove_file(claimed);
    }
}
