//! The node side of the kubelet stand-in for the REAL control plane (issue 9,
//! testbed/STANDINS-kubelet-real.md): what kubeadm waits for from a kubelet besides the
//! static pods.
//!
//! - healthz: `GET http://127.0.0.1:10248/healthz` answers `200 ok`, as the kubelet's
//!   healthz server (pkg/kubelet/server, KubeletConfiguration healthzBindAddress and
//!   healthzPort defaults); kubeadm's `WaitForKubelet` polls it (wait-control-plane).
//! - registration: once /etc/kubernetes/kubelet.conf exists, the Node is created through
//!   the REAL API server with the kubelet's own credentials (apiclient.rs with
//!   /etc/kubernetes/kubelet.conf, so the API server's NodeRestriction admission judges
//!   it as it judges a kubelet), shaped like the kubelet's
//!   `initialNode` (pkg/kubelet/kubelet_node_status.go): labels kubernetes.io/hostname,
//!   kubernetes.io/os, kubernetes.io/arch and their beta.kubernetes.io twins, annotation
//!   volumes.kubernetes.io/controller-managed-attach-detach=true. kubeadm's
//!   mark-control-plane polls for the hostname label before patching the Node.
//!
//! - status and Lease: right after registration and then every 10 s (the kubelet's
//!   nodeStatusUpdateFrequency and lease renew interval), the Node's status is written
//!   (nodes/status) and `kube-node-lease/<node>` created or renewed (holder = node, 40 s,
//!   owned by the Node; pkg/kubelet/nodelease), all through the raw API (GET, POST, PUT
//!   of whole objects) so no client-side step asks for more than a kubelet may. Ready is False with
//!   the kubelet's CNI message until /etc/cni/net.d holds a network configuration
//!   (libcni: *.conf, *.conflist, *.json) and with `container runtime is down` once the
//!   runtime has not answered for 30 s ([`watch_runtime`]), else True (KubeletReady). Addresses: InternalIP
//!   (the host's global IPv4 address) and Hostname; capacity from the machine (CPUs,
//!   MemTotal, the kubelet's default maxPods 110); nodeInfo from the host.
//!
//! - mirror pods (mirror.rs), synced in the same 10 s loop.
//!
//! - the node from kubeadm's flags (kubeadm-flags.env, /etc/default/kubelet; later flags
//!   win as with pflag): the name from `--hostname-override` (lowercased, also the
//!   hostname label and address: pkg/util/node GetHostname), `--node-labels`,
//!   `--register-with-taints` in the registered Node's spec (initialNode), InternalIP from
//!   `--node-ip` (nodeutil.ParseNodeIPArgument), which every status update validates
//!   against the host's interfaces (kubelet_node_status.go validateNodeIP): on failure the
//!   NodeAddress setter errs, the kubelet logs `Failed to set some node status fields`
//!   and the addresses stay as they were (nodestatus/setters.go NodeAddress,
//!   kubelet_node_status.go setNodeStatus).
//! - the client: before registering, the TLS bootstrap (tlsboot.rs) when kubelet.conf
//!   holds no valid certificate.
//! - nodeInfo.containerRuntimeVersion from the runtime ([`runtime_version`]).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use super::apiclient::Client;
use super::cni::CNI_NOT_READY;
use super::kubelet::{self, KUBELET_CONF, MANIFESTS};
use super::mirror;
use crate::common;
use testbed::time::rfc3339;

/// What the kubelet's flags and configuration say about its Node.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The node name (`--hostname-override` or the host name, lowercased).
    pub name: String,
    /// `--node-ip`'s first address, if one parses.
    pub node_ip: Option<std::net::IpAddr>,
    /// `--node-labels`, `k=v,...`.
    pub labels: String,
    /// `--register-with-taints`, as Node spec.taints entries.
    pub taints: Vec<Value>,
    /// The kubelet's release (the package's version), e.g. v1.35.4.
    pub release: String,
    /// KubeletConfiguration `rotateCertificates` (kubeadm sets true).
    pub rotate: bool,
    /// `healthzBindAddress:healthzPort` (defaults 127.0.0.1:10248), None for port 0.
    pub healthz: Option<String>,
    /// The container runtime's `NAME://VERSION` (nodeInfo containerRuntimeVersion), asked
    /// once at start ([`runtime_version`]).
    pub runtime: Option<String>,
    /// KubeletConfiguration `cgroupDriver` (default cgroupfs; kubeadm writes systemd).
    pub cgroup_driver: String,
    /// The kubelet server's `address:port` (defaults 0.0.0.0:10250).
    pub server: String,
}

impl Options {
    /// From config.yaml (`config`, Null when absent) and the unit's flags. The flags were
    /// checked before (kubelet.rs start_check), so a taint that does not parse is none.
    pub fn new(release: &str, config: &Value, flags: &[(String, String)]) -> Options {
        let name = kubelet::flag(flags, "hostname-override")
            .map(str::to_lowercase)
            .unwrap_or_else(hostname);
        let (node_ip, _) = kubelet::parse_node_ip(kubelet::flag(flags, "node-ip").unwrap_or(""));
        let port = config["healthzPort"].as_u64().unwrap_or(10248);
        let address = config["healthzBindAddress"].as_str().unwrap_or("127.0.0.1");
        Options {
            name,
            node_ip,
            labels: kubelet::node_labels(flags),
            taints: kubelet::parse_taints(
                kubelet::flag(flags, "register-with-taints").unwrap_or(""),
            )
            .unwrap_or_default(),
            release: release.to_string(),
            rotate: config["rotateCertificates"].as_bool().unwrap_or(false),
            healthz: (port != 0).then(|| format!("{address}:{port}")),
            runtime: None,
            cgroup_driver: config["cgroupDriver"]
                .as_str()
                .unwrap_or("cgroupfs")
                .to_string(),
            server: format!(
                "{}:{}",
                config["address"].as_str().unwrap_or("0.0.0.0"),
                config["port"].as_u64().unwrap_or(10250)
            ),
        }
    }

    /// Why the runtime keeps no pod sandbox up for this kubelet now, if it does not
    /// ([`sandbox_problem`] with the running containerd's SystemdCgroup).
    pub fn sandbox_problem(&self) -> Option<String> {
        let runtime = crate::common::containerd_runtime()?;
        sandbox_problem(&self.cgroup_driver, runtime.systemd_cgroup)
    }
}

/// The kubelet's cgroup driver (`cgroup_driver`) against the one containerd's runc uses
/// (`runtime_systemd`: the running daemon's `SystemdCgroup`). containerd 1.7 has no CRI
/// RuntimeConfig, so the kubelet keeps its configured driver (cmd/kubelet/app/server.go
/// getCgroupDriverFromCRI falls back on Unimplemented) and the two can disagree:
/// - kubelet cgroupfs, runc systemd: every sandbox fails at creation with runc's
///   `expected cgroupsPath to be of format "slice:prefix:name" for systemd cgroups`
///   (runc libcontainer/specconv; seen in containerd/containerd#4857 and
///   kubernetes/test-infra#29180);
/// - kubelet systemd (kubeadm's default), runc cgroupfs (containerd's default config):
///   the containers start under a cgroup path outside the kubelet's hierarchy and the
///   kubelet kills and re-creates their sandboxes over and over (`Pod sandbox changed,
///   it will be killed and re-created`, kubernetes/kubernetes#110177 on Ubuntu 22.04,
///   containerd/containerd#7276), so the control plane does not stay up. Pretend: the
///   stand-in starts no container at all then.
///
/// The reference procedure (kubeadm-on-ubuntu.md section 2) sets `SystemdCgroup = true`
/// for this reason.
pub fn sandbox_problem(cgroup_driver: &str, runtime_systemd: bool) -> Option<String> {
    match (cgroup_driver == "systemd", runtime_systemd) {
        (false, true) => Some("\"CreatePodSandbox for pod failed\" err=\"rpc error: code = Unknown desc = failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: expected cgroupsPath to be of format \\\"slice:prefix:name\\\" for systemd cgroups, got \\\"/kubepods/burstable/pod0b2c3d4e/1f2e3d4c\\\" instead: unknown\"".into()),
        (true, false) => Some("\"Pod sandbox changed, it will be killed and re-created\" (the kubelet's cgroupDriver is systemd, containerd's runc uses cgroupfs: SystemdCgroup = false)".into()),
        _ => None,
    }
}

/// The runtime's version as the kubelet reports it: `containerd://` + the version the
/// runtime's Version call answers (containerd pkg/cri/server/version.go RuntimeVersion =
/// version.Version; pkg/kubelet/nodestatus/setters.go VersionInfo formats
/// `NAME://VERSION`), read from the same variable through the real `ctr version`
/// (`Server: Version:`). None when no containerd answers.
pub fn runtime_version() -> Option<String> {
    let out = Command::new("ctr").arg("version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let server = text.split("Server:").nth(1)?;
    let version = server
        .lines()
        .find_map(|l| l.trim().strip_prefix("Version:"))?
        .trim();
    (out.status.success() && !version.is_empty()).then(|| format!("containerd://{version}"))
}

/// Holds the kubelet server's port (KubeletConfiguration `address`:`port`, defaults
/// 0.0.0.0:10250: pkg/kubelet/apis/config/v1beta1/defaults.go) until the process exits,
/// so kubeadm's preflight `Port-10250` check (addCommonChecks, for init and join) finds
/// it in use while the kubelet runs. The real kubelet exits when it cannot listen
/// (pkg/kubelet/server ListenAndServeKubeletServer: `Failed to listen and serve`, exit 1).
/// Pretend: connections are accepted and closed; nothing is served (logs, exec and the
/// metrics the API server or a scraper would ask the real kubelet for).
pub fn hold_server_port(address: &str) -> Result<(), String> {
    let listener = TcpListener::bind(address).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::AddrInUse => "address already in use".to_string(),
            _ => e.to_string(),
        };
        format!("\"Failed to listen and serve\" err=\"listen tcp {address}: bind: {why}\"")
    })?;
    std::thread::spawn(move || for _ in listener.incoming() {});
    Ok(())
}

/// Serves the kubelet's healthz endpoint at `address` until the process exits.
pub fn serve_healthz(address: &str) -> Result<(), String> {
    let listener =
        TcpListener::bind(address).map_err(|e| format!("listen tcp {address}: bind: {e}"))?;
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 1024];
            let n = conn.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("");
            let reply = if path == "/healthz" {
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 19\r\nConnection: close\r\n\r\n404 page not found\n"
            };
            let _ = conn.write_all(reply.as_bytes());
        }
    });
    Ok(())
}

/// The Node the kubelet registers (kubelet_node_status.go `initialNode`): `--node-labels`
/// added to the labels, `--register-with-taints` as spec.taints.
pub fn initial_node(name: &str, hostname: &str, labels: &str, taints: &[Value]) -> Value {
    let mut node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": hostname,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": go_arch(),
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": go_arch(),
            },
            "annotations": {
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
    });
    for kv in labels.split(',').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        node["metadata"]["labels"][k] = json!(v);
    }
    if !taints.is_empty() {
        node["spec"] = json!({ "taints": taints });
    }
    node
}

/// Go's name of this machine's architecture (runtime.GOARCH), which the labels carry.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The host's name (the kubelet's default node name, lowercased as the kubelet does).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_lowercase()
}

/// In a thread: the TLS bootstrap if kubelet.conf needs one (tlsboot.rs, retried every
/// 10 s on failure), then registers the Node (retrying every 2 s, as the kubelet retries
/// until it succeeds), then reports its status and renews its Lease every 10 s.
pub fn run_in_background(opts: Options, cri: Option<super::sandbox::Cri>, log: fn(&str)) {
    std::thread::spawn(move || {
        // The kubelet's one client of the API server, shared by its loops (apiclient.rs).
        let api = Client::new(KUBELET_CONF, &opts.release);
        let name = opts.name.clone();
        let node = initial_node(&name, &name, &opts.labels, &opts.taints);
        let mut said = String::new();
        // kubeadm init's kubelet.conf carries the node's pair: into the store, then a new
        // certificate in the background (tlsboot.rs store_embedded_pair).
        match super::tlsboot::store_embedded_pair(opts.rotate) {
            Ok(true) => {
                let (api, name) = (api.clone(), name.clone());
                // The certificate manager's rotation loop, with its backoff.
                std::thread::spawn(move || {
                    super::tlsboot::rotate_until_issued(
                        &mut || super::tlsboot::request_certificate(&api, &name, true, &|m| log(m)),
                        &mut std::thread::sleep,
                        &|m| log(m),
                    )
                });
            }
            Ok(false) => {}
            Err(e) => log(&format!("Unable to store the bootstrap certificate: {e}")),
        }
        let bootstrap = Client::new(super::kubelet::BOOTSTRAP_CONF, &opts.release);
        while let Err(e) =
            super::tlsboot::ensure_client(&bootstrap, &name, opts.rotate, &|m| log(m))
        {
            if e != said {
                log(&format!("failed to run Kubelet: {e}"));
                said = e;
            }
            std::thread::sleep(Duration::from_secs(10));
        }
        let mut last = String::new();
        let mut report = |what: &str, r: Result<(), String>| match r {
            Ok(_) => last.clear(),
            Err(e) if e != last => {
                log(&format!("{what}: {e}"));
                last = e;
            }
            Err(_) => {}
        };
        loop {
            if Path::new(KUBELET_CONF).exists() {
                match api.create("/api/v1/nodes", &node) {
                    Ok(_) => {
                        log(&format!("Successfully registered node {name}"));
                        break;
                    }
                    Err(e) if e.is_already_exists() => {
                        log(&format!("node {name} was previously registered"));
                        break;
                    }
                    Err(e) => report("Unable to register node with API server", Err(e.into())),
                }
            }
            std::thread::sleep(Duration::from_secs(2));
        }
        {
            // The pods the scheduler binds here (podsync.rs), on their own 2 s beat.
            let (api, opts) = (api.clone(), opts.clone());
            std::thread::spawn(move || {
                let mut said = String::new();
                loop {
                    match super::podsync::sync(&api, &opts, cri.as_ref()) {
                        Ok(lines) => lines.iter().for_each(|l| log(l)),
                        Err(e) if e != said => {
                            log(&format!("failed to sync pods: {e}"));
                            said = e;
                        }
                        Err(_) => {}
                    }
                    std::thread::sleep(Duration::from_secs(2));
                }
            });
        }
        loop {
            match update_status(&api, &opts) {
                // Logged on every update, as setNodeStatus does.
                Ok(Some(setter_error)) => log(&setter_error),
                Ok(None) => report("", Ok(())),
                Err(e) => report("Error updating node status", Err(e)),
            }
            report("failed to update lease", renew_lease(&api, &name));
            report("failed to sync mirror pods", sync_mirrors(&api, &opts));
            std::thread::sleep(Duration::from_secs(10));
        }
    });
}

/// GET the Node, PUT it back to nodes/status with the current status. The kubelet PATCHes
/// nodes/status; kubectl's `patch` would GET nodes/status first, which the Node authorizer
/// does not allow a kubelet, so this PUTs the whole object instead. A node IP
/// that fails validation leaves the addresses as they were and is reported after the
/// update, as the kubelet logs it (the Ok value: the log line).
fn update_status(api: &Client, opts: &Options) -> Result<Option<String>, String> {
    let path = format!("/api/v1/nodes/{}", opts.name);
    let mut node = api.get(&path)?;
    let addresses = node_addresses(opts);
    let previous = node["status"]["addresses"].clone();
    let earlier = node["status"]["conditions"].clone();
    node["status"] = node_status(&opts.release);
    node["status"]["conditions"] = merge_conditions(&earlier, &node["status"]["conditions"]);
    if let Some(runtime) = &opts.runtime {
        node["status"]["nodeInfo"]["containerRuntimeVersion"] = json!(runtime);
    }
    node["status"]["addresses"] = match &addresses {
        Ok(list) => json!(list),
        Err(_) if previous.is_null() => json!([]),
        Err(_) => previous,
    };
    api.replace(&format!("{path}/status"), &node)?;
    Ok(addresses.err().map(|e| {
        format!(
            "\"Failed to set some node status fields\" err=\"failed to validate nodeIP: {}\" node=\"{}\"",
            e.replace('"', "\\\""),
            opts.name
        )
    }))
}

/// The kubelet's condition setters (nodestatus/setters.go ReadyCondition,
/// MemoryPressureCondition, ...) update the Node's conditions in place: a condition whose
/// status did not change keeps its lastTransitionTime (only lastHeartbeatTime moves), and
/// conditions the kubelet does not own (NetworkUnavailable, which a network plugin sets)
/// stay as they are.
fn merge_conditions(earlier: &Value, fresh: &Value) -> Value {
    let mut out: Vec<Value> = earlier.as_array().cloned().unwrap_or_default();
    for c in fresh.as_array().into_iter().flatten() {
        match out.iter_mut().find(|e| e["type"] == c["type"]) {
            Some(e) => {
                let mut c = c.clone();
                if e["status"] == c["status"] && !e["lastTransitionTime"].is_null() {
                    c["lastTransitionTime"] = e["lastTransitionTime"].clone();
                }
                *e = c;
            }
            None => out.push(c.clone()),
        }
    }
    json!(out)
}

/// The NodeAddress setter (nodestatus/setters.go): `--node-ip` if it validates, else the
/// host's global IPv4 address; then the Hostname address.
fn node_addresses(opts: &Options) -> Result<Vec<Value>, String> {
    let ip = match opts.node_ip {
        Some(ip) => {
            kubelet::validate_node_ip(ip, &kubelet::local_addresses())?;
            Some(ip.to_string())
        }
        None => internal_ip(),
    };
    let mut out: Vec<Value> = ip
        .map(|ip| json!({"type": "InternalIP", "address": ip}))
        .into_iter()
        .collect();
    out.push(json!({"type": "Hostname", "address": opts.name}));
    Ok(out)
}

/// Makes the mirror pods match the manifests (mirror.rs): deletes those whose manifest is
/// gone or changed, creates the missing ones, writes each one's status.
fn sync_mirrors(api: &Client, opts: &Options) -> Result<(), String> {
    let node = opts.name.as_str();
    // Every namespace: a static pod's mirror lives in the manifest's namespace
    // (`default` when it names none: mirror.rs namespace).
    let pods = |ns: &str| format!("/api/v1/namespaces/{ns}/pods");
    let list = api.get(&format!(
        "/api/v1/pods?fieldSelector=spec.nodeName%3D{node}"
    ))?;
    let wanted = mirror::manifests(MANIFESTS);
    let suffix = format!("-{node}");
    let mut current = BTreeMap::new();
    for pod in list["items"].as_array().into_iter().flatten() {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
        let Some(hash) = pod["metadata"]["annotations"]["kubernetes.io/config.mirror"].as_str()
        else {
            continue;
        };
        let static_name = name.strip_suffix(&suffix).unwrap_or_default();
        let terminating = !pod["metadata"]["deletionTimestamp"].is_null();
        let same = wanted
            .get(static_name)
            .is_some_and(|(p, h)| h == hash && mirror::namespace(p) == ns);
        if !terminating && same {
            current.insert(static_name.to_string(), pod.clone());
        } else {
            // The kubelet deletes a mirror pod with grace period 0 (mirror_client.go
            // DeleteMirrorPod); a graceful delete would wait for a kubelet confirmation.
            let path = format!("{}/{name}?gracePeriodSeconds=0", pods(ns));
            api.delete(&path, None)?;
        }
    }
    let now = rfc3339(common::now());
    let ip = opts
        .node_ip
        .map(|ip| ip.to_string())
        .or_else(internal_ip)
        .unwrap_or_default();
    for (static_name, (pod, hash)) in &wanted {
        let mut object = match current.remove(static_name) {
            Some(object) => object,
            None => {
                // The owner's UID only when a mirror pod is made (was a GET of the
                // Node every 10 s on every host, for nothing once the mirrors exist).
                let m = mirror::mirror_pod(pod, hash, node, &node_uid(api, node)?, &now);
                api.create(&pods(mirror::namespace(pod)), &m)?
            }
        };
        let pid = mirror::process(static_name);
        // A container no probe worker watches yet (this kubelet has not started or
        // adopted it) is neither started nor ready.
        let probed = |container: &str| {
            pid.and_then(|p| super::prober::state(static_name, container, p))
                .unwrap_or((false, false))
        };
        // The static pod's UID is its manifest hash (sandbox.rs, staticpods.rs).
        let history = |container: &str| mirror::history(static_name, hash, container);
        let start_time = object["status"]["startTime"].clone();
        object["status"] =
            mirror::pod_status_probed(pod, pid.is_some(), &probed, &history, &ip, &ip, &now);
        // Set once, when the kubelet first reported the pod (status_manager keeps it).
        if start_time.is_string() {
            object["status"]["startTime"] = start_time;
        }
        let path = format!(
            "{}/{static_name}{suffix}/status",
            pods(mirror::namespace(pod))
        );
        api.replace(&path, &object)?;
    }
    Ok(())
}

/// Creates `kube-node-lease/<node>` or renews it (GET, then PUT with its resourceVersion),
/// as pkg/kubelet/nodelease's controller does.
fn renew_lease(api: &Client, name: &str) -> Result<(), String> {
    let leases = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";
    let path = format!("{leases}/{name}");
    match api.get(&path) {
        Ok(mut current) => {
            current["spec"]["renewTime"] = json!(micro_time());
            current["spec"]["holderIdentity"] = json!(name);
            api.replace(&path, &current)?;
        }
        Err(e) if e.is_not_found() => {
            api.create(leases, &lease(name, &node_uid(api, name)?))?;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// The UID of the Node `name`, which the objects it owns (its Lease, its mirror pods) name
/// in their ownerReferences.
fn node_uid(api: &Client, name: &str) -> Result<String, String> {
    Ok(
        api.get(&format!("/api/v1/nodes/{name}"))?["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// The host's global IPv4 address (`ip -4 -o addr show scope global`).
pub fn internal_ip() -> Option<String> {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let cidr = text
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)?;
    Some(cidr.split('/').next()?.to_string())
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// How long the runtime may go without a successful status check before the kubelet
/// calls it down (pkg/kubelet/kubelet.go maxWaitForContainerRuntime).
const MAX_WAIT_FOR_CONTAINER_RUNTIME: Duration = Duration::from_secs(30);

/// When the runtime last answered the kubelet's status check (runtime.go runtimeState
/// lastBaseRuntimeSync).
static LAST_RUNTIME_SYNC: std::sync::Mutex<Option<std::time::Instant>> =
    std::sync::Mutex::new(None);

/// In a thread: the kubelet's runtime check every 5 s (pkg/kubelet/kubelet.go
/// updateRuntimeUp, run by wait.Until every 5 s): when `answers()` (the runtime's status
/// call succeeded) the sync time moves; otherwise it stays, as updateRuntimeUp returns
/// on a Status error.
pub fn watch_runtime(answers: impl Fn() -> bool + Send + 'static) {
    std::thread::spawn(move || loop {
        if answers() {
            *LAST_RUNTIME_SYNC.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(std::time::Instant::now());
        }
        std::thread::sleep(Duration::from_secs(5));
    });
}

/// The runtime's error for the Ready condition now (runtime.go runtimeErrors), if any.
pub fn runtime_errors() -> Option<String> {
    let last = *LAST_RUNTIME_SYNC.lock().unwrap_or_else(|p| p.into_inner());
    runtime_errors_at(last, std::time::Instant::now())
}

/// runtime.go runtimeErrors with the last successful check `last`: none yet, or the last
/// one [`MAX_WAIT_FOR_CONTAINER_RUNTIME`] ago or more. Not modelled: the PLEG health
/// check, which adds `PLEG is not healthy: ...` after 3 minutes of failed relists.
fn runtime_errors_at(last: Option<std::time::Instant>, now: std::time::Instant) -> Option<String> {
    match last {
        None => Some("container runtime status check may not have completed yet".into()),
        Some(t) if t + MAX_WAIT_FOR_CONTAINER_RUNTIME <= now => {
            Some("container runtime is down".into())
        }
        Some(_) => None,
    }
}

/// utilerrors.NewAggregate(errs).Error(): none, the one message, or the distinct
/// messages as `[a, b]` (k8s.io/apimachinery/pkg/util/errors).
fn aggregate(errors: Vec<String>) -> Option<String> {
    let mut seen: Vec<String> = Vec::new();
    for e in errors {
        if !seen.contains(&e) {
            seen.push(e);
        }
    }
    match seen.len() {
        0 => None,
        1 => seen.pop(),
        _ => Some(format!("[{}]", seen.join(", "))),
    }
}

/// The Node's status as the kubelet's setters write it (pkg/kubelet/nodestatus). Ready
/// (setters.go ReadyCondition): False `KubeletNotReady` with the aggregate of the
/// runtime's errors ([`runtime_errors`]) and the network's (cni.rs), else True.
pub fn node_status(release: &str) -> serde_json::Value {
    let now = rfc3339(common::now());
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({"type": kind, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    let network = super::cni::network_ready()
        .err()
        .map(|_| CNI_NOT_READY.to_string());
    let ready = match aggregate(runtime_errors().into_iter().chain(network).collect()) {
        None => condition(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status",
        ),
        Some(why) => condition("Ready", "False", "KubeletNotReady", &why),
    };
    let memory_kib = read_trimmed("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next().map(String::from))
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (capacity, allocatable) = resources(
        cpus,
        memory_kib.parse().unwrap_or(0),
        rootfs_bytes("/var/lib/kubelet"),
    );
    let os_image = read_trimmed("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_default();
    json!({
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            ready,
        ],
        "capacity": capacity,
        "allocatable": allocatable,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": read_trimmed("/etc/machine-id"),
            "bootID": read_trimmed("/proc/sys/kernel/random/boot_id"),
            "kernelVersion": read_trimmed("/proc/sys/kernel/osrelease"),
            "osImage": os_image,
            "operatingSystem": "linux",
            "architecture": go_arch(),
            "kubeletVersion": release,
        },
    })
}

/// The size of the file system holding `dir` in bytes (cadvisor's RootFsInfo capacity of
/// the kubelet's root directory), 0 when it cannot be asked.
fn rootfs_bytes(dir: &str) -> u64 {
    let Ok(path) = std::ffi::CString::new(dir) else {
        return 0;
    };
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    st.f_blocks as u64 * st.f_frsize as u64
}

/// The Node's capacity and allocatable (nodestatus/setters.go MachineInfo): capacity from
/// the machine, allocatable = capacity minus the reservation
/// (pkg/kubelet/cm/node_container_manager_linux.go GetNodeAllocatableReservation), which
/// under kubeadm's configuration (no kube- or system-reserved) is the kubelet's default
/// hard eviction thresholds (pkg/kubelet/apis/config/v1beta1/defaults_linux.go:
/// memory.available<100Mi, nodefs.available<10%): 100Mi of memory and a tenth of the root
/// file system. Quantities as the API prints them: memory in Ki, ephemeral-storage
/// capacity in Ki and its allocatable in bytes.
fn resources(cpus: usize, memory_kib: u64, rootfs: u64) -> (Value, Value) {
    let capacity = json!({
        "cpu": cpus.to_string(),
        "memory": format!("{memory_kib}Ki"),
        "ephemeral-storage": format!("{}Ki", rootfs / 1024),
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "pods": "110",
    });
    let rootfs = rootfs / 1024 * 1024;
    let mut allocatable = capacity.clone();
    allocatable["memory"] = json!(format!("{}Ki", memory_kib.saturating_sub(100 * 1024)));
    // GetThresholdQuantity: int64(capacity * 0.1), rounded down.
    allocatable["ephemeral-storage"] = json!((rootfs - rootfs / 10).to_string());
    (capacity, allocatable)
}

/// A MicroTime for now (the API's `2006-01-02T15:04:05.000000Z07:00`).
fn micro_time() -> String {
    rfc3339(common::now()).replace('Z', ".000000Z")
}

/// `kube-node-lease/<node>` (pkg/kubelet/nodelease: 40 s, owned by the Node).
fn lease(name: &str, uid: &str) -> serde_json::Value {
    let now = micro_time();
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": "kube-node-lease",
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}],
        },
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A condition whose status stays keeps when it last changed; a changed one moves; a
    /// condition another component owns stays (the stand-in rewrote every condition with
    /// lastTransitionTime = now on every update and dropped the others).
    #[test]
    fn conditions_keep_their_transition_time_while_their_status_stays() {
        let earlier = json!([
            {"type": "NetworkUnavailable", "status": "False", "lastTransitionTime": "t0"},
            {"type": "MemoryPressure", "status": "False", "lastTransitionTime": "t1", "lastHeartbeatTime": "t1"},
            {"type": "Ready", "status": "False", "lastTransitionTime": "t1", "lastHeartbeatTime": "t1"},
        ]);
        let fresh = json!([
            {"type": "MemoryPressure", "status": "False", "lastTransitionTime": "t2", "lastHeartbeatTime": "t2"},
            {"type": "Ready", "status": "True", "lastTransitionTime": "t2", "lastHeartbeatTime": "t2"},
            {"type": "PIDPressure", "status": "False", "lastTransitionTime": "t2", "lastHeartbeatTime": "t2"},
        ]);
        let merged = merge_conditions(&earlier, &fresh);
        let of = |t: &str| {
            merged
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == t)
                .unwrap()
                .clone()
        };
        assert_eq!(of("NetworkUnavailable")["lastTransitionTime"], "t0");
        assert_eq!(of("MemoryPressure")["lastTransitionTime"], "t1");
        assert_eq!(of("MemoryPressure")["lastHeartbeatTime"], "t2");
        assert_eq!(of("Ready")["lastTransitionTime"], "t2");
        assert_eq!(of("Ready")["status"], "True");
        assert_eq!(of("PIDPressure")["lastTransitionTime"], "t2");
        assert_eq!(merged.as_array().unwrap().len(), 4);
    }

    /// The kubelet calls the runtime down 30 s after its last successful status check and
    /// says so in Ready with the network's error (runtime.go runtimeErrors, setters.go
    /// ReadyCondition). The stand-in's Ready looked at the CNI configuration only, so a
    /// node whose containerd was stopped stayed Ready.
    #[test]
    fn ready_says_the_runtime_is_down_30_s_after_its_last_answer() {
        let t0 = std::time::Instant::now();
        let s = Duration::from_secs;
        assert_eq!(
            runtime_errors_at(None, t0).unwrap(),
            "container runtime status check may not have completed yet"
        );
        assert_eq!(runtime_errors_at(Some(t0), t0 + s(29)), None);
        assert_eq!(
            runtime_errors_at(Some(t0), t0 + s(30)).unwrap(),
            "container runtime is down"
        );
        assert_eq!(aggregate(vec![]), None);
        assert_eq!(aggregate(vec!["a".into(), "a".into()]).unwrap(), "a");
        assert_eq!(
            aggregate(vec![
                "container runtime is down".into(),
                CNI_NOT_READY.into()
            ])
            .unwrap(),
            format!("[container runtime is down, {CNI_NOT_READY}]")
        );
        // No check has answered in this process: the Node is not Ready, whatever the
        // CNI configuration says.
        let status = node_status("v1.35.4");
        let ready = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "False");
        assert!(ready["message"]
            .as_str()
            .unwrap()
            .contains("container runtime status check may not have completed yet"));
    }

    /// Allocatable is capacity minus the default hard eviction thresholds (100Mi of
    /// memory, 10% of the root file system): the stand-in reported capacity as
    /// allocatable, 100Mi more than a real node offers the scheduler.
    #[test]
    fn allocatable_keeps_the_kubelet_s_eviction_reserve() {
        let (capacity, allocatable) = resources(2, 4_000_000, 10 * 1024 * 1024 * 1024);
        assert_eq!(capacity["memory"], "4000000Ki");
        assert_eq!(allocatable["memory"], "3897600Ki");
        assert_eq!(capacity["ephemeral-storage"], "10485760Ki");
        assert_eq!(allocatable["ephemeral-storage"], "9663676416");
        assert_eq!(allocatable["cpu"], "2");
        assert_eq!(allocatable["pods"], "110");
    }

    #[test]
    fn the_initial_node_carries_the_kubelets_labels_and_annotation() {
        let node = initial_node("node1", "node1", "", &[]);
        assert_eq!(node["metadata"]["name"], "node1");
        let labels = &node["metadata"]["labels"];
        assert_eq!(labels["kubernetes.io/hostname"], "node1");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert_eq!(labels["beta.kubernetes.io/os"], "linux");
        assert_eq!(
            labels["kubernetes.io/arch"],
            labels["beta.kubernetes.io/arch"]
        );
        assert_ne!(labels["kubernetes.io/arch"], "x86_64");
        assert_eq!(
            node["metadata"]["annotations"]
                ["volumes.kubernetes.io/controller-managed-attach-detach"],
            "true"
        );
        assert!(
            node.get("spec").is_none(),
            "no taints unless --register-with-taints"
        );
        let taint = json!({"key": "dedicated", "value": "db", "effect": "NoSchedule"});
        let node = initial_node("w1", "w1", "tier=db", std::slice::from_ref(&taint));
        assert_eq!(node["spec"]["taints"], json!([taint]));
        assert_eq!(node["metadata"]["labels"]["tier"], "db");
    }

    /// The kubelet's cgroup driver against containerd's: a mismatch keeps every sandbox
    /// down (the stand-in started the control plane whatever containerd's SystemdCgroup
    /// said, so a host left at containerd's default config passed kubeadm init).
    #[test]
    fn a_cgroup_driver_mismatch_keeps_every_sandbox_down() {
        assert_eq!(sandbox_problem("systemd", true), None);
        assert_eq!(sandbox_problem("cgroupfs", false), None);
        assert!(sandbox_problem("cgroupfs", true).unwrap().contains(
            "expected cgroupsPath to be of format \\\"slice:prefix:name\\\" for systemd cgroups"
        ));
        assert!(sandbox_problem("systemd", false)
            .unwrap()
            .contains("Pod sandbox changed, it will be killed and re-created"));
        // KubeletConfiguration's default driver (v1beta1 defaults.go) and kubeadm's.
        let none = Options::new("v1.35.4", &Value::Null, &[]);
        assert_eq!(none.cgroup_driver, "cgroupfs");
        let kubeadm = Options::new("v1.35.4", &json!({"cgroupDriver": "systemd"}), &[]);
        assert_eq!(kubeadm.cgroup_driver, "systemd");
    }

    #[test]
    fn options_come_from_kubeadm_s_flags_and_config() {
        let flags = kubelet::parse_flags(&[(
            "KUBELET_KUBEADM_ARGS=\"--hostname-override=Worker-1 --node-ip=10.200.1.12 --register-with-taints=dedicated=db:NoSchedule\"",
            "KUBELET_KUBEADM_ARGS",
        )]);
        let config = json!({"rotateCertificates": true, "healthzPort": 10249});
        let o = Options::new("v1.35.4", &config, &flags);
        assert_eq!(o.name, "worker-1");
        assert_eq!(o.node_ip, Some("10.200.1.12".parse().unwrap()));
        assert_eq!(o.taints[0]["key"], "dedicated");
        assert!(o.rotate);
        assert_eq!(o.healthz.as_deref(), Some("127.0.0.1:10249"));
        // An address on none of the host's interfaces: the setter's error, no addresses.
        let o = Options {
            node_ip: Some("203.0.113.7".parse().unwrap()),
            ..o
        };
        assert_eq!(
            node_addresses(&o).unwrap_err(),
            "node IP: \"203.0.113.7\" not found in the host's network interfaces"
        );
        let none = Options::new("v1.35.4", &Value::Null, &[]);
        assert_eq!(none.healthz.as_deref(), Some("127.0.0.1:10248"));
        assert_eq!(none.server, "0.0.0.0:10250");
        let o = Options::new(
            "v1.35.4",
            &json!({"address": "127.0.0.1", "port": 10260}),
            &[],
        );
        assert_eq!(o.server, "127.0.0.1:10260");
        assert!(!none.rotate);
    }
}
