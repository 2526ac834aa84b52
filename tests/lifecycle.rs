//! The workers guide's signals, on real processes against the real broker: TERM finishes what
//! is in flight and hands over cleanly, QUIT leaves at once and another worker redoes the
//! unfinished work, a second INT cuts a slow warm shutdown short, USR1 dumps the state.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Scratch, Worker, wait_until};
use rdkafka::Message;
use rdkafka::producer::FutureRecord;

const READY: Duration = Duration::from_secs(60);

/// An app whose agent spins `spin` iterations per event, then forwards the event's id to an
/// output topic.
fn slow_app(scratch: &Scratch, id: &str, spin: u64, concurrency: u32) -> std::path::PathBuf {
    scratch.app(
        "slow.toml",
        &format!(
            r#"
[app]
id = "{id}"
broker = "@BROKER@"
topic_partitions = 4
session_timeout = 3.0
heartbeat_interval = 0.5
commit_interval = 0.5

[app.limits]
max_operations = 1000000000

[[topics]]
name = "{id}-out"
partitions = 1

[[timers]]
name = "heartbeat"
interval = 0.5
body = '''log_debug("tick");'''

[[agents]]
name = "work"
concurrency = {concurrency}
sink = ["{id}-out"]
body = '''
let spin = 0;
for i in 0..{spin} {{ spin += 1; }}
value
'''
"#
        ),
    )
}

fn produce_ids(topic: &str, count: u64) {
    let producer = common::producer();
    common::block_on(async {
        let futures: Vec<_> = (0..count)
            .map(|id| {
                let payload = id.to_string();
                producer
                    .send_result(FutureRecord::to(topic).key(&payload).payload(&payload))
                    .unwrap_or_else(|(e, _)| panic!("enqueue {id}: {e}"))
            })
            .collect();
        for future in futures {
            future.await.unwrap().unwrap();
        }
    });
}

/// How many times each id reached the output topic, once all of `0..count` did.
fn output_counts(topic: &str, count: u64) -> HashMap<u64, usize> {
    let consumer = common::reader(topic);
    let mut seen: HashMap<u64, usize> = HashMap::new();
    let start = Instant::now();
    while (seen.len() as u64) < count {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "only {} of {count} ids in {topic}",
            seen.len()
        );
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let id = String::from_utf8_lossy(message.payload().unwrap())
                .parse()
                .unwrap();
            *seen.entry(id).or_default() += 1;
        }
    }
    // Anything a moment later would be a duplicate too.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(2) {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let id = String::from_utf8_lossy(message.payload().unwrap())
                .parse()
                .unwrap();
            *seen.entry(id).or_default() += 1;
        }
    }
    seen
}

fn events_in(worker: &Worker) -> u64 {
    worker.get_json("/stats")["agents"]["work"]["events_in"]
        .as_u64()
        .unwrap()
}

/// Two workers ready, each owning partitions of the agent topic.
fn pair(scratch: &Scratch, app: &std::path::Path, id: &str) -> (Worker, Worker) {
    let mut first = Worker::start(scratch, app, &[]);
    let mut second = Worker::start(scratch, app, &[]);
    first.wait_ready(READY);
    second.wait_ready(READY);
    let topic = format!("{id}-work");
    wait_until(READY, "both workers own partitions", || {
        [&first, &second].iter().all(|w| {
            w.get_json("/assignment")["assignment"][&topic]
                .as_array()
                .is_some_and(|p| !p.is_empty())
        })
    });
    (first, second)
}

#[test]
fn term_finishes_in_flight_events_and_nothing_is_redelivered() {
    let scratch = Scratch::new("term");
    let id = common::unique_name("term");
    let app = slow_app(&scratch, &id, 20_000, 2);
    let (mut leaving, staying) = pair(&scratch, &app, &id);
    const COUNT: u64 = 400;
    produce_ids(&format!("{id}-work"), COUNT);
    wait_until(
        Duration::from_secs(60),
        "the leaving worker is mid-stream",
        || events_in(&leaving) >= 20,
    );
    leaving.signal("TERM");
    let status = leaving.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", leaving.log_text());
    let counts = output_counts(&format!("{id}-out"), COUNT);
    let duplicates: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicates.is_empty(),
        "redelivered after a warm shutdown: {duplicates:?}"
    );
    assert!(events_in(&staying) > 0);
    assert!(leaving.log_text().contains("warm shutdown"));
}

#[test]
fn quit_exits_within_a_second_and_another_worker_redoes_its_work() {
    let scratch = Scratch::new("quit");
    let id = common::unique_name("quit");
    let app = slow_app(&scratch, &id, 20_000, 2);
    let (mut quitting, staying) = pair(&scratch, &app, &id);
    const COUNT: u64 = 400;
    produce_ids(&format!("{id}-work"), COUNT);
    wait_until(
        Duration::from_secs(60),
        "the quitting worker is mid-stream",
        || events_in(&quitting) >= 20,
    );
    quitting.signal("QUIT");
    let signalled = Instant::now();
    let status = quitting.wait_exit(Duration::from_secs(5));
    let took = signalled.elapsed();
    assert!(took < Duration::from_secs(1), "QUIT took {took:?}");
    assert_eq!(
        status.code(),
        Some(3),
        "cold shutdown status\n{}",
        quitting.log_text()
    );
    let counts = output_counts(&format!("{id}-out"), COUNT);
    assert_eq!(counts.len() as u64, COUNT, "every id processed");
    assert!(events_in(&staying) > 0);
}

#[test]
fn second_int_ends_a_slow_warm_shutdown_at_once() {
    let scratch = Scratch::new("int-int");
    let id = common::unique_name("intint");
    // Each event takes long enough that a warm shutdown would wait on it for seconds.
    let app = slow_app(&scratch, &id, 3_000_000, 1);
    let mut worker = Worker::start(&scratch, &app, &["--shutdown-timeout", "60"]);
    worker.wait_ready(READY);
    produce_ids(&format!("{id}-work"), 20);
    wait_until(Duration::from_secs(60), "an event in flight", || {
        events_in(&worker) >= 1
    });
    worker.signal("INT");
    wait_until(Duration::from_secs(10), "the warm shutdown began", || {
        worker.log_text().contains("INT: warm shutdown")
    });
    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "a warm shutdown waits for the event in flight"
    );
    worker.signal("INT");
    let signalled = Instant::now();
    let status = worker.wait_exit(Duration::from_secs(5));
    assert!(
        signalled.elapsed() < Duration::from_secs(1),
        "took {:?}",
        signalled.elapsed()
    );
    assert_eq!(status.code(), Some(3), "{}", worker.log_text());
    assert!(
        worker
            .log_text()
            .contains("INT during warm shutdown: turning cold")
    );
}

#[test]
fn usr1_dumps_agents_timers_and_elections_and_the_worker_goes_on() {
    let scratch = Scratch::new("usr1");
    let id = common::unique_name("usr1");
    let app = slow_app(&scratch, &id, 100, 1);
    let mut worker = Worker::start(&scratch, &app, &[]);
    worker.wait_ready(READY);
    produce_ids(&format!("{id}-work"), 50);
    wait_until(Duration::from_secs(30), "the first batch processed", || {
        events_in(&worker) >= 50
    });
    // The election runs beside the agents: its first term may come after the first batch.
    wait_until(Duration::from_secs(30), "the worker leads", || {
        worker.get_json("/leader")["elections"]["leader"]["this_worker_leads"] == true
    });
    worker.signal("USR1");
    wait_until(Duration::from_secs(10), "the dump in the log", || {
        worker.log_text().contains("USR1 dump of worker")
    });
    let log = worker.log_text();
    let dump = &log[log.find("USR1 dump of worker").unwrap()..];
    for needle in [
        "agent work (",
        "timer heartbeat (every 0.5s)",
        "election leader: this worker leads",
        "assignment:",
        "group ",
    ] {
        assert!(dump.contains(needle), "dump lacks {needle:?}:\n{dump}");
    }
    produce_ids(&format!("{id}-work"), 50);
    wait_until(
        Duration::from_secs(30),
        "processing goes on after the dump",
        || events_in(&worker) >= 100,
    );
}

#[test]
fn the_shutdown_deadline_bounds_a_body_still_running() {
    let scratch = Scratch::new("deadline");
    let id = common::unique_name("deadline");
    let app = slow_app(&scratch, &id, 3_000_000, 1);
    let mut worker = Worker::start(&scratch, &app, &["--shutdown-timeout", "1"]);
    worker.wait_ready(READY);
    produce_ids(&format!("{id}-work"), 20);
    wait_until(Duration::from_secs(60), "an event in flight", || {
        events_in(&worker) >= 1
    });
    worker.signal("TERM");
    let status = worker.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(3), "{}", worker.log_text());
    assert!(
        worker
            .log_text()
            .contains("the shutdown deadline during warm shutdown: turning cold")
    );
}

#[test]
fn on_error_stop_ends_the_worker_at_once_with_status_1() {
    let scratch = Scratch::new("stop");
    let id = common::unique_name("stop");
    let app = scratch.app(
        "stop.toml",
        &format!(
            "[app]\nid = \"{id}\"\nbroker = \"@BROKER@\"\ntopic_partitions = 1\n\n[[agents]]\nname = \"strict\"\non_error = \"stop\"\nbody = '''value.n'''\n"
        ),
    );
    let mut worker = Worker::start(&scratch, &app, &[]);
    worker.wait_ready(READY);
    let producer = common::producer();
    common::block_on(async {
        producer
            .send(
                FutureRecord::<(), _>::to(&format!("{id}-strict")).payload("{not json"),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    });
    // Well before the 25 s shutdown timeout: the failed event is not waited for.
    let status = worker.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "{}", worker.log_text());
    let log = worker.log_text();
    assert!(
        log.contains(&format!(
            "agent strict topic {id}-strict partition 0 offset 0"
        )),
        "{log}"
    );
    assert!(log.contains("on_error = \"stop\""), "{log}");
}

/// While the brokers do not answer, the worker serves /health (and /ready says 503), and TERM
/// stops it at once rather than after the brokers time out.
#[test]
fn term_during_start_up_stops_at_once_and_health_answers_meanwhile() {
    let scratch = Scratch::new("startup");
    // Nothing listens on this port: topic creation waits for a broker that never answers.
    let nobody = common::free_port();
    let app = scratch.path("app.toml");
    std::fs::write(
        &app,
        format!("[app]\nid = \"startup\"\nbroker = \"kafka://127.0.0.1:{nobody}\"\n"),
    )
    .unwrap();
    let mut worker = Worker::start(&scratch, &app, &[]);
    wait_until(Duration::from_secs(10), "/health answers", || {
        matches!(worker.get("/health"), Some((200, _)))
    });
    assert_eq!(worker.get("/ready").map(|(status, _)| status), Some(503));
    worker.signal("TERM");
    assert_eq!(
        worker.wait_exit(Duration::from_secs(5)).code(),
        Some(0),
        "{}",
        worker.log_text()
    );
    assert!(worker.log_text().contains("TERM during start-up"));
}

/// Under systemd (`Type=notify`, `WatchdogSec=`): the worker sends READY=1 once started,
/// WATCHDOG=1 at half the watchdog interval, and STOPPING=1 when TERM begins its shutdown, on
/// the datagram socket `NOTIFY_SOCKET` names (here one this test listens on).
#[test]
fn systemd_hears_ready_watchdog_and_stopping() {
    use std::os::unix::net::UnixDatagram;

    let scratch = Scratch::new("sd-notify");
    let id = common::unique_name("sd-notify");
    let app = scratch.app(
        "app.toml",
        &format!("[app]\nid = \"{id}\"\nbroker = \"@BROKER@\"\n"),
    );
    let socket_path = scratch.path("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let env = [
        (
            "NOTIFY_SOCKET".to_string(),
            socket_path.to_str().unwrap().to_string(),
        ),
        ("WATCHDOG_USEC".to_string(), "200000".to_string()),
    ];
    let mut worker = Worker::start_with_env(&scratch, &app, &[], &env);
    let mut heard: Vec<String> = Vec::new();
    let mut listen_until = |what: &str| {
        let mut buffer = [0u8; 512];
        while !heard.iter().any(|m| m.lines().any(|l| l == what)) {
            let n = socket
                .recv(&mut buffer)
                .unwrap_or_else(|e| panic!("no {what} (heard {heard:?}): {e}"));
            heard.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
        }
    };
    listen_until("READY=1");
    listen_until("WATCHDOG=1");
    worker.signal("TERM");
    listen_until("STOPPING=1");
    assert_eq!(worker.wait_exit(Duration::from_secs(30)).code(), Some(0));
    let ready = heard.iter().position(|m| m.contains("READY=1")).unwrap();
    let stopping = heard.iter().position(|m| m.contains("STOPPING=1")).unwrap();
    assert!(ready < stopping, "{heard:?}");
}
