//! Phase `labels`: the labels and taints the inventory declares, applied through the
//! control plane with admin credentials (the kubelet may not set role labels itself,
//! reference §7).
//!
//! The plan only previewed these changes; here each node object is read again right
//! before changing it, so that only the changes still needed run and a taint is removed
//! only if it is really there (removing an absent taint exits non-zero, reference §7).

use std::sync::Arc;

use super::{Ctx, Failure, HostFuture};
use crate::cluster;

/// Hosts whose node had label/taint work at planning time, or had no node object yet.
pub fn hosts(ctx: &Ctx) -> Vec<String> {
    ctx.plan.nodes.keys().cloned().collect()
}

pub fn run(ctx: Arc<Ctx>, host: String) -> HostFuture {
    Box::pin(async move {
        let cp = ctx.first_cp.clone();
        let step = "kubectl get node";
        let out = ctx
            .exec(&cp, &host, step, &cluster::get_node_command(&host))
            .await?;
        let node =
            cluster::parse_node(&out.stdout).map_err(|e| Failure::new(step, e.to_string()))?;
        let changes = cluster::diff(ctx.host(&host), &node);
        for change in &changes {
            let step = change.to_string();
            ctx.exec(&cp, &host, &step, &change.command(&host)).await?;
        }
        Ok(!changes.is_empty())
    })
}
