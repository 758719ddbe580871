//! The cluster as its control plane sees it: node objects and the Calico DaemonSet.
//!
//! Host facts say what a machine has; only the API server says what the *cluster* has:
//! which nodes registered, whether they are Ready, at which kubelet version, with which
//! labels and taints. This module turns `kubectl get nodes -o json` (reference §9) into
//! [`Node`]s and computes the label/taint changes that bring a node to what the inventory
//! declares, as the real `kubectl label`/`kubectl taint` commands (reference §7).
//!
//! Ownership rules, so that re-runs converge and never fight the cluster's controllers:
//! - labels and taints are declarative for the keys the tool *manages*: the inventory's
//!   labels and taints are set, and a label key or taint (key:effect) the tool set before
//!   but the inventory no longer declares is removed. Which keys the tool manages is
//!   recorded on the node itself, in the annotations [`MANAGED_LABELS_ANNOTATION`] and
//!   [`MANAGED_TAINTS_ANNOTATION`], so it survives across runs and machines.
//! - labels and taints never managed by the tool (kubelet's `kubernetes.io/hostname`,
//!   kubeadm's role labels, Calico's, a user's `kubectl label`) are left alone. A node
//!   without the annotations (first run) loses nothing undeclared.
//! - kubeadm's control-plane taint counts as managed on control planes, because the
//!   inventory's role default declares it: `taints: []` removes it, omitting `taints`
//!   keeps it.
//! - taints the node lifecycle controller manages (`node.kubernetes.io/*`, e.g.
//!   `not-ready`, `unschedulable`, and the cloud provider's `uninitialized`) are never
//!   touched.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use crate::inventory::{Host, Role, Taint};
use crate::ssh::RemoteCommand;

/// kubectl with the admin credentials kubeadm writes on a control plane. Needs root.
pub const KUBECTL: &str = "kubectl --kubeconfig /etc/kubernetes/admin.conf";

/// The taint kubeadm puts on control planes by default.
pub const CONTROL_PLANE_TAINT_KEY: &str = "node-role.kubernetes.io/control-plane";

/// Node annotation listing the label keys the tool manages on that node, comma-separated
/// and sorted (`type,example.com/tier`). A key listed here but no longer in the inventory
/// is removed from the node.
pub const MANAGED_LABELS_ANNOTATION: &str = "bootstrap.dev/managed-labels";

/// Node annotation listing the taints the tool manages on that node as `key:Effect`,
/// comma-separated and sorted (`dedicated:NoSchedule`).
pub const MANAGED_TAINTS_ANNOTATION: &str = "bootstrap.dev/managed-taints";

/// One command applying all of a node's changes: a single `kubectl label` with every
/// label (kubectl takes several `k=v`), then one `kubectl taint` per taint change, joined
/// with `&&` so the first failure stops it. One round trip per node instead of one per
/// change.
pub fn changes_command(node: &str, changes: &[NodeChange]) -> RemoteCommand {
    let labels: Vec<String> = changes
        .iter()
        .filter_map(|c| match c {
            NodeChange::Label { key, value, .. } => Some(quote(&format!("{key}={value}"))),
            NodeChange::Unlabel { key, .. } => Some(quote(&format!("{key}-"))),
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
            .filter(|c| !matches!(c, NodeChange::Label { .. } | NodeChange::Unlabel { .. }))
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
    /// `metadata.annotations`; read for [`MANAGED_LABELS_ANNOTATION`] and
    /// [`MANAGED_TAINTS_ANNOTATION`].
    pub annotations: BTreeMap<String, String>,
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
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
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
            annotations: raw.metadata.annotations.unwrap_or_default(),
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
            annotations: BTreeMap::new(),
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
    /// Remove a label the tool managed (listed in [`MANAGED_LABELS_ANNOTATION`]) that the
    /// inventory no longer declares.
    Unlabel { key: String, old: String },
    /// Remove a managed taint the inventory does not declare (any more).
    Untaint { taint: Taint },
    /// Record which label keys or taints the tool manages (one of the `MANAGED_*`
    /// annotations); `value` is the new comma-separated list.
    Annotate { key: &'static str, value: String },
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
            NodeChange::Unlabel { key, .. } => format!(
                "{KUBECTL} label node {} {}",
                quote(node),
                quote(&format!("{key}-"))
            ),
            NodeChange::Untaint { taint } => format!(
                "{KUBECTL} taint node {} {}",
                quote(node),
                quote(&format!("{}:{}-", taint.key, taint.effect))
            ),
            NodeChange::Annotate { key, value } => format!(
                "{KUBECTL} annotate node {} {} --overwrite",
                quote(node),
                quote(&format!("{key}={value}"))
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
            NodeChange::Unlabel { key, .. } => write!(
                f,
                "remove label {key} (label {key} was declared before and is not any more)"
            ),
            NodeChange::Untaint { taint } => write!(
                f,
                "remove taint {} (taint {}:{} was declared before and is not any more)",
                taint_spec(taint),
                taint.key,
                taint.effect
            ),
            NodeChange::Annotate { key, value } => {
                write!(f, "annotate {key}={value:?} (the keys the tool manages)")
            }
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

/// The comma-separated entries of annotation `key` on `node` (none if it is absent).
fn managed(node: &Node, key: &str) -> Vec<String> {
    node.annotations
        .get(key)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// `key:Effect`, how a taint is named in [`MANAGED_TAINTS_ANNOTATION`].
fn taint_id(key: &str, effect: &str) -> String {
    format!("{key}:{effect}")
}

/// The values of the `MANAGED_*` annotations for a node that should carry `labels` and
/// `taints`: sorted, comma-separated label keys and `key:Effect` taints.
pub fn managed_annotations(
    labels: &BTreeMap<String, String>,
    taints: &[Taint],
) -> [(&'static str, String); 2] {
    let labels: Vec<&str> = labels.keys().map(String::as_str).collect();
    let mut taints: Vec<String> = taints.iter().map(|t| taint_id(&t.key, &t.effect)).collect();
    taints.sort();
    taints.dedup();
    [
        (MANAGED_LABELS_ANNOTATION, labels.join(",")),
        (MANAGED_TAINTS_ANNOTATION, taints.join(",")),
    ]
}

/// The label and taint changes that make `node` match what `host` declares: labels that
/// are missing or differ, taints (by key and effect) that are missing or differ, managed
/// labels and taints (see the module docs) the inventory no longer declares, and last
/// the `MANAGED_*` annotations when they do not list exactly what is declared now. Empty
/// when the node already matches. Removals come after additions, so a node is never left
/// with fewer taints than wanted if a later command fails, and the annotation comes last,
/// so it is only rewritten once the changes it records are made.
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
    for key in managed(node, MANAGED_LABELS_ANNOTATION) {
        if host.labels.contains_key(&key) {
            continue;
        }
        if let Some(old) = node.labels.get(&key) {
            changes.push(NodeChange::Unlabel {
                key,
                old: old.clone(),
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
    let mut managed_taints = managed(node, MANAGED_TAINTS_ANNOTATION);
    if host.role == Role::ControlPlane {
        managed_taints.push(taint_id(CONTROL_PLANE_TAINT_KEY, "NoSchedule"));
    }
    for have in &node.taints {
        let declared = host
            .taints
            .iter()
            .any(|w| w.key == have.key && w.effect == have.effect);
        let ours = managed_taints.contains(&taint_id(&have.key, &have.effect));
        if !declared && ours && !controller_managed(have) {
            changes.push(NodeChange::Untaint {
                taint: have.clone(),
            });
        }
    }
    for (key, want) in managed_annotations(&host.labels, &host.taints) {
        // A missing annotation and an empty list mean the same: nothing managed.
        if node.annotations.get(key).map(String::as_str).unwrap_or("") != want {
            changes.push(NodeChange::Annotate { key, value: want });
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

/// Formats a duration for kubectl's `--timeout=` (whole seconds, at least 1s).
pub fn kubectl_duration(d: std::time::Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_durations_are_whole_seconds_and_never_zero() {
        assert_eq!(kubectl_duration(std::time::Duration::from_millis(10)), "1s");
        assert_eq!(kubectl_duration(std::time::Duration::from_secs(90)), "90s");
    }

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
        crate::inventory::test_host(name, role, labels, taints)
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
        // Before the tool recorded what it manages, it only writes the annotations.
        let changes = diff(&h, &nodes[0]);
        assert_eq!(
            changes,
            vec![NodeChange::Annotate {
                key: MANAGED_TAINTS_ANNOTATION,
                value: "node-role.kubernetes.io/control-plane:NoSchedule".into()
            }]
        );
        let node = with_annotations(
            &nodes[0],
            "",
            "node-role.kubernetes.io/control-plane:NoSchedule",
        );
        assert!(diff(&h, &node).is_empty());
    }

    fn with_annotations(node: &Node, labels: &str, taints: &str) -> Node {
        let mut n = node.clone();
        n.annotations
            .insert(MANAGED_LABELS_ANNOTATION.into(), labels.into());
        n.annotations
            .insert(MANAGED_TAINTS_ANNOTATION.into(), taints.into());
        n
    }

    #[test]
    fn first_run_without_annotation_removes_nothing_undeclared() {
        let mut node = parse_nodes(NODES).unwrap().remove(1);
        node.labels.insert("owner".into(), "me".into());
        let h = host("worker1", Role::Worker, &[("type", "old")], vec![]);
        let changes = diff(&h, &node);
        // `owner` and the `dedicated` taint were never ours: kept.
        assert_eq!(
            changes,
            vec![NodeChange::Annotate {
                key: MANAGED_LABELS_ANNOTATION,
                value: "type".into()
            }]
        );
    }

    #[test]
    fn removes_managed_label_and_taint_no_longer_declared() {
        let mut node = with_annotations(
            &parse_nodes(NODES).unwrap()[1],
            "tier,type",
            "dedicated:NoExecute",
        );
        node.labels.insert("tier".into(), "a".into());
        node.labels.insert("owner".into(), "me".into());
        let h = host("worker1", Role::Worker, &[("type", "old")], vec![]);
        let changes = diff(&h, &node);
        assert_eq!(
            changes,
            vec![
                NodeChange::Unlabel {
                    key: "tier".into(),
                    old: "a".into()
                },
                NodeChange::Untaint {
                    taint: taint("dedicated", None, "NoExecute")
                },
                NodeChange::Annotate {
                    key: MANAGED_LABELS_ANNOTATION,
                    value: "type".into()
                },
                NodeChange::Annotate {
                    key: MANAGED_TAINTS_ANNOTATION,
                    value: "".into()
                },
            ]
        );
        assert_eq!(
            changes[0].to_string(),
            "remove label tier (label tier was declared before and is not any more)"
        );
        assert_eq!(
            changes_command("worker1", &changes).script,
            "kubectl --kubeconfig /etc/kubernetes/admin.conf label node worker1 tier- --overwrite \
             && kubectl --kubeconfig /etc/kubernetes/admin.conf taint node worker1 dedicated:NoExecute- \
             && kubectl --kubeconfig /etc/kubernetes/admin.conf annotate node worker1 'bootstrap.dev/managed-labels=type' --overwrite \
             && kubectl --kubeconfig /etc/kubernetes/admin.conf annotate node worker1 'bootstrap.dev/managed-taints=' --overwrite"
        );
        // Converged: the annotations list what is declared, nothing else to do.
        node.labels.remove("tier");
        node.taints.retain(|t| t.key != "dedicated");
        let node = with_annotations(&node, "type", "");
        assert!(diff(&h, &node).is_empty());
    }

    #[test]
    fn managed_label_already_gone_only_updates_the_annotation() {
        let node = with_annotations(&parse_nodes(NODES).unwrap()[1], "tier,type", "");
        let h = host("worker1", Role::Worker, &[("type", "old")], vec![]);
        assert_eq!(
            diff(&h, &node),
            vec![NodeChange::Annotate {
                key: MANAGED_LABELS_ANNOTATION,
                value: "type".into()
            }]
        );
    }

    #[test]
    fn control_plane_taint_is_managed_on_control_planes_only() {
        let master = parse_nodes(NODES).unwrap().remove(0);
        let cp_default = host(
            "master",
            Role::ControlPlane,
            &[],
            vec![taint(CONTROL_PLANE_TAINT_KEY, None, "NoSchedule")],
        );
        // `taints` omitted (the role default): kept, even with no annotation yet.
        assert!(!diff(&cp_default, &master)
            .iter()
            .any(|c| matches!(c, NodeChange::Untaint { .. })));
        // `taints: []`: removed, even with no annotation yet.
        let cp_none = host("master", Role::ControlPlane, &[], vec![]);
        assert_eq!(
            diff(&cp_none, &master),
            vec![NodeChange::Untaint {
                taint: taint(CONTROL_PLANE_TAINT_KEY, None, "NoSchedule")
            }]
        );
        // On a worker someone else's control-plane taint is not ours.
        let mut worker = master.clone();
        worker.name = "w".into();
        let w = host("w", Role::Worker, &[], vec![]);
        assert!(diff(&w, &worker).is_empty());
    }

    #[test]
    fn removes_control_plane_taint_when_inventory_says_none() {
        let nodes = parse_nodes(NODES).unwrap();
        let h = host("master", Role::ControlPlane, &[("type", "mysql")], vec![]);
        let changes = diff(&h, &nodes[0]);
        assert_eq!(changes.len(), 3, "{changes:?}");
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
            changes[..2],
            [
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
        let node = with_annotations(&node, "", "k:NoSchedule");
        let h = host("n", Role::Worker, &[], vec![taint("k", None, "NoExecute")]);
        let changes = diff(&h, &node);
        assert_eq!(changes.len(), 3, "{changes:?}");
        assert!(matches!(changes[0], NodeChange::Taint { old: None, .. }));
        assert!(matches!(changes[1], NodeChange::Untaint { .. }));
        assert!(matches!(changes[2], NodeChange::Annotate { .. }));
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
        assert_eq!(changes.len(), 6, "{changes:?}");
        let cmd = changes_command("master", &changes);
        assert!(cmd.root);
        assert_eq!(
            cmd.script,
            "kubectl --kubeconfig /etc/kubernetes/admin.conf label node master 'tier=db' 'type=mysql' --overwrite \
             && kubectl --kubeconfig /etc/kubernetes/admin.conf taint node master 'dedicated=db:NoExecute' --overwrite \
             && kubectl --kubeconfig /etc/kubernetes/admin.conf taint node master node-role.kubernetes.io/control-plane:NoSchedule- \
             && kubectl --kubeconfig /etc/kubernetes/admin.conf annotate node master 'bootstrap.dev/managed-labels=tier,type' --overwrite \
             && kubectl --kubeconfig /etc/kubernetes/admin.conf annotate node master 'bootstrap.dev/managed-taints=dedicated:NoExecute' --overwrite"
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
        assert_eq!(changes.len(), 3, "{changes:?}");
        let w = host(
            "w",
            Role::Worker,
            &[],
            vec![taint("x", Some("y"), "NoSchedule")],
        );
        assert_eq!(diff(&w, &Node::expected_after_kubeadm(&w)).len(), 2);
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
