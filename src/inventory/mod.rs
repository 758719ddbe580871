//! The inventory: the YAML file that is the cluster's desired state.
//!
//! `load` reads, parses and validates the whole file before anything touches a host, and
//! every error names the file, line, column and field. The types here are the resolved
//! form the rest of the tool works with: per-host SSH settings already merged with the
//! defaults, taints already defaulted by role.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The whole validated inventory.
#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    /// The file it came from (for messages).
    pub path: PathBuf,
    pub cluster: Cluster,
    /// In file order. The first control plane is the one `kubeadm init` runs on.
    pub hosts: Vec<Host>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub name: String,
    /// Exact Kubernetes version, e.g. 1.34.2.
    pub kubernetes_version: semver::Version,
    pub pod_subnet: String,
    pub service_subnet: String,
    /// "host:port"; None means the first control plane's address:6443.
    pub control_plane_endpoint: Option<String>,
    pub calico: Calico,
    /// Base URL of the package repository, default "https://pkgs.k8s.io/core:/stable:".
    pub package_repository: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Calico {
    /// e.g. "v3.30.3".
    pub version: String,
    /// None: the upstream manifest of `version`. Some: a URL or a local file.
    pub manifest: Option<ManifestSource>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ManifestSource {
    Url(String),
    /// A local file, resolved relative to the inventory's directory.
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    ControlPlane,
    Worker,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    /// The node name.
    pub name: String,
    pub address: String,
    pub role: Role,
    pub labels: BTreeMap<String, String>,
    /// Resolved: when the inventory omits `taints`, a control plane gets
    /// `node-role.kubernetes.io/control-plane:NoSchedule` and a worker none.
    pub taints: Vec<Taint>,
    pub ssh: Ssh,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Taint {
    pub key: String,
    pub value: Option<String>,
    /// NoSchedule | PreferNoSchedule | NoExecute
    pub effect: String,
}

/// SSH settings of one host, defaults already merged.
#[derive(Debug, Clone, PartialEq)]
pub struct Ssh {
    pub user: String,
    pub port: u16,
    /// None: use ssh-agent only. `~` already expanded.
    pub identity_file: Option<PathBuf>,
    /// `~` already expanded.
    pub known_hosts_file: PathBuf,
}
