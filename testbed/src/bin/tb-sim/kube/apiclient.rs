//! The kubelet stand-in's one client of the REAL API server (testbed/STANDINS-kubelet-real.md,
//! "API client"): every request the stand-in makes to the API server goes through
//! [`Client`].
//!
//! Why in-process: the stand-in ran the built kubectl once per request (`kubectl
//! get|create|replace|delete --raw PATH`). Each run started a 59 MB Go program and made a
//! TLS handshake; on a 50-host run those processes were the hosts' top CPU users and
//! they were the test suite's main CPU cost. A [`Client`] keeps its HTTPS connections
//! open (HTTP/1.1 keep-alive, ureq's pool over rustls) for the life of the stand-in, as
//! the real kubelet's client-go clients do.
//!
//! The credentials are the ones kubectl took from the same kubeconfig (client-go
//! clientcmd, loading an explicit `--kubeconfig` path): the current context's cluster
//! `server` and `certificate-authority-data` (or the `certificate-authority` file), its
//! user's `client-certificate-data`/`client-key-data` (or the `client-certificate`/
//! `client-key` files; data wins, as in clientcmd) and `token` (or `tokenFile`) sent as
//! `Authorization: Bearer`; a relative file name is relative to the kubeconfig's
//! directory (clientcmd ResolvePaths). The kubeconfig and the files it names are read
//! again for every request, as each kubectl run read them, and a change makes new
//! connections with the new credentials: kubelet.conf names kubelet-client-current.pem,
//! which certificate rotation (tlsboot.rs) swaps. The server's certificate is always
//! verified against the kubeconfig's CA (rustls/webpki: chain, validity, the server's IP
//! address or DNS name); a kubeconfig with `insecure-skip-tls-verify`, without a CA, or
//! with an authentication the stand-in never gets (basic auth, exec and auth-provider
//! plugins) is refused. Proxies are not used (no testbed host sets one).
//!
//! Requests are kubectl `--raw`'s: GET, POST (`create`), PUT (`replace`), DELETE, a JSON
//! body with `Content-Type: application/json`, `Accept: application/json`. The user
//! agent is the kubelet's (`kubelet/VERSION (linux/ARCH)`, client-go
//! DefaultKubernetesUserAgent), so the API server records the stand-in's writes under the
//! field manager `kubelet`, as a real kubelet's. An error answer becomes
//! [`ApiError::Status`] with the Status object's reason and message; its text is
//! kubectl's (cmdutil.StandardErrorMessage: `Error from server (NotFound): nodes "x" not
//! found`), and callers ask [`ApiError::is_not_found`] / [`ApiError::is_already_exists`]
//! as client-go's apierrors.IsNotFound / IsAlreadyExists do, not the text.
//!
//! Nothing secret is logged: an error names the kubeconfig or the file, never a token or
//! a key.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;

/// Why a request failed.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// The API server answered with an error: the HTTP status code and the Status
    /// object's reason (empty when it had none) and message.
    Status {
        code: u16,
        reason: String,
        message: String,
    },
    /// No answer: the kubeconfig, the connection or TLS failed.
    Client(String),
}

impl ApiError {
    /// apierrors.IsNotFound: reason NotFound, or a 404 whose reason is not a known one.
    pub fn is_not_found(&self) -> bool {
        match self {
            ApiError::Status { code, reason, .. } => {
                reason == "NotFound" || (*code == 404 && matches!(reason.as_str(), "" | "Unknown"))
            }
            ApiError::Client(_) => false,
        }
    }

    /// apierrors.IsAlreadyExists: reason AlreadyExists.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, ApiError::Status { reason, .. } if reason == "AlreadyExists")
    }
}

impl std::fmt::Display for ApiError {
    /// kubectl's words (k8s.io/kubectl cmdutil.StandardErrorMessage for an APIStatus).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Status {
                reason, message, ..
            } => match reason.as_str() {
                "Unauthorized" => {
                    write!(f, "error: You must be logged in to the server ({message})")
                }
                "" | "Unknown" => write!(f, "Error from server: {message}"),
                r => write!(f, "Error from server ({r}): {message}"),
            },
            ApiError::Client(e) => f.write_str(e),
        }
    }
}

impl From<ApiError> for String {
    fn from(e: ApiError) -> String {
        e.to_string()
    }
}

/// The reason and message client-go gives an error answer that is not a Status object
/// (apimachinery errors.NewGenericServerResponse).
fn reason_of(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

/// The error of an answer with `code` and `body`: the Status object's reason and
/// message, else client-go's generic ones for the code.
fn status_error(code: u16, body: &str) -> ApiError {
    let status: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    if status["kind"] == "Status" {
        return ApiError::Status {
            code,
            reason: status["reason"].as_str().unwrap_or_default().to_string(),
            message: status["message"].as_str().unwrap_or_default().to_string(),
        };
    }
    let reason = reason_of(code);
    let message = match reason {
        "NotFound" => "the server could not find the requested resource".to_string(),
        "Conflict" => "the server reported a conflict".to_string(),
        "Forbidden" => "the server does not allow access to the requested resource".to_string(),
        "Unauthorized" => "the server has asked for the client to provide credentials".to_string(),
        _ => format!(
            "an error on the server ({:?}) has prevented the request from succeeding",
            body.trim()
        ),
    };
    ApiError::Status {
        code,
        reason: reason.to_string(),
        message,
    }
}

/// Where the kubeconfig comes from.
#[derive(Debug, Clone)]
enum Source {
    /// A file, read for every request (kubectl `--kubeconfig PATH`).
    File(PathBuf),
    /// A kubeconfig held in memory (one made for a pod's token; never written out).
    Text(String),
}

/// What one reading of the kubeconfig gave: the connections' agent and what requests add.
struct Loaded {
    /// Everything read (the kubeconfig and the files it names): a change rebuilds.
    read: Vec<u8>,
    agent: ureq::Agent,
    server: String,
    token: Option<String>,
}

/// A client of the API server with one kubeconfig's credentials; clones share the
/// connections.
#[derive(Clone)]
pub struct Client {
    source: Source,
    user_agent: String,
    loaded: Arc<Mutex<Option<Loaded>>>,
}

impl Client {
    /// A client with the kubeconfig at `path` (read at each request), as the kubelet of
    /// `release` (e.g. v1.35.4).
    pub fn new(path: impl Into<PathBuf>, release: &str) -> Client {
        Client::with_source(Source::File(path.into()), release)
    }

    /// A client with the same user agent and another kubeconfig, held in memory (one
    /// made for a pod's token is never written out), and its own connections.
    pub fn with_kubeconfig(&self, kubeconfig: String) -> Client {
        Client {
            source: Source::Text(kubeconfig),
            user_agent: self.user_agent.clone(),
            loaded: Arc::new(Mutex::new(None)),
        }
    }

    fn with_source(source: Source, release: &str) -> Client {
        Client {
            source,
            user_agent: format!("kubelet/{release} (linux/{})", super::realnode::go_arch()),
            loaded: Arc::new(Mutex::new(None)),
        }
    }

    /// `kubectl get --raw PATH`.
    pub fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.request("GET", path, None)
    }

    /// `kubectl create --raw PATH -f -`: POST `body`.
    pub fn create(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.request("POST", path, Some(body))
    }

    /// `kubectl replace --raw PATH -f -`: PUT `body`.
    pub fn replace(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.request("PUT", path, Some(body))
    }

    /// `kubectl delete --raw PATH [-f -]`: DELETE, with DeleteOptions when given.
    pub fn delete(&self, path: &str, options: Option<&Value>) -> Result<Value, ApiError> {
        self.request("DELETE", path, options)
    }

    /// One request; the answer's JSON.
    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, ApiError> {
        let (agent, server, token) = self.credentials().map_err(ApiError::Client)?;
        let url = format!("{}{path}", server.trim_end_matches('/'));
        let fail = |e: ureq::Error| ApiError::Client(format!("{method} {url}: {e}"));
        let send = |r: ureq::RequestBuilder<ureq::typestate::WithBody>, b: &Value| {
            r.content_type("application/json").send(b.to_string())
        };
        let (ua, token) = (self.user_agent.as_str(), token.as_deref());
        let answer = match (method, body) {
            ("GET", None) => headers(agent.get(&url), ua, token).call(),
            ("DELETE", None) => headers(agent.delete(&url), ua, token).call(),
            ("DELETE", Some(b)) => {
                send(headers(agent.delete(&url), ua, token).force_send_body(), b)
            }
            ("POST", Some(b)) => send(headers(agent.post(&url), ua, token), b),
            ("PUT", Some(b)) => send(headers(agent.put(&url), ua, token), b),
            _ => {
                return Err(ApiError::Client(format!(
                    "{method} {url}: not a kubectl --raw request"
                )))
            }
        };
        let mut answer = answer.map_err(fail)?;
        let code = answer.status().as_u16();
        let text = answer
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_string()
            .map_err(fail)?;
        if !(200..300).contains(&code) {
            return Err(status_error(code, &text));
        }
        serde_json::from_str(&text).map_err(|e| ApiError::Client(format!("{method} {url}: {e}")))
    }

    /// The agent for the kubeconfig as it is now (built again when it or a file it
    /// names changed), the server and the bearer token.
    fn credentials(&self) -> Result<(ureq::Agent, String, Option<String>), String> {
        let (text, dir, what) = match &self.source {
            Source::File(path) => (
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
                path.parent().unwrap_or(Path::new("/")).to_path_buf(),
                path.display().to_string(),
            ),
            Source::Text(text) => (text.clone(), PathBuf::from("/"), "kubeconfig".into()),
        };
        let config = Kubeconfig::parse(&text, &dir).map_err(|e| format!("{what}: {e}"))?;
        let read = config.read()?;
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = loaded.as_ref().filter(|l| l.read == read.all) {
            return Ok((l.agent.clone(), l.server.clone(), l.token.clone()));
        }
        let agent = agent(&read).map_err(|e| format!("{what}: {e}"))?;
        let l = loaded.insert(Loaded {
            read: read.all,
            agent,
            server: config.server,
            token: read.token,
        });
        Ok((l.agent.clone(), l.server.clone(), l.token.clone()))
    }
}

/// What every request carries: JSON accepted, the user agent, the bearer token if any.
fn headers<B>(
    r: ureq::RequestBuilder<B>,
    user_agent: &str,
    token: Option<&str>,
) -> ureq::RequestBuilder<B> {
    let r = r
        .header("Accept", "application/json")
        .header("User-Agent", user_agent);
    match token {
        Some(t) => r.header("Authorization", format!("Bearer {t}")),
        None => r,
    }
}

/// Where the current context's credentials are (clientcmd's merged cluster and user).
/// No Debug: it may hold a token or a key.
struct Kubeconfig {
    server: String,
    ca: Material,
    cert: Option<Material>,
    key: Option<Material>,
    token: Option<Material>,
}

/// A credential given inline (`*-data`, `token`) or as a file.
enum Material {
    Data(Vec<u8>),
    File(PathBuf),
}

impl Material {
    /// Data (base64 for `data_key`, as is for `token`) wins over a file, as in clientcmd.
    fn of(
        entry: &Value,
        data_key: &str,
        file_key: &str,
        dir: &Path,
    ) -> Result<Option<Material>, String> {
        let some = |k: &str| entry[k].as_str().filter(|s| !s.is_empty());
        if let Some(d) = some(data_key) {
            let bytes = if data_key == "token" {
                d.as_bytes().to_vec()
            } else {
                STANDARD.decode(d).map_err(|e| format!("{data_key}: {e}"))?
            };
            return Ok(Some(Material::Data(bytes)));
        }
        Ok(some(file_key).map(|f| Material::File(dir.join(f))))
    }

    fn read(&self) -> Result<Vec<u8>, String> {
        match self {
            Material::Data(d) => Ok(d.clone()),
            Material::File(f) => std::fs::read(f).map_err(|e| format!("{}: {e}", f.display())),
        }
    }
}

/// The credentials as read now.
struct Read {
    ca: Vec<u8>,
    pair: Option<(Vec<u8>, Vec<u8>)>,
    token: Option<String>,
    /// All of the above with the server, to notice a change.
    all: Vec<u8>,
}

impl Kubeconfig {
    /// The current context's cluster and user (clientcmd DirectClientConfig for an
    /// explicit path), or why they cannot be used.
    fn parse(text: &str, dir: &Path) -> Result<Kubeconfig, String> {
        let doc: Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        let named = |list: &str, name: &Value| {
            doc[list]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["name"] == *name)
        };
        let current = &doc["current-context"];
        if current.as_str().unwrap_or_default().is_empty() {
            return Err("invalid configuration: no configuration has been provided".into());
        }
        let context = named("contexts", current)
            .ok_or_else(|| format!("context was not found for specified context: {current}"))?;
        let cluster_name = &context["context"]["cluster"];
        let cluster = named("clusters", cluster_name)
            .map(|c| &c["cluster"])
            .ok_or_else(|| format!("cluster {cluster_name} was not found"))?;
        let user = named("users", &context["context"]["user"])
            .map(|u| &u["user"])
            .unwrap_or(&Value::Null);
        let server = cluster["server"]
            .as_str()
            .filter(|s| s.starts_with("https://"))
            .ok_or("the stand-in talks HTTPS only: no https:// server")?
            .to_string();
        if cluster["insecure-skip-tls-verify"] == true {
            return Err("insecure-skip-tls-verify: the stand-in always verifies the server".into());
        }
        for unsupported in ["tls-server-name", "proxy-url"] {
            if !cluster[unsupported].is_null() {
                return Err(format!("{unsupported} is not supported by the stand-in"));
            }
        }
        for unsupported in ["username", "password", "exec", "auth-provider", "as"] {
            if !user[unsupported].is_null() {
                return Err(format!(
                    "user {unsupported} is not supported by the stand-in"
                ));
            }
        }
        let ca = Material::of(
            cluster,
            "certificate-authority-data",
            "certificate-authority",
            dir,
        )?
        .ok_or("no certificate-authority: the stand-in trusts the kubeconfig's CA only")?;
        let cert = Material::of(user, "client-certificate-data", "client-certificate", dir)?;
        let key = Material::of(user, "client-key-data", "client-key", dir)?;
        if cert.is_some() != key.is_some() {
            return Err("client-cert-data and client-key-data must both be specified for the user to use client certificate authentication".into());
        }
        Ok(Kubeconfig {
            server,
            ca,
            cert,
            key,
            token: Material::of(user, "token", "tokenFile", dir)?,
        })
    }

    /// Reads the credentials' files now.
    fn read(&self) -> Result<Read, String> {
        let ca = self.ca.read()?;
        let pair = match (&self.cert, &self.key) {
            (Some(c), Some(k)) => Some((c.read()?, k.read()?)),
            _ => None,
        };
        let token = match &self.token {
            Some(t) => Some(
                String::from_utf8(t.read()?)
                    .map_err(|_| "the token is not text".to_string())?
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        let mut all = self.server.as_bytes().to_vec();
        for part in [
            Some(&ca),
            pair.as_ref().map(|p| &p.0),
            pair.as_ref().map(|p| &p.1),
        ]
        .into_iter()
        .flatten()
        {
            all.extend_from_slice(&(part.len() as u64).to_le_bytes());
            all.extend_from_slice(part);
        }
        all.extend_from_slice(token.as_deref().unwrap_or_default().as_bytes());
        Ok(Read {
            ca,
            pair,
            token,
            all,
        })
    }
}

/// The TLS side: the CA's certificates as the only roots, the client pair if any. The
/// pair is checked here (rustls CertifiedKey: the key must be the certificate's, as Go's
/// tls.X509KeyPair requires), so a bad one is an error, not a failed connection.
fn agent(read: &Read) -> Result<ureq::Agent, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use ureq::tls::{Certificate, ClientCert, PemItem, RootCerts, TlsConfig};
    // ring, the provider rustls itself picks from this crate's features (its
    // from_crate_features allows the same deprecation).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = |pem: &[u8], what: &str| -> Result<Vec<CertificateDer<'static>>, String> {
        let list: Vec<_> = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{what}: {e}"))?;
        if list.is_empty() {
            return Err(format!("{what}: no certificate in the PEM data"));
        }
        Ok(list)
    };
    let roots = certs(&read.ca, "certificate-authority")?;
    let mut store = rustls::RootCertStore::empty();
    for c in &roots {
        store
            .add(c.clone())
            .map_err(|e| format!("certificate-authority: {e}"))?;
    }
    let mut tls = TlsConfig::builder()
        .root_certs(RootCerts::new_with_certs(
            &roots
                .iter()
                .map(|c| Certificate::from_der(c.as_ref()).to_owned())
                .collect::<Vec<_>>(),
        ))
        .unversioned_rustls_crypto_provider(provider.clone());
    if let Some((cert, key)) = &read.pair {
        let chain = certs(cert, "client-certificate")?;
        let private = ureq::tls::parse_pem(key)
            .find_map(|item| match item {
                Ok(PemItem::PrivateKey(k)) => Some(k),
                _ => None,
            })
            .ok_or("client-key: no private key in the PEM data")?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| format!("client-key: {e}"))?;
        rustls::sign::CertifiedKey::from_der(chain.clone(), key, &provider)
            .map_err(|e| format!("client certificate and key: {e}"))?;
        let chain: Vec<_> = chain
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()).to_owned())
            .collect();
        tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, private)));
    }
    let config = ureq::Agent::config_builder()
        .tls_config(tls.build())
        .http_status_as_error(false)
        .proxy(None)
        .max_redirects(0)
        // client-go's transport: dial 30 s, TLS handshake 10 s; a request has no limit
        // there, here 60 s so a lost connection cannot stall the stand-in's loops.
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_global(Some(Duration::from_secs(60)))
        .build();
    Ok(config.new_agent())
}

/// A local HTTPS server with its own CA, for tests of the client and its callers.
#[cfg(test)]
pub mod fake {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::sync::Arc;

    /// One request as the server saw it.
    #[derive(Debug, Clone)]
    pub struct Seen {
        pub method: String,
        pub path: String,
        pub authorization: Option<String>,
        pub user_agent: String,
        pub client_cert: bool,
        pub body: String,
        /// Which connection it came on (the count of connections accepted before).
        pub connection: usize,
    }

    fn openssl(args: &[&str], dir: &Path) {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "openssl {args:?}");
    }

    /// A CA (`NAME-ca.crt`, `NAME-ca.key`) in `dir`.
    pub fn ca(dir: &Path, name: &str) {
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "1",
                "-subj",
                &format!("/CN={name}-ca"),
                "-keyout",
                &format!("{name}-ca.key"),
                "-out",
                &format!("{name}-ca.crt"),
            ],
            dir,
        );
    }

    /// A certificate `NAME.crt`/`NAME.key` signed by `ca`'s CA, with `ext` (e.g.
    /// `subjectAltName=IP:127.0.0.1`).
    pub fn signed(dir: &Path, ca: &str, name: &str, subject: &str, ext: &str) {
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        openssl(
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                subject,
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ],
            dir,
        );
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                &format!("{ca}-ca.crt"),
                "-CAkey",
                &format!("{ca}-ca.key"),
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.crt"),
            ],
            dir,
        );
    }

    /// Serves HTTPS on 127.0.0.1 with `dir`'s `server.crt`/`server.key` (made for it by
    /// [`ca`] "server" and [`signed`] when missing), asking for an optional client
    /// certificate of `dir`'s CA "client"; `answer` gives each request's status and body.
    /// Returns the server's URL and what it saw.
    pub fn serve(
        dir: &Path,
        answer: impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static,
    ) -> (String, Arc<std::sync::Mutex<Vec<Seen>>>) {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        if !dir.join("server.crt").exists() {
            ca(dir, "server");
            ca(dir, "client");
            signed(
                dir,
                "server",
                "server",
                "/CN=server",
                "subjectAltName=IP:127.0.0.1\n",
            );
        }
        let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(dir.join("server.crt"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(dir.join("client-ca.crt")).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .allow_unauthenticated()
            .build()
            .unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder()
                .with_client_cert_verifier(verifier)
                .with_single_cert(certs, key)
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (log, answer) = (seen.clone(), Arc::new(answer));
        std::thread::spawn(move || {
            for (connection, tcp) in listener.incoming().flatten().enumerate() {
                let (config, log, answer) = (config.clone(), log.clone(), answer.clone());
                std::thread::spawn(move || {
                    let conn = rustls::ServerConnection::new(config).unwrap();
                    let mut tls = rustls::StreamOwned::new(conn, tcp);
                    // Requests in order on the connection until the client closes it.
                    loop {
                        let mut r = BufReader::new(&mut tls);
                        let mut head = Vec::new();
                        loop {
                            let mut line = String::new();
                            if r.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line == "\r\n" {
                                break;
                            }
                            head.push(line.trim_end().to_string());
                        }
                        let header = |name: &str| {
                            head.iter().find_map(|h| {
                                let (k, v) = h.split_once(':')?;
                                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                            })
                        };
                        let length: usize =
                            header("content-length").map_or(0, |l| l.parse().unwrap());
                        let mut body = vec![0; length];
                        r.read_exact(&mut body).unwrap();
                        let mut words = head[0].split_whitespace();
                        let seen = Seen {
                            method: words.next().unwrap().to_string(),
                            path: words.next().unwrap().to_string(),
                            authorization: header("authorization"),
                            user_agent: header("user-agent").unwrap_or_default(),
                            client_cert: r.get_ref().conn.peer_certificates().is_some(),
                            body: String::from_utf8(body).unwrap(),
                            connection,
                        };
                        let (code, text) = answer(&seen);
                        log.lock().unwrap().push(seen);
                        let reply = format!(
                            "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
                            text.len()
                        );
                        if tls.write_all(reply.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (url, seen)
    }

    /// A kubeconfig for `url` trusting `dir`'s `CA-ca.crt` (by file), with `user` (YAML
    /// lines of the user entry, indented four spaces).
    pub fn kubeconfig(dir: &Path, url: &str, ca: &str, user: &str) -> PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {url}\n    \
                 certificate-authority: {ca}-ca.crt\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\n\
                 current-context: x\nusers:\n- name: u\n  user:\n{user}"
            ),
        )
        .unwrap();
        path
    }

    /// A fresh directory for a test.
    pub fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tb-api-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOT_FOUND: &str = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"nodes \"n9\" not found","reason":"NotFound","details":{"name":"n9","kind":"nodes"},"code":404}"#;

    /// Requests go over TLS verified against the kubeconfig's CA, with its client
    /// certificate and token, on one kept-alive connection; an error answer has
    /// kubectl's words and its reason; a changed certificate is used from the next
    /// request on.
    #[test]
    fn requests_carry_the_kubeconfig_s_credentials_and_errors_kubectl_s_words() {
        let dir = fake::dir("client");
        let (url, seen) = fake::serve(&dir, |s| {
            match (s.method.as_str(), s.path.as_str()) {
            ("GET", "/api/v1/nodes/n1") => (200, r#"{"kind":"Node"}"#.into()),
            ("GET", _) => (404, NOT_FOUND.into()),
            ("POST", _) => (409, r#"{"kind":"Status","reason":"AlreadyExists","message":"nodes \"n1\" already exists","code":409}"#.into()),
            ("PUT", _) => (404, "404 page not found\n".into()),
            _ => (500, r#"{"kind":"Status","message":"boom","code":500}"#.into()),
        }
        });
        fake::signed(
            &dir,
            "client",
            "n1",
            "/O=system:nodes/CN=system:node:n1",
            "extendedKeyUsage=clientAuth\n",
        );
        let pem = dir.join("current.pem");
        let both = |name: &str| {
            [
                std::fs::read(dir.join(format!("{name}.crt"))).unwrap(),
                std::fs::read(dir.join(format!("{name}.key"))).unwrap(),
            ]
            .concat()
        };
        std::fs::write(&pem, both("n1")).unwrap();
        let conf = fake::kubeconfig(
            &dir,
            &url,
            "server",
            "    client-certificate: current.pem\n    client-key: current.pem\n    token: abc.def\n",
        );
        let api = Client::new(&conf, "v1.35.4");
        assert_eq!(
            api.get("/api/v1/nodes/n1").unwrap(),
            json!({"kind": "Node"})
        );
        let e = api.get("/api/v1/nodes/n9").unwrap_err();
        assert!(e.is_not_found() && !e.is_already_exists(), "{e:?}");
        assert_eq!(
            e.to_string(),
            "Error from server (NotFound): nodes \"n9\" not found"
        );
        let e = api
            .create("/api/v1/nodes", &json!({"kind": "Node"}))
            .unwrap_err();
        assert!(e.is_already_exists(), "{e:?}");
        assert_eq!(
            e.to_string(),
            "Error from server (AlreadyExists): nodes \"n1\" already exists"
        );
        let e = api.replace("/nope", &json!({})).unwrap_err();
        assert!(e.is_not_found(), "{e:?}");
        assert_eq!(
            e.to_string(),
            "Error from server (NotFound): the server could not find the requested resource"
        );
        let e = api.delete("/x", None).unwrap_err();
        assert_eq!(e.to_string(), "Error from server: boom");
        assert!(!e.is_not_found());
        {
            let seen = seen.lock().unwrap();
            assert_eq!(seen.len(), 5);
            assert!(seen.iter().all(|s| s.client_cert), "{seen:?}");
            assert!(seen
                .iter()
                .all(|s| s.authorization.as_deref() == Some("Bearer abc.def")));
            assert!(
                seen[0].user_agent.starts_with("kubelet/v1.35.4 (linux/"),
                "{seen:?}"
            );
            assert_eq!(seen[2].body, r#"{"kind":"Node"}"#);
            // One connection, kept alive, error answers included.
            assert!(seen.iter().all(|s| s.connection == 0), "{seen:?}");
        }
        // The pair is swapped (rotation): the next request uses the new one; a pair
        // whose key is not the certificate's is refused before any connection.
        fake::signed(
            &dir,
            "client",
            "n1b",
            "/O=system:nodes/CN=system:node:n1",
            "extendedKeyUsage=clientAuth\n",
        );
        std::fs::write(
            &pem,
            [
                std::fs::read(dir.join("n1.crt")).unwrap(),
                std::fs::read(dir.join("n1b.key")).unwrap(),
            ]
            .concat(),
        )
        .unwrap();
        let e = api.get("/api/v1/nodes/n1").unwrap_err();
        assert!(
            matches!(&e, ApiError::Client(m) if m.contains("client certificate and key")),
            "{e:?}"
        );
        std::fs::write(&pem, both("n1b")).unwrap();
        assert!(api.get("/api/v1/nodes/n1").is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The server's certificate must chain to the kubeconfig's CA and name the server:
    /// never a connection to another.
    #[test]
    fn the_server_is_verified_against_the_kubeconfig_s_ca() {
        let dir = fake::dir("verify");
        let (url, seen) = fake::serve(&dir, |_| (200, "{}".into()));
        let api = |ca: &str| {
            Client::new(
                fake::kubeconfig(&dir, &url, ca, "    token: t\n"),
                "v1.35.4",
            )
        };
        assert!(api("server").get("/").is_ok());
        // Another CA (the client one): refused.
        let e = api("client").get("/").unwrap_err();
        assert!(
            matches!(&e, ApiError::Client(m) if m.contains("certificate")),
            "{e:?}"
        );
        // The right CA, a name the certificate does not carry: refused.
        let other = url.replace("127.0.0.1", "localhost");
        let conf = fake::kubeconfig(&dir, &other, "server", "    token: t\n");
        assert!(matches!(
            Client::new(conf, "v1").get("/"),
            Err(ApiError::Client(_))
        ));
        // Skipping verification is refused outright.
        let text = std::fs::read_to_string(dir.join("kubeconfig"))
            .unwrap()
            .replace(
                "    certificate-authority: server-ca.crt\n",
                "    insecure-skip-tls-verify: true\n",
            );
        let e = api("server").with_kubeconfig(text).get("/").unwrap_err();
        assert!(
            matches!(&e, ApiError::Client(m) if m.contains("insecure-skip-tls-verify")),
            "{e:?}"
        );
        assert_eq!(seen.lock().unwrap().len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
