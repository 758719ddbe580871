//! The plan: from a host's facts and the inventory, exactly the steps it still needs.
//!
//! Pure: no I/O. Each planned step carries the reason it is needed (the fact that differs
//! from what the inventory wants) and the rendered command, so `bootstrap plan` can show
//! what a run would do and why, and a converged host plans nothing at all: re-runs change
//! nothing. Host-scoped playbooks are planned here; the cluster phases plan the
//! cluster-scoped ones (init, join, Calico) with [`plan_playbook`], adding the cluster
//! state they learned from the API server as extra variables.

use std::collections::BTreeMap;
use std::fmt;

use minijinja::Value;
use serde::{Serialize, Serializer};

use crate::facts::HostFacts;
use crate::inventory::{Host, Inventory, ManifestSource, Role};
use crate::playbook::{self, PlaybookError, Scope};
use crate::ssh::RemoteCommand;
use crate::versions;

/// The host as templates see it (`host`).
#[derive(Debug, Clone, Serialize)]
pub struct HostView {
    pub name: String,
    /// The SSH address, as written in the inventory.
    pub address: String,
    /// The node IP (`--node-ip`, the advertise address): see [`crate::node_address`].
    pub node_ip: String,
    /// "control-plane" or "worker".
    pub role: &'static str,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<TaintView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaintView {
    pub key: String,
    pub value: Option<String>,
    pub effect: String,
}

/// The cluster as templates see it (`cluster`), with derived values precomputed.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterView {
    pub name: String,
    /// "1.34.2".
    pub kubernetes_version: String,
    /// "1.34": selects the package repository.
    pub minor: String,
    /// "1.34.2-": every package revision of the wanted version starts with it.
    pub package_version_prefix: String,
    /// "v1beta4" for kubeadm >= 1.31, else "v1beta3".
    pub kubeadm_api: &'static str,
    pub pod_subnet: String,
    pub service_subnet: String,
    /// Resolved: the inventory's, or the first control plane's node IP:6443.
    pub control_plane_endpoint: String,
    /// Extra names for the API server's certificate: the first control plane's SSH
    /// address when it is not its node IP (a public IP or DNS name), so a kubeconfig
    /// pointing there (`bootstrap kubeconfig`) verifies.
    pub api_server_cert_sans: Vec<String>,
    /// The name of the host `kubeadm init` runs on.
    pub first_control_plane: String,
    pub package_repository: String,
    /// Seconds a package step waits for apt's and dpkg's locks (`packageLockWait`): the
    /// lock wrapper's limit (templates/dpkg-lock.sh) and apt's `DPkg::Lock::Timeout`.
    pub package_lock_wait: u64,
    pub calico: CalicoView,
}

#[derive(Debug, Clone, Serialize)]
pub struct CalicoView {
    /// e.g. "v3.30.3".
    pub version: String,
    /// Where `kubectl apply -f` fetches the manifest; None when it is a local file.
    pub manifest_url: Option<String>,
    /// The local manifest file, whose text the phases pass as `calico_manifest`.
    pub manifest_file: Option<String>,
    /// `ipip` or `vxlan`; None keeps the manifest's own.
    pub encapsulation: Option<&'static str>,
}

impl HostView {
    pub fn new(host: &Host) -> HostView {
        HostView {
            name: host.name.clone(),
            address: host.address.clone(),
            node_ip: host.node_ip(),
            role: match host.role {
                Role::ControlPlane => "control-plane",
                Role::Worker => "worker",
            },
            labels: host.labels.clone(),
            taints: host
                .taints
                .iter()
                .map(|t| TaintView {
                    key: t.key.clone(),
                    value: t.value.clone(),
                    effect: t.effect.clone(),
                })
                .collect(),
        }
    }
}

impl ClusterView {
    pub fn new(inv: &Inventory) -> ClusterView {
        let c = &inv.cluster;
        let v = &c.kubernetes_version;
        let first_cp = inv.hosts.iter().find(|h| h.role == Role::ControlPlane);
        let endpoint =
            c.control_plane_endpoint
                .clone()
                .unwrap_or_else(|| match first_cp.map(Host::node_ip) {
                    Some(ip) if ip.contains(':') => format!("[{ip}]:6443"),
                    Some(ip) => format!("{ip}:6443"),
                    None => String::new(),
                });
        let api_server_cert_sans = first_cp
            .filter(|h| h.node_ip() != h.ssh_address())
            .map(|h| vec![h.ssh_address().to_string()])
            .unwrap_or_default();
        let (manifest_url, manifest_file) = match &c.calico.manifest {
            None => (
                Some(format!(
                    "https://raw.githubusercontent.com/projectcalico/calico/{}/manifests/calico.yaml",
                    c.calico.version
                )),
                None,
            ),
            Some(ManifestSource::Url(u)) => (Some(u.clone()), None),
            Some(ManifestSource::File(p)) => (None, Some(p.display().to_string())),
        };
        ClusterView {
            name: c.name.clone(),
            kubernetes_version: String::new(),
            minor: String::new(),
            package_version_prefix: String::new(),
            kubeadm_api: "",
            pod_subnet: c.pod_subnet.clone(),
            service_subnet: c.service_subnet.clone(),
            control_plane_endpoint: endpoint,
            api_server_cert_sans,
            first_control_plane: first_cp.map(|h| h.name.clone()).unwrap_or_default(),
            package_repository: c.package_repository.trim_end_matches('/').to_string(),
            package_lock_wait: c.package_lock_wait,
            calico: CalicoView {
                version: c.calico.version.clone(),
                manifest_url,
                manifest_file,
                encapsulation: c.calico.encapsulation.map(|e| e.name()),
            },
        }
        .at(&v.to_string())
    }

    /// The same cluster at another Kubernetes version: an upgrade's hop. `version` is
    /// "1.34.2", or "1.33" for "the newest 1.33 patch the repository offers" (an
    /// intermediate hop whose patch is only known once the repository is switched):
    /// then `package_version_prefix` is "1.33." and matches every patch.
    pub fn at(mut self, version: &str) -> ClusterView {
        let mut parts = version.split('.');
        let major: u64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let minor: u64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let exact = parts.next().is_some();
        self.kubernetes_version = version.to_string();
        self.minor = format!("{major}.{minor}");
        self.package_version_prefix = if exact {
            format!("{version}-")
        } else {
            format!("{version}.")
        };
        self.kubeadm_api = if (major, minor) >= (1, 31) {
            "v1beta4"
        } else {
            "v1beta3"
        };
        self
    }
}

/// Everything a step's templates can see: `host`, `cluster`, `facts`, `planned` (names
/// of the steps planned before it on this host) and any extra inputs (`join`,
/// `calico_current`, ...) at the top level.
#[derive(Debug, Clone, Serialize)]
pub struct Vars {
    pub host: HostView,
    pub cluster: ClusterView,
    pub facts: Option<HostFacts>,
    pub planned: Vec<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Vars {
    pub fn new(inv: &Inventory, host: &Host, facts: Option<&HostFacts>) -> Vars {
        Vars {
            host: HostView::new(host),
            cluster: ClusterView::new(inv),
            facts: facts.cloned(),
            planned: Vec::new(),
            extra: BTreeMap::new(),
        }
    }

    /// Adds an input, e.g. `.with("calico_current", None::<String>)`.
    pub fn with(mut self, name: &str, value: impl Serialize) -> Vars {
        let v = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        self.extra.insert(name.to_string(), v);
        self
    }
}

/// One step a host needs.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    pub playbook: String,
    pub step: String,
    pub description: String,
    /// Why: the fact that differs, e.g. "swap is on (/swap.img)".
    pub reason: String,
    /// Its stdout holds secrets nobody knew in advance (see `output_secret`).
    pub output_secret: bool,
    /// The node must be drained before this step (see `drain` in docs/playbooks.md).
    pub drain: bool,
    /// Part of the node's upgrade window (see `window` in docs/playbooks.md).
    pub window: bool,
    /// Serialized with secrets redacted.
    #[serde(serialize_with = "serialize_command")]
    pub command: RemoteCommand,
}

/// The steps of one playbook (a phase) a host needs.
#[derive(Debug, Clone, Serialize)]
pub struct PhasePlan {
    pub phase: String,
    pub steps: Vec<PlannedStep>,
}

/// What one host needs, phase by phase, in order.
#[derive(Debug, Clone, Serialize)]
pub struct HostPlan {
    pub host: String,
    /// Every host-scoped playbook, in order, including those with no steps.
    pub phases: Vec<PhasePlan>,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PlanError {
    #[error("{host}: {reason}")]
    Refused { host: String, reason: String },
    #[error("{host}: containerd {containerd}: {message}")]
    Containerd {
        host: String,
        containerd: String,
        message: String,
    },
    #[error("{host}: {source}")]
    Playbook {
        host: String,
        #[source]
        source: PlaybookError,
    },
}

/// Plans the host-scoped playbooks for one host. Converged facts give an empty plan.
pub fn plan_host(inv: &Inventory, host: &Host, facts: &HostFacts) -> Result<HostPlan, PlanError> {
    if let Some(reason) = facts.refusal() {
        return Err(PlanError::Refused {
            host: host.name.clone(),
            reason,
        });
    }
    let wanted = &inv.cluster.kubernetes_version;
    check_containerd(host, wanted, facts)?;
    let mut vars =
        Vars::new(inv, host, Some(facts)).with("upgrade_pending", upgrade_pending(inv, facts));
    let mut phases = Vec::new();
    for pb in playbook::catalog().playbooks() {
        if pb.scope != Scope::Host {
            continue;
        }
        let steps = plan_into(&pb.name, &mut vars).map_err(|source| PlanError::Playbook {
            host: host.name.clone(),
            source,
        })?;
        phases.push(PhasePlan {
            phase: pb.name.clone(),
            steps,
        });
    }
    Ok(HostPlan {
        host: host.name.clone(),
        phases,
    })
}

/// The host is a node (it has /etc/kubernetes/kubelet.conf) and some of kubelet, kubeadm
/// and kubectl are not installed at the inventory's version (another version, or missing,
/// e.g. after an upgrade interrupted while apt unpacked it): the upgrade phase puts them
/// in place (drained, one minor at a time), not the packages playbook.
pub fn upgrade_pending(inv: &Inventory, facts: &HostFacts) -> bool {
    let prefix = format!("{}-", inv.cluster.kubernetes_version);
    facts.kubernetes.kubelet_conf
        && ["kubelet", "kubeadm", "kubectl"].iter().any(|p| {
            !facts
                .packages
                .get(*p)
                .is_some_and(|pkg| pkg.installed && pkg.version.starts_with(&prefix))
        })
}

/// Kubernetes 1.38+ needs containerd 2 (reference §2): refuse a host whose containerd
/// (installed, or the one apt would install) is 1.x.
fn check_containerd(
    host: &Host,
    wanted: &semver::Version,
    facts: &HostFacts,
) -> Result<(), PlanError> {
    if (wanted.major, wanted.minor) < versions::CONTAINERD_1X_DROPPED {
        return Ok(());
    }
    let have = facts
        .containerd
        .version
        .clone()
        .or_else(|| facts.apt.containerd_candidate.clone());
    match have {
        Some(v) if v.starts_with("1.") => Err(PlanError::Containerd {
            host: host.name.clone(),
            containerd: v,
            message: versions::CONTAINERD_1X_MESSAGE.to_string(),
        }),
        _ => Ok(()),
    }
}

/// Plans one playbook with the given variables: the needed steps, in order, each with its
/// reason and command. `vars.planned` lists steps planned before (for `when` conditions
/// like `"sysctl-file" in planned`); this playbook's planned steps are added to it.
pub fn plan_playbook(playbook: &str, vars: &Vars) -> Result<Vec<PlannedStep>, PlaybookError> {
    let mut vars = vars.clone();
    plan_into(playbook, &mut vars)
}

fn plan_into(playbook: &str, vars: &mut Vars) -> Result<Vec<PlannedStep>, PlaybookError> {
    let catalog = playbook::catalog();
    let pb = catalog.playbook(playbook)?;
    let mut out = Vec::new();
    for step in &pb.steps {
        let ctx = Value::from_serialize(&*vars);
        let Some(reason) = catalog.check(playbook, &step.name, &ctx)? else {
            continue;
        };
        out.push(PlannedStep {
            playbook: playbook.to_string(),
            step: step.name.clone(),
            description: catalog.describe(playbook, &step.name, &ctx)?,
            reason,
            output_secret: step.output_secret,
            drain: step.drain,
            window: step.window,
            command: catalog.render(playbook, &step.name, &ctx)?,
        });
        vars.planned.push(step.name.clone());
    }
    Ok(out)
}

impl HostPlan {
    /// Nothing to do on this host.
    pub fn is_empty(&self) -> bool {
        self.phases.iter().all(|p| p.steps.is_empty())
    }

    /// The steps of one phase (empty if the phase needs nothing or does not exist).
    pub fn phase(&self, name: &str) -> &[PlannedStep] {
        self.phases
            .iter()
            .find(|p| p.phase == name)
            .map(|p| p.steps.as_slice())
            .unwrap_or(&[])
    }

    /// All steps in order.
    pub fn steps(&self) -> impl Iterator<Item = &PlannedStep> {
        self.phases.iter().flat_map(|p| &p.steps)
    }
}

impl fmt::Display for HostPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.steps().count();
        if n == 0 {
            return writeln!(f, "{}: nothing to do", self.host);
        }
        writeln!(
            f,
            "{}: {n} step{}",
            self.host,
            if n == 1 { "" } else { "s" }
        )?;
        for phase in self.phases.iter().filter(|p| !p.steps.is_empty()) {
            writeln!(f, "  {}", phase.phase)?;
            for s in &phase.steps {
                writeln!(f, "    {:<20} {}", s.step, s.description)?;
                writeln!(f, "    {:<20} because {}", "", s.reason)?;
            }
        }
        Ok(())
    }
}

fn redact(text: &str, secrets: &[String]) -> String {
    let mut t = text.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        t = t.replace(s.as_str(), "<redacted>");
    }
    t
}

/// The command as JSON: script and stdin with secrets redacted, the secrets themselves
/// only counted.
fn serialize_command<S: Serializer>(cmd: &RemoteCommand, ser: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Shown {
        script: String,
        stdin: Option<String>,
        root: bool,
        secrets: usize,
    }
    Shown {
        script: redact(&cmd.script, &cmd.secrets),
        stdin: cmd
            .stdin
            .as_ref()
            .map(|b| redact(&String::from_utf8_lossy(b), &cmd.secrets)),
        root: cmd.root,
        secrets: cmd.secrets.len(),
    }
    .serialize(ser)
}
