//! The producer every part of a worker sends through: encoded records in, acknowledgements
//! out. Callers await a record's [`Pending`], or a [`Group`]'s settling, before treating the
//! work that caused it as finished (at-least-once). Nothing here knows about apps or scripts:
//! records arrive encoded.
//!
//! Why not rdkafka's `FutureProducer`: it allocates a channel and a boxed sender per record,
//! and its caller then awaits one future per record. The agents send tens of thousands of
//! records a second and only need to know when all of one job's are delivered, so every
//! record's delivery opaque here is a shared [`Tally`] of its group: one atomic count per
//! record, one notification per group.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, ProducerContext};
use rdkafka::{ClientConfig, ClientContext, Timestamp};
use tokio::sync::oneshot;

use super::logs::QuietLogs;
use super::poller::ServedProducer;

/// A record ready to produce: topic, optional partition (else the key's), key and value bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

/// Where an acknowledged record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Timestamp,
}

/// What a settled group reports: the first failure, or the acknowledgement that settled it
/// (`None` when the group settled on being sealed, its records all acknowledged before).
type Settled = Result<Option<Delivered>, String>;

/// The acknowledgements a group of records still waits for; every record of the group carries
/// it as its delivery opaque.
pub struct Tally {
    /// Records enqueued and not yet acknowledged, plus one while the group is still open.
    outstanding: AtomicUsize,
    /// The highest offset acknowledged (-1: none): where a group written to one partition
    /// ends (a table's changelog).
    highest_offset: AtomicI64,
    /// Taken by whoever settles the group: its last acknowledgement, its first failure, or
    /// its sealing.
    settle: Mutex<Option<oneshot::Sender<Settled>>>,
}

impl Tally {
    fn new(outstanding: usize) -> (Arc<Tally>, oneshot::Receiver<Settled>) {
        let (settle, settled) = oneshot::channel();
        let tally = Tally {
            outstanding: AtomicUsize::new(outstanding),
            highest_offset: AtomicI64::new(-1),
            settle: Mutex::new(Some(settle)),
        };
        (Arc::new(tally), settled)
    }

    /// One piece of the group is done; the group settles when it was the last.
    fn release(&self, settled: Settled) {
        if let Ok(Some(delivered)) = &settled {
            self.highest_offset
                .fetch_max(delivered.offset, Ordering::AcqRel);
        }
        if self.outstanding.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.settle(settled);
        }
    }

    fn settle(&self, settled: Settled) {
        let sender = self.settle.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(sender) = sender {
            let _ = sender.send(settled);
        }
    }
}

/// The producers' librdkafka context: log lines and errors as [`QuietLogs`] forwards them,
/// acknowledgements to their records' [`Tally`].
pub struct Deliveries;

impl ClientContext for Deliveries {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        QuietLogs.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        QuietLogs.error(error, reason);
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Arc<Tally>;

    fn delivery(&self, result: &DeliveryResult<'_>, tally: Arc<Tally>) {
        match result {
            Ok(message) => tally.release(Ok(Some(Delivered {
                partition: message.partition(),
                offset: message.offset(),
                timestamp: message.timestamp(),
            }))),
            // The first failure settles the group at once: nothing of it can finish.
            Err((error, message)) => tally.settle(Err(format!(
                "delivery to {} failed: {error}",
                message.topic()
            ))),
        }
    }
}

/// librdkafka's producer as the worker creates it, with a thread that serves its
/// acknowledgements.
pub type KafkaProducer = ServedProducer<Deliveries>;

/// Creates a librdkafka producer from `config`.
pub fn create(config: &ClientConfig) -> Result<KafkaProducer, String> {
    let producer: BaseProducer<Deliveries> = config
        .create_with_context(Deliveries)
        .map_err(|e| e.to_string())?;
    ServedProducer::serve(producer)
        .map_err(|e| format!("cannot start the producer's event thread: {e}"))
}

/// One record accepted by the producer; await it for the broker's acknowledgement.
pub struct Pending {
    pub topic: String,
    settled: oneshot::Receiver<Settled>,
}

impl Pending {
    /// Waits for the broker's acknowledgement (librdkafka retries until `message.timeout.ms`).
    pub async fn delivered(self) -> Result<Delivered, String> {
        match self.settled.await {
            Ok(Ok(Some(delivered))) => Ok(delivered),
            Ok(Err(failure)) => Err(failure),
            Ok(Ok(None)) | Err(_) => Err(format!(
                "delivery to {} was cancelled: the producer closed",
                self.topic
            )),
        }
    }
}

/// Records sent to be acknowledged together (one job's): [`Group::seal`] it once everything is
/// sent, then await the [`Sealed`] group.
pub struct Group {
    tally: Arc<Tally>,
    settled: oneshot::Receiver<Settled>,
    sent: usize,
}

impl Default for Group {
    fn default() -> Self {
        // The one outstanding piece is the group itself, until sealed.
        let (tally, settled) = Tally::new(1);
        Group {
            tally,
            settled,
            sent: 0,
        }
    }
}

impl Group {
    /// Records enqueued in the group so far.
    pub fn sent(&self) -> usize {
        self.sent
    }

    /// No more records: the group settles once those sent are acknowledged.
    pub fn seal(self) -> Sealed {
        self.tally.release(Ok(None));
        Sealed {
            settled: self.settled,
            tally: self.tally,
        }
    }
}

/// A group with all its records sent.
pub struct Sealed {
    settled: oneshot::Receiver<Settled>,
    tally: Arc<Tally>,
}

impl Sealed {
    /// Waits until every record of the group is acknowledged, or one failed.
    pub async fn acknowledged(self) -> Result<(), String> {
        self.acknowledged_through().await.map(|_| ())
    }

    /// Waits as [`Sealed::acknowledged`]; the highest offset acknowledged (`None`: the group
    /// was empty), which for a group written to one partition is where it ends.
    pub async fn acknowledged_through(self) -> Result<Option<i64>, String> {
        match self.settled.await {
            Ok(Ok(_)) => {
                let highest = self.tally.highest_offset.load(Ordering::Acquire);
                Ok((highest >= 0).then_some(highest))
            }
            Ok(Err(failure)) => Err(failure),
            Err(_) => Err("a delivery was cancelled: the producer closed".to_string()),
        }
    }
}

/// How long to back off while librdkafka's local queue is full: it drains as the broker
/// acknowledges.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(1);

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
        let (tally, settled) = Tally::new(1);
        loop {
            if self.try_send(record, headers, &tally)? {
                let topic = record.topic.clone();
                return Ok(Pending { topic, settled });
            }
            tokio::time::sleep(QUEUE_FULL_BACKOFF).await;
        }
    }

    /// Enqueues `record` with `headers` in `group`, blocking the thread while the queue is
    /// full: for threads that may block, the evaluation pool's.
    pub fn send_blocking(
        &self,
        group: &mut Group,
        record: &Record,
        headers: &[(&str, &[u8])],
    ) -> Result<(), String> {
        // Counted before it is enqueued: its acknowledgement may come before this returns.
        // The group's own piece keeps the count above zero meanwhile.
        group.tally.outstanding.fetch_add(1, Ordering::AcqRel);
        loop {
            match self.try_send(record, headers, &group.tally) {
                Ok(true) => {
                    group.sent += 1;
                    return Ok(());
                }
                Ok(false) => std::thread::sleep(QUEUE_FULL_BACKOFF),
                Err(e) => {
                    group.tally.outstanding.fetch_sub(1, Ordering::AcqRel);
                    return Err(e);
                }
            }
        }
    }

    /// Enqueues once, acknowledged to `tally`: `false` when librdkafka's queue is full.
    fn try_send(
        &self,
        record: &Record,
        headers: &[(&str, &[u8])],
        tally: &Arc<Tally>,
    ) -> Result<bool, String> {
        let mut base: BaseRecord<'_, [u8], [u8], Arc<Tally>> =
            BaseRecord::with_opaque_to(&record.topic, tally.clone());
        if let Some(key) = &record.key {
            base = base.key(key);
        }
        if let Some(value) = &record.value {
            base = base.payload(value);
        }
        if let Some(partition) = record.partition {
            base = base.partition(partition);
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
            base = base.headers(owned);
        }
        match self.inner.send(base) {
            Ok(()) => Ok(true),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => Ok(false),
            Err((error, _)) => Err(format!("cannot send to {}: {error}", record.topic)),
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    fn delivered(offset: i64) -> Settled {
        Ok(Some(Delivered {
            partition: 0,
            offset,
            timestamp: Timestamp::NotAvailable,
        }))
    }

    /// What librdkafka's thread does for each record of `group` it acknowledges: the opaque
    /// is a clone of the group's tally.
    fn enqueue(group: &mut Group) -> Arc<Tally> {
        group.tally.outstanding.fetch_add(1, Ordering::AcqRel);
        group.sent += 1;
        group.tally.clone()
    }

    #[test]
    fn a_group_settles_after_its_last_acknowledgement_not_before() {
        let mut group = Group::default();
        let (first, second) = (enqueue(&mut group), enqueue(&mut group));
        first.release(delivered(1));
        let mut sealed = group.seal();
        assert!(
            sealed.settled.try_recv().is_err(),
            "one record unacknowledged"
        );
        second.release(delivered(2));
        assert_eq!(sealed.acknowledged().now_or_never(), Some(Ok(())));
    }

    #[test]
    fn a_sealed_group_knows_the_highest_offset_acknowledged_whatever_the_order() {
        let mut group = Group::default();
        let (first, second) = (enqueue(&mut group), enqueue(&mut group));
        second.release(delivered(8));
        first.release(delivered(7));
        assert_eq!(
            group.seal().acknowledged_through().now_or_never(),
            Some(Ok(Some(8)))
        );
        let empty = Group::default().seal();
        assert_eq!(empty.acknowledged_through().now_or_never(), Some(Ok(None)));
    }

    #[test]
    fn a_group_acknowledged_before_it_is_sealed_settles_on_sealing() {
        let mut group = Group::default();
        enqueue(&mut group).release(delivered(1));
        assert_eq!(group.seal().acknowledged().now_or_never(), Some(Ok(())));
    }

    #[test]
    fn the_first_failure_settles_the_group_at_once() {
        let mut group = Group::default();
        let (failed, late) = (enqueue(&mut group), enqueue(&mut group));
        failed.settle(Err("delivery to t failed: timed out".into()));
        late.release(delivered(2));
        let sealed = group.seal();
        assert_eq!(
            sealed.acknowledged().now_or_never(),
            Some(Err("delivery to t failed: timed out".into()))
        );
    }

    #[test]
    fn one_record_reports_where_it_was_written() {
        let (tally, settled) = Tally::new(1);
        let pending = Pending {
            topic: "t".into(),
            settled,
        };
        tally.release(delivered(7));
        assert_eq!(
            pending
                .delivered()
                .now_or_never()
                .map(|r| r.map(|d| d.offset)),
            Some(Ok(7))
        );
    }

    /// The event thread serves what librdkafka reports without being polled: here a record's
    /// failure, from a cluster that is not there.
    #[tokio::test]
    async fn the_event_thread_reports_a_failed_delivery() {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("message.timeout.ms", "200");
        let producer = Producer::new(create(&config).expect("a producer"));
        let record = Record {
            topic: "t".into(),
            partition: None,
            key: None,
            value: Some(b"v".to_vec()),
        };
        let pending = producer.send(&record, &[]).await.expect("enqueued");
        let failure = tokio::time::timeout(Duration::from_secs(20), pending.delivered())
            .await
            .expect("the failure was never served")
            .expect_err("nothing was delivered");
        assert!(failure.starts_with("delivery to t failed"), "{failure}");
    }
}
