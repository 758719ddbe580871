//! A record of the Node spec changes (cordon, uncordon, taints) that the API server of a
//! testbed cluster applied, in the order it applied them.
//!
//! How: `kubectl get nodes --watch --output-watch-events -o json` with the control
//! plane's admin.conf, started inside the host before the steps under test and read
//! after them. A watch delivers every change of every Node in resourceVersion order,
//! which is the order the server applied them; a restarted watch (the API server restarts
//! during `kubeadm upgrade apply`, which ends kubectl's watch) begins again with the
//! current state of every Node, so a change made while no watch ran still shows, only
//! later. Only changes of `spec.unschedulable` or `spec.taints` are kept; status updates
//! (the kubelet's every 10 s) are left out.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::layout::{self, HostConfig, HostPaths, NodeSpecChange};
use crate::Testbed;

/// Where the watches write, inside [`layout::CTL_DIR`] (so readable from outside).
const DIR: &str = "node-watch";

/// A running watch of the Nodes on one control plane; stopped when dropped.
#[derive(Debug)]
pub struct NodeWatch<'a> {
    tb: &'a Testbed,
    host: String,
    /// The outside path of the watch's output.
    out: PathBuf,
    /// The process group of the shell loop, in the host's PID namespace.
    pgid: i32,
}

impl Testbed {
    /// Starts recording the Node spec changes of the cluster whose API server answers on
    /// `control_plane` (with its /etc/kubernetes/admin.conf): returns once the watch has
    /// listed the Nodes that exist now (their state is the starting point, not a change).
    /// Read with [`NodeWatch::changes`]. Needs a real control plane
    /// ([`crate::Builder::real_kubernetes`]): the kubectl is the built one.
    pub fn watch_node_specs(&self, control_plane: &str) -> Result<NodeWatch<'_>> {
        let kubectl = built_kubectl(self, control_plane)?;
        let ctl = HostPaths::new(self.dir(), control_plane).ctl();
        let dir = ctl.join(DIR);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
        let n = std::fs::read_dir(&dir)
            .map_err(|e| Error::io("read", &dir, e))?
            .count();
        let name = format!("{n}.json");
        let inside = format!("{}/{DIR}/{name}", layout::CTL_DIR);
        let admin = format!("{kubectl} --kubeconfig /etc/kubernetes/admin.conf");
        let before = self.exec(
            control_plane,
            &["sh", "-c", &format!("{admin} get nodes -o name")],
        )?;
        if !before.status.success() {
            return Err(Error::host(
                control_plane,
                format!(
                    "cannot list the Nodes: {}",
                    String::from_utf8_lossy(&before.stderr).trim()
                ),
            ));
        }
        let nodes = String::from_utf8_lossy(&before.stdout).lines().count();
        // A loop, so the record goes on after an API server restart ends the watch.
        let script = format!(
            "setsid sh -c 'while :; do {admin} get nodes --watch --output-watch-events -o json; \
             sleep 1; done' >{inside} 2>{inside}.err </dev/null & echo $!"
        );
        let started = self.exec(control_plane, &["sh", "-c", &script])?;
        let pgid: i32 = String::from_utf8_lossy(&started.stdout)
            .trim()
            .parse()
            .map_err(|_| Error::host(control_plane, "the node watch did not start"))?;
        let watch = NodeWatch {
            tb: self,
            host: control_plane.to_string(),
            out: dir.join(name),
            pgid,
        };
        let until = Instant::now() + Duration::from_secs(30);
        while watch.events()?.len() < nodes {
            if Instant::now() > until {
                let err = std::fs::read_to_string(watch.out.with_extension("json.err"));
                return Err(Error::host(
                    control_plane,
                    format!(
                        "the node watch listed no nodes in 30 s: {}",
                        err.unwrap_or_default().trim()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(watch)
    }
}

impl NodeWatch<'_> {
    /// The spec changes recorded since the watch started, in the order the API server
    /// applied them (nodes start in the state the watch first listed).
    pub fn changes(&self) -> Result<Vec<NodeSpecChange>> {
        Ok(spec_changes(&self.events()?))
    }

    /// The watch events written so far (a last event still being written is left out).
    fn events(&self) -> Result<Vec<Value>> {
        let text = match std::fs::read_to_string(&self.out) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io("read", &self.out, e)),
        };
        let mut events = Vec::new();
        for value in serde_json::Deserializer::from_str(&text).into_iter::<Value>() {
            match value {
                Ok(v) => events.push(v),
                Err(e) if e.is_eof() => break,
                Err(source) => {
                    return Err(Error::Json {
                        path: self.out.clone(),
                        source,
                    })
                }
            }
        }
        Ok(events)
    }
}

impl Drop for NodeWatch<'_> {
    fn drop(&mut self) {
        let kill = format!("kill -- -{} 2>/dev/null", self.pgid);
        let _ = self.tb.exec(&self.host, &["sh", "-c", &kill]);
    }
}

/// The kubectl of a release built for the hosts (the host's configuration names the
/// cache), so the record does not depend on what the cluster's own packages hold.
fn built_kubectl(tb: &Testbed, host: &str) -> Result<String> {
    let path = HostPaths::new(tb.dir(), host)
        .ctl()
        .join(layout::ctl::HOST_CONFIG);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
    let config: HostConfig =
        serde_json::from_str(&text).map_err(|source| Error::Json { path, source })?;
    let releases = config.real_kubernetes.ok_or_else(|| {
        Error::host(
            host,
            "has no real control plane (Builder::real_kubernetes): nothing to watch",
        )
    })?;
    let built = crate::k8s::built_releases(&releases)?;
    let release = if built.iter().any(|r| r == crate::k8s::DEFAULT_RELEASE) {
        crate::k8s::DEFAULT_RELEASE.to_string()
    } else {
        built
            .last()
            .cloned()
            .ok_or_else(|| Error::Invalid(format!("no release built in {}", releases.display())))?
    };
    Ok(releases.join(release).join("kubectl").display().to_string())
}

/// A Node's (unschedulable, taints as `key[=value]:Effect`).
fn spec_of(node: &Value) -> (bool, Vec<String>) {
    let spec = &node["spec"];
    let taints = spec["taints"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    let key = t["key"].as_str().unwrap_or_default();
                    let effect = t["effect"].as_str().unwrap_or_default();
                    match t["value"].as_str().filter(|v| !v.is_empty()) {
                        Some(v) => format!("{key}={v}:{effect}"),
                        None => format!("{key}:{effect}"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    (spec["unschedulable"] == true, taints)
}

/// The newest entry of a Node's managedFields: (manager, time as seconds since the epoch).
fn last_manager(node: &Value) -> (String, f64) {
    let mut best = (String::new(), 0.0);
    for m in node["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let ts = m["time"]
            .as_str()
            .and_then(crate::time::parse_rfc3339)
            .unwrap_or(0.0);
        if ts >= best.1 {
            best = (m["manager"].as_str().unwrap_or_default().to_string(), ts);
        }
    }
    best
}

/// The spec changes in a stream of watch events: an event whose Node's (unschedulable,
/// taints) differs from the last one seen for that Node. The first sight of a Node is its
/// starting state; a Node deleted counts as schedulable and untainted.
/// `user` is the field manager of the newest managedFields entry (`kubectl-cordon`,
/// `kubectl-taint`, `node-controller` ...: the real API server records managers, not
/// users), `verb` the event type in lower case.
fn spec_changes(events: &[Value]) -> Vec<NodeSpecChange> {
    let mut seen: HashMap<String, (bool, Vec<String>)> = HashMap::new();
    let mut changes = Vec::new();
    for e in events {
        let node = &e["object"];
        let Some(name) = node["metadata"]["name"].as_str() else {
            continue;
        };
        let verb = e["type"].as_str().unwrap_or_default().to_lowercase();
        let now = if verb == "deleted" {
            (false, Vec::new())
        } else {
            spec_of(node)
        };
        let Some(before) = seen.insert(name.to_string(), now.clone()) else {
            continue;
        };
        if before == now {
            continue;
        }
        let (user, ts) = last_manager(node);
        changes.push(NodeSpecChange {
            ts,
            node: name.to_string(),
            user,
            verb,
            unschedulable: now.0,
            taints: now.1,
        });
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, name: &str, unschedulable: bool, taints: Value, manager: &str) -> Value {
        json!({"type": kind, "object": {
            "metadata": {"name": name, "managedFields": [
                {"manager": "kubelet", "time": "2026-12-06T09:00:00Z"},
                {"manager": manager, "time": "2026-12-06T09:00:05Z"}]},
            "spec": {"unschedulable": unschedulable, "taints": taints}}})
    }

    #[test]
    fn only_spec_changes_after_the_first_sight_are_kept() {
        let t = json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]);
        let events = [
            event("ADDED", "n1", false, t.clone(), "kubeadm"),
            event("ADDED", "n2", false, json!(null), "kubelet"),
            // A status update: no change.
            event("MODIFIED", "n1", false, t.clone(), "kubelet"),
            event("MODIFIED", "n1", true, t.clone(), "kubectl-cordon"),
            event(
                "MODIFIED",
                "n1",
                true,
                json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"},
                       {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
                "node-controller",
            ),
            // A restarted watch lists n1 again as it is: no change.
            event(
                "ADDED",
                "n1",
                true,
                json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"},
                       {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
                "node-controller",
            ),
            event("DELETED", "n2", false, json!(null), "kubelet"),
        ];
        let changes = spec_changes(&events);
        let got: Vec<(&str, &str, &str, bool, Vec<String>)> = changes
            .iter()
            .map(|c| {
                (
                    c.node.as_str(),
                    c.user.as_str(),
                    c.verb.as_str(),
                    c.unschedulable,
                    c.taints.clone(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "n1",
                    "kubectl-cordon",
                    "modified",
                    true,
                    vec!["dedicated=db:NoSchedule".to_string()]
                ),
                (
                    "n1",
                    "node-controller",
                    "modified",
                    true,
                    vec![
                        "dedicated=db:NoSchedule".to_string(),
                        "node.kubernetes.io/unschedulable:NoSchedule".to_string()
                    ]
                )
            ]
        );
        assert_eq!(
            changes[0].ts,
            crate::time::parse_rfc3339("2026-12-06T09:00:05Z").unwrap()
        );
    }
}
