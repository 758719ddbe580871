//! Applying the plan: phases run one after another with a barrier between them; inside a
//! phase every host that has work runs in parallel (bounded by `--parallelism`).
//!
//! Like k0sctl's phase/*.go, a [`Phase`] selects its hosts from what was gathered and
//! planned (no hosts = nothing to do = skipped), then runs its per-host work. If a host
//! fails, the other hosts of that phase still finish, but no later phase starts: a
//! half-joined cluster is easier to reason about than one where Calico was applied to a
//! control plane that failed to initialize. Every command goes through [`Ctx::exec`], so
//! each shows up in the progress UI and, with its full (redacted) output, in the run log.

pub mod cluster_plan;
pub mod cni;
pub mod host_steps;
pub mod init;
pub mod interrupt;
pub mod join;
pub mod join_token;
pub mod labels;
pub mod manifests;
pub mod options;
pub mod ready;
pub mod up;
pub mod upgrade;
pub mod upgrade_plan;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::inventory::{Host, Inventory, Role};
use crate::plan::PlannedStep;
use crate::runlog::RunLog;
use crate::ssh::{Connection, Output, RemoteCommand};
use crate::ui::{HostResult, Progress};

pub use crate::failure::{Failure, FailureKind};
pub use crate::inventory::role_name;
pub use cluster_plan::ClusterPlan;
pub use options::{MaxUnavailable, RunOptions, UpgradeOptions};

/// The per-host work of a phase: Ok(true) if it changed something.
pub type HostFuture = Pin<Box<dyn Future<Output = Result<bool, Failure>> + Send>>;

/// A whole phase's work when its hosts must go in a particular order (the upgrade:
/// control planes one at a time, then workers in batches): it reports every host's
/// progress and outcome itself ([`Ctx::host_started`], [`Ctx::host_finished`]) and
/// returns false if any host failed.
pub type PhaseFuture = Pin<Box<dyn Future<Output = bool> + Send>>;

/// How a phase runs its hosts.
pub enum Work {
    /// Every host at once (bounded by `--parallelism`).
    PerHost(fn(Arc<Ctx>, String) -> HostFuture),
    /// The phase orders its hosts itself.
    Rollout(fn(Arc<Ctx>, Vec<String>) -> PhaseFuture),
}

/// One phase: its name, which hosts have work, and the work.
pub struct Phase {
    pub name: &'static str,
    pub hosts: fn(&Ctx) -> Vec<String>,
    pub run: Work,
}

/// The phases of `up`, in order.
pub const UP: &[Phase] = &[
    Phase {
        name: "prereqs",
        hosts: host_steps::prereqs_hosts,
        run: Work::PerHost(host_steps::run_prereqs),
    },
    Phase {
        name: "runtime",
        hosts: host_steps::runtime_hosts,
        run: Work::PerHost(host_steps::run_runtime),
    },
    Phase {
        name: "packages",
        hosts: host_steps::packages_hosts,
        run: Work::PerHost(host_steps::run_packages),
    },
    Phase {
        name: "init",
        hosts: init::hosts,
        run: Work::PerHost(init::run),
    },
    Phase {
        name: "upgrade",
        hosts: upgrade::hosts,
        run: Work::Rollout(upgrade::run),
    },
    Phase {
        name: "join-token",
        hosts: join_token::hosts,
        run: Work::PerHost(join_token::run),
    },
    Phase {
        name: "join",
        hosts: join::hosts,
        run: Work::PerHost(join::run),
    },
    Phase {
        name: "cni",
        hosts: cni::hosts,
        run: Work::PerHost(cni::run),
    },
    Phase {
        name: "labels",
        hosts: labels::hosts,
        run: Work::PerHost(labels::run),
    },
    Phase {
        name: "ready",
        hosts: ready::hosts,
        run: Work::PerHost(ready::run),
    },
    Phase {
        name: "manifests",
        hosts: manifests::hosts,
        run: Work::PerHost(manifests::run),
    },
];

/// Replaces every secret with `<redacted>` (the ssh module's redaction).
pub fn redact(text: &str, secrets: &[String]) -> String {
    crate::ssh::redact(text, secrets)
}

/// Bootstrap tokens (`[a-z0-9]{6}.[a-z0-9]{16}`, reference §4) found in `text`. Output
/// can reveal secrets nobody knew in advance: `kubeadm init` prints the token it creates
/// and a join line with it; `kubeadm token create` prints a new one. A token may stand
/// at the end of a sentence or inside a dotted word (`token abcdef.0123456789abcdef.`),
/// so every pair of neighbouring dot-separated parts is tried, not only whole words:
/// redacting a little more than a token is harmless, missing one is not.
pub fn bootstrap_tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.'))
        .flat_map(|word| {
            let parts: Vec<&str> = word.split('.').collect();
            parts
                .windows(2)
                .map(|pair| format!("{}.{}", pair[0], pair[1]))
                .filter(|t| join_token::is_token(t))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `cmd` with the secrets its output revealed added, for logs and error messages.
fn with_revealed(cmd: &RemoteCommand, out: &Output) -> RemoteCommand {
    let mut cmd = cmd.clone();
    for text in [&out.stdout, &out.stderr] {
        for token in bootstrap_tokens(text) {
            if let Some((_, secret)) = token.split_once('.') {
                cmd.secrets.push(secret.to_string());
            }
            cmd.secrets.push(token);
        }
    }
    cmd
}

/// A host's outcome so far, for the summary.
#[derive(Debug, Clone)]
struct Outcome {
    result: HostResult,
    elapsed: Duration,
}

/// Everything a phase needs, shared by all its tasks.
pub struct Ctx {
    pub inv: Inventory,
    /// The first control plane's name: where init, kubectl and kubeadm token run.
    pub first_cp: String,
    pub conns: BTreeMap<String, Arc<Connection>>,
    /// Each host's plan (F1's host-level steps).
    pub host_plans: BTreeMap<String, crate::plan::HostPlan>,
    /// Each host's facts, for rendering playbook steps at run time.
    pub facts: BTreeMap<String, crate::facts::HostFacts>,
    pub plan: ClusterPlan,
    pub progress: Progress,
    pub log: RunLog,
    pub parallelism: usize,
    /// How long to wait for Ready.
    pub timeout: Duration,
    /// How upgrades roll through the workers (`--max-unavailable`, `--drain-timeout`).
    pub upgrade: UpgradeOptions,
    /// Set by the join-token phase, used by the join phase. Secret.
    pub join: Mutex<Option<join_token::JoinCommand>>,
    /// The node objects read at the start of the labels phase, shared by its tasks.
    pub nodes_now: tokio::sync::OnceCell<Result<Vec<crate::cluster::Node>, Failure>>,
    outcomes: Mutex<BTreeMap<String, Outcome>>,
}

impl Ctx {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        inv: Inventory,
        conns: BTreeMap<String, Arc<Connection>>,
        facts: BTreeMap<String, crate::facts::HostFacts>,
        host_plans: BTreeMap<String, crate::plan::HostPlan>,
        plan: ClusterPlan,
        progress: Progress,
        log: RunLog,
        parallelism: usize,
        timeout: Duration,
    ) -> Ctx {
        let first_cp = inv
            .hosts
            .iter()
            .find(|h| h.role == Role::ControlPlane)
            .map(|h| h.name.clone())
            .unwrap_or_default();
        let outcomes = inv
            .hosts
            .iter()
            .map(|h| {
                (
                    h.name.clone(),
                    Outcome {
                        result: HostResult::Unchanged,
                        elapsed: Duration::ZERO,
                    },
                )
            })
            .collect();
        Ctx {
            inv,
            first_cp,
            conns,
            host_plans,
            facts,
            plan,
            progress,
            log,
            parallelism: parallelism.max(1),
            timeout,
            upgrade: UpgradeOptions::default(),
            join: Mutex::new(None),
            nodes_now: tokio::sync::OnceCell::new(),
            outcomes: Mutex::new(outcomes),
        }
    }

    /// Sets how upgrades roll (`up`'s --max-unavailable and --drain-timeout).
    pub fn with_upgrade(mut self, upgrade: UpgradeOptions) -> Ctx {
        self.upgrade = upgrade;
        self
    }

    pub fn host(&self, name: &str) -> &Host {
        self.inv
            .hosts
            .iter()
            .find(|h| h.name == name)
            .expect("phases only name inventory hosts")
    }

    fn conn(&self, name: &str) -> Result<&Arc<Connection>, Failure> {
        self.conns
            .get(name)
            .ok_or_else(|| Failure::new("connect", format!("no connection to {name}")))
    }

    /// Runs `cmd` on host `on`, reported as a step of `report_as` (they differ when a
    /// node's labels are changed through the control plane). A non-zero exit status is
    /// a [`Failure`]. Logged to the run log.
    pub async fn exec(
        &self,
        on: &str,
        report_as: &str,
        step: &str,
        cmd: &RemoteCommand,
    ) -> Result<Output, Failure> {
        let out = self.exec_status(on, report_as, step, cmd).await?;
        if out.success() {
            Ok(out)
        } else {
            Err(Failure::exit(step, &out, &with_revealed(cmd, &out).secrets))
        }
    }

    /// Like [`Ctx::exec`] but any exit status is Ok: for probes whose status is data.
    pub async fn exec_status(
        &self,
        on: &str,
        report_as: &str,
        step: &str,
        cmd: &RemoteCommand,
    ) -> Result<Output, Failure> {
        let started = Instant::now();
        let out = self.exec_unlogged(on, report_as, step, cmd).await;
        let log = self.log.host(on);
        let written = match &out {
            Ok(o) => log.record(step, &with_revealed(cmd, o), o, started.elapsed()),
            Err(f) => log.record_error(step, cmd, &f.message, started.elapsed()),
        };
        if let Err(e) = written {
            tracing::warn!("{e}");
        }
        out
    }

    /// Runs without writing the run log: for commands whose output holds secrets that
    /// are only known once it is parsed; the caller records it with [`Ctx::record`].
    pub async fn exec_unlogged(
        &self,
        on: &str,
        report_as: &str,
        step: &str,
        cmd: &RemoteCommand,
    ) -> Result<Output, Failure> {
        self.progress.step(report_as, step);
        let conn = self.conn(on)?;
        tracing::debug!(host = on, step, "run");
        conn.run(cmd)
            .await
            .map_err(|e| Failure::new(step, redact(&e.to_string(), &cmd.secrets)))
    }

    /// Appends a command and its output to host `on`'s run log (redacted there).
    pub fn record(&self, on: &str, step: &str, cmd: &RemoteCommand, out: &Output) {
        let cmd = with_revealed(cmd, out);
        if let Err(e) = self.log.host(on).record(step, &cmd, out, Duration::ZERO) {
            tracing::warn!("{e}");
        }
    }

    /// Runs planned playbook steps on `host` in order; the first failure stops it. A step
    /// whose output is secret (`output_secret`) is logged without its output.
    pub async fn run_steps(&self, host: &str, steps: &[PlannedStep]) -> Result<(), Failure> {
        for s in steps {
            let name = format!("{}: {}", s.step, s.description);
            if s.output_secret {
                let out = self.exec_unlogged(host, host, &name, &s.command).await?;
                let shown = Output {
                    status: out.status,
                    stdout: "<withheld: secret output>".into(),
                    stderr: out.stderr.clone(),
                };
                self.record(host, &name, &s.command, &shown);
                if !out.success() {
                    return Err(Failure::exit(&name, &shown, &s.command.secrets));
                }
            } else {
                self.exec(host, host, &name, &s.command).await?;
            }
        }
        Ok(())
    }

    /// Whether anything at all is planned (host steps or cluster steps).
    pub fn has_work(&self) -> bool {
        !self.plan.is_empty() || self.host_plans.values().any(|p| !p.is_empty())
    }

    fn set(&self, host: &str, result: HostResult, elapsed: Duration) {
        let mut o = self.outcomes.lock().unwrap();
        let entry = o.entry(host.to_string()).or_insert(Outcome {
            result: HostResult::Unchanged,
            elapsed: Duration::ZERO,
        });
        entry.elapsed += elapsed;
        // Failed sticks; then Changed (something on the host changed, even if later
        // work was not reached), then Skipped (work pending, nothing changed), Unchanged.
        entry.result = match (&entry.result, result) {
            (HostResult::Failed(m), _) => HostResult::Failed(m.clone()),
            (_, HostResult::Failed(m)) => HostResult::Failed(m),
            (HostResult::Changed, _) | (_, HostResult::Changed) => HostResult::Changed,
            (HostResult::Skipped, _) | (_, HostResult::Skipped) => HostResult::Skipped,
            (_, r) => r,
        };
    }

    /// Reports a host's result in the current phase (progress line, summary); returns
    /// whether it succeeded.
    pub fn host_finished(
        &self,
        host: &str,
        result: &Result<bool, Failure>,
        elapsed: Duration,
    ) -> bool {
        match result {
            Ok(changed) => {
                self.progress.host_done(host, true);
                let r = if *changed {
                    HostResult::Changed
                } else {
                    HostResult::Unchanged
                };
                self.set(host, r, elapsed);
                true
            }
            Err(f) => {
                self.progress.host_done(host, false);
                self.progress
                    .info(&format!("{host}: {} failed: {}", f.step, f.message));
                self.set(host, HostResult::Failed(f.clone()), elapsed);
                false
            }
        }
    }

    /// Marks a host that a phase did not get to (it stopped after another's failure).
    pub fn host_skipped(&self, host: &str) {
        self.set(host, HostResult::Skipped, Duration::ZERO);
    }

    /// Marks hosts that failed before any phase (connect, facts, refusal).
    pub fn fail(&self, host: &str, failure: &Failure) {
        self.set(host, HostResult::Failed(failure.clone()), Duration::ZERO);
    }

    /// Whether any host failed.
    pub fn failed(&self) -> bool {
        self.outcomes
            .lock()
            .unwrap()
            .values()
            .any(|o| matches!(o.result, HostResult::Failed(_)))
    }

    /// Rows for the summary table, in inventory order.
    pub fn summary_rows(&self) -> Vec<(String, String, HostResult, Duration)> {
        let o = self.outcomes.lock().unwrap();
        self.inv
            .hosts
            .iter()
            .map(|h| {
                let out = o.get(&h.name);
                (
                    h.name.clone(),
                    role_name(h.role).to_string(),
                    out.map(|o| o.result.clone())
                        .unwrap_or(HostResult::Unchanged),
                    out.map(|o| o.elapsed).unwrap_or_default(),
                )
            })
            .collect()
    }
}

/// Runs one phase on its hosts and waits for all of them (the barrier). Returns false if
/// any host failed.
pub async fn run_phase(ctx: &Arc<Ctx>, phase: &Phase) -> bool {
    let hosts = (phase.hosts)(ctx);
    if hosts.is_empty() {
        tracing::debug!(phase = phase.name, "no work");
        return true;
    }
    let started = Instant::now();
    ctx.progress.phase_start(phase.name, hosts.len());
    let ok = match phase.run {
        Work::PerHost(run) => run_per_host(ctx, phase.name, run, hosts).await,
        Work::Rollout(run) => run(Arc::clone(ctx), hosts).await,
    };
    ctx.progress.phase_done(phase.name, started.elapsed());
    ok
}

/// Runs `run` on every host in parallel, at most `--parallelism` at once.
async fn run_per_host(
    ctx: &Arc<Ctx>,
    phase: &str,
    run: fn(Arc<Ctx>, String) -> HostFuture,
    hosts: Vec<String>,
) -> bool {
    let permits = Arc::new(tokio::sync::Semaphore::new(ctx.parallelism));
    let mut tasks = tokio::task::JoinSet::new();
    for host in hosts {
        let ctx = Arc::clone(ctx);
        let permits = Arc::clone(&permits);
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("semaphore closed");
            let t = Instant::now();
            let result = run(Arc::clone(&ctx), host.clone()).await;
            (host, result, t.elapsed())
        });
    }
    let mut ok = true;
    while let Some(joined) = tasks.join_next().await {
        let (host, result, elapsed) = match joined {
            Ok(r) => r,
            Err(e) => {
                // A panic in a host's task (a bug): report it, keep the others going.
                ctx.progress
                    .info(&format!("{phase}: a host task failed unexpectedly: {e}"));
                ok = false;
                continue;
            }
        };
        ok &= ctx.host_finished(&host, &result, elapsed);
    }
    ok
}

/// Runs the phases in order; stops after the first phase with a failure and marks the
/// hosts that still had work as skipped. Returns false if anything failed.
pub async fn apply(ctx: &Arc<Ctx>, phases: &[Phase]) -> bool {
    for (i, phase) in phases.iter().enumerate() {
        if !run_phase(ctx, phase).await {
            for later in &phases[i + 1..] {
                for host in (later.hosts)(ctx) {
                    ctx.set(&host, HostResult::Skipped, Duration::ZERO);
                }
            }
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_longest_first() {
        let s = vec!["abc".to_string(), "abc.def".to_string(), String::new()];
        assert_eq!(redact("x abc.def y abc", &s), "x <redacted> y <redacted>");
    }

    #[test]
    fn finds_bootstrap_tokens_in_output() {
        let out = Output {
            status: 0,
            stdout: "[bootstrap-token] Using token: w3i0o8.rocz0rbpcd2sx9wo\n\
                     kubeadm join 10.0.0.1:6443 --token w3i0o8.rocz0rbpcd2sx9wo \\\n"
                .into(),
            stderr: "not.a-token abcdef.0123456789abcdefg x".into(),
        };
        let cmd = with_revealed(&RemoteCommand::default(), &out);
        assert!(cmd.secrets.contains(&"w3i0o8.rocz0rbpcd2sx9wo".to_string()));
        assert!(cmd.secrets.contains(&"rocz0rbpcd2sx9wo".to_string()));
        assert_eq!(cmd.secrets.len(), 4, "{:?}", cmd.secrets);
        assert!(!redact(&out.stdout, &cmd.secrets).contains("rocz0rbpcd2sx9wo"));
    }

    #[test]
    fn finds_tokens_followed_by_a_dot_or_inside_dotted_words() {
        let text = "created token abcdef.0123456789abcdef. Then x.ghijkl.0123456789ghijkl.y";
        assert_eq!(
            bootstrap_tokens(text),
            ["abcdef.0123456789abcdef", "ghijkl.0123456789ghijkl"]
        );
        assert!(bootstrap_tokens("abcdef.0123456789abcdefg abcdef.012345678").is_empty());
    }

    #[test]
    fn failure_keeps_the_tail() {
        let out = Output {
            status: 100,
            stdout: "noise".into(),
            stderr: (1..=20).map(|i| format!("line {i} tok\n")).collect(),
        };
        let f = Failure::exit("apt-get install", &out, &["tok".into()]);
        assert!(f
            .message
            .starts_with("exit status 100:\nline 13 <redacted>"));
        assert!(f.message.ends_with("line 20 <redacted>"));
        assert!(!f.message.contains("noise"));
        let quiet = Output {
            status: 1,
            ..Default::default()
        };
        assert_eq!(Failure::exit("x", &quiet, &[]).message, "exit status 1");
        assert!(!f.is_timeout());
    }

    #[test]
    fn kubectl_running_out_of_its_timeout_is_a_timeout() {
        let waited = Output {
            status: 1,
            stdout: String::new(),
            stderr: "error: timed out waiting for the condition on nodes/node2\n".into(),
        };
        assert!(Failure::exit("kubectl wait Ready", &waited, &[]).is_timeout());
        // kubeadm's internal waits are step failures: --timeout did not bound them.
        let kubeadm = Output {
            status: 1,
            stdout: String::new(),
            stderr: "error execution phase kubelet-start: timed out waiting for the condition"
                .into(),
        };
        assert!(!Failure::exit("kubeadm join", &kubeadm, &[]).is_timeout());
        let drain = Output {
            status: 1,
            stdout: String::new(),
            stderr:
                "error when evicting pods/\"web-1\" -n \"default\": global timeout reached: 5s\n"
                    .into(),
        };
        assert!(Failure::exit("drain-node", &drain, &[]).is_timeout());
    }
}
