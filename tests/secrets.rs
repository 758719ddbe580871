//! End-to-end: secrets stay off command lines (issue 12, item 1). The join token reaches
//! the joining host only on `kubeadm join`'s stdin (a JoinConfiguration in a root-only
//! file in /run, removed after), so no process's argv on that host, and no command line
//! in its audit log, holds it; and the run deletes its token once the join is over.
//! And what gets root or admin is fetched over https only (item 2).
//!
//! On the REAL control plane (issue 9): the kubeadm and kubectl packages carry the built
//! binaries, which the hosts' audit log records like the package tools. Needs root and
//! the built release (the first run builds it).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::{exec, plain_decls, run_on};
use testbed::{Fault, Testbed};

/// Every substring of `text` shaped like a bootstrap token, `[a-z0-9]{6}.[a-z0-9]{16}`,
/// not part of a longer such run.
fn tokens_in(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let word = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut found = Vec::new();
    for (dot, _) in text.match_indices('.') {
        let (Some(start), end) = (dot.checked_sub(6), dot + 17) else {
            continue;
        };
        if end > b.len()
            || !b[start..dot].iter().all(|&c| word(c))
            || !b[dot + 1..end].iter().all(|&c| word(c))
            || (start > 0 && word(b[start - 1]))
            || (end < b.len() && word(b[end]))
        {
            continue;
        }
        found.push(text[start..end].to_string());
    }
    found
}

/// The command line of every process on `host`, one per line.
fn command_lines(tb: &Testbed, host: &str) -> Vec<String> {
    let script = r#"for f in /proc/[0-9]*/cmdline; do tr '\0' ' ' < "$f" 2>/dev/null; echo; done"#;
    match tb.exec(host, &["sh", "-c", script]) {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn the_join_token_is_on_no_command_line_and_deleted_after_the_join() {
    // A non-root login: kubeadm runs under sudo, whose argv (and log line) is the command.
    let tb = support::real_testbed_as(2, "ubuntu");
    let inv = support::real_inventory(&tb, &plain_decls(1));
    // The join takes 4 s longer: long enough to be seen in the process table.
    let slow = Fault::Slow {
        command: "kubeadm".into(),
        seconds: 4.0,
    };
    tb.fault("node2", slow).unwrap();

    let done = AtomicBool::new(false);
    let (ran, seen) = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let mut seen = Vec::new();
            while !done.load(Ordering::SeqCst) {
                seen.extend(command_lines(&tb, "node2"));
                std::thread::sleep(Duration::from_millis(100));
            }
            seen
        });
        let ran = run_on(&tb, &["up", "--timeout", "10m"], &inv, &[]);
        done.store(true, Ordering::SeqCst);
        (ran, watcher.join().unwrap())
    });
    assert!(ran.ok(), "up failed:\n{}", ran.stderr);

    // The watcher saw the join (so the test could fail), and no token anywhere.
    let joins: Vec<&String> = seen.iter().filter(|l| l.contains("kubeadm join")).collect();
    assert!(!joins.is_empty(), "no kubeadm join seen on node2");
    for line in &seen {
        assert!(
            tokens_in(line).is_empty() && !line.contains("--token"),
            "a token on a command line: {line}"
        );
    }
    let audit = tb.audit("node2").unwrap();
    for r in &audit {
        let line = r.argv.join(" ");
        assert!(
            tokens_in(&line).is_empty() && !line.contains("--token"),
            "a token in the audit log: {line}"
        );
    }
    assert!(audit
        .iter()
        .any(|r| r.kind == "cmd" && r.argv.starts_with(&["kubeadm".into(), "join".into()])));
    // The configuration file is gone.
    let left = exec(
        &tb,
        "node2",
        &["sh", "-c", "ls /run | grep bootstrap-kubeadm-join || true"],
    );
    assert_eq!(left.trim(), "", "left in /run");

    // The control plane deleted the run's token: `kubeadm token delete ID` (the ID only).
    let cp_audit = tb.audit("node1").unwrap();
    let deleted: Vec<&Vec<String>> = cp_audit
        .iter()
        .filter(|r| {
            r.kind == "cmd"
                && r.argv
                    .starts_with(&["kubeadm".into(), "token".into(), "delete".into()])
        })
        .map(|r| &r.argv)
        .collect();
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    let id = &deleted[0][3];
    assert_eq!(id.len(), 6, "{id}");
    let listed = exec(&tb, "node1", &["kubeadm", "token", "list"]);
    assert!(
        !listed.contains(id.as_str()),
        "token {id} still listed:\n{listed}"
    );
    for r in &cp_audit {
        let line = r.argv.join(" ");
        assert!(
            tokens_in(&line).is_empty(),
            "a token on node1's command line: {line}"
        );
    }
}

#[test]
fn every_download_is_https_only_and_calico_is_applied_from_stdin() {
    let tb = support::real_testbed(1);
    let inv = support::real_inventory(&tb, &plain_decls(0));
    let ran = run_on(&tb, &["up", "--timeout", "10m"], &inv, &[]);
    assert!(ran.ok(), "up failed:\n{}", ran.stderr);
    let audit = tb.audit("node1").unwrap();
    let curls: Vec<&Vec<String>> = audit
        .iter()
        .filter(|r| r.kind == "cmd" && r.argv.first().is_some_and(|a| a == "curl"))
        .map(|r| &r.argv)
        .collect();
    // The repository's signing key and the Calico manifest.
    assert!(curls.len() >= 2, "{curls:?}");
    for argv in &curls {
        let line = argv.join(" ");
        assert!(
            line.contains("--proto =https --proto-redir =https"),
            "curl may leave https: {line}"
        );
    }
    for r in audit.iter().filter(|r| r.kind == "cmd") {
        let line = r.argv.join(" ");
        assert!(
            !(line.starts_with("kubectl") && line.contains("-f https://")),
            "kubectl fetched a URL itself: {line}"
        );
    }
    let mut get_calico = support::KUBECTL.to_vec();
    get_calico.extend(["-n", "kube-system", "get", "ds", "calico-node"]);
    let pods = exec(&tb, "node1", &get_calico);
    assert!(pods.contains("calico-node"), "{pods}");
}

#[test]
fn token_shapes_are_found() {
    assert_eq!(
        tokens_in("kubeadm join x --token abcdef.0123456789abcdef --x"),
        ["abcdef.0123456789abcdef"]
    );
    assert!(tokens_in("kubernetes.default.svc.cluster.local").is_empty());
    assert!(tokens_in("--config /run/bootstrap-kubeadm-join.AbC123").is_empty());
}
