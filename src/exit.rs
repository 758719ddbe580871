//! The exit status of every subcommand, in one table, so a CI job can branch on what
//! went wrong without parsing text. docs/output.md documents it (a test below keeps the
//! two in step) and README.md has the short version.
//!
//! 2 is shared: `plan` and `up --dry-run` use it for "changes pending" (terraform's
//! `-detailed-exitcode`), and clap exits 2 on a command-line usage error before anything
//! runs (then there is no JSON document and stderr says `error: ...`). 130 is the shell's
//! convention for a process ended by SIGINT (128 + 2).

use std::process::ExitCode;

/// What a run ended with; each has its own exit status ([`Outcome::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Everything the command was asked to do is done (`up`: every node Ready with its
    /// labels and taints; `plan`: nothing to do).
    Success,
    /// An error that fits none of the other rows (a bug, a run log that cannot be
    /// written, an unexpected answer from a host).
    Error,
    /// `plan` / `up --dry-run`: `up` would change something.
    ChangesPending,
    /// The inventory is invalid, or `up` cannot handle it (more than one control plane);
    /// nothing was contacted. (An inventory file that cannot be read is exit 1.)
    InvalidInventory,
    /// A host could not be connected to (TCP, SSH handshake, host key, authentication).
    Unreachable,
    /// A host was reached and refused before anything changed: an unsupported OS, sudo
    /// that wants a password, a host of another cluster, a state `up` will not touch.
    Refused,
    /// A step failed on a host (the JSON document names the host and the step).
    StepFailed,
    /// A wait bounded by `--timeout` ran out (nodes not Ready, a rollout not done).
    Timeout,
    /// SIGINT (Ctrl-C) or SIGTERM: no new work was started, the summary was printed.
    Interrupted,
}

pub const SUCCESS: u8 = 0;
pub const ERROR: u8 = 1;
pub const CHANGES_PENDING: u8 = 2;
pub const INVALID_INVENTORY: u8 = 3;
pub const UNREACHABLE: u8 = 4;
pub const REFUSED: u8 = 5;
pub const STEP_FAILED: u8 = 6;
pub const TIMEOUT: u8 = 7;
pub const INTERRUPTED: u8 = 130;

/// Every outcome, in the order of the documented table.
pub const ALL: [Outcome; 9] = [
    Outcome::Success,
    Outcome::Error,
    Outcome::ChangesPending,
    Outcome::InvalidInventory,
    Outcome::Unreachable,
    Outcome::Refused,
    Outcome::StepFailed,
    Outcome::Timeout,
    Outcome::Interrupted,
];

impl Outcome {
    /// The process exit status.
    pub fn code(self) -> u8 {
        match self {
            Outcome::Success => SUCCESS,
            Outcome::Error => ERROR,
            Outcome::ChangesPending => CHANGES_PENDING,
            Outcome::InvalidInventory => INVALID_INVENTORY,
            Outcome::Unreachable => UNREACHABLE,
            Outcome::Refused => REFUSED,
            Outcome::StepFailed => STEP_FAILED,
            Outcome::Timeout => TIMEOUT,
            Outcome::Interrupted => INTERRUPTED,
        }
    }

    /// The name the JSON documents use (`error.kind`, `outcome`).
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Error => "error",
            Outcome::ChangesPending => "changes-pending",
            Outcome::InvalidInventory => "invalid-inventory",
            Outcome::Unreachable => "unreachable",
            Outcome::Refused => "refused",
            Outcome::StepFailed => "step-failed",
            Outcome::Timeout => "timeout",
            Outcome::Interrupted => "interrupted",
        }
    }

    /// When several hosts failed differently, the one the exit status reports: the
    /// earliest in the run (unreachable before refused before a failed step), so the
    /// code says where the run stopped.
    pub fn rank(self) -> u8 {
        match self {
            Outcome::Interrupted => 0,
            Outcome::InvalidInventory => 1,
            Outcome::Unreachable => 2,
            Outcome::Refused => 3,
            Outcome::Error => 4,
            Outcome::Timeout => 5,
            Outcome::StepFailed => 6,
            Outcome::ChangesPending => 7,
            Outcome::Success => 8,
        }
    }

    pub fn exit_code(self) -> ExitCode {
        ExitCode::from(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct() {
        let mut codes: Vec<u8> = ALL.iter().map(|o| o.code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), ALL.len());
    }

    /// docs/output.md's exit-status table lists every outcome with its code and name.
    #[test]
    fn the_documented_table_matches() {
        let doc = include_str!("../docs/output.md");
        for o in ALL {
            let row = format!("| {} | `{}` |", o.code(), o.name());
            assert!(doc.contains(&row), "docs/output.md lacks the row `{row}`");
        }
        let readme = include_str!("../README.md");
        for o in ALL {
            let row = format!("| {} | `{}` |", o.code(), o.name());
            assert!(readme.contains(&row), "README.md lacks the row `{row}`");
        }
    }
}
