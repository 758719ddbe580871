//! The REAL containerd as the CRI of a testbed host (issue 9 item 4): the `containerd`
//! package of the testbed's Ubuntu 24.04 archive carries containerd 1.7.24 built from
//! source (testbed/containerd/build.sh), which the systemd stand-in runs inside the host
//! when containerd.service starts. Real kubeadm talks CRI to it; images are preloaded with
//! the real `ctr -n k8s.io images import` of archives the testbed makes
//! (`Testbed::preload_images`) or pulled from the testbed's real registries under their
//! public names (`testbed::registries`), which an air-gapped host cannot reach.
//!
//! Needs root, the built release (`testbed::k8s::real_release`) and the built containerd
//! (`testbed::containerd::real_containerd`); the first run builds them.
//! `cargo test -p testbed --test real_cri`.

mod common;

use std::time::Duration;

use common::*;
use testbed::k8s::{real_release, DEFAULT_RELEASE};

const SOCKET: &str = "unix:///var/run/containerd/containerd.sock";
const CONFIG: &str = "/etc/kubeadm/kubeadm.yaml";

/// A one-host testbed with real packages (containerd not installed yet).
fn real_packages_host(prefix: &str) -> (testbed::Testbed, String) {
    let tb = testbed::Testbed::builder()
        .hosts(1)
        .name_prefix(prefix)
        .build()
        .expect("testbed");
    (tb, format!("{prefix}1"))
}

/// Installs `containerd` from the archive with the real apt; its postinst starts it.
fn install_containerd(tb: &testbed::Testbed, host: &str) {
    exec_ok(
        tb,
        host,
        "apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q containerd >/dev/null
systemctl is-active containerd",
    );
}

/// The images in containerd's `k8s.io` namespace, by name, sorted (without the
/// `sha256:ID` references the CRI plugin adds for each image it has seen).
fn cri_images(tb: &testbed::Testbed, host: &str) -> Vec<String> {
    let out = exec_ok(tb, host, "ctr -n k8s.io images ls -q");
    let mut images: Vec<String> = out
        .stdout
        .lines()
        .filter(|l| !l.starts_with("sha256:"))
        .map(String::from)
        .collect();
    images.sort();
    images
}

#[test]
fn the_package_runs_the_real_containerd_and_its_config_parser() {
    let (tb, h) = real_packages_host("cri");
    // A machine image that carries no container images: every testbed's hosts start with
    // the built releases' images (they stand in for the registry), so this host is given
    // none before containerd first starts.
    tb.preload_images(&h, &[]).unwrap();
    install_containerd(&tb, &h);
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
    // No image from the machine or the preload: the CRI has none.
    assert_eq!(cri_images(&tb, &h), Vec::<String>::new());
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
    let (tb, h) = real_packages_host("cripre");
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

    // An air-gapped site where one image was not brought along: the machine image carries
    // the others, imported when containerd first starts (at its install); kubeadm's
    // ImageStatus finds coredns missing, its PullImage fails (registry.k8s.io does not
    // resolve), and preflight names it.
    let present: Vec<&str> = images.iter().copied().filter(|i| *i != coredns).collect();
    tb.preload_images(&h, &present).unwrap();
    install_containerd(&tb, &h);
    tb.air_gap(&h).unwrap();
    let mut want: Vec<String> = present.iter().map(|i| i.to_string()).collect();
    want.sort();
    assert_eq!(cri_images(&tb, &h), want);
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

    // With every image there (imported into the running containerd), the CRI checks and
    // the image check pass.
    tb.preload_images(&h, &[coredns]).unwrap();
    assert_eq!(cri_images(&tb, &h).len(), 7);
    let out = exec(&tb, &h, &preflight);
    eprintln!("preflight with every image:\n{}", out.all());
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(!out.all().contains("ERROR"), "{}", out.all());

    // The CRI image list kubeadm sees is containerd's: `kubeadm config images pull`
    // still asks the registry for each image (it pulls unconditionally) and fails here,
    // off the internet.
    let out = exec(
        &tb,
        &h,
        &format!("{kubeadm} config images pull --config {CONFIG}"),
    );
    eprintln!("images pull:\n{}", out.all());
    assert_ne!(out.code, 0, "{}", out.all());
    assert!(out.stderr.contains("failed to pull image"), "{}", out.all());
    assert_eq!(tb.public_lookups(&h).unwrap(), ["registry.k8s.io"]);

    // reset lists the runtime's pod sandboxes (none) through the same socket
    // (cleanupnode.go: ListKubeContainers, then stop and remove each); with containerd
    // stopped the same call fails, which shows it is asked.
    let reset = format!("{kubeadm} reset -f --v=1 --cri-socket {SOCKET} 2>&1");
    let out = exec(&tb, &h, &reset);
    eprintln!("reset:\n{}", out.all());
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout
            .contains("[reset] Removing Kubernetes-managed containers"),
        "{}",
        out.all()
    );
    assert!(
        !out.stdout.contains("Failed to remove containers"),
        "{}",
        out.all()
    );
    let out = exec(&tb, &h, &format!("systemctl stop containerd; {reset}"));
    assert!(
        out.stdout.contains(
            "[reset] Failed to remove containers: failed to create new CRI runtime service"
        ),
        "{}",
        out.all()
    );
}

/// The real containerd's shim runs a container through the runc stand-in (tb-sim
/// os/runc.rs, STANDINS-os.md): `ctr run` creates and starts it, its process (pause's:
/// waiting until killed) in a PID namespace of its own; `ctr task kill -s SIGKILL` ends
/// it and with it every process of that namespace; `ctr task rm` and `ctr container rm`
/// remove it. containerd's default overlayfs snapshotter mounts the root filesystem:
/// /var/lib/containerd is on a plain filesystem of the host's own (`layout::DISK_DIRS`),
/// since the kernel refuses an overlayfs upperdir on the hosts' /var overlay.
#[test]
fn the_real_shim_runs_and_kills_a_container_through_the_runc_stand_in() {
    let (tb, h) = real_packages_host("runc");
    tb.preload_images(&h, &["registry.k8s.io/pause:3.10.1"])
        .unwrap();
    install_containerd(&tb, &h);
    let ctr = "ctr -n k8s.io";
    exec_ok(
        &tb,
        &h,
        // No command: the image's entrypoint, /pause. The overlayfs snapshotter's mount of
        // the root filesystem is what needs /var/lib/containerd off the /var overlay.
        &format!("{ctr} run -d registry.k8s.io/pause:3.10.1 p1"),
    );
    let out = exec_ok(&tb, &h, &format!("{ctr} task ls"));
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("p1 "))
        .unwrap_or_else(|| panic!("no task p1:\n{}", out.stdout));
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[2], "RUNNING", "{line}");
    let init = fields[1];
    // The init's child, PID 1 of the container's namespace, is the pause process.
    let out = exec_ok(
        &tb,
        &h,
        &format!(
            "child=$(tr -d ' ' < /proc/{init}/task/{init}/children); echo $child; \
             cat /proc/$child/cmdline | tr '\\0' ' '; echo; \
             readlink /proc/$child/ns/pid /proc/self/ns/pid"
        ),
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    let pause = lines[0].trim().to_string();
    assert_eq!(lines[1].trim(), "sleep infinity", "{}", out.stdout);
    assert_ne!(
        lines[2], lines[3],
        "not in a PID namespace of its own:\n{}",
        out.stdout
    );

    exec_ok(&tb, &h, &format!("{ctr} task kill -s SIGKILL p1"));
    let stopped = wait_until(Duration::from_secs(30), || {
        let ls = exec_ok(&tb, &h, &format!("{ctr} task ls")).stdout;
        ls.lines()
            .any(|l| l.starts_with("p1 ") && l.ends_with("STOPPED"))
    });
    let out = exec_ok(
        &tb,
        &h,
        &format!("{ctr} task ls; test -e /proc/{pause} && echo pause-alive; true"),
    );
    assert!(stopped, "p1 not STOPPED after SIGKILL:\n{}", out.stdout);
    assert!(!out.stdout.contains("pause-alive"), "{}", out.stdout);
    exec_ok(
        &tb,
        &h,
        &format!("{ctr} task rm p1 && {ctr} container rm p1"),
    );
    let out = exec_ok(&tb, &h, &format!("{ctr} task ls -q; {ctr} container ls -q"));
    assert_eq!(out.stdout.trim(), "", "{}", out.stdout);
}

/// The internet's container registries (`testbed::registries`: the real distribution
/// registry, one per public name, serving the testbed's catalog read-only over HTTPS with
/// a certificate of the testbed's CA): the real containerd of an online host pulls
/// through the CRI (PullImage, as the kubelet's image manager does after ImageStatus finds
/// nothing) what Calico's manifests and the tests' pods name, short names resolving to
/// Docker Hub's `library/`; an image the registry does not have fails with its not-found
/// error; and an air-gapped host cannot reach the registry at all.
///
/// The air-gapped host is another one, whose containerd never resolved a registry's name
/// while online: a running Go program keeps the /etc/hosts it read for up to 5 s (Go's
/// net/hosts.go cacheMaxAge), so right after `air_gap` the online host's containerd would
/// still resolve the name it had just looked up.
#[test]
fn an_online_host_pulls_from_the_registries_and_an_air_gapped_one_cannot() {
    let tb = testbed::Testbed::builder()
        .hosts(2)
        .name_prefix("pull")
        .build()
        .expect("testbed");
    let (h, gapped) = ("pull1", "pull2");
    for host in [h, gapped] {
        tb.preload_images(host, &[]).unwrap();
        install_containerd(&tb, host);
    }
    let cri = testbed::containerd::cri_client().unwrap();
    let cri = format!("{} -endpoint {SOCKET}", cri.display());
    let status_on =
        |host: &str, image: &str| exec_ok(&tb, host, &format!("{cri} imagestatus {image}")).stdout;
    let status = |image: &str| status_on(h, image);

    for (image, name) in [
        (
            "docker.io/calico/node:v3.30.3",
            "docker.io/calico/node:v3.30.3",
        ),
        ("nginx", "docker.io/library/nginx:latest"),
    ] {
        assert_eq!(status(image), "", "{image} present before its pull");
        let pulled = exec_ok(&tb, h, &format!("{cri} pull {image}")).stdout;
        assert!(pulled.starts_with("sha256:"), "{image}: {pulled}");
        // ImageStatus now finds it, by the name the kubelet gives and by its full name.
        assert_eq!(status(image), pulled, "{image}");
        assert_eq!(status(name), pulled, "{name}");
        assert!(cri_images(&tb, h).contains(&name.to_string()), "{name}");
    }
    // The pulls reached the registries from the host's address.
    let log =
        std::fs::read_to_string(tb.dir().join("registries/registry-1.docker.io.log")).unwrap();
    let from = format!("http.request.remoteaddr=\"{}:", address(&tb, h));
    for uri in [
        "http.request.uri=/v2/calico/node/manifests/v3.30.3",
        "http.request.uri=/v2/library/nginx/manifests/latest",
    ] {
        assert!(
            log.lines().any(|l| l.contains(uri) && l.contains(&from)),
            "no {uri} from {from}:\n{log}"
        );
    }

    // Not in the catalog: the registry answers 404 (MANIFEST_UNKNOWN), containerd's
    // resolver says "not found".
    let out = exec(&tb, h, &format!("{cri} pull docker.io/library/nosuch:1"));
    assert_eq!(out.code, 1, "{}", out.all());
    assert_eq!(
        out.stderr.trim(),
        "rpc error: code = NotFound desc = failed to pull and unpack image \"docker.io/library/nosuch:1\": failed to resolve reference \"docker.io/library/nosuch:1\": docker.io/library/nosuch:1: not found",
        "{}",
        out.all()
    );

    // Air-gapped: the registry's name does not resolve; the lookup is recorded.
    tb.air_gap(gapped).unwrap();
    let image = "docker.io/calico/node:v3.30.3";
    let out = exec(&tb, gapped, &format!("{cri} pull {image}"));
    eprintln!("air-gapped pull:\n{}", out.all());
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr.contains("dial tcp: lookup registry-1.docker.io")
            && out.stderr.contains("no such host"),
        "{}",
        out.all()
    );
    assert_eq!(status_on(gapped, image), "");
    assert_eq!(tb.public_lookups(gapped).unwrap(), ["registry-1.docker.io"]);
}
