//! The kubelet stand-in's unit: `kubelet --version` and the `kubelet` unit's daemon.
//!
//! Like the real kubelet under systemd, the daemon crash-loops until kubeadm writes its
//! configuration (modeled as one process that writes `waiting` to ctl/units/kubelet.state
//! and polls, so `systemctl is-active kubelet` says `activating`). Once configured it
//! checks its flags, swap, cgroup v1 and the container runtime's socket with the real
//! error texts, writes `running` and hands over to the stand-in proper
//! ([`super::staticpods::run`]: static pods, TLS bootstrap, Node, pods; see
//! testbed/STANDINS-kubelet-real.md).
//!
//! The kubelet version is the installed package's version at process start: an upgraded
//! package shows only after `systemctl restart kubelet`, as on a real host.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{self, Ctx};
use testbed::time::rfc3339;

pub const KUBELET_CONF: &str = "/etc/kubernetes/kubelet.conf";
/// The unit's `--bootstrap-kubeconfig` (kubeadm's 10-kubeadm.conf drop-in).
pub const BOOTSTRAP_CONF: &str = "/etc/kubernetes/bootstrap-kubelet.conf";
pub const CONFIG_YAML: &str = "/var/lib/kubelet/config.yaml";
pub const FLAGS_ENV: &str = "/var/lib/kubelet/kubeadm-flags.env";
pub const DEFAULTS_ENV: &str = "/etc/default/kubelet";
pub const MANIFESTS: &str = "/etc/kubernetes/manifests";

static TERM: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    TERM.store(true, Ordering::SeqCst);
}

/// `kubelet ARGS`: only `--version` is meaningful outside systemd.
pub fn standin(ctx: &mut Ctx, args: &[String]) -> i32 {
    let version = kubelet_version();
    if args
        .iter()
        .any(|a| a == "--version" || a == "--version=true")
    {
        match version {
            Some(v) => println!("Kubernetes {v}"),
            None => return common::fail(ctx, 1, "kubelet package is not installed"),
        }
        return 0;
    }
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("The kubelet is the primary \"node agent\" that runs on each node.\n\nUsage:\n  kubelet [flags]");
        return 0;
    }
    eprintln!("kubelet: run the kubelet through its systemd unit: systemctl start kubelet");
    1
}

/// "v1.34.2" from the installed kubelet package ("1.34.2-1.1").
pub fn kubelet_version() -> Option<String> {
    common::installed_version("kubelet").map(|v| format!("v{}", v.split('-').next().unwrap_or(&v)))
}

/// One klog line: `E1125 18:15:13.123456    4242 kubelet.go:1600] msg`.
fn log(level: char, msg: &str) {
    let now = common::now();
    let t = rfc3339(now);
    let micros = (now.fract() * 1e6) as u32;
    eprintln!(
        "{level}{}{} {}.{micros:06} {:>8} kubelet.go:1600] {msg}",
        &t[5..7],
        &t[8..10],
        &t[11..19],
        std::process::id()
    );
}

pub fn set_state(s: &str) {
    let _ = common::write_atomic(
        &common::ctl_path(testbed::layout::ctl::UNITS).join("kubelet.state"),
        s.as_bytes(),
    );
}

/// Flags from kubeadm-flags.env and /etc/default/kubelet, as `--name=value` pairs, in
/// the order of the kubelet unit's command line (10-kubeadm.conf:
/// `$KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS`), so later ones win as with pflag.
pub fn read_flags() -> Vec<(String, String)> {
    let texts: Vec<(String, &str)> = [
        (FLAGS_ENV, "KUBELET_KUBEADM_ARGS"),
        (DEFAULTS_ENV, "KUBELET_EXTRA_ARGS"),
    ]
    .into_iter()
    .filter_map(|(path, var)| Some((std::fs::read_to_string(path).ok()?, var)))
    .collect();
    let texts: Vec<(&str, &str)> = texts.iter().map(|(t, v)| (t.as_str(), *v)).collect();
    parse_flags(&texts)
}

/// The flags in environment files' `VAR=...` lines, given as (file text, VAR) in
/// command-line order.
pub fn parse_flags(texts: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out = vec![];
    for (text, var) in texts {
        for line in text.lines() {
            let Some(rest) = line.trim().strip_prefix(&format!("{var}=")) else {
                continue;
            };
            let words = shlex::split(rest).unwrap_or_default();
            let joined = words.join(" ");
            let words = shlex::split(&joined).unwrap_or_default();
            let mut it = words.into_iter().peekable();
            while let Some(w) = it.next() {
                let Some(f) = w.strip_prefix("--") else {
                    continue;
                };
                match f.split_once('=') {
                    Some((k, v)) => out.push((k.to_string(), v.to_string())),
                    None => {
                        let v = match it.peek() {
                            Some(n) if !n.starts_with("--") => it.next().unwrap(),
                            _ => "true".to_string(),
                        };
                        out.push((f.to_string(), v));
                    }
                }
            }
        }
    }
    out
}

/// `--node-labels` is a map flag: repeated flags add up (a later value for the same
/// key wins).
pub fn node_labels(flags: &[(String, String)]) -> String {
    flags
        .iter()
        .filter(|(k, _)| k == "node-labels")
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
        .collect::<Vec<_>>()
        .join(",")
}

/// `--register-with-taints=k=v:Effect,k2:Effect` as the kubelet's taints flag parses it
/// (pkg/util/taints: parseTaint), into Node `spec.taints` entries.
pub fn parse_taints(spec: &str) -> Result<Vec<Value>, String> {
    let mut out = vec![];
    if spec.is_empty() {
        return Ok(out);
    }
    for st in spec.split(',') {
        let parts: Vec<&str> = st.split(':').collect();
        let (key, value, effect) = match parts.as_slice() {
            [key] => (*key, "", ""),
            [kv, effect] => {
                if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(effect) {
                    return Err(format!(
                        "invalid taint effect: {effect}, unsupported taint effect"
                    ));
                }
                let kv: Vec<&str> = kv.split('=').collect();
                match kv.as_slice() {
                    [k] => (*k, "", *effect),
                    [k, v] => {
                        if let Some(e) = label_value_error(v) {
                            return Err(format!("invalid taint spec: {st}, {e}"));
                        }
                        (*k, *v, *effect)
                    }
                    _ => return Err(format!("invalid taint spec: {st}")),
                }
            }
            _ => return Err(format!("invalid taint spec: {st}")),
        };
        if let Some(e) = qualified_name_error(key) {
            return Err(format!("invalid taint spec: {st}, {e}"));
        }
        let mut t = json!({"key": key, "effect": effect});
        if !value.is_empty() {
            t["value"] = json!(value);
        }
        out.push(t);
    }
    Ok(out)
}

/// apimachinery's name-part rule (63 chars, alphanumeric at both ends, `-_.` inside).
fn name_part_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
}

/// validation.IsQualifiedName's first message, if any.
fn qualified_name_error(key: &str) -> Option<String> {
    const NAME: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            let dns = !prefix.is_empty()
                && prefix.len() <= 253
                && prefix.split('.').all(|l| {
                    let b = l.as_bytes();
                    !b.is_empty()
                        && b[0].is_ascii_alphanumeric()
                        && b[b.len() - 1].is_ascii_alphanumeric()
                        && b.iter()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                });
            if !dns {
                return Some("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string());
            }
            name
        }
        None => key,
    };
    if name.is_empty() {
        return Some("name part must be non-empty".into());
    }
    if name.len() > 63 {
        return Some("name part must be no more than 63 characters".into());
    }
    (!name_part_ok(name)).then(|| NAME.to_string())
}

/// validation.IsValidLabelValue's message, if any.
fn label_value_error(v: &str) -> Option<String> {
    if v.is_empty() || name_part_ok(v) {
        return None;
    }
    if v.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    Some("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".into())
}

pub fn flag<'a>(flags: &'a [(String, String)], name: &str) -> Option<&'a str> {
    flags
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `--node-labels` in the kubernetes.io / k8s.io namespaces that the kubelet refuses.
pub fn forbidden_node_labels(labels: &str) -> Vec<String> {
    const ALLOWED: &[&str] = &[
        "beta.kubernetes.io/arch",
        "beta.kubernetes.io/instance-type",
        "beta.kubernetes.io/os",
        "failure-domain.beta.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "kubernetes.io/arch",
        "kubernetes.io/hostname",
        "kubernetes.io/os",
        "node.kubernetes.io/instance-type",
        "topology.kubernetes.io/region",
        "topology.kubernetes.io/zone",
    ];
    labels
        .split(',')
        .filter_map(|kv| kv.split('=').next())
        .filter(|k| !k.is_empty())
        .filter(|k| {
            let ns = k.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
            let in_ns = ns == "kubernetes.io"
                || ns.ends_with(".kubernetes.io")
                || ns == "k8s.io"
                || ns.ends_with(".k8s.io");
            let allowed_prefix = ns == "kubelet.kubernetes.io"
                || ns.ends_with(".kubelet.kubernetes.io")
                || ns == "node.kubernetes.io"
                || ns.ends_with(".node.kubernetes.io");
            in_ns && !allowed_prefix && !ALLOWED.contains(k)
        })
        .map(String::from)
        .collect()
}

/// Why the kubelet can't start now (the message it logs before exiting), if any.
/// In the kubelet's order: flag parsing, flag validation, then the host checks.
fn start_check(config: &Value, flags: &[(String, String)], version: &str) -> Option<String> {
    if let Some(t) = flag(flags, "register-with-taints") {
        if let Err(e) = parse_taints(t) {
            return Some(format!("failed to parse kubelet flag: invalid argument \"{t}\" for \"--register-with-taints\" flag: {e}"));
        }
    }
    // --node-labels is a MapStringString flag (component-base cli/flag): every
    // comma-separated part must be KEY=VALUE.
    for (_, v) in flags.iter().filter(|(k, _)| k == "node-labels") {
        if v.split(',').any(|p| !p.is_empty() && !p.contains('=')) {
            return Some(format!("failed to parse kubelet flag: invalid argument \"{v}\" for \"--node-labels\" flag: malformed pair, expect string=string"));
        }
    }
    // cmd/kubelet/app/options/options.go ValidateKubeletFlags, wrapped by server.go.
    {
        let l = node_labels(flags);
        let mut bad = forbidden_node_labels(&l);
        bad.sort();
        bad.dedup();
        if !bad.is_empty() {
            return Some(format!("failed to validate kubelet flags: unknown 'kubernetes.io' or 'k8s.io' labels specified with --node-labels: [{}]\n--node-labels in the 'kubernetes.io' namespace must begin with an allowed prefix (kubelet.kubernetes.io, node.kubernetes.io) or be in the specifically allowed set (beta.kubernetes.io/arch, beta.kubernetes.io/instance-type, beta.kubernetes.io/os, failure-domain.beta.kubernetes.io/region, failure-domain.beta.kubernetes.io/zone, kubernetes.io/arch, kubernetes.io/hostname, kubernetes.io/os, node.kubernetes.io/instance-type, topology.kubernetes.io/region, topology.kubernetes.io/zone)", bad.join(" ")));
        }
        // Keys must be qualified names and values label values (IsQualifiedName,
        // IsValidLabelValue; MapStringString trims both).
        let invalid: Vec<String> = l
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .flat_map(|(k, v)| {
                let (k, v) = (k.trim(), v.trim());
                [
                    qualified_name_error(k).map(|e| format!("'{k}' - {e}")),
                    label_value_error(v).map(|e| format!("'{v}' - {e}")),
                ]
            })
            .flatten()
            .collect();
        if !invalid.is_empty() {
            return Some(format!(
                "failed to validate kubelet flags: invalid node labels: {}",
                invalid.join("; ")
            ));
        }
    }
    if !common::kernel().swaps.is_empty() && config["failSwapOn"] != false {
        return Some("failed to run Kubelet: running with swap on is not supported, please disable swap or set --fail-swap-on flag to false".into());
    }
    cgroup_v1_refused(config, cgroup2_unified(), version).or_else(|| cri_unreachable(config, flags))
}

/// Whether /sys/fs/cgroup is the cgroup v2 hierarchy (libcontainer
/// cgroups.IsCgroup2UnifiedMode: statfs magic CGROUP2_SUPER_MAGIC).
fn cgroup2_unified() -> bool {
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let path = c"/sys/fs/cgroup";
    unsafe { libc::statfs(path.as_ptr(), &mut st) == 0 && st.f_type == 0x6367_7270 }
}

/// The kubelet's configuration check on a cgroup v1 host (KubeletConfiguration
/// failCgroupV1: pkg/kubelet/apis/config/validation/validation_linux.go
/// validateKubeletOSConfiguration, wrapped by cmd/kubelet/app/server.go; the real message
/// ends with `, path: ` and the whole configuration, left out here). Unset, it is true from
/// 1.35 and false up to 1.34 (pkg/kubelet/apis/config/v1beta1/defaults.go of each
/// release), so a `version` before v1.35 refuses only when told to.
fn cgroup_v1_refused(config: &Value, cgroup2: bool, version: &str) -> Option<String> {
    let minor: u32 = version
        .trim_start_matches('v')
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(u32::MAX);
    let fail = config["failCgroupV1"].as_bool().unwrap_or(minor >= 35);
    (!cgroup2 && fail).then(|| {
        "failed to validate kubelet configuration, error: kubelet is configured to not run on a host using cgroup v1. cgroup v1 support is unsupported and will be removed in a future release".to_string()
    })
}

/// The REAL runtime's socket cannot be dialled: the kubelet's start-up check of its CRI
/// endpoint (cmd/kubelet/app/server.go -> cri-client remote_runtime.go validateServiceConnection,
/// a Version call; here a connect) with the gRPC dial error's words. The endpoint:
/// `--container-runtime-endpoint`, else config.yaml's `containerRuntimeEndpoint` (kubeadm
/// merges /var/lib/kubelet/instance-config.yaml into it), else the kubelet's default
/// (pkg/kubelet/apis/config/v1beta1/defaults.go).
fn cri_unreachable(config: &Value, flags: &[(String, String)]) -> Option<String> {
    let endpoint = cri_endpoint(config, flags);
    let endpoint = endpoint.as_str();
    let path = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
    let why = match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => return cri_refused(endpoint),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "no such file or directory".into(),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        Err(e) => e.to_string(),
    };
    Some(format!("failed to run Kubelet: validate service connection: validate CRI v1 runtime API for endpoint \"{endpoint}\": rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial unix {path}: connect: {why}\""))
}

/// The socket answers, but does the runtime behind it answer the CRI? The kubelet's
/// Version call (cri-client remote_runtime.go validateServiceConnection) through tb-cri,
/// where the host's containerd is the real one: a containerd whose CRI plugin is
/// disabled (`disabled_plugins = ["cri"]`) answers `rpc error: code = Unimplemented desc
/// = unknown service runtime.v1.RuntimeService` and the kubelet exits. (The containerd
/// stand-in of other releases speaks no gRPC: not asked.)
fn cri_refused(endpoint: &str) -> Option<String> {
    crate::os::real_containerd()?;
    let client = Ctx::load("kubelet").config.cri_client?;
    let out = std::process::Command::new(client)
        .args(["-endpoint", endpoint, "-timeout", "10s", "version"])
        .output()
        .ok()?;
    (!out.status.success()).then(|| {
        format!(
            "failed to run Kubelet: validate service connection: validate CRI v1 runtime API for endpoint \"{endpoint}\": {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })
}

/// The kubelet's CRI endpoint: `--container-runtime-endpoint`, else config.yaml's
/// `containerRuntimeEndpoint`, else the default (v1beta1/defaults.go).
pub fn cri_endpoint(config: &Value, flags: &[(String, String)]) -> String {
    flag(flags, "container-runtime-endpoint")
        .or(config["containerRuntimeEndpoint"].as_str())
        .unwrap_or("unix:///run/containerd/containerd.sock")
        .to_string()
}

/// `--node-ip` split as nodeutil.ParseNodeIPArgument does: the first IP that parses,
/// and the entries that do not (ignored by the kubelet).
pub fn parse_node_ip(flag: &str) -> (Option<std::net::IpAddr>, Vec<String>) {
    let mut ip = None;
    let mut unparsed = Vec::new();
    for part in flag.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<std::net::IpAddr>() {
            Ok(a) if ip.is_none() => ip = Some(a),
            Ok(_) => {}
            Err(_) => unparsed.push(part.to_string()),
        }
    }
    (ip, unparsed)
}

/// The kubelet's validateNodeIP, message for message.
pub fn validate_node_ip(ip: std::net::IpAddr, local: &[std::net::IpAddr]) -> Result<(), String> {
    let link_local = match ip {
        std::net::IpAddr::V4(v4) => v4.is_link_local(),
        std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    };
    if ip.is_loopback() {
        return Err("nodeIP can't be loopback address".into());
    }
    if ip.is_multicast() {
        return Err("nodeIP can't be a multicast address".into());
    }
    if link_local {
        return Err("nodeIP can't be a link-local unicast address".into());
    }
    if ip.is_unspecified() {
        return Err("nodeIP can't be an all zeros address".into());
    }
    if local.contains(&ip) {
        return Ok(());
    }
    Err(format!(
        "node IP: \"{ip}\" not found in the host's network interfaces"
    ))
}

/// The addresses on the host's interfaces (Go's net.InterfaceAddrs), from getifaddrs(3).
pub fn local_addresses() -> Vec<std::net::IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            match i32::from(unsafe { (*ifa.ifa_addr).sa_family }) {
                libc::AF_INET => {
                    let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                    out.push(std::net::IpAddr::from(
                        u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                    ));
                }
                libc::AF_INET6 => {
                    let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                    out.push(std::net::IpAddr::from(sin6.sin6_addr.s6_addr));
                }
                _ => {}
            }
        }
        cur = ifa.ifa_next;
    }
    unsafe { libc::freeifaddrs(head) };
    out
}

/// `tb-sim daemon kubelet`.
pub fn daemon(_args: &[String]) -> i32 {
    unsafe {
        libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_term as *const () as libc::sighandler_t);
    }
    let host = Ctx::load("kubelet").config;
    let Some(releases) = host.real_kubernetes.clone() else {
        log(
            'E',
            "the testbed has no built Kubernetes release (testbed/k8s/build.sh)",
        );
        return 1;
    };
    let Some(version) = kubelet_version() else {
        log('E', "kubelet package is not installed");
        return 1;
    };
    // systemd's crash loop until init/join writes the configuration.
    let mut said = String::new();
    let mut say = |msg: String| {
        if msg != said {
            log(
                'E',
                &format!("\"command failed\" err=\"{}\"", msg.replace('"', "\\\"")),
            );
            said = msg;
        }
    };
    let (config, flags) = loop {
        if TERM.load(Ordering::SeqCst) {
            let _ = std::fs::remove_file(units_dir().join("kubelet.state"));
            return 0;
        }
        set_state("waiting");
        let text = std::fs::read_to_string(CONFIG_YAML);
        if let Err(e) = &text {
            let why = if e.kind() == std::io::ErrorKind::NotFound {
                "no such file or directory".to_string()
            } else {
                e.to_string()
            };
            say(format!("failed to load kubelet config file, path: {CONFIG_YAML}, error: failed to load Kubelet config file {CONFIG_YAML}, error failed to read kubelet config file \"{CONFIG_YAML}\", error: open {CONFIG_YAML}: {why}"));
        } else if !(Path::new(KUBELET_CONF).exists() || Path::new(BOOTSTRAP_CONF).exists()) {
            say(format!("failed to run Kubelet: unable to load bootstrap kubeconfig: stat {BOOTSTRAP_CONF}: no such file or directory; kubeconfig {KUBELET_CONF} is missing"));
        } else {
            let config: Value = serde_yaml::from_str(&text.unwrap()).unwrap_or(Value::Null);
            let flags = read_flags();
            match start_check(&config, &flags, &version) {
                Some(m) => say(m),
                None => break (config, flags),
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    set_state("running");
    log(
        'I',
        &format!("\"Kubelet version\" kubeletVersion=\"{version}\""),
    );
    super::staticpods::run(&releases.join(&version), &version, &config, &flags)
}

fn units_dir() -> std::path::PathBuf {
    common::ctl_path(testbed::layout::ctl::UNITS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ip_as_the_kubelet_reads_and_validates_it() {
        let (ip, bad) = parse_node_ip("node1.example.com");
        assert_eq!((ip, bad), (None, vec!["node1.example.com".to_string()]));
        let (ip, _) = parse_node_ip("10.0.0.5");
        let local: Vec<std::net::IpAddr> = vec!["10.0.0.5".parse().unwrap()];
        assert_eq!(validate_node_ip(ip.unwrap(), &local), Ok(()));
        assert_eq!(
            validate_node_ip("203.0.113.7".parse().unwrap(), &local).unwrap_err(),
            "node IP: \"203.0.113.7\" not found in the host's network interfaces"
        );
        assert!(validate_node_ip("127.0.0.1".parse().unwrap(), &local)
            .unwrap_err()
            .contains("loopback"));
        assert!(local_addresses().iter().any(|a| a.is_loopback()));
    }

    #[test]
    fn node_labels_policy() {
        assert_eq!(
            forbidden_node_labels(
                "node-role.kubernetes.io/worker=,type=web,node.kubernetes.io/x=y"
            ),
            vec!["node-role.kubernetes.io/worker"]
        );
        assert!(forbidden_node_labels("kubernetes.io/os=linux").is_empty());
    }

    #[test]
    fn flags_from_kubeadm_and_extra_args_later_wins() {
        let kubeadm = "KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock --node-ip=10.200.1.3 --register-with-taints=dedicated=db:NoSchedule,gpu:PreferNoSchedule --node-labels=a=1\"\n";
        let extra = "KUBELET_EXTRA_ARGS=--node-ip=10.200.9.9 --node-labels b=2\n";
        let f = parse_flags(&[
            (kubeadm, "KUBELET_KUBEADM_ARGS"),
            (extra, "KUBELET_EXTRA_ARGS"),
        ]);
        assert_eq!(flag(&f, "node-ip"), Some("10.200.9.9"));
        assert_eq!(node_labels(&f), "a=1,b=2");
        let t = parse_taints(flag(&f, "register-with-taints").unwrap()).unwrap();
        assert_eq!(
            t,
            vec![
                json!({"key": "dedicated", "value": "db", "effect": "NoSchedule"}),
                json!({"key": "gpu", "effect": "PreferNoSchedule"})
            ]
        );
        assert_eq!(parse_taints("").unwrap(), Vec::<Value>::new());
    }

    #[test]
    fn taint_flag_errors_are_the_kubelets() {
        assert_eq!(
            parse_taints("k=v:Sometimes").unwrap_err(),
            "invalid taint effect: Sometimes, unsupported taint effect"
        );
        assert_eq!(
            parse_taints("a=b=c:NoSchedule").unwrap_err(),
            "invalid taint spec: a=b=c:NoSchedule"
        );
        assert!(parse_taints("-bad:NoSchedule")
            .unwrap_err()
            .starts_with("invalid taint spec: -bad:NoSchedule, name part must consist of"));
        let flags = vec![("register-with-taints".to_string(), "k:Never".to_string())];
        assert_eq!(
            start_check(&json!({"failSwapOn": false}), &flags, "v1.35.4").unwrap(),
            "failed to parse kubelet flag: invalid argument \"k:Never\" for \"--register-with-taints\" flag: invalid taint effect: Never, unsupported taint effect"
        );
    }

    /// ValidateKubeletFlags refuses a --node-labels key that is no qualified name or a value
    /// that is no label value, and the flag parser a part without `=`: the stand-in
    /// registered such a Node (or tried to) instead of refusing to start.
    #[test]
    fn node_labels_must_be_valid_labels() {
        let check = |labels: &str| {
            let flags = vec![("node-labels".to_string(), labels.to_string())];
            start_check(&json!({"failSwapOn": false}), &flags, "v1.35.4")
        };
        // Valid labels pass these checks (what follows is the runtime check).
        assert!(!check("type=web,tier=db").is_some_and(|m| m.contains("label")));
        assert_eq!(
            check("type=web server").unwrap(),
            "failed to validate kubelet flags: invalid node labels: 'web server' - a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        );
        assert!(check("-type=web")
            .unwrap()
            .starts_with("failed to validate kubelet flags: invalid node labels: '-type' - name part must consist of"));
        assert_eq!(
            check("type").unwrap(),
            "failed to parse kubelet flag: invalid argument \"type\" for \"--node-labels\" flag: malformed pair, expect string=string"
        );
        assert!(check("node-role.kubernetes.io/worker=")
            .unwrap()
            .starts_with("failed to validate kubelet flags: unknown 'kubernetes.io' or 'k8s.io' labels specified with --node-labels: [node-role.kubernetes.io/worker]"));
    }

    #[test]
    fn a_1_35_kubelet_refuses_cgroup_v1_unless_told_not_to_fail() {
        assert!(cgroup_v1_refused(&json!({}), false, "v1.35.4")
            .unwrap()
            .contains("kubelet is configured to not run on a host using cgroup v1"));
        assert_eq!(
            cgroup_v1_refused(&json!({"failCgroupV1": false}), false, "v1.36.3"),
            None
        );
        assert_eq!(cgroup_v1_refused(&json!({}), true, "v1.35.4"), None);
        // Up to 1.34 the default is false: only an explicit true refuses.
        assert_eq!(cgroup_v1_refused(&json!({}), false, "v1.34.2"), None);
        assert!(cgroup_v1_refused(&json!({"failCgroupV1": true}), false, "v1.34.2").is_some());
    }

    #[test]
    fn the_real_kubelet_needs_its_runtime_s_socket() {
        let config = json!({"containerRuntimeEndpoint": "unix:///nonexistent/containerd.sock"});
        assert_eq!(
            cri_unreachable(&config, &[]).unwrap(),
            "failed to run Kubelet: validate service connection: validate CRI v1 runtime API for endpoint \"unix:///nonexistent/containerd.sock\": rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial unix /nonexistent/containerd.sock: connect: no such file or directory\""
        );
        let dir = std::env::temp_dir().join(format!("tb-cri-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("c.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let flags = vec![(
            "container-runtime-endpoint".to_string(),
            format!("unix://{}", sock.display()),
        )];
        assert_eq!(cri_unreachable(&config, &flags), None, "the flag wins");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
