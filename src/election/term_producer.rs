//! Broker-side fencing of a leader's records. Every candidate of an election produces its
//! leader records under one transactional id, in one transaction per leader action. A new
//! leader starts its term with `init_transactions`, which makes the broker fence the previous
//! holder of that id: a transaction the old leader still had open (a paused process, a
//! partitioned one) is aborted, and its records — even if librdkafka delivers them later —
//! are never seen by read-committed consumers (librdkafka's default). The epoch header and
//! `drop_stale_epochs` remain for consumers reading uncommitted data.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer as _;
use rdkafka::types::RDKafkaErrorCode;

use crate::kafka::producer::{self, KafkaProducer, Producer, Record};

/// The transactional producer of one term.
pub struct TermProducer {
    producer: Producer,
    /// One transaction at a time: timers and hooks of the election take turns.
    turn: tokio::sync::Mutex<()>,
}

/// Why a leader action's records were not committed.
#[derive(Debug)]
pub enum TermSendError {
    /// A newer leader fenced this producer, or its transaction cannot be settled: the term is
    /// over.
    Fenced(String),
    /// Anything else (encoding, a broker error): this action failed, the term goes on.
    Failed(String),
}

impl std::fmt::Display for TermSendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TermSendError::Fenced(e) => write!(f, "the term's producer is done for: {e}"),
            TermSendError::Failed(e) => f.write_str(e),
        }
    }
}

/// Bounds every blocking transactional call.
const TRANSACTION_CALL_TIMEOUT: Duration = Duration::from_secs(10);

fn classify(action: &str, error: KafkaError) -> TermSendError {
    let message = format!("{action}: {error}");
    let fenced = match &error {
        KafkaError::Transaction(e) => e.is_fatal(),
        _ => false,
    };
    if fenced {
        TermSendError::Fenced(message)
    } else {
        TermSendError::Failed(message)
    }
}

impl TermProducer {
    /// Creates the producer and fences every earlier holder of its transactional id.
    /// `config` is a producer configuration with `transactional.id` set; `topic` is the
    /// election's (see [`connect`]).
    pub async fn open(config: &ClientConfig, topic: &str) -> Result<TermProducer, String> {
        let producer = producer::create(config)
            .map_err(|e| format!("cannot create the leader's producer: {e}"))?;
        Self::fence(producer, topic).await
    }

    /// Creates the producer ahead of a term and starts connecting it, so that the hand-off
    /// need not wait for either; [`TermProducer::fence`] starts the term with it.
    pub fn prepare(config: &ClientConfig, topic: &str) -> Result<KafkaProducer, String> {
        let producer = producer::create(config)
            .map_err(|e| format!("cannot create the leader's producer: {e}"))?;
        let connecting = producer.clone();
        let topic = topic.to_string();
        tokio::task::spawn_blocking(move || connect(&connecting, &topic));
        Ok(producer)
    }

    /// Fences every earlier holder of the transactional id with a prepared producer.
    pub async fn fence(producer: KafkaProducer, topic: &str) -> Result<TermProducer, String> {
        let initializing = producer.clone();
        let topic = topic.to_string();
        tokio::task::spawn_blocking(move || {
            connect(&initializing, &topic);
            initializing.init_transactions(TRANSACTION_CALL_TIMEOUT)
        })
        .await
        .map_err(|e| format!("init_transactions: {e}"))?
        .map_err(|e| format!("cannot fence earlier leaders (init_transactions): {e}"))?;
        Ok(TermProducer {
            producer: Producer::new(producer),
            turn: tokio::sync::Mutex::new(()),
        })
    }

    /// Sends `records` in one transaction and commits it (which waits for every record to be
    /// acknowledged). Returns how many were sent.
    pub async fn send_all(
        &self,
        records: &[Record],
        headers: &[(&str, &[u8])],
    ) -> Result<usize, TermSendError> {
        if records.is_empty() {
            return Ok(0);
        }
        let _turn = self.turn.lock().await;
        let producer = self.producer.inner().clone();
        producer
            .begin_transaction()
            .map_err(|e| classify("begin_transaction", e))?;
        let mut failure = None;
        for record in records {
            // The delivery futures need not be awaited: committing waits for every record.
            if let Err(e) = self.producer.send(record, headers).await {
                failure = Some(TermSendError::Failed(e));
                break;
            }
        }
        let result = tokio::task::spawn_blocking(move || match failure {
            None => commit(&producer),
            Some(failure) => abort(&producer).and(Err(failure)),
        })
        .await
        .map_err(|e| TermSendError::Failed(format!("transaction task: {e}")))?;
        result.map(|()| records.len())
    }
}

/// How many times a transaction's commit or abort is resumed after a call timed out: while a
/// broker the transaction involves is being replaced (about 10 s), one call can time out.
const SETTLE_ATTEMPTS: usize = 3;

/// Commits the open transaction. A commit that timed out is resumed (librdkafka refuses any
/// other transactional call until it ends: a new `begin_transaction` would fail for good with
/// "Conflicting commit_transaction API call is already in progress"); one the broker refused
/// is aborted. A transaction that cannot be settled leaves the producer unusable, which ends
/// the term like fencing does: the next term's `init_transactions` aborts it.
fn commit(producer: &KafkaProducer) -> Result<(), TermSendError> {
    for _ in 0..SETTLE_ATTEMPTS {
        match producer.commit_transaction(TRANSACTION_CALL_TIMEOUT) {
            Ok(()) => return Ok(()),
            Err(e) if timed_out(&e) => {
                tracing::debug!("the leader's commit did not end in time ({e}); resuming it");
            }
            Err(KafkaError::Transaction(e)) if e.txn_requires_abort() => {
                let refused = TermSendError::Failed(format!("commit: {e}"));
                return abort(producer).and(Err(refused));
            }
            Err(e @ KafkaError::Transaction(_)) => return Err(classify("commit", e)),
            // Any other failure leaves the transaction open: abort it, or every later
            // `begin_transaction` fails ("Operation not valid in state InTransaction").
            Err(e) => {
                let failed = classify("commit", e);
                return abort(producer).and(Err(failed));
            }
        }
    }
    Err(stuck("commit"))
}

/// Whether a commit or abort call only ran out of time: the transaction is still being
/// settled and the call can be made again. rust-rdkafka's `commit_transaction` first flushes
/// the records sent, which can time out too (measured: while a partition's leader was being
/// replaced) and then leaves the transaction open.
fn timed_out(error: &KafkaError) -> bool {
    match error {
        KafkaError::Transaction(e) => e.is_retriable(),
        KafkaError::Flush(code) => *code == RDKafkaErrorCode::OperationTimedOut,
        _ => false,
    }
}

/// Aborts the open transaction, resuming an abort that timed out; `Err` only when the
/// producer is done for (see [`commit`]).
fn abort(producer: &KafkaProducer) -> Result<(), TermSendError> {
    for _ in 0..SETTLE_ATTEMPTS {
        match producer.abort_transaction(TRANSACTION_CALL_TIMEOUT) {
            Ok(()) => return Ok(()),
            Err(e) if timed_out(&e) => {
                tracing::debug!("the leader's abort did not end in time ({e}); resuming it");
            }
            // Fenced or not, a producer that cannot abort is unusable.
            Err(e) => return Err(TermSendError::Fenced(format!("abort: {e}"))),
        }
    }
    Err(stuck("abort"))
}

fn stuck(action: &str) -> TermSendError {
    TermSendError::Fenced(format!(
        "the leader's producer could not {action} its transaction in {} s",
        SETTLE_ATTEMPTS as u64 * TRANSACTION_CALL_TIMEOUT.as_secs()
    ))
}

/// Blocks until `producer` has a broker connection up, by fetching `topic`'s metadata (one
/// round trip once connected).
///
/// `init_transactions` on a producer with no connection up yet finds no broker for its
/// coordinator query and retries only after librdkafka's fixed 500 ms: measured as 503–506 ms
/// of fencing for a term won right after start-up, against 2–7 ms with a connected producer.
fn connect(producer: &KafkaProducer, topic: &str) {
    if let Err(e) = producer
        .client()
        .fetch_metadata(Some(topic), TRANSACTION_CALL_TIMEOUT)
    {
        tracing::debug!("the leader's producer cannot connect: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flush_that_ran_out_of_time_is_resumed_and_other_failures_are_not() {
        assert!(timed_out(&KafkaError::Flush(
            RDKafkaErrorCode::OperationTimedOut
        )));
        assert!(!timed_out(&KafkaError::Flush(RDKafkaErrorCode::Fenced)));
        assert!(!timed_out(&KafkaError::Canceled));
    }
}
