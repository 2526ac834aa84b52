//! The app's tables as the worker uses them: what a body reads ([`EventView`] for an agent's
//! event, [`LocalView`] for timers, tasks, hooks and the web server), the changelog records
//! of an evaluation's changes, what the agents' consumer does with table partitions when its
//! own partitions come and go ([`TablePartitions`]), and the global tables' followers.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, MutexGuard};

use crate::app::App;
use crate::codec::Datum;
use crate::kafka::TopicPartition;
use crate::kafka::producer::Record;
use crate::script::{TableAccess, TableChange};
use crate::tables::{Held, Tables, changelog};

/// The value of `key` in any partition of `table` held here (a key lives in one partition).
fn find(tables: &Tables, table: usize, key: &Datum) -> Result<Option<Datum>, String> {
    let key = tables.encode_key(table, key)?;
    Ok(tables
        .held_partitions(table)
        .iter()
        .find_map(|(_, held)| held.rows.read().unwrap().get(&key).cloned()))
}

fn len_of(partitions: &[(u32, Arc<Held>)]) -> usize {
    partitions
        .iter()
        .map(|(_, held)| held.rows.read().unwrap().len())
        .sum()
}

fn keys_of(tables: &Tables, table: usize, partitions: &[(u32, Arc<Held>)]) -> Vec<Datum> {
    let mut keys = Vec::new();
    for (_, held) in partitions {
        let rows = held.rows.read().unwrap();
        keys.extend(rows.keys().map(|key| tables.decode_key(table, key)));
    }
    keys
}

/// What timers, tasks, hooks and the web server read: every partition held here.
pub struct LocalView {
    pub tables: Arc<Tables>,
}

impl TableAccess for LocalView {
    fn get(&self, table: usize, key: &Datum) -> Result<Option<Datum>, String> {
        find(&self.tables, table, key)
    }
    fn len(&self, table: usize) -> Result<usize, String> {
        Ok(len_of(&self.tables.held_partitions(table)))
    }
    fn keys(&self, table: usize) -> Result<Vec<Datum>, String> {
        Ok(keys_of(
            &self.tables,
            table,
            &self.tables.held_partitions(table),
        ))
    }
    fn check_write(&self, table: usize) -> Result<(), String> {
        Err(format!(
            "table {}: tables are written by agents only (timers, tasks and hooks read them)",
            self.tables.def(table).name
        ))
    }
}

/// What an agent's body reads and writes for one job: its event's partition of each
/// partitioned table it uses, and global tables whole.
pub struct EventView {
    tables: Arc<Tables>,
    partition: u32,
    /// Per table (by index): the partition held for this job, for the partitioned tables the
    /// agent uses.
    held: Vec<Option<Arc<Held>>>,
}

impl EventView {
    /// The view of a job of partition `partition` for an agent using tables `used`.
    pub fn new(tables: Arc<Tables>, used: &[usize], partition: u32) -> EventView {
        let mut held = vec![None; tables.count()];
        for &table in used {
            if !tables.def(table).global {
                held[table] = tables.held(table, partition);
            }
        }
        EventView {
            tables,
            partition,
            held,
        }
    }

    /// Holds every partition of the view for the job: no other job changes them meanwhile.
    pub fn lock(&self) -> Vec<MutexGuard<'_, ()>> {
        self.held
            .iter()
            .flatten()
            .map(|held| held.writer.lock().unwrap_or_else(|e| e.into_inner()))
            .collect()
    }

    fn partition_of(&self, table: usize) -> Result<&Held, String> {
        self.held[table].as_deref().ok_or_else(|| {
            format!(
                "table {} partition {} is not held by this worker (it was given up)",
                self.tables.def(table).name,
                self.partition
            )
        })
    }

    /// Applies an evaluation's changes to the partitions held and returns their changelog
    /// records (table, record). Nothing is applied unless every change encodes.
    pub fn apply(&self, changes: &[TableChange]) -> Result<Vec<(usize, Record)>, String> {
        let mut encoded = Vec::with_capacity(changes.len());
        for change in changes {
            let table = change.table;
            let key = self.tables.encode_key(table, &change.key)?;
            let global = self.tables.def(table).global;
            let partition = (!global).then_some(self.partition);
            let record = self.tables.changelog_record(
                table,
                partition,
                key.clone(),
                change.value.as_ref(),
            )?;
            encoded.push((table, key, record));
        }
        for ((table, key, _), change) in encoded.iter().zip(changes) {
            // A global table changes when its changelog is read back: every worker alike.
            if let Some(held) = &self.held[*table] {
                held.rows
                    .write()
                    .unwrap()
                    .change(key.clone(), change.value.clone());
            }
        }
        Ok(encoded
            .into_iter()
            .map(|(table, _, record)| (table, record))
            .collect())
    }
}

impl TableAccess for EventView {
    fn get(&self, table: usize, key: &Datum) -> Result<Option<Datum>, String> {
        if self.tables.def(table).global {
            return find(&self.tables, table, key);
        }
        let key = self.tables.encode_key(table, key)?;
        let held = self.partition_of(table)?;
        Ok(held.rows.read().unwrap().get(&key).cloned())
    }
    fn len(&self, table: usize) -> Result<usize, String> {
        if self.tables.def(table).global {
            return Ok(len_of(&self.tables.held_partitions(table)));
        }
        Ok(self.partition_of(table)?.rows.read().unwrap().len())
    }
    fn keys(&self, table: usize) -> Result<Vec<Datum>, String> {
        let partitions = match &self.held[table] {
            Some(held) => vec![(self.partition, held.clone())],
            None => self.tables.held_partitions(table),
        };
        Ok(keys_of(&self.tables, table, &partitions))
    }
    fn check_write(&self, table: usize) -> Result<(), String> {
        if self.tables.def(table).global {
            return Ok(());
        }
        self.partition_of(table).map(|_| ())
    }
}

/// What the agents' consumer does with the partitions of the tables co-partitioned with its
/// own: recover them before their records are processed, store and drop them when given up.
pub struct TablePartitions {
    tables: Arc<Tables>,
    reader: rdkafka::ClientConfig,
    /// Agent topic -> the partitioned tables its agents use.
    by_topic: HashMap<String, Vec<usize>>,
}

impl TablePartitions {
    pub fn new(app: &App, tables: Arc<Tables>, reader: rdkafka::ClientConfig) -> TablePartitions {
        let mut by_topic: HashMap<String, Vec<usize>> = HashMap::new();
        for agent in &app.agents {
            let used = by_topic.entry(agent.topic.clone()).or_default();
            for &table in &agent.tables {
                if !app.tables[table].global && !used.contains(&table) {
                    used.push(table);
                }
            }
        }
        by_topic.retain(|_, tables| !tables.is_empty());
        TablePartitions {
            tables,
            reader,
            by_topic,
        }
    }

    /// Table partitions of `partitions`, grouped by table.
    fn of(&self, partitions: &[TopicPartition]) -> HashMap<usize, Vec<u32>> {
        let mut wanted: HashMap<usize, Vec<u32>> = HashMap::new();
        for tp in partitions {
            for &table in self.by_topic.get(&tp.topic).into_iter().flatten() {
                let numbers = wanted.entry(table).or_default();
                if !numbers.contains(&(tp.partition as u32)) {
                    numbers.push(tp.partition as u32);
                }
            }
        }
        wanted
    }

    /// Recovers the table partitions of `partitions` not held yet (blocks).
    pub fn recover(&self, partitions: &[TopicPartition]) -> Result<(), String> {
        for (table, numbers) in self.of(partitions) {
            let missing: Vec<u32> = numbers
                .into_iter()
                .filter(|&p| self.tables.held(table, p).is_none())
                .collect();
            let def = self.tables.def(table);
            if let Some(p) = missing.iter().find(|&&p| p >= def.partitions) {
                return Err(format!(
                    "table {} has {} partitions but this worker was assigned partition {p} of a topic its agents read: a table must have the partitions of its agents' topics",
                    def.name, def.partitions
                ));
            }
            if !missing.is_empty() {
                changelog::recover(&self.tables, &self.reader, table, &missing)?;
            }
        }
        Ok(())
    }

    /// Stores and stops holding the table partitions of `partitions` (given up).
    pub fn release(&self, partitions: &[TopicPartition]) {
        for (table, numbers) in self.of(partitions) {
            self.tables.release(table, &numbers);
        }
    }
}

/// Starts a follower thread for each global table and waits until each has read its
/// changelog to the end. The followers stop when `stop` is set.
pub async fn follow_global_tables(
    tables: &Arc<Tables>,
    reader: &rdkafka::ClientConfig,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    let mut waiting = Vec::new();
    for table in (0..tables.count()).filter(|&t| tables.def(t).global) {
        let (caught_up, wait) = tokio::sync::oneshot::channel::<()>();
        let name = tables.def(table).name.clone();
        waiting.push((name.clone(), wait));
        let (tables, reader, stop) = (tables.clone(), reader.clone(), stop.clone());
        std::thread::Builder::new()
            .name(format!("faust-rs-global-{name}"))
            .spawn(move || {
                let followed = changelog::follow(
                    &tables,
                    &reader,
                    table,
                    || {
                        let _ = caught_up.send(());
                    },
                    &stop,
                );
                if let Err(e) = followed {
                    tracing::error!("global table {name}: {e}; it is no longer kept up to date");
                }
            })
            .map_err(|e| format!("cannot start a follower of a global table: {e}"))?;
    }
    for (name, wait) in waiting {
        wait.await
            .map_err(|_| format!("global table {name} could not be read (see above)"))?;
    }
    Ok(())
}
