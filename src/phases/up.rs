//! `bootstrap up`: inventory -> connect -> facts (+ node objects) -> plan -> phases.
//!
//! Nothing changes on any host until every host is connected, its facts are gathered
//! and the whole plan exists and was printed: an unreachable or refused host stops the
//! run before it starts, with every such host named, not just the first.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cluster_plan::{self, ClusterView, KubeadmState};
use super::interrupt::{self, Applied, Interrupt};
use super::upgrade_plan;
use super::{host_steps, ClusterPlan, Ctx, Failure};
use super::{MaxUnavailable, RunOptions, UpgradeOptions};
use crate::cluster::{self, kubectl_duration};
use crate::exit::Outcome;
use crate::facts::{self, HostFacts};
use crate::inventory::{self, Host, Inventory, Role};
use crate::plan::{self, HostPlan};
use crate::report;
use crate::runlog::RunLog;
use crate::ssh::{self, Connection, Target};
use crate::ui::{HostResult, Progress};

pub use crate::failure::UpError;
pub use crate::inventory::target;

/// The wait timeout shown in a plan's upgrade commands (`up` renders its own --timeout
/// when it runs them).
const PLAN_WAIT: Duration = Duration::from_secs(900);

/// Prints the summary for a run that stopped before the phases: `failed` hosts with
/// their reason (the summary lists each in full), every other host skipped.
fn stop_early(progress: &Progress, inv: &Inventory, failed: &BTreeMap<String, Failure>) {
    let rows: Vec<_> = inv
        .hosts
        .iter()
        .map(|h| {
            let result = match failed.get(&h.name) {
                Some(m) => HostResult::Failed(m.clone()),
                None => HostResult::Skipped,
            };
            (
                h.name.clone(),
                super::role_name(h.role).to_string(),
                result,
                Duration::ZERO,
            )
        })
        .collect();
    progress.summary(&rows);
    progress.info("nothing was changed");
}

/// The progress UI and this run's log directory (in `log_dir`, else the default).
pub(crate) fn open_run(log_dir: Option<&std::path::Path>) -> Result<(Progress, RunLog), UpError> {
    let progress = Progress::new();
    let log = RunLog::open(log_dir).map_err(|e| UpError::RunLog(e.to_string()))?;
    progress.info(&format!("run log: {}", log.dir().display()));
    Ok((progress, log))
}

/// What `up` is asked to do (from `bootstrap up`'s arguments).
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The inventory file.
    pub inventory: std::path::PathBuf,
    /// How long to wait for the nodes to become Ready.
    pub timeout: Duration,
    pub run: RunOptions,
    pub upgrade: UpgradeOptions,
}

/// Runs `up`: the outcome (exit status), and the JSON document's body whatever
/// happened (`--output json`). Success: every node is Ready with its labels and taints.
/// A failed host is named in the summary and the document, with the step. SIGINT or
/// SIGTERM stops the run: no new phase or host starts, commands in flight are
/// abandoned, the summary is printed, and the outcome is `interrupted`.
pub async fn run(args: &UpOptions) -> report::Finished {
    let started = Instant::now();
    let mut doc = report::Run::new(&args.inventory);
    let mut shown = None;
    let result = converge(args, &mut doc, &mut shown).await;
    if let Some(progress) = shown {
        doc.redact(|text| progress.clean(text));
    }
    report::Finished::new(doc, result, started)
}

/// `up` itself; `shown` gets the progress output once there is one, whose run-wide
/// redaction the document then goes through too.
async fn converge(
    args: &UpOptions,
    doc: &mut report::Run,
    shown: &mut Option<Progress>,
) -> miette::Result<Outcome> {
    let inv = inventory::load(&args.inventory)?;
    doc.set_inventory(&inv);
    let mut interrupt =
        Interrupt::listen().map_err(|e| miette::miette!("cannot catch SIGINT and SIGTERM: {e}"))?;
    let (progress, log) = open_run(args.run.log_dir.as_deref())?;
    *shown = Some(progress.clone());
    doc.run_log = Some(log.dir().display().to_string());
    let parallelism = args.run.parallelism as usize;

    let prepared = tokio::select! {
        p = connect_and_plan(inv.clone(), &progress, &log, &args.run, &args.upgrade) => p,
        signal = interrupt.recv() => {
            stop_early(&progress, &inv, &BTreeMap::new());
            return Ok(doc.interrupted("up", &progress, signal, true, &[], &log.steps()));
        }
    };
    let Some(planned) = prepared else {
        let rows = progress.last_summary().unwrap_or_default();
        return Ok(doc.settle(&rows, &log.steps(), false));
    };
    let Planned {
        inv,
        conns,
        facts_by_host,
        host_plans,
        cluster_plan,
        ..
    } = planned;
    for note in &cluster_plan.notes {
        progress.info(note);
    }
    let nothing = host_plans.values().all(|p| p.is_empty()) && cluster_plan.is_empty();
    if nothing {
        progress.info("nothing to do: every node is Ready with its labels and taints");
    } else {
        print_plan(&progress, &log, &inv, &host_plans, &cluster_plan);
    }

    // 5. apply.
    let ctx = Arc::new(
        Ctx::new(
            inv,
            conns,
            facts_by_host,
            host_plans,
            cluster_plan,
            progress.clone(),
            log,
            parallelism,
            args.timeout,
        )
        .with_upgrade(args.upgrade.clone()),
    );
    let applied = if nothing {
        Applied::Done
    } else {
        interrupt::apply_until_interrupted(&ctx, super::UP, &mut interrupt).await
    };
    if !matches!(applied, Applied::Interrupted { .. }) {
        super::join_token::delete(&ctx).await;
    }
    let rows = applied.rows(&ctx, super::UP);
    progress.summary(&rows);
    if let Applied::Interrupted {
        signal, abandoned, ..
    } = applied
    {
        let steps = ctx.log.steps();
        return Ok(doc.interrupted("up", &progress, signal, abandoned, &rows, &steps));
    }
    doc.set_nodes(&final_nodes(&ctx).await);
    let phases_ok = !matches!(applied, Applied::Failed { .. });
    Ok(doc.finish(&rows, &ctx.log.steps(), phases_ok))
}

/// The node objects at the end of the run, for the document; none when there is no
/// cluster (yet) or the control plane cannot tell.
async fn final_nodes(ctx: &Ctx) -> Vec<cluster::Node> {
    let cp = &ctx.first_cp;
    if !ctx.conns.contains_key(cp) {
        return Vec::new();
    }
    let step = "kubectl get nodes (for the report)";
    match ctx
        .exec_status(cp, cp, step, &cluster::get_nodes_command())
        .await
    {
        Ok(out) if out.success() => cluster::parse_nodes(&out.stdout).unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Everything `up` knows before it changes anything: the connections, every host's
/// facts, the cluster as the control plane reports it, and the plan.
pub(crate) struct Planned {
    pub inv: Inventory,
    pub conns: BTreeMap<String, Arc<Connection>>,
    pub facts_by_host: BTreeMap<String, HostFacts>,
    /// The node objects and Calico state (None: the control plane is not initialized).
    pub view: Option<ClusterView>,
    pub host_plans: BTreeMap<String, HostPlan>,
    pub cluster_plan: ClusterPlan,
}

/// Connects to every host, gathers facts, reads the cluster and plans, changing nothing:
/// the part `up` and `plan` (`up --dry-run`) share. None: some host could not be
/// connected, was refused or could not be planned; the summary saying which and why was
/// already printed.
pub(crate) async fn connect_and_plan(
    mut inv: Inventory,
    progress: &Progress,
    log: &RunLog,
    run: &RunOptions,
    upgrade: &UpgradeOptions,
) -> Option<Planned> {
    let parallelism = run.parallelism as usize;
    // 1. connect, every host at once (bounded).
    let hosts: Vec<&Host> = inv.hosts.iter().collect();
    let (conns, mut failed) = connect_hosts(&hosts, progress, run).await;
    if !failed.is_empty() {
        stop_early(progress, &inv, &failed);
        return None;
    }

    // 2. facts, one round trip per host.
    let started = Instant::now();
    progress.phase_start("facts", inv.hosts.len());
    let all_facts = gather_all(progress, log, &conns, parallelism).await;
    let mut facts_by_host: BTreeMap<String, HostFacts> = BTreeMap::new();
    for (name, result) in all_facts {
        match result {
            Ok(f) => {
                if let Some(why) = f.refusal() {
                    progress.host_done(&name, false);
                    failed.insert(name.clone(), Failure::refused("facts", why));
                } else {
                    progress.host_done(&name, true);
                }
                facts_by_host.insert(name, f);
            }
            Err(f) => {
                progress.host_done(&name, false);
                failed.insert(name, f);
            }
        }
    }
    progress.phase_done("facts", started.elapsed());
    if failed.is_empty() {
        failed = choose_node_addresses(&mut inv, &facts_by_host);
    }
    if !failed.is_empty() {
        stop_early(progress, &inv, &failed);
        return None;
    }

    // 3. the cluster as the control plane sees it, if it is initialized.
    let first_cp = inv
        .hosts
        .iter()
        .find(|h| h.role == Role::ControlPlane)
        .map(|h| h.name.clone())
        .expect("a validated inventory has a control plane");
    let states: BTreeMap<String, KubeadmState> = facts_by_host
        .iter()
        .map(|(h, f)| (h.clone(), host_steps::kubeadm_state(f)))
        .collect();
    let view = if states[&first_cp].initialized() {
        match read_cluster(log, &conns[&first_cp], &first_cp).await {
            Ok(v) => Some(v),
            Err(f) => {
                failed.insert(first_cp.clone(), f);
                stop_early(progress, &inv, &failed);
                return None;
            }
        }
    } else {
        None
    };

    // 4. plan: every host's steps, then the cluster's.
    let mut host_plans: BTreeMap<String, HostPlan> = BTreeMap::new();
    for host in &inv.hosts {
        match plan::plan_host(&inv, host, &facts_by_host[&host.name]) {
            Ok(p) => {
                host_plans.insert(host.name.clone(), p);
            }
            Err(e) => {
                failed.insert(host.name.clone(), Failure::error("plan", e.to_string()));
            }
        }
    }
    let cp_host = inv
        .hosts
        .iter()
        .find(|h| h.name == first_cp)
        .expect("first control plane");
    let init_vars = plan::Vars::new(&inv, cp_host, facts_by_host.get(&first_cp));
    let init_steps = match plan::plan_playbook(super::init::PLAYBOOK, &init_vars) {
        Ok(steps) => steps,
        Err(e) => {
            failed.insert(first_cp.clone(), Failure::error("plan", e.to_string()));
            Vec::new()
        }
    };
    let upgrade_plan = view.as_ref().map(|v| {
        let workers = inv.hosts.iter().filter(|h| h.role == Role::Worker).count();
        upgrade_plan::plan(
            &inv,
            &facts_by_host,
            &v.nodes,
            MaxUnavailable::resolve(upgrade.max_unavailable, workers),
            &upgrade_plan::Timeouts {
                drain: kubectl_duration(upgrade.drain_timeout),
                wait: kubectl_duration(PLAN_WAIT),
            },
        )
    });
    let cluster_plan =
        match cluster_plan::plan(&inv, &states, view.as_ref(), init_steps).and_then(|mut p| {
            p.upgrade = upgrade_plan.transpose()?.flatten();
            Ok(p)
        }) {
            Ok(p) => p,
            Err(refusals) => {
                for r in refusals {
                    // "HOST: why": the summary names the host itself.
                    let (host, why) = match r.split_once(": ") {
                        Some((h, why)) if inv.hosts.iter().any(|x| x.name == h) => {
                            (h.to_string(), why.to_string())
                        }
                        _ => (first_cp.clone(), r.clone()),
                    };
                    failed
                        .entry(host)
                        .and_modify(|f: &mut Failure| {
                            f.message.push_str("; ");
                            f.message.push_str(&why);
                        })
                        .or_insert_with(|| Failure::refused("plan", why));
                }
                ClusterPlan::default()
            }
        };
    let cluster_plan =
        super::manifests::plan_into(cluster_plan, &mut failed, &inv, view.as_ref(), &conns, log)
            .await;
    if !failed.is_empty() {
        stop_early(progress, &inv, &failed);
        return None;
    }
    Some(Planned {
        inv,
        conns,
        facts_by_host,
        view,
        host_plans,
        cluster_plan,
    })
}

/// Sets every host's node IP from its facts ([`crate::node_address::choose`]). Returns
/// the hosts refused because none can be chosen, because one of their addresses lies
/// inside the pod or service subnet, because (control planes) kubeadm's preflight would
/// find too few CPUs or too little memory, or because the host runs cgroup v1, which the
/// inventory's kubelet refuses.
fn choose_node_addresses(
    inv: &mut Inventory,
    facts_by_host: &BTreeMap<String, HostFacts>,
) -> BTreeMap<String, Failure> {
    let mut failed = BTreeMap::new();
    for host in &mut inv.hosts {
        let Some(facts) = facts_by_host.get(&host.name) else {
            continue;
        };
        let conflict = crate::node_address::subnet_conflict(
            &facts.network,
            &inv.cluster.pod_subnet,
            &inv.cluster.service_subnet,
        );
        let small = host
            .is_control_plane()
            .then(|| facts.control_plane_shortfall())
            .flatten();
        // Every host ends up running the inventory's kubelet (joined, or upgraded to it).
        let cgroup_v1 = facts.cgroup_v1_refusal(&inv.cluster.kubernetes_version);
        match (
            crate::node_address::choose(host, &facts.network),
            conflict.or(small).or(cgroup_v1),
        ) {
            (Ok(n), None) => host.node_address = Some(n),
            (Err(why), _) | (Ok(_), Some(why)) => {
                failed.insert(host.name.clone(), Failure::refused("facts", why));
            }
        }
    }
    failed
}

/// Prints the plan: per host its steps with reasons, then the cluster-level steps.
/// Also written to the run log's run.log.
pub(crate) fn print_plan(
    progress: &Progress,
    log: &RunLog,
    inv: &Inventory,
    host_plans: &BTreeMap<String, HostPlan>,
    cluster_plan: &ClusterPlan,
) {
    let mut lines = vec!["plan:".to_string()];
    for host in &inv.hosts {
        if let Some(n) = host.node_address.as_ref().filter(|n| n.differs) {
            lines.push(format!(
                "  {}: node IP {} (on {}): {}",
                host.name, n.ip, n.interface, n.reason
            ));
        }
    }
    for host in &inv.hosts {
        let p = &host_plans[&host.name];
        if !p.is_empty() {
            for line in p.to_string().lines() {
                lines.push(format!("  {}: {line}", host.name));
            }
        }
    }
    for line in cluster_plan.to_string().lines() {
        lines.push(format!("  {line}"));
    }
    for line in &lines {
        progress.info(line);
    }
    if let Err(e) = log.note(&lines.join("\n")) {
        tracing::warn!("{e}");
    }
}

/// The connect phase of `up`, `plan`, `status` and `reset`: connects to `hosts` (at
/// most `--parallelism` at once, waiting up to `--wait-for-ssh` for hosts still booting)
/// and returns the connections and, per host that failed, why. Keys recorded under
/// accept-new are announced with their fingerprints.
pub(crate) async fn connect_hosts(
    hosts: &[&Host],
    progress: &Progress,
    run: &RunOptions,
) -> (BTreeMap<String, Arc<Connection>>, BTreeMap<String, Failure>) {
    let started = Instant::now();
    progress.phase_start("connect", hosts.len());
    let targets: Vec<Target> = hosts
        .iter()
        .map(|h| target(h, run.connect_timeout))
        .collect();
    let shown = progress.clone();
    let options = ssh::ConnectOptions {
        wait_for_ssh: run.wait_for_ssh,
        notify: Some(Arc::new(move |line: String| shown.info(&line))),
        ..Default::default()
    };
    let mut conns = BTreeMap::new();
    let mut failed = BTreeMap::new();
    for (name, result) in ssh::connect_all_with(&targets, run.parallelism as usize, &options).await
    {
        progress.host_done(&name, result.is_ok());
        match result {
            Ok(c) => {
                if let Some(added) = &c.host_key_added {
                    progress.info(added);
                }
                conns.insert(name, Arc::new(c));
            }
            Err(e) => {
                failed.insert(name, Failure::connect(&e));
            }
        }
    }
    progress.phase_done("connect", started.elapsed());
    (conns, failed)
}

/// Gathers facts on every host, at most `parallelism` at once: one read-only command
/// each, recorded in the run log.
pub(crate) async fn gather_all(
    progress: &Progress,
    log: &RunLog,
    conns: &BTreeMap<String, Arc<Connection>>,
    parallelism: usize,
) -> Vec<(String, Result<HostFacts, Failure>)> {
    let cmd = match facts::command() {
        Ok(c) => Arc::new(c),
        Err(e) => {
            let msg = format!("cannot render the fact-gathering script (a bug): {e}");
            return conns
                .keys()
                .map(|h| (h.clone(), Err(Failure::error("facts", msg.clone()))))
                .collect();
        }
    };
    let permits = Arc::new(tokio::sync::Semaphore::new(parallelism.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (name, conn) in conns {
        let (name, conn, permits) = (name.clone(), Arc::clone(conn), Arc::clone(&permits));
        let (cmd, log) = (Arc::clone(&cmd), log.clone());
        progress.step(&name, "gather facts");
        tasks.spawn(async move {
            let _p = permits.acquire_owned().await.expect("semaphore closed");
            let started = Instant::now();
            let step = "gather facts";
            let r = match conn.run(&cmd).await {
                Err(e) => {
                    let _ = log
                        .host(&name)
                        .record_error(step, &cmd, &e, started.elapsed());
                    Err(Failure::facts(&e))
                }
                Ok(out) => {
                    let _ = log.host(&name).record(step, &cmd, &out, started.elapsed());
                    if out.success() {
                        facts::parse(&out.stdout)
                            .map_err(|e| Failure::error("facts", e.to_string()))
                    } else {
                        Err(Failure::error(
                            "facts",
                            Failure::exit(step, &out, &[]).message,
                        ))
                    }
                }
            };
            (name, r)
        });
    }
    let mut out = Vec::new();
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(r) => out.push(r),
            Err(e) => tracing::error!("facts task panicked: {e}"),
        }
    }
    out
}

/// Reads the node objects and the calico-node DaemonSet from the control plane.
async fn read_cluster(log: &RunLog, conn: &Connection, cp: &str) -> Result<ClusterView, Failure> {
    let run = |step: &'static str, cmd: ssh::RemoteCommand| async move {
        let out = conn
            .run(&cmd)
            .await
            .map_err(|e| Failure::new(step, e.to_string()))?;
        let _ = log.host(cp).record(step, &cmd, &out, Duration::ZERO);
        Ok::<_, Failure>(out)
    };
    let (nodes, calico) = tokio::join!(
        run("kubectl get nodes", cluster::get_nodes_command()),
        run(
            "kubectl get daemonset calico-node",
            cluster::get_calico_command()
        ),
    );
    let nodes = nodes?;
    if !nodes.success() {
        return Err(Failure::exit("kubectl get nodes", &nodes, &[]));
    }
    let nodes = cluster::parse_nodes(&nodes.stdout)
        .map_err(|e| Failure::new("kubectl get nodes", e.to_string()))?;
    let calico = calico?;
    let calico = cluster::parse_calico(calico.status, &calico.stdout, &calico.stderr)
        .map_err(|e| Failure::new("kubectl get daemonset calico-node", e))?;
    Ok(ClusterView {
        nodes,
        calico: Some(calico),
    })
}
