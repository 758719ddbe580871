//! The kubelet's probes for the static pods of the kubelet stand-in (issue 9,
//! testbed/STANDINS-kubelet-real.md "Probes"): each container's startupProbe,
//! livenessProbe and readinessProbe run against its host process as the kubelet's prober
//! runs them (pkg/kubelet/prober/worker.go doProbe, prober.go, pkg/probe/http/http.go),
//! so a component that never becomes healthy is not Ready and one that stops answering
//! its liveness probe is restarted:
//!
//! - one worker per probe, every `periodSeconds`, not before `initialDelaySeconds` after
//!   the container started; the startup probe runs until it succeeds, liveness and
//!   readiness only after it did (a container without a startup probe is started at
//!   once);
//! - a result counts once it repeats `successThreshold` (success) or `failureThreshold`
//!   (failure) times in a row; readiness starts as Failure, liveness as Success
//!   (worker.go initialValue);
//! - Ready = the readiness result (true once started when there is no readiness probe);
//!   the pod is Ready when all its containers are (status_manager / generate.go);
//! - a liveness failure, or a startup failure, kills the container with the pod's grace
//!   period and the kubelet restarts it (kuberuntime_manager.go computePodActions:
//!   `Container X failed liveness probe, will be restarted`); the worker then holds until
//!   a new container runs (onHold);
//! - httpGet: `GET scheme://host:port/path`, host defaulting to the pod IP (the node's
//!   address for these hostNetwork pods), headers `User-Agent: kube-probe/MAJOR.MINOR` and
//!   `Accept: */*`, TLS without verifying the certificate (http.go InsecureSkipVerify),
//!   success for a status in [200, 400) (a 3xx is a Warning, which counts as success;
//!   the real prober first follows redirects to the same host, up to 10: http.go
//!   RedirectChecker, not modelled here), any error or timeout (`timeoutSeconds`) a
//!   failure; tcpSocket: a connect
//!   within the timeout. exec and grpc probes need the container's image and are refused
//!   (kubeadm writes only httpGet probes).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// httpGet: https?, host (empty = the pod IP), port, path.
    Http(bool, String, u16, String),
    /// tcpSocket: host (empty = the pod IP), port.
    Tcp(String, u16),
}

/// One probe of a container, with the API's defaults (pkg/apis/core/v1/defaults.go
/// SetDefaults_Probe: timeout 1, period 10, success 1, failure 3).
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    pub kind: Kind,
    pub action: Action,
    pub initial_delay: Duration,
    pub timeout: Duration,
    pub period: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

/// The probes of a container of a manifest (`ports` resolve a named port), or why one
/// cannot run here.
pub fn probes(container: &Value) -> Result<Vec<Probe>, String> {
    let mut out = Vec::new();
    for (field, kind) in [
        ("startupProbe", Kind::Startup),
        ("livenessProbe", Kind::Liveness),
        ("readinessProbe", Kind::Readiness),
    ] {
        let p = &container[field];
        if p.is_null() {
            continue;
        }
        let port = |v: &Value| -> Result<u16, String> {
            if let Some(n) = v.as_u64() {
                return u16::try_from(n).map_err(|_| format!("{field}: port {n} out of range"));
            }
            let name = v.as_str().unwrap_or_default();
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            container["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|cp| cp["name"] == name)
                .and_then(|cp| cp["containerPort"].as_u64())
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| format!("{field}: no container port named {name:?}"))
        };
        let host = |h: &Value| h.as_str().unwrap_or_default().to_string();
        let action = if !p["httpGet"].is_null() {
            let g = &p["httpGet"];
            let https = match g["scheme"].as_str().unwrap_or("HTTP") {
                "HTTP" => false,
                "HTTPS" => true,
                s => return Err(format!("{field}: unsupported scheme {s:?}")),
            };
            let path = g["path"].as_str().unwrap_or("/");
            let path = if path.starts_with('/') {
                path.to_string()
            } else {
                format!("/{path}")
            };
            Action::Http(https, host(&g["host"]), port(&g["port"])?, path)
        } else if !p["tcpSocket"].is_null() {
            let t = &p["tcpSocket"];
            Action::Tcp(host(&t["host"]), port(&t["port"])?)
        } else {
            return Err(format!(
                "{field}: only httpGet and tcpSocket probes can run against a host process"
            ));
        };
        let secs =
            |name: &str, default: u64| Duration::from_secs(p[name].as_u64().unwrap_or(default));
        let count = |name: &str, default: u64| p[name].as_u64().unwrap_or(default) as u32;
        out.push(Probe {
            kind,
            action,
            initial_delay: secs("initialDelaySeconds", 0),
            timeout: secs("timeoutSeconds", 1),
            period: secs("periodSeconds", 10),
            success_threshold: count("successThreshold", 1),
            failure_threshold: count("failureThreshold", 3),
        });
    }
    Ok(out)
}

/// What the probes say about one container process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct State {
    pub pid: i32,
    pub started: bool,
    pub ready: bool,
    /// Without a readiness probe, a started container is ready.
    pub has_readiness: bool,
}

/// The containers' states, keyed by (pod, container); read by the mirror pods' status.
fn states() -> &'static Mutex<BTreeMap<(String, String), State>> {
    static STATES: OnceLock<Mutex<BTreeMap<(String, String), State>>> = OnceLock::new();
    STATES.get_or_init(Default::default)
}

/// (started, ready) of container `container` of pod `pod` running as `pid`; None when no
/// worker watches that process (not started by this kubelet yet).
pub fn state(pod: &str, container: &str, pid: i32) -> Option<(bool, bool)> {
    let map = states().lock().unwrap();
    map.get(&(pod.to_string(), container.to_string()))
        .filter(|s| s.pid == pid)
        .map(|s| (s.started, s.ready))
}

/// The result of one probe run: success (with a Warning counted as success) or the
/// failure's output.
pub fn run_once(
    action: &Action,
    pod_ip: &str,
    timeout: Duration,
    minor: &str,
) -> Result<(), String> {
    match action {
        Action::Http(https, host, port, path) => {
            let host = if host.is_empty() { pod_ip } else { host };
            http_get(*https, host, *port, path, timeout, minor)
        }
        Action::Tcp(host, port) => {
            let host = if host.is_empty() { pod_ip } else { host };
            connect(host, *port, timeout).map(|_| ())
        }
    }
}

fn connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("dial tcp {host}:{port}: {e}"))?
        .collect();
    let addr = addrs
        .first()
        .ok_or_else(|| format!("dial tcp {host}:{port}: no address"))?;
    TcpStream::connect_timeout(addr, timeout).map_err(|e| format!("dial tcp {addr}: {e}"))
}

/// TLS without verification, as the kubelet's HTTPS probes (http.go: InsecureSkipVerify).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn http_get(
    https: bool,
    host: &str,
    port: u16,
    path: &str,
    timeout: Duration,
    minor: &str,
) -> Result<(), String> {
    let scheme = if https { "https" } else { "http" };
    let url = format!("{scheme}://{host}:{port}{path}");
    let fail = |e: String| format!("Get \"{url}\": {e}");
    let tcp = connect(host, port, timeout).map_err(fail)?;
    let _ = tcp.set_read_timeout(Some(timeout));
    let _ = tcp.set_write_timeout(Some(timeout));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/{minor}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    let mut response = Vec::new();
    let read = if https {
        // The crate's provider (ring), as repo/serve.rs's server uses it.
        let builder = rustls::ClientConfig::builder();
        let provider = builder.crypto_provider().clone();
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| fail(e.to_string()))?;
        let conn = rustls::ClientConnection::new(Arc::new(config), name)
            .map_err(|e| fail(e.to_string()))?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        tls.write_all(request.as_bytes())
            .and_then(|_| read_head(&mut tls, &mut response))
    } else {
        let mut tcp = tcp;
        tcp.write_all(request.as_bytes())
            .and_then(|_| read_head(&mut tcp, &mut response))
    };
    read.map_err(|e| fail(e.to_string()))?;
    let text = String::from_utf8_lossy(&response);
    let code: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| fail(format!("malformed HTTP response {:?}", text.lines().next())))?;
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with statuscode: {code}"))
    }
}

/// Reads until the end of the status line (or the stream).
fn read_head(stream: &mut impl Read, out: &mut Vec<u8>) -> std::io::Result<()> {
    let mut buf = [0u8; 512];
    while !out.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    Ok(())
}

/// One probe worker's counting (worker.go: lastResult, resultRun, thresholds).
#[derive(Debug)]
pub struct Counter {
    last: Option<bool>,
    run: u32,
}

impl Counter {
    pub fn new() -> Counter {
        Counter { last: None, run: 0 }
    }

    /// The result to publish after a run that gave `ok`, if the run reached its threshold.
    pub fn record(&mut self, probe: &Probe, ok: bool) -> Option<bool> {
        if self.last == Some(ok) {
            self.run += 1;
        } else {
            self.last = Some(ok);
            self.run = 1;
        }
        let threshold = if ok {
            probe.success_threshold
        } else {
            probe.failure_threshold
        };
        (self.run >= threshold.max(1)).then_some(ok)
    }

    fn reset(&mut self) {
        self.run = 0;
    }
}

impl Default for Counter {
    fn default() -> Self {
        Counter::new()
    }
}

/// Where a container runs, for its probe workers.
#[derive(Clone)]
pub struct Target {
    pub pod: String,
    pub container: String,
    pub pid: i32,
    /// When the process started (for initialDelaySeconds).
    pub started_at: Instant,
    pub pod_ip: String,
    /// The release's MAJOR.MINOR, for the User-Agent.
    pub minor: String,
    /// The pod's termination grace period, used to kill on a liveness or startup failure.
    pub grace: Duration,
}

/// Starts the probe workers of a container process (one thread per probe); they end when
/// the process does. Without probes the container is started and ready at once.
pub fn watch(
    target: Target,
    probes: Vec<Probe>,
    alive: fn(i32) -> bool,
    kill: fn(i32, Duration),
    log: fn(String),
) {
    let has = |k: Kind| probes.iter().any(|p| p.kind == k);
    let started = !has(Kind::Startup);
    let ready = started && !has(Kind::Readiness);
    states().lock().unwrap().insert(
        (target.pod.clone(), target.container.clone()),
        State {
            pid: target.pid,
            started,
            ready,
            has_readiness: has(Kind::Readiness),
        },
    );
    for probe in probes {
        let t = target.clone();
        std::thread::spawn(move || worker(t, probe, alive, kill, log));
    }
}

fn update(t: &Target, f: impl FnOnce(&mut State)) -> bool {
    let mut map = states().lock().unwrap();
    match map.get_mut(&(t.pod.clone(), t.container.clone())) {
        Some(s) if s.pid == t.pid => {
            f(s);
            true
        }
        _ => false,
    }
}

fn worker(
    t: Target,
    probe: Probe,
    alive: fn(i32) -> bool,
    kill: fn(i32, Duration),
    log: fn(String),
) {
    let mut counter = Counter::new();
    let mut on_hold = false;
    loop {
        std::thread::sleep(probe.period.max(Duration::from_secs(1)));
        let Some(state) = state(&t.pod, &t.container, t.pid) else {
            return; // another process of this container replaced this one
        };
        if !alive(t.pid) {
            update(&t, |s| s.ready = false);
            return;
        }
        if on_hold || t.started_at.elapsed() < probe.initial_delay {
            continue;
        }
        let started = state.0;
        match probe.kind {
            Kind::Startup if started => return,
            Kind::Liveness | Kind::Readiness if !started => continue,
            _ => {}
        }
        let result = run_once(&probe.action, &t.pod_ip, probe.timeout, &t.minor);
        if let Err(output) = &result {
            log(format!(
                "Probe failed probeType={:?} pod=\"kube-system/{}\" containerName={:?} probeResult=\"failure\" output={output:?}",
                probe.kind.name(),
                t.pod,
                t.container
            ));
        }
        let Some(ok) = counter.record(&probe, result.is_ok()) else {
            continue;
        };
        match (probe.kind, ok) {
            (Kind::Readiness, ready) => {
                update(&t, |s| s.ready = ready);
            }
            (Kind::Startup, true) => {
                update(&t, |s| {
                    s.started = true;
                    s.ready = s.ready || !s.has_readiness;
                });
                return;
            }
            (Kind::Liveness, true) => {}
            (kind, false) => {
                log(format!(
                    "Container {} failed {} probe, will be restarted",
                    t.container,
                    kind.name().to_lowercase()
                ));
                update(&t, |s| s.ready = false);
                kill(t.pid, t.grace);
                on_hold = true;
                counter.reset();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kubeadm_probes_are_read_with_the_api_defaults() {
        let c = json!({
            "name": "kube-apiserver",
            "livenessProbe": {"httpGet": {"host": "10.0.0.1", "path": "/livez", "port": 6443, "scheme": "HTTPS"},
                              "initialDelaySeconds": 10, "timeoutSeconds": 15, "failureThreshold": 8, "periodSeconds": 10},
            "readinessProbe": {"httpGet": {"host": "10.0.0.1", "path": "/readyz", "port": "6443", "scheme": "HTTPS"},
                               "timeoutSeconds": 15, "failureThreshold": 3, "periodSeconds": 1},
            "startupProbe": {"tcpSocket": {"port": "api"}},
            "ports": [{"name": "api", "containerPort": 6443}]
        });
        let p = probes(&c).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].kind, Kind::Startup);
        assert_eq!(p[0].action, Action::Tcp(String::new(), 6443));
        assert_eq!(p[0].period, Duration::from_secs(10));
        assert_eq!(p[0].timeout, Duration::from_secs(1));
        assert_eq!(p[0].failure_threshold, 3);
        assert_eq!(
            p[1].action,
            Action::Http(true, "10.0.0.1".into(), 6443, "/livez".into())
        );
        assert_eq!(p[1].initial_delay, Duration::from_secs(10));
        assert_eq!(p[1].failure_threshold, 8);
        assert_eq!(p[2].kind, Kind::Readiness);
        assert_eq!(p[2].period, Duration::from_secs(1));
        let exec = json!({"livenessProbe": {"exec": {"command": ["true"]}}});
        assert!(probes(&exec)
            .unwrap_err()
            .contains("only httpGet and tcpSocket"));
    }

    #[test]
    fn a_result_counts_after_its_threshold_in_a_row() {
        let p = Probe {
            kind: Kind::Liveness,
            action: Action::Tcp(String::new(), 1),
            initial_delay: Duration::ZERO,
            timeout: Duration::from_secs(1),
            period: Duration::from_secs(1),
            success_threshold: 1,
            failure_threshold: 3,
        };
        let mut c = Counter::new();
        assert_eq!(c.record(&p, false), None);
        assert_eq!(c.record(&p, false), None);
        assert_eq!(c.record(&p, true), Some(true));
        assert_eq!(c.record(&p, false), None);
        assert_eq!(c.record(&p, false), None);
        assert_eq!(c.record(&p, false), Some(false));
    }

    #[test]
    fn http_probes_succeed_below_400_and_fail_otherwise() {
        use std::net::TcpListener;
        let serve = |status: &'static str| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            std::thread::spawn(move || {
                let (mut s, _) = l.accept().unwrap();
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).unwrap();
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                assert!(req.starts_with("GET /readyz HTTP/1.1\r\n"), "{req}");
                assert!(req.contains("User-Agent: kube-probe/1.35\r\n"), "{req}");
                assert!(req.contains("Accept: */*\r\n"), "{req}");
                let _ = s.write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\n\r\nok").as_bytes(),
                );
            });
            port
        };
        let get = |port| {
            run_once(
                &Action::Http(false, String::new(), port, "/readyz".into()),
                "127.0.0.1",
                Duration::from_secs(5),
                "1.35",
            )
        };
        assert_eq!(get(serve("200 OK")), Ok(()));
        assert_eq!(get(serve("302 Found")), Ok(()));
        assert_eq!(
            get(serve("500 Internal Server Error")),
            Err("HTTP probe failed with statuscode: 500".into())
        );
        // Nothing listens: the dial error, as the kubelet's output shows it.
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = get(closed).unwrap_err();
        assert!(
            err.starts_with(&format!(
                "Get \"http://127.0.0.1:{closed}/readyz\": dial tcp 127.0.0.1:{closed}"
            )),
            "{err}"
        );
    }
}
