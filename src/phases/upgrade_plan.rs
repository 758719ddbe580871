//! The upgrade part of the plan: which Kubernetes versions the cluster goes through (one
//! minor at a time, reference §8) and, per hop, the steps each node needs.
//!
//! Pure, and shared by `plan` and the upgrade phase: `plan` calls [`node_steps`] with the
//! facts gathered at the start, the phase calls it again per node with fresh facts right
//! before it works on that node. So what `plan` shows is what `up` runs, and a run that
//! was interrupted anywhere resumes at the first step still needed on each node: a node
//! already at the target plans nothing and is not touched again.
//!
//! Hops: the cluster's version is the API server's (its static Pod manifest on the first
//! control plane). A node left more than a minor behind by an interrupted run is first
//! brought to the cluster's version; then each minor up to the inventory's, the
//! intermediate ones at their newest patch, the last at the inventory's exact version.
//! Downgrades, and nodes newer than the inventory, are refused before anything changes.

use std::collections::BTreeMap;
use std::fmt;

use semver::Version;
use serde::Serialize;

use crate::cluster::Node;
use crate::facts::HostFacts;
use crate::inventory::{Host, Inventory, Role};
use crate::plan::{self, PlannedStep, Vars};
use crate::playbook::PlaybookError;

/// The playbooks the upgrade uses (playbooks/*.yaml).
pub const PACKAGES: &str = super::host_steps::PACKAGES;
pub const UPGRADE: &str = "upgrade";
pub const MAINTENANCE: &str = "node-maintenance";

/// The annotation on a node the upgrade cordoned (value: the version it moves to).
pub const UPGRADING_ANNOTATION: &str = "bootstrap.dev/upgrading";

/// The versions the cluster goes through, and what each node needs in the first hop.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UpgradePlan {
    /// The API server's version now, e.g. "1.32.5".
    pub from: String,
    /// The inventory's version.
    pub to: String,
    /// In order. "1.33" = the newest 1.33 patch, resolved on the first control plane once
    /// its repository points at 1.33.
    pub hops: Vec<String>,
    /// Per hop, per node (control planes first, then workers, inventory order): the
    /// steps it needs. The first hop's are exact; later hops are planned from today's
    /// facts, which are behind every later hop, so they show every step.
    pub steps: Vec<Vec<NodeSteps>>,
    /// How many workers are drained at the same time.
    pub max_unavailable: usize,
}

/// One node's steps in one hop.
#[derive(Debug, Clone, Serialize)]
pub struct NodeSteps {
    pub host: String,
    pub steps: Vec<PlannedStep>,
}

impl UpgradePlan {
    pub fn is_empty(&self) -> bool {
        self.steps.iter().flatten().all(|n| n.steps.is_empty())
    }
}

impl fmt::Display for UpgradePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hops: Vec<String> = self.hops.iter().map(|h| hop_name(h)).collect();
        let workers = format!(
            "control planes one at a time, then {} worker{} at a time",
            self.max_unavailable,
            if self.max_unavailable == 1 { "" } else { "s" }
        );
        if self.from == self.to {
            writeln!(
                f,
                "upgrade: the cluster runs {}; bring the nodes that are not there in line ({workers})",
                self.to
            )?;
        } else {
            writeln!(
                f,
                "upgrade: {} -> {} via {} ({workers})",
                self.from,
                self.to,
                hops.join(" -> ")
            )?;
        }
        for (hop, nodes) in self.hops.iter().zip(&self.steps) {
            for n in nodes {
                for s in &n.steps {
                    writeln!(
                        f,
                        "upgrade {}: {}: {} ({})",
                        hop_name(hop),
                        n.host,
                        s.description,
                        s.reason
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// "1.33" -> "1.33 (newest patch)"; exact versions as they are.
pub fn hop_name(hop: &str) -> String {
    if hop.matches('.').count() == 1 {
        format!("{hop} (newest patch)")
    } else {
        hop.to_string()
    }
}

/// The timeouts rendered into the node-maintenance commands.
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// kubectl durations, e.g. "300s".
    pub drain: String,
    pub wait: String,
}

/// A node's steps for one hop, in the order they run: the repository switched to the
/// hop's minor (the kubernetes-packages playbook at the hop's version), then the upgrade
/// playbook, with a drain before its first disruptive step and, after a drain (or on a
/// node an interrupted run left cordoned), a wait for the new version and Ready and an
/// uncordon. The node-maintenance steps run on the first control plane.
/// Returns (repository steps, node steps): the phase re-gathers facts between the two.
pub fn node_steps(
    inv: &Inventory,
    host: &Host,
    facts: &HostFacts,
    node: Option<&Node>,
    hop: &str,
    timeouts: &Timeouts,
) -> Result<(Vec<PlannedStep>, Vec<PlannedStep>), PlaybookError> {
    let mut vars = Vars::new(inv, host, Some(facts));
    vars.cluster = vars.cluster.at(hop);
    let repo = plan::plan_playbook(PACKAGES, &vars.clone().with("upgrade_pending", false))?;
    let node_version = node
        .map(|n| n.kubelet_version.clone())
        .filter(|v| !v.is_empty());
    let upgrade = plan::plan_playbook(
        UPGRADE,
        &vars.clone().with("node_version", node_version).with(
            "control_plane_version",
            control_plane_version(facts)
                .map(|v| v.to_string())
                .or_else(|| facts.kubernetes.apiserver_version.clone()),
        ),
    )?;
    let cordoned_by_us = node.is_some_and(|n| n.annotations.contains_key(UPGRADING_ANNOTATION));
    // Somebody else's cordon: drained like any node, but left cordoned afterwards.
    let keep_cordoned = !cordoned_by_us && node.is_some_and(|n| n.unschedulable);
    let drains = upgrade.iter().any(|s| s.drain);
    if !drains && !cordoned_by_us {
        return Ok((repo, upgrade));
    }
    let maintenance = vars
        .with("node", &host.name)
        .with("node_target", format!("v{hop}"))
        .with("drain_timeout", &timeouts.drain)
        .with("wait_timeout", &timeouts.wait)
        .with("keep_cordoned", keep_cordoned);
    let m = plan::plan_playbook(MAINTENANCE, &maintenance)?;
    let pick = |name: &str| m.iter().find(|s| s.step == name).cloned();
    let mut steps = Vec::new();
    let mut drained = false;
    for s in upgrade {
        if s.drain && !drained {
            steps.extend(pick("drain"));
            drained = true;
        }
        steps.push(s);
    }
    // Back in service only at the new version and Ready (also when an interrupted run
    // left the node cordoned: its kubelet may still be starting).
    steps.extend(pick("wait-node"));
    if !keep_cordoned {
        steps.extend(pick("uncordon"));
    }
    Ok((repo, steps))
}

/// Where a node's upgrade window starts: its first step that counts against
/// `--max-unavailable` (a `window` step, or the drain and what follows it). The steps
/// before it disturb nothing and run on all workers at once.
pub fn window_start(steps: &[PlannedStep]) -> usize {
    steps
        .iter()
        .position(|s| s.window || runs_on_control_plane(s))
        .unwrap_or(steps.len())
}

/// The control plane's version as far as `kubeadm upgrade apply` got: the older of the
/// API server's (its manifest, written first) and kube-proxy's (the add-on, updated
/// last). None when the host has no API server manifest.
pub fn control_plane_version(facts: &HostFacts) -> Option<Version> {
    let parse = |v: &Option<String>| v.as_deref().and_then(|v| Version::parse(v).ok());
    let apiserver = parse(&facts.kubernetes.apiserver_version)?;
    Some(match parse(&facts.kubernetes.kube_proxy_version) {
        Some(proxy) if proxy < apiserver => proxy,
        _ => apiserver,
    })
}

/// The node-maintenance steps run on the first control plane, the rest on the node.
pub fn runs_on_control_plane(step: &PlannedStep) -> bool {
    step.playbook == MAINTENANCE
}

/// The hosts the upgrade works on, in order: control planes, then workers. Only nodes
/// (hosts with /etc/kubernetes/kubelet.conf); the others join at the inventory's version.
pub fn upgrade_hosts<'a>(inv: &'a Inventory, facts: &BTreeMap<String, HostFacts>) -> Vec<&'a Host> {
    let mut hosts: Vec<&Host> = inv
        .hosts
        .iter()
        .filter(|h| {
            facts
                .get(&h.name)
                .is_some_and(|f| f.kubernetes.kubelet_conf)
        })
        .collect();
    // Stable: inventory order within each role.
    hosts.sort_by_key(|h| h.role != Role::ControlPlane);
    hosts
}

/// The (major, minor) of a package version like "1.33.5-1.1" or a node's "v1.33.5".
fn minor_of(version: &str) -> Option<(u64, u64)> {
    let v = version.trim_start_matches('v');
    let mut parts = v.split(['.', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The upstream version of a package version or a node's version: "1.33.5-1.1" and
/// "v1.33.5" -> "1.33.5".
fn upstream(version: &str) -> &str {
    version
        .trim_start_matches('v')
        .split('-')
        .next()
        .unwrap_or("")
}

/// The versions one host is at: its three packages and what its node object reports.
fn versions_of<'a>(facts: &'a HostFacts, node: Option<&'a Node>) -> Vec<(&'static str, &'a str)> {
    let mut out: Vec<(&'static str, &str)> = ["kubelet", "kubeadm", "kubectl"]
        .into_iter()
        .filter_map(|p| {
            facts
                .packages
                .get(p)
                .filter(|pkg| pkg.installed)
                .map(|pkg| (p, pkg.version.as_str()))
        })
        .collect();
    if let Some(n) = node.filter(|n| !n.kubelet_version.is_empty()) {
        out.push(("the node's kubelet", n.kubelet_version.as_str()));
    }
    out
}

/// Plans the upgrade, or says there is none (None: the cluster is not initialized, or
/// every node is at the inventory's version and none is left cordoned by an upgrade).
/// Errors are refusals, each starting with the host's name.
pub fn plan(
    inv: &Inventory,
    facts: &BTreeMap<String, HostFacts>,
    nodes: &[Node],
    max_unavailable: usize,
    timeouts: &Timeouts,
) -> Result<Option<UpgradePlan>, Vec<String>> {
    let Some(cp) = inv.hosts.iter().find(|h| h.role == Role::ControlPlane) else {
        return Ok(None);
    };
    let Some(cluster) = facts.get(&cp.name).and_then(control_plane_version) else {
        return Ok(None);
    };
    let target = &inv.cluster.kubernetes_version;
    let node_of = |h: &Host| nodes.iter().find(|n| n.name == h.name);
    let hosts = upgrade_hosts(inv, facts);

    let mut refusals = Vec::new();
    if cluster > *target {
        refusals.push(format!(
            "{}: the control plane runs Kubernetes {cluster} and the inventory says {target}: \
             downgrades are not supported (kubeadm only upgrades); set kubernetes_version to {cluster} or newer",
            cp.name
        ));
    }
    let target_minor = (target.major, target.minor);
    let mut behind = false;
    let mut off_target = false;
    for h in &hosts {
        let mut newer = Vec::new();
        for (what, v) in versions_of(&facts[&h.name], node_of(h)) {
            let Some(m) = minor_of(v) else { continue };
            if m > target_minor {
                newer.push(format!("{what} {v}"));
            } else if what.contains("kubelet") && m > (cluster.major, cluster.minor) {
                refusals.push(format!(
                    "{}: {what} {v} is newer than the control plane's {cluster}: a kubelet must \
                     never be newer than the API server (version skew policy); put it back to \
                     {}.{} by hand first",
                    h.name, cluster.major, cluster.minor
                ));
            }
            behind |= m < (cluster.major, cluster.minor);
            off_target |= upstream(v) != target.to_string();
        }
        // The first control plane's API server newer than the inventory was said above.
        let said = h.name == cp.name && cluster > *target;
        if !newer.is_empty() && !said {
            refusals.push(format!(
                "{}: {} newer than the inventory's {target}: downgrades are not supported; \
                 set kubernetes_version to the version the cluster runs",
                h.name,
                newer.join(", ") + if newer.len() == 1 { " is" } else { " are" }
            ));
        }
        off_target |= node_of(h).is_some_and(|n| n.annotations.contains_key(UPGRADING_ANNOTATION));
        // A package missing on a node (an upgrade interrupted while apt unpacked it).
        off_target |= ["kubelet", "kubeadm", "kubectl"].iter().any(|p| {
            !facts[&h.name]
                .packages
                .get(*p)
                .is_some_and(|pkg| pkg.installed)
        });
    }
    // Nodes the inventory does not manage are never upgraded; kubeadm refuses to move the
    // control plane more than 3 minors ahead of any kubelet.
    for n in nodes
        .iter()
        .filter(|n| !inv.hosts.iter().any(|h| h.name == n.name))
    {
        if let Some((major, minor)) = minor_of(&n.kubelet_version) {
            if major == target.major && minor + 3 < target.minor {
                refusals.push(format!(
                    "{}: node {} (not in the inventory) runs kubelet {}, more than 3 minors \
                     behind {target}: kubeadm would refuse the upgrade; upgrade or remove that \
                     node first",
                    cp.name, n.name, n.kubelet_version
                ));
            }
        }
    }
    if cluster != *target {
        if let Some(why) = create_job_blocked(nodes) {
            refusals.push(format!("{}: {why}", cp.name));
        }
    }
    if !refusals.is_empty() {
        return Err(refusals);
    }

    let mut hops = Vec::new();
    if behind && (cluster.major, cluster.minor) < target_minor {
        hops.push(cluster.to_string());
    }
    for minor in cluster.minor + 1..target.minor {
        hops.push(format!("{}.{minor}", target.major));
    }
    if cluster != *target || off_target {
        hops.push(target.to_string());
    }
    if hops.is_empty() {
        return Ok(None);
    }
    let mut steps = Vec::new();
    for (i, hop) in hops.iter().enumerate() {
        let mut per_node = Vec::new();
        for h in &hosts {
            // Later hops start where the one before left the node: plan them from the
            // facts it will have then, so their reasons name the right versions.
            let (f, n) = match i.checked_sub(1).map(|p| &hops[p]) {
                None => (facts[&h.name].clone(), node_of(h).cloned()),
                Some(prev) => predicted(inv, h, &facts[&h.name], node_of(h), prev)
                    .map_err(|e| vec![format!("{}: {e}", h.name)])?,
            };
            let (repo, rest) = node_steps(inv, h, &f, n.as_ref(), hop, timeouts)
                .map_err(|e| vec![format!("{}: {e}", h.name)])?;
            per_node.push(NodeSteps {
                host: h.name.clone(),
                steps: repo.into_iter().chain(rest).collect(),
            });
        }
        steps.push(per_node);
    }
    Ok(Some(UpgradePlan {
        from: cluster.to_string(),
        to: target.to_string(),
        hops,
        steps,
        max_unavailable,
    }))
}

/// Why `kubeadm upgrade apply` would fail its CreateJob preflight check, if it would.
///
/// As kubeadm v1.35.4 cmd/kubeadm/app/phases/upgrade/health.go `createJob` does it:
/// - lines 106-137: it lists nodes with `spec.unschedulable=false`; when there is none
///   (every node cordoned) it only warns and skips the check, so that passes;
/// - lines 163-168: the Job's pause pod tolerates `node-role.kubernetes.io/control-plane`
///   with effect NoSchedule and no operator (= Equal, empty value: staging
///   k8s.io/api core/v1/toleration.go ToleratesTaint), so only that taint without a value;
///   the DefaultTolerationSeconds admission plugin adds `node.kubernetes.io/not-ready` and
///   `node.kubernetes.io/unreachable` NoExecute tolerations
///   (plugin/pkg/admission/defaulttolerationseconds/admission.go lines 99-110);
///   PreferNoSchedule never keeps a pod off a node;
/// - lines 109, 197-214: the Job must complete within 15 s, else the check fails.
///
/// So it fails when at least one node is schedulable and every schedulable node carries
/// another NoSchedule/NoExecute taint.
fn create_job_blocked(nodes: &[Node]) -> Option<String> {
    let tolerated = |t: &crate::inventory::Taint| {
        t.effect == "PreferNoSchedule"
            || (t.key == crate::inventory::CONTROL_PLANE_TAINT
                && t.effect == "NoSchedule"
                && t.value.as_deref().unwrap_or("").is_empty())
            || (t.effect == "NoExecute"
                && [
                    "node.kubernetes.io/not-ready",
                    "node.kubernetes.io/unreachable",
                ]
                .contains(&t.key.as_str()))
    };
    if nodes.iter().all(|n| n.unschedulable) {
        return None;
    }
    let mut why = Vec::new();
    for n in nodes {
        let blocking: Vec<String> = n
            .taints
            .iter()
            .filter(|t| !tolerated(t))
            .map(ToString::to_string)
            .collect();
        match (n.unschedulable, blocking.is_empty()) {
            (false, true) => return None,
            (true, _) => why.push(format!("{} (cordoned)", n.name)),
            (false, false) => why.push(format!("{} ({})", n.name, blocking.join(", "))),
        }
    }
    (!why.is_empty()).then(|| {
        format!(
            "kubeadm upgrade apply would fail its CreateJob preflight check: its pod tolerates \
             only {}:NoSchedule and no node can run it ({}); leave one node without such \
             taints for the upgrade (remove a taint from the inventory and run up, or \
             `kubectl uncordon`), then put it back after the upgrade",
            crate::inventory::CONTROL_PLANE_TAINT,
            why.join(", ")
        )
    })
}

/// A node's facts and node object as a finished hop to `hop` leaves them (packages,
/// repository, control-plane and kubelet versions at `hop`), for planning the next hop.
/// `hop` may be a minor ("1.33"): then the versions read "1.33.x".
fn predicted(
    inv: &Inventory,
    host: &Host,
    facts: &HostFacts,
    node: Option<&Node>,
    hop: &str,
) -> Result<(HostFacts, Option<Node>), PlaybookError> {
    let version = if hop.matches('.').count() == 1 {
        format!("{hop}.x")
    } else {
        hop.to_string()
    };
    let mut f = facts.clone();
    for p in ["kubelet", "kubeadm", "kubectl"] {
        if let Some(pkg) = f.packages.get_mut(p) {
            pkg.version = version.clone();
        }
    }
    let mut vars = Vars::new(inv, host, Some(facts));
    vars.cluster = vars.cluster.at(hop);
    f.apt.kubernetes_repo_minor = Some(vars.cluster.minor.clone());
    f.apt.kubeadm_versions = vec![version.clone()];
    let list = crate::playbook::render_template("kubernetes.list.j2", &vars)?;
    f.files
        .insert("/etc/apt/sources.list.d/kubernetes.list".into(), Some(list));
    if f.kubernetes.apiserver_version.is_some() {
        f.kubernetes.apiserver_version = Some(version.clone());
        f.kubernetes.kube_proxy_version = Some(version.clone());
    }
    let node = node.cloned().map(|mut n| {
        n.kubelet_version = format!("v{version}");
        n
    });
    Ok((f, node))
}

/// The newest patch of `minor` ("1.33") among apt's kubeadm versions ("1.33.7-1.1").
pub fn newest_patch(minor: &str, kubeadm_versions: &[String]) -> Option<String> {
    kubeadm_versions
        .iter()
        .filter_map(|v| v.split('-').next())
        .filter_map(|v| Version::parse(v).ok())
        .filter(|v| format!("{}.{}", v.major, v.minor) == minor)
        .max()
        .map(|v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Package;
    use crate::phases::cluster_plan::tests::inv;

    /// A node's facts: the three packages at `version`, held, the repository at its
    /// minor; the first control plane's API server at `apiserver`.
    fn node_facts(version: &str, apiserver: Option<&str>) -> HostFacts {
        let mut f = HostFacts::default();
        for p in ["kubelet", "kubeadm", "kubectl"] {
            f.packages.insert(
                p.into(),
                Package {
                    installed: true,
                    status: "hi".into(),
                    version: format!("{version}-1.1"),
                },
            );
            f.held.push(p.into());
        }
        for p in [
            "apt-transport-https",
            "ca-certificates",
            "curl",
            "gpg",
            "conntrack",
        ] {
            f.packages.insert(
                p.into(),
                Package {
                    installed: true,
                    status: "ii".into(),
                    version: "1".into(),
                },
            );
        }
        let minor: Vec<&str> = version.split('.').take(2).collect();
        f.apt.keyrings_dir = true;
        f.apt.keyring = true;
        f.apt.keyring_readable = true;
        f.apt.kubernetes_repo_minor = Some(minor.join("."));
        f.apt.kubeadm_versions = vec![format!("{version}-1.1")];
        f.kubernetes.kubelet_conf = true;
        f.services.insert(
            "kubelet".into(),
            crate::facts::Service {
                active: "active".into(),
                enabled: "enabled".into(),
            },
        );
        f.files.insert(
            "/etc/apt/sources.list.d/kubernetes.list".into(),
            Some(format!(
                "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] \
                 https://pkgs.k8s.io/core:/stable:/v{}/deb/ /\n",
                minor.join(".")
            )),
        );
        // What kubelet-defaults writes for the fixture inventory's hosts (all 10.0.0.1).
        f.files.insert(
            "/etc/default/kubelet".into(),
            Some("KUBELET_EXTRA_ARGS=--node-ip=10.0.0.1\n".into()),
        );
        f.kubernetes.admin_conf = apiserver.is_some();
        f.kubernetes.apiserver_manifest = apiserver.is_some();
        f.kubernetes.apiserver_version = apiserver.map(str::to_string);
        f
    }

    fn node_at(name: &str, version: &str) -> Node {
        Node {
            name: name.into(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            taints: Vec::new(),
            unschedulable: false,
            kubelet_version: format!("v{version}"),
            ready: true,
        }
    }

    #[test]
    fn create_job_needs_one_node_without_other_no_schedule_taints() {
        let taint = |k: &str, e: &str| crate::inventory::Taint {
            key: k.into(),
            value: None,
            effect: e.into(),
        };
        let mut cp = node_at("cp", "1.33.5");
        cp.taints = vec![taint(crate::inventory::CONTROL_PLANE_TAINT, "NoSchedule")];
        let mut w = node_at("w1", "1.33.5");
        w.taints = vec![taint("dedicated", "NoSchedule")];
        // The control plane with only its own taint can run the pod.
        assert_eq!(create_job_blocked(&[cp.clone(), w.clone()]), None);
        let mut soft = w.clone();
        soft.taints = vec![taint("spot", "PreferNoSchedule")];
        cp.taints.push(taint("gpu", "NoExecute"));
        assert_eq!(create_job_blocked(&[cp.clone(), soft]), None);
        let mut cordoned = node_at("w2", "1.33.5");
        cordoned.unschedulable = true;
        let why = create_job_blocked(&[cp.clone(), w.clone(), cordoned.clone()]).unwrap();
        assert!(
            why.contains(
                "no node can run it (cp (gpu:NoExecute), w1 (dedicated:NoSchedule), w2 (cordoned))"
            ),
            "{why}"
        );
        // Every node cordoned: kubeadm finds no schedulable node and skips the check.
        let mut cp_cordoned = cp.clone();
        cp_cordoned.unschedulable = true;
        assert_eq!(create_job_blocked(&[cp_cordoned, cordoned.clone()]), None);
        // The control-plane taint with a value is not tolerated (Equal, empty value).
        let mut cp_valued = node_at("cp", "1.33.5");
        cp_valued.taints = vec![crate::inventory::Taint {
            value: Some("yes".into()),
            ..taint(crate::inventory::CONTROL_PLANE_TAINT, "NoSchedule")
        }];
        assert!(create_job_blocked(&[cp_valued, w.clone()]).is_some());
        // A not-ready node's NoExecute taint is tolerated (DefaultTolerationSeconds).
        let mut not_ready = node_at("w3", "1.33.5");
        not_ready.taints = vec![taint("node.kubernetes.io/not-ready", "NoExecute")];
        assert_eq!(create_job_blocked(&[not_ready, w, cordoned]), None);
    }

    fn timeouts() -> Timeouts {
        Timeouts {
            drain: "300s".into(),
            wait: "900s".into(),
        }
    }

    fn cluster_at(cp: &str, worker: &str) -> (BTreeMap<String, HostFacts>, Vec<Node>) {
        let facts = [
            ("master".to_string(), node_facts(cp, Some(cp))),
            ("worker1".to_string(), node_facts(worker, None)),
        ]
        .into();
        (
            facts,
            vec![node_at("master", cp), node_at("worker1", worker)],
        )
    }

    fn step_names(n: &NodeSteps) -> Vec<&str> {
        n.steps.iter().map(|s| s.step.as_str()).collect()
    }

    #[test]
    fn a_converged_cluster_has_no_upgrade() {
        let (facts, nodes) = cluster_at("1.34.2", "1.34.2");
        assert!(plan(&inv(), &facts, &nodes, 1, &timeouts())
            .unwrap()
            .is_none());
    }

    #[test]
    fn one_minor_follows_the_reference_order() {
        let (facts, nodes) = cluster_at("1.33.5", "1.33.5");
        let p = plan(&inv(), &facts, &nodes, 1, &timeouts())
            .unwrap()
            .unwrap();
        assert_eq!(p.hops, ["1.34.2"]);
        let [cp, w] = &p.steps[0][..] else {
            panic!("{p}")
        };
        assert_eq!(
            step_names(cp),
            [
                "repo-key",
                "sources-list",
                "apt-update",
                "upgrade-kubeadm",
                "upgrade-plan",
                "upgrade-apply",
                "drain",
                "upgrade-kubelet",
                "upgrade-sandbox-image",
                "restart-kubelet",
                "wait-node",
                "uncordon"
            ]
        );
        assert_eq!(
            step_names(w),
            [
                "repo-key",
                "sources-list",
                "apt-update",
                "upgrade-kubeadm",
                "upgrade-node",
                "drain",
                "upgrade-kubelet",
                "upgrade-sandbox-image",
                "restart-kubelet",
                "wait-node",
                "uncordon"
            ]
        );
        let apply = &cp.steps[5].command.script;
        assert_eq!(apply, "kubeadm upgrade apply -y v1.34.2");
        let drain = &w.steps[5].command.script;
        assert!(
            drain.contains(
                "drain worker1 --ignore-daemonsets --delete-emptydir-data --timeout=300s"
            ),
            "{drain}"
        );
        assert!(
            p.to_string()
                .starts_with("upgrade: 1.33.5 -> 1.34.2 via 1.34.2"),
            "{p}"
        );
    }

    #[test]
    fn several_minors_go_one_at_a_time() {
        let (facts, nodes) = cluster_at("1.32.4", "1.32.4");
        let p = plan(&inv(), &facts, &nodes, 1, &timeouts())
            .unwrap()
            .unwrap();
        assert_eq!(p.hops, ["1.33", "1.34.2"]);
        assert!(
            p.to_string().contains("via 1.33 (newest patch) -> 1.34.2"),
            "{p}"
        );
        // The second hop is planned from where the first leaves the nodes.
        let text = p.to_string();
        assert!(
            text.contains(
                "upgrade 1.34.2: master: kubeadm upgrade apply v1.34.2 (the control plane runs 1.33.x,"
            ),
            "{text}"
        );
        assert!(
            text.contains("the repository changes from v1.33 to v1.34"),
            "{text}"
        );
        assert!(!text.contains("from v1.32 to v1.34"), "{text}");
        // A worker an interrupted run left at the previous minor catches up first.
        let (facts, nodes) = cluster_at("1.33.5", "1.32.4");
        let p = plan(&inv(), &facts, &nodes, 1, &timeouts())
            .unwrap()
            .unwrap();
        assert_eq!(p.hops, ["1.33.5", "1.34.2"]);
        assert!(
            p.steps[0][0].steps.is_empty(),
            "the control plane is at 1.33.5"
        );
        assert!(step_names(&p.steps[0][1]).contains(&"upgrade-node"));
    }

    #[test]
    fn someone_else_s_cordon_is_kept_and_an_unfinished_apply_is_run_again() {
        let (mut facts, mut nodes) = cluster_at("1.33.5", "1.33.5");
        nodes[1].unschedulable = true;
        let p = plan(&inv(), &facts, &nodes, 1, &timeouts())
            .unwrap()
            .unwrap();
        let w = &p.steps[0][1];
        assert!(!step_names(w).contains(&"uncordon"), "{p}");
        let drain = &w
            .steps
            .iter()
            .find(|s| s.step == "drain")
            .unwrap()
            .command
            .script;
        assert!(!drain.contains("annotate"), "{drain}");
        // Workers: repository and kubeadm before the window, `kubeadm upgrade node` opens it.
        assert_eq!(step_names(w)[window_start(&w.steps)], "upgrade-node");

        // The API server is at 1.34.2 but kube-proxy is not: apply did not finish.
        let cp = facts.get_mut("master").unwrap();
        cp.kubernetes.apiserver_version = Some("1.34.2".into());
        cp.kubernetes.kube_proxy_version = Some("1.33.5".into());
        let p = plan(&inv(), &facts, &nodes, 1, &timeouts())
            .unwrap()
            .unwrap();
        assert_eq!(p.from, "1.33.5");
        assert!(step_names(&p.steps[0][0]).contains(&"upgrade-apply"), "{p}");
    }

    #[test]
    fn skew_violations_are_refused() {
        // A kubelet newer than the API server (put there by hand).
        let (facts, nodes) = cluster_at("1.32.4", "1.33.1");
        let errs = plan(&inv(), &facts, &nodes, 1, &timeouts()).unwrap_err();
        assert!(
            errs[0].contains("newer than the control plane's 1.32.4"),
            "{errs:?}"
        );
        // A node outside the inventory too old for the target.
        let (facts, mut nodes) = cluster_at("1.33.5", "1.33.5");
        nodes.push(node_at("old", "1.30.4"));
        let errs = plan(&inv(), &facts, &nodes, 1, &timeouts()).unwrap_err();
        assert!(
            errs[0].contains("node old (not in the inventory)"),
            "{errs:?}"
        );
    }

    #[test]
    fn downgrades_are_refused() {
        let (facts, nodes) = cluster_at("1.35.1", "1.35.1");
        let errs = plan(&inv(), &facts, &nodes, 1, &timeouts()).unwrap_err();
        assert!(
            errs[0].starts_with("master: the control plane runs Kubernetes 1.35.1"),
            "{errs:?}"
        );
        let (facts, nodes) = cluster_at("1.34.2", "1.35.0");
        let errs = plan(&inv(), &facts, &nodes, 1, &timeouts()).unwrap_err();
        assert!(errs.iter().all(|e| e.starts_with("worker1: ")), "{errs:?}");
    }

    #[test]
    fn patch_drift_and_a_node_left_cordoned_are_finished() {
        // kubeadm upgraded by hand to another patch on the worker: only kubeadm goes back.
        let (mut facts, nodes) = cluster_at("1.34.2", "1.34.2");
        facts
            .get_mut("worker1")
            .unwrap()
            .packages
            .get_mut("kubeadm")
            .unwrap()
            .version = "1.34.3-1.1".into();
        let p = plan(&inv(), &facts, &nodes, 1, &timeouts())
            .unwrap()
            .unwrap();
        assert_eq!(p.hops, ["1.34.2"]);
        assert!(p.steps[0][0].steps.is_empty(), "{p}");
        assert_eq!(step_names(&p.steps[0][1]), ["upgrade-kubeadm"]);
        // Interrupted after the kubelet restart: the node is cordoned by us.
        let (facts, mut nodes) = cluster_at("1.34.2", "1.34.2");
        nodes[1].unschedulable = true;
        nodes[1]
            .annotations
            .insert(UPGRADING_ANNOTATION.into(), "v1.34.2".into());
        let p = plan(&inv(), &facts, &nodes, 1, &timeouts())
            .unwrap()
            .unwrap();
        assert_eq!(step_names(&p.steps[0][1]), ["wait-node", "uncordon"]);
        // Cordoned by somebody else: left alone.
        nodes[1].annotations.clear();
        assert!(plan(&inv(), &facts, &nodes, 1, &timeouts())
            .unwrap()
            .is_none());
    }

    #[test]
    fn minors_and_newest_patches() {
        assert_eq!(minor_of("1.33.5-1.1"), Some((1, 33)));
        assert_eq!(minor_of("v1.34.2"), Some((1, 34)));
        assert_eq!(minor_of(""), None);
        assert_eq!(upstream("1.34.2-1.1"), "1.34.2");
        assert_eq!(upstream("v1.34.2"), "1.34.2");
        let apt: Vec<String> = ["1.33.10-1.1", "1.33.9-1.1", "1.34.0-1.1"]
            .map(String::from)
            .to_vec();
        assert_eq!(newest_patch("1.33", &apt).as_deref(), Some("1.33.10"));
        assert_eq!(newest_patch("1.32", &apt), None);
        assert_eq!(hop_name("1.33"), "1.33 (newest patch)");
        assert_eq!(hop_name("1.34.2"), "1.34.2");
    }
}
