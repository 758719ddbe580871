//! End-to-end: `bootstrap kubeconfig` against the testbed, after `up` and before it.
//!
//! Runs on the REAL control plane (issue 9; tests/up_real.rs): the admin.conf read is the
//! one real `kubeadm init` wrote, and the kubeconfig is proven by using it: the real
//! kubectl inside a testbed host (this machine has none) lists the nodes through it from
//! the real API server. Needs root and the built release (the first run builds it).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_yaml::Value;
use testbed::Testbed;

use support::{real_testbed_as, real_version, run_on, Inventory};

/// An inventory for the testbed at [`real_version`] (cluster `e2e-kc`, which names the
/// kubeconfig's context): the first host the control plane, the rest workers.
fn inventory(tb: &Testbed) -> PathBuf {
    let decls = support::plain_decls(tb.hosts().len() - 1);
    let version = real_version();
    Inventory {
        name: "e2e-kc",
        version: &version,
        ..Inventory::new(&decls)
    }
    .write(tb)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every file under `dir`, concatenated.
fn all_text(dir: &Path) -> String {
    support::files_under(dir)
        .into_iter()
        .map(|(_, text)| text)
        .collect()
}

#[test]
fn kubeconfig_after_up_reaches_the_cluster_and_merges() {
    // A non-root login: admin.conf is root's (0600), so the read must go through sudo.
    let tb = real_testbed_as(2, "ubuntu");
    let hosts = tb.hosts();
    let (cp, worker) = (&hosts[0], &hosts[1]);
    let inv = inventory(&tb);
    let runs = tb.dir().join("runs");
    let up = run_on(&tb, &["up", "--timeout", "10m"], &inv, &[]);
    assert!(up.ok(), "up failed:\n{}", up.stderr);

    // -o FILE: 0600, the endpoint, named after the cluster.
    let file = tb.dir().join("out").join("kc");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let run = run_on(&tb, &["kubeconfig", "-o", s(&file)], &inv, &[]);
    assert!(run.ok());
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&file).unwrap();
    let kc: Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(kc["current-context"], "e2e-kc");
    assert_eq!(kc["contexts"][0]["name"], "e2e-kc");
    assert_eq!(kc["contexts"][0]["context"]["cluster"], "e2e-kc");
    assert_eq!(kc["contexts"][0]["context"]["user"], "e2e-kc-admin");
    assert_eq!(kc["users"][0]["name"], "e2e-kc-admin");
    assert_eq!(kc["clusters"][0]["name"], "e2e-kc");
    assert_eq!(
        kc["clusters"][0]["cluster"]["server"],
        format!("https://{}:6443", cp.address).as_str()
    );
    // The cluster's CA is the one real `kubeadm init` made on the control plane.
    let ca = support::exec(
        &tb,
        &cp.name,
        &["base64", "-w0", "/etc/kubernetes/pki/ca.crt"],
    );
    assert_eq!(
        kc["clusters"][0]["cluster"]["certificate-authority-data"],
        ca.as_str()
    );
    let key = kc["users"][0]["user"]["client-key-data"]
        .as_str()
        .expect("client-key-data")
        .to_string();
    assert!(key.len() > 20);

    // Without -o: the same kubeconfig on stdout, nothing else there.
    let run = run_on(&tb, &["kubeconfig"], &inv, &[]);
    assert!(run.ok());
    let printed: Value = serde_yaml::from_str(&run.stdout).unwrap();
    assert_eq!(printed, kc);

    // It works: kubectl on the worker, with only this file, lists both nodes.
    let script = format!("cat > /root/kc <<'EOF'\n{text}EOF\nchmod 600 /root/kc");
    let out = tb.exec(&worker.name, &["sh", "-c", &script]).unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = tb
        .exec(
            &worker.name,
            &["kubectl", "--kubeconfig", "/root/kc", "get", "nodes"],
        )
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kubectl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for h in &hosts {
        assert!(listed.contains(&h.name), "{} not in:\n{listed}", h.name);
    }

    // --merge into a HOME whose kubeconfig has another cluster and is using it.
    let home = tb.dir().join("home");
    std::fs::create_dir_all(home.join(".kube")).unwrap();
    let other = "apiVersion: v1\nkind: Config\nclusters:\n- name: other\n  cluster:\n    server: https://192.0.2.1:6443\ncontexts:\n- name: other\n  context:\n    cluster: other\n    user: someone\ncurrent-context: other\nusers:\n- name: someone\n  user:\n    token: abc\npreferences: {}\n";
    let config = home.join(".kube/config");
    std::fs::write(&config, other).unwrap();
    // The file's mode is kept, as kubectl (which writes in place) keeps it.
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
    for _ in 0..2 {
        let run = run_on(
            &tb,
            &["kubeconfig", "--merge"],
            &inv,
            &[("HOME", Some(s(&home)))],
        );
        assert!(run.ok());
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
    let merged: Value = serde_yaml::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(merged["current-context"], "other");
    let names = |list: &str| -> Vec<String> {
        merged[list]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("contexts"), ["other", "e2e-kc"]);
    assert_eq!(names("clusters"), ["other", "e2e-kc"]);
    assert_eq!(names("users"), ["someone", "e2e-kc-admin"]);
    assert_eq!(merged["users"][0]["user"]["token"], "abc");
    assert_eq!(merged["contexts"][1], kc["contexts"][0]);
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);

    // --merge without -o writes where kubectl would in $KUBECONFIG's list: none exists,
    // so the LAST one (client-go GetDefaultFilename), a new file where the context
    // becomes current.
    let first = tb.dir().join("kc-first");
    let second = tb.dir().join("kc-second");
    let list = std::env::join_paths([&first, &second]).unwrap();
    let run = run_on(
        &tb,
        &["kubeconfig", "--merge"],
        &inv,
        &[("KUBECONFIG", list.to_str()), ("HOME", Some(s(&home)))],
    );
    assert!(run.ok());
    let written: Value = serde_yaml::from_str(&std::fs::read_to_string(&second).unwrap()).unwrap();
    assert_eq!(written["current-context"], "e2e-kc");
    assert_eq!(written["users"], kc["users"]);
    assert!(!first.exists());

    // Even the most verbose logging keeps the key out of stderr.
    let run = run_on(&tb, &["-vv", "kubeconfig"], &inv, &[]);
    assert!(run.ok());
    assert!(
        !run.stderr.contains(&key),
        "client-key-data on stderr with -vv"
    );
    assert!(run.stdout.contains(&key));

    // The credentials were never logged.
    let logs = all_text(&runs);
    assert!(
        logs.contains("read admin.conf"),
        "the read is in the run log"
    );
    assert!(!logs.contains(&key), "client-key-data in the run logs");
    assert!(!run.stderr.contains(&key));
}

#[test]
fn kubeconfig_before_up_says_so() {
    let tb = real_testbed_as(1, "root");
    let inv = inventory(&tb);
    let out = tb.dir().join("kc");
    let run = run_on(&tb, &["kubeconfig", "-o", s(&out)], &inv, &[]);
    assert!(!run.ok());
    let host = &tb.hosts()[0];
    assert!(run.stderr.contains("not initialised"), "{}", run.stderr);
    assert!(run.stderr.contains(&host.name), "{}", run.stderr);
    assert!(run.stderr.contains("/etc/kubernetes/admin.conf"));
    assert!(run.stderr.contains("bootstrap up"), "{}", run.stderr);
    assert!(!out.exists(), "nothing written");
    assert!(run.stdout.is_empty());
}
