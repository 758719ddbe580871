//! `bootstrap up`: converge the cluster (src/phases/up.rs). `up --dry-run` is `plan`
//! (src/commands/plan.rs), dispatched before this.

use std::process::ExitCode;

use crate::cli::UpArgs;
use crate::phases::up::{self, UpOptions};

impl From<&UpArgs> for UpOptions {
    fn from(a: &UpArgs) -> UpOptions {
        UpOptions {
            inventory: a.inventory.clone(),
            timeout: a.timeout,
            run: (&a.run).into(),
            upgrade: (&a.upgrade).into(),
        }
    }
}

pub fn main(args: &UpArgs) -> ExitCode {
    match super::runtime() {
        Ok(rt) => super::finish("up", args.output, rt.block_on(up::run(&args.into()))),
        Err(report) => super::fail(report),
    }
}
