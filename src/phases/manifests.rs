//! Phase `manifests`: the inventory's `manifests:` applied from the first control plane
//! once every node is Ready, one at a time in the inventory's order, each waited on with
//! `kubectl rollout status` before the next (playbooks/manifests.yaml).
//!
//! Knowing what is already applied: after a manifest is applied and rolled out, the
//! cluster records its name (as written in the inventory) and the sha256 of its text in
//! the ConfigMap `kube-system/bootstrap-manifests`. Planning reads every manifest (a
//! local file here, a URL fetched read-only on the control plane with `curl -fsSL`),
//! hashes it and compares: a manifest is applied again only when it is new to the
//! cluster or its text changed, so a converged cluster plans nothing and a re-run
//! re-applies only what changed. What was planned is what is applied: the text read
//! while planning is the one fed to `kubectl apply -f -`.
//!
//! The workloads to wait for are the Deployments, DaemonSets and StatefulSets the
//! manifest declares (read from its text, with their namespaces, which `kubectl apply
//! -o name` would not tell).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::cluster_plan::ClusterView;
use super::{cni, ClusterPlan, Ctx, Failure, HostFuture};
use crate::cluster::KUBECTL;
use crate::inventory::{Inventory, Manifest, ManifestSource};
use crate::plan::{self, Vars};
use crate::runlog::RunLog;
use crate::ssh::{Connection, Output, RemoteCommand};

pub const PLAYBOOK: &str = "manifests";

/// The ConfigMap recording what was applied: `data.applied` holds one `DIGEST NAME` line
/// per manifest, in the inventory's order.
pub const RECORD_NAMESPACE: &str = "kube-system";
pub const RECORD_NAME: &str = "bootstrap-manifests";

/// The step name of planning failures (reading, fetching or parsing a manifest).
const PLAN_STEP: &str = "manifests";

/// A workload `kubectl rollout status` can wait for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workload {
    /// `deployment`, `daemonset` or `statefulset`.
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// What the cluster says was applied: (name, digest) per manifest, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    entries: Vec<(String, String)>,
}

impl Record {
    /// Parses `data.applied`: `DIGEST NAME` per line (the name may contain spaces).
    /// Lines that are not of that form are ignored: their manifests are applied again.
    pub fn parse(text: &str) -> Record {
        let entries = text
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(d, n)| d.starts_with("sha256:") && !n.is_empty())
            .map(|(d, n)| (n.to_string(), d.to_string()))
            .collect();
        Record { entries }
    }

    /// The text of `data.applied`.
    pub fn text(&self) -> String {
        self.entries
            .iter()
            .map(|(n, d)| format!("{d} {n}\n"))
            .collect()
    }

    /// The digest recorded for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.as_str())
    }

    /// The record once `name` is applied at `digest`: the inventory's manifests in its
    /// order, each with its new or previously recorded digest. Names the inventory no
    /// longer lists are dropped (what they created stays in the cluster).
    pub fn applied(&self, inv: &Inventory, name: &str, digest: &str) -> Record {
        let entries = inv
            .manifests
            .iter()
            .filter_map(|m| {
                let d = if m.name == name {
                    Some(digest)
                } else {
                    self.get(&m.name)
                };
                d.map(|d| (m.name.clone(), d.to_string()))
            })
            .collect();
        Record { entries }
    }
}

/// One manifest `up` will apply, with everything needed to do it.
#[derive(Clone, PartialEq)]
pub struct ManifestWork {
    /// As written in the inventory.
    pub name: String,
    /// `sha256:HEX` of `text`.
    pub digest: String,
    /// The digest the cluster's record holds for `name`, if any.
    pub recorded: Option<String>,
    /// Why it is applied (from the playbook).
    pub reason: String,
    pub workloads: Vec<Workload>,
    /// The manifest itself.
    pub text: String,
}

/// Without the text: a manifest may hold Secrets, and plans are debug-printed.
impl fmt::Debug for ManifestWork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManifestWork")
            .field("name", &self.name)
            .field("digest", &self.digest)
            .field("recorded", &self.recorded)
            .field("reason", &self.reason)
            .field("workloads", &self.workloads)
            .field("text", &format_args!("<{} bytes>", self.text.len()))
            .finish()
    }
}

/// The manifests part of the cluster plan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManifestPlan {
    /// The manifests to apply, in the inventory's order.
    pub apply: Vec<ManifestWork>,
    /// The record as the cluster holds it (empty when there is none yet).
    pub record: Record,
}

impl ManifestPlan {
    pub fn is_empty(&self) -> bool {
        self.apply.is_empty()
    }
}

impl fmt::Display for ManifestPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for m in &self.apply {
            writeln!(f, "manifests: apply {} ({})", m.name, m.reason)?;
        }
        Ok(())
    }
}

/// `sha256:HEX` of a manifest's text. sha2 comes through russh's ssh-key re-export: the
/// same crate russh already builds for key exchange.
pub fn digest(text: &str) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(text.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The Deployments, DaemonSets and StatefulSets a manifest declares, in order (a
/// `kind: List` is looked into). Objects without a namespace land in `default`, the
/// admin kubeconfig's namespace. A DaemonSet or StatefulSet with the `OnDelete` update
/// strategy is left out: kubectl has no rollout status for it.
pub fn workloads(text: &str) -> Result<Vec<Workload>, String> {
    let mut objects = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let v = serde_yaml::Value::deserialize(doc)
            .map_err(|e| format!("document {} is not valid YAML: {e}", i + 1))?;
        if v.get("kind").and_then(|k| k.as_str()) == Some("List") {
            if let Some(items) = v.get("items").and_then(|i| i.as_sequence()) {
                objects.extend(items.iter().cloned());
            }
        } else if !v.is_null() {
            objects.push(v);
        }
    }
    let text_at = |v: &serde_yaml::Value, path: &[&str]| -> Option<String> {
        let mut v = v;
        for key in path {
            v = v.get(*key)?;
        }
        v.as_str().map(str::to_string)
    };
    let mut out = Vec::new();
    for o in &objects {
        let kind = text_at(o, &["kind"]).unwrap_or_default();
        if !matches!(kind.as_str(), "Deployment" | "DaemonSet" | "StatefulSet") {
            continue;
        }
        if kind != "Deployment"
            && text_at(o, &["spec", "updateStrategy", "type"]).as_deref() == Some("OnDelete")
        {
            continue;
        }
        let Some(name) = text_at(o, &["metadata", "name"]) else {
            return Err(format!("a {kind} has no metadata.name"));
        };
        out.push(Workload {
            kind: kind.to_ascii_lowercase(),
            namespace: text_at(o, &["metadata", "namespace"]).unwrap_or_else(|| "default".into()),
            name,
        });
    }
    Ok(out)
}

/// The playbook's inputs for one manifest: `record` is the record once it is applied,
/// `timeout` what is left for its rollout waits.
fn vars(inv: &Inventory, work: &ManifestWork, record: &Record, timeout: Duration) -> Vars {
    #[derive(Serialize)]
    struct ManifestVar<'a> {
        name: &'a str,
        digest: &'a str,
        recorded: Option<&'a str>,
        workloads: &'a [Workload],
    }
    #[derive(Serialize)]
    struct RecordVar<'a> {
        namespace: &'a str,
        name: &'a str,
        text: String,
    }
    Vars::new(inv, inv.first_control_plane(), None)
        .with(
            "manifest",
            ManifestVar {
                name: &work.name,
                digest: &work.digest,
                recorded: work.recorded.as_deref(),
                workloads: &work.workloads,
            },
        )
        .with("manifest_text", &work.text)
        .with(
            "record",
            RecordVar {
                namespace: RECORD_NAMESPACE,
                name: RECORD_NAME,
                text: record.text(),
            },
        )
        .with("wait_seconds", timeout.as_secs().max(1))
}

/// Whether a manifest with this text needs applying, given what the record holds for
/// it: the playbook's `manifest-apply` step decides and says why. Pure.
pub fn decide(
    inv: &Inventory,
    m: &Manifest,
    text: String,
    recorded: Option<&str>,
) -> Result<Option<ManifestWork>, Failure> {
    let workloads =
        workloads(&text).map_err(|e| Failure::new(PLAN_STEP, format!("{}: {e}", m.name)))?;
    let work = ManifestWork {
        name: m.name.clone(),
        digest: digest(&text),
        recorded: recorded.map(str::to_string),
        reason: String::new(),
        workloads,
        text,
    };
    let steps = plan::plan_playbook(
        PLAYBOOK,
        &vars(inv, &work, &Record::default(), Duration::ZERO),
    )
    .map_err(|e| Failure::new(PLAN_STEP, e.to_string()))?;
    Ok(steps
        .iter()
        .find(|s| s.step == "manifest-apply")
        .map(|s| ManifestWork {
            reason: s.reason.clone(),
            ..work
        }))
}

/// Plans the manifests: reads the record (when the control plane is initialized), reads
/// or fetches every manifest and decides. Changes nothing. `cp` is the first control
/// plane, `conn` its connection.
pub async fn plan(
    inv: &Inventory,
    initialized: bool,
    conn: &Connection,
    log: &RunLog,
    cp: &str,
) -> Result<ManifestPlan, Failure> {
    if inv.manifests.is_empty() {
        return Ok(ManifestPlan::default());
    }
    let run = |step: &'static str, cmd: RemoteCommand| async move {
        let started = Instant::now();
        let out = conn
            .run(&cmd)
            .await
            .map_err(|e| Failure::new(step, e.to_string()))?;
        let _ = log.host(cp).record(step, &cmd, &out, started.elapsed());
        Ok::<Output, Failure>(out)
    };
    let record = if initialized {
        let out = run(
            "kubectl get configmap bootstrap-manifests",
            record_command(),
        )
        .await?;
        parse_record(&out).map_err(|e| Failure::new(PLAN_STEP, e))?
    } else {
        Record::default()
    };
    let mut apply = Vec::new();
    for m in &inv.manifests {
        let text = match &m.source {
            ManifestSource::File(path) => {
                cni::read_manifest(path, PLAN_STEP, &format!("the manifest {}", m.name)).await?
            }
            ManifestSource::Url(url) => {
                let out = run("fetch manifest", fetch_command(url)).await?;
                if !out.success() {
                    let f = Failure::exit("fetch manifest", &out, &[]);
                    return Err(Failure::new(
                        PLAN_STEP,
                        format!("cannot fetch the manifest {url}: {}", f.message),
                    ));
                }
                out.stdout
            }
        };
        if let Some(work) = decide(inv, m, text, record.get(&m.name))? {
            apply.push(work);
        }
    }
    Ok(ManifestPlan { apply, record })
}

/// `up`'s planning step for the manifests (see [`plan`]): the cluster plan with its
/// `manifests` set, or why they could not be planned under the control plane's name in
/// `failed`. `view`: the cluster as read (None: the control plane is not initialized).
pub(crate) async fn plan_into(
    mut cluster: ClusterPlan,
    failed: &mut BTreeMap<String, Failure>,
    inv: &Inventory,
    view: Option<&ClusterView>,
    conns: &BTreeMap<String, Arc<Connection>>,
    log: &RunLog,
) -> ClusterPlan {
    let cp = &inv.first_control_plane().name;
    let Some(conn) = conns.get(cp) else {
        return cluster;
    };
    match plan(inv, view.is_some(), conn, log, cp).await {
        Ok(m) => cluster.manifests = m,
        Err(f) => {
            failed
                .entry(cp.to_string())
                .and_modify(|m| {
                    m.message.push_str("; ");
                    m.message.push_str(&f.to_string());
                })
                .or_insert(f);
        }
    }
    cluster
}

/// Reads the record. Read-only, like the other probes of the cluster (src/cluster.rs).
pub fn record_command() -> RemoteCommand {
    RemoteCommand {
        script: format!("{KUBECTL} -n {RECORD_NAMESPACE} get configmap {RECORD_NAME} -o json"),
        root: true,
        ..Default::default()
    }
}

/// The record from `kubectl get configmap -o json`; no ConfigMap is an empty record.
pub fn parse_record(out: &Output) -> Result<Record, String> {
    if !out.success() {
        if out.stderr.contains("(NotFound)") {
            return Ok(Record::default());
        }
        return Err(format!(
            "cannot read the configmap {RECORD_NAMESPACE}/{RECORD_NAME}: {}",
            out.stderr.trim()
        ));
    }
    let v: serde_json::Value = serde_json::from_str(&out.stdout).map_err(|e| {
        format!("cannot parse the configmap {RECORD_NAMESPACE}/{RECORD_NAME} as JSON: {e}")
    })?;
    Ok(Record::parse(v["data"]["applied"].as_str().unwrap_or("")))
}

/// curl's options that keep a fetch on https, also after a redirect (curl follows an
/// https -> http redirect otherwise): what is fetched is applied with admin credentials.
pub const HTTPS_ONLY: &str = "--proto =https --proto-redir =https";

/// curl's limits against a server that takes the connection and then stalls (curl has
/// no timeout of its own and would wait forever): no connection within 30 s, or less
/// than 1 byte/s for 30 s, fails the fetch (curl's exit 28). The playbooks' fetches
/// (repository key, Calico manifest) use the same.
pub const STALL_LIMITS: &str = "--connect-timeout 30 --speed-limit 1 --speed-time 30";

/// Fetches a manifest on the control plane (it, not the machine `bootstrap` runs on,
/// can reach the URL, as for `kubectl apply -f URL`). Read-only.
pub fn fetch_command(url: &str) -> RemoteCommand {
    let quoted = shlex::try_quote(url)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| url.to_string());
    RemoteCommand {
        script: format!("curl {HTTPS_ONLY} {STALL_LIMITS} -fsSL {quoted}"),
        root: false,
        ..Default::default()
    }
}

/// The first control plane applies, once there is something to apply.
pub fn hosts(ctx: &Ctx) -> Vec<String> {
    if ctx.plan.manifests.is_empty() {
        Vec::new()
    } else {
        vec![ctx.first_cp.clone()]
    }
}

/// Applies the planned manifests in order; each is recorded once its rollouts finished,
/// so a failure leaves the ones before it recorded and the next run starts at it. The
/// rollout waits share `--timeout`, counted from the start of the phase: each gets what
/// is left of it.
pub fn run(ctx: Arc<Ctx>, host: String) -> HostFuture {
    Box::pin(async move {
        let deadline = Instant::now() + ctx.timeout;
        let mut record = ctx.plan.manifests.record.clone();
        for work in &ctx.plan.manifests.apply {
            let next = record.applied(&ctx.inv, &work.name, &work.digest);
            let left = deadline.saturating_duration_since(Instant::now());
            let steps = plan::plan_playbook(PLAYBOOK, &vars(&ctx.inv, work, &next, left))
                .map_err(|e| Failure::new(PLAN_STEP, e.to_string()))?;
            ctx.run_steps(&host, &steps).await?;
            record = next;
        }
        Ok(!ctx.plan.manifests.apply.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phases::cluster_plan::tests::inv;

    const APP: &str = "\
apiVersion: v1
kind: Service
metadata: {name: web}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: data}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: kube-system}
spec: {updateStrategy: {type: OnDelete}}
---
apiVersion: v1
kind: List
items:
  - {apiVersion: apps/v1, kind: DaemonSet, metadata: {name: logs}}
";

    fn with_manifests(names: &[&str]) -> Inventory {
        let mut inv = inv();
        inv.manifests = names
            .iter()
            .map(|n| Manifest {
                name: n.to_string(),
                source: ManifestSource::File(n.into()),
            })
            .collect();
        inv
    }

    #[test]
    fn digest_is_sha256sum() {
        // `printf 'abc' | sha256sum`
        assert_eq!(
            digest("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn finds_the_workloads_with_their_namespaces() {
        let w = |kind: &str, namespace: &str, name: &str| Workload {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        assert_eq!(
            workloads(APP).unwrap(),
            vec![
                w("deployment", "default", "web"),
                w("statefulset", "data", "db"),
                w("daemonset", "default", "logs"),
            ]
        );
        assert!(workloads("a: [b\n").unwrap_err().contains("document 1"));
        assert!(workloads("kind: Deployment\nmetadata: {}\n")
            .unwrap_err()
            .contains("no metadata.name"));
    }

    #[test]
    fn the_record_round_trips_and_follows_the_inventory() {
        let r = Record::parse("sha256:aa a.yaml\nsha256:bb my dir/b.yaml\ngarbage\n");
        assert_eq!(r.get("my dir/b.yaml"), Some("sha256:bb"));
        assert_eq!(Record::parse(&r.text()), r);
        let inv = with_manifests(&["c.yaml", "my dir/b.yaml"]);
        // a.yaml left the inventory; c.yaml is applied now; the order is the inventory's.
        assert_eq!(
            r.applied(&inv, "c.yaml", "sha256:cc").text(),
            "sha256:cc c.yaml\nsha256:bb my dir/b.yaml\n"
        );
    }

    #[test]
    fn applies_what_is_new_or_changed_and_says_why() {
        let inv = with_manifests(&["app.yaml"]);
        let m = &inv.manifests[0];
        let new = decide(&inv, m, APP.into(), None).unwrap().unwrap();
        assert_eq!(new.reason, "it was never applied to this cluster");
        assert_eq!(new.workloads.len(), 3);
        let same = digest(APP);
        assert!(decide(&inv, m, APP.into(), Some(&same)).unwrap().is_none());
        let changed = decide(&inv, m, APP.into(), Some("sha256:0123456789abcdef"))
            .unwrap()
            .unwrap();
        assert_eq!(
            changed.reason,
            format!(
                "its content changed since it was applied: sha256:0123456789ab… then, {}… now",
                &same[..19]
            )
        );
        let plan = ManifestPlan {
            apply: vec![changed],
            record: Record::default(),
        };
        assert!(plan
            .to_string()
            .starts_with("manifests: apply app.yaml (its content changed"));
    }

    #[test]
    fn the_steps_apply_wait_and_record_in_order() {
        let inv = with_manifests(&["app.yaml"]);
        let work = decide(&inv, &inv.manifests[0], APP.into(), None)
            .unwrap()
            .unwrap();
        let record = Record::default().applied(&inv, "app.yaml", &work.digest);
        let steps = plan::plan_playbook(
            PLAYBOOK,
            &vars(&inv, &work, &record, Duration::from_secs(90)),
        )
        .unwrap();
        let names: Vec<&str> = steps.iter().map(|s| s.step.as_str()).collect();
        assert_eq!(
            names,
            ["manifest-apply", "manifest-rollout", "manifest-record"]
        );
        assert_eq!(steps[0].command.stdin.as_deref(), Some(APP.as_bytes()));
        let rollout = &steps[1].command.script;
        assert!(
            rollout.contains("deadline=$(( $(date +%s) + 90 ))"),
            "{rollout}"
        );
        let waits: Vec<&str> = rollout.lines().filter(|l| l.contains("rollout")).collect();
        assert_eq!(waits.len(), 3, "{rollout}");
        assert!(
            waits[0].ends_with("-n default rollout status deployment/web --timeout=\"${left}s\"")
        );
        assert!(waits[1].ends_with("-n data rollout status statefulset/db --timeout=\"${left}s\""));
        assert!(waits[2].contains("-n default rollout status daemonset/logs "));
        assert!(!rollout.contains("agent"), "{rollout}");
        let cm = String::from_utf8(steps[2].command.stdin.clone().unwrap()).unwrap();
        let cm: serde_yaml::Value = serde_yaml::from_str(&cm).unwrap();
        assert_eq!(cm["metadata"]["name"].as_str(), Some(RECORD_NAME));
        assert_eq!(
            cm["data"]["applied"].as_str(),
            Some(format!("{} app.yaml\n", work.digest).as_str())
        );
    }

    #[test]
    fn a_missing_record_is_empty_and_other_errors_say_so() {
        let out = |status, stdout: &str, stderr: &str| Output {
            status,
            stdout: stdout.into(),
            stderr: stderr.into(),
        };
        let none = out(
            1,
            "",
            "Error from server (NotFound): configmaps \"bootstrap-manifests\" not found\n",
        );
        assert_eq!(parse_record(&none).unwrap(), Record::default());
        let found = out(0, r#"{"data": {"applied": "sha256:aa a.yaml\n"}}"#, "");
        assert_eq!(
            parse_record(&found).unwrap().get("a.yaml"),
            Some("sha256:aa")
        );
        assert!(parse_record(&out(1, "", "Unable to connect to the server"))
            .unwrap_err()
            .contains("Unable to connect"));
    }
}
