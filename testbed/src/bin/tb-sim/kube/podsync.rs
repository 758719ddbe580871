//! Pods the REAL scheduler binds to the node, for the kubelet stand-in of the REAL
//! control plane (testbed/STANDINS-kubelet-real.md; reference real-control-plane.md §6,
//! §7): the stand-in runs no containers for them; it reports them as kwok does
//! (kustomize/stage/pod/fast: pod-ready, pod-complete, pod-delete) within the kubelet's rules:
//!
//! - every 2 s it lists the pods bound to it (`spec.nodeName=NODE`, as the kubelet's API
//!   source watches them: pkg/kubelet/config/apiserver.go), skipping its mirror pods;
//! - a pod not Running yet is started: a pod on the pod network only once the runtime's
//!   network is ready (a CNI configuration exists: the kubelet refuses to create a
//!   sandbox while NetworkReady=false, pkg/kubelet/kubelet.go syncPod `network is not
//!   ready`), a hostNetwork pod at once; then the status the kubelet's status manager
//!   PUTs to pods/status (pkg/kubelet/status/status_manager.go; kwok's pod-ready stage):
//!   phase Running, conditions PodReadyToStartContainers, Initialized, Ready,
//!   ContainersReady, PodScheduled True, each container running and ready, each init
//!   container terminated Completed, startTime, hostIP = the node's address, podIP = the
//!   node's address for hostNetwork pods, else the first free address of the Node's
//!   spec.podCIDR (kwok's IP pool; a CNI plugin's IPAM would choose its own);
//! - a pod whose volumes or environment name a ConfigMap or Secret (or key) that does not
//!   exist is not started: Pending, its containers waiting with the kubelet's reason
//!   (podrefs.rs: `ContainerCreating` and `MountVolume.SetUp failed ...`,
//!   `CreateContainerConfigError`); it starts on a later pass once they exist;
//! - a pod whose containers' images the runtime does not have is not started either
//!   (where the runtime is the real containerd): each image is ensured as the kubelet's
//!   image manager does before a container starts (images.rs: the pull policy, a CRI
//!   PullImage from the registry, the pull back-off), init containers first; the first
//!   container whose image is missing waits `ErrImagePull`, `ImagePullBackOff`,
//!   `ErrImageNeverPull` or `ImageInspectError` with the kubelet's message, the pod
//!   Pending, until a later pass has them all; a container's image comes before its
//!   environment (podrefs.rs), as in kuberuntime_container.go startContainer;
//! - a pod with a deletionTimestamp has no containers to stop, so the kubelet's
//!   confirmation follows at once: DELETE with gracePeriodSeconds 0 and the pod's UID as
//!   precondition (status_manager.go syncPod, canBeDeleted; kwok's pod-delete stage).
//!   Until then the API server keeps the pod Terminating, which is what a graceful
//!   delete waits for.
//!
//! - a Running pod that a Job owns completes on the next pass (2 s later): Succeeded,
//!   each container terminated with exit code 0 (kwok's pod-complete stage), so the real
//!   Job controller counts it and sets the Job Complete, which `kubeadm upgrade`'s
//!   `CreateJob` health check waits 15 s for (cmd/kubeadm/app/phases/upgrade/health.go
//!   createJob: pause image, args `-v`, which prints the version and exits 0). A pod in
//!   Succeeded or Failed is never started again (restartPolicy Never/OnFailure end
//!   there).
//!
//! Pretend: readiness and liveness probes are not run (the pod is Ready at once, as kwok
//! makes it), and nothing the images would do on the host happens (their images are
//! pulled, not run).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use serde_json::{json, Value};

use super::apiclient::Client;
use super::cni;
use super::images;
use super::mirror;
use super::podrefs;
use super::realnode::{internal_ip, Options};
use super::sandbox::Cri;
use crate::common;
use testbed::time::rfc3339;

/// One pass: start what is bound and not running, confirm what is being deleted.
/// Returns the log lines of what it did.
pub fn sync(api: &Client, opts: &Options, cri: Option<&Cri>) -> Result<Vec<String>, String> {
    // kubelet.go syncLoop skips pod synchronization while the runtime has errors (not
    // checked yet, or down for 30 s: realnode.rs runtime_errors): nothing is started and
    // no deletion confirmed, as no container could be stopped.
    if let Some(e) = super::realnode::runtime_errors() {
        return Err(format!("Skipping pod synchronization: {e}"));
    }
    let node = &opts.name;
    let list = api.get(&format!(
        "/api/v1/pods?fieldSelector=spec.nodeName%3D{node}"
    ))?;
    let pods: Vec<&Value> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_null())
        .collect();
    let host_ip = opts
        .node_ip
        .map(|ip| ip.to_string())
        .or_else(internal_ip)
        .unwrap_or_default();
    let mut used: BTreeSet<String> = pods
        .iter()
        .filter_map(|p| p["status"]["podIP"].as_str().map(String::from))
        .collect();
    let mut pod_cidr: Option<String> = None;
    let mut done = Vec::new();
    for pod in pods {
        let meta = &pod["metadata"];
        let (ns, name) = (
            meta["namespace"].as_str().unwrap_or_default(),
            meta["name"].as_str().unwrap_or_default(),
        );
        let path = format!("/api/v1/namespaces/{ns}/pods/{name}");
        if !meta["deletionTimestamp"].is_null() {
            let options = json!({"apiVersion": "v1", "kind": "DeleteOptions",
                "gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}});
            api.delete(&path, Some(&options))?;
            done.push(format!(
                "Pod {ns}/{name} deleted (terminated, confirmed with grace period 0)"
            ));
            continue;
        }
        match pod["status"]["phase"].as_str() {
            Some("Running") if owned_by_job(pod) => {
                let mut object = (*pod).clone();
                object["status"] = completed_status(pod, &rfc3339(common::now()));
                api.replace(&format!("{path}/status"), &object)?;
                done.push(format!(
                    "Pod {ns}/{name} Succeeded (a Job's pod, completed)"
                ));
                continue;
            }
            // Running here, or terminal: a pod never leaves Succeeded or Failed. A pod
            // the API says Running that this host has no record of (its data directory,
            // which kubeadm reset empties with /var/lib/kubelet) runs nowhere: a node
            // that rejoins under its old name before the pod garbage collector removed
            // the pods bound to it (40 s after the Node went) gets them started again,
            // as a real kubelet with no local state starts every pod bound to it.
            Some("Running") if started_here(meta) => continue,
            Some("Succeeded" | "Failed") => continue,
            _ => {}
        }
        let host_network = pod["spec"]["hostNetwork"] == true;
        if !host_network && cni::network_ready().is_err() {
            continue;
        }
        // Every pod needs a sandbox, hostNetwork or not (realnode.rs sandbox_problem).
        if opts.sandbox_problem().is_some() {
            continue;
        }
        // The ConfigMaps and Secrets its volumes and environment need (podrefs.rs), read
        // with the node's credentials; a Forbidden answer (the Node authorizer has not
        // seen the binding yet) is retried on the next pass.
        let mut fetch = |kind: podrefs::Kind, object: &str| -> Result<Option<Value>, String> {
            let path = format!("/api/v1/namespaces/{ns}/{}/{object}", kind.collection());
            match api.get(&path) {
                Ok(object) => Ok(Some(object)),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e.into()),
            }
        };
        // Each container's image (images.rs), where the runtime is the real containerd;
        // a failed pull is logged as the image manager's event says it.
        let uid = meta["uid"].as_str().unwrap_or_default();
        let mut pull_failed: Option<String> = None;
        let mut image = |c: &Value| -> Option<(&'static str, String)> {
            let e = ensure_image(cri?, uid, c)?;
            let image = c["image"].as_str().unwrap_or_default();
            pull_failed = Some(e.log_line(image));
            Some((e.reason, e.message))
        };
        let blocked = podrefs::blocked(pod, &mut fetch, &mut image);
        match blocked {
            Ok(None) => {}
            Ok(Some((container, reason, message))) => {
                let status = podrefs::waiting_status(pod, container.as_deref(), reason, &message);
                if podrefs::waiting(&status) != podrefs::waiting(&pod["status"]) {
                    let mut object = (*pod).clone();
                    object["status"] = status;
                    api.replace(&format!("{path}/status"), &object)?;
                    let container = container.unwrap_or_default();
                    done.push(match pull_failed {
                        Some(line) => format!("Pod {ns}/{name} {container}: {line}"),
                        None => format!("Pod {ns}/{name} not started: {reason}: {message}"),
                    });
                }
                continue;
            }
            Err(e) => {
                // Said once per distinct failure (the kubelet retries the pod's sync).
                static SAID: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());
                let line = format!("Pod {ns}/{name} not started yet: {e}");
                let mut said = SAID.lock().unwrap_or_else(|p| p.into_inner());
                if *said != line {
                    done.push(line.clone());
                    *said = line;
                }
                continue;
            }
        }
        // Init containers run before the pod's containers; the one whose work tests
        // observe on the host is calico-node's install-cni (cni.rs). A failure leaves the
        // pod Pending and is retried on the next pass, as the kubelet's init container
        // restarts.
        if cni::install_container(pod).is_some() {
            match cni::install_cni(api, pod, node) {
                Ok(lines) => done.extend(
                    lines
                        .into_iter()
                        .map(|l| format!("Pod {ns}/{name} install-cni: {l}")),
                ),
                Err(e) => {
                    // Said once per distinct failure, not on every pass.
                    static SAID: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());
                    let line = format!("Pod {ns}/{name} install-cni failed: {e}");
                    let mut said = SAID.lock().unwrap_or_else(|p| p.into_inner());
                    if *said != line {
                        done.push(line.clone());
                        *said = line;
                    }
                    continue;
                }
            }
        }
        let pod_ip = if host_network {
            host_ip.clone()
        } else {
            if pod_cidr.is_none() {
                let n = api.get(&format!("/api/v1/nodes/{node}"))?;
                pod_cidr = n["spec"]["podCIDR"].as_str().map(String::from);
            }
            let Some(ip) = pod_cidr.as_deref().and_then(|c| free_ip(c, &used)) else {
                continue;
            };
            used.insert(ip.clone());
            ip
        };
        let now = rfc3339(common::now());
        let mut object = (*pod).clone();
        object["status"] = mirror::pod_status(pod, true, &host_ip, &pod_ip, &now);
        api.replace(&format!("{path}/status"), &object)?;
        if let Some(dir) = pod_dir(meta) {
            let _ = std::fs::create_dir_all(dir);
        }
        done.push(format!("Pod {ns}/{name} Running (podIP {pod_ip})"));
    }
    Ok(done)
}

/// Whether container `c` of the pod with `uid` has its image (images.rs ensure, each
/// (pod UID, image) with its own pull back-off, as the kubelet keys it): None when it has,
/// else why not. The stand-in starts a pod's containers together, so the pod waits for
/// every image; the real kubelet starts the containers that have theirs, and in both the
/// pod stays Pending while one waits (kubelet_pods.go getPhase).
fn ensure_image(cri: &Cri, uid: &str, c: &Value) -> Option<images::NotReady> {
    static BACKOFFS: Mutex<BTreeMap<String, images::PullBackoff>> = Mutex::new(BTreeMap::new());
    let image = c["image"].as_str().unwrap_or_default();
    let mut backoffs = BACKOFFS.lock().unwrap_or_else(|p| p.into_inner());
    let backoff = backoffs.entry(format!("{uid}_{image}")).or_default();
    images::ensure(cri, image, &images::pull_policy(c), backoff, Instant::now()).err()
}

/// The pod's data directory, /var/lib/kubelet/pods/UID, which the kubelet makes when it
/// starts the pod (pkg/kubelet/kubelet_pods.go makePodDataDirs) and `kubeadm reset`
/// removes with the rest of /var/lib/kubelet: this host's record that it runs the pod.
fn pod_dir(meta: &Value) -> Option<std::path::PathBuf> {
    let uid = meta["uid"]
        .as_str()
        .filter(|u| !u.is_empty() && !u.contains('/'))?;
    Some(Path::new("/var/lib/kubelet/pods").join(uid))
}

/// Whether this host started the pod (its data directory exists).
fn started_here(meta: &Value) -> bool {
    pod_dir(meta).is_some_and(|d| d.is_dir())
}

/// Whether a Job owns the pod (kwok's pod-complete stage selects
/// `.metadata.ownerReferences.[].kind` In `Job`).
fn owned_by_job(pod: &Value) -> bool {
    pod["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|r| r["kind"] == "Job"))
}

/// The status of a Running pod whose containers all exited 0: kwok's pod-complete stage
/// (kustomize/stage/pod/fast/pod-complete.yaml: each container terminated, exit code
/// 0, reason `Completed`, not ready, not started; phase Succeeded), with the conditions
/// the kubelet's status manager then reports (pkg/kubelet/status/generate.go: Ready and
/// ContainersReady False with reason `PodCompleted`; PodReadyToStartContainers False,
/// the sandbox being gone). The rest of the status (IPs, startTime) stays.
fn completed_status(pod: &Value, now: &str) -> Value {
    let mut status = pod["status"].clone();
    status["phase"] = json!("Succeeded");
    let containers: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| mirror::completed_container(c, false, now))
        .collect();
    status["containerStatuses"] = json!(containers);
    let conditions: Vec<Value> = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| match c["type"].as_str() {
            Some("Ready" | "ContainersReady") => json!({"type": c["type"], "status": "False",
                "reason": "PodCompleted", "lastTransitionTime": now}),
            Some("PodReadyToStartContainers") => json!({"type": c["type"], "status": "False",
                "lastTransitionTime": now}),
            _ => c.clone(),
        })
        .collect();
    status["conditions"] = json!(conditions);
    status
}

/// The first address of an IPv4 `cidr` after the network address and the first host
/// (kept for the node's own bridge, as host-local IPAM does) that is not in `used`.
pub fn free_ip(cidr: &str, used: &BTreeSet<String>) -> Option<String> {
    let (base, bits) = cidr.split_once('/')?;
    let base: Ipv4Addr = base.parse().ok()?;
    let bits: u32 = bits.parse().ok()?;
    let size = 1u64 << (32 - bits.min(32));
    let start = u32::from(base);
    (2..size.saturating_sub(1))
        .map(|i| Ipv4Addr::from(start.wrapping_add(i as u32)).to_string())
        .find(|ip| !used.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_s_pod_completes_with_exit_code_0_and_keeps_its_addresses() {
        let pod = json!({
            "metadata": {"ownerReferences": [{"kind": "Job", "name": "upgrade-health-check-1"}]},
            "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10.1"}]},
            "status": {"phase": "Running", "podIP": "192.168.1.2", "startTime": "s",
                "conditions": [{"type": "Ready", "status": "True"},
                               {"type": "PodScheduled", "status": "True"}]}});
        assert!(owned_by_job(&pod));
        let s = completed_status(&pod, "t");
        assert_eq!(s["phase"], "Succeeded");
        assert_eq!(s["podIP"], "192.168.1.2");
        assert_eq!(
            s["containerStatuses"][0]["state"]["terminated"],
            json!({"exitCode": 0, "reason": "Completed", "startedAt": "t", "finishedAt": "t"})
        );
        assert_eq!(s["conditions"][0]["status"], "False");
        assert_eq!(s["conditions"][0]["reason"], "PodCompleted");
        assert_eq!(s["conditions"][1]["status"], "True");
        let deployment_pod = json!({"metadata": {"ownerReferences": [{"kind": "ReplicaSet"}]}});
        assert!(!owned_by_job(&deployment_pod));
        assert!(!owned_by_job(&json!({"metadata": {}})));
    }

    #[test]
    fn pod_ips_come_from_the_node_s_pod_cidr_and_are_not_reused() {
        let mut used = BTreeSet::new();
        assert_eq!(
            free_ip("192.168.1.0/24", &used).as_deref(),
            Some("192.168.1.2")
        );
        used.insert("192.168.1.2".to_string());
        assert_eq!(
            free_ip("192.168.1.0/24", &used).as_deref(),
            Some("192.168.1.3")
        );
        // A /30 has one usable address after the gateway's; then none.
        assert_eq!(
            free_ip("10.0.0.0/30", &BTreeSet::new()).as_deref(),
            Some("10.0.0.2")
        );
        let full: BTreeSet<String> = ["10.0.0.2".to_string()].into();
        assert_eq!(free_ip("10.0.0.0/30", &full), None);
        assert_eq!(free_ip("fd00::/64", &BTreeSet::new()), None);
    }
}
