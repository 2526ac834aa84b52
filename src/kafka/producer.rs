//! The producer every part of a worker sends through: encoded records in, acknowledgements
//! out. Callers await a record's [`Pending`] before treating the work that caused it as
//! finished (at-least-once). Nothing here knows about apps or scripts: records arrive encoded.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::future_producer::{Delivery, DeliveryFuture};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::logs::QuietLogs;

/// A record ready to produce: topic, optional partition (else the key's), key and value bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

/// A record accepted by the producer; await it for the broker's acknowledgement.
pub struct Pending {
    pub topic: String,
    future: DeliveryFuture,
}

impl Pending {
    /// Waits for the broker's acknowledgement (librdkafka retries until `message.timeout.ms`).
    pub async fn delivered(self) -> Result<Delivery, String> {
        match self.future.await {
            Ok(Ok(delivery)) => Ok(delivery),
            Ok(Err((error, _))) => Err(format!("delivery to {} failed: {error}", self.topic)),
            Err(_) => Err(format!(
                "delivery to {} was cancelled: the producer closed",
                self.topic
            )),
        }
    }
}

/// How long to back off while librdkafka's local queue is full: it drains as the broker
/// acknowledges.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(1);

/// librdkafka's producer as the worker creates it: its log lines go through
/// [`super::logs::forward_quietly`].
pub type KafkaProducer = FutureProducer<QuietLogs>;

/// Creates a librdkafka producer from `config`.
pub fn create(config: &ClientConfig) -> Result<KafkaProducer, String> {
    config
        .create_with_context(QuietLogs)
        .map_err(|e| e.to_string())
}

/// A cheap-to-clone handle on one librdkafka producer.
#[derive(Clone)]
pub struct Producer {
    inner: KafkaProducer,
}

impl Producer {
    pub fn new(inner: KafkaProducer) -> Self {
        Producer { inner }
    }

    /// The librdkafka producer (transactions, flush).
    pub fn inner(&self) -> &KafkaProducer {
        &self.inner
    }

    /// Enqueues `record` with `headers`, waiting (asynchronously) while the queue is full.
    pub async fn send(
        &self,
        record: &Record,
        headers: &[(&str, &[u8])],
    ) -> Result<Pending, String> {
        loop {
            match self.try_send(record, headers)? {
                Some(pending) => return Ok(pending),
                None => tokio::time::sleep(QUEUE_FULL_BACKOFF).await,
            }
        }
    }

    /// [`Producer::send`] for threads that may block: the evaluation pool's.
    pub fn send_blocking(
        &self,
        record: &Record,
        headers: &[(&str, &[u8])],
    ) -> Result<Pending, String> {
        loop {
            match self.try_send(record, headers)? {
                Some(pending) => return Ok(pending),
                None => std::thread::sleep(QUEUE_FULL_BACKOFF),
            }
        }
    }

    /// Enqueues once: `None` when librdkafka's queue is full.
    fn try_send(
        &self,
        record: &Record,
        headers: &[(&str, &[u8])],
    ) -> Result<Option<Pending>, String> {
        let mut future_record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&record.topic);
        if let Some(key) = &record.key {
            future_record = future_record.key(key);
        }
        if let Some(value) = &record.value {
            future_record = future_record.payload(value);
        }
        if let Some(partition) = record.partition {
            future_record = future_record.partition(partition);
        }
        if !headers.is_empty() {
            let owned = headers
                .iter()
                .fold(OwnedHeaders::new(), |all, (name, value)| {
                    all.insert(Header {
                        key: name,
                        value: Some(*value),
                    })
                });
            future_record = future_record.headers(owned);
        }
        match self.inner.send_result(future_record) {
            Ok(future) => Ok(Some(Pending {
                topic: record.topic.clone(),
                future,
            })),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => Ok(None),
            Err((error, _)) => Err(format!("cannot send to {}: {error}", record.topic)),
        }
    }
}
