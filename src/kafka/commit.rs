//! Asynchronous offset commits whose outcome comes back to the consumer's context.
//!
//! rust-rdkafka's `commit(.., CommitMode::Async)` calls `rd_kafka_commit`, and librdkafka
//! reports the result of such a commit only to an `offset_commit_cb` set in the configuration
//! (`rd_kafka_cgrp_propagate_commit_result`, librdkafka 2.12). rust-rdkafka uses the event API
//! instead, so `ConsumerContext::commit_callback` never hears of it: a failed asynchronous
//! commit was neither retried nor timed. `rd_kafka_commit_queue` posts the result on a queue we
//! name — the consumer's own, which rust-rdkafka's `poll` serves as an offset-commit event and
//! hands to `commit_callback`.

use rdkafka::TopicPartitionList;
use rdkafka::bindings as rdsys;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};

/// Sends an offset commit of `offsets` and returns at once; its outcome reaches the context's
/// `commit_callback` on a later poll of `consumer`.
pub fn commit_async<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    offsets: &TopicPartitionList,
) -> KafkaResult<()> {
    let client = consumer.client().native_ptr();
    // SAFETY: `client` and `offsets` are live handles owned by `consumer` and the caller.
    // rd_kafka_queue_get_consumer returns a new reference to the consumer queue (null when the
    // client has no group), released here; the commit keeps its own reference until it posts
    // the result. With a queue given, rd_kafka_commit_queue does not block, and a null
    // callback makes the event API deliver the result as an event.
    let error = unsafe {
        let queue = rdsys::rd_kafka_queue_get_consumer(client);
        if queue.is_null() {
            return Err(KafkaError::ConsumerCommit(
                rdkafka::types::RDKafkaErrorCode::UnknownGroup,
            ));
        }
        let error =
            rdsys::rd_kafka_commit_queue(client, offsets.ptr(), queue, None, std::ptr::null_mut());
        rdsys::rd_kafka_queue_destroy(queue);
        error
    };
    if error == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        Ok(())
    } else {
        Err(KafkaError::ConsumerCommit(error.into()))
    }
}
