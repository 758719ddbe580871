//! `kubeadm certs check-expiration`: expiry of the certificates kubeadm manages, from
//! when they were written (leaf certificates live a year, CAs ten).

use std::path::Path;

use super::token::tabwrite;
use super::{die, parse_flags};
use crate::common;

const YEAR: f64 = 365.0 * 86400.0;

/// (name, file, CA name); kubeconfigs embed a client certificate.
const CERTS: &[(&str, &str, &str)] = &[
    ("admin.conf", "/etc/kubernetes/admin.conf", "ca"),
    ("apiserver", "/etc/kubernetes/pki/apiserver.crt", "ca"),
    (
        "apiserver-etcd-client",
        "/etc/kubernetes/pki/apiserver-etcd-client.crt",
        "etcd-ca",
    ),
    (
        "apiserver-kubelet-client",
        "/etc/kubernetes/pki/apiserver-kubelet-client.crt",
        "ca",
    ),
    (
        "controller-manager.conf",
        "/etc/kubernetes/controller-manager.conf",
        "ca",
    ),
    (
        "etcd-healthcheck-client",
        "/etc/kubernetes/pki/etcd/healthcheck-client.crt",
        "etcd-ca",
    ),
    ("etcd-peer", "/etc/kubernetes/pki/etcd/peer.crt", "etcd-ca"),
    (
        "etcd-server",
        "/etc/kubernetes/pki/etcd/server.crt",
        "etcd-ca",
    ),
    (
        "front-proxy-client",
        "/etc/kubernetes/pki/front-proxy-client.crt",
        "front-proxy-ca",
    ),
    ("scheduler.conf", "/etc/kubernetes/scheduler.conf", "ca"),
    ("super-admin.conf", "/etc/kubernetes/super-admin.conf", "ca"),
];
const CAS: &[(&str, &str)] = &[
    ("ca", "/etc/kubernetes/pki/ca.crt"),
    ("etcd-ca", "/etc/kubernetes/pki/etcd/ca.crt"),
    ("front-proxy-ca", "/etc/kubernetes/pki/front-proxy-ca.crt"),
];

fn written(path: &str) -> Option<f64> {
    let m = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(m.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64())
}

/// Go's "Jan 02, 2006 15:04 MST" in UTC.
pub fn expiry_date(secs: f64) -> String {
    let t = crate::kube::objects::rfc3339(secs);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m: usize = t[5..7].parse().unwrap_or(1);
    format!(
        "{} {}, {} {} UTC",
        MONTHS[m - 1],
        &t[8..10],
        &t[0..4],
        &t[11..16]
    )
}

/// duration.ShortHumanDuration as check-expiration prints it.
pub fn residual(secs: f64) -> String {
    let s = secs as i64;
    if s < 0 {
        return "<invalid>".into();
    }
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h", s / 3600),
        s if s < 86400 * 365 => format!("{}d", s / 86400),
        s => format!("{}y", s / (86400 * 365)),
    }
}

pub fn run(args: &[String]) -> i32 {
    let sub = args.first().map(String::as_str).unwrap_or("");
    let rest = if args.is_empty() { args } else { &args[1..] };
    if let Err(e) = parse_flags(rest, &["cert-dir", "config", "kubeconfig", "output"], &[]) {
        return die(&e);
    }
    match sub {
        "check-expiration" => check_expiration(),
        "certificate-key" => {
            println!("{}", crate::kube::pki::new_certificate_key());
            0
        }
        other => die(&format!(
            "the testbed's kubeadm does not model \"kubeadm certs {other}\""
        )),
    }
}

fn check_expiration() -> i32 {
    if !Path::new(super::files::ADMIN_CONF).exists()
        && !Path::new("/etc/kubernetes/pki/ca.crt").exists()
    {
        return die("failed to load admin kubeconfig: open /etc/kubernetes/admin.conf: no such file or directory");
    }
    println!("[check-expiration] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"...");
    println!("[check-expiration] Use 'kubeadm init phase upload-config kubeadm --config your-config-file' to re-upload it.");
    println!();
    let now = common::now();
    let mut rows = vec![vec![
        "CERTIFICATE".to_string(),
        "EXPIRES".into(),
        "RESIDUAL TIME".into(),
        "CERTIFICATE AUTHORITY".into(),
        "EXTERNALLY MANAGED".into(),
    ]];
    for (name, path, ca) in CERTS {
        match written(path) {
            Some(t) => rows.push(vec![
                name.to_string(),
                expiry_date(t + YEAR),
                residual(t + YEAR - now),
                ca.to_string(),
                "no".into(),
            ]),
            None => rows.push(vec![
                format!("!MISSING! {name}"),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]),
        }
    }
    print!("{}", tabwrite(&rows, 3));
    println!();
    let mut rows = vec![vec![
        "CERTIFICATE AUTHORITY".to_string(),
        "EXPIRES".into(),
        "RESIDUAL TIME".into(),
        "EXTERNALLY MANAGED".into(),
    ]];
    for (name, path) in CAS {
        match written(path) {
            Some(t) => rows.push(vec![
                name.to_string(),
                expiry_date(t + 10.0 * YEAR),
                residual(t + 10.0 * YEAR - now),
                "no".into(),
            ]),
            None => rows.push(vec![
                format!("!MISSING! {name}"),
                String::new(),
                String::new(),
                String::new(),
            ]),
        }
    }
    print!("{}", tabwrite(&rows, 3));
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(expiry_date(0.0), "Jan 01, 1970 00:00 UTC");
        assert_eq!(residual(YEAR - 3600.0), "364d");
        assert_eq!(residual(10.0 * YEAR - 86400.0), "9y");
    }
}
