//! containerd.service when the installed `containerd` package carries the REAL containerd
//! (the testbed's Ubuntu 24.04 archive, see testbed/containerd/README.md): systemd's part
//! of `Type=notify` for the real daemon, nothing else.
//!
//! The packaged unit runs `/usr/bin/containerd` with `Type=notify`
//! (containerd.service upstream); containerd reports `READY=1` on `$NOTIFY_SOCKET` once it
//! serves its socket (cmd/containerd/command/notify_linux.go, go-systemd's SdNotify).
//! This runner gives it that socket, marks the unit running when READY=1 arrives, passes
//! SIGTERM on (`systemctl stop`), and exits as containerd exits, so a config containerd
//! refuses (invalid TOML) fails `systemctl restart containerd` with containerd's own error
//! in `journalctl -u containerd`.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use testbed::layout;

use super::containerd::{parse_toml, runtime_facts, upstream};
use crate::common;

/// Where the package puts the daemon.
const BIN: &str = "/usr/bin/containerd";

/// The real containerd, if the installed package's `/usr/bin/containerd` is not the
/// stand-in binary.
pub fn real_binary() -> Option<PathBuf> {
    let bin = std::fs::canonicalize(BIN).ok()?;
    let sim = std::fs::canonicalize(testbed::layout::SIM_BIN).ok();
    (Some(&bin) != sim.as_ref()).then_some(bin)
}

/// Runs the real daemon until it exits or the unit is stopped; returns its exit code.
pub fn run(bin: &Path, stop: &std::sync::atomic::AtomicBool, set_state: fn(&str)) -> i32 {
    use std::sync::atomic::Ordering;
    // One fixed path (the unit runs once per host): a wrapper killed with the unit
    // (`systemctl restart`, a power cut) leaves no socket of its own pid behind.
    let notify = PathBuf::from("/run/containerd-notify");
    let _ = std::fs::remove_file(&notify);
    let sock = match UnixDatagram::bind(&notify) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "containerd.service: notify socket {}: {e}",
                notify.display()
            );
            return 1;
        }
    };
    let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
    let mut child = match Command::new(BIN)
        .env("NOTIFY_SOCKET", &notify)
        .stdin(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("containerd.service: {}: {e}", bin.display());
            let _ = std::fs::remove_file(&notify);
            return 203; // systemd's EXIT_EXEC
        }
    };
    let mut buf = [0u8; 4096];
    let mut signalled = false;
    let code = loop {
        if let Ok(Some(status)) = child.try_wait() {
            use std::os::unix::process::ExitStatusExt;
            break status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        }
        if stop.load(Ordering::SeqCst) && !signalled {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            signalled = true;
        }
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]);
            if msg.lines().any(|l| l == "READY=1") {
                if let Err(e) = import_preloaded() {
                    eprintln!("containerd.service: preloading images: {e}");
                }
                publish_facts();
                set_state("running");
            }
        }
    };
    let _ = std::fs::remove_file(&notify);
    let _ = std::fs::remove_file(common::CONTAINERD_RUNTIME);
    code
}

/// Where the daemon's state records which preload archive it imported (its SHA-256).
const PRELOADED: &str = "/var/lib/containerd/testbed-preloaded.sha256";

/// Imports the host's preload archive ([`layout::ctl::IMAGES`]) with the real
/// `ctr -n k8s.io images import`, unless this archive was imported before: the images a
/// machine image carries are there once, and a test that removes one keeps it removed.
fn import_preloaded() -> Result<(), String> {
    use sha2::{Digest, Sha256};
    let archive = common::ctl_path(layout::ctl::IMAGES);
    let Ok(data) = std::fs::read(&archive) else {
        return Ok(());
    };
    let sum = format!("{:x}\n", Sha256::digest(&data));
    if std::fs::read_to_string(PRELOADED).ok().as_deref() == Some(sum.as_str()) {
        return Ok(());
    }
    let out = Command::new("/usr/bin/ctr")
        .args(["-n", "k8s.io", "images", "import"])
        .arg(&archive)
        .output()
        .map_err(|e| format!("ctr: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    std::fs::write(PRELOADED, sum).map_err(|e| format!("{PRELOADED}: {e}"))
}

/// `tb-sim preload-images`: imports a new preload archive now if the real containerd
/// runs (the manager's `Testbed::preload_images`); otherwise containerd.service does at
/// its next start.
pub fn preload_images(_args: &[String]) -> i32 {
    if real_binary().is_none() || !Path::new("/run/containerd/containerd.sock").exists() {
        return 0;
    }
    match import_preloaded() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("tb-sim preload-images: {e}");
            1
        }
    }
}

/// Publishes what the running daemon uses (its `config dump`) for the kube stand-ins, as
/// the stand-in daemon does.
fn publish_facts() {
    let Ok(out) = Command::new(BIN).args(["config", "dump"]).output() else {
        return;
    };
    let Ok(flat) = parse_toml(&String::from_utf8_lossy(&out.stdout)) else {
        return;
    };
    let version = common::installed_version("containerd")
        .map(|v| upstream(&v))
        .unwrap_or_default();
    let _ = common::write_atomic(
        Path::new(common::CONTAINERD_RUNTIME),
        serde_json::to_string_pretty(&runtime_facts(&flat, &version))
            .unwrap()
            .as_bytes(),
    );
}
