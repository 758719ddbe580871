//! End-to-end: `bootstrap up` against the testbed's hosts on the REAL control plane
//! (issue 9): real apt, dpkg and containerd, the kubeadm and kubectl packages carrying the
//! binaries testbed/k8s/build.sh built (the real `kubeadm init` and `join`, API server,
//! etcd, controller-manager and scheduler), the kubelet stand-in against them
//! (testbed/STANDINS-kubelet-real.md). Inventories are at [`real_version`], a built
//! release; even tests refused before any change run on these hosts, so no simulated
//! kubeadm is ever installed.
//!
//! Needs root (network namespaces, overlays, sshd), the testbed's stand-in binary
//! (`cargo build -p testbed`; `cargo test --workspace` builds it) and the built release
//! (the first test builds it). Every assertion is about a real outcome on the hosts: node
//! objects read with kubectl on the control plane, files read from the hosts, the hosts'
//! audit logs of every command that ran.

mod support;

use std::path::Path;

use serde_json::Value;
use support::snapshot::{assert_converged_up, assert_unchanged, Snapshot};
use support::*;
use testbed::{HostEntry, Os, Testbed};

/// `bootstrap up INVENTORY --log-dir <testbed>/runs --timeout 5m`.
fn up(tb: &Testbed, inv: &Path) -> Ran {
    run_on(tb, &["up", "--timeout", "5m"], inv, &[])
}

fn read(tb: &Testbed, host: &str, path: &str) -> String {
    String::from_utf8_lossy(&tb.read_file(host, path).unwrap()).into_owned()
}

/// The node objects, straight from the control plane.
fn nodes(tb: &Testbed, cp: &str) -> Vec<Value> {
    let mut argv = KUBECTL.to_vec();
    argv.extend(["get", "nodes", "-o", "json"]);
    let v: Value = serde_json::from_str(&exec(tb, cp, &argv)).unwrap();
    v["items"].as_array().cloned().unwrap_or_default()
}

fn is_ready(node: &Value) -> bool {
    node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// The node objects once the cluster has settled: the API server answers (it is still
/// starting for a while after its host boots), there are `count` nodes, every one
/// Ready and without the node lifecycle controller's node.kubernetes.io/* taints (lifted
/// a monitor period after Ready). Waits up to 180 s, then returns what there is for the
/// caller's assertions.
fn settled_nodes(tb: &Testbed, cp: &str, count: usize) -> Vec<Value> {
    let mut argv = KUBECTL.to_vec();
    argv.extend(["get", "nodes", "-o", "json"]);
    for _ in 0..180 {
        let out = tb.exec(cp, &argv).unwrap();
        let nodes: Vec<Value> = serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| v["items"].as_array().cloned())
            .unwrap_or_default();
        if out.status.success()
            && nodes.len() == count
            && nodes.iter().all(|n| is_ready(n) && !has_lifecycle_taint(n))
        {
            return nodes;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    nodes(tb, cp)
}

/// Asserts every host is a Ready node at [`real_version`] with its labels and exactly
/// its taints (controller-managed node.kubernetes.io/* taints aside), once the cluster
/// has settled ([`settled_nodes`]).
fn assert_cluster(tb: &Testbed, hosts: &[HostEntry], decls: &[Decl]) {
    let nodes = settled_nodes(tb, &hosts[0].name, hosts.len());
    assert_eq!(nodes.len(), hosts.len(), "{nodes:#?}");
    for (h, d) in hosts.iter().zip(decls) {
        let n = nodes
            .iter()
            .find(|n| n["metadata"]["name"] == h.name.as_str())
            .unwrap_or_else(|| panic!("no node {}", h.name));
        assert!(is_ready(n), "{} not Ready: {n:#}", h.name);
        assert_eq!(
            n["status"]["nodeInfo"]["kubeletVersion"],
            format!("v{}", real_version()).as_str()
        );
        for (k, v) in d.labels {
            assert_eq!(n["metadata"]["labels"][k], *v, "{}: label {k}", h.name);
        }
        let mut have: Vec<String> = n["spec"]["taints"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|t| {
                !t["key"]
                    .as_str()
                    .unwrap()
                    .starts_with("node.kubernetes.io/")
            })
            .map(|t| match t["value"].as_str() {
                Some(v) if !v.is_empty() => format!(
                    "{}={v}:{}",
                    t["key"].as_str().unwrap(),
                    t["effect"].as_str().unwrap()
                ),
                _ => format!(
                    "{}:{}",
                    t["key"].as_str().unwrap(),
                    t["effect"].as_str().unwrap()
                ),
            })
            .collect();
        have.sort();
        let mut want: Vec<String> = match d.taints {
            Some(t) => t.iter().map(|s| s.to_string()).collect(),
            None if d.role == "control-plane" => {
                vec!["node-role.kubernetes.io/control-plane:NoSchedule".into()]
            }
            None => vec![],
        };
        want.sort();
        assert_eq!(have, want, "{}: taints", h.name);
    }
}

/// Asserts the host-level outcomes of reference §1-§3 on one host.
fn assert_host_files(tb: &Testbed, host: &str) {
    let version = real_version();
    let list = read(tb, host, "/etc/apt/sources.list.d/kubernetes.list");
    assert_eq!(
        list.trim(),
        format!(
            "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v{}/deb/ /",
            minor(&version)
        )
    );
    let mut held: Vec<String> = exec(tb, host, &["apt-mark", "showhold"])
        .lines()
        .map(str::to_string)
        .collect();
    held.sort();
    assert_eq!(held, ["kubeadm", "kubectl", "kubelet"], "{host}: held");
    let toml = read(tb, host, "/etc/containerd/config.toml");
    assert!(toml.contains("SystemdCgroup = true"), "{host}: {toml}");
    assert!(!toml.contains("SystemdCgroup = false"), "{host}");
    assert_eq!(
        read(tb, host, "/etc/modules-load.d/k8s.conf"),
        "overlay\nbr_netfilter\n"
    );
    let sysctl = read(tb, host, "/etc/sysctl.d/k8s.conf");
    for key in [
        "net.bridge.bridge-nf-call-iptables",
        "net.bridge.bridge-nf-call-ip6tables",
        "net.ipv4.ip_forward",
    ] {
        assert!(
            sysctl
                .lines()
                .any(|l| l.starts_with(key) && l.trim_end().ends_with("= 1")),
            "{host}: {key} in {sysctl}"
        );
    }
    let fstab = read(tb, host, "/etc/fstab");
    let swap: Vec<&str> = fstab
        .lines()
        .filter(|l| l.split_whitespace().nth(2) == Some("swap"))
        .collect();
    assert!(!swap.is_empty(), "{host}: the swap line vanished: {fstab}");
    assert!(
        swap.iter().all(|l| l.starts_with('#')),
        "{host}: swap still on in fstab: {swap:?}"
    );
    assert_eq!(
        exec(tb, host, &["swapon", "--show", "--noheadings"]).trim(),
        ""
    );
    for pkg in ["kubelet", "kubeadm", "kubectl"] {
        let v = exec(tb, host, &["dpkg-query", "-W", "-f=${Version}", pkg]);
        assert!(v.starts_with(&format!("{version}-")), "{host}: {pkg} {v}");
    }
}

/// "1.35" of "1.35.4".
fn minor(version: &str) -> &str {
    version.rsplit_once('.').map_or(version, |(m, _)| m)
}

/// What changed in the cluster and on the hosts since `before`, apart from the API
/// server's record of who wrote which field (`managedFields`).
fn changes_besides_managers(tb: &Testbed, before: &Snapshot) -> Vec<String> {
    Snapshot::of(tb, "node1")
        .changes(before)
        .into_iter()
        .filter(|l| !l.contains(".metadata.managedFields"))
        .collect()
}

#[test]
fn three_hosts_converge_and_a_second_run_changes_nothing() {
    let tb = real_testbed(3);
    let decls = article_decls();
    let inv = real_inventory(&tb, &decls);
    let first = up(&tb, &inv);
    assert!(first.ok(), "first up failed:\n{}", first.stderr);
    let hosts = tb.hosts();
    assert_cluster(&tb, &hosts, &decls);
    for h in &hosts {
        assert_host_files(&tb, &h.name);
    }
    // The join token (the one `up` created) is in neither the output nor the run log.
    assert_tokens_secret(&tb, &first.stderr);

    assert_converged_up(&tb, &inv, "the second run");
    assert_cluster(&tb, &hosts, &decls);

    // Someone changes a label and adds a taint by hand: the next run puts back the label
    // the inventory declares and leaves the taint, which the tool never managed, alone.
    let mut argv = KUBECTL.to_vec();
    argv.extend(["label", "node", "node2", "type=other", "--overwrite"]);
    exec(&tb, "node1", &argv);
    let mut argv = KUBECTL.to_vec();
    argv.extend(["taint", "node", "node2", "extra=x:NoSchedule"]);
    exec(&tb, "node1", &argv);
    let before = Snapshot::of(&tb, "node1");
    let third = up(&tb, &inv);
    assert!(third.ok(), "third up failed:\n{}", third.stderr);
    assert!(
        third
            .stderr
            .contains("label type=wordpress (was type=other)"),
        "{}",
        third.stderr
    );
    assert!(!third.stderr.contains("extra"), "{}", third.stderr);
    assert_eq!(
        changes_besides_managers(&tb, &before),
        ["~ cluster v1 Node /node2.metadata.labels.type: \"other\" -> \"wordpress\""]
    );
    let mut argv = KUBECTL.to_vec();
    argv.extend(["taint", "node", "node2", "extra=x:NoSchedule-"]);
    exec(&tb, "node1", &argv);
    assert_cluster(&tb, &hosts, &decls);
}

/// Every bootstrap token that exists on the control plane is absent from `stderr` and
/// from every file of the run logs.
fn assert_tokens_secret(tb: &Testbed, stderr: &str) {
    let list = exec(tb, "node1", &["kubeadm", "token", "list"]);
    let tokens: Vec<&str> = list
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        !tokens.is_empty(),
        "no bootstrap token on the control plane:\n{list}"
    );
    let mut texts = vec![stderr.to_string()];
    for run in std::fs::read_dir(tb.dir().join("runs")).unwrap() {
        for f in std::fs::read_dir(run.unwrap().path()).unwrap() {
            texts.push(std::fs::read_to_string(f.unwrap().path()).unwrap());
        }
    }
    for token in &tokens {
        let secret = token.split('.').nth(1).unwrap_or(token);
        for t in &texts {
            assert!(!t.contains(secret), "token {token} leaked into:\n{t}");
        }
    }
}

/// The article's scenario end to end: `up` with inventory.example's layout, then the
/// MySQL and WordPress manifests of examples/wordpress/ and a scale-out; every pod lands
/// where the labels (and the removed control-plane taint) say.
#[test]
fn the_article_workloads_land_where_the_labels_say() {
    let tb = real_testbed(2);
    let decls = article_decls()[..2].to_vec();
    let inv = real_inventory(&tb, &decls);
    let run = up(&tb, &inv);
    assert!(run.ok(), "up failed:\n{}", run.stderr);
    assert_wordpress_where_the_labels_say(&tb, "node1");
}

/// One untainted control plane labelled type=mysql, built once by `up` and then put
/// through every single-host check below in turn. Each check was a test of its own with a
/// cluster of its own (five `up`s from scratch where one does, and CI's time is mostly
/// spent building clusters): the checks that only read come first, the one that changes
/// the host last. Each is named on stderr (`check!`) so a failure says which one it was.
#[test]
fn a_single_control_plane_host() {
    let tb = real_testbed(1);
    let decls = vec![Decl::new("control-plane", &[("type", "mysql")], Some(&[]))];
    let inv = real_inventory(&tb, &decls);
    let run = up(&tb, &inv);
    assert!(run.ok(), "up failed:\n{}", run.stderr);
    check!(single_node_cluster_runs_pods_on_its_control_plane(
        &tb, &decls
    ));
    check!(conntrack_is_installed_where_the_kubelet_does_not_depend_on_it(&tb));
    check!(package_installs_keep_conffiles_and_defer_needrestart(&tb));
    check!(containerd_sandbox_image_is_kubeadm_s_pause_image(&tb, &inv));
    check!(host_drift_is_fixed_by_exactly_the_fixing_steps(
        &tb, &inv, &decls
    ));
}

/// The node is Ready with its label and without the control-plane taint, and the host
/// files are as `up` writes them.
fn single_node_cluster_runs_pods_on_its_control_plane(tb: &Testbed, decls: &[Decl]) {
    assert_cluster(tb, &tb.hosts(), decls);
    assert_host_files(tb, "node1");
}

/// kubeadm below 1.32 requires the conntrack binary in its preflight, and pkgs.k8s.io's
/// kubelet no longer depends on it from 1.35: bootstrap installs it with the
/// prerequisites, so it is there on a release whose kubelet does not pull it in.
fn conntrack_is_installed_where_the_kubelet_does_not_depend_on_it(tb: &Testbed) {
    // The release under test: its kubelet does not depend on conntrack.
    let depends = exec(
        tb,
        "node1",
        &["dpkg-query", "-W", "-f=${Depends}", "kubelet"],
    );
    assert!(!depends.contains("conntrack"), "kubelet Depends: {depends}");
    let path = exec(tb, "node1", &["sh", "-c", "command -v conntrack"]);
    assert_eq!(path.trim(), "/usr/sbin/conntrack");
    let status = exec(
        tb,
        "node1",
        &["dpkg-query", "-W", "-f=${Status}", "conntrack"],
    );
    assert_eq!(status, "install ok installed");
    // Installed by the prerequisites' apt-get install, as the audit log shows.
    let audit = tb.audit("node1").unwrap();
    assert!(
        audit.iter().any(|r| r.kind == "ssh"
            && r.argv.iter().any(|a| a.contains("apt-get")
                && a.contains("install -y")
                && a.contains("curl gpg conntrack"))),
        "no apt-get install of conntrack in the audit log"
    );
}

/// From 1.35 the kubelet refuses a host booted with cgroup v1 (failCgroupV1), and kubeadm's
/// preflight says so after the packages are in: such a host is refused before any change,
/// for 1.35 and newer only. (Testbed hosts boot with cgroup v2, as Ubuntu does.)
#[test]
fn a_cgroup_v1_host_is_refused_before_any_change_from_1_35() {
    let tb = real_testbed(1);
    // As if booted with systemd.unified_cgroup_hierarchy=0: v1 hierarchies on a tmpfs.
    exec(
        &tb,
        "node1",
        &[
            "sh",
            "-c",
            "mount -t tmpfs tmpfs /sys/fs/cgroup && mkdir /sys/fs/cgroup/memory",
        ],
    );
    let decls = plain_decls(0);
    let at = |version: &str| {
        Inventory {
            version,
            ..Inventory::new(&decls)
        }
        .write(&tb)
    };
    let named = "it runs cgroup v1 (/sys/fs/cgroup is tmpfs, not cgroup2fs)";
    let plan = run_on(&tb, &["plan"], &at("1.34.2"), &[]);
    // Changes pending, nothing refused: 1.34's kubelet still runs on cgroup v1.
    assert_eq!(plan.code, Some(2), "{}", plan.stderr);
    let plan = run_on(&tb, &["plan"], &at(&real_version()), &[]);
    assert_eq!(plan.code, Some(5), "{}", plan.stderr);
    assert!(plan.stderr.contains(named), "{}", plan.stderr);
    let before = Snapshot::of(&tb, "node1");
    let run = up(&tb, &at(&real_version()));
    assert!(!run.ok());
    assert!(run.stderr.contains(named), "{}", run.stderr);
    assert_unchanged(&tb, "node1", &before, "a refused up");
}

/// Every package installation `up` runs keeps changed conffiles without asking and
/// leaves restarts to needrestart's list mode, as the hosts' audit log shows.
fn package_installs_keep_conffiles_and_defer_needrestart(tb: &Testbed) {
    let installs: Vec<String> = tb
        .audit("node1")
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == "ssh")
        .flat_map(|r| r.argv)
        .filter(|a| a.contains("bootstrap_dpkg_wait apt-get") && a.contains(" install -y"))
        .collect();
    // apt-prereqs, docker-io, kube-packages.
    assert_eq!(installs.len(), 3, "{installs:#?}");
    for script in &installs {
        assert!(
            script.contains("export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l\n"),
            "{script}"
        );
        assert!(
            script.contains(
                "apt-get -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confold install -y"
            ),
            "{script}"
        );
    }
}

/// containerd's sandbox (pause) image is the one the cluster's kubeadm uses, read from
/// `kubeadm config images list` on the host (not a tag bootstrap carries), so kubeadm's
/// preflight does not warn and the node keeps one pause image; the next run changes
/// nothing.
fn containerd_sandbox_image_is_kubeadm_s_pause_image(tb: &Testbed, inv: &Path) {
    let images = exec(
        tb,
        "node1",
        &[
            "kubeadm",
            "config",
            "images",
            "list",
            "--kubernetes-version",
            &format!("v{}", real_version()),
        ],
    );
    let pause = images
        .lines()
        .find(|l| l.contains("/pause:"))
        .unwrap_or_else(|| panic!("no pause image in:\n{images}"));
    let config = read(tb, "node1", "/etc/containerd/config.toml");
    let sandbox: Vec<&str> = config
        .lines()
        .filter(|l| l.trim_start().starts_with("sandbox_image = "))
        .collect();
    assert_eq!(
        sandbox,
        [format!("    sandbox_image = \"{pause}\"")],
        "{config}"
    );
    // The running containerd has it too (it reads the file only when it starts).
    let dump = exec(tb, "node1", &["containerd", "config", "dump"]);
    assert!(
        dump.contains(&format!("sandbox_image = \"{pause}\"")),
        "{dump}"
    );
    let again = run_on(tb, &["plan"], inv, &[]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
}

#[test]
fn non_root_user_through_sudo() {
    let tb = real_testbed_as(2, "ubuntu");
    let decls = vec![
        Decl {
            role: "control-plane",
            labels: &[],
            taints: None,
        },
        Decl {
            role: "worker",
            labels: &[("type", "wordpress")],
            taints: None,
        },
    ];
    let inv = real_inventory(&tb, &decls);
    let run = up(&tb, &inv);
    assert!(run.ok(), "up failed:\n{}", run.stderr);
    let hosts = tb.hosts();
    assert_cluster(&tb, &hosts, &decls);
    for h in &hosts {
        assert_host_files(&tb, &h.name);
        // The commands arrived as the ubuntu user and ran as root through sudo.
        let audit = tb.audit(&h.name).unwrap();
        assert!(
            audit.iter().any(|r| r.kind == "ssh" && r.user == "ubuntu"),
            "{}: no ssh command as ubuntu",
            h.name
        );
    }
}

#[test]
fn refuses_a_host_that_is_not_ubuntu_and_changes_nothing() {
    let tb = real_builder(1)
        .os(Os::Debian12)
        .build()
        .expect("a real-Kubernetes testbed");
    assert_refused_before_any_change(&tb, &["Debian", "Ubuntu 22.04 and 24.04"]);
}

/// A host that already has a pkgs.k8s.io source of its own, with another keyring (an
/// older install guide's): with the real apt, bootstrap's kubernetes.list next to it
/// would make every apt command fail ("Conflicting values set for option Signed-By").
/// `plan` and `up` refuse the host before any change, naming the file and line.
#[test]
fn another_kubernetes_source_with_another_keyring_is_refused_before_any_change() {
    let tb = real_testbed(1);
    // The repository bootstrap adds too (the inventory's minor), so apt would conflict.
    let list = format!(
        "deb [signed-by=/usr/share/keyrings/kubernetes-archive-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v{}/deb/ /\n",
        minor(&real_version())
    );
    let out = tb
        .exec_with_input(
            "node1",
            &["sh", "-c", "cat > /etc/apt/sources.list.d/k8s.list"],
            Some(list.as_bytes()),
        )
        .unwrap();
    assert!(out.status.success());
    let named = "/etc/apt/sources.list.d/k8s.list:1 is a pkgs.k8s.io source with signed-by /usr/share/keyrings/kubernetes-archive-keyring.gpg";
    let inv = real_inventory(&tb, &plain_decls(0));
    let plan = run_on(&tb, &["plan"], &inv, &[]);
    // plan, like up: 5, refused (docs/output.md).
    assert_eq!(plan.code, Some(5), "{}", plan.stderr);
    assert!(plan.stderr.contains(named), "{}", plan.stderr);
    assert_refused_before_any_change(&tb, &[named, "Conflicting values set for option Signed-By"]);
}

/// A containerd 1.6 installed by hand (a release binary in /usr/local/bin, first on
/// sudo's secure_path, as containerd's getting-started guide installs it): the offered
/// Kubernetes releases need 1.7, so plan and up refuse the host before any change,
/// naming the host and the version found.
#[test]
fn a_containerd_older_than_1_7_is_refused_before_any_change() {
    let tb = real_testbed(1);
    // What containerd 1.6.28 prints for --version (cmd/containerd/command/main.go:
    // app name, package, version, revision); nothing else of it is needed before the
    // refusal.
    let old = "#!/bin/sh\n[ \"$1\" = --version ] || exit 1\n\
               echo 'containerd github.com/containerd/containerd v1.6.28 ae07eda36dd25f8a1b98dfbf587313b99c0190bb'\n";
    let out = tb
        .exec_with_input(
            "node1",
            &[
                "sh",
                "-c",
                "install -m 0755 /dev/stdin /usr/local/bin/containerd",
            ],
            Some(old.as_bytes()),
        )
        .unwrap();
    assert!(out.status.success());
    let named = "containerd 1.6.28 is installed (`containerd --version`); the Kubernetes \
                 releases bootstrap offers need containerd 1.7 or newer";
    let inv = real_inventory(&tb, &plain_decls(0));
    let plan = run_on(&tb, &["plan"], &inv, &[]);
    assert_eq!(plan.code, Some(5), "{}", plan.stderr);
    assert!(plan.stderr.contains("node1"), "{}", plan.stderr);
    assert!(plan.stderr.contains(named), "{}", plan.stderr);
    assert_refused_before_any_change(&tb, &[named]);
}

/// `up` on the testbed's one host as a control plane fails, saying every one of `texts`,
/// and changes nothing.
fn assert_refused_before_any_change(tb: &Testbed, texts: &[&str]) {
    let inv = real_inventory(tb, &plain_decls(0));
    let before = Snapshot::of(tb, "node1");
    let run = up(tb, &inv);
    assert!(!run.ok());
    for text in texts {
        assert!(run.stderr.contains(text), "{}", run.stderr);
    }
    assert_unchanged(tb, "node1", &before, "a refused up");
}

#[test]
fn validate_reports_ok() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inv.yaml");
    std::fs::write(
        &inv,
        "cluster: {name: demo}\nhosts:\n  - {name: master, address: 10.0.0.10, role: control-plane}\n",
    )
    .unwrap();
    let run = run_bootstrap(&["validate", inv.to_str().unwrap()], &[]);
    assert!(run.ok(), "{}", run.stderr);
    assert!(run.stdout.contains("OK"), "{}", run.stdout);
}

#[test]
fn refuses_more_than_one_control_plane_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inv.yaml");
    std::fs::write(
        &inv,
        "cluster: {name: demo}\nhosts:\n  - {name: a, address: 10.0.0.10, role: control-plane}\n  - {name: b, address: 10.0.0.11, role: control-plane}\n",
    )
    .unwrap();
    let runs = dir.path().join("runs");
    let run = run_bootstrap(
        &[
            "up",
            inv.to_str().unwrap(),
            "--log-dir",
            runs.to_str().unwrap(),
        ],
        &[],
    );
    // Refused as an invalid inventory, naming the line, by up and validate alike
    // (validate used to accept it).
    let second = "inv.yaml:4:41: hosts[1].role: a second control plane";
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert!(run.stderr.contains(second), "{}", run.stderr);
    let validate = run_bootstrap(&["validate", inv.to_str().unwrap()], &[]);
    assert_eq!(validate.code, Some(3), "{}", validate.stderr);
    assert!(validate.stderr.contains(second), "{}", validate.stderr);
}

/// A worker whose kubelet port is taken (a stray service listens on 10250): the real
/// `kubeadm join` fails its preflight with kubeadm's own error, the run stops before the
/// later phases (Calico, labels) with that host and step named, and the other worker still
/// joined. Once the port is free a re-run builds the whole cluster.
#[test]
fn a_failed_join_stops_later_phases_and_a_rerun_recovers() {
    let tb = real_testbed(3);
    let decls = article_decls();
    let inv = real_inventory(&tb, &decls);
    let port_taken = testbed::Fault::PortInUse { port: 10250 };
    tb.fault("node3", port_taken.clone()).unwrap();
    let first = up(&tb, &inv);
    assert!(!first.ok(), "up succeeded despite the failed join");
    // The summary names the host and the step; the other worker still joined.
    let row = first
        .stderr
        .lines()
        .find(|l| l.starts_with("node3 "))
        .unwrap_or_else(|| panic!("no summary row for node3:\n{}", first.stderr));
    assert!(row.contains("FAILED"), "{row}");
    assert!(
        first.stderr.contains("node3: kubeadm-join"),
        "{}",
        first.stderr
    );
    assert!(
        first
            .stderr
            .contains("[ERROR Port-10250]: Port 10250 is in use"),
        "{}",
        first.stderr
    );
    exec(
        &tb,
        "node2",
        &["test", "-e", "/etc/kubernetes/kubelet.conf"],
    );
    // kubeadm stopped in its preflight: node3 never joined.
    let out = tb
        .exec("node3", &["test", "-e", "/etc/kubernetes/kubelet.conf"])
        .unwrap();
    assert!(!out.status.success(), "node3 has a kubelet.conf");
    // Later phases did not start: no Calico, no labels.
    let mut argv = KUBECTL.to_vec();
    argv.extend(["-n", "kube-system", "get", "daemonset", "calico-node"]);
    assert!(!tb.exec("node1", &argv).unwrap().status.success());
    assert!(!first.stderr.contains("[cni] start"), "{}", first.stderr);

    tb.clear_fault("node3", &port_taken.file_name()).unwrap();
    let second = up(&tb, &inv);
    assert!(
        second.ok(),
        "the re-run did not recover:\n{}",
        second.stderr
    );
    assert_cluster(&tb, &tb.hosts(), &decls);
}

#[test]
fn an_unreachable_host_stops_the_run_before_any_change() {
    let tb = real_testbed(2);
    let inv = real_inventory(&tb, &plain_decls(1));
    tb.stop("node2").unwrap();
    let before = Snapshot::of(&tb, "node1");
    let run = up(&tb, &inv);
    assert!(!run.ok());
    assert!(run.stderr.contains("node2"), "{}", run.stderr);
    assert!(run.stderr.contains("cannot connect"), "{}", run.stderr);
    assert_unchanged(&tb, "node1", &before, "an up that cannot reach node2");
}

#[test]
fn air_gapped_calico_from_a_local_manifest_file() {
    let tb = real_testbed(1);
    let url = format!(
        "https://raw.githubusercontent.com/projectcalico/calico/{CALICO}/manifests/calico.yaml"
    );
    // The file an air-gapped site would have downloaded elsewhere.
    let manifest = exec(&tb, "node1", &["curl", "-fsSL", &url]);
    assert!(manifest.contains("calico-node"), "{manifest}");
    std::fs::write(tb.dir().join("calico-local.yaml"), &manifest).unwrap();
    let decls = vec![Decl::new("control-plane", &[], Some(&[]))];
    let version = real_version();
    let inv = Inventory {
        version: &version,
        calico_manifest: "calico-local.yaml",
        ..Inventory::new(&decls)
    }
    .write(&tb);
    // The site's image carries the packages (installed while it was built, online):
    // here a first up installs them and `reset` (without --purge) keeps them.
    assert!(up(&tb, &inv).ok());
    let reset = run_on(&tb, &["reset", "--yes"], &inv, &[]);
    assert!(reset.ok(), "reset failed:\n{}", reset.stderr);
    // From now on no public name resolves on the host, and each attempt is recorded.
    tb.air_gap("node1").unwrap();
    let mark = tb.audit("node1").unwrap().len();
    let run = up(&tb, &inv);
    assert!(run.ok(), "up failed:\n{}", run.stderr);
    assert_eq!(
        tb.public_lookups("node1").unwrap(),
        Vec::<String>::new(),
        "the air-gapped host looked up public names"
    );
    assert_cluster(&tb, &tb.hosts(), &decls);
    // Applied from stdin, not fetched by the host: the one command that applied Calico
    // read the manifest from its stdin and fed it to `kubectl apply -f -`, and the host
    // ran no curl (the hosts' curl is recorded in the audit log).
    let since = &tb.audit("node1").unwrap()[mark..];
    let applies: Vec<&String> = since
        .iter()
        .filter(|r| r.kind == "ssh")
        .flat_map(|r| &r.argv)
        .filter(|a| a.contains("kubectl --kubeconfig /etc/kubernetes/admin.conf apply"))
        .collect();
    assert_eq!(applies.len(), 1, "{applies:#?}");
    assert!(
        applies[0].contains("manifest=$(cat)") && applies[0].contains("admin.conf apply -f -"),
        "{}",
        applies[0]
    );
    let curls: Vec<_> = since
        .iter()
        .filter(|r| r.kind == "cmd" && r.argv.first().is_some_and(|a| a == "curl"))
        .collect();
    assert!(curls.is_empty(), "{curls:#?}");
    // The check itself: a public name is refused and recorded.
    let out = tb.exec("node1", &["curl", "-fsSL", &url]).unwrap();
    assert!(!out.status.success());
    assert_eq!(
        tb.public_lookups("node1").unwrap(),
        ["raw.githubusercontent.com"]
    );
}

#[test]
fn a_user_whose_sudo_wants_a_password_is_refused_before_any_change() {
    let tb = real_builder(1)
        .user("ubuntu")
        .sudo_password(true)
        .build()
        .expect("a real-Kubernetes testbed");
    assert_refused_before_any_change(&tb, &["sudo", "a password is required"]);
}

/// Swap switched back on and a package unheld by hand: `up` runs exactly the two steps
/// that fix them and changes nothing else.
fn host_drift_is_fixed_by_exactly_the_fixing_steps(tb: &Testbed, inv: &Path, decls: &[Decl]) {
    let converged = Snapshot::of(tb, "node1");
    // Swap back on (by hand, not through fstab) and a package unheld.
    exec(tb, "node1", &["swapon", "/swap.img"]);
    exec(tb, "node1", &["apt-mark", "unhold", "kubeadm"]);
    let run = run_on(tb, &["up", "--output", "json"], inv, &[]);
    assert!(run.ok(), "up failed:\n{}", run.stderr);
    let doc = run.document();
    // The playbook steps that ran (`NAME: what it does`; the rest are reads).
    let steps: Vec<&str> = doc["hosts"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["step"].as_str().unwrap().split_once(": "))
        .map(|(name, _)| name)
        .collect();
    assert_eq!(steps, ["swap-off", "hold"], "{doc:#}");
    // What was fixed is as before, and nothing else changed.
    assert_unchanged(tb, "node1", &converged, "the fixing up");
    assert_eq!(exec(tb, "node1", &["swapon", "--show"]), "");
    assert_host_files(tb, "node1");
    assert_cluster(tb, &tb.hosts(), decls);
}

#[test]
fn a_rebooted_cluster_needs_nothing() {
    let tb = real_testbed(2);
    let decls = vec![
        Decl {
            role: "control-plane",
            labels: &[],
            taints: None,
        },
        Decl {
            role: "worker",
            labels: &[("type", "wordpress")],
            taints: None,
        },
    ];
    let inv = real_inventory(&tb, &decls);
    assert!(up(&tb, &inv).ok());
    // Kernel state (swap, modules, sysctls) is rebuilt from the files `up` wrote.
    for h in ["node2", "node1"] {
        tb.stop(h).unwrap();
        tb.start(h).unwrap();
    }
    // The control plane comes back by itself (the kubelet starts its static pods): the
    // observation before the run needs its API server answering and the nodes Ready.
    settled_nodes(&tb, "node1", 2);
    assert_converged_up(&tb, &inv, "up after a reboot");
    assert_cluster(&tb, &tb.hosts(), &decls);
}

/// A cloud VM's first minutes, with the real apt: apt-daily's `apt-get update` holds
/// apt's lists lock (and dpkg's frontend lock) for 30 s when `up` starts. apt-get
/// update does not wait for that lock (DPkg::Lock::Timeout covers dpkg's only) and fails
/// at once, so `bootstrap` retries it (templates/dpkg-lock.sh) and the run succeeds.
/// Held longer than the inventory's `packageLockWait` (5 s here), the run stops at that
/// step with apt's own error, naming the host and the step.
#[test]
fn up_waits_while_apt_daily_holds_the_lists_lock() {
    let tb = real_builder(1)
        .name_prefix("aptdaily")
        .build()
        .expect("a real-Kubernetes testbed");
    let decls = plain_decls(0);
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    let version = real_version();
    let short = Inventory {
        version: &version,
        package_lock_wait: "5s",
        ..Inventory::new(&decls)
    }
    .write(&tb);
    let apt_daily = |secs: f64| {
        tb.fault(
            "aptdaily1",
            testbed::Fault::AptDaily {
                until: now() + secs,
            },
        )
        .unwrap()
    };
    apt_daily(120.0);
    let run = up_json(&tb, &short);
    assert_step_failed(
        &run,
        "aptdaily1",
        "apt-lists",
        &[
            "E: Could not get lock /var/lib/apt/lists/lock. It is held by process ",
            "(apt-get)\nE: Unable to lock directory /var/lib/apt/lists/\n",
            "gave up: another process held apt's lists lock for ",
        ],
    );
    // apt-daily ends (its holder lets go once the fault is cleared); the locks are free
    // once the process is gone.
    tb.clear_fault("aptdaily1", "apt-daily.json").unwrap();
    let out = tb
        .exec(
            "aptdaily1",
            &[
                "sh",
                "-c",
                "i=0; while pgrep -x apt-get >/dev/null && [ $i -lt 200 ]; \
                 do sleep 0.05; i=$((i+1)); done; ! pgrep -x apt-get",
            ],
        )
        .unwrap();
    assert!(out.status.success(), "apt-daily did not end: {out:?}");

    let inv = real_inventory(&tb, &decls);
    apt_daily(30.0);
    let run = up(&tb, &inv);
    assert!(run.ok(), "up failed:\n{}", run.stderr);
    assert_cluster(&tb, &tb.hosts(), &decls);
    let logs = files_under(&tb.dir().join("runs"));
    assert!(
        logs.iter()
            .any(|(_, t)| t.contains("waiting for apt's lists lock (")
                && t.contains(
                    "s): E: Could not get lock /var/lib/apt/lists/lock. It is held by process "
                )),
        "no wait for the lists lock in the run logs"
    );
}

/// With the real apt: a host whose lists were fetched before Ubuntu published a newer
/// docker.io (the old .deb gone from the archive, a 404 for stale lists). `up` refreshes
/// the lists before its first install, so it installs the newer docker.io instead of
/// failing on the vanished one.
#[test]
fn stale_lists_are_refreshed_before_the_first_install() {
    let tb = real_builder(1)
        .name_prefix("stale")
        .build()
        .expect("a real-Kubernetes testbed");
    exec(&tb, "stale1", &["apt-get", "update"]);
    tb.publish_ubuntu_update().unwrap();
    // apt's own failure with the old lists: the version they name has left the archive.
    let out = tb
        .exec(
            "stale1",
            &["apt-get", "install", "-y", "--download-only", "docker.io"],
        )
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(100), "{err}");
    assert!(
        err.contains("docker.io_24.0.7-0ubuntu4.1_amd64.deb  404  Not Found"),
        "{err}"
    );
    let decls = plain_decls(0);
    let inv = real_inventory(&tb, &decls);
    let run = up(&tb, &inv);
    assert!(run.ok(), "up failed:\n{}", run.stderr);
    assert_eq!(
        exec(
            &tb,
            "stale1",
            &["dpkg-query", "-W", "-f=${Version}", "docker.io"]
        ),
        "27.5.1-0ubuntu3~24.04.2"
    );
}

/// A package download cut off half-way (a proxy or link that drops, issue 10): the
/// install step fails on that host with apt's own error, exit 6 naming the host, and
/// nothing of the package is left configured; once the archive answers whole again a
/// re-run builds the cluster.
#[test]
fn a_truncated_download_fails_the_install_with_apt_s_error_and_a_rerun_recovers() {
    let tb = real_builder(1)
        .name_prefix("trunc")
        .build()
        .expect("a real-Kubernetes testbed");
    let decls = plain_decls(0);
    let inv = real_inventory(&tb, &decls);
    tb.repo_fault("truncated", "archive.ubuntu.com", true)
        .unwrap();
    let run = up(&tb, &inv);
    assert_eq!(run.code, Some(6), "{}", run.stderr);
    assert!(
        run.stderr.contains("trunc1")
            && run
                .stderr
                .contains("E: Failed to fetch http://archive.ubuntu.com/ubuntu/pool/"),
        "{}",
        run.stderr
    );
    let out = tb
        .exec(
            "trunc1",
            &["dpkg-query", "-W", "-f=${db:Status-Abbrev}", "docker.io"],
        )
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&out.stdout).trim(), "ii");

    tb.repo_fault("truncated", "archive.ubuntu.com", false)
        .unwrap();
    let run = up(&tb, &inv);
    assert!(run.ok(), "up failed:\n{}", run.stderr);
    assert_cluster(&tb, &tb.hosts(), &decls);
}

/// `bootstrap up --output json`: the run document and the exit code.
fn up_json(tb: &Testbed, inv: &Path) -> (Option<i32>, Value, String) {
    let ran = run_on(tb, &["up", "--output", "json", "--timeout", "5m"], inv, &[]);
    let doc = ran.document();
    (ran.code, doc, ran.stderr)
}

/// Asserts a run that stopped with exit 6 at step `step` (its name, as in `step: what it
/// does`) on `host`, its message holding
/// every one of `texts`; returns the message.
fn assert_step_failed(
    run: &(Option<i32>, Value, String),
    host: &str,
    step: &str,
    texts: &[&str],
) -> String {
    let (code, doc, stderr) = run;
    assert_eq!(*code, Some(6), "{stderr}\n{doc:#}");
    assert_eq!(doc["error"]["kind"], "step-failed", "{doc:#}");
    assert_eq!(doc["error"]["host"], host, "{doc:#}");
    let named = doc["error"]["step"].as_str().unwrap();
    assert!(named.starts_with(&format!("{step}: ")), "{named}");
    let message = doc["error"]["message"].as_str().unwrap().to_string();
    for text in texts {
        assert!(message.contains(text), "{text:?} not in {message}");
    }
    message
}

/// A repository that times out, as a real unreachable mirror does: the server takes the
/// connection and the request and never answers (`stall`), or stops sending half-way
/// through a package with the connection left open (`stall-body`). apt gives up after
/// Acquire::http::Timeout (apt's default is 120 s and 3 retries; this host's admin set
/// 3 s and none in apt.conf.d, so the test does not wait minutes) with its own texts;
/// `apt-get update` only warns about an index it could not fetch and exits 0, so
/// bootstrap fails the step itself with apt's lines; curl, which has no timeout of its
/// own, gives up after 30 s of silence. Each run stops with exit 6 naming the host and the
/// step; once the repository answers again a re-run builds the cluster.
#[test]
fn a_repository_that_times_out_fails_the_step_naming_host_and_step_and_a_rerun_recovers() {
    let tb = real_builder(1)
        .name_prefix("stall")
        .build()
        .expect("a real-Kubernetes testbed");
    let conf = "Acquire::http::Timeout \"3\";\nAcquire::Retries \"0\";\n";
    let out = tb
        .exec_with_input(
            "stall1",
            &["sh", "-c", "cat > /etc/apt/apt.conf.d/99timeout"],
            Some(conf.as_bytes()),
        )
        .unwrap();
    assert!(out.status.success());
    let decls = plain_decls(0);
    let inv = real_inventory(&tb, &decls);

    // The Ubuntu archive answers nothing: apt-get update warns and exits 0.
    tb.repo_fault("stall", "archive.ubuntu.com", true).unwrap();
    let run = up_json(&tb, &inv);
    assert_step_failed(
        &run,
        "stall1",
        "apt-lists",
        &[
            "W: Failed to fetch http://archive.ubuntu.com/ubuntu/dists/noble/InRelease  Connection failed [IP: ",
            "W: Some index files failed to download. They have been ignored, or old ones used instead.",
            "apt-get update could not fetch every package index",
        ],
    );
    let out = tb
        .exec("stall1", &["dpkg-query", "-W", "docker.io"])
        .unwrap();
    assert!(!out.status.success(), "docker.io installed");
    tb.repo_fault("stall", "archive.ubuntu.com", false).unwrap();

    // pkgs.k8s.io answers nothing: the repository key's curl gives up.
    tb.repo_fault("stall", "pkgs.k8s.io", true).unwrap();
    let run = up_json(&tb, &inv);
    assert_step_failed(
        &run,
        "stall1",
        "repo-key",
        &["curl: (28) Operation too slow. Less than 1 bytes/sec transferred the last 30 seconds"],
    );
    tb.repo_fault("stall", "pkgs.k8s.io", false).unwrap();

    // pkgs.k8s.io stalls in the middle of each package: apt-get install gives up.
    tb.repo_fault("stall-body", "pkgs.k8s.io", true).unwrap();
    let run = up_json(&tb, &inv);
    assert_step_failed(
        &run,
        "stall1",
        "kube-packages",
        &[
            &format!(
                "E: Failed to fetch https://pkgs.k8s.io/core:/stable:/v{}/deb/amd64/",
                minor(&real_version())
            ),
            "Connection timed out [IP: ",
        ],
    );
    let out = tb.exec("stall1", &["dpkg-query", "-W", "kubeadm"]).unwrap();
    assert!(!out.status.success(), "kubeadm installed");
    tb.repo_fault("stall-body", "pkgs.k8s.io", false).unwrap();

    let run = up(&tb, &inv);
    assert!(run.ok(), "up failed:\n{}", run.stderr);
    assert_cluster(&tb, &tb.hosts(), &decls);
}

/// Plays unattended-upgrades starting in the middle of a run: once bootstrap's first
/// install (docker.io) is done and the repository key is being fetched (a `slow` curl
/// makes that a 6 s window), a process `unattended-upgr` takes dpkg's locks for `secs`.
fn unattended_upgrades_mid_run(tb: &Testbed, host: &str, secs: f64) {
    tb.fault(
        host,
        testbed::Fault::Slow {
            command: "curl".into(),
            seconds: 6.0,
        },
    )
    .unwrap();
    for _ in 0..6000 {
        let out = tb.exec(host, &["pgrep", "-x", "curl"]).unwrap();
        if out.status.success() {
            let docker = exec(
                tb,
                host,
                &["dpkg-query", "-W", "-f=${db:Status-Abbrev}", "docker.io"],
            );
            assert_eq!(
                docker.trim(),
                "ii",
                "curl ran before docker.io was installed"
            );
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            tb.fault(host, testbed::Fault::DpkgLock { until: now + secs })
                .unwrap();
            tb.clear_fault(host, "slow-curl.json").unwrap();
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("{host}: the repository key was never fetched");
}

/// unattended-upgrades takes dpkg's lock in the middle of a run, after docker.io was
/// installed and before kubelet, kubeadm and kubectl are: apt-get waits for it
/// (DPkg::Lock::Timeout) and `apt-mark hold` is retried (templates/dpkg-lock.sh), so the
/// run succeeds. With `packageLockWait: 5s` and the lock held longer, the install fails
/// with apt's own error, naming the host and step; a re-run once it is gone converges.
#[test]
fn unattended_upgrades_mid_run_is_waited_for_and_apt_s_error_when_it_outlasts_the_wait() {
    let tb = real_builder(1)
        .name_prefix("uu")
        .build()
        .expect("a real-Kubernetes testbed");
    let decls = plain_decls(0);
    let version = real_version();
    let short = Inventory {
        version: &version,
        package_lock_wait: "5s",
        ..Inventory::new(&decls)
    }
    .write(&tb);
    let run = std::thread::scope(|s| {
        let run = s.spawn(|| up_json(&tb, &short));
        unattended_upgrades_mid_run(&tb, "uu1", 120.0);
        run.join().unwrap()
    });
    assert_step_failed(
        &run,
        "uu1",
        "kube-packages",
        // apt's "Waiting for cache lock: ... (unattended-upgr)" progress lines are
        // throttled (OpTextProgress) and may be missing; its final error is not.
        &[
            "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?",
            "(apt-get's DPkg::Lock::Timeout ran out)",
        ],
    );
    let out = tb.exec("uu1", &["dpkg-query", "-W", "kubeadm"]).unwrap();
    assert!(!out.status.success(), "kubeadm installed");
    drop(tb);

    // A fresh host, the default wait (10 minutes), the lock held 20 s mid-run.
    let tb = real_builder(1)
        .name_prefix("uu")
        .build()
        .expect("a real-Kubernetes testbed");
    let inv = real_inventory(&tb, &decls);
    let run = std::thread::scope(|s| {
        let run = s.spawn(|| up(&tb, &inv));
        unattended_upgrades_mid_run(&tb, "uu1", 20.0);
        run.join().unwrap()
    });
    assert!(run.ok(), "up failed:\n{}", run.stderr);
    assert_cluster(&tb, &tb.hosts(), &decls);
    let logs = files_under(&tb.dir().join("runs"));
    // apt-get's own wait (its progress names the holder) or the wrapper's retry of
    // apt-mark/dpkg shows in the logs.
    assert!(
        logs.iter().any(|(_, t)| (t
            .contains("Could not get lock /var/lib/dpkg/lock-frontend. It is held by process ")
            && t.contains("(unattended-upgr)"))
            || t.contains("waiting for dpkg's lock (")),
        "no wait for unattended-upgrades in the run logs"
    );
}
