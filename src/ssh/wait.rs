//! Waiting for hosts that do not accept SSH yet: in CI, machines are created moments
//! before the run and their sshd comes up a minute later. A host that refuses or ignores
//! the TCP connection, or drops the handshake, is tried again with exponential backoff
//! until the run-wide limit; a host that answers with a wrong key or refuses the login is
//! not (waiting does not fix those). While hosts are awaited, a line every few seconds
//! says which, for how long yet, and their last error.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

use super::{secs, Notify, SshError};

/// The first pause between attempts; doubled after each, up to `MAX_DELAY`.
const FIRST_DELAY: Duration = Duration::from_millis(500);
const MAX_DELAY: Duration = Duration::from_secs(8);
/// How often the progress line is repeated while hosts are awaited.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// The wait shared by every host of one `connect_all_with`.
#[derive(Clone)]
pub(crate) struct Waiting {
    limit: Duration,
    started: Instant,
    /// Hosts whose last attempt failed and that will be tried again, with that error.
    awaited: Arc<Mutex<BTreeMap<String, String>>>,
}

impl Waiting {
    pub fn new(limit: Duration) -> Waiting {
        Waiting {
            limit,
            started: Instant::now(),
            awaited: Arc::default(),
        }
    }

    fn awaited(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.awaited.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `attempt` until it succeeds, fails for a reason waiting cannot fix, or the
    /// limit has passed; then its last result. A host given up on says how long it was
    /// waited for.
    pub async fn retry<T, F, Fut>(&self, host: &str, mut attempt: F) -> Result<T, SshError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SshError>>,
    {
        let mut delay = FIRST_DELAY;
        loop {
            let result = attempt().await;
            let left = self.limit.saturating_sub(self.started.elapsed());
            match result {
                Err(e) if e.waiting_helps() && !self.limit.is_zero() => {
                    if left.is_zero() {
                        self.awaited().remove(host);
                        return Err(e.noted(&format!(
                            " (still not accepting SSH after waiting {} (--wait-for-ssh))",
                            secs(self.limit)
                        )));
                    }
                    self.awaited().insert(host.to_string(), e.detail());
                    tokio::time::sleep(delay.min(left)).await;
                    delay = (delay * 2).min(MAX_DELAY);
                }
                other => {
                    self.awaited().remove(host);
                    return other;
                }
            }
        }
    }

    /// Never returns: every `REPORT_EVERY`, while some host is awaited, sends `notify` a
    /// line naming the hosts awaited, the time left and one of their last errors.
    pub async fn report_until_done(&self, notify: Option<Notify>) {
        let Some(notify) = notify.filter(|_| !self.limit.is_zero()) else {
            return std::future::pending().await;
        };
        loop {
            tokio::time::sleep(REPORT_EVERY).await;
            if let Some(line) = self.line() {
                notify(line);
            }
        }
    }

    /// The progress line, if any host is awaited.
    fn line(&self) -> Option<String> {
        let awaited = self.awaited();
        let (first, error) = awaited.iter().next()?;
        const SHOWN: usize = 5;
        let mut names: Vec<&str> = awaited.keys().take(SHOWN).map(String::as_str).collect();
        if awaited.len() > SHOWN {
            names.push("...");
        }
        let left = self.limit.saturating_sub(self.started.elapsed());
        Some(format!(
            "waiting for SSH on {} host{} ({}), {}s left of --wait-for-ssh {}; {first}: {error}",
            awaited.len(),
            if awaited.len() == 1 { "" } else { "s" },
            names.join(", "),
            left.as_secs(),
            secs(self.limit),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(host: &str) -> SshError {
        SshError::Connect {
            host: host.to_string(),
            address: "10.0.0.1".to_string(),
            port: 22,
            reason: "connection refused".to_string(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_the_host_answers_and_names_it_meanwhile() {
        let waiting = Waiting::new(Duration::from_secs(60));
        let mut calls = 0;
        let w = waiting.clone();
        let result = waiting
            .retry("node2", || {
                calls += 1;
                let n = calls;
                let line = w.line();
                async move {
                    if n > 1 {
                        let line = line.expect("node2 is awaited");
                        assert!(line.contains("1 host (node2)"), "{line}");
                        assert!(line.contains("connection refused"), "{line}");
                    }
                    if n < 4 {
                        Err(refused("node2"))
                    } else {
                        Ok(n)
                    }
                }
            })
            .await;
        assert_eq!(result.unwrap(), 4);
        assert!(waiting.line().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_at_the_limit_with_the_last_error() {
        let waiting = Waiting::new(Duration::from_secs(20));
        let started = tokio::time::Instant::now();
        let err = waiting
            .retry("node2", || async { Err::<(), _>(refused("node2")) })
            .await
            .unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_secs(20));
        let msg = err.to_string();
        assert!(msg.contains("connection refused"), "{msg}");
        assert!(msg.contains("after waiting 20s"), "{msg}");
    }

    #[tokio::test(start_paused = true)]
    async fn no_wait_and_unfixable_errors_are_one_attempt() {
        for (limit, error) in [
            (Duration::ZERO, refused("n")),
            (
                Duration::from_secs(60),
                SshError::HostKey {
                    host: "n".into(),
                    reason: "changed".into(),
                },
            ),
        ] {
            let waiting = Waiting::new(limit);
            let mut calls = 0;
            let mut error = Some(error);
            let _ = waiting
                .retry("n", || {
                    calls += 1;
                    let e = error.take().unwrap();
                    async move { Err::<(), _>(e) }
                })
                .await;
            assert_eq!(calls, 1);
        }
    }
}
