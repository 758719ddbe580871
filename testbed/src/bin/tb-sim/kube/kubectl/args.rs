//! Flag parsing the way kubectl's cobra does it: flags anywhere, `--f=v`, `--f v`,
//! `-n v`, `-nv`, `-oyaml`, repeated flags, `--` ends flags.

use std::collections::BTreeMap;

/// Flags that take a value: (canonical name, short letter).
const VALUE_FLAGS: &[(&str, Option<char>)] = &[
    ("namespace", Some('n')),
    ("output", Some('o')),
    ("filename", Some('f')),
    ("selector", Some('l')),
    ("label-columns", Some('L')),
    ("kubeconfig", None),
    ("timeout", None),
    ("for", None),
    ("replicas", None),
    ("image", None),
    ("port", None),
    ("grace-period", None),
    ("field-manager", None),
    ("context", None),
    ("cluster", None),
    ("user", None),
    ("pod-selector", None),
    ("skip-wait-for-delete-timeout", None),
    ("request-timeout", None),
    ("dry-run", None),
    ("validate", None),
    ("field-selector", None),
    ("current-replicas", None),
    ("cascade", None),
    ("chunk-size", None),
    ("sort-by", None),
    ("min-available", None),
    ("max-unavailable", None),
    ("verbs", None),
];

/// Flags without a value (`--flag` or `--flag=true|false`).
const BOOL_FLAGS: &[(&str, Option<char>)] = &[
    ("all-namespaces", Some('A')),
    ("all", None),
    ("overwrite", None),
    ("no-headers", None),
    ("ignore-daemonsets", None),
    ("delete-emptydir-data", None),
    ("delete-local-data", None),
    ("force", None),
    ("server-side", None),
    ("force-conflicts", None),
    ("client", None),
    ("show-labels", None),
    ("watch", Some('w')),
    ("wait", None),
    ("recursive", Some('R')),
    ("disable-eviction", None),
    ("ignore-not-found", None),
    ("insecure-skip-tls-verify", None),
    ("help", Some('h')),
];

#[derive(Debug, Default, Clone)]
pub struct Args {
    /// Positional arguments (the subcommand first).
    pub pos: Vec<String>,
    values: BTreeMap<String, Vec<String>>,
    bools: BTreeMap<String, bool>,
}

impl Args {
    pub fn parse(argv: &[String]) -> Result<Args, String> {
        let mut a = Args::default();
        let mut it = argv.iter().peekable();
        let mut only_pos = false;
        let unknown = |a: &Args, f: &str| {
            let cmd = a
                .pos
                .first()
                .map(|c| format!("kubectl {c}"))
                .unwrap_or("kubectl".into());
            format!("error: unknown flag: {f}\nSee '{cmd} --help' for usage.")
        };
        while let Some(arg) = it.next() {
            if only_pos || arg == "-" || !arg.starts_with('-') {
                a.pos.push(arg.clone());
                continue;
            }
            if arg == "--" {
                only_pos = true;
                continue;
            }
            if let Some(long) = arg.strip_prefix("--") {
                let (name, inline) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (long, None),
                };
                if VALUE_FLAGS.iter().any(|(n, _)| *n == name) {
                    let v = match inline {
                        Some(v) => v,
                        None if name == "dry-run" => "client".into(),
                        None => match it.next() {
                            Some(v) => v.clone(),
                            None => return Err(format!("error: flag needs an argument: --{name}")),
                        },
                    };
                    a.values.entry(name.to_string()).or_default().push(v);
                } else if BOOL_FLAGS.iter().any(|(n, _)| *n == name) {
                    let v = match inline.as_deref() {
                        None | Some("true") => true,
                        Some("false") => false,
                        Some(o) => {
                            return Err(format!(
                                "error: invalid argument \"{o}\" for \"--{name}\" flag: strconv.ParseBool: parsing \"{o}\": invalid syntax"
                            ))
                        }
                    };
                    a.bools.insert(name.to_string(), v);
                } else {
                    return Err(unknown(&a, &format!("--{name}")));
                }
                continue;
            }
            // Short flags: -A, -n ns, -nns, -oyaml, -o=json.
            let body = &arg[1..];
            let c = body.chars().next().unwrap();
            let rest = &body[c.len_utf8()..];
            if let Some((name, _)) = VALUE_FLAGS.iter().find(|(_, s)| *s == Some(c)) {
                let v = if !rest.is_empty() {
                    rest.trim_start_matches('=').to_string()
                } else {
                    match it.next() {
                        Some(v) => v.clone(),
                        None => {
                            return Err(format!("error: flag needs an argument: '{c}' in -{c}"))
                        }
                    }
                };
                a.values.entry(name.to_string()).or_default().push(v);
            } else if let Some((name, _)) = BOOL_FLAGS.iter().find(|(_, s)| *s == Some(c)) {
                a.bools.insert(name.to_string(), true);
                if !rest.is_empty() {
                    return Err(format!(
                        "error: unknown shorthand flag: '{}' in {arg}",
                        rest.chars().next().unwrap()
                    ));
                }
            } else {
                return Err(format!(
                    "error: unknown shorthand flag: '{c}' in {arg}\nSee '{} --help' for usage.",
                    a.pos
                        .first()
                        .map(|c| format!("kubectl {c}"))
                        .unwrap_or("kubectl".into())
                ));
            }
        }
        Ok(a)
    }

    /// The last value of a value flag.
    pub fn value(&self, name: &str) -> Option<String> {
        self.values.get(name).and_then(|v| v.last().cloned())
    }

    /// All values of a repeatable flag (comma lists are split for -L).
    pub fn values(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }

    pub fn flag(&self, name: &str) -> bool {
        self.bools.get(name).copied().unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Args {
        Args::parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn cobra_like() {
        let a = p("get nodes -oyaml -n=kube-system --no-headers -L type -L a,b");
        assert_eq!(a.pos, vec!["get", "nodes"]);
        assert_eq!(a.value("output").unwrap(), "yaml");
        assert_eq!(a.value("namespace").unwrap(), "kube-system");
        assert!(a.flag("no-headers"));
        assert_eq!(a.values("label-columns"), vec!["type", "a,b"]);
        let a = p("taint nodes --all node-role.kubernetes.io/control-plane- --overwrite=false");
        assert!(a.flag("all") && !a.flag("overwrite"));
        assert_eq!(a.pos[2], "node-role.kubernetes.io/control-plane-");
        let e = Args::parse(&["get".into(), "--bogus".into()]).unwrap_err();
        assert_eq!(
            e,
            "error: unknown flag: --bogus\nSee 'kubectl get --help' for usage."
        );
    }
}
