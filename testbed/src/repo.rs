//! The testbed's package repositories, for the hosts' real apt/dpkg/curl/gpg: built
//! once per stand-in binary into a cache shared by
//! every testbed on the machine, and served by one `tb-sim repo-serve` per testbed on
//! its bridge address. See `tb-sim`'s `repo` module for what the files are.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::layout::RepoProvision;

/// Host names the hosts resolve to the testbed's server (as in the certificate).
pub const HOSTS: &[&str] = &[
    "archive.ubuntu.com",
    "security.ubuntu.com",
    "pkgs.k8s.io",
    "raw.githubusercontent.com",
];

/// Calico releases whose manifests raw.githubusercontent.com serves (minor, newest
/// patch; every patch up to it): `tb-sim repo-build` writes them, and the container
/// registries hold the images they name ([`crate::registries::catalog`]).
pub const CALICO_RELEASES: &[(u32, u32)] = &[(29, 6), (30, 4), (31, 2), (32, 0)];

/// Where the server keeps the names air-gapped hosts looked up (`ADDRESS` files).
pub const PUBLIC_LOOKUPS: &str = "public-lookups";

/// Where pkgs.k8s.io's publishing state lives in the testbed directory.
pub const K8S_PUBLISHED: &str = "k8s-published.json";

/// The built repositories for `sim` (keyed by the binary's size and modification time,
/// since the catalog is compiled into it; hashing a debug build's 100+ MB would cost
/// seconds per testbed): `$TMPDIR/testbed-repo/KEY`, built on first use ([`build_once`]).
///
/// The `containerd` package of [`crate::containerd::VERSION`] carries the real containerd,
/// built first (minutes once per machine, see testbed/containerd/README.md). With
/// `k8s` (`Builder::real_kubernetes`: the directory of the built releases), the kubeadm
/// and kubectl packages of each release built there carry its real programs; the
/// others keep the stand-in.
pub fn cache(sim: &Path, k8s: Option<&Path>) -> Result<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let containerd = crate::containerd::real_containerd()?;
    let m = std::fs::metadata(sim).map_err(|e| Error::io("stat", sim, e))?;
    let mut id = format!(
        "{}:{}:{}:{}:{}",
        sim.display(),
        m.len(),
        m.mtime(),
        m.mtime_nsec(),
        containerd.display()
    );
    // Which releases are built decides what the packages carry.
    if let Some(k8s) = k8s {
        id.push_str(&format!(":{}", k8s.display()));
        for release in crate::k8s::built_releases(k8s)? {
            id.push_str(&format!(":{release}"));
        }
    }
    let key = format!("{:x}", Sha256::digest(id.as_bytes()));
    build_once(&std::env::temp_dir().join("testbed-repo"), &key, |tmp| {
        let out = Command::new(sim)
            .arg("repo-build")
            .arg(tmp)
            .arg("--containerd")
            .arg(&containerd)
            .args(
                k8s.map(|k8s| [Path::new("--k8s"), k8s])
                    .into_iter()
                    .flatten(),
            )
            .output()
            .map_err(|e| Error::io("run", sim, e))?;
        if !out.status.success() {
            return Err(Error::Invalid(format!(
                "building the testbed's package repositories failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    })
}

/// The machine's cache directory `base/KEY` (the key's first 16 hex digits), made by
/// `build` on first use: one builder at a time per key (an flock on `KEY.lock`, so
/// parallel tests of one process or of several wait for the first build instead of each
/// making their own), into a directory of its own that is renamed into place when
/// complete (marked by a file `done`), and removed when `build` fails.
pub(crate) fn build_once(
    base: &Path,
    key: &str,
    build: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    use std::os::unix::io::AsRawFd;
    let dir = base.join(&key[..16]);
    if dir.join("done").exists() {
        return Ok(dir);
    }
    std::fs::create_dir_all(base).map_err(|e| Error::io("create", base, e))?;
    let lock_path = base.join(format!("{}.lock", &key[..16]));
    let lock = std::fs::File::create(&lock_path).map_err(|e| Error::io("create", &lock_path, e))?;
    // Released when `lock` is dropped (closed), also when a build fails.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(Error::io(
            "lock",
            &lock_path,
            std::io::Error::last_os_error(),
        ));
    }
    if dir.join("done").exists() {
        return Ok(dir);
    }
    let tmp = base.join(format!("{}.{}.tmp", &key[..16], std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    if let Err(e) = build(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    std::fs::write(tmp.join("done"), "").map_err(|e| Error::io("write", &tmp, e))?;
    std::fs::rename(&tmp, &dir).map_err(|e| Error::io("rename", &tmp, e))?;
    drop(lock);
    Ok(dir)
}

/// Starts the server for a testbed on `address` (its bridge) and waits until it accepts
/// connections; returns its pid. It runs until killed (`stop`).
pub fn start(sim: &Path, cache: &Path, dir: &Path, address: &str, time_scale: f64) -> Result<i32> {
    let mut cmd = Command::new(sim);
    cmd.arg("repo-serve")
        .arg("--root")
        .arg(cache)
        .arg("--state")
        .arg(dir)
        .args(["--listen", address])
        .args(["--time-scale", &time_scale.to_string()]);
    let log = dir.join("repo-serve.log");
    let child = spawn_server(&mut cmd, &log)?;
    await_listening(child, &log, address, 443, "the repository server")
}

/// Spawns a server of the testbed in the root namespace: in a session of its own (not
/// killed with the terminal of `testbed up`), stdin and stdout null, stderr to `log`.
pub(crate) fn spawn_server(cmd: &mut Command, log: &Path) -> Result<std::process::Child> {
    let logf = std::fs::File::create(log).map_err(|e| Error::io("create", log, e))?;
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(logf);
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd.spawn().map_err(|source| Error::Spawn {
        command: crate::cmd::display(cmd),
        source,
    })
}

/// Waits up to 10 s until the server `child` (named `what` in errors, its stderr in
/// `log`) accepts connections on `address:port`; returns its pid. Kills it when it does
/// not.
pub(crate) fn await_listening(
    mut child: std::process::Child,
    log: &Path,
    address: &str,
    port: u16,
    what: &str,
) -> Result<i32> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if std::net::TcpStream::connect((address, port)).is_ok() {
            return Ok(child.id() as i32);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::Invalid(format!(
                "{what} exited ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default().trim()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop(child.id() as i32);
    Err(Error::Invalid(format!(
        "{what} did not listen on {address}:{port} within 10 s: {}",
        std::fs::read_to_string(log).unwrap_or_default().trim()
    )))
}

/// Stops a server started by [`start`].
pub fn stop(pid: i32) {
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    // Reap it if it is our child (`testbed up` exits before; init reaps it then).
    unsafe {
        libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG);
    }
}

/// What each host is given at its first boot; `registries`: the container registries'
/// (address, name) ([`crate::registries::hosts_entries`]).
pub fn provision(
    cache: &Path,
    address: &str,
    registries: Vec<(String, String)>,
) -> Result<RepoProvision> {
    let keys = cache.join("keys");
    let read = |f: &str| {
        let p = keys.join(f);
        std::fs::read(&p).map_err(|e| Error::io("read", &p, e))
    };
    Ok(RepoProvision {
        address: address.to_string(),
        hosts: HOSTS.iter().map(|h| h.to_string()).collect(),
        registries,
        ca_pem: String::from_utf8_lossy(&read("ca.crt")?).into_owned(),
        archive_keyring_b64: base64::engine::general_purpose::STANDARD
            .encode(read("archive-keyring.gpg")?),
    })
}
