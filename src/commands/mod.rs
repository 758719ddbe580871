//! The commands layer: one file per subcommand. Each turns its clap arguments
//! (src/cli.rs) into the pipeline's plain options, runs the pipeline, renders the result
//! and maps the outcome to the exit status (src/exit.rs). src/main.rs only dispatches
//! here; nothing below this layer imports `cli` or `commands` (tests/architecture.rs).

pub mod completions;
pub mod kubeconfig;
pub mod man;
pub mod plan;
pub mod reset;
pub mod status;
pub mod up;
pub mod validate;

use std::process::ExitCode;

use crate::cli::{HostRunArgs, OutputFormat, UpgradeArgs};
use crate::exit::Outcome;
use crate::failure;
use crate::phases::{RunOptions, UpgradeOptions};
use crate::report::{self, Finished};

impl From<&HostRunArgs> for RunOptions {
    fn from(a: &HostRunArgs) -> RunOptions {
        RunOptions {
            parallelism: a.parallelism,
            log_dir: a.log_dir.clone(),
            connect_timeout: a.connect_timeout,
            wait_for_ssh: a.wait_for_ssh,
        }
    }
}

impl From<&UpgradeArgs> for UpgradeOptions {
    fn from(a: &UpgradeArgs) -> UpgradeOptions {
        UpgradeOptions {
            max_unavailable: a.max_unavailable,
            drain_timeout: a.drain_timeout,
        }
    }
}

/// Prints an error that ended a command and maps it to its exit status.
fn fail(report: miette::Report) -> ExitCode {
    eprintln!("{report:?}");
    failure::of_error(&report).exit_code()
}

/// Ends a command that reports only success (Ok(true)), a failure it already explained
/// (Ok(false): exit 1) or an error.
fn done(result: miette::Result<bool>) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(report) => fail(report),
    }
}

/// Ends `up` or `reset`: the error (if one stopped it) on stderr, the JSON document on
/// stdout when asked for, and the outcome's exit status.
fn finish(command: &str, output: OutputFormat, finished: Finished) -> ExitCode {
    let Finished {
        outcome,
        error,
        doc,
    } = finished;
    if let Some(report) = error {
        eprintln!("{report:?}");
    }
    if output == OutputFormat::Json {
        if let Err(report) = report::print(command, outcome.code(), &doc) {
            eprintln!("{report:?}");
            return Outcome::Error.exit_code();
        }
    }
    outcome.exit_code()
}

/// Writes generated text to stdout; a reader that stops early (`| head`) is not an error.
fn print_all(text: &[u8]) -> miette::Result<bool> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(miette::miette!("cannot write to standard output: {e}"))
        }
        _ => Ok(true),
    }
}

/// The async runtime the subcommands that talk to hosts run on.
fn runtime() -> miette::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| miette::miette!("cannot start the async runtime: {e}"))
}
