//! The cluster-level part of the plan: what only makes sense for the cluster as a whole
//! (init the first control plane? which hosts join? Calico applied? which labels and
//! taints change? wait for Ready?), decided from every host's facts and, when the control
//! plane is already initialized, from its node objects and the calico-node DaemonSet.
//!
//! Pure: the inputs are already gathered, so every decision is unit-tested here.

use std::collections::BTreeMap;
use std::fmt;

use crate::cluster::{self, CalicoState, Node, NodeChange};
use crate::inventory::{Host, Inventory, Role};
use crate::plan::PlannedStep;

/// The cluster-relevant state of one host, from its facts (reference §5).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct KubeadmState {
    /// `/etc/kubernetes/admin.conf` exists.
    pub admin_conf: bool,
    /// `/etc/kubernetes/manifests/kube-apiserver.yaml` exists.
    pub apiserver_manifest: bool,
    /// `/etc/kubernetes/kubelet.conf` exists: the host is a node of some cluster.
    pub joined: bool,
}

impl KubeadmState {
    /// An initialized control plane: both files of a finished `kubeadm init`.
    pub fn initialized(&self) -> bool {
        self.admin_conf && self.apiserver_manifest
    }
}

/// What the control plane reported, when it is initialized.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    pub nodes: Vec<Node>,
    pub calico: Option<CalicoState>,
}

/// One host's label/taint work.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeWork {
    /// The node object does not exist yet: the changes are a preview against what
    /// kubeadm will register, recomputed from the real object before being applied.
    pub new: bool,
    pub changes: Vec<NodeChange>,
}

/// The cluster-level steps this run needs, each with the reason.
#[derive(Debug, Clone, Default)]
pub struct ClusterPlan {
    /// The init playbook's steps on the first control plane (planned from its facts).
    pub init: Vec<PlannedStep>,
    /// Hosts that run `kubeadm join`, with the reason, in inventory order.
    pub join: Vec<(String, String)>,
    /// Apply the Calico manifest, with the reason.
    pub calico: Option<String>,
    /// What the control plane said about Calico (None: not initialized yet).
    pub calico_state: Option<CalicoState>,
    /// Label/taint work per host (only hosts with work, or new nodes).
    pub nodes: BTreeMap<String, NodeWork>,
    /// Wait until every node is Ready.
    pub wait: Option<String>,
    /// The inventory's manifests to apply, once every node is Ready.
    pub manifests: super::manifests::ManifestPlan,
    /// Things worth saying that need no action (e.g. nodes not in the inventory).
    pub notes: Vec<String>,
    /// Move the cluster to the inventory's Kubernetes version (set by `up` from every
    /// host's facts: [`super::upgrade_plan::plan`]).
    pub upgrade: Option<super::upgrade_plan::UpgradePlan>,
}

impl ClusterPlan {
    pub fn is_empty(&self) -> bool {
        self.init.is_empty()
            && self.upgrade.as_ref().is_none_or(|u| u.is_empty())
            && self.join.is_empty()
            && self.calico.is_none()
            && self.nodes.is_empty()
            && self.wait.is_none()
            && self.manifests.is_empty()
    }
}

impl fmt::Display for ClusterPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.init {
            writeln!(f, "init: {} ({})", s.description, s.reason)?;
        }
        if let Some(u) = &self.upgrade {
            write!(f, "{u}")?;
        }
        for (h, r) in &self.join {
            writeln!(f, "join: {h}: kubeadm join ({r})")?;
        }
        if let Some(r) = &self.calico {
            writeln!(f, "cni: apply Calico ({r})")?;
        }
        for (h, w) in &self.nodes {
            let when = if w.new { " (once registered)" } else { "" };
            for c in &w.changes {
                writeln!(f, "labels: {h}: {c}{when}")?;
            }
        }
        if let Some(r) = &self.wait {
            writeln!(f, "ready: wait until every node is Ready ({r})")?;
        }
        write!(f, "{}", self.manifests)?;
        Ok(())
    }
}

/// The URL or file the Calico manifest comes from, for messages.
pub fn calico_source(inv: &Inventory) -> String {
    use crate::inventory::ManifestSource;
    match &inv.cluster.calico.manifest {
        None => calico_url(&inv.cluster.calico.version),
        Some(ManifestSource::Url(u)) => u.clone(),
        Some(ManifestSource::File(p)) => p.display().to_string(),
    }
}

/// The upstream manifest of a Calico release (reference §6).
pub fn calico_url(version: &str) -> String {
    format!(
        "https://raw.githubusercontent.com/projectcalico/calico/{version}/manifests/calico.yaml"
    )
}

fn first_control_plane(inv: &Inventory) -> &Host {
    inv.hosts
        .iter()
        .find(|h| h.role == Role::ControlPlane)
        .expect("a validated inventory has a control plane")
}

/// Decides the cluster-level steps. `init` is the init playbook as planned for the first
/// control plane. Errors are refusals, each starting with the host's name: states the
/// tool will not paper over (a host of another cluster, a version change = an upgrade).
pub fn plan(
    inv: &Inventory,
    states: &BTreeMap<String, KubeadmState>,
    view: Option<&ClusterView>,
    init: Vec<PlannedStep>,
) -> Result<ClusterPlan, Vec<String>> {
    let cp = first_control_plane(inv);
    let state = |h: &Host| states.get(&h.name).copied().unwrap_or_default();
    let mut plan = ClusterPlan::default();
    let mut refusals = Vec::new();

    let cps = state(cp);
    let initialized = cps.initialized();
    plan.init = init;
    if !initialized {
        if cps.admin_conf || cps.apiserver_manifest {
            refusals.push(format!(
                "{}: a previous `kubeadm init` did not finish (/etc/kubernetes/admin.conf {}, \
                 /etc/kubernetes/manifests/kube-apiserver.yaml {}); run `kubeadm reset -f` on it first",
                cp.name,
                if cps.admin_conf { "exists" } else { "missing" },
                if cps.apiserver_manifest { "exists" } else { "missing" },
            ));
        } else if cps.joined {
            refusals.push(format!(
                "{}: has /etc/kubernetes/kubelet.conf but no /etc/kubernetes/admin.conf: it is a \
                 node of some other cluster; run `kubeadm reset -f` on it first",
                cp.name
            ));
        }
        plan.calico = Some(format!("new cluster: {}", calico_source(inv)));
    }

    let nodes: BTreeMap<&str, &Node> = view
        .map(|v| v.nodes.iter().map(|n| (n.name.as_str(), n)).collect())
        .unwrap_or_default();

    for host in &inv.hosts {
        let node = nodes.get(host.name.as_str()).copied();
        if host.name != cp.name {
            let s = state(host);
            if host.role == Role::ControlPlane {
                // up refuses >1 control plane before planning; stay defensive.
                refusals.push(format!(
                    "{}: up supports one control plane; HA is not implemented yet",
                    host.name
                ));
                continue;
            }
            if !s.joined {
                plan.join.push((
                    host.name.clone(),
                    "no /etc/kubernetes/kubelet.conf".to_string(),
                ));
            } else if !initialized {
                refusals.push(format!(
                    "{}: has /etc/kubernetes/kubelet.conf but the control plane {} is not \
                     initialized: it is a node of some other cluster; run `kubeadm reset -f` on it first",
                    host.name, cp.name
                ));
            } else if node.is_none() {
                refusals.push(format!(
                    "{}: has /etc/kubernetes/kubelet.conf but the cluster has no node named {}: \
                     it joined another cluster or its node was deleted; run `kubeadm reset -f` on it first",
                    host.name, host.name
                ));
            }
        }
        let (new, changes) = match node {
            Some(n) => (false, cluster::diff(host, n)),
            None => (
                true,
                cluster::diff(host, &Node::expected_after_kubeadm(host)),
            ),
        };
        if new || !changes.is_empty() {
            plan.nodes
                .insert(host.name.clone(), NodeWork { new, changes });
        }
    }

    if let Some(v) = view {
        plan.calico_state = v.calico.clone();
        let want = &inv.cluster.calico.version;
        match &v.calico {
            Some(CalicoState::Absent) | None => {
                plan.calico = Some(format!("no calico-node DaemonSet: {}", calico_source(inv)));
            }
            Some(CalicoState::Present { version: have }) if have.as_deref() != Some(want) => {
                plan.calico = Some(format!(
                    "calico-node runs {}, the inventory says {want}",
                    have.as_deref().unwrap_or("an untagged image")
                ));
            }
            Some(CalicoState::Present { .. }) => {}
        }
        for n in &v.nodes {
            if !inv.hosts.iter().any(|h| h.name == n.name) {
                plan.notes.push(format!(
                    "node {} is in the cluster but not in the inventory: left alone",
                    n.name
                ));
            }
        }
    }

    let waiting: Vec<&str> = inv
        .hosts
        .iter()
        .filter(|h| !nodes.get(h.name.as_str()).is_some_and(|n| n.ready))
        .map(|h| h.name.as_str())
        .collect();
    if !waiting.is_empty() {
        plan.wait = Some(format!("not Ready yet: {}", waiting.join(", ")));
    }

    if refusals.is_empty() {
        Ok(plan)
    } else {
        Err(refusals)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::inventory::{Calico, Cluster, Taint};

    /// The article's two hosts, for tests of other phases too.
    pub(crate) fn inv() -> Inventory {
        let host = crate::inventory::test_host;
        Inventory {
            path: "inv.yaml".into(),
            cluster: Cluster {
                name: "demo".into(),
                kubernetes_version: semver::Version::new(1, 34, 2),
                pod_subnet: "192.168.0.0/16".into(),
                service_subnet: "10.96.0.0/12".into(),
                control_plane_endpoint: None,
                calico: Calico {
                    version: "v3.30.3".into(),
                    manifest: None,
                    encapsulation: None,
                },
                package_repository: "https://pkgs.k8s.io/core:/stable:".into(),
                package_lock_wait: 600,
            },
            hosts: vec![
                host("master", Role::ControlPlane, &[("type", "mysql")], vec![]),
                host("worker1", Role::Worker, &[("type", "wordpress")], vec![]),
            ],
            manifests: vec![],
        }
    }

    /// The node as the tool leaves it: its managed-keys annotations list `labels`, `taints`.
    pub(crate) fn managed(
        labels: &[(&str, &str)],
        taints: &[crate::inventory::Taint],
    ) -> std::collections::BTreeMap<String, String> {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        crate::cluster::managed_annotations(&labels, taints)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    /// A node as `kubectl get nodes` shows it after a converged run (kubelet v1.34.2,
    /// bootstrap's managed-key annotations), for tests of other phases and commands too.
    pub(crate) fn node(
        name: &str,
        labels: &[(&str, &str)],
        taints: Vec<Taint>,
        ready: bool,
    ) -> Node {
        Node {
            name: name.into(),
            annotations: managed(labels, &taints),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            taints,
            unschedulable: false,
            kubelet_version: "v1.34.2".into(),
            ready,
        }
    }

    fn states(cp: KubeadmState, w: KubeadmState) -> BTreeMap<String, KubeadmState> {
        [("master".to_string(), cp), ("worker1".to_string(), w)].into()
    }

    const FRESH: KubeadmState = KubeadmState {
        admin_conf: false,
        apiserver_manifest: false,
        joined: false,
    };
    const CP: KubeadmState = KubeadmState {
        admin_conf: true,
        apiserver_manifest: true,
        joined: true,
    };
    const JOINED: KubeadmState = KubeadmState {
        admin_conf: false,
        apiserver_manifest: false,
        joined: true,
    };

    #[test]
    fn fresh_cluster_needs_everything() {
        let p = plan(&inv(), &states(FRESH, FRESH), None, vec![]).unwrap();
        assert_eq!(p.join.len(), 1);
        assert!(p
            .calico
            .as_deref()
            .unwrap()
            .contains("calico/v3.30.3/manifests"));
        assert_eq!(p.nodes.len(), 2);
        assert!(p.nodes["master"].new);
        assert!(p.wait.is_some());
        let text = p.to_string();
        assert!(text.contains("labels: worker1: label type=wordpress (once registered)"));
    }

    #[test]
    fn converged_cluster_needs_nothing() {
        let view = ClusterView {
            nodes: vec![
                node("master", &[("type", "mysql")], vec![], true),
                node("worker1", &[("type", "wordpress")], vec![], true),
            ],
            calico: Some(CalicoState::Present {
                version: Some("v3.30.3".into()),
            }),
        };
        let p = plan(&inv(), &states(CP, JOINED), Some(&view), vec![]).unwrap();
        assert!(p.is_empty(), "{p}");
    }

    #[test]
    fn partial_cluster_needs_the_rest() {
        let view = ClusterView {
            nodes: vec![node(
                "master",
                &[],
                vec![Taint {
                    key: cluster::CONTROL_PLANE_TAINT_KEY.into(),
                    value: None,
                    effect: "NoSchedule".into(),
                }],
                false,
            )],
            calico: Some(CalicoState::Absent),
        };
        let p = plan(&inv(), &states(CP, FRESH), Some(&view), vec![]).unwrap();
        assert!(p.init.is_empty());
        assert_eq!(p.join[0].0, "worker1");
        assert!(p.calico.is_some());
        // The label, the control-plane taint, and both managed-keys annotations.
        assert_eq!(p.nodes["master"].changes.len(), 4);
        assert!(!p.nodes["master"].new);
        assert_eq!(p.wait.as_deref(), Some("not Ready yet: master, worker1"));
    }

    #[test]
    fn refuses_foreign_and_upgrades() {
        let errs = plan(&inv(), &states(FRESH, JOINED), None, vec![]).unwrap_err();
        assert!(
            errs[0].contains("worker1: has /etc/kubernetes/kubelet.conf"),
            "{errs:?}"
        );

        let mut old = node("master", &[("type", "mysql")], vec![], true);
        old.kubelet_version = "v1.33.1".into();
        let view = ClusterView {
            nodes: vec![old],
            calico: None,
        };
        // A version difference is the upgrade plan's business (upgrade_plan.rs), not a
        // refusal here.
        let errs = plan(&inv(), &states(CP, JOINED), Some(&view), vec![]).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs
            .iter()
            .any(|e| e.contains("the cluster has no node named worker1")));
    }

    #[test]
    fn calico_version_change_reapplies() {
        let view = ClusterView {
            nodes: vec![],
            calico: Some(CalicoState::Present {
                version: Some("v3.29.0".into()),
            }),
        };
        let p = plan(&inv(), &states(CP, FRESH), Some(&view), vec![]).unwrap();
        assert_eq!(
            p.calico.as_deref(),
            Some("calico-node runs v3.29.0, the inventory says v3.30.3")
        );
    }
}
