//! What a freshly installed server of each supported distribution has in the files a
//! bootstrap tool looks at: os-release, apt sources, fstab, sshd and PATH settings.
//!
//! The contents are copied from real installs (Ubuntu Server 24.04.3 / 22.04.5 and a
//! Debian 12 cloud image), so a tool that parses them sees what it would see in the field.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The distribution a simulated host claims to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Os {
    #[default]
    #[serde(rename = "ubuntu-24.04")]
    Ubuntu2404,
    #[serde(rename = "ubuntu-22.04")]
    Ubuntu2204,
    #[serde(rename = "debian-12")]
    Debian12,
}

impl Os {
    pub const ALL: [Os; 3] = [Os::Ubuntu2404, Os::Ubuntu2204, Os::Debian12];

    pub fn as_str(self) -> &'static str {
        match self {
            Os::Ubuntu2404 => "ubuntu-24.04",
            Os::Ubuntu2204 => "ubuntu-22.04",
            Os::Debian12 => "debian-12",
        }
    }

    /// `/etc/os-release` (a regular file here; on the real systems a symlink to
    /// `../usr/lib/os-release` with this content).
    pub fn os_release(self) -> &'static str {
        match self {
            Os::Ubuntu2404 => {
                r#"PRETTY_NAME="Ubuntu 24.04.3 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.3 LTS (Noble Numbat)"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
SUPPORT_URL="https://help.ubuntu.com/"
BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"
PRIVACY_POLICY_URL="https://www.ubuntu.com/legal/terms-and-policies/privacy-policy"
UBUNTU_CODENAME=noble
LOGO=ubuntu-logo
"#
            }
            Os::Ubuntu2204 => {
                r#"PRETTY_NAME="Ubuntu 22.04.5 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.5 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
SUPPORT_URL="https://help.ubuntu.com/"
BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"
PRIVACY_POLICY_URL="https://www.ubuntu.com/legal/terms-and-policies/privacy-policy"
UBUNTU_CODENAME=jammy
"#
            }
            Os::Debian12 => {
                r#"PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"#
            }
        }
    }

    /// Small files that identify the release: (path, content). Debian has no lsb-release.
    pub fn release_files(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Os::Ubuntu2404 => vec![
                (
                    "/etc/lsb-release",
                    "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=24.04\nDISTRIB_CODENAME=noble\nDISTRIB_DESCRIPTION=\"Ubuntu 24.04.3 LTS\"\n",
                ),
                ("/etc/issue", "Ubuntu 24.04.3 LTS \\n \\l\n\n"),
                ("/etc/issue.net", "Ubuntu 24.04.3 LTS\n"),
                ("/etc/debian_version", "trixie/sid\n"),
            ],
            Os::Ubuntu2204 => vec![
                (
                    "/etc/lsb-release",
                    "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=22.04\nDISTRIB_CODENAME=jammy\nDISTRIB_DESCRIPTION=\"Ubuntu 22.04.5 LTS\"\n",
                ),
                ("/etc/issue", "Ubuntu 22.04.5 LTS \\n \\l\n\n"),
                ("/etc/issue.net", "Ubuntu 22.04.5 LTS\n"),
                ("/etc/debian_version", "bookworm/sid\n"),
            ],
            Os::Debian12 => vec![
                ("/etc/issue", "Debian GNU/Linux 12 \\n \\l\n\n"),
                ("/etc/issue.net", "Debian GNU/Linux 12\n"),
                ("/etc/debian_version", "12.11\n"),
            ],
        }
    }

    /// The apt sources of a fresh install: (path, content). Everything else in
    /// `/etc/apt/sources.list.d` is removed. Noble uses deb822 `ubuntu.sources` and leaves a
    /// pointer in `sources.list`; jammy still uses the one-line `sources.list`.
    pub fn apt_sources(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Os::Ubuntu2404 => vec![
                (
                    "/etc/apt/sources.list",
                    "# Ubuntu sources have moved to /etc/apt/sources.list.d/ubuntu.sources\n",
                ),
                (
                    "/etc/apt/sources.list.d/ubuntu.sources",
                    "Types: deb
URIs: http://archive.ubuntu.com/ubuntu/
Suites: noble noble-updates noble-backports
Components: main restricted universe multiverse
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg

Types: deb
URIs: http://security.ubuntu.com/ubuntu/
Suites: noble-security
Components: main restricted universe multiverse
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg
",
                ),
            ],
            Os::Ubuntu2204 => vec![(
                "/etc/apt/sources.list",
                "# See http://help.ubuntu.com/community/UpgradeNotes for how to upgrade to
# newer versions of the distribution.
deb http://archive.ubuntu.com/ubuntu/ jammy main restricted
deb http://archive.ubuntu.com/ubuntu/ jammy-updates main restricted
deb http://archive.ubuntu.com/ubuntu/ jammy universe
deb http://archive.ubuntu.com/ubuntu/ jammy-updates universe
deb http://archive.ubuntu.com/ubuntu/ jammy multiverse
deb http://archive.ubuntu.com/ubuntu/ jammy-updates multiverse
deb http://archive.ubuntu.com/ubuntu/ jammy-backports main restricted universe multiverse
deb http://security.ubuntu.com/ubuntu/ jammy-security main restricted
deb http://security.ubuntu.com/ubuntu/ jammy-security universe
deb http://security.ubuntu.com/ubuntu/ jammy-security multiverse
",
            )],
            Os::Debian12 => vec![(
                "/etc/apt/sources.list.d/debian.sources",
                "Types: deb deb-src
URIs: mirror+file:///etc/apt/mirrors/debian.list
Suites: bookworm bookworm-updates bookworm-backports
Components: main

Types: deb deb-src
URIs: mirror+file:///etc/apt/mirrors/debian-security.list
Suites: bookworm-security
Components: main
",
            )],
        }
    }

    /// `/etc/fstab` of a fresh server: the installer's swap file is active at every boot.
    pub fn fstab(self) -> &'static str {
        match self {
            Os::Debian12 => "# /etc/fstab: static file system information.
UUID=5b2f0c4e-5d6a-4a7e-9b8e-2f0a1c3d4e5f / ext4 rw,discard,errors=remount-ro,x-systemd.growfs 0 1
UUID=8C4A-2B1D /boot/efi vfat defaults 0 0
/swap.img       none    swap    sw      0       0
",
            _ => "# /etc/fstab: static file system information.
#
# Use 'blkid' to print the universally unique identifier for a
# device; this may be used with UUID= as a more robust way to name devices
# that works even if disks are added and removed. See fstab(5).
#
# <file system> <mount point>   <type>  <options>       <dump>  <pass>
# / was on /dev/ubuntu-vg/ubuntu-lv during curtin installation
/dev/disk/by-id/dm-uuid-LVM-q3vVhgXkyeIGtT5E8l2NfWDJbNdzGr3gWcY2VJZ1XAYyrPvyXF2j5FiMoMDPyxRk / ext4 defaults 0 1
# /boot was on /dev/sda2 during curtin installation
/dev/disk/by-uuid/4d2b6a0e-43c1-4f0e-8f6e-2a9c1b7d3e55 /boot ext4 defaults 0 1
/swap.img       none    swap    sw      0       0
",
        }
    }
}

impl fmt::Display for Os {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Os {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Os::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| {
                format!("unknown OS {s:?}: expected one of ubuntu-24.04, ubuntu-22.04, debian-12")
            })
    }
}

/// PATH of an SSH session on Ubuntu, from `/etc/environment` via pam_env. The testbed's sshd
/// runs without PAM, so its config sets the same value (see [`sshd_config`]).
pub const ENVIRONMENT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/games:/usr/local/games:/snap/bin";

/// PATH a root shell gets from `testbed exec` (sshd's and sudo's default for root).
pub const ROOT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `/etc/ssh/sshd_config` of a simulated host.
///
/// Differences from a stock Ubuntu sshd, and why: no PAM (PATH comes from `SetEnv`
/// instead of pam_env); every command goes through the audit wrapper (`ForceCommand`);
/// MaxStartups is raised so 200 connections at once from this one machine are not
/// throttled by the default (10:30:100). MaxSessions keeps OpenSSH's default, 10
/// sessions per connection, as on a stock host: a tool that multiplexes commands over
/// one connection meets the real limit (and the refusals sshd gives while it has not yet
/// freed a closed session's slot).
pub fn sshd_config(audit_shell: &str) -> String {
    format!(
        "# Simulated host: OpenSSH server configuration written by the testbed.
Port 22
ListenAddress 0.0.0.0
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
StrictModes yes
MaxStartups 1000:30:2000
AcceptEnv LANG LC_*
SetEnv PATH={ENVIRONMENT_PATH}
Subsystem sftp /usr/lib/openssh/sftp-server
ForceCommand {audit_shell} audit-shell
"
    )
}

/// `/etc/hosts` as cloud-init writes it: the host's own name on 127.0.1.1 only. Hosts
/// don't know each other by name (no DNS), exactly like fresh cloud servers.
pub fn etc_hosts(hostname: &str) -> String {
    format!(
        "127.0.0.1 localhost
127.0.1.1 {hostname} {hostname}

# The following lines are desirable for IPv6 capable hosts
::1 ip6-localhost ip6-loopback
fe00::0 ip6-localnet
ff00::0 ip6-mcastprefix
ff02::1 ip6-allnodes
ff02::2 ip6-allrouters
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_round_trips() {
        for os in Os::ALL {
            assert_eq!(os.as_str().parse::<Os>().unwrap(), os);
        }
        assert!("ubuntu-20.04"
            .parse::<Os>()
            .unwrap_err()
            .contains("expected"));
    }

    #[test]
    fn os_release_has_the_fields_tools_parse() {
        let r = Os::Ubuntu2404.os_release();
        for f in [
            "ID=ubuntu",
            "ID_LIKE=debian",
            "VERSION_ID=\"24.04\"",
            "VERSION_CODENAME=noble",
            "UBUNTU_CODENAME=noble",
        ] {
            assert!(r.contains(f), "{f}");
        }
        assert!(Os::Ubuntu2204.os_release().contains("VERSION_ID=\"22.04\""));
        assert!(Os::Debian12.os_release().contains("ID=debian"));
    }

    #[test]
    fn fresh_fstab_has_active_swap() {
        for os in Os::ALL {
            assert!(os
                .fstab()
                .lines()
                .any(|l| l == "/swap.img       none    swap    sw      0       0"));
        }
    }
}
