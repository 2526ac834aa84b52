//! Reading a table's changelog into the partitions this worker holds: a recovery reads each
//! partition from the position its local store reflects to the changelog's end, then the
//! partition is held; the global tables' follower reads every partition and never stops.
//!
//! One consumer per table, assigned (no group, nothing committed), reading committed records
//! only (an aborted transaction's changes never happened). librdkafka reports the end of a
//! partition (`enable.partition.eof`) by partition number alone, so one consumer never reads
//! two tables.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::store::{Change, Durability};
use super::{Held, Tables, count};
use crate::kafka::logs::QuietLogs;

/// How long a read may go without a record or an end of partition before it is given up: the
/// cluster is unreachable or refuses this worker.
const STALL: Duration = Duration::from_secs(60);
/// Bounds the question of where a partition begins and ends.
const WATERMARKS_TIMEOUT: Duration = Duration::from_secs(30);
/// Records read between two writes to the local store.
const STORE_BATCH: usize = 10_000;
const POLL_WAIT: Duration = Duration::from_millis(100);

/// A partition being read.
struct Slot {
    partition: u32,
    held: Arc<Held>,
    /// Read since the last write to the store.
    pending: Vec<Change>,
    /// The next offset to apply (everything before it is applied).
    next: i64,
    /// The changelog's end when reading began: reaching it is catching up (reaching its last
    /// stable offset may only show as the end of partition, past transaction markers).
    end: i64,
    caught_up: bool,
}

/// One table's changelog, read into held partitions.
struct Reader<'t> {
    tables: &'t Tables,
    table: usize,
    consumer: BaseConsumer<QuietLogs>,
    slots: HashMap<i32, Slot>,
    last_progress: Instant,
}

/// Recovers partitions `partitions` of table `table`: each loaded from the local store, then
/// brought up to date from the changelog, then held. Blocks until done.
pub fn recover(
    tables: &Tables,
    config: &ClientConfig,
    table: usize,
    partitions: &[u32],
) -> Result<(), String> {
    let started = Instant::now();
    let _recovering = Recovering::count(tables, partitions.len());
    tables.sync();
    // The broker holds a fetch at a partition's end for `fetch.wait.max.ms` (500 ms) before
    // the reader learns it is there: every recovery, and the rebalance waiting for it, would
    // pay that. A follower keeps the default: it fetches all the time.
    let mut config = config.clone();
    config.set("fetch.wait.max.ms", "10");
    let mut reader = Reader::open(tables, &config, table, partitions, false)?;
    let replayed = reader.until_caught_up()?;
    reader.store_pending(Durability::Immediate)?;
    for slot in reader.slots.into_values() {
        slot.held.rows.write().unwrap().mark_stored();
        tables.hold(table, slot.partition, slot.held);
    }
    tracing::info!(
        "table {} recovered partitions {partitions:?}: {replayed} changelog records read in {} ms",
        tables.def(table).name,
        started.elapsed().as_millis()
    );
    Ok(())
}

/// Counts partitions as recovering for as long as it lives, however the recovery ends.
struct Recovering<'t> {
    tables: &'t Tables,
    partitions: u64,
}

impl<'t> Recovering<'t> {
    fn count(tables: &'t Tables, partitions: usize) -> Recovering<'t> {
        let partitions = partitions as u64;
        count(&tables.progress.recovering, partitions);
        Recovering { tables, partitions }
    }
}

impl Drop for Recovering<'_> {
    fn drop(&mut self) {
        let recovering = &self.tables.progress.recovering;
        recovering.fetch_sub(self.partitions, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Follows every partition of global table `table` until `stop` is set: the partitions are
/// held from the start (loaded from the store), and `caught_up` is called once they have read
/// the changelog to its end.
pub fn follow(
    tables: &Tables,
    config: &ClientConfig,
    table: usize,
    caught_up: impl FnOnce(),
    stop: &std::sync::atomic::AtomicBool,
) -> Result<(), String> {
    let partitions: Vec<u32> = (0..tables.def(table).partitions).collect();
    let mut reader = Reader::open(tables, config, table, &partitions, true)?;
    for slot in reader.slots.values() {
        tables.hold(table, slot.partition, slot.held.clone());
    }
    reader.until_caught_up()?;
    reader.store_pending(Durability::Immediate)?;
    caught_up();
    let mut stored_at = Instant::now();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        reader.turn(true)?;
        if stored_at.elapsed() >= Duration::from_secs(1) {
            reader.store_pending(Durability::None)?;
            stored_at = Instant::now();
        }
    }
    reader.store_pending(Durability::Immediate)
}

impl<'t> Reader<'t> {
    /// Loads each partition from the store and assigns the consumer from the store's
    /// positions (from the beginning when the store does not fit the changelog). `following`:
    /// every partition is read, even those the store has whole, for what comes next.
    fn open(
        tables: &'t Tables,
        config: &ClientConfig,
        table: usize,
        partitions: &[u32],
        following: bool,
    ) -> Result<Reader<'t>, String> {
        let consumer: BaseConsumer<QuietLogs> = config
            .create_with_context(QuietLogs)
            .map_err(|e| format!("cannot create the changelog reader: {e}"))?;
        let mut reader = Reader {
            tables,
            table,
            consumer,
            slots: HashMap::new(),
            last_progress: Instant::now(),
        };
        let mut assignment = TopicPartitionList::new();
        for &partition in partitions {
            let slot = reader.load(partition)?;
            if following || !slot.caught_up {
                assignment
                    .add_partition_offset(
                        reader.topic(),
                        partition as i32,
                        Offset::Offset(slot.next),
                    )
                    .map_err(|e| e.to_string())?;
            }
            reader.slots.insert(partition as i32, slot);
        }
        reader
            .consumer
            .assign(&assignment)
            .map_err(|e| format!("cannot read the changelog {}: {e}", reader.topic()))?;
        Ok(reader)
    }

    fn topic(&self) -> &str {
        &self.tables.def(self.table).changelog
    }

    /// A partition as the store has it, and where to read its changelog from.
    fn load(&self, partition: u32) -> Result<Slot, String> {
        let store = self.tables.store(self.table);
        let (low, high) = self.watermarks(partition)?;
        let mut position = store.position(partition)?;
        if position.is_some_and(|p| p < low || p > high) {
            // The topic was recreated or its head deleted: the store describes another log.
            tracing::warn!(
                "table {} partition {partition}: the local store (at {}) does not fit the changelog ({low}..{high}); rebuilt from the changelog",
                self.tables.def(self.table).name,
                position.unwrap_or_default()
            );
            store.clear(partition)?;
            position = None;
        }
        let held = Arc::new(Held::default());
        let mut rows = held.rows.write().unwrap();
        let stored = store.partition(partition)?;
        rows.reserve(stored.len());
        for (key, value) in stored {
            let value = self.tables.decode_value(self.table, &value)?;
            rows.load(key, Some(value));
        }
        count(&self.tables.progress.rows_loaded, rows.len() as u64);
        let next = position.unwrap_or(low);
        rows.advance(next);
        drop(rows);
        count(
            &self.tables.progress.records_to_read,
            (high - next).max(0) as u64,
        );
        Ok(Slot {
            partition,
            held,
            pending: Vec::new(),
            next,
            end: high,
            caught_up: next >= high,
        })
    }

    /// Where `partition` begins and ends. Retried until [`WATERMARKS_TIMEOUT`]: right after
    /// the changelog is created its partitions may have no leader yet.
    fn watermarks(&self, partition: u32) -> Result<(i64, i64), String> {
        let deadline = Instant::now() + WATERMARKS_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .consumer
                .fetch_watermarks(self.topic(), partition as i32, left)
            {
                Ok(watermarks) => return Ok(watermarks),
                Err(e) if left.is_zero() => {
                    return Err(format!(
                        "cannot find the end of {}[{partition}]: {e}",
                        self.topic()
                    ));
                }
                Err(e) => {
                    tracing::debug!("{}[{partition}]: {e}; asking again", self.topic());
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    /// Reads until every partition reached the changelog's end; the records read.
    fn until_caught_up(&mut self) -> Result<u64, String> {
        let mut read = 0;
        while self.slots.values().any(|slot| !slot.caught_up) {
            read += self.turn(false)?;
        }
        Ok(read)
    }

    /// One poll: applies a record, or notes a partition's end. Fails after [`STALL`] without
    /// either (unless `following`: a followed changelog may be quiet for good).
    fn turn(&mut self, following: bool) -> Result<u64, String> {
        let polled = self.consumer.poll(POLL_WAIT);
        let read = match polled {
            None if following => return Ok(0),
            None if self.last_progress.elapsed() < STALL => return Ok(0),
            None => {
                return Err(format!(
                    "reading the changelog {} made no progress in {} s",
                    self.topic(),
                    STALL.as_secs()
                ));
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                self.caught_up(partition);
                0
            }
            Some(Err(e)) => {
                tracing::warn!("changelog {}: {e}", self.topic());
                return Ok(0);
            }
            Some(Ok(message)) => {
                let key = message.key().map(<[u8]>::to_vec);
                let value = message.payload().map(<[u8]>::to_vec);
                self.apply(message.partition(), message.offset(), key, value)?;
                1
            }
        };
        self.last_progress = Instant::now();
        Ok(read)
    }

    /// The consumer reached the end of `partition`: its position is where reading stopped
    /// (past the markers of transactions too).
    fn caught_up(&mut self, partition: i32) {
        let position = self.consumer.position().ok().and_then(|list| {
            let element =
                list.find_partition(self.tables.def(self.table).changelog.as_str(), partition)?;
            element.offset().to_raw()
        });
        if let Some(slot) = self.slots.get_mut(&partition) {
            slot.caught_up = true;
            if let Some(position) = position {
                slot.next = slot.next.max(position);
                slot.held.rows.write().unwrap().advance(slot.next);
            }
        }
    }

    fn apply(
        &mut self,
        partition: i32,
        offset: i64,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
    ) -> Result<(), String> {
        let (tables, table) = (self.tables, self.table);
        let Some(slot) = self.slots.get_mut(&partition) else {
            return Ok(());
        };
        slot.next = offset + 1;
        slot.caught_up |= slot.next >= slot.end;
        count(&tables.progress.records_read, 1);
        let Some(key) = key else {
            tracing::warn!(
                "changelog {}[{partition}] offset {offset}: no key; skipped",
                tables.def(table).changelog
            );
            return Ok(());
        };
        let decoded = match &value {
            None => None,
            Some(bytes) => match tables.decode_value(table, bytes) {
                Ok(datum) => Some(datum),
                Err(e) => {
                    tracing::warn!(
                        "{e} at {}[{partition}] offset {offset}; skipped",
                        tables.def(table).changelog
                    );
                    return Ok(());
                }
            },
        };
        {
            let mut rows = slot.held.rows.write().unwrap();
            rows.load(key.clone(), decoded);
            rows.advance(slot.next);
        }
        slot.pending.push((key, value));
        if slot.pending.len() >= STORE_BATCH {
            self.store_pending(Durability::None)?;
        }
        Ok(())
    }

    /// Writes what was read since the last write, with each partition's position.
    fn store_pending(&mut self, durability: Durability) -> Result<(), String> {
        let batches: Vec<(u32, Vec<Change>, i64)> = self
            .slots
            .values_mut()
            .filter(|slot| !slot.pending.is_empty() || matches!(durability, Durability::Immediate))
            .map(|slot| (slot.partition, std::mem::take(&mut slot.pending), slot.next))
            .collect();
        let borrowed: Vec<(u32, &[Change], i64)> = batches
            .iter()
            .map(|(p, changes, next)| (*p, changes.as_slice(), *next))
            .collect();
        self.tables
            .store(self.table)
            .apply_all(&borrowed, durability)
    }
}
