//! `kubeadm init`: preflight, certificates, kubeconfigs, static Pod manifests, the
//! kubelet's files, the cluster's initial state (what etcd would hold), starting the
//! kubelet, waiting for the control plane, marking the node, and the final instructions.

use std::path::Path;
use std::time::Instant;

use serde_json::{json, Value};

use super::client::{CallError, Client};
use super::config::{self, InitConfig};
use super::files::{self, ControlPlane};
use super::preflight::{self, MANIFESTS};
use super::version::{self, KVer};
use super::{die, parse_flags, phase_error, poll, scaled, token, Flags};
use crate::common::{self, Ctx};
use crate::kube::{
    api::Op,
    objects, pki,
    state::{self, ClusterState},
};

const VALUE_FLAGS: &[&str] = &[
    "config",
    "ignore-preflight-errors",
    "skip-phases",
    "pod-network-cidr",
    "apiserver-advertise-address",
    "apiserver-bind-port",
    "apiserver-cert-extra-sans",
    "control-plane-endpoint",
    "kubernetes-version",
    "node-name",
    "cri-socket",
    "service-cidr",
    "service-dns-domain",
    "token",
    "token-ttl",
    "certificate-key",
    "image-repository",
    "cert-dir",
    "feature-gates",
    "patches",
    "kubeconfig",
];
const BOOL_FLAGS: &[&str] = &[
    "upload-certs",
    "dry-run",
    "skip-certificate-key-print",
    "skip-token-print",
];
/// Flags `--config` may be combined with.
const MIXABLE: &[&str] = &[
    "config",
    "ignore-preflight-errors",
    "skip-phases",
    "upload-certs",
    "dry-run",
    "skip-certificate-key-print",
    "skip-token-print",
    "certificate-key",
    "patches",
    "v",
    "kubeconfig",
];

pub const PKI: &str = "/etc/kubernetes/pki";

/// The fully resolved inputs of an init.
pub struct Plan {
    pub cfg: InitConfig,
    pub version: KVer,
    pub node_name: String,
    pub advertise: String,
    pub socket: String,
    /// "host:port" written into kubeconfigs and join commands.
    pub endpoint: String,
}

fn read_config(path: &str, kubeadm: KVer) -> Result<config::Documents, String> {
    let text = std::fs::read_to_string(path).map_err(|_| {
        format!("unable to read config from \"{path}\" : open {path}: no such file or directory")
    })?;
    let d = config::parse(&text, kubeadm)?;
    for w in &d.warnings {
        eprintln!("{w}");
    }
    Ok(d)
}

/// Builds the configuration from --config or from flags, with kubeadm's checks.
fn resolve(ctx: &Ctx, f: &Flags) -> Result<Plan, String> {
    let kubeadm = version::kubeadm_version();
    let mut cfg = if let Some(path) = f.get("config") {
        let mut mixed: Vec<String> = f
            .given()
            .into_iter()
            .filter(|n| !MIXABLE.contains(&n.as_str()))
            .collect();
        mixed.sort();
        if !mixed.is_empty() {
            return Err(format!(
                "can not mix '--config' with arguments [{}]",
                mixed.join(" ")
            ));
        }
        let d = read_config(path, kubeadm)?;
        InitConfig::from_documents(&d)?
    } else {
        let mut cluster = config::ClusterConfig::from(None);
        cluster.kubernetes_version = f.get("kubernetes-version").map(String::from);
        cluster.control_plane_endpoint = f.get("control-plane-endpoint").map(String::from);
        cluster.pod_subnet = f.get("pod-network-cidr").map(String::from);
        if let Some(s) = f.get("service-cidr") {
            cluster.service_subnet = s.into();
        }
        if let Some(s) = f.get("service-dns-domain") {
            cluster.dns_domain = s.into();
        }
        if let Some(s) = f.get("image-repository") {
            cluster.image_repository = s.into();
        }
        cluster.cert_sans = f.list("apiserver-cert-extra-sans");
        let mut tok = config::TokenSpec {
            token: f.get("token").map(String::from),
            ..Default::default()
        };
        if let Some(t) = f.get("token-ttl") {
            tok.ttl = config::parse_duration(t).ok_or_else(|| {
                format!("invalid argument \"{t}\" for \"--token-ttl\" flag: time: invalid duration \"{t}\"")
            })?;
        }
        let cfg = InitConfig {
            node: config::NodeRegistration {
                name: f.get("node-name").map(String::from),
                cri_socket: f.get("cri-socket").map(String::from),
                ..Default::default()
            },
            advertise_address: f.get("apiserver-advertise-address").map(String::from),
            bind_port: match f.get("apiserver-bind-port") {
                Some(p) => p.parse().map_err(|_| {
                    format!("invalid argument \"{p}\" for \"--apiserver-bind-port\" flag: strconv.ParseInt: parsing \"{p}\": invalid syntax")
                })?,
                None => 6443,
            },
            bootstrap_tokens: vec![tok],
            certificate_key: None,
            skip_phases: vec![],
            cluster,
            kubelet: None,
            kube_proxy: None,
        };
        cfg.validate()?;
        cfg
    };
    if let Some(k) = f.get("certificate-key") {
        cfg.certificate_key = Some(k.to_string());
        cfg.validate()?;
    }
    cfg.skip_phases.extend(f.list("skip-phases"));
    let version = match cfg.cluster.kubernetes_version.as_deref() {
        // Labels ("stable", "stable-1.34", "latest") need dl.k8s.io, which the
        // testbed can't reach: kubeadm falls back to its own version.
        Some(v) if v.starts_with("stable") || v.starts_with("latest") || v.starts_with("ci/") => {
            super::stable_fallback_warnings(kubeadm);
            kubeadm
        }
        Some(v) => KVer::parse(v).ok_or_else(|| {
            format!("couldn't parse Kubernetes version \"{v}\": could not parse \"{v}\" as version")
        })?,
        None => {
            super::stable_fallback_warnings(kubeadm);
            kubeadm
        }
    };
    version::check_control_plane_version(kubeadm, version)?;
    let node_name = cfg
        .node
        .name
        .clone()
        .unwrap_or_else(|| files::default_node_name(&common::hostname()));
    let advertise = cfg
        .advertise_address
        .clone()
        .unwrap_or_else(|| ctx.config.address.clone());
    let socket = match &cfg.node.cri_socket {
        Some(s) if s.starts_with('/') => {
            eprintln!("{}", config::klog('W', "initconfiguration.go:126", &format!("Usage of CRI endpoints without URL scheme is deprecated and can cause kubelet errors in the future. Automatically prepending scheme \"unix\" to the \"criSocket\" with value \"{s}\". Please update your configuration!")));
            format!("unix://{s}")
        }
        Some(s) => s.clone(),
        None => preflight::detect_cri_socket()?,
    };
    let endpoint = match &cfg.cluster.control_plane_endpoint {
        Some(e) if e.contains(':') => e.clone(),
        Some(e) => format!("{e}:{}", cfg.bind_port),
        None => format!("{advertise}:{}", cfg.bind_port),
    };
    Ok(Plan {
        cfg,
        version,
        node_name,
        advertise,
        socket,
        endpoint,
    })
}

fn skipped(plan: &Plan, phase: &str) -> bool {
    plan.cfg
        .skip_phases
        .iter()
        .any(|p| p == phase || phase.starts_with(&format!("{p}/")) || p == "all")
}

fn write(ctx: &mut Ctx, path: &str, data: &str, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    common::write_atomic(Path::new(path), data.as_bytes())
        .map_err(|e| format!("failed to write {path}: {e}"))?;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
    ctx.changed();
    Ok(())
}

/// Certificates: existing CAs are reused (as kubeadm does), leaf certs generated.
fn certs_phase(ctx: &mut Ctx, plan: &Plan) -> Result<String, String> {
    println!("[certs] Using certificateDir folder \"{PKI}\"");
    let mut ca_pem = String::new();
    let dns = &plan.cfg.cluster.dns_domain;
    let svc_ip = files::nth_address(&plan.cfg.cluster.service_subnet, 1).unwrap_or_default();
    let mut sans = vec![
        "kubernetes".to_string(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        format!("kubernetes.default.svc.{dns}"),
        plan.node_name.clone(),
    ];
    sans.extend(plan.cfg.cluster.cert_sans.iter().cloned());
    let ca_line = |name: &str| -> String {
        match name {
            "ca" => "[certs] Generating \"ca\" certificate and key".into(),
            n => format!("[certs] Generating \"{n}\" certificate and key"),
        }
    };
    let mut emit = |ctx: &mut Ctx, name: &str, ca: bool| -> Result<(), String> {
        let crt = format!("{PKI}/{name}.crt");
        let key = format!("{PKI}/{name}.key");
        if ca && Path::new(&crt).exists() && Path::new(&key).exists() {
            println!("[certs] Using existing {name} certificate authority");
            if name == "ca" {
                ca_pem = std::fs::read_to_string(&crt).unwrap_or_default();
            }
            return Ok(());
        }
        let (c, k) = if ca { pki::new_ca() } else { pki::new_cert() };
        println!("{}", ca_line(name));
        write(ctx, &crt, &c, 0o644)?;
        write(ctx, &key, &k, 0o600)?;
        if name == "ca" {
            ca_pem = c;
        }
        match name {
            "apiserver" => println!(
                "[certs] apiserver serving cert is signed for DNS names [{}] and IPs [{svc_ip} {}]",
                sans.join(" "),
                plan.advertise
            ),
            "etcd/server" | "etcd/peer" => println!(
                "[certs] {name} serving cert is signed for DNS names [localhost {}] and IPs [{} 127.0.0.1 ::1]",
                plan.node_name, plan.advertise
            ),
            _ => {}
        }
        Ok(())
    };
    emit(ctx, "ca", true)?;
    emit(ctx, "apiserver", false)?;
    emit(ctx, "apiserver-kubelet-client", false)?;
    emit(ctx, "front-proxy-ca", true)?;
    emit(ctx, "front-proxy-client", false)?;
    emit(ctx, "etcd/ca", true)?;
    for n in [
        "etcd/server",
        "etcd/peer",
        "etcd/healthcheck-client",
        "apiserver-etcd-client",
    ] {
        emit(ctx, n, false)?;
    }
    if Path::new(&format!("{PKI}/sa.key")).exists() {
        println!("[certs] Using the existing \"sa\" key");
    } else {
        println!("[certs] Generating \"sa\" key and public key");
        let (k, p) = pki::new_sa_pair();
        write(ctx, &format!("{PKI}/sa.key"), &k, 0o600)?;
        write(ctx, &format!("{PKI}/sa.pub"), &p, 0o644)?;
    }
    Ok(ca_pem)
}

/// Secrets of the kubeconfigs written, by identity.
pub struct Credentials {
    pub list: Vec<(String, String)>,
}

/// Writes admin/super-admin/kubelet/controller-manager/scheduler kubeconfigs.
pub fn kubeconfig_phase(
    ctx: &mut Ctx,
    version: KVer,
    endpoint: &str,
    ca_pem: &str,
    cluster: &str,
    node_name: &str,
    control_plane: bool,
) -> Result<Credentials, String> {
    println!("[kubeconfig] Using kubeconfig folder \"/etc/kubernetes\"");
    let mut list = vec![];
    let mut confs: Vec<(&str, String)> = vec![];
    if control_plane {
        confs.push(("admin.conf", "kubernetes-admin".into()));
        if version.minor >= 29 {
            confs.push(("super-admin.conf", "kubernetes-super-admin".into()));
        }
    }
    confs.push(("kubelet.conf", format!("system:node:{node_name}")));
    if control_plane {
        confs.push((
            "controller-manager.conf",
            "system:kube-controller-manager".into(),
        ));
        confs.push(("scheduler.conf", "system:kube-scheduler".into()));
    }
    for (file, user) in confs {
        let secret = pki::new_secret();
        println!("[kubeconfig] Writing \"{file}\" kubeconfig file");
        let text = files::kubeconfig(endpoint, ca_pem, cluster, &user, &secret);
        write(ctx, &format!("/etc/kubernetes/{file}"), &text, 0o600)?;
        list.push((secret, user));
    }
    Ok(Credentials { list })
}

/// Writes the four static Pod manifests.
pub fn manifests_phase(ctx: &mut Ctx, cp: &ControlPlane, etcd: bool) -> Result<(), String> {
    if etcd {
        println!("[etcd] Creating static Pod manifest for local etcd in \"{MANIFESTS}\"");
        write(
            ctx,
            &format!("{MANIFESTS}/etcd.yaml"),
            &files::to_yaml(&files::etcd_manifest(cp)),
            0o600,
        )?;
    }
    println!("[control-plane] Using manifest folder \"{MANIFESTS}\"");
    for (name, v) in [
        ("kube-apiserver", files::apiserver_manifest(cp)),
        (
            "kube-controller-manager",
            files::controller_manager_manifest(cp),
        ),
        ("kube-scheduler", files::scheduler_manifest(cp)),
    ] {
        println!("[control-plane] Creating static Pod manifest for \"{name}\"");
        write(
            ctx,
            &format!("{MANIFESTS}/{name}.yaml"),
            &files::to_yaml(&v),
            0o600,
        )?;
    }
    Ok(())
}

/// Writes kubeadm-flags.env and config.yaml for the kubelet.
pub fn kubelet_files(
    ctx: &mut Ctx,
    socket: &str,
    node_name: &str,
    pause: &str,
    extra: &[(String, String)],
    kubelet_yaml: &str,
    flags_first: bool,
) -> Result<(), String> {
    let flags = files::kubelet_flags(
        socket,
        node_name,
        &common::hostname().to_lowercase(),
        pause,
        extra,
    );
    let mut steps: Vec<(&str, &str, String)> = vec![
        ("[kubelet-start] Writing kubelet environment file with flags to file \"/var/lib/kubelet/kubeadm-flags.env\"", files::KUBELET_FLAGS, flags),
        ("[kubelet-start] Writing kubelet configuration to file \"/var/lib/kubelet/config.yaml\"", files::KUBELET_CONFIG, kubelet_yaml.to_string()),
    ];
    if !flags_first {
        steps.reverse();
    }
    for (line, path, data) in steps {
        println!("{line}");
        write(ctx, path, &data, 0o644)?;
    }
    Ok(())
}

fn default_taints() -> Vec<Value> {
    vec![json!({"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"})]
}

fn cm(ns: &str, name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": data})
}

/// The objects `kubeadm init` creates in the new cluster (upload-config, kubelet,
/// bootstrap-token and addon phases).
fn cluster_objects(
    plan: &Plan,
    ca_pem: &str,
    kubelet_yaml: &str,
    token: &str,
    now: f64,
) -> Vec<Value> {
    let c = &plan.cfg.cluster;
    let kubeadm = version::kubeadm_version();
    let imgs = version::images_for(plan.version);
    let cc = files::cluster_configuration(
        kubeadm,
        plan.version,
        c,
        c.control_plane_endpoint.as_deref(),
    );
    let mut objs = vec![];
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        objs.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}));
    }
    objs.push(cm(
        "kube-system",
        "kubeadm-config",
        json!({"ClusterConfiguration": files::to_yaml(&cc)}),
    ));
    objs.push(cm(
        "kube-system",
        "kubelet-config",
        json!({"kubelet": kubelet_yaml}),
    ));
    let cluster_info = files::to_yaml(&json!({
        "apiVersion": "v1",
        "clusters": [{"cluster": {"certificate-authority-data": base64_of(ca_pem), "server": format!("https://{}", plan.endpoint)}, "name": ""}],
        "contexts": null, "current-context": "", "kind": "Config", "preferences": {}, "users": null,
    }));
    let mut info = json!({"kubeconfig": cluster_info});
    if let Some((id, _)) = token.split_once('.') {
        info[format!("jws-kubeconfig-{id}")] = json!(pki::hex(&pki::random_bytes(16)));
    }
    objs.push(cm("kube-public", "cluster-info", info));
    if !skipped(plan, "addon/kube-proxy") {
        let mut proxy_cfg = json!({
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "bindAddress": "0.0.0.0",
            "clusterCIDR": c.pod_subnet.clone().unwrap_or_default(),
            "mode": "",
        });
        if let (Some(Value::Object(u)), Value::Object(b)) = (&plan.cfg.kube_proxy, &mut proxy_cfg) {
            for (k, v) in u {
                b.insert(k.clone(), v.clone());
            }
        }
        objs.push(cm("kube-system", "kube-proxy", json!({"config.conf": files::to_yaml(&proxy_cfg), "kubeconfig.conf": files::to_yaml(&json!({"apiVersion": "v1", "kind": "Config", "clusters": [{"cluster": {"certificate-authority": "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt", "server": format!("https://{}", plan.endpoint)}, "name": "default"}]}))})));
        objs.push(json!({
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"labels": {"k8s-app": "kube-proxy"}, "name": "kube-proxy", "namespace": "kube-system"},
            "spec": {
                "selector": {"matchLabels": {"k8s-app": "kube-proxy"}},
                "template": {
                    "metadata": {"labels": {"k8s-app": "kube-proxy"}},
                    "spec": {
                        "containers": [{"command": ["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf", "--hostname-override=$(NODE_NAME)"], "image": format!("{}/kube-proxy:{}", c.image_repository, plan.version), "name": "kube-proxy"}],
                        "hostNetwork": true,
                        "nodeSelector": {"kubernetes.io/os": "linux"},
                        "priorityClassName": "system-node-critical",
                        "serviceAccountName": "kube-proxy",
                        "tolerations": [{"operator": "Exists"}],
                    },
                },
                "updateStrategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}, "type": "RollingUpdate"},
            },
        }));
    }
    if !skipped(plan, "addon/coredns") {
        objs.push(cm("kube-system", "coredns", json!({"Corefile": format!(".:53 {{\n    errors\n    health {{\n       lameduck 5s\n    }}\n    ready\n    kubernetes {} in-addr.arpa ip6.arpa {{\n       pods insecure\n       fallthrough in-addr.arpa ip6.arpa\n       ttl 30\n    }}\n    prometheus :9153\n    forward . /etc/resolv.conf {{\n       max_concurrent 1000\n    }}\n    cache 30 {{\n       disable success {}\n       disable denial {}\n    }}\n    loop\n    reload\n    loadbalance\n}}\n", c.dns_domain, c.dns_domain, c.dns_domain)})));
        objs.push(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"labels": {"k8s-app": "kube-dns"}, "name": "coredns", "namespace": "kube-system"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                "strategy": {"rollingUpdate": {"maxUnavailable": 1}, "type": "RollingUpdate"},
                "template": {
                    "metadata": {"labels": {"k8s-app": "kube-dns"}},
                    "spec": {
                        "containers": [{"args": ["-conf", "/etc/coredns/Corefile"], "image": format!("{}/coredns/coredns:{}", c.image_repository, imgs.coredns), "name": "coredns"}],
                        "nodeSelector": {"kubernetes.io/os": "linux"},
                        "priorityClassName": "system-cluster-critical",
                        "serviceAccountName": "coredns",
                        "tolerations": [
                            {"key": "CriticalAddonsOnly", "operator": "Exists"},
                            {"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"},
                        ],
                    },
                },
            },
        }));
        objs.push(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}, "name": "kube-dns", "namespace": "kube-system"},
            "spec": {"clusterIP": files::cluster_dns(&c.service_subnet), "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53}, {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}], "selector": {"k8s-app": "kube-dns"}, "type": "ClusterIP"},
        }));
    }
    objs.push(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"labels": {"component": "apiserver", "provider": "kubernetes"}, "name": "kubernetes", "namespace": "default"},
        "spec": {"clusterIP": files::nth_address(&c.service_subnet, 1), "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": plan.cfg.bind_port}], "type": "ClusterIP"},
    }));
    for (n, spec) in plan.cfg.bootstrap_tokens.iter().enumerate() {
        let mut spec = spec.clone();
        if n == 0 && spec.description.is_none() && plan.cfg.bootstrap_tokens.len() == 1 {
            spec.description = Some(token::DEFAULT_DESCRIPTION.into());
        }
        let t = if n == 0 {
            token.to_string()
        } else {
            spec.token.clone().unwrap_or_else(token::new_token)
        };
        objs.push(token::token_secret(&t, &spec, now));
    }
    objs
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The state the API server starts from: what etcd holds right after init.
fn initial_state(
    plan: &Plan,
    ca_pem: &str,
    creds: &Credentials,
    objs: Vec<Value>,
    token: &str,
    cert_key: Option<&str>,
    now: f64,
) -> ClusterState {
    let mut st = ClusterState {
        version: plan.version.to_string(),
        endpoint: plan.endpoint.clone(),
        ca_cert_hash: pki::ca_cert_hash(ca_pem),
        ca_cert: ca_pem.to_string(),
        ..Default::default()
    };
    for (secret, who) in &creds.list {
        st.credentials.insert(secret.clone(), who.clone());
    }
    let ttl = plan
        .cfg
        .bootstrap_tokens
        .first()
        .map(|t| t.ttl)
        .unwrap_or(86400.0);
    st.tokens.push(state::BootstrapToken {
        token: token.to_string(),
        expires: (ttl > 0.0).then_some(now + ttl),
    });
    st.certificate_key = cert_key.map(|k| (k.to_string(), now + 7200.0));
    for o in objs {
        st.put(o, now);
    }
    st
}

/// Waits for the API server to answer an authenticated request.
fn wait_apiserver(ctx: &Ctx, admin: &Client) -> Result<f64, CallError> {
    let start = Instant::now();
    let mut last = CallError::Unreachable(String::new());
    let ok = poll(scaled(ctx, 240.0, 15.0), || {
        match admin.call(Op::Call {
            name: "version".into(),
            args: json!({}),
        }) {
            Ok(_) => Some(()),
            Err(e) => {
                last = e;
                None
            }
        }
    });
    match ok {
        Some(()) => Ok(start.elapsed().as_secs_f64()),
        None => Err(last),
    }
}

/// Labels and taints the control-plane node once its kubelet registered it.
pub fn mark_control_plane(
    ctx: &Ctx,
    admin: &Client,
    node: &str,
    taints: &[Value],
) -> Result<(), String> {
    let labels = [
        "node-role.kubernetes.io/control-plane",
        "node.kubernetes.io/exclude-from-external-load-balancers",
    ];
    println!(
        "[mark-control-plane] Marking the node {node} as control-plane by adding the labels: [{}]",
        labels.join(" ")
    );
    if !taints.is_empty() {
        let t: Vec<String> = taints
            .iter()
            .map(|t| objects::Taint::from_json(t).to_spec_string())
            .collect();
        println!("[mark-control-plane] Marking the node {node} as control-plane by adding the taints [{}]", t.join(" "));
    }
    let found = poll(scaled(ctx, 240.0, 20.0), || {
        admin.get("Node", None, node).ok()
    });
    let Some(current) = found else {
        return Err(format!(
            "error patching node \"{node}\" through apiserver: timed out waiting for the condition"
        ));
    };
    let mut all = current["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for t in taints {
        let same = |x: &Value| x["key"] == t["key"] && x["effect"] == t["effect"];
        if !all.iter().any(same) {
            all.push(t.clone());
        }
    }
    let mut patch = json!({"metadata": {"labels": {}}});
    for l in labels {
        patch["metadata"]["labels"][l] = json!("");
    }
    if !all.is_empty() {
        patch["spec"] = json!({"taints": all});
    }
    admin.patch("Node", None, node, patch).map_err(|e| {
        format!(
            "error patching node \"{node}\" through apiserver: {}",
            e.text()
        )
    })?;
    Ok(())
}

/// `kubeadm init`
pub fn run(ctx: &mut Ctx, args: &[String]) -> i32 {
    let f = match parse_flags(args, VALUE_FLAGS, BOOL_FLAGS) {
        Ok(f) => f,
        Err(e) => return die(&e),
    };
    if f.has("dry-run") {
        return die("--dry-run is not modeled by the testbed's kubeadm");
    }
    let plan = match resolve(ctx, &f) {
        Ok(p) => p,
        Err(e) => return die(&e),
    };
    println!("[init] Using Kubernetes version: {}", plan.version);
    let kubeadm = version::kubeadm_version();
    let mut ignore_list = f.all("ignore-preflight-errors");
    ignore_list.extend(plan.cfg.node.ignore_preflight_errors.iter().cloned());
    let ignore = match preflight::parse_ignore(&ignore_list) {
        Ok(i) => i,
        Err(e) => return die(&e),
    };
    if !skipped(&plan, "preflight") {
        println!("[preflight] Running pre-flight checks");
        let (_, e) = preflight::report(&preflight::root_check(common::is_root()), &ignore);
        if let Some(e) = e {
            return super::preflight_failed(&e);
        }
        let etcd_dir = plan.cfg.cluster.etcd_data_dir.clone();
        let mut file_list: Vec<String> = preflight::STATIC_PODS
            .iter()
            .map(|p| format!("{MANIFESTS}/{p}.yaml"))
            .collect();
        file_list.push(files::KUBELET_CONF.into());
        let file_refs: Vec<&str> = file_list.iter().map(String::as_str).collect();
        let facts = preflight::gather(
            &plan.node_name,
            &plan.socket,
            &file_refs,
            &[&etcd_dir],
            &[plan.cfg.bind_port, 10259, 10257, 10250, 2379, 2380],
        );
        let outcomes = preflight::init_checks(
            &facts,
            kubeadm,
            plan.version,
            plan.cfg.bind_port,
            &plan.socket,
            &etcd_dir,
            false,
        );
        let (warnings, err) = preflight::report(&outcomes, &ignore);
        for w in warnings {
            eprintln!("{w}");
        }
        if let Some(e) = err {
            return super::preflight_failed(&e);
        }
        println!("[preflight] Pulling images required for setting up a Kubernetes cluster");
        println!("[preflight] This might take a minute or two, depending on the speed of your internet connection");
        println!("[preflight] You can also perform this action beforehand using 'kubeadm config images pull'");
        if let Some(r) = common::containerd_runtime() {
            let want = version::pause_image(&plan.cfg.cluster.image_repository);
            if r.sandbox_image != want && !r.sandbox_image.is_empty() {
                eprintln!("{}", config::klog('W', "checks.go:846", &format!("detected that the sandbox image \"{}\" of the container runtime is inconsistent with that used by kubeadm. It is recommended to use \"{want}\" as the CRI sandbox image.", r.sandbox_image)));
            }
        }
        ctx.take_time(20.0);
    }
    match execute(ctx, &f, &plan) {
        Ok(()) => 0,
        Err(code) => code,
    }
}

fn execute(ctx: &mut Ctx, f: &Flags, plan: &Plan) -> Result<(), i32> {
    let fail = |phase: &str, e: String| phase_error(phase, &e);
    let now = common::now();
    let ca_pem = certs_phase(ctx, plan).map_err(|e| fail("certs", e))?;
    ctx.take_time(3.0);
    let creds = kubeconfig_phase(
        ctx,
        plan.version,
        &plan.endpoint,
        &ca_pem,
        &plan.cfg.cluster.cluster_name,
        &plan.node_name,
        true,
    )
    .map_err(|e| fail("kubeconfig", e))?;
    let cp = ControlPlane {
        version: plan.version,
        advertise_address: &plan.advertise,
        bind_port: plan.cfg.bind_port,
        node_name: &plan.node_name,
        cluster: &plan.cfg.cluster,
        etcd_initial_cluster: None,
    };
    // etcd's data: the cluster state the API server will serve.
    let kubelet_cfg = files::kubelet_config(plan.cfg.kubelet.as_ref(), &plan.cfg.cluster);
    let kubelet_yaml = files::to_yaml(&kubelet_cfg);
    let token = plan
        .cfg
        .bootstrap_tokens
        .first()
        .and_then(|t| t.token.clone())
        .unwrap_or_else(token::new_token);
    let objs = cluster_objects(plan, &ca_pem, &kubelet_yaml, &token, now);
    let st = initial_state(plan, &ca_pem, &creds, objs, &token, None, now);
    st.save(Path::new(state::STATE_FILE)).map_err(|e| {
        fail(
            "etcd",
            format!("failed to write {}: {e}", state::STATE_FILE),
        )
    })?;
    ctx.changed();
    manifests_phase(ctx, &cp, true).map_err(|e| fail("control-plane", e))?;
    let pause = version::pause_image(&plan.cfg.cluster.image_repository);
    kubelet_files(
        ctx,
        &plan.socket,
        &plan.node_name,
        &pause,
        &plan.cfg.node.kubelet_extra_args,
        &kubelet_yaml,
        true,
    )
    .map_err(|e| fail("kubelet-start", e))?;
    super::restart_kubelet();
    ctx.take_time(2.0);
    println!("[wait-control-plane] Waiting for the kubelet to boot up the control plane as static Pods from directory \"{MANIFESTS}\"");
    let Some(t) = super::wait_kubelet(ctx) else {
        return Err(super::kubelet_not_healthy("wait-control-plane"));
    };
    println!(
        "[kubelet-check] The kubelet is healthy after {}",
        config::go_duration(t.max(0.001))
    );
    println!("[control-plane-check] Waiting for healthy control plane components. This can take up to 4m0s");
    println!(
        "[control-plane-check] Checking kube-apiserver at https://{}:{}/livez",
        plan.advertise, plan.cfg.bind_port
    );
    println!(
        "[control-plane-check] Checking kube-controller-manager at https://127.0.0.1:10257/healthz"
    );
    println!("[control-plane-check] Checking kube-scheduler at https://127.0.0.1:10259/livez");
    let admin = Client::admin(None).map_err(|e| fail("wait-control-plane", e))?;
    match wait_apiserver(ctx, &admin) {
        Ok(t) => {
            ctx.take_time(20.0);
            println!(
                "[control-plane-check] kube-controller-manager is healthy after {}",
                config::go_duration(t + 0.8)
            );
            println!(
                "[control-plane-check] kube-scheduler is healthy after {}",
                config::go_duration(t + 1.2)
            );
            println!(
                "[control-plane-check] kube-apiserver is healthy after {}",
                config::go_duration(t + 1.9)
            );
        }
        Err(e) => {
            println!("[control-plane-check] kube-apiserver is not healthy after 4m0s");
            println!();
            println!("A control plane component may have crashed or exited when started by the container runtime.");
            println!(
                "To troubleshoot, list all containers using your preferred container runtimes CLI."
            );
            println!("Here is one example how you may list all running Kubernetes containers by using crictl:");
            println!(
                "\t- 'crictl --runtime-endpoint {} ps -a | grep kube | grep -v pause'",
                plan.socket
            );
            println!("\tOnce you have found the failing container, you can inspect its logs with:");
            println!(
                "\t- 'crictl --runtime-endpoint {} logs CONTAINERID'",
                plan.socket
            );
            println!();
            return Err(phase_error(
                "wait-control-plane",
                &format!(
                    "failed while waiting for the control plane to start: kube-apiserver check failed at https://{}:{}/livez: Get \"https://{}:{}/livez?timeout=10s\": {}",
                    plan.advertise, plan.cfg.bind_port, plan.advertise, plan.cfg.bind_port,
                    match e { CallError::Unreachable(d) => d, CallError::Server { message, .. } => message }
                ),
            ));
        }
    }
    println!("[upload-config] Storing the configuration used in ConfigMap \"kubeadm-config\" in the \"kube-system\" Namespace");
    println!("[kubelet] Creating a ConfigMap \"kubelet-config\" in namespace kube-system with the configuration for the kubelets in the cluster");
    ctx.take_time(2.0);
    let mut cert_key = None;
    if f.has("upload-certs") && !skipped(plan, "upload-certs") {
        let key = plan
            .cfg
            .certificate_key
            .clone()
            .unwrap_or_else(pki::new_certificate_key);
        println!("[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace");
        token::upload_certs(&admin, &key).map_err(|e| fail("upload-certs", e))?;
        if !f.has("skip-certificate-key-print") {
            println!("[upload-certs] Using certificate key:");
            println!("{key}");
        }
        cert_key = Some(key);
    } else {
        println!("[upload-certs] Skipping phase. Please see --upload-certs");
    }
    if !skipped(plan, "mark-control-plane") {
        let taints = plan.cfg.node.taints.clone().unwrap_or_else(default_taints);
        mark_control_plane(ctx, &admin, &plan.node_name, &taints)
            .map_err(|e| fail("mark-control-plane", e))?;
    }
    if !f.has("skip-token-print") {
        println!("[bootstrap-token] Using token: {token}");
    }
    println!("[bootstrap-token] Configuring bootstrap tokens, cluster-info ConfigMap, RBAC Roles");
    println!("[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to get nodes");
    println!("[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to post CSRs in order for nodes to get long term certificate credentials");
    println!("[bootstrap-token] Configured RBAC rules to allow the csrapprover controller automatically approve CSRs from a Node Bootstrap Token");
    println!("[bootstrap-token] Configured RBAC rules to allow certificate rotation for all node client certificates in the cluster");
    println!("[bootstrap-token] Creating the \"cluster-info\" ConfigMap in the \"kube-public\" namespace");
    println!("[kubelet-finalize] Updating \"/etc/kubernetes/kubelet.conf\" to point to a rotatable kubelet client certificate and key");
    ctx.take_time(5.0);
    if !skipped(plan, "addon/coredns") {
        println!("[addons] Applied essential addon: CoreDNS");
    }
    if !skipped(plan, "addon/kube-proxy") {
        println!("[addons] Applied essential addon: kube-proxy");
    }
    ctx.take_time(5.0);
    if !skipped(plan, "show-join-command") {
        print_success(
            plan,
            &token,
            &pki::ca_cert_hash(&ca_pem),
            cert_key.as_deref(),
            f.has("skip-token-print"),
        );
    }
    Ok(())
}

fn print_success(plan: &Plan, token: &str, hash: &str, cert_key: Option<&str>, hide_token: bool) {
    let token = if hide_token {
        "<value withheld>"
    } else {
        token
    };
    println!();
    println!("Your Kubernetes control-plane has initialized successfully!");
    println!();
    println!("To start using your cluster, you need to run the following as a regular user:");
    println!();
    println!("  mkdir -p $HOME/.kube");
    println!("  sudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config");
    println!("  sudo chown $(id -u):$(id -g) $HOME/.kube/config");
    println!();
    println!("Alternatively, if you are the root user, you can run:");
    println!();
    println!("  export KUBECONFIG=/etc/kubernetes/admin.conf");
    println!();
    println!("You should now deploy a pod network to the cluster.");
    println!("Run \"kubectl apply -f [podnetwork].yaml\" with one of the options listed at:");
    println!("  https://kubernetes.io/docs/concepts/cluster-administration/addons/");
    println!();
    let ep = &plan.endpoint;
    if plan.cfg.cluster.control_plane_endpoint.is_some() {
        match cert_key {
            Some(k) => {
                println!("You can now join any number of control-plane nodes running the following command on each as root:");
                println!();
                println!("  kubeadm join {ep} --token {token} \\");
                println!("\t--discovery-token-ca-cert-hash sha256:{hash} \\");
                println!("\t--control-plane --certificate-key {k}");
                println!();
                println!("Please note that the certificate-key gives access to cluster sensitive data, keep it secret!");
                println!("As a safeguard, uploaded-certs will be deleted in two hours; If necessary, you can use");
                println!(
                    "\"kubeadm init phase upload-certs --upload-certs\" to reload certs afterward."
                );
            }
            None => {
                println!("You can now join any number of control-plane nodes by copying certificate authorities");
                println!(
                    "and service account keys on each node and then running the following as root:"
                );
                println!();
                println!("  kubeadm join {ep} --token {token} \\");
                println!("\t--discovery-token-ca-cert-hash sha256:{hash} \\");
                println!("\t--control-plane ");
            }
        }
        println!();
    }
    println!(
        "Then you can join any number of worker nodes by running the following on each as root:"
    );
    println!();
    println!("kubeadm join {ep} --token {token} \\");
    println!("\t--discovery-token-ca-cert-hash sha256:{hash} ");
}

/// `kubeadm init phase ...` (the phases the testbed models).
pub fn phase(ctx: &mut Ctx, args: &[String]) -> i32 {
    let name = args.first().map(String::as_str).unwrap_or("");
    let rest = if args.is_empty() { args } else { &args[1..] };
    match name {
        "upload-certs" => {
            let f = match parse_flags(rest, &["certificate-key", "config", "kubeconfig"], &["upload-certs", "skip-certificate-key-print", "dry-run"]) {
                Ok(f) => f,
                Err(e) => return die(&e),
            };
            token::upload_certs_phase(ctx, &f)
        }
        "" => die("Usage:\n  kubeadm init phase [command]"),
        other => die(&format!(
            "the testbed's kubeadm does not model \"kubeadm init phase {other}\"; run \"kubeadm init\" instead"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        let d = config::parse(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.34.2\ncontrolPlaneEndpoint: 10.0.0.10:6443\nnetworking: {podSubnet: 192.168.0.0/16}\n",
            KVer::parse("1.34.2").unwrap(),
        )
        .unwrap();
        Plan {
            cfg: InitConfig::from_documents(&d).unwrap(),
            version: KVer::parse("1.34.2").unwrap(),
            node_name: "master1".into(),
            advertise: "10.0.0.10".into(),
            socket: config::DEFAULT_CRI_SOCKET.into(),
            endpoint: "10.0.0.10:6443".into(),
        }
    }

    #[test]
    fn initial_state_holds_what_init_creates() {
        let p = plan();
        let (ca, _) = pki::new_ca();
        let objs = cluster_objects(
            &p,
            &ca,
            "kind: KubeletConfiguration\n",
            "abcdef.0123456789abcdef",
            0.0,
        );
        let creds = Credentials {
            list: vec![("s1".into(), "kubernetes-admin".into())],
        };
        let st = initial_state(&p, &ca, &creds, objs, "abcdef.0123456789abcdef", None, 0.0);
        assert_eq!(st.version, "v1.34.2");
        assert_eq!(st.endpoint, "10.0.0.10:6443");
        assert_eq!(st.ca_cert_hash, pki::ca_cert_hash(&ca));
        assert_eq!(st.credentials["s1"], "kubernetes-admin");
        let cm = st
            .object("ConfigMap", "kube-system/kubeadm-config")
            .unwrap();
        assert!(cm["data"]["ClusterConfiguration"]
            .as_str()
            .unwrap()
            .contains("kubernetesVersion: v1.34.2"));
        let secret = st
            .object("Secret", "kube-system/bootstrap-token-abcdef")
            .unwrap();
        assert_eq!(secret["type"], "bootstrap.kubernetes.io/token");
        let dns = st.object("Deployment", "kube-system/coredns").unwrap();
        assert_eq!(dns["spec"]["replicas"], 2);
        assert_eq!(
            dns["spec"]["template"]["spec"]["tolerations"][1]["key"],
            "node-role.kubernetes.io/control-plane"
        );
        assert!(st.object("DaemonSet", "kube-system/kube-proxy").is_some());
        assert!(st.object("ConfigMap", "kube-public/cluster-info").is_some());
        assert_eq!(st.tokens[0].expires, Some(86400.0));
    }
}
