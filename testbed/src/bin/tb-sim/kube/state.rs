//! The cluster's state, kept by the API server on the first control plane's filesystem
//! (`/var/lib/etcd/testbed-cluster.json`, so `kubeadm reset` wiping /var/lib/etcd wipes
//! the cluster). `kubeadm init` writes the initial state, then starts the server.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

pub const STATE_FILE: &str = "/var/lib/etcd/testbed-cluster.json";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClusterState {
    /// The control plane's version, e.g. "v1.34.2".
    pub version: String,
    /// "address:port" the cluster advertises (controlPlaneEndpoint or the init address).
    pub endpoint: String,
    /// sha256 hex of the CA's public key, as in `--discovery-token-ca-cert-hash sha256:…`.
    pub ca_cert_hash: String,
    /// Credentials accepted by the server: secret -> identity ("kubernetes-admin",
    /// "system:node:NAME").
    pub credentials: BTreeMap<String, String>,
    pub tokens: Vec<BootstrapToken>,
    /// The key from `kubeadm init phase upload-certs --upload-certs`, with its expiry.
    pub certificate_key: Option<(String, f64)>,
    /// The CNI applied with kubectl, e.g. {"name": "calico", "version": "v3.30.3"}.
    pub cni: Option<Value>,
    /// Objects by kind, then "namespace/name" (or "name" for cluster-scoped kinds).
    pub objects: BTreeMap<String, BTreeMap<String, Value>>,
    /// Seconds since epoch of each node's last kubelet heartbeat.
    pub heartbeats: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BootstrapToken {
    /// "abcdef.0123456789abcdef"
    pub token: String,
    /// Seconds since epoch; None = never expires (ttl 0).
    pub expires: Option<f64>,
}
