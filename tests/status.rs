//! End-to-end: `bootstrap status` against a 2-host testbed after `up`.
//!
//! Status must read the real cluster: both nodes Ready with the kubelet version and the
//! inventory's `type` label as a column, the control plane's certificate expiry from
//! `kubeadm certs check-expiration`, every host in sync; a label changed by hand shows
//! as drift on that host; `--output json` has docs/status.md's fields; exit 0 all along.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use testbed::Testbed;

const VERSION: &str = "1.34.2";
const CALICO: &str = "v3.30.3";
const KUBECTL: &str = "kubectl --kubeconfig /etc/kubernetes/admin.conf";

/// Writes the inventory: node1 control plane (type=mysql, untainted), node2 worker
/// (type=wordpress).
fn inventory(tb: &Testbed) -> PathBuf {
    let h0 = &tb.hosts()[0];
    let q = |s: &Path| serde_json::to_string(&s.display().to_string()).unwrap();
    let mut y = format!(
        "cluster:\n  name: e2e\n  kubernetesVersion: {VERSION}\n  calico: {{version: {CALICO}}}\n\
         ssh:\n  user: {}\n  port: {}\n  identityFile: {}\n  knownHostsFile: {}\nhosts:\n",
        h0.user,
        h0.port,
        q(&h0.identity_file),
        q(&h0.known_hosts),
    );
    for (name, role, kind, taints) in [
        ("node1", "control-plane", "mysql", "\n    taints: []"),
        ("node2", "worker", "wordpress", ""),
    ] {
        let h = tb.host(name).unwrap();
        y += &format!(
            "  - name: {name}\n    address: {}\n    role: {role}\n    labels: {{type: {kind}}}{taints}\n",
            h.address
        );
    }
    let path = tb.dir().join("inventory.yaml");
    std::fs::write(&path, y).unwrap();
    path
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the built binary: `bootstrap ARGS INVENTORY --log-dir <testbed>/runs`.
fn bootstrap(tb: &Testbed, args: &[&str], inv: &Path) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .args(args)
        .arg(inv)
        .arg("--log-dir")
        .arg(tb.dir().join("runs"))
        .env("CI", "1")
        .env_remove("BOOTSTRAP_STATUS_OUTPUT")
        .output()
        .expect("run bootstrap");
    let run = Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!(
        "--- bootstrap {args:?} exited {:?}; stdout:\n{}\nstderr:\n{}",
        run.code, run.stdout, run.stderr
    );
    run
}

/// The table row of `name` in status's text, split on runs of 2+ spaces.
fn row(stdout: &str, name: &str) -> Vec<String> {
    let line = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row for {name} in:\n{stdout}"));
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect()
}

/// The drift line of `host`: what follows `  host: ` after the `drift:` heading.
fn drift_line(stdout: &str, host: &str) -> String {
    let after = stdout
        .split_once("\ndrift:\n")
        .unwrap_or_else(|| panic!("no drift section in:\n{stdout}"))
        .1;
    after
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{host}: ")))
        .unwrap_or_else(|| panic!("no drift line for {host} in:\n{stdout}"))
        .to_string()
}

#[test]
fn status_shows_nodes_certificates_and_drift() {
    let tb = Testbed::builder().hosts(2).build().unwrap_or_else(|e| {
        panic!("cannot build the testbed (run as root; cargo build -p testbed): {e}")
    });
    let inv = inventory(&tb);
    let up = bootstrap(&tb, &["up"], &inv);
    assert_eq!(up.code, Some(0), "up failed:\n{}", up.stderr);

    // After up: both Ready, the version, the type column, certificates, in sync.
    let run = bootstrap(&tb, &["status"], &inv);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let header = row(&run.stdout, "NAME");
    assert_eq!(
        header,
        ["NAME", "ROLE", "READY", "VERSION", "TYPE", "TAINTS"],
        "{}",
        run.stdout
    );
    for (name, role, kind) in [
        ("node1", "control-plane", "mysql"),
        ("node2", "worker", "wordpress"),
    ] {
        let r = row(&run.stdout, name);
        assert_eq!(r[1], role, "{}", run.stdout);
        assert_eq!(r[2], "Ready", "{}", run.stdout);
        assert_eq!(r[3], format!("v{VERSION}"), "{}", run.stdout);
        assert_eq!(r[4], kind, "{}", run.stdout);
        assert_eq!(drift_line(&run.stdout, name), "in sync", "{}", run.stdout);
    }
    assert!(
        run.stdout
            .contains("certificates (kubeadm certs check-expiration on node1):"),
        "{}",
        run.stdout
    );
    let earliest = run
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("earliest certificate:"))
        .unwrap_or_else(|| panic!("no earliest certificate in:\n{}", run.stdout));
    assert!(
        earliest.contains(" expires ") && earliest.contains("(residual 36"),
        "{earliest}"
    );
    let ca = run
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("earliest CA:"))
        .unwrap_or_else(|| panic!("no CA in:\n{}", run.stdout));
    assert!(ca.contains("(residual 9y)"), "{ca}");

    // A label changed by hand is drift on that node, named with the label.
    let out = tb
        .exec(
            "node1",
            &[
                "sh",
                "-c",
                &format!("{KUBECTL} label node node2 type=other --overwrite"),
            ],
        )
        .unwrap();
    assert!(out.status.success(), "kubectl label: {out:?}");
    let run = bootstrap(&tb, &["status"], &inv);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(row(&run.stdout, "node2")[4], "other", "{}", run.stdout);
    let drift = drift_line(&run.stdout, "node2");
    assert!(drift != "in sync" && drift.contains("type"), "{drift}");
    assert_eq!(drift_line(&run.stdout, "node1"), "in sync");

    // JSON: the documented fields.
    let run = bootstrap(&tb, &["status", "--output", "json"], &inv);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let doc: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", run.stdout));
    let mut keys: Vec<&str> = doc
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "certificates",
            "command",
            "drift",
            "exit_code",
            "label_columns",
            "nodes",
            "schema"
        ]
    );
    assert_eq!(doc["schema"], "bootstrap/status/v1");
    support::assert_valid(&doc);
    assert_eq!(doc["label_columns"], serde_json::json!(["type"]));
    let nodes = doc["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{doc:#}");
    for n in nodes {
        for k in ["name", "role", "version"] {
            assert!(n[k].is_string(), "{k} in {n:#}");
        }
        for k in ["managed", "joined", "ready"] {
            assert_eq!(n[k], true, "{k} in {n:#}");
        }
        assert!(
            n["labels"]["type"].is_string() && n["taints"].is_array(),
            "{n:#}"
        );
    }
    assert_eq!(nodes[1]["labels"]["type"], "other");
    let certs = &doc["certificates"];
    assert_eq!(certs["host"], "node1");
    for k in ["earliest", "earliest_ca"] {
        for f in ["name", "expires", "residual"] {
            assert!(certs[k][f].is_string(), "{k}.{f} in {certs:#}");
        }
    }
    assert!(certs["certificates"].as_array().unwrap().len() >= 10);
    assert_eq!(certs["authorities"].as_array().unwrap().len(), 3);
    let drift = doc["drift"].as_array().unwrap();
    assert_eq!(drift[0]["host"], "node1");
    assert_eq!(drift[0]["in_sync"], true);
    assert_eq!(drift[1]["in_sync"], false);
    let diffs = drift[1]["differences"].as_array().unwrap();
    assert!(
        diffs.iter().any(|d| d.as_str().unwrap().contains("type")),
        "{diffs:?}"
    );
}

/// Before `up`: nothing joined, no certificates, every host drifts, still exit 0; an
/// unreachable host is an error (exit 1) with `up`'s message, and no document.
#[test]
fn status_before_up_and_with_a_host_down() {
    let tb = Testbed::builder().hosts(2).build().unwrap_or_else(|e| {
        panic!("cannot build the testbed (run as root; cargo build -p testbed): {e}")
    });
    let inv = inventory(&tb);
    let run = bootstrap(&tb, &["status"], &inv);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    for name in ["node1", "node2"] {
        let r = row(&run.stdout, name);
        assert_eq!(r[2], "not joined", "{}", run.stdout);
        let drift = drift_line(&run.stdout, name);
        assert!(drift.contains("kubernetes-packages:"), "{drift}");
    }
    assert!(
        run.stdout.contains("certificates: none yet"),
        "{}",
        run.stdout
    );
    let run = bootstrap(&tb, &["status", "--output", "json"], &inv);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(doc["certificates"].is_null(), "{doc:#}");
    assert_eq!(doc["nodes"][0]["joined"], false);
    assert_eq!(doc["drift"][1]["in_sync"], false);

    tb.stop("node2").unwrap();
    let run = bootstrap(&tb, &["status", "--output", "json"], &inv);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stdout.is_empty(),
        "no document on error: {}",
        run.stdout
    );
    assert!(
        run.stderr.contains("node2") && run.stderr.contains("cannot connect"),
        "{}",
        run.stderr
    );
}
