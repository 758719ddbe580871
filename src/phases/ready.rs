//! Phase `ready`: wait until every node is Ready, then check the whole cluster against
//! the inventory. `up` exits 0 only if every inventory host is a Ready node at the
//! inventory's version with exactly its declared labels and taints.
//!
//! `kubectl wait --for=condition=Ready node --all` (reference §6) does the waiting, but
//! it only knows the nodes that exist and a node may flap right after it; so the node
//! objects are then polled until everything holds or `--timeout` (counted from the start
//! of this phase) runs out. Only readiness is waited for: a wrong version, label or taint
//! will not fix itself and fails at once; running out of `--timeout` while only waiting
//! is a timeout ([`Failure::timeout`], exit code 7), not a failed step.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Ctx, Failure, HostFuture};
use crate::cluster::kubectl_duration;
use crate::cluster::{self, KUBECTL};
use crate::ssh::RemoteCommand;

/// Between two reads of the node objects while waiting.
const POLL: Duration = Duration::from_secs(2);

/// The control plane waits and checks, once, whenever anything was planned (a node was
/// not Ready, or something changed that could affect readiness, labels or taints).
pub fn hosts(ctx: &Ctx) -> Vec<String> {
    if ctx.has_work() {
        vec![ctx.first_cp.clone()]
    } else {
        Vec::new()
    }
}

/// `kubectl wait` for every node, bounded by `timeout`.
pub fn wait_command(timeout: Duration) -> RemoteCommand {
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
        let deadline = Instant::now() + ctx.timeout;
        ctx.exec(
            &host,
            &host,
            "kubectl wait Ready",
            &wait_command(ctx.timeout),
        )
        .await?;
        loop {
            let problems = check(&ctx, &host).await?;
            if problems.is_empty() {
                return Ok(false);
            }
            let only_waiting = problems.iter().all(|p| p.waiting);
            let text = || {
                let text: Vec<String> = problems.iter().map(|p| p.text.clone()).collect();
                text.join("; ")
            };
            if !only_waiting {
                return Err(Failure::new("verify nodes", text()));
            }
            if Instant::now() + POLL > deadline {
                // Only time could have fixed it, and --timeout is used up: a timeout
                // (its own exit code), not a broken step.
                return Err(Failure::timeout("verify nodes", text()));
            }
            tokio::time::sleep(POLL).await;
        }
    })
}

/// Something that keeps the cluster from matching the inventory.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub text: String,
    /// Time may fix it (a node not registered or not Ready yet).
    pub waiting: bool,
}

/// Reads every node object and lists what still differs from the inventory.
async fn check(ctx: &Ctx, cp: &str) -> Result<Vec<Problem>, Failure> {
    let step = "verify nodes";
    let out = ctx
        .exec(cp, cp, step, &cluster::get_nodes_command())
        .await?;
    let nodes = cluster::parse_nodes(&out.stdout).map_err(|e| Failure::new(step, e.to_string()))?;
    Ok(problems(&ctx.inv, &nodes))
}

/// What keeps `nodes` from matching the inventory, one sentence per problem.
pub fn problems(inv: &crate::inventory::Inventory, nodes: &[cluster::Node]) -> Vec<Problem> {
    let version = &inv.cluster.kubernetes_version;
    let mut problems = Vec::new();
    let mut push = |text: String, waiting: bool| problems.push(Problem { text, waiting });
    for host in &inv.hosts {
        let Some(node) = nodes.iter().find(|n| n.name == host.name) else {
            push(format!("{} is not a node of the cluster", host.name), true);
            continue;
        };
        if !node.ready {
            push(format!("{} is not Ready", host.name), true);
        }
        if !node.has_version(version) {
            push(
                format!(
                    "{} runs kubelet {} instead of v{version}",
                    host.name, node.kubelet_version
                ),
                false,
            );
        }
        for change in cluster::diff(host, node) {
            push(format!("{} still needs: {change}", host.name), false);
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phases::cluster_plan::tests::node;

    #[test]
    fn only_readiness_is_worth_waiting_for() {
        let inv = super::super::cluster_plan::tests::inv();
        let good = vec![
            node("master", &[("type", "mysql")], vec![], true),
            node("worker1", &[("type", "wordpress")], vec![], true),
        ];
        assert!(problems(&inv, &good).is_empty());

        let p = problems(&inv, &good[..1]);
        assert_eq!(p.len(), 1);
        assert!(p[0].waiting, "{p:?}");
        assert_eq!(p[0].text, "worker1 is not a node of the cluster");

        let mut bad = good.clone();
        bad[0].ready = false;
        bad[1].labels.clear();
        bad[1].kubelet_version = "v1.34.1".into();
        let p = problems(&inv, &bad);
        assert_eq!(
            p.iter()
                .map(|p| (p.text.as_str(), p.waiting))
                .collect::<Vec<_>>(),
            vec![
                ("master is not Ready", true),
                ("worker1 runs kubelet v1.34.1 instead of v1.34.2", false),
                ("worker1 still needs: label type=wordpress", false),
            ]
        );
    }
}
