//! What the archives offer: the distro archive of each simulated OS and the pkgs.k8s.io
//! repositories (one per Kubernetes minor), with the packages' real names, versions and
//! Depends, and what each package carries (its commands, files, maintainer scripts).
//! `repo-build` makes the .deb files and signed indexes from this.

/// One binary package as the archive describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Package {
    pub name: String,
    pub version: String,
    /// Debian `Depends:` syntax, e.g. "containerd (>= 1.7.1~), runc".
    pub depends: String,
    pub recommends: String,
    /// Archive section path for madison/policy ("noble-updates/universe").
    pub component: String,
}

/// Commands a package puts in /usr/bin (linked to the stand-in binary by apt-get).
pub fn commands(pkg: &str) -> &'static [&'static str] {
    match pkg {
        "docker.io" => &["docker", "dockerd"],
        "containerd" => &["containerd", "ctr", "containerd-shim-runc-v2"],
        "runc" => &["runc"],
        "kubeadm" => &["kubeadm"],
        "kubelet" => &["kubelet"],
        "kubectl" => &["kubectl"],
        "cri-tools" => &["crictl"],
        "conntrack" => &["conntrack"],
        "socat" => &["socat"],
        "jq" => &["jq"],
        "ebtables" => &["ebtables"],
        "tini" => &["tini"],
        "ethtool" => &["ethtool"],
        _ => &[],
    }
}

/// Where a package's command lives on Ubuntu (administration tools in /usr/sbin).
pub fn command_dir(cmd: &str) -> &'static str {
    match cmd {
        "ethtool" | "conntrack" | "ebtables" => "/usr/sbin",
        _ => "/usr/bin",
    }
}

/// Other files a package installs (created empty or as links; removed on purge).
pub fn extra_files(pkg: &str) -> &'static [&'static str] {
    match pkg {
        "kubernetes-cni" => &[
            "/opt/cni/bin/bridge",
            "/opt/cni/bin/host-local",
            "/opt/cni/bin/loopback",
            "/opt/cni/bin/portmap",
            "/opt/cni/bin/bandwidth",
            "/opt/cni/bin/firewall",
            "/opt/cni/bin/tuning",
        ],
        _ => &[],
    }
}

/// Seconds a real install of the package takes (download + unpack + postinst), before
/// the host's time scale: docker.io with its dependencies ~25 s, kubelet + kubeadm +
/// kubectl with theirs ~10 s.
pub fn install_seconds(pkg: &str) -> f64 {
    match pkg {
        "docker.io" => 18.0,
        "containerd" => 5.0,
        "runc" => 1.0,
        "kubelet" => 3.0,
        "kubeadm" => 2.0,
        "kubectl" => 2.0,
        "cri-tools" | "kubernetes-cni" => 1.0,
        _ => 0.5,
    }
}

/// True for packages whose postinst reloads systemd (debhelper); pkgs.k8s.io packages
/// don't, so upgrading the kubelet leaves systemd warning until `daemon-reload`.
pub fn reloads_systemd(pkg: &str) -> bool {
    !matches!(
        pkg,
        "kubelet" | "kubeadm" | "kubectl" | "cri-tools" | "kubernetes-cni"
    )
}

/// Packages whose maintainer scripts act on systemd units (enable, start, purge).
pub fn has_maintainer_scripts(pkg: &str) -> bool {
    matches!(pkg, "containerd" | "docker.io" | "kubelet")
}

struct Row(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

/// The distro archive per OS: (package, version, component, depends, recommends).
fn distro_rows(os: &str) -> Vec<Row> {
    match os {
        "ubuntu-22.04" => vec![
            Row(
                "docker.io",
                "24.0.7-0ubuntu2~22.04.1",
                "jammy-updates/universe",
                "adduser, containerd (>= 1.6.24~), iptables, runc (>= 1.1.0~), tini (>= 0.19.0)",
                "ca-certificates, git, pigz",
            ),
            Row(
                "containerd",
                "1.7.12-0ubuntu2~22.04.1",
                "jammy-updates/main",
                "runc (>= 1.1.0~)",
                "",
            ),
            Row(
                "runc",
                "1.1.12-0ubuntu2~22.04.1",
                "jammy-updates/main",
                "",
                "",
            ),
            Row("tini", "0.19.0-1", "jammy/universe", "", ""),
            Row("iptables", "1.8.7-1ubuntu5.2", "jammy-updates/main", "", ""),
            Row(
                "curl",
                "7.81.0-1ubuntu1.18",
                "jammy-updates/main",
                "ca-certificates",
                "",
            ),
            Row("gpg", "2.2.27-3ubuntu2.1", "jammy-updates/main", "", ""),
            Row(
                "gnupg",
                "2.2.27-3ubuntu2.1",
                "jammy-updates/main",
                "gpg",
                "",
            ),
            Row(
                "ca-certificates",
                "20240203~22.04.1",
                "jammy-updates/main",
                "",
                "",
            ),
            Row(
                "apt-transport-https",
                "2.4.13",
                "jammy-updates/universe",
                "",
                "",
            ),
            Row("conntrack", "1:1.4.6-2build2", "jammy/main", "", ""),
            Row("socat", "1.7.4.1-3ubuntu4", "jammy/main", "", ""),
            Row("ebtables", "2.0.11-4build2", "jammy/main", "", ""),
            Row("ethtool", "1:5.16-1ubuntu0.1", "jammy-updates/main", "", ""),
            Row("jq", "1.6-2.1ubuntu3", "jammy/main", "", ""),
            Row("git", "1:2.34.1-1ubuntu1.11", "jammy-updates/main", "", ""),
            Row("pigz", "2.6-1", "jammy/universe", "", ""),
            Row("adduser", "3.118ubuntu5", "jammy/main", "", ""),
            Row("iproute2", "5.15.0-1ubuntu2", "jammy/main", "", ""),
            Row(
                "util-linux",
                "2.37.2-4ubuntu3.4",
                "jammy-updates/main",
                "",
                "",
            ),
            Row("mount", "2.37.2-4ubuntu3.4", "jammy-updates/main", "", ""),
            Row(
                "containernetworking-plugins",
                "0.9.1+ds1-1ubuntu0.1",
                "jammy-updates/universe",
                "",
                "",
            ),
        ],
        "debian-12" => vec![
            Row(
                "docker.io",
                "20.10.24+dfsg1-1+deb12u1",
                "bookworm/main",
                "adduser, containerd (>= 1.4~), iptables, runc (>= 1.0.0~rc10~), tini (>= 0.14.0)",
                "ca-certificates, git, pigz",
            ),
            Row(
                "containerd",
                "1.6.20~ds1-1+b1",
                "bookworm/main",
                "runc (>= 1.0.0~rc2~)",
                "",
            ),
            Row("runc", "1.1.5+ds1-1+deb12u1", "bookworm/main", "", ""),
            Row("tini", "0.19.0-1", "bookworm/main", "", ""),
            Row("iptables", "1.8.9-2", "bookworm/main", "", ""),
            Row(
                "curl",
                "7.88.1-10+deb12u8",
                "bookworm/main",
                "ca-certificates",
                "",
            ),
            Row("gpg", "2.2.40-1.1", "bookworm/main", "", ""),
            Row("gnupg", "2.2.40-1.1", "bookworm/main", "gpg", ""),
            Row("ca-certificates", "20230311", "bookworm/main", "", ""),
            Row("apt-transport-https", "2.6.1", "bookworm/main", "", ""),
            Row("conntrack", "1:1.4.7-1+b2", "bookworm/main", "", ""),
            Row("socat", "1.7.4.4-2", "bookworm/main", "", ""),
            Row("ebtables", "2.0.11-5", "bookworm/main", "", ""),
            Row("ethtool", "1:6.1-1", "bookworm/main", "", ""),
            Row("jq", "1.6-2.1", "bookworm/main", "", ""),
            Row("git", "1:2.39.5-0+deb12u1", "bookworm/main", "", ""),
            Row("pigz", "2.6-1", "bookworm/main", "", ""),
            Row("adduser", "3.134", "bookworm/main", "", ""),
            Row("iproute2", "6.1.0-3", "bookworm/main", "", ""),
            Row("util-linux", "2.38.1-5+deb12u2", "bookworm/main", "", ""),
            Row("mount", "2.38.1-5+deb12u2", "bookworm/main", "", ""),
            Row(
                "containernetworking-plugins",
                "1.1.1+ds1-3+b5",
                "bookworm/main",
                "",
                "",
            ),
        ],
        _ => vec![
            Row(
                "docker.io",
                "24.0.7-0ubuntu4.1",
                "noble-updates/universe",
                "adduser, containerd (>= 1.7.1~), iptables, runc (>= 1.1.0~), tini (>= 0.19.0)",
                "ca-certificates, git, pigz",
            ),
            Row(
                "containerd",
                "1.7.24-0ubuntu1~24.04.2",
                "noble-updates/main",
                "runc (>= 1.1.0~)",
                "",
            ),
            Row("runc", "1.1.12-0ubuntu3.1", "noble-updates/main", "", ""),
            Row("tini", "0.19.0-1", "noble/universe", "", ""),
            Row("iptables", "1.8.10-3ubuntu2", "noble/main", "", ""),
            Row(
                "curl",
                "8.5.0-2ubuntu10.6",
                "noble-updates/main",
                "ca-certificates",
                "",
            ),
            Row("gpg", "2.4.4-2ubuntu17", "noble/main", "", ""),
            Row("gnupg", "2.4.4-2ubuntu17", "noble/main", "gpg", ""),
            Row("ca-certificates", "20240203", "noble/main", "", ""),
            Row(
                "apt-transport-https",
                "2.7.14build2",
                "noble/universe",
                "",
                "",
            ),
            Row("conntrack", "1:1.4.8-1ubuntu1", "noble/main", "", ""),
            Row("socat", "1.8.0.0-4build3", "noble/main", "", ""),
            Row("ebtables", "2.0.11-6build1", "noble/main", "", ""),
            Row("ethtool", "1:6.7-1build1", "noble/main", "", ""),
            Row("jq", "1.7.1-3build1", "noble/main", "", ""),
            Row("git", "1:2.43.0-1ubuntu7.1", "noble-updates/main", "", ""),
            Row("pigz", "2.8-1", "noble/universe", "", ""),
            Row("adduser", "3.137ubuntu1", "noble/main", "", ""),
            Row("iproute2", "6.1.0-1ubuntu6", "noble/main", "", ""),
            Row(
                "util-linux",
                "2.39.3-9ubuntu6.1",
                "noble-updates/main",
                "",
                "",
            ),
            Row("mount", "2.39.3-9ubuntu6.1", "noble-updates/main", "", ""),
            Row(
                "containernetworking-plugins",
                "1.1.1+ds1-3ubuntu0.24.04.1",
                "noble-updates/universe",
                "",
                "",
            ),
        ],
    }
}

/// Packages a fresh server install of `os` has.
pub const BASE_PACKAGES: &[&str] = &[
    "adduser",
    "ca-certificates",
    "curl",
    "gpg",
    "gnupg",
    "iptables",
    "ethtool",
    "git",
    "iproute2",
    "util-linux",
    "mount",
];

/// The distro archive of `os` after a later stable update (`Testbed::publish_ubuntu_update`):
/// a newer docker.io in -updates, the older one gone from the archive, as Ubuntu's SRU
/// publishing replaces a package. Only with the real package tools.
pub fn distro_updated(os: &str) -> Vec<Package> {
    let newer = match os {
        "ubuntu-22.04" => "27.5.1-0ubuntu3~22.04.2",
        _ => "27.5.1-0ubuntu3~24.04.2",
    };
    distro(os)
        .into_iter()
        .map(|mut p| {
            if p.name == "docker.io" {
                p.version = newer.into();
            }
            p
        })
        .collect()
}

/// The distro archive's packages for `os`.
pub fn distro(os: &str) -> Vec<Package> {
    distro_rows(os)
        .into_iter()
        .map(|r| Package {
            name: r.0.into(),
            version: r.1.into(),
            component: r.2.into(),
            depends: r.3.into(),
            recommends: r.4.into(),
        })
        .collect()
}

/// The packages of the pkgs.k8s.io repository `v1.<minor>` offering the patch releases
/// `patches` of that minor: the releases the testbed has built (testbed/k8s/), whose
/// kubeadm and kubectl packages carry the real programs. A release that is not built has
/// no package: nothing here stands in for kubeadm or kubectl.
pub fn k8s_repo(minor: u32, patches: &[u32]) -> Vec<Package> {
    let comp = String::new();
    let mut out = Vec::new();
    for p in patches {
        let v = format!("1.{minor}.{p}-1.1");
        let kubelet_deps = if minor >= 35 {
            "iptables (>= 1.4.21), kubernetes-cni (>= 1.1.1), iproute2, socat, util-linux, mount, ebtables"
        } else {
            "iptables (>= 1.4.21), kubernetes-cni (>= 1.1.1), iproute2, socat, util-linux, mount, ebtables, ethtool, conntrack"
        };
        out.push(Package {
            name: "kubeadm".into(),
            version: v.clone(),
            depends: format!("cri-tools (>= 1.{minor}.0)"),
            recommends: String::new(),
            component: comp.clone(),
        });
        out.push(Package {
            name: "kubelet".into(),
            version: v.clone(),
            depends: kubelet_deps.into(),
            recommends: String::new(),
            component: comp.clone(),
        });
        out.push(Package {
            name: "kubectl".into(),
            version: v,
            depends: String::new(),
            recommends: String::new(),
            component: comp.clone(),
        });
    }
    out.push(Package {
        name: "cri-tools".into(),
        version: format!("1.{minor}.0-1.1"),
        depends: String::new(),
        recommends: String::new(),
        component: comp.clone(),
    });
    let cni = match minor {
        ..=30 => "1.4.0-1.1",
        31..=32 => "1.5.1-1.1",
        _ => "1.6.0-1.1",
    };
    out.push(Package {
        name: "kubernetes-cni".into(),
        version: cni.into(),
        depends: String::new(),
        recommends: String::new(),
        component: comp,
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_the_given_patches_are_offered() {
        let repo = k8s_repo(36, &[1, 3]);
        for name in ["kubeadm", "kubelet", "kubectl"] {
            let versions: Vec<&str> = repo
                .iter()
                .filter(|x| x.name == name)
                .map(|x| x.version.as_str())
                .collect();
            assert_eq!(versions, ["1.36.1-1.1", "1.36.3-1.1"], "{name}");
        }
        assert!(repo
            .iter()
            .any(|x| x.name == "cri-tools" && x.version == "1.36.0-1.1"));
    }
}
