//! Stand-ins for the base system: swap, kernel modules, sysctl, systemd units, hostname,
//! iptables, and the containerd and docker daemons and CLIs; and what a boot does.

pub mod systemd;

use crate::{Daemon, Standin};

#[allow(unused_imports)]
pub use systemd::{restart_unit, start_unit, stop_unit};

pub fn lookup(name: &str) -> Option<Standin> {
    Some(match name {
        "systemctl" => systemd::systemctl,
        _ => return None,
    })
}

pub fn daemon(unit: &str) -> Option<Daemon> {
    if std::env::var("TB_SUPERVISE").as_deref() == Ok(unit) {
        return Some(systemd::supervise);
    }
    None
}

/// `tb-sim boot`: what a (re)boot does to the simulated kernel and services.
pub fn boot(_args: &[String]) -> i32 {
    systemd::reset_runtime();
    systemd::start_enabled();
    0
}
