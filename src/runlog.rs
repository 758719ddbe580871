//! The run log: one directory per run holding, per host, every command's script and
//! full output, so a failure can be diagnosed after the terminal scrolled away (the
//! terminal only shows step names). Secrets are redacted before anything is written.
//!
//! Layout: `<base>/<UTC timestamp>-<pid>/<host>.log` (+ `run.log` for run-wide notes).
//! Every command that reaches a file also lands, as one [`StepRecord`], in an in-memory
//! list the run's JSON document (`--output json`, src/report.rs) is built from: one
//! place every command already passes, so the document cannot miss one.
//! The base defaults to `$XDG_STATE_HOME/bootstrap/runs`, else
//! `~/.local/state/bootstrap/runs`. Directories are 0700 and files 0600: even redacted,
//! command output describes the cluster's internals.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::ssh::{redact, Output, RemoteCommand, SshError};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RunLogError {
    #[error("cannot create the run log directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the run log {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no place for run logs: neither XDG_STATE_HOME nor HOME is set (pass a log directory)"
    )]
    NoDefaultBase,
}

/// One run's log directory.
#[derive(Debug, Clone)]
pub struct RunLog {
    dir: PathBuf,
    steps: Steps,
}

/// Appends to one host's log file.
#[derive(Debug, Clone)]
pub struct HostLog {
    path: PathBuf,
    host: String,
    steps: Steps,
}

/// The commands recorded so far, shared by every clone of a [`RunLog`].
#[derive(Debug, Clone)]
struct Steps {
    started: Instant,
    list: Arc<Mutex<Vec<StepRecord>>>,
}

/// One recorded command, without its script or output (those are only in the files).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StepRecord {
    /// The host the command ran on.
    pub host: String,
    pub step: String,
    /// Seconds from the start of the run to the end of the command.
    pub finished_at_seconds: f64,
    pub duration_seconds: f64,
    /// `ok` (exit 0), `failed` (another exit status; for probes that can be data) or
    /// `error` (the command did not complete: connection lost, sudo refused...).
    pub result: &'static str,
    /// None when the command did not complete.
    pub exit_status: Option<u32>,
}

impl RunLog {
    /// `$XDG_STATE_HOME/bootstrap/runs`, else `$HOME/.local/state/bootstrap/runs`.
    pub fn default_base() -> Result<PathBuf, RunLogError> {
        let nonempty = |v: &str| std::env::var_os(v).filter(|s| !s.is_empty());
        if let Some(state) = nonempty("XDG_STATE_HOME") {
            return Ok(PathBuf::from(state).join("bootstrap").join("runs"));
        }
        nonempty("HOME")
            .map(|h| PathBuf::from(h).join(".local/state/bootstrap/runs"))
            .ok_or(RunLogError::NoDefaultBase)
    }

    /// The run log of one command: under `base_dir` when the user chose one
    /// (`--log-dir`), else under [`RunLog::default_base`].
    pub fn open(base_dir: Option<&Path>) -> Result<RunLog, RunLogError> {
        match base_dir {
            Some(base) => RunLog::create(base),
            None => RunLog::create(&RunLog::default_base()?),
        }
    }

    /// Creates `<base_dir>/<timestamp>-<pid>/` (and `base_dir` if needed).
    pub fn create(base_dir: &Path) -> Result<RunLog, RunLogError> {
        let stamp = chrono::Utc::now().format("%Y-%m-%dT%H-%M-%SZ");
        let dir = base_dir.join(format!("{stamp}-{}", std::process::id()));
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|source| RunLogError::CreateDir {
                path: dir.clone(),
                source,
            })?;
        Ok(RunLog {
            dir,
            steps: Steps {
                started: Instant::now(),
                list: Arc::default(),
            },
        })
    }

    /// The run's directory, to tell the person where to look.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log of one host (`<dir>/<host>.log`).
    pub fn host(&self, host: &str) -> HostLog {
        HostLog {
            path: self.dir.join(format!("{}.log", file_name(host))),
            host: host.to_string(),
            steps: self.steps.clone(),
        }
    }

    /// Every command recorded so far, in the order they finished.
    pub fn steps(&self) -> Vec<StepRecord> {
        self.steps
            .list
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A run-wide line in `<dir>/run.log` (e.g. the plan, the phase boundaries).
    pub fn note(&self, text: &str) -> Result<(), RunLogError> {
        append(
            &self.dir.join("run.log"),
            &format!("{} {text}\n", timestamp()),
        )
    }
}

impl HostLog {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one command: step, script, stdin size, status, elapsed, full stdout and
    /// stderr, all with `cmd.secrets` redacted.
    pub fn record(
        &self,
        step: &str,
        cmd: &RemoteCommand,
        output: &Output,
        elapsed: Duration,
    ) -> Result<(), RunLogError> {
        let result = if output.success() { "ok" } else { "failed" };
        self.remember(step, elapsed, result, Some(output.status));
        let mut entry = header(step, cmd, &format!("exit {}", output.status), elapsed);
        section(&mut entry, "stdout", &output.stdout);
        section(&mut entry, "stderr", &output.stderr);
        entry.push('\n');
        append(&self.path, &redact(&entry, &cmd.secrets))
    }

    /// Appends whatever `Connection::run` returned: output or error.
    pub fn record_result(
        &self,
        step: &str,
        cmd: &RemoteCommand,
        result: &Result<Output, SshError>,
        elapsed: Duration,
    ) -> Result<(), RunLogError> {
        match result {
            Ok(output) => self.record(step, cmd, output, elapsed),
            Err(e) => self.record_error(step, cmd, e, elapsed),
        }
    }

    /// Appends a command that did not complete (connection lost, sudo refused...).
    pub fn record_error(
        &self,
        step: &str,
        cmd: &RemoteCommand,
        error: &dyn std::fmt::Display,
        elapsed: Duration,
    ) -> Result<(), RunLogError> {
        self.remember(step, elapsed, "error", None);
        let mut entry = header(step, cmd, "error", elapsed);
        section(&mut entry, "error", &error.to_string());
        entry.push('\n');
        append(&self.path, &redact(&entry, &cmd.secrets))
    }
}

impl HostLog {
    fn remember(&self, step: &str, elapsed: Duration, result: &'static str, status: Option<u32>) {
        let record = StepRecord {
            host: self.host.clone(),
            step: step.to_string(),
            finished_at_seconds: self.steps.started.elapsed().as_secs_f64(),
            duration_seconds: elapsed.as_secs_f64(),
            result,
            exit_status: status,
        };
        self.steps
            .list
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record);
    }
}

fn header(step: &str, cmd: &RemoteCommand, result: &str, elapsed: Duration) -> String {
    let mut s = format!(
        "=== {} {step} ({result}, {:.3}s{})\n",
        timestamp(),
        elapsed.as_secs_f64(),
        if cmd.root { ", as root" } else { "" }
    );
    section(&mut s, "script", &cmd.script);
    if let Some(stdin) = &cmd.stdin {
        s.push_str(&format!("--- stdin: {} bytes\n", stdin.len()));
    }
    s
}

fn section(s: &mut String, name: &str, body: &str) {
    s.push_str(&format!("--- {name}\n"));
    s.push_str(body);
    if !body.is_empty() && !body.ends_with('\n') {
        s.push_str("\n[no newline at end]\n");
    }
}

fn timestamp() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// One `write` of the whole entry with O_APPEND, so entries of concurrent commands on
/// the same host do not interleave.
fn append(path: &Path, text: &str) -> Result<(), RunLogError> {
    let err = |source| RunLogError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)
}

/// A host name safe as a file name: node names are DNS labels already, but the log must
/// not be written outside its directory whatever the inventory says.
fn file_name(host: &str) -> String {
    let s: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("_{s}")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const TOKEN: &str = "abcdef.0123456789abcdef";

    #[test]
    fn records_script_and_output_without_secrets() {
        let base = tempfile::tempdir().unwrap();
        let log = RunLog::create(base.path()).unwrap();
        assert!(log.dir().starts_with(base.path()));
        let name = log.dir().file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            name.ends_with(&format!("-{}", std::process::id())),
            "{name}"
        );
        let cmd = RemoteCommand {
            script: format!("kubeadm join 10.0.0.1:6443 --token {TOKEN}"),
            stdin: Some(format!("token: {TOKEN}\n").into_bytes()),
            root: true,
            secrets: vec![TOKEN.to_string()],
        };
        let out = Output {
            status: 1,
            stdout: format!("using token {TOKEN}\n"),
            stderr: format!("error: token {TOKEN} expired"),
        };
        let host = log.host("node-1");
        host.record("join", &cmd, &out, Duration::from_millis(1500))
            .unwrap();
        host.record_result(
            "join",
            &cmd,
            &Err(SshError::Lost {
                host: "node-1".to_string(),
                reason: format!("lost while sending {TOKEN}"),
            }),
            Duration::ZERO,
        )
        .unwrap();
        let text = std::fs::read_to_string(log.dir().join("node-1.log")).unwrap();
        assert!(!text.contains(TOKEN), "{text}");
        assert!(!text.contains("0123456789abcdef"), "{text}");
        assert!(text.contains("--token <redacted>"), "{text}");
        assert!(text.contains("using token <redacted>"), "{text}");
        assert!(text.contains("error: token <redacted> expired"), "{text}");
        assert!(text.contains("lost while sending <redacted>"), "{text}");
        assert!(text.contains("join (exit 1, 1.500s, as root)"), "{text}");
        assert!(text.contains("--- stdin: 31 bytes"), "{text}");
        let mode = std::fs::metadata(host.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = std::fs::metadata(log.dir()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // Both commands are in the in-memory list, through any clone of the log.
        let steps = log.clone().steps();
        let results: Vec<_> = steps
            .iter()
            .map(|s| (s.host.as_str(), s.result, s.exit_status))
            .collect();
        assert_eq!(
            results,
            [("node-1", "failed", Some(1)), ("node-1", "error", None)]
        );
        assert_eq!(steps[0].duration_seconds, 1.5);
    }

    #[test]
    fn host_names_cannot_escape_the_directory() {
        assert_eq!(file_name("../etc/passwd"), "_.._etc_passwd");
        assert_eq!(file_name("node-1.example"), "node-1.example");
        assert_eq!(file_name(""), "_");
    }

    #[test]
    fn notes_go_to_run_log() {
        let base = tempfile::tempdir().unwrap();
        let log = RunLog::create(&base.path().join("a/b")).unwrap();
        log.note("phase prepare started").unwrap();
        let text = std::fs::read_to_string(log.dir().join("run.log")).unwrap();
        assert!(text.ends_with(" phase prepare started\n"));
    }
}
