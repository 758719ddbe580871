//! OpenSSH's client configuration file (ssh_config(5), normally `~/.ssh/config`): the
//! settings operators already keep there for their hosts (aliases, users, keys, bastions)
//! apply to bootstrap's connections as they do to `ssh`'s.
//!
//! Hand-written rather than a crate: the maintained parser (ssh2-config 0.9) has no
//! `Match` and keeps no line numbers, and bootstrap must say which `file:line` each
//! setting came from (`bootstrap plan -v`) and evaluate `Match host`/`user` as ssh does.
//! Only what bootstrap uses is interpreted; it follows readconf.c of openssh-portable:
//!
//! - the first value obtained for a keyword wins, across the whole file in order
//!   (`IdentityFile` and `CertificateFile` accumulate);
//! - `Host` patterns (`*`, `?`, `!negation`) match the host as given (the inventory's
//!   `address`), case-sensitively (`match_pattern`);
//! - `Match` criteria `all`, `host` (the `HostName` obtained so far, else the host),
//!   `originalhost`, `user` (the `User` obtained so far, else the local user),
//!   `localuser`, each negatable, all of them must match; pattern lists are
//!   comma-separated, `host`/`originalhost` lowercased (`match_hostname`);
//! - `Include` (globs in the last path component, relative to `~/.ssh`) reads files in
//!   place; an include inside a block that does not apply contributes nothing.
//!
//! Settings that would change how a host is reached or checked but that bootstrap does
//! not implement (`ProxyCommand`, `HostKeyAlias`, `KnownHostsCommand`) are errors when
//! they apply to a host, never silently ignored; `Match exec` and similar criteria are
//! not run: such a block is treated as not matching, with a warning.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::jump::{self, Jump};
use super::HostKeyPolicy;

/// How deep `Include` may nest, as ssh's READCONF_MAX_DEPTH.
const MAX_INCLUDE_DEPTH: usize = 16;

/// Where a value was written: `file:line`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub file: Arc<PathBuf>,
    pub line: usize,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Value<T> {
    pub value: T,
    pub at: Place,
}

/// How to reach a host, as `ProxyJump` or `ProxyCommand` said (the first of the two wins).
#[derive(Debug, Clone, PartialEq)]
pub enum Proxy {
    Jump(Vec<Jump>),
    /// Not supported; an error if it is what applies.
    Command(String),
}

/// `StrictHostKeyChecking`: a policy bootstrap follows, or `no`, which it refuses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strictness {
    Policy(HostKeyPolicy),
    Off,
}

/// What the file says for one host: the first value of each keyword bootstrap uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostConfig {
    pub host_name: Option<Value<String>>,
    pub user: Option<Value<String>>,
    pub port: Option<Value<u16>>,
    pub identity_files: Vec<Value<PathBuf>>,
    pub identities_only: Option<Value<bool>>,
    pub certificate_files: Vec<Value<PathBuf>>,
    pub proxy: Option<Value<Proxy>>,
    /// The first file of the first `UserKnownHostsFile` (where ssh also records keys).
    pub user_known_hosts_file: Option<Value<PathBuf>>,
    pub strict_host_key_checking: Option<Value<Strictness>>,
    pub connect_timeout: Option<Value<Duration>>,
    pub server_alive_interval: Option<Value<Duration>>,
    /// Record new host keys with the name hashed (under accept-new).
    pub hash_known_hosts: Option<Value<bool>>,
    /// Settings that apply but bootstrap cannot honour (`file:line: why`); the caller
    /// decides whether they matter (an inventory setting may make them moot).
    pub unsupported: Vec<String>,
    /// Things a person should know (a `Match exec` not run, ...).
    pub warnings: Vec<String>,
}

/// One line of the file: keyword (lowercase), arguments, the raw text after the keyword.
#[derive(Debug, Clone)]
struct Directive {
    at: Place,
    keyword: String,
    args: Vec<String>,
    rest: String,
}

#[derive(Debug, Clone)]
enum Item {
    Line(Directive),
    /// The files an `Include` line read, in order.
    Include(Vec<Vec<Item>>),
}

/// A parsed ssh_config file (with its includes).
#[derive(Debug, Clone)]
pub struct SshConfig {
    pub path: PathBuf,
    items: Vec<Item>,
    home: Option<PathBuf>,
    local_user: String,
}

impl SshConfig {
    /// Reads `path`; `home` expands `~` and anchors relative `Include`s (`~/.ssh`).
    pub fn load(path: &Path, home: Option<&Path>) -> Result<SshConfig, String> {
        let items = read_file(path, home, 0)?;
        Ok(SshConfig {
            path: path.to_path_buf(),
            items,
            home: home.map(Path::to_path_buf),
            local_user: local_user(),
        })
    }

    /// [`load`](Self::load) for text already read (tests).
    pub fn parse(
        path: &Path,
        text: &str,
        home: Option<&Path>,
        local_user: &str,
    ) -> Result<SshConfig, String> {
        Ok(SshConfig {
            path: path.to_path_buf(),
            items: parse_text(&Arc::new(path.to_path_buf()), text, home, 0)?,
            home: home.map(Path::to_path_buf),
            local_user: local_user.to_string(),
        })
    }

    /// The settings for `host` (as `ssh host` is given it), `user` being the login user
    /// already decided elsewhere (`ssh -l`; bootstrap: the inventory's), for `Match user`.
    pub fn resolve(&self, host: &str, user: Option<&str>) -> Result<HostConfig, String> {
        let mut state = Resolver {
            host,
            given_user: user,
            local_user: &self.local_user,
            out: HostConfig::default(),
        };
        state.walk(&self.items, true)?;
        let mut out = state.out;
        expand_paths(&mut out, host, user, &self.local_user, self.home.as_deref())?;
        Ok(out)
    }
}

struct Resolver<'a> {
    host: &'a str,
    given_user: Option<&'a str>,
    local_user: &'a str,
    out: HostConfig,
}

impl Resolver<'_> {
    fn walk(&mut self, items: &[Item], mut active: bool) -> Result<(), String> {
        for item in items {
            match item {
                Item::Include(files) => {
                    if active {
                        for file in files {
                            // Each included file starts applying to every host, as a
                            // file of its own; its blocks decide from there.
                            self.walk(file, true)?;
                        }
                    }
                }
                Item::Line(d) => match d.keyword.as_str() {
                    "host" => active = self.host_matches(d)?,
                    "match" => active = self.match_matches(d)?,
                    _ if active => self.apply(d)?,
                    _ => {}
                },
            }
        }
        Ok(())
    }

    /// `Host p1 p2 !p3`: some positive pattern matches and no negated one does.
    fn host_matches(&self, d: &Directive) -> Result<bool, String> {
        if d.args.is_empty() || d.args.iter().any(String::is_empty) {
            return Err(format!("{}: Host needs patterns", d.at));
        }
        let mut matched = false;
        for p in &d.args {
            match p.strip_prefix('!') {
                Some(neg) if glob(neg, self.host) => return Ok(false),
                Some(_) => {}
                None => matched |= glob(p, self.host),
            }
        }
        Ok(matched)
    }

    fn match_matches(&mut self, d: &Directive) -> Result<bool, String> {
        let mut args = d.args.iter().peekable();
        let mut result = true;
        let mut count = 0;
        while let Some(raw) = args.next() {
            if raw.starts_with('#') {
                break;
            }
            count += 1;
            let (negate, attrib) = match raw.strip_prefix('!') {
                Some(a) => (true, a),
                None => (false, raw.as_str()),
            };
            let attrib_lower = attrib.to_ascii_lowercase();
            if attrib_lower == "all" {
                if count > 1 || args.peek().is_some_and(|a| !a.starts_with('#')) {
                    return Err(format!(
                        "{}: Match `all` cannot be combined with other criteria",
                        d.at
                    ));
                }
                return Ok(result && !negate);
            }
            if matches!(attrib_lower.as_str(), "canonical" | "final") {
                // ssh's first pass: canonical/final are false; bootstrap makes no second
                // (canonicalising) pass.
                self.out.warnings.push(format!(
                    "{}: `Match {attrib}` is evaluated as on ssh's first pass (not \
                     matching): bootstrap does not canonicalise host names",
                    d.at
                ));
                if !negate {
                    result = false;
                }
                continue;
            }
            let (name, arg) = match attrib.split_once('=') {
                Some((n, a)) => (n.to_ascii_lowercase(), a.to_string()),
                None => match args.next() {
                    Some(a) => (attrib_lower.clone(), a.clone()),
                    None => {
                        return Err(format!("{}: missing argument for Match '{raw}'", d.at));
                    }
                },
            };
            if arg.is_empty() || arg.starts_with('#') {
                return Err(format!("{}: missing Match criteria for {name}", d.at));
            }
            let matched = match name.as_str() {
                "host" => {
                    let host = match &self.out.host_name {
                        Some(h) => expand_host_name(&h.value, self.host),
                        None => self.host.to_string(),
                    };
                    pattern_list(&host.to_lowercase(), &arg, true)
                }
                "originalhost" => pattern_list(&self.host.to_lowercase(), &arg, true),
                "user" => {
                    let user = self
                        .given_user
                        .map(str::to_string)
                        .or_else(|| self.out.user.as_ref().map(|u| u.value.clone()))
                        .unwrap_or_else(|| self.local_user.to_string());
                    pattern_list(&user, &arg, false)
                }
                "localuser" => pattern_list(self.local_user, &arg, false),
                "exec" | "localnetwork" | "tagged" | "command" | "sessiontype" | "version" => {
                    self.out.warnings.push(format!(
                        "{}: `Match {name}` is not evaluated by bootstrap (it does not run \
                         commands from ssh_config); the block is treated as not matching",
                        d.at
                    ));
                    result = false;
                    continue;
                }
                _ => return Err(format!("{}: unsupported Match attribute {name}", d.at)),
            };
            if matched == negate {
                result = false;
            }
        }
        if count == 0 {
            return Err(format!("{}: Match needs criteria", d.at));
        }
        Ok(result)
    }

    /// A keyword in a block that applies: kept if it is the first value for it.
    fn apply(&mut self, d: &Directive) -> Result<(), String> {
        let at = || d.at.clone();
        let first = || -> Result<&str, String> {
            d.args
                .first()
                .map(String::as_str)
                .filter(|a| !a.is_empty())
                .ok_or_else(|| format!("{}: {} needs an argument", d.at, d.keyword))
        };
        let o = &mut self.out;
        match d.keyword.as_str() {
            "hostname" => set(&mut o.host_name, first()?.to_string(), at()),
            "user" => set(&mut o.user, first()?.to_string(), at()),
            "port" => {
                let p = first()?;
                let port = p
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("{}: bad port '{p}'", d.at))?;
                set(&mut o.port, port, at());
            }
            "identityfile" => o.identity_files.push(Value {
                value: PathBuf::from(first()?),
                at: at(),
            }),
            "certificatefile" => o.certificate_files.push(Value {
                value: PathBuf::from(first()?),
                at: at(),
            }),
            "identitiesonly" => set(&mut o.identities_only, flag(d, first()?)?, at()),
            "hashknownhosts" => set(&mut o.hash_known_hosts, flag(d, first()?)?, at()),
            "proxyjump" => {
                let text = d.rest.split('#').next().unwrap_or("").trim();
                let chain = jump::parse_chain(text)
                    .map_err(|e| format!("{}: invalid ProxyJump: {e}", d.at))?;
                set(&mut o.proxy, Proxy::Jump(chain), at());
            }
            "proxycommand" => {
                let command = d.rest.trim().to_string();
                if command.eq_ignore_ascii_case("none") {
                    set(&mut o.proxy, Proxy::Jump(Vec::new()), at());
                } else {
                    set(&mut o.proxy, Proxy::Command(command), at());
                }
            }
            "userknownhostsfile" => {
                let file = first()?;
                if file.eq_ignore_ascii_case("none") {
                    // Recorded as unsupported: bootstrap always checks a file.
                    if o.user_known_hosts_file.is_none() {
                        o.unsupported.push(format!(
                            "{}: `UserKnownHostsFile none` (no known_hosts file): bootstrap \
                             always checks host keys against a file",
                            d.at
                        ));
                    }
                }
                if d.args.len() > 1 && o.user_known_hosts_file.is_none() {
                    o.warnings.push(format!(
                        "{}: UserKnownHostsFile lists {} files; bootstrap reads and records \
                         keys in the first only",
                        d.at,
                        d.args.len()
                    ));
                }
                set(&mut o.user_known_hosts_file, PathBuf::from(file), at());
            }
            "stricthostkeychecking" => {
                let v = first()?;
                let s = match v.to_ascii_lowercase().as_str() {
                    "yes" | "true" | "ask" => Strictness::Policy(HostKeyPolicy::Strict),
                    "accept-new" => Strictness::Policy(HostKeyPolicy::AcceptNew),
                    "no" | "false" | "off" => Strictness::Off,
                    _ => {
                        return Err(format!(
                            "{}: unsupported StrictHostKeyChecking \"{v}\"",
                            d.at
                        ))
                    }
                };
                set(&mut o.strict_host_key_checking, s, at());
            }
            "connecttimeout" => {
                let t = time(d, first()?)?;
                if let Some(t) = t {
                    set(&mut o.connect_timeout, t, at());
                }
            }
            "serveraliveinterval" => {
                let t = time(d, first()?)?;
                set(&mut o.server_alive_interval, t.unwrap_or_default(), at());
            }
            "hostkeyalias" | "knownhostscommand" => o.unsupported.push(format!(
                "{}: {} is not supported by bootstrap (host keys are looked up under the \
                 host's address in its known_hosts file)",
                d.at, d.keyword
            )),
            "identityagent" | "canonicalizehostname" | "serveralivecountmax" => {
                o.warnings.push(format!(
                    "{}: {} is not honoured by bootstrap (see docs/inventory.md)",
                    d.at, d.keyword
                ))
            }
            _ => {}
        }
        Ok(())
    }
}

/// First value wins.
fn set<T>(slot: &mut Option<Value<T>>, value: T, at: Place) {
    if slot.is_none() {
        *slot = Some(Value { value, at });
    }
}

fn flag(d: &Directive, v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(format!("{}: {} is yes or no, not \"{v}\"", d.at, d.keyword)),
    }
}

/// ssh's convtime: `none`, seconds, or numbers with s/m/h/d/w units (`1m30s`).
fn time(d: &Directive, v: &str) -> Result<Option<Duration>, String> {
    if v == "none" {
        return Ok(None);
    }
    let bad = || format!("{}: invalid time value \"{v}\" for {}", d.at, d.keyword);
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in v.chars().chain(std::iter::once('\0')) {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        if number.is_empty() {
            // The end after a unit (`1m30s`) is fine; a unit without a number is not.
            if c == '\0' && !v.is_empty() {
                break;
            }
            return Err(bad());
        }
        let unit = match c.to_ascii_lowercase() {
            '\0' | 's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 604800,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(bad)?;
        number.clear();
        if c == '\0' {
            break;
        }
    }
    Ok(Some(Duration::from_secs(total)))
}

/// `%h` in `HostName` is the host as given (ssh.c), `%%` a percent sign.
fn expand_host_name(value: &str, host: &str) -> String {
    value
        .replace("%%", "\u{0}")
        .replace("%h", host)
        .replace('\u{0}', "%")
}

/// `~` and the `%` tokens of IdentityFile, CertificateFile and UserKnownHostsFile that
/// ssh expands once the host, user and port are known.
fn expand_paths(
    out: &mut HostConfig,
    host: &str,
    given_user: Option<&str>,
    local_user: &str,
    home: Option<&Path>,
) -> Result<(), String> {
    let host_name = out
        .host_name
        .as_ref()
        .map_or_else(|| host.to_string(), |h| expand_host_name(&h.value, host));
    if let Some(h) = &mut out.host_name {
        h.value = host_name.clone();
    }
    let remote_user = given_user
        .map(str::to_string)
        .or_else(|| out.user.as_ref().map(|u| u.value.clone()))
        .unwrap_or_else(|| local_user.to_string());
    let port = out.port.as_ref().map_or(22, |p| p.value).to_string();
    let home_str = home.map(|h| h.display().to_string());
    let expand = |v: &mut Value<PathBuf>| -> Result<(), String> {
        let text = v.value.to_string_lossy().into_owned();
        let mut s = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                s.push(c);
                continue;
            }
            let tok = chars.next();
            let rep = match tok {
                Some('%') => "%".to_string(),
                Some('h') => host_name.clone(),
                Some('n') => host.to_string(),
                Some('r') => remote_user.clone(),
                Some('u') => local_user.to_string(),
                Some('p') => port.clone(),
                Some('d') => home_str
                    .clone()
                    .ok_or_else(|| format!("{}: %d needs HOME", v.at))?,
                _ => {
                    return Err(format!(
                        "{}: `%{}` in {text} is not expanded by bootstrap (it knows %%, %d, \
                         %h, %n, %p, %r, %u)",
                        v.at,
                        tok.map(String::from).unwrap_or_default()
                    ))
                }
            };
            s.push_str(&rep);
        }
        v.value = tilde(&s, home).map_err(|e| format!("{}: {e}", v.at))?;
        Ok(())
    };
    for v in out
        .identity_files
        .iter_mut()
        .chain(out.certificate_files.iter_mut())
        .chain(out.user_known_hosts_file.iter_mut())
    {
        expand(v)?;
    }
    Ok(())
}

fn tilde(path: &str, home: Option<&Path>) -> Result<PathBuf, String> {
    if path == "~" || path.starts_with("~/") {
        let home = home.ok_or_else(|| format!("cannot expand `~` in {path}: HOME is not set"))?;
        return Ok(home.join(path.trim_start_matches('~').trim_start_matches('/')));
    }
    if path.starts_with('~') {
        return Err(format!(
            "{path}: only `~` and `~/...` (your own home) are expanded"
        ));
    }
    Ok(PathBuf::from(path))
}

/// OpenSSH's `match_pattern_list`: comma-separated patterns, `!` negates; a negated match
/// wins over everything, then any positive one.
pub(crate) fn pattern_list(s: &str, list: &str, lowercase: bool) -> bool {
    let mut positive = false;
    for p in list.split(',') {
        let (neg, p) = match p.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, p),
        };
        let p = if lowercase {
            p.to_lowercase()
        } else {
            p.to_string()
        };
        if glob(&p, s) {
            if neg {
                return false;
            }
            positive = true;
        }
    }
    positive
}

fn glob(pattern: &str, text: &str) -> bool {
    super::known_hosts::glob(pattern.as_bytes(), text.as_bytes())
}

fn read_file(path: &Path, home: Option<&Path>, depth: usize) -> Result<Vec<Item>, String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("cannot read ssh_config file {}: {e}", path.display()))?;
    let file = Arc::new(path.to_path_buf());
    let text = utf8_text(&file, &bytes)?;
    parse_text(&file, &text, home, depth)
}

/// ssh reads its configuration as bytes (readconf.c): a comment, or the comment after a
/// line's arguments, in a legacy encoding (a Latin-1 name) is nothing to it, so such
/// bytes only fail a line whose keyword or arguments hold them, named by file and line
/// (bootstrap's values are UTF-8 strings).
fn utf8_text(file: &Arc<PathBuf>, bytes: &[u8]) -> Result<String, String> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(bytes.len());
    for (i, line) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
        let text = String::from_utf8_lossy(line);
        if std::str::from_utf8(line).is_err() {
            let at = Place {
                file: file.clone(),
                line: i + 1,
            };
            let bad = |s: &str| s.contains('\u{fffd}');
            if let Some(d) = directive(text.trim_end_matches(['\n', '\r']), at.clone())? {
                let rest_used = matches!(d.keyword.as_str(), "proxycommand" | "proxyjump");
                if bad(&d.keyword)
                    || d.args.iter().any(|a| bad(a))
                    || rest_used && bad(d.rest.split('#').next().unwrap_or_default())
                {
                    return Err(format!(
                        "{at}: not valid UTF-8 (bootstrap reads ssh_config values as UTF-8)"
                    ));
                }
            }
        }
        out.push_str(&text);
    }
    Ok(out)
}

fn parse_text(
    file: &Arc<PathBuf>,
    text: &str,
    home: Option<&Path>,
    depth: usize,
) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = Place {
            file: file.clone(),
            line: i + 1,
        };
        let Some(d) = directive(line, at)? else {
            continue;
        };
        if d.keyword == "include" {
            let files = include(&d, home, depth)?;
            items.push(Item::Include(files));
        } else {
            items.push(Item::Line(d));
        }
    }
    Ok(items)
}

/// Reads the files of an `Include` line: `~` expanded, relative to `~/.ssh`, a glob in
/// the last component expanded in name order; a file that does not exist is skipped (as
/// ssh's glob finds nothing).
fn include(d: &Directive, home: Option<&Path>, depth: usize) -> Result<Vec<Vec<Item>>, String> {
    if depth >= MAX_INCLUDE_DEPTH {
        return Err(format!("{}: Include nested too deeply", d.at));
    }
    let mut out = Vec::new();
    for arg in &d.args {
        let path = tilde(arg, home).map_err(|e| format!("{}: {e}", d.at))?;
        let path = if path.is_absolute() {
            path
        } else {
            match home {
                Some(h) => h.join(".ssh").join(path),
                None => d.at.file.parent().unwrap_or(Path::new(".")).join(path),
            }
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = path.parent().unwrap_or(Path::new("/"));
        if dir.to_string_lossy().contains(['*', '?']) {
            return Err(format!(
                "{}: Include {arg}: bootstrap expands `*` and `?` only in the file name",
                d.at
            ));
        }
        let mut files: Vec<PathBuf> = if name.contains(['*', '?']) {
            match std::fs::read_dir(dir) {
                Ok(entries) => entries
                    .filter_map(|e| e.ok())
                    .filter(|e| glob(&name, &e.file_name().to_string_lossy()))
                    .map(|e| e.path())
                    .collect(),
                Err(_) => Vec::new(),
            }
        } else if path.exists() {
            vec![path.clone()]
        } else {
            Vec::new()
        };
        files.sort();
        for f in files {
            out.push(read_file(&f, home, depth + 1)?);
        }
    }
    Ok(out)
}

/// One line as readconf.c splits it: the keyword ends at whitespace or `=`, then the
/// arguments, quoted with `"` or `'`, `#` starting an argument ends the line.
fn directive(line: &str, at: Place) -> Result<Option<Directive>, String> {
    let line = line.trim_matches(|c: char| c.is_whitespace() || c == '\u{c}');
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let keyword = line[..end].to_ascii_lowercase();
    let mut rest = line[end..].trim_start();
    if let Some(r) = rest.strip_prefix('=') {
        rest = r.trim_start();
    }
    if rest.is_empty() {
        return Err(format!("{at}: no argument after keyword \"{keyword}\""));
    }
    let args = split_args(rest).ok_or_else(|| format!("{at}: invalid quotes"))?;
    Ok(Some(Directive {
        at,
        keyword,
        args,
        rest: rest.to_string(),
    }))
}

/// ssh's argv_split: whitespace-separated, `"..."`/`'...'` quoted, `\` escaping a quote,
/// backslash or space; an unquoted argument starting with `#` ends the line.
fn split_args(s: &str) -> Option<Vec<String>> {
    let mut args = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&c) = chars.peek() else { break };
        if c == '#' {
            break;
        }
        let mut arg = String::new();
        let mut quote: Option<char> = None;
        while let Some(c) = chars.next() {
            match (c, quote) {
                ('\\', _) if matches!(chars.peek(), Some('"' | '\'' | '\\' | ' ')) => {
                    arg.push(chars.next().expect("peeked"));
                }
                ('"' | '\'', None) => quote = Some(c),
                (q, Some(open)) if q == open => quote = None,
                (w, None) if w.is_whitespace() => break,
                (c, _) => arg.push(c),
            }
        }
        if quote.is_some() {
            return None;
        }
        args.push(arg);
    }
    Some(args)
}

/// The local user's name (`%u`, `Match localuser`, and `Match user` without a `User`).
fn local_user() -> String {
    let uid = rustix::process::getuid().as_raw();
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
            })
        })
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> SshConfig {
        SshConfig::parse(
            Path::new("/home/me/.ssh/config"),
            text,
            Some(Path::new("/home/me")),
            "me",
        )
        .unwrap()
    }

    #[test]
    fn the_first_value_obtained_wins_and_says_where_it_was() {
        let c = config(
            "# comment\n\
             Host web*  !web-old\n\
             \x20 User deploy\n\
             \x20 Port=2222\n\
             \x20 IdentityFile ~/.ssh/web\n\
             Host *\n\
             \x20 User nobody\n\
             \x20 IdentityFile \"~/.ssh/id ed25519\"\n\
             \x20 ConnectTimeout 1m30s\n",
        );
        let h = c.resolve("web1", None).unwrap();
        assert_eq!(h.user.as_ref().unwrap().value, "deploy");
        assert_eq!(
            h.user.as_ref().unwrap().at.to_string(),
            "/home/me/.ssh/config:3"
        );
        assert_eq!(h.port.as_ref().unwrap().value, 2222);
        assert_eq!(
            h.identity_files
                .iter()
                .map(|v| v.value.clone())
                .collect::<Vec<_>>(),
            [
                PathBuf::from("/home/me/.ssh/web"),
                PathBuf::from("/home/me/.ssh/id ed25519")
            ]
        );
        assert_eq!(h.connect_timeout.unwrap().value, Duration::from_secs(90));
        // A negated pattern keeps the block away even though web* matches.
        let old = c.resolve("web-old", None).unwrap();
        assert_eq!(old.user.unwrap().value, "nobody");
        assert_eq!(old.port, None);
    }

    #[test]
    fn match_host_sees_the_host_name_obtained_so_far() {
        let c = config(
            "Host db\n  HostName 10.0.1.%h-x\nHost jump-%%\n  User x\n\
             Host app\n  HostName 10.0.1.7\n\
             Match host 10.0.1.*,!10.0.1.9\n  ProxyJump admin@bastion:2200\n\
             Match originalhost APP user ops\n  IdentitiesOnly yes\n\
             Match !localuser me\n  Port 1\n",
        );
        let app = c.resolve("app", Some("ops")).unwrap();
        assert_eq!(app.host_name.unwrap().value, "10.0.1.7");
        assert_eq!(
            app.proxy.unwrap().value,
            Proxy::Jump(jump::parse_chain("admin@bastion:2200").unwrap())
        );
        assert!(app.identities_only.unwrap().value);
        assert_eq!(app.port, None);
        // %h in HostName is the host as given.
        assert_eq!(
            c.resolve("db", None).unwrap().host_name.unwrap().value,
            "10.0.1.db-x"
        );
        // Match user without a given user: the local user.
        assert_eq!(c.resolve("app", None).unwrap().identities_only, None);
        // Not behind the bastion: 10.0.1.9 is negated.
        let c2 = config("Match host 10.0.1.*,!10.0.1.9\n  ProxyJump bastion\n");
        assert_eq!(c2.resolve("10.0.1.9", None).unwrap().proxy, None);
        assert!(c2.resolve("10.0.1.8", None).unwrap().proxy.is_some());
    }

    #[test]
    fn what_bootstrap_cannot_do_is_said_not_ignored() {
        let c = config(
            "Host a\n  ProxyCommand ssh -W %h:%p gw\n  ProxyJump b\n  HostKeyAlias x\n\
             Match exec \"test -f /x\"\n  User y\n",
        );
        let a = c.resolve("a", None).unwrap();
        assert!(matches!(a.proxy.unwrap().value, Proxy::Command(_)));
        assert_eq!(a.unsupported.len(), 1, "{:?}", a.unsupported);
        assert!(a.unsupported[0].starts_with("/home/me/.ssh/config:4: hostkeyalias"));
        assert_eq!(a.user, None);
        assert!(a.warnings[0].contains("Match exec"), "{:?}", a.warnings);
        for (bad, why) in [
            ("Port 0\n", "bad port"),
            ("Match\n", "no argument"),
            ("Match all host x\n", "cannot be combined"),
            ("User \"x\n", "invalid quotes"),
            (
                "StrictHostKeyChecking maybe\n",
                "unsupported StrictHostKeyChecking",
            ),
            ("IdentityFile ~/%C\n", "%C"),
        ] {
            let err = SshConfig::parse(Path::new("c"), bad, None, "me")
                .and_then(|c| c.resolve("h", None))
                .unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    /// Bytes that are not UTF-8 in a comment (ssh reads the file as bytes) do not make
    /// the file unreadable; in a value they are refused at their line.
    #[test]
    fn a_comment_that_is_not_utf8_is_only_a_comment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            b"# Ren\xe9's hosts\nHost web # caf\xe9\n  User deploy\n".as_slice(),
        )
        .unwrap();
        let c = SshConfig::load(&path, Some(dir.path())).unwrap();
        assert_eq!(
            c.resolve("web", None).unwrap().user.unwrap().value,
            "deploy"
        );
        std::fs::write(&path, b"Host web\n  User ren\xe9\n".as_slice()).unwrap();
        let err = SshConfig::load(&path, Some(dir.path())).unwrap_err();
        assert!(
            err.ends_with("config:2: not valid UTF-8 (bootstrap reads ssh_config values as UTF-8)"),
            "{err}"
        );
    }

    #[test]
    fn includes_apply_in_place_and_only_inside_their_block() {
        let home = tempfile::tempdir().unwrap();
        let ssh = home.path().join(".ssh");
        std::fs::create_dir_all(ssh.join("conf.d")).unwrap();
        std::fs::write(ssh.join("conf.d/10-a.conf"), "User from-include\n").unwrap();
        std::fs::write(ssh.join("conf.d/20-b.conf"), "Host other\n  Port 3\n").unwrap();
        let main = ssh.join("config");
        std::fs::write(
            &main,
            "Host never\n  Include conf.d/*.conf\nHost *\n  Include conf.d/*.conf\n  User late\n",
        )
        .unwrap();
        let c = SshConfig::load(&main, Some(home.path())).unwrap();
        let h = c.resolve("x", None).unwrap();
        assert_eq!(h.user.as_ref().unwrap().value, "from-include");
        assert!(h
            .user
            .unwrap()
            .at
            .to_string()
            .ends_with("conf.d/10-a.conf:1"));
        // The include's `Host other` block ended there: the outer file's next line applies
        // again only because `Host *` is still the outer block.
        assert_eq!(c.resolve("other", None).unwrap().port.unwrap().value, 3);
    }

    #[test]
    fn pattern_lists_as_openssh() {
        assert!(pattern_list("web1", "db*,web?", false));
        assert!(!pattern_list("web1", "web*,!web1", false));
        assert!(!pattern_list("x", "", false));
        assert!(pattern_list("app", "APP", true));
        assert!(!pattern_list("APP", "app", false));
    }
}
