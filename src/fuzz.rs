//! The bodies of the fuzz targets (fuzz/, `cargo fuzz run NAME`), kept in the library so
//! that the corpus they grow also runs as ordinary tests on stable (tests/fuzz_corpus.rs):
//! every input found interesting stays a regression test. Each takes arbitrary bytes, must
//! not panic, and checks a property of the parser beyond that.

use std::path::Path;

use crate::kubeconfig;
use crate::phases::join_token;
use crate::ssh::known_hosts::KnownHosts;

/// A target's body: arbitrary bytes in, a panic on a finding.
pub type Target = fn(&[u8]);

/// The targets, by name: what fuzz/fuzz_targets/NAME.rs runs and fuzz/corpus/NAME holds.
pub const TARGETS: &[(&str, Target)] = &[
    ("inventory", inventory),
    ("known_hosts", known_hosts),
    ("facts", facts),
    ("join_command", join_command),
    ("kubeconfig_merge", kubeconfig_merge),
];

/// The inventory reader and both renderings of its errors (miette's and the one-line
/// forms): no panic, whatever the bytes; rendering stays bounded.
pub fn inventory(data: &[u8]) {
    let path = Path::new("/fuzz/inventory.yaml");
    if let Err(e) = crate::inventory::parse_bytes(path, data.to_vec()) {
        let rendered = e.render_plain();
        let summary = e.summary();
        assert!(!rendered.is_empty() && !summary.is_empty());
        for c in ['\u{1b}', '\u{202e}'] {
            assert!(!summary.contains(c), "raw {c:?} in {summary:?}");
        }
    }
}

/// known_hosts lines for an IPv4 host on 22 and an IPv6 one on another port.
pub fn known_hosts(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let path = Path::new("/fuzz/known_hosts");
    for (address, port) in [("10.0.0.1", 22), ("fd00::1", 2222)] {
        let kh = KnownHosts::parse(&text, path, address, port);
        let _ = kh.has_cert_authority();
    }
}

/// The fact report a host prints (templates/facts.sh).
pub fn facts(data: &[u8]) {
    let _ = crate::facts::parse(&String::from_utf8_lossy(data));
}

/// `kubeadm token create --print-join-command`'s line: a parsed command never shows its
/// token, and a refusal never quotes one.
pub fn join_command(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match join_token::parse(&text) {
        Ok(join) => {
            let shown = format!("{join} {join:?}");
            assert!(!shown.contains(&join.token), "{shown}");
        }
        Err(e) => {
            for word in text.split_whitespace().filter(|w| join_token::is_token(w)) {
                assert!(!e.contains(word), "{e}");
            }
        }
    }
}

/// A kubeconfig someone has (the input) merged with a cluster's: no panic, and merging
/// the same cluster again changes nothing.
pub fn kubeconfig_merge(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(existing) = serde_yaml::from_str::<serde_yaml::Value>(text) else {
        return;
    };
    let new = kubeconfig::for_cluster(ADMIN_CONF, "fuzz", "https://10.0.0.1:6443")
        .expect("the sample admin.conf is valid");
    if let Ok(merged) = kubeconfig::merge(existing, &new) {
        let again = kubeconfig::merge(merged.clone(), &new).expect("a merged file merges");
        assert_eq!(again, merged);
    }
    // The input as an admin.conf: refused or rewritten, never a panic.
    let _ = kubeconfig::for_cluster(text, "fuzz", "https://10.0.0.1:6443");
}

/// What kubeadm writes to /etc/kubernetes/admin.conf (credentials shortened).
const ADMIN_CONF: &str = "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0E=
    server: https://10.0.0.1:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: kubernetes-admin
  name: kubernetes-admin@kubernetes
current-context: kubernetes-admin@kubernetes
kind: Config
preferences: {}
users:
- name: kubernetes-admin
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
";
