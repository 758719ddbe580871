//! Paths written in the inventory: `~` expansion and resolution against the inventory's
//! directory, so an inventory means the same thing whatever directory the tool runs from.

use std::path::{Path, PathBuf};

/// Expands a leading `~` or `~/` with `home` and makes a relative path relative to `base`
/// (the inventory's directory).
pub(crate) fn resolve(written: &str, base: &Path, home: Option<&Path>) -> Result<PathBuf, String> {
    if written.is_empty() {
        return Err("the path is empty".to_string());
    }
    if written == "~" || written.starts_with("~/") {
        let home =
            home.ok_or_else(|| format!("cannot expand `~` in `{written}`: HOME is not set"))?;
        let rest = written.trim_start_matches('~').trim_start_matches('/');
        return Ok(if rest.is_empty() {
            home.to_path_buf()
        } else {
            home.join(rest)
        });
    }
    if written.starts_with('~') {
        return Err(format!(
            "`{written}`: only `~` and `~/...` (your own home) are expanded; write the full path"
        ));
    }
    let path = Path::new(written);
    Ok(if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    })
}

/// The home directory `~` expands to.
pub(crate) fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_and_resolves() {
        let home = Path::new("/home/me");
        let base = Path::new("/etc/cluster");
        let r = |s| resolve(s, base, Some(home));
        assert_eq!(r("~/.ssh/id").unwrap(), PathBuf::from("/home/me/.ssh/id"));
        assert_eq!(r("~").unwrap(), PathBuf::from("/home/me"));
        assert_eq!(r("/abs/key").unwrap(), PathBuf::from("/abs/key"));
        assert_eq!(r("keys/id").unwrap(), PathBuf::from("/etc/cluster/keys/id"));
        assert!(r("~bob/x").is_err());
        assert!(resolve("~/x", base, None).is_err());
    }
}
