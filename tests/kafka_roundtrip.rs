//! The foundation's proof: the project's own rdkafka code talks to the real broker. 1,000
//! records go into a fresh topic and come back through a consumer group exactly once each, in
//! per-partition order; a member leaving with `kafka::group::leave` is gone from the group
//! before its consumer is even closed.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use faust_rs::kafka::group;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
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
    common::close_within(consumer, Duration::from_secs(30), "the consumer");
}

/// Members of `group_id` as the group coordinator lists them.
fn group_members(admin: &BaseConsumer, group_id: &str) -> Vec<String> {
    let groups = admin
        .fetch_group_list(Some(group_id), Duration::from_secs(5))
        .expect("list the group");
    groups
        .groups()
        .iter()
        .flat_map(|g| g.members().iter().map(|m| m.id().to_string()))
        .collect()
}

fn group_member(broker: &str, group_id: &str) -> StreamConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("group.id", group_id)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "100")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_leaves_is_gone_from_the_group_before_it_closes() {
    let broker = common::broker();
    let topic = common::unique_name("leave");
    let group_id = common::unique_name("leave-group");
    common::create_topic(&broker, &topic, 2).await;
    let admin: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker)
        .create()
        .expect("admin client");

    let leaving = group_member(&broker, &group_id);
    let staying = group_member(&broker, &group_id);
    leaving.subscribe(&[&topic]).expect("subscribe");
    staying.subscribe(&[&topic]).expect("subscribe");
    // Poll both (which serves their rebalances) until the group lists both as members.
    let deadline = Instant::now() + Duration::from_secs(30);
    let leaving_id = loop {
        for consumer in [&leaving, &staying] {
            let _ = tokio::time::timeout(Duration::from_millis(50), consumer.recv()).await;
        }
        let id = group::member_id(&leaving).unwrap_or_default();
        if !id.is_empty() && group_members(&admin, &group_id).len() == 2 {
            break id;
        }
        assert!(
            Instant::now() < deadline,
            "the group never listed both members"
        );
    };

    leaving.unsubscribe();
    let took = group::leave(&leaving, Duration::from_secs(10), &group_id)
        .await
        .expect("the group should let the member go");
    assert!(took < Duration::from_secs(10));
    assert_eq!(group::member_id(&leaving).as_deref(), Some(""));
    // The LeaveGroup went out: the coordinator drops the member long before the 6 s session
    // timeout would have, although its consumer is still open.
    let deadline = Instant::now() + Duration::from_secs(3);
    while group_members(&admin, &group_id).contains(&leaving_id) {
        assert!(
            Instant::now() < deadline,
            "{leaving_id} is still a member 3 s after leaving"
        );
        let _ = tokio::time::timeout(Duration::from_millis(50), staying.recv()).await;
    }
    common::close_within(leaving, Duration::from_secs(30), "the member that left");
    // `staying` may be in the middle of taking over the partition: closing it then can hang
    // in librdkafka, so it leaves first, as the worker's consumers do.
    staying.unsubscribe();
    group::leave(&staying, Duration::from_secs(10), &group_id)
        .await
        .expect("the group should let the other member go too");
    common::close_within(staying, Duration::from_secs(30), "the member that stayed");
}

/// Exactly-once's recovery from an aborted transaction: the agents' consumer thread reads a
/// partition again from the position it is told, under a new rebalance count, so the records
/// polled before (stale) can be told from those read again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_consumer_reads_a_partition_again_from_a_rewind() {
    use faust_rs::kafka::TopicPartition;
    use faust_rs::worker::agents::consumer::{self, Batch, Rebalanced};

    let broker = common::broker();
    let topic = common::unique_name("rewind");
    common::create_topic(&broker, &topic, 1).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker)
        .create()
        .expect("producer");
    for i in 0..10 {
        let payload = format!("r{i}");
        producer
            .send(
                FutureRecord::<(), _>::to(&topic).payload(&payload),
                Duration::from_secs(30),
            )
            .await
            .expect("produced");
    }
    let state = std::sync::Arc::new(faust_rs::worker::state::WorkerState::new(
        "rewind",
        "w",
        "http://w/",
        [],
        [],
        Vec::new(),
    ));
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &broker)
        .set("group.id", common::unique_name("rewind-group"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false");
    let (agents_consumer, mut rebalances) =
        consumer::create(&config, state, true, None, Default::default())
            .expect("the agents' consumer");
    agents_consumer.subscribe(&[&topic]).expect("subscribed");
    let (records_tx, mut records) = tokio::sync::mpsc::channel::<Vec<Batch>>(4);
    let (rewind, rewinds) = std::sync::mpsc::channel();
    let (_finish, finish_rx) = std::sync::mpsc::channel();
    consumer::spawn(
        agents_consumer,
        records_tx,
        rewinds,
        finish_rx,
        "rewind".into(),
    )
    .expect("the consumer thread");

    let deadline = Duration::from_secs(60);
    let assigned = tokio::time::timeout(deadline, rebalances.recv()).await;
    let Ok(Some(Rebalanced::Assigned { generation, .. })) = assigned else {
        panic!("no assignment first");
    };
    let mut offsets = Vec::new();
    while offsets.len() < 10 {
        let batches = tokio::time::timeout(deadline, records.recv()).await;
        for batch in batches.expect("records in time").expect("records") {
            assert_eq!(batch.generation, generation);
            offsets.extend(batch.records.iter().map(|r| r.offset));
        }
    }
    assert_eq!(offsets, (0..10).collect::<Vec<i64>>());

    rewind
        .send(vec![(TopicPartition::new(&topic, 0), 4)])
        .expect("the thread takes rewinds");
    let rewound = tokio::time::timeout(deadline, rebalances.recv()).await;
    let Ok(Some(Rebalanced::Rewound {
        partitions,
        generation: again,
    })) = rewound
    else {
        panic!("no Rewound report");
    };
    assert_eq!(partitions, vec![TopicPartition::new(&topic, 0)]);
    assert!(
        again > generation,
        "a new rebalance count: {again} after {generation}"
    );
    let mut offsets = Vec::new();
    while offsets.len() < 6 {
        let batches = tokio::time::timeout(deadline, records.recv()).await;
        for batch in batches.expect("records in time").expect("records") {
            assert_eq!(batch.generation, again, "nothing stale after the rewind");
            offsets.extend(batch.records.iter().map(|r| r.offset));
        }
    }
    assert_eq!(offsets, (4..10).collect::<Vec<i64>>(), "read again from 4");
}
