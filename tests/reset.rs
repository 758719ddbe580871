//! End-to-end: `bootstrap reset` against the testbed's simulated Ubuntu hosts, after a
//! real `bootstrap up`, on the REAL control plane (issue 9: the real kubeadm, kubectl,
//! API server, etcd, controller-manager and scheduler; the kubelet stand-in runs the
//! static pods in pod sandboxes of the real containerd, which the real `kubeadm reset`
//! stops: testbed/STANDINS-kubelet-real.md).
//!
//! Needs root and the built release (the first run builds it). Assertions are about real
//! outcomes: files on the hosts, the kubelet unit, the control plane's processes and
//! ports, apt's holds, node objects read with kubectl on the control plane, and the
//! hosts' audit logs.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use support::snapshot::{assert_unchanged, Snapshot};
use support::{check, exec, run_on, Ran, KUBECTL};
use testbed::Testbed;

fn testbed(hosts: usize) -> Testbed {
    support::real_testbed(hosts)
}

/// An inventory of the testbed's hosts at [`support::real_version`]: the first a control
/// plane, the others workers.
fn inventory(tb: &Testbed) -> PathBuf {
    support::real_inventory(tb, &support::plain_decls(tb.hosts().len() - 1))
}

/// `bootstrap up INVENTORY --log-dir <testbed>/runs --timeout 10m` (the real control
/// plane's convergence takes minutes on a loaded machine, like tests/up_real.rs).
fn up(tb: &Testbed, inv: &Path) -> Ran {
    run_on(tb, &["up", "--timeout", "10m"], inv, &[])
}

/// `bootstrap reset ARGS...` like [`up`]; `ci` false runs it without CI set.
fn reset(tb: &Testbed, inv: &Path, args: &[&str], ci: bool) -> Ran {
    let mut all = vec!["reset", "--timeout", "10m"];
    all.extend(args);
    let env: support::Env = if ci { &[] } else { &[("CI", None)] };
    run_on(tb, &all, inv, env)
}

fn exists(tb: &Testbed, host: &str, path: &str) -> bool {
    tb.exec(host, &["test", "-e", path])
        .unwrap()
        .status
        .success()
}

/// The node objects, straight from the control plane: (name, Ready).
fn nodes(tb: &Testbed, cp: &str) -> Vec<(String, bool)> {
    let mut argv = KUBECTL.to_vec();
    argv.extend(["get", "nodes", "-o", "json"]);
    let v: Value = serde_json::from_str(&exec(tb, cp, &argv)).unwrap();
    v["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|n| {
            let ready = n["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            (n["metadata"]["name"].as_str().unwrap().to_string(), ready)
        })
        .collect()
}

fn assert_all_ready(tb: &Testbed) {
    let hosts = tb.hosts();
    let mut got = nodes(tb, &hosts[0].name);
    got.sort();
    let mut want: Vec<(String, bool)> = hosts.iter().map(|h| (h.name.clone(), true)).collect();
    want.sort();
    assert_eq!(got, want, "every host a Ready node");
}

/// The control plane's processes (etcd, kube-*) still running on `host` and its listening
/// ports 6443 and 2379, one per line; empty once the control plane is gone.
fn control_plane_left(tb: &Testbed, host: &str) -> String {
    exec(
        tb,
        host,
        &[
            "sh",
            "-c",
            "for p in /proc/[0-9]*; do readlink $p/exe; done 2>/dev/null \
             | grep -E '/(etcd|kube-apiserver|kube-controller-manager|kube-scheduler)$'; \
             ss -Hltn | awk '{print $4}' | grep -E ':(6443|2379)$'; true",
        ],
    )
}

/// Asserts `host` carries nothing of the cluster: no kubeconfigs, no CNI config, the
/// kubelet stopped, no control-plane process or port left (kubeadm reset removes the pod
/// sandboxes through the CRI; waited for, up to 30 s), nothing held, no kubeadm
/// configuration of ours.
fn assert_host_reset(tb: &Testbed, host: &str) {
    support::eventually(
        &format!("{host}: the control plane stopped"),
        Duration::from_secs(30),
        || control_plane_left(tb, host),
        |left| left.is_empty(),
    );
    for path in [
        "/etc/kubernetes/kubelet.conf",
        "/etc/kubernetes/admin.conf",
        "/etc/kubernetes/manifests/kube-apiserver.yaml",
        "/etc/cni/net.d",
        "/root/.kube/config",
        "/etc/kubeadm",
    ] {
        assert!(!exists(tb, host, path), "{host}: {path} still exists");
    }
    let out = tb
        .exec(host, &["systemctl", "is-active", "kubelet"])
        .unwrap();
    let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        state != "active" && state != "activating",
        "{host}: kubelet is {state}"
    );
    assert_eq!(
        exec(tb, host, &["apt-mark", "showhold"]).trim(),
        "",
        "{host}"
    );
}

/// Asserts the CNI configuration Calico's install-cni container writes on every node
/// where calico-node runs is there, so that its removal by reset is really tested.
fn assert_cni_config(tb: &Testbed, host: &str) {
    for path in [
        "/etc/cni/net.d/10-calico.conflist",
        "/etc/cni/net.d/calico-kubeconfig",
    ] {
        assert!(exists(tb, host, path), "{host}: calico-node left no {path}");
    }
}

/// The root login's two-host cluster, built once by `up` and then put through both of
/// root's reset checks in turn. Each was a test with a cluster of its own, and CI's time
/// is mostly spent building clusters: the first check ends with an `up` that builds the
/// cluster again (every host a Ready node), which is where the second one starts. Both
/// change the cluster, so the whole teardown goes first and the one worker's second.
/// Each is named on stderr (`check!`) so a failure says which one it was.
#[test]
fn a_root_cluster_torn_down_built_again_then_one_worker_reset() {
    let tb = testbed(2);
    let inv = inventory(&tb);
    let first = up(&tb, &inv);
    assert!(first.ok(), "up failed:\n{}", first.stderr);
    assert_all_ready(&tb);
    check!(reset_tears_down_twice_safely_and_up_builds_a_fresh_cluster(
        &tb, &inv
    ));
    check!(reset_one_worker_deletes_its_node_and_leaves_the_control_plane(&tb, &inv));
}

/// On a cluster where every host is a Ready node: `reset` without --yes refuses and
/// touches nothing; with it, the workers are reset first and nothing of the cluster is
/// left; a second reset has nothing to do; and `up` builds the cluster again.
fn reset_tears_down_twice_safely_and_up_builds_a_fresh_cluster(tb: &Testbed, inv: &Path) {
    // Nobody can answer: without --yes it refuses, whether stdin is no terminal or CI
    // is set, and touches nothing (not even a connection's worth of change).
    let before = Snapshot::of(tb, "node1");
    for ci in [false, true] {
        let refused = reset(tb, inv, &[], ci);
        assert!(!refused.ok(), "reset without --yes succeeded");
        assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    }
    assert_unchanged(tb, "node1", &before, "a refused reset");
    assert_all_ready(tb);

    for h in tb.hosts() {
        assert_cni_config(tb, &h.name);
    }
    assert!(
        !control_plane_left(tb, "node1").is_empty(),
        "no control plane running on node1 before the reset"
    );
    let done = reset(tb, inv, &["--yes"], true);
    assert!(done.ok(), "reset failed:\n{}", done.stderr);
    for h in tb.hosts() {
        assert_host_reset(tb, &h.name);
    }
    // Workers first: node2's kubeadm reset ran before node1's.
    let reset_at = |host: &str| {
        tb.audit(host)
            .unwrap()
            .iter()
            .rev()
            .find(|r| r.kind == "cmd" && r.argv.first().is_some_and(|a| a == "kubeadm"))
            .map(|r| r.ts)
            .unwrap()
    };
    assert!(reset_at("node2") < reset_at("node1"), "workers first");

    let before = Snapshot::of(tb, "node1");
    let again = reset(tb, inv, &["--yes"], true);
    assert!(again.ok(), "second reset failed:\n{}", again.stderr);
    assert!(again.stderr.contains("nothing to do"), "{}", again.stderr);
    assert_unchanged(tb, "node1", &before, "a second reset");

    let second = up(tb, inv);
    assert!(second.ok(), "up after reset failed:\n{}", second.stderr);
    assert_all_ready(tb);
}

/// On a cluster where every host is a Ready node: `reset --host node2` resets just the
/// worker and deletes its Node; `--purge` then removes its packages and nothing else;
/// `up` brings the worker back; and a reset that died after node2's `kubeadm reset` is
/// finished by the next one.
fn reset_one_worker_deletes_its_node_and_leaves_the_control_plane(tb: &Testbed, inv: &Path) {
    assert_cni_config(tb, "node1");
    assert_cni_config(tb, "node2");
    let done = reset(tb, inv, &["--host", "node2", "--yes"], true);
    assert!(exists(tb, "node1", "/etc/cni/net.d"), "node1 was touched");
    assert!(done.ok(), "reset --host node2 failed:\n{}", done.stderr);
    assert_host_reset(tb, "node2");
    // The control plane is up, untouched, and no longer has a node2.
    assert!(exists(tb, "node1", "/etc/kubernetes/admin.conf"));
    assert!(exists(tb, "node1", "/etc/kubernetes/kubelet.conf"));
    assert_eq!(nodes(tb, "node1"), [("node1".to_string(), true)]);
    let held = exec(tb, "node1", &["apt-mark", "showhold"]);
    assert_eq!(held.lines().count(), 3, "node1 still holds: {held}");

    // --purge on the already reset worker removes just the packages.
    let before = Snapshot::of(tb, "node1");
    let purged = reset(tb, inv, &["--host", "node2", "--yes", "--purge"], true);
    assert!(purged.ok(), "reset --purge failed:\n{}", purged.stderr);
    assert!(
        purged.stderr.contains("purge-packages"),
        "{}",
        purged.stderr
    );
    for pkg in ["kubelet", "kubeadm", "kubectl"] {
        let out = tb
            .exec("node2", &["dpkg-query", "-W", "-f=${Status}", pkg])
            .unwrap();
        let status = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            !status.contains("install ok installed"),
            "node2: {pkg} still installed: {status}"
        );
    }
    let node1 = Snapshot::of(tb, "node1").of_host("node1");
    let changed = node1.changes(&before.of_host("node1"));
    assert!(
        changed.is_empty(),
        "resetting node2 changed node1: {changed:#?}"
    );

    // up brings the worker back.
    let again = up(tb, inv);
    assert!(
        again.ok(),
        "up after resetting a worker failed:\n{}",
        again.stderr
    );
    assert_all_ready(tb);

    // A reset that died right after node2's `kubeadm reset` (node deleted, kubeadm
    // reset done, the cleanup not): the next reset finishes exactly the cleanup, because
    // the packages are still held.
    let mut argv = KUBECTL.to_vec();
    argv.extend(["delete", "node", "node2"]);
    exec(tb, "node1", &argv);
    exec(
        tb,
        "node2",
        &[
            "kubeadm",
            "reset",
            "-f",
            "--cri-socket",
            "unix:///var/run/containerd/containerd.sock",
        ],
    );
    assert_cni_config(tb, "node2");
    let finished = reset(tb, inv, &["--host", "node2", "--yes"], true);
    assert!(
        finished.ok(),
        "finishing reset failed:\n{}",
        finished.stderr
    );
    assert!(
        !finished.stderr.contains("kubeadm-reset"),
        "{}",
        finished.stderr
    );
    assert!(finished.stderr.contains("unhold"), "{}", finished.stderr);
    assert_host_reset(tb, "node2");
    assert_eq!(nodes(tb, "node1"), [("node1".to_string(), true)]);
}

/// The ubuntu login's two-host cluster (through sudo), built once by `up` and then put
/// through both of its reset checks in turn. Each was a test with a cluster of its own,
/// and CI's time is mostly spent building clusters: the first check ends with an `up`
/// that builds the cluster again (every host a Ready node), which is where the second
/// one starts. Both change the cluster, so the order is the one they were written for.
/// Each is named on stderr (`check!`) so a failure says which one it was.
#[test]
fn a_non_root_cluster_reset_twice() {
    let tb = support::real_testbed_as(2, "ubuntu");
    let inv = inventory(&tb);
    let first = up(&tb, &inv);
    assert!(first.ok(), "up failed:\n{}", first.stderr);
    check!(a_non_root_login_resets_through_sudo_and_loses_its_kubeconfig(&tb, &inv));
    check!(
        reset_removes_only_what_kubernetes_made_iptables_chains_and_admin_conf_copies(&tb, &inv)
    );
}

/// The ubuntu login copied admin.conf into its home as kubeadm init's output suggests:
/// the reset (through sudo) removes that copy with the cluster, and `up` builds the
/// cluster again.
fn a_non_root_login_resets_through_sudo_and_loses_its_kubeconfig(tb: &Testbed, inv: &Path) {
    // The login user copied admin.conf as kubeadm init's output suggests.
    exec(
        tb,
        "node1",
        &[
            "sh",
            "-c",
            "mkdir -p /home/ubuntu/.kube && cp /etc/kubernetes/admin.conf /home/ubuntu/.kube/config \
             && chown -R ubuntu: /home/ubuntu/.kube",
        ],
    );
    let done = reset(tb, inv, &["--yes"], true);
    assert!(done.ok(), "reset failed:\n{}", done.stderr);
    for h in tb.hosts() {
        assert_host_reset(tb, &h.name);
    }
    assert!(!exists(tb, "node1", "/home/ubuntu/.kube/config"));
    let again = up(tb, inv);
    assert!(again.ok(), "up after reset failed:\n{}", again.stderr);
    assert_all_ready(tb);
}

/// `iptables -t TABLE -S` on `host`, one rule per line.
fn iptables_rules(tb: &Testbed, host: &str, table: &str) -> Vec<String> {
    exec(tb, host, &["iptables", "-t", table, "-S"])
        .lines()
        .map(str::to_string)
        .collect()
}

/// After a successful `up` (node1's /root/.kube/config its copy of admin.conf): the
/// reset removes the iptables chains and rules kube-proxy and Calico made and leaves the
/// host's own; it removes the copies of admin.conf and leaves kubeconfigs of another
/// cluster in place, saying so.
fn reset_removes_only_what_kubernetes_made_iptables_chains_and_admin_conf_copies(
    tb: &Testbed,
    inv: &Path,
) {
    // The host's own firewall, and what kube-proxy and Calico add, with the comments
    // they put on their jumps.
    let host_rules: &[&[&str]] = &[
        &["-N", "HOST-FW"],
        &[
            "-A", "HOST-FW", "-p", "tcp", "--dport", "22", "-j", "ACCEPT",
        ],
        &["-A", "INPUT", "-j", "HOST-FW"],
        &[
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-o",
            "eth0",
            "-j",
            "MASQUERADE",
        ],
    ];
    let kubernetes_rules: &[&[&str]] = &[
        &["-t", "nat", "-N", "KUBE-SERVICES"],
        &["-t", "nat", "-A", "KUBE-SERVICES", "-j", "RETURN"],
        &[
            "-t",
            "nat",
            "-A",
            "PREROUTING",
            "-m",
            "comment",
            "--comment",
            "kubernetes service portals",
            "-j",
            "KUBE-SERVICES",
        ],
        &["-N", "KUBE-FIREWALL"],
        &["-A", "INPUT", "-j", "KUBE-FIREWALL"],
        // A jump whose comment holds the three characters iptables -S backslash-escapes
        // inside its double quotes (xtables_save_string): deleted by its own spec too.
        &[
            "-A",
            "OUTPUT",
            "-m",
            "comment",
            "--comment",
            r#"the firewall's "drop" \ rules"#,
            "-j",
            "KUBE-FIREWALL",
        ],
        &["-N", "cali-INPUT"],
        &["-A", "cali-INPUT", "-j", "ACCEPT"],
        &[
            "-A",
            "INPUT",
            "-m",
            "comment",
            "--comment",
            "cali:Cz_u1IQiXIMmKD4c",
            "-j",
            "cali-INPUT",
        ],
        &["-t", "raw", "-N", "cali-PREROUTING"],
        &["-t", "raw", "-A", "PREROUTING", "-j", "cali-PREROUTING"],
        // Felix also appends rules that jump nowhere to the built-in FORWARD chain, marked
        // only by its rule-hash comment `cali:...` (felix/iptables/table.go
        // hashCommentRegexp; a real node's `iptables -S FORWARD` shows these two).
        &[
            "-A",
            "FORWARD",
            "-m",
            "comment",
            "--comment",
            "cali:S93hcgKJrXEqnTfs",
            "-m",
            "comment",
            "--comment",
            "Policy explicitly accepted packet.",
            "-m",
            "mark",
            "--mark",
            "0x10000/0x10000",
            "-j",
            "ACCEPT",
        ],
        &[
            "-A",
            "FORWARD",
            "-m",
            "comment",
            "--comment",
            "cali:mp77cMpurHhyjLrM",
            "-j",
            "MARK",
            "--set-xmark",
            "0x10000/0x10000",
        ],
    ];
    let before: Vec<(String, Vec<String>)> = {
        for rule in host_rules {
            let mut argv = vec!["iptables"];
            argv.extend_from_slice(rule);
            exec(tb, "node2", &argv);
        }
        ["filter", "nat", "raw"]
            .iter()
            .map(|t| (t.to_string(), iptables_rules(tb, "node2", t)))
            .collect()
    };
    for rule in kubernetes_rules {
        let mut argv = vec!["iptables"];
        argv.extend_from_slice(rule);
        exec(tb, "node2", &argv);
    }
    // Someone's own kubeconfigs (another cluster): not copies of admin.conf.
    exec(
        tb,
        "node1",
        &[
            "sh",
            "-c",
            "mkdir -p /home/ubuntu/.kube && echo 'current-context: other' > /home/ubuntu/.kube/config \
             && chown -R ubuntu: /home/ubuntu/.kube",
        ],
    );
    exec(
        tb,
        "node2",
        &[
            "sh",
            "-c",
            "mkdir -p /root/.kube && echo 'current-context: mine' > /root/.kube/config",
        ],
    );

    // up's copy of admin.conf, there to be removed.
    assert!(
        exists(tb, "node1", "/root/.kube/config"),
        "node1: up left no /root/.kube/config"
    );
    let done = reset(tb, inv, &["--yes"], true);
    assert!(done.ok(), "reset failed:\n{}", done.stderr);
    for (table, rules) in &before {
        assert_eq!(&iptables_rules(tb, "node2", table), rules, "table {table}");
    }
    assert_eq!(
        exec(tb, "node1", &["cat", "/home/ubuntu/.kube/config"]),
        "current-context: other\n"
    );
    assert_eq!(
        exec(tb, "node2", &["cat", "/root/.kube/config"]),
        "current-context: mine\n"
    );
    for said in [
        "node1: ubuntu's ~/.kube/config is not a copy of this cluster's admin.conf: left in place",
        "node2: /root/.kube/config is not a copy of this cluster's admin.conf: left in place",
    ] {
        assert!(done.stderr.contains(said), "{}", done.stderr);
    }
    // node1's root kubeconfig was up's copy of admin.conf: gone.
    assert!(!exists(tb, "node1", "/root/.kube/config"));
}

// The plan alone, from fact reports as an Ubuntu host prints them (no testbed).

const CONVERGED: &str = include_str!("fixtures/facts/converged-master1.txt");
const FRESH: &str = include_str!("fixtures/facts/fresh-ubuntu-24.04.txt");

fn small_inventory() -> bootstrap::inventory::Inventory {
    let yaml = "cluster:\n  name: demo\n  kubernetesVersion: 1.34.2\nhosts:\n\
                - {name: w1, address: 10.0.0.11, role: worker}\n\
                - {name: cp1, address: 10.0.0.10, role: control-plane}\n\
                - {name: w2, address: 10.0.0.12, role: worker}\n";
    bootstrap::inventory::parse(Path::new("inv.yaml"), yaml.to_string()).expect("inventory")
}

fn reset_steps(report: &str, node_object: bool, purge: bool) -> Vec<String> {
    let inv = small_inventory();
    let f = bootstrap::facts::parse(report).expect("fixture parses");
    let vars = bootstrap::plan::Vars::new(&inv, &inv.hosts[1], Some(&f))
        .with("node_object", node_object)
        .with("drain_timeout", "300s")
        .with("purge", purge);
    bootstrap::plan::plan_playbook("reset", &vars)
        .expect("plans")
        .into_iter()
        .map(|s| s.step)
        .collect()
}

#[test]
fn a_converged_control_plane_plans_the_whole_teardown() {
    assert_eq!(
        reset_steps(CONVERGED, false, false),
        [
            "kubeadm-reset",
            "cni-config",
            "root-kubeconfig-remove",
            "iptables-chains",
            "kubeadm-config-remove",
            "unhold",
        ]
    );
    let with_node = reset_steps(CONVERGED, true, true);
    assert_eq!(with_node[..2], ["drain-node", "delete-node"]);
    assert_eq!(with_node.last().unwrap(), "purge-packages");
}

#[test]
fn a_host_without_kubernetes_plans_nothing() {
    assert!(reset_steps(FRESH, false, false).is_empty());
    assert!(reset_steps(FRESH, false, true).is_empty());
}

#[test]
fn workers_are_reset_before_control_planes() {
    let inv = small_inventory();
    let names = |sel: &[&str]| -> Vec<String> {
        let sel: Vec<String> = sel.iter().map(|s| s.to_string()).collect();
        bootstrap::reset::select(&inv, &sel)
            .unwrap()
            .iter()
            .map(|h| h.name.clone())
            .collect()
    };
    assert_eq!(names(&[]), ["w1", "w2", "cp1"]);
    assert_eq!(names(&["cp1", "w2"]), ["w2", "cp1"]);
    let err = bootstrap::reset::select(&inv, &["nope".to_string()]).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}
