//! Exactly-once: the agents' transaction. Every record a job sends (an agent's sends, its
//! sinks' records, dead letters) goes out through one transactional producer per worker, and
//! the input offsets the jobs finished are committed in the same transaction with the
//! consumer's group metadata (KIP-447), so a read-committed reader sees a record's outputs
//! exactly when its offset is committed — once.
//!
//! One transaction is open at a time. The agents' loop begins it before the first job after a
//! commit, and settles it when a commit is due (the commit tick, `commit_every`, a revocation,
//! the warm shutdown): it holds new jobs back, waits for the running ones to end, then commits
//! offsets and records together — or aborts, when the partitions were lost or the commit
//! failed. This module owns the producer's side of that; the loop owns the timing.

use std::sync::Arc;

use rdkafka::consumer::Consumer;
use rdkafka::producer::Producer as _;

use super::consumer::AgentsConsumer;
use crate::kafka::producer::KafkaProducer;
use crate::kafka::transaction::{self, CALL_TIMEOUT, TransactionError};
use crate::kafka::{TopicPartition, position_list};

/// How a transaction ended.
#[derive(Debug)]
pub enum Settled {
    /// Its records and these offsets are committed.
    Committed(Vec<(TopicPartition, i64)>),
    /// It was aborted (why): what it did is processed again from the last commit.
    Aborted(String),
    /// The producer is done for (fenced by a newer holder of the worker's transactional id,
    /// or stuck): the worker must stop.
    Fenced(String),
}

/// The agents' transactional producer and where its transaction stands.
pub struct Transactions {
    producer: KafkaProducer,
    consumer: Arc<AgentsConsumer>,
    /// A transaction is begun and not yet settled.
    open: bool,
}

impl Transactions {
    /// `producer` must have run `init_transactions` (see [`initialize`]).
    pub fn new(producer: KafkaProducer, consumer: Arc<AgentsConsumer>) -> Self {
        Transactions {
            producer,
            consumer,
            open: false,
        }
    }

    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Begins a transaction unless one is open (a local call: nothing goes to the broker until
    /// the first record). `Err` when the producer cannot begin one: the worker must stop.
    pub fn ensure_begun(&mut self) -> Result<(), String> {
        if !self.open {
            self.producer
                .begin_transaction()
                .map_err(|e| format!("cannot begin the agents' transaction: {e}"))?;
            self.open = true;
        }
        Ok(())
    }

    /// Settles the open transaction on a blocking thread: commits it with `positions` (the
    /// offsets finished since the last commit), or aborts it when `abort` says why.
    pub fn settle(
        &mut self,
        positions: Vec<(TopicPartition, i64)>,
        abort: Option<String>,
    ) -> tokio::task::JoinHandle<Settled> {
        self.open = false;
        let (producer, consumer) = (self.producer.clone(), self.consumer.clone());
        tokio::task::spawn_blocking(move || match abort {
            Some(why) => abort_for(&producer, why),
            None => commit(&producer, &consumer, positions),
        })
    }

    /// Takes the open transaction, if any, to abort it as a worker that stops at once does:
    /// one attempt bounded by `patience`, so read-committed readers of its outputs need not
    /// wait for the broker to time it out. Returns that blocking call.
    pub fn abandon(
        &mut self,
        patience: std::time::Duration,
    ) -> Option<impl FnOnce() + Send + 'static> {
        if !std::mem::take(&mut self.open) {
            return None;
        }
        let producer = self.producer.clone();
        Some(move || {
            if let Err(e) = producer.abort_transaction(patience) {
                tracing::debug!(
                    "the agents' transaction was left open ({e}); the broker aborts it"
                );
            }
        })
    }
}

/// Makes `producer` the holder of its transactional id: the broker aborts whatever an earlier
/// process with the same id (this worker before a restart, or its zombie) left open, and fences
/// that process. Blocks.
pub fn initialize(producer: &KafkaProducer) -> Result<(), String> {
    producer
        .init_transactions(CALL_TIMEOUT)
        .map_err(|e| format!("cannot take the worker's transactional id (init_transactions): {e}"))
}

/// Adds `positions` to the transaction, then commits it.
fn commit(
    producer: &KafkaProducer,
    consumer: &AgentsConsumer,
    positions: Vec<(TopicPartition, i64)>,
) -> Settled {
    if !positions.is_empty() {
        let Some(group) = consumer.group_metadata() else {
            return abort_for(producer, "the consumer has no group metadata".into());
        };
        let offsets = position_list(&positions, "the transaction");
        if let Err(e) = producer.send_offsets_to_transaction(&offsets, &group, CALL_TIMEOUT) {
            return match transaction::classify("send_offsets_to_transaction", e) {
                TransactionError::Fenced(why) => Settled::Fenced(why),
                TransactionError::Failed(why) => abort_for(producer, why),
            };
        }
    }
    match transaction::commit(producer) {
        Ok(()) => Settled::Committed(positions),
        Err(TransactionError::Failed(why)) => Settled::Aborted(why),
        Err(TransactionError::Fenced(why)) => Settled::Fenced(why),
    }
}

fn abort_for(producer: &KafkaProducer, why: String) -> Settled {
    match transaction::abort(producer) {
        Ok(()) => Settled::Aborted(why),
        Err(e) => Settled::Fenced(format!("{why}; then {e}")),
    }
}
