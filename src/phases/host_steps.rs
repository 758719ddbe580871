//! Phases `prereqs`, `runtime` and `packages`: the host-scoped playbooks. Their steps
//! were planned per host from its facts (src/plan.rs), each with the reason it is
//! needed; a phase runs exactly those, in order, stopping the host at its first failing
//! step. A host whose plan for the phase is empty is not part of the phase.

use std::sync::Arc;

use super::cluster_plan::KubeadmState;
use super::{Ctx, HostFuture};
use crate::facts::HostFacts;

/// The playbooks behind the three phases (names as in playbooks/*.yaml).
pub const PREREQS: &str = "prereqs";
pub const RUNTIME: &str = "runtime";
pub const PACKAGES: &str = "kubernetes-packages";

/// What the facts say about kubeadm on this host (reference §5).
pub fn kubeadm_state(f: &HostFacts) -> KubeadmState {
    KubeadmState {
        admin_conf: f.kubernetes.admin_conf,
        apiserver_manifest: f.kubernetes.apiserver_manifest,
        joined: f.kubernetes.kubelet_conf,
    }
}

fn hosts_of(ctx: &Ctx, playbook: &str) -> Vec<String> {
    ctx.inv
        .hosts
        .iter()
        .filter(|h| {
            ctx.host_plans
                .get(&h.name)
                .is_some_and(|p| !p.phase(playbook).is_empty())
        })
        .map(|h| h.name.clone())
        .collect()
}

fn run_playbook(ctx: Arc<Ctx>, host: String, playbook: &'static str) -> HostFuture {
    Box::pin(async move {
        let steps = ctx.host_plans[&host].phase(playbook).to_vec();
        ctx.run_steps(&host, &steps).await?;
        Ok(!steps.is_empty())
    })
}

pub fn prereqs_hosts(ctx: &Ctx) -> Vec<String> {
    hosts_of(ctx, PREREQS)
}
pub fn run_prereqs(ctx: Arc<Ctx>, host: String) -> HostFuture {
    run_playbook(ctx, host, PREREQS)
}
pub fn runtime_hosts(ctx: &Ctx) -> Vec<String> {
    hosts_of(ctx, RUNTIME)
}
pub fn run_runtime(ctx: Arc<Ctx>, host: String) -> HostFuture {
    run_playbook(ctx, host, RUNTIME)
}
pub fn packages_hosts(ctx: &Ctx) -> Vec<String> {
    hosts_of(ctx, PACKAGES)
}
pub fn run_packages(ctx: Arc<Ctx>, host: String) -> HostFuture {
    run_playbook(ctx, host, PACKAGES)
}
