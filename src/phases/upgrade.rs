//! Phase `upgrade`: moves the nodes to the inventory's Kubernetes version the way
//! kubeadm's upgrade guide does (reference §8), hop by hop (one minor at a time).
//!
//! In each hop the control planes go first, one at a time (the first one runs `kubeadm
//! upgrade apply`, which moves the cluster), then the workers. A worker's steps before its
//! upgrade window (repository, kubeadm package) disturb nothing, so all workers do them
//! at once (bounded by `--parallelism`); from `kubeadm upgrade node` through the drain to
//! the uncordon at most `--max-unavailable` workers are in their window, and the next one
//! starts only when one is back, so the cap holds at every moment, not per batch. Each
//! node's steps are planned again
//! right before it is worked on, from fresh facts and its fresh node object
//! ([`upgrade_plan::node_steps`]): a node an earlier, interrupted run already finished
//! plans nothing and is not touched; a half-done one resumes at its first missing step.
//!
//! A failure stops the rollout: nodes already started finish, no new one starts, the
//! later phases do not run. A drain that does not finish in `--drain-timeout` (a
//! PodDisruptionBudget that allows no eviction, a pod that will not go) is never forced:
//! the node is uncordoned again and reported. A failure after the drain leaves the node
//! cordoned (its kubelet may be half-upgraded) and annotated, and the next `up` resumes
//! it and uncordons it. No fixed sleeps: every wait is a `kubectl wait` on a condition.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::upgrade_plan::{self, hop_name, Timeouts};
use super::{Ctx, Failure, PhaseFuture};
use crate::cluster::kubectl_duration;
use crate::cluster::{self, Node};
use crate::facts::{self, HostFacts};
use crate::inventory::Role;
use crate::plan::PlannedStep;

/// The nodes the upgrade works on (control planes first), when there is an upgrade.
pub fn hosts(ctx: &Ctx) -> Vec<String> {
    match &ctx.plan.upgrade {
        Some(u) if !u.is_empty() => upgrade_plan::upgrade_hosts(&ctx.inv, &ctx.facts)
            .into_iter()
            .map(|h| h.name.clone())
            .collect(),
        _ => Vec::new(),
    }
}

pub fn run(ctx: Arc<Ctx>, hosts: Vec<String>) -> PhaseFuture {
    Box::pin(rollout(ctx, hosts))
}

/// What happened to one node over all hops.
#[derive(Default)]
struct Tally {
    changed: bool,
    elapsed: Duration,
    failed: bool,
}

async fn rollout(ctx: Arc<Ctx>, hosts: Vec<String>) -> bool {
    let Some(plan) = ctx.plan.upgrade.clone() else {
        return true;
    };
    let (cps, workers): (Vec<String>, Vec<String>) = hosts
        .iter()
        .cloned()
        .partition(|h| ctx.host(h).role == Role::ControlPlane);
    let mut tally: BTreeMap<String, Tally> = hosts
        .iter()
        .map(|h| (h.clone(), Tally::default()))
        .collect();
    let mut ok = true;
    'hops: for hop in &plan.hops {
        ctx.progress.info(&format!("upgrade: to {}", hop_name(hop)));
        // The first control plane resolves an intermediate hop's patch ("1.33" ->
        // "1.33.7"); the other nodes go to exactly that.
        let mut version = hop.clone();
        for cp in &cps {
            let started = Instant::now();
            let r = upgrade_node(&ctx, cp, &version).await;
            let t = tally.get_mut(cp).expect("tallied");
            t.elapsed += started.elapsed();
            match r {
                Ok((changed, resolved)) => {
                    t.changed |= changed;
                    version = resolved;
                }
                Err(f) => {
                    t.failed = true;
                    ctx.host_finished(cp, &Err(f), t.elapsed);
                    ok = false;
                    break 'hops;
                }
            }
        }
        if !upgrade_workers(&ctx, &workers, &version, plan.max_unavailable, &mut tally).await {
            ok = false;
            break;
        }
    }
    for (host, t) in &tally {
        if t.failed {
            continue;
        }
        if ok || t.changed {
            ctx.host_finished(host, &Ok(t.changed), t.elapsed);
        } else {
            ctx.host_skipped(host);
        }
    }
    ok
}

/// One hop for the workers. Their steps before the upgrade window run on all of them at
/// once (bounded by `--parallelism`); the windows are entered in inventory order, at most
/// `max_unavailable` at once, and after a failure no new one starts. Returns false if any
/// failed or was left out (reported already).
async fn upgrade_workers(
    ctx: &Arc<Ctx>,
    workers: &[String],
    version: &str,
    max_unavailable: usize,
    tally: &mut BTreeMap<String, Tally>,
) -> bool {
    let slots = Arc::new(tokio::sync::Semaphore::new(max_unavailable.max(1)));
    let prepares = Arc::new(tokio::sync::Semaphore::new(ctx.parallelism));
    let stop = Arc::new(AtomicBool::new(false));
    let turns = Turns::new(workers.len());
    let mut tasks = tokio::task::JoinSet::new();
    for (i, w) in workers.iter().enumerate() {
        let (ctx, w, version) = (Arc::clone(ctx), w.clone(), version.to_string());
        let (slots, prepares, stop) =
            (Arc::clone(&slots), Arc::clone(&prepares), Arc::clone(&stop));
        let turns = Arc::clone(&turns);
        tasks.spawn(async move {
            let started = Instant::now();
            // Passed on every path (also early returns): later workers wait for it.
            let pass = Pass(Arc::clone(&turns), i);
            let permit = prepares.acquire_owned().await.expect("semaphore closed");
            if stop.load(Ordering::SeqCst) {
                return (w, Outcome::LeftOut(false), started.elapsed());
            }
            let prepared = prepare(&ctx, &w, &version).await;
            drop(permit);
            let outcome = match prepared {
                Err(f) => Outcome::Failed(false, f),
                Ok(work) if work.window.is_empty() => Outcome::Done(work.changed),
                Ok(work) => {
                    // Out of service from here: in inventory order, wait for a slot;
                    // nothing new after a failure.
                    turns.wait(i).await;
                    let _slot = slots.acquire_owned().await.expect("semaphore closed");
                    drop(pass);
                    if stop.load(Ordering::SeqCst) {
                        Outcome::LeftOut(work.changed)
                    } else {
                        let changed = work.changed;
                        match finish(&ctx, &w, work).await {
                            Ok((c, _)) => Outcome::Done(c),
                            Err(f) => Outcome::Failed(changed, f),
                        }
                    }
                }
            };
            if matches!(outcome, Outcome::Failed(..)) {
                stop.store(true, Ordering::SeqCst);
            }
            (w, outcome, started.elapsed())
        });
    }
    let mut ok = true;
    while let Some(joined) = tasks.join_next().await {
        let Ok((w, outcome, elapsed)) = joined else {
            ok = false; // a panic in a task (a bug); its host stays unreported
            continue;
        };
        let t = tally.get_mut(&w).expect("tallied");
        t.elapsed += elapsed;
        match outcome {
            Outcome::Done(changed) => t.changed |= changed,
            Outcome::LeftOut(changed) => {
                t.changed |= changed;
                ok = false;
            }
            Outcome::Failed(changed, f) => {
                t.changed |= changed;
                t.failed = true;
                ctx.host_finished(&w, &Err(f), t.elapsed);
                ok = false;
            }
        }
    }
    ok
}

/// Lets workers enter their upgrade windows in inventory order, whatever order their
/// preparations finish in: worker i waits until every worker before it took its slot or
/// needs none (failed, nothing to do, left out).
struct Turns {
    passed: std::sync::Mutex<Vec<bool>>,
    /// How many workers from the first on have passed.
    next: tokio::sync::watch::Sender<usize>,
}

impl Turns {
    fn new(workers: usize) -> Arc<Turns> {
        Arc::new(Turns {
            passed: std::sync::Mutex::new(vec![false; workers]),
            next: tokio::sync::watch::channel(0).0,
        })
    }

    async fn wait(&self, i: usize) {
        let mut next = self.next.subscribe();
        // The sender lives in self, so the channel cannot close while we wait.
        let _ = next.wait_for(|n| *n >= i).await;
    }

    fn pass(&self, i: usize) {
        let mut passed = self.passed.lock().unwrap_or_else(|e| e.into_inner());
        passed[i] = true;
        let next = passed.iter().take_while(|p| **p).count();
        self.next.send_replace(next);
    }
}

/// Worker i's turn, passed when dropped.
struct Pass(Arc<Turns>, usize);

impl Drop for Pass {
    fn drop(&mut self) {
        self.0.pass(self.1);
    }
}

/// How one worker's hop ended (the bool: whether anything changed on it).
enum Outcome {
    Done(bool),
    /// Prepared, but not drained: the upgrade stopped after another node failed.
    LeftOut(bool),
    Failed(bool, Failure),
}

/// Moves one node to `hop` ("1.34.2", or "1.33" on the first control plane = the newest
/// 1.33 patch). Ok((changed, the exact version)).
async fn upgrade_node(ctx: &Ctx, host: &str, hop: &str) -> Result<(bool, String), Failure> {
    let work = prepare(ctx, host, hop).await?;
    finish(ctx, host, work).await
}

/// A node's upgrade after [`prepare`]: what is left from its upgrade window on.
struct Prepared {
    changed: bool,
    /// The exact version it moves to.
    version: String,
    /// From the window's first step (`kubeadm upgrade node`, or the drain, or a leftover
    /// wait and uncordon) to the end; empty if none is needed.
    window: Vec<PlannedStep>,
}

/// Runs the node's steps before its upgrade window: the repository and the kubeadm
/// package (and on the first control plane `kubeadm upgrade plan|apply`). None of them
/// disturbs the node's workloads.
async fn prepare(ctx: &Ctx, host: &str, hop: &str) -> Result<Prepared, Failure> {
    let timeouts = Timeouts {
        drain: kubectl_duration(ctx.upgrade.drain_timeout),
        wait: kubectl_duration(ctx.timeout),
    };
    let h = ctx.host(host).clone();
    let mut facts = gather(ctx, host).await?;
    let node = read_node(ctx, host).await?;
    let plan_err = |e: crate::playbook::PlaybookError| Failure::new("plan upgrade", e.to_string());
    let (repo, _) = upgrade_plan::node_steps(&ctx.inv, &h, &facts, node.as_ref(), hop, &timeouts)
        .map_err(plan_err)?;
    let mut changed = false;
    if !repo.is_empty() {
        ctx.run_steps(host, &repo).await?;
        changed = true;
        facts = gather(ctx, host).await?;
    }
    let version = if hop.matches('.').count() == 1 {
        upgrade_plan::newest_patch(hop, &facts.apt.kubeadm_versions).ok_or_else(|| {
            Failure::new(
                "pick the version",
                format!(
                    "the package repository offers no kubeadm {hop}.x (apt-cache madison kubeadm lists: {})",
                    facts.apt.kubeadm_versions.join(", ")
                ),
            )
        })?
    } else {
        hop.to_string()
    };
    let (_, mut steps) =
        upgrade_plan::node_steps(&ctx.inv, &h, &facts, node.as_ref(), &version, &timeouts)
            .map_err(plan_err)?;
    if !steps.is_empty() {
        ctx.progress.info(&format!(
            "upgrade: {host}: to {version}: {} step(s)",
            steps.len()
        ));
    }
    let window = steps.split_off(upgrade_plan::window_start(&steps));
    for s in &steps {
        run_step(ctx, host, s).await?;
    }
    Ok(Prepared {
        changed: changed || !steps.is_empty(),
        version,
        window,
    })
}

/// Runs the rest of a prepared node: drain, kubelet, restart, wait, uncordon.
async fn finish(ctx: &Ctx, host: &str, work: Prepared) -> Result<(bool, String), Failure> {
    let steps = &work.window;
    for s in steps {
        if let Err(f) = run_step(ctx, host, s).await {
            if s.step == "drain" {
                return Err(undo_cordon(ctx, host, steps, f).await);
            }
            return Err(f);
        }
    }
    Ok((work.changed || !steps.is_empty(), work.version))
}

/// Runs one planned step where it belongs (node-maintenance steps on the first control
/// plane), reported as the node's.
async fn run_step(ctx: &Ctx, host: &str, s: &PlannedStep) -> Result<(), Failure> {
    let on = if upgrade_plan::runs_on_control_plane(s) {
        ctx.first_cp.as_str()
    } else {
        host
    };
    let name = format!("{}: {}", s.step, s.description);
    ctx.exec(on, host, &name, &s.command).await.map(|_| ())
}

/// A drain failed: uncordon the node again (never force an eviction) and say so. The
/// failure keeps the drain's kind: a drain that ran out of its --timeout is a timeout
/// (exit 7) whether or not the uncordon worked.
async fn undo_cordon(ctx: &Ctx, host: &str, steps: &[PlannedStep], drain: Failure) -> Failure {
    let Some(uncordon) = steps.iter().find(|s| s.step == "uncordon") else {
        return drain;
    };
    let message = match run_step(ctx, host, uncordon).await {
        Ok(()) => format!(
            "{}\n{host} was not upgraded and is schedulable again (uncordoned); nothing was \
             forced. Fix what blocks the eviction (e.g. a PodDisruptionBudget) and run up again",
            drain.message
        ),
        Err(u) => format!(
            "{}\nand uncordoning {host} again failed too, it is still cordoned: {}",
            drain.message, u.message
        ),
    };
    Failure { message, ..drain }
}

/// This host's facts, now (logged like every command).
async fn gather(ctx: &Ctx, host: &str) -> Result<HostFacts, Failure> {
    let step = "gather facts";
    let cmd = facts::command().map_err(|e| Failure::new(step, e.to_string()))?;
    let out = ctx.exec(host, host, step, &cmd).await?;
    facts::parse(&out.stdout).map_err(|e| Failure::new(step, e.to_string()))
}

/// The host's node object, now (None: not registered).
async fn read_node(ctx: &Ctx, host: &str) -> Result<Option<Node>, Failure> {
    let step = "kubectl get nodes";
    let out = ctx
        .exec(&ctx.first_cp, host, step, &cluster::get_nodes_command())
        .await?;
    let nodes = cluster::parse_nodes(&out.stdout).map_err(|e| Failure::new(step, e.to_string()))?;
    Ok(nodes.into_iter().find(|n| n.name == host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn turns_follow_the_inventory_order_whatever_finishes_first() {
        let turns = Turns::new(3);
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = tokio::task::JoinSet::new();
        // Worker 2 is ready first, worker 0 last; worker 1 needs no window.
        for (i, delay, window) in [(0, 30, true), (1, 10, false), (2, 0, true)] {
            let (turns, order) = (Arc::clone(&turns), Arc::clone(&order));
            tasks.spawn(async move {
                let pass = Pass(Arc::clone(&turns), i);
                tokio::time::sleep(Duration::from_millis(delay)).await;
                if window {
                    turns.wait(i).await;
                    order.lock().unwrap().push(i);
                }
                drop(pass);
            });
        }
        while tasks.join_next().await.is_some() {}
        assert_eq!(*order.lock().unwrap(), [0, 2]);
    }
}
