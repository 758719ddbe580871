//! The real Kubernetes programs built by testbed/k8s/build.sh (through
//! `testbed::real_release`): each reports the release it was built from, as the release's
//! own build would (hack/lib/version.sh), and etcd is the one kubeadm of that release pins.
//!
//! The first run builds them (see testbed/k8s/README.md for the times); later runs reuse
//! the cache. `cargo test -p testbed --test real_k8s`.

use std::process::Output;

use serde_json::Value;
use testbed::k8s::{real_release, DEFAULT_RELEASE};

fn ok(what: &str, out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn every_program_reports_the_release_it_was_built_from() {
    let k8s = real_release(DEFAULT_RELEASE).unwrap();
    let minor = DEFAULT_RELEASE.split('.').nth(1).unwrap();

    let out = k8s
        .command("kubeadm")
        .args(["version", "-o", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_str(&ok("kubeadm version", out)).unwrap();
    let info = &v["clientVersion"];
    assert_eq!(info["gitVersion"], DEFAULT_RELEASE, "{v}");
    assert_eq!(info["major"], "1", "{v}");
    assert_eq!(info["minor"], minor, "{v}");
    assert_eq!(info["compiler"], "gc", "{v}");

    let out = k8s
        .command("kubectl")
        .args(["version", "--client", "-o", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_str(&ok("kubectl version", out)).unwrap();
    assert_eq!(v["clientVersion"]["gitVersion"], DEFAULT_RELEASE, "{v}");
    assert_eq!(v["clientVersion"]["minor"], minor, "{v}");

    for c in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        let out = k8s.command(c).arg("--version").output().unwrap();
        assert_eq!(
            ok(c, out).trim(),
            format!("Kubernetes {DEFAULT_RELEASE}"),
            "{c} --version"
        );
    }
}

/// kubeadm names its etcd image `registry.k8s.io/etcd:X.Y.Z-N`; the built etcd is X.Y.Z.
#[test]
fn etcd_is_the_release_kubeadm_pins() {
    let k8s = real_release(DEFAULT_RELEASE).unwrap();
    let out = k8s
        .command("kubeadm")
        .args([
            "config",
            "images",
            "list",
            "--kubernetes-version",
            DEFAULT_RELEASE,
        ])
        .output()
        .unwrap();
    let images = ok("kubeadm config images list", out);
    let pinned = images
        .lines()
        .find_map(|l| l.strip_prefix("registry.k8s.io/etcd:"))
        .unwrap_or_else(|| panic!("no etcd image in:\n{images}"));
    let pinned = pinned.split('-').next().unwrap();

    let out = k8s.command("etcd").arg("--version").output().unwrap();
    let version = ok("etcd --version", out);
    assert!(
        version
            .lines()
            .any(|l| l == format!("etcd Version: {pinned}")),
        "kubeadm pins etcd {pinned}; the built etcd says:\n{version}"
    );
}
