//! Leaving a consumer group so that the group hears of it.
//!
//! librdkafka postpones an unsubscribe that arrives while the group is rebalancing until the
//! rebalance completes, and a consumer closed before then — still waiting for its JoinGroup
//! response — sends no LeaveGroup at all (librdkafka 2.12, cooperative protocol; with
//! `debug=cgrp` it logs "consumer is terminating, skipping rejoin" and goes from state `up` to
//! `term` without a `LEAVE`). The group then waits a whole session timeout for a member that is
//! gone. [`leave`] keeps serving the consumer after its unsubscribe until librdkafka has sent
//! the LeaveGroup, which it marks by clearing the member id.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer};

/// This consumer's member id in its group, as librdkafka holds it: empty before the first join
/// and from the moment it sends its LeaveGroup; `None` for a client that is no group consumer.
pub fn member_id<C: ConsumerContext + 'static>(consumer: &impl Consumer<C>) -> Option<String> {
    let client = consumer.client().native_ptr();
    // SAFETY: `client` is the live handle `consumer` owns. rd_kafka_memberid (not wrapped by
    // rust-rdkafka) returns null or a string the caller owns, freed with rd_kafka_mem_free.
    unsafe {
        let id = rdkafka::bindings::rd_kafka_memberid(client);
        if id.is_null() {
            return None;
        }
        let owned = std::ffi::CStr::from_ptr(id).to_string_lossy().into_owned();
        rdkafka::bindings::rd_kafka_mem_free(client, id.cast());
        Some(owned)
    }
}

/// After `consumer.unsubscribe()`: serves the consumer (its rebalance callbacks) until it has
/// sent its LeaveGroup, for at most `patience`, and logs the outcome under `group` (a name for
/// the log). `Ok` with the time it took, or `Err` with the time waited when the group had not
/// let it go by then (closing it then sends no LeaveGroup: the group notices after the session
/// timeout).
pub async fn leave<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    patience: Duration,
    group: &str,
) -> Result<Duration, Duration> {
    let started = std::time::Instant::now();
    while still_member(consumer, started, patience, group)? {
        // Polling serves the callbacks; an unsubscribed consumer returns no record.
        let _ = tokio::time::timeout(POLL, consumer.recv()).await;
    }
    Ok(left(started, group))
}

/// [`leave`] for a consumer polled on a thread of its own (blocking).
pub fn leave_blocking<C: ConsumerContext + 'static>(
    consumer: &BaseConsumer<C>,
    patience: Duration,
    group: &str,
) -> Result<Duration, Duration> {
    let started = std::time::Instant::now();
    while still_member(consumer, started, patience, group)? {
        let _ = consumer.poll(POLL);
    }
    Ok(left(started, group))
}

/// How long one wait for the LeaveGroup to go out polls the consumer.
const POLL: Duration = Duration::from_millis(5);

/// Whether the consumer has yet to send its LeaveGroup; `Err` once `patience` ran out.
fn still_member<C: ConsumerContext + 'static>(
    consumer: &impl Consumer<C>,
    started: std::time::Instant,
    patience: Duration,
    group: &str,
) -> Result<bool, Duration> {
    if member_id(consumer).is_none_or(|id| id.is_empty()) {
        return Ok(false);
    }
    let waited = started.elapsed();
    if waited < patience {
        return Ok(true);
    }
    tracing::warn!(
        "{group}: the group has not let this worker leave after {:.1}s; closing anyway (the group notices after the session timeout)",
        waited.as_secs_f64()
    );
    Err(waited)
}

fn left(started: std::time::Instant, group: &str) -> Duration {
    let took = started.elapsed();
    tracing::debug!("{group}: left the group in {} ms", took.as_millis());
    took
}
