//! The inventory reader on hostile or careless input (issue 12, item 4): it refuses what
//! is not an inventory file, never panics, renders a bounded number of problems, escapes
//! what could fool a terminal, and locates bytes that are not text. No root, no network:
//! every case stops at the inventory (exit 3) before any host is contacted.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{run_bootstrap, Ran};

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `validate PATH`: exit 3 and stderr (which must not be a panic), miette's line wrapping
/// undone so messages can be searched whole.
fn invalid(path: &Path) -> String {
    let Ran { code, stderr, .. } = run_bootstrap(&["validate", path.to_str().unwrap()], &[]);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(code, Some(3), "{stderr}");
    stderr
        .lines()
        .map(|l| {
            let l = l.trim_start();
            l.strip_prefix("│ ").unwrap_or(l)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One host per line, `extra` appended inside every worker's mapping.
fn hosts(n: usize, extra: &str) -> String {
    let mut s = String::from(
        "ssh: {knownHostsFile: /dev/null}\nhosts:\n  - {name: cp, address: 10.0.0.1, role: control-plane}\n",
    );
    for i in 0..n {
        s += &format!(
            "  - {{name: n{i}, address: 10.1.{}.{}, role: worker{extra}}}\n",
            i / 250,
            i % 250 + 1
        );
    }
    s
}

#[test]
fn a_problem_past_column_65535_is_shown_in_its_one_line_form() {
    // What `jq -c` writes: the whole inventory on one line, the typo in host 1501.
    let dir = tempfile::tempdir().unwrap();
    let mut hosts: Vec<String> = (0..1600)
        .map(|i| {
            format!(
                r#"{{"name":"n{i}","address":"10.0.{}.{}","role":"worker"}}"#,
                i / 250,
                i % 250 + 1
            )
        })
        .collect();
    hosts[0] = hosts[0].replace("worker", "control-plane");
    hosts[1500] = hosts[1500].replace("\"role\"", "\"rol\"");
    let text = format!(
        r#"{{"ssh":{{"knownHostsFile":"/dev/null"}},"hosts":[{}]}}"#,
        hosts.join(",")
    );
    let path = write(dir.path(), "one-line.json", text);
    let stderr = invalid(&path);
    assert!(
        stderr.contains("hosts[1500].rol: unknown key `rol`"),
        "{stderr}"
    );

    // With --output json the document is still printed, exit 3.
    let Ran {
        code,
        stdout,
        stderr,
    } = run_bootstrap(&["up", path.to_str().unwrap(), "--output", "json"], &[]);
    assert_eq!(code, Some(3), "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(doc["outcome"], "invalid-inventory", "{doc:#}");
}

#[test]
fn control_and_bidi_characters_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "inv.yaml",
        "hosts:\n  - {name: \"a\\e[31m\\u202Eb\", address: 10.0.0.1, role: control-plane}\n  - name: x\u{202e}y\x1b[2J\n",
    );
    let stderr = invalid(&path);
    for raw in ['\x1b', '\u{202e}'] {
        assert!(!stderr.contains(raw), "{raw:?} printed raw:\n{stderr}");
    }
    assert!(
        stderr.contains(r"`a\u{1b}[31m\u{202e}b` is not a valid node name"),
        "{stderr}"
    );
}

#[test]
fn a_long_value_is_cut_in_messages() {
    let dir = tempfile::tempdir().unwrap();
    let name = "A".repeat(1 << 20);
    let path = write(
        dir.path(),
        "inv.yaml",
        format!("hosts:\n  - {{name: {name}, address: 10.0.0.1, role: control-plane}}\n"),
    );
    let stderr = invalid(&path);
    assert!(
        stderr.contains("...(1048576 characters)"),
        "{}",
        &stderr[..2000.min(stderr.len())]
    );
    assert!(stderr.len() < 10_000, "{} bytes of output", stderr.len());
}

#[test]
fn at_most_fifty_problems_are_rendered_then_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "inv.yaml", hosts(200, ", x: 1"));
    let stderr = invalid(&path);
    assert!(stderr.contains("200 problems in the inventory"), "{stderr}");
    assert_eq!(stderr.matches("unknown key `x`").count(), 50, "{stderr}");
    assert!(stderr.contains("... and 150 more"), "{stderr}");
    // The JSON document's error lists as many.
    let Ran { stdout, .. } =
        run_bootstrap(&["up", path.to_str().unwrap(), "--output", "json"], &[]);
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let message = doc["error"]["message"].as_str().unwrap();
    assert_eq!(message.matches("unknown key `x`").count(), 50, "{message}");
    assert!(message.contains("... and 150 more"), "{message}");
}

#[test]
fn bytes_that_are_not_utf8_text_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "latin1.yaml", b"hosts:\n  - name: caf\xe9\n");
    let stderr = invalid(&path);
    assert!(
        stderr.contains("latin1.yaml:2:14: document: byte 0xe9 is not UTF-8")
            && stderr.contains("at byte offset 20"),
        "{stderr}"
    );
    let path = write(dir.path(), "binary.yaml", b"hosts:\x00\x01\x02");
    let stderr = invalid(&path);
    assert!(
        stderr.contains("binary.yaml:1:7: document: a NUL byte"),
        "{stderr}"
    );
    assert!(stderr.contains("at byte offset 6"), "{stderr}");
}

#[test]
fn what_is_not_an_inventory_file_is_refused_before_reading() {
    // A device that never ends, a FIFO nobody writes to, a directory, a file too large.
    let stderr = invalid(Path::new("/dev/zero"));
    assert!(
        stderr.contains("/dev/zero: not a regular file (a character device)"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let stderr = invalid(&fifo);
    assert!(stderr.contains("not a regular file (a FIFO)"), "{stderr}");

    let stderr = invalid(dir.path());
    assert!(
        stderr.contains("not a regular file (a directory)"),
        "{stderr}"
    );

    let big = bootstrap::inventory::MAX_INVENTORY_BYTES as usize + 1;
    let path = write(dir.path(), "big.yaml", format!("# {}\n", "x".repeat(big)));
    let stderr = invalid(&path);
    assert!(
        stderr.contains("an inventory may be at most 4194304 bytes"),
        "{stderr}"
    );
}
