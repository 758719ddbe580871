//! Playbooks: the host-level steps, as data.
//!
//! A playbook (playbooks/*.yaml, embedded by [`crate::embedded`]) is a named list of
//! steps. Each step says *why* it is needed (`when`, a minijinja expression over the host's
//! facts, the host, the cluster and the steps already planned) and *what* runs: a shell
//! script (`run`) or a file written from a template (`file`). This module loads and checks
//! them, decides whether a step is needed, and renders a step to the
//! [`RemoteCommand`] that runs it. The format is documented in docs/playbooks.md.
//!
//! Rendering is strict: an undefined variable is an error, never an empty string, and
//! every value interpolated into a script must go through the `quote` filter (shlex), so a
//! label or path with a quote in it cannot break out of its word.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};

use crate::embedded;
use crate::ssh::RemoteCommand;

/// Who decides when a playbook's steps run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Planned per host from its facts alone ([`crate::plan::plan_host`]), in the order
    /// of [`embedded::PLAYBOOKS`].
    Host,
    /// Needs the cluster's state too (who is initialized, who joined, what runs in the
    /// cluster): the phases choose the host and pass extra variables, then use
    /// [`crate::plan::plan_playbook`] or [`render_step`].
    Cluster,
}

/// One playbook file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    pub name: String,
    pub scope: Scope,
    /// One line for humans, e.g. "swap, kernel modules and sysctls".
    pub description: String,
    pub steps: Vec<Step>,
}

/// One step of a playbook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Unique across all playbooks (so `planned` can name it).
    pub name: String,
    /// What it does, for humans (a template).
    pub description: String,
    /// Expression: the step is needed when it is true. Required for `run` steps. For
    /// `file` steps it is an extra guard: needed when it is true (default) AND the file's
    /// current content differs from the rendered template.
    #[serde(default)]
    pub when: Option<String>,
    /// Template: why the step is needed, naming the fact that differs. Required for `run`
    /// steps; `file` steps describe the difference themselves.
    #[serde(default)]
    pub reason: Option<String>,
    /// Template: a POSIX shell script.
    #[serde(default)]
    pub run: Option<String>,
    /// A file written from a template.
    #[serde(default)]
    pub file: Option<FileSpec>,
    /// Template for `run` steps: bytes fed to the script's standard input (e.g. a
    /// manifest for `kubectl apply -f -`). Nothing is fed when it renders empty.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Run as root (default true).
    #[serde(default = "default_root")]
    pub root: bool,
    /// Dotted names of context values that are secret (e.g. `join.token`): their values
    /// go to [`RemoteCommand::secrets`] so they are redacted everywhere. Missing or none
    /// values are skipped; lists contribute each element.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// The command's standard output contains secrets nobody knows in advance (e.g. a
    /// fresh join token): callers must not log it verbatim.
    #[serde(default)]
    pub output_secret: bool,
    /// The step disrupts the node's workloads (it restarts or replaces the kubelet): the
    /// node must be drained before it runs and uncordoned once it is Ready again.
    #[serde(default)]
    pub drain: bool,
    /// The step belongs to the node's upgrade window: from the first such step (or its
    /// drain) on, a node's steps run while it counts against `--max-unavailable`.
    #[serde(default)]
    pub window: bool,
}

fn default_root() -> bool {
    true
}

/// A file a step writes: `install -D -m MODE -o OWNER -g GROUP /dev/stdin PATH`, the
/// content on standard input (so it never appears in a script or log line).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Absolute and literal (no template): fact gathering fetches every file path of every
    /// playbook to compare contents, so it must be known before any context exists.
    pub path: String,
    /// Name of a template in [`embedded::TEMPLATES`].
    pub template: String,
    /// Octal mode, default "0644".
    #[serde(default = "default_mode")]
    pub mode: String,
    /// `user:group`, default "root:root".
    #[serde(default = "default_owner")]
    pub owner: String,
}

fn default_mode() -> String {
    "0644".to_string()
}

fn default_owner() -> String {
    "root:root".to_string()
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PlaybookError {
    #[error("playbook {name}: invalid YAML: {source}")]
    Parse {
        name: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("playbook {playbook}: {message}")]
    Invalid { playbook: String, message: String },
    #[error("template {name}: {source}")]
    Template {
        name: String,
        #[source]
        source: minijinja::Error,
    },
    #[error("there is no playbook named {name:?} (playbooks: {known})")]
    UnknownPlaybook { name: String, known: String },
    #[error("playbook {playbook} has no step named {step:?} (steps: {known})")]
    UnknownStep {
        playbook: String,
        step: String,
        known: String,
    },
    #[error("playbook {playbook}, step {step}: cannot evaluate {what}: {source}")]
    Render {
        playbook: String,
        step: String,
        what: &'static str,
        #[source]
        source: minijinja::Error,
    },
}

/// The loaded, checked playbooks plus the template environment they render in.
pub struct Catalog {
    env: Environment<'static>,
    playbooks: Vec<Playbook>,
}

/// The embedded playbooks. They are compile-time data checked by the unit tests, so an
/// invalid one is a bug in this build, not a user error: it panics with the reason.
pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        Catalog::load(embedded::PLAYBOOKS, embedded::TEMPLATES)
            .unwrap_or_else(|e| panic!("the embedded playbooks are invalid (a bug): {e}"))
    })
}

/// Renders one step of an embedded playbook, without asking whether it is needed.
/// `ctx` holds `host`, `cluster`, `facts`, `planned` and the playbook's inputs; build it
/// with [`crate::plan::Vars`].
pub fn render_step<S: Serialize>(
    playbook: &str,
    step: &str,
    ctx: &S,
) -> Result<RemoteCommand, PlaybookError> {
    catalog().render(playbook, step, &Value::from_serialize(ctx))
}

/// Renders a template of [`embedded::TEMPLATES`] (e.g. the kubeadm configuration).
pub fn render_template<S: Serialize>(name: &str, ctx: &S) -> Result<String, PlaybookError> {
    catalog().render_template(name, &Value::from_serialize(ctx))
}

/// The template environment: strict undefined, no HTML escaping, trailing newlines kept
/// (file contents are compared byte for byte), Jinja's block whitespace control on.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Debug mode would append the referenced variables to errors: they may hold secrets.
    env.set_debug(false);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_keep_trailing_newline(true);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.add_filter("quote", quote);
    env.add_filter("yaml", yaml);
    env.add_function("fail", fail);
    env
}

/// `{{ x | quote }}`: one shell word, whatever x contains (shlex). Refuses NUL bytes,
/// none and undefined rather than producing something surprising.
pub fn quote(v: Value) -> Result<String, minijinja::Error> {
    if v.is_undefined() {
        // Strict undefined lets a filter see the undefined value; the filter can't know
        // its name, but the error's location (playbook/step:key:line) points at it.
        return Err(minijinja::Error::new(
            ErrorKind::UndefinedError,
            "cannot quote an undefined value for the shell: an input this step needs is \
             missing (see the inputs in the playbook's header)",
        ));
    }
    if v.is_none() {
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            "cannot quote none for the shell",
        ));
    }
    let s = match v.as_str() {
        Some(s) => s.to_string(),
        None => v.to_string(),
    };
    shlex::try_quote(&s).map(|q| q.into_owned()).map_err(|e| {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("cannot quote {s:?} for the shell: {e}"),
        )
    })
}

/// `{{ x | yaml }}`: x as a YAML flow scalar (JSON is YAML), so addresses and names can't
/// change the document's structure.
fn yaml(v: Value) -> Result<String, minijinja::Error> {
    serde_json::to_string(&v).map_err(|e| {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("cannot write {v:?} as YAML: {e}"),
        )
    })
}

/// `{{ fail("message") }}`: stop rendering with a message for the user.
fn fail(message: String) -> Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
}

fn template_name(playbook: &str, step: &str, part: &str) -> String {
    format!("{playbook}/{step}:{part}")
}

impl Catalog {
    /// Parses and checks playbooks and templates: the structure, that step names are
    /// unique, that every template and expression compiles.
    pub fn load(
        playbooks: &[(&str, &str)],
        templates: &[(&str, &str)],
    ) -> Result<Catalog, PlaybookError> {
        let mut env = environment();
        for (name, source) in templates {
            env.add_template_owned(name.to_string(), source.to_string())
                .map_err(|source| PlaybookError::Template {
                    name: name.to_string(),
                    source,
                })?;
        }
        let mut loaded = Vec::new();
        let mut step_names = BTreeSet::new();
        for (name, source) in playbooks {
            let pb: Playbook =
                serde_yaml::from_str(source).map_err(|source| PlaybookError::Parse {
                    name: name.to_string(),
                    source,
                })?;
            let invalid = |message: String| PlaybookError::Invalid {
                playbook: name.to_string(),
                message,
            };
            if pb.name != *name {
                return Err(invalid(format!("its name field says {:?}", pb.name)));
            }
            for step in &pb.steps {
                if !step_names.insert(step.name.clone()) {
                    return Err(invalid(format!(
                        "step {:?}: another step already has this name",
                        step.name
                    )));
                }
                check_step(step, templates)
                    .map_err(|m| invalid(format!("step {}: {m}", step.name)))?;
                let mut parts = vec![("description", Some(&step.description))];
                parts.push(("reason", step.reason.as_ref()));
                parts.push(("run", step.run.as_ref()));
                parts.push(("stdin", step.stdin.as_ref()));
                for (part, source) in parts {
                    if let Some(source) = source {
                        let tname = template_name(name, &step.name, part);
                        env.add_template_owned(tname.clone(), source.clone())
                            .map_err(|source| PlaybookError::Template {
                                name: tname,
                                source,
                            })?;
                    }
                }
                if let Some(when) = &step.when {
                    env.compile_expression(when)
                        .map_err(|source| PlaybookError::Template {
                            name: template_name(name, &step.name, "when"),
                            source,
                        })?;
                }
            }
            loaded.push(pb);
        }
        Ok(Catalog {
            env,
            playbooks: loaded,
        })
    }

    pub fn playbooks(&self) -> &[Playbook] {
        &self.playbooks
    }

    pub fn playbook(&self, name: &str) -> Result<&Playbook, PlaybookError> {
        self.playbooks
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| PlaybookError::UnknownPlaybook {
                name: name.to_string(),
                known: self
                    .playbooks
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    pub fn step(&self, playbook: &str, step: &str) -> Result<&Step, PlaybookError> {
        let pb = self.playbook(playbook)?;
        pb.steps
            .iter()
            .find(|s| s.name == step)
            .ok_or_else(|| PlaybookError::UnknownStep {
                playbook: playbook.to_string(),
                step: step.to_string(),
                known: pb
                    .steps
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Every path a `file` step writes, so fact gathering can fetch their contents.
    pub fn file_paths(&self) -> Vec<&str> {
        let mut paths: Vec<&str> = self
            .playbooks
            .iter()
            .flat_map(|p| &p.steps)
            .filter_map(|s| s.file.as_ref().map(|f| f.path.as_str()))
            .collect();
        paths.sort_unstable();
        paths.dedup();
        paths
    }

    pub fn render_template(&self, name: &str, ctx: &Value) -> Result<String, PlaybookError> {
        let tmpl = self
            .env
            .get_template(name)
            .map_err(|source| PlaybookError::Template {
                name: name.to_string(),
                source,
            })?;
        tmpl.render(ctx).map_err(|source| PlaybookError::Template {
            name: name.to_string(),
            source,
        })
    }

    fn render_part(
        &self,
        playbook: &str,
        step: &str,
        part: &'static str,
        ctx: &Value,
    ) -> Result<String, PlaybookError> {
        let err = |source| PlaybookError::Render {
            playbook: playbook.to_string(),
            step: step.to_string(),
            what: part,
            source,
        };
        self.env
            .get_template(&template_name(playbook, step, part))
            .and_then(|t| t.render(ctx))
            .map_err(err)
    }

    /// The step's description, rendered.
    pub fn describe(
        &self,
        playbook: &str,
        step: &str,
        ctx: &Value,
    ) -> Result<String, PlaybookError> {
        self.step(playbook, step)?;
        Ok(collapse(&self.render_part(
            playbook,
            step,
            "description",
            ctx,
        )?))
    }

    /// Whether the step is needed, and why: `Some(reason)` naming the fact that differs.
    pub fn check(
        &self,
        playbook: &str,
        step: &str,
        ctx: &Value,
    ) -> Result<Option<String>, PlaybookError> {
        let s = self.step(playbook, step)?;
        let when = match &s.when {
            Some(expr) => {
                let err = |source| PlaybookError::Render {
                    playbook: playbook.to_string(),
                    step: step.to_string(),
                    what: "when",
                    source,
                };
                self.env
                    .compile_expression(expr)
                    .and_then(|e| e.eval(ctx))
                    .map_err(err)?
                    .is_true()
            }
            None => true,
        };
        if !when {
            return Ok(None);
        }
        if let Some(file) = &s.file {
            let wanted = self.render_template(&file.template, ctx)?;
            let current = current_file(ctx, &file.path);
            return Ok(file_difference(&file.path, current.as_ref(), &wanted));
        }
        let reason = self.render_part(playbook, step, "reason", ctx)?;
        Ok(Some(collapse(&reason)))
    }

    /// The command that performs the step (whether or not it is needed).
    pub fn render(
        &self,
        playbook: &str,
        step: &str,
        ctx: &Value,
    ) -> Result<RemoteCommand, PlaybookError> {
        let s = self.step(playbook, step)?;
        let secrets = secret_values(ctx, &s.secrets);
        if let Some(file) = &s.file {
            let content = self.render_template(&file.template, ctx)?;
            let (user, group) = file.owner.split_once(':').unwrap_or((&file.owner, "root"));
            let path = shlex::try_quote(&file.path).map_err(|e| PlaybookError::Invalid {
                playbook: playbook.to_string(),
                message: format!("step {step}: path {:?}: {e}", file.path),
            })?;
            return Ok(RemoteCommand {
                script: format!(
                    "install -D -m {} -o {user} -g {group} /dev/stdin {path}",
                    file.mode
                ),
                stdin: Some(content.into_bytes()),
                root: s.root,
                secrets,
            });
        }
        let script = self.render_part(playbook, step, "run", ctx)?;
        let stdin = match s.stdin {
            Some(_) => Some(self.render_part(playbook, step, "stdin", ctx)?)
                .filter(|t| !t.is_empty())
                .map(String::into_bytes),
            None => None,
        };
        Ok(RemoteCommand {
            script,
            stdin,
            root: s.root,
            secrets,
        })
    }
}

/// The structural rules docs/playbooks.md promises.
fn check_step(step: &Step, templates: &[(&str, &str)]) -> Result<(), String> {
    let simple_name = |n: &str| {
        !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if !simple_name(&step.name) {
        return Err("step names are lowercase words joined by '-'".into());
    }
    match (&step.run, &step.file) {
        (Some(_), Some(_)) | (None, None) => {
            return Err("a step has exactly one of `run` and `file`".into())
        }
        (Some(_), None) => {
            if step.when.is_none() || step.reason.is_none() {
                return Err("a `run` step needs `when` and `reason`".into());
            }
        }
        (None, Some(file)) => {
            if step.reason.is_some() || step.stdin.is_some() {
                return Err("a `file` step has no `reason` or `stdin`: the content \
                            difference is the reason and the content is the input"
                    .into());
            }
            let literal = file.path.starts_with('/')
                && !file.path.contains("{{")
                && !file
                    .path
                    .chars()
                    .any(|c| c.is_whitespace() || c == '\'' || c == '"');
            if !literal {
                return Err(format!(
                    "file path {:?} must be absolute and literal",
                    file.path
                ));
            }
            if !templates.iter().any(|(n, _)| *n == file.template) {
                return Err(format!("no template named {:?}", file.template));
            }
            let mode_ok = (3..=4).contains(&file.mode.len())
                && file.mode.bytes().all(|b| (b'0'..=b'7').contains(&b));
            if !mode_ok {
                return Err(format!("mode {:?} is not octal like \"0644\"", file.mode));
            }
            let owner_ok = file.owner.split(':').count() == 2
                && file.owner.split(':').all(|p| {
                    !p.is_empty()
                        && p.bytes().all(|b| {
                            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                        })
                });
            if !owner_ok {
                return Err(format!("owner {:?} is not user:group", file.owner));
            }
        }
    }
    Ok(())
}

/// `facts.files[path]` from the context: `None` = no facts at all (unknown),
/// `Some(None)` = the file is absent.
fn current_file(ctx: &Value, path: &str) -> Option<Option<String>> {
    let files = ctx.get_attr("facts").ok()?.get_attr("files").ok()?;
    if files.is_undefined() || files.is_none() {
        return None;
    }
    let v = files.get_item(&Value::from(path)).ok()?;
    if v.is_undefined() {
        // Facts were gathered without this path: treat as unknown, so it is written.
        return None;
    }
    Some(v.as_str().map(str::to_string))
}

/// Why a file must be written, or None when it already has the wanted content.
pub fn file_difference(
    path: &str,
    current: Option<&Option<String>>,
    wanted: &str,
) -> Option<String> {
    let current = match current {
        None => return Some(format!("{path}: content unknown (no facts)")),
        Some(None) => return Some(format!("{path} does not exist")),
        Some(Some(c)) => c,
    };
    if current == wanted {
        return None;
    }
    let (cur, want): (Vec<&str>, Vec<&str>) = (current.lines().collect(), wanted.lines().collect());
    for i in 0..cur.len().max(want.len()) {
        match (cur.get(i), want.get(i)) {
            (Some(c), Some(w)) if c == w => continue,
            (Some(c), Some(w)) => {
                return Some(format!(
                    "{path} differs: line {} is `{c}`, wanted `{w}`",
                    i + 1
                ))
            }
            (None, Some(w)) => {
                return Some(format!("{path} differs: line {} `{w}` is missing", i + 1))
            }
            (Some(c), None) => {
                return Some(format!("{path} differs: unexpected line {} `{c}`", i + 1))
            }
            (None, None) => unreachable!(),
        }
    }
    Some(format!("{path} differs only in its final newline"))
}

/// The values of the named (dotted) context entries, for redaction.
fn secret_values(ctx: &Value, names: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for name in names {
        let mut v = ctx.clone();
        for part in name.split('.') {
            v = v.get_attr(part).unwrap_or(Value::UNDEFINED);
        }
        if v.is_undefined() || v.is_none() {
            continue;
        }
        match v.try_iter() {
            Ok(items) if v.as_str().is_none() => {
                out.extend(items.map(|i| i.to_string()).filter(|s| !s.is_empty()))
            }
            _ => {
                let s = v.to_string();
                if !s.is_empty() {
                    out.push(s);
                }
            }
        }
    }
    out
}

/// Reasons and descriptions come from folded YAML: squeeze whitespace runs to one space.
fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_playbooks_load() {
        let c = Catalog::load(embedded::PLAYBOOKS, embedded::TEMPLATES).unwrap();
        assert_eq!(c.playbooks().len(), embedded::PLAYBOOKS.len());
        assert!(c.file_paths().contains(&"/etc/sysctl.d/k8s.conf"));
    }

    #[test]
    fn quote_filter_keeps_one_word() {
        for nasty in [
            "it's",
            "a b",
            "$(reboot)",
            "`x`",
            "x;y",
            "\"q\"",
            "",
            "a\nb",
        ] {
            let q = quote(Value::from(nasty)).unwrap();
            assert_eq!(shlex::split(&q).unwrap(), vec![nasty.to_string()], "{q}");
        }
        assert!(quote(Value::from("a\0b")).is_err());
        assert!(quote(Value::from(())).is_err());
        assert_eq!(quote(Value::from(6443)).unwrap(), "6443");
    }

    #[test]
    fn rejects_bad_steps() {
        let bad = [
            "name: x\nscope: host\ndescription: d\nsteps:\n- {name: a, description: d, run: 'true'}\n",
            "name: x\nscope: host\ndescription: d\nsteps:\n- {name: a, description: d, when: 'true', reason: r, run: 'true', file: {path: /a, template: t}}\n",
            "name: x\nscope: host\ndescription: d\nsteps:\n- {name: a, description: d, file: {path: 'rel', template: t}}\n",
            "name: x\nscope: host\ndescription: d\nsteps:\n- {name: a, description: d, file: {path: /a, template: missing}}\n",
            "name: x\nscope: host\ndescription: d\nsteps:\n- {name: a, description: d, file: {path: /a, template: t, mode: '999'}}\n",
            "name: x\nscope: host\ndescription: d\nsteps:\n- {name: a, description: d, when: 'true', reason: r, run: 'true'}\n- {name: a, description: d, when: 'true', reason: r, run: 'true'}\n",
            "name: x\nscope: host\ndescription: d\nsteps:\n- {name: a, description: d, when: '((', reason: r, run: 'true'}\n",
            "name: y\nscope: host\ndescription: d\nsteps: []\n",
            "name: x\nscope: host\ndescription: d\nsteps: []\nextra: 1\n",
        ];
        for src in bad {
            let r = Catalog::load(&[("x", src)], &[("t", "x\n")]);
            assert!(r.is_err(), "accepted:\n{src}");
        }
    }

    #[test]
    fn file_difference_names_the_line() {
        let have = Some(Some("a\nb = 0\n".to_string()));
        let r = file_difference("/f", have.as_ref(), "a\nb = 1\n").unwrap();
        assert_eq!(r, "/f differs: line 2 is `b = 0`, wanted `b = 1`");
        assert_eq!(file_difference("/f", have.as_ref(), "a\nb = 0\n"), None);
        let r = file_difference("/f", Some(&None), "x").unwrap();
        assert_eq!(r, "/f does not exist");
        let r = file_difference("/f", Some(&Some("x".into())), "x\n").unwrap();
        assert!(r.contains("final newline"), "{r}");
    }

    #[test]
    fn secrets_follow_dotted_names() {
        let ctx = minijinja::context! {
            join => minijinja::context! { token => "abcdef.0123456789abcdef", certificate_key => () },
            list => vec!["s1", "s2"],
        };
        let names = ["join.token", "join.certificate_key", "join.missing", "list"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            secret_values(&ctx, &names),
            vec!["abcdef.0123456789abcdef", "s1", "s2"]
        );
    }
}

/// templates/dpkg-lock.sh, the lock wrapper every package step runs, executed on fake
/// apt programs.
#[cfg(test)]
mod dpkg_lock_tests {
    /// Runs templates/dpkg-lock.sh's `bootstrap_dpkg_wait` (rendered for
    /// `packageLockWait: 10`) on a fake apt written from `script` (as `DIR/fake-apt`, so
    /// it can keep state beside itself) under `timeout 20`, with `env` added. The output
    /// and the fake's directory.
    fn wait_on_fake_apt(
        script: &str,
        env: &[(&str, &str)],
    ) -> (std::process::Output, tempfile::TempDir) {
        wait_on_fake_apt_with(script, env, "")
    }

    /// [`wait_on_fake_apt`] with `args` (shell words) after the fake's path.
    fn wait_on_fake_apt_with(
        script: &str,
        env: &[(&str, &str)],
        args: &str,
    ) -> (std::process::Output, tempfile::TempDir) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let wrapper = super::render_template(
            "dpkg-lock.sh",
            &minijinja::context! { cluster => minijinja::context! { package_lock_wait => 10 } },
        )
        .unwrap();
        let fake = dir.path().join("fake-apt");
        std::fs::write(&fake, script).unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = std::process::Command::new("timeout")
            .args(["20", "sh", "-c"])
            .arg(format!("{wrapper}\nbootstrap_dpkg_wait \"$0\" {args}"))
            .arg(&fake)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (out, dir)
    }

    /// The lock wrapper retries a held lock whatever the host's locale: apt and dpkg
    /// translate "Could not get lock", so the command must run in the C locale.
    #[test]
    fn the_lock_wrapper_retries_in_any_locale() {
        // Fails once with the lock message (in German unless LC_ALL=C), then succeeds.
        let (out, _dir) = wait_on_fake_apt(
            "#!/bin/sh\n\
             [ -e \"$0.done\" ] && { echo installed; exit 0; }\n\
             touch \"$0.done\"\n\
             if [ \"$LC_ALL\" = C ]; then echo 'E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 7 (apt-get)' >&2;\n\
             else echo 'E: Sperre /var/lib/dpkg/lock-frontend konnte nicht erlangt werden.' >&2; fi\n\
             exit 100\n",
            &[("LC_ALL", "de_DE.UTF-8"), ("LANG", "de_DE.UTF-8")],
        );
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "installed\n");
    }

    /// Runs the wrapper on a fake apt-get that prints apt's "Waiting for cache lock"
    /// progress and then `error` (exit 100): it must run once and its stderr hold `want`
    /// and none of `not`.
    fn assert_reported_once_after_waiting(error: &str, want: &[&str], not: &[&str]) {
        let (out, dir) = wait_on_fake_apt(
            &format!(
                "#!/bin/sh\n\
                 echo run >> \"$0.runs\"\n\
                 echo 'Waiting for cache lock: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 7 (unattended-upgr)...'\n\
                 echo \"{error}\" >&2\n\
                 exit 100\n"
            ),
            &[],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(100), "{out:?}");
        for w in want {
            assert!(stderr.contains(w), "{w:?} not in {stderr}");
        }
        for n in not {
            assert!(!stderr.contains(n), "{n:?} in {stderr}");
        }
        let runs = std::fs::read_to_string(dir.path().join("fake-apt.runs")).unwrap();
        assert_eq!(runs.lines().count(), 1, "retried: {stderr}");
    }

    /// apt-get that waited for dpkg's frontend lock (DPkg::Lock::Timeout) prints "Waiting
    /// for cache lock: Could not get lock ..." as progress; when it then fails for another
    /// reason, that failure is reported at once with apt's own words, not retried until
    /// packageLockWait ran out as a held lock (nor announced as "waiting for dpkg's lock").
    #[test]
    fn a_failure_after_waiting_for_the_lock_is_not_a_held_lock() {
        let e = "E: Version '1.35.4-1.1' for 'kubeadm' was not found";
        assert_reported_once_after_waiting(e, &[e], &["waiting for", "gave up"]);
    }

    /// apt-get that waited DPkg::Lock::Timeout for dpkg's lock and gave up ("E: Unable to
    /// acquire the dpkg frontend lock"): the wait is spent, so it is reported at once as
    /// given up, with apt's own lines, not retried.
    #[test]
    fn apt_giving_up_on_dpkg_s_lock_is_reported_not_retried() {
        let e = "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?";
        assert_reported_once_after_waiting(
            e,
            &[
                e,
                "gave up: another process held dpkg's lock for ",
                "s (apt-get's DPkg::Lock::Timeout ran out)",
            ],
            &[],
        );
    }

    /// After waiting for apt's lists lock, the retry's apt-get may wait for dpkg's lock
    /// only what is left of packageLockWait (10 s here, at least 2 s spent): its
    /// DPkg::Lock::Timeout is lowered, the other arguments kept in order.
    #[test]
    fn a_retry_waits_for_dpkg_s_lock_only_what_is_left() {
        let (out, _dir) = wait_on_fake_apt_with(
            "#!/bin/sh\n\
             [ -e \"$0.done\" ] && { echo \"$@\"; exit 0; }\n\
             touch \"$0.done\"\n\
             echo 'E: Could not get lock /var/lib/apt/lists/lock. It is held by process 7 (apt-get)' >&2\n\
             exit 100\n",
            &[],
            "-o DPkg::Lock::Timeout=10 -o 'Dpkg::Options::=--force-confold' update",
        );
        assert!(out.status.success(), "{out:?}");
        let args = String::from_utf8_lossy(&out.stdout);
        let left: u64 = args
            .strip_prefix("-o DPkg::Lock::Timeout=")
            .and_then(|r| r.strip_suffix(" -o Dpkg::Options::=--force-confold update\n"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{args}"));
        assert!(left <= 8, "{args}");
    }
}
