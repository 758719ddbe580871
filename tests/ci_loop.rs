//! End-to-end: issue #5's CI loop, twice in a row on the same 3 hosts, the way
//! docs/ci.md runs it: `up --output json` (checked against docs/schema/up.json) ->
//! `kubeconfig -o FILE` -> the WordPress example's pods where the labels say ->
//! `reset --yes --output json` -> and `up` again on the reset hosts. Then every byte the
//! commands printed and every run-log file is searched for the real secrets: the join
//! tokens that existed, and the admin kubeconfig's credentials.
//!
//! On the REAL control plane (issue 9: the real kubeadm, kubectl, API server, etcd,
//! controller-manager and scheduler; testbed/STANDINS-kubelet-real.md). Needs root and
//! the built release (the first run builds it).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value;
use support::*;
use testbed::Testbed;

/// Every command's output, and the secrets that existed while they ran.
#[derive(Default)]
struct Loop {
    outputs: Vec<(String, String)>,
    secrets: Vec<(String, String)>,
}

impl Loop {
    /// Runs `bootstrap ARGS`, keeping its stdout and stderr for the secrets check.
    fn run(&mut self, args: &[&str]) -> Ran {
        let ran = run_bootstrap(args, &[]);
        let what = args.join(" ");
        self.outputs
            .push((format!("stdout of {what}"), ran.stdout.clone()));
        self.outputs
            .push((format!("stderr of {what}"), ran.stderr.clone()));
        ran
    }

    /// Notes the secrets of the cluster as it is now (read on the control plane).
    fn collect_secrets(&mut self, tb: &Testbed, cp: &str) {
        let list = exec(tb, cp, &["kubeadm", "token", "list"]);
        let tokens: Vec<String> = list
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect();
        assert!(!tokens.is_empty(), "no bootstrap token on {cp}:\n{list}");
        for token in tokens {
            let secret = token.split('.').nth(1).unwrap_or(&token).to_string();
            self.secrets
                .push((format!("join token {token}"), token.clone()));
            self.secrets.push((format!("secret of {token}"), secret));
        }
        let admin = exec(tb, cp, &["cat", "/etc/kubernetes/admin.conf"]);
        let conf: serde_yaml::Value = serde_yaml::from_str(&admin).unwrap();
        let mut found = 0;
        for user in conf["users"].as_sequence().unwrap() {
            for field in ["client-key-data", "client-certificate-data", "token"] {
                if let Some(v) = user["user"][field].as_str() {
                    self.secrets
                        .push((format!("admin.conf {field}"), v.to_string()));
                    found += 1;
                }
            }
        }
        assert!(found >= 2, "no credentials in admin.conf:\n{admin}");
    }
}

/// The node entry named `name` in the up document.
fn node<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no node {name} in {doc:#}"))
}

/// `up --output json`: exit 0, a valid document saying every host is a Ready node with
/// the inventory's labels and taints.
fn up(l: &mut Loop, inv: &str, runs: &str, decls: &[Decl]) -> Value {
    let ran = l.run(&[
        "up",
        inv,
        "--output",
        "json",
        "--timeout",
        "10m",
        "--log-dir",
        runs,
    ]);
    assert_eq!(ran.code, Some(0), "up failed:\n{}", ran.stderr);
    let doc = ran.document();
    assert_eq!(doc["schema"], "bootstrap/up/v1");
    assert_eq!(doc["outcome"], "success");
    assert!(doc["error"].is_null());
    let version = real_version();
    assert_eq!(doc["cluster"]["version"], version.as_str());
    assert!(Path::new(doc["run_log"].as_str().unwrap()).is_dir());
    assert!(doc["kubeconfig"].is_string(), "{doc:#}");
    for (i, d) in decls.iter().enumerate() {
        let name = format!("node{}", i + 1);
        let h = &doc["hosts"][i];
        assert_eq!(h["name"], name.as_str());
        assert_eq!(h["role"], d.role);
        assert!(h["error"].is_null(), "{h:#}");
        assert!(!h["steps"].as_array().unwrap().is_empty(), "{h:#}");
        let n = node(&doc, &name);
        assert_eq!(n["ready"], true, "{n:#}");
        assert_eq!(n["version"], format!("v{version}").as_str());
        for (k, v) in d.labels {
            assert_eq!(n["labels"][k], *v, "{n:#}");
        }
        let mut taints: Vec<&str> = n["taints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .filter(|t| !t.starts_with("node.kubernetes.io/"))
            .collect();
        taints.sort();
        let want: Vec<&str> = match d.taints {
            Some(t) => t.to_vec(),
            None if d.role == "control-plane" => {
                vec!["node-role.kubernetes.io/control-plane:NoSchedule"]
            }
            None => vec![],
        };
        assert_eq!(taints, want, "{name}");
    }
    doc
}

/// `kubeconfig -o FILE`: 0600, the cluster's context, the control plane's endpoint;
/// kubectl on the first control plane host lists every node through it alone.
fn kubeconfig(l: &mut Loop, tb: &Testbed, inv: &str, runs: &str) {
    let file = tb.dir().join("ci").join("kubeconfig");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&file);
    let ran = l.run(&[
        "kubeconfig",
        inv,
        "-o",
        file.to_str().unwrap(),
        "--log-dir",
        runs,
    ]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert!(ran.stdout.is_empty(), "{}", ran.stdout);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&file).unwrap();
    let kc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(kc["current-context"], "e2e");
    let cp = &tb.hosts()[0];
    assert_eq!(
        kc["clusters"][0]["cluster"]["server"],
        format!("https://{}:6443", cp.address).as_str()
    );
    // The credentials are the cluster's real ones (what the secrets check looks for).
    let admin: serde_yaml::Value =
        serde_yaml::from_str(&exec(tb, &cp.name, &["cat", "/etc/kubernetes/admin.conf"])).unwrap();
    let key = |doc: &serde_yaml::Value| doc["users"][0]["user"]["client-key-data"].clone();
    assert!(key(&kc).is_string());
    assert_eq!(key(&kc), key(&admin));
    // This machine has no kubectl: use the file from the first control plane host.
    let script =
        format!("cat > /root/ci-kubeconfig <<'EOF'\n{text}EOF\nchmod 600 /root/ci-kubeconfig");
    exec(tb, &cp.name, &["sh", "-c", &script]);
    let listed = exec(
        tb,
        &cp.name,
        &[
            "kubectl",
            "--kubeconfig",
            "/root/ci-kubeconfig",
            "get",
            "nodes",
        ],
    );
    for h in tb.hosts() {
        assert!(listed.contains(&h.name), "{} not in:\n{listed}", h.name);
    }
    exec(tb, &cp.name, &["rm", "-f", "/root/ci-kubeconfig"]);
}

/// `reset --yes --output json`: exit 0, every host reset, none a node any more.
fn reset(l: &mut Loop, tb: &Testbed, inv: &str, runs: &str) {
    let ran = l.run(&["reset", inv, "--yes", "--output", "json", "--log-dir", runs]);
    assert_eq!(ran.code, Some(0), "reset failed:\n{}", ran.stderr);
    let doc = ran.document();
    assert_eq!(doc["schema"], "bootstrap/reset/v1");
    assert_eq!(doc["outcome"], "success");
    for h in doc["hosts"].as_array().unwrap() {
        assert_eq!(h["result"], "changed", "{h:#}");
    }
    for h in tb.hosts() {
        let gone = tb
            .exec(&h.name, &["test", "-e", "/etc/kubernetes/kubelet.conf"])
            .unwrap();
        assert!(!gone.status.success(), "{}: still joined", h.name);
    }
}

#[test]
fn the_ci_loop_twice_on_the_same_hosts_and_no_secret_in_any_output() {
    let tb = real_testbed(3);
    let decls = article_decls();
    let inv = real_inventory(&tb, &decls);
    let runs = tb.dir().join("runs");
    let (inv, runs) = (inv.to_str().unwrap(), runs.to_str().unwrap());
    let mut l = Loop::default();
    for round in 1..=2 {
        eprintln!("=== round {round}");
        up(&mut l, inv, runs, &decls);
        kubeconfig(&mut l, &tb, inv, runs);
        assert_wordpress_where_the_labels_say(&tb, "node1");
        l.collect_secrets(&tb, "node1");
        reset(&mut l, &tb, inv, runs);
    }
    // The reset hosts take a third cluster.
    up(&mut l, inv, runs, &decls);
    l.collect_secrets(&tb, "node1");

    let mut texts = l.outputs.clone();
    for (path, text) in files_under(Path::new(runs)) {
        texts.push((path.display().to_string(), text));
    }
    assert!(texts.len() > 10, "{} texts", texts.len());
    for (what, secret) in &l.secrets {
        assert!(secret.len() >= 16, "{what}: {secret}");
        for (source, text) in &texts {
            assert!(!text.contains(secret.as_str()), "{what} is in {source}");
        }
    }
}
