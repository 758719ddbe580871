//! End-to-end: `bootstrap plan` (and `up --dry-run`) against the testbed, on the REAL
//! control plane (issue 9: real kubeadm, kubectl, API server, etcd, controller manager and
//! scheduler; the kubelet stand-in), at the built release [`support::real_version`].
//!
//! The plan must change nothing (the hosts and the API observed before and after,
//! tests/support/snapshot.rs), exit 2 exactly when `up` has work and 0 when it has none,
//! and list the steps the following `up` really runs: compared with up's run log (every
//! step it ran, per host) and with what up changed on the hosts and in the API.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::snapshot::{assert_unchanged, Snapshot};
use support::{check, real_testbed, real_version, run_on, Decl, Inventory};
use testbed::{Os, Testbed};

/// `decls` written as the testbed's inventory at [`real_version`], Calico `calico`.
fn inventory_with(tb: &Testbed, decls: &[Decl], calico: &str) -> PathBuf {
    let version = real_version();
    Inventory {
        version: &version,
        calico,
        ..Inventory::new(decls)
    }
    .write(tb)
}

/// [`inventory_with`] the default Calico ([`support::CALICO`]).
fn inventory(tb: &Testbed, decls: &[Decl]) -> PathBuf {
    inventory_with(tb, decls, support::CALICO)
}

/// A testbed builder on the real control plane of [`real_version`] (hosts, user, OS ...
/// added).
fn real_builder() -> testbed::Builder {
    support::real_releases(&[testbed::k8s::DEFAULT_RELEASE])
}

/// `plan --output json`: the exit code and the parsed, schema-checked document.
fn plan_json(tb: &Testbed, inv: &Path) -> (Option<i32>, Value, String) {
    let run = run_on(tb, &["plan", "--output", "json"], inv, &[]);
    let doc: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("plan's stdout is not JSON ({e}):\n{}", run.stdout));
    assert_schema(&doc);
    (run.code, doc, run.stderr)
}

/// The schema of docs/plan.md (and docs/output.md's envelope).
fn assert_schema(doc: &Value) {
    let obj = doc.as_object().expect("an object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "changes",
            "cluster",
            "command",
            "exit_code",
            "hosts",
            "schema",
            "unmanaged"
        ],
        "{doc:#}"
    );
    // The envelope every document shares, and docs/schema/plan.json.
    assert_eq!(doc["schema"], "bootstrap/plan/v1");
    support::assert_valid(doc);
    assert!(doc["changes"].is_boolean());
    for h in doc["hosts"].as_array().unwrap() {
        assert!(h["name"].is_string() && h["role"].is_string(), "{h:#}");
        assert!(["control-plane", "worker"].contains(&h["role"].as_str().unwrap()));
        for s in h["steps"].as_array().unwrap() {
            for k in ["phase", "step", "description", "reason"] {
                assert!(s[k].is_string(), "{k} in {s:#}");
            }
        }
    }
    for s in doc["cluster"].as_array().unwrap() {
        for k in ["phase", "host", "step", "reason"] {
            assert!(s[k].is_string(), "{k} in {s:#}");
        }
    }
    assert!(doc["unmanaged"]
        .as_array()
        .unwrap()
        .iter()
        .all(Value::is_string));
}

fn host_steps(doc: &Value, host: &str) -> Vec<(String, String)> {
    let h = doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == host)
        .unwrap_or_else(|| panic!("no host {host} in {doc:#}"));
    h["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["phase"].as_str().unwrap().into(),
                s["step"].as_str().unwrap().into(),
            )
        })
        .collect()
}

/// (phase, host, step) of every cluster-level step.
fn cluster_steps(doc: &Value) -> Vec<(String, String, String)> {
    doc["cluster"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["phase"].as_str().unwrap().into(),
                s["host"].as_str().unwrap().into(),
                s["step"].as_str().unwrap().into(),
            )
        })
        .collect()
}

/// The argv of every command run on `host` after its first `mark` audit records.
fn commands_since(tb: &Testbed, host: &str, mark: usize) -> Vec<Vec<String>> {
    tb.audit(host).unwrap()[mark..]
        .iter()
        .filter(|r| r.kind == "cmd")
        .map(|r| r.argv.clone())
        .collect()
}

/// The newest run directory under <testbed>/runs.
///
/// By the directory's modification time, not its name: names are `<second>-<pid>`, so two
/// runs in one second sort by pid as text, not by age (a CI-like run found node3's log of
/// `up` empty, most likely because an earlier run of the same second sorted after it).
fn newest_run(tb: &Testbed) -> PathBuf {
    std::fs::read_dir(tb.dir().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| (std::fs::metadata(p).unwrap().modified().unwrap(), p.clone()))
        .expect("a run directory")
}

/// The step names of a host's run log, in order (`=== <timestamp> <step> (...`).
fn logged_steps(run: &Path, host: &str) -> Vec<String> {
    let text = std::fs::read_to_string(run.join(format!("{host}.log"))).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.strip_prefix("=== "))
        .filter_map(|l| l.split_once(' ').map(|(_, rest)| rest))
        .filter_map(|l| l.rsplit_once(" (").map(|(step, _)| step.to_string()))
        .collect()
}

/// The host-playbook steps among a run log's steps (logged as `<step>: <description>`),
/// as (step) names, given the step names a plan can contain.
fn ran_host_steps(logged: &[String], known: &[String]) -> Vec<String> {
    logged
        .iter()
        .filter_map(|l| l.split_once(": ").map(|(s, _)| s.to_string()))
        .filter(|s| known.contains(s))
        .collect()
}

/// Every host-playbook step name there is (prereqs, runtime, packages), from the fresh
/// plan of a host, which plans nearly all of them.
fn names(steps: &[(String, String)]) -> Vec<String> {
    steps.iter().map(|(_, s)| s.clone()).collect()
}

/// One 3-host cluster, built by `up` from the plan test's 2-host inventory and grown to
/// [`grown`], then given a newer Calico. The two checks had a cluster each, built by the
/// same `up` of a control plane and a worker (CI's time is mostly spent building
/// clusters); the Calico change comes last, on the converged cluster the plan test leaves.
/// Each check names itself on stderr so a failure says which one it was.
#[test]
fn a_cluster_planned_grown_then_given_a_newer_calico() {
    let tb = real_testbed(3);
    check!(plan_lists_what_up_then_does_and_changes_nothing(&tb));
    check!(a_calico_version_change_is_planned_then_applied_server_side(
        &tb,
        &grown()
    ));
}

/// The inventory the plan test's cluster grows into: a label value changed (node2), a
/// taint added (node1), a new worker (node3).
fn grown() -> [Decl; 3] {
    [
        Decl::new(
            "control-plane",
            &[("type", "mysql")],
            Some(&["dedicated=db:NoSchedule"]),
        ),
        Decl::new("worker", &[("type", "blog")], None),
        Decl::new("worker", &[("type", "wordpress")], None),
    ]
}

/// `plan` on fresh hosts lists what the following `up` runs, changes nothing, and exits 0
/// once converged; an inventory grown by a label, a taint and a worker is planned and
/// applied exactly; a host left out of the inventory is reported as unmanaged. Leaves the
/// 3-host cluster of [`grown`] converged.
fn plan_lists_what_up_then_does_and_changes_nothing(tb: &Testbed) {
    let two = [
        Decl::new("control-plane", &[("type", "mysql")], Some(&[])),
        Decl::new("worker", &[("type", "wordpress")], None),
    ];
    let inv = inventory(tb, &two);

    // Fresh hosts: everything is pending, nothing changes.
    let before = Snapshot::of(tb, "node1");
    let (code, doc, stderr) = plan_json(tb, &inv);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(doc["changes"], true);
    assert_unchanged(tb, "node1", &before, "plan");
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert!(stderr.contains("because"), "no reasons in:\n{stderr}");
    for host in ["node1", "node2"] {
        let phases: Vec<String> = host_steps(&doc, host).into_iter().map(|(p, _)| p).collect();
        for want in ["prereqs", "runtime", "kubernetes-packages"] {
            assert!(
                phases.iter().any(|p| p == want),
                "{host}: no {want}: {doc:#}"
            );
        }
        let h = doc["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == host)
            .unwrap();
        assert!(h["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| !s["reason"].as_str().unwrap().is_empty()));
    }
    let cluster = cluster_steps(&doc);
    let cluster_phases: Vec<&str> = cluster.iter().map(|(p, _, _)| p.as_str()).collect();
    for want in ["init", "join-token", "join", "cni", "labels", "ready"] {
        assert!(cluster_phases.contains(&want), "no {want}: {doc:#}");
    }
    assert!(cluster.contains(&("join".into(), "node2".into(), "kubeadm join".into())));
    // Phases in up's order.
    let order = ["init", "join-token", "join", "cni", "labels", "ready"];
    let idx: Vec<usize> = cluster_phases
        .iter()
        .map(|p| order.iter().position(|o| o == p).unwrap())
        .collect();
    assert!(idx.windows(2).all(|w| w[0] <= w[1]), "{cluster_phases:?}");
    assert_eq!(doc["unmanaged"], serde_json::json!([]));
    let fresh_node2 = names(&host_steps(&doc, "node2"));

    // `up --dry-run` is the same code path: same exit code, same document.
    let dry = run_on(tb, &["up", "--dry-run", "--output", "json"], &inv, &[]);
    assert_eq!(dry.code, Some(2));
    assert_eq!(serde_json::from_str::<Value>(&dry.stdout).unwrap(), doc);
    // Text only: nothing on stdout, the plan on stderr.
    let text = run_on(tb, &["plan"], &inv, &[]);
    assert_eq!(text.code, Some(2));
    assert!(text.stdout.is_empty(), "{}", text.stdout);
    assert!(
        text.stderr.contains("node2: kubeadm join"),
        "{}",
        text.stderr
    );
    assert_unchanged(tb, "node1", &before, "plan");

    // up runs exactly the planned host steps.
    let up = run_on(tb, &["up", "--timeout", "10m"], &inv, &[]);
    assert_eq!(up.code, Some(0), "up failed");
    let run = newest_run(tb);
    for host in ["node1", "node2"] {
        let planned = names(&host_steps(&doc, host));
        assert_eq!(
            ran_host_steps(&logged_steps(&run, host), &planned),
            planned,
            "{host}: up's run log vs the plan"
        );
    }

    // Converged: nothing to do, exit 0.
    let before = Snapshot::of(tb, "node1");
    let (code, doc, stderr) = plan_json(tb, &inv);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("nothing to do"), "{stderr}");
    assert_eq!(doc["changes"], false);
    assert!(cluster_steps(&doc).is_empty(), "{doc:#}");
    for host in ["node1", "node2"] {
        assert!(host_steps(&doc, host).is_empty(), "{doc:#}");
    }
    let dry = run_on(tb, &["up", "--dry-run"], &inv, &[]);
    assert_eq!(dry.code, Some(0));
    assert_unchanged(tb, "node1", &before, "plan");

    // The inventory changes: a label value, a taint added, a new worker.
    let three = grown();
    let inv = inventory(tb, &three);
    let (code, doc, stderr) = plan_json(tb, &inv);
    assert_eq!(code, Some(2), "{stderr}");
    assert_unchanged(tb, "node1", &before, "plan");
    assert!(host_steps(&doc, "node1").is_empty(), "{doc:#}");
    assert!(host_steps(&doc, "node2").is_empty(), "{doc:#}");
    let node3 = names(&host_steps(&doc, "node3"));
    assert_eq!(node3, fresh_node2, "a fresh worker plans what node2 did");
    let cluster = cluster_steps(&doc);
    let phases: Vec<&str> = cluster.iter().map(|(p, _, _)| p.as_str()).collect();
    assert!(
        !phases.contains(&"init") && !phases.contains(&"cni"),
        "{doc:#}"
    );
    assert!(cluster.contains(&("join".into(), "node3".into(), "kubeadm join".into())));
    assert!(
        cluster.contains(&(
            "labels".into(),
            "node2".into(),
            "label type=blog (was type=wordpress)".into()
        )),
        "{doc:#}"
    );
    assert!(
        cluster.contains(&(
            "labels".into(),
            "node1".into(),
            "taint dedicated=db:NoSchedule".into()
        )),
        "{doc:#}"
    );
    let reason = doc["cluster"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["host"] == "node2" && s["phase"] == "labels")
        .unwrap()["reason"]
        .clone();
    assert!(
        reason.as_str().unwrap().contains("type=wordpress"),
        "{reason}"
    );
    let label_hosts: std::collections::BTreeSet<&str> = cluster
        .iter()
        .filter(|(p, _, _)| p == "labels")
        .map(|(_, h, _)| h.as_str())
        .collect();

    // ... and up does exactly that.
    let before = Snapshot::of(tb, "node1");
    let up = run_on(tb, &["up", "--timeout", "10m"], &inv, &[]);
    assert_eq!(up.code, Some(0), "up failed");
    let run = newest_run(tb);
    assert_eq!(
        ran_host_steps(&logged_steps(&run, "node3"), &fresh_node2),
        node3,
        "node3: up's run log vs the plan"
    );
    for host in ["node1", "node2"] {
        assert!(
            ran_host_steps(&logged_steps(&run, host), &fresh_node2).is_empty(),
            "{host} ran host steps the plan did not list"
        );
    }
    let after = Snapshot::of(tb, "node1");
    for host in ["node1", "node2"] {
        let changed = after.of_host(host).changes(&before.of_host(host));
        assert!(changed.is_empty(), "{host}: {changed:#?}");
    }
    assert!(!after
        .of_host("node3")
        .changes(&before.of_host("node3"))
        .is_empty());
    // In the cluster: the planned nodes' labels, taints and the annotations that record
    // them, new objects (node3 and its pods, the join token and the bootstrap signer's
    // signature of cluster-info for it); nothing else.
    let mut touched = std::collections::BTreeSet::new();
    for line in after.of_host("cluster").changes(&before.of_host("cluster")) {
        let node = line
            .strip_prefix("~ cluster v1 Node /")
            .or_else(|| line.strip_prefix("+ cluster v1 Node /"))
            .and_then(|rest| rest.split(['.', ':']).next());
        match node {
            Some(n) => {
                touched.insert(n.to_string());
            }
            None => assert!(
                line.starts_with('+')
                    || line.starts_with(
                        "~ cluster v1 ConfigMap kube-public/cluster-info.data.jws-kubeconfig-"
                    ),
                "a change the plan did not list: {line}"
            ),
        }
    }
    let touched: std::collections::BTreeSet<&str> = touched.iter().map(String::as_str).collect();
    assert_eq!(touched, label_hosts, "nodes whose labels/taints up changed");

    let (code, _, stderr) = plan_json(tb, &inv);
    assert_eq!(code, Some(0), "{stderr}");

    // A host removed from the inventory is left alone and reported as unmanaged.
    let inv = inventory(tb, &three[..2]);
    let before = Snapshot::of(tb, "node1");
    let (code, doc, stderr) = plan_json(tb, &inv);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(doc["unmanaged"], serde_json::json!(["node3"]));
    assert!(
        stderr.contains("node node3 is in the cluster but not in the inventory"),
        "{stderr}"
    );
    assert_unchanged(tb, "node1", &before, "plan");
}

/// The per-host lines of the summary (`nodeN: ...`), which name every failed host and why.
fn failure_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.starts_with("node") && l.contains(": "))
        .filter(|l| !l.contains("  "))
        .map(String::from)
        .collect()
}

/// Runs plan, up --dry-run and up; all exit `up_code` (docs/output.md: 4 unreachable,
/// 5 refused) with the same per-host failure lines, which contain `texts`; nothing
/// changes anywhere.
fn assert_refused_like_up(tb: &Testbed, inv: &Path, texts: &[&str], up_code: i32) {
    let before = Snapshot::of(tb, "node1");
    let plan = run_on(tb, &["plan", "--output", "json"], inv, &[]);
    assert_eq!(plan.code, Some(up_code));
    assert!(
        plan.stdout.is_empty(),
        "no document on error: {}",
        plan.stdout
    );
    let dry = run_on(tb, &["up", "--dry-run"], inv, &[]);
    assert_eq!(dry.code, Some(up_code));
    let up = run_on(tb, &["up"], inv, &[]);
    assert_eq!(up.code, Some(up_code));
    for text in texts {
        assert!(plan.stderr.contains(text), "{text}: {}", plan.stderr);
    }
    let lines = failure_lines(&up.stderr);
    assert!(!lines.is_empty(), "{}", up.stderr);
    assert_eq!(failure_lines(&plan.stderr), lines);
    assert_eq!(failure_lines(&dry.stderr), lines);
    assert_unchanged(tb, "node1", &before, "plan, up --dry-run and a refused up");
}

#[test]
fn unreachable_and_non_ubuntu_hosts_are_errors_with_up_s_messages() {
    let tb = real_builder()
        .hosts(3)
        .host_os("node2", Os::Debian12)
        .build()
        .expect("testbed");
    let inv = inventory(
        &tb,
        &[
            Decl::new("control-plane", &[], None),
            Decl::new("worker", &[], None),
            Decl::new("worker", &[], None),
        ],
    );
    tb.stop("node3").unwrap();
    assert_refused_like_up(&tb, &inv, &["node3", "cannot connect"], 4);
    tb.start("node3").unwrap();
    assert_refused_like_up(&tb, &inv, &["node2", "Debian", "Ubuntu 22.04 and 24.04"], 5);
}

#[test]
fn sudo_with_a_password_is_an_error_with_up_s_message() {
    let tb = real_builder()
        .hosts(1)
        .user("ubuntu")
        .sudo_password(true)
        .build()
        .expect("testbed");
    let inv = inventory(&tb, &[Decl::new("control-plane", &[], None)]);
    assert_refused_like_up(&tb, &inv, &["sudo", "a password is required"], 5);
}

/// A newer Calico in the inventory: `plan` lists exactly Calico's apply and the wait, and
/// `up` fetches that release's manifest on the control plane and applies it server-side
/// on the real API server: the calico-node DaemonSet's image is the new release and its
/// fields are owned by a server-side `Apply` of kubectl's field manager. On a cluster
/// converged at [`support::CALICO`] with `decls`.
fn a_calico_version_change_is_planned_then_applied_server_side(tb: &Testbed, decls: &[Decl]) {
    let inv = inventory(tb, decls);
    let (code, _, stderr) = plan_json(tb, &inv);
    assert_eq!(code, Some(0), "converged before the change: {stderr}");
    let newer = "v3.31.2";
    let inv = inventory_with(tb, decls, newer);

    let before = Snapshot::of(tb, "node1");
    let mark = tb.audit("node1").unwrap().len();
    let mark2 = tb.audit("node2").unwrap().len();
    let (code, doc, _) = plan_json(tb, &inv);
    assert_eq!(code, Some(2));
    assert_unchanged(tb, "node1", &before, "plan");
    for host in ["node1", "node2"] {
        assert!(host_steps(&doc, host).is_empty(), "{doc:#}");
    }
    let step = |p: &str, h: &str, s: &str| (p.to_string(), h.to_string(), s.to_string());
    assert_eq!(
        cluster_steps(&doc),
        [
            step("cni", "node1", "apply Calico"),
            step("ready", "node1", "wait until every node is Ready")
        ]
    );

    assert_eq!(
        run_on(tb, &["up", "--timeout", "10m"], &inv, &[]).code,
        Some(0)
    );
    let url = format!(
        "https://raw.githubusercontent.com/projectcalico/calico/{newer}/manifests/calico.yaml"
    );
    // The release's manifest, fetched by the control plane (and amended: the node IP
    // autodetection), applied server-side from stdin by the real kubectl.
    let ran: Vec<String> = commands_since(tb, "node1", mark)
        .iter()
        .map(|argv| argv.join(" "))
        .collect();
    assert!(ran.iter().any(|c| c.ends_with(&url)), "{ran:#?}");
    assert!(
        ran.iter()
            .any(|c| c.ends_with("apply --server-side --force-conflicts -f -")),
        "{ran:#?}"
    );
    // node2: bootstrap ran nothing there but its read-only fact gathering (plan's and
    // up's) ...
    let on_node2: Vec<String> = tb.audit("node2").unwrap()[mark2..]
        .iter()
        .filter(|r| r.kind == "ssh")
        .flat_map(|r| r.argv.clone())
        .collect();
    assert_eq!(on_node2.len(), 2, "{on_node2:#?}");
    assert!(
        on_node2
            .iter()
            .all(|c| c.contains("echo \"@@bootstrap-facts 1\"")),
        "{on_node2:#?}"
    );
    // ... and what changed on it is what the new calico-node's install-cni (the
    // DaemonSet's init container, rolled out on every node by the apply) writes: Calico's
    // CNI programs of the new release and its kubeconfig with a fresh token.
    let node2 = Snapshot::of(tb, "node1").of_host("node2");
    let changed: Vec<String> = node2
        .changes(&before.of_host("node2"))
        .iter()
        .map(|l| l.split(": ").next().unwrap_or(l).to_string())
        .collect();
    assert_eq!(
        changed,
        [
            "~ node2 file /etc/cni/net.d/calico-kubeconfig",
            "~ node2 file /opt/cni/bin/calico",
            "~ node2 file /opt/cni/bin/calico-ipam"
        ],
        "{:#?}",
        node2.changes(&before.of_host("node2"))
    );
    let image = support::calico_image(tb, "node1");
    assert!(image.ends_with(&format!(":{newer}")), "{image}");
    // The real API server recorded the apply as server-side: kubectl's field manager with
    // operation Apply (a client-side apply is an Update by kubectl-client-side-apply).
    let ds = support::calico_node_daemonset(tb, "node1");
    let managers: Vec<(&str, &str)> = ds["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["manager"].as_str().unwrap_or(""),
                m["operation"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(managers.contains(&("kubectl", "Apply")), "{managers:?}");
    assert_eq!(plan_json(tb, &inv).0, Some(0));
}
