//! Phase `ready`: wait until every node is Ready, then check the whole cluster once more
//! against the inventory. `up` exits 0 only if every inventory host is a Ready node at
//! the inventory's version with exactly its declared labels and taints.

use std::sync::Arc;

use super::{Ctx, Failure, HostFuture};
use crate::cli::kubectl_duration;
use crate::cluster::{self, KUBECTL};
use crate::ssh::RemoteCommand;

/// The control plane waits and checks, once, whenever anything was planned (a node was
/// not Ready, or something changed that could affect readiness, labels or taints).
pub fn hosts(ctx: &Ctx) -> Vec<String> {
    if ctx.has_work() {
        vec![ctx.first_cp.clone()]
    } else {
        Vec::new()
    }
}

/// `kubectl wait` for every node, bounded by `--timeout` (reference §6).
pub fn wait_command(timeout: std::time::Duration) -> RemoteCommand {
    RemoteCommand {
        script: format!(
            "{KUBECTL} wait --for=condition=Ready node --all --timeout={}",
            kubectl_duration(timeout)
        ),
        root: true,
        ..Default::default()
    }
}

pub fn run(ctx: Arc<Ctx>, host: String) -> HostFuture {
    Box::pin(async move {
        ctx.exec(
            &host,
            &host,
            "kubectl wait Ready",
            &wait_command(ctx.timeout),
        )
        .await?;
        verify(&ctx, &host).await?;
        Ok(false)
    })
}

/// Reads every node object and lists what still differs from the inventory.
pub async fn verify(ctx: &Ctx, cp: &str) -> Result<(), Failure> {
    let step = "verify nodes";
    let out = ctx
        .exec(cp, cp, step, &cluster::get_nodes_command())
        .await?;
    let nodes = cluster::parse_nodes(&out.stdout).map_err(|e| Failure::new(step, e.to_string()))?;
    let problems = problems(ctx, &nodes);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(step, problems.join("; ")))
    }
}

/// What keeps the cluster from matching the inventory, one sentence per problem.
pub fn problems(ctx: &Ctx, nodes: &[cluster::Node]) -> Vec<String> {
    let version = &ctx.inv.cluster.kubernetes_version;
    let mut problems = Vec::new();
    for host in &ctx.inv.hosts {
        let Some(node) = nodes.iter().find(|n| n.name == host.name) else {
            problems.push(format!("{} is not a node of the cluster", host.name));
            continue;
        };
        if !node.ready {
            problems.push(format!("{} is not Ready", host.name));
        }
        if !node.has_version(version) {
            problems.push(format!(
                "{} runs kubelet {} instead of v{version}",
                host.name, node.kubelet_version
            ));
        }
        for change in cluster::diff(host, node) {
            problems.push(format!("{} still needs: {change}", host.name));
        }
    }
    problems
}
