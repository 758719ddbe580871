//! `bootstrap man [SUBCOMMAND]`: the man page (roff) generated from the clap definition.

use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::Cli;

pub fn main(subcommand: Option<&str>) -> ExitCode {
    super::done(man(subcommand))
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
    super::print_all(&roff)
}
