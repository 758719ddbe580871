//! What every stand-in shares: the host's identity, the caller, the audit record written
//! at exit, realistic durations, faults, and the small pieces of host state that several
//! stand-ins read (installed packages, kernel state, running units).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use testbed::layout::{self, AuditRecord, Fault, HostConfig, KernelState};

/// The invocation context of one stand-in.
pub struct Ctx {
    /// The command name (basename of argv[0]).
    pub name: String,
    pub config: HostConfig,
    /// Set by a stand-in as soon as it changes any state; recorded in the audit log.
    pub changed: bool,
}

impl Ctx {
    pub fn load(name: &str) -> Ctx {
        let config = std::fs::read_to_string(ctl_path(layout::ctl::HOST_CONFIG))
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_else(|| HostConfig {
                name: hostname(),
                address: "127.0.0.1".into(),
                os: "ubuntu-24.04".into(),
                time_scale: 0.0,
                peers: vec![],
                real_kubernetes: None,
                cri_client: None,
            });
        Ctx {
            name: name.to_string(),
            config,
            changed: false,
        }
    }

    /// Marks that this invocation changed state.
    pub fn changed(&mut self) {
        self.changed = true;
    }

    /// Sleeps for a realistic duration of `seconds` times the host's time scale, plus any
    /// injected slowness for this command (added once per invocation, however many
    /// times a stand-in calls this).
    pub fn take_time(&self, seconds: f64) {
        static SLOW_APPLIED: std::sync::atomic::AtomicBool =
            std::sync::atomic::AtomicBool::new(false);
        let mut total = seconds * self.config.time_scale;
        if let Some(Fault::Slow { seconds, .. }) = fault(&format!("slow-{}", self.name)) {
            if !SLOW_APPLIED.swap(true, std::sync::atomic::Ordering::SeqCst) {
                total += seconds;
            }
        }
        if total > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(total));
        }
    }
}

/// Path of a file in the host's control directory.
pub fn ctl_path(rel: &str) -> PathBuf {
    Path::new(layout::CTL_DIR).join(rel)
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// The effective user's name and uid.
pub fn user() -> (String, u32) {
    let uid = unsafe { libc::geteuid() };
    let name = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| uid.to_string());
    (name, uid)
}

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// Appends one record to the host's audit log. Failures are ignored: the audit log must
/// never change a command's behaviour.
pub fn audit(kind: &str, argv: Vec<String>, changed: bool, exit: Option<i32>) {
    let rec = AuditRecord {
        ts: now(),
        kind: kind.into(),
        user: user().0,
        argv,
        changed,
        exit,
    };
    if let Ok(line) = serde_json::to_string(&rec) {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(ctl_path(layout::ctl::AUDIT_LOG))
        {
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
    }
}

/// The active fault stored under `faults/<kind>.json`, if any.
pub fn fault(kind: &str) -> Option<Fault> {
    let p = ctl_path(layout::ctl::FAULTS).join(format!("{kind}.json"));
    std::fs::read_to_string(p)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
}

pub fn kernel() -> KernelState {
    std::fs::read_to_string(ctl_path(layout::ctl::KERNEL))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

/// Saves the simulated kernel state, and mirrors it as `ctl/proc/swaps` and
/// `ctl/proc/modules` in the kernel's own formats. The host's PID 1 binds `proc/swaps`
/// over /proc/swaps (hostinit.rs `proc_swaps`), so it is rewritten in place (a rename
/// would leave the bind mount on the old file); a reader may catch it half-written.
pub fn save_kernel(k: &KernelState) {
    let _ = write_atomic(
        &ctl_path(layout::ctl::KERNEL),
        serde_json::to_string_pretty(k).unwrap().as_bytes(),
    );
    let mut swaps = String::from("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n");
    for s in &k.swaps {
        swaps.push_str(&format!("{s:<40}file\t\t4194300\t\t0\t\t-2\n"));
    }
    let path = ctl_path("proc/swaps");
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(&path, swaps.as_bytes());
    let modules: String = k
        .modules
        .iter()
        .rev()
        .map(|m| format!("{m} 16384 0 - Live 0x0000000000000000\n"))
        .collect();
    let _ = write_atomic(&ctl_path("proc/modules"), modules.as_bytes());
}

/// Writes a file via a temporary sibling and rename, so readers never see half a file.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, data)?;
    std::fs::rename(tmp, path)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PkgState {
    pub version: String,
    /// dpkg's two-letter abbreviation: "ii" installed, "rc" removed with config left,
    /// "iU" unpacked but not configured (interrupted dpkg).
    pub status: String,
    pub hold: bool,
}

/// The packages dpkg knows (its database, `/var/lib/dpkg/status`).
pub fn dpkg_db() -> BTreeMap<String, PkgState> {
    std::fs::read_to_string(DPKG_STATUS)
        .map(|s| parse_dpkg_status(&s))
        .unwrap_or_default()
}

/// dpkg's own database.
pub const DPKG_STATUS: &str = "/var/lib/dpkg/status";

/// Reads dpkg's status file into the view the stand-ins need: `Status: WANT ok STATE` becomes
/// the two-letter abbreviation dpkg-query prints (`ii`, `iU`, `iF`, `rc` ...), a `hold`
/// selection the hold flag. Packages dpkg only remembers as not installed are left out.
pub fn parse_dpkg_status(text: &str) -> BTreeMap<String, PkgState> {
    let mut db = BTreeMap::new();
    for stanza in text.split("\n\n") {
        let (mut name, mut version, mut status) = (None, String::new(), None);
        for line in stanza.lines() {
            if let Some(v) = line.strip_prefix("Package: ") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("Version: ") {
                version = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("Status: ") {
                status = Some(v.split_whitespace().map(str::to_string).collect::<Vec<_>>());
            }
        }
        let (Some(name), Some(st)) = (name, status) else {
            continue;
        };
        let (want, state) = (st[0].as_str(), st.get(2).map_or("", String::as_str));
        let s = match state {
            "installed" => 'i',
            "unpacked" => 'U',
            "half-configured" => 'F',
            "half-installed" => 'H',
            "config-files" => 'c',
            "triggers-awaited" => 'W',
            "triggers-pending" => 't',
            _ => continue,
        };
        let w = match want {
            "deinstall" => 'r',
            "purge" => 'p',
            _ => 'i',
        };
        db.insert(
            name,
            PkgState {
                version,
                status: format!("{w}{s}"),
                hold: want == "hold",
            },
        );
    }
    db
}

/// The installed version of a package ("1.34.2-1.1"), if installed and configured.
pub fn installed_version(pkg: &str) -> Option<String> {
    dpkg_db()
        .get(pkg)
        .filter(|p| p.status == "ii")
        .map(|p| p.version.clone())
}

/// Pid of a running simulated daemon (unit), if it is alive.
pub fn unit_pid(unit: &str) -> Option<i32> {
    let p = ctl_path(layout::ctl::UNITS).join(format!("{unit}.pid"));
    let pid: i32 = std::fs::read_to_string(p).ok()?.trim().parse().ok()?;
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    let ours = std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
        .map(|c| c.contains("tb-sim") && c.contains(unit))
        .unwrap_or(false);
    (alive && ours).then_some(pid)
}

/// Prints to stderr in the style `name: message` and returns the exit code, for terse
/// error paths: `return fail(ctx, 1, "...")`.
pub fn fail(ctx: &Ctx, code: i32, msg: &str) -> i32 {
    eprintln!("{}: {msg}", ctx.name);
    code
}

/// Where the containerd daemon records, at start, the runtime facts it derived from
/// /etc/containerd/config.toml. The file is removed when the daemon stops, so it
/// describes the *running* containerd (editing config.toml without a restart changes
/// nothing, as on a real host).
pub const CONTAINERD_RUNTIME: &str = "/run/containerd/testbed-runtime.json";

/// What the running containerd offers to a CRI client (kubeadm preflight, the kubelet).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerdRuntime {
    /// containerd's version, e.g. "1.7.28".
    pub version: String,
    /// Whether the CRI plugin is loaded (false when `disabled_plugins` contains "cri").
    pub cri: bool,
    /// `SystemdCgroup` of the runc runtime options.
    pub systemd_cgroup: bool,
    /// The CRI plugin's `cni.bin_dir`.
    pub cni_bin_dir: String,
    /// The CRI plugin's `sandbox_image`.
    pub sandbox_image: String,
}

/// The running containerd's runtime facts; None unless the containerd daemon is running.
pub fn containerd_runtime() -> Option<ContainerdRuntime> {
    unit_pid("containerd")?;
    std::fs::read_to_string(CONTAINERD_RUNTIME)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_status_as_dpkg_query_abbreviates_it() {
        let db = parse_dpkg_status(
            "Package: kubeadm\nStatus: hold ok installed\nVersion: 1.34.2-1.1\n\n\
             Package: containerd\nStatus: install ok unpacked\nVersion: 1.7.24\n\n\
             Package: docker.io\nStatus: deinstall ok config-files\nVersion: 24.0.7\n\n\
             Package: runc\nStatus: purge ok not-installed\n\n",
        );
        let abbrev: Vec<(&str, &str, bool)> = db
            .iter()
            .map(|(n, p)| (n.as_str(), p.status.as_str(), p.hold))
            .collect();
        assert_eq!(
            abbrev,
            [
                ("containerd", "iU", false),
                ("docker.io", "rc", false),
                ("kubeadm", "ii", true)
            ]
        );
        assert_eq!(db["kubeadm"].version, "1.34.2-1.1");
    }
}
