//! What the person (or CI log) running `bootstrap` sees while it works: an indicatif line
//! per host with its current step and a bar per phase on a terminal, plain timestamped
//! lines otherwise, and a summary table at the end. Secrets never reach it: callers pass
//! redacted text only.

use std::time::Duration;

/// The outcome of one host in a run, for the summary table.
#[derive(Debug, Clone, PartialEq)]
pub enum HostResult {
    /// Nothing needed doing.
    Unchanged,
    /// Steps ran and succeeded.
    Changed,
    /// A step failed; the message names the step.
    Failed(String),
    /// Not reached because an earlier phase failed.
    Skipped,
}

/// Progress reporting for one run. Cheap to clone and share across tasks.
#[derive(Clone)]
pub struct Progress {}

impl Progress {
    /// Chooses the terminal or the plain-line renderer (plain when stderr is not a
    /// terminal or `CI` is set).
    pub fn new() -> Progress {
        Progress {}
    }
    /// A phase begins on `hosts` hosts.
    pub fn phase_start(&self, _phase: &str, _hosts: usize) {}
    /// A host begins a step within the current phase.
    pub fn step(&self, _host: &str, _step: &str) {}
    /// A host finished its part of the current phase.
    pub fn host_done(&self, _host: &str, _ok: bool) {}
    /// The phase ended.
    pub fn phase_done(&self, _phase: &str, _elapsed: Duration) {}
    /// A line of information not tied to a host (e.g. "nothing to do").
    pub fn info(&self, _msg: &str) {}
    /// The final table: host, role, result, time.
    pub fn summary(&self, _rows: &[(String, String, HostResult, Duration)]) {}
}
