//! `kubeadm join`: local preflight, token discovery against the API server (a real TCP
//! connection to the endpoint), the kubelet's files, starting the kubelet and waiting
//! for its TLS bootstrap; with `--control-plane`, also the shared certificates from
//! kubeadm-certs, the control-plane manifests and the control-plane marks.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::client::{CallError, Client};
use super::config::{self, JoinConfig, JoinControlPlane};
use super::files::{self, ControlPlane};
use super::preflight::{self, MANIFESTS};
use super::version;
use super::{die, init, parse_flags, phase_error, poll, scaled, token, Flags};
use crate::common::{self, Ctx};
use crate::kube::api::Op;

const VALUE_FLAGS: &[&str] = &[
    "config",
    "token",
    "discovery-token",
    "tls-bootstrap-token",
    "discovery-token-ca-cert-hash",
    "discovery-file",
    "certificate-key",
    "node-name",
    "cri-socket",
    "ignore-preflight-errors",
    "skip-phases",
    "apiserver-advertise-address",
    "apiserver-bind-port",
    "patches",
];
const BOOL_FLAGS: &[&str] = &[
    "control-plane",
    "discovery-token-unsafe-skip-ca-verification",
    "dry-run",
];
const MIXABLE: &[&str] = &[
    "config",
    "ignore-preflight-errors",
    "skip-phases",
    "dry-run",
    "v",
    "patches",
];

/// The join configuration from --config or flags.
fn resolve(f: &Flags) -> Result<JoinConfig, String> {
    if let Some(path) = f.get("config") {
        let mut mixed: Vec<String> = f
            .given()
            .into_iter()
            .filter(|n| !MIXABLE.contains(&n.as_str()))
            .collect();
        if !f.positional.is_empty() {
            mixed.push("discovery-token-apiserver".into());
        }
        mixed.sort();
        if !mixed.is_empty() {
            return Err(format!(
                "can not mix '--config' with arguments [{}]",
                mixed.join(" ")
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|_| {
            format!(
                "unable to read config from \"{path}\" : open {path}: no such file or directory"
            )
        })?;
        let d = config::parse(&text, version::kubeadm_version())?;
        for w in &d.warnings {
            eprintln!("{w}");
        }
        let mut j = JoinConfig::from_documents(&d)?;
        j.skip_phases.extend(f.list("skip-phases"));
        return Ok(j);
    }
    let token = f.get("token").map(String::from);
    let discovery = f.get("discovery-token").map(String::from).or(token.clone());
    Ok(JoinConfig {
        node: config::NodeRegistration {
            name: f.get("node-name").map(String::from),
            cri_socket: f.get("cri-socket").map(String::from),
            ..Default::default()
        },
        endpoint: f.positional.first().cloned(),
        token: discovery,
        tls_bootstrap_token: f.get("tls-bootstrap-token").map(String::from).or(token),
        ca_cert_hashes: f.list("discovery-token-ca-cert-hash"),
        unsafe_skip_ca_verification: f.has("discovery-token-unsafe-skip-ca-verification"),
        control_plane: f.has("control-plane").then(|| JoinControlPlane {
            advertise_address: f.get("apiserver-advertise-address").map(String::from),
            bind_port: f
                .get("apiserver-bind-port")
                .and_then(|p| p.parse().ok())
                .unwrap_or(6443),
            certificate_key: f.get("certificate-key").map(String::from),
        }),
        skip_phases: f.list("skip-phases"),
    })
}

/// What discovery learned.
struct Discovered {
    credential: String,
    admin_credential: Option<String>,
    ca_pem: String,
    endpoint: String,
    version: Option<version::KVer>,
    kubelet_config: Option<String>,
}

fn discover(ctx: &Ctx, cfg: &JoinConfig, node: &str) -> Result<Discovered, (String, String)> {
    let endpoint = cfg.endpoint.clone().unwrap_or_default();
    let token = cfg.token.clone().unwrap_or_default();
    // Any one pinned hash is enough: try them in order.
    let mut hashes = cfg.ca_cert_hashes.clone();
    if hashes.is_empty() {
        hashes.push(String::new());
    }
    let op = |hash: &str| Op::Join {
        token: token.clone(),
        ca_cert_hash: hash.to_string(),
        unsafe_skip_ca_verification: cfg.unsafe_skip_ca_verification,
        node_name: node.to_string(),
        control_plane: cfg.control_plane.is_some(),
        certificate_key: cfg
            .control_plane
            .as_ref()
            .and_then(|c| c.certificate_key.clone()),
    };
    let timeout = scaled(ctx, 300.0, 5.0);
    let start = Instant::now();
    loop {
        let mut res = super::client::call(&endpoint, "", op(&hashes[0]));
        for h in &hashes[1..] {
            match &res {
                Err(CallError::Server { message, .. }) if message.contains("are pinned") => {
                    res = super::client::call(&endpoint, "", op(h));
                }
                _ => break,
            }
        }
        let retry = match &res {
            Err(CallError::Unreachable(_)) => true,
            // The JWS signature for an unknown token is "not there yet" to kubeadm: it
            // keeps polling cluster-info until the discovery timeout.
            Err(CallError::Server { message, .. }) => {
                message.contains("is invalid for this cluster")
            }
            Ok(_) => false,
        };
        if retry && start.elapsed() < timeout {
            std::thread::sleep(Duration::from_millis(500));
            continue;
        }
        return match res {
            Ok(v) => Ok(Discovered {
                credential: v["credential"].as_str().unwrap_or_default().to_string(),
                admin_credential: v["admin_credential"].as_str().map(String::from),
                ca_pem: v["ca_cert"].as_str().unwrap_or_default().to_string(),
                endpoint: v["endpoint"].as_str().unwrap_or(&endpoint).to_string(),
                version: v["version"].as_str().and_then(version::KVer::parse),
                kubelet_config: v["kubelet_config"].as_str().map(String::from),
            }),
            Err(CallError::Unreachable(d)) => Err((
                "preflight".into(),
                format!(
                    "couldn't validate the identity of the API Server: failed to request the cluster-info ConfigMap: Get \"https://{endpoint}/api/v1/namespaces/kube-public/configmaps/cluster-info?timeout=10s\": {d}"
                ),
            )),
            Err(e @ CallError::Server { .. }) => {
                let phase = server_phase(&e);
                Err((phase, e.text()))
            }
        };
    }
}

fn server_phase(e: &CallError) -> String {
    let t = e.text();
    if t.contains("already exists in the cluster") {
        "kubelet-start".into()
    } else if t.contains("error downloading certs") {
        "control-plane-prepare/download-certs".into()
    } else {
        "preflight".into()
    }
}

fn write(ctx: &mut Ctx, path: &str, data: &[u8], mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    common::write_atomic(Path::new(path), data)
        .map_err(|e| format!("failed to write {path}: {e}"))?;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
    ctx.changed();
    Ok(())
}

/// `kubeadm join`
pub fn run(ctx: &mut Ctx, args: &[String]) -> i32 {
    let f = match parse_flags(args, VALUE_FLAGS, BOOL_FLAGS) {
        Ok(f) => f,
        Err(e) => return die(&e),
    };
    if f.has("dry-run") {
        return die("--dry-run is not modeled by the testbed's kubeadm");
    }
    if f.positional.len() > 1 {
        return die(&format!(
            "accepts at most 1 arg(s), received {}",
            f.positional.len()
        ));
    }
    let cfg = match resolve(&f).and_then(|c| c.validate().map(|_| c)) {
        Ok(c) => c,
        Err(e) => return die(&e),
    };
    let kubeadm = version::kubeadm_version();
    let node = cfg
        .node
        .name
        .clone()
        .unwrap_or_else(|| files::default_node_name(&common::hostname()));
    let mut ignore_list = f.all("ignore-preflight-errors");
    ignore_list.extend(cfg.node.ignore_preflight_errors.iter().cloned());
    let ignore = match preflight::parse_ignore(&ignore_list) {
        Ok(i) => i,
        Err(e) => return die(&e),
    };
    let socket = match &cfg.node.cri_socket {
        Some(s) if s.starts_with('/') => format!("unix://{s}"),
        Some(s) => s.clone(),
        None => match preflight::detect_cri_socket() {
            Ok(s) => s,
            Err(e) => return die(&e),
        },
    };
    let skip = |p: &str| cfg.skip_phases.iter().any(|s| s == p || s == "all");
    if !skip("preflight") {
        println!("[preflight] Running pre-flight checks");
        let (_, e) = preflight::report(&preflight::root_check(common::is_root()), &ignore);
        if let Some(e) = e {
            return super::preflight_failed(&e);
        }
        let facts = preflight::gather(
            &node,
            &socket,
            &[
                files::KUBELET_CONF,
                "/etc/kubernetes/bootstrap-kubelet.conf",
                files::CA_CRT,
            ],
            &[],
            &[10250],
        );
        let outcomes =
            preflight::join_checks(&facts, kubeadm, &socket, cfg.control_plane.is_some());
        let (warnings, err) = preflight::report(&outcomes, &ignore);
        for w in warnings {
            eprintln!("{w}");
        }
        if let Some(e) = err {
            return super::preflight_failed(&e);
        }
    }
    let d = match discover(ctx, &cfg, &node) {
        Ok(d) => d,
        Err((phase, msg)) => return phase_error(&phase, &msg),
    };
    println!("[preflight] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"...");
    println!("[preflight] Use 'kubeadm init phase upload-config kubeadm --config your-config-file' to re-upload it.");
    ctx.take_time(3.0);
    let cluster_version = d.version.unwrap_or(kubeadm);
    let cluster_cfg = admin_or_node(&d)
        .get("ConfigMap", Some("kube-system"), "kubeadm-config")
        .ok()
        .and_then(|cm| {
            cm["data"]["ClusterConfiguration"]
                .as_str()
                .map(String::from)
        })
        .and_then(|y| serde_yaml::from_str::<serde_yaml::Value>(&y).ok())
        .and_then(|y| serde_json::to_value(y).ok());
    let cluster = config::ClusterConfig::from(cluster_cfg.as_ref());
    let mut taints = cfg.node.taints.clone().unwrap_or_default();
    if let Some(cp) = &cfg.control_plane {
        if cluster.control_plane_endpoint.is_none() {
            return phase_error("preflight", "\nunable to add a new control plane instance to a cluster that doesn't have a stable controlPlaneEndpoint address\n\nPlease ensure that:\n* The cluster has a stable controlPlaneEndpoint address.\n* The certificates that must be shared among control plane instances are provided.\n");
        }
        if let Err(code) = join_control_plane(
            ctx,
            &d,
            cp,
            &cluster,
            cluster_version,
            &node,
            &socket,
            &ignore,
            &skip,
        ) {
            return code;
        }
        if cfg.node.taints.is_none() {
            taints = vec![
                json!({"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"}),
            ];
        }
    } else {
        if let Err(e) = write(ctx, files::CA_CRT, d.ca_pem.as_bytes(), 0o644) {
            return phase_error("kubelet-start", &e);
        }
        let user = format!("system:node:{node}");
        let text = files::kubeconfig(&d.endpoint, &d.ca_pem, "kubernetes", &user, &d.credential);
        if let Err(e) = write(ctx, files::KUBELET_CONF, text.as_bytes(), 0o600) {
            return phase_error("kubelet-start", &e);
        }
    }
    let kubelet_yaml = d
        .kubelet_config
        .clone()
        .unwrap_or_else(|| files::to_yaml(&files::kubelet_config(None, &cluster)));
    let pause = version::pause_image(&cluster.image_repository);
    // Workers register their taints through the kubelet (kubeadm's
    // registerTaintsUsingFlags); control planes get them in mark-control-plane.
    let mut extra = cfg.node.kubelet_extra_args.clone();
    if cfg.control_plane.is_none() && !taints.is_empty() {
        let list: Vec<String> = taints
            .iter()
            .map(|t| crate::kube::objects::Taint::from_json(t).to_spec_string())
            .collect();
        extra.push(("register-with-taints".into(), list.join(",")));
    }
    if let Err(e) = init::kubelet_files(ctx, &socket, &node, &pause, &extra, &kubelet_yaml, false) {
        return phase_error("kubelet-start", &e);
    }
    super::restart_kubelet();
    let Some(t) = super::wait_kubelet(ctx) else {
        return super::kubelet_not_healthy("kubelet-start");
    };
    println!(
        "[kubelet-check] The kubelet is healthy after {}",
        config::go_duration(t.max(0.001))
    );
    println!("[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap");
    // The TLS bootstrap is done once the kubelet holds its credential (kubelet.conf is
    // written above); give it a moment to register, as the CSR round trip would.
    let node_client = Client {
        server: d.endpoint.clone(),
        credential: d.credential.clone(),
    };
    let _ = poll(scaled(ctx, 5.0, 2.0), || {
        node_client.get("Node", None, &node).ok()
    });
    ctx.take_time(10.0);
    if let Some(_cp) = &cfg.control_plane {
        let admin = admin_or_node(&d);
        if let Err(e) = init::mark_control_plane(ctx, &admin, &node, &taints) {
            return phase_error("control-plane-join/mark-control-plane", &e);
        }
        println!();
        println!("This node has joined the cluster and a new control plane instance was created:");
        println!();
        println!("* Certificate signing request was sent to apiserver and approval was received.");
        println!("* The Kubelet was informed of the new secure connection details.");
        println!("* Control plane label and taint were applied to the new node.");
        println!("* The Kubernetes control plane instances scaled up.");
        println!("* A new etcd member was added to the local/stacked etcd cluster.");
        println!();
        println!("To start administering your cluster from this node, you need to run the following as a regular user:");
        println!();
        println!("\tmkdir -p $HOME/.kube");
        println!("\tsudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config");
        println!("\tsudo chown $(id -u):$(id -g) $HOME/.kube/config");
        println!();
        println!("Run 'kubectl get nodes' to see this node join the cluster.");
        println!();
    } else {
        println!();
        println!("This node has joined the cluster:");
        println!(
            "* Certificate signing request was sent to apiserver and a response was received."
        );
        println!("* The Kubelet was informed of the new secure connection details.");
        println!();
        println!("Run 'kubectl get nodes' on the control-plane to see this node join the cluster.");
        println!();
    }
    0
}

fn admin_or_node(d: &Discovered) -> Client {
    Client {
        server: d.endpoint.clone(),
        credential: d
            .admin_credential
            .clone()
            .unwrap_or_else(|| d.credential.clone()),
    }
}

/// The control-plane part of a join: certs from kubeadm-certs, kubeconfigs, manifests.
#[allow(clippy::too_many_arguments)]
fn join_control_plane(
    ctx: &mut Ctx,
    d: &Discovered,
    cp: &JoinControlPlane,
    cluster: &config::ClusterConfig,
    version: version::KVer,
    node: &str,
    socket: &str,
    ignore: &std::collections::BTreeSet<String>,
    skip: &dyn Fn(&str) -> bool,
) -> Result<(), i32> {
    let kubeadm = version::kubeadm_version();
    if !skip("preflight") {
        println!("[preflight] Running pre-flight checks before initializing the new control plane instance");
        let files_list: Vec<String> = preflight::STATIC_PODS
            .iter()
            .map(|p| format!("{MANIFESTS}/{p}.yaml"))
            .collect();
        let refs: Vec<&str> = files_list.iter().map(String::as_str).collect();
        let facts = preflight::gather(
            node,
            socket,
            &refs,
            &[&cluster.etcd_data_dir],
            &[cp.bind_port, 10259, 10257, 2379, 2380],
        );
        let outcomes = preflight::init_checks(
            &facts,
            kubeadm,
            version,
            cp.bind_port,
            socket,
            &cluster.etcd_data_dir,
            true,
        );
        let (warnings, err) = preflight::report(&outcomes, ignore);
        for w in warnings {
            eprintln!("{w}");
        }
        if let Some(e) = err {
            return Err(super::preflight_failed(&e));
        }
        println!("[preflight] Pulling images required for setting up a Kubernetes cluster");
        println!("[preflight] This might take a minute or two, depending on the speed of your internet connection");
        println!("[preflight] You can also perform this action beforehand using 'kubeadm config images pull'");
        ctx.take_time(10.0);
    }
    let admin = admin_or_node(d);
    let Some(key) = cp.certificate_key.as_deref() else {
        return Err(phase_error(
            "control-plane-prepare/download-certs",
            "error downloading certs: a certificate key is required; pass --certificate-key",
        ));
    };
    println!("[download-certs] Downloading the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace");
    let certs = token::download_certs(&admin, key)
        .map_err(|e| phase_error("control-plane-prepare/download-certs", &e))?;
    for (path, content) in certs {
        let mode = if path.ends_with(".key") { 0o600 } else { 0o644 };
        write(ctx, &path, &content, mode)
            .map_err(|e| phase_error("control-plane-prepare/download-certs", &e))?;
    }
    let advertise = cp
        .advertise_address
        .clone()
        .unwrap_or_else(|| ctx.config.address.clone());
    let plan_cluster = cluster.clone();
    // Leaf certificates for this instance, signed by the downloaded CAs.
    println!("[certs] Using certificateDir folder \"{}\"", init::PKI);
    for name in [
        "apiserver",
        "apiserver-kubelet-client",
        "front-proxy-client",
        "etcd/server",
        "etcd/peer",
        "etcd/healthcheck-client",
        "apiserver-etcd-client",
    ] {
        let (c, k) = crate::kube::pki::new_cert();
        println!("[certs] Generating \"{name}\" certificate and key");
        write(
            ctx,
            &format!("{}/{name}.crt", init::PKI),
            c.as_bytes(),
            0o644,
        )
        .map_err(|e| phase_error("control-plane-prepare/certs", &e))?;
        write(
            ctx,
            &format!("{}/{name}.key", init::PKI),
            k.as_bytes(),
            0o600,
        )
        .map_err(|e| phase_error("control-plane-prepare/certs", &e))?;
    }
    println!(
        "[certs] Valid certificates and keys now exist in \"{}\"",
        init::PKI
    );
    println!("[certs] Using the existing \"sa\" key");
    println!("[kubeconfig] Generating kubeconfig files");
    println!("[kubeconfig] Using kubeconfig folder \"/etc/kubernetes\"");
    let confs = [
        (
            "admin.conf",
            "kubernetes-admin".to_string(),
            d.admin_credential
                .clone()
                .unwrap_or_else(|| d.credential.clone()),
        ),
        (
            "kubelet.conf",
            format!("system:node:{node}"),
            d.credential.clone(),
        ),
        (
            "controller-manager.conf",
            "system:kube-controller-manager".into(),
            d.admin_credential
                .clone()
                .unwrap_or_else(|| d.credential.clone()),
        ),
        (
            "scheduler.conf",
            "system:kube-scheduler".into(),
            d.admin_credential
                .clone()
                .unwrap_or_else(|| d.credential.clone()),
        ),
    ];
    for (file, user, secret) in confs {
        println!("[kubeconfig] Writing \"{file}\" kubeconfig file");
        let text = files::kubeconfig(
            &d.endpoint,
            &d.ca_pem,
            &cluster.cluster_name,
            &user,
            &secret,
        );
        write(
            ctx,
            &format!("/etc/kubernetes/{file}"),
            text.as_bytes(),
            0o600,
        )
        .map_err(|e| phase_error("control-plane-prepare/kubeconfig", &e))?;
    }
    let members = admin
        .list("Node", None)
        .ok()
        .map(|nodes| {
            nodes
                .iter()
                .filter(|n| {
                    n["metadata"]["labels"]
                        .get("node-role.kubernetes.io/control-plane")
                        .is_some()
                })
                .filter_map(|n| {
                    let name = n["metadata"]["name"].as_str()?;
                    let ip = n["status"]["addresses"]
                        .as_array()?
                        .iter()
                        .find(|a| a["type"] == "InternalIP")?["address"]
                        .as_str()?;
                    Some(format!("{name}=https://{ip}:2380"))
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let mut all = members;
    all.push(format!("{node}=https://{advertise}:2380"));
    let cpm = ControlPlane {
        version,
        advertise_address: &advertise,
        bind_port: cp.bind_port,
        node_name: node,
        cluster: &plan_cluster,
        etcd_initial_cluster: Some(all.join(",")),
    };
    println!("[control-plane] Using manifest folder \"{MANIFESTS}\"");
    for (name, v) in [
        ("kube-apiserver", files::apiserver_manifest(&cpm)),
        (
            "kube-controller-manager",
            files::controller_manager_manifest(&cpm),
        ),
        ("kube-scheduler", files::scheduler_manifest(&cpm)),
    ] {
        println!("[control-plane] Creating static Pod manifest for \"{name}\"");
        write(
            ctx,
            &format!("{MANIFESTS}/{name}.yaml"),
            files::to_yaml(&v).as_bytes(),
            0o600,
        )
        .map_err(|e| phase_error("control-plane-prepare/control-plane", &e))?;
    }
    println!("[check-etcd] Checking that the etcd cluster is healthy");
    let _ = std::fs::create_dir_all(format!("{}/member", cluster.etcd_data_dir));
    println!("[etcd] Announced new etcd member joining to the existing etcd cluster");
    println!("[etcd] Creating static Pod manifest for \"etcd\"");
    write(
        ctx,
        &format!("{MANIFESTS}/etcd.yaml"),
        files::to_yaml(&files::etcd_manifest(&cpm)).as_bytes(),
        0o600,
    )
    .map_err(|e| phase_error("control-plane-join/etcd", &e))?;
    ctx.take_time(5.0);
    let _: Option<Value> = None;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<JoinConfig, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        resolve(&parse_flags(&args, VALUE_FLAGS, BOOL_FLAGS)?).and_then(|c| c.validate().map(|_| c))
    }

    #[test]
    fn ca_pinning_is_required_unless_skipped() {
        let base = ["10.200.1.2:6443", "--token", "abcdef.0123456789abcdef"];
        let e = config(&base).unwrap_err();
        assert!(
            e.contains("discovery.bootstrapToken: Invalid value: \"\": using token-based discovery without caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue"),
            "{e}"
        );
        let mut skip = base.to_vec();
        skip.push("--discovery-token-unsafe-skip-ca-verification");
        let c = config(&skip).unwrap();
        assert!(c.unsafe_skip_ca_verification && c.ca_cert_hashes.is_empty());
    }
}
