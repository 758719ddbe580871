//! The one error type of the host manager. Every variant says what was being done, so a
//! failed test or CLI run points at the step that broke without a debugger.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("cannot run `{command}`: {source} (is it installed? the testbed needs iproute2, util-linux, openssh-server, openssh-client and sudo)")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("host {host}: {message}")]
    Host { host: String, message: String },
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }
    pub(crate) fn host(host: &str, message: impl Into<String>) -> Self {
        Error::Host {
            host: host.to_string(),
            message: message.into(),
        }
    }
}
