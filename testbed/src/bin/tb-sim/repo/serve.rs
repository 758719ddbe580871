//! `tb-sim repo-serve --root CACHE --state DIR --listen IP`: the testbed's internet.
//!
//! Runs in the root namespace for the lifetime of a testbed, listening on the bridge
//! address (port 80 for the Ubuntu archive, which apt reaches over plain HTTP as on
//! Ubuntu, and 443 with the testbed CA's certificate for every name), and answers for
//! the host names the hosts resolve to it (their /etc/hosts): archive.ubuntu.com and
//! security.ubuntu.com (`/ubuntu/...`), pkgs.k8s.io (`/core:/stable:/v1.N/deb/...`) and
//! raw.githubusercontent.com (`/projectcalico/calico/vX.Y.Z/manifests/calico.yaml`), from
//! the files `tb-sim repo-build` made. What pkgs.k8s.io has published is read from
//! `DIR/k8s-published.json` at every request (`Testbed::publish_kubernetes`).
//!
//! HTTP/1.1 with keep-alive and pipelining (apt sends several requests on one
//! connection), GET and HEAD, `Content-Length` always; anything else is 404 (GitHub's
//! raw host answers `404: Not Found`), an unknown pkgs.k8s.io minor 403 as the real one.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub fn main(args: &[String]) -> i32 {
    let mut root = None;
    let mut state = None;
    let mut listen = None;
    let mut time_scale = 0.0;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--root" => root = it.next().map(PathBuf::from),
            "--state" => state = it.next().map(PathBuf::from),
            "--listen" => listen = it.next().cloned(),
            "--time-scale" => time_scale = it.next().and_then(|v| v.parse().ok()).unwrap_or(0.0),
            _ => {}
        }
    }
    let (Some(root), Some(state), Some(listen)) = (root, state, listen) else {
        eprintln!("usage: tb-sim repo-serve --root CACHE --state DIR --listen IP [--time-scale F]");
        return 2;
    };
    match serve(root, state, &listen, time_scale) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("tb-sim repo-serve: {e}");
            1
        }
    }
}

struct Site {
    root: PathBuf,
    state: PathBuf,
    /// The testbed's time scale: a package's download takes its realistic install
    /// duration (`catalog::install_seconds`) times this, the time model of hosts whose
    /// programs are real (a slow mirror standing for download and unpack time).
    time_scale: f64,
}

fn serve(root: PathBuf, state: PathBuf, listen: &str, time_scale: f64) -> Result<(), String> {
    let tls = Arc::new(tls_config(&root.join("keys"))?);
    let http = TcpListener::bind((listen, 80)).map_err(|e| format!("bind {listen}:80: {e}"))?;
    let https = TcpListener::bind((listen, 443)).map_err(|e| format!("bind {listen}:443: {e}"))?;
    let dns = std::net::UdpSocket::bind((listen, 53))
        .map_err(|e| format!("bind {listen}:53/udp: {e}"))?;
    let lookups = state.join(PUBLIC_LOOKUPS);
    std::thread::spawn(move || resolver(dns, &lookups));
    let site = Arc::new(Site {
        root,
        state,
        time_scale,
    });
    let s2 = site.clone();
    std::thread::spawn(move || accept(http, move |tcp| handle(tcp, &s2)));
    accept(https, move |tcp| {
        let Ok(conn) = rustls::ServerConnection::new(tls.clone()) else {
            return;
        };
        handle(rustls::StreamOwned::new(conn, tcp), &site);
    });
    Ok(())
}

/// Where queries from air-gapped hosts are kept: `DIR/public-lookups/ADDRESS`, one name a
/// line; the file exists from `Testbed::air_gap` on.
const PUBLIC_LOOKUPS: &str = "public-lookups";

/// The hosts' name server (their resolv.conf names the bridge address): every name the
/// testbed serves is in their /etc/hosts, so whatever reaches DNS is a public name the
/// testbed does not have, answered NXDOMAIN at once (curl: "Could not resolve host", apt:
/// "Temporary failure resolving"; apt's SRV lookups end there too). From an air-gapped
/// host (its /etc/hosts no longer names the server) each query is recorded.
fn resolver(socket: std::net::UdpSocket, lookups: &Path) {
    let mut buf = [0u8; 512];
    while let Ok((n, from)) = socket.recv_from(&mut buf) {
        let Some((name, question_end)) = question(&buf[..n]) else {
            continue;
        };
        let log = lookups.join(from.ip().to_string());
        if log.exists() {
            if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&log) {
                let _ = writeln!(f, "{name}");
            }
        }
        // RFC 1035 4.1.1: the query's ID and question, QR set, RD copied, RA, RCODE 3.
        let mut reply = buf[..question_end].to_vec();
        reply[2] = 0x80 | (buf[2] & 0x79);
        reply[3] = 0x80 | 3;
        reply[4..12].copy_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        let _ = socket.send_to(&reply, from);
    }
}

/// The name of a query's first question and where the question ends (RFC 1035 4.1.2).
fn question(msg: &[u8]) -> Option<(String, usize)> {
    if msg.len() < 12 || msg[2] & 0x80 != 0 || u16::from_be_bytes([msg[4], msg[5]]) == 0 {
        return None;
    }
    let mut labels = Vec::new();
    let mut i = 12;
    loop {
        let len = *msg.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(msg.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    // QTYPE and QCLASS.
    (i + 4 <= msg.len()).then(|| (labels.join("."), i + 4))
}

fn accept(listener: TcpListener, f: impl Fn(TcpStream) + Send + Sync + Clone + 'static) {
    for tcp in listener.incoming().flatten() {
        let f = f.clone();
        std::thread::spawn(move || f(tcp));
    }
}

fn tls_config(keys: &Path) -> Result<rustls::ServerConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(keys.join("server.crt"))
        .map_err(|e| format!("server.crt: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("server.crt: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(keys.join("server.key"))
        .map_err(|e| format!("server.key: {e}"))?;
    rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())
}

/// One connection: requests in order until the client closes or asks to.
fn handle<S: Read + Write>(stream: S, site: &Site) {
    let mut r = BufReader::new(stream);
    loop {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("/").to_string();
        let mut host = String::new();
        let mut close = false;
        loop {
            let mut h = String::new();
            match r.read_line(&mut h) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "host" => host = v.trim().split(':').next().unwrap_or("").to_string(),
                    "connection" => close = v.trim().eq_ignore_ascii_case("close"),
                    _ => {}
                }
            }
        }
        // `stall`: the server took the connection and the request and never answers (a
        // mirror that hangs), until the fault ends; then the connection closes unanswered.
        if site.fault("stall", &host) {
            site.stall_while("stall", &host);
            return;
        }
        let (status, body) = site.answer(&host, &percent_decode(&target));
        let reason = match status {
            200 => "OK",
            403 => "Forbidden",
            _ => "Not Found",
        };
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n{}\r\n",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        // `truncated`: a package download stops half-way (the connection drops after
        // half the announced Content-Length), as through a proxy that cuts it off.
        let cut = status == 200
            && method != "HEAD"
            && target.ends_with(".deb")
            && site.fault("truncated", &host);
        // `stall-body`: a package download stops half-way and the connection stays open
        // with nothing more coming (a mirror that stalls mid-transfer), until the fault
        // ends; then it closes short.
        let stall = status == 200
            && method != "HEAD"
            && target.ends_with(".deb")
            && site.fault("stall-body", &host);
        let sent = if cut || stall {
            &body[..body.len() / 2]
        } else {
            &body[..]
        };
        let w = r.get_mut();
        let ok = w.write_all(head.as_bytes()).is_ok()
            && (method == "HEAD" || w.write_all(sent).is_ok())
            && w.flush().is_ok();
        if ok && stall {
            site.stall_while("stall-body", &host);
        }
        if !ok || close || cut || stall {
            return;
        }
    }
}

impl Site {
    /// Status and body for `host` + `path`.
    fn answer(&self, host: &str, path: &str) -> (u16, Vec<u8>) {
        let path = path.split('?').next().unwrap_or("");
        if path.split('/').any(|c| c == "..") {
            return not_found();
        }
        let file = match host {
            "archive.ubuntu.com" | "security.ubuntu.com" => match path.strip_prefix("/ubuntu/") {
                Some(p) => match self.ubuntu(p) {
                    Some(f) => Some(f),
                    None => return not_found(),
                },
                None => None,
            },
            "pkgs.k8s.io" => match self.k8s(path) {
                Ok(f) => f,
                Err(status) => return (status, b"Forbidden".to_vec()),
            },
            "raw.githubusercontent.com" => path
                .strip_prefix("/projectcalico/calico/")
                .and_then(|p| p.strip_suffix("/manifests/calico.yaml"))
                .map(|v| self.root.join("calico").join(v).join("calico.yaml")),
            _ => None,
        };
        if self.time_scale > 0.0 && path.ends_with(".deb") {
            let name = path.rsplit('/').next().unwrap_or("");
            let pkg = name.split('_').next().unwrap_or("");
            let secs = super::catalog::install_seconds(pkg) * self.time_scale;
            std::thread::sleep(std::time::Duration::from_secs_f64(secs));
        }
        match file.and_then(|f| std::fs::read(f).ok()) {
            Some(body) if path.ends_with("/InRelease") && self.fault("bad-signature", host) => {
                (200, tamper(body))
            }
            Some(body) => (200, body),
            None => not_found(),
        }
    }

    /// The file for an Ubuntu archive path: the indexes as published now (after
    /// `Testbed::publish_ubuntu_update`, `DIR/ubuntu-updated` exists: the updated
    /// ones), and the pool without the versions that update replaced.
    fn ubuntu(&self, path: &str) -> Option<PathBuf> {
        let updated = self.state.join("ubuntu-updated").exists();
        let archive = self.root.join("ubuntu");
        if let Some(rest) = path.strip_prefix("dists/") {
            let dists = if updated { "dists-updated" } else { "dists" };
            return Some(archive.join(dists).join(rest));
        }
        if updated {
            let name = path.rsplit('/').next().unwrap_or("");
            if let Ok(gone) = std::fs::read_to_string(archive.join("replaced-by-update")) {
                if gone.lines().any(|l| l == name) {
                    return None;
                }
            }
        }
        Some(archive.join(path))
    }

    /// The file for a pkgs.k8s.io path, or the status of a minor that does not exist.
    fn k8s(&self, path: &str) -> Result<Option<PathBuf>, u16> {
        let Some(rest) = path.strip_prefix("/core:/stable:/v1.") else {
            return Ok(None);
        };
        let Some((minor, rest)) = rest.split_once("/deb/") else {
            return Ok(None);
        };
        let repo = self.root.join("k8s").join(format!("v1.{minor}"));
        if minor.parse::<u32>().is_err() || !repo.is_dir() {
            return Err(403);
        }
        let newest = (0..)
            .take_while(|n| repo.join(format!("n{n}")).is_dir())
            .last()
            .unwrap_or(0);
        let published = std::fs::read_to_string(self.state.join("k8s-published.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<std::collections::BTreeMap<String, u32>>(&t).ok())
            .and_then(|m| m.get(minor).copied())
            .map_or(newest, |p| p.min(newest));
        Ok(Some(match rest {
            "Release.key" => self.root.join("k8s").join("Release.key"),
            "InRelease" | "Release" | "Release.gpg" | "Packages" => {
                repo.join(format!("n{published}")).join(rest)
            }
            // A package file exists once its patch is published.
            _ => {
                let patch = rest
                    .split('_')
                    .nth(1)
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.rsplit('.').next())
                    .and_then(|p| p.parse::<u32>().ok());
                let is_patch_release = ["amd64/kubeadm_", "amd64/kubelet_", "amd64/kubectl_"]
                    .iter()
                    .any(|p| rest.starts_with(p));
                if is_patch_release && patch.is_some_and(|p| p > published) {
                    return Ok(None);
                }
                repo.join(rest)
            }
        }))
    }
}

impl Site {
    /// Whether the testbed injected fault `kind` for `host`: `DIR/repo-faults/KIND`
    /// holds the host names it applies to, one per line (`Testbed::repo_fault`).
    fn fault(&self, kind: &str, host: &str) -> bool {
        std::fs::read_to_string(self.state.join("repo-faults").join(kind))
            .is_ok_and(|t| t.lines().any(|l| l.trim() == host))
    }

    /// Sends nothing while fault `kind` lasts for `host` (the client's own timeout is
    /// what ends the transfer, as with a real mirror that hangs).
    fn stall_while(&self, kind: &str, host: &str) {
        while self.fault(kind, host) {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}

/// An InRelease whose signed text was changed after signing (a Label nobody signed).
fn tamper(body: Vec<u8>) -> Vec<u8> {
    String::from_utf8_lossy(&body)
        .replacen("Label: ", "Label: tampered ", 1)
        .into_bytes()
}

fn not_found() -> (u16, Vec<u8>) {
    (404, b"404: Not Found".to_vec())
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
