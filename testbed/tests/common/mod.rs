//! Shared helpers of the procedure and misuse tests: running a command string on a host
//! (over OpenSSH as a person would, or through `Testbed::exec` when only the resulting
//! state matters), the reference procedure's steps as the strings a person pastes
//! (/work/shared/reference/kubeadm-on-ubuntu.md §1-§4, §6), and shortcuts that bring a host
//! to a stage ("prerequisites done", "packages installed", "control plane initialised")
//! by running those same real commands.
//!
//! These tests need root (namespaces, mounts) and the machine's OpenSSH; CI runs as root.

#![allow(dead_code)] // each test binary uses a different subset

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use testbed::Testbed;

pub mod real;

/// `check!`: the bootstrap tests' (tests/support/check.rs), one definition for both crates.
#[path = "../../../tests/support/check.rs"]
mod check;
#[allow(unused_imports)]
pub(crate) use check::check;

/// The Kubernetes release the tests install (pkgs.k8s.io package version): the REAL
/// control plane's default release (testbed::k8s::DEFAULT_RELEASE), built, so its
/// kubeadm and kubectl packages carry the real programs. `*_at` helpers take another.
pub const K8S_VERSION: &str = "1.35.4";
pub const K8S_PACKAGE_VERSION: &str = "1.35.4-1.1";
/// The pkgs.k8s.io minor repository of [`K8S_VERSION`].
pub const K8S_MINOR: &str = "1.35";
pub const CALICO_URL: &str =
    "https://raw.githubusercontent.com/projectcalico/calico/v3.30.4/manifests/calico.yaml";

/// What a command string did: exit code and both streams.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Out {
    fn from(o: Output, took: Duration) -> Out {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            took,
        }
    }

    /// stdout then stderr, for "the text contains ..." checks.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Asserts the exit code and that `texts` all appear in stdout or stderr.
    #[track_caller]
    pub fn expect(&self, what: &str, code: i32, texts: &[&str]) -> &Self {
        assert_eq!(
            self.code, code,
            "{what}: exit code {} (expected {code})\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        let all = self.all();
        for t in texts {
            assert!(
                all.contains(t),
                "{what}: output lacks {t:?}\n--- stdout\n{}--- stderr\n{}",
                self.stdout,
                self.stderr
            );
        }
        self
    }
}

/// A new testbed, with a readable panic when the machine can't make one.
pub fn testbed(hosts: usize, user: &str) -> Testbed {
    Testbed::builder()
        .hosts(hosts)
        .user(user)
        .build()
        .unwrap_or_else(|e| panic!("cannot build a {hosts}-host testbed: {e}"))
}

/// The host's address (what the person types into configs and join lines).
pub fn address(tb: &Testbed, host: &str) -> String {
    tb.host(host).unwrap().address
}

/// Runs one command string over OpenSSH as `user`: `ssh -i DIR/id_ed25519 -o
/// UserKnownHostsFile=DIR/known_hosts -o StrictHostKeyChecking=yes USER@ADDR 'STRING'`.
pub fn ssh(tb: &Testbed, host: &str, user: &str, command: &str) -> Out {
    let t = Instant::now();
    let o = tb
        .ssh(host, user)
        .unwrap()
        .arg(command)
        .stdin(Stdio::null())
        .output()
        .expect("the ssh client runs");
    Out::from(o, t.elapsed())
}

/// Like [`ssh`], and the command must exit 0.
#[track_caller]
pub fn ssh_ok(tb: &Testbed, host: &str, user: &str, command: &str) -> Out {
    let out = ssh(tb, host, user, command);
    assert_eq!(
        out.code, 0,
        "ssh {user}@{host} {command:?} failed with {}\n--- stdout\n{}--- stderr\n{}",
        out.code, out.stdout, out.stderr
    );
    out
}

/// Runs a bash script inside the host as root (a console login, not SSH): for setting up
/// a stage quickly. `set -e -o pipefail`, so a failing step is not silently passed over.
pub fn exec(tb: &Testbed, host: &str, script: &str) -> Out {
    let t = Instant::now();
    let full = format!("set -e -o pipefail\n{script}");
    let o = tb.exec(host, &["bash", "-c", &full]).unwrap();
    Out::from(o, t.elapsed())
}

/// Like [`exec`], and the script must exit 0.
#[track_caller]
pub fn exec_ok(tb: &Testbed, host: &str, script: &str) -> Out {
    let out = exec(tb, host, script);
    assert_eq!(
        out.code, 0,
        "on {host}: {script}\nfailed with {}\n--- stdout\n{}--- stderr\n{}",
        out.code, out.stdout, out.stderr
    );
    out
}

// ---------------------------------------------------------------------------------------
// The reference procedure, step by step, as root. (The sudo variant is in procedure.rs.)

/// §1: swap off (now and in fstab), overlay + br_netfilter (now and at boot), the sysctls.
pub const PREREQUISITES: &[&str] = &[
    "swapoff -a",
    r"sed -ri '/\sswap\s/ s/^#?/#/' /etc/fstab",
    r"printf 'overlay\nbr_netfilter\n' > /etc/modules-load.d/k8s.conf",
    "modprobe overlay && modprobe br_netfilter",
    "cat > /etc/sysctl.d/k8s.conf <<EOF
net.bridge.bridge-nf-call-iptables  = 1
net.bridge.bridge-nf-call-ip6tables = 1
net.ipv4.ip_forward                 = 1
EOF",
    "sysctl --system",
];

/// §2: Ubuntu's docker.io (and with it containerd), containerd's config regenerated with
/// the systemd cgroup driver. Testbed hosts are like cloud images, whose package lists are
/// empty until the first `apt-get update`, so that comes first.
pub const RUNTIME: &[&str] = &[
    "apt-get update",
    "DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y docker.io",
    "mkdir -p /etc/containerd",
    "containerd config default > /etc/containerd/config.toml",
    "sed -i 's/SystemdCgroup = false/SystemdCgroup = true/' /etc/containerd/config.toml",
    "systemctl restart containerd",
];

/// §3 up to `apt-get update`: the pkgs.k8s.io repository of one minor (e.g. "1.34").
pub fn k8s_repository(minor: &str) -> Vec<String> {
    vec![
        "apt-get install -y apt-transport-https ca-certificates curl gpg".into(),
        "mkdir -p -m 755 /etc/apt/keyrings".into(),
        format!(
            "curl -fsSL https://pkgs.k8s.io/core:/stable:/v{minor}/deb/Release.key \
             | gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg"
        ),
        format!(
            "echo 'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] \
             https://pkgs.k8s.io/core:/stable:/v{minor}/deb/ /' \
             > /etc/apt/sources.list.d/kubernetes.list"
        ),
        "apt-get update".into(),
    ]
}

/// §3 after the repository: the pinned packages, held, and the kubelet enabled.
pub fn k8s_packages(version: &str) -> Vec<String> {
    vec![
        format!("apt-get install -y kubelet={version} kubeadm={version} kubectl={version}"),
        "apt-mark hold kubelet kubeadm kubectl".into(),
        "systemctl enable --now kubelet".into(),
    ]
}

/// §4's kubeadm configuration (v1beta4) for a control plane `name` at `addr`. With
/// `untainted` the control plane runs ordinary pods (`taints: []`), else kubeadm puts
/// the default control-plane taint on it.
pub fn kubeadm_config(name: &str, addr: &str, untainted: bool) -> String {
    kubeadm_config_at(name, addr, untainted, K8S_VERSION)
}

/// [`kubeadm_config`] for `kubernetesVersion` `version` (e.g. "1.34.2").
pub fn kubeadm_config_at(name: &str, addr: &str, untainted: bool, version: &str) -> String {
    let taints = if untainted { "\n  taints: []" } else { "" };
    format!(
        "apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint: {{advertiseAddress: {addr}, bindPort: 6443}}
nodeRegistration:
  name: {name}
  criSocket: unix:///var/run/containerd/containerd.sock{taints}
  kubeletExtraArgs:
  - {{name: node-ip, value: {addr}}}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v{version}
controlPlaneEndpoint: \"{addr}:6443\"
networking: {{podSubnet: 192.168.0.0/16, serviceSubnet: 10.96.0.0/12}}
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
"
    )
}

/// The step that writes the config file on the host: a heredoc, as a person pastes it.
pub fn write_kubeadm_config(name: &str, addr: &str, untainted: bool) -> String {
    write_kubeadm_config_at(name, addr, untainted, K8S_VERSION)
}

/// [`write_kubeadm_config`] for `version`.
pub fn write_kubeadm_config_at(name: &str, addr: &str, untainted: bool, version: &str) -> String {
    format!(
        "cat > /root/kubeadm.yaml <<'EOF'\n{}EOF",
        kubeadm_config_at(name, addr, untainted, version)
    )
}

/// kubectl for root on the control plane (§4).
pub const ADMIN_KUBECONFIG: &str =
    "mkdir -p $HOME/.kube && cp /etc/kubernetes/admin.conf $HOME/.kube/config";

// ---------------------------------------------------------------------------------------
// Stages, reached through `Testbed::exec` with the same commands.

fn run_steps<S: AsRef<str>>(tb: &Testbed, host: &str, steps: &[S]) {
    for s in steps {
        exec_ok(tb, host, s.as_ref());
    }
}

/// §1 done.
pub fn prerequisites(tb: &Testbed, host: &str) {
    run_steps(tb, host, PREREQUISITES);
}

/// §2 and §3 done (docker.io + containerd configured, kube packages installed and held,
/// kubelet enabled), but not §1.
pub fn packages_only(tb: &Testbed, host: &str) {
    packages_only_at(tb, host, K8S_VERSION);
}

/// [`packages_only`] with the packages of `version` (e.g. "1.34.2") from its minor's
/// repository.
pub fn packages_only_at(tb: &Testbed, host: &str, version: &str) {
    let minor = version.rsplit_once('.').unwrap().0;
    run_steps(tb, host, RUNTIME);
    run_steps(tb, host, &k8s_repository(minor));
    run_steps(tb, host, &k8s_packages(&format!("{version}-1.1")));
}

/// §1-§3 done: the host is ready for `kubeadm init` or `kubeadm join`.
pub fn node_ready(tb: &Testbed, host: &str) {
    node_ready_at(tb, host, K8S_VERSION);
}

/// [`node_ready`] with the packages of `version`.
pub fn node_ready_at(tb: &Testbed, host: &str, version: &str) {
    prerequisites(tb, host);
    packages_only_at(tb, host, version);
}

/// §1-§4 and §6 on `host`: an initialised control plane with kubectl for root, Calico
/// applied and the node Ready. With `untainted` it runs ordinary pods.
pub fn control_plane(tb: &Testbed, host: &str, untainted: bool) {
    control_plane_at(tb, host, untainted, K8S_VERSION);
}

/// [`control_plane`] of `version` (e.g. "1.34.2").
pub fn control_plane_at(tb: &Testbed, host: &str, untainted: bool, version: &str) {
    node_ready_at(tb, host, version);
    let addr = address(tb, host);
    exec_ok(
        tb,
        host,
        &write_kubeadm_config_at(host, &addr, untainted, version),
    );
    exec_ok(tb, host, "kubeadm init --config /root/kubeadm.yaml");
    exec_ok(tb, host, ADMIN_KUBECONFIG);
    exec_ok(tb, host, &format!("kubectl apply -f {CALICO_URL}"));
    exec_ok(
        tb,
        host,
        "kubectl wait --for=condition=Ready node --all --timeout=2m",
    );
}

/// A fresh join line from the control plane (`kubeadm token create --print-join-command`),
/// trimmed of its trailing space and newline.
pub fn join_command(tb: &Testbed, control_plane: &str) -> String {
    let out = exec_ok(
        tb,
        control_plane,
        "kubeadm token create --print-join-command",
    );
    let line = out.stdout.trim().to_string();
    assert!(
        line.starts_with("kubeadm join ") && !line.contains('\n'),
        "--print-join-command printed {:?}",
        out.stdout
    );
    line
}

/// The value of a `--flag VALUE` in a command line.
pub fn flag_value(line: &str, flag: &str) -> String {
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == flag {
            return words.next().unwrap_or_default().to_string();
        }
    }
    panic!("no {flag} in {line:?}")
}

/// Polls `f` until it returns true or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
