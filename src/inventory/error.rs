//! Errors of the inventory: every problem points at the file, line, column and field.
//!
//! A file usually has more than one mistake, and fixing them one run at a time is tedious,
//! so validation collects every problem it finds into one [`InventoryError::Invalid`]. Each
//! [`Problem`] is a miette diagnostic of its own (rendered as a `related` diagnostic): its
//! one-line form is `file:line:column: field: message`, and the fancy form adds the source
//! snippet and a help line.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{Diagnostic, NamedSource, SourceSpan};
use saphyr::Marker;

/// Why an inventory could not be loaded. Nothing has touched any host when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("cannot read the inventory {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The path is not something to read an inventory from (a FIFO, a device, a directory,
    /// a file of many MiB): refused before reading it, so `validate /dev/zero` or a FIFO
    /// with no writer can neither exhaust memory nor block.
    #[error("{}: {reason}", path.display())]
    NotAnInventory {
        path: PathBuf,
        reason: String,
        help: String,
    },

    #[error("{}: {} in the inventory", path.display(), count(problems.len()))]
    /// Made by [`InventoryError::invalid`].
    Invalid {
        path: PathBuf,
        /// Every problem, in file order.
        problems: Vec<Problem>,
        /// Stands for the problems past [`MAX_SHOWN_PROBLEMS`].
        more: Option<MoreProblems>,
    },
}

/// At most this many problems are rendered (miette's form and [`InventoryError::summary`]);
/// the rest are counted ("and N more"). A generated file with one mistake repeated in
/// 60 000 hosts otherwise prints for minutes, and nobody reads past the first screens.
pub const MAX_SHOWN_PROBLEMS: usize = 50;

/// The line that stands for the problems not shown.
#[derive(Debug, thiserror::Error)]
#[error("... and {0} more (the first {MAX_SHOWN_PROBLEMS} are shown; fix them and run again)")]
pub struct MoreProblems(usize);

impl Diagnostic for MoreProblems {}

// Written out rather than derived: miette's derive can't show a prefix of `problems`
// followed by the "and N more" line.
impl Diagnostic for InventoryError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        let code = match self {
            InventoryError::Read { .. } => "inventory::read",
            InventoryError::NotAnInventory { .. } => "inventory::not_an_inventory",
            InventoryError::Invalid { .. } => "inventory::invalid",
        };
        Some(Box::new(code))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        match self {
            InventoryError::Read { .. } => None,
            InventoryError::NotAnInventory { help, .. } => Some(Box::new(help)),
            InventoryError::Invalid { .. } => Some(Box::new(
                "nothing was done on any host; fix the inventory and run again",
            )),
        }
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        let InventoryError::Invalid { problems, more, .. } = self else {
            return None;
        };
        let shown = problems
            .iter()
            .take(MAX_SHOWN_PROBLEMS)
            .map(|p| p as &dyn Diagnostic);
        let more = more.iter().map(|m| m as &dyn Diagnostic);
        Some(Box::new(shown.chain(more)))
    }
}

impl InventoryError {
    /// An invalid inventory: `problems` sorted into file order.
    pub fn invalid(path: &Path, mut problems: Vec<Problem>) -> Self {
        problems.sort_by_key(|p| (p.line, p.column));
        let more = (problems.len() > MAX_SHOWN_PROBLEMS)
            .then(|| MoreProblems(problems.len() - MAX_SHOWN_PROBLEMS));
        InventoryError::Invalid {
            path: path.to_path_buf(),
            problems,
            more,
        }
    }

    /// Every problem found, in file order (empty for the other errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            InventoryError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }

    /// The one-line forms, one per line (at most [`MAX_SHOWN_PROBLEMS`], then "... and N
    /// more"): what `grep`-friendly output, the JSON document and tests look at.
    pub fn summary(&self) -> String {
        match self {
            InventoryError::Invalid { problems, more, .. } => {
                let shown = problems.iter().take(MAX_SHOWN_PROBLEMS);
                let lines: Vec<String> = shown
                    .map(|p| p.to_string())
                    .chain(more.iter().map(|m| m.to_string()))
                    .collect();
                lines.join("\n")
            }
            _ => self.to_string(),
        }
    }

    /// The full miette rendering (snippets and help) without colours, e.g. for tests and
    /// log files. Interactive callers should hand the error to miette's own handler instead.
    pub fn render_plain(&self) -> String {
        let handler =
            miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
                .with_width(100)
                .with_links(false);
        let mut out = String::new();
        // Writing to a String can't fail.
        let _ = handler.render_report(&mut out, self);
        out
    }
}

fn count(n: usize) -> String {
    if n == 1 {
        "1 problem".to_string()
    } else {
        format!("{n} problems")
    }
}

/// One mistake in the inventory.
#[derive(Debug, Clone, thiserror::Error, Diagnostic)]
#[error("{file}:{line}:{column}: {field}: {message}")]
pub struct Problem {
    /// The inventory's path as the user gave it.
    pub file: String,
    /// 1-based line of the offending key or value.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Where in the document, e.g. `hosts[1].labels`.
    pub field: String,
    /// Control and bidi characters escaped, long quoted values shortened
    /// ([`shown_message`]).
    pub message: String,
    #[help]
    pub help: Option<String>,
    /// None when no snippet can be drawn (see [`Source::snippet_fits`]): miette then
    /// renders the one-line form.
    #[source_code]
    source_code: Option<NamedSource<Arc<String>>>,
    #[label("{field}")]
    span: Option<SourceSpan>,
}

impl Problem {
    /// A problem no snippet is drawn for (e.g. where the text is not UTF-8).
    pub(crate) fn without_snippet(
        file: &str,
        line: usize,
        column: usize,
        field: &str,
        message: String,
        help: Option<String>,
    ) -> Problem {
        Problem {
            file: shown_message(file),
            line,
            column,
            field: shown_message(field),
            message: shown_message(&message),
            help: help.as_deref().map(shown_message),
            source_code: None,
            span: None,
        }
    }
}

/// Characters the parser counts between two entries of [`Source::checkpoints`].
const CHECKPOINT_CHARS: usize = 64;

/// The longest line (in bytes) a snippet is drawn for, the problem's own and its
/// neighbours (miette draws one line of context): past it the snippet is unreadable, and
/// from column 65 536 on miette's renderer panics (a one-line `jq -c` inventory).
const MAX_SNIPPET_LINE: usize = 1000;

/// The source text of the inventory, shared by every problem, plus the mapping from the
/// parser's character positions to the byte offsets miette wants.
#[derive(Clone)]
pub(crate) struct Source {
    file: String,
    text: Arc<String>,
    /// `text` with control and bidi characters replaced by visible ones of the same
    /// length in bytes (so spans still fit): what snippets show, so an inventory can't
    /// move the terminal's cursor or reorder what the user reads.
    shown: Arc<String>,
    /// Byte offset of every [`CHECKPOINT_CHARS`]th character: a byte offset is found by
    /// walking at most that many characters, in memory a fraction of the text (one offset
    /// per character was 8 bytes per byte of a typical file).
    checkpoints: Arc<Vec<usize>>,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source").field("file", &self.file).finish()
    }
}

impl Source {
    pub(crate) fn new(file: String, text: String) -> Self {
        let checkpoints = text
            .char_indices()
            .step_by(CHECKPOINT_CHARS)
            .map(|(i, _)| i)
            .collect();
        let shown = text.chars().map(visible).collect();
        Source {
            file: shown_message(&file),
            text: Arc::new(text),
            shown: Arc::new(shown),
            checkpoints: Arc::new(checkpoints),
        }
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    fn byte(&self, char_index: usize) -> usize {
        let Some(&from) = self.checkpoints.get(char_index / CHECKPOINT_CHARS) else {
            return self.text.len();
        };
        let rest = char_index % CHECKPOINT_CHARS;
        self.text[from..]
            .char_indices()
            .nth(rest)
            .map_or(self.text.len(), |(i, _)| from + i)
    }

    /// The source text between two parser markers (e.g. the raw form of a plain scalar,
    /// so `1.30` stays `1.30` rather than the float 1.3).
    pub(crate) fn slice(&self, start: &Marker, end: &Marker) -> &str {
        let (a, b) = (self.byte(start.index()), self.byte(end.index()));
        self.text.get(a..b.max(a)).unwrap_or("")
    }

    /// Whether the lines miette would draw around byte `at` (its own and one on each
    /// side) are at most [`MAX_SNIPPET_LINE`] long. Looks at a bounded window, so checking
    /// every problem of a huge one-line file stays linear.
    fn snippet_fits(&self, at: usize) -> bool {
        let bytes = self.text.as_bytes();
        let lo = at.saturating_sub(3 * MAX_SNIPPET_LINE);
        let hi = (at + 3 * MAX_SNIPPET_LINE).min(bytes.len());
        // The line containing `pos` (start, end without its newline), if it lies in the window.
        let line = |pos: usize| -> Option<(usize, usize)> {
            let start = match bytes[lo..pos].iter().rposition(|&b| b == b'\n') {
                Some(i) => lo + i + 1,
                None if lo == 0 => 0,
                None => return None,
            };
            let end = match bytes[pos..hi].iter().position(|&b| b == b'\n') {
                Some(i) => pos + i,
                None if hi == bytes.len() => hi,
                None => return None,
            };
            (end - start <= MAX_SNIPPET_LINE).then_some((start, end))
        };
        let Some((start, end)) = line(at.min(bytes.len())) else {
            return false;
        };
        let above = start == 0 || line(start - 1).is_some();
        let below = end == bytes.len() || line(end + 1).is_some();
        above && below
    }

    /// A problem at `start` shown without a snippet: the line holds a secret.
    pub(crate) fn problem_without_snippet(
        &self,
        start: &Marker,
        field: &str,
        message: String,
        help: Option<String>,
    ) -> Problem {
        Problem::without_snippet(
            &self.file,
            start.line(),
            start.col() + 1,
            field,
            message,
            help,
        )
    }

    /// A problem located at `start..end`.
    pub(crate) fn problem(
        &self,
        start: &Marker,
        end: &Marker,
        field: &str,
        message: String,
        help: Option<String>,
    ) -> Problem {
        let a = self.byte(start.index());
        let b = self.byte(end.index()).max(a);
        let snippet = self.snippet_fits(a);
        Problem {
            file: self.file.clone(),
            line: start.line(),
            column: start.col() + 1,
            field: if field.is_empty() {
                "document".to_string()
            } else {
                shown_message(field)
            },
            message: shown_message(&message),
            help: help.as_deref().map(shown_message),
            source_code: snippet.then(|| NamedSource::new(&self.file, Arc::clone(&self.shown))),
            span: snippet.then(|| SourceSpan::new(a.into(), b - a)),
        }
    }
}

/// Quoted values (between backticks) longer than this are shortened in messages.
const MAX_SHOWN_VALUE: usize = 80;

/// A message as it may be printed: control and bidi characters escaped (`\u{1b}`), and
/// every `quoted` value longer than [`MAX_SHOWN_VALUE`] characters cut with its length
/// given, so a 1 MB value is not echoed whole.
pub(crate) fn shown_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(1024));
    for (i, part) in message.split('`').enumerate() {
        if i > 0 {
            out.push('`');
        }
        let quoted = i % 2 == 1;
        let count = part.chars().count();
        if quoted && count > MAX_SHOWN_VALUE {
            push_escaped(&mut out, part.chars().take(MAX_SHOWN_VALUE - 20));
            out.push_str(&format!("...({count} characters)"));
        } else {
            push_escaped(&mut out, part.chars());
        }
    }
    out
}

fn push_escaped(out: &mut String, chars: impl Iterator<Item = char>) {
    for c in chars {
        if needs_escape(c) && c != '\n' {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
}

/// Control characters (C0 but tab and newline, DEL, C1) and the Unicode bidi controls
/// (the "Trojan Source" set: U+202A-U+202E, U+2066-U+2069, U+200E/F, U+061C).
fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

/// The stand-in for `c` in snippets: as many bytes as `c`, visible, harmless.
fn visible(c: char) -> char {
    if !needs_escape(c) || c == '\n' || c == '\r' {
        return c;
    }
    match c.len_utf8() {
        1 => '?',
        2 => '\u{bf}',   // ¿
        _ => '\u{fffd}', // the replacement character, 3 bytes like every bidi control
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_positions_map_to_byte_offsets_across_checkpoints() {
        let text: String = (0..500)
            .map(|i| ['a', 'é', '€', '😀', '\n'][i % 5])
            .collect();
        let src = Source::new("f".into(), text.clone());
        let expected: Vec<usize> = text
            .char_indices()
            .map(|(i, _)| i)
            .chain([text.len()])
            .collect();
        for (char_index, byte) in expected.iter().enumerate() {
            assert_eq!(src.byte(char_index), *byte, "character {char_index}");
        }
        assert_eq!(src.byte(expected.len() + 100), text.len());
    }

    #[test]
    fn snippets_keep_spans_and_hide_controls() {
        let text = "a\u{1b}b\u{202e}c\u{85}d\te\n".to_string();
        let src = Source::new("f".into(), text.clone());
        assert_eq!(src.shown.len(), text.len());
        assert_eq!(&*src.shown, "a?b\u{fffd}c\u{bf}d\te\n");
    }

    #[test]
    fn messages_escape_and_cut() {
        assert_eq!(
            shown_message("`a\u{1b}[2J` x\u{2066}"),
            r"`a\u{1b}[2J` x\u{2066}"
        );
        let long = format!("value `{}` too long", "v".repeat(100));
        assert_eq!(
            shown_message(&long),
            format!("value `{}...(100 characters)` too long", "v".repeat(60))
        );
    }

    #[test]
    fn long_lines_get_no_snippet() {
        let short = "x: 1\n".repeat(3);
        let long = format!("{short}{}\n{short}", "y".repeat(MAX_SNIPPET_LINE + 1));
        let src = Source::new("f".into(), long.clone());
        assert!(src.snippet_fits(0));
        assert!(src.snippet_fits(5), "two lines above the long one");
        assert!(!src.snippet_fits(10), "the line above the long one");
        assert!(!src.snippet_fits(20), "the long line itself");
        assert!(
            !src.snippet_fits(long.len() - 15),
            "the line below the long one"
        );
        assert!(src.snippet_fits(long.len() - 1));
    }
}
