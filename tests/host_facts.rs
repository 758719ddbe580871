//! End-to-end: what the hosts' facts decide before any change. Hosts reached through an
//! address they do not own (the testbed's public addresses, DNAT'ed in the root namespace
//! as a cloud VM's public IP, and their `NAME.tbX.test` names; testbed/README.md) still
//! get their own address as node IP, or the API server cannot bind, kubeadm refuses a
//! host name as advertise address and the kubelet drops its addresses. A subnet holding a
//! host's address, and a control plane smaller than kubeadm's preflight allows, are
//! refused before anything changes.
//!
//! On the REAL control plane (issue 9, tests/up_real.rs): the real kubeadm init and join,
//! the real API server's Nodes, kubeadm-config and Calico objects. Needs root and the
//! built release (the first run builds it).

mod support;

use std::process::Command;

use serde_json::Value;
use support::snapshot::{assert_unchanged, Snapshot};
use support::*;
use testbed::Testbed;

/// Runs `bootstrap ARGS` in a private mount namespace whose /etc/hosts is the testbed's,
/// so the hosts' DNS names resolve (the machine's own /etc/hosts is not touched).
/// Without public addresses (no such file), plainly.
fn bootstrap(tb: &Testbed, args: &[&str]) -> Ran {
    if !tb.etc_hosts().exists() {
        return run_bootstrap(args, &[]);
    }
    let inner = bootstrap_command(args, &[]);
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount --bind "$0" /etc/hosts && exec "$@""#)
        .arg(tb.etc_hosts())
        .arg(inner.get_program())
        .args(inner.get_args())
        .stdin(std::process::Stdio::null());
    for (key, value) in inner.get_envs() {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    run_command(cmd, &format!("bootstrap {args:?} (testbed's /etc/hosts)"))
}

/// The inventory of `plain_decls(1)` with the control plane written by its public
/// address and the worker by its DNS name.
fn inventory_by_public_names(tb: &Testbed) -> std::path::PathBuf {
    let inv = real_inventory(tb, &plain_decls(1));
    let hosts = tb.hosts();
    let mut text = std::fs::read_to_string(&inv).unwrap();
    text = text.replace(
        &format!("address: {}\n", hosts[0].address),
        &format!("address: {}\n", hosts[0].public_address.as_ref().unwrap()),
    );
    text = text.replace(
        &format!("address: {}\n", hosts[1].address),
        &format!("address: {}\n", hosts[1].dns_name.as_ref().unwrap()),
    );
    std::fs::write(&inv, text).unwrap();
    inv
}

fn internal_ips(tb: &Testbed, cp: &str) -> Vec<(String, Value)> {
    let mut argv = KUBECTL.to_vec();
    argv.extend(["get", "nodes", "-o", "json"]);
    let v: Value = serde_json::from_str(&exec(tb, cp, &argv)).unwrap();
    let mut out: Vec<(String, Value)> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["metadata"]["name"].as_str().unwrap().to_string(),
                n["status"]["addresses"].clone(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// `kubectl -n kube-system get KIND NAME -o jsonpath={PATH}` on `host`, as the API server
/// holds the object.
fn kube_system_get(tb: &Testbed, host: &str, object: &str, path: &str) -> String {
    let mut argv = KUBECTL.to_vec();
    argv.extend(["-n", "kube-system", "get"]);
    argv.extend(object.split(' '));
    let jsonpath = format!("jsonpath={{{path}}}");
    argv.extend(["-o", &jsonpath]);
    exec(tb, host, &argv)
}

#[test]
fn hosts_reached_by_public_address_and_name_use_their_own_address_as_node_ip() {
    let tb = real_builder(2)
        .public_addresses(true)
        .build()
        .expect("testbed with public addresses (root, nft)");
    let hosts = tb.hosts();
    let (cp, worker) = (&hosts[0], &hosts[1]);
    let inv = inventory_by_public_names(&tb);
    // VXLAN, as on a cloud whose security groups drop IP protocol 4.
    let text = std::fs::read_to_string(&inv).unwrap();
    std::fs::write(
        &inv,
        text.replace("manifest: null}", "manifest: null, encapsulation: vxlan}"),
    )
    .unwrap();
    let inv_arg = inv.to_str().unwrap();
    let runs = tb.dir().join("runs");
    let log_dir = ["--log-dir", runs.to_str().unwrap()];

    // plan names the node IP it will use and why, before any change.
    let plan = bootstrap(&tb, &[&["plan", inv_arg][..], &log_dir].concat());
    assert_eq!(plan.code, Some(2), "{}", plan.stderr);
    let public = cp.public_address.as_deref().unwrap();
    let expected_cp = format!(
        "{}: node IP {} (on eth0): the SSH address {public} is on none of the host's \
         interfaces (a public or NAT address); {} is on eth0, the interface of the default route",
        cp.name, cp.address, cp.address
    );
    assert!(plan.stderr.contains(&expected_cp), "{}", plan.stderr);
    let expected_worker = format!(
        "{}: node IP {} (on eth0): the SSH address {} is a host name",
        worker.name,
        worker.address,
        worker.dns_name.as_deref().unwrap()
    );
    assert!(plan.stderr.contains(&expected_worker), "{}", plan.stderr);

    let up = bootstrap(
        &tb,
        &[&["up", inv_arg, "--timeout", "10m"][..], &log_dir].concat(),
    );
    assert_eq!(up.code, Some(0), "{}", up.stderr);

    // The kubelets registered the hosts' own addresses.
    for (name, addresses) in internal_ips(&tb, &cp.name) {
        let own = &hosts.iter().find(|h| h.name == name).unwrap().address;
        assert_eq!(
            addresses[0],
            serde_json::json!({"address": own, "type": "InternalIP"}),
            "{name}"
        );
    }
    let kubelet =
        String::from_utf8(tb.read_file(&worker.name, "/etc/default/kubelet").unwrap()).unwrap();
    assert_eq!(
        kubelet.trim(),
        format!("KUBELET_EXTRA_ARGS=--node-ip={}", worker.address)
    );
    // The API server's certificate also names the public address, for kubeconfigs that
    // point there (kubeadm keeps the ClusterConfiguration in kubeadm-config).
    let config = kube_system_get(
        &tb,
        &cp.name,
        "configmap kubeadm-config",
        ".data.ClusterConfiguration",
    );
    assert!(config.contains(&format!("- {public}")), "{config}");
    assert!(
        config.contains(&format!("controlPlaneEndpoint: {}:6443", cp.address)),
        "{config}"
    );

    // calico-node takes its address from the Node's InternalIP (the node IP above), not
    // the first interface it finds: the DaemonSet as the API server holds it.
    let env = kube_system_get(
        &tb,
        &cp.name,
        "daemonset calico-node",
        ".spec.template.spec.containers[0].env",
    );
    let env: Value = serde_json::from_str(&env).unwrap();
    assert!(
        env.as_array().unwrap().contains(
            &serde_json::json!({"name": "IP_AUTODETECTION_METHOD", "value": "kubernetes-internal-ip"})
        ),
        "{env}"
    );
    // calico.encapsulation: vxlan: the default pool is created with VXLAN, not IP-in-IP,
    // and BGP is off (calico-config's calico_backend).
    for (name, value) in [
        ("CALICO_IPV4POOL_IPIP", "Never"),
        ("CALICO_IPV4POOL_VXLAN", "Always"),
    ] {
        assert!(
            env.as_array()
                .unwrap()
                .contains(&serde_json::json!({"name": name, "value": value})),
            "{name}={value} in {env}"
        );
    }
    let backend = kube_system_get(
        &tb,
        &cp.name,
        "configmap calico-config",
        ".data.calico_backend",
    );
    assert_eq!(backend.trim(), "vxlan");

    // A re-run changes nothing.
    let again = bootstrap(&tb, &[&["plan", inv_arg][..], &log_dir].concat());
    assert_eq!(again.code, Some(0), "{}", again.stderr);
}

#[test]
fn a_subnet_holding_an_address_the_host_has_is_refused_before_any_change() {
    let tb = real_builder(1)
        .public_addresses(true)
        .build()
        .expect("testbed with public addresses (root, nft)");
    let host = &tb.hosts()[0];
    // The inventory only knows the public address (outside 10.200.0.0/16); the host's own
    // address, from its facts, is inside the pod subnet.
    let inv = real_inventory(&tb, &plain_decls(0));
    let text = std::fs::read_to_string(&inv).unwrap().replace(
        &format!("address: {}\n", host.address),
        &format!("address: {}\n", host.public_address.as_ref().unwrap()),
    );
    let text = text.replace("cluster:\n", "cluster:\n  podSubnet: 10.200.0.0/16\n");
    std::fs::write(&inv, text).unwrap();
    let why = format!(
        "its address {} (on eth0) is inside cluster.podSubnet 10.200.0.0/16",
        host.address
    );
    assert_refused_before_any_change(&tb, &inv, &why);
}

#[test]
fn a_control_plane_below_kubeadm_s_cpu_and_memory_minimum_is_refused_before_any_change() {
    let tb = real_builder(1)
        .host_resources("node1", Some(1), Some(982))
        .build()
        .expect("testbed");
    // The testbed's small machine, as the host's own tools see it over SSH.
    let out = tb
        .ssh("node1", "root")
        .unwrap()
        .arg("nproc; head -n 1 /proc/meminfo")
        .output()
        .unwrap();
    let seen = String::from_utf8_lossy(&out.stdout);
    assert_eq!(seen, "1\nMemTotal:         1005568 kB\n", "{out:?}");
    let inv = real_inventory(&tb, &plain_decls(0));
    let why = "the number of available CPUs 1 is less than the required 2; the system RAM \
               (982 MB) is less than the minimum 1700 MB";
    assert_refused_before_any_change(&tb, &inv, why);
}

/// `plan` and `up` refuse node1 (exit 5, docs/plan.md), both saying `why`, and node1 is
/// as it was.
fn assert_refused_before_any_change(tb: &Testbed, inv: &std::path::Path, why: &str) {
    let runs = tb.dir().join("runs");
    let rest = [inv.to_str().unwrap(), "--log-dir", runs.to_str().unwrap()];
    let before = Snapshot::of(tb, "node1");
    for (command, code) in [("plan", 5), ("up", 5)] {
        let ran = bootstrap(tb, &[&[command][..], &rest].concat());
        assert_eq!(ran.code, Some(code), "{command}: {}", ran.stderr);
        assert!(ran.stderr.contains(why), "{command}: {}", ran.stderr);
    }
    assert_unchanged(tb, "node1", &before, "a refused plan and up");
}
