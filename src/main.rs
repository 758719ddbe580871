//! `bootstrap`: from a YAML inventory of Ubuntu hosts to a kubeadm cluster over SSH.
//!
//! The pipeline, one module per stage of the library (src/lib.rs): inventory -> ssh ->
//! facts -> plan -> phases -> ui. This file only parses the command line, sets up
//! logging and maps outcomes to the exit status (the table in src/exit.rs).

use std::process::ExitCode;

use bootstrap::cli::{Cli, Command, OutputFormat};
use bootstrap::exit::{self, Outcome};
use bootstrap::report::{self, Finished};
use bootstrap::{inventory, phases};
use clap::{CommandFactory, Parser};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    // `plan` and `up --dry-run` exit 0/2/1 (terraform's -detailed-exitcode), not 0/1.
    if let Some(args) = phases::dry_run::requested(&cli.command) {
        return phases::dry_run::main(&args);
    }
    match cli.command {
        Command::Up(args) => match runtime() {
            Ok(rt) => finish("up", args.output, rt.block_on(phases::up::run(&args))),
            Err(report) => fail(report),
        },
        Command::Reset(args) => finish("reset", args.output, bootstrap::reset::run(&args)),
        command => match run(command) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(report) => fail(report),
        },
    }
}

/// Prints an error that ended a command and maps it to its exit status.
fn fail(report: miette::Report) -> ExitCode {
    eprintln!("{report:?}");
    exit::of_error(&report).exit_code()
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

fn run(command: Command) -> miette::Result<bool> {
    match command {
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
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "bootstrap", &mut script);
            print_all(&script)
        }
        Command::Man { subcommand } => man(subcommand.as_deref()),
        Command::Plan(_) | Command::Up(_) | Command::Reset(_) => {
            unreachable!("main() runs plan, up and reset: they have their own exit codes")
        }
        Command::Kubeconfig(args) => runtime()?.block_on(bootstrap::kubeconfig::run(&args)),
        Command::Status(args) => runtime()?.block_on(bootstrap::status::run(&args)),
    }
}

/// Prints a man page generated from the clap definition, so it never drifts from
/// `--help`: the top-level page (which lists the subcommands) or one subcommand's.
fn man(subcommand: Option<&str>) -> miette::Result<bool> {
    let mut top = Cli::command();
    // Building fills in what the subcommands inherit: the version, `bootstrap up` as the
    // usage name and `bootstrap-up` as the page title (as git and cargo name theirs).
    top.build();
    let page = match subcommand {
        None => top,
        Some(name) => match top.find_subcommand(name) {
            Some(sub) => sub.clone(),
            None => {
                let names: Vec<&str> = top.get_subcommands().map(|c| c.get_name()).collect();
                return Err(miette::miette!(
                    help = format!("one of: {}", names.join(", ")),
                    "`{name}` is not a bootstrap subcommand"
                ));
            }
        },
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut roff)
        .map_err(|e| miette::miette!("cannot render the man page: {e}"))?;
    print_all(&roff)
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
