//! The simulation's certificates and keys: well-formed PEM blocks with random bodies.
//!
//! Nothing here is real cryptography. What matters to the simulation is that the files are
//! where kubeadm puts them, look like PEM, differ per cluster, and that the few values
//! other parts check can be derived the same way everywhere:
//! - the CA hash of `--discovery-token-ca-cert-hash sha256:<hex>` ([`ca_cert_hash`]),
//! - the API credential carried in a kubeconfig's `client-key-data` ([`key_pem`],
//!   [`secret_from_key_pem`]),
//! - the kubeadm-certs encryption with a `--certificate-key` ([`seal`], [`open`]).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Random bytes from the OS generator.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A PEM block of `label` around `der`, wrapped at 64 columns like openssl writes it.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The text between the BEGIN and END lines of the first PEM block, lines joined.
pub fn pem_body(pem: &str) -> Option<String> {
    let mut inside = false;
    let mut body = String::new();
    for line in pem.lines() {
        let line = line.trim();
        if line.starts_with("-----BEGIN ") {
            inside = true;
        } else if line.starts_with("-----END ") {
            return inside.then_some(body);
        } else if inside {
            body.push_str(line);
        }
    }
    None
}

/// A fake DER certificate: a SEQUENCE header followed by random content, so the PEM
/// decodes to something certificate-shaped and every CA is different.
fn fake_der(len: usize) -> Vec<u8> {
    let mut der = vec![0x30, 0x82, (len >> 8) as u8, (len & 0xff) as u8];
    der.extend(random_bytes(len));
    der
}

/// A new self-signed CA certificate (PEM) and its key (PEM).
pub fn new_ca() -> (String, String) {
    (
        pem("CERTIFICATE", &fake_der(780)),
        pem("RSA PRIVATE KEY", &fake_der(1190)),
    )
}

/// A new leaf certificate and key, e.g. apiserver.crt/apiserver.key.
pub fn new_cert() -> (String, String) {
    (
        pem("CERTIFICATE", &fake_der(820)),
        pem("RSA PRIVATE KEY", &fake_der(1190)),
    )
}

/// The service-account signing key pair (sa.key, sa.pub).
pub fn new_sa_pair() -> (String, String) {
    (
        pem("RSA PRIVATE KEY", &fake_der(1190)),
        pem("PUBLIC KEY", &fake_der(290)),
    )
}

/// The hex sha256 that `--discovery-token-ca-cert-hash sha256:<hex>` pins: here, the
/// hash of the CA certificate's decoded body (real kubeadm hashes the public key info;
/// what matters is that kubeadm, the API server and `token create` agree).
pub fn ca_cert_hash(ca_pem: &str) -> String {
    let body = pem_body(ca_pem).unwrap_or_default();
    let der = B64
        .decode(body.as_bytes())
        .unwrap_or_else(|_| body.into_bytes());
    hex(&Sha256::digest(der))
}

/// A new API credential (the API server's format, see `api::random_secret`).
pub fn new_secret() -> String {
    super::api::random_secret()
}

/// The fake private key PEM carrying the credential `secret`; base64 of it is a
/// kubeconfig's `client-key-data` (the API server's format, see `api`).
pub fn key_pem(secret: &str) -> String {
    super::api::key_pem_for_secret(secret)
}

/// The credential inside a kubeconfig's `client-key-data` (base64 of [`key_pem`]).
pub fn secret_from_client_key_data(data: &str) -> Option<String> {
    let pem = String::from_utf8(B64.decode(data.trim()).ok()?).ok()?;
    Some(super::api::secret_from_key_pem(&pem)).filter(|s| !s.is_empty())
}

/// A new `--certificate-key`: 32 random bytes as 64 hex characters.
pub fn new_certificate_key() -> String {
    hex(&random_bytes(32))
}

fn keystream_xor(key: &[u8], nonce: &[u8], data: &mut [u8]) {
    for (i, chunk) in data.chunks_mut(32).enumerate() {
        let mut h = Sha256::new();
        h.update(key);
        h.update(nonce);
        h.update((i as u64).to_be_bytes());
        let block = h.finalize();
        for (b, k) in chunk.iter_mut().zip(block.iter()) {
            *b ^= k;
        }
    }
}

fn tag(key: &[u8], nonce: &[u8], ct: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"tag");
    h.update(key);
    h.update(nonce);
    h.update(ct);
    h.finalize()[..16].to_vec()
}

/// Encrypts `plain` with a certificate key (64 hex) the way kubeadm's upload-certs does
/// (AES-GCM there; a sha256 keystream plus tag here): nonce || ciphertext || tag.
pub fn seal(cert_key_hex: &str, plain: &[u8]) -> Result<Vec<u8>, String> {
    let key = decode_certificate_key(cert_key_hex)?;
    let nonce = random_bytes(12);
    let mut ct = plain.to_vec();
    keystream_xor(&key, &nonce, &mut ct);
    let t = tag(&key, &nonce, &ct);
    Ok([nonce, ct, t].concat())
}

/// Decrypts what [`seal`] produced; a wrong key fails like Go's AES-GCM does.
pub fn open(cert_key_hex: &str, sealed: &[u8]) -> Result<Vec<u8>, String> {
    let key = decode_certificate_key(cert_key_hex)?;
    if sealed.len() < 28 {
        return Err("size of data is less than the nonce".into());
    }
    let (nonce, rest) = sealed.split_at(12);
    let (ct, t) = rest.split_at(rest.len() - 16);
    if tag(&key, nonce, ct) != t {
        return Err("cipher: message authentication failed".into());
    }
    let mut plain = ct.to_vec();
    keystream_xor(&key, nonce, &mut plain);
    Ok(plain)
}

/// Parses a `--certificate-key`, with kubeadm's wording for a malformed one.
pub fn decode_certificate_key(k: &str) -> Result<Vec<u8>, String> {
    let bytes = unhex(k).ok_or_else(|| {
        format!(
            "error decoding certificate key: encoding/hex: invalid byte: U+{:04X} {:?}",
            k.chars()
                .find(|c| !c.is_ascii_hexdigit())
                .map(|c| c as u32)
                .unwrap_or(0),
            k.chars().find(|c| !c.is_ascii_hexdigit()).unwrap_or('?')
        )
    })?;
    if bytes.len() != 32 {
        return Err(format!("crypto/aes: invalid key size {}", bytes.len()));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_hash_is_stable_and_distinct() {
        let (ca1, _) = new_ca();
        let (ca2, _) = new_ca();
        assert_eq!(ca_cert_hash(&ca1), ca_cert_hash(&ca1));
        assert_ne!(ca_cert_hash(&ca1), ca_cert_hash(&ca2));
        assert_eq!(ca_cert_hash(&ca1).len(), 64);
        assert!(ca1.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(ca1.lines().all(|l| l.len() <= 64));
    }

    #[test]
    fn credential_round_trips_through_client_key_data() {
        let s = new_secret();
        let data = B64.encode(key_pem(&s));
        assert_eq!(
            secret_from_client_key_data(&data).as_deref(),
            Some(s.as_str())
        );
    }

    #[test]
    fn sealed_certs_need_the_right_key() {
        let k = new_certificate_key();
        let sealed = seal(&k, b"ca.key contents").unwrap();
        assert_eq!(open(&k, &sealed).unwrap(), b"ca.key contents");
        let other = new_certificate_key();
        assert_eq!(
            open(&other, &sealed).unwrap_err(),
            "cipher: message authentication failed"
        );
        assert!(decode_certificate_key("xyz").is_err());
        assert!(decode_certificate_key("abcd")
            .unwrap_err()
            .contains("invalid key size 2"));
    }
}
