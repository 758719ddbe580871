//! End-to-end: Kubernetes upgrades by `bootstrap up` (reference §8, docs/upgrades.md), on
//! the REAL control plane (issue 9): real kubeadm, kubectl, API server, etcd,
//! controller-manager and scheduler of the releases testbed/k8s/build.sh builds (1.34.2,
//! 1.35.4, 1.36.1, 1.36.3), the kubelet stand-in against them.
//!
//! Each test builds a cluster at an older version with `up`, raises (or lowers)
//! `kubernetesVersion` in the inventory and runs `plan` / `up` again. What is asserted is
//! what happened on the hosts: their audit logs (every command of apt, dpkg, kubeadm,
//! kubectl and the stand-ins, in order, with its exit status), a watch on the real API
//! server's Node objects (how many nodes were cordoned at any moment,
//! `testbed::NodeWatch`), the node objects and the packages. Needs root and the
//! testbed's stand-in binary (`cargo build -p testbed`), like tests/up.rs; the first run
//! builds the releases (minutes each, cached).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::snapshot::{assert_unchanged, Snapshot};
use support::{Decl, Inventory, Ran};
use testbed::{AuditRecord, Fault, NodeSpecChange, NodeWatch, Testbed};

/// A testbed, what its inventory declares per host (in host order) and where the
/// inventory file is; the tests rewrite it with another version.
struct Cluster {
    tb: Testbed,
    decls: Vec<Decl>,
    /// `cluster.calico.version` ([`Inventory::calico`]; empty: the tool's pick).
    calico: &'static str,
}

/// How many audit records each host had: "since" a mark is what a later run did.
type Marks = BTreeMap<String, usize>;

/// The releases the clusters are built at and upgraded to (testbed/k8s/build.sh builds
/// them, cached): two minors, and a patch upgrade within the newest.
const REAL_FROM: &str = "v1.34.2";
const REAL_HOPS: [&str; 2] = ["v1.35.4", "v1.36.3"];
const PATCH_FROM: &str = "v1.36.1";

/// "v1.35.4" -> "1.35.4", as an inventory writes it.
fn v(release: &str) -> &str {
    release.trim_start_matches('v')
}

impl Cluster {
    /// On the REAL control plane of [`REAL_FROM`], upgradable to the first minor hop.
    fn real(decls: Vec<Decl>) -> Cluster {
        Cluster::real_at(decls, REAL_FROM, &REAL_HOPS[..1])
    }

    /// On the REAL control plane of `from` (tests/up_real.rs): real packages and
    /// containerd, the kubeadm and kubectl packages of `from` and of every release of
    /// `later` carrying the built binaries, the kubelet stand-in against the real API
    /// server.
    fn real_at(decls: Vec<Decl>, from: &str, later: &[&str]) -> Cluster {
        let releases: Vec<&str> = std::iter::once(from).chain(later.iter().copied()).collect();
        let tb = support::real_releases(&releases)
            .hosts(decls.len())
            .build()
            .unwrap_or_else(|e| panic!("cannot build a real-Kubernetes testbed: {e}"));
        // Calico unpinned: the tool picks the release tested on each minor (v3.30 does
        // not cover 1.36).
        Cluster {
            tb,
            decls,
            calico: "",
        }
    }

    /// A record of the Node spec changes (cordons, uncordons, taints) the real API
    /// server applies from now on ([`Cluster::cordons`]).
    fn watch(&self) -> NodeWatch<'_> {
        self.tb
            .watch_node_specs(&self.first_cp())
            .unwrap_or_else(|e| panic!("cannot watch the nodes: {e}"))
    }

    /// The Node spec changes `watch` recorded, in the API server's order.
    fn cordons(&self, watch: &NodeWatch) -> Vec<NodeSpecChange> {
        watch
            .changes()
            .unwrap_or_else(|e| panic!("the node watch: {e}"))
    }

    /// Writes the inventory with `kubernetesVersion: version`.
    fn inventory(&self, version: &str) -> PathBuf {
        Inventory {
            version,
            calico: self.calico,
            ..Inventory::new(&self.decls)
        }
        .write(&self.tb)
    }

    /// `bootstrap CMD EXTRA... INVENTORY(version) --log-dir DIR/runs`; `up` with
    /// [`UP_TIMEOUT`].
    fn bootstrap(&self, cmd: &str, version: &str, extra: &[&str]) -> Ran {
        let inv = self.inventory(version);
        let args: Vec<&str> = std::iter::once(cmd)
            .chain(up_timeout(cmd).iter().copied())
            .chain(extra.iter().copied())
            .collect();
        support::run_on(&self.tb, &args, &inv, &[])
    }

    /// `up` that must succeed.
    fn up_ok(&self, version: &str, extra: &[&str]) -> Ran {
        let ran = self.bootstrap("up", version, extra);
        assert_eq!(ran.code, Some(0), "up to {version} failed:\n{}", ran.stderr);
        ran
    }

    fn first_cp(&self) -> String {
        self.tb.hosts()[0].name.clone()
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let argv: Vec<&str> = support::KUBECTL.iter().chain(args).copied().collect();
        support::exec(&self.tb, &self.first_cp(), &argv)
    }

    /// `kubectl apply -f -` of `yaml` on the control plane.
    fn apply(&self, yaml: &str) {
        let script = format!(
            "{} apply -f - <<'EOF'\n{yaml}\nEOF\n",
            support::KUBECTL.join(" ")
        );
        support::exec(&self.tb, &self.first_cp(), &["sh", "-c", &script]);
    }

    /// Every node object, by name.
    fn nodes(&self) -> BTreeMap<String, Value> {
        let list: Value =
            serde_json::from_str(&self.kubectl(&["get", "nodes", "-o", "json"])).unwrap();
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    n["metadata"]["name"].as_str().unwrap().to_string(),
                    n.clone(),
                )
            })
            .collect()
    }

    fn marks(&self) -> Marks {
        self.tb
            .hosts()
            .iter()
            .map(|h| (h.name.clone(), self.tb.audit(&h.name).unwrap().len()))
            .collect()
    }

    /// What each host's audit log got since `marks`.
    fn since(&self, marks: &Marks) -> BTreeMap<String, Vec<AuditRecord>> {
        marks
            .iter()
            .map(|(h, m)| (h.clone(), self.tb.audit(h).unwrap().split_off(*m)))
            .collect()
    }

    /// The version of a package on a host, e.g. "1.34.2-1.1", and whether it is held.
    fn package(&self, host: &str, pkg: &str) -> (String, bool) {
        let out = support::exec(
            &self.tb,
            host,
            &["dpkg-query", "-W", "-f=${db:Status-Abbrev}${Version}", pkg],
        );
        let (status, version) = out.split_at(3);
        (version.to_string(), status.starts_with('h'))
    }

    /// Asserts every host is a Ready node at `version` with kubelet, kubeadm and kubectl
    /// at that version, held, uncordoned and not marked as being upgraded.
    fn assert_all_at(&self, version: &str) {
        let nodes = self.nodes();
        for h in self.tb.hosts() {
            let n = &nodes[&h.name];
            assert_eq!(
                n["status"]["nodeInfo"]["kubeletVersion"],
                format!("v{version}"),
                "{}",
                h.name
            );
            assert!(
                ready(n),
                "{} not Ready: {:#}",
                h.name,
                n["status"]["conditions"]
            );
            assert_eq!(out_of_service(n), (false, false), "{}: {n:#}", h.name);
            for pkg in ["kubelet", "kubeadm", "kubectl"] {
                let (v, held) = self.package(&h.name, pkg);
                assert!(
                    v.starts_with(&format!("{version}-")),
                    "{}: {pkg} {v}",
                    h.name
                );
                assert!(held, "{}: {pkg} is not held", h.name);
            }
            let list = String::from_utf8(
                self.tb
                    .read_file(&h.name, "/etc/apt/sources.list.d/kubernetes.list")
                    .unwrap(),
            )
            .unwrap();
            let minor = version.rsplit_once('.').unwrap().0;
            assert!(
                list.contains(&format!("/v{minor}/deb/")),
                "{}: {list}",
                h.name
            );
        }
    }
}

/// `--timeout` of every `up`: the real control plane on a loaded machine (2 cores
/// shared with other builds and tests) takes minutes per upgrade hop.
const UP_TIMEOUT: [&str; 2] = ["--timeout", "10m"];

fn up_timeout(cmd: &str) -> &'static [&'static str] {
    if cmd == "up" {
        &UP_TIMEOUT
    } else {
        &[]
    }
}

impl Cluster {
    /// One replica of Deployment `solo` pinned to the nodes labeled `type=node_type`,
    /// protected by a PodDisruptionBudget that allows no eviction (minAvailable 1).
    fn protect_one_replica(&self, node_type: &str) {
        self.apply(&format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: solo, namespace: default}}\n\
             spec:\n  replicas: 1\n  selector: {{matchLabels: {{app: solo}}}}\n  template:\n\
             \x20   metadata: {{labels: {{app: solo}}}}\n    spec:\n      nodeSelector: {{type: {node_type}}}\n\
             \x20     containers: [{{name: nginx, image: nginx}}]\n",
        ));
        self.kubectl(&["rollout", "status", "deployment/solo", "--timeout=120s"]);
        self.kubectl(&[
            "create",
            "pdb",
            "solo",
            "--selector=app=solo",
            "--min-available=1",
        ]);
    }

    /// Where the pods of `solo` run and their phase: "node3 Running".
    fn solo_pod(&self) -> String {
        self.kubectl(&[
            "get",
            "pods",
            "-l",
            "app=solo",
            "-o",
            "jsonpath={.items[*].spec.nodeName} {.items[*].status.phase}",
        ])
    }
}

/// `up --output json` gave up on `host`'s drain: exit 7 (a wait that ran out,
/// docs/output.md), the host and kubectl's reason (the disruption budget) reported.
fn assert_blocked_drain(ran: &Ran, host: &str) {
    assert_eq!(
        ran.code,
        Some(7),
        "up with a blocked drain:\n{}",
        ran.stderr
    );
    assert!(ran.stderr.contains(host), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("disruption budget"),
        "kubectl's reason is not reported:\n{}",
        ran.stderr
    );
    let doc = ran.document();
    assert_eq!(doc["outcome"], "timeout", "{doc:#}");
    assert_eq!(doc["error"]["host"], host, "{doc:#}");
    assert!(
        doc["error"]["step"]
            .as_str()
            .unwrap_or("")
            .contains("drain"),
        "{doc:#}"
    );
}

const UPGRADING: &str = "bootstrap.dev/upgrading";

/// (cordoned, annotated as being upgraded by the tool).
fn out_of_service(node: &Value) -> (bool, bool) {
    (
        node["spec"]["unschedulable"] == true,
        node["metadata"]["annotations"].get(UPGRADING).is_some(),
    )
}

fn ready(node: &Value) -> bool {
    node["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// A node's labels and the taints somebody declared (not the node lifecycle
/// controller's `node.kubernetes.io/*`), to compare before and after an upgrade.
fn identity(node: &Value) -> (Value, Vec<String>) {
    let mut taints = support::node_taints(node);
    taints.sort();
    (node["metadata"]["labels"].clone(), taints)
}

// ---------------------------------------------------------------------------------------
// The audit log as one timeline
// ---------------------------------------------------------------------------------------

/// One stand-in invocation (a `cmd` record) on some host.
#[derive(Debug, Clone)]
struct Event {
    host: String,
    ts: f64,
    argv: Vec<String>,
    exit: Option<i32>,
}

impl Event {
    fn is(&self, cmd: &str, words: &[&str]) -> bool {
        self.argv.first().is_some_and(|c| c == cmd)
            && words.iter().all(|w| self.argv.iter().any(|a| a == w))
    }

    /// An argument starts with `prefix` (e.g. "kubeadm=1.34.2-").
    fn has_arg_prefix(&self, prefix: &str) -> bool {
        self.argv.iter().any(|a| a.starts_with(prefix))
    }

    fn ok(&self) -> bool {
        self.exit == Some(0)
    }
}

/// Every command the stand-ins ran on any host since `marks`, in the order they ended.
fn timeline(runs: &BTreeMap<String, Vec<AuditRecord>>) -> Vec<Event> {
    let mut out: Vec<Event> = runs
        .iter()
        .flat_map(|(host, recs)| {
            recs.iter().filter(|r| r.kind == "cmd").map(move |r| Event {
                host: host.clone(),
                ts: r.ts,
                argv: r.argv.clone(),
                exit: r.exit,
            })
        })
        .collect();
    out.sort_by(|a, b| a.ts.total_cmp(&b.ts));
    out
}

/// A command of the upgrade procedure: a name for messages, the host it runs on and
/// how to recognise it.
struct Step {
    what: String,
    host: String,
    matches: Box<dyn Fn(&Event) -> bool>,
}

fn step(what: impl Into<String>, host: &str, matches: impl Fn(&Event) -> bool + 'static) -> Step {
    Step {
        what: what.into(),
        host: host.to_string(),
        matches: Box::new(matches),
    }
}

/// Asserts that `chain` happened in this order: each step succeeded (exit 0) on its host
/// after the previous step's success. Returns the events that matched.
fn assert_chain(events: &[Event], chain: &[Step]) -> Vec<Event> {
    let mut from = 0;
    let mut seen = Vec::new();
    for s in chain {
        let found = events[from..]
            .iter()
            .position(|e| e.host == s.host && e.ok() && (s.matches)(e));
        let Some(i) = found else {
            let after: Vec<String> = events[from..]
                .iter()
                .filter(|e| e.host == s.host)
                .map(|e| format!("{:?} -> {:?}", e.argv, e.exit))
                .collect();
            let before: Vec<String> = seen
                .iter()
                .map(|e: &Event| format!("{:?}", e.argv))
                .collect();
            panic!(
                "`{}` on {} not found in order.\nmatched so far: {before:#?}\n{} ran afterwards: {after:#?}",
                s.what, s.host, s.host
            );
        };
        seen.push(events[from + i].clone());
        from += i + 1;
    }
    seen
}

/// Reference §8 for one node moving to `v` ("1.34.2"), as chains of steps that must
/// each be in order (the steps of different chains may interleave as the reference
/// allows, e.g. `apt-get update` before or after `apt-mark unhold`). `first`: the first
/// control plane (plan + apply instead of `kubeadm upgrade node`). The `apt-get update`
/// is required: every caller moves to a version the node's package lists do not have yet
/// (another minor's repository, or a patch released after the last update); to a version
/// already in the lists `up` rightly skips it, and this is not the check for that.
fn reference_chains(node: &str, cp: &str, first: bool, v: &str) -> Vec<Vec<Step>> {
    let pkg = |p: &str| format!("{p}={v}-");
    let (kubeadm, kubelet, kubectl) = (pkg("kubeadm"), pkg("kubelet"), pkg("kubectl"));
    let target = format!("v{v}");
    let n = node.to_string();
    let install = |arg: &str| {
        let arg = arg.to_string();
        step(format!("apt-get install {arg}*"), node, move |e| {
            e.is("apt-get", &["install"]) && e.has_arg_prefix(&arg)
        })
    };
    let mark = |verb: &'static str, p: &'static str| {
        step(format!("apt-mark {verb} {p}"), node, move |e| {
            e.is("apt-mark", &[verb, p])
        })
    };
    let kubeadm_upgrade = || -> Vec<Step> {
        if first {
            let t = target.clone();
            vec![
                step("kubeadm upgrade plan", node, |e| {
                    e.is("kubeadm", &["upgrade", "plan"])
                }),
                step(format!("kubeadm upgrade apply {t}"), node, move |e| {
                    e.is("kubeadm", &["upgrade", "apply", &t])
                }),
            ]
        } else {
            vec![step("kubeadm upgrade node", node, |e| {
                e.is("kubeadm", &["upgrade", "node"])
            })]
        }
    };
    let on_cp = |verb: &'static str| {
        let n = n.clone();
        step(format!("kubectl {verb} {n} (on {cp})"), cp, move |e| {
            e.is("kubectl", &[verb])
                && e.argv
                    .iter()
                    .any(|a| a == &n || a.ends_with(&format!("/{n}")))
        })
    };
    let mut main = vec![
        step("apt-get update", node, |e| e.is("apt-get", &["update"])),
        install(&kubeadm),
    ];
    main.extend(kubeadm_upgrade());
    main.extend([
        on_cp("drain"),
        install(&kubelet),
        step("systemctl daemon-reload", node, |e| {
            e.is("systemctl", &["daemon-reload"])
        }),
        step("systemctl restart kubelet", node, |e| {
            e.is("systemctl", &["restart", "kubelet"])
        }),
        on_cp("wait"),
        on_cp("uncordon"),
    ]);
    let mut held_kubeadm = vec![
        mark("unhold", "kubeadm"),
        install(&kubeadm),
        mark("hold", "kubeadm"),
    ];
    held_kubeadm.extend(kubeadm_upgrade());
    vec![
        main,
        held_kubeadm,
        vec![
            on_cp("drain"),
            mark("unhold", "kubelet"),
            install(&kubelet),
            mark("hold", "kubelet"),
        ],
        vec![
            mark("unhold", "kubectl"),
            install(&kubectl),
            mark("hold", "kubectl"),
        ],
    ]
}

/// Asserts the reference order on every node of `order` (the first is the first control
/// plane) for a move to `v`; returns, per node, when its kubelet restart happened.
fn assert_reference_order(events: &[Event], order: &[String], v: &str) -> BTreeMap<String, f64> {
    let cp = &order[0];
    let mut restarts = BTreeMap::new();
    for (i, node) in order.iter().enumerate() {
        for chain in reference_chains(node, cp, i == 0, v) {
            let seen = assert_chain(events, &chain);
            if let Some(r) = seen
                .iter()
                .find(|e| e.is("systemctl", &["restart", "kubelet"]))
            {
                restarts.insert(node.clone(), r.ts);
            }
        }
    }
    restarts
}

/// The commands that change a node's Kubernetes software or its schedulability.
fn is_mutating(e: &Event) -> bool {
    (e.is("apt-get", &["install"]) || e.is("apt-get", &["upgrade"]))
        || e.is("apt-mark", &["unhold"])
        || e.is("kubeadm", &["upgrade", "apply"])
        || e.is("kubeadm", &["upgrade", "node"])
        || e.is("kubectl", &["drain"])
        || e.is("kubectl", &["cordon"])
        || e.is("kubectl", &["uncordon"])
        || e.is("systemctl", &["restart"])
}

/// Whether `e` is about `node`: a kubectl command naming it (wherever it ran), or any
/// other command on the host itself.
fn touches(e: &Event, node: &str) -> bool {
    if e.argv.first().is_some_and(|c| c == "kubectl") {
        e.argv
            .iter()
            .any(|a| a == node || a.ends_with(&format!("/{node}")))
    } else {
        e.host == node
    }
}

/// The mutating commands that touched `node`.
fn touching(events: &[Event], node: &str) -> Vec<Event> {
    events
        .iter()
        .filter(|e| is_mutating(e) && touches(e, node))
        .cloned()
        .collect()
}

fn shown(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| format!("{}: {:?} -> {:?}", e.host, e.argv, e.exit))
        .collect()
}

/// Asserts, from the API server's record of Node spec changes, that every node of
/// `nodes` was cordoned during the rollout and uncordoned afterwards (its last change
/// leaves it schedulable), and that never more than `limit` nodes were cordoned at once.
/// Returns the most that were.
fn assert_rolled_through(cordons: &[NodeSpecChange], nodes: &[String], limit: usize) -> usize {
    let (most, at) = testbed::max_unschedulable(cordons);
    assert!(most <= limit, "cordoned at once: {at:?}\n{cordons:#?}");
    for n in nodes {
        let of_n: Vec<&NodeSpecChange> = cordons.iter().filter(|c| &c.node == n).collect();
        assert!(
            of_n.iter().any(|c| c.unschedulable),
            "{n} was never cordoned: {cordons:#?}"
        );
        assert!(
            of_n.last().is_some_and(|c| !c.unschedulable),
            "{n} was not uncordoned after its cordon: {cordons:#?}"
        );
    }
    most
}

// ---------------------------------------------------------------------------------------
// The scenarios
// ---------------------------------------------------------------------------------------

/// The article's layout with one more worker: node1 the control plane (type=mysql, no
/// taint), node2-node4 workers (type=wordpress; node4 also tainted dedicated=db).
fn four_hosts() -> Vec<Decl> {
    let mut d = support::article_decls();
    d.insert(2, d[1].clone());
    d
}

/// 1 control plane + 3 workers, 1.34.2 -> 1.35.4: `plan` lists exactly what `up` then
/// runs; `up` follows the reference order on every node, with never more than one node
/// cordoned at a time (the default --max-unavailable for 3 workers); afterwards every
/// node is Ready at 1.35.4, labels and taints are as before and the workloads run where
/// their nodeSelectors say.
#[test]
fn minor_upgrade_follows_the_reference_one_node_at_a_time() {
    let c = Cluster::real(four_hosts());
    let (from, to) = (v(REAL_FROM), v(REAL_HOPS[0]));
    c.up_ok(from, &[]);
    support::deploy_wordpress(&c.tb, "node1");
    let before: BTreeMap<String, (Value, Vec<String>)> = c
        .nodes()
        .iter()
        .map(|(n, v)| (n.clone(), identity(v)))
        .collect();

    // plan: exit 2, the hop and every node's steps.
    let observed = Snapshot::of(&c.tb, "node1");
    let plan = c.bootstrap("plan", to, &["--output", "json"]);
    assert_eq!(plan.code, Some(2), "plan:\n{}", plan.stderr);
    let planned = planned_steps(&plan.document());
    for h in ["node1", "node2", "node3", "node4"] {
        for s in [
            "upgrade-kubeadm",
            "drain",
            "upgrade-kubelet",
            "restart-kubelet",
            "uncordon",
        ] {
            assert!(
                planned.contains(&(h.into(), s.into())),
                "{h} {s} not planned: {planned:#?}"
            );
        }
    }
    assert!(
        planned.contains(&("node1".into(), "upgrade-apply".into())),
        "{planned:#?}"
    );
    assert!(
        !planned.contains(&("node2".into(), "upgrade-apply".into())),
        "{planned:#?}"
    );
    assert_unchanged(&c.tb, "node1", &observed, "plan");

    let watch = c.watch();
    let marks = c.marks();
    let started = Instant::now();
    c.up_ok(to, &[]);
    eprintln!("the 4-host upgrade to {to} took {:?}", started.elapsed());
    let runs = c.since(&marks);
    let events = timeline(&runs);
    let order: Vec<String> = ["node1", "node2", "node3", "node4"]
        .map(String::from)
        .to_vec();
    assert_reference_order(&events, &order, to);
    assert_plan_was_run(&planned, &events, "node1");

    // Never more than one node unschedulable, and each of them was, then uncordoned.
    let most = assert_rolled_through(&c.cordons(&watch), &order, 1);
    assert_eq!(most, 1);

    c.assert_all_at(to);
    let after: BTreeMap<String, (Value, Vec<String>)> = c
        .nodes()
        .iter()
        .map(|(n, v)| (n.clone(), identity(v)))
        .collect();
    assert_eq!(before, after, "labels or taints changed");
    // The drains evicted the pods; their Deployments bring them back where the
    // nodeSelectors say, once the real scheduler and the kubelets got to them.
    let placed_right = |(placed, _): &(Vec<(String, String, String)>, Value)| {
        let mysql: Vec<_> = placed.iter().filter(|p| p.0 == "mysql").collect();
        let wordpress: Vec<_> = placed.iter().filter(|p| p.0 == "wordpress").collect();
        // node4 is tainted: wordpress on node2 and node3 only.
        mysql == [&support::running("mysql", "node1")]
            && wordpress.len() == 2
            && wordpress
                .iter()
                .all(|p| p.2 == "Running" && ["node2", "node3"].contains(&p.1.as_str()))
    };
    support::eventually(
        "mysql on node1, wordpress on node2 and node3",
        Duration::from_secs(120),
        || support::pod_placement(&c.tb, "node1"),
        placed_right,
    );

    // Converged: plan has nothing to do.
    let plan = c.bootstrap("plan", to, &[]);
    assert_eq!(
        plan.code,
        Some(0),
        "plan after the upgrade:\n{}",
        plan.stderr
    );
}

/// A patch released after the cluster was built (pkgs.k8s.io grows: the hosts' package
/// lists end at 1.36.1 until an `apt-get update`): `up` to 1.36.3 takes the reference
/// path, `apt-get update` included, with two workers at a time at most.
#[test]
fn a_new_patch_release_is_fetched_and_rolled_out_two_workers_at_a_time() {
    let to = REAL_HOPS[1];
    let c = Cluster::real_at(support::article_decls(), PATCH_FROM, &[to]);
    c.tb.publish_kubernetes(36, Some(1)).unwrap();
    c.up_ok(v(PATCH_FROM), &[]);
    c.tb.publish_kubernetes(36, None).unwrap();
    let madison = support::exec(&c.tb, "node2", &["apt-cache", "madison", "kubeadm"]);
    assert!(
        !madison.contains(v(to)),
        "the lists are from before {to}: {madison}"
    );

    let plan = c.bootstrap("plan", v(to), &[]);
    assert_eq!(plan.code, Some(2), "{}", plan.stderr);
    let watch = c.watch();
    let marks = c.marks();
    let started = Instant::now();
    c.up_ok(v(to), &["--max-unavailable", "2"]);
    eprintln!(
        "the 3-host patch upgrade to {to} took {:?}",
        started.elapsed()
    );
    let events = timeline(&c.since(&marks));
    let order = ["node1", "node2", "node3"].map(String::from).to_vec();
    assert_reference_order(&events, &order, v(to));
    assert_rolled_through(&c.cordons(&watch), &order, 2);
    c.assert_all_at(v(to));
}

/// (host, step) of every step a `plan --output json` document lists: the hosts' own
/// steps and the cluster's upgrade steps.
fn planned_steps(doc: &Value) -> BTreeSet<(String, String)> {
    let text = |v: &Value| v.as_str().unwrap().to_string();
    let mut out: BTreeSet<(String, String)> = doc["cluster"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["phase"] == "upgrade")
        .map(|s| (text(&s["host"]), text(&s["step"])))
        .collect();
    for h in doc["hosts"].as_array().unwrap() {
        for s in h["steps"].as_array().unwrap() {
            out.insert((text(&h["name"]), text(&s["step"])));
        }
    }
    out
}

/// Every upgrade step `plan` listed ran (its command is in the audit log of the host it
/// runs on), and every command that changed a node's software or schedulability belongs
/// to a planned step.
fn assert_plan_was_run(planned: &BTreeSet<(String, String)>, events: &[Event], cp: &str) {
    for (host, step) in planned {
        assert!(
            events.iter().any(|e| e.ok() && explains(step, host, cp, e)),
            "planned `{step}` on {host} did not run; ran: {:#?}",
            shown(events)
        );
    }
    for e in events.iter().filter(|e| is_mutating(e)) {
        assert!(
            planned.iter().any(|(h, s)| explains(s, h, cp, e)),
            "ran but not planned: {}: {:?}",
            e.host,
            e.argv
        );
    }
}

/// Whether the audit event `e` is (part of) the planned `step` for node `host`.
fn explains(step: &str, host: &str, cp: &str, e: &Event) -> bool {
    let on_node = e.host == host;
    let pkg = |p: &str| e.has_arg_prefix(&format!("{p}=")) || e.argv.iter().any(|a| a == p);
    let packages = e.is("apt-get", &["install"]) || e.is("apt-mark", &[]);
    match step {
        "upgrade-kubeadm" => on_node && packages && pkg("kubeadm"),
        "upgrade-kubelet" => on_node && packages && (pkg("kubelet") || pkg("kubectl")),
        "upgrade-kubectl" => on_node && packages && pkg("kubectl"),
        "upgrade-plan" => on_node && e.is("kubeadm", &["upgrade", "plan"]),
        "upgrade-apply" => on_node && e.is("kubeadm", &["upgrade", "apply"]),
        "upgrade-node" => on_node && e.is("kubeadm", &["upgrade", "node"]),
        "restart-kubelet" => on_node && e.is("systemctl", &[]),
        // A drain that fails is undone with an uncordon: part of the drain step.
        "drain" => {
            e.host == cp
                && touches(e, host)
                && (e.is("kubectl", &["drain"]) || e.is("kubectl", &["annotate"]))
        }
        "wait-node" => e.host == cp && touches(e, host) && e.is("kubectl", &["wait"]),
        "uncordon" => {
            e.host == cp
                && touches(e, host)
                && (e.is("kubectl", &["uncordon"]) || e.is("kubectl", &["annotate"]))
        }
        "apt-update" => on_node && e.is("apt-get", &["update"]),
        "repo-key" => on_node && (e.is("curl", &[]) || e.is("gpg", &[])),
        // Steps without a stand-in command of their own (a file written by the shell):
        // the node ran something.
        _ => on_node && !is_mutating(e),
    }
}

/// `up` in the background, for tests that interfere with it.
fn spawn_up(c: &Cluster, version: &str, extra: &[&str]) -> Child {
    let inv = c.inventory(version);
    let runs = c.tb.dir().join("runs");
    let args = [
        "up",
        inv.to_str().unwrap(),
        "--log-dir",
        runs.to_str().unwrap(),
    ];
    support::bootstrap_command(&args, &[])
        .args(UP_TIMEOUT)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bootstrap")
}

/// Waits until `host`'s audit log (after `mark`) has an SSH command containing `text`.
fn wait_for_ssh(c: &Cluster, host: &str, mark: usize, text: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let seen = c.tb.audit(host).unwrap()[mark..]
            .iter()
            .any(|r| r.kind == "ssh" && r.argv.iter().any(|a| a.contains(text)));
        if seen {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output_now();
            panic!("up ended ({status}) before {host} ran `{text}`:\n{out}");
        }
        assert!(Instant::now() < deadline, "{host} never ran `{text}`");
        std::thread::sleep(Duration::from_millis(50));
    }
}

trait Finished {
    fn wait_with_output_now(&mut self) -> String;
}

impl Finished for Child {
    /// The stderr of a finished child.
    fn wait_with_output_now(&mut self) -> String {
        use std::io::Read;
        let mut err = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        err
    }
}

/// The part of reference §8 from the drain on, for a node whose kubeadm is already at
/// `v` (an earlier run prepared it).
fn finish_chain(node: &str, cp: &str, v: &str) -> Vec<Step> {
    let mut chains = reference_chains(node, cp, false, v);
    let main = chains.swap_remove(0);
    main.into_iter()
        .skip_while(|s| !s.what.starts_with("kubectl drain"))
        .collect()
}

/// After a run that stopped: who is finished (at `v`, Ready, schedulable), and who was
/// never taken out of service in that run (kubelet still at `old`, never cordoned while
/// `watch` ran). Every node must be one of the two, or `broken`.
fn split_after_failure(
    c: &Cluster,
    watch: &NodeWatch,
    broken: &str,
    v: &str,
    old: &str,
) -> (Vec<String>, Vec<String>) {
    let cordons = c.cordons(watch);
    let cordoned: BTreeSet<&str> = cordons
        .iter()
        .filter(|c| c.unschedulable)
        .map(|c| c.node.as_str())
        .collect();
    let (mut done, mut waiting) = (Vec::new(), Vec::new());
    for (name, n) in c.nodes() {
        if name == broken {
            continue;
        }
        let kubelet = n["status"]["nodeInfo"]["kubeletVersion"]
            .as_str()
            .unwrap()
            .to_string();
        if kubelet == format!("v{v}") {
            assert!(
                ready(&n) && n["spec"]["unschedulable"] != true,
                "{name}: {n:#}"
            );
            done.push(name);
        } else {
            assert_eq!(kubelet, format!("v{old}"), "{name} is half-done");
            assert!(
                !cordoned.contains(name.as_str()),
                "{name} was drained and not finished: {cordons:#?}"
            );
            assert_ne!(n["spec"]["unschedulable"], true, "{name}");
            waiting.push(name);
        }
    }
    // Once `broken` was taken out of service no other node was: the rollout stopped.
    let first = cordons
        .iter()
        .position(|c| c.node == broken && c.unschedulable);
    let first = first.unwrap_or_else(|| panic!("{broken} was never cordoned: {cordons:#?}"));
    let later: Vec<_> = cordons[first..]
        .iter()
        .filter(|c| c.node != broken && c.unschedulable)
        .collect();
    assert!(
        later.is_empty(),
        "drained after {broken} failed: {later:#?}"
    );
    assert!(testbed::max_unschedulable(&cordons).0 <= 1, "{cordons:#?}");
    (done, waiting)
}

/// A 4-host cluster at 1.34.2 whose `up` to 1.35.4 lost node3 (powered off after its
/// drain, as its kubelet upgrade began); node3 is back on. Returns the cluster and the
/// nodes that were done / not yet taken out of service when the run stopped.
fn interrupted_upgrade() -> (Cluster, Vec<String>, Vec<String>) {
    let c = Cluster::real(four_hosts());
    let (from, to) = (v(REAL_FROM), v(REAL_HOPS[0]));
    c.up_ok(from, &[]);
    // node3's apt-get waits 1.5 s before it runs (time to pull its plug as its kubelet
    // upgrade begins); node4's 4 s: its repository switch and kubeadm upgrade, which
    // come before its drain, keep it waiting until after node3's.
    let slow_apt = Fault::Slow {
        command: "apt-get".into(),
        seconds: 1.5,
    };
    let slower_apt = Fault::Slow {
        command: "apt-get".into(),
        seconds: 4.0,
    };
    c.tb.fault("node3", slow_apt.clone()).unwrap();
    c.tb.fault("node4", slower_apt).unwrap();
    let watch = c.watch();
    let mark = c.tb.audit("node3").unwrap().len();
    let mut up = spawn_up(&c, to, &[]);
    wait_for_ssh(&c, "node3", mark, "kubelet=", &mut up);
    std::thread::sleep(Duration::from_millis(700));
    c.tb.stop("node3").unwrap();
    let out = up.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "--- interrupted up exited {:?}:\n{stderr}",
        out.status.code()
    );
    assert!(
        !out.status.success() && out.status.code() != Some(2),
        "{stderr}"
    );
    assert!(stderr.contains("node3"), "{stderr}");
    // Drained before its kubelet, and marked as the upgrade's.
    assert_eq!(out_of_service(&c.nodes()["node3"]), (true, true));
    let (done, waiting) = split_after_failure(&c, &watch, "node3", to, from);
    assert!(
        done.contains(&"node1".to_string()) && waiting.contains(&"node4".to_string()),
        "done {done:?}, waiting {waiting:?}"
    );
    c.tb.clear_fault("node3", &slow_apt.file_name()).unwrap();
    c.tb.clear_fault("node4", &slow_apt.file_name()).unwrap();
    c.tb.start("node3").unwrap();
    drop(watch);
    (c, done, waiting)
}

/// A worker powered off in the middle of its upgrade: the run fails and no other worker
/// is taken out of service. Once the host is back, `plan` lists exactly what the next
/// `up` runs, and that `up` finishes the job: the nodes done before are not touched
/// again, the broken one is repaired and uncordoned, the waiting ones are upgraded. (One
/// cluster for both: `plan` only reads.)
#[test]
fn an_interrupted_upgrade_is_planned_and_resumed_without_redoing_finished_nodes() {
    let (c, done, waiting) = interrupted_upgrade();
    let to = v(REAL_HOPS[0]);
    let plan = c.bootstrap("plan", to, &["--output", "json"]);
    assert_eq!(plan.code, Some(2), "{}", plan.stderr);
    let planned = planned_steps(&plan.document());
    let marks = c.marks();
    c.up_ok(to, &[]);
    let events = timeline(&c.since(&marks));
    assert_plan_was_run(&planned, &events, "node1");
    for n in &done {
        let touched = touching(&events, n);
        assert!(
            touched.is_empty(),
            "{n} was finished and is touched again: {:#?}",
            shown(&touched)
        );
    }
    for n in waiting.iter().map(String::as_str).chain(["node3"]) {
        let rest: Vec<Step> = finish_chain(n, "node1", to)
            .into_iter()
            // node3 may need no new kubelet (dpkg finishes the unpacked one) and no
            // restart (the boot started it): then only the uncordon is left.
            .filter(|s| n != "node3" || s.what.starts_with("kubectl uncordon"))
            .collect();
        assert_chain(&events, &rest);
    }
    c.assert_all_at(to);
}

/// A PodDisruptionBudget that allows no eviction blocks node3's drain: the real eviction
/// API refuses (429) and `up` waits --drain-timeout, never forces, uncordons node3,
/// reports it with kubectl's own reason and exits 7 (a wait that ran out,
/// docs/output.md), taking no other worker out of service. With the budget gone, the
/// next `up` finishes.
#[test]
fn a_drain_blocked_by_a_pdb_is_reported_and_the_node_uncordoned() {
    let mut decls = support::article_decls()[..2].to_vec();
    decls.push(Decl {
        role: "worker",
        labels: &[("type", "solo")],
        taints: None,
    });
    decls.push(decls[1].clone());
    let c = Cluster::real(decls);
    let (from, to) = (v(REAL_FROM), v(REAL_HOPS[0]));
    c.up_ok(from, &[]);
    // One replica pinned to node3, protected by a budget that allows no eviction.
    c.protect_one_replica("solo");
    // node4's repository switch and kubeadm (before its drain in the reference order)
    // take 3 s longer each: it is still waiting when node3's drain gives up.
    let slow = Fault::Slow {
        command: "apt-get".into(),
        seconds: 3.0,
    };
    c.tb.fault("node4", slow.clone()).unwrap();

    let watch = c.watch();
    let marks = c.marks();
    let ran = c.bootstrap("up", to, &["--drain-timeout", "10s", "--output", "json"]);
    assert_blocked_drain(&ran, "node3");
    // The eviction API's own refusal, as the real kubectl words it.
    assert!(
        ran.stderr
            .contains("Cannot evict pod as it would violate the pod's disruption budget"),
        "{}",
        ran.stderr
    );
    // The control plane moved, node3 did not and is back in service.
    assert_eq!(c.server_version(), REAL_HOPS[0]);
    let n3 = &c.nodes()["node3"];
    assert_eq!(
        out_of_service(n3),
        (false, false),
        "node3 left cordoned: {n3:#}"
    );
    assert_eq!(n3["status"]["nodeInfo"]["kubeletVersion"], REAL_FROM);
    let solo = c.solo_pod();
    assert_eq!(solo, "node3 Running", "the protected pod was evicted");
    let (done, waiting) = split_after_failure(&c, &watch, "node3", to, from);
    assert!(
        done.contains(&"node1".to_string()) && waiting.contains(&"node4".to_string()),
        "done {done:?}, waiting {waiting:?}"
    );
    let events = timeline(&c.since(&marks));
    let drains: Vec<&Event> = events
        .iter()
        .filter(|e| e.is("kubectl", &["drain", "node3"]))
        .collect();
    assert!(
        !drains.is_empty(),
        "no drain of node3: {:#?}",
        shown(&events)
    );
    let forced: Vec<Event> = events
        .iter()
        .filter(|e| {
            e.is("kubectl", &["drain"])
                && e.argv
                    .iter()
                    .any(|a| a == "--force" || a.starts_with("--disable-eviction"))
        })
        .cloned()
        .collect();
    assert!(forced.is_empty(), "{:#?}", shown(&forced));

    // The budget goes: the next run finishes, without touching the finished nodes.
    c.kubectl(&["delete", "pdb", "solo"]);
    c.tb.clear_fault("node4", &slow.file_name()).unwrap();
    let marks = c.marks();
    c.up_ok(to, &[]);
    let events = timeline(&c.since(&marks));
    for n in &done {
        let touched = touching(&events, n);
        assert!(touched.is_empty(), "{n}: {:#?}", shown(&touched));
    }
    c.assert_all_at(to);
}

/// Patch drift: kubeadm upgraded by hand on a worker (unhold, install the next patch) is
/// reported by `plan` and put back by `up`, without draining the node (only the kubelet
/// needs that).
#[test]
fn a_package_changed_by_hand_is_reported_and_put_back() {
    let newer = REAL_HOPS[1];
    let c = Cluster::real_at(support::article_decls()[..2].to_vec(), PATCH_FROM, &[newer]);
    let at = v(PATCH_FROM);
    c.up_ok(at, &[]);
    let by_hand = format!("{}-1.1", v(newer));
    support::exec(
        &c.tb,
        "node2",
        &["sh", "-c", &format!("apt-mark unhold kubeadm && DEBIAN_FRONTEND=noninteractive apt-get install -y kubeadm={by_hand}")],
    );
    assert_eq!(c.package("node2", "kubeadm"), (by_hand.clone(), false));
    let plan = c.bootstrap("plan", at, &["--output", "json"]);
    assert_eq!(plan.code, Some(2), "{}", plan.stderr);
    assert!(
        plan.stderr.contains(&by_hand),
        "plan does not say which kubeadm is there:\n{}",
        plan.stderr
    );
    let doc = plan.document();
    let fix = doc["cluster"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["host"] == "node2" && s["step"] == "upgrade-kubeadm");
    assert!(fix, "no kubeadm step planned for node2: {doc:#}");
    let watch = c.watch();
    let marks = c.marks();
    c.up_ok(at, &[]);
    c.assert_all_at(at);
    let events = timeline(&c.since(&marks));
    let installs: Vec<Event> = events
        .iter()
        .filter(|e| e.is("apt-get", &["install"]))
        .cloned()
        .collect();
    assert!(
        !installs.is_empty()
            && installs
                .iter()
                .all(|e| e.host == "node2" && e.has_arg_prefix(&format!("kubeadm={at}-"))),
        "{:#?}",
        shown(&installs)
    );
    let cordons = c.cordons(&watch);
    assert!(
        !cordons.iter().any(|c| c.unschedulable),
        "a kubeadm fix needs no drain: {cordons:#?}"
    );
}

/// The order checker itself, on a made-up audit timeline: the reference order for a
/// worker passes; the same commands with the drain before `kubeadm upgrade node`, or the
/// kubelet restarted before its package was installed, do not.
#[test]
fn the_order_checker_catches_misordered_steps() {
    let ev = |host: &str, argv: &str| Event {
        host: host.into(),
        ts: 0.0,
        argv: argv.split(' ').map(String::from).collect(),
        exit: Some(0),
    };
    let good = vec![
        ev("w", "apt-get update"),
        ev("w", "apt-mark unhold kubeadm"),
        ev("w", "apt-get install -y kubeadm=1.34.2-1.1"),
        ev("w", "apt-mark hold kubeadm"),
        ev("w", "kubeadm upgrade node"),
        ev("cp", "kubectl drain w --ignore-daemonsets"),
        ev("w", "apt-mark unhold kubelet kubectl"),
        ev(
            "w",
            "apt-get install -y kubelet=1.34.2-1.1 kubectl=1.34.2-1.1",
        ),
        ev("w", "apt-mark hold kubelet kubectl"),
        ev("w", "systemctl daemon-reload"),
        ev("w", "systemctl restart kubelet"),
        ev("cp", "kubectl wait --for=condition=Ready node/w"),
        ev("cp", "kubectl uncordon w"),
    ];
    let check = |events: Vec<Event>| {
        std::panic::catch_unwind(move || {
            for chain in reference_chains("w", "cp", false, "1.34.2") {
                assert_chain(&events, &chain);
            }
        })
        .is_ok()
    };
    assert!(check(good.clone()));
    let mut early_drain = good.clone();
    let drain = early_drain.remove(5);
    early_drain.insert(4, drain);
    assert!(!check(early_drain));
    let mut early_restart = good.clone();
    early_restart.swap(7, 10);
    assert!(!check(early_restart));
    let mut failed = good;
    failed[4].exit = Some(1);
    assert!(!check(failed));
}

// ---------------------------------------------------------------------------------------
// On the REAL control plane (issue 9)
// ---------------------------------------------------------------------------------------

impl Cluster {
    /// The real API server's `/version`, e.g. "v1.35.4".
    fn server_version(&self) -> String {
        let v: Value = serde_json::from_str(&self.kubectl(&["get", "--raw", "/version"])).unwrap();
        v["gitVersion"].as_str().unwrap_or("").to_string()
    }
}

/// The command lines that arrived over SSH since `marks`: (ts, host, line), in order.
fn ssh_lines(runs: &BTreeMap<String, Vec<AuditRecord>>) -> Vec<(f64, String, String)> {
    let mut out: Vec<(f64, String, String)> = runs
        .iter()
        .flat_map(|(host, recs)| {
            recs.iter()
                .filter(|r| r.kind == "ssh")
                .map(move |r| (r.ts, host.clone(), r.argv.join(" ")))
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// When the first SSH command line on `host` containing every word of `words` arrived.
fn ssh_at(lines: &[(f64, String, String)], host: &str, words: &[&str]) -> f64 {
    lines
        .iter()
        .find(|(_, h, l)| h == host && words.iter().all(|w| l.contains(w)))
        .map(|(ts, _, _)| *ts)
        .unwrap_or_else(|| {
            let on: Vec<&String> = lines
                .iter()
                .filter(|(_, h, _)| h == host)
                .map(|(_, _, l)| l)
                .collect();
            panic!("no command on {host} with {words:?}; it ran: {on:#?}")
        })
}

/// 1 control plane + 1 worker built by `up` at v1.34.2 through the real kubeadm, then the
/// inventory raised two minors at once: one `up` goes through 1.35 (its newest patch in the
/// repository, 1.35.4) on every node before 1.36.3, each hop the reference way: the real
/// `kubeadm upgrade apply` on the control plane and `kubeadm upgrade node` on the worker,
/// each node drained through the real API server's eviction API, its packages upgraded, its
/// kubelet restarted and the node uncordoned. The real API server, both kubelets and the
/// static pods' images then report 1.36.3, and the next run changes nothing. A downgrade
/// back to 1.35 is refused by `plan` and `up` (exit 5) before anything changes.
///
/// Issue 11 item 10 on the same cluster: without a written `calico.version` Calico
/// follows the Kubernetes minor. v3.30.3 is tested up to 1.35, so the run plans Calico
/// v3.32.0 and applies it once, after the last hop's `kubeadm upgrade apply` (the cni
/// phase follows the upgrade phase), never re-applying v3.30.3 at the middle hop.
///
/// (One test where there were two, one raising the inventory a minor at a time, the other
/// two minors at once, each with a cluster of its own: the single-minor hop is
/// minor_upgrade_follows_the_reference_one_node_at_a_time's, and CI's time goes to
/// building clusters.)
#[test]
fn real_upgrade_over_two_minors_goes_through_the_middle_one_and_downgrades_are_refused() {
    let c = Cluster::real_at(
        support::article_decls()[..2].to_vec(),
        REAL_FROM,
        &REAL_HOPS,
    );
    let calico_image = || support::calico_image(&c.tb, "node1");
    let (middle_v, last_v) = (v(REAL_HOPS[0]), v(REAL_HOPS[1]));
    c.up_ok(v(REAL_FROM), &[]);
    assert_eq!(c.server_version(), REAL_FROM);
    c.assert_all_at(v(REAL_FROM));
    assert!(calico_image().ends_with(":v3.30.3"), "{}", calico_image());

    // plan: exit 2, the 1.35 hop and Calico's move.
    let plan = c.bootstrap("plan", last_v, &[]);
    assert_eq!(plan.code, Some(2), "{}", plan.stderr);
    assert!(
        plan.stderr.contains("1.35"),
        "the plan does not show the 1.35 hop:\n{}",
        plan.stderr
    );
    let said = format!("{}{}", plan.stdout, plan.stderr);
    assert!(
        said.contains("calico-node runs v3.30.3, the inventory says v3.32.0"),
        "{said}"
    );

    let marks = c.marks();
    let started = Instant::now();
    c.up_ok(last_v, &[]);
    eprintln!(
        "the 2-host upgrade over two minors took {:?}",
        started.elapsed()
    );
    let runs = c.since(&marks);
    let events = timeline(&runs);
    let order = ["node1", "node2"].map(String::from).to_vec();
    // The middle hop at 1.35's newest patch in the repository (1.35.4), then 1.36.3; each
    // node restarted its kubelet at the middle hop before the last.
    let middle = assert_reference_order(&events, &order, middle_v);
    let last = assert_reference_order(&events, &order, last_v);
    for n in &order {
        assert!(
            middle[n] < last[n],
            "{n}: {last_v}'s restart before {middle_v}'s"
        );
    }
    let applies: Vec<&Event> = events
        .iter()
        .filter(|e| e.is("kubeadm", &["upgrade", "apply"]) && e.ok())
        .collect();
    let targets: Vec<&str> = applies
        .iter()
        .filter_map(|e| {
            e.argv
                .iter()
                .find(|a| a.starts_with("v1."))
                .map(String::as_str)
        })
        .collect();
    assert_eq!(targets, REAL_HOPS, "{:#?}", shown(&events));
    assert_eq!(c.server_version(), REAL_HOPS[1]);
    c.assert_all_at(last_v);

    // What arrived over SSH, hop by hop: apply on the control plane, its drain and
    // uncordon (kubectl on node1), then the worker's `kubeadm upgrade node`, drain and
    // uncordon; Calico's new manifest after the last hop's apply, the old one not again.
    let lines = ssh_lines(&runs);
    // Each hop's commands are those after the previous hop's last uncordon.
    let mut after = f64::MIN;
    for hop in REAL_HOPS {
        let hop_lines: Vec<(f64, String, String)> =
            lines.iter().filter(|l| l.0 > after).cloned().collect();
        let apply = ssh_at(&hop_lines, "node1", &["kubeadm upgrade apply", hop]);
        let drain1 = ssh_at(&hop_lines, "node1", &["drain node1"]);
        let uncordon1 = ssh_at(&hop_lines, "node1", &["uncordon node1"]);
        let node = ssh_at(&hop_lines, "node2", &["kubeadm upgrade node"]);
        let drain2 = ssh_at(&hop_lines, "node1", &["drain node2"]);
        let uncordon2 = ssh_at(&hop_lines, "node1", &["uncordon node2"]);
        assert!(
            apply < drain1 && drain1 < uncordon1 && apply < node && node < drain2,
            "{hop} out of order: apply {apply}, drain1 {drain1}, uncordon1 {uncordon1}, \
             node {node}, drain2 {drain2}"
        );
        assert!(
            drain2 < uncordon2,
            "{hop}: drain2 {drain2}, uncordon2 {uncordon2}"
        );
        after = uncordon2;
    }
    let last_apply = ssh_at(&lines, "node1", &["kubeadm upgrade apply", REAL_HOPS[1]]);
    let calico = ssh_at(&lines, "node1", &["calico/v3.32.0/manifests/calico.yaml"]);
    assert!(last_apply < calico, "apply {last_apply}, calico {calico}");
    let old_calico: Vec<&(f64, String, String)> = lines
        .iter()
        .filter(|l| l.2.contains("calico/v3.30.3/manifests"))
        .collect();
    assert!(old_calico.is_empty(), "{old_calico:#?}");
    assert!(calico_image().ends_with(":v3.32.0"), "{}", calico_image());
    // The static pods run the last release's images.
    let images = c.kubectl(&[
        "get",
        "pods",
        "-n",
        "kube-system",
        "-l",
        "component=kube-apiserver",
        "-o",
        "jsonpath={.items[*].spec.containers[*].image}",
    ]);
    assert!(images.ends_with(&format!(":{}", REAL_HOPS[1])), "{images}");

    let inv = c.inventory(last_v);
    support::snapshot::assert_converged_up(&c.tb, &inv, "the run after the upgrades");

    // Downgrade: refused (exit 5), by plan too, and nothing changed.
    let marks = c.marks();
    let observed = Snapshot::of(&c.tb, "node1");
    let plan = c.bootstrap("plan", middle_v, &[]);
    assert_eq!(plan.code, Some(5), "plan of a downgrade:\n{}", plan.stderr);
    assert!(plan.stderr.contains("downgrade"), "{}", plan.stderr);
    let up = c.bootstrap("up", middle_v, &[]);
    assert_eq!(up.code, Some(5), "up of a downgrade:\n{}", up.stderr);
    assert!(up.stderr.contains("downgrade"), "{}", up.stderr);
    assert_unchanged(&c.tb, "node1", &observed, "a refused downgrade");
    let runs = c.since(&marks);
    let mutating: Vec<Event> = timeline(&runs).into_iter().filter(is_mutating).collect();
    assert!(mutating.is_empty(), "{:#?}", shown(&mutating));
    c.assert_all_at(last_v);
}
