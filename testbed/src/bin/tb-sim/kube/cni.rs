//! The pod network as the kubelet stand-in of the REAL control plane sees it
//! (testbed/STANDINS-kubelet-real.md, "Pod network"):
//!
//! - [`network_ready`]: whether the container runtime reports NetworkReady, by the rule of
//!   containerd 1.7's CRI plugin: it loads its CNI configuration with go-cni
//!   (`cni.WithLoNetwork`, `cni.WithDefaultConf`, minimum network count 2: loopback plus
//!   one; pkg/cri/server/service_linux.go initPlatform, cni_conf_syncer.go on every
//!   change of conf_dir), and Status says `cni plugin not initialized` while that load
//!   failed. go-cni opts.go loadFromConfDir: libcni.ConfFiles(conf_dir, .conf, .conflist,
//!   .json) sorted; the first `max_conf_num` (1) that load; any file that fails to load
//!   on the way fails the whole load.
//! - [`install_cni`]: what calico-node's `install-cni` init container (image calico/cni,
//!   command /opt/cni/bin/install) does on the host: projectcalico/calico
//!   cni-plugin/pkg/install/install.go Install, writeKubeconfig, writeCNIConfig.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::apiclient::Client;
use crate::os::containerd;

/// The Ready condition's message while no CNI config is loaded: the runtime's
/// NetworkReady=false as the kubelet reports it (pkg/kubelet/kubelet.go
/// updateRuntimeUp -> "container runtime network not ready").
pub const CNI_NOT_READY: &str = "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized";

/// The runtime's CNI configuration directory and how many networks it loads from it:
/// containerd's `plugins."io.containerd.grpc.v1.cri".cni` conf_dir and max_conf_num from
/// /etc/containerd/config.toml over the defaults (/etc/cni/net.d, 1).
pub fn runtime_conf_dir() -> (PathBuf, usize) {
    let file = std::fs::read_to_string("/etc/containerd/config.toml")
        .ok()
        .and_then(|t| containerd::parse_toml(&t).ok());
    let eff = containerd::effective(file.as_ref());
    let get = |k: &str| {
        eff.get(&format!("plugins.\"io.containerd.grpc.v1.cri\".cni.{k}"))
            .map(|v| v.trim().trim_matches('"').to_string())
    };
    let dir = get("conf_dir").unwrap_or_else(|| "/etc/cni/net.d".into());
    let max = get("max_conf_num")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    (PathBuf::from(dir), max)
}

/// Whether the runtime's network is ready: Ok, or why go-cni's load failed (containerd
/// logs it; the Status message the kubelet shows is always `cni plugin not initialized`).
pub fn network_ready() -> Result<(), String> {
    let (dir, max) = runtime_conf_dir();
    load_conf_dir(&dir, max).map(|_| ())
}

/// go-cni loadFromConfDir: the number of networks loaded from `dir`, or the error.
pub fn load_conf_dir(dir: &Path, max: usize) -> Result<usize, String> {
    // libcni ConfFiles: the directory's non-directory entries whose extension is one of
    // the three; a missing directory is no files.
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .is_some_and(|x| x == "conf" || x == "conflist" || x == "json")
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
        Err(e) => return Err(format!("failed to read config file: {e}")),
    };
    if files.is_empty() {
        return Err(format!(
            "no network config found in {}: cni plugin not initialized",
            dir.display()
        ));
    }
    files.sort();
    let mut loaded = 0;
    for file in files {
        let text = std::fs::read(&file)
            .map_err(|e| format!("failed to load CNI config file {}: {e}", file.display()))?;
        if file.extension().is_some_and(|x| x == "conflist") {
            conf_list_from_bytes(&text).map_err(|e| {
                format!(
                    "failed to load CNI config list file {}: {e}: invalid cni config",
                    file.display()
                )
            })?;
        } else {
            let conf = conf_from_bytes(&text).map_err(|e| {
                format!(
                    "failed to load CNI config file {}: {e}: invalid cni config",
                    file.display()
                )
            })?;
            if conf["type"].as_str().unwrap_or_default().is_empty() {
                return Err(format!(
                    "network type not found in {}: invalid cni config",
                    file.display()
                ));
            }
        }
        loaded += 1;
        if loaded == max {
            break;
        }
    }
    Ok(loaded)
}

/// libcni ConfFromBytes: a JSON object; `type`, when given, a string.
fn conf_from_bytes(bytes: &[u8]) -> Result<Value, String> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("error parsing configuration: {e}"))?;
    if !v.is_object() {
        return Err("error parsing configuration: not a JSON object".into());
    }
    Ok(v)
}

/// libcni ConfListFromBytes: a JSON object with a string `name`, an optional string
/// `cniVersion`, and a non-empty `plugins` array whose entries each load as a network
/// configuration with a `type`.
fn conf_list_from_bytes(bytes: &[u8]) -> Result<(), String> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("error parsing configuration list: {e}"))?;
    let Some(list) = v.as_object() else {
        return Err("error parsing configuration list: not a JSON object".into());
    };
    match list.get("name") {
        None => return Err("error parsing configuration list: no name".into()),
        Some(Value::String(_)) => {}
        Some(_) => return Err("error parsing configuration list: invalid name type".into()),
    }
    if list.get("cniVersion").is_some_and(|v| !v.is_string()) {
        return Err("error parsing configuration list: invalid cniVersion type".into());
    }
    let plugins = match list.get("plugins") {
        None => return Err("error parsing configuration list: no 'plugins' key".into()),
        Some(Value::Array(p)) => p,
        Some(_) => return Err("error parsing configuration list: invalid 'plugins' type".into()),
    };
    if plugins.is_empty() {
        return Err("error parsing configuration list: no plugins in list".into());
    }
    for (i, p) in plugins.iter().enumerate() {
        let ok = p.is_object() && p["type"].as_str().is_some_and(|t| !t.is_empty());
        if !ok {
            return Err(format!(
                "failed to parse plugin config {i}: error parsing configuration: missing 'type'"
            ));
        }
    }
    Ok(())
}

/// The command of Calico's installer in the calico/cni image.
const INSTALL: &str = "/opt/cni/bin/install";
/// Where install-cni puts the plugins on the host (the manifest's cni-bin-dir hostPath
/// mounted at /host/opt/cni/bin).
const HOST_BIN_DIR: &str = "/opt/cni/bin";
/// The host's CNI configuration directory (cni-net-dir at /host/etc/cni/net.d).
const HOST_NET_DIR: &str = "/etc/cni/net.d";

/// The pod's `install-cni` init container (command /opt/cni/bin/install), if any.
pub fn install_container(pod: &Value) -> Option<&Value> {
    pod["spec"]["initContainers"]
        .as_array()?
        .iter()
        .find(|c| c["command"][0] == INSTALL)
}

/// Resolves a container's environment as the kubelet does for a container it starts
/// (pkg/kubelet/kubelet_pods.go makeEnvironmentVariables): the service variables of the
/// `kubernetes` Service, then `envFrom`, then `env` (later wins), with `valueFrom`
/// configMapKeyRef read from the API server with the node's credentials (the Node
/// authorizer lets a node read the ConfigMaps its pods reference) and fieldRef from the
/// pod. A missing ConfigMap or key that is not optional is the kubelet's
/// CreateContainerConfigError, with its message.
pub fn container_env(
    api: &Client,
    pod: &Value,
    container: &Value,
) -> Result<BTreeMap<String, String>, String> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    let mut env = BTreeMap::new();
    let svc = api
        .get("/api/v1/namespaces/default/services/kubernetes")
        .ok();
    if let Some(svc) = svc {
        if let Some(ip) = svc["spec"]["clusterIP"].as_str() {
            env.insert("KUBERNETES_SERVICE_HOST".into(), ip.to_string());
        }
        if let Some(port) = svc["spec"]["ports"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["name"] == "https"))
            .and_then(|p| p["port"].as_u64())
        {
            env.insert("KUBERNETES_SERVICE_PORT".into(), port.to_string());
        }
    }
    let mut maps: BTreeMap<String, Option<Value>> = BTreeMap::new();
    let mut config_map = |name: &str| -> Result<Option<Value>, String> {
        if let Some(m) = maps.get(name) {
            return Ok(m.clone());
        }
        let m = match api.get(&format!("/api/v1/namespaces/{ns}/configmaps/{name}")) {
            Ok(m) => Some(m),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e.into()),
        };
        maps.insert(name.to_string(), m.clone());
        Ok(m)
    };
    for from in container["envFrom"].as_array().into_iter().flatten() {
        let Some(name) = from["configMapRef"]["name"].as_str() else {
            continue;
        };
        match config_map(name)? {
            Some(m) => {
                let prefix = from["prefix"].as_str().unwrap_or_default();
                for (k, v) in m["data"].as_object().into_iter().flatten() {
                    env.insert(
                        format!("{prefix}{k}"),
                        v.as_str().unwrap_or_default().into(),
                    );
                }
            }
            None if from["configMapRef"]["optional"] == true => {}
            None => return Err(format!("configmap \"{name}\" not found")),
        }
    }
    for e in container["env"].as_array().into_iter().flatten() {
        let Some(name) = e["name"].as_str() else {
            continue;
        };
        if let Some(v) = e["value"].as_str() {
            env.insert(name.into(), v.into());
            continue;
        }
        let from = &e["valueFrom"];
        if let Some(r) = from.get("configMapKeyRef") {
            let (map, key) = (
                r["name"].as_str().unwrap_or_default(),
                r["key"].as_str().unwrap_or_default(),
            );
            let optional = r["optional"] == true;
            match config_map(map)? {
                Some(m) => match m["data"][key].as_str() {
                    Some(v) => {
                        env.insert(name.into(), v.into());
                    }
                    None if optional => {}
                    None => return Err(format!("couldn't find key {key} in ConfigMap {ns}/{map}")),
                },
                None if optional => {}
                None => return Err(format!("configmap \"{map}\" not found")),
            }
        } else if let Some(path) = from["fieldRef"]["fieldPath"].as_str() {
            let v = match path {
                "spec.nodeName" => pod["spec"]["nodeName"].as_str(),
                "metadata.name" => pod["metadata"]["name"].as_str(),
                "metadata.namespace" => pod["metadata"]["namespace"].as_str(),
                "spec.serviceAccountName" => pod["spec"]["serviceAccountName"].as_str(),
                "status.hostIP" => pod["status"]["hostIP"].as_str(),
                _ => None,
            };
            env.insert(name.into(), v.unwrap_or_default().into());
        } else {
            return Err(format!(
                "env {name}: valueFrom {from} is not modelled by the testbed"
            ));
        }
    }
    Ok(env)
}

/// A service account token from the API server's TokenRequest API, as `api`'s user:
/// `POST .../serviceaccounts/SA/token`, bound to `pod` when given (what the kubelet
/// projects into a pod's /var/run/secrets/kubernetes.io/serviceaccount/token).
fn token_request(
    api: &Client,
    ns: &str,
    sa: &str,
    seconds: u64,
    pod: Option<&Value>,
) -> Result<String, String> {
    let mut spec = json!({"audiences": [], "expirationSeconds": seconds});
    if let Some(p) = pod {
        spec["boundObjectRef"] = json!({"kind": "Pod", "apiVersion": "v1",
            "name": p["metadata"]["name"], "uid": p["metadata"]["uid"]});
    }
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": spec});
    let v = api
        .create(
            &format!("/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token"),
            &body,
        )
        .map_err(|e| format!("token for {ns}/{sa}: {e}"))?;
    v["status"]["token"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| format!("token for {ns}/{sa}: no status.token in the answer"))
}

/// Writes `path` with `mode` (created with that mode, then set: the umask would narrow it).
fn write_file(path: &Path, text: &[u8], mode: u32) -> Result<(), String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let tmp = path.with_extension("tmp");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(err)?;
        f.write_all(text).map_err(err)?;
    }
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// The calico/cni image's plugins, as stand-ins that say what they are.
fn plugin_standin(name: &str, version: &str) -> String {
    format!(
        "#!/bin/sh\n\
         # testbed stand-in for the Calico CNI plugin `{name}` {version}, placed by\n\
         # calico-node's install-cni (testbed/STANDINS-kubelet-real.md). No pod networking\n\
         # happens on testbed hosts: the kubelet stand-in creates no sandboxes.\n\
         case \"$1\" in -v|--version) echo {version}; exit 0 ;; esac\n\
         echo '{{\"code\": 999, \"msg\": \"testbed stand-in for {name}: no pod networking on testbed hosts\"}}'\n\
         exit 1\n"
    )
}

/// Runs calico-node's install-cni for `pod` on this host: returns what it did (log
/// lines; never the token).
///
/// install.go, in its order: the pod's service account token (here a TokenRequest bound
/// to the pod, as the kubelet projects it); the plugins copied to /opt/cni/bin (calico,
/// calico-ipam; `calico -v` must answer); writeKubeconfig: a token for the CNI plugin's
/// service account (`CALICO_CNI_SERVICE_ACCOUNT`, default calico-cni-plugin, in the
/// pod's namespace) requested WITH THE POD'S TOKEN (so the manifest's RBAC decides:
/// node/pkg/cni token_watch.go, 24 h), written to calico-kubeconfig (0600) with the
/// `kubernetes` Service's address and the cluster CA; writeCNIConfig: CNI_NETWORK_CONFIG
/// (or the built-in default) with the placeholders replaced, checked to be a JSON object,
/// written to CNI_CONF_NAME (default 10-calico.conflist, 0644); CNI_OLD_CONF_NAME removed
/// when it differs.
pub fn install_cni(api: &Client, pod: &Value, node: &str) -> Result<Vec<String>, String> {
    let Some(container) = install_container(pod) else {
        return Ok(vec![]);
    };
    let env = container_env(api, pod, container)?;
    let get = |k: &str, d: &str| env.get(k).cloned().unwrap_or_else(|| d.to_string());
    let ns = pod["metadata"]["namespace"]
        .as_str()
        .unwrap_or("kube-system");
    let sa = pod["spec"]["serviceAccountName"]
        .as_str()
        .unwrap_or("default");
    let version = container["image"]
        .as_str()
        .and_then(|i| i.rsplit_once(':'))
        .map(|(_, t)| t.to_string())
        .unwrap_or_else(|| "unknown".into());
    let mut done = Vec::new();

    // The pod's own token, as the kubelet projects it (1 h + 7 s, the kubelet's default).
    let pod_token = token_request(api, ns, sa, 3607, Some(pod))?;

    let bin = Path::new(HOST_BIN_DIR);
    std::fs::create_dir_all(bin).map_err(|e| format!("{HOST_BIN_DIR}: {e}"))?;
    for plugin in ["calico", "calico-ipam"] {
        let skip = get("SKIP_CNI_BINARIES", "");
        if skip.split(',').any(|s| s.trim() == plugin) {
            continue;
        }
        let target = bin.join(plugin);
        if target.exists() && get("UPDATE_CNI_BINARIES", "true") == "false" {
            continue;
        }
        write_file(&target, plugin_standin(plugin, &version).as_bytes(), 0o755)?;
        done.push(format!("Installed {}", target.display()));
    }
    let v = std::process::Command::new(bin.join("calico"))
        .arg("-v")
        .output()
        .map_err(|e| format!("Failed getting CNI plugin version from installed binary: {e}"))?;
    if !v.status.success() {
        return Err("Failed getting CNI plugin version from installed binary".into());
    }

    // writeKubeconfig: the CNI plugin's token, asked for with the pod's credentials.
    let ca = std::fs::read("/etc/kubernetes/pki/ca.crt").map_err(|e| format!("ca.crt: {e}"))?;
    let server = format!(
        "{}://[{}]:{}",
        get("KUBERNETES_SERVICE_PROTOCOL", "https"),
        get("KUBERNETES_SERVICE_HOST", ""),
        get("KUBERNETES_SERVICE_PORT", "")
    );
    let cni_sa = get("CALICO_CNI_SERVICE_ACCOUNT", "calico-cni-plugin");
    let cni_token = {
        use base64::Engine;
        let ca64 = base64::engine::general_purpose::STANDARD.encode(&ca);
        // The pod's in-cluster config: the API server the kubelet's kubeconfig names (the
        // Service address is not routed on testbed hosts), the CA and the pod's token,
        // held in memory only.
        let kubelet_conf =
            std::fs::read_to_string(super::kubelet::KUBELET_CONF).unwrap_or_default();
        let server = kubelet_conf
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .unwrap_or_default()
            .to_string();
        let pod_conf = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    \
             certificate-authority-data: {ca64}\nusers:\n- name: u\n  user:\n    token: {pod_token}\n\
             contexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n"
        );
        let t = token_request(&api.with_kubeconfig(pod_conf), ns, &cni_sa, 86400, None);
        t.map_err(|e| format!("Unable to create token for CNI kubeconfig: {e}"))?
    };
    let tls = if env.get("SKIP_TLS_VERIFY").map(String::as_str) == Some("true") {
        "insecure-skip-tls-verify: true".to_string()
    } else {
        use base64::Engine;
        format!(
            "certificate-authority-data: {}",
            base64::engine::general_purpose::STANDARD.encode(&ca)
        )
    };
    let kubeconfig = format!(
        "# Kubeconfig file for Calico CNI plugin.\napiVersion: v1\nkind: Config\nclusters:\n\
         - name: local\n  cluster:\n    server: {server}\n    {tls}\nusers:\n- name: calico\n  \
         user:\n    token: {cni_token}\ncontexts:\n- name: calico-context\n  context:\n    \
         cluster: local\n    user: calico\ncurrent-context: calico-context"
    );
    let net = Path::new(HOST_NET_DIR);
    std::fs::create_dir_all(net).map_err(|e| format!("{HOST_NET_DIR}: {e}"))?;
    write_file(&net.join("calico-kubeconfig"), kubeconfig.as_bytes(), 0o600)?;
    done.push(format!(
        "Wrote {HOST_NET_DIR}/calico-kubeconfig (token of {ns}/{cni_sa})"
    ));

    // writeCNIConfig.
    let net_dir = get("CNI_NET_DIR", HOST_NET_DIR);
    let mut conf = env
        .get("CNI_NETWORK_CONFIG")
        .filter(|c| !c.is_empty())
        .cloned()
        .unwrap_or_else(default_net_conf);
    for (placeholder, value) in [
        ("__LOG_LEVEL__", get("LOG_LEVEL", "info")),
        (
            "__LOG_FILE_PATH__",
            get("LOG_FILE_PATH", "/var/log/calico/cni/cni.log"),
        ),
        ("__LOG_FILE_MAX_SIZE__", get("LOG_FILE_MAX_SIZE", "100")),
        ("__LOG_FILE_MAX_AGE__", get("LOG_FILE_MAX_AGE", "30")),
        ("__LOG_FILE_MAX_COUNT__", get("LOG_FILE_MAX_COUNT", "10")),
        ("__DATASTORE_TYPE__", get("DATASTORE_TYPE", "kubernetes")),
        (
            "__KUBERNETES_NODE_NAME__",
            get("KUBERNETES_NODE_NAME", node),
        ),
        (
            "__KUBECONFIG_FILEPATH__",
            format!("{net_dir}/calico-kubeconfig"),
        ),
        ("__CNI_MTU__", get("CNI_MTU", "1500")),
        (
            "__KUBERNETES_SERVICE_HOST__",
            get("KUBERNETES_SERVICE_HOST", ""),
        ),
        (
            "__KUBERNETES_SERVICE_PORT__",
            get("KUBERNETES_SERVICE_PORT", ""),
        ),
        ("__SERVICEACCOUNT_TOKEN__", pod_token.clone()),
        ("__ETCD_CERT_FILE__", String::new()),
        ("__ETCD_CA_CERT_FILE__", String::new()),
        ("__ETCD_KEY_FILE__", String::new()),
        ("__ETCD_ENDPOINTS__", get("ETCD_ENDPOINTS", "")),
        ("__ETCD_DISCOVERY_SRV__", get("ETCD_DISCOVERY_SRV", "")),
    ] {
        conf = conf.replace(placeholder, &value);
    }
    if !serde_json::from_str::<Value>(&conf).is_ok_and(|v| v.is_object()) {
        return Err(format!(
            "the CNI network configuration is not a valid json object (CNI_NETWORK_CONFIG of {})",
            pod["metadata"]["name"].as_str().unwrap_or_default()
        ));
    }
    let name = get("CNI_CONF_NAME", "10-calico.conflist");
    // install.go writeCNIConfig: mode TEST_FILE_PERMISSION, "0600" unless a test says
    // otherwise (the conflist may carry the service account token), forced on an existing
    // file too (os.Chmod after os.WriteFile).
    let mode = u32::from_str_radix(&get("TEST_FILE_PERMISSION", "0600"), 8)
        .map_err(|e| format!("TEST_FILE_PERMISSION: {e}"))?;
    write_file(&net.join(&name), conf.as_bytes(), mode)?;
    done.push(format!("Created {HOST_NET_DIR}/{name}"));
    let old = get("CNI_OLD_CONF_NAME", "10-calico.conflist");
    if name != old {
        let _ = std::fs::remove_file(net.join(&old));
    }
    Ok(done)
}

/// install.go's template when CNI_NETWORK_CONFIG is not set (defaultNetConf, Linux).
fn default_net_conf() -> String {
    r#"{
  "name": "k8s-pod-network",
  "cniVersion": "0.3.1",
  "plugins": [
    {
      "type": "calico",
      "log_level": "__LOG_LEVEL__",
      "log_file_path": "__LOG_FILE_PATH__",
      "datastore_type": "__DATASTORE_TYPE__",
      "nodename": "__KUBERNETES_NODE_NAME__",
      "mtu": __CNI_MTU__,
      "ipam": {"type": "calico-ipam"},
      "policy": {"type": "k8s"},
      "kubernetes": {"kubeconfig": "__KUBECONFIG_FILEPATH__"}
    },
    {
      "type": "portmap",
      "snat": true,
      "capabilities": {"portMappings": true}
    }
  ]
}"#
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(files: &[(&str, &str)]) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "tb-cni-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&d).unwrap();
        for (name, text) in files {
            std::fs::write(d.join(name), text).unwrap();
        }
        d
    }

    const GOOD: &str =
        r#"{"cniVersion":"0.3.1","name":"k8s-pod-network","plugins":[{"type":"calico"}]}"#;

    #[test]
    fn go_cni_loads_the_first_sorted_configuration() {
        assert!(load_conf_dir(Path::new("/nonexistent/net.d"), 1)
            .unwrap_err()
            .contains("no network config found"));
        assert!(load_conf_dir(&dir(&[]), 1).is_err());
        // Other extensions are not configurations.
        assert!(load_conf_dir(&dir(&[("10-calico.conflist.bak", GOOD)]), 1).is_err());
        assert_eq!(
            load_conf_dir(&dir(&[("10-calico.conflist", GOOD)]), 1),
            Ok(1)
        );
        // A .conf is one network with a type.
        assert_eq!(
            load_conf_dir(&dir(&[("10-b.conf", r#"{"name":"b","type":"bridge"}"#)]), 1),
            Ok(1)
        );
        assert!(load_conf_dir(&dir(&[("10-b.conf", GOOD)]), 1)
            .unwrap_err()
            .contains("network type not found"));
        // A list with no plugins, no name, or a plugin without type does not load.
        for bad in [
            r#"{"cniVersion":"0.3.1","name":"x","plugins":[]}"#,
            r#"{"cniVersion":"0.3.1","plugins":[{"type":"calico"}]}"#,
            r#"{"name":"x","plugins":[{"ipam":{}}]}"#,
            "not json",
        ] {
            assert!(
                load_conf_dir(&dir(&[("10-x.conflist", bad)]), 1).is_err(),
                "{bad}"
            );
        }
        // The first file in sorted order decides: a broken one first fails the load, a
        // broken one after the first good one is never read (max_conf_num 1).
        assert!(load_conf_dir(
            &dir(&[("05-bad.conflist", "{}"), ("10-calico.conflist", GOOD)]),
            1
        )
        .is_err());
        assert_eq!(
            load_conf_dir(
                &dir(&[("10-calico.conflist", GOOD), ("99-bad.conflist", "{}")]),
                1
            ),
            Ok(1)
        );
    }

    #[test]
    fn install_cni_is_found_by_its_command() {
        let pod = json!({"spec": {"initContainers": [
            {"name": "upgrade-ipam", "command": ["/opt/cni/bin/calico-ipam", "-upgrade"]},
            {"name": "install-cni", "command": ["/opt/cni/bin/install"]}]}});
        assert_eq!(install_container(&pod).unwrap()["name"], "install-cni");
        assert!(install_container(&json!({"spec": {}})).is_none());
    }
}
