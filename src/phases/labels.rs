//! Phase `labels`: the labels and taints the inventory declares, applied through the
//! control plane with admin credentials (the kubelet may not set role labels itself,
//! reference §7).
//!
//! The plan only previewed these changes; here the node objects are read again (once for
//! the whole phase) right before changing them, so that only the changes still needed
//! run and a taint is removed only if it is really there (removing an absent taint exits
//! non-zero, reference §7). Each node's changes go in one command, ending with the
//! annotations that record which labels and taints the tool manages (see
//! [`crate::cluster`]), so a label or taint dropped from the inventory is removed on a
//! later run while everyone else's stay.

use std::sync::Arc;

use super::{Ctx, Failure, HostFuture};
use crate::cluster::{self, Node};

/// Hosts whose node had label/taint work at planning time, or had no node object yet.
pub fn hosts(ctx: &Ctx) -> Vec<String> {
    ctx.plan.nodes.keys().cloned().collect()
}

/// The node objects as they are now, read by whichever host task asks first.
async fn current_nodes(ctx: &Ctx, asking: &str) -> Result<Vec<Node>, Failure> {
    ctx.nodes_now
        .get_or_init(|| async {
            let step = "kubectl get nodes";
            let out = ctx
                .exec(&ctx.first_cp, asking, step, &cluster::get_nodes_command())
                .await?;
            cluster::parse_nodes(&out.stdout).map_err(|e| Failure::new(step, e.to_string()))
        })
        .await
        .clone()
}

pub fn run(ctx: Arc<Ctx>, host: String) -> HostFuture {
    Box::pin(async move {
        let nodes = current_nodes(&ctx, &host).await?;
        let node = nodes.iter().find(|n| n.name == host).ok_or_else(|| {
            Failure::new(
                "labels",
                format!("the cluster has no node named {host} (did its join fail?)"),
            )
        })?;
        let changes = cluster::diff(ctx.host(&host), node);
        if changes.is_empty() {
            return Ok(false);
        }
        let step = changes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        ctx.exec(
            &ctx.first_cp,
            &host,
            &step,
            &cluster::changes_command(&host, &changes),
        )
        .await?;
        Ok(true)
    })
}
