//! The files a testbed directory holds for its users and for itself:
//! `hosts.json` (what a tool under test needs to reach the hosts) and `testbed.json`
//! (what `testbed down` and the other subcommands need to find every piece again).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::distro::Os;
use crate::error::{Error, Result};

/// One entry of `DIR/hosts.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostEntry {
    pub name: String,
    pub address: String,
    pub port: u16,
    /// The login user: "root" or "ubuntu".
    pub user: String,
    pub identity_file: PathBuf,
    pub known_hosts: PathBuf,
    /// With `Builder::public_addresses`: an address the host does not own that reaches it
    /// through the root namespace's DNAT (as a cloud's public IP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_address: Option<String>,
    /// With `Builder::public_addresses`: `NAME.tbX.test`, resolving to the public address
    /// in `DIR/etc-hosts` (see `Testbed::etc_hosts`); known_hosts has it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
}

/// One host in `DIR/testbed.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostState {
    pub name: String,
    /// 1-based; the address is 10.200.X.(10+index).
    pub index: usize,
    pub address: String,
    pub netns: String,
    pub veth: String,
    /// PID 1 of the host, in root-namespace numbering; None while stopped.
    pub init_pid: Option<i32>,
    /// The host's release when it differs from the testbed's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<Os>,
    /// A smaller machine than this one (`Builder::host_resources`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<crate::layout::Resources>,
}

/// `DIR/testbed.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TestbedState {
    /// X of the subnet 10.200.X.0/24.
    pub subnet: u8,
    pub bridge: String,
    pub user: String,
    pub os: Os,
    pub sudo_password: bool,
    pub time_scale: f64,
    pub hosts: Vec<HostState>,
    /// The kubelet units run the real-control-plane kubelet stand-in with the releases
    /// in this directory (`Builder::real_kubernetes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real_kubernetes: Option<PathBuf>,
    /// With `real_kubernetes`: the kubelet stand-in's CRI client (HostConfig `cri_client`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cri_client: Option<PathBuf>,
    /// The hosts' repositories (their apt, dpkg, curl and gpg are the machine's), served
    /// by the process `repo_pid` from the cache `repo_cache`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_cache: Option<PathBuf>,
    /// The container registries' processes (`crate::registries`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registry_pids: Vec<i32>,
    /// Every host also has a public address (DNAT) and a DNS name.
    #[serde(default)]
    pub public_addresses: bool,
}

pub const STATE_FILE: &str = "testbed.json";
pub const HOSTS_FILE: &str = "hosts.json";
pub const CLIENT_KEY: &str = "id_ed25519";
pub const KNOWN_HOSTS: &str = "known_hosts";
/// With public addresses: an /etc/hosts naming every host (`NAME.tbX.test` -> its public
/// address), for a tool run in a mount namespace that binds it over /etc/hosts.
pub const ETC_HOSTS: &str = "etc-hosts";

impl TestbedState {
    pub fn load(dir: &Path) -> Result<TestbedState> {
        let path = dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Invalid(format!(
                    "{} does not exist: no testbed in {} (create one with `testbed up --dir {}`)",
                    path.display(),
                    dir.display(),
                    dir.display()
                ))
            } else {
                Error::io("read", &path, e)
            }
        })?;
        serde_json::from_str(&text).map_err(|source| Error::Json { path, source })
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        write_json(&dir.join(STATE_FILE), self)
    }

    pub fn host(&self, name: &str) -> Result<&HostState> {
        self.hosts.iter().find(|h| h.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.hosts.iter().map(|h| h.name.as_str()).collect();
            Error::Invalid(format!(
                "no host named {name:?} in this testbed (hosts: {})",
                names.join(", ")
            ))
        })
    }

    /// The release a host simulates.
    pub fn os_of(&self, host: &HostState) -> Os {
        host.os.unwrap_or(self.os)
    }

    pub fn host_mut(&mut self, name: &str) -> Result<&mut HostState> {
        self.host(name)?;
        Ok(self.hosts.iter_mut().find(|h| h.name == name).unwrap())
    }
}

/// Writes JSON via a temporary file and rename, so a reader never sees half of it.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("serializable") + "\n";
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(|e| Error::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("rename", path, e))
}
