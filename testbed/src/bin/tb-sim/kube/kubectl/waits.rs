//! The waiting commands: `rollout status`, `wait --for=condition=...`, `drain` (with
//! DaemonSet / local-storage / unmanaged pod filters and PDB-respecting evictions).
//! User-given timeouts are real seconds, as on a real host.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::edit::set_unschedulable;
use super::{fail, resource, targets, Fail, Kubectl, Res};
use crate::kube::api::{ClientError, Op};
use crate::kube::objects;
use crate::kube::scheduler;

fn timeout(k: &Kubectl, default: f64) -> Result<Option<f64>, Fail> {
    match k.args.value("timeout") {
        None => Ok((default > 0.0).then_some(default)),
        Some(t) => match objects::parse_duration(&t) {
            Some(0.0) => Ok(None),
            Some(s) => Ok(Some(s)),
            None => fail(format!("error: invalid argument \"{t}\" for \"--timeout\" flag: time: invalid duration \"{t}\"")),
        },
    }
}

/// kubectl's rollout status message for a Deployment or DaemonSet: (text, done).
pub fn rollout_message(obj: &Value) -> Result<(String, bool), String> {
    let name = objects::name(obj);
    let gen = obj["metadata"]["generation"].as_i64().unwrap_or(0);
    let observed = obj["status"]["observedGeneration"].as_i64().unwrap_or(-1);
    let st = &obj["status"];
    let n = |k: &str| st[k].as_i64().unwrap_or(0);
    match objects::kind(obj) {
        "Deployment" => {
            if gen > observed {
                return Ok((
                    "Waiting for deployment spec update to be observed...".into(),
                    false,
                ));
            }
            let want = obj["spec"]["replicas"].as_i64().unwrap_or(1);
            if n("updatedReplicas") < want {
                return Ok((format!("Waiting for deployment \"{name}\" rollout to finish: {} out of {want} new replicas have been updated...", n("updatedReplicas")), false));
            }
            if n("replicas") > n("updatedReplicas") {
                return Ok((format!("Waiting for deployment \"{name}\" rollout to finish: {} old replicas are pending termination...", n("replicas") - n("updatedReplicas")), false));
            }
            if n("availableReplicas") < n("updatedReplicas") {
                return Ok((format!("Waiting for deployment \"{name}\" rollout to finish: {} of {} updated replicas are available...", n("availableReplicas"), n("updatedReplicas")), false));
            }
            Ok((
                format!("deployment \"{name}\" successfully rolled out"),
                true,
            ))
        }
        "DaemonSet" => {
            if obj["spec"]["updateStrategy"]["type"]
                .as_str()
                .is_some_and(|t| t != "RollingUpdate")
            {
                return Err(
                    "rollout status is only available for RollingUpdate strategy type".into(),
                );
            }
            if gen > observed {
                return Ok((
                    "Waiting for daemon set spec update to be observed...".into(),
                    false,
                ));
            }
            let desired = n("desiredNumberScheduled");
            if n("updatedNumberScheduled") < desired {
                return Ok((format!("Waiting for daemon set \"{name}\" rollout to finish: {} out of {desired} new pods have been updated...", n("updatedNumberScheduled")), false));
            }
            if n("numberAvailable") < desired {
                return Ok((format!("Waiting for daemon set \"{name}\" rollout to finish: {} of {desired} updated pods are available...", n("numberAvailable")), false));
            }
            Ok((
                format!("daemon set \"{name}\" successfully rolled out"),
                true,
            ))
        }
        other => Err(format!("no status viewer has been implemented for {other}")),
    }
}

pub fn rollout(k: &Kubectl) -> Res {
    let sub = k.args.pos.get(1).cloned().unwrap_or_default();
    if sub != "status" {
        return fail(format!(
            "error: unknown command \"{sub}\" for \"kubectl rollout\""
        ));
    }
    let t = targets(&k.args.pos[2..])?;
    let Some((r, Some(name))) = t.into_iter().next() else {
        return fail("error: required resource not specified");
    };
    let ns = k.namespace();
    let deadline = timeout(k, 0.0)?.map(|s| Instant::now() + Duration::from_secs_f64(s));
    let mut last = String::new();
    loop {
        let obj = k.get_object(&r, &ns, &name)?;
        let (msg, done) = rollout_message(&obj).map_err(|e| Fail(format!("error: {e}"), 1))?;
        if msg != last {
            println!("{msg}");
            last = msg;
        }
        if done {
            return Ok(0);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return fail("error: timed out waiting for the condition");
        }
        std::thread::sleep(k.poll());
    }
}

fn condition_met(obj: &Value, cond: &str, want: &str) -> bool {
    obj["status"]["conditions"].as_array().is_some_and(|a| {
        a.iter().any(|c| {
            c["type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case(cond))
                && c["status"]
                    .as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(want))
        })
    })
}

pub fn wait(k: &Kubectl) -> Res {
    let Some(for_) = k.args.value("for") else {
        return fail("error: --for must be specified");
    };
    let (cond, want) = match for_.strip_prefix("condition=") {
        Some(c) => match c.split_once('=') {
            Some((c, v)) => (c.to_string(), v.to_string()),
            None => (c.to_string(), "True".to_string()),
        },
        None if for_ == "delete" => ("".into(), "".into()),
        None => return fail(format!("error: unrecognized condition: \"{for_}\"")),
    };
    let deadline_s = timeout(k, 30.0)?;
    let start = Instant::now();
    let ns = k.namespace();
    let t = targets(&k.args.pos[1..])?;
    if t.is_empty() {
        return fail("error: resource(s) were provided, but no name was specified");
    }
    // Resolve the objects to wait for.
    let mut names: Vec<(objects::Resource, String)> = vec![];
    for (r, name) in t {
        match name {
            Some(n) => names.push((r, n)),
            None => {
                if !k.args.flag("all") && k.args.value("selector").is_none() {
                    return fail("error: resource(s) were provided, but no name was specified");
                }
                let mut items = k.list(&r, Some(&ns))?;
                if let Some(sel) = k.args.value("selector") {
                    let sel = objects::parse_selector(&sel)
                        .map_err(|e| Fail(format!("error: {e}"), 1))?;
                    items.retain(|o| objects::selector_matches(&sel, &objects::labels(o)));
                }
                names.extend(
                    items
                        .iter()
                        .map(|o| (r.clone(), objects::name(o).to_string())),
                );
            }
        }
    }
    if names.is_empty() {
        return fail("error: no matching resources found");
    }
    for (r, name) in names {
        loop {
            let got = k.get_object(&r, &ns, &name);
            let met = match &got {
                Ok(o) if cond.is_empty() => {
                    let _ = o;
                    false
                }
                Ok(o) => condition_met(o, &cond, &want),
                Err(ClientError::Server(b)) if b["code"] == 404 && cond.is_empty() => true,
                Err(ClientError::Server(b)) if b["code"] == 404 => {
                    return fail(format!(
                        "Error from server (NotFound): {} \"{name}\" not found",
                        r.plural_ref()
                    ));
                }
                Err(ClientError::Server(b)) => return fail(crate::kube::api::server_error_text(b)),
                Err(ClientError::Unreachable(m)) => return fail(m.clone()),
            };
            if met {
                if cond.is_empty() {
                    println!("{}/{name} deleted", r.singular_ref());
                } else {
                    println!("{}/{name} condition met", r.singular_ref());
                }
                break;
            }
            if deadline_s.is_some_and(|d| start.elapsed().as_secs_f64() >= d) {
                return fail(format!(
                    "error: timed out waiting for the condition on {}/{name}",
                    r.plural_ref()
                ));
            }
            std::thread::sleep(k.poll());
        }
    }
    Ok(0)
}

/// The pods drain would remove, and its errors/warnings, like kubectl's filters.
pub struct DrainList {
    pub pods: Vec<Value>,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

pub fn pods_for_deletion(
    pods: &[Value],
    ignore_ds: bool,
    delete_emptydir: bool,
    force: bool,
) -> DrainList {
    let mut ds = vec![];
    let mut local = vec![];
    let mut unmanaged = vec![];
    let mut keep = vec![];
    let id = |p: &Value| format!("{}/{}", objects::namespace(p), objects::name(p));
    let mut ds_warn = vec![];
    let mut local_warn = vec![];
    let mut unmanaged_warn = vec![];
    for p in pods {
        let finished = matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
        if scheduler::is_mirror(p) {
            continue;
        }
        if scheduler::owner_kind(p) == Some("DaemonSet") {
            if ignore_ds {
                ds_warn.push(id(p));
            } else {
                ds.push(id(p));
            }
            continue;
        }
        if scheduler::owner(p).is_none() && !finished {
            if force {
                unmanaged_warn.push(id(p));
            } else {
                unmanaged.push(id(p));
                continue;
            }
        }
        let has_emptydir = p["spec"]["volumes"]
            .as_array()
            .is_some_and(|v| v.iter().any(|v| v["emptyDir"].is_object()));
        if has_emptydir && !finished {
            if delete_emptydir {
                local_warn.push(id(p));
            } else {
                local.push(id(p));
                continue;
            }
        }
        keep.push(p.clone());
    }
    let mut errors = vec![];
    if !ds.is_empty() {
        errors.push(format!(
            "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): {}",
            ds.join(", ")
        ));
    }
    if !local.is_empty() {
        errors.push(format!(
            "cannot delete Pods with local storage (use --delete-emptydir-data to override): {}",
            local.join(", ")
        ));
    }
    if !unmanaged.is_empty() {
        errors.push(format!(
            "cannot delete Pods that declare no controller (use --force to override): {}",
            unmanaged.join(", ")
        ));
    }
    let mut warnings = vec![];
    if !ds_warn.is_empty() {
        warnings.push(format!(
            "ignoring DaemonSet-managed Pods: {}",
            ds_warn.join(", ")
        ));
    }
    if !local_warn.is_empty() {
        warnings.push(format!(
            "deleting Pods with local storage: {}",
            local_warn.join(", ")
        ));
    }
    if !unmanaged_warn.is_empty() {
        warnings.push(format!(
            "deleting Pods that declare no controller: {}",
            unmanaged_warn.join(", ")
        ));
    }
    DrainList {
        pods: keep,
        errors,
        warnings,
    }
}

fn node_pods(k: &Kubectl, node: &str) -> Result<Vec<Value>, Fail> {
    let r = resource("pods")?;
    let mut pods = k.list(&r, None)?;
    pods.retain(|p| p["spec"]["nodeName"] == node);
    Ok(pods)
}

pub fn drain(k: &mut Kubectl) -> Res {
    let names: Vec<String> = k.args.pos[1..]
        .iter()
        .map(|n| {
            n.trim_start_matches("node/")
                .trim_start_matches("nodes/")
                .to_string()
        })
        .collect();
    if names.is_empty() {
        return fail(
            "error: USAGE: drain NODE [flags]\nSee 'kubectl drain -h' for help and examples",
        );
    }
    let r = resource("nodes")?;
    let mut nodes = vec![];
    for n in &names {
        nodes.push(k.get_object(&r, "", n)?);
    }
    for n in &nodes {
        set_unschedulable(k, n, true)?;
    }
    let global = timeout(k, 0.0)?;
    let start = Instant::now();
    let retry = Duration::from_secs_f64((5.0 * k.time_scale).max(0.5));
    let mut fatal: Option<String> = None;
    let mut remaining: Vec<String> = vec![];
    for (i, name) in names.iter().enumerate() {
        if fatal.is_some() {
            remaining.push(name.clone());
            continue;
        }
        match drain_one(k, name, global, start, retry) {
            Ok(()) => println!("node/{name} drained"),
            Err(e) => {
                eprintln!("error: unable to drain node \"{name}\" due to error: {e}, continuing command...");
                fatal = Some(e);
                remaining.push(name.clone());
                let _ = i;
            }
        }
    }
    if let Some(e) = fatal {
        eprintln!("There are pending nodes to be drained:");
        for n in remaining {
            eprintln!(" {n}");
        }
        return fail(format!("error: {e}"));
    }
    Ok(0)
}

fn drain_one(
    k: &Kubectl,
    node: &str,
    global: Option<f64>,
    start: Instant,
    retry: Duration,
) -> Result<(), String> {
    let list = |k: &Kubectl| -> Result<DrainList, String> {
        let pods = node_pods(k, node).map_err(|f| f.0)?;
        Ok(pods_for_deletion(
            &pods,
            k.args.flag("ignore-daemonsets"),
            k.args.flag("delete-emptydir-data") || k.args.flag("delete-local-data"),
            k.args.flag("force"),
        ))
    };
    let l = list(k)?;
    if !l.errors.is_empty() {
        return Err(if l.errors.len() == 1 {
            l.errors[0].clone()
        } else {
            format!("[{}]", l.errors.join(", "))
        });
    }
    if !l.warnings.is_empty() {
        eprintln!("Warning: {}", l.warnings.join("; "));
    }
    let mut pending: Vec<Value> = l.pods;
    let mut announced = std::collections::BTreeSet::new();
    while !pending.is_empty() {
        let mut next = vec![];
        for p in pending {
            let (ns, name) = (
                objects::namespace(&p).to_string(),
                objects::name(&p).to_string(),
            );
            if announced.insert(format!("{ns}/{name}")) {
                println!("evicting pod {ns}/{name}");
            }
            if global.is_some_and(|g| start.elapsed().as_secs_f64() >= g) {
                let g = objects::go_duration(global.unwrap());
                let err = format!(
                    "error when evicting pods/\"{name}\" -n \"{ns}\": global timeout reached: {g}"
                );
                let left = list(k).map(|l| l.pods).unwrap_or_default();
                if !left.is_empty() {
                    eprintln!(
                        "There are pending pods in node \"{node}\" when an error occurred: {err}"
                    );
                    for lp in left {
                        eprintln!("pod/{}", objects::name(&lp));
                    }
                }
                return Err(err);
            }
            let r = k.send(Op::Call {
                name: "evict".into(),
                args: json!({"namespace": ns, "name": name}),
            });
            match r {
                Ok(_) => {
                    k.changed.set(true);
                    println!("pod/{name} evicted");
                }
                Err(ClientError::Server(b)) if b["code"] == 404 => {}
                Err(ClientError::Server(b)) if b["code"] == 429 => {
                    eprintln!(
                        "error when evicting pods/\"{name}\" -n \"{ns}\" (will retry after 5s): {}",
                        b["message"].as_str().unwrap_or("")
                    );
                    next.push(p);
                }
                Err(ClientError::Server(b)) => {
                    return Err(format!(
                        "error when evicting pods/\"{name}\" -n \"{ns}\": {}",
                        b["message"].as_str().unwrap_or("")
                    ));
                }
                Err(ClientError::Unreachable(m)) => return Err(m),
            }
        }
        pending = next;
        if !pending.is_empty() {
            std::thread::sleep(retry);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollout_texts() {
        let d = json!({"kind": "Deployment", "metadata": {"name": "wordpress", "generation": 2},
            "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1}});
        assert_eq!(rollout_message(&d).unwrap().0, "Waiting for deployment \"wordpress\" rollout to finish: 1 of 2 updated replicas are available...");
        let mut done = d.clone();
        done["status"]["availableReplicas"] = json!(2);
        assert_eq!(
            rollout_message(&done).unwrap(),
            (
                "deployment \"wordpress\" successfully rolled out".into(),
                true
            )
        );
        let ds = json!({"kind": "DaemonSet", "metadata": {"name": "calico-node", "generation": 1},
            "spec": {"updateStrategy": {"type": "RollingUpdate"}},
            "status": {"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 1}});
        assert_eq!(rollout_message(&ds).unwrap().0, "Waiting for daemon set \"calico-node\" rollout to finish: 1 of 3 updated pods are available...");
    }

    #[test]
    fn drain_filters() {
        let ds = json!({"metadata": {"name": "calico-node-x", "namespace": "kube-system",
            "ownerReferences": [{"kind": "DaemonSet", "controller": true}]}});
        let rs = json!({"metadata": {"name": "wp-1", "namespace": "default",
            "ownerReferences": [{"kind": "ReplicaSet", "controller": true}]},
            "spec": {"volumes": [{"name": "t", "emptyDir": {}}]}});
        let l = pods_for_deletion(&[ds.clone(), rs.clone()], false, true, false);
        assert_eq!(l.errors, vec!["cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): kube-system/calico-node-x"]);
        let l = pods_for_deletion(&[ds, rs], true, false, false);
        assert_eq!(l.errors, vec!["cannot delete Pods with local storage (use --delete-emptydir-data to override): default/wp-1"]);
        assert_eq!(
            l.warnings,
            vec!["ignoring DaemonSet-managed Pods: kube-system/calico-node-x"]
        );
    }
}
