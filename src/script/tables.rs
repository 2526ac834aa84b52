//! Tables as scripts see them: a handle bound to the table's name in every body
//! (`counts[key] += 1`, `counts.get(k)`, `counts.set(k, v)`, `counts.remove(k)`,
//! `counts.contains(k)`, `counts.len()`, `counts.keys()`), reading through a [`TableAccess`]
//! the runtime gives the evaluation, and writing into the evaluation's outcome
//! ([`TableChange`]s), which the runtime applies once the evaluation succeeded: a failed
//! evaluation changes no table, as it sends nothing.
//!
//! Scripts never see where a table lives (memory, local store, changelog): the runtime's
//! [`TableAccess`] answers in decoded values ([`Datum`]).

use std::sync::Arc;

use rhai::ImmutableString;

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

/// A handle on one of the app's tables, bound to a variable of the table's name in the bodies
/// that mention it. A plain variable, not a constant: rhai refuses indexer sets and calls that
/// take their object mutably (`counts[k] = v`, `counts.set(k, v)`) on constants.
#[derive(Debug, Clone)]
pub struct Table {
    index: usize,
    name: ImmutableString,
    default: Arc<Datum>,
}

impl Table {
    /// The handle of the table at `index` in [`crate::script::ScriptNames::tables`].
    pub fn new(index: usize, table: &TableName) -> Self {
        Table {
            index,
            name: table.name.as_str().into(),
            default: Arc::new(table.default.clone()),
        }
    }

    pub fn index(&self) -> usize {
        self.index
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// What `t[k]` reads for a missing key.
    pub fn default(&self) -> &Datum {
        &self.default
    }
}

/// The changes an evaluation made so far, one per key changed: a key changed twice keeps its
/// first place and its last value, so `counts[k] += 1` twice is one change. Small per
/// evaluation (at most `max_table_changes`), and [`Datum`] has no hash: a linear scan.
#[derive(Debug, Default)]
pub(super) struct PendingChanges {
    changes: Vec<TableChange>,
}

/// Recording one more change would go over the limit it was given.
#[derive(Debug)]
pub(super) struct TooManyChanges;

impl PendingChanges {
    /// The pending value of `key` in `table`: `None` when the evaluation did not change it,
    /// `Some(None)` when it removed it.
    pub fn lookup(&self, table: usize, key: &Datum) -> Option<Option<&Datum>> {
        self.position(table, key)
            .map(|at| self.changes[at].value.as_ref())
    }

    /// Records `change`, replacing the value of an earlier change of the same key; a change of
    /// a key not changed yet is refused once `max` keys have been changed.
    pub fn record(&mut self, change: TableChange, max: usize) -> Result<(), TooManyChanges> {
        match self.position(change.table, &change.key) {
            Some(at) => self.changes[at].value = change.value,
            None if self.changes.len() >= max => return Err(TooManyChanges),
            None => self.changes.push(change),
        }
        Ok(())
    }

    /// The keys of `table` this evaluation changed, each with whether it is now set.
    pub fn keys_of(&self, table: usize) -> Vec<(Datum, bool)> {
        self.changes
            .iter()
            .filter(|change| change.table == table)
            .map(|change| (change.key.clone(), change.value.is_some()))
            .collect()
    }

    pub fn into_changes(self) -> Vec<TableChange> {
        self.changes
    }

    fn position(&self, table: usize, key: &Datum) -> Option<usize> {
        self.changes
            .iter()
            .position(|change| change.table == table && change.key == *key)
    }
}
