//! The foundation's proof: the project's own rdkafka code talks to the real broker. 1,000
//! records go into a fresh topic and come back through a consumer group exactly once each, in
//! per-partition order.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};

const RECORDS: usize = 1_000;
const PARTITIONS: i32 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_records_arrive_once_each_in_partition_order() {
    let broker = common::broker();
    let topic = common::unique_name("roundtrip");
    common::create_topic(&broker, &topic, PARTITIONS).await;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker)
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    // Where each record landed, in the order the broker acknowledged them per partition.
    let mut produced: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    for i in 0..RECORDS {
        let payload = format!("record-{i}");
        let key = format!("key-{}", i % 37);
        let delivery = producer
            .send(
                FutureRecord::to(&topic).key(&key).payload(&payload),
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("delivering record {i}: {e}"));
        produced
            .entry(delivery.partition)
            .or_default()
            .push((delivery.offset, payload));
    }
    assert!(
        produced.len() > 1,
        "keys should spread over several partitions: {produced:?}"
    );

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker)
        .set("group.id", common::unique_name("roundtrip-group"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");

    let mut consumed: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < RECORDS {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(remaining, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {RECORDS} records arrived in 60 s", seen.len()))
            .expect("consumer error");
        let payload = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
        *seen.entry(payload.clone()).or_default() += 1;
        consumed
            .entry(message.partition())
            .or_default()
            .push((message.offset(), payload));
    }

    let duplicates: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicates.is_empty(),
        "records delivered more than once: {duplicates:?}"
    );
    assert_eq!(
        consumed, produced,
        "per-partition order differs from what was produced"
    );
}
