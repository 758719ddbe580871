//! The cluster's control loops, run by the API server after every change and on a timer:
//! node lifecycle (Ready condition, condition taints, eviction), the Deployment,
//! ReplicaSet and DaemonSet controllers, the scheduler, pod status, PDB status.
//!
//! All of it is a pure function of the state and the clock ([`reconcile`]), so it is
//! unit-tested without processes.

use serde_json::{json, Value};

use super::objects::{self, Taint};
use super::state::ClusterState;

/// Durations of the node lifecycle, already scaled to the host's time scale.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long after the last heartbeat a node turns `Unknown`
    /// (kube-controller-manager's `--node-monitor-grace-period`, see [`grace_period`]).
    pub heartbeat_grace: f64,
    /// How long a node stays not Ready before its pods are evicted (real: 300 s).
    pub eviction_delay: f64,
    /// The host's time scale, for the pods' own `terminationGracePeriodSeconds`: a pod
    /// deleted gracefully is gone `grace x time_scale` seconds later (no floor, as a
    /// container that exits at once on SIGTERM can be gone at once too).
    pub time_scale: f64,
}

/// The floor of the scaled node grace period. With time_scale 0 a real-time grace would
/// be zero, and the kubelet's 0.5 s heartbeat on a loaded 2-core CI machine can be a
/// few seconds late (a 3 s grace made nodes flap Ready/Unknown). 12 s is several missed
/// heartbeats at the worst latency measured (p99 3.5 s with 150 kubelets), so a node goes
/// Unknown only when its kubelet is really gone; tests that stop a host wait ~12 s.
pub const MIN_GRACE: f64 = 12.0;

/// kube-controller-manager's `--node-monitor-grace-period` default for the control
/// plane's version: 40 s, 50 s since v1.32 (kubernetes/kubernetes#126287).
pub fn grace_period(version: &str) -> f64 {
    match objects::minor_of(version) {
        Some(m) if m < 32 => 40.0,
        _ => 50.0,
    }
}

impl Timing {
    /// Real durations x `time_scale`, with floors so time_scale 0 stays usable.
    pub fn scaled(time_scale: f64, version: &str) -> Timing {
        Timing {
            heartbeat_grace: (grace_period(version) * time_scale).max(MIN_GRACE),
            eviction_delay: (300.0 * time_scale).max(5.0),
            time_scale,
        }
    }
}

pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";
pub const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";
pub const CNI_NOT_READY: &str = "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized";

/// Runs every controller once. Returns whether the state changed.
pub fn reconcile(st: &mut ClusterState, now: f64, t: &Timing) -> bool {
    let before = st.resource_version;
    detect_cni(st);
    node_lifecycle(st, now, t);
    drop_orphan_pods(st, now, t);
    finish_terminations(st, now, t);
    deployments(st, now);
    replicasets(st, now);
    daemonsets(st, now);
    statefulsets(st, now);
    schedule(st, now);
    pod_status(st, now, t);
    workload_status(st, now);
    pdb_status(st, now);
    st.resource_version != before
}

/// The CNI is present once Calico's node DaemonSet (manifest install) or an operator
/// `Installation` exists; its version comes from the calico/node image tag.
fn detect_cni(st: &mut ClusterState) {
    let ds = st
        .list("DaemonSet")
        .into_iter()
        .find(|d| objects::name(d) == "calico-node")
        .cloned();
    let cni = if let Some(ds) = ds {
        let image = ds["spec"]["template"]["spec"]["containers"]
            .as_array()
            .and_then(|c| {
                c.iter()
                    .find(|c| c["name"] == "calico-node")
                    .or(c.first())
                    .cloned()
            })
            .and_then(|c| c["image"].as_str().map(String::from))
            .unwrap_or_default();
        let version = objects::image_tag(&image).unwrap_or("unknown").to_string();
        Some(json!({"name": "calico", "version": version}))
    } else if !st.list("Installation").is_empty() {
        let version = st
            .list("Deployment")
            .into_iter()
            .find(|d| objects::name(d) == "tigera-operator")
            .and_then(|d| d["spec"]["template"]["spec"]["containers"][0]["image"].as_str())
            .and_then(objects::image_tag)
            .unwrap_or("unknown")
            .to_string();
        Some(json!({"name": "calico", "version": version, "operator": true}))
    } else {
        None
    };
    if st.cni != cni {
        st.cni = cni;
        st.resource_version += 1;
    }
}

/// The Ready condition of a node: (status, reason, message).
pub fn node_ready(st: &ClusterState, node: &str, now: f64, t: &Timing) -> (String, String, String) {
    let fresh = st
        .heartbeats
        .get(node)
        .is_some_and(|hb| now - hb <= t.heartbeat_grace);
    if !fresh {
        return (
            "Unknown".into(),
            "NodeStatusUnknown".into(),
            "Kubelet stopped posting node status.".into(),
        );
    }
    let report = st.kubelet_reports.get(node);
    if let Some(r) = report.filter(|r| r["ready"] == false) {
        return (
            "False".into(),
            "KubeletNotReady".into(),
            r["message"].as_str().unwrap_or("").into(),
        );
    }
    if st.cni.is_none() {
        return (
            "False".into(),
            "KubeletNotReady".into(),
            CNI_NOT_READY.into(),
        );
    }
    (
        "True".into(),
        "KubeletReady".into(),
        "kubelet is posting ready status".into(),
    )
}

/// Whether a node is Ready now (as stored).
pub fn is_ready(node: &Value) -> bool {
    ready_condition(node)["status"] == "True"
}

pub fn ready_condition(node: &Value) -> &Value {
    static NULL: Value = Value::Null;
    node["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .unwrap_or(&NULL)
}

fn node_lifecycle(st: &mut ClusterState, now: f64, t: &Timing) {
    for name in st.keys_where("Node", |_| true) {
        let Some(node) = st.object("Node", &name) else {
            continue;
        };
        let (status, reason, message) = node_ready(st, &name, now, t);
        let old = ready_condition(node);
        let transition = if old["status"] == status.as_str() {
            old["lastTransitionTime"].clone()
        } else {
            json!(objects::rfc3339(now))
        };
        // lastHeartbeatTime moves in steps of a few seconds (as the real kubelet's
        // status updates do), so a node's object doesn't change on every heartbeat.
        let beat = st.heartbeats.get(&name).copied().unwrap_or(now);
        let prev_beat = old["lastHeartbeatTime"]
            .as_str()
            .and_then(objects::parse_rfc3339);
        let hb = match prev_beat {
            Some(p) if old["status"] == status.as_str() && beat - p < 5.0 => objects::rfc3339(p),
            _ => objects::rfc3339(beat),
        };
        // Fast path: nothing to write when status, heartbeat step and the condition
        // taints are as stored.
        let mut want_keys: Vec<&str> = match status.as_str() {
            "False" => vec![NOT_READY_TAINT],
            "Unknown" => vec![UNREACHABLE_TAINT],
            _ => vec![],
        };
        if node["spec"]["unschedulable"] == true {
            want_keys.push(UNSCHEDULABLE_TAINT);
        }
        let have_keys: Vec<String> = objects::taints(node)
            .into_iter()
            .map(|t| t.key)
            .filter(|k| {
                [NOT_READY_TAINT, UNREACHABLE_TAINT, UNSCHEDULABLE_TAINT].contains(&k.as_str())
            })
            .collect();
        if old["status"] == status.as_str()
            && old["message"] == message.as_str()
            && old["lastHeartbeatTime"] == hb.as_str()
            && want_keys.len() == have_keys.len()
            && want_keys.iter().all(|k| have_keys.iter().any(|h| h == k))
        {
            continue;
        }
        let old_conds = node["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let cond = |ty: &str, ok_reason: &str, ok_msg: &str| -> Value {
            let prev = old_conds.iter().find(|c| c["type"] == ty);
            let (st_, r, m) = if status == "Unknown" {
                (
                    "Unknown",
                    "NodeStatusUnknown",
                    "Kubelet stopped posting node status.",
                )
            } else {
                ("False", ok_reason, ok_msg)
            };
            let tr = match prev {
                Some(p) if p["status"] == st_ => p["lastTransitionTime"].clone(),
                _ => json!(objects::rfc3339(now)),
            };
            json!({"type": ty, "status": st_, "reason": r, "message": m,
                   "lastHeartbeatTime": hb, "lastTransitionTime": tr})
        };
        let conditions = vec![
            cond(
                "MemoryPressure",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            cond(
                "DiskPressure",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
            ),
            cond(
                "PIDPressure",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            json!({"type": "Ready", "status": status, "reason": reason, "message": message,
                   "lastHeartbeatTime": hb, "lastTransitionTime": transition}),
        ];
        let conditions = Value::Array(conditions);
        // Condition taints, as the node lifecycle controller keeps them.
        let mut taints: Vec<Taint> = objects::taints(node)
            .into_iter()
            .filter(|t| {
                ![NOT_READY_TAINT, UNREACHABLE_TAINT, UNSCHEDULABLE_TAINT].contains(&t.key.as_str())
            })
            .collect();
        let mut add = |key: &str| {
            taints.push(Taint {
                key: key.into(),
                value: String::new(),
                effect: "NoSchedule".into(),
            })
        };
        match status.as_str() {
            "False" => add(NOT_READY_TAINT),
            "Unknown" => add(UNREACHABLE_TAINT),
            _ => {}
        }
        if node["spec"]["unschedulable"] == true {
            add(UNSCHEDULABLE_TAINT);
        }
        // Keep the stored order for unchanged taints so patches don't flap.
        let old_taints = objects::taints(node);
        let mut ordered: Vec<Taint> = old_taints
            .iter()
            .filter(|t| taints.contains(t))
            .cloned()
            .collect();
        for t in taints {
            if !ordered.contains(&t) {
                ordered.push(t);
            }
        }
        if node["status"]["conditions"] == conditions && old_taints == ordered {
            continue;
        }
        let mut node = node.clone();
        node["status"]["conditions"] = conditions;
        objects::set_taints(&mut node, &ordered);
        st.put(node, now);
    }
}

/// Deletes pods bound to nodes that no longer exist, and non-DaemonSet pods of nodes
/// that have not been Ready for longer than the eviction delay.
fn drop_orphan_pods(st: &mut ClusterState, now: f64, t: &Timing) {
    let doomed = st.keys_where("Pod", |pod| {
        let Some(node_name) = pod["spec"]["nodeName"].as_str() else {
            return false;
        };
        match st.object("Node", node_name) {
            None => true,
            Some(node) => {
                let c = ready_condition(node);
                let since = c["lastTransitionTime"]
                    .as_str()
                    .and_then(objects::parse_rfc3339)
                    .unwrap_or(now);
                c["status"] != "True"
                    && now - since > t.eviction_delay
                    && owner_kind(pod) == Some("ReplicaSet")
            }
        }
    });
    for k in doomed {
        st.remove("Pod", &k);
    }
}

/// Whether a pod was deleted gracefully and is still shutting down (`Terminating`).
pub fn terminating(pod: &Value) -> bool {
    pod["metadata"]["deletionTimestamp"].is_string()
}

/// A graceful delete, as the API server does it for a bound pod: the pod gets a
/// `deletionTimestamp` (now + its `terminationGracePeriodSeconds`, 30 by default) and
/// stays, `Terminating`, until its kubelet has stopped it ([`finish_terminations`]).
/// A pod that is not bound to a node, or has a grace period of 0, goes at once (the pod
/// strategy's `CheckGracefulDelete`). Deleting an already terminating pod again changes
/// nothing.
pub fn delete_pod_gracefully(st: &mut ClusterState, key: &str, now: f64, t: &Timing) {
    let Some(pod) = st.object("Pod", key) else {
        return;
    };
    if terminating(pod) {
        return;
    }
    let grace = pod["spec"]["terminationGracePeriodSeconds"]
        .as_i64()
        .unwrap_or(30)
        .max(0);
    let terminal = matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    if grace == 0 || terminal || !pod["spec"]["nodeName"].is_string() {
        st.remove("Pod", key);
        return;
    }
    let mut pod = pod.clone();
    // Whole seconds like metav1.Time, rounded up so the pod never goes early.
    let deadline = (now + grace as f64 * t.time_scale).ceil();
    pod["metadata"]["deletionTimestamp"] = json!(objects::rfc3339(deadline));
    pod["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
    st.put(pod, now);
}

/// Removes terminating pods whose grace period is over, as their kubelet does once the
/// containers are stopped. A node whose kubelet stopped posting status (`Unknown`)
/// stops nothing: its pods stay `Terminating` (what `kubectl drain
/// --skip-wait-for-delete-timeout` exists for).
fn finish_terminations(st: &mut ClusterState, now: f64, t: &Timing) {
    let done = st.keys_where("Pod", |pod| {
        let Some(deadline) = pod["metadata"]["deletionTimestamp"]
            .as_str()
            .and_then(objects::parse_rfc3339)
        else {
            return false;
        };
        let node = pod["spec"]["nodeName"].as_str().unwrap_or("");
        now >= deadline
            && st.object("Node", node).is_some()
            && node_ready(st, node, now, t).0 != "Unknown"
    });
    for k in done {
        st.remove("Pod", &k);
    }
}

pub fn owner_kind(obj: &Value) -> Option<&str> {
    owner(obj).and_then(|o| o["kind"].as_str())
}

pub fn owner(obj: &Value) -> Option<&Value> {
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|o| o["controller"] == true)
}

/// Static pods mirrored from a kubelet's manifests.
pub fn is_mirror(pod: &Value) -> bool {
    pod["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string()
}

fn owner_ref(owner: &Value) -> Value {
    json!([{
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": true,
    }])
}

fn owned_by<'a>(st: &'a ClusterState, kind: &str, owner: &Value) -> Vec<&'a Value> {
    let uid = &owner["metadata"]["uid"];
    let ns = objects::namespace(owner);
    st.list(kind)
        .into_iter()
        .filter(|o| objects::namespace(o) == ns)
        .filter(|o| self::owner(o).is_some_and(|r| &r["uid"] == uid))
        .collect()
}

fn deployments(st: &mut ClusterState, now: f64) {
    let deps: Vec<Value> = st.list("Deployment").into_iter().cloned().collect();
    // ReplicaSets whose Deployment is gone go with it (garbage collection).
    for rs in st
        .list("ReplicaSet")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>()
    {
        if let Some(o) = owner(&rs).filter(|o| o["kind"] == "Deployment") {
            let alive = deps.iter().any(|d| d["metadata"]["uid"] == o["uid"]);
            if !alive {
                st.remove("ReplicaSet", &objects::key_of(&rs));
            }
        }
    }
    for dep in deps {
        let ns = objects::namespace(&dep).to_string();
        let name = objects::name(&dep).to_string();
        let template = dep["spec"]["template"].clone();
        let hash = objects::template_hash(&template);
        let replicas = dep["spec"]["replicas"].as_i64().unwrap_or(1);
        let rs_name = format!("{name}-{hash}");
        for rs in owned_by(st, "ReplicaSet", &dep)
            .into_iter()
            .cloned()
            .collect::<Vec<_>>()
        {
            if objects::name(&rs) != rs_name && rs["spec"]["replicas"] != 0 {
                let mut rs = rs.clone();
                rs["spec"]["replicas"] = json!(0);
                st.put(rs, now);
            }
        }
        let mut t = template.clone();
        t["metadata"]["labels"]["pod-template-hash"] = json!(hash);
        let mut selector = dep["spec"]["selector"].clone();
        objects::obj_mut(&mut selector, "matchLabels")
            .insert("pod-template-hash".into(), json!(hash));
        let mut labels = t["metadata"]["labels"].clone();
        if !labels.is_object() {
            labels = json!({});
        }
        let existing = st
            .object("ReplicaSet", &objects::key(Some(&ns), &rs_name))
            .cloned();
        let mut rs = existing.clone().unwrap_or_else(|| {
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                   "metadata": {"name": rs_name, "namespace": ns,
                                "ownerReferences": owner_ref(&dep)}})
        });
        rs["metadata"]["labels"] = labels;
        rs["metadata"]["annotations"] =
            json!({"deployment.kubernetes.io/desired-replicas": replicas.to_string()});
        rs["spec"] = json!({"replicas": replicas, "selector": selector, "template": t});
        st.put(rs, now);
    }
}

fn new_pod(owner: &Value, name: String, extra_labels: &[(&str, &str)], now: f64) -> Value {
    let t = &owner["spec"]["template"];
    let mut labels = t["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    for (k, v) in extra_labels {
        labels[*k] = json!(v);
    }
    let mut spec = t["spec"].clone();
    if !spec.is_object() {
        spec = json!({});
    }
    for (k, v) in [
        ("restartPolicy", json!("Always")),
        ("dnsPolicy", json!("ClusterFirst")),
        ("schedulerName", json!("default-scheduler")),
        ("terminationGracePeriodSeconds", json!(30)),
    ] {
        spec.as_object_mut().unwrap().entry(k).or_insert(v);
    }
    let mut md = json!({"name": name, "namespace": objects::namespace(owner),
        "labels": labels, "ownerReferences": owner_ref(owner),
        "creationTimestamp": objects::rfc3339(now)});
    if let Some(a) = t["metadata"]["annotations"].as_object() {
        md["annotations"] = Value::Object(a.clone());
    }
    md["generateName"] = json!(format!("{}-", objects::name(owner)));
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec,
           "status": {"phase": "Pending", "qosClass": "BestEffort"}})
}

fn replicasets(st: &mut ClusterState, now: f64) {
    let sets: Vec<Value> = st.list("ReplicaSet").into_iter().cloned().collect();
    // Pods whose ReplicaSet is gone are garbage-collected.
    let uids: std::collections::HashSet<&Value> =
        sets.iter().map(|r| &r["metadata"]["uid"]).collect();
    let orphans = st.keys_where("Pod", |pod| {
        owner(pod)
            .filter(|o| o["kind"] == "ReplicaSet")
            .is_some_and(|o| !uids.contains(&o["uid"]))
    });
    for k in orphans {
        st.remove("Pod", &k);
    }
    for rs in sets {
        let want = rs["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
        // Terminating pods are not active (controller.FilterActivePods): their
        // replacements start at once.
        let mut pods: Vec<Value> = owned_by(st, "Pod", &rs)
            .into_iter()
            .filter(|p| !terminating(p))
            .cloned()
            .collect();
        let hash = rs["metadata"]["labels"]["pod-template-hash"]
            .as_str()
            .unwrap_or("")
            .to_string();
        while pods.len() < want {
            let name = format!("{}-{}", objects::name(&rs), objects::random_suffix(5));
            let pod = new_pod(&rs, name, &[("pod-template-hash", &hash)], now);
            st.put(pod.clone(), now);
            pods.push(pod);
        }
        if pods.len() > want {
            // Unscheduled, then not running pods go first, as the real controller ranks them.
            pods.sort_by_key(|p| {
                (
                    p["spec"]["nodeName"].is_string(),
                    p["status"]["phase"] == "Running",
                )
            });
            for p in pods.iter().take(pods.len() - want) {
                st.remove("Pod", &objects::key_of(p));
            }
        }
    }
}

/// StatefulSets (stateful_set_control.go): pods `NAME-0` .. `NAME-(replicas-1)` with their
/// stable names (hostname, the governing Service as subdomain) and the controller's
/// labels. `OrderedReady` (the default) creates an ordinal only once every lower one is
/// Running and Ready; `Parallel` creates them all at once. Surplus ordinals go, highest
/// first. Pods of a changed template are not replaced (no rolling update), and
/// volumeClaimTemplates get no PersistentVolumeClaims.
fn statefulsets(st: &mut ClusterState, now: f64) {
    let sets: Vec<Value> = st.list("StatefulSet").into_iter().cloned().collect();
    // Pods whose StatefulSet is gone are garbage-collected.
    let uids: std::collections::HashSet<&Value> =
        sets.iter().map(|s| &s["metadata"]["uid"]).collect();
    let orphans = st.keys_where("Pod", |pod| {
        owner(pod)
            .filter(|o| o["kind"] == "StatefulSet")
            .is_some_and(|o| !uids.contains(&o["uid"]))
    });
    for k in orphans {
        st.remove("Pod", &k);
    }
    for sts in sets {
        let want = sts["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
        let name = objects::name(&sts).to_string();
        let revision = statefulset_revision(&sts);
        let parallel = sts["spec"]["podManagementPolicy"] == "Parallel";
        let pods: Vec<Value> = owned_by(st, "Pod", &sts)
            .into_iter()
            .filter(|p| !terminating(p))
            .cloned()
            .collect();
        for i in 0..want {
            let pod_name = format!("{name}-{i}");
            match pods.iter().find(|p| objects::name(p) == pod_name) {
                Some(p) if parallel || pod_ready(p) => continue,
                Some(_) => break,
                None => {
                    let index = i.to_string();
                    let mut pod = new_pod(
                        &sts,
                        pod_name.clone(),
                        &[
                            ("controller-revision-hash", &revision),
                            ("statefulset.kubernetes.io/pod-name", &pod_name),
                            ("apps.kubernetes.io/pod-index", &index),
                        ],
                        now,
                    );
                    if let Some(md) = pod["metadata"].as_object_mut() {
                        md.remove("generateName");
                    }
                    pod["spec"]["hostname"] = json!(pod_name);
                    if let Some(svc) = sts["spec"]["serviceName"].as_str() {
                        pod["spec"]["subdomain"] = json!(svc);
                    }
                    st.put(pod, now);
                    if !parallel {
                        break;
                    }
                }
            }
        }
        let ordinal = |p: &Value| {
            objects::name(p)
                .strip_prefix(&format!("{name}-"))
                .and_then(|o| o.parse::<usize>().ok())
        };
        for p in pods.iter().filter(|p| ordinal(p).is_none_or(|o| o >= want)) {
            st.remove("Pod", &objects::key_of(p));
        }
    }
}

/// The StatefulSet's revision name (its ControllerRevision's): `NAME-HASH`.
fn statefulset_revision(sts: &Value) -> String {
    format!(
        "{}-{}",
        objects::name(sts),
        objects::template_hash(&sts["spec"]["template"])
    )
}

/// The tolerations every DaemonSet pod gets in addition to its own.
fn daemonset_tolerations() -> Vec<Value> {
    vec![
        json!({"key": NOT_READY_TAINT, "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": UNSCHEDULABLE_TAINT, "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": NOT_READY_TAINT, "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoSchedule"}),
    ]
}

fn pod_tolerations(spec: &Value) -> Vec<Value> {
    spec["tolerations"].as_array().cloned().unwrap_or_default()
}

/// Why a node can't take a pod (the scheduler's filter message), or None if it can.
pub fn unfit_reason(node: &Value, pod_spec: &Value, tolerations: &[Value]) -> Option<String> {
    if node["spec"]["unschedulable"] == true {
        let t = Taint {
            key: UNSCHEDULABLE_TAINT.into(),
            value: String::new(),
            effect: "NoSchedule".into(),
        };
        if !objects::tolerates(tolerations, &t) {
            return Some("node(s) were unschedulable".into());
        }
    }
    for t in objects::taints(node) {
        if (t.effect == "NoSchedule" || t.effect == "NoExecute")
            && !objects::tolerates(tolerations, &t)
        {
            return Some(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t.key, t.value
            ));
        }
    }
    if !matches_node_selector(node, pod_spec) {
        return Some("node(s) didn't match Pod's node affinity/selector".into());
    }
    None
}

/// nodeSelector plus required node affinity (matchExpressions on labels).
pub fn matches_node_selector(node: &Value, pod_spec: &Value) -> bool {
    let labels = objects::labels(node);
    if let Some(sel) = pod_spec["nodeSelector"].as_object() {
        if !sel.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            return false;
        }
    }
    let terms = &pod_spec["affinity"]["nodeAffinity"]
        ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"];
    if let Some(terms) = terms.as_array() {
        if !terms.is_empty()
            && !terms
                .iter()
                .any(|t| objects::label_selector_matches(t, &labels))
        {
            return false;
        }
    }
    true
}

fn daemonsets(st: &mut ClusterState, now: f64) {
    let sets: Vec<Value> = st.list("DaemonSet").into_iter().cloned().collect();
    let uids: std::collections::HashSet<&Value> =
        sets.iter().map(|r| &r["metadata"]["uid"]).collect();
    let orphans = st.keys_where("Pod", |pod| {
        owner(pod)
            .filter(|o| o["kind"] == "DaemonSet")
            .is_some_and(|o| !uids.contains(&o["uid"]))
    });
    for k in orphans {
        st.remove("Pod", &k);
    }
    let nodes: Vec<Value> = st.list("Node").into_iter().cloned().collect();
    for ds in sets {
        let spec = &ds["spec"]["template"]["spec"];
        let mut tols = pod_tolerations(spec);
        tols.extend(daemonset_tolerations());
        let hash = objects::template_hash(&ds["spec"]["template"]);
        // (key, node, current revision) of this DaemonSet's pods, by node.
        let mut by_node: std::collections::HashMap<String, Vec<(String, bool)>> =
            Default::default();
        for p in owned_by(st, "Pod", &ds) {
            let current = p["metadata"]["labels"]["controller-revision-hash"] == hash.as_str();
            by_node
                .entry(p["spec"]["nodeName"].as_str().unwrap_or("").to_string())
                .or_default()
                .push((objects::key_of(p), current));
        }
        for node in &nodes {
            let node_name = objects::name(node);
            let eligible = unfit_reason(node, spec, &tols).is_none();
            let mut have_current = false;
            for (key, current) in by_node.remove(node_name).unwrap_or_default() {
                if !eligible || !current || have_current {
                    st.remove("Pod", &key);
                } else {
                    have_current = true;
                }
            }
            if eligible && !have_current {
                let name = format!("{}-{}", objects::name(&ds), objects::random_suffix(5));
                let mut pod = new_pod(
                    &ds,
                    name,
                    &[
                        ("controller-revision-hash", &hash),
                        ("pod-template-generation", "1"),
                    ],
                    now,
                );
                pod["spec"]["nodeName"] = json!(node_name);
                pod["spec"]["tolerations"] = Value::Array(tols.clone());
                st.put(pod, now);
            }
        }
        // Pods on nodes that no longer exist.
        for (key, _) in by_node.into_values().flatten() {
            st.remove("Pod", &key);
        }
    }
}

/// Places pending pods: the first feasible node with the fewest pods; otherwise records
/// the scheduler's FailedScheduling message in the PodScheduled condition.
fn schedule(st: &mut ClusterState, now: f64) {
    let nodes: Vec<Value> = st.list("Node").into_iter().cloned().collect();
    let mut load: std::collections::BTreeMap<String, usize> = nodes
        .iter()
        .map(|n| (objects::name(n).to_string(), 0))
        .collect();
    for p in st.list("Pod") {
        if let Some(n) = p["spec"]["nodeName"].as_str() {
            *load.entry(n.to_string()).or_default() += 1;
        }
    }
    let pending: Vec<Value> = st
        .list("Pod")
        .into_iter()
        .filter(|p| !p["spec"]["nodeName"].is_string())
        .cloned()
        .collect();
    for mut pod in pending {
        let tols = pod_tolerations(&pod["spec"]);
        let mut reasons: std::collections::BTreeMap<String, usize> = Default::default();
        let mut best: Option<(usize, String)> = None;
        for node in &nodes {
            let n = objects::name(node).to_string();
            match unfit_reason(node, &pod["spec"], &tols) {
                Some(r) => *reasons.entry(r).or_default() += 1,
                None => {
                    let l = load[&n];
                    if best.as_ref().is_none_or(|(bl, _)| l < *bl) {
                        best = Some((l, n));
                    }
                }
            }
        }
        match best {
            Some((_, n)) => {
                *load.get_mut(&n).unwrap() += 1;
                pod["spec"]["nodeName"] = json!(n);
                pod["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "True",
                    "lastTransitionTime": objects::rfc3339(now)}]);
            }
            None => {
                let msg = failed_scheduling_message(nodes.len(), &reasons);
                let prev = &pod["status"]["conditions"][0];
                let tr = if prev["message"] == msg.as_str() {
                    prev["lastTransitionTime"].clone()
                } else {
                    json!(objects::rfc3339(now))
                };
                pod["status"] = json!({"phase": "Pending", "qosClass": "BestEffort",
                    "conditions": [{"type": "PodScheduled", "status": "False",
                    "reason": "Unschedulable", "message": msg, "lastProbeTime": null,
                    "lastTransitionTime": tr}]});
            }
        }
        st.put(pod, now);
    }
}

/// The scheduler's FitError text: reasons counted, sorted, plus the preemption summary.
pub fn failed_scheduling_message(
    nodes: usize,
    reasons: &std::collections::BTreeMap<String, usize>,
) -> String {
    if nodes == 0 {
        return "no nodes available to schedule pods".into();
    }
    let mut parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    format!(
        "0/{nodes} nodes are available: {}. preemption: 0/{nodes} nodes are available: {nodes} Preemption is not helpful for scheduling.",
        parts.join(", ")
    )
}

/// Whether the node's kubelet can run a pod right now.
fn node_can_run(st: &ClusterState, node: &str, host_network: bool, now: f64, t: &Timing) -> bool {
    let (status, _, message) = node_ready(st, node, now, t);
    status == "True" || (status == "False" && message == CNI_NOT_READY && host_network)
}

fn pod_status(st: &mut ClusterState, now: f64, t: &Timing) {
    let keys = st.keys_where("Pod", |p| p["spec"]["nodeName"].is_string());
    let mut node_cache: std::collections::HashMap<String, (bool, bool, Value)> = Default::default();
    let ts = json!(objects::rfc3339(now));
    for key in keys {
        let Some(pod) = st.object("Pod", &key) else {
            continue;
        };
        let node = pod["spec"]["nodeName"].as_str().unwrap_or("").to_string();
        let host_network = pod["spec"]["hostNetwork"] == true;
        let (runs_host, runs_pod, node_ip) = node_cache
            .entry(node.clone())
            .or_insert_with(|| {
                let ip = st
                    .object("Node", &node)
                    .and_then(|n| n["status"]["addresses"].as_array())
                    .and_then(|a| a.iter().find(|x| x["type"] == "InternalIP"))
                    .map(|a| a["address"].clone())
                    .unwrap_or(Value::Null);
                (
                    node_can_run(st, &node, true, now, t),
                    node_can_run(st, &node, false, now, t),
                    ip,
                )
            })
            .clone();
        let runs = if host_network { runs_host } else { runs_pod };
        let was_running = pod["status"]["phase"] == "Running";
        let started = runs || was_running;
        if pod["status"]["phase"] == if started { "Running" } else { "Pending" }
            && pod_ready(pod) == runs
            && pod["status"]["hostIP"] == node_ip
            && pod["status"]["podIP"].is_string() == started
            && pod["status"]["containerStatuses"].is_array()
        {
            continue;
        }
        let mut status = pod["status"].clone();
        if !status.is_object() {
            status = json!({});
        }
        let prev = status["conditions"].clone();
        let cond = |ty: &str, ok: bool| {
            let s = if ok { "True" } else { "False" };
            let tr = prev
                .as_array()
                .and_then(|a| a.iter().find(|c| c["type"] == ty && c["status"] == s))
                .map(|c| c["lastTransitionTime"].clone())
                .unwrap_or(ts.clone());
            json!({"type": ty, "status": s, "lastProbeTime": null, "lastTransitionTime": tr})
        };
        let ready = runs;
        status["phase"] = json!(if started { "Running" } else { "Pending" });
        status["hostIP"] = node_ip.clone();
        if started && status["startTime"].is_null() {
            status["startTime"] = ts.clone();
        }
        if started && status["podIP"].is_null() {
            let ip = if host_network {
                node_ip.clone()
            } else {
                use rand::Rng;
                let mut r = rand::thread_rng();
                json!(format!(
                    "192.168.{}.{}",
                    r.gen_range(0..255),
                    r.gen_range(1..255)
                ))
            };
            status["podIPs"] = json!([{"ip": ip}]);
            status["podIP"] = ip;
        }
        status["conditions"] = json!([
            cond("PodReadyToStartContainers", started),
            cond("Initialized", true),
            cond("Ready", ready),
            cond("ContainersReady", ready),
            cond("PodScheduled", true),
        ]);
        let prev_cs = &pod["status"]["containerStatuses"];
        let statuses: Vec<Value> = pod["spec"]["containers"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        let state = if started {
                            let since = prev_cs
                                .as_array()
                                .and_then(|a| a.iter().find(|s| s["name"] == c["name"]))
                                .map(|s| s["state"]["running"]["startedAt"].clone())
                                .filter(|v| v.is_string())
                                .unwrap_or_else(|| ts.clone());
                            json!({"running": {"startedAt": since}})
                        } else {
                            json!({"waiting": {"reason": "ContainerCreating"}})
                        };
                        json!({"name": c["name"], "image": c["image"], "imageID": "",
                               "ready": ready, "started": started, "restartCount": 0, "state": state})
                    })
                    .collect()
            })
            .unwrap_or_default();
        status["containerStatuses"] = Value::Array(statuses);
        st.set_field("Pod", &key, "status", status);
    }
}

pub fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|a| {
        a.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn workload_status(st: &mut ClusterState, now: f64) {
    for mut rs in st
        .list("ReplicaSet")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>()
    {
        let pods: Vec<&Value> = owned_by(st, "Pod", &rs)
            .into_iter()
            .filter(|p| !terminating(p))
            .collect();
        let ready = pods.iter().filter(|p| pod_ready(p)).count();
        rs["status"] = json!({"replicas": pods.len(), "fullyLabeledReplicas": pods.len(),
            "readyReplicas": ready, "availableReplicas": ready,
            "observedGeneration": rs["metadata"]["generation"].as_i64().unwrap_or(1)});
        st.put(rs, now);
    }
    for mut dep in st
        .list("Deployment")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>()
    {
        let want = dep["spec"]["replicas"].as_i64().unwrap_or(1);
        let hash = objects::template_hash(&dep["spec"]["template"]);
        let new_rs = format!("{}-{hash}", objects::name(&dep));
        let mut total = 0;
        let mut updated = 0;
        let mut ready = 0;
        let mut updated_ready = 0;
        for rs in owned_by(st, "ReplicaSet", &dep) {
            for p in owned_by(st, "Pod", rs)
                .into_iter()
                .filter(|p| !terminating(p))
            {
                total += 1;
                let r = pod_ready(p);
                ready += r as i64;
                if objects::name(rs) == new_rs {
                    updated += 1;
                    updated_ready += r as i64;
                }
            }
        }
        let _ = updated_ready;
        let gen = dep["metadata"]["generation"].as_i64().unwrap_or(1);
        let prev = dep["status"]["conditions"].clone();
        let ts = json!(objects::rfc3339(now));
        let cond = |ty: &str, ok: bool, reason: &str, msg: String| {
            let s = if ok { "True" } else { "False" };
            let tr = prev
                .as_array()
                .and_then(|a| a.iter().find(|c| c["type"] == ty && c["status"] == s))
                .map(|c| c["lastTransitionTime"].clone())
                .unwrap_or(ts.clone());
            json!({"type": ty, "status": s, "reason": reason, "message": msg,
                   "lastUpdateTime": tr, "lastTransitionTime": tr})
        };
        let available = ready >= want;
        let mut status = json!({
        "observedGeneration": gen, "replicas": total, "updatedReplicas": updated,
        "readyReplicas": ready, "availableReplicas": ready,
        "conditions": [
            if available {
                cond("Available", true, "MinimumReplicasAvailable", "Deployment has minimum availability.".into())
            } else {
                cond("Available", false, "MinimumReplicasUnavailable", "Deployment does not have minimum availability.".into())
            },
            cond("Progressing", true, "NewReplicaSetAvailable",
                 format!("ReplicaSet \"{new_rs}\" has successfully progressed.")),
        ]});
        if want - ready > 0 {
            status["unavailableReplicas"] = json!(want - ready);
        }
        for k in [
            "readyReplicas",
            "availableReplicas",
            "replicas",
            "updatedReplicas",
        ] {
            if status[k] == 0 {
                status.as_object_mut().unwrap().remove(k);
            }
        }
        dep["status"] = status;
        st.put(dep, now);
    }
    let nodes = st.list("Node").len();
    let _ = nodes;
    for mut ds in st
        .list("DaemonSet")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>()
    {
        let hash = objects::template_hash(&ds["spec"]["template"]);
        let pods = owned_by(st, "Pod", &ds);
        let desired = pods.len();
        let ready = pods.iter().filter(|p| pod_ready(p)).count();
        let updated = pods
            .iter()
            .filter(|p| p["metadata"]["labels"]["controller-revision-hash"] == hash.as_str())
            .count();
        let gen = ds["metadata"]["generation"].as_i64().unwrap_or(1);
        let mut status = json!({"currentNumberScheduled": desired, "desiredNumberScheduled": desired,
            "numberMisscheduled": 0, "numberReady": ready, "numberAvailable": ready,
            "updatedNumberScheduled": updated, "observedGeneration": gen});
        if desired > ready {
            status["numberUnavailable"] = json!(desired - ready);
        }
        ds["status"] = status;
        st.put(ds, now);
    }
    for mut sts in st
        .list("StatefulSet")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>()
    {
        let revision = statefulset_revision(&sts);
        let pods: Vec<&Value> = owned_by(st, "Pod", &sts)
            .into_iter()
            .filter(|p| !terminating(p))
            .collect();
        let ready = pods.iter().filter(|p| pod_ready(p)).count();
        let current = pods
            .iter()
            .filter(|p| p["metadata"]["labels"]["controller-revision-hash"] == revision.as_str())
            .count();
        let gen = sts["metadata"]["generation"].as_i64().unwrap_or(1);
        let mut status = json!({"observedGeneration": gen, "replicas": pods.len(),
            "readyReplicas": ready, "availableReplicas": ready, "currentReplicas": current,
            "updatedReplicas": current, "currentRevision": revision,
            "updateRevision": revision, "collisionCount": 0});
        // omitempty, as the API serves them; `replicas` is always there.
        for k in [
            "readyReplicas",
            "availableReplicas",
            "currentReplicas",
            "updatedReplicas",
        ] {
            if status[k] == 0 {
                status.as_object_mut().unwrap().remove(k);
            }
        }
        sts["status"] = status;
        st.put(sts, now);
    }
}

/// `intstr.GetScaledValueFromIntOrPercent(v, total, roundUp=true)`.
fn scaled(v: &Value, total: i64) -> Option<i64> {
    if let Some(n) = v.as_i64() {
        return Some(n);
    }
    let s = v.as_str()?;
    match s.strip_suffix('%') {
        Some(p) => {
            let p: i64 = p.parse().ok()?;
            Some((p * total + 99) / 100)
        }
        None => s.parse().ok(),
    }
}

/// The PDB's (expectedPods, currentHealthy, desiredHealthy, disruptionsAllowed).
pub fn pdb_numbers(st: &ClusterState, pdb: &Value) -> (i64, i64, i64, i64) {
    let ns = objects::namespace(pdb);
    let sel = &pdb["spec"]["selector"];
    let pods: Vec<&Value> = st
        .list("Pod")
        .into_iter()
        .filter(|p| objects::namespace(p) == ns)
        .filter(|p| objects::label_selector_matches(sel, &objects::labels(p)))
        .collect();
    // Expected pods: the scale of the controllers owning the selected pods.
    let mut expected = 0;
    let mut seen = std::collections::BTreeSet::new();
    for p in &pods {
        match owner(p) {
            Some(o) if o["kind"] == "ReplicaSet" => {
                let rs = st
                    .list("ReplicaSet")
                    .into_iter()
                    .find(|r| r["metadata"]["uid"] == o["uid"]);
                let dep = rs
                    .and_then(owner)
                    .and_then(|d| d["uid"].as_str().map(String::from));
                let (id, n) = match (dep, rs) {
                    (Some(d), _) => {
                        let n = st
                            .list("Deployment")
                            .into_iter()
                            .find(|x| x["metadata"]["uid"] == d.as_str())
                            .map(|x| x["spec"]["replicas"].as_i64().unwrap_or(1))
                            .unwrap_or(0);
                        (d, n)
                    }
                    (None, Some(rs)) => (
                        o["uid"].as_str().unwrap_or("").to_string(),
                        rs["spec"]["replicas"].as_i64().unwrap_or(1),
                    ),
                    _ => continue,
                };
                if seen.insert(id) {
                    expected += n;
                }
            }
            _ => expected += 1,
        }
    }
    // The disruption controller's countHealthyPods: terminating pods are not healthy.
    let healthy = pods
        .iter()
        .filter(|p| pod_ready(p) && !terminating(p))
        .count() as i64;
    let desired = if !pdb["spec"]["minAvailable"].is_null() {
        scaled(&pdb["spec"]["minAvailable"], expected).unwrap_or(0)
    } else if !pdb["spec"]["maxUnavailable"].is_null() {
        expected - scaled(&pdb["spec"]["maxUnavailable"], expected).unwrap_or(0)
    } else {
        0
    };
    let allowed = (healthy - desired).max(0);
    (expected, healthy, desired.max(0), allowed)
}

fn pdb_status(st: &mut ClusterState, now: f64) {
    for mut pdb in st
        .list("PodDisruptionBudget")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>()
    {
        let (expected, healthy, desired, allowed) = pdb_numbers(st, &pdb);
        let gen = pdb["metadata"]["generation"].as_i64().unwrap_or(1);
        pdb["status"] = json!({"currentHealthy": healthy, "desiredHealthy": desired,
            "disruptionsAllowed": allowed, "expectedPods": expected, "observedGeneration": gen});
        st.put(pdb, now);
    }
}

/// The eviction subresource (the pod registry's `EvictionREST.Create`): a pod that is
/// Pending, Succeeded, Failed or already terminating is deleted without looking at
/// PodDisruptionBudgets (`canIgnorePDB`); otherwise a covering PDB must allow a
/// disruption, except for an unready pod when the PDB says `unhealthyPodEvictionPolicy:
/// AlwaysAllow`, or (unset / `IfHealthyBudget`, the default) when the application is
/// not disrupted now (`currentHealthy >= desiredHealthy && desiredHealthy > 0`). The
/// delete is graceful: the pod stays `Terminating` for its grace period.
pub fn evict(
    st: &mut ClusterState,
    namespace: &str,
    name: &str,
    now: f64,
    t: &Timing,
) -> Result<(), (u16, String, String)> {
    let key = objects::key(Some(namespace), name);
    let Some(pod) = st.object("Pod", &key).cloned() else {
        return Err((404, "NotFound".into(), format!("pods \"{name}\" not found")));
    };
    let can_ignore_pdb = terminating(&pod)
        || matches!(
            pod["status"]["phase"].as_str(),
            Some("Pending" | "Succeeded" | "Failed")
        );
    if !can_ignore_pdb {
        check_disruption_budget(st, &pod)?;
    }
    delete_pod_gracefully(st, &key, now, t);
    Ok(())
}

/// The PDB part of an eviction: `Err` with the API server's status when the pod may not go.
fn check_disruption_budget(st: &ClusterState, pod: &Value) -> Result<(), (u16, String, String)> {
    let labels = objects::labels(pod);
    let namespace = objects::namespace(pod);
    let pdbs: Vec<&Value> = st
        .list("PodDisruptionBudget")
        .into_iter()
        .filter(|p| objects::namespace(p) == namespace)
        .filter(|p| objects::label_selector_matches(&p["spec"]["selector"], &labels))
        .collect();
    if pdbs.len() > 1 {
        return Err((500, "InternalError".into(),
            "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.".into()));
    }
    let Some(pdb) = pdbs.first() else {
        return Ok(());
    };
    let (_, healthy, desired, allowed) = pdb_numbers(st, pdb);
    if !pod_ready(pod) {
        if pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow" {
            return Ok(());
        }
        // Unset and IfHealthyBudget: only while the application is not disrupted.
        if healthy >= desired && desired > 0 {
            return Ok(());
        }
    }
    if allowed < 1 {
        return Err((
            429,
            "TooManyRequests".into(),
            "Cannot evict pod as it would violate the pod's disruption budget.".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(st: &mut ClusterState, name: &str, labels: Value, taints: Value, now: f64) {
        st.put(
            json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels},
            "spec": {"taints": taints},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.200.0.2"}]}}),
            now,
        );
        st.heartbeats.insert(name.into(), now);
    }

    fn cp_taint() -> Value {
        json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])
    }

    fn calico(st: &mut ClusterState, now: f64) {
        st.put(json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "calico-node", "namespace": "kube-system", "generation": 1},
            "spec": {"selector": {"matchLabels": {"k8s-app": "calico-node"}},
              "template": {"metadata": {"labels": {"k8s-app": "calico-node"}},
                "spec": {"hostNetwork": true, "tolerations": [{"operator": "Exists", "effect": "NoSchedule"}],
                  "containers": [{"name": "calico-node", "image": "docker.io/calico/node:v3.30.3"}]}}}}), now);
    }

    fn deploy(st: &mut ClusterState, name: &str, replicas: i64, selector: Value, now: f64) {
        st.put(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default", "generation": 1},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
              "template": {"metadata": {"labels": {"app": name}},
                "spec": {"nodeSelector": selector, "containers": [{"name": name, "image": "wordpress"}]}}}}), now);
    }

    fn pods_of<'a>(st: &'a ClusterState, prefix: &str) -> Vec<&'a Value> {
        st.list("Pod")
            .into_iter()
            .filter(|p| objects::name(p).starts_with(prefix))
            .collect()
    }

    const T: Timing = Timing {
        heartbeat_grace: 3.0,
        eviction_delay: 5.0,
        time_scale: 0.0,
    };

    #[test]
    fn grace_period_follows_the_controller_manager() {
        assert_eq!(grace_period("v1.31.4"), 40.0);
        assert_eq!(grace_period("v1.34.2"), 50.0);
        assert_eq!(Timing::scaled(0.0, "v1.34.2").heartbeat_grace, MIN_GRACE);
        assert_eq!(Timing::scaled(1.0, "v1.34.2").heartbeat_grace, 50.0);
        assert_eq!(Timing::scaled(1.0, "v1.31.0").heartbeat_grace, 40.0);
        // A kubelet a few seconds late at time_scale 0 keeps its node.
        let t = Timing::scaled(0.0, "v1.34.2");
        let mut st = ClusterState::default();
        node(&mut st, "m1", json!({}), cp_taint(), 1000.0);
        st.cni = Some(json!({"name": "calico"}));
        assert_eq!(node_ready(&st, "m1", 1008.0, &t).0, "True");
        assert_eq!(node_ready(&st, "m1", 1013.0, &t).0, "Unknown");
    }

    #[test]
    fn not_ready_without_cni_then_ready() {
        let mut st = ClusterState::default();
        let now = 1000.0;
        node(&mut st, "m1", json!({}), cp_taint(), now);
        reconcile(&mut st, now, &T);
        let n = st.object("Node", "m1").unwrap();
        assert_eq!(ready_condition(n)["status"], "False");
        assert_eq!(ready_condition(n)["message"], CNI_NOT_READY);
        assert!(objects::taints(n).iter().any(|t| t.key == NOT_READY_TAINT));
        calico(&mut st, now);
        reconcile(&mut st, now, &T);
        let n = st.object("Node", "m1").unwrap();
        assert!(is_ready(n));
        assert_eq!(objects::taints(n).len(), 1);
        assert_eq!(st.cni.as_ref().unwrap()["version"], "v3.30.3");
        assert_eq!(pods_of(&st, "calico-node-").len(), 1);
        // Heartbeats stop: Unknown.
        reconcile(&mut st, now + 10.0, &T);
        let n = st.object("Node", "m1").unwrap();
        assert_eq!(ready_condition(n)["status"], "Unknown");
        assert_eq!(
            ready_condition(n)["message"],
            "Kubelet stopped posting node status."
        );
    }

    #[test]
    fn failed_scheduling_message_like_the_scheduler() {
        let mut st = ClusterState::default();
        let now = 1000.0;
        node(&mut st, "m1", json!({}), cp_taint(), now);
        node(&mut st, "w1", json!({}), json!(null), now);
        node(&mut st, "w2", json!({}), json!(null), now);
        calico(&mut st, now);
        deploy(&mut st, "wordpress", 2, json!({"type": "wordpress"}), now);
        reconcile(&mut st, now, &T);
        let pods = pods_of(&st, "wordpress-");
        assert_eq!(pods.len(), 2);
        let msg = pods[0]["status"]["conditions"][0]["message"]
            .as_str()
            .unwrap();
        assert_eq!(msg, "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.");
        // Label a worker: both pods land there and run.
        let mut w1 = st.object("Node", "w1").unwrap().clone();
        w1["metadata"]["labels"]["type"] = json!("wordpress");
        st.put(w1, now);
        reconcile(&mut st, now, &T);
        let pods = pods_of(&st, "wordpress-");
        assert!(pods
            .iter()
            .all(|p| p["spec"]["nodeName"] == "w1" && p["status"]["phase"] == "Running"));
        let d = st.object("Deployment", "default/wordpress").unwrap();
        assert_eq!(d["status"]["availableReplicas"], 2);
        let name = objects::name(pods[0]);
        assert!(name.len() == "wordpress-".len() + 10 + 1 + 5, "{name}");
    }

    #[test]
    fn pdb_blocks_eviction_and_pods_move() {
        let mut st = ClusterState::default();
        let now = 1000.0;
        node(&mut st, "w1", json!({"type": "wp"}), json!(null), now);
        node(&mut st, "w2", json!({"type": "wp"}), json!(null), now);
        calico(&mut st, now);
        deploy(&mut st, "wp", 2, json!({"type": "wp"}), now);
        st.put(
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "wp", "namespace": "default"},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "wp"}}}}),
            now,
        );
        reconcile(&mut st, now, &T);
        let pdb = st.object("PodDisruptionBudget", "default/wp").unwrap();
        assert_eq!(pdb["status"]["disruptionsAllowed"], 0);
        let p = objects::name(pods_of(&st, "wp-")[0]).to_string();
        let e = evict(&mut st, "default", &p, now, &T).unwrap_err();
        assert_eq!(e.0, 429);
        assert_eq!(
            e.2,
            "Cannot evict pod as it would violate the pod's disruption budget."
        );
        // maxUnavailable 1 allows one.
        let mut pdb = st
            .object("PodDisruptionBudget", "default/wp")
            .unwrap()
            .clone();
        pdb["spec"] = json!({"maxUnavailable": 1, "selector": {"matchLabels": {"app": "wp"}}});
        st.put(pdb, now);
        assert!(evict(&mut st, "default", &p, now, &T).is_ok());
        // Cordon w1: the replacement goes to w2 only if w1 is unschedulable.
        let mut w1 = st.object("Node", "w1").unwrap().clone();
        w1["spec"]["unschedulable"] = json!(true);
        st.put(w1, now);
        reconcile(&mut st, now, &T);
        let w1 = st.object("Node", "w1").unwrap();
        assert!(objects::taints(w1)
            .iter()
            .any(|t| t.key == UNSCHEDULABLE_TAINT));
        assert_eq!(pods_of(&st, "wp-").len(), 2);
    }

    fn set_ready(st: &mut ClusterState, name: &str, ready: bool, now: f64) {
        let mut p = st
            .object("Pod", &format!("default/{name}"))
            .unwrap()
            .clone();
        let s = if ready { "True" } else { "False" };
        p["status"]["conditions"] = json!([{"type": "Ready", "status": s}]);
        st.put(p, now);
    }

    #[test]
    fn unready_pods_are_evicted_only_from_a_healthy_budget_unless_always_allow() {
        let mut st = ClusterState::default();
        let now = 1000.0;
        node(&mut st, "w1", json!({}), json!(null), now);
        calico(&mut st, now);
        deploy(&mut st, "wp", 3, json!({}), now);
        let pdb = |min: i64, policy: Option<&str>| {
            let mut p = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                "metadata": {"name": "wp", "namespace": "default"},
                "spec": {"minAvailable": min, "selector": {"matchLabels": {"app": "wp"}}}});
            if let Some(policy) = policy {
                p["spec"]["unhealthyPodEvictionPolicy"] = json!(policy);
            }
            p
        };
        st.put(pdb(2, None), now);
        reconcile(&mut st, now, &T);
        let names: Vec<String> = pods_of(&st, "wp-")
            .iter()
            .map(|p| objects::name(p).to_string())
            .collect();
        set_ready(&mut st, &names[0], false, now);
        // 2 healthy of 2 desired: the app is not disrupted, the unready pod may go
        // although no disruption is allowed.
        assert_eq!(pdb_numbers(&st, &pdb(2, None)).3, 0);
        assert!(check_disruption_budget(
            &st,
            st.object("Pod", &format!("default/{}", names[0])).unwrap()
        )
        .is_ok());
        // 2 healthy of 3 desired: IfHealthyBudget (the default) refuses ...
        for policy in [None, Some("IfHealthyBudget")] {
            st.put(pdb(3, policy), now);
            let e = evict(&mut st, "default", &names[0], now, &T).unwrap_err();
            assert_eq!((e.0, e.1.as_str()), (429, "TooManyRequests"));
        }
        // ... AlwaysAllow lets it go; a ready pod still may not.
        st.put(pdb(3, Some("AlwaysAllow")), now);
        assert_eq!(
            evict(&mut st, "default", &names[1], now, &T).unwrap_err().0,
            429
        );
        assert!(evict(&mut st, "default", &names[0], now, &T).is_ok());
        // A Pending pod skips the budget (canIgnorePDB).
        let mut p = st
            .object("Pod", &format!("default/{}", names[2]))
            .unwrap()
            .clone();
        p["status"]["phase"] = json!("Pending");
        st.put(p, now);
        st.put(pdb(3, None), now);
        assert!(evict(&mut st, "default", &names[2], now, &T).is_ok());
    }

    #[test]
    fn evicted_pods_terminate_for_their_grace_period_on_a_live_kubelet() {
        let mut st = ClusterState::default();
        let now = 1000.0;
        node(&mut st, "w1", json!({}), json!(null), now);
        node(&mut st, "w2", json!({}), json!(null), now);
        calico(&mut st, now);
        deploy(&mut st, "web", 2, json!({}), now);
        reconcile(&mut st, now, &T);
        let slow = Timing {
            time_scale: 0.5,
            ..T
        };
        let on = |st: &ClusterState, n: &str| -> String {
            objects::name(
                pods_of(st, "web-")
                    .into_iter()
                    .find(|p| p["spec"]["nodeName"] == n)
                    .unwrap(),
            )
            .to_string()
        };
        let (p1, p2) = (on(&st, "w1"), on(&st, "w2"));
        evict(&mut st, "default", &p1, now, &slow).unwrap();
        let pod = st.object("Pod", &format!("default/{p1}")).unwrap();
        assert!(terminating(pod));
        assert_eq!(
            pod["metadata"]["deletionTimestamp"],
            objects::rfc3339(1015.0)
        );
        assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 30);
        // Evicting it again changes nothing; its replacement starts at once.
        evict(&mut st, "default", &p1, now + 1.0, &slow).unwrap();
        assert_eq!(
            st.object("Pod", &format!("default/{p1}")).unwrap()["metadata"]["deletionTimestamp"],
            objects::rfc3339(1015.0)
        );
        reconcile(&mut st, now + 1.0, &slow);
        assert_eq!(pods_of(&st, "web-").len(), 3);
        assert_eq!(
            st.object("Deployment", "default/web").unwrap()["status"]["replicas"],
            2
        );
        for dt in [5.0, 10.0, 14.0] {
            st.heartbeats.insert("w1".into(), now + dt);
            st.heartbeats.insert("w2".into(), now + dt);
            reconcile(&mut st, now + dt, &slow);
        }
        assert!(st.object("Pod", &format!("default/{p1}")).is_some());
        st.heartbeats.insert("w1".into(), now + 15.0);
        st.heartbeats.insert("w2".into(), now + 15.0);
        reconcile(&mut st, now + 15.0, &slow);
        assert!(st.object("Pod", &format!("default/{p1}")).is_none());
        // On a node whose kubelet stopped posting status the pod stays Terminating.
        evict(&mut st, "default", &p2, now + 15.0, &T).unwrap();
        reconcile(&mut st, now + 30.0, &T);
        let n2 = st.object("Node", "w2").unwrap();
        assert_eq!(ready_condition(n2)["status"], "Unknown");
        assert!(terminating(
            st.object("Pod", &format!("default/{p2}")).unwrap()
        ));
    }

    #[test]
    fn pods_leave_dead_nodes() {
        let mut st = ClusterState::default();
        let now = 1000.0;
        node(&mut st, "w1", json!({}), json!(null), now);
        node(&mut st, "w2", json!({}), json!(null), now);
        calico(&mut st, now);
        deploy(&mut st, "web", 4, json!({}), now);
        reconcile(&mut st, now, &T);
        // w1 stops heartbeating; w2 keeps going.
        for dt in [2.0, 4.0, 6.0, 8.0, 10.0, 12.0] {
            st.heartbeats.insert("w2".into(), now + dt);
            reconcile(&mut st, now + dt, &T);
        }
        let pods = pods_of(&st, "web-");
        assert_eq!(pods.len(), 4);
        assert!(
            pods.iter().all(|p| p["spec"]["nodeName"] == "w2"),
            "{pods:?}"
        );
        assert_eq!(pods_of(&st, "calico-node-").len(), 2);
    }

    #[test]
    fn pdb_percentages() {
        assert_eq!(scaled(&json!("50%"), 3), Some(2));
        assert_eq!(scaled(&json!(1), 3), Some(1));
        assert_eq!(scaled(&json!("25%"), 2), Some(1));
    }
}

#[cfg(test)]
mod bench {
    use super::*;

    /// `cargo test -p testbed --bin tb-sim reconcile_cost -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn reconcile_cost() {
        let mut st = ClusterState::default();
        let now = 1000.0;
        for i in 0..150 {
            let name = format!("n{i:03}");
            st.put(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                "spec": {}, "status": {"addresses": [{"type": "InternalIP", "address": "10.200.0.2"}]}}), now);
            st.heartbeats.insert(name, now);
        }
        for ds in ["calico-node", "kube-proxy"] {
            st.put(
                json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
                "metadata": {"name": ds, "namespace": "kube-system", "generation": 1},
                "spec": {"selector": {"matchLabels": {"k8s-app": ds}},
                  "template": {"metadata": {"labels": {"k8s-app": ds}},
                    "spec": {"hostNetwork": true, "tolerations": [{"operator": "Exists"}],
                      "containers": [{"name": ds, "image": "docker.io/calico/node:v3.30.3"}]}}}}),
                now,
            );
        }
        reconcile(&mut st, now, &Timing::scaled(0.0, "v1.34.2"));
        let t = std::time::Instant::now();
        for i in 0..10 {
            for n in 0..150 {
                st.heartbeats.insert(format!("n{n:03}"), now + i as f64);
            }
            reconcile(&mut st, now + i as f64, &Timing::scaled(0.0, "v1.34.2"));
        }
        let per = t.elapsed().as_secs_f64() / 10.0;
        let tm = Timing::scaled(0.0, "v1.34.2");
        type Phase = Box<dyn Fn(&mut ClusterState)>;
        let phases: Vec<(&str, Phase)> = vec![
            ("cni", Box::new(detect_cni)),
            (
                "nodes",
                Box::new(move |s| node_lifecycle(s, now + 20.0, &tm)),
            ),
            (
                "orphans",
                Box::new(move |s| drop_orphan_pods(s, now + 20.0, &tm)),
            ),
            ("deploy", Box::new(move |s| deployments(s, now))),
            ("rs", Box::new(move |s| replicasets(s, now))),
            ("ds", Box::new(move |s| daemonsets(s, now))),
            ("sched", Box::new(move |s| schedule(s, now))),
            (
                "podstatus",
                Box::new(move |s| pod_status(s, now + 20.0, &tm)),
            ),
            ("workloads", Box::new(move |s| workload_status(s, now))),
        ];
        for (n, f) in phases {
            let t = std::time::Instant::now();
            f(&mut st);
            println!("{n}: {:.1} ms", t.elapsed().as_secs_f64() * 1000.0);
        }
        let t = std::time::Instant::now();
        let copy = st.clone();
        println!("clone: {:.1} ms", t.elapsed().as_secs_f64() * 1000.0);
        drop(copy);
        let t = std::time::Instant::now();
        let bytes = serde_json::to_vec(&st).unwrap().len();
        println!(
            "reconcile: {:.1} ms per pass (150 nodes, 300 pods); serialize {bytes} bytes: {:.1} ms",
            per * 1000.0,
            t.elapsed().as_secs_f64() * 1000.0
        );
    }
}
