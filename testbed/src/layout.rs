//! The contract between the testbed's host manager (this library, running in the root
//! namespace) and the stand-in commands (`tb-sim`, running inside a simulated host).
//!
//! Both sides agree on where things live and on the formats of the few files they share.
//! Everything else a stand-in keeps lives in the host's own (overlay) filesystem, in the
//! places the real command keeps it, so that a tool reading or writing those places sees
//! what it would see on a real Ubuntu server.
//!
//! # Inside a host
//! - The overlay-mounted directories are [`OVERLAY_DIRS`]; everything else is the machine's
//!   real filesystem, read-only by convention.
//! - [`CTL_DIR`] is a bind mount of the host's control directory (`DIR/hosts/NAME/ctl` on
//!   the outside). It is *not* an overlay, so the manager can read and write it from the
//!   root namespace at any time (faults, audit log, kernel state) without entering the host.
//! - [`SIM_BIN`] is the multi-call stand-in binary; [`STANDIN_DIR`] holds symlinks to it for
//!   the commands a fresh Ubuntu server already has (apt-get, systemctl, sysctl, ...). It is
//!   first on sshd's and sudo's default PATH. Commands that a package brings (kubeadm,
//!   kubelet, kubectl, containerd, docker, crictl ...) are linked into `/usr/bin` by the
//!   `apt-get` stand-in when that package is installed, and removed when it is purged.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Directories given a private copy-on-write overlay in every host: every place a
/// package may write (the real dpkg installs systemd units into /usr/lib, /lib being a
/// link to it), so no host ever writes into the machine's own directories.
pub const OVERLAY_DIRS: &[&str] = &[
    "/etc",
    "/var",
    "/opt",
    "/usr/local",
    "/usr/bin",
    "/usr/sbin",
    "/usr/lib",
    "/usr/libexec",
    "/usr/share",
    "/root",
    "/home",
    "/run",
    "/srv",
    "/tmp",
];

/// Directories a host keeps on a plain filesystem of its own, as a real host keeps them on
/// its disk: bind mounts of `DIR/hosts/NAME/disk/...` over its overlays. The kernel
/// refuses an overlayfs upperdir on overlayfs (`overlay: filesystem on ... not supported
/// as upperdir`), which the real containerd's overlayfs snapshotter needs for every
/// container's root filesystem.
pub const DISK_DIRS: &[&str] = &["/var/lib/containerd"];

/// Where the host's control directory is bind-mounted inside the host.
pub const CTL_DIR: &str = "/usr/local/lib/testbed";
/// The multi-call stand-in binary inside a host.
pub const SIM_BIN: &str = "/usr/local/lib/testbed/tb-sim";
/// Directory of always-present stand-in symlinks, first on PATH.
pub const STANDIN_DIR: &str = "/usr/local/sbin";

/// Commands a fresh Ubuntu server has, shadowed by a stand-in in [`STANDIN_DIR`]: these
/// and [`PACKAGE_STANDINS`].
pub const BASE_STANDINS: &[&str] = &[
    "swapoff",
    "swapon",
    "modprobe",
    "lsmod",
    "sysctl",
    "systemctl",
    "hostname",
    "iptables",
    "ip6tables",
    "reboot",
    "journalctl",
];

/// The machine's real package programs, linked in [`STANDIN_DIR`] to tb-sim, which runs
/// the real program and records it in the audit log (tb-sim's `audited`).
pub const PACKAGE_PROGRAMS: &[&str] = &[
    "apt-get",
    "apt-mark",
    "apt-cache",
    "apt",
    "dpkg-query",
    "dpkg",
    "curl",
    "gpg",
];

/// Directories a host starts with empty (the machine's Debian package database and apt
/// keys hidden): made opaque in the upper layer before
/// the first boot, which costs nothing, where deleting thousands of entries through the
/// overlay would cost a whiteout each.
pub const FRESH_PACKAGE_DIRS: &[&str] = &[
    "/var/lib/dpkg/info",
    "/var/lib/dpkg/triggers",
    "/var/lib/dpkg/updates",
    "/var/cache/apt",
    "/usr/share/keyrings",
    "/etc/apt/trusted.gpg.d",
    "/etc/apt/keyrings",
    "/etc/apt/auth.conf.d",
    "/etc/apt/preferences.d",
];

/// Files inside [`CTL_DIR`] (relative names). The outside path is `DIR/hosts/NAME/ctl/X`.
pub mod ctl {
    /// [`super::HostConfig`] as JSON, written by the manager at host creation.
    pub const HOST_CONFIG: &str = "host.json";
    /// Append-only JSON Lines audit log; one [`super::AuditRecord`] per line. Mode 0666.
    pub const AUDIT_LOG: &str = "audit.jsonl";
    /// Directory of active faults, one JSON file per fault kind, see [`super::Fault`].
    pub const FAULTS: &str = "faults";
    /// Simulated kernel state ([`super::KernelState`]) as JSON; reset on every boot.
    pub const KERNEL: &str = "kernel.json";
    /// Directory for pid files and logs of the simulated daemons (`NAME.pid`, `NAME.log`).
    pub const UNITS: &str = "units";
    /// The container images the host's machine image carries (`Testbed::preload_images`):
    /// an OCI archive the real containerd imports into its `k8s.io` namespace when it
    /// starts (once per archive), as `ctr -n k8s.io images import` does.
    pub const IMAGES: &str = "images.tar";
}

/// Per-host settings written by the manager and read by the stand-ins.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostConfig {
    pub name: String,
    pub address: String,
    /// "ubuntu-24.04", "ubuntu-22.04" or "debian-12".
    pub os: String,
    /// Multiplier for the realistic durations of slow commands; 0 in tests.
    pub time_scale: f64,
    /// Addresses of all hosts of this testbed, so stand-ins can tell "our network" from
    /// "the internet" (which is unreachable).
    pub peers: Vec<String>,
    /// The kubelet unit runs the kubelet stand-in for the REAL control plane
    /// (STANDINS-kubelet-real.md) with the programs of the installed kubelet package's
    /// release from this directory (testbed/k8s/build.sh's cache, one subdirectory per
    /// release); None: no kubelet can run (the unit's daemon exits: kube/kubelet.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real_kubernetes: Option<std::path::PathBuf>,
    /// With `real_kubernetes`: the CRI client (`tb-cri`, testbed/cri) the kubelet stand-in
    /// makes its static pods' sandboxes in the real containerd with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cri_client: Option<std::path::PathBuf>,
}

/// One line of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditRecord {
    /// Seconds since the Unix epoch.
    pub ts: f64,
    /// `ssh` for a command line that arrived over SSH (logged by the forced-command
    /// wrapper before it runs), `cmd` for a stand-in invocation (logged when it exits).
    pub kind: String,
    /// The effective user name (root under sudo).
    pub user: String,
    /// For `ssh` the single command string; for `cmd` argv with argv[0] the command name.
    pub argv: Vec<String>,
    /// For `cmd`: whether this invocation changed any state (files, packages, units,
    /// kernel, cluster objects). Always false for `ssh`.
    pub changed: bool,
    /// For `cmd`: the exit status. None for `ssh`.
    pub exit: Option<i32>,
}

/// One request that changed a Node's `spec` (cordon, uncordon, taints), as the API
/// server applied it: what an API server audit log at level Request would show for
/// nodes, reduced to the outcome. Lets a test assert how many nodes were unschedulable
/// at any moment ([`max_unschedulable`]). Read from a watch of the Nodes
/// ([`crate::Testbed::watch_node_specs`]), where `user` is the field manager and `verb`
/// the watch event (below).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeSpecChange {
    /// Seconds since the Unix epoch, when the server applied the change.
    pub ts: f64,
    pub node: String,
    /// Who asked: "kubernetes-admin", "system:node:NAME", ... From a watch: the manager
    /// of the Node's newest managedFields entry ("kubectl-cordon", "kubectl-taint",
    /// "node-controller", ...), since the real API server records managers, not users.
    pub user: String,
    /// "patch", "apply" or "delete". From a watch: "modified", "deleted", or "added"
    /// (a Node listed again by a restarted watch, changed while no watch ran).
    pub verb: String,
    /// `spec.unschedulable` afterwards (false when the node was deleted).
    pub unschedulable: bool,
    /// `spec.taints` afterwards, as `key[=value]:Effect`.
    pub taints: Vec<String>,
}

/// The most nodes that were unschedulable (cordoned) at the same time over `changes`
/// (in log order; nodes start schedulable), and the names at that moment.
pub fn max_unschedulable(changes: &[NodeSpecChange]) -> (usize, Vec<String>) {
    let mut now = std::collections::BTreeSet::new();
    let mut worst: Vec<String> = Vec::new();
    for c in changes {
        if c.unschedulable {
            now.insert(c.node.clone());
        } else {
            now.remove(&c.node);
        }
        if now.len() > worst.len() {
            worst = now.iter().cloned().collect();
        }
    }
    (worst.len(), worst)
}

/// Simulated kernel state of a host. Reset at every boot: swap from /etc/fstab, modules
/// from /etc/modules-load.d, sysctls from /etc/sysctl.d and /etc/sysctl.conf.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct KernelState {
    /// Active swap devices/files (e.g. "/swap.img").
    pub swaps: Vec<String>,
    /// Loaded modules.
    pub modules: Vec<String>,
    /// Current sysctl values, by dotted key. Keys under net.bridge exist only while
    /// br_netfilter is loaded.
    pub sysctls: std::collections::BTreeMap<String, String>,
}

/// A fault injected by the manager. Stored as `faults/<kind>.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fault {
    /// The dpkg frontend lock is held until this time (seconds since epoch), as
    /// unattended-upgrades does on a fresh host: a process `unattended-upgr` holds dpkg's
    /// frontend and database locks.
    DpkgLock { until: f64 },
    /// apt-daily's `apt-get update` holds apt's lists lock and dpkg's frontend lock until
    /// this time (a cloud VM's first minutes): a process `apt-get` holds the locks.
    AptDaily { until: f64 },
    /// A process `port-holder` listens on TCP `port` on every address of the host (its
    /// network namespace), as a stray service would, until the fault is cleared. The
    /// real kubeadm's preflight then fails with its own error: 10250 (the kubelet's port)
    /// fails `kubeadm join` and `kubeadm init` with `[ERROR Port-10250]: Port 10250 is in
    /// use`; 6443 (the API server's) fails `kubeadm init` with `[ERROR Port-6443]`.
    PortInUse { port: u16 },
    /// Every invocation of `command` takes `seconds` longer (not scaled).
    Slow { command: String, seconds: f64 },
}

impl Fault {
    /// The file name this fault is stored under in [`ctl::FAULTS`].
    pub fn file_name(&self) -> String {
        let kind = match self {
            Fault::DpkgLock { .. } => "dpkg-lock".to_string(),
            Fault::AptDaily { .. } => "apt-daily".to_string(),
            Fault::PortInUse { port } => format!("port-{port}"),
            Fault::Slow { command, .. } => format!("slow-{command}"),
        };
        format!("{kind}.json")
    }
}

/// Paths of one host as seen from the root namespace.
#[derive(Debug, Clone)]
pub struct HostPaths {
    pub root: PathBuf,
}

impl HostPaths {
    pub fn new(testbed_dir: &Path, host: &str) -> Self {
        HostPaths {
            root: testbed_dir.join("hosts").join(host),
        }
    }
    /// Outside path of the control directory (bind-mounted at [`CTL_DIR`]).
    pub fn ctl(&self) -> PathBuf {
        self.root.join("ctl")
    }
    /// Outside path of the upper (writable) layer of an overlay dir, e.g. "/etc".
    pub fn upper(&self, overlay_dir: &str) -> PathBuf {
        self.root
            .join("upper")
            .join(overlay_dir.trim_start_matches('/'))
    }
    pub fn work(&self, overlay_dir: &str) -> PathBuf {
        self.root
            .join("work")
            .join(overlay_dir.trim_start_matches('/'))
    }
    /// Outside path of a [`DISK_DIRS`] directory, e.g. "/var/lib/containerd".
    pub fn disk(&self, dir: &str) -> PathBuf {
        self.root.join("disk").join(dir.trim_start_matches('/'))
    }
    pub fn audit_log(&self) -> PathBuf {
        self.ctl().join(ctl::AUDIT_LOG)
    }
}

/// Files the host manager keeps in a host's control directory for itself (added after the
/// stand-ins' files above; stand-ins never need them).
pub mod ctl_manager {
    /// The host's first process (PID 1 of its PID namespace) as a pid of the root
    /// namespace, written by `tb-sim init` once the host's namespaces exist.
    pub const INIT_PID: &str = "init.pid";
    /// Written by `tb-sim init` when the host could not come up: the reason, one line.
    pub const INIT_ERROR: &str = "init.error";
}

/// One overlay mount of a host: `target` (e.g. "/etc") gets `lower` (read-only) under
/// `upper` (the host's private changes). Paths are as seen from the root namespace.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OverlayMount {
    pub target: String,
    pub lower: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
}

/// What `tb-sim init` needs to bring a host up; written by the manager to
/// `DIR/hosts/NAME/init.json` before every boot. Paths are as seen from the root namespace.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InitSpec {
    pub hostname: String,
    pub overlays: Vec<OverlayMount>,
    /// Outside path of the control directory, bind-mounted at [`CTL_DIR`].
    pub ctl: PathBuf,
    /// (outside path, target) of the [`DISK_DIRS`], bind-mounted after the overlays.
    #[serde(default)]
    pub disks: Vec<(PathBuf, String)>,
    /// Set only for the first boot: what turns a copy of this machine into a fresh server.
    pub provision: Option<Provision>,
    /// A smaller machine than this one, applied at every boot.
    #[serde(default)]
    pub resources: Option<Resources>,
}

/// The CPUs and memory a host has when it is to look smaller than the machine: its PID 1
/// narrows its CPU affinity (inherited by every process, so `nproc` and Go's
/// runtime.NumCPU count these) and binds a /proc/meminfo with this MemTotal over the real
/// one. sysinfo(2) still reports the machine's memory; the stand-ins read /proc/meminfo.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Resources {
    pub cpus: Option<usize>,
    pub memory_mib: Option<u64>,
}

/// The first-boot setup of a host, done by `tb-sim init` inside the host's namespaces so
/// that every change goes through the overlays exactly like a real write would.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Provision {
    /// "ubuntu-24.04", "ubuntu-22.04" or "debian-12".
    pub os: String,
    pub address: String,
    /// The testbed's client public key line, authorized for root and `ubuntu`.
    pub authorized_key: String,
    /// The host's ed25519 key pair (file contents, OpenSSH format). Inline because the
    /// outside testbed directory may be hidden by the host's own /tmp once mounted.
    pub host_key: String,
    pub host_key_pub: String,
    /// Whether `ubuntu`'s sudo asks for a password (so `sudo -n` fails).
    pub sudo_password: bool,
    /// Where its internet is (the testbed's repository server).
    #[serde(default)]
    pub repo: Option<RepoProvision>,
}

/// What a host needs to use the testbed's repositories: the server's address (the real
/// host names resolve to it in /etc/hosts), the container registries' addresses, the CA that signed its certificate (added to
/// the host's trusted certificates) and the Ubuntu archive's signing key (the keyring the
/// distro's sources name), base64 of the binary keyring.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RepoProvision {
    pub address: String,
    pub hosts: Vec<String>,
    /// The container registries: (address, name), one /etc/hosts line each.
    #[serde(default)]
    pub registries: Vec<(String, String)>,
    pub ca_pem: String,
    pub archive_keyring_b64: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(node: &str, unschedulable: bool) -> NodeSpecChange {
        NodeSpecChange {
            ts: 0.0,
            node: node.into(),
            user: "kubernetes-admin".into(),
            verb: "patch".into(),
            unschedulable,
            taints: vec![],
        }
    }

    #[test]
    fn most_unschedulable_at_once() {
        assert_eq!(max_unschedulable(&[]), (0, vec![]));
        let rolling = [
            change("w1", true),
            change("w1", false),
            change("w2", true),
            change("w2", true),
            change("w2", false),
        ];
        assert_eq!(max_unschedulable(&rolling), (1, vec!["w1".to_string()]));
        let overlapping = [change("w1", true), change("w2", true), change("w1", false)];
        assert_eq!(
            max_unschedulable(&overlapping),
            (2, vec!["w1".to_string(), "w2".to_string()])
        );
    }
}
