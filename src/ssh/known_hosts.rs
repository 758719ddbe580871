//! Strict host key checking against an OpenSSH `known_hosts` file.
//!
//! russh ships a `known_hosts` helper, but it does not understand markers (`@revoked`,
//! `@cert-authority`), wildcards or negated patterns, splits only on single spaces and
//! miscounts lines after comments, so a changed-key message could point at the wrong
//! line. This module implements the format as `sshd(8)` documents it ("SSH_KNOWN_HOSTS
//! FILE FORMAT") and as `ssh` applies it with `StrictHostKeyChecking yes` (or
//! `accept-new`, which appends an unknown host's key under a lock: [`append`]), host
//! certificates included ([`KnownHosts::verify_certificate`]). Every
//! verdict names the file, the line and the SHA256 fingerprint the way `ssh-keygen -l`
//! prints them, so the person can verify the key out of band.

use std::path::{Path, PathBuf};

use base64::Engine;
use hmac::{KeyInit, Mac};
use russh::keys::ssh_key::{certificate::CertType, Algorithm, Certificate, HashAlg, PublicKey};

/// What to do with a host whose key the known_hosts file does not record, as OpenSSH's
/// `StrictHostKeyChecking`. A changed or revoked key is refused under every policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum HostKeyPolicy {
    /// `yes`: refuse it; the person records the key after verifying it.
    #[default]
    Strict,
    /// `accept-new`: trust it on first use and append it to the file, for machines
    /// created moments ago whose keys nobody could have recorded yet.
    AcceptNew,
}

impl HostKeyPolicy {
    /// The inventory's spelling.
    pub fn name(self) -> &'static str {
        match self {
            HostKeyPolicy::Strict => "strict",
            HostKeyPolicy::AcceptNew => "accept-new",
        }
    }

    pub fn parse(s: &str) -> Option<HostKeyPolicy> {
        [HostKeyPolicy::Strict, HostKeyPolicy::AcceptNew]
            .into_iter()
            .find(|p| p.name() == s)
    }
}

/// The known_hosts lines relevant to one host, read once per connection.
#[derive(Debug, Clone)]
pub struct KnownHosts {
    path: PathBuf,
    /// The name entries are matched against: `addr` for port 22, `[addr]:port` otherwise.
    lookup: String,
    /// The address, lowercased: the principal a host certificate must name.
    address: String,
    /// Entries whose host patterns match `lookup`, in file order.
    entries: Vec<Entry>,
    /// For a port other than 22, the entries for the bare address: ssh trusts a key
    /// recorded there when `[addr]:port` knows none (sshconnect.c check_host_key,
    /// "checking without port identifier").
    without_port: Option<Box<KnownHosts>>,
}

#[derive(Debug, Clone)]
struct Entry {
    line: usize,
    marker: Marker,
    key: PublicKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

/// Why a server's host key is not trusted. `Display` is the whole explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No entry for this host and key type.
    Unknown {
        lookup: String,
        offered: String,
        file: PathBuf,
        /// Key types the file does know for this host (e.g. only `ssh-rsa`).
        other_types: Vec<String>,
        /// The file only has `@cert-authority` lines for the host; not supported.
        ca_only: bool,
    },
    /// An entry of the same key type records a different key.
    Changed {
        lookup: String,
        offered: String,
        recorded: String,
        file: PathBuf,
        line: usize,
    },
    /// The offered key is listed under `@revoked`.
    Revoked {
        lookup: String,
        offered: String,
        file: PathBuf,
        line: usize,
    },
    /// The server presented a host certificate that the `@cert-authority` lines do not
    /// make valid for this host (and its plain key is not recorded either).
    Certificate {
        lookup: String,
        file: PathBuf,
        reason: String,
    },
    /// The file itself could not be read.
    Unreadable { file: PathBuf, reason: String },
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Unknown {
                lookup,
                offered,
                file,
                other_types,
                ca_only,
            } => {
                write!(
                    f,
                    "no host key for {lookup} is recorded in {file}; the server offered {offered}. \
                     bootstrap never adds keys itself: verify this fingerprint out of band \
                     (e.g. `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` on the host's console) \
                     and add the key to {file}",
                    file = file.display()
                )?;
                if !other_types.is_empty() {
                    write!(
                        f,
                        " (the file knows only other key types for this host: {})",
                        other_types.join(", ")
                    )?;
                }
                if *ca_only {
                    write!(
                        f,
                        " (the file has only @cert-authority entries for this host, but the \
                         server presented a plain key, not a certificate signed by that CA)"
                    )?;
                }
                Ok(())
            }
            Rejection::Changed {
                lookup,
                offered,
                recorded,
                file,
                line,
            } => write!(
                f,
                "the host key of {lookup} HAS CHANGED: the server offered {offered} but \
                 {file}:{line} records {recorded}. Someone may be intercepting the connection \
                 (man-in-the-middle), or the host was reinstalled. If you know the change is \
                 legitimate, remove the old entry (`ssh-keygen -R {qlookup} -f {qfile}`) and \
                 add the new key after verifying it",
                file = file.display(),
                qlookup = shell_word(lookup),
                qfile = shell_word(&file.display().to_string()),
            ),
            Rejection::Revoked {
                lookup,
                offered,
                file,
                line,
            } => write!(
                f,
                "the host key {offered} offered by {lookup} is marked @revoked at {file}:{line}",
                file = file.display()
            ),
            Rejection::Certificate {
                lookup,
                file,
                reason,
            } => write!(
                f,
                "the host certificate of {lookup} is not trusted: {reason} (checked against the \
                 @cert-authority lines of {}; the key inside the certificate is not recorded \
                 there either)",
                file.display()
            ),
            Rejection::Unreadable { file, reason } => write!(
                f,
                "cannot use known_hosts file {}: {reason} (bootstrap checks every host key \
                 against it; only hostKeyPolicy accept-new creates it or adds to it)",
                file.display()
            ),
        }
    }
}

/// Seconds since the epoch as an RFC 3339 UTC time (`forever` for the largest value, as
/// ssh-keygen -L prints it).
fn utc(secs: u64) -> String {
    if secs == u64::MAX {
        return "forever".to_string();
    }
    i64::try_from(secs)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map_or_else(
            || secs.to_string(),
            |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        )
}

/// `s` quoted for pasting into a shell, when it needs it.
fn shell_word(s: &str) -> String {
    shlex::try_quote(s).map_or_else(|_| s.to_string(), |q| q.into_owned())
}

/// `ED25519 key SHA256:...`, as `ssh` describes an offered key.
pub fn describe(key: &PublicKey) -> String {
    format!("{} key {}", key_type_label(key), fingerprint(key))
}

/// The SHA256 fingerprint the way OpenSSH prints it: `SHA256:` + unpadded base64.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

fn key_type_label(key: &PublicKey) -> &'static str {
    match key.algorithm() {
        Algorithm::Ed25519 => "ED25519",
        Algorithm::Rsa { .. } => "RSA",
        Algorithm::Ecdsa { .. } => "ECDSA",
        Algorithm::Dsa => "DSA",
        _ => "other",
    }
}

/// Same key type, ignoring the RSA signature hash (`ssh-rsa` and `rsa-sha2-512` are the
/// same key).
fn same_type(a: &PublicKey, b: &PublicKey) -> bool {
    a.key_data().algorithm() == b.key_data().algorithm()
}

/// The name OpenSSH looks up for a host and port.
pub fn lookup_name(address: &str, port: u16) -> String {
    let address = address.to_ascii_lowercase();
    if port == 22 {
        address
    } else {
        format!("[{address}]:{port}")
    }
}

impl KnownHosts {
    /// Reads `path` and keeps the entries for `address`:`port`. Under `accept-new` a
    /// missing file is an empty one (the first key added creates it, as `ssh` does).
    pub fn load(
        path: &Path,
        address: &str,
        port: u16,
        policy: HostKeyPolicy,
    ) -> Result<KnownHosts, Rejection> {
        // Bytes, as ssh reads the file (hostfile.c): a comment or another host's line
        // in a legacy encoding must not make the whole file unreadable. Such bytes can
        // only be in comments, markers or host patterns, and a pattern that holds them
        // matches no address bootstrap looks up, lossy or not.
        let text = match std::fs::read(path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && policy == HostKeyPolicy::AcceptNew =>
            {
                String::new()
            }
            Err(e) => {
                return Err(Rejection::Unreadable {
                    file: path.to_path_buf(),
                    reason: e.to_string(),
                })
            }
        };
        Ok(KnownHosts::parse(&text, path, address, port))
    }

    /// Parses file contents; lines that are malformed or hold key types this client
    /// cannot parse are skipped, as `ssh` does.
    pub fn parse(text: &str, path: &Path, address: &str, port: u16) -> KnownHosts {
        let lookup = lookup_name(address, port);
        let mut entries = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_ascii_whitespace();
            let mut first = fields.next();
            let marker = match first {
                Some("@revoked") => Marker::Revoked,
                Some("@cert-authority") => Marker::CertAuthority,
                Some(m) if m.starts_with('@') => continue, // unknown marker: ssh skips it
                _ => Marker::None,
            };
            if marker != Marker::None {
                first = fields.next();
            }
            let (Some(hosts), Some(_key_type), Some(blob)) = (first, fields.next(), fields.next())
            else {
                continue;
            };
            if !hosts_match(hosts, &lookup) {
                continue;
            }
            let Ok(key) = russh::keys::parse_public_key_base64(blob) else {
                continue;
            };
            entries.push(Entry {
                line: index + 1,
                marker,
                key,
            });
        }
        KnownHosts {
            path: path.to_path_buf(),
            lookup,
            address: address.to_ascii_lowercase(),
            entries,
            without_port: (port != 22)
                .then(|| Box::new(KnownHosts::parse(text, path, address, 22))),
        }
    }

    /// This lookup's `@cert-authority` lines, without the port-less fallback.
    fn has_own_cert_authority(&self) -> bool {
        self.entries
            .iter()
            .any(|e| e.marker == Marker::CertAuthority)
    }

    /// Whether a `@cert-authority` line covers this host: then the server is asked for a
    /// host certificate first.
    pub fn has_cert_authority(&self) -> bool {
        self.has_own_cert_authority()
            || self
                .without_port
                .as_ref()
                .is_some_and(|b| b.has_own_cert_authority())
    }

    /// Accepts a host certificate as `ssh` does (sshconnect.c check_host_cert,
    /// sshkey_cert_check_host): a host certificate, neither it nor its CA `@revoked`,
    /// signed by a CA that a `@cert-authority` line for this host names, within its
    /// validity at `now` (seconds since the epoch), naming this host among its principals
    /// (at least one; patterns allowed), without critical options (none is defined for hosts).
    pub fn verify_certificate(&self, cert: &Certificate, now: u64) -> Result<(), Rejection> {
        let found = self.verify_own_certificate(cert, now);
        match &self.without_port {
            // No CA for `[addr]:port` (ssh's HOST_NEW): the bare address's CA lines.
            Some(bare) if found.is_err() && !self.has_own_cert_authority() => {
                bare.verify_own_certificate(cert, now).or(found)
            }
            _ => found,
        }
    }

    fn verify_own_certificate(&self, cert: &Certificate, now: u64) -> Result<(), Rejection> {
        let reject = |reason: String| Rejection::Certificate {
            lookup: self.lookup.clone(),
            file: self.path.clone(),
            reason,
        };
        let ca = PublicKey::from(cert.signature_key().clone());
        let key = PublicKey::from(cert.public_key().clone());
        let ca_desc = format!("CA {}", describe(&ca));
        if let Some(e) = self.entries.iter().find(|e| {
            e.marker == Marker::Revoked
                && (e.key.key_data() == cert.public_key()
                    || e.key.key_data() == cert.signature_key())
        }) {
            return Err(Rejection::Revoked {
                lookup: self.lookup.clone(),
                offered: if e.key.key_data() == cert.public_key() {
                    format!("certificate key {}", describe(&key))
                } else {
                    ca_desc
                },
                file: self.path.clone(),
                line: e.line,
            });
        }
        if cert.cert_type() != CertType::Host {
            return Err(reject(format!(
                "it is a user certificate (key ID \"{}\"), not a host certificate",
                cert.key_id()
            )));
        }
        if !self
            .entries
            .iter()
            .any(|e| e.marker == Marker::CertAuthority && e.key.key_data() == cert.signature_key())
        {
            return Err(reject(format!(
                "it is signed by {ca_desc}, which no @cert-authority line for {} names",
                self.lookup
            )));
        }
        if now < cert.valid_after() {
            return Err(reject(format!(
                "it is not valid before {} (now {})",
                utc(cert.valid_after()),
                utc(now)
            )));
        }
        if now >= cert.valid_before() {
            return Err(reject(format!(
                "it EXPIRED at {} (now {}); the host needs a new certificate",
                utc(cert.valid_before()),
                utc(now)
            )));
        }
        cert.validate_at(now, [&ca.fingerprint(HashAlg::Sha256)])
            .map_err(|e| reject(format!("its signature by {ca_desc} does not verify: {e}")))?;
        // OpenSSH (sshkey_cert_check_host, since openssh-portable 5166b6cbf) refuses a
        // certificate without principals, which used to mean "any host": a CA that
        // signed one by mistake vouched for every host it covers (CVE-2024-7594). Host
        // principals are patterns (`*.example.com`), matched as match_pattern does.
        let principals = cert.valid_principals();
        if principals.is_empty() {
            return Err(reject(
                "it lists no principals (OpenSSH refuses such certificates: one would \
                 vouch for every host its CA covers); the host needs a certificate naming \
                 it (ssh-keygen -s CA -h -n NAME)"
                    .to_string(),
            ));
        }
        if !principals
            .iter()
            .any(|p| glob(p.as_bytes(), self.address.as_bytes()))
        {
            return Err(reject(format!(
                "it is valid for {} but not for {} (the inventory's address)",
                principals.join(", "),
                self.address
            )));
        }
        if let Some((name, _)) = cert.critical_options().iter().next() {
            return Err(reject(format!(
                "it has the unknown critical option `{name}`"
            )));
        }
        Ok(())
    }

    /// Accepts `offered` only if an unrevoked entry records exactly it (for a port other
    /// than 22, under `[addr]:port`, else, when that knows no key of this type, under
    /// the bare address, as ssh does).
    pub fn verify(&self, offered: &PublicKey) -> Result<(), Rejection> {
        let found = self.verify_own(offered);
        match (&found, &self.without_port) {
            (Err(Rejection::Unknown { .. }), Some(bare)) if bare.verify_own(offered).is_ok() => {
                Ok(())
            }
            _ => found,
        }
    }

    fn verify_own(&self, offered: &PublicKey) -> Result<(), Rejection> {
        let offered_desc = describe(offered);
        if let Some(e) = self
            .entries
            .iter()
            .find(|e| e.marker == Marker::Revoked && e.key.key_data() == offered.key_data())
        {
            return Err(Rejection::Revoked {
                lookup: self.lookup.clone(),
                offered: offered_desc,
                file: self.path.clone(),
                line: e.line,
            });
        }
        let plain = || self.entries.iter().filter(|e| e.marker == Marker::None);
        if plain().any(|e| e.key.key_data() == offered.key_data()) {
            return Ok(());
        }
        if let Some(e) = plain().find(|e| same_type(&e.key, offered)) {
            return Err(Rejection::Changed {
                lookup: self.lookup.clone(),
                offered: offered_desc,
                recorded: describe(&e.key),
                file: self.path.clone(),
                line: e.line,
            });
        }
        let mut other_types: Vec<String> = plain()
            .map(|e| e.key.algorithm().as_str().to_string())
            .collect();
        other_types.dedup();
        Err(Rejection::Unknown {
            lookup: self.lookup.clone(),
            offered: offered_desc,
            file: self.path.clone(),
            ca_only: other_types.is_empty()
                && self
                    .entries
                    .iter()
                    .any(|e| e.marker == Marker::CertAuthority),
            other_types,
        })
    }

    /// Host key algorithms reordered so the types recorded for this host come first,
    /// as `ssh` does: a host known only by its RSA key must be asked for its RSA key.
    pub fn preferred_algorithms(&self, default: &[Algorithm]) -> Vec<Algorithm> {
        let known = |a: &Algorithm| {
            self.entries.iter().any(|e| {
                e.marker == Marker::None
                    && match (a, e.key.algorithm()) {
                        (Algorithm::Rsa { .. }, Algorithm::Rsa { .. }) => true,
                        (a, b) => *a == b,
                    }
            })
        };
        let (mut first, rest): (Vec<_>, Vec<_>) = default.iter().cloned().partition(known);
        first.extend(rest);
        first
    }
}

/// Appends `key` for `address`:`port` to the known_hosts file `path` (created if
/// missing), for `accept-new`; with `hash` (ssh_config's `HashKnownHosts`) the name is
/// written hashed (`|1|salt|hash`, as ssh's hostfile.c host_hash). Holds an exclusive `flock` on the file while it re-reads
/// and writes, so hosts connecting at once, and other bootstrap runs, each see the
/// others' lines: a key already recorded meanwhile is not added twice, and a different
/// key recorded meanwhile is refused as changed. Blocking: call from a blocking thread.
pub fn append(
    path: &Path,
    address: &str,
    port: u16,
    key: &PublicKey,
    hash: bool,
) -> Result<Appended, Rejection> {
    use std::io::{Read, Seek, Write};
    let unreadable = |e: std::io::Error| Rejection::Unreadable {
        file: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(unreadable)?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| unreadable(e.into()))?;
    let mut bytes = Vec::new();
    file.seek(std::io::SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(unreadable)?;
    // Bytes, as in [`KnownHosts::load`]; the new line is appended after them untouched.
    let text = String::from_utf8_lossy(&bytes);
    match KnownHosts::parse(&text, path, address, port).verify(key) {
        Ok(()) => return Ok(Appended::AlreadyThere),
        Err(Rejection::Unknown { .. }) => {}
        Err(other) => return Err(other),
    }
    let separator = if text.is_empty() || text.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    let blob = key.to_bytes().map_err(|e| Rejection::Unreadable {
        file: path.to_path_buf(),
        reason: format!("cannot encode the host key: {e}"),
    })?;
    let name = lookup_name(address, port);
    let name = if hash {
        hashed_name(&name).map_err(unreadable)?
    } else {
        name
    };
    let line = format!(
        "{separator}{} {} {}\n",
        name,
        key.algorithm().as_str(),
        base64::engine::general_purpose::STANDARD.encode(blob)
    );
    file.write_all(line.as_bytes()).map_err(unreadable)?;
    let line_number = text.lines().count() + 1;
    Ok(Appended::Added { line: line_number })
    // The lock is released when `file` closes.
}

/// What [`append`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// The key is now recorded at this line.
    Added { line: usize },
    /// Another connection or run recorded the same key first.
    AlreadyThere,
}

/// Whether a known_hosts host field matches `lookup` (already lowercased): a hashed
/// `|1|salt|hash` entry, or comma-separated patterns with `*`, `?` and `!` negation,
/// compared case-insensitively. A matching negated pattern vetoes the line.
fn hosts_match(field: &str, lookup: &str) -> bool {
    if let Some(hashed) = field.strip_prefix("|1|") {
        return hashed_match(hashed, lookup);
    }
    let mut matched = false;
    for pattern in field.split(',') {
        let pattern = pattern.to_ascii_lowercase();
        if let Some(negated) = pattern.strip_prefix('!') {
            if glob(negated.as_bytes(), lookup.as_bytes()) {
                return false;
            }
        } else if glob(pattern.as_bytes(), lookup.as_bytes()) {
            matched = true;
        }
    }
    matched
}

/// `|1|salt|hash` for `name`: a fresh 20-byte salt, HMAC-SHA1 keyed by it over the name.
fn hashed_name(name: &str) -> Result<String, std::io::Error> {
    let mut salt = [0u8; 20];
    let mut filled = 0;
    while filled < salt.len() {
        filled +=
            rustix::rand::getrandom(&mut salt[filled..], rustix::rand::GetRandomFlags::empty())?;
    }
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(&salt).expect("HMAC takes any key");
    mac.update(name.as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok(format!(
        "|1|{}|{}",
        b64.encode(salt),
        b64.encode(mac.finalize().into_bytes())
    ))
}

/// `salt|hash`, both base64: HMAC-SHA1 keyed by the salt over the host name.
fn hashed_match(salt_and_hash: &str, lookup: &str) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let Some((salt, hash)) = salt_and_hash.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (b64.decode(salt), b64.decode(hash)) else {
        return false;
    };
    let Ok(mut mac) = hmac::Hmac::<sha1::Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(lookup.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// `*` and `?` glob matching, as OpenSSH's `match_pattern`.
pub(crate) fn glob(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative, backtracking only to the last `*`: O(pattern x text). The recursive form
    // was exponential in the number of `*`s (cargo fuzz: a 127-byte line took > 10 s).
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const ED_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";

    fn key(b64: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b64).unwrap()
    }

    fn check(text: &str, address: &str, port: u16, offered: &str) -> Result<(), Rejection> {
        KnownHosts::parse(text, Path::new("/kh"), address, port).verify(&key(offered))
    }

    #[test]
    fn a_bare_address_entry_vouches_for_other_ports_unless_the_port_form_says_otherwise() {
        // sshconnect.c check_host_key: HOST_NEW under [addr]:port is looked up again
        // without the port; a key found there is trusted.
        let bare = format!("10.0.0.1 ssh-ed25519 {ED_A}\n");
        assert_eq!(check(&bare, "10.0.0.1", 2222, ED_A), Ok(()));
        // A different key under the bare name makes the port form no less new.
        assert!(matches!(
            check(&bare, "10.0.0.1", 2222, ED_B),
            Err(Rejection::Unknown { .. })
        ));
        // What the port form records wins: a different key there is a changed key.
        let both = format!("[10.0.0.1]:2222 ssh-ed25519 {ED_B}\n{bare}");
        assert!(matches!(
            check(&both, "10.0.0.1", 2222, ED_A),
            Err(Rejection::Changed { line: 1, .. })
        ));
    }

    #[test]
    fn accept_new_with_hash_known_hosts_writes_the_name_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        assert_eq!(
            append(&path, "10.0.0.1", 2222, &key(ED_A), true),
            Ok(Appended::Added { line: 1 })
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("|1|") && !text.contains("10.0.0.1"),
            "{text}"
        );
        assert_eq!(check(&text, "10.0.0.1", 2222, ED_A), Ok(()));
        assert!(matches!(
            check(&text, "10.0.0.1", 22, ED_A),
            Err(Rejection::Unknown { .. })
        ));
        // Recorded once, however often it is asked.
        assert_eq!(
            append(&path, "10.0.0.1", 2222, &key(ED_A), true),
            Ok(Appended::AlreadyThere)
        );
    }

    #[test]
    fn plain_entry_with_port_form() {
        let text = format!("[10.0.0.1]:2222 ssh-ed25519 {ED_A}\n");
        assert_eq!(check(&text, "10.0.0.1", 2222, ED_A), Ok(()));
        // The same entry does not vouch for port 22 or another port.
        assert!(matches!(
            check(&text, "10.0.0.1", 22, ED_A),
            Err(Rejection::Unknown { .. })
        ));
        assert!(matches!(
            check(&text, "10.0.0.1", 2223, ED_A),
            Err(Rejection::Unknown { .. })
        ));
    }

    #[test]
    fn changed_key_names_the_line_after_comments_and_blanks() {
        let text = format!("# comment\n\n10.0.0.1\tssh-ed25519  {ED_A} old\n");
        match check(&text, "10.0.0.1", 22, ED_B) {
            Err(Rejection::Changed { line, .. }) => assert_eq!(line, 3),
            other => panic!("{other:?}"),
        }
        let msg = check(&text, "10.0.0.1", 22, ED_B).unwrap_err().to_string();
        assert!(msg.contains("/kh:3"), "{msg}");
        assert!(msg.contains(&fingerprint(&key(ED_B))), "{msg}");
    }

    /// ssh reads known_hosts as bytes: a comment (or another host's line) in Latin-1
    /// neither makes the file unreadable nor shifts the line numbers, and accept-new
    /// appends after it without rewriting it.
    #[test]
    fn a_line_that_is_not_utf8_does_not_make_known_hosts_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        let mut text = b"# Ren\xe9's hosts\n".to_vec();
        text.extend_from_slice(format!("10.0.0.1 ssh-ed25519 {ED_A}\n").as_bytes());
        std::fs::write(&path, &text).unwrap();
        for policy in [HostKeyPolicy::Strict, HostKeyPolicy::AcceptNew] {
            let kh = KnownHosts::load(&path, "10.0.0.1", 22, policy).unwrap();
            assert_eq!(kh.verify(&key(ED_A)), Ok(()));
            assert!(matches!(
                kh.verify(&key(ED_B)),
                Err(Rejection::Changed { line: 2, .. })
            ));
        }
        assert_eq!(
            append(&path, "10.0.0.1", 22, &key(ED_A), false),
            Ok(Appended::AlreadyThere)
        );
        assert_eq!(
            append(&path, "10.0.0.2", 22, &key(ED_B), false),
            Ok(Appended::Added { line: 3 })
        );
        text.extend_from_slice(format!("10.0.0.2 ssh-ed25519 {ED_B}\n").as_bytes());
        assert_eq!(std::fs::read(&path).unwrap(), text);
    }

    #[test]
    fn hashed_entry() {
        // From russh's own test: |1|...| hashes "example.com".
        let text = format!(
            "|1|O33ESRMWPVkMYIwJ1Uw+n877jTo=|nuuC5vEqXlEZ/8BXQR7m619W6Ak= ssh-ed25519 {ED_B}\n"
        );
        assert_eq!(check(&text, "example.com", 22, ED_B), Ok(()));
        assert_eq!(check(&text, "EXAMPLE.com", 22, ED_B), Ok(()));
        assert!(check(&text, "example.org", 22, ED_B).is_err());
    }

    #[test]
    fn wildcards_and_negation() {
        let text = format!("10.0.0.*,!10.0.0.9 ssh-ed25519 {ED_A}\n");
        assert_eq!(check(&text, "10.0.0.5", 22, ED_A), Ok(()));
        assert!(matches!(
            check(&text, "10.0.0.9", 22, ED_A),
            Err(Rejection::Unknown { .. })
        ));
    }

    #[test]
    fn revoked_wins_over_a_plain_entry() {
        let text = format!("host ssh-ed25519 {ED_A}\n@revoked * ssh-ed25519 {ED_A}\n");
        match check(&text, "host", 22, ED_A) {
            Err(Rejection::Revoked { line, .. }) => assert_eq!(line, 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cert_authority_lines_do_not_vouch_for_plain_keys() {
        let text = format!("@cert-authority host ssh-ed25519 {ED_A}\n");
        match check(&text, "host", 22, ED_A) {
            Err(Rejection::Unknown { ca_only, .. }) => assert!(ca_only),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_message_names_fingerprint_and_file() {
        let msg = check("", "10.0.0.1", 2200, ED_A).unwrap_err().to_string();
        assert!(msg.contains("[10.0.0.1]:2200"), "{msg}");
        assert!(msg.contains("ED25519 key SHA256:"), "{msg}");
        assert!(msg.contains("/kh"), "{msg}");
        assert!(!fingerprint(&key(ED_A)).ends_with('='));
    }

    #[test]
    fn known_types_are_preferred() {
        let rsa = "AAAAB3NzaC1yc2EAAAADAQABAAAAgQDC8HW0Yv099HMK2PO+JTNpkGQ/5x9/0OE4GJpC+Y9FHxbaIaO5krQTjrz9djuXeFbG5A8KLiIiHVDRg0htzU0ck4keqGi2gSwlKhvwvcqQV49CMnW2KsjLk7Ox+hE62/LWMu6z0FBvzUegPKziYv1V5j9LXyDYme4R5zPdYejcHw==";
        let text = format!("h ssh-rsa {rsa}\n");
        let kh = KnownHosts::parse(&text, Path::new("/kh"), "h", 22);
        assert_eq!(kh.entries.len(), 1);
        let order = kh.preferred_algorithms(&russh::Preferred::DEFAULT.key);
        assert!(matches!(order[0], Algorithm::Rsa { .. }));
    }

    #[test]
    fn append_records_once_and_refuses_a_different_key_recorded_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub_known_hosts");
        std::fs::write(&path, "# no newline at the end").unwrap();
        assert_eq!(
            append(&path, "10.0.0.1", 2222, &key(ED_A), false),
            Ok(Appended::Added { line: 2 })
        );
        assert_eq!(
            append(&path, "10.0.0.1", 2222, &key(ED_A), false),
            Ok(Appended::AlreadyThere)
        );
        assert!(matches!(
            append(&path, "10.0.0.1", 2222, &key(ED_B), false),
            Err(Rejection::Changed { line: 2, .. })
        ));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!("# no newline at the end\n[10.0.0.1]:2222 ssh-ed25519 {ED_A}\n")
        );
        let kh = KnownHosts::load(&path, "10.0.0.1", 2222, HostKeyPolicy::Strict).unwrap();
        assert_eq!(kh.verify(&key(ED_A)), Ok(()));
    }

    #[test]
    fn a_file_accept_new_cannot_write_is_not_called_unread_or_strict() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be: neither readable nor appendable.
        let msg = append(dir.path(), "10.0.0.1", 22, &key(ED_A), false)
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with(&format!(
                "cannot use known_hosts file {}",
                dir.path().display()
            )),
            "{msg}"
        );
        assert!(!msg.contains("never creates"), "{msg}");
    }

    #[test]
    fn a_missing_file_is_empty_only_under_accept_new() {
        let missing = Path::new("/nonexistent/known_hosts");
        assert!(KnownHosts::load(missing, "h", 22, HostKeyPolicy::Strict).is_err());
        assert!(KnownHosts::load(missing, "h", 22, HostKeyPolicy::AcceptNew).is_ok());
    }

    #[test]
    fn glob_basics() {
        assert!(glob(b"*", b""));
        assert!(glob(b"a?c", b"abc"));
        assert!(!glob(b"a?c", b"ac"));
        assert!(glob(b"*.example.com", b"x.example.com"));
    }
}
