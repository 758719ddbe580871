//! `kubectl version` (with the version-skew warning) and `kubectl cluster-info`.

use serde_json::{json, Value};

use super::{client_version, fail, Fail, Kubectl, Res};
use crate::kube::api::Op;
use crate::kube::objects;

/// The kustomize version kubectl embeds, by kubectl minor.
fn kustomize_version(minor: u64) -> &'static str {
    match minor {
        0..=26 => "v4.5.7",
        27..=29 => "v5.0.4-0.20230601165947-6ce0bf390ce3",
        30 => "v5.0.4-0.20230601165947-6ce0bf390ce3",
        31 => "v5.4.2",
        32 => "v5.5.0",
        33 => "v5.6.0",
        _ => "v5.7.1",
    }
}

fn client_info(v: &str) -> Value {
    let mut info = crate::kube::apiserver::version_info(v);
    if let Some(m) = info.as_object_mut() {
        for k in [
            "emulationMajor",
            "emulationMinor",
            "minCompatibilityMajor",
            "minCompatibilityMinor",
        ] {
            m.remove(k);
        }
    }
    info
}

pub fn version(k: &Kubectl) -> Res {
    let cv = client_version();
    let cminor = objects::minor_of(&cv).unwrap_or(0);
    let kz = kustomize_version(cminor);
    let output = k.args.value("output").unwrap_or_default();
    let server = if k.args.flag("client") {
        None
    } else {
        Some(k.send(Op::Call {
            name: "version".into(),
            args: json!({}),
        }))
    };
    let skew = |sv: &str| -> Option<String> {
        let sm = objects::minor_of(sv)?;
        (sm.abs_diff(cminor) > 1).then(|| format!(
            "WARNING: version difference between client (1.{cminor}) and server (1.{sm}) exceeds the supported minor version skew of +/-1"))
    };
    match output.as_str() {
        "json" | "yaml" => {
            let mut v = json!({"clientVersion": client_info(&cv), "kustomizeVersion": kz});
            let mut err = None;
            if let Some(s) = server {
                match s {
                    Ok(sv) => v["serverVersion"] = sv,
                    Err(e) => err = Some(Fail::from(e)),
                }
            }
            if output == "json" {
                println!("{}", super::get::to_json(&v));
            } else {
                print!("{}", serde_yaml::to_string(&v).unwrap_or_default());
            }
            if let Some(sv) = v["serverVersion"]["gitVersion"].as_str() {
                if let Some(w) = skew(sv) {
                    eprintln!("{w}");
                }
            }
            match err {
                Some(e) => Err(e),
                None => Ok(0),
            }
        }
        "" => {
            println!("Client Version: {cv}");
            println!("Kustomize Version: {kz}");
            match server {
                None => Ok(0),
                Some(Ok(sv)) => {
                    let s = sv["gitVersion"].as_str().unwrap_or("").to_string();
                    println!("Server Version: {s}");
                    if let Some(w) = skew(&s) {
                        eprintln!("{w}");
                    }
                    Ok(0)
                }
                Some(Err(e)) => Err(e.into()),
            }
        }
        o => fail(format!("error: --output must be 'yaml' or 'json', got {o:?}").replace('"', "'")),
    }
}

pub fn cluster_info(k: &Kubectl) -> Res {
    if k.args.pos.get(1).map(String::as_str) == Some("dump") {
        return fail("error: cluster-info dump is not modeled by the testbed");
    }
    // Reaching the server first, so an unreachable one fails like kubectl.
    k.send(Op::Call {
        name: "version".into(),
        args: json!({}),
    })?;
    let server = k.server().unwrap_or("localhost:8080").to_string();
    println!("Kubernetes control plane is running at https://{server}");
    let dns = k.send(Op::Get {
        kind: "Service".into(),
        namespace: Some("kube-system".into()),
        name: "kube-dns".into(),
    });
    let coredns = k.send(Op::Get {
        kind: "Deployment".into(),
        namespace: Some("kube-system".into()),
        name: "coredns".into(),
    });
    if dns.is_ok() || coredns.is_ok() {
        println!("CoreDNS is running at https://{server}/api/v1/namespaces/kube-system/services/kube-dns:dns/proxy");
    }
    println!("\nTo further debug and diagnose cluster problems, use 'kubectl cluster-info dump'.");
    Ok(0)
}

/// `kubectl api-resources [-o name|wide] [--verbs=V,...]` (apiresources.go): the
/// built-in resources the stand-in API server serves, every one with all the standard
/// verbs. Resources of CustomResourceDefinitions are not listed: the stand-in stores
/// CRDs but serves no objects of their kinds.
pub fn api_resources(k: &Kubectl) -> Res {
    // Discovery asks the server first, so an unreachable one fails like kubectl.
    k.send(Op::Call {
        name: "version".into(),
        args: json!({}),
    })?;
    const VERBS: &[&str] = &[
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ];
    let verbs = k.args.values("verbs");
    let wanted = verbs.iter().flat_map(|v| v.split(','));
    let serves_all = wanted.into_iter().all(|v| VERBS.contains(&v));
    let resources = if serves_all {
        objects::known_resources()
    } else {
        vec![]
    };
    let output = k.args.value("output").unwrap_or_default();
    match output.as_str() {
        "name" => {
            for (r, _) in &resources {
                println!("{}", r.plural_ref());
            }
        }
        "" | "wide" => {
            let mut rows = vec![["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
                .map(String::from)
                .to_vec()];
            if output == "wide" {
                rows[0].push("VERBS".into());
            }
            for (r, short) in &resources {
                let api_version = if r.group.is_empty() {
                    r.version.clone()
                } else {
                    format!("{}/{}", r.group, r.version)
                };
                let mut row = vec![
                    r.plural.clone(),
                    short.join(","),
                    api_version,
                    r.namespaced.to_string(),
                    r.kind.clone(),
                ];
                if output == "wide" {
                    row.push(format!("[{}]", VERBS.join(" ")));
                }
                rows.push(row);
            }
            print!("{}", super::get::tabulate(&rows));
        }
        other => return fail(format!("error: --output {other} is not available")),
    }
    Ok(0)
}
