//! Tables against the real broker: counts per key through KILL and restart (exact at
//! exactly-once, never lower at at-least-once), a restart that reads only the changelog's tail
//! (and, as the control, a wiped store that reads it all), a global table seen by the leader,
//! and the HTTP routes.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Scratch, Worker, wait_until};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{ClientConfig, Message};

const READY: Duration = Duration::from_secs(60);
const PARTITIONS: i32 = 4;
const KEYS: usize = 20;

/// An app counting the records of `{id}-words` per key in table `counts`.
fn counting_app(scratch: &Scratch, id: &str, guarantee: &str) -> std::path::PathBuf {
    scratch.app(
        "app.toml",
        &format!(
            r#"
[app]
id = "{id}"
broker = "@BROKER@"
topic_partitions = {PARTITIONS}
processing_guarantee = "{guarantee}"
session_timeout = 6.0
heartbeat_interval = 1.0
commit_interval = 0.5

[[topics]]
name = "{id}-words"
value_serializer = "raw"

[[tables]]
name = "counts"
default = 0

[[agents]]
name = "count"
topic = "{id}-words"
body = '''
counts[key] += 1;
'''
"#
        ),
    )
}

/// Sends `per_key` records for each of the [`KEYS`] keys `k0`..: in rounds, so that every key
/// is counted while workers come and go.
fn produce(topic: &str, per_key: usize) {
    let producer = common::producer();
    common::block_on(async {
        for round in 0..per_key {
            let mut pending = Vec::new();
            for k in 0..KEYS {
                let key = format!("k{k}");
                let value = round.to_string();
                let record = FutureRecord::to(topic).key(&key).payload(&value);
                pending.push(producer.send_result(record).expect("enqueued"));
            }
            for p in pending {
                p.await.expect("delivered").expect("acknowledged");
            }
        }
    });
}

/// The table as its changelog says, read committed: the last value of each key.
fn changelog_counts(id: &str) -> HashMap<String, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", common::broker())
        .set("group.id", common::unique_name("changelog-check"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .expect("a changelog reader");
    consumer
        .subscribe(&[&format!("{id}-counts-changelog")])
        .unwrap();
    let mut counts = HashMap::new();
    let mut ended = std::collections::HashSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while ended.len() < PARTITIONS as usize && std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
                let value: i64 = message
                    .payload()
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(-1);
                counts.insert(key, value);
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                ended.insert(p);
            }
            _ => {}
        }
    }
    counts
}

/// Whether every key's count reached `expected` (exactly, or at least).
fn counted(id: &str, expected: i64, exact: bool) -> bool {
    let counts = changelog_counts(id);
    counts.len() == KEYS
        && counts
            .values()
            .all(|&n| if exact { n == expected } else { n >= expected })
}

/// Two workers count 4 x 50 records per key while one is killed and restarted on its data
/// directory; at exactly-once every count ends exact.
fn kill_and_restart(prefix: &str, guarantee: &str) -> HashMap<String, i64> {
    let scratch = Scratch::new(prefix);
    let id = common::unique_name(prefix);
    let app = counting_app(&scratch, &id, guarantee);
    let mut workers = [
        Worker::start(&scratch, &app, &[]),
        Worker::start(&scratch, &app, &[]),
    ];
    for worker in &mut workers {
        worker.wait_ready(READY);
    }
    let topic = format!("{id}-words");
    produce(&topic, 50);
    workers[0].signal("KILL");
    workers[0].wait_exit(Duration::from_secs(10));
    produce(&topic, 50);
    workers[0] = workers[0].restart(&scratch, &app, &[]);
    workers[0].wait_ready(READY);
    produce(&topic, 100);
    workers[1].signal("KILL");
    workers[1].wait_exit(Duration::from_secs(10));
    workers[1] = workers[1].restart(&scratch, &app, &[]);
    workers[1].wait_ready(READY);
    let exact = guarantee == "exactly_once";
    wait_until(
        Duration::from_secs(120),
        "every key counted 200 times",
        || counted(&id, 200, exact),
    );
    changelog_counts(&id)
}

#[test]
fn counts_survive_kill_and_restart_exactly_at_exactly_once() {
    let counts = kill_and_restart("tbl-eos", "exactly_once");
    assert!(counts.values().all(|&n| n == 200), "{counts:?}");
}

#[test]
fn counts_survive_kill_and_restart_never_lower_at_at_least_once() {
    let counts = kill_and_restart("tbl-alo", "at_least_once");
    assert!(counts.values().all(|&n| n >= 200), "{counts:?}");
}

/// A metric's value in a `/metrics` exposition.
fn metric(worker: &Worker, name: &str) -> Option<f64> {
    let (_, text) = worker.get("/metrics")?;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn a_restarted_worker_reads_only_the_changelogs_tail_and_a_wiped_store_reads_it_all() {
    let scratch = Scratch::new("tbl-tail");
    let id = common::unique_name("tbl-tail");
    let app = counting_app(&scratch, &id, "at_least_once");
    let mut worker = Worker::start(&scratch, &app, &[]);
    worker.wait_ready(READY);
    produce(&format!("{id}-words"), 50);
    wait_until(Duration::from_secs(60), "1,000 records counted", || {
        counted(&id, 50, true)
    });
    worker.signal("TERM");
    assert!(worker.wait_exit(Duration::from_secs(30)).success());

    // The store reflects the whole changelog: nothing to read, every row loaded.
    let mut worker = worker.restart(&scratch, &app, &[]);
    worker.wait_ready(READY);
    let read = metric(&worker, "faust_rs_table_changelog_records_read_total");
    let loaded = metric(&worker, "faust_rs_table_rows_loaded_total");
    assert_eq!(
        (read, loaded),
        (Some(0.0), Some(KEYS as f64)),
        "{}",
        worker.log_text()
    );
    produce(&format!("{id}-words"), 10);
    wait_until(Duration::from_secs(60), "60 per key", || {
        counted(&id, 60, true)
    });
    // KILLed, the worker leaves a store at least as of its restart (durable then): the
    // restart reads at most the 200 changes made since, and loses none of them.
    worker.signal("KILL");
    worker.wait_exit(Duration::from_secs(10));
    let mut worker = worker.restart(&scratch, &app, &[]);
    worker.wait_ready(READY);
    let read = metric(&worker, "faust_rs_table_changelog_records_read_total").unwrap();
    assert!(read <= 200.0, "read {read}:\n{}", worker.log_text());
    assert_eq!(worker.get_json("/table/counts/k7")["value"], 60);
    worker.signal("TERM");
    assert!(worker.wait_exit(Duration::from_secs(30)).success());

    // The control: without the store, the whole changelog (1,200 changes) is read again.
    let tables = scratch
        .path(&format!("data-{}", worker.port))
        .join("tables");
    std::fs::remove_dir_all(&tables).expect("the worker's tables folder");
    let mut worker = worker.restart(&scratch, &app, &[]);
    worker.wait_ready(READY);
    let read = metric(&worker, "faust_rs_table_changelog_records_read_total").unwrap();
    assert!(read >= 1200.0, "read {read}:\n{}", worker.log_text());
    let (_, body) = worker.get("/table/counts/k3").unwrap();
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(value["value"], 60, "{body}");
}

/// The status and `Location` of a GET, redirects not followed.
fn first_answer(port: u16, path: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into();
    let response = agent
        .get(format!("http://127.0.0.1:{port}{path}"))
        .call()
        .expect("an answer");
    let location = response
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (response.status().as_u16(), location)
}

#[test]
fn the_http_routes_answer_or_redirect_to_the_holder() {
    let scratch = Scratch::new("tbl-http");
    let id = common::unique_name("tbl-http");
    let app = counting_app(&scratch, &id, "at_least_once");
    let mut workers = [
        Worker::start(&scratch, &app, &[]),
        Worker::start(&scratch, &app, &[]),
    ];
    for worker in &mut workers {
        worker.wait_ready(READY);
    }
    wait_until(READY, "both workers hold partitions", || {
        workers.iter().all(|w| {
            w.get_json("/table/counts")["held"]
                .as_array()
                .is_some_and(|held| !held.is_empty())
        })
    });
    produce(&format!("{id}-words"), 3);
    wait_until(Duration::from_secs(60), "3 per key", || {
        counted(&id, 3, true)
    });
    // Asked of worker 0, every key answers (ureq follows the redirects), some from worker 1.
    let w1 = workers[1].get_json("/")["worker"].clone();
    let (mut here, mut redirected) = (0, 0);
    for k in 0..KEYS {
        let path = format!("/table/counts/k{k}");
        let answer = workers[0].get_json(&path);
        assert_eq!(answer["value"], 3, "{path}: {answer}");
        if answer["worker"] == w1 {
            redirected += 1;
            let (status, location) = first_answer(workers[0].port, &path);
            assert_eq!(status, 307, "{path}");
            assert!(
                location.ends_with(&format!(":{}{path}", workers[1].port)),
                "{location}"
            );
        } else {
            here += 1;
        }
    }
    assert!(
        here > 0 && redirected > 0,
        "{here} here, {redirected} redirected"
    );
    let listed = workers[0].get_json("/table/counts");
    let keys: u64 = listed["held"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["keys"].as_u64().unwrap())
        .sum();
    assert_eq!(keys, here, "{listed}");
    assert_eq!(workers[0].get("/table/nope").unwrap().0, 404);
}

/// A table key that is a URL, slashes and all.
const URL_KEY: &str = "https://news.example.com/rss";

#[test]
fn a_global_table_is_held_by_every_worker_and_read_by_the_leader() {
    let scratch = Scratch::new("tbl-global");
    let id = common::unique_name("tbl-global");
    let app = scratch.app(
        "app.toml",
        &format!(
            r#"
[app]
id = "{id}"
broker = "@BROKER@"
topic_partitions = {PARTITIONS}

[[topics]]
name = "{id}-subs"
value_serializer = "json"

[[tables]]
name = "subscriptions"
global = true

[[agents]]
name = "subscribe"
topic = "{id}-subs"
body = '''
if value.action == "subscribe" {{ subscriptions[key] = true; }} else {{ subscriptions.remove(key); }}
'''

[[timers]]
name = "report"
interval = 0.5
on_leader = true
body = '''
let sources = subscriptions.keys();
sources.sort();
print(`subscriptions: ${{sources}}`);
'''
"#
        ),
    );
    let mut workers = [
        Worker::start(&scratch, &app, &[]),
        Worker::start(&scratch, &app, &[]),
    ];
    for worker in &mut workers {
        worker.wait_ready(READY);
    }
    let producer = common::producer();
    let topic = format!("{id}-subs");
    common::block_on(async {
        for (source, action) in [
            ("a", "subscribe"),
            ("b", "subscribe"),
            ("c", "subscribe"),
            ("b", "unsubscribe"),
            (URL_KEY, "subscribe"),
        ] {
            let value = format!(r#"{{"action":"{action}"}}"#);
            let record = FutureRecord::to(&topic).key(source).payload(&value);
            producer
                .send(record, Duration::from_secs(10))
                .await
                .expect("sent");
        }
    });
    wait_until(
        Duration::from_secs(60),
        "the leader prints a, c and the URL",
        || {
            workers.iter().any(|w| {
                w.stdout_text().lines().last()
                    == Some(r#"subscriptions: ["a","c","https://news.example.com/rss"]"#)
            })
        },
    );
    for worker in &workers {
        let listed = worker.get_json("/table/subscriptions");
        assert_eq!(
            listed["held"].as_array().unwrap().len(),
            PARTITIONS as usize,
            "{listed}"
        );
        let (status, body) = worker.get("/table/subscriptions/c").unwrap();
        assert_eq!((status, body.contains("true")), (200, true), "{body}");
        assert_eq!(worker.get("/table/subscriptions/b").unwrap().0, 404);
        // A key with slashes is the rest of the path, as written or percent-encoded.
        for path in [URL_KEY, "https%3A%2F%2Fnews.example.com%2Frss"] {
            let (status, body) = worker.get(&format!("/table/subscriptions/{path}")).unwrap();
            assert_eq!(status, 200, "{path}: {body}");
        }
    }
}
