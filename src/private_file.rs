//! Writing files that hold credentials on this machine (kubeconfigs): atomically, never
//! readable by others while being written, through symlinks, under kubectl's lock.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long [`Lock::acquire`] waits for another writer's lock to go away.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);

/// The path a write to `path` really replaces: symlinks followed (also a dangling one, whose
/// target is then created), so a `~/.kube/config` linked into a dotfiles repository stays a
/// link and the file it points to gets the new content.
pub fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    // The kernel's own limit on links followed (ELOOP after 40).
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&p)?;
                p = match p.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(std::io::Error::other("too many levels of symbolic links"))
}

/// Writes `bytes` to `path` through a temporary file in the same directory as the real
/// file (symlinks resolved), created 0600 before a byte is in it and renamed over the
/// file: the credentials are never readable by others, not even for a moment, and a
/// reader never sees half a file. An existing file keeps its mode and owner (as kubectl,
/// which writes in place, keeps them); a new one is 0600. `make_dir`: create a missing
/// parent directory (0700).
pub fn write(path: &Path, bytes: &[u8], make_dir: bool) -> std::io::Result<()> {
    let path = resolve(path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if make_dir && !dir.exists() {
        DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "kubeconfig".into());
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(
        ".{file_name}.bootstrap-{}-{seq}.tmp",
        std::process::id()
    ));
    let existing = std::fs::metadata(&path).ok();
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&tmp)?;
        if let Some(m) = &existing {
            // Only root can give a file away; anyone else already owns what they replace.
            let _ = std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()));
            f.set_permissions(std::fs::Permissions::from_mode(m.mode() & 0o7777))?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// kubectl's lock on a kubeconfig: `<file>.lock`, created exclusively and removed when
/// done (client-go tools/clientcmd/loader.go, `lockFile`/`unlockFile`, which
/// `kubectl config` takes around every change), so a merge and a concurrent kubectl or
/// bootstrap don't lose each other's entries. client-go gives up at once when the lock
/// exists; a merge waits up to [`LOCK_WAIT`] for it instead, since several merges started
/// together (a CI matrix) are the expected case.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
}

/// Why a kubeconfig's lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{} still exists after {}s: another kubectl or bootstrap is changing the file, or \
         one was killed while it did; if none is running, remove the lock file",
        path.display(), LOCK_WAIT.as_secs()
    )]
    Held { path: PathBuf },
    #[error("cannot create {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Lock {
    /// Takes the lock of `file` (the path as given, as client-go names it).
    pub fn acquire(file: &Path) -> Result<Lock, LockError> {
        let mut name = file.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|source| LockError::Io {
                        path: path.clone(),
                        source,
                    })?;
            }
        }
        let started = Instant::now();
        loop {
            let made = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path);
            match made {
                Ok(_) => return Ok(Lock { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if started.elapsed() >= LOCK_WAIT {
                        return Err(LockError::Held { path });
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(source) => return Err(LockError::Io { path, source }),
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_file_keeps_its_mode_and_a_new_one_is_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kc");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        write(&path, b"new", false).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        let nested = dir.path().join("a/b/config");
        write(&nested, b"x", true).unwrap();
        let mode = std::fs::metadata(&nested).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "no temp file left"
        );
    }

    #[test]
    fn a_symlink_stays_and_its_target_is_written() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("dotfiles")).unwrap();
        std::fs::create_dir(dir.path().join(".kube")).unwrap();
        let target = dir.path().join("dotfiles/kubeconfig");
        std::fs::write(&target, "old").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join(".kube/config");
        std::os::unix::fs::symlink("../dotfiles/kubeconfig", &link).unwrap();
        write(&link, b"new", false).unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        // A dangling link: its target is created.
        let dangling = dir.path().join(".kube/other");
        std::os::unix::fs::symlink("../dotfiles/new", &dangling).unwrap();
        write(&dangling, b"x", false).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("dotfiles/new")).unwrap(),
            "x"
        );
    }

    #[test]
    fn the_lock_is_kubectls_file_and_excludes_a_second_holder() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config");
        let lock = Lock::acquire(&file).unwrap();
        assert!(dir.path().join("config.lock").exists());
        let (tx, rx) = std::sync::mpsc::channel();
        let f = file.clone();
        let waiter = std::thread::spawn(move || {
            let second = Lock::acquire(&f).unwrap();
            tx.send(()).unwrap();
            drop(second);
        });
        std::thread::sleep(Duration::from_millis(200));
        assert!(rx.try_recv().is_err(), "second holder got the lock");
        drop(lock);
        waiter.join().unwrap();
        assert!(rx.try_recv().is_ok());
        assert!(!dir.path().join("config.lock").exists());
    }
}
