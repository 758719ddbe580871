//! `bootstrap plan` and `bootstrap up --dry-run`: everything `up` does before it changes
//! anything (connect, facts, node objects, plan; [`up::connect_and_plan`]), then the plan
//! is printed instead of applied.
//!
//! The exit status follows terraform's `-detailed-exitcode`, so scripts and CI can ask
//! "is the cluster what the inventory says?": 0 nothing to do, 2 changes pending; a host
//! unreachable or refused exits 4 or 5 as `up` would, with the same message; 1 any other
//! error. The text goes
//! to stderr like `up`'s progress; `--output json` adds one JSON document on stdout
//! (schema in docs/plan.md).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use serde::Serialize;

use crate::cli::{Command, OutputFormat, PlanArgs};
use crate::cluster::NodeChange;
use crate::exit::Outcome;
use crate::inventory::{self, Inventory};
use crate::phases::cluster_plan::{ClusterPlan, ClusterView};
use crate::phases::up::{self, Planned};
use crate::plan::HostPlan;

/// The plan arguments if the command is `plan` or `up --dry-run`.
pub fn requested(command: &Command) -> Option<PlanArgs> {
    match command {
        Command::Plan(a) => Some(PlanArgs {
            inventory: a.inventory.clone(),
            run: a.run.clone(),
            upgrade: a.upgrade.clone(),
            output: a.output,
        }),
        Command::Up(a) if a.dry_run => Some(PlanArgs {
            inventory: a.inventory.clone(),
            run: a.run.clone(),
            upgrade: a.upgrade.clone(),
            output: a.output,
        }),
        _ => None,
    }
}

/// Runs the plan and maps the outcome to 0 (nothing to do), 2 (changes) or 1 (error).
pub fn main(args: &PlanArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(Ok(report)) if report.changes => Outcome::ChangesPending.exit_code(),
        Ok(Ok(_)) => Outcome::Success.exit_code(),
        Ok(Err(stopped)) => stopped.exit_code(),
        Err(report) => {
            eprintln!("{report:?}");
            crate::failure::of_error(&report).exit_code()
        }
    }
}

/// The plan as data: what `--output json` prints.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// Whether `up` would change anything.
    pub changes: bool,
    /// Every inventory host, in inventory order, with its host-level steps.
    pub hosts: Vec<HostReport>,
    /// The cluster-level steps, in the order `up` runs them.
    pub cluster: Vec<ClusterStep>,
    /// Nodes of the cluster that the inventory does not list: left alone.
    pub unmanaged: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HostReport {
    pub name: String,
    /// "control-plane" or "worker".
    pub role: String,
    pub steps: Vec<StepReport>,
}

/// One host-level step: a step of a host playbook (prereqs, runtime, packages).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepReport {
    pub phase: String,
    pub step: String,
    pub description: String,
    /// The fact that differs from what the inventory wants.
    pub reason: String,
}

/// One cluster-level step (init, join-token, join, cni, labels, ready).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClusterStep {
    pub phase: String,
    /// The host the step is about (for labels and join: the node; else the control
    /// plane it runs on).
    pub host: String,
    pub step: String,
    pub reason: String,
}

/// Connects, gathers facts, plans and prints. Ok(Err(outcome)): stopped before planning (a host
/// unreachable or refused; the summary said why).
pub async fn run(args: &PlanArgs) -> miette::Result<Result<Report, Outcome>> {
    let inv = inventory::load(&args.inventory)?;
    let (progress, log) = up::open_run(args.run.log_dir.as_deref())?;
    if tracing::enabled!(tracing::Level::DEBUG) {
        // `plan -v`: where each host's SSH settings came from (inventory line,
        // ssh_config file:line, or the default).
        for host in &inv.hosts {
            for origin in &host.ssh.origins {
                progress.info(&format!("{}: ssh {origin}", host.name));
            }
        }
    }
    let Some(planned) = up::connect_and_plan(
        inv,
        &progress,
        &log,
        &(&args.run).into(),
        &(&args.upgrade).into(),
    )
    .await
    else {
        return Ok(Err(crate::report::stopped(&progress)));
    };
    let report = report(&planned);
    for note in &planned.cluster_plan.notes {
        progress.info(note);
    }
    if report.changes {
        up::print_plan(
            &progress,
            &log,
            &planned.inv,
            &planned.host_plans,
            &planned.cluster_plan,
        );
        let steps: usize =
            report.hosts.iter().map(|h| h.steps.len()).sum::<usize>() + report.cluster.len();
        progress.info(&format!(
            "{steps} step{} pending; nothing was changed (run `bootstrap up {}` to apply)",
            if steps == 1 { "" } else { "s" },
            display(&args.inventory)
        ));
    } else {
        progress.info("nothing to do: every node is Ready with its labels and taints");
    }
    if args.output == OutputFormat::Json {
        // The `bootstrap/plan/v1` document, for `plan` and `up --dry-run` alike.
        let code = if report.changes {
            Outcome::ChangesPending
        } else {
            Outcome::Success
        };
        crate::report::print("plan", code.code(), &report)?;
    }
    Ok(Ok(report))
}

fn display(p: &Path) -> String {
    shlex::try_quote(&p.display().to_string())
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| p.display().to_string())
}

/// The report of a plan: pure, from what [`up::connect_and_plan`] gathered.
pub(crate) fn report(p: &Planned) -> Report {
    let hosts = p
        .inv
        .hosts
        .iter()
        .map(|h| HostReport {
            name: h.name.clone(),
            role: crate::phases::role_name(h.role).to_string(),
            steps: p
                .host_plans
                .get(&h.name)
                .map(host_steps)
                .unwrap_or_default(),
        })
        .collect::<Vec<_>>();
    let host_work = hosts.iter().any(|h| !h.steps.is_empty());
    let cluster = cluster_steps(&p.inv, &p.cluster_plan, host_work);
    Report {
        changes: host_work || !cluster.is_empty(),
        hosts,
        cluster,
        unmanaged: unmanaged(&p.inv, p.view.as_ref()),
    }
}

fn host_steps(plan: &HostPlan) -> Vec<StepReport> {
    plan.phases
        .iter()
        .flat_map(|ph| {
            ph.steps.iter().map(|s| StepReport {
                phase: ph.phase.clone(),
                step: s.step.clone(),
                description: s.description.clone(),
                reason: s.reason.clone(),
            })
        })
        .collect()
}

/// The cluster-level steps in the order of `up`'s phases ([`crate::phases::UP`]); `host_work`:
/// some host has host-level steps (then `up` also waits for Ready at the end).
fn cluster_steps(inv: &Inventory, plan: &ClusterPlan, host_work: bool) -> Vec<ClusterStep> {
    let cp = inv
        .hosts
        .iter()
        .find(|h| h.role == inventory::Role::ControlPlane)
        .map(|h| h.name.clone())
        .unwrap_or_default();
    let step = |phase: &str, host: &str, step: &str, reason: &str| ClusterStep {
        phase: phase.to_string(),
        host: host.to_string(),
        step: step.to_string(),
        reason: reason.to_string(),
    };
    let mut out = Vec::new();
    for s in &plan.init {
        out.push(step("init", &cp, &s.step, &s.reason));
    }
    if let Some(u) = &plan.upgrade {
        for (hop, nodes) in u.hops.iter().zip(&u.steps) {
            for n in nodes {
                for s in &n.steps {
                    let why = format!(
                        "to {}: {}",
                        crate::phases::upgrade_plan::hop_name(hop),
                        s.reason
                    );
                    out.push(step("upgrade", &n.host, &s.step, &why));
                }
            }
        }
    }
    if !plan.join.is_empty() {
        let names: Vec<&str> = plan.join.iter().map(|(h, _)| h.as_str()).collect();
        out.push(step(
            "join-token",
            &cp,
            "kubeadm token create",
            &format!("a fresh join command for {}", names.join(", ")),
        ));
    }
    for (h, r) in &plan.join {
        out.push(step("join", h, "kubeadm join", r));
    }
    if let Some(r) = &plan.calico {
        out.push(step("cni", &cp, "apply Calico", r));
    }
    for (h, work) in &plan.nodes {
        for c in &work.changes {
            let why = if work.new {
                "the node registers with kubeadm's defaults; applied once it exists".to_string()
            } else {
                change_reason(c)
            };
            out.push(step("labels", h, &c.to_string(), &why));
        }
    }
    // Like ready::hosts: `up` waits whenever it has any work at all.
    if host_work || !plan.is_empty() {
        let why = plan
            .wait
            .clone()
            .unwrap_or_else(|| "after the changes above".to_string());
        out.push(step("ready", &cp, "wait until every node is Ready", &why));
    }
    for m in &plan.manifests.apply {
        out.push(step(
            "manifests",
            &cp,
            &format!("apply {}", m.name),
            &m.reason,
        ));
    }
    out
}

/// Which fact of the node object differs from the inventory.
fn change_reason(c: &NodeChange) -> String {
    match c {
        NodeChange::Label { key, value, old } => match old {
            None => format!("the node has no label {key}; the inventory says {value}"),
            Some(o) => format!("the node has {key}={o}; the inventory says {value}"),
        },
        NodeChange::Taint { old: None, .. } => {
            "the node lacks this taint, which the inventory declares".to_string()
        }
        NodeChange::Taint { old: Some(_), .. } => {
            "the node's taint with this key and effect has another value".to_string()
        }
        NodeChange::Untaint { taint } => format!(
            "taint {}:{} was declared before and is not any more",
            taint.key, taint.effect
        ),
        NodeChange::Unlabel { key, .. } => {
            format!("label {key} was declared before and is not any more")
        }
        NodeChange::Annotate { .. } => {
            "record on the node which labels and taints the tool manages".to_string()
        }
    }
}

/// Node objects whose name is no inventory host, sorted.
fn unmanaged(inv: &Inventory, view: Option<&ClusterView>) -> Vec<String> {
    let managed: BTreeMap<&str, ()> = inv.hosts.iter().map(|h| (h.name.as_str(), ())).collect();
    let mut out: Vec<String> = view
        .map(|v| {
            v.nodes
                .iter()
                .filter(|n| !managed.contains_key(n.name.as_str()))
                .map(|n| n.name.clone())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use crate::cluster::Node;
    use crate::phases::cluster_plan::{self, KubeadmState};
    use clap::Parser;

    fn node(name: &str, labels: &[(&str, &str)]) -> Node {
        cluster_plan::tests::node(name, labels, vec![], true)
    }

    const JOINED_CP: KubeadmState = KubeadmState {
        admin_conf: true,
        apiserver_manifest: true,
        joined: true,
    };
    const JOINED: KubeadmState = KubeadmState {
        admin_conf: false,
        apiserver_manifest: false,
        joined: true,
    };

    #[test]
    fn a_converged_cluster_has_no_cluster_steps_and_lists_unmanaged_nodes() {
        let inv = cluster_plan::tests::inv();
        let states = [("master".into(), JOINED_CP), ("worker1".into(), JOINED)].into();
        let view = ClusterView {
            nodes: vec![
                node("master", &[("type", "mysql")]),
                node("worker1", &[("type", "wordpress")]),
                node("old", &[]),
            ],
            calico: Some(crate::cluster::CalicoState::Present {
                version: Some("v3.30.3".into()),
            }),
        };
        let plan = cluster_plan::plan(&inv, &states, Some(&view), vec![]).unwrap();
        assert!(cluster_steps(&inv, &plan, false).is_empty());
        // Host-level work alone still ends with the wait for Ready, like up.
        let steps = cluster_steps(&inv, &plan, true);
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].phase, "ready");
        assert_eq!(unmanaged(&inv, Some(&view)), ["old"]);
    }

    #[test]
    fn a_changed_label_says_what_the_node_has() {
        let inv = cluster_plan::tests::inv();
        let states = [("master".into(), JOINED_CP), ("worker1".into(), JOINED)].into();
        let view = ClusterView {
            nodes: vec![
                node("master", &[("type", "mysql")]),
                node("worker1", &[("type", "blog")]),
            ],
            calico: Some(crate::cluster::CalicoState::Present {
                version: Some("v3.30.3".into()),
            }),
        };
        let plan = cluster_plan::plan(&inv, &states, Some(&view), vec![]).unwrap();
        let steps = cluster_steps(&inv, &plan, false);
        let phases: Vec<&str> = steps.iter().map(|s| s.phase.as_str()).collect();
        assert_eq!(phases, ["labels", "ready"]);
        assert_eq!(steps[0].host, "worker1");
        assert_eq!(steps[0].step, "label type=wordpress (was type=blog)");
        assert_eq!(
            steps[0].reason,
            "the node has type=blog; the inventory says wordpress"
        );
    }

    #[test]
    fn plan_and_up_dry_run_parse_to_the_same_request() {
        let plan = Cli::try_parse_from(["bootstrap", "plan", "i.yaml", "--output", "json"]);
        let plan = requested(&plan.unwrap().command).unwrap();
        let dry =
            Cli::try_parse_from(["bootstrap", "up", "--dry-run", "i.yaml", "--output", "json"]);
        let dry = requested(&dry.unwrap().command).unwrap();
        assert_eq!(plan.output, OutputFormat::Json);
        assert_eq!(
            (plan.inventory, plan.run.parallelism, plan.output),
            (dry.inventory, dry.run.parallelism, dry.output)
        );
        let up = Cli::try_parse_from(["bootstrap", "up", "i.yaml"]).unwrap();
        assert!(requested(&up.command).is_none());
        // `up --output json` without --dry-run runs up (its own document, src/report.rs).
        let up = Cli::try_parse_from(["bootstrap", "up", "i.yaml", "--output", "json"]).unwrap();
        assert!(requested(&up.command).is_none());
    }
}
