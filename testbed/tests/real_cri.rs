//! The REAL containerd as the CRI of a testbed host (issue 9 item 4): the `containerd`
//! package of the testbed's Ubuntu 24.04 archive carries containerd 1.7.24 built from
//! source (testbed/containerd/build.sh), which the systemd stand-in runs inside the host
//! when containerd.service starts. Real kubeadm talks CRI to it; images are preloaded with
//! the real `ctr -n k8s.io images import` of archives the testbed makes
//! (`testbed::containerd::write_image_archive`), and there is no registry, as on an
//! air-gapped site.
//!
//! Needs root, the built release (`testbed::k8s::real_release`) and the built containerd
//! (`testbed::containerd::real_containerd`); the first run builds them.
//! `cargo test -p testbed --test real_cri`.

mod common;

use common::*;
use testbed::k8s::{real_release, DEFAULT_RELEASE};

const SOCKET: &str = "unix:///var/run/containerd/containerd.sock";
const CONFIG: &str = "/etc/kubeadm/kubeadm.yaml";

/// A one-host testbed with real packages, `containerd` installed from the archive by the
/// real apt and running.
fn host_with_containerd(prefix: &str) -> (testbed::Testbed, String) {
    let tb = testbed::Testbed::builder()
        .hosts(1)
        .name_prefix(prefix)
        .real_packages(true)
        .build()
        .expect("testbed");
    let host = format!("{prefix}1");
    exec_ok(
        &tb,
        &host,
        "apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q containerd >/dev/null
systemctl is-active containerd",
    );
    (tb, host)
}

/// Imports `images` into containerd's `k8s.io` namespace (the CRI's) with the real ctr.
fn preload(tb: &testbed::Testbed, host: &str, images: &[&str]) {
    let archive = tb.dir().join("images.tar");
    testbed::containerd::write_image_archive(images, &archive).unwrap();
    let data = std::fs::read(&archive).unwrap();
    let out = tb
        .exec_with_input(
            host,
            &[
                "sh",
                "-c",
                "cat > /root/images.tar && ctr -n k8s.io images import /root/images.tar",
            ],
            Some(&data),
        )
        .unwrap();
    assert!(
        out.status.success(),
        "ctr import: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_package_runs_the_real_containerd_and_its_config_parser() {
    let (tb, h) = host_with_containerd("cri");
    // The package's programs are the real ones, of the package's version.
    let out = exec_ok(
        &tb,
        &h,
        "dpkg-query -W -f='${Version}\\n' containerd; containerd --version; ctr --version",
    );
    assert_eq!(
        out.stdout,
        "1.7.24-0ubuntu1~24.04.2\ncontainerd github.com/containerd/containerd 1.7.24 \nctr github.com/containerd/containerd 1.7.24\n"
    );
    // It serves CRI on the socket kubeadm uses, in the host's own mount namespace.
    let out = exec_ok(&tb, &h, "ctr version; ctr plugins ls | grep -w cri");
    assert!(out.stdout.contains("Version:  1.7.24"), "{}", out.stdout);
    assert!(out.stdout.contains(" ok"), "{}", out.stdout);
    // Its own `config default` (version 2, SystemdCgroup false) is what `config dump`
    // shows once it is the config file.
    exec_ok(
        &tb,
        &h,
        "containerd config default > /etc/containerd/config.toml
grep -q '^version = 2$' /etc/containerd/config.toml
grep -q 'SystemdCgroup = false' /etc/containerd/config.toml
sed -i 's/SystemdCgroup = false/SystemdCgroup = true/' /etc/containerd/config.toml
systemctl restart containerd
containerd config dump | grep -q 'SystemdCgroup = true'",
    );
    // Invalid TOML: the real parser refuses it, and so does the daemon at restart.
    exec_ok(
        &tb,
        &h,
        "echo 'version = 2\n[plugins' >> /etc/containerd/config.toml",
    );
    let out = exec(&tb, &h, "containerd config dump");
    assert_ne!(out.code, 0, "{}", out.all());
    assert!(
        out.stderr.contains("failed to load TOML"),
        "containerd config dump: {}",
        out.all()
    );
    let out = exec(&tb, &h, "systemctl restart containerd");
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr.contains(
            "Job for containerd.service failed because the control process exited with error code"
        ),
        "{}",
        out.all()
    );
    let out = exec_ok(&tb, &h, "journalctl -u containerd --no-pager | tail -n 5");
    assert!(out.stdout.contains("failed to load TOML"), "{}", out.stdout);
    // A valid file again: it starts.
    exec_ok(
        &tb,
        &h,
        "containerd config default > /etc/containerd/config.toml
systemctl restart containerd && systemctl is-active containerd",
    );
}

#[test]
fn kubeadm_preflight_checks_images_through_the_real_cri() {
    let k8s = real_release(DEFAULT_RELEASE).unwrap();
    let kubeadm = k8s.bin("kubeadm");
    let kubeadm = kubeadm.display();
    let (tb, h) = host_with_containerd("cripre");
    exec_ok(
        &tb,
        &h,
        &format!(
            "mkdir -p /etc/kubeadm && cat > {CONFIG} <<'EOF'
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
nodeRegistration:
  name: {h}
  criSocket: {SOCKET}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: {DEFAULT_RELEASE}
EOF
echo 1 > /proc/sys/net/ipv4/ip_forward"
        ),
    );
    let list = exec_ok(
        &tb,
        &h,
        &format!("{kubeadm} config images list --config {CONFIG}"),
    )
    .stdout;
    let images: Vec<&str> = list.lines().collect();
    assert_eq!(images.len(), 7, "{list}");
    let coredns = *images.iter().find(|i| i.contains("/coredns")).unwrap();
    // kubelet checks are not what this test is about (no kubelet package installed).
    let preflight = format!(
        "{kubeadm} init phase preflight --config {CONFIG} \
         --ignore-preflight-errors=SystemVerification,KubeletVersion"
    );

    // An air-gapped site where one image was not brought along: kubeadm's ImageStatus
    // finds it missing, its PullImage fails (no registry), and preflight names it.
    let present: Vec<&str> = images.iter().copied().filter(|i| *i != coredns).collect();
    preload(&tb, &h, &present);
    let out = exec_ok(&tb, &h, "ctr -n k8s.io images ls -q");
    for image in &present {
        assert!(
            out.stdout.lines().any(|l| l == *image),
            "{image}: {}",
            out.stdout
        );
    }
    let out = exec(&tb, &h, &preflight);
    eprintln!("preflight without {coredns}:\n{}", out.all());
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr.contains(&format!(
            "[ERROR ImagePull]: failed to pull image {coredns}"
        )),
        "{}",
        out.all()
    );
    for image in &present {
        assert!(
            !out.stderr.contains(&format!("image {image}:")),
            "{}",
            out.all()
        );
    }

    // With every image preloaded, the CRI checks and the image check pass.
    preload(&tb, &h, &[coredns]);
    let out = exec(&tb, &h, &preflight);
    eprintln!("preflight with every image:\n{}", out.all());
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(!out.all().contains("ERROR"), "{}", out.all());

    // The CRI image list kubeadm sees is containerd's: `kubeadm config images pull`
    // still asks the registry for each image (it pulls unconditionally) and fails here.
    let out = exec(
        &tb,
        &h,
        &format!("{kubeadm} config images pull --config {CONFIG}"),
    );
    eprintln!("images pull:\n{}", out.all());
    assert_ne!(out.code, 0, "{}", out.all());
    assert!(out.stderr.contains("failed to pull image"), "{}", out.all());

    // reset lists the runtime's pod sandboxes (none) through the same socket.
    let out = exec(
        &tb,
        &h,
        &format!("{kubeadm} reset -f --cri-socket {SOCKET} 2>&1"),
    );
    eprintln!("reset:\n{}", out.all());
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(!out.all().contains("error"), "{}", out.all());
}
