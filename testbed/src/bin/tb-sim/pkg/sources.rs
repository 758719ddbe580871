//! apt's view of the world: configured sources (`/etc/apt/sources.list(.d)`), their
//! downloaded indexes in /var/lib/apt/lists, and the packages those make available.

use std::path::{Path, PathBuf};

use super::catalog::{self, Package};
use super::net;

pub const LISTS_DIR: &str = "/var/lib/apt/lists";

/// What kind of archive a source line points at.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// The distro archive (always available: its lists come with the install).
    Distro,
    /// A pkgs.k8s.io repository (or a mirror of one) for minor 1.N.
    K8s(u32),
    /// Anything else: unreachable from the testbed.
    Other,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub uri: String,
    pub suite: String,
    pub components: Vec<String>,
    pub signed_by: Option<String>,
    pub kind: Kind,
}

impl Source {
    /// How apt names the repository in its output: `https://host/path  InRelease` for
    /// flat repositories (suite "/"), `URI SUITE InRelease` otherwise.
    pub fn label(&self) -> String {
        if self.suite == "/" {
            format!("{} ", self.uri.trim_end_matches('/'))
        } else {
            format!("{} {}", self.uri.trim_end_matches('/'), self.suite)
        }
    }

    /// The lists file holding a flat repository's Packages index (the first of
    /// [`Source::lists_files`]).
    #[cfg(test)]
    pub fn lists_file(&self) -> PathBuf {
        self.lists_files()
            .into_iter()
            .next()
            .map(|x| x.0)
            .unwrap_or_else(|| Path::new(LISTS_DIR).join("invalid_Packages"))
    }

    /// The lists files of this source with the "suite/component" each holds ("" for a
    /// flat repository), named the way apt names them
    /// (`archive.ubuntu.com_ubuntu_dists_noble_main_binary-amd64_Packages`).
    pub fn lists_files(&self) -> Vec<(PathBuf, String)> {
        let uri = if self.uri.starts_with("mirror+") || self.uri.starts_with("mirror:") {
            // apt names a mirror list's files after the mirror it picked.
            "deb.debian.org/debian"
        } else {
            self.uri.split_once("://").map(|x| x.1).unwrap_or(&self.uri)
        };
        let base = uri.trim_end_matches('/').replace('/', "_");
        if self.suite == "/" {
            return vec![(
                Path::new(LISTS_DIR).join(format!("{base}_Packages")),
                String::new(),
            )];
        }
        self.components
            .iter()
            .map(|c| {
                (
                    Path::new(LISTS_DIR).join(format!(
                        "{base}_dists_{}_{c}_binary-amd64_Packages",
                        self.suite.replace('/', "_")
                    )),
                    format!("{}/{c}", self.suite),
                )
            })
            .collect()
    }

    /// The URI as apt prints it (`mirror+file:/etc/apt/mirrors/debian.list`).
    pub fn display_uri(&self) -> String {
        self.uri.trim_end_matches('/').replace("file:///", "file:/")
    }

    pub fn host(&self) -> String {
        net::split_url(&self.uri).map(|x| x.0).unwrap_or_default()
    }
}

const DISTRO_HOSTS: &[&str] = &[
    "archive.ubuntu.com",
    "security.ubuntu.com",
    "ports.ubuntu.com",
    "deb.debian.org",
    "security.debian.org",
    "ftp.debian.org",
];

fn classify(uri: &str, suite: &str) -> Kind {
    // Debian 12's `mirror+file:///etc/apt/mirrors/debian.list` points at the archive too.
    if uri.starts_with("mirror+") || uri.starts_with("mirror:") {
        return Kind::Distro;
    }
    let host = net::split_url(uri).map(|x| x.0).unwrap_or_default();
    if DISTRO_HOSTS.contains(&host.as_str()) || host.ends_with(".archive.ubuntu.com") {
        return Kind::Distro;
    }
    let probe = format!("{}/", uri.trim_end_matches('/'));
    if let Some((minor, _, rest)) = net::k8s_repo_path(&probe) {
        if rest.is_empty() && suite == "/" {
            return Kind::K8s(minor);
        }
    }
    Kind::Other
}

/// Parses one-line-style sources (`deb [signed-by=K] URI SUITE [COMP...]`).
pub fn parse_list(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line.strip_prefix("deb ") else {
            continue;
        };
        let rest = rest.trim();
        let (opts, rest) = if let Some(r) = rest.strip_prefix('[') {
            match r.split_once(']') {
                Some((o, r)) => (o.to_string(), r.trim()),
                None => continue,
            }
        } else {
            (String::new(), rest)
        };
        let mut f = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (f.next(), f.next()) else {
            continue;
        };
        let signed_by = opts
            .split_whitespace()
            .find_map(|o| o.strip_prefix("signed-by=").map(String::from));
        out.push(Source {
            uri: uri.to_string(),
            suite: suite.to_string(),
            components: f.map(String::from).collect(),
            signed_by,
            kind: classify(uri, suite),
        });
    }
    out
}

/// Parses deb822-style `.sources` files.
pub fn parse_deb822(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut types = String::new();
        let mut uris = String::new();
        let mut suites = String::new();
        let mut comps = String::new();
        let mut signed = None;
        let mut enabled = true;
        for l in stanza.lines() {
            if l.starts_with('#') {
                continue;
            }
            if let Some((k, v)) = l.split_once(':') {
                let v = v.trim().to_string();
                match k.trim().to_ascii_lowercase().as_str() {
                    "types" => types = v,
                    "uris" => uris = v,
                    "suites" => suites = v,
                    "components" => comps = v,
                    "signed-by" => signed = Some(v),
                    "enabled" => enabled = v != "no",
                    _ => {}
                }
            }
        }
        if !enabled || !types.split_whitespace().any(|t| t == "deb") {
            continue;
        }
        for uri in uris.split_whitespace() {
            for suite in suites.split_whitespace() {
                out.push(Source {
                    uri: uri.to_string(),
                    suite: suite.to_string(),
                    components: comps.split_whitespace().map(String::from).collect(),
                    signed_by: signed.clone(),
                    kind: classify(uri, suite),
                });
            }
        }
    }
    out
}

/// All configured sources, in apt's order (sources.list, then sources.list.d sorted).
pub fn configured() -> Vec<Source> {
    let mut out = Vec::new();
    if let Ok(t) = std::fs::read_to_string("/etc/apt/sources.list") {
        out.extend(parse_list(&t));
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir("/etc/apt/sources.list.d")
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for f in files {
        let name = f.to_string_lossy().into_owned();
        let Ok(t) = std::fs::read_to_string(&f) else {
            continue;
        };
        if name.ends_with(".list") {
            out.extend(parse_list(&t));
        } else if name.ends_with(".sources") {
            out.extend(parse_deb822(&t));
        }
    }
    out
}

/// A package version some archive offers, with where it comes from.
#[derive(Debug, Clone)]
pub struct Offer {
    pub pkg: Package,
    /// madison's third column, e.g. "https://pkgs.k8s.io/core:/stable:/v1.34/deb  Packages".
    pub origin: String,
}

/// The Packages index the archive serves for one lists file of `source`.
pub fn index_for(os: &str, source: &Source, suite_comp: &str) -> Option<String> {
    match source.kind {
        Kind::Distro => {
            let pkgs: Vec<Package> = catalog::distro(os)
                .into_iter()
                .filter(|p| p.component == suite_comp)
                .collect();
            Some(catalog::packages_index(&pkgs))
        }
        Kind::K8s(minor) => Some(catalog::packages_index(&catalog::k8s_repo(minor))),
        Kind::Other => None,
    }
}

/// Everything installable right now: what the lists of the configured sources hold,
/// i.e. what the last `apt-get update` fetched for them. A fresh host (a cloud image)
/// has no lists, so nothing is installable before the first update.
pub fn available(_os: &str) -> Vec<Offer> {
    let mut out = Vec::new();
    for s in configured() {
        if s.kind == Kind::Other {
            continue;
        }
        for (file, suite_comp) in s.lists_files() {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let origin = if suite_comp.is_empty() {
                format!("{}  Packages", s.display_uri())
            } else {
                format!("{} {suite_comp} amd64 Packages", s.display_uri())
            };
            for p in catalog::parse_index(&text) {
                out.push(Offer {
                    pkg: p,
                    origin: origin.clone(),
                });
            }
        }
    }
    out
}

/// Offers of one package, newest first.
pub fn offers_of<'a>(all: &'a [Offer], name: &str) -> Vec<&'a Offer> {
    let mut v: Vec<&Offer> = all.iter().filter(|o| o.pkg.name == name).collect();
    v.sort_by(|a, b| catalog::compare_versions(&b.pkg.version, &a.pkg.version));
    v.dedup_by(|a, b| a.pkg.version == b.pkg.version);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_k8s_source() {
        let s = parse_list("deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.34/deb/ /\n");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].kind, Kind::K8s(34));
        assert_eq!(
            s[0].signed_by.as_deref(),
            Some("/etc/apt/keyrings/kubernetes-apt-keyring.gpg")
        );
        assert_eq!(
            s[0].lists_file(),
            PathBuf::from("/var/lib/apt/lists/pkgs.k8s.io_core:_stable:_v1.34_deb_Packages")
        );
        assert_eq!(s[0].label(), "https://pkgs.k8s.io/core:/stable:/v1.34/deb ");
    }

    #[test]
    fn deb822_sources() {
        let s = parse_deb822("Types: deb\nURIs: http://archive.ubuntu.com/ubuntu/\nSuites: noble noble-updates\nComponents: main universe\nSigned-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].kind, Kind::Distro);
        let files = s[1].lists_files();
        assert_eq!(files.len(), 2);
        assert_eq!(
            files[1],
            (
                PathBuf::from("/var/lib/apt/lists/archive.ubuntu.com_ubuntu_dists_noble-updates_universe_binary-amd64_Packages"),
                "noble-updates/universe".to_string()
            )
        );
    }
}
