//! `bootstrap reset`: take hosts out of the cluster (src/reset.rs).

use std::process::ExitCode;

use crate::cli::ResetArgs;
use crate::reset::{self, ResetOptions};

impl From<&ResetArgs> for ResetOptions {
    fn from(a: &ResetArgs) -> ResetOptions {
        ResetOptions {
            inventory: a.inventory.clone(),
            hosts: a.hosts.clone(),
            yes: a.yes,
            purge: a.purge,
            timeout: a.timeout,
            run: (&a.run).into(),
        }
    }
}

pub fn main(args: &ResetArgs) -> ExitCode {
    super::finish("reset", args.output, reset::run(&args.into()))
}
