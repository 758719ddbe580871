//! The kubelet's TLS bootstrap, for the kubelet stand-in of the REAL control plane
//! (testbed/STANDINS-kubelet-real.md; reference real-control-plane.md §3): what `kubeadm
//! join` waits for in `[kubelet-start] Waiting for the kubelet to perform the TLS
//! Bootstrap` (cmd/kubeadm/app/cmd/phases/join/kubelet.go waitForTLSBootstrappedClient:
//! /etc/kubernetes/kubelet.conf and the certificate and key it names load).
//!
//! Followed source (k8s.io/kubernetes v1.35.4 and k8s.io/client-go v0.35.4):
//! - the unit's flags (10-kubeadm.conf): `--bootstrap-kubeconfig=` [`BOOTSTRAP_CONF`],
//!   `--kubeconfig=` [`KUBELET_CONF`], cert dir /var/lib/kubelet/pki (the default);
//! - kubeadm's config.yaml sets `rotateCertificates: true`, so the kubelet takes the
//!   client-rotation path (cmd/kubelet/app/server.go buildKubeletClientConfig): when
//!   kubelet.conf is missing or holds no valid certificate (bootstrap.go
//!   isClientConfigStillValid), `LoadClientConfig` writes kubelet.conf at once, pointing
//!   at `kubelet-client-current.pem` in the cert dir (writeKubeconfigFromBootstrapping:
//!   cluster `default-cluster` with the bootstrap kubeconfig's server and CA, user
//!   `default-auth`, context `default-context`, namespace default), then the certificate
//!   manager (client-go util/certificate/certificate_manager.go rotateCerts/generateCSR)
//!   makes a new ECDSA P-256 key and a CSR with subject O=system:nodes,
//!   CN=system:node:NODE (pkg/kubelet/certificate/kubelet.go
//!   NewKubeletClientCertificateManager), POSTs it with the bootstrap credentials as
//!   `generateName: csr-` (csr.RequestCertificateWithContext with an empty name), signer
//!   `kubernetes.io/kube-apiserver-client-kubelet`, usages `digital signature`, `client
//!   auth` (DefaultKubeletClientGetUsages: no key encipherment for a non-RSA key), and
//!   waits for the certificate (csr.WaitForCertificate: Denied or Failed ends the wait);
//! - with `rotateCertificates: false` the older path (bootstrap.go LoadClientCert) names
//!   the CSR `node-csr-<digest>` (digestedName: SHA-512/256 over the base64url public key,
//!   CN, O and usages, each followed by `|`) and writes kubelet.conf only after the
//!   certificate;
//! - the store (certificate_store.go Update): `kubelet-client-YYYY-MM-DD-HH-MM-SS.pem`,
//!   mode 0600, the certificate(s) then the key, and the symlink
//!   `kubelet-client-current.pem` to its absolute path.
//!
//! The key and the CSR are made by the host's `openssl` (EC key in SEC1 "EC PRIVATE KEY"
//! PEM, as keyutil.MarshalPrivateKeyToPEM writes it); the API calls go through the
//! stand-in's API client (apiclient.rs) with the bootstrap kubeconfig's credentials (its
//! token) and then kubelet.conf's, so the REAL API server authenticates the
//! bootstrap token and the REAL kube-controller-manager approves (csrapproving, with
//! kubeadm's `kubeadm:node-autoapprove-bootstrap` binding) and signs (csrsigning) it.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha512_256};

use super::apiclient::Client;
use super::kubelet::{BOOTSTRAP_CONF, KUBELET_CONF};
use crate::common;
use testbed::time::rfc3339;

/// The kubelet's default `--cert-dir`.
pub const CERT_DIR: &str = "/var/lib/kubelet/pki";
/// The store's symlink to the newest pair (certificate_store.go `currentPair`).
pub const CURRENT_PEM: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";
const SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
const USAGES: [&str; 2] = ["digital signature", "client auth"];
const CSRS: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";

/// Makes sure kubelet.conf holds a valid client certificate, bootstrapping one with
/// [`BOOTSTRAP_CONF`] (`bootstrap_api`, a client with it) when it does not. Returns when it
/// does (or with why it cannot).
pub fn ensure_client(
    bootstrap_api: &Client,
    node: &str,
    rotate: bool,
    log: &dyn Fn(&str),
) -> Result<(), String> {
    if client_config_still_valid(Path::new(KUBELET_CONF)) {
        return Ok(());
    }
    let bootstrap = read_kubeconfig(Path::new(BOOTSTRAP_CONF))
        .map_err(|e| format!("unable to load bootstrap kubeconfig: {e}"))?;
    if rotate {
        // LoadClientConfig: kubelet.conf first, the certificate in the background, where
        // the certificate manager retries a failure instead of ending the kubelet.
        write_kubeconfig(&bootstrap)?;
        log("Client rotation is on, will bootstrap in background");
        rotate_until_issued(
            &mut || request_certificate(bootstrap_api, node, true, log),
            &mut std::thread::sleep,
            log,
        );
        return Ok(());
    }
    // LoadClientCert: a failure ends the kubelet (systemd starts it again 10 s later).
    request_certificate(bootstrap_api, node, false, log)?;
    write_kubeconfig(&bootstrap)
}

/// The certificate manager's rotation loop (client-go certificate_manager.go Start's
/// `rotate`): rotateCerts under wait.ExponentialBackoff (2 s, doubling, 5 tries; jitter
/// left out), then, with "Reached backoff limit, still unable to rotate certs", every
/// 32 s (wait.PollInfinite) until a certificate is issued. rotateCerts only logs its
/// failures (`Failed while requesting a signed certificate from the control plane`,
/// `Certificate request was not signed`, ...: here `attempt`'s error); they never end
/// the kubelet.
pub fn rotate_until_issued(
    attempt: &mut dyn FnMut() -> Result<(), String>,
    sleep: &mut dyn FnMut(Duration),
    log: &dyn Fn(&str),
) {
    let mut tries = 0u32;
    loop {
        match attempt() {
            Ok(()) => return,
            Err(e) => {
                // rotateCerts' message for the stage that failed.
                let what = if e.starts_with("cannot create certificate signing request") {
                    "Failed while requesting a signed certificate from the control plane"
                } else if e.starts_with("cannot watch") || e.starts_with("timed out") {
                    "Certificate request was not signed"
                } else if e.starts_with("openssl") {
                    "Unable to generate a certificate signing request"
                } else {
                    "Unable to store the new cert/key pair"
                };
                log(&format!("\"{what}\" err=\"{e}\""));
            }
        }
        tries += 1;
        if tries < 5 {
            sleep(Duration::from_secs(2 << (tries - 1)));
        } else {
            if tries == 5 {
                log("\"Reached backoff limit, still unable to rotate certs\" err=\"timed out waiting for the condition\"");
            }
            sleep(Duration::from_secs(32));
        }
    }
}

/// The certificate manager's start on a node whose kubelet.conf carries its own pair
/// (kubeadm init writes kubelet.conf with embedded client-certificate-data and
/// client-key-data): with rotation on and no pair in the store yet, the pair goes into
/// the store and the manager asks for a new certificate at once (client-go
/// certificate_manager.go getCurrentCertificateOrBootstrap: shouldRotate). Returns
/// whether it did, so the caller rotates. This is what kubeadm's kubelet-finalize phase
/// looks for (kubelet-client-current.pem) before it repoints kubelet.conf at it and
/// restarts the kubelet (cmd/kubeadm/app/cmd/phases/init/kubeletfinalize.go).
pub fn store_embedded_pair(rotate: bool) -> Result<bool, String> {
    if !rotate || Path::new(CURRENT_PEM).exists() {
        return Ok(false);
    }
    let text = match std::fs::read_to_string(KUBELET_CONF) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e.to_string()),
    };
    let doc: Value = serde_yaml::from_str(&text).map_err(|e| e.to_string())?;
    let user = &doc["users"][0]["user"];
    let (Some(cert), Some(key)) = (
        user["client-certificate-data"].as_str(),
        user["client-key-data"].as_str(),
    ) else {
        return Ok(false);
    };
    let decode = |d: &str| STANDARD.decode(d).map_err(|e| e.to_string());
    store_update(&decode(cert)?, &decode(key)?)?;
    Ok(true)
}

/// The certificate manager's rotateCerts: a new key and CSR (`csr-*` when `rotate`, else
/// the `node-csr-*` digest name), created with `api`'s credentials, waited for, stored.
pub fn request_certificate(
    api: &Client,
    node: &str,
    rotate: bool,
    log: &dyn Fn(&str),
) -> Result<(), String> {
    let key = run(
        "openssl",
        &["ecparam", "-name", "prime256v1", "-genkey", "-noout"],
        b"",
    )?;
    let subject = format!("/O=system:nodes/CN=system:node:{node}");
    let csr = run(
        "openssl",
        &["req", "-new", "-key", "/dev/stdin", "-subj", &subject],
        &key,
    )?;
    let name = if rotate {
        json!({"generateName": "csr-"})
    } else {
        let der = run("openssl", &["pkey", "-pubout", "-outform", "DER"], &key)?;
        json!({"name": digested_name(&der, node)})
    };
    let object = json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": name,
        "spec": {
            "request": STANDARD.encode(&csr),
            "signerName": SIGNER,
            "usages": USAGES,
        },
    });
    let created = api
        .create(CSRS, &object)
        .map_err(|e| format!("cannot create certificate signing request: {e}"))?;
    let csr_name = created["metadata"]["name"].as_str().unwrap_or_default();
    let uid = created["metadata"]["uid"].clone();
    log(&format!(
        "Waiting for client certificate to be issued (certificate signing request {csr_name})"
    ));
    // certificate_manager.go rotateCerts waits certificateWaitTimeout (15 minutes) and then
    // asks again with a new CSR; bootstrap.go requestNodeCertificate waits an hour.
    let timeout = Duration::from_secs(if rotate { 15 * 60 } else { 3600 });
    let cert = wait_for_certificate(api, csr_name, &uid, timeout)?;
    store_update(&cert, &key)?;
    log(&format!(
        "Certificate signing request {csr_name} is issued: {CURRENT_PEM}"
    ));
    Ok(())
}

/// csr.WaitForCertificate (client-go util/certificate/csr/csr.go): the certificate once
/// the CSR of that uid is approved and issued; Denied or Failed, a deleted CSR or another
/// object under its name end the wait with the kubelet's message (the watch's condition
/// error, wrapped by formatError). Up to `timeout`, polled every second (the real one
/// watches).
fn wait_for_certificate(
    api: &Client,
    name: &str,
    uid: &Value,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let started = Instant::now();
    let path = format!("{CSRS}/{name}");
    let ended = |why: String| format!("cannot watch on the certificate signing request: {why}");
    while started.elapsed() < timeout {
        match api.get(&path) {
            Err(e) if e.is_not_found() => {
                return Err(ended(format!("csr {name:?} was deleted")));
            }
            Err(_) => {}
            Ok(csr) => {
                if csr["metadata"]["uid"] != *uid {
                    return Err(ended(format!("csr {name:?} changed UIDs")));
                }
                for c in csr["status"]["conditions"].as_array().into_iter().flatten() {
                    let (kind, reason, message) = (&c["type"], &c["reason"], &c["message"]);
                    let what = match kind.as_str() {
                        Some("Denied") => "is denied",
                        Some("Failed") => "failed",
                        _ => continue,
                    };
                    return Err(ended(format!(
                        "certificate signing request {what}, reason: {}, message: {}",
                        reason.as_str().unwrap_or(""),
                        message.as_str().unwrap_or("")
                    )));
                }
                let approved = csr["status"]["conditions"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Approved"));
                if let Some(cert) = csr["status"]["certificate"].as_str() {
                    if approved && !cert.is_empty() {
                        return STANDARD.decode(cert).map_err(|e| e.to_string());
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    Err("timed out waiting for the condition".into())
}

/// bootstrap.go digestedName for an ECDSA key: `node-csr-` + base64url(SHA-512/256).
pub fn digested_name(public_key_der: &[u8], node: &str) -> String {
    let mut hash = Sha512_256::new();
    let cn = format!("system:node:{node}");
    let parts: Vec<&[u8]> = vec![public_key_der, cn.as_bytes(), b"system:nodes"]
        .into_iter()
        .chain(USAGES.iter().map(|u| u.as_bytes()))
        .collect();
    for part in parts {
        hash.update(URL_SAFE_NO_PAD.encode(part).as_bytes());
        hash.update(b"|");
    }
    format!("node-csr-{}", URL_SAFE_NO_PAD.encode(hash.finalize()))
}

/// certificate_store.go Update: the pair file, then the `current` symlink swapped in.
fn store_update(cert: &[u8], key: &[u8]) -> Result<PathBuf, String> {
    let dir = Path::new(CERT_DIR);
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("could not create directory {dir:?} to store certificates: {e}"))?;
    let t = rfc3339(common::now());
    // "2006-01-02-15-04-05"
    let ts = t.trim_end_matches('Z').replace(['T', ':'], "-");
    let path = dir.join(format!("kubelet-client-{ts}.pem"));
    let mut data = cert.to_vec();
    if !data.ends_with(b"\n") {
        data.push(b'\n');
    }
    data.extend_from_slice(key);
    // Created 0600 (certificate_store.go writes with that mode): the private key is never
    // readable by others, not even between a write and a chmod.
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(&data))
        .map_err(|e| format!("could not open {path:?}: {e}"))?;
    let current = Path::new(CURRENT_PEM);
    if let Ok(meta) = std::fs::symlink_metadata(current) {
        if !meta.file_type().is_symlink() {
            return Err(format!(
                "expected {current:?} to be a symlink but it is a file"
            ));
        }
    }
    let updating = dir.join("kubelet-client-updated.pem");
    let _ = std::fs::remove_file(&updating);
    std::os::unix::fs::symlink(&path, &updating).map_err(|e| e.to_string())?;
    std::fs::rename(&updating, current).map_err(|e| e.to_string())?;
    Ok(path)
}

/// The cluster a kubeconfig's current context names: (server, CA data base64).
#[derive(Debug, PartialEq)]
pub struct Cluster {
    pub server: String,
    pub ca_data: String,
}

/// Reads the current context's cluster from a kubeconfig (clientcmd's loading rules for
/// an explicit path).
pub fn read_kubeconfig(path: &Path) -> Result<Cluster, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("stat {}: no such file or directory", path.display())
        } else {
            format!("{}: {e}", path.display())
        }
    })?;
    parse_kubeconfig(&text).ok_or_else(|| format!("{}: no usable cluster", path.display()))
}

/// The entry of a kubeconfig's `list` (clusters, contexts, users) named `name`.
fn named<'a>(doc: &'a Value, list: &str, name: &Value) -> Option<&'a Value> {
    doc[list].as_array()?.iter().find(|e| e["name"] == *name)
}

fn parse_kubeconfig(text: &str) -> Option<Cluster> {
    let doc: Value = serde_yaml::from_str(text).ok()?;
    let context = named(&doc, "contexts", &doc["current-context"])?;
    let cluster = named(&doc, "clusters", &context["context"]["cluster"])?;
    Some(Cluster {
        server: cluster["cluster"]["server"].as_str()?.to_string(),
        ca_data: cluster["cluster"]["certificate-authority-data"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    })
}

/// writeKubeconfigFromBootstrapping, in clientcmd.WriteToFile's layout and mode (0600).
fn write_kubeconfig(cluster: &Cluster) -> Result<(), String> {
    let text = kubeconfig_text(cluster);
    let path = Path::new(KUBELET_CONF);
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| e.to_string())
}

fn kubeconfig_text(cluster: &Cluster) -> String {
    format!(
        "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: {ca}
    server: {server}
  name: default-cluster
contexts:
- context:
    cluster: default-cluster
    namespace: default
    user: default-auth
  name: default-context
current-context: default-context
kind: Config
preferences: {{}}
users:
- name: default-auth
  user:
    client-certificate: {CURRENT_PEM}
    client-key: {CURRENT_PEM}
",
        ca = cluster.ca_data,
        server = cluster.server
    )
}

/// bootstrap.go isClientConfigStillValid, for the current context's user (clientcmd's
/// loading of an explicit path): the kubeconfig loads with a client certificate AND a
/// client key, data or readable files (clientcmd validation.go validateAuthInfo:
/// `client-key-data or client-key must be specified ...`); embedded data must be a pair
/// (transport.go TLSConfigFor: tls.X509KeyPair unless both are files, which it reloads
/// later); the certificate data holds at least one certificate and none of them has
/// expired (certutil.ParseCertsPEM, every cert's NotAfter).
fn client_config_still_valid(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    let Ok(doc) = serde_yaml::from_str::<Value>(&text) else {
        return false;
    };
    let Some(user) = named(&doc, "contexts", &doc["current-context"])
        .and_then(|c| named(&doc, "users", &c["context"]["user"]))
        .map(|u| &u["user"])
    else {
        return false;
    };
    // Data wins over a file (clientcmd: "client-cert-data will override").
    let load = |data: &str, file: &str| -> Option<(Vec<u8>, bool)> {
        match (user[data].as_str(), user[file].as_str()) {
            (Some(d), _) if !d.is_empty() => STANDARD.decode(d).ok().map(|b| (b, true)),
            (_, Some(f)) if !f.is_empty() => std::fs::read(f).ok().map(|b| (b, false)),
            _ => None,
        }
    };
    let (Some((cert, cert_data)), Some((key, key_data))) = (
        load("client-certificate-data", "client-certificate"),
        load("client-key-data", "client-key"),
    ) else {
        return false;
    };
    if cert_data || key_data {
        let public = |args: &[&str], pem: &[u8]| run("openssl", args, pem).ok();
        let leaf = public(&["x509", "-noout", "-pubkey"], &cert);
        if leaf.is_none() || leaf != public(&["pkey", "-pubout"], &key) {
            return false;
        }
    }
    let certs = pem_certificates(&cert);
    !certs.is_empty()
        && certs
            .iter()
            .all(|c| run("openssl", &["x509", "-noout", "-checkend", "0"], c).is_ok())
}

/// The CERTIFICATE blocks of a PEM file, each as its own PEM (certutil.ParseCertsPEM
/// skips the other blocks, a private key among them).
fn pem_certificates(pem: &[u8]) -> Vec<Vec<u8>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let text = String::from_utf8_lossy(pem);
    let mut out = Vec::new();
    let mut rest = text.as_ref();
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else {
            break;
        };
        let end = start + len + END.len();
        out.push(format!("{}\n", &rest[start..end]).into_bytes());
        rest = &rest[end..];
    }
    out
}

/// Runs a program with `input` on stdin; its stdout, or its stderr as the error.
fn run(program: &str, args: &[&str], input: &[u8]) -> Result<Vec<u8>, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bootstrap_kubeconfig_s_cluster_becomes_kubelet_conf_s() {
        let bootstrap = "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0E=
    server: https://10.200.1.11:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: tls-bootstrap-token-user
  name: tls-bootstrap-token-user@kubernetes
current-context: tls-bootstrap-token-user@kubernetes
kind: Config
users:
- name: tls-bootstrap-token-user
  user:
    token: abcdef.0123456789abcdef
";
        let cluster = parse_kubeconfig(bootstrap).unwrap();
        assert_eq!(
            cluster,
            Cluster {
                server: "https://10.200.1.11:6443".into(),
                ca_data: "Q0E=".into()
            }
        );
        let conf: Value = serde_yaml::from_str(&kubeconfig_text(&cluster)).unwrap();
        assert_eq!(conf["users"][0]["name"], "default-auth");
        assert_eq!(conf["users"][0]["user"]["client-certificate"], CURRENT_PEM);
        assert_eq!(conf["users"][0]["user"]["client-key"], CURRENT_PEM);
        assert_eq!(conf["clusters"][0]["cluster"]["server"], cluster.server);
        assert_eq!(conf["current-context"], "default-context");
        assert!(!kubeconfig_text(&cluster).contains("token"));
    }

    #[test]
    fn the_node_csr_name_is_the_kubelet_s_digest() {
        // The digest covers key, CN, O and usages: any change gives another name.
        let a = digested_name(b"key", "node2");
        assert!(a.starts_with("node-csr-"), "{a}");
        assert_eq!(a.len(), "node-csr-".len() + 43, "{a}");
        assert_ne!(a, digested_name(b"key", "node3"));
        assert_ne!(a, digested_name(b"kez", "node2"));
        assert_eq!(a, digested_name(b"key", "node2"));
    }

    /// csr.WaitForCertificate ends at once, with its words, when the CSR is deleted, is
    /// another object under the same name, or is denied (a deleted one was polled for an
    /// hour, so the kubelet never asked again). The answers come from a local HTTPS server
    /// (apiclient.rs fake) through the stand-in's API client, a Status object for the
    /// deleted CSR as the API server sends it.
    #[test]
    fn the_certificate_wait_ends_as_the_kubelet_s_watch_does() {
        use super::super::apiclient::fake;
        let dir = fake::dir("tlsboot-wait");
        let uid = json!("u-1");
        let wait = |answer: &'static str, code: u16| {
            let (url, seen) = fake::serve(&dir, move |_| (code, answer.to_string()));
            let conf =
                fake::kubeconfig(&dir, &url, "server", "    token: abcdef.0123456789abcdef\n");
            let api = Client::new(conf, "v1.35.4");
            let started = Instant::now();
            let got = wait_for_certificate(&api, "csr-abc", &uid, Duration::from_secs(30));
            assert!(started.elapsed() < Duration::from_secs(10), "{got:?}");
            let seen = seen.lock().unwrap();
            assert_eq!(seen.len(), 1, "{seen:?}");
            assert_eq!(seen[0].method, "GET");
            assert_eq!(seen[0].path, format!("{CSRS}/csr-abc"));
            got.unwrap_err()
        };
        assert_eq!(
            wait(
                r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"certificatesigningrequests.certificates.k8s.io \"csr-abc\" not found","reason":"NotFound","details":{"name":"csr-abc","group":"certificates.k8s.io","kind":"certificatesigningrequests"},"code":404}"#,
                404
            ),
            "cannot watch on the certificate signing request: csr \"csr-abc\" was deleted"
        );
        assert_eq!(
            wait(r#"{"metadata": {"uid": "u-2"}}"#, 200),
            "cannot watch on the certificate signing request: csr \"csr-abc\" changed UIDs"
        );
        assert_eq!(
            wait(
                r#"{"metadata": {"uid": "u-1"}, "status": {"conditions": [{"type": "Denied", "status": "True", "reason": "NotMine", "message": "no"}]}}"#,
                200
            ),
            "cannot watch on the certificate signing request: certificate signing request is denied, reason: NotMine, message: no"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A self-signed certificate and its key (PEM), by the host's openssl.
    fn pair(dir: &Path, name: &str) -> (Vec<u8>, Vec<u8>) {
        let (cert, key) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        let status = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args([
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "1",
                "-subj",
            ])
            .arg(format!("/CN={name}"))
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        (std::fs::read(cert).unwrap(), std::fs::read(key).unwrap())
    }

    /// isClientConfigStillValid looks at the current context's user and wants a client
    /// key beside the certificate, and embedded data that is a pair (tls.X509KeyPair):
    /// the stand-in took users[0] and looked at the certificate only.
    #[test]
    fn a_client_config_is_valid_only_with_its_current_user_s_pair() {
        let dir = std::env::temp_dir().join(format!("tb-tlsboot-pair-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = pair(&dir, "a");
        let (_, other_key) = pair(&dir, "b");
        let conf = dir.join("kubelet.conf");
        let valid = |users: &str, current: &str| {
            std::fs::write(
                &conf,
                format!(
                    "contexts:\n- name: c\n  context: {{cluster: k, user: {current}}}\n\
                     current-context: c\nusers:\n{users}"
                ),
            )
            .unwrap();
            client_config_still_valid(&conf)
        };
        let user = |name: &str, cert: &[u8], key: Option<&[u8]>| {
            let mut u = format!(
                "- name: {name}\n  user:\n    client-certificate-data: {}\n",
                STANDARD.encode(cert)
            );
            if let Some(key) = key {
                u += &format!("    client-key-data: {}\n", STANDARD.encode(key));
            }
            u
        };
        let good = user("good", &cert, Some(&key));
        assert!(valid(&good, "good"));
        assert!(!valid(
            &user("mismatched", &cert, Some(&other_key)),
            "mismatched"
        ));
        assert!(!valid(&user("keyless", &cert, None), "keyless"));
        // The current context's user counts, not the first one.
        let keyless = user("keyless", &cert, None);
        assert!(!valid(&format!("{good}{keyless}"), "keyless"));
        assert!(valid(&format!("{keyless}{good}"), "good"));
        // Files: the store's current pair (certificate and key in one file).
        let pem = dir.join("kubelet-client-current.pem");
        std::fs::write(&pem, [cert.clone(), key.clone()].concat()).unwrap();
        let files = format!(
            "- name: files\n  user:\n    client-certificate: {p}\n    client-key: {p}\n",
            p = pem.display()
        );
        assert!(valid(&files, "files"));
        std::fs::remove_file(&pem).unwrap();
        assert!(!valid(&files, "files"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// With rotation on a failed bootstrap is retried as the certificate manager retries
    /// it, 2, 4, 8 and 16 s apart and then every 32 s, never given up (the stand-in waited
    /// 10 s, the non-rotation path's systemd restart, and logged it as fatal).
    #[test]
    fn rotation_retries_a_failed_bootstrap_with_the_manager_s_backoff() {
        let mut left = 7;
        let mut sleeps = Vec::new();
        let logged = std::cell::RefCell::new(Vec::new());
        rotate_until_issued(
            &mut || {
                left -= 1;
                if left == 0 {
                    Ok(())
                } else {
                    Err("cannot watch on the certificate signing request: certificate signing request is denied, reason: X, message: Y".into())
                }
            },
            &mut |d| sleeps.push(d.as_secs()),
            &|m| logged.borrow_mut().push(m.to_string()),
        );
        assert_eq!(sleeps, [2, 4, 8, 16, 32, 32]);
        let logged = logged.into_inner();
        assert_eq!(logged.len(), 7, "{logged:?}");
        assert!(logged[0].starts_with("\"Certificate request was not signed\" err=\"cannot watch on the certificate signing request: certificate signing request is denied"), "{logged:?}");
        assert_eq!(
            logged
                .iter()
                .filter(|l| l.contains("Reached backoff limit"))
                .count(),
            1
        );
    }

    #[test]
    fn a_missing_or_certless_kubeconfig_is_not_valid() {
        assert!(!client_config_still_valid(Path::new(
            "/nonexistent/kubelet.conf"
        )));
        let dir = std::env::temp_dir().join(format!("tb-tlsboot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("kubelet.conf");
        std::fs::write(
            &conf,
            "users:\n- name: default-auth\n  user:\n    client-certificate: /nonexistent.pem\n",
        )
        .unwrap();
        assert!(!client_config_still_valid(&conf));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
