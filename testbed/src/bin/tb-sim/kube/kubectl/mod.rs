//! The simulated kubectl: kubeconfig selection, argument parsing, and the subcommands a
//! kubeadm cluster's operator uses, with kubectl's real output formats and error texts.
//!
//! Split by job: [`args`] parses flags the way cobra does, [`get`] prints objects
//! (tables, json, yaml, name, jsonpath), [`edit`] is label / annotate / taint / cordon /
//! scale, [`apply`] is apply / create / delete, [`waits`] is rollout status / wait /
//! drain, [`info`] is version / cluster-info.

mod apply;
mod args;
mod edit;
mod get;
mod info;
mod jsonpath;
mod waits;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::api::{self, ClientConfig, ClientError, KubeconfigError, Op};
use super::objects::{self, Resource};
use crate::common::Ctx;
pub use args::Args;

/// What every subcommand gets: parsed args and a way to reach the server.
pub struct Kubectl {
    pub args: Args,
    /// The kubeconfig's client, or the error to print when the server is needed.
    client: Result<ClientConfig, String>,
    pub time_scale: f64,
    /// Set when the run changed cluster state (for the audit record).
    pub changed: std::cell::Cell<bool>,
}

/// A failed kubectl run: message for stderr (already prefixed as kubectl does) + exit.
pub struct Fail(pub String, pub i32);

pub type Res = Result<i32, Fail>;

impl From<ClientError> for Fail {
    fn from(e: ClientError) -> Fail {
        match e {
            ClientError::Unreachable(m) => Fail(m, 1),
            ClientError::Server(b) if b["code"] == 401 => Fail(
                "error: You must be logged in to the server (Unauthorized)".into(),
                1,
            ),
            ClientError::Server(b) => Fail(api::server_error_text(&b), 1),
        }
    }
}

pub fn fail<T>(msg: impl Into<String>) -> Result<T, Fail> {
    Err(Fail(msg.into(), 1))
}

impl Kubectl {
    pub fn send(&self, op: Op) -> Result<Value, ClientError> {
        match &self.client {
            Ok(c) => c.send(op, Duration::from_secs(15)),
            Err(m) => Err(ClientError::Unreachable(m.clone())),
        }
    }

    pub fn server(&self) -> Option<&str> {
        self.client.as_ref().ok().map(|c| c.server.as_str())
    }

    /// The namespace from -n/--namespace, else "default".
    pub fn namespace(&self) -> String {
        self.args
            .value("namespace")
            .unwrap_or_else(|| "default".into())
    }

    pub fn get_object(&self, r: &Resource, ns: &str, name: &str) -> Result<Value, ClientError> {
        self.send(Op::Get {
            kind: r.kind.clone(),
            namespace: r.namespaced.then(|| ns.to_string()),
            name: name.to_string(),
        })
    }

    pub fn list(&self, r: &Resource, ns: Option<&str>) -> Result<Vec<Value>, ClientError> {
        let v = self.send(Op::List {
            kind: r.kind.clone(),
            namespace: if r.namespaced {
                ns.map(String::from)
            } else {
                None
            },
        })?;
        Ok(v["items"].as_array().cloned().unwrap_or_default())
    }

    /// Seconds to wait between polls: quick, so waits end soon after the condition.
    pub fn poll(&self) -> Duration {
        Duration::from_millis(200)
    }
}

/// kubectl's own version ("v1.34.2") from the installed package.
pub fn client_version() -> String {
    crate::common::installed_version("kubectl")
        .map(|v| format!("v{}", v.split('-').next().unwrap_or(&v)))
        .unwrap_or_else(|| "v1.34.2".into())
}

/// Picks the kubeconfig like kubectl: --kubeconfig > $KUBECONFIG > ~/.kube/config.
fn client_from(args: &Args) -> Result<ClientConfig, String> {
    let localhost = || {
        "The connection to the server localhost:8080 was refused - did you specify the right host or port?".to_string()
    };
    let load_err = |e: KubeconfigError, p: &Path, explicit: bool| match e {
        KubeconfigError::Load(m) => format!("error: {m}"),
        KubeconfigError::Missing if explicit => {
            format!("error: stat {}: no such file or directory", p.display())
        }
        KubeconfigError::Missing => localhost(),
    };
    if let Some(p) = args.value("kubeconfig") {
        let p = PathBuf::from(p);
        return api::load_kubeconfig(&p).map_err(|e| load_err(e, &p, true));
    }
    if let Ok(list) = std::env::var("KUBECONFIG") {
        for p in list.split(':').filter(|p| !p.is_empty()) {
            let p = PathBuf::from(p);
            match api::load_kubeconfig(&p) {
                Ok(c) => return Ok(c),
                Err(KubeconfigError::Missing) => continue,
                Err(e) => return Err(load_err(e, &p, false)),
            }
        }
        if !list.is_empty() {
            return Err(localhost());
        }
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let p = Path::new(&home).join(".kube/config");
    api::load_kubeconfig(&p).map_err(|e| load_err(e, &p, false))
}

/// `kubectl ARGS`.
pub fn standin(ctx: &mut Ctx, argv: &[String]) -> i32 {
    // Like the Go binary: a closed stdout (`kubectl ... | head -1`) ends the process
    // quietly by SIGPIPE instead of a Rust panic.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args = match Args::parse(argv) {
        Ok(a) => a,
        Err(m) => {
            eprintln!("{m}");
            return 1;
        }
    };
    let client = client_from(&args);
    let mut k = Kubectl {
        args,
        client,
        time_scale: ctx.config.time_scale,
        changed: Default::default(),
    };
    let cmd = k.args.pos.first().cloned().unwrap_or_default();
    let res = match cmd.as_str() {
        "get" => get::run(&k),
        "label" => edit::label(&k, false),
        "annotate" => edit::label(&k, true),
        "taint" => edit::taint(&k),
        "cordon" => edit::cordon(&k, true),
        "uncordon" => edit::cordon(&k, false),
        "scale" => edit::scale(&k),
        "apply" => apply::apply(&k),
        "create" => apply::create(&k),
        "delete" => apply::delete(&k),
        "rollout" => waits::rollout(&k),
        "wait" => waits::wait(&k),
        "drain" => waits::drain(&mut k),
        "version" => info::version(&k),
        "cluster-info" => info::cluster_info(&k),
        "api-resources" => info::api_resources(&k),
        "" => {
            println!("kubectl controls the Kubernetes cluster manager.\n\n Find more information at: https://kubernetes.io/docs/reference/kubectl/");
            Ok(0)
        }
        other => fail(format!(
            "error: unknown command \"{other}\" for \"kubectl\""
        )),
    };
    let code = match res {
        Ok(c) => c,
        Err(Fail(m, c)) => {
            if !m.is_empty() {
                eprintln!("{m}");
            }
            c
        }
    };
    if k.changed.get() {
        ctx.changed();
    }
    code
}

/// Splits `TYPE NAME...` / `TYPE/NAME...` arguments into (resource, names).
pub fn targets(pos: &[String]) -> Result<Vec<(Resource, Option<String>)>, Fail> {
    let mut out = vec![];
    let Some(first) = pos.first() else {
        return Ok(out);
    };
    if first.contains('/') {
        for p in pos {
            let (t, n) = p.split_once('/').unwrap_or((p, ""));
            let r = resource(t)?;
            out.push((r, Some(n.to_string())));
        }
        return Ok(out);
    }
    let types: Vec<Resource> = first.split(',').map(resource).collect::<Result<_, _>>()?;
    for r in types {
        if pos.len() == 1 {
            out.push((r, None));
        } else {
            for n in &pos[1..] {
                out.push((r.clone(), Some(n.clone())));
            }
        }
    }
    Ok(out)
}

pub fn resource(t: &str) -> Result<Resource, Fail> {
    objects::resource_by_name(t).ok_or_else(|| {
        Fail(
            format!("error: the server doesn't have a resource type \"{t}\""),
            1,
        )
    })
}
