//! Keeping secrets (join tokens, certificate keys, kubeconfig credentials) out of
//! everything a human or a log file sees.
//!
//! Secrets travel in `RemoteCommand::secrets`; whatever text is built from that
//! command (its script, its output, error messages quoting either) goes through
//! [`redact`] before reaching the terminal or the run log.

/// What a secret is replaced with.
pub const REDACTED: &str = "<redacted>";

/// Replaces every occurrence of each secret in `text` with `<redacted>`.
///
/// Longer secrets are replaced first, so a secret that contains another is hidden whole.
/// The shell-quoted form of each secret is hidden too, since scripts carry values
/// quoted. Empty secrets are ignored (they would match everywhere).
pub fn redact<S: AsRef<str>>(text: &str, secrets: &[S]) -> String {
    let mut needles: Vec<String> = Vec::new();
    for secret in secrets {
        let secret = secret.as_ref();
        if secret.is_empty() {
            continue;
        }
        if let Ok(quoted) = shlex::try_quote(secret) {
            if quoted != secret {
                needles.push(quoted.into_owned());
            }
        }
        needles.push(secret.to_string());
    }
    if needles.is_empty() {
        return text.to_string();
    }
    needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    needles.dedup();
    let mut out = text.to_string();
    for needle in &needles {
        if out.contains(needle.as_str()) {
            out = out.replace(needle.as_str(), REDACTED);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_every_occurrence() {
        let s = redact(
            "kubeadm join --token abcdef.0123456789abcdef x abcdef.0123456789abcdef",
            &["abcdef.0123456789abcdef"],
        );
        assert_eq!(s, "kubeadm join --token <redacted> x <redacted>");
    }

    #[test]
    fn longer_secret_first_and_empty_ignored() {
        let s = redact("key=abc123xyz", &["", "abc", "abc123xyz"]);
        assert_eq!(s, "key=<redacted>");
    }

    #[test]
    fn quoted_form_is_hidden() {
        let secret = "pa'ss word";
        let quoted = shlex::try_quote(secret).unwrap().into_owned();
        let s = redact(&format!("echo {quoted}"), &[secret]);
        assert_eq!(s, "echo <redacted>");
        assert!(!s.contains("ss word"));
    }

    #[test]
    fn no_secrets_no_change() {
        assert_eq!(redact::<&str>("text", &[]), "text");
    }
}
