//! Tables as scripts see them: a handle bound to the table's name in every body
//! (`counts[key] += 1`, `counts.get(k)`, `counts.set(k, v)`, `counts.remove(k)`,
//! `counts.contains(k)`, `counts.len()`, `counts.keys()`), reading through a [`TableAccess`]
//! the runtime gives the evaluation, and writing into the evaluation's outcome
//! ([`TableChange`]s), which the runtime applies once the evaluation succeeded: a failed
//! evaluation changes no table, as it sends nothing.
//!
//! Scripts never see where a table lives (memory, local store, changelog): the runtime's
//! [`TableAccess`] answers in decoded values ([`Datum`]).

use crate::codec::Datum;

/// A table a script may name: its name (a variable in every body) and the value of a missing
/// key (`t[k]`; `()` when `null`).
#[derive(Debug, Clone, PartialEq)]
pub struct TableName {
    pub name: String,
    pub default: Datum,
}

/// One change an evaluation made to a table: `key` set to `value`, or removed (`None`).
#[derive(Debug, Clone, PartialEq)]
pub struct TableChange {
    /// Index of the table in [`crate::script::ScriptNames::tables`].
    pub table: usize,
    pub key: Datum,
    pub value: Option<Datum>,
}

/// What an evaluation may read of the tables, answered by the runtime. An agent's evaluation
/// reads its event's partition (and global tables whole); a timer's, task's or hook's reads the
/// partitions this worker holds.
pub trait TableAccess: Send + Sync {
    /// The value of `key` in table `table`, `None` when missing (or not held here).
    fn get(&self, table: usize, key: &Datum) -> Result<Option<Datum>, String>;
    /// How many keys table `table` holds, as this evaluation sees it.
    fn len(&self, table: usize) -> Result<usize, String>;
    /// The keys of table `table`, as this evaluation sees it.
    fn keys(&self, table: usize) -> Result<Vec<Datum>, String>;
    /// Whether this evaluation may change table `table` (why not, otherwise): only agents
    /// write, and only to the partition of their event.
    fn check_write(&self, table: usize) -> Result<(), String>;
}

/// Access for evaluations that have no tables to read (no table is held): every read misses,
/// every write is refused.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTables;

impl TableAccess for NoTables {
    fn get(&self, _table: usize, _key: &Datum) -> Result<Option<Datum>, String> {
        Ok(None)
    }
    fn len(&self, _table: usize) -> Result<usize, String> {
        Ok(0)
    }
    fn keys(&self, _table: usize) -> Result<Vec<Datum>, String> {
        Ok(Vec::new())
    }
    fn check_write(&self, _table: usize) -> Result<(), String> {
        Err("tables are written by agents only".into())
    }
}
