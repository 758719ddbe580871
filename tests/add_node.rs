//! End-to-end: adding a worker to a running cluster touches nothing else (issue 4; peers'
//! users complain that it restarts things on the whole cluster: KubeOne #2832, Kubespray
//! #4397 #8503). What changed is observed on the hosts and in the API
//! (tests/support/snapshot.rs). Needs root and the testbed's stand-in binary, like
//! tests/up.rs.

mod support;

use support::snapshot::Snapshot;
use testbed::Testbed;

fn up(tb: &Testbed, inv: &std::path::Path) {
    let ran = support::run_on(tb, &["up"], inv, &[]);
    assert_eq!(ran.code, Some(0), "up failed:\n{}", ran.stderr);
}

#[test]
fn adding_a_worker_touches_no_other_worker() {
    let tb = support::testbed(3, "root");
    let decls = support::article_decls();
    let fresh = Snapshot::of(&tb, "node1");
    up(&tb, &support::inventory(&tb, &decls[..2]));
    let node3 = Snapshot::of(&tb, "node1")
        .of_host("node3")
        .changes(&fresh.of_host("node3"));
    assert!(
        node3.is_empty(),
        "node3 is not in the inventory yet and was changed:\n{}",
        node3.join("\n")
    );

    let before = Snapshot::of(&tb, "node1");
    up(&tb, &support::inventory(&tb, &decls));
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
    let node = support::exec(
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
            "jsonpath={.metadata.labels.type} {.status.conditions[?(@.type==\"Ready\")].status}",
        ],
    );
    assert_eq!(node, "wordpress True");
}
