//! Mirror pods of the kubelet stand-in for the REAL control plane (issue 9,
//! testbed/STANDINS-kubelet-real.md; reference real-control-plane.md §4): for each static
//! pod in /etc/kubernetes/manifests, the API object `kube-system/<pod>-<node>` that the
//! kubelet creates so the cluster can see it (pkg/kubelet/pod/mirror_client.go,
//! pkg/kubelet/config/common.go):
//!
//! - annotations `kubernetes.io/config.hash` (a hash of the manifest: it changes when the
//!   manifest changes, which is what `kubeadm upgrade`'s WaitForStaticPodHashChange looks
//!   for; the kubelet hashes the decoded pod, so the value differs from a real kubelet's),
//!   `kubernetes.io/config.mirror` (the same hash), `kubernetes.io/config.source: file`,
//!   `kubernetes.io/config.seen`;
//! - `spec.nodeName` = the node and an ownerReference to the Node (NodeRestriction admits
//!   a node's mirror pods only so);
//! - a mirror pod whose hash is not the manifest's is deleted (grace period 0, as
//!   DeleteMirrorPod does) and created again, one whose manifest is gone is deleted;
//! - status: Running while the pod's process runs (staticpods.rs writes
//!   /run/real-kubelet/POD.pid), each container `started` and `ready` as its probes say
//!   (prober.rs), the pod Ready when all its containers are, each container's restarts
//!   and last end as the runtime would keep them ([`history`]); hostIP = podIP = the
//!   node's address (hostNetwork).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Where staticpods.rs records the process of each running static pod.
pub const PIDS: &str = "/run/real-kubelet";

/// The files the kubelet's file source reads as static pods in `dir`, in its order: every
/// name not starting with a dot, whatever its extension, that is a regular file (a
/// symlink to one counts); sorted. pkg/kubelet/config/file.go extractFromDir globs
/// `[^.]*` and sorts, and its watch ignores only dot files. So a backup such as
/// `kube-apiserver.yaml.orig` in /etc/kubernetes/manifests is a pod too.
pub fn manifest_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
        .collect();
    files.sort();
    files
}

/// Why the kubelet's file source refuses a static pod that names API objects, in its
/// error's words (PreventStaticPodAPIReferences, beta and on by default since 1.34:
/// pkg/kubelet/config/common.go tryDecodeSinglePod with pkg/api/pod/util.go
/// HasAPIObjectReference, in its order): a service account, a Secret or ConfigMap of the
/// containers' environment, imagePullSecrets or volumes, resource claims, or a volume
/// that needs an API object. The kubelet logs `"Could not process manifest file"
/// err="static pods may not reference ..."` and runs no pod for the file.
pub fn api_object_reference(pod: &Value) -> Option<String> {
    let spec = &pod["spec"];
    let refuse = |what: &str| Some(format!("static pods may not reference {what}"));
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    if spec["serviceAccountName"]
        .as_str()
        .is_some_and(|n| !n.is_empty())
    {
        return refuse("serviceaccounts");
    }
    let containers: Vec<Value> = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| list(&spec[*k]))
        .collect();
    let env_refers = |from: &str, key: &str| {
        containers.iter().any(|c| {
            list(&c["envFrom"]).iter().any(|e| e[from].is_object())
                || list(&c["env"])
                    .iter()
                    .any(|e| e["valueFrom"][key].is_object())
        })
    };
    let volumes = list(&spec["volumes"]);
    let projected = |kind: &str| {
        volumes.iter().any(|v| {
            list(&v["projected"]["sources"])
                .iter()
                .any(|s| s[kind].is_object())
        })
    };
    // VisitPodSecretNames: pull secrets, environment, and the volumes that name one.
    let secret_volume = volumes.iter().any(|v| {
        v["secret"].is_object()
            || v["azureFile"].is_object()
            || [
                "cephfs",
                "cinder",
                "flexVolume",
                "rbd",
                "scaleIO",
                "iscsi",
                "storageos",
            ]
            .iter()
            .any(|k| v[*k]["secretRef"].is_object())
            || v["csi"]["nodePublishSecretRef"].is_object()
    });
    if !list(&spec["imagePullSecrets"]).is_empty()
        || env_refers("secretRef", "secretKeyRef")
        || secret_volume
        || projected("secret")
    {
        return refuse("secrets");
    }
    if env_refers("configMapRef", "configMapKeyRef")
        || volumes.iter().any(|v| v["configMap"].is_object())
        || projected("configMap")
    {
        return refuse("configmaps");
    }
    if !list(&spec["resourceClaims"]).is_empty() {
        return refuse("resourceclaims");
    }
    const NEEDS_NO_OBJECT: &[&str] = &[
        "awsElasticBlockStore",
        "azureDisk",
        "cephfs",
        "cinder",
        "downwardAPI",
        "emptyDir",
        "fc",
        "flexVolume",
        "flocker",
        "gcePersistentDisk",
        "gitRepo",
        "hostPath",
        "image",
        "iscsi",
        "nfs",
        "photonPersistentDisk",
        "portworxVolume",
        "quobyte",
        "rbd",
        "scaleIO",
        "storageos",
        "vsphereVolume",
    ];
    for v in &volumes {
        let kind = v
            .as_object()
            .and_then(|o| o.keys().find(|k| k.as_str() != "name").cloned())
            .unwrap_or_default();
        let why = match kind.as_str() {
            k if NEEDS_NO_OBJECT.contains(&k) => continue,
            "configMap" => "configmaps (via configmap volumes)",
            "secret" => "secrets (via secret volumes)",
            "csi" => "csidrivers (via CSI volumes)",
            "glusterfs" => "endpoints (via glusterFS volumes)",
            "persistentVolumeClaim" => "persistentvolumeclaims",
            "ephemeral" => "persistentvolumeclaims (via ephemeral volumes)",
            "azureFile" => "secrets (via azureFile volumes)",
            "projected" => {
                match list(&v["projected"]["sources"])
                    .iter()
                    .find(|s| !s["downwardAPI"].is_object())
                {
                    None => continue,
                    Some(s) if s["serviceAccountToken"].is_object() => {
                        "serviceaccounts (via projected volumes)"
                    }
                    Some(s) if s["clusterTrustBundle"].is_object() => "clustertrustbundles",
                    Some(s) if s["podCertificate"].is_object() => "podcertificates",
                    Some(_) => {
                        return Some(format!(
                            "unknown source for projected volume {:?}",
                            v["name"].as_str().unwrap_or_default()
                        ))
                    }
                }
            }
            _ => {
                return Some(format!(
                    "unknown volume type for volume  {:?}",
                    v["name"].as_str().unwrap_or_default()
                ))
            }
        };
        return refuse(why);
    }
    None
}

/// The manifests' pods by name, with their hash. Of two files declaring the same pod
/// name, the first in [`manifest_files`]' order is the pod; the kubelet ignores the
/// other (pkg/kubelet/config/config.go filterInvalidPods: `Pod failed validation due to
/// duplicate pod name, ignoring`).
pub fn manifests(dir: &str) -> BTreeMap<String, (Value, String)> {
    let mut out = BTreeMap::new();
    for path in manifest_files(dir) {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(pod) = serde_yaml::from_str::<Value>(&text) else {
            continue;
        };
        // A file the file source refuses is no pod (and has no mirror pod).
        if pod["kind"] != "Pod" || api_object_reference(&pod).is_some() {
            continue;
        }
        if let Some(name) = pod["metadata"]["name"].as_str() {
            out.entry(name.to_string())
                .or_insert((pod, manifest_hash(&text)));
        }
    }
    out
}

/// The hash of a static pod's manifest text: its `kubernetes.io/config.hash`, and the
/// static pod's UID (as the kubelet's UID is its config hash; the value differs).
pub fn manifest_hash(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes())[..16])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The namespace of static pod `pod`: its own, `default` when the manifest names none
/// (pkg/kubelet/config/common.go applyDefaults).
pub fn namespace(pod: &Value) -> &str {
    pod["metadata"]["namespace"]
        .as_str()
        .filter(|n| !n.is_empty())
        .unwrap_or("default")
}

/// The toleration the file source gives every static pod "so they are not evicted when
/// there are node problems" (pkg/kubelet/config/common.go applyDefaults:
/// helper.AddOrUpdateTolerationInPod with Operator Exists, Effect NoExecute): a toleration
/// equal to it stays as it is; one with the same key, operator, value and effect
/// (core Toleration.MatchToleration) is replaced by it; otherwise it is appended. Without
/// it the API server's DefaultTolerationSeconds admission adds 300 s not-ready and
/// unreachable tolerations and the taint eviction controller evicts the mirror pods of a
/// node NotReady for 5 minutes.
fn add_static_toleration(spec: &mut Value) {
    let wanted = json!({"operator": "Exists", "effect": "NoExecute"});
    let field = |t: &Value, k: &str| t[k].as_str().unwrap_or_default().to_string();
    let matches = |t: &Value| {
        ["key", "operator", "value", "effect"]
            .iter()
            .all(|k| field(t, k) == field(&wanted, k))
    };
    let mut list: Vec<Value> = spec["tolerations"].as_array().cloned().unwrap_or_default();
    let equal = |t: &Value| matches(t) && t["tolerationSeconds"].is_null();
    if list.iter().any(equal) {
        return;
    }
    let mut updated = false;
    for t in list.iter_mut().filter(|t| matches(t)) {
        *t = wanted.clone();
        updated = true;
    }
    if !updated {
        list.push(wanted);
    }
    spec["tolerations"] = json!(list);
}

/// The mirror pod of static pod `pod` (from its manifest) on node `node`: the pod as the
/// file source defaults it (common.go applyDefaults: name NAME-node, namespace `default`
/// if none, nodeName, the NoExecute toleration) with the mirror annotations and the
/// Node as owner (pkg/kubelet/pod/mirror_client.go CreateMirrorPod).
pub fn mirror_pod(pod: &Value, hash: &str, node: &str, node_uid: &str, seen: &str) -> Value {
    let mut m = pod.clone();
    let name = format!("{}-{node}", pod["metadata"]["name"].as_str().unwrap_or(""));
    m["metadata"]["name"] = json!(name);
    m["metadata"]["namespace"] = json!(namespace(pod));
    add_static_toleration(&mut m["spec"]);
    if let Some(meta) = m["metadata"].as_object_mut() {
        meta.remove("creationTimestamp");
    }
    let annotations = &mut m["metadata"]["annotations"];
    if !annotations.is_object() {
        *annotations = json!({});
    }
    annotations["kubernetes.io/config.hash"] = json!(hash);
    annotations["kubernetes.io/config.mirror"] = json!(hash);
    annotations["kubernetes.io/config.source"] = json!("file");
    annotations["kubernetes.io/config.seen"] = json!(seen);
    m["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid, "controller": true
    }]);
    m["spec"]["nodeName"] = json!(node);
    if let Some(obj) = m.as_object_mut() {
        obj.remove("status");
    }
    m
}

/// The static pod's live process (its pid file names a live process).
pub fn process(pod: &str) -> Option<i32> {
    let pid = std::fs::read_to_string(Path::new(PIDS).join(format!("{pod}.pid")))
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok());
    pid.filter(|p| unsafe { libc::kill(*p, 0) } == 0)
}

/// What the runtime keeps of a static pod's containers across their processes (the
/// real kubelet reads it from the runtime's containers: their attempt numbers and the
/// last one's exit), in /run/real-kubelet/POD.history: `{"uid": UID, "containers":
/// {NAME: {"restartCount", "startedAt", "lastState", "waiting"}}}`; a pod of another UID
/// (a changed manifest is a new pod) starts with none.
fn history_file(pod: &str) -> PathBuf {
    Path::new(PIDS).join(format!("{pod}.history"))
}

/// The recorded history of container `container` of static pod `pod` with UID `uid`
/// (Null when none).
pub fn history(pod: &str, uid: &str, container: &str) -> Value {
    let h: Value = std::fs::read_to_string(history_file(pod))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    if h["uid"] != uid {
        return Value::Null;
    }
    h["containers"][container].clone()
}

/// Changes the recorded history of `container` of `pod` (UID `uid`) with `f`.
pub fn update_history(pod: &str, uid: &str, container: &str, f: impl FnOnce(&mut Value)) {
    let file = history_file(pod);
    let mut h: Value = std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    if h["uid"] != uid {
        h = json!({"uid": uid, "containers": {}});
    }
    let entry = &mut h["containers"][container];
    if !entry.is_object() {
        *entry = json!({"restartCount": 0});
    }
    f(entry);
    let _ = std::fs::create_dir_all(PIDS);
    let _ = std::fs::write(&file, h.to_string());
}

/// The status of a pod without probes (kwok's model of a running pod, reference §7):
/// every container started and ready while running.
pub fn pod_status(pod: &Value, running: bool, host_ip: &str, pod_ip: &str, now: &str) -> Value {
    pod_status_probed(
        pod,
        running,
        &|_| (running, running),
        &|_| Value::Null,
        host_ip,
        pod_ip,
        now,
    )
}

/// The mirror pod's status: `probed(container)` gives (started, ready); the pod is Ready
/// when every container is (pkg/kubelet/status/generate.go GeneratePodReadyCondition).
/// `history(container)` is what the runtime kept of it ([`history`]): its restartCount,
/// when its process started, its last termination (`lastState`) and, while it waits to
/// be restarted, why (`CrashLoopBackOff` and the back-off message). The phase
/// (kubelet_pods.go getPhase, restartPolicy Always): Running while a container runs or
/// has terminated before (a crash-looping static pod stays Running), Pending before any
/// ran (waiting `ContainerCreating`).
pub fn pod_status_probed(
    pod: &Value,
    running: bool,
    probed: &dyn Fn(&str) -> (bool, bool),
    history: &dyn Fn(&str) -> Value,
    host_ip: &str,
    pod_ip: &str,
    now: &str,
) -> Value {
    let all_ready = running
        && pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|c| probed(c["name"].as_str().unwrap_or_default()).1);
    let ready = if all_ready { "True" } else { "False" };
    let condition = |kind: &str, status: &str| json!({"type": kind, "status": status, "lastTransitionTime": now});
    let containers: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let name = c["name"].as_str().unwrap_or_default();
            let h = history(name);
            let state = if running {
                json!({"running": {"startedAt": h["startedAt"].as_str().unwrap_or(now)}})
            } else if h["waiting"].is_object() {
                json!({"waiting": h["waiting"]})
            } else if h["lastState"].is_object() {
                json!({"waiting": {"reason": "CrashLoopBackOff"}})
            } else {
                json!({"waiting": {"reason": "ContainerCreating"}})
            };
            let (started, ready) = probed(name);
            json!({"name": c["name"], "image": c["image"], "imageID": "",
                   "ready": running && ready, "started": running && started,
                   "restartCount": h["restartCount"].as_u64().unwrap_or(0),
                   "lastState": if h["lastState"].is_object() { h["lastState"].clone() } else { json!({}) },
                   "state": state})
        })
        .collect();
    let ran_before = containers.iter().any(|c| c["lastState"] != json!({}));
    // Init containers ran to completion before the containers started.
    let init_containers: Vec<Value> = pod["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| completed_container(c, true, now))
        .collect();
    json!({
        "phase": if running || ran_before { "Running" } else { "Pending" },
        "conditions": [
            condition("PodReadyToStartContainers", "True"),
            condition("Initialized", "True"),
            condition("Ready", ready),
            condition("ContainersReady", ready),
            condition("PodScheduled", "True"),
        ],
        "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
        "startTime": now,
        "containerStatuses": containers,
        "initContainerStatuses": init_containers,
    })
}

/// The status of container `c` (its spec) that ran to completion with exit code 0
/// (`ready`: an init container's status says ready, a container's not).
pub fn completed_container(c: &Value, ready: bool, now: &str) -> Value {
    json!({"name": c["name"], "image": c["image"], "imageID": "",
           "ready": ready, "started": false, "restartCount": 0,
           "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                    "startedAt": now, "finishedAt": now}}})
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every non-dot regular file of the manifest directory is a pod, whatever its name
    /// ends with; of two with one pod name the first in order wins (the stand-in read
    /// only `*.yaml` and let the last win, so a backup left beside a manifest changed
    /// nothing here while a real kubelet runs it).
    #[test]
    fn every_non_dot_file_is_a_static_pod_and_the_first_of_a_name_wins() {
        let dir = std::env::temp_dir().join(format!("tb-manifests-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub.yaml")).unwrap();
        let pod = |name: &str, flag: &str| {
            format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers: [{{name: c, image: i, command: [c, {flag}]}}]\n")
        };
        for (file, text) in [
            ("kube-scheduler.yaml", pod("kube-scheduler", "--new")),
            ("kube-scheduler.bak", pod("kube-scheduler", "--old")),
            ("etcd.yaml.orig", pod("etcd-copy", "--x")),
            (".kube-apiserver.yaml.swp", pod("hidden", "--x")),
        ] {
            std::fs::write(dir.join(file), text).unwrap();
        }
        let d = dir.display().to_string();
        let names: Vec<String> = manifest_files(&d)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "etcd.yaml.orig",
                "kube-scheduler.bak",
                "kube-scheduler.yaml"
            ]
        );
        let pods = manifests(&d);
        assert_eq!(
            pods.keys().collect::<Vec<_>>(),
            ["etcd-copy", "kube-scheduler"]
        );
        // kube-scheduler.bak sorts first: the backup is the pod.
        assert_eq!(
            pods["kube-scheduler"].0["spec"]["containers"][0]["command"][1],
            "--old"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A static pod may name no API object (PreventStaticPodAPIReferences, on since
    /// 1.34): the kubelet refuses the file and makes no mirror pod. The stand-in ran such
    /// a pod and mirrored it.
    #[test]
    fn a_static_pod_naming_api_objects_is_refused() {
        let pod = |spec: &str| -> Value {
            serde_yaml::from_str(&format!(
                "kind: Pod\nmetadata: {{name: p}}\nspec:\n  hostNetwork: true\n{spec}"
            ))
            .unwrap()
        };
        let why = |spec: &str| api_object_reference(&pod(spec));
        // kubeadm's static pods: hostPath volumes only.
        assert_eq!(
            why("  containers: [{name: c, image: i}]\n  volumes: [{name: k, hostPath: {path: /etc/kubernetes}}]\n"),
            None
        );
        let refused = [
            ("  serviceAccountName: sa\n", "serviceaccounts"),
            ("  containers: [{name: c, env: [{name: A, valueFrom: {secretKeyRef: {name: s, key: k}}}]}]\n", "secrets"),
            ("  containers: [{name: c, envFrom: [{configMapRef: {name: m}}]}]\n", "configmaps"),
            ("  volumes: [{name: v, configMap: {name: m}}]\n", "configmaps"),
            ("  volumes: [{name: v, persistentVolumeClaim: {claimName: c}}]\n", "persistentvolumeclaims"),
            ("  volumes: [{name: v, projected: {sources: [{serviceAccountToken: {path: t}}]}}]\n", "serviceaccounts (via projected volumes)"),
        ];
        for (spec, what) in refused {
            assert_eq!(
                why(spec).as_deref(),
                Some(format!("static pods may not reference {what}").as_str()),
                "{spec}"
            );
        }
        // Such a file is no pod, so no mirror pod either.
        let dir = std::env::temp_dir().join(format!("tb-refs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("p.yaml"),
            "kind: Pod\nmetadata: {name: p}\nspec: {serviceAccountName: sa}\n",
        )
        .unwrap();
        assert!(manifests(&dir.display().to_string()).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// What the runtime kept of a container shows in the mirror pod: its restarts, the
    /// last termination, the back-off it waits in; a pod whose container has run stays
    /// Running while it waits (getPhase, restartPolicy Always); one that never ran is
    /// Pending, ContainerCreating. The stand-in reported restartCount 0, no lastState,
    /// startedAt = now on every update and Pending for a crash-looping pod.
    #[test]
    fn a_mirror_pod_shows_its_containers_restarts_and_last_end() {
        let pod: Value = serde_yaml::from_str(
            "metadata: {name: kube-scheduler}\nspec:\n  containers: [{name: kube-scheduler, image: i}]\n",
        )
        .unwrap();
        let waited = json!({"restartCount": 2, "startedAt": "t1",
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": "t1", "finishedAt": "t2"}},
            "waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s restarting failed container=kube-scheduler pod=kube-scheduler-node1_kube-system(u)"}});
        let status = |running: bool, h: &Value| {
            pod_status_probed(
                &pod,
                running,
                &|_| (true, true),
                &|_| h.clone(),
                "ip",
                "ip",
                "now",
            )
        };
        let s = status(false, &waited);
        assert_eq!(s["phase"], "Running");
        let c = &s["containerStatuses"][0];
        assert_eq!(c["restartCount"], 2);
        assert_eq!(c["ready"], false);
        assert_eq!(c["state"]["waiting"], waited["waiting"]);
        assert_eq!(c["lastState"], waited["lastState"]);
        let s = status(true, &waited);
        assert_eq!(
            s["containerStatuses"][0]["state"]["running"]["startedAt"],
            "t1"
        );
        let s = status(false, &Value::Null);
        assert_eq!(s["phase"], "Pending");
        assert_eq!(
            s["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ContainerCreating"
        );
        assert_eq!(s["containerStatuses"][0]["lastState"], json!({}));
    }

    /// The file source's defaults (common.go applyDefaults): every static pod tolerates
    /// every NoExecute taint, and lives in its manifest's namespace, `default` when it
    /// names none. The stand-in added no toleration (so the API server added the 300 s
    /// not-ready/unreachable ones and a node NotReady for 5 minutes lost its mirror pods)
    /// and put every mirror pod in kube-system.
    #[test]
    fn a_mirror_pod_tolerates_every_no_execute_taint_in_its_own_namespace() {
        let all = json!({"operator": "Exists", "effect": "NoExecute"});
        let pod = |extra: &str| -> Value {
            serde_yaml::from_str(&format!(
                "metadata:\n  name: web\n{extra}spec:\n  containers: [{{name: c, image: i}}]\n"
            ))
            .unwrap()
        };
        let m = mirror_pod(&pod(""), "h", "node1", "u", "t");
        assert_eq!(m["metadata"]["namespace"], "default");
        assert_eq!(m["spec"]["tolerations"], json!([all]));
        let m = mirror_pod(&pod("  namespace: kube-system\n"), "h", "node1", "u", "t");
        assert_eq!(m["metadata"]["namespace"], "kube-system");
        // Others stay; an equal one is not doubled; a matching one with seconds is replaced.
        let mut spec = json!({"tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"},
            {"operator": "Exists", "effect": "NoExecute"}]});
        let before = spec.clone();
        add_static_toleration(&mut spec);
        assert_eq!(spec, before);
        let mut spec = json!({"tolerations": [
            {"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}]});
        add_static_toleration(&mut spec);
        assert_eq!(
            spec["tolerations"],
            json!([all, {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}])
        );
    }

    #[test]
    fn a_mirror_pod_is_named_after_the_node_annotated_and_owned_by_it() {
        let pod: Value = serde_yaml::from_str(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-scheduler\n  namespace: kube-system\n  creationTimestamp: null\n  labels: {component: kube-scheduler}\nspec:\n  hostNetwork: true\n  containers: [{name: kube-scheduler, image: i}]\nstatus: {}\n",
        )
        .unwrap();
        let m = mirror_pod(&pod, "abc", "node1", "u-1", "2026-01-01T00:00:00Z");
        assert_eq!(m["metadata"]["name"], "kube-scheduler-node1");
        assert_eq!(
            m["metadata"]["annotations"]["kubernetes.io/config.mirror"],
            "abc"
        );
        assert_eq!(
            m["metadata"]["annotations"]["kubernetes.io/config.hash"],
            "abc"
        );
        assert_eq!(
            m["metadata"]["annotations"]["kubernetes.io/config.source"],
            "file"
        );
        assert_eq!(m["metadata"]["labels"]["component"], "kube-scheduler");
        assert_eq!(m["metadata"]["ownerReferences"][0]["uid"], "u-1");
        assert_eq!(m["spec"]["nodeName"], "node1");
        assert!(m.get("status").is_none());
        assert!(m["metadata"].get("creationTimestamp").is_none());
        let s = pod_status(&pod, true, "10.0.0.1", "10.0.0.1", "t");
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["containerStatuses"][0]["ready"], true);
        assert_eq!(
            pod_status(&pod, false, "10.0.0.1", "10.0.0.1", "t")["phase"],
            "Pending"
        );
        // A container whose readiness probe has not succeeded: Running, started, not
        // ready, and so the pod not Ready.
        let s = pod_status_probed(
            &pod,
            true,
            &|_| (true, false),
            &|_| Value::Null,
            "10.0.0.1",
            "10.0.0.1",
            "t",
        );
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["containerStatuses"][0]["ready"], false);
        assert_eq!(s["containerStatuses"][0]["started"], true);
        assert_eq!(s["conditions"][2]["type"], "Ready");
        assert_eq!(s["conditions"][2]["status"], "False");
        assert_eq!(s["conditions"][3]["status"], "False");
    }
}
