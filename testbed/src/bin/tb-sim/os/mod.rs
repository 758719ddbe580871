//! Stand-ins for the base system: swap, kernel modules, sysctl, systemd units, hostname,
//! iptables, and the containerd and docker daemons and CLIs; and what a boot does.

use crate::common::Ctx;
use crate::{Daemon, Standin};

pub fn lookup(_name: &str) -> Option<Standin> {
    None
}

pub fn daemon(_unit: &str) -> Option<Daemon> {
    None
}

/// `tb-sim boot`: what a (re)boot does to the simulated kernel and services.
pub fn boot(_args: &[String]) -> i32 {
    0
}

#[allow(dead_code)]
fn _unused(_c: &mut Ctx) {}
