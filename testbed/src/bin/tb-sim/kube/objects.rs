//! Pure helpers over Kubernetes objects kept as `serde_json::Value` in their real shapes:
//! resource names and kinds, keys, timestamps, label selectors, taints and tolerations,
//! merge patches, durations. Shared by the API server, the controllers and kubectl.

use serde_json::{json, Map, Value};

/// What kubectl and the server know about a kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub kind: String,
    /// "" for the core group, else "apps", "policy", ...
    pub group: String,
    pub version: String,
    /// Lower-case plural, e.g. "deployments".
    pub plural: String,
    pub namespaced: bool,
}

impl Resource {
    /// `deployment.apps` / `node`: the name kubectl prints before `/NAME`.
    pub fn singular_ref(&self) -> String {
        let k = self.kind.to_lowercase();
        if self.group.is_empty() {
            k
        } else {
            format!("{k}.{}", self.group)
        }
    }
    /// `deployments.apps` / `nodes`: the name used in server messages.
    pub fn plural_ref(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// (kind, group, version, plural, namespaced, aliases) of a kind kubectl can name.
type Known = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
);

const KNOWN: &[Known] = &[
    ("Node", "", "v1", "nodes", false, &["node", "no"]),
    ("Pod", "", "v1", "pods", true, &["pod", "po"]),
    (
        "Namespace",
        "",
        "v1",
        "namespaces",
        false,
        &["namespace", "ns"],
    ),
    (
        "ConfigMap",
        "",
        "v1",
        "configmaps",
        true,
        &["configmap", "cm"],
    ),
    ("Secret", "", "v1", "secrets", true, &["secret"]),
    ("Service", "", "v1", "services", true, &["service", "svc"]),
    (
        "ServiceAccount",
        "",
        "v1",
        "serviceaccounts",
        true,
        &["serviceaccount", "sa"],
    ),
    ("Event", "", "v1", "events", true, &["event", "ev"]),
    (
        "PersistentVolumeClaim",
        "",
        "v1",
        "persistentvolumeclaims",
        true,
        &["persistentvolumeclaim", "pvc"],
    ),
    (
        "PersistentVolume",
        "",
        "v1",
        "persistentvolumes",
        false,
        &["persistentvolume", "pv"],
    ),
    (
        "Deployment",
        "apps",
        "v1",
        "deployments",
        true,
        &["deployment", "deploy"],
    ),
    (
        "ReplicaSet",
        "apps",
        "v1",
        "replicasets",
        true,
        &["replicaset", "rs"],
    ),
    (
        "DaemonSet",
        "apps",
        "v1",
        "daemonsets",
        true,
        &["daemonset", "ds"],
    ),
    (
        "StatefulSet",
        "apps",
        "v1",
        "statefulsets",
        true,
        &["statefulset", "sts"],
    ),
    (
        "PodDisruptionBudget",
        "policy",
        "v1",
        "poddisruptionbudgets",
        true,
        &["poddisruptionbudget", "pdb"],
    ),
    (
        "ClusterRole",
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        false,
        &["clusterrole"],
    ),
    (
        "ClusterRoleBinding",
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        false,
        &["clusterrolebinding"],
    ),
    (
        "Role",
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        true,
        &["role"],
    ),
    (
        "RoleBinding",
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        true,
        &["rolebinding"],
    ),
    (
        "CustomResourceDefinition",
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        false,
        &["customresourcedefinition", "crd", "crds"],
    ),
    (
        "PriorityClass",
        "scheduling.k8s.io",
        "v1",
        "priorityclasses",
        false,
        &["priorityclass", "pc"],
    ),
    (
        "StorageClass",
        "storage.k8s.io",
        "v1",
        "storageclasses",
        false,
        &["storageclass", "sc"],
    ),
];

/// Kinds that are cluster-scoped although not in [`KNOWN`] (Calico's and webhook kinds).
const CLUSTER_SCOPED: &[&str] = &[
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "CSIDriver",
    "IPPool",
    "BGPConfiguration",
    "FelixConfiguration",
    "ClusterInformation",
    "GlobalNetworkPolicy",
    "GlobalNetworkSet",
    "IPAMBlock",
    "IPAMConfig",
    "IPAMHandle",
    "BlockAffinity",
    "KubeControllersConfiguration",
    "HostEndpoint",
    "BGPPeer",
    "Installation",
    "APIServer",
    "TigeraStatus",
];

/// Every built-in resource the API server serves, with its short names, in the order of
/// `kubectl api-resources` (apiresources.go's sortableResource: by group, the core group
/// first, then by name).
pub fn known_resources() -> Vec<(Resource, Vec<&'static str>)> {
    let mut all: Vec<(Resource, Vec<&'static str>)> = KNOWN
        .iter()
        .map(|(kind, group, version, plural, namespaced, aliases)| {
            let short = aliases
                .iter()
                .copied()
                .filter(|a| *a != kind.to_lowercase())
                .collect();
            let r = Resource {
                kind: kind.to_string(),
                group: group.to_string(),
                version: version.to_string(),
                plural: plural.to_string(),
                namespaced: *namespaced,
            };
            (r, short)
        })
        .collect();
    all.sort_by(|a, b| (&a.0.group, &a.0.plural).cmp(&(&b.0.group, &b.0.plural)));
    all
}

/// The resource a kubectl argument names ("nodes", "deploy", "deployment.apps", ...).
pub fn resource_by_name(name: &str) -> Option<Resource> {
    let n = name.to_lowercase();
    let (base, group) = match n.split_once('.') {
        Some((b, g)) => (b.to_string(), Some(g.to_string())),
        None => (n.clone(), None),
    };
    KNOWN
        .iter()
        .find(|(kind, g, _, plural, _, aliases)| {
            (base == *plural || aliases.contains(&base.as_str()) || base == kind.to_lowercase())
                && group.as_deref().is_none_or(|x| x == *g)
        })
        .map(|(kind, group, version, plural, namespaced, _)| Resource {
            kind: kind.to_string(),
            group: group.to_string(),
            version: version.to_string(),
            plural: plural.to_string(),
            namespaced: *namespaced,
        })
}

/// The resource of an object's kind and apiVersion (any kind: unknown ones are
/// namespaced unless listed as cluster-scoped).
pub fn resource_of(kind: &str, api_version: &str) -> Resource {
    if let Some((_, g, v, plural, namespaced, _)) = KNOWN.iter().find(|k| k.0 == kind) {
        return Resource {
            kind: kind.into(),
            group: g.to_string(),
            version: v.to_string(),
            plural: plural.to_string(),
            namespaced: *namespaced,
        };
    }
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), api_version.to_string()),
    };
    let lower = kind.to_lowercase();
    let plural = if lower.ends_with('s') {
        format!("{lower}es")
    } else if let Some(stem) = lower.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    };
    Resource {
        kind: kind.into(),
        group,
        version,
        plural,
        namespaced: !CLUSTER_SCOPED.contains(&kind),
    }
}

/// The state key of an object: "namespace/name" or "name".
pub fn key(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

pub fn name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or("")
}

pub fn namespace(obj: &Value) -> &str {
    obj["metadata"]["namespace"].as_str().unwrap_or("")
}

pub fn kind(obj: &Value) -> &str {
    obj["kind"].as_str().unwrap_or("")
}

/// The key of an object (by its own metadata).
pub fn key_of(obj: &Value) -> String {
    let ns = namespace(obj);
    key((!ns.is_empty()).then_some(ns), name(obj))
}

/// A label map of an object (empty when absent).
pub fn labels(obj: &Value) -> Map<String, Value> {
    obj["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

/// Makes `v[k]` an object (creating it) and returns it.
pub fn obj_mut<'a>(v: &'a mut Value, k: &str) -> &'a mut Map<String, Value> {
    if !v[k].is_object() {
        v[k] = json!({});
    }
    v[k].as_object_mut().unwrap()
}

// ---------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------

pub use testbed::time::{parse_rfc3339, rfc3339};

/// kubectl's AGE column (apimachinery's `duration.HumanDuration`).
pub fn human_duration(secs: f64) -> String {
    let s = secs as i64;
    if s < -1 {
        return "<invalid>".into();
    } else if s < 0 {
        return "0s".into();
    } else if s < 120 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        let r = s % 60;
        return if r == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{r}s")
        };
    } else if m < 180 {
        return format!("{m}m");
    }
    let h = s / 3600;
    if h < 8 {
        let r = m % 60;
        return if r == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{r}m")
        };
    } else if h < 48 {
        return format!("{h}h");
    } else if h < 24 * 8 {
        let r = h % 24;
        return if r == 0 {
            format!("{}d", h / 24)
        } else {
            format!("{}d{r}h", h / 24)
        };
    } else if h < 24 * 365 * 2 {
        return format!("{}d", h / 24);
    } else if h < 24 * 365 * 8 {
        let dy = (h / 24) % 365;
        return if dy == 0 {
            format!("{}y", h / 24 / 365)
        } else {
            format!("{}y{dy}d", h / 24 / 365)
        };
    }
    format!("{}y", h / 24 / 365)
}

/// The age of an object from its creationTimestamp.
pub fn age(obj: &Value, now: f64) -> String {
    match obj["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(parse_rfc3339)
    {
        Some(t) => human_duration(now - t),
        None => "<unknown>".into(),
    }
}

/// Go's `time.ParseDuration` ("30s", "5m", "1m30s", "24h0m0s", "300ms"; a bare number only
/// as "0") into seconds: what kubeadm's config fields and flags accept.
pub fn parse_go_duration(s: &str) -> Option<f64> {
    let s = s.trim();
    if s == "0" {
        return Some(0.0);
    }
    let mut total = 0.0;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push(chars.next().unwrap());
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        any = true;
    }
    (any && num.is_empty()).then_some(total)
}

/// Go's `time.Duration.String()` for whole seconds: "5s", "1m0s", "1h0m0s".
pub fn go_duration(secs: f64) -> String {
    let s = secs.round() as i64;
    if s == 0 {
        return "0s".into();
    }
    let (h, m, sec) = (s / 3600, s % 3600 / 60, s % 60);
    if h > 0 {
        format!("{h}h{m}m{sec}s")
    } else if m > 0 {
        format!("{m}m{sec}s")
    } else {
        format!("{sec}s")
    }
}

// ---------------------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------------------

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq)]
pub enum Requirement {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// Parses a `-l` selector: `a=b,c!=d,e in (x,y),f notin (z),g,!h`.
pub fn parse_selector(s: &str) -> Result<Vec<Requirement>, String> {
    let mut parts = vec![];
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        parts.push(cur);
    }
    let mut out = vec![];
    for p in parts {
        let p = p.trim();
        let set = |rest: &str| -> Vec<String> {
            rest.trim()
                .trim_start_matches('(')
                .trim_end_matches(')')
                .split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        };
        if let Some((k, v)) = p.split_once("!=") {
            out.push(Requirement::NotEq(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = p.split_once("==") {
            out.push(Requirement::Eq(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = p.split_once('=') {
            out.push(Requirement::Eq(k.trim().into(), v.trim().into()));
        } else if let Some((k, rest)) = p.split_once(" notin ") {
            out.push(Requirement::NotIn(k.trim().into(), set(rest)));
        } else if let Some((k, rest)) = p.split_once(" in ") {
            out.push(Requirement::In(k.trim().into(), set(rest)));
        } else if let Some(k) = p.strip_prefix('!') {
            out.push(Requirement::NotExists(k.trim().into()));
        } else if !p.is_empty() && !p.contains(' ') {
            out.push(Requirement::Exists(p.into()));
        } else {
            return Err(format!("unable to parse requirement: {p}"));
        }
    }
    Ok(out)
}

/// Whether a label map satisfies every requirement.
pub fn selector_matches(reqs: &[Requirement], labels: &Map<String, Value>) -> bool {
    let get = |k: &str| labels.get(k).and_then(|v| v.as_str());
    reqs.iter().all(|r| match r {
        Requirement::Eq(k, v) => get(k) == Some(v.as_str()),
        Requirement::NotEq(k, v) => get(k) != Some(v.as_str()),
        Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        Requirement::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        Requirement::Exists(k) => get(k).is_some(),
        Requirement::NotExists(k) => get(k).is_none(),
    })
}

/// Whether labels match a `metav1.LabelSelector` object (matchLabels + matchExpressions).
pub fn label_selector_matches(sel: &Value, labels: &Map<String, Value>) -> bool {
    if let Some(ml) = sel["matchLabels"].as_object() {
        if !ml.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            return false;
        }
    }
    if let Some(exprs) = sel["matchExpressions"].as_array() {
        for e in exprs {
            let k = e["key"].as_str().unwrap_or("");
            let vals: Vec<&str> = e["values"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            let cur = labels.get(k).and_then(|v| v.as_str());
            let ok = match e["operator"].as_str().unwrap_or("") {
                "In" => cur.is_some_and(|c| vals.contains(&c)),
                "NotIn" => !cur.is_some_and(|c| vals.contains(&c)),
                "Exists" => cur.is_some(),
                "DoesNotExist" => cur.is_none(),
                _ => false,
            };
            if !ok {
                return false;
            }
        }
    }
    true
}

/// Whether a label key/value pair is valid (`kubectl label` / `taint` key syntax).
pub fn valid_label_key(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix {
        if p.is_empty()
            || p.len() > 253
            || !p.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
        {
            return false;
        }
    }
    !name.is_empty() && valid_label_value(name)
}

pub fn valid_label_value(v: &str) -> bool {
    if v.is_empty() {
        return true;
    }
    let alnum = |c: char| c.is_ascii_alphanumeric();
    v.len() <= 63
        && v.starts_with(alnum)
        && v.ends_with(alnum)
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

// ---------------------------------------------------------------------------------------
// Taints and tolerations
// ---------------------------------------------------------------------------------------

/// A node taint (`spec.taints[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: String,
    /// "" only in a removal spec meaning "any effect".
    pub effect: String,
}

impl Taint {
    pub fn from_json(v: &Value) -> Taint {
        Taint {
            key: v["key"].as_str().unwrap_or("").into(),
            value: v["value"].as_str().unwrap_or("").into(),
            effect: v["effect"].as_str().unwrap_or("").into(),
        }
    }
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("effect".into(), json!(self.effect));
        m.insert("key".into(), json!(self.key));
        if !self.value.is_empty() {
            m.insert("value".into(), json!(self.value));
        }
        Value::Object(m)
    }
    /// core/v1 `Taint.ToString()`.
    pub fn to_spec_string(&self) -> String {
        match (self.effect.is_empty(), self.value.is_empty()) {
            (true, true) => self.key.clone(),
            (true, false) => format!("{}={}:", self.key, self.value),
            (false, true) => format!("{}:{}", self.key, self.effect),
            (false, false) => format!("{}={}:{}", self.key, self.value, self.effect),
        }
    }
}

pub const EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// The taints of a node.
pub fn taints(node: &Value) -> Vec<Taint> {
    node["spec"]["taints"]
        .as_array()
        .map(|a| a.iter().map(Taint::from_json).collect())
        .unwrap_or_default()
}

/// Sets a node's taints (removing the field when empty, as the API server does).
pub fn set_taints(node: &mut Value, t: &[Taint]) {
    let spec = obj_mut(node, "spec");
    if t.is_empty() {
        spec.remove("taints");
    } else {
        spec.insert(
            "taints".into(),
            Value::Array(t.iter().map(Taint::to_json).collect()),
        );
    }
}

/// Whether a toleration list tolerates a taint (core/v1 `Toleration.ToleratesTaint`).
pub fn tolerates(tolerations: &[Value], t: &Taint) -> bool {
    tolerations.iter().any(|tol| {
        let effect = tol["effect"].as_str().unwrap_or("");
        if !effect.is_empty() && effect != t.effect {
            return false;
        }
        let key = tol["key"].as_str().unwrap_or("");
        if !key.is_empty() && key != t.key {
            return false;
        }
        match tol["operator"].as_str().unwrap_or("Equal") {
            "Exists" => true,
            _ => !key.is_empty() && tol["value"].as_str().unwrap_or("") == t.value,
        }
    })
}

// ---------------------------------------------------------------------------------------
// Patches
// ---------------------------------------------------------------------------------------

/// JSON merge patch (RFC 7386).
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// A random lower-case suffix in the alphabet Kubernetes uses for generated names.
pub fn random_suffix(n: usize) -> String {
    use rand::Rng;
    const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| ALPHA[rng.gen_range(0..ALPHA.len())] as char)
        .collect()
}

/// A stable 10-character hash of a pod template (the `pod-template-hash` label).
pub fn template_hash(template: &Value) -> String {
    use sha2::{Digest, Sha256};
    const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let digest = Sha256::digest(serde_json::to_vec(template).unwrap_or_default());
    digest
        .iter()
        .take(10)
        .map(|b| ALPHA[*b as usize % ALPHA.len()] as char)
        .collect()
}

/// A random UUID (v4 shape) for `metadata.uid`.
pub fn uuid() -> String {
    use rand::Rng;
    let b: [u8; 16] = rand::thread_rng().gen();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// The minor version of "v1.34.2" / "1.34.2-1.1" (34).
pub fn minor_of(v: &str) -> Option<u64> {
    v.trim_start_matches('v').split('.').nth(1)?.parse().ok()
}

/// The image tag of "registry.k8s.io/kube-apiserver:v1.34.2" ("v1.34.2").
pub fn image_tag(image: &str) -> Option<&str> {
    let last = image.rsplit('/').next()?;
    last.split_once(':')
        .map(|(_, t)| t.split('@').next().unwrap_or(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_resources_in_kubectl_s_order_with_short_names() {
        let all = known_resources();
        let names: Vec<String> = all.iter().map(|(r, _)| r.plural_ref()).collect();
        let core_end = names.iter().position(|n| n.contains('.')).unwrap();
        assert!(
            names[..core_end].windows(2).all(|w| w[0] < w[1]),
            "{names:?}"
        );
        assert_eq!(names[0], "configmaps");
        assert!(names.contains(&"deployments.apps".to_string()));
        let (_, short) = all.iter().find(|(r, _)| r.plural == "nodes").unwrap();
        assert_eq!(short, &["no"]);
    }

    #[test]
    fn time_roundtrip() {
        let t = 1_764_000_000.0;
        let s = rfc3339(t);
        assert_eq!(s, "2025-11-24T16:00:00Z");
        assert_eq!(parse_rfc3339(&s), Some(t));
        assert_eq!(parse_rfc3339("2025-11-24T17:00:00+01:00"), Some(t));
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(5.0), "5s");
        assert_eq!(human_duration(119.0), "119s");
        assert_eq!(human_duration(150.0), "2m30s");
        assert_eq!(human_duration(600.0), "10m");
        assert_eq!(human_duration(3.0 * 3600.0 + 60.0), "3h1m");
        assert_eq!(human_duration(50.0 * 3600.0), "2d2h");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_go_duration("1m30s"), Some(90.0));
        assert_eq!(parse_go_duration("10m"), Some(600.0));
        assert_eq!(parse_go_duration("300ms"), Some(0.3));
        assert_eq!(parse_go_duration("x"), None);
        assert_eq!(parse_go_duration("24h0m0s"), Some(86400.0));
        assert_eq!(parse_go_duration("0"), Some(0.0));
        assert_eq!(parse_go_duration("90"), None);
        assert_eq!(go_duration(60.0), "1m0s");
        assert_eq!(go_duration(5.0), "5s");
        assert_eq!(go_duration(3600.0), "1h0m0s");
    }

    #[test]
    fn selectors() {
        let l: Map<String, Value> =
            serde_json::from_str(r#"{"type":"mysql","tier":"db"}"#).unwrap();
        let s = parse_selector("type=mysql,tier in (db, cache),!gpu").unwrap();
        assert!(selector_matches(&s, &l));
        let s = parse_selector("type!=mysql").unwrap();
        assert!(!selector_matches(&s, &l));
        let sel = json!({"matchLabels": {"type": "mysql"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["db"]}]});
        assert!(label_selector_matches(&sel, &l));
    }

    #[test]
    fn tolerations() {
        let cp = Taint {
            key: "node-role.kubernetes.io/control-plane".into(),
            value: "".into(),
            effect: "NoSchedule".into(),
        };
        assert!(tolerates(&[json!({"operator": "Exists"})], &cp));
        assert!(tolerates(
            &[json!({"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"})],
            &cp
        ));
        assert!(!tolerates(
            &[json!({"key": "other", "operator": "Exists"})],
            &cp
        ));
        assert!(!tolerates(
            &[json!({"operator": "Exists", "effect": "NoExecute"})],
            &cp
        ));
        assert_eq!(
            cp.to_spec_string(),
            "node-role.kubernetes.io/control-plane:NoSchedule"
        );
    }

    #[test]
    fn resources() {
        assert_eq!(
            resource_by_name("deploy").unwrap().singular_ref(),
            "deployment.apps"
        );
        assert_eq!(resource_by_name("nodes").unwrap().plural_ref(), "nodes");
        assert_eq!(resource_by_name("pdb").unwrap().group, "policy");
        let r = resource_of("IPPool", "crd.projectcalico.org/v1");
        assert!(!r.namespaced);
        assert_eq!(r.singular_ref(), "ippool.crd.projectcalico.org");
        assert!(valid_label_key("node-role.kubernetes.io/control-plane"));
        assert!(!valid_label_key("bad key"));
        assert_eq!(
            image_tag("registry.k8s.io/kube-apiserver:v1.34.2"),
            Some("v1.34.2")
        );
        assert_eq!(image_tag("localhost:5000/x"), None);
    }

    #[test]
    fn merge() {
        let mut t = json!({"a": {"b": 1, "c": 2}, "d": [1]});
        merge_patch(&mut t, &json!({"a": {"b": null, "e": 3}, "d": [2]}));
        assert_eq!(t, json!({"a": {"c": 2, "e": 3}, "d": [2]}));
    }
}
