//! SSH to the hosts: one russh connection per host for the whole run, host keys checked
//! strictly against known_hosts, commands run on channels of that connection, non-root
//! users through `sudo -n`.

use std::time::Duration;

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
    pub connect_timeout: Duration,
}

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

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
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
}

/// An open connection to one host.
pub struct Connection {
    pub target: Target,
}

impl Connection {
    /// Connects, checks the host key, authenticates.
    pub async fn connect(_target: &Target) -> Result<Connection, SshError> {
        todo!("ssh connect")
    }

    /// Runs one command on a new channel of this connection.
    pub async fn run(&self, _cmd: &RemoteCommand) -> Result<Output, SshError> {
        todo!("ssh run")
    }
}
