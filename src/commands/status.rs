//! `bootstrap status`: the cluster at a glance, read-only.
//!
//! It connects and plans exactly like `up` ([`up::connect_and_plan`]), so the drift it
//! reports is the work `up` would do, with `plan`'s reasons ([`plan::report`]). On
//! top it shows the node table (`kubectl get nodes -L <every label key the inventory
//! declares>`) and the control plane's certificate expiry (`kubeadm certs
//! check-expiration`). Exit 0 whenever everything could be read: status informs, it
//! does not judge; 4 or 5 for a host unreachable or refused, 1 on other errors, with
//! `up`'s messages. `--output json`: docs/status.md.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use serde::Serialize;

use super::plan;
use crate::cli::{OutputFormat, StatusArgs};
use crate::cluster::{self, Node};
use crate::exit::Outcome;
use crate::inventory::{self, Inventory, Role};
use crate::phases::up::{self, Planned};
use crate::phases::UpgradeOptions;
use crate::runlog::RunLog;
use crate::ssh::{Connection, RemoteCommand};

/// What `status` prints: `--output json` writes exactly this.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Status {
    /// The label keys declared anywhere in the inventory (the table's label columns).
    pub label_columns: Vec<String>,
    /// Inventory hosts in inventory order, then nodes the inventory does not list.
    pub nodes: Vec<NodeStatus>,
    /// None: the control plane is not initialized yet.
    pub certificates: Option<Certificates>,
    /// One entry per inventory host.
    pub drift: Vec<Drift>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NodeStatus {
    pub name: String,
    /// "control-plane" or "worker" (from the inventory, else from the node's role label).
    pub role: String,
    /// In the inventory.
    pub managed: bool,
    /// A node object exists.
    pub joined: bool,
    pub ready: bool,
    /// The kubelet version, e.g. `v1.34.2` (empty when not joined).
    pub version: String,
    /// The node's values of `label_columns` (keys it lacks are left out).
    pub labels: BTreeMap<String, String>,
    /// `key=value:Effect` or `key:Effect`.
    pub taints: Vec<String>,
}

/// `kubeadm certs check-expiration` on the first control plane.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Certificates {
    pub host: String,
    /// The leaf certificate that expires first.
    pub earliest: Option<Cert>,
    /// The certificate authority that expires first.
    pub earliest_ca: Option<Cert>,
    pub certificates: Vec<Cert>,
    pub authorities: Vec<Cert>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Cert {
    pub name: String,
    /// As kubeadm prints it, e.g. `Nov 25, 2027 19:06 UTC`; empty if missing.
    pub expires: String,
    /// kubeadm's residual time, e.g. `364d`, `9y`, `<invalid>` (expired).
    pub residual: String,
    /// The CA that signed it (empty for the CAs themselves).
    pub authority: String,
    /// kubeadm marks the certificate `!MISSING!`.
    pub missing: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Drift {
    pub host: String,
    pub in_sync: bool,
    /// What differs, one entry per pending step of `up`: `phase: step (reason)`.
    pub differences: Vec<String>,
}

pub fn main(args: &StatusArgs) -> std::process::ExitCode {
    match super::runtime().and_then(|rt| rt.block_on(run(args))) {
        Ok(outcome) => outcome.exit_code(),
        Err(report) => super::fail(report),
    }
}

/// Runs `status`. Success: printed; otherwise a host could not be read (the summary
/// on stderr says which and why, as for `up`).
pub async fn run(args: &StatusArgs) -> miette::Result<Outcome> {
    let inv = inventory::load(&args.inventory)?;
    let (progress, log) = up::open_run(args.run.log_dir.as_deref())?;
    let Some(planned) = up::connect_and_plan(
        inv,
        &progress,
        &log,
        &(&args.run).into(),
        &UpgradeOptions::default(),
    )
    .await
    else {
        return Ok(crate::report::stopped(&progress));
    };
    let certificates = match planned.view {
        None => None,
        Some(_) => {
            let cp = first_control_plane(&planned.inv);
            match check_expiration(&log, &planned.conns[&cp], &cp).await {
                Ok(c) => Some(c),
                Err(e) => {
                    progress.info(&format!("{cp}: {e}"));
                    return Ok(Outcome::Error);
                }
            }
        }
    };
    let status = Status {
        label_columns: label_columns(&planned.inv),
        nodes: nodes(&planned),
        certificates,
        drift: drift(&planned),
    };
    let text = match args.output {
        // The `bootstrap/status/v1` document; status exits 0 whenever it prints one.
        OutputFormat::Json => crate::report::to_json("status", crate::exit::SUCCESS, &status)?,
        OutputFormat::Text => render(&status),
    };
    println!("{}", text.trim_end());
    Ok(Outcome::Success)
}

fn first_control_plane(inv: &Inventory) -> String {
    inv.hosts
        .iter()
        .find(|h| h.role == Role::ControlPlane)
        .map(|h| h.name.clone())
        .expect("a validated inventory has a control plane")
}

/// Every label key some inventory host declares, sorted.
fn label_columns(inv: &Inventory) -> Vec<String> {
    let keys: BTreeSet<&String> = inv.hosts.iter().flat_map(|h| h.labels.keys()).collect();
    keys.into_iter().cloned().collect()
}

fn nodes(p: &Planned) -> Vec<NodeStatus> {
    let columns = label_columns(&p.inv);
    let objects: &[Node] = p.view.as_ref().map(|v| &v.nodes[..]).unwrap_or(&[]);
    let row = |name: &str, role: String, managed: bool, node: Option<&Node>| NodeStatus {
        name: name.to_string(),
        role,
        managed,
        joined: node.is_some(),
        ready: node.is_some_and(|n| n.ready),
        version: node.map(|n| n.kubelet_version.clone()).unwrap_or_default(),
        labels: node
            .map(|n| {
                columns
                    .iter()
                    .filter_map(|k| n.labels.get(k).map(|v| (k.clone(), v.clone())))
                    .collect()
            })
            .unwrap_or_default(),
        taints: node
            .map(|n| n.taints.iter().map(cluster::taint_spec).collect())
            .unwrap_or_default(),
    };
    let mut out: Vec<NodeStatus> = p
        .inv
        .hosts
        .iter()
        .map(|h| {
            let node = objects.iter().find(|n| n.name == h.name);
            row(&h.name, crate::phases::role_name(h.role).into(), true, node)
        })
        .collect();
    for n in objects {
        if !p.inv.hosts.iter().any(|h| h.name == n.name) {
            let role = if n.labels.contains_key(cluster::CONTROL_PLANE_TAINT_KEY) {
                "control-plane"
            } else {
                "worker"
            };
            out.push(row(&n.name, role.into(), false, Some(n)));
        }
    }
    out
}

/// One entry per inventory host: `up`'s pending steps that concern it, with reasons.
fn drift(p: &Planned) -> Vec<Drift> {
    let report = plan::report(p);
    report
        .hosts
        .iter()
        .map(|h| {
            let mut differences: Vec<String> = h
                .steps
                .iter()
                .map(|s| format!("{}: {} ({})", s.phase, s.description, s.reason))
                .collect();
            let mut upgrade_said = false;
            for s in report.cluster.iter().filter(|s| s.host == h.name) {
                // A token and the final wait follow from other steps; a wait on its own
                // (a node not Ready) is drift of its own. An upgrade is said once per
                // host, by its first step (its reason names the version that differs).
                let consequence = s.phase == "join-token"
                    || (s.phase == "ready" && p.cluster_plan.wait.is_none())
                    || (s.phase == "upgrade" && std::mem::replace(&mut upgrade_said, true));
                if !consequence {
                    differences.push(format!("{}: {} ({})", s.phase, s.step, s.reason));
                }
            }
            Drift {
                host: h.name.clone(),
                in_sync: differences.is_empty(),
                differences,
            }
        })
        .collect()
}

/// Runs `kubeadm certs check-expiration` as root and parses its two tables.
async fn check_expiration(
    log: &RunLog,
    conn: &Connection,
    cp: &str,
) -> Result<Certificates, String> {
    let step = "kubeadm certs check-expiration";
    let cmd = RemoteCommand {
        script: "kubeadm certs check-expiration".to_string(),
        root: true,
        ..RemoteCommand::default()
    };
    let started = Instant::now();
    let out = conn.run(&cmd).await.map_err(|e| format!("{step}: {e}"))?;
    let _ = log.host(cp).record(step, &cmd, &out, started.elapsed());
    if !out.success() {
        let why = out.stderr.trim();
        return Err(format!("{step} exited {}: {why}", out.status));
    }
    let (certificates, authorities) = parse_expiration(&out.stdout);
    if certificates.is_empty() && authorities.is_empty() {
        return Err(format!("{step}: no certificate table in its output"));
    }
    Ok(Certificates {
        host: cp.to_string(),
        earliest: earliest(&certificates),
        earliest_ca: earliest(&authorities),
        certificates,
        authorities,
    })
}

/// The certificate with the soonest expiry (missing ones are not candidates).
fn earliest(certs: &[Cert]) -> Option<Cert> {
    certs
        .iter()
        .filter_map(|c| expiry_key(&c.expires).map(|k| (k, c)))
        .min_by_key(|(k, _)| *k)
        .map(|(_, c)| c.clone())
}

/// Go's `Jan 02, 2006 15:04 MST` as a sortable (year, month, day, hour, minute).
fn expiry_key(text: &str) -> Option<(u32, u32, u32, u32, u32)> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut it = text.split_whitespace();
    let name = it.next()?;
    let month = MONTHS.iter().position(|m| *m == name)? as u32 + 1;
    let day = it.next()?.trim_end_matches(',').parse().ok()?;
    let year = it.next()?.parse().ok()?;
    let (h, m) = it.next()?.split_once(':')?;
    Some((year, month, day, h.parse().ok()?, m.parse().ok()?))
}

/// Parses check-expiration's output: the certificate table (header `CERTIFICATE`) and
/// the CA table (header `CERTIFICATE AUTHORITY`). The columns are tabwriter-aligned and
/// values contain single spaces (`Nov 25, 2027 19:06 UTC`), so each row is cut at the
/// header's column positions.
pub fn parse_expiration(stdout: &str) -> (Vec<Cert>, Vec<Cert>) {
    let (mut certs, mut cas) = (Vec::new(), Vec::new());
    let mut table: Option<(bool, Vec<(String, usize)>)> = None;
    for line in stdout.lines() {
        if line.trim().is_empty() {
            table = None;
            continue;
        }
        if line.starts_with("CERTIFICATE") && line.contains("EXPIRES") {
            let is_ca = line.starts_with("CERTIFICATE AUTHORITY");
            table = Some((is_ca, columns(line)));
            continue;
        }
        let Some((is_ca, cols)) = &table else {
            continue;
        };
        let field = |name: &str| -> String {
            let Some(i) = cols.iter().position(|(n, _)| n == name) else {
                return String::new();
            };
            let start = cols[i].1;
            let end = cols.get(i + 1).map(|c| c.1).unwrap_or(line.len());
            line.get(start.min(line.len())..end.min(line.len()))
                .unwrap_or("")
                .trim()
                .to_string()
        };
        let first = field(&cols[0].0);
        let missing = first.starts_with("!MISSING!");
        let cert = Cert {
            name: first.trim_start_matches("!MISSING!").trim().to_string(),
            expires: field("EXPIRES"),
            residual: field("RESIDUAL TIME"),
            authority: if *is_ca {
                String::new()
            } else {
                field("CERTIFICATE AUTHORITY")
            },
            missing,
        };
        if *is_ca {
            cas.push(cert);
        } else {
            certs.push(cert);
        }
    }
    (certs, cas)
}

/// A header's column names and start offsets: names are separated by 2+ spaces.
fn columns(header: &str) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    let mut start: Option<usize> = None;
    let mut spaces = 0;
    for (i, c) in header.char_indices() {
        if c == ' ' {
            spaces += 1;
            continue;
        }
        if start.is_none() || spaces >= 2 {
            if let Some(s) = start {
                out.push((header[s..i].trim().to_string(), s));
            }
            start = Some(i);
        }
        spaces = 0;
    }
    if let Some(s) = start {
        out.push((header[s..].trim().to_string(), s));
    }
    out
}

/// The text form: the node table, the certificates, the drift lines.
pub fn render(s: &Status) -> String {
    let mut header = vec!["NAME", "ROLE", "READY", "VERSION"];
    let upper: Vec<String> = s.label_columns.iter().map(|k| k.to_uppercase()).collect();
    header.extend(upper.iter().map(String::as_str));
    header.push("TAINTS");
    let mut rows = vec![header.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
    for n in &s.nodes {
        let ready = match (n.joined, n.ready) {
            (false, _) => "not joined",
            (true, true) => "Ready",
            (true, false) => "NotReady",
        };
        let role = if n.managed {
            n.role.clone()
        } else {
            format!("{} (unmanaged)", n.role)
        };
        let mut row = vec![n.name.clone(), role, ready.to_string()];
        row.push(if n.joined {
            n.version.clone()
        } else {
            "-".into()
        });
        for k in &s.label_columns {
            row.push(n.labels.get(k).cloned().unwrap_or_default());
        }
        row.push(match (n.joined, n.taints.is_empty()) {
            (false, _) => "-".into(),
            (true, true) => "<none>".into(),
            (true, false) => n.taints.join(","),
        });
        rows.push(row);
    }
    let mut out = table(&rows);
    out.push('\n');
    match &s.certificates {
        None => out.push_str("certificates: none yet (the control plane is not initialized)\n"),
        Some(c) => {
            out.push_str(&format!(
                "certificates (kubeadm certs check-expiration on {}):\n",
                c.host
            ));
            let line = |what: &str, cert: &Option<Cert>| match cert {
                Some(x) => format!(
                    "  {what}: {} expires {} (residual {})\n",
                    x.name, x.expires, x.residual
                ),
                None => format!("  {what}: none found\n"),
            };
            out.push_str(&line("earliest certificate", &c.earliest));
            out.push_str(&line("earliest CA", &c.earliest_ca));
            for m in c
                .certificates
                .iter()
                .chain(&c.authorities)
                .filter(|m| m.missing)
            {
                out.push_str(&format!("  missing: {}\n", m.name));
            }
        }
    }
    out.push('\n');
    out.push_str("drift:\n");
    for d in &s.drift {
        if d.in_sync {
            out.push_str(&format!("  {}: in sync\n", d.host));
        } else {
            out.push_str(&format!("  {}: {}\n", d.host, d.differences.join("; ")));
        }
    }
    out
}

/// Left-aligned columns, three spaces apart (like kubectl's and kubeadm's tables).
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                let pad = widths[i] - c.chars().count() + 3;
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "\
[check-expiration] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"...
[check-expiration] Use 'kubeadm init phase upload-config kubeadm --config your-config-file' to re-upload it.

CERTIFICATE                EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED
admin.conf                 Nov 25, 2027 19:06 UTC   364d            ca                      no
apiserver                  Nov 24, 2027 08:01 UTC   363d            ca                      no
!MISSING! super-admin.conf

CERTIFICATE AUTHORITY   EXPIRES                  RESIDUAL TIME   EXTERNALLY MANAGED
ca                      Nov 23, 2036 19:06 UTC   9y              no
front-proxy-ca          Nov 22, 2036 19:06 UTC   9y              no
";

    #[test]
    fn parses_check_expiration() {
        let (certs, cas) = parse_expiration(OUTPUT);
        assert_eq!(certs.len(), 3);
        assert_eq!(certs[0].name, "admin.conf");
        assert_eq!(certs[0].expires, "Nov 25, 2027 19:06 UTC");
        assert_eq!(certs[0].residual, "364d");
        assert_eq!(certs[0].authority, "ca");
        assert!(certs[2].missing && certs[2].name == "super-admin.conf");
        assert_eq!(cas.len(), 2);
        assert_eq!(cas[0].residual, "9y");
        assert_eq!(earliest(&certs).unwrap().name, "apiserver");
        assert_eq!(earliest(&cas).unwrap().name, "front-proxy-ca");
    }

    #[test]
    fn render_marks_not_joined_and_unmanaged() {
        let node = |name: &str, managed: bool, joined: bool| NodeStatus {
            name: name.into(),
            role: "worker".into(),
            managed,
            joined,
            ready: joined,
            version: if joined {
                "v1.34.2".into()
            } else {
                String::new()
            },
            labels: BTreeMap::from([("type".to_string(), "web".to_string())]),
            taints: vec!["dedicated=db:NoSchedule".into()],
        };
        let s = Status {
            label_columns: vec!["type".into()],
            nodes: vec![node("a", true, false), node("b", false, true)],
            certificates: None,
            drift: vec![Drift {
                host: "a".into(),
                in_sync: false,
                differences: vec!["join: kubeadm join (x)".into(), "y".into()],
            }],
        };
        let text = render(&s);
        assert!(
            text.starts_with("NAME   ROLE                 READY        VERSION"),
            "{text}"
        );
        assert!(
            text.contains("a      worker               not joined   -         web    -\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "b      worker (unmanaged)   Ready        v1.34.2   web    dedicated=db:NoSchedule\n"
            ),
            "{text}"
        );
        assert!(text.contains("certificates: none yet"), "{text}");
        assert!(text.contains("  a: join: kubeadm join (x); y\n"), "{text}");
    }

    #[test]
    fn expiry_keys_sort_by_time() {
        assert!(expiry_key("Jan 02, 2028 00:00 UTC") > expiry_key("Dec 31, 2027 23:59 UTC"));
        assert_eq!(expiry_key(""), None);
    }
}
