//! `bootstrap kubeconfig`: the cluster's admin kubeconfig, ready to use from this machine.
//!
//! kubeadm writes `/etc/kubernetes/admin.conf` on the control plane it initialised. That
//! file names its cluster `kubernetes` and its context `kubernetes-admin@kubernetes`,
//! whatever the cluster is, so two clusters collide in one `~/.kube/config`; and its
//! server is the address the API server advertises, which need not be the endpoint the
//! inventory declares. This reads it (as root, over the same SSH layer as `up`), points
//! it at the inventory's endpoint, renames cluster/user/context after `cluster.name`, and
//! writes it to stdout, to a file, or merged into the user's kubeconfig.
//!
//! The file holds the cluster-admin credentials: it is never logged (the run log gets
//! the command, not its output), files are created 0600 before a byte is written, and
//! every credential value is registered as a secret for whatever text could quote it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_yaml::{Mapping, Value};

use crate::inventory;
use crate::private_file;
use crate::runlog::RunLog;
use crate::ssh::{self, Output, RemoteCommand};

/// Where kubeadm writes the admin kubeconfig on a control plane (reference §4).
pub const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";

/// The exit status of the read script when admin.conf does not exist (`cat` never
/// exits 3), so "not initialised" is told apart from any other failure.
const MISSING_STATUS: u32 = 3;

/// Credential fields of a kubeconfig user entry (client-go's AuthInfo): their values
/// must never reach a log or a message.
const CREDENTIAL_FIELDS: &[&str] = &[
    "client-key-data",
    "client-certificate-data",
    "token",
    "password",
];

/// What `kubeconfig` is asked to do (from `bootstrap kubeconfig`'s arguments).
#[derive(Debug, Clone)]
pub struct KubeconfigOptions {
    /// The inventory file.
    pub inventory: PathBuf,
    /// Write to this file (mode 0600) instead of stdout; with `merge`, merge into it.
    pub output: Option<PathBuf>,
    /// Merge into the user's kubeconfig instead of writing a whole file.
    pub merge: bool,
    /// Where to keep this run's logs (None: the default state directory).
    pub log_dir: Option<PathBuf>,
}

/// Why no kubeconfig was written.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum KubeconfigError {
    #[error("{host} ({address}): the cluster is not initialised: {ADMIN_CONF} does not exist")]
    #[diagnostic(help(
        "run `bootstrap up {inventory}` first: kubeadm init on {host} writes {ADMIN_CONF}"
    ))]
    NotInitialised {
        host: String,
        address: String,
        inventory: String,
    },
    #[error("{host}: cannot read {ADMIN_CONF}: {reason}")]
    Read { host: String, reason: String },
    #[error("{host}: {ADMIN_CONF} is not a kubeconfig bootstrap understands: {reason}")]
    Invalid { host: String, reason: String },
    #[error("{path}: cannot merge into this kubeconfig: {reason}")]
    #[diagnostic(help("fix or move the file, or write a separate one with -o FILE"))]
    Existing { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--merge: no kubeconfig to merge into: neither $KUBECONFIG nor $HOME is set")]
    #[diagnostic(help("name the file with -o FILE"))]
    NoDefaultPath,
    #[error("cannot create the run log: {0}")]
    RunLog(String),
    #[error(transparent)]
    Lock(private_file::LockError),
}

/// Runs `kubeconfig`. Ok(true) once the kubeconfig was written; errors say why not.
pub async fn run(args: &KubeconfigOptions) -> miette::Result<bool> {
    let inv = inventory::load(&args.inventory)?;
    let cp = inv.first_control_plane().clone();
    let log = RunLog::open(args.log_dir.as_deref())
        .map_err(|e| KubeconfigError::RunLog(e.to_string()))?;
    tracing::debug!("run log: {}", log.dir().display());

    let target = inventory::target(&cp, None);
    let (_, conn) = ssh::connect_all(std::slice::from_ref(&target), 1)
        .await
        .into_iter()
        .next()
        .expect("one result per target");
    let conn = conn.map_err(miette::Report::new)?;
    let admin = read_admin_conf(&conn, &log, &args.inventory).await;
    conn.close().await;
    let (text, secrets) = admin?;

    let server = format!("https://{}", inv.api_endpoint());
    let doc = for_cluster(&text, &inv.cluster.name, &server).map_err(|reason| {
        KubeconfigError::Invalid {
            host: cp.name.clone(),
            reason: ssh::redact(&reason, &secrets),
        }
    })?;

    let written = match (&args.output, args.merge) {
        (None, false) => {
            let yaml = to_yaml(&doc);
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(yaml.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(|source| KubeconfigError::Write {
                    path: "stdout".into(),
                    source,
                })?;
            "stdout".to_string()
        }
        (Some(path), false) => {
            write_private(path, to_yaml(&doc).as_bytes(), false)?;
            eprintln!("wrote {} (context `{}`)", path.display(), inv.cluster.name);
            path.display().to_string()
        }
        (output, true) => {
            let path = match output {
                Some(p) => p.clone(),
                None => default_merge_path().ok_or(KubeconfigError::NoDefaultPath)?,
            };
            merge_into(&path, &doc)?;
            eprintln!(
                "merged context `{}` into {}",
                inv.cluster.name,
                path.display()
            );
            path.display().to_string()
        }
    };
    if let Err(e) = log.note(&format!(
        "kubeconfig: context `{}` (server {server}) written to {written}",
        inv.cluster.name
    )) {
        tracing::warn!("{e}");
    }
    Ok(true)
}

/// Reads admin.conf as root. Returns its text and the credential values in it. The run
/// log gets the command and status, never the file.
async fn read_admin_conf(
    conn: &ssh::Connection,
    log: &RunLog,
    inventory: &Path,
) -> Result<(String, Vec<String>), KubeconfigError> {
    let host = conn.target.host.clone();
    let step = "read admin.conf";
    let f = shlex::try_quote(ADMIN_CONF).expect("no NUL");
    let cmd = RemoteCommand {
        script: format!(
            "if [ ! -e {f} ]; then echo '{ADMIN_CONF}: no such file' >&2; exit {MISSING_STATUS}; fi\ncat {f}"
        ),
        root: true,
        ..Default::default()
    };
    let started = Instant::now();
    let out = match conn.run(&cmd).await {
        Ok(out) => out,
        Err(e) => {
            let _ = log
                .host(&host)
                .record_error(step, &cmd, &e, started.elapsed());
            return Err(KubeconfigError::Read {
                host,
                reason: e.to_string(),
            });
        }
    };
    // Whatever the status, stdout may hold (part of) the file: withheld from the log.
    let secrets = credentials_in(&out.stdout);
    let logged = RemoteCommand {
        secrets: secrets.clone(),
        ..cmd.clone()
    };
    let shown = Output {
        status: out.status,
        stdout: if out.stdout.is_empty() {
            String::new()
        } else {
            format!("<withheld: {} bytes of kubeconfig>\n", out.stdout.len())
        },
        stderr: out.stderr.clone(),
    };
    if let Err(e) = log
        .host(&host)
        .record(step, &logged, &shown, started.elapsed())
    {
        tracing::warn!("{e}");
    }
    if out.status == MISSING_STATUS {
        return Err(KubeconfigError::NotInitialised {
            address: conn.target.address.clone(),
            host,
            inventory: inventory.display().to_string(),
        });
    }
    if !out.success() {
        let why = ssh::redact(out.stderr.trim(), &secrets);
        return Err(KubeconfigError::Read {
            host,
            reason: format!("exit status {}: {why}", out.status),
        });
    }
    Ok((out.stdout, secrets))
}

/// The credential values in kubeconfig text (best effort: text that is not YAML has
/// none found, and then nothing quotes it either, since parse errors give positions).
pub fn credentials_in(text: &str) -> Vec<String> {
    let Ok(doc) = serde_yaml::from_str::<Value>(text) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in list(&doc, "users") {
        let Some(user) = entry.get("user") else {
            continue;
        };
        for field in CREDENTIAL_FIELDS {
            if let Some(v) = user.get(*field).and_then(Value::as_str) {
                if !v.trim().is_empty() {
                    found.push(v.to_string());
                    found.push(v.trim().to_string());
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// admin.conf turned into this cluster's kubeconfig: the current context's cluster and
/// user, renamed (`name`, `<name>-admin`, context `name`), the server set to `server`.
/// Every other field (preferences, extensions, fields of the entries) is kept.
pub fn for_cluster(admin_conf: &str, name: &str, server: &str) -> Result<Value, String> {
    let doc: Value = serde_yaml::from_str(admin_conf).map_err(|e| match e.location() {
        Some(at) => format!("invalid YAML at line {} column {}", at.line(), at.column()),
        None => "invalid YAML".to_string(),
    })?;
    let Value::Mapping(root) = &doc else {
        return Err("not a YAML mapping".into());
    };
    let contexts = list(&doc, "contexts");
    let context = doc
        .get("current-context")
        .and_then(Value::as_str)
        .and_then(|c| named(contexts, c))
        .or_else(|| contexts.first());
    let refers = |field: &str| {
        context
            .and_then(|c| c.get("context"))
            .and_then(|c| c.get(field))
            .and_then(Value::as_str)
    };
    let pick = |key: &str, field: &str| {
        let entries = list(&doc, key);
        refers(field)
            .and_then(|n| named(entries, n))
            .or_else(|| entries.first())
            .cloned()
            .ok_or_else(|| format!("it has no {key}"))
    };
    let mut cluster = pick("clusters", "cluster")?;
    let mut user = pick("users", "user")?;
    let user_name = format!("{name}-admin");

    let Some(Value::Mapping(body)) = cluster.get_mut("cluster") else {
        return Err("its cluster entry has no `cluster` mapping".into());
    };
    body.insert("server".into(), server.into());
    set(&mut cluster, "name", name);
    set(&mut user, "name", user_name.as_str());
    let mut context = context
        .cloned()
        .filter(Value::is_mapping)
        .unwrap_or_else(|| Value::Mapping(Mapping::new()));
    let mut body = match context.get("context") {
        Some(Value::Mapping(m)) => m.clone(),
        _ => Mapping::new(),
    };
    body.insert("cluster".into(), name.into());
    body.insert("user".into(), user_name.as_str().into());
    set(&mut context, "context", Value::Mapping(body));
    set(&mut context, "name", name);

    let mut out = root.clone();
    out.insert("clusters".into(), Value::Sequence(vec![cluster]));
    out.insert("contexts".into(), Value::Sequence(vec![context]));
    out.insert("current-context".into(), name.into());
    out.insert("users".into(), Value::Sequence(vec![user]));
    Ok(Value::Mapping(out))
}

/// `existing` with `new`'s clusters, users and contexts added, replacing entries of the
/// same name; everything else in `existing` is kept. current-context is only set when
/// `existing` has none.
pub fn merge(existing: Value, new: &Value) -> Result<Value, String> {
    let mut root = match existing {
        Value::Null => Mapping::new(),
        Value::Mapping(m) => m,
        _ => return Err("it is not a YAML mapping".into()),
    };
    for (key, value) in [("apiVersion", "v1"), ("kind", "Config")] {
        if root.get(key).is_none_or(Value::is_null) {
            root.insert(key.into(), value.into());
        }
    }
    for key in ["clusters", "contexts", "users"] {
        let entries = match root.get_mut(key) {
            None | Some(Value::Null) => {
                root.insert(key.into(), Value::Sequence(Vec::new()));
                match root.get_mut(key) {
                    Some(Value::Sequence(s)) => s,
                    _ => unreachable!("just inserted"),
                }
            }
            Some(Value::Sequence(s)) => s,
            Some(_) => return Err(format!("`{key}` is not a list")),
        };
        for entry in list(new, key) {
            let name = entry.get("name").and_then(Value::as_str);
            match entries
                .iter_mut()
                .find(|e| name.is_some() && e.get("name").and_then(Value::as_str) == name)
            {
                Some(slot) => *slot = entry.clone(),
                None => entries.push(entry.clone()),
            }
        }
    }
    let current = root.get("current-context").and_then(Value::as_str);
    if current.is_none_or(str::is_empty) {
        if let Some(c) = new.get("current-context") {
            root.insert("current-context".into(), c.clone());
        }
    }
    Ok(Value::Mapping(root))
}

/// Merges `doc` into the kubeconfig at `path` (created if missing), holding kubectl's
/// lock on it from the read to the write.
fn merge_into(path: &Path, doc: &Value) -> Result<(), KubeconfigError> {
    let _lock = private_file::Lock::acquire(path).map_err(KubeconfigError::Lock)?;
    let existing = match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Value::Null,
        Ok(text) => serde_yaml::from_str(&text).map_err(|e| KubeconfigError::Existing {
            path: path.to_path_buf(),
            reason: match e.location() {
                Some(at) => format!("invalid YAML at line {} column {}", at.line(), at.column()),
                None => "invalid YAML".into(),
            },
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Null,
        Err(source) => {
            return Err(KubeconfigError::Write {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let merged = merge(existing, doc).map_err(|reason| KubeconfigError::Existing {
        path: path.to_path_buf(),
        reason,
    })?;
    write_private(path, to_yaml(&merged).as_bytes(), true)
}

/// Where `--merge` writes without -o: where `kubectl config` writes new entries.
pub fn default_merge_path() -> Option<PathBuf> {
    merge_path_for(std::env::var_os("KUBECONFIG"), std::env::var_os("HOME"))
}

/// client-go's `PathOptions.GetDefaultFilename` (tools/clientcmd/config.go), the file
/// `kubectl config set-*` writes new entries to: of the files $KUBECONFIG lists, the first
/// that exists, else the LAST one; without $KUBECONFIG, ~/.kube/config. (The first listed
/// file is only where kubectl writes when it is the one that exists.)
fn merge_path_for(
    kubeconfig: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    if let Some(list) = kubeconfig.filter(|v| !v.is_empty()) {
        let files: Vec<PathBuf> = std::env::split_paths(&list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        if let Some(found) = files.iter().find(|p| p.exists()).or(files.last()) {
            return Some(found.clone());
        }
    }
    home.filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".kube").join("config"))
}

/// [`private_file::write`], its error naming `path`.
fn write_private(path: &Path, bytes: &[u8], make_dir: bool) -> Result<(), KubeconfigError> {
    private_file::write(path, bytes, make_dir).map_err(|source| KubeconfigError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn to_yaml(doc: &Value) -> String {
    serde_yaml::to_string(doc).expect("a YAML value always serializes")
}

/// The entries of a top-level list (`clusters`, `users`, `contexts`), empty if absent.
fn list<'a>(doc: &'a Value, key: &str) -> &'a [Value] {
    doc.get(key)
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn named<'a>(entries: &'a [Value], name: &str) -> Option<&'a Value> {
    entries
        .iter()
        .find(|e| e.get("name").and_then(Value::as_str) == Some(name))
}

fn set(entry: &mut Value, key: &str, value: impl Into<Value>) {
    if let Value::Mapping(m) = entry {
        m.insert(key.into(), value.into());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn merge_path_is_kubectls_default_file() {
        use super::merge_path_for;
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        let list = |paths: &[&std::path::Path]| Some(std::env::join_paths(paths).unwrap());
        // None exists: the last one, as kubectl.
        assert_eq!(merge_path_for(list(&[&a, &b, &c]), None), Some(c.clone()));
        // The first that exists.
        std::fs::write(&b, "").unwrap();
        assert_eq!(merge_path_for(list(&[&a, &b, &c]), None), Some(b.clone()));
        assert_eq!(merge_path_for(list(&[&a]), None), Some(a.clone()));
        // No (or an empty) $KUBECONFIG: ~/.kube/config.
        assert_eq!(
            merge_path_for(Some("".into()), Some("/home/u".into())),
            Some(std::path::PathBuf::from("/home/u/.kube/config"))
        );
        assert_eq!(merge_path_for(None, None), None);
    }

    use super::*;

    const ADMIN: &str = "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0E=
    server: https://10.200.0.2:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: kubernetes-admin
  name: kubernetes-admin@kubernetes
current-context: kubernetes-admin@kubernetes
kind: Config
preferences: {}
users:
- name: kubernetes-admin
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZU0VDUkVU
";

    #[test]
    fn renames_and_points_at_the_endpoint() {
        let doc = for_cluster(ADMIN, "e2e", "https://lb.example:443").unwrap();
        assert_eq!(doc["current-context"], "e2e");
        assert_eq!(doc["clusters"][0]["name"], "e2e");
        assert_eq!(
            doc["clusters"][0]["cluster"]["server"],
            "https://lb.example:443"
        );
        assert_eq!(
            doc["clusters"][0]["cluster"]["certificate-authority-data"],
            "Q0E="
        );
        assert_eq!(doc["contexts"][0]["name"], "e2e");
        assert_eq!(doc["contexts"][0]["context"]["cluster"], "e2e");
        assert_eq!(doc["contexts"][0]["context"]["user"], "e2e-admin");
        assert_eq!(doc["users"][0]["name"], "e2e-admin");
        assert_eq!(doc["users"][0]["user"]["client-key-data"], "S0VZU0VDUkVU");
        assert_eq!(doc["kind"], "Config");
        assert!(doc["preferences"].is_mapping());
    }

    #[test]
    fn finds_the_credentials() {
        assert_eq!(credentials_in(ADMIN), ["Q0VSVA==", "S0VZU0VDUkVU"]);
        assert!(credentials_in("{not yaml").is_empty());
    }

    #[test]
    fn bad_admin_conf_messages_quote_nothing() {
        let e = for_cluster("users: [\n  client-key-data: S0VZU0VDUkVU", "c", "s").unwrap_err();
        assert!(!e.contains("S0VZ"), "{e}");
        assert_eq!(
            for_cluster("[]", "c", "s").unwrap_err(),
            "not a YAML mapping"
        );
        assert_eq!(
            for_cluster("clusters: []", "c", "s").unwrap_err(),
            "it has no clusters"
        );
    }

    #[test]
    fn merge_keeps_other_entries_and_current_context() {
        let existing: Value = serde_yaml::from_str(
            "apiVersion: v1\nkind: Config\ncurrent-context: other\nclusters:\n- name: other\n  cluster: {server: https://o:6443}\n- name: e2e\n  cluster: {server: https://stale:6443}\ncontexts:\n- name: other\n  context: {cluster: other, user: o}\nusers:\n- name: o\n  user: {token: t}\nextensions: [x]\n",
        )
        .unwrap();
        let new = for_cluster(ADMIN, "e2e", "https://10.200.0.2:6443").unwrap();
        let merged = merge(existing, &new).unwrap();
        assert_eq!(merged["current-context"], "other");
        assert_eq!(merged["extensions"][0], "x");
        let clusters = merged["clusters"].as_sequence().unwrap();
        assert_eq!(clusters.len(), 2);
        assert_eq!(clusters[1]["cluster"]["server"], "https://10.200.0.2:6443");
        assert_eq!(merged["contexts"].as_sequence().unwrap().len(), 2);
        assert_eq!(merged["users"].as_sequence().unwrap().len(), 2);
        // Merging again changes nothing.
        assert_eq!(merge(merged.clone(), &new).unwrap(), merged);
    }

    #[test]
    fn merge_into_nothing_sets_current_context() {
        let new = for_cluster(ADMIN, "e2e", "https://10.200.0.2:6443").unwrap();
        let merged = merge(Value::Null, &new).unwrap();
        assert_eq!(merged["current-context"], "e2e");
        assert_eq!(merged["apiVersion"], "v1");
        let empty: Value = serde_yaml::from_str("current-context: \"\"\nclusters: null").unwrap();
        assert_eq!(merge(empty, &new).unwrap()["current-context"], "e2e");
        assert!(merge(Value::Sequence(vec![]), &new).is_err());
        let bad: Value = serde_yaml::from_str("clusters: 3").unwrap();
        assert_eq!(merge(bad, &new).unwrap_err(), "`clusters` is not a list");
    }

    #[test]
    fn concurrent_merges_keep_every_context() {
        // Four merges at once (a CI matrix) into one file, ten times.
        for round in 0..10 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("config");
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
            let merges: Vec<_> = (0..4)
                .map(|i| {
                    let (path, barrier) = (path.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        let doc = for_cluster(ADMIN, &format!("c{i}"), "https://a:6443").unwrap();
                        barrier.wait();
                        merge_into(&path, &doc).unwrap();
                    })
                })
                .collect();
            for m in merges {
                m.join().unwrap();
            }
            let merged: Value =
                serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let contexts = merged["contexts"].as_sequence().unwrap().len();
            assert_eq!(contexts, 4, "round {round}: {merged:?}");
            assert!(!dir.path().join("config.lock").exists());
        }
    }
}
