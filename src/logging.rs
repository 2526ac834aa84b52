//! Log set-up from the global flags: `-l LEVEL`, `--json`, `-f FILE`. Log lines go to standard
//! error (or the file) so that standard output belongs to the scripts' `print`, as in Faust's
//! tutorial where the greetings are printed to the console.

use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

use crate::cli::{GlobalOptions, LogLevel};
use crate::exit::{Fatal, Result};

fn directive(level: LogLevel) -> &'static str {
    match level {
        // tracing has no level above error; `crit` keeps only errors.
        LogLevel::Crit | LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
    }
}

/// Installs the global subscriber. `FAUST_RS_LOG` (an `EnvFilter` directive such as
/// `faust_rs=debug,rdkafka=info`) overrides `-l` for finer control.
pub fn init(options: &GlobalOptions) -> Result<()> {
    let filter = match std::env::var("FAUST_RS_LOG") {
        Ok(spec) if !spec.is_empty() => EnvFilter::try_new(&spec)
            .map_err(|e| Fatal::config(format!("FAUST_RS_LOG={spec:?}: {e}")))?,
        _ => EnvFilter::new(directive(options.loglevel)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        // A log line that cannot be written (stderr closed: a dead log shipper, `| head`) is
        // lost; reporting that on the same broken stderr would panic the worker.
        .log_internal_errors(false);
    let result = match (&options.logfile, options.json) {
        (Some(path), json) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| {
                    Fatal::config(format!("cannot open log file {}: {e}", path.display()))
                })?;
            let builder = builder.with_ansi(false).with_writer(Mutex::new(file));
            if json {
                builder.json().try_init()
            } else {
                builder.try_init()
            }
        }
        (None, true) => builder.with_writer(std::io::stderr).json().try_init(),
        // Colours only for a terminal: operators redirect workers' stderr to files.
        (None, false) => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .try_init(),
    };
    result.map_err(|e| Fatal::runtime(format!("cannot install the logger: {e}")))
}
