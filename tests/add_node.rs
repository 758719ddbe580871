//! End-to-end: adding a worker to a running cluster touches nothing else (issue 4; peers'
//! users complain that it restarts things on the whole cluster: KubeOne #2832, Kubespray
//! #4397 #8503). The hosts' audit logs say what ran where and whether it changed
//! anything. Needs root and the testbed's stand-in binary, like tests/up.rs.

mod support;

use testbed::{AuditRecord, Testbed};

fn up(tb: &Testbed, inv: &std::path::Path) {
    let ran = support::run_on(tb, &["up"], inv, &[]);
    assert_eq!(ran.code, Some(0), "up failed:\n{}", ran.stderr);
}

/// What `host` ran after its first `mark` audit records that changed something.
fn changed_since(tb: &Testbed, host: &str, mark: usize) -> Vec<AuditRecord> {
    tb.audit(host).unwrap()[mark..]
        .iter()
        .filter(|r| r.changed)
        .cloned()
        .collect()
}

#[test]
fn adding_a_worker_touches_no_other_worker() {
    let tb = support::testbed(3, "root");
    let decls = support::article_decls();
    up(&tb, &support::inventory(&tb, &decls[..2]));
    let untouched = tb.audit("node3").unwrap();
    assert!(
        untouched.iter().all(|r| r.kind == "ssh" || !r.changed),
        "node3 is not in the inventory yet and was changed: {untouched:#?}"
    );

    let marks: Vec<usize> = ["node1", "node2", "node3"]
        .iter()
        .map(|h| tb.audit(h).unwrap().len())
        .collect();
    up(&tb, &support::inventory(&tb, &decls));

    // The other worker: nothing changed, and it was only read.
    let node2 = changed_since(&tb, "node2", marks[1]);
    assert!(node2.is_empty(), "node2 was changed: {node2:#?}");
    // The control plane: a join token, and node3's labels, taints and the annotations
    // that record them; nothing else.
    for r in changed_since(&tb, "node1", marks[0]) {
        let token = r.argv[0] == "kubeadm" && r.argv.iter().any(|a| a == "token");
        let about_node3 = r.argv[0] == "kubectl"
            && r.argv
                .iter()
                .any(|a| ["label", "taint", "annotate"].contains(&a.as_str()))
            && r.argv.iter().any(|a| a == "node3" || a == "node/node3");
        assert!(
            token || about_node3,
            "the control plane ran more than a token and node3's labels/taints: {r:#?}"
        );
    }
    assert!(
        !changed_since(&tb, "node3", marks[2]).is_empty(),
        "node3 was not set up"
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
