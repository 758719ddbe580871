//! What the person (or CI log) running `bootstrap` sees while it works: an indicatif line
//! per host with its current step and a bar per phase on a terminal, plain timestamped
//! lines otherwise, and a summary table at the end. Secrets never reach it: callers pass
//! redacted text only.
//!
//! Everything goes to stderr; stdout stays free for machine-readable output.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::failure::Failure;

/// The outcome of one host in a run, for the summary table.
#[derive(Debug, Clone, PartialEq)]
pub enum HostResult {
    /// Nothing needed doing.
    Unchanged,
    /// Steps ran and succeeded.
    Changed,
    /// The host failed: why, as a value (the report takes its kind from it).
    Failed(Failure),
    /// Not reached because an earlier phase failed.
    Skipped,
}

impl HostResult {
    /// The result as `--output json` names it: changed, unchanged, failed, skipped.
    pub fn name(&self) -> &'static str {
        match self {
            HostResult::Unchanged => "unchanged",
            HostResult::Changed => "changed",
            HostResult::Failed(_) => "failed",
            HostResult::Skipped => "skipped",
        }
    }

    fn label(&self) -> &'static str {
        match self {
            HostResult::Unchanged => "unchanged",
            HostResult::Changed => "changed",
            HostResult::Failed(_) => "FAILED",
            HostResult::Skipped => "skipped",
        }
    }
}

/// Progress reporting for one run. Cheap to clone and share across tasks.
#[derive(Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

struct Inner {
    out: Output,
    state: Mutex<State>,
}

enum Output {
    /// indicatif bars on the terminal.
    Terminal(MultiProgress),
    /// Timestamped lines to a writer (stderr unless testing).
    Plain(Mutex<Box<dyn Write + Send>>),
    /// Nothing (tests, or `--quiet`).
    Hidden,
}

#[derive(Default)]
struct State {
    phase: Option<String>,
    phase_bar: Option<ProgressBar>,
    /// Host lines of the current phase, by host name.
    hosts: BTreeMap<String, ProgressBar>,
    /// Hosts whose line shows a success, oldest first: evicted when lines run out.
    finished_ok: Vec<String>,
    /// Running hosts without a line (more hosts than `MAX_HOST_LINES`).
    unshown: std::collections::BTreeSet<String>,
    failed: usize,
    done: usize,
    total: usize,
    /// Width of the host column, so host lines align.
    host_width: usize,
    /// Run-wide secrets (e.g. the join token once created): a second line of defence
    /// behind callers redacting what they pass.
    secrets: Vec<String>,
    /// The rows of the last summary printed, for the run's JSON document: a run that
    /// stops before its phases only says why in its summary.
    summary: Option<Vec<SummaryRow>>,
}

/// One row of the summary table: host, role, result, time spent.
pub type SummaryRow = (String, String, HostResult, Duration);

const TICK_CHARS: &str = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ";

/// At most this many host lines on the terminal: a 200-host inventory must not scroll
/// the bars off screen. Finished hosts give their line up first; failed ones keep it.
const MAX_HOST_LINES: usize = 20;

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Progress {
    /// Chooses the terminal or the plain-line renderer (plain when stderr is not a
    /// terminal or `CI` is set).
    pub fn new() -> Progress {
        let interactive = std::io::stderr().is_terminal()
            && std::env::var_os("CI").is_none()
            && std::env::var("TERM").map_or(true, |t| t != "dumb");
        if interactive {
            Progress::from_output(Output::Terminal(MultiProgress::with_draw_target(
                ProgressDrawTarget::stderr(),
            )))
        } else {
            Progress::plain(Box::new(std::io::stderr()))
        }
    }

    /// Plain timestamped lines to `writer`, whatever the terminal.
    pub fn plain(writer: Box<dyn Write + Send>) -> Progress {
        Progress::from_output(Output::Plain(Mutex::new(writer)))
    }

    /// Reports nothing.
    pub fn hidden() -> Progress {
        Progress::from_output(Output::Hidden)
    }

    fn from_output(out: Output) -> Progress {
        Progress {
            inner: Arc::new(Inner {
                out,
                state: Mutex::new(State::default()),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not silence progress reporting.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A phase begins on `hosts` hosts.
    pub fn phase_start(&self, phase: &str, hosts: usize) {
        let mut st = self.state();
        clear_hosts(&mut st);
        st.phase = Some(phase.to_string());
        st.failed = 0;
        st.done = 0;
        st.total = hosts;
        match &self.inner.out {
            Output::Terminal(multi) => {
                let bar = multi.add(ProgressBar::new(hosts as u64));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} hosts {elapsed} {msg}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(phase.to_string());
                bar.enable_steady_tick(Duration::from_millis(250));
                st.phase_bar = Some(bar);
            }
            Output::Plain(w) => line(w, &format!("[{phase}] start on {hosts} host(s)")),
            Output::Hidden => {}
        }
    }

    /// Registers secrets that must never be shown, whoever passes text containing them.
    pub fn redact_also<I: IntoIterator<Item = String>>(&self, secrets: I) {
        let mut st = self.state();
        st.secrets
            .extend(secrets.into_iter().filter(|s| !s.is_empty()));
    }

    /// `text` with every run-wide secret redacted: what any output of the run must be.
    pub fn clean(&self, text: &str) -> String {
        let st = self.state();
        crate::ssh::redact(text, &st.secrets)
    }

    /// A host begins a step within the current phase.
    pub fn step(&self, host: &str, step: &str) {
        let step = &self.clean(step);
        let mut guard = self.state();
        let st = &mut *guard;
        match &self.inner.out {
            Output::Terminal(multi) => {
                if host.len() > st.host_width {
                    st.host_width = host.len();
                    // Re-pad every line so the step column stays aligned.
                    let width = st.host_width;
                    for (name, bar) in &st.hosts {
                        bar.set_prefix(format!("{name:width$}"));
                    }
                }
                let width = st.host_width;
                if !st.hosts.contains_key(host) {
                    if st.hosts.len() >= MAX_HOST_LINES && !st.finished_ok.is_empty() {
                        let evicted = st.finished_ok.remove(0);
                        if let Some(bar) = st.hosts.remove(&evicted) {
                            bar.finish_and_clear();
                            multi.remove(&bar);
                        }
                    }
                    if st.hosts.len() >= MAX_HOST_LINES {
                        st.unshown.insert(host.to_string());
                        update_unshown(st);
                        return;
                    }
                    st.unshown.remove(host);
                    update_unshown(st);
                    let bar = match &st.phase_bar {
                        Some(phase_bar) => {
                            multi.insert_before(phase_bar, ProgressBar::new_spinner())
                        }
                        None => multi.add(ProgressBar::new_spinner()),
                    };
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{spinner:.green} {prefix} {wide_msg} {elapsed:>4}",
                        )
                        .expect("valid template")
                        .tick_chars(TICK_CHARS),
                    );
                    bar.enable_steady_tick(Duration::from_millis(100));
                    st.hosts.insert(host.to_string(), bar);
                }
                if let Some(bar) = st.hosts.get(host) {
                    bar.set_prefix(format!("{host:width$}"));
                    bar.set_message(step.to_string());
                }
            }
            Output::Plain(w) => {
                let phase = st.phase.as_deref().unwrap_or("-");
                line(w, &format!("[{phase}] {host}: {step}"));
            }
            Output::Hidden => {}
        }
    }

    /// A host finished its part of the current phase.
    pub fn host_done(&self, host: &str, ok: bool) {
        let mut st = self.state();
        st.done += 1;
        if !ok {
            st.failed += 1;
        }
        match &self.inner.out {
            Output::Terminal(_) => {
                if st.unshown.remove(host) {
                    update_unshown(&st);
                }
                if ok && st.hosts.contains_key(host) {
                    st.finished_ok.push(host.to_string());
                }
                if let Some(bar) = st.hosts.get(host) {
                    bar.set_style(
                        ProgressStyle::with_template("{prefix} {wide_msg} {elapsed:>4}")
                            .expect("valid template"),
                    );
                    let mark = if ok { "✔" } else { "✘" };
                    bar.set_prefix(format!("{mark} {host:w$}", w = st.host_width));
                    bar.finish_with_message(if ok { "done" } else { "FAILED" });
                }
                if let Some(bar) = &st.phase_bar {
                    bar.inc(1);
                }
            }
            Output::Plain(w) => {
                let phase = st.phase.as_deref().unwrap_or("-");
                let what = if ok { "done" } else { "FAILED" };
                line(w, &format!("[{phase}] {host}: {what}"));
            }
            Output::Hidden => {}
        }
    }

    /// The phase ended.
    pub fn phase_done(&self, phase: &str, elapsed: Duration) {
        let mut st = self.state();
        let outcome = if st.failed > 0 {
            format!("{} of {} host(s) FAILED", st.failed, st.total)
        } else {
            format!("{} host(s)", st.total)
        };
        let text = format!("[{phase}] done in {}: {outcome}", human_duration(elapsed));
        clear_hosts(&mut st);
        if let Some(bar) = st.phase_bar.take() {
            bar.finish_and_clear();
        }
        st.phase = None;
        match &self.inner.out {
            Output::Terminal(multi) => {
                let mark = if st.failed > 0 { "✘" } else { "✔" };
                let _ = multi.println(format!("{mark} {text}"));
            }
            Output::Plain(w) => line(w, &text),
            Output::Hidden => {}
        }
    }

    /// The rows of the last summary printed, if any.
    pub fn last_summary(&self) -> Option<Vec<SummaryRow>> {
        self.state().summary.clone()
    }

    /// A line of information not tied to a host (e.g. "nothing to do").
    pub fn info(&self, msg: &str) {
        let msg = &self.clean(msg);
        match &self.inner.out {
            Output::Terminal(multi) => {
                let _ = multi.println(msg);
            }
            Output::Plain(w) => line(w, msg),
            Output::Hidden => {}
        }
    }

    /// The final table: host, role, result, time.
    pub fn summary(&self, rows: &[(String, String, HostResult, Duration)]) {
        self.state().summary = Some(rows.to_vec());
        let table = self.clean(&render_summary(rows));
        match &self.inner.out {
            Output::Terminal(multi) => multi.suspend(|| eprint!("{table}")),
            Output::Plain(w) => {
                let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
                let _ = w.write_all(table.as_bytes());
                let _ = w.flush();
            }
            Output::Hidden => {}
        }
    }
}

/// "+N more hosts" on the phase bar when some running hosts have no line.
fn update_unshown(st: &State) {
    if let Some(bar) = &st.phase_bar {
        match st.unshown.len() {
            0 => bar.set_message(""),
            n => bar.set_message(format!("(+{n} more running)")),
        }
    }
}

fn clear_hosts(st: &mut State) {
    st.finished_ok.clear();
    st.unshown.clear();
    for (_, bar) in std::mem::take(&mut st.hosts) {
        bar.finish_and_clear();
    }
}

/// One plain line: `2026-11-25T17:00:00Z <text>`.
fn line(w: &Mutex<Box<dyn Write + Send>>, text: &str) {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
    // Progress output is best effort: a closed stderr must not abort the run.
    let _ = writeln!(w, "{now} {text}");
    let _ = w.flush();
}

/// The summary table, aligned, followed by the failure messages (which can be long and
/// would break the alignment inside the table) and a count line.
pub fn render_summary(rows: &[(String, String, HostResult, Duration)]) -> String {
    let header = ["HOST", "ROLE", "RESULT", "TIME"];
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|(host, role, result, time)| {
            [
                host.clone(),
                role.clone(),
                result.label().to_string(),
                human_duration(*time),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut push_row = |row: [&str; 4]| {
        let mut s = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i == 3 {
                // Right-align the time.
                s.push_str(&format!("{cell:>w$}"));
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    push_row(header);
    for row in &cells {
        push_row([&row[0], &row[1], &row[2], &row[3]]);
    }

    let mut failures = String::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (host, _, result, _) in rows {
        *counts.entry(result.label()).or_default() += 1;
        if let HostResult::Failed(failure) = result {
            failures.push_str(&format!(
                "\n{host}: {}\n",
                failure.to_string().trim_end().replace('\n', "\n    ")
            ));
        }
    }
    out.push_str(&failures);
    let mut parts = Vec::new();
    for label in ["changed", "unchanged", "FAILED", "skipped"] {
        if let Some(n) = counts.get(label) {
            parts.push(format!("{n} {}", label.to_lowercase()));
        }
    }
    out.push_str(&format!("\n{} host(s): {}\n", rows.len(), parts.join(", ")));
    out
}

/// `850ms`, `12.3s`, `3m04s`, `1h02m`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 3600 {
        format!("{}h{:02}m", secs / 3600, secs % 3600 / 60)
    } else if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Buf {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn plain_lines_are_timestamped_with_phase_and_host() {
        let buf = Buf::default();
        let p = Progress::plain(Box::new(buf.clone()));
        p.phase_start("prepare", 2);
        p.step("node-1", "install containerd");
        p.host_done("node-1", true);
        p.host_done("node-2", false);
        p.phase_done("prepare", Duration::from_millis(12_300));
        p.info("nothing to do");
        let text = buf.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "{text}");
        for l in &lines {
            // 2026-11-25T17:00:00Z
            let (ts, _) = l.split_once(' ').unwrap();
            assert_eq!(ts.len(), 20, "{l}");
            assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{l}");
        }
        assert!(lines[1].ends_with(" [prepare] node-1: install containerd"));
        assert!(lines[3].ends_with(" [prepare] node-2: FAILED"));
        assert!(lines[4].ends_with(" [prepare] done in 12.3s: 1 of 2 host(s) FAILED"));
        assert!(lines[5].ends_with(" nothing to do"));
    }

    #[test]
    fn summary_is_an_aligned_table() {
        let rows = vec![
            (
                "cp-1".to_string(),
                "control-plane".to_string(),
                HostResult::Changed,
                Duration::from_secs(185),
            ),
            (
                "worker-long-name".to_string(),
                "worker".to_string(),
                HostResult::Failed(Failure::new(
                    "step join",
                    "kubeadm join exited 1\nsecond line",
                )),
                Duration::from_millis(4_200),
            ),
            (
                "w2".to_string(),
                "worker".to_string(),
                HostResult::Skipped,
                Duration::ZERO,
            ),
        ];
        let t = render_summary(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "HOST              ROLE           RESULT    TIME");
        assert_eq!(lines[1], "cp-1              control-plane  changed  3m05s");
        assert_eq!(lines[2], "worker-long-name  worker         FAILED    4.2s");
        assert_eq!(lines[3], "w2                worker         skipped    0ms");
        assert!(
            t.contains("\nworker-long-name: step join: kubeadm join exited 1\n    second line\n")
        );
        assert!(
            t.ends_with("3 host(s): 1 changed, 1 failed, 1 skipped\n"),
            "{t}"
        );
    }

    #[test]
    fn hidden_and_terminal_modes_do_not_panic() {
        for p in [
            Progress::hidden(),
            Progress::from_output(Output::Terminal(MultiProgress::with_draw_target(
                ProgressDrawTarget::hidden(),
            ))),
        ] {
            let q = p.clone();
            p.phase_start("init", 1);
            q.step("a-very-long-host-name", "kubeadm init");
            q.step("b", "x");
            q.host_done("a-very-long-host-name", true);
            q.host_done("unknown-host", false);
            p.phase_done("init", Duration::from_secs(1));
            p.info("hi");
            p.summary(&[]);
        }
    }

    #[test]
    fn terminal_lines_are_capped() {
        let p = Progress::from_output(Output::Terminal(MultiProgress::with_draw_target(
            ProgressDrawTarget::hidden(),
        )));
        p.phase_start("prepare", 50);
        for i in 0..50 {
            p.step(&format!("h{i}"), "apt-get install");
        }
        {
            let st = p.state();
            assert_eq!(st.hosts.len(), MAX_HOST_LINES);
            assert_eq!(st.unshown.len(), 50 - MAX_HOST_LINES);
        }
        // Finished hosts give up their line to hosts still running.
        for i in 0..5 {
            p.host_done(&format!("h{i}"), true);
        }
        p.step("h30", "kubeadm join");
        {
            let st = p.state();
            assert!(st.hosts.contains_key("h30"));
            assert!(!st.hosts.contains_key("h0"));
            assert_eq!(st.hosts.len(), MAX_HOST_LINES);
        }
        p.phase_done("prepare", Duration::from_secs(3));
        assert!(p.state().hosts.is_empty());
    }

    #[test]
    fn registered_secrets_are_redacted() {
        let buf = Buf::default();
        let p = Progress::plain(Box::new(buf.clone()));
        p.redact_also(["abcdef.0123456789abcdef".to_string(), String::new()]);
        p.info("join with abcdef.0123456789abcdef");
        p.step("n1", "kubeadm join --token abcdef.0123456789abcdef");
        p.summary(&[(
            "n1".to_string(),
            "worker".to_string(),
            HostResult::Failed(Failure::new(
                "join",
                "token abcdef.0123456789abcdef expired",
            )),
            Duration::ZERO,
        )]);
        let text = buf.text();
        assert!(!text.contains("0123456789abcdef"), "{text}");
        assert_eq!(text.matches("<redacted>").count(), 3, "{text}");
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(human_duration(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(human_duration(Duration::from_secs(184)), "3m04s");
        assert_eq!(human_duration(Duration::from_secs(3720)), "1h02m");
    }
}
