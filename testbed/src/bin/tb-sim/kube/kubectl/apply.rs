//! `kubectl apply|create|delete`: manifests from files, directories, stdin or URLs
//! (multi-document YAML or JSON, `kind: List`), `create deployment`, `delete TYPE NAME`.

use std::io::Read;
use std::path::Path;

use serde::Deserialize;
use serde_json::{json, Value};

use super::{fail, targets, Fail, Kubectl, Res};
use crate::kube::api::{ClientError, Op};
use crate::kube::objects;

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// One manifest source and its objects.
struct Source {
    name: String,
    objects: Vec<Value>,
}

/// Parses multi-document YAML (or JSON) into objects, flattening `kind: List`.
pub fn parse_manifest(text: &str) -> Result<Vec<Value>, String> {
    let mut out = vec![];
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v = Value::deserialize(doc).map_err(|e| e.to_string())?;
        match v {
            Value::Null => {}
            Value::Object(_) if v["kind"] == "List" => {
                out.extend(v["items"].as_array().cloned().unwrap_or_default())
            }
            Value::Object(_) => out.push(v),
            _ => return Err("error converting YAML to JSON: not an object".into()),
        }
    }
    Ok(out)
}

fn read_sources(k: &Kubectl) -> Result<Vec<Source>, Fail> {
    let files = k.args.values("filename");
    if files.is_empty() {
        return fail("error: must specify one of -f and -k");
    }
    let mut out = vec![];
    for f in files {
        let mut push = |name: String, text: String| -> Result<(), Fail> {
            let objects = parse_manifest(&text)
                .map_err(|e| Fail(format!("error: error parsing {name}: {e}"), 1))?;
            out.push(Source { name, objects });
            Ok(())
        };
        if f == "-" {
            let mut t = String::new();
            std::io::stdin().read_to_string(&mut t).ok();
            push("STDIN".into(), t)?;
        } else if f.starts_with("http://") || f.starts_with("https://") {
            // kubectl's own HTTP client, played by the host's curl: the same names,
            // resolver and trusted CAs.
            let got = std::process::Command::new("/usr/bin/curl")
                .args(["-fsS", "--proto", "=https,http", "--", &f])
                .stdin(std::process::Stdio::null())
                .output();
            match got {
                Ok(o) if o.status.success() => {
                    push(f.clone(), String::from_utf8_lossy(&o.stdout).into_owned())?
                }
                Ok(o) if o.status.code() == Some(22) => {
                    return fail(format!("error: unable to read URL \"{f}\", server reported 404 Not Found, status code=404"))
                }
                _ => {
                    let host = f.split("://").nth(1).unwrap_or("").split('/').next().unwrap_or("");
                    return fail(format!("error: Get \"{f}\": dial tcp: lookup {host} on 127.0.0.53:53: server misbehaving"));
                }
            }
        } else {
            let p = Path::new(&f);
            if p.is_dir() {
                let mut entries: Vec<_> = std::fs::read_dir(p)
                    .map_err(|e| Fail(format!("error: {e}"), 1))?
                    .flatten()
                    .map(|e| e.path())
                    .filter(|e| {
                        matches!(
                            e.extension().and_then(|x| x.to_str()),
                            Some("yaml" | "yml" | "json")
                        )
                    })
                    .collect();
                entries.sort();
                for e in entries {
                    let t = std::fs::read_to_string(&e).unwrap_or_default();
                    push(e.display().to_string(), t)?;
                }
            } else {
                match std::fs::read_to_string(p) {
                    Ok(t) => push(f.clone(), t)?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return fail(format!("error: the path \"{f}\" does not exist"))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                        return fail(format!("error: open {f}: permission denied"))
                    }
                    Err(e) => return fail(format!("error: {e}")),
                }
            }
        }
    }
    Ok(out)
}

fn with_namespace(k: &Kubectl, mut o: Value) -> Result<Value, Fail> {
    let r = objects::resource_of(objects::kind(&o), o["apiVersion"].as_str().unwrap_or(""));
    if r.namespaced {
        let flag = k.args.value("namespace");
        let own = objects::namespace(&o).to_string();
        match (&flag, own.is_empty()) {
            (Some(f), false) if *f != own => {
                return fail(format!("error: the namespace from the provided object \"{own}\" does not match the namespace \"{f}\". You must pass '--namespace={own}' to perform this operation."));
            }
            (_, true) => o["metadata"]["namespace"] = json!(k.namespace()),
            _ => {}
        }
    }
    Ok(o)
}

fn server_fail(e: ClientError, verb: &str, source: &str) -> Fail {
    match e {
        ClientError::Server(b) if b["code"] != 401 => {
            let reason = b["reason"].as_str().unwrap_or("");
            Fail(
                format!(
                    "Error from server ({reason}): error when {verb} \"{source}\": {}",
                    b["message"].as_str().unwrap_or("")
                ),
                1,
            )
        }
        other => other.into(),
    }
}

pub fn apply(k: &Kubectl) -> Res {
    let server_side = k.args.flag("server-side");
    let sources = read_sources(k)?;
    let mut code = 0;
    for src in sources {
        if src.objects.is_empty() {
            return fail("error: no objects passed to apply");
        }
        for o in src.objects {
            let mut o = with_namespace(k, o)?;
            let r = objects::resource_of(objects::kind(&o), o["apiVersion"].as_str().unwrap_or(""));
            if !server_side {
                let mut last = o.clone();
                if let Some(md) = last["metadata"].as_object_mut() {
                    if let Some(a) = md.get_mut("annotations").and_then(|a| a.as_object_mut()) {
                        a.remove(LAST_APPLIED);
                    }
                }
                o["metadata"]["annotations"][LAST_APPLIED] = json!(format!(
                    "{}\n",
                    serde_json::to_string(&last).unwrap_or_default()
                ));
            }
            match k.send(Op::Apply { object: o.clone() }) {
                Ok(v) => {
                    let result = v["result"].as_str().unwrap_or("configured");
                    if result != "unchanged" {
                        k.changed.set(true);
                    }
                    let word = if server_side {
                        "serverside-applied"
                    } else {
                        result
                    };
                    println!("{}/{} {word}", r.singular_ref(), objects::name(&o));
                }
                Err(e @ ClientError::Unreachable(_)) => return Err(e.into()),
                Err(e) => {
                    eprintln!("{}", server_fail(e, "creating", &src.name).0);
                    code = 1;
                }
            }
        }
    }
    Ok(code)
}

pub fn create(k: &Kubectl) -> Res {
    if k.args.pos.get(1).map(String::as_str) == Some("deployment")
        || k.args.pos.get(1).map(String::as_str) == Some("deploy")
    {
        return create_deployment(k);
    }
    if matches!(
        k.args.pos.get(1).map(String::as_str),
        Some("poddisruptionbudget" | "pdb")
    ) {
        return create_pdb(k);
    }
    let sources = read_sources(k)?;
    let mut code = 0;
    for src in sources {
        for o in src.objects {
            let o = with_namespace(k, o)?;
            let r = objects::resource_of(objects::kind(&o), o["apiVersion"].as_str().unwrap_or(""));
            let exists = k.get_object(&r, objects::namespace(&o), objects::name(&o));
            match exists {
                Ok(_) => {
                    eprintln!("Error from server (AlreadyExists): error when creating \"{}\": {} \"{}\" already exists", src.name, r.plural_ref(), objects::name(&o));
                    code = 1;
                    continue;
                }
                Err(e @ ClientError::Unreachable(_)) => return Err(e.into()),
                Err(_) => {}
            }
            match k.send(Op::Apply { object: o.clone() }) {
                Ok(_) => {
                    k.changed.set(true);
                    println!("{}/{} created", r.singular_ref(), objects::name(&o));
                }
                Err(e @ ClientError::Unreachable(_)) => return Err(e.into()),
                Err(e) => {
                    eprintln!("{}", server_fail(e, "creating", &src.name).0);
                    code = 1;
                }
            }
        }
    }
    Ok(code)
}

/// The container name `kubectl create deployment` derives from an image.
fn container_name(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    let base = last.split(['@', ':']).next().unwrap_or(last);
    base.to_lowercase()
}

fn create_deployment(k: &Kubectl) -> Res {
    let Some(name) = k.args.pos.get(2).cloned() else {
        return fail("error: exactly one NAME is required, got 0\nSee 'kubectl create deployment -h' for help and examples");
    };
    let images = k.args.values("image");
    if images.is_empty() {
        return fail("error: required flag(s) \"image\" not set");
    }
    let replicas: i64 = k
        .args
        .value("replicas")
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    let ns = k.namespace();
    let mut containers: Vec<Value> = images
        .iter()
        .map(|i| json!({"name": container_name(i), "image": i, "resources": {}}))
        .collect();
    if let Some(p) = k.args.value("port").and_then(|p| p.parse::<i64>().ok()) {
        containers[0]["ports"] = json!([{"containerPort": p}]);
    }
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "strategy": {},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": containers}}}});
    let r = objects::resource_by_name("deployments").unwrap();
    match k.get_object(&r, &ns, &name) {
        Ok(_) => {
            return fail(format!(
                "error: failed to create deployment: deployments.apps \"{name}\" already exists"
            ))
        }
        Err(e @ ClientError::Unreachable(_)) => return Err(e.into()),
        Err(_) => {}
    }
    k.send(Op::Apply { object: d })?;
    k.changed.set(true);
    println!("deployment.apps/{name} created");
    Ok(0)
}

/// The PodDisruptionBudget `kubectl create poddisruptionbudget` builds, after its
/// Validate (create_pdb.go): the errors are kubectl's.
pub fn pdb_object(
    name: &str,
    ns: &str,
    selector: &str,
    min_available: &str,
    max_unavailable: &str,
) -> Result<Value, String> {
    if name.is_empty() {
        return Err("name must be specified".into());
    }
    if selector.is_empty() {
        return Err("a selector must be specified".into());
    }
    if min_available.is_empty() && max_unavailable.is_empty() {
        return Err("one of min-available or max-unavailable must be specified".into());
    }
    if !min_available.is_empty() && !max_unavailable.is_empty() {
        return Err("min-available and max-unavailable cannot be both specified".into());
    }
    // `^[0-9]+%?$`
    let valid = |v: &str| {
        let digits = v.strip_suffix('%').unwrap_or(v);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    };
    if !min_available.is_empty() && !valid(min_available) {
        return Err("invalid format specified for min-available".into());
    }
    if !max_unavailable.is_empty() && !valid(max_unavailable) {
        return Err("invalid format specified for max-unavailable".into());
    }
    // metav1.ParseToLabelSelector: equality in matchLabels, the rest as expressions.
    let reqs = objects::parse_selector(selector)
        .map_err(|e| format!("couldn't parse the selector string \"{selector}\": {e}"))?;
    let mut labels = serde_json::Map::new();
    let mut exprs = vec![];
    for r in reqs {
        use objects::Requirement as R;
        match r {
            R::Eq(k, v) => {
                labels.insert(k, json!(v));
            }
            R::NotEq(k, v) => exprs.push(json!({"key": k, "operator": "NotIn", "values": [v]})),
            R::In(k, vs) => exprs.push(json!({"key": k, "operator": "In", "values": vs})),
            R::NotIn(k, vs) => exprs.push(json!({"key": k, "operator": "NotIn", "values": vs})),
            R::Exists(k) => exprs.push(json!({"key": k, "operator": "Exists"})),
            R::NotExists(k) => exprs.push(json!({"key": k, "operator": "DoesNotExist"})),
        }
    }
    let mut sel = json!({});
    if !labels.is_empty() {
        sel["matchLabels"] = Value::Object(labels);
    }
    if !exprs.is_empty() {
        sel["matchExpressions"] = json!(exprs);
    }
    // intstr.Parse: a number stays a number, "50%" a string.
    let int_or_string = |v: &str| v.parse::<i64>().map(|n| json!(n)).unwrap_or(json!(v));
    let mut spec = json!({ "selector": sel });
    if !min_available.is_empty() {
        spec["minAvailable"] = int_or_string(min_available);
    } else {
        spec["maxUnavailable"] = int_or_string(max_unavailable);
    }
    Ok(
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": ns}, "spec": spec}),
    )
}

/// `kubectl create poddisruptionbudget|pdb NAME --selector=S --min-available=N |
/// --max-unavailable=N`.
fn create_pdb(k: &Kubectl) -> Res {
    let names = &k.args.pos[2.min(k.args.pos.len())..];
    if names.len() != 1 {
        return fail(format!("error: exactly one NAME is required, got {}\nSee 'kubectl create poddisruptionbudget -h' for help and examples", names.len()));
    }
    let name = &names[0];
    let ns = k.namespace();
    let arg = |f: &str| k.args.value(f).unwrap_or_default();
    let pdb = match pdb_object(
        name,
        &ns,
        &arg("selector"),
        &arg("min-available"),
        &arg("max-unavailable"),
    ) {
        Ok(p) => p,
        Err(e) => return fail(format!("error: {e}")),
    };
    let r = objects::resource_by_name("poddisruptionbudgets").unwrap();
    match k.get_object(&r, &ns, name) {
        Ok(_) => {
            return fail(format!(
                "error: failed to create poddisruptionbudgets: poddisruptionbudgets.policy \"{name}\" already exists"
            ))
        }
        Err(e @ ClientError::Unreachable(_)) => return Err(e.into()),
        Err(_) => {}
    }
    match k.send(Op::Apply { object: pdb }) {
        Ok(_) => {}
        Err(e @ ClientError::Unreachable(_)) => return Err(e.into()),
        Err(ClientError::Server(b)) => {
            return fail(format!(
                "error: failed to create poddisruptionbudgets: {}",
                b["message"].as_str().unwrap_or("")
            ))
        }
    }
    k.changed.set(true);
    println!("poddisruptionbudget.policy/{name} created");
    Ok(0)
}

/// kubectl's delete line: namespaced objects name their namespace since 1.34.
fn deleted_line(singular: &str, name: &str, ns: Option<&str>) -> String {
    let newer = objects::minor_of(&super::client_version()).is_some_and(|m| m >= 34);
    match ns {
        Some(ns) if newer => format!("{singular} \"{name}\" deleted from {ns} namespace"),
        _ => format!("{singular} \"{name}\" deleted"),
    }
}

pub fn delete(k: &Kubectl) -> Res {
    let ignore = k.args.flag("ignore-not-found");
    let mut code = 0;
    if !k.args.values("filename").is_empty() {
        for src in read_sources(k)? {
            for o in src.objects {
                let o = with_namespace(k, o)?;
                let r =
                    objects::resource_of(objects::kind(&o), o["apiVersion"].as_str().unwrap_or(""));
                let ns = r.namespaced.then(|| objects::namespace(&o).to_string());
                match k.send(Op::Delete {
                    kind: r.kind.clone(),
                    namespace: ns.clone(),
                    name: objects::name(&o).into(),
                }) {
                    Ok(_) => {
                        k.changed.set(true);
                        println!(
                            "{}",
                            deleted_line(&r.singular_ref(), objects::name(&o), ns.as_deref())
                        );
                    }
                    Err(ClientError::Server(b)) if b["code"] == 404 && ignore => {}
                    Err(e @ ClientError::Unreachable(_)) => return Err(e.into()),
                    Err(e) => {
                        eprintln!("{}", server_fail(e, "deleting", &src.name).0);
                        code = 1;
                    }
                }
            }
        }
        return Ok(code);
    }
    let t = targets(&k.args.pos[1..])?;
    if t.is_empty() {
        return fail("error: You must provide one or more resources by argument or filename.\nExample resource specifications include:\n   '-f rsrc.yaml'\n   '--filename=rsrc.json'\n   '<resource> <name>'\n   '<resource>'");
    }
    let ns = k.namespace();
    for (r, name) in t {
        let names: Vec<String> = match name {
            Some(n) => vec![n],
            None if k.args.flag("all") || k.args.value("selector").is_some() => {
                let mut items = k.list(&r, Some(&ns))?;
                if let Some(sel) = k.args.value("selector") {
                    let sel = objects::parse_selector(&sel)
                        .map_err(|e| Fail(format!("error: {e}"), 1))?;
                    items.retain(|o| objects::selector_matches(&sel, &objects::labels(o)));
                }
                items.iter().map(|o| objects::name(o).to_string()).collect()
            }
            None => return fail("error: resource(s) were provided, but no name was specified"),
        };
        for n in names {
            let nsopt = r.namespaced.then(|| ns.clone());
            match k.send(Op::Delete {
                kind: r.kind.clone(),
                namespace: nsopt.clone(),
                name: n.clone(),
            }) {
                Ok(_) => {
                    k.changed.set(true);
                    println!("{}", deleted_line(&r.singular_ref(), &n, nsopt.as_deref()));
                }
                Err(ClientError::Server(b)) if b["code"] == 404 && ignore => {}
                Err(e @ ClientError::Unreachable(_)) => return Err(e.into()),
                Err(e) => {
                    eprintln!("{}", Fail::from(e).0);
                    code = 1;
                }
            }
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_pdb_object_and_errors() {
        let p = pdb_object("wp", "default", "app=wordpress", "1", "").unwrap();
        assert_eq!(p["apiVersion"], "policy/v1");
        assert_eq!(p["spec"]["minAvailable"], 1);
        assert_eq!(p["spec"]["selector"]["matchLabels"]["app"], "wordpress");
        let p = pdb_object("wp", "web", "app=wp,tier in (a,b)", "", "50%").unwrap();
        assert_eq!(p["spec"]["maxUnavailable"], "50%");
        assert_eq!(p["metadata"]["namespace"], "web");
        assert_eq!(
            p["spec"]["selector"]["matchExpressions"][0]["operator"],
            "In"
        );
        let e = |sel: &str, min: &str, max: &str| pdb_object("x", "d", sel, min, max).unwrap_err();
        assert_eq!(e("", "1", ""), "a selector must be specified");
        assert_eq!(
            e("a=b", "", ""),
            "one of min-available or max-unavailable must be specified"
        );
        assert_eq!(
            e("a=b", "1", "1"),
            "min-available and max-unavailable cannot be both specified"
        );
        assert_eq!(
            e("a=b", "1Gb", ""),
            "invalid format specified for min-available"
        );
        assert_eq!(
            e("a=b", "", "%"),
            "invalid format specified for max-unavailable"
        );
    }

    #[test]
    fn manifests() {
        let t = "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: a\n---\n# comment only\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: b\n";
        let objs = parse_manifest(t).unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[1]["kind"], "ConfigMap");
        assert_eq!(
            container_name("docker.io/library/wordpress:6.4"),
            "wordpress"
        );
    }
}
