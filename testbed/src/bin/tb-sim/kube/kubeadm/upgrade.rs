//! `kubeadm upgrade plan|apply|node`: the version policy, the control-plane health
//! check, rewriting the static Pod manifests with the new image tags (the kubelet then
//! restarts the API server at the new version), and the cluster-side config updates.

use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use super::client::Client;
use super::files;
use super::preflight::{self, MANIFESTS};
use super::token::tabwrite;
use super::version::{self, KVer};
use super::{die, parse_flags, phase_error, poll, scaled, Flags};
use crate::common::{self, Ctx};
use crate::kube::api::Op;

pub fn run(ctx: &mut Ctx, args: &[String]) -> i32 {
    let sub = args.first().map(String::as_str).unwrap_or("");
    let rest = if args.is_empty() { args } else { &args[1..] };
    let f = match parse_flags(
        rest,
        &[
            "config",
            "ignore-preflight-errors",
            "kubeconfig",
            "feature-gates",
            "patches",
            "skip-phases",
            "output",
        ],
        &[
            "yes",
            "force",
            "dry-run",
            "certificate-renewal",
            "etcd-upgrade",
            "allow-experimental-upgrades",
            "allow-release-candidate-upgrades",
            "print-config",
            "show-managed-fields",
            "allow-missing-template-keys",
        ],
    ) {
        Ok(f) => f,
        Err(e) => return die(&e),
    };
    // Booleans that default to true: remember an explicit `=false`.
    let mut f = f;
    for b in ["etcd-upgrade", "certificate-renewal"] {
        if rest.iter().any(|a| *a == format!("--{b}=false")) {
            f.values.insert(b.into(), vec!["false".into()]);
        }
    }
    if f.has("dry-run") {
        return die("--dry-run is not modeled by the testbed's kubeadm");
    }
    match sub {
        "plan" => plan(ctx, &f),
        "apply" => apply(ctx, &f),
        "node" => node(ctx, &f),
        "diff" => die("the testbed's kubeadm does not model \"kubeadm upgrade diff\""),
        other => die(&format!(
            "unknown command \"{other}\" for \"kubeadm upgrade\""
        )),
    }
}

/// What the cluster says about itself.
struct Cluster {
    client: Client,
    version: KVer,
    cluster_config: Value,
    nodes: Vec<Value>,
}

fn load_cluster(f: &Flags, kubeconfig: &str) -> Result<Cluster, String> {
    let path = f.get("kubeconfig").unwrap_or(kubeconfig);
    let client = Client::from_kubeconfig(path).map_err(|e| {
        format!("couldn't create a Kubernetes client from file \"{path}\": failed to load admin kubeconfig: {e}")
    })?;
    let cm = client
        .get("ConfigMap", Some("kube-system"), "kubeadm-config")
        .map_err(|e| {
            format!(
                "unable to fetch the kubeadm-config ConfigMap: failed to get config map: Get \"{}\": {}",
                super::client::url(&client.server, "ConfigMap", Some("kube-system"), Some("kubeadm-config")),
                e.text()
            )
        })?;
    let cluster_config: Value = cm["data"]["ClusterConfiguration"]
        .as_str()
        .and_then(|y| serde_yaml::from_str::<serde_yaml::Value>(y).ok())
        .and_then(|y| serde_json::to_value(y).ok())
        .unwrap_or(Value::Null);
    let version = client
        .call(Op::Call {
            name: "version".into(),
            args: json!({}),
        })
        .ok()
        .and_then(|v| v["gitVersion"].as_str().and_then(KVer::parse))
        .or_else(|| {
            cluster_config["kubernetesVersion"]
                .as_str()
                .and_then(KVer::parse)
        })
        .ok_or("unable to determine the cluster version")?;
    let nodes = client.list("Node", None).unwrap_or_default();
    Ok(Cluster {
        client,
        version,
        cluster_config,
        nodes,
    })
}

fn kubelet_of(n: &Value) -> Option<KVer> {
    n["status"]["nodeInfo"]["kubeletVersion"]
        .as_str()
        .and_then(KVer::parse)
}

fn name_of(n: &Value) -> String {
    n["metadata"]["name"].as_str().unwrap_or("").to_string()
}

fn is_cp(n: &Value) -> bool {
    n["metadata"]["labels"]
        .get("node-role.kubernetes.io/control-plane")
        .is_some()
}

fn ready(n: &Value) -> bool {
    n["status"]["conditions"]
        .as_array()
        .map(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
        .unwrap_or(false)
}

/// `upgrade.CheckClusterHealth` (health.go), shared by `plan` and `apply`: prints its
/// line and the warnings of ignored checks, and returns the fatal report, if any.
/// ControlPlaneNodesReady and StaticPodManifest are modelled; CreateJob is not.
fn cluster_health(c: &Cluster, ignore: &std::collections::BTreeSet<String>) -> Option<String> {
    println!("[upgrade] Running cluster health checks");
    let not_ready: Vec<String> = c
        .nodes
        .iter()
        .filter(|n| is_cp(n) && !ready(n))
        .map(name_of)
        .collect();
    let missing: Vec<String> = preflight::STATIC_PODS
        .iter()
        .map(|p| format!("{MANIFESTS}/{p}.yaml"))
        .filter(|p| !Path::new(p).exists())
        .collect();
    let mut health = vec![];
    if !not_ready.is_empty() {
        health.push(preflight::Outcome {
            name: "ControlPlaneNodesReady".into(),
            warnings: vec![],
            errors: vec![format!(
                "there are NotReady control-planes in the cluster: [{}]",
                not_ready.join(" ")
            )],
        });
    }
    if !missing.is_empty() {
        health.push(preflight::Outcome {
            name: "StaticPodManifest".into(),
            warnings: vec![],
            errors: vec![format!(
                "The control plane seems to be Static Pod-hosted, but some of the manifests don't seem to exist on disk. This probably means you're running 'kubeadm upgrade' on a remote machine, which is not supported for a Static Pod-hosted cluster. Manifest files not found: [{}]",
                missing.join(" ")
            )],
        });
    }
    let (w, e) = preflight::report(&health, ignore);
    for w in w {
        eprintln!("{w}");
    }
    e
}

fn print_config_notice(prefix: &str) {
    println!("[{prefix}] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"...");
    println!("[{prefix}] Use 'kubeadm init phase upload-config kubeadm --config your-config-file' to re-upload it.");
}

fn plan(ctx: &mut Ctx, f: &Flags) -> i32 {
    let _ = ctx;
    let kubeadm = version::kubeadm_version();
    let ignore = match preflight::parse_ignore(&f.all("ignore-preflight-errors")) {
        Ok(i) => i,
        Err(e) => return die(&e),
    };
    if !common::is_root() {
        return phase_error("preflight", "[preflight] Some fatal errors occurred:\n\t[ERROR IsPrivilegedUser]: user is not running as root\n[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`");
    }
    println!("[preflight] Running pre-flight checks.");
    print_config_notice("upgrade/config");
    let c = match load_cluster(f, files::ADMIN_CONF) {
        Ok(c) => c,
        Err(e) => return die(&e),
    };
    // enforceRequirements (common.go) wraps the health report: plan has no phases.
    if let Some(e) = cluster_health(&c, &ignore) {
        return die(&health_fatal(&e));
    }
    println!("[upgrade] Fetching available versions to upgrade to");
    println!("[upgrade/versions] Cluster version: {}", c.version);
    println!("[upgrade/versions] kubeadm version: {kubeadm}");
    let target = match f.positional.first() {
        Some(v) => match KVer::parse(v) {
            Some(v) => v,
            None => return die(&format!("couldn't parse Kubernetes version \"{v}\"")),
        },
        None => {
            super::stable_fallback_warnings(kubeadm);
            kubeadm
        }
    };
    println!("[upgrade/versions] Target version: {target}");
    println!(
        "[upgrade/versions] Latest version in the v{} series: {}",
        c.version.minor_str(),
        c.version
    );
    println!();
    if target <= c.version {
        println!("Awesome, you're up-to-date! Enjoy!");
        return 0;
    }
    let mut rows = vec![vec![
        "COMPONENT".to_string(),
        "NODE".into(),
        "CURRENT".into(),
        "TARGET".into(),
    ]];
    for n in &c.nodes {
        rows.push(vec![
            "kubelet".into(),
            name_of(n),
            kubelet_of(n).map(|v| v.to_string()).unwrap_or_default(),
            target.to_string(),
        ]);
    }
    println!("Components that must be upgraded manually after you have upgraded the control plane with 'kubeadm upgrade apply':");
    print!("{}", tabwrite(&rows, 3));
    println!();
    println!(
        "Upgrade to the latest version in the v{} series:",
        target.minor_str()
    );
    println!();
    let old = version::images_for(c.version);
    let new = version::images_for(target);
    let mut rows = vec![vec![
        "COMPONENT".to_string(),
        "NODE".into(),
        "CURRENT".into(),
        "TARGET".into(),
    ]];
    let cps: Vec<String> = c.nodes.iter().filter(|n| is_cp(n)).map(name_of).collect();
    for comp in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        for n in &cps {
            rows.push(vec![
                comp.into(),
                n.clone(),
                c.version.to_string(),
                target.to_string(),
            ]);
        }
    }
    rows.push(vec![
        "kube-proxy".into(),
        String::new(),
        c.version.to_string().trim_start_matches('v').to_string(),
        target.to_string(),
    ]);
    rows.push(vec![
        "CoreDNS".into(),
        String::new(),
        old.coredns.into(),
        new.coredns.into(),
    ]);
    for n in &cps {
        rows.push(vec![
            "etcd".into(),
            n.clone(),
            old.etcd.into(),
            new.etcd.into(),
        ]);
    }
    print!("{}", tabwrite(&rows, 3));
    println!();
    println!("You can now apply the upgrade by executing the following command:");
    println!();
    println!("\tkubeadm upgrade apply {target}");
    println!();
    println!("_____________________________________________________________________");
    println!();
    println!();
    println!("The table below shows the current state of component configs as understood by this version of kubeadm.");
    println!("Configs that have a \"yes\" mark in the \"MANUAL UPGRADE REQUIRED\" column require manual config upgrade or");
    println!("resetting to kubeadm defaults before a successful upgrade can be performed. The version to manually");
    println!("upgrade to is denoted in the \"PREFERRED VERSION\" column.");
    println!();
    print!(
        "{}",
        tabwrite(
            &[
                vec![
                    "API GROUP".into(),
                    "CURRENT VERSION".into(),
                    "PREFERRED VERSION".into(),
                    "MANUAL UPGRADE REQUIRED".into()
                ],
                vec![
                    "kubeproxy.config.k8s.io".into(),
                    "v1alpha1".into(),
                    "v1alpha1".into(),
                    "no".into()
                ],
                vec![
                    "kubelet.config.k8s.io".into(),
                    "v1beta1".into(),
                    "v1beta1".into(),
                    "no".into()
                ],
            ],
            3
        )
    );
    println!("_____________________________________________________________________");
    println!();
    0
}

/// `errors.Wrap(err, "[upgrade/health] FATAL")` around the checks' report; from 1.36 the
/// report itself goes to stderr first and the error is short (see `preflight_failed`).
fn health_fatal(report: &str) -> String {
    if version::kubeadm_version().minor >= 36 {
        eprintln!("{report}");
        "[upgrade/health] FATAL: preflight checks failed".into()
    } else {
        format!("[upgrade/health] FATAL: {report}")
    }
}

fn confirm(question: &str) -> bool {
    use std::io::Write;
    print!("{question} [y/N]: ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    matches!(line.trim(), "y" | "Y")
}

/// Replaces the image tag of `component` in a static Pod manifest's text.
pub fn retag(text: &str, image_name: &str, tag: &str) -> String {
    let suffix = format!("/{image_name}");
    text.lines()
        .map(|l| {
            let Some(at) = l.find("image: ") else {
                return l.to_string();
            };
            let (head, img) = (&l[..at + 7], l[at + 7..].trim());
            let lead = head.trim_start().trim_start_matches("- ");
            match img.rsplit_once(':') {
                Some((n, _)) if lead == "image: " && n.ends_with(&suffix) => {
                    format!("{head}{n}:{tag}")
                }
                _ => l.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Rewrites this node's control-plane manifests for `target`; returns whether the
/// API server manifest changed.
fn upgrade_manifests(
    ctx: &mut Ctx,
    target: KVer,
    etcd: bool,
) -> Result<Vec<(String, String)>, String> {
    let stamp = crate::kube::objects::rfc3339(common::now()).replace(':', "-");
    let backup = format!("/etc/kubernetes/tmp/kubeadm-backup-manifests-{stamp}");
    println!("[upgrade/staticpods] Writing new Static Pod manifests to \"/etc/kubernetes/tmp/kubeadm-upgraded-manifests{stamp}\"");
    let mut moved = vec![];
    let mut comps: Vec<(&str, String)> = vec![];
    if etcd {
        comps.push(("etcd", version::images_for(target).etcd.to_string()));
    }
    for c in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        comps.push((c, target.to_string()));
    }
    for (comp, tag) in comps {
        let path = format!("{MANIFESTS}/{comp}.yaml");
        let Ok(old) = std::fs::read_to_string(&path) else {
            return Err(format!("couldn't upgrade control plane. kubeadm has tried to recover everything into the earlier state. Errors faced: failed to read {path}: no such file or directory"));
        };
        if comp == "etcd" {
            println!("[upgrade/staticpods] Preparing for \"etcd\" upgrade");
        } else {
            println!("[upgrade/staticpods] Preparing for \"{comp}\" upgrade");
        }
        let new = retag(&old, comp, &tag);
        if new == old {
            println!("[upgrade/staticpods] Current and new manifests of {comp} are equal, skipping upgrade");
            continue;
        }
        let _ = common::write_atomic(Path::new(&format!("{backup}/{comp}.yaml")), old.as_bytes());
        common::write_atomic(Path::new(&path), new.as_bytes()).map_err(|e| e.to_string())?;
        ctx.changed();
        println!("[upgrade/staticpods] Moved new manifest to \"{path}\" and backed up old manifest to \"{backup}/{comp}.yaml\"");
        println!("[upgrade/staticpods] Waiting for the kubelet to restart the component");
        println!("[upgrade/staticpods] This can take up to 5m0s");
        moved.push((path.clone(), format!("{backup}/{comp}.yaml")));
        println!("[apiclient] Found 1 Pods for label selector component={comp}");
        println!("[upgrade/staticpods] Component \"{comp}\" upgraded successfully!");
    }
    Ok(moved)
}

/// Puts the backed-up manifests back (kubeadm's rollback after a failed upgrade).
fn rollback(moved: &[(String, String)]) {
    for (path, backup) in moved {
        if let Ok(old) = std::fs::read(backup) {
            let _ = common::write_atomic(Path::new(path), &old);
        }
    }
}

/// Renews the leaf certificates like kubeadm does during a control-plane upgrade.
fn renew_certs(ctx: &mut Ctx) {
    for name in [
        "apiserver",
        "apiserver-kubelet-client",
        "front-proxy-client",
        "etcd/server",
        "etcd/peer",
        "etcd/healthcheck-client",
        "apiserver-etcd-client",
    ] {
        let crt = format!("{}/{name}.crt", super::init::PKI);
        if Path::new(&crt).exists() {
            let (c, k) = crate::kube::pki::new_cert();
            let _ = common::write_atomic(Path::new(&crt), c.as_bytes());
            let _ = common::write_atomic(
                Path::new(&format!("{}/{name}.key", super::init::PKI)),
                k.as_bytes(),
            );
            ctx.changed();
        }
    }
    for conf in [
        "admin.conf",
        "super-admin.conf",
        "controller-manager.conf",
        "scheduler.conf",
    ] {
        let p = format!("/etc/kubernetes/{conf}");
        if let Ok(t) = std::fs::read_to_string(&p) {
            // Rewriting keeps the credential but refreshes the file's age (its cert).
            let _ = common::write_atomic(Path::new(&p), t.as_bytes());
        }
    }
}

/// Waits until the API server answers with the target version.
fn wait_version(ctx: &Ctx, c: &Client, target: KVer) -> bool {
    poll(scaled(ctx, 300.0, 20.0), || {
        c.call(Op::Call {
            name: "version".into(),
            args: json!({}),
        })
        .ok()
        .and_then(|v| v["gitVersion"].as_str().and_then(KVer::parse))
        .filter(|v| *v == target)
    })
    .is_some()
}

fn apply(ctx: &mut Ctx, f: &Flags) -> i32 {
    let kubeadm = version::kubeadm_version();
    let ignore = match preflight::parse_ignore(&f.all("ignore-preflight-errors")) {
        Ok(i) => i,
        Err(e) => return die(&e),
    };
    print_config_notice("upgrade");
    let (_, e) = preflight::report(&preflight::root_check(common::is_root()), &ignore);
    if let Some(e) = e {
        return super::preflight_failed(&e);
    }
    let Some(target) = f.positional.first() else {
        return die("missing one or more required arguments. Required arguments: [version]");
    };
    let Some(target) = KVer::parse(target) else {
        return die(&format!("couldn't parse Kubernetes version \"{target}\""));
    };
    let c = match load_cluster(f, files::ADMIN_CONF) {
        Ok(c) => c,
        Err(e) => return die(&e),
    };
    println!("[upgrade/preflight] Running preflight checks");
    if let Some(e) = cluster_health(&c, &ignore) {
        return super::preflight_failed(&e);
    }
    println!("[upgrade/version] You have chosen to change the cluster version to \"{target}\"");
    println!("[upgrade/versions] Cluster version: {}", c.version);
    println!("[upgrade/versions] kubeadm version: {kubeadm}");
    let mut skew = version::check_upgrade(kubeadm, c.version, target);
    // policy.go's detectTooOldKubelets: each version once (a map of versions), and a
    // skippable error (`--force` passes it).
    let too_old: std::collections::BTreeSet<String> = c
        .nodes
        .iter()
        .filter_map(kubelet_of)
        .filter(|k| k.minor + 3 < target.minor)
        .map(|k| k.to_string())
        .collect();
    if !too_old.is_empty() {
        let too_old: Vec<String> = too_old.into_iter().collect();
        skew.skippable.push(format!(
            "There are kubelets in this cluster that are too old that have these versions [{}]",
            too_old.join(" ")
        ));
    }
    if let Some(e) = policy_error(&skew, f.has("force")) {
        return phase_error("preflight", &e);
    }
    if !f.has("yes") && !f.has("force") && !confirm("[upgrade] Are you sure you want to proceed?") {
        println!();
        return phase_error(
            "preflight",
            "won't proceed; the user didn't answer (Y|y) in order to continue",
        );
    }
    println!("[upgrade/preflight] Pulling images required for setting up a Kubernetes cluster");
    println!("[upgrade/preflight] This might take a minute or two, depending on the speed of your internet connection");
    println!("[upgrade/preflight] You can also perform this action beforehand using 'kubeadm config images pull'");
    ctx.take_time(30.0);
    println!("[upgrade/control-plane] Upgrading your static Pod-hosted control plane to version \"{target}\" (timeout: 5m0s)...");
    let etcd = f.get("etcd-upgrade").map(|v| v != "false").unwrap_or(true);
    let moved = match upgrade_manifests(ctx, target, etcd) {
        Ok(m) => m,
        Err(e) => return phase_error("control-plane", &e),
    };
    if f.get("certificate-renewal") != Some("false") {
        renew_certs(ctx);
    }
    if !wait_version(ctx, &c.client, target) {
        rollback(&moved);
        return phase_error("control-plane", "couldn't upgrade control plane. kubeadm has tried to recover everything into the earlier state. Errors faced: timed out waiting for the condition");
    }
    ctx.take_time(60.0);
    println!("[upgrade/control-plane] The control plane instance for this node was successfully upgraded!");
    // Cluster-side configuration.
    let mut cc = c.cluster_config.clone();
    if cc.is_object() {
        cc["kubernetesVersion"] = json!(target.to_string());
    }
    println!("[upload-config] Storing the configuration used in ConfigMap \"kubeadm-config\" in the \"kube-system\" Namespace");
    let _ = c.client.patch(
        "ConfigMap",
        Some("kube-system"),
        "kubeadm-config",
        json!({"data": {"ClusterConfiguration": files::to_yaml(&cc)}}),
    );
    let _ = c.client.call(Op::Call {
        name: "set-state".into(),
        args: json!({"field": "version", "value": target.to_string()}),
    });
    println!("[kubelet] Creating a ConfigMap \"kubelet-config\" in namespace kube-system with the configuration for the kubelets in the cluster");
    if let Some(k) = fetch_kubelet_config(&c.client) {
        let _ = common::write_atomic(Path::new(files::KUBELET_CONFIG), k.as_bytes());
    }
    println!("[upgrade/kubelet-config] The kubelet configuration for this node was successfully upgraded!");
    println!("[upgrade/bootstrap-token] Configuring bootstrap token and cluster-info RBAC rules");
    println!("[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to get nodes");
    println!("[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to post CSRs in order for nodes to get long term certificate credentials");
    println!("[bootstrap-token] Configured RBAC rules to allow the csrapprover controller automatically approve CSRs from a Node Bootstrap Token");
    println!("[bootstrap-token] Configured RBAC rules to allow certificate rotation for all node client certificates in the cluster");
    if let Err(e) = upgrade_addons(&c, target, true) {
        return e;
    }
    ctx.changed();
    ctx.take_time(10.0);
    println!();
    println!("[upgrade/successful] SUCCESS! Your cluster was upgraded to \"{target}\". Enjoy!");
    println!();
    println!("[upgrade/kubelet] Now that your control plane is upgraded, please proceed with upgrading your kubelets if you haven't already done so.");
    0
}

/// The version policy's report: fatal errors always, skippable ones unless --force.
fn policy_error(skew: &version::Skew, force: bool) -> Option<String> {
    let list = |v: &[String]| {
        v.iter()
            .map(|m| format!("\t- {m}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    if !skew.mandatory.is_empty() {
        return Some(format!("[upgrade/version] FATAL: the --version argument is invalid due to these fatal errors:\n\n{}\n\nPlease fix the misalignments highlighted above and try upgrading again", list(&skew.mandatory)));
    }
    if skew.skippable.is_empty() {
        return None;
    }
    if force {
        eprintln!("[upgrade/version] Found {} potential version compatibility errors but skipping since the --force flag is set: \n\n{}", skew.skippable.len(), list(&skew.skippable));
        return None;
    }
    Some(format!("[upgrade/version] FATAL: the --version argument is invalid due to these errors:\n\n{}\n\nCan be bypassed if you pass the --force flag", list(&skew.skippable)))
}

/// The addon phase that `apply` and `node` share (phases/upgrade/addons.go): on a
/// control plane, CoreDNS and kube-proxy move to `target` only once every control
/// plane's kube-apiserver runs this node's image (kubeadm >= 1.28, kubernetes#116570), so
/// in HA the last control plane's `upgrade node` is the one that upgrades them. Each of
/// the two sub-phases checks and reports on its own. `Ok`: whether an image changed;
/// `Err`: the exit status.
fn upgrade_addons(c: &Cluster, target: KVer, is_cp: bool) -> Result<bool, i32> {
    let mut changed = false;
    let repo = c.cluster_config["imageRepository"]
        .as_str()
        .unwrap_or(version::REGISTRY)
        .to_string();
    for (phase, kind, name, image) in [
        (
            "coredns",
            "Deployment",
            "coredns",
            format!(
                "{repo}/coredns/coredns:{}",
                version::images_for(target).coredns
            ),
        ),
        (
            "kube-proxy",
            "DaemonSet",
            "kube-proxy",
            format!("{repo}/kube-proxy:{target}"),
        ),
    ] {
        if !is_cp {
            println!("[upgrade/addon] Skipping the addon/{phase} phase. Not a control plane node.");
            continue;
        }
        let behind = unupgraded_control_planes(&c.client).map_err(|e| {
            phase_error(
                &format!("addon/{phase}"),
                &format!("failed to determine whether all the control plane instances have been upgraded: {e}"),
            )
        })?;
        if !behind.is_empty() {
            println!(
                "[upgrade/addon] Skipping upgrade of addons because control plane instances [{}] have not been upgraded",
                behind.join(" ")
            );
            continue;
        }
        if let Ok(obj) = c.client.get(kind, Some("kube-system"), name) {
            let mut ctrs = obj["spec"]["template"]["spec"]["containers"].clone();
            if let Some(first) = ctrs.get_mut(0) {
                changed |= first["image"] != image.as_str();
                first["image"] = json!(image);
            }
            let _ = c.client.patch(
                kind,
                Some("kube-system"),
                name,
                json!({"spec": {"template": {"spec": {"containers": ctrs}}}}),
            );
        }
        let shown = if phase == "coredns" {
            "CoreDNS"
        } else {
            "kube-proxy"
        };
        println!("[addons] Applied essential addon: {shown}");
    }
    Ok(changed)
}

/// `upgrade.UnupgradedControlPlaneInstances`: the nodes whose kube-apiserver mirror pod
/// runs another image than this node's (sorted, as `sets.List`). This node is the one
/// of kubelet.conf's credential. Its mirror pod follows the manifest kubeadm just wrote
/// within a kubelet heartbeat; real kubeadm has waited for the static Pod hash by then,
/// so this waits (briefly) for it too.
fn unupgraded_control_planes(admin: &Client) -> Result<Vec<String>, String> {
    let me = Client::from_kubeconfig(files::KUBELET_CONF)
        .ok()
        .and_then(|k| {
            k.call(Op::Call {
                name: "whoami".into(),
                args: json!({}),
            })
            .ok()
        })
        .and_then(|v| {
            v["identity"]
                .as_str()
                .and_then(|i| i.strip_prefix("system:node:"))
                .map(String::from)
        })
        .unwrap_or_else(|| common::hostname().to_lowercase());
    let written = std::fs::read_to_string(format!("{MANIFESTS}/kube-apiserver.yaml"))
        .ok()
        .and_then(|t| serde_yaml::from_str::<Value>(&t).ok())
        .and_then(|d| {
            d["spec"]["containers"][0]["image"]
                .as_str()
                .map(String::from)
        });
    let images = || -> Result<std::collections::BTreeMap<String, String>, String> {
        let pods = admin.list("Pod", Some("kube-system")).map_err(|e| {
            format!(
                "failed to list kube-apiserver Pod from cluster: {}",
                e.text()
            )
        })?;
        Ok(pods
            .iter()
            .filter(|p| p["metadata"]["labels"]["component"] == "kube-apiserver")
            .filter_map(|p| {
                let c = p["spec"]["containers"]
                    .as_array()?
                    .iter()
                    .find(|c| c["name"] == "kube-apiserver")?;
                Some((
                    p["spec"]["nodeName"].as_str()?.to_string(),
                    c["image"].as_str()?.to_string(),
                ))
            })
            .collect())
    };
    let mut map = images()?;
    if written.is_some() {
        let _ = poll(Duration::from_secs(10), || {
            map = images().ok()?;
            (map.get(&me) == written.as_ref()).then_some(())
        });
    }
    if map.is_empty() {
        return Err(
            "cannot find kube-apiserver Pod by label selector: component=kube-apiserver".into(),
        );
    }
    let Some(mine) = map.get(&me).cloned() else {
        return Err(format!(
            "cannot find kube-apiserver image for current control plane instance {me}"
        ));
    };
    Ok(map
        .into_iter()
        .filter(|(_, image)| *image != mine)
        .map(|(node, _)| node)
        .collect())
}

fn fetch_kubelet_config(c: &Client) -> Option<String> {
    c.get("ConfigMap", Some("kube-system"), "kubelet-config")
        .ok()
        .and_then(|cm| cm["data"]["kubelet"].as_str().map(String::from))
}

fn node(ctx: &mut Ctx, f: &Flags) -> i32 {
    let kubeadm = version::kubeadm_version();
    let is_cp = Path::new(&format!("{MANIFESTS}/kube-apiserver.yaml")).exists();
    let kubeconfig = if is_cp {
        files::ADMIN_CONF
    } else {
        files::KUBELET_CONF
    };
    print_config_notice("upgrade");
    let c = match load_cluster(f, kubeconfig) {
        Ok(c) => c,
        Err(e) => return die(&e),
    };
    println!("[upgrade/preflight] Running pre-flight checks");
    let ignore = match preflight::parse_ignore(&f.all("ignore-preflight-errors")) {
        Ok(i) => i,
        Err(e) => return die(&e),
    };
    let (_, e) = preflight::report(&preflight::root_check(common::is_root()), &ignore);
    if let Some(e) = e {
        return super::preflight_failed(&e);
    }
    let target = c.cluster_config["kubernetesVersion"]
        .as_str()
        .and_then(KVer::parse)
        .unwrap_or(c.version);
    if is_cp {
        let skew = version::check_upgrade(kubeadm, target, target);
        if let Some(e) = policy_error(&skew, f.has("force")) {
            return phase_error("preflight", &e);
        }
        println!("[upgrade/preflight] Pulling images required for setting up a Kubernetes cluster");
        println!("[upgrade/preflight] This might take a minute or two, depending on the speed of your internet connection");
        println!("[upgrade/preflight] You can also perform this action beforehand using 'kubeadm config images pull'");
        ctx.take_time(10.0);
        println!("[upgrade/control-plane] Upgrading your Static Pod-hosted control plane instance to version \"{target}\"...");
        if let Err(e) = upgrade_manifests(ctx, target, true) {
            return phase_error("control-plane", &e);
        }
        renew_certs(ctx);
        std::thread::sleep(Duration::from_millis(200));
        println!("[upgrade/control-plane] The control plane instance for this node was successfully upgraded!");
    } else {
        println!("[upgrade/preflight] Skipping prepull. Not a control plane node.");
        println!("[upgrade/control-plane] Skipping phase. Not a control plane node.");
        println!("[upgrade/kubeconfig] Skipping phase. Not a control plane node.");
    }
    let stamp = crate::kube::objects::rfc3339(common::now()).replace(':', "-");
    let backup = format!("/etc/kubernetes/tmp/kubeadm-kubelet-config-{stamp}");
    println!("[upgrade] Backing up kubelet config file to {backup}/config.yaml");
    if let Ok(old) = std::fs::read(files::KUBELET_CONFIG) {
        let _ = common::write_atomic(Path::new(&format!("{backup}/config.yaml")), &old);
    }
    match fetch_kubelet_config(&c.client) {
        Some(k) => {
            println!(
                "[kubelet-start] Writing kubelet configuration to file \"{}\"",
                files::KUBELET_CONFIG
            );
            if std::fs::read_to_string(files::KUBELET_CONFIG)
                .ok()
                .as_deref()
                != Some(k.as_str())
            {
                let _ = common::write_atomic(Path::new(files::KUBELET_CONFIG), k.as_bytes());
                ctx.changed();
            }
        }
        None => {
            return phase_error("kubelet-config", "failed to download kubelet configuration from the cluster: configmaps \"kubelet-config\" not found");
        }
    }
    println!("[upgrade/kubelet-config] The kubelet configuration for this node was successfully upgraded!");
    match upgrade_addons(&c, target, is_cp) {
        Ok(true) => ctx.changed(),
        Ok(false) => {}
        Err(e) => return e,
    }
    ctx.take_time(if is_cp { 20.0 } else { 10.0 });
    println!("[upgrade] The configuration for this node was successfully updated!");
    println!("[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager.");
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retag_changes_only_the_component_image() {
        let text = "spec:\n  containers:\n  - image: registry.k8s.io/kube-apiserver:v1.33.5\n    name: kube-apiserver\n";
        let out = retag(text, "kube-apiserver", "v1.34.2");
        assert!(out.contains("  - image: registry.k8s.io/kube-apiserver:v1.34.2\n"));
        assert_eq!(retag(text, "etcd", "3.6.4-0"), text);
    }
}
