//! The end of a partition as a consumer last heard it, without asking the broker.
//!
//! Every fetch response carries the partition's high watermark, and librdkafka keeps the last
//! one (`rd_kafka_get_watermark_offsets`). rust-rdkafka only wraps the variant that asks the
//! broker (`fetch_watermarks`, a request per call), which is the wrong cost for a figure read
//! every few seconds.

use std::ffi::CString;

use rdkafka::bindings as rdsys;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

use super::TopicPartition;

/// The high watermark of `tp` from the consumer's last fetch response; `None` before the first
/// one (or for a partition it does not fetch).
pub fn last_high_watermark<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    tp: &TopicPartition,
) -> Option<i64> {
    let topic = CString::new(tp.topic.as_str()).ok()?;
    let (mut low, mut high) = (-1_i64, -1_i64);
    // SAFETY: the client handle lives as long as `consumer`; `topic` is a NUL-terminated
    // string that outlives the call, which only reads it and writes the two offsets under the
    // partition's lock.
    let error = unsafe {
        rdsys::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            tp.partition,
            &mut low,
            &mut high,
        )
    };
    let known = error == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0;
    known.then_some(high)
}
