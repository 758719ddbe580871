//! Helpers of the tests against the REAL control plane (issue 9): the built release,
//! kubeadm's configuration, a testbed whose kubelet units run the kubelet stand-in, the
//! reference procedure's kubelet install, polling and logs. Shared by
//! real_control_plane.rs, real_cluster_checks.rs, real_upgrade.rs, procedure.rs and
//! misuse.rs.

use std::time::{Duration, Instant};

use serde_json::Value;
use testbed::k8s::{real_release_for_hosts, DEFAULT_RELEASE};

use super::*;

pub const CONFIG: &str = "/etc/kubeadm/kubeadm.yaml";
pub const ADMIN: &str = "--kubeconfig /etc/kubernetes/admin.conf";

/// The built release, checked to be visible to the hosts.
pub fn release() -> testbed::k8s::RealRelease {
    built(DEFAULT_RELEASE)
}

/// The built `release` (e.g. "v1.34.2"; built now if it is not), checked to be visible to
/// the hosts.
pub fn built(release: &str) -> testbed::k8s::RealRelease {
    real_release_for_hosts(release).unwrap()
}

/// Writes kubeadm's configuration for a single control plane on node1 to [`CONFIG`].
pub fn write_config(tb: &testbed::Testbed) {
    write_config_with(tb, "192.168.0.0/16");
}

/// [`write_config`] with another `networking.podSubnet`.
pub fn write_config_with(tb: &testbed::Testbed, pod_subnet: &str) {
    write_config_for(tb, DEFAULT_RELEASE, pod_subnet);
}

/// [`write_config`] with another `kubernetesVersion` and `networking.podSubnet`.
pub fn write_config_for(tb: &testbed::Testbed, release: &str, pod_subnet: &str) {
    let addr = address(tb, "node1");
    let config = format!(
        "apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: {addr}
  bindPort: 6443
nodeRegistration:
  name: node1
  criSocket: unix:///var/run/containerd/containerd.sock
  kubeletExtraArgs:
  - {{name: node-ip, value: {addr}}}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: {release}
networking:
  podSubnet: {pod_subnet}
  serviceSubnet: 10.96.0.0/12
"
    );
    exec_ok(
        tb,
        "node1",
        &format!("mkdir -p /etc/kubeadm && cat > {CONFIG} <<'EOF'\n{config}EOF"),
    );
}

/// A testbed whose kubelet units run the kubelet stand-in for the real control plane,
/// with the real apt and packages, so the real containerd, which has the images the
/// release's kubeadm lists (`Builder::real_kubernetes` preloads them: no registry here).
pub fn real_testbed(hosts: usize, k8s: &testbed::k8s::RealRelease) -> testbed::Testbed {
    build_real(hosts, "root", k8s)
}

/// Like [`real_testbed`], SSH as `user` (root or ubuntu), after making sure each of
/// `releases` (e.g. "v1.34.2") is built: the kubeadm and kubectl packages of a built
/// release carry its real programs, and the repository is made from what is built when
/// the testbed is, so a release built later would not be in it.
pub fn real_testbed_as(hosts: usize, user: &str, releases: &[&str]) -> testbed::Testbed {
    let mut k8s = release();
    for r in releases {
        k8s = built(r);
    }
    build_real(hosts, user, &k8s)
}

fn build_real(hosts: usize, user: &str, k8s: &testbed::k8s::RealRelease) -> testbed::Testbed {
    let releases = k8s.dir().parent().unwrap();
    testbed::Testbed::builder()
        .hosts(hosts)
        .user(user)
        .real_kubernetes(releases)
        .build()
        .unwrap_or_else(|e| panic!("cannot build a {hosts}-host testbed: {e}"))
}

/// The reference procedure's §1, §2 (docker.io and with it the real containerd,
/// SystemdCgroup = true) and the kubelet package of the release (pkgs.k8s.io `v1.N`), held
/// and enabled as §3 does; kubeadm and kubectl are the built ones.
pub fn install_kubelet(tb: &testbed::Testbed, host: &str) {
    install_packages(tb, host, DEFAULT_RELEASE, &["kubelet"]);
}

/// Like [`install_kubelet`], with `packages` of `release` (e.g. kubelet, kubeadm,
/// kubectl: those of a built release carry its real kubeadm and kubectl), held as §3
/// does.
pub fn install_packages(tb: &testbed::Testbed, host: &str, release: &str, packages: &[&str]) {
    let version = release.trim_start_matches('v');
    let minor = version.rsplit_once('.').unwrap().0;
    let mut steps: Vec<String> = PREREQUISITES.iter().map(|s| s.to_string()).collect();
    steps.extend(RUNTIME.iter().map(|s| s.to_string()));
    steps.extend(k8s_repository(minor));
    let pinned: Vec<String> = packages
        .iter()
        .map(|p| format!("{p}={version}-1.1"))
        .collect();
    steps.push(format!("apt-get install -y {}", pinned.join(" ")));
    steps.push(format!("apt-mark hold {}", packages.join(" ")));
    steps.push("systemctl enable --now kubelet".into());
    for step in steps {
        exec_ok(tb, host, &step);
    }
}

/// Panics unless `text` contains each of `wanted`.
#[track_caller]
pub fn assert_contains(text: &str, wanted: &[&str]) {
    for w in wanted {
        assert!(text.contains(w), "lacks {w:?}:\n{text}");
    }
}

/// A network configuration in /etc/cni/net.d, as a CNI plugin's installer leaves it
/// (what the container runtime, and so the kubelet, waits for to report Ready).
pub fn write_cni_config(tb: &testbed::Testbed, host: &str) {
    exec_ok(
        tb,
        host,
        "mkdir -p /etc/cni/net.d && echo '{\"cniVersion\":\"0.3.1\",\"name\":\"k8s-pod-network\",\"plugins\":[{\"type\":\"bridge\"}]}' > /etc/cni/net.d/10-test.conflist",
    );
}

/// A Node's Ready condition (Null before the kubelet reported one).
pub fn ready_condition(node: &Value) -> Value {
    node["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready").cloned())
        .unwrap_or(Value::Null)
}

/// Calls `fetch` every second until `ok` holds for its value (which it returns); panics
/// with the last value and the logs after 90 s.
pub fn poll<T: std::fmt::Debug>(
    tb: &testbed::Testbed,
    what: &str,
    fetch: impl Fn() -> T,
    ok: &dyn Fn(&T) -> bool,
) -> T {
    let started = Instant::now();
    loop {
        let value = fetch();
        if ok(&value) {
            return value;
        }
        if started.elapsed() > Duration::from_secs(90) {
            panic!("{what}: not after 90 s: {value:?}\n{}", logs(tb));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The kubelet stand-in's log (the kubelet unit's) and the tail of each
/// component's.
pub fn logs(tb: &testbed::Testbed) -> String {
    exec(
        tb,
        "node1",
        "cat /usr/local/lib/testbed/units/kubelet.log 2>/dev/null; tail -n 20 /var/log/pods/*/*/0.log",
    )
    .all()
}

/// The real `kubeadm init` of [`CONFIG`] on node1, every preflight check included
/// (SystemVerification passes on the hosts' cgroup v2 view: STANDINS-os.md); panics with its output and the logs unless it succeeds.
pub fn kubeadm_init(tb: &testbed::Testbed, k8s: &testbed::k8s::RealRelease) -> Out {
    let kubeadm = k8s.bin("kubeadm").display().to_string();
    let out = exec(
        tb,
        "node1",
        &format!("{kubeadm} init --config {CONFIG} --skip-token-print"),
    );
    assert_eq!(
        out.code,
        0,
        "kubeadm init failed:\n{}\n--- logs\n{}",
        out.all(),
        logs(tb)
    );
    out
}

/// A single control plane on node1 of `tb` (a [`real_testbed`]) the way a person makes
/// one: [`write_config`], [`install_kubelet`], [`kubeadm_init`], then a CNI configuration
/// so the Node becomes Ready and the add-ons' pods run.
pub fn init_control_plane(tb: &testbed::Testbed, k8s: &testbed::k8s::RealRelease) {
    write_config(tb);
    install_kubelet(tb, "node1");
    kubeadm_init(tb, k8s);
    write_cni_config(tb, "node1");
}

/// Panics unless `kubectl api-resources` (admin.conf on node1) lists each of `wanted`;
/// returns how many resources it lists.
#[track_caller]
pub fn assert_api_resources(tb: &testbed::Testbed, kubectl: &str, wanted: &[&str]) -> usize {
    let out = exec_ok(
        tb,
        "node1",
        &format!("{kubectl} {ADMIN} api-resources -o name"),
    );
    let names: Vec<&str> = out.stdout.lines().collect();
    for r in wanted {
        assert!(
            names.contains(r),
            "{r} missing from api-resources:\n{}",
            out.stdout
        );
    }
    names.len()
}

/// The mirror pod of the control-plane component `component` (its `component` label, e.g.
/// kube-scheduler) on node1, or Null while there is none.
pub fn mirror_pod(tb: &testbed::Testbed, kubectl: &str, component: &str) -> Value {
    pods(tb, kubectl, &format!("-l component={component}"))
        .into_iter()
        .next()
        .unwrap_or(Value::Null)
}

/// The kube-system pods `selector` (kubectl's flags, e.g. `-l tier=control-plane`)
/// selects, as JSON objects (admin.conf on node1).
pub fn pods(tb: &testbed::Testbed, kubectl: &str, selector: &str) -> Vec<Value> {
    let out = exec_ok(
        tb,
        "node1",
        &format!("{kubectl} {ADMIN} get pods -n kube-system {selector} -o json"),
    );
    let list: Value = serde_json::from_str(&out.stdout).unwrap();
    list["items"].as_array().cloned().unwrap_or_default()
}
