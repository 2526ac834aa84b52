//! Reading who leads from the election topics, without joining any group (tooz `get_leader`):
//! the newest record of an election's topic is its current term's announcement. Every worker
//! tails the topics to know the current leader and epoch; `faust-rs leader` reads them once or
//! watches them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::{Announcement, Election};
use crate::kafka::logs::QuietLogs;

/// How long finding the end of an election topic retries while its partition has no leader
/// (just created, or its leader moving to another broker).
const LEADERLESS_PATIENCE: Duration = Duration::from_secs(30);

/// Where to start reading `topic` so the newest announcement is the first record read. Blocks.
fn newest_position(probe: &impl Consumer<QuietLogs>, topic: &str) -> Result<Offset, String> {
    let started = std::time::Instant::now();
    let (low, high) = loop {
        match probe.fetch_watermarks(topic, 0, Duration::from_secs(5)) {
            Err(e) if is_leaderless(&e) && started.elapsed() < LEADERLESS_PATIENCE => {
                std::thread::sleep(Duration::from_millis(100));
            }
            marks => break marks.map_err(|e| format!("cannot read the end of {topic}: {e}"))?,
        }
    };
    Ok(if high > low {
        Offset::Offset(high - 1)
    } else {
        Offset::Beginning
    })
}

/// Whether an error only says the partition has no leader right now.
fn is_leaderless(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::UnknownTopicOrPartition
        )
    )
}

/// librdkafka wants a group id even for consumers that only `assign` partitions; this one is
/// never joined, since a reader neither subscribes nor commits.
fn reader_config(config: &ClientConfig) -> ClientConfig {
    let mut config = config.clone();
    config
        .set("group.id", "faust-rs-election-reader")
        .set("enable.auto.commit", "false");
    config
}

/// A reader (no group membership) of partition 0 of each topic from its newest record.
/// `config` carries the brokers and any security settings.
pub fn tail(config: &ClientConfig, topics: &[String]) -> Result<StreamConsumer<QuietLogs>, String> {
    tail_from(config, topics, |consumer, topic| {
        newest_position(consumer, topic)
    })
}

/// A reader of partition 0 of each topic from the offset `start` gives it.
pub fn tail_from(
    config: &ClientConfig,
    topics: &[String],
    start: impl Fn(&StreamConsumer<QuietLogs>, &str) -> Result<Offset, String>,
) -> Result<StreamConsumer<QuietLogs>, String> {
    let consumer: StreamConsumer<QuietLogs> = reader_config(config)
        .create_with_context(QuietLogs)
        .map_err(|e| format!("cannot create a reader: {e}"))?;
    let mut list = TopicPartitionList::new();
    for topic in topics {
        let start = start(&consumer, topic)?;
        list.add_partition_offset(topic, 0, start)
            .map_err(|e| e.to_string())?;
    }
    consumer
        .assign(&list)
        .map_err(|e| format!("cannot read {topics:?}: {e}"))?;
    Ok(consumer)
}

/// Decodes a record of an election topic, logging records that are not announcements.
fn announcement_of(message: &impl Message) -> Option<Announcement> {
    let payload = message.payload()?;
    match Announcement::decode(payload, message.offset()) {
        Ok(announcement) => Some(announcement),
        Err(e) => {
            tracing::warn!("{}: {e}", message.topic());
            None
        }
    }
}

/// Keeps each election's newest announcement up to date until `stop` is cancelled.
pub async fn follow(
    consumer: StreamConsumer<QuietLogs>,
    elections: Vec<Arc<Election>>,
    stop: CancellationToken,
) {
    let by_topic: HashMap<String, Arc<Election>> = elections
        .into_iter()
        .map(|e| (e.topic.clone(), e))
        .collect();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            message = consumer.recv() => match message {
                Ok(message) => {
                    if let (Some(election), Some(announcement)) = (by_topic.get(message.topic()), announcement_of(&message)) {
                        election.saw_announcement(announcement);
                    }
                }
                Err(e) => tracing::debug!("election reader: {e}"),
            },
        }
    }
}

/// The newest announcement of each topic, read once (`None`: no leader was ever elected).
/// Blocks (broker round trips): call it off the async runtime's threads.
pub fn newest(
    config: &ClientConfig,
    topics: &[String],
) -> Result<Vec<Option<Announcement>>, String> {
    let probe: BaseConsumer<QuietLogs> = reader_config(config)
        .create_with_context(QuietLogs)
        .map_err(|e| format!("cannot create a reader: {e}"))?;
    let mut found = Vec::with_capacity(topics.len());
    for topic in topics {
        let (low, high) = match probe.fetch_watermarks(topic, 0, Duration::from_secs(10)) {
            Ok(marks) => marks,
            Err(rdkafka::error::KafkaError::MetadataFetch(_)) => (0, 0),
            Err(e) => return Err(format!("cannot read the end of {topic}: {e}")),
        };
        if high <= low {
            found.push(None);
            continue;
        }
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topic, 0, Offset::Offset(high - 1))
            .map_err(|e| e.to_string())?;
        probe.assign(&list).map_err(|e| e.to_string())?;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let announcement = loop {
            match probe.poll(Duration::from_millis(200)) {
                Some(Ok(message)) if message.topic() == topic => break announcement_of(&message),
                Some(Err(e)) => return Err(format!("cannot read {topic}: {e}")),
                _ if std::time::Instant::now() > deadline => {
                    return Err(format!(
                        "cannot read the newest record of {topic} (offset {})",
                        high - 1
                    ));
                }
                _ => {}
            }
        };
        found.push(announcement);
    }
    Ok(found)
}
