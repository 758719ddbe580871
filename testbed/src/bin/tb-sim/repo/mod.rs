//! The testbed's package repositories and the server that offers them to the hosts, for
//! hosts that run the machine's real apt, dpkg, curl and gpg.
//! `repo-build` makes the files once per catalog, `repo-serve` serves them for one
//! testbed, `package-hook` is what the packages' maintainer scripts call.

pub mod build;
pub mod calico;
pub mod catalog;
pub mod serve;

use std::path::Path;

use testbed::layout;

use crate::os::{containerd, systemd};

/// `tb-sim package-hook postinst|prerm|purge PKG [OLD-VERSION]`: the systemd part of a
/// package's maintainer scripts, as debhelper's snippets do it on Ubuntu: on first
/// configuration the preset enables the units (and the distro's packages start them),
/// distro packages reload systemd; removal stops the units; purge removes the
/// enablement links.
pub fn package_hook(args: &[String]) -> i32 {
    let (Some(action), Some(pkg)) = (args.first(), args.get(1)) else {
        eprintln!("usage: tb-sim package-hook postinst|prerm|purge PKG [OLD-VERSION]");
        return 2;
    };
    match action.as_str() {
        "postinst" => {
            let fresh = args.get(2).is_none_or(|v| v.is_empty());
            postinst(pkg, fresh);
            if fresh && pkg == "kubelet" && !std::path::Path::new("/etc/default/kubelet").exists() {
                let _ = std::fs::create_dir_all("/etc/default");
                let _ = std::fs::write("/etc/default/kubelet", "KUBELET_EXTRA_ARGS=\n");
            }
        }
        "prerm" => systemd::package_removed(pkg),
        "purge" => purge_files(pkg),
        _ => {}
    }
    0
}

/// Puts the package's commands into /usr/bin (links to the stand-in) and its files.
pub fn unpack_files(pkg: &str) {
    for c in catalog::commands(pkg) {
        let link = Path::new(catalog::command_dir(c)).join(c);
        let _ = std::fs::remove_file(&link);
        let _ = std::os::unix::fs::symlink(layout::SIM_BIN, &link);
    }
    for f in catalog::extra_files(pkg) {
        if let Some(d) = Path::new(f).parent() {
            let _ = std::fs::create_dir_all(d);
        }
        let _ = std::fs::remove_file(f);
        let _ = std::os::unix::fs::symlink(layout::SIM_BIN, f);
    }
    if pkg == "kubelet" {
        for d in ["/etc/kubernetes/manifests", "/var/lib/kubelet"] {
            let _ = std::fs::create_dir_all(d);
        }
        if !Path::new("/etc/default/kubelet").exists() {
            let _ = std::fs::create_dir_all("/etc/default");
            let _ = std::fs::write("/etc/default/kubelet", "KUBELET_EXTRA_ARGS=\n");
        }
    }
    if pkg == "containerd" && !Path::new(containerd::CONFIG_PATH).exists() {
        // A conffile: shipped on first install, never overwritten once it exists.
        let _ = std::fs::create_dir_all("/etc/containerd");
        let _ = std::fs::write(containerd::CONFIG_PATH, containerd::PACKAGED_CONFIG);
    }
}

/// What the package's maintainer scripts do when it is configured.
pub fn postinst(pkg: &str, fresh: bool) {
    if catalog::reloads_systemd(pkg) {
        systemd::package_reloaded(pkg);
    }
    if !fresh {
        return;
    }
    match pkg {
        "containerd" => systemd::package_enable_start("containerd.service"),
        "docker.io" => {
            systemd::package_enable_start("docker.socket");
            systemd::package_enable_start("docker.service");
        }
        // pkgs.k8s.io's kubelet runs `%systemd_post`: the preset enables the unit (Ubuntu
        // presets enable everything) but nothing starts it until `systemctl start`,
        // `enable --now`, kubeadm, or a reboot.
        "kubelet" => systemd::package_enable("kubelet.service"),
        _ => {}
    }
}

/// Removes the package's configuration files and its systemd enablement.
pub fn purge_files(pkg: &str) {
    match pkg {
        "containerd" => {
            let _ = std::fs::remove_file(containerd::CONFIG_PATH);
            let _ = std::fs::remove_file(
                "/etc/systemd/system/multi-user.target.wants/containerd.service",
            );
        }
        "docker.io" => {
            let _ =
                std::fs::remove_file("/etc/systemd/system/multi-user.target.wants/docker.service");
            let _ = std::fs::remove_file("/etc/systemd/system/sockets.target.wants/docker.socket");
        }
        "kubelet" => {
            let _ =
                std::fs::remove_file("/etc/systemd/system/multi-user.target.wants/kubelet.service");
        }
        _ => {}
    }
}
