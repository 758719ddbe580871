//! The command line: `bootstrap up|validate ...` (clap derive).
//!
//! Subcommands are verbs on one inventory file, so that `plan`, `status`, `reset` and
//! `kubeconfig` can join later with the same shape.
//!
//! Every option also reads a `BOOTSTRAP_*` environment variable (shown in `--help` as
//! `[env: ...]`), so CI jobs can configure a run without building argument lists; the
//! command line wins over the environment.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::duration::parse_duration;

pub use crate::phases::MaxUnavailable;

/// Turn a YAML inventory of Ubuntu hosts into a kubeadm Kubernetes cluster over SSH.
#[derive(Debug, Parser)]
#[command(name = "bootstrap", version, propagate_version = true)]
pub struct Cli {
    /// More detail on stderr: -v for debug logs, -vv for trace logs.
    #[arg(short, long, action = clap::ArgAction::Count, global = true, env = "BOOTSTRAP_VERBOSE")]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bring the cluster to what the inventory declares; re-running changes nothing.
    Up(UpArgs),
    /// Show what `up` would do and why, changing nothing. Exit 0: nothing to do, 2: changes
    /// pending, 4/5: a host unreachable/refused, 1: error (same as `up --dry-run`).
    Plan(PlanArgs),
    /// Take hosts out of the cluster and undo kubeadm init/join on them (asks first).
    Reset(ResetArgs),
    /// Write the cluster's admin kubeconfig: to stdout, to -o FILE (0600), or --merge'd
    /// into ~/.kube/config.
    Kubeconfig(KubeconfigArgs),
    /// Show the nodes, the certificate expiry and drift from the inventory, changing
    /// nothing. Exit 0 whenever everything could be read, 4/5 for a host unreachable/refused,
    /// 1 on other errors.
    Status(StatusArgs),
    /// Check an inventory file without connecting to any host.
    Validate {
        /// The inventory file (YAML).
        #[arg(env = "BOOTSTRAP_INVENTORY")]
        inventory: PathBuf,
    },
    /// Print shell completions to stdout, e.g. `bootstrap completions bash >
    /// /etc/bash_completion.d/bootstrap`.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout, e.g. `bootstrap man > bootstrap.1`; with a
    /// SUBCOMMAND, that subcommand's page (`bootstrap-up.1`).
    Man {
        /// The subcommand whose page to print (default: the top-level page).
        subcommand: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The inventory file (YAML).
    #[arg(env = "BOOTSTRAP_INVENTORY")]
    pub inventory: PathBuf,

    /// How long to wait for the nodes to become Ready (e.g. 90s, 15m, 1h).
    #[arg(long, default_value = "15m", value_parser = parse_duration, env = "BOOTSTRAP_TIMEOUT")]
    pub timeout: Duration,

    #[command(flatten)]
    pub run: HostRunArgs,

    #[command(flatten)]
    pub upgrade: UpgradeArgs,

    /// Change nothing: print what would be done and why, like `bootstrap plan`.
    #[arg(long, env = "BOOTSTRAP_DRY_RUN", value_parser = clap::builder::BoolishValueParser::new())]
    pub dry_run: bool,

    /// `json`: also one JSON document on stdout at the end (docs/output.md; with
    /// --dry-run, the plan's). The text stays on stderr.
    #[arg(long, value_enum, default_value = "text", env = "BOOTSTRAP_OUTPUT")]
    pub output: OutputFormat,
}

/// `bootstrap plan`: connects and plans like `up`, changes nothing.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The inventory file (YAML).
    #[arg(env = "BOOTSTRAP_INVENTORY")]
    pub inventory: PathBuf,

    #[command(flatten)]
    pub run: HostRunArgs,

    #[command(flatten)]
    pub upgrade: UpgradeArgs,

    /// `text` (on stderr) or `json` (one document on stdout; the text stays on stderr).
    #[arg(long, value_enum, default_value = "text", env = "BOOTSTRAP_OUTPUT")]
    pub output: OutputFormat,
}

/// How `plan` prints the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

/// `bootstrap kubeconfig`: the cluster's admin kubeconfig.
#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    /// The inventory file (YAML).
    #[arg(env = "BOOTSTRAP_INVENTORY")]
    pub inventory: PathBuf,

    /// Write the kubeconfig to FILE (mode 0600) instead of stdout. With --merge: merge
    /// into FILE instead of ~/.kube/config.
    #[arg(short, long, value_name = "FILE", env = "BOOTSTRAP_KUBECONFIG_OUTPUT")]
    pub output: Option<PathBuf>,

    /// Add (or replace) this cluster's cluster, user and context in ~/.kube/config (or
    /// kubectl's file in $KUBECONFIG: its first existing one, else its last), leaving every
    /// other entry as it is.
    #[arg(long, env = "BOOTSTRAP_MERGE", value_parser = clap::builder::BoolishValueParser::new())]
    pub merge: bool,

    /// Where to keep this run's logs (a new directory per run is made inside). Default:
    /// $XDG_STATE_HOME/bootstrap/runs or ~/.local/state/bootstrap/runs.
    #[arg(long, env = "BOOTSTRAP_LOG_DIR")]
    pub log_dir: Option<PathBuf>,
}

/// `bootstrap status`: nodes, certificate expiry and drift from the inventory.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The inventory file (YAML).
    #[arg(env = "BOOTSTRAP_INVENTORY")]
    pub inventory: PathBuf,

    /// `text` (tables on stdout) or `json` (one document on stdout, see docs/status.md).
    #[arg(
        long,
        value_enum,
        default_value = "text",
        env = "BOOTSTRAP_STATUS_OUTPUT"
    )]
    pub output: OutputFormat,

    #[command(flatten)]
    pub run: HostRunArgs,
}

/// `bootstrap reset`: drain, delete the Node, `kubeadm reset` and clean up (src/reset.rs).
#[derive(Debug, Args)]
pub struct ResetArgs {
    /// The inventory file (YAML).
    #[arg(env = "BOOTSTRAP_INVENTORY")]
    pub inventory: PathBuf,

    /// Reset only this host (repeatable; comma-separated in the variable). Default: every
    /// host, workers first.
    #[arg(
        long = "host",
        value_name = "NAME",
        env = "BOOTSTRAP_HOST",
        value_delimiter = ','
    )]
    pub hosts: Vec<String>,

    /// Do not ask for confirmation (required when nobody can answer: no terminal, or CI).
    #[arg(
        long,
        short = 'y',
        env = "BOOTSTRAP_YES",
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    pub yes: bool,

    /// Also remove the kubelet, kubeadm and kubectl packages.
    #[arg(long, env = "BOOTSTRAP_PURGE", value_parser = clap::builder::BoolishValueParser::new())]
    pub purge: bool,

    /// How long a node's drain may take (e.g. 90s, 5m).
    // Its own variable: a CI job's BOOTSTRAP_TIMEOUT for `up` is not meant for drains.
    #[arg(
        long,
        default_value = "5m",
        value_parser = parse_duration,
        env = "BOOTSTRAP_DRAIN_TIMEOUT"
    )]
    pub timeout: Duration,

    /// `json`: also one JSON document on stdout at the end (docs/output.md). The text
    /// stays on stderr.
    #[arg(long, value_enum, default_value = "text", env = "BOOTSTRAP_OUTPUT")]
    pub output: OutputFormat,

    #[command(flatten)]
    pub run: HostRunArgs,
}

/// The options of every subcommand that works on the inventory's hosts.
#[derive(Debug, Clone, Args)]
pub struct HostRunArgs {
    /// How many hosts to work on at the same time.
    #[arg(
        long,
        default_value_t = 64,
        value_parser = clap::value_parser!(u32).range(1..),
        env = "BOOTSTRAP_PARALLELISM"
    )]
    pub parallelism: u32,

    /// Where to keep this run's logs (a new directory per run is made inside). Default:
    /// $XDG_STATE_HOME/bootstrap/runs or ~/.local/state/bootstrap/runs.
    #[arg(long, env = "BOOTSTRAP_LOG_DIR")]
    pub log_dir: Option<PathBuf>,

    /// How long each connection attempt may take, for each of its TCP connect, SSH
    /// handshake and authentication (e.g. 10s). Default: ssh_config's ConnectTimeout for
    /// the host, else 30s.
    #[arg(long, value_parser = parse_duration, env = "BOOTSTRAP_CONNECT_TIMEOUT")]
    pub connect_timeout: Option<Duration>,

    /// How long to wait for hosts that do not accept SSH yet (machines still booting):
    /// such a host is tried again with backoff until this much time has passed since the
    /// run started connecting (e.g. 3m). Default: one attempt. A wrong host key or a
    /// refused login is never waited for.
    #[arg(long, default_value = "0", value_parser = parse_duration, env = "BOOTSTRAP_WAIT_FOR_SSH")]
    pub wait_for_ssh: Duration,
}

pub use crate::ssh::DEFAULT_CONNECT_TIMEOUT;

/// How an upgrade rolls through the workers (`up`, and `plan` to show the batches).
#[derive(Debug, Clone, Args)]
pub struct UpgradeArgs {
    /// During an upgrade, how many workers may be drained at the same time: a number
    /// or a percentage of the workers (rounded down, at least 1). Default: 1 or 10%,
    /// whichever is larger.
    #[arg(long, value_parser = parse_max_unavailable, env = "BOOTSTRAP_MAX_UNAVAILABLE")]
    pub max_unavailable: Option<MaxUnavailable>,

    /// During an upgrade, how long `kubectl drain` may take per node (evictions that a
    /// PodDisruptionBudget blocks are retried until then; the node is then uncordoned
    /// and reported, never forced).
    #[arg(long, default_value = "5m", value_parser = parse_duration, env = "BOOTSTRAP_DRAIN_TIMEOUT")]
    pub drain_timeout: Duration,
}

fn parse_max_unavailable(text: &str) -> Result<MaxUnavailable, String> {
    let bad = || {
        format!("invalid --max-unavailable `{text}`: use a number of workers (e.g. 2) or a percentage (e.g. 25%)")
    };
    let t = text.trim();
    if let Some(p) = t.strip_suffix('%') {
        match p.parse::<u32>() {
            Ok(p) if (1..=100).contains(&p) => Ok(MaxUnavailable::Percent(p)),
            _ => Err(bad()),
        }
    } else {
        match t.parse::<u32>() {
            Ok(n) if n >= 1 => Ok(MaxUnavailable::Count(n)),
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn max_unavailable() {
        use MaxUnavailable::*;
        assert_eq!(parse_max_unavailable("2"), Ok(Count(2)));
        assert_eq!(parse_max_unavailable("25%"), Ok(Percent(25)));
        for bad in ["0", "0%", "101%", "-1", "x", "1.5"] {
            assert!(parse_max_unavailable(bad).is_err(), "{bad}");
        }
        assert_eq!(MaxUnavailable::resolve(None, 3), 1);
        assert_eq!(MaxUnavailable::resolve(None, 35), 3);
        assert_eq!(MaxUnavailable::resolve(Some(Percent(50)), 3), 1);
        assert_eq!(MaxUnavailable::resolve(Some(Count(4)), 3), 4);
    }

    #[test]
    fn up_defaults() {
        let cli = Cli::try_parse_from(["bootstrap", "up", "inv.yaml"]).unwrap();
        let Command::Up(up) = cli.command else {
            panic!("not up")
        };
        assert_eq!(up.timeout, Duration::from_secs(900));
        assert_eq!(up.run.parallelism, 64);
        let err = Cli::try_parse_from(["bootstrap", "up", "i", "--parallelism", "0"]);
        assert!(err.is_err());
        let cli = Cli::try_parse_from(["bootstrap", "-vv", "validate", "i"]).unwrap();
        assert_eq!(cli.verbose, 2);
    }
}
