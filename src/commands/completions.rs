//! `bootstrap completions SHELL`: shell completions generated from the clap definition.

use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::Cli;

pub fn main(shell: clap_complete::Shell) -> ExitCode {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "bootstrap", &mut script);
    super::done(super::print_all(&script))
}
