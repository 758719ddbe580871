//! SSH to the hosts: one russh connection per host for the whole run, host keys checked
//! against known_hosts (strictly, or OpenSSH's accept-new), commands run on channels of
//! that connection, non-root users through `sudo -n`. Hosts that are still booting are
//! waited for when asked (`ConnectOptions::wait_for_ssh`); hosts behind bastions are
//! reached through one connection per jump host (`jump`).
//!
//! Submodules: `known_hosts` (strict host key checking), `auth` (identity file, then
//! ssh-agent), `command` (the quoted exec string and sudo refusals), `redact` (secrets out
//! of everything humans and logs see; also used by `ui` and `runlog`).

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

pub use redact::redact;

pub mod auth;
pub mod command;
pub mod config;
pub mod jump;
pub mod known_hosts;
pub mod redact;
mod wait;

pub use jump::Jump;
pub use known_hosts::HostKeyPolicy;
use known_hosts::{KnownHosts, Rejection};

/// Where and how to connect to one host.
#[derive(Debug, Clone)]
pub struct Target {
    /// The inventory's host name, for messages.
    pub host: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    pub identity_file: Option<std::path::PathBuf>,
    pub known_hosts_file: std::path::PathBuf,
    /// What to do with a host the known_hosts file does not know yet.
    pub host_key_policy: HostKeyPolicy,
    /// The `ProxyJump` chain to reach it through, first hop first (empty: directly).
    /// Each jump host is checked against the same known_hosts file and policy and logs in
    /// as its hop says (user, key, IdentitiesOnly from its spec or ssh_config block),
    /// else as this target does.
    pub jumps: Vec<Jump>,
    /// Bounds each of one attempt's TCP connect, SSH handshake and authentication.
    pub connect_timeout: Duration,
    /// Offer the server only the identity file's key (and its certificate), never the
    /// agent's other keys (ssh_config's `IdentitiesOnly`): servers cut a client off at
    /// their `MaxAuthTries`, which an agent full of keys reaches before the right one.
    pub identities_only: bool,
    /// The certificate to log in with (ssh_config's `CertificateFile`); None:
    /// `<identity_file>-cert.pub` if there is one.
    pub certificate_file: Option<std::path::PathBuf>,
    /// Keepalive interval for this host (ssh_config's `ServerAliveInterval`; zero: none);
    /// None: `ConnectOptions::keepalive_interval`.
    pub server_alive_interval: Option<Duration>,
    /// Under accept-new, record the key with the host name hashed (ssh_config's
    /// `HashKnownHosts`).
    pub hash_known_hosts: bool,
}

/// `--connect-timeout`'s default, also used where there is no such option (kubeconfig).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// One command to run on a host.
#[derive(Debug, Clone, Default)]
pub struct RemoteCommand {
    /// A POSIX shell script, run with `sh -c`. Values interpolated into it must be
    /// quoted with `shlex::try_quote` by whoever builds it.
    pub script: String,
    /// Bytes fed to the command's standard input (file uploads), if any.
    pub stdin: Option<Vec<u8>>,
    /// Run as root: through `sudo -n` when the login user is not root.
    pub root: bool,
    /// Substrings that must never appear in logs or messages (tokens, keys): replaced by
    /// `<redacted>` in everything this command's output and script produce for humans.
    pub secrets: Vec<String>,
}

/// What a command produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Output {
    pub status: u32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

#[derive(Debug, Clone, thiserror::Error, miette::Diagnostic)]
pub enum SshError {
    #[error("{host}: cannot connect to {address}:{port}: {reason}")]
    Connect {
        host: String,
        address: String,
        port: u16,
        reason: String,
    },
    #[error("{host}: host key is not trusted: {reason}")]
    HostKey { host: String, reason: String },
    #[error("{host}: authentication as {user} failed: {reason}")]
    Auth {
        host: String,
        user: String,
        reason: String,
    },
    #[error("{host}: user {user} cannot run commands as root without a password (sudo -n failed): {reason}")]
    Sudo {
        host: String,
        user: String,
        reason: String,
    },
    #[error("{host}: connection lost: {reason}")]
    Lost { host: String, reason: String },
    /// The command could not be sent at all (e.g. a NUL byte in the script).
    #[error("{host}: cannot run command: {reason}")]
    Command { host: String, reason: String },
    /// A jump host on the way to the host failed (not the host itself).
    #[error("{host}: via bastion {via}: {reason}")]
    Jump {
        host: String,
        via: String,
        reason: String,
        /// The jump host did not answer (waiting may help), as `Connect`.
        unanswered: bool,
    },
}

impl SshError {
    /// The inventory host name the error is about.
    pub fn host(&self) -> &str {
        match self {
            SshError::Connect { host, .. }
            | SshError::HostKey { host, .. }
            | SshError::Auth { host, .. }
            | SshError::Sudo { host, .. }
            | SshError::Lost { host, .. }
            | SshError::Command { host, .. }
            | SshError::Jump { host, .. } => host,
        }
    }

    /// The message without the leading `host: `.
    pub fn detail(&self) -> String {
        let text = self.to_string();
        match text.strip_prefix(&format!("{}: ", self.host())) {
            Some(rest) => rest.to_string(),
            None => text,
        }
    }

    /// Whether the host (or a jump host on the way) did not answer at all: refused or
    /// silent TCP, no SSH handshake. A booting machine looks like this; trying again
    /// later may work. A wrong host key or a refused login are answers.
    pub fn waiting_helps(&self) -> bool {
        matches!(
            self,
            SshError::Connect { .. }
                | SshError::Jump {
                    unanswered: true,
                    ..
                }
        )
    }

    /// The same error with `note` appended to its reason.
    pub(crate) fn noted(mut self, note: &str) -> SshError {
        match &mut self {
            SshError::Connect { reason, .. }
            | SshError::HostKey { reason, .. }
            | SshError::Auth { reason, .. }
            | SshError::Sudo { reason, .. }
            | SshError::Lost { reason, .. }
            | SshError::Command { reason, .. }
            | SshError::Jump { reason, .. } => reason.push_str(note),
        }
        self
    }
}

/// How many channels one connection runs at once. OpenSSH's `MaxSessions` defaults to
/// 10 and refuses the 11th open channel outright ("open failed"), so more concurrent
/// commands queue here instead of failing on the server.
pub const MAX_CHANNELS: usize = 8;

/// How many hosts `connect_all` dials at once by default. Bounded so a big inventory
/// does not exhaust file descriptors or trip sshd's `MaxStartups` behind a NAT.
pub const DEFAULT_CONNECT_PARALLELISM: usize = 64;

/// Called with a line for humans while `connect_all_with` waits for hosts (which ones,
/// for how long yet, the last error).
pub type Notify = Arc<dyn Fn(String) + Send + Sync>;

/// Connection settings that are not per host: where ssh-agent listens, how quickly a
/// silent server is declared lost, how long to wait for hosts that are still booting.
#[derive(Clone)]
pub struct ConnectOptions {
    /// The ssh-agent socket; `None`: no agent. Default: `$SSH_AUTH_SOCK` (unset or empty:
    /// none).
    pub agent_socket: Option<std::path::PathBuf>,
    /// A keepalive request after this long without a word from the server...
    pub keepalive_interval: Duration,
    /// ...and the connection is lost after this many unanswered ones. Default 15 s x 4
    /// (about a minute), like `ServerAliveInterval 15` / `ServerAliveCountMax 4`: a frozen
    /// or powered-off host fails its commands instead of hanging the run.
    pub keepalive_max: usize,
    /// `connect_all_with` retries a host that does not answer (TCP refused or silent, no
    /// SSH handshake: a machine still booting) with backoff until this much time has
    /// passed since the run started connecting. Zero: one attempt. Host key and
    /// authentication failures are never retried: waiting does not fix them.
    pub wait_for_ssh: Duration,
    /// Where progress lines about the wait go (None: nowhere).
    pub notify: Option<Notify>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            agent_socket: auth::agent_socket_from(std::env::var_os("SSH_AUTH_SOCK")),
            keepalive_interval: Duration::from_secs(15),
            keepalive_max: 4,
            wait_for_ssh: Duration::ZERO,
            notify: None,
        }
    }
}

/// An open connection to one host.
pub struct Connection {
    pub target: Target,
    /// The jump host this connection rides on, kept open while this one is.
    _via: Option<Arc<Connection>>,
    /// Under accept-new, what was recorded about this host's key (for the person to
    /// read: the fingerprint and where it was written). None: the key was known.
    pub host_key_added: Option<String>,
    handle: russh::client::Handle<Client>,
    channels: Arc<Semaphore>,
    /// The channels of ours the server has accepted: see `open_session`.
    open: OpenChannels,
}

/// The channels of a connection that the server accepted and that have not ended (fewer
/// than the permits taken while opens wait out refusals), and a signal when that changes.
#[derive(Default)]
struct OpenChannels {
    count: AtomicUsize,
    /// Bumped by every accept and every end: "did anything change during my attempt?"
    changes: AtomicU64,
    changed: tokio::sync::Notify,
}

impl OpenChannels {
    fn changes(&self) -> u64 {
        self.changes.load(Ordering::SeqCst)
    }

    fn bump(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
    }
}

/// One accepted channel counted in [`OpenChannels`] for as long as this lives (also when
/// the command's future is dropped).
struct OpenChannel<'a>(&'a OpenChannels);

impl<'a> OpenChannel<'a> {
    fn count(open: &'a OpenChannels) -> Self {
        open.count.fetch_add(1, Ordering::SeqCst);
        open.bump();
        OpenChannel(open)
    }
}

impl Drop for OpenChannel<'_> {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::SeqCst);
        self.0.bump();
    }
}

/// The russh event handler: only decides whether the server's host key is trusted, and
/// keeps the detailed rejection for the error message (russh only reports "unknown key").
struct Client {
    known: KnownHosts,
    policy: HostKeyPolicy,
    rejection: Arc<Mutex<Option<Rejection>>>,
    /// Under accept-new, the unknown key the server presented; recorded only once the
    /// handshake proved the server holds its private half.
    new_key: Arc<Mutex<Option<russh::keys::PublicKey>>>,
}

impl russh::client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let (key, certificate_rejection) = match key {
            russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } => (key.clone(), None),
            russh::keys::PublicKeyOrCertificate::Certificate(cert) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                match self.known.verify_certificate(cert, now) {
                    Ok(()) => return Ok(true),
                    // As ssh: a certificate that does not verify is retried as the plain
                    // key inside it, which known_hosts may record.
                    Err(r) => (
                        russh::keys::PublicKey::from(cert.public_key().clone()),
                        Some(r),
                    ),
                }
            }
        };
        match self.known.verify(&key) {
            Ok(()) => Ok(true),
            Err(Rejection::Unknown { .. }) if self.policy == HostKeyPolicy::AcceptNew => {
                *self.new_key.lock().unwrap_or_else(|e| e.into_inner()) = Some(key);
                Ok(true)
            }
            Err(rejection) => {
                // An unknown plain key says less than why the certificate failed.
                let rejection = match (rejection, certificate_rejection) {
                    (Rejection::Unknown { .. }, Some(cert)) => cert,
                    (plain, _) => plain,
                };
                *self.rejection.lock().unwrap_or_else(|e| e.into_inner()) = Some(rejection);
                Ok(false)
            }
        }
    }
}

impl Connection {
    /// Connects, checks the host key, authenticates.
    ///
    /// The host key must already be in `target.known_hosts_file` under the address (as
    /// `[address]:port` when the port is not 22), exactly as `ssh -o
    /// StrictHostKeyChecking=yes -p PORT user@address` would require; under accept-new
    /// an unknown host's key is appended to it. `connect_timeout` bounds each of: the
    /// TCP connect, the SSH handshake, authentication.
    pub async fn connect(target: &Target) -> Result<Connection, SshError> {
        Connection::connect_with(target, &ConnectOptions::default()).await
    }

    /// `connect`, with the ssh-agent socket given explicitly instead of taken from
    /// `SSH_AUTH_SOCK` (None: no agent).
    pub async fn connect_with_agent(
        target: &Target,
        agent_socket: Option<&std::path::Path>,
    ) -> Result<Connection, SshError> {
        let options = ConnectOptions {
            agent_socket: agent_socket.map(|p| p.to_path_buf()),
            ..ConnectOptions::default()
        };
        Connection::connect_with(target, &options).await
    }

    /// `connect` with explicit options.
    pub async fn connect_with(
        target: &Target,
        options: &ConnectOptions,
    ) -> Result<Connection, SshError> {
        jump::Pool::default().connect(target, options).await
    }

    /// Connects to `target` over TCP, or through a `direct-tcpip` channel of the jump
    /// host connection `via`.
    pub(crate) async fn connect_over(
        target: &Target,
        options: &ConnectOptions,
        via: Option<Arc<Connection>>,
    ) -> Result<Connection, SshError> {
        let host = target.host.clone();
        let connect_err = |reason: String| SshError::Connect {
            host: host.clone(),
            address: target.address.clone(),
            port: target.port,
            reason,
        };
        if let Some(key) = &target.identity_file {
            auth::check_key_permissions(key).map_err(|reason| SshError::Auth {
                host: host.clone(),
                user: target.user.clone(),
                reason,
            })?;
        }
        let known = KnownHosts::load(
            &target.known_hosts_file,
            &target.address,
            target.port,
            target.host_key_policy,
        )
        .map_err(|r| SshError::HostKey {
            host: host.clone(),
            reason: r.to_string(),
        })?;

        let mut preferred = russh::Preferred::default();
        preferred.key = Cow::Owned(known.preferred_algorithms(&preferred.key));
        if known.has_cert_authority() {
            // Ask for a host certificate first, as ssh does when known_hosts has a
            // @cert-authority line for the host.
            preferred.host_key_certificates = preferred.key.clone();
        }
        let config = Arc::new(russh::client::Config {
            preferred,
            keepalive_interval: match target.server_alive_interval {
                None => Some(options.keepalive_interval),
                Some(Duration::ZERO) => None,
                Some(interval) => Some(interval),
            },
            keepalive_max: options.keepalive_max,
            nodelay: true,
            ..Default::default()
        });

        let limit = target.connect_timeout;
        let stream: Box<dyn Transport> = match &via {
            None => Box::new(
                tcp_connect(&target.address, target.port, limit)
                    .await
                    .map_err(connect_err)?,
            ),
            Some(jump) => Box::new(
                jump.forward(&target.address, target.port, limit)
                    .await
                    .map_err(connect_err)?,
            ),
        };

        let rejection = Arc::new(Mutex::new(None));
        let new_key = Arc::new(Mutex::new(None));
        let client = Client {
            known,
            policy: target.host_key_policy,
            rejection: rejection.clone(),
            new_key: new_key.clone(),
        };
        let handshake =
            tokio::time::timeout(limit, russh::client::connect_stream(config, stream, client))
                .await;
        let mut handle = match handshake {
            Err(_) => {
                return Err(connect_err(format!(
                    "no SSH handshake within {} (is an SSH server listening on this port?)",
                    secs(limit)
                )))
            }
            Ok(Err(e)) => {
                if let Some(r) = rejection.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    return Err(SshError::HostKey {
                        host,
                        reason: r.to_string(),
                    });
                }
                return Err(connect_err(format!("SSH handshake failed: {e}")));
            }
            Ok(Ok(handle)) => handle,
        };
        let new_key = new_key.lock().unwrap_or_else(|e| e.into_inner()).take();
        let host_key_added = match new_key {
            None => None,
            Some(key) => record_new_key(target, key).await?,
        };

        let auth_err = |reason: String| SshError::Auth {
            host: host.clone(),
            user: target.user.clone(),
            reason,
        };
        match tokio::time::timeout(
            limit,
            auth::authenticate(
                &mut handle,
                &target.user,
                auth::Identity {
                    file: target.identity_file.as_deref(),
                    certificate: target.certificate_file.as_deref(),
                    only: target.identities_only,
                },
                options.agent_socket.as_deref(),
            ),
        )
        .await
        {
            Err(_) => {
                return Err(auth_err(format!(
                    "no answer within {} while authenticating",
                    secs(limit)
                )))
            }
            Ok(Err(reason)) => return Err(auth_err(reason)),
            Ok(Ok(())) => {}
        }

        Ok(Connection {
            target: target.clone(),
            _via: via,
            host_key_added,
            handle,
            channels: Arc::new(Semaphore::new(MAX_CHANNELS)),
            open: OpenChannels::default(),
        })
    }

    /// Runs one command on a new channel of this connection. Several may run at once;
    /// beyond `MAX_CHANNELS` they wait for a free channel.
    ///
    /// A non-zero exit status is NOT an error here (the caller decides what it means);
    /// errors are transport failures and `sudo -n` refusing to run the command.
    pub async fn run(&self, cmd: &RemoteCommand) -> Result<Output, SshError> {
        let host = &self.target.host;
        let exec = command::exec_string(&cmd.script, cmd.root, &self.target.user).map_err(|e| {
            SshError::Command {
                host: host.clone(),
                reason: e.to_string(),
            }
        })?;
        let lost = |reason: String| SshError::Lost {
            host: host.clone(),
            reason: redact(&reason, &cmd.secrets),
        };

        let _permit = self
            .channels
            .acquire()
            .await
            .map_err(|_| lost("connection closed".to_string()))?;
        let channel = self.open_session(&lost).await?;
        let _open = OpenChannel::count(&self.open);
        channel
            .exec(true, exec)
            .await
            .map_err(|e| lost(format!("cannot start the command: {e}")))?;
        let (mut reader, writer) = channel.split();

        // Feed stdin (possibly nothing) then EOF, concurrently with reading: a command
        // that prints a lot before reading its input must not deadlock against us.
        let stdin = cmd.stdin.as_deref().unwrap_or_default();
        let feed = async {
            if !stdin.is_empty() {
                writer.data(stdin).await?;
            }
            writer.eof().await
        };
        tokio::pin!(feed);
        let mut fed = false;

        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut status: Option<u32> = None;
        let mut signal: Option<String> = None;
        loop {
            tokio::select! {
                // Errors writing stdin mean the command exited or closed its input early;
                // what it printed and its status tell the story.
                _ = &mut feed, if !fed => fed = true,
                msg = reader.wait() => match msg {
                    Some(russh::ChannelMsg::Data { data }) => stdout.extend_from_slice(&data),
                    Some(russh::ChannelMsg::ExtendedData { data, ext: 1 }) => {
                        stderr.extend_from_slice(&data)
                    }
                    Some(russh::ChannelMsg::ExitStatus { exit_status }) => {
                        status = Some(exit_status)
                    }
                    Some(russh::ChannelMsg::ExitSignal {
                        signal_name,
                        core_dumped,
                        error_message,
                        ..
                    }) => {
                        signal = Some(format!(
                            "{}{}{}",
                            signal_label(&signal_name),
                            if core_dumped { " (core dumped)" } else { "" },
                            if error_message.is_empty() {
                                String::new()
                            } else {
                                format!(": {error_message}")
                            }
                        ))
                    }
                    Some(russh::ChannelMsg::Failure) => {
                        // Closed, or the server would keep the session (and its slot).
                        let _ = writer.close().await;
                        return Err(lost("the server refused to run the command".to_string()));
                    }
                    Some(russh::ChannelMsg::Close) | None => break,
                    Some(_) => {}
                },
            }
        }

        let mut output = Output {
            status: 0,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        };
        match (status, signal) {
            (Some(s), _) => output.status = s,
            (None, Some(sig)) => {
                output.status = 255;
                if !output.stderr.is_empty() && !output.stderr.ends_with('\n') {
                    output.stderr.push('\n');
                }
                output.stderr.push_str(&format!(
                    "[bootstrap] remote command killed by signal {sig}\n"
                ));
            }
            (None, None) => {
                return Err(lost(if self.handle.is_closed() {
                    "the connection closed while the command ran".to_string()
                } else {
                    "the command's channel closed without an exit status".to_string()
                }))
            }
        }

        if cmd.root && self.target.user != "root" {
            if let Some(reason) =
                command::sudo_failure(output.status, &output.stderr, &self.target.user)
            {
                return Err(SshError::Sudo {
                    host: host.clone(),
                    user: self.target.user.clone(),
                    reason: redact(&reason, &cmd.secrets),
                });
            }
        }
        Ok(output)
    }

    /// Opens a session channel, waiting out the server's refusals while they can pass.
    ///
    /// sshd answers an open beyond `MaxSessions` (default 10) with OPEN_FAILURE
    /// (serverloop.c: session_new finds no free slot), and frees a session's slot only
    /// when it garbage-collects the channel after both sides' CLOSE (channels.c
    /// channel_garbage_collect -> session.c session_close_by_channel), which it does
    /// after handling every packet already read. So when several of our 8 commands end
    /// at once, their CLOSEs and our next OPENs can arrive together and an OPEN be refused
    /// although at most 8 are live (seen: 2 runs of `tests/ssh.rs` in 11 failed so before
    /// this wait). A server whose `MaxSessions` is below `MAX_CHANNELS` refuses the same
    /// way while our other commands run. Both pass once a channel of ours ends: while one
    /// is open, a refused open waits for a change (an end, or a back-off from 10 ms to a
    /// second) and tries again. With none of ours open (the opens waiting here do not
    /// count, or a server that refuses every session would keep them waiting on each
    /// other for ever), a refusal repeated `OPEN_RETRIES` times in a row with nothing of
    /// ours changing is the server's limit.
    async fn open_session(
        &self,
        lost: &impl Fn(String) -> SshError,
    ) -> Result<russh::Channel<russh::client::Msg>, SshError> {
        /// Refusals in a row tolerated with none of ours open (pauses from 10 ms doubling
        /// to 250 ms: 0.6 s to 1.5 s in all), for a slot still held by a channel that just
        /// ended.
        const OPEN_RETRIES: u32 = 6;
        let mut alone_refusals = 0;
        let mut backoff = Duration::from_millis(10);
        loop {
            // Registered before the attempt, so an end during it is not missed.
            let changed = self.open.changed.notified();
            let before = self.open.changes();
            let reason = match self.handle.channel_open_session().await {
                Ok(channel) => return Ok(channel),
                Err(russh::Error::ChannelOpenFailure(reason)) if !self.handle.is_closed() => reason,
                Err(e) => return Err(lost(format!("cannot open a channel: {e}"))),
            };
            let others = self.open.count.load(Ordering::SeqCst);
            tracing::debug!(host = %self.target.host, others, "session channel refused ({reason:?}); retrying");
            if others > 0 {
                alone_refusals = 0;
                // An end wakes this at once; the timeout covers a slot freed only by
                // sshd's garbage collection, after our channel's end was already seen.
                let _ = tokio::time::timeout(backoff, changed).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
            if self.open.changes() != before {
                alone_refusals = 0;
                continue;
            }
            alone_refusals += 1;
            if alone_refusals > OPEN_RETRIES {
                return Err(SshError::Command {
                    host: self.target.host.clone(),
                    reason: format!(
                        "the server refused a new session channel ({reason:?}) with no other \
                         command of ours running; its MaxSessions setting may be 0"
                    ),
                });
            }
            let pause = backoff.min(Duration::from_millis(250));
            tokio::time::sleep(pause).await;
            backoff = pause * 2;
        }
    }

    /// For a non-root login user, checks once that `sudo -n` works, so a missing
    /// NOPASSWD rule is reported before anything runs instead of halfway through.
    pub async fn check_sudo(&self) -> Result<(), SshError> {
        if self.target.user == "root" {
            return Ok(());
        }
        let out = self
            .run(&RemoteCommand {
                script: "true".to_string(),
                root: true,
                ..Default::default()
            })
            .await?;
        if out.success() {
            Ok(())
        } else {
            Err(SshError::Sudo {
                host: self.target.host.clone(),
                user: self.target.user.clone(),
                reason: format!(
                    "`sudo -n true` exited with status {}: {}",
                    out.status,
                    out.stderr.trim()
                ),
            })
        }
    }

    /// A `direct-tcpip` channel from this (jump) host to `address`:`port`, as a byte
    /// stream another SSH session can run over. The jump host resolves the name.
    async fn forward(
        &self,
        address: &str,
        port: u16,
        limit: Duration,
    ) -> Result<russh::ChannelStream<russh::client::Msg>, String> {
        let opened = tokio::time::timeout(
            limit,
            self.handle
                .channel_open_direct_tcpip(address, port.into(), "127.0.0.1", 0),
        )
        .await;
        match opened {
            Ok(Ok(channel)) => Ok(channel.into_stream()),
            Ok(Err(e)) => Err(format!(
                "bastion {} could not open a connection to it: {e}",
                self.target.host
            )),
            Err(_) => Err(format!(
                "bastion {} did not open a connection to it within {}",
                self.target.host,
                secs(limit)
            )),
        }
    }

    /// Whether the connection is gone (server closed it, keepalive timed out).
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Says goodbye to the server. Dropping a connection also closes it, less politely.
    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

/// Connects to every target, at most `parallelism` at once (0 means
/// `DEFAULT_CONNECT_PARALLELISM`), and checks `sudo -n` for non-root users. Returns one
/// result per target, in the targets' order, so every unreachable host is reported, not
/// just the first.
pub async fn connect_all(
    targets: &[Target],
    parallelism: usize,
) -> Vec<(String, Result<Connection, SshError>)> {
    connect_all_with(targets, parallelism, &ConnectOptions::default()).await
}

/// `connect_all` with explicit options.
pub async fn connect_all_with(
    targets: &[Target],
    parallelism: usize,
    options: &ConnectOptions,
) -> Vec<(String, Result<Connection, SshError>)> {
    let parallelism = if parallelism == 0 {
        DEFAULT_CONNECT_PARALLELISM
    } else {
        parallelism
    };
    let gate = Arc::new(Semaphore::new(parallelism));
    let waiting = wait::Waiting::new(options.wait_for_ssh);
    let jumps = jump::Pool::default();
    let mut tasks = tokio::task::JoinSet::new();
    for (index, target) in targets.iter().cloned().enumerate() {
        let gate = gate.clone();
        let options = options.clone();
        let waiting = waiting.clone();
        let jumps = jumps.clone();
        tasks.spawn(async move {
            let result = waiting
                .retry(&target.host, || async {
                    // The permit is held per attempt: hosts waited for do not keep
                    // the others from connecting.
                    let _permit = gate.acquire().await;
                    let conn = jumps.connect(&target, &options).await?;
                    conn.check_sudo().await?;
                    Ok(conn)
                })
                .await;
            (index, result)
        });
    }
    let mut results: Vec<Option<Result<Connection, SshError>>> =
        targets.iter().map(|_| None).collect();
    let report = waiting.report_until_done(options.notify.clone());
    tokio::pin!(report);
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(Ok((index, result))) => results[index] = Some(result),
                Some(Err(_)) => {}
                None => break,
            },
            _ = &mut report => {}
        }
    }
    targets
        .iter()
        .zip(results)
        .map(|(t, r)| {
            let r = r.unwrap_or_else(|| {
                Err(SshError::Connect {
                    host: t.host.clone(),
                    address: t.address.clone(),
                    port: t.port,
                    reason: "the connection task panicked".to_string(),
                })
            });
            (t.host.clone(), r)
        })
        .collect()
}

/// Appends the key the server proved it holds to the known_hosts file (accept-new) and
/// says so the way `ssh` does, with the fingerprint.
async fn record_new_key(
    target: &Target,
    key: russh::keys::PublicKey,
) -> Result<Option<String>, SshError> {
    let (path, address, port, hash) = (
        target.known_hosts_file.clone(),
        target.address.clone(),
        target.port,
        target.hash_known_hosts,
    );
    let desc = known_hosts::describe(&key);
    let appended =
        tokio::task::spawn_blocking(move || known_hosts::append(&path, &address, port, &key, hash))
            .await
            .unwrap_or_else(|e| {
                Err(Rejection::Unreadable {
                    file: target.known_hosts_file.clone(),
                    reason: format!("the task writing it failed: {e}"),
                })
            })
            .map_err(|r| SshError::HostKey {
                host: target.host.clone(),
                reason: r.to_string(),
            })?;
    Ok(match appended {
        known_hosts::Appended::Added { line } => Some(format!(
            "{}: permanently added {} ({desc}) to {}:{line} (hostKeyPolicy: accept-new)",
            target.host,
            known_hosts::lookup_name(&target.address, target.port),
            target.known_hosts_file.display()
        )),
        known_hosts::Appended::AlreadyThere => None,
    })
}

/// What an SSH session runs over: a TCP connection, or a channel of a jump host's.
trait Transport: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Transport for T {}

/// TCP connect to every address the name resolves to, in turn, each within `limit`.
async fn tcp_connect(
    address: &str,
    port: u16,
    limit: Duration,
) -> Result<tokio::net::TcpStream, String> {
    let addrs: Vec<std::net::SocketAddr> =
        match tokio::time::timeout(limit, tokio::net::lookup_host((address, port))).await {
            Err(_) => {
                return Err(format!(
                    "resolving the name timed out after {}",
                    secs(limit)
                ))
            }
            Ok(Err(e)) => return Err(format!("cannot resolve the address: {e}")),
            Ok(Ok(a)) => a.collect(),
        };
    let mut last = String::from("the name resolved to no address");
    for addr in addrs {
        match tokio::time::timeout(limit, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = format!("{addr}: {e}"),
            Err(_) => last = format!("{addr}: no answer within {}", secs(limit)),
        }
    }
    Err(last)
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

fn signal_label(sig: &russh::Sig) -> String {
    match sig {
        russh::Sig::Custom(name) => name.clone(),
        other => format!("{other:?}"),
    }
}
