//! End-to-end: labels and taints are declarative for the keys the tool manages.
//!
//! A label or taint removed from the inventory is removed from the node; labels and
//! taints set by someone else stay. The managed keys are recorded on the node in the
//! `bootstrap.dev/managed-labels` / `bootstrap.dev/managed-taints` annotations. Needs
//! root and the testbed's stand-in binary (`cargo build -p testbed`), like tests/up.rs.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use testbed::Testbed;

const KUBECTL: &[&str] = &["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf"];

/// Writes a 2-host inventory: node1 a control plane with no labels and no taints, node2 a
/// worker with `worker` (YAML for its labels and taints, indented 4).
fn inventory(tb: &Testbed, worker: &str) -> PathBuf {
    let hosts = tb.hosts();
    let (h0, h1) = (&hosts[0], &hosts[1]);
    let y = format!(
        "cluster:\n  name: e2e\n  kubernetesVersion: 1.34.2\n  calico: {{version: v3.30.3}}\n\
         ssh:\n  user: {}\n  port: {}\n  identityFile: {}\n  knownHostsFile: {}\nhosts:\n\
         \x20 - name: {}\n    address: {}\n    role: control-plane\n    taints: []\n\
         \x20 - name: {}\n    address: {}\n    role: worker\n{worker}",
        h0.user,
        h0.port,
        json(&h0.identity_file.display().to_string()),
        json(&h0.known_hosts.display().to_string()),
        h0.name,
        h0.address,
        h1.name,
        h1.address,
    );
    let path = tb.dir().join("inventory.yaml");
    std::fs::write(&path, y).unwrap();
    path
}

fn json(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Runs the built binary: `bootstrap ARGS INVENTORY --log-dir <testbed>/runs`; returns
/// (success, stderr).
fn bootstrap(tb: &Testbed, args: &[&str], inv: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .args(args)
        .arg(inv)
        .arg("--log-dir")
        .arg(tb.dir().join("runs"))
        .env("CI", "1")
        .output()
        .expect("run bootstrap");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!(
        "--- bootstrap {args:?} exited {:?}; stderr:\n{stderr}",
        out.status
    );
    // 0, or 2 for a plan with changes pending; every other code is a failure.
    (matches!(out.status.code(), Some(0) | Some(2)), stderr)
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

fn taints(n: &Value) -> Vec<String> {
    n["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|t| {
            format!(
                "{}:{}",
                t["key"].as_str().unwrap(),
                t["effect"].as_str().unwrap()
            )
        })
        .filter(|t| !t.starts_with("node.kubernetes.io/"))
        .collect()
}

#[test]
fn removed_labels_and_taints_go_and_others_stay() {
    let tb = Testbed::builder()
        .hosts(2)
        .user("root")
        .build()
        .unwrap_or_else(|e| {
            panic!("cannot build the testbed (run as root; `cargo build -p testbed`): {e}")
        });
    let inv = inventory(
        &tb,
        "    labels: {type: mysql, tier: a}\n    taints: [\"dedicated=db:NoSchedule\"]\n",
    );
    let (ok, err) = bootstrap(&tb, &["up"], &inv);
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
    assert_eq!(taints(&n), ["dedicated:NoSchedule"]);

    // Someone else labels and taints the node by hand.
    kubectl(&tb, &["label", "node", "node2", "owner=me"]);
    kubectl(&tb, &["taint", "node", "node2", "extra=x:NoExecute"]);

    // `tier` and the taint leave the inventory: plan says what goes and why.
    let inv = inventory(&tb, "    labels: {type: mysql}\n    taints: []\n");
    let (ok, plan) = bootstrap(&tb, &["plan"], &inv);
    assert!(ok, "plan failed:\n{plan}");
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

    let (ok, err) = bootstrap(&tb, &["up"], &inv);
    assert!(ok, "second up failed:\n{err}");
    let n = node2(&tb);
    let labels = &n["metadata"]["labels"];
    assert!(labels.get("tier").is_none(), "{labels:#}");
    assert_eq!(labels["type"], "mysql");
    assert_eq!(labels["owner"], "me");
    assert_eq!(taints(&n), ["extra:NoExecute"]);
    let ann = &n["metadata"]["annotations"];
    assert_eq!(ann["bootstrap.dev/managed-labels"], "type");
    assert_eq!(ann["bootstrap.dev/managed-taints"], "");

    // A further run changes nothing on any host.
    let marks: Vec<usize> = tb
        .hosts()
        .iter()
        .map(|h| tb.audit(&h.name).unwrap().len())
        .collect();
    let (ok, err) = bootstrap(&tb, &["up"], &inv);
    assert!(ok, "third up failed:\n{err}");
    assert!(err.contains("nothing to do"), "{err}");
    for (h, mark) in tb.hosts().iter().zip(marks) {
        let changed: Vec<_> = tb.audit(&h.name).unwrap()[mark..]
            .iter()
            .filter(|r| r.changed)
            .map(|r| r.argv.clone())
            .collect();
        assert!(changed.is_empty(), "{}: {changed:#?}", h.name);
    }
}
