//! `systemctl` and the simulated service manager behind it.
//!
//! A unit exists only while the package that ships it is unpacked (see [`UNITS`]).
//! "Enabled" is the real symlink in `/etc/systemd/system/*.target.wants/`, "masked" the
//! real `/etc/systemd/system/UNIT -> /dev/null` link, so tools that look at those paths
//! see what they would see on Ubuntu.
//!
//! Starting a service spawns a small supervisor (`tb-sim daemon UNIT` with
//! `TB_SUPERVISE` set) that plays systemd's part for that one unit: it runs
//! `tb-sim daemon UNIT` (the daemon proper, stdio to `ctl/units/UNIT.log`, pid in
//! `ctl/units/UNIT.pid`), records how it exited in `UNIT.exit` and restarts it after
//! `RestartSec` (scaled) like `Restart=always`, until the unit's start limit is hit.
//! Type=notify units (containerd, docker) count as started once their daemon writes
//! `running` to `ctl/units/UNIT.state`; the kubelet (Type=simple) is "activating" until
//! its daemon writes `running` there (it writes `waiting` while it has no config, which is
//! how the real kubelet's crash loop looks from `systemctl is-active`).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testbed::layout;

use crate::common::{self, Ctx};

/// A unit some package ships.
pub struct UnitDef {
    /// Full unit name, e.g. "kubelet.service".
    pub name: &'static str,
    /// The package whose installation brings the unit file.
    pub package: &'static str,
    /// Whether a daemon process backs the unit (false for docker.socket).
    pub daemon: bool,
    /// `Type=notify`: `systemctl start` waits until the daemon reports ready.
    pub notify: bool,
    /// `RestartSec=` of the packaged unit file.
    pub restart_sec: f64,
    /// `StartLimitBurst=` and `StartLimitIntervalSec=` of the unit.
    pub start_limit: (u32, f64),
    /// Whether the unit has an `ExecReload=`.
    pub reload: bool,
    /// The target whose `.wants` directory `enable` links into.
    pub wanted_by: &'static str,
    /// Units started along with this one (`Requires=`/`Wants=`), in start order.
    pub pulls: &'static [&'static str],
    /// `Description=` of the unit file, shown by `systemctl status`.
    pub description: &'static str,
}

/// The units of the simulation. Values are those of the packaged unit files.
pub const UNITS: &[UnitDef] = &[
    UnitDef {
        name: "containerd.service",
        package: "containerd",
        daemon: true,
        notify: true,
        restart_sec: 5.0,
        start_limit: (5, 10.0),
        reload: false,
        wanted_by: "multi-user.target",
        pulls: &[],
        description: "containerd container runtime",
    },
    UnitDef {
        name: "docker.socket",
        package: "docker.io",
        daemon: false,
        notify: false,
        restart_sec: 0.0,
        start_limit: (5, 10.0),
        reload: false,
        wanted_by: "sockets.target",
        pulls: &[],
        description: "Docker Socket for the API",
    },
    UnitDef {
        name: "docker.service",
        package: "docker.io",
        daemon: true,
        notify: true,
        restart_sec: 2.0,
        start_limit: (3, 60.0),
        reload: true,
        wanted_by: "multi-user.target",
        pulls: &["containerd.service", "docker.socket"],
        description: "Docker Application Container Engine",
    },
    UnitDef {
        name: "kubelet.service",
        package: "kubelet",
        daemon: true,
        notify: false,
        restart_sec: 10.0,
        start_limit: (5, 10.0),
        reload: false,
        wanted_by: "multi-user.target",
        pulls: &[],
        description: "kubelet: The Kubernetes Node Agent",
    },
];

/// Runtime state of the service manager that a reboot wipes (it lives under /run).
const RUN_DIR: &str = "/run/systemd/testbed";

/// "kubelet" -> "kubelet.service"; names with a unit suffix are kept.
pub fn normalize(unit: &str) -> String {
    const SUFFIXES: &[&str] = &[
        ".service",
        ".socket",
        ".target",
        ".timer",
        ".mount",
        ".path",
        ".slice",
        ".scope",
        ".device",
        ".swap",
        ".automount",
    ];
    if SUFFIXES.iter().any(|s| unit.ends_with(s)) {
        unit.to_string()
    } else {
        format!("{unit}.service")
    }
}

/// "kubelet.service" -> "kubelet": the name daemons, pid files and logs use.
pub fn base(unit: &str) -> &str {
    unit.strip_suffix(".service").unwrap_or(unit)
}

/// The unit's definition, if its package is unpacked on this host.
pub fn find(unit: &str) -> Option<&'static UnitDef> {
    let full = normalize(unit);
    let def = UNITS.iter().find(|d| d.name == full)?;
    let db = common::dpkg_db();
    db.get(def.package)
        .filter(|p| p.status.starts_with('i'))
        .map(|_| def)
}

/// Where the package put the unit file (Ubuntu 24.04 ships units in /usr/lib, 22.04 and
/// Debian 12 in /lib). Only used as a symlink target.
fn unit_file(def: &UnitDef) -> String {
    let os = Ctx::load("systemctl").config.os;
    if def.package.starts_with("kube") || os == "ubuntu-24.04" {
        format!("/usr/lib/systemd/system/{}", def.name)
    } else {
        format!("/lib/systemd/system/{}", def.name)
    }
}

fn wants_link(def: &UnitDef) -> PathBuf {
    PathBuf::from(format!(
        "/etc/systemd/system/{}.wants/{}",
        def.wanted_by, def.name
    ))
}

fn mask_link(unit: &str) -> PathBuf {
    PathBuf::from(format!("/etc/systemd/system/{unit}"))
}

pub fn is_enabled(def: &UnitDef) -> bool {
    std::fs::symlink_metadata(wants_link(def)).is_ok()
}

pub fn is_masked(unit: &str) -> bool {
    std::fs::read_link(mask_link(unit))
        .map(|t| t == Path::new("/dev/null"))
        .unwrap_or(false)
}

fn units_file(name: &str) -> PathBuf {
    common::ctl_path(layout::ctl::UNITS).join(name)
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn alive(pid: i32) -> bool {
    // A zombie still answers kill(0); its cmdline is empty, so check that too.
    let exists = unsafe { libc::kill(pid, 0) == 0 };
    exists
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| !c.is_empty())
            .unwrap_or(false)
}

/// Whether `pid` is a live `tb-sim daemon UNIT` process (a stale pid file from before a
/// host restart may name an unrelated process).
fn is_ours(pid: i32, b: &str) -> bool {
    alive(pid)
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| {
                let c = String::from_utf8_lossy(&c);
                c.contains("tb-sim") && c.contains(b)
            })
            .unwrap_or(false)
}

fn supervisor_pid(b: &str) -> Option<i32> {
    read_pid(&units_file(&format!("{b}.supervisor.pid"))).filter(|p| is_ours(*p, b))
}

/// Kills every simulated process that has a pid file in `ctl/units` (units and the
/// static-pod processes the kubelet runs): what powering off does.
pub fn kill_all() {
    let Ok(rd) = std::fs::read_dir(common::ctl_path(layout::ctl::UNITS)) else {
        return;
    };
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = n.strip_suffix(".pid") else {
            continue;
        };
        let b = stem.strip_suffix(".supervisor").unwrap_or(stem);
        if let Some(pid) = read_pid(&e.path()).filter(|p| is_ours(*p, b)) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// What the daemon last reported in `ctl/units/UNIT.state` ("waiting", "running").
pub fn daemon_state(b: &str) -> String {
    std::fs::read_to_string(units_file(&format!("{b}.state")))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// systemd's ActiveState.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Active {
    Active,
    Activating,
    Inactive,
    Failed,
}

impl Active {
    pub fn as_str(self) -> &'static str {
        match self {
            Active::Active => "active",
            Active::Activating => "activating",
            Active::Inactive => "inactive",
            Active::Failed => "failed",
        }
    }
}

/// The unit's current ActiveState.
pub fn active_state(def: &UnitDef) -> Active {
    let b = base(def.name);
    if !def.daemon {
        return if Path::new(RUN_DIR).join(def.name).exists() {
            Active::Active
        } else {
            Active::Inactive
        };
    }
    if common::unit_pid(b).is_some() {
        return if daemon_state(b) == "running" {
            Active::Active
        } else {
            Active::Activating
        };
    }
    if supervisor_pid(b).is_some() {
        // Between a crash and the next restart: "activating (auto-restart)".
        return Active::Activating;
    }
    if units_file(&format!("{b}.exit")).exists() {
        Active::Failed
    } else {
        Active::Inactive
    }
}

/// Versions of the packages whose unit files systemd last loaded (boot, daemon-reload,
/// or the package's own postinst reload).
fn loaded_path() -> PathBuf {
    Path::new(RUN_DIR).join("loaded.json")
}

fn loaded() -> std::collections::BTreeMap<String, String> {
    std::fs::read_to_string(loaded_path())
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

fn save_loaded(m: &std::collections::BTreeMap<String, String>) {
    let _ = common::write_atomic(
        &loaded_path(),
        serde_json::to_string_pretty(m).unwrap().as_bytes(),
    );
}

/// Records that systemd has (re)loaded `def`'s unit file as shipped by the installed
/// package (what `daemon-reload` does for every unit).
pub fn mark_loaded(def: &UnitDef) {
    let mut m = loaded();
    if let Some(v) = common::installed_version(def.package) {
        m.insert(def.name.to_string(), v);
    } else {
        m.remove(def.name);
    }
    save_loaded(&m);
}

/// True when the package was upgraded since systemd loaded the unit file (real systemd
/// then warns until `systemctl daemon-reload`). A unit never loaded is loaded now.
pub fn unit_file_changed(def: &UnitDef) -> bool {
    let m = loaded();
    match (m.get(def.name), common::installed_version(def.package)) {
        (Some(was), Some(now)) => *was != now,
        (None, Some(_)) => {
            mark_loaded(def);
            false
        }
        _ => false,
    }
}

fn warn_if_changed(def: &UnitDef) {
    if unit_file_changed(def) {
        eprintln!(
            "Warning: The unit file, source configuration file or drop-ins of {} changed on disk. Run 'systemctl daemon-reload' to reload units.",
            def.name
        );
    }
}

/// A failed systemctl operation: exit code and the lines for stderr.
pub type Failure = (i32, String);

fn not_found(verb: &str, unit: &str) -> Failure {
    let what = if verb == "stop" {
        "not loaded"
    } else {
        "not found"
    };
    (5, format!("Failed to {verb} {unit}: Unit {unit} {what}."))
}

fn scale() -> f64 {
    Ctx::load("systemctl").config.time_scale
}

/// Starts `def` (and the units it pulls in) unless it already runs. Returns whether
/// anything was started.
fn start_def(def: &'static UnitDef) -> Result<bool, Failure> {
    if is_masked(def.name) {
        return Err((
            1,
            format!("Failed to start {0}: Unit {0} is masked.", def.name),
        ));
    }
    let mut changed = false;
    for dep in def.pulls {
        if let Some(d) = find(dep) {
            changed |= start_def(d)?;
        }
    }
    warn_if_changed(def);
    if !def.daemon {
        if active_state(def) != Active::Active {
            let _ = common::write_atomic(&Path::new(RUN_DIR).join(def.name), b"active\n");
            return Ok(true);
        }
        return Ok(changed);
    }
    let b = base(def.name);
    if common::unit_pid(b).is_some() || supervisor_pid(b).is_some() {
        return Ok(changed);
    }
    mark_loaded_if_new(def);
    let _ = std::fs::remove_file(units_file(&format!("{b}.exit")));
    let _ = std::fs::remove_file(units_file(&format!("{b}.state")));
    spawn_supervisor(b).map_err(|e| (1, format!("Failed to start {}: {e}", def.name)))?;
    // Wait for the daemon to come up (Type=simple: forked; Type=notify: reported ready).
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let pid = common::unit_pid(b);
        if pid.is_some() && (!def.notify || daemon_state(b) == "running") {
            return Ok(true);
        }
        let exited = units_file(&format!("{b}.exit")).exists();
        if def.notify && exited && pid.is_none() {
            return Err((
                1,
                format!(
                    "Job for {0} failed because the control process exited with error code.\nSee \"systemctl status {0}\" and \"journalctl -xeu {0}\" for details.",
                    def.name
                ),
            ));
        }
        if !def.notify && exited {
            // Simple units count as started even if the daemon dies at once.
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Err((
                1,
                format!(
                    "Job for {0} failed because a timeout was exceeded.\nSee \"systemctl status {0}\" and \"journalctl -xeu {0}\" for details.",
                    def.name
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn mark_loaded_if_new(def: &UnitDef) {
    if !loaded().contains_key(def.name) {
        mark_loaded(def);
    }
}

/// Spawns the supervisor through an intermediate process that exits at once, so the
/// supervisor is nobody's child (no zombie in a long-running caller such as kubeadm).
fn spawn_supervisor(b: &str) -> std::io::Result<()> {
    let mut cmd = Command::new(layout::SIM_BIN);
    cmd.args(["daemon", b])
        .env("TB_SUPERVISE", b)
        .env_remove("TB_SUPERVISE_DETACHED")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let status = cmd.status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other("supervisor failed to start"))
    }
}

/// `tb-sim daemon UNIT` with `TB_SUPERVISE=UNIT`: systemd's part for one unit.
pub fn supervise(_args: &[String]) -> i32 {
    let b = std::env::var("TB_SUPERVISE").unwrap_or_default();
    if std::env::var_os("TB_SUPERVISE_DETACHED").is_none() {
        // Stage 1: new session, respawn detached, return at once.
        unsafe { libc::setsid() };
        let mut cmd = Command::new(layout::SIM_BIN);
        cmd.args(["daemon", &b])
            .env("TB_SUPERVISE", &b)
            .env("TB_SUPERVISE_DETACHED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        return match cmd.spawn() {
            Ok(child) => {
                let _ = common::write_atomic(
                    &units_file(&format!("{b}.supervisor.pid")),
                    format!("{}\n", child.id()).as_bytes(),
                );
                0
            }
            Err(_) => 1,
        };
    }
    let Some(def) = UNITS.iter().find(|d| base(d.name) == b) else {
        return 2;
    };
    let (burst, interval) = def.start_limit;
    // Restarts hit the start limit only if `burst` of them fit in the interval.
    let limited = f64::from(burst) * def.restart_sec <= interval;
    let mut failures = 0;
    loop {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(units_file(&format!("{b}.log")));
        let mut cmd = Command::new(layout::SIM_BIN);
        cmd.args(["daemon", &b])
            .env_remove("TB_SUPERVISE")
            .env_remove("TB_SUPERVISE_DETACHED")
            .stdin(Stdio::null());
        if let Ok(log) = log {
            if let Ok(l2) = log.try_clone() {
                cmd.stdout(l2);
            }
            cmd.stderr(log);
        }
        // SAFETY: setpgid is async-signal-safe. A process group of its own lets a stop
        // signal the daemon without touching the supervisor.
        unsafe {
            cmd.pre_exec(|| {
                libc::setpgid(0, 0);
                Ok(())
            });
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(_) => return 1,
        };
        let _ = common::write_atomic(
            &units_file(&format!("{b}.pid")),
            format!("{}\n", child.id()).as_bytes(),
        );
        let status = child.wait();
        let desc = match status {
            Ok(s) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
                (Some(c), _) => format!(
                    "code=exited, status={c}/{}",
                    if c == 0 { "SUCCESS" } else { "FAILURE" }
                ),
                (None, Some(sig)) => format!("code=killed, signal={sig}"),
                _ => "code=exited, status=1/FAILURE".into(),
            },
            Err(_) => "code=exited, status=1/FAILURE".into(),
        };
        let _ = common::write_atomic(&units_file(&format!("{b}.exit")), desc.as_bytes());
        failures += 1;
        if limited && failures >= burst {
            let _ = std::fs::remove_file(units_file(&format!("{b}.supervisor.pid")));
            return 0;
        }
        let delay = (def.restart_sec * scale()).max(0.2);
        std::thread::sleep(Duration::from_secs_f64(delay));
    }
}

/// Stops `def`: the supervisor first (no more restarts), then SIGTERM to the daemon,
/// SIGKILL after 10 s like systemd's default TimeoutStopSec (90 s) would, scaled down.
fn stop_def(def: &UnitDef) -> bool {
    let b = base(def.name);
    if !def.daemon {
        return std::fs::remove_file(Path::new(RUN_DIR).join(def.name)).is_ok();
    }
    let mut changed = false;
    if let Some(sp) = supervisor_pid(b) {
        unsafe { libc::kill(sp, libc::SIGKILL) };
        changed = true;
    }
    let _ = std::fs::remove_file(units_file(&format!("{b}.supervisor.pid")));
    if let Some(pid) = common::unit_pid(b) {
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if alive(pid) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        changed = true;
    }
    for f in ["pid", "state", "exit"] {
        let _ = std::fs::remove_file(units_file(&format!("{b}.{f}")));
    }
    changed
}

fn lookup_or(verb: &str, unit: &str) -> Result<&'static UnitDef, Failure> {
    find(unit).ok_or_else(|| not_found(verb, &normalize(unit)))
}

/// What `systemctl start UNIT` does, without an audit record.
pub fn start_unit(unit: &str) -> Result<(), String> {
    let def = lookup_or("start", unit).map_err(|f| f.1)?;
    start_def(def).map(|_| ()).map_err(|f| f.1)
}

fn restart_def(def: &'static UnitDef) -> Result<(), Failure> {
    if is_masked(def.name) {
        return Err((
            1,
            format!("Failed to restart {0}: Unit {0} is masked.", def.name),
        ));
    }
    stop_def(def);
    start_def(def).map(|_| ())
}

/// Enables `def` (creates the `.wants` symlink). Returns the message lines printed.
fn enable_def(def: &UnitDef, quiet: bool) -> Result<bool, Failure> {
    if is_masked(def.name) {
        return Err((
            1,
            format!("Failed to enable unit: Unit file {} is masked.", def.name),
        ));
    }
    let mut changed = false;
    let mut defs = vec![def];
    if def.name == "docker.service" {
        // docker.service: `Also=docker.socket`.
        defs.extend(find("docker.socket"));
    }
    for d in defs {
        if is_enabled(d) {
            continue;
        }
        let link = wants_link(d);
        let target = unit_file(d);
        if let Some(dir) = link.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::os::unix::fs::symlink(&target, &link).map_err(|e| {
            (
                1,
                format!("Failed to enable unit: {}", std::io::Error::from(e.kind())),
            )
        })?;
        if !quiet {
            eprintln!("Created symlink {} → {target}.", link.display());
        }
        changed = true;
    }
    Ok(changed)
}

fn removed_msg(path: &Path) -> String {
    if Ctx::load("systemctl").config.os == "ubuntu-22.04" {
        format!("Removed {}.", path.display())
    } else {
        format!("Removed \"{}\".", path.display())
    }
}

fn disable_def(def: &UnitDef, quiet: bool) -> bool {
    let mut defs = vec![def];
    if def.name == "docker.service" {
        defs.extend(find("docker.socket"));
    }
    let mut changed = false;
    for d in defs {
        let link = wants_link(d);
        if std::fs::remove_file(&link).is_ok() {
            if !quiet {
                eprintln!("{}", removed_msg(&link));
            }
            changed = true;
        }
    }
    changed
}

/// Starts every enabled unit, in dependency order: what the boot does.
pub fn start_enabled() {
    for def in UNITS {
        if find(def.name).is_some() && is_enabled(def) && !is_masked(def.name) {
            let _ = start_def(def);
        }
    }
}

/// Forgets all runtime state of the service manager (a reboot empties /run and kills
/// every process).
pub fn reset_runtime() {
    if let Ok(rd) = std::fs::read_dir(common::ctl_path(layout::ctl::UNITS)) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.ends_with(".pid") || n.ends_with(".state") || n.ends_with(".exit") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let _ = std::fs::remove_dir_all(RUN_DIR);
    let mut m = std::collections::BTreeMap::new();
    for def in UNITS {
        if let Some(v) = common::installed_version(def.package) {
            m.insert(def.name.to_string(), v);
        }
    }
    save_loaded(&m);
}

/// Stops every running unit (shutdown half of a reboot), kubelet first.
pub fn stop_all() {
    for def in UNITS.iter().rev() {
        stop_def(def);
    }
}

/// Called by the package stand-ins: a distro package's postinst runs `daemon-reload`
/// (debhelper), so its units never warn; pkgs.k8s.io packages don't.
pub fn package_reloaded(package: &str) {
    for def in UNITS.iter().filter(|d| d.package == package) {
        mark_loaded(def);
    }
}

/// Called when a package is removed: its services stop and are forgotten.
pub fn package_removed(package: &str) {
    for def in UNITS.iter().filter(|d| d.package == package) {
        stop_def(def);
    }
}

/// Called by a package's postinst: enable only (what a systemd preset does).
pub fn package_enable(unit: &str) {
    if let Some(def) = find(unit) {
        let _ = enable_def(def, true);
    }
}

/// Called by a package's postinst: `deb-systemd-helper enable` + `deb-systemd-invoke start`.
pub fn package_enable_start(unit: &str) {
    if let Some(def) = find(unit) {
        let _ = enable_def(def, true);
        if !is_masked(def.name) {
            let _ = start_def(def);
        }
    }
}

const ROOT_VERBS: &[&str] = &[
    "start",
    "stop",
    "restart",
    "reload",
    "enable",
    "disable",
    "daemon-reload",
    "mask",
    "unmask",
    "try-restart",
    "reload-or-restart",
];

/// `systemctl VERB [--now] [-q] UNIT...`
pub fn systemctl(ctx: &mut Ctx, args: &[String]) -> i32 {
    let mut now = false;
    let mut quiet = false;
    let (mut legend, mut plain, mut all) = (true, false, false);
    // `--type=service,socket`: the unit types the list verbs show (all when empty).
    let mut types: Vec<String> = Vec::new();
    let mut rest: Vec<&str> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--now" => now = true,
            "-q" | "--quiet" => quiet = true,
            "-p" | "--property" => {
                it.next();
            }
            "--no-pager" | "--no-block" | "--system" | "-l" | "--full" | "--value" => {}
            "--no-legend" => legend = false,
            "--plain" => plain = true,
            "-a" | "--all" => all = true,
            s if s.starts_with("--type=") => {
                types = s["--type=".len()..].split(',').map(String::from).collect();
            }
            s if s.starts_with("--property=") => {}
            s if s.starts_with('-') => {
                eprintln!("systemctl: unrecognized option '{s}'");
                return 1;
            }
            s => rest.push(s),
        }
    }
    let Some((&verb, units)) = rest.split_first() else {
        // Bare `systemctl` is `systemctl list-units`.
        return list_units(legend, plain, all, &types);
    };
    if ROOT_VERBS.contains(&verb) && !common::is_root() {
        return denied(verb, units);
    }
    let needs_unit = !matches!(
        verb,
        "daemon-reload" | "list-units" | "list-unit-files" | "is-system-running"
    );
    if needs_unit && units.is_empty() {
        eprintln!("Too few arguments.");
        return 1;
    }
    match verb {
        "start" | "restart" | "try-restart" | "reload-or-restart" => {
            let mut code = 0;
            for u in units {
                let def = match lookup_or(if verb == "start" { "start" } else { "restart" }, u) {
                    Ok(d) => d,
                    Err((c, m)) => {
                        eprintln!("{m}");
                        code = c;
                        continue;
                    }
                };
                let r = match verb {
                    "start" => start_def(def),
                    "try-restart" if active_state(def) == Active::Inactive => Ok(false),
                    _ => restart_def(def).map(|_| true),
                };
                match r {
                    Ok(c) => {
                        if c {
                            // Stopping and starting a daemon takes about a second.
                            ctx.take_time(1.0);
                            ctx.changed()
                        }
                    }
                    Err((c, m)) => {
                        eprintln!("{m}");
                        code = c;
                    }
                }
            }
            code
        }
        "stop" => {
            let mut code = 0;
            for u in units {
                match lookup_or("stop", u) {
                    Ok(def) => {
                        warn_if_changed(def);
                        if stop_def(def) {
                            ctx.changed();
                        }
                        if def.name == "docker.service" {
                            if let Some(s) = find("docker.socket") {
                                if active_state(s) == Active::Active {
                                    eprintln!("Stopping 'docker.service', but its triggering units are still active:\ndocker.socket");
                                }
                            }
                        }
                    }
                    Err((c, m)) => {
                        eprintln!("{m}");
                        code = c;
                    }
                }
            }
            code
        }
        "reload" => {
            let mut code = 0;
            for u in units {
                match lookup_or("reload", u) {
                    Ok(def) if def.reload => {
                        if active_state(def) != Active::Active {
                            eprintln!("Failed to reload {0}: Unit {0} is not active.", def.name);
                            code = 1;
                        }
                    }
                    Ok(def) => {
                        eprintln!(
                            "Failed to reload {0}: Job type reload is not applicable for unit {0}.",
                            def.name
                        );
                        code = 1;
                    }
                    Err((c, m)) => {
                        eprintln!("{m}");
                        code = c;
                    }
                }
            }
            code
        }
        "enable" | "disable" => {
            let mut code = 0;
            for u in units {
                let Some(def) = find(u) else {
                    eprintln!(
                        "Failed to {verb} unit: Unit file {} does not exist.",
                        normalize(u)
                    );
                    code = 1;
                    continue;
                };
                if verb == "enable" {
                    match enable_def(def, quiet) {
                        Ok(c) => {
                            if c {
                                ctx.changed()
                            }
                        }
                        Err((c, m)) => {
                            eprintln!("{m}");
                            code = c;
                            continue;
                        }
                    }
                    if now {
                        match start_def(def) {
                            Ok(c) => {
                                if c {
                                    ctx.changed()
                                }
                            }
                            Err((c, m)) => {
                                eprintln!("{m}");
                                code = c;
                            }
                        }
                    }
                } else {
                    if disable_def(def, quiet) {
                        ctx.changed();
                    }
                    if now && stop_def(def) {
                        ctx.changed();
                    }
                }
            }
            code
        }
        "mask" | "unmask" => {
            let mut code = 0;
            for u in units {
                let full = normalize(u);
                let link = mask_link(&full);
                if verb == "mask" {
                    if is_masked(&full) {
                        continue;
                    }
                    let _ = std::fs::create_dir_all("/etc/systemd/system");
                    match std::os::unix::fs::symlink("/dev/null", &link) {
                        Ok(()) => {
                            if !quiet {
                                eprintln!("Created symlink {} → /dev/null.", link.display());
                            }
                            ctx.changed();
                        }
                        Err(e) => {
                            eprintln!("Failed to mask unit: {e}");
                            code = 1;
                        }
                    }
                    if now {
                        if let Some(def) = find(&full) {
                            if stop_def(def) {
                                ctx.changed();
                            }
                        }
                    }
                } else if is_masked(&full) {
                    let _ = std::fs::remove_file(&link);
                    if !quiet {
                        eprintln!("{}", removed_msg(&link));
                    }
                    ctx.changed();
                }
            }
            code
        }
        "daemon-reload" => {
            for def in UNITS {
                if find(def.name).is_some() && unit_file_changed(def) {
                    ctx.changed();
                }
                mark_loaded(def);
            }
            0
        }
        "is-active" | "is-failed" => {
            let mut any = false;
            let mut missing = false;
            for u in units {
                missing |= find(u).is_none() && !is_masked(&normalize(u));
                let st = find(u).map(active_state).unwrap_or(Active::Inactive);
                if !quiet {
                    println!("{}", st.as_str());
                }
                any |= if verb == "is-active" {
                    st == Active::Active
                } else {
                    st == Active::Failed
                };
            }
            if any {
                0
            } else if missing && new_systemd() {
                // systemd >= 253 (systemd/systemd#25689): "no such unit" is LSB code 4.
                4
            } else if verb == "is-failed" {
                1
            } else {
                3
            }
        }
        "is-enabled" => {
            let mut any = false;
            let mut code = 1;
            for u in units {
                let full = normalize(u);
                if is_masked(&full) {
                    if !quiet {
                        println!("masked");
                    }
                    continue;
                }
                let Some(def) = find(u) else {
                    if new_systemd() {
                        if !quiet {
                            println!("not-found");
                        }
                        code = 4;
                    } else {
                        eprintln!(
                            "Failed to get unit file state for {full}: No such file or directory"
                        );
                    }
                    continue;
                };
                let en = is_enabled(def);
                if !quiet {
                    println!("{}", if en { "enabled" } else { "disabled" });
                }
                any |= en;
            }
            if any {
                code = 0;
            }
            code
        }
        "status" => status(units),
        "show" => show(args, units),
        "list-unit-files" => list_unit_files(legend, &types),
        "list-units" => list_units(legend, plain, all, &types),
        "is-system-running" => {
            println!("running");
            0
        }
        _ => {
            eprintln!("Unknown command verb '{verb}'.");
            1
        }
    }
}

/// Ubuntu 24.04 ships systemd 255; 22.04 has 249 and Debian 12 has 252, from before
/// systemctl's is-* verbs learnt "not-found" and exit code 4 (systemd/systemd#25689).
fn new_systemd() -> bool {
    Ctx::load("systemctl").config.os == "ubuntu-24.04"
}

fn denied(verb: &str, units: &[&str]) -> i32 {
    match verb {
        "enable" | "disable" | "mask" | "unmask" => {
            eprintln!("Failed to {verb} unit: Interactive authentication required.");
            1
        }
        "daemon-reload" => {
            eprintln!("Failed to reload daemon: Interactive authentication required.");
            1
        }
        _ => {
            let u = normalize(units.first().copied().unwrap_or(""));
            eprintln!(
                "Failed to {verb} {u}: Interactive authentication required.\nSee system logs and 'systemctl status {u}' for details."
            );
            4
        }
    }
}

/// `systemctl show [-p PROP[,PROP]] [--value] UNIT...` for the properties tools probe.
fn show(args: &[String], units: &[&str]) -> i32 {
    let mut props: Vec<String> = Vec::new();
    let mut value_only = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "-p" || a == "--property" {
            if let Some(p) = it.next() {
                props.extend(p.split(',').map(String::from));
            }
        } else if let Some(p) = a.strip_prefix("--property=") {
            props.extend(p.split(',').map(String::from));
        } else if a == "--value" {
            value_only = true;
        }
    }
    for u in units {
        let full = normalize(u);
        let def = find(u);
        let b = base(&full).to_string();
        let active = def.map(active_state).unwrap_or(Active::Inactive);
        let sub = sub_state(&b, active);
        let all: Vec<(&str, String)> = vec![
            ("Id", full.clone()),
            (
                "LoadState",
                if is_masked(&full) {
                    "masked".into()
                } else if def.is_some() {
                    "loaded".into()
                } else {
                    "not-found".into()
                },
            ),
            ("ActiveState", active.as_str().into()),
            ("SubState", sub.into()),
            (
                "UnitFileState",
                match def {
                    _ if is_masked(&full) => "masked".into(),
                    Some(d) if is_enabled(d) => "enabled".into(),
                    Some(_) => "disabled".into(),
                    None => String::new(),
                },
            ),
            ("MainPID", common::unit_pid(&b).unwrap_or(0).to_string()),
            (
                "NeedDaemonReload",
                if def.is_some_and(unit_file_changed) {
                    "yes".into()
                } else {
                    "no".into()
                },
            ),
        ];
        for (k, v) in all {
            if !props.is_empty() && !props.iter().any(|p| p == k) {
                continue;
            }
            if value_only {
                println!("{v}");
            } else {
                println!("{k}={v}");
            }
        }
    }
    0
}

/// systemd's SubState of a service in `active` state (`b`: its base name).
fn sub_state(b: &str, active: Active) -> &'static str {
    match active {
        Active::Active => "running",
        Active::Activating if common::unit_pid(b).is_none() => "auto-restart",
        Active::Activating => "start",
        Active::Failed => "failed",
        Active::Inactive => "dead",
    }
}

/// The units systemd knows here: those whose package is unpacked, masked ones too, of
/// `types` (`service`, `socket`; every type when empty), sorted by name.
fn known_units(types: &[String]) -> Vec<&'static UnitDef> {
    let mut units: Vec<&UnitDef> = UNITS
        .iter()
        .filter(|d| find(d.name).is_some() || is_masked(d.name))
        .filter(|d| types.is_empty() || types.iter().any(|t| d.name.ends_with(&format!(".{t}"))))
        .collect();
    units.sort_by_key(|d| d.name);
    units
}

/// Rows padded to their columns' widths (systemctl's table), trailing blanks trimmed.
fn columns(rows: &[Vec<String>], indent: &str) -> String {
    let mut width = vec![0; rows.iter().map(Vec::len).max().unwrap_or(0)];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = width[i]))
            .collect();
        out += &format!("{indent}{}\n", line.join(" ").trim_end());
    }
    out
}

/// `systemctl list-unit-files [--no-legend]` (systemctl-list-unit-files.c): UNIT FILE,
/// STATE, PRESET (Ubuntu's and Debian's preset enables everything), then
/// `N unit files listed.`; sorted by name.
fn list_unit_files(legend: bool, types: &[String]) -> i32 {
    let mut rows: Vec<Vec<String>> = Vec::new();
    if legend {
        rows.push(vec!["UNIT FILE".into(), "STATE".into(), "PRESET".into()]);
    }
    let units = known_units(types);
    for d in &units {
        let state = if is_masked(d.name) {
            "masked"
        } else if is_enabled(d) {
            "enabled"
        } else {
            "disabled"
        };
        rows.push(vec![d.name.into(), state.into(), "enabled".into()]);
    }
    print!("{}", columns(&rows, ""));
    if legend {
        println!("\n{} unit files listed.", units.len());
    }
    0
}

/// `systemctl list-units [--all] [--plain] [--no-legend]` (systemctl-list-units.c):
/// UNIT, LOAD, ACTIVE, SUB, DESCRIPTION of the loaded units that are active, or of all
/// loaded ones with `--all`; a column for the failed-unit marker unless `--plain`.
fn list_units(legend: bool, plain: bool, all: bool, types: &[String]) -> i32 {
    let mut rows: Vec<Vec<String>> = Vec::new();
    if legend {
        rows.push(
            ["UNIT", "LOAD", "ACTIVE", "SUB", "DESCRIPTION"]
                .map(String::from)
                .to_vec(),
        );
    }
    let mut listed = 0;
    for d in known_units(types) {
        let (load, active) = if is_masked(d.name) {
            ("masked", Active::Inactive)
        } else {
            ("loaded", active_state(d))
        };
        if !all && active == Active::Inactive {
            continue;
        }
        let sub = sub_state(base(d.name), active);
        rows.push(vec![
            d.name.into(),
            load.into(),
            active.as_str().into(),
            sub.into(),
            d.description.into(),
        ]);
        listed += 1;
    }
    print!("{}", columns(&rows, if plain { "" } else { "  " }));
    if legend {
        println!(
            "\nLegend: LOAD   → Reflects whether the unit definition was properly loaded.\n        \
             ACTIVE → The high-level unit activation state, i.e. generalization of SUB.\n        \
             SUB    → The low-level unit activation state, values depend on unit type.\n\n\
             {listed} loaded units listed.{}",
            if all {
                ""
            } else {
                " Pass --all to see loaded but inactive units, too."
            }
        );
    }
    0
}

/// `systemctl status UNIT...`: the header lines of the real output.
fn status(units: &[&str]) -> i32 {
    let mut code = 0;
    for u in units {
        let full = normalize(u);
        let Some(def) = find(u) else {
            eprintln!("Unit {full} could not be found.");
            code = 4;
            continue;
        };
        warn_if_changed(def);
        let b = base(def.name);
        let st = active_state(def);
        let enabled = if is_masked(def.name) {
            "masked"
        } else if is_enabled(def) {
            "enabled"
        } else {
            "disabled"
        };
        let dot = if st == Active::Active { "●" } else { "○" };
        println!("{dot} {} - {}", def.name, def.description);
        println!(
            "     Loaded: loaded ({}; {enabled}; preset: enabled)",
            unit_file(def)
        );
        let exit = std::fs::read_to_string(units_file(&format!("{b}.exit"))).unwrap_or_default();
        let line = match st {
            Active::Active => "active (running)".to_string(),
            Active::Activating if common::unit_pid(b).is_none() => {
                "activating (auto-restart)".to_string()
            }
            Active::Activating => "activating (start)".to_string(),
            Active::Failed => "failed (Result: exit-code)".to_string(),
            Active::Inactive => "inactive (dead)".to_string(),
        };
        println!("     Active: {line}");
        if let Some(pid) = common::unit_pid(b) {
            println!("   Main PID: {pid} ({b})");
        } else if !exit.is_empty() {
            println!("    Process: ({exit})");
        }
        if st != Active::Active {
            code = 3;
        }
    }
    code
}

/// `journalctl -u UNIT [-n N] [--no-pager] [-q]`: the daemon's output (`ctl/units/UNIT.log`)
/// with journal-style prefixes. Without `-u`, every unit's log.
pub fn journalctl(ctx: &mut Ctx, args: &[String]) -> i32 {
    let mut units: Vec<String> = Vec::new();
    let mut lines: Option<usize> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-u" | "--unit" => {
                if let Some(u) = it.next() {
                    units.push(normalize(u));
                }
            }
            "-n" | "--lines" => lines = it.next().and_then(|n| n.parse().ok()),
            s if s.starts_with("--unit=") => units.push(normalize(&s[7..])),
            s if s.starts_with("--lines=") => lines = s[8..].parse().ok(),
            s if s.starts_with("-n") && s.len() > 2 => lines = s[2..].parse().ok(),
            _ => {}
        }
    }
    if !common::is_root() {
        eprintln!("Hint: You are currently not seeing messages from other users and the system.\n      Users in groups 'adm', 'systemd-journal' can see all messages.\n      Pass -q to turn off this notice.");
        println!("-- No entries --");
        return 0;
    }
    if units.is_empty() {
        units = UNITS.iter().map(|d| d.name.to_string()).collect();
    }
    let host = common::hostname();
    let mut out: Vec<String> = Vec::new();
    for u in &units {
        let b = base(u);
        let text = std::fs::read_to_string(units_file(&format!("{b}.log"))).unwrap_or_default();
        let pid = common::unit_pid(b).unwrap_or(0);
        // Lines carry no time of their own; the log's last change stands in.
        let when = std::fs::metadata(units_file(&format!("{b}.log")))
            .and_then(|m| m.modified())
            .map(journal_time)
            .unwrap_or_default();
        for l in text.lines() {
            out.push(format!("{when} {host} {b}[{pid}]: {l}"));
        }
    }
    let _ = ctx;
    if out.is_empty() {
        println!("-- No entries --");
        return 0;
    }
    let skip = lines.map(|n| out.len().saturating_sub(n)).unwrap_or(0);
    for l in &out[skip..] {
        println!("{l}");
    }
    0
}

/// "Nov 25 17:46:27" in local time, journalctl's short format.
fn journal_time(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as libc::time_t)
        .unwrap_or(0);
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let mut buf = [0u8; 32];
    let fmt = c"%b %d %H:%M:%S";
    // SAFETY: tm and buf are valid for the calls; strftime writes at most buf.len() bytes.
    let n = unsafe {
        libc::localtime_r(&secs, &mut tm);
        libc::strftime(
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
            fmt.as_ptr(),
            &tm,
        )
    };
    String::from_utf8_lossy(&buf[..n]).into_owned()
}
