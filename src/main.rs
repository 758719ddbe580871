//! `bootstrap`: from a YAML inventory of Ubuntu hosts to a kubeadm cluster over SSH.
//!
//! This file only parses the command line, sets up logging and dispatches to the
//! subcommand's file in src/commands/ (docs/architecture.md), which runs the pipeline of
//! the library (src/lib.rs) and maps its outcome to the exit status (src/exit.rs).

use std::process::ExitCode;

use bootstrap::cli::{Cli, Command};
use bootstrap::commands;
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    // `plan` and `up --dry-run` exit 0/2/1 (terraform's -detailed-exitcode), not 0/1.
    if let Some(args) = commands::plan::requested(&cli.command) {
        return commands::plan::main(&args);
    }
    match &cli.command {
        Command::Up(args) => commands::up::main(args),
        Command::Plan(_) => unreachable!("dispatched to commands::plan above"),
        Command::Reset(args) => commands::reset::main(args),
        Command::Kubeconfig(args) => commands::kubeconfig::main(args),
        Command::Status(args) => commands::status::main(args),
        Command::Validate { inventory } => commands::validate::main(inventory),
        Command::Completions { shell } => commands::completions::main(*shell),
        Command::Man { subcommand } => commands::man::main(subcommand.as_deref()),
    }
}

/// Debug logs go to stderr, off by default: `-v` debug, `-vv` trace, or `RUST_LOG`.
fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "bootstrap=debug",
        _ => "bootstrap=trace,russh=debug",
    };
    let filter = if verbose == 0 {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default))
    } else {
        EnvFilter::new(default)
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
