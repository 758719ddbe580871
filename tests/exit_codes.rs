//! End-to-end: every exit status of docs/output.md's table except 0 and 2 (which every
//! other test produces), each with the `--output json` document's error fields, on the
//! testbed (the invalid inventory needs none) on the REAL control plane (issue 9: real
//! kubeadm init/join, kube-apiserver, kubectl; tests/up_real.rs): the step that fails, the
//! wait that runs out and the phases interrupted are the real programs'.
//!
//! Needs root and the built release (the first run builds it), like tests/up_real.rs.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::snapshot::{assert_unchanged, Snapshot};
use support::*;
use testbed::Testbed;

/// `up --output json` on `inv`, its run logs in the testbed's directory.
fn up_json(tb: &Testbed, inv: &Path, timeout: &str) -> Ran {
    run_on(
        tb,
        &["up", "--output", "json", "--timeout", timeout],
        inv,
        &[],
    )
}

/// The host entry named `name` in a run document.
fn host<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == name)
        .unwrap_or_else(|| panic!("no host {name} in {doc:#}"))
}

/// The exit status, the document's envelope and outcome agree.
fn assert_outcome(ran: &Ran, code: i32, outcome: &str) -> Value {
    assert_eq!(ran.code, Some(code), "stderr:\n{}", ran.stderr);
    let doc = ran.document();
    assert_eq!(doc["exit_code"], code, "{doc:#}");
    assert_eq!(doc["outcome"], outcome, "{doc:#}");
    assert_eq!(doc["error"]["kind"], outcome, "{doc:#}");
    doc
}

#[test]
fn an_invalid_inventory_exits_3_for_up_and_reset() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.yaml");
    std::fs::write(
        &inv,
        "cluster:\n  name: x\n  kubernetesVersion: 1.34.2\nhosts:\n  - name: a\n    address: 10.200.9.1\n    role: boss\n",
    )
    .unwrap();
    let runs = dir.path().join("runs");
    let (inv, runs) = (inv.to_str().unwrap(), runs.to_str().unwrap());
    for args in [
        vec!["up", inv, "--output", "json", "--log-dir", runs],
        vec!["reset", inv, "--yes", "--output", "json", "--log-dir", runs],
    ] {
        let ran = run_bootstrap(&args, &[]);
        let doc = assert_outcome(&ran, 3, "invalid-inventory");
        assert_eq!(doc["command"], args[0]);
        assert!(doc["error"]["host"].is_null() && doc["error"]["step"].is_null());
        let message = doc["error"]["message"].as_str().unwrap();
        assert!(message.contains("inventory.yaml:7:"), "{message}");
        assert!(message.contains("role"), "{message}");
        assert!(doc["cluster"].is_null() && doc["hosts"] == serde_json::json!([]));
        // The text is still on stderr, with the file position.
        assert!(ran.stderr.contains("role"), "{}", ran.stderr);
    }
    assert!(!Path::new(runs).exists(), "nothing ran, so no run log");
}

#[test]
fn an_unreachable_host_exits_4_naming_it() {
    let tb = real_testbed(2);
    let inv = real_inventory(&tb, &plain_decls(1));
    tb.stop("node2").unwrap();
    let fresh = Snapshot::of(&tb, "node1");
    let ran = up_json(&tb, &inv, "5m");
    let doc = assert_outcome(&ran, 4, "unreachable");
    assert_eq!(doc["error"]["host"], "node2");
    assert_eq!(doc["error"]["step"], "connect");
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(message.contains("cannot connect"), "{message}");
    assert_eq!(host(&doc, "node2")["result"], "failed");
    assert_eq!(host(&doc, "node2")["error"]["kind"], "unreachable");
    assert_eq!(host(&doc, "node1")["result"], "skipped");
    assert_eq!(doc["nodes"], serde_json::json!([]));
    assert!(doc["kubeconfig"].is_null());
    assert_read_only_commands_exit(&tb, &inv, 4, "node2");
    assert_unchanged(&tb, "node1", &fresh, "a refused up");
}

/// `plan`, `up --dry-run` and `status` stop where `up` would and exit with `up`'s code
/// (docs/output.md), naming the host on stderr.
fn assert_read_only_commands_exit(tb: &Testbed, inv: &Path, code: i32, host: &str) {
    for args in [&["plan"][..], &["up", "--dry-run"], &["status"]] {
        let ran = run_on(tb, args, inv, &[]);
        assert_eq!(ran.code, Some(code), "{args:?}: {}", ran.stderr);
        assert!(ran.stderr.contains(host), "{args:?}: {}", ran.stderr);
    }
}

#[test]
fn a_refused_host_exits_5_naming_it() {
    let tb = real_builder(2)
        .host_os("node2", testbed::Os::Debian12)
        .build()
        .expect("testbed (run as root)");
    let inv = real_inventory(&tb, &plain_decls(1));
    let fresh = Snapshot::of(&tb, "node1");
    let ran = up_json(&tb, &inv, "5m");
    let doc = assert_outcome(&ran, 5, "refused");
    assert_eq!(doc["error"]["host"], "node2");
    assert_eq!(doc["error"]["step"], "facts");
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(message.contains("Debian"), "{message}");
    assert!(message.contains("Ubuntu 22.04 and 24.04"), "{message}");
    // Facts were gathered (one read-only command per host), then nothing else.
    let steps = host(&doc, "node2")["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{steps:#?}");
    assert_eq!(steps[0]["step"], "gather facts");
    assert_eq!(host(&doc, "node1")["result"], "skipped");
    assert_read_only_commands_exit(&tb, &inv, 5, "node2");
    assert_unchanged(&tb, "node1", &fresh, "a refused up");
}

/// One two-host cluster, built once and taken through three exit statuses in turn. Each
/// was a test with a cluster of its own, and CI's time is mostly spent building clusters:
/// the failed join needs fresh hosts and so goes first; once its port is free, the next
/// `up` recovers and converges the cluster (the wait test's first `up`); the wait test
/// puts node2's CNI configuration back once it has run out, so every node is Ready
/// again for the interrupted reset, which goes last because it tears the worker down.
/// Each is named on stderr (`check!`) so a failure says which one it was.
#[test]
fn a_two_host_cluster_fails_a_join_times_out_and_is_interrupted() {
    let tb = real_testbed(2);
    let inv = real_inventory(&tb, &plain_decls(1));
    check!(a_failed_step_exits_6_naming_the_host_and_step(&tb, &inv));
    check!(a_wait_that_runs_out_of_timeout_exits_7(&tb, &inv));
    check!(sigint_stops_reset_between_workers_and_control_planes(
        &tb, &inv
    ));
}

/// On fresh hosts: a stray service on node2's kubelet port makes the real `kubeadm
/// join` fail, exit 6 naming the host and the step, the control plane initialized. The
/// port is free again afterwards.
fn a_failed_step_exits_6_naming_the_host_and_step(tb: &Testbed, inv: &Path) {
    // A stray service listens on node2's kubelet port: the real kubeadm join's preflight
    // (PortOpenCheck) refuses the host.
    let port_taken = testbed::Fault::PortInUse { port: 10250 };
    tb.fault("node2", port_taken.clone()).unwrap();
    let ran = up_json(tb, inv, "10m");
    let doc = assert_outcome(&ran, 6, "step-failed");
    assert_eq!(doc["error"]["host"], "node2");
    let step = doc["error"]["step"].as_str().unwrap();
    assert!(step.starts_with("kubeadm-join"), "{step}");
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("[ERROR Port-10250]: Port 10250 is in use"),
        "{message}"
    );
    assert!(message.starts_with("exit status "), "{message}");
    let node2 = host(&doc, "node2");
    assert_eq!(node2["result"], "failed");
    assert_eq!(node2["error"]["step"], step);
    // The failed command is the host's last step, with its exit status.
    let last = node2["steps"].as_array().unwrap().last().unwrap();
    assert_eq!(last["step"], step);
    assert_eq!(last["result"], "failed");
    assert!(last["exit_status"].as_u64().unwrap() > 0);
    // The control plane was initialized (changed; its later phases, cni, labels and
    // ready, did not run): its node is in the document, and a kubeconfig can be had.
    assert_eq!(host(&doc, "node1")["result"], "changed");
    assert!(host(&doc, "node1")["steps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["step"].as_str().unwrap().starts_with("kubeadm-init")));
    let names: Vec<&str> = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["node1"]);
    assert!(doc["kubeconfig"].is_string());
    tb.clear_fault("node2", &port_taken.file_name()).unwrap();
}

/// `up` converges the cluster (after the failed join, a re-run); then node2 loses its
/// CNI configuration and goes NotReady, and an `up` with a 1 s timeout exits 7 from the
/// wait on the control plane, naming node2. The configuration is put back afterwards and
/// node2 is Ready again.
fn a_wait_that_runs_out_of_timeout_exits_7(tb: &Testbed, inv: &Path) {
    let first = up_json(tb, inv, "10m");
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let doc = first.document();
    assert_eq!(doc["outcome"], "success");
    assert!(doc["error"].is_null());
    assert!(doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["ready"] == true));

    // node2 loses its CNI configuration: its runtime's network is not ready, so the
    // node goes NotReady and stays so (calico's install-cni only runs at pod start).
    let conflist = "/etc/cni/net.d/10-calico.conflist";
    let saved = tb.read_file("node2", conflist).unwrap();
    exec(tb, "node2", &["rm", "-f", conflist]);
    eventually(
        "node2 NotReady without its CNI configuration",
        Duration::from_secs(60),
        || node2_ready(tb),
        |ready| ready != "True",
    );

    let ran = up_json(tb, inv, "1s");
    let doc = assert_outcome(&ran, 7, "timeout");
    assert_eq!(
        doc["error"]["host"], "node1",
        "the wait runs on the control plane"
    );
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(message.contains("node2"), "{message}");
    assert!(
        message.contains("timed out waiting for the condition")
            || message.contains("--timeout ran out"),
        "{message}"
    );
    let node2 = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "node2")
        .unwrap();
    assert_eq!(node2["ready"], false);

    // The configuration back as install-cni wrote it: the runtime loads it again and the
    // kubelet reports node2 Ready at its next status update.
    let put_back = tb
        .exec_with_input(
            "node2",
            &["sh", "-c", &format!("cat > {conflist}")],
            Some(&saved),
        )
        .unwrap();
    assert!(put_back.status.success(), "{put_back:?}");
    eventually(
        "node2 Ready with its CNI configuration back",
        Duration::from_secs(120),
        || node2_ready(tb),
        |ready| ready == "True",
    );
}

/// node2's Ready condition status as the real API server has it (asked on node1).
fn node2_ready(tb: &Testbed) -> String {
    let mut argv = KUBECTL.to_vec();
    argv.extend([
        "get",
        "node",
        "node2",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
    ]);
    exec(tb, "node1", &argv).trim().to_string()
}

/// Reads `child`'s stderr until a line contains `marker` (keeping everything read).
fn wait_for_line(stderr: &mut BufReader<std::process::ChildStderr>, marker: &str) -> String {
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = stderr.read_line(&mut line).unwrap();
        assert!(n > 0, "bootstrap ended before `{marker}`:\n{seen}");
        seen += &line;
        if line.contains(marker) {
            return seen;
        }
    }
}

/// Sends `signal` (a `kill` name) to `pid`.
fn kill(signal: &str, pid: u32) {
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// Runs `bootstrap ARGS --output json`, sends it SIGINT once a stderr line contains
/// `marker`, and with `then_term` SIGTERM once it said it lets the running commands
/// finish. What it printed and its exit status.
fn interrupted(args: &[&str], marker: &str, then_term: bool) -> Ran {
    let mut child = bootstrap_command(args, &[])
        .args(["--output", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bootstrap");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut text = wait_for_line(&mut stderr, marker);
    kill("INT", child.id());
    if then_term {
        text += &wait_for_line(&mut stderr, "send it again to abandon");
        kill("TERM", child.id());
    }
    stderr.read_to_string(&mut text).unwrap();
    let mut stdout = String::new();
    let mut out = child.stdout.take().unwrap();
    out.read_to_string(&mut stdout).unwrap();
    let status = child.wait().unwrap();
    eprintln!("--- interrupted {args:?} exited {status:?}; stderr:\n{text}");
    Ran {
        code: status.code(),
        stdout,
        stderr: text,
    }
}

/// Makes every run of `command` on `hosts` take `seconds` longer.
fn slow(tb: &Testbed, hosts: &[&str], command: &str, seconds: f64) {
    for h in hosts {
        let fault = testbed::Fault::Slow {
            command: command.into(),
            seconds,
        };
        tb.fault(h, fault).unwrap();
    }
}

/// `up` on two hosts, interrupted once the join phase has started node2's step: the real
/// `kubeadm join` against node1's real API server, which takes seconds (discovery, the
/// kubelet's TLS bootstrap), so the signal arrives while it runs.
fn interrupted_up(then_term: bool) -> (Testbed, Ran) {
    let tb = real_testbed(2);
    let inv = real_inventory(&tb, &plain_decls(1));
    let runs: PathBuf = tb.dir().join("runs");
    let args = [
        "up",
        inv.to_str().unwrap(),
        "--log-dir",
        runs.to_str().unwrap(),
    ];
    let ran = interrupted(&args, "[join] node2: ", then_term);
    (tb, ran)
}

/// The steps of `host` in the document that ended `ok`.
fn ok_steps(doc: &Value, host_name: &str) -> Vec<String> {
    host(doc, host_name)["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["result"] == "ok")
        .map(|s| s["step"].as_str().unwrap().to_string())
        .collect()
}

/// The first SIGINT lets the running phase's commands finish and starts nothing else;
/// the summary is printed (every host changed in the phases that ran, with work left:
/// `changed`, and the outcome says the run was interrupted), exit 130.
#[test]
fn sigint_lets_the_running_phase_finish_then_exits_130() {
    let (tb, ran) = interrupted_up(false);
    let doc = assert_outcome(&ran, 130, "interrupted");
    assert!(doc["error"]["host"].is_null());
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(message.contains("SIGINT"), "{message}");
    assert!(message.contains("running finished"), "{message}");
    assert!(ran.stderr.contains("HOST"), "no summary:\n{}", ran.stderr);
    assert!(!ran.stderr.contains("[cni] start"), "{}", ran.stderr);
    for h in ["node1", "node2"] {
        assert_eq!(host(&doc, h)["result"], "changed");
    }
    // The join phase ran to its end: node2's kubeadm join succeeded, its kubelet holds
    // the credentials of its TLS bootstrap, and the real API server has its Node.
    let done = ok_steps(&doc, "node2");
    assert!(
        done.iter().any(|s| s.starts_with("kubeadm-join")),
        "node2: {done:#?}"
    );
    exec(
        &tb,
        "node2",
        &["test", "-s", "/etc/kubernetes/kubelet.conf"],
    );
    assert_node_registers(&tb, "node2");
}

/// Waits up to 60 s for the real API server (asked on node1) to have the Node `name`:
/// the kubelet registers it a moment after `kubeadm join` returned.
fn assert_node_registers(tb: &Testbed, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut argv = KUBECTL.to_vec();
    argv.extend(["get", "node", name, "-o", "name"]);
    loop {
        let out = tb.exec("node1", &argv).unwrap();
        if out.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no Node {name} after 60 s: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A second signal (GitHub's SIGTERM after SIGINT) abandons the running commands.
#[test]
fn a_second_signal_abandons_the_running_commands() {
    let (_tb, ran) = interrupted_up(true);
    let doc = assert_outcome(&ran, 130, "interrupted");
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(message.contains("were abandoned"), "{message}");
    assert!(!ran.stderr.contains("[cni] start"), "{}", ran.stderr);
    for h in ["node1", "node2"] {
        // The earlier phases changed it before the interrupt.
        assert_eq!(host(&doc, h)["result"], "changed");
    }
    // node2's kubeadm join was abandoned, not waited for.
    let done = ok_steps(&doc, "node2");
    assert!(
        !done.iter().any(|s| s.starts_with("kubeadm-join")),
        "node2: {done:#?}"
    );
}

/// On a converged cluster, every node Ready: `reset` interrupted while it resets the
/// worker: the worker's reset finishes, the control plane's does not start; exit 130 and
/// the document says so.
fn sigint_stops_reset_between_workers_and_control_planes(tb: &Testbed, inv: &Path) {
    slow(tb, &["node2"], "kubeadm", 2.0);
    let runs: PathBuf = tb.dir().join("runs");
    let args = [
        "reset",
        inv.to_str().unwrap(),
        "--yes",
        "--log-dir",
        runs.to_str().unwrap(),
    ];
    let ran = interrupted(&args, "[reset-workers] node2: ", false);
    let doc = assert_outcome(&ran, 130, "interrupted");
    assert_eq!(doc["schema"], "bootstrap/reset/v1");
    assert!(
        !ran.stderr.contains("[reset-control-planes] start"),
        "{}",
        ran.stderr
    );
    let joined = |h: &str| {
        tb.exec(h, &["test", "-e", "/etc/kubernetes/kubelet.conf"])
            .unwrap()
            .status
            .success()
    };
    assert!(!joined("node2"), "node2's reset was let finish");
    assert!(joined("node1"), "node1's reset was not started");
    assert_eq!(host(&doc, "node1")["result"], "skipped");
    assert_eq!(host(&doc, "node2")["result"], "changed");
}
