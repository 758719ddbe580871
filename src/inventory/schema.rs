//! The inventory's schema: which keys exist where, their types, defaults and per-value
//! rules. Reads the YAML tree into drafts (values kept with their positions, `None` where
//! a value was wrong so reading can go on and report every problem); `checks` then looks
//! across hosts, and `build` turns drafts into the resolved [`Inventory`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use saphyr::{MarkedYaml, Marker};
use semver::Version;

use super::rules::{self, Broken};
use super::tree::{join, Reader, Spanned};
use super::versions;
use crate::ssh::{HostKeyPolicy, Jump};

use super::{
    paths, Calico, Cluster, Encapsulation, Host, Inventory, Manifest, ManifestSource, Role, Ssh,
    Taint,
};

pub(crate) const TOP_KEYS: [&str; 4] = ["cluster", "ssh", "hosts", "manifests"];
pub(crate) const CLUSTER_KEYS: [&str; 8] = [
    "name",
    "kubernetesVersion",
    "podSubnet",
    "serviceSubnet",
    "controlPlaneEndpoint",
    "calico",
    "packageRepository",
    "packageLockWait",
];
pub(crate) const CALICO_KEYS: [&str; 3] = ["version", "manifest", "encapsulation"];
pub(crate) const SSH_KEYS: [&str; 7] = [
    "config",
    "user",
    "port",
    "identityFile",
    "knownHostsFile",
    "hostKeyPolicy",
    "proxyJump",
];
pub(crate) const HOST_KEYS: [&str; 7] = [
    "name",
    "address",
    "internalAddress",
    "role",
    "labels",
    "taints",
    "ssh",
];

/// kubeadm's default cluster name.
pub const DEFAULT_CLUSTER_NAME: &str = "kubernetes";
pub const DEFAULT_POD_SUBNET: &str = "192.168.0.0/16";
pub const DEFAULT_SERVICE_SUBNET: &str = "10.96.0.0/12";
pub const DEFAULT_SSH_USER: &str = "root";
pub const DEFAULT_SSH_PORT: u16 = 22;
pub const DEFAULT_KNOWN_HOSTS: &str = "~/.ssh/known_hosts";
/// How long a package step waits for apt's and dpkg's locks, in seconds (10 minutes:
/// unattended-upgrades on a cloud VM's first boot often runs for minutes).
pub const DEFAULT_PACKAGE_LOCK_WAIT: u64 = 600;
/// The longest `packageLockWait` accepted: a day.
pub const MAX_PACKAGE_LOCK_WAIT: u64 = 86_400;
/// The taint kubeadm puts on a control plane unless told otherwise.
pub const CONTROL_PLANE_TAINT: &str = "node-role.kubernetes.io/control-plane";

/// Where paths in the inventory are resolved from.
pub(crate) struct Context {
    pub base_dir: PathBuf,
    pub home: Option<PathBuf>,
}

pub(crate) struct Draft {
    pub cluster: ClusterDraft,
    pub hosts: Vec<HostDraft>,
    /// The `hosts` list, for problems about the hosts as a whole.
    pub hosts_at: Marker,
    /// `manifests:`, in order.
    pub manifests: Vec<Manifest>,
}

pub(crate) struct ClusterDraft {
    pub name: String,
    pub version: Option<Version>,
    /// The subnets with where they were written (None: the default).
    pub pod_subnet: Option<IpNet>,
    pub pod_subnet_at: Option<Spanned<()>>,
    pub service_subnet: Option<IpNet>,
    pub service_subnet_at: Option<Spanned<()>>,
    pub endpoint: Option<String>,
    /// The endpoint's host, with where it was written (for the subnet checks).
    pub endpoint_host: Option<Spanned<String>>,
    pub calico: Option<Calico>,
    /// `calico.version` as written; None: chosen for the Kubernetes version
    /// ([`versions::default_calico`]) when the inventory is built.
    pub calico_version_at: Option<Spanned<String>>,
    pub package_repository: String,
    /// `packageLockWait`, in seconds.
    pub package_lock_wait: u64,
}

pub(crate) struct HostDraft {
    pub index: usize,
    pub name: Option<Spanned<String>>,
    pub address: Option<Spanned<String>>,
    /// `internalAddress`: the node IP, when the SSH address is not one of the host's own.
    pub internal_address: Option<Spanned<std::net::IpAddr>>,
    pub role: Option<Role>,
    /// Where `role` was written (for the one-control-plane check).
    pub role_at: Option<Spanned<()>>,
    pub labels: BTreeMap<String, String>,
    /// None: not written, the role's default applies.
    pub taints: Option<Vec<Spanned<Taint>>>,
    pub ssh: SshDraft,
}

/// SSH settings as written at one level (defaults or a host); None: not written there.
#[derive(Default, Clone)]
pub(crate) struct SshDraft {
    pub user: Option<String>,
    pub port: Option<u16>,
    /// Some(None): written as null, i.e. use ssh-agent.
    pub identity_file: Option<Option<PathBuf>>,
    pub known_hosts_file: Option<PathBuf>,
    pub host_key_policy: Option<HostKeyPolicy>,
    /// Some(empty): written as `none`.
    pub proxy_jump: Option<Vec<Jump>>,
    /// The ssh_config file: Some(None) when written as `false` (none read).
    pub config: Option<Option<PathBuf>>,
    /// Where `config` was written, for a file that cannot be read.
    pub config_at: Option<Spanned<()>>,
    /// The line each key was written on, by its name (`user`, `port`, ...), for
    /// `bootstrap plan -v`'s origins.
    pub lines: BTreeMap<&'static str, usize>,
}

fn report(r: &mut Reader, at: &Spanned<String>, field: &str, broken: Broken) {
    if broken.secret {
        let problem = r
            .src
            .problem_without_snippet(&at.start, field, broken.message, broken.help);
        r.problems.push(problem);
    } else {
        r.error_at(at, field, broken.message, broken.help);
    }
}

/// Reads the whole document. Returns the drafts of what could be read, plus the
/// defaults-level SSH settings.
pub(crate) fn read(r: &mut Reader, root: &MarkedYaml, ctx: &Context) -> Option<(Draft, SshDraft)> {
    let top = r.fields(root, "", &TOP_KEYS)?;
    let cluster = match top.get("cluster") {
        Some(node) => read_cluster(r, node, ctx),
        None => read_cluster_defaults(),
    };
    let ssh = top
        .get("ssh")
        .map(|node| read_ssh(r, node, "ssh", ctx))
        .unwrap_or_default();
    let hosts_node = top.required(r, "hosts", "hosts", "the list of hosts")?;
    let items = r.list(hosts_node, "hosts", "hosts")?;
    if items.is_empty() {
        r.error(
            hosts_node,
            "hosts",
            "the list of hosts is empty; it needs at least one control-plane host".into(),
            None,
        );
    }
    let hosts = items
        .iter()
        .enumerate()
        .filter_map(|(i, node)| read_host(r, node, i, ctx))
        .collect();
    let manifests = top
        .get("manifests")
        .map(|node| read_manifests(r, node, ctx))
        .unwrap_or_default();
    Some((
        Draft {
            cluster,
            hosts,
            hosts_at: hosts_node.span.start,
            manifests,
        },
        ssh,
    ))
}

fn read_cluster_defaults() -> ClusterDraft {
    ClusterDraft {
        name: DEFAULT_CLUSTER_NAME.to_string(),
        version: Some(versions::default_kubernetes()),
        pod_subnet: DEFAULT_POD_SUBNET.parse().ok(),
        pod_subnet_at: None,
        service_subnet: DEFAULT_SERVICE_SUBNET.parse().ok(),
        service_subnet_at: None,
        endpoint: None,
        endpoint_host: None,
        calico: Some(Calico {
            version: versions::DEFAULT_CALICO.to_string(),
            manifest: None,
            encapsulation: None,
        }),
        calico_version_at: None,
        package_repository: versions::DEFAULT_PACKAGE_REPOSITORY.to_string(),
        package_lock_wait: DEFAULT_PACKAGE_LOCK_WAIT,
    }
}

fn read_cluster(r: &mut Reader, node: &MarkedYaml, ctx: &Context) -> ClusterDraft {
    let mut draft = read_cluster_defaults();
    let Some(f) = r.fields(node, "cluster", &CLUSTER_KEYS) else {
        return draft;
    };
    if let Some(n) = f.get("name") {
        let field = "cluster.name";
        if let Some(name) = r.string(n, field, "the cluster's name") {
            match rules::cluster_name(&name.value) {
                Ok(()) => draft.name = name.value,
                Err(b) => report(r, &name, field, b),
            }
        }
    }
    if let Some(n) = f.get("kubernetesVersion") {
        let field = "cluster.kubernetesVersion";
        draft.version = None;
        if let Some(v) = r.string(n, field, "a Kubernetes version like 1.34.2") {
            match rules::kubernetes_version(&v.value) {
                Ok(version) => draft.version = Some(version),
                Err(b) => report(r, &v, field, b),
            }
        }
    }
    for (key, net, at) in [
        ("podSubnet", &mut draft.pod_subnet, &mut draft.pod_subnet_at),
        (
            "serviceSubnet",
            &mut draft.service_subnet,
            &mut draft.service_subnet_at,
        ),
    ] {
        let Some(n) = f.get(key) else { continue };
        let field = format!("cluster.{key}");
        *net = None;
        if let Some(s) = r.string(n, &field, "a subnet like 10.96.0.0/12") {
            let sized = if key == "podSubnet" {
                rules::pod_subnet
            } else {
                rules::service_subnet
            };
            match rules::subnet(&s.value).and_then(|parsed| sized(parsed).map(|()| parsed)) {
                Ok(parsed) => {
                    *net = Some(parsed);
                    *at = Some(s.map(|_| ()));
                }
                Err(b) => report(r, &s, &field, b),
            }
        }
    }
    if let Some(n) = f.get("controlPlaneEndpoint") {
        let field = "cluster.controlPlaneEndpoint";
        if let Some(e) = r.string(n, field, "`host:port`") {
            match rules::endpoint(&e.value) {
                Ok((host, _)) => {
                    draft.endpoint = Some(e.value.clone());
                    draft.endpoint_host = Some(e.map(|_| host));
                }
                Err(b) => report(r, &e, field, b),
            }
        }
    }
    if let Some(n) = f.get("calico") {
        draft.calico = read_calico(r, n, ctx, &mut draft.calico_version_at);
    }
    if let Some(n) = f.get("packageRepository") {
        let field = "cluster.packageRepository";
        if let Some(u) = r.string(n, field, "a URL") {
            match rules::url(&u.value) {
                Ok(()) => draft.package_repository = u.value.trim_end_matches('/').to_string(),
                Err(b) => report(
                    r,
                    &u,
                    field,
                    b.or_help(format!(
                        "the base of a pkgs.k8s.io mirror, like `{}`",
                        versions::DEFAULT_PACKAGE_REPOSITORY
                    )),
                ),
            }
        }
    }
    if let Some(n) = f.get("packageLockWait") {
        let field = "cluster.packageLockWait";
        if let Some(w) = r.string(n, field, "a duration like 10m, 90s or 600 (seconds)") {
            match crate::duration::parse_duration(&w.value) {
                Ok(d) if d.as_secs() <= MAX_PACKAGE_LOCK_WAIT => {
                    draft.package_lock_wait = d.as_secs()
                }
                Ok(_) => r.error_at(
                    &w,
                    field,
                    format!("`{}` is longer than a day", w.value),
                    Some("at most 24h; the default is 10m".into()),
                ),
                Err(e) => r.error_at(
                    &w,
                    field,
                    e,
                    Some("seconds, or a duration like 10m or 1h30m; 0 does not wait".into()),
                ),
            }
        }
    }
    draft
}

fn read_calico(
    r: &mut Reader,
    node: &MarkedYaml,
    ctx: &Context,
    version_at: &mut Option<Spanned<String>>,
) -> Option<Calico> {
    let f = r.fields(node, "cluster.calico", &CALICO_KEYS)?;
    let mut ok = true;
    let mut calico = Calico {
        version: versions::DEFAULT_CALICO.to_string(),
        manifest: None,
        encapsulation: None,
    };
    if let Some(n) = f.get("version") {
        let field = "cluster.calico.version";
        match r.string(n, field, "a Calico release like v3.30.3") {
            Some(v) => match rules::calico_version(&v.value) {
                Ok(()) => {
                    calico.version = v.value.clone();
                    *version_at = Some(v);
                }
                Err(b) => {
                    report(r, &v, field, b);
                    ok = false;
                }
            },
            None => ok = false,
        }
    }
    if let Some(n) = f.get("manifest") {
        match read_manifest_source(r, n, "cluster.calico.manifest", ctx) {
            Some((_, source)) => calico.manifest = Some(source),
            None => ok = false,
        }
    }
    if let Some(n) = f.get("encapsulation") {
        let field = "cluster.calico.encapsulation";
        match r.string(n, field, "`ipip` or `vxlan`") {
            Some(e) => {
                calico.encapsulation = Encapsulation::parse(&e.value);
                if calico.encapsulation.is_none() {
                    let names = Encapsulation::ALL.map(Encapsulation::name);
                    let help = super::tree::suggest(&e.value, &names)
                        .map(|s| format!("did you mean `{s}`?"));
                    r.error_at(
                        &e,
                        field,
                        format!(
                            "unknown encapsulation `{}`; it is `ipip` (IP-in-IP, IP protocol 4, \
                             with BGP on TCP 179) or `vxlan` (UDP 4789)",
                            e.value
                        ),
                        help,
                    );
                    ok = false;
                }
            }
            None => ok = false,
        }
    }
    ok.then_some(calico)
}

/// A manifest: an https URL as written, or a local file resolved against the
/// inventory's directory, which must exist now (it is read when `up` runs). Returns the
/// value as written with its position, and the source. Shared by
/// `cluster.calico.manifest` and `manifests`.
fn read_manifest_source(
    r: &mut Reader,
    node: &MarkedYaml,
    field: &str,
    ctx: &Context,
) -> Option<(Spanned<String>, ManifestSource)> {
    let m = r.string(node, field, "a URL or a file path")?;
    if m.value.trim().is_empty() {
        r.error_at(
            &m,
            field,
            "the entry is empty".into(),
            Some(
                "give a file path (relative to the inventory's directory) or an https:// URL"
                    .into(),
            ),
        );
        return None;
    }
    if m.value.contains("://") {
        return match rules::url(&m.value) {
            Ok(()) => {
                let source = ManifestSource::Url(m.value.clone());
                Some((m, source))
            }
            Err(b) => {
                report(
                    r,
                    &m,
                    field,
                    b.or_help("give an https:// URL or a local file path"),
                );
                None
            }
        };
    }
    match paths::resolve(&m.value, &ctx.base_dir, ctx.home.as_deref()) {
        Ok(path) if path.is_file() => Some((m, ManifestSource::File(path))),
        Ok(path) => {
            r.error_at(
                &m,
                field,
                format!("the manifest file {} does not exist", path.display()),
                Some("relative paths are relative to the inventory's directory".into()),
            );
            None
        }
        Err(e) => {
            r.error_at(&m, field, e, None);
            None
        }
    }
}

/// `manifests:`: files or https URLs applied in order once every node is Ready. Plain
/// http is refused ([`rules::url`]): the manifests are applied with the cluster's admin
/// credentials, so whoever can change them in transit owns the cluster.
fn read_manifests(r: &mut Reader, node: &MarkedYaml, ctx: &Context) -> Vec<Manifest> {
    let Some(items) = r.list(node, "manifests", "manifest files or https:// URLs") else {
        return Vec::new();
    };
    let mut out: Vec<Spanned<Manifest>> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("manifests[{i}]");
        let Some((written, source)) = read_manifest_source(r, item, &field, ctx) else {
            continue;
        };
        if let Some(first) = out.iter().find(|m| same_source(&m.value.source, &source)) {
            r.error_at(
                &written,
                &field,
                format!(
                    "`{}` is already listed (line {}); each manifest is applied once",
                    written.value,
                    first.start.line()
                ),
                None,
            );
            continue;
        }
        let name = written.value.clone();
        out.push(written.map(|_| Manifest { name, source }));
    }
    out.into_iter().map(|m| m.value).collect()
}

/// Whether two manifest sources are the same: URLs as written, files after resolving
/// `.`, `..` and symbolic links (`/etc/x` and `/etc/../etc/x` are one file, applied once).
fn same_source(a: &ManifestSource, b: &ManifestSource) -> bool {
    match (a, b) {
        (ManifestSource::File(a), ManifestSource::File(b)) => {
            a == b
                || matches!(
                    (std::fs::canonicalize(a), std::fs::canonicalize(b)),
                    (Ok(x), Ok(y)) if x == y
                )
        }
        _ => a == b,
    }
}

fn read_ssh(r: &mut Reader, node: &MarkedYaml, field: &str, ctx: &Context) -> SshDraft {
    let mut draft = SshDraft::default();
    let Some(f) = r.fields(node, field, &SSH_KEYS) else {
        return draft;
    };
    for key in SSH_KEYS {
        if let Some(n) = f.get(key) {
            draft.lines.insert(key, n.span.start.line());
        }
    }
    if let Some(n) = f.get("config") {
        let field = join(field, "config");
        if let Some(p) = r.string(n, &field, "an ssh_config file, or false") {
            if p.value == "false" {
                draft.config = Some(None);
            } else {
                match paths::resolve(&p.value, &ctx.base_dir, ctx.home.as_deref()) {
                    Ok(path) => draft.config = Some(Some(path)),
                    Err(e) => r.error_at(&p, &field, e, None),
                }
            }
            draft.config_at = Some(p.map(|_| ()));
        }
    }
    if let Some(n) = f.get("user") {
        let field = join(field, "user");
        if let Some(u) = r.string(n, &field, "a user name") {
            if u.value.trim().is_empty() {
                r.error_at(&u, &field, "the SSH user is empty".into(), None);
            } else if u.value.contains(char::is_whitespace) {
                r.error_at(
                    &u,
                    &field,
                    format!("`{}` is not a user name", u.value),
                    None,
                );
            } else {
                draft.user = Some(u.value);
            }
        }
    }
    if let Some(n) = f.get("port") {
        draft.port = r.port(n, &join(field, "port")).map(|p| p.value);
    }
    if let Some(n) = f.get("hostKeyPolicy") {
        let field = join(field, "hostKeyPolicy");
        let names = [
            HostKeyPolicy::Strict.name(),
            HostKeyPolicy::AcceptNew.name(),
        ];
        if let Some(p) = r.string(n, &field, "`strict` or `accept-new`") {
            draft.host_key_policy = HostKeyPolicy::parse(&p.value);
            if draft.host_key_policy.is_none() {
                let help =
                    super::tree::suggest(&p.value, &names).map(|s| format!("did you mean `{s}`?"));
                r.error_at(
                    &p,
                    &field,
                    format!(
                        "unknown host key policy `{}`; it is `strict` (an unknown host key \
                         stops the run) or `accept-new` (it is recorded)",
                        p.value
                    ),
                    help,
                );
            }
        }
    }
    if let Some(n) = f.get("proxyJump") {
        let field = join(field, "proxyJump");
        if let Some(p) = r.string(
            n,
            &field,
            "jump hosts: `[user@]host[:port]`, comma-separated",
        ) {
            match crate::ssh::jump::parse_chain(&p.value) {
                Ok(chain) => draft.proxy_jump = Some(chain),
                Err(e) => r.error_at(
                    &p,
                    &field,
                    e,
                    Some("as OpenSSH's ProxyJump: `bastion`, `admin@10.0.0.5:2222`, `a,b` (through a, then b), or `none`".into()),
                ),
            }
        }
    }
    if f.has("identityFile") {
        draft.identity_file = Some(None);
    }
    for (key, what) in [
        ("identityFile", "a private key file"),
        ("knownHostsFile", "a known_hosts file"),
    ] {
        let Some(n) = f.get(key) else { continue };
        let field = join(field, key);
        let Some(p) = r.string(n, &field, what) else {
            continue;
        };
        match paths::resolve(&p.value, &ctx.base_dir, ctx.home.as_deref()) {
            Ok(path) if key == "identityFile" => draft.identity_file = Some(Some(path)),
            Ok(path) => draft.known_hosts_file = Some(path),
            Err(e) => r.error_at(&p, &field, e, None),
        }
    }
    draft
}

fn read_host(r: &mut Reader, node: &MarkedYaml, index: usize, ctx: &Context) -> Option<HostDraft> {
    let field = format!("hosts[{index}]");
    let f = r.fields(node, &field, &HOST_KEYS)?;
    let mut host = HostDraft {
        index,
        name: None,
        address: None,
        internal_address: None,
        role: None,
        role_at: None,
        labels: BTreeMap::new(),
        taints: None,
        ssh: SshDraft::default(),
    };
    if let Some(n) = f.required(r, "name", &field, "the node name") {
        let field = join(&field, "name");
        if let Some(name) = r.string(n, &field, "the node name") {
            match rules::node_name(&name.value) {
                Ok(()) => host.name = Some(name),
                Err(b) => report(r, &name, &field, b),
            }
        }
    }
    if let Some(n) = f.required(r, "address", &field, "an IP address or host name") {
        let field = join(&field, "address");
        if let Some(a) = r.string(n, &field, "an IP address or host name") {
            match rules::address(&a.value) {
                Ok(()) => host.address = Some(a),
                Err(b) => report(r, &a, &field, b),
            }
        }
    }
    if let Some(n) = f.get("internalAddress") {
        let field = join(&field, "internalAddress");
        if let Some(a) = r.string(n, &field, "an IP address of the host") {
            match rules::internal_address(&a.value) {
                Ok(ip) => host.internal_address = Some(a.map(|_| ip)),
                Err(b) => report(r, &a, &field, b),
            }
        }
    }
    if let Some(n) = f.required(r, "role", &field, "`control-plane` or `worker`") {
        let field = join(&field, "role");
        if let Some(role) = r.string(n, &field, "`control-plane` or `worker`") {
            host.role = read_role(r, &role, &field);
            host.role_at = Some(role.map(|_| ()));
        }
    }
    if let Some(n) = f.get("labels") {
        read_labels(r, n, &join(&field, "labels"), &mut host.labels);
    }
    if let Some(n) = f.get("taints") {
        host.taints = read_taints(r, n, &join(&field, "taints"));
    }
    if let Some(n) = f.get("ssh") {
        host.ssh = read_ssh(r, n, &join(&field, "ssh"), ctx);
    }
    Some(host)
}

fn read_role(r: &mut Reader, role: &Spanned<String>, field: &str) -> Option<Role> {
    match role.value.as_str() {
        "control-plane" => Some(Role::ControlPlane),
        "worker" => Some(Role::Worker),
        other => {
            let help = if other == "master" {
                Some("the `master` role is called `control-plane` since Kubernetes 1.24".into())
            } else {
                super::tree::suggest(other, &["control-plane", "worker"])
                    .map(|s| format!("did you mean `{s}`?"))
            };
            r.error_at(
                role,
                field,
                format!("unknown role `{other}`; a host is a `control-plane` or a `worker`"),
                help,
            );
            None
        }
    }
}

fn read_labels(r: &mut Reader, node: &MarkedYaml, field: &str, out: &mut BTreeMap<String, String>) {
    let Some(pairs) = r.pairs(node, field) else {
        return;
    };
    for (key, value_node) in pairs {
        let key_field = format!("{field}.{}", key.value);
        if let Err(b) = rules::qualified_name(&key.value) {
            report(r, &key, field, b);
            continue;
        }
        if let Some(b) = rules::reserved_label(&key.value) {
            report(r, &key, field, b);
            continue;
        }
        let value = if super::tree::is_null(value_node) {
            String::new()
        } else {
            match r.string(value_node, &key_field, "a label value (text)") {
                Some(v) => {
                    if let Err(b) = rules::label_value(&v.value) {
                        report(r, &v, &key_field, b);
                        continue;
                    }
                    v.value
                }
                None => continue,
            }
        };
        out.insert(key.value, value);
    }
}

fn read_taints(r: &mut Reader, node: &MarkedYaml, field: &str) -> Option<Vec<Spanned<Taint>>> {
    let items = r.list(node, field, "taints like `key=value:NoSchedule`")?;
    let mut taints: Vec<Spanned<Taint>> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("{field}[{i}]");
        let Some(s) = r.string(item, &field, "a taint like `key=value:NoSchedule`") else {
            continue;
        };
        let taint = match rules::taint(&s.value) {
            Ok(t) => t,
            Err(b) => {
                report(r, &s, &field, b);
                continue;
            }
        };
        if let Some(b) = rules::reserved_taint(&taint.key) {
            report(r, &s, &field, b);
            continue;
        }
        if let Some(first) = taints
            .iter()
            .find(|t| t.value.key == taint.key && t.value.effect == taint.effect)
        {
            r.error_at(
                &s,
                &field,
                format!(
                    "a taint `{}:{}` is already listed (line {}); a node has at most one taint \
                     per key and effect",
                    taint.key,
                    taint.effect,
                    first.start.line()
                ),
                None,
            );
            continue;
        }
        taints.push(s.map(|_| taint));
    }
    Some(taints)
}

/// The resolved inventory; only called when reading and checking found no problem, so
/// every required value is present.
pub(crate) fn build(path: &Path, draft: Draft, ssh: Vec<Option<Ssh>>) -> Option<Inventory> {
    let c = draft.cluster;
    let mut calico = c.calico?;
    let version = c.version?;
    if c.calico_version_at.is_none() {
        calico.version = versions::default_calico(&version).to_string();
    }
    let cluster = Cluster {
        name: c.name,
        kubernetes_version: version,
        pod_subnet: c.pod_subnet?.to_string(),
        service_subnet: c.service_subnet?.to_string(),
        control_plane_endpoint: c.endpoint,
        calico,
        package_repository: c.package_repository,
        package_lock_wait: c.package_lock_wait,
    };
    let hosts = draft
        .hosts
        .into_iter()
        .zip(ssh)
        .map(|(h, ssh)| {
            let role = h.role?;
            let taints = match h.taints {
                Some(list) => list.into_iter().map(|t| t.value).collect(),
                None => default_taints(role),
            };
            Some(Host {
                name: h.name?.value,
                address: h.address?.value,
                internal_address: h.internal_address.map(|a| a.value),
                node_address: None,
                role,
                labels: h.labels,
                taints,
                ssh: ssh?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Inventory {
        path: path.to_path_buf(),
        cluster,
        hosts,
        manifests: draft.manifests,
    })
}

/// The taints a role gets when the inventory doesn't list any (reference §7).
pub fn default_taints(role: Role) -> Vec<Taint> {
    match role {
        Role::ControlPlane => vec![Taint {
            key: CONTROL_PLANE_TAINT.to_string(),
            value: None,
            effect: "NoSchedule".to_string(),
        }],
        Role::Worker => Vec::new(),
    }
}
