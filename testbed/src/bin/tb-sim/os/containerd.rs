//! containerd and docker: the `containerd`, `ctr`, `runc`, `docker` CLIs and the two
//! daemons behind the `containerd` and `docker` units.
//!
//! The containerd daemon reads /etc/containerd/config.toml once, at start, like the real
//! one: editing the file changes nothing until a restart. What it derived from the file
//! is published in [`common::CONTAINERD_RUNTIME`] for the kube stand-ins.

use std::collections::BTreeMap;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::{self, ContainerdRuntime, Ctx};

/// `containerd config default` of containerd 1.7 (verbatim output of 1.7.23).
pub const DEFAULT_CONFIG: &str = include_str!("containerd-1.7-default.toml");

/// The installed containerd's `config default`: 1.7's, with 1.6's older pause image when
/// the installed containerd is 1.6 (Debian 12). Other 1.6 differences are not modeled.
pub fn default_config() -> String {
    if containerd_version().starts_with("1.6.") {
        DEFAULT_CONFIG.replace("registry.k8s.io/pause:3.8", "registry.k8s.io/pause:3.6")
    } else {
        DEFAULT_CONFIG.to_string()
    }
}

/// /etc/containerd/config.toml as Debian's and Ubuntu's `containerd` package ships it:
/// CNI binaries in /usr/lib/cni (where Debian's containernetworking-plugins go), not in
/// /opt/cni/bin where Calico installs them.
pub const PACKAGED_CONFIG: &str = r#"version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
"#;

pub const CONFIG_PATH: &str = "/etc/containerd/config.toml";
const CRI: &str = "plugins.\"io.containerd.grpc.v1.cri\"";

/// A TOML document flattened to `table.path.key -> raw value` (enough of TOML for
/// containerd's config: tables, arrays of tables, scalars, one- or multi-line arrays).
pub type Flat = BTreeMap<String, String>;

/// Parses the subset of TOML containerd configs use. Errors read like containerd's.
pub fn parse_toml(text: &str) -> Result<Flat, String> {
    let mut out = Flat::new();
    let mut table = String::new();
    let mut pending: Option<(String, String, usize)> = None;
    for (n, raw) in text.lines().enumerate() {
        let lineno = n + 1;
        let line = strip_comment(raw).trim().to_string();
        if let Some((key, mut val, start)) = pending.take() {
            val.push(' ');
            val.push_str(&line);
            if brackets_balanced(&val) {
                out.insert(key, val);
            } else {
                pending = Some((key, val, start));
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        if let Some(h) = line.strip_prefix("[[") {
            let Some(h) = h.strip_suffix("]]") else {
                return Err(toml_err(lineno, "expected ']]'"));
            };
            table = h.trim().to_string();
            continue;
        }
        if let Some(h) = line.strip_prefix('[') {
            let Some(h) = h.strip_suffix(']') else {
                return Err(toml_err(lineno, "expected ']'"));
            };
            table = h.trim().to_string();
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(toml_err(
                lineno,
                &format!("expected key = value, found {:?}", line),
            ));
        };
        let k = k.trim();
        let v = v.trim().to_string();
        if k.is_empty() || v.is_empty() {
            return Err(toml_err(lineno, "expected a value"));
        }
        if !valid_value(&v) {
            return Err(toml_err(lineno, &format!("invalid value {v}")));
        }
        let full = if table.is_empty() {
            k.to_string()
        } else {
            format!("{table}.{k}")
        };
        if brackets_balanced(&v) {
            out.insert(full, v);
        } else {
            pending = Some((full, v, lineno));
        }
    }
    if let Some((_, _, start)) = pending {
        return Err(toml_err(start, "unterminated array"));
    }
    Ok(out)
}

fn toml_err(line: usize, what: &str) -> String {
    format!("failed to load TOML: {CONFIG_PATH}: (line {line}) {what}")
}

fn strip_comment(line: &str) -> &str {
    let mut in_str: Option<char> = None;
    for (i, c) in line.char_indices() {
        match (c, in_str) {
            ('"' | '\'', None) => in_str = Some(c),
            (q, Some(open)) if q == open => in_str = None,
            ('#', None) => return &line[..i],
            _ => {}
        }
    }
    line
}

fn brackets_balanced(v: &str) -> bool {
    v.matches('[').count() <= v.matches(']').count()
}

fn valid_value(v: &str) -> bool {
    let v = v.trim();
    v.starts_with('"')
        || v.starts_with('\'')
        || v.starts_with('[')
        || v.starts_with('{')
        || v == "true"
        || v == "false"
        || v.parse::<f64>().is_ok()
        || v.chars().next().is_some_and(|c| c.is_ascii_digit())
}

/// A TOML string or bool value, unquoted.
fn scalar(v: &str) -> String {
    let v = v.trim();
    v.trim_matches('"').trim_matches('\'').to_string()
}

/// The effective configuration: the file's values over containerd's defaults.
pub fn effective(file: Option<&Flat>) -> Flat {
    let mut eff = parse_toml(&default_config()).expect("default config parses");
    if let Some(f) = file {
        for (k, v) in f {
            eff.insert(k.clone(), v.clone());
        }
    }
    eff
}

/// The runtime facts of an effective configuration.
pub fn runtime_facts(eff: &Flat, version: &str) -> ContainerdRuntime {
    let disabled = eff.get("disabled_plugins").cloned().unwrap_or_default();
    let cri = !(disabled.contains("\"cri\"")
        || disabled.contains("'cri'")
        || disabled.contains("io.containerd.grpc.v1.cri"));
    let get = |k: &str| eff.get(&format!("{CRI}.{k}")).map(|v| scalar(v));
    ContainerdRuntime {
        version: version.to_string(),
        cri,
        systemd_cgroup: get("containerd.runtimes.runc.options.SystemdCgroup").as_deref()
            == Some("true"),
        cni_bin_dir: get("cni.bin_dir").unwrap_or_else(|| "/opt/cni/bin".into()),
        sandbox_image: get("sandbox_image").unwrap_or_else(|| "registry.k8s.io/pause:3.8".into()),
    }
}

/// The default config text with the file's values substituted, as `config dump` shows.
pub fn dump(file: &Flat) -> String {
    let mut table = String::new();
    let mut out = String::new();
    for line in default_config().lines() {
        let t = line.trim();
        if t.starts_with('[') {
            table = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            out.push_str(line);
        } else if let Some((k, _)) = t.split_once('=') {
            let k = k.trim();
            let full = if table.is_empty() {
                k.to_string()
            } else {
                format!("{table}.{k}")
            };
            match file.get(&full) {
                Some(v) => {
                    let indent = &line[..line.len() - line.trim_start().len()];
                    out.push_str(&format!("{indent}{k} = {v}"));
                }
                None => out.push_str(line),
            }
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// Upstream version of the installed containerd package ("1.7.24").
pub fn containerd_version() -> String {
    common::installed_version("containerd")
        .map(|v| upstream(&v))
        .unwrap_or_else(|| "1.7.24".into())
}

/// "1.7.24-0ubuntu1~24.04.2" -> "1.7.24"; "1.6.20~ds1-1+b1" -> "1.6.20".
pub fn upstream(deb: &str) -> String {
    let v = deb.split_once(':').map(|x| x.1).unwrap_or(deb);
    let v = v.rsplit_once('-').map(|x| x.0).unwrap_or(v);
    v.split(['~', '+']).next().unwrap_or(v).to_string()
}

fn read_config() -> Result<Option<Flat>, String> {
    match std::fs::read_to_string(CONFIG_PATH) {
        Ok(t) => parse_toml(&t).map(Some),
        Err(_) => Ok(None),
    }
}

/// `containerd config default|dump`, `containerd --version`.
pub fn containerd_cli(_ctx: &mut Ctx, args: &[String]) -> i32 {
    let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    match a.as_slice() {
        ["--version"] | ["-v"] | ["version"] => {
            println!(
                "containerd github.com/containerd/containerd {} ",
                containerd_version()
            );
            0
        }
        ["config", "default"] => {
            print!("{}", default_config());
            0
        }
        ["config", "dump"] => match read_config() {
            Ok(f) => {
                print!("{}", dump(&f.unwrap_or_default()));
                0
            }
            Err(e) => {
                eprintln!("containerd: {e}");
                1
            }
        },
        ["config", ..] => {
            eprintln!("Incorrect Usage. flag provided but not defined");
            1
        }
        [] => {
            eprintln!("containerd: must be run by systemd (containerd.service) in the testbed");
            1
        }
        _ => {
            eprintln!("containerd: unknown command {:?}", a[0]);
            1
        }
    }
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_term_handler() {
    unsafe {
        libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_term as *const () as libc::sighandler_t);
    }
}

fn log(msg: &str) {
    eprintln!(
        "time=\"{:.3}\" level=info msg=\"{}\"",
        common::now(),
        msg.replace('"', "\\\"")
    );
}

fn set_state(unit: &str, s: &str) {
    let _ = common::write_atomic(
        &common::ctl_path(testbed::layout::ctl::UNITS).join(format!("{unit}.state")),
        s.as_bytes(),
    );
}

/// Serves a listening unix socket until SIGTERM, then removes it and `cleanup` files.
fn serve(sock: &Path, cleanup: &[&str], stop_msg: &str) -> i32 {
    let _ = std::fs::remove_file(sock);
    if let Some(d) = sock.parent() {
        let _ = std::fs::create_dir_all(d);
    }
    let listener = match UnixListener::bind(sock) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "time=\"{:.3}\" level=fatal msg=\"failed to listen on {}: {e}\"",
                common::now(),
                sock.display()
            );
            return 1;
        }
    };
    let _ = listener.set_nonblocking(true);
    while !STOP.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((s, _)) => drop(s),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    let _ = std::fs::remove_file(sock);
    for f in cleanup {
        let _ = std::fs::remove_file(f);
    }
    log(stop_msg);
    0
}

/// `tb-sim daemon containerd`.
pub fn containerd_daemon(_args: &[String]) -> i32 {
    install_term_handler();
    if let Some(bin) = super::containerd_real::real_binary() {
        return super::containerd_real::run(&bin, &STOP, |s| set_state("containerd", s));
    }
    let file = match read_config() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("containerd: {e}");
            return 1;
        }
    };
    let eff = effective(file.as_ref());
    let version = containerd_version();
    log(&format!(
        "starting containerd\" revision= version={version}"
    ));
    let facts = runtime_facts(&eff, &version);
    if !facts.cri {
        log("Disabled plugins: [io.containerd.grpc.v1.cri]");
    } else {
        log(&format!(
            "Start cri plugin with config {{... SystemdCgroup:{} ... NetworkPluginBinDir:{} ... SandboxImage:{} ...}}",
            facts.systemd_cgroup, facts.cni_bin_dir, facts.sandbox_image
        ));
    }
    let sock = eff
        .get("grpc.address")
        .map(|v| scalar(v))
        .unwrap_or_else(|| "/run/containerd/containerd.sock".into());
    let _ = common::write_atomic(
        Path::new(common::CONTAINERD_RUNTIME),
        serde_json::to_string_pretty(&facts).unwrap().as_bytes(),
    );
    log(&format!("serving... address={sock}"));
    log("containerd successfully booted in 0.041354s");
    set_state("containerd", "running");
    serve(
        Path::new(&sock),
        &[common::CONTAINERD_RUNTIME],
        "Stop CRI service",
    )
}

const DOCKER_SOCK: &str = "/run/docker.sock";

/// `tb-sim daemon docker`: needs a running containerd (`--containerd=` in docker.service).
pub fn docker_daemon(_args: &[String]) -> i32 {
    install_term_handler();
    // dockerd waits for containerd's socket, then gives up.
    let mut waited = 0;
    while common::unit_pid("containerd").is_none() {
        if waited >= 50 || STOP.load(Ordering::SeqCst) {
            eprintln!(
                "failed to start daemon: error while opening containerd: failed to dial \"/run/containerd/containerd.sock\": context deadline exceeded"
            );
            return 1;
        }
        std::thread::sleep(Duration::from_millis(100));
        waited += 1;
    }
    log("Daemon has completed initialization");
    log(&format!("API listen on {DOCKER_SOCK}"));
    set_state("docker", "running");
    serve(
        Path::new(DOCKER_SOCK),
        &[],
        "Processing signal 'terminated'",
    )
}

fn docker_version() -> String {
    common::installed_version("docker.io")
        .map(|v| upstream(&v))
        .unwrap_or_else(|| "24.0.7".into())
}

/// `docker version|info|ps|--version`: enough to tell a running engine from a stopped one.
pub fn docker_cli(_ctx: &mut Ctx, args: &[String]) -> i32 {
    let v = docker_version();
    let first = args.first().map(|s| s.as_str()).unwrap_or("");
    if first == "--version" || first == "-v" {
        println!("Docker version {v}, build 24.0.7-0ubuntu4.1");
        return 0;
    }
    // docker.socket activation: the first connection to the socket starts docker.service.
    if common::is_root() && common::unit_pid("docker").is_none() {
        if let Some(sock) = crate::os::systemd::find("docker.socket") {
            if crate::os::systemd::active_state(sock) == crate::os::systemd::Active::Active {
                let _ = crate::os::systemd::start_unit("docker");
            }
        }
    }
    let daemon_up = common::unit_pid("docker").is_some() && Path::new(DOCKER_SOCK).exists();
    let cannot = || {
        if !common::is_root() {
            eprintln!("permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock: Get \"http://%2Fvar%2Frun%2Fdocker.sock/v1.43/version\": dial unix /var/run/docker.sock: connect: permission denied");
        } else {
            eprintln!("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?");
        }
        1
    };
    match first {
        "version" => {
            println!("Client:\n Version:           {v}\n API version:       1.43\n Go version:        go1.22.2\n OS/Arch:           linux/amd64\n Context:           default\n");
            if !daemon_up || !common::is_root() {
                return cannot();
            }
            println!("Server:\n Engine:\n  Version:          {v}\n  API version:      1.43 (minimum version 1.12)\n  Go version:       go1.22.2\n  OS/Arch:          linux/amd64\n containerd:\n  Version:          {}\n runc:\n  Version:          1.1.12-0ubuntu3.1", containerd_version());
            0
        }
        "info" => {
            if !daemon_up || !common::is_root() {
                return cannot();
            }
            println!("Client:\n Version:    {v}\n Context:    default\n\nServer:\n Containers: 0\n Images: 0\n Server Version: {v}\n Storage Driver: overlay2\n Cgroup Driver: systemd\n Cgroup Version: 2\n Default Runtime: runc\n Kernel Version: 6.8.0-49-generic\n Operating System: Ubuntu 24.04.1 LTS\n Docker Root Dir: /var/lib/docker");
            0
        }
        "ps" | "images" => {
            if !daemon_up || !common::is_root() {
                return cannot();
            }
            if first == "ps" {
                println!("CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES");
            } else {
                println!("REPOSITORY   TAG       IMAGE ID   CREATED   SIZE");
            }
            0
        }
        _ => {
            eprintln!("docker: '{first}' is not a docker command.\nSee 'docker --help'");
            1
        }
    }
}

/// `ctr version|--version`.
pub fn ctr_cli(_ctx: &mut Ctx, args: &[String]) -> i32 {
    let v = containerd_version();
    match args.first().map(|s| s.as_str()) {
        Some("--version") | Some("-v") => {
            println!("ctr github.com/containerd/containerd {v}");
            0
        }
        Some("version") => {
            println!("Client:\n  Version:  {v}\n  Revision: \n  Go version: go1.22.2\n");
            if common::unit_pid("containerd").is_none() {
                eprintln!("ctr: failed to dial \"/run/containerd/containerd.sock\": connection error: desc = \"transport: error while dialing: dial unix /run/containerd/containerd.sock: connect: no such file or directory\"");
                return 1;
            }
            println!("Server:\n  Version:  {v}\n  Revision: \n  UUID: 00000000-0000-0000-0000-000000000000");
            0
        }
        _ => {
            eprintln!("ctr: only `ctr version` is modeled in the testbed");
            1
        }
    }
}

/// `runc --version`, and the OCI runtime commands containerd's shim runs (runc.rs).
pub fn runc_cli(_ctx: &mut Ctx, args: &[String]) -> i32 {
    let v = common::installed_version("runc")
        .map(|v| upstream(&v))
        .unwrap_or_else(|| "1.1.12".into());
    match args.first().map(|s| s.as_str()) {
        Some("--version") | Some("-v") | Some("version") => {
            println!(
                "runc version {v}\ncommit: \nspec: 1.0.2-dev\ngo: go1.22.2\nlibseccomp: 2.5.5"
            );
            0
        }
        _ => super::runc::run(args).unwrap_or_else(|| {
            eprintln!(
                "runc: only --version, create, start, state, kill and delete are modeled in the testbed"
            );
            1
        }),
    }
}

/// The CRI endpoint crictl uses: `-r/--runtime-endpoint`, else /etc/crictl.yaml, else
/// the deprecated default list (with crictl's warning).
fn crictl_endpoint(args: &[String]) -> (Option<String>, bool) {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "-r" || a == "--runtime-endpoint" {
            return (it.next().cloned(), false);
        }
        if let Some(v) = a.strip_prefix("--runtime-endpoint=") {
            return (Some(v.to_string()), false);
        }
    }
    let file = std::fs::read_to_string("/etc/crictl.yaml").unwrap_or_default();
    for l in file.lines() {
        if let Some(v) = l.trim().strip_prefix("runtime-endpoint:") {
            return (Some(v.trim().trim_matches('"').to_string()), false);
        }
    }
    (None, true)
}

/// `crictl --version|version|info|ps|pods|images`: talks to the running containerd's
/// CRI plugin (no containers are modeled, so lists are empty).
pub fn crictl_cli(_ctx: &mut Ctx, args: &[String]) -> i32 {
    let v = common::installed_version("cri-tools")
        .map(|v| upstream(&v))
        .unwrap_or_else(|| "1.34.0".into());
    let verb = args
        .iter()
        .find(|a| !a.starts_with('-') && !a.starts_with("unix://"))
        .map(|s| s.as_str())
        .unwrap_or("");
    if args.iter().any(|a| a == "--version" || a == "-v") {
        println!("crictl version v{v}");
        return 0;
    }
    let (endpoint, defaulted) = crictl_endpoint(args);
    let endpoint = endpoint.unwrap_or_else(|| "unix:///run/containerd/containerd.sock".into());
    if defaulted {
        eprintln!("WARN[0000] runtime connect using default endpoints: [unix:///run/containerd/containerd.sock unix:///run/crio/crio.sock unix:///var/run/cri-dockerd.sock]. As the default settings are now deprecated, you should set the endpoint instead.");
    }
    let sock = endpoint.trim_start_matches("unix://");
    let is_containerd =
        sock == "/run/containerd/containerd.sock" || sock == "/var/run/containerd/containerd.sock";
    let rt = common::containerd_runtime().filter(|_| is_containerd);
    let Some(rt) = rt else {
        eprintln!("E0000 00:00:00.000000       1 remote_runtime.go:189] \"Version from runtime service failed\" err=\"rpc error: code = Unavailable desc = connection error: desc = \\\"transport: Error while dialing: dial unix {sock}: connect: no such file or directory\\\"\"");
        eprintln!("FATA[0000] validate service connection: validate CRI v1 runtime API for endpoint \"{endpoint}\": rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial unix {sock}: connect: no such file or directory\"");
        return 1;
    };
    if !common::is_root() {
        eprintln!("FATA[0000] validate service connection: validate CRI v1 runtime API for endpoint \"{endpoint}\": rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial unix {sock}: connect: permission denied\"");
        return 1;
    }
    if !rt.cri {
        eprintln!("FATA[0000] validate service connection: validate CRI v1 runtime API for endpoint \"{endpoint}\": rpc error: code = Unimplemented desc = unknown service runtime.v1.RuntimeService");
        return 1;
    }
    match verb {
        "version" => {
            println!("Version:  0.1.0\nRuntimeName:  containerd\nRuntimeVersion:  {}\nRuntimeApiVersion:  v1", rt.version);
            0
        }
        "info" => {
            let info = serde_json::json!({
                "status": {"conditions": [
                    {"type": "RuntimeReady", "status": true, "reason": "", "message": ""},
                    {"type": "NetworkReady", "status": false, "reason": "NetworkPluginNotReady",
                     "message": "Network plugin returns error: cni plugin not initialized"}
                ]},
                "config": {
                    "containerd": {"runtimes": {"runc": {"options": {"SystemdCgroup": rt.systemd_cgroup}}}},
                    "cni": {"binDir": rt.cni_bin_dir, "confDir": "/etc/cni/net.d"},
                    "sandboxImage": rt.sandbox_image
                }
            });
            println!("{}", serde_json::to_string_pretty(&info).unwrap());
            0
        }
        "ps" => {
            println!("CONTAINER           IMAGE               CREATED             STATE               NAME                ATTEMPT             POD ID              POD");
            0
        }
        "pods" => {
            println!("POD ID              CREATED             STATE               NAME                NAMESPACE           ATTEMPT             RUNTIME");
            0
        }
        "images" => {
            println!("IMAGE               TAG                 IMAGE ID            SIZE");
            0
        }
        _ => {
            eprintln!("crictl: only version, info, ps, pods and images are modeled in the testbed");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_facts() {
        let eff = effective(None);
        let f = runtime_facts(&eff, "1.7.24");
        assert!(f.cri);
        assert!(!f.systemd_cgroup);
        assert_eq!(f.cni_bin_dir, "/opt/cni/bin");
        assert_eq!(f.sandbox_image, "registry.k8s.io/pause:3.8");
    }

    #[test]
    fn packaged_config_points_cni_at_usr_lib() {
        let file = parse_toml(PACKAGED_CONFIG).unwrap();
        let f = runtime_facts(&effective(Some(&file)), "1.7.24");
        assert_eq!(f.cni_bin_dir, "/usr/lib/cni");
    }

    #[test]
    fn sed_systemd_cgroup_is_seen() {
        let text = DEFAULT_CONFIG.replace("SystemdCgroup = false", "SystemdCgroup = true");
        let file = parse_toml(&text).unwrap();
        let f = runtime_facts(&effective(Some(&file)), "1.7.24");
        assert!(f.systemd_cgroup);
        assert!(dump(&file).contains("SystemdCgroup = true"));
    }

    #[test]
    fn disabled_cri() {
        let file = parse_toml("disabled_plugins = [\"cri\"]\n").unwrap();
        let f = runtime_facts(&effective(Some(&file)), "1.7.24");
        assert!(!f.cri);
        assert!(dump(&file).contains("disabled_plugins = [\"cri\"]"));
    }

    #[test]
    fn broken_toml_fails() {
        assert!(parse_toml("version = 2\n[plugins\n").is_err());
        assert!(parse_toml("SystemdCgroup true\n").is_err());
    }

    #[test]
    fn upstream_versions() {
        assert_eq!(upstream("1.7.24-0ubuntu1~24.04.2"), "1.7.24");
        assert_eq!(upstream("1.6.20~ds1-1+b1"), "1.6.20");
        assert_eq!(upstream("24.0.7-0ubuntu4.1"), "24.0.7");
    }
}
