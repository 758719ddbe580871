//! The failures of a run as values: why a host failed (step, message, kind), why `up`
//! stopped before touching any host, and which exit status an error that ended a command
//! maps to. They sit below the phases and the report so that both can name them without
//! importing each other.

use crate::exit::Outcome;
use crate::ssh::{redact, Output, SshError};

/// Why a host failed: the step and a message (already redacted), and what kind of
/// failure it was. It travels as this value from where it happens (connect, facts,
/// plan, a phase) through the summary row ([`crate::ui::HostResult::Failed`], keyed by
/// the host) to the report, whose exit status and JSON `kind` come from [`Failure::kind`]
/// alone, never from the message's text.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub step: String,
    pub message: String,
    pub kind: FailureKind,
}

/// What kind of [`Failure`]: each has its own exit status ([`FailureKind::outcome`]), so
/// a CI job can retry an unreachable host or a timeout differently from a broken step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailureKind {
    /// The host could not be connected to (TCP, SSH handshake, host key, login).
    Unreachable,
    /// The host was reached and refused before anything changed (OS, sudo that wants a
    /// password, a plan `up` will not carry out).
    Refused,
    /// A step failed (exit status, lost connection, unexpected output).
    #[default]
    Step,
    /// A wait bounded by `--timeout` ran out before its condition held.
    Timeout,
    /// A signal stopped the run.
    Interrupted,
    /// Anything else: preparing the run failed (facts unreadable, a plan that cannot be
    /// rendered), a bug.
    Error,
}

impl FailureKind {
    /// The outcome (exit status, JSON `kind`) of a run that failed this way.
    pub fn outcome(self) -> Outcome {
        match self {
            FailureKind::Unreachable => Outcome::Unreachable,
            FailureKind::Refused => Outcome::Refused,
            FailureKind::Step => Outcome::StepFailed,
            FailureKind::Timeout => Outcome::Timeout,
            FailureKind::Interrupted => Outcome::Interrupted,
            FailureKind::Error => Outcome::Error,
        }
    }
}

/// What kubectl prints when `wait` or `rollout status` runs out of `--timeout=`
/// (`error: timed out waiting for the condition[ on nodes/NAME]`). kubeadm's own
/// internal waits word theirs differently (`error execution phase ...`).
const KUBECTL_TIMEOUT: &str = "error: timed out waiting for the condition";
/// What `kubectl drain --timeout=` says when it runs out (per pod it could not evict).
const KUBECTL_DRAIN_TIMEOUT: &str = ": global timeout reached: ";

impl Failure {
    pub fn new(step: &str, message: impl Into<String>) -> Failure {
        Failure {
            step: step.to_string(),
            message: message.into(),
            kind: FailureKind::Step,
        }
    }

    /// The host refused at `step` (`connect`, `facts`, `plan`) before anything changed.
    pub fn refused(step: &str, message: impl Into<String>) -> Failure {
        Failure {
            kind: FailureKind::Refused,
            ..Failure::new(step, message)
        }
    }

    /// Preparing the run failed at `step` (neither the host's refusal nor a step of
    /// the phases).
    pub fn error(step: &str, message: impl Into<String>) -> Failure {
        Failure {
            kind: FailureKind::Error,
            ..Failure::new(step, message)
        }
    }

    /// Connecting failed: the host is unreachable, unless it was reached and its sudo
    /// wants a password (refused).
    pub fn connect(e: &SshError) -> Failure {
        match e {
            SshError::Sudo { .. } => Failure::refused("connect", e.to_string()),
            _ => Failure {
                kind: FailureKind::Unreachable,
                ..Failure::new("connect", e.to_string())
            },
        }
    }

    /// Gathering facts failed on an SSH error: a sudo that wants a password refuses the
    /// host; anything else is an error.
    pub fn facts(e: &SshError) -> Failure {
        match e {
            SshError::Sudo { .. } => Failure::refused("facts", e.to_string()),
            _ => Failure::error("facts", e.to_string()),
        }
    }

    /// How a timeout's message starts, so the summary text (all a host's outcome keeps)
    /// still says what kind of failure it was ([`Failure::kind_of`]).
    pub const RAN_OUT: &'static str = "--timeout ran out";

    /// A wait that ran out of `--timeout`: `--timeout ran out: <message>`.
    pub fn timeout(step: &str, message: impl Into<String>) -> Failure {
        Failure {
            kind: FailureKind::Timeout,
            ..Failure::new(step, format!("{}: {}", Failure::RAN_OUT, message.into()))
        }
    }

    /// The kind of failure a message (or a summary line made of one) describes: a
    /// timeout says [`Failure::RAN_OUT`] or quotes kubectl running out of `--timeout=`
    /// (`wait`, `rollout status`; `drain` says `global timeout reached`).
    pub fn kind_of(text: &str) -> FailureKind {
        let kubectl = text.lines().any(|l| {
            l.trim_start().starts_with(KUBECTL_TIMEOUT) || l.contains(KUBECTL_DRAIN_TIMEOUT)
        });
        if kubectl || text.contains(Failure::RAN_OUT) {
            FailureKind::Timeout
        } else {
            FailureKind::Step
        }
    }

    pub fn is_timeout(&self) -> bool {
        self.kind == FailureKind::Timeout
    }

    /// A command exited non-zero: the status and the last lines of its output (stderr,
    /// or stdout when stderr is empty), with `secrets` redacted.
    pub fn exit(step: &str, out: &Output, secrets: &[String]) -> Failure {
        let text = if out.stderr.trim().is_empty() {
            &out.stdout
        } else {
            &out.stderr
        };
        let lines: Vec<&str> = text.trim_end().lines().collect();
        let tail = lines[lines.len().saturating_sub(8)..].join("\n");
        let message = format!(
            "exit status {}{}{}",
            out.status,
            if tail.is_empty() { "" } else { ":\n" },
            redact(&tail, secrets)
        );
        // kubectl wait / rollout status bounded by --timeout= (the playbooks' and the
        // ready phase's waits) report running out of it in this one way.
        Failure {
            kind: Failure::kind_of(&tail),
            ..Failure::new(step, message)
        }
    }
}

/// `step: message` (a refusal says so: `step: refused: message`), as the summary shows it.
impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            FailureKind::Refused => write!(f, "{}: refused: {}", self.step, self.message),
            _ => write!(f, "{}: {}", self.step, self.message),
        }
    }
}

/// Why `up` stopped before applying anything.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum UpError {
    #[error("cannot create the run log: {0}")]
    RunLog(String),
}

/// Maps an error that ended a command before it produced an outcome of its own.
pub fn of_error(report: &miette::Report) -> Outcome {
    use crate::inventory::InventoryError;
    // A file that cannot be read is an I/O error like any other (exit 1); an inventory
    // that was read and is invalid, or a path that is no inventory (a FIFO, a huge file),
    // has its own code.
    let invalid = matches!(
        report.downcast_ref::<InventoryError>(),
        Some(InventoryError::Invalid { .. } | InventoryError::NotAnInventory { .. })
    );
    if invalid {
        Outcome::InvalidInventory
    } else {
        Outcome::Error
    }
}
