//! The cluster's state, kept by the API server on the first control plane's filesystem
//! (`/var/lib/etcd/testbed-cluster.json`, so `kubeadm reset` wiping /var/lib/etcd wipes
//! the cluster). `kubeadm init` writes the initial state, then starts the server.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

pub const STATE_FILE: &str = "/var/lib/etcd/testbed-cluster.json";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterState {
    /// The control plane's version, e.g. "v1.34.2".
    pub version: String,
    /// "address:port" the cluster advertises (controlPlaneEndpoint or the init address).
    pub endpoint: String,
    /// sha256 hex of the CA's public key, as in `--discovery-token-ca-cert-hash sha256:…`.
    pub ca_cert_hash: String,
    /// The CA certificate PEM (/etc/kubernetes/pki/ca.crt), handed to joining nodes.
    #[serde(default)]
    pub ca_cert: String,
    /// Credentials accepted by the server: secret -> identity ("kubernetes-admin",
    /// "system:node:NAME").
    pub credentials: BTreeMap<String, String>,
    /// Bootstrap tokens. The `bootstrap-token-<id>` Secrets in kube-system are the
    /// source of truth when present (their `expiration` is honoured strictly); this list
    /// is a fallback for tokens without a Secret.
    #[serde(default)]
    pub tokens: Vec<BootstrapToken>,
    /// The key from `kubeadm init phase upload-certs --upload-certs`, with its expiry.
    pub certificate_key: Option<(String, f64)>,
    /// The CNI applied with kubectl, e.g. {"name": "calico", "version": "v3.30.3"}.
    pub cni: Option<Value>,
    /// Objects by kind, then "namespace/name" (or "name" for cluster-scoped kinds).
    pub objects: BTreeMap<String, BTreeMap<String, Value>>,
    /// Seconds since epoch of each node's last kubelet heartbeat.
    #[serde(default)]
    pub heartbeats: BTreeMap<String, f64>,
    /// Monotonic counter behind `metadata.resourceVersion`.
    #[serde(default)]
    pub resource_version: u64,
    /// What each node's kubelet last reported about its runtime:
    /// `{"ready": bool, "message": "..."}`.
    #[serde(default)]
    pub kubelet_reports: BTreeMap<String, Value>,
}

impl ClusterState {
    /// Reads a state file; None when it doesn't exist or can't be parsed.
    pub fn load(path: &std::path::Path) -> Option<ClusterState> {
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes the state atomically (temporary sibling + rename).
    pub fn save(&self, path: &std::path::Path) -> std::io::Result<()> {
        let data = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        crate::common::write_atomic(path, &data)
    }

    /// The object of `kind` stored under `key` ("namespace/name" or "name").
    pub fn object(&self, kind: &str, key: &str) -> Option<&Value> {
        self.objects.get(kind).and_then(|m| m.get(key))
    }

    /// All objects of a kind, in key order.
    pub fn list(&self, kind: &str) -> Vec<&Value> {
        self.objects
            .get(kind)
            .map(|m| m.values().collect())
            .unwrap_or_default()
    }

    /// Creates or replaces an object, filling the server-owned metadata (uid,
    /// creationTimestamp, resourceVersion; kept from the stored object on replace).
    /// Returns whether anything changed; an identical object is left alone.
    pub fn put(&mut self, mut obj: Value, now: f64) -> bool {
        use super::objects;
        let kind = objects::kind(&obj).to_string();
        let key = objects::key_of(&obj);
        let existing = self.objects.get(&kind).and_then(|m| m.get(&key));
        {
            let md = objects::obj_mut(&mut obj, "metadata");
            let from = |f: &str| existing.map(|e| &e["metadata"][f]);
            for f in ["uid", "creationTimestamp"] {
                match from(f) {
                    Some(v) if !v.is_null() => {
                        md.insert(f.into(), v.clone());
                    }
                    _ if !md.contains_key(f) => {
                        let v = if f == "uid" {
                            objects::uuid()
                        } else {
                            objects::rfc3339(now)
                        };
                        md.insert(f.into(), Value::String(v));
                    }
                    _ => {}
                }
            }
            if let Some(v) = from("resourceVersion") {
                md.insert("resourceVersion".into(), v.clone());
            }
        }
        if existing == Some(&obj) {
            return false;
        }
        self.resource_version += 1;
        obj["metadata"]["resourceVersion"] = Value::String(self.resource_version.to_string());
        self.objects.entry(kind).or_default().insert(key, obj);
        true
    }

    /// Replaces one top-level field (e.g. "status") of a stored object if it differs,
    /// without copying the object when nothing changed. Returns whether it changed.
    pub fn set_field(&mut self, kind: &str, key: &str, field: &str, value: Value) -> bool {
        let Some(obj) = self.objects.get_mut(kind).and_then(|m| m.get_mut(key)) else {
            return false;
        };
        if obj[field] == value {
            return false;
        }
        obj[field] = value;
        self.resource_version += 1;
        obj["metadata"]["resourceVersion"] = Value::String(self.resource_version.to_string());
        true
    }

    /// Keys of the objects of a kind that satisfy `f`.
    pub fn keys_where(&self, kind: &str, f: impl Fn(&Value) -> bool) -> Vec<String> {
        self.objects
            .get(kind)
            .map(|m| {
                m.iter()
                    .filter(|(_, v)| f(v))
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Removes an object; returns it.
    pub fn remove(&mut self, kind: &str, key: &str) -> Option<Value> {
        let v = self.objects.get_mut(kind)?.remove(key);
        if v.is_some() {
            self.resource_version += 1;
        }
        v
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BootstrapToken {
    /// "abcdef.0123456789abcdef"
    pub token: String,
    /// Seconds since epoch; None = never expires (ttl 0).
    pub expires: Option<f64>,
}
