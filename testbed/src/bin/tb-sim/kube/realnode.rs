//! The node side of the kubelet stand-in for the REAL control plane (issue 9,
//! testbed/STANDINS-kubelet-real.md): what kubeadm waits for from a kubelet besides the
//! static pods.
//!
//! - healthz: `GET http://127.0.0.1:10248/healthz` answers `200 ok`, as the kubelet's
//!   healthz server (pkg/kubelet/server, KubeletConfiguration healthzBindAddress and
//!   healthzPort defaults); kubeadm's `WaitForKubelet` polls it (wait-control-plane).
//! - registration: once /etc/kubernetes/kubelet.conf exists, the Node is created through
//!   the REAL API server with the kubelet's own credentials (the built kubectl with
//!   `--kubeconfig /etc/kubernetes/kubelet.conf`, so the API server's NodeRestriction
//!   admission judges it as it judges a kubelet), shaped like the kubelet's
//!   `initialNode` (pkg/kubelet/kubelet_node_status.go): labels kubernetes.io/hostname,
//!   kubernetes.io/os, kubernetes.io/arch and their beta.kubernetes.io twins, annotation
//!   volumes.kubernetes.io/controller-managed-attach-detach=true. kubeadm's
//!   mark-control-plane polls for the hostname label before patching the Node.
//!
//! Not yet: node status (conditions, addresses, capacity), the Lease, --node-ip,
//! --register-with-taints, --hostname-override from kubeadm-flags.env.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use super::kubelet::KUBELET_CONF;

pub const HEALTHZ: &str = "127.0.0.1:10248";

/// Serves the kubelet's healthz endpoint until the process exits.
pub fn serve_healthz() -> Result<(), String> {
    let listener =
        TcpListener::bind(HEALTHZ).map_err(|e| format!("listen tcp {HEALTHZ}: bind: {e}"))?;
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 1024];
            let n = conn.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("");
            let reply = if path == "/healthz" {
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 19\r\nConnection: close\r\n\r\n404 page not found\n"
            };
            let _ = conn.write_all(reply.as_bytes());
        }
    });
    Ok(())
}

/// The Node the kubelet registers (kubelet_node_status.go `initialNode`).
pub fn initial_node(name: &str, hostname: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": hostname,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": go_arch(),
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": go_arch(),
            },
            "annotations": {
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
    })
}

/// Go's name of this machine's architecture (runtime.GOARCH), which the labels carry.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The host's name (the kubelet's default node name, lowercased as the kubelet does).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_lowercase()
}

/// Registers the Node once kubelet.conf exists: retries every 2 s in a thread (the real
/// kubelet retries registration with back-off until it succeeds).
pub fn register_in_background(kubectl: PathBuf, log: fn(&str)) {
    std::thread::spawn(move || {
        let name = hostname();
        let node = initial_node(&name, &name).to_string();
        let mut last = String::new();
        loop {
            if Path::new(KUBELET_CONF).exists() {
                match create(&kubectl, &node) {
                    Ok(()) => {
                        log(&format!("Successfully registered node {name}"));
                        return;
                    }
                    Err(e) if e.contains("AlreadyExists") || e.contains("already exists") => {
                        log(&format!("node {name} was previously registered"));
                        return;
                    }
                    Err(e) if e != last => {
                        log(&format!("Unable to register node with API server: {e}"));
                        last = e;
                    }
                    Err(_) => {}
                }
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    });
}

fn create(kubectl: &Path, node: &str) -> Result<(), String> {
    let mut child = Command::new(kubectl)
        .args(["--kubeconfig", KUBELET_CONF, "create", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", kubectl.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(node.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initial_node_carries_the_kubelets_labels_and_annotation() {
        let node = initial_node("node1", "node1");
        assert_eq!(node["metadata"]["name"], "node1");
        let labels = &node["metadata"]["labels"];
        assert_eq!(labels["kubernetes.io/hostname"], "node1");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert_eq!(labels["beta.kubernetes.io/os"], "linux");
        assert_eq!(
            labels["kubernetes.io/arch"],
            labels["beta.kubernetes.io/arch"]
        );
        assert_ne!(labels["kubernetes.io/arch"], "x86_64");
        assert_eq!(
            node["metadata"]["annotations"]
                ["volumes.kubernetes.io/controller-managed-attach-detach"],
            "true"
        );
        assert!(
            node.get("spec").is_none(),
            "no taints unless --register-with-taints"
        );
    }
}
