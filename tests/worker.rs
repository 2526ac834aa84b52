//! The worker against the real broker, run as users run it: the real binary, real signals,
//! records produced by `faust-rs send`, by kcat and by rdkafka.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Scratch, Worker, wait_until};
use rdkafka::Message;
use rdkafka::producer::FutureRecord;

const READY: Duration = Duration::from_secs(60);

/// Produces `payloads` to `topic` one after the other, each acknowledged before the next is
/// sent, so a one-partition topic holds them in this order.
fn produce_in_order(topic: &str, payloads: &[impl AsRef<str>]) {
    let producer = common::producer();
    common::block_on(async {
        for payload in payloads {
            producer
                .send(
                    FutureRecord::<(), _>::to(topic).payload(payload.as_ref()),
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
        }
    });
}

/// Reads every record of `topic` from the beginning until `done` says it has enough, or the
/// deadline passes; returns the values as strings.
fn read_topic(topic: &str, deadline: Duration, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let consumer = common::reader(topic);
    let mut values = Vec::new();
    let start = Instant::now();
    while !done(&values) && start.elapsed() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            values
                .push(String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned());
        }
    }
    values
}

fn produce_json_ints(topic: &str, ids: std::ops::Range<u64>) -> HashMap<u64, i32> {
    let producer = common::producer();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut futures = Vec::new();
        for id in ids {
            let payload = id.to_string();
            let key = format!("k{id}");
            let future = producer
                .send_result(FutureRecord::to(topic).key(&key).payload(&payload))
                .unwrap_or_else(|(e, _)| panic!("enqueue {id}: {e}"));
            futures.push((id, future));
        }
        let mut partition_of = HashMap::new();
        for (id, future) in futures {
            let delivery = future
                .await
                .unwrap()
                .unwrap_or_else(|(e, _)| panic!("deliver {id}: {e}"));
            partition_of.insert(id, delivery.partition);
        }
        partition_of
    })
}

fn stats_sum(workers: &[&Worker], agent: &str, counter: &str) -> u64 {
    workers
        .iter()
        .map(|w| {
            w.get_json("/stats")["agents"][agent][counter]
                .as_u64()
                .unwrap()
        })
        .sum()
}

/// configs/proj.toml (the workers guide's `process` agent) with two workers: 10,000 records
/// from `faust-rs send --repeat` and 10,000 from kcat, every one processed, both workers busy.
#[test]
fn proj_two_workers_process_every_record_from_send_and_kcat() {
    let scratch = Scratch::new("proj");
    let id = common::unique_name("proj");
    let original =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/proj.toml")).unwrap();
    let toml = original
        .replacen("id = \"proj\"", &format!("id = \"{id}\""), 1)
        .replacen(
            "broker = \"kafka://localhost:9092\"",
            "broker = \"@BROKER@\"",
            1,
        );
    assert!(
        toml.contains(&id) && toml.contains("@BROKER@"),
        "configs/proj.toml changed shape:\n{original}"
    );
    let app = scratch.app("proj.toml", &toml);

    let mut first = Worker::start(&scratch, &app, &[]);
    let mut second = Worker::start(&scratch, &app, &[]);
    first.wait_ready(READY);
    second.wait_ready(READY);
    let topic = format!("{id}-process");
    wait_until(
        READY,
        "both workers own partitions of the agent topic",
        || {
            [&first, &second].iter().all(|w| {
                w.get_json("/assignment")["assignment"][&topic]
                    .as_array()
                    .is_some_and(|p| !p.is_empty())
            })
        },
    );

    let send = Command::new(common::binary())
        .arg("-A")
        .arg(&app)
        .args(["send", "@process", "\"hello\"", "--repeat", "10000"])
        .output()
        .unwrap();
    assert!(
        send.status.success(),
        "send failed: {}",
        String::from_utf8_lossy(&send.stderr)
    );
    let reports = String::from_utf8(send.stdout).unwrap();
    assert_eq!(reports.lines().count(), 10_000, "one JSON line per record");
    let report: serde_json::Value = serde_json::from_str(reports.lines().next().unwrap()).unwrap();
    assert_eq!(report["topic"], topic.as_str());

    let kcat_input: String = (0..10_000).map(|n| format!("{{\"n\": {n}}}\n")).collect();
    let mut kcat = Command::new("kcat")
        .args(["-b", &common::broker(), "-P", "-t", &topic])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("kcat is installed by scripts/deps.sh");
    std::io::Write::write_all(kcat.stdin.as_mut().unwrap(), kcat_input.as_bytes()).unwrap();
    assert!(kcat.wait().unwrap().success());

    wait_until(
        Duration::from_secs(120),
        "20,000 events counted in /stats",
        || stats_sum(&[&first, &second], "process", "events_in") >= 20_000,
    );
    let printed: Vec<String> = [&first, &second]
        .iter()
        .flat_map(|w| {
            w.stdout_text()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        stats_sum(&[&first, &second], "process", "events_in"),
        20_000,
        "no record processed twice without a rebalance"
    );
    assert_eq!(printed.len(), 20_000, "every event printed once");
    assert_eq!(printed.iter().filter(|l| *l == "hello").count(), 10_000);
    let numbers: BTreeSet<String> = printed
        .iter()
        .filter(|l| l.contains("\"n\"") || l.contains("n:"))
        .cloned()
        .collect();
    assert_eq!(
        numbers.len(),
        10_000,
        "every kcat record printed: {:?}",
        printed.iter().find(|l| *l != "hello")
    );
    for worker in [&first, &second] {
        assert!(
            !worker.stdout_text().is_empty(),
            "worker {} processed nothing",
            worker.port
        );
        assert_eq!(
            worker.get_json("/stats")["agents"]["process"]["events_failed"],
            0
        );
    }
}

/// Seed 004: "The tasks that did not complete will be executed again by another worker."
#[test]
fn killed_worker_unfinished_events_are_processed_by_the_other() {
    let scratch = Scratch::new("kill");
    let id = common::unique_name("kill");
    let out = format!("{id}-out");
    let app = scratch.app(
        "kill.toml",
        &format!(
            r#"
[app]
id = "{id}"
broker = "@BROKER@"
topic_partitions = 4
session_timeout = 3.0
heartbeat_interval = 0.5
commit_interval = 0.5

[[topics]]
name = "{out}"
partitions = 1

[[agents]]
name = "record"
sink = ["{out}"]
body = '''
let spin = 0;
for i in 0..1000 {{ spin += i; }}
value
'''
"#
        ),
    );
    let mut doomed = Worker::start(&scratch, &app, &[]);
    let mut survivor = Worker::start(&scratch, &app, &[]);
    doomed.wait_ready(READY);
    survivor.wait_ready(READY);
    let topic = format!("{id}-record");
    wait_until(READY, "both workers own partitions", || {
        [&doomed, &survivor].iter().all(|w| {
            w.get_json("/assignment")["assignment"][&topic]
                .as_array()
                .is_some_and(|p| !p.is_empty())
        })
    });

    const TOTAL: u64 = 10_000;
    let partition_of = produce_json_ints(&topic, 0..TOTAL);
    wait_until(
        Duration::from_secs(60),
        "the doomed worker is mid-stream",
        || {
            doomed.get_json("/stats")["agents"]["record"]["events_in"]
                .as_u64()
                .unwrap()
                >= 1_000
        },
    );
    let doomed_partitions: BTreeSet<i32> = doomed.get_json("/assignment")["assignment"][&topic]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_i64().unwrap() as i32)
        .collect();
    doomed.signal("KILL");
    doomed.wait_exit(Duration::from_secs(5));

    let output = read_topic(&out, Duration::from_secs(120), |values| {
        values.iter().collect::<BTreeSet<_>>().len() as u64 >= TOTAL
    });
    let mut count: HashMap<u64, usize> = HashMap::new();
    for value in &output {
        *count
            .entry(
                value
                    .parse()
                    .unwrap_or_else(|_| panic!("unexpected output {value:?}")),
            )
            .or_default() += 1;
    }
    let missing: Vec<u64> = (0..TOTAL).filter(|id| !count.contains_key(id)).collect();
    assert!(
        missing.is_empty(),
        "{} ids never processed, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let duplicates: Vec<u64> = count
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| *id)
        .collect();
    let foreign: Vec<&u64> = duplicates
        .iter()
        .filter(|id| !doomed_partitions.contains(&partition_of[id]))
        .collect();
    assert!(
        foreign.is_empty(),
        "duplicates outside the killed worker's partitions {doomed_partitions:?}: {foreign:?}"
    );
    eprintln!(
        "{} duplicates, all from the killed worker's partitions {doomed_partitions:?}",
        duplicates.len()
    );
}

/// Invalid JSON, a script error and an endless loop amid 1,000 good events: the good ones are
/// processed, the three are dead-lettered, and the worker stays ready.
#[test]
fn poison_events_are_dead_lettered_and_the_rest_processed() {
    let scratch = Scratch::new("poison");
    let id = common::unique_name("poison");
    let out = format!("{id}-out");
    let app = scratch.app(
        "poison.toml",
        &format!(
            r#"
[app]
id = "{id}"
broker = "@BROKER@"
topic_partitions = 1

[app.limits]
max_operations = 100000

[[topics]]
name = "{out}"
partitions = 1

[[agents]]
name = "check"
sink = ["{out}"]
on_error = "dead-letter"
body = '''
if value.kind == "boom" {{ throw "boom"; }}
if value.kind == "loop" {{ loop {{}} }}
value.n
'''
"#
        ),
    );
    let mut worker = Worker::start(&scratch, &app, &[]);
    worker.wait_ready(READY);
    let topic = format!("{id}-check");
    let mut payloads: Vec<String> = (0..500)
        .map(|n| format!("{{\"kind\": \"ok\", \"n\": {n}}}"))
        .collect();
    payloads.extend([
        "{not json".to_string(),
        "{\"kind\": \"boom\"}".into(),
        "{\"kind\": \"loop\"}".into(),
    ]);
    payloads.extend((500..1000).map(|n| format!("{{\"kind\": \"ok\", \"n\": {n}}}")));
    produce_in_order(&topic, &payloads);

    let output = read_topic(&out, Duration::from_secs(60), |v| v.len() >= 1000);
    let numbers: BTreeSet<u64> = output.iter().map(|v| v.parse().unwrap()).collect();
    assert_eq!(numbers, (0..1000).collect(), "every good event processed");
    let dead = read_topic(
        &format!("{id}-check-dead-letter"),
        Duration::from_secs(30),
        |v| v.len() >= 3,
    );
    assert_eq!(
        dead,
        vec!["{not json", "{\"kind\": \"boom\"}", "{\"kind\": \"loop\"}"]
    );
    let stats = worker.get_json("/stats");
    assert_eq!(stats["agents"]["check"]["events_failed"], 3, "{stats}");
    assert_eq!(stats["agents"]["check"]["dead_lettered"], 3, "{stats}");
    assert_eq!(worker.get("/ready").unwrap().0, 200);
    let log = worker.log_text();
    for needle in ["invalid JSON", "boom", "operation"] {
        assert!(
            log.contains(needle),
            "log should explain the {needle} failure:\n{log}"
        );
    }
    assert!(
        log.contains(&format!("topic {topic} partition 0 offset 500")),
        "log names the place:\n{log}"
    );
}

/// A body that runs past `max_duration` (here an endless loop with `max_operations = 0`, which
/// no operation count would stop) goes to its agent's `on_error` policy like any failure, and
/// the worker goes on with the records after it.
#[test]
fn a_body_past_max_duration_is_dead_lettered_and_the_rest_processed() {
    let scratch = Scratch::new("duration");
    let id = common::unique_name("duration");
    let out = format!("{id}-out");
    let app = scratch.app(
        "duration.toml",
        &format!(
            r#"
[app]
id = "{id}"
broker = "@BROKER@"
topic_partitions = 1

[app.limits]
max_operations = 0
max_duration = 0.3

[[topics]]
name = "{out}"
partitions = 1

[[agents]]
name = "spin"
sink = ["{out}"]
on_error = "dead-letter"
body = '''
if value == "forever" {{ loop {{}} }}
value
'''
"#
        ),
    );
    let mut worker = Worker::start(&scratch, &app, &[]);
    worker.wait_ready(READY);
    let topic = format!("{id}-spin");
    produce_in_order(&topic, &["\"a\"", "\"forever\"", "\"b\""]);
    let output = read_topic(&out, Duration::from_secs(60), |v| v.len() >= 2);
    assert_eq!(
        output,
        vec!["\"a\"", "\"b\""],
        "the records around it processed"
    );
    let dead = read_topic(
        &format!("{id}-spin-dead-letter"),
        Duration::from_secs(30),
        |v| !v.is_empty(),
    );
    assert_eq!(dead, vec!["\"forever\""]);
    let stats = worker.get_json("/stats");
    assert_eq!(stats["agents"]["spin"]["events_failed"], 1, "{stats}");
    assert_eq!(worker.get("/ready").unwrap().0, 200);
    let log = worker.log_text();
    assert!(log.contains("longer than max_duration = 0.3 s"), "{log}");
}

/// `commit_lag` counts the records between a partition's committed offset and its end also
/// before the worker has committed anything itself: the group's offset 3 of 10 was committed
/// before the worker started, and the body spins on the first event it gets (offset 3), so the
/// worker commits nothing new while the lag is read.
#[test]
fn commit_lag_counts_from_an_offset_committed_before_the_worker_started() {
    let scratch = Scratch::new("lag");
    let id = common::unique_name("lag");
    let topic = format!("{id}-stall");
    let app = scratch.app(
        "lag.toml",
        &format!(
            r#"
[app]
id = "{id}"
broker = "@BROKER@"
topic_partitions = 1

[app.limits]
max_operations = 0
max_duration = 120

[[agents]]
name = "stall"
body = 'loop {{}}'
"#
        ),
    );
    common::block_on(common::create_topic(&common::broker(), &topic, 1));
    let values: Vec<String> = (0..10).map(|n| n.to_string()).collect();
    produce_in_order(&topic, &values);
    commit_as_group(&id, &topic, 3);

    let mut worker = Worker::start(&scratch, &app, &[]);
    worker.wait_ready(READY);
    wait_until(Duration::from_secs(30), "a commit_lag of 7 records", || {
        worker.get_json("/stats")["commit_lag"][format!("{topic}[0]")] == 7
    });
    let stats = worker.get_json("/stats");
    assert_eq!(stats["agents"]["stall"]["events_in"], 1, "{stats}");
    worker.signal("KILL");
}

/// Commits `offset` for partition 0 of `topic` in `group`, as a client outside the group.
fn commit_as_group(group: &str, topic: &str, offset: i64) {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", common::broker())
        .set("group.id", group)
        .create()
        .expect("an offsets writer");
    let mut list = rdkafka::TopicPartitionList::new();
    list.add_partition_offset(topic, 0, rdkafka::Offset::Offset(offset))
        .unwrap();
    consumer
        .commit(&list, CommitMode::Sync)
        .expect("the group's offset committed");
}

/// A timer whose body throws is logged and keeps its schedule (Faust's #578 kills the worker).
#[test]
fn failing_timer_keeps_firing() {
    let scratch = Scratch::new("timer");
    let id = common::unique_name("timer");
    let app = scratch.app(
        "timer.toml",
        &format!(
            r#"
[app]
id = "{id}"
broker = "@BROKER@"

[[timers]]
name = "flaky"
interval = 0.2
body = '''throw "timer failure";'''
"#
        ),
    );
    let mut worker = Worker::start(&scratch, &app, &[]);
    worker.wait_ready(READY);
    wait_until(
        Duration::from_secs(20),
        "five runs of the failing timer",
        || {
            worker.get_json("/stats")["timers"]["flaky"]["runs"]
                .as_u64()
                .unwrap()
                >= 5
        },
    );
    let stats = worker.get_json("/stats");
    assert_eq!(
        stats["timers"]["flaky"]["failures"],
        stats["timers"]["flaky"]["runs"]
    );
    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "the worker must keep running"
    );
    assert!(worker.log_text().contains("timer failure"));
    worker.signal("TERM");
    assert_eq!(
        worker.wait_exit(Duration::from_secs(30)).code(),
        Some(0),
        "{}",
        worker.log_text()
    );
}

/// Two workers given one data directory: the second exits 2 naming the first's pid. A web port
/// in use: exit 2 as well. Neither touches Kafka.
#[test]
fn shared_datadir_and_busy_port_are_config_errors() {
    let scratch = Scratch::new("datadir");
    let id = common::unique_name("datadir");
    let app = scratch.app(
        "app.toml",
        &format!("[app]\nid = \"{id}\"\nbroker = \"@BROKER@\"\n"),
    );
    let datadir = scratch.path("shared");
    let mut first = Worker::start(&scratch, &app, &[]);
    first.wait_ready(READY);
    let first_datadir = scratch.path(&format!("data-{}", first.port));
    let second = Command::new(common::binary())
        .arg("-A")
        .arg(&app)
        .args([
            "worker",
            "--web-port",
            &common::free_port().to_string(),
            "--datadir",
        ])
        .arg(&first_datadir)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains(&format!("pid {}", first.pid())), "{stderr}");

    let third = Command::new(common::binary())
        .arg("-A")
        .arg(&app)
        .args([
            "worker",
            "--web-bind",
            "127.0.0.1",
            "--web-port",
            &first.port.to_string(),
            "--datadir",
        ])
        .arg(&datadir)
        .output()
        .unwrap();
    assert_eq!(third.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&third.stderr);
    assert!(
        stderr.contains(&format!("web port {} is already in use", first.port)),
        "{stderr}"
    );
}

/// Records compressed with each codec librdkafka knows (sent by `faust-rs send` with that
/// `compression.type`) are all consumed by a worker, whose own sends use zstd: the binary reads
/// and writes every codec.
#[test]
fn every_compression_codec_is_produced_and_consumed() {
    let scratch = Scratch::new("codecs");
    let id = common::unique_name("codecs");
    let app_with = |codec: &str| {
        scratch.app(
            &format!("{codec}.toml"),
            &format!(
                "[app]\nid = \"{id}\"\nbroker = \"@BROKER@\"\nvalue_serializer = \"raw\"\n\n\
                 [kafka]\n\"compression.type\" = \"{codec}\"\n\n\
                 [[agents]]\nname = \"echo\"\nbody = 'forward.send(value)'\n\n\
                 [[agents]]\nname = \"forward\"\nbody = 'print(value)'\n"
            ),
        )
    };
    let mut worker = Worker::start(&scratch, &app_with("zstd"), &[]);
    worker.wait_ready(READY);
    let codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
    for codec in codecs {
        let send = Command::new(common::binary())
            .arg("-A")
            .arg(app_with(codec))
            .args([
                "send",
                "@echo",
                &format!("packed-with-{codec}"),
                "--repeat",
                "50",
            ])
            .output()
            .unwrap();
        assert!(
            send.status.success(),
            "{codec}: {}",
            String::from_utf8_lossy(&send.stderr)
        );
    }
    wait_until(READY, "every record printed by the worker", || {
        let printed = worker.stdout_text();
        codecs
            .iter()
            .all(|codec| printed.matches(&format!("packed-with-{codec}\n")).count() == 50)
    });
}

/// `faust-rs leader --stand-down --url URL` (no `-A`) with the token from `--web-token-file`,
/// or none; its exit status and standard output and error.
fn stand_down_at(port: u16, token_file: Option<&std::path::Path>) -> std::process::Output {
    let mut command = Command::new(common::binary());
    command
        .args(["leader", "--stand-down", "--url"])
        .arg(format!("http://127.0.0.1:{port}"))
        .env_remove("FAUST_RS_WEB_TOKEN")
        .env_remove("FAUST_RS_APP");
    if let Some(file) = token_file {
        command.arg("--web-token-file").arg(file);
    }
    command.output().unwrap()
}

/// The control endpoint is locked: a worker started without a control token refuses every
/// stand-down request (403), one with a token refuses requests without it or with another one,
/// and `leader --stand-down --url` carrying it works from anywhere, without the app file.
#[test]
fn stand_down_needs_the_control_token() {
    let scratch = Scratch::new("control-token");
    let id = common::unique_name("control-token");
    let app = scratch.app(
        "app.toml",
        &format!("[app]\nid = \"{id}\"\nbroker = \"@BROKER@\"\n"),
    );
    let token = scratch.path("token");
    std::fs::write(&token, format!("{}\n", common::WEB_TOKEN)).unwrap();
    let wrong = scratch.path("wrong-token");
    std::fs::write(&wrong, "not-the-token").unwrap();
    let mut locked = Worker::start(&scratch, &app, &[]);
    let token_arg = token.to_str().unwrap();
    let mut guarded = Worker::start(&scratch, &app, &["--web-token-file", token_arg]);
    locked.wait_ready(Duration::from_secs(60));
    guarded.wait_ready(Duration::from_secs(60));

    for (port, file, why) in [
        (locked.port, Some(token.as_path()), "locked"),
        (guarded.port, None, "valid control token"),
        (guarded.port, Some(wrong.as_path()), "valid control token"),
    ] {
        let refused = stand_down_at(port, file);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("HTTP 403") && stderr.contains(why),
            "{stderr}"
        );
    }
    let admitted = stand_down_at(guarded.port, Some(&token));
    assert!(
        admitted.status.success(),
        "{}",
        String::from_utf8_lossy(&admitted.stderr)
    );
    assert!(String::from_utf8_lossy(&admitted.stdout).contains("\"stood_down\":"));
    assert!(!guarded.log_text().contains(common::WEB_TOKEN));
}
