//! Running the phases so that a signal ends a run the documented way: the first
//! SIGINT/SIGTERM lets the running phase's commands finish and starts nothing else, a
//! second one abandons them; the summary then says which hosts were skipped.

/// SIGINT (Ctrl-C) and SIGTERM, caught from the start of a run so that an interrupt
/// ends it the documented way (summary, JSON document, exit 130) instead of killing the
/// process mid-write. Needs a tokio runtime.
pub struct Interrupt {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Interrupt {
    pub fn listen() -> std::io::Result<Interrupt> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Interrupt {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for the first of them; the signal's name.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}

/// How [`apply_until_interrupted`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Every phase ran and succeeded.
    Done,
    /// Phase `phase` failed on some host (or a host task panicked); no later one ran.
    Failed { phase: usize },
    /// A signal arrived during phase `phase`; no later one ran. `abandoned`: a second
    /// signal came before the phase's commands finished, and they were abandoned.
    Interrupted {
        phase: usize,
        signal: &'static str,
        abandoned: bool,
    },
}

/// Runs `phases` in order like [`super::apply`], one at a time so that an
/// interrupt lands between two of them: the first SIGINT/SIGTERM lets the running
/// phase's commands finish (a `kubeadm init` cut in half would leave a host the next
/// run has to refuse) and starts no other phase; a second one abandons them at once
/// (GitHub Actions sends SIGINT, then SIGTERM a few seconds later when cancelling).
pub async fn apply_until_interrupted(
    ctx: &std::sync::Arc<super::Ctx>,
    phases: &[super::Phase],
    interrupt: &mut Interrupt,
) -> Applied {
    for phase in 0..phases.len() {
        let running = super::apply(ctx, &phases[phase..=phase]);
        tokio::pin!(running);
        tokio::select! {
            ok = &mut running => if !ok {
                return Applied::Failed { phase };
            },
            signal = interrupt.recv() => {
                ctx.progress.info(&format!(
                    "{signal}: letting the running commands finish, starting nothing else \
                     (send it again to abandon them)"
                ));
                let abandoned = tokio::select! {
                    _ = &mut running => false,
                    _ = interrupt.recv() => true,
                };
                return Applied::Interrupted { phase, signal, abandoned };
            }
        }
    }
    Applied::Done
}

impl Applied {
    /// The summary rows after the run: like [`super::apply`] after a failure,
    /// a host that did not fail and had work in a phase that never ran (or was
    /// abandoned) is `skipped`.
    pub fn rows(self, ctx: &super::Ctx, phases: &[super::Phase]) -> Vec<crate::ui::SummaryRow> {
        use crate::ui::HostResult;
        let not_run = match self {
            Applied::Done => &phases[phases.len()..],
            Applied::Failed { phase } => &phases[phase + 1..],
            Applied::Interrupted {
                phase, abandoned, ..
            } => &phases[phase + usize::from(!abandoned)..],
        };
        let skipped: std::collections::BTreeSet<String> =
            not_run.iter().flat_map(|p| (p.hosts)(ctx)).collect();
        ctx.summary_rows()
            .into_iter()
            .map(|(host, role, result, t)| match result {
                // A host that changed stays `changed` (the outcome says the run did not
                // finish); only one that changed nothing and still had work is skipped.
                HostResult::Failed(_) | HostResult::Changed => (host, role, result, t),
                _ if skipped.contains(&host) => (host, role, HostResult::Skipped, t),
                _ => (host, role, result, t),
            })
            .collect()
    }
}
