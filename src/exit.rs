//! Exit statuses and the one error type that reaches `main`. Operators' scripts branch on the
//! status, so each has one meaning, documented in the README and the man page.

use std::fmt;
use std::process::ExitCode;

/// What a run of `faust-rs` ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Finished normally, or a warm shutdown completed: 0.
    Clean,
    /// A runtime failure after start-up (broker unreachable for too long, a crash): 1.
    Runtime,
    /// Bad usage or a bad app definition, detected before anything touched Kafka: 2.
    Config,
    /// A cold shutdown (QUIT, a second TERM/INT, or a warm shutdown past its deadline): the
    /// worker left events unfinished, which their next owner processes again: 3.
    Cold,
}

impl Status {
    pub fn code(self) -> u8 {
        match self {
            Status::Clean => 0,
            Status::Runtime => 1,
            Status::Config => 2,
            Status::Cold => 3,
        }
    }
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> Self {
        ExitCode::from(status.code())
    }
}

/// An error that ends the process, with the status it ends with. Its message is printed as is
/// (it may span lines, e.g. one line per problem in an app file).
#[derive(Debug)]
pub struct Fatal {
    pub status: Status,
    pub message: String,
}

impl Fatal {
    /// Bad input: a bad flag, a bad app file, a port or data directory already in use.
    pub fn config(message: impl Into<String>) -> Self {
        Fatal {
            status: Status::Config,
            message: message.into(),
        }
    }

    /// A failure at run time.
    pub fn runtime(message: impl Into<String>) -> Self {
        Fatal {
            status: Status::Runtime,
            message: message.into(),
        }
    }
}

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fatal {}

pub type Result<T, E = Fatal> = std::result::Result<T, E>;
