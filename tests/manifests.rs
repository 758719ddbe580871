//! End-to-end: the inventory's `manifests:` applied by `up` once every node is Ready.
//!
//! The WordPress example's manifests land where the nodes' labels say and their
//! Deployments roll out; a second `up` changes nothing (the record in the ConfigMap
//! kube-system/bootstrap-manifests matches every manifest's sha256) and `plan` exits 0;
//! a changed manifest is planned (exit 2) and re-applied alone; a manifest whose pod can
//! never be scheduled makes `up` fail once its rollout wait runs out of `--timeout`,
//! naming the manifest and the host; one the API server rejects makes it exit 6 with the
//! server's message and stays unrecorded; `status` shows a changed manifest as drift; an
//! https URL is fetched by the control plane and recorded under the URL; a StatefulSet
//! rolls out.
//!
//! On the REAL control plane (issue 9, tests/up_real.rs): the manifests go to the real
//! kube-apiserver through the real kubectl, the real controller-manager and scheduler
//! make and place their pods, and the rejection, rollout timeout and record are theirs.
//! Needs root and the built release (the first run builds it).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::snapshot::{assert_converged_up, assert_unchanged, Snapshot};
use support::{article_decls, pod_placement, real_version, run_on, running, Inventory};
use testbed::Testbed;

const KUBECTL: &str = "kubectl --kubeconfig /etc/kubernetes/admin.conf";

/// The article's 2-host inventory at [`real_version`] (node1: the control plane labeled
/// type=mysql without its taint, node2: a worker labeled type=wordpress) listing
/// `manifests` (as written), with the WordPress example's manifests copied next to it
/// under apps/.
fn inventory(tb: &Testbed, manifests: &[&str]) -> PathBuf {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/wordpress");
    let dir = tb.dir().join("apps");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["mysql.yaml", "wordpress.yaml"] {
        if !dir.join(f).exists() {
            std::fs::copy(example.join(f), dir.join(f)).unwrap();
        }
    }
    let version = real_version();
    Inventory {
        manifests,
        version: &version,
        ..Inventory::new(&article_decls()[..2])
    }
    .write(tb)
}

/// `kubectl ARGS` on the control plane, which must succeed.
fn kubectl(tb: &Testbed, args: &str) -> String {
    let out = tb
        .exec("node1", &["sh", "-c", &format!("{KUBECTL} {args}")])
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The record's lines: `sha256:HEX NAME`.
fn record(tb: &Testbed) -> Vec<String> {
    kubectl(
        tb,
        "-n kube-system get configmap bootstrap-manifests -o jsonpath={.data.applied}",
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// `sha256sum` of a file, as the record writes it.
fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    format!("sha256:{}", text.split_whitespace().next().unwrap())
}

/// The kubectl command lines node1 ran since audit record `mark` (the argv of every
/// kubectl invocation, joined; the real kubectl is audited like the stand-ins were).
fn kubectl_runs_since(tb: &Testbed, mark: usize) -> Vec<String> {
    tb.audit("node1").unwrap()[mark..]
        .iter()
        .filter(|r| r.kind == "cmd" && r.argv.first().is_some_and(|a| a == "kubectl"))
        .map(|r| r.argv.join(" "))
        .collect()
}

#[test]
fn manifests_are_applied_in_order_once_and_again_when_they_change() {
    let tb = support::real_testbed(2);
    let apps = tb.dir().join("apps");
    let inv = inventory(&tb, &["apps/mysql.yaml", "apps/wordpress.yaml"]);

    // 1. up: the cluster, then the manifests in order, each rolled out.
    let mark = tb.audit("node1").unwrap().len();
    let run = run_on(&tb, &["up", "--timeout", "10m"], &inv, &[]);
    assert_eq!(run.code, Some(0), "up failed:\n{}", run.stderr);
    for m in ["apps/mysql.yaml", "apps/wordpress.yaml"] {
        let planned = format!("manifests: apply {m} (it was never applied to this cluster)");
        assert!(run.stderr.contains(&planned), "{}", run.stderr);
    }
    assert_eq!(
        pod_placement(&tb, "node1").0,
        vec![running("mysql", "node1"), running("wordpress", "node2")]
    );
    for d in ["mysql", "wordpress"] {
        let v: Value =
            serde_json::from_str(&kubectl(&tb, &format!("get deployment {d} -o json"))).unwrap();
        assert_eq!(v["status"]["availableReplicas"], 1, "{d}: {v:#}");
    }
    let runs = kubectl_runs_since(&tb, mark);
    let at = |needle: &str| {
        runs.iter()
            .position(|r| r.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in {runs:#?}"))
    };
    // MySQL is applied and rolled out before WordPress is applied; both after Ready.
    // (Calico's manifest is applied from stdin too, before the nodes are Ready.)
    let ready = at("wait --for=condition=Ready node --all");
    let calico = at("apply -f -");
    assert!(calico < ready, "{runs:#?}");
    let after_ready = &runs[ready..];
    assert!(after_ready.iter().any(|r| r.contains(" apply -f -")));
    assert!(at("rollout status deployment/mysql") < at("rollout status deployment/wordpress"));
    let applies = after_ready
        .iter()
        .filter(|r| r.contains(" apply -f -"))
        .count();
    assert_eq!(
        applies, 4,
        "two manifests and two record updates: {runs:#?}"
    );
    assert_eq!(
        record(&tb),
        vec![
            format!("{} apps/mysql.yaml", sha256(&apps.join("mysql.yaml"))),
            format!(
                "{} apps/wordpress.yaml",
                sha256(&apps.join("wordpress.yaml"))
            ),
        ]
    );

    // 2. A second up applies nothing and changes nothing; plan agrees.
    let mark = tb.audit("node1").unwrap().len();
    assert_converged_up(&tb, &inv, "a second up");
    let runs = kubectl_runs_since(&tb, mark);
    assert!(
        !runs
            .iter()
            .any(|r| r.contains(" apply ") || r.contains("rollout")),
        "{runs:#?}"
    );

    // 3. A changed manifest: plan lists it (exit 2), up applies it and only it.
    let wp = apps.join("wordpress.yaml");
    let text = std::fs::read_to_string(&wp).unwrap();
    std::fs::write(&wp, text.replace("replicas: 1", "replicas: 2")).unwrap();
    let run = run_on(&tb, &["plan"], &inv, &[]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "manifests: apply apps/wordpress.yaml (its content changed since it was applied: sha256:"
        ),
        "{}", run.stderr
    );
    assert!(
        !run.stderr.contains("apply apps/mysql.yaml"),
        "{}",
        run.stderr
    );
    let run = run_on(&tb, &["plan", "--output", "json"], &inv, &[]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    let doc = run.document();
    let steps: Vec<&Value> = doc["cluster"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["phase"] == "manifests")
        .collect();
    assert_eq!(steps.len(), 1, "{doc:#}");
    assert_eq!(steps[0]["step"], "apply apps/wordpress.yaml");
    assert_eq!(steps[0]["host"], "node1");

    // status reports it as the control plane's drift.
    let run = run_on(&tb, &["status", "--output", "json"], &inv, &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let status = run.document();
    let node1 = status["drift"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["host"] == "node1")
        .unwrap();
    assert_eq!(node1["in_sync"], false, "{status:#}");
    let differences = node1["differences"].to_string();
    assert!(
        differences.contains("manifests: apply apps/wordpress.yaml (its content changed"),
        "{differences}"
    );

    let mark = tb.audit("node1").unwrap().len();
    let run = run_on(&tb, &["up", "--timeout", "5m"], &inv, &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let runs = kubectl_runs_since(&tb, mark);
    let rollouts: Vec<&String> = runs
        .iter()
        .filter(|r| r.contains("rollout status"))
        .collect();
    assert_eq!(rollouts.len(), 1, "{runs:#?}");
    assert!(rollouts[0].contains("deployment/wordpress"), "{rollouts:?}");
    assert_eq!(
        pod_placement(&tb, "node1").0,
        vec![
            running("mysql", "node1"),
            running("wordpress", "node2"),
            running("wordpress", "node2")
        ]
    );
    assert_eq!(
        record(&tb)[1],
        format!("{} apps/wordpress.yaml", sha256(&wp))
    );

    // 4. A manifest whose pod fits no node: its rollout wait runs out of --timeout, up
    // fails naming the manifest and the host, and the manifest stays unrecorded.
    let stuck = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: stuck}\nspec:\n  \
                 selector: {matchLabels: {app: stuck}}\n  template:\n    metadata: {labels: {app: stuck}}\n    \
                 spec:\n      nodeSelector: {type: nowhere}\n      containers: [{name: c, image: nginx:1.27}]\n";
    std::fs::write(apps.join("stuck.yaml"), stuck).unwrap();
    let inv = inventory(
        &tb,
        &["apps/mysql.yaml", "apps/wordpress.yaml", "apps/stuck.yaml"],
    );
    let run = run_on(&tb, &["up", "--timeout", "8s"], &inv, &[]);
    assert_ne!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("node1: manifest-rollout: wait for the rollout of stuck (apps/stuck.yaml)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("error: timed out waiting for the condition"),
        "{}",
        run.stderr
    );
    assert_eq!(record(&tb).len(), 2, "stuck.yaml is not recorded");
    let run = run_on(&tb, &["plan"], &inv, &[]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("manifests: apply apps/stuck.yaml (it was never applied to this cluster)"),
        "{}",
        run.stderr
    );

    // 5. A manifest the API server rejects (its namespace does not exist): up exits 6
    // with the server's message, under the control plane's name, and records nothing.
    let lost = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lost, namespace: nowhere}\n\
                data: {a: b}\n";
    std::fs::write(apps.join("lost.yaml"), lost).unwrap();
    let inv = inventory(
        &tb,
        &["apps/mysql.yaml", "apps/wordpress.yaml", "apps/lost.yaml"],
    );
    let recorded = record(&tb);
    let run = run_on(&tb, &["up", "--timeout", "5m"], &inv, &[]);
    assert_eq!(run.code, Some(6), "{}", run.stderr);
    assert!(
        run.stderr.contains("node1: manifest-apply")
            && run.stderr.contains("namespaces \"nowhere\" not found"),
        "{}",
        run.stderr
    );
    assert_eq!(record(&tb), recorded, "lost.yaml is not recorded");

    // 6. A URL the control plane cannot fetch stops the plan before anything changes,
    // with curl's own error, under the control plane's name.
    let inv = inventory(&tb, &["https://manifests.example.invalid/v1/app.yaml"]);
    let before = Snapshot::of(&tb, "node1");
    let run = run_on(&tb, &["up", "--timeout", "5m"], &inv, &[]);
    assert_ne!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("cannot fetch the manifest https://manifests.example.invalid/v1/app.yaml"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("Could not resolve host"),
        "{}",
        run.stderr
    );
    assert_unchanged(
        &tb,
        "node1",
        &before,
        "an up whose manifest cannot be fetched",
    );

    // 7. A URL the control plane can fetch (the Calico release manifest the testbed
    // serves): fetched while planning, applied once, its workloads waited on in their
    // own namespace, recorded under the URL; the next plan has nothing to do.
    let url =
        "https://raw.githubusercontent.com/projectcalico/calico/v3.30.3/manifests/calico.yaml";
    let inv = inventory(&tb, &["apps/mysql.yaml", "apps/wordpress.yaml", url]);
    let mark = tb.audit("node1").unwrap().len();
    let run = run_on(&tb, &["up", "--timeout", "5m"], &inv, &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let audit = tb.audit("node1").unwrap();
    assert!(
        audit[mark..].iter().any(|r| r.kind == "cmd"
            && r.argv.join(" ") == format!("curl --proto =https --proto-redir =https --connect-timeout 30 --speed-limit 1 --speed-time 30 -fsSL {url}")),
        "the control plane fetched {url}, https only"
    );
    let runs = kubectl_runs_since(&tb, mark);
    assert!(
        runs.iter()
            .any(|r| r.contains("-n kube-system rollout status daemonset/calico-node")),
        "{runs:#?}"
    );
    assert_eq!(
        runs.iter().filter(|r| r.contains(" apply -f -")).count(),
        2,
        "the URL's manifest and the record, nothing else: {runs:#?}"
    );
    let lines = record(&tb);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[2].starts_with("sha256:") && lines[2].ends_with(&format!(" {url}")),
        "{lines:?}"
    );
    let run = run_on(&tb, &["plan"], &inv, &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);

    // 8. A StatefulSet (and its headless Service): up waits for its rollout, its pods
    // db-0 and db-1 run, it is recorded, and the next up changes nothing.
    let db = "apiVersion: v1\nkind: Service\nmetadata: {name: db}\n\
              spec: {clusterIP: None, selector: {app: db}, ports: [{port: 5432}]}\n---\n\
              apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  \
              serviceName: db\n  replicas: 2\n  selector: {matchLabels: {app: db}}\n  \
              template:\n    metadata: {labels: {app: db}}\n    \
              spec: {containers: [{name: db, image: postgres:16}]}\n";
    std::fs::write(apps.join("db.yaml"), db).unwrap();
    let inv = inventory(
        &tb,
        &[
            "apps/mysql.yaml",
            "apps/wordpress.yaml",
            url,
            "apps/db.yaml",
        ],
    );
    let run = run_on(&tb, &["up", "--timeout", "5m"], &inv, &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let lines = record(&tb);
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines[3].ends_with(" apps/db.yaml"), "{lines:?}");
    let pods = kubectl(
        &tb,
        "get pods -l app=db -o jsonpath='{range .items[*]}{.metadata.name} {.status.phase}{\"\\n\"}{end}'",
    );
    assert_eq!(pods, "db-0 Running\ndb-1 Running\n");
    assert_converged_up(&tb, &inv, "up after the StatefulSet");
}
