//! The real containerd the testbed's `containerd` package carries (issue 9 item 4), built
//! from source by `testbed/containerd/build.sh` and cached per version (see
//! testbed/containerd/README.md), and the container images hosts are preloaded with.
//!
//! A host starts with the images a test imports with the real `ctr -n k8s.io images
//! import` (as kind and air-gapped installs preload them; every testbed preloads kubeadm's
//! images of the built releases). The CRI's PullImage of anything else goes to the
//! testbed's real container registries under their public names (registry-1.docker.io,
//! registry.k8s.io, quay.io: [`crate::registries`]), which hold the images of
//! [`crate::registries::catalog`]; on an air-gapped host ([`Testbed::air_gap`]) those
//! names do not resolve and the pull fails as on a site without registry access.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::layout::{self, HostPaths};
use crate::Testbed;

/// The upstream version of the `containerd` package in the testbed's Ubuntu 24.04 archive
/// (1.7.24-0ubuntu1~24.04.2): the one built and shipped as the real program. Other
/// releases' containerd packages keep the stand-in.
pub const VERSION: &str = "1.7.24";

/// The build script, in the source tree this crate was compiled from.
const BUILD_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/containerd/build.sh");

/// The build script of the kubelet stand-in's CRI client (testbed/cri/main.go), and the
/// k8s.io/cri-api version its go.mod requires.
const CRI_BUILD_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/cri/build.sh");
const CRI_API: &str = "0.35.4";

/// containerd 1.7's own sandbox image (`sandbox_image` of `containerd config default`:
/// pkg/cri/config/config_unix.go DefaultConfig), which the reference procedure keeps and
/// which a connected host pulls at its first RunPodSandbox.
pub const DEFAULT_SANDBOX_IMAGE: &str = "registry.k8s.io/pause:3.8";

/// The directory holding the real `containerd`, `ctr` and `containerd-shim-runc-v2` of
/// [`VERSION`], built or reused by testbed/containerd/build.sh (under /var, so hosts see
/// it through their /var overlay). `TESTBED_CONTAINERD_CACHE`, `GOMODCACHE` and `GOCACHE`
/// move the caches.
pub fn real_containerd() -> Result<PathBuf> {
    crate::k8s::cached_build(BUILD_SCRIPT, VERSION, "containerd")
}

/// `tb-cri`, the CRI client the kubelet stand-in creates and removes pod sandboxes with in
/// the real containerd (testbed/cri/main.go; STANDINS-kubelet-real.md "Pod sandboxes"),
/// built or reused by testbed/cri/build.sh under /var, where hosts see it.
pub fn cri_client() -> Result<PathBuf> {
    Ok(crate::k8s::cached_build(CRI_BUILD_SCRIPT, CRI_API, "tb-cri")?.join("tb-cri"))
}

/// Writes an OCI image layout archive (`oci-layout`, `index.json`, `blobs/sha256/*`, as
/// `ctr images import` reads it) holding one tiny linux/amd64 image per reference in
/// `images` (e.g. "registry.k8s.io/pause:3.10.1"), each named by the
/// `io.containerd.image.name` annotation containerd's importer uses. Each image has one
/// empty layer and a config naming the image (so their digests differ); that is enough
/// for the CRI's ImageStatus. A pause image's config has the real one's
/// `Entrypoint: ["/pause"]`, which the runc stand-in runs as a process that waits.
pub fn write_image_archive(images: &[&str], out: &Path) -> Result<()> {
    let dir = out.with_extension("layout");
    let _ = std::fs::remove_dir_all(&dir);
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| Error::io("create", &blobs, e))?;
    let blob = |data: &[u8]| -> Result<(String, usize)> {
        let digest = format!("{:x}", Sha256::digest(data));
        let path = blobs.join(&digest);
        std::fs::write(&path, data).map_err(|e| Error::io("write", &path, e))?;
        Ok((format!("sha256:{digest}"), data.len()))
    };
    // An empty tar archive: two zero blocks (POSIX end-of-archive).
    let (layer, layer_size) = blob(&[0u8; 1024])?;
    let mut manifests = Vec::new();
    for image in images {
        let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest");
        let mut config = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"testbed.image": image}},
            "rootfs": {"type": "layers", "diff_ids": [layer]},
        });
        // The pause image's entrypoint, as registry.k8s.io/pause's config has it: the CRI
        // plugin refuses a sandbox whose image has neither Entrypoint nor Cmd.
        let name = image.rsplit_once(':').map_or(*image, |(n, _)| n);
        if name.ends_with("/pause") {
            config["config"]["Entrypoint"] = json!(["/pause"]);
        }
        let (config, config_size) = blob(config.to_string().as_bytes())?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config, "size": config_size,
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer, "size": layer_size,
            }],
        });
        let (manifest, manifest_size) = blob(manifest.to_string().as_bytes())?;
        manifests.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest,
            "size": manifest_size,
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {
                "io.containerd.image.name": image,
                "org.opencontainers.image.ref.name": tag,
            },
        }));
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    for (name, text) in [
        (
            "oci-layout",
            r#"{"imageLayoutVersion":"1.0.0"}"#.to_string(),
        ),
        ("index.json", index.to_string()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| Error::io("write", &path, e))?;
    }
    let tar = crate::cmd::run(
        Command::new("tar")
            .arg("-C")
            .arg(&dir)
            .arg("-cf")
            .arg(out)
            .arg("."),
    );
    let _ = std::fs::remove_dir_all(&dir);
    tar?;
    Ok(())
}

impl Testbed {
    /// Gives `host` exactly these container images in containerd's `k8s.io` namespace (the
    /// CRI's), as a machine image made for an offline site would carry them: the archive
    /// goes to the host's control directory ([`layout::ctl::IMAGES`]) and the real
    /// `ctr -n k8s.io images import` loads it when the real containerd starts, or now if
    /// it runs. Images an earlier call imported stay. Hosts without it have no images until
    /// they pull some (from the testbed's registries, unless air-gapped).
    pub fn preload_images(&self, host: &str, images: &[&str]) -> Result<()> {
        self.host_state(host)?;
        let archive = HostPaths::new(self.dir(), host)
            .ctl()
            .join(layout::ctl::IMAGES);
        write_image_archive(images, &archive)?;
        let out = self.exec(host, &[layout::SIM_BIN, "preload-images"])?;
        if !out.status.success() {
            return Err(Error::host(
                host,
                format!(
                    "importing the preloaded images failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ));
        }
        Ok(())
    }
}

/// The images the real kubeadm of each built release in `releases` lists
/// (`kubeadm config images list --kubernetes-version vX.Y.Z`) and containerd's own
/// sandbox image ([`DEFAULT_SANDBOX_IMAGE`]), sorted: what every host starts with
/// ([`preload_release_images`]) and what registry.k8s.io holds
/// ([`crate::registries::catalog`]).
pub(crate) fn release_images(releases: &Path) -> Result<Vec<String>> {
    let mut images = std::collections::BTreeSet::from([DEFAULT_SANDBOX_IMAGE.to_string()]);
    for release in crate::k8s::built_releases(releases)? {
        let kubeadm = releases.join(&release).join("kubeadm");
        let out = crate::cmd::run(Command::new(&kubeadm).args([
            "config",
            "images",
            "list",
            "--kubernetes-version",
            &release,
        ]))?;
        images.extend(
            out.lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty()),
        );
    }
    Ok(images.into_iter().collect())
}

/// With real Kubernetes (`Builder::real_kubernetes`), every host starts with the
/// [`release_images`] (kubeadm's lists of the built releases), as a machine image for an
/// offline site would carry them; an online host could also pull them from the testbed's
/// registry.k8s.io ([`crate::registries`]). A test that models an air-gapped site gives a
/// host fewer with [`Testbed::preload_images`] before containerd first starts.
pub(crate) fn preload_release_images(tb: &Testbed, images: &[String]) -> Result<()> {
    let images: Vec<&str> = images.iter().map(String::as_str).collect();
    for host in tb.hosts() {
        tb.preload_images(&host.name, &images)?;
    }
    Ok(())
}
