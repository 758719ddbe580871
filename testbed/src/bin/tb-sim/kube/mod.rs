//! Stand-ins for Kubernetes: kubeadm, kubectl, kubelet, and the simulated API server.

pub mod api;
mod apiserver;
pub mod objects;
pub mod scheduler;
pub mod state;

use crate::{Daemon, Standin};

pub fn lookup(_name: &str) -> Option<Standin> {
    None
}

pub fn daemon(unit: &str) -> Option<Daemon> {
    match unit {
        "kube-apiserver" => Some(apiserver::daemon),
        _ => None,
    }
}
