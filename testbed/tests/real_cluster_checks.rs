//! Issue 9's "Done when" checks on a REAL control plane in a testbed host, made as
//! real_control_plane.rs makes one (the kubelet package's unit running the kubelet
//! stand-in, the real containerd, the real `kubeadm init`): the real programs report the
//! release, serve the real resource set and refuse what the simulated control plane
//! accepted; real kubeadm refuses a pod subnet too small for one node's range.
//!
//! Needs root and the built release (`testbed::k8s::real_release`; the first run builds
//! it). `cargo test -p testbed --test real_cluster_checks`.

mod common;

use common::real::*;
use common::*;
use serde_json::Value;
use testbed::k8s::{RealRelease, DEFAULT_RELEASE};

/// The gitCommit the built binaries carry: component-base's default (version/base.go),
/// because the module proxy serves no commit id for k8s.io/kubernetes and build.sh has
/// none to stamp (testbed/k8s/README.md). An official build prints the tag's commit.
const UNSTAMPED_COMMIT: &str = "$Format:%H$";

/// Applies `yaml` with the real kubectl and admin.conf on node1.
fn apply(tb: &testbed::Testbed, kubectl: &str, yaml: &str) -> Out {
    exec(
        tb,
        "node1",
        &format!("{kubectl} {ADMIN} apply -f - <<'EOF'\n{yaml}EOF"),
    )
}

/// A Deployment `name` whose pod template has `labels` and whose selector asks for
/// `selector`, with `extra` appended to its spec (indented as spec's fields).
fn deployment(api: &str, name: &str, selector: &str, labels: &str, extra: &str) -> String {
    format!(
        "apiVersion: {api}
kind: Deployment
metadata:
  name: {name}
  namespace: default
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {selector}}}
  template:
    metadata:
      labels: {{app: {labels}}}
    spec:
      containers:
      - name: web
        image: registry.k8s.io/pause:3.10.1
{extra}"
    )
}

/// One version object (`clientVersion`, `serverVersion` or /version) of the built release:
/// stamped with the release's commit and tree state "clean" as official builds are when
/// testbed/k8s/<release>/commit names it, else component-base's unstamped defaults.
#[track_caller]
fn assert_release(what: &str, v: &Value, k8s: &RealRelease) {
    let minor = DEFAULT_RELEASE.split('.').nth(1).unwrap();
    assert_eq!(v["gitVersion"], DEFAULT_RELEASE, "{what}: {v}");
    assert_eq!(v["major"], "1", "{what}: {v}");
    assert_eq!(v["minor"], minor, "{what}: {v}");
    let (commit, tree) = match k8s.git_commit() {
        Some(commit) => (commit, "clean"),
        None => (UNSTAMPED_COMMIT.to_string(), ""),
    };
    assert_eq!(v["gitCommit"], commit.as_str(), "{what}: {v}");
    assert_eq!(v["gitTreeState"], tree, "{what}: {v}");
    assert_eq!(v["platform"], "linux/amd64", "{what}: {v}");
    assert!(
        v["goVersion"].as_str().unwrap_or("").starts_with("go1."),
        "{what}: {v}"
    );
}

/// One host of a real control plane, made once and put through the checks below in turn.
/// Each was a test with a host and a `kubeadm init` of its own, and CI's time goes mostly
/// to the real control plane's daemons, so each cluster built costs. The order:
/// - The refused init first, on the fresh host.
/// - Then the init, and the reset check, which needs only the static pods' sandboxes and
///   ends with an init of its own.
/// - On that control plane, the checks that only read (plus one valid Deployment `web`),
///   then the runtime stopped and started (the node ends Ready again).
/// - Then the workloads on the untainted control plane, under names of their own.
/// - The failing probes last, because they leave the control plane changed.
///
/// Each is named on stderr (`check!`) so a failure says which one it was.
#[test]
fn one_real_control_plane_host() {
    let k8s = release();
    let tb = real_testbed(1, &k8s);
    check!(real_kubeadm_init_refuses_a_pod_subnet_smaller_than_a_nodes_range(&tb, &k8s));
    // init_control_plane's other steps (the kubelet is installed): its configuration,
    // the real `kubeadm init`, the CNI configuration.
    write_config(&tb);
    kubeadm_init(&tb, &k8s);
    write_cni_config(&tb, "node1");
    check!(real_kubeadm_reset_stops_the_control_plane_and_init_works_again(&tb, &k8s));
    // `kubeadm reset` leaves /etc/cni/net.d alone, so the node gets Ready as after
    // init_control_plane.
    exec_ok(&tb, "node1", "test -s /etc/cni/net.d/10-test.conflist");
    check!(a_real_control_plane_reports_the_release_and_refuses_invalid_objects(&tb, &k8s));
    check!(a_node_whose_container_runtime_stops_goes_not_ready(
        &tb, &k8s
    ));
    // The pod checks' control plane takes pods: its taint removed.
    let kubectl = k8s.bin("kubectl").display().to_string();
    exec_ok(
        &tb,
        "node1",
        &format!("{kubectl} {ADMIN} taint nodes node1 node-role.kubernetes.io/control-plane-"),
    );
    check!(a_pod_waits_for_the_secret_its_environment_reads(&tb, &k8s));
    check!(a_bound_pod_waits_for_its_image_and_runs_once_the_runtime_has_it(&tb, &k8s));
    check!(
        failing_probes_leave_the_scheduler_unready_and_restart_the_controller_manager(&tb, &k8s)
    );
}

/// On a host of a real control plane: the versions kubeadm, kubectl and the API server
/// report; `kubectl api-resources` (the real set, including resources the simulated API
/// server never had); what the real API server and kubectl refuse; the add-ons' pods and
/// the control plane's mirror pods in `kubectl get pods -A`.
fn a_real_control_plane_reports_the_release_and_refuses_invalid_objects(
    tb: &testbed::Testbed,
    k8s: &RealRelease,
) {
    let kubeadm = k8s.bin("kubeadm").display().to_string();
    let kubectl = k8s.bin("kubectl").display().to_string();

    // Versions: the release's gitVersion and gitCommit everywhere (testbed/k8s/README.md
    // says where the commits come from), the same in all three.
    let json = |cmd: &str| -> Value {
        let out = exec_ok(tb, "node1", cmd);
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{cmd}: {e}\n{}", out.all()))
    };
    let v = json(&format!("{kubeadm} version -o json"));
    assert_release("kubeadm version", &v["clientVersion"], k8s);
    let v = json(&format!("{kubectl} {ADMIN} version -o json"));
    assert_release("kubectl version client", &v["clientVersion"], k8s);
    assert_release("kubectl version server", &v["serverVersion"], k8s);
    let v = json(&format!("{kubectl} {ADMIN} get --raw /version"));
    assert_release("/version", &v, k8s);

    // The real resource set, including resources the simulated API server lacked.
    let count = assert_api_resources(
        tb,
        &kubectl,
        &[
            "bindings",
            "componentstatuses",
            "pods",
            "serviceaccounts",
            "leases.coordination.k8s.io",
            "csistoragecapacities.storage.k8s.io",
            "csidrivers.storage.k8s.io",
            "volumeattachments.storage.k8s.io",
            "validatingadmissionpolicies.admissionregistration.k8s.io",
            "validatingadmissionpolicybindings.admissionregistration.k8s.io",
            "flowschemas.flowcontrol.apiserver.k8s.io",
            "prioritylevelconfigurations.flowcontrol.apiserver.k8s.io",
            "runtimeclasses.node.k8s.io",
            "endpointslices.discovery.k8s.io",
            "ingressclasses.networking.k8s.io",
            "poddisruptionbudgets.policy",
            "horizontalpodautoscalers.autoscaling",
            "cronjobs.batch",
            "controllerrevisions.apps",
            "selfsubjectreviews.authentication.k8s.io",
            "tokenreviews.authentication.k8s.io",
            "subjectaccessreviews.authorization.k8s.io",
            "customresourcedefinitions.apiextensions.k8s.io",
            "apiservices.apiregistration.k8s.io",
        ],
    );
    eprintln!("api-resources: {count} resources");

    // What the simulated API server and kubectl accepted, refused for real: the manifest
    // kubectl applies (or the taint it sets on node1) and what it says.
    let unknown_field = deployment("apps/v1", "web", "web", "web", "  replicaz: 2\n");
    let unmatched = deployment("apps/v1", "web", "web", "other", "");
    let v1beta1 = deployment("apps/v1beta1", "web", "web", "web", "");
    let refused: [(&str, &str, &[&str]); 5] = [
        // kubectl's default --validate=strict asks for the server's strict decoding.
        (
            "a Deployment with an unknown field",
            &unknown_field,
            &["strict decoding error: unknown field \"spec.replicaz\""],
        ),
        (
            "a Widget without its CRD",
            "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n  namespace: default\n",
            &[
                "no matches for kind \"Widget\" in version \"example.com/v1\"",
                "ensure CRDs are installed first",
            ],
        ),
        (
            "a Deployment whose selector does not match its template",
            &unmatched,
            &[
                "The Deployment \"web\" is invalid",
                "spec.template.metadata.labels: Invalid value",
                "`selector` does not match template `labels`",
            ],
        ),
        (
            "ConfigMap Bad_Name",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n  namespace: default\ndata: {}\n",
            &["The ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\""],
        ),
        // apps/v1beta1 is no longer served (removed in 1.16).
        (
            "a Deployment at apps/v1beta1",
            &v1beta1,
            &["no matches for kind \"Deployment\" in version \"apps/v1beta1\""],
        ),
    ];
    for (what, yaml, says) in refused {
        apply(tb, &kubectl, yaml).expect(what, 1, says);
    }
    // A taint value that is no label value (kubectl's own parseTaint refuses it before
    // any request), and an effect that does not exist.
    let taints: [(&str, &str); 2] = [
        (
            "dedicated=db@x:NoSchedule",
            "invalid taint spec: dedicated=db@x:NoSchedule, a valid label must be an empty string or consist of alphanumeric characters",
        ),
        (
            "dedicated=db:NoWay",
            "invalid taint effect: NoWay, unsupported taint effect",
        ),
    ];
    for (taint, says) in taints {
        exec(
            tb,
            "node1",
            &format!("{kubectl} {ADMIN} taint nodes node1 {taint}"),
        )
        .expect(taint, 1, &[says]);
    }
    // None of them left anything behind.
    let out = exec_ok(
        tb,
        "node1",
        &format!("{kubectl} {ADMIN} get deployments,configmaps -n default -o name; {kubectl} {ADMIN} get node node1 -o jsonpath='{{.spec.taints}}'"),
    );
    assert!(!out.stdout.contains("deployment"), "{}", out.stdout);
    assert!(!out.stdout.contains("Bad_Name"), "{}", out.stdout);
    assert!(!out.stdout.contains("dedicated"), "{}", out.stdout);
    // A valid Deployment goes through: the refusals were about the objects.
    apply(
        tb,
        &kubectl,
        &deployment("apps/v1", "web", "web", "web", ""),
    )
    .expect("a valid Deployment", 0, &["deployment.apps/web created"]);

    // The add-ons' pods and the control plane's mirror pods.
    let all_pods = || {
        exec_ok(
            tb,
            "node1",
            &format!("{kubectl} {ADMIN} get pods -A --no-headers"),
        )
        .stdout
    };
    let out = poll(
        tb,
        "CoreDNS, kube-proxy and the mirror pods Running",
        all_pods,
        &|s: &String| {
            let running = |prefix: &str| {
                s.lines().any(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    f.len() > 3
                        && f[0] == "kube-system"
                        && f[1].starts_with(prefix)
                        && f[3] == "Running"
                })
            };
            [
                "coredns-",
                "kube-proxy-",
                "etcd-node1",
                "kube-apiserver-node1",
                "kube-controller-manager-node1",
                "kube-scheduler-node1",
            ]
            .iter()
            .all(|p| running(p))
                && s.matches(" coredns-").count() == 2
        },
    );
    eprintln!("kubectl get pods -A:\n{out}");

    // The mirror pods are Ready once their probes say so (the kubelet stand-in runs
    // kubeadm's startup, liveness and readiness probes against the processes).
    four_mirror_pods_ready(tb, &kubectl);
}

/// The control plane's mirror pods on node1: (name, "started=S ready=R" of its container,
/// the pod's Ready status), as the kubelet stand-in reports them from kubeadm's startup,
/// liveness and readiness probes.
fn mirror_states(tb: &testbed::Testbed, kubectl: &str) -> Vec<(String, String, String)> {
    pods(tb, kubectl, "-l tier=control-plane")
        .iter()
        .map(|p| {
            let c = &p["status"]["containerStatuses"][0];
            (
                p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                format!("started={} ready={}", c["started"], c["ready"]),
                ready_condition(p)["status"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect()
}

/// Waits until the four mirror pods are Ready.
fn four_mirror_pods_ready(tb: &testbed::Testbed, kubectl: &str) {
    poll(
        tb,
        "the four mirror pods Ready",
        || mirror_states(tb, kubectl),
        &|m: &Vec<(String, String, String)>| {
            m.len() == 4 && m.iter().all(|(_, _, ready)| ready == "True")
        },
    );
}

/// kubeadm's probes of the control plane, run by the kubelet stand-in: a scheduler whose
/// readiness probe fails stays running and started but its mirror pod is not Ready; a
/// controller-manager whose liveness probe fails is restarted, and its mirror pod counts
/// the restarts. Both manifests stay changed, so this runs last on its host.
fn failing_probes_leave_the_scheduler_unready_and_restart_the_controller_manager(
    tb: &testbed::Testbed,
    k8s: &RealRelease,
) {
    let kubectl = k8s.bin("kubectl").display().to_string();
    let mirrors = || mirror_states(tb, &kubectl);
    // Where the checks before left it: every mirror pod Ready.
    four_mirror_pods_ready(tb, &kubectl);
    // A scheduler whose readiness endpoint never answers 2xx/3xx (a path outside its
    // always-allowed health paths: 403 or 404 for the anonymous prober): running and started
    // (its startup probe on /livez passes), never ready, so its mirror pod is not Ready.
    exec_ok(
        tb,
        "node1",
        "sed -i 's#path: /readyz#path: /never-healthy#' /etc/kubernetes/manifests/kube-scheduler.yaml",
    );
    let scheduler = || {
        mirrors()
            .into_iter()
            .find(|(n, _, _)| n == "kube-scheduler-node1")
            .map(|(_, c, r)| format!("{c} Ready={r}"))
            .unwrap_or_default()
    };
    let kubelet_log =
        || exec_ok(tb, "node1", "cat /usr/local/lib/testbed/units/kubelet.log").stdout;
    let failed = "Probe failed probeType=\"Readiness\" pod=\"kube-system/kube-scheduler\" containerName=\"kube-scheduler\" probeResult=\"failure\" output=\"HTTP probe failed with statuscode: 40";
    poll(
        tb,
        "the scheduler's readiness probe failing",
        kubelet_log,
        &|l: &String| l.contains(failed),
    );
    let state = poll(
        tb,
        "the scheduler started, not ready",
        scheduler,
        &|s: &String| s == "started=true ready=false Ready=False",
    );
    eprintln!("kube-scheduler-node1: {state}");
    let others = mirrors();
    assert!(
        others
            .iter()
            .filter(|(n, _, _)| n != "kube-scheduler-node1")
            .all(|(_, _, ready)| ready == "True"),
        "{others:?}"
    );

    // A controller-manager whose liveness endpoint never answers (failureThreshold 1,
    // every second): once its startup probe passed, the kubelet kills it and starts it
    // again (the manifest change started it once, the liveness failure once more).
    let starts = |log: &str| {
        log.matches("started kube-controller-manager/kube-controller-manager")
            .count()
    };
    let before = starts(&kubelet_log());
    exec_ok(
        tb,
        "node1",
        "sed -i '/livenessProbe:/,/timeoutSeconds/{s#path: /healthz#path: /never-healthy#;s#failureThreshold: 8#failureThreshold: 1#;s#periodSeconds: 10#periodSeconds: 1#;s#initialDelaySeconds: 10#initialDelaySeconds: 0#}' /etc/kubernetes/manifests/kube-controller-manager.yaml",
    );
    let restarted = "Container kube-controller-manager failed liveness probe, will be restarted";
    poll(
        tb,
        "the controller-manager restarted after its liveness probe failed",
        kubelet_log,
        &|l: &String| l.contains(restarted) && starts(l) >= before + 2,
    );
    // The mirror pod counts the restarts and shows how the last container ended, as the
    // kubelet reports them from the runtime; the pod stays Running (restartPolicy Always:
    // kubelet_pods.go getPhase). The stand-in reported restartCount 0 for ever.
    let controller_manager = || mirror_pod(tb, &kubectl, "kube-controller-manager");
    let counted = poll(
        tb,
        "the controller-manager's restarts in its mirror pod",
        controller_manager,
        &|p: &Value| p["status"]["containerStatuses"][0]["restartCount"].as_u64() >= Some(1),
    );
    let c = &counted["status"]["containerStatuses"][0];
    assert!(
        c["lastState"]["terminated"]["finishedAt"].is_string(),
        "{counted:#}"
    );
    assert_eq!(counted["status"]["phase"], "Running", "{counted:#}");
}

/// `kubeadm init` with podSubnet 10.244.0.0/25: the real kubeadm refuses it while
/// validating its configuration, before any change to the host, with
/// ValidatePodSubnetNodeMask's reason (cmd/kubeadm/app/apis/kubeadm/validation: the
/// controller-manager gives each node a /24). `bootstrap validate` refuses such an
/// inventory first, at the line (tests/inventory.rs `subnet_sizes`, tests/kubeadm_real.rs).
fn real_kubeadm_init_refuses_a_pod_subnet_smaller_than_a_nodes_range(
    tb: &testbed::Testbed,
    k8s: &RealRelease,
) {
    write_config_with(tb, "10.244.0.0/25");
    install_kubelet(tb, "node1");
    let kubeadm = k8s.bin("kubeadm").display().to_string();
    let out = exec(tb, "node1", &format!("{kubeadm} init --config {CONFIG}"));
    out.expect(
        "kubeadm init with podSubnet 10.244.0.0/25",
        1,
        &["networking.podSubnet: Invalid value: \"10.244.0.0/25\": the size of pod subnet with mask 25 is smaller than the size of node subnet with mask 24"],
    );
    // Nothing was written: no certificates, kubeconfigs or manifests.
    let out = exec_ok(
        tb,
        "node1",
        "find /etc/kubernetes -type f | sort; systemctl is-active kubelet || true",
    );
    assert!(
        !out.stdout.contains("/etc/kubernetes/pki"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("admin.conf"), "{}", out.stdout);
    assert!(!out.stdout.contains("manifests/"), "{}", out.stdout);
}

/// containerd left at its default configuration (runc `SystemdCgroup = false`: the
/// reference procedure's section 2 `sed` skipped) while kubeadm configures the kubelet for
/// the systemd cgroup driver. containerd 1.7 cannot tell the kubelet its driver (no CRI
/// RuntimeConfig), the drivers disagree and the kubelet's pods do not stay up
/// (kubernetes/kubernetes#110177), so the real `kubeadm init` fails in its control-plane
/// check; once containerd runs with `SystemdCgroup = true`, the same kubelet brings the
/// control plane up, and a second `kubeadm init` is refused at preflight (the kubelet
/// holds its server port 10250).
#[test]
fn real_kubeadm_init_fails_while_containerd_keeps_its_default_cgroup_driver() {
    let k8s = release();
    let tb = real_testbed(1, &k8s);
    write_config(&tb);
    // Not the 4 minutes kubeadm waits by default.
    exec_ok(
        &tb,
        "node1",
        &format!("sed -i 's/^kind: InitConfiguration$/&\\ntimeouts:\\n  controlPlaneComponentHealthCheck: 40s/' {CONFIG}"),
    );
    install_kubelet(&tb, "node1");
    exec_ok(
        &tb,
        "node1",
        "containerd config default > /etc/containerd/config.toml && systemctl restart containerd",
    );
    let dump = exec_ok(&tb, "node1", "containerd config dump | grep SystemdCgroup").stdout;
    assert!(dump.contains("SystemdCgroup = false"), "{dump}");
    let kubeadm = k8s.bin("kubeadm").display().to_string();
    exec(&tb, "node1", &format!("{kubeadm} init --config {CONFIG}")).expect(
        "kubeadm init with SystemdCgroup = false",
        1,
        &["kube-apiserver check failed", "wait-control-plane"],
    );
    assert!(
        control_plane_left(&tb).is_empty(),
        "{}",
        control_plane_left(&tb)
    );
    assert_contains(
        &logs(&tb),
        &["Pod sandbox changed, it will be killed and re-created"],
    );
    // The fix the procedure makes: the kubelet, still running, starts the control plane.
    exec_ok(
        &tb,
        "node1",
        "sed -i 's/SystemdCgroup = false/SystemdCgroup = true/' /etc/containerd/config.toml \
         && systemctl restart containerd",
    );
    poll(
        &tb,
        "the API server listening once containerd uses the systemd cgroup driver",
        || control_plane_left(&tb),
        &|left: &String| left.contains(":6443"),
    );
    // A second init on this host stops at preflight on what the first one left, the
    // kubelet's server port among them (addCommonChecks, Port-10250).
    exec(&tb, "node1", &format!("{kubeadm} init --config {CONFIG}")).expect(
        "kubeadm init again",
        1,
        &[
            "[ERROR Port-6443]: Port 6443 is in use",
            "[ERROR Port-10250]: Port 10250 is in use",
            "[ERROR FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml]: /etc/kubernetes/manifests/kube-apiserver.yaml already exists",
            "error execution phase preflight",
        ],
    );
}

/// A Deployment whose container reads a Secret that does not exist yet: the real
/// scheduler binds its pod, and the kubelet does not start it (CreateContainerConfigError,
/// `secret "db" not found`: kubelet_pods.go makeEnvironmentVariables), so its rollout does
/// not finish; once the Secret exists the pod runs. Before, the stand-in ran any bound pod.
fn a_pod_waits_for_the_secret_its_environment_reads(tb: &testbed::Testbed, k8s: &RealRelease) {
    let kubectl = k8s.bin("kubectl").display().to_string();
    let app = "apiVersion: apps/v1
kind: Deployment
metadata: {name: app, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      containers:
      - name: app
        image: registry.k8s.io/pause:3.10.1
        env:
        - name: PASSWORD
          valueFrom: {secretKeyRef: {name: db, key: password}}
";
    let out = apply(tb, &kubectl, app);
    assert_eq!(out.code, 0, "{}", out.all());
    let pod = |tb: &testbed::Testbed| -> Value {
        let out = exec_ok(
            tb,
            "node1",
            &format!("{kubectl} {ADMIN} get pods -l app=app -o json"),
        );
        let list: Value = serde_json::from_str(&out.stdout).unwrap();
        list["items"][0].clone()
    };
    let waiting = poll(
        tb,
        "the app's pod waiting for its Secret",
        || pod(tb),
        &|p: &Value| !p["status"]["containerStatuses"][0]["state"]["waiting"].is_null(),
    );
    assert_eq!(waiting["spec"]["nodeName"], "node1", "{waiting:#}");
    assert_eq!(waiting["status"]["phase"], "Pending", "{waiting:#}");
    assert_eq!(
        waiting["status"]["containerStatuses"][0]["state"]["waiting"],
        serde_json::json!({"reason": "CreateContainerConfigError", "message": "secret \"db\" not found"}),
        "{waiting:#}"
    );
    let rollout = exec(
        tb,
        "node1",
        &format!("{kubectl} {ADMIN} rollout status deployment/app --timeout=10s"),
    );
    assert_ne!(rollout.code, 0, "{}", rollout.all());
    // The Secret (from a file, not the command line), then the pod runs.
    let secret = "apiVersion: v1
kind: Secret
metadata: {name: db, namespace: default}
stringData: {password: not-a-real-one}
";
    let out = apply(tb, &kubectl, secret);
    assert_eq!(out.code, 0, "{}", out.all());
    poll(
        tb,
        "the app's pod Running once its Secret exists",
        || pod(tb)["status"]["phase"].clone(),
        &|phase: &Value| phase == "Running",
    );
    exec_ok(
        tb,
        "node1",
        &format!("{kubectl} {ADMIN} rollout status deployment/app --timeout=60s"),
    );
}

/// A pod the scheduler binds waits for its image: the kubelet ensures each container's
/// image before starting it (pkg/kubelet/images/image_manager.go EnsureImageExists): one
/// the registry has is pulled by containerd (`nginx`, pull policy Always), while
/// an image the runtime has not got and cannot pull leaves the container waiting
/// `ErrImagePull` with containerd's error, then `ImagePullBackOff` with the pull's
/// back-off, and the rollout does not finish; once the image is in the runtime (imported,
/// as an offline site does) the next pull attempt finds it and the pod runs. Before, the
/// stand-in ran any bound pod without asking for its image.
fn a_bound_pod_waits_for_its_image_and_runs_once_the_runtime_has_it(
    tb: &testbed::Testbed,
    k8s: &RealRelease,
) {
    let kubectl = k8s.bin("kubectl").display().to_string();
    // Pulled from the testbed's Docker Hub by the host's containerd, then Running.
    let out = apply(
        tb,
        &kubectl,
        &deployment("apps/v1", "nginx", "nginx", "nginx", "")
            .replace("registry.k8s.io/pause:3.10.1", "nginx"),
    );
    assert_eq!(out.code, 0, "{}", out.all());
    exec_ok(
        tb,
        "node1",
        &format!("{kubectl} {ADMIN} rollout status deployment/nginx --timeout=60s"),
    );
    let images = exec_ok(tb, "node1", "ctr -n k8s.io images ls -q").stdout;
    assert!(
        images
            .lines()
            .any(|l| l == "docker.io/library/nginx:latest"),
        "{images}"
    );
    let image = "docker.io/library/testbed-nowhere:1";
    let out = apply(
        tb,
        &kubectl,
        &deployment("apps/v1", "nowhere", "nowhere", "nowhere", "")
            .replace("registry.k8s.io/pause:3.10.1", image),
    );
    assert_eq!(out.code, 0, "{}", out.all());
    let pod = || -> Value {
        let out = exec_ok(
            tb,
            "node1",
            &format!("{kubectl} {ADMIN} get pods -l app=nowhere -o json"),
        );
        let list: Value = serde_json::from_str(&out.stdout).unwrap();
        list["items"][0].clone()
    };
    let waiting = |p: &Value| p["status"]["containerStatuses"][0]["state"]["waiting"].clone();
    // ErrImagePull lasts until the next sync (2 s), which finds the pull backing off.
    let backoff = format!("Back-off pulling image \"{image}\": ErrImagePull: ");
    let backing_off = poll(tb, "the pull backing off", pod, &|p: &Value| {
        waiting(p)["reason"] == "ImagePullBackOff"
    });
    eprintln!("waiting: {}", waiting(&backing_off));
    assert_eq!(backing_off["spec"]["nodeName"], "node1", "{backing_off:#}");
    assert_eq!(backing_off["status"]["phase"], "Pending", "{backing_off:#}");
    let message = waiting(&backing_off)["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let Some(error) = message.strip_prefix(&backoff) else {
        panic!("ImagePullBackOff's message: {message}");
    };
    // containerd's own error, with the registry's answer (the testbed's Docker Hub has no
    // such repository: a 404, which containerd reports as NotFound; the real Docker Hub
    // answers an anonymous pull of a missing repository 401, `pull access denied`, which
    // containerd reports as Unknown: testbed/src/registries.rs "NOT modelled").
    assert!(
        error.contains(&format!("failed to pull and unpack image \"{image}\""))
            && error.ends_with(&format!("{image}: not found")),
        "containerd's own error: {error}"
    );
    let log = exec_ok(tb, "node1", "cat /usr/local/lib/testbed/units/kubelet.log").stdout;
    assert!(
        log.contains(&format!("Failed to pull image \"{image}\": {error}")),
        "{log}"
    );
    let rollout = exec(
        tb,
        "node1",
        &format!("{kubectl} {ADMIN} rollout status deployment/nowhere --timeout=5s"),
    );
    assert_ne!(rollout.code, 0, "{}", rollout.all());
    // The image imported into the runtime, as an offline site loads it: the next sync
    // finds it present (ImageStatus comes before the pull's back-off) and the pod runs.
    tb.preload_images("node1", &[image]).unwrap();
    poll(
        tb,
        "the pod Running once its image is in the runtime",
        || pod()["status"]["phase"].clone(),
        &|phase: &Value| phase == "Running",
    );
    exec_ok(
        tb,
        "node1",
        &format!("{kubectl} {ADMIN} rollout status deployment/nowhere --timeout=60s"),
    );
}

/// The kubelet checks its container runtime every 5 s and reports the Node NotReady
/// once the runtime has not answered for 30 s (pkg/kubelet/runtime.go runtimeErrors
/// `container runtime is down`, nodestatus ReadyCondition), and Ready again once it
/// answers; meanwhile it syncs no pod. The stand-in's Ready looked only at the CNI
/// configuration, so a node whose containerd was stopped stayed Ready. The static pods
/// keep running (their shims outlive containerd), so the API server sees it all.
fn a_node_whose_container_runtime_stops_goes_not_ready(tb: &testbed::Testbed, k8s: &RealRelease) {
    let kubectl = k8s.bin("kubectl").display().to_string();
    let ready = |tb: &testbed::Testbed| -> Value {
        let out = exec(
            tb,
            "node1",
            &format!("{kubectl} {ADMIN} get node node1 -o json"),
        );
        serde_json::from_str(&out.stdout)
            .map(|n: Value| ready_condition(&n))
            .unwrap_or(Value::Null)
    };
    poll(tb, "node1 Ready", || ready(tb), &|c: &Value| {
        c["status"] == "True"
    });
    exec_ok(tb, "node1", "systemctl stop containerd");
    let down = poll(
        tb,
        "node1 NotReady with its runtime stopped",
        || ready(tb),
        &|c: &Value| c["status"] == "False",
    );
    assert_eq!(down["reason"], "KubeletNotReady", "{down:#}");
    assert_eq!(down["message"], "container runtime is down", "{down:#}");
    assert!(
        logs(tb).contains("\"Skipping pod synchronization\" err=\"container runtime is down\""),
        "{}",
        logs(tb)
    );
    exec_ok(tb, "node1", "systemctl start containerd");
    poll(tb, "node1 Ready again", || ready(tb), &|c: &Value| {
        c["status"] == "True" && c["reason"] == "KubeletReady"
    });
}

/// A containerd that runs with its CRI plugin disabled (`disabled_plugins = ["cri"]`, as
/// some distributions' packages ship it): its socket accepts connections, but the
/// kubelet's start-up Version call (cri-client remote_runtime.go
/// validateServiceConnection) gets `unknown service runtime.v1.RuntimeService` and the
/// kubelet exits, so systemd keeps it `activating`. The stand-in only connected to the
/// socket, ran, and started the static pods as plain host processes.
#[test]
fn the_kubelet_refuses_a_containerd_without_its_cri() {
    let k8s = release();
    let tb = real_testbed(1, &k8s);
    write_config(&tb);
    install_kubelet(&tb, "node1");
    exec_ok(
        &tb,
        "node1",
        "printf 'version = 2\\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\\n' > /etc/containerd/config.toml \
         && systemctl restart containerd",
    );
    let kubeadm = k8s.bin("kubeadm").display().to_string();
    for phase in ["certs all", "kubeconfig all", "kubelet-start"] {
        exec_ok(
            &tb,
            "node1",
            &format!("{kubeadm} init phase {phase} --config {CONFIG}"),
        );
    }
    let kubelet_log = || exec(&tb, "node1", "cat /usr/local/lib/testbed/units/kubelet.log").stdout;
    poll(
        &tb,
        "the kubelet refusing a runtime without the CRI",
        kubelet_log,
        &|l: &String| {
            l.contains("validate CRI v1 runtime API for endpoint")
                && l.contains("unknown service runtime.v1.RuntimeService")
        },
    );
    let active = exec(&tb, "node1", "systemctl is-active kubelet").stdout;
    assert_eq!(active.trim(), "activating", "{}", kubelet_log());
}

/// A static pod whose image the runtime does not hold is not started: the kubelet asks
/// the runtime for the image (ImageStatus), then pulls it, which fails on an air-gapped
/// host (registry.k8s.io does not resolve), and the container waits `ErrImagePull`,
/// then `ImagePullBackOff` (pkg/kubelet/images/image_manager.go EnsureImageExists). The
/// stand-in only looked the image up in the testbed's list of built images, so it ran a
/// scheduler whose image the host's containerd did not have.
#[test]
fn a_static_pod_whose_image_is_gone_waits_for_its_pull() {
    let k8s = release();
    let tb = real_testbed(1, &k8s);
    init_control_plane(&tb, &k8s);
    tb.air_gap("node1").unwrap();
    let kubectl = k8s.bin("kubectl").display().to_string();
    let image = exec_ok(
        &tb,
        "node1",
        "sed -n 's/^ *image: //p' /etc/kubernetes/manifests/kube-scheduler.yaml",
    )
    .stdout
    .trim()
    .to_string();
    exec_ok(
        &tb,
        "node1",
        &format!(
            "ctr -n k8s.io images rm {image} && \
             sed -i 's/--leader-elect=true/--leader-elect=false/' /etc/kubernetes/manifests/kube-scheduler.yaml"
        ),
    );
    let scheduler = || mirror_pod(&tb, &kubectl, "kube-scheduler");
    let waiting = poll(
        &tb,
        "the new scheduler waiting for its image",
        scheduler,
        &|p: &Value| {
            let reason = &p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"];
            reason == "ErrImagePull" || reason == "ImagePullBackOff"
        },
    );
    eprintln!(
        "kube-scheduler-node1 waiting: {}",
        waiting["status"]["containerStatuses"][0]["state"]["waiting"]
    );
    assert_ne!(waiting["status"]["phase"], "Running", "{waiting:#}");
    // The kubelet's CRI client drops gRPC's `rpc error: code = Unknown desc = ` from a
    // pull's error (cri-client remote_image.go pullImageV1): containerd's own words.
    let message = waiting["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let error = message
        .strip_prefix(&format!(
            "Back-off pulling image \"{image}\": ErrImagePull: "
        ))
        .unwrap_or(&message);
    assert!(
        error.starts_with(&format!("failed to pull and unpack image \"{image}\"")),
        "{message}"
    );
    let log = exec_ok(&tb, "node1", "cat /usr/local/lib/testbed/units/kubelet.log").stdout;
    assert!(
        log.contains(&format!("Failed to pull image \"{image}\"")),
        "{log}"
    );
    let processes = exec_ok(&tb, "node1", "ps -eo args").stdout;
    assert!(!processes.contains("--leader-elect=false"), "{processes}");
    assert_eq!(tb.public_lookups("node1").unwrap(), ["registry.k8s.io"]);
}

/// The control plane's processes and listening ports on node1: the executables of
/// etcd, kube-apiserver, kube-controller-manager and kube-scheduler that run, and the
/// ports 6443/2379 that are listened on. Empty when none is left (a grep that finds
/// nothing must not fail the script, which runs under `set -e -o pipefail`).
fn control_plane_left(tb: &testbed::Testbed) -> String {
    exec_ok(
        tb,
        "node1",
        "{ for p in /proc/[0-9]*; do readlink $p/exe; done 2>/dev/null \
         | grep -E '/(etcd|kube-apiserver|kube-controller-manager|kube-scheduler)$' || true; }; \
         { ss -Hltn | awk '{print $4}' | grep -E ':(6443|2379)$' || true; }",
    )
    .stdout
}

/// The pod sandboxes the real containerd's CRI lists on node1 (ListPodSandbox, through
/// the kubelet stand-in's client, whose lines are "ID STATE NAMESPACE/NAME UID ATTEMPT"):
/// "STATE NAMESPACE/NAME", sorted.
fn sandboxes(tb: &testbed::Testbed) -> Vec<String> {
    let cri = testbed::containerd::cri_client().unwrap();
    let out = exec_ok(tb, "node1", &format!("{} pods", cri.display())).stdout;
    let mut pods: Vec<String> = out
        .lines()
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(fields.len(), 5, "tb-cri pods: {l:?}");
            format!("{} {}", fields[1], fields[2])
        })
        .collect();
    pods.sort();
    pods
}

/// The control plane's processes on node1: "NAME PID PIDNS" per process, sorted by name,
/// PIDNS being whether its PID namespace is the host's (`host`) or another (`own`).
fn control_plane_processes(tb: &testbed::Testbed) -> Vec<String> {
    let out = exec_ok(
        tb,
        "node1",
        "host=$(readlink /proc/1/ns/pid)
for p in /proc/[0-9]*; do
  exe=$(readlink $p/exe 2>/dev/null) || continue
  case $exe in */etcd|*/kube-apiserver|*/kube-controller-manager|*/kube-scheduler) ;; *) continue ;; esac
  ns=own; [ \"$(readlink $p/ns/pid)\" = \"$host\" ] && ns=host
  echo \"${exe##*/} ${p#/proc/} $ns\"
done",
    )
    .stdout;
    let mut procs: Vec<String> = out.lines().map(String::from).collect();
    procs.sort();
    procs
}

/// The real `kubeadm reset -f` on a control plane stops the kubelet, then removes every
/// pod sandbox through the CRI (cleanupnode.go removeContainers: ListPodSandbox,
/// StopPodSandbox, RemovePodSandbox), which ends the control plane's containers; then a
/// new `kubeadm init` works. Stopping the kubelet alone ends nothing (the runtime keeps
/// the pods), and the next kubelet finds the same processes.
fn real_kubeadm_reset_stops_the_control_plane_and_init_works_again(
    tb: &testbed::Testbed,
    k8s: &RealRelease,
) {
    // One ready sandbox per static pod in the real containerd, each process in a PID
    // namespace of its own (its sandbox's).
    let want: Vec<String> = [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ]
    .iter()
    .map(|p| format!("SANDBOX_READY kube-system/{p}-node1"))
    .collect();
    poll(
        tb,
        "a ready sandbox per static pod",
        || sandboxes(tb),
        &|s: &Vec<String>| *s == want,
    );
    let procs = control_plane_processes(tb);
    assert_eq!(procs.len(), 4, "{procs:#?}");
    assert!(procs.iter().all(|p| p.ends_with(" own")), "{procs:#?}");

    // The kubelet stops: every process stays, the API server answers; a new kubelet
    // adopts them (same pids) and their sandboxes.
    let found = || {
        exec(
            tb,
            "node1",
            "grep -c ' found .* running (pid' /usr/local/lib/testbed/units/kubelet.log",
        )
        .stdout
        .trim()
        .parse::<u32>()
        .unwrap_or(0)
    };
    let found_before = found();
    exec_ok(tb, "node1", "systemctl stop kubelet");
    assert_eq!(control_plane_processes(tb), procs);
    let kubectl = k8s.bin("kubectl").display().to_string();
    exec_ok(tb, "node1", &format!("{kubectl} {ADMIN} get --raw /readyz"));
    exec_ok(tb, "node1", "systemctl start kubelet");
    poll(
        tb,
        "the restarted kubelet found the four processes running",
        found,
        &|n: &u32| *n >= found_before + 4,
    );
    assert_eq!(control_plane_processes(tb), procs);
    assert_eq!(sandboxes(tb), want);

    let kubeadm = k8s.bin("kubeadm").display().to_string();
    exec(tb, "node1", &format!("{kubeadm} reset -f")).expect(
        "kubeadm reset -f",
        0,
        &[
            "[reset] Stopping the kubelet service",
            "[reset] Deleting contents of directories",
        ],
    );
    poll(
        tb,
        "no control-plane process and ports 6443/2379 free after kubeadm reset",
        || control_plane_left(tb),
        &|left: &String| left.is_empty(),
    );
    assert_eq!(sandboxes(tb), Vec::<String>::new());
    kubeadm_init(tb, k8s);
}
