//! Phase `cni`: Calico from the pinned manifest (playbooks/calico.yaml), applied from the
//! first control plane when the cluster has no calico-node DaemonSet or runs another
//! version. The manifest comes from the inventory: the upstream URL of the version or a
//! mirror URL (the control plane fetches it with curl, https only also after redirects,
//! and feeds it to `kubectl apply -f -`: `kubectl apply -f URL` follows an https -> http
//! redirect), or a local file (read here and fed to `kubectl apply -f -` on stdin, for
//! air-gapped hosts).

use std::path::Path;
use std::sync::Arc;

use super::{Ctx, Failure, HostFuture};
use crate::cluster::kubectl_duration;
use crate::cluster::CalicoState;
use crate::inventory::ManifestSource;
use crate::plan::{self, Vars};

pub const PLAYBOOK: &str = "calico";

pub fn hosts(ctx: &Ctx) -> Vec<String> {
    if ctx.plan.calico.is_some() {
        vec![ctx.first_cp.clone()]
    } else {
        Vec::new()
    }
}

pub fn run(ctx: Arc<Ctx>, host: String) -> HostFuture {
    Box::pin(async move {
        let step = "calico";
        let current = match &ctx.plan.calico_state {
            Some(CalicoState::Present { version }) => version.clone(),
            _ => None,
        };
        // `wait_timeout`: `--timeout` in kubectl's form, for the playbook's waits.
        let mut vars = Vars::new(&ctx.inv, ctx.host(&host), ctx.facts.get(&host))
            .with("calico_current", current)
            .with("wait_timeout", kubectl_duration(ctx.timeout));
        if let Some(ManifestSource::File(path)) = &ctx.inv.cluster.calico.manifest {
            let text = read_manifest(path, step, "the Calico manifest").await?;
            vars = vars.with("calico_manifest", text);
        }
        let steps =
            plan::plan_playbook(PLAYBOOK, &vars).map_err(|e| Failure::new(step, e.to_string()))?;
        ctx.run_steps(&host, &steps).await?;
        Ok(!steps.is_empty())
    })
}

/// A local manifest's text, for `kubectl apply -f -` on the control plane's stdin (the
/// hosts need not see the machine `bootstrap` runs on). Shared with the `manifests` phase.
pub(crate) async fn read_manifest(path: &Path, step: &str, what: &str) -> Result<String, Failure> {
    tokio::fs::read_to_string(path)
        .await
        .map_err(|e| Failure::new(step, format!("cannot read {what} {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply_script(calico: &str, current: Option<&str>) -> String {
        let yaml = format!(
            "cluster: {{calico: {calico}}}\nssh: {{knownHostsFile: /dev/null}}\nhosts:\n\
             - {{name: cp, address: 10.0.0.10, role: control-plane}}\n"
        );
        let inv = crate::inventory::parse(Path::new("inv.yaml"), yaml).unwrap();
        let mut vars = Vars::new(&inv, &inv.hosts[0], None)
            .with("calico_current", current)
            .with("wait_timeout", "900s");
        if calico.contains("manifest") && !calico.contains("https") {
            vars = vars.with("calico_manifest", "kind: List\n");
        }
        let steps = plan::plan_playbook(PLAYBOOK, &vars).unwrap();
        steps[0].command.script.clone()
    }

    /// Runs the apply step for a local manifest `text` with a `kubectl` that keeps what
    /// it is given: (exit status, what kubectl got, stderr).
    fn apply_local(text: &str) -> (bool, String, String) {
        apply_local_with("", text)
    }

    /// As [`apply_local`], with more `cluster.calico` keys (`, encapsulation: vxlan`).
    fn apply_local_with(calico_keys: &str, text: &str) -> (bool, String, String) {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let got = dir.path().join("applied");
        let kubectl = dir.path().join("kubectl");
        std::fs::write(&kubectl, format!("#!/bin/sh\ncat > '{}'\n", got.display())).unwrap();
        std::fs::set_permissions(
            &kubectl,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let script = apply_script(
            &format!("{{version: v3.30.3, manifest: Cargo.toml{calico_keys}}}"),
            None,
        );
        let mut child = std::process::Command::new("sh")
            .args(["-c", &script])
            .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            std::fs::read_to_string(&got).unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[test]
    fn calico_node_takes_the_kubelet_s_node_ip() {
        let env = "      containers:\n        - name: calico-node\n          env:\n            \
                   - name: IP\n              value: \"autodetect\"\n            \
                   - name: CALICO_IPV4POOL_IPIP\n              value: \"Always\"\n";
        let (ok, applied, err) = apply_local(env);
        assert!(ok, "{err}");
        assert_eq!(
            applied,
            env.replace(
                "value: \"autodetect\"\n",
                "value: \"autodetect\"\n            - name: IP_AUTODETECTION_METHOD\n              \
                 value: \"kubernetes-internal-ip\"\n"
            )
        );
        // A manifest that chose a method keeps it.
        let own = format!("{env}            - name: IP_AUTODETECTION_METHOD\n              value: \"interface=eth1\"\n");
        assert_eq!(apply_local(&own).1, own);
        // One without calico-node's IP env is not silently applied unchanged.
        let (ok, applied, err) = apply_local("kind: List\n");
        assert!(!ok && applied.is_empty(), "{applied}");
        assert!(err.contains("no calico-node env IP=autodetect"), "{err}");
    }

    /// calico.yaml v3.30's parts that the encapsulation changes, as published.
    const ENCAP_PARTS: &str = "data:\n  calico_backend: \"bird\"\n---\n          env:\n            \
        - name: IP\n              value: \"autodetect\"\n            \
        # Enable IPIP\n            - name: CALICO_IPV4POOL_IPIP\n              value: \"Always\"\n            \
        - name: CALICO_IPV4POOL_VXLAN\n              value: \"Never\"\n            \
        - name: CALICO_IPV6POOL_VXLAN\n              value: \"Never\"\n          \
        livenessProbe:\n            exec:\n              command:\n                \
        - /bin/calico-node\n                - -felix-live\n                - -bird-live\n          \
        readinessProbe:\n            exec:\n              command:\n                \
        - /bin/calico-node\n                - -felix-ready\n                - -bird-ready\n";

    #[test]
    fn encapsulation_sets_the_default_pool_as_calico_documents() {
        let method =
            "value: \"autodetect\"\n            - name: IP_AUTODETECTION_METHOD\n              \
                      value: \"kubernetes-internal-ip\"\n";
        let published = ENCAP_PARTS.replace("value: \"autodetect\"\n", method);
        // No option: the manifest's own (IP-in-IP in the published one); ipip says so.
        assert_eq!(apply_local(ENCAP_PARTS).1, published);
        let (ok, ipip, err) = apply_local_with(", encapsulation: ipip", ENCAP_PARTS);
        assert!(ok, "{err}");
        assert_eq!(ipip, published);
        // vxlan: the IPv4 pool VXLAN, not IP-in-IP, and BGP (BIRD) off with its probes.
        let (ok, vxlan, err) = apply_local_with(", encapsulation: vxlan", ENCAP_PARTS);
        assert!(ok, "{err}");
        let expected = published
            .replace("calico_backend: \"bird\"", "calico_backend: \"vxlan\"")
            .replace(
                "CALICO_IPV4POOL_IPIP\n              value: \"Always\"",
                "CALICO_IPV4POOL_IPIP\n              value: \"Never\"",
            )
            .replace(
                "CALICO_IPV4POOL_VXLAN\n              value: \"Never\"",
                "CALICO_IPV4POOL_VXLAN\n              value: \"Always\"",
            )
            .replace("                - -bird-live\n", "")
            .replace("                - -bird-ready\n", "");
        assert_eq!(vxlan, expected);
        // A manifest without the pool's env is not applied with IP-in-IP unnoticed.
        let old = ENCAP_PARTS.replace(
            "            - name: CALICO_IPV4POOL_VXLAN\n              value: \"Never\"\n",
            "",
        );
        let (ok, applied, err) = apply_local_with(", encapsulation: vxlan", &old);
        assert!(!ok && applied.is_empty(), "{applied}");
        assert!(
            err.contains("no calico-node env CALICO_IPV4POOL_IPIP and CALICO_IPV4POOL_VXLAN"),
            "{err}"
        );
    }

    #[test]
    fn a_manifest_url_is_fetched_https_only_and_applied_from_stdin() {
        let script = apply_script("{version: v3.30.3}", None);
        assert!(!script.contains("apply -f https"), "{script}");
        assert!(
            script.contains("curl --proto =https --proto-redir =https --connect-timeout 30 --speed-limit 1 --speed-time 30 -fsSL https://raw.githubusercontent.com/projectcalico/calico/v3.30.3/manifests/calico.yaml"),
            "{script}"
        );
        assert!(
            script.contains("| kubectl --kubeconfig /etc/kubernetes/admin.conf apply -f -"),
            "{script}"
        );
        let upgrade = apply_script("{version: v3.30.3}", Some("v3.29.0"));
        assert!(
            upgrade.contains("apply --server-side --force-conflicts -f -"),
            "{upgrade}"
        );
    }
}
