//! The plain options of the pipeline's runs: what the command line (src/cli.rs) is
//! turned into by src/commands/, so that no phase knows about clap.

use std::path::PathBuf;
use std::time::Duration;

/// The options of every run that works on the inventory's hosts.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// How many hosts to work on at the same time.
    pub parallelism: u32,
    /// Where to keep this run's logs (None: the default state directory).
    pub log_dir: Option<PathBuf>,
    /// How long each connection attempt may take (TCP, handshake, authentication each);
    /// None: each host's ssh_config `ConnectTimeout`, else 30 s.
    pub connect_timeout: Option<Duration>,
    /// How long to keep retrying hosts that do not accept SSH yet (zero: one attempt).
    pub wait_for_ssh: Duration,
}

/// How an upgrade rolls through the workers (`up`, and `plan` to show the batches).
#[derive(Debug, Clone)]
pub struct UpgradeOptions {
    /// How many workers may be drained at the same time (None: 1 or 10%).
    pub max_unavailable: Option<MaxUnavailable>,
    /// How long `kubectl drain` may take per node.
    pub drain_timeout: Duration,
}

impl Default for UpgradeOptions {
    fn default() -> UpgradeOptions {
        UpgradeOptions {
            max_unavailable: None,
            drain_timeout: Duration::from_secs(300),
        }
    }
}

/// `--max-unavailable`: a count or a percentage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxUnavailable {
    Count(u32),
    Percent(u32),
}

impl MaxUnavailable {
    /// How many of `workers` may be unavailable at once; `None` = the default (1 or
    /// 10%, whichever is larger). Always at least 1.
    pub fn resolve(value: Option<MaxUnavailable>, workers: usize) -> usize {
        let n = match value.unwrap_or(MaxUnavailable::Percent(10)) {
            MaxUnavailable::Count(n) => n as usize,
            MaxUnavailable::Percent(p) => workers * p as usize / 100,
        };
        n.max(1)
    }
}
