//! The SSH transport against a real OpenSSH server.
//!
//! Each test starts its own `/usr/sbin/sshd -D -e` on 127.0.0.1 and a free port, with a
//! temporary host key and `AuthorizedKeysFile` pointing at a temporary file, and kills
//! it when the test ends. Needs root (sshd) and openssh-server (installed by .ci/run):
//! when sshd is missing the tests FAIL, they do not skip.
//!
//! The sudo test creates two temporary local users (dash login shell) and a file in
//! /etc/sudoers.d, the concurrency test one such user; each removes them when it ends,
//! pass or fail.
//!
//! Opt-in (`#[ignore]`, listed as ignored, never silently skipped):
//! - measurement: `cargo test -p bootstrap --test ssh -- --ignored --nocapture measure`
//! - a live testbed: `BOOTSTRAP_TESTBED_DIR=DIR cargo test -p bootstrap --test ssh --
//!   --ignored --nocapture testbed_hosts` after `testbed up --dir DIR`

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use bootstrap::ssh::{ConnectOptions, Connection, HostKeyPolicy, RemoteCommand, SshError, Target};

const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd and the files around it; killed and removed on drop.
struct Sshd {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Sshd {
    fn start() -> Sshd {
        Sshd::start_with("")
    }

    /// Starts sshd with extra `sshd_config` lines (they win over the defaults).
    fn start_with(extra_config: &str) -> Sshd {
        Sshd::start_setup(extra_config, |_| {})
    }

    /// `start_with`, `setup` called with the directory once the keys are made and before
    /// sshd starts (e.g. to sign its host key); `$DIR` in the extra lines is that directory.
    fn start_setup(extra_config: &str, setup: impl FnOnce(&Path)) -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: these tests need the OpenSSH server \
             (apt-get install openssh-server; .ci/run installs it)"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host_ed25519"), "ed25519");
        keygen(&d.join("id_ed25519"), "ed25519");
        keygen(&d.join("id_ecdsa"), "ecdsa");
        keygen(&d.join("id_other"), "ed25519"); // never authorized
        let mut authorized = String::new();
        for k in ["id_ed25519", "id_ecdsa"] {
            authorized.push_str(&std::fs::read_to_string(d.join(format!("{k}.pub"))).unwrap());
        }
        std::fs::write(d.join("authorized_keys"), authorized).unwrap();
        setup(d);
        let extra_config = extra_config.replace("$DIR", &d.display().to_string());
        // sshd refuses to start without its privilege separation directory.
        std::fs::create_dir_all("/run/sshd").unwrap();

        for _attempt in 0..5 {
            let port = free_port();
            // sshd takes the first value of each keyword: the extra lines win.
            let config = format!(
                "{extra_config}\nPort {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\n\
                 AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nPermitRootLogin prohibit-password\n\
                 StrictModes no\nUsePAM no\nLogLevel ERROR\n",
                d = d.display()
            );
            std::fs::write(d.join("sshd_config"), config).unwrap();
            // sshd's log goes to a file: a pipe nobody reads could fill and block it.
            let log = std::fs::File::create(d.join("sshd.log")).unwrap();
            let mut child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(d.join("sshd_config"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {SSHD}: {e}"));
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    let err = std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default();
                    if err.contains("Address already in use") {
                        break; // lost the port race; try another
                    }
                    panic!("sshd exited with {status}: {err}");
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Sshd { child, dir, port };
                }
                assert!(Instant::now() < deadline, "sshd did not listen within 10s");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("could not find a free port for sshd");
    }

    /// Generates `id_rsa` (slow, so only for the tests that need it) and authorizes it.
    fn add_rsa_key(&self) {
        keygen(&self.path("id_rsa"), "rsa");
        let public = std::fs::read_to_string(self.path("id_rsa.pub")).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path("authorized_keys"))
            .unwrap();
        f.write_all(public.as_bytes()).unwrap();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `ssh-ed25519 AAAA...` of the server's host key.
    fn host_key_line(&self) -> String {
        let text = std::fs::read_to_string(self.path("host_ed25519.pub")).unwrap();
        text.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The host key's fingerprint as `ssh-keygen -l` prints it.
    fn host_fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(self.path("host_ed25519.pub"))
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    }

    /// Writes a known_hosts file with `content` and returns its path.
    fn known_hosts(&self, content: &str) -> PathBuf {
        let p = self.path("known_hosts");
        std::fs::write(&p, content).unwrap();
        p
    }

    /// A target for `user` with the correct `[127.0.0.1]:port` known_hosts entry.
    fn target(&self, user: &str, identity: &str) -> Target {
        let kh = self.known_hosts(&format!(
            "[127.0.0.1]:{} {}\n",
            self.port,
            self.host_key_line()
        ));
        Target {
            host: "node-1".to_string(),
            address: "127.0.0.1".to_string(),
            port: self.port,
            user: user.to_string(),
            identity_file: Some(self.path(identity)),
            known_hosts_file: kh,
            host_key_policy: Default::default(),
            jumps: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            identities_only: false,
            certificate_file: None,
            server_alive_interval: None,
            hash_known_hosts: false,
        }
    }

    /// Stops sshd now and starts it again with the same configuration (port, host key)
    /// after `delay`, like a machine whose sshd comes up late. The returned guard kills
    /// the late sshd when dropped.
    fn restart_after(&mut self, delay: Duration) -> LateSshd {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let config = self.path("sshd_config");
        let log = self.path("sshd.log");
        LateSshd(Some(std::thread::spawn(move || {
            std::thread::sleep(delay);
            Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(log).unwrap())
                .spawn()
                .unwrap()
        })))
    }

    async fn connect_root(&self) -> Connection {
        self.connect_as("root").await
    }

    /// Connected as `user` with the ed25519 key (e.g. a [`TempUser`]).
    async fn connect_as(&self, user: &str) -> Connection {
        Connection::connect_with_agent(&self.target(user, "id_ed25519"), None)
            .await
            .unwrap_or_else(|e| panic!("connect as {user}: {e}"))
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real ssh-agent (`ssh-agent -D`) holding one key (and its `-cert.pub` when there is
/// one, as ssh-add loads it); killed on drop.
struct Agent(Child);

impl Agent {
    /// Starts it on a socket in `sshd`'s directory and adds `key`; the socket's path.
    fn start(sshd: &Sshd, key: &Path) -> (PathBuf, Agent) {
        let sock = sshd.path("agent.sock");
        let mut agent = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(Stdio::null())
            .spawn()
            .expect("ssh-agent (openssh-client) is needed");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !sock.exists() {
            assert!(Instant::now() < deadline, "ssh-agent did not start");
            assert!(agent.try_wait().unwrap().is_none(), "ssh-agent exited");
            std::thread::sleep(Duration::from_millis(20));
        }
        let agent = Agent(agent);
        let status = Command::new("ssh-add")
            .arg("-q")
            .arg(key)
            .env("SSH_AUTH_SOCK", &sock)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        (sock, agent)
    }

    /// Adds `key` to the agent listening on `sock` (after the ones it holds: ssh-agent
    /// lists keys in the order they were added).
    fn add(sock: &Path, key: &Path) {
        let status = Command::new("ssh-add")
            .arg("-q")
            .arg(key)
            .env("SSH_AUTH_SOCK", sock)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// An agent holding `unknown` keys the server does not authorize, then `last`: a
/// developer's agent full of keys for other places.
fn crowded_agent(sshd: &Sshd, unknown: usize, last: &Path) -> (PathBuf, Agent) {
    let (sock, agent) = Agent::start(sshd, &sshd.path("id_other"));
    for i in 1..unknown {
        let key = sshd.path(&format!("id_unknown{i}"));
        keygen(&key, "ed25519");
        Agent::add(&sock, &key);
    }
    Agent::add(&sock, last);
    (sock, agent)
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An sshd started late by `Sshd::restart_after`; killed on drop.
struct LateSshd(Option<std::thread::JoinHandle<Child>>);

impl Drop for LateSshd {
    fn drop(&mut self) {
        if let Some(Ok(mut child)) = self.0.take().map(|t| t.join()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A local user with `/bin/sh` (dash) as login shell, for the sudo path; removed on
/// drop, even when the test fails.
struct TempUser(String);

impl TempUser {
    fn create(name: &str) -> TempUser {
        let status = Command::new("useradd")
            .args(["-m", "-s", "/bin/sh", "-p", "*"])
            .arg(name)
            .status()
            .expect("useradd (passwd package) is needed");
        assert!(status.success(), "useradd {name}");
        TempUser(name.to_string())
    }
}

impl Drop for TempUser {
    fn drop(&mut self) {
        // -f: sshd's session processes for the user may still be exiting.
        for _ in 0..50 {
            let _ = Command::new("userdel")
                .args(["-f", "-r"])
                .arg(&self.0)
                .stderr(Stdio::null())
                .status();
            let exists = Command::new("getent")
                .args(["passwd", &self.0])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !exists {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("WARNING: could not remove the test user {}", self.0);
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn keygen(path: &Path, kind: &str) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-C", "test", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen (openssh-client) is needed");
    assert!(status.success(), "ssh-keygen -t {kind} failed");
}

/// Whether OpenSSH's own `ssh`, checking strictly against `known_hosts`, logs in to
/// `sshd` (with its authorized id_ed25519).
fn openssh_trusts(sshd: &Sshd, known_hosts: &Path) -> bool {
    Command::new("ssh")
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
        ])
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .arg("-i")
        .arg(sshd.path("id_ed25519"))
        .args(["-p", &sshd.port.to_string(), "root@127.0.0.1", "true"])
        .status()
        .unwrap()
        .success()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn script(s: &str) -> RemoteCommand {
    RemoteCommand {
        script: s.to_string(),
        ..Default::default()
    }
}

#[tokio::test]
async fn runs_a_command_and_collects_stdout_stderr_status() {
    let sshd = Sshd::start();
    let conn = sshd.connect_root().await;
    let out = conn
        .run(&script("echo out; echo err >&2; exit 3"))
        .await
        .unwrap();
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");
    assert_eq!(out.status, 3);
    assert!(!out.success());
    let out = conn.run(&script("id -u")).await.unwrap();
    assert_eq!((out.status, out.stdout.as_str()), (0, "0\n"));
}

/// Scripts arrive at `sh` byte for byte: the remote output equals running the same
/// script locally with `sh -c`.
#[tokio::test]
async fn quoting_torture() {
    let sshd = Sshd::start();
    let conn = sshd.connect_root().await;
    let scripts = [
        r#"echo 'single' "double" it\'s"#,
        r#"x='a  b'; echo "$x" $x '$x' "\$x" `echo back` $(echo dollar)"#,
        "printf '%s\\n' 'line one\nline two' \"tab\there\"\necho second command",
        r#"printf '%s|' 'back\slash' "dq\\bs" \\ '\n' ; echo"#,
        r#"echo "!bang ^caret {a,b} *nothing-matches-this-glob* ~ #notacomment" # comment"#,
        "cat <<'EOF'\n$HOME `id` \\n 'q' \"d\"\nEOF",
        "echo ünïcødé 字; echo -n ''",
        r#"set -- "a b" c; echo $# "$1""#,
    ];
    for s in scripts {
        let local = Command::new("sh").arg("-c").arg(s).output().unwrap();
        let remote = conn.run(&script(s)).await.unwrap();
        let local_stdout = String::from_utf8_lossy(&local.stdout);
        // $HOME differs locally only if the test runner's HOME is not root's; the
        // heredoc is quoted so it is not expanded anyway.
        assert_eq!(remote.stdout, local_stdout, "script: {s:?}");
        assert_eq!(remote.status, 0, "script: {s:?}: {}", remote.stderr);
    }
}

#[tokio::test]
async fn stdin_uploads_binary_data() {
    let sshd = Sshd::start();
    let conn = sshd.connect_root().await;
    // 3 MiB covering every byte value, larger than the SSH window, plus a NUL-rich tail.
    let mut data: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i * 7 % 256) as u8).collect();
    data.extend_from_slice(&[0, 0, 255, b'\n', b'\r', 0]);
    let dest = sshd.path("upload.bin");
    let cmd = RemoteCommand {
        script: format!(
            "cat > {p} && wc -c < {p}",
            p = shlex::try_quote(dest.to_str().unwrap()).unwrap()
        ),
        stdin: Some(data.clone()),
        ..Default::default()
    };
    let out = conn.run(&cmd).await.unwrap();
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(out.stdout.trim(), data.len().to_string());
    assert_eq!(std::fs::read(&dest).unwrap(), data);

    // And back out, as base64 to stay within UTF-8 output.
    let out = conn
        .run(&script(&format!("base64 -w0 < {}", dest.display())))
        .await
        .unwrap();
    assert_eq!(
        out.stdout,
        base64::engine::general_purpose::STANDARD.encode(&data)
    );

    // A command that ignores its input does not hang the upload.
    let cmd = RemoteCommand {
        script: "exit 0".to_string(),
        stdin: Some(data),
        ..Default::default()
    };
    let out = tokio::time::timeout(Duration::from_secs(20), conn.run(&cmd))
        .await
        .expect("a command that ignores stdin must not hang")
        .unwrap();
    assert_eq!(out.status, 0);
}

/// 20 commands at once on one connection, against sshd's default MaxSessions (10):
/// the connection queues beyond its channel limit instead of failing.
///
/// As a temporary user whose login shell is dash: bash sources root's `.bashrc` for
/// commands run by sshd, and a CI machine's (pyenv's `rehash`, racing with itself across
/// 20 shells) wrote to stderr, which this test compares byte for byte.
#[tokio::test]
async fn twenty_concurrent_commands_on_one_connection() {
    let sshd = Sshd::start();
    let user = format!("bconcur{}", std::process::id());
    let _user = TempUser::create(&user);
    let conn = Arc::new(sshd.connect_as(&user).await);
    // One command alone, as the yardstick (the machine may be loaded).
    let started = Instant::now();
    conn.run(&script("sleep 0.5")).await.unwrap();
    let one = started.elapsed();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let conn = conn.clone();
        tasks.spawn(async move {
            let out = conn
                .run(&script(&format!("sleep 0.5; echo {i}; echo e{i} >&2")))
                .await
                .unwrap();
            (i, out)
        });
    }
    let mut seen = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (i, out) = r.unwrap();
        assert_eq!(out.stdout, format!("{i}\n"));
        assert_eq!(out.stderr, format!("e{i}\n"));
        seen.push(i);
    }
    seen.sort();
    assert_eq!(seen, (0..20).collect::<Vec<_>>());
    let elapsed = started.elapsed();
    // Sequential would take 20 x `one`; 8 channels at a time take about 3 rounds.
    assert!(
        elapsed < one * 10,
        "20 commands took {elapsed:?}, one alone {one:?}: not concurrent"
    );
}

/// A server whose `MaxSessions` is below our 8 channels refuses the opens beyond it while
/// our other commands run: those wait for a channel of ours to end instead of failing.
/// At exactly 8, the commands that end free their slots only when sshd garbage-collects
/// their channels, after the next opens may have arrived: those wait too (60 quick
/// commands, where the race is likely on every run).
/// With `MaxSessions 0` nothing can ever run, and the error says so, also to commands
/// started together (none waits for another that waits too).
#[tokio::test]
async fn a_server_with_fewer_sessions_than_our_channels_still_runs_every_command() {
    let user = format!("bfewer{}", std::process::id());
    let _user = TempUser::create(&user);
    for (max_sessions, commands, pause) in [(2, 10, "sleep 0.2; "), (8, 60, "")] {
        let sshd = Sshd::start_with(&format!("MaxSessions {max_sessions}\n"));
        let conn = Arc::new(sshd.connect_as(&user).await);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..commands {
            let conn = conn.clone();
            let cmd = script(&format!("{pause}echo {i}"));
            tasks.spawn(async move {
                let out = tokio::time::timeout(Duration::from_secs(60), conn.run(&cmd)).await;
                (i, out)
            });
        }
        while let Some(r) = tasks.join_next().await {
            let (i, out) = r.unwrap();
            let out = out
                .unwrap_or_else(|_| panic!("MaxSessions {max_sessions}: command {i} hung"))
                .unwrap_or_else(|e| panic!("MaxSessions {max_sessions}: command {i}: {e}"));
            assert_eq!((out.status, out.stdout), (0, format!("{i}\n")));
        }
    }

    // Several at once, so none of them can take the others' waiting for running.
    let sshd = Sshd::start_with("MaxSessions 0\n");
    let conn = Arc::new(sshd.connect_root().await);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let conn = conn.clone();
        tasks.spawn(async move {
            tokio::time::timeout(Duration::from_secs(20), conn.run(&script("true"))).await
        });
    }
    while let Some(r) = tasks.join_next().await {
        let err = r
            .unwrap()
            .expect("MaxSessions 0 must fail, not wait for ever")
            .expect_err("MaxSessions 0 runs nothing");
        assert!(
            matches!(&err, SshError::Command { reason, .. } if reason.contains("MaxSessions")),
            "{err}"
        );
    }
}

#[tokio::test]
async fn unknown_host_key_is_refused_with_fingerprint_and_file() {
    let sshd = Sshd::start();
    let mut target = sshd.target("root", "id_ed25519");
    // Known for another port only.
    target.known_hosts_file = sshd.known_hosts(&format!(
        "[127.0.0.1]:{} {}\n",
        sshd.port + 1,
        sshd.host_key_line(),
    ));
    let err = Connection::connect_with_agent(&target, None)
        .await
        .err()
        .expect("must refuse");
    let msg = err.to_string();
    assert!(matches!(err, SshError::HostKey { .. }), "{msg}");
    assert!(msg.contains(&sshd.host_fingerprint()), "{msg}");
    assert!(
        msg.contains(&target.known_hosts_file.display().to_string()),
        "{msg}"
    );
    assert!(msg.contains("node-1"), "{msg}");
    // Never auto-added.
    let after = std::fs::read_to_string(&target.known_hosts_file).unwrap();
    assert_eq!(after.lines().count(), 1);

    // Recorded under the bare address: OpenSSH, finding nothing under [addr]:port,
    // looks again without the port and trusts it ("checking without port identifier");
    // so does bootstrap.
    std::fs::write(
        &target.known_hosts_file,
        format!("{after}127.0.0.1 {}\n", sshd.host_key_line()),
    )
    .unwrap();
    assert!(
        openssh_trusts(&sshd, &target.known_hosts_file),
        "OpenSSH trusts the bare-address line"
    );
    Connection::connect_with_agent(&target, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn missing_known_hosts_file_is_refused() {
    let sshd = Sshd::start();
    let mut target = sshd.target("root", "id_ed25519");
    target.known_hosts_file = sshd.path("does-not-exist");
    let err = Connection::connect_with_agent(&target, None)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, SshError::HostKey { .. }), "{err}");
    assert!(err.to_string().contains("does-not-exist"), "{err}");
    assert!(!target.known_hosts_file.exists());
}

#[tokio::test]
async fn changed_host_key_is_refused_with_file_and_line() {
    let sshd = Sshd::start();
    let mut target = sshd.target("root", "id_ed25519");
    let other = std::fs::read_to_string(sshd.path("id_other.pub")).unwrap();
    let other: String = other
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    target.known_hosts_file = sshd.known_hosts(&format!(
        "# managed by hand\n\nexample.org {host}\n[127.0.0.1]:{port} {other}\n",
        host = sshd.host_key_line(),
        port = sshd.port
    ));
    let err = Connection::connect_with_agent(&target, None)
        .await
        .err()
        .expect("must refuse");
    let msg = err.to_string();
    assert!(matches!(err, SshError::HostKey { .. }), "{msg}");
    let file_line = format!("{}:4", target.known_hosts_file.display());
    assert!(msg.contains(&file_line), "want {file_line} in: {msg}");
    assert!(msg.contains(&sshd.host_fingerprint()), "{msg}");
    assert!(msg.contains("CHANGED"), "{msg}");
}

#[tokio::test]
async fn revoked_host_key_is_refused() {
    let sshd = Sshd::start();
    let mut target = sshd.target("root", "id_ed25519");
    target.known_hosts_file = sshd.known_hosts(&format!(
        "[127.0.0.1]:{port} {key}\n@revoked * {key}\n",
        port = sshd.port,
        key = sshd.host_key_line()
    ));
    let err = Connection::connect_with_agent(&target, None)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("@revoked"), "{err}");
    assert!(err.to_string().contains(":2"), "{err}");
}

/// An entry hashed by `ssh-keygen -H` (HashKnownHosts) is recognised.
#[tokio::test]
async fn hashed_known_hosts_entry_is_accepted() {
    let sshd = Sshd::start();
    let target = sshd.target("root", "id_ed25519");
    let status = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&target.known_hosts_file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let hashed = std::fs::read_to_string(&target.known_hosts_file).unwrap();
    assert!(hashed.starts_with("|1|"), "{hashed}");
    assert!(!hashed.contains("127.0.0.1"));
    let conn = Connection::connect_with_agent(&target, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(conn.run(&script("echo ok")).await.unwrap().stdout, "ok\n");
}

#[tokio::test]
async fn rsa_and_ecdsa_identity_files_work() {
    let sshd = Sshd::start();
    sshd.add_rsa_key();
    for id in ["id_rsa", "id_ecdsa"] {
        let conn = Connection::connect_with_agent(&sshd.target("root", id), None)
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(conn.run(&script("echo ok")).await.unwrap().stdout, "ok\n");
    }
}

#[tokio::test]
async fn wrong_key_is_an_auth_error_naming_host_user_and_what_was_tried() {
    let sshd = Sshd::start();
    let target = sshd.target("root", "id_other");
    let err = Connection::connect_with_agent(&target, None)
        .await
        .err()
        .expect("must fail");
    let msg = err.to_string();
    assert!(matches!(err, SshError::Auth { .. }), "{msg}");
    assert!(msg.contains("node-1") && msg.contains("root"), "{msg}");
    assert!(msg.contains("id_other"), "{msg}");
    assert!(msg.contains("rejected"), "{msg}");
    assert!(msg.contains("SSH_AUTH_SOCK"), "{msg}");
}

/// OpenSSH ignores a private key its owner lets others read; bootstrap refuses it with
/// the same words and the chmod that fixes it, although the server would accept it.
#[tokio::test]
async fn a_private_key_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let sshd = Sshd::start();
    let key = sshd.path("id_ed25519");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Connection::connect_with_agent(&sshd.target("root", "id_ed25519"), None)
        .await
        .err()
        .expect("must be refused");
    let msg = err.to_string();
    assert!(matches!(err, SshError::Auth { .. }), "{msg}");
    assert!(
        msg.contains(&format!(
            "Permissions 0644 for '{}' are too open",
            key.display()
        )),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("chmod 600 {}", key.display())),
        "{msg}"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    sshd.connect_root().await;
}

/// hostKeyPolicy accept-new: hosts connecting at once to a host nobody recorded yet
/// (known_hosts missing) record its key exactly once, and say so with the fingerprint;
/// the next connection checks strictly against what was recorded.
#[tokio::test]
async fn accept_new_records_an_unknown_key_once_then_strict_accepts_it() {
    let sshd = Sshd::start();
    let kh = sshd.path("new/known_hosts");
    std::fs::create_dir(sshd.path("new")).unwrap();
    let mut target = sshd.target("root", "id_ed25519");
    target.known_hosts_file = kh.clone();
    target.host_key_policy = HostKeyPolicy::AcceptNew;
    let targets = vec![target.clone(); 6];
    let options = ConnectOptions {
        agent_socket: None,
        ..Default::default()
    };
    let mut added = Vec::new();
    for (_, conn) in bootstrap::ssh::connect_all_with(&targets, 6, &options).await {
        let conn = conn.unwrap_or_else(|e| panic!("{e}"));
        added.extend(conn.host_key_added.clone());
    }
    assert_eq!(added.len(), 1, "{added:?}");
    assert!(added[0].contains(&sshd.host_fingerprint()), "{}", added[0]);
    assert!(added[0].contains(&kh.display().to_string()), "{}", added[0]);
    assert_eq!(
        std::fs::read_to_string(&kh).unwrap(),
        format!("[127.0.0.1]:{} {}\n", sshd.port, sshd.host_key_line())
    );
    // OpenSSH itself accepts what was recorded.
    assert!(openssh_trusts(&sshd, &kh));
    target.host_key_policy = HostKeyPolicy::Strict;
    let conn = Connection::connect_with(&target, &options).await.unwrap();
    assert_eq!(conn.host_key_added, None);
}

/// HashKnownHosts (ssh_config): accept-new records the host hashed, and OpenSSH's own
/// `ssh-keygen -F` finds it under `[127.0.0.1]:PORT`.
#[tokio::test]
async fn accept_new_with_hash_known_hosts_records_a_line_ssh_keygen_finds() {
    let sshd = Sshd::start();
    let mut target = sshd.target("root", "id_ed25519");
    target.known_hosts_file = sshd.path("hashed_known_hosts");
    target.host_key_policy = HostKeyPolicy::AcceptNew;
    target.hash_known_hosts = true;
    let conn = Connection::connect_with_agent(&target, None).await.unwrap();
    assert!(conn.host_key_added.is_some());
    let text = std::fs::read_to_string(&target.known_hosts_file).unwrap();
    assert!(
        text.starts_with("|1|") && !text.contains("127.0.0.1"),
        "{text}"
    );
    let found = Command::new("ssh-keygen")
        .arg("-F")
        .arg(format!("[127.0.0.1]:{}", sshd.port))
        .arg("-f")
        .arg(&target.known_hosts_file)
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "ssh-keygen -F did not find it: {text}"
    );
    assert!(String::from_utf8_lossy(&found.stdout).contains(&sshd.host_key_line()));
}

/// A changed key is refused under accept-new as under strict, and nothing is written.
#[tokio::test]
async fn accept_new_still_refuses_a_changed_key() {
    let sshd = Sshd::start();
    keygen(&sshd.path("other_host"), "ed25519");
    let other = std::fs::read_to_string(sshd.path("other_host.pub")).unwrap();
    let recorded = format!("[127.0.0.1]:{} {other}", sshd.port);
    let mut target = sshd.target("root", "id_ed25519");
    target.known_hosts_file = sshd.known_hosts(&recorded);
    for policy in [HostKeyPolicy::Strict, HostKeyPolicy::AcceptNew] {
        target.host_key_policy = policy;
        let err = Connection::connect_with_agent(&target, None)
            .await
            .err()
            .expect("a changed key must be refused");
        let msg = err.to_string();
        assert!(matches!(err, SshError::HostKey { .. }), "{msg}");
        assert!(msg.contains("HAS CHANGED"), "{policy:?}: {msg}");
    }
    assert_eq!(
        std::fs::read_to_string(&target.known_hosts_file).unwrap(),
        recorded
    );
}

/// A host whose sshd comes up late: without --wait-for-ssh the connection fails at
/// once; with it, the host is tried again until it answers, and a progress line names
/// it meanwhile.
#[tokio::test]
async fn a_host_whose_sshd_starts_late_is_waited_for() {
    let mut sshd = Sshd::start();
    let target = sshd.target("root", "id_ed25519");
    let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = lines.clone();
    let options = ConnectOptions {
        agent_socket: None,
        wait_for_ssh: Duration::from_secs(60),
        notify: Some(Arc::new(move |line| seen.lock().unwrap().push(line))),
        ..Default::default()
    };
    let no_wait = ConnectOptions {
        wait_for_ssh: Duration::ZERO,
        ..options.clone()
    };

    let _late = sshd.restart_after(Duration::from_secs(7));
    let started = Instant::now();
    let (_, result) = bootstrap::ssh::connect_all_with(std::slice::from_ref(&target), 1, &no_wait)
        .await
        .remove(0);
    assert!(
        matches!(result, Err(SshError::Connect { .. })),
        "{:?}",
        result.err()
    );
    assert!(started.elapsed() < Duration::from_secs(3));

    let (_, result) = bootstrap::ssh::connect_all_with(&[target], 1, &options)
        .await
        .remove(0);
    let conn = result.unwrap_or_else(|e| panic!("{e}"));
    assert!(started.elapsed() >= Duration::from_secs(7));
    assert_eq!(conn.run(&script("echo up")).await.unwrap().stdout, "up\n");
    let lines = lines.lock().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("waiting for SSH on 1 host (node-1)")
                && l.contains("Connection refused")),
        "{lines:?}"
    );
}

/// A bastion sshd (with `extra` config) that forwards only to `inner`, and a target for
/// `inner` that jumps through it: its known_hosts vouches for both, and the bastion
/// authorizes the target's key (jump hosts log in with the target's key).
fn behind_a_bastion(inner: &Sshd, extra: &str) -> (Sshd, Target) {
    let bastion = Sshd::start_with(&format!(
        "{extra}AllowTcpForwarding yes\nPermitOpen 127.0.0.1:{}\n",
        inner.port
    ));
    std::fs::copy(
        inner.path("id_ed25519.pub"),
        bastion.path("authorized_keys"),
    )
    .unwrap();
    let mut target = inner.target("root", "id_ed25519");
    std::fs::write(
        &target.known_hosts_file,
        format!(
            "[127.0.0.1]:{} {}\n[127.0.0.1]:{} {}\n",
            inner.port,
            inner.host_key_line(),
            bastion.port,
            bastion.host_key_line()
        ),
    )
    .unwrap();
    target.jumps =
        bootstrap::ssh::jump::parse_chain(&format!("root@127.0.0.1:{}", bastion.port)).unwrap();
    (bastion, target)
}

/// IdentitiesOnly (ssh_config): a server with a low MaxAuthTries cuts a client that
/// offers the agent's keys in turn before the right one; with `IdentitiesOnly` and the
/// identity file naming the key (here its public half, the private key only in the
/// agent, as with hardware keys), only that key is offered and the login works.
#[tokio::test]
async fn identities_only_offers_only_the_identity_files_key_under_max_auth_tries() {
    let sshd = Sshd::start_with("MaxAuthTries 2\nLogLevel VERBOSE\n");
    let (sock, agent) = crowded_agent(&sshd, 3, &sshd.path("id_ed25519"));
    let mut target = sshd.target("root", "id_ed25519.pub");
    target.identities_only = true;
    let conn = Connection::connect_with_agent(&target, Some(&sock))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(conn.run(&script("echo in")).await.unwrap().stdout, "in\n");
    drop(conn);
    let log = std::fs::read_to_string(sshd.path("sshd.log")).unwrap();
    assert!(!log.contains("Failed publickey"), "{log}");

    // The same agent without IdentitiesOnly and without an identity file: its keys in
    // turn, and sshd cuts the client off before the right one.
    target.identity_file = None;
    target.identities_only = false;
    let err = Connection::connect_with_agent(&target, Some(&sock))
        .await
        .err()
        .expect("cut off at MaxAuthTries");
    assert!(matches!(err, SshError::Auth { .. }), "{err}");
    // sshd's pre-auth child hands its log lines to the monitor, which may write this one
    // after the client has already seen the connection close: wait for it (up to 10 s).
    let mut log = String::new();
    for _ in 0..100 {
        log = std::fs::read_to_string(sshd.path("sshd.log")).unwrap();
        if log.contains("maximum authentication attempts exceeded") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        log.contains("maximum authentication attempts exceeded"),
        "{log}"
    );

    // IdentitiesOnly with an identity file the agent does not hold: not even the
    // agent's one authorized key is offered (it would log in).
    drop(agent);
    std::fs::remove_file(&sock).unwrap();
    let (sock, _agent) = Agent::start(&sshd, &sshd.path("id_ed25519"));
    keygen(&sshd.path("id_stranger"), "ed25519");
    std::fs::remove_file(sshd.path("id_stranger")).unwrap();
    let mut other = sshd.target("root", "id_stranger.pub");
    let conn = Connection::connect_with_agent(&other, Some(&sock)).await;
    assert!(
        conn.is_ok(),
        "without IdentitiesOnly the agent's key logs in"
    );
    other.identities_only = true;
    let msg = Connection::connect_with_agent(&other, Some(&sock))
        .await
        .err()
        .expect("only id_stranger may be offered")
        .to_string();
    assert!(msg.contains("IdentitiesOnly"), "{msg}");
}

/// A jump host logs in with its own key (ssh_config's block for it gives the jump hop
/// an identity file), not the target's, and is not offered the agent's other keys.
#[tokio::test]
async fn a_jump_host_logs_in_with_its_own_key() {
    let inner = Sshd::start();
    let (bastion, mut target) = behind_a_bastion(&inner, "MaxAuthTries 2\nLogLevel VERBOSE\n");
    // The bastion authorizes only id_ecdsa; the target (inner) logs in with id_ed25519.
    std::fs::copy(inner.path("id_ecdsa.pub"), bastion.path("authorized_keys")).unwrap();
    let (sock, _agent) = crowded_agent(&inner, 3, &inner.path("id_ed25519"));
    let options = ConnectOptions {
        agent_socket: Some(sock),
        ..Default::default()
    };
    let err = bootstrap::ssh::connect_all_with(std::slice::from_ref(&target), 1, &options)
        .await
        .remove(0)
        .1
        .err()
        .expect("the bastion refuses the target's key");
    assert!(
        err.to_string().contains("via bastion root@127.0.0.1:")
            && err.to_string().contains("authentication as root failed"),
        "{err}"
    );

    target.jumps[0].identity_file = Some(inner.path("id_ecdsa"));
    target.jumps[0].identities_only = Some(true);
    let conns = bootstrap::ssh::connect_all_with(std::slice::from_ref(&target), 1, &options).await;
    let conn = conns[0].1.as_ref().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(conn.run(&script("echo in")).await.unwrap().stdout, "in\n");
    let log = std::fs::read_to_string(bastion.path("sshd.log")).unwrap();
    assert!(
        log.contains("Accepted publickey for root from 127.0.0.1"),
        "{log}"
    );
    assert!(log.contains("ECDSA"), "{log}");
}

/// ProxyJump: six hosts behind a bastion ride direct-tcpip channels of ONE bastion
/// connection (its log shows one login), each host still checked and logged into end to
/// end; the bastion only forwards where its PermitOpen allows, so the sessions really go
/// through it. A bastion that does not answer is reported as the bastion's failure.
#[tokio::test]
async fn hosts_behind_a_bastion_share_one_bastion_connection() {
    let inner = Sshd::start();
    let (bastion, target) = behind_a_bastion(&inner, "LogLevel INFO\n");
    let targets: Vec<Target> = (1..=6)
        .map(|i| Target {
            host: format!("node-{i}"),
            ..target.clone()
        })
        .collect();
    let options = ConnectOptions {
        agent_socket: None,
        ..Default::default()
    };
    let conns = bootstrap::ssh::connect_all_with(&targets, 6, &options).await;
    for (name, conn) in &conns {
        let conn = conn.as_ref().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(conn.run(&script("echo in")).await.unwrap().stdout, "in\n");
    }
    let log = std::fs::read_to_string(bastion.path("sshd.log")).unwrap();
    assert_eq!(log.matches("Accepted publickey").count(), 1, "{log}");
    drop(conns);

    // Somewhere the bastion may not forward to: the target's own failure, through it.
    let mut elsewhere = target.clone();
    elsewhere.port = free_port();
    let err = Connection::connect_with(&elsewhere, &options)
        .await
        .err()
        .expect("PermitOpen refuses it");
    let msg = err.to_string();
    assert!(matches!(err, SshError::Connect { .. }), "{msg}");
    assert!(msg.contains("could not open a connection"), "{msg}");

    // A bastion that does not answer: every host says via which bastion.
    let mut dead = target.clone();
    let dead_port = free_port();
    dead.jumps[0].port = Some(dead_port);
    let err = Connection::connect_with(&dead, &options)
        .await
        .err()
        .expect("no bastion there");
    let msg = err.to_string();
    assert!(matches!(err, SshError::Jump { .. }), "{msg}");
    assert!(
        msg.starts_with(&format!(
            "node-1: via bastion root@127.0.0.1:{dead_port}: cannot connect"
        )),
        "{msg}"
    );
    assert!(err.waiting_helps());
}

/// Hosts behind the same bastion share its connection only when they would log in to it
/// the same way: a host whose knownHostsFile does not vouch for the bastion is refused
/// by its own file, even after another host (whose file does) connected through it first.
#[tokio::test]
async fn a_bastion_connection_is_shared_only_by_hosts_with_the_same_settings_for_it() {
    let inner = Sshd::start();
    let (_bastion, trusting) = behind_a_bastion(&inner, "");
    // Knows the target's key but not the bastion's, and is strict.
    let own_file = inner.path("other_known_hosts");
    std::fs::write(
        &own_file,
        format!("[127.0.0.1]:{} {}\n", inner.port, inner.host_key_line()),
    )
    .unwrap();
    let careful = Target {
        host: "node-2".to_string(),
        known_hosts_file: own_file.clone(),
        ..trusting.clone()
    };
    let options = ConnectOptions {
        agent_socket: None,
        ..Default::default()
    };
    // Parallelism 1: node-1 opens the bastion connection before node-2 asks for it.
    let conns = bootstrap::ssh::connect_all_with(&[trusting, careful], 1, &options).await;
    assert!(conns[0].1.is_ok(), "{:?}", conns[0].1.as_ref().err());
    let err = conns[1]
        .1
        .as_ref()
        .err()
        .expect("node-2's file does not know the bastion");
    let msg = err.to_string();
    assert!(matches!(err, SshError::Jump { .. }), "{msg}");
    assert!(msg.contains("no host key for"), "{msg}");
    assert!(msg.contains(&own_file.display().to_string()), "{msg}");
}

/// `ssh-keygen -s CA -I ID FLAGS KEY.pub`: writes KEY-cert.pub.
fn sign(ca: &Path, key_pub: &Path, flags: &[&str]) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(ca)
        .args(["-I", "bootstrap-test"])
        .args(flags)
        .arg(key_pub)
        .status()
        .unwrap();
    assert!(status.success(), "ssh-keygen -s {flags:?}");
}

/// User certificates: no plain key authorized, sshd trusts the CA (TrustedUserCAKeys);
/// the identity file's `-cert.pub` logs in. Expired or for another user: refused, and
/// the message says which certificate was tried.
#[tokio::test]
async fn a_user_certificate_logs_in_where_no_plain_key_is_authorized() {
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = ca_dir.path().join("user_ca");
    keygen(&ca, "ed25519");
    let sshd = Sshd::start_with(&format!(
        "TrustedUserCAKeys {}.pub\nAuthorizedKeysFile none\n",
        ca.display()
    ));
    let target = sshd.target("root", "id_ed25519");
    let err = Connection::connect_with_agent(&target, None)
        .await
        .err()
        .expect("no plain key is authorized");
    assert!(matches!(err, SshError::Auth { .. }), "{err}");

    let public = sshd.path("id_ed25519.pub");
    for (flags, ok) in [
        (["-n", "root", "-V", "-5m:+1h"], true),
        (["-n", "root", "-V", "20200101:20200102"], false),
        (["-n", "alice", "-V", "-5m:+1h"], false),
    ] {
        sign(&ca, &public, &flags);
        let result = Connection::connect_with_agent(&target, None).await;
        match (result, ok) {
            (Ok(conn), true) => {
                assert_eq!(conn.run(&script("whoami")).await.unwrap().stdout, "root\n")
            }
            (Err(e), false) => {
                let msg = e.to_string();
                assert!(matches!(e, SshError::Auth { .. }), "{msg}");
                assert!(msg.contains("id_ed25519-cert.pub"), "{msg}");
                assert!(msg.contains("\"bootstrap-test\""), "{msg}");
                assert!(msg.contains("rejected by the server"), "{msg}");
            }
            (Ok(_), false) => panic!("{flags:?} must be refused"),
            (Err(e), true) => panic!("{flags:?}: {e}"),
        }
    }
    // The same certificate held by ssh-agent (ssh-add loads KEY-cert.pub with KEY), the
    // identity file not given.
    sign(&ca, &public, &["-n", "root", "-V", "-5m:+1h"]);
    let (sock, _agent) = Agent::start(&sshd, &sshd.path("id_ed25519"));
    let mut target = target.clone();
    target.identity_file = None;
    let conn = Connection::connect_with_agent(&target, Some(&sock))
        .await
        .unwrap_or_else(|e| panic!("agent certificate: {e}"));
    assert_eq!(conn.run(&script("whoami")).await.unwrap().stdout, "root\n");
}

/// Host certificates: known_hosts has only a @cert-authority line (no host key line); a
/// certificate signed by that CA for this address is trusted; expired, for another
/// principal, or with its CA @revoked, it is refused saying why.
#[tokio::test]
async fn a_host_certificate_is_trusted_through_cert_authority_only() {
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = ca_dir.path().join("host_ca");
    keygen(&ca, "ed25519");
    let ca_line = std::fs::read_to_string(ca.with_extension("pub")).unwrap();
    let ca_line = ca_line
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let cases: [(&[&str], bool, Option<&str>); 7] = [
        (&["-n", "127.0.0.1", "-V", "-5m:+1h"], false, None),
        (
            &["-n", "127.0.0.1", "-V", "-5m:+1h"],
            true,
            Some("@revoked"),
        ),
        (
            &["-n", "127.0.0.1", "-V", "20200101:20200102"],
            false,
            Some("EXPIRED at 2020-01-02"),
        ),
        (
            &["-n", "node1.example", "-V", "-5m:+1h"],
            false,
            Some("valid for node1.example but not for 127.0.0.1"),
        ),
        // Host principals are patterns (sshkey_cert_check_host: wildcard_pattern 1).
        (
            &["-n", "node1.example,127.0.0.*", "-V", "-5m:+1h"],
            false,
            None,
        ),
        (
            &["-n", "127.0.1.*", "-V", "-5m:+1h"],
            false,
            Some("valid for 127.0.1.* but not for 127.0.0.1"),
        ),
        // No principals: OpenSSH refuses it (it would vouch for every host the CA
        // covers; CVE-2024-7594, openssh-portable 5166b6cbf).
        (&["-V", "-5m:+1h"], false, Some("lists no principals")),
    ];
    for (flags, revoke_ca, expected) in cases {
        let sshd = Sshd::start_setup("HostCertificate $DIR/host_ed25519-cert.pub\n", |d| {
            let mut hflags = vec!["-h"];
            hflags.extend_from_slice(flags);
            sign(&ca, &d.join("host_ed25519.pub"), &hflags);
        });
        let mut target = sshd.target("root", "id_ed25519");
        let mut kh = format!("@cert-authority [127.0.0.1]:{} {ca_line}\n", sshd.port);
        if revoke_ca {
            kh.push_str(&format!("@revoked * {ca_line}\n"));
        }
        target.known_hosts_file = sshd.known_hosts(&kh);
        let result = Connection::connect_with_agent(&target, None).await;
        match (result, expected) {
            (Ok(conn), None) => {
                assert_eq!(conn.run(&script("echo ok")).await.unwrap().stdout, "ok\n")
            }
            (Err(e), Some(words)) => {
                let msg = e.to_string();
                assert!(matches!(e, SshError::HostKey { .. }), "{msg}");
                assert!(msg.contains(words), "{flags:?}: {msg}");
            }
            (Ok(_), Some(words)) => panic!("{flags:?} must be refused ({words})"),
            (Err(e), None) => panic!("{flags:?}: {e}"),
        }
    }
}

#[tokio::test]
async fn encrypted_key_asks_for_ssh_agent() {
    let sshd = Sshd::start();
    let key = sshd.path("id_locked");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "secret passphrase", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(status.success());
    let err = Connection::connect_with_agent(&sshd.target("root", "id_locked"), None)
        .await
        .err()
        .expect("must fail");
    let msg = err.to_string();
    assert!(matches!(err, SshError::Auth { .. }), "{msg}");
    assert!(msg.contains("encrypted"), "{msg}");
    assert!(msg.contains("ssh-add"), "{msg}");
}

/// A real ssh-agent holding the (passphrase-protected) key.
#[tokio::test]
async fn ssh_agent_authenticates() {
    let sshd = Sshd::start();
    sshd.add_rsa_key();
    let (sock, _agent) = Agent::start(&sshd, &sshd.path("id_rsa"));
    let mut target = sshd.target("root", "id_ed25519");
    target.identity_file = None;
    let conn = Connection::connect_with_agent(&target, Some(&sock))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(conn.run(&script("echo ok")).await.unwrap().stdout, "ok\n");
}

#[tokio::test]
async fn unreachable_host_is_a_connect_error_and_connect_all_reports_each_host() {
    let sshd = Sshd::start();
    let good = sshd.target("root", "id_ed25519");
    let mut refused = good.clone();
    refused.host = "node-2".to_string();
    refused.port = free_port(); // nothing listens there
    let mut wrong_key = good.clone();
    wrong_key.host = "node-3".to_string();
    wrong_key.identity_file = Some(sshd.path("id_other"));
    let options = ConnectOptions {
        agent_socket: None,
        ..ConnectOptions::default()
    };
    let results = bootstrap::ssh::connect_all_with(
        &[good.clone(), refused.clone(), wrong_key.clone()],
        2,
        &options,
    )
    .await;
    let names: Vec<&str> = results.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(names, ["node-1", "node-2", "node-3"]);
    assert!(results[0].1.is_ok());
    match &results[1].1 {
        Err(e @ SshError::Connect { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("node-2") && msg.contains("refused"), "{msg}");
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("node-2 must fail"),
    }
    match &results[2].1 {
        Err(e @ SshError::Auth { .. }) => assert!(e.to_string().contains("node-3"), "{e}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("node-3 must fail"),
    }
}

/// A port that accepts TCP but never speaks SSH: the handshake times out with a
/// message that says so, instead of hanging the run.
#[tokio::test]
async fn silent_port_times_out_in_the_handshake() {
    let sshd = Sshd::start();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut target = sshd.target("root", "id_ed25519");
    target.port = listener.local_addr().unwrap().port();
    target.connect_timeout = Duration::from_secs(1);
    let started = Instant::now();
    let err = Connection::connect_with_agent(&target, None)
        .await
        .err()
        .expect("must time out");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(err, SshError::Connect { .. }), "{err}");
    assert!(
        err.to_string().contains("no SSH handshake within 1s"),
        "{err}"
    );
    drop(listener);
}

/// The server side of the connection dies mid-command: `run` reports the connection
/// as lost (not a command failure), and so does the next `run`.
#[tokio::test]
async fn connection_killed_mid_command_is_lost() {
    let sshd = Sshd::start();
    let conn = sshd.connect_root().await;
    // The login shell execs `sh` (a single command), so sh's parent is the sshd session
    // process serving this connection.
    let err = tokio::time::timeout(
        Duration::from_secs(30),
        conn.run(&script("kill -9 $PPID; sleep 5")),
    )
    .await
    .expect("must not hang")
    .expect_err("the connection is gone");
    assert!(matches!(err, SshError::Lost { .. }), "{err}");
    let err = conn.run(&script("true")).await.expect_err("still gone");
    assert!(matches!(err, SshError::Lost { .. }), "{err}");
    assert!(conn.is_closed());
}

/// The server stops answering (its session process is frozen with SIGSTOP, like a hung
/// host): keepalives go unanswered and the running command fails as lost instead of
/// hanging forever.
#[tokio::test]
async fn frozen_server_is_detected_by_keepalive() {
    let sshd = Sshd::start();
    let options = ConnectOptions {
        agent_socket: None,
        keepalive_interval: Duration::from_secs(1),
        keepalive_max: 2,
        ..Default::default()
    };
    let conn = Connection::connect_with(&sshd.target("root", "id_ed25519"), &options)
        .await
        .unwrap();
    // The login shell execs `sh`, whose parent is the session process of this connection.
    let session: i32 = conn
        .run(&script("echo $PPID"))
        .await
        .unwrap()
        .stdout
        .trim()
        .parse()
        .unwrap();
    struct Thaw(i32);
    impl Drop for Thaw {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-CONT", &self.0.to_string()])
                .status();
        }
    }
    let _thaw = Thaw(session);
    let stopped = Command::new("kill")
        .args(["-STOP", &session.to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let started = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(30), conn.run(&script("echo hi")))
        .await
        .expect("keepalive must end the wait")
        .expect_err("a frozen server cannot answer");
    assert!(matches!(err, SshError::Lost { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn exit_by_signal_is_status_255_with_a_note() {
    let sshd = Sshd::start();
    let conn = sshd.connect_root().await;
    // `exec` so the killed process is the session's own command, as sshd reports an
    // exit-signal only for that.
    let out = conn
        .run(&script("echo before; exec sh -c 'kill -TERM $$'"))
        .await
        .unwrap();
    assert_eq!(out.stdout, "before\n");
    assert_eq!(out.status, 255, "{out:?}");
    assert!(out.stderr.contains("signal TERM"), "{out:?}");
}

#[tokio::test]
async fn secrets_do_not_leak_into_errors() {
    let sshd = Sshd::start();
    let conn = sshd.connect_root().await;
    let cmd = RemoteCommand {
        script: "echo a\0b".to_string(),
        secrets: vec!["a".to_string()],
        ..Default::default()
    };
    let err = conn.run(&cmd).await.expect_err("NUL must be refused");
    assert!(matches!(err, SshError::Command { .. }), "{err}");
}

/// A temporary local user: one with a NOPASSWD sudo rule (commands run as root through
/// `sudo -n`, quoting intact through a dash login shell), one without (`SshError::Sudo`).
/// Both users and the sudoers file are removed at the end, even on failure.
#[tokio::test]
async fn sudo_for_non_root_users() {
    assert!(
        Path::new("/usr/bin/sudo").exists(),
        "sudo is missing: apt-get install sudo (.ci/run installs it)"
    );
    let sshd = Sshd::start();
    let id = std::process::id();
    let with = format!("bsudo{id}");
    let without = format!("bnosudo{id}");
    let sudoers = PathBuf::from(format!("/etc/sudoers.d/bootstrap-test-{id}"));
    let _with = TempUser::create(&with);
    let _without = TempUser::create(&without);
    let _sudoers = RemoveOnDrop(sudoers.clone());
    let mut f = std::fs::File::create(&sudoers).unwrap();
    writeln!(f, "{with} ALL=(ALL) NOPASSWD:ALL").unwrap();
    drop(f);

    let conn = Connection::connect_with_agent(&sshd.target(&with, "id_ed25519"), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    conn.check_sudo().await.unwrap();
    let tricky = "x='it'\\''s $HOME'; echo \"$x\" \"$(id -u)\"\nprintf '%s\\n' 'back\\slash'";
    let out = conn
        .run(&RemoteCommand {
            script: tricky.to_string(),
            root: true,
            ..Default::default()
        })
        .await
        .unwrap();
    // As root (uid 0), with the script intact.
    assert_eq!(out.stdout, "it's $HOME 0\nback\\slash\n", "{out:?}");
    // Not root when not asked.
    let out = conn.run(&script("id -u")).await.unwrap();
    assert_ne!(out.stdout.trim(), "0");

    let conn = Connection::connect_with_agent(&sshd.target(&without, "id_ed25519"), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let err = conn.check_sudo().await.expect_err("no sudo rule");
    let msg = err.to_string();
    assert!(matches!(err, SshError::Sudo { .. }), "{msg}");
    assert!(msg.contains(&without) && msg.contains("node-1"), "{msg}");
    let err = conn
        .run(&RemoteCommand {
            script: "true".to_string(),
            root: true,
            ..Default::default()
        })
        .await
        .expect_err("sudo must refuse");
    assert!(matches!(err, SshError::Sudo { .. }), "{err}");
}

/// Connect + `true` 100 times on one connection vs 100 fresh connections. As a temporary
/// user whose login shell is dash, so the numbers measure SSH, not the machine's root
/// `.bashrc` (bash sources it for commands run by sshd).
#[tokio::test]
#[ignore = "measurement; run with --ignored --nocapture"]
async fn measure_reuse_vs_reconnect() {
    let sshd = Sshd::start_with("MaxStartups 200\n");
    let user = format!("bmeasure{}", std::process::id());
    let _user = TempUser::create(&user);
    let target = sshd.target(&user, "id_ed25519");
    let started = Instant::now();
    let conn = Connection::connect_with_agent(&target, None).await.unwrap();
    for _ in 0..100 {
        assert!(conn.run(&script("true")).await.unwrap().success());
    }
    let reuse = started.elapsed();
    conn.close().await;
    let started = Instant::now();
    for _ in 0..100 {
        let conn = Connection::connect_with_agent(&target, None).await.unwrap();
        assert!(conn.run(&script("true")).await.unwrap().success());
        conn.close().await;
    }
    let reconnect = started.elapsed();
    println!(
        "100 x `true`: one connection {:.2}s ({:.1} ms/cmd); 100 connections {:.2}s ({:.1} ms/cmd)",
        reuse.as_secs_f64(),
        reuse.as_secs_f64() * 10.0,
        reconnect.as_secs_f64(),
        reconnect.as_secs_f64() * 10.0
    );
}

/// Against a running testbed (`testbed up --dir DIR`): connects to every host of
/// `DIR/hosts.json` with `connect_all` and runs a root command on each; fails on an empty
/// list and on any host it cannot reach.
/// Run with `BOOTSTRAP_TESTBED_DIR=DIR cargo test -p bootstrap --test ssh -- --ignored
/// testbed_hosts`; without the variable it fails rather than passing vacuously.
#[tokio::test]
#[ignore = "needs a running testbed; set BOOTSTRAP_TESTBED_DIR"]
async fn testbed_hosts() {
    let dir = std::env::var("BOOTSTRAP_TESTBED_DIR")
        .expect("set BOOTSTRAP_TESTBED_DIR to a `testbed up --dir` directory");
    let text = std::fs::read_to_string(Path::new(&dir).join("hosts.json")).unwrap();
    let hosts: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let targets: Vec<Target> = hosts
        .iter()
        .map(|h| Target {
            host: h["name"].as_str().unwrap().to_string(),
            address: h["address"].as_str().unwrap().to_string(),
            port: h["port"].as_u64().unwrap() as u16,
            user: h["user"].as_str().unwrap().to_string(),
            identity_file: Some(PathBuf::from(h["identity_file"].as_str().unwrap())),
            known_hosts_file: PathBuf::from(h["known_hosts"].as_str().unwrap()),
            host_key_policy: Default::default(),
            jumps: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            identities_only: false,
            certificate_file: None,
            server_alive_interval: None,
            hash_known_hosts: false,
        })
        .collect();
    assert!(!targets.is_empty(), "{dir}/hosts.json lists no host");
    let started = Instant::now();
    let results = bootstrap::ssh::connect_all(&targets, 0).await;
    println!(
        "connect_all: {} hosts in {:?}",
        results.len(),
        started.elapsed()
    );
    assert_eq!(results.len(), targets.len(), "one result per host");
    let mut unreachable = Vec::new();
    for (host, result) in results {
        match result {
            Err(e) => unreachable.push(format!("{host}: {e}")),
            Ok(conn) => {
                let out = conn
                    .run(&RemoteCommand {
                        script: "id -u; cat /etc/os-release | head -1".to_string(),
                        root: true,
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                println!("{host}: {out:?}");
                assert!(out.stdout.starts_with("0\n"), "{out:?}");
            }
        }
    }
    assert!(
        unreachable.is_empty(),
        "{} of {} hosts unreachable:\n{}",
        unreachable.len(),
        targets.len(),
        unreachable.join("\n")
    );
}
