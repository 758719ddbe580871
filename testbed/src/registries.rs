//! The internet's container registries, as hosts reach them: Docker Hub
//! (`registry-1.docker.io`, containerd's endpoint for `docker.io`), `registry.k8s.io` and
//! `quay.io`, each a REAL registry (Debian's `docker-registry`, the CNCF distribution
//! registry 2.8) serving HTTPS on 443 of an address of its own on the testbed's bridge,
//! with a certificate for its name from the testbed's CA (which hosts trust; made by
//! `tb-sim repo-build`, `keys/NAME.crt`). Hosts resolve the names through a line each in
//! /etc/hosts, as they resolve the repository server's ([`crate::repo::HOSTS`]), and
//! [`crate::Testbed::air_gap`] takes them away.
//!
//! What they hold is [`catalog`]: tiny images made with
//! [`crate::containerd::write_image_archive`]'s scheme and pushed by the real `skopeo`
//! into a temporary registry writing the machine's cache ([`cache`]), once per catalog;
//! each testbed's registries serve that storage read-only
//! (`storage.maintenance.readonly`).
//!
//! NOT modelled: Docker Hub's token authentication (anonymous pulls there first get a
//! token from auth.docker.io, and a repository that does not exist answers 401 `pull
//! access denied`, which containerd reports as codes.Unknown; here it answers the
//! registry's 404 `not found`, reported as NotFound), rate limits, registry.k8s.io's
//! redirects of its requests to other hosts (mirrors on other domains, which a real
//! site's firewall must also allow), and registries other than these three (their names
//! do not resolve).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A public container registry the testbed runs.
#[derive(Debug, Clone, Copy)]
pub struct PublicRegistry {
    /// The host name clients connect to (and its certificate's name).
    pub host: &'static str,
    /// The domain of the image names it holds (`docker.io/calico/node` is Docker Hub's
    /// repository `calico/node`).
    pub domain: &'static str,
    /// Its address on the bridge is 10.200.X.`octet` (the bridge itself is .1, hosts
    /// start at .11).
    pub octet: u8,
}

/// The registries, each with an address of its own: its clients connect to port 443
/// (containerd's default endpoint for a domain is `https://HOST`, without a port), and
/// 443 on the bridge's own address is the repository server's.
pub const REGISTRIES: &[PublicRegistry] = &[
    PublicRegistry {
        host: "registry-1.docker.io",
        domain: "docker.io",
        octet: 2,
    },
    PublicRegistry {
        host: "registry.k8s.io",
        domain: "registry.k8s.io",
        octet: 3,
    },
    PublicRegistry {
        host: "quay.io",
        domain: "quay.io",
        octet: 4,
    },
];

/// The program (package `docker-registry`).
const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
/// The client that pushes the catalog (package `skopeo`).
const SKOPEO_BIN: &str = "/usr/bin/skopeo";

/// The images Calico's manifests name (`docker.io/calico/X:vVERSION`, tb-sim
/// repo/calico.rs), for every release raw.githubusercontent.com serves
/// ([`crate::repo::CALICO_RELEASES`]): `bootstrap up` applies one of them, and a node
/// pulls what it names.
const CALICO_COMPONENTS: &[&str] = &["cni", "node", "kube-controllers"];

/// The workloads the tests and examples deploy (short names are Docker Hub's
/// `library/`): examples/wordpress (mysql:8.4, wordpress:6-apache),
/// testbed/tests/procedure.rs (mysql:8.0, wordpress:6-apache), tests/upgrade.rs (nginx,
/// i.e. nginx:latest), tests/manifests.rs (nginx:1.27, postgres:16).
const WORKLOADS: &[&str] = &[
    "docker.io/library/mysql:8.0",
    "docker.io/library/mysql:8.4",
    "docker.io/library/wordpress:6-apache",
    "docker.io/library/nginx:latest",
    "docker.io/library/nginx:1.27",
    "docker.io/library/postgres:16",
];

/// The pod sandbox image of kubeadm 1.34 to 1.36 (the one `bootstrap` configures as
/// containerd's `sandbox_image`), which tests' own pods run too
/// (testbed/tests/real_cluster_checks.rs).
const PAUSE: &str = "registry.k8s.io/pause:3.10.1";

/// Every image the registries hold, fully qualified, sorted: the Calico images of
/// [`CALICO_COMPONENTS`], the [`WORKLOADS`], [`PAUSE`], and `release_images` (the
/// [`crate::containerd::release_images`] of the built releases: kubeadm's lists, what
/// its preflight pulls and the control plane's static pods run, and containerd's
/// default sandbox image), so that online hosts can pull what hosts are preloaded with
/// today.
pub fn catalog(release_images: &[String]) -> BTreeSet<String> {
    let mut images: BTreeSet<String> = release_images.iter().cloned().collect();
    for (minor, newest) in crate::repo::CALICO_RELEASES {
        for patch in 0..=*newest {
            for c in CALICO_COMPONENTS {
                images.insert(format!("docker.io/calico/{c}:v3.{minor}.{patch}"));
            }
        }
    }
    images.extend(WORKLOADS.iter().map(|i| i.to_string()));
    images.insert(PAUSE.to_string());
    images
}

/// The registry holding `image` (by its domain) and the repository and tag in it:
/// "docker.io/calico/node:v3.30.3" -> (Docker Hub, "calico/node", "v3.30.3").
fn locate(image: &str) -> Result<(&'static PublicRegistry, &str, &str)> {
    let (name, tag) = image
        .rsplit_once(':')
        .filter(|(n, _)| !n.is_empty())
        .ok_or_else(|| Error::Invalid(format!("image {image:?} has no tag")))?;
    let (domain, repository) = name
        .split_once('/')
        .ok_or_else(|| Error::Invalid(format!("image {image:?} has no domain")))?;
    let registry = REGISTRIES
        .iter()
        .find(|r| r.domain == domain)
        .ok_or_else(|| Error::Invalid(format!("no registry in the testbed for {image:?}")))?;
    Ok((registry, repository, tag))
}

fn require(path: &str, package: &str) -> Result<()> {
    if Path::new(path).exists() {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{path} not found: the testbed's container registries need it (apt-get install {package}, or scripts/install-deps)"
        )))
    }
}

/// The registries' storage for `images` ([`catalog`]): `$TMPDIR/testbed-registry/KEY/`
/// with one distribution storage directory per registry (`HOST/docker/registry/v2/...`),
/// keyed by the catalog, the code that makes the images and the registry and skopeo
/// binaries; built on first use ([`crate::repo::build_once`]: one builder at a time), and
/// reused by every later testbed on the machine.
pub fn cache(images: &BTreeSet<String>) -> Result<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    require(REGISTRY_BIN, "docker-registry")?;
    let mut id = String::new();
    for image in images {
        locate(image)?;
        id.push_str(image);
        id.push('\n');
    }
    // How the images are made (write_image_archive) decides their content.
    id.push_str(include_str!("containerd.rs"));
    for bin in [REGISTRY_BIN, SKOPEO_BIN] {
        if let Ok(m) = std::fs::metadata(bin) {
            id.push_str(&format!("{bin}:{}:{}\n", m.len(), m.mtime()));
        }
    }
    let key = format!("{:x}", Sha256::digest(id.as_bytes()));
    crate::repo::build_once(
        &std::env::temp_dir().join("testbed-registry"),
        &key,
        |tmp| build(tmp, images),
    )
}

/// A registry process that is killed when dropped.
struct Server(i32);

impl Drop for Server {
    fn drop(&mut self) {
        crate::repo::stop(self.0);
    }
}

/// A distribution registry configuration (version 0.1): storage in `root`, listening on
/// `addr`, TLS with `tls` (certificate, key) when given, read-only when `readonly`.
fn config(root: &Path, addr: &str, tls: Option<(&Path, &Path)>, readonly: bool) -> String {
    let mut c = format!(
        "version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: {}
  maintenance:
    uploadpurging:
      enabled: false
    readonly:
      enabled: {readonly}
http:
  addr: {addr}
",
        root.display()
    );
    if let Some((cert, key)) = tls {
        c.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            cert.display(),
            key.display()
        ));
    }
    c
}

/// Starts `docker-registry serve` with the configuration `text`, written to
/// `dir/NAME.yml` (its log `dir/NAME.log`).
fn spawn(dir: &Path, name: &str, text: &str) -> Result<std::process::Child> {
    let conf = dir.join(format!("{name}.yml"));
    std::fs::write(&conf, text).map_err(|e| Error::io("write", &conf, e))?;
    let mut cmd = Command::new(REGISTRY_BIN);
    cmd.arg("serve").arg(&conf);
    crate::repo::spawn_server(&mut cmd, &dir.join(format!("{name}.log")))
}

/// Fills `out` with the registries' storage: per registry, a temporary registry on
/// 127.0.0.1 writing `out/HOST`, and the real `skopeo copy` of each image's OCI archive
/// into it (two at a time).
fn build(out: &Path, images: &BTreeSet<String>) -> Result<()> {
    require(SKOPEO_BIN, "skopeo")?;
    let work = out.join("work");
    std::fs::create_dir_all(&work).map_err(|e| Error::io("create", &work, e))?;
    let mut servers = Vec::new();
    let mut ports = std::collections::HashMap::new();
    for r in REGISTRIES {
        let root = out.join(r.host);
        std::fs::create_dir_all(&root).map_err(|e| Error::io("create", &root, e))?;
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| Error::io("bind", "127.0.0.1:0", e))?
            .port();
        let child = spawn(
            &work,
            r.host,
            &config(&root, &format!("127.0.0.1:{port}"), None, false),
        )?;
        let log = work.join(format!("{}.log", r.host));
        let what = format!("the temporary registry for {}", r.host);
        servers.push(Server(crate::repo::await_listening(
            child,
            &log,
            "127.0.0.1",
            port,
            &what,
        )?));
        ports.insert(r.host, port);
    }
    let queue: Vec<&String> = images.iter().collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let push = |i: usize| -> Result<()> {
        let image = queue[i];
        let (registry, repository, tag) = locate(image)?;
        let archive = work.join(format!("{i}.tar"));
        crate::containerd::write_image_archive(&[image], &archive)?;
        crate::cmd::run(
            Command::new(SKOPEO_BIN)
                .args([
                    "--insecure-policy",
                    "copy",
                    "--quiet",
                    "--dest-tls-verify=false",
                ])
                .arg(format!("oci-archive:{}", archive.display()))
                .arg(format!(
                    "docker://127.0.0.1:{}/{repository}:{tag}",
                    ports[registry.host]
                )),
        )?;
        std::fs::remove_file(&archive).map_err(|e| Error::io("remove", &archive, e))
    };
    let errors: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= queue.len() {
                    break;
                }
                if let Err(e) = push(i) {
                    errors
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(format!("{}: {e}", queue[i]));
                }
            });
        }
    });
    drop(servers);
    let errors = errors.into_inner().unwrap_or_else(|e| e.into_inner());
    if !errors.is_empty() {
        return Err(Error::Invalid(format!(
            "pushing the public images failed: {}",
            errors.join("; ")
        )));
    }
    std::fs::remove_dir_all(&work).map_err(|e| Error::io("remove", &work, e))
}

/// The address of `registry` on testbed `subnet`'s bridge.
pub fn address(subnet: u8, registry: &PublicRegistry) -> String {
    format!("10.200.{subnet}.{}", registry.octet)
}

/// Starts the testbed's registries over the `cache` ([`cache`]), read-only, with the
/// certificates in `keys` (the repository cache's `keys/`): adds their addresses to the
/// bridge, writes `dir/registries/HOST.{yml,log}` and waits until each accepts
/// connections. Returns their pids; they run until killed ([`crate::repo::stop`]).
pub fn start(cache: &Path, keys: &Path, dir: &Path, subnet: u8, bridge: &str) -> Result<Vec<i32>> {
    let lines: Vec<String> = REGISTRIES
        .iter()
        .map(|r| format!("addr add {}/32 dev {bridge}", address(subnet, r)))
        .collect();
    crate::cmd::ip_batch(None, &lines)?;
    let conf = dir.join(DIR);
    std::fs::create_dir_all(&conf).map_err(|e| Error::io("create", &conf, e))?;
    let mut children = Vec::new();
    for r in REGISTRIES {
        let cert = keys.join(format!("{}.crt", r.host));
        let key = keys.join(format!("{}.key", r.host));
        let text = config(
            &cache.join(r.host),
            &format!("{}:443", address(subnet, r)),
            Some((&cert, &key)),
            true,
        );
        match spawn(&conf, r.host, &text) {
            Ok(child) => children.push((r, child)),
            Err(e) => {
                for (_, c) in &children {
                    crate::repo::stop(c.id() as i32);
                }
                return Err(e);
            }
        }
    }
    let all: Vec<i32> = children.iter().map(|(_, c)| c.id() as i32).collect();
    let mut pids = Vec::new();
    for (r, child) in children {
        let log = conf.join(format!("{}.log", r.host));
        let what = format!("the registry {}", r.host);
        match crate::repo::await_listening(child, &log, &address(subnet, r), 443, &what) {
            Ok(pid) => pids.push(pid),
            Err(e) => {
                for pid in &all {
                    crate::repo::stop(*pid);
                }
                return Err(e);
            }
        }
    }
    Ok(pids)
}

/// Where a testbed's registries keep their configuration and logs, in its directory.
pub const DIR: &str = "registries";

/// The /etc/hosts lines of a host of testbed `subnet`: (address, name) per registry.
pub fn hosts_entries(subnet: u8) -> Vec<(String, String)> {
    REGISTRIES
        .iter()
        .map(|r| (address(subnet, r), r.host.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_image_has_its_registry() {
        let images = catalog(&["registry.k8s.io/coredns/coredns:v1.12.1".to_string()]);
        assert!(images.contains("docker.io/calico/node:v3.30.3"));
        assert!(images.contains("docker.io/calico/kube-controllers:v3.29.0"));
        assert!(images.contains("docker.io/library/nginx:latest"));
        for image in &images {
            locate(image).unwrap();
        }
        let (r, repository, tag) = locate("registry.k8s.io/coredns/coredns:v1.12.1").unwrap();
        assert_eq!(
            (r.host, repository, tag),
            ("registry.k8s.io", "coredns/coredns", "v1.12.1")
        );
        let (r, repository, _) = locate("docker.io/library/mysql:8.4").unwrap();
        assert_eq!(
            (r.host, repository),
            ("registry-1.docker.io", "library/mysql")
        );
        assert!(locate("ghcr.io/x/y:1").is_err());
        assert!(locate("nginx").is_err());
    }
}
