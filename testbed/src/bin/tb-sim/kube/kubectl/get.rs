//! `kubectl get`: the default tables (columns as the real printers), `-o wide|json|yaml|
//! name|jsonpath=...`, `-L`, `-l`, `--show-labels`, `--no-headers`, `-A`.

use serde_json::{json, Value};

use super::{fail, jsonpath, targets, Fail, Kubectl, Res};
use crate::common;
use crate::kube::objects::{self, Resource};
use crate::kube::scheduler;

pub fn run(k: &Kubectl) -> Res {
    let pos = &k.args.pos[1..];
    if pos.is_empty() {
        return fail("You must specify the type of resource to get. Use \"kubectl api-resources\" for a complete list of supported resources.\n\nerror: Required resource not specified.\nUse \"kubectl explain <resource>\" for a detailed description of that resource (e.g. kubectl explain pods).\nSee 'kubectl get -h' for help and examples");
    }
    let all_ns = k.args.flag("all-namespaces");
    let ns = k.namespace();
    let selector = match k.args.value("selector") {
        Some(s) => Some(objects::parse_selector(&s).map_err(|e| Fail(format!("error: {e}"), 1))?),
        None => None,
    };
    let output = k.args.value("output").unwrap_or_default();
    let mut code = 0;
    let mut errors = vec![];
    // Group results per resource so each gets its own table.
    let mut groups: Vec<(Resource, Vec<Value>, bool)> = vec![];
    for (r, name) in targets(pos)? {
        let scope = (!all_ns).then_some(ns.as_str());
        match name {
            Some(n) => match k.get_object(&r, &ns, &n) {
                Ok(o) => match groups.iter_mut().find(|g| g.0 == r) {
                    Some(g) => g.1.push(o),
                    None => groups.push((r, vec![o], true)),
                },
                Err(e) => {
                    let f: Fail = e.into();
                    if f.0.contains("was refused")
                        || f.0.starts_with("Unable to connect")
                        || f.0.starts_with("error:")
                    {
                        return Err(f);
                    }
                    errors.push(f.0);
                    code = 1;
                }
            },
            None => {
                let mut items = k.list(&r, scope)?;
                if let Some(sel) = &selector {
                    items.retain(|o| objects::selector_matches(sel, &objects::labels(o)));
                }
                groups.push((r, items, false));
            }
        }
    }
    let single = groups.len() == 1 && groups[0].2 && groups[0].1.len() == 1;
    let now = common::now();
    let all: Vec<Value> = groups.iter().flat_map(|g| g.1.clone()).collect();
    if all.is_empty() && errors.is_empty() && !output.starts_with("json") && output != "yaml" {
        let r = &groups[0].0;
        if r.namespaced && !all_ns {
            eprintln!("No resources found in {ns} namespace.");
        } else {
            eprintln!("No resources found");
        }
        return Ok(0);
    }
    let list = || json!({"apiVersion": "v1", "items": all, "kind": "List", "metadata": {"resourceVersion": ""}});
    match output.as_str() {
        "json" => {
            let v = if single { all[0].clone() } else { list() };
            println!("{}", to_json(&v));
        }
        "yaml" => {
            let v = if single { all[0].clone() } else { list() };
            print!("{}", serde_yaml::to_string(&v).unwrap_or_default());
        }
        "name" => {
            for (r, items, _) in &groups {
                for o in items {
                    println!("{}/{}", r.singular_ref(), objects::name(o));
                }
            }
        }
        o if o.starts_with("jsonpath=") || o.starts_with("jsonpath-as-json=") => {
            let t = o.split_once('=').unwrap().1;
            let t = if t.contains('{') {
                t.to_string()
            } else {
                format!("{{{t}}}")
            };
            let v = if single { all[0].clone() } else { list() };
            match jsonpath::render(&t, &v) {
                Ok(s) => print!("{s}"),
                Err(e) => return fail(format!("error: error parsing jsonpath {t}, {e}")),
            }
        }
        "" | "wide" => {
            let wide = output == "wide";
            let mut out = String::new();
            for (r, items, _) in &groups {
                if items.is_empty() {
                    continue;
                }
                let show_kind = groups.len() > 1;
                out.push_str(&table(
                    k,
                    r,
                    items,
                    wide,
                    all_ns && r.namespaced,
                    show_kind,
                    now,
                ));
                if groups.len() > 1 {
                    out.push('\n');
                }
            }
            print!("{}", out.trim_end_matches('\n').to_string() + "\n");
        }
        other => {
            return fail(format!("error: unable to match a printer suitable for the output format \"{other}\", allowed formats are: custom-columns,custom-columns-file,go-template,go-template-file,json,jsonpath,jsonpath-as-json,jsonpath-file,name,template,templatefile,wide,yaml"));
        }
    }
    for e in errors {
        eprintln!("{e}");
    }
    Ok(code)
}

/// kubectl's JSON: 4-space indent, sorted keys.
pub fn to_json(v: &Value) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    serde::Serialize::serialize(v, &mut ser).unwrap();
    String::from_utf8(buf).unwrap_or_default()
}

/// Go's tabwriter as kubectl configures it: minwidth 6, padding 3, last column unpadded.
pub fn tabulate(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count() + 3).max(6);
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(c);
                line.push_str(&" ".repeat(widths[i] - c.chars().count()));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        o => o.to_string(),
    }
}

fn n(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn node_status(node: &Value) -> String {
    let c = scheduler::ready_condition(node);
    let mut st = match c["status"].as_str() {
        Some("True") => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if node["spec"]["unschedulable"] == true {
        st.push_str(",SchedulingDisabled");
    }
    st
}

fn node_roles(node: &Value) -> String {
    let mut roles: Vec<String> = objects::labels(node)
        .iter()
        .filter_map(|(k, v)| {
            if let Some(r) = k.strip_prefix("node-role.kubernetes.io/") {
                Some(r.to_string())
            } else if k == "kubernetes.io/role" {
                v.as_str().map(String::from)
            } else {
                None
            }
        })
        .filter(|r| !r.is_empty())
        .collect();
    roles.sort();
    roles.dedup();
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.join(",")
    }
}

fn address(node: &Value, ty: &str) -> String {
    node["status"]["addresses"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["type"] == ty))
        .map(|x| s(&x["address"]))
        .unwrap_or_else(|| "<none>".into())
}

/// kubectl's pod STATUS column.
pub fn pod_status(p: &Value) -> String {
    let phase = s(&p["status"]["phase"]);
    if let Some(cs) = p["status"]["containerStatuses"].as_array() {
        for c in cs {
            if let Some(r) = c["state"]["waiting"]["reason"].as_str() {
                return r.to_string();
            }
        }
    }
    if p["metadata"]["deletionTimestamp"].is_string() {
        return "Terminating".into();
    }
    if phase.is_empty() {
        "Pending".into()
    } else {
        phase
    }
}

fn containers_ready(p: &Value) -> String {
    let total = p["spec"]["containers"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    let ready = p["status"]["containerStatuses"]
        .as_array()
        .map(|a| a.iter().filter(|c| c["ready"] == true).count())
        .unwrap_or(0);
    format!("{ready}/{total}")
}

fn selector_text(m: &Value) -> String {
    match m.as_object() {
        Some(o) if !o.is_empty() => o
            .iter()
            .map(|(k, v)| format!("{k}={}", s(v)))
            .collect::<Vec<_>>()
            .join(","),
        _ => "<none>".into(),
    }
}

fn table(
    k: &Kubectl,
    r: &Resource,
    items: &[Value],
    wide: bool,
    ns_col: bool,
    show_kind: bool,
    now: f64,
) -> String {
    let label_cols: Vec<String> = k
        .args
        .values("label-columns")
        .iter()
        .flat_map(|v| {
            v.split(',')
                .map(|x| x.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|x| !x.is_empty())
        .collect();
    let show_labels = k.args.flag("show-labels");
    let (mut header, rows): (Vec<&str>, Vec<Vec<String>>) = match r.kind.as_str() {
        "Node" => {
            let mut h = vec!["NAME", "STATUS", "ROLES", "AGE", "VERSION"];
            if wide {
                h.extend([
                    "INTERNAL-IP",
                    "EXTERNAL-IP",
                    "OS-IMAGE",
                    "KERNEL-VERSION",
                    "CONTAINER-RUNTIME",
                ]);
            }
            let rows = items
                .iter()
                .map(|o| {
                    let mut row = vec![
                        objects::name(o).to_string(),
                        node_status(o),
                        node_roles(o),
                        objects::age(o, now),
                        s(&o["status"]["nodeInfo"]["kubeletVersion"]),
                    ];
                    if wide {
                        let info = &o["status"]["nodeInfo"];
                        row.extend([
                            address(o, "InternalIP"),
                            address(o, "ExternalIP"),
                            s(&info["osImage"]),
                            s(&info["kernelVersion"]),
                            s(&info["containerRuntimeVersion"]),
                        ]);
                    }
                    row
                })
                .collect();
            (h, rows)
        }
        "Pod" => {
            let mut h = vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"];
            if wide {
                h.extend(["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]);
            }
            let rows = items
                .iter()
                .map(|o| {
                    let mut row = vec![
                        objects::name(o).to_string(),
                        containers_ready(o),
                        pod_status(o),
                        "0".to_string(),
                        objects::age(o, now),
                    ];
                    if wide {
                        let or_none = |v: &Value| {
                            let t = s(v);
                            if t.is_empty() {
                                "<none>".to_string()
                            } else {
                                t
                            }
                        };
                        row.extend([
                            or_none(&o["status"]["podIP"]),
                            or_none(&o["spec"]["nodeName"]),
                            "<none>".into(),
                            "<none>".into(),
                        ]);
                    }
                    row
                })
                .collect();
            (h, rows)
        }
        "Deployment" => {
            let mut h = vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"];
            if wide {
                h.extend(["CONTAINERS", "IMAGES", "SELECTOR"]);
            }
            let rows = items
                .iter()
                .map(|o| {
                    let st = &o["status"];
                    let want = o["spec"]["replicas"].as_i64().unwrap_or(1);
                    let mut row = vec![
                        objects::name(o).to_string(),
                        format!("{}/{}", n(&st["readyReplicas"]), want),
                        n(&st["updatedReplicas"]).to_string(),
                        n(&st["availableReplicas"]).to_string(),
                        objects::age(o, now),
                    ];
                    if wide {
                        let cs = o["spec"]["template"]["spec"]["containers"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default();
                        row.extend([
                            cs.iter()
                                .map(|c| s(&c["name"]))
                                .collect::<Vec<_>>()
                                .join(","),
                            cs.iter()
                                .map(|c| s(&c["image"]))
                                .collect::<Vec<_>>()
                                .join(","),
                            selector_text(&o["spec"]["selector"]["matchLabels"]),
                        ]);
                    }
                    row
                })
                .collect();
            (h, rows)
        }
        "ReplicaSet" => (
            vec!["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
            items
                .iter()
                .map(|o| {
                    vec![
                        objects::name(o).to_string(),
                        n(&o["spec"]["replicas"]).to_string(),
                        n(&o["status"]["replicas"]).to_string(),
                        n(&o["status"]["readyReplicas"]).to_string(),
                        objects::age(o, now),
                    ]
                })
                .collect(),
        ),
        "DaemonSet" => (
            vec![
                "NAME",
                "DESIRED",
                "CURRENT",
                "READY",
                "UP-TO-DATE",
                "AVAILABLE",
                "NODE SELECTOR",
                "AGE",
            ],
            items
                .iter()
                .map(|o| {
                    let st = &o["status"];
                    vec![
                        objects::name(o).to_string(),
                        n(&st["desiredNumberScheduled"]).to_string(),
                        n(&st["currentNumberScheduled"]).to_string(),
                        n(&st["numberReady"]).to_string(),
                        n(&st["updatedNumberScheduled"]).to_string(),
                        n(&st["numberAvailable"]).to_string(),
                        selector_text(&o["spec"]["template"]["spec"]["nodeSelector"]),
                        objects::age(o, now),
                    ]
                })
                .collect(),
        ),
        "PodDisruptionBudget" => (
            vec![
                "NAME",
                "MIN AVAILABLE",
                "MAX UNAVAILABLE",
                "ALLOWED DISRUPTIONS",
                "AGE",
            ],
            items
                .iter()
                .map(|o| {
                    let na = |v: &Value| if v.is_null() { "N/A".to_string() } else { s(v) };
                    vec![
                        objects::name(o).to_string(),
                        na(&o["spec"]["minAvailable"]),
                        na(&o["spec"]["maxUnavailable"]),
                        n(&o["status"]["disruptionsAllowed"]).to_string(),
                        objects::age(o, now),
                    ]
                })
                .collect(),
        ),
        "ConfigMap" => (
            vec!["NAME", "DATA", "AGE"],
            items
                .iter()
                .map(|o| {
                    let d = o["data"].as_object().map(|m| m.len()).unwrap_or(0)
                        + o["binaryData"].as_object().map(|m| m.len()).unwrap_or(0);
                    vec![
                        objects::name(o).to_string(),
                        d.to_string(),
                        objects::age(o, now),
                    ]
                })
                .collect(),
        ),
        "Secret" => (
            vec!["NAME", "TYPE", "DATA", "AGE"],
            items
                .iter()
                .map(|o| {
                    let d = o["data"].as_object().map(|m| m.len()).unwrap_or(0);
                    let t = o["type"].as_str().unwrap_or("Opaque");
                    vec![
                        objects::name(o).to_string(),
                        t.to_string(),
                        d.to_string(),
                        objects::age(o, now),
                    ]
                })
                .collect(),
        ),
        "Service" => (
            vec![
                "NAME",
                "TYPE",
                "CLUSTER-IP",
                "EXTERNAL-IP",
                "PORT(S)",
                "AGE",
            ],
            items
                .iter()
                .map(|o| {
                    let t = o["spec"]["type"].as_str().unwrap_or("ClusterIP");
                    let ext = if t == "LoadBalancer" {
                        "<pending>"
                    } else {
                        "<none>"
                    };
                    let ports = o["spec"]["ports"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|p| {
                                    let proto = p["protocol"].as_str().unwrap_or("TCP");
                                    match p["nodePort"].as_i64() {
                                        Some(np) => format!("{}:{np}/{proto}", n(&p["port"])),
                                        None => format!("{}/{proto}", n(&p["port"])),
                                    }
                                })
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .unwrap_or_else(|| "<none>".into());
                    vec![
                        objects::name(o).to_string(),
                        t.to_string(),
                        {
                            let c = s(&o["spec"]["clusterIP"]);
                            if c.is_empty() {
                                "<none>".to_string()
                            } else {
                                c
                            }
                        },
                        ext.to_string(),
                        ports,
                        objects::age(o, now),
                    ]
                })
                .collect(),
        ),
        "Namespace" => (
            vec!["NAME", "STATUS", "AGE"],
            items
                .iter()
                .map(|o| {
                    vec![
                        objects::name(o).to_string(),
                        "Active".into(),
                        objects::age(o, now),
                    ]
                })
                .collect(),
        ),
        _ => (
            vec!["NAME", "AGE"],
            items
                .iter()
                .map(|o| vec![objects::name(o).to_string(), objects::age(o, now)])
                .collect(),
        ),
    };
    let mut rows = rows;
    let label_headers: Vec<String> = label_cols
        .iter()
        .map(|l| l.rsplit('/').next().unwrap_or(l).to_uppercase())
        .collect();
    for (row, o) in rows.iter_mut().zip(items) {
        let labels = objects::labels(o);
        for l in &label_cols {
            row.push(labels.get(l).map(s).unwrap_or_default());
        }
        if show_labels {
            let t = if labels.is_empty() {
                "<none>".to_string()
            } else {
                labels
                    .iter()
                    .map(|(k, v)| format!("{k}={}", s(v)))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            row.push(t);
        }
        if show_kind {
            row[0] = format!("{}/{}", r.singular_ref(), row[0]);
        }
        if ns_col {
            row.insert(0, objects::namespace(o).to_string());
        }
    }
    let mut all = vec![];
    if !k.args.flag("no-headers") {
        if ns_col {
            header.insert(0, "NAMESPACE");
        }
        let mut h: Vec<String> = header.iter().map(|x| x.to_string()).collect();
        h.extend(label_headers);
        if show_labels {
            h.push("LABELS".into());
        }
        all.push(h);
    }
    all.extend(rows);
    tabulate(&all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabwriter_like_kubectl() {
        let rows = vec![
            vec![
                "NAME".into(),
                "STATUS".into(),
                "ROLES".into(),
                "AGE".into(),
                "VERSION".into(),
            ],
            vec![
                "controlplane".into(),
                "Ready".into(),
                "control-plane".into(),
                "10m".into(),
                "v1.34.2".into(),
            ],
        ];
        assert_eq!(
            tabulate(&rows),
            "NAME           STATUS   ROLES           AGE   VERSION\ncontrolplane   Ready    control-plane   10m   v1.34.2\n"
        );
    }

    #[test]
    fn roles_and_status() {
        let n = json!({"metadata": {"labels": {"node-role.kubernetes.io/control-plane": ""}},
                       "spec": {"unschedulable": true},
                       "status": {"conditions": [{"type": "Ready", "status": "False"}]}});
        assert_eq!(node_roles(&n), "control-plane");
        assert_eq!(node_status(&n), "NotReady,SchedulingDisabled");
        assert_eq!(node_roles(&json!({})), "<none>");
    }

    #[test]
    fn json_is_indented_by_four() {
        assert_eq!(
            to_json(&json!({"b": 1, "a": [2]})),
            "{\n    \"a\": [\n        2\n    ],\n    \"b\": 1\n}"
        );
    }
}
