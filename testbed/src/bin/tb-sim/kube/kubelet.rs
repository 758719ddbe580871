//! The simulated kubelet: `kubelet --version` and the `kubelet` unit's daemon.
//!
//! Like the real kubelet under systemd, the daemon crash-loops until kubeadm writes its
//! configuration (modeled as one process that writes `waiting` to ctl/units/kubelet.state
//! and polls, so `systemctl is-active kubelet` says `activating`). Once configured it
//! checks swap and the container runtime with the real error texts, writes `running`,
//! listens on 10250 (and healthz on 127.0.0.1:10248), runs the static pods from
//! /etc/kubernetes/manifests (the API server as a real process; the other components as
//! mirror pods only), and registers and heartbeats its Node.
//!
//! The kubelet version is the installed package's version at process start: an upgraded
//! package shows only after `systemctl restart kubelet`, as on a real host.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::api::{self, ClientConfig, Op};
use super::objects;
use super::scheduler::CNI_NOT_READY;
use crate::common::{self, Ctx};

pub const KUBELET_CONF: &str = "/etc/kubernetes/kubelet.conf";
/// The unit's `--bootstrap-kubeconfig` (kubeadm's 10-kubeadm.conf drop-in).
pub const BOOTSTRAP_CONF: &str = "/etc/kubernetes/bootstrap-kubelet.conf";
pub const CONFIG_YAML: &str = "/var/lib/kubelet/config.yaml";
pub const FLAGS_ENV: &str = "/var/lib/kubelet/kubeadm-flags.env";
pub const DEFAULTS_ENV: &str = "/etc/default/kubelet";
pub const MANIFESTS: &str = "/etc/kubernetes/manifests";
const CRI_ENDPOINT: &str = "unix:///var/run/containerd/containerd.sock";

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
    let t = objects::rfc3339(now);
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
/// `real`: the version of the stand-in for the REAL control plane, which is its own
/// container runtime (STANDINS-kubelet-real.md), so it checks cgroup v1 as the kubelet of
/// that version validates its configuration, instead of the runtime.
fn start_check(config: &Value, flags: &[(String, String)], real: Option<&str>) -> Option<String> {
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
    if let Some(version) = real {
        return cgroup_v1_refused(config, cgroup2_unified(), version)
            .or_else(|| cri_unreachable(config, flags));
    }
    runtime_problem().map(|p| format!("failed to run Kubelet: validate service connection: {p}"))
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
        Ok(_) => return None,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "no such file or directory".into(),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        Err(e) => e.to_string(),
    };
    Some(format!("failed to run Kubelet: validate service connection: validate CRI v1 runtime API for endpoint \"{endpoint}\": rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial unix {path}: connect: {why}\""))
}

/// The kubelet's CRI endpoint: `--container-runtime-endpoint`, else config.yaml's
/// `containerRuntimeEndpoint`, else the default (v1beta1/defaults.go).
pub fn cri_endpoint(config: &Value, flags: &[(String, String)]) -> String {
    flag(flags, "container-runtime-endpoint")
        .or(config["containerRuntimeEndpoint"].as_str())
        .unwrap_or("unix:///run/containerd/containerd.sock")
        .to_string()
}

/// What is wrong with the CRI endpoint, in the CRI client's words.
fn runtime_problem() -> Option<String> {
    match common::containerd_runtime() {
        None => Some(format!("validate CRI v1 runtime API for endpoint \"{CRI_ENDPOINT}\": rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial unix /var/run/containerd/containerd.sock: connect: no such file or directory\"")),
        Some(rt) if !rt.cri => Some(format!("validate CRI v1 runtime API for endpoint \"{CRI_ENDPOINT}\": rpc error: code = Unimplemented desc = unknown service runtime.v1.RuntimeService")),
        Some(_) => None,
    }
}

/// The cgroup driver mismatch between the kubelet's config and the running containerd,
/// in the words of the sandbox creation error the kubelet then logs for every pod.
fn cgroup_problem(config: &Value) -> Option<String> {
    let rt = common::containerd_runtime()?;
    let kubelet_systemd = config["cgroupDriver"].as_str().unwrap_or("cgroupfs") == "systemd";
    match (kubelet_systemd, rt.systemd_cgroup) {
        (false, true) => Some("rpc error: code = Unknown desc = failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups, got \"/kubepods/burstable/pod0b2c3d4e/1f2e3d4c\" instead: unknown".into()),
        (true, false) => Some("rpc error: code = Unknown desc = failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: cannot determine cgroup path: cgroupsPath \"kubepods-burstable-pod0b2c3d4e.slice:cri-containerd:1f2e3d4c\" should be an absolute path: unknown".into()),
        _ => None,
    }
}

fn sim_bin() -> PathBuf {
    let p = PathBuf::from(testbed::layout::SIM_BIN);
    if p.exists() {
        p
    } else {
        std::env::current_exe().unwrap_or(p)
    }
}

fn units_dir() -> PathBuf {
    common::ctl_path(testbed::layout::ctl::UNITS)
}

/// Stops the static pods' processes (the API server): what `kubeadm reset` does when it
/// removes the containers with crictl. The kubelet itself leaves them running when it
/// stops, like the real one.
pub fn stop_static_pods() {
    if let Some(pid) = common::unit_pid("kube-apiserver") {
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while common::unit_pid("kube-apiserver").is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if common::unit_pid("kube-apiserver").is_some() {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    let _ = std::fs::remove_file(units_dir().join("kube-apiserver.pid"));
    let _ = std::fs::remove_file(units_dir().join("kube-apiserver.manifest-hash"));
}

fn start_apiserver(hash: &str) {
    let logfile = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(units_dir().join("kube-apiserver.log"));
    let mut cmd = Command::new(sim_bin());
    cmd.args(["daemon", "kube-apiserver"]).stdin(Stdio::null());
    match logfile {
        Ok(f) => {
            let f2 = f.try_clone().ok();
            cmd.stdout(f);
            if let Some(f2) = f2 {
                cmd.stderr(f2);
            }
        }
        Err(_) => {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
    use std::os::unix::process::CommandExt;
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    match cmd.spawn() {
        Ok(child) => {
            let _ = common::write_atomic(
                &units_dir().join("kube-apiserver.pid"),
                child.id().to_string().as_bytes(),
            );
            let _ = common::write_atomic(
                &units_dir().join("kube-apiserver.manifest-hash"),
                hash.as_bytes(),
            );
            // Reap it when it exits so it doesn't linger as a zombie.
            std::thread::spawn(move || {
                let mut child = child;
                let _ = child.wait();
            });
        }
        Err(e) => log(
            'E',
            &format!(
                "\"Failed to start static pod\" err=\"{e}\" pod=\"kube-system/kube-apiserver\""
            ),
        ),
    }
}

/// The static pods from the manifests directory: (component, image, content hash).
fn static_pods() -> Vec<(String, String, String)> {
    let Ok(dir) = std::fs::read_dir(MANIFESTS) else {
        return vec![];
    };
    let mut out = vec![];
    for e in dir.flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("yaml") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        let Ok(doc) = serde_yaml::from_str::<Value>(&text) else {
            continue;
        };
        let component = doc["metadata"]["labels"]["component"]
            .as_str()
            .or(doc["metadata"]["name"].as_str())
            .unwrap_or("")
            .to_string();
        let image = doc["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or("")
            .to_string();
        out.push((component, image, objects::template_hash(&json!(text))));
    }
    out.sort();
    out
}

/// Keeps the API server process in line with its manifest. `blocked` (no CRI, or a
/// cgroup driver mismatch) keeps a new one from starting but does not stop a running
/// one: containers outlive a containerd restart (their shims stay, containerd.service
/// has KillMode=process) and the kubelet kills nothing it cannot reach.
fn sync_apiserver(pods: &[(String, String, String)], blocked: bool) {
    let want = pods.iter().find(|(c, _, _)| c == "kube-apiserver");
    let running = common::unit_pid("kube-apiserver");
    let current = std::fs::read_to_string(units_dir().join("kube-apiserver.manifest-hash"))
        .unwrap_or_default();
    match (want, running) {
        (None, Some(_)) => stop_static_pods(),
        (Some((_, _, h)), Some(_)) if *h != current => {
            log(
                'I',
                "\"Static pod manifest changed, restarting\" pod=\"kube-system/kube-apiserver\"",
            );
            stop_static_pods();
            if !blocked {
                start_apiserver(h);
            }
        }
        (Some((_, _, h)), None) if !blocked => start_apiserver(h),
        _ => {}
    }
}

fn os_image() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Ubuntu 24.04.3 LTS".into())
}

/// The Node object the kubelet registers, in the real shape. `labels` and `taints`
/// (`--node-labels`, `--register-with-taints`) count only when the Node is created: the
/// API server keeps an existing Node's metadata and spec, as the real kubelet leaves
/// them alone once registered.
pub fn node_object(
    name: &str,
    ip: Option<&str>,
    version: &str,
    runtime: &str,
    labels: &str,
    taints: &[Value],
) -> Value {
    let mut l = json!({
        "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
    });
    for kv in labels.split(',').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        l[k] = json!(v);
    }
    let id = objects::template_hash(&json!(name));
    let cap = json!({"cpu": "2", "ephemeral-storage": "30298176Ki", "hugepages-1Gi": "0",
                     "hugepages-2Mi": "0", "memory": "4010236Ki", "pods": "110"});
    let spec = if taints.is_empty() {
        json!({})
    } else {
        json!({ "taints": taints })
    };
    json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": l},
        "spec": spec,
        "status": {
            "addresses": match ip {
                Some(ip) => json!([{"address": ip, "type": "InternalIP"}, {"address": name, "type": "Hostname"}]),
                None => json!([]),
            },
            "capacity": cap, "allocatable": cap,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"architecture": "amd64", "bootID": objects::uuid(),
                "containerRuntimeVersion": format!("containerd://{runtime}"),
                "kernelVersion": "6.8.0-88-generic", "kubeProxyVersion": "",
                "kubeletVersion": version, "machineID": format!("{id}{id}{id}"),
                "operatingSystem": "linux", "osImage": os_image(), "systemUUID": objects::uuid()}}})
}

/// Where containerd looks for CNI configuration (`conf_dir` of its CRI plugin).
pub const CNI_CONF_DIR: &str = "/etc/cni/net.d";
/// Where containerd looks for CNI plugin binaries (`bin_dir`).
pub const CNI_BIN_DIR: &str = "/opt/cni/bin";

/// Whether the runtime's network is ready: containerd reports NetworkReady once a CNI
/// configuration (`*.conf`, `*.conflist`, `*.json`) is in its conf_dir, and drops back
/// to "cni plugin not initialized" when the last one is removed.
pub fn cni_configured(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            e.path().is_file()
                && [".conf", ".conflist", ".json"]
                    .iter()
                    .any(|ext| name.ends_with(ext))
        })
    })
}

/// The conflist Calico 3.30's install-cni writes (the manifest's `cni_network_config`
/// with the node name, MTU 0 = auto and the kubeconfig path substituted).
pub fn calico_conflist(node: &str) -> String {
    let conf = json!({
        "name": "k8s-pod-network",
        "cniVersion": "0.3.1",
        "plugins": [
            {
                "type": "calico",
                "log_level": "info",
                "log_file_path": "/var/log/calico/cni/cni.log",
                "datastore_type": "kubernetes",
                "nodename": node,
                "mtu": 0,
                "ipam": {"type": "calico-ipam"},
                "policy": {"type": "k8s"},
                "kubernetes": {"kubeconfig": format!("{CNI_CONF_DIR}/calico-kubeconfig")}
            },
            {"type": "portmap", "snat": true, "capabilities": {"portMappings": true}},
            {"type": "bandwidth", "capabilities": {"bandwidth": true}}
        ]
    });
    serde_json::to_string_pretty(&conf).unwrap_or_default() + "\n"
}

/// The kubeconfig install-cni writes for the CNI plugin: the in-cluster API address,
/// the cluster CA and the calico-cni service account's token.
fn calico_kubeconfig() -> String {
    use base64::Engine;
    let ca = std::fs::read("/etc/kubernetes/pki/ca.crt").unwrap_or_default();
    let ca = base64::engine::general_purpose::STANDARD.encode(ca);
    let token = objects::uuid();
    format!(
        "# Kubeconfig file for Calico CNI plugin. Installed by calico/node.\n\
         apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    \
         server: https://10.96.0.1:443\n    certificate-authority-data: \"{ca}\"\n\
         users:\n- name: calico\n  user:\n    token: {token}\n\
         contexts:\n- name: calico-context\n  context:\n    cluster: local\n    user: calico\n\
         current-context: calico-context\n"
    )
}

/// Writes `path` with `mode` unless it exists: install-cni overwrites on every pod
/// start, the simulation keeps what is there (a hand-edited file survives a kubelet
/// restart here, not a calico-node restart on a real host).
fn write_missing(path: &Path, text: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// What calico-node's `install-cni` init container leaves on the host: the CNI
/// configuration and kubeconfig in /etc/cni/net.d and the plugin binaries in
/// /opt/cni/bin.
fn install_cni(node: &str) -> std::io::Result<()> {
    let bin = Path::new(CNI_BIN_DIR);
    for plugin in ["calico", "calico-ipam"] {
        let text =
            format!("#!/bin/sh\n# testbed stand-in for the Calico CNI plugin ({plugin})\nexit 0\n");
        write_missing(&bin.join(plugin), text.as_bytes(), 0o755)?;
    }
    let conf = Path::new(CNI_CONF_DIR);
    write_missing(
        &conf.join("calico-kubeconfig"),
        calico_kubeconfig().as_bytes(),
        0o600,
    )?;
    write_missing(
        &conf.join("10-calico.conflist"),
        calico_conflist(node).as_bytes(),
        0o644,
    )
}

/// The uids of the calico-node pods bound to `node` that the API server says are
/// Running (manifest install in kube-system, operator install in calico-system).
fn running_calico_pods(client: &ClientConfig, node: &str) -> Vec<String> {
    let Ok(list) = client.send(
        Op::List {
            kind: "Pod".into(),
            namespace: None,
        },
        Duration::from_secs(5),
    ) else {
        return vec![];
    };
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|p| {
                    p["metadata"]["labels"]["k8s-app"] == "calico-node"
                        && p["spec"]["nodeName"] == node
                        && p["status"]["phase"] == "Running"
                })
                .map(|p| p["metadata"]["uid"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Binds the kubelet's ports: 10250 (API) and 127.0.0.1:10248 (healthz, answered).
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

fn listen_ports() -> Option<(TcpListener, TcpListener)> {
    let api = TcpListener::bind("0.0.0.0:10250").ok()?;
    let health = TcpListener::bind("127.0.0.1:10248").ok()?;
    let h = health.try_clone().ok()?;
    std::thread::spawn(move || {
        for c in h.incoming().flatten() {
            let mut c = c;
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n\r\nok");
        }
    });
    let a = api.try_clone().ok()?;
    std::thread::spawn(move || for _c in a.incoming() {});
    Some((api, health))
}

/// `tb-sim daemon kubelet`.
pub fn daemon(_args: &[String]) -> i32 {
    unsafe {
        libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_term as *const () as libc::sighandler_t);
    }
    let host = Ctx::load("kubelet").config;
    let real = host.real_kubernetes.clone();
    let Some(version) = kubelet_version() else {
        log('E', "kubelet package is not installed");
        return 1;
    };
    let interval = (10.0 * host.time_scale).max(0.5);
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
        } else if !(Path::new(KUBELET_CONF).exists()
            || real.is_some() && Path::new(BOOTSTRAP_CONF).exists())
        {
            say(format!("failed to run Kubelet: unable to load bootstrap kubeconfig: stat {BOOTSTRAP_CONF}: no such file or directory; kubeconfig {KUBELET_CONF} is missing"));
        } else {
            let config: Value = serde_yaml::from_str(&text.unwrap()).unwrap_or(Value::Null);
            let flags = read_flags();
            match start_check(&config, &flags, real.as_ref().map(|_| version.as_str())) {
                Some(m) => say(m),
                None => break (config, flags),
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if let Some(releases) = real {
        set_state("running");
        log(
            'I',
            &format!("\"Kubelet version\" kubeletVersion=\"{version}\""),
        );
        return super::staticpods::run(&releases.join(&version), &version, &config, &flags);
    }
    let ports = listen_ports();
    if ports.is_none() {
        log('E', "\"command failed\" err=\"failed to run Kubelet: listen tcp 0.0.0.0:10250: bind: address already in use\"");
        set_state("waiting");
        std::thread::sleep(Duration::from_secs(1));
        return 1;
    }
    set_state("running");
    log(
        'I',
        &format!("\"Kubelet version\" kubeletVersion=\"{version}\""),
    );
    let name = flag(&flags, "hostname-override")
        .map(String::from)
        .unwrap_or_else(common::hostname)
        .to_lowercase();
    // --node-ip as the kubelet reads it (nodeutil.ParseNodeIPArgument): what does not parse
    // as an IP is ignored, with a log line, and the default applies (the address of the
    // interface holding the default route, here the host's address).
    let (node_ip, unparsed) = parse_node_ip(flag(&flags, "node-ip").unwrap_or(""));
    if !unparsed.is_empty() {
        log(
            'I',
            &format!(
                "\"Could not parse some node IP(s), ignoring them\" IPs=[{}]",
                unparsed.join(" ")
            ),
        );
    }
    // The NodeAddress status setter refuses an IP the host does not have: the Node then
    // registers without addresses and every status update logs it (nodestatus/setters.go,
    // validateNodeIP in kubelet_node_status.go).
    let ip = match node_ip {
        None => Some(host.address.clone()),
        Some(ip) => match validate_node_ip(ip, &local_addresses()) {
            Ok(()) => Some(ip.to_string()),
            Err(e) => {
                log('E', &format!("\"Failed to set some node status fields\" err=\"failed to validate nodeIP: {}\" node=\"{}\"", e.replace('"', "\\\""), common::hostname().to_lowercase()));
                None
            }
        },
    };
    let labels = node_labels(&flags);
    let taints =
        parse_taints(flag(&flags, "register-with-taints").unwrap_or("")).unwrap_or_default();
    let runtime_version = common::containerd_runtime()
        .map(|r| r.version)
        .unwrap_or_else(|| "1.7.28".into());
    let client = match api::load_kubeconfig(Path::new(KUBELET_CONF)) {
        Ok(c) => c,
        Err(api::KubeconfigError::Load(m)) => {
            log(
                'E',
                &format!("\"command failed\" err=\"{}\"", m.replace('"', "\\\"")),
            );
            return 1;
        }
        Err(api::KubeconfigError::Missing) => return 1,
    };
    let node_template = node_object(
        &name,
        ip.as_deref(),
        &version,
        &runtime_version,
        &labels,
        &taints,
    );
    let mut registered = false;
    let mut last_beat = Instant::now() - Duration::from_secs(3600);
    let mut last_err = String::new();
    let mut installed_for: Vec<String> = Vec::new();
    while !TERM.load(Ordering::SeqCst) {
        let pods = static_pods();
        let cgroup = cgroup_problem(&config);
        if let Some(c) = &cgroup {
            if !pods.is_empty() && last_err != *c {
                log('E', &format!("\"CreatePodSandbox for pod failed\" err=\"{}\" pod=\"kube-system/kube-apiserver-{name}\"", c.replace('"', "\\\"")));
            }
        }
        sync_apiserver(&pods, cgroup.is_some() || runtime_problem().is_some());
        if last_beat.elapsed().as_secs_f64() >= interval {
            last_beat = Instant::now();
            // install-cni runs once per calico-node pod start: a conflist removed while
            // the pod keeps running stays removed (the node goes NotReady) until the pod
            // is restarted, as on a real host.
            if registered {
                for uid in running_calico_pods(&client, &name) {
                    if !installed_for.contains(&uid) {
                        match install_cni(&name) {
                            Ok(()) => installed_for.push(uid),
                            Err(e) => log('E', &format!("\"install-cni failed\" err=\"{e}\"")),
                        }
                    }
                }
            }
            let report = match (runtime_problem(), &cgroup) {
                (Some(p), _) => {
                    json!({"ready": false, "message": format!("container runtime is down: {p}")})
                }
                (None, Some(_)) => json!({"ready": false, "message": CNI_NOT_READY}),
                _ if !cni_configured(Path::new(CNI_CONF_DIR)) => {
                    json!({"ready": false, "message": CNI_NOT_READY})
                }
                _ => json!({"ready": true}),
            };
            let mut node = node_template.clone();
            node["testbed"] = json!({"register": !registered, "runtime": report,
                "staticPods": if cgroup.is_some() { json!([]) } else {
                    pods.iter().map(|(c, i, _)| json!({"component": c, "image": i})).collect::<Value>() }});
            match beat(&client, node) {
                Ok(()) => {
                    if !registered {
                        log(
                            'I',
                            &format!("\"Successfully registered node\" node=\"{name}\""),
                        );
                    }
                    registered = true;
                    last_err.clear();
                }
                Err(e) => {
                    let e = e.replace('"', "\\\"");
                    let msg = if registered {
                        format!("\"Error updating node status, will retry\" err=\"{e}\"")
                    } else {
                        format!("\"Unable to register node with API server\" err=\"{e}\" node=\"{name}\"")
                    };
                    if msg != last_err {
                        log('E', &msg);
                        last_err = msg;
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_file(units_dir().join("kubelet.state"));
    drop(ports);
    0
}

fn beat(client: &ClientConfig, node: Value) -> Result<(), String> {
    client
        .send(Op::Heartbeat { node }, Duration::from_secs(5))
        .map(|_| ())
        .map_err(|e| match e {
            api::ClientError::Server(b) => b["message"].as_str().unwrap_or("").to_string(),
            api::ClientError::Unreachable(_) => format!(
                "Post \"https://{}/api/v1/nodes\": {}",
                client.server,
                "dial tcp ".to_string() + &client.server + ": connect: connection refused"
            ),
        })
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
        assert_eq!(
            node_object("w1", None, "v1.34.2", "1.7.28", "", &[])["status"]["addresses"],
            json!([])
        );
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
        let n = node_object("w1", Some("10.200.9.9"), "v1.34.2", "1.7.28", "a=1", &t);
        assert_eq!(n["spec"]["taints"][0]["key"], "dedicated");
        // Without a taint flag the Node has none.
        assert!(node_object("w1", Some("ip"), "v", "r", "", &[])["spec"]["taints"].is_null());
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
            start_check(&json!({"failSwapOn": false}), &flags, None).unwrap(),
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
            start_check(&json!({"failSwapOn": false}), &flags, None)
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

    #[test]
    fn calico_conflist_shape() {
        let c: Value = serde_json::from_str(&calico_conflist("node1")).unwrap();
        assert_eq!(c["name"], "k8s-pod-network");
        assert_eq!(c["cniVersion"], "0.3.1");
        let types: Vec<&str> = c["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["calico", "portmap", "bandwidth"]);
        let calico = &c["plugins"][0];
        assert_eq!(calico["datastore_type"], "kubernetes");
        assert_eq!(calico["nodename"], "node1");
        assert_eq!(calico["ipam"]["type"], "calico-ipam");
        assert_eq!(calico["policy"]["type"], "k8s");
        assert_eq!(
            calico["kubernetes"]["kubeconfig"],
            "/etc/cni/net.d/calico-kubeconfig"
        );
    }

    #[test]
    fn network_ready_needs_a_cni_config_file() {
        let dir = std::env::temp_dir().join(format!("tb-cni-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(!cni_configured(&dir), "missing directory");
        std::fs::create_dir_all(dir.join("sub.conflist")).unwrap();
        std::fs::write(dir.join("calico-kubeconfig"), "x").unwrap();
        assert!(
            !cni_configured(&dir),
            "kubeconfig and directories don't count"
        );
        std::fs::write(dir.join("10-calico.conflist"), "{}").unwrap();
        assert!(cni_configured(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn node_shape() {
        let n = node_object(
            "w1",
            Some("10.200.1.3"),
            "v1.34.2",
            "1.7.28",
            "type=web",
            &[],
        );
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/hostname"], "w1");
        assert_eq!(n["metadata"]["labels"]["type"], "web");
        assert_eq!(n["status"]["nodeInfo"]["kubeletVersion"], "v1.34.2");
        assert_eq!(
            n["status"]["nodeInfo"]["containerRuntimeVersion"],
            "containerd://1.7.28"
        );
        assert_eq!(n["status"]["addresses"][0]["address"], "10.200.1.3");
    }
}
