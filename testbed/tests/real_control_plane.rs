//! The REAL control plane inside a testbed host (issue 9, first pieces): the real kubeadm
//! writes certificates, kubeconfigs and the static pod manifests of etcd, kube-apiserver,
//! kube-controller-manager and kube-scheduler, the kubelet stand-in (the kubelet unit,
//! started by kubeadm's kubelet-start phase) runs them as processes of the host with the binaries
//! testbed/k8s/build.sh built for their images, serves healthz and registers the Node, and
//! the real kubectl with kubeadm's admin.conf talks to the real API server.
//!
//! Needs root and the built release (`testbed::k8s::real_release`; the first run builds
//! it). `cargo test -p testbed --test real_control_plane`.

mod common;

use std::time::{Duration, Instant};

use common::real::*;
use common::*;
use serde_json::Value;
use testbed::k8s::DEFAULT_RELEASE;

/// A mirror pod: name, `kubernetes.io/config.hash`, phase.
type Mirror = (String, String, String);

#[test]
fn kubeadm_phases_and_static_pods_serve_the_real_api() {
    let k8s = release();
    // A host as the procedure leaves it before init: the real containerd (the kubelet
    // runs no static pod without a runtime answering: kubelet.go updateRuntimeUp) and
    // the kubelet package, whose unit waits for kubeadm's kubelet-start phase.
    let tb = real_testbed(1, &k8s);
    write_config(&tb);
    install_kubelet(&tb, "node1");
    let kubeadm = k8s.bin("kubeadm").display().to_string();
    let kubectl = k8s.bin("kubectl").display().to_string();
    for phase in [
        "certs all",
        "kubeconfig all",
        "etcd local",
        "control-plane all",
        "kubelet-start",
    ] {
        exec_ok(
            &tb,
            "node1",
            &format!("{kubeadm} init phase {phase} --config {CONFIG}"),
        )
        .expect(phase, 0, &[]);
    }
    let manifests = exec_ok(&tb, "node1", "ls /etc/kubernetes/manifests").stdout;
    assert_eq!(
        manifests.split_whitespace().collect::<Vec<_>>(),
        [
            "etcd.yaml",
            "kube-apiserver.yaml",
            "kube-controller-manager.yaml",
            "kube-scheduler.yaml"
        ]
    );

    // The API server answers once etcd is up and its post-start hooks ran: minutes on a
    // loaded 2-core machine, seconds on an idle one.
    let started = Instant::now();
    let version = loop {
        let out = exec(
            &tb,
            "node1",
            &format!("{kubectl} {ADMIN} get --raw /version"),
        );
        if out.code == 0 {
            break out.stdout;
        }
        if started.elapsed() > Duration::from_secs(300) {
            panic!("no API after 300 s: {}\n{}", out.all(), logs(&tb));
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    eprintln!("API server answered after {:?}", started.elapsed());
    let v: Value = serde_json::from_str(&version).unwrap();
    assert_eq!(v["gitVersion"], DEFAULT_RELEASE, "{v}");
    assert_eq!(v["major"], "1", "{v}");

    // The real resource set: the built-in groups, served by the real API server.
    let count = assert_api_resources(
        &tb,
        &kubectl,
        &[
            "pods",
            "nodes",
            "deployments.apps",
            "leases.coordination.k8s.io",
            "certificatesigningrequests.certificates.k8s.io",
            "customresourcedefinitions.apiextensions.k8s.io",
        ],
    );
    assert!(count > 50, "only {count} resources");

    // admin.conf's user is in group kubeadm:cluster-admins, which has no rights until
    // kubeadm binds it to cluster-admin (through super-admin.conf) the first time one of
    // its phases needs a client: here upload-config, as `kubeadm init` runs it next.
    let out = exec(
        &tb,
        "node1",
        &format!("{kubectl} {ADMIN} get configmaps -n kube-system"),
    );
    out.expect(
        "before upload-config",
        1,
        &["User \"kubernetes-admin\" cannot list resource \"configmaps\""],
    );
    exec_ok(
        &tb,
        "node1",
        &format!("{kubeadm} init phase upload-config all --config {CONFIG}"),
    );
    let out = exec_ok(
        &tb,
        "node1",
        &format!("{kubectl} {ADMIN} get configmap -n kube-system kubeadm-config -o jsonpath='{{.data.ClusterConfiguration}}'"),
    );
    assert!(
        out.stdout
            .contains(&format!("kubernetesVersion: {DEFAULT_RELEASE}")),
        "{}",
        out.stdout
    );

    // The real API server's validation, which the simulated one lacked.
    let out = exec(
        &tb,
        "node1",
        &format!(
            "{kubectl} {ADMIN} apply -f - <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata:
  name: Bad_Name
data: {{}}
EOF"
        ),
    );
    out.expect(
        "ConfigMap Bad_Name",
        1,
        &["The ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\""],
    );
}

/// The whole real `kubeadm init` on a host with the kubelet package, preflight checks
/// included (SystemVerification passes on the hosts' cgroup v2 view, STANDINS-os.md; the
/// CRI checks run against the real containerd): kubelet-start restarts the
/// `kubelet` unit, which runs the stand-in with kubeadm's config.yaml and flags; kubeadm
/// waits for its healthz and the components' health endpoints, uploads the configuration,
/// marks the registered Node as control plane, creates the bootstrap token and
/// cluster-info, installs the CoreDNS and kube-proxy add-ons.
#[test]
fn real_kubeadm_init_completes_with_the_kubelet_stand_in() {
    let k8s = release();
    let tb = real_testbed(1, &k8s);
    write_config(&tb);
    install_kubelet(&tb, "node1");
    let kubectl = k8s.bin("kubectl").display().to_string();
    let started = Instant::now();
    let out = kubeadm_init(&tb, &k8s);
    assert!(!out.all().contains("[ERROR"), "{}", out.all());
    eprintln!("kubeadm init took {:?}", started.elapsed());
    assert_contains(
        &out.stdout,
        &[
            // The image check ran against the real containerd (ImageStatus found each).
            "[preflight] Pulling images required for setting up a Kubernetes cluster",
            "[kubelet-start] Starting the kubelet",
            "[wait-control-plane] Waiting for the kubelet to boot up the control plane",
            "[kubelet-check] The kubelet is healthy",
            "[control-plane-check] kube-apiserver is healthy",
            "[mark-control-plane] Marking the node node1 as control-plane",
            "[addons] Applied essential addon: CoreDNS",
            "[addons] Applied essential addon: kube-proxy",
            "Your Kubernetes control-plane has initialized successfully!",
            // The kubelet put kubelet.conf's pair into its store at start (rotation on),
            // so kubeadm repointed kubelet.conf at it and restarted the kubelet.
            "[kubelet-finalize] Updating \"/etc/kubernetes/kubelet.conf\" to point to a rotatable kubelet client certificate and key",
        ],
    );
    // The restarted kubelet finds the static pods' processes still running (the runtime
    // keeps containers when the kubelet stops) instead of starting them again: its first
    // pass comes a moment after kubeadm's restart returns, so it is waited for.
    let log = || {
        exec_ok(
            &tb,
            "node1",
            "grep -E 'client-(certificate|key):' /etc/kubernetes/kubelet.conf; cat /usr/local/lib/testbed/units/kubelet.log",
        )
    };
    let out = poll(
        &tb,
        "the restarted kubelet found the API server",
        log,
        &|o: &Out| {
            o.stdout
                .contains("found kube-apiserver/kube-apiserver running")
        },
    );
    assert_contains(
        &out.stdout,
        &[
            "client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem",
            "client-key: /var/lib/kubelet/pki/kubelet-client-current.pem",
        ],
    );
    assert_eq!(
        out.stdout
            .matches("started kube-apiserver/kube-apiserver")
            .count(),
        1,
        "{}",
        out.stdout
    );
    // The certificate manager's rotation of that first pair: a CSR by the node itself,
    // approved (kubeadm's selfnodeclient binding). (Whether its certificate reaches the
    // store depends on kubelet-finalize's restart coming later, as with the real
    // kubelet, whose next start rotates only near the certificate's expiry.)
    let csrs = || {
        exec_ok(
            &tb,
            "node1",
            &format!("{kubectl} {ADMIN} get csr -o jsonpath='{{range .items[*]}}{{.spec.username}} {{.status.conditions[0].type}} {{.status.conditions[0].reason}}{{\"\\n\"}}{{end}}'"),
        )
        .stdout
    };
    poll(&tb, "node1's rotation CSR approved", csrs, &|s: &String| {
        s.contains("system:node:node1 Approved AutoApproved")
    });

    // The stand-in runs as the kubelet unit kubeadm restarted, answering as the package.
    let out = exec_ok(
        &tb,
        "node1",
        "systemctl is-active kubelet; kubelet --version",
    );
    assert_eq!(
        out.stdout,
        format!("active\nKubernetes {DEFAULT_RELEASE}\n")
    );

    // The Node the stand-in registered, as kubeadm's mark-control-plane left it.
    let out = exec_ok(
        &tb,
        "node1",
        &format!("{kubectl} {ADMIN} get node node1 -o json"),
    );
    let node: Value = serde_json::from_str(&out.stdout).unwrap();
    let labels = &node["metadata"]["labels"];
    assert_eq!(labels["kubernetes.io/hostname"], "node1", "{node}");
    assert_eq!(
        labels["node-role.kubernetes.io/control-plane"], "",
        "{node}"
    );
    assert_eq!(
        labels["node.kubernetes.io/exclude-from-external-load-balancers"], "",
        "{node}"
    );
    // The real node lifecycle controller also taints it node.kubernetes.io/not-ready
    // (the stand-in reports no status yet), at its own pace: only kubeadm's taint is
    // certain here.
    let taints = node["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        taints.contains(&serde_json::json!(
            {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
        )),
        "{node}"
    );

    // The stand-in's status: NotReady with the kubelet's CNI message until a network
    // configuration exists; then Ready, and the real node lifecycle controller lifts its
    // not-ready taint. The Lease is renewed.
    let ready = |tb: &testbed::Testbed| -> Value {
        let out = exec_ok(
            tb,
            "node1",
            &format!("{kubectl} {ADMIN} get node node1 -o json"),
        );
        serde_json::from_str(&out.stdout).unwrap()
    };
    let condition = ready_condition;
    let wait = |what: &str, ok: &dyn Fn(&Value) -> bool| poll(&tb, what, || ready(&tb), ok);
    let node = wait("NotReady", &|n| condition(n)["status"] == "False");
    assert_eq!(condition(&node)["reason"], "KubeletNotReady", "{node}");
    assert!(
        condition(&node)["message"]
            .as_str()
            .unwrap_or("")
            .contains("cni plugin not initialized"),
        "{node}"
    );
    let addresses = node["status"]["addresses"].to_string();
    assert!(addresses.contains(&address(&tb, "node1")), "{addresses}");
    // The host's real containerd, as the kubelet reports it.
    assert!(
        node["status"]["nodeInfo"]["containerRuntimeVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("containerd://") && v.contains("1.7.24")),
        "{node}"
    );
    // containerd's rule (go-cni loadFromConfDir): the first configuration in sorted
    // order must load; one with no plugins does not, and keeps the network not ready even
    // with a good one after it. Seen in a status the kubelet wrote after both files.
    exec_ok(
        &tb,
        "node1",
        "mkdir -p /etc/cni/net.d && echo '{\"cniVersion\":\"0.3.1\",\"name\":\"empty\",\"plugins\":[]}' > /etc/cni/net.d/05-empty.conflist",
    );
    write_cni_config(&tb, "node1");
    let written = exec_ok(&tb, "node1", "date -u +%Y-%m-%dT%H:%M:%SZ").stdout;
    let written = written.trim().to_string();
    let node = wait("a status after the CNI files", &|n| {
        condition(n)["lastHeartbeatTime"]
            .as_str()
            .is_some_and(|t| t > written.as_str())
    });
    assert_eq!(condition(&node)["status"], "False", "{node}");
    exec_ok(&tb, "node1", "rm /etc/cni/net.d/05-empty.conflist");
    let started = Instant::now();
    wait("Ready without the not-ready taint", &|n| {
        condition(n)["status"] == "True"
            && !n["spec"]["taints"]
                .to_string()
                .contains("node.kubernetes.io/not-ready")
    });
    eprintln!(
        "Ready and untainted {:?} after the CNI config",
        started.elapsed()
    );
    let out = exec_ok(
        &tb,
        "node1",
        &format!("{kubectl} {ADMIN} get lease -n kube-node-lease node1 -o jsonpath='{{.spec.holderIdentity}} {{.metadata.ownerReferences[0].kind}}'"),
    );
    assert_eq!(out.stdout, "node1 Node");

    // Mirror pods: the control plane as `kubectl get pods -n kube-system` shows it.
    let mirrors = |tb: &testbed::Testbed| -> Vec<Mirror> {
        let out = exec_ok(
            tb,
            "node1",
            &format!("{kubectl} {ADMIN} get pods -n kube-system --field-selector spec.nodeName=node1 -o json"),
        );
        let list: Value = serde_json::from_str(&out.stdout).unwrap();
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| !p["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_null())
            .map(|p| {
                (
                    p["metadata"]["name"].as_str().unwrap().to_string(),
                    p["metadata"]["annotations"]["kubernetes.io/config.hash"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    p["status"]["phase"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let wait_mirrors =
        |what: &str, ok: &dyn Fn(&Vec<Mirror>) -> bool| poll(&tb, what, || mirrors(&tb), ok);
    let before = wait_mirrors("four Running mirror pods", &|m| {
        m.len() == 4 && m.iter().all(|(_, _, phase)| phase == "Running")
    });
    let names: Vec<&str> = before.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "etcd-node1",
            "kube-apiserver-node1",
            "kube-controller-manager-node1",
            "kube-scheduler-node1"
        ]
    );
    // A changed manifest restarts the process and changes the mirror pod's config.hash
    // (what `kubeadm upgrade apply` waits for).
    let hash_of =
        |m: &[Mirror], name: &str| m.iter().find(|(n, _, _)| n == name).unwrap().1.clone();
    let pid = exec_ok(&tb, "node1", "cat /run/real-kubelet/kube-scheduler.pid").stdout;
    exec_ok(
        &tb,
        "node1",
        "sed -i 's/^    - --leader-elect=true$/    - --leader-elect=true\\n    - --v=2/' /etc/kubernetes/manifests/kube-scheduler.yaml && grep -q -- '--v=2' /etc/kubernetes/manifests/kube-scheduler.yaml",
    );
    let old_hash = hash_of(&before, "kube-scheduler-node1");
    wait_mirrors("the scheduler's new hash, Running", &|m| {
        m.iter().any(|(n, h, phase)| {
            n == "kube-scheduler-node1" && *h != old_hash && phase == "Running"
        })
    });
    let new_pid = exec_ok(&tb, "node1", "cat /run/real-kubelet/kube-scheduler.pid").stdout;
    assert_ne!(pid, new_pid, "the scheduler was not restarted");
    exec_ok(
        &tb,
        "node1",
        &format!("grep -q -- --v=2 /proc/{}/cmdline", new_pid.trim()),
    );
    // A manifest changed while the kubelet is stopped: the next one stops the process
    // that no manifest wants as it runs, then starts the new one (no second scheduler
    // fighting for the first one's port).
    exec_ok(
        &tb,
        "node1",
        "systemctl stop kubelet && sed -i 's/--v=2/--v=3/' /etc/kubernetes/manifests/kube-scheduler.yaml && systemctl start kubelet",
    );
    let old = new_pid.trim().to_string();
    let scheduler = || {
        exec(
            &tb,
            "node1",
            &format!("p=$(cat /run/real-kubelet/kube-scheduler.pid); test ! -e /proc/{old} && grep -q -- --v=3 /proc/$p/cmdline && echo $p"),
        )
        .stdout
    };
    poll(
        &tb,
        "the old scheduler stopped, the new one running",
        scheduler,
        &|p: &String| !p.trim().is_empty(),
    );

    exec_ok(
        &tb,
        "node1",
        &format!("{kubectl} {ADMIN} get -n kube-public configmap cluster-info"),
    );

    // The add-ons' pods, bound by the real scheduler once the Node is Ready, are run by
    // the stand-in as kwok runs them: Running and Ready, kube-proxy on the host's network,
    // CoreDNS with addresses of the Node's podCIDR; the real Deployment controller counts
    // them available.
    let addons = |tb: &testbed::Testbed| -> Vec<(String, String, String, String)> {
        pods(tb, &kubectl, "-l 'k8s-app in (kube-dns,kube-proxy)'")
            .iter()
            .map(|p| {
                let s = |v: &Value| v.as_str().unwrap_or("").to_string();
                (
                    s(&p["metadata"]["name"]),
                    s(&p["status"]["podIP"]),
                    ready_condition(p)["status"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    s(&p["metadata"]["deletionTimestamp"]),
                )
            })
            .collect()
    };
    let all_ready = |p: &Vec<(String, String, String, String)>| {
        p.len() == 3
            && p.iter()
                .all(|(_, _, ready, gone)| ready == "True" && gone.is_empty())
    };
    let running = poll(
        &tb,
        "CoreDNS (2) and kube-proxy Ready",
        || addons(&tb),
        &all_ready,
    );
    let pod_cidr = exec_ok(
        &tb,
        "node1",
        &format!("{kubectl} {ADMIN} get node node1 -o jsonpath='{{.spec.podCIDR}}'"),
    )
    .stdout;
    assert_eq!(pod_cidr, "192.168.0.0/24");
    let node_ip = address(&tb, "node1");
    for (name, ip, _, _) in &running {
        if name.starts_with("kube-proxy-") {
            assert_eq!(*ip, node_ip, "{running:?}");
        } else {
            assert!(ip.starts_with("192.168.0."), "{running:?}");
        }
    }
    exec_ok(
        &tb,
        "node1",
        &format!(
            "{kubectl} {ADMIN} rollout status -n kube-system deployment/coredns --timeout=60s"
        ),
    );
    // A graceful delete (CoreDNS's 30 s grace period) ends once the kubelet confirms it:
    // without that confirmation the pod would stay Terminating and kubectl would time out.
    let victim = running
        .iter()
        .find(|(n, _, _, _)| n.starts_with("coredns-"))
        .unwrap()
        .0
        .clone();
    exec_ok(
        &tb,
        "node1",
        &format!("{kubectl} {ADMIN} delete pod -n kube-system {victim} --timeout=60s"),
    );
    // (The stand-in logs a pass's work after the pass.)
    let confirmed =
        format!("Pod kube-system/{victim} deleted (terminated, confirmed with grace period 0)");
    poll(
        &tb,
        "the kubelet's confirmation in its log",
        || exec_ok(&tb, "node1", "cat /usr/local/lib/testbed/units/kubelet.log").stdout,
        &|log: &String| log.contains(&confirmed),
    );
    let after = poll(&tb, "a new CoreDNS pod Ready", || addons(&tb), &all_ready);
    assert!(after.iter().all(|(n, _, _, _)| *n != victim), "{after:?}");
}

/// The real `kubeadm join` of a second host, with the join line the real `kubeadm token
/// create --print-join-command` prints on the first: the kubelet stand-in (started by
/// join's kubelet-start) performs the TLS bootstrap with bootstrap-kubelet.conf; the REAL
/// kube-controller-manager approves and signs its CSR; it writes the client certificate
/// and kubelet.conf as the kubelet does, and registers its Node with the flags of
/// /etc/default/kubelet, which becomes Ready after a CNI config.
#[test]
fn real_kubeadm_join_bootstraps_the_kubelet_and_registers_the_node() {
    let k8s = release();
    let tb = real_testbed(2, &k8s);
    write_config(&tb);
    install_kubelet(&tb, "node1");
    install_kubelet(&tb, "node2");
    let kubeadm = k8s.bin("kubeadm").display().to_string();
    let kubectl = k8s.bin("kubectl").display().to_string();
    let out = exec(
        &tb,
        "node1",
        &format!("{kubeadm} init --config {CONFIG} --skip-token-print"),
    );
    assert_eq!(out.code, 0, "kubeadm init:\n{}\n{}", out.all(), logs(&tb));
    let line = exec_ok(
        &tb,
        "node1",
        &format!(
            "{kubeadm} token create --print-join-command --kubeconfig /etc/kubernetes/admin.conf"
        ),
    )
    .stdout;
    let line = line.trim();
    assert!(line.starts_with("kubeadm join "), "{line}");
    let token_id = flag_value(line, "--token")
        .split('.')
        .next()
        .unwrap()
        .to_string();

    // What a person adds for a worker: its taint and label, through the kubelet's own
    // defaults file (KUBELET_EXTRA_ARGS).
    exec_ok(
        &tb,
        "node2",
        "echo 'KUBELET_EXTRA_ARGS=--register-with-taints=dedicated=db:NoSchedule --node-labels=tier=db' > /etc/default/kubelet",
    );
    let started = Instant::now();
    let join = line.replacen("kubeadm", &kubeadm, 1);
    let out = exec(&tb, "node2", join.as_str());
    let took = started.elapsed();
    let node2_log = || exec(&tb, "node2", "cat /usr/local/lib/testbed/units/kubelet.log").all();
    assert_eq!(
        out.code,
        0,
        "kubeadm join:\n{}\n--- node2 kubelet\n{}\n--- node1\n{}",
        out.all(),
        node2_log(),
        logs(&tb)
    );
    eprintln!("kubeadm join took {took:?}");
    assert_contains(
        &out.stdout,
        &[
            "[kubelet-start] Starting the kubelet",
            "[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap",
            "This node has joined the cluster",
        ],
    );

    // The kubelet's files: the pair in the store, the symlink, kubelet.conf pointing at it;
    // kubeadm removed the bootstrap credentials.
    let out = exec_ok(
        &tb,
        "node2",
        "readlink /var/lib/kubelet/pki/kubelet-client-current.pem; \
         stat -c %a \"$(readlink /var/lib/kubelet/pki/kubelet-client-current.pem)\"; \
         openssl x509 -in /var/lib/kubelet/pki/kubelet-client-current.pem -noout -subject -issuer -ext extendedKeyUsage; \
         openssl pkey -in /var/lib/kubelet/pki/kubelet-client-current.pem -noout -text | head -1; \
         grep -E 'client-(certificate|key):|server:' /etc/kubernetes/kubelet.conf; \
         test ! -e /etc/kubernetes/bootstrap-kubelet.conf && echo no-bootstrap-conf",
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("/var/lib/kubelet/pki/kubelet-client-2") && lines[0].ends_with(".pem"),
        "{}",
        out.stdout
    );
    assert_eq!(lines[1], "600", "{}", out.stdout);
    assert_contains(
        &out.stdout,
        &[
            "subject=O = system:nodes, CN = system:node:node2",
            "issuer=CN = kubernetes",
            "TLS Web Client Authentication",
            "Private-Key: (256 bit",
            "client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem",
            "client-key: /var/lib/kubelet/pki/kubelet-client-current.pem",
            &format!("server: https://{}:6443", address(&tb, "node1")),
            "no-bootstrap-conf",
        ],
    );

    // The CSR as the real API server and controller-manager left it.
    let out = exec_ok(&tb, "node1", &format!("{kubectl} {ADMIN} get csr -o json"));
    let list: Value = serde_json::from_str(&out.stdout).unwrap();
    let csr = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["spec"]["username"] == format!("system:bootstrap:{token_id}"))
        .unwrap_or_else(|| panic!("no CSR of the bootstrap token:\n{}", out.stdout));
    assert!(
        csr["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("csr-"),
        "{csr}"
    );
    assert_eq!(
        csr["spec"]["signerName"],
        "kubernetes.io/kube-apiserver-client-kubelet"
    );
    assert_eq!(
        csr["spec"]["usages"],
        serde_json::json!(["digital signature", "client auth"])
    );
    let approved = csr["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Approved")
        .unwrap_or_else(|| panic!("not approved: {csr}"));
    assert_eq!(approved["reason"], "AutoApproved", "{csr}");

    // The Node, registered with the worker's flags; Ready after a CNI config.
    let get_node2 = || -> Value {
        let out = exec(
            &tb,
            "node1",
            &format!("{kubectl} {ADMIN} get node node2 -o json"),
        );
        serde_json::from_str(&out.stdout).unwrap_or(Value::Null)
    };
    let ready = ready_condition;
    let node = poll(&tb, "node2 registered, NotReady", get_node2, &|n| {
        ready(n)["status"] == "False"
    });
    assert_eq!(node["metadata"]["labels"]["tier"], "db", "{node}");
    assert!(
        node["spec"]["taints"].as_array().unwrap().contains(
            &serde_json::json!({"key": "dedicated", "value": "db", "effect": "NoSchedule"})
        ),
        "{node}"
    );
    let addresses = node["status"]["addresses"].to_string();
    assert!(addresses.contains(&address(&tb, "node2")), "{addresses}");
    write_cni_config(&tb, "node2");
    poll(&tb, "node2 Ready", get_node2, &|n| {
        ready(n)["status"] == "True"
    });
    // The kube-proxy pod the DaemonSet controller made for node2, reported Running by
    // node2's stand-in with its bootstrapped identity (NodeRestriction lets a node write
    // only its own pods' status), on the host's network.
    let kube_proxy = || {
        exec_ok(
            &tb,
            "node1",
            &format!("{kubectl} {ADMIN} get pods -n kube-system -l k8s-app=kube-proxy --field-selector spec.nodeName=node2 -o jsonpath='{{.items[*].status.phase}} {{.items[*].status.podIP}}'"),
        )
        .stdout
    };
    let node2_ip = address(&tb, "node2");
    poll(
        &tb,
        "node2's kube-proxy Running",
        kube_proxy,
        &|s: &String| *s == format!("Running {node2_ip}"),
    );

    // A --node-ip on none of the host's interfaces: the kubelet's own complaint on every
    // status update, and the Node keeps the address it had.
    exec_ok(
        &tb,
        "node2",
        "echo 'KUBELET_EXTRA_ARGS=--node-ip=10.9.9.9' > /etc/default/kubelet && systemctl restart kubelet",
    );
    let wanted = "failed to validate nodeIP: node IP: \\\"10.9.9.9\\\" not found in the host's network interfaces";
    poll(&tb, "the kubelet's node IP complaint", node2_log, &|log| {
        log.contains(wanted)
    });
    let addresses = get_node2()["status"]["addresses"].to_string();
    assert!(addresses.contains(&address(&tb, "node2")), "{addresses}");
}
