//! Phase `join`: every host without `/etc/kubernetes/kubelet.conf` runs `kubeadm join`
//! with the fresh join command of phase `join-token` (playbooks/join.yaml). The join
//! material only exists at run time, so the step is rendered here, not in the plan; it
//! travels as a JoinConfiguration on the command's stdin (never on a command line) and is
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const TOKEN: &str = "abcdef.0123456789abcdef";
    const HASH: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// The join step of worker w1; `w1_keys` adds to its inventory entry.
    fn join_step(version: &str, w1_keys: &str) -> crate::plan::PlannedStep {
        let yaml = format!(
            "cluster: {{kubernetesVersion: {version}}}\nssh: {{knownHostsFile: /dev/null}}\nhosts:\n\
             - {{name: cp, address: 10.0.0.10, role: control-plane}}\n\
             - {{name: w1, address: 10.0.0.11, role: worker{w1_keys}}}\n"
        );
        let inv = crate::inventory::parse(Path::new("inv.yaml"), yaml).unwrap();
        let facts = crate::facts::HostFacts::default();
        let vars = Vars::new(&inv, &inv.hosts[1], Some(&facts)).with(
            "join",
            JoinVars {
                endpoint: "10.0.0.10:6443",
                token: TOKEN,
                ca_cert_hash: HASH,
            },
        );
        let mut steps = plan::plan_playbook(PLAYBOOK, &vars).unwrap();
        assert_eq!(steps.len(), 1);
        steps.remove(0)
    }

    #[test]
    fn the_token_is_on_stdin_as_a_join_configuration_not_on_the_command_line() {
        for (version, api) in [("1.34.2", "v1beta4"), ("1.30.14", "v1beta3")] {
            let step = join_step(version, "");
            let script = &step.command.script;
            assert!(!script.contains("abcdef"), "{script}");
            assert!(
                script.contains("kubeadm join --config \"$config\""),
                "{script}"
            );
            let stdin = String::from_utf8(step.command.stdin.clone().unwrap()).unwrap();
            let cfg: serde_yaml::Value = serde_yaml::from_str(&stdin).unwrap();
            assert_eq!(cfg["apiVersion"], format!("kubeadm.k8s.io/{api}"));
            assert_eq!(cfg["kind"], "JoinConfiguration");
            let bt = &cfg["discovery"]["bootstrapToken"];
            assert_eq!(bt["token"], TOKEN);
            assert_eq!(bt["apiServerEndpoint"], "10.0.0.10:6443");
            assert_eq!(bt["caCertHashes"][0], HASH);
            assert_eq!(cfg["nodeRegistration"]["name"], "w1");
            assert_eq!(
                cfg["nodeRegistration"]["criSocket"],
                "unix:///var/run/containerd/containerd.sock"
            );
            assert!(cfg.get("controlPlane").is_none(), "{stdin}");
            assert_eq!(
                cfg["nodeRegistration"]["taints"],
                serde_yaml::Value::Sequence(vec![])
            );
            assert!(step.command.secrets.iter().any(|s| s == TOKEN));
        }
    }

    /// A worker registers with its inventory taints (kubeadm's nodeRegistration.taints ->
    /// the kubelet's --register-with-taints), so nothing is scheduled onto it between the
    /// join and the labels phase: the Node becomes Ready in the cni phase, when pending
    /// pods such as CoreDNS are placed.
    #[test]
    fn a_worker_joins_with_its_taints() {
        let step = join_step(
            "1.34.2",
            ", taints: [\"dedicated=gpu:NoSchedule\", \"spot:NoExecute\"]",
        );
        let stdin = String::from_utf8(step.command.stdin.clone().unwrap()).unwrap();
        let cfg: serde_yaml::Value = serde_yaml::from_str(&stdin).unwrap();
        let taints: serde_yaml::Value = serde_yaml::from_str(
            "[{key: dedicated, value: gpu, effect: NoSchedule}, {key: spot, effect: NoExecute}]",
        )
        .unwrap();
        assert_eq!(cfg["nodeRegistration"]["taints"], taints, "{stdin}");
    }
}
