//! A real `kubeadm upgrade` over two minors on the testbed (issue 9 item 7), with the real
//! programs only: `kubeadm init` of v1.34.2 on node1 and `kubeadm join` of node2, both from
//! the pkgs.k8s.io packages (whose kubeadm and kubectl are the built ones), then the
//! upgrade to v1.35.4 and from there to v1.36.3, each exactly as kubeadm's documentation
//! prescribes it (kubernetes.io/docs/tasks/administer-cluster/kubeadm/kubeadm-upgrade/ and
//! upgrading-linux-nodes/): the repository of the next minor, its kubeadm package,
//! `kubeadm upgrade plan`, `kubeadm upgrade apply vX.Y.Z -y`, drain, the kubelet and
//! kubectl packages, `systemctl daemon-reload && systemctl restart kubelet`, uncordon; on the
//! worker `kubeadm upgrade node` instead of apply. The kubelet is the stand-in
//! (testbed/STANDINS-kubelet-real.md): it restarts each static pod whose manifest kubeadm
//! rewrote, with the binary of the manifest's image, updates the mirror pod's
//! config.hash that kubeadm waits on, and completes the Job of kubeadm's `CreateJob`
//! health check.
//!
//! Needs root and the three releases built (`testbed::k8s::real_release`; the first run builds
//! what is missing: minutes each). `cargo test -p testbed --test real_upgrade`.

mod common;

use std::collections::BTreeMap;

use common::real::*;
use common::*;
use serde_json::Value;

/// The release `kubeadm init` installs, and the ones the cluster is upgraded to, in order.
const FROM: &str = "v1.34.2";
const TO: &str = "v1.35.4";
const NEXT: &str = "v1.36.3";

/// `kubectl` on node1 with admin.conf (the package's, so the release installed there).
fn kubectl(tb: &testbed::Testbed, args: &str) -> String {
    exec_ok(tb, "node1", &format!("kubectl {ADMIN} {args}")).stdout
}

/// The nodes' kubeletVersion, Ready status and unschedulable flag, by name.
fn nodes(tb: &testbed::Testbed) -> BTreeMap<String, (String, String, bool)> {
    let list: Value = serde_json::from_str(&kubectl(tb, "get nodes -o json")).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["metadata"]["name"].as_str().unwrap().to_string(),
                (
                    n["status"]["nodeInfo"]["kubeletVersion"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    ready_condition(n)["status"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    n["spec"]["unschedulable"] == true,
                ),
            )
        })
        .collect()
}

/// Both nodes' kubelets at `version`, Ready and schedulable.
fn all_ready_at(nodes: &BTreeMap<String, (String, String, bool)>, version: &str) -> bool {
    nodes.len() == 2
        && nodes
            .values()
            .all(|(kubelet, ready, cordoned)| kubelet == version && ready == "True" && !cordoned)
}

/// The image of each static pod manifest on node1: file name -> image.
fn manifest_images(tb: &testbed::Testbed) -> BTreeMap<String, String> {
    let out = exec_ok(
        tb,
        "node1",
        "cd /etc/kubernetes/manifests && grep -H '^    image:' *.yaml",
    );
    out.stdout
        .lines()
        .map(|l| {
            let (file, image) = l.split_once(":    image: ").unwrap();
            (file.to_string(), image.trim().to_string())
        })
        .collect()
}

/// What the real kubeadm of `k8s` lists for its own release: component -> image.
fn release_images(k8s: &testbed::k8s::RealRelease) -> BTreeMap<String, String> {
    let out = testbed_cmd_ok(k8s.command("kubeadm").args([
        "config",
        "images",
        "list",
        "--kubernetes-version",
        k8s.release(),
    ]));
    out.lines()
        .map(|image| {
            let name = image.rsplit('/').next().unwrap();
            let name = name.split(':').next().unwrap();
            (name.to_string(), image.to_string())
        })
        .collect()
}

/// Runs a command on this machine; it must succeed. Its stdout.
fn testbed_cmd_ok(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().expect("runs");
    assert!(out.status.success(), "{cmd:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The docs' "Changing the package repository" then their kubeadm upgrade step, on `host`.
fn upgrade_kubeadm_package(tb: &testbed::Testbed, host: &str, version: &str) {
    let minor = version.rsplit_once('.').unwrap().0;
    exec_ok(
        tb,
        host,
        &format!(
            "sed -i 's#/core:/stable:/v[0-9.]*/deb/#/core:/stable:/v{minor}/deb/#' /etc/apt/sources.list.d/kubernetes.list"
        ),
    );
    exec_ok(
        tb,
        host,
        &format!(
            "apt-mark unhold kubeadm && apt-get update && apt-get install -y kubeadm='{version}-1.1' && apt-mark hold kubeadm"
        ),
    );
    let out = exec_ok(tb, host, "kubeadm version -o short");
    assert_eq!(out.stdout.trim(), format!("v{version}"));
}

/// The package's kubeadm and kubectl on `host` are the programs built for `k8s`.
fn assert_real_programs(tb: &testbed::Testbed, host: &str, k8s: &testbed::k8s::RealRelease) {
    let out = exec_ok(tb, host, "readlink -f /usr/bin/kubeadm /usr/bin/kubectl");
    assert_eq!(
        out.stdout,
        format!(
            "{}\n{}\n",
            k8s.bin("kubeadm").display(),
            k8s.bin("kubectl").display()
        )
    );
}

/// The docs' drain / kubelet and kubectl upgrade / restart / uncordon of `node`.
fn upgrade_kubelet(tb: &testbed::Testbed, node: &str, version: &str) {
    kubectl(tb, &format!("drain {node} --ignore-daemonsets"));
    assert!(nodes(tb)[node].2, "{node} not cordoned");
    exec_ok(
        tb,
        node,
        &format!(
            "apt-mark unhold kubelet kubectl && apt-get update && apt-get install -y kubelet='{version}-1.1' kubectl='{version}-1.1' && apt-mark hold kubelet kubectl"
        ),
    );
    exec_ok(
        tb,
        node,
        "systemctl daemon-reload && systemctl restart kubelet",
    );
    kubectl(tb, &format!("uncordon {node}"));
}

/// The jobs of kubeadm's `CreateJob` health check that a kubelet stand-in completed, as
/// the stand-ins' logs on both nodes tell.
fn completed_health_checks(tb: &testbed::Testbed) -> usize {
    ["node1", "node2"]
        .iter()
        .map(|h| {
            exec_ok(tb, h, "cat /usr/local/lib/testbed/units/kubelet.log")
                .stdout
                .lines()
                .filter(|l| {
                    l.contains("Pod kube-system/upgrade-health-check-")
                        && l.contains("Succeeded (a Job's pod, completed)")
                })
                .count()
        })
        .sum()
}

/// A mirror pod: name, `kubernetes.io/config.hash`, phase.
type Mirror = (String, String, String);

/// node1's mirror pods, by name.
fn mirror_pods(tb: &testbed::Testbed) -> Vec<Mirror> {
    pods(tb, "kubectl", "--field-selector spec.nodeName=node1")
        .iter()
        .filter(|p| !p["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_null())
        .map(|p| {
            let s = |v: &Value| v.as_str().unwrap_or("").to_string();
            (
                s(&p["metadata"]["name"]),
                s(&p["metadata"]["annotations"]["kubernetes.io/config.hash"]),
                s(&p["status"]["phase"]),
            )
        })
        .collect()
}

/// The static pods kubeadm writes, with the component name of their image.
const STATIC_PODS: [(&str, &str); 4] = [
    ("etcd.yaml", "etcd"),
    ("kube-apiserver.yaml", "kube-apiserver"),
    ("kube-controller-manager.yaml", "kube-controller-manager"),
    ("kube-scheduler.yaml", "kube-scheduler"),
];

/// The whole documented upgrade of the cluster from `from` to `to` (control plane
/// node1, then worker node2), and its outcome.
fn upgrade(
    tb: &testbed::Testbed,
    from: &testbed::k8s::RealRelease,
    to: &testbed::k8s::RealRelease,
) {
    let (from_release, to_release) = (from.release(), to.release());
    let to_version = &to_release[1..];
    let old_images = release_images(from);
    let new_images = release_images(to);
    let images = manifest_images(tb);
    for (file, component) in STATIC_PODS {
        assert_eq!(images[file], old_images[component], "{images:?}");
    }
    let four = |m: &Vec<Mirror>| m.len() == 4 && m.iter().all(|(_, _, phase)| phase == "Running");
    let before = poll(tb, "four Running mirror pods", || mirror_pods(tb), &four);

    // The control plane: kubeadm of the next release, plan, apply.
    upgrade_kubeadm_package(tb, "node1", to_version);
    let out = exec(tb, "node1", "kubeadm upgrade plan");
    assert_eq!(out.code, 0, "kubeadm upgrade plan:\n{}", out.all());
    // The plan's table row for the API server: current and target version.
    assert!(
        out.stdout.lines().any(|l| l.contains("kube-apiserver")
            && l.contains(from_release)
            && l.contains(to_release)),
        "{}",
        out.stdout
    );
    assert_contains(
        &out.stdout,
        &[&format!("kubeadm upgrade apply {to_release}")],
    );
    let checks = completed_health_checks(tb);
    let out = exec(
        tb,
        "node1",
        &format!("kubeadm upgrade apply {to_release} -y"),
    );
    assert_eq!(
        out.code,
        0,
        "kubeadm upgrade apply:\n{}\n--- logs\n{}",
        out.all(),
        logs(tb)
    );
    assert_contains(
        &out.stdout,
        &[
            "[upgrade/staticpods] Waiting for the kubelet to restart the component",
            "[upgrade/kubelet-config] The kubelet configuration for this node was successfully upgraded!",
            &format!("[upgrade] SUCCESS! A control plane node of your cluster was upgraded to \"{to_release}\"."),
        ],
    );
    // apply's CreateJob health check ran a pod to completion.
    assert!(completed_health_checks(tb) > checks);
    upgrade_kubelet(tb, "node1", to_version);

    // The worker: kubeadm, `kubeadm upgrade node`, then its kubelet.
    upgrade_kubeadm_package(tb, "node2", to_version);
    let out = exec(tb, "node2", "kubeadm upgrade node");
    assert_eq!(out.code, 0, "kubeadm upgrade node:\n{}", out.all());
    assert_contains(
        &out.stdout,
        &["[upgrade/kubelet-config] The kubelet configuration for this node was successfully upgraded!"],
    );
    upgrade_kubelet(tb, "node2", to_version);

    // The outcome: the API server of the new release; the manifests name its images and
    // run from its binaries; each mirror pod whose manifest changed has a new hash (etcd's
    // changes only when the releases pin different etcd versions); both kubelets at the
    // new version, Ready and schedulable; the packages' programs are the new release's.
    let v: Value = serde_json::from_str(&kubectl(tb, "get --raw /version")).unwrap();
    assert_eq!(v["gitVersion"], to_release, "{v}");
    let images = manifest_images(tb);
    for (file, component) in STATIC_PODS {
        assert_eq!(images[file], new_images[component], "{images:?}");
        let exe = exec_ok(
            tb,
            "node1",
            &format!("readlink /proc/$(cat /run/real-kubelet/{component}.pid)/exe"),
        );
        assert_eq!(
            exe.stdout.trim(),
            to.bin(component).display().to_string(),
            "{component}"
        );
    }
    let after = poll(tb, "four Running mirror pods", || mirror_pods(tb), &four);
    for ((name, old_hash, _), (new_name, new_hash, _)) in before.iter().zip(&after) {
        assert_eq!(name, new_name);
        let component = name.trim_end_matches("-node1");
        if old_images[component] != new_images[component] {
            assert_ne!(old_hash, new_hash, "{name}'s config.hash did not change");
        }
    }
    poll(
        tb,
        &format!("both nodes Ready at {to_release}"),
        || nodes(tb),
        &|n| all_ready_at(n, to_release),
    );
    let out = exec_ok(
        tb,
        "node2",
        "kubelet --version; dpkg-query -W -f='${Version}\\n' kubeadm kubelet kubectl",
    );
    assert_eq!(
        out.stdout,
        format!("Kubernetes {to_release}\n{to_version}-1.1\n{to_version}-1.1\n{to_version}-1.1\n")
    );
    for host in ["node1", "node2"] {
        assert_real_programs(tb, host, to);
    }
    // The add-on kubeadm upgraded with the control plane.
    let proxy = kubectl(
        tb,
        "get daemonset -n kube-system kube-proxy -o jsonpath='{.spec.template.spec.containers[0].image}'",
    );
    assert_eq!(proxy, new_images["kube-proxy"]);
}

#[test]
fn real_kubeadm_upgrades_a_control_plane_and_a_worker_over_two_minors() {
    let from = built(FROM);
    let to = built(TO);
    let next = built(NEXT);
    assert_eq!(from.dir().parent(), to.dir().parent());
    assert_eq!(from.dir().parent(), next.dir().parent());
    let tb = real_testbed(2, &from);
    for host in ["node1", "node2"] {
        install_packages(&tb, host, FROM, &["kubelet", "kubeadm", "kubectl"]);
        assert_real_programs(&tb, host, &from);
    }

    // The cluster at FROM: init, a worker joined, a network configuration on both (what a
    // CNI plugin's installer leaves).
    write_config_for(&tb, FROM, "192.168.0.0/16");
    let out = exec(&tb, "node1", &format!("kubeadm init --config {CONFIG}"));
    assert_eq!(out.code, 0, "kubeadm init:\n{}\n{}", out.all(), logs(&tb));
    let join = join_command(&tb, "node1");
    exec_ok(&tb, "node2", &join);
    for host in ["node1", "node2"] {
        write_cni_config(&tb, host);
    }
    poll(&tb, "both nodes Ready", || nodes(&tb), &|n| {
        all_ready_at(n, FROM)
    });
    upgrade(&tb, &from, &to);
    upgrade(&tb, &to, &next);
}
