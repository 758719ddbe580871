//! End-to-end: `bootstrap status` against a 2-host testbed after `up`.
//!
//! Status must read the real cluster: both nodes Ready with the kubelet version and the
//! inventory's `type` label as a column, the control plane's certificate expiry from
//! `kubeadm certs check-expiration`, every host in sync; a label changed by hand shows
//! as drift on that host; `--output json` has docs/status.md's fields; exit 0 all along.
//!
//! Runs on the REAL control plane (issue 9; tests/up_real.rs): the Nodes are the real API
//! server's and the certificates table is what the real `kubeadm certs check-expiration`
//! prints. Needs root and the built release (the first run builds it).

mod support;

use std::path::PathBuf;

use serde_json::Value;
use support::{real_testbed, real_version, run_on, Inventory};
use testbed::Testbed;

const KUBECTL: &str = "kubectl --kubeconfig /etc/kubernetes/admin.conf";

/// Writes the inventory at [`real_version`]: node1 control plane (type=mysql,
/// untainted), node2 worker (type=wordpress).
fn inventory(tb: &Testbed) -> PathBuf {
    let version = real_version();
    Inventory {
        version: &version,
        ..Inventory::new(&support::article_decls()[..2])
    }
    .write(tb)
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
    let tb = real_testbed(2);
    let inv = inventory(&tb);
    let up = run_on(&tb, &["up", "--timeout", "10m"], &inv, &[]);
    assert_eq!(up.code, Some(0), "up failed:\n{}", up.stderr);

    // After up: both Ready, the version, the type column, certificates, in sync.
    let run = run_on(&tb, &["status"], &inv, &[]);
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
        assert_eq!(r[3], format!("v{}", real_version()), "{}", run.stdout);
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
    let run = run_on(&tb, &["status"], &inv, &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(row(&run.stdout, "node2")[4], "other", "{}", run.stdout);
    let drift = drift_line(&run.stdout, "node2");
    assert!(drift != "in sync" && drift.contains("type"), "{drift}");
    assert_eq!(drift_line(&run.stdout, "node1"), "in sync");

    // JSON: the documented fields.
    let run = run_on(&tb, &["status", "--output", "json"], &inv, &[]);
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
    // What the real `kubeadm certs check-expiration` lists, in its order: the
    // authorities kubeadm init made, and among the certificates the kubeconfigs and the
    // control plane's and etcd's serving and client certificates, each signed by one of
    // those authorities and none missing.
    let names = |k: &str| -> Vec<String> {
        certs[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names("authorities"),
        ["ca", "etcd-ca", "front-proxy-ca"],
        "{certs:#}"
    );
    let listed = names("certificates");
    assert!(listed.len() >= 10, "{certs:#}");
    for name in [
        "admin.conf",
        "apiserver",
        "apiserver-kubelet-client",
        "controller-manager.conf",
        "etcd-server",
        "front-proxy-client",
        "scheduler.conf",
    ] {
        assert!(listed.iter().any(|l| l == name), "{name} in {listed:?}");
    }
    for c in certs["certificates"].as_array().unwrap() {
        assert_eq!(c["missing"], false, "{c:#}");
        let by = c["authority"].as_str().unwrap_or("");
        assert!(["ca", "etcd-ca", "front-proxy-ca"].contains(&by), "{c:#}");
    }
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
    let tb = real_testbed(2);
    let inv = inventory(&tb);
    let run = run_on(&tb, &["status"], &inv, &[]);
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
    let run = run_on(&tb, &["status", "--output", "json"], &inv, &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(doc["certificates"].is_null(), "{doc:#}");
    assert_eq!(doc["nodes"][0]["joined"], false);
    assert_eq!(doc["drift"][1]["in_sync"], false);

    tb.stop("node2").unwrap();
    let run = run_on(&tb, &["status", "--output", "json"], &inv, &[]);
    assert_eq!(run.code, Some(4), "unreachable, as for up: {}", run.stderr);
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
