//! `apt-get` / `apt` (update, install, remove, purge, upgrade), `apt-mark` and
//! `apt-cache` over the simulated archives and dpkg database.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;

use testbed::layout::{self, Fault};

use crate::common::{self, Ctx, PkgState};
use crate::os::systemd;

use super::catalog::{self, compare_versions, parse_depends, satisfies};
use super::lock::{self, LockError};
use super::net;
use super::sources::{self, Kind, Offer};

/// Options common to apt-get invocations.
#[derive(Default)]
struct Opts {
    yes: bool,
    quiet: bool,
    /// How many -q: 2 (-qq) also implies -y, as in apt.
    quiet_level: u32,
    allow_held: bool,
    allow_downgrades: bool,
    no_recommends: bool,
    lock_timeout: f64,
    words: Vec<String>,
}

fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts::default();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "-y" | "--yes" | "--assume-yes" => o.yes = true,
            "-q" | "--quiet" => {
                o.quiet = true;
                o.quiet_level += 1;
            }
            "-qq" => {
                o.quiet = true;
                o.quiet_level += 2;
            }
            s if s.starts_with("--quiet=") || s.starts_with("-q=") => {
                o.quiet = true;
                o.quiet_level = s
                    .split_once('=')
                    .and_then(|x| x.1.parse().ok())
                    .unwrap_or(1);
            }
            "--allow-change-held-packages" => o.allow_held = true,
            "--allow-downgrades" => o.allow_downgrades = true,
            "--no-install-recommends" => o.no_recommends = true,
            "--install-recommends" => o.no_recommends = false,
            "-o" => {
                i += 1;
                let kv = args.get(i).cloned().unwrap_or_default();
                apply_option(&mut o, &kv);
            }
            s if s.starts_with("-o") && s.len() > 2 => apply_option(&mut o, &s[2..]),
            s if s.starts_with("--option=") => apply_option(&mut o, &s[9..]),
            s if s.starts_with("-") && s.chars().skip(1).all(|c| c == 'y' || c == 'q') => {
                o.yes |= s.contains('y');
                o.quiet |= s.contains('q');
                o.quiet_level += s.chars().filter(|c| *c == 'q').count() as u32;
            }
            "--no-upgrade"
            | "--only-upgrade"
            | "--fix-broken"
            | "-f"
            | "--reinstall"
            | "--fix-missing"
            | "-m"
            | "--force-yes"
            | "--allow-unauthenticated" => {}
            s if s.starts_with('-') => {
                return Err(format!("E: Command line option '{s}' is not understood in combination with the other options"));
            }
            s => o.words.push(s.to_string()),
        }
        i += 1;
    }
    Ok(o)
}

fn apply_option(o: &mut Opts, kv: &str) {
    if let Some((k, v)) = kv.split_once('=') {
        let k = k.to_ascii_lowercase();
        if k == "dpkg::lock::timeout" {
            o.lock_timeout = v.trim().parse().unwrap_or(0.0);
        } else if k == "apt::get::assume-yes" {
            o.yes = v == "true" || v == "1";
        }
    }
}

/// `apt-get` and `apt`.
pub fn apt_get(ctx: &mut Ctx, args: &[String]) -> i32 {
    if ctx.name == "apt" && unsafe { libc::isatty(1) } == 0 {
        eprintln!(
            "\nWARNING: apt does not have a stable CLI interface. Use with caution in scripts.\n"
        );
    }
    if ctx.name == "apt"
        && args
            .iter()
            .find(|a| !a.starts_with('-'))
            .map(String::as_str)
            == Some("list")
    {
        return apt_list(ctx, args);
    }
    let o = match parse_opts(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return 100;
        }
    };
    let Some((verb, pkgs)) = o.words.split_first() else {
        eprintln!("E: Invalid operation");
        return 100;
    };
    let pkgs: Vec<String> = pkgs.to_vec();
    match verb.as_str() {
        "update" => update(ctx, &o),
        "install" => modify(ctx, &o, Action::Install(pkgs)),
        "remove" => modify(ctx, &o, Action::Remove(pkgs, false)),
        "purge" => modify(ctx, &o, Action::Remove(pkgs, true)),
        "upgrade" | "dist-upgrade" | "full-upgrade" => modify(ctx, &o, Action::Upgrade),
        "autoremove" | "clean" | "autoclean" | "check" => 0,
        v => {
            eprintln!("E: Invalid operation {v}");
            100
        }
    }
}

/// `apt list [--installed|--upgradable] [PATTERN...]`.
fn apt_list(ctx: &Ctx, args: &[String]) -> i32 {
    let installed_only = args.iter().any(|a| a == "--installed");
    let upgradable = args.iter().any(|a| a == "--upgradable");
    let patterns: Vec<&String> = args
        .iter()
        .filter(|a| !a.starts_with('-') && *a != "list")
        .collect();
    let all = sources::available(&ctx.config.os);
    let db = common::dpkg_db();
    let mut names: BTreeSet<String> = all.iter().map(|o| o.pkg.name.clone()).collect();
    names.extend(db.keys().cloned());
    println!("Listing...");
    for n in names {
        if !patterns.is_empty()
            && !patterns.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => n.starts_with(prefix),
                None => **p == n,
            })
        {
            continue;
        }
        let inst = db.get(&n).filter(|p| p.status.starts_with('i'));
        let best = sources::offers_of(&all, &n).into_iter().next();
        if installed_only && inst.is_none() {
            continue;
        }
        let newer = match (inst, best) {
            (Some(i), Some(b)) => compare_versions(&b.pkg.version, &i.version).is_gt(),
            _ => false,
        };
        if upgradable && !newer {
            continue;
        }
        let suite = |o: &Offer| {
            let parts: Vec<&str> = o.origin.split_whitespace().collect();
            match parts.get(1) {
                Some(sc) if parts.len() > 2 => sc.split('/').next().unwrap_or("").to_string(),
                _ => "unknown".to_string(),
            }
        };
        let line = match (inst, best) {
            (Some(i), Some(b)) if newer && upgradable => format!(
                "{n}/{} {} amd64 [upgradable from: {}]",
                suite(b),
                b.pkg.version,
                i.version
            ),
            (Some(i), Some(b)) if newer => format!(
                "{n}/{},now {} amd64 [installed,upgradable to: {}]",
                suite(b),
                i.version,
                b.pkg.version
            ),
            (Some(i), Some(b)) if b.pkg.version == i.version => {
                format!("{n}/{},now {} amd64 [installed]", suite(b), i.version)
            }
            (Some(i), _) => format!("{n}/now {} amd64 [installed,local]", i.version),
            (None, Some(b)) => format!("{n}/{} {} amd64", suite(b), b.pkg.version),
            (None, None) => continue,
        };
        println!("{line}");
    }
    0
}

/// Consumes one unit of the `apt-download` fault, if active. Returns the failing host.
fn download_fault(host: &str) -> Option<String> {
    if let Some(Fault::AptDownload { remaining }) = common::fault("apt-download") {
        if remaining > 0 {
            let next = remaining - 1;
            if next == 0 {
                common::set_fault("apt-download", None);
            } else {
                common::set_fault(
                    "apt-download",
                    Some(&Fault::AptDownload { remaining: next }),
                );
            }
            return Some(host.to_string());
        }
    }
    None
}

fn keyring_ok(path: &Option<String>) -> Result<(), String> {
    let Some(p) = path else {
        return Err("NO_PUBKEY".into());
    };
    let Ok(bytes) = std::fs::read(p) else {
        return Err("NO_PUBKEY".into());
    };
    let armored = bytes.starts_with(b"-----BEGIN PGP");
    if armored && !p.ends_with(".asc") {
        return Err(format!(
            "The key(s) in the keyring {p} are ignored as the file has an unsupported filetype."
        ));
    }
    if net::keyring_has_key(&bytes) {
        Ok(())
    } else {
        Err("NO_PUBKEY".into())
    }
}

/// apt fetches one Release file per (URI, suite): lines naming the same repository with
/// other components (jammy's `main restricted` and `universe` lines) add their components
/// to it instead of being dropped.
fn merged_sources(all: Vec<sources::Source>) -> Vec<sources::Source> {
    let mut merged: Vec<sources::Source> = Vec::new();
    for src in all {
        match merged
            .iter_mut()
            .find(|m| m.uri == src.uri && m.suite == src.suite)
        {
            Some(m) => {
                for c in src.components {
                    if !m.components.contains(&c) {
                        m.components.push(c);
                    }
                }
            }
            None => merged.push(src),
        }
    }
    merged
}

/// `apt-get update`.
fn update(ctx: &mut Ctx, o: &Opts) -> i32 {
    if !common::is_root() {
        lock::report(lock::LISTS, &LockError::Denied);
        return 100;
    }
    let _guard = match lock::acquire(lock::LISTS, o.lock_timeout) {
        Ok(g) => g,
        Err(e) => {
            lock::report(lock::LISTS, &e);
            return 100;
        }
    };
    let os = ctx.config.os.clone();
    let mut n = 0;
    let mut warnings: Vec<String> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut fetched = 0usize;
    for src in merged_sources(sources::configured()) {
        n += 1;
        let label = src.label();
        let host = match src.kind {
            Kind::Distro => net::split_url(catalog::distro_archive(&os).0)
                .map(|x| x.0)
                .unwrap_or_default(),
            _ => src.host(),
        };
        let reachable = if src.kind == Kind::Distro {
            net::public_resolves(&host)
        } else {
            net::host_known(&host)
        };
        if !reachable || download_fault(&host).is_some() {
            println!("Ign:{n} {label} InRelease");
            println!("Err:{n} {label} InRelease");
            println!("  Temporary failure resolving '{host}'");
            warnings.push(format!(
                "W: Failed to fetch {}/{}InRelease  Temporary failure resolving '{host}'",
                src.display_uri(),
                if src.suite == "/" {
                    String::new()
                } else {
                    format!("dists/{}/", src.suite)
                }
            ));
            continue;
        }
        if let Kind::K8s(minor) = src.kind {
            if catalog::newest_patch(minor).is_none() {
                println!("Err:{n} {label} InRelease");
                println!("  403  Forbidden [IP: 18.172.31.14 443]");
                errors.push(format!(
                    "E: Failed to fetch {}/InRelease  403  Forbidden [IP: 18.172.31.14 443]",
                    src.display_uri()
                ));
                errors.push(format!(
                    "E: The repository '{label} InRelease' is not signed."
                ));
                continue;
            }
            if let Err(why) = keyring_ok(&src.signed_by) {
                println!("Get:{n} {label} InRelease [1,186 B]");
                fetched += 1186;
                println!("Err:{n} {label} InRelease");
                let msg = format!(
                    "The following signatures couldn't be verified because the public key is not available: NO_PUBKEY {}",
                    catalog::K8S_KEY_ID
                );
                println!("  {msg}");
                if why != "NO_PUBKEY" {
                    warnings.push(format!("W: {why}"));
                }
                warnings.push(format!("W: GPG error: {label} InRelease: {msg}"));
                errors.push(format!(
                    "E: The repository '{label} InRelease' is not signed."
                ));
                for (file, _) in src.lists_files() {
                    if std::fs::remove_file(&file).is_ok() {
                        ctx.changed();
                    }
                }
                continue;
            }
        }
        if src.kind == Kind::Other {
            println!("Err:{n} {label} InRelease");
            println!("  404  Not Found");
            errors.push(format!(
                "E: The repository '{label} Release' does not have a Release file."
            ));
            continue;
        }
        // Fetch what changed; an unchanged repository is a "Hit".
        let wanted: Vec<(std::path::PathBuf, String, String)> = src
            .lists_files()
            .into_iter()
            .filter_map(|(f, sc)| {
                let idx = sources::index_for(&os, &src, &sc)?;
                Some((f, sc, idx))
            })
            .collect();
        let stale: Vec<&(std::path::PathBuf, String, String)> = wanted
            .iter()
            .filter(|(f, _, idx)| std::fs::read_to_string(f).ok().as_deref() != Some(idx))
            .collect();
        if stale.is_empty() {
            println!("Hit:{n} {label} InRelease");
        } else {
            println!("Get:{n} {label} InRelease [1,186 B]");
            fetched += 1186;
            for (file, sc, idx) in stale {
                n += 1;
                if sc.is_empty() {
                    println!("Get:{n} {label} Packages [{} B]", group(idx.len()));
                } else {
                    println!(
                        "Get:{n} {} {sc} amd64 Packages [{} B]",
                        src.display_uri(),
                        group(idx.len())
                    );
                }
                fetched += idx.len();
                let _ = common::write_atomic(file, idx.as_bytes());
                ctx.changed();
            }
        }
        ctx.take_time(0.5);
    }
    // Lists of sources that are no longer configured are cleaned up.
    let wanted: BTreeSet<_> = sources::configured()
        .iter()
        .flat_map(|s| s.lists_files().into_iter().map(|x| x.0))
        .collect();
    if let Ok(rd) = std::fs::read_dir(sources::LISTS_DIR) {
        for e in rd.flatten() {
            let p = e.path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with("_Packages") && !wanted.contains(&p) {
                let _ = std::fs::remove_file(&p);
                ctx.changed();
            }
        }
    }
    if fetched > 0 {
        println!(
            "Fetched {} B in 1s ({} B/s)",
            group(fetched),
            group(fetched)
        );
    }
    println!("Reading package lists...");
    for w in &warnings {
        eprintln!("{w}");
    }
    if warnings.iter().any(|w| w.starts_with("W: Failed to fetch")) {
        eprintln!("W: Some index files failed to download. They have been ignored, or old ones used instead.");
    }
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("{e}");
        }
        eprintln!("N: Updating from such a repository can't be done securely, and is therefore disabled by default.");
        eprintln!(
            "N: See apt-secure(8) manpage for repository creation and user configuration details."
        );
        return 100;
    }
    0
}

/// 12345 -> "12.3 k"-style is apt's; plain thousands separators are enough here.
fn group(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

enum Action {
    Install(Vec<String>),
    Remove(Vec<String>, bool),
    Upgrade,
}

/// A planned change to one package.
#[derive(Debug, Clone)]
struct Change {
    name: String,
    from: Option<String>,
    to: String,
    offer_origin: String,
}

/// Matches a version against `pattern`, which may contain `*` globs (`1.34.2-*`).
fn version_matches(v: &str, pattern: &str) -> bool {
    if !pattern.contains('*') {
        return v == pattern;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = v;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(p) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            match rest.find(p) {
                Some(k) => rest = &rest[k + p.len()..],
                None => return false,
            }
        }
    }
    true
}

fn print_list(title: &str, names: &[String]) {
    if names.is_empty() {
        return;
    }
    println!("{title}");
    println!("  {}", names.join(" "));
}

fn interrupted(db: &BTreeMap<String, PkgState>) -> bool {
    db.values().any(|p| p.status == "iU" || p.status == "iF")
}

fn modify(ctx: &mut Ctx, o: &Opts, action: Action) -> i32 {
    if !common::is_root() {
        lock::report(lock::FRONTEND, &LockError::Denied);
        return 100;
    }
    let _guard = match lock::acquire(lock::FRONTEND, o.lock_timeout) {
        Ok(g) => g,
        Err(e) => {
            lock::report(lock::FRONTEND, &e);
            return 100;
        }
    };
    let mut db = common::dpkg_db();
    if interrupted(&db) {
        eprintln!("E: dpkg was interrupted, you must manually run 'dpkg --configure -a' to correct the problem. ");
        return 100;
    }
    if !o.quiet {
        println!("Reading package lists...");
        println!("Building dependency tree...");
        println!("Reading state information...");
    }
    let os = ctx.config.os.clone();
    let all = sources::available(&os);
    let installed = |db: &BTreeMap<String, PkgState>, n: &str| {
        db.get(n)
            .filter(|p| p.status.starts_with('i'))
            .map(|p| p.version.clone())
    };
    match action {
        Action::Remove(names, purge) => remove(ctx, o, &mut db, &all, &names, purge),
        Action::Install(names) => {
            if names.is_empty() {
                println!("0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.");
                return 0;
            }
            let mut errors = Vec::new();
            let mut wanted: Vec<(String, Option<String>)> = Vec::new();
            for spec in &names {
                let (name, ver) = match spec.split_once('=') {
                    Some((n, v)) => (n.to_string(), Some(v.to_string())),
                    None => (spec.to_string(), None),
                };
                let offers = sources::offers_of(&all, &name);
                if offers.is_empty() && installed(&db, &name).is_none() {
                    errors.push(format!("E: Unable to locate package {name}"));
                    continue;
                }
                if let Some(v) = &ver {
                    let ok = offers.iter().any(|x| version_matches(&x.pkg.version, v))
                        || installed(&db, &name).is_some_and(|iv| version_matches(&iv, v));
                    if !ok {
                        errors.push(format!("E: Version '{v}' for '{name}' was not found"));
                        continue;
                    }
                }
                wanted.push((name, ver));
            }
            if !errors.is_empty() {
                for e in errors {
                    eprintln!("{e}");
                }
                return 100;
            }
            let mut plan: Vec<Change> = Vec::new();
            let mut already = Vec::new();
            let mut broken = Vec::new();
            for (name, ver) in &wanted {
                let offers = sources::offers_of(&all, name);
                let target = match ver {
                    Some(v) => offers
                        .iter()
                        .find(|x| version_matches(&x.pkg.version, v))
                        .map(|x| (x.pkg.version.clone(), x.origin.clone()))
                        .or_else(|| installed(&db, name).map(|iv| (iv, String::new()))),
                    None => offers
                        .first()
                        .map(|x| (x.pkg.version.clone(), x.origin.clone()))
                        .or_else(|| installed(&db, name).map(|iv| (iv, String::new()))),
                };
                let Some((to, origin)) = target else { continue };
                let cur = installed(&db, name);
                if cur.as_deref() == Some(to.as_str())
                    && db.get(name).is_some_and(|p| p.status == "ii")
                {
                    already.push(format!("{name} is already the newest version ({to})."));
                    continue;
                }
                plan.push(Change {
                    name: name.clone(),
                    from: cur,
                    to,
                    offer_origin: origin,
                });
            }
            let explicit: BTreeSet<String> = plan.iter().map(|c| c.name.clone()).collect();
            resolve_deps(&db, &all, &mut plan, o.no_recommends, &mut broken);
            for a in &already {
                println!("{a}");
            }
            if !broken.is_empty() {
                eprintln!("Some packages could not be installed. This may mean that you have\nrequested an impossible situation or if you are using the unstable\ndistribution that some required packages have not yet been created\nor been moved out of Incoming.\nThe following information may help to resolve the situation:\n");
                eprintln!("The following packages have unmet dependencies:");
                for b in &broken {
                    eprintln!(" {b}");
                }
                eprintln!("E: Unable to correct problems, you have held broken packages.");
                return 100;
            }
            execute(ctx, o, &mut db, plan, &explicit, &os)
        }
        Action::Upgrade => {
            let mut plan = Vec::new();
            let mut kept = Vec::new();
            for (name, st) in db.iter().filter(|(_, p)| p.status == "ii") {
                if let Some(best) = sources::offers_of(&all, name).first() {
                    if compare_versions(&best.pkg.version, &st.version).is_gt() {
                        if st.hold {
                            kept.push(name.clone());
                        } else {
                            plan.push(Change {
                                name: name.clone(),
                                from: Some(st.version.clone()),
                                to: best.pkg.version.clone(),
                                offer_origin: best.origin.clone(),
                            });
                        }
                    }
                }
            }
            print_list("The following packages have been kept back:", &kept);
            let mut broken = Vec::new();
            resolve_deps(&db, &all, &mut plan, true, &mut broken);
            let explicit = plan.iter().map(|c| c.name.clone()).collect();
            execute(ctx, o, &mut db, plan, &explicit, &os)
        }
    }
}

/// Adds what the planned packages depend on (and recommend, unless disabled).
fn resolve_deps(
    db: &BTreeMap<String, PkgState>,
    all: &[Offer],
    plan: &mut Vec<Change>,
    no_recommends: bool,
    broken: &mut Vec<String>,
) {
    let mut i = 0;
    while i < plan.len() {
        let c = plan[i].clone();
        let Some(offer) = all
            .iter()
            .find(|x| x.pkg.name == c.name && x.pkg.version == c.to)
        else {
            i += 1;
            continue;
        };
        let mut groups: Vec<(bool, Vec<catalog::Dep>)> = parse_depends(&offer.pkg.depends)
            .into_iter()
            .map(|g| (true, g))
            .collect();
        if !no_recommends && c.from.is_none() {
            groups.extend(
                parse_depends(&offer.pkg.recommends)
                    .into_iter()
                    .map(|g| (false, g)),
            );
        }
        'group: for (required, group) in groups {
            // Satisfied by the plan or by what is installed?
            for d in &group {
                if let Some(p) = plan.iter().find(|p| p.name == d.name) {
                    if satisfies(&p.to, &d.constraint) {
                        continue 'group;
                    }
                } else if let Some(st) = db.get(&d.name).filter(|p| p.status == "ii") {
                    if satisfies(&st.version, &d.constraint) {
                        continue 'group;
                    }
                }
            }
            for d in &group {
                if plan.iter().any(|p| p.name == d.name) {
                    continue;
                }
                let held = db.get(&d.name).is_some_and(|p| p.hold && p.status == "ii");
                let best = sources::offers_of(all, &d.name)
                    .into_iter()
                    .find(|x| satisfies(&x.pkg.version, &d.constraint));
                if let (Some(b), false) = (best, held) {
                    plan.push(Change {
                        name: d.name.clone(),
                        from: db
                            .get(&d.name)
                            .filter(|p| p.status == "ii")
                            .map(|p| p.version.clone()),
                        to: b.pkg.version.clone(),
                        offer_origin: b.origin.clone(),
                    });
                    continue 'group;
                }
            }
            if required {
                let d = &group[0];
                let what = match &d.constraint {
                    Some((op, v)) => format!("{} ({op} {v})", d.name),
                    None => d.name.clone(),
                };
                let why = match db.get(&d.name).filter(|p| p.status == "ii") {
                    Some(p) => format!("but {} is to be installed", p.version),
                    None => "but it is not installable".into(),
                };
                broken.push(format!("{} : Depends: {what} {why}", c.name));
            }
        }
        i += 1;
    }
}

/// Asks "Do you want to continue? [Y/n]" like apt does without -y; true = go on.
/// What apt's `InstallPackages` does after listing the changes.
#[derive(Debug, PartialEq)]
enum FailSafe {
    Proceed,
    Ask,
    Error(&'static str),
}

/// apt's fail-safe check (apt-private/private-install.cc, `InstallPackages`): with -y (or
/// -qq) it refuses, in this order, essential removals, downgrades, then held changes,
/// each unless its --allow-* option is given; without -y it asks whenever something is
/// risky (even if allowed) or packages beyond those requested come along.
fn fail_safe(o: &Opts, downgrade: bool, hold: bool, extra: bool) -> FailSafe {
    let assume_yes = o.yes || o.quiet_level >= 2;
    if assume_yes {
        if downgrade && !o.allow_downgrades {
            return FailSafe::Error(
                "E: Packages were downgraded and -y was used without --allow-downgrades.",
            );
        }
        if hold && !o.allow_held {
            return FailSafe::Error(
                "E: Held packages were changed and -y was used without --allow-change-held-packages.",
            );
        }
        return FailSafe::Proceed;
    }
    if downgrade || hold || extra {
        FailSafe::Ask
    } else {
        FailSafe::Proceed
    }
}

fn confirm() -> bool {
    print!("Do you want to continue? [Y/n] ");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => {
            println!("Abort.");
            false
        }
        Ok(_) => {
            let l = line.trim();
            if l.is_empty() || l.eq_ignore_ascii_case("y") || l.eq_ignore_ascii_case("yes") {
                true
            } else {
                println!("Abort.");
                false
            }
        }
    }
}

fn execute(
    ctx: &mut Ctx,
    o: &Opts,
    db: &mut BTreeMap<String, PkgState>,
    mut plan: Vec<Change>,
    explicit: &BTreeSet<String>,
    os: &str,
) -> i32 {
    // Dependencies first, so each package's dependencies are configured before it.
    plan.reverse();
    let extra: Vec<String> = {
        let mut v: Vec<String> = plan
            .iter()
            .filter(|c| !explicit.contains(&c.name) && c.from.is_none())
            .map(|c| c.name.clone())
            .collect();
        v.sort();
        v
    };
    let mut new: Vec<String> = plan
        .iter()
        .filter(|c| c.from.is_none())
        .map(|c| c.name.clone())
        .collect();
    new.sort();
    let mut upgraded: Vec<String> = plan
        .iter()
        .filter(|c| {
            c.from
                .as_ref()
                .is_some_and(|f| compare_versions(&c.to, f).is_gt())
        })
        .map(|c| c.name.clone())
        .collect();
    upgraded.sort();
    let mut downgraded: Vec<String> = plan
        .iter()
        .filter(|c| {
            c.from
                .as_ref()
                .is_some_and(|f| compare_versions(&c.to, f).is_lt())
        })
        .map(|c| c.name.clone())
        .collect();
    downgraded.sort();
    let mut held_changed: Vec<String> = plan
        .iter()
        .filter(|c| c.from.is_some() && db.get(&c.name).is_some_and(|p| p.hold))
        .map(|c| c.name.clone())
        .collect();
    held_changed.sort();
    print_list(
        "The following additional packages will be installed:",
        &extra,
    );
    print_list(
        "The following held packages will be changed:",
        &held_changed,
    );
    print_list("The following NEW packages will be installed:", &new);
    print_list("The following packages will be upgraded:", &upgraded);
    print_list("The following packages will be DOWNGRADED:", &downgraded);
    let down = if downgraded.is_empty() {
        String::new()
    } else {
        format!("{} downgraded, ", downgraded.len())
    };
    println!(
        "{} upgraded, {} newly installed, {down}0 to remove and 0 not upgraded.",
        upgraded.len(),
        new.len(),
    );
    if plan.is_empty() {
        return 0;
    }
    match fail_safe(
        o,
        !downgraded.is_empty(),
        !held_changed.is_empty(),
        !extra.is_empty(),
    ) {
        FailSafe::Proceed => {}
        FailSafe::Error(e) => {
            eprintln!("{e}");
            return 100;
        }
        FailSafe::Ask => {
            if !confirm() {
                return 1;
            }
        }
    }
    // Download.
    for (n, c) in plan.iter().enumerate() {
        let host = net::split_url(&c.offer_origin)
            .map(|x| x.0)
            .unwrap_or_default();
        // "URI SUITE/COMPONENT" for the distro archive, "URI " for flat repositories.
        let origin = c.offer_origin.trim_end_matches("Packages").trim_end();
        let origin = origin.trim_end_matches(" amd64");
        let uri = origin.split_whitespace().next().unwrap_or("");
        let file = format!("{}_{}_amd64.deb", c.name, c.to.replace(':', "%3a"));
        let air_gapped =
            (!net::is_local(&host) && !net::public_resolves(&host)).then(|| host.clone());
        if let Some(h) = air_gapped.or_else(|| download_fault(&host)) {
            println!("Err:{} {origin} amd64 {} amd64 {}", n + 1, c.name, c.to);
            println!("  Temporary failure resolving '{h}'");
            let url = match origin.split_whitespace().nth(1) {
                Some(suite_comp) => {
                    let comp = suite_comp.rsplit('/').next().unwrap_or("main");
                    let letter = &c.name[..1];
                    format!("{uri}/pool/{comp}/{letter}/{}/{file}", c.name)
                }
                None => format!("{uri}/amd64/{file}"),
            };
            eprintln!("E: Failed to fetch {url}  Temporary failure resolving '{h}'");
            eprintln!("E: Unable to fetch some archives, maybe run apt-get update or try with --fix-missing?");
            return 100;
        }
        println!(
            "Get:{} {origin} amd64 {} amd64 {} [1,024 kB]",
            n + 1,
            c.name,
            c.to
        );
    }
    println!("Fetched {} kB in 2s", group(plan.len() * 1024));
    // Unpack and configure, recording each step so an interrupted run leaves "iU".
    for c in &plan {
        let hold = db.get(&c.name).is_some_and(|p| p.hold);
        match &c.from {
            None => {
                println!("Selecting previously unselected package {}.", c.name);
                println!("Preparing to unpack .../{}_{}_amd64.deb ...", c.name, c.to);
                println!("Unpacking {} ({}) ...", c.name, c.to);
            }
            Some(f) => {
                println!("Preparing to unpack .../{}_{}_amd64.deb ...", c.name, c.to);
                println!("Unpacking {} ({}) over ({f}) ...", c.name, c.to);
            }
        }
        db.insert(
            c.name.clone(),
            PkgState {
                version: c.to.clone(),
                status: "iU".into(),
                hold,
            },
        );
        let _ = common::save_dpkg_db(db);
        ctx.changed();
        ctx.take_time(catalog::install_seconds(&c.name) * 0.6);
        super::dpkg::unpack_files(&c.name);
    }
    for c in &plan {
        println!("Setting up {} ({}) ...", c.name, c.to);
        if let Some(p) = db.get_mut(&c.name) {
            p.status = "ii".into();
        }
        let _ = common::save_dpkg_db(db);
        ctx.take_time(catalog::install_seconds(&c.name) * 0.4);
        super::dpkg::postinst(&c.name, c.from.is_none());
    }
    if plan.iter().any(|c| catalog::reloads_systemd(&c.name)) {
        let man_db = match os {
            "ubuntu-22.04" => "2.10.2-1",
            "debian-12" => "2.11.2-2",
            _ => "2.12.0-4build2",
        };
        println!("Processing triggers for man-db ({man_db}) ...");
    }
    0
}

fn remove(
    ctx: &mut Ctx,
    o: &Opts,
    db: &mut BTreeMap<String, PkgState>,
    all: &[Offer],
    names: &[String],
    purge: bool,
) -> i32 {
    let mut targets: Vec<String> = Vec::new();
    for n in names {
        let n = n.split('=').next().unwrap_or(n).to_string();
        match db.get(&n) {
            Some(p) if p.status.starts_with('i') => targets.push(n),
            Some(p) if purge && p.status == "rc" => targets.push(n),
            _ => {
                if sources::offers_of(all, &n).is_empty() && !db.contains_key(&n) {
                    eprintln!("E: Unable to locate package {n}");
                    return 100;
                }
                println!("Package '{n}' is not installed, so not removed");
            }
        }
    }
    // Installed packages that depend on a removed one go too.
    loop {
        let mut more = Vec::new();
        for (name, st) in db.iter().filter(|(_, p)| p.status == "ii") {
            if targets.contains(name) {
                continue;
            }
            let Some(offer) = all
                .iter()
                .find(|x| x.pkg.name == *name && x.pkg.version == st.version)
            else {
                continue;
            };
            let needs_removed = parse_depends(&offer.pkg.depends).iter().any(|g| {
                g.iter().all(|d| {
                    targets.contains(&d.name) || db.get(&d.name).is_none_or(|p| p.status != "ii")
                })
            });
            if needs_removed {
                more.push(name.clone());
            }
        }
        if more.is_empty() {
            break;
        }
        targets.extend(more);
    }
    let mut shown: Vec<String> = targets
        .iter()
        .map(|t| if purge { format!("{t}*") } else { t.clone() })
        .collect();
    shown.sort();
    let held: Vec<String> = targets
        .iter()
        .filter(|t| db.get(*t).is_some_and(|p| p.hold))
        .cloned()
        .collect();
    print_list("The following held packages will be changed:", &held);
    print_list("The following packages will be REMOVED:", &shown);
    println!(
        "0 upgraded, 0 newly installed, {} to remove and 0 not upgraded.",
        targets.len()
    );
    if targets.is_empty() {
        return 0;
    }
    // Removals always ask (apt's DoInstall prompts unless only the requested packages
    // are installed).
    match fail_safe(o, false, !held.is_empty(), true) {
        FailSafe::Proceed => {}
        FailSafe::Error(e) => {
            eprintln!("{e}");
            return 100;
        }
        FailSafe::Ask => {
            if !confirm() {
                return 1;
            }
        }
    }
    // Dependents (added last) go first, as apt orders the removals.
    for t in targets.iter().rev() {
        let Some(st) = db.get(t).cloned() else {
            continue;
        };
        if st.status.starts_with('i') {
            println!("Removing {t} ({}) ...", st.version);
            systemd::package_removed(t);
            super::dpkg::remove_files(t);
        }
        if purge {
            println!("Purging configuration files for {t} ({}) ...", st.version);
            super::dpkg::purge_files(t);
            db.remove(t);
        } else if let Some(p) = db.get_mut(t) {
            p.status = "rc".into();
        }
        let _ = common::save_dpkg_db(db);
        ctx.changed();
        ctx.take_time(1.0);
    }
    0
}

/// `apt-mark hold|unhold|showhold|manual|auto PKG...`
pub fn apt_mark(ctx: &mut Ctx, args: &[String]) -> i32 {
    let (words, simulate) = match parse_mark_opts(args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return 100;
        }
    };
    let Some((verb, pkgs)) = words.split_first() else {
        eprintln!("E: No operation specified");
        return 100;
    };
    let mut db = common::dpkg_db();
    match verb.as_str() {
        "showhold" | "showholds" => {
            for (n, p) in &db {
                if p.hold && (pkgs.is_empty() || pkgs.contains(n)) {
                    println!("{n}");
                }
            }
            0
        }
        "hold" | "unhold" => {
            let want = verb.as_str() == "hold";
            // The cache lookup (apt's CacheSetHelper) reports unknown names and goes on
            // with the others; with none left: "No packages found".
            let all = sources::available(&ctx.config.os);
            let mut code = 0;
            let mut known = Vec::new();
            for p in pkgs {
                if !db.contains_key(p) && sources::offers_of(&all, p).is_empty() {
                    eprintln!("E: Unable to locate package {p}");
                    code = 100;
                } else if !known.contains(p) {
                    known.push(p.clone());
                }
            }
            if known.is_empty() {
                eprintln!("E: No packages found");
                return 100;
            }
            let (done, change): (Vec<String>, Vec<String>) = known
                .into_iter()
                .partition(|p| db.get(p).is_some_and(|s| s.hold) == want);
            for p in &done {
                if want {
                    println!("{p} was already set on hold.");
                } else {
                    println!("{p} was already not on hold.");
                }
            }
            if change.is_empty() {
                return code;
            }
            if !simulate {
                // apt-mark does not lock anything itself (so DPkg::Lock::Timeout does not
                // apply): it pipes the selections into `dpkg --set-selections`, which
                // checks for root and takes dpkg's locks without waiting.
                let locks = if common::is_root() {
                    lock::dpkg_locks(&ctx.config.os)
                } else {
                    Err("dpkg: error: requested operation requires superuser privilege".into())
                };
                let _locks = match locks {
                    Ok(g) => g,
                    Err(e) => {
                        eprintln!("{e}");
                        eprintln!(
                            "E: Sub-process dpkg --set-selections returned an error code (2)"
                        );
                        eprintln!("E: Executing dpkg failed. Are you root?");
                        return 100;
                    }
                };
                // Re-read under the lock: an apt-get that just finished may have changed it.
                db = common::dpkg_db();
                for p in &change {
                    let entry = db.entry(p.to_string()).or_insert_with(|| PkgState {
                        version: String::new(),
                        status: "un".into(),
                        hold: false,
                    });
                    entry.hold = want;
                }
                db.retain(|_, p| p.status != "un" || p.hold);
                let _ = common::save_dpkg_db(&db);
                ctx.changed();
            }
            for p in &change {
                if want {
                    println!("{p} set on hold.");
                } else {
                    println!("Canceled hold on {p}.");
                }
            }
            code
        }
        "manual" | "auto" | "showmanual" | "showauto" => 0,
        v => {
            eprintln!("E: Invalid operation {v}");
            100
        }
    }
}

/// apt-mark's command line: the words, and whether `-s` (APT::Mark::Simulate) was given.
/// Options that take a value (`-o KEY=VALUE`, `-c FILE`, `-f FILE`) consume it.
fn parse_mark_opts(args: &[String]) -> Result<(Vec<String>, bool), String> {
    let mut words = Vec::new();
    let mut simulate = false;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "-o" | "--option" | "-c" | "--config-file" | "-f" | "--file" => {
                if i + 1 >= args.len() {
                    return Err(format!("E: Option {a} requires an argument."));
                }
                if matches!(a, "-o" | "--option") {
                    let kv = &args[i + 1];
                    if kv
                        .split_once('=')
                        .is_some_and(|(k, _)| k.eq_ignore_ascii_case("apt::mark::simulate"))
                    {
                        simulate = kv.ends_with("=true") || kv.ends_with("=1");
                    }
                }
                i += 1;
            }
            s if s.starts_with("--option=")
                || s.starts_with("--config-file=")
                || s.starts_with("--file=")
                || (s.starts_with("-o") && s.len() > 2) => {}
            "-s" | "--simulate" | "--just-print" | "--dry-run" | "--recon" | "--no-act" => {
                simulate = true
            }
            "-q" | "-qq" | "--quiet" | "-y" | "--yes" | "--assume-yes" => {}
            s if s.starts_with('-') && s.len() > 1 => {
                return Err(format!(
                    "E: Command line option '{s}' is not understood in combination with the other options"
                ));
            }
            s => words.push(s.to_string()),
        }
        i += 1;
    }
    Ok((words, simulate))
}

/// `apt-cache madison|policy|show PKG...`
pub fn apt_cache(ctx: &mut Ctx, args: &[String]) -> i32 {
    let words: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let Some((verb, pkgs)) = words.split_first() else {
        eprintln!("E: No operation specified");
        return 100;
    };
    let all = sources::available(&ctx.config.os);
    let db = common::dpkg_db();
    match verb.as_str() {
        "madison" => {
            for p in pkgs {
                let offers = sources::offers_of(&all, p);
                if offers.is_empty() {
                    eprintln!("N: Unable to locate package {p}");
                    continue;
                }
                for o in offers {
                    println!("{:>10} | {} | {}", p, o.pkg.version, o.origin);
                }
            }
            0
        }
        "policy" => {
            for p in pkgs {
                let offers = sources::offers_of(&all, p);
                let inst = db
                    .get(p.as_str())
                    .filter(|s| s.status.starts_with('i'))
                    .map(|s| s.version.clone());
                if offers.is_empty() && inst.is_none() {
                    eprintln!("N: Unable to locate package {p}");
                    continue;
                }
                println!("{p}:");
                println!("  Installed: {}", inst.as_deref().unwrap_or("(none)"));
                println!(
                    "  Candidate: {}",
                    offers
                        .first()
                        .map(|o| o.pkg.version.as_str())
                        .or(inst.as_deref())
                        .unwrap_or("(none)")
                );
                println!("  Version table:");
                let mut shown_installed = false;
                for o in &offers {
                    let star = if inst.as_deref() == Some(o.pkg.version.as_str()) {
                        shown_installed = true;
                        " ***"
                    } else {
                        "    "
                    };
                    println!("{star} {} 500", o.pkg.version);
                    println!("        500 {}", o.origin);
                    if star == " ***" {
                        println!("        100 /var/lib/dpkg/status");
                    }
                }
                if let (Some(v), false) = (&inst, shown_installed) {
                    println!(" *** {v} 100");
                    println!("        100 /var/lib/dpkg/status");
                }
            }
            0
        }
        "show" => {
            let mut code = 0;
            for p in pkgs {
                let offers = sources::offers_of(&all, p);
                if offers.is_empty() {
                    eprintln!("N: Unable to locate package {p}");
                    eprintln!("E: No packages found");
                    code = 100;
                    continue;
                }
                for o in offers {
                    print!("{}", catalog::packages_index(std::slice::from_ref(&o.pkg)));
                }
            }
            code
        }
        v => {
            eprintln!("E: Invalid operation {v}");
            100
        }
    }
}

/// Host-manager-visible: the lists directory path, for docs and tests.
#[allow(dead_code)]
pub fn lists_dir() -> &'static str {
    let _ = layout::CTL_DIR;
    sources::LISTS_DIR
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_globs() {
        assert!(version_matches("1.34.2-1.1", "1.34.2-*"));
        assert!(version_matches("1.34.2-1.1", "1.34.*"));
        assert!(!version_matches("1.35.0-1.1", "1.34.*"));
        assert!(version_matches("1.34.2-1.1", "1.34.2-1.1"));
    }
}

#[cfg(test)]
mod plan_tests {
    use super::*;
    use crate::pkg::catalog::k8s_repo;

    fn offers(minor: u32) -> Vec<Offer> {
        let mut v: Vec<Offer> = catalog::distro("ubuntu-24.04")
            .into_iter()
            .map(|p| Offer {
                pkg: p,
                origin: "http://archive.ubuntu.com/ubuntu noble/main amd64 Packages".into(),
            })
            .collect();
        v.extend(k8s_repo(minor).into_iter().map(|p| Offer {
            pkg: p,
            origin: format!("https://pkgs.k8s.io/core:/stable:/v1.{minor}/deb  Packages"),
        }));
        v
    }

    fn ii(v: &str, hold: bool) -> PkgState {
        PkgState {
            version: v.into(),
            status: "ii".into(),
            hold,
        }
    }

    fn change(name: &str, from: Option<&str>, to: &str) -> Change {
        Change {
            name: name.into(),
            from: from.map(String::from),
            to: to.into(),
            offer_origin: String::new(),
        }
    }

    fn opts(args: &[&str]) -> Opts {
        let a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse_opts(&a).ok().unwrap()
    }

    #[test]
    fn held_downgrade_reports_the_downgrade_first() {
        let down = "E: Packages were downgraded and -y was used without --allow-downgrades.";
        let held =
            "E: Held packages were changed and -y was used without --allow-change-held-packages.";
        // A held package to a lower version: apt checks Downgrade before Hold.
        let o = opts(&["-y", "install", "kubeadm=1.33.0-1.1"]);
        assert_eq!(fail_safe(&o, true, true, false), FailSafe::Error(down));
        let o = opts(&["-y", "--allow-change-held-packages", "install", "x"]);
        assert_eq!(fail_safe(&o, true, true, false), FailSafe::Error(down));
        let o = opts(&["-y", "--allow-downgrades", "install", "x"]);
        assert_eq!(fail_safe(&o, true, true, false), FailSafe::Error(held));
        let o = opts(&[
            "-y",
            "--allow-downgrades",
            "--allow-change-held-packages",
            "install",
            "x",
        ]);
        assert_eq!(fail_safe(&o, true, true, false), FailSafe::Proceed);
        // Held upgrade only.
        let o = opts(&["-y", "install", "x"]);
        assert_eq!(fail_safe(&o, false, true, false), FailSafe::Error(held));
        // -qq implies -y.
        let o = opts(&["-qq", "install", "x"]);
        assert_eq!(fail_safe(&o, true, false, false), FailSafe::Error(down));
        // Without -y apt asks, even when the change is allowed.
        let o = opts(&["--allow-downgrades", "install", "x"]);
        assert_eq!(fail_safe(&o, true, false, false), FailSafe::Ask);
        let o = opts(&["install", "x"]);
        assert_eq!(fail_safe(&o, false, false, false), FailSafe::Proceed);
        assert_eq!(fail_safe(&o, false, false, true), FailSafe::Ask);
    }

    #[test]
    fn apt_mark_options_take_their_values() {
        let a: Vec<String> = [
            "-o",
            "DPkg::Lock::Timeout=600",
            "-qq",
            "hold",
            "kubelet",
            "kubeadm",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (words, sim) = parse_mark_opts(&a).ok().unwrap();
        assert_eq!(words, vec!["hold", "kubelet", "kubeadm"]);
        assert!(!sim);
        let a: Vec<String> = ["-s", "unhold", "x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(parse_mark_opts(&a).ok().unwrap().1);
        let a: Vec<String> = ["--bogus", "hold", "x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(parse_mark_opts(&a).is_err());
    }

    #[test]
    fn minor_upgrade_of_kubeadm_pulls_newer_cri_tools() {
        let mut db = BTreeMap::new();
        db.insert("kubeadm".to_string(), ii("1.34.2-1.1", false));
        db.insert("cri-tools".to_string(), ii("1.34.0-1.1", false));
        let all = offers(35);
        let mut plan = vec![change("kubeadm", Some("1.34.2-1.1"), "1.35.1-1.1")];
        let mut broken = Vec::new();
        resolve_deps(&db, &all, &mut plan, true, &mut broken);
        assert!(broken.is_empty(), "{broken:?}");
        assert!(plan
            .iter()
            .any(|c| c.name == "cri-tools" && c.to == "1.35.0-1.1"));
    }

    #[test]
    fn held_dependency_that_is_too_old_breaks_the_install() {
        let mut db = BTreeMap::new();
        db.insert("cri-tools".to_string(), ii("1.34.0-1.1", true));
        let all = offers(35);
        let mut plan = vec![change("kubeadm", Some("1.34.2-1.1"), "1.35.1-1.1")];
        let mut broken = Vec::new();
        resolve_deps(&db, &all, &mut plan, true, &mut broken);
        assert_eq!(
            broken,
            vec!["kubeadm : Depends: cri-tools (>= 1.35.0) but 1.34.0-1.1 is to be installed"]
        );
    }

    #[test]
    fn docker_io_brings_containerd_and_runc() {
        let db = BTreeMap::new();
        let all = offers(34);
        let mut plan = vec![change("docker.io", None, "24.0.7-0ubuntu4.1")];
        let mut broken = Vec::new();
        resolve_deps(&db, &all, &mut plan, true, &mut broken);
        let names: Vec<&str> = plan.iter().map(|c| c.name.as_str()).collect();
        for n in ["containerd", "runc", "iptables", "tini"] {
            assert!(names.contains(&n), "{names:?}");
        }
        assert!(!names.contains(&"pigz"), "--no-install-recommends");
    }
}
