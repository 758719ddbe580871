//! `bootstrap reset`: take hosts out of the cluster and undo what `up` did for kubeadm
//! (reference §5, "Teardown"), so that `up` can build a fresh cluster on them.
//!
//! What runs on the hosts is the `reset` playbook (playbooks/reset.yaml); this module only
//! decides the order and where each step runs: workers first, control planes last
//! (a worker is easy to re-join, a lost control plane is the cluster), and a node is
//! drained and its Node object deleted from the first control plane before its host is
//! reset — unless it is that control plane itself, the last one, whose reset ends the
//! cluster. Like `up`, nothing changes until every needed host is connected, its facts
//! are gathered and the whole plan was printed (and, without `--yes`, confirmed). The
//! playbook plans each step from the facts, so a second reset plans nothing.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster::{self, kubectl_duration, Node};
use crate::exit::Outcome;
use crate::inventory::{self, Host, Inventory, Role};
use crate::phases::interrupt::{self, Applied, Interrupt};
use crate::phases::{
    self, up::connect_hosts, ClusterPlan, Ctx, Failure, HostFuture, Phase, RunOptions,
};
use crate::plan::{self, HostPlan, PhasePlan};
use crate::report;
use crate::runlog::RunLog;
use crate::ssh::Connection;
use crate::ui::{HostResult, Progress, SummaryRow};

/// The playbook behind `reset`.
pub const PLAYBOOK: &str = "reset";
/// Its steps that run on the first control plane, against the Node object.
const NODE_STEPS: &[&str] = &["drain-node", "delete-node"];
/// Names of the two parts of a host's reset plan ([`HostPlan::phase`]).
const NODE_PART: &str = "node";
const HOST_PART: &str = "host";

/// Why `reset` stopped before changing anything.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ResetError {
    #[error("refusing to reset without confirmation: {why}")]
    #[diagnostic(help("pass --yes to reset without being asked"))]
    NotConfirmed { why: &'static str },
    #[error("the inventory has no host named `{name}`")]
    #[diagnostic(help("hosts in the inventory: {known}"))]
    UnknownHost { name: String, known: String },
    #[error("cannot create the run log: {0}")]
    RunLog(String),
    #[error("cannot start the async runtime: {0}")]
    Runtime(String),
}

/// The phases of `reset`, in order. Each host's plan has a `node` part (drain and
/// delete, run on the first control plane) and a `host` part (run on the host).
const RESET: &[Phase] = &[
    Phase {
        name: "drain",
        hosts: drain_hosts,
        run: phases::Work::PerHost(run_drain),
    },
    Phase {
        name: "reset-workers",
        hosts: worker_hosts,
        run: phases::Work::PerHost(run_reset),
    },
    Phase {
        name: "reset-control-planes",
        hosts: control_plane_hosts,
        run: phases::Work::PerHost(run_reset),
    },
];

/// What `reset` is asked to do (from `bootstrap reset`'s arguments).
#[derive(Debug, Clone)]
pub struct ResetOptions {
    /// The inventory file.
    pub inventory: std::path::PathBuf,
    /// Reset only these hosts (empty: every host, workers first).
    pub hosts: Vec<String>,
    /// Do not ask for confirmation.
    pub yes: bool,
    /// Also remove the kubelet, kubeadm and kubectl packages.
    pub purge: bool,
    /// How long a node's drain may take.
    pub timeout: Duration,
    pub run: RunOptions,
}

/// Runs `reset` on its own async runtime: the outcome (exit status) and the JSON
/// document's body (`--output json`, docs/output.md). Success: every selected host is
/// reset. SIGINT/SIGTERM stop it like `up`: no new host starts, the summary is printed.
pub fn run(args: &ResetOptions) -> report::Finished {
    let started = Instant::now();
    let mut doc = report::Run::new(&args.inventory);
    let mut shown = None;
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| ResetError::Runtime(e.to_string()).into())
        .and_then(|runtime| runtime.block_on(reset(args, &mut doc, &mut shown)));
    if let Some(progress) = shown {
        doc.redact(|text| progress.clean(text));
    }
    report::Finished::new(doc, result, started)
}

/// Whether the user may be asked: Err says why not (then `--yes` is required).
fn can_ask() -> Result<(), ResetError> {
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        return Err(ResetError::NotConfirmed {
            why: "CI is set, so nobody can answer",
        });
    }
    if !std::io::stdin().is_terminal() {
        return Err(ResetError::NotConfirmed {
            why: "standard input is not a terminal, so nobody can answer",
        });
    }
    Ok(())
}

/// The selected hosts, workers first then control planes, each in inventory order.
pub fn select<'a>(inv: &'a Inventory, names: &[String]) -> Result<Vec<&'a Host>, ResetError> {
    for name in names {
        if !inv.hosts.iter().any(|h| &h.name == name) {
            return Err(ResetError::UnknownHost {
                name: name.clone(),
                known: inv
                    .hosts
                    .iter()
                    .map(|h| h.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    let chosen = |h: &&Host| names.is_empty() || names.contains(&h.name);
    let workers = inv
        .hosts
        .iter()
        .filter(|h| h.role == Role::Worker)
        .filter(chosen);
    let cps = inv
        .hosts
        .iter()
        .filter(|h| h.role == Role::ControlPlane)
        .filter(chosen);
    Ok(workers.chain(cps).collect())
}

/// `reset` itself; `shown` gets the progress output once there is one (its run-wide
/// redaction applies to the document too).
async fn reset(
    args: &ResetOptions,
    doc: &mut report::Run,
    shown: &mut Option<Progress>,
) -> miette::Result<Outcome> {
    let inv = inventory::load(&args.inventory)?;
    doc.set_inventory(&inv);
    let selected: Vec<String> = select(&inv, &args.hosts)?
        .into_iter()
        .map(|h| h.name.clone())
        .collect();
    if !args.yes {
        can_ask()?;
    }
    let first_cp = inv
        .hosts
        .iter()
        .find(|h| h.role == Role::ControlPlane)
        .map(|h| h.name.clone())
        .expect("a validated inventory has a control plane");
    let mut interrupt =
        Interrupt::listen().map_err(|e| miette::miette!("cannot catch SIGINT and SIGTERM: {e}"))?;
    let progress = Progress::new();
    *shown = Some(progress.clone());
    let log =
        RunLog::open(args.run.log_dir.as_deref()).map_err(|e| ResetError::RunLog(e.to_string()))?;
    progress.info(&format!("run log: {}", log.dir().display()));
    doc.run_log = Some(log.dir().display().to_string());
    let parallelism = args.run.parallelism as usize;

    // 1. connect to the selected hosts and the first control plane (drains run there).
    let needed: Vec<&Host> = inv
        .hosts
        .iter()
        .filter(|h| h.name == first_cp || selected.contains(&h.name))
        .collect();
    let (conns, mut failed) = connect_hosts(&needed, &progress, &args.run).await;
    if !failed.is_empty() {
        return Ok(stop_early(doc, &inv, &progress, &log, &failed));
    }

    // 2. facts.
    let started = Instant::now();
    progress.phase_start("facts", conns.len());
    let mut facts_by_host = BTreeMap::new();
    for (name, result) in crate::phases::up::gather_all(&progress, &log, &conns, parallelism).await
    {
        progress.host_done(&name, result.is_ok());
        match result {
            Ok(f) => {
                facts_by_host.insert(name, f);
            }
            Err(e) => {
                failed.insert(name, e);
            }
        }
    }
    progress.phase_done("facts", started.elapsed());
    if !failed.is_empty() {
        return Ok(stop_early(doc, &inv, &progress, &log, &failed));
    }

    // 3. the node objects, if the cluster is up.
    let nodes = if facts_by_host[&first_cp].kubernetes.admin_conf {
        match read_nodes(&log, &conns[&first_cp], &first_cp).await {
            Ok(n) => n,
            Err(f) => {
                progress.info(&format!(
                    "{first_cp}: cannot read the node objects ({f}); nodes will be reset \
                     without draining them or deleting their Node objects"
                ));
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };

    // 4. plan.
    let timeout = kubectl_duration(args.timeout);
    let mut host_plans = BTreeMap::new();
    for name in &selected {
        let host = inv
            .hosts
            .iter()
            .find(|h| &h.name == name)
            .expect("selected");
        // The first control plane is where kubectl runs: it is the last one, never
        // drained or deleted (HA is not supported by up).
        let node_object = name != &first_cp && nodes.iter().any(|n: &Node| &n.name == name);
        let vars = plan::Vars::new(&inv, host, facts_by_host.get(name))
            .with("node_object", node_object)
            .with("drain_timeout", &timeout)
            .with("purge", args.purge);
        match plan::plan_playbook(PLAYBOOK, &vars) {
            Ok(steps) => {
                host_plans.insert(name.clone(), split(name, steps));
            }
            Err(e) => {
                failed.insert(name.clone(), Failure::error("plan", e.to_string()));
            }
        }
    }
    if !failed.is_empty() {
        return Ok(stop_early(doc, &inv, &progress, &log, &failed));
    }
    if host_plans.values().all(HostPlan::is_empty) {
        progress.info(&format!(
            "nothing to do: {} already reset",
            selected.join(", ")
        ));
        let rows = rows(&inv, &selected, |_| HostResult::Unchanged);
        return Ok(doc.settle(&rows, &log.steps(), false));
    }
    print_plan(&progress, &log, &selected, &host_plans);
    for line in kept_kubeconfigs(&facts_by_host, &host_plans) {
        progress.info(&line);
    }
    if selected.contains(&first_cp) && !nodes.is_empty() {
        let left: Vec<&str> = nodes
            .iter()
            .map(|n| n.name.as_str())
            .filter(|n| !selected.iter().any(|s| s == n))
            .collect();
        if !left.is_empty() {
            progress.info(&format!(
                "resetting {first_cp} ends the cluster; {} will still think they belong to it \
                 (reset them too)",
                left.join(", ")
            ));
        }
    }
    if !args.yes && !confirm(&progress, &selected)? {
        progress.info("nothing was changed");
        doc.fail(Outcome::Error, "not confirmed: nothing was changed");
        return Ok(Outcome::Error);
    }

    // 5. apply.
    let ctx = Arc::new(Ctx::new(
        inv,
        conns,
        facts_by_host,
        host_plans,
        ClusterPlan::default(),
        progress.clone(),
        log,
        parallelism,
        args.timeout,
    ));
    let applied = interrupt::apply_until_interrupted(&ctx, RESET, &mut interrupt).await;
    let rows = applied.rows(&ctx, RESET);
    progress.summary(&rows);
    let steps = ctx.log.steps();
    if let Applied::Interrupted {
        signal, abandoned, ..
    } = applied
    {
        return Ok(doc.interrupted("reset", &progress, signal, abandoned, &rows, &steps));
    }
    let phases_ok = !matches!(applied, Applied::Failed { .. });
    Ok(doc.finish(&rows, &steps, phases_ok))
}

/// Summary rows for the selected hosts (`result` of each), the others unchanged.
fn rows(
    inv: &Inventory,
    selected: &[String],
    result: impl Fn(&str) -> HostResult,
) -> Vec<SummaryRow> {
    inv.hosts
        .iter()
        .map(|h| {
            let r = if selected.contains(&h.name) {
                result(&h.name)
            } else {
                HostResult::Unchanged
            };
            (
                h.name.clone(),
                phases::role_name(h.role).to_string(),
                r,
                Duration::ZERO,
            )
        })
        .collect()
}

/// Splits a host's planned reset steps into the part run on the first control plane
/// (the Node object) and the part run on the host.
fn split(host: &str, steps: Vec<plan::PlannedStep>) -> HostPlan {
    let (node, on_host): (Vec<_>, Vec<_>) = steps
        .into_iter()
        .partition(|s| NODE_STEPS.contains(&s.step.as_str()));
    HostPlan {
        host: host.to_string(),
        phases: vec![
            PhasePlan {
                phase: NODE_PART.into(),
                steps: node,
            },
            PhasePlan {
                phase: HOST_PART.into(),
                steps: on_host,
            },
        ],
    }
}
/// The kubeconfigs a host's reset leaves because they are not copies of its admin.conf
/// (someone's own: another cluster, other credentials), one line per file, so the person
/// knows they were kept on purpose (playbooks/reset.yaml removes only the copies).
fn kept_kubeconfigs(
    facts: &BTreeMap<String, crate::facts::HostFacts>,
    plans: &BTreeMap<String, HostPlan>,
) -> Vec<String> {
    let mut lines = Vec::new();
    for host in plans.iter().filter(|(_, p)| !p.is_empty()).map(|(h, _)| h) {
        let Some(k) = facts.get(host).map(|f| &f.kubernetes) else {
            continue;
        };
        let mut kept = Vec::new();
        if k.root_kubeconfig && !k.root_kubeconfig_current {
            kept.push("/root/.kube/config".to_string());
        }
        if k.login_user != "root" && k.login_kubeconfig && !k.login_kubeconfig_current {
            kept.push(format!("{}'s ~/.kube/config", k.login_user));
        }
        for file in kept {
            lines.push(format!(
                "{host}: {file} is not a copy of this cluster's admin.conf: left in place \
                 (remove it yourself if it is stale)"
            ));
        }
    }
    lines
}

/// Asks on the terminal; anything but y/yes is no.
fn confirm(progress: &Progress, hosts: &[String]) -> Result<bool, ResetError> {
    progress.info(&format!(
        "reset {} ({} host{})? This removes them from the cluster. [y/N]",
        hosts.join(", "),
        hosts.len(),
        if hosts.len() == 1 { "" } else { "s" }
    ));
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return Ok(false);
    }
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

/// Ends a run that failed before changing anything: each failed host with its reason
/// (`connect: ...`, `facts: ...`, `plan: ...`), recorded in the document.
fn stop_early(
    doc: &mut report::Run,
    inv: &Inventory,
    progress: &Progress,
    log: &RunLog,
    failed: &BTreeMap<String, Failure>,
) -> Outcome {
    for (host, why) in failed {
        progress.info(&format!("{host}: {why}"));
    }
    progress.info("nothing was changed");
    let everyone: Vec<String> = inv.hosts.iter().map(|h| h.name.clone()).collect();
    let rows = rows(inv, &everyone, |h| match failed.get(h) {
        Some(why) => HostResult::Failed(why.clone()),
        None => HostResult::Skipped,
    });
    doc.settle(&rows, &log.steps(), false)
}

fn print_plan(
    progress: &Progress,
    log: &RunLog,
    selected: &[String],
    plans: &BTreeMap<String, HostPlan>,
) {
    let mut lines = vec!["plan:".to_string()];
    for name in selected {
        for line in plans[name].to_string().lines() {
            lines.push(format!("  {line}"));
        }
    }
    for line in &lines {
        progress.info(line);
    }
    if let Err(e) = log.note(&lines.join("\n")) {
        tracing::warn!("{e}");
    }
}

/// The node objects, from the first control plane (recorded in the run log).
async fn read_nodes(log: &RunLog, conn: &Connection, cp: &str) -> Result<Vec<Node>, Failure> {
    let step = "kubectl get nodes";
    let cmd = cluster::get_nodes_command();
    let out = conn
        .run(&cmd)
        .await
        .map_err(|e| Failure::new(step, e.to_string()))?;
    let _ = log.host(cp).record(step, &cmd, &out, Duration::ZERO);
    if !out.success() {
        return Err(Failure::exit(step, &out, &[]));
    }
    cluster::parse_nodes(&out.stdout).map_err(|e| Failure::new(step, e.to_string()))
}

fn drain_hosts(ctx: &Ctx) -> Vec<String> {
    ctx.host_plans
        .iter()
        .filter(|(_, p)| !p.phase(NODE_PART).is_empty())
        .map(|(h, _)| h.clone())
        .collect()
}

/// Drains and deletes `host`'s Node object, from the first control plane.
fn run_drain(ctx: Arc<Ctx>, host: String) -> HostFuture {
    Box::pin(async move {
        let steps = ctx.host_plans[&host].phase(NODE_PART).to_vec();
        for s in &steps {
            let name = format!("{}: {}", s.step, s.description);
            ctx.exec(&ctx.first_cp, &host, &name, &s.command).await?;
        }
        Ok(!steps.is_empty())
    })
}

fn hosts_with_role(ctx: &Ctx, role: Role) -> Vec<String> {
    ctx.inv
        .hosts
        .iter()
        .filter(|h| h.role == role)
        .filter(|h| {
            ctx.host_plans
                .get(&h.name)
                .is_some_and(|p| !p.phase(HOST_PART).is_empty())
        })
        .map(|h| h.name.clone())
        .collect()
}

fn worker_hosts(ctx: &Ctx) -> Vec<String> {
    hosts_with_role(ctx, Role::Worker)
}

fn control_plane_hosts(ctx: &Ctx) -> Vec<String> {
    hosts_with_role(ctx, Role::ControlPlane)
}

/// Runs the host part of `host`'s reset on the host.
fn run_reset(ctx: Arc<Ctx>, host: String) -> HostFuture {
    Box::pin(async move {
        let steps = ctx.host_plans[&host].phase(HOST_PART).to_vec();
        ctx.run_steps(&host, &steps).await?;
        Ok(!steps.is_empty())
    })
}
