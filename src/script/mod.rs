//! Rhai scripts: the sandboxed engine, its limits, the functions scripts may call, and the
//! conversion between payloads and Rhai values. Scripts never see Kafka types: an evaluation
//! takes an event and returns what the script asked to send; the worker does the I/O.
//!
//! - `limits.rs`: [`ScriptLimits`], the bounds of one evaluation;
//! - `engine.rs`: [`ScriptEngine`] (the sandbox), [`Script`] (a compiled body) and its `run`;
//! - `functions.rs`: what scripts may call (`send`, `print`, `random`, `now`, `is_leader`...);
//! - `convert.rs`: payload values ([`crate::codec::Datum`]) to Rhai values and back;
//! - `event.rs`: what an evaluation gets ([`Event`]) and gives back ([`Outcome`]);
//! - `host.rs`: what the runtime tells scripts ([`Host`]);
//! - `context.rs`: how registered functions reach the running evaluation's outbox and host;
//! - `tables.rs`: tables as scripts see them ([`Table`], [`TableAccess`], [`TableChange`]);
//! - `table_functions.rs`: what scripts may do with a table, reading their own writes;
//! - `errors.rs`: [`CompileError`] and [`RunError`].

mod context;
pub mod convert;
mod engine;
mod errors;
mod event;
mod functions;
mod host;
mod limits;
mod table_functions;
mod tables;

pub(crate) use engine::mentions;
pub use engine::{
    Agent, BodyKind, EVENT_VARIABLES, PrintSink, Script, ScriptEngine, ScriptNames,
    check_agent_name, check_table_name, write_print_line,
};
pub use errors::{CompileError, RunError, RunErrorKind};
pub use event::{
    EPOCH_HEADER, Event, Outcome, OutgoingRecord, SendTarget, encode_epoch, parse_epoch,
};
pub use functions::uuid_v4;
pub use host::{Host, StaticHost};
pub use limits::ScriptLimits;
pub use tables::{NoTables, Table, TableAccess, TableChange, TableName};

#[cfg(test)]
mod tests;
