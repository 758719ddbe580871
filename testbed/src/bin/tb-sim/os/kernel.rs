//! The simulated kernel: swap, modules and sysctls (`swapoff`, `swapon`, `modprobe`,
//! `lsmod`, `sysctl`), kept in `ctl/kernel.json` ([`layout::KernelState`]) and reset at
//! every boot from /etc/fstab, /etc/modules-load.d and the sysctl.d directories, as on a
//! real machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use testbed::layout::KernelState;

use crate::common::{self, Ctx};

/// Modules a fresh Ubuntu server has loaded that matter here, with lsmod's size column.
const BASE_MODULES: &[&str] = &["ip_tables", "x_tables", "autofs4"];

/// Modules `modprobe` can load: name, size, and the modules it depends on.
const MODULES: &[(&str, u32, &[&str])] = &[
    ("overlay", 212992, &[]),
    ("br_netfilter", 32768, &["bridge"]),
    ("bridge", 421888, &["stp", "llc"]),
    ("stp", 12288, &["llc"]),
    ("llc", 16384, &[]),
    ("ip_tables", 32768, &["x_tables"]),
    ("x_tables", 65536, &[]),
    ("autofs4", 57344, &[]),
    (
        "nf_conntrack",
        196608,
        &["nf_defrag_ipv6", "nf_defrag_ipv4"],
    ),
    ("nf_defrag_ipv6", 24576, &[]),
    ("nf_defrag_ipv4", 12288, &[]),
    ("ip_vs", 233472, &["nf_conntrack"]),
    ("ip_vs_rr", 12288, &["ip_vs"]),
    ("ip_vs_wrr", 12288, &["ip_vs"]),
    ("ip_vs_sh", 12288, &["ip_vs"]),
    ("iptable_nat", 12288, &["ip_tables"]),
    ("iptable_filter", 12288, &["ip_tables"]),
    ("iptable_mangle", 12288, &["ip_tables"]),
    ("xt_conntrack", 12288, &["nf_conntrack"]),
    ("vxlan", 155648, &[]),
    ("ipip", 20480, &[]),
    ("ip_set", 61440, &[]),
    ("wireguard", 114688, &[]),
];

/// Sysctls a fresh kernel has, with their boot values.
const DEFAULT_SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv4.ip_forward", "0"),
    ("net.ipv4.conf.all.forwarding", "0"),
    ("net.ipv4.conf.default.forwarding", "0"),
    ("net.ipv6.conf.all.forwarding", "0"),
    ("net.ipv6.conf.default.forwarding", "0"),
    ("net.ipv4.conf.all.rp_filter", "2"),
    ("net.ipv4.conf.default.rp_filter", "2"),
    ("net.ipv4.ip_local_port_range", "32768\t60999"),
    ("net.core.somaxconn", "4096"),
    ("net.netfilter.nf_conntrack_max", "262144"),
    ("vm.swappiness", "60"),
    ("vm.overcommit_memory", "0"),
    ("vm.panic_on_oom", "0"),
    ("vm.max_map_count", "65530"),
    ("kernel.panic", "0"),
    ("kernel.panic_on_oops", "0"),
    ("kernel.pid_max", "4194304"),
    ("kernel.keys.root_maxkeys", "1000000"),
    ("kernel.keys.root_maxbytes", "25000000"),
    ("fs.inotify.max_user_watches", "65536"),
    ("fs.inotify.max_user_instances", "128"),
    ("fs.file-max", "9223372036854775807"),
];

/// Sysctls that appear when br_netfilter is loaded, with the kernel's defaults.
const BRIDGE_SYSCTLS: &[(&str, &str)] = &[
    ("net.bridge.bridge-nf-call-arptables", "1"),
    ("net.bridge.bridge-nf-call-ip6tables", "1"),
    ("net.bridge.bridge-nf-call-iptables", "1"),
    ("net.bridge.bridge-nf-filter-pppoe-tagged", "0"),
    ("net.bridge.bridge-nf-filter-vlan-tagged", "0"),
    ("net.bridge.bridge-nf-pass-vlan-input-dev", "0"),
];

/// Swap entries of /etc/fstab that are not commented out and not `noauto`.
pub fn fstab_swaps(fstab: &str) -> Vec<String> {
    fstab
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                return None;
            }
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && f[2] == "swap" && !f.get(3).is_some_and(|o| o.contains("noauto")))
                .then(|| f[0].to_string())
        })
        .collect()
}

/// Modules listed in the modules-load.d directories (as systemd-modules-load reads them).
pub fn modules_to_load() -> Vec<String> {
    let mut out = Vec::new();
    for (_, path) in conf_files(&[
        "/etc/modules-load.d",
        "/run/modules-load.d",
        "/usr/local/lib/modules-load.d",
        "/usr/lib/modules-load.d",
    ]) {
        for l in std::fs::read_to_string(&path).unwrap_or_default().lines() {
            let l = l.trim();
            if !l.is_empty() && !l.starts_with('#') && !l.starts_with(';') {
                out.push(l.to_string());
            }
        }
    }
    // Debian's /etc/modules is read too.
    for l in std::fs::read_to_string("/etc/modules")
        .unwrap_or_default()
        .lines()
    {
        let l = l.trim();
        if !l.is_empty() && !l.starts_with('#') {
            out.push(l.split_whitespace().next().unwrap_or(l).to_string());
        }
    }
    out
}

/// `*.conf` files of `dirs` by basename; an earlier directory shadows a later one with the
/// same basename (systemd's and procps' rule). Sorted by basename.
fn conf_files(dirs: &[&str]) -> Vec<(String, PathBuf)> {
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(d) else {
            continue;
        };
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.ends_with(".conf") && !seen.contains_key(&n) {
                seen.insert(n, e.path());
            }
        }
    }
    seen.into_iter().collect()
}

/// Loads `name` and what it depends on. Returns false for unknown modules.
pub fn load_module(k: &mut KernelState, name: &str) -> bool {
    let name = name.replace('-', "_");
    let Some((_, _, deps)) = MODULES.iter().find(|m| m.0 == name) else {
        return false;
    };
    for d in *deps {
        load_module(k, d);
    }
    if !k.modules.contains(&name) {
        k.modules.push(name.clone());
        if name == "br_netfilter" {
            for (key, v) in BRIDGE_SYSCTLS {
                k.sysctls.insert(key.to_string(), v.to_string());
            }
        }
    }
    true
}

/// The kernel right after power-on, before anything from /etc is applied.
pub fn fresh_kernel() -> KernelState {
    let mut k = KernelState::default();
    for (key, v) in DEFAULT_SYSCTLS {
        k.sysctls.insert(key.to_string(), v.to_string());
    }
    for m in BASE_MODULES {
        load_module(&mut k, m);
    }
    k
}

/// What a boot does to the kernel: swap from fstab, modules, then `sysctl --system`.
pub fn boot_kernel() {
    let mut k = fresh_kernel();
    let fstab = std::fs::read_to_string("/etc/fstab").unwrap_or_default();
    k.swaps = fstab_swaps(&fstab);
    for m in modules_to_load() {
        load_module(&mut k, &m);
    }
    let _ = apply_system(&mut k, &mut std::io::sink(), &mut std::io::sink());
    common::save_kernel(&k);
}

/// util-linux's exit codes of swapoff (sys-utils/swapoff.c).
const SWAPOFF_EX_FAILURE: i32 = 4;
const SWAPOFF_EX_USAGE: i32 = 16;

/// What swapoff decides for its targets, without touching the kernel: the swaps to remove,
/// the messages to print, and the exit code. util-linux's `do_swapoff` turns the kernel's
/// EPERM (checked before anything else, so any target of a non-root caller) into
/// `errx(SWAPOFF_EX_USAGE, "Not superuser.")`, which ends the program at the first target;
/// `swapoff -a` walks /proc/swaps and then the inactive fstab swaps quietly.
fn plan_swapoff(
    active: &[String],
    fstab: &[String],
    targets: &[String],
    all: bool,
    root: bool,
) -> (Vec<String>, Vec<String>, i32) {
    let mut order: Vec<String> = targets.to_vec();
    if all {
        order.extend(active.iter().rev().cloned());
        order.extend(fstab.iter().filter(|f| !active.contains(f)).cloned());
    }
    if !root && !order.is_empty() {
        return (
            vec![],
            vec!["swapoff: Not superuser.".into()],
            SWAPOFF_EX_USAGE,
        );
    }
    let mut removed = Vec::new();
    let mut msgs = Vec::new();
    let mut code = 0;
    for t in targets {
        if active.contains(t) && !removed.contains(t) {
            removed.push(t.clone());
        } else {
            msgs.push(format!("swapoff: {t}: swapoff failed: Invalid argument"));
            code |= SWAPOFF_EX_FAILURE;
        }
    }
    if all {
        for a in active.iter().rev() {
            if !removed.contains(a) {
                removed.push(a.clone());
            }
        }
    }
    (removed, msgs, code)
}

/// `swapoff -a | swapoff DEVICE...`
pub fn swapoff(ctx: &mut Ctx, args: &[String]) -> i32 {
    let mut k = common::kernel();
    let mut all = false;
    let mut targets = Vec::new();
    for a in args {
        match a.as_str() {
            "-a" | "--all" => all = true,
            "-v" | "--verbose" => {}
            s if s.starts_with("--") => {
                eprintln!("swapoff: unrecognized option '{s}'\nTry 'swapoff --help' for more information.");
                return SWAPOFF_EX_USAGE;
            }
            s if s.starts_with('-') && s.len() > 1 => {
                for c in s[1..].chars() {
                    match c {
                        'a' => all = true,
                        'v' => {}
                        _ => {
                            eprintln!("swapoff: invalid option -- '{c}'\nTry 'swapoff --help' for more information.");
                            return SWAPOFF_EX_USAGE;
                        }
                    }
                }
            }
            s => targets.push(s.to_string()),
        }
    }
    if targets.is_empty() && !all {
        eprintln!("swapoff: bad usage\nTry 'swapoff --help' for more information.");
        return SWAPOFF_EX_USAGE;
    }
    let fstab = fstab_swaps(&std::fs::read_to_string("/etc/fstab").unwrap_or_default());
    let (removed, msgs, code) = plan_swapoff(&k.swaps, &fstab, &targets, all, common::is_root());
    for m in &msgs {
        eprintln!("{m}");
    }
    if !removed.is_empty() {
        k.swaps.retain(|s| !removed.contains(s));
        ctx.changed();
        ctx.take_time(0.5);
        common::save_kernel(&k);
    }
    code
}

/// What swapon does with DEVICE (explicit, or from fstab with `-a`), as util-linux's
/// `do_swapon`: it opens the device first (a non-root caller can't open the root-owned
/// 0600 swap file: `cannot open`), then calls swapon(2) (an active one: EBUSY). Every
/// failure returns -1 into the OR-ed status, so swapon exits 255.
fn swapon_one(active: &[String], dev: &str, root: bool) -> Result<(), String> {
    if !root {
        return Err(format!("swapon: cannot open {dev}: Permission denied"));
    }
    if active.iter().any(|a| a == dev) {
        return Err(format!(
            "swapon: {dev}: swapon failed: Device or resource busy"
        ));
    }
    Ok(())
}

/// `swapon -a | --show[=COLS] [--noheadings] [--bytes] | -s | DEVICE`
pub fn swapon(ctx: &mut Ctx, args: &[String]) -> i32 {
    let mut k = common::kernel();
    let mut show: Option<Vec<String>> = None;
    let mut headings = true;
    let mut all = false;
    let mut summary = false;
    let mut devices = Vec::new();
    for a in args {
        match a.as_str() {
            "--show" => show = Some(vec![]),
            s if s.starts_with("--show=") => {
                show = Some(s[7..].split(',').map(|c| c.to_uppercase()).collect())
            }
            "--noheadings" | "-h" if show.is_some() || a == "--noheadings" => headings = false,
            "--bytes" | "--raw" | "-v" | "--verbose" | "-e" | "--ifexists" => {}
            "-a" | "--all" => all = true,
            "-s" | "--summary" => summary = true,
            s if s.starts_with('-') => {
                eprintln!(
                    "swapon: unrecognized option '{s}'\nTry 'swapon --help' for more information."
                );
                return 1;
            }
            s => devices.push(s.to_string()),
        }
    }
    if summary {
        if !k.swaps.is_empty() {
            println!("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority");
            for s in &k.swaps {
                println!("{s:<40}file\t\t4194300\t\t0\t\t-2");
            }
        }
        return 0;
    }
    // Without -a and devices, swapon shows the table, as with --show.
    if show.is_none() && !all && devices.is_empty() {
        show = Some(vec![]);
    }
    if let Some(cols) = show {
        let cols = if cols.is_empty() {
            vec!["NAME", "TYPE", "SIZE", "USED", "PRIO"]
                .into_iter()
                .map(String::from)
                .collect()
        } else {
            cols
        };
        if k.swaps.is_empty() {
            return 0;
        }
        let rows: Vec<Vec<String>> = k
            .swaps
            .iter()
            .map(|s| {
                cols.iter()
                    .map(|c| match c.as_str() {
                        "NAME" => s.clone(),
                        "TYPE" => "file".into(),
                        "SIZE" => "4G".into(),
                        "USED" => "0B".into(),
                        "PRIO" => "-2".into(),
                        "UUID" | "LABEL" => String::new(),
                        _ => String::new(),
                    })
                    .collect()
            })
            .collect();
        let widths: Vec<usize> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| {
                rows.iter()
                    .map(|r| r[i].len())
                    .chain([c.len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let fmt = |r: &[String]| {
            r.iter()
                .enumerate()
                .map(|(i, v)| {
                    if i == 0 {
                        format!("{v:<w$}", w = widths[i])
                    } else {
                        format!("{v:>w$}", w = widths[i])
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        if headings {
            println!("{}", fmt(&cols));
        }
        for r in &rows {
            println!("{}", fmt(r));
        }
        return 0;
    }
    if all {
        // swapon_all skips fstab swaps that are already active.
        devices = fstab_swaps(&std::fs::read_to_string("/etc/fstab").unwrap_or_default())
            .into_iter()
            .filter(|d| !k.swaps.contains(d))
            .collect();
    }
    let mut code = 0;
    for d in &devices {
        match swapon_one(&k.swaps, d, common::is_root()) {
            Ok(()) => {
                k.swaps.push(d.clone());
                ctx.changed();
            }
            Err(msg) => {
                eprintln!("{msg}");
                code = 255;
            }
        }
    }
    if ctx.changed {
        common::save_kernel(&k);
    }
    code
}

fn kernel_release(ctx: &Ctx) -> &'static str {
    match ctx.config.os.as_str() {
        "ubuntu-22.04" => "5.15.0-126-generic",
        "debian-12" => "6.1.0-27-amd64",
        _ => "6.8.0-49-generic",
    }
}

/// `modprobe [-r] [-q] NAME...`
pub fn modprobe(ctx: &mut Ctx, args: &[String]) -> i32 {
    let mut remove = false;
    let mut quiet = false;
    let mut names = Vec::new();
    for a in args {
        match a.as_str() {
            "-r" | "--remove" => remove = true,
            "-q" | "--quiet" => quiet = true,
            "-v" | "--verbose" | "-b" | "--use-blacklist" | "-a" | "--all" => {}
            s if s.starts_with('-') => {}
            s => names.push(s.to_string()),
        }
    }
    if names.is_empty() {
        eprintln!("modprobe: ERROR: missing parameters. See -h.");
        return 1;
    }
    let mut k = common::kernel();
    for n in &names {
        let m = n.replace('-', "_");
        if !MODULES.iter().any(|x| x.0 == m) {
            if !quiet {
                eprintln!(
                    "modprobe: FATAL: Module {n} not found in directory /lib/modules/{}",
                    kernel_release(ctx)
                );
            }
            return 1;
        }
        let loaded = k.modules.contains(&m);
        if remove {
            if !loaded {
                continue;
            }
            if !common::is_root() {
                eprintln!("modprobe: ERROR: could not remove '{m}': Operation not permitted");
                return 1;
            }
            k.modules.retain(|x| *x != m);
            if m == "br_netfilter" {
                k.sysctls.retain(|key, _| !key.starts_with("net.bridge."));
            }
            ctx.changed();
        } else {
            if loaded {
                continue;
            }
            if !common::is_root() {
                eprintln!("modprobe: ERROR: could not insert '{m}': Operation not permitted");
                return 1;
            }
            load_module(&mut k, &m);
            ctx.changed();
        }
    }
    if ctx.changed {
        common::save_kernel(&k);
    }
    0
}

/// `lsmod`: the real column layout.
pub fn lsmod(_ctx: &mut Ctx, _args: &[String]) -> i32 {
    let k = common::kernel();
    println!("Module                  Size  Used by");
    for m in k.modules.iter().rev() {
        let size = MODULES
            .iter()
            .find(|x| x.0 == m)
            .map(|x| x.1)
            .unwrap_or(16384);
        let users: Vec<&str> = k
            .modules
            .iter()
            .filter(|o| {
                MODULES
                    .iter()
                    .find(|x| x.0 == o.as_str())
                    .is_some_and(|x| x.2.contains(&m.as_str()))
            })
            .map(|s| s.as_str())
            .collect();
        let used = if users.is_empty() {
            "0".to_string()
        } else {
            format!("{} {}", users.len(), users.join(","))
        };
        println!("{m:<19} {size:>8}  {used}");
    }
    0
}

fn proc_path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

/// Whether the key exists in the simulated /proc/sys.
fn key_exists(k: &KernelState, key: &str) -> bool {
    if key.starts_with("net.bridge.") {
        return k.sysctls.contains_key(key);
    }
    k.sysctls.contains_key(key)
        || key.starts_with("net.")
        || key.starts_with("kernel.")
        || key.starts_with("vm.")
        || key.starts_with("fs.")
        || key.starts_with("user.")
        || key.starts_with("dev.")
        || key.starts_with("debug.")
}

/// Keys may be written with slashes (`net/ipv4/ip_forward`).
fn norm_key(key: &str) -> String {
    key.trim().replace('/', ".")
}

fn norm_value(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join("\t")
}

/// Applies one `key = value` line. Returns the line sysctl prints, or the error.
fn apply_line(k: &mut KernelState, line: &str) -> Option<Result<String, String>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
        return None;
    }
    let (ignore, line) = match line.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    let (key, value) = line.split_once('=')?;
    let key = norm_key(key);
    if key.contains('*') || key.contains('?') {
        // Globs (e.g. net.ipv4.conf.*.rp_filter) are not expanded by the simulation.
        return None;
    }
    let value = value.trim();
    if !key_exists(k, &key) {
        if ignore {
            return None;
        }
        return Some(Err(format!(
            "sysctl: cannot stat {}: No such file or directory",
            proc_path(&key)
        )));
    }
    k.sysctls.insert(key.clone(), norm_value(value));
    set_netns_sysctl(&key, value);
    Some(Ok(format!("{key} = {value}")))
}

/// Writes a per-network-namespace key (net.ipv4.*, net.ipv6.*) to the host's real
/// /proc/sys too, as the real sysctl does: each host has its own network namespace, and
/// the real programs (kubeadm's preflight reads /proc/sys/net/ipv4/ip_forward) read the
/// kernel, not the simulation. Only inside a testbed host (its control directory
/// exists), never in the machine's own namespace (unit tests).
fn set_netns_sysctl(key: &str, value: &str) {
    let in_host = common::ctl_path(testbed::layout::ctl::HOST_CONFIG).exists();
    if in_host && (key.starts_with("net.ipv4.") || key.starts_with("net.ipv6.")) {
        let path = proc_path(key);
        if Path::new(&path).exists() {
            let _ = std::fs::write(path, format!("{value}\n"));
        }
    }
}

/// `sysctl --system`: every sysctl.d file in procps' order, then /etc/sysctl.conf.
/// Writes the "* Applying" lines and values to `out`, errors to `err`; returns whether
/// any key failed.
fn apply_system(
    k: &mut KernelState,
    out: &mut dyn std::io::Write,
    err: &mut dyn std::io::Write,
) -> bool {
    let mut files = conf_files(&[
        "/etc/sysctl.d",
        "/run/sysctl.d",
        "/usr/local/lib/sysctl.d",
        "/usr/lib/sysctl.d",
        "/lib/sysctl.d",
    ]);
    if Path::new("/etc/sysctl.conf").exists() {
        files.push(("sysctl.conf".into(), PathBuf::from("/etc/sysctl.conf")));
    }
    let mut failed = false;
    for (_, path) in files {
        let _ = writeln!(out, "* Applying {} ...", path.display());
        for line in std::fs::read_to_string(&path).unwrap_or_default().lines() {
            match apply_line(k, line) {
                Some(Ok(l)) => {
                    let _ = writeln!(out, "{l}");
                }
                Some(Err(e)) => {
                    let _ = writeln!(err, "{e}");
                    failed = true;
                }
                None => {}
            }
        }
    }
    failed
}

/// `sysctl [-n] [-q] [-w] [--system] [-p [FILE]] [-a] KEY[=VALUE]...`
pub fn sysctl(ctx: &mut Ctx, args: &[String]) -> i32 {
    let mut k = common::kernel();
    let before = k.clone();
    let mut names_only = false;
    let mut values_only = false;
    let mut quiet = false;
    let mut write = false;
    let mut items = Vec::new();
    let mut system = false;
    let mut load: Option<Option<String>> = None;
    let mut all = false;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "-n" | "--values" => values_only = true,
            "-N" | "--names" => names_only = true,
            "-q" | "--quiet" => quiet = true,
            "-w" | "--write" => write = true,
            "-e" | "--ignore" => {}
            "--system" => system = true,
            "-a" | "-A" | "-X" | "--all" => all = true,
            "-p" | "--load" => {
                let f = args
                    .get(i + 1)
                    .filter(|n| !n.starts_with('-') && !n.contains('='))
                    .cloned();
                if f.is_some() {
                    i += 1;
                }
                load = Some(f);
            }
            s if s.starts_with("--load=") => load = Some(Some(s[7..].to_string())),
            s if s.starts_with("-p") && s.len() > 2 => load = Some(Some(s[2..].to_string())),
            s if s.starts_with('-') => {
                eprintln!("sysctl: invalid option -- '{}'", s.trim_start_matches('-'));
                return 255;
            }
            s => items.push(s.to_string()),
        }
        i += 1;
    }
    let mutating = system || load.is_some() || write || items.iter().any(|s| s.contains('='));
    if mutating && !common::is_root() {
        let key = items
            .first()
            .map(|s| norm_key(s.split('=').next().unwrap_or(s)))
            .unwrap_or_else(|| "net.ipv4.ip_forward".into());
        eprintln!("sysctl: permission denied on key \"{key}\"");
        return 255;
    }
    let mut code = 0;
    if system {
        let mut out = std::io::stdout();
        let mut sink = std::io::sink();
        let out: &mut dyn std::io::Write = if quiet { &mut sink } else { &mut out };
        if apply_system(&mut k, out, &mut std::io::stderr()) {
            code = 255;
        }
    } else if let Some(f) = load {
        let path = f.unwrap_or_else(|| "/etc/sysctl.conf".into());
        let Ok(text) = std::fs::read_to_string(&path) else {
            eprintln!("sysctl: cannot open \"{path}\": No such file or directory");
            return 255;
        };
        for line in text.lines() {
            match apply_line(&mut k, line) {
                Some(Ok(l)) if !quiet => println!("{l}"),
                Some(Err(e)) => {
                    eprintln!("{e}");
                    code = 255;
                }
                _ => {}
            }
        }
    } else if all {
        for (key, v) in &k.sysctls {
            print_kv(key, v, values_only, names_only);
        }
    } else {
        if items.is_empty() {
            eprintln!("sysctl: no variables specified\nTry `sysctl --help' for more information.");
            return 255;
        }
        for it in &items {
            if it.contains('=') {
                match apply_line(&mut k, it) {
                    Some(Ok(_)) if !quiet => {
                        let key = norm_key(it.split('=').next().unwrap());
                        let v = k.sysctls.get(&key).cloned().unwrap_or_default();
                        print_kv(&key, &v, values_only, names_only);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        eprintln!("{e}");
                        code = 255;
                    }
                    None => {}
                }
            } else if write {
                eprintln!("sysctl: \"{it}\" must be of the form name=value");
                code = 255;
            } else {
                let key = norm_key(it);
                match k.sysctls.get(&key) {
                    Some(v) => print_kv(&key, v, values_only, names_only),
                    None => {
                        eprintln!(
                            "sysctl: cannot stat {}: No such file or directory",
                            proc_path(&key)
                        );
                        code = 255;
                    }
                }
            }
        }
    }
    if k != before {
        ctx.changed();
        common::save_kernel(&k);
    }
    code
}

fn print_kv(key: &str, v: &str, values_only: bool, names_only: bool) {
    if values_only {
        println!("{v}");
    } else if names_only {
        println!("{key}");
    } else {
        println!("{key} = {v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fstab_swap_lines() {
        let f =
            "UUID=x / ext4 defaults 0 1\n/swap.img\tnone\tswap\tsw\t0\t0\n#/old none swap sw 0 0\n";
        assert_eq!(fstab_swaps(f), vec!["/swap.img"]);
        let commented = "#/swap.img\tnone\tswap\tsw\t0\t0\n";
        assert!(fstab_swaps(commented).is_empty());
    }

    fn v(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn swapoff_as_non_root_is_not_superuser() {
        let active = v(&["/swap.img"]);
        let fstab = v(&["/swap.img"]);
        let (rm, msgs, code) = plan_swapoff(&active, &fstab, &[], true, false);
        assert!(rm.is_empty());
        assert_eq!(msgs, v(&["swapoff: Not superuser."]));
        assert_eq!(code, 16);
        // Even with nothing active, -a tries the fstab swaps and hits EPERM.
        let (_, msgs, code) = plan_swapoff(&[], &fstab, &[], true, false);
        assert_eq!((msgs.len(), code), (1, 16));
        let (_, msgs, code) = plan_swapoff(&active, &fstab, &v(&["/swap.img"]), false, false);
        assert_eq!((msgs[0].as_str(), code), ("swapoff: Not superuser.", 16));
        // No swap anywhere: nothing to call swapoff(2) on.
        assert_eq!(
            plan_swapoff(&[], &[], &[], true, false),
            (vec![], vec![], 0)
        );
    }

    #[test]
    fn swapoff_as_root() {
        let active = v(&["/swap.img"]);
        let (rm, msgs, code) = plan_swapoff(&active, &active, &[], true, true);
        assert_eq!((rm, msgs, code), (active.clone(), vec![], 0));
        // swapoff -a twice is quiet.
        assert_eq!(
            plan_swapoff(&[], &active, &[], true, true),
            (vec![], vec![], 0)
        );
        let (_, msgs, code) = plan_swapoff(&[], &[], &v(&["/swap.img"]), false, true);
        assert_eq!(
            msgs,
            v(&["swapoff: /swap.img: swapoff failed: Invalid argument"])
        );
        assert_eq!(code, 4);
    }

    #[test]
    fn swapon_failures() {
        let active = v(&["/swap.img"]);
        assert_eq!(
            swapon_one(&[], "/swap.img", false),
            Err("swapon: cannot open /swap.img: Permission denied".into())
        );
        assert_eq!(
            swapon_one(&active, "/swap.img", true),
            Err("swapon: /swap.img: swapon failed: Device or resource busy".into())
        );
        assert_eq!(swapon_one(&[], "/swap.img", true), Ok(()));
    }

    #[test]
    fn bridge_keys_need_br_netfilter() {
        let mut k = fresh_kernel();
        let r = apply_line(&mut k, "net.bridge.bridge-nf-call-iptables = 1");
        assert_eq!(
            r,
            Some(Err("sysctl: cannot stat /proc/sys/net/bridge/bridge-nf-call-iptables: No such file or directory".into()))
        );
        assert!(load_module(&mut k, "br_netfilter"));
        assert!(k.modules.contains(&"bridge".to_string()));
        let r = apply_line(&mut k, "net.bridge.bridge-nf-call-iptables  = 1");
        assert_eq!(r, Some(Ok("net.bridge.bridge-nf-call-iptables = 1".into())));
        assert_eq!(apply_line(&mut k, "-net.bridge.nothing = 1"), None);
    }
}
