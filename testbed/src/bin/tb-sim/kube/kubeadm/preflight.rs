//! kubeadm's preflight checks: the host facts they look at, the checks `init` and `join`
//! run (names, order and messages of cmd/kubeadm/app/preflight/checks.go), and the
//! report kubeadm prints. Building the checks is pure over [`HostFacts`], so the message
//! assembly is unit-tested without a host.

use std::collections::BTreeSet;
use std::path::Path;

use super::config::{DEFAULT_CRI_SOCKET, KNOWN_CRI_SOCKETS};
use super::version::{self, KVer};

/// Where the kubelet's static pods and kubeconfigs live.
pub const MANIFESTS: &str = "/etc/kubernetes/manifests";
pub const STATIC_PODS: &[&str] = &[
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "etcd",
];

/// kubeadm's constants.ControlPlaneNumCPU and ControlPlaneMem (MB).
pub const CONTROL_PLANE_NUM_CPU: usize = 2;
pub const CONTROL_PLANE_MEM_MB: u64 = 1700;

/// The CPUs in this process's affinity mask (what Go's runtime.NumCPU counts).
fn affinity_cpus() -> usize {
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0
    {
        return 1;
    }
    (0..libc::CPU_SETSIZE as usize)
        .filter(|i| unsafe { libc::CPU_ISSET(*i, &set) })
        .count()
}

/// MemTotal of /proc/meminfo in MB (KiB / 1024).
fn memory_mb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kib| kib / 1024)
        .unwrap_or(0)
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub name: String,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}

impl Outcome {
    fn ok(name: &str) -> Outcome {
        Outcome {
            name: name.into(),
            warnings: vec![],
            errors: vec![],
        }
    }
    fn err(name: &str, msg: String) -> Outcome {
        Outcome {
            errors: vec![msg],
            ..Outcome::ok(name)
        }
    }
    fn warn(name: &str, msg: String) -> Outcome {
        Outcome {
            warnings: vec![msg],
            ..Outcome::ok(name)
        }
    }
}

/// What the CRI endpoint answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Cri {
    Ok,
    /// Nothing listens on the socket.
    NoSocket,
    /// containerd runs with the CRI plugin disabled.
    Unimplemented,
}

/// The host facts preflight looks at.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    /// Go's runtime.NumCPU: the CPUs this process may run on (its affinity mask).
    pub cpus: usize,
    /// Total RAM in MB as kubeadm's MemCheck computes it (bytes / 1024 / 1024), here from
    /// /proc/meminfo's MemTotal, which is the sysinfo(2) total kubeadm reads.
    pub memory_mb: u64,
    pub swap_on: bool,
    /// Content of /proc/sys/net/ipv4/ip_forward (None: file missing).
    pub ip_forward: Option<String>,
    /// The node name when it doesn't resolve (kubeadm's Hostname check warns).
    pub unresolvable_node: Option<String>,
    /// /proc/sys/net/bridge/bridge-nf-call-iptables (None: br_netfilter not loaded).
    pub bridge_nf: Option<String>,
    pub cri: Option<Cri>,
    pub kubelet: Option<KVer>,
    /// Whether the kubelet unit exists (package installed) and is enabled.
    pub kubelet_unit: bool,
    pub kubelet_enabled: bool,
    pub ports_in_use: BTreeSet<u16>,
    pub existing: BTreeSet<String>,
    pub nonempty_dirs: BTreeSet<String>,
    pub missing_exec: BTreeSet<String>,
}

fn label(prefix: &str, path: &str) -> String {
    format!("{prefix}-{}", path.replace('/', "-"))
}

fn file_available(f: &HostFacts, path: &str) -> Outcome {
    let name = label("FileAvailable", path);
    if f.existing.contains(path) {
        Outcome::err(&name, format!("{path} already exists"))
    } else {
        Outcome::ok(&name)
    }
}

fn port(f: &HostFacts, p: u16) -> Outcome {
    let name = format!("Port-{p}");
    if f.ports_in_use.contains(&p) {
        Outcome::err(&name, format!("Port {p} is in use"))
    } else {
        Outcome::ok(&name)
    }
}

/// The CRI check. kubeadm <= 1.30 asked `crictl info` (its fatal log line ends up in the
/// message); from 1.31 it talks CRI itself.
fn cri(f: &HostFacts, socket: &str, kubeadm: KVer) -> Option<Outcome> {
    let path = socket.trim_start_matches("unix://");
    let why = match f.cri.as_ref()? {
        Cri::Ok => return Some(Outcome::ok("CRI")),
        Cri::NoSocket => format!("code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial unix {path}: connect: no such file or directory\""),
        Cri::Unimplemented => "code = Unimplemented desc = unknown service runtime.v1.RuntimeService".to_string(),
    };
    let msg = if kubeadm.minor <= 30 {
        let ts = crate::kube::objects::rfc3339(crate::common::now());
        format!(
            "container runtime is not running: output: time=\"{ts}\" level=fatal msg=\"validate service connection: validate CRI v1 runtime API for endpoint \\\"{socket}\\\": rpc error: {}\"\n, error: exit status 1",
            why.replace('"', "\\\"")
        )
    } else if kubeadm.minor >= 36 {
        format!(
            "could not connect to the container runtime: failed to create new CRI runtime service: validate service connection: validate CRI v1 runtime API for endpoint \"{socket}\": rpc error: {why}"
        )
    } else {
        format!(
            "container runtime is not running: validate service connection: validate CRI v1 runtime API for endpoint \"{socket}\": rpc error: {why}"
        )
    };
    Some(Outcome::err("CRI", msg))
}

fn swap(f: &HostFacts) -> Outcome {
    if f.swap_on {
        Outcome::warn("Swap", "swap is supported for cgroup v2 only. The kubelet must be properly configured to use swap. Please refer to https://kubernetes.io/docs/concepts/architecture/nodes/#swap-memory, or disable swap on the node".into())
    } else {
        Outcome::ok("Swap")
    }
}

fn exec_checks(f: &HostFacts, k8s: Option<KVer>) -> Vec<Outcome> {
    let mut list: Vec<(&str, bool)> = vec![];
    if k8s.map(|v| v.minor < 32).unwrap_or(false) {
        list.push(("conntrack", true));
    }
    list.extend([
        ("ip", true),
        ("iptables", true),
        ("mount", true),
        ("nsenter", true),
        ("ebtables", false),
        ("ethtool", false),
        ("socat", false),
        ("tc", false),
        ("touch", false),
    ]);
    list.into_iter()
        .map(|(exe, mandatory)| {
            let name = format!("FileExisting-{exe}");
            if !f.missing_exec.contains(exe) {
                Outcome::ok(&name)
            } else if mandatory {
                Outcome::err(&name, format!("{exe} not found in system path"))
            } else {
                Outcome::warn(&name, format!("{exe} not found in system path"))
            }
        })
        .collect()
}

/// The Hostname check: warnings when the node name doesn't resolve.
fn hostname(f: &HostFacts) -> Outcome {
    match &f.unresolvable_node {
        None => Outcome::ok("Hostname"),
        Some(n) => Outcome {
            name: "Hostname".into(),
            warnings: vec![
                format!("hostname \"{n}\" could not be reached"),
                format!("hostname \"{n}\": lookup {n} on 127.0.0.53:53: server misbehaving"),
            ],
            errors: vec![],
        },
    }
}

/// Whether a name resolves on this host: /etc/hosts (the testbed has no DNS server,
/// so a name missing there can't resolve at all).
pub fn resolves(name: &str) -> bool {
    if name.parse::<std::net::IpAddr>().is_ok() || name == "localhost" {
        return true;
    }
    std::fs::read_to_string("/etc/hosts")
        .map(|t| {
            t.lines().any(|l| {
                let l = l.split('#').next().unwrap_or("");
                l.split_whitespace()
                    .skip(1)
                    .any(|h| h.eq_ignore_ascii_case(name))
            })
        })
        .unwrap_or(false)
}

fn kubelet_version(f: &HostFacts, kubeadm: KVer, k8s: Option<KVer>) -> Outcome {
    match version::check_kubelet_version(kubeadm, f.kubelet, k8s) {
        Ok(()) => Outcome::ok("KubeletVersion"),
        Err(e) => Outcome::err("KubeletVersion", e),
    }
}

fn service_kubelet(f: &HostFacts) -> Outcome {
    if !f.kubelet_unit {
        Outcome::warn("Service-Kubelet", "kubelet service does not exist".into())
    } else if !f.kubelet_enabled {
        Outcome::warn(
            "Service-Kubelet",
            "kubelet service is not enabled, please run 'systemctl enable kubelet.service'".into(),
        )
    } else {
        Outcome::ok("Service-Kubelet")
    }
}

/// kubeadm < 1.30 also required bridge-nf-call-iptables (kubernetes/kubernetes#123464
/// dropped the check); the file only exists while br_netfilter is loaded.
fn bridge_nf(f: &HostFacts, kubeadm: KVer) -> Option<Outcome> {
    if kubeadm.minor >= 30 {
        return None;
    }
    let name = "FileContent--proc-sys-net-bridge-bridge-nf-call-iptables";
    let path = "/proc/sys/net/bridge/bridge-nf-call-iptables";
    Some(match f.bridge_nf.as_deref().map(str::trim) {
        None => Outcome::err(name, format!("{path} does not exist")),
        Some("1") => Outcome::ok(name),
        Some(_) => Outcome::err(name, format!("{path} contents are not set to 1")),
    })
}

fn ip_forward(f: &HostFacts) -> Outcome {
    let name = "FileContent--proc-sys-net-ipv4-ip_forward";
    match f.ip_forward.as_deref().map(str::trim) {
        None => Outcome::err(name, "/proc/sys/net/ipv4/ip_forward does not exist".into()),
        Some("1") => Outcome::ok(name),
        Some(_) => Outcome::err(
            name,
            "/proc/sys/net/ipv4/ip_forward contents are not set to 1".into(),
        ),
    }
}

fn common(f: &HostFacts, kubeadm: KVer, k8s: Option<KVer>, socket: &str) -> Vec<Outcome> {
    let mut out = vec![];
    out.extend(cri(f, socket, kubeadm));
    out.push(swap(f));
    out.extend(exec_checks(f, k8s));
    out.push(hostname(f));
    out.push(kubelet_version(f, kubeadm, k8s));
    out.push(service_kubelet(f));
    out.push(port(f, 10250));
    out
}

/// The checks of `kubeadm init` (and of the control-plane part of a control-plane join
/// when `secondary`), in kubeadm's order.
pub fn init_checks(
    f: &HostFacts,
    kubeadm: KVer,
    k8s: KVer,
    bind_port: u16,
    socket: &str,
    etcd_dir: &str,
    secondary: bool,
) -> Vec<Outcome> {
    let mut out = vec![
        // RunInitNodeChecks: NumCPUCheck{ControlPlaneNumCPU}, MemCheck{ControlPlaneMem}.
        if f.cpus < CONTROL_PLANE_NUM_CPU {
            Outcome::err(
                "NumCPU",
                format!(
                    "the number of available CPUs {} is less than the required {CONTROL_PLANE_NUM_CPU}",
                    f.cpus
                ),
            )
        } else {
            Outcome::ok("NumCPU")
        },
        if f.memory_mb < CONTROL_PLANE_MEM_MB {
            Outcome::err(
                "Mem",
                format!(
                    "the system RAM ({} MB) is less than the minimum {CONTROL_PLANE_MEM_MB} MB",
                    f.memory_mb
                ),
            )
        } else {
            Outcome::ok("Mem")
        },
        match version::kubernetes_version_warning(kubeadm, k8s) {
            Some(w) => Outcome::warn("KubernetesVersion", w),
            None => Outcome::ok("KubernetesVersion"),
        },
        port(f, bind_port),
        port(f, 10259),
        port(f, 10257),
    ];
    for pod in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "etcd",
    ] {
        out.push(file_available(f, &format!("{MANIFESTS}/{pod}.yaml")));
    }
    if !secondary {
        out.extend(common(f, kubeadm, Some(k8s), socket));
        out.extend(bridge_nf(f, kubeadm));
        out.push(ip_forward(f));
    }
    out.push(port(f, 2379));
    out.push(port(f, 2380));
    let name = label("DirAvailable", etcd_dir);
    out.push(if f.nonempty_dirs.contains(etcd_dir) {
        Outcome::err(&name, format!("{etcd_dir} is not empty"))
    } else {
        Outcome::ok(&name)
    });
    out
}

/// The checks of `kubeadm join`.
pub fn join_checks(
    f: &HostFacts,
    kubeadm: KVer,
    socket: &str,
    control_plane: bool,
) -> Vec<Outcome> {
    let mut out = vec![
        file_available(f, "/etc/kubernetes/kubelet.conf"),
        file_available(f, "/etc/kubernetes/bootstrap-kubelet.conf"),
    ];
    out.extend(common(f, kubeadm, None, socket));
    if !control_plane {
        out.push(file_available(f, "/etc/kubernetes/pki/ca.crt"));
    }
    out.extend(bridge_nf(f, kubeadm));
    out.push(ip_forward(f));
    out
}

/// `--ignore-preflight-errors` as kubeadm normalizes it (lowercase set), or its error.
pub fn parse_ignore(values: &[String]) -> Result<BTreeSet<String>, String> {
    let set: BTreeSet<String> = values
        .iter()
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    if set.contains("all") && set.len() > 1 {
        let joined: Vec<&str> = set.iter().map(String::as_str).collect();
        return Err(format!(
            "ignore-preflight-errors: Invalid value: \"{}\": don't specify individual checks if 'all' is used",
            joined.join(",")
        ));
    }
    Ok(set)
}

/// Runs outcomes through the ignore set: returns the warning lines to print, and the
/// error report when fatal errors remain.
pub fn report(outcomes: &[Outcome], ignore: &BTreeSet<String>) -> (Vec<String>, Option<String>) {
    let mut warnings = vec![];
    let mut errors = String::new();
    for o in outcomes {
        let ignored = ignore.contains("all") || ignore.contains(&o.name.to_lowercase());
        let mut w = o.warnings.clone();
        let mut e = o.errors.clone();
        if ignored {
            w.append(&mut e);
        }
        for x in w {
            warnings.push(format!("\t[WARNING {}]: {x}", o.name));
        }
        for x in e {
            errors.push_str(&format!("\t[ERROR {}]: {x}\n", o.name));
        }
    }
    let err = (!errors.is_empty()).then(|| {
        format!(
            "[preflight] Some fatal errors occurred:\n{errors}[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`"
        )
    });
    (warnings, err)
}

/// The root check that runs before everything else.
pub fn root_check(root: bool) -> Vec<Outcome> {
    vec![if root {
        Outcome::ok("IsPrivilegedUser")
    } else {
        Outcome::err("IsPrivilegedUser", "user is not running as root".into())
    }]
}

// ---- gathering facts from the simulated host ----

fn in_path(exe: &str) -> bool {
    let path = std::env::var("PATH")
        .unwrap_or_else(|_| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    path.split(':').any(|d| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(Path::new(d).join(exe))
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    })
}

/// Whether something listens on the port, as Go's `net.Listen("tcp", ":port")` sees it,
/// plus the simulated listeners (the kubelet's 10250 while it runs, the static pods'
/// ports while the kubelet runs them).
pub fn port_in_use(p: u16) -> bool {
    if std::net::TcpListener::bind(("0.0.0.0", p)).is_err() {
        return true;
    }
    let kubelet_running = super::kubelet_healthy();
    let manifest = |pod: &str| Path::new(&format!("{MANIFESTS}/{pod}.yaml")).exists();
    match p {
        10250 => kubelet_running,
        6443 => kubelet_running && manifest("kube-apiserver"),
        10257 => kubelet_running && manifest("kube-controller-manager"),
        10259 => kubelet_running && manifest("kube-scheduler"),
        2379 | 2380 => kubelet_running && manifest("etcd"),
        _ => false,
    }
}

/// The CRI sockets present on the host, as kubeadm's detection sees them.
pub fn present_cri_sockets() -> Vec<&'static str> {
    KNOWN_CRI_SOCKETS
        .iter()
        .copied()
        .filter(|s| {
            let path = s.trim_start_matches("unix://");
            if *s == DEFAULT_CRI_SOCKET {
                crate::common::unit_pid("containerd").is_some() || Path::new(path).exists()
            } else {
                Path::new(path).exists()
            }
        })
        .collect()
}

/// kubeadm's CRI socket detection when none is configured.
pub fn detect_cri_socket() -> Result<String, String> {
    let found = present_cri_sockets();
    match found.len() {
        0 => Ok(DEFAULT_CRI_SOCKET.into()),
        1 => Ok(found[0].into()),
        _ => Err(format!(
            "found multiple CRI endpoints on the host. Please define which one do you wish to use by setting the 'criSocket' field in the kubeadm configuration file: {}",
            found.join(", ")
        )),
    }
}

/// What the CRI at `socket` answers.
pub fn probe_cri(socket: &str) -> Cri {
    if socket == DEFAULT_CRI_SOCKET || socket == "unix:///run/containerd/containerd.sock" {
        return match crate::common::containerd_runtime() {
            None => Cri::NoSocket,
            Some(r) if !r.cri => Cri::Unimplemented,
            Some(_) => Cri::Ok,
        };
    }
    // No other runtime is simulated: its socket can only be a leftover file.
    Cri::NoSocket
}

/// Gathers the facts for the given files, dirs and ports.
pub fn gather(
    node_name: &str,
    socket: &str,
    files: &[&str],
    dirs: &[&str],
    ports: &[u16],
) -> HostFacts {
    let kernel = crate::common::kernel();
    let unit_installed = crate::common::installed_version("kubelet").is_some();
    HostFacts {
        cpus: affinity_cpus(),
        memory_mb: memory_mb(),
        swap_on: !kernel.swaps.is_empty(),
        ip_forward: Some(
            kernel
                .sysctls
                .get("net.ipv4.ip_forward")
                .cloned()
                .unwrap_or_else(|| "0".into()),
        ),
        unresolvable_node: (!resolves(node_name)).then(|| node_name.to_string()),
        bridge_nf: kernel
            .sysctls
            .get("net.bridge.bridge-nf-call-iptables")
            .cloned(),
        cri: Some(probe_cri(socket)),
        kubelet: version::kubelet_version(),
        kubelet_unit: unit_installed,
        kubelet_enabled: std::fs::symlink_metadata(
            "/etc/systemd/system/multi-user.target.wants/kubelet.service",
        )
        .is_ok(),
        ports_in_use: ports.iter().copied().filter(|p| port_in_use(*p)).collect(),
        existing: files
            .iter()
            .filter(|f| Path::new(f).exists())
            .map(|f| f.to_string())
            .collect(),
        nonempty_dirs: dirs
            .iter()
            .filter(|d| {
                std::fs::read_dir(d)
                    .map(|mut r| r.next().is_some())
                    .unwrap_or(false)
            })
            .map(|d| d.to_string())
            .collect(),
        missing_exec: [
            "conntrack",
            "ip",
            "iptables",
            "mount",
            "nsenter",
            "ebtables",
            "ethtool",
            "socat",
            "tc",
            "touch",
        ]
        .iter()
        .filter(|e| !in_path(e))
        .map(|e| e.to_string())
        .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> HostFacts {
        HostFacts {
            cpus: 2,
            memory_mb: 3916,
            ip_forward: Some("1".into()),
            cri: Some(Cri::Ok),
            kubelet: KVer::parse("1.34.2"),
            kubelet_unit: true,
            kubelet_enabled: true,
            ..Default::default()
        }
    }

    fn v(s: &str) -> KVer {
        KVer::parse(s).unwrap()
    }

    fn init(f: &HostFacts) -> (Vec<String>, Option<String>) {
        let o = init_checks(
            f,
            v("1.34.2"),
            v("1.34.2"),
            6443,
            DEFAULT_CRI_SOCKET,
            "/var/lib/etcd",
            false,
        );
        report(&o, &BTreeSet::new())
    }

    #[test]
    fn healthy_host_passes() {
        let (w, e) = init(&healthy());
        assert!(w.is_empty(), "{w:?}");
        assert!(e.is_none());
    }

    #[test]
    fn rerun_of_init_fails_like_kubeadm() {
        let mut f = healthy();
        f.ports_in_use = [6443, 10250, 10257, 10259, 2379, 2380].into();
        f.existing
            .insert(format!("{MANIFESTS}/kube-apiserver.yaml"));
        f.nonempty_dirs.insert("/var/lib/etcd".into());
        let (_, e) = init(&f);
        let e = e.unwrap();
        assert!(e.starts_with(
            "[preflight] Some fatal errors occurred:\n\t[ERROR Port-6443]: Port 6443 is in use\n"
        ));
        assert!(e.contains("\t[ERROR FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml]: /etc/kubernetes/manifests/kube-apiserver.yaml already exists\n"));
        assert!(e.contains("\t[ERROR DirAvailable--var-lib-etcd]: /var/lib/etcd is not empty\n"));
        assert!(e.contains("\t[ERROR Port-10250]: Port 10250 is in use\n"));
        assert!(e.ends_with("you can make a check non-fatal with `--ignore-preflight-errors=...`"));
    }

    #[test]
    fn a_small_control_plane_fails_num_cpu_and_mem() {
        let f = HostFacts {
            cpus: 1,
            memory_mb: 982,
            ..healthy()
        };
        let e = init(&f).1.unwrap();
        assert!(
            e.contains(
                "\t[ERROR NumCPU]: the number of available CPUs 1 is less than the required 2\n"
            ),
            "{e}"
        );
        assert!(
            e.contains("\t[ERROR Mem]: the system RAM (982 MB) is less than the minimum 1700 MB\n"),
            "{e}"
        );
        assert!(affinity_cpus() >= 1 && memory_mb() > 0);
    }

    #[test]
    fn swap_warns_and_ip_forward_fails() {
        let mut f = healthy();
        f.swap_on = true;
        f.ip_forward = Some("0".into());
        let (w, e) = init(&f);
        assert!(w[0].starts_with("\t[WARNING Swap]: swap is supported for cgroup v2 only."));
        assert!(e.unwrap().contains("[ERROR FileContent--proc-sys-net-ipv4-ip_forward]: /proc/sys/net/ipv4/ip_forward contents are not set to 1"));
    }

    #[test]
    fn cri_messages() {
        let mut f = healthy();
        f.cri = Some(Cri::Unimplemented);
        let e = init(&f).1.unwrap();
        assert!(e.contains("[ERROR CRI]: container runtime is not running: validate service connection: validate CRI v1 runtime API for endpoint \"unix:///var/run/containerd/containerd.sock\": rpc error: code = Unimplemented desc = unknown service runtime.v1.RuntimeService\n"));
        f.cri = Some(Cri::NoSocket);
        let e = init(&f).1.unwrap();
        assert!(e.contains(
            "dial unix /var/run/containerd/containerd.sock: connect: no such file or directory"
        ));
    }

    #[test]
    fn older_kubeadm_checks_bridge_nf_and_words_cri_like_crictl() {
        let mut f = healthy();
        f.cri = Some(Cri::Unimplemented);
        let o = init_checks(
            &f,
            v("1.29.3"),
            v("1.29.3"),
            6443,
            DEFAULT_CRI_SOCKET,
            "/var/lib/etcd",
            false,
        );
        let e = report(&o, &BTreeSet::new()).1.unwrap();
        assert!(e.contains("[ERROR FileContent--proc-sys-net-bridge-bridge-nf-call-iptables]: /proc/sys/net/bridge/bridge-nf-call-iptables does not exist"));
        assert!(e.contains("[ERROR CRI]: container runtime is not running: output: time=\""));
        assert!(e.contains("level=fatal msg=\"validate service connection: validate CRI v1 runtime API for endpoint \\\"unix:///var/run/containerd/containerd.sock\\\": rpc error: code = Unimplemented desc = unknown service runtime.v1.RuntimeService\"\n, error: exit status 1"));
        let (_, e) = init(&healthy());
        assert!(e.is_none(), "1.34 has no bridge-nf check");
    }

    #[test]
    fn ignore_downgrades_to_warnings() {
        let mut f = healthy();
        f.ip_forward = Some("0".into());
        let o = init_checks(
            &f,
            v("1.34.2"),
            v("1.34.2"),
            6443,
            DEFAULT_CRI_SOCKET,
            "/var/lib/etcd",
            false,
        );
        let ig = parse_ignore(&["FileContent--proc-sys-net-ipv4-ip_forward".into()]).unwrap();
        let (w, e) = report(&o, &ig);
        assert!(e.is_none());
        assert_eq!(w.len(), 1);
        assert!(report(&o, &parse_ignore(&["all".into()]).unwrap())
            .1
            .is_none());
        assert!(parse_ignore(&["all,Swap".into()]).is_err());
    }

    #[test]
    fn join_rerun() {
        let mut f = healthy();
        f.existing.insert("/etc/kubernetes/kubelet.conf".into());
        f.existing.insert("/etc/kubernetes/pki/ca.crt".into());
        f.ports_in_use.insert(10250);
        let (_, e) = report(
            &join_checks(&f, v("1.34.2"), DEFAULT_CRI_SOCKET, false),
            &BTreeSet::new(),
        );
        let e = e.unwrap();
        assert!(e.contains("\t[ERROR FileAvailable--etc-kubernetes-kubelet.conf]: /etc/kubernetes/kubelet.conf already exists\n"));
        assert!(e.contains("\t[ERROR Port-10250]: Port 10250 is in use\n"));
        assert!(e.contains("\t[ERROR FileAvailable--etc-kubernetes-pki-ca.crt]: /etc/kubernetes/pki/ca.crt already exists\n"));
    }

    #[test]
    fn unresolvable_node_name_warns() {
        let mut f = healthy();
        f.unresolvable_node = Some("worker-a".into());
        let (w, e) = init(&f);
        assert!(e.is_none());
        assert_eq!(
            w[0],
            "\t[WARNING Hostname]: hostname \"worker-a\" could not be reached"
        );
    }

    #[test]
    fn kubelet_checks() {
        let mut f = healthy();
        f.kubelet = None;
        f.kubelet_unit = false;
        let (w, e) = init(&f);
        assert!(w
            .iter()
            .any(|l| l.contains("kubelet service does not exist")));
        assert!(e
            .unwrap()
            .contains("[ERROR KubeletVersion]: couldn't get kubelet version"));
        let mut f = healthy();
        f.missing_exec.insert("socat".into());
        f.missing_exec.insert("nsenter".into());
        let (w, e) = init(&f);
        assert!(w.contains(
            &"\t[WARNING FileExisting-socat]: socat not found in system path".to_string()
        ));
        assert!(e
            .unwrap()
            .contains("[ERROR FileExisting-nsenter]: nsenter not found in system path"));
    }
}
