//! Stand-ins for Kubernetes: kubeadm, kubectl, kubelet, and the simulated API server.

pub mod api;
pub mod apiserver;
pub mod cni;
pub mod kubeadm;
pub mod kubectl;
pub mod kubelet;
pub mod mirror;
pub mod objects;
pub mod pki;
pub mod podrefs;
pub mod podsync;
pub mod prober;
pub mod realnode;
pub mod sandbox;
pub mod scheduler;
pub mod state;
pub mod staticpods;
pub mod tlsboot;

use crate::{Daemon, Standin};

pub fn lookup(name: &str) -> Option<Standin> {
    match name {
        "kubeadm" => Some(kubeadm::kubeadm),
        "kubelet" => Some(kubelet::standin),
        "kubectl" => Some(kubectl::standin),
        _ => None,
    }
}

pub fn daemon(unit: &str) -> Option<Daemon> {
    match unit {
        "kube-apiserver" => Some(apiserver::daemon),
        "kubelet" => Some(kubelet::daemon),
        "real-kubelet" => Some(staticpods::daemon),
        _ => None,
    }
}
