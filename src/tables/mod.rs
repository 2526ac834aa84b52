//! Tables (Faust's `Table` and `GlobalTable`): keyed state kept per partition, every change
//! written to a compacted changelog topic, each worker's partitions kept in a local store in
//! its data directory so that a restarted worker reads only the changelog's tail.
//!
//! - `rows.rs`: a partition held in memory ([`Held`]);
//! - `store.rs`: the local store (redb), rows and changelog positions written together;
//! - `writer.rs`: the thread that writes what the store is to take, in order;
//! - `changelog.rs`: reading changelog partitions into held partitions (recovery, and the
//!   global tables' follower).
//!
//! Above `kafka/` (it reads changelogs with a plain consumer), below the worker; nothing here
//! knows of Rhai. Values are held decoded ([`Datum`]); keys as the changelog encodes them, so
//! that two values with one encoding are one key.

pub mod changelog;
pub mod rows;
pub mod store;
mod writer;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::app::Table;
use crate::codec::{self, Datum};
use crate::kafka::producer::Record;
pub use rows::{Held, Rows};
use store::TableStore;
use writer::{StoreWriter, Written};

/// Every table of the app as this worker holds it.
pub struct Tables {
    tables: Vec<TableState>,
    writer: StoreWriter,
    /// Recovery figures, for `/ready` and the USR1 dump.
    pub progress: Progress,
}

impl std::fmt::Debug for Tables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.tables.iter().map(|t| t.def.name.as_str()).collect();
        f.debug_struct("Tables")
            .field("tables", &names)
            .finish_non_exhaustive()
    }
}

struct TableState {
    def: Table,
    store: Arc<TableStore>,
    held: RwLock<HashMap<u32, Arc<Held>>>,
}

/// What recoveries are doing.
#[derive(Debug, Default)]
pub struct Progress {
    /// Table partitions being recovered now.
    pub recovering: AtomicU64,
    /// Changelog records read by recoveries (and the global tables' follower) so far.
    pub records_read: AtomicU64,
    /// Changelog records the recoveries under way had to read when they started.
    pub records_to_read: AtomicU64,
    /// Rows loaded from local stores so far.
    pub rows_loaded: AtomicU64,
}

impl Tables {
    /// Opens each table's store under `dir` (`{dir}/{table}.redb`).
    pub fn open(tables: &[Table], dir: &Path) -> Result<Arc<Tables>, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the tables' folder {}: {e}", dir.display()))?;
        let mut states = Vec::new();
        for def in tables {
            let store = TableStore::open(&dir.join(format!("{}.redb", def.name)))?;
            states.push(TableState {
                def: def.clone(),
                store: Arc::new(store),
                held: RwLock::new(HashMap::new()),
            });
        }
        let stores = states.iter().map(|t| t.store.clone()).collect();
        let writer = StoreWriter::start(stores)
            .map_err(|e| format!("cannot start the tables' store writer: {e}"))?;
        Ok(Arc::new(Tables {
            tables: states,
            writer,
            progress: Progress::default(),
        }))
    }

    /// Per table: its name and the keys held here.
    pub fn sizes(&self) -> Vec<(String, usize)> {
        (0..self.tables.len())
            .map(|table| {
                let keys = self
                    .held_partitions(table)
                    .iter()
                    .map(|(_, held)| held.rows.read().unwrap().len())
                    .sum();
                (self.def(table).name.clone(), keys)
            })
            .collect()
    }

    pub fn count(&self) -> usize {
        self.tables.len()
    }

    pub fn def(&self, table: usize) -> &Table {
        &self.tables[table].def
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.tables.iter().position(|t| t.def.name == name)
    }

    pub(crate) fn store(&self, table: usize) -> &TableStore {
        &self.tables[table].store
    }

    /// Partition `partition` of table `table`, when this worker holds it.
    pub fn held(&self, table: usize, partition: u32) -> Option<Arc<Held>> {
        let held = self.tables[table].held.read().unwrap();
        held.get(&partition).cloned()
    }

    /// Every partition of table `table` this worker holds, in partition order.
    pub fn held_partitions(&self, table: usize) -> Vec<(u32, Arc<Held>)> {
        let held = self.tables[table].held.read().unwrap();
        let mut partitions: Vec<_> = held.iter().map(|(p, h)| (*p, h.clone())).collect();
        partitions.sort_by_key(|(p, _)| *p);
        partitions
    }

    /// Makes `held` partition `partition` of table `table` (after its recovery).
    pub fn hold(&self, table: usize, partition: u32, held: Arc<Held>) {
        self.tables[table]
            .held
            .write()
            .unwrap()
            .insert(partition, held);
    }

    /// A key as the changelog and the store encode it.
    pub fn encode_key(&self, table: usize, key: &Datum) -> Result<Vec<u8>, String> {
        let def = self.def(table);
        match codec::encode(def.key_serializer, key) {
            Ok(Some(bytes)) => Ok(bytes),
            Ok(None) => Err(format!("table {}: a key cannot be null", def.name)),
            Err(e) => Err(format!("table {}: key: {e}", def.name)),
        }
    }

    /// A key as the scripts see it.
    pub fn decode_key(&self, table: usize, key: &[u8]) -> Datum {
        let def = self.def(table);
        codec::decode(def.key_serializer, Some(key)).unwrap_or_else(|_| Datum::Bytes(key.to_vec()))
    }

    /// A value as the changelog holds it (`None` for a removal: a tombstone).
    pub fn encode_value(
        &self,
        table: usize,
        value: Option<&Datum>,
    ) -> Result<Option<Vec<u8>>, String> {
        let def = self.def(table);
        match value {
            None => Ok(None),
            // `null` encodes as no payload: a tombstone, as a removal is.
            Some(value) => codec::encode(def.value_serializer, value)
                .map_err(|e| format!("table {}: value: {e}", def.name)),
        }
    }

    pub fn decode_value(&self, table: usize, value: &[u8]) -> Result<Datum, String> {
        let def = self.def(table);
        codec::decode(def.value_serializer, Some(value))
            .map_err(|e| format!("table {}: changelog value: {e}", def.name))
    }

    /// The changelog record of a change. `partition`: the event's, for a partitioned table;
    /// `None` for a global one (the key's partition, as the producer's partitioner places it).
    pub fn changelog_record(
        &self,
        table: usize,
        partition: Option<u32>,
        key: Vec<u8>,
        value: Option<&Datum>,
    ) -> Result<Record, String> {
        Ok(Record {
            topic: self.def(table).changelog.clone(),
            partition: partition.map(|p| p as i32),
            key: Some(key),
            value: self.encode_value(table, value)?,
        })
    }

    /// The changelog acknowledged a change of partition `partition` at `offset`.
    pub fn acknowledged(&self, table: usize, partition: u32, offset: i64) {
        if let Some(held) = self.held(table, partition) {
            held.rows.write().unwrap().advance(offset + 1);
        }
    }

    /// Hands what changed in the partitions held to the store writer. `durable`: on disk
    /// before the writer takes anything else (when partitions are given up, at shutdown).
    /// Global tables are left out: their follower stores what it reads itself, rows and
    /// positions together.
    pub fn flush(&self, durable: bool) {
        for table in 0..self.tables.len() {
            if self.def(table).global {
                continue;
            }
            let partitions: Vec<u32> = self
                .held_partitions(table)
                .iter()
                .map(|(p, _)| *p)
                .collect();
            self.flush_partitions(table, &partitions, durable);
        }
    }

    /// Flushes partitions `partitions` of table `table` and stops holding them.
    pub fn release(&self, table: usize, partitions: &[u32]) {
        self.flush_partitions(table, partitions, true);
        let mut held = self.tables[table].held.write().unwrap();
        for partition in partitions {
            held.remove(partition);
        }
    }

    /// Stops holding partitions without flushing what changed (an aborted transaction's
    /// changes: the store and the changelog are the truth to recover from).
    pub fn discard(&self, table: usize, partitions: &[u32]) {
        let mut held = self.tables[table].held.write().unwrap();
        for partition in partitions {
            held.remove(partition);
        }
    }

    /// Stops holding every partition changed since the last flush (an aborted transaction
    /// changed them): they are recovered before they are used again.
    pub fn discard_changed(&self) {
        for table in (0..self.tables.len()).filter(|&t| !self.def(t).global) {
            let changed: Vec<u32> = self
                .held_partitions(table)
                .into_iter()
                .filter(|(_, held)| held.rows.read().unwrap().changed())
                .map(|(p, _)| p)
                .collect();
            self.discard(table, &changed);
        }
    }

    fn flush_partitions(&self, table: usize, partitions: &[u32], durable: bool) {
        let mut batches = Vec::new();
        for &partition in partitions {
            let Some(held) = self.held(table, partition) else {
                continue;
            };
            let Some(taken) = held.rows.write().unwrap().take() else {
                continue;
            };
            let mut changes = Vec::with_capacity(taken.changes.len());
            for (key, value) in taken.changes {
                match self.encode_value(table, value.as_ref()) {
                    Ok(value) => changes.push((key, value)),
                    // Encoded once already for the changelog: cannot fail here.
                    Err(e) => tracing::error!("{e}; not stored locally"),
                }
            }
            batches.push((partition, changes, taken.position));
        }
        if !batches.is_empty() || durable {
            self.writer.write(Written {
                table,
                batches,
                durable,
            });
        }
    }

    /// Waits until the store writer has written everything handed to it so far.
    pub fn sync(&self) {
        self.writer.sync();
    }
}

/// Adds `n` to a progress counter.
pub(crate) fn count(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}
