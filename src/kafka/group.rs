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

use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};

/// This consumer's member id in its group, as librdkafka holds it: empty before the first join
/// and from the moment it sends its LeaveGroup; `None` for a client that is no group consumer.
pub fn member_id<C: ConsumerContext + 'static>(consumer: &StreamConsumer<C>) -> Option<String> {
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
    let started = tokio::time::Instant::now();
    while member_id(consumer).is_some_and(|id| !id.is_empty()) {
        if started.elapsed() >= patience {
            let waited = started.elapsed();
            tracing::warn!(
                "{group}: the group has not let this worker leave after {:.1}s; closing anyway (the group notices after the session timeout)",
                waited.as_secs_f64()
            );
            return Err(waited);
        }
        // Polling serves the callbacks; an unsubscribed consumer returns no record.
        let _ = tokio::time::timeout(Duration::from_millis(5), consumer.recv()).await;
    }
    let took = started.elapsed();
    tracing::debug!("{group}: left the group in {} ms", took.as_millis());
    Ok(took)
}
