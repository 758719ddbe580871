//! Public key authentication: the inventory's identity file, then ssh-agent.
//!
//! bootstrap never prompts (it runs unattended across many hosts), so a passphrase
//! protected key is only usable through ssh-agent. Every failure lists what was tried so
//! the person can tell a wrong key from a missing agent from a server that refuses
//! public keys.

use std::path::Path;
use std::sync::Arc;

use russh::client::{AuthResult, Handle, Handler};
use russh::keys::agent::client::AgentClient;
use russh::keys::agent::AgentIdentity;
use russh::keys::{PrivateKeyWithHashAlg, PublicKey};

use super::known_hosts::describe;

/// Authenticates `user` on `handle` with the identity file, then the agent listening on
/// `agent_socket` (normally `$SSH_AUTH_SOCK`); on failure, the reason (what was tried).
pub async fn authenticate<H: Handler>(
    handle: &mut Handle<H>,
    user: &str,
    identity_file: Option<&Path>,
    agent_socket: Option<&Path>,
) -> Result<(), String> {
    let mut tried: Vec<String> = Vec::new();
    let mut encrypted: Option<&Path> = None;
    let mut preferred_public: Option<PublicKey> = None;

    if let Some(path) = identity_file {
        match russh::keys::load_secret_key(path, None) {
            Ok(key) => {
                let desc = describe(key.public_key());
                let hash = rsa_hash(handle, key.algorithm().is_rsa()).await?;
                let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
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
            Err(e) => tried.push(format!(
                "identity file {}: cannot be loaded: {e}",
                path.display()
            )),
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
                match agent_auth(handle, user, &mut agent, preferred_public.as_ref()).await {
                    Ok(true) => return Ok(()),
                    Ok(false) if preferred_public.is_some() => tried.push(format!(
                        "ssh-agent at {}: does not hold the key of the encrypted identity file, \
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

/// Tries the agent's keys, the identity file's own key first when known. Ok(false) when
/// none was accepted.
async fn agent_auth<H: Handler>(
    handle: &mut Handle<H>,
    user: &str,
    agent: &mut AgentClient<tokio::net::UnixStream>,
    preferred: Option<&PublicKey>,
) -> Result<bool, String> {
    let identities = agent
        .request_identities()
        .await
        .map_err(|e| format!("cannot list keys: {e}"))?;
    let mut keys: Vec<PublicKey> = identities
        .into_iter()
        .filter_map(|id| match id {
            AgentIdentity::PublicKey { key, .. } => Some(key),
            AgentIdentity::Certificate { .. } => None,
        })
        .collect();
    if keys.is_empty() {
        return Err("holds no keys".to_string());
    }
    if let Some(p) = preferred {
        keys.sort_by_key(|k| k.key_data() != p.key_data());
    }
    for key in keys {
        let hash = rsa_hash(handle, key.algorithm().is_rsa()).await?;
        match handle
            .authenticate_publickey_with(user, key, hash, agent)
            .await
        {
            Ok(AuthResult::Success) => return Ok(true),
            Ok(AuthResult::Failure { .. }) => continue,
            Err(e) => return Err(format!("signing failed: {e}")),
        }
    }
    Ok(false)
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
