//! Facts: what a host has right now, gathered in ONE round trip.
//!
//! The plan is only as good as what it is computed from, and a round trip per question
//! would make a converged re-run slow. So one read-only script (templates/facts.sh, plus
//! the contents of every file a playbook writes) prints a sectioned report, and
//! [`parse`] — a pure function, unit-tested on sample outputs — turns it into
//! [`HostFacts`]. `HostFacts` is plain serde data: the playbooks' `when` conditions see it
//! as `facts`, and `--json` style output can print it as is.
//!
//! Report format: a line starting with `@@` opens a section (`@@packages`, `@@file PATH`,
//! ...). File contents are printed with each line prefixed by `|` (so no content line can
//! look like a section header) and followed by a blank line and `@@eof`, which keeps them
//! exact, including a missing final newline.

use std::collections::BTreeMap;

use minijinja::context;
use serde::{Deserialize, Serialize};

use crate::playbook;
use crate::ssh::{Connection, RemoteCommand, SshError};

/// The first line of a report; bump the number when the format changes.
const HEADER: &str = "@@bootstrap-facts 1";
/// The last line: its absence means the output was cut short.
const END: &str = "@@end";

/// Packages the playbooks ask about.
pub const PACKAGES: &[&str] = &[
    "docker.io",
    "containerd",
    "kubelet",
    "kubeadm",
    "kubectl",
    "apt-transport-https",
    "ca-certificates",
    "curl",
    "gpg",
    "conntrack",
];

/// Sysctls the playbooks ask about (the same list is in templates/facts.sh).
pub const SYSCTLS: &[&str] = &[
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.ipv4.ip_forward",
];

/// Units the playbooks ask about.
pub const SERVICES: &[&str] = &["containerd", "docker", "kubelet"];

/// The Ubuntu releases this tool supports (VERSION_ID).
pub const SUPPORTED_UBUNTU: &[&str] = &["22.04", "24.04"];

/// Everything the plan decides on, about one host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostFacts {
    pub os: Os,
    pub hostname: String,
    /// The host's addresses and default routes.
    #[serde(default)]
    pub network: Network,
    /// CPUs and memory, as kubeadm's preflight counts them.
    #[serde(default)]
    pub resources: Resources,
    pub swap: Swap,
    /// Loaded kernel modules (`lsmod`).
    pub modules: Vec<String>,
    /// Every sysctl of [`SYSCTLS`] by key; the value is empty when the kernel does not
    /// have the key (net.bridge.* before br_netfilter is loaded).
    pub sysctl: BTreeMap<String, String>,
    /// Every package of [`PACKAGES`], installed or not.
    pub packages: BTreeMap<String, Package>,
    /// `apt-mark showhold`.
    pub held: Vec<String>,
    pub apt: Apt,
    /// Every unit of [`SERVICES`].
    pub services: BTreeMap<String, Service>,
    pub containerd: Containerd,
    pub kubernetes: Kubernetes,
    /// Contents of the files playbooks write, by path; None when the file is absent.
    pub files: BTreeMap<String, Option<String>>,
}

/// From /etc/os-release.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Os {
    /// e.g. "ubuntu".
    pub id: String,
    /// e.g. "24.04".
    pub version_id: String,
    /// e.g. "noble".
    pub codename: String,
    /// e.g. "Ubuntu 24.04.3 LTS".
    pub pretty_name: String,
}

/// The host's network as `ip` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// Every address on an interface (`ip -o addr show`), loopback included.
    pub addresses: Vec<InterfaceAddress>,
    /// The interface of the default route (IPv4 first, the lowest metric), if any.
    pub default_interface: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterfaceAddress {
    /// e.g. "eth0".
    pub interface: String,
    pub ip: std::net::IpAddr,
    /// The prefix length of the interface's network.
    pub prefix: u8,
}

impl Network {
    /// The interface holding `ip`, if the host has it.
    pub fn interface_of(&self, ip: std::net::IpAddr) -> Option<&str> {
        self.addresses
            .iter()
            .find(|a| a.ip == ip)
            .map(|a| a.interface.as_str())
    }

    /// The first global (not loopback, not link-local) IPv4 address of `interface`.
    pub fn ipv4_of(&self, interface: &str) -> Option<std::net::IpAddr> {
        self.addresses
            .iter()
            .filter(|a| a.interface == interface)
            .map(|a| a.ip)
            .find(|ip| match ip {
                std::net::IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local(),
                std::net::IpAddr::V6(_) => false,
            })
    }
}

/// CPUs and memory as kubeadm's preflight NumCPU and Mem checks count them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// `nproc` (Go's runtime.NumCPU); None when unknown.
    pub cpus: Option<u32>,
    /// MemTotal of /proc/meminfo in KiB (the total RAM sysinfo(2) reports); None when unknown.
    pub memory_kib: Option<u64>,
    /// The file system type of /sys/fs/cgroup (`stat -f`): `cgroup2fs` on a host booted
    /// with the unified cgroup v2 hierarchy (Ubuntu's default since 21.10), `tmpfs` under
    /// cgroup v1; None when unknown.
    #[serde(default)]
    pub cgroup_fs: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Swap {
    /// Active swap areas (`swapon --show`), e.g. "/swap.img".
    pub active: Vec<String>,
    /// Lines of /etc/fstab that turn swap on at boot: the ones the prerequisite's
    /// `sed -ri '/\sswap\s/ s/^#?/#/'` would change (containing whitespace-"swap"-whitespace
    /// and not starting with `#`).
    pub fstab_lines: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Package {
    /// Unpacked and configured: dpkg's status letter is `i` (e.g. `ii`, `hi`).
    pub installed: bool,
    /// dpkg's `${db:Status-Abbrev}`, trimmed (e.g. "ii", "rc"); empty when unknown to dpkg.
    pub status: String,
    /// e.g. "1.34.2-1.1"; empty when unknown to dpkg.
    pub version: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Apt {
    /// How many package lists apt has (0 on a host that never ran `apt-get update`).
    pub package_lists: u32,
    /// /etc/apt/keyrings exists.
    pub keyrings_dir: bool,
    /// /etc/apt/keyrings/kubernetes-apt-keyring.gpg exists and is not empty.
    pub keyring: bool,
    /// Other apt source files naming pkgs.k8s.io than /etc/apt/sources.list.d/kubernetes.list,
    /// by path, with their content.
    pub other_kubernetes_sources: BTreeMap<String, String>,
    /// That keyring is readable by everyone: apt verifies signatures as its `_apt`
    /// user and ignores a keyring it cannot read (the repository then counts as
    /// unsigned), e.g. one written under umask 077.
    pub keyring_readable: bool,
    /// The minor (e.g. "1.34") of the pkgs.k8s.io repository in
    /// /etc/apt/sources.list.d/kubernetes.list, if any.
    pub kubernetes_repo_minor: Option<String>,
    /// Versions of kubeadm apt can install (`apt-cache madison kubeadm`), e.g. "1.34.2-1.1".
    pub kubeadm_versions: Vec<String>,
    /// Packages dpkg left half-installed or half-configured (an interrupted run): apt
    /// refuses to work until `dpkg --configure -a` finishes them.
    pub interrupted: Vec<String>,
    /// The containerd version apt would install (`apt-cache policy`), if known.
    pub containerd_candidate: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// `systemctl is-active`: active, activating, inactive, failed, ...
    pub active: String,
    /// `systemctl is-enabled`: enabled, disabled, masked, ...; "not-found" for no unit.
    pub enabled: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Containerd {
    /// e.g. "1.7.28"; None when containerd is not installed.
    pub version: Option<String>,
    /// /etc/containerd/config.toml exists and is not empty.
    pub config_file: bool,
    /// /etc/containerd/config.toml is exactly what the runtime playbook writes
    /// (containerd's default with SystemdCgroup = true).
    pub config_current: bool,
    /// `SystemdCgroup` in `containerd config dump`, if the dump has it.
    pub systemd_cgroup: Option<bool>,
    /// `disabled_plugins` in `containerd config dump`.
    pub disabled_plugins: Vec<String>,
    /// The CRI plugin's CNI binary directories in `containerd config dump`.
    pub cni_bin_dirs: Vec<String>,
    /// The running containerd (the unit's main process) started before
    /// /etc/containerd/config.toml was last written, so it runs with an older config
    /// (containerd reads it only at start; `containerd config dump` reads the file, not the
    /// daemon, so it can't tell). False when containerd is not running.
    pub started_before_config: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Kubernetes {
    /// /etc/kubernetes/admin.conf exists: `kubeadm init` ran here.
    pub admin_conf: bool,
    /// /etc/kubernetes/kubelet.conf exists: this node joined (or was initialized).
    pub kubelet_conf: bool,
    /// /etc/kubernetes/manifests/kube-apiserver.yaml exists.
    pub apiserver_manifest: bool,
    /// /root/.kube/config is a copy of admin.conf.
    pub root_kubeconfig_current: bool,
    /// /root/.kube/config exists.
    #[serde(default)]
    pub root_kubeconfig: bool,
    /// The login user (the one sudo was called by, or root).
    #[serde(default)]
    pub login_user: String,
    /// The login user's ~/.kube/config exists.
    #[serde(default)]
    pub login_kubeconfig: bool,
    /// The login user's ~/.kube/config is a copy of admin.conf.
    #[serde(default)]
    pub login_kubeconfig_current: bool,
    /// `kubeadm version -o short`, e.g. "v1.34.2"; None when kubeadm is not installed.
    pub kubeadm_version: Option<String>,
    /// The API server's version from the tag of its image in
    /// /etc/kubernetes/manifests/kube-apiserver.yaml, without the "v" (e.g. "1.34.2"):
    /// the cluster's version as `kubeadm init` / `upgrade apply` last set it. None when
    /// there is no manifest or its image has no version tag.
    #[serde(default)]
    pub apiserver_version: Option<String>,
    /// The version of the kube-proxy DaemonSet's image ("1.34.2"), which `kubeadm upgrade
    /// apply` updates last: None when there is no admin.conf, no answer or no DaemonSet.
    #[serde(default)]
    pub kube_proxy_version: Option<String>,
}

/// "registry.k8s.io/kube-apiserver:v1.34.2" -> "1.34.2" (a tag that is a version).
fn image_version(image: &str) -> Option<String> {
    let tag = image.rsplit_once(':')?.1.strip_prefix('v')?;
    semver::Version::parse(tag).ok().map(|v| v.to_string())
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum FactsError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error(transparent)]
    Playbook(#[from] playbook::PlaybookError),
    #[error("{host}: the fact-gathering script failed (exit status {status}): {stderr}")]
    Failed {
        host: String,
        status: u32,
        stderr: String,
    },
    #[error("the fact report is incomplete: {0}")]
    #[diagnostic(help("the connection may have been cut, or the host's shell is not POSIX"))]
    Malformed(String),
}

/// The command that gathers facts: the script rendered with the file paths to fetch.
pub fn command() -> Result<RemoteCommand, playbook::PlaybookError> {
    let mut files = playbook::catalog().file_paths();
    files.push("/etc/fstab");
    files.sort_unstable();
    files.dedup();
    let script = playbook::render_template("facts.sh", &context! { files => files })?;
    Ok(RemoteCommand {
        script,
        stdin: None,
        root: true,
        secrets: Vec::new(),
    })
}

/// Gathers the facts of the host behind `conn`: one command, read-only.
pub async fn gather(conn: &Connection) -> Result<HostFacts, FactsError> {
    let out = conn.run(&command()?).await?;
    if !out.success() {
        return Err(FactsError::Failed {
            host: conn.target.host.clone(),
            status: out.status,
            stderr: out.stderr.trim().to_string(),
        });
    }
    parse(&out.stdout)
}

/// One section of the report: its header line (without `@@`) and its body lines.
struct Section<'a> {
    header: &'a str,
    body: Vec<&'a str>,
}

fn sections(report: &str) -> Vec<Section<'_>> {
    let mut out: Vec<Section> = Vec::new();
    for line in report.split('\n') {
        if let Some(header) = line.strip_prefix("@@") {
            out.push(Section {
                header,
                body: Vec::new(),
            });
        } else if let Some(s) = out.last_mut() {
            s.body.push(line);
        }
    }
    out
}

/// `key=value` lines of a section.
fn pairs<'a>(body: &[&'a str]) -> BTreeMap<&'a str, &'a str> {
    body.iter()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

fn nonempty<'a>(body: &[&'a str]) -> std::vec::IntoIter<&'a str> {
    body.iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .into_iter()
}

/// A file section's exact content: the body lines joined back, `|` prefixes removed.
fn file_content(body: &[&str]) -> String {
    let joined = body.join("\n");
    match joined.strip_prefix('|') {
        Some(rest) => rest.replace("\n|", "\n"),
        None => String::new(),
    }
}

/// Parses a fact report (the output of [`command`]).
pub fn parse(report: &str) -> Result<HostFacts, FactsError> {
    let secs = sections(report);
    match secs.first() {
        Some(s) if format!("@@{}", s.header) == HEADER => {}
        _ => {
            return Err(FactsError::Malformed(format!(
                "it does not start with `{HEADER}`"
            )))
        }
    }
    if !secs.iter().any(|s| format!("@@{}", s.header) == END) {
        return Err(FactsError::Malformed(format!("`{END}` is missing")));
    }
    let mut f = HostFacts::default();
    for p in PACKAGES {
        f.packages.insert(p.to_string(), Package::default());
    }
    for k in SYSCTLS {
        f.sysctl.insert(k.to_string(), String::new());
    }
    for s in SERVICES {
        f.services.insert(
            s.to_string(),
            Service {
                active: "unknown".into(),
                enabled: "not-found".into(),
            },
        );
    }
    for sec in &secs {
        let (name, arg) = sec.header.split_once(' ').unwrap_or((sec.header, ""));
        let body = &sec.body;
        match name {
            "os-release" => f.os = parse_os_release(body),
            "hostname" => f.hostname = nonempty(body).next().unwrap_or("").to_string(),
            "network" => f.network = parse_network(body),
            "resources" => {
                let kv = pairs(body);
                f.resources = Resources {
                    cpus: kv.get("cpus").and_then(|v| v.parse().ok()),
                    memory_kib: kv.get("mem_kib").and_then(|v| v.parse().ok()),
                    cgroup_fs: kv
                        .get("cgroup_fs")
                        .filter(|v| !v.is_empty())
                        .map(|v| v.to_string()),
                };
            }
            "swapon" => {
                f.swap.active = nonempty(body)
                    .filter_map(|l| l.split_whitespace().next())
                    .map(str::to_string)
                    .collect()
            }
            "lsmod" => {
                f.modules = nonempty(body)
                    .filter(|l| !l.starts_with("Module "))
                    .filter_map(|l| l.split_whitespace().next())
                    .map(str::to_string)
                    .collect()
            }
            "sysctl" => {
                for (k, v) in pairs(body) {
                    f.sysctl.insert(k.to_string(), v.to_string());
                }
            }
            "packages" => {
                for (p, v) in pairs(body) {
                    f.packages.insert(p.to_string(), parse_dpkg(v));
                }
            }
            "held" => f.held = nonempty(body).map(str::to_string).collect(),
            "dpkg-interrupted" => f.apt.interrupted = nonempty(body).map(str::to_string).collect(),
            "madison-kubeadm" => {
                f.apt.kubeadm_versions = nonempty(body)
                    .filter_map(|l| l.split('|').nth(1))
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
                    .collect()
            }
            "apt" => {
                let kv = pairs(body);
                f.apt.package_lists = kv
                    .get("package_lists")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                f.apt.keyrings_dir = kv.get("keyrings_dir") == Some(&"yes");
                f.apt.keyring = kv.get("keyring") == Some(&"yes");
                f.apt.keyring_readable = kv.get("keyring_readable") == Some(&"yes");
                f.apt.containerd_candidate = kv
                    .get("containerd_candidate")
                    .filter(|v| !v.is_empty() && **v != "(none)")
                    .map(|v| v.to_string());
            }
            "services" => {
                for (unit, v) in pairs(body) {
                    let mut words = v.split_whitespace();
                    let active = words.next().unwrap_or("unknown").to_string();
                    let enabled = words.next().unwrap_or("not-found").to_string();
                    f.services
                        .insert(unit.to_string(), Service { active, enabled });
                }
            }
            "containerd" => f.containerd = parse_containerd(body),
            "kubernetes" => {
                let kv = pairs(body);
                let yes = |k: &str| kv.get(k) == Some(&"yes");
                f.kubernetes = Kubernetes {
                    admin_conf: yes("admin_conf"),
                    kubelet_conf: yes("kubelet_conf"),
                    apiserver_manifest: yes("apiserver_manifest"),
                    root_kubeconfig_current: yes("root_kubeconfig_current"),
                    root_kubeconfig: yes("root_kubeconfig"),
                    login_user: kv.get("login_user").unwrap_or(&"").to_string(),
                    login_kubeconfig: yes("login_kubeconfig"),
                    login_kubeconfig_current: yes("login_kubeconfig_current"),
                    kubeadm_version: kv
                        .get("kubeadm_version")
                        .filter(|v| !v.is_empty())
                        .map(|v| v.to_string()),
                    apiserver_version: kv.get("apiserver_image").and_then(|i| image_version(i)),
                    kube_proxy_version: kv.get("kube_proxy_image").and_then(|i| image_version(i)),
                };
            }
            "file" => {
                f.files.insert(arg.to_string(), Some(file_content(body)));
            }
            "apt-source" => {
                f.apt
                    .other_kubernetes_sources
                    .insert(arg.to_string(), file_content(body));
            }
            "absent" => {
                f.files.insert(arg.to_string(), None);
            }
            _ => {}
        }
    }
    if let Some(Some(fstab)) = f.files.remove("/etc/fstab") {
        f.swap.fstab_lines = fstab_swap_lines(&fstab);
    }
    f.apt.kubernetes_repo_minor = f
        .files
        .get("/etc/apt/sources.list.d/kubernetes.list")
        .and_then(|c| c.as_deref())
        .and_then(repo_minor);
    Ok(f)
}

/// `addr=eth0 10.0.0.5/24` and `route4=default via 10.0.0.1 dev eth0 metric 100` lines.
fn parse_network(body: &[&str]) -> Network {
    let mut net = Network::default();
    // (family rank, metric, interface): IPv4 before IPv6, then the lowest metric.
    let mut best: Option<(u8, u64, String)> = None;
    for line in body {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key {
            "addr" => {
                let mut words = value.split_whitespace();
                let (Some(interface), Some(cidr)) = (words.next(), words.next()) else {
                    continue;
                };
                let (ip, prefix) = cidr.split_once('/').unwrap_or((cidr, ""));
                if let Ok(ip) = ip.parse() {
                    net.addresses.push(InterfaceAddress {
                        // `ip` writes VLANs and veths as `eth0@if7`.
                        interface: interface.split('@').next().unwrap_or(interface).to_string(),
                        ip,
                        prefix: prefix.parse().unwrap_or(0),
                    });
                }
            }
            "route4" | "route6" => {
                let words: Vec<&str> = value.split_whitespace().collect();
                let after = |w: &str| {
                    words
                        .iter()
                        .position(|x| *x == w)
                        .and_then(|i| words.get(i + 1))
                };
                let Some(dev) = after("dev") else { continue };
                let metric = after("metric").and_then(|m| m.parse().ok()).unwrap_or(0);
                let rank = u8::from(key == "route6");
                let candidate = (rank, metric, dev.to_string());
                if best.as_ref().is_none_or(|b| candidate < *b) {
                    best = Some(candidate);
                }
            }
            _ => {}
        }
    }
    net.default_interface = best.map(|(_, _, dev)| dev);
    net
}

fn parse_os_release(body: &[&str]) -> Os {
    let kv = pairs(body);
    let get = |k: &str| {
        kv.get(k)
            .map(|v| v.trim_matches('"').trim_matches('\'').to_string())
            .unwrap_or_default()
    };
    Os {
        id: get("ID"),
        version_id: get("VERSION_ID"),
        codename: get("VERSION_CODENAME"),
        pretty_name: get("PRETTY_NAME"),
    }
}

/// `${db:Status-Abbrev}${Version}`, e.g. `ii 1.34.2-1.1` (the abbreviation is three
/// characters, the third a space when there is no error flag); empty when unknown.
fn parse_dpkg(v: &str) -> Package {
    let status: String = v.chars().take(3).collect();
    let version = v.chars().skip(3).collect::<String>().trim().to_string();
    let status = status.trim().to_string();
    Package {
        installed: status.chars().nth(1) == Some('i'),
        status,
        version,
    }
}

fn parse_containerd(body: &[&str]) -> Containerd {
    let kv = pairs(body);
    // "containerd github.com/containerd/containerd 1.7.28 " or ".../v2 v2.1.4 <commit>"
    let version = kv.get("version").and_then(|v| {
        v.split_whitespace()
            .nth(2)
            .map(|s| s.trim_start_matches('v').to_string())
    });
    let list = |v: &str| -> Vec<String> {
        v.trim_matches(|c| c == '[' || c == ']')
            .split(',')
            .map(|s| s.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let mut cni_bin_dirs = Vec::new();
    if let Some(v) = kv.get("dump.bin_dir") {
        cni_bin_dirs.extend(list(v));
    }
    if let Some(v) = kv.get("dump.bin_dirs") {
        cni_bin_dirs.extend(list(v));
    }
    Containerd {
        version,
        config_file: kv.get("config_file") == Some(&"yes"),
        config_current: kv.get("config_current") == Some(&"yes"),
        systemd_cgroup: kv.get("dump.SystemdCgroup").and_then(|v| v.parse().ok()),
        disabled_plugins: kv
            .get("dump.disabled_plugins")
            .map(|v| list(v))
            .unwrap_or_default(),
        cni_bin_dirs,
        started_before_config: kv.get("started_before_config") == Some(&"yes"),
    }
}

/// The fstab lines `sed -ri '/\sswap\s/ s/^#?/#/'` would change.
pub fn fstab_swap_lines(fstab: &str) -> Vec<String> {
    fstab
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            let b = l.as_bytes();
            l.match_indices("swap").any(|(i, _)| {
                i > 0
                    && b[i - 1].is_ascii_whitespace()
                    && b.get(i + 4).is_some_and(|c| c.is_ascii_whitespace())
            })
        })
        .map(str::to_string)
        .collect()
}

/// "1.34" from `deb [...] https://pkgs.k8s.io/core:/stable:/v1.34/deb/ /`.
fn repo_minor(list: &str) -> Option<String> {
    list.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split('/'))
        .find_map(|part| {
            let v = part.strip_prefix('v')?;
            let (maj, min) = v.split_once('.')?;
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            (digits(maj) && digits(min)).then(|| v.to_string())
        })
}

/// kubeadm's constants.ControlPlaneNumCPU and ControlPlaneMem (MB): its preflight's
/// NumCPU and Mem checks refuse a smaller control plane.
pub const CONTROL_PLANE_NUM_CPU: u32 = 2;
pub const CONTROL_PLANE_MEM_MB: u64 = 1700;

impl HostFacts {
    /// Why kubeadm's preflight would refuse this host as a control plane (NumCPU, Mem),
    /// in kubeadm's words; None when it has enough, or the facts do not say.
    pub fn control_plane_shortfall(&self) -> Option<String> {
        let mut short = Vec::new();
        if let Some(cpus) = self.resources.cpus.filter(|n| *n < CONTROL_PLANE_NUM_CPU) {
            short.push(format!(
                "the number of available CPUs {cpus} is less than the required \
                 {CONTROL_PLANE_NUM_CPU}"
            ));
        }
        // kubeadm: sysinfo's total RAM / 1024 / 1024.
        if let Some(mb) = self
            .resources
            .memory_kib
            .map(|kib| kib / 1024)
            .filter(|mb| *mb < CONTROL_PLANE_MEM_MB)
        {
            short.push(format!(
                "the system RAM ({mb} MB) is less than the minimum {CONTROL_PLANE_MEM_MB} MB"
            ));
        }
        (!short.is_empty()).then(|| {
            format!(
                "kubeadm's preflight refuses it as a control plane: {} (checks NumCPU, Mem)",
                short.join("; ")
            )
        })
    }

    /// Why a kubelet of Kubernetes `version` cannot run on this host, if it cannot: from
    /// 1.35 the kubelet refuses a host booted with cgroup v1 (KubeletConfiguration
    /// failCgroupV1 defaults to true, KEP-5573), and kubeadm's preflight says so first
    /// (system-validators CgroupsValidator, an error for kubelet >= 1.35.0-0). None on
    /// cgroup v2, before 1.35, or when the facts do not say.
    pub fn cgroup_v1_refusal(&self, version: &semver::Version) -> Option<String> {
        let fs = self.resources.cgroup_fs.as_deref()?;
        (fs != "cgroup2fs" && (version.major, version.minor) >= (1, 35)).then(|| {
            format!(
                "it runs cgroup v1 (/sys/fs/cgroup is {fs}, not cgroup2fs) and the kubelet of \
                 Kubernetes {version} refuses that (failCgroupV1; kubeadm's preflight: \
                 \"cgroups v1 support is deprecated and will be removed in a future release. \
                 Please migrate to cgroups v2\"): boot it with cgroup v2, Ubuntu's default \
                 (drop systemd.unified_cgroup_hierarchy=0 from the kernel command line), or \
                 use Kubernetes 1.34"
            )
        })
    }

    /// Why this host can't be used, if it can't: only Ubuntu 22.04 and 24.04 are supported.
    pub fn refusal(&self) -> Option<String> {
        let what = if self.os.pretty_name.is_empty() {
            format!("{} {}", self.os.id, self.os.version_id)
                .trim()
                .to_string()
        } else {
            self.os.pretty_name.clone()
        };
        let what = if what.is_empty() {
            "an unknown system (no /etc/os-release)".to_string()
        } else {
            what
        };
        if self.os.id != "ubuntu" || !SUPPORTED_UBUNTU.contains(&self.os.version_id.as_str()) {
            return Some(format!(
                "this host runs {what}; bootstrap supports Ubuntu {} only",
                SUPPORTED_UBUNTU.join(" and ")
            ));
        }
        self.old_containerd()
            .or_else(|| self.other_kubernetes_source())
    }

    /// An installed containerd (`containerd --version`) older than
    /// [`CONTAINERD_MIN`](crate::versions::CONTAINERD_MIN): the kubelet would run on a
    /// runtime its release is not supported with, so the host is refused before any
    /// change, with the version found.
    fn old_containerd(&self) -> Option<String> {
        let found = self.containerd.version.as_deref()?;
        let mut parts = found.split('.').map(|p| p.parse::<u64>());
        let (Some(Ok(major)), Some(Ok(minor))) = (parts.next(), parts.next()) else {
            return None;
        };
        let (min_major, min_minor) = crate::versions::CONTAINERD_MIN;
        ((major, minor) < (min_major, min_minor)).then(|| {
            format!(
                "containerd {found} is installed (`containerd --version`); the Kubernetes \
                 releases bootstrap offers need containerd {min_major}.{min_minor} or newer \
                 (containerd's RELEASES.md supports {major}.{minor} with Kubernetes 1.29 at \
                 most): remove or upgrade it (Ubuntu's docker.io brings containerd 1.7)"
            )
        })
    }

    /// A pkgs.k8s.io source in another file than bootstrap's, with another keyring than
    /// bootstrap's (or none): apt refuses every command once both exist for one
    /// repository ("E: Conflicting values set for option Signed-By ..."), so the run
    /// would stop halfway; refused before any change instead, naming the file.
    fn other_kubernetes_source(&self) -> Option<String> {
        for (path, content) in &self.apt.other_kubernetes_sources {
            for (line, signed_by) in kubernetes_sources(path, content) {
                if signed_by.as_deref() == Some(KUBERNETES_KEYRING) {
                    continue;
                }
                let keyring = match &signed_by {
                    Some(k) => format!("signed-by {k}"),
                    None => "no signed-by (apt's global keyrings)".to_string(),
                };
                return Some(format!(
                    "{path}:{line} is a pkgs.k8s.io source with {keyring}, not \
                     {KUBERNETES_KEYRING}: apt would stop every command with \"Conflicting \
                     values set for option Signed-By\" once bootstrap adds \
                     /etc/apt/sources.list.d/kubernetes.list; remove that source (and its \
                     keyring) or let bootstrap's file replace it"
                ));
            }
        }
        None
    }
}

/// The keyring bootstrap's kubernetes.list names.
pub const KUBERNETES_KEYRING: &str = "/etc/apt/keyrings/kubernetes-apt-keyring.gpg";

/// The pkgs.k8s.io entries of an apt sources file (one-line `.list` or deb822
/// `.sources`): the line where each starts and its Signed-By.
fn kubernetes_sources(path: &str, content: &str) -> Vec<(usize, Option<String>)> {
    let mut out = Vec::new();
    if path.ends_with(".sources") {
        // deb822: stanzas separated by blank lines; fields URIs and Signed-By.
        let (mut start, mut uris, mut signed, mut enabled) = (0, String::new(), None, true);
        let lines: Vec<&str> = content.lines().chain([""]).collect();
        for (i, l) in lines.iter().enumerate() {
            if l.trim().is_empty() {
                if enabled && uris.contains("pkgs.k8s.io") {
                    out.push((start, signed.take()));
                }
                (start, uris, signed, enabled) = (0, String::new(), None, true);
                continue;
            }
            if start == 0 {
                start = i + 1;
            }
            if let Some((k, v)) = l.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "uris" => uris = v.to_string(),
                    "signed-by" => signed = Some(v.trim().to_string()),
                    "enabled" => enabled = v.trim() != "no",
                    _ => {}
                }
            }
        }
        return out;
    }
    for (i, l) in content.lines().enumerate() {
        let l = l.trim();
        if !(l.starts_with("deb ") || l.starts_with("deb\t") || l.starts_with("deb-src"))
            || !l.contains("pkgs.k8s.io")
        {
            continue;
        }
        let signed = l
            .split_once('[')
            .and_then(|(_, rest)| rest.split_once(']'))
            .and_then(|(opts, _)| {
                opts.split_whitespace()
                    .find_map(|o| o.strip_prefix("signed-by="))
                    .map(str::to_string)
            });
        out.push((i + 1, signed));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(body: &str) -> String {
        format!("{HEADER}\n{body}\n{END}\n")
    }

    #[test]
    fn file_contents_are_exact() {
        for content in ["", "a\n", "a\nb", "a\n\nb\n\n", "|x\n@@not-a-header\n"] {
            let prefixed: String = if content.is_empty() {
                String::new()
            } else {
                format!("|{}", content.replace('\n', "\n|"))
            };
            // What `sed 's/^/|/'` prints: every line prefixed, a missing final newline kept.
            let sed = prefixed.strip_suffix('|').unwrap_or(&prefixed).to_string();
            let r = report(&format!("@@file /etc/x\n{sed}\n@@eof\n@@absent /etc/y"));
            let f = parse(&r).unwrap();
            assert_eq!(f.files["/etc/x"].as_deref(), Some(content), "{r:?}");
            assert_eq!(f.files["/etc/y"], None);
        }
    }

    #[test]
    fn apiserver_version_from_its_image() {
        let r = report("@@kubernetes\napiserver_image=registry.k8s.io/kube-apiserver:v1.33.5");
        assert_eq!(
            parse(&r).unwrap().kubernetes.apiserver_version.as_deref(),
            Some("1.33.5")
        );
        for image in ["", "registry:5000/kube-apiserver", "kube-apiserver:latest"] {
            assert_eq!(image_version(image), None, "{image}");
        }
    }

    #[test]
    fn truncated_reports_are_refused() {
        assert!(parse("").is_err());
        assert!(parse(&format!("{HEADER}\n@@hostname\nx\n")).is_err());
    }

    #[test]
    fn network_and_resources() {
        let r = report(
            "@@network\naddr=lo 127.0.0.1/8\naddr=eth0 203.0.113.9/24\naddr=eth0 fe80::1/64\n\
             addr=ens4@if3 10.0.0.5/16\n\
             route4=default via 10.0.0.1 dev ens4 metric 50\n\
             route4=default via 203.0.113.1 dev eth0 metric 100\n\
             route6=default via fe80::1 dev eth0 metric 1\n\
             @@resources\ncpus=2\nmem_kib=4010236\ncgroup_fs=cgroup2fs",
        );
        let f = parse(&r).unwrap();
        assert_eq!(f.network.default_interface.as_deref(), Some("ens4"));
        assert_eq!(
            f.network.interface_of("10.0.0.5".parse().unwrap()),
            Some("ens4")
        );
        assert_eq!(
            f.network.interface_of("198.51.100.1".parse().unwrap()),
            None
        );
        assert_eq!(
            f.network.ipv4_of("eth0"),
            Some("203.0.113.9".parse().unwrap())
        );
        assert_eq!(f.network.ipv4_of("lo"), None);
        assert_eq!(f.resources.cpus, Some(2));
        assert_eq!(f.resources.memory_kib, Some(4010236));
        assert_eq!(f.resources.cgroup_fs.as_deref(), Some("cgroup2fs"));
    }

    #[test]
    fn a_cgroup_v1_host_cannot_run_a_1_35_kubelet() {
        let v = |s: &str| semver::Version::parse(s).unwrap();
        let mut f = HostFacts::default();
        assert_eq!(f.cgroup_v1_refusal(&v("1.35.4")), None);
        f.resources.cgroup_fs = Some("cgroup2fs".into());
        assert_eq!(f.cgroup_v1_refusal(&v("1.35.4")), None);
        f.resources.cgroup_fs = Some("tmpfs".into());
        assert_eq!(f.cgroup_v1_refusal(&v("1.34.2")), None);
        let why = f.cgroup_v1_refusal(&v("1.35.0")).unwrap();
        assert!(
            why.starts_with("it runs cgroup v1 (/sys/fs/cgroup is tmpfs, not cgroup2fs)"),
            "{why}"
        );
    }

    #[test]
    fn a_small_control_plane_falls_short_in_kubeadm_s_words() {
        let mut f = HostFacts::default();
        assert_eq!(f.control_plane_shortfall(), None);
        f.resources = Resources {
            cpus: Some(2),
            memory_kib: Some(1700 * 1024),
            ..Resources::default()
        };
        assert_eq!(f.control_plane_shortfall(), None);
        f.resources = Resources {
            cpus: Some(1),
            memory_kib: Some(1006380),
            ..Resources::default()
        };
        assert_eq!(
            f.control_plane_shortfall().unwrap(),
            "kubeadm's preflight refuses it as a control plane: the number of available CPUs \
             1 is less than the required 2; the system RAM (982 MB) is less than the minimum \
             1700 MB (checks NumCPU, Mem)"
        );
    }

    #[test]
    fn dpkg_status() {
        let p = parse_dpkg("ii 1.34.2-1.1");
        assert!(p.installed);
        assert_eq!(
            (p.status.as_str(), p.version.as_str()),
            ("ii", "1.34.2-1.1")
        );
        assert!(parse_dpkg("hi 1.34.2-1.1").installed);
        assert!(!parse_dpkg("rc 1.7.28-0ubuntu1").installed);
        assert!(!parse_dpkg("").installed);
    }

    #[test]
    fn fstab_swap() {
        let fstab = "# /etc/fstab\n/swap.img\tnone\tswap\tsw\t0\t0\n#/swap2 none swap sw 0 0\n\
                     UUID=1 / ext4 defaults 0 1\n/dev/sdb1 /mnt/swap ext4 defaults 0 2\n";
        assert_eq!(
            fstab_swap_lines(fstab),
            vec!["/swap.img\tnone\tswap\tsw\t0\t0"]
        );
    }

    #[test]
    fn repo_minor_from_sources_line() {
        let l = "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.34/deb/ /\n";
        assert_eq!(repo_minor(l).as_deref(), Some("1.34"));
        assert_eq!(repo_minor("# nothing\n"), None);
    }

    #[test]
    fn containerd_dump_lines() {
        let c = parse_containerd(&[
            "version=containerd github.com/containerd/containerd 1.7.28 ",
            "config_file=yes",
            "config_current=no",
            "dump.disabled_plugins=[\"cri\"]",
            "dump.bin_dir=\"/usr/lib/cni\"",
            "dump.SystemdCgroup=false",
            "started_before_config=yes",
        ]);
        assert_eq!(c.version.as_deref(), Some("1.7.28"));
        assert_eq!(c.disabled_plugins, vec!["cri"]);
        assert_eq!(c.cni_bin_dirs, vec!["/usr/lib/cni"]);
        assert_eq!(c.systemd_cgroup, Some(false));
        assert!(c.started_before_config);
        let c2 = parse_containerd(&[
            "version=containerd github.com/containerd/containerd/v2 v2.1.4 75cb2b7",
            "dump.bin_dirs=['/opt/cni/bin']",
        ]);
        assert_eq!(c2.version.as_deref(), Some("2.1.4"));
        assert_eq!(c2.cni_bin_dirs, vec!["/opt/cni/bin"]);
        assert!(!c2.started_before_config);
    }

    #[test]
    fn another_kubernetes_source_with_another_keyring_is_refused() {
        let mut f = parse(&report(
            "@@os-release\nID=ubuntu\nVERSION_ID=\"24.04\"\nPRETTY_NAME=\"Ubuntu 24.04.3 LTS\"",
        ))
        .unwrap();
        let list = "# k8s\ndeb [arch=amd64 signed-by=/usr/share/keyrings/kubernetes-archive-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.33/deb/ /\n";
        f.apt
            .other_kubernetes_sources
            .insert("/etc/apt/sources.list.d/k8s.list".into(), list.into());
        let r = f.refusal().unwrap();
        assert!(
            r.starts_with("/etc/apt/sources.list.d/k8s.list:2 is a pkgs.k8s.io source with signed-by /usr/share/keyrings/kubernetes-archive-keyring.gpg, not /etc/apt/keyrings/kubernetes-apt-keyring.gpg"),
            "{r}"
        );
        // The same keyring as bootstrap's: a duplicate apt tolerates, not refused.
        let same = format!(
            "deb [signed-by={KUBERNETES_KEYRING}] https://pkgs.k8s.io/core:/stable:/v1.34/deb/ /\n"
        );
        f.apt
            .other_kubernetes_sources
            .insert("/etc/apt/sources.list.d/k8s.list".into(), same);
        assert_eq!(f.refusal(), None);
        // deb822, without Signed-By.
        f.apt.other_kubernetes_sources.insert(
            "/etc/apt/sources.list.d/kubernetes.sources".into(),
            "Types: deb\nURIs: https://pkgs.k8s.io/core:/stable:/v1.34/deb/\nSuites: /\n".into(),
        );
        let r = f.refusal().unwrap();
        assert!(
            r.starts_with("/etc/apt/sources.list.d/kubernetes.sources:1 is a pkgs.k8s.io source with no signed-by"),
            "{r}"
        );
    }

    #[test]
    fn a_containerd_older_than_1_7_is_refused_with_its_version() {
        let mut f = HostFacts {
            os: Os {
                id: "ubuntu".into(),
                version_id: "22.04".into(),
                ..Os::default()
            },
            ..HostFacts::default()
        };
        f.containerd.version = Some("1.6.28".into());
        let r = f.refusal().unwrap();
        assert!(
            r.starts_with("containerd 1.6.28 is installed (`containerd --version`)")
                && r.contains("containerd 1.7 or newer"),
            "{r}"
        );
        for ok in ["1.7.12", "1.7.24", "2.1.4"] {
            f.containerd.version = Some(ok.into());
            assert_eq!(f.refusal(), None, "{ok}");
        }
    }

    #[test]
    fn refusal_names_the_system() {
        let mut f = HostFacts {
            os: Os {
                id: "debian".into(),
                version_id: "12".into(),
                codename: "bookworm".into(),
                pretty_name: "Debian GNU/Linux 12 (bookworm)".into(),
            },
            ..HostFacts::default()
        };
        let r = f.refusal().unwrap();
        assert!(
            r.contains("Debian GNU/Linux 12 (bookworm)") && r.contains("22.04 and 24.04"),
            "{r}"
        );
        f.os.id = "ubuntu".into();
        f.os.version_id = "24.04".into();
        assert_eq!(f.refusal(), None);
        f.os.version_id = "20.04".into();
        assert!(f.refusal().is_some());
    }

    /// Writes an executable `name` into `dir`.
    fn fake_command(dir: &std::path::Path, name: &str, script: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// The fact script starts `kubeadm version` once per host: the version it reports and
    /// the one whose pause image the wanted containerd config names are the same answer
    /// (kubeadm is a Go binary of ~70 MB; every start counts on a converged re-run of
    /// many hosts). The playbooks' bootstrap_containerd_config, which may run right after
    /// a kubeadm upgrade, still asks kubeadm itself.
    #[test]
    fn the_fact_script_asks_kubeadm_its_version_once() {
        let dir = tempfile::tempdir().unwrap();
        let calls = dir.path().join("kubeadm.calls");
        fake_command(
            dir.path(),
            "kubeadm",
            &format!(
                "#!/bin/sh
                 echo \"$*\" >> {calls}
                 case \"$*\" in
                 'version -o short') echo v1.35.4 ;;
                 'config images list --kubernetes-version v1.35.4')                    echo registry.k8s.io/kube-proxy:v1.35.4; echo registry.k8s.io/pause:3.10.1 ;;
                 *) echo \"unexpected: $*\" >&2; exit 1 ;;
                 esac
",
                calls = calls.display()
            ),
        );
        fake_command(
            dir.path(),
            "containerd",
            "#!/bin/sh
             case \"$*\" in
             --version) echo 'containerd github.com/containerd/containerd 1.7.28' ;;
             'config default') printf '%s\\n' '[plugins.\"io.containerd.grpc.v1.cri\"]'                '  sandbox_image = \"registry.k8s.io/pause:3.8\"' '  SystemdCgroup = false' ;;
             esac
",
        );
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap()
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(command().unwrap().script)
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let facts = parse(&String::from_utf8_lossy(&out.stdout)).unwrap();
        assert_eq!(facts.kubernetes.kubeadm_version.as_deref(), Some("v1.35.4"));
        assert_eq!(
            std::fs::read_to_string(&calls).unwrap(),
            "version -o short\nconfig images list --kubernetes-version v1.35.4\n"
        );

        // The playbooks' copy asks kubeadm (no bootstrap_kubeadm_version set).
        std::fs::remove_file(&calls).unwrap();
        let config = playbook::render_template("containerd-config.sh", &context! {}).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{config}\nbootstrap_containerd_config"))
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout)
                .contains("sandbox_image = \"registry.k8s.io/pause:3.10.1\""),
            "{out:?}"
        );
        assert_eq!(
            std::fs::read_to_string(&calls).unwrap(),
            "version -o short\nconfig images list --kubernetes-version v1.35.4\n"
        );
    }

    #[test]
    fn facts_script_renders_and_is_valid_sh() {
        let cmd = command().unwrap();
        assert!(cmd.root);
        assert!(
            cmd.script.contains("@@file \"'/etc/sysctl.d/k8s.conf'")
                || cmd.script.contains("/etc/sysctl.d/k8s.conf")
        );
        let status = std::process::Command::new("sh")
            .arg("-n")
            .arg("-c")
            .arg(&cmd.script)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "sh -n rejects the facts script:\n{}",
            cmd.script
        );
    }
}
