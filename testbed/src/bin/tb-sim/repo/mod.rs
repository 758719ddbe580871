//! The testbed's package repositories and the server that offers them to the hosts, for
//! hosts that run the machine's real apt, dpkg, curl and gpg (`Builder::real_packages`).
//! `repo-build` makes the files once per catalog, `repo-serve` serves them for one
//! testbed, `package-hook` is what the packages' maintainer scripts call.

pub mod build;
pub mod serve;

use crate::os::systemd;
use crate::pkg::dpkg;

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
            dpkg::postinst(pkg, fresh);
            if fresh && pkg == "kubelet" && !std::path::Path::new("/etc/default/kubelet").exists() {
                let _ = std::fs::create_dir_all("/etc/default");
                let _ = std::fs::write("/etc/default/kubelet", "KUBELET_EXTRA_ARGS=\n");
            }
        }
        "prerm" => systemd::package_removed(pkg),
        "purge" => dpkg::purge_files(pkg),
        _ => {}
    }
    0
}
