//! `tb-sim daemon real-kubelet --images DIR`: the first pieces of the kubelet stand-in for
//! the REAL control plane (issue 9, testbed/STANDINS-kubelet-real.md): healthz and Node
//! registration (realnode.rs), and here what the kubelet's file source
//! (pkg/kubelet/config/file.go) plus the container runtime do for the static pods kubeadm
//! writes, with host processes instead of containers:
//!
//! - every file in /etc/kubernetes/manifests whose name does not start with a dot is a
//!   Pod, whatever its extension (mirror.rs manifest_files); each of its containers runs as
//!   a process of the host (kubeadm's control-plane pods are `hostNetwork: true` and mount
//!   only hostPath volumes at the same paths, so the host's own view is the pod's);
//! - the program for a container is the binary its image stands for, looked up in
//!   DIR/images.txt (`IMAGE BINARY` lines written by testbed/k8s/build.sh from the real
//!   `kubeadm config images list`) and in those of the other releases built beside DIR
//!   (the hosts' runtime holds all their images): an image not listed cannot run, as an
//!   image that cannot be pulled (ErrImagePull);
//! - argv is the container's `command` + `args` (Kubernetes: command replaces the image's
//!   ENTRYPOINT, args its CMD), with `command[0]` resolved to that binary; `env` is set;
//! - a manifest that changes restarts its pod, a removed one stops it (SIGTERM, then
//!   SIGKILL after the pod's terminationGracePeriodSeconds, default 30), and a process that
//!   exits is restarted (restartPolicy Always) with the kubelet's crash-loop back-off
//!   ([`CrashBackoff`]: at once the first time, then 10 s doubling to 300 s, reset after
//!   10 minutes without a restart);
//! - with the REAL containerd as the runtime, each pod first gets a pod sandbox in it
//!   (CRI RunPodSandbox) and its processes run in the sandbox's PID namespace, so the
//!   runtime's StopPodSandbox (`kubeadm reset`) ends them (sandbox.rs); a pod that
//!   goes loses its sandbox too; with the simulated runtime they are plain host processes;
//! - the processes outlive the stand-in (the runtime keeps containers when the kubelet
//!   stops); the next start finds each one by /run/real-kubelet/POD.pid and its argv in
//!   /proc/PID/cmdline (and its sandbox by POD.sandbox) and keeps it instead of starting
//!   another;
//! - output goes to /var/log/pods/kube-system_POD/CONTAINER/0.log (the kubelet's path
//!   layout, pkg/kubelet/kuberuntime/helpers.go BuildContainerLogsDirectory, without the
//!   UID).
//!
//! - each container's startup, liveness and readiness probes run against its process
//!   (prober.rs): the mirror pod is Ready only once they say so, and a failed liveness
//!   probe restarts the container.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::images;
use super::kubelet::MANIFESTS;
use super::mirror;
use super::prober;
use super::realnode;
use super::sandbox::{self, Cri};
use testbed::time::rfc3339;

static TERM: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    TERM.store(true, Ordering::SeqCst);
}

/// The crash-loop back-off's first delay (pkg/kubelet/kubelet.go initialCrashLoopBackOff)
/// and, here, the retry delay of a container that could not be started (the pod worker's
/// backOffPeriod, pkg/kubelet/kubelet.go).
const BACKOFF_START: Duration = Duration::from_secs(10);
/// The back-off's ceiling: MaxContainerBackOff (pkg/kubelet/apis/config/v1beta1), the
/// default of 1.35's crashLoopBackOff.maxContainerRestartPeriod.
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// An entry not updated for this long before an exit starts over (kubelet.go sets the
/// crash-loop back-off's HasExpiredFunc to 600 s).
const BACKOFF_RESET: Duration = Duration::from_secs(600);

/// The kubelet's crash-loop back-off of one container: kuberuntime_manager.go doBackOff
/// with client-go util/flowcontrol/backoff.go. While the container's last run, ended at
/// `finished`, is in back-off ([`CrashBackoff::until`]: `IsInBackOffSince`) it is not
/// started; otherwise the start first calls [`CrashBackoff::next`] (`Next`), which sets
/// the back-off to [`BACKOFF_START`] for a container with no entry or one last updated
/// more than [`BACKOFF_RESET`] before `finished`, else doubles it up to [`BACKOFF_MAX`].
/// So the first exit restarts at once, the next ones after 10, 20, 40 ... 300 s, and a
/// container that ran 10 minutes starts over.
#[derive(Debug, Clone, Default, PartialEq)]
struct CrashBackoff {
    /// (current back-off, last update).
    entry: Option<(Duration, Instant)>,
}

impl CrashBackoff {
    fn expired(last: Instant, finished: Instant) -> bool {
        finished.saturating_duration_since(last) > BACKOFF_RESET
    }

    /// Until when a container that finished at `finished` is in back-off (None: it may
    /// start).
    fn until(&self, finished: Instant, now: Instant) -> Option<Instant> {
        let (backoff, last) = self.entry?;
        let until = finished + backoff;
        (!Self::expired(last, finished) && now < until).then_some(until)
    }

    /// The start of a container that finished at `finished`, at `now`.
    fn next(&mut self, finished: Instant, now: Instant) {
        let backoff = match self.entry {
            Some((backoff, last)) if !Self::expired(last, finished) => {
                (backoff * 2).min(BACKOFF_MAX)
            }
            _ => BACKOFF_START,
        };
        self.entry = Some((backoff, now));
    }
}

/// One container of a static pod, ready to start.
#[derive(Debug, Clone, PartialEq)]
struct Spec {
    pod: String,
    container: String,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    grace: Duration,
    probes: Vec<prober::Probe>,
    /// The container's image, which the runtime must hold (or pull) before it starts,
    /// and its pull policy (images.rs).
    image: String,
    pull_policy: String,
}

/// A running (or backing-off) container process.
struct Running {
    spec: Spec,
    child: Option<Proc>,
    backoff: CrashBackoff,
    /// When its last process exited (None: it has not run here yet).
    finished: Option<Instant>,
    /// Not before (a start that failed is retried after the pod worker's back-off).
    next_start: Instant,
    /// The image pull's back-off ([`ensure_image`]).
    pulls: images::PullBackoff,
}

/// A container's process: started by this kubelet, or adopted from an earlier one (the
/// kubelet stopping leaves the containers running, as containerd keeps them; the next
/// kubelet finds them again).
enum Proc {
    Child(Child),
    Adopted(i32),
}

impl Proc {
    fn id(&self) -> i32 {
        match self {
            Proc::Child(c) => c.id() as i32,
            Proc::Adopted(pid) => *pid,
        }
    }

    /// How it ended, once it has: the words, and the exit code as the runtime reports it
    /// (128 + the signal for a signalled process); None for an adopted process, which is
    /// not this process's child.
    fn exited(&mut self) -> Option<(String, Option<i32>)> {
        use std::os::unix::process::ExitStatusExt;
        match self {
            Proc::Child(c) => c.try_wait().ok().flatten().map(|s| {
                let code = s.code().or(s.signal().map(|sig| 128 + sig));
                (s.to_string(), code)
            }),
            Proc::Adopted(pid) => (!alive(*pid)).then(|| ("exited".to_string(), None)),
        }
    }
}

/// Whether `pid` is a live process (the host's PID 1 reaps adopted orphans).
pub fn alive(pid: i32) -> bool {
    let state = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = state.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
    matches!(state, Some(Some(c)) if c != 'Z' && c != 'X')
}

/// The process a previous kubelet started for `spec`, if it still runs that argv
/// (`/run/real-kubelet/POD.pid` and /proc/PID/cmdline).
fn adoptable(spec: &Spec) -> Option<i32> {
    let file = Path::new(mirror::PIDS).join(format!("{}.pid", spec.pod));
    let pid: i32 = fs::read_to_string(file).ok()?.trim().parse().ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let wanted: Vec<u8> = spec
        .argv
        .iter()
        .flat_map(|a| a.bytes().chain(std::iter::once(0)))
        .collect();
    (alive(pid) && cmdline == wanted).then_some(pid)
}

/// What the files `POD.SUFFIX` of /run/real-kubelet hold: (pod, text).
fn recorded(suffix: &str) -> Vec<(String, String)> {
    fs::read_dir(mirror::PIDS)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let pod = name.strip_suffix(suffix)?.to_string();
            Some((pod, fs::read_to_string(e.path()).ok()?))
        })
        .collect()
}

/// The live processes the pid files of /run/real-kubelet name: (pod, pid).
fn recorded_processes() -> Vec<(String, i32)> {
    recorded(".pid")
        .into_iter()
        .filter_map(|(pod, text)| {
            let pid: i32 = text.trim().parse().ok()?;
            alive(pid).then_some((pod, pid))
        })
        .collect()
}

/// The images the host's runtime holds -> the absolute path of the binary each stands
/// for: the `IMAGE BINARY` lines of `dir/images.txt` (the kubelet's own release; must
/// exist), then those of every other built release beside it (`dir/../v*/images.txt`),
/// since the hosts' containerd starts with the images of every built release
/// (`Builder::real_kubernetes`). So a kubelet of one release runs the control plane of
/// the next, as `kubeadm upgrade apply` has it before the kubelet package is upgraded
/// (the real kubelet runs whatever image the runtime has). An image of a release that is
/// not built stays unknown.
fn load_images(dir: &Path) -> Result<BTreeMap<String, PathBuf>, String> {
    let read = |dir: &Path| -> Result<Vec<(String, PathBuf)>, String> {
        let file = dir.join("images.txt");
        let text = fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        Ok(text
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                Some((w.next()?.to_string(), dir.join(w.next()?)))
            })
            .collect())
    };
    let mut images: BTreeMap<String, PathBuf> = read(dir)?.into_iter().collect();
    let mut others: Vec<PathBuf> = dir
        .parent()
        .and_then(|p| fs::read_dir(p).ok())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.as_path() != dir
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('v'))
                && p.join("images.txt").is_file()
        })
        .collect();
    others.sort();
    for other in others {
        for (image, binary) in read(&other).unwrap_or_default() {
            images.entry(image).or_insert(binary);
        }
    }
    Ok(images)
}

/// The containers of one manifest, or why it cannot run.
fn specs(text: &str, images: &BTreeMap<String, PathBuf>) -> Result<Vec<Spec>, String> {
    let pod: Value = serde_yaml::from_str(text).map_err(|e| format!("invalid YAML: {e}"))?;
    if pod["kind"] != "Pod" {
        return Err(format!("kind is {}, not Pod", pod["kind"]));
    }
    let name = pod["metadata"]["name"]
        .as_str()
        .ok_or("metadata.name is missing")?
        .to_string();
    if let Some(why) = mirror::api_object_reference(&pod) {
        return Err(format!("\"Could not process manifest file\" err={why:?}"));
    }
    if pod["spec"]["hostNetwork"] != true {
        return Err(format!(
            "{name}: only hostNetwork pods can run as host processes"
        ));
    }
    let grace = Duration::from_secs(
        pod["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap_or(30),
    );
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
        let cname = c["name"].as_str().unwrap_or("").to_string();
        let image = c["image"].as_str().unwrap_or("");
        let binary = images.get(image).ok_or_else(|| {
            format!("{name}/{cname}: Failed to pull image \"{image}\": not in the testbed's image cache")
        })?;
        let command = strings(&c["command"]);
        let Some(first) = command.first() else {
            return Err(format!(
                "{name}/{cname}: no command (the testbed runs the manifest's command, the images' entrypoints are unknown)"
            ));
        };
        let wanted = binary.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if Path::new(first).file_name().and_then(|n| n.to_str()) != Some(wanted) {
            return Err(format!(
                "{name}/{cname}: command {first:?} is not the program of image {image} ({wanted})"
            ));
        }
        let mut argv = vec![binary.display().to_string()];
        argv.extend(command.into_iter().skip(1));
        argv.extend(strings(&c["args"]));
        let probes = prober::probes(c).map_err(|e| format!("{name}/{cname}: {e}"))?;
        let env = c["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| Some((e["name"].as_str()?.into(), e["value"].as_str()?.into())))
            .collect();
        out.push(Spec {
            pod: name.clone(),
            container: cname,
            argv,
            env,
            grace,
            probes,
            image: image.to_string(),
            pull_policy: images::pull_policy(c),
        });
    }
    Ok(out)
}

fn stamp() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:03}", t.as_secs(), t.subsec_millis())
}

/// Starts `spec`'s process, in the PID namespace of `pause` (its pod's sandbox) if given.
fn start(spec: &Spec, pause: Option<i32>) -> Result<Child, String> {
    let dir = PathBuf::from(format!(
        "/var/log/pods/kube-system_{}/{}",
        spec.pod, spec.container
    ));
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let log = File::options()
        .create(true)
        .append(true)
        .open(dir.join("0.log"))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(&spec.argv[0]);
    cmd.args(&spec.argv[1..])
        .envs(spec.env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err);
    sandbox::spawn_in(pause, cmd).map_err(|e| format!("{}: {e}", spec.argv[0]))
}

/// A pod's sandbox in the real containerd, recorded in /run/real-kubelet/POD.sandbox
/// (`ID UID ATTEMPT`) for the next kubelet.
#[derive(Debug, Clone, PartialEq)]
struct Sandbox {
    id: String,
    uid: String,
    attempt: u32,
}

fn sandbox_file(pod: &str) -> PathBuf {
    Path::new(mirror::PIDS).join(format!("{pod}.sandbox"))
}

/// The sandboxes an earlier kubelet recorded, by pod.
fn recorded_sandboxes() -> BTreeMap<String, Sandbox> {
    recorded(".sandbox")
        .into_iter()
        .filter_map(|(pod, text)| {
            let mut w = text.split_whitespace();
            let sandbox = Sandbox {
                id: w.next()?.to_string(),
                uid: w.next()?.to_string(),
                attempt: w.next()?.parse().ok()?,
            };
            Some((pod, sandbox))
        })
        .collect()
}

/// The sandboxes of the static pods, when the runtime is the real containerd.
struct Sandboxes {
    cri: Cri,
    by_pod: BTreeMap<String, Sandbox>,
    /// The node's name (the static pods' names end with it).
    node: String,
}

impl Sandboxes {
    /// The pause of `pod`'s ready sandbox, made now if it has none (or one of another
    /// UID, or one whose pause is gone: removed, and the next attempt made).
    fn ensure(&mut self, pod: &str, manifest: &Value, uid: &str) -> Result<i32, String> {
        let mut attempt = 0;
        if let Some(sb) = self.by_pod.get(pod).cloned() {
            if sb.uid == uid {
                if let Some(pause) = sandbox::pause_pid(&sb.id) {
                    return Ok(pause);
                }
                attempt = sb.attempt + 1;
                log(&format!(
                    "sandbox {} of {pod} is not ready: removing it, making attempt {attempt}",
                    sb.id
                ));
            }
            self.remove(pod);
        }
        // The runtime may hold sandboxes of this pod that no record names: the records
        // live in /run, gone after a reboot, while containerd keeps its sandboxes in
        // /var/lib/containerd (NOTREADY once their pause died with the machine), and a
        // sandbox's name (NAME_NAMESPACE_UID_ATTEMPT) stays reserved until it is removed.
        // The real kubelet reads the pod's sandboxes from ListPodSandbox, not from a
        // file: a ready one is kept, otherwise it makes the attempt after the latest
        // (kuberuntime_manager.go computePodActions, podSandboxChanged), and its garbage
        // collector removes the not-ready ones (kuberuntime_gc.go evictSandboxes), here at
        // once.
        for listed in self.cri.list_pod_sandboxes()? {
            if listed.uid != uid {
                continue;
            }
            if listed.ready {
                if let Some(pause) = sandbox::pause_pid(&listed.id) {
                    log(&format!("found sandbox {} of {pod} ready", listed.id));
                    return Ok(self.record(pod, listed.id, uid, listed.attempt, pause));
                }
            }
            attempt = attempt.max(listed.attempt + 1);
            match self.cri.remove_pod_sandbox(&listed.id) {
                Ok(()) => log(&format!(
                    "removed sandbox {} of {pod} (not ready)",
                    listed.id
                )),
                Err(e) => return Err(format!("{pod}: removing sandbox {}: {e}", listed.id)),
            }
        }
        let config = sandbox::sandbox_config(manifest, &self.node, uid, attempt);
        let id = self
            .cri
            .run_pod_sandbox(&config)
            .map_err(|e| format!("{pod}: RunPodSandbox: {e}"))?;
        log(&format!("created sandbox {id} for {pod}"));
        // The shim has started the pause when RunPodSandbox returns.
        let pause =
            sandbox::pause_pid(&id).ok_or_else(|| format!("{pod}: sandbox {id} has no pause"))?;
        Ok(self.record(pod, id, uid, attempt, pause))
    }

    /// Remembers `pod`'s sandbox, here and in /run for the next kubelet; `pause`.
    fn record(&mut self, pod: &str, id: String, uid: &str, attempt: u32, pause: i32) -> i32 {
        let sb = Sandbox {
            id,
            uid: uid.to_string(),
            attempt,
        };
        let _ = fs::create_dir_all(mirror::PIDS);
        let _ = fs::write(
            sandbox_file(pod),
            format!("{} {} {}\n", sb.id, sb.uid, sb.attempt),
        );
        self.by_pod.insert(pod.to_string(), sb);
        pause
    }

    /// Stops and removes `pod`'s sandbox (and with it whatever still runs in it).
    fn remove(&mut self, pod: &str) {
        if let Some(sb) = self.by_pod.remove(pod) {
            match self.cri.remove_pod_sandbox(&sb.id) {
                Ok(()) => log(&format!("removed sandbox {} of {pod}", sb.id)),
                Err(e) => eprintln!(
                    "E {} real-kubelet: removing sandbox {} of {pod}: {e}",
                    stamp(),
                    sb.id
                ),
            }
            let _ = fs::remove_file(sandbox_file(pod));
        }
    }
}

fn log(msg: &str) {
    eprintln!("I {} real-kubelet: {msg}", stamp());
}

/// The image of `r`'s container in the runtime (images.rs: the kubelet's
/// EnsureImageExists with the manifest's pull policy; kubeadm writes IfNotPresent). Until
/// it is there the container waits with the image manager's reason and message
/// (recorded for the mirror pod, mirror.rs history) and is retried when the pull's
/// back-off ends.
fn ensure_image(cri: &Cri, r: &mut Running, uid: &str, now: Instant) -> Result<(), String> {
    let spec = &r.spec;
    images::ensure(cri, &spec.image, &spec.pull_policy, &mut r.pulls, now).map_err(|e| {
        mirror::update_history(&spec.pod, uid, &spec.container, |h| {
            h["waiting"] = serde_json::json!({"reason": e.reason, "message": e.message});
        });
        r.next_start = r.next_start.max(r.pulls.until(now));
        format!(
            "{}/{}: {}",
            spec.pod,
            spec.container,
            e.log_line(&spec.image)
        )
    })
}

/// A container's termination as the kubelet reports it from the runtime
/// (kuberuntime_container.go toKubeContainerStatus): the exit code, reason `Completed`
/// for 0 and `Error` otherwise (containerd's reasons), when it started and finished. An
/// exit the stand-in could not see (an adopted process is not its child) is reported in
/// the words the kubelet uses for a container it cannot find
/// (kubelet_pods.go convertToAPIContainerStatuses: ContainerStatusUnknown, 137).
fn terminated(code: Option<i32>, started_at: &Value, finished_at: &str) -> Value {
    let mut t = match code {
        Some(code) => serde_json::json!({"exitCode": code,
            "reason": if code == 0 { "Completed" } else { "Error" }}),
        None => serde_json::json!({"exitCode": 137, "reason": "ContainerStatusUnknown",
            "message": "The container could not be located when the pod was terminated"}),
    };
    if started_at.is_string() {
        t["startedAt"] = started_at.clone();
    }
    t["finishedAt"] = serde_json::json!(finished_at);
    serde_json::json!({ "terminated": t })
}

/// A whole number of seconds as Go's time.Duration prints it (`10s`, `1m20s`, `5m0s`).
fn go_duration(secs: u64) -> String {
    match (secs / 3600, secs / 60 % 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

fn stop(mut proc: Proc, grace: Duration) {
    let pid = proc.id();
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if proc.exited().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    if let Proc::Child(mut c) = proc {
        let _ = c.wait();
    }
}

/// `tb-sim daemon real-kubelet --images DIR`: the stand-in started by hand (DIR's name
/// is the release), with the unit's configuration files if they exist.
pub fn daemon(args: &[String]) -> i32 {
    let dir = match args {
        [flag, dir] if flag == "--images" => PathBuf::from(dir),
        _ => {
            eprintln!("usage: tb-sim daemon real-kubelet --images DIR");
            return 2;
        }
    };
    let release = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let config = fs::read_to_string(super::kubelet::CONFIG_YAML)
        .ok()
        .and_then(|t| serde_yaml::from_str(&t).ok())
        .unwrap_or(Value::Null);
    run(&dir, &release, &config, &super::kubelet::read_flags())
}

/// The stand-in proper, from the `kubelet` unit (kubelet.rs) or [`daemon`]: the programs
/// of `release` from `dir`, the kubelet's configuration (config.yaml as JSON) and flags.
/// Reconciles the running processes with the manifests every second.
pub fn run(dir: &Path, release: &str, config: &Value, flags: &[(String, String)]) -> i32 {
    unsafe {
        libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_term as *const () as libc::sighandler_t);
    }
    let images = match load_images(dir) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("E {} real-kubelet: {e}", stamp());
            return 1;
        }
    };
    let opts = realnode::Options {
        runtime: realnode::runtime_version(),
        ..realnode::Options::new(release, config, flags)
    };
    if let Err(e) = realnode::hold_server_port(&opts.server) {
        eprintln!("E {} real-kubelet: {e}", stamp());
        return 1;
    }
    if let Some(address) = &opts.healthz {
        if let Err(e) = realnode::serve_healthz(address) {
            eprintln!("E {} real-kubelet: {e}", stamp());
            return 1;
        }
    }
    // The pods' IP (hostNetwork: the node's), the probes' default host.
    let pod_ip = opts
        .node_ip
        .map(|ip| ip.to_string())
        .or_else(realnode::internal_ip)
        .unwrap_or_default();
    let minor = release
        .trim_start_matches('v')
        .splitn(3, '.')
        .take(2)
        .collect::<Vec<_>>()
        .join(".");
    let watch = |spec: &Spec, pid: i32, started_at: Instant| {
        prober::watch(
            prober::Target {
                pod: spec.pod.clone(),
                container: spec.container.clone(),
                pid,
                started_at,
                pod_ip: pod_ip.clone(),
                minor: minor.clone(),
                grace: spec.grace,
            },
            spec.probes.clone(),
            alive,
            |pid, grace| stop(Proc::Adopted(pid), grace),
            |msg| eprintln!("I {} real-kubelet: {msg}", stamp()),
        )
    };
    // The runtime's side of every sandbox: checked on each pass, as containerd may be
    // reconfigured and restarted while the kubelet runs.
    let node = opts.clone();
    let endpoint = super::kubelet::cri_endpoint(config, flags);
    let client = crate::common::Ctx::load("kubelet").config.cri_client;
    let mut sandboxes = Cri::connect(client.as_deref(), &endpoint).map(|cri| Sandboxes {
        cri,
        by_pod: recorded_sandboxes(),
        node: node.name.clone(),
    });
    // The kubelet's runtime status check every 5 s (realnode.rs watch_runtime): the real
    // containerd's CRI answering (pretend: its Version call stands for Status, whose
    // RuntimeReady containerd always reports true), else the endpoint's socket accepting
    // a connection.
    let cri = sandboxes.as_ref().map(|s| s.cri.clone());
    let socket = endpoint
        .strip_prefix("unix://")
        .unwrap_or(&endpoint)
        .to_string();
    realnode::watch_runtime(move || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
            && cri.as_ref().is_none_or(|c| c.answers())
    });
    log(if sandboxes.is_some() {
        "static pods run in pod sandboxes of the real containerd"
    } else {
        "static pods run as host processes (the runtime is not the real containerd)"
    });
    let cri = sandboxes.as_ref().map(|s| s.cri.clone());
    realnode::run_in_background(opts, cri, |msg| {
        eprintln!("I {} real-kubelet: {msg}", stamp())
    });
    // Keyed by manifest file and container name.
    let mut running: BTreeMap<(String, String), Running> = BTreeMap::new();
    let mut refused: BTreeMap<String, String> = BTreeMap::new();
    // What an earlier kubelet left running, for the first pass to adopt or stop.
    let mut leftovers = Some(recorded_processes());
    let mut sandbox_said: Option<String> = None;
    let mut runtime_said: Option<String> = None;
    while !TERM.load(Ordering::SeqCst) {
        let mut wanted: BTreeMap<(String, String), Spec> = BTreeMap::new();
        // The file source's files, in its order; the first file of a pod name is the pod
        // (mirror::manifests). Each pod's manifest and UID, for its sandbox.
        let mut pods: BTreeMap<String, (Value, String)> = BTreeMap::new();
        for file in mirror::manifest_files(MANIFESTS) {
            let key = file.display().to_string();
            let Ok(text) = fs::read_to_string(&file) else {
                continue;
            };
            match specs(&text, &images) {
                Ok(list) if list.first().is_some_and(|s| pods.contains_key(&s.pod)) => {
                    let e = format!(
                        "\"Pod failed validation due to duplicate pod name, ignoring\" pod=\"kube-system/{}\"",
                        list[0].pod
                    );
                    if refused.get(&key) != Some(&e) {
                        eprintln!("I {} real-kubelet: {key}: {e}", stamp());
                        refused.insert(key, e);
                    }
                }
                Ok(list) => {
                    refused.remove(&key);
                    if let Some(s) = list.first() {
                        let pod = serde_yaml::from_str(&text).unwrap_or(Value::Null);
                        pods.insert(s.pod.clone(), (pod, mirror::manifest_hash(&text)));
                    }
                    for s in list {
                        wanted.insert((key.clone(), s.container.clone()), s);
                    }
                }
                Err(e) => {
                    if refused.get(&key) != Some(&e) {
                        eprintln!("E {} real-kubelet: {key}: {e}", stamp());
                        refused.insert(key, e);
                    }
                }
            }
        }
        // Stop what is gone or changed.
        let keys: Vec<_> = running.keys().cloned().collect();
        for k in keys {
            if wanted.get(&k) != running.get(&k).map(|r| &r.spec) {
                let r = running.remove(&k).expect("listed");
                eprintln!(
                    "I {} real-kubelet: stopping {}/{}",
                    stamp(),
                    r.spec.pod,
                    r.spec.container
                );
                if let Some(child) = r.child {
                    stop(child, r.spec.grace);
                }
                // The pod's last container stopped: its sandbox goes too.
                if let Some(sb) = &mut sandboxes {
                    if !running.values().any(|o| o.spec.pod == r.spec.pod) {
                        sb.remove(&r.spec.pod);
                    }
                }
            }
        }
        // At start, stop the processes an earlier kubelet left that no manifest wants as
        // they run (manifest removed or changed meanwhile), before starting their
        // successors: the kubelet kills running pods that are not desired
        // (pkg/kubelet/kubelet_pods.go HandlePodCleanups).
        if let Some(recorded) = leftovers.take() {
            let keep: Vec<i32> = wanted.values().filter_map(adoptable).collect();
            for (pod, pid) in recorded.into_iter().filter(|(_, p)| !keep.contains(p)) {
                eprintln!(
                    "I {} real-kubelet: stopping {pod} (pid {pid}): not wanted as it runs",
                    stamp()
                );
                stop(Proc::Adopted(pid), Duration::from_secs(30));
                let _ = fs::remove_file(Path::new(mirror::PIDS).join(format!("{pod}.pid")));
            }
        }
        // No sandbox, no container: a running one stays (containers outlive a containerd
        // restart), none starts while the runtime refuses sandboxes.
        let sandbox = node.sandbox_problem();
        if sandbox != sandbox_said {
            if let Some(problem) = &sandbox {
                eprintln!("E {} real-kubelet: {problem}", stamp());
            }
            sandbox_said = sandbox.clone();
        }
        let runtime_error = realnode::runtime_errors();
        if runtime_error != runtime_said {
            if let Some(e) = &runtime_error {
                eprintln!(
                    "E {} real-kubelet: \"Skipping pod synchronization\" err=\"{e}\"",
                    stamp()
                );
            }
            runtime_said = runtime_error.clone();
        }
        // Start what is new; restart what exited, after the back-off.
        for (k, spec) in wanted {
            let r = running.entry(k).or_insert_with(|| {
                let child = adoptable(&spec).map(|pid| {
                    eprintln!(
                        "I {} real-kubelet: found {}/{} running (pid {pid})",
                        stamp(),
                        spec.pod,
                        spec.container
                    );
                    // Started before this kubelet: its initial delays are over.
                    let long_ago = Instant::now()
                        .checked_sub(Duration::from_secs(3600))
                        .unwrap_or_else(Instant::now);
                    watch(&spec, pid, long_ago);
                    Proc::Adopted(pid)
                });
                Running {
                    spec,
                    child,
                    backoff: CrashBackoff::default(),
                    finished: None,
                    next_start: Instant::now(),
                    pulls: images::PullBackoff::default(),
                }
            });
            if let Some(child) = &mut r.child {
                if let Some((status, code)) = child.exited() {
                    let now = Instant::now();
                    r.finished = Some(now);
                    let wait = r
                        .backoff
                        .until(now, now)
                        .map_or(0, |t| t.saturating_duration_since(now).as_secs());
                    if let Some((manifest, uid)) = pods.get(&r.spec.pod) {
                        let full = format!(
                            "{}-{}_{}({uid})",
                            r.spec.pod,
                            node.name,
                            mirror::namespace(manifest)
                        );
                        let at = rfc3339(crate::common::now());
                        let c = r.spec.container.clone();
                        mirror::update_history(&r.spec.pod, uid, &c, |h| {
                            h["lastState"] = terminated(code, &h["startedAt"], &at);
                            h["waiting"] = match wait {
                                0 => Value::Null,
                                w => serde_json::json!({"reason": "CrashLoopBackOff",
                                    "message": format!("back-off {} restarting failed container={c} pod={full}", go_duration(w))}),
                            };
                        });
                    }
                    eprintln!(
                        "I {} real-kubelet: {}/{} exited ({status}); restarting in {}s",
                        stamp(),
                        r.spec.pod,
                        r.spec.container,
                        wait
                    );
                    r.child = None;
                }
            }
            let now = Instant::now();
            let backing_off = r
                .finished
                .is_some_and(|f| r.backoff.until(f, now).is_some());
            // kubelet.go syncLoop: "Skipping pod synchronization" while runtimeErrors.
            let runtime_up = runtime_error.is_none();
            if r.child.is_none()
                && sandbox.is_none()
                && now >= r.next_start
                && !backing_off
                && runtime_up
            {
                if let Some(finished) = r.finished {
                    r.backoff.next(finished, now);
                }
                let pause = match (&mut sandboxes, pods.get(&r.spec.pod)) {
                    (Some(sb), Some((manifest, uid))) => {
                        sb.ensure(&r.spec.pod, manifest, uid).map(Some)
                    }
                    _ => Ok(None),
                };
                // The image, once the sandbox exists (kuberuntime_container.go
                // startContainer: EnsureImageExists first).
                let pause = pause.and_then(|pause| match (&sandboxes, pods.get(&r.spec.pod)) {
                    (Some(sb), Some((_, uid))) => {
                        ensure_image(&sb.cri, r, uid, now).map(|()| pause)
                    }
                    _ => Ok(pause),
                });
                match pause.and_then(|pause| start(&r.spec, pause)) {
                    Ok(child) => {
                        eprintln!(
                            "I {} real-kubelet: started {}/{} (pid {})",
                            stamp(),
                            r.spec.pod,
                            r.spec.container,
                            child.id()
                        );
                        let _ = fs::create_dir_all(mirror::PIDS);
                        let _ = fs::write(
                            Path::new(mirror::PIDS).join(format!("{}.pid", r.spec.pod)),
                            child.id().to_string(),
                        );
                        watch(&r.spec, child.id() as i32, Instant::now());
                        r.child = Some(Proc::Child(child));
                        // The runtime's new container: one more restart when one ran
                        // before (its attempt number), started now, no longer waiting.
                        if let Some((_, uid)) = pods.get(&r.spec.pod) {
                            let at = rfc3339(crate::common::now());
                            mirror::update_history(&r.spec.pod, uid, &r.spec.container, |h| {
                                if h["startedAt"].is_string() {
                                    let n = h["restartCount"].as_u64().unwrap_or(0);
                                    h["restartCount"] = serde_json::json!(n + 1);
                                }
                                h["startedAt"] = serde_json::json!(at);
                                h["waiting"] = Value::Null;
                            });
                        }
                    }
                    Err(e) => {
                        eprintln!("E {} real-kubelet: {e}", stamp());
                        r.next_start = r.next_start.max(Instant::now() + BACKOFF_START);
                    }
                }
            }
        }
        // Sandboxes of pods that no manifest wants (e.g. left by an earlier kubelet).
        if let Some(sb) = &mut sandboxes {
            let gone: Vec<String> = sb
                .by_pod
                .keys()
                .filter(|pod| !running.values().any(|r| &&r.spec.pod == pod))
                .cloned()
                .collect();
            for pod in gone {
                sb.remove(&pod);
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    // The containers outlive the kubelet (the runtime keeps them); the next one adopts
    // them.
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images() -> BTreeMap<String, PathBuf> {
        [(
            "registry.k8s.io/kube-scheduler:v1.35.4".to_string(),
            PathBuf::from("/cache/kube-scheduler"),
        )]
        .into()
    }

    const SCHEDULER: &str = "apiVersion: v1
kind: Pod
metadata:
  name: kube-scheduler
  namespace: kube-system
spec:
  hostNetwork: true
  containers:
  - name: kube-scheduler
    image: registry.k8s.io/kube-scheduler:v1.35.4
    command:
    - kube-scheduler
    - --kubeconfig=/etc/kubernetes/scheduler.conf
    args: [--v=2]
    env: [{name: A, value: b}]
";

    /// The kubelet restarts a container that exits at once the first time, then after
    /// 10, 20, 40 ... up to 300 s from its exit, and starts over once an exit comes more
    /// than 10 minutes after the last restart. The stand-in waited 10 s the first time
    /// and never started over.
    #[test]
    fn the_crash_loop_back_off_is_the_kubelet_s() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut b = CrashBackoff::default();
        // Exits at once after each start; returns when it starts again.
        let exit_and_restart = |b: &mut CrashBackoff, finished: Instant| {
            let at = b.until(finished, finished).unwrap_or(finished);
            assert_eq!(b.until(finished, at), None, "in back-off until then only");
            b.next(finished, at);
            at
        };
        let mut t = t0;
        let mut waits = vec![];
        for _ in 0..8 {
            let at = exit_and_restart(&mut b, t);
            waits.push(at.duration_since(t).as_secs());
            t = at;
        }
        assert_eq!(waits, [0, 10, 20, 40, 80, 160, 300, 300]);
        // Ran 10 minutes and then some: at once again, and 10 s the time after.
        let later = t + s(601);
        assert_eq!(exit_and_restart(&mut b, later), later);
        assert_eq!(exit_and_restart(&mut b, later), later + s(10));
        // An exit within 10 minutes of the last restart keeps the back-off.
        let mut b = CrashBackoff::default();
        b.next(t0, t0);
        assert_eq!(b.until(t0 + s(600), t0 + s(600)), Some(t0 + s(610)));
    }

    /// The back-off message's duration is Go's, and an exit is the runtime's terminated
    /// state (an adopted process's exit, unseen, in the kubelet's words for a container
    /// it cannot find).
    #[test]
    fn a_container_s_end_is_reported_as_the_kubelet_does() {
        assert_eq!(go_duration(10), "10s");
        assert_eq!(go_duration(80), "1m20s");
        assert_eq!(go_duration(300), "5m0s");
        assert_eq!(
            terminated(Some(143), &serde_json::json!("a"), "b"),
            serde_json::json!({"terminated": {"exitCode": 143, "reason": "Error", "startedAt": "a", "finishedAt": "b"}})
        );
        assert_eq!(
            terminated(Some(0), &Value::Null, "b")["terminated"]["reason"],
            "Completed"
        );
        assert_eq!(
            terminated(None, &Value::Null, "b")["terminated"]["reason"],
            "ContainerStatusUnknown"
        );
    }

    #[test]
    fn a_manifest_becomes_the_image_binary_with_command_and_args() {
        let s = specs(SCHEDULER, &images()).unwrap();
        assert_eq!(
            s,
            vec![Spec {
                pod: "kube-scheduler".into(),
                container: "kube-scheduler".into(),
                argv: vec![
                    "/cache/kube-scheduler".into(),
                    "--kubeconfig=/etc/kubernetes/scheduler.conf".into(),
                    "--v=2".into()
                ],
                env: vec![("A".into(), "b".into())],
                grace: Duration::from_secs(30),
                probes: vec![],
                image: "registry.k8s.io/kube-scheduler:v1.35.4".into(),
                pull_policy: "IfNotPresent".into(),
            }]
        );
    }

    #[test]
    fn images_of_every_built_release_run_the_kubelet_s_own_first() {
        let base = std::env::temp_dir().join(format!("tb-images-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        for (release, lines) in [
            (
                "v1.34.2",
                "reg/kube-apiserver:v1.34.2 kube-apiserver\nreg/pause:3.10.1 kube-apiserver\n",
            ),
            (
                "v1.35.4",
                "reg/kube-apiserver:v1.35.4 kube-apiserver\nreg/pause:3.10.1 kubeadm\n",
            ),
        ] {
            fs::create_dir_all(base.join(release)).unwrap();
            fs::write(base.join(release).join("images.txt"), lines).unwrap();
        }
        // Not a release, and a release without images.txt (not built): ignored.
        fs::create_dir_all(base.join("v1.36.3")).unwrap();
        fs::write(base.join("v1.36.3.lock"), "").unwrap();
        let images = load_images(&base.join("v1.34.2")).unwrap();
        assert_eq!(
            images,
            BTreeMap::from([
                (
                    "reg/kube-apiserver:v1.34.2".to_string(),
                    base.join("v1.34.2/kube-apiserver")
                ),
                (
                    "reg/kube-apiserver:v1.35.4".to_string(),
                    base.join("v1.35.4/kube-apiserver")
                ),
                (
                    "reg/pause:3.10.1".to_string(),
                    base.join("v1.34.2/kube-apiserver")
                ),
            ])
        );
        // The kubelet's own release must be built.
        assert!(load_images(&base.join("v1.36.3")).is_err());
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn unknown_images_other_programs_and_pod_networks_are_refused() {
        let other = SCHEDULER.replace("kube-scheduler:v1.35.4", "kube-scheduler:v1.36.3");
        assert!(specs(&other, &images())
            .unwrap_err()
            .contains("Failed to pull image \"registry.k8s.io/kube-scheduler:v1.36.3\""));
        let wrong = SCHEDULER.replace("    - kube-scheduler\n", "    - sh\n");
        assert!(specs(&wrong, &images())
            .unwrap_err()
            .contains("is not the program of image"));
        let podnet = SCHEDULER.replace("hostNetwork: true", "hostNetwork: false");
        assert!(specs(&podnet, &images())
            .unwrap_err()
            .contains("hostNetwork"));
    }
}
