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
    Apply { object: Value },
    Delete {
        kind: String,
        namespace: Option<String>,
        name: String,
    },
    /// Kubelet heartbeat: creates the Node on first call, refreshes its Ready condition.
    Heartbeat { node: Value },
    /// Join with a bootstrap token; returns the kubelet credential and cluster info.
    Join {
        token: String,
        ca_cert_hash: String,
        node_name: String,
        control_plane: bool,
        certificate_key: Option<String>,
    },
    /// Anything else a stand-in needs (token create, upload-certs, cluster version ...),
    /// named by `name` with free-form arguments.
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
    Unreachable(String),
    /// The server answered with an error body.
    Server(Value),
}

/// Sends one request to `server` ("10.0.0.10:6443") and waits for the answer.
pub fn call(server: &str, req: &Request, timeout: Duration) -> Result<Value, ClientError> {
    let unreachable = |_e: std::io::Error| {
        ClientError::Unreachable(format!(
            "The connection to the server {server} was refused - did you specify the right host or port?"
        ))
    };
    let addr = server
        .parse()
        .map_err(|_| ClientError::Unreachable(format!("invalid server address {server}")))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(unreachable)?;
    stream.set_read_timeout(Some(timeout)).ok();
    let mut line = serde_json::to_string(req).unwrap();
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(unreachable)?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .map_err(unreachable)?;
    let resp: Response = serde_json::from_str(&answer)
        .map_err(|e| ClientError::Unreachable(format!("bad answer from {server}: {e}")))?;
    if resp.ok {
        Ok(resp.body)
    } else {
        Err(ClientError::Server(resp.body))
    }
}
