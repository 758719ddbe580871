//! The host's first process and sshd's forced command. Owned by the host manager.
//!
//! `tb-sim init SPEC` is started by the manager inside the host's network namespace. It
//! makes the rest of the host: a private mount namespace with the overlays and the
//! control-directory bind mount, a UTS namespace with the host name, and a PID namespace
//! whose PID 1 it forks. The outer process then exits; PID 1 provisions the host on its
//! first boot, runs `tb-sim boot`, starts the real OpenSSH server and reaps orphans for
//! as long as the host lives. Killing PID 1 kills every process of the host, which is how
//! the manager powers a host off.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{chown, symlink, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use testbed::distro::{self, Os};
use testbed::layout::{self, ctl_manager, InitSpec, OverlayMount, Provision};

use crate::common;

/// Password of `ubuntu` when the testbed is created with a sudo password (SHA-512 crypt
/// of "ubuntu", made with `openssl passwd -6 -salt tbsalt ubuntu`).
const UBUNTU_PASSWORD_HASH: &str =
    "$6$tbsalt$f6pXyeQteQJDz.HNVFDCvNc.2nh63zDfP6Fvy.lDKw9MwRI3f6lSUX2xx/dd/CIW4fF2h0CDDVmT8qlGvxiAc/";

/// Things a developer machine may have that a fresh server does not, and that would make a
/// tool believe a step was already done. Removed (whited out) at the first boot.
const NOT_ON_A_FRESH_SERVER: &[&str] = &[
    "/etc/modules-load.d/k8s.conf",
    "/etc/sysctl.d/k8s.conf",
    "/etc/sysctl.d/99-kubernetes-cri.conf",
    "/etc/kubernetes",
    "/etc/containerd",
    "/etc/docker",
    "/etc/cni",
    "/etc/default/kubelet",
    "/etc/apt/keyrings/kubernetes-apt-keyring.gpg",
    "/etc/apt/trusted.gpg.d/kubernetes.gpg",
    "/etc/ssh/sshd_config.d",
    "/var/lib/kubelet",
    "/var/lib/etcd",
    "/var/lib/containerd",
    "/var/lib/docker",
    "/var/lib/cni",
    "/usr/bin/kubectl",
    "/usr/bin/kubeadm",
    "/usr/bin/kubelet",
    "/usr/bin/docker",
    "/usr/bin/dockerd",
    "/usr/bin/containerd",
    "/usr/bin/containerd-shim-runc-v2",
    "/usr/bin/ctr",
    "/usr/bin/crictl",
    "/usr/bin/runc",
    "/usr/sbin/runc",
];

/// `tb-sim init SPEC`: sets up the host's mounts and hostname, forks PID 1 (which starts
/// sshd), writes PID 1's pid to `ctl/init.pid` and exits.
pub fn init(args: &[String]) -> i32 {
    let Some(spec_path) = args.first() else {
        eprintln!("usage: tb-sim init SPEC.json");
        return 2;
    };
    let spec: InitSpec = match std::fs::read_to_string(spec_path)
        .map_err(|e| e.to_string())
        .and_then(|s| serde_json::from_str(&s).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tb-sim init: {spec_path}: {e}");
            return 1;
        }
    };
    // The control directory stays reachable through this descriptor whatever gets
    // mounted over the path it was opened by.
    let ctl = match File::open(&spec.ctl) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("tb-sim init: {}: {e}", spec.ctl.display());
            return 1;
        }
    };
    let ctl_path = PathBuf::from(format!("/proc/self/fd/{}", ctl.as_raw_fd()));
    // Opened now: once PID 1 mounts its own /proc, /proc/self no longer names us.
    let mut pid_file = match File::create(ctl_path.join(ctl_manager::INIT_PID)) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("tb-sim init: creating init.pid: {e}");
            return 1;
        }
    };
    match outer(&spec, Path::new(spec_path)) {
        Ok(Some(pid1)) => {
            if let Err(e) = writeln!(pid_file, "{pid1}") {
                eprintln!("tb-sim init: writing init.pid: {e}");
                return 1;
            }
            0
        }
        // PID 1 returns here only if it could not start the host.
        Ok(None) => 1,
        Err(e) => {
            let msg = format!("host {}: {e}", spec.hostname);
            eprintln!("tb-sim init: {msg}");
            let _ = std::fs::write(ctl_path.join(ctl_manager::INIT_ERROR), msg + "\n");
            1
        }
    }
}

/// The part that runs before the fork. Returns PID 1's pid in the parent; in PID 1 it
/// never returns unless the host failed to start.
fn outer(spec: &InitSpec, spec_path: &Path) -> io::Result<Option<i32>> {
    std::env::set_current_dir("/")?;
    check(unsafe { libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWPID) })
        .map_err(|e| ctx("unshare (is this running as root?)", e))?;
    mount(None, "/", None, libc::MS_REC | libc::MS_PRIVATE, None)
        .map_err(|e| ctx("making / private", e))?;
    // Overlays whose target hides the testbed directory (e.g. /tmp when the testbed lives
    // in /tmp) go last, after every layer path has been used.
    let dir = spec_path.parent().unwrap_or(Path::new("/"));
    let hides_dir = |o: &&OverlayMount| dir.starts_with(&o.target);
    for o in spec.overlays.iter().filter(|o| !hides_dir(o)) {
        mount_overlay(o)?;
    }
    std::fs::create_dir_all(layout::CTL_DIR)
        .map_err(|e| ctx(&format!("creating {}", layout::CTL_DIR), e))?;
    mount(
        Some(&spec.ctl.to_string_lossy()),
        layout::CTL_DIR,
        None,
        libc::MS_BIND,
        None,
    )
    .map_err(|e| ctx("bind-mounting the control directory", e))?;
    // The disk directories' sources, opened before an overlay may hide them.
    let disks: Vec<(std::fs::File, &String)> = spec
        .disks
        .iter()
        .map(|(source, target)| {
            std::fs::File::open(source)
                .map(|f| (f, target))
                .map_err(|e| ctx(&format!("opening {}", source.display()), e))
        })
        .collect::<io::Result<_>>()?;
    for o in spec.overlays.iter().filter(hides_dir) {
        mount_overlay(o)?;
    }
    for (source, target) in &disks {
        use std::os::fd::AsRawFd;
        std::fs::create_dir_all(target).map_err(|e| ctx(&format!("creating {target}"), e))?;
        let from = format!("/proc/self/fd/{}", source.as_raw_fd());
        mount(Some(&from), target, None, libc::MS_BIND, None)
            .map_err(|e| ctx(&format!("bind-mounting {target}"), e))?;
    }
    drop(disks);
    check(unsafe { libc::sethostname(spec.hostname.as_ptr().cast(), spec.hostname.len()) })
        .map_err(|e| ctx("sethostname", e))?;
    let _ = io::stderr().flush();
    match unsafe { libc::fork() } {
        -1 => Err(ctx("fork", io::Error::last_os_error())),
        0 => {
            let code = match pid1(spec) {
                Ok(never) => match never {},
                Err(e) => {
                    let msg = format!("host {}: {e}", spec.hostname);
                    eprintln!("tb-sim init: {msg}");
                    let _ = std::fs::write(
                        Path::new(layout::CTL_DIR).join(ctl_manager::INIT_ERROR),
                        msg + "\n",
                    );
                    1
                }
            };
            std::process::exit(code);
        }
        pid => Ok(Some(pid)),
    }
}

enum Never {}

/// PID 1 of the host.
fn pid1(spec: &InitSpec) -> io::Result<Never> {
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        None,
    )
    .map_err(|e| ctx("mounting /proc", e))?;
    unified_cgroups().map_err(|e| ctx("mounting cgroup2 on /sys/fs/cgroup", e))?;
    if let Some(r) = &spec.resources {
        shrink(r).map_err(|e| ctx("applying the host's CPUs and memory", e))?;
    }
    let t0 = std::time::Instant::now();
    if let Some(p) = &spec.provision {
        provision(p, &spec.hostname).map_err(|e| ctx("first-boot provisioning", e))?;
    }
    every_boot().map_err(|e| ctx("preparing the boot", e))?;
    let t1 = t0.elapsed();
    match Command::new(layout::SIM_BIN).arg("boot").status() {
        Ok(s) if s.success() => {}
        Ok(s) => eprintln!("tb-sim init: `tb-sim boot` exited with {s}"),
        Err(e) => eprintln!("tb-sim init: cannot run `tb-sim boot`: {e}"),
    }
    proc_swaps().map_err(|e| ctx("binding the simulated /proc/swaps", e))?;
    let t2 = t0.elapsed();
    let mut sshd = Some(start_sshd()?);
    eprintln!(
        "tb-sim init: {} set up in {t1:?}, `tb-sim boot` took {:?}, sshd started",
        spec.hostname,
        t2 - t1
    );
    loop {
        let mut status = 0;
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid < 0 {
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        if Some(pid) == sshd {
            // Like systemd's ssh.service (Restart=on-failure): an sshd that dies comes back.
            eprintln!("tb-sim init: sshd exited (wait status {status}); restarting it");
            std::thread::sleep(Duration::from_millis(200));
            sshd = start_sshd().ok();
        }
    }
}

/// Ubuntu 22.04 and 24.04 boot with the unified cgroup v2 hierarchy (systemd's default
/// since 21.10), and the kubelet of Kubernetes 1.35+ refuses cgroup v1. This machine may
/// boot hybrid (a tmpfs of v1 hierarchies on /sys/fs/cgroup): the host then gets the real
/// cgroup2 file system mounted there in its own mount namespace, so statfs and
/// /proc/mounts show what its servers show (the controllers are the ones the machine has
/// not bound to v1 hierarchies). A test makes a cgroup v1 host by mounting a tmpfs there.
fn unified_cgroups() -> io::Result<()> {
    let path = CString::new("/sys/fs/cgroup")?;
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    check(unsafe { libc::statfs(path.as_ptr(), &mut st) })?;
    if st.f_type == libc::CGROUP2_SUPER_MAGIC {
        return Ok(());
    }
    mount(Some("cgroup2"), "/sys/fs/cgroup", Some("cgroup2"), 0, None)?;
    ubuntu_controllers()
}

/// The controllers an Ubuntu 22.04/24.04 server's root cgroup lists in
/// /sys/fs/cgroup/cgroup.controllers (kernel/cgroup/cgroup.c, in the kernel's order).
const UBUNTU_CONTROLLERS: &str = "cpuset cpu io memory hugetlb pids rdma misc\n";

/// On a hybrid machine the cgroup2 hierarchy mounted above lists only the controllers no
/// v1 hierarchy holds (often none), so kubeadm's preflight (k8s.io/system-validators
/// validators/cgroup_validator.go: on cgroup v2 it reads /sys/fs/cgroup/cgroup.controllers
/// and requires cpu, cpuset, memory, pids) refuses the host, where Ubuntu's boot passes.
/// The host gets Ubuntu's list bound over that one file, in its own mount namespace; the
/// file system stays the real cgroup2 (statfs magic, libcontainer IsCgroup2UnifiedMode).
/// Nothing here writes to cgroups, so only the list is pretended.
fn ubuntu_controllers() -> io::Result<()> {
    let path = "/run/testbed-cgroup.controllers";
    write(path, UBUNTU_CONTROLLERS, 0o444)?;
    bind_read_only(path, "/sys/fs/cgroup/cgroup.controllers")
}

/// Binds `source` over `target` read-only, as a kernel file without a write handler:
/// root's writes fail.
fn bind_read_only(source: &str, target: &str) -> io::Result<()> {
    mount(Some(source), target, None, libc::MS_BIND, None)
        .map_err(|e| ctx(&format!("binding {target}"), e))?;
    mount(
        None,
        target,
        None,
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
        None,
    )
    .map_err(|e| ctx(&format!("making {target} read-only"), e))
}

/// The host's /proc/swaps is the simulated kernel's table (`ctl/proc/swaps`, which the
/// swapon/swapoff stand-ins rewrite in place), so programs that read it rather than ask
/// a stand-in see the host's swap: the REAL kubeadm's preflight Swap check
/// (cmd/kubeadm/app/preflight/checks.go SwapCheck opens /proc/swaps) and the real
/// kubelet's (pkg/kubelet/cm, same file). Without it they saw the machine's.
fn proc_swaps() -> io::Result<()> {
    let table = format!("{}/proc/swaps", layout::CTL_DIR);
    if !Path::new(&table).exists() {
        common::save_kernel(&common::kernel());
    }
    bind_read_only(&table, "/proc/swaps")
}

/// Makes this host look like a smaller machine (layout::Resources): the first `cpus` CPUs
/// of PID 1's affinity, inherited by everything it starts, and a /proc/meminfo whose
/// MemTotal (and MemFree, MemAvailable, capped) is `memory_mib`.
fn shrink(r: &layout::Resources) -> io::Result<()> {
    if let Some(n) = r.cpus {
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        check(unsafe {
            libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set)
        })?;
        let mut narrowed: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        (0..libc::CPU_SETSIZE as usize)
            .filter(|i| unsafe { libc::CPU_ISSET(*i, &set) })
            .take(n.max(1))
            .for_each(|i| unsafe { libc::CPU_SET(i, &mut narrowed) });
        check(unsafe {
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &narrowed)
        })?;
    }
    if let Some(mib) = r.memory_mib {
        let kib = mib * 1024;
        let real = std::fs::read_to_string("/proc/meminfo")?;
        let fake: String = real
            .lines()
            .map(|l| {
                let Some((key, value)) = l.split_once(':') else {
                    return format!("{l}\n");
                };
                let v: u64 = value
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .unwrap_or(0);
                match key {
                    "MemTotal" => format!("{key}:{:>16} kB\n", kib),
                    "MemFree" | "MemAvailable" => format!("{key}:{:>16} kB\n", v.min(kib)),
                    _ => format!("{l}\n"),
                }
            })
            .collect();
        let path = "/run/testbed-meminfo";
        write(path, &fake, 0o444)?;
        mount(Some(path), "/proc/meminfo", None, libc::MS_BIND, None)
            .map_err(|e| ctx("binding /proc/meminfo", e))?;
    }
    Ok(())
}

fn start_sshd() -> io::Result<i32> {
    // sshd must be started by absolute path: it re-executes itself on SIGHUP.
    Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f", "/etc/ssh/sshd_config"])
        .spawn()
        .map(|c| c.id() as i32)
        .map_err(|e| ctx("starting /usr/sbin/sshd", e))
}

/// What every boot needs: sshd's privilege-separation directory (in the fresh /run) and
/// the stand-in links (recreated in case the stand-in list grew).
fn every_boot() -> io::Result<()> {
    mkdir("/run/sshd", 0o755)?;
    mkdir("/run/lock", 0o1777)?;
    mkdir(layout::STANDIN_DIR, 0o755)?;
    // The machine's package programs, through the audit log.
    for name in layout::BASE_STANDINS.iter().chain(layout::PACKAGE_PROGRAMS) {
        let link = Path::new(layout::STANDIN_DIR).join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(layout::SIM_BIN, &link).map_err(|e| ctx(&link.to_string_lossy(), e))?;
        }
    }
    Ok(())
}

/// Turns the machine's view of /etc and friends into a fresh server of `p.os`.
fn provision(p: &Provision, hostname: &str) -> io::Result<()> {
    let os: Os =
        p.os.parse()
            .map_err(|e: String| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // A disk directory is a host's own, empty at its creation, and covers the machine's.
    for path in NOT_ON_A_FRESH_SERVER
        .iter()
        .filter(|p| !layout::DISK_DIRS.contains(p))
    {
        remove(path)?;
    }
    write("/etc/hostname", &format!("{hostname}\n"), 0o644)?;
    write("/etc/hosts", &distro::etc_hosts(hostname), 0o644)?;
    let machine_id: u128 = rand::random();
    write("/etc/machine-id", &format!("{machine_id:032x}\n"), 0o444)?;
    // On the real systems /etc/os-release is a symlink to ../usr/lib/os-release, which is
    // the machine's own here; a regular file carries the simulated release instead.
    remove("/etc/os-release")?;
    write("/etc/os-release", os.os_release(), 0o644)?;
    remove("/etc/lsb-release")?;
    for (path, content) in os.release_files() {
        write(path, content, 0o644)?;
    }
    remove("/etc/apt/sources.list")?;
    remove("/etc/apt/sources.list.d")?;
    mkdir("/etc/apt/sources.list.d", 0o755)?;
    for (path, content) in os.apt_sources() {
        write(path, content, 0o644)?;
    }
    write("/etc/fstab", os.fstab(), 0o644)?;
    write(
        "/etc/environment",
        &format!("PATH=\"{}\"\n", distro::ENVIRONMENT_PATH),
        0o644,
    )?;
    if let Some(repo) = &p.repo {
        real_packages(repo, &p.os)?;
    }
    users(p)?;
    ssh(p)?;
    Ok(())
}

/// A host with the real package tools: the testbed's server and container registries
/// under the real host names, its CA trusted like one `update-ca-certificates` added,
/// the archive's key where
/// Ubuntu's sources expect it, apt's configuration and dpkg's database as on a fresh
/// server of the release (the machine's Debian database and apt settings hidden): dpkg
/// knows only the release's base packages (`catalog::BASE_PACKAGES`, at the archive's
/// versions, so nothing is upgraded over the machine's programs), apt's lists are empty.
fn real_packages(repo: &layout::RepoProvision, os: &str) -> io::Result<()> {
    use base64::Engine;
    let mut hosts = std::fs::read_to_string("/etc/hosts")?;
    hosts.push_str(&format!("{} {}\n", repo.address, repo.hosts.join(" ")));
    for (address, name) in &repo.registries {
        hosts.push_str(&format!("{address} {name}\n"));
    }
    write("/etc/hosts", &hosts, 0o644)?;
    // The resolver is the server's address too: it answers no DNS, so lookups that miss
    // /etc/hosts (apt's SRV records) fail at once instead of timing out.
    remove("/etc/resolv.conf")?;
    write(
        "/etc/resolv.conf",
        &format!(
            "nameserver {}\noptions edns0 trust-ad\nsearch .\n",
            repo.address
        ),
        0o644,
    )?;
    write(
        "/usr/local/share/ca-certificates/testbed-ca.crt",
        &repo.ca_pem,
        0o644,
    )?;
    let bundle = "/etc/ssl/certs/ca-certificates.crt";
    let mut certs = std::fs::read_to_string(bundle).unwrap_or_default();
    certs.push_str(&repo.ca_pem);
    write(bundle, &certs, 0o644)?;

    let keyring = base64::engine::general_purpose::STANDARD
        .decode(&repo.archive_keyring_b64)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    // The manager made layout::FRESH_PACKAGE_DIRS empty (keyrings, dpkg's info).
    remove("/etc/apt/trusted.gpg")?;
    std::fs::write("/usr/share/keyrings/ubuntu-archive-keyring.gpg", &keyring)?;
    std::fs::write(
        "/etc/apt/trusted.gpg.d/ubuntu-keyring-2018-archive.gpg",
        &keyring,
    )?;
    for e in std::fs::read_dir("/etc/apt/apt.conf.d")?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name != "01autoremove" && name != "70debconf" {
            std::fs::remove_file(e.path())?;
        }
    }

    // dpkg's database of a fresh server.
    let distro = crate::repo::catalog::distro(os);
    let mut status = String::new();
    for name in crate::repo::catalog::BASE_PACKAGES {
        let Some(p) = distro.iter().find(|p| p.name == *name) else {
            continue;
        };
        status.push_str(&format!(
            "Package: {name}\nStatus: install ok installed\nPriority: important\nSection: admin\nInstalled-Size: 1\nMaintainer: Ubuntu Developers <ubuntu-devel-discuss@lists.ubuntu.com>\nArchitecture: amd64\nVersion: {}\nDescription: {name}\n\n",
            p.version
        ));
        write(&format!("/var/lib/dpkg/info/{name}.list"), "", 0o644)?;
    }
    write("/var/lib/dpkg/status", &status, 0o644)?;
    for f in ["available", "diversions", "statoverride"] {
        write(&format!("/var/lib/dpkg/{f}"), "", 0o644)?;
    }
    for f in [
        "status-old",
        "available-old",
        "diversions-old",
        "statoverride-old",
    ] {
        remove(&format!("/var/lib/dpkg/{f}"))?;
    }
    remove("/var/lib/apt/extended_states")?;
    mkdir("/var/cache/apt/archives/partial", 0o755)?;
    Ok(())
}

/// root and `ubuntu` (uid 1000, like a cloud image's default user), their homes and keys,
/// and ubuntu's sudo rule.
fn users(p: &Provision) -> io::Result<()> {
    // Whoever has uid/gid 1000 on the machine does not exist on a fresh server.
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    let mut gone: Vec<String> = vec!["ubuntu".into()];
    for l in passwd.lines() {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() > 3 && (f[2] == "1000" || f[3] == "1000") {
            gone.push(f[0].to_string());
        }
    }
    let group = std::fs::read_to_string("/etc/group")?;
    for l in group.lines() {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() > 2 && f[2] == "1000" {
            gone.push(f[0].to_string());
        }
    }
    let hash = if p.sudo_password {
        UBUNTU_PASSWORD_HASH
    } else {
        "*"
    };
    edit_db(
        "/etc/passwd",
        &gone,
        &[],
        "ubuntu:x:1000:1000:Ubuntu:/home/ubuntu:/bin/bash",
        0o644,
    )?;
    edit_db(
        "/etc/shadow",
        &gone,
        &[],
        &format!("ubuntu:{hash}:20000:0:99999:7:::"),
        0o640,
    )?;
    let groups = ["adm", "cdrom", "sudo", "dip", "plugdev", "users"];
    edit_db("/etc/group", &gone, &groups, "ubuntu:x:1000:", 0o644)?;
    if Path::new("/etc/gshadow").exists() {
        edit_db("/etc/gshadow", &gone, &groups, "ubuntu:!::", 0o640)?;
    }

    // root: Ubuntu's /root has the skeleton dot files and is private.
    std::fs::set_permissions("/root", std::fs::Permissions::from_mode(0o700))?;
    for f in [".bashrc", ".profile"] {
        let _ = std::fs::copy(Path::new("/etc/skel").join(f), Path::new("/root").join(f));
    }
    authorize("/root", 0, 0, &p.authorized_key)?;

    // ubuntu, as `useradd -m` makes it.
    mkdir("/home/ubuntu", 0o750)?;
    if let Ok(skel) = std::fs::read_dir("/etc/skel") {
        for e in skel.filter_map(|e| e.ok()) {
            let dst = Path::new("/home/ubuntu").join(e.file_name());
            if e.file_type().map(|t| t.is_file()).unwrap_or(false) {
                std::fs::copy(e.path(), &dst)?;
                chown(&dst, Some(1000), Some(1000))?;
            }
        }
    }
    chown("/home/ubuntu", Some(1000), Some(1000))?;
    authorize("/home/ubuntu", 1000, 1000, &p.authorized_key)?;

    // Cloud images give the default user passwordless sudo through this file. Without it
    // ubuntu is still in group sudo, whose rule in /etc/sudoers asks for the password.
    remove("/etc/sudoers.d/90-cloud-init-users")?;
    if !p.sudo_password {
        write(
            "/etc/sudoers.d/90-cloud-init-users",
            "# Created by cloud-init v. 24.4-0ubuntu1~24.04.2\n\n# User rules for ubuntu\nubuntu ALL=(ALL) NOPASSWD:ALL\n",
            0o440,
        )?;
    }
    Ok(())
}

/// Rewrites a passwd-style database: drops the entries named in `gone` (and them from
/// member lists), adds `user` to the member lists of `groups`, and appends `entry`.
fn edit_db(path: &str, gone: &[String], groups: &[&str], entry: &str, mode: u32) -> io::Result<()> {
    let text = std::fs::read_to_string(path)?;
    let user = entry.split(':').next().unwrap_or_default();
    let mut out = String::new();
    for l in text.lines() {
        let mut f: Vec<String> = l.split(':').map(str::to_string).collect();
        if f.is_empty() || gone.contains(&f[0]) {
            continue;
        }
        // Member lists are the last field of group and gshadow.
        if (path.ends_with("group") || path.ends_with("gshadow")) && f.len() >= 4 {
            let last = f.len() - 1;
            let mut members: Vec<String> = f[last]
                .split(',')
                .filter(|m| !m.is_empty() && !gone.iter().any(|g| g == m))
                .map(str::to_string)
                .collect();
            if groups.contains(&f[0].as_str()) {
                members.push(user.to_string());
            }
            f[last] = members.join(",");
        }
        out.push_str(&f.join(":"));
        out.push('\n');
    }
    out.push_str(entry);
    out.push('\n');
    // Written in place, so shadow and gshadow keep their owner (root:shadow).
    write(path, &out, mode)
}

/// `HOME/.ssh/authorized_keys` with the testbed's key, with the modes StrictModes wants.
fn authorize(home: &str, uid: u32, gid: u32, key: &str) -> io::Result<()> {
    let dir = Path::new(home).join(".ssh");
    mkdir(&dir.to_string_lossy(), 0o700)?;
    chown(&dir, Some(uid), Some(gid))?;
    let file = dir.join("authorized_keys");
    write(&file.to_string_lossy(), &format!("{key}\n"), 0o600)?;
    chown(&file, Some(uid), Some(gid))
}

/// The host's own host key (only ed25519, unlike the machine's set) and sshd_config.
fn ssh(p: &Provision) -> io::Result<()> {
    for e in std::fs::read_dir("/etc/ssh")?.filter_map(|e| e.ok()) {
        if e.file_name().to_string_lossy().starts_with("ssh_host_") {
            std::fs::remove_file(e.path())?;
        }
    }
    write("/etc/ssh/ssh_host_ed25519_key", &p.host_key, 0o600)?;
    write("/etc/ssh/ssh_host_ed25519_key.pub", &p.host_key_pub, 0o644)?;
    write(
        "/etc/ssh/sshd_config",
        &distro::sshd_config(layout::SIM_BIN),
        0o644,
    )
}

/// `tb-sim audit-shell`: sshd's ForceCommand. Logs $SSH_ORIGINAL_COMMAND and then becomes
/// the user's shell running it, as sshd would have without the forced command: stdin,
/// stdout, stderr and the exit status are the shell's own.
pub fn audit_shell(_args: &[String]) -> i32 {
    let command = std::env::var("SSH_ORIGINAL_COMMAND").ok();
    if let Some(c) = &command {
        common::audit("ssh", vec![c.clone()], false, None);
    }
    let shell = login_shell().unwrap_or_else(|| "/bin/sh".to_string());
    let base = Path::new(&shell)
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sh".into());
    let mut cmd = Command::new(&shell);
    match &command {
        Some(c) => cmd.arg0(&base).arg("-c").arg(c),
        // No command: an interactive login, whose shell sshd starts as "-bash".
        None => cmd.arg0(format!("-{base}")),
    };
    let err = cmd.exec();
    eprintln!("{shell}: {err}");
    1
}

/// The real user's shell from /etc/passwd.
fn login_shell() -> Option<String> {
    let uid = unsafe { libc::getuid() }.to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 6 && f[2] == uid && !f[6].is_empty()).then(|| f[6].to_string())
    })
}

fn write(path: &str, content: &str, mode: u32) -> io::Result<()> {
    let p = Path::new(path);
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ctx(&dir.to_string_lossy(), e))?;
    }
    // Replace, don't follow: the machine's file may be a symlink into the shared /usr.
    if std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink()) {
        std::fs::remove_file(p)?;
    }
    std::fs::write(p, content).map_err(|e| ctx(path, e))?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).map_err(|e| ctx(path, e))
}

fn mkdir(path: &str, mode: u32) -> io::Result<()> {
    std::fs::create_dir_all(path).map_err(|e| ctx(path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| ctx(path, e))
}

/// Removes a file, symlink or directory tree; absence is fine. Inside the overlay this
/// leaves a whiteout, so the machine's file disappears for this host only.
fn remove(path: &str) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).map_err(|e| ctx(path, e)),
        Ok(_) => std::fs::remove_file(path).map_err(|e| ctx(path, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ctx(path, e)),
    }
}

fn mount_overlay(o: &OverlayMount) -> io::Result<()> {
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        o.lower.display(),
        o.upper.display(),
        o.work.display()
    );
    mount(Some("overlay"), &o.target, Some("overlay"), 0, Some(&opts)).map_err(|e| {
        ctx(
            &format!("mount -t overlay -o {opts} overlay {}", o.target),
            e,
        )
    })
}

fn mount(
    source: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let c = |s: &str| CString::new(s).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e));
    let source = source.map(c).transpose()?;
    let target = c(target)?;
    let fstype = fstype.map(c).transpose()?;
    let data = data.map(c).transpose()?;
    let ptr = |o: &Option<CString>| o.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    check(unsafe {
        libc::mount(
            ptr(&source),
            target.as_ptr(),
            ptr(&fstype),
            flags,
            ptr(&data).cast(),
        )
    })
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn ctx(what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_db_replaces_uid_1000_and_adds_groups() {
        let dir = std::env::temp_dir().join(format!("hostinit-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let group = dir.join("group");
        std::fs::write(
            &group,
            "root:x:0:\nadm:x:4:syslog\nsudo:x:27:cloudsdk\ncloudsdk:x:1000:\n",
        )
        .unwrap();
        let gone = vec!["ubuntu".to_string(), "cloudsdk".to_string()];
        edit_db(
            group.to_str().unwrap(),
            &gone,
            &["adm", "sudo"],
            "ubuntu:x:1000:",
            0o644,
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(&group).unwrap(),
            "root:x:0:\nadm:x:4:syslog,ubuntu\nsudo:x:27:ubuntu\nubuntu:x:1000:\n"
        );
        let passwd = dir.join("passwd");
        std::fs::write(
            &passwd,
            "root:x:0:0:root:/root:/bin/bash\ncloudsdk:x:1000:1000::/home/cloudsdk:/bin/bash\n",
        )
        .unwrap();
        edit_db(
            passwd.to_str().unwrap(),
            &gone,
            &[],
            "ubuntu:x:1000:1000:Ubuntu:/home/ubuntu:/bin/bash",
            0o644,
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(&passwd).unwrap(),
            "root:x:0:0:root:/root:/bin/bash\nubuntu:x:1000:1000:Ubuntu:/home/ubuntu:/bin/bash\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
