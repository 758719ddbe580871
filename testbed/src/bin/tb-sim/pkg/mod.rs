//! Stand-ins for packaging: apt-get, apt-mark, apt-cache, dpkg-query, dpkg, and the
//! curl/gpg pair used to fetch the pkgs.k8s.io signing key.

pub mod apt;
pub mod catalog;
pub mod dpkg;
pub mod lock;
pub mod net;
pub mod sources;

use crate::common::{self, PkgState};
use crate::Standin;

#[allow(unused_imports)]
pub use net::fetch_url;

pub fn lookup(name: &str) -> Option<Standin> {
    Some(match name {
        "apt-get" | "apt" => apt::apt_get,
        "apt-mark" => apt::apt_mark,
        "apt-cache" => apt::apt_cache,
        "dpkg-query" => dpkg::dpkg_query,
        "dpkg" => dpkg::dpkg,
        "curl" => net::curl,
        "gpg" => net::gpg,
        _ => return None,
    })
}

/// Records the packages a fresh server install of `os` has (first boot only, and only
/// if the simulated dpkg database does not exist yet), and empties apt's lists like a
/// cloud image's (the machine's own lists show through the /var overlay otherwise).
pub fn seed_base_system(os: &str) {
    if let Ok(rd) = std::fs::read_dir(sources::LISTS_DIR) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.contains("_Packages") || n.ends_with("Release") || n.contains("_dists_") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    // With the real package tools, provisioning wrote dpkg's own database.
    let real = crate::common::Ctx::load("boot").config.real_packages;
    if !real && !std::path::Path::new(common::DPKG_DB).exists() {
        seed_dpkg_db(os);
    }
    // The base packages' commands are on PATH, as on the real server (ethtool is not on
    // the machine the testbed runs on; kubeadm's preflight looks for it).
    for (name, p) in common::dpkg_db() {
        if p.status == "ii" && catalog::BASE_PACKAGES.contains(&name.as_str()) {
            dpkg::unpack_files(&name);
        }
    }
}

fn seed_dpkg_db(os: &str) {
    let distro = catalog::distro(os);
    let mut db = std::collections::BTreeMap::new();
    for name in catalog::BASE_PACKAGES {
        if let Some(p) = distro.iter().find(|p| p.name == *name) {
            db.insert(
                name.to_string(),
                PkgState {
                    version: p.version.clone(),
                    status: "ii".into(),
                    hold: false,
                },
            );
        }
    }
    let _ = common::save_dpkg_db(&db);
}
