//! Phase `join`: every host without `/etc/kubernetes/kubelet.conf` runs `kubeadm join`
//! with the fresh join command of phase `join-token` (playbooks/join.yaml). The join
//! material only exists at run time, so the step is rendered here, not in the plan; it is
//! a secret of the RemoteCommand (never logged, never shown).

use std::sync::Arc;

use serde::Serialize;

use super::{Ctx, Failure, HostFuture};
use crate::plan::{self, Vars};

pub const PLAYBOOK: &str = "join";

/// The `join` input of playbooks/join.yaml.
#[derive(Serialize)]
struct JoinVars<'a> {
    endpoint: &'a str,
    token: &'a str,
    ca_cert_hash: &'a str,
}

pub fn hosts(ctx: &Ctx) -> Vec<String> {
    ctx.plan.join.iter().map(|(h, _)| h.clone()).collect()
}

pub fn run(ctx: Arc<Ctx>, host: String) -> HostFuture {
    Box::pin(async move {
        let join = ctx.join.lock().unwrap().clone().ok_or_else(|| {
            Failure::new(
                "kubeadm join",
                "no join command (the join-token phase did not run)",
            )
        })?;
        let vars = Vars::new(&ctx.inv, ctx.host(&host), ctx.facts.get(&host)).with(
            "join",
            JoinVars {
                endpoint: &join.endpoint,
                token: &join.token,
                ca_cert_hash: &join.ca_cert_hash,
            },
        );
        let mut steps = plan::plan_playbook(PLAYBOOK, &vars).map_err(|e| {
            Failure::new(
                "kubeadm join",
                crate::ssh::redact(&e.to_string(), &join.secrets()),
            )
        })?;
        for s in &mut steps {
            // Belt and braces: whatever the playbook declares, the join line is secret.
            s.command.secrets.extend(join.secrets());
        }
        ctx.run_steps(&host, &steps).await?;
        Ok(!steps.is_empty())
    })
}
