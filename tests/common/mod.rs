//! Helpers shared by the integration tests: the real broker's address, unique names, and
//! waiting on conditions with deadlines.

#![allow(dead_code)] // each test binary uses its own subset

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// The broker the tests run against: `FAUST_RS_TEST_BROKER`, else the address
/// `scripts/kafka.sh start` uses. Panics with instructions when nothing answers there: a test
/// that needs Kafka must fail loudly, never skip.
pub fn broker() -> String {
    let address =
        std::env::var("FAUST_RS_TEST_BROKER").unwrap_or_else(|_| "127.0.0.1:9092".to_string());
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &address)
        .create()
        .expect("creating a metadata probe");
    if let Err(e) = probe.fetch_metadata(None, Duration::from_secs(10)) {
        panic!(
            "no Kafka broker answers at {address} ({e}).\n\
             Start the project's broker with `scripts/kafka.sh start`, or run the tests with \
             `scripts/test.sh`, which starts it. Set FAUST_RS_TEST_BROKER to use another one."
        );
    }
    address
}

/// A name no other test run uses: prefix, process id, time and a random suffix.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{nanos}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

/// Creates a topic and waits until its metadata shows every partition.
pub async fn create_topic(broker: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .create()
        .expect("admin client");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let results = admin
        .create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("create_topics request");
    for result in results {
        result.unwrap_or_else(|(topic, code)| panic!("creating topic {topic}: {code}"));
    }
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .create()
        .unwrap();
    wait_until(
        Duration::from_secs(30),
        "topic metadata shows every partition",
        || {
            probe
                .fetch_metadata(Some(name), Duration::from_secs(5))
                .map(|m| {
                    m.topics()
                        .first()
                        .is_some_and(|t| t.partitions().len() == partitions as usize)
                })
                .unwrap_or(false)
        },
    );
}

/// Polls `condition` until it holds, panicking with `what` once `deadline` has passed.
pub fn wait_until(deadline: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
