//! The files kubeadm writes, rendered in their real shapes: kubeconfigs, static Pod
//! manifests, the kubelet's config.yaml and kubeadm-flags.env, and the
//! ClusterConfiguration kept in the kubeadm-config ConfigMap. Pure functions.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Map, Value};

use super::config::ClusterConfig;
use super::version::{self, KVer};
use crate::kube::pki;

pub const KUBELET_CONFIG: &str = "/var/lib/kubelet/config.yaml";
pub const KUBELET_FLAGS: &str = "/var/lib/kubelet/kubeadm-flags.env";
pub const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";
pub const KUBELET_CONF: &str = "/etc/kubernetes/kubelet.conf";
pub const CA_CRT: &str = "/etc/kubernetes/pki/ca.crt";

/// YAML of a JSON value (keys sorted, as Go's sigs.k8s.io/yaml writes them).
pub fn to_yaml(v: &Value) -> String {
    serde_yaml::to_string(v).unwrap_or_default()
}

/// A kubeconfig in the shape kubeadm writes, with the credential in client-key-data
/// (rendered by the API server's own `api::kubeconfig_yaml`, so both sides agree).
pub fn kubeconfig(server: &str, ca_pem: &str, cluster: &str, user: &str, secret: &str) -> String {
    let (cert, _) = pki::new_cert();
    crate::kube::api::kubeconfig_yaml(cluster, server, ca_pem, user, &cert, &pki::key_pem(secret))
}

/// What a kubeconfig says: server "host:port", credential, CA PEM.
#[derive(Debug, Clone)]
pub struct Kubeconfig {
    pub server: String,
    pub secret: String,
    pub ca_pem: String,
}

/// Reads the current context's cluster and user of a kubeconfig file's text.
pub fn parse_kubeconfig(text: &str) -> Option<Kubeconfig> {
    let v: Value = serde_yaml::from_str::<serde_yaml::Value>(text)
        .ok()
        .and_then(|y| serde_json::to_value(y).ok())?;
    let current = v["current-context"].as_str().unwrap_or("");
    let ctx = v["contexts"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == current)
        .or_else(|| v["contexts"].get(0))?;
    let cluster_name = ctx["context"]["cluster"].as_str().unwrap_or("");
    let user_name = ctx["context"]["user"].as_str().unwrap_or("");
    let cluster = v["clusters"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == cluster_name)?;
    let user = v["users"]
        .as_array()?
        .iter()
        .find(|u| u["name"] == user_name)?;
    let server = cluster["cluster"]["server"].as_str()?;
    let server = server
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string();
    let secret = pki::secret_from_client_key_data(user["user"]["client-key-data"].as_str()?)?;
    let ca_pem = cluster["cluster"]["certificate-authority-data"]
        .as_str()
        .and_then(|d| B64.decode(d).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default();
    Some(Kubeconfig {
        server,
        secret,
        ca_pem,
    })
}

/// The KubeletConfiguration kubeadm writes to /var/lib/kubelet/config.yaml and the
/// kubelet-config ConfigMap: kubeadm's defaults, overridden by the user's document.
pub fn kubelet_config(user: Option<&Value>, cluster: &ClusterConfig) -> Value {
    let dns = cluster_dns(&cluster.service_subnet);
    let mut base = json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "authentication": {
            "anonymous": {"enabled": false},
            "webhook": {"cacheTTL": "0s", "enabled": true},
            "x509": {"clientCAFile": CA_CRT},
        },
        "authorization": {
            "mode": "Webhook",
            "webhook": {"cacheAuthorizedTTL": "0s", "cacheUnauthorizedTTL": "0s"},
        },
        "cgroupDriver": "systemd",
        "clusterDNS": [dns],
        "clusterDomain": cluster.dns_domain,
        "containerRuntimeEndpoint": "",
        "cpuManagerReconcilePeriod": "0s",
        "crashLoopBackOff": {},
        "evictionPressureTransitionPeriod": "0s",
        "fileCheckFrequency": "0s",
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "httpCheckFrequency": "0s",
        "imageMaximumGCAge": "0s",
        "imageMinimumGCAge": "0s",
        "kind": "KubeletConfiguration",
        "logging": {
            "flushFrequency": 0,
            "options": {"json": {"infoBufferSize": "0"}, "text": {"infoBufferSize": "0"}},
            "verbosity": 0,
        },
        "memorySwap": {},
        "nodeStatusReportFrequency": "0s",
        "nodeStatusUpdateFrequency": "0s",
        "rotateCertificates": true,
        "runtimeRequestTimeout": "0s",
        "shutdownGracePeriod": "0s",
        "shutdownGracePeriodCriticalPods": "0s",
        "staticPodPath": "/etc/kubernetes/manifests",
        "streamingConnectionIdleTimeout": "0s",
        "syncFrequency": "0s",
        "volumeStatsAggPeriod": "0s",
    });
    if let (Some(Value::Object(u)), Value::Object(b)) = (user, &mut base) {
        for (k, v) in u {
            b.insert(k.clone(), v.clone());
        }
    }
    base
}

/// The tenth address of the service subnet (kube-dns's ClusterIP), for IPv4.
pub fn cluster_dns(service_subnet: &str) -> String {
    nth_address(service_subnet, 10).unwrap_or_else(|| "10.96.0.10".into())
}

/// The nth address of an IPv4 CIDR.
pub fn nth_address(cidr: &str, n: u32) -> Option<String> {
    let first = cidr.split(',').next()?;
    let (ip, _) = first.split_once('/')?;
    let ip: std::net::Ipv4Addr = ip.parse().ok()?;
    Some(std::net::Ipv4Addr::from(u32::from(ip).wrapping_add(n)).to_string())
}

/// /var/lib/kubelet/kubeadm-flags.env: kubeadm's flags plus kubeletExtraArgs, sorted.
pub fn kubelet_flags(
    cri_socket: &str,
    node_name: &str,
    hostname: &str,
    pause_image: &str,
    extra: &[(String, String)],
) -> String {
    let mut flags: std::collections::BTreeMap<String, String> = Default::default();
    flags.insert("container-runtime-endpoint".into(), cri_socket.into());
    if node_name != hostname {
        flags.insert("hostname-override".into(), node_name.into());
    }
    flags.insert("pod-infra-container-image".into(), pause_image.into());
    for (k, v) in extra {
        flags.insert(k.clone(), v.clone());
    }
    let args: Vec<String> = flags.iter().map(|(k, v)| format!("--{k}={v}")).collect();
    format!("KUBELET_KUBEADM_ARGS=\"{}\"\n", args.join(" "))
}

/// The node name kubeadm uses: nodeRegistration.name, else the hostname, lowercased.
pub fn default_node_name(hostname: &str) -> String {
    hostname.to_lowercase()
}

fn host_path_volume(name: &str, path: &str, kind: &str) -> Value {
    json!({"hostPath": {"path": path, "type": kind}, "name": name})
}

fn mount(name: &str, path: &str, ro: bool) -> Value {
    if ro {
        json!({"mountPath": path, "name": name, "readOnly": true})
    } else {
        json!({"mountPath": path, "name": name})
    }
}

fn probe(host: &str, path: &str, port: u16, scheme: &str, failure: u32) -> Value {
    json!({
        "failureThreshold": failure,
        "httpGet": {"host": host, "path": path, "port": port, "scheme": scheme},
        "initialDelaySeconds": 10,
        "periodSeconds": 10,
        "timeoutSeconds": 15,
    })
}

fn with_args(mut base: Vec<(String, String)>, extra: &[(String, String)]) -> Vec<String> {
    for (k, v) in extra {
        if let Some(slot) = base.iter_mut().find(|(bk, _)| bk == k) {
            slot.1 = v.clone();
        } else {
            base.push((k.clone(), v.clone()));
        }
    }
    base.sort();
    base.into_iter()
        .map(|(k, v)| format!("--{k}={v}"))
        .collect()
}

fn pairs(list: &[(&str, String)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn static_pod(name: &str, annotations: Value, container: Value, volumes: Vec<Value>) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "annotations": annotations,
            "labels": {"component": name, "tier": "control-plane"},
            "name": name,
            "namespace": "kube-system",
        },
        "spec": {
            "containers": [container],
            "hostNetwork": true,
            "priority": 2000001000,
            "priorityClassName": "system-node-critical",
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": volumes,
        },
        "status": {},
    })
}

fn cert_volumes() -> (Vec<Value>, Vec<Value>) {
    (
        vec![
            host_path_volume("ca-certs", "/etc/ssl/certs", "DirectoryOrCreate"),
            host_path_volume(
                "etc-ca-certificates",
                "/etc/ca-certificates",
                "DirectoryOrCreate",
            ),
            host_path_volume("k8s-certs", "/etc/kubernetes/pki", "DirectoryOrCreate"),
            host_path_volume(
                "usr-local-share-ca-certificates",
                "/usr/local/share/ca-certificates",
                "DirectoryOrCreate",
            ),
            host_path_volume(
                "usr-share-ca-certificates",
                "/usr/share/ca-certificates",
                "DirectoryOrCreate",
            ),
        ],
        vec![
            mount("ca-certs", "/etc/ssl/certs", true),
            mount("etc-ca-certificates", "/etc/ca-certificates", true),
            mount("k8s-certs", "/etc/kubernetes/pki", true),
            mount(
                "usr-local-share-ca-certificates",
                "/usr/local/share/ca-certificates",
                true,
            ),
            mount(
                "usr-share-ca-certificates",
                "/usr/share/ca-certificates",
                true,
            ),
        ],
    )
}

/// The inputs of the control-plane manifests.
pub struct ControlPlane<'a> {
    pub version: KVer,
    pub advertise_address: &'a str,
    pub bind_port: u16,
    pub node_name: &'a str,
    pub cluster: &'a ClusterConfig,
    /// Existing etcd members ("name=https://ip:2380") for a joining control plane.
    pub etcd_initial_cluster: Option<String>,
}

/// /etc/kubernetes/manifests/kube-apiserver.yaml
pub fn apiserver_manifest(cp: &ControlPlane) -> Value {
    let c = cp.cluster;
    let pki = "/etc/kubernetes/pki";
    let base = pairs(&[
        ("advertise-address", cp.advertise_address.to_string()),
        ("allow-privileged", "true".into()),
        ("authorization-mode", "Node,RBAC".into()),
        ("client-ca-file", format!("{pki}/ca.crt")),
        ("enable-admission-plugins", "NodeRestriction".into()),
        ("enable-bootstrap-token-auth", "true".into()),
        ("etcd-cafile", format!("{pki}/etcd/ca.crt")),
        ("etcd-certfile", format!("{pki}/apiserver-etcd-client.crt")),
        ("etcd-keyfile", format!("{pki}/apiserver-etcd-client.key")),
        ("etcd-servers", "https://127.0.0.1:2379".into()),
        (
            "kubelet-client-certificate",
            format!("{pki}/apiserver-kubelet-client.crt"),
        ),
        (
            "kubelet-client-key",
            format!("{pki}/apiserver-kubelet-client.key"),
        ),
        (
            "kubelet-preferred-address-types",
            "InternalIP,ExternalIP,Hostname".into(),
        ),
        (
            "proxy-client-cert-file",
            format!("{pki}/front-proxy-client.crt"),
        ),
        (
            "proxy-client-key-file",
            format!("{pki}/front-proxy-client.key"),
        ),
        ("requestheader-allowed-names", "front-proxy-client".into()),
        (
            "requestheader-client-ca-file",
            format!("{pki}/front-proxy-ca.crt"),
        ),
        (
            "requestheader-extra-headers-prefix",
            "X-Remote-Extra-".into(),
        ),
        ("requestheader-group-headers", "X-Remote-Group".into()),
        ("requestheader-username-headers", "X-Remote-User".into()),
        ("secure-port", cp.bind_port.to_string()),
        (
            "service-account-issuer",
            format!("https://kubernetes.default.svc.{}", c.dns_domain),
        ),
        ("service-account-key-file", format!("{pki}/sa.pub")),
        ("service-account-signing-key-file", format!("{pki}/sa.key")),
        ("service-cluster-ip-range", c.service_subnet.clone()),
        ("tls-cert-file", format!("{pki}/apiserver.crt")),
        ("tls-private-key-file", format!("{pki}/apiserver.key")),
    ]);
    let mut command = vec!["kube-apiserver".to_string()];
    command.extend(with_args(base, &c.apiserver_args));
    let (volumes, mounts) = cert_volumes();
    let adv = cp.advertise_address;
    static_pod(
        "kube-apiserver",
        json!({"kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint": format!("{adv}:{}", cp.bind_port)}),
        json!({
            "command": command,
            "image": format!("{}/kube-apiserver:{}", c.image_repository, cp.version),
            "imagePullPolicy": "IfNotPresent",
            "livenessProbe": probe(adv, "/livez", cp.bind_port, "HTTPS", 8),
            "name": "kube-apiserver",
            "readinessProbe": probe(adv, "/readyz", cp.bind_port, "HTTPS", 3),
            "resources": {"requests": {"cpu": "250m"}},
            "startupProbe": probe(adv, "/livez", cp.bind_port, "HTTPS", 24),
            "volumeMounts": mounts,
        }),
        volumes,
    )
}

/// /etc/kubernetes/manifests/kube-controller-manager.yaml
pub fn controller_manager_manifest(cp: &ControlPlane) -> Value {
    let c = cp.cluster;
    let pki = "/etc/kubernetes/pki";
    let mut base = pairs(&[
        (
            "authentication-kubeconfig",
            "/etc/kubernetes/controller-manager.conf".into(),
        ),
        (
            "authorization-kubeconfig",
            "/etc/kubernetes/controller-manager.conf".into(),
        ),
        ("bind-address", "127.0.0.1".into()),
        ("client-ca-file", format!("{pki}/ca.crt")),
        ("cluster-name", c.cluster_name.clone()),
        ("cluster-signing-cert-file", format!("{pki}/ca.crt")),
        ("cluster-signing-key-file", format!("{pki}/ca.key")),
        ("controllers", "*,bootstrapsigner,tokencleaner".into()),
        (
            "kubeconfig",
            "/etc/kubernetes/controller-manager.conf".into(),
        ),
        ("leader-elect", "true".into()),
        (
            "requestheader-client-ca-file",
            format!("{pki}/front-proxy-ca.crt"),
        ),
        ("root-ca-file", format!("{pki}/ca.crt")),
        ("service-account-private-key-file", format!("{pki}/sa.key")),
        ("use-service-account-credentials", "true".into()),
    ]);
    if let Some(p) = &c.pod_subnet {
        base.push(("allocate-node-cidrs".into(), "true".into()));
        base.push(("cluster-cidr".into(), p.clone()));
        base.push(("service-cluster-ip-range".into(), c.service_subnet.clone()));
    }
    let mut command = vec!["kube-controller-manager".to_string()];
    command.extend(with_args(base, &c.controller_manager_args));
    let (mut volumes, mut mounts) = cert_volumes();
    volumes.push(host_path_volume(
        "kubeconfig",
        "/etc/kubernetes/controller-manager.conf",
        "FileOrCreate",
    ));
    mounts.push(mount(
        "kubeconfig",
        "/etc/kubernetes/controller-manager.conf",
        true,
    ));
    static_pod(
        "kube-controller-manager",
        json!({}),
        json!({
            "command": command,
            "image": format!("{}/kube-controller-manager:{}", c.image_repository, cp.version),
            "imagePullPolicy": "IfNotPresent",
            "livenessProbe": probe("127.0.0.1", "/healthz", 10257, "HTTPS", 8),
            "name": "kube-controller-manager",
            "resources": {"requests": {"cpu": "200m"}},
            "startupProbe": probe("127.0.0.1", "/healthz", 10257, "HTTPS", 24),
            "volumeMounts": mounts,
        }),
        volumes,
    )
}

/// /etc/kubernetes/manifests/kube-scheduler.yaml
pub fn scheduler_manifest(cp: &ControlPlane) -> Value {
    let c = cp.cluster;
    let base = pairs(&[
        (
            "authentication-kubeconfig",
            "/etc/kubernetes/scheduler.conf".into(),
        ),
        (
            "authorization-kubeconfig",
            "/etc/kubernetes/scheduler.conf".into(),
        ),
        ("bind-address", "127.0.0.1".into()),
        ("kubeconfig", "/etc/kubernetes/scheduler.conf".into()),
        ("leader-elect", "true".into()),
    ]);
    let mut command = vec!["kube-scheduler".to_string()];
    command.extend(with_args(base, &c.scheduler_args));
    static_pod(
        "kube-scheduler",
        json!({}),
        json!({
            "command": command,
            "image": format!("{}/kube-scheduler:{}", c.image_repository, cp.version),
            "imagePullPolicy": "IfNotPresent",
            "livenessProbe": probe("127.0.0.1", "/livez", 10259, "HTTPS", 8),
            "name": "kube-scheduler",
            "readinessProbe": probe("127.0.0.1", "/readyz", 10259, "HTTPS", 3),
            "resources": {"requests": {"cpu": "100m"}},
            "startupProbe": probe("127.0.0.1", "/livez", 10259, "HTTPS", 24),
            "volumeMounts": [mount("kubeconfig", "/etc/kubernetes/scheduler.conf", true)],
        }),
        vec![host_path_volume(
            "kubeconfig",
            "/etc/kubernetes/scheduler.conf",
            "FileOrCreate",
        )],
    )
}

/// /etc/kubernetes/manifests/etcd.yaml
pub fn etcd_manifest(cp: &ControlPlane) -> Value {
    let c = cp.cluster;
    let adv = cp.advertise_address;
    let name = cp.node_name;
    let pki = "/etc/kubernetes/pki/etcd";
    let mut args = pairs(&[
        ("advertise-client-urls", format!("https://{adv}:2379")),
        ("cert-file", format!("{pki}/server.crt")),
        ("client-cert-auth", "true".into()),
        ("data-dir", c.etcd_data_dir.clone()),
        ("feature-gates", "InitialCorruptCheck=true".into()),
        ("initial-advertise-peer-urls", format!("https://{adv}:2380")),
        ("key-file", format!("{pki}/server.key")),
        (
            "listen-client-urls",
            format!("https://127.0.0.1:2379,https://{adv}:2379"),
        ),
        ("listen-metrics-urls", "http://127.0.0.1:2381".into()),
        ("listen-peer-urls", format!("https://{adv}:2380")),
        ("name", name.into()),
        ("peer-cert-file", format!("{pki}/peer.crt")),
        ("peer-client-cert-auth", "true".into()),
        ("peer-key-file", format!("{pki}/peer.key")),
        ("peer-trusted-ca-file", format!("{pki}/ca.crt")),
        ("snapshot-count", "10000".into()),
        ("trusted-ca-file", format!("{pki}/ca.crt")),
        ("watch-progress-notify-interval", "5s".into()),
    ]);
    match &cp.etcd_initial_cluster {
        Some(members) => {
            args.push(("initial-cluster".into(), members.clone()));
            args.push(("initial-cluster-state".into(), "existing".into()));
        }
        None => args.push((
            "initial-cluster".into(),
            format!("{name}=https://{adv}:2380"),
        )),
    }
    let mut command = vec!["etcd".to_string()];
    command.extend(with_args(args, &[]));
    static_pod(
        "etcd",
        json!({"kubeadm.kubernetes.io/etcd.advertise-client-urls": format!("https://{adv}:2379")}),
        json!({
            "command": command,
            "image": format!("{}/etcd:{}", c.image_repository, version::images_for(cp.version).etcd),
            "imagePullPolicy": "IfNotPresent",
            "livenessProbe": probe("127.0.0.1", "/livez", 2381, "HTTP", 8),
            "name": "etcd",
            "readinessProbe": probe("127.0.0.1", "/readyz", 2381, "HTTP", 3),
            "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}},
            "startupProbe": probe("127.0.0.1", "/readyz", 2381, "HTTP", 24),
            "volumeMounts": [
                mount("etcd-data", &c.etcd_data_dir, false),
                mount("etcd-certs", pki, false),
            ],
        }),
        vec![
            host_path_volume("etcd-certs", pki, "DirectoryOrCreate"),
            host_path_volume("etcd-data", &c.etcd_data_dir, "DirectoryOrCreate"),
        ],
    )
}

fn args_value(api_version: &str, args: &[(String, String)]) -> Value {
    if api_version.ends_with("v1beta4") {
        Value::Array(
            args.iter()
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect(),
        )
    } else {
        Value::Object(
            args.iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect::<Map<_, _>>(),
        )
    }
}

/// The ClusterConfiguration kubeadm stores in kube-system/kubeadm-config (in the newest
/// API version this kubeadm writes).
pub fn cluster_configuration(
    kubeadm: KVer,
    version: KVer,
    c: &ClusterConfig,
    endpoint: Option<&str>,
) -> Value {
    let api = if kubeadm.minor >= 31 {
        "kubeadm.k8s.io/v1beta4"
    } else {
        "kubeadm.k8s.io/v1beta3"
    };
    let mut net = json!({"dnsDomain": c.dns_domain, "serviceSubnet": c.service_subnet});
    if let Some(p) = &c.pod_subnet {
        net["podSubnet"] = json!(p);
    }
    let mut v = json!({
        "apiServer": {},
        "apiVersion": api,
        "caCertificateValidityPeriod": "87600h0m0s",
        "certificateValidityPeriod": "8760h0m0s",
        "certificatesDir": "/etc/kubernetes/pki",
        "clusterName": c.cluster_name,
        "controllerManager": {},
        "dns": {},
        "encryptionAlgorithm": "RSA-2048",
        "etcd": {"local": {"dataDir": c.etcd_data_dir}},
        "imageRepository": c.image_repository,
        "kind": "ClusterConfiguration",
        "kubernetesVersion": version.to_string(),
        "networking": net,
        "proxy": {},
        "scheduler": {},
    });
    if api.ends_with("v1beta3") {
        for k in [
            "caCertificateValidityPeriod",
            "certificateValidityPeriod",
            "encryptionAlgorithm",
            "proxy",
        ] {
            v.as_object_mut().unwrap().remove(k);
        }
    }
    if let Some(e) = endpoint {
        v["controlPlaneEndpoint"] = json!(e);
    }
    if !c.apiserver_args.is_empty() {
        v["apiServer"]["extraArgs"] = args_value(api, &c.apiserver_args);
    }
    if !c.cert_sans.is_empty() {
        v["apiServer"]["certSANs"] = json!(c.cert_sans);
    }
    if !c.controller_manager_args.is_empty() {
        v["controllerManager"]["extraArgs"] = args_value(api, &c.controller_manager_args);
    }
    if !c.scheduler_args.is_empty() {
        v["scheduler"]["extraArgs"] = args_value(api, &c.scheduler_args);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The version a static Pod manifest's image tag names.
    fn manifest_version(text: &str) -> Option<KVer> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix("image: "))
            .and_then(|img| img.rsplit(':').next())
            .and_then(KVer::parse)
    }

    fn cluster() -> ClusterConfig {
        ClusterConfig::from(None)
    }

    #[test]
    fn kubeconfig_round_trips() {
        let (ca, _) = pki::new_ca();
        let s = pki::new_secret();
        let text = kubeconfig("10.0.0.10:6443", &ca, "kubernetes", "kubernetes-admin", &s);
        assert!(text.contains("server: https://10.0.0.10:6443"));
        assert!(text.contains("current-context: kubernetes-admin@kubernetes"));
        let k = parse_kubeconfig(&text).unwrap();
        assert_eq!(k.server, "10.0.0.10:6443");
        assert_eq!(k.secret, s);
        assert_eq!(k.ca_pem, ca);
    }

    #[test]
    fn flags_env_shape() {
        let f = kubelet_flags(
            "unix:///var/run/containerd/containerd.sock",
            "master1",
            "master1",
            "registry.k8s.io/pause:3.10",
            &[("node-ip".into(), "10.0.0.10".into())],
        );
        assert_eq!(f, "KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock --node-ip=10.0.0.10 --pod-infra-container-image=registry.k8s.io/pause:3.10\"\n");
        let f = kubelet_flags("unix:///x", "n1", "host", "p", &[]);
        assert!(f.contains("--hostname-override=n1"));
    }

    #[test]
    fn kubelet_config_defaults_and_overrides() {
        let user = json!({"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration", "cgroupDriver": "cgroupfs", "failSwapOn": false});
        let v = kubelet_config(Some(&user), &cluster());
        assert_eq!(v["cgroupDriver"], "cgroupfs");
        assert_eq!(v["failSwapOn"], false);
        assert_eq!(v["clusterDNS"][0], "10.96.0.10");
        let y = to_yaml(&kubelet_config(None, &cluster()));
        assert!(y.contains("cgroupDriver: systemd\n"));
        assert!(y.starts_with("apiVersion: kubelet.config.k8s.io/v1beta1\n"));
    }

    #[test]
    fn apiserver_manifest_carries_version_and_address() {
        let c = cluster();
        let cp = ControlPlane {
            version: KVer::parse("1.34.2").unwrap(),
            advertise_address: "10.0.0.10",
            bind_port: 6443,
            node_name: "master1",
            cluster: &c,
            etcd_initial_cluster: None,
        };
        let y = to_yaml(&apiserver_manifest(&cp));
        assert!(y.contains("image: registry.k8s.io/kube-apiserver:v1.34.2\n"));
        assert!(y.contains("- --advertise-address=10.0.0.10\n"));
        assert!(y.contains("- --secure-port=6443\n"));
        assert_eq!(manifest_version(&y), KVer::parse("1.34.2"));
        let e = to_yaml(&etcd_manifest(&cp));
        assert!(e.contains("- --initial-cluster=master1=https://10.0.0.10:2380\n"));
    }

    #[test]
    fn cluster_configuration_versions() {
        let mut c = cluster();
        c.apiserver_args = vec![("audit-log-maxage".into(), "30".into())];
        let v = cluster_configuration(
            KVer::parse("1.34.2").unwrap(),
            KVer::parse("1.34.2").unwrap(),
            &c,
            Some("10.0.0.10:6443"),
        );
        assert_eq!(v["apiVersion"], "kubeadm.k8s.io/v1beta4");
        assert_eq!(v["apiServer"]["extraArgs"][0]["name"], "audit-log-maxage");
        let v = cluster_configuration(
            KVer::parse("1.30.2").unwrap(),
            KVer::parse("1.30.2").unwrap(),
            &c,
            None,
        );
        assert_eq!(v["apiServer"]["extraArgs"]["audit-log-maxage"], "30");
    }
}
