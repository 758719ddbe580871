//! The real Kubernetes programs of a release (kubeadm, kubectl, kube-apiserver,
//! kube-controller-manager, kube-scheduler and the etcd kubeadm pins), built from source
//! by `testbed/k8s/build.sh` and cached per release (see testbed/k8s/README.md).
//!
//! Tests that need them call [`real_release`], the one place that knows where they live:
//! it runs the build script, which reuses the cached binaries when they report the right
//! version and builds them otherwise (minutes when Go's caches are cold), so a test never
//! runs a stale or half-built program.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::error::{Error, Result};

/// The release the tests use unless they name another (testbed/k8s/<release>/ exists for
/// each one that can be built).
pub const DEFAULT_RELEASE: &str = "v1.35.4";

/// The build script, in the source tree this crate was compiled from.
const BUILD_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/k8s/build.sh");

/// The built programs of one release.
#[derive(Debug, Clone)]
pub struct RealRelease {
    release: String,
    dir: PathBuf,
}

impl RealRelease {
    /// e.g. "v1.35.4".
    pub fn release(&self) -> &str {
        &self.release
    }

    /// The cache directory holding the binaries.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of one program: "kubeadm", "kubectl", "kube-apiserver",
    /// "kube-controller-manager", "kube-scheduler" or "etcd".
    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The git commit the release's programs were stamped with (testbed/k8s/vX.Y.Z/commit,
    /// the commit official builds print), or None: then they print component-base's
    /// unstamped default, `$Format:%H$`.
    pub fn git_commit(&self) -> Option<String> {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("k8s")
            .join(&self.release)
            .join("commit");
        std::fs::read_to_string(file)
            .ok()
            .map(|c| c.trim().to_string())
    }

    /// A command running one program.
    pub fn command(&self, name: &str) -> Command {
        Command::new(self.bin(name))
    }
}

/// The real programs of `release` (e.g. "v1.35.4"), built or reused by
/// testbed/k8s/build.sh. Runs the script once per release and process; later calls return
/// the same directory. `TESTBED_K8S_CACHE`, `GOMODCACHE` and `GOCACHE` move the caches.
pub fn real_release(release: &str) -> Result<RealRelease> {
    let dir = cached_build(BUILD_SCRIPT, release, "kubeadm")?;
    Ok(RealRelease {
        release: release.to_string(),
        dir,
    })
}

/// [`real_release`], checked to be where the hosts can see it: they see the cache
/// (`TESTBED_K8S_CACHE`) through their /var or /usr overlay, a cache elsewhere is invisible.
pub fn real_release_for_hosts(release: &str) -> Result<RealRelease> {
    let k8s = real_release(release)?;
    if !(k8s.dir.starts_with("/var") || k8s.dir.starts_with("/usr")) {
        return Err(Error::Invalid(format!(
            "TESTBED_K8S_CACHE must be under /var or /usr for hosts to see it: {}",
            k8s.dir.display()
        )));
    }
    Ok(k8s)
}

/// Runs `SCRIPT build VERSION` (testbed/k8s/build.sh, testbed/containerd/build.sh) once
/// per script, version and process, and returns the cache directory it prints, checked to
/// hold `expect`. The scripts reuse what is cached and build what is not (minutes when
/// Go's caches are cold), so a test never runs a stale or half-built program.
pub(crate) fn cached_build(script: &str, version: &str, expect: &str) -> Result<PathBuf> {
    static DONE: Mutex<Option<HashMap<(String, String), PathBuf>>> = Mutex::new(None);
    // Held while building, so concurrent tests of one binary wait for one build (the
    // script's own lock covers other processes).
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    let done = done.get_or_insert_with(HashMap::new);
    let key = (script.to_string(), version.to_string());
    if let Some(dir) = done.get(&key) {
        return Ok(dir.clone());
    }
    let stdout = crate::cmd::run(Command::new("bash").args([script, "build", version]))?;
    let dir = PathBuf::from(stdout.trim());
    if !dir.join(expect).is_file() {
        return Err(Error::Invalid(format!(
            "`{script} build {version}` printed {}, which holds no {expect}",
            dir.display()
        )));
    }
    done.insert(key, dir.clone());
    Ok(dir)
}

/// The releases built in `releases` (the parent of [`RealRelease::dir`]): the names of its
/// `vX.Y.Z` directories that hold a kubeadm, sorted. They decide which packages carry the
/// real programs and which images every host starts with.
pub fn built_releases(releases: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(releases).map_err(|e| Error::io("read", releases, e))?;
    let mut built: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|r| r.starts_with('v') && releases.join(r).join("kubeadm").is_file())
        .collect();
    built.sort();
    Ok(built)
}
