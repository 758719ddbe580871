//! `runc`: the OCI runtime commands the REAL containerd's shim (containerd-shim-runc-v2,
//! through github.com/containerd/go-runc) runs to create, start, signal and delete a
//! container, as far as the testbed can: the container's process runs as a process of
//! the host (the testbed's images are empty: there is no rootfs to run in), in a new PID
//! namespace when config.json asks for one, so that killing it ends every process of
//! that namespace as it ends a container's. STANDINS-os.md "runc".
//!
//! Calls seen from containerd 1.7.24's shim: `--root R --log L --log-format json
//! [--systemd-cgroup] create --bundle B --pid-file B/init.pid ID`, `start ID`,
//! `kill [--all] ID SIG`, `delete [--force] ID`, `state ID`.
//!
//! - `create` reads B/config.json, forks the init (`setsid`; with a `pid` namespace
//!   without a path: `unshare --pid --fork --kill-child`, so the namespace's PID 1 dies
//!   with it), which waits on R/ID/exec.fifo as runc's init does, writes its pid to
//!   --pid-file and exits (the shim, a child subreaper, adopts the init). The process is
//!   `process.args` with `process.env` and `process.cwd`; `/pause` (the sandbox image's
//!   entrypoint, which no host has) is a process that waits until it is killed, as pause
//!   does.
//! - `start` releases the init (opens the fifo), `state` prints the OCI state
//!   (`created`, `running`, `stopped`), `kill` signals the init (number or name),
//!   `delete` forgets a stopped container (`--force` kills a running one first; without
//!   it runc refuses: `cannot delete container ID that is not stopped: running`).
//! - Not modelled: cgroups (the shim only warns), terminals (`--console-socket`),
//!   `exec`, `ps`, `update`, `pause`, `resume`, `events`, checkpoints.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

/// runc's default state root (`--root`).
const DEFAULT_ROOT: &str = "/run/runc";

/// Runs one runc command (after the global flags); None when `args` asks for something
/// this stand-in does not model.
pub fn run(args: &[String]) -> Option<i32> {
    let mut root = PathBuf::from(DEFAULT_ROOT);
    let mut i = 0;
    while i < args.len() && args[i].starts_with('-') {
        match args[i].as_str() {
            "--root" | "--log" | "--log-format" | "--criu" => {
                if args[i] == "--root" {
                    root = PathBuf::from(args.get(i + 1)?);
                }
                i += 2;
            }
            _ => i += 1,
        }
    }
    let (command, rest) = (args.get(i)?.as_str(), &args[i + 1..]);
    let result = match command {
        "create" => create(&root, rest),
        "start" => start(&root, rest),
        "state" => state(&root, rest),
        "kill" => kill(&root, rest),
        "delete" => delete(&root, rest),
        _ => return None,
    };
    Some(match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{}", json!({"level": "error", "msg": e}));
            1
        }
    })
}

/// The container id: the last argument that is not a flag.
fn container_id(args: &[String]) -> Result<&str, String> {
    args.iter()
        .rev()
        .find(|a| !a.starts_with('-'))
        .map(|s| s.as_str())
        .ok_or_else(|| "container id cannot be empty".to_string())
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|s| s.as_str())
}

fn dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

fn load(root: &Path, id: &str) -> Result<Value, String> {
    let text = fs::read_to_string(dir(root, id).join("state.json"))
        .map_err(|_| format!("container does not exist: {id}"))?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

fn save(root: &Path, id: &str, state: &Value) -> Result<(), String> {
    fs::write(dir(root, id).join("state.json"), state.to_string()).map_err(|e| e.to_string())
}

fn alive(pid: i64) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    matches!(state, Some(c) if c != 'Z' && c != 'X')
}

/// Single-quoted for sh.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The shell line the init runs: wait for `start`, then the container's process.
pub fn init_script(fifo: &Path, process: &[String], cwd: &str) -> String {
    let program = if process.first().map(|s| s.as_str()) == Some("/pause") {
        // pause: wait until killed.
        "exec sleep infinity".to_string()
    } else {
        let argv: Vec<String> = process.iter().map(|a| quote(a)).collect();
        format!("exec {}", argv.join(" "))
    };
    format!(
        "cat {} >/dev/null || exit 1; cd {} || exit 1; {program}",
        quote(&fifo.display().to_string()),
        quote(cwd)
    )
}

fn create(root: &Path, args: &[String]) -> Result<(), String> {
    if flag(args, "--console-socket").is_some() {
        return Err("terminals (--console-socket) are not modelled in the testbed".into());
    }
    let id = container_id(args)?;
    let bundle = PathBuf::from(flag(args, "--bundle").or(flag(args, "-b")).unwrap_or("."));
    let config: Value = serde_json::from_str(
        &fs::read_to_string(bundle.join("config.json"))
            .map_err(|e| format!("{}/config.json: {e}", bundle.display()))?,
    )
    .map_err(|e| format!("config.json: {e}"))?;
    let d = dir(root, id);
    if d.join("state.json").exists() {
        return Err(format!("container with id exists: {id}"));
    }
    fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    let fifo = d.join("exec.fifo");
    let c = std::ffi::CString::new(fifo.display().to_string()).map_err(|e| e.to_string())?;
    if unsafe { libc::mkfifo(c.as_ptr(), 0o622) } != 0 {
        return Err(format!(
            "{}: {}",
            fifo.display(),
            std::io::Error::last_os_error()
        ));
    }
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(String::from))
            .collect()
    };
    let process = strings(&config["process"]["args"]);
    if process.is_empty() {
        return Err("args must not be empty".into());
    }
    let cwd = config["process"]["cwd"].as_str().unwrap_or("/");
    let new_pid_ns = config["linux"]["namespaces"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|n| n["type"] == "pid" && n["path"].as_str().is_none_or(|p| p.is_empty()));
    let script = init_script(&fifo, &process, cwd);
    let mut cmd = if new_pid_ns {
        let mut c = Command::new("unshare");
        c.args(["--pid", "--fork", "--kill-child", "sh", "-c", &script]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", &script]);
        c
    };
    cmd.env_clear();
    for e in strings(&config["process"]["env"]) {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    if !strings(&config["process"]["env"])
        .iter()
        .any(|e| e.starts_with("PATH="))
    {
        cmd.env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        );
    }
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| format!("unshare: {e}"))?;
    let pid = child.id();
    // The init is not waited for: once this process exits, the shim (a child subreaper)
    // adopts and reaps it.
    std::mem::forget(child);
    if let Some(file) = flag(args, "--pid-file") {
        fs::write(file, pid.to_string()).map_err(|e| format!("{file}: {e}"))?;
    }
    let created = testbed::time::rfc3339(crate::common::now());
    save(
        root,
        id,
        &json!({"ociVersion": "1.0.2", "id": id, "pid": pid, "status": "created",
                "bundle": bundle.display().to_string(), "rootfs": config["root"]["path"],
                "created": created, "owner": ""}),
    )
}

fn start(root: &Path, args: &[String]) -> Result<(), String> {
    let id = container_id(args)?;
    let mut state = load(root, id)?;
    if state["status"] != "created" {
        return Err(format!("cannot start a container that has stopped: {id}"));
    }
    // Opening the fifo for writing releases the init's `cat`.
    fs::write(dir(root, id).join("exec.fifo"), b"0").map_err(|e| e.to_string())?;
    state["status"] = json!("running");
    save(root, id, &state)
}

fn status(state: &Value) -> String {
    let pid = state["pid"].as_i64().unwrap_or(0);
    if pid > 0 && alive(pid) {
        state["status"].as_str().unwrap_or("running").to_string()
    } else {
        "stopped".to_string()
    }
}

fn state(root: &Path, args: &[String]) -> Result<(), String> {
    let id = container_id(args)?;
    let mut state = load(root, id)?;
    state["status"] = json!(status(&state));
    println!(
        "{}",
        serde_json::to_string_pretty(&state).unwrap_or_default()
    );
    Ok(())
}

/// A signal given as a number, `KILL` or `SIGKILL`.
pub fn signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse() {
        return Some(n);
    }
    let name = s.trim_start_matches("SIG");
    Some(match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        _ => return None,
    })
}

fn kill(root: &Path, args: &[String]) -> Result<(), String> {
    let positional: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let id = positional
        .first()
        .ok_or("container id cannot be empty")?
        .as_str();
    let sig = positional.get(1).map(|s| s.as_str()).unwrap_or("SIGTERM");
    let sig = signal(sig).ok_or_else(|| format!("unknown signal {sig:?}"))?;
    let state = load(root, id)?;
    let pid = state["pid"].as_i64().unwrap_or(0);
    if status(&state) == "stopped" {
        return Err("container not running".into());
    }
    unsafe {
        libc::kill(pid as i32, sig);
    }
    Ok(())
}

fn delete(root: &Path, args: &[String]) -> Result<(), String> {
    let id = container_id(args)?;
    let force = args.iter().any(|a| a == "--force" || a == "-f");
    let state = match load(root, id) {
        Ok(s) => s,
        // runc delete --force of a container that is gone succeeds.
        Err(_) if force => return Ok(()),
        Err(e) => return Err(e),
    };
    let now = status(&state);
    if now != "stopped" {
        if !force {
            return Err(format!(
                "cannot delete container {id} that is not stopped: {now}"
            ));
        }
        let pid = state["pid"].as_i64().unwrap_or(0) as i32;
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    fs::remove_dir_all(dir(root, id)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_waits_for_start_then_runs_the_process_or_pauses() {
        let fifo = Path::new("/run/runc/x/exec.fifo");
        assert_eq!(
            init_script(fifo, &["/pause".into()], "/"),
            "cat '/run/runc/x/exec.fifo' >/dev/null || exit 1; cd '/' || exit 1; exec sleep infinity"
        );
        assert_eq!(
            init_script(fifo, &["/bin/echo".into(), "it's".into()], "/tmp"),
            "cat '/run/runc/x/exec.fifo' >/dev/null || exit 1; cd '/tmp' || exit 1; exec '/bin/echo' 'it'\\''s'"
        );
        assert_eq!(signal("9"), Some(9));
        assert_eq!(signal("SIGKILL"), Some(libc::SIGKILL));
        assert_eq!(signal("TERM"), Some(libc::SIGTERM));
        assert_eq!(signal("BOGUS"), None);
    }

    #[test]
    fn create_start_state_kill_delete_on_the_host() {
        let root = std::env::temp_dir().join(format!("runc-test-{}", std::process::id()));
        let bundle = root.join("bundle");
        fs::create_dir_all(&bundle).unwrap();
        fs::write(
            bundle.join("config.json"),
            json!({"process": {"args": ["/pause"], "cwd": "/", "env": []},
                   "root": {"path": "rootfs"}, "linux": {"namespaces": [{"type": "mount"}]}})
            .to_string(),
        )
        .unwrap();
        let s = |v: &[&str]| -> Vec<String> { v.iter().map(|x| x.to_string()).collect() };
        let r = root.join("state");
        let r = r.to_str().unwrap();
        let pid_file = bundle.join("init.pid");
        let b = bundle.to_str().unwrap();
        let p = pid_file.to_str().unwrap();
        assert_eq!(
            run(&s(&[
                "--root",
                r,
                "create",
                "--bundle",
                b,
                "--pid-file",
                p,
                "c1"
            ])),
            Some(0)
        );
        let pid: i64 = fs::read_to_string(&pid_file).unwrap().parse().unwrap();
        assert!(alive(pid));
        assert_eq!(status(&load(Path::new(r), "c1").unwrap()), "created");
        assert_eq!(run(&s(&["--root", r, "start", "c1"])), Some(0));
        assert_eq!(status(&load(Path::new(r), "c1").unwrap()), "running");
        assert_eq!(run(&s(&["--root", r, "delete", "c1"])), Some(1));
        assert_eq!(run(&s(&["--root", r, "kill", "c1", "9"])), Some(0));
        // Reap it (this test is its parent; in a host, the shim is).
        unsafe {
            libc::waitpid(pid as i32, std::ptr::null_mut(), 0);
        }
        assert_eq!(status(&load(Path::new(r), "c1").unwrap()), "stopped");
        assert_eq!(run(&s(&["--root", r, "delete", "c1"])), Some(0));
        assert!(!Path::new(r).join("c1").exists());
        assert_eq!(run(&s(&["--root", r, "delete", "--force", "c1"])), Some(0));
        assert_eq!(run(&s(&["--root", r, "ps", "c1"])), None);
        let _ = fs::remove_dir_all(&root);
    }
}
