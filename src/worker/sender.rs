//! Turning the records a body asked to send into Kafka records: resolving `say.send(v)` to the
//! agent's topic, encoding key and value with the target's serializers, adding headers, and
//! enqueueing them on the producer. The caller awaits the returned deliveries before it treats
//! the work that caused them as finished (at-least-once).

use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::future_producer::{Delivery, DeliveryFuture};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::app::App;
use crate::codec::{self, Datum, Serializer};
use crate::script::{OutgoingRecord, SendTarget};

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

/// Encodes and enqueues records for one app.
#[derive(Clone)]
pub struct Sender {
    producer: FutureProducer,
    app: Arc<App>,
}

impl Sender {
    pub fn new(producer: FutureProducer, app: Arc<App>) -> Self {
        Sender { producer, app }
    }

    pub fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    /// The same routing over another producer (a leader's transactional one).
    pub fn with_producer(&self, producer: FutureProducer) -> Sender {
        Sender {
            producer,
            app: self.app.clone(),
        }
    }

    /// The topic and serializers (key, value) a target resolves to. Undeclared topics use the
    /// app's default serializers.
    pub fn route(&self, target: &SendTarget) -> (String, Serializer, Serializer) {
        match target {
            SendTarget::Agent(name) => {
                let agent = self
                    .app
                    .agent(name)
                    .expect("agent names are checked at load time");
                (
                    agent.topic.clone(),
                    agent.key_serializer,
                    agent.value_serializer,
                )
            }
            SendTarget::Topic(name) => match self.app.topic(name) {
                Some(topic) => (
                    topic.name.clone(),
                    topic.key_serializer,
                    topic.value_serializer,
                ),
                None => (
                    name.clone(),
                    self.app.key_serializer,
                    self.app.value_serializer,
                ),
            },
        }
    }

    /// Encodes `record` and enqueues it with `headers`.
    pub async fn send(
        &self,
        record: &OutgoingRecord,
        headers: &[(&str, &[u8])],
    ) -> Result<Pending, String> {
        let (topic, key_serializer, value_serializer) = self.route(&record.target);
        let key = match &record.key {
            Some(key) => codec::encode(key_serializer, key)
                .map_err(|e| format!("cannot encode a key for {topic}: {e}"))?,
            None => None,
        };
        let value = codec::encode(value_serializer, &record.value)
            .map_err(|e| format!("cannot encode a value for {topic}: {e}"))?;
        self.send_bytes(&topic, None, key.as_deref(), value.as_deref(), headers)
            .await
    }

    /// Enqueues an already-encoded record, waiting while the producer's queue is full.
    pub async fn send_bytes(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, &[u8])],
    ) -> Result<Pending, String> {
        loop {
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
            if let Some(key) = key {
                record = record.key(key);
            }
            if let Some(value) = value {
                record = record.payload(value);
            }
            if let Some(partition) = partition {
                record = record.partition(partition);
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
                record = record.headers(owned);
            }
            match self.producer.send_result(record) {
                Ok(future) => {
                    return Ok(Pending {
                        topic: topic.to_string(),
                        future,
                    });
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // The local queue drains as the broker acknowledges; back off briefly.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((error, _)) => return Err(format!("cannot send to {topic}: {error}")),
            }
        }
    }

    /// The agent's sinks as send targets for a body's result.
    pub fn sink_records(&self, sinks: &[crate::app::Sink], result: &Datum) -> Vec<OutgoingRecord> {
        sinks
            .iter()
            .map(|sink| OutgoingRecord {
                target: match sink {
                    crate::app::Sink::Agent(name) => SendTarget::Agent(name.clone()),
                    crate::app::Sink::Topic(name) => SendTarget::Topic(name.clone()),
                },
                key: None,
                value: result.clone(),
            })
            .collect()
    }
}
