//! Subcommands other than `worker`: each takes the parsed options and returns the status to
//! exit with.

pub mod agents;
pub mod check;
pub mod leader;
pub mod send;

use std::io::Write;

use crate::app::{self, Loaded};
use crate::cli::GlobalOptions;
use crate::exit::{Fatal, Result};

/// Loads the app named by `-A/--app`. Warnings are printed to standard error; on errors, every
/// error is printed there (`path:line:col: error: ...`) and the result is a configuration
/// failure (exit status 2) whose message is the summary (`N errors in path`).
pub fn load_app(global: &GlobalOptions) -> Result<Loaded> {
    let Some(path) = &global.app else {
        return Err(Fatal::config(
            "no app definition: pass -A/--app FILE (or set FAUST_RS_APP), e.g. \
             `faust-rs -A app.toml check`",
        ));
    };
    let path = app::locate(path).map_err(Fatal::config)?;
    match app::load(&path) {
        Ok(loaded) => {
            print_diagnostics(&loaded.warnings);
            Ok(loaded)
        }
        Err(errors) => {
            print_diagnostics(errors.errors.iter().chain(&errors.warnings));
            Err(Fatal::config(errors.summary()))
        }
    }
}

fn print_diagnostics<'a>(diagnostics: impl IntoIterator<Item = &'a app::Diagnostic>) {
    let mut stderr = std::io::stderr().lock();
    for diagnostic in diagnostics {
        // Nothing sensible to do if standard error is gone.
        let _ = writeln!(stderr, "{diagnostic}");
    }
}

/// Writes to standard output, mapping failure to a runtime error.
pub(crate) fn write_stdout(text: &str) -> Result<()> {
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(|e| Fatal::runtime(format!("cannot write to standard output: {e}")))
}
