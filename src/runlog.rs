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
//!
//! The base may be shared (a world-writable `--log-dir`) and the run directory's name is
//! predictable, so another user could plant it, or symlinks in it, in advance: the run
//! directory is always created new (an existing one is never used), checked to be ours,
//! and kept open; every file is created through that descriptor with
//! `O_CREAT|O_EXCL|O_NOFOLLOW`, so neither a planted file nor a later rename of the
//! directory can redirect root's writes.

use std::collections::HashSet;
use std::fs::{DirBuilder, File};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustix::fs::{Mode, OFlags};
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
        "cannot create a new run log directory in {}: {} and the {} names after it exist \
         (someone else may be creating them in a shared directory)",
        base.display(), first.display(), ATTEMPTS - 1
    )]
    Taken { base: PathBuf, first: PathBuf },
    #[error(
        "no place for run logs: neither XDG_STATE_HOME nor HOME is set (pass a log directory)"
    )]
    NoDefaultBase,
}

/// Names tried for a new run directory (`<stamp>-<pid>`, then `-1`, `-2`, ...).
const ATTEMPTS: usize = 10;

/// One run's log directory.
#[derive(Debug, Clone)]
pub struct RunLog {
    dir: PathBuf,
    files: Files,
    steps: Steps,
}

/// Appends to one host's log file.
#[derive(Debug, Clone)]
pub struct HostLog {
    path: PathBuf,
    /// The file's name in the run directory.
    name: String,
    files: Files,
    host: String,
    steps: Steps,
}

/// The open run directory and the files this run created in it.
#[derive(Debug, Clone)]
struct Files {
    dir: Arc<OwnedFd>,
    created: Arc<Mutex<HashSet<String>>>,
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

    /// Creates a new `<base_dir>/<timestamp>-<pid>/` (`-1`, `-2`, ... appended while the
    /// name exists), and `base_dir` if needed.
    pub fn create(base_dir: &Path) -> Result<RunLog, RunLogError> {
        let create_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RunLogError::CreateDir { path, source }
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(base_dir)
            .map_err(create_err(base_dir))?;
        let stamp = chrono::Utc::now().format("%Y-%m-%dT%H-%M-%SZ");
        let first = base_dir.join(format!("{stamp}-{}", std::process::id()));
        let mut made = None;
        for attempt in 0..ATTEMPTS {
            let dir = match attempt {
                0 => first.clone(),
                n => PathBuf::from(format!("{}-{n}", first.display())),
            };
            // Not recursive: fails with EEXIST instead of using what is there.
            match DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {
                    made = Some(dir);
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(create_err(&dir)(e)),
            }
        }
        let Some(dir) = made else {
            return Err(RunLogError::Taken {
                base: base_dir.to_path_buf(),
                first,
            });
        };
        let fd = open_own_dir(&dir).map_err(create_err(&dir))?;
        Ok(RunLog {
            dir,
            files: Files {
                dir: Arc::new(fd),
                created: Arc::default(),
            },
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
        let name = format!("{}.log", file_name(host));
        HostLog {
            path: self.dir.join(&name),
            name,
            files: self.files.clone(),
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
        self.files
            .append(&self.dir, "run.log", &format!("{} {text}\n", timestamp()))
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
        self.files
            .append(&self.path, &self.name, &redact(&entry, &cmd.secrets))
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
        self.files
            .append(&self.path, &self.name, &redact(&entry, &cmd.secrets))
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

/// Opens the directory just made and checks it is the one we made: a directory (not a
/// symlink put in its place), ours, 0700.
fn open_own_dir(dir: &Path) -> std::io::Result<OwnedFd> {
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let stat = rustix::fs::fstat(&fd)?;
    if stat.st_uid != rustix::process::geteuid().as_raw() {
        return Err(std::io::Error::other(
            "the new directory belongs to another user (replaced after it was created)",
        ));
    }
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700))?;
    Ok(fd)
}

impl Files {
    /// One `write` of the whole entry with O_APPEND, so entries of concurrent commands on
    /// the same host do not interleave. The first write of a run creates the file
    /// (O_EXCL), later ones append to it; none follows a symlink.
    fn append(&self, path: &Path, name: &str, text: &str) -> Result<(), RunLogError> {
        let err = |source: std::io::Error| RunLogError::Write {
            path: path.to_path_buf(),
            source,
        };
        let flags = OFlags::WRONLY | OFlags::APPEND | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = {
            let mut created = self.created.lock().unwrap_or_else(|e| e.into_inner());
            let flags = if created.contains(name) {
                flags
            } else {
                flags | OFlags::CREATE | OFlags::EXCL
            };
            let fd = rustix::fs::openat(&*self.dir, name, flags, Mode::from_raw_mode(0o600))
                .map_err(|e| err(e.into()))?;
            created.insert(name.to_string());
            fd
        };
        File::from(fd).write_all(text.as_bytes()).map_err(err)
    }
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

    fn command() -> (RemoteCommand, Output) {
        let cmd = RemoteCommand {
            script: "true".into(),
            stdin: None,
            root: true,
            secrets: Vec::new(),
        };
        let out = Output {
            status: 0,
            stdout: "written\n".into(),
            stderr: String::new(),
        };
        (cmd, out)
    }

    #[test]
    fn an_existing_run_directory_is_never_used() {
        // Another user plants the predictable names (this second and the next) in a
        // shared --log-dir, each with a symlink where a host log will go.
        let base = tempfile::tempdir().unwrap();
        let victim = base.path().join("victim");
        std::fs::write(&victim, "").unwrap();
        let now = chrono::Utc::now();
        let mut planted = Vec::new();
        for t in [now, now + chrono::Duration::seconds(1)] {
            let stamp = t.format("%Y-%m-%dT%H-%M-%SZ");
            let dir = base.path().join(format!("{stamp}-{}", std::process::id()));
            std::fs::create_dir(&dir).unwrap();
            std::os::unix::fs::symlink(&victim, dir.join("node-1.log")).unwrap();
            std::os::unix::fs::symlink(&victim, dir.join("run.log")).unwrap();
            planted.push(dir);
        }
        let log = RunLog::create(base.path()).unwrap();
        assert!(
            !planted.contains(&log.dir().to_path_buf()),
            "{:?}",
            log.dir()
        );
        assert!(log.dir().starts_with(base.path()));
        let (cmd, out) = command();
        log.host("node-1")
            .record("step", &cmd, &out, Duration::ZERO)
            .unwrap();
        log.note("note").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "");
        let mode = std::fs::metadata(log.dir()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn a_run_directory_swapped_for_a_symlink_is_not_followed() {
        let base = tempfile::tempdir().unwrap();
        let log = RunLog::create(base.path()).unwrap();
        let (cmd, out) = command();
        let host = log.host("node-1");
        host.record("first", &cmd, &out, Duration::ZERO).unwrap();
        // The directory is renamed and a symlink to elsewhere takes its place.
        let moved = base.path().join("moved");
        let elsewhere = base.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::rename(log.dir(), &moved).unwrap();
        std::os::unix::fs::symlink(&elsewhere, log.dir()).unwrap();
        host.record("second", &cmd, &out, Duration::ZERO).unwrap();
        log.note("note").unwrap();
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
        let text = std::fs::read_to_string(moved.join("node-1.log")).unwrap();
        assert!(text.contains("second"), "{text}");
        assert!(moved.join("run.log").exists());
    }

    #[test]
    fn a_file_planted_before_the_first_write_is_refused() {
        // Can only happen through the directory's owner (us), but O_EXCL says so.
        let base = tempfile::tempdir().unwrap();
        let log = RunLog::create(base.path()).unwrap();
        std::fs::write(log.dir().join("node-1.log"), "planted").unwrap();
        let (cmd, out) = command();
        let err = log.host("node-1").record("s", &cmd, &out, Duration::ZERO);
        assert!(matches!(err, Err(RunLogError::Write { .. })), "{err:?}");
    }
}
