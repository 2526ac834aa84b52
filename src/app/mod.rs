//! The app definition: the TOML format (serde types in [`schema`]), loading and validation with
//! errors that name file, line and column ([`diagnostics`]), and the validated, compiled result
//! ([`model`]).
//!
//! ```no_run
//! let loaded = faust_rs::app::load("configs/leader.toml".as_ref()).unwrap();
//! for agent in &loaded.app.agents {
//!     println!("{} consumes {}", agent.name, agent.topic);
//! }
//! ```
//!
//! Loading never touches Kafka.

pub mod diagnostics;
mod kafka;
mod load;
pub mod model;
pub mod schema;
mod validate;

use std::path::{Path, PathBuf};

pub use diagnostics::{Diagnostic, LoadErrors, Severity};
pub use kafka::sink_records;
pub use model::*;

use crate::script::ScriptEngine;

/// A valid app, the engine its bodies were compiled with, and any warnings (deprecated keys,
/// ignored settings) to show the user.
pub struct Loaded {
    pub app: App,
    pub engine: ScriptEngine,
    pub warnings: Vec<Diagnostic>,
}

/// The app file `-A` names: `path` itself, or, as Faust's `-A leader` finds `leader.py`,
/// `path` with `.toml` added when `path` has no extension and is no file. `Err` names both
/// when neither exists; a missing file with an extension is left to [`load`] to report.
pub fn locate(path: &Path) -> Result<PathBuf, String> {
    if path.is_file() || path.extension().is_some() {
        return Ok(path.to_path_buf());
    }
    let with_extension = path.with_extension("toml");
    if with_extension.is_file() {
        return Ok(with_extension);
    }
    Err(format!(
        "no app definition: there is no file {} nor {}",
        path.display(),
        with_extension.display()
    ))
}

/// Reads, parses and validates the app file at `path`, compiling every body. Returns every
/// error found, not only the first.
pub fn load(path: &Path) -> Result<Loaded, LoadErrors> {
    match std::fs::read(path) {
        Ok(bytes) => load_bytes(path, &bytes),
        Err(e) => Err(LoadErrors {
            path: path.to_path_buf(),
            errors: vec![Diagnostic {
                path: path.to_path_buf(),
                line: 1,
                column: 1,
                severity: Severity::Error,
                message: format!("cannot read the app file: {e}"),
            }],
            warnings: Vec::new(),
        }),
    }
}

/// Like [`load`], from the file's contents (`path` names it in messages and anchors `file = `
/// paths).
pub fn load_bytes(path: &Path, bytes: &[u8]) -> Result<Loaded, LoadErrors> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or("");
            let (line, column) = diagnostics::LineIndex::new(valid).position(valid, valid.len());
            return Err(LoadErrors {
                path: path.to_path_buf(),
                errors: vec![Diagnostic {
                    path: path.to_path_buf(),
                    line,
                    column,
                    severity: Severity::Error,
                    message: "the app file is not UTF-8 text".into(),
                }],
                warnings: Vec::new(),
            });
        }
    };
    load_str(path, text)
}

/// Like [`load`], from the file's text.
pub fn load_str(path: &Path, text: &str) -> Result<Loaded, LoadErrors> {
    let mut report = diagnostics::Report::new(path, text);
    let app = load::parse(&mut report).and_then(|raw| validate::validate(&mut report, raw));
    report.sort();
    match app {
        Some((app, engine)) if report.errors.is_empty() => Ok(Loaded {
            app,
            engine,
            warnings: report.warnings,
        }),
        _ => {
            if report.errors.is_empty() {
                // Defensive: validation refused without saying why.
                report.error(0..0, "the app definition is invalid");
            }
            Err(LoadErrors {
                path: path.to_path_buf(),
                errors: report.errors,
                warnings: report.warnings,
            })
        }
    }
}

#[cfg(test)]
mod tests;
