//! Hosts with the machine's real apt, dpkg, curl and gpg
//! against the testbed's signed repositories over HTTPS (issue 10): Debian's apt, apt's
//! own output for the local pkgs.k8s.io, an install with the signature checked, apt's own
//! error for a tampered InRelease, and nothing written into the machine's directories.
//! Needs root, like every testbed test.

use std::process::Output;

use testbed::Testbed;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs a shell command as root over SSH (what a tool does).
fn sh(tb: &Testbed, host: &str, script: &str) -> Output {
    tb.ssh(host, "root")
        .unwrap()
        .arg(script)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn sh_ok(tb: &Testbed, host: &str, script: &str) -> String {
    let out = sh(tb, host, script);
    assert!(
        out.status.success(),
        "{script}: {}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout) + &text(&out.stderr)
}

const ADD_K8S_REPO: &str = "set -e
install -m 0755 -d /etc/apt/keyrings
curl -fsSL https://pkgs.k8s.io/core:/stable:/v1.35/deb/Release.key | gpg --dearmor -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg
echo 'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.35/deb/ /' > /etc/apt/sources.list.d/kubernetes.list
";

#[test]
fn real_apt_installs_from_the_local_signed_repositories() {
    let tb = Testbed::builder()
        .hosts(1)
        .name_prefix("pkgreal")
        .build()
        .expect("testbed");
    let h = "pkgreal1";

    // Debian's apt, dpkg, curl and gpg: the machine's programs, not stand-ins. What is
    // first on PATH is the audit log's link, which runs /usr/bin/NAME and records it.
    let names = [
        "apt-get",
        "dpkg",
        "curl",
        "gpg",
        "apt-cache",
        "apt-mark",
        "dpkg-query",
    ];
    let which = sh_ok(&tb, h, &format!("command -v {}", names.join(" ")));
    let links: Vec<String> = names
        .iter()
        .map(|n| format!("/usr/local/sbin/{n}"))
        .collect();
    assert_eq!(which.lines().collect::<Vec<_>>(), links);
    let mark = tb.audit(h).unwrap().len();
    assert_eq!(
        sh_ok(&tb, h, "apt-get --version"),
        sh_ok(&tb, h, "/usr/bin/apt-get --version")
    );
    let ran: Vec<_> = tb.audit(h).unwrap()[mark..]
        .iter()
        .filter(|r| r.kind == "cmd")
        .map(|r| (r.argv.clone(), r.exit))
        .collect();
    assert_eq!(
        ran,
        [(vec!["apt-get".to_string(), "--version".into()], Some(0))]
    );
    assert!(sh_ok(&tb, h, "apt-get --version").starts_with("apt 2."));

    // A fresh server: empty lists, none of the cluster's packages.
    let lists = sh_ok(&tb, h, "ls /var/lib/apt/lists");
    assert!(!lists.contains("Packages"), "{lists}");
    let out = sh(&tb, h, "dpkg-query -W docker.io containerd runc kubelet kubeadm kubectl cri-tools kubernetes-cni conntrack");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert_eq!(
        sh_ok(&tb, h, "dpkg-query -W -f='${Version}' curl"),
        "8.5.0-2ubuntu10.6"
    );

    // The Ubuntu archive (HTTP, signed) and pkgs.k8s.io (HTTPS with the testbed CA).
    let update = sh_ok(&tb, h, "apt-get update");
    assert!(
        update.contains("http://archive.ubuntu.com/ubuntu noble-updates InRelease"),
        "{update}"
    );
    sh_ok(&tb, h, ADD_K8S_REPO);
    let update = sh_ok(&tb, h, "apt-get update");
    assert!(
        update.contains("https://pkgs.k8s.io/core:/stable:/v1.35/deb  InRelease"),
        "{update}"
    );
    let policy = sh_ok(&tb, h, "apt-cache policy kubeadm");
    assert!(
        policy.starts_with("kubeadm:\n  Installed: (none)\n  Candidate: 1.35.4-1.1\n"),
        "{policy}"
    );
    // The repository offers the releases built on this machine, and v1.35.4 is the only
    // built 1.35.
    assert!(
        policy.ends_with("  Version table:\n     1.35.4-1.1 500\n        500 https://pkgs.k8s.io/core:/stable:/v1.35/deb  Packages\n"),
        "{policy}"
    );

    let install = sh_ok(
        &tb,
        h,
        "DEBIAN_FRONTEND=noninteractive apt-get install -y kubeadm=1.35.4-1.1 kubelet=1.35.4-1.1",
    );
    assert!(
        install.contains("Setting up kubeadm (1.35.4-1.1) ..."),
        "{install}"
    );
    assert_eq!(
        sh_ok(&tb, h, "dpkg-query -W -f='${Package} ${db:Status-Abbrev}${Version}\\n' kubeadm kubelet cri-tools kubernetes-cni"),
        "cri-tools ii 1.35.0-1.1\nkubeadm ii 1.35.4-1.1\nkubelet ii 1.35.4-1.1\nkubernetes-cni ii 1.6.0-1.1\n"
    );
    // The payload is the testbed's program for it, and the package's files are where
    // dpkg put them: in the host, never in the machine's own /usr/lib.
    assert!(sh_ok(&tb, h, "kubeadm version -o short").starts_with("v1.35.4"));
    sh_ok(&tb, h, "test -f /usr/lib/systemd/system/kubelet.service && test -f /lib/systemd/system/kubelet.service.d/10-kubeadm.conf");
    assert!(!std::path::Path::new("/usr/lib/systemd/system/kubelet.service").exists());
    assert!(!std::path::Path::new("/usr/lib/systemd/system/kubelet.service.d").exists());
    // kubelet's postinst: enabled by the preset, not started.
    assert_eq!(
        sh_ok(&tb, h, "systemctl is-enabled kubelet").trim(),
        "enabled"
    );

    // A tampered InRelease: apt's own handling. With earlier lists apt warns and keeps
    // them; without, the repository is refused.
    tb.repo_fault("bad-signature", "pkgs.k8s.io", true).unwrap();
    let out = sh(&tb, h, "apt-get update");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("W: An error occurred during the signature verification. The repository is not updated and the previous index files will be used. GPG error: https://pkgs.k8s.io/core:/stable:/v1.35/deb  InRelease: The following signatures were invalid: BADSIG "),
        "{err}"
    );
    let out = sh(
        &tb,
        h,
        "rm /var/lib/apt/lists/pkgs.k8s.io_* && apt-get update",
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(100), "{err}");
    assert!(
        err.contains("E: The repository 'https://pkgs.k8s.io/core:/stable:/v1.35/deb  InRelease' is not signed."),
        "{err}"
    );
    // Refused: apt knows kubeadm only from dpkg's database now.
    let policy = sh_ok(&tb, h, "apt-cache policy kubeadm");
    assert!(!policy.contains("pkgs.k8s.io"), "{policy}");
    tb.repo_fault("bad-signature", "pkgs.k8s.io", false)
        .unwrap();
    sh_ok(&tb, h, "apt-get update");
    assert!(sh_ok(&tb, h, "apt-cache policy kubeadm")
        .contains("500 https://pkgs.k8s.io/core:/stable:/v1.35/deb  Packages"));
}
