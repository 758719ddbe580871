//! Pod sandboxes of the static pods in the REAL containerd (STANDINS-kubelet-real.md, "Pod
//! sandboxes"): what ties the kubelet stand-in's host processes to the runtime, so that
//! the runtime can end them as it ends a real pod's containers.
//!
//! - Before it starts a static pod's first container the real kubelet creates the pod's
//!   sandbox with CRI RunPodSandbox (pkg/kubelet/kuberuntime/kuberuntime_sandbox.go
//!   createPodSandbox, generatePodSandboxConfig); so does the stand-in, through `tb-cri`
//!   (testbed/cri/main.go, k8s.io/cri-api's gRPC client) to the real containerd, whose
//!   shim runs the sandbox's pause through the runc stand-in (os/runc.rs): PID 1 of a
//!   new PID namespace (the kubelet asks for `pid: CONTAINER`, containerd then gives the
//!   sandbox a namespace of its own).
//! - The container's process is started inside that PID namespace (setns on the pause's
//!   /proc/PID/ns/pid in the spawning thread, so the fork lands in it). A real container
//!   has a namespace of its own and containerd's StopPodSandbox kills the sandbox's
//!   containers with SIGKILL (timeout 0: containerd 1.7 pkg/cri/server/sandbox_stop.go
//!   stopPodSandbox) before the pause; here the kernel does the same when the pause,
//!   PID 1 of the namespace, is killed: every process in it gets SIGKILL. So `kubeadm
//!   reset` (StopPodSandbox + RemovePodSandbox of every sandbox ListPodSandbox returns:
//!   cmd/kubeadm/app/util/runtime/runtime.go) ends the control plane, while stopping
//!   the kubelet does not (the runtime keeps the sandbox).
//! - A pod whose manifest changed or went away: the kubelet kills its containers, then
//!   the sandbox (kuberuntime_manager.go killPodWithSyncResult: StopPodSandbox); the
//!   kubelet's garbage collector removes it later (kuberuntime_gc.go evictSandboxes),
//!   here at once. A sandbox that is no longer ready (its pause gone) is replaced by a
//!   new one of the next attempt (computePodActions: createPodSandbox when the sandbox
//!   changed), the old one removed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

/// Where the real containerd's shims keep runc's state (`runc --root`) for the CRI's
/// namespace.
const RUNC_ROOT: &str = "/run/containerd/runc/k8s.io";

/// The real containerd's CRI, through `tb-cri`.
#[derive(Clone)]
pub struct Cri {
    client: PathBuf,
    endpoint: String,
}

impl Cri {
    /// The runtime at `endpoint` when it is the real containerd (its CRI Version call
    /// answers `containerd`) and the testbed gave the kubelet a CRI client; None
    /// otherwise (the simulated containerd of other releases: plain host processes).
    pub fn connect(client: Option<&Path>, endpoint: &str) -> Option<Cri> {
        let cri = Cri {
            client: client?.to_path_buf(),
            endpoint: endpoint.to_string(),
        };
        let version = cri.call(&["-timeout", "5s", "version"], None).ok()?;
        version.starts_with("containerd ").then_some(cri)
    }

    /// Whether the runtime answers a CRI call now (its Version, within 5 s).
    pub fn answers(&self) -> bool {
        self.call(&["-timeout", "5s", "version"], None).is_ok()
    }

    fn call(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        use std::io::Write;
        let mut cmd = Command::new(&self.client);
        cmd.arg("-endpoint")
            .arg(&self.endpoint)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("{}: {e}", self.client.display()))?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            let _ = pipe.write_all(text.as_bytes());
        }
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    /// ImageStatus: whether the runtime holds `image`.
    pub fn image_present(&self, image: &str) -> Result<bool, String> {
        self.call(&["imagestatus", image], None)
            .map(|id| !id.is_empty())
    }

    /// PullImage of `image` (within 60 s); the runtime's error as the kubelet's CRI client
    /// returns it: gRPC's text, less its `rpc error: code = Unknown desc = ` (cri-client
    /// remote_image.go pullImageV1 strips the code of Unknown errors, which is what
    /// containerd answers for anything but its own error classes, e.g. a name that does
    /// not resolve).
    pub fn pull_image(&self, image: &str) -> Result<(), String> {
        self.call(&["-timeout", "60s", "pull", image], None)
            .map(|_| ())
            .map_err(
                |e| match e.strip_prefix("rpc error: code = Unknown desc = ") {
                    Some(message) => message.to_string(),
                    None => e,
                },
            )
    }

    /// RunPodSandbox: the new sandbox's id.
    pub fn run_pod_sandbox(&self, config: &Value) -> Result<String, String> {
        self.call(&["runp"], Some(&config.to_string()))
    }

    /// ListPodSandbox: every sandbox the runtime knows, ready or not. A line of another
    /// shape is an error, not skipped: skipping it would hide a sandbox whose name stays
    /// reserved (the failure this listing exists to avoid).
    pub fn list_pod_sandboxes(&self) -> Result<Vec<Listed>, String> {
        let out = self.call(&["pods"], None)?;
        out.lines()
            .map(|l| Listed::parse(l).ok_or_else(|| format!("tb-cri pods printed {l:?}")))
            .collect()
    }

    /// StopPodSandbox, then RemovePodSandbox.
    pub fn remove_pod_sandbox(&self, id: &str) -> Result<(), String> {
        self.call(&["stopp", id], None)?;
        self.call(&["rmp", id], None).map(|_| ())
    }
}

/// A sandbox as ListPodSandbox reports it (a `tb-cri pods` line: `ID STATE NS/NAME UID
/// ATTEMPT`).
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub id: String,
    pub ready: bool,
    pub uid: String,
    pub attempt: u32,
}

impl Listed {
    fn parse(line: &str) -> Option<Listed> {
        let w: Vec<&str> = line.split_whitespace().collect();
        let [id, state, _name, uid, attempt] = w[..] else {
            return None;
        };
        Some(Listed {
            id: id.to_string(),
            ready: state == "SANDBOX_READY",
            uid: uid.to_string(),
            attempt: attempt.parse().ok()?,
        })
    }
}

/// The CRI PodSandboxConfig the kubelet makes for a static pod (`pod`, the manifest) of
/// node `node` with UID `uid` (a static pod's UID is its config hash:
/// pkg/kubelet/config/common.go applyDefaults), in protobuf's JSON mapping: metadata
/// with the pod's name as the kubelet knows it, the manifest's name + `-` + the node
/// name in lower case (common.go generatePodName; kuberuntime_sandbox.go
/// generatePodSandboxConfig uses pod.Name), as the mirror pod's; labels = the pod's plus
/// io.kubernetes.pod.{name,namespace,uid} (kuberuntime/labels.go newPodLabels);
/// annotations = the pod's (newPodAnnotations); no hostname for a hostNetwork pod; the
/// log directory /var/log/pods/NS_NAME_UID (BuildPodLogsDirectory); network NODE for
/// hostNetwork, pid CONTAINER, ipc POD (kuberuntime_sandbox_linux.go namespacesForPod).
/// Not modelled: DNS config, port mappings, cgroup parent, security options.
pub fn sandbox_config(pod: &Value, node: &str, uid: &str, attempt: u32) -> Value {
    let name = format!(
        "{}-{}",
        pod["metadata"]["name"].as_str().unwrap_or(""),
        node.to_lowercase()
    );
    let name = name.as_str();
    let namespace = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    let mut labels = pod["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    labels["io.kubernetes.pod.name"] = json!(name);
    labels["io.kubernetes.pod.namespace"] = json!(namespace);
    labels["io.kubernetes.pod.uid"] = json!(uid);
    let mut annotations = pod["metadata"]["annotations"].clone();
    if !annotations.is_object() {
        annotations = json!({});
    }
    let network = if pod["spec"]["hostNetwork"] == true {
        "NODE"
    } else {
        "POD"
    };
    json!({
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "attempt": attempt},
        "logDirectory": format!("/var/log/pods/{namespace}_{name}_{uid}"),
        "labels": labels,
        "annotations": annotations,
        "linux": {"securityContext": {"namespaceOptions": {
            "network": network, "pid": "CONTAINER", "ipc": "POD"
        }}},
    })
}

/// The pause process of sandbox `id`, PID 1 of its PID namespace, while it runs: the
/// child of the init the runc stand-in recorded in runc's state
/// (`RUNC_ROOT/ID/state.json` `pid`: `unshare --pid --fork`, whose child the pause is).
pub fn pause_pid(id: &str) -> Option<i32> {
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(RUNC_ROOT).join(id).join("state.json")).ok()?,
    )
    .ok()?;
    let init = state["pid"].as_i64()?;
    let children = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).ok()?;
    children
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .find(|p| super::staticpods::alive(*p))
}

/// Spawns `cmd` with its process in the PID namespace of `pause` (None: the host's). A
/// thread of its own joins the namespace (setns CLONE_NEWPID changes where that thread's
/// children go) and ends after the fork, so no other thread is affected.
pub fn spawn_in(pause: Option<i32>, mut cmd: Command) -> Result<Child, String> {
    let Some(pause) = pause else {
        return cmd.spawn().map_err(|e| e.to_string());
    };
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let ns = std::fs::File::open(format!("/proc/{pause}/ns/pid"))
            .map_err(|e| format!("the sandbox's PID namespace (pause {pause}): {e}"))?;
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWPID) } != 0 {
            return Err(format!(
                "setns to the sandbox's PID namespace (pause {pause}): {}",
                std::io::Error::last_os_error()
            ));
        }
        cmd.spawn().map_err(|e| e.to_string())
    })
    .join()
    .map_err(|_| "the spawning thread panicked".to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_sandbox_is_tb_cri_s_line() {
        let line = "4f2a SANDBOX_NOTREADY kube-system/etcd-node1 e5218b5d 3";
        assert_eq!(
            Listed::parse(line),
            Some(Listed {
                id: "4f2a".into(),
                ready: false,
                uid: "e5218b5d".into(),
                attempt: 3,
            })
        );
        let ready = Listed::parse("4f2a SANDBOX_READY kube-system/etcd-node1 e5218b5d 0");
        assert!(ready.is_some_and(|l| l.ready && l.attempt == 0));
        // The line of a tb-cri without UID and attempt is refused, not misread.
        assert_eq!(
            Listed::parse("4f2a SANDBOX_READY kube-system/etcd-node1"),
            None
        );
    }

    #[test]
    fn a_static_pod_s_sandbox_config_is_the_kubelet_s() {
        let pod: Value = serde_yaml::from_str(
            "metadata:
  name: etcd
  namespace: kube-system
  labels: {component: etcd, tier: control-plane}
  annotations: {kubeadm.kubernetes.io/etcd.advertise-client-urls: 'https://10.0.0.1:2379'}
spec:
  hostNetwork: true
",
        )
        .unwrap();
        let c = sandbox_config(&pod, "Node1", "0123abcd", 1);
        assert_eq!(
            c,
            json!({
                "metadata": {"name": "etcd-node1", "namespace": "kube-system", "uid": "0123abcd", "attempt": 1},
                "logDirectory": "/var/log/pods/kube-system_etcd-node1_0123abcd",
                "labels": {"component": "etcd", "tier": "control-plane",
                           "io.kubernetes.pod.name": "etcd-node1",
                           "io.kubernetes.pod.namespace": "kube-system",
                           "io.kubernetes.pod.uid": "0123abcd"},
                "annotations": {"kubeadm.kubernetes.io/etcd.advertise-client-urls": "https://10.0.0.1:2379"},
                "linux": {"securityContext": {"namespaceOptions": {
                    "network": "NODE", "pid": "CONTAINER", "ipc": "POD"}}},
            })
        );
    }

    /// A process spawned "in" a PID namespace is PID 2 there (PID 1 being the pause),
    /// and dies with the namespace's PID 1.
    #[test]
    fn a_process_spawned_in_the_pause_s_namespace_dies_with_it() {
        if unsafe { libc::geteuid() } != 0 {
            return; // unshare --pid needs root
        }
        let mut pause = Command::new("unshare")
            .args(["--pid", "--fork", "--kill-child", "sleep", "infinity"])
            .spawn()
            .unwrap();
        let init = pause.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let ns_init = loop {
            let children =
                std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).unwrap();
            if let Some(p) = children.split_whitespace().next() {
                break p.parse::<i32>().unwrap();
            }
            assert!(std::time::Instant::now() < deadline, "no pause");
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo $$; exec sleep infinity"])
            .stdout(Stdio::piped());
        let mut child = spawn_in(Some(ns_init), cmd).unwrap();
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "2", "PID inside the namespace");
        // The namespace's PID 1 goes: the kernel kills the rest.
        unsafe { libc::kill(init as i32, libc::SIGKILL) };
        let _ = pause.wait();
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
}
