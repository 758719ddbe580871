//! End-to-end tests of the host manager: real namespaces, overlays and OpenSSH. They need
//! root (CI runs them as root) and the machine's openssh-server, openssh-client and sudo.
//! Nothing here depends on the stand-ins' behaviour.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use testbed::{HostEntry, Os, Testbed};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `command` over SSH as `user` with strict host key checking.
fn ssh(tb: &Testbed, host: &str, user: &str, command: &str) -> Output {
    tb.ssh(host, user)
        .unwrap()
        .arg(command)
        .stdin(Stdio::null())
        .output()
        .expect("ssh runs")
}

/// Like [`ssh`] but the command must succeed; returns trimmed stdout.
fn ssh_ok(tb: &Testbed, host: &str, user: &str, command: &str) -> String {
    let out = ssh(tb, host, user, command);
    assert!(
        out.status.success(),
        "ssh {user}@{host} {command:?} failed ({}): {}",
        out.status,
        text(&out.stderr)
    );
    text(&out.stdout).trim().to_string()
}

fn port_22_answers(address: &str) -> bool {
    let addr: SocketAddr = format!("{address}:22").parse().unwrap();
    match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        Ok(mut s) => {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).is_ok() && &buf == b"SSH-"
        }
        Err(_) => false,
    }
}

#[test]
fn three_hosts_reachable_by_ssh_as_root_and_ubuntu() {
    let tb = Testbed::builder().hosts(3).build().unwrap();
    let hosts = tb.hosts();
    assert_eq!(
        hosts.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(),
        ["node1", "node2", "node3"]
    );
    // hosts.json is what a tool under test reads.
    let json: Vec<HostEntry> =
        serde_json::from_str(&std::fs::read_to_string(tb.hosts_json()).unwrap()).unwrap();
    assert_eq!(json, hosts);
    for h in &hosts {
        assert_eq!(h.port, 22);
        assert_eq!(h.user, "root");
        assert!(h.identity_file.exists() && h.known_hosts.exists());
        assert_eq!(ssh_ok(&tb, &h.name, "root", "uname -n"), h.name);
        assert_eq!(ssh_ok(&tb, &h.name, "root", "id -u"), "0");
        assert_eq!(
            ssh_ok(
                &tb,
                &h.name,
                "root",
                ". /etc/os-release; echo $ID $ID_LIKE $VERSION_ID $VERSION_CODENAME $UBUNTU_CODENAME"
            ),
            "ubuntu debian 24.04 noble noble"
        );
        assert_eq!(
            ssh_ok(&tb, &h.name, "ubuntu", "id -un; id -u"),
            "ubuntu\n1000"
        );
        // Passwordless sudo, and sudo's secure_path puts the stand-ins first.
        assert_eq!(ssh_ok(&tb, &h.name, "ubuntu", "sudo -n id -u"), "0");
        assert!(ssh_ok(&tb, &h.name, "ubuntu", "sudo -n sh -c 'echo $PATH'")
            .starts_with("/usr/local/sbin:"));
    }
}

#[test]
fn fresh_server_files() {
    let tb = Testbed::builder().hosts(1).build().unwrap();
    let fstab = ssh_ok(&tb, "node1", "root", "cat /etc/fstab");
    assert!(fstab
        .lines()
        .any(|l| l == "/swap.img       none    swap    sw      0       0"));
    assert_eq!(
        ssh_ok(&tb, "node1", "root", "ls /etc/apt/sources.list.d"),
        "ubuntu.sources"
    );
    let out = ssh(
        &tb,
        "node1",
        "root",
        "ls /etc/modules-load.d/k8s.conf /etc/sysctl.d/k8s.conf /etc/kubernetes /usr/bin/kubectl",
    );
    assert!(!out.status.success());
    assert_eq!(
        ssh_ok(
            &tb,
            "node1",
            "root",
            "test -L /etc/os-release || echo regular"
        ),
        "regular"
    );
    assert_eq!(ssh_ok(&tb, "node1", "root", "cat /etc/hostname"), "node1");
    // Base stand-ins shadow the real commands.
    assert_eq!(
        ssh_ok(&tb, "node1", "root", "readlink /usr/local/sbin/apt-get"),
        testbed::layout::SIM_BIN
    );
    // The machine's other host keys are not the host's.
    assert_eq!(
        ssh_ok(
            &tb,
            "node1",
            "root",
            "ls /etc/ssh/ | grep ^ssh_host_ | tr '\\n' ' '"
        ),
        "ssh_host_ed25519_key ssh_host_ed25519_key.pub"
    );
    assert_eq!(
        text(&tb.read_file("node1", "/etc/hostname").unwrap()).trim(),
        "node1"
    );
}

/// The cgroup view of an Ubuntu 22.04/24.04 server: the unified cgroup v2 hierarchy at
/// /sys/fs/cgroup (what libcontainer's IsCgroup2UnifiedMode and the kubelet stand-in test)
/// whose root lists the controllers kubeadm's SystemVerification requires (cpu, cpuset,
/// memory, pids: system-validators cgroup_validator.go). A machine booted pure v2 shows
/// its own list; a hybrid one gets Ubuntu's (STANDINS-os.md).
#[test]
fn cgroup_v2_with_the_controllers_of_an_ubuntu_server() {
    let tb = Testbed::builder().hosts(1).build().unwrap();
    assert_eq!(
        ssh_ok(&tb, "node1", "root", "stat -f -c %T /sys/fs/cgroup"),
        "cgroup2fs"
    );
    let controllers = ssh_ok(
        &tb,
        "node1",
        "root",
        "cat /sys/fs/cgroup/cgroup.controllers",
    );
    let listed: Vec<&str> = controllers.split_whitespace().collect();
    for c in ["cpu", "cpuset", "memory", "pids"] {
        assert!(listed.contains(&c), "{c} not in {controllers:?}");
    }
    // Not writable through the view: the file is the kernel's read-only list.
    assert!(!ssh(
        &tb,
        "node1",
        "root",
        "echo x > /sys/fs/cgroup/cgroup.controllers"
    )
    .status
    .success());
}

/// /proc/swaps is the simulated kernel's table, as programs that read it directly (the
/// real kubeadm's preflight Swap check, the kubelet) see it: a fresh server's /swap.img
/// is on, `swapoff -a` empties the table, `swapon -a` fills it again; the file is
/// read-only like the kernel's.
#[test]
fn proc_swaps_follows_swapoff_and_swapon() {
    let tb = Testbed::builder().hosts(1).build().unwrap();
    let table = |tb: &Testbed| ssh_ok(tb, "node1", "root", "cat /proc/swaps");
    let on = table(&tb);
    assert!(on.starts_with("Filename"), "{on}");
    assert!(
        on.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("/swap.img ")),
        "{on}"
    );
    ssh_ok(&tb, "node1", "root", "swapoff -a");
    assert_eq!(table(&tb).lines().count(), 1, "{}", table(&tb));
    ssh_ok(&tb, "node1", "root", "swapon -a");
    assert_eq!(table(&tb), on);
    assert!(!ssh(&tb, "node1", "root", "echo x > /proc/swaps")
        .status
        .success());
}

#[test]
fn releases_are_selectable_per_testbed_and_per_host() {
    let tb = Testbed::builder()
        .hosts(3)
        .os(Os::Ubuntu2204)
        .host_os("node3", Os::Debian12)
        .build()
        .unwrap();
    for (host, want, sources) in [
        ("node1", "ubuntu 22.04 jammy", "/etc/apt/sources.list"),
        ("node2", "ubuntu 22.04 jammy", "/etc/apt/sources.list"),
        (
            "node3",
            "debian 12 bookworm",
            "/etc/apt/sources.list.d/debian.sources",
        ),
    ] {
        assert_eq!(
            ssh_ok(
                &tb,
                host,
                "root",
                ". /etc/os-release; echo $ID $VERSION_ID $VERSION_CODENAME"
            ),
            want
        );
        ssh_ok(&tb, host, "root", &format!("test -s {sources}"));
    }
    // The stand-ins are told too.
    let config: testbed::layout::HostConfig = serde_json::from_slice(
        &tb.read_file("node3", "/usr/local/lib/testbed/host.json")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(config.os, "debian-12");
    assert!(Testbed::builder()
        .hosts(2)
        .host_os("node9", Os::Debian12)
        .build()
        .is_err());
}

#[test]
fn sudo_password_option_makes_sudo_n_fail() {
    let tb = Testbed::builder()
        .hosts(1)
        .user("ubuntu")
        .sudo_password(true)
        .build()
        .unwrap();
    assert_eq!(tb.hosts()[0].user, "ubuntu");
    let out = ssh(&tb, "node1", "ubuntu", "sudo -n true");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("sudo: a password is required"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn files_are_private_to_each_host() {
    let tb = Testbed::builder().hosts(2).build().unwrap();
    let marker = format!("/etc/testbed-marker-{}", std::process::id());
    ssh_ok(&tb, "node1", "root", &format!("echo node1 > {marker}"));
    assert_eq!(
        ssh_ok(&tb, "node1", "root", &format!("cat {marker}")),
        "node1"
    );
    let out = ssh(&tb, "node2", "root", &format!("cat {marker}"));
    assert!(!out.status.success(), "node2 sees node1's file");
    assert!(
        !Path::new(&marker).exists(),
        "the real machine sees a host's file"
    );
    // The user database lives in the host too.
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    assert!(!passwd.contains("ubuntu:x:1000"));
}

#[test]
fn hosts_reach_each_other_over_tcp() {
    let tb = Testbed::builder().hosts(2).build().unwrap();
    let node2 = tb.host("node2").unwrap().address;
    let banner = ssh_ok(
        &tb,
        "node1",
        "root",
        &format!("timeout 5 bash -c 'exec 3<>/dev/tcp/{node2}/22; head -c 8 <&3'"),
    );
    assert_eq!(banner, "SSH-2.0-");
}

/// `Fault::PortInUse`: a process `port-holder` listens on the port in the host's network
/// namespace (another host connects to it) until `clear_fault`, which returns once the
/// holder is gone: the port is free again at once.
#[test]
fn a_port_fault_listens_until_cleared() {
    let tb = Testbed::builder().hosts(2).build().unwrap();
    let node1 = tb.host("node1").unwrap().address;
    let connect = format!("timeout 5 bash -c 'exec 3<>/dev/tcp/{node1}/10250'");
    assert!(!ssh(&tb, "node2", "root", &connect).status.success());
    let fault = testbed::Fault::PortInUse { port: 10250 };
    tb.fault("node1", fault.clone()).unwrap();
    ssh_ok(&tb, "node2", "root", &connect);
    assert_eq!(
        ssh_ok(&tb, "node1", "root", "pgrep -x port-holder | wc -l"),
        "1"
    );
    tb.clear_fault("node1", &fault.file_name()).unwrap();
    ssh_ok(&tb, "node1", "root", "! pgrep -x port-holder");
    assert!(!ssh(&tb, "node2", "root", &connect).status.success());
}

#[test]
fn ssh_commands_are_audited_and_pass_io_through() {
    let tb = Testbed::builder().hosts(1).build().unwrap();
    let data: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let mut child = tb
        .ssh("node1", "root")
        .unwrap()
        .arg("cat; echo to-stderr >&2; exit 7")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let d = data.clone();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&d).unwrap();
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(out.stdout, data);
    assert_eq!(text(&out.stderr), "to-stderr\n");

    let audit = tb.audit("node1").unwrap();
    let rec = audit
        .iter()
        .find(|r| r.kind == "ssh")
        .expect("an ssh record");
    assert_eq!(rec.argv, ["cat; echo to-stderr >&2; exit 7"]);
    assert_eq!(rec.user, "root");
    assert!(!rec.changed && rec.exit.is_none());

    // Many parallel sessions to one host are not throttled.
    let handles: Vec<_> = (0..30)
        .map(|i| {
            let mut cmd = tb.ssh("node1", "ubuntu").unwrap();
            cmd.arg(format!("echo {i}")).stdin(Stdio::null());
            std::thread::spawn(move || cmd.output().unwrap())
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let out = h.join().unwrap();
        assert_eq!(
            text(&out.stdout).trim(),
            i.to_string(),
            "{}",
            text(&out.stderr)
        );
    }
    let audit = tb.audit("node1").unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|r| r.kind == "ssh" && r.user == "ubuntu")
            .count(),
        30
    );
}

#[test]
fn exec_runs_inside_and_passes_exit_status() {
    let tb = Testbed::builder().hosts(1).build().unwrap();
    let out = tb.exec("node1", &["sh", "-c", "uname -n; exit 5"]).unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(text(&out.stdout).trim(), "node1");
    // PID namespace: the host sees only its own processes, PID 1 being its init.
    let out = tb.exec("node1", &["cat", "/proc/1/cmdline"]).unwrap();
    assert!(
        text(&out.stdout).contains("tb-sim"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn stop_and_start_like_a_power_cycle() {
    let tb = Testbed::builder().hosts(2).build().unwrap();
    let addr = tb.host("node1").unwrap().address;
    ssh_ok(
        &tb,
        "node1",
        "root",
        "echo keep > /etc/kept; echo lost > /run/lost",
    );
    ssh_ok(
        &tb,
        "node1",
        "root",
        "rm /etc/fstab; mkdir -p /etc/apt/sources.list.d.new",
    );
    tb.stop("node1").unwrap();
    assert!(!port_22_answers(&addr), "a stopped host still answers");
    // Its disk can still be read: changed, deleted and untouched files.
    assert_eq!(text(&tb.read_file("node1", "/etc/kept").unwrap()), "keep\n");
    assert!(tb.read_file("node1", "/etc/fstab").is_err());
    assert!(
        tb.read_file("node1", "/etc/sudoers").unwrap() == std::fs::read("/etc/sudoers").unwrap(),
        "/etc/sudoers is never copied up, so it is the machine's"
    );
    assert!(text(&tb.read_file("node1", "/etc/passwd").unwrap()).contains("ubuntu:x:1000"));
    assert!(text(&tb.read_file("node1", "/etc/os-release").unwrap()).contains("noble"));
    let config: testbed::layout::HostConfig = serde_json::from_slice(
        &tb.read_file("node1", "/usr/local/lib/testbed/host.json")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (config.name.as_str(), config.address.as_str()),
        ("node1", addr.as_str())
    );
    assert!(tb.exec("node1", &["true"]).is_err());
    assert!(!tb.is_running("node1"));
    // The other host is unaffected.
    ssh_ok(&tb, "node2", "root", "true");

    tb.start("node1").unwrap();
    assert!(port_22_answers(&addr));
    // Same host key (strict known_hosts still accepts it), disk kept, /run fresh.
    assert_eq!(ssh_ok(&tb, "node1", "root", "cat /etc/kept"), "keep");
    let out = ssh(&tb, "node1", "root", "cat /run/lost");
    assert!(!out.status.success(), "/run survived a reboot");
    assert!(tb.start("node1").is_err(), "starting a running host");
}

#[test]
fn freeze_makes_a_host_hang_until_thawed() {
    let tb = Testbed::builder().hosts(1).build().unwrap();
    tb.freeze("node1").unwrap();
    let out = tb
        .ssh("node1", "root")
        .unwrap()
        .args(["-o", "ConnectTimeout=2", "true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("timed out"),
        "{}",
        text(&out.stderr)
    );
    tb.thaw("node1").unwrap();
    ssh_ok(&tb, "node1", "root", "true");
}

#[test]
fn replaced_host_key_is_refused_by_a_strict_client() {
    let tb = Testbed::builder().hosts(1).build().unwrap();
    ssh_ok(&tb, "node1", "root", "true");
    tb.replace_host_key("node1").unwrap();
    let out = ssh(&tb, "node1", "root", "true");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "{err}"
    );
}

/// Everything a testbed made, as seen from the root namespace.
fn leftovers(tb_dir: &Path, bridge: &str, netns: &[String], pids: &[i32]) -> Vec<String> {
    let mut left = vec![];
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    for n in netns {
        if text(&ns.stdout)
            .lines()
            .any(|l| l.split_whitespace().next() == Some(n))
        {
            left.push(format!("netns {n}"));
        }
    }
    let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    for l in text(&links.stdout).lines() {
        let name = l.split(':').nth(1).unwrap_or("").trim();
        let name = name.split('@').next().unwrap_or("");
        if name == bridge || name.starts_with(&format!("{bridge}-")) {
            left.push(format!("link {name}"));
        }
    }
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    for m in mounts.lines() {
        if m.contains(&*tb_dir.to_string_lossy())
            || netns
                .iter()
                .any(|n| m.contains(&format!("/run/netns/{n} ")))
        {
            left.push(format!("mount {m}"));
        }
    }
    for p in pids {
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
            if !stat.contains(") Z") {
                let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                left.push(format!("process {p}: {stat} {}", text(&cmdline)));
            }
        }
    }
    if tb_dir.exists() {
        left.push(format!("directory {}", tb_dir.display()));
    }
    left
}

fn snapshot(tb: &Testbed) -> (std::path::PathBuf, String, Vec<String>, Vec<i32>) {
    let mut netns = vec![];
    let mut pids = vec![];
    for h in tb.hosts() {
        let s = tb.host_state(&h.name).unwrap();
        netns.push(s.netns);
        pids.push(s.init_pid.unwrap());
        // Also the sshd and anything else inside.
        let out = tb.exec(&h.name, &["true"]).unwrap();
        assert!(out.status.success());
    }
    (tb.dir().to_path_buf(), tb.bridge(), netns, pids)
}

#[test]
fn drop_leaves_nothing_behind() {
    let tb = Testbed::builder().hosts(2).build().unwrap();
    // A session that is still running when the testbed goes away.
    let mut session = tb
        .ssh("node1", "root")
        .unwrap()
        .arg("sleep 600")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (dir, bridge, netns, pids) = snapshot(&tb);
    assert!(
        leftovers(&dir, &bridge, &netns, &[]).len() >= 3,
        "snapshot sees the testbed"
    );
    drop(tb);
    let left = leftovers(&dir, &bridge, &netns, &pids);
    assert!(left.is_empty(), "left behind: {left:#?}");
    let _ = session.kill();
    let _ = session.wait();
}

#[test]
fn a_panic_in_a_test_still_tears_down() {
    let (tx, rx) = std::sync::mpsc::channel();
    let r = std::thread::spawn(move || {
        let tb = Testbed::builder().hosts(1).build().unwrap();
        tx.send(snapshot(&tb)).unwrap();
        panic!("test failure while the testbed is up");
    })
    .join();
    assert!(r.is_err());
    let (dir, bridge, netns, pids) = rx.recv().unwrap();
    let left = leftovers(&dir, &bridge, &netns, &pids);
    assert!(left.is_empty(), "left behind: {left:#?}");
}

#[test]
fn cli_up_exec_down() {
    let dir = std::env::temp_dir().join(format!("testbed-cli-{}", std::process::id()));
    let bin = env!("CARGO_BIN_EXE_testbed");
    let run = |args: &[&str]| Command::new(bin).args(args).output().expect("testbed runs");
    let d = dir.to_str().unwrap();
    let out = run(&[
        "up",
        "--hosts",
        "2",
        "--dir",
        d,
        "--name-prefix",
        "cp",
        "--os",
        "ubuntu-22.04",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let hosts: Vec<HostEntry> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("hosts.json")).unwrap()).unwrap();
    assert_eq!(hosts[1].name, "cp2");
    let out = run(&[
        "exec",
        "--dir",
        d,
        "cp2",
        "--",
        "sh",
        "-c",
        "uname -n; exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(text(&out.stdout).trim(), "cp2");
    let out = run(&["exec", "--dir", d, "cp3", "--", "true"]);
    assert!(
        text(&out.stderr).contains("no host named \"cp3\""),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["down", "--dir", d]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!dir.join("hosts").exists() && !dir.join("testbed.json").exists());
    let _ = std::fs::remove_dir(&dir);
}

/// Not a test of its own: the process that `testbeds_of_killed_processes_are_reaped`
/// starts and kills. Does nothing unless that test set TESTBED_HELPER_OUT.
#[test]
#[ignore = "helper process, run by testbeds_of_killed_processes_are_reaped"]
fn helper_build_and_hang() {
    let Some(out) = std::env::var_os("TESTBED_HELPER_OUT") else {
        return;
    };
    let tb = Testbed::builder().hosts(2).build().unwrap();
    let snap = snapshot(&tb);
    std::fs::write(&out, serde_json::to_string(&snap).unwrap()).unwrap();
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn testbeds_of_killed_processes_are_reaped() {
    let out = std::env::temp_dir().join(format!("testbed-helper-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&out);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "helper_build_and_hang",
            "--nocapture",
        ])
        .env("TESTBED_HELPER_OUT", &out)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !out.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "helper never built its testbed"
        );
        assert!(child.try_wait().unwrap().is_none(), "helper exited early");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(100));
    let (dir, bridge, netns, pids): (std::path::PathBuf, String, Vec<String>, Vec<i32>) =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let _ = std::fs::remove_file(&out);
    // SIGKILL: no Drop runs, the hosts stay.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!leftovers(&dir, &bridge, &netns, &pids).is_empty());
    // The next testbed built on this machine removes them (or another test's build did).
    let _tb = Testbed::builder().hosts(1).build().unwrap();
    let start = std::time::Instant::now();
    loop {
        let left = leftovers(&dir, &bridge, &netns, &pids);
        if left.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not reaped: {left:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
