//! The inventory: the YAML file that is the cluster's desired state.
//!
//! `load` reads, parses and validates the whole file before anything touches a host, and
//! every error names the file, line, column and field. The types here are the resolved
//! form the rest of the tool works with: per-host SSH settings already merged with the
//! defaults, taints already defaulted by role.

mod checks;
mod error;
mod paths;
mod read;
mod rules;
mod schema;
pub mod ssh_settings;
mod tree;
pub mod versions;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use saphyr::{LoadableYamlNode, MarkedYaml};

pub use error::{InventoryError, Problem, MAX_SHOWN_PROBLEMS};
pub use read::MAX_INVENTORY_BYTES;
// Part of the API for the stages after the inventory; unused until they use it.
#[allow(unused_imports)]
pub use schema::{
    default_taints, CONTROL_PLANE_TAINT, DEFAULT_CLUSTER_NAME, DEFAULT_KNOWN_HOSTS,
    DEFAULT_POD_SUBNET, DEFAULT_SERVICE_SUBNET, DEFAULT_SSH_PORT, DEFAULT_SSH_USER,
};

/// Reads, parses and validates the inventory at `path`.
///
/// Every problem in the file is reported at once, each with its file, line, column and
/// field. Paths inside the inventory (identity files, a local Calico manifest) are resolved
/// relative to the inventory's directory, `~` to `$HOME`.
pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
    parse_bytes(path, read::read(path)?)
}

/// [`parse`] for the bytes of a file: text that is not UTF-8 (or holds a NUL byte) is an
/// invalid inventory located at the first bad byte, as [`load`] reports it.
pub fn parse_bytes(path: &Path, bytes: Vec<u8>) -> Result<Inventory, InventoryError> {
    parse(path, read::text(path, bytes)?)
}

/// Parses and validates inventory text as if it had been read from `path` (which names it
/// in messages and anchors relative paths).
pub fn parse(path: &Path, text: String) -> Result<Inventory, InventoryError> {
    let base_dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let ctx = schema::Context {
        base_dir,
        home: paths::home(),
    };
    parse_in(path, text, &ctx)
}

/// `parse` with the directories given (tests use it to vary HOME).
fn parse_in(path: &Path, text: String, ctx: &schema::Context) -> Result<Inventory, InventoryError> {
    let src = error::Source::new(path.display().to_string(), text);
    let mut r = tree::Reader::new(src.clone());
    let invalid = |problems: Vec<Problem>| InventoryError::invalid(path, problems);

    let docs = match MarkedYaml::load_from_str(src.text()) {
        Ok(docs) => docs,
        Err(e) => return Err(invalid(vec![syntax_problem(&src, &e)])),
    };
    let Some(root) = docs.first() else {
        let start = saphyr::Marker::new(0, 1, 0);
        return Err(invalid(vec![src.problem(
            &start,
            &start,
            "hosts",
            "the inventory is empty".into(),
            Some("see inventory.example: at least `hosts:` with one control-plane host".into()),
        )]));
    };
    if let Some(extra) = docs.get(1) {
        r.error(
            extra,
            "yaml",
            "the inventory must be a single YAML document; remove the `---` and what follows"
                .into(),
            None,
        );
    }
    let read = schema::read(&mut r, root, ctx);
    if let Some((draft, ssh)) = &read {
        checks::check(&mut r, draft, ssh, ctx);
    }
    if !r.problems.is_empty() {
        return Err(invalid(r.problems));
    }
    let (draft, defaults) = read.expect("no problems means the document was read");
    let ssh = ssh_settings::resolve(&mut r, &draft, &defaults, ctx);
    if !r.problems.is_empty() {
        return Err(invalid(r.problems));
    }
    Ok(schema::build(path, draft, ssh).expect("no problems means every value is present"))
}

/// A YAML syntax error, made as specific as the parser's message allows.
fn syntax_problem(src: &error::Source, e: &saphyr::ScanError) -> Problem {
    let at = *e.marker();
    let info = e.info();
    if info.contains("duplicated key") {
        // The marker points at the second occurrence: name the key.
        let end = saphyr::Marker::new(at.index() + 200, at.line(), at.col() + 200);
        let rest = src.slice(&at, &end);
        let key = rest
            .lines()
            .next()
            .unwrap_or("")
            .split(':')
            .next()
            .unwrap_or("");
        let key = key.trim().trim_matches(['"', '\'']);
        if !key.is_empty() {
            return src.problem(
                &at,
                &at,
                "yaml",
                format!("the key `{key}` appears twice in the same mapping"),
                Some("each key may appear once; remove one of them".into()),
            );
        }
    }
    if info.contains("tabs") {
        return src.problem(
            &at,
            &at,
            "yaml",
            format!("invalid YAML: {info}"),
            Some("indent with spaces: YAML does not allow tabs for indentation".into()),
        );
    }
    if info.contains("mapping values are not allowed") {
        return src.problem(
            &at,
            &at,
            "yaml",
            format!("invalid YAML: {info}"),
            Some(
                "a plain value can't contain `: ` or end with `:` (as the pkgs.k8s.io URL \
                 `https://pkgs.k8s.io/core:/stable:` does): put it in quotes"
                    .into(),
            ),
        );
    }
    let help = (info.contains("block") || info.contains("indentation") || info.contains("':'"))
        .then(|| {
            "YAML nests by indentation: the keys of one mapping must start in the same column, \
             and list items (`- `) under their key"
                .to_string()
        });
    src.problem(&at, &at, "yaml", format!("invalid YAML: {info}"), help)
}

impl Inventory {
    /// The control-plane hosts, in file order: one, as validation refuses a second until
    /// HA is implemented.
    pub fn control_planes(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| h.role == Role::ControlPlane)
    }

    /// The control plane `kubeadm init` runs on: the first one in the file (validation
    /// guarantees there is one).
    pub fn first_control_plane(&self) -> &Host {
        self.control_planes()
            .next()
            .expect("a validated inventory has a control plane")
    }

    pub fn workers(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| h.role == Role::Worker)
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// `host:port` of the API server: `controlPlaneEndpoint`, or the first control plane's
    /// SSH address ([`Host::ssh_address`]) on 6443 (IPv6 in brackets).
    pub fn api_endpoint(&self) -> String {
        match &self.cluster.control_plane_endpoint {
            Some(e) => e.clone(),
            None => {
                let address = self.first_control_plane().ssh_address();
                if address.contains(':') {
                    format!("[{address}]:6443")
                } else {
                    format!("{address}:6443")
                }
            }
        }
    }
}

impl Cluster {
    /// `v1.34` — the pkgs.k8s.io repository path component for this version's minor.
    pub fn minor_tag(&self) -> String {
        let v = &self.kubernetes_version;
        format!("v{}.{}", v.major, v.minor)
    }
}

impl Host {
    pub fn is_control_plane(&self) -> bool {
        self.role == Role::ControlPlane
    }

    /// The node IP (kubelet `--node-ip`, the API server's advertise address): the one
    /// chosen from the host's facts, else `internalAddress`, else the SSH address.
    pub fn node_ip(&self) -> String {
        match (&self.node_address, self.internal_address) {
            (Some(n), _) => n.ip.to_string(),
            (None, Some(ip)) => ip.to_string(),
            (None, None) => self.ssh_address().to_string(),
        }
    }

    /// Where SSH connects: ssh_config's `HostName` when it gives one for `address` (which
    /// is then only the name ssh_config knows the host by, as for `ssh ALIAS`), else the
    /// address. The host's real address: what its node IP is compared with, what the API
    /// server's certificate names and what a kubeconfig points at.
    pub fn ssh_address(&self) -> &str {
        self.ssh.host_name.as_deref().unwrap_or(&self.address)
    }
}

impl Role {
    /// As written in the inventory.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::ControlPlane => "control-plane",
            Role::Worker => "worker",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Taint {
    /// kubectl's syntax: `key[=value]:Effect`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={}:{}", self.key, v, self.effect),
            None => write!(f, "{}:{}", self.key, self.effect),
        }
    }
}

impl Calico {
    /// Where the manifest comes from: the given source, or upstream's manifest of `version`.
    pub fn manifest_source(&self) -> ManifestSource {
        self.manifest.clone().unwrap_or_else(|| {
            ManifestSource::Url(format!(
                "https://raw.githubusercontent.com/projectcalico/calico/{}/manifests/calico.yaml",
                self.version
            ))
        })
    }
}

/// The whole validated inventory.
#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    /// The file it came from (for messages).
    pub path: PathBuf,
    pub cluster: Cluster,
    /// In file order. The first control plane is the one `kubeadm init` runs on.
    pub hosts: Vec<Host>,
    /// `manifests:`: applied in this order once every node is Ready.
    pub manifests: Vec<Manifest>,
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
    /// `packageLockWait`: how many seconds a package step waits for apt's and dpkg's
    /// locks held by another process (apt-daily, unattended-upgrades), default 600.
    pub package_lock_wait: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Calico {
    /// e.g. "v3.30.3".
    pub version: String,
    /// None: the upstream manifest of `version`. Some: a URL or a local file.
    pub manifest: Option<ManifestSource>,
    /// `calico.encapsulation`; None keeps the manifest's own (IP-in-IP in the published
    /// calico.yaml).
    pub encapsulation: Option<Encapsulation>,
}

/// How pod traffic between nodes is wrapped, as Calico's default IPv4 pool is created
/// (calico-node's `CALICO_IPV4POOL_IPIP` / `CALICO_IPV4POOL_VXLAN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encapsulation {
    /// IP-in-IP (IP protocol 4) with BGP (TCP 179) between the nodes: the published
    /// calico.yaml's setting.
    Ipip,
    /// VXLAN (UDP 4789), BGP off: for networks that drop IP protocol 4 (Azure, many
    /// cloud security groups).
    Vxlan,
}

impl Encapsulation {
    pub const ALL: [Encapsulation; 2] = [Encapsulation::Ipip, Encapsulation::Vxlan];

    /// The inventory's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Encapsulation::Ipip => "ipip",
            Encapsulation::Vxlan => "vxlan",
        }
    }

    pub fn parse(s: &str) -> Option<Encapsulation> {
        Self::ALL.into_iter().find(|e| e.name() == s)
    }
}

/// One entry of `manifests:`.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// As written in the inventory (a path relative to it, or the URL): what the cluster's
    /// record of applied manifests is keyed by, so it means the same wherever the
    /// inventory is checked out.
    pub name: String,
    pub source: ManifestSource,
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
    /// Where to reach the host over SSH: an IP or a host name, as written.
    pub address: String,
    /// `internalAddress`: the node IP the inventory asks for.
    pub internal_address: Option<std::net::IpAddr>,
    /// The node IP chosen from the host's facts ([`crate::node_address`]); None until
    /// facts are gathered.
    pub node_address: Option<NodeAddress>,
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

/// SSH settings of one host: the host's own `ssh:`, then the inventory's `ssh:`, then
/// the ssh_config file, then the defaults ([`ssh_settings`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ssh {
    pub user: String,
    pub port: u16,
    /// None: use ssh-agent only. `~` already expanded.
    pub identity_file: Option<PathBuf>,
    /// `~` already expanded.
    pub known_hosts_file: PathBuf,
    /// `strict` unless the inventory (or ssh_config) says `accept-new`.
    pub host_key_policy: crate::ssh::HostKeyPolicy,
    /// The jump hosts to reach this host through, first hop first (empty: directly).
    pub proxy_jump: Vec<crate::ssh::Jump>,
    /// ssh_config's `HostName`: where to connect; the inventory's `address` is then the
    /// name ssh_config knows the host by. None: the address.
    pub host_name: Option<String>,
    /// ssh_config's `IdentitiesOnly`: offer only the identity file's key, not every key
    /// the agent holds.
    pub identities_only: bool,
    /// ssh_config's `CertificateFile` (else `<identityFile>-cert.pub` is tried).
    pub certificate_file: Option<PathBuf>,
    /// ssh_config's `ConnectTimeout` (`--connect-timeout` wins).
    pub connect_timeout: Option<std::time::Duration>,
    /// ssh_config's `ServerAliveInterval` (zero: no keepalives).
    pub server_alive_interval: Option<std::time::Duration>,
    /// ssh_config's `HashKnownHosts`: accept-new records the host name hashed.
    pub hash_known_hosts: bool,
    /// Where each setting came from, for `bootstrap plan -v`.
    pub origins: Vec<ssh_settings::Origin>,
}

/// The chosen node IP and why it was chosen (shown by `bootstrap plan`); chosen by
/// [`crate::node_address::choose`], kept on the [`Host`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NodeAddress {
    pub ip: std::net::IpAddr,
    /// The interface holding it, e.g. "eth0".
    pub interface: String,
    /// Why this address, in a sentence.
    pub reason: String,
    /// It differs from the SSH address (`address`).
    pub differs: bool,
}

/// The SSH target of an inventory host; `connect_timeout` (`--connect-timeout`; None:
/// ssh_config's `ConnectTimeout`, else 30 s) bounds each of one attempt's TCP connect, SSH
/// handshake and authentication.
pub fn target(host: &Host, connect_timeout: Option<std::time::Duration>) -> crate::ssh::Target {
    crate::ssh::Target {
        host: host.name.clone(),
        address: host.ssh_address().to_string(),
        port: host.ssh.port,
        user: host.ssh.user.clone(),
        identity_file: host.ssh.identity_file.clone(),
        known_hosts_file: host.ssh.known_hosts_file.clone(),
        host_key_policy: host.ssh.host_key_policy,
        jumps: host.ssh.proxy_jump.clone(),
        connect_timeout: connect_timeout
            .or(host.ssh.connect_timeout)
            .unwrap_or(crate::ssh::DEFAULT_CONNECT_TIMEOUT),
        identities_only: host.ssh.identities_only,
        certificate_file: host.ssh.certificate_file.clone(),
        server_alive_interval: host.ssh.server_alive_interval,
        hash_known_hosts: host.ssh.hash_known_hosts,
    }
}

/// How the summary, the plan and the JSON documents name a role.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::ControlPlane => "control-plane",
        Role::Worker => "worker",
    }
}

/// A host as unit tests of later stages need one: root over SSH on port 22, address
/// 10.0.0.1, no known_hosts check. One constructor, so a new `Host` field is added once.
#[cfg(test)]
pub(crate) fn test_host(
    name: &str,
    role: Role,
    labels: &[(&str, &str)],
    taints: Vec<Taint>,
) -> Host {
    Host {
        name: name.into(),
        address: "10.0.0.1".into(),
        internal_address: None,
        node_address: None,
        role,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        taints,
        ssh: Ssh {
            user: "root".into(),
            port: 22,
            identity_file: None,
            known_hosts_file: "/dev/null".into(),
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_without_home(text: &str) -> Result<Inventory, InventoryError> {
        let ctx = schema::Context {
            base_dir: PathBuf::from("/srv"),
            home: None,
        };
        parse_in(Path::new("/srv/inv.yaml"), text.to_string(), &ctx)
    }

    #[test]
    fn without_home_the_default_known_hosts_is_an_error() {
        let hosts = "hosts:\n  - {name: a, address: 10.0.0.1, role: control-plane}\n";
        let err = parse_without_home(hosts).unwrap_err();
        assert!(
            err.summary()
                .starts_with("/srv/inv.yaml:2:3: ssh.knownHostsFile: HOME is not set"),
            "{}",
            err.summary()
        );
        let given = format!("ssh: {{knownHostsFile: kh}}\n{hosts}");
        let inv = parse_without_home(&given).unwrap();
        assert_eq!(inv.hosts[0].ssh.known_hosts_file, PathBuf::from("/srv/kh"));
    }
}
