//! The simulated kube-apiserver: the process the kubelet runs for the static pod
//! /etc/kubernetes/manifests/kube-apiserver.yaml.
//!
//! It loads [`state::STATE_FILE`], takes its version from the manifest's image tag,
//! listens on the manifest's `--advertise-address`:`--secure-port` (a real TCP listener in
//! the host's network namespace), serves [`api::Request`] lines (one thread per
//! connection, one mutex over the state), runs the controllers ([`scheduler`]) after
//! every change and on a timer, and persists the state like etcd keeps its log: every
//! request that changes an object is written to disk (temporary file, fsync, rename,
//! fsync of the directory) before it is answered, so a power-off never loses an
//! acknowledged write. Only a heartbeat that changes nothing but the heartbeat clock,
//! and the controllers' own status updates, are left to a writer thread (at most once a
//! second): they are recomputed after a restart, as real node leases and statuses are.
//!
//! A control plane joined with `--control-plane` has no state file of its own: its
//! apiserver forwards every request to the first control plane (the server in its
//! admin.conf). One shared state, no etcd quorum: documented as not modeled.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::api::{self, error_body, Op, Request, Response};
use super::objects;
use super::scheduler::{self, Timing};
use super::state::{ClusterState, STATE_FILE};
use crate::common;

pub const MANIFEST: &str = "/etc/kubernetes/manifests/kube-apiserver.yaml";

static TERM: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    TERM.store(true, Ordering::SeqCst);
}

/// What the static pod manifest says about the server.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestInfo {
    pub version: String,
    pub address: Option<String>,
    pub port: u16,
}

/// Reads version (image tag), --advertise-address and --secure-port from the manifest.
pub fn manifest_info(text: &str) -> Option<ManifestInfo> {
    let doc: Value = serde_yaml::from_str(text).ok()?;
    let c = &doc["spec"]["containers"][0];
    let version = objects::image_tag(c["image"].as_str()?)?.to_string();
    let args: Vec<String> = c["command"]
        .as_array()
        .into_iter()
        .chain(c["args"].as_array())
        .flatten()
        .filter_map(|a| a.as_str().map(String::from))
        .collect();
    let flag = |name: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")).map(String::from))
    };
    Some(ManifestInfo {
        version,
        address: flag("advertise-address"),
        port: flag("secure-port")
            .and_then(|p| p.parse().ok())
            .unwrap_or(api::PORT),
    })
}

struct Shared {
    state: Mutex<ClusterState>,
    /// Set when something changed that only the writer thread persists (heartbeat
    /// clocks, controller status updates).
    dirty: Mutex<bool>,
    wake: Condvar,
    /// The `resource_version` of the newest snapshot on disk. Held while writing, so
    /// writes are serialized and never go backwards; requests waiting on it are covered
    /// by one write (group commit).
    written: Mutex<u64>,
    /// How many snapshots were written (for tests and the log).
    writes: std::sync::atomic::AtomicU64,
    timing: Timing,
    path: std::path::PathBuf,
    /// Where Node spec changes are recorded ([`NodeSpecWatch`]); None in unit tests.
    node_spec_log: Option<std::path::PathBuf>,
}

impl Shared {
    fn new(st: ClusterState, timing: Timing, path: &Path) -> Shared {
        Shared {
            state: Mutex::new(st),
            dirty: Mutex::new(true),
            wake: Condvar::new(),
            written: Mutex::new(0),
            writes: Default::default(),
            timing,
            path: path.to_path_buf(),
            node_spec_log: None,
        }
    }

    fn mark_dirty(&self) {
        *self.dirty.lock().unwrap() = true;
        self.wake.notify_one();
    }

    /// The writer thread's write: the state if anything changed since the last write.
    fn persist(&self) {
        {
            let mut d = self.dirty.lock().unwrap();
            if !*d {
                return;
            }
            *d = false;
        }
        let mut written = self.written.lock().unwrap();
        if let Err(e) = self.write_snapshot(&mut written) {
            eprintln!("E {} failed to persist state: {e}", stamp());
        }
    }

    /// Makes sure a snapshot at least as new as `seq` (a `resource_version`) is on disk
    /// before the caller answers its client.
    fn persist_through(&self, seq: u64) -> std::io::Result<()> {
        let mut written = self.written.lock().unwrap();
        if *written >= seq {
            return Ok(());
        }
        self.write_snapshot(&mut written)
    }

    /// Copies the state under its lock (cheap), serializes and writes it outside it
    /// (several times dearer), durably. The caller holds `written`.
    fn write_snapshot(&self, written: &mut u64) -> std::io::Result<()> {
        // `kubeadm reset` removes the etcd data directory under a running server: never
        // bring the cluster back from the dead.
        if !self.path.exists() {
            return Ok(());
        }
        let snapshot = self.state.lock().unwrap().clone();
        let data = serde_json::to_vec(&snapshot).map_err(std::io::Error::other)?;
        write_durable(&self.path, &data)?;
        *written = snapshot.resource_version;
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Temporary sibling, fsync, rename over `path`, fsync of the directory: after this
/// returns the new content survives a power-off (what etcd's WAL fsync gives).
fn write_durable(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn stamp() -> String {
    objects::rfc3339(common::now())
}

/// `tb-sim daemon kube-apiserver`.
pub fn daemon(_args: &[String]) -> i32 {
    unsafe {
        libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_term as *const () as libc::sighandler_t);
    }
    let config = common::Ctx::load("kube-apiserver").config;
    let info = std::fs::read_to_string(MANIFEST)
        .ok()
        .and_then(|t| manifest_info(&t));
    let Some(info) = info else {
        eprintln!("E {} kube-apiserver: cannot read {MANIFEST}", stamp());
        return 1;
    };
    let address = info.address.clone().unwrap_or(config.address.clone());
    let listen = format!("{address}:{}", info.port);
    let listener = match TcpListener::bind(&listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "E {} failed to listen on {listen}: listen tcp {listen}: bind: {e}",
                stamp()
            );
            return 1;
        }
    };
    let state_path = Path::new(STATE_FILE);
    if !state_path.exists() {
        return proxy(listener, &address);
    }
    let Some(mut st) = ClusterState::load(state_path) else {
        eprintln!("E {} kube-apiserver: cannot parse {STATE_FILE}", stamp());
        return 1;
    };
    st.version = info.version.clone();
    eprintln!(
        "I {} kube-apiserver {} serving on {listen}",
        stamp(),
        info.version
    );
    let mut shared = Shared::new(
        st,
        Timing::scaled(config.time_scale, &info.version),
        state_path,
    );
    shared.node_spec_log = Some(common::ctl_path(testbed::layout::ctl::NODE_SPEC_LOG));
    let shared = Arc::new(shared);
    // Writer.
    {
        let s = shared.clone();
        std::thread::spawn(move || loop {
            {
                let d = s.dirty.lock().unwrap();
                let _unused = s
                    .wake
                    .wait_timeout_while(d, Duration::from_millis(500), |d| !*d)
                    .unwrap();
            }
            // Only what needn't be durable comes here (requests that change objects
            // write before they answer): coalesce it into one write a second; the
            // final state is written on SIGTERM.
            std::thread::sleep(Duration::from_millis(1000));
            s.persist();
        });
    }
    // Controllers on a timer (heartbeats age, pods move).
    {
        let s = shared.clone();
        // The pause adapts to the cost of a pass, so big clusters leave the lock free
        // for requests most of the time.
        std::thread::spawn(move || {
            let mut pause = Duration::from_millis(250);
            loop {
                std::thread::sleep(pause);
                let t = std::time::Instant::now();
                let changed = {
                    let mut st = s.state.lock().unwrap();
                    scheduler::reconcile(&mut st, common::now(), &s.timing)
                };
                pause = (t.elapsed() * 3).max(Duration::from_millis(250));
                if changed {
                    s.mark_dirty();
                }
            }
        });
    }
    // Acceptor.
    {
        let s = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || serve(conn, &s));
            }
        });
    }
    while !TERM.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
    shared.persist();
    0
}

fn serve(conn: TcpStream, s: &Shared) {
    conn.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut reader = BufReader::new(&conn);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
        return;
    }
    let resp = match serde_json::from_str::<Request>(&line) {
        Ok(req) => handle(s, req),
        Err(e) => Response {
            ok: false,
            body: error_body(400, "BadRequest", format!("invalid request: {e}")),
        },
    };
    let mut out = serde_json::to_string(&resp).unwrap_or_default();
    out.push('\n');
    let _ = (&conn).write_all(out.as_bytes());
}

fn ok(body: Value) -> Response {
    Response { ok: true, body }
}

fn err(code: u16, reason: &str, msg: impl Into<String>) -> Response {
    Response {
        ok: false,
        body: error_body(code, reason, msg),
    }
}

fn not_found(kind: &str, name: &str) -> Response {
    let r = objects::resource_of(kind, "");
    err(
        404,
        "NotFound",
        format!("{} \"{name}\" not found", r.plural_ref()),
    )
}

fn handle(s: &Shared, req: Request) -> Response {
    let now = common::now();
    let mut st = s.state.lock().unwrap();
    let identity = st.credentials.get(&req.credential).cloned();
    let is_join = matches!(req.op, Op::Join { .. });
    let is_heartbeat = matches!(req.op, Op::Heartbeat { .. });
    if identity.is_none() && !is_join {
        return err(401, "Unauthorized", "Unauthorized");
    }
    let identity = identity.unwrap_or_default();
    let admin = !identity.starts_with("system:node:");
    let before = st.resource_version;
    let node_spec = NodeSpecWatch::new(&st, &req.op);
    let resp = match req.op {
        Op::List { kind, namespace } => {
            let items: Vec<Value> = st
                .list(&kind)
                .into_iter()
                .filter(|o| {
                    namespace
                        .as_deref()
                        .is_none_or(|ns| objects::namespace(o) == ns)
                })
                .cloned()
                .collect();
            ok(json!({"apiVersion": "v1", "kind": "List", "items": items,
                      "metadata": {"resourceVersion": ""}}))
        }
        Op::Get {
            kind,
            namespace,
            name,
        } => match st.object(&kind, &objects::key(namespace.as_deref(), &name)) {
            Some(o) => ok(o.clone()),
            None => not_found(&kind, &name),
        },
        _ if !admin && !matches!(req.op, Op::Heartbeat { .. } | Op::Call { .. }) => {
            let verb = match req.op {
                Op::Delete { .. } => "delete",
                Op::Patch { .. } => "patch",
                _ => "create",
            };
            err(
                403,
                "Forbidden",
                format!("User \"{identity}\" cannot {verb} resource at the cluster scope"),
            )
        }
        Op::Apply { object } => apply(&mut st, object, now),
        Op::Patch {
            kind,
            namespace,
            name,
            patch,
        } => {
            let key = objects::key(namespace.as_deref(), &name);
            match st.object(&kind, &key).cloned() {
                None => not_found(&kind, &name),
                Some(old) => {
                    let mut new = old.clone();
                    objects::merge_patch(&mut new, &patch);
                    bump_generation(&old, &mut new);
                    let changed = st.put(new, now);
                    let object = st.object(&kind, &key).cloned().unwrap_or(Value::Null);
                    ok(
                        json!({"result": if changed {"configured"} else {"unchanged"}, "object": object}),
                    )
                }
            }
        }
        Op::Delete {
            kind,
            namespace,
            name,
        } => delete(&mut st, &kind, namespace.as_deref(), &name),
        Op::Heartbeat { node } => heartbeat(&mut st, &identity, node, now, &s.timing),
        Op::Join {
            token,
            ca_cert_hash,
            unsafe_skip_ca_verification,
            node_name,
            control_plane,
            certificate_key,
        } => join(
            &mut st,
            &token,
            // No hash and the skip flag: no pinning (kubeadm's discovery returns the
            // insecure config when pubKeyPins is empty).
            (!ca_cert_hash.is_empty() || !unsafe_skip_ca_verification)
                .then_some(ca_cert_hash.as_str()),
            &node_name,
            control_plane,
            certificate_key.as_deref(),
            now,
        ),
        Op::Call { name, args } => call(&mut st, &identity, &name, &args, now, &s.timing),
    };
    if let (Some(w), Some(log)) = (node_spec, &s.node_spec_log) {
        w.record(&st, &identity, now, log);
    }
    if st.resource_version != before {
        // Heartbeats leave the controllers to the timer (registration runs them itself).
        if resp.ok && !is_heartbeat {
            scheduler::reconcile(&mut st, now, &s.timing);
        }
        // The request changed an object (a heartbeat only does on registration or a
        // real status change): durable before the answer, as etcd's commit is.
        let seq = st.resource_version;
        drop(st);
        if let Err(e) = s.persist_through(seq) {
            eprintln!("E {} failed to persist state: {e}", stamp());
            return err(
                500,
                "InternalError",
                format!("Internal error occurred: etcdserver: request failed: {e}"),
            );
        }
    }
    // A heartbeat that only moved the heartbeat clock stays in memory (a lost timestamp
    // is harmless; the next write of the writer thread carries it).
    resp
}

/// A request that may change a Node's spec, and that spec before it: afterwards a change
/// is appended to the node-spec log ([`testbed::layout::NodeSpecChange`]) while the
/// state's lock is still held, so the log's order is the order of the changes.
struct NodeSpecWatch {
    node: String,
    verb: &'static str,
    spec: Value,
}

impl NodeSpecWatch {
    fn new(st: &ClusterState, op: &Op) -> Option<NodeSpecWatch> {
        let (node, verb) = match op {
            Op::Patch { kind, name, .. } if kind == "Node" => (name.clone(), "patch"),
            Op::Delete { kind, name, .. } if kind == "Node" => (name.clone(), "delete"),
            Op::Apply { object } if objects::kind(object) == "Node" => {
                (objects::name(object).to_string(), "apply")
            }
            _ => return None,
        };
        let spec = st.object("Node", &node).map(|n| n["spec"].clone())?;
        Some(NodeSpecWatch { node, verb, spec })
    }

    fn record(self, st: &ClusterState, identity: &str, now: f64, log: &Path) {
        let spec = st
            .object("Node", &self.node)
            .map(|n| n["spec"].clone())
            .unwrap_or(Value::Null);
        if spec == self.spec {
            return;
        }
        let change = testbed::layout::NodeSpecChange {
            ts: now,
            node: self.node,
            user: identity.to_string(),
            verb: self.verb.into(),
            unschedulable: spec["unschedulable"] == true,
            taints: objects::taints(&json!({ "spec": spec }))
                .iter()
                .map(|t| t.to_spec_string())
                .collect(),
        };
        let line = serde_json::to_string(&change).unwrap_or_default() + "\n";
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = appended {
            eprintln!("E {} cannot append to the node-spec log: {e}", stamp());
        }
    }
}

fn namespace_exists(st: &ClusterState, ns: &str) -> bool {
    ["default", "kube-system", "kube-public", "kube-node-lease"].contains(&ns)
        || st.object("Namespace", ns).is_some()
}

fn bump_generation(old: &Value, new: &mut Value) {
    let gen = old["metadata"]["generation"].as_i64().unwrap_or(1);
    let spec_changed = old["spec"] != new["spec"];
    new["metadata"]["generation"] = json!(if spec_changed { gen + 1 } else { gen });
}

/// Create or replace (kubectl apply / create / kubeadm's objects).
pub fn apply(st: &mut ClusterState, mut object: Value, now: f64) -> Response {
    let kind = objects::kind(&object).to_string();
    let name = objects::name(&object).to_string();
    if kind.is_empty() {
        return err(400, "BadRequest", "Object 'Kind' is missing");
    }
    if name.is_empty() {
        return err(400, "BadRequest", "resource name may not be empty");
    }
    let res = objects::resource_of(&kind, object["apiVersion"].as_str().unwrap_or(""));
    if res.namespaced {
        if objects::namespace(&object).is_empty() {
            object["metadata"]["namespace"] = json!("default");
        }
        let ns = objects::namespace(&object).to_string();
        if !namespace_exists(st, &ns) {
            return err(404, "NotFound", format!("namespaces \"{ns}\" not found"));
        }
    } else if let Some(md) = object["metadata"].as_object_mut() {
        md.remove("namespace");
    }
    let key = objects::key_of(&object);
    let existing = st.object(&kind, &key).cloned();
    if kind == "Service" {
        allocate_service(st, &mut object, existing.as_ref());
    }
    let result = match &existing {
        None => {
            if object["spec"].is_object() {
                object["metadata"]["generation"] = json!(1);
            }
            "created"
        }
        Some(old) => {
            let rv = &object["metadata"]["resourceVersion"];
            if rv.is_string() && *rv != old["metadata"]["resourceVersion"] {
                return err(409, "Conflict", format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    res.plural_ref()));
            }
            if !old["status"].is_null() {
                object["status"] = old["status"].clone();
            }
            if old["spec"].is_object() || object["spec"].is_object() {
                bump_generation(old, &mut object);
            }
            "configured"
        }
    };
    // A bootstrap token Secret replaces any fallback entry for the same id.
    let changed = st.put(object, now);
    let result = if changed { result } else { "unchanged" };
    let object = st.object(&kind, &key).cloned().unwrap_or(Value::Null);
    ok(json!({"result": result, "object": object}))
}

/// The Service's cluster IP (from 10.96.0.0/12) and node ports (30000-32767), kept
/// across updates, as the API server's allocators do.
fn allocate_service(st: &ClusterState, svc: &mut Value, existing: Option<&Value>) {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    let spec = &mut svc["spec"];
    let ty = spec["type"].as_str().unwrap_or("ClusterIP").to_string();
    spec["type"] = json!(ty);
    if spec["clusterIP"].is_null() && ty != "ExternalName" {
        let ip = existing
            .map(|e| e["spec"]["clusterIP"].clone())
            .filter(|v| v.is_string())
            .unwrap_or_else(|| {
                let used: Vec<&Value> = st
                    .list("Service")
                    .into_iter()
                    .map(|s| &s["spec"]["clusterIP"])
                    .collect();
                loop {
                    let ip = json!(format!(
                        "10.{}.{}.{}",
                        rng.gen_range(96..112),
                        rng.gen_range(0..256),
                        rng.gen_range(2..255)
                    ));
                    if !used.contains(&&ip) {
                        break ip;
                    }
                }
            });
        spec["clusterIPs"] = json!([ip]);
        spec["clusterIP"] = ip;
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        if let Some(ports) = spec["ports"].as_array_mut() {
            for (i, p) in ports.iter_mut().enumerate() {
                if p["nodePort"].is_null() {
                    let old = existing
                        .map(|e| e["spec"]["ports"][i]["nodePort"].clone())
                        .unwrap_or(Value::Null);
                    p["nodePort"] = if old.is_null() {
                        json!(rng.gen_range(30000..32768))
                    } else {
                        old
                    };
                }
                if p["protocol"].is_null() {
                    p["protocol"] = json!("TCP");
                }
            }
        }
    }
}

fn delete(st: &mut ClusterState, kind: &str, namespace: Option<&str>, name: &str) -> Response {
    let key = objects::key(namespace, name);
    let Some(obj) = st.remove(kind, &key) else {
        return not_found(kind, name);
    };
    match kind {
        "Node" => {
            st.heartbeats.remove(name);
            st.kubelet_reports.remove(name);
        }
        "Namespace" => {
            for objs in st.objects.values_mut() {
                objs.retain(|_, o| objects::namespace(o) != name);
            }
        }
        "Secret" if obj["type"] == "bootstrap.kubernetes.io/token" => {
            let id = name.trim_start_matches("bootstrap-token-").to_string();
            st.tokens
                .retain(|t| !t.token.starts_with(&format!("{id}.")));
        }
        _ => {}
    }
    st.resource_version += 1;
    ok(json!({"result": "deleted", "object": obj}))
}

/// Kubelet node status: registers the Node on the kubelet's first call, then refreshes
/// the node's status and the heartbeat clock. The kubelet's runtime report and static
/// pods arrive in the payload's `testbed` field, which is not stored on the Node.
fn heartbeat(
    st: &mut ClusterState,
    identity: &str,
    mut node: Value,
    now: f64,
    t: &Timing,
) -> Response {
    let name = objects::name(&node).to_string();
    if identity.starts_with("system:node:") && identity != format!("system:node:{name}") {
        return err(
            403,
            "Forbidden",
            format!(
            "nodes \"{name}\" is forbidden: node \"{}\" is not allowed to modify node \"{name}\"",
            identity.trim_start_matches("system:node:")),
        );
    }
    let extra = node
        .as_object_mut()
        .and_then(|m| m.remove("testbed"))
        .unwrap_or(Value::Null);
    let kubelet_version = node["status"]["nodeInfo"]["kubeletVersion"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if let (Some(k), Some(s)) = (
        objects::minor_of(&kubelet_version),
        objects::minor_of(&st.version),
    ) {
        if k > s || k + 3 < s {
            return err(403, "Forbidden", format!(
                "nodes \"{name}\" is forbidden: kubelet version {kubelet_version} is not supported with API server version {} (the kubelet must not be newer than the API server, nor more than 3 minor versions older)",
                st.version));
        }
    }
    let existing = st.object("Node", &name).cloned();
    let register = extra["register"] == true;
    let obj = match existing {
        Some(mut old) => {
            for k in [
                "nodeInfo",
                "addresses",
                "capacity",
                "allocatable",
                "daemonEndpoints",
                "images",
            ] {
                if !node["status"][k].is_null() {
                    old["status"][k] = node["status"][k].clone();
                }
            }
            old
        }
        None if register => {
            // `--register-with-taints=key` (no effect) passes the kubelet's flag parser
            // but not Node validation.
            let taints = node["spec"]["taints"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if let Some(i) = taints
                .iter()
                .position(|t| t["effect"].as_str().unwrap_or("").is_empty())
            {
                return err(
                    422,
                    "Invalid",
                    format!("Node \"{name}\" is invalid: spec.taints[{i}].effect: Required value"),
                );
            }
            node["apiVersion"] = json!("v1");
            node["kind"] = json!("Node");
            node["metadata"]["annotations"]["node.alpha.kubernetes.io/ttl"] = json!("0");
            node["metadata"]["annotations"]
                ["volumes.kubernetes.io/controller-managed-attach-detach"] = json!("true");
            node
        }
        None => {
            return err(404, "NotFound", format!("nodes \"{name}\" not found"));
        }
    };
    st.heartbeats.insert(name.clone(), now);
    let report = if extra["runtime"].is_object() {
        extra["runtime"].clone()
    } else {
        json!({"ready": true})
    };
    st.kubelet_reports.insert(name.clone(), report);
    let is_new = st.object("Node", &name).is_none();
    st.put(obj, now);
    mirror_pods(st, &name, &extra["staticPods"], now);
    if is_new {
        scheduler::reconcile(st, now, t);
    }
    ok(json!({}))
}

/// Mirror pods for a kubelet's static pods (`<component>-<node>` in kube-system).
fn mirror_pods(st: &mut ClusterState, node: &str, pods: &Value, now: f64) {
    let wanted: Vec<(String, String)> = pods
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| {
                    Some((
                        p["component"].as_str()?.to_string(),
                        p["image"].as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let node_uid = st
        .object("Node", node)
        .map(|n| n["metadata"]["uid"].clone())
        .unwrap_or(Value::Null);
    // Every kubelet beats twice a second: find the stale mirror pods without copying
    // the cluster's pods.
    let stale = st.keys_where("Pod", |p| {
        let c = p["metadata"]["labels"]["component"].as_str().unwrap_or("");
        scheduler::is_mirror(p)
            && p["spec"]["nodeName"] == node
            && !wanted.iter().any(|(w, _)| w == c)
    });
    for key in stale {
        st.remove("Pod", &key);
    }
    for (component, image) in wanted {
        let name = format!("{component}-{node}");
        let key = objects::key(Some("kube-system"), &name);
        let mut pod = st.object("Pod", &key).cloned().unwrap_or_else(|| json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "kube-system",
                "labels": {"component": component, "tier": "control-plane"},
                "annotations": {"kubernetes.io/config.mirror": objects::template_hash(&json!(component)),
                                "kubernetes.io/config.source": "file"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node,
                                     "uid": node_uid, "controller": true}]},
            "spec": {"hostNetwork": true, "nodeName": node, "priorityClassName": "system-node-critical",
                     "containers": [{"name": component, "image": image}]},
            "status": {"phase": "Pending"}}));
        pod["spec"]["containers"][0]["image"] = json!(image);
        st.put(pod, now);
    }
}

fn token_valid(st: &ClusterState, token: &str, now: f64) -> bool {
    let Some((id, secret)) = token.split_once('.') else {
        return false;
    };
    let key = objects::key(Some("kube-system"), &format!("bootstrap-token-{id}"));
    if let Some(s) = st.object("Secret", &key) {
        let field = |k: &str| -> Option<String> {
            if let Some(v) = s["stringData"][k].as_str() {
                return Some(v.to_string());
            }
            use base64::Engine;
            let b = base64::engine::general_purpose::STANDARD
                .decode(s["data"][k].as_str()?)
                .ok()?;
            String::from_utf8(b).ok()
        };
        let secret_ok = field("token-secret").as_deref() == Some(secret);
        let auth = field("usage-bootstrap-authentication").as_deref() == Some("true");
        let fresh = match field("expiration") {
            Some(e) => objects::parse_rfc3339(&e).is_some_and(|t| t > now),
            None => true,
        };
        return secret_ok && auth && fresh;
    }
    st.tokens
        .iter()
        .any(|t| t.token == token && t.expires.is_none_or(|e| e > now))
}

/// `ca_hash` None: `--discovery-token-unsafe-skip-ca-verification` without a hash.
fn join(
    st: &mut ClusterState,
    token: &str,
    ca_hash: Option<&str>,
    node: &str,
    control_plane: bool,
    cert_key: Option<&str>,
    now: f64,
) -> Response {
    let fail = |phase: &str, code: u16, reason: &str, msg: String| {
        let mut b = error_body(code, reason, msg);
        b["phase"] = json!(phase);
        Response { ok: false, body: b }
    };
    let id = token.split('.').next().unwrap_or("");
    if !token_valid(st, token, now) {
        return fail("preflight", 401, "Unauthorized", format!(
            "couldn't validate the identity of the API Server: token id \"{id}\" is invalid for this cluster or it has expired. Use \"kubeadm token create\" on the control-plane node to create a new valid token"));
    }
    if ca_hash == Some("") {
        // kubeadm refuses this before it connects; a client that gets here anyway gets
        // kubeadm's validation text.
        return fail("preflight", 400, "Invalid", "discovery.bootstrapToken: Invalid value: \"\": using token-based discovery without caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue".into());
    }
    let pinned_ok = ca_hash.is_none_or(|h| h.trim_start_matches("sha256:") == st.ca_cert_hash);
    if !pinned_ok {
        return fail("preflight", 401, "Unauthorized", format!(
            "couldn't validate the identity of the API Server: cluster CA found in cluster-info ConfigMap is invalid: none of the public keys \"sha256:{}\" are pinned",
            st.ca_cert_hash));
    }
    if control_plane {
        let stored = st.certificate_key.clone();
        match (cert_key, stored) {
            (Some(k), Some((key, exp))) if exp > now => {
                if k != key {
                    return fail("control-plane-prepare/download-certs", 401, "Unauthorized",
                        "error downloading certs: error decoding secret data with provided key: cipher: message authentication failed".into());
                }
            }
            _ => {
                return fail("control-plane-prepare/download-certs", 404, "NotFound",
                    "error downloading certs: error downloading the secret: Secret \"kubeadm-certs\" was not found in the \"kube-system\" Namespace. This Secret might have expired. Please, run `kubeadm init phase upload-certs --upload-certs` on a control plane to generate a new one".into());
            }
        }
    }
    if let Some(n) = st.object("Node", node) {
        if scheduler::is_ready(n) {
            return fail("kubelet-start", 409, "AlreadyExists", format!(
                "a Node with name \"{node}\" and status \"Ready\" already exists in the cluster. You must delete the existing Node or change the name of this new joining Node"));
        }
    }
    let credential = api::random_secret();
    st.credentials
        .retain(|_, who| who != &format!("system:node:{node}"));
    st.credentials
        .insert(credential.clone(), format!("system:node:{node}"));
    if control_plane {
        // A joined control plane's admin.conf gets its own admin credential.
        st.credentials
            .insert(format!("{credential}-admin"), "kubernetes-admin".into());
    }
    st.resource_version += 1;
    let kubelet_config = st
        .object("ConfigMap", "kube-system/kubelet-config")
        .map(|c| c["data"]["kubelet"].clone())
        .unwrap_or(Value::Null);
    ok(json!({"credential": credential,
              "admin_credential": if control_plane { json!(format!("{credential}-admin")) } else { Value::Null },
              "ca_cert": st.ca_cert, "endpoint": st.endpoint,
              "version": st.version, "kubelet_config": kubelet_config}))
}

/// The server's version info (`/version`).
pub fn version_info(v: &str) -> Value {
    let minor = objects::minor_of(v).unwrap_or(0);
    json!({"major": "1", "minor": minor.to_string(), "emulationMajor": "1",
        "emulationMinor": minor.to_string(), "minCompatibilityMajor": "1",
        "minCompatibilityMinor": minor.saturating_sub(1).to_string(),
        "gitVersion": v, "gitCommit": objects::template_hash(&json!(v)),
        "gitTreeState": "clean", "buildDate": "2025-11-11T19:05:49Z",
        "goVersion": "go1.24.9", "compiler": "gc", "platform": "linux/amd64"})
}

fn call(
    st: &mut ClusterState,
    identity: &str,
    name: &str,
    args: &Value,
    now: f64,
    timing: &Timing,
) -> Response {
    let admin = !identity.starts_with("system:node:");
    match name {
        "version" => ok(version_info(&st.version)),
        "whoami" => ok(json!({"identity": identity})),
        "evict" if admin => {
            let ns = args["namespace"].as_str().unwrap_or("default");
            let pod = args["name"].as_str().unwrap_or("");
            match scheduler::evict(st, ns, pod, now, timing) {
                Ok(()) => ok(json!({})),
                Err((code, reason, msg)) => err(code, &reason, msg),
            }
        }
        "state" if admin => ok(serde_json::to_value(&*st).unwrap_or(Value::Null)),
        "set-state" if admin => {
            let mut v = serde_json::to_value(&*st).unwrap_or(Value::Null);
            let field = args["field"].as_str().unwrap_or("");
            if ![
                "certificate_key",
                "tokens",
                "version",
                "cni",
                "endpoint",
                "ca_cert",
                "ca_cert_hash",
            ]
            .contains(&field)
            {
                return err(400, "BadRequest", format!("cannot set field {field:?}"));
            }
            v[field] = args["value"].clone();
            match serde_json::from_value::<ClusterState>(v) {
                Ok(new) => {
                    *st = new;
                    st.resource_version += 1;
                    ok(json!({}))
                }
                Err(e) => err(400, "BadRequest", e.to_string()),
            }
        }
        "add-credential" if admin => {
            let who = args["identity"].as_str().unwrap_or("").to_string();
            let c = api::random_secret();
            st.credentials.insert(c.clone(), who);
            st.resource_version += 1;
            ok(json!({"credential": c}))
        }
        _ if !admin => err(
            403,
            "Forbidden",
            format!("User \"{identity}\" cannot call {name}"),
        ),
        _ => err(404, "NotFound", format!("unknown call {name:?}")),
    }
}

/// Forwards every request to the first control plane (joined control planes).
fn proxy(listener: TcpListener, own: &str) -> i32 {
    let upstream = ["/etc/kubernetes/admin.conf", "/etc/kubernetes/kubelet.conf"]
        .iter()
        .filter_map(|p| api::load_kubeconfig(Path::new(p)).ok())
        .map(|c| c.server)
        .find(|s| !s.starts_with(&format!("{own}:")));
    let Some(upstream) = upstream else {
        eprintln!("E {} kube-apiserver: no cluster state in {STATE_FILE} and no other control plane to follow", stamp());
        return 1;
    };
    eprintln!("I {} kube-apiserver: following {upstream}", stamp());
    let upstream = Arc::new(upstream);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let up = upstream.clone();
            std::thread::spawn(move || {
                let mut line = String::new();
                if BufReader::new(&conn).read_line(&mut line).is_err() {
                    return;
                }
                let answer = serde_json::from_str::<Request>(&line)
                    .map_err(|e| e.to_string())
                    .and_then(|req| match api::call(&up, &req, Duration::from_secs(30)) {
                        Ok(body) => Ok(Response { ok: true, body }),
                        Err(api::ClientError::Server(body)) => Ok(Response { ok: false, body }),
                        Err(e) => Err(e.to_string()),
                    })
                    .unwrap_or_else(|e| Response {
                        ok: false,
                        body: error_body(503, "ServiceUnavailable", e),
                    });
                let mut out = serde_json::to_string(&answer).unwrap_or_default();
                out.push('\n');
                let _ = (&conn).write_all(out.as_bytes());
            });
        }
    });
    while !TERM.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_manifest() {
        let m = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - command:\n    - kube-apiserver\n    - --advertise-address=10.200.1.2\n    - --secure-port=6443\n    image: registry.k8s.io/kube-apiserver:v1.34.2\n    name: kube-apiserver\n";
        let i = manifest_info(m).unwrap();
        assert_eq!(i.version, "v1.34.2");
        assert_eq!(i.address.as_deref(), Some("10.200.1.2"));
        assert_eq!(i.port, 6443);
    }

    fn cluster() -> ClusterState {
        let mut st = ClusterState {
            version: "v1.34.2".into(),
            ca_cert_hash: "ab".repeat(32),
            ..Default::default()
        };
        use base64::Engine;
        let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        st.put(json!({"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
            "metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
            "data": {"token-id": b("abcdef"), "token-secret": b("0123456789abcdef"),
                     "expiration": b("2099-01-01T00:00:00Z"),
                     "usage-bootstrap-authentication": b("true"), "usage-bootstrap-signing": b("true")}}), 0.0);
        st
    }

    #[test]
    fn join_validates_token_hash_and_name() {
        let mut st = cluster();
        let h = format!("sha256:{}", "ab".repeat(32));
        let r = join(
            &mut st,
            "abcdef.0123456789abcdef",
            Some(&h),
            "w1",
            false,
            None,
            1000.0,
        );
        assert!(r.ok, "{:?}", r.body);
        assert_eq!(st.credentials.values().next().unwrap(), "system:node:w1");
        let r = join(
            &mut st,
            "abcdef.wrongwrongwrong0",
            Some(&h),
            "w2",
            false,
            None,
            1000.0,
        );
        assert!(r.body["message"]
            .as_str()
            .unwrap()
            .contains("token id \"abcdef\" is invalid for this cluster or it has expired"));
        let r = join(
            &mut st,
            "abcdef.0123456789abcdef",
            Some("sha256:00"),
            "w2",
            false,
            None,
            1000.0,
        );
        assert!(r.body["message"].as_str().unwrap().ends_with(&format!(
            "none of the public keys \"sha256:{}\" are pinned",
            "ab".repeat(32)
        )));
        // Expired token.
        let r = join(
            &mut st,
            "abcdef.0123456789abcdef",
            Some(&h),
            "w2",
            false,
            None,
            5_000_000_000.0,
        );
        assert!(!r.ok);
        // --discovery-token-unsafe-skip-ca-verification without a hash: no pinning;
        // without the flag (or with a wrong hash) refused.
        let r = join(
            &mut st,
            "abcdef.0123456789abcdef",
            None,
            "w3",
            false,
            None,
            1000.0,
        );
        assert!(r.ok, "{:?}", r.body);
        let r = join(
            &mut st,
            "abcdef.0123456789abcdef",
            Some(""),
            "w4",
            false,
            None,
            1000.0,
        );
        assert!(r.body["message"].as_str().unwrap().contains(
            "using token-based discovery without caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue"
        ));
        // Control plane without uploaded certs.
        let r = join(
            &mut st,
            "abcdef.0123456789abcdef",
            Some(&h),
            "m2",
            true,
            Some("k"),
            1000.0,
        );
        assert_eq!(r.body["phase"], "control-plane-prepare/download-certs");
    }

    fn request(credential: &str, op: Op) -> Request {
        Request {
            credential: credential.into(),
            op,
        }
    }

    #[test]
    fn object_changes_are_on_disk_before_the_answer() {
        let dir = std::env::temp_dir().join(format!("tb-apiserver-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        let mut st = cluster();
        st.credentials
            .insert("adm".into(), "kubernetes-admin".into());
        st.credentials.insert("n1".into(), "system:node:n1".into());
        st.save(&path).unwrap();
        let s = Shared::new(st, Timing::scaled(0.0, "v1.34.2"), &path);
        let on_disk = || ClusterState::load(&path).unwrap();

        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "x", "namespace": "default"}, "data": {"a": "1"}});
        let r = handle(&s, request("adm", Op::Apply { object: cm }));
        assert!(r.ok, "{:?}", r.body);
        assert!(on_disk().object("ConfigMap", "default/x").is_some());

        // Registration is durable; a heartbeat that changes nothing writes nothing.
        let node = json!({"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}},
            "spec": {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]},
            "status": {"nodeInfo": {"kubeletVersion": "v1.34.2"}},
            "testbed": {"register": true}});
        let mut bad = node.clone();
        bad["spec"]["taints"][0]["effect"] = json!("");
        let r = handle(&s, request("n1", Op::Heartbeat { node: bad }));
        assert_eq!(
            r.body["message"],
            "Node \"n1\" is invalid: spec.taints[0].effect: Required value"
        );
        assert!(handle(&s, request("n1", Op::Heartbeat { node: node.clone() })).ok);
        assert_eq!(
            on_disk().object("Node", "n1").unwrap()["spec"]["taints"][0]["key"],
            "k"
        );
        // Taints count at registration only: a later beat doesn't bring back a removed one.
        let untaint = Op::Patch {
            kind: "Node".into(),
            namespace: None,
            name: "n1".into(),
            patch: json!({"spec": {"taints": null}}),
        };
        assert!(handle(&s, request("adm", untaint)).ok);
        let writes = s.writes.load(Ordering::SeqCst);
        assert!(handle(&s, request("n1", Op::Heartbeat { node })).ok);
        assert_eq!(s.writes.load(Ordering::SeqCst), writes);
        let taints = on_disk().object("Node", "n1").unwrap()["spec"]["taints"].clone();
        assert!(!taints.to_string().contains("\"k\""), "{taints}");

        // Labels (a patch) and deletes are durable too.
        let patch = json!({"metadata": {"labels": {"type": "web"}}});
        let r = handle(
            &s,
            request(
                "adm",
                Op::Patch {
                    kind: "Node".into(),
                    namespace: None,
                    name: "n1".into(),
                    patch,
                },
            ),
        );
        assert!(r.ok, "{:?}", r.body);
        assert_eq!(
            on_disk().object("Node", "n1").unwrap()["metadata"]["labels"]["type"],
            "web"
        );
        let del = Op::Delete {
            kind: "ConfigMap".into(),
            namespace: Some("default".into()),
            name: "x".into(),
        };
        assert!(handle(&s, request("adm", del)).ok);
        assert!(on_disk().object("ConfigMap", "default/x").is_none());
        // Reads write nothing.
        let writes = s.writes.load(Ordering::SeqCst);
        let get = Op::Get {
            kind: "Node".into(),
            namespace: None,
            name: "n1".into(),
        };
        assert!(handle(&s, request("adm", get)).ok);
        assert_eq!(s.writes.load(Ordering::SeqCst), writes);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An upgraded kubelet's heartbeat: the node object shows the new version only when
    /// the server accepts it; a kubelet newer than the API server (by minor) is refused,
    /// so `kubectl wait --for=jsonpath='{.status.nodeInfo.kubeletVersion}'=...` on it never
    /// succeeds.
    #[test]
    fn kubelet_version_skew_on_heartbeats() {
        let mut st = cluster();
        st.credentials.insert("n1".into(), "system:node:n1".into());
        let beat = |st: &mut ClusterState, v: &str, register: bool| {
            let node = json!({"metadata": {"name": "n1"}, "spec": {},
                "status": {"nodeInfo": {"kubeletVersion": v}},
                "testbed": {"register": register}});
            heartbeat(
                st,
                "system:node:n1",
                node,
                1.0,
                &Timing::scaled(0.0, "v1.34.2"),
            )
        };
        let reported = |st: &ClusterState| {
            st.object("Node", "n1").unwrap()["status"]["nodeInfo"]["kubeletVersion"].clone()
        };
        let r = beat(&mut st, "v1.35.0", true);
        assert_eq!(r.body["code"], 403, "{:?}", r.body);
        assert_eq!(r.body["message"], "nodes \"n1\" is forbidden: kubelet version v1.35.0 is not supported with API server version v1.34.2 (the kubelet must not be newer than the API server, nor more than 3 minor versions older)");
        assert!(st.object("Node", "n1").is_none(), "registered anyway");
        assert!(beat(&mut st, "v1.33.5", true).ok);
        assert_eq!(reported(&st), "v1.33.5");
        // Restarted after its package went to 1.35: refused, the node keeps showing 1.33.
        assert!(!beat(&mut st, "v1.35.0", false).ok);
        assert_eq!(reported(&st), "v1.33.5");
        // A newer patch of the server's minor, and three minors older, are fine.
        assert!(beat(&mut st, "v1.34.4", false).ok);
        assert_eq!(reported(&st), "v1.34.4");
        assert!(beat(&mut st, "v1.31.0", false).ok);
        assert!(!beat(&mut st, "v1.30.14", false).ok);
    }

    #[test]
    fn node_spec_changes_are_recorded_in_order() {
        let dir = std::env::temp_dir().join(format!("tb-nodespec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        let log = dir.join("node-spec.jsonl");
        let mut st = cluster();
        st.credentials
            .insert("adm".into(), "kubernetes-admin".into());
        for n in ["w1", "w2"] {
            st.put(
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": n}, "spec": {}}),
                0.0,
            );
        }
        st.save(&path).unwrap();
        let mut s = Shared::new(st, Timing::scaled(0.0, "v1.34.2"), &path);
        s.node_spec_log = Some(log.clone());
        let patch = |node: &str, patch: Value| Op::Patch {
            kind: "Node".into(),
            namespace: None,
            name: node.into(),
            patch,
        };
        let cordon = |node: &str, on: bool| patch(node, json!({"spec": {"unschedulable": on}}));
        for op in [
            cordon("w1", true),
            cordon("w1", true), // no change: not recorded
            patch("w2", json!({"metadata": {"labels": {"a": "b"}}})), // not the spec
            cordon("w2", true),
            cordon("w1", false),
            patch(
                "w2",
                json!({"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}),
            ),
            cordon("w2", false),
        ] {
            assert!(handle(&s, request("adm", op)).ok);
        }
        let changes: Vec<testbed::layout::NodeSpecChange> = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let seen: Vec<(&str, bool)> = changes
            .iter()
            .map(|c| (c.node.as_str(), c.unschedulable))
            .collect();
        assert_eq!(
            seen,
            [
                ("w1", true),
                ("w2", true),
                ("w1", false),
                ("w2", true),
                ("w2", false)
            ]
        );
        // The spec afterwards, with the node lifecycle controller's taints of that moment.
        assert!(
            changes[3].taints.contains(&"k:NoSchedule".to_string()),
            "{:?}",
            changes[3]
        );
        assert!(changes
            .iter()
            .all(|c| c.user == "kubernetes-admin" && c.verb == "patch"));
        assert!(changes.windows(2).all(|w| w[0].ts <= w[1].ts));
        assert_eq!(testbed::layout::max_unschedulable(&changes).0, 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// What durability costs on a big cluster (150 nodes, 300 DaemonSet pods):
    /// `cargo test -p testbed --bin tb-sim persist_cost -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn persist_cost() {
        let dir = std::env::temp_dir().join(format!("tb-persist-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        let mut st = cluster();
        st.credentials
            .insert("adm".into(), "kubernetes-admin".into());
        let now = common::now();
        for i in 0..150 {
            let name = format!("n{i:03}");
            st.credentials
                .insert(format!("c{i}"), format!("system:node:{name}"));
            st.put(
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                "spec": {}, "status": {"nodeInfo": {"kubeletVersion": "v1.34.2"},
                "addresses": [{"type": "InternalIP", "address": "10.200.0.2"}]}}),
                now,
            );
            st.heartbeats.insert(name, now);
        }
        for ds in ["calico-node", "kube-proxy"] {
            st.put(
                json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
                "metadata": {"name": ds, "namespace": "kube-system"},
                "spec": {"selector": {"matchLabels": {"k8s-app": ds}},
                  "template": {"metadata": {"labels": {"k8s-app": ds}},
                    "spec": {"hostNetwork": true, "tolerations": [{"operator": "Exists"}],
                      "containers": [{"name": ds, "image": "docker.io/calico/node:v3.30.3"}]}}}}),
                now,
            );
        }
        let timing = Timing::scaled(0.0, "v1.34.2");
        scheduler::reconcile(&mut st, now, &timing);
        st.save(&path).unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        let s = Shared::new(st, timing, &path);
        let t = std::time::Instant::now();
        for i in 0..10 {
            let patch = json!({"metadata": {"labels": {"round": i.to_string()}}});
            let op = Op::Patch {
                kind: "Node".into(),
                namespace: None,
                name: "n000".into(),
                patch,
            };
            assert!(handle(&s, request("adm", op)).ok);
        }
        let label = t.elapsed().as_secs_f64() / 10.0;
        let t = std::time::Instant::now();
        for i in 0..150 {
            let node = json!({"metadata": {"name": format!("n{i:03}")},
                "status": {"nodeInfo": {"kubeletVersion": "v1.34.2"},
                "addresses": [{"type": "InternalIP", "address": "10.200.0.2"}]}});
            assert!(handle(&s, request(&format!("c{i}"), Op::Heartbeat { node })).ok);
        }
        let beat = t.elapsed().as_secs_f64() / 150.0;
        println!(
            "state {size} bytes: durable label patch {:.1} ms, heartbeat {:.2} ms, writes {}",
            label * 1e3,
            beat * 1e3,
            s.writes.load(Ordering::SeqCst)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn apply_reports_created_configured_unchanged() {
        let mut st = cluster();
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "wp"},
                       "spec": {"replicas": 1}});
        assert_eq!(apply(&mut st, d.clone(), 1.0).body["result"], "created");
        assert_eq!(apply(&mut st, d.clone(), 2.0).body["result"], "unchanged");
        let mut d2 = d.clone();
        d2["spec"]["replicas"] = json!(2);
        let r = apply(&mut st, d2, 3.0);
        assert_eq!(r.body["result"], "configured");
        assert_eq!(r.body["object"]["metadata"]["generation"], 2);
        assert_eq!(r.body["object"]["metadata"]["namespace"], "default");
        let bad = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "nope"}});
        assert_eq!(
            apply(&mut st, bad, 4.0).body["message"],
            "namespaces \"nope\" not found"
        );
    }
}
