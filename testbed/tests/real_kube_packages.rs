//! The pkgs.k8s.io repository's kubeadm and kubectl packages carry the REAL programs of
//! their release (issue 9 item 2): `apt-get install kubeadm kubectl` of a built release
//! installs the binaries testbed/k8s/build.sh made, owned by their packages. The kubelet
//! package keeps the kubelet stand-in (testbed/STANDINS-kubelet-real.md); a release that
//! is not built has no packages. The real programs are in the host's
//! audit log like apt-get (their packages link /usr/local/sbin/NAME to tb-sim's `audited`).
//!
//! Needs root and the built release (`testbed::k8s::real_release`; the first run builds
//! it). `cargo test -p testbed --test real_kube_packages`.

mod common;

use common::*;
use testbed::k8s::{real_release, DEFAULT_RELEASE};

/// The sha256 of a file on this machine, as `sha256sum` prints it.
fn sha256(path: &std::path::Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// The gitVersion in `kubeadm version -o json` / `kubectl version --client -o json`.
fn git_version(json: &str, key: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    v[key]["gitVersion"]
        .as_str()
        .unwrap_or_else(|| panic!("no {key}.gitVersion in {json}"))
        .to_string()
}

#[test]
fn kubeadm_and_kubectl_packages_of_a_built_release_install_the_real_programs() {
    let k8s = real_release(DEFAULT_RELEASE).unwrap();
    let tb = testbed::Testbed::builder()
        .hosts(1)
        .name_prefix("kpkg")
        .real_kubernetes(k8s.dir().parent().unwrap())
        .build()
        .expect("testbed");
    let h = "kpkg1";
    let version = DEFAULT_RELEASE.trim_start_matches('v');
    let minor = version.rsplit_once('.').unwrap().0;
    // Cloud-image-like hosts have empty package lists until the first update.
    exec_ok(&tb, h, "apt-get update -q");
    for step in k8s_repository(minor) {
        exec_ok(&tb, h, &step);
    }
    // Nothing named kubeadm before the package (the audit link comes with it).
    exec(&tb, h, "command -v kubeadm").expect("command -v kubeadm", 1, &[]);
    exec_ok(
        &tb,
        h,
        &format!("apt-get install -y kubeadm={version}-1.1 kubectl={version}-1.1"),
    );

    // The programs are the real ones of the release, the very binaries built here.
    let out = exec_ok(&tb, h, "kubeadm version -o json");
    assert_eq!(git_version(&out.stdout, "clientVersion"), DEFAULT_RELEASE);
    let out = exec_ok(&tb, h, "kubectl version --client -o json");
    assert_eq!(git_version(&out.stdout, "clientVersion"), DEFAULT_RELEASE);
    let out = exec_ok(&tb, h, "sha256sum /usr/bin/kubeadm /usr/bin/kubectl");
    let on_host: Vec<&str> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        on_host,
        [sha256(&k8s.bin("kubeadm")), sha256(&k8s.bin("kubectl"))],
        "{}",
        out.stdout
    );
    // Owned by their packages, of the release's version.
    let out = exec_ok(
        &tb,
        h,
        "dpkg -S /usr/bin/kubeadm /usr/bin/kubectl; dpkg-query -W -f='${Package} ${Version}\\n' kubeadm kubectl",
    );
    assert_eq!(
        out.stdout,
        format!(
            "kubeadm: /usr/bin/kubeadm\nkubectl: /usr/bin/kubectl\n\
             kubeadm {version}-1.1\nkubectl {version}-1.1\n"
        )
    );
    // Real kubectl's strictness, which the stand-in lacked: an unknown flag is refused
    // with cobra's words.
    let out = exec(&tb, h, "kubectl version --client --no-such-flag");
    out.expect(
        "kubectl with an unknown flag",
        1,
        &["unknown flag: --no-such-flag"],
    );
    // Both are in the audit log like apt-get, with their arguments and exit status.
    let ran: Vec<(String, Option<i32>)> = tb
        .audit(h)
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == "cmd" && r.argv[0].starts_with("kube"))
        .map(|r| (r.argv.join(" "), r.exit))
        .collect();
    for want in [
        ("kubeadm version -o json", Some(0)),
        ("kubectl version --client -o json", Some(0)),
        ("kubectl version --client --no-such-flag", Some(1)),
    ] {
        assert!(
            ran.contains(&(want.0.to_string(), want.1)),
            "{want:?} not audited: {ran:#?}"
        );
    }

    // Only built releases are offered, each package linking the real program; a release
    // that is not built (the previous patch) has no package at all: nothing stands in for
    // kubeadm or kubectl.
    let previous = {
        let (minor, patch) = version.rsplit_once('.').unwrap();
        format!("{minor}.{}", patch.parse::<u32>().unwrap() - 1)
    };
    let releases = k8s.dir().parent().unwrap();
    assert!(
        !releases.join(format!("v{previous}/kubeadm")).exists(),
        "v{previous} is built; pick a release that is not"
    );
    exec(
        &tb,
        h,
        &format!("cd /tmp && apt-get download -q kubeadm={previous}-1.1"),
    )
    .expect(
        "a release that is not built",
        100,
        &[&format!(
            "E: Version '{previous}-1.1' for 'kubeadm' was not found"
        )],
    );
    let out = exec_ok(
        &tb,
        h,
        &format!(
            "cd /tmp && apt-get download -q kubeadm={version}-1.1 kubectl={version}-1.1 >/dev/null && \
             for d in kube*.deb; do dpkg-deb -c $d | grep -o '/usr/bin/kube.*'; done"
        ),
    );
    assert_eq!(
        out.stdout,
        format!(
            "/usr/bin/kubeadm -> {}\n/usr/bin/kubectl -> {}\n",
            k8s.bin("kubeadm").display(),
            k8s.bin("kubectl").display()
        ),
        "kubeadm and kubectl {version}"
    );
}
