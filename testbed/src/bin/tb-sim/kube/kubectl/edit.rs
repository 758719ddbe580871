//! `kubectl label|annotate|taint|cordon|uncordon|scale`, with kubectl's semantics:
//! `--overwrite`, removals with `k-`, `--all`, `-l`, and its exact messages. Changes go
//! to the server as merge patches, applied atomically there.

use serde_json::{json, Map, Value};

use super::{fail, resource, Fail, Kubectl, Res};
use crate::kube::api::Op;
use crate::kube::objects::{self, Resource, Taint};

/// Resolves `TYPE NAME... SPECS...` / `TYPE/NAME SPECS...` / `TYPE --all SPECS` /
/// `TYPE -l sel SPECS` into the objects and the remaining specs.
fn resolve(
    k: &Kubectl,
    is_spec: impl Fn(&str) -> bool,
) -> Result<(Resource, Vec<Value>, Vec<String>), Fail> {
    let pos = &k.args.pos[1..];
    let cmd = &k.args.pos[0];
    let Some(first) = pos.first() else {
        return fail(format!("error: one or more resources must be specified as <resource> <name> or <resource>/<name>\nSee 'kubectl {cmd} -h' for help and examples"));
    };
    let (r, mut names, rest) = if let Some((t, n)) = first.split_once('/') {
        (resource(t)?, vec![n.to_string()], &pos[1..])
    } else {
        (resource(first)?, vec![], &pos[1..])
    };
    let mut specs = vec![];
    for p in rest {
        if is_spec(p) {
            specs.push(p.clone());
        } else if specs.is_empty() {
            names.push(p.clone());
        } else {
            return fail(format!(
                "error: all resources must be specified before {} changes: {p}",
                if cmd == "taint" { "taint" } else { "label" }
            ));
        }
    }
    let ns = k.namespace();
    let objs = if k.args.flag("all") || k.args.value("selector").is_some() {
        let mut items = k.list(&r, Some(&ns))?;
        if let Some(sel) = k.args.value("selector") {
            let sel = objects::parse_selector(&sel).map_err(|e| Fail(format!("error: {e}"), 1))?;
            items.retain(|o| objects::selector_matches(&sel, &objects::labels(o)));
        }
        items
    } else {
        if names.is_empty() {
            return fail(format!("error: resource(s) were provided, but no name was specified\nSee 'kubectl {cmd} -h' for help and examples"));
        }
        let mut v = vec![];
        for n in &names {
            v.push(k.get_object(&r, &ns, n)?);
        }
        v
    };
    Ok((r, objs, specs))
}

/// The outcome of applying label specs to a label map.
#[derive(Debug, PartialEq)]
pub struct LabelEdit {
    pub patch: Map<String, Value>,
    pub not_found: Vec<String>,
    pub msg: &'static str,
}

/// kubectl label/annotate's logic over one object's map.
pub fn edit_map(
    current: &Map<String, Value>,
    specs: &[String],
    overwrite: bool,
    annotate: bool,
) -> Result<LabelEdit, String> {
    let mut adds = vec![];
    let mut removes = vec![];
    for s in specs {
        if let Some(k) = s.strip_suffix('-') {
            removes.push(k.to_string());
        } else if let Some((k, v)) = s.split_once('=') {
            if !annotate {
                if !objects::valid_label_key(k) {
                    return Err(format!("error: invalid label spec: {s}"));
                }
                if !objects::valid_label_value(v) {
                    return Err(format!("error: invalid label value: \"{s}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"));
                }
            }
            adds.push((k.to_string(), v.to_string()));
        } else {
            return Err(format!(
                "error: invalid {} spec: {s}",
                if annotate { "annotation" } else { "label" }
            ));
        }
    }
    if !overwrite {
        let mut errs = vec![];
        for (k, v) in &adds {
            if let Some(cur) = current.get(k).and_then(|c| c.as_str()) {
                if cur != v {
                    errs.push(format!("'{k}' already has a value ({cur})"));
                }
            }
        }
        if !errs.is_empty() {
            return Err(if annotate {
                format!("error: --overwrite is false but found the following declared annotation(s): {}", errs.join("; "))
            } else if errs.len() == 1 {
                format!("error: {}, and --overwrite is false", errs[0])
            } else {
                format!(
                    "error: [{}]",
                    errs.iter()
                        .map(|e| format!("{e}, and --overwrite is false"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            });
        }
    }
    let mut next = current.clone();
    let mut patch = Map::new();
    for (k, v) in &adds {
        next.insert(k.clone(), json!(v));
        if current.get(k).and_then(|c| c.as_str()) != Some(v) {
            patch.insert(k.clone(), json!(v));
        }
    }
    let mut not_found = vec![];
    for k in &removes {
        if next.remove(k).is_none() {
            not_found.push(k.clone());
        } else {
            patch.insert(k.clone(), Value::Null);
        }
    }
    let msg = if annotate {
        "annotated"
    } else if next == *current {
        "not labeled"
    } else if !overwrite && next.len() < current.len() {
        "unlabeled"
    } else {
        "labeled"
    };
    Ok(LabelEdit {
        patch,
        not_found,
        msg,
    })
}

pub fn label(k: &Kubectl, annotate: bool) -> Res {
    let (r, objs, specs) = resolve(k, |s| s.contains('=') || s.ends_with('-'))?;
    if specs.is_empty() {
        return fail(format!(
            "error: at least one {} update is required",
            if annotate { "annotation" } else { "label" }
        ));
    }
    let both = modified_and_removed(&specs);
    if annotate && !both.is_empty() {
        return fail(format!("error: can not both modify and remove the following annotation(s) in the same command: {}", both.join(", ")));
    }
    let field = if annotate { "annotations" } else { "labels" };
    for o in objs {
        let current = o["metadata"][field]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let edit = edit_map(&current, &specs, k.args.flag("overwrite"), annotate)
            .map_err(|e| Fail(e, 1))?;
        // label.go says so; annotate.go deletes from the map and says nothing.
        if !annotate {
            for nf in &edit.not_found {
                println!("label \"{nf}\" not found.");
            }
        }
        if !edit.patch.is_empty() {
            k.send(Op::Patch {
                kind: r.kind.clone(),
                namespace: r.namespaced.then(|| objects::namespace(&o).to_string()),
                name: objects::name(&o).to_string(),
                patch: json!({"metadata": {field: edit.patch}}),
            })?;
            k.changed.set(true);
        }
        println!("{}/{} {}", r.singular_ref(), objects::name(&o), edit.msg);
    }
    Ok(0)
}

/// The keys both set (`k=v`) and removed (`k-`) by the same specs: annotate.go's
/// validateAnnotations refuses them.
fn modified_and_removed(specs: &[String]) -> Vec<&str> {
    let set: Vec<&str> = specs
        .iter()
        .filter_map(|s| s.split_once('=').map(|(k, _)| k))
        .collect();
    specs
        .iter()
        .filter_map(|s| s.strip_suffix('-'))
        .filter(|k| set.contains(k))
        .collect()
}

/// Parses taint specs into (to add, to remove), with kubectl's errors.
pub fn parse_taints(specs: &[String]) -> Result<(Vec<Taint>, Vec<Taint>), String> {
    let mut add = vec![];
    let mut remove = vec![];
    for s in specs {
        let (body, is_remove) = match s.strip_suffix('-') {
            Some(b) => (b, true),
            None => (s.as_str(), false),
        };
        let (kv, effect) = match body.split_once(':') {
            Some((kv, e)) => (kv, e.to_string()),
            None if is_remove => (body, String::new()),
            None => return Err(format!("error: unknown taint spec: {s}")),
        };
        let (key, value) = match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.to_string(), String::new()),
        };
        if !effect.is_empty() && !objects::EFFECTS.contains(&effect.as_str()) {
            return Err(format!(
                "error: invalid taint effect: {effect}, unsupported taint effect"
            ));
        }
        if !objects::valid_label_key(&key) {
            return Err(format!("error: invalid taint spec: {s}, name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"));
        }
        let t = Taint { key, value, effect };
        if is_remove {
            remove.push(t);
        } else {
            add.push(t);
        }
    }
    Ok((add, remove))
}

/// kubectl's `reorganizeTaints`: the new list and the operation word.
pub fn reorganize(
    node: &str,
    old: &[Taint],
    add: &[Taint],
    remove: &[Taint],
    overwrite: bool,
) -> Result<(Vec<Taint>, &'static str), String> {
    let same = |a: &Taint, b: &Taint| a.key == b.key && a.effect == b.effect;
    if !overwrite {
        for t in add {
            if old.iter().any(|o| same(o, t)) {
                return Err(format!("error: node {node} already has {} taint(s) with same effect(s) and --overwrite is false", t.key));
            }
        }
    }
    let mut new: Vec<Taint> = add.to_vec();
    for o in old {
        if !new.iter().any(|t| same(t, o)) {
            new.push(o.clone());
        }
    }
    let added = old.len() != new.len();
    let mut errs = vec![];
    let mut deleted = false;
    for r in remove {
        let before = new.len();
        if r.effect.is_empty() {
            new.retain(|t| t.key != r.key);
        } else {
            new.retain(|t| !same(t, r));
        }
        deleted = new.len() != before;
        if !deleted {
            errs.push(format!("taint \"{}\" not found", r.to_spec_string()));
        }
    }
    if !errs.is_empty() {
        return Err(if errs.len() == 1 {
            format!("error: {}", errs[0])
        } else {
            format!("error: [{}]", errs.join(", "))
        });
    }
    let op = if (added && deleted) || overwrite {
        "modified"
    } else if added {
        "tainted"
    } else {
        "untainted"
    };
    Ok((new, op))
}

pub fn taint(k: &Kubectl) -> Res {
    let (r, objs, specs) = resolve(k, |s| {
        s.contains(':') || s.contains('=') || s.ends_with('-')
    })?;
    if r.kind != "Node" {
        return fail(format!(
            "error: invalid resource type {}, only nodes are supported",
            r.plural
        ));
    }
    if specs.is_empty() {
        return fail("error: at least one taint update is required");
    }
    let (add, remove) = parse_taints(&specs).map_err(|e| Fail(e, 1))?;
    for o in objs {
        let name = objects::name(&o).to_string();
        let (new, op) = reorganize(
            &name,
            &objects::taints(&o),
            &add,
            &remove,
            k.args.flag("overwrite"),
        )
        .map_err(|e| Fail(e, 1))?;
        let taints = if new.is_empty() {
            Value::Null
        } else {
            Value::Array(new.iter().map(Taint::to_json).collect())
        };
        k.send(Op::Patch {
            kind: "Node".into(),
            namespace: None,
            name: name.clone(),
            patch: json!({"spec": {"taints": taints}}),
        })?;
        k.changed.set(true);
        println!("node/{name} {op}");
    }
    Ok(0)
}

pub fn cordon(k: &Kubectl, on: bool) -> Res {
    let names: Vec<String> = k.args.pos[1..].to_vec();
    let r = resource("nodes")?;
    let nodes = if k.args.value("selector").is_some() || names.is_empty() {
        if k.args.value("selector").is_none() {
            return fail(format!(
                "error: USAGE: {} NODE [flags]\nSee 'kubectl {} -h' for help and examples",
                if on { "cordon" } else { "uncordon" },
                if on { "cordon" } else { "uncordon" }
            ));
        }
        let sel = objects::parse_selector(&k.args.value("selector").unwrap())
            .map_err(|e| Fail(format!("error: {e}"), 1))?;
        let mut all = k.list(&r, None)?;
        all.retain(|o| objects::selector_matches(&sel, &objects::labels(o)));
        all
    } else {
        let mut v = vec![];
        for n in &names {
            v.push(k.get_object(
                &r,
                "",
                n.trim_start_matches("node/").trim_start_matches("nodes/"),
            )?);
        }
        v
    };
    for node in nodes {
        set_unschedulable(k, &node, on)?;
    }
    Ok(0)
}

/// Cordons/uncordons one node and prints kubectl's line.
pub fn set_unschedulable(k: &Kubectl, node: &Value, on: bool) -> Result<(), Fail> {
    let name = objects::name(node);
    let is = node["spec"]["unschedulable"] == true;
    let word = if on { "cordoned" } else { "uncordoned" };
    if is == on {
        println!("node/{name} already {word}");
        return Ok(());
    }
    k.send(Op::Patch {
        kind: "Node".into(),
        namespace: None,
        name: name.to_string(),
        patch: json!({"spec": {"unschedulable": if on { json!(true) } else { Value::Null }}}),
    })?;
    k.changed.set(true);
    println!("node/{name} {word}");
    Ok(())
}

pub fn scale(k: &Kubectl) -> Res {
    let Some(replicas) = k.args.value("replicas") else {
        return fail("error: required flag(s) \"replicas\" not set");
    };
    let Ok(n) = replicas.parse::<i64>() else {
        return fail(format!("error: invalid argument \"{replicas}\" for \"--replicas\" flag: strconv.ParseInt: parsing \"{replicas}\": invalid syntax"));
    };
    if n < 0 {
        return fail("error: The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0");
    }
    let ns = k.namespace();
    let targets = super::targets(&k.args.pos[1..])?;
    if targets.is_empty() {
        return fail("error: You must provide one or more resources by argument or filename.");
    }
    for (r, name) in targets {
        let Some(name) = name else {
            return fail("error: resource(s) were provided, but no name was specified");
        };
        if !["Deployment", "ReplicaSet", "StatefulSet"].contains(&r.kind.as_str()) {
            return fail(format!("error: cannot scale {}", r.plural_ref()));
        }
        let cur = k.get_object(&r, &ns, &name)?;
        if let Some(c) = k.args.value("current-replicas") {
            if cur["spec"]["replicas"].as_i64().map(|x| x.to_string()) != Some(c.clone()) {
                return fail(format!(
                    "error: Expected replicas to be {c}, was {}",
                    cur["spec"]["replicas"]
                ));
            }
        }
        k.send(Op::Patch {
            kind: r.kind.clone(),
            namespace: Some(ns.clone()),
            name: name.clone(),
            patch: json!({"spec": {"replicas": n}}),
        })?;
        k.changed.set(true);
        println!("{}/{name} scaled", r.singular_ref());
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn specs(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn label_semantics() {
        let cur = m(json!({"type": "mysql"}));
        let e = edit_map(&cur, &specs(&["type=wordpress"]), false, false).unwrap_err();
        assert_eq!(
            e,
            "error: 'type' already has a value (mysql), and --overwrite is false"
        );
        let ok = edit_map(&cur, &specs(&["type=wordpress"]), true, false).unwrap();
        assert_eq!(ok.msg, "labeled");
        let same = edit_map(&cur, &specs(&["type=mysql"]), false, false).unwrap();
        assert_eq!(same.msg, "not labeled");
        assert!(same.patch.is_empty());
        let rm = edit_map(&cur, &specs(&["type-"]), false, false).unwrap();
        assert_eq!(rm.msg, "unlabeled");
        let absent = edit_map(&cur, &specs(&["gpu-"]), false, false).unwrap();
        assert_eq!(absent.not_found, vec!["gpu"]);
        assert_eq!(absent.msg, "not labeled");
    }

    #[test]
    fn annotate_semantics() {
        let cur = m(json!({"bootstrap.dev/upgrading": "v1.34.2"}));
        // Removing an absent annotation is a no-op patch, reported as "annotated".
        let absent = edit_map(&cur, &specs(&["other-"]), false, true).unwrap();
        assert!(absent.patch.is_empty());
        assert_eq!(absent.msg, "annotated");
        let rm = edit_map(&cur, &specs(&["bootstrap.dev/upgrading-"]), false, true).unwrap();
        assert_eq!(rm.patch["bootstrap.dev/upgrading"], Value::Null);
        // The same value again needs no --overwrite (kubectl >= 1.2x compares values).
        assert!(edit_map(
            &cur,
            &specs(&["bootstrap.dev/upgrading=v1.34.2"]),
            false,
            true
        )
        .is_ok());
        let e = edit_map(
            &cur,
            &specs(&["bootstrap.dev/upgrading=v1.35.0"]),
            false,
            true,
        )
        .unwrap_err();
        assert_eq!(e, "error: --overwrite is false but found the following declared annotation(s): 'bootstrap.dev/upgrading' already has a value (v1.34.2)");
        assert_eq!(
            modified_and_removed(&specs(&["a=1", "a-", "b-"])),
            vec!["a"]
        );
        assert!(modified_and_removed(&specs(&["a=1", "b-"])).is_empty());
    }

    #[test]
    fn taint_semantics() {
        let cp = Taint {
            key: "node-role.kubernetes.io/control-plane".into(),
            value: "".into(),
            effect: "NoSchedule".into(),
        };
        let (add, rm) = parse_taints(&specs(&[
            "node-role.kubernetes.io/control-plane:NoSchedule-",
        ]))
        .unwrap();
        assert!(add.is_empty());
        let (new, op) = reorganize("m1", std::slice::from_ref(&cp), &add, &rm, false).unwrap();
        assert!(new.is_empty());
        assert_eq!(op, "untainted");
        let e = reorganize("m1", &[], &add, &rm, false).unwrap_err();
        assert_eq!(
            e,
            "error: taint \"node-role.kubernetes.io/control-plane:NoSchedule\" not found"
        );
        let (_, rm2) = parse_taints(&specs(&["node-role.kubernetes.io/control-plane-"])).unwrap();
        assert_eq!(
            reorganize("m1", &[], &[], &rm2, false).unwrap_err(),
            "error: taint \"node-role.kubernetes.io/control-plane\" not found"
        );
        let (add, _) = parse_taints(&specs(&[
            "node-role.kubernetes.io/control-plane=:NoSchedule",
        ]))
        .unwrap();
        let e = reorganize("m1", std::slice::from_ref(&cp), &add, &[], false).unwrap_err();
        assert_eq!(e, "error: node m1 already has node-role.kubernetes.io/control-plane taint(s) with same effect(s) and --overwrite is false");
        let (_, op) = reorganize("m1", std::slice::from_ref(&cp), &add, &[], true).unwrap();
        assert_eq!(op, "modified");
        let (add, _) = parse_taints(&specs(&["dedicated=db:NoExecute"])).unwrap();
        let (new, op) = reorganize("m1", std::slice::from_ref(&cp), &add, &[], false).unwrap();
        assert_eq!((new.len(), op), (2, "tainted"));
        assert_eq!(
            parse_taints(&specs(&["a=b"])).unwrap_err(),
            "error: unknown taint spec: a=b"
        );
        assert_eq!(
            parse_taints(&specs(&["a=b:Bad"])).unwrap_err(),
            "error: invalid taint effect: Bad, unsupported taint effect"
        );
    }
}
