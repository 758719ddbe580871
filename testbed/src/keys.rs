//! SSH keys: the testbed's client key pair and each host's ed25519 host key, made by the
//! machine's `ssh-keygen` so they are exactly what OpenSSH writes.

use std::path::Path;
use std::process::Command;

use crate::cmd;
use crate::error::{Error, Result};

/// Creates an ed25519 key pair at `path` and `path.pub` (replacing any) and returns the
/// public key line.
pub fn generate(path: &Path, comment: &str) -> Result<String> {
    for p in [path.to_path_buf(), pub_path(path)] {
        let _ = std::fs::remove_file(p);
    }
    cmd::run(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(path),
    )?;
    read_pub(path)
}

/// The public key line next to private key `path`.
pub fn read_pub(path: &Path) -> Result<String> {
    let pubp = pub_path(path);
    std::fs::read_to_string(&pubp)
        .map(|s| s.trim().to_string())
        .map_err(|e| Error::io("read", pubp, e))
}

pub fn pub_path(path: &Path) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".pub");
    s.into()
}

/// A `known_hosts` line for a host on port 22: `ADDRESS TYPE KEY` (the comment dropped).
pub fn known_hosts_line(address: &str, pub_line: &str) -> String {
    let mut parts = pub_line.split_whitespace();
    let kind = parts.next().unwrap_or_default();
    let key = parts.next().unwrap_or_default();
    format!("{address} {kind} {key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_line_drops_comment() {
        assert_eq!(
            known_hosts_line("10.200.1.11", "ssh-ed25519 AAAAC3Nz root@node1"),
            "10.200.1.11 ssh-ed25519 AAAAC3Nz"
        );
    }
}
