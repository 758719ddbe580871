//! Errors of the inventory: every problem points at the file, line, column and field.
//!
//! A file usually has more than one mistake, and fixing them one run at a time is tedious,
//! so validation collects every problem it finds into one [`InventoryError::Invalid`]. Each
//! [`Problem`] is a miette diagnostic of its own (rendered as a `related` diagnostic): its
//! one-line form is `file:line:column: field: message`, and the fancy form adds the source
//! snippet and a help line.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use miette::{Diagnostic, NamedSource, SourceSpan};
use saphyr::Marker;

/// Why an inventory could not be loaded. Nothing has touched any host when this is returned.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum InventoryError {
    #[error("cannot read the inventory {}: {source}", path.display())]
    #[diagnostic(code(inventory::read))]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{}: {} in the inventory", path.display(), count(problems.len()))]
    #[diagnostic(
        code(inventory::invalid),
        help("nothing was done on any host; fix the inventory and run again")
    )]
    Invalid {
        path: PathBuf,
        #[related]
        problems: Vec<Problem>,
    },
}

impl InventoryError {
    /// Every problem found, in file order (empty for a read error).
    pub fn problems(&self) -> &[Problem] {
        match self {
            InventoryError::Read { .. } => &[],
            InventoryError::Invalid { problems, .. } => problems,
        }
    }

    /// The one-line forms, one per line: what `grep`-friendly output and tests look at.
    pub fn summary(&self) -> String {
        match self {
            InventoryError::Read { .. } => self.to_string(),
            InventoryError::Invalid { problems, .. } => problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
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
    pub message: String,
    #[help]
    pub help: Option<String>,
    #[source_code]
    source_code: NamedSource<Arc<String>>,
    #[label("{field}")]
    span: SourceSpan,
}

/// The source text of the inventory, shared by every problem, plus the mapping from the
/// parser's character positions to the byte offsets miette wants.
#[derive(Clone)]
pub(crate) struct Source {
    file: String,
    text: Arc<String>,
    /// Byte offset of every character, plus one entry for the end of the text.
    char_offsets: Arc<Vec<usize>>,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source").field("file", &self.file).finish()
    }
}

impl Source {
    pub(crate) fn new(file: String, text: String) -> Self {
        let mut char_offsets: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        char_offsets.push(text.len());
        Source {
            file,
            text: Arc::new(text),
            char_offsets: Arc::new(char_offsets),
        }
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    fn byte(&self, char_index: usize) -> usize {
        self.char_offsets
            .get(char_index)
            .copied()
            .unwrap_or(self.text.len())
    }

    /// The source text between two parser markers (e.g. the raw form of a plain scalar,
    /// so `1.30` stays `1.30` rather than the float 1.3).
    pub(crate) fn slice(&self, start: &Marker, end: &Marker) -> &str {
        let (a, b) = (self.byte(start.index()), self.byte(end.index()));
        self.text.get(a..b.max(a)).unwrap_or("")
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
        Problem {
            file: self.file.clone(),
            line: start.line(),
            column: start.col() + 1,
            field: if field.is_empty() {
                "document".to_string()
            } else {
                field.to_string()
            },
            message,
            help,
            source_code: NamedSource::new(&self.file, Arc::clone(&self.text)),
            span: SourceSpan::new(a.into(), b - a),
        }
    }
}
