//! The reference procedure (kubeadm-on-ubuntu.md §1-§4, §6, §7) typed by hand over OpenSSH,
//! one pasted command string per step, and then the article's WordPress scenario. If the
//! testbed is faithful, what a person does on real Ubuntu servers works here unchanged
//! and ends in the same observable cluster.
//!
//! On the REAL control plane (issue 9): the packages of the built releases (1.35.4, and
//! 1.34.2 where an upgrade starts) carry the real kubeadm and kubectl, which run the
//! real kube-apiserver, etcd, controller-manager and scheduler; the kubelet is the
//! stand-in (STANDINS-kubelet-real.md). The real control plane is eventually
//! consistent, so states a controller reaches (taints lifted, a node Unknown) are polled
//! for.
//!
//! Needs root. `cargo test -p testbed --test procedure`.

mod common;

use common::real::{poll, real_testbed_as};
use common::*;
use serde_json::Value;
use testbed::k8s::DEFAULT_RELEASE;

/// Runs every step as `user` over SSH, failing at the first step that fails.
fn steps<S: AsRef<str>>(tb: &testbed::Testbed, host: &str, user: &str, list: &[S]) {
    for s in list {
        ssh_ok(tb, host, user, s.as_ref());
    }
}

fn json(out: &Out) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", out.stdout))
}

/// The article's MySQL + WordPress, in today's API versions (apps/v1 with selectors).
const ARTICLE_APPS: &str = "kubectl apply -f - <<'EOF'
apiVersion: v1
kind: Service
metadata:
  name: mysql
  labels: {app: mysql}
spec:
  ports:
  - port: 3306
  selector: {app: mysql}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: mysql
  labels: {app: mysql}
spec:
  replicas: 1
  selector:
    matchLabels: {app: mysql}
  template:
    metadata:
      labels: {app: mysql}
    spec:
      nodeSelector: {type: mysql}
      containers:
      - name: mysql
        image: mysql:8.0
        env:
        - {name: MYSQL_ROOT_PASSWORD, value: password}
        ports:
        - containerPort: 3306
---
apiVersion: v1
kind: Service
metadata:
  name: wordpress
  labels: {app: wordpress}
spec:
  type: LoadBalancer
  ports:
  - port: 8080
    targetPort: 80
  selector: {app: wordpress}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: wordpress
  labels: {app: wordpress}
spec:
  replicas: 1
  selector:
    matchLabels: {app: wordpress}
  template:
    metadata:
      labels: {app: wordpress}
    spec:
      nodeSelector: {type: wordpress}
      containers:
      - name: wordpress
        image: wordpress:6-apache
        env:
        - {name: WORDPRESS_DB_HOST, value: mysql}
        - {name: WORDPRESS_DB_PASSWORD, value: password}
        ports:
        - containerPort: 80
EOF";

/// A Node's spec.taints, empty when it has none.
fn taints(node: &Value) -> Vec<Value> {
    node["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn three_hosts_by_hand_then_the_article_scenario() {
    let tb = real_testbed_as(3, "root", &[DEFAULT_RELEASE]);
    let hosts = ["node1", "node2", "node3"];
    let cp = "node1";
    let cp_addr = address(&tb, cp);

    // §1-§3 on every host, at once (one terminal per host, as a person would).
    let tbr = &tb;
    std::thread::scope(|s| {
        for h in hosts {
            s.spawn(move || {
                let tb = tbr;
                steps(tb, h, "root", PREREQUISITES);
                steps(tb, h, "root", RUNTIME);
                steps(tb, h, "root", &k8s_repository(K8S_MINOR));
                steps(tb, h, "root", &k8s_packages(K8S_PACKAGE_VERSION));
                // The results a person would check.
                let out = ssh_ok(
                    tb,
                    h,
                    "root",
                    "swapon --show; sysctl -n net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables; \
                     containerd config dump | grep SystemdCgroup; \
                     dpkg-query -W -f='${db:Status-Abbrev}${Version}\\n' kubeadm; \
                     systemctl is-enabled kubelet",
                );
                let lines: Vec<&str> = out.stdout.lines().map(str::trim).collect();
                assert_eq!(
                    lines,
                    [
                        "1",
                        "1",
                        "SystemdCgroup = true",
                        &format!("hi {K8S_PACKAGE_VERSION}"),
                        "enabled"
                    ],
                    "{h}: state after §1-§3"
                );
            });
        }
    });

    // §4 on the first host.
    ssh_ok(&tb, cp, "root", &write_kubeadm_config(cp, &cp_addr, false));
    ssh_ok(&tb, cp, "root", "kubeadm init --config /root/kubeadm.yaml").expect(
        "kubeadm init",
        0,
        &["Your Kubernetes control-plane has initialized successfully!"],
    );
    ssh_ok(&tb, cp, "root", ADMIN_KUBECONFIG);

    // Join material: one line, then pasted as is on the other hosts.
    let join = ssh_ok(&tb, cp, "root", "kubeadm token create --print-join-command");
    assert!(
        join.stdout.ends_with(" \n") && join.stdout.lines().count() == 1,
        "--print-join-command prints one line with a trailing space: {:?}",
        join.stdout
    );
    let line = join.stdout.trim_end_matches('\n');
    assert!(line.starts_with(&format!("kubeadm join {cp_addr}:6443 --token ")));
    let hash = flag_value(line, "--discovery-token-ca-cert-hash");
    assert!(
        hash.len() == 71
            && hash.starts_with("sha256:")
            && hash[7..].chars().all(|c| c.is_ascii_hexdigit()),
        "{hash}"
    );
    for h in &hosts[1..] {
        ssh_ok(&tb, h, "root", line).expect(
            "kubeadm join",
            0,
            &["This node has joined the cluster:"],
        );
    }

    // §6: Calico, then every node Ready.
    let nodes = ssh_ok(&tb, cp, "root", "kubectl get nodes");
    assert!(
        nodes.stdout.contains("NotReady"),
        "nodes are NotReady before a CNI:\n{}",
        nodes.stdout
    );
    ssh_ok(&tb, cp, "root", &format!("kubectl apply -f {CALICO_URL}")).expect(
        "apply calico",
        0,
        &["daemonset.apps/calico-node created"],
    );
    ssh_ok(
        &tb,
        cp,
        "root",
        "kubectl wait --for=condition=Ready node --all --timeout=10m",
    );
    // The node lifecycle controller lifts node.kubernetes.io/not-ready a monitor period
    // after a node reports Ready: wait for that, then every taint must be as expected.
    let nodes = poll(
        &tb,
        "the not-ready taints lifted",
        || json(&ssh_ok(&tb, cp, "root", "kubectl get nodes -o json")),
        &|nodes: &Value| {
            nodes["items"].as_array().unwrap().iter().all(|n| {
                !taints(n).iter().any(|t| {
                    t["key"]
                        .as_str()
                        .unwrap_or_default()
                        .starts_with("node.kubernetes.io/")
                })
            })
        },
    );
    let items = nodes["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{nodes:#}");
    for (i, h) in hosts.iter().enumerate() {
        let n = items
            .iter()
            .find(|n| n["metadata"]["name"] == *h)
            .unwrap_or_else(|| panic!("no node {h}"));
        let ready = n["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "True", "{h}");
        let kv = n["status"]["nodeInfo"]["kubeletVersion"].as_str().unwrap();
        assert_eq!(kv, format!("v{K8S_VERSION}"), "{h}");
        let addrs = n["status"]["addresses"].as_array().unwrap();
        let has = |t: &str, a: &str| addrs.iter().any(|x| x["type"] == t && x["address"] == a);
        assert!(
            has("InternalIP", &address(&tb, h)) && has("Hostname", h),
            "{h}: addresses {addrs:?}"
        );
        // The control plane carries its role label and taint; workers none.
        let taints = taints(n);
        if i == 0 {
            assert!(n["metadata"]["labels"]
                .get("node-role.kubernetes.io/control-plane")
                .is_some());
            assert_eq!(
                taints,
                [
                    serde_json::json!({"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"})
                ]
            );
        } else {
            assert!(taints.is_empty(), "{h}: {taints:?}");
        }
    }

    // §7: the article's labels and taint removal.
    ssh_ok(&tb, cp, "root", "kubectl label nodes node1 type=mysql").expect(
        "label",
        0,
        &["node/node1 labeled"],
    );
    ssh_ok(&tb, cp, "root", "kubectl label nodes node2 type=wordpress");
    ssh_ok(&tb, cp, "root", "kubectl label nodes node3 type=wordpress");
    // Only node1 has the taint: kubectl untaints it and fails on each node without it,
    // one line per node, with a non-zero exit (kubectl's taint.go visits every node; the
    // errors come back together, printed one per line without an `error: ` prefix).
    let out = ssh(
        &tb,
        cp,
        "root",
        "kubectl taint nodes --all node-role.kubernetes.io/control-plane-",
    );
    out.expect("taint --all -", 1, &[]);
    assert_eq!(out.stdout, "node/node1 untainted\n", "{out:?}");
    assert_eq!(
        out.stderr,
        "taint \"node-role.kubernetes.io/control-plane\" not found\n".repeat(2),
        "{out:?}"
    );
    let out = ssh_ok(&tb, cp, "root", "kubectl get node -L type");
    let rows: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "TYPE"],
        "{}",
        out.stdout
    );
    let types: Vec<(&str, &str)> = rows[1..].iter().map(|r| (r[0], r[r.len() - 1])).collect();
    assert_eq!(
        types,
        [
            ("node1", "mysql"),
            ("node2", "wordpress"),
            ("node3", "wordpress")
        ]
    );

    // The article's apps, pinned by nodeSelector, and the scale-out.
    ssh_ok(&tb, cp, "root", ARTICLE_APPS).expect(
        "apply apps",
        0,
        &[
            "service/mysql created",
            "deployment.apps/mysql created",
            "service/wordpress created",
            "deployment.apps/wordpress created",
        ],
    );
    ssh_ok(
        &tb,
        cp,
        "root",
        "kubectl scale deployment wordpress --replicas=2",
    )
    .expect("scale", 0, &["deployment.apps/wordpress scaled"]);
    ssh_ok(
        &tb,
        cp,
        "root",
        "kubectl rollout status deployment/wordpress --timeout=2m && \
         kubectl rollout status deployment/mysql --timeout=2m",
    );
    let wide = ssh_ok(&tb, cp, "root", "kubectl get pods -o wide");
    let header: Vec<&str> = wide
        .stdout
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        &header[..7],
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"],
        "{}",
        wide.stdout
    );
    for row in wide.stdout.lines().skip(1) {
        let c: Vec<&str> = row.split_whitespace().collect();
        assert_eq!((c[1], c[2]), ("1/1", "Running"), "{row}");
        if c[0].starts_with("mysql-") {
            assert_eq!(c[6], "node1", "{row}");
        } else {
            assert!(c[0].starts_with("wordpress-"), "{row}");
            assert!(c[6] == "node2" || c[6] == "node3", "{row}");
        }
    }
    let pods = json(&ssh_ok(&tb, cp, "root", "kubectl get pods -o json"));
    let placed = |app: &str| -> Vec<String> {
        pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["metadata"]["labels"]["app"] == app)
            .inspect(|p| assert_eq!(p["status"]["phase"], "Running", "{p:#}"))
            .map(|p| p["spec"]["nodeName"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(placed("mysql"), ["node1"]);
    let wp = placed("wordpress");
    assert_eq!(wp.len(), 2, "{wp:?}");
    assert!(
        wp.iter().all(|n| n == "node2" || n == "node3"),
        "wordpress pods run on the wordpress nodes: {wp:?}"
    );
    let svc = ssh_ok(&tb, cp, "root", "kubectl get svc wordpress");
    assert!(
        svc.stdout.contains("LoadBalancer") && svc.stdout.contains("8080:"),
        "{}",
        svc.stdout
    );

    // Drain waits for the evicted pods to be gone (drain.go's waitForDelete) before it
    // prints `pod/P evicted`; nothing is left Terminating on the node. The scheduler does
    // not promise one replica per node (its spreading is a score, not a rule), so the node
    // drained is whichever holds the first wordpress pod, and the other one takes them.
    let (evicted, drained) = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["metadata"]["labels"]["app"] == "wordpress")
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap().to_string(),
                p["spec"]["nodeName"].as_str().unwrap().to_string(),
            )
        })
        .expect("a wordpress pod");
    let other = if drained == "node2" { "node3" } else { "node2" };
    ssh(
        &tb,
        cp,
        "root",
        &format!(
            "kubectl drain {drained} --ignore-daemonsets --delete-emptydir-data --timeout=60s"
        ),
    )
    .expect(
        &format!("drain {drained}"),
        0,
        &[
            &format!("evicting pod default/{evicted}"),
            &format!("pod/{evicted} evicted"),
            &format!("node/{drained} drained"),
        ],
    );
    let left = ssh_ok(
        &tb,
        cp,
        "root",
        "kubectl get pods -o jsonpath='{.items[*].spec.nodeName}'",
    );
    assert!(!left.stdout.contains(&drained), "{}", left.stdout);
    ssh_ok(&tb, cp, "root", &format!("kubectl uncordon {drained}"));

    // A node whose kubelet is gone never confirms the termination: the evicted pods stay
    // Terminating and drain's --timeout ends the wait (kubectl's drain.go waitForDelete
    // under the global timeout's context: `context deadline exceeded`). The real node
    // lifecycle controller marks the node Unknown once its Lease is older than
    // --node-monitor-grace-period (50 s), checked every 5 s: up to a minute, hence 2m.
    ssh_ok(&tb, other, "root", "systemctl stop kubelet");
    ssh(
        &tb,
        cp,
        "root",
        &format!(
            "kubectl wait --for=condition=Ready=Unknown node/{other} --timeout=2m && \
             kubectl drain {other} --ignore-daemonsets --delete-emptydir-data --timeout=1s"
        ),
    )
    .expect(
        "drain of a node whose kubelet is stopped",
        1,
        &[
            &format!("node/{other} condition met"),
            "evicting pod default/wordpress-",
            "error when waiting for pod \"wordpress-",
            "\" in namespace \"default\" to terminate: context deadline exceeded",
            "There are pending nodes to be drained:",
        ],
    );
}

/// The same procedure as the `ubuntu` user, every privileged step through sudo (as the
/// kubernetes.io pages write it: `sudo tee` for files), on a single node.
#[test]
fn single_node_as_ubuntu_through_sudo() {
    let tb = real_testbed_as(1, "ubuntu", &[DEFAULT_RELEASE]);
    let h = "node1";
    let addr = address(&tb, h);
    let u = "ubuntu";

    // Without sudo the first step already fails like on a real server.
    // util-linux swapoff answers EPERM with "Not superuser." and exit 16
    // (sys-utils/swapoff.c, do_swapoff).
    let out = ssh(&tb, h, u, "swapoff -a");
    assert_eq!(out.code, 16, "swapoff -a as ubuntu: {out:?}");
    assert!(out.stderr.contains("swapoff: Not superuser."), "{out:?}");

    let prereq = [
        "sudo swapoff -a".to_string(),
        r"sudo sed -ri '/\sswap\s/ s/^#?/#/' /etc/fstab".into(),
        "printf 'overlay\\nbr_netfilter\\n' | sudo tee /etc/modules-load.d/k8s.conf".into(),
        "sudo modprobe overlay && sudo modprobe br_netfilter".into(),
        "cat <<EOF | sudo tee /etc/sysctl.d/k8s.conf
net.bridge.bridge-nf-call-iptables  = 1
net.bridge.bridge-nf-call-ip6tables = 1
net.ipv4.ip_forward                 = 1
EOF"
        .into(),
        "sudo sysctl --system".into(),
        "sudo apt-get update".into(),
        "sudo DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y docker.io"
            .into(),
        "sudo mkdir -p /etc/containerd".into(),
        "containerd config default | sudo tee /etc/containerd/config.toml >/dev/null".into(),
        "sudo sed -i 's/SystemdCgroup = false/SystemdCgroup = true/' /etc/containerd/config.toml"
            .into(),
        "sudo systemctl restart containerd".into(),
        "sudo apt-get install -y apt-transport-https ca-certificates curl gpg".into(),
        "sudo mkdir -p -m 755 /etc/apt/keyrings".into(),
        format!(
            "curl -fsSL https://pkgs.k8s.io/core:/stable:/v{K8S_MINOR}/deb/Release.key \
             | sudo gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg"
        ),
        format!(
            "echo 'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] \
             https://pkgs.k8s.io/core:/stable:/v{K8S_MINOR}/deb/ /' \
             | sudo tee /etc/apt/sources.list.d/kubernetes.list"
        ),
        "sudo apt-get update".into(),
        format!(
            "sudo apt-get install -y kubelet={v} kubeadm={v} kubectl={v}",
            v = K8S_PACKAGE_VERSION
        ),
        "sudo apt-mark hold kubelet kubeadm kubectl".into(),
        "sudo systemctl enable --now kubelet".into(),
    ];
    steps(&tb, h, u, &prereq);

    // kubeadm itself refuses a non-root user before anything else.
    ssh(&tb, h, u, "kubeadm init").expect(
        "kubeadm as ubuntu",
        1,
        &["[ERROR IsPrivilegedUser]: user is not running as root"],
    );

    let config = kubeadm_config(h, &addr, true);
    ssh_ok(
        &tb,
        h,
        u,
        &format!("cat <<'EOF' | sudo tee /etc/kubernetes/kubeadm.yaml >/dev/null\n{config}EOF"),
    );
    ssh_ok(
        &tb,
        h,
        u,
        "sudo kubeadm init --config /etc/kubernetes/kubeadm.yaml",
    )
    .expect(
        "sudo kubeadm init",
        0,
        &["Your Kubernetes control-plane has initialized successfully!"],
    );
    // The printed advice for a regular user.
    ssh_ok(
        &tb,
        h,
        u,
        "mkdir -p $HOME/.kube && sudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config \
         && sudo chown $(id -u):$(id -g) $HOME/.kube/config",
    );
    ssh_ok(&tb, h, u, &format!("kubectl apply -f {CALICO_URL}"));
    ssh_ok(
        &tb,
        h,
        u,
        "kubectl wait --for=condition=Ready node --all --timeout=10m",
    )
    .expect("wait", 0, &["node/node1 condition met"]);
    // taints: [] => the single node runs pods, once the node lifecycle controller has
    // lifted its not-ready taint (a monitor period after Ready).
    let nodes = poll(
        &tb,
        "node1 without taints",
        || json(&ssh_ok(&tb, h, u, "kubectl get nodes -o json")),
        &|nodes: &Value| taints(&nodes["items"][0]).is_empty(),
    );
    let n = &nodes["items"][0];
    assert_eq!(nodes["items"].as_array().unwrap().len(), 1);
    assert_eq!(n["metadata"]["name"], "node1");
    assert_eq!(
        n["status"]["nodeInfo"]["kubeletVersion"],
        format!("v{K8S_VERSION}")
    );
    assert!(n["spec"].get("taints").is_none(), "{n:#}");

    // Every privileged change arrived through sudo: the audit log names ubuntu for the SSH
    // command lines, root as the user of every run that changed the host's packages and
    // of every successful kubeadm (the real one, recorded like the package tools), and
    // kubeadm's own `systemctl stop kubelet` (kubelet-start phase, initsystem_unix.go
    // ServiceStop), which no step of the procedure does, ran as root.
    let audit = tb.audit(h).unwrap();
    assert!(audit
        .iter()
        .filter(|r| r.kind == "ssh")
        .all(|r| r.user == "ubuntu"));
    assert!(audit.iter().any(|r| r.kind == "ssh"
        && r.argv == ["sudo kubeadm init --config /etc/kubernetes/kubeadm.yaml"]));
    let changed: Vec<_> = audit
        .iter()
        .filter(|r| r.kind == "cmd" && r.changed)
        .collect();
    assert!(
        !changed.is_empty() && changed.iter().all(|r| r.user == "root"),
        "{changed:#?}"
    );
    let kubeadm: Vec<_> = audit
        .iter()
        .filter(|r| r.kind == "cmd" && r.argv[0] == "kubeadm" && r.exit == Some(0))
        .collect();
    assert!(
        !kubeadm.is_empty() && kubeadm.iter().all(|r| r.user == "root"),
        "{kubeadm:#?}"
    );
    let stops: Vec<_> = audit
        .iter()
        .filter(|r| r.kind == "cmd" && r.argv == ["systemctl", "stop", "kubelet"])
        .collect();
    assert!(
        !stops.is_empty() && stops.iter().all(|r| r.user == "root" && r.exit == Some(0)),
        "{stops:#?}"
    );
}

/// §8 by hand on a control plane, 1.34.2 -> 1.35.4, with the mistakes the order of the
/// reference prevents, each failing with the real text: a held package, a version the
/// configured repository does not have, a node waited for before its kubelet restarted.
/// Then the node-maintenance commands a tool uses around it (annotate, drain with a
/// timeout, `wait --for=jsonpath`, uncordon, the annotation removed).
#[test]
fn upgrade_by_hand_in_the_reference_order() {
    let tb = real_testbed_as(1, "root", &["v1.34.2", "v1.35.4"]);
    let h = "node1";
    control_plane_at(&tb, h, true, "1.34.2");
    // The API server's record of Node spec changes from here on.
    let watch = tb.watch_node_specs(h).unwrap();
    let k = |c: &str| ssh(&tb, h, "root", c);
    let version_wait =
        "kubectl wait --for=jsonpath='{.status.nodeInfo.kubeletVersion}'=v1.35.4 node/node1";

    // Still the 1.34 repository: 1.35.4 is not there.
    ssh_ok(&tb, h, "root", "apt-mark unhold kubeadm").expect(
        "unhold",
        0,
        &["Canceled hold on kubeadm."],
    );
    k("apt-get install -y kubeadm=1.35.4-1.1").expect(
        "a version of another minor's repository",
        100,
        &["E: Version '1.35.4-1.1' for 'kubeadm' was not found"],
    );
    ssh_ok(&tb, h, "root", "apt-mark hold kubeadm").expect("hold", 0, &["kubeadm set on hold."]);
    steps(&tb, h, "root", &k8s_repository("1.35"));
    k("apt-get install -y kubeadm=1.35.4-1.1").expect(
        "a held kubeadm",
        100,
        &["E: Held packages were changed and -y was used without --allow-change-held-packages."],
    );
    steps(
        &tb,
        h,
        "root",
        &[
            "apt-mark unhold kubeadm && apt-get install -y kubeadm=1.35.4-1.1 && apt-mark hold kubeadm",
            "kubeadm upgrade plan v1.35.4",
        ],
    );
    k("kubeadm upgrade apply -y v1.35.4").expect(
        "upgrade apply",
        0,
        &["[upgrade] SUCCESS! A control plane node of your cluster was upgraded to \"v1.35.4\"."],
    );
    k("kubectl annotate node node1 example.com/upgrading=v1.35.4 --overwrite").expect(
        "annotate",
        0,
        &["node/node1 annotated"],
    );
    k("kubectl drain node1 --ignore-daemonsets --delete-emptydir-data --timeout=30s").expect(
        "drain",
        0,
        &["node/node1 cordoned", "node/node1 drained"],
    );
    // The kubelet package is new but the running kubelet is not: the node says 1.34.2.
    steps(
        &tb,
        h,
        "root",
        &["apt-mark unhold kubelet kubectl && apt-get install -y kubelet=1.35.4-1.1 kubectl=1.35.4-1.1 && apt-mark hold kubelet kubectl"],
    );
    k(&format!("{version_wait} --timeout=2s")).expect(
        "the version before the kubelet's restart",
        1,
        &["error: timed out waiting for the condition on nodes/node1"],
    );
    k(&format!("{version_wait} --timeout=300")).expect(
        "a timeout without a unit",
        1,
        &["error: invalid argument \"300\" for \"--timeout\" flag: time: missing unit in duration \"300\""],
    );
    k("systemctl restart kubelet").expect(
        "restart before daemon-reload",
        0,
        &["Run 'systemctl daemon-reload' to reload units."],
    );
    steps(
        &tb,
        h,
        "root",
        &["systemctl daemon-reload && systemctl restart kubelet"],
    );
    k(&format!("{version_wait} --timeout=60s")).expect(
        "the version after the restart",
        0,
        &["node/node1 condition met"],
    );
    k("kubectl wait --for=condition=Ready node/node1 --timeout=60s").expect(
        "Ready",
        0,
        &["node/node1 condition met"],
    );
    k("kubectl uncordon node1").expect("uncordon", 0, &["node/node1 uncordoned"]);
    // Removing the annotation twice: kubectl annotate never says "not found".
    for _ in 0..2 {
        let out = k("kubectl annotate node node1 example.com/upgrading-");
        out.expect("remove the annotation", 0, &["node/node1 annotated"]);
        assert!(!out.all().contains("not found"), "{out:?}");
    }
    // One cordon (drain) and one uncordon, nothing else: the only taint is the node
    // lifecycle controller's node.kubernetes.io/unschedulable, which follows
    // spec.unschedulable a moment later (TaintNodesByCondition).
    let changes = watch.changes().unwrap();
    let mut cordons: Vec<bool> = Vec::new();
    for c in &changes {
        if c.unschedulable != cordons.last().copied().unwrap_or(false) {
            cordons.push(c.unschedulable);
        }
        assert!(
            c.taints
                .iter()
                .all(|t| t == "node.kubernetes.io/unschedulable:NoSchedule"),
            "{changes:#?}"
        );
    }
    assert_eq!(cordons, [true, false], "{changes:#?}");
    assert_eq!(testbed::max_unschedulable(&changes).0, 1);
}

/// Two control planes upgraded by hand (kubeadm >= 1.28): `upgrade apply` on the first
/// leaves CoreDNS and kube-proxy alone while another kube-apiserver runs the old image,
/// and the last control plane's `upgrade node` upgrades them (phases/upgrade/addons.go).
#[test]
fn ha_addons_move_with_the_last_control_plane() {
    let tb = real_testbed_as(2, "root", &["v1.34.2", "v1.35.4"]);
    control_plane_at(&tb, "node1", true, "1.34.2");
    node_ready_at(&tb, "node2", "1.34.2");
    let upload = ssh_ok(
        &tb,
        "node1",
        "root",
        "kubeadm init phase upload-certs --upload-certs",
    );
    let key = upload
        .stdout
        .trim()
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string();
    let join = join_command(&tb, "node1");
    let addr2 = address(&tb, "node2");
    steps(
        &tb,
        "node2",
        "root",
        &[format!(
            "{join} --control-plane --certificate-key {key} --apiserver-advertise-address {addr2}"
        )],
    );
    ssh_ok(
        &tb,
        "node1",
        "root",
        "kubectl wait --for=condition=Ready node --all --timeout=2m",
    );
    let proxy_image = |h: &str| {
        ssh_ok(
            &tb,
            h,
            "root",
            "kubectl -n kube-system get ds kube-proxy -o jsonpath='{.spec.template.spec.containers[0].image}'",
        )
        .stdout
    };
    for h in ["node1", "node2"] {
        let mut s = k8s_repository("1.35");
        s.push(
            "apt-mark unhold kubeadm && apt-get install -y kubeadm=1.35.4-1.1 && apt-mark hold kubeadm"
                .into(),
        );
        steps(&tb, h, "root", &s);
    }
    ssh(&tb, "node1", "root", "kubeadm upgrade apply -y v1.35.4").expect(
        "apply on the first control plane",
        0,
        &[
            "[upgrade/addon] Skipping upgrade of addons because control plane instances [node2] have not been upgraded",
            "[upgrade] SUCCESS! A control plane node of your cluster was upgraded to \"v1.35.4\".",
        ],
    );
    assert_eq!(proxy_image("node1"), "registry.k8s.io/kube-proxy:v1.34.2");
    ssh(&tb, "node2", "root", "kubeadm upgrade node").expect(
        "upgrade node on the last control plane",
        0,
        &[
            "[addons] Applied essential addon: CoreDNS",
            "[addons] Applied essential addon: kube-proxy",
            "[upgrade/control-plane] The control plane instance for this node was successfully upgraded!",
            "[upgrade/kubelet-config] The kubelet configuration for this node was successfully upgraded!",
        ],
    );
    assert_eq!(proxy_image("node1"), "registry.k8s.io/kube-proxy:v1.35.4");
}
