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
use crate::failure::{Failure, FailureKind, PLAN_REFUSED};
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
            let HostResult::Failed(text) = result else {
                continue;
            };
            let (kind, step, message) = classify(&host.name, text, &host.steps, applied);
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

/// How ssh::SshError::Sudo words a login that cannot become root without a password.
const SUDO_REFUSED: &str = "cannot run commands as root without a password";

/// A summary row's failure text as (kind, step, message).
///
/// The text is what the run printed: `connect: ...` (unreachable), `refused: ...` (the
/// facts refused the host), `<host>: ...` (a cluster-level refusal from the plan),
/// `facts: ...` / `plan: ...` (could not prepare), or a [`Failure`]'s `step: message`
/// once the phases ran. Step names themselves contain `: ` (`swap-off: turn swap off`),
/// so the step is the longest recorded command name the text starts with.
fn classify(
    host: &str,
    text: &str,
    steps: &[StepRecord],
    applied: bool,
) -> (Outcome, String, String) {
    let split = |prefix: &str| text.strip_prefix(prefix).map(str::to_string);
    // Reached, but sudo wants a password (ssh::SshError::Sudo, found while connecting
    // or gathering facts): the host refuses to let the tool work, like an unsupported OS.
    for stage in ["connect", "facts"] {
        if let Some(rest) = split(&format!("{stage}: ")).filter(|r| r.contains(SUDO_REFUSED)) {
            return (Outcome::Refused, stage.into(), rest);
        }
    }
    if let Some(rest) = split("connect: ") {
        return (Outcome::Unreachable, "connect".into(), rest);
    }
    if let Some(rest) = split(PLAN_REFUSED) {
        return (Outcome::Refused, "plan".into(), rest);
    }
    if let Some(rest) = split("refused: ") {
        return (Outcome::Refused, "facts".into(), rest);
    }
    if let Some(rest) = split(&format!("{host}: ")) {
        return (Outcome::Refused, "plan".into(), rest);
    }
    let recorded = steps
        .iter()
        .map(|s| s.step.as_str())
        .filter(|s| text.starts_with(&format!("{s}: ")))
        .max_by_key(|s| s.len());
    let (step, message) = match recorded {
        Some(s) => (s.to_string(), text[s.len() + 2..].to_string()),
        None => match text.split_once(": ") {
            Some((s, m)) => (s.to_string(), m.to_string()),
            None => (String::new(), text.to_string()),
        },
    };
    let kind = if Failure::kind_of(&message) == FailureKind::Timeout {
        Outcome::Timeout
    } else if applied {
        Outcome::StepFailed
    } else {
        Outcome::Error
    };
    (kind, step, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(host: &str, name: &str) -> StepRecord {
        StepRecord {
            host: host.into(),
            step: name.into(),
            finished_at_seconds: 1.0,
            duration_seconds: 0.5,
            result: "failed",
            exit_status: Some(1),
        }
    }

    #[test]
    fn failures_are_classified_from_what_the_summary_says() {
        let steps = [step("n2", "swap-off: turn swap off")];
        let c = |text: &str, applied| classify("n2", text, &steps, applied);
        assert_eq!(
            c("connect: n2 (10.200.0.9:22): cannot connect", false),
            (
                Outcome::Unreachable,
                "connect".into(),
                "n2 (10.200.0.9:22): cannot connect".into()
            )
        );
        assert_eq!(
            c("refused: this host runs Debian", false).0,
            Outcome::Refused
        );
        assert_eq!(
            c("n2: a node of some other cluster", false).0,
            Outcome::Refused
        );
        assert_eq!(
            c("swap-off: turn swap off: exit status 1:\nno", true),
            (
                Outcome::StepFailed,
                "swap-off: turn swap off".into(),
                "exit status 1:\nno".into()
            )
        );
        let t = c(
            "kubectl wait Ready: exit status 1:\nerror: timed out waiting for the condition on nodes/n2",
            true,
        );
        assert_eq!(
            (t.0, t.1.as_str()),
            (Outcome::Timeout, "kubectl wait Ready")
        );
        assert_eq!(c("facts: unparsable", false).0, Outcome::Error);
        let mut run = Run::new(Path::new("i.yaml"));
        run.fail(Outcome::Error, "token abc.def");
        run.redact(|t| t.replace("abc.def", "<redacted>"));
        assert_eq!(run.error.unwrap().message, "token <redacted>");
        let sudo =
            "facts: n2: user u cannot run commands as root without a password (sudo -n failed): x";
        assert_eq!(c(sudo, false).0, Outcome::Refused);
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
