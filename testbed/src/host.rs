//! One simulated host: its directories, its first boot and later boots, power off, and
//! entering it. The network part is in [`crate::net`], the process that runs inside in
//! `tb-sim init` (src/bin/tb-sim/hostinit.rs).

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::distro;
use crate::error::{Error, Result};
use crate::layout::{self, ctl_manager, HostConfig, HostPaths, InitSpec, OverlayMount, Provision};
use crate::net;
use crate::procs;
use crate::state::{HostState, TestbedState};

/// Overlay dirs whose lower layer is an empty directory instead of the machine's own:
/// on a fresh server these are empty (or hold only what provisioning puts there), and the
/// machine's contents (developer files, other testbeds under /tmp) must not show through.
pub const FRESH_DIRS: &[&str] = &[
    "/opt",
    "/usr/local",
    "/root",
    "/home",
    "/run",
    "/srv",
    "/tmp",
];

/// How long a host may take from `tb-sim init` to sshd answering.
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// Name of the stand-in binary's copy in the testbed directory (hard-linked into hosts).
pub const SIM_COPY: &str = "tb-sim";

fn lower_dir(dir: &Path, target: &str) -> PathBuf {
    if !FRESH_DIRS.contains(&target) {
        PathBuf::from(target)
    } else if target == "/usr/local" {
        dir.join("lower").join("usr-local")
    } else {
        dir.join("lower").join("empty")
    }
}

/// The shared empty lower layers, made once per testbed.
pub fn prepare_lowers(dir: &Path) -> Result<()> {
    let lower = dir.join("lower");
    mkdir(&lower.join("empty"), 0o755)?;
    // What /usr/local holds on a fresh Ubuntu: the FHS skeleton, nothing in it.
    for sub in [
        "bin", "etc", "games", "include", "lib", "man", "sbin", "share", "src",
    ] {
        mkdir(&lower.join("usr-local").join(sub), 0o755)?;
    }
    Ok(())
}

pub fn overlays(dir: &Path, host: &str) -> Vec<OverlayMount> {
    let paths = HostPaths::new(dir, host);
    layout::OVERLAY_DIRS
        .iter()
        .map(|t| OverlayMount {
            target: t.to_string(),
            lower: lower_dir(dir, t),
            upper: paths.upper(t),
            work: paths.work(t),
        })
        .collect()
}

fn mkdir(path: &Path, mode: u32) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|e| Error::io("create directory", path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("chmod", path, e))
}

/// An upper layer's top directory decides the mode and owner of the merged directory, so
/// it copies the machine's (or, for fresh dirs, a fresh server's: /tmp 1777, /root 0700).
fn make_upper(upper: &Path, target: &str) -> Result<()> {
    let (mode, uid, gid) = match target {
        "/tmp" => (0o1777, 0, 0),
        "/root" => (0o700, 0, 0),
        t if FRESH_DIRS.contains(&t) => (0o755, 0, 0),
        t => {
            let m = std::fs::metadata(t).map_err(|e| Error::io("stat", t, e))?;
            (m.mode() & 0o7777, m.uid(), m.gid())
        }
    };
    mkdir(upper, mode)?;
    std::os::unix::fs::chown(upper, Some(uid), Some(gid)).map_err(|e| Error::io("chown", upper, e))
}

/// Makes `path` (inside an overlay dir) an empty directory that hides the machine's
/// one: an opaque directory in the upper layer, as overlayfs itself makes them.
fn opaque_dir(paths: &HostPaths, path: &str) -> Result<()> {
    let target = layout::OVERLAY_DIRS
        .iter()
        .filter(|t| Path::new(path).starts_with(t))
        .max_by_key(|t| t.len())
        .ok_or_else(|| Error::Invalid(format!("{path} is in no overlay")))?;
    let rel = Path::new(path)
        .strip_prefix(target)
        .unwrap_or(Path::new(""));
    let dir = paths.upper(target).join(rel);
    mkdir(&dir, 0o755)?;
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    let rc = unsafe {
        libc::setxattr(
            c.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            b"y".as_ptr().cast(),
            1,
            0,
        )
    };
    if rc != 0 {
        return Err(Error::io(
            "make opaque",
            &dir,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Everything of a host that lives in the testbed directory, before its first boot.
pub fn prepare(dir: &Path, state: &TestbedState, host: &HostState) -> Result<()> {
    let paths = HostPaths::new(dir, &host.name);
    mkdir(&paths.root, 0o700)?;
    for t in layout::OVERLAY_DIRS {
        make_upper(&paths.upper(t), t)?;
        mkdir(&paths.work(t), 0o755)?;
    }
    for d in layout::FRESH_PACKAGE_DIRS {
        opaque_dir(&paths, d)?;
    }
    for d in layout::DISK_DIRS {
        let disk = paths.disk(d);
        std::fs::create_dir_all(&disk).map_err(|e| Error::io("create", &disk, e))?;
    }
    let ctl = paths.ctl();
    mkdir(&ctl, 0o755)?;
    mkdir(&ctl.join(layout::ctl::FAULTS), 0o755)?;
    mkdir(&ctl.join(layout::ctl::UNITS), 0o755)?;
    let config = HostConfig {
        name: host.name.clone(),
        address: host.address.clone(),
        os: state.os_of(host).as_str().to_string(),
        time_scale: state.time_scale,
        peers: state.hosts.iter().map(|h| h.address.clone()).collect(),
        real_kubernetes: state.real_kubernetes.clone(),
        cri_client: state.cri_client.clone(),
    };
    crate::state::write_json(&ctl.join(layout::ctl::HOST_CONFIG), &config)?;
    // Every user of the host appends to the audit log (stand-ins run as whoever calls).
    let audit = paths.audit_log();
    File::create(&audit).map_err(|e| Error::io("create", &audit, e))?;
    std::fs::set_permissions(&audit, std::fs::Permissions::from_mode(0o666))
        .map_err(|e| Error::io("chmod", &audit, e))?;
    let sim = ctl.join("tb-sim");
    let _ = std::fs::remove_file(&sim);
    std::fs::hard_link(dir.join(SIM_COPY), &sim)
        .map_err(|e| Error::io("hard-link tb-sim to", &sim, e))?;
    Ok(())
}

/// Writes `init.json` and starts the host; returns PID 1's pid once sshd answers.
pub fn boot(dir: &Path, host: &HostState, provision: Option<Provision>) -> Result<i32> {
    let paths = HostPaths::new(dir, &host.name);
    // A boot starts with an empty /run, as tmpfs would be.
    for p in [paths.upper("/run"), paths.work("/run")] {
        if p.exists() {
            std::fs::remove_dir_all(&p).map_err(|e| Error::io("clear", &p, e))?;
        }
    }
    make_upper(&paths.upper("/run"), "/run")?;
    mkdir(&paths.work("/run"), 0o755)?;
    let ctl = paths.ctl();
    for f in [ctl_manager::INIT_PID, ctl_manager::INIT_ERROR] {
        let _ = std::fs::remove_file(ctl.join(f));
    }
    let spec = InitSpec {
        hostname: host.name.clone(),
        overlays: overlays(dir, &host.name),
        ctl: ctl.clone(),
        disks: layout::DISK_DIRS
            .iter()
            .map(|d| (paths.disk(d), d.to_string()))
            .collect(),
        provision,
        resources: host.resources,
    };
    let spec_path = paths.root.join("init.json");
    crate::state::write_json(&spec_path, &spec)?;
    std::fs::set_permissions(&spec_path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io("chmod", &spec_path, e))?;

    let netns_path = Path::new("/run/netns").join(&host.netns);
    let netns = File::open(&netns_path).map_err(|e| Error::io("open", &netns_path, e))?;
    let log_path = paths.root.join("init.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| Error::io("open", &log_path, e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| Error::io("dup", &log_path, e))?;
    let nsfd = netns.as_raw_fd();
    let mut cmd = Command::new(dir.join(SIM_COPY));
    cmd.arg("init")
        .arg(&spec_path)
        .env_clear()
        .env("PATH", distro::ROOT_PATH)
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    // SAFETY: only async-signal-safe syscalls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Its own session, so a Ctrl-C meant for `testbed` doesn't power hosts off.
            libc::setsid();
            if libc::setns(nsfd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status = cmd.status().map_err(|source| Error::Spawn {
        command: crate::cmd::display(&cmd),
        source,
    })?;
    drop(netns);
    if !status.success() {
        return Err(Error::host(&host.name, boot_failure(&paths, &log_path)));
    }
    let pid_path = ctl.join(ctl_manager::INIT_PID);
    let pid: i32 = std::fs::read_to_string(&pid_path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| {
            Error::host(
                &host.name,
                format!("{} missing after init", pid_path.display()),
            )
        })?;
    wait_ready(host, pid, &paths, &log_path)?;
    Ok(pid)
}

fn boot_failure(paths: &HostPaths, log: &Path) -> String {
    if let Ok(e) = std::fs::read_to_string(paths.ctl().join(ctl_manager::INIT_ERROR)) {
        return format!("did not boot: {} (log: {})", e.trim(), log.display());
    }
    let tail = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = tail.lines().rev().take(5).collect();
    format!(
        "did not boot; last lines of {}:\n{}",
        log.display(),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    )
}

/// Waits until the host's sshd listens on port 22, failing early if the host died. Read
/// from the host's own /proc/net/tcp rather than by connecting, so the probe costs sshd
/// nothing and leaves no "connection reset" lines in its log.
fn wait_ready(host: &HostState, pid: i32, paths: &HostPaths, log: &Path) -> Result<()> {
    let start = Instant::now();
    loop {
        if paths.ctl().join(ctl_manager::INIT_ERROR).exists() || !procs::alive(pid) {
            return Err(Error::host(&host.name, boot_failure(paths, log)));
        }
        if listening_on_22(pid) {
            return Ok(());
        }
        if start.elapsed() > BOOT_TIMEOUT {
            return Err(Error::host(
                &host.name,
                format!(
                    "sshd did not listen on {}:22 within {}s; see {}",
                    host.address,
                    BOOT_TIMEOUT.as_secs(),
                    log.display()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether a TCP socket is listening on port 22 in `pid`'s network namespace.
fn listening_on_22(pid: i32) -> bool {
    let Ok(tcp) = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")) else {
        return false;
    };
    tcp.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // local_address is HEXIP:HEXPORT; state 0A is LISTEN.
        f.len() > 3 && f[1].ends_with(":0016") && f[3] == "0A"
    })
}

/// PID 1 of a running host, from `ctl/init.pid` (the control directory, not testbed.json,
/// is the truth: several `testbed` processes may stop and start hosts at the same time).
/// Checked against the process's command line, so a reused pid is not taken for it.
pub fn pid1(dir: &Path, host: &HostState) -> Option<i32> {
    let paths = HostPaths::new(dir, &host.name);
    let pid: i32 = std::fs::read_to_string(paths.ctl().join(ctl_manager::INIT_PID))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let spec = paths.root.join("init.json");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let ours = String::from_utf8_lossy(&cmdline).contains(&*spec.to_string_lossy());
    (ours && procs::alive(pid)).then_some(pid)
}

/// Powers a host off: every process dies, the cable is pulled. Its disk (the overlay
/// uppers except /run) stays.
pub fn power_off(dir: &Path, state: &TestbedState, host: &HostState) -> Result<()> {
    if let Some(pid) = pid1(dir, host) {
        // PID 1 of the host's PID namespace: the kernel kills every process in it, and
        // PID 1 itself lingers (already out of the netns) until they are all reaped.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let start = Instant::now();
        while procs::alive(pid) {
            if start.elapsed() > Duration::from_secs(10) {
                return Err(Error::host(
                    &host.name,
                    format!("PID 1 ({pid}) survived SIGKILL for 10s"),
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    if let Some(ino) = net::netns_inode(state.subnet, &host.name) {
        let left = procs::kill_all(ino, Duration::from_secs(10));
        if !left.is_empty() {
            return Err(Error::host(
                &host.name,
                format!("processes {left:?} survived SIGKILL for 10s"),
            ));
        }
    }
    let _ = std::fs::remove_file(
        HostPaths::new(dir, &host.name)
            .ctl()
            .join(ctl_manager::INIT_PID),
    );
    Ok(())
}

/// `nsenter` into a running host as root, with the environment of a root login.
pub fn enter(dir: &Path, host: &HostState, argv: &[&str]) -> Result<Command> {
    let pid = running_pid(dir, host)?;
    let mut cmd = Command::new("nsenter");
    cmd.arg("-t")
        .arg(pid.to_string())
        .args(["-m", "-u", "-n", "-p", "-r", "--wd=/root", "--"])
        .args(argv)
        .env_clear()
        .env("PATH", distro::ROOT_PATH)
        .env("HOME", "/root")
        .env("USER", "root")
        .env("LOGNAME", "root")
        .env("SHELL", "/bin/bash")
        .env("LANG", "C.UTF-8");
    if let Ok(term) = std::env::var("TERM") {
        cmd.env("TERM", term);
    }
    Ok(cmd)
}

/// PID 1 of a running host, or why there is none.
pub fn running_pid(dir: &Path, host: &HostState) -> Result<i32> {
    pid1(dir, host).ok_or_else(|| {
        Error::host(
            &host.name,
            "is not running (stopped, or its first process died): `testbed start` boots it",
        )
    })
}

/// A path inside a running host, as seen from the root namespace.
pub fn inside(dir: &Path, host: &HostState, path: &str) -> Result<PathBuf> {
    let pid = running_pid(dir, host)?;
    Ok(PathBuf::from(format!("/proc/{pid}/root")).join(path.trim_start_matches('/')))
}

/// The listening sshd of a running host (PID 1's sshd child).
pub fn sshd_pid(dir: &Path, host: &HostState) -> Result<i32> {
    let pid = running_pid(dir, host)?;
    procs::children(pid)
        .into_iter()
        .find(|c| procs::comm(*c) == "sshd")
        .ok_or_else(|| Error::host(&host.name, "has no running sshd"))
}

/// Deletes a powered-off host's directory.
pub fn remove_files(dir: &Path, host: &HostState) -> Result<()> {
    let root = HostPaths::new(dir, &host.name).root;
    match std::fs::remove_dir_all(&root) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", root, e)),
        _ => Ok(()),
    }
}

/// Reads a file of a host that is not running, from its overlay layers: the upper layer
/// if the file is there, nothing if it was deleted (a whiteout, or an opaque directory
/// above it), else the lower layer. Symlinks are followed as the machine sees them.
pub fn read_offline(dir: &Path, host: &HostState, path: &str) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileTypeExt;
    let not_found = || std::io::Error::new(std::io::ErrorKind::NotFound, "deleted in the host");
    let paths = HostPaths::new(dir, &host.name);
    if let Ok(rel) = Path::new(path).strip_prefix(layout::CTL_DIR) {
        return std::fs::read(paths.ctl().join(rel));
    }
    let Some(target) = layout::OVERLAY_DIRS
        .iter()
        .filter(|t| Path::new(path).starts_with(t))
        .max_by_key(|t| t.len())
    else {
        return std::fs::read(path);
    };
    let rel = Path::new(path)
        .strip_prefix(target)
        .unwrap_or(Path::new(""));
    let upper = paths.upper(target);
    let mut lower_visible = true;
    let mut cur = upper.clone();
    for c in rel.components() {
        if is_opaque(&cur) {
            lower_visible = false;
        }
        cur.push(c);
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_char_device() && m.rdev() == 0 => return Err(not_found()),
            _ => {}
        }
    }
    if cur.exists() {
        return std::fs::read(&cur);
    }
    if !lower_visible {
        return Err(not_found());
    }
    std::fs::read(lower_dir(dir, target).join(rel))
}

/// Whether an upper-layer directory hides the lower layer's entries (overlayfs marks a
/// directory that replaced a deleted one with the `trusted.overlay.opaque` xattr).
fn is_opaque(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    let mut v = [0u8; 1];
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            v.as_mut_ptr().cast(),
            1,
        )
    };
    n == 1 && v[0] == b'y'
}
