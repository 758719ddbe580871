//! Each host's SSH settings, from where an operator keeps them: the host's own `ssh:`,
//! then the inventory's `ssh:`, then the ssh_config file (`~/.ssh/config` unless
//! `ssh.config` names another or is `false`), then bootstrap's defaults. The inventory
//! wins because it is what this cluster was written against, as `ssh`'s command-line
//! options win over its config. Each setting keeps where it came from, which
//! `bootstrap plan -v` shows.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::paths;
use super::schema::{Context, Draft, HostDraft, SshDraft, DEFAULT_KNOWN_HOSTS};
use super::schema::{DEFAULT_SSH_PORT, DEFAULT_SSH_USER};
use super::tree::Reader;
use super::Ssh;
use crate::ssh::config::{HostConfig, Proxy, SshConfig, Strictness, Value};

/// Where OpenSSH reads the user's configuration (ssh(1) FILES).
pub const DEFAULT_SSH_CONFIG: &str = "~/.ssh/config";

/// One effective setting and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    /// The inventory's name for it (`user`, `proxyJump`, ...).
    pub setting: &'static str,
    /// As it will be used.
    pub value: String,
    pub from: Source,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// The inventory, at this line.
    Inventory {
        line: usize,
    },
    /// The ssh_config file, `file:line`.
    SshConfig(String),
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Inventory { line } => write!(f, "inventory line {line}"),
            Source::SshConfig(at) => write!(f, "ssh_config {at}"),
            Source::Default => write!(f, "default"),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({})", self.setting, self.value, self.from)
    }
}

/// The settings of every host of `draft`, in order (None where a host had no address);
/// a file that cannot be read, or a setting bootstrap cannot honour, is a problem on `r`.
pub(crate) fn resolve(
    r: &mut Reader,
    draft: &Draft,
    defaults: &SshDraft,
    ctx: &Context,
) -> Vec<Option<Ssh>> {
    let mut files: HashMap<PathBuf, Option<SshConfig>> = HashMap::new();
    let mut warned = HashSet::new();
    draft
        .hosts
        .iter()
        .map(|host| {
            let address = host.address.as_ref()?;
            let config = config_file(r, host, defaults, ctx, &mut files);
            let field = format!("hosts[{}].ssh", host.index);
            let given_user = host.ssh.user.as_deref().or(defaults.user.as_deref());
            let found = match config.map(|c| c.resolve(&address.value, given_user)) {
                None => HostConfig::default(),
                Some(Ok(found)) => found,
                Some(Err(e)) => {
                    r.error_at(address, &field, format!("ssh_config: {e}"), None);
                    return None;
                }
            };
            for w in &found.warnings {
                if warned.insert(w.clone()) {
                    tracing::warn!("ssh_config: {w}");
                }
            }
            let merged = merge(&host.ssh, defaults, found, ctx).and_then(|mut ssh| {
                if let Some(config) = config {
                    ssh.proxy_jump = jump_hosts(config, ssh.proxy_jump)?;
                }
                Ok(ssh)
            });
            match merged {
                Ok(ssh) => Some(ssh),
                Err(problems) => {
                    for (message, help) in problems {
                        r.error_at(address, &field, message, Some(help));
                    }
                    None
                }
            }
        })
        .collect()
}

/// The ssh_config file of `host`, read once per run; None when none is read (or it
/// could not be, which is then a problem).
fn config_file<'a>(
    r: &mut Reader,
    host: &HostDraft,
    defaults: &SshDraft,
    ctx: &Context,
    files: &'a mut HashMap<PathBuf, Option<SshConfig>>,
) -> Option<&'a SshConfig> {
    let (path, at) = match (&host.ssh.config, &defaults.config) {
        (Some(written), _) => (written.clone()?, host.ssh.config_at.clone()),
        (None, Some(written)) => (written.clone()?, defaults.config_at.clone()),
        (None, None) => {
            // The default file is read only if it is there, as ssh does.
            let path = paths::resolve(DEFAULT_SSH_CONFIG, &ctx.base_dir, ctx.home.as_deref())
                .ok()
                .filter(|p| p.exists())?;
            (path, None)
        }
    };
    if !files.contains_key(&path) {
        let loaded = match SshConfig::load(&path, ctx.home.as_deref()) {
            Ok(c) => Some(c),
            Err(e) => {
                let help = "fix the file, name another with `ssh.config: PATH`, or ignore \
                            ssh_config with `ssh.config: false`"
                    .to_string();
                match &at {
                    Some(at) => r.error_at(at, "ssh.config", e, Some(help)),
                    None => r.problems.push(r.src.problem(
                        &draft_start(host),
                        &draft_start(host),
                        "ssh.config",
                        e,
                        Some(help),
                    )),
                }
                None
            }
        };
        files.insert(path.clone(), loaded);
    }
    files.get(&path)?.as_ref()
}

fn draft_start(host: &HostDraft) -> saphyr::Marker {
    host.address
        .as_ref()
        .or(host.name.as_ref())
        .map_or_else(|| saphyr::Marker::new(0, 1, 0), |a| a.start)
}

/// Problems: (message, help).
type Problems = Vec<(String, String)>;

/// The jump hosts with what ssh_config's blocks for them say (`User`, `Port`, `HostName`,
/// `IdentityFile`, `IdentitiesOnly`), as ssh reads its config again for each jump host;
/// what the `ProxyJump` spec wrote (`user@`, `:port`) wins.
fn jump_hosts(
    config: &SshConfig,
    chain: Vec<crate::ssh::Jump>,
) -> Result<Vec<crate::ssh::Jump>, Problems> {
    chain
        .into_iter()
        .map(|mut hop| {
            let found = config
                .resolve(&hop.host, hop.user.as_deref())
                .map_err(|e| {
                    vec![(
                        format!("ssh_config, for the jump host {hop}: {e}"),
                        "fix the file, or ignore it with `ssh.config: false`".to_string(),
                    )]
                })?;
            hop.user = hop.user.or(found.user.map(|v| v.value));
            hop.port = hop.port.or(found.port.map(|v| v.value));
            hop.host_name = found.host_name.map(|v| v.value);
            hop.identity_file = found.identity_files.into_iter().next().map(|v| v.value);
            hop.identities_only = found.identities_only.map(|v| v.value);
            Ok(hop)
        })
        .collect()
}

/// One host's settings from its draft, the inventory's defaults and what ssh_config said.
fn merge(
    own: &SshDraft,
    defaults: &SshDraft,
    found: HostConfig,
    ctx: &Context,
) -> Result<Ssh, Problems> {
    let mut origins = Vec::new();
    let mut problems: Problems = found
        .unsupported
        .iter()
        .map(|u| {
            (
                format!("ssh_config: {u}"),
                "remove it from the ssh_config block for this host, or ignore ssh_config with \
                 `ssh.config: false`"
                    .to_string(),
            )
        })
        .collect();
    // The inventory's value (the host's, else the defaults'), else ssh_config's, else the
    // default; recorded with where it came from.
    let mut pick = |setting: &'static str,
                    written: Option<(Option<&SshDraft>, String)>,
                    config: Option<(String, String)>,
                    default: String| {
        let (value, from) = match (written, config) {
            (Some((level, value)), _) => {
                let line = level.and_then(|l| l.lines.get(setting)).copied();
                (
                    value,
                    line.map_or(Source::Default, |line| Source::Inventory { line }),
                )
            }
            (None, Some((value, at))) => (value, Source::SshConfig(at)),
            (None, None) => (default, Source::Default),
        };
        origins.push(Origin {
            setting,
            value,
            from,
        });
    };
    // Which level wrote a key: the host's own `ssh:`, else the inventory's.
    let level = |has: &dyn Fn(&SshDraft) -> bool| -> Option<&SshDraft> {
        if has(own) {
            Some(own)
        } else if has(defaults) {
            Some(defaults)
        } else {
            None
        }
    };

    let user = own.user.clone().or_else(|| defaults.user.clone());
    pick(
        "user",
        user.clone().map(|u| (level(&|d| d.user.is_some()), u)),
        found.user.as_ref().map(shown),
        DEFAULT_SSH_USER.into(),
    );
    let user = user
        .or_else(|| found.user.as_ref().map(|u| u.value.clone()))
        .unwrap_or_else(|| DEFAULT_SSH_USER.to_string());

    if let Some(h) = &found.host_name {
        pick("hostName", None, Some(shown(h)), String::new());
    }

    let port = own.port.or(defaults.port);
    pick(
        "port",
        port.map(|p| (level(&|d| d.port.is_some()), p.to_string())),
        found.port.as_ref().map(shown),
        DEFAULT_SSH_PORT.to_string(),
    );
    let port = port
        .or(found.port.as_ref().map(|p| p.value))
        .unwrap_or(DEFAULT_SSH_PORT);

    let written_identity = own
        .identity_file
        .clone()
        .or_else(|| defaults.identity_file.clone());
    let config_identity = found.identity_files.first();
    pick(
        "identityFile",
        written_identity.clone().map(|i| {
            (
                level(&|d| d.identity_file.is_some()),
                i.map_or_else(|| "none (ssh-agent)".into(), |p| p.display().to_string()),
            )
        }),
        config_identity.map(|v| (v.value.display().to_string(), v.at.to_string())),
        "none (ssh-agent)".into(),
    );
    let identity_file = match written_identity {
        Some(written) => written,
        None => config_identity.map(|v| v.value.clone()),
    };

    let known = own
        .known_hosts_file
        .clone()
        .or_else(|| defaults.known_hosts_file.clone());
    pick(
        "knownHostsFile",
        known
            .as_ref()
            .map(|k| (level(&|d| d.known_hosts_file.is_some()), display(k))),
        found
            .user_known_hosts_file
            .as_ref()
            .map(|v| (display(&v.value), v.at.to_string())),
        DEFAULT_KNOWN_HOSTS.into(),
    );
    let known_hosts_file = known
        .or_else(|| {
            found
                .user_known_hosts_file
                .as_ref()
                .map(|v| v.value.clone())
        })
        .unwrap_or_else(|| {
            // Without HOME, `checks` reports the missing default before an inventory is
            // ever built; the placeholder is never used.
            paths::resolve(DEFAULT_KNOWN_HOSTS, &ctx.base_dir, ctx.home.as_deref())
                .unwrap_or_default()
        });

    let policy = own.host_key_policy.or(defaults.host_key_policy);
    let config_policy = match &found.strict_host_key_checking {
        Some(v) => match v.value {
            Strictness::Policy(p) => Some((p, v.at.to_string())),
            Strictness::Off if policy.is_none() => {
                problems.push((
                    format!(
                        "ssh_config {}: `StrictHostKeyChecking no` would trust any host \
                         key; bootstrap always checks them",
                        v.at
                    ),
                    "set `ssh.hostKeyPolicy: accept-new` in the inventory (it wins over \
                     ssh_config) to record keys of new hosts"
                        .into(),
                ));
                None
            }
            Strictness::Off => None,
        },
        None => None,
    };
    pick(
        "hostKeyPolicy",
        policy.map(|p| {
            (
                level(&|d| d.host_key_policy.is_some()),
                p.name().to_string(),
            )
        }),
        config_policy
            .as_ref()
            .map(|(p, at)| (p.name().to_string(), at.clone())),
        crate::ssh::HostKeyPolicy::default().name().to_string(),
    );
    let host_key_policy = policy.or(config_policy.map(|(p, _)| p)).unwrap_or_default();

    let jumps = own
        .proxy_jump
        .clone()
        .or_else(|| defaults.proxy_jump.clone());
    let config_jumps = match &found.proxy {
        Some(Value {
            value: Proxy::Command(command),
            at,
        }) if jumps.is_none() => {
            problems.push((
                format!(
                    "ssh_config {at}: ProxyCommand `{command}` is not supported: bootstrap \
                     speaks SSH itself and reaches jump hosts over their own SSH connection"
                ),
                "write the bastion as `ProxyJump [user@]bastion[:port]` (what `ssh -W %h:%p \
                 bastion` does), or set `ssh.proxyJump` in the inventory"
                    .into(),
            ));
            None
        }
        Some(Value {
            value: Proxy::Jump(chain),
            at,
        }) => Some((chain.clone(), at.to_string())),
        _ => None,
    };
    pick(
        "proxyJump",
        jumps
            .as_ref()
            .map(|j| (level(&|d| d.proxy_jump.is_some()), chain(j))),
        config_jumps.as_ref().map(|(j, at)| (chain(j), at.clone())),
        "none".into(),
    );
    let proxy_jump = jumps.or(config_jumps.map(|(j, _)| j)).unwrap_or_default();

    let from_config = |setting: &'static str, v: Option<(String, String)>, default: &str| {
        (setting, v, default.to_string())
    };
    for (setting, v, default) in [
        from_config(
            "identitiesOnly",
            found.identities_only.as_ref().map(shown),
            "no",
        ),
        from_config(
            "certificateFile",
            found
                .certificate_files
                .first()
                .map(|v| (display(&v.value), v.at.to_string())),
            "<identityFile>-cert.pub",
        ),
        from_config(
            "connectTimeout",
            found
                .connect_timeout
                .as_ref()
                .map(|v| (secs(v.value), v.at.to_string())),
            "30s (--connect-timeout wins)",
        ),
        from_config(
            "hashKnownHosts",
            found.hash_known_hosts.as_ref().map(shown),
            "no",
        ),
        from_config(
            "serverAliveInterval",
            found
                .server_alive_interval
                .as_ref()
                .map(|v| (secs(v.value), v.at.to_string())),
            "15s",
        ),
    ] {
        pick(setting, None, v, default);
    }

    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Ssh {
        user,
        port,
        identity_file,
        known_hosts_file,
        host_key_policy,
        proxy_jump,
        host_name: found.host_name.map(|h| h.value),
        identities_only: found.identities_only.is_some_and(|v| v.value),
        certificate_file: found.certificate_files.into_iter().next().map(|v| v.value),
        connect_timeout: found.connect_timeout.map(|v| v.value),
        server_alive_interval: found.server_alive_interval.map(|v| v.value),
        hash_known_hosts: found.hash_known_hosts.is_some_and(|v| v.value),
        origins,
    })
}

/// A value from ssh_config as `plan -v` shows it, with its `file:line`.
fn shown<T: fmt::Display>(v: &Value<T>) -> (String, String) {
    (v.value.to_string(), v.at.to_string())
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

fn chain(jumps: &[crate::ssh::Jump]) -> String {
    if jumps.is_empty() {
        return "none".into();
    }
    jumps
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::super::{parse_in, Inventory, InventoryError};
    use super::*;

    /// Parses `inventory` with HOME at a fresh directory whose `~/.ssh/config` is `config`.
    fn with_config(
        config: &str,
        inventory: &str,
    ) -> (tempfile::TempDir, Result<Inventory, InventoryError>) {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
        std::fs::write(home.path().join(".ssh/config"), config).unwrap();
        let ctx = Context {
            base_dir: PathBuf::from("/srv"),
            home: Some(home.path().to_path_buf()),
        };
        let inv = parse_in(Path::new("/srv/inv.yaml"), inventory.to_string(), &ctx);
        (home, inv)
    }

    fn origin<'a>(ssh: &'a Ssh, setting: &str) -> &'a Origin {
        ssh.origins
            .iter()
            .find(|o| o.setting == setting)
            .unwrap_or_else(|| panic!("{setting}: {:?}", ssh.origins))
    }

    const CONFIG: &str = "\
Host web1
  HostName 10.0.0.9
  User deploy
  Port 2200
  IdentityFile ~/.ssh/web
  StrictHostKeyChecking accept-new
  ProxyJump gw
Host *
  User other
  ServerAliveInterval 0
";

    #[test]
    fn the_inventory_wins_then_ssh_config_then_the_default() {
        let (home, inv) = with_config(
            CONFIG,
            "ssh: {user: admin}\nhosts:\n\
             \x20 - {name: a, address: web1, role: control-plane, ssh: {port: 22}}\n\
             \x20 - {name: b, address: web2, role: worker}\n",
        );
        let inv = inv.unwrap_or_else(|e| panic!("{}", e.render_plain()));
        let file = home.path().join(".ssh/config").display().to_string();
        let a = &inv.hosts[0].ssh;
        assert_eq!(a.user, "admin");
        assert_eq!(origin(a, "user").from, Source::Inventory { line: 1 });
        assert_eq!(a.port, 22);
        assert_eq!(origin(a, "port").from, Source::Inventory { line: 3 });
        assert_eq!(a.host_name.as_deref(), Some("10.0.0.9"));
        assert_eq!(a.identity_file, Some(home.path().join(".ssh/web")));
        assert_eq!(
            origin(a, "identityFile").from,
            Source::SshConfig(format!("{file}:5"))
        );
        assert_eq!(a.host_key_policy, crate::ssh::HostKeyPolicy::AcceptNew);
        // The jump host `gw` gets `Host *`'s User, as ssh would log in to it.
        assert_eq!(a.proxy_jump[0].to_string(), "other@gw");
        assert_eq!(
            origin(a, "proxyJump").to_string(),
            format!("proxyJump gw (ssh_config {file}:7)")
        );
        assert_eq!(a.server_alive_interval, Some(Duration::ZERO));
        assert_eq!(
            origin(a, "knownHostsFile").to_string(),
            "knownHostsFile ~/.ssh/known_hosts (default)"
        );
        let target = super::super::target(&inv.hosts[0], None);
        assert_eq!((target.address.as_str(), target.port), ("10.0.0.9", 22));
        // web2 matches only `Host *`: its User loses to the inventory's, the rest default.
        let b = &inv.hosts[1].ssh;
        assert_eq!(
            (b.user.as_str(), b.port, b.host_name.as_deref()),
            ("admin", 22, None)
        );
        assert_eq!(origin(b, "port").from, Source::Default);
        assert!(b.proxy_jump.is_empty());
        assert_eq!(b.identity_file, None);
    }

    #[test]
    fn a_jump_host_takes_its_own_block_of_ssh_config() {
        let config = "Host gw\n  HostName 10.9.9.9\n  User jumper\n  Port 2201\n  \
                      IdentityFile ~/.ssh/gw\n  IdentitiesOnly yes\n\
                      Host web*\n  ProxyJump gw,ops@gw2:2222\n\
                      Host *\n  User fallback\n  Port 2299\n";
        let hosts =
            "ssh: {user: admin}\nhosts:\n  - {name: a, address: web1, role: control-plane}\n";
        let (home, inv) = with_config(config, hosts);
        let inv = inv.unwrap_or_else(|e| panic!("{}", e.render_plain()));
        let chain = &inv.hosts[0].ssh.proxy_jump;
        assert_eq!(chain[0].to_string(), "jumper@gw:2201");
        assert_eq!(chain[0].host_name.as_deref(), Some("10.9.9.9"));
        assert_eq!(chain[0].identity_file, Some(home.path().join(".ssh/gw")));
        assert_eq!(chain[0].identities_only, Some(true));
        // What the spec wrote wins over the jump host's block.
        assert_eq!(chain[1].to_string(), "ops@gw2:2222");
        assert_eq!(
            (chain[1].identity_file.as_ref(), chain[1].identities_only),
            (None, None)
        );
        // The target's own user and port: the inventory's and `Host *`'s.
        assert_eq!(
            (inv.hosts[0].ssh.user.as_str(), inv.hosts[0].ssh.port),
            ("admin", 2299)
        );
    }

    #[test]
    fn ssh_config_false_or_another_file() {
        let inv =
            "ssh: {config: false}\nhosts:\n  - {name: a, address: web1, role: control-plane}\n";
        let (_home, inv) = with_config(CONFIG, inv);
        let a = &inv.unwrap().hosts[0].ssh;
        assert_eq!((a.user.as_str(), a.host_name.as_deref()), ("root", None));
        // Per host; a file named there must exist.
        let inv = "hosts:\n  - {name: a, address: web1, role: control-plane, ssh: {config: /nonexistent/c}}\n";
        let (_home, inv) = with_config(CONFIG, inv);
        let err = inv.unwrap_err().render_plain();
        assert!(
            err.contains("cannot read ssh_config file /nonexistent/c"),
            "{err}"
        );
        assert!(err.contains("inv.yaml:2:"), "{err}");
    }

    #[test]
    fn what_ssh_config_asks_that_bootstrap_cannot_do_is_an_error_unless_the_inventory_decides() {
        let config = "Host *\n  ProxyCommand ssh -W %h:%p gw\n  StrictHostKeyChecking no\n";
        let hosts = "hosts:\n  - {name: a, address: web1, role: control-plane}\n";
        let (_home, inv) = with_config(config, hosts);
        let err = inv.unwrap_err().render_plain();
        assert!(err.contains("config:2: ProxyCommand `ssh"), "{err}");
        assert!(
            err.contains("config:3:\n  │ `StrictHostKeyChecking no` would trust"),
            "{err}"
        );
        let decided = format!("ssh: {{proxyJump: gw, hostKeyPolicy: strict}}\n{hosts}");
        let (_home, inv) = with_config(config, &decided);
        let a = &inv.unwrap_or_else(|e| panic!("{}", e.render_plain())).hosts[0].ssh;
        assert_eq!(a.host_key_policy, crate::ssh::HostKeyPolicy::Strict);
    }
}
