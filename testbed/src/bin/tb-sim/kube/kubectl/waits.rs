//! The waiting commands: `rollout status`, `wait --for=condition=...`, `drain` (with
//! DaemonSet / local-storage / unmanaged pod filters and PDB-respecting evictions).
//! User-given timeouts are real seconds, as on a real host.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::edit::set_unschedulable;
use super::jsonpath;
use super::{fail, resource, targets, Fail, Kubectl, Res};
use crate::kube::api::{ClientError, Op};
use crate::kube::objects;
use crate::kube::scheduler;

/// A `--timeout` flag's value in seconds (`default` when absent). kubectl declares it with
/// pflag's DurationVar, so it takes exactly what Go's `time.ParseDuration` takes (a sign,
/// units required except for "0"); anything else is pflag's error.
fn flag_seconds(k: &Kubectl, default: f64) -> Result<f64, Fail> {
    match k.args.value("timeout") {
        None => Ok(default),
        Some(t) => go_duration_arg(&t).map_err(|e| {
            Fail(
                format!("error: invalid argument \"{t}\" for \"--timeout\" flag: {e}"),
                1,
            )
        }),
    }
}

/// Go's `time.ParseDuration`, with its error texts.
pub fn go_duration_arg(s: &str) -> Result<f64, String> {
    let (sign, body) = match s.strip_prefix('-') {
        Some(b) => (-1.0, b),
        None => (1.0, s.strip_prefix('+').unwrap_or(s)),
    };
    if let Some(v) = objects::parse_go_duration(body).filter(|_| !body.trim().is_empty()) {
        return Ok(sign * v);
    }
    let digits = body.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
    if !body.is_empty() && digits.is_empty() {
        return Err(format!("time: missing unit in duration \"{s}\""));
    }
    if digits.len() < body.len() {
        let unit: String = digits
            .chars()
            .take_while(|c| !c.is_ascii_digit() && *c != '.')
            .collect();
        if !["h", "m", "s", "ms", "us", "µs", "ns"].contains(&unit.as_str()) {
            return Err(format!("time: unknown unit \"{unit}\" in duration \"{s}\""));
        }
    }
    Err(format!("time: invalid duration \"{s}\""))
}

/// `--timeout` of rollout status and drain: zero (the default) means no limit.
fn timeout(k: &Kubectl) -> Result<Option<f64>, Fail> {
    let s = flag_seconds(k, 0.0)?;
    Ok((s > 0.0).then_some(s))
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
        "StatefulSet" => {
            // rollout_status.go's StatefulSetStatusViewer, on the object as the API server
            // defaults it: updateStrategy RollingUpdate with partition 0.
            let strategy = &obj["spec"]["updateStrategy"];
            let ty = strategy["type"].as_str().unwrap_or("RollingUpdate");
            if ty != "RollingUpdate" {
                return Err(
                    "rollout status is only available for RollingUpdate strategy type".into(),
                );
            }
            if observed <= 0 || gen > observed {
                return Ok((
                    "Waiting for statefulset spec update to be observed...".into(),
                    false,
                ));
            }
            let want = obj["spec"]["replicas"].as_i64().unwrap_or(1);
            if n("readyReplicas") < want {
                return Ok((
                    format!(
                        "Waiting for {} pods to be ready...",
                        want - n("readyReplicas")
                    ),
                    false,
                ));
            }
            let partition = strategy["rollingUpdate"]["partition"].as_i64().unwrap_or(0);
            if n("updatedReplicas") < want - partition {
                return Ok((format!("Waiting for partitioned roll out to finish: {} out of {} new pods have been updated...", n("updatedReplicas"), want - partition), false));
            }
            Ok((
                format!(
                    "partitioned roll out complete: {} new pods have been updated...",
                    n("updatedReplicas")
                ),
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
    let deadline = timeout(k)?.map(|s| Instant::now() + Duration::from_secs_f64(s));
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

/// What `kubectl wait --for=...` waits for (wait.go's `conditionFuncFor`).
#[derive(Debug, PartialEq)]
pub enum WaitFor {
    Delete,
    /// `condition=NAME[=VALUE]`; VALUE defaults to "true", compared case-insensitively.
    Condition {
        name: String,
        status: String,
    },
    /// `jsonpath='{EXPR}'[=VALUE]` (kubectl >= 1.23): EXPR in its relaxed form; without a
    /// VALUE any non-empty result will do (kubectl >= 1.31).
    JsonPath {
        expr: String,
        value: Option<String>,
    },
}

const JSONPATH_FORMAT: &str = "jsonpath wait format must be --for=jsonpath='{.status.readyReplicas}'=3 or --for=jsonpath='{.status.readyReplicas}'";

/// Parses `--for` like kubectl, with its error texts (printed after `error: `).
pub fn parse_for(s: &str) -> Result<WaitFor, String> {
    if s.eq_ignore_ascii_case("delete") {
        return Ok(WaitFor::Delete);
    }
    if let Some(c) = s.strip_prefix("condition=") {
        let (name, status) = c.split_once('=').unwrap_or((c, "true"));
        return Ok(WaitFor::Condition {
            name: name.into(),
            status: status.into(),
        });
    }
    if let Some(j) = s.strip_prefix("jsonpath=") {
        let parts = split_jsonpath_input(j);
        if parts.len() > 2 {
            return Err(JSONPATH_FORMAT.into());
        }
        let expr = relaxed_jsonpath(&parts[0])?;
        let value = match parts.get(1) {
            None => None,
            Some(v) => {
                let v = v.trim_matches(|c| c == '\'' || c == '"');
                if v.is_empty() {
                    return Err("jsonpath wait has to have a value after equal sign, like --for=jsonpath='{.status.readyReplicas}'=3".into());
                }
                Some(v.to_string())
            }
        };
        if expr.is_empty() {
            return Err("jsonpath expression cannot be empty".into());
        }
        return Ok(WaitFor::JsonPath { expr, value });
    }
    Err(format!("unrecognized condition: \"{s}\""))
}

/// Splits on single `=`; `==` (a filter's comparison) stays in its part.
fn split_jsonpath_input(input: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '=' {
            cur.push(c);
        } else if chars.peek() == Some(&'=') {
            chars.next();
            cur.push_str("==");
        } else {
            out.push(std::mem::take(&mut cur));
        }
    }
    out.push(cur);
    out
}

/// kubectl's `RelaxedJSONPathExpression`: `{.a.b}`, `{a.b}`, `.a.b` and `a.b` all mean
/// `.a.b` (returned without braces; empty stays empty).
fn relaxed_jsonpath(e: &str) -> Result<String, String> {
    if e.is_empty() {
        return Ok(String::new());
    }
    let inner = match e.strip_prefix('{') {
        Some(rest) => rest.strip_suffix('}'),
        None => Some(e),
    };
    match inner {
        Some(i) if !i.is_empty() && !i.contains(['{', '}']) && i != "." => {
            Ok(format!(".{}", i.strip_prefix('.').unwrap_or(i)))
        }
        _ => Err("unexpected path string, expected a 'name1.name2' or '.name1.name2' or '{name1.name2}' or '{.name1.name2}'".into()),
    }
}

/// Whether `obj` meets a condition or JSONPath wait now; Err ends the wait (kubectl's
/// checkCondition errors).
pub fn met(obj: &Value, for_: &WaitFor) -> Result<bool, String> {
    match for_ {
        WaitFor::Delete => Ok(false),
        WaitFor::Condition { name, status } => {
            Ok(obj["status"]["conditions"].as_array().is_some_and(|a| {
                a.iter()
                    .find(|c| {
                        c["type"]
                            .as_str()
                            .is_some_and(|t| t.eq_ignore_ascii_case(name))
                            && c["status"].is_string()
                    })
                    .is_some_and(|c| c["status"].as_str().unwrap().eq_ignore_ascii_case(status))
            }))
        }
        WaitFor::JsonPath { expr, value } => {
            let found = jsonpath::eval(expr, obj, obj)?;
            let Some(first) = found.first() else {
                return Ok(false);
            };
            if found.len() > 1 {
                return Err("given jsonpath expression matches more than one value".into());
            }
            let Some(want) = value else {
                return Ok(true);
            };
            let got = match first {
                Value::Object(_) | Value::Array(_) => {
                    return Err(
                        "jsonpath leads to a nested object or list which is not supported".into(),
                    )
                }
                Value::String(s) => s.clone(),
                Value::Null => "<nil>".into(),
                other => other.to_string(),
            };
            Ok(got.trim() == want.trim())
        }
    }
}

pub fn wait(k: &Kubectl) -> Res {
    let for_ = parse_for(&k.args.value("for").unwrap_or_default())
        .map_err(|e| Fail(format!("error: {e}"), 1))?;
    // Zero: look once; negative: a week.
    let limit = match flag_seconds(k, 30.0)? {
        s if s < 0.0 => 168.0 * 3600.0,
        s => s,
    };
    let once = limit == 0.0;
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
    let deleting = for_ == WaitFor::Delete;
    for (r, name) in names {
        loop {
            let done = match k.get_object(&r, &ns, &name) {
                Ok(o) => met(&o, &for_).map_err(|e| Fail(format!("error: {e}"), 1))?,
                Err(ClientError::Server(b)) if b["code"] == 404 && deleting => true,
                Err(ClientError::Server(b)) if b["code"] == 404 => {
                    return fail(format!(
                        "Error from server (NotFound): {} \"{name}\" not found",
                        r.plural_ref()
                    ));
                }
                Err(ClientError::Server(b)) => {
                    return fail(crate::kube::api::server_error_text(&b))
                }
                Err(ClientError::Unreachable(m)) => return fail(m),
            };
            if done {
                let what = if deleting { "deleted" } else { "condition met" };
                println!("{}/{name} {what}", r.singular_ref());
                break;
            }
            if once && !deleting {
                return fail(format!(
                    "error: condition not met for {}/{name}",
                    r.plural_ref()
                ));
            }
            if start.elapsed().as_secs_f64() >= limit {
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
    let global = timeout(k)?;
    let retry = Duration::from_secs_f64((5.0 * k.time_scale).max(0.5));
    // Like drain.go's RunDrain: every node is tried; the failed ones are listed at the
    // end and their errors make the exit status.
    let mut fatal: Vec<String> = vec![];
    let mut remaining: Vec<String> = vec![];
    for name in &names {
        match drain_one(k, name, global, retry) {
            Ok(()) => println!("node/{name} drained"),
            Err(e) => {
                eprintln!("error: unable to drain node \"{name}\" due to error: {e}, continuing command...");
                fatal.push(e);
                remaining.push(name.clone());
            }
        }
    }
    if fatal.is_empty() {
        return Ok(0);
    }
    eprintln!("There are pending nodes to be drained:");
    for n in remaining {
        eprintln!(" {n}");
    }
    fail(format!("error: {}", aggregate(&fatal)))
}

/// apimachinery's `utilerrors.NewAggregate(...).Error()`: one message as it is, several
/// (deduplicated) as `[a, b]`.
fn aggregate(errors: &[String]) -> String {
    let mut seen: Vec<&str> = vec![];
    for e in errors {
        if !seen.contains(&e.as_str()) {
            seen.push(e);
        }
    }
    match seen.as_slice() {
        [one] => one.to_string(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// One pod of drain's `evictPods`, which runs a goroutine per pod: evicting (retried
/// while its PodDisruptionBudget refuses), then waiting for it to be gone.
struct Evicting {
    pod: Value,
    /// When this pod's next eviction attempt or deletion check is due.
    due: Instant,
    /// Evicted: `waitForDelete` polls until the pod (this uid) no longer exists.
    evicted: bool,
}

/// Evicts the node's pods like drain's `evictPods`: each pod is retried every 5 s while
/// its PodDisruptionBudget refuses (printing `evicting pod` again on every attempt), then
/// `waitForDelete` polls every second until the pod is gone (its grace period; for ever
/// on a node whose kubelet is down) and only then prints `pod/<name> evicted`. The
/// `--timeout` counts per node, from the first eviction, over both waits.
fn drain_one(k: &Kubectl, node: &str, global: Option<f64>, retry: Duration) -> Result<(), String> {
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
        return Err(aggregate(&l.errors));
    }
    if !l.warnings.is_empty() {
        eprintln!("Warning: {}", l.warnings.join("; "));
    }
    let start = Instant::now();
    let expired = || global.filter(|g| start.elapsed().as_secs_f64() >= *g);
    let poll = Duration::from_secs_f64((1.0 * k.time_scale).max(0.2));
    let pods_resource = resource("pods").map_err(|f| f.0)?;
    let mut pending: Vec<Evicting> = l
        .pods
        .into_iter()
        .map(|pod| Evicting {
            pod,
            due: start,
            evicted: false,
        })
        .collect();
    let mut errors: Vec<String> = vec![];
    while !pending.is_empty() {
        let mut next = vec![];
        for mut e in pending {
            if e.due > Instant::now() {
                next.push(e);
                continue;
            }
            let (ns, name) = (
                objects::namespace(&e.pod).to_string(),
                objects::name(&e.pod).to_string(),
            );
            if !e.evicted {
                println!("evicting pod {ns}/{name}");
                if let Some(g) = expired() {
                    errors.push(format!(
                        "error when evicting pods/\"{name}\" -n \"{ns}\": global timeout reached: {}",
                        objects::go_duration(g)
                    ));
                    continue;
                }
                let r = k.send(Op::Call {
                    name: "evict".into(),
                    args: json!({"namespace": ns, "name": name}),
                });
                match r {
                    Ok(_) => {
                        k.changed.set(true);
                        e.evicted = true;
                    }
                    Err(ClientError::Server(b)) if b["code"] == 404 => continue,
                    Err(ClientError::Server(b)) if b["code"] == 429 => {
                        eprintln!(
                            "error when evicting pods/\"{name}\" -n \"{ns}\" (will retry after 5s): {}",
                            b["message"].as_str().unwrap_or("")
                        );
                        e.due = Instant::now() + retry;
                        next.push(e);
                        continue;
                    }
                    Err(ClientError::Server(b)) => {
                        errors.push(format!(
                            "error when evicting pods/\"{name}\" -n \"{ns}\": {}",
                            b["message"].as_str().unwrap_or("")
                        ));
                        continue;
                    }
                    Err(ClientError::Unreachable(m)) => {
                        errors.push(m);
                        continue;
                    }
                }
            }
            // waitForDelete (PollImmediate): gone, or replaced by a pod of the same name.
            let waiting = |why: String| {
                format!("error when waiting for pod \"{name}\" in namespace \"{ns}\" to terminate: {why}")
            };
            match k.get_object(&pods_resource, &ns, &name) {
                Err(ClientError::Server(b)) if b["code"] == 404 => println!("pod/{name} evicted"),
                Ok(p) if p["metadata"]["uid"] != e.pod["metadata"]["uid"] => {
                    println!("pod/{name} evicted")
                }
                Ok(_) => match expired() {
                    Some(g) => errors.push(waiting(format!(
                        "global timeout reached: {}",
                        objects::go_duration(g)
                    ))),
                    None => {
                        e.due = Instant::now() + poll;
                        next.push(e);
                    }
                },
                Err(err) => {
                    println!("pod/{name} eviction failed");
                    errors.push(waiting(match err {
                        ClientError::Server(b) => b["message"].as_str().unwrap_or("").to_string(),
                        ClientError::Unreachable(m) => m,
                    }));
                }
            }
        }
        pending = next;
        if let Some(due) = pending.iter().map(|e| e.due).min() {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    let err = aggregate(&errors);
    let left = list(k).map(|l| l.pods).unwrap_or_default();
    if !left.is_empty() {
        eprintln!("There are pending pods in node \"{node}\" when an error occurred: {err}");
        for lp in left {
            eprintln!("pod/{}", objects::name(&lp));
        }
    }
    Err(err)
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
    fn wait_for_parses_like_kubectl() {
        assert_eq!(parse_for("delete"), Ok(WaitFor::Delete));
        assert_eq!(
            parse_for("condition=Ready"),
            Ok(WaitFor::Condition {
                name: "Ready".into(),
                status: "true".into()
            })
        );
        // The shell took the quotes: --for=jsonpath='{.status.nodeInfo.kubeletVersion}'=v1.34.2
        let j = |e: &str, v: Option<&str>| {
            Ok(WaitFor::JsonPath {
                expr: e.into(),
                value: v.map(String::from),
            })
        };
        assert_eq!(
            parse_for("jsonpath={.status.nodeInfo.kubeletVersion}=v1.34.2"),
            j(".status.nodeInfo.kubeletVersion", Some("v1.34.2"))
        );
        assert_eq!(
            parse_for("jsonpath=.status.phase='Running'"),
            j(".status.phase", Some("Running"))
        );
        assert_eq!(parse_for("jsonpath=status.phase"), j(".status.phase", None));
        // `==` inside a filter is not the value separator.
        assert_eq!(
            parse_for("jsonpath={.status.conditions[?(@.type==\"Ready\")].status}=True"),
            j(
                ".status.conditions[?(@.type==\"Ready\")].status",
                Some("True")
            )
        );
        assert_eq!(
            parse_for("jsonpath={.a}=1=2"),
            Err(JSONPATH_FORMAT.to_string())
        );
        assert_eq!(
            parse_for("jsonpath={.a}="),
            Err("jsonpath wait has to have a value after equal sign, like --for=jsonpath='{.status.readyReplicas}'=3".into())
        );
        assert_eq!(
            parse_for("jsonpath="),
            Err("jsonpath expression cannot be empty".into())
        );
        assert!(parse_for("jsonpath={.a}}")
            .unwrap_err()
            .starts_with("unexpected path string"));
        assert_eq!(
            parse_for("ready"),
            Err("unrecognized condition: \"ready\"".into())
        );
        assert_eq!(parse_for(""), Err("unrecognized condition: \"\"".into()));
    }

    #[test]
    fn wait_conditions_and_jsonpath_values() {
        let node = json!({"status": {"nodeInfo": {"kubeletVersion": "v1.33.5"},
            "conditions": [{"type": "Ready", "status": "True"}], "capacity": {"pods": 110}},
            "spec": {"unschedulable": true}});
        let for_ = |s: &str| parse_for(s).unwrap();
        assert_eq!(met(&node, &for_("condition=Ready")), Ok(true));
        assert_eq!(met(&node, &for_("condition=ready=TRUE")), Ok(true));
        assert_eq!(met(&node, &for_("condition=Ready=False")), Ok(false));
        assert_eq!(met(&node, &for_("condition=MemoryPressure")), Ok(false));
        let v = "jsonpath={.status.nodeInfo.kubeletVersion}=";
        assert_eq!(met(&node, &for_(&format!("{v}v1.33.5"))), Ok(true));
        // The version reported, not the package's: a node that was not restarted yet.
        assert_eq!(met(&node, &for_(&format!("{v}v1.34.2"))), Ok(false));
        assert_eq!(
            met(&node, &for_("jsonpath={.spec.unschedulable}=true")),
            Ok(true)
        );
        assert_eq!(
            met(&node, &for_("jsonpath={.status.capacity.pods}=110")),
            Ok(true)
        );
        // Missing: not met (yet), no error; present without a value: met.
        assert_eq!(met(&node, &for_("jsonpath={.status.nope}=x")), Ok(false));
        assert_eq!(
            met(&node, &for_("jsonpath={.status.nodeInfo.kubeletVersion}")),
            Ok(true)
        );
        assert_eq!(
            met(&node, &for_("jsonpath={.status.nodeInfo}=x")),
            Err("jsonpath leads to a nested object or list which is not supported".into())
        );
        assert_eq!(
            met(&node, &for_("jsonpath={.status.conditions[*].type}=Ready")),
            Ok(true)
        );
        let two = json!({"items": [1, 2]});
        assert_eq!(
            met(&two, &for_("jsonpath={.items[*]}=1")),
            Err("given jsonpath expression matches more than one value".into())
        );
    }

    #[test]
    fn timeouts_are_go_durations() {
        assert_eq!(go_duration_arg("300s"), Ok(300.0));
        assert_eq!(go_duration_arg("5m"), Ok(300.0));
        assert_eq!(go_duration_arg("0"), Ok(0.0));
        assert_eq!(go_duration_arg("-1s"), Ok(-1.0));
        assert_eq!(
            go_duration_arg("300"),
            Err("time: missing unit in duration \"300\"".into())
        );
        assert_eq!(
            go_duration_arg("5x"),
            Err("time: unknown unit \"x\" in duration \"5x\"".into())
        );
        assert_eq!(
            go_duration_arg("abc"),
            Err("time: invalid duration \"abc\"".into())
        );
        assert_eq!(
            go_duration_arg(""),
            Err("time: invalid duration \"\"".into())
        );
    }

    #[test]
    fn drain_errors_aggregate_like_apimachinery() {
        let e = |s: &[&str]| aggregate(&s.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(e(&["a"]), "a");
        assert_eq!(e(&["a", "a"]), "a");
        assert_eq!(e(&["a", "b"]), "[a, b]");
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
