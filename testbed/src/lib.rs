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
pub mod registries;
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
/// and for test binaries in target/debug/deps). Refused when it was built from other
/// sources than this library (see build.rs): an old stand-in would make a test pass or
/// fail for reasons that are no longer in the tree.
pub fn sim_binary() -> Result<PathBuf> {
    let sim = match std::env::var_os("TESTBED_SIM") {
        Some(p) => {
            let p = PathBuf::from(p);
            if !p.is_file() {
                return Err(Error::Invalid(format!(
                    "TESTBED_SIM={} is not a file",
                    p.display()
                )));
            }
            p
        }
        None => {
            let exe =
                std::env::current_exe().map_err(|e| Error::io("find", "current executable", e))?;
            let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
            if dir.file_name().is_some_and(|n| n == "deps") {
                dir.pop();
            }
            let sim = dir.join("tb-sim");
            if !sim.is_file() {
                return Err(Error::Invalid(format!(
                    "the stand-in binary {} does not exist: build it with `cargo build -p testbed` (or set TESTBED_SIM)",
                    sim.display()
                )));
            }
            sim
        }
    };
    let out = std::process::Command::new(&sim)
        .arg("source-id")
        .output()
        .map_err(|e| Error::io("run", &sim, e))?;
    let id = String::from_utf8_lossy(&out.stdout);
    if id.trim() != SOURCE_ID {
        return Err(Error::Invalid(format!(
            "the stand-in binary {} was built from other sources than this test (its source id {:?}, this library's {SOURCE_ID}): rebuild it with `cargo build -p testbed --bins`",
            sim.display(),
            id.trim()
        )));
    }
    Ok(sim)
}

/// The hash of the testbed's sources this build was made from (build.rs).
pub const SOURCE_ID: &str = env!("TESTBED_SOURCE_ID");
