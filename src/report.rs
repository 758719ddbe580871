//! The JSON documents of `--output json` (docs/output.md, docs/schema/): one document
//! on stdout at the end of `up`, `reset`, `plan` and `status`, human output staying on
//! stderr.
//!
//! Every document is one [`Envelope`]: `schema` (`bootstrap/<command>/v1`), `command`
//! and `exit_code` first, then the command's own fields. `up` and `reset` share one body,
//! [`Run`]: what was asked (inventory, cluster), what happened per host (result, time,
//! the failed step, every command from the run log) and what the cluster looks like at
//! the end. It is built from what the run already keeps: the summary rows (src/ui.rs),
//! the run log's in-memory list of commands (src/runlog.rs) and the node objects
//! (src/cluster.rs); nothing here runs a command.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::cluster::{self, Node};
use crate::exit::Outcome;
use crate::failure::{Failure, FailureKind};
use crate::inventory::role_name;
use crate::inventory::Inventory;
use crate::runlog::StepRecord;
use crate::ui::{HostResult, SummaryRow};

/// The version of every document's layout; a field that moves or changes meaning bumps
/// it (new fields do not).
pub const SCHEMA_VERSION: u32 = 1;

/// The common head of every document.
#[derive(Debug, Serialize)]
pub struct Envelope<'a, T: Serialize> {
    /// `bootstrap/<command>/v1`: which schema in docs/schema/ the document follows.
    pub schema: String,
    pub command: &'a str,
    /// The process's exit status (the table in docs/output.md).
    pub exit_code: u8,
    #[serde(flatten)]
    pub body: &'a T,
}

/// `bootstrap/<command>/v<SCHEMA_VERSION>`.
pub fn schema(command: &str) -> String {
    format!("bootstrap/{command}/v{SCHEMA_VERSION}")
}

/// The document as pretty JSON (what is printed on stdout).
pub fn to_json<T: Serialize>(command: &str, exit_code: u8, body: &T) -> miette::Result<String> {
    let doc = Envelope {
        schema: schema(command),
        command,
        exit_code,
        body,
    };
    serde_json::to_string_pretty(&doc)
        .map_err(|e| miette::miette!("cannot write the {command} document as JSON: {e}"))
}

/// Prints the document on stdout at the end of the run. A reader that went away
/// (`| head`) is not an error: the exit status still tells the outcome.
pub fn print<T: Serialize>(command: &str, exit_code: u8, body: &T) -> miette::Result<()> {
    use std::io::Write;
    let text = to_json(command, exit_code, body)? + "\n";
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(miette::miette!(
            "cannot write the {command} document to standard output: {e}"
        )),
        _ => Ok(()),
    }
}

/// How `up` and `reset` end: the outcome (the exit status), the error that stopped the
/// run before it got going (main renders it on stderr), and the document's body.
#[derive(Debug)]
pub struct Finished {
    pub outcome: Outcome,
    pub error: Option<miette::Report>,
    pub doc: Run,
}

impl Finished {
    /// Finishes `doc` with `result`: an outcome, or an error mapped by
    /// [`crate::failure::of_error`] and recorded as the run's error.
    pub fn new(
        mut doc: Run,
        result: miette::Result<Outcome>,
        started: std::time::Instant,
    ) -> Finished {
        doc.duration_seconds = secs(started.elapsed());
        match result {
            Ok(outcome) => Finished {
                outcome,
                error: None,
                doc,
            },
            Err(report) => {
                let outcome = crate::failure::of_error(&report);
                doc.fail(outcome, &one_line(&report));
                Finished {
                    outcome,
                    error: Some(report),
                    doc,
                }
            }
        }
    }
}

/// An error's message and, for an invalid inventory, every problem on a line of its own
/// (`file:line:column: field: message`).
fn one_line(report: &miette::Report) -> String {
    match report.downcast_ref::<crate::inventory::InventoryError>() {
        Some(e) if !e.problems().is_empty() => format!("{report}:\n{}", e.summary()),
        _ => report.to_string(),
    }
}

/// The body of `up`'s and `reset`'s documents.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Run {
    /// The inventory file as given on the command line.
    pub inventory: String,
    /// None when the inventory could not be loaded.
    pub cluster: Option<ClusterInfo>,
    /// The outcome's name (`success`, `step-failed`, ...; docs/output.md).
    pub outcome: &'static str,
    /// Why the run did not succeed; None on success.
    pub error: Option<RunError>,
    /// Every inventory host, in inventory order.
    pub hosts: Vec<HostRun>,
    /// The node objects at the end of the run (empty when there is no cluster or it
    /// could not be read).
    pub nodes: Vec<NodeInfo>,
    /// Where `bootstrap kubeconfig --merge` puts this cluster's context (kubectl's file in
    /// $KUBECONFIG, else ~/.kube/config); None when no cluster exists at the end.
    pub kubeconfig: Option<String>,
    /// This run's log directory (None if it could not be created).
    pub run_log: Option<String>,
    pub duration_seconds: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClusterInfo {
    pub name: String,
    /// The inventory's Kubernetes version, e.g. `1.34.2`.
    pub version: String,
}

/// Why a run failed: the first failed host (in inventory order) with the worst outcome.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunError {
    /// The outcome's name: `invalid-inventory`, `unreachable`, `refused`, `step-failed`,
    /// `timeout`, `interrupted` or `error`.
    pub kind: &'static str,
    /// None for run-wide errors (an invalid inventory, an interrupt).
    pub host: Option<String>,
    pub step: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HostRun {
    pub name: String,
    pub address: String,
    /// `control-plane` or `worker`.
    pub role: String,
    /// `changed`, `unchanged`, `failed` or `skipped`.
    pub result: &'static str,
    pub duration_seconds: f64,
    /// Set when `result` is `failed`.
    pub error: Option<HostError>,
    /// Every command run on this host, in the order they finished (from the run log).
    pub steps: Vec<StepRecord>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HostError {
    /// `unreachable`, `refused`, `step-failed`, `timeout` or `error`.
    pub kind: &'static str,
    pub step: String,
    pub message: String,
}

/// A node object as `kubectl get nodes` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NodeInfo {
    pub name: String,
    /// The kubelet version, e.g. `v1.34.2` (empty if not reported yet).
    pub version: String,
    pub ready: bool,
    pub labels: BTreeMap<String, String>,
    /// `key=value:Effect` or `key:Effect`.
    pub taints: Vec<String>,
}

impl NodeInfo {
    pub fn of(node: &Node) -> NodeInfo {
        NodeInfo {
            name: node.name.clone(),
            version: node.kubelet_version.clone(),
            ready: node.ready,
            labels: node.labels.clone(),
            taints: node.taints.iter().map(cluster::taint_spec).collect(),
        }
    }
}

impl Run {
    /// A run of `inventory` that has not got anywhere yet: an invalid inventory leaves
    /// it like this, with [`Run::fail`].
    pub fn new(inventory: &Path) -> Run {
        Run {
            inventory: inventory.display().to_string(),
            cluster: None,
            outcome: Outcome::Success.name(),
            error: None,
            hosts: Vec::new(),
            nodes: Vec::new(),
            kubeconfig: None,
            run_log: None,
            duration_seconds: 0.0,
        }
    }

    /// The inventory loaded: the cluster, and every host (skipped until told otherwise).
    pub fn set_inventory(&mut self, inv: &Inventory) {
        self.cluster = Some(ClusterInfo {
            name: inv.cluster.name.clone(),
            version: inv.cluster.kubernetes_version.to_string(),
        });
        self.hosts = inv
            .hosts
            .iter()
            .map(|h| HostRun {
                name: h.name.clone(),
                address: h.address.clone(),
                role: role_name(h.role).to_string(),
                result: HostResult::Skipped.name(),
                duration_seconds: 0.0,
                error: None,
                steps: Vec::new(),
            })
            .collect();
    }

    /// A run-wide failure (no host to blame): invalid inventory, interrupt, a bug.
    pub fn fail(&mut self, outcome: Outcome, message: &str) {
        self.outcome = outcome.name();
        self.error = Some(RunError {
            kind: outcome.name(),
            host: None,
            step: None,
            message: message.to_string(),
        });
    }

    /// Fills in the hosts from the summary rows and the run log's commands, and the
    /// outcome from the failed hosts. `applied`: the phases ran (a failure then is a
    /// step's, not the preparation's). Returns the outcome.
    pub fn settle(&mut self, rows: &[SummaryRow], steps: &[StepRecord], applied: bool) -> Outcome {
        let mut worst: Option<(Outcome, RunError)> = None;
        for host in &mut self.hosts {
            host.steps = steps
                .iter()
                .filter(|s| s.host == host.name)
                .map(|s| StepRecord {
                    finished_at_seconds: millis(s.finished_at_seconds),
                    duration_seconds: millis(s.duration_seconds),
                    ..s.clone()
                })
                .collect();
            let Some((_, _, result, elapsed)) = rows.iter().find(|r| r.0 == host.name) else {
                continue;
            };
            host.result = result.name();
            host.duration_seconds = secs(*elapsed);
            let HostResult::Failed(failure) = result else {
                continue;
            };
            let (kind, step, message) = classify(failure, applied);
            host.error = Some(HostError {
                kind: kind.name(),
                step: step.clone(),
                message: message.clone(),
            });
            if worst.as_ref().is_none_or(|(w, _)| kind.rank() < w.rank()) {
                let error = RunError {
                    kind: kind.name(),
                    host: Some(host.name.clone()),
                    step: Some(step),
                    message,
                };
                worst = Some((kind, error));
            }
        }
        match worst {
            Some((outcome, error)) => {
                self.outcome = outcome.name();
                self.error = Some(error);
                outcome
            }
            None => Outcome::Success,
        }
    }

    /// Ends a run whose phases ran: [`Run::settle`], and an error if a phase failed
    /// (`phases_ok` false) without a host to blame (a host task panicked: a bug).
    pub fn finish(
        &mut self,
        rows: &[SummaryRow],
        steps: &[StepRecord],
        phases_ok: bool,
    ) -> Outcome {
        let outcome = self.settle(rows, steps, true);
        if outcome == Outcome::Success && !phases_ok {
            let outcome = Outcome::Error;
            self.fail(
                outcome,
                "a host task failed unexpectedly (see the messages above)",
            );
            return outcome;
        }
        outcome
    }

    /// Records that `command` was interrupted by `signal` (after the hosts from `rows`
    /// and the commands in `steps`), and says so on `progress`.
    pub fn interrupted(
        &mut self,
        command: &str,
        progress: &crate::ui::Progress,
        signal: &str,
        abandoned: bool,
        rows: &[SummaryRow],
        steps: &[StepRecord],
    ) -> Outcome {
        let running = if abandoned {
            "were abandoned"
        } else {
            "finished"
        };
        let message = format!(
            "interrupted by {signal}: no new work was started; commands that were running \
             {running} (run `bootstrap {command}` again to finish)"
        );
        progress.info(&message);
        self.settle(rows, steps, true);
        self.fail(Outcome::Interrupted, &message);
        Outcome::Interrupted
    }

    /// Passes every message through `clean` (the progress output's run-wide redaction,
    /// [`crate::ui::Progress::clean`]): the document shows no more than the terminal.
    pub fn redact(&mut self, clean: impl Fn(&str) -> String) {
        if let Some(e) = &mut self.error {
            e.message = clean(&e.message);
        }
        for e in self.hosts.iter_mut().filter_map(|h| h.error.as_mut()) {
            e.message = clean(&e.message);
        }
    }

    /// The node objects at the end, and where their kubeconfig goes.
    pub fn set_nodes(&mut self, nodes: &[Node]) {
        self.nodes = nodes.iter().map(NodeInfo::of).collect();
        self.kubeconfig = if nodes.is_empty() {
            None
        } else {
            crate::kubeconfig::default_merge_path().map(|p| p.display().to_string())
        };
    }
}

/// Seconds, rounded to the millisecond: durations are for people and dashboards.
pub fn secs(d: Duration) -> f64 {
    millis(d.as_secs_f64())
}

fn millis(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

/// The outcome of a run that stopped before its phases (connect, facts, plan) after
/// `progress` printed the summary of why: the earliest kind among its failed hosts
/// (`plan`, `status` and `up --dry-run` exit with it, like `up`).
pub fn stopped(progress: &crate::ui::Progress) -> Outcome {
    progress
        .last_summary()
        .unwrap_or_default()
        .iter()
        .filter_map(|(_, _, result, _)| match result {
            HostResult::Failed(f) => Some(classify(f, false).0),
            _ => None,
        })
        .min_by_key(|o| o.rank())
        .unwrap_or(Outcome::Error)
}

/// A host's failure as (kind, step, message), from its kind: a step that failed while
/// the run was still preparing (`applied` false: reading the cluster, planning the
/// manifests) changed nothing, so it is an error, not a failed step.
fn classify(failure: &Failure, applied: bool) -> (Outcome, String, String) {
    let kind = match failure.kind {
        FailureKind::Step if !applied => Outcome::Error,
        kind => kind.outcome(),
    };
    (kind, failure.step.clone(), failure.message.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_reported_by_their_kind_not_their_text() {
        use crate::ssh::SshError;
        let connect = SshError::Connect {
            host: "n2".into(),
            address: "10.200.0.9".into(),
            port: 22,
            reason: "connection refused".into(),
        };
        let sudo = SshError::Sudo {
            host: "n2".into(),
            user: "u".into(),
            reason: "a password is required".into(),
        };
        assert_eq!(
            classify(&Failure::connect(&connect), false),
            (Outcome::Unreachable, "connect".into(), connect.to_string())
        );
        assert_eq!(
            classify(&Failure::connect(&sudo), false).0,
            Outcome::Refused
        );
        assert_eq!(classify(&Failure::facts(&sudo), false).0, Outcome::Refused);
        let other = Failure::refused("plan", "a node of some other cluster");
        assert_eq!(classify(&other, false).0, Outcome::Refused);
        assert_eq!(
            other.to_string(),
            "plan: refused: a node of some other cluster"
        );
        let step = Failure::new("swap-off: turn swap off", "exit status 1:\nno");
        assert_eq!(
            classify(&step, true),
            (
                Outcome::StepFailed,
                "swap-off: turn swap off".into(),
                "exit status 1:\nno".into()
            )
        );
        // The same kind of failure while still preparing (reading the cluster) is an
        // error: no step of the phases ran.
        assert_eq!(classify(&step, false).0, Outcome::Error);
        let wait = Failure::timeout("kubectl wait Ready", "nodes/n2 not Ready");
        assert_eq!(classify(&wait, true).0, Outcome::Timeout);
        assert_eq!(
            classify(&Failure::error("facts", "unparsable"), false).0,
            Outcome::Error
        );
        // A message that reads like another kind is only a message.
        let lookalike = Failure::new("join", "connect: refused: x");
        assert_eq!(classify(&lookalike, true).0, Outcome::StepFailed);
        let mut run = Run::new(Path::new("i.yaml"));
        run.fail(Outcome::Error, "token abc.def");
        run.redact(|t| t.replace("abc.def", "<redacted>"));
        assert_eq!(run.error.unwrap().message, "token <redacted>");
    }

    #[test]
    fn the_run_reports_the_earliest_kind_of_failure() {
        let mut run = Run::new(Path::new("i.yaml"));
        run.hosts = ["n1", "n2", "n3"]
            .map(|n| HostRun {
                name: n.into(),
                address: String::new(),
                role: "worker".into(),
                result: "skipped",
                duration_seconds: 0.0,
                error: None,
                steps: Vec::new(),
            })
            .to_vec();
        let row = |h: &str, f: Failure| {
            (
                h.to_string(),
                "worker".to_string(),
                HostResult::Failed(f),
                Duration::ZERO,
            )
        };
        let rows = [
            row("n1", Failure::refused("facts", "this host runs Debian 12")),
            row("n2", Failure::error("facts", "unparsable")),
            row("n3", Failure::refused("facts", "this host runs Debian 12")),
        ];
        assert_eq!(run.settle(&rows, &[], false), Outcome::Refused);
        let error = run.error.unwrap();
        assert_eq!((error.kind, error.host.as_deref()), ("refused", Some("n1")));
        assert_eq!(run.hosts[1].error.as_ref().unwrap().kind, "error");
    }

    #[test]
    fn the_envelope_comes_first() {
        #[derive(Serialize)]
        struct Body {
            changes: bool,
        }
        let json = to_json("plan", 2, &Body { changes: true }).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["schema"], "bootstrap/plan/v1");
        assert_eq!(v["command"], "plan");
        assert_eq!(v["exit_code"], 2);
        assert_eq!(v["changes"], true);
        assert!(json.trim_start().starts_with("{\n  \"schema\""), "{json}");
    }
}
