//! Typed reading of the parsed YAML tree, keeping positions for error messages.
//!
//! serde stops at the first error and loses the position of values once they are
//! deserialized; this small reader instead walks saphyr's marked tree, records a
//! [`Problem`] for every mistake and carries on, and hands back values with their spans so
//! later checks (duplicates, overlaps, ...) can point at the right place too. It enforces
//! what `#[serde(deny_unknown_fields)]` would: only known keys, with a suggestion for typos.

use saphyr::{MarkedYaml, Marker, Scalar, YamlData};

use super::error::{Problem, Source};

/// A value with the position it came from.
#[derive(Debug, Clone)]
pub(crate) struct Spanned<T> {
    pub value: T,
    pub start: Marker,
    pub end: Marker,
}

impl<T> Spanned<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Spanned<U> {
        Spanned {
            value: f(self.value),
            start: self.start,
            end: self.end,
        }
    }
}

/// Collects problems while the tree is read.
pub(crate) struct Reader {
    pub src: Source,
    pub problems: Vec<Problem>,
}

/// The entries of a mapping whose keys were all checked against the known ones.
pub(crate) struct Fields<'n> {
    start: Marker,
    entries: Vec<(Spanned<String>, &'n MarkedYaml<'n>)>,
    /// Known keys that an unknown key was probably meant to be (already reported with a
    /// "did you mean"), so they aren't reported missing as well.
    misspelt: Vec<String>,
}

impl<'n> Fields<'n> {
    /// The value of `key`, if present and not null (a null value means "use the default").
    pub fn get(&self, key: &str) -> Option<&'n MarkedYaml<'n>> {
        self.entries
            .iter()
            .find(|(k, _)| k.value == key)
            .map(|(_, v)| *v)
            .filter(|v| !is_null(v))
    }

    /// Whether `key` is written at all, even as `key: null`.
    pub fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k.value == key)
    }

    /// The value of a required key; records "missing" at the mapping itself when absent.
    pub fn required(
        &self,
        r: &mut Reader,
        key: &str,
        field: &str,
        what: &str,
    ) -> Option<&'n MarkedYaml<'n>> {
        let value = self.get(key);
        if value.is_none() && !self.misspelt.iter().any(|k| k == key) {
            let written = self.entries.iter().find(|(k, _)| k.value == key);
            let problem = match written {
                Some((k, _)) => r.src.problem(
                    &k.start,
                    &k.end,
                    &join(field, key),
                    format!("`{key}` has no value; it needs {what}"),
                    None,
                ),
                None => r.src.problem(
                    &self.start,
                    &self.start,
                    field,
                    format!("missing required key `{key}` ({what})"),
                    None,
                ),
            };
            r.problems.push(problem);
        }
        value
    }
}

/// What a node is, for "expected X, found Y" messages.
pub(crate) fn kind(node: &MarkedYaml) -> &'static str {
    match &node.data {
        YamlData::Mapping(_) => "a mapping",
        YamlData::Sequence(_) => "a list",
        YamlData::Value(Scalar::Null) => "nothing (null)",
        YamlData::Value(Scalar::Boolean(_)) => "a boolean",
        YamlData::Value(Scalar::Integer(_)) => "an integer",
        YamlData::Value(Scalar::FloatingPoint(_)) => "a number",
        YamlData::Value(Scalar::String(_)) | YamlData::Representation(..) => "a string",
        YamlData::Tagged(_, inner) => kind(inner),
        YamlData::Alias(_) | YamlData::BadValue => "an unusable value",
    }
}

pub(crate) fn is_null(node: &MarkedYaml) -> bool {
    matches!(node.data, YamlData::Value(Scalar::Null))
}

/// Looks through a `!!tag` to the value.
fn untag<'a, 'n>(node: &'a MarkedYaml<'n>) -> &'a MarkedYaml<'n> {
    match &node.data {
        YamlData::Tagged(_, inner) => untag(inner),
        _ => node,
    }
}

impl Reader {
    pub fn new(src: Source) -> Self {
        Reader {
            src,
            problems: Vec::new(),
        }
    }

    /// Records a problem spanning `node`.
    pub fn error(&mut self, node: &MarkedYaml, field: &str, message: String, help: Option<String>) {
        let end = scalar_end(node);
        self.problems.push(
            self.src
                .problem(&node.span.start, &end, field, message, help),
        );
    }

    /// Records a problem spanning a spanned value.
    pub fn error_at<T>(
        &mut self,
        at: &Spanned<T>,
        field: &str,
        message: String,
        help: Option<String>,
    ) {
        self.problems
            .push(self.src.problem(&at.start, &at.end, field, message, help));
    }

    /// A mapping whose keys must be among `known` (camelCase, as in the file).
    pub fn fields<'n>(
        &mut self,
        node: &'n MarkedYaml<'n>,
        field: &str,
        known: &[&str],
    ) -> Option<Fields<'n>> {
        let node = untag(node);
        let YamlData::Mapping(map) = &node.data else {
            self.error(
                node,
                field,
                format!(
                    "expected a mapping with the keys {}, found {}",
                    list(known),
                    kind(node)
                ),
                None,
            );
            return None;
        };
        let mut entries = Vec::new();
        let mut misspelt = Vec::new();
        for (k, v) in map {
            let Some(key) = self.key(k, field) else {
                continue;
            };
            if known.contains(&key.value.as_str()) {
                entries.push((key, v));
            } else {
                let path = join(field, &key.value);
                let suggestion = suggest(&key.value, known);
                misspelt.extend(suggestion.map(str::to_string));
                let help = suggestion
                    .map(|s| format!("did you mean `{s}`?"))
                    .or_else(|| Some(format!("the keys allowed here are {}", list(known))));
                self.error_at(&key, &path, format!("unknown key `{}`", key.value), help);
            }
        }
        Some(Fields {
            start: node.span.start,
            entries,
            misspelt,
        })
    }

    /// A mapping with free-form string keys (labels): the keys with their spans, in order.
    pub fn pairs<'n>(
        &mut self,
        node: &'n MarkedYaml<'n>,
        field: &str,
    ) -> Option<Vec<(Spanned<String>, &'n MarkedYaml<'n>)>> {
        let node = untag(node);
        let YamlData::Mapping(map) = &node.data else {
            self.error(
                node,
                field,
                format!("expected a mapping of `key: value`, found {}", kind(node)),
                None,
            );
            return None;
        };
        let mut out = Vec::new();
        for (k, v) in map {
            if let Some(key) = self.key(k, field) {
                out.push((key, v));
            }
        }
        Some(out)
    }

    fn key(&mut self, k: &MarkedYaml, field: &str) -> Option<Spanned<String>> {
        let text = self.scalar_text(k);
        if text.is_none() {
            self.error(
                k,
                field,
                format!("keys must be strings, found {}", kind(k)),
                None,
            );
        }
        text
    }

    /// A list.
    pub fn list<'n>(
        &mut self,
        node: &'n MarkedYaml<'n>,
        field: &str,
        what: &str,
    ) -> Option<&'n [MarkedYaml<'n>]> {
        let node = untag(node);
        match &node.data {
            YamlData::Sequence(items) => Some(items),
            _ => {
                let help = self
                    .scalar_text(node)
                    .map(|t| format!("write it as a list: `[\"{}\"]`", t.value));
                self.error(
                    node,
                    field,
                    format!("expected a list of {what}, found {}", kind(node)),
                    help,
                );
                None
            }
        }
    }

    /// A string. Plain scalars that YAML would read as numbers or booleans are taken as
    /// written (`1.30` stays `1.30`), because every string field here is text to the tool.
    pub fn string(
        &mut self,
        node: &MarkedYaml,
        field: &str,
        what: &str,
    ) -> Option<Spanned<String>> {
        let text = self.scalar_text(node);
        if text.is_none() {
            self.error(
                node,
                field,
                format!("expected {what}, found {}", kind(node)),
                None,
            );
        }
        text
    }

    /// A TCP port, 1..=65535.
    pub fn port(&mut self, node: &MarkedYaml, field: &str) -> Option<Spanned<u16>> {
        let text = self.string(node, field, "a port number (1-65535)")?;
        match text.value.parse::<u16>() {
            Ok(p) if p > 0 => Some(text.map(|_| p)),
            _ => {
                self.error_at(
                    &text,
                    field,
                    format!("`{}` is not a port number (1-65535)", text.value),
                    None,
                );
                None
            }
        }
    }

    /// The text of a scalar, None for collections and null.
    fn scalar_text(&self, node: &MarkedYaml) -> Option<Spanned<String>> {
        let node = untag(node);
        let end = scalar_end(node);
        let value = match &node.data {
            YamlData::Value(Scalar::String(s)) => s.to_string(),
            YamlData::Representation(s, ..) => s.to_string(),
            YamlData::Value(Scalar::Integer(_))
            | YamlData::Value(Scalar::FloatingPoint(_))
            | YamlData::Value(Scalar::Boolean(_)) => {
                self.src.slice(&node.span.start, &end).trim().to_string()
            }
            _ => return None,
        };
        Some(Spanned {
            value,
            start: node.span.start,
            end,
        })
    }
}

/// The end of a node for highlighting: collections end where the next token starts (often
/// the next line), so they are highlighted by their first character only.
fn scalar_end(node: &MarkedYaml) -> Marker {
    match &node.data {
        YamlData::Mapping(_) | YamlData::Sequence(_) => node.span.start,
        _ => node.span.end,
    }
}

/// `parent.key`, or `key` at the top.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

fn list(known: &[&str]) -> String {
    known
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The closest known word to a typo, if it is close enough to be what was meant.
pub(crate) fn suggest<'a>(typo: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = typo.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(&lower, &k.to_ascii_lowercase()), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}
