//! Simulated Ubuntu hosts for end-to-end tests and benchmarks of `bootstrap`.
//!
//! Each host is a network namespace on a per-testbed bridge, a private mount namespace
//! with copy-on-write overlays of the machine's system directories, its own host name and
//! PID namespace, and the machine's real OpenSSH server. Commands that would change the
//! real machine or need the internet are stand-ins (the `tb-sim` binary). See README.md.
//!
//! ```no_run
//! let tb = testbed::Testbed::builder().hosts(3).build()?;
//! let out = tb.exec("node1", &["hostname"])?;
//! assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "node1");
//! # Ok::<(), testbed::Error>(())
//! ```

pub mod cmd;
pub mod containerd;
pub mod distro;
mod error;
mod host;
pub mod k8s;
pub mod keys;
pub mod layout;
mod net;
mod nodewatch;
mod procs;
mod registry;
pub mod repo;
pub mod state;
mod testbed;
pub mod time;

pub use distro::Os;
pub use error::{Error, Result};
pub use k8s::{real_release, RealRelease};
pub use layout::{max_unschedulable, AuditRecord, Fault, NodeSpecChange};
pub use nodewatch::NodeWatch;
pub use state::HostEntry;
pub use testbed::{Builder, Testbed};

use std::path::PathBuf;

/// The stand-in binary (`tb-sim`) to put into hosts: `$TESTBED_SIM` if set, else the
/// `tb-sim` next to the running executable (target/debug/tb-sim for target/debug/testbed
/// and for test binaries in target/debug/deps).
pub fn sim_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("TESTBED_SIM") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Error::Invalid(format!(
                "TESTBED_SIM={} is not a file",
                p.display()
            )))
        };
    }
    let exe = std::env::current_exe().map_err(|e| Error::io("find", "current executable", e))?;
    let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let sim = dir.join("tb-sim");
    if sim.is_file() {
        Ok(sim)
    } else {
        Err(Error::Invalid(format!(
            "the stand-in binary {} does not exist: build it with `cargo build -p testbed` (or set TESTBED_SIM)",
            sim.display()
        )))
    }
}
