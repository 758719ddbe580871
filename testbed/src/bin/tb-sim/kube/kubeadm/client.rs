//! kubeadm's view of the API server: loading a kubeconfig, sending requests, and the
//! error texts Go's HTTP client produces when the server can't be reached.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::files;
use crate::kube::api::{self, ClientError, Op, Request};

/// A server address plus the credential kubeadm presents.
#[derive(Debug, Clone)]
pub struct Client {
    pub server: String,
    pub credential: String,
}

/// Why a request failed.
#[derive(Debug, Clone)]
pub enum CallError {
    /// Nothing answered: `dial tcp 10.0.0.10:6443: connect: connection refused`.
    Unreachable(String),
    /// The server answered with an error.
    Server { message: String, code: i64 },
}

impl CallError {
    pub fn text(&self) -> String {
        match self {
            CallError::Unreachable(s) => s.clone(),
            CallError::Server { message, .. } => message.clone(),
        }
    }
    pub fn not_found(&self) -> bool {
        matches!(self, CallError::Server { code: 404, .. })
    }
}

impl Client {
    /// Loads a kubeconfig file with kubeadm's wording when it is missing.
    pub fn from_kubeconfig(path: &str) -> Result<Client, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
                _ => e.to_string(),
            };
            format!("open {path}: {why}")
        })?;
        let k = files::parse_kubeconfig(&text)
            .ok_or_else(|| format!("failed to load kubeconfig {path}: invalid configuration"))?;
        Ok(Client {
            server: k.server,
            credential: k.secret,
        })
    }

    /// `/etc/kubernetes/admin.conf` (or `--kubeconfig`), as `kubeadm token` loads it.
    pub fn admin(path: Option<&str>) -> Result<Client, String> {
        let p = path.unwrap_or(files::ADMIN_CONF);
        Client::from_kubeconfig(p).map_err(|e| format!("failed to load admin kubeconfig: {e}"))
    }

    /// One request with a 10 s timeout, like client-go's per-request timeout.
    pub fn call(&self, op: Op) -> Result<Value, CallError> {
        call(&self.server, &self.credential, op)
    }

    /// Retries `op` while the server is unreachable, up to `timeout`.
    pub fn call_retry(&self, op: Op, timeout: Duration) -> Result<Value, CallError> {
        let start = Instant::now();
        loop {
            match self.call(op.clone()) {
                Err(CallError::Unreachable(e)) if start.elapsed() < timeout => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(200));
                }
                other => return other,
            }
        }
    }

    pub fn get(&self, kind: &str, namespace: Option<&str>, name: &str) -> Result<Value, CallError> {
        self.call(Op::Get {
            kind: kind.into(),
            namespace: namespace.map(String::from),
            name: name.into(),
        })
    }

    pub fn apply(&self, object: Value) -> Result<Value, CallError> {
        self.call(Op::Apply { object })
    }

    pub fn patch(
        &self,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        patch: Value,
    ) -> Result<Value, CallError> {
        self.call(Op::Patch {
            kind: kind.into(),
            namespace: namespace.map(String::from),
            name: name.into(),
            patch,
        })
    }

    pub fn delete(
        &self,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, CallError> {
        self.call(Op::Delete {
            kind: kind.into(),
            namespace: namespace.map(String::from),
            name: name.into(),
        })
    }

    pub fn list(&self, kind: &str, namespace: Option<&str>) -> Result<Vec<Value>, CallError> {
        let v = self.call(Op::List {
            kind: kind.into(),
            namespace: namespace.map(String::from),
        })?;
        Ok(match v {
            Value::Array(a) => a,
            other => other["items"].as_array().cloned().unwrap_or_default(),
        })
    }
}

/// Sends one request; maps transport failures to Go's dial error text.
pub fn call(server: &str, credential: &str, op: Op) -> Result<Value, CallError> {
    let req = Request {
        credential: credential.to_string(),
        op,
    };
    api::call(server, &req, Duration::from_secs(10)).map_err(|e| match e {
        ClientError::Unreachable(text) => CallError::Unreachable(dial_text(server, &text)),
        ClientError::Server(body) => CallError::Server {
            message: body["message"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| body.to_string()),
            code: body["code"].as_i64().unwrap_or(500),
        },
    })
}

/// Go's dial error out of kubectl's wording of it.
fn dial_text(server: &str, kubectl: &str) -> String {
    if let Some(rest) = kubectl.strip_prefix("Unable to connect to the server: ") {
        rest.to_string()
    } else {
        format!("dial tcp {server}: connect: connection refused")
    }
}

/// The URL kubeadm's client-go would have used for an op, for error messages.
pub fn url(server: &str, kind: &str, namespace: Option<&str>, name: Option<&str>) -> String {
    let plural = crate::kube::objects::resource_of(kind, "").plural;
    let group_path = match kind {
        "Deployment" | "DaemonSet" | "ReplicaSet" => "apis/apps/v1".to_string(),
        _ => "api/v1".to_string(),
    };
    let ns = namespace
        .map(|n| format!("namespaces/{n}/"))
        .unwrap_or_default();
    let name = name.map(|n| format!("/{n}")).unwrap_or_default();
    format!("https://{server}/{group_path}/{ns}{plural}{name}?timeout=10s")
}
