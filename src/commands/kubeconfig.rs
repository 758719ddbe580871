//! `bootstrap kubeconfig`: the cluster's admin kubeconfig (src/kubeconfig.rs).

use std::process::ExitCode;

use crate::cli::KubeconfigArgs;
use crate::kubeconfig::{self, KubeconfigOptions};

impl From<&KubeconfigArgs> for KubeconfigOptions {
    fn from(a: &KubeconfigArgs) -> KubeconfigOptions {
        KubeconfigOptions {
            inventory: a.inventory.clone(),
            output: a.output.clone(),
            merge: a.merge,
            log_dir: a.log_dir.clone(),
        }
    }
}

pub fn main(args: &KubeconfigArgs) -> ExitCode {
    super::done(super::runtime().and_then(|rt| rt.block_on(kubeconfig::run(&args.into()))))
}
