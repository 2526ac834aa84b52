//! Settling a Kafka transaction (commit or abort) with librdkafka's blocking calls, the same
//! way for every transactional producer of a worker: an election's term producer and the
//! agents' exactly-once producer. The calls block: run them off the async runtime's threads.

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::producer::{Producer as _, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

use super::poller::ServedProducer;

/// Why a transaction was not committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionError {
    /// The producer is done for: fenced by a newer holder of its transactional id, or left
    /// with a transaction it cannot settle. Only a new producer (whose `init_transactions`
    /// aborts what this one left open) can go on.
    Fenced(String),
    /// This transaction was aborted (or never begun); the producer can begin another.
    Failed(String),
}

impl std::fmt::Display for TransactionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransactionError::Fenced(e) => write!(f, "the transactional producer is done for: {e}"),
            TransactionError::Failed(e) => f.write_str(e),
        }
    }
}

/// Bounds every blocking transactional call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How many times a transaction's commit or abort is resumed after a call timed out: while a
/// broker the transaction involves is being replaced (about 10 s), one call can time out.
const SETTLE_ATTEMPTS: usize = 3;

/// Sorts a failed transactional call: fatal errors end the producer, the rest the action.
pub fn classify(action: &str, error: KafkaError) -> TransactionError {
    let message = format!("{action}: {error}");
    let fatal = match &error {
        KafkaError::Transaction(e) => e.is_fatal(),
        _ => false,
    };
    if fatal {
        TransactionError::Fenced(message)
    } else {
        TransactionError::Failed(message)
    }
}

/// Commits the open transaction. A commit that timed out is resumed (librdkafka refuses any
/// other transactional call until it ends: a new `begin_transaction` would fail for good with
/// "Conflicting commit_transaction API call is already in progress"); one the broker refused
/// is aborted. A transaction that cannot be settled leaves the producer unusable.
pub fn commit<C: ProducerContext>(producer: &ServedProducer<C>) -> Result<(), TransactionError> {
    for _ in 0..SETTLE_ATTEMPTS {
        match producer.commit_transaction(CALL_TIMEOUT) {
            Ok(()) => return Ok(()),
            Err(e) if timed_out(&e) => {
                tracing::debug!("a transaction's commit did not end in time ({e}); resuming it");
            }
            Err(KafkaError::Transaction(e)) if e.txn_requires_abort() => {
                let refused = TransactionError::Failed(format!("commit: {e}"));
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

/// Aborts the open transaction, resuming an abort that timed out; `Err` only when the
/// producer is done for.
pub fn abort<C: ProducerContext>(producer: &ServedProducer<C>) -> Result<(), TransactionError> {
    for _ in 0..SETTLE_ATTEMPTS {
        match producer.abort_transaction(CALL_TIMEOUT) {
            Ok(()) => return Ok(()),
            Err(e) if timed_out(&e) => {
                tracing::debug!("a transaction's abort did not end in time ({e}); resuming it");
            }
            // Fenced or not, a producer that cannot abort is unusable.
            Err(e) => return Err(TransactionError::Fenced(format!("abort: {e}"))),
        }
    }
    Err(stuck("abort"))
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

fn stuck(action: &str) -> TransactionError {
    TransactionError::Fenced(format!(
        "the producer could not {action} its transaction in {} s",
        SETTLE_ATTEMPTS as u64 * CALL_TIMEOUT.as_secs()
    ))
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
