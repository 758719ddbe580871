//! `hostname` and `iptables`/`ip6tables` (a small rules model kept under /run, so a
//! reboot empties it like the real kernel's tables).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::common::{self, Ctx};

/// `hostname [-s|-f|-I|-i] [NAME]`.
pub fn hostname(ctx: &mut Ctx, args: &[String]) -> i32 {
    let name = common::hostname();
    match args.first().map(|s| s.as_str()) {
        None | Some("-s") | Some("--short") | Some("-f") | Some("--fqdn") | Some("--long") => {
            println!("{}", name.split('.').next().unwrap_or(&name));
            0
        }
        Some("-I") | Some("--all-ip-addresses") => {
            println!("{} ", ctx.config.address);
            0
        }
        Some("-i") | Some("--ip-address") => {
            println!("{}", ctx.config.address);
            0
        }
        Some("-b") | Some("--boot") if args.len() == 1 => 0,
        Some(s) if s.starts_with('-') && s != "-b" && s != "--boot" => {
            eprintln!(
                "hostname: invalid option -- '{}'",
                s.trim_start_matches('-')
            );
            eprintln!(
                "Usage: hostname [-b] {{hostname|-F file}}         set host name (from file)"
            );
            1
        }
        Some(_) => {
            let new = args.last().unwrap();
            if !common::is_root() {
                eprintln!("hostname: you must be root to change the host name");
                return 1;
            }
            if *new == name {
                return 0;
            }
            let r = unsafe { libc::sethostname(new.as_ptr() as *const libc::c_char, new.len()) };
            if r != 0 {
                eprintln!("hostname: {}", std::io::Error::last_os_error());
                return 1;
            }
            ctx.changed();
            0
        }
    }
}

/// One address family's tables: table -> chain -> (policy for built-ins, rules).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Tables {
    pub tables: BTreeMap<String, BTreeMap<String, Chain>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Chain {
    /// Some for built-in chains.
    pub policy: Option<String>,
    /// Rule specs as `-S` prints them after `-A CHAIN `.
    pub rules: Vec<String>,
}

fn builtins(table: &str) -> &'static [&'static str] {
    match table {
        "filter" => &["INPUT", "FORWARD", "OUTPUT"],
        "nat" => &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
        "mangle" => &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
        "raw" => &["PREROUTING", "OUTPUT"],
        "security" => &["INPUT", "FORWARD", "OUTPUT"],
        _ => &[],
    }
}

fn state_path(v6: bool) -> PathBuf {
    PathBuf::from(if v6 {
        "/run/testbed/ip6tables.json"
    } else {
        "/run/testbed/iptables.json"
    })
}

pub fn load(v6: bool) -> Tables {
    std::fs::read_to_string(state_path(v6))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

fn save(v6: bool, t: &Tables) {
    let _ = common::write_atomic(
        &state_path(v6),
        serde_json::to_string_pretty(t).unwrap().as_bytes(),
    );
}

fn table_mut<'a>(t: &'a mut Tables, name: &str) -> &'a mut BTreeMap<String, Chain> {
    let tab = t.tables.entry(name.to_string()).or_default();
    for b in builtins(name) {
        tab.entry(b.to_string()).or_insert_with(|| Chain {
            policy: Some("ACCEPT".into()),
            rules: vec![],
        });
    }
    tab
}

fn ipt_version(ctx: &Ctx) -> &'static str {
    match ctx.config.os.as_str() {
        "ubuntu-22.04" => "1.8.7",
        "debian-12" => "1.8.9",
        _ => "1.8.10",
    }
}

/// `iptables`/`ip6tables`: -t, -F, -X, -Z, -N, -A, -D, -P, -S, -L [-n] [-v], --version.
pub fn iptables(ctx: &mut Ctx, args: &[String]) -> i32 {
    let v6 = ctx.name == "ip6tables";
    let ver = ipt_version(ctx);
    let prog = ctx.name.clone();
    if args.iter().any(|a| a == "--version" || a == "-V") {
        println!("{prog} v{ver} (nf_tables)");
        return 0;
    }
    if !common::is_root() {
        eprintln!("{prog} v{ver} (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)\n");
        return 4;
    }
    let mut table = "filter".to_string();
    let mut cmd: Option<(String, Option<String>)> = None;
    let mut rest: Vec<String> = Vec::new();
    let mut numeric = false;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "-t" | "--table" => {
                i += 1;
                table = args.get(i).cloned().unwrap_or_default();
            }
            "-F" | "--flush" | "-X" | "--delete-chain" | "-Z" | "--zero" | "-N" | "--new-chain"
            | "-S" | "--list-rules" | "-L" | "--list" | "-A" | "--append" | "-D" | "--delete"
            | "-P" | "--policy" | "-C" | "--check" | "-I" | "--insert" => {
                let chain = args.get(i + 1).filter(|c| !c.starts_with('-')).cloned();
                if chain.is_some() {
                    i += 1;
                }
                let short = match a {
                    "--flush" => "-F",
                    "--delete-chain" => "-X",
                    "--zero" => "-Z",
                    "--new-chain" => "-N",
                    "--list-rules" => "-S",
                    "--list" => "-L",
                    "--append" => "-A",
                    "--delete" => "-D",
                    "--policy" => "-P",
                    "--check" => "-C",
                    "--insert" => "-I",
                    s => s,
                };
                cmd = Some((short.to_string(), chain));
            }
            "-n" | "--numeric" => numeric = true,
            "-nL" | "-Ln" => {
                numeric = true;
                let chain = args.get(i + 1).filter(|c| !c.starts_with('-')).cloned();
                if chain.is_some() {
                    i += 1;
                }
                cmd = Some(("-L".to_string(), chain));
            }
            "-v" | "--verbose" | "-w" | "--wait" | "--line-numbers" => {}
            _ => rest.push(args[i].clone()),
        }
        i += 1;
    }
    if builtins(&table).is_empty() {
        eprintln!("{prog} v{ver} (nf_tables): table '{table}' does not exist\nPerhaps iptables or your kernel needs to be upgraded.");
        return 3;
    }
    let Some((op, chain)) = cmd else {
        eprintln!("{prog} v{ver} (nf_tables): no command specified\nTry `{prog} -h' or '{prog} --help' for more information.");
        return 2;
    };
    let mut t = load(v6);
    let before = t.clone();
    let tab = table_mut(&mut t, &table);
    let no_chain = |c: &str| {
        eprintln!("{prog}: No chain/target/match by that name.");
        let _ = c;
        1
    };
    let code = match op.as_str() {
        "-F" | "-Z" => match chain {
            Some(c) => match tab.get_mut(&c) {
                Some(ch) => {
                    if op == "-F" {
                        ch.rules.clear();
                    }
                    0
                }
                None => no_chain(&c),
            },
            None => {
                if op == "-F" {
                    for ch in tab.values_mut() {
                        ch.rules.clear();
                    }
                }
                0
            }
        },
        "-X" => match chain {
            Some(c) => {
                if builtins(&table).contains(&c.as_str()) {
                    eprintln!("{prog} v{ver} (nf_tables): Cannot delete built-in chain");
                    2
                } else if tab.remove(&c).is_none() {
                    no_chain(&c)
                } else {
                    0
                }
            }
            None => {
                tab.retain(|_, ch| ch.policy.is_some());
                0
            }
        },
        "-N" => match chain {
            Some(c) if tab.contains_key(&c) => {
                eprintln!("{prog}: Chain already exists.");
                1
            }
            Some(c) => {
                tab.insert(c, Chain::default());
                0
            }
            None => 2,
        },
        "-A" | "-I" | "-D" | "-C" => {
            match chain {
                Some(c) => {
                    let spec = rule_spec(&rest);
                    match tab.get_mut(&c) {
                        None => no_chain(&c),
                        Some(ch) => match op.as_str() {
                            "-A" => {
                                ch.rules.push(spec);
                                0
                            }
                            "-I" => {
                                ch.rules.insert(0, spec);
                                0
                            }
                            "-C" => {
                                if ch.rules.contains(&spec) {
                                    0
                                } else {
                                    eprintln!("{prog}: Bad rule (does a matching rule exist in that chain?).");
                                    1
                                }
                            }
                            _ => match ch.rules.iter().position(|r| *r == spec) {
                                Some(p) => {
                                    ch.rules.remove(p);
                                    0
                                }
                                None => {
                                    eprintln!("{prog}: Bad rule (does a matching rule exist in that chain?).");
                                    1
                                }
                            },
                        },
                    }
                }
                None => 2,
            }
        }
        "-P" => match (chain, rest.first()) {
            (Some(c), Some(p)) => match tab.get_mut(&c) {
                Some(ch) if ch.policy.is_some() => {
                    ch.policy = Some(p.clone());
                    0
                }
                _ => {
                    eprintln!("{prog} v{ver} (nf_tables): Bad built-in chain name");
                    2
                }
            },
            _ => 2,
        },
        "-S" => {
            let order = chain_order(&table, tab);
            for name in order
                .iter()
                .filter(|n| chain.as_ref().is_none_or(|c| c == *n))
            {
                let ch = &tab[name];
                match &ch.policy {
                    Some(p) => println!("-P {name} {p}"),
                    None => println!("-N {name}"),
                }
            }
            for name in order
                .iter()
                .filter(|n| chain.as_ref().is_none_or(|c| c == *n))
            {
                for r in &tab[name].rules {
                    println!("-A {name} {r}");
                }
            }
            0
        }
        "-L" => {
            let order = chain_order(&table, tab);
            let mut first = true;
            for name in order
                .iter()
                .filter(|n| chain.as_ref().is_none_or(|c| c == *n))
            {
                if !first {
                    println!();
                }
                first = false;
                let ch = &tab[name];
                match &ch.policy {
                    Some(p) => println!("Chain {name} (policy {p})"),
                    None => {
                        let refs = tab
                            .values()
                            .flat_map(|c| c.rules.iter())
                            .filter(|r| r.ends_with(&format!("-j {name}")))
                            .count();
                        println!("Chain {name} ({refs} references)");
                    }
                }
                println!("target     prot opt source               destination         ");
                let any = if numeric {
                    if v6 {
                        "::/0"
                    } else {
                        "0.0.0.0/0"
                    }
                } else {
                    "anywhere"
                };
                for r in &ch.rules {
                    let target = r.split("-j ").nth(1).unwrap_or("").trim();
                    println!("{target:<10} all  --  {any:<20} {any:<20}");
                }
            }
            0
        }
        _ => 2,
    };
    if t != before {
        ctx.changed();
        save(v6, &t);
    }
    code
}

/// A rule's arguments as `-S` prints them: the string values of the comment match and
/// the LOG/NFLOG prefixes through xtables_save_string (iptables libxtables/xtables.c;
/// libxt_comment.c comment_save, libxt_LOG.c, libxt_NFLOG.c), every other argument as
/// given. xtables_save_string leaves a value of only `_-0-9a-zA-Z` bare and otherwise
/// puts it in double quotes with `"`, `\` and `'` backslash-escaped; `-D` and `-C`
/// compare in this form, so a rule matches whatever quoting its arguments came in.
fn rule_spec(args: &[String]) -> String {
    let mut out: Vec<String> = Vec::with_capacity(args.len());
    for (i, a) in args.iter().enumerate() {
        let saved_string = i > 0
            && matches!(
                args[i - 1].as_str(),
                "--comment" | "--log-prefix" | "--nflog-prefix"
            );
        out.push(if saved_string {
            save_string(a)
        } else {
            a.clone()
        });
    }
    out.join(" ")
}

/// xtables_save_string (without its leading space).
fn save_string(value: &str) -> String {
    let bare = |c: char| c == '_' || c == '-' || c.is_ascii_alphanumeric();
    if !value.is_empty() && value.chars().all(bare) {
        return value.to_string();
    }
    let mut out = String::from("\"");
    for c in value.chars() {
        if matches!(c, '"' | '\\' | '\'') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn chain_order(table: &str, tab: &BTreeMap<String, Chain>) -> Vec<String> {
    let mut order: Vec<String> = builtins(table).iter().map(|s| s.to_string()).collect();
    let users: Vec<String> = tab.keys().filter(|k| !order.contains(k)).cloned().collect();
    order.extend(users);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `rule_spec` of the words of `before`, then `comment` as one argument, then `after`.
    fn spec(before: &str, comment: &str, after: &str) -> String {
        let mut args: Vec<String> = before.split(' ').map(String::from).collect();
        args.push(comment.to_string());
        args.extend(after.split(' ').map(String::from));
        rule_spec(&args)
    }

    #[test]
    fn rules_list_with_iptables_own_quoting_of_comments() {
        // What a real node's `iptables -S` prints for Felix's and kube-proxy's rules.
        let comment = "-m comment --comment";
        assert_eq!(
            spec(comment, "cali:mp77cMpurHhyjLrM", "-j MARK"),
            "-m comment --comment \"cali:mp77cMpurHhyjLrM\" -j MARK"
        );
        assert_eq!(
            spec(comment, "kubernetes service portals", "-j KUBE-SERVICES"),
            "-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"
        );
        assert_eq!(save_string("kube-proxy_1"), "kube-proxy_1");
        assert_eq!(save_string(""), "\"\"");
        assert_eq!(save_string(r#"it's "x" \ y"#), r#""it\'s \"x\" \\ y""#);
        // Other arguments are printed as given.
        assert_eq!(
            spec("-s 10.0.0.0/8 --log-prefix", "in: ", "-j LOG"),
            "-s 10.0.0.0/8 --log-prefix \"in: \" -j LOG"
        );
    }
}
