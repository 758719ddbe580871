//! Phase `init`: `kubeadm init --config` on the first control plane (playbooks/init.yaml:
//! the kubeadm configuration file, `kubeadm init`, root's kubeconfig). Planned up front
//! from that host's facts like any host playbook, so a converged control plane plans
//! nothing here.

use std::sync::Arc;

use super::{Ctx, HostFuture};

pub const PLAYBOOK: &str = "init";

pub fn hosts(ctx: &Ctx) -> Vec<String> {
    if ctx.plan.init.is_empty() {
        Vec::new()
    } else {
        vec![ctx.first_cp.clone()]
    }
}

pub fn run(ctx: Arc<Ctx>, host: String) -> HostFuture {
    Box::pin(async move {
        let steps = ctx.plan.init.clone();
        ctx.run_steps(&host, &steps).await?;
        Ok(true)
    })
}
