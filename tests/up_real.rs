//! End-to-end on the REAL control plane (issue 9): `bootstrap up` drives the real
//! `kubeadm init` and `kubeadm join` (the kubeadm and kubectl packages carry the binaries
//! testbed/k8s/build.sh built), the real kube-apiserver, etcd, controller-manager and
//! scheduler run as the kubelet stand-in's static pods, the hosts' containerd is the real
//! one, and calico-node's install-cni does on the hosts what Calico's installer does
//! (testbed/STANDINS-kubelet-real.md). Assertions read real API objects with kubectl and
//! real files on the hosts.
//!
//! Needs root and the built release (the first run builds it): `cargo test --test up_real`.

mod support;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::Value;
use support::snapshot::assert_converged_up;
use support::*;
use testbed::Testbed;

/// `kubectl get ARGS -o json` on `cp` with admin.conf.
fn get(tb: &Testbed, cp: &str, args: &[&str]) -> Value {
    let mut argv = KUBECTL.to_vec();
    argv.push("get");
    argv.extend(args);
    argv.extend(["-o", "json"]);
    serde_json::from_str(&exec(tb, cp, &argv)).unwrap()
}

fn condition(o: &Value, kind: &str) -> String {
    o["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == kind)
        .and_then(|c| c["status"].as_str())
        .unwrap_or("")
        .to_string()
}

/// examples/wordpress (inventory.example's layout plus its MySQL and WordPress manifests),
/// converged once by `up` on the real control plane and then put through both checks
/// below. Each was a test of its own with a 2-host cluster of its own, built by an
/// identical `up` but for the manifests (CI's time is mostly spent building clusters);
/// the article's checks look only at kube-system, the nodes and the hosts, so the two
/// workloads do not change what they see. Each check names itself on stderr so a failure
/// says which one it was.
#[test]
fn the_article_layout_with_examples_wordpress() {
    let tb = real_testbed(2);
    let version = real_version();
    let inv = wordpress_inventory(&tb, &version);
    let started = Instant::now();
    let first = run_on(&tb, &["up", "--timeout", "10m"], &inv, &[]);
    eprintln!("the converging up took {:?}", started.elapsed());
    assert!(first.ok(), "first up failed:\n{}", first.stderr);
    check!(the_article_layout_converges_on_the_real_control_plane(
        &tb, &version
    ));
    check!(examples_wordpress_converges_on_the_real_control_plane(
        &tb, &version
    ));
}

/// examples/wordpress's inventory at `version`, its manifests copied next to it.
fn wordpress_inventory(tb: &Testbed, version: &str) -> PathBuf {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/wordpress");
    for f in ["mysql.yaml", "wordpress.yaml"] {
        std::fs::copy(example.join(f), tb.dir().join(f)).unwrap();
    }
    Inventory {
        version,
        manifests: &["mysql.yaml", "wordpress.yaml"],
        ..Inventory::new(&article_decls()[..2])
    }
    .write(tb)
}

/// inventory.example's layout (1 control plane labeled type=mysql without its taint,
/// 1 worker labeled type=wordpress) converges through the real kubeadm: Nodes Ready with
/// the labels and taints, calico-node Running on both, CoreDNS Ready, Calico's CNI
/// configuration on each host; a second run of that layout (without the manifests, which
/// stay applied: removing an entry deletes nothing, docs/inventory.md) changes nothing
/// and `plan` has nothing to do.
fn the_article_layout_converges_on_the_real_control_plane(tb: &Testbed, version: &str) {
    let decls = &article_decls()[..2];
    let mut inv = Inventory::new(decls);
    inv.version = version;
    let inv = inv.write(tb);

    // The real programs answered.
    let v: Value =
        serde_json::from_str(&exec(tb, "node1", &["kubeadm", "version", "-o", "json"])).unwrap();
    assert_eq!(
        v["clientVersion"]["gitVersion"],
        format!("v{version}").as_str()
    );
    let mut argv = KUBECTL.to_vec();
    argv.extend(["get", "--raw", "/version"]);
    let v: Value = serde_json::from_str(&exec(tb, "node1", &argv)).unwrap();
    assert_eq!(v["gitVersion"], format!("v{version}").as_str());

    // Nodes: Ready, the kubelet's version, the inventory's labels and taints.
    // The node lifecycle controller lifts its node.kubernetes.io/not-ready taint a moment
    // after the kubelet reports Ready (its monitor period, 5 s): wait up to 60 s for that,
    // then the taints must be exactly the inventory's.
    let mut nodes = get(tb, "node1", &["nodes"]);
    for _ in 0..60 {
        if !nodes["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(has_lifecycle_taint)
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
        nodes = get(tb, "node1", &["nodes"]);
    }
    let nodes = nodes["items"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{nodes:#?}");
    for (name, label, taints) in [
        ("node1", "mysql", Vec::<String>::new()),
        ("node2", "wordpress", vec![]),
    ] {
        let n = nodes
            .iter()
            .find(|n| n["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no Node {name}"));
        assert_eq!(condition(n, "Ready"), "True", "{name}: {n:#}");
        assert_eq!(
            n["status"]["nodeInfo"]["kubeletVersion"],
            format!("v{version}").as_str()
        );
        assert_eq!(n["metadata"]["labels"]["type"], label, "{name}");
        let have: Vec<String> = n["spec"]["taints"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                format!(
                    "{}:{}",
                    t["key"].as_str().unwrap(),
                    t["effect"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(have, taints, "{name}: taints");
    }
    assert!(nodes.iter().any(|n| n["metadata"]["labels"]
        .get("node-role.kubernetes.io/control-plane")
        .is_some()));

    // calico-node Running on both nodes, kube-controllers and CoreDNS Ready.
    let pods = get(tb, "node1", &["pods", "-n", "kube-system"]);
    let pods = pods["items"].as_array().unwrap();
    let of = |prefix: &str| -> Vec<&Value> {
        pods.iter()
            .filter(|p| p["metadata"]["name"].as_str().unwrap().starts_with(prefix))
            .collect()
    };
    let calico = of("calico-node-");
    let mut on: Vec<&str> = calico
        .iter()
        .map(|p| p["spec"]["nodeName"].as_str().unwrap())
        .collect();
    on.sort();
    assert_eq!(on, ["node1", "node2"], "{calico:#?}");
    for p in calico
        .iter()
        .chain(of("coredns-").iter())
        .chain(of("calico-kube-controllers-").iter())
    {
        assert_eq!(p["status"]["phase"], "Running", "{p:#}");
        assert_eq!(condition(p, "Ready"), "True", "{p:#}");
    }
    assert_eq!(of("coredns-").len(), 2);

    // What install-cni left on each host: the conflist of calico-config with the node's
    // name, the CNI plugin's kubeconfig (private), the plugins.
    for host in ["node1", "node2"] {
        let conf: Value = serde_json::from_slice(
            &tb.read_file(host, "/etc/cni/net.d/10-calico.conflist")
                .unwrap(),
        )
        .unwrap();
        assert_eq!(conf["plugins"][0]["type"], "calico");
        assert_eq!(conf["plugins"][0]["nodename"], host);
        assert_eq!(
            conf["plugins"][0]["kubernetes"]["kubeconfig"],
            "/etc/cni/net.d/calico-kubeconfig"
        );
        // Both private: Calico's install.go writes the conflist 0600 too
        // (writeCNIConfig, TEST_FILE_PERMISSION's default).
        for file in ["calico-kubeconfig", "10-calico.conflist"] {
            let path = format!("/etc/cni/net.d/{file}");
            let mode = exec(tb, host, &["stat", "-c", "%a", &path]);
            assert_eq!(mode.trim(), "600", "{host}: {path}");
        }
        exec(tb, host, &["test", "-x", "/opt/cni/bin/calico-ipam"]);
    }

    assert_converged_up(tb, &inv, "the second run");
}

/// examples/wordpress (inventory.example's layout plus its MySQL and WordPress manifests)
/// converges on the real control plane: `up` applies both manifests to the real API
/// server once the nodes are Ready and waits for their rollouts; the real scheduler puts
/// MySQL on node1 (type=mysql, untainted) and WordPress on node2 (type=wordpress); a
/// second run changes nothing.
fn examples_wordpress_converges_on_the_real_control_plane(tb: &Testbed, version: &str) {
    let inv = wordpress_inventory(tb, version);
    let (placed, pods) = pod_placement(tb, "node1");
    assert_eq!(
        placed,
        vec![running("mysql", "node1"), running("wordpress", "node2")],
        "{pods:#}"
    );
    for p in pods["items"].as_array().unwrap() {
        assert_eq!(condition(p, "Ready"), "True", "{p:#}");
    }
    assert_converged_up(tb, &inv, "the second run");
}
