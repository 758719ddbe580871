//! kubeadm's configuration API: multi-document YAML with `kubeadm.k8s.io/v1beta3|v1beta4`
//! kinds plus the kubelet's and kube-proxy's component configs, decoded the way kubeadm
//! decodes it (version gating per kubeadm release, strict-decoding warnings for unknown
//! fields, type errors for `extraArgs` in the wrong shape, validation errors).

use serde_json::{Map, Value};

use super::version::KVer;

pub const KUBEADM_GROUP: &str = "kubeadm.k8s.io";
pub const DEFAULT_CRI_SOCKET: &str = "unix:///var/run/containerd/containerd.sock";
/// CRI endpoints kubeadm looks for when none is configured (Linux), in its order.
pub const KNOWN_CRI_SOCKETS: &[&str] = &[
    "unix:///var/run/containerd/containerd.sock",
    "unix:///var/run/crio/crio.sock",
    "unix:///var/run/cri-dockerd.sock",
];

/// The decoded documents of a config file, before defaulting.
#[derive(Debug, Default, Clone)]
pub struct Documents {
    /// The kubeadm API version the file used (of its first kubeadm document).
    pub api_version: Option<String>,
    pub init: Option<Value>,
    pub cluster: Option<Value>,
    pub join: Option<Value>,
    pub kubelet: Option<Value>,
    pub kube_proxy: Option<Value>,
    /// klog-style warnings kubeadm prints to stderr (deprecated API, unknown fields).
    pub warnings: Vec<String>,
}

/// A klog line as kubeadm's warnings look: `W1125 17:14:46.123456    4242 file.go:NN] msg`.
pub fn klog(level: char, file_line: &str, msg: &str) -> String {
    let now = crate::common::now();
    let secs = now as i64;
    let micros = ((now - secs as f64) * 1e6) as i64;
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let t = secs as libc::time_t;
    unsafe { libc::gmtime_r(&t, &mut tm) };
    format!(
        "{level}{:02}{:02} {:02}:{:02}:{:02}.{micros:06} {:>8} {file_line}] {msg}",
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        std::process::id()
    )
}

fn gvk_go(group: &str, version: &str, kind: &str) -> String {
    format!("schema.GroupVersionKind{{Group:\"{group}\", Version:\"{version}\", Kind:\"{kind}\"}}")
}

fn scheme_error(kind: &str, api_version: &str) -> String {
    format!(
        "no kind \"{kind}\" is registered for version \"{api_version}\" in scheme \"k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme/scheme.go:31\""
    )
}

/// Whether kubeadm `kubeadm` knows `kubeadm.k8s.io/<version>`; Err is kubeadm's text.
fn check_api_version(kubeadm: KVer, version: &str, kind: &str) -> Result<Option<String>, String> {
    let api = format!("{KUBEADM_GROUP}/{version}");
    match version {
        "v1beta4" if kubeadm.minor < 31 => Err(scheme_error(kind, &api)),
        "v1beta4" => Ok(None),
        "v1beta3" if kubeadm.minor >= 36 => Err(format!(
            "your configuration file uses an old API spec: \"{api}\" (kind: \"{kind}\"). Please use kubeadm v1.35 instead and run 'kubeadm config migrate --old-config old.yaml --new-config new.yaml', which will write the new, similar spec using a newer API version."
        )),
        "v1beta3" if kubeadm.minor >= 31 => Ok(Some(format!(
            "your configuration file uses a deprecated API spec: \"{api}\" (kind: \"{kind}\"). Please use 'kubeadm config migrate --old-config old.yaml --new-config new.yaml', which will write the new, similar spec using a newer API version."
        ))),
        "v1beta3" => Ok(None),
        "v1beta1" | "v1beta2" => Err(format!(
            "your configuration file uses an old API spec: \"{api}\" (kind: \"{kind}\"). Please use kubeadm v1.21 instead and run 'kubeadm config migrate --old-config old.yaml --new-config new.yaml', which will write the new, similar spec using a newer API version."
        )),
        _ => Err(scheme_error(kind, &api)),
    }
}

fn ignored(api_version: &str, kind: &str) -> String {
    klog(
        'W',
        "initconfiguration.go:331",
        &format!("[config] WARNING: Ignored configuration document with GroupVersionKind {api_version}, Kind={kind}"),
    )
}

/// Splits and decodes a multi-document YAML config.
pub fn parse(text: &str, kubeadm: KVer) -> Result<Documents, String> {
    use serde::Deserialize;
    let mut docs = Documents::default();
    let mut values = vec![];
    for de in serde_yaml::Deserializer::from_str(text) {
        let y = serde_yaml::Value::deserialize(de)
            .map_err(|e| format!("error converting YAML to JSON: yaml: {e}"))?;
        if y.is_null() {
            continue;
        }
        let v: Value =
            serde_json::to_value(&y).map_err(|e| format!("error converting YAML to JSON: {e}"))?;
        values.push(v);
    }
    // kubeadm handles the documents sorted by their GroupVersionKind string.
    values.sort_by_key(|v| {
        format!(
            "{}, Kind={}",
            v["apiVersion"].as_str().unwrap_or(""),
            v["kind"].as_str().unwrap_or("")
        )
    });
    for v in values {
        let api_version = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
        if api_version.is_empty() || kind.is_empty() {
            return Err(format!(
                "invalid configuration for GroupVersionKind {}, Kind={kind}: kind and apiVersion is mandatory information that must be specified",
                if api_version.is_empty() { "/" } else { api_version }
            ));
        }
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        match group {
            KUBEADM_GROUP => {
                if let Some(w) = check_api_version(kubeadm, version, kind)? {
                    docs.warnings.push(klog('W', "common.go:101", &w));
                }
                let slot = match kind {
                    "InitConfiguration" => &mut docs.init,
                    "ClusterConfiguration" => &mut docs.cluster,
                    "JoinConfiguration" => &mut docs.join,
                    // Known kinds that init/join don't use.
                    "ResetConfiguration" | "UpgradeConfiguration" => continue,
                    // Strict decoding fails (a warning), then nothing takes the
                    // document: kubeadm ignores it.
                    _ => {
                        docs.warnings.push(klog(
                            'W',
                            "strict.go:54",
                            &scheme_error(kind, api_version),
                        ));
                        docs.warnings.push(ignored(api_version, kind));
                        continue;
                    }
                };
                check_shapes(version, kind, &v)?;
                let unknown = unknown_fields(version, kind, &v);
                if !unknown.is_empty() {
                    let list: Vec<String> = unknown
                        .iter()
                        .map(|f| format!("unknown field \"{f}\""))
                        .collect();
                    docs.warnings.push(klog(
                        'W',
                        "strict.go:54",
                        &format!(
                            "error unmarshaling configuration {}: strict decoding error: {}",
                            gvk_go(group, version, kind),
                            list.join(", ")
                        ),
                    ));
                }
                docs.api_version
                    .get_or_insert_with(|| api_version.to_string());
                *slot = Some(v);
            }
            "kubelet.config.k8s.io" if kind == "KubeletConfiguration" => {
                if version != "v1beta1" {
                    return Err(format!(
                        "no kind \"{kind}\" is registered for version \"{api_version}\" in scheme \"k8s.io/kubernetes/cmd/kubeadm/app/componentconfigs/scheme.go:28\""
                    ));
                }
                docs.kubelet = Some(v);
            }
            "kubeproxy.config.k8s.io" if kind == "KubeProxyConfiguration" => {
                if version != "v1alpha1" {
                    return Err(format!(
                        "no kind \"{kind}\" is registered for version \"{api_version}\" in scheme \"k8s.io/kubernetes/cmd/kubeadm/app/componentconfigs/scheme.go:28\""
                    ));
                }
                docs.kube_proxy = Some(v);
            }
            _ => docs.warnings.push(ignored(api_version, kind)),
        }
    }
    Ok(docs)
}

/// Known fields per object path, by API version. `*` marks a map/list of free values.
fn known(version: &str, path: &str) -> Option<&'static [&'static str]> {
    let b4 = version == "v1beta4";
    Some(match path {
        "InitConfiguration" if b4 => &[
            "apiVersion",
            "kind",
            "bootstrapTokens",
            "nodeRegistration",
            "localAPIEndpoint",
            "certificateKey",
            "skipPhases",
            "patches",
            "dryRun",
            "timeouts",
        ],
        "InitConfiguration" => &[
            "apiVersion",
            "kind",
            "bootstrapTokens",
            "nodeRegistration",
            "localAPIEndpoint",
            "certificateKey",
            "skipPhases",
            "patches",
        ],
        "JoinConfiguration" if b4 => &[
            "apiVersion",
            "kind",
            "caCertPath",
            "discovery",
            "nodeRegistration",
            "controlPlane",
            "skipPhases",
            "patches",
            "dryRun",
            "timeouts",
        ],
        "JoinConfiguration" => &[
            "apiVersion",
            "kind",
            "caCertPath",
            "discovery",
            "nodeRegistration",
            "controlPlane",
            "skipPhases",
            "patches",
        ],
        "ClusterConfiguration" if b4 => &[
            "apiVersion",
            "kind",
            "etcd",
            "networking",
            "kubernetesVersion",
            "controlPlaneEndpoint",
            "apiServer",
            "controllerManager",
            "scheduler",
            "dns",
            "proxy",
            "certificatesDir",
            "imageRepository",
            "featureGates",
            "clusterName",
            "encryptionAlgorithm",
            "certificateValidityPeriod",
            "caCertificateValidityPeriod",
        ],
        "ClusterConfiguration" => &[
            "apiVersion",
            "kind",
            "etcd",
            "networking",
            "kubernetesVersion",
            "controlPlaneEndpoint",
            "apiServer",
            "controllerManager",
            "scheduler",
            "dns",
            "certificatesDir",
            "imageRepository",
            "featureGates",
            "clusterName",
        ],
        "nodeRegistration" if b4 => &[
            "name",
            "criSocket",
            "taints",
            "kubeletExtraArgs",
            "ignorePreflightErrors",
            "imagePullPolicy",
            "imagePullSerial",
        ],
        "nodeRegistration" => &[
            "name",
            "criSocket",
            "taints",
            "kubeletExtraArgs",
            "ignorePreflightErrors",
            "imagePullPolicy",
        ],
        "localAPIEndpoint" => &["advertiseAddress", "bindPort"],
        "networking" => &["serviceSubnet", "podSubnet", "dnsDomain"],
        "apiServer" if b4 => &["extraArgs", "extraVolumes", "extraEnvs", "certSANs"],
        "apiServer" => &[
            "extraArgs",
            "extraVolumes",
            "certSANs",
            "timeoutForControlPlane",
        ],
        "controllerManager" | "scheduler" if b4 => &["extraArgs", "extraVolumes", "extraEnvs"],
        "controllerManager" | "scheduler" => &["extraArgs", "extraVolumes"],
        "discovery" if b4 => &["bootstrapToken", "file", "tlsBootstrapToken"],
        "discovery" => &["bootstrapToken", "file", "tlsBootstrapToken", "timeout"],
        "discovery.bootstrapToken" => &[
            "token",
            "apiServerEndpoint",
            "caCertHashes",
            "unsafeSkipCAVerification",
        ],
        "controlPlane" => &["localAPIEndpoint", "certificateKey"],
        "controlPlane.localAPIEndpoint" => &["advertiseAddress", "bindPort"],
        "etcd" => &["local", "external"],
        "etcd.local" if b4 => &[
            "imageRepository",
            "imageTag",
            "dataDir",
            "extraArgs",
            "extraEnvs",
            "serverCertSANs",
            "peerCertSANs",
        ],
        "etcd.local" => &[
            "imageRepository",
            "imageTag",
            "dataDir",
            "extraArgs",
            "serverCertSANs",
            "peerCertSANs",
        ],
        "dns" if b4 => &["imageRepository", "imageTag", "disabled"],
        "dns" => &["imageRepository", "imageTag"],
        "proxy" => &["disabled"],
        "timeouts" => &[
            "controlPlaneComponentHealthCheck",
            "kubeletHealthCheck",
            "kubernetesAPICall",
            "etcdAPICall",
            "tlsBootstrap",
            "discovery",
            "upgradeManifests",
        ],
        _ => return None,
    })
}

/// Unknown fields of a kubeadm document, as dotted paths (like sigs.k8s.io/json reports).
pub fn unknown_fields(version: &str, kind: &str, v: &Value) -> Vec<String> {
    let mut out = vec![];
    walk(version, kind, "", v, &mut out);
    out
}

fn walk(version: &str, table: &str, prefix: &str, v: &Value, out: &mut Vec<String>) {
    let (Some(fields), Some(obj)) = (known(version, table), v.as_object()) else {
        return;
    };
    for (k, child) in obj {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if !fields.contains(&k.as_str()) {
            out.push(path);
            continue;
        }
        // Nested tables are named "parent.key" where ambiguous, else by their key.
        let nested = format!("{table}.{k}");
        let sub = if known(version, &nested).is_some() {
            nested
        } else if known(version, k).is_some() {
            k.clone()
        } else {
            continue;
        };
        walk(version, &sub, &path, child, out);
    }
}

/// Where `extraArgs`-like fields live and the Go struct names in decode errors.
const ARG_FIELDS: &[(&str, &str, &str)] = &[
    (
        "nodeRegistration",
        "kubeletExtraArgs",
        "NodeRegistrationOptions",
    ),
    ("apiServer", "extraArgs", "ControlPlaneComponent"),
    ("controllerManager", "extraArgs", "ControlPlaneComponent"),
    ("scheduler", "extraArgs", "ControlPlaneComponent"),
];

/// v1beta4 wants `[{name, value}]`, v1beta3 a map: the wrong shape is a decode error.
fn check_shapes(version: &str, _kind: &str, v: &Value) -> Result<(), String> {
    let mut spots: Vec<(String, &Value, &str)> = vec![];
    for (parent, field, go) in ARG_FIELDS {
        if let Some(x) = v.get(*parent).and_then(|p| p.get(*field)) {
            spots.push((format!("{parent}.{field}"), x, go));
        }
    }
    if let Some(x) = v.pointer("/etcd/local/extraArgs") {
        spots.push(("etcd.local.extraArgs".into(), x, "LocalEtcd"));
    }
    for (path, x, go) in spots {
        let bad = match (version, x) {
            ("v1beta4", Value::Object(_)) => Some(("object", "[]v1beta4.Arg")),
            ("v1beta4", Value::Array(items)) if items.iter().any(|i| !i.is_object()) => {
                Some(("string", "v1beta4.Arg"))
            }
            ("v1beta3", Value::Array(_)) => Some(("array", "map[string]string")),
            _ => None,
        };
        if let Some((got, want)) = bad {
            return Err(format!(
                "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {got} into Go struct field {go}.{path} of type {want}"
            ));
        }
    }
    Ok(())
}

/// `extraArgs` in either shape as ordered (name, value) pairs.
pub fn args(v: Option<&Value>) -> Vec<(String, String)> {
    match v {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| {
                Some((
                    i.get("name")?.as_str()?.to_string(),
                    scalar(i.get("value")?),
                ))
            })
            .collect(),
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), scalar(v))).collect(),
        _ => vec![],
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn s(v: &Value, ptr: &str) -> Option<String> {
    v.pointer(ptr).map(scalar).filter(|x| !x.is_empty())
}

/// `nodeRegistration` after decoding.
#[derive(Debug, Clone, Default)]
pub struct NodeRegistration {
    pub name: Option<String>,
    pub cri_socket: Option<String>,
    /// None: kubeadm's default (the control-plane taint on control planes, none on
    /// workers). Some(empty): no taints.
    pub taints: Option<Vec<Value>>,
    pub kubelet_extra_args: Vec<(String, String)>,
    pub ignore_preflight_errors: Vec<String>,
}

impl NodeRegistration {
    fn from(v: Option<&Value>) -> NodeRegistration {
        let Some(v) = v else {
            return NodeRegistration::default();
        };
        NodeRegistration {
            name: s(v, "/name"),
            cri_socket: s(v, "/criSocket"),
            taints: match v.get("taints") {
                None => None,
                Some(Value::Null) => None,
                Some(Value::Array(a)) => Some(a.clone()),
                Some(_) => Some(vec![]),
            },
            kubelet_extra_args: args(v.get("kubeletExtraArgs")),
            ignore_preflight_errors: v
                .get("ignorePreflightErrors")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// A bootstrap token from `InitConfiguration.bootstrapTokens`.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub token: Option<String>,
    /// Seconds; 0 = never expires.
    pub ttl: f64,
    pub description: Option<String>,
    pub usages: Vec<String>,
    pub groups: Vec<String>,
}

impl Default for TokenSpec {
    fn default() -> Self {
        TokenSpec {
            token: None,
            ttl: 24.0 * 3600.0,
            description: None,
            usages: vec!["signing".into(), "authentication".into()],
            groups: vec!["system:bootstrappers:kubeadm:default-node-token".into()],
        }
    }
}

/// The cluster-wide settings (ClusterConfiguration) after defaulting.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub kubernetes_version: Option<String>,
    pub control_plane_endpoint: Option<String>,
    pub pod_subnet: Option<String>,
    pub service_subnet: String,
    pub dns_domain: String,
    pub image_repository: String,
    pub cluster_name: String,
    pub cert_sans: Vec<String>,
    pub apiserver_args: Vec<(String, String)>,
    pub controller_manager_args: Vec<(String, String)>,
    pub scheduler_args: Vec<(String, String)>,
    pub etcd_data_dir: String,
}

impl ClusterConfig {
    pub fn from(v: Option<&Value>) -> ClusterConfig {
        let empty = Value::Object(Map::new());
        let v = v.unwrap_or(&empty);
        ClusterConfig {
            kubernetes_version: s(v, "/kubernetesVersion"),
            control_plane_endpoint: s(v, "/controlPlaneEndpoint"),
            pod_subnet: s(v, "/networking/podSubnet"),
            service_subnet: s(v, "/networking/serviceSubnet").unwrap_or("10.96.0.0/12".into()),
            dns_domain: s(v, "/networking/dnsDomain").unwrap_or("cluster.local".into()),
            image_repository: s(v, "/imageRepository").unwrap_or(super::version::REGISTRY.into()),
            cluster_name: s(v, "/clusterName").unwrap_or("kubernetes".into()),
            cert_sans: v
                .pointer("/apiServer/certSANs")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            apiserver_args: args(v.pointer("/apiServer/extraArgs")),
            controller_manager_args: args(v.pointer("/controllerManager/extraArgs")),
            scheduler_args: args(v.pointer("/scheduler/extraArgs")),
            etcd_data_dir: s(v, "/etcd/local/dataDir").unwrap_or("/var/lib/etcd".into()),
        }
    }
}

/// Everything `kubeadm init` needs, from --config and/or flags.
#[derive(Debug, Clone)]
pub struct InitConfig {
    pub node: NodeRegistration,
    pub advertise_address: Option<String>,
    pub bind_port: u16,
    pub bootstrap_tokens: Vec<TokenSpec>,
    pub certificate_key: Option<String>,
    pub skip_phases: Vec<String>,
    pub cluster: ClusterConfig,
    pub kubelet: Option<Value>,
    pub kube_proxy: Option<Value>,
}

impl InitConfig {
    /// From decoded documents; `kubeadm init --config` needs an Init or Cluster doc.
    pub fn from_documents(d: &Documents) -> Result<InitConfig, String> {
        if d.init.is_none() && d.cluster.is_none() {
            return Err(
                "no InitConfiguration or ClusterConfiguration kind was found in the configuration file"
                    .into(),
            );
        }
        let empty = Value::Object(Map::new());
        let i = d.init.as_ref().unwrap_or(&empty);
        let tokens = match i.get("bootstrapTokens").and_then(Value::as_array) {
            Some(list) => list
                .iter()
                .map(|t| TokenSpec {
                    token: s(t, "/token"),
                    ttl: s(t, "/ttl")
                        .and_then(|x| parse_duration(&x))
                        .unwrap_or(24.0 * 3600.0),
                    description: s(t, "/description"),
                    usages: strs(t.get("usages")).unwrap_or_else(|| TokenSpec::default().usages),
                    groups: strs(t.get("groups")).unwrap_or_else(|| TokenSpec::default().groups),
                })
                .collect(),
            None => vec![TokenSpec::default()],
        };
        let cfg = InitConfig {
            node: NodeRegistration::from(i.get("nodeRegistration")),
            advertise_address: s(i, "/localAPIEndpoint/advertiseAddress"),
            bind_port: i
                .pointer("/localAPIEndpoint/bindPort")
                .and_then(Value::as_u64)
                .unwrap_or(6443) as u16,
            bootstrap_tokens: tokens,
            certificate_key: s(i, "/certificateKey"),
            skip_phases: strs(i.get("skipPhases")).unwrap_or_default(),
            cluster: ClusterConfig::from(d.cluster.as_ref()),
            kubelet: d.kubelet.clone(),
            kube_proxy: d.kube_proxy.clone(),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// ValidateInitConfiguration's checks that matter here, with its error texts.
    pub fn validate(&self) -> Result<(), String> {
        let mut errs = vec![];
        for (n, t) in self.bootstrap_tokens.iter().enumerate() {
            if let Some(tok) = &t.token {
                if !valid_token(tok) {
                    errs.push(format!(
                        "bootstrapTokens[{n}].token: Invalid value: \"{tok}\": the bootstrap token \"{tok}\" was not of the form \"^([a-z0-9]{{6}})\\.([a-z0-9]{{16}})$\""
                    ));
                }
            }
        }
        if let Some(a) = &self.advertise_address {
            if a.parse::<std::net::IpAddr>().is_err() {
                errs.push(format!(
                    "localAPIEndpoint.advertiseAddress: Invalid value: \"{a}\": couldn't use \"{a}\" as \"apiserver-advertise-address\", must be ipv4 or ipv6 address"
                ));
            }
        }
        if let Some(p) = &self.cluster.pod_subnet {
            for c in p.split(',') {
                if !valid_cidr(c) {
                    errs.push(format!(
                        "networking.podSubnet: Invalid value: \"{p}\": couldn't parse subnet"
                    ));
                }
            }
        }
        for c in self.cluster.service_subnet.split(',') {
            if !valid_cidr(c) {
                errs.push(format!(
                    "networking.serviceSubnet: Invalid value: \"{}\": couldn't parse subnet",
                    self.cluster.service_subnet
                ));
            }
        }
        if let Some(k) = &self.certificate_key {
            if k.len() != 64 || !k.chars().all(|c| c.is_ascii_hexdigit()) {
                errs.push(format!(
                    "certificateKey: Invalid value: \"{k}\": certificate key must be a hex encoded string of 32 bytes"
                ));
            }
        }
        if let Some(kc) = &self.kubelet {
            if let Some(d) = kc.get("cgroupDriver").and_then(Value::as_str) {
                if d != "systemd" && d != "cgroupfs" {
                    errs.push(format!(
                        "kubelet.config.k8s.io/v1beta1: cgroupDriver: Invalid value: \"{d}\": must be one of systemd, cgroupfs"
                    ));
                }
            }
        }
        join_errors(errs)
    }
}

fn join_errors(errs: Vec<String>) -> Result<(), String> {
    match errs.len() {
        0 => Ok(()),
        1 => Err(errs[0].clone()),
        _ => Err(format!("[{}]", errs.join(", "))),
    }
}

fn strs(v: Option<&Value>) -> Option<Vec<String>> {
    v.and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect()
    })
}

pub fn valid_token(t: &str) -> bool {
    let Some((id, secret)) = t.split_once('.') else {
        return false;
    };
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    ok(id, 6) && ok(secret, 16)
}

pub fn valid_cidr(c: &str) -> bool {
    let Some((ip, bits)) = c.trim().split_once('/') else {
        return false;
    };
    let Ok(ip) = ip.parse::<std::net::IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    bits.parse::<u32>().map(|b| b <= max).unwrap_or(false)
}

/// Go duration strings ("24h0m0s", "30m", "1h30m", "0s", "2h") as seconds.
pub use crate::kube::objects::parse_go_duration as parse_duration;

/// Formats seconds as Go prints a time.Duration ("24h0m0s", "4m0s", "1.5s").
pub fn go_duration(secs: f64) -> String {
    if secs < 1.0 {
        let t = format!("{:.6}", secs * 1000.0);
        let t = t.trim_end_matches('0').trim_end_matches('.');
        return format!("{t}ms");
    }
    if secs < 60.0 {
        let t = format!("{secs:.9}");
        let t = t.trim_end_matches('0').trim_end_matches('.');
        return format!("{t}s");
    }
    let total = secs.round() as u64;
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else {
        format!("{m}m{s}s")
    }
}

/// Everything `kubeadm join` needs, from --config and/or flags.
#[derive(Debug, Clone, Default)]
pub struct JoinConfig {
    pub node: NodeRegistration,
    pub endpoint: Option<String>,
    pub token: Option<String>,
    pub tls_bootstrap_token: Option<String>,
    pub ca_cert_hashes: Vec<String>,
    pub unsafe_skip_ca_verification: bool,
    /// Some for `--control-plane`.
    pub control_plane: Option<JoinControlPlane>,
    pub skip_phases: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct JoinControlPlane {
    pub advertise_address: Option<String>,
    pub bind_port: u16,
    pub certificate_key: Option<String>,
}

impl JoinConfig {
    pub fn from_documents(d: &Documents) -> Result<JoinConfig, String> {
        let Some(j) = &d.join else {
            return Err("no JoinConfiguration found in the supplied config".into());
        };
        let bt = j.pointer("/discovery/bootstrapToken");
        Ok(JoinConfig {
            node: NodeRegistration::from(j.get("nodeRegistration")),
            endpoint: bt.and_then(|b| s(b, "/apiServerEndpoint")),
            token: bt.and_then(|b| s(b, "/token")),
            tls_bootstrap_token: s(j, "/discovery/tlsBootstrapToken"),
            ca_cert_hashes: bt
                .and_then(|b| strs(b.get("caCertHashes")))
                .unwrap_or_default(),
            unsafe_skip_ca_verification: bt
                .and_then(|b| b.get("unsafeSkipCAVerification"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            control_plane: j.get("controlPlane").filter(|c| !c.is_null()).map(|c| {
                JoinControlPlane {
                    advertise_address: s(c, "/localAPIEndpoint/advertiseAddress"),
                    bind_port: c
                        .pointer("/localAPIEndpoint/bindPort")
                        .and_then(Value::as_u64)
                        .unwrap_or(6443) as u16,
                    certificate_key: s(c, "/certificateKey"),
                }
            }),
            skip_phases: strs(j.get("skipPhases")).unwrap_or_default(),
        })
    }

    /// ValidateJoinConfiguration / ValidateDiscovery texts.
    pub fn validate(&self) -> Result<(), String> {
        let mut errs = vec![];
        let token = self.tls_bootstrap_token.as_ref().or(self.token.as_ref());
        match token {
            None => errs.push(
                "discovery.bootstrapToken.token: Invalid value: \"\": the bootstrap token is invalid"
                    .to_string(),
            ),
            Some(t) if !valid_token(t) => errs.push(format!(
                "discovery.bootstrapToken.token: Invalid value: \"{t}\": the bootstrap token is invalid"
            )),
            _ => {}
        }
        if self.endpoint.is_none() {
            errs.push(
                "discovery.bootstrapToken.apiServerEndpoint: Invalid value: \"\": bootstrapToken.APIServerEndpoint or file.KubeConfigPath must be set"
                    .to_string(),
            );
        }
        if self.ca_cert_hashes.is_empty() && !self.unsafe_skip_ca_verification {
            errs.push("discovery.bootstrapToken: Invalid value: \"\": using token-based discovery without caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue".to_string());
        }
        for h in &self.ca_cert_hashes {
            let ok = h
                .strip_prefix("sha256:")
                .map(|x| x.len() == 64 && x.chars().all(|c| c.is_ascii_hexdigit()))
                .unwrap_or(false);
            if !ok {
                errs.push(format!(
                    "discovery.bootstrapToken.caCertHashes: Invalid value: \"{h}\": invalid hash \"{h}\", expected \"format:hex-value\""
                ));
            }
        }
        if let Some(cp) = &self.control_plane {
            if let Some(k) = &cp.certificate_key {
                if k.len() != 64 || !k.chars().all(|c| c.is_ascii_hexdigit()) {
                    errs.push(format!(
                        "controlPlane.certificateKey: Invalid value: \"{k}\": certificate key must be a hex encoded string of 32 bytes"
                    ));
                }
            }
        }
        join_errors(errs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> KVer {
        KVer::parse(s).unwrap()
    }

    const V4: &str = r#"
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint: {advertiseAddress: 10.0.0.10, bindPort: 6443}
nodeRegistration:
  name: master1
  criSocket: unix:///var/run/containerd/containerd.sock
  taints: []
  kubeletExtraArgs:
  - {name: node-ip, value: 10.0.0.10}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.34.2
controlPlaneEndpoint: "10.0.0.10:6443"
networking: {podSubnet: 192.168.0.0/16, serviceSubnet: 10.96.0.0/12}
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
"#;

    #[test]
    fn decodes_the_reference_v1beta4_config() {
        let d = parse(V4, k("1.34.2")).unwrap();
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
        let c = InitConfig::from_documents(&d).unwrap();
        assert_eq!(c.node.name.as_deref(), Some("master1"));
        assert_eq!(c.node.taints, Some(vec![]));
        assert_eq!(
            c.node.kubelet_extra_args,
            vec![("node-ip".to_string(), "10.0.0.10".to_string())]
        );
        assert_eq!(c.advertise_address.as_deref(), Some("10.0.0.10"));
        assert_eq!(c.cluster.pod_subnet.as_deref(), Some("192.168.0.0/16"));
        assert_eq!(
            c.cluster.control_plane_endpoint.as_deref(),
            Some("10.0.0.10:6443")
        );
        assert_eq!(c.bootstrap_tokens.len(), 1);
    }

    #[test]
    fn v1beta4_needs_kubeadm_131() {
        let e = parse(V4, k("1.30.5")).unwrap_err();
        assert!(e.starts_with(
            "no kind \"ClusterConfiguration\" is registered for version \"kubeadm.k8s.io/v1beta4\""
        ));
    }

    #[test]
    fn v1beta3_is_deprecated_then_gone() {
        let v3 = V4.replace("v1beta4", "v1beta3").replace(
            "  - {name: node-ip, value: 10.0.0.10}",
            "    node-ip: 10.0.0.10",
        );
        assert!(parse(&v3, k("1.30.5")).unwrap().warnings.is_empty());
        let d = parse(&v3, k("1.34.2")).unwrap();
        assert!(d.warnings[0].contains("uses a deprecated API spec: \"kubeadm.k8s.io/v1beta3\""));
        let c = InitConfig::from_documents(&d).unwrap();
        assert_eq!(c.node.kubelet_extra_args[0].1, "10.0.0.10");
        assert!(parse(&v3, k("1.36.0"))
            .unwrap_err()
            .contains("uses an old API spec"));
    }

    #[test]
    fn extra_args_shape_must_match_version() {
        let bad = V4.replace(
            "  - {name: node-ip, value: 10.0.0.10}",
            "    node-ip: 10.0.0.10",
        );
        let e = parse(&bad, k("1.34.2")).unwrap_err();
        assert_eq!(e, "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal object into Go struct field NodeRegistrationOptions.nodeRegistration.kubeletExtraArgs of type []v1beta4.Arg");
        let bad3 = V4.replace("v1beta4", "v1beta3");
        let e = parse(&bad3, k("1.30.0")).unwrap_err();
        assert!(e.contains("cannot unmarshal array into Go struct field NodeRegistrationOptions.nodeRegistration.kubeletExtraArgs of type map[string]string"));
    }

    #[test]
    fn unknown_fields_warn_with_paths() {
        let t = V4
            .replace("  name: master1", "  name: master1\n  nmae: x")
            .replace(
                "kubernetesVersion: v1.34.2",
                "kubernetesVersion: v1.34.2\nfoo: 1",
            );
        let d = parse(&t, k("1.34.2")).unwrap();
        assert_eq!(d.warnings.len(), 2);
        assert!(d.warnings[1]
            .contains("strict decoding error: unknown field \"nodeRegistration.nmae\""));
        assert!(d.warnings[0].contains(
            "Kind:\"ClusterConfiguration\"}: strict decoding error: unknown field \"foo\""
        ));
    }

    #[test]
    fn unknown_kind_and_foreign_documents() {
        let d = parse(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: Foo\n",
            k("1.34.2"),
        )
        .unwrap();
        assert!(d.warnings[0].contains("no kind \"Foo\" is registered"));
        assert!(d.warnings[1].contains(
            "Ignored configuration document with GroupVersionKind kubeadm.k8s.io/v1beta4, Kind=Foo"
        ));
        let d = parse("apiVersion: apps/v1\nkind: Deployment\n", k("1.34.2")).unwrap();
        assert!(d.warnings[0].ends_with("] [config] WARNING: Ignored configuration document with GroupVersionKind apps/v1, Kind=Deployment"));
        assert_eq!(
            InitConfig::from_documents(&d).unwrap_err(),
            "no InitConfiguration or ClusterConfiguration kind was found in the configuration file"
        );
        let e = parse("foo: bar\n", k("1.34.2")).unwrap_err();
        assert!(e.contains("kind and apiVersion is mandatory"));
    }

    #[test]
    fn validation_texts() {
        let t = V4.replace("podSubnet: 192.168.0.0/16", "podSubnet: 192.168.0.0/99");
        let d = parse(&t, k("1.34.2")).unwrap();
        assert_eq!(
            InitConfig::from_documents(&d).unwrap_err(),
            "networking.podSubnet: Invalid value: \"192.168.0.0/99\": couldn't parse subnet"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("24h0m0s"), Some(86400.0));
        assert_eq!(parse_duration("30m"), Some(1800.0));
        assert_eq!(parse_duration("1h30m"), Some(5400.0));
        assert_eq!(parse_duration("0"), Some(0.0));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(go_duration(86400.0), "24h0m0s");
        assert_eq!(go_duration(240.0), "4m0s");
        assert_eq!(go_duration(0.5), "500ms");
        assert_eq!(go_duration(1.5), "1.5s");
    }

    #[test]
    fn join_config_and_validation() {
        let t = r#"
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: 10.0.0.10:6443
    token: abcdef.0123456789abcdef
    caCertHashes: ["sha256:0000000000000000000000000000000000000000000000000000000000000000"]
nodeRegistration: {name: worker1}
"#;
        let d = parse(t, k("1.34.2")).unwrap();
        let j = JoinConfig::from_documents(&d).unwrap();
        assert!(j.validate().is_ok());
        assert_eq!(j.endpoint.as_deref(), Some("10.0.0.10:6443"));
        let mut bad = j.clone();
        bad.token = Some("nope".into());
        assert!(bad
            .validate()
            .unwrap_err()
            .contains("the bootstrap token is invalid"));
        assert!(valid_token("abcdef.0123456789abcdef"));
        assert!(!valid_token("ABCDEF.0123456789abcdef"));
    }
}
