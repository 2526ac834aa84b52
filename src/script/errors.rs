//! What goes wrong: a body that does not compile, and an evaluation that fails.

use std::fmt;

use rhai::{EvalAltResult, ParseError, Position};

use super::ScriptLimits;

/// A script that failed to compile, with the position inside the script (1-based; 0 when the
/// engine gave none).
#[derive(Debug, Clone, PartialEq)]
pub struct CompileError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for CompileError {}

impl From<ParseError> for CompileError {
    fn from(error: ParseError) -> Self {
        let (line, column) = line_column(error.position());
        CompileError {
            line,
            column,
            message: error.err_type().to_string(),
        }
    }
}

/// Why an evaluation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunErrorKind {
    /// The body itself failed: a type error, `throw`, a bad argument to a function, a result
    /// that cannot be sent...
    Script,
    /// The body ran more than `max_operations` operations (an endless loop, say).
    OperationLimit,
    /// A string, array, map, event, outbox or the table changes grew past its size limit.
    SizeLimit,
    /// Function calls nested deeper than `max_call_depth` (runaway recursion, say).
    CallDepthLimit,
    /// The body ran longer than `max_duration` (an endless loop with `max_operations = 0`, or
    /// slow operations).
    TimeLimit,
}

impl RunErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunErrorKind::Script => "script error",
            RunErrorKind::OperationLimit => "over the operation limit",
            RunErrorKind::SizeLimit => "over a size limit",
            RunErrorKind::CallDepthLimit => "over the call depth limit",
            RunErrorKind::TimeLimit => "over the time limit",
        }
    }
}

/// An evaluation that failed: what kind of failure, what happened, and where in the body
/// (1-based line and column; 0 when the failure has no position, e.g. a bad event).
#[derive(Debug, Clone, PartialEq)]
pub struct RunError {
    pub kind: RunErrorKind,
    pub message: String,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at {}:{}: {}",
            self.kind.as_str(),
            self.line,
            self.column,
            self.message
        )
    }
}

impl std::error::Error for RunError {}

impl RunError {
    /// An error with no position inside the body.
    pub(super) fn unplaced(kind: RunErrorKind, message: impl Into<String>) -> Self {
        RunError {
            kind,
            message: message.into(),
            line: 0,
            column: 0,
        }
    }

    /// Classifies an engine error. The position is the outermost one, which is inside the
    /// body (an error deep inside a script-defined function points at the call in the body);
    /// the kind and message come from the innermost error, so that runaway recursion is not
    /// reported as 64 nested "error in call to function" lines.
    pub(super) fn from_eval(error: Box<EvalAltResult>, limits: &ScriptLimits) -> Self {
        let (line, column) = line_column(error.position());
        let function = match &*error {
            EvalAltResult::ErrorInFunctionCall(name, ..) if !name.starts_with('$') => {
                Some(name.clone())
            }
            _ => None,
        };
        let mut inner = error;
        while let EvalAltResult::ErrorInFunctionCall(.., next, _)
        | EvalAltResult::ErrorInModule(.., next, _) = *inner
        {
            inner = next;
        }
        let (kind, message) = match &*inner {
            EvalAltResult::ErrorTooManyOperations(_) => (
                RunErrorKind::OperationLimit,
                format!(
                    "the body ran more than max_operations = {} operations (an endless loop?)",
                    limits.max_operations
                ),
            ),
            // Only our progress callback terminates an evaluation (see `ScriptLimits::apply`).
            EvalAltResult::ErrorTerminated(..) => (
                RunErrorKind::TimeLimit,
                format!(
                    "the body ran longer than max_duration = {} s (an endless loop?)",
                    limits.max_duration.as_secs_f64()
                ),
            ),
            EvalAltResult::ErrorStackOverflow(_) => (
                RunErrorKind::CallDepthLimit,
                format!(
                    "function calls nested deeper than max_call_depth = {} (runaway recursion?)",
                    limits.max_call_depth
                ),
            ),
            EvalAltResult::ErrorDataTooLarge(what, _) => {
                (RunErrorKind::SizeLimit, size_message(what, limits))
            }
            // `throw "..."` and the errors our functions raise: the message alone.
            EvalAltResult::ErrorRuntime(value, _) => (RunErrorKind::Script, value.to_string()),
            _ => {
                inner.clear_position();
                (RunErrorKind::Script, inner.to_string())
            }
        };
        let message = match function {
            Some(name) => format!("{message} (in function '{name}')"),
            None => message,
        };
        RunError {
            kind,
            message,
            line,
            column,
        }
    }
}

/// "size of array is over max_array_size = 10": what grew too large, and the limit it crossed.
/// `what` is the name rhai gives it in `ErrorDataTooLarge`.
pub(super) fn size_message(what: &str, limits: &ScriptLimits) -> String {
    let limit = match what {
        "Length of string" => format!("max_string_size = {}", limits.max_string_size),
        "Size of object map" => format!("max_map_size = {}", limits.max_map_size),
        TOO_MANY_SENDS => format!("max_sends = {}", limits.max_sends),
        TOO_MANY_TABLE_CHANGES => format!("max_table_changes = {}", limits.max_table_changes),
        // Arrays and BLOBs share `max_array_size`.
        _ => format!("max_array_size = {}", limits.max_array_size),
    };
    format!("{} is over {limit}", what.to_lowercase())
}

/// What `ErrorDataTooLarge` names when a body sends more than `max_sends` records.
pub(super) const TOO_MANY_SENDS: &str = "Number of records sent";

/// What `ErrorDataTooLarge` names when a body changes more than `max_table_changes` keys.
pub(super) const TOO_MANY_TABLE_CHANGES: &str = "Number of table keys changed";

fn line_column(position: Position) -> (usize, usize) {
    (
        position.line().unwrap_or(0),
        position.position().unwrap_or(0),
    )
}
