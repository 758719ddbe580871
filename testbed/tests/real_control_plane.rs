//! The REAL control plane inside a testbed host (issue 9, first piece): the real kubeadm
//! writes certificates, kubeconfigs and the static pod manifests of etcd, kube-apiserver,
//! kube-controller-manager and kube-scheduler (`kubeadm init phase ...`), the kubelet
//! stand-in's static-pod runner (`tb-sim daemon static-pods`) runs them as processes of
//! the host with the binaries testbed/k8s/build.sh built for their images, and the real
//! kubectl with kubeadm's admin.conf talks to the real API server.
//!
//! Needs root and the built release (`testbed::k8s::real_release`; the first run builds
//! it). `cargo test -p testbed --test real_control_plane`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use testbed::k8s::{real_release, DEFAULT_RELEASE};

#[test]
fn kubeadm_phases_and_static_pods_serve_the_real_api() {
    let k8s = real_release(DEFAULT_RELEASE).unwrap();
    // The hosts see the cache through their /var overlay; a cache elsewhere is invisible.
    assert!(
        k8s.dir().starts_with("/var") || k8s.dir().starts_with("/usr"),
        "TESTBED_K8S_CACHE must be under /var or /usr for hosts to see it: {}",
        k8s.dir().display()
    );
    let tb = testbed(1, "root");
    let addr = address(&tb, "node1");
    let kubeadm = k8s.bin("kubeadm").display().to_string();
    let kubectl = k8s.bin("kubectl").display().to_string();
    let config = format!(
        "apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: {addr}
  bindPort: 6443
nodeRegistration:
  name: node1
  criSocket: unix:///var/run/containerd/containerd.sock
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: {DEFAULT_RELEASE}
networking:
  podSubnet: 192.168.0.0/16
  serviceSubnet: 10.96.0.0/12
"
    );
    exec_ok(
        &tb,
        "node1",
        &format!("mkdir -p /etc/kubeadm && cat > /etc/kubeadm/kubeadm.yaml <<'EOF'\n{config}EOF"),
    );
    for phase in [
        "certs all",
        "kubeconfig all",
        "etcd local",
        "control-plane all",
    ] {
        exec_ok(
            &tb,
            "node1",
            &format!("{kubeadm} init phase {phase} --config /etc/kubeadm/kubeadm.yaml"),
        )
        .expect(phase, 0, &[]);
    }
    let manifests = exec_ok(&tb, "node1", "ls /etc/kubernetes/manifests").stdout;
    assert_eq!(
        manifests.split_whitespace().collect::<Vec<_>>(),
        [
            "etcd.yaml",
            "kube-apiserver.yaml",
            "kube-controller-manager.yaml",
            "kube-scheduler.yaml"
        ]
    );

    exec_ok(
        &tb,
        "node1",
        &format!(
            "setsid /usr/local/lib/testbed/tb-sim daemon static-pods --images {} \
             >/var/log/static-pods.log 2>&1 </dev/null &",
            k8s.dir().display()
        ),
    );

    // The API server answers once etcd is up and its post-start hooks ran: minutes on a
    // loaded 2-core machine, seconds on an idle one.
    let admin = "--kubeconfig /etc/kubernetes/admin.conf";
    let started = Instant::now();
    let version = loop {
        let out = exec(
            &tb,
            "node1",
            &format!("{kubectl} {admin} get --raw /version"),
        );
        if out.code == 0 {
            break out.stdout;
        }
        if started.elapsed() > Duration::from_secs(300) {
            let log = exec(
                &tb,
                "node1",
                "cat /var/log/static-pods.log; tail -n 20 /var/log/pods/*/*/0.log",
            );
            panic!("no API after 300 s: {}\n{}", out.all(), log.all());
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    eprintln!("API server answered after {:?}", started.elapsed());
    let v: Value = serde_json::from_str(&version).unwrap();
    assert_eq!(v["gitVersion"], DEFAULT_RELEASE, "{v}");
    assert_eq!(v["major"], "1", "{v}");

    // The real resource set: the built-in groups, served by the real API server.
    let out = exec_ok(
        &tb,
        "node1",
        &format!("{kubectl} {admin} api-resources -o name"),
    );
    let names: Vec<&str> = out.stdout.lines().collect();
    for r in [
        "pods",
        "nodes",
        "deployments.apps",
        "leases.coordination.k8s.io",
        "certificatesigningrequests.certificates.k8s.io",
        "customresourcedefinitions.apiextensions.k8s.io",
    ] {
        assert!(
            names.contains(&r),
            "{r} missing from api-resources:\n{}",
            out.stdout
        );
    }
    assert!(
        names.len() > 50,
        "only {} resources:\n{}",
        names.len(),
        out.stdout
    );

    // admin.conf's user is in group kubeadm:cluster-admins, which has no rights until
    // kubeadm binds it to cluster-admin (through super-admin.conf) the first time one of
    // its phases needs a client: here upload-config, as `kubeadm init` runs it next.
    let out = exec(
        &tb,
        "node1",
        &format!("{kubectl} {admin} get configmaps -n kube-system"),
    );
    out.expect(
        "before upload-config",
        1,
        &["User \"kubernetes-admin\" cannot list resource \"configmaps\""],
    );
    exec_ok(
        &tb,
        "node1",
        &format!("{kubeadm} init phase upload-config all --config /etc/kubeadm/kubeadm.yaml"),
    );
    let out = exec_ok(
        &tb,
        "node1",
        &format!("{kubectl} {admin} get configmap -n kube-system kubeadm-config -o jsonpath='{{.data.ClusterConfiguration}}'"),
    );
    assert!(
        out.stdout
            .contains(&format!("kubernetesVersion: {DEFAULT_RELEASE}")),
        "{}",
        out.stdout
    );

    // The real API server's validation, which the simulated one lacked.
    let out = exec(
        &tb,
        "node1",
        &format!(
            "{kubectl} {admin} apply -f - <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata:
  name: Bad_Name
data: {{}}
EOF"
        ),
    );
    out.expect(
        "ConfigMap Bad_Name",
        1,
        &["The ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\""],
    );
}
