//! The testbed's network: one Linux bridge per testbed in the root namespace
//! (`tbX`, 10.200.X.1/24) and, per host, a network namespace (`tbX-NAME`) joined to the
//! bridge by a veth pair (`tbX-hI` outside, `eth0` inside, 10.200.X.(10+I)/24).
//!
//! Distinct testbeds get distinct X, so tests may run in parallel. X is allocated under
//! a lock file; the bridge's existence is the reservation (a crashed testbed's bridge
//! keeps its X until `testbed down` or a reboot removes it).

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::cmd;
use crate::error::{Error, Result};

/// Where the allocation lock lives.
const LOCK_DIR: &str = "/run/testbed";
/// Hosts are numbered from 1; their address is 10.200.X.(HOST_OFFSET + index).
const HOST_OFFSET: u32 = 10;
/// The most hosts one testbed can have (one /24).
pub const MAX_HOSTS: usize = 240;

pub fn bridge_name(x: u8) -> String {
    format!("tb{x}")
}

pub fn netns_name(x: u8, host: &str) -> String {
    format!("tb{x}-{host}")
}

/// Outside end of a host's veth. Interface names are limited to 15 bytes, so this uses
/// the host's index rather than its name.
pub fn veth_name(x: u8, index: usize) -> String {
    format!("tb{x}-h{index}")
}

pub fn gateway(x: u8) -> String {
    format!("10.200.{x}.1")
}

pub fn host_address(x: u8, index: usize) -> String {
    format!("10.200.{x}.{}", HOST_OFFSET as usize + index)
}

/// Whether a namespace of an earlier testbed with this X is still there (a teardown that
/// was interrupted): reusing X would collide with its names.
fn netns_left_over(x: u8) -> bool {
    let prefix = format!("tb{x}-");
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        })
        .unwrap_or(false)
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Holds an exclusive `flock` until dropped.
struct Lock(File);

impl Lock {
    fn take() -> Result<Lock> {
        std::fs::create_dir_all(LOCK_DIR).map_err(|e| Error::io("create", LOCK_DIR, e))?;
        let path = Path::new(LOCK_DIR).join("subnets.lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(Error::io("lock", path, std::io::Error::last_os_error()));
        }
        Ok(Lock(f))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// Picks a free X and creates its bridge (which reserves it). Returns X.
pub fn create_bridge() -> Result<u8> {
    let lock = Lock::take()?;
    // Round-robin from the last X handed out (kept in the lock file), so a subnet and its
    // names are not reused right after a testbed released them: a test that checks its
    // own teardown must not see the next testbed's identically named pieces.
    let last: u32 = std::fs::read_to_string(Path::new(LOCK_DIR).join("subnets.lock"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let x = (1..=254u32)
        .map(|i| ((last + i - 1) % 254 + 1) as u8)
        .find(|x| !link_exists(&bridge_name(*x)) && !netns_left_over(*x))
        .ok_or_else(|| {
            Error::Invalid(
                "all 254 testbed subnets 10.200.X.0/24 are in use: run `testbed down` on old testbeds or `ip link del tbX`".into(),
            )
        })?;
    let _ = std::fs::write(Path::new(LOCK_DIR).join("subnets.lock"), format!("{x}\n"));
    let br = bridge_name(x);
    cmd::ip_batch(
        None,
        &[
            format!("link add {br} type bridge"),
            format!("addr add {}/24 dev {br}", gateway(x)),
            format!("link set {br} up"),
        ],
    )?;
    drop(lock);
    Ok(x)
}

/// Creates a host's namespace and veth, addressed and up, with a default route via the
/// bridge (a fresh server has one; nothing beyond the bridge answers).
pub fn create_host(x: u8, index: usize, host: &str) -> Result<()> {
    let ns = netns_name(x, host);
    let veth = veth_name(x, index);
    cmd::ip(&["netns", "add", &ns])?;
    cmd::ip_batch(
        None,
        &[
            format!("link add {veth} type veth peer name eth0 netns {ns}"),
            format!("link set {veth} master {} up", bridge_name(x)),
        ],
    )?;
    cmd::ip_batch(
        Some(&ns),
        &[
            "link set lo up".to_string(),
            format!("addr add {}/24 dev eth0", host_address(x, index)),
            "link set eth0 up".to_string(),
            format!("route add default via {}", gateway(x)),
        ],
    )?;
    Ok(())
}

/// Makes the host refuse connections from the machine (the bridge's address) while the
/// other hosts of its network still reach it: an nftables rule in the host's namespace
/// drops every TCP SYN from the machine, so its connects time out as across a firewall
/// that drops. Connections the host opens to the machine (the package repositories)
/// still work, as a private subnet's outbound NAT would allow.
pub fn isolate_from_machine(x: u8, host: &str) -> Result<()> {
    let rules = format!(
        "table inet testbed_bastion {{\n\
         \x20 chain input {{\n\
         \x20   type filter hook input priority 0; policy accept;\n\
         \x20   ip saddr {} tcp flags & (syn | ack) == syn drop\n\
         \x20 }}\n\
         }}\n",
        gateway(x)
    );
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", &netns_name(x, host), "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| crate::error::Error::io("run", "ip netns exec ... nft", e))?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("piped");
        stdin
            .write_all(rules.as_bytes())
            .map_err(|e| crate::error::Error::io("write to", "nft", e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| crate::error::Error::io("wait for", "nft", e))?;
    if !out.status.success() {
        return Err(crate::error::Error::host(
            host,
            format!(
                "nft refused the bastion rule: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(())
}

/// Takes a host's cable out (`false`) or plugs it back in (`true`).
pub fn set_link(x: u8, index: usize, up: bool) -> Result<()> {
    let veth = veth_name(x, index);
    cmd::ip(&["link", "set", &veth, if up { "up" } else { "down" }]).map(|_| ())
}

/// Removes a host's namespace (its veth goes with it). Missing pieces are not an error.
pub fn delete_host(x: u8, index: usize, host: &str) -> Result<()> {
    let ns = netns_name(x, host);
    if Path::new("/run/netns").join(&ns).exists() {
        cmd::ip(&["netns", "del", &ns])?;
    }
    // The veth normally goes away with the namespace, asynchronously: only a leftover
    // (namespace already gone by other means) needs deleting, and may vanish meanwhile.
    let veth = veth_name(x, index);
    if link_exists(&veth) {
        ignore_missing(cmd::ip(&["link", "del", &veth]))?;
    }
    Ok(())
}

fn ignore_missing(r: Result<String>) -> Result<()> {
    match r {
        Err(Error::Command { stderr, .. })
            if stderr.contains("Cannot find device") || stderr.contains("No such device") =>
        {
            Ok(())
        }
        r => r.map(|_| ()),
    }
}

pub fn delete_bridge(x: u8) -> Result<()> {
    let br = bridge_name(x);
    if link_exists(&br) {
        ignore_missing(cmd::ip(&["link", "del", &br]))?;
    }
    Ok(())
}

/// The inode of a namespace's bind mount, to find the processes inside it.
pub fn netns_inode(x: u8, host: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(Path::new("/run/netns").join(netns_name(x, host)))
        .ok()
        .map(|m| m.ino())
}

/// Kills every process in any namespace `tbX-*` and deletes those namespaces and the
/// bridge: the cleanup for a testbed whose state file is lost.
pub fn remove_by_subnet(x: u8) {
    let prefix = format!("tb{x}-");
    if let Ok(d) = std::fs::read_dir("/run/netns") {
        for e in d.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with(&prefix) {
                continue;
            }
            use std::os::unix::fs::MetadataExt;
            if let Ok(m) = e.metadata() {
                crate::procs::kill_all(m.ino(), std::time::Duration::from_secs(10));
            }
            let _ = cmd::ip(&["netns", "del", &name]);
        }
    }
    let _ = delete_public_addresses(x);
    let _ = delete_bridge(x);
}

/// A host's public address 10.201.X.(10+index): an address the host does not own, which
/// the root namespace translates (DNAT) to the host's own, as a cloud's public IP or a
/// NAT port forward does. Only with `Builder::public_addresses`.
pub fn public_address(x: u8, index: usize) -> String {
    format!("10.201.{x}.{}", HOST_OFFSET as usize + index)
}

/// The nftables table holding a testbed's DNAT rules (root namespace).
fn nat_table(x: u8) -> String {
    format!("testbed_tb{x}")
}

/// Makes every `(public, private)` pair reachable from the root namespace: a route for
/// 10.201.X.0/24 via the bridge (so the connection's source is the bridge's address, which
/// the hosts route back to) and an nftables `output` DNAT rule per host. The hosts never
/// see the public address: as behind a cloud's NAT, it is on none of their interfaces.
pub fn create_public_addresses(x: u8, pairs: &[(String, String)]) -> Result<()> {
    cmd::ip(&[
        "route",
        "add",
        &format!("10.201.{x}.0/24"),
        "dev",
        &bridge_name(x),
        "src",
        &gateway(x),
    ])?;
    let table = nat_table(x);
    let mut script = format!(
        "table ip {table} {{\n  chain output {{\n    type nat hook output priority -100; policy accept;\n"
    );
    for (public, private) in pairs {
        script += &format!("    ip daddr {public} dnat to {private}\n");
    }
    script += "  }\n}\n";
    cmd::run_with_input(
        std::process::Command::new("nft").args(["-f", "-"]),
        Some(script.as_bytes()),
    )
    .map(|_| ())
}

/// Removes the DNAT table of subnet X, if any (its route goes with the bridge).
pub fn delete_public_addresses(x: u8) -> Result<()> {
    if !Path::new("/usr/sbin/nft").exists() {
        return Ok(());
    }
    let table = nat_table(x);
    let listed = cmd::output(
        std::process::Command::new("nft").args(["list", "table", "ip", &table]),
        None,
    )?;
    if !listed.status.success() {
        return Ok(()); // no such table
    }
    cmd::run(std::process::Command::new("nft").args(["delete", "table", "ip", &table])).map(|_| ())
}
