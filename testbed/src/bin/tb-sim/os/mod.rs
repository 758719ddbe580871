//! Stand-ins for the base system: swap, kernel modules, sysctl, systemd units, hostname,
//! iptables, and the containerd and docker daemons and CLIs; and what a boot does.

pub mod containerd;
mod containerd_real;
pub use containerd_real::{preload_images, real_binary as real_containerd};
pub mod ethtool;
pub mod holder;
pub mod kernel;
pub mod locks;
pub mod net;
pub mod runc;
pub mod systemd;

use crate::common::{self, Ctx};
use crate::{Daemon, Standin};

pub fn lookup(name: &str) -> Option<Standin> {
    Some(match name {
        "systemctl" => systemd::systemctl,
        "swapoff" => kernel::swapoff,
        "swapon" => kernel::swapon,
        "modprobe" => kernel::modprobe,
        "lsmod" => kernel::lsmod,
        "sysctl" => kernel::sysctl,
        "hostname" => net::hostname,
        "ethtool" => ethtool::ethtool,
        "iptables" | "ip6tables" => net::iptables,
        "reboot" => reboot,
        "containerd" => containerd::containerd_cli,
        "ctr" => containerd::ctr_cli,
        "runc" => containerd::runc_cli,
        "docker" => containerd::docker_cli,
        "crictl" => containerd::crictl_cli,
        "journalctl" => systemd::journalctl,
        _ => return None,
    })
}

pub fn daemon(unit: &str) -> Option<Daemon> {
    if std::env::var("TB_SUPERVISE").as_deref() == Ok(unit) {
        return Some(systemd::supervise);
    }
    match unit {
        "containerd" => Some(containerd::containerd_daemon),
        "docker" => Some(containerd::docker_daemon),
        "testbed-reboot" if std::env::var_os("TB_REBOOT").is_some() => Some(reboot_worker),
        _ => None,
    }
}

/// Runtime files of the stand-ins that live in /run (a tmpfs on a real host).
const RUN_FILES: &[&str] = &["/run/containerd", "/run/docker.sock", "/run/testbed"];

/// `tb-sim boot`: what a (re)boot does to the simulated kernel and services. The first
/// boot also gives the host what an Ubuntu server install leaves behind: a swap file
/// in /etc/fstab and the base packages in the dpkg database.
pub fn boot(_args: &[String]) -> i32 {
    let first = !common::ctl_path(testbed::layout::ctl::KERNEL).exists();
    if first {
        first_boot();
    }
    // Nothing survives a power cycle (the host manager normally boots an empty host).
    systemd::stop_all();
    systemd::kill_all();
    for p in RUN_FILES {
        let _ = std::fs::remove_dir_all(p);
        let _ = std::fs::remove_file(p);
    }
    systemd::reset_runtime();
    kernel::boot_kernel();
    systemd::start_enabled();
    0
}

fn first_boot() {
    let fstab = std::fs::read_to_string("/etc/fstab").unwrap_or_default();
    if !fstab
        .lines()
        .any(|l| l.split_whitespace().nth(2) == Some("swap"))
    {
        let mut f = fstab;
        if !f.is_empty() && !f.ends_with('\n') {
            f.push('\n');
        }
        f.push_str("/swap.img\tnone\tswap\tsw\t0\t0\n");
        let _ = std::fs::write("/etc/fstab", f);
    }
    // A cloud image's apt lists are empty (the machine's own show through the /var
    // overlay otherwise).
    if let Ok(rd) = std::fs::read_dir("/var/lib/apt/lists") {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.contains("_Packages") || n.ends_with("Release") || n.contains("_dists_") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    // The base packages' commands are on PATH, as on the real server (ethtool is not on
    // the machine the testbed runs on; kubeadm's preflight looks for it).
    for (name, p) in common::dpkg_db() {
        if p.status == "ii" && crate::repo::catalog::BASE_PACKAGES.contains(&name.as_str()) {
            crate::repo::unpack_files(&name);
        }
    }
}

/// `reboot`: stops every service, empties /run, resets the kernel and boots again, and
/// ends the SSH session that asked for it (its connection drops, as on a real host).
fn reboot(ctx: &mut Ctx, _args: &[String]) -> i32 {
    if !common::is_root() {
        eprintln!("Call to Reboot failed: Interactive authentication required.");
        return 1;
    }
    let sid = unsafe { libc::getsid(0) };
    let r = std::process::Command::new(testbed::layout::SIM_BIN)
        .args(["daemon", "testbed-reboot"])
        .env("TB_REBOOT", sid.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match r {
        Ok(_) => {
            ctx.changed();
            0
        }
        Err(e) => {
            eprintln!("Failed to reboot system: {e}");
            1
        }
    }
}

/// The detached half of `reboot`.
fn reboot_worker(_args: &[String]) -> i32 {
    unsafe { libc::setsid() };
    let sid: i32 = std::env::var("TB_REBOOT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    std::thread::sleep(std::time::Duration::from_millis(200));
    systemd::stop_all();
    systemd::kill_all();
    if sid > 1 {
        unsafe { libc::kill(-sid, libc::SIGHUP) };
    }
    // Firmware, kernel and userspace start-up.
    Ctx::load("reboot").take_time(30.0);
    boot(&[])
}
