//! `processing_guarantee = "exactly_once"` against the real broker: workers killed (KILL), shut
//! down cold (QUIT) and paused past their session (STOP/CONT) while 20,000 records go through
//! an agent with a sink; a read-committed reader then finds every input once. The same drill
//! at at-least-once finds the duplicates it allows, so the check can fail.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Scratch, Worker, wait_until};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

const READY: Duration = Duration::from_secs(60);
const RECORDS: u64 = 20_000;
const PARTITIONS: i32 = 6;

/// How many times the sink holds each input id, as a read-committed reader sees it.
struct Outcome {
    copies: HashMap<u64, usize>,
    records: usize,
}

impl Outcome {
    fn missing(&self) -> Vec<u64> {
        (0..RECORDS)
            .filter(|id| !self.copies.contains_key(id))
            .collect()
    }

    fn duplicated(&self) -> usize {
        self.copies.values().filter(|n| **n > 1).count()
    }
}

#[test]
fn exactly_once_survives_kill_quit_and_pause_with_every_input_once() {
    let outcome = drill("eos", "exactly_once", "");
    assert_eq!(
        outcome.missing(),
        Vec::<u64>::new(),
        "inputs never processed"
    );
    assert_eq!(
        (outcome.records, outcome.duplicated()),
        (RECORDS as usize, 0),
        "sink records and duplicated ids"
    );
}

/// The control: the same drill at at-least-once, committing rarely, so the killed worker's
/// processed events are surely sent again by their next owner.
#[test]
fn at_least_once_loses_nothing_in_the_same_drill_but_duplicates() {
    let outcome = drill("alo", "at_least_once", "commit_interval = 60.0");
    assert_eq!(
        outcome.missing(),
        Vec::<u64>::new(),
        "inputs never processed"
    );
    let duplicated = outcome.duplicated();
    eprintln!(
        "at-least-once: {} sink records, {duplicated} ids more than once",
        outcome.records
    );
    assert!(duplicated > 0, "the drill must provoke duplicates");
}

/// Three workers share the input; once each is mid-stream one is killed (KILL), one stopped
/// cold (QUIT), both replaced, and one paused (STOP) past its session timeout and resumed.
fn drill(prefix: &str, guarantee: &str, extra: &str) -> Outcome {
    let scratch = Scratch::new(prefix);
    let id = common::unique_name(prefix);
    let (input, sink) = (format!("{id}-copy"), format!("{id}-out"));
    let app = scratch.app(
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
{extra}

[[topics]]
name = "{sink}"
partitions = 3

[[agents]]
name = "copy"
sink = ["{sink}"]
body = '''
let spin = 0;
for i in 0..2000 {{ spin += i; }}
value
'''
"#
        ),
    );
    let mut workers: Vec<Worker> = (0..3).map(|_| Worker::start(&scratch, &app, &[])).collect();
    for worker in &mut workers {
        worker.wait_ready(READY);
    }
    wait_until(READY, "every worker owns partitions", || {
        workers.iter().all(|w| !owned(w, &input).is_empty())
    });
    produce_ids(&input);

    let [killed, quit, paused] = [0, 1, 2].map(|i| workers[i].pid());
    mid_stream(&workers[0]);
    workers[0].signal("KILL");
    workers[0].wait_exit(Duration::from_secs(10));
    workers.push(Worker::start(&scratch, &app, &[]));
    mid_stream(&workers[1]);
    workers[1].signal("QUIT");
    workers[1].wait_exit(Duration::from_secs(10));
    workers.push(Worker::start(&scratch, &app, &[]));
    mid_stream(&workers[2]);
    workers[2].signal("STOP");
    let resume = Instant::now() + Duration::from_secs(8);
    wait_until(
        Duration::from_secs(60),
        "the others take its partitions",
        || {
            workers[3..]
                .iter()
                .map(|w| owned(w, &input).len())
                .sum::<usize>()
                == PARTITIONS as usize
        },
    );
    std::thread::sleep(resume.saturating_duration_since(Instant::now()));
    workers[2].signal("CONT");
    eprintln!("{guarantee}: killed {killed}, quit {quit}, paused {paused}");

    wait_until(
        Duration::from_secs(240),
        "every input offset committed",
        || all_committed(&id, &input),
    );
    // Each partition's holder counts no record behind its commit: under exactly-once the
    // offsets go out with the transactions, not through the consumer, and still count.
    wait_until(
        Duration::from_secs(30),
        "commit_lag 0 for every partition on its holder",
        || commit_lags(&workers[2..], &input) == vec![0; PARTITIONS as usize],
    );
    // Whether the paused worker's transaction was open when it stopped is luck: shown, not
    // asserted.
    let aborted = workers[2].get_json("/stats")["transactions_aborted"].clone();
    eprintln!("{guarantee}: the paused worker aborted {aborted} transactions");
    read_committed(&sink)
}

/// The `commit_lag` of every partition of `topic` the `workers` hold, in partition order.
fn commit_lags(workers: &[Worker], topic: &str) -> Vec<i64> {
    let mut lags: Vec<(i32, i64)> = Vec::new();
    for worker in workers {
        let stats = worker.get_json("/stats");
        let Some(lag) = stats["commit_lag"].as_object() else {
            continue;
        };
        for partition in 0..PARTITIONS {
            if let Some(records) = lag.get(&format!("{topic}[{partition}]")) {
                lags.push((partition, records.as_i64().unwrap()));
            }
        }
    }
    lags.sort_unstable();
    lags.into_iter().map(|(_, records)| records).collect()
}

/// The partitions of `topic` `worker` owns.
fn owned(worker: &Worker, topic: &str) -> Vec<serde_json::Value> {
    worker
        .get("/assignment")
        .filter(|(status, _)| *status == 200)
        .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
        .and_then(|v| v["assignment"][topic].as_array().cloned())
        .unwrap_or_default()
}

/// Waits until `worker` has processed a few hundred events: it is mid-stream.
fn mid_stream(worker: &Worker) {
    let processed = || {
        worker.get_json("/stats")["agents"]["copy"]["events_in"]
            .as_u64()
            .unwrap_or(0)
    };
    let start = processed();
    wait_until(Duration::from_secs(120), "a worker mid-stream", || {
        processed() >= start + 300
    });
}

/// Produces the ids 0..RECORDS as JSON numbers, keyed so they spread over the partitions.
fn produce_ids(topic: &str) {
    let producer = common::producer();
    common::block_on(async {
        let mut sends = Vec::new();
        for id in 0..RECORDS {
            let (key, payload) = (format!("k{id}"), id.to_string());
            let record = FutureRecord::to(topic).key(&key).payload(&payload);
            sends.push(producer.send_result(record).expect("queue room"));
        }
        for send in sends {
            send.await.unwrap().expect("input delivered");
        }
    });
}

/// Whether the app's group has committed, for every partition of `topic`, its end.
fn all_committed(group: &str, topic: &str) -> bool {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", common::broker())
        .set("group.id", group)
        .create()
        .expect("an offsets reader");
    let mut list = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        list.add_partition(topic, partition);
    }
    let Ok(committed) = consumer.committed_offsets(list, Duration::from_secs(10)) else {
        return false;
    };
    committed.elements().iter().all(|e| {
        let end = consumer
            .fetch_watermarks(topic, e.partition(), Duration::from_secs(10))
            .map(|(_, high)| high);
        matches!((e.offset(), end), (Offset::Offset(at), Ok(high)) if at >= high && high > 0)
    })
}

/// Every record of `topic` a read-committed reader sees (librdkafka's default isolation),
/// read to its end.
fn read_committed(topic: &str) -> Outcome {
    let consumer = common::reader(topic);
    let mut copies: HashMap<u64, usize> = HashMap::new();
    let mut records = 0;
    let mut quiet_since = Instant::now();
    // The end: every id seen and nothing more for a while (aborted transactions' records are
    // skipped; a transaction still open holds the reader back until it settles).
    while copies.len() < RECORDS as usize || quiet_since.elapsed() < Duration::from_secs(5) {
        assert!(
            quiet_since.elapsed() < Duration::from_secs(60),
            "the sink went quiet with {} ids of {RECORDS}",
            copies.len()
        );
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let value = String::from_utf8_lossy(message.payload().unwrap_or_default());
            let id = value
                .parse()
                .unwrap_or_else(|_| panic!("unexpected output {value:?}"));
            *copies.entry(id).or_default() += 1;
            records += 1;
            quiet_since = Instant::now();
        }
    }
    Outcome { copies, records }
}
