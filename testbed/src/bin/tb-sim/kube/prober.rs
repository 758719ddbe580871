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
//!   `Accept: */*` (request.go newProbeRequest; the probe's `httpHeaders` are sent, a
//!   given User-Agent or Accept replaces the default, an empty Accept removes it, a Host
//!   is the request's host), TLS without verifying the certificate (http.go InsecureSkipVerify),
//!   redirects to the same host followed (up to 10 requests; a redirect to another host
//!   ends with its 3xx: http.go RedirectChecker, [`http_get`]), success for a final
//!   status in [200, 400) (a 3xx is a Warning, which counts as success), any error or
//!   timeout (`timeoutSeconds`, over the whole exchange) a failure; tcpSocket: a connect
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
    /// httpGet: https?, host (empty = the pod IP), port, path, httpHeaders (name, value).
    Http(bool, String, u16, String, Vec<(String, String)>),
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
            let headers = g["httpHeaders"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|h| {
                    let text = |k: &str| h[k].as_str().unwrap_or_default().to_string();
                    (text("name"), text("value"))
                })
                .collect();
            Action::Http(https, host(&g["host"]), port(&g["port"])?, path, headers)
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
        Action::Http(https, host, port, path, headers) => {
            let host = if host.is_empty() { pod_ip } else { host };
            http_get(*https, host, *port, path, headers, timeout, minor)
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

/// A URL as the probe's HTTP client requests it.
#[derive(Clone, Debug, PartialEq)]
struct Url {
    https: bool,
    /// `host[:port]` as written (the Host header; a v6 host in brackets).
    authority: String,
    /// The path and query (`/` at least).
    target: String,
}

impl Url {
    fn new(https: bool, host: &str, port: u16, path: &str) -> Url {
        // net.JoinHostPort, as request.go formatURL builds the probe's URL.
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        Url {
            https,
            authority: format!("{host}:{port}"),
            target: path.to_string(),
        }
    }

    fn scheme(&self) -> &'static str {
        if self.https {
            "https"
        } else {
            "http"
        }
    }

    /// URL.Hostname(): the host without port or brackets.
    fn hostname(&self) -> &str {
        let a = self.authority.as_str();
        if let Some(rest) = a.strip_prefix('[') {
            return rest.split(']').next().unwrap_or_default();
        }
        a.rsplit_once(':').map_or(a, |(h, _)| h)
    }

    /// The port to dial: the written one, else the scheme's.
    fn port(&self) -> Result<u16, String> {
        let a = self.authority.as_str();
        let port = match a.strip_prefix('[') {
            Some(rest) => rest
                .split_once(']')
                .map_or("", |(_, p)| p.strip_prefix(':').unwrap_or("")),
            None => a.rsplit_once(':').map_or("", |(_, p)| p),
        };
        match port {
            "" => Ok(if self.https { 443 } else { 80 }),
            p => p.parse().map_err(|_| format!("invalid port {p:?}")),
        }
    }

    /// URL.Parse(location) against this URL (RFC 3986 reference resolution, as Go's
    /// ResolveReference; the fragment dropped).
    fn join(&self, location: &str) -> Result<Url, String> {
        let loc = location.split('#').next().unwrap_or_default();
        let bad = || format!("failed to parse Location header {location:?}");
        let absolute = |https: bool, rest: &str| -> Result<Url, String> {
            let (authority, target) = match rest.find(['/', '?']) {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            };
            if authority.is_empty() || authority.contains('@') {
                return Err(bad());
            }
            let target = match target {
                "" => "/".to_string(),
                t if t.starts_with('?') => format!("/{t}"),
                t => remove_dot_segments(t),
            };
            Ok(Url {
                https,
                authority: authority.to_string(),
                target,
            })
        };
        let lower = loc.to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix("http://") {
            return absolute(false, &loc[loc.len() - rest.len()..]);
        }
        if let Some(rest) = lower.strip_prefix("https://") {
            return absolute(true, &loc[loc.len() - rest.len()..]);
        }
        if let Some(rest) = loc.strip_prefix("//") {
            return absolute(self.https, rest);
        }
        if loc
            .split(['/', '?'])
            .next()
            .is_some_and(|s| s.contains(':'))
        {
            return Err(bad()); // another scheme: Go follows it and fails to send
        }
        let (base_path, _) = self
            .target
            .split_once('?')
            .unwrap_or((self.target.as_str(), ""));
        let target = if loc.is_empty() {
            self.target.clone()
        } else if let Some(q) = loc.strip_prefix('?') {
            format!("{base_path}?{q}")
        } else if loc.starts_with('/') {
            remove_dot_segments(loc)
        } else {
            let dir = base_path.rsplit_once('/').map_or("", |(d, _)| d);
            remove_dot_segments(&format!("{dir}/{loc}"))
        };
        Ok(Url {
            target,
            ..self.clone()
        })
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}{}", self.scheme(), self.authority, self.target)
    }
}

/// RFC 3986 section 5.2.4 on a path (and its query, kept as it is).
fn remove_dot_segments(target: &str) -> String {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *seg {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let mut path = format!("/{}", out.join("/"));
    if let Some(q) = query {
        path = format!("{path}?{q}");
    }
    path
}

/// The probe's GET as the kubelet's HTTP prober makes it (pkg/probe/http/http.go: an
/// http.Client with the probe's timeout over the whole exchange and CheckRedirect =
/// RedirectChecker(false), pkg/kubelet/prober/prober.go followNonLocalRedirects):
/// Go's client follows a 301, 302, 303, 307 or 308 with a Location (net/http client.go
/// redirectBehavior; without a Location the 3xx is the answer), sending the first
/// request's headers again plus a Referer (refererForURL: none from https to http);
/// RedirectChecker stops at a Location on another hostname (http.ErrUseLastResponse: the
/// 3xx is the answer) and after 10 requests (`Get "LOCATION": stopped after 10
/// redirects`). DoHTTPProbe then judges the last answer: [200, 300) success, a 3xx a
/// Warning (counted as success), anything else `HTTP probe failed with statuscode: N`.
fn http_get(
    https: bool,
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
    minor: &str,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let first = Url::new(https, host, port, path);
    let mut url = first.clone();
    let mut referer: Option<String> = None;
    let (mut host_header, headers) = probe_headers(headers, minor);
    let mut requests = 0;
    loop {
        let fail = |e: String| format!("Get \"{url}\": {e}");
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(fail(
                "context deadline exceeded (Client.Timeout exceeded while awaiting headers)".into(),
            ));
        }
        let (code, location) = request(
            &url,
            host_header.as_deref(),
            &headers,
            referer.as_deref(),
            left,
        )
        .map_err(fail)?;
        requests += 1;
        let redirect = matches!(code, 301 | 302 | 303 | 307 | 308);
        let Some(location) = location.filter(|_| redirect) else {
            return if (200..400).contains(&code) {
                Ok(())
            } else {
                Err(format!("HTTP probe failed with statuscode: {code}"))
            };
        };
        let next = url.join(&location).map_err(fail)?;
        if next.hostname() != first.hostname() {
            return Ok(()); // the 3xx is the answer: a Warning, counted as success
        }
        if requests >= 10 {
            return Err(format!("Get \"{location}\": stopped after 10 redirects"));
        }
        referer = (!url.https || next.https).then(|| url.to_string());
        // A Host of the probe's own is kept only through a relative redirect (client.go).
        let relative = !(location.contains("://") || location.starts_with("//"));
        host_header = host_header.filter(|h| relative && *h != url.authority);
        url = next;
    }
}

/// The probe's request headers (pkg/probe/http/request.go newProbeRequest): the
/// `httpHeaders` (names canonicalised as Go's http.Header.Add does), `User-Agent:
/// kube-probe/MAJOR.MINOR` unless given, `Accept: */*` unless given (given empty: none);
/// a given `Host` becomes the request's host (req.Host) and is not sent as a header of
/// its own. Returns (host, headers).
fn probe_headers(
    given: &[(String, String)],
    minor: &str,
) -> (Option<String>, Vec<(String, String)>) {
    let canonical = |name: &str| {
        let mut up = true;
        name.chars()
            .map(|c| {
                let c = if up {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                };
                up = c == '-';
                c
            })
            .collect::<String>()
    };
    let mut headers: Vec<(String, String)> = given
        .iter()
        .map(|(k, v)| (canonical(k), v.clone()))
        .collect();
    let first =
        |hs: &[(String, String)], k: &str| hs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if first(&headers, "User-Agent").is_none() {
        headers.push(("User-Agent".into(), format!("kube-probe/{minor}")));
    }
    match first(&headers, "Accept") {
        None => headers.push(("Accept".into(), "*/*".into())),
        Some(v) if v.is_empty() => headers.retain(|(n, _)| n != "Accept"),
        Some(_) => {}
    }
    let host = first(&headers, "Host").filter(|h| !h.is_empty());
    headers.retain(|(n, _)| n != "Host");
    (host, headers)
}

/// One request of [`http_get`]: the status code and the Location header.
fn request(
    url: &Url,
    host_header: Option<&str>,
    headers: &[(String, String)],
    referer: Option<&str>,
    timeout: Duration,
) -> Result<(u16, Option<String>), String> {
    let host = url.hostname().to_string();
    let tcp = connect(&host, url.port()?, timeout)?;
    let _ = tcp.set_read_timeout(Some(timeout));
    let _ = tcp.set_write_timeout(Some(timeout));
    let referer = referer.map_or(String::new(), |r| format!("Referer: {r}\r\n"));
    let lines: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n{lines}{referer}Connection: close\r\n\r\n",
        url.target,
        host_header.unwrap_or(&url.authority)
    );
    let mut response = Vec::new();
    let read = if url.https {
        // The crate's provider (ring), as repo/serve.rs's server uses it.
        let builder = rustls::ClientConfig::builder();
        let provider = builder.crypto_provider().clone();
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(host).map_err(|e| e.to_string())?;
        let conn =
            rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        tls.write_all(request.as_bytes())
            .and_then(|_| read_head(&mut tls, &mut response))
    } else {
        let mut tcp = tcp;
        tcp.write_all(request.as_bytes())
            .and_then(|_| read_head(&mut tcp, &mut response))
    };
    read.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&response);
    let code: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("malformed HTTP response {:?}", text.lines().next()))?;
    let location = text
        .split("\r\n")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("location")
                .then(|| value.trim().to_string())
        })
        .filter(|l| !l.is_empty());
    Ok((code, location))
}

/// Reads until the end of the header (or the stream).
fn read_head(stream: &mut impl Read, out: &mut Vec<u8>) -> std::io::Result<()> {
    let mut buf = [0u8; 512];
    while !out.windows(4).any(|w| w == b"\r\n\r\n") {
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
            Action::Http(true, "10.0.0.1".into(), 6443, "/livez".into(), vec![])
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

    /// Serves one answer per connection, in order (`{port}` in an answer is the server's
    /// own port); returns the port and the requests it got.
    fn serve_in_turn(answers: Vec<String>) -> (u16, std::sync::mpsc::Receiver<String>) {
        use std::net::TcpListener;
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for answer in answers {
                let (mut s, _) = l.accept().unwrap();
                let mut buf = [0u8; 2048];
                let n = s.read(&mut buf).unwrap();
                let _ = tx.send(String::from_utf8_lossy(&buf[..n]).to_string());
                let answer = answer.replace("{port}", &port.to_string());
                let _ = s.write_all(answer.as_bytes());
            }
        });
        (port, rx)
    }

    fn redirect(to: &str) -> String {
        format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n")
    }

    /// The kubelet's prober follows a redirect to the same host and judges where it
    /// leads; a redirect to another host is a Warning (success); the 10th redirect in a
    /// row fails (pkg/probe/http/http.go RedirectChecker). The stand-in counted every 3xx
    /// as success, so a probe redirected to a failing path passed.
    #[test]
    fn http_probes_follow_redirects_to_the_same_host() {
        let get = |port: u16, path: &str| {
            run_once(
                &Action::Http(false, String::new(), port, path.into(), vec![]),
                "127.0.0.1",
                Duration::from_secs(5),
                "1.35",
            )
        };
        let failing = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n";
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (port, rx) = serve_in_turn(vec![redirect("/livez?verbose"), failing.into()]);
        assert_eq!(
            get(port, "/healthz"),
            Err("HTTP probe failed with statuscode: 500".into())
        );
        assert!(rx.recv().unwrap().starts_with("GET /healthz HTTP/1.1\r\n"));
        let second = rx.recv().unwrap();
        assert!(
            second.starts_with("GET /livez?verbose HTTP/1.1\r\n"),
            "{second}"
        );
        assert!(
            second.contains("User-Agent: kube-probe/1.35\r\n"),
            "{second}"
        );
        assert!(
            second.contains(&format!("Referer: http://127.0.0.1:{port}/healthz\r\n")),
            "{second}"
        );
        // Relative and absolute same-host locations, then success.
        let (port, rx) = serve_in_turn(vec![
            redirect("ready"),
            redirect("http://127.0.0.1:{port}/a/../b"),
            ok.into(),
        ]);
        assert_eq!(get(port, "/x/healthz"), Ok(()));
        let paths: Vec<String> = (0..3)
            .map(|_| rx.recv().unwrap().split(' ').nth(1).unwrap().to_string())
            .collect();
        assert_eq!(paths, ["/x/healthz", "/x/ready", "/b"]);
        // Another host: the 3xx is the answer, a Warning, which counts as success.
        let (port, _rx) = serve_in_turn(vec![redirect("http://example.invalid/down")]);
        assert_eq!(get(port, "/healthz"), Ok(()));
        // A 3xx without a Location is the answer too.
        let (port, _rx) = serve_in_turn(vec![
            "HTTP/1.1 301 Moved Permanently\r\nContent-Length: 0\r\n\r\n".into(),
        ]);
        assert_eq!(get(port, "/healthz"), Ok(()));
        // Ten requests, each redirected: the client stops.
        let (port, _rx) = serve_in_turn((0..10).map(|_| redirect("/loop")).collect());
        assert_eq!(
            get(port, "/healthz"),
            Err("Get \"/loop\": stopped after 10 redirects".into())
        );
    }

    /// The probe's httpHeaders are sent (names as Go canonicalises them); a given
    /// User-Agent replaces kube-probe's, an empty Accept removes the default, a Host
    /// becomes the request's host (pkg/probe/http/request.go newProbeRequest). The
    /// stand-in ignored httpHeaders.
    #[test]
    fn http_probes_send_their_headers() {
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_string();
        let (port, rx) = serve_in_turn(vec![ok.clone(), ok]);
        let get = |headers: Vec<(String, String)>| {
            run_once(
                &Action::Http(false, String::new(), port, "/healthz".into(), headers),
                "127.0.0.1",
                Duration::from_secs(5),
                "1.35",
            )
        };
        let h = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            get(vec![
                h("x-custom", "1"),
                h("user-agent", "mine"),
                h("Accept", "")
            ]),
            Ok(())
        );
        let req = rx.recv().unwrap();
        assert!(req.contains("\r\nX-Custom: 1\r\n"), "{req}");
        assert!(req.contains("\r\nUser-Agent: mine\r\n"), "{req}");
        assert!(!req.contains("kube-probe"), "{req}");
        assert!(!req.contains("Accept:"), "{req}");
        assert_eq!(get(vec![h("Host", "example.test")]), Ok(()));
        let req = rx.recv().unwrap();
        assert!(req.contains("\r\nHost: example.test\r\n"), "{req}");
        assert_eq!(req.matches("Host:").count(), 1, "{req}");
        assert!(req.contains("\r\nAccept: */*\r\n"), "{req}");
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
                &Action::Http(false, String::new(), port, "/readyz".into(), vec![]),
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
