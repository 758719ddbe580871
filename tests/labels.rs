//! End-to-end: labels and taints are declarative for the keys the tool manages.
//!
//! A label or taint removed from the inventory is removed from the node; labels and
//! taints set by someone else stay. The managed keys are recorded on the node in the
//! `bootstrap.dev/managed-labels` / `bootstrap.dev/managed-taints` annotations. Runs on
//! the REAL control plane (issue 9: real kubeadm init/join, kube-apiserver, kubectl;
//! tests/up_real.rs): the Node objects, labels, taints and annotations asserted are the
//! real API server's. Needs root and the built release (the first run builds it).

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{Decl, Inventory, KUBECTL};
use testbed::Testbed;

/// Writes a 2-host inventory at [`support::real_version`]: node1 a control plane with no
/// labels and no taints, node2 the `worker`.
fn inventory(tb: &Testbed, worker: Decl) -> PathBuf {
    let version = support::real_version();
    Inventory {
        version: &version,
        ..Inventory::new(&[Decl::new("control-plane", &[], Some(&[])), worker])
    }
    .write(tb)
}

/// `bootstrap up --timeout 10m INVENTORY` (the real control plane's first convergence
/// takes minutes on a loaded machine, like tests/up_real.rs): whether it exited 0, and
/// its stderr.
fn up(tb: &Testbed, inv: &Path) -> (bool, String) {
    let ran = support::run_on(tb, &["up", "--timeout", "10m"], inv, &[]);
    (ran.code == Some(0), ran.stderr)
}

fn kubectl(tb: &Testbed, args: &[&str]) -> String {
    let mut argv = KUBECTL.to_vec();
    argv.extend(args);
    let out = tb.exec("node1", &argv).unwrap();
    assert!(
        out.status.success(),
        "{argv:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn node2(tb: &Testbed) -> Value {
    serde_json::from_str(&kubectl(tb, &["get", "node", "node2", "-o", "json"])).unwrap()
}

#[test]
fn removed_labels_and_taints_go_and_others_stay() {
    let tb = support::real_testbed(2);
    let inv = inventory(
        &tb,
        Decl::new(
            "worker",
            &[("type", "mysql"), ("tier", "a")],
            Some(&["dedicated=db:NoSchedule"]),
        ),
    );
    let (ok, err) = up(&tb, &inv);
    assert!(ok, "first up failed:\n{err}");
    let n = node2(&tb);
    assert_eq!(n["metadata"]["labels"]["tier"], "a");
    assert_eq!(
        n["metadata"]["annotations"]["bootstrap.dev/managed-labels"],
        "tier,type"
    );
    assert_eq!(
        n["metadata"]["annotations"]["bootstrap.dev/managed-taints"],
        "dedicated:NoSchedule"
    );
    assert_eq!(support::node_taints(&n), ["dedicated=db:NoSchedule"]);

    // Someone else labels and taints the node by hand.
    kubectl(&tb, &["label", "node", "node2", "owner=me"]);
    kubectl(&tb, &["taint", "node", "node2", "extra=x:NoExecute"]);

    // `tier` and the taint leave the inventory: plan says what goes and why.
    let inv = inventory(&tb, Decl::new("worker", &[("type", "mysql")], Some(&[])));
    let ran = support::run_on(&tb, &["plan"], &inv, &[]);
    let plan = ran.stderr;
    assert_eq!(ran.code, Some(2), "plan: changes pending, exit 2:\n{plan}");
    assert!(
        plan.contains("label tier was declared before and is not any more"),
        "{plan}"
    );
    assert!(
        plan.contains("taint dedicated:NoSchedule was declared before and is not any more"),
        "{plan}"
    );
    assert!(!plan.contains("owner"), "{plan}");
    assert!(!plan.contains("extra"), "{plan}");

    let (ok, err) = up(&tb, &inv);
    assert!(ok, "second up failed:\n{err}");
    let n = node2(&tb);
    let labels = &n["metadata"]["labels"];
    assert!(labels.get("tier").is_none(), "{labels:#}");
    assert_eq!(labels["type"], "mysql");
    assert_eq!(labels["owner"], "me");
    assert_eq!(support::node_taints(&n), ["extra=x:NoExecute"]);
    let ann = &n["metadata"]["annotations"];
    assert_eq!(ann["bootstrap.dev/managed-labels"], "type");
    assert_eq!(ann["bootstrap.dev/managed-taints"], "");

    // A further run changes nothing on any host or in the cluster.
    support::snapshot::assert_converged_up(&tb, &inv, "the third up");
}
