//! Jump hosts (OpenSSH's `ProxyJump`): hosts in a private network reached through a
//! bastion. Each jump host is connected once per run, host-key checked and authenticated
//! like any host, and every target behind it rides a `direct-tcpip` channel of that one
//! connection (an SSH session inside the channel, end to end with the target): a hundred
//! hosts behind one bastion cost one bastion connection, not a hundred, and the bastion's
//! `MaxStartups` and per-connection auth limits are not hit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use super::{ConnectOptions, Connection, SshError, Target};

/// One hop of a `ProxyJump` chain: `[user@]host[:port]`, and what ssh_config's block for
/// that host adds (as ssh, which connects to a jump host like to any host named `host`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Jump {
    /// None: ssh_config's `User` for the jump host, else the target's user.
    pub user: Option<String>,
    pub host: String,
    /// None: not written (ssh_config's `Port` for it, else 22).
    pub port: Option<u16>,
    /// ssh_config's `HostName` for the jump host: where to connect.
    pub host_name: Option<String>,
    /// ssh_config's `IdentityFile` for the jump host; None: the target's.
    pub identity_file: Option<std::path::PathBuf>,
    /// ssh_config's `IdentitiesOnly` for the jump host; None: the target's.
    pub identities_only: Option<bool>,
}

impl Jump {
    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(22)
    }
}

impl std::fmt::Display for Jump {
    /// As OpenSSH spells it: `user@host:port`, the user and port 22 left out, an IPv6
    /// address in brackets when a port follows.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        match (self.port, self.host.contains(':')) {
            (None, _) => write!(f, "{}", self.host),
            (Some(p), true) => write!(f, "[{}]:{p}", self.host),
            (Some(p), false) => write!(f, "{}:{p}", self.host),
        }
    }
}

/// Parses a `ProxyJump` value: comma-separated hops, each `[user@]host[:port]` or
/// `ssh://[user@]host[:port]` (ssh_config(5)), an IPv6 address in brackets. `none` is no
/// jump host (an empty chain), as in ssh_config.
pub fn parse_chain(text: &str) -> Result<Vec<Jump>, String> {
    // ssh_config's parse_jump compares with strcasecmp.
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    text.split(',').map(|hop| parse_hop(hop.trim())).collect()
}

fn parse_hop(hop: &str) -> Result<Jump, String> {
    let bad = |why: &str| format!("`{hop}` is not a jump host ([user@]host[:port]): {why}");
    let rest = hop.strip_prefix("ssh://").unwrap_or(hop);
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (user, rest) = match rest.rsplit_once('@') {
        Some(("", r)) => return Err(bad(&format!("empty user before @{r}"))),
        Some((u, r)) => (Some(u.to_string()), r),
        None => (None, rest),
    };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| bad("`[` without `]`"))?;
        match after {
            "" => (host, None),
            p => (
                host,
                Some(p.strip_prefix(':').ok_or_else(|| bad("junk after `]`"))?),
            ),
        }
    } else {
        match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    if host.contains(|c: char| c.is_whitespace() || c == '/' || c == '@') {
        return Err(bad("the host name has a character host names do not"));
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad(&format!("`{p}` is not a port number (1-65535)")))?,
        ),
    };
    if user
        .as_deref()
        .is_some_and(|u| u.contains(char::is_whitespace))
    {
        return Err(bad("the user name has a space"));
    }
    Ok(Jump {
        user,
        host: host.to_string(),
        port,
        ..Jump::default()
    })
}

/// The connections to jump hosts of one run, by chain (a chain's prefixes are chains too,
/// so two chains through the same first bastion share its connection) and by how the
/// target logs in to them: hosts whose settings differ (user, key, known_hosts file, host
/// key policy; per-host `ssh:` overrides) do not share a connection, or a bastion checked
/// against one host's known_hosts file would serve a host whose file does not vouch for
/// it.
#[derive(Default, Clone)]
pub(crate) struct Pool {
    slots: Arc<Mutex<HashMap<SlotKey, SharedSlot>>>,
}

/// What makes two jump host connections the same one: the hops with their users filled
/// in (a hop without `user@` logs in as the target's user) and the login settings the
/// jump hosts take from the target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SlotKey {
    chain: Vec<Jump>,
    identity_file: Option<std::path::PathBuf>,
    certificate_file: Option<std::path::PathBuf>,
    identities_only: bool,
    known_hosts_file: std::path::PathBuf,
    policy: super::HostKeyPolicy,
}

impl SlotKey {
    fn new(chain: &[Jump], target: &Target) -> SlotKey {
        SlotKey {
            chain: chain
                .iter()
                .map(|j| Jump {
                    user: Some(j.user.clone().unwrap_or_else(|| target.user.clone())),
                    ..j.clone()
                })
                .collect(),
            identity_file: target.identity_file.clone(),
            certificate_file: target.certificate_file.clone(),
            identities_only: target.identities_only,
            known_hosts_file: target.known_hosts_file.clone(),
            policy: target.host_key_policy,
        }
    }
}

/// One chain's slot; its lock is held while connecting to that hop.
type SharedSlot = Arc<tokio::sync::Mutex<Slot>>;

/// A chain's connection, or its last failure and when it happened.
#[derive(Default)]
enum Slot {
    #[default]
    Never,
    Open(Arc<Connection>),
    Failed(SshError, Instant),
}

impl Pool {
    /// Connects to `target`, through its jump hosts if it has any.
    pub async fn connect(
        &self,
        target: &Target,
        options: &ConnectOptions,
    ) -> Result<Connection, SshError> {
        let via = if target.jumps.is_empty() {
            None
        } else {
            let via = self.via(&target.jumps, target, options).await;
            Some(via.map_err(|(jump, e)| SshError::Jump {
                host: target.host.clone(),
                via: jump.to_string(),
                unanswered: e.waiting_helps(),
                reason: e.detail(),
            })?)
        };
        Connection::connect_over(target, options, via).await
    }

    /// The open connection to the last host of `chain` (made now if there is none, or
    /// it closed, or it failed before this call started); on failure, which hop failed.
    async fn via(
        &self,
        chain: &[Jump],
        target: &Target,
        options: &ConnectOptions,
    ) -> Result<Arc<Connection>, (Jump, SshError)> {
        let asked = Instant::now();
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots
                .entry(SlotKey::new(chain, target))
                .or_default()
                .clone()
        };
        // Held while connecting: the other targets behind this hop wait for this one
        // connection instead of each opening their own.
        let mut slot = slot.lock().await;
        let hop = chain.last().expect("a chain has a hop").clone();
        match &*slot {
            Slot::Open(conn) if !conn.is_closed() => return Ok(conn.clone()),
            // Failed while this caller waited: that attempt was this caller's too.
            Slot::Failed(e, at) if *at >= asked => return Err((hop, e.clone())),
            _ => {}
        }
        let parent = match &chain[..chain.len() - 1] {
            [] => None,
            before => Some(Box::pin(self.via(before, target, options)).await?),
        };
        // The jump host's own settings (its spec, its ssh_config block), else the
        // target's: its key, known_hosts file and host key policy.
        let jump_target = Target {
            host: hop.to_string(),
            address: hop.host_name.clone().unwrap_or_else(|| hop.host.clone()),
            port: hop.port(),
            user: hop.user.clone().unwrap_or_else(|| target.user.clone()),
            identity_file: hop
                .identity_file
                .clone()
                .or_else(|| target.identity_file.clone()),
            identities_only: hop.identities_only.unwrap_or(target.identities_only),
            jumps: chain[..chain.len() - 1].to_vec(),
            ..target.clone()
        };
        match Connection::connect_over(&jump_target, options, parent).await {
            Ok(conn) => {
                let conn = Arc::new(conn);
                *slot = Slot::Open(conn.clone());
                Ok(conn)
            }
            Err(e) => {
                *slot = Slot::Failed(e.clone(), Instant::now());
                Err((hop, e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(user: Option<&str>, host: &str, port: Option<u16>) -> Jump {
        Jump {
            user: user.map(Into::into),
            host: host.into(),
            port,
            ..Jump::default()
        }
    }

    #[test]
    fn chains_in_openssh_syntax() {
        assert_eq!(
            parse_chain("bastion").unwrap(),
            [hop(None, "bastion", None)]
        );
        assert_eq!(
            parse_chain("admin@10.0.0.5:2222, ssh://ops@[fd00::1]:22,[fd00::2]").unwrap(),
            [
                hop(Some("admin"), "10.0.0.5", Some(2222)),
                hop(Some("ops"), "fd00::1", Some(22)),
                hop(None, "fd00::2", None)
            ]
        );
        assert_eq!(parse_chain("none").unwrap(), []);
        assert_eq!(parse_chain("None").unwrap(), []);
        for bad in [
            "", "a@", "@b", "h:0", "h:99999", "h:x", "[fd00::1", "a,,b", "h o",
        ] {
            assert!(parse_chain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn display_is_the_spelling_parse_reads() {
        for text in ["bastion", "admin@10.0.0.5:2222", "[fd00::1]:2200", "u@h"] {
            let chain = parse_chain(text).unwrap();
            assert_eq!(chain[0].to_string(), text);
        }
    }
}
