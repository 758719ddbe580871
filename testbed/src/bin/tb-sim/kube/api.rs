//! The wire protocol of the simulated API server and the client every kube stand-in uses.
//!
//! Transport: one TCP connection per request to `<address>:6443` (a real connection
//! across the testbed's network, so an unreachable or stopped control plane fails like a
//! real one). The client writes one JSON [`Request`] line, the server answers one JSON
//! [`Response`] line and closes.
//!
//! Authentication: admin/kubelet kubeconfigs carry a credential in `client-key-data`
//! (base64 of a fake PEM whose body is the secret); `kubeadm join` authenticates with a
//! bootstrap token plus the CA hash instead.
//!
//! Objects are kept in their real Kubernetes JSON shapes (`serde_json::Value`) so kubectl
//! output is the real shape: Node, Pod, Deployment, PodDisruptionBudget, DaemonSet,
//! ConfigMap ...

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

pub const PORT: u16 = 6443;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// The secret from a kubeconfig; empty for `Join`.
    #[serde(default)]
    pub credential: String,
    pub op: Op,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Op {
    /// List objects of a kind (e.g. "Node", "Pod"), optionally in a namespace.
    List {
        kind: String,
        namespace: Option<String>,
    },
    Get {
        kind: String,
        namespace: Option<String>,
        name: String,
    },
    /// Create or replace an object (apply semantics; the body carries kind/metadata).
    /// Answers `{"result": "created"|"configured"|"unchanged", "object": {...}}`.
    /// Server-owned fields (`status`, `metadata.uid`, `creationTimestamp`,
    /// `resourceVersion`, `generation`) of an existing object are kept. If the object
    /// carries `metadata.resourceVersion` and it is stale, the answer is a 409 Conflict.
    Apply { object: Value },
    /// JSON merge patch (RFC 7386) of one object, applied atomically on the server (what
    /// `kubectl label/annotate/taint/cordon` send). Answers like `Apply`.
    Patch {
        kind: String,
        namespace: Option<String>,
        name: String,
        patch: Value,
    },
    Delete {
        kind: String,
        namespace: Option<String>,
        name: String,
    },
    /// Kubelet heartbeat: creates the Node on first call, refreshes its Ready condition.
    Heartbeat { node: Value },
    /// Join with a bootstrap token; returns the kubelet credential and cluster info:
    /// `{"credential": SECRET, "ca_cert": PEM, "endpoint": "10.0.0.10:6443",
    ///   "version": "v1.34.2", "kubelet_config": "<KubeletConfiguration YAML or null>"}`.
    /// Errors carry `{"message", "code", "phase"}`: the caller prints
    /// `error execution phase <phase>: <message>` like kubeadm.
    Join {
        token: String,
        /// `sha256:<hex>`; empty with `unsafe_skip_ca_verification` = no pinning.
        ca_cert_hash: String,
        /// `--discovery-token-unsafe-skip-ca-verification`: kubeadm then accepts the
        /// cluster CA without a pinned hash (a given hash is still checked, as in
        /// kubeadm's discovery/token).
        #[serde(default)]
        unsafe_skip_ca_verification: bool,
        node_name: String,
        control_plane: bool,
        certificate_key: Option<String>,
    },
    /// Anything else a stand-in needs, named by `name` with free-form arguments:
    /// - `version` -> `{"gitVersion": "v1.34.2", ...}` (the server's version info).
    /// - `evict` `{"namespace","name"}` -> `{}` or a 429 with the PDB message.
    /// - `whoami` -> `{"identity": "kubernetes-admin"}`.
    /// - `state` (admin only) -> the whole [`super::state::ClusterState`] as JSON.
    /// - `set-state` `{"field": "certificate_key"|"tokens"|"version"|"cni", "value": ...}`
    ///   (admin only): sets one top-level field of the state (for kubeadm).
    /// - `add-credential` `{"identity": "system:node:x"}` (admin only) -> `{"credential"}`.
    Call { name: String, args: Value },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    /// On success, the result; on failure, `{"message": "...", "code": 403}` in the shape
    /// kubectl prints as `Error from server (...)`.
    pub body: Value,
}

/// Error reaching the server, worded like kubectl's.
#[derive(Debug)]
pub enum ClientError {
    /// `The connection to the server 10.0.0.10:6443 was refused - did you specify the right host or port?`
    /// or `Unable to connect to the server: dial tcp 10.0.0.10:6443: i/o timeout`.
    Unreachable(String),
    /// The server answered with an error body.
    Server(Value),
}

/// Go's wording of a failed dial: `dial tcp 10.0.0.10:6443: connect: connection refused`.
pub fn dial_error(server: &str, e: &std::io::Error) -> String {
    let why = match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".to_string(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "i/o timeout".to_string(),
        _ if e.raw_os_error() == Some(libc::EHOSTUNREACH) => {
            "connect: no route to host".to_string()
        }
        _ if e.raw_os_error() == Some(libc::ENETUNREACH) => {
            "connect: network is unreachable".to_string()
        }
        _ => e.to_string(),
    };
    format!("dial tcp {server}: {why}")
}

/// kubectl's wording of a failed dial.
fn unreachable_text(server: &str, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::ConnectionRefused {
        format!("The connection to the server {server} was refused - did you specify the right host or port?")
    } else {
        format!("Unable to connect to the server: {}", dial_error(server, e))
    }
}

/// Sends one request to `server` ("10.0.0.10:6443") and waits for the answer.
pub fn call(server: &str, req: &Request, timeout: Duration) -> Result<Value, ClientError> {
    use std::net::ToSocketAddrs;
    let unreachable = |e: std::io::Error| ClientError::Unreachable(unreachable_text(server, &e));
    let addr = server
        .to_socket_addrs()
        .map_err(|e| {
            ClientError::Unreachable(format!(
                "Unable to connect to the server: dial tcp: lookup {server}: {e}"
            ))
        })?
        .next()
        .ok_or_else(|| ClientError::Unreachable(format!("invalid server address {server}")))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(unreachable)?;
    stream.set_read_timeout(Some(timeout)).ok();
    let mut line = serde_json::to_string(req).unwrap();
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(unreachable)?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .map_err(unreachable)?;
    if answer.is_empty() {
        return Err(ClientError::Unreachable(format!(
            "Unable to connect to the server: EOF from {server}"
        )));
    }
    let resp: Response = serde_json::from_str(&answer)
        .map_err(|e| ClientError::Unreachable(format!("bad answer from {server}: {e}")))?;
    if resp.ok {
        Ok(resp.body)
    } else {
        Err(ClientError::Server(resp.body))
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Unreachable(m) => f.write_str(m),
            ClientError::Server(body) => f.write_str(&server_error_text(body)),
        }
    }
}

/// How kubectl prints a server error: `Error from server (NotFound): nodes "x" not found`.
pub fn server_error_text(body: &Value) -> String {
    let msg = body["message"].as_str().unwrap_or("unknown error");
    match body["reason"].as_str() {
        Some(reason) if !reason.is_empty() => format!("Error from server ({reason}): {msg}"),
        _ => format!("Error from server: {msg}"),
    }
}

/// An error body in the shape of a Kubernetes `Status`: message, reason, code.
pub fn error_body(code: u16, reason: &str, message: impl Into<String>) -> Value {
    serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": message.into(), "reason": reason, "code": code})
}

// ---------------------------------------------------------------------------------------
// Credentials and kubeconfigs. kubeadm (K2) writes kubeconfigs with `kubeconfig_yaml`,
// the API server stores the secret in `ClusterState::credentials`, kubectl and the
// kubelet read them back with `load_kubeconfig`.
// ---------------------------------------------------------------------------------------

/// A fresh random secret (64 hex characters) for a credential.
pub fn random_secret() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..32)
        .map(|_| format!("{:02x}", rng.gen::<u8>()))
        .collect()
}

/// Wraps a credential secret into a fake but well-formed private key PEM: the body is
/// the base64 of the secret, wrapped at 64 columns.
pub fn key_pem_for_secret(secret: &str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret.as_bytes());
    let mut out = String::from("-----BEGIN RSA PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str("-----END RSA PRIVATE KEY-----\n");
    out
}

/// The secret inside a key PEM written by [`key_pem_for_secret`] (the inverse).
pub fn secret_from_key_pem(pem: &str) -> String {
    use base64::Engine;
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or(body)
}

/// A kubeconfig in the real shape kubeadm writes (one cluster, one user, one context).
/// `server` is "host:port" (https:// is added); PEMs are base64-encoded into the
/// `*-data` fields.
pub fn kubeconfig_yaml(
    cluster: &str,
    server: &str,
    ca_pem: &str,
    user: &str,
    cert_pem: &str,
    key_pem: &str,
) -> String {
    use base64::Engine;
    let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: https://{server}\n  name: {cluster}\ncontexts:\n- context:\n    cluster: {cluster}\n    user: {user}\n  name: {user}@{cluster}\ncurrent-context: {user}@{cluster}\nkind: Config\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\n",
        ca = b(ca_pem),
        cert = b(cert_pem),
        key = b(key_pem),
    )
}

/// What a client needs from a kubeconfig.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// "host:port" without the scheme.
    pub server: String,
    /// The credential secret (from client-key-data).
    pub credential: String,
}

/// Why a kubeconfig could not be used, worded like client-go.
#[derive(Debug)]
pub enum KubeconfigError {
    /// The file does not exist (kubectl then falls back to localhost:8080).
    Missing,
    /// `error loading config file "P": open P: permission denied` and similar.
    Load(String),
}

/// Reads a kubeconfig: the current context's cluster server and user credential.
pub fn load_kubeconfig(path: &std::path::Path) -> Result<ClientConfig, KubeconfigError> {
    use base64::Engine;
    let p = path.display();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(KubeconfigError::Missing),
        Err(e) => {
            let why = match e.kind() {
                std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
                _ => e.to_string(),
            };
            return Err(KubeconfigError::Load(format!(
                "error loading config file \"{p}\": open {p}: {why}"
            )));
        }
    };
    let bad =
        |why: String| KubeconfigError::Load(format!("error loading config file \"{p}\": {why}"));
    let doc: Value = serde_yaml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let find = |list: &str, name: &str| -> Value {
        doc[list]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["name"].as_str() == Some(name)).cloned())
            .unwrap_or(Value::Null)
    };
    let ctx_name = doc["current-context"].as_str().unwrap_or("");
    let ctx = find("contexts", ctx_name);
    let (cluster, user) = if ctx.is_null() {
        (doc["clusters"][0].clone(), doc["users"][0].clone())
    } else {
        (
            find("clusters", ctx["context"]["cluster"].as_str().unwrap_or("")),
            find("users", ctx["context"]["user"].as_str().unwrap_or("")),
        )
    };
    let server = cluster["cluster"]["server"].as_str().unwrap_or("");
    let server = server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let dec = |v: &Value| {
        v.as_str()
            .and_then(|s| {
                base64::engine::general_purpose::STANDARD
                    .decode(s.trim())
                    .ok()
            })
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default()
    };
    let key_pem = dec(&user["user"]["client-key-data"]);
    Ok(ClientConfig {
        server: if server.is_empty() {
            "localhost:8080".into()
        } else {
            server
        },
        credential: if key_pem.is_empty() {
            user["user"]["token"].as_str().unwrap_or("").to_string()
        } else {
            secret_from_key_pem(&key_pem)
        },
    })
}

impl ClientConfig {
    /// Sends one op with this config's credential.
    pub fn send(&self, op: Op, timeout: Duration) -> Result<Value, ClientError> {
        let req = Request {
            credential: self.credential.clone(),
            op,
        };
        call(&self.server, &req, timeout)
    }
}
