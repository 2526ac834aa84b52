//! Entries' bodies: read from the app file or a `.rhai` file, compiled, and their compile
//! errors placed in the file they are in.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::super::diagnostics::{Report, one_line};
use super::super::model::{Body, BodyOrigin};
use crate::script::{BodyKind, ScriptEngine};

/// Where an entry keeps one body: the values of its two keys (inline and file) and their names.
pub(super) struct BodyKeys<'a> {
    pub kind: BodyKind,
    /// What owns it, for messages: "agent `say`".
    pub owner: String,
    pub inline: Option<&'a Spanned<String>>,
    pub file: Option<&'a Spanned<String>>,
    /// The two keys' names: `body` and `file`, or `on_elected` and `on_elected_file`.
    pub names: (&'static str, &'static str),
    /// Where to report a missing body: the entry's name.
    pub anchor: Range<usize>,
    /// The entry's keys dropped for errors of their own.
    pub dropped: &'a [String],
}

impl<'a> BodyKeys<'a> {
    /// The `body` and `file` keys of an agent, timer or task called `name`.
    pub(super) fn body_or_file(
        kind: BodyKind,
        name: &Spanned<String>,
        inline: Option<&'a Spanned<String>>,
        file: Option<&'a Spanned<String>>,
        dropped: &'a [String],
    ) -> Self {
        BodyKeys {
            kind,
            owner: format!("{} `{}`", kind.as_str(), name.get_ref()),
            inline,
            file,
            names: ("body", "file"),
            anchor: name.span(),
            dropped,
        }
    }
}

/// Reads and compiles bodies with the engine every body of the app shares.
pub(super) struct Bodies<'e> {
    /// The app file's folder: `file = ` paths are relative to it.
    base_dir: PathBuf,
    engine: &'e ScriptEngine,
}

impl<'e> Bodies<'e> {
    pub(super) fn new(app_file: &Path, engine: &'e ScriptEngine) -> Self {
        let base_dir = app_file
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        Bodies { base_dir, engine }
    }

    /// The body the keys give, compiled; `None` after reporting why not (or when a key it
    /// needs had an error of its own).
    pub(super) fn read(&self, report: &mut Report<'_>, keys: BodyKeys<'_>) -> Option<Body> {
        let (body_key, file_key) = keys.names;
        let owner = &keys.owner;
        let (origin, source, start) = match (keys.inline, keys.file) {
            (Some(_), Some(f)) => {
                report.error(
                    f.span(),
                    format!(
                        "`{body_key}` and `{file_key}` are both set for {owner}: give exactly one"
                    ),
                );
                return None;
            }
            (None, None) if keys.dropped.iter().any(|k| k == body_key || k == file_key) => {
                return None;
            }
            (None, None) => {
                report.error(
                    keys.anchor,
                    format!(
                        "{owner} has no body: set `{body_key} = '''...'''` or `{file_key} = \"path.rhai\"`"
                    ),
                );
                return None;
            }
            (Some(body), None) => {
                let start = inline_start(report, body.span());
                let origin = BodyOrigin::Inline { line: start.0 };
                (origin, body.get_ref().clone(), start)
            }
            (None, Some(f)) => {
                let (path, source) = self.read_file(report, f, file_key)?;
                (BodyOrigin::File(path), source, (1, 1))
            }
        };
        self.compile(report, &keys, origin, source, start)
    }

    fn read_file(
        &self,
        report: &mut Report<'_>,
        file: &Spanned<String>,
        file_key: &str,
    ) -> Option<(PathBuf, String)> {
        if file.get_ref().trim().is_empty() {
            report.error(file.span(), format!("`{file_key}` is empty"));
            return None;
        }
        let path = self.base_dir.join(file.get_ref());
        match std::fs::read_to_string(&path) {
            Ok(source) => Some((path, source)),
            Err(e) => {
                report.error(
                    file.span(),
                    format!("cannot read script file `{}`: {e}", path.display()),
                );
                None
            }
        }
    }

    /// `start`: for an inline body, the line and column in the app file of its first
    /// character, to place its errors there.
    fn compile(
        &self,
        report: &mut Report<'_>,
        keys: &BodyKeys<'_>,
        origin: BodyOrigin,
        source: String,
        start: (usize, usize),
    ) -> Option<Body> {
        let e = match self.engine.compile_for(keys.kind, &source) {
            Ok(script) => {
                return Some(Body {
                    origin,
                    source,
                    // Names the body in its log lines: `script="agent say"`.
                    script: script.with_name(&keys.owner.replace('`', "")),
                });
            }
            Err(e) => e,
        };
        let message = format!("in {}: {}", keys.owner, one_line(&e.message));
        match &origin {
            BodyOrigin::Inline { .. } => {
                let (line, column) = map_inline(start, e.line, e.column);
                let path = report.path.to_path_buf();
                report.error_at(&path, line, column, message);
            }
            BodyOrigin::File(path) => {
                report.error_at(path, e.line.max(1), e.column.max(1), message)
            }
        }
        None
    }
}

/// An entry's help line: its `help` key, else its body's first line if that is a `//`
/// comment, else empty.
pub(super) fn help(key: Option<&String>, body: Option<&Body>) -> String {
    key.cloned()
        .or_else(|| body.and_then(|b| first_comment(&b.source)))
        .unwrap_or_default()
}

fn first_comment(source: &str) -> Option<String> {
    let line = source.lines().map(str::trim).find(|l| !l.is_empty())?;
    let text = line.strip_prefix("//")?.trim_start_matches('/').trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// Line and column in the app file of an inline body's first character. TOML drops a newline
/// right after the opening `'''` or `"""`, so the body then starts on the next line.
fn inline_start(report: &Report<'_>, span: Range<usize>) -> (usize, usize) {
    let text = report.text;
    let rest = text.get(span.start..).unwrap_or("");
    let offset = if rest.starts_with("'''") || rest.starts_with("\"\"\"") {
        let after = span.start + 3;
        let tail = text.get(after..).unwrap_or("");
        if tail.starts_with("\r\n") {
            after + 2
        } else if tail.starts_with('\n') {
            after + 1
        } else {
            after
        }
    } else if rest.starts_with('\'') || rest.starts_with('"') {
        span.start + 1
    } else {
        span.start
    };
    report.position(offset)
}

/// A position inside an inline body to a position in the app file.
pub(crate) fn map_inline(start: (usize, usize), line: usize, column: usize) -> (usize, usize) {
    match line {
        0 => start,
        1 => (start.0, start.1 + column.max(1) - 1),
        n => (start.0 + n - 1, column.max(1)),
    }
}
