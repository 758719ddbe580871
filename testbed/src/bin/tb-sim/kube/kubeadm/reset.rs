//! `kubeadm reset`: the best-effort revert of init/join on this host. Stops the kubelet,
//! removes the control-plane containers (the simulated API server process), wipes the
//! etcd data directory (the cluster state on a control plane goes with it) and the files
//! kubeadm wrote. Like the real one it leaves CNI config, iptables rules, $HOME/.kube
//! and the Node object in the cluster alone.

use std::io::BufRead;
use std::path::Path;

use super::{die, parse_flags, phase_error, preflight};
use crate::common::{self, Ctx};

const FILES: &[&str] = &[
    "/etc/kubernetes/admin.conf",
    "/etc/kubernetes/super-admin.conf",
    "/etc/kubernetes/kubelet.conf",
    "/etc/kubernetes/bootstrap-kubelet.conf",
    "/etc/kubernetes/controller-manager.conf",
    "/etc/kubernetes/scheduler.conf",
];
const DIRS: &[&str] = &[
    "/etc/kubernetes/manifests",
    "/var/lib/kubelet",
    "/etc/kubernetes/pki",
];

fn clear_dir(dir: &str) -> bool {
    let mut changed = false;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            let r = if p.is_dir() && !p.is_symlink() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            changed |= r.is_ok();
        }
    }
    changed
}

/// The etcd data dir from the etcd manifest (kubeadm's fallback without a cluster).
fn etcd_dir() -> String {
    std::fs::read_to_string(format!("{}/etcd.yaml", preflight::MANIFESTS))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.trim().strip_prefix("- --data-dir=").map(String::from))
        })
        .unwrap_or_else(|| "/var/lib/etcd".into())
}

/// Kills the simulated kube-apiserver (the kubelet leaves static Pods' containers
/// running when it stops; reset removes them). Returns whether one ran.
fn stop_apiserver() -> bool {
    let Some(pid) = common::unit_pid("kube-apiserver") else {
        return false;
    };
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let _ = super::poll(std::time::Duration::from_secs(5), || {
        common::unit_pid("kube-apiserver").is_none().then_some(())
    });
    if let Some(pid) = common::unit_pid("kube-apiserver") {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let _ = std::fs::remove_file(
        common::ctl_path(testbed::layout::ctl::UNITS).join("kube-apiserver.pid"),
    );
    true
}

/// `kubeadm reset [-f] [--cri-socket S] [--ignore-preflight-errors ...]`
pub fn run(ctx: &mut Ctx, args: &[String]) -> i32 {
    let f = match parse_flags(
        args,
        &[
            "cri-socket",
            "ignore-preflight-errors",
            "cert-dir",
            "kubeconfig",
            "skip-phases",
            "config",
        ],
        &["force", "dry-run", "cleanup-tmp-dir"],
    ) {
        Ok(f) => f,
        Err(e) => return die(&e),
    };
    if f.has("dry-run") {
        return die("--dry-run is not modeled by the testbed's kubeadm");
    }
    let ignore = match preflight::parse_ignore(&f.all("ignore-preflight-errors")) {
        Ok(i) => i,
        Err(e) => return die(&e),
    };
    let is_cp = Path::new(&format!("{}/kube-apiserver.yaml", preflight::MANIFESTS)).exists();
    if Path::new(super::files::ADMIN_CONF).exists()
        || Path::new(super::files::KUBELET_CONF).exists()
    {
        println!("[reset] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"...");
        println!("[reset] Use 'kubeadm init phase upload-config kubeadm --config your-config-file' to re-upload it.");
    } else {
        eprintln!("{}", super::config::klog('W', "reset.go:143", "[reset] Unable to fetch the kubeadm-config ConfigMap from cluster: failed to get config map: configmaps \"kubeadm-config\" not found"));
    }
    if !f.has("force") {
        println!("[reset] WARNING: Changes made to this host by 'kubeadm init' or 'kubeadm join' will be reverted.");
        print!("[reset] Are you sure you want to proceed? [y/N]: ");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        if !matches!(line.trim(), "y" | "Y") {
            println!();
            return phase_error(
                "preflight",
                "won't proceed; the user didn't answer (Y|y) in order to continue",
            );
        }
    }
    println!("[preflight] Running pre-flight checks");
    let (_, e) = preflight::report(&preflight::root_check(common::is_root()), &ignore);
    if let Some(e) = e {
        return super::preflight_failed(&e);
    }
    if is_cp {
        println!("[reset] Removing info for node from the ConfigMap \"kubeadm-config\" in the \"kube-system\" Namespace");
    }
    // Stop the kubelet and the control-plane "containers" first, so the API server
    // can't write the state back after its etcd data is gone; print in kubeadm's order.
    let dir = etcd_dir();
    let kubelet_running = common::unit_pid("kubelet").is_some();
    if kubelet_running {
        let _ = crate::os::stop_unit("kubelet");
        ctx.changed();
    }
    if stop_apiserver() {
        ctx.changed();
    }
    if is_cp || Path::new(&dir).join("testbed-cluster.json").exists() {
        if clear_dir(&dir) {
            ctx.changed();
        }
        println!("[reset] Deleted contents of the etcd data directory: {dir}");
    }
    println!("[reset] Stopping the kubelet service");
    println!("[reset] Unmounting mounted directories in \"/var/lib/kubelet\"");
    println!(
        "[reset] Deleting contents of directories: [{}]",
        DIRS.join(" ")
    );
    for d in DIRS {
        if clear_dir(d) {
            ctx.changed();
        }
    }
    println!("[reset] Deleting files: [{}]", FILES.join(" "));
    for p in FILES {
        if std::fs::remove_file(p).is_ok() {
            ctx.changed();
        }
    }
    ctx.take_time(5.0);
    println!();
    println!("The reset process does not perform cleanup of CNI plugin configuration,");
    println!("network filtering rules and kubeconfig files.");
    println!();
    println!("For information on how to perform this cleanup manually, please see:");
    println!("    https://k8s.io/docs/reference/setup-tools/kubeadm/kubeadm-reset/");
    println!();
    0
}
