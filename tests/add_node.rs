//! End-to-end: adding a worker to a running cluster touches nothing else (issue 4; peers'
//! users complain that it restarts things on the whole cluster: KubeOne #2832, Kubespray
//! #4397 #8503). What changed is observed on the hosts and in the API
//! (tests/support/snapshot.rs). Runs on the REAL control plane (issue 9; tests/up_real.rs):
//! real `kubeadm init`/`join`, kube-apiserver, controller-manager, scheduler and kubectl,
//! so the API objects compared are the real ones. Needs root and the built release (the
//! first run builds it).

mod support;

use support::snapshot::Snapshot;
use support::{Decl, Inventory};
use testbed::Testbed;

/// `bootstrap up` must exit 0 (`--timeout 10m`: the real control plane's convergence takes
/// minutes on a loaded machine, like tests/up_real.rs).
fn up(tb: &Testbed, inv: &std::path::Path) {
    let ran = support::run_on(tb, &["up", "--timeout", "10m"], inv, &[]);
    assert_eq!(ran.code, Some(0), "up failed:\n{}", ran.stderr);
}

#[test]
fn adding_a_worker_touches_no_other_worker() {
    let tb = support::real_testbed(3);
    let decls = support::article_decls();
    let version = support::real_version();
    let inventory = |decls: &[Decl]| {
        Inventory {
            version: &version,
            ..Inventory::new(decls)
        }
        .write(&tb)
    };
    let fresh = Snapshot::of(&tb, "node1");
    up(&tb, &inventory(&decls[..2]));
    let node3 = Snapshot::of(&tb, "node1")
        .of_host("node3")
        .changes(&fresh.of_host("node3"));
    assert!(
        node3.is_empty(),
        "node3 is not in the inventory yet and was changed:\n{}",
        node3.join("\n")
    );

    let before = Snapshot::of(&tb, "node1");
    up(&tb, &inventory(&decls));
    let after = Snapshot::of(&tb, "node1");
    // The other hosts: nothing changed on them.
    for host in ["node1", "node2"] {
        let changed = after.of_host(host).changes(&before.of_host(host));
        assert!(
            changed.is_empty(),
            "{host} was changed:\n{}",
            changed.join("\n")
        );
    }
    assert!(
        !after
            .of_host("node3")
            .changes(&before.of_host("node3"))
            .is_empty(),
        "node3 was not set up"
    );
    // The cluster: new objects (node3, its pods, the join token), no existing one
    // changed or removed; but the bootstrap signer's signature of cluster-info for the
    // new token (kube-controller-manager's bootstrapsigner adds `jws-kubeconfig-<id>`).
    let cluster = after.of_host("cluster").changes(&before.of_host("cluster"));
    let touched: Vec<&String> = cluster
        .iter()
        .filter(|l| !l.starts_with('+'))
        .filter(|l| {
            !l.starts_with("~ cluster v1 ConfigMap kube-public/cluster-info.data.jws-kubeconfig-")
        })
        .collect();
    assert!(
        touched.is_empty(),
        "adding node3 changed existing API objects:\n{touched:#?}"
    );
    assert!(
        cluster
            .iter()
            .any(|l| l.starts_with("+ cluster v1 Node /node3:")),
        "{cluster:#?}"
    );
    // node3 as the real API server has it: joined at the release, Ready, with the
    // inventory's labels and its taint.
    let node: serde_json::Value = serde_json::from_str(&support::exec(
        &tb,
        "node1",
        &[
            "kubectl",
            "--kubeconfig",
            "/etc/kubernetes/admin.conf",
            "get",
            "node",
            "node3",
            "-o",
            "json",
        ],
    ))
    .unwrap();
    let labels = &node["metadata"]["labels"];
    assert_eq!(labels["type"], "wordpress", "{node:#}");
    assert_eq!(labels["example.com/tier"], "db", "{node:#}");
    let ready = node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready");
    assert_eq!(
        ready.map(|c| &c["status"]),
        Some(&"True".into()),
        "{node:#}"
    );
    assert_eq!(
        node["status"]["nodeInfo"]["kubeletVersion"],
        format!("v{version}").as_str()
    );
    assert_eq!(
        support::node_taints(&node),
        ["dedicated=db:NoSchedule"],
        "{node:#}"
    );
}
