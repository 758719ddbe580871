//! What a host and the cluster look like, observed the way one would on real machines, to
//! prove that a run changed nothing (or exactly what it should): no stand-in bookkeeping
//! (the audit log's `changed` flags) is read, so the proof holds whichever real programs
//! the testbed runs.
//!
//! A host is
//! - every path in its private filesystem layers (the overlay upper layers under
//!   `DIR/hosts/NAME/upper/`, which hold everything the host ever wrote or deleted): kind,
//!   mode, owner, and the SHA-256 of a file's content or a symlink's target; a deletion of
//!   a path of the machine's image is the overlay's whiteout. Directory and file times are
//!   not compared: rewriting a file with the same bytes is no change;
//! - the units `systemctl list-unit-files` / `list-units --all` report (services and
//!   sockets): enabled state and active state;
//! - the packages `dpkg-query -W` reports (version and dpkg's status) and the holds of
//!   `apt-mark showhold`.
//!
//! The cluster is every object `kubectl get` lists of every resource
//! `kubectl api-resources --verbs=list` names, read with the control plane's admin.conf:
//! identity, metadata (labels, annotations, owners, finalizers), spec and data. Left out,
//! because they change by themselves:
//! - `status`: written by the kubelet and the controllers all the time (heartbeats,
//!   conditions, replica counts);
//! - `metadata.resourceVersion`: bumped by every status write;
//! - `metadata.managedFields[].time`: the time of the last write of each field manager,
//!   status writes included (the managers and their fields are compared);
//! - Events (`events`, `events.events.k8s.io`): what happened, appended by every component;
//! - Leases (`leases.coordination.k8s.io`): node heartbeats and leader election, renewed
//!   every few seconds;
//! - a Node's `node.kubernetes.io/*` taints (not-ready, unreachable, ...): the node
//!   lifecycle controller adds and lifts them from the node's Ready condition
//!   (pkg/controller/nodelifecycle, taint-based eviction); the not-ready one was lifted from
//!   a just-joined worker in the middle of an observed `plan` (tests/plan_cmd.rs, session
//!   7). `spec.unschedulable` (a cordon) and every other taint are compared;
//! - Endpoints and EndpointSlices (`endpoints`, `endpointslices.discovery.k8s.io`): the
//!   endpoints and endpointslice controllers rewrite them from the pods' readiness (their
//!   status) whenever a pod of a Service comes or goes Ready (pkg/controller/endpoint,
//!   pkg/controller/endpointslice); the kube-dns ones changed between two observations
//!   while CoreDNS was starting (tests/snapshot.rs, CI of 9affc4f).
//!
//! Secret values are compared by hash, so a failing assertion prints no secret.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Mutex;

use serde_json::Value;
use sha2::{Digest, Sha256};
use testbed::Testbed;

/// Paths in a host's layers that running daemons (and sudo) write on their own, whatever
/// a tool does, and apt's and dpkg's caches and backups that any query or change
/// rewrites: (path, who writes it). Everything else a run changes is a change. Each entry hides
/// what a tool might do wrongly there, so an entry is here only because a converged
/// re-run showed it changing (checked by emptying this list; tests/up.rs
/// three_hosts_converge_and_a_second_run_changes_nothing and a_rebooted_cluster_needs_nothing
/// then fail on exactly these paths; a_user_whose_sudo_wants_a_password_is_refused_before_any_change
/// on /run/sudo) or because it is a log. The real containerd's `/var/lib/containerd` is
/// here (tests/plan.rs host_playbooks_converge_on_ubuntu_24_04 showed its meta.db
/// changing with a restart); the kubelet's pod directories (`/var/lib/kubelet/pods`) are
/// here since the kubelet stand-in keeps one per pod it starts (f887a52); whole
/// `/var/lib/kubelet` never will be: kubeadm writes its config.yaml and kubeadm-flags.env.
pub const DAEMON_PATHS: &[(&str, &str)] = &[
    (
        "/var/lib/etcd",
        "etcd (the API server's store): every heartbeat and status write",
    ),
    (
        "/run/sudo",
        "sudo: its time stamp records (sudoers(5) timestamp_type), rewritten at every authentication",
    ),
    (
        "/var/lib/containerd",
        "the real containerd (Ubuntu 24.04 hosts): its metadata store (meta.db) is rewritten at every start",
    ),
    (
        "/var/lib/kubelet/pods",
        "the kubelet: a directory per pod it runs (pkg/kubelet/kubelet_getters.go getPodDir), made when a pod starts on the node and removed when it goes, e.g. at a rollout",
    ),
    (
        "/var/cache/apt/pkgcache.bin",
        "apt's binary cache of the lists and dpkg's status, rebuilt by any apt query (apt-cache(8), Dir::Cache::pkgcache): facts read holds and versions with apt-mark and apt-cache",
    ),
    (
        "/var/cache/apt/srcpkgcache.bin",
        "apt's source cache, rebuilt with pkgcache.bin (Dir::Cache::srcpkgcache)",
    ),
    (
        "/var/lib/dpkg/status-old",
        "dpkg's copy of the status file before its latest change (dpkg(1), FILES): the state itself is compared as the package list",
    ),
    (
        "/root/.kube/cache",
        "kubectl's discovery and HTTP cache (--cache-dir, default $HOME/.kube/cache), rewritten by any kubectl call, this observation's own included (tests/up_real.rs showed it changing with the real kubectl)",
    ),
    (
        "/var/log",
        "logs, appended by whoever runs: sshd (wtmp, lastlog) on every login, journald, the kubelet's pod logs",
    ),
];

/// Resources that change by themselves (see the module comment).
const SELF_CHANGING: &[&str] = &[
    "events",
    "events.events.k8s.io",
    "leases.coordination.k8s.io",
    "endpoints",
    "endpointslices.discovery.k8s.io",
];

/// One observation: what each key (`node1 file /etc/hosts`, `cluster v1 Node node2`, ...)
/// was. Compare two with [`Snapshot::changes`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot(BTreeMap<String, Value>);

impl Snapshot {
    /// Every running host of the testbed, and the cluster through `control_plane` once
    /// that host has /etc/kubernetes/admin.conf (before `kubeadm init` there is none).
    pub fn of(tb: &Testbed, control_plane: &str) -> Snapshot {
        let mut s = Snapshot::default();
        for h in tb.hosts().iter().filter(|h| tb.is_running(&h.name)) {
            s.0.extend(host(tb, &h.name).0);
        }
        let admin = tb
            .exec(control_plane, &["test", "-e", "/etc/kubernetes/admin.conf"])
            .expect("exec on the control plane");
        if admin.status.success() {
            s.0.extend(cluster(tb, control_plane).0);
        }
        s
    }

    /// Only the keys of `host` (`NAME ...`).
    pub fn of_host(&self, host: &str) -> Snapshot {
        let prefix = format!("{host} ");
        Snapshot(
            self.0
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }

    /// What differs from `before` to `self`, one line each: `+ KEY: VALUE` (new),
    /// `- KEY: VALUE` (gone), `~ KEY: WHAT: OLD -> NEW` (per changed field of an object).
    pub fn changes(&self, before: &Snapshot) -> Vec<String> {
        let mut out = Vec::new();
        for (k, old) in &before.0 {
            match self.0.get(k) {
                None => out.push(format!("- {k}: {}", short(old))),
                Some(new) if new != old => {
                    let mut fields = BTreeMap::new();
                    leaves(old, "", &mut fields);
                    let mut now = BTreeMap::new();
                    leaves(new, "", &mut now);
                    for (path, v) in &fields {
                        match now.get(path) {
                            Some(n) if n == v => {}
                            Some(n) => out.push(format!("~ {k}{path}: {v} -> {n}")),
                            None => out.push(format!("~ {k}{path}: {v} -> (none)")),
                        }
                    }
                    for (path, n) in &now {
                        if !fields.contains_key(path) {
                            out.push(format!("~ {k}{path}: (none) -> {n}"));
                        }
                    }
                }
                Some(_) => {}
            }
        }
        for (k, new) in &self.0 {
            if !before.0.contains_key(k) {
                out.push(format!("+ {k}: {}", short(new)));
            }
        }
        out
    }

    /// The keys, for tests that look for one.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.keys()
    }
}

/// Asserts that nothing observable changed from `before` to now, on any host or in the
/// cluster (`what` says what ran in between).
pub fn assert_unchanged(tb: &Testbed, control_plane: &str, before: &Snapshot, what: &str) {
    let changes = Snapshot::of(tb, control_plane).changes(before);
    assert!(
        changes.is_empty(),
        "{what} changed {} thing(s):\n{}",
        changes.len(),
        changes.join("\n")
    );
}

/// `bootstrap up --output json` on a testbed whose hosts and cluster are already what
/// `inv` declares: it must succeed, change nothing observable on any host or in the
/// cluster, and report every host `unchanged`; `bootstrap plan` then has nothing to do
/// (exit 0, `changes: false`). Returns up's document.
pub fn assert_converged_up(tb: &Testbed, inv: &Path, what: &str) -> Value {
    let cp = tb.hosts()[0].name.clone();
    let before = Snapshot::of(tb, &cp);
    let up = super::run_on(tb, &["up", "--output", "json", "--timeout", "5m"], inv, &[]);
    assert!(up.ok(), "{what}: up failed:\n{}", up.stderr);
    let doc = up.document();
    for h in doc["hosts"].as_array().expect("hosts") {
        assert_eq!(h["result"], "unchanged", "{what}: {h:#}");
    }
    assert_unchanged(tb, &cp, &before, &format!("{what}: up"));
    let plan = super::run_on(tb, &["plan", "--output", "json"], inv, &[]);
    assert_eq!(
        plan.code,
        Some(0),
        "{what}: plan after up:\n{}",
        plan.stderr
    );
    assert_eq!(plan.document()["changes"], false, "{what}: {}", plan.stdout);
    doc
}

/// One line for a whole value: strings as they are, objects as compact JSON.
fn short(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => {
            let text = other.to_string();
            if text.len() > 200 {
                format!("{}...", &text[..200])
            } else {
                text
            }
        }
    }
}

/// Every scalar of `v` under its path (`.metadata.labels.type`, `.spec.taints[0].key`).
fn leaves(v: &Value, path: &str, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                leaves(x, &format!("{path}.{k}"), out);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for (i, x) in a.iter().enumerate() {
                leaves(x, &format!("{path}[{i}]"), out);
            }
        }
        other => {
            out.insert(path.to_string(), other.to_string());
        }
    }
}

/// The observation of one host (see the module comment). Keys start with the host's name.
pub fn host(tb: &Testbed, name: &str) -> Snapshot {
    let mut s = Snapshot::default();
    let mut put = |key: String, v: String| {
        s.0.insert(format!("{name} {key}"), Value::String(v));
    };
    let paths = testbed::layout::HostPaths::new(tb.dir(), name);
    for dir in testbed::layout::OVERLAY_DIRS {
        walk(&paths.upper(dir), dir, &mut |path, what| {
            put(format!("file {path}"), what)
        });
    }

    // (enabled state, active state) per unit: STATE of list-unit-files, ACTIVE of
    // list-units.
    let mut units: BTreeMap<String, [String; 2]> = BTreeMap::new();
    for (slot, list, column) in [
        (0, "list-unit-files", 1),
        (1, "list-units --all --plain", 2),
    ] {
        let script = format!("systemctl {list} --type=service,socket --no-legend --no-pager");
        for l in run(tb, name, &script).lines() {
            if let Some(v) = l.split_whitespace().nth(column) {
                let unit = l.split_whitespace().next().unwrap_or_default();
                units.entry(unit.into()).or_default()[slot] = v.into();
            }
        }
    }
    for (unit, [enabled, active]) in units {
        put(format!("unit {unit}"), format!("{enabled} {active}"));
    }

    let list = run(
        tb,
        name,
        "dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\\n'",
    );
    for l in list.lines() {
        if let Some((pkg, rest)) = l.split_once(' ') {
            // The abbreviation's first letter is the selection (h: hold, what
            // `apt-mark showhold` lists; asked of dpkg, since any apt command rebuilds
            // /var/cache/apt/pkgcache.bin and the snapshot would change the host);
            // the rest is what is installed.
            let (version, abbrev) = rest.split_once(' ').unwrap_or((rest, ""));
            let state = abbrev.get(1..).unwrap_or("").trim();
            put(format!("package {pkg}"), format!("{version} {state}"));
            if abbrev.starts_with('h') {
                put(format!("hold {pkg}"), "held".into());
            }
        }
    }
    s
}

/// `sh -c SCRIPT` on `host` as root; its stdout. It must succeed.
fn run(tb: &Testbed, host: &str, script: &str) -> String {
    super::exec(tb, host, &["sh", "-c", script])
}

/// Walks `upper` (the layer of `dir` inside the host), reporting every path that is not
/// under [`DAEMON_PATHS`] as (path inside the host, "KIND MODE UID:GID [HASH]").
fn walk(upper: &Path, dir: &str, report: &mut dyn FnMut(String, String)) {
    let Ok(entries) = std::fs::read_dir(upper) else {
        return;
    };
    for e in entries.flatten() {
        let path = format!("{dir}/{}", e.file_name().to_string_lossy());
        if DAEMON_PATHS
            .iter()
            .any(|(p, _)| path == *p || path.starts_with(&format!("{p}/")))
        {
            continue;
        }
        let Ok(md) = std::fs::symlink_metadata(e.path()) else {
            continue; // gone while we looked
        };
        let ft = md.file_type();
        let mode = md.mode() & 0o7777;
        let owner = format!("{mode:04o} {}:{}", md.uid(), md.gid());
        let what = if ft.is_char_device() && md.rdev() == 0 {
            "deleted".to_string()
        } else if ft.is_dir() {
            walk(&e.path(), &path, report);
            format!("dir {owner}")
        } else if ft.is_symlink() {
            let target = std::fs::read_link(e.path()).unwrap_or_default();
            format!("symlink {owner} -> {}", target.display())
        } else if ft.is_file() {
            format!("file {owner} sha256:{}", content_hash(&e.path(), &md))
        } else {
            format!("special {owner}")
        };
        report(path, what);
    }
}

/// The SHA-256 of a file's content, remembered by inode and change time: the hosts'
/// package commands are hard links to one 40 MB binary, hashed once per test process.
/// Any write changes the ctime, which nobody can set back.
fn content_hash(path: &Path, md: &std::fs::Metadata) -> String {
    type Id = (u64, u64, u64, i64, i64);
    static HASHES: Mutex<Option<HashMap<Id, String>>> = Mutex::new(None);
    let id = (md.dev(), md.ino(), md.size(), md.ctime(), md.ctime_nsec());
    if let Some(h) = HASHES
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .get(&id)
    {
        return h.clone();
    }
    let hash = match std::fs::read(path) {
        Ok(bytes) => hex(&Sha256::digest(&bytes)),
        Err(e) => format!("unreadable ({e})"),
    };
    HASHES
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .insert(id, hash.clone());
    hash
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The observation of the cluster through kubectl on `control_plane` (see the module
/// comment). Keys are `cluster APIVERSION KIND NAMESPACE/NAME`.
pub fn cluster(tb: &Testbed, control_plane: &str) -> Snapshot {
    let kubectl = super::KUBECTL.join(" ");
    let resources: Vec<String> = run(
        tb,
        control_plane,
        &format!("{kubectl} api-resources --verbs=list -o name"),
    )
    .lines()
    .map(str::trim)
    .filter(|r| !r.is_empty() && !SELF_CHANGING.contains(r))
    .map(String::from)
    .collect();
    assert!(
        !resources.is_empty(),
        "kubectl api-resources listed nothing"
    );
    let list: Value = serde_json::from_str(&run(
        tb,
        control_plane,
        &format!("{kubectl} get {} -A -o json", resources.join(",")),
    ))
    .expect("kubectl get -o json prints JSON");
    let mut s = Snapshot::default();
    for item in list["items"].as_array().into_iter().flatten() {
        let mut o = item.clone();
        let key = format!(
            "cluster {} {} {}/{}",
            o["apiVersion"].as_str().unwrap_or(""),
            o["kind"].as_str().unwrap_or(""),
            o["metadata"]["namespace"].as_str().unwrap_or(""),
            o["metadata"]["name"].as_str().unwrap_or(""),
        );
        if let Some(m) = o.as_object_mut() {
            m.remove("status");
        }
        if o["kind"] == "Node" {
            if let Some(spec) = o["spec"].as_object_mut() {
                if let Some(Value::Array(taints)) = spec.get_mut("taints") {
                    taints.retain(|t| !super::is_lifecycle_taint(t));
                    // The API server drops an empty list: none left is no taints.
                    if taints.is_empty() {
                        spec.remove("taints");
                    }
                }
            }
        }
        if let Some(meta) = o["metadata"].as_object_mut() {
            meta.remove("resourceVersion");
            if let Some(Value::Array(fields)) = meta.get_mut("managedFields") {
                for f in fields {
                    if let Some(f) = f.as_object_mut() {
                        f.remove("time");
                    }
                }
            }
        }
        if o["kind"] == "Secret" {
            for field in ["data", "stringData"] {
                if let Some(Value::Object(data)) = o.get_mut(field) {
                    for v in data.values_mut() {
                        let text = v.as_str().unwrap_or("").as_bytes().to_vec();
                        *v = Value::String(format!("sha256:{}", hex(&Sha256::digest(&text))));
                    }
                }
            }
        }
        s.0.insert(key, o);
    }
    s
}
