//! Helpers the end-to-end tests share (`mod support;` in each test file): the testbed,
//! inventories written for it, commands on its hosts, the article's workloads, and the
//! JSON Schemas of docs/schema/ that `--output json` documents must follow.
//!
//! Each test binary compiles this module on its own and uses part of it.
#![allow(dead_code)]

pub mod snapshot;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use testbed::Testbed;

mod check;
#[allow(unused_imports)]
pub(crate) use check::check;

pub const VERSION: &str = "1.34.2";
pub const CALICO: &str = "v3.30.3";
pub const KUBECTL: &[&str] = &["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf"];

/// What the inventory declares for one host.
#[derive(Clone)]
pub struct Decl {
    pub role: &'static str,
    pub labels: &'static [(&'static str, &'static str)],
    /// None: the role's default; Some(list): exactly these (`k=v:Effect`).
    pub taints: Option<&'static [&'static str]>,
}

impl Decl {
    /// `role` with `labels` and `taints` (None: the role's default).
    pub const fn new(
        role: &'static str,
        labels: &'static [(&'static str, &'static str)],
        taints: Option<&'static [&'static str]>,
    ) -> Decl {
        Decl {
            role,
            labels,
            taints,
        }
    }
}

pub fn testbed(hosts: usize, user: &str) -> Testbed {
    Testbed::builder()
        .hosts(hosts)
        .user(user)
        .build()
        .unwrap_or_else(|e| panic!("cannot build the testbed (run as root; build tb-sim with `cargo build -p testbed`): {e}"))
}

/// The Kubernetes release testbed/k8s/build.sh builds (kubeadm, kubectl, the control
/// plane; the first call builds it, cached), as an inventory's `kubernetesVersion`:
/// `1.35.4`.
pub fn real_version() -> String {
    testbed::k8s::DEFAULT_RELEASE
        .trim_start_matches('v')
        .to_string()
}

/// A testbed on the REAL control plane (issue 9): real packages and containerd, the
/// kubeadm and kubectl packages of [`real_version`] carrying the built binaries, and the
/// kubelet units running the kubelet stand-in against the real API server
/// (testbed/STANDINS-kubelet-real.md). Inventories for it use [`real_version`].
pub fn real_testbed(hosts: usize) -> Testbed {
    real_testbed_as(hosts, "root")
}

/// [`real_testbed`] whose SSH login is `user` (not root: the tool's commands go through
/// sudo).
pub fn real_testbed_as(hosts: usize, user: &str) -> Testbed {
    real_builder(hosts)
        .user(user)
        .build()
        .unwrap_or_else(|e| panic!("cannot build a {hosts}-host real-Kubernetes testbed: {e}"))
}

/// A testbed builder on the REAL control plane (as [`real_testbed`]) whose kubeadm and
/// kubectl packages of every release in `releases` (e.g. `["v1.34.2", "v1.35.4"]`) carry
/// the built programs: each is built or reused first, so none of them is served by a
/// stand-in (the repository makes real packages of the releases built when the testbed
/// is). For tests that install a release other than [`real_version`] or move between
/// releases; add hosts, user, OS ... as usual.
pub fn real_releases(releases: &[&str]) -> testbed::Builder {
    for r in releases.iter().skip(1) {
        testbed::k8s::real_release_for_hosts(r)
            .unwrap_or_else(|e| panic!("cannot build the real Kubernetes release {r}: {e}"));
    }
    let first = releases
        .first()
        .copied()
        .unwrap_or(testbed::k8s::DEFAULT_RELEASE);
    Testbed::builder()
        .real_kubernetes_release(first)
        .unwrap_or_else(|e| panic!("cannot build the real Kubernetes release {first}: {e}"))
}

/// `kubeadm config validate --config FILE` of the REAL kubeadm of `release` (e.g.
/// "v1.35.4", built or reused by testbed/k8s/build.sh) on `config`, run on this machine:
/// kubeadm's own decoding, defaulting and validation, which `kubeadm init --config` and
/// `kubeadm join --config` run before touching a host.
pub fn real_kubeadm_validate(release: &str, config: &str) -> std::process::Output {
    let k8s = testbed::k8s::real_release(release)
        .unwrap_or_else(|e| panic!("cannot build the real Kubernetes release {release}: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kubeadm.yaml");
    std::fs::write(&file, config).unwrap();
    k8s.command("kubeadm")
        .args(["config", "validate", "--config"])
        .arg(&file)
        .output()
        .unwrap()
}

/// The builder of [`real_testbed`] (`hosts` hosts, the release of [`real_version`]), for
/// tests that also set what the hosts are (another OS, public addresses, certificates).
pub fn real_builder(hosts: usize) -> testbed::Builder {
    real_releases(&[testbed::k8s::DEFAULT_RELEASE]).hosts(hosts)
}

/// An inventory for a testbed's hosts, written by [`Inventory::write`]: the first
/// `decls.len()` hosts of the testbed, in order, one `decls` entry each.
pub struct Inventory<'a> {
    /// `cluster.name`.
    pub name: &'a str,
    /// `cluster.kubernetesVersion`.
    pub version: &'a str,
    /// `cluster.calico.version`.
    /// `cluster.calico.version`; empty: not written (the tool picks one for the
    /// Kubernetes minor).
    pub calico: &'a str,
    /// `cluster.calico.manifest`, as YAML (`null`: the release's URL).
    pub calico_manifest: &'a str,
    /// `manifests:`, as written (paths relative to the inventory, or URLs).
    pub manifests: &'a [&'a str],
    /// `cluster.packageLockWait`, as written; empty: not written (10 minutes).
    pub package_lock_wait: &'a str,
    pub decls: &'a [Decl],
}

impl<'a> Inventory<'a> {
    /// Cluster `e2e` at [`VERSION`] with Calico [`CALICO`] from its release URL.
    pub fn new(decls: &'a [Decl]) -> Inventory<'a> {
        Inventory {
            name: "e2e",
            version: VERSION,
            calico: CALICO,
            calico_manifest: "null",
            manifests: &[],
            package_lock_wait: "",
            decls,
        }
    }

    /// Writes it as `inventory.yaml` into the testbed's directory (replacing the last).
    pub fn write(&self, tb: &Testbed) -> PathBuf {
        let hosts = tb.hosts();
        assert!(
            self.decls.len() <= hosts.len(),
            "more declarations than hosts"
        );
        let h0 = &hosts[0];
        let calico_version = if self.calico.is_empty() {
            String::new()
        } else {
            format!("version: {}, ", self.calico)
        };
        let lock_wait = if self.package_lock_wait.is_empty() {
            String::new()
        } else {
            format!("  packageLockWait: {}\n", self.package_lock_wait)
        };
        let mut y = format!(
            "cluster:\n  name: {}\n  kubernetesVersion: {}\n  calico: {{{}manifest: {}}}\n{}\
             ssh:\n  user: {}\n  port: {}\n  identityFile: {}\n  knownHostsFile: {}\nhosts:\n",
            self.name,
            self.version,
            calico_version,
            self.calico_manifest,
            lock_wait,
            h0.user,
            h0.port,
            json(&h0.identity_file.display().to_string()),
            json(&h0.known_hosts.display().to_string()),
        );
        for (h, d) in hosts.iter().zip(self.decls) {
            let labels: serde_json::Map<String, Value> = d
                .labels
                .iter()
                .map(|(k, v)| (k.to_string(), Value::from(*v)))
                .collect();
            y += &format!(
                "  - name: {}\n    address: {}\n    role: {}\n    labels: {}\n",
                h.name,
                h.address,
                d.role,
                Value::Object(labels)
            );
            if let Some(t) = d.taints {
                y += &format!("    taints: {}\n", serde_json::to_string(t).unwrap());
            }
        }
        if !self.manifests.is_empty() {
            y += "manifests:\n";
            for m in self.manifests {
                y += &format!("  - {m}\n");
            }
        }
        let path = tb.dir().join("inventory.yaml");
        std::fs::write(&path, y).unwrap();
        path
    }
}

/// [`Inventory::new`]`(decls)` written for `tb`.
pub fn inventory(tb: &Testbed, decls: &[Decl]) -> PathBuf {
    Inventory::new(decls).write(tb)
}

/// [`Inventory::new`]`(decls)` at [`real_version`], written for `tb` (a [`real_testbed`]:
/// only a built release's packages carry the real kubeadm and kubectl).
pub fn real_inventory(tb: &Testbed, decls: &[Decl]) -> PathBuf {
    let version = real_version();
    Inventory {
        version: &version,
        ..Inventory::new(decls)
    }
    .write(tb)
}

/// Calls `fetch` every second until `ok` holds for its value, which it returns; panics
/// with `what` and the last value after `limit`. The real control plane is eventually
/// consistent: what it reaches on its own is waited for, boundedly, not asserted once.
pub fn eventually<T: std::fmt::Debug>(
    what: &str,
    limit: std::time::Duration,
    mut fetch: impl FnMut() -> T,
    ok: impl Fn(&T) -> bool,
) -> T {
    let started = std::time::Instant::now();
    loop {
        let value = fetch();
        if ok(&value) {
            return value;
        }
        if started.elapsed() > limit {
            panic!("{what}: not after {limit:?}: {value:#?}");
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// A control plane and `workers` workers, no labels, default taints.
pub fn plain_decls(workers: usize) -> Vec<Decl> {
    std::iter::once(Decl::new("control-plane", &[], None))
        .chain((0..workers).map(|_| Decl::new("worker", &[], None)))
        .collect()
}

pub fn json(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// The article's layout (inventory.example): the control plane labeled `type=mysql`
/// without its taint, then workers labeled `type=wordpress`, the third also tainted.
pub fn article_decls() -> Vec<Decl> {
    vec![
        Decl {
            role: "control-plane",
            labels: &[("type", "mysql")],
            taints: Some(&[]),
        },
        Decl {
            role: "worker",
            labels: &[("type", "wordpress")],
            taints: None,
        },
        Decl {
            role: "worker",
            labels: &[("type", "wordpress"), ("example.com/tier", "db")],
            taints: Some(&["dedicated=db:NoSchedule"]),
        },
    ]
}

/// A Node's taints as `key=value:effect` (`dedicated=db:NoSchedule`), but the node
/// lifecycle controller's (`node.kubernetes.io/not-ready` and the like come and go with the
/// Node's conditions, and lag them).
pub fn node_taints(node: &Value) -> Vec<String> {
    node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let s = |k: &str| t[k].as_str().unwrap_or("").to_string();
            format!("{}={}:{}", s("key"), s("value"), s("effect"))
        })
        .filter(|t| !t.starts_with("node.kubernetes.io/"))
        .collect()
}

/// Whether the Node carries one of the node lifecycle controller's node.kubernetes.io/*
/// taints (not-ready, unreachable: they follow the Node's conditions, a monitor period
/// late), which a test waits to see lifted.
pub fn has_lifecycle_taint(node: &Value) -> bool {
    node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .any(is_lifecycle_taint)
}

/// Whether `taint` is one of the node lifecycle controller's (key node.kubernetes.io/*).
pub fn is_lifecycle_taint(taint: &Value) -> bool {
    taint["key"]
        .as_str()
        .is_some_and(|k| k.starts_with("node.kubernetes.io/"))
}

/// Runs `argv` on `host`; it must succeed. Its stdout.
pub fn exec(tb: &Testbed, host: &str, argv: &[&str]) -> String {
    let out = tb.exec(host, argv).unwrap();
    assert!(
        out.status.success(),
        "{host}: {argv:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The calico-node image the API server holds (`docker.io/calico/node:v3.30.3`), asked
/// through kubectl on the control plane `cp`.
pub fn calico_image(tb: &Testbed, cp: &str) -> String {
    calico_node(
        tb,
        cp,
        "jsonpath={.spec.template.spec.containers[0].image}",
        &[],
    )
}

/// The calico-node DaemonSet as the API server holds it, with its managed fields (which
/// field manager wrote what, and how: `Apply` for a server-side apply), asked through
/// kubectl on the control plane `cp`.
pub fn calico_node_daemonset(tb: &Testbed, cp: &str) -> Value {
    serde_json::from_str(&calico_node(tb, cp, "json", &["--show-managed-fields"]))
        .expect("kubectl -o json prints JSON")
}

/// `kubectl -n kube-system get daemonset calico-node -o OUTPUT EXTRA...` on `cp` (only
/// [`calico_node_daemonset`]'s JSON asks for the managed fields).
fn calico_node(tb: &Testbed, cp: &str, output: &str, extra: &[&str]) -> String {
    let argv: Vec<&str> = KUBECTL
        .iter()
        .copied()
        .chain([
            "-n",
            "kube-system",
            "get",
            "daemonset",
            "calico-node",
            "-o",
            output,
        ])
        .chain(extra.iter().copied())
        .collect();
    exec(tb, cp, &argv)
}

/// Applies examples/wordpress/ (MySQL, WordPress) through kubectl on `cp`, scales
/// WordPress to 2 and waits for both rollouts.
pub fn deploy_wordpress(tb: &Testbed, cp: &str) {
    let kubectl = KUBECTL.join(" ");
    for manifest in ["mysql.yaml", "wordpress.yaml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/wordpress")
            .join(manifest);
        let yaml = std::fs::read_to_string(&path).unwrap();
        let script = format!("{kubectl} apply -f - <<'EOF'\n{yaml}\nEOF\n");
        exec(tb, cp, &["sh", "-c", &script]);
    }
    let scale = format!("{kubectl} scale deployment wordpress --replicas=2");
    exec(tb, cp, &["sh", "-c", &scale]);
    for deploy in ["mysql", "wordpress"] {
        let wait = format!("{kubectl} rollout status deployment/{deploy} --timeout=60s");
        exec(tb, cp, &["sh", "-c", &wait]);
    }
}

/// The article's outcome, through kubectl on `cp`: after [`deploy_wordpress`], MySQL
/// runs on node1 (`type=mysql`, no control-plane taint) and both WordPress replicas on
/// node2 (`type=wordpress`; a node3 is tainted `dedicated=db:NoSchedule`).
pub fn assert_wordpress_where_the_labels_say(tb: &Testbed, cp: &str) {
    deploy_wordpress(tb, cp);
    let (placed, pods) = pod_placement(tb, cp);
    assert_eq!(
        placed,
        vec![
            running("mysql", "node1"),
            running("wordpress", "node2"),
            running("wordpress", "node2")
        ],
        "{pods:#}"
    );
}

/// Every pod as (app label, node, phase), sorted; and the pod list for messages.
pub fn pod_placement(tb: &Testbed, cp: &str) -> (Vec<(String, String, String)>, Value) {
    let kubectl = KUBECTL.join(" ");
    let pods: Value = serde_json::from_str(&exec(
        tb,
        cp,
        &["sh", "-c", &format!("{kubectl} get pods -o json")],
    ))
    .unwrap();
    let field = |p: &Value| p.as_str().unwrap_or("").to_string();
    let mut placed: Vec<(String, String, String)> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                field(&p["metadata"]["labels"]["app"]),
                field(&p["spec"]["nodeName"]),
                field(&p["status"]["phase"]),
            )
        })
        .collect();
    placed.sort();
    (placed, pods)
}

/// (app, node, "Running"): a pod as [`pod_placement`] lists it.
pub fn running(app: &str, node: &str) -> (String, String, String) {
    (app.to_string(), node.to_string(), "Running".to_string())
}

/// What a run of the built binary left: exit code, stdout, stderr.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// Exit code 0.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// stdout as the JSON document it must be, checked against its schema.
    pub fn document(&self) -> Value {
        let doc: Value = serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        });
        assert_valid(&doc);
        doc
    }
}

/// Variables of one `bootstrap` run on top of [`bootstrap_command`]'s clean slate:
/// `(NAME, Some(value))` sets one, `(NAME, None)` removes one.
pub type Env<'a> = &'a [(&'a str, Option<&'a str>)];

/// `bootstrap ARGS` ready to run from a clean slate: none of the caller's `BOOTSTRAP_*`,
/// `CI` or `KUBECONFIG`, then CI=1 (no test answers a prompt), then `env`; stdin is
/// /dev/null, not a terminal. For tests that spawn it; others use [`run_bootstrap`].
pub fn bootstrap_command(args: &[&str], env: Env) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bootstrap"));
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("BOOTSTRAP_") || k == "CI" || k == "KUBECONFIG" {
            cmd.env_remove(&key);
        }
    }
    cmd.env("CI", "1");
    for (key, value) in env {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    cmd.args(args).stdin(Stdio::null());
    cmd
}

/// Runs [`bootstrap_command`]`(args, env)` and waits for it; prints what it said.
pub fn run_bootstrap(args: &[&str], env: Env) -> Ran {
    run_command(
        bootstrap_command(args, env),
        &format!("bootstrap {args:?} {env:?}"),
    )
}

/// Runs `cmd` (e.g. [`bootstrap_command`] behind a wrapper) and waits for it; prints
/// what it said under `label`.
pub fn run_command(mut cmd: Command, label: &str) -> Ran {
    let out = cmd.output().expect("run bootstrap");
    let ran = Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!(
        "--- {label} exited {:?}; stdout:\n{}\nstderr:\n{}",
        ran.code, ran.stdout, ran.stderr
    );
    ran
}

/// `bootstrap ARGS INVENTORY --log-dir <testbed>/runs` through [`run_bootstrap`].
pub fn run_on(tb: &Testbed, args: &[&str], inv: &Path, env: Env) -> Ran {
    let runs = tb.dir().join("runs");
    let mut argv = args.to_vec();
    argv.extend([inv.to_str().unwrap(), "--log-dir", runs.to_str().unwrap()]);
    run_bootstrap(&argv, env)
}

/// Every file under `dir` (recursively) with its text.
pub fn files_under(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
            out.push((p, text));
        }
    }
    out
}

/// The base URI of docs/schema/'s `$id`s.
const SCHEMA_BASE: &str = "https://bootstrap.example/schema/";

/// Asserts that `doc` follows the JSON Schema its `schema` field names
/// (`bootstrap/<command>/v1` -> docs/schema/<command>.json), every schema of
/// docs/schema/ available to `$ref`s between them.
pub fn assert_valid(doc: &Value) {
    let name = doc["schema"]
        .as_str()
        .unwrap_or_else(|| panic!("no `schema` field: {doc:#}"));
    let command = name
        .strip_prefix("bootstrap/")
        .and_then(|n| n.strip_suffix("/v1"))
        .unwrap_or_else(|| panic!("unknown schema {name}"));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schema");
    let mut registry = jsonschema::Registry::new();
    for f in ["up", "reset", "plan", "status"] {
        let text = std::fs::read_to_string(dir.join(format!("{f}.json"))).unwrap();
        let schema: Value = serde_json::from_str(&text).unwrap();
        registry = registry
            .add(format!("{SCHEMA_BASE}{f}.json"), schema)
            .unwrap_or_else(|e| panic!("docs/schema/{f}.json: {e}"));
    }
    let registry = registry.prepare().expect("docs/schema/ resolves");
    let root = serde_json::json!({ "$ref": format!("{SCHEMA_BASE}{command}.json") });
    let validator = jsonschema::options()
        .with_registry(&registry)
        .build(&root)
        .unwrap_or_else(|e| panic!("docs/schema/{command}.json: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "the {command} document does not follow docs/schema/{command}.json:\n{}\n{doc:#}",
        errors.join("\n")
    );
}
