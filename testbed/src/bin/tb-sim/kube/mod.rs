//! The kubelet stand-in: the one Kubernetes program the testbed still imitates (the real
//! kubeadm, kubectl and control plane run from testbed/k8s/; see
//! testbed/STANDINS-kubelet-real.md for each behaviour and its upstream source).

pub mod apiclient;
pub mod cni;
pub mod images;
pub mod kubelet;
pub mod mirror;
pub mod podrefs;
pub mod podsync;
pub mod prober;
pub mod realnode;
pub mod sandbox;
pub mod staticpods;
pub mod tlsboot;

use crate::{Daemon, Standin};

pub fn lookup(name: &str) -> Option<Standin> {
    match name {
        "kubelet" => Some(kubelet::standin),
        _ => None,
    }
}

pub fn daemon(unit: &str) -> Option<Daemon> {
    match unit {
        "kubelet" => Some(kubelet::daemon),
        "real-kubelet" => Some(staticpods::daemon),
        _ => None,
    }
}
