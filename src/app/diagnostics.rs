//! Errors and warnings about an app definition, each naming a file, a line and a column, in the
//! format compilers use (`path:line:col: error: message`) so editors can jump to them.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// How serious a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The app cannot run; `check` exits with status 2.
    Error,
    /// The app runs, but something deserves attention (e.g. a deprecated key).
    Warning,
}

/// One problem found in an app file or in a script file it refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the problem is in: the app file, or a `.rhai` file named by `file = "..."`.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    pub severity: Severity,
    /// One line, without the position or severity.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {severity}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// Why an app definition could not be loaded: every error found (not only the first), and the
/// warnings found on the way. `Display` prints one diagnostic per line, errors first, then a
/// summary line such as `3 errors in app.toml`.
#[derive(Debug, Clone)]
pub struct LoadErrors {
    /// The app file.
    pub path: PathBuf,
    /// At least one.
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl LoadErrors {
    /// The last line of the report: `1 error in app.toml` / `N errors in app.toml`.
    pub fn summary(&self) -> String {
        let n = self.errors.len();
        let noun = if n == 1 { "error" } else { "errors" };
        format!("{n} {noun} in {}", self.path.display())
    }
}

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for diagnostic in self.errors.iter().chain(&self.warnings) {
            writeln!(f, "{diagnostic}")?;
        }
        f.write_str(&self.summary())
    }
}

impl std::error::Error for LoadErrors {}

/// Byte offsets to 1-based line and column (in characters) for one text.
#[derive(Debug, Clone)]
pub(crate) struct LineIndex {
    line_starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { line_starts }
    }

    /// The line and column of a byte offset (clamped to the text).
    pub(crate) fn position(&self, text: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        let column = text
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(offset - start);
        (line + 1, column + 1)
    }
}

/// Collects diagnostics while an app file is loaded.
pub(crate) struct Report<'a> {
    pub(crate) path: &'a Path,
    pub(crate) text: &'a str,
    index: LineIndex,
    pub(crate) errors: Vec<Diagnostic>,
    pub(crate) warnings: Vec<Diagnostic>,
}

impl<'a> Report<'a> {
    pub(crate) fn new(path: &'a Path, text: &'a str) -> Self {
        Report {
            path,
            text,
            index: LineIndex::new(text),
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Line and column in the app file of a byte offset.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        self.index.position(self.text, offset)
    }

    fn diagnostic(&self, span: &Range<usize>, severity: Severity, message: String) -> Diagnostic {
        let (line, column) = self.position(span.start);
        Diagnostic {
            path: self.path.to_path_buf(),
            line,
            column,
            severity,
            message,
        }
    }

    /// An error at a span of the app file.
    pub(crate) fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let d = self.diagnostic(&span, Severity::Error, message.into());
        self.errors.push(d);
    }

    /// A warning at a span of the app file.
    pub(crate) fn warn(&mut self, span: Range<usize>, message: impl Into<String>) {
        let d = self.diagnostic(&span, Severity::Warning, message.into());
        self.warnings.push(d);
    }

    /// An error at a known position of any file (a script file, or a mapped script position).
    pub(crate) fn error_at(
        &mut self,
        path: &Path,
        line: usize,
        column: usize,
        message: impl Into<String>,
    ) {
        self.errors.push(Diagnostic {
            path: path.to_path_buf(),
            line,
            column,
            severity: Severity::Error,
            message: message.into(),
        });
    }

    /// Sorts errors and warnings: the app file first, by position; script files after it.
    pub(crate) fn sort(&mut self) {
        let app = self.path.to_path_buf();
        let key = |d: &Diagnostic| (d.path != app, d.path.clone(), d.line, d.column);
        self.errors.sort_by_key(key);
        self.warnings.sort_by_key(key);
        self.errors.dedup();
    }
}

/// A message on one line (TOML's and Rhai's span several), for `path:line:col: error: message`.
pub(crate) fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let text = "ab\nçé x\n\nlast";
        let index = LineIndex::new(text);
        assert_eq!(index.position(text, 0), (1, 1));
        assert_eq!(index.position(text, 2), (1, 3));
        assert_eq!(index.position(text, 3), (2, 1));
        // `x` follows two 2-byte characters and a space.
        assert_eq!(index.position(text, text.find('x').unwrap()), (2, 4));
        assert_eq!(index.position(text, text.find("last").unwrap()), (4, 1));
        assert_eq!(index.position(text, 10_000), (4, 5));
    }

    #[test]
    fn report_prints_one_line_per_problem_and_a_summary() {
        let errors = LoadErrors {
            path: "a.toml".into(),
            errors: vec![Diagnostic {
                path: "a.toml".into(),
                line: 3,
                column: 7,
                severity: Severity::Error,
                message: "bad".into(),
            }],
            warnings: vec![],
        };
        assert_eq!(
            errors.to_string(),
            "a.toml:3:7: error: bad\n1 error in a.toml"
        );
    }
}
