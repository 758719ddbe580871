//! `kubeadm`: the stand-in for the cluster bootstrapper. Each subcommand lives in its
//! own module; this one dispatches, parses cobra-style flags and holds what the
//! subcommands share (error trailers, scaled waits, the kubelet's health).
//!
//! See testbed/STANDINS-kubeadm.md for what is modeled and what is not.

pub mod certs;
pub mod client;
pub mod config;
pub mod files;
pub mod init;
pub mod join;
pub mod preflight;
pub mod reset;
pub mod token;
pub mod upgrade;
pub mod version;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::common::{self, Ctx};

/// The line every kubeadm error ends with.
pub const TRAILER: &str = "To see the stack trace of this error execute with --v=5 or higher";

/// Prints a fatal error the way kubeadm does and returns its exit status.
pub fn die(msg: &str) -> i32 {
    eprintln!("{msg}");
    eprintln!("{TRAILER}");
    1
}

/// `error execution phase PHASE: MSG`.
pub fn phase_error(phase: &str, msg: &str) -> i32 {
    die(&format!("error execution phase {phase}: {msg}"))
}

/// How kubeadm ends on fatal preflight errors: up to 1.35 the report is the phase
/// error itself; from 1.36 the report goes to stderr and the phase error is short.
pub fn preflight_failed(report: &str) -> i32 {
    if version::kubeadm_version().minor >= 36 {
        eprintln!("{report}");
        phase_error("preflight", "preflight checks failed")
    } else {
        phase_error("preflight", report)
    }
}

/// Parsed command line: value flags (repeatable), boolean flags, positionals.
#[derive(Debug, Default)]
pub struct Flags {
    pub values: BTreeMap<String, Vec<String>>,
    pub bools: BTreeSet<String>,
    pub positional: Vec<String>,
}

impl Flags {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }
    pub fn all(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }
    pub fn has(&self, name: &str) -> bool {
        self.bools.contains(name)
    }
    /// Names of all flags given (for "can not mix '--config' with arguments").
    pub fn given(&self) -> BTreeSet<String> {
        self.values
            .keys()
            .chain(self.bools.iter())
            .cloned()
            .collect()
    }
    /// A comma-separated list flag, possibly repeated.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.all(name)
            .iter()
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// Cobra-style parsing: `--name=value`, `--name value`, `-x value`, bools `--name`,
/// `--name=true|false`. Unknown flags are errors with cobra's text.
pub fn parse_flags(args: &[String], values: &[&str], bools: &[&str]) -> Result<Flags, String> {
    let short = |c: &str| -> Option<&'static str> {
        Some(match c {
            "f" => "force",
            "y" => "yes",
            "o" => "output",
            "v" => "v",
            "h" => "help",
            _ => return None,
        })
    };
    let mut f = Flags::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            f.positional.extend(args[i..].iter().cloned());
            break;
        }
        let (name, inline) = if let Some(rest) = a.strip_prefix("--") {
            match rest.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (rest.to_string(), None),
            }
        } else if let Some(rest) = a.strip_prefix('-').filter(|r| !r.is_empty()) {
            let (n, v) = match rest.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None if rest.len() > 1 => (&rest[..1], Some(rest[1..].to_string())),
                None => (rest, None),
            };
            match short(n) {
                Some(long) => (long.to_string(), v),
                None => return Err(format!("unknown shorthand flag: '{n}' in {a}")),
            }
        } else {
            f.positional.push(a.clone());
            continue;
        };
        if name == "help" {
            f.bools.insert("help".into());
        } else if name == "v" || values.contains(&name.as_str()) {
            let v = match inline {
                Some(v) => v,
                None if i < args.len() => {
                    i += 1;
                    args[i - 1].clone()
                }
                None => return Err(format!("flag needs an argument: --{name}")),
            };
            f.values.entry(name).or_default().push(v);
        } else if bools.contains(&name.as_str()) {
            match inline.as_deref() {
                None | Some("true") => {
                    f.bools.insert(name);
                }
                Some("false") => {}
                Some(v) => {
                    return Err(format!(
                        "invalid argument \"{v}\" for \"--{name}\" flag: strconv.ParseBool: parsing \"{v}\": invalid syntax"
                    ))
                }
            }
        } else {
            return Err(format!("unknown flag: --{name}"));
        }
    }
    Ok(f)
}

/// A realistic timeout of `real` seconds scaled by the host's time scale, never below
/// `floor` (time scale 0 still needs time for the daemons to start).
pub fn scaled(ctx: &Ctx, real: f64, floor: f64) -> Duration {
    Duration::from_secs_f64((real * ctx.config.time_scale).max(floor))
}

/// Polls `probe` every 100 ms until it yields Some or `timeout` passes.
pub fn poll<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What the kubelet daemon last reported (`waiting`, `running`, ...).
pub fn kubelet_state() -> String {
    std::fs::read_to_string(common::ctl_path(testbed::layout::ctl::UNITS).join("kubelet.state"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The kubelet's /healthz: its process runs and it reported `running`.
pub fn kubelet_healthy() -> bool {
    common::unit_pid("kubelet").is_some() && kubelet_state() == "running"
}

/// The kubelet-check failure text of kubeadm (init and join).
pub fn kubelet_not_healthy(phase: &str) -> i32 {
    println!("[kubelet-check] The kubelet is not healthy after 4m0s");
    println!();
    println!("Unfortunately, an error has occurred, likely caused by:");
    println!("\t- The kubelet is not running");
    println!("\t- The kubelet is unhealthy due to a misconfiguration of the node in some way (required cgroups disabled)");
    println!();
    println!("If you are on a systemd-powered system, you can try to troubleshoot the error with the following commands:");
    println!("\t- 'systemctl status kubelet'");
    println!("\t- 'journalctl -xeu kubelet'");
    println!();
    phase_error(
        phase,
        "failed while waiting for the kubelet: kubelet healthz check failed: Get \"http://127.0.0.1:10248/healthz\": dial tcp 127.0.0.1:10248: connect: connection refused",
    )
}

/// Waits for the kubelet's health like `[kubelet-check]` does. Returns the elapsed
/// seconds, or None after the (scaled) 4 minutes.
pub fn wait_kubelet(ctx: &Ctx) -> Option<f64> {
    println!("[kubelet-check] Waiting for a healthy kubelet at http://127.0.0.1:10248/healthz. This can take up to 4m0s");
    let start = Instant::now();
    poll(scaled(ctx, 240.0, 10.0), || kubelet_healthy().then_some(()))?;
    Some(start.elapsed().as_secs_f64())
}

/// (Re)starts the kubelet as kubeadm's kubelet-start phase does, with its warning when
/// the service can't be started.
pub fn restart_kubelet() {
    println!("[kubelet-start] Starting the kubelet");
    if let Err(e) = crate::os::restart_unit("kubelet") {
        eprintln!(
            "{}",
            config::klog(
                'W',
                "kubelet.go:74",
                &format!("[kubelet-start] WARNING: unable to start the kubelet service: [{e}]")
            )
        );
        eprintln!("[kubelet-start] Please ensure kubelet is reloaded and running manually.");
    }
}

/// `kubeadm` entry point.
pub fn kubeadm(ctx: &mut Ctx, args: &[String]) -> i32 {
    let (cmd, rest) = match args.first().map(String::as_str) {
        Some(c) if !c.starts_with('-') => (c, &args[1..]),
        _ => ("", args),
    };
    match cmd {
        "version" => version_cmd(rest),
        "init" => {
            if rest.first().map(String::as_str) == Some("phase") {
                init::phase(ctx, &rest[1..])
            } else {
                init::run(ctx, rest)
            }
        }
        "join" => join::run(ctx, rest),
        "token" => token::run(ctx, rest),
        "reset" => reset::run(ctx, rest),
        "upgrade" => upgrade::run(ctx, rest),
        "config" => config_cmd(rest),
        "certs" => certs::run(rest),
        "" if rest.iter().any(|a| a == "--help" || a == "-h") || rest.is_empty() => {
            print_usage();
            0
        }
        other => die(&format!(
            "unknown command \"{other}\" for \"kubeadm\"\n\nRun 'kubeadm --help' for usage."
        )),
    }
}

fn print_usage() {
    println!("Usage:\n  kubeadm [command]\n\nAvailable Commands:\n  certs       Commands related to handling kubernetes certificates\n  completion  Output shell completion code for the specified shell (bash or zsh)\n  config      Manage configuration for a kubeadm cluster persisted in a ConfigMap in the cluster\n  help        Help about any command\n  init        Run this command in order to set up the Kubernetes control plane\n  join        Run this on any machine you wish to join an existing cluster\n  kubeconfig  Kubeconfig file utilities\n  reset       Performs a best effort revert of changes made to this host by 'kubeadm init' or 'kubeadm join'\n  token       Manage bootstrap tokens\n  upgrade     Upgrade your cluster smoothly to a newer version with this command\n  version     Print the version of kubeadm\n\nFlags:\n  -h, --help                     help for kubeadm\n      --rootfs string            [EXPERIMENTAL] The path to the 'real' host root filesystem. This will cause kubeadm to chroot into the provided path.\n\nUse \"kubeadm [command] --help\" for more information about a command.");
}

/// `kubeadm version [-o short|json|yaml]`
fn version_cmd(args: &[String]) -> i32 {
    let f = match parse_flags(args, &["output"], &[]) {
        Ok(f) => f,
        Err(e) => return die(&e),
    };
    let v = version::kubeadm_version();
    let info = serde_json::json!({
        "major": v.major.to_string(),
        "minor": v.minor.to_string(),
        "gitVersion": v.to_string(),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-11-11T19:29:46Z",
        "goVersion": "go1.24.9",
        "compiler": "gc",
        "platform": "linux/amd64",
    });
    match f.get("output").unwrap_or("") {
        "" => {
            println!(
                "kubeadm version: &version.Info{{Major:\"{}\", Minor:\"{}\", EmulationMajor:\"\", EmulationMinor:\"\", MinCompatibilityMajor:\"\", MinCompatibilityMinor:\"\", GitVersion:\"{v}\", GitCommit:\"{}\", GitTreeState:\"clean\", BuildDate:\"{}\", GoVersion:\"{}\", Compiler:\"gc\", Platform:\"linux/amd64\"}}",
                v.major, v.minor, info["gitCommit"].as_str().unwrap(), info["buildDate"].as_str().unwrap(), info["goVersion"].as_str().unwrap()
            );
            0
        }
        "short" => {
            println!("{v}");
            0
        }
        "json" => {
            let doc = serde_json::json!({"clientVersion": info});
            println!("{}", serde_json::to_string_pretty(&doc).unwrap());
            0
        }
        "yaml" => {
            print!(
                "{}",
                files::to_yaml(&serde_json::json!({"clientVersion": info}))
            );
            0
        }
        o => die(&format!("invalid output format: {o}")),
    }
}

/// `kubeadm config images list|pull [--kubernetes-version v] [--image-repository r]`
fn config_cmd(args: &[String]) -> i32 {
    let sub: Vec<&str> = args
        .iter()
        .take_while(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect();
    let rest = &args[sub.len()..];
    let f = match parse_flags(
        rest,
        &[
            "kubernetes-version",
            "image-repository",
            "config",
            "output",
            "cri-socket",
        ],
        &["allow-missing-template-keys"],
    ) {
        Ok(f) => f,
        Err(e) => return die(&e),
    };
    let kubeadm = version::kubeadm_version();
    let mut repo = f
        .get("image-repository")
        .unwrap_or(version::REGISTRY)
        .to_string();
    let mut k8s = match f.get("kubernetes-version") {
        Some(v) => match version::KVer::parse(v) {
            Some(v) => v,
            None => return die(&format!("couldn't parse Kubernetes version \"{v}\"")),
        },
        None => {
            stable_fallback_warnings(kubeadm);
            kubeadm
        }
    };
    if let Some(path) = f.get("config") {
        match std::fs::read_to_string(path) {
            Ok(text) => match config::parse(&text, kubeadm) {
                Ok(d) => {
                    let c = config::ClusterConfig::from(d.cluster.as_ref());
                    repo = c.image_repository.clone();
                    if let Some(v) = c
                        .kubernetes_version
                        .as_deref()
                        .and_then(version::KVer::parse)
                    {
                        k8s = v;
                    }
                }
                Err(e) => return die(&e),
            },
            Err(_) => {
                return die(&format!(
                    "unable to read config from \"{path}\" : open {path}: no such file or directory"
                ))
            }
        }
    }
    match sub.as_slice() {
        ["images", "list"] => {
            for i in version::image_list(k8s, &repo) {
                println!("{i}");
            }
            0
        }
        ["images", "pull"] => {
            if crate::common::containerd_runtime().is_none() {
                return die("failed to create new CRI runtime service: validate service connection: validate CRI v1 runtime API for endpoint \"unix:///var/run/containerd/containerd.sock\": rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial unix /var/run/containerd/containerd.sock: connect: no such file or directory\"");
            }
            for i in version::image_list(k8s, &repo) {
                println!("[config/images] Pulled {i}");
            }
            0
        }
        _ => die(&format!(
            "unknown command \"{}\" for \"kubeadm config\"",
            sub.join(" ")
        )),
    }
}

/// What kubeadm prints when it can't fetch stable-1.txt (no internet in the testbed).
pub fn stable_fallback_warnings(kubeadm: version::KVer) {
    eprintln!(
        "{}",
        config::klog(
            'W',
            "version.go:109",
            &format!(
                "could not fetch a Kubernetes version from the internet: unable to get URL \"https://dl.k8s.io/release/stable-{}.txt\": Get \"https://dl.k8s.io/release/stable-{}.txt\": dial tcp: lookup dl.k8s.io on 127.0.0.53:53: server misbehaving",
                kubeadm.minor_str(), kubeadm.minor_str()
            )
        )
    );
    eprintln!(
        "{}",
        config::klog(
            'W',
            "version.go:110",
            &format!("falling back to the local client version: {kubeadm}")
        )
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn flags_parse_like_cobra() {
        let f = parse_flags(
            &s(&[
                "10.0.0.10:6443",
                "--token",
                "abc",
                "--discovery-token-ca-cert-hash=sha256:x",
                "--control-plane",
                "-v",
                "5",
            ]),
            &["token", "discovery-token-ca-cert-hash"],
            &["control-plane"],
        )
        .unwrap();
        assert_eq!(f.positional, vec!["10.0.0.10:6443"]);
        assert_eq!(f.get("token"), Some("abc"));
        assert!(f.has("control-plane"));
        assert_eq!(
            parse_flags(&s(&["--nope"]), &[], &[]).unwrap_err(),
            "unknown flag: --nope"
        );
        let f = parse_flags(&s(&["-f", "-y"]), &[], &["force", "yes"]).unwrap();
        assert!(f.has("force") && f.has("yes"));
        let f = parse_flags(
            &s(&[
                "--ignore-preflight-errors=Swap",
                "--ignore-preflight-errors",
                "Port-6443,all",
            ]),
            &["ignore-preflight-errors"],
            &[],
        )
        .unwrap();
        assert_eq!(
            f.list("ignore-preflight-errors"),
            vec!["Swap", "Port-6443", "all"]
        );
    }
}
