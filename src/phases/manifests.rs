//! Phase `manifests`: the inventory's `manifests:` applied in order once every node is
//! Ready (playbooks/manifests.yaml).

use std::sync::Arc;

use super::{Ctx, HostFuture};

pub const PLAYBOOK: &str = "manifests";

pub fn hosts(_ctx: &Ctx) -> Vec<String> {
    Vec::new()
}

pub fn run(_ctx: Arc<Ctx>, _host: String) -> HostFuture {
    Box::pin(async move { Ok(false) })
}
