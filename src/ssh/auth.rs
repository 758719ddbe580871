//! Public key authentication: the inventory's identity file (its `-cert.pub` user
//! certificate first, as ssh), then ssh-agent (its certificates, then its keys).
//!
//! bootstrap never prompts (it runs unattended across many hosts), so a passphrase
//! protected key is only usable through ssh-agent. Every failure lists what was tried so
//! the person can tell a wrong key from a missing agent from a server that refuses
//! public keys.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::client::{AuthResult, Handle, Handler};
use russh::keys::agent::client::AgentClient;
use russh::keys::agent::AgentIdentity;
use russh::keys::{PrivateKeyWithHashAlg, PublicKey};

use super::known_hosts::describe;

/// The ssh-agent socket named by `SSH_AUTH_SOCK` (`value`): an empty value means no
/// agent, as for OpenSSH's `ssh-add` ("Could not open a connection to your
/// authentication agent"), rather than a socket at the empty path.
pub fn agent_socket_from(value: Option<std::ffi::OsString>) -> Option<PathBuf> {
    value.filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// Refuses a private key that its owner lets group or others read, as `ssh` does
/// (sshkey_perm_ok in OpenSSH's authfile.c: only files owned by the user running it are
/// checked). A key others can read may already be copied; using it silently would hide
/// that. The message is OpenSSH's, plus the command that fixes it.
pub fn check_key_permissions(path: &Path) -> Result<(), String> {
    let Ok(meta) = std::fs::metadata(path) else {
        // Missing or unreadable: loading it says why, with the rest of what was tried.
        return Ok(());
    };
    let uid = rustix::process::getuid().as_raw();
    let mode = meta.mode() & 0o777;
    // A public key (the agent holds its private half) is not secret.
    if meta.uid() == uid && mode & 0o077 != 0 && russh::keys::load_public_key(path).is_err() {
        let p = path.display().to_string();
        return Err(format!(
            "UNPROTECTED PRIVATE KEY FILE! Permissions {mode:04o} for '{p}' are too open. \
             It is required that your private key files are NOT accessible by others. \
             This private key will be ignored. Fix: chmod 600 {q}",
            q = shlex::try_quote(&p).map_or_else(|_| p.clone(), |q| q.into_owned())
        ));
    }
    Ok(())
}

/// What to log in with besides the agent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Identity<'a> {
    /// The private key file.
    pub file: Option<&'a Path>,
    /// Its certificate (ssh_config's `CertificateFile`); None: `<file>-cert.pub`.
    pub certificate: Option<&'a Path>,
    /// `IdentitiesOnly`: of the agent's keys, offer only the identity file's.
    pub only: bool,
}

/// Authenticates `user` on `handle` with the identity file, then the agent listening on
/// `agent_socket` (normally `$SSH_AUTH_SOCK`); on failure, the reason (what was tried).
pub async fn authenticate<H: Handler>(
    handle: &mut Handle<H>,
    user: &str,
    identity: Identity<'_>,
    agent_socket: Option<&Path>,
) -> Result<(), String> {
    let identity_file = identity.file;
    let mut tried: Vec<String> = Vec::new();
    let mut encrypted: Option<&Path> = None;
    let mut preferred_public: Option<PublicKey> = None;

    if let Some(path) = identity_file {
        match russh::keys::load_secret_key(path, None) {
            Ok(key) => {
                let key = Arc::new(key);
                if identity.only {
                    preferred_public = Some(key.public_key().clone());
                }
                // As ssh: the certificate (`<key>-cert.pub` unless named) first.
                match read_certificate(path, identity.certificate) {
                    None => {}
                    Some(Err(reason)) => tried.push(reason),
                    Some(Ok((cert_path, cert))) => {
                        let desc = describe_certificate(&cert);
                        match handle
                            .authenticate_openssh_cert(user, key.clone(), cert)
                            .await
                        {
                            Ok(AuthResult::Success) => return Ok(()),
                            Ok(AuthResult::Failure { .. }) => tried.push(format!(
                                "certificate {} ({desc}): rejected by the server (expired, \
                                 not for user {user}, or its CA is not in the server's \
                                 TrustedUserCAKeys)",
                                cert_path.display()
                            )),
                            Err(e) => return Err(format!("while authenticating: {e}")),
                        }
                    }
                }
                let desc = describe(key.public_key());
                let hash = rsa_hash(handle, key.algorithm().is_rsa()).await?;
                let key = PrivateKeyWithHashAlg::new(key, hash);
                match handle.authenticate_publickey(user, key).await {
                    Ok(AuthResult::Success) => return Ok(()),
                    Ok(AuthResult::Failure {
                        remaining_methods, ..
                    }) => tried.push(format!(
                        "identity file {} ({desc}): rejected by the server (it accepts: {})",
                        path.display(),
                        methods(&remaining_methods)
                    )),
                    Err(e) => return Err(format!("while authenticating: {e}")),
                }
            }
            Err(russh::keys::Error::KeyIsEncrypted) => {
                encrypted = Some(path);
                preferred_public = read_public_key(path);
            }
            // As ssh: an IdentityFile may be the public half of a key the agent holds
            // (hardware and password-manager agents): that agent key is offered first.
            Err(e) => match russh::keys::load_public_key(path) {
                Ok(public) => preferred_public = Some(public),
                Err(_) => tried.push(format!(
                    "identity file {}: cannot be loaded: {e}",
                    path.display()
                )),
            },
        }
    }

    match agent_socket {
        None => tried.push("ssh-agent: SSH_AUTH_SOCK is not set".to_string()),
        Some(sock) => match AgentClient::connect_uds(&sock).await {
            Err(e) => tried.push(format!(
                "ssh-agent at {}: cannot connect: {e}",
                Path::new(&sock).display()
            )),
            Ok(mut agent) => {
                let only = identity.only.then_some(preferred_public.as_ref());
                match agent_auth(handle, user, &mut agent, preferred_public.as_ref(), only).await {
                    Ok(true) => return Ok(()),
                    Ok(false) if identity.only => tried.push(format!(
                        "ssh-agent at {}: IdentitiesOnly: only the identity file's key may be \
                         offered, and the agent does not hold it (or the server rejected it)",
                        Path::new(&sock).display()
                    )),
                    Ok(false) if preferred_public.is_some() => tried.push(format!(
                        "ssh-agent at {}: does not hold the key of the identity file, \
                         or the server rejected every agent key",
                        Path::new(&sock).display()
                    )),
                    Ok(false) => tried.push(format!(
                        "ssh-agent at {}: no key accepted by the server",
                        Path::new(&sock).display()
                    )),
                    Err(e) => {
                        tried.push(format!("ssh-agent at {}: {e}", Path::new(&sock).display()))
                    }
                }
            }
        },
    }

    if identity_file.is_none() {
        tried.insert(0, "no identity_file configured".to_string());
    }
    let mut reason = format!("tried: {}", tried.join("; "));
    if let Some(path) = encrypted {
        reason = format!(
            "identity file {p} is encrypted with a passphrase and bootstrap never prompts: \
             load it into ssh-agent (`ssh-add {p}`) and run bootstrap with SSH_AUTH_SOCK set \
             ({reason})",
            p = path.display()
        );
    }
    Err(reason)
}

/// Tries the agent's keys, the identity file's own key first when known. With `only`
/// (`IdentitiesOnly`), just that key and certificates of it: Some(None) is "no identity
/// file key known", so no agent key at all. Ok(false) when none was accepted.
async fn agent_auth<H: Handler>(
    handle: &mut Handle<H>,
    user: &str,
    agent: &mut AgentClient<tokio::net::UnixStream>,
    preferred: Option<&PublicKey>,
    only: Option<Option<&PublicKey>>,
) -> Result<bool, String> {
    let identities = agent
        .request_identities()
        .await
        .map_err(|e| format!("cannot list keys: {e}"))?;
    if identities.is_empty() {
        return Err("holds no keys".to_string());
    }
    let mut keys = Vec::new();
    let mut certificates = Vec::new();
    for id in identities {
        match id {
            AgentIdentity::PublicKey { key, .. } => keys.push(key),
            AgentIdentity::Certificate { certificate, .. } => certificates.push(certificate),
        }
    }
    if let Some(only) = only {
        keys.retain(|k| only.is_some_and(|p| k.key_data() == p.key_data()));
        certificates.retain(|c| only.is_some_and(|p| c.public_key() == p.key_data()));
    }
    if let Some(p) = preferred {
        keys.sort_by_key(|k| k.key_data() != p.key_data());
        certificates.sort_by_key(|c| c.public_key() != p.key_data());
    }
    // Certificates the agent holds, as ssh offers them: each signed by the agent.
    for cert in certificates {
        let hash = rsa_hash(handle, cert.algorithm().is_rsa()).await?;
        let result = handle
            .authenticate_certificate_with(user, cert, hash, agent)
            .await;
        if accepted(result)? {
            return Ok(true);
        }
    }
    for key in keys {
        let hash = rsa_hash(handle, key.algorithm().is_rsa()).await?;
        let result = handle
            .authenticate_publickey_with(user, key, hash, agent)
            .await;
        if accepted(result)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether the server accepted an agent-signed attempt; Err when the agent failed.
fn accepted<E: std::fmt::Display>(result: Result<AuthResult, E>) -> Result<bool, String> {
    match result {
        Ok(AuthResult::Success) => Ok(true),
        Ok(AuthResult::Failure { .. }) => Ok(false),
        Err(e) => Err(format!("signing failed: {e}")),
    }
}

/// For RSA keys, the best signature hash the server announced (rsa-sha2-512/256).
async fn rsa_hash<H: Handler>(
    handle: &Handle<H>,
    is_rsa: bool,
) -> Result<Option<russh::keys::HashAlg>, String> {
    if !is_rsa {
        return Ok(None);
    }
    handle
        .best_supported_rsa_hash()
        .await
        .map(|h| h.flatten())
        .map_err(|e| format!("while negotiating the RSA signature hash: {e}"))
}

/// The certificate of an identity file: `named` (CertificateFile, which must exist), else
/// `<identity>-cert.pub`, OpenSSH's place for it: None when there is none, else the
/// certificate or why it cannot be used.
fn read_certificate(
    identity: &Path,
    named: Option<&Path>,
) -> Option<Result<(PathBuf, russh::keys::Certificate), String>> {
    let path = match named {
        Some(p) => p.to_path_buf(),
        None => {
            let mut path = identity.as_os_str().to_owned();
            path.push("-cert.pub");
            let path = PathBuf::from(path);
            if !path.exists() {
                return None;
            }
            path
        }
    };
    Some(
        russh::keys::Certificate::read_file(&path)
            .map(|c| (path.clone(), c))
            .map_err(|e| format!("certificate {}: cannot be read: {e}", path.display())),
    )
}

/// `certificate "KEY ID" for PRINCIPALS`, what ssh -v says of a certificate.
fn describe_certificate(cert: &russh::keys::Certificate) -> String {
    format!(
        "\"{}\" for {}",
        cert.key_id(),
        if cert.valid_principals().is_empty() {
            "any user".to_string()
        } else {
            cert.valid_principals().join(", ")
        }
    )
}

/// `<identity>.pub`, if present: lets us pick the matching agent key first.
fn read_public_key(identity: &Path) -> Option<PublicKey> {
    let mut pub_path = identity.as_os_str().to_owned();
    pub_path.push(".pub");
    russh::keys::load_public_key(Path::new(&pub_path)).ok()
}

fn methods(set: &russh::MethodSet) -> String {
    let names: Vec<String> = set.iter().map(|m| String::from(<&str>::from(m))).collect();
    if names.is_empty() {
        "nothing more".to_string()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn empty_ssh_auth_sock_is_no_agent() {
        assert_eq!(agent_socket_from(Some("".into())), None);
        assert_eq!(agent_socket_from(None), None);
        assert_eq!(
            agent_socket_from(Some("/run/a.sock".into())),
            Some(PathBuf::from("/run/a.sock"))
        );
    }

    #[test]
    fn a_key_group_or_others_can_read_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id key");
        std::fs::write(&key, "not parsed").unwrap();
        for (mode, ok) in [(0o600, true), (0o400, true), (0o640, false), (0o604, false)] {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
            let result = check_key_permissions(&key);
            assert_eq!(result.is_ok(), ok, "{mode:o}: {result:?}");
            if let Err(msg) = result {
                assert!(
                    msg.contains(&format!(
                        "Permissions 0{mode:o} for '{}' are too open",
                        key.display()
                    )),
                    "{msg}"
                );
                assert!(
                    msg.contains(&format!("chmod 600 '{}'", key.display())),
                    "{msg}"
                );
            }
        }
    }
}
