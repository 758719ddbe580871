//! `bootstrap validate`: load and check an inventory, contacting no host.

use std::path::Path;
use std::process::ExitCode;

use crate::inventory;

pub fn main(inventory: &Path) -> ExitCode {
    super::done(validate(inventory))
}

fn validate(inventory: &Path) -> miette::Result<bool> {
    let inv = inventory::load(inventory)?;
    println!(
        "{}: OK ({} hosts, Kubernetes {})",
        inventory.display(),
        inv.hosts.len(),
        inv.cluster.kubernetes_version
    );
    Ok(true)
}
