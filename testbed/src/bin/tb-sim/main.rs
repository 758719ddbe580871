//! `tb-sim`: the multi-call stand-in binary of a simulated host.
//!
//! Invoked through a symlink (`/usr/local/sbin/apt-get -> tb-sim`) it behaves as that
//! command; invoked as `tb-sim NAME ARGS…` it behaves as NAME too. A few internal entry
//! points serve the host manager: `init` (the process that owns a host's namespaces),
//! `audit-shell` (sshd's forced command), `boot` (what a reboot does) and
//! `daemon UNIT` (a simulated long-running service).
//!
//! Every stand-in invocation is recorded in the host's audit log when it exits, with
//! whether it changed state.

mod audited;
mod common;
mod hostinit;
mod kube;
mod os;
mod repo;

use common::Ctx;

/// A stand-in command: takes the arguments after argv[0], returns the exit status.
pub type Standin = fn(&mut Ctx, &[String]) -> i32;
/// A daemon's main loop: takes its arguments, returns when it exits.
pub type Daemon = fn(&[String]) -> i32;

fn lookup(name: &str) -> Option<Standin> {
    os::lookup(name)
        .or_else(|| audited::lookup(name))
        .or_else(|| kube::lookup(name))
}

fn daemon(unit: &str) -> Option<Daemon> {
    os::daemon(unit).or_else(|| kube::daemon(unit))
}

fn main() {
    // Like the Go and C tools they stand in for, die quietly on a closed pipe
    // (`kubeadm ... | head`) instead of panicking half-way through a change.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let mut args: Vec<String> = std::env::args().collect();
    let argv0 = std::path::Path::new(&args[0])
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if argv0 == "tb-sim" || argv0.starts_with("tb-sim") {
        args.remove(0);
        if args.is_empty() {
            eprintln!("usage: tb-sim COMMAND [ARGS...]");
            std::process::exit(2);
        }
    }
    let name = std::path::Path::new(&args[0])
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let rest = &args[1..];
    let code = match name.as_str() {
        // What sim_binary compares with the library's SOURCE_ID (build.rs).
        "source-id" => {
            println!("{}", env!("TESTBED_SOURCE_ID"));
            0
        }
        "init" => hostinit::init(rest),
        "audit-shell" => hostinit::audit_shell(rest),
        "boot" => os::boot(rest),
        "repo-build" => repo::build::main(rest),
        "repo-serve" => repo::serve::main(rest),
        "package-hook" => repo::package_hook(rest),
        "hold-locks" => os::locks::hold_locks(rest),
        "hold-port" => os::holder::hold_port(rest),
        "preload-images" => os::preload_images(rest),
        "daemon" => match rest.first().and_then(|u| daemon(u)) {
            Some(d) => d(&rest[1..]),
            None => {
                eprintln!("tb-sim: unknown daemon {:?}", rest.first());
                2
            }
        },
        _ => match lookup(&name) {
            Some(standin) => {
                let mut ctx = Ctx::load(&name);
                let code = standin(&mut ctx, rest);
                let mut argv = vec![name.clone()];
                argv.extend(rest.iter().cloned());
                common::audit("cmd", argv, ctx.changed, Some(code));
                code
            }
            None => {
                eprintln!("{name}: command not found");
                127
            }
        },
    };
    std::process::exit(code);
}
