//! `dpkg-query` and `dpkg` over the simulated dpkg database, and what unpacking,
//! configuring, removing and purging a package does to the host's files and services.

use std::path::Path;

use testbed::layout;

use crate::common::{self, Ctx, PkgState};
use crate::os::{containerd, systemd};

use super::catalog;
use super::lock;

/// dpkg's three-letter `db:Status-Abbrev` (desired, status, error flag), e.g. "ii ",
/// "hi " for a held installed package, "rc ", "iU ".
pub fn status_abbrev(p: &PkgState) -> String {
    let mut chars: Vec<char> = p.status.chars().collect();
    while chars.len() < 2 {
        chars.push('n');
    }
    if p.hold {
        chars[0] = 'h';
    }
    format!("{}{} ", chars[0], chars[1])
}

/// dpkg's `Status` field, e.g. "install ok installed", "hold ok installed".
pub fn status_long(p: &PkgState) -> String {
    let desired = if p.hold {
        "hold"
    } else {
        match p.status.chars().next() {
            Some('i') => "install",
            Some('r') => "deinstall",
            Some('p') => "purge",
            _ => "unknown",
        }
    };
    let state = match p.status.chars().nth(1) {
        Some('i') => "installed",
        Some('c') => "config-files",
        Some('U') => "unpacked",
        Some('F') => "half-configured",
        _ => "not-installed",
    };
    format!("{desired} ok {state}")
}

/// Expands a `dpkg-query -f` format for one package.
pub fn format_entry(fmt: &str, name: &str, p: &PkgState) -> String {
    let mut out = String::new();
    let mut rest = fmt;
    while let Some(i) = rest.find(['$', '\\']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("\\n") {
            out.push('\n');
            rest = t;
        } else if let Some(t) = tail.strip_prefix("\\t") {
            out.push('\t');
            rest = t;
        } else if let Some(t) = tail.strip_prefix("${") {
            let Some(end) = t.find('}') else {
                out.push_str(tail);
                break;
            };
            let field = &t[..end];
            let (field, width) = match field.split_once(';') {
                Some((f, w)) => (f, w.parse::<i32>().ok()),
                None => (field, None),
            };
            let v = match field {
                "Package" => name.to_string(),
                "binary:Package" => name.to_string(),
                "Version" => p.version.clone(),
                "Status" => status_long(p),
                "db:Status-Abbrev" => status_abbrev(p),
                "db:Status-Want" => status_long(p).split(' ').next().unwrap().to_string(),
                "db:Status-Status" => status_long(p).rsplit(' ').next().unwrap().to_string(),
                "Architecture" => "amd64".into(),
                _ => String::new(),
            };
            match width {
                Some(w) if w < 0 => out.push_str(&format!("{v:<w$}", w = (-w) as usize)),
                Some(w) => out.push_str(&format!("{v:>w$}", w = w as usize)),
                None => out.push_str(&v),
            }
            rest = &t[end + 1..];
        } else {
            out.push_str(&tail[..1]);
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

fn glob_match(pattern: &str, name: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix('*') {
        name.starts_with(prefix)
    } else {
        pattern == name
    }
}

/// `dpkg-query -W [-f=FMT] [PKG...]`, `-l`, `-s`.
pub fn dpkg_query(_ctx: &mut Ctx, args: &[String]) -> i32 {
    let mut mode = None;
    let mut fmt = "${binary:Package}\t${Version}\n".to_string();
    let mut pkgs = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "-W" | "--show" => mode = Some('W'),
            "-l" | "--list" => mode = Some('l'),
            "-s" | "--status" => mode = Some('s'),
            "-f" | "--showformat" => {
                i += 1;
                fmt = args.get(i).cloned().unwrap_or_default();
            }
            s if s.starts_with("--showformat=") => fmt = s[13..].to_string(),
            s if s.starts_with("-f") && s.len() > 2 => {
                fmt = s[2..].trim_start_matches('=').to_string()
            }
            s if s.starts_with("-W") && s.len() > 2 => {
                mode = Some('W');
            }
            s => pkgs.push(s.to_string()),
        }
        i += 1;
    }
    query(mode.unwrap_or(' '), &fmt, &pkgs, "dpkg-query")
}

fn query(mode: char, fmt: &str, pkgs: &[String], prog: &str) -> i32 {
    let db = common::dpkg_db();
    let mut code = 0;
    match mode {
        'W' => {
            if pkgs.is_empty() {
                for (n, p) in db.iter().filter(|(_, p)| p.status != "un") {
                    print!("{}", format_entry(fmt, n, p));
                }
                return 0;
            }
            for pat in pkgs {
                let hits: Vec<_> = db.iter().filter(|(n, _)| glob_match(pat, n)).collect();
                if hits.is_empty() {
                    eprintln!("{prog}: no packages found matching {pat}");
                    code = 1;
                }
                for (n, p) in hits {
                    print!("{}", format_entry(fmt, n, p));
                }
            }
            code
        }
        'l' => {
            println!("Desired=Unknown/Install/Remove/Purge/Hold");
            println!(
                "| Status=Not/Inst/Conf-files/Unpacked/halF-conf/Half-inst/trig-aWait/Trig-pend"
            );
            println!("|/ Err?=(none)/Reinst-required (Status,Err: uppercase=bad)");
            println!("||/ Name           Version                 Architecture Description");
            println!("+++-==============-=======================-============-=================================");
            for (n, p) in &db {
                if !pkgs.is_empty() && !pkgs.iter().any(|pat| glob_match(pat, n)) {
                    continue;
                }
                println!(
                    "{}{:<14} {:<23} {:<12} {}",
                    status_abbrev(p),
                    n,
                    p.version,
                    "amd64",
                    n
                );
            }
            for pat in pkgs {
                if !db.keys().any(|n| glob_match(pat, n)) {
                    eprintln!("{prog}: no packages found matching {pat}");
                    code = 1;
                }
            }
            code
        }
        's' => {
            for pat in pkgs {
                match db.get(pat.as_str()) {
                    Some(p) if p.status != "un" => {
                        println!(
                            "Package: {pat}\nStatus: {}\nArchitecture: amd64\nVersion: {}\n",
                            status_long(p),
                            p.version
                        );
                    }
                    _ => {
                        eprintln!("{prog}: package '{pat}' is not installed and no information is available");
                        eprintln!("Use dpkg --info (= dpkg-deb --info) to examine archive files.");
                        code = 1;
                    }
                }
            }
            code
        }
        _ => {
            eprintln!("{prog}: error: need an action option\n\nType {prog} --help for help about querying packages;\nType {prog} --help for help about manipulating packages.");
            2
        }
    }
}

/// `dpkg --configure -a | -l | -s | --print-architecture | --get-selections`.
pub fn dpkg(ctx: &mut Ctx, args: &[String]) -> i32 {
    // `--force-THINGS` options (dpkg(1); e.g. --force-confold: keep a modified conffile
    // without asking) go anywhere before the action. The stand-in never asks about a
    // conffile (it always keeps an existing one, as --force-confold does), so they
    // change nothing here.
    let a: Vec<&str> = args
        .iter()
        .map(|s| s.as_str())
        .filter(|s| !s.starts_with("--force-"))
        .collect();
    match a.as_slice() {
        ["--print-architecture"] => {
            println!("amd64");
            0
        }
        ["-l", rest @ ..] | ["--list", rest @ ..] => {
            let p: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            query('l', "", &p, "dpkg-query")
        }
        ["-s", rest @ ..] | ["--status", rest @ ..] => {
            let p: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            query('s', "", &p, "dpkg-query")
        }
        ["--get-selections", ..] => {
            for (n, p) in common::dpkg_db() {
                let sel = if p.hold {
                    "hold"
                } else if p.status.starts_with('i') {
                    "install"
                } else {
                    "deinstall"
                };
                println!("{n:<48}\t\t\t{sel}");
            }
            0
        }
        ["--configure", "-a"] | ["--configure", "--pending"] | ["-a", "--configure"] => {
            configure_pending(ctx)
        }
        _ => {
            eprintln!("dpkg: error: only --configure -a, -l, -s, --print-architecture and --get-selections are modeled in the testbed");
            2
        }
    }
}

fn configure_pending(ctx: &mut Ctx) -> i32 {
    if !common::is_root() {
        eprintln!("dpkg: error: requested operation requires superuser privilege");
        return 2;
    }
    let _locks = match lock::dpkg_locks(&ctx.config.os) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let mut db = common::dpkg_db();
    let pending: Vec<String> = db
        .iter()
        .filter(|(_, p)| p.status == "iU" || p.status == "iF")
        .map(|(n, _)| n.clone())
        .collect();
    for n in pending {
        let v = db[&n].version.clone();
        println!("Setting up {n} ({v}) ...");
        db.get_mut(&n).unwrap().status = "ii".into();
        let _ = common::save_dpkg_db(&db);
        ctx.changed();
        ctx.take_time(catalog::install_seconds(&n) * 0.4);
        postinst(&n, true);
    }
    0
}

/// Puts the package's commands into /usr/bin (links to the stand-in) and its files.
pub fn unpack_files(pkg: &str) {
    for c in catalog::commands(pkg) {
        let link = Path::new(catalog::command_dir(c)).join(c);
        let _ = std::fs::remove_file(&link);
        let _ = std::os::unix::fs::symlink(layout::SIM_BIN, &link);
    }
    for f in catalog::extra_files(pkg) {
        if let Some(d) = Path::new(f).parent() {
            let _ = std::fs::create_dir_all(d);
        }
        let _ = std::fs::remove_file(f);
        let _ = std::os::unix::fs::symlink(layout::SIM_BIN, f);
    }
    if pkg == "kubelet" {
        for d in ["/etc/kubernetes/manifests", "/var/lib/kubelet"] {
            let _ = std::fs::create_dir_all(d);
        }
        if !Path::new("/etc/default/kubelet").exists() {
            let _ = std::fs::create_dir_all("/etc/default");
            let _ = std::fs::write("/etc/default/kubelet", "KUBELET_EXTRA_ARGS=\n");
        }
    }
    if pkg == "containerd" && !Path::new(containerd::CONFIG_PATH).exists() {
        // A conffile: shipped on first install, never overwritten once it exists.
        let _ = std::fs::create_dir_all("/etc/containerd");
        let _ = std::fs::write(containerd::CONFIG_PATH, containerd::PACKAGED_CONFIG);
    }
}

/// What the package's maintainer scripts do when it is configured.
pub fn postinst(pkg: &str, fresh: bool) {
    if catalog::reloads_systemd(pkg) {
        systemd::package_reloaded(pkg);
    }
    if !fresh {
        return;
    }
    match pkg {
        "containerd" => systemd::package_enable_start("containerd.service"),
        "docker.io" => {
            systemd::package_enable_start("docker.socket");
            systemd::package_enable_start("docker.service");
        }
        // pkgs.k8s.io's kubelet runs `%systemd_post`: the preset enables the unit (Ubuntu
        // presets enable everything) but nothing starts it until `systemctl start`,
        // `enable --now`, kubeadm, or a reboot.
        "kubelet" => systemd::package_enable("kubelet.service"),
        _ => {}
    }
}

/// Removes the package's commands and files (not its configuration).
pub fn remove_files(pkg: &str) {
    for c in catalog::commands(pkg) {
        let _ = std::fs::remove_file(Path::new(catalog::command_dir(c)).join(c));
    }
    for f in catalog::extra_files(pkg) {
        let _ = std::fs::remove_file(f);
    }
}

/// Removes the package's configuration files and its systemd enablement.
pub fn purge_files(pkg: &str) {
    match pkg {
        "containerd" => {
            let _ = std::fs::remove_file(containerd::CONFIG_PATH);
            let _ = std::fs::remove_file(
                "/etc/systemd/system/multi-user.target.wants/containerd.service",
            );
        }
        "docker.io" => {
            let _ =
                std::fs::remove_file("/etc/systemd/system/multi-user.target.wants/docker.service");
            let _ = std::fs::remove_file("/etc/systemd/system/sockets.target.wants/docker.socket");
        }
        "kubelet" => {
            let _ =
                std::fs::remove_file("/etc/systemd/system/multi-user.target.wants/kubelet.service");
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(v: &str, s: &str, hold: bool) -> PkgState {
        PkgState {
            version: v.into(),
            status: s.into(),
            hold,
        }
    }

    #[test]
    fn formats() {
        let p = st("1.34.2-1.1", "ii", false);
        assert_eq!(
            format_entry("${db:Status-Abbrev}${Version}", "kubeadm", &p),
            "ii 1.34.2-1.1"
        );
        let h = st("1.34.2-1.1", "ii", true);
        assert_eq!(
            format_entry("${Package} ${Status}\\n", "kubeadm", &h),
            "kubeadm hold ok installed\n"
        );
        assert_eq!(format_entry("${db:Status-Abbrev}", "x", &h), "hi ");
        assert_eq!(
            format_entry("${Status}", "x", &st("1", "rc", false)),
            "deinstall ok config-files"
        );
    }
}
