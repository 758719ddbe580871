//! `bootstrap`: from a YAML inventory of Ubuntu hosts to a kubeadm cluster over SSH.
//!
//! The pipeline, one module per stage of the library (src/lib.rs): inventory -> ssh ->
//! facts -> plan -> phases -> ui. This file only parses the command line, sets up
//! logging and maps outcomes to the exit status.

use std::process::ExitCode;

use bootstrap::cli::{Cli, Command};
use bootstrap::{inventory, phases};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    // `plan` and `up --dry-run` exit 0/2/1 (terraform's -detailed-exitcode), not 0/1.
    if let Some(args) = phases::dry_run::requested(&cli.command) {
        return phases::dry_run::main(&args);
    }
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> miette::Result<bool> {
    match cli.command {
        Command::Validate { inventory } => {
            let inv = inventory::load(&inventory)?;
            println!(
                "{}: OK ({} hosts, Kubernetes {})",
                inventory.display(),
                inv.hosts.len(),
                inv.cluster.kubernetes_version
            );
            Ok(true)
        }
        Command::Plan(_) => unreachable!("main() runs plan: it has its own exit codes"),
        Command::Reset(args) => bootstrap::reset::run(&args),
        Command::Kubeconfig(args) => runtime()?.block_on(bootstrap::kubeconfig::run(&args)),
        Command::Up(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| miette::miette!("cannot start the async runtime: {e}"))?;
            runtime.block_on(phases::up::run(&args))
        }
    }
}

/// The async runtime the subcommands that talk to hosts run on.
fn runtime() -> miette::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| miette::miette!("cannot start the async runtime: {e}"))
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
