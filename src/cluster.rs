//! The cluster as its control plane sees it: node objects and the Calico DaemonSet.
//!
//! Host facts say what a machine has; only the API server says what the *cluster* has:
//! which nodes registered, whether they are Ready, at which kubelet version, with which
//! labels and taints. This module turns `kubectl get nodes -o json` (reference §9) into
//! [`Node`]s and computes the label/taint changes that bring a node to what the inventory
//! declares, as the real `kubectl label`/`kubectl taint` commands (reference §7).
//!
//! Ownership rules, so that re-runs converge and never fight the cluster's controllers:
//! - labels: only the keys the inventory declares are set; other labels (kubelet's
//!   `kubernetes.io/hostname`, kubeadm's role labels, ...) are left alone.
//! - taints: the inventory's list is the node's whole desired set, except taints the node
//!   lifecycle controller manages (`node.kubernetes.io/*`, e.g. `not-ready`,
//!   `unschedulable`, and the cloud provider's `uninitialized`), which are never touched.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use crate::inventory::{Host, Role, Taint};
use crate::ssh::RemoteCommand;

/// kubectl with the admin credentials kubeadm writes on a control plane. Needs root.
pub const KUBECTL: &str = "kubectl --kubeconfig /etc/kubernetes/admin.conf";

/// The taint kubeadm puts on control planes by default.
pub const CONTROL_PLANE_TAINT_KEY: &str = "node-role.kubernetes.io/control-plane";

/// One command applying all of a node's changes: a single `kubectl label` with every
/// label (kubectl takes several `k=v`), then one `kubectl taint` per taint change, joined
/// with `&&` so the first failure stops it. One round trip per node instead of one per
/// change.
pub fn changes_command(node: &str, changes: &[NodeChange]) -> RemoteCommand {
    let labels: Vec<String> = changes
        .iter()
        .filter_map(|c| match c {
            NodeChange::Label { key, value, .. } => Some(quote(&format!("{key}={value}"))),
            _ => None,
        })
        .collect();
    let mut parts = Vec::new();
    if !labels.is_empty() {
        parts.push(format!(
            "{KUBECTL} label node {} {} --overwrite",
            quote(node),
            labels.join(" ")
        ));
    }
    parts.extend(
        changes
            .iter()
            .filter(|c| !matches!(c, NodeChange::Label { .. }))
            .map(|c| c.script(node)),
    );
    RemoteCommand {
        script: parts.join(" && "),
        root: true,
        ..Default::default()
    }
}

/// Taint key prefixes owned by Kubernetes controllers, never added or removed by us.
const CONTROLLER_TAINT_PREFIXES: &[&str] =
    &["node.kubernetes.io/", "node.cloudprovider.kubernetes.io/"];

/// One node object, reduced to what the tool decides on.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    /// `status.nodeInfo.kubeletVersion`, e.g. `v1.34.2`; empty if not reported yet.
    pub kubelet_version: String,
    /// The Ready condition's status is `"True"`.
    pub ready: bool,
}

/// Why node or DaemonSet JSON could not be understood.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ClusterError {
    #[error("cannot parse the output of `{command}` as JSON: {source}")]
    #[diagnostic(help("the output started with: {start}"))]
    Json {
        command: &'static str,
        start: String,
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Deserialize)]
struct List<T> {
    #[serde(default = "Vec::new")]
    items: Vec<T>,
}

#[derive(Deserialize)]
struct RawNode {
    metadata: RawMeta,
    #[serde(default)]
    spec: RawSpec,
    #[serde(default)]
    status: RawStatus,
}

#[derive(Deserialize)]
struct RawMeta {
    name: String,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
struct RawSpec {
    #[serde(default)]
    taints: Option<Vec<RawTaint>>,
    #[serde(default)]
    unschedulable: Option<bool>,
}

#[derive(Deserialize)]
struct RawTaint {
    key: String,
    #[serde(default)]
    value: Option<String>,
    effect: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawStatus {
    #[serde(default)]
    node_info: Option<RawNodeInfo>,
    #[serde(default)]
    conditions: Option<Vec<RawCondition>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawNodeInfo {
    #[serde(default)]
    kubelet_version: String,
}

#[derive(Deserialize)]
struct RawCondition {
    #[serde(rename = "type")]
    kind: String,
    status: String,
}

fn json_error(command: &'static str, text: &str, source: serde_json::Error) -> ClusterError {
    let start: String = text.trim().chars().take(120).collect();
    ClusterError::Json {
        command,
        start: if start.is_empty() {
            "(nothing)".into()
        } else {
            start
        },
        source,
    }
}

/// Parses the output of `kubectl get nodes -o json`.
pub fn parse_nodes(json: &str) -> Result<Vec<Node>, ClusterError> {
    let list: List<RawNode> =
        serde_json::from_str(json).map_err(|e| json_error("kubectl get nodes -o json", json, e))?;
    Ok(list.items.into_iter().map(Node::from_raw).collect())
}

/// Parses the output of `kubectl get node NAME -o json` (one object).
pub fn parse_node(json: &str) -> Result<Node, ClusterError> {
    let raw: RawNode =
        serde_json::from_str(json).map_err(|e| json_error("kubectl get node -o json", json, e))?;
    Ok(Node::from_raw(raw))
}

impl Node {
    fn from_raw(raw: RawNode) -> Node {
        let ready = raw
            .status
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.kind == "Ready" && c.status == "True");
        Node {
            name: raw.metadata.name,
            labels: raw.metadata.labels.unwrap_or_default(),
            taints: raw
                .spec
                .taints
                .unwrap_or_default()
                .into_iter()
                .map(|t| Taint {
                    key: t.key,
                    value: t.value.filter(|v| !v.is_empty()),
                    effect: t.effect,
                })
                .collect(),
            unschedulable: raw.spec.unschedulable.unwrap_or(false),
            kubelet_version: raw
                .status
                .node_info
                .map(|i| i.kubelet_version)
                .unwrap_or_default(),
            ready,
        }
    }

    /// What a host's node object is expected to look like right after this run's
    /// `kubeadm init`/`kubeadm join` registers it: no labels of ours; the init config
    /// carries the inventory's taints, a joined worker has none. Used only to *preview*
    /// label/taint changes in the plan; they are recomputed from the real object before
    /// they are applied.
    pub fn expected_after_kubeadm(host: &Host) -> Node {
        Node {
            name: host.name.clone(),
            labels: BTreeMap::new(),
            taints: match host.role {
                Role::ControlPlane => host.taints.clone(),
                Role::Worker => Vec::new(),
            },
            unschedulable: false,
            kubelet_version: String::new(),
            ready: false,
        }
    }

    /// Whether `kubelet_version` (`v1.34.2`) is exactly `want`.
    pub fn has_version(&self, want: &semver::Version) -> bool {
        self.kubelet_version.trim_start_matches('v') == want.to_string()
    }
}

/// `k=v:Effect` or `k:Effect`, as kubectl and the inventory write taints.
pub fn taint_spec(t: &Taint) -> String {
    match t.value.as_deref() {
        Some(v) if !v.is_empty() => format!("{}={}:{}", t.key, v, t.effect),
        _ => format!("{}:{}", t.key, t.effect),
    }
}

/// One change to one node's labels or taints.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeChange {
    /// Set a label (new, or a changed value).
    Label {
        key: String,
        value: String,
        old: Option<String>,
    },
    /// Add a taint, or change the value of the taint with the same key and effect.
    Taint { taint: Taint, old: Option<Taint> },
    /// Remove a taint the inventory does not declare.
    Untaint { taint: Taint },
}

fn quote(s: &str) -> String {
    // try_quote only fails on NUL bytes, which the inventory's validation rules out for
    // names, keys and values; fall back to an always-failing word rather than panicking.
    shlex::try_quote(s)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| "'<invalid: NUL byte>'".into())
}

impl NodeChange {
    /// The real kubectl command line for this change on node `node` (reference §7),
    /// every value shell-quoted.
    pub fn script(&self, node: &str) -> String {
        match self {
            NodeChange::Label { key, value, .. } => format!(
                "{KUBECTL} label node {} {} --overwrite",
                quote(node),
                quote(&format!("{key}={value}"))
            ),
            NodeChange::Taint { taint, .. } => format!(
                "{KUBECTL} taint node {} {} --overwrite",
                quote(node),
                quote(&taint_spec(taint))
            ),
            NodeChange::Untaint { taint } => format!(
                "{KUBECTL} taint node {} {}",
                quote(node),
                quote(&format!("{}:{}-", taint.key, taint.effect))
            ),
        }
    }

    /// The command to run on a control plane, as root (admin.conf is root's).
    pub fn command(&self, node: &str) -> RemoteCommand {
        RemoteCommand {
            script: self.script(node),
            root: true,
            ..Default::default()
        }
    }
}

impl fmt::Display for NodeChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeChange::Label { key, value, old } => match old {
                None => write!(f, "label {key}={value}"),
                Some(o) => write!(f, "label {key}={value} (was {key}={o})"),
            },
            NodeChange::Taint { taint, old } => match old {
                None => write!(f, "taint {}", taint_spec(taint)),
                Some(o) => write!(f, "taint {} (was {})", taint_spec(taint), taint_spec(o)),
            },
            NodeChange::Untaint { taint } => write!(
                f,
                "remove taint {} (not in the inventory)",
                taint_spec(taint)
            ),
        }
    }
}

fn controller_managed(t: &Taint) -> bool {
    CONTROLLER_TAINT_PREFIXES
        .iter()
        .any(|p| t.key.starts_with(p))
}

fn same_value(a: &Option<String>, b: &Option<String>) -> bool {
    a.as_deref().unwrap_or("") == b.as_deref().unwrap_or("")
}

/// The label and taint changes that make `node` match what `host` declares: labels that
/// are missing or differ, taints (by key and effect) that are missing or differ, and
/// taints present on the node but not declared (except controller-managed ones). Empty
/// when the node already matches. Removals come last, so a node is never left with
/// fewer taints than wanted if a later command fails.
pub fn diff(host: &Host, node: &Node) -> Vec<NodeChange> {
    let mut changes = Vec::new();
    for (key, value) in &host.labels {
        let old = node.labels.get(key);
        if old != Some(value) {
            changes.push(NodeChange::Label {
                key: key.clone(),
                value: value.clone(),
                old: old.cloned(),
            });
        }
    }
    for want in &host.taints {
        let have = node
            .taints
            .iter()
            .find(|t| t.key == want.key && t.effect == want.effect);
        match have {
            Some(h) if same_value(&h.value, &want.value) => {}
            other => changes.push(NodeChange::Taint {
                taint: want.clone(),
                old: other.cloned(),
            }),
        }
    }
    for have in &node.taints {
        let declared = host
            .taints
            .iter()
            .any(|w| w.key == have.key && w.effect == have.effect);
        if !declared && !controller_managed(have) {
            changes.push(NodeChange::Untaint {
                taint: have.clone(),
            });
        }
    }
    changes
}

/// The script that lists the node objects (read-only).
pub fn get_nodes_command() -> RemoteCommand {
    RemoteCommand {
        script: format!("{KUBECTL} get nodes -o json"),
        root: true,
        ..Default::default()
    }
}

/// What is known about Calico from the control plane.
#[derive(Debug, Clone, PartialEq)]
pub enum CalicoState {
    /// No `calico-node` DaemonSet in kube-system.
    Absent,
    /// The DaemonSet exists; `version` is the tag of its calico-node image (`v3.30.3`),
    /// if it has one.
    Present { version: Option<String> },
}

impl CalicoState {
    /// Whether the cluster runs Calico `version` (`v3.30.3`).
    pub fn is(&self, version: &str) -> bool {
        matches!(self, CalicoState::Present { version: Some(v) } if v == version)
    }
}

/// The script that reads the calico-node DaemonSet (read-only). Exits 1 with
/// `Error from server (NotFound)` when Calico is not installed.
pub fn get_calico_command() -> RemoteCommand {
    RemoteCommand {
        script: format!("{KUBECTL} -n kube-system get daemonset calico-node -o json"),
        root: true,
        ..Default::default()
    }
}

#[derive(Deserialize)]
struct RawDaemonSet {
    #[serde(default)]
    spec: Option<RawDsSpec>,
}
#[derive(Deserialize)]
struct RawDsSpec {
    template: RawTemplate,
}
#[derive(Deserialize)]
struct RawTemplate {
    spec: RawPodSpec,
}
#[derive(Deserialize)]
struct RawPodSpec {
    #[serde(default)]
    containers: Vec<RawContainer>,
}
#[derive(Deserialize)]
struct RawContainer {
    #[serde(default)]
    name: String,
    #[serde(default)]
    image: String,
}

/// Interprets `kubectl get daemonset calico-node -o json`: its exit status and output.
/// NotFound means Calico is absent; any other failure is an error (we must not re-apply
/// a CNI because the API server hiccuped).
pub fn parse_calico(status: u32, stdout: &str, stderr: &str) -> Result<CalicoState, String> {
    if status != 0 {
        if stderr.contains("NotFound") || stderr.contains("not found") {
            return Ok(CalicoState::Absent);
        }
        return Err(format!(
            "cannot read the calico-node DaemonSet: {}",
            stderr.trim()
        ));
    }
    let ds: RawDaemonSet = serde_json::from_str(stdout).map_err(|e| {
        json_error(
            "kubectl -n kube-system get daemonset calico-node -o json",
            stdout,
            e,
        )
        .to_string()
    })?;
    let containers = ds
        .spec
        .map(|s| s.template.spec.containers)
        .unwrap_or_default();
    let image = containers
        .iter()
        .find(|c| c.name == "calico-node")
        .or_else(|| containers.iter().find(|c| c.image.contains("calico/node")))
        .map(|c| c.image.as_str())
        .unwrap_or("");
    Ok(CalicoState::Present {
        version: image_tag(image).map(str::to_string),
    })
}

/// The tag of an image reference (`docker.io/calico/node:v3.30.3` -> `v3.30.3`); a
/// registry port (`reg:5000/calico/node`) is not a tag.
fn image_tag(image: &str) -> Option<&str> {
    let image = image.split('@').next().unwrap_or(image);
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split_once(':')
        .map(|(_, tag)| tag)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Ssh;

    const NODES: &str = r#"{
      "apiVersion": "v1", "kind": "List",
      "items": [
        {"metadata": {"name": "master", "labels": {"kubernetes.io/hostname": "master",
            "node-role.kubernetes.io/control-plane": ""}},
         "spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]},
         "status": {"nodeInfo": {"kubeletVersion": "v1.34.2"},
                    "conditions": [{"type": "MemoryPressure", "status": "False"},
                                   {"type": "Ready", "status": "True"}],
                    "addresses": [{"type": "InternalIP", "address": "10.0.0.10"}]}},
        {"metadata": {"name": "worker1", "labels": {"type": "old"}},
         "spec": {"unschedulable": true,
                  "taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"},
                             {"key": "dedicated", "value": "", "effect": "NoExecute"}]},
         "status": {"nodeInfo": {"kubeletVersion": "v1.34.1"},
                    "conditions": [{"type": "Ready", "status": "False"}]}}
      ]}"#;

    fn host(name: &str, role: Role, labels: &[(&str, &str)], taints: Vec<Taint>) -> Host {
        Host {
            name: name.into(),
            address: "10.0.0.1".into(),
            role,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            taints,
            ssh: Ssh {
                user: "root".into(),
                port: 22,
                identity_file: None,
                known_hosts_file: "/dev/null".into(),
            },
        }
    }

    fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: value.map(Into::into),
            effect: effect.into(),
        }
    }

    #[test]
    fn parses_nodes() {
        let nodes = parse_nodes(NODES).unwrap();
        assert_eq!(nodes.len(), 2);
        let m = &nodes[0];
        assert_eq!(m.name, "master");
        assert!(m.ready);
        assert!(!m.unschedulable);
        assert_eq!(m.kubelet_version, "v1.34.2");
        assert!(m.has_version(&semver::Version::new(1, 34, 2)));
        assert_eq!(
            m.taints,
            vec![taint(CONTROL_PLANE_TAINT_KEY, None, "NoSchedule")]
        );
        let w = &nodes[1];
        assert!(!w.ready);
        assert!(w.unschedulable);
        // An empty value is the same as no value.
        assert_eq!(w.taints[1], taint("dedicated", None, "NoExecute"));
    }

    #[test]
    fn parses_one_node() {
        let n = parse_node(
            r#"{"kind": "Node", "metadata": {"name": "w", "labels": {"a": "b"}},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}"#,
        )
        .unwrap();
        assert_eq!(n.labels["a"], "b");
        assert!(!n.ready);
    }

    #[test]
    fn parses_empty_and_minimal_lists() {
        assert!(parse_nodes(r#"{"items": []}"#).unwrap().is_empty());
        let n = parse_nodes(r#"{"items": [{"metadata": {"name": "a"}}]}"#).unwrap();
        assert_eq!(n[0].name, "a");
        assert!(!n[0].ready);
        assert!(n[0].taints.is_empty());
    }

    #[test]
    fn bad_json_names_the_command() {
        let err = parse_nodes("The connection to the server localhost:8080 was refused")
            .unwrap_err()
            .to_string();
        assert!(err.contains("kubectl get nodes -o json"), "{err}");
    }

    #[test]
    fn converged_node_needs_nothing() {
        let nodes = parse_nodes(NODES).unwrap();
        let h = host(
            "master",
            Role::ControlPlane,
            &[],
            vec![taint(CONTROL_PLANE_TAINT_KEY, None, "NoSchedule")],
        );
        assert!(diff(&h, &nodes[0]).is_empty());
    }

    #[test]
    fn removes_control_plane_taint_when_inventory_says_none() {
        let nodes = parse_nodes(NODES).unwrap();
        let h = host("master", Role::ControlPlane, &[("type", "mysql")], vec![]);
        let changes = diff(&h, &nodes[0]);
        assert_eq!(changes.len(), 2);
        assert_eq!(
            changes[0].script("master"),
            "kubectl --kubeconfig /etc/kubernetes/admin.conf label node master 'type=mysql' --overwrite"
        );
        assert_eq!(
            changes[1].script("master"),
            "kubectl --kubeconfig /etc/kubernetes/admin.conf taint node master node-role.kubernetes.io/control-plane:NoSchedule-"
        );
    }

    #[test]
    fn changes_values_and_keeps_controller_taints() {
        let nodes = parse_nodes(NODES).unwrap();
        let h = host(
            "worker1",
            Role::Worker,
            &[("type", "wordpress")],
            vec![taint("dedicated", Some("db"), "NoExecute")],
        );
        let changes = diff(&h, &nodes[1]);
        assert_eq!(
            changes,
            vec![
                NodeChange::Label {
                    key: "type".into(),
                    value: "wordpress".into(),
                    old: Some("old".into())
                },
                NodeChange::Taint {
                    taint: taint("dedicated", Some("db"), "NoExecute"),
                    old: Some(taint("dedicated", None, "NoExecute"))
                },
            ]
        );
        assert_eq!(
            changes[0].to_string(),
            "label type=wordpress (was type=old)"
        );
        assert_eq!(
            changes[1].script("worker1"),
            "kubectl --kubeconfig /etc/kubernetes/admin.conf taint node worker1 'dedicated=db:NoExecute' --overwrite"
        );
    }

    #[test]
    fn same_key_other_effect_is_another_taint() {
        let node = Node {
            taints: vec![taint("k", None, "NoSchedule")],
            ..Node::expected_after_kubeadm(&host("n", Role::Worker, &[], vec![]))
        };
        let h = host("n", Role::Worker, &[], vec![taint("k", None, "NoExecute")]);
        let changes = diff(&h, &node);
        assert_eq!(changes.len(), 2);
        assert!(matches!(changes[0], NodeChange::Taint { old: None, .. }));
        assert!(matches!(changes[1], NodeChange::Untaint { .. }));
    }

    #[test]
    fn one_command_per_node() {
        let nodes = parse_nodes(NODES).unwrap();
        let h = host(
            "master",
            Role::ControlPlane,
            &[("type", "mysql"), ("tier", "db")],
            vec![taint("dedicated", Some("db"), "NoExecute")],
        );
        let changes = diff(&h, &nodes[0]);
        assert_eq!(changes.len(), 4);
        let cmd = changes_command("master", &changes);
        assert!(cmd.root);
        assert_eq!(
            cmd.script,
            "kubectl --kubeconfig /etc/kubernetes/admin.conf label node master 'tier=db' 'type=mysql' --overwrite \
             && kubectl --kubeconfig /etc/kubernetes/admin.conf taint node master 'dedicated=db:NoExecute' --overwrite \
             && kubectl --kubeconfig /etc/kubernetes/admin.conf taint node master node-role.kubernetes.io/control-plane:NoSchedule-"
        );
    }

    #[test]
    fn values_are_shell_quoted() {
        let c = NodeChange::Label {
            key: "a".into(),
            value: "x'; rm -rf / #".into(),
            old: None,
        };
        let script = c.script("n");
        assert_eq!(shlex::split(&script).unwrap()[6], "a=x'; rm -rf / #");
    }

    #[test]
    fn expected_after_kubeadm_previews() {
        let cp = host(
            "m",
            Role::ControlPlane,
            &[("type", "mysql")],
            vec![taint(CONTROL_PLANE_TAINT_KEY, None, "NoSchedule")],
        );
        let changes = diff(&cp, &Node::expected_after_kubeadm(&cp));
        assert_eq!(changes.len(), 1, "{changes:?}");
        let w = host(
            "w",
            Role::Worker,
            &[],
            vec![taint("x", Some("y"), "NoSchedule")],
        );
        assert_eq!(diff(&w, &Node::expected_after_kubeadm(&w)).len(), 1);
    }

    #[test]
    fn calico_state() {
        let ds = r#"{"kind": "DaemonSet", "spec": {"template": {"spec": {"containers": [
            {"name": "calico-node", "image": "docker.io/calico/node:v3.30.3"}]}}}}"#;
        let s = parse_calico(0, ds, "").unwrap();
        assert!(s.is("v3.30.3"));
        assert!(!s.is("v3.31.0"));
        let absent = parse_calico(
            1,
            "",
            "Error from server (NotFound): daemonsets.apps \"calico-node\" not found\n",
        )
        .unwrap();
        assert_eq!(absent, CalicoState::Absent);
        assert!(parse_calico(1, "", "The connection to the server was refused").is_err());
        assert_eq!(image_tag("reg:5000/calico/node"), None);
        assert_eq!(image_tag("reg:5000/calico/node:v1@sha256:ab"), Some("v1"));
    }
}
