//! Leader election against the real broker, driven as operators drive it: real processes,
//! real signals, the `leader` command. Leader ticks are recorded as records carrying their
//! term's epoch, so "exactly one leader" is checked on what the leaders actually did.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Scratch, Worker, wait_until};
use rdkafka::Message;
use rdkafka::message::Headers;

const READY: Duration = Duration::from_secs(60);

/// Who leads `election` according to `worker` (the port of the leader's web server).
fn leader_port(worker: &Worker, election: &str) -> Option<u16> {
    let view = worker.get_json("/leader");
    let url = view["elections"][election]["leader"]["web_url"].as_str()?;
    url.trim_end_matches('/').rsplit(':').next()?.parse().ok()
}

fn epoch_seen_by(worker: &Worker, election: &str) -> Option<i64> {
    worker.get_json("/leader")["elections"][election]["leader"]["epoch"].as_i64()
}

fn leads(worker: &Worker, election: &str) -> bool {
    worker.get_json("/leader")["elections"][election]["this_worker_leads"] == true
}

/// Waits until the workers in `observers` agree that one worker, other than `not`, leads
/// `election` and that worker says so itself; returns its index in `workers`.
fn wait_for_new_leader(
    workers: &[Worker],
    observers: &[usize],
    election: &str,
    not: Option<usize>,
    deadline: Duration,
) -> usize {
    let mut found = None;
    wait_until(
        deadline,
        &format!("a new leader of {election} (not {not:?})"),
        || {
            let views: BTreeSet<Option<u16>> = observers
                .iter()
                .map(|&i| leader_port(&workers[i], election))
                .collect();
            let [Some(port)] = views.into_iter().collect::<Vec<_>>()[..] else {
                return false;
            };
            let Some(index) = workers.iter().position(|w| w.port == port) else {
                return false;
            };
            if Some(index) == not
                || !observers.contains(&index)
                || !leads(&workers[index], election)
            {
                return false;
            }
            found = Some(index);
            true
        },
    );
    found.unwrap()
}

/// Waits until `worker` ran its leader timer `timer` twice more: it acts, not only leads.
fn wait_for_ticks(worker: &Worker, timer: &str) {
    let runs = |w: &Worker| {
        w.get_json("/stats")["timers"][timer]["runs"]
            .as_u64()
            .unwrap()
    };
    let before = runs(worker);
    wait_until(
        Duration::from_secs(10),
        &format!("two ticks of {timer} on the new leader"),
        || runs(worker) >= before + 2,
    );
}

/// One record a leader timer sent: which worker, under which epoch, when it was produced.
#[derive(Debug, Clone)]
struct Tick {
    worker: String,
    epoch: i64,
    timestamp_ms: i64,
}

fn read_ticks(topic: &str, until: impl Fn(&[Tick]) -> bool) -> Vec<Tick> {
    let consumer = common::reader(topic);
    let mut ticks = Vec::new();
    let start = Instant::now();
    while !until(&ticks) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "reading {topic}: got {} ticks",
            ticks.len()
        );
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let epoch = message
            .headers()
            .and_then(|h| {
                h.iter()
                    .find(|h| h.key == "faust-rs-epoch")
                    .and_then(|h| h.value)
            })
            .map(|v| String::from_utf8_lossy(v).parse::<i64>().unwrap())
            .unwrap_or_else(|| {
                panic!(
                    "a leader tick without an epoch header at offset {}",
                    message.offset()
                )
            });
        ticks.push(Tick {
            worker: String::from_utf8_lossy(message.payload().unwrap())
                .trim_matches('"')
                .to_string(),
            epoch,
            timestamp_ms: message.timestamp().to_millis().unwrap(),
        });
    }
    ticks
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Epochs never go backwards — in the order the leaders sent their records (their create
/// times, one clock on this machine: no worker acted as leader after a newer term began) and
/// in the log as a read-committed consumer sees it (a record a paused leader had queued is
/// never delivered after the next leader's: the new leader's producer fenced the old one's
/// transaction) — and each term belongs to one worker.
fn assert_one_leader_per_term(ticks: &[Tick]) {
    let mut owner: BTreeMap<i64, &str> = BTreeMap::new();
    let mut by_creation = ticks.to_vec();
    by_creation.sort_by_key(|t| t.timestamp_ms);
    for pair in by_creation.windows(2) {
        assert!(
            pair[1].epoch >= pair[0].epoch,
            "a leader acted after a newer term began: {pair:?}"
        );
    }
    for pair in ticks.windows(2) {
        assert!(
            pair[1].epoch >= pair[0].epoch,
            "a stale leader's record became visible after a newer term's: {pair:?}"
        );
    }
    for tick in ticks {
        let first = owner.entry(tick.epoch).or_insert(&tick.worker);
        assert_eq!(
            *first, tick.worker,
            "two workers ticked in epoch {}",
            tick.epoch
        );
    }
}

fn ticking_app(scratch: &Scratch, id: &str, out: &str) -> std::path::PathBuf {
    scratch.app(
        "ticks.toml",
        &format!(
            r#"
[app]
id = "{id}"
broker = "@BROKER@"
topic_partitions = 2
session_timeout = 3.0
election_session_timeout = 3.0
heartbeat_interval = 0.5

[[topics]]
name = "{out}"
partitions = 1

[[agents]]
name = "idle"
body = '''value'''

[[timers]]
name = "stamp"
interval = 0.2
on_leader = true
body = '''send("{out}", worker_id());'''
"#
        ),
    )
}

fn worker_id(worker: &Worker) -> String {
    worker.get_json("/")["worker"].as_str().unwrap().to_string()
}

/// Stand-down by USR2 and by `leader --stand-down`, KILL of the leader, and a leader paused
/// longer than the session timeout: after each, another worker leads under a newer epoch, and
/// across the whole drill no two workers ever acted in one term, nor did a term come back.
#[test]
fn failovers_keep_exactly_one_leader_per_epoch() {
    let scratch = Scratch::new("failover");
    let id = common::unique_name("failover");
    let out = format!("{id}-ticks");
    let app = ticking_app(&scratch, &id, &out);
    let token = common::web_token_env();
    let mut workers: Vec<Worker> = (0..4)
        .map(|_| Worker::start_with_env(&scratch, &app, &[], &token))
        .collect();
    for worker in &mut workers {
        worker.wait_ready(READY);
    }
    let ids: Vec<String> = workers.iter().map(worker_id).collect();
    let mut alive: Vec<usize> = (0..workers.len()).collect();

    let first = wait_for_new_leader(&workers, &alive, "leader", None, READY);
    wait_for_ticks(&workers[first], "stamp");
    workers[first].signal("USR2");
    let second = wait_for_new_leader(
        &workers,
        &alive,
        "leader",
        Some(first),
        Duration::from_secs(20),
    );
    wait_for_ticks(&workers[second], "stamp");

    let stand_down = Command::new(common::binary())
        .arg("-A")
        .arg(&app)
        .args([
            "leader",
            "--stand-down",
            "--web-port",
            &workers[second].port.to_string(),
        ])
        .envs(common::web_token_env())
        .output()
        .unwrap();
    assert!(
        stand_down.status.success(),
        "{}",
        String::from_utf8_lossy(&stand_down.stderr)
    );
    assert!(String::from_utf8_lossy(&stand_down.stdout).contains("\"stood_down\":[\"leader\"]"));
    let third = wait_for_new_leader(
        &workers,
        &alive,
        "leader",
        Some(second),
        Duration::from_secs(20),
    );
    wait_for_ticks(&workers[third], "stamp");

    workers[third].signal("KILL");
    workers[third].wait_exit(Duration::from_secs(5));
    alive.retain(|&i| i != third);
    let fourth = wait_for_new_leader(
        &workers,
        &alive,
        "leader",
        Some(third),
        Duration::from_secs(20),
    );
    wait_for_ticks(&workers[fourth], "stamp");

    // Pause the leader for longer than the session timeout (3 s).
    let paused_epoch = epoch_seen_by(&workers[fourth], "leader").unwrap();
    workers[fourth].signal("STOP");
    let observers: Vec<usize> = alive.iter().copied().filter(|&i| i != fourth).collect();
    let fifth = wait_for_new_leader(
        &workers,
        &observers,
        "leader",
        Some(fourth),
        Duration::from_secs(20),
    );
    let resumed_at = now_ms();
    workers[fourth].signal("CONT");
    wait_until(
        Duration::from_secs(20),
        "the resumed worker notices it lost its term",
        || {
            workers[fourth]
                .log_text()
                .contains(&format!("lost its term (epoch {paused_epoch})"))
        },
    );
    assert!(!leads(&workers[fourth], "leader"));
    let fifth_epoch = epoch_seen_by(&workers[fifth], "leader").unwrap();
    assert!(fifth_epoch > paused_epoch);

    // Read every tick up to a few from the last leader after the resumption.
    let last = ids[fifth].clone();
    let ticks = read_ticks(&out, |ticks| {
        ticks
            .iter()
            .filter(|t| t.worker == last && t.timestamp_ms > resumed_at + 1_000)
            .count()
            >= 3
    });
    assert_one_leader_per_term(&ticks);
    let terms: Vec<(i64, &str)> = ticks
        .iter()
        .map(|t| (t.epoch, t.worker.as_str()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    eprintln!("terms seen: {terms:?}");
    let leaders_in_order: Vec<&str> = terms.iter().map(|(_, w)| *w).collect();
    for (index, expected) in [first, second, third, fourth, fifth].iter().enumerate() {
        assert!(
            leaders_in_order.contains(&ids[*expected].as_str()),
            "leader #{index} ({}) never ticked: {terms:?}",
            ids[*expected]
        );
    }
    let stale: Vec<&Tick> = ticks
        .iter()
        .filter(|t| {
            t.worker == ids[fourth] && t.epoch == paused_epoch && t.timestamp_ms > resumed_at
        })
        .collect();
    assert!(
        stale.is_empty(),
        "the paused leader ticked after it resumed: {stale:?}"
    );
}

/// Workers joining and leaving (and the agent rebalances they cause) never move leadership.
#[test]
fn joins_and_leaves_of_other_workers_do_not_move_the_leader() {
    let scratch = Scratch::new("sticky");
    let id = common::unique_name("sticky");
    let out = format!("{id}-ticks");
    let app = ticking_app(&scratch, &id, &out);
    let mut workers = vec![
        Worker::start(&scratch, &app, &[]),
        Worker::start(&scratch, &app, &[]),
    ];
    for worker in &mut workers {
        worker.wait_ready(READY);
    }
    let leader = wait_for_new_leader(&workers, &[0, 1], "leader", None, READY);
    let epoch = epoch_seen_by(&workers[leader], "leader").unwrap();
    let rebalances_before = workers[leader].get_json("/stats")["rebalances"]
        .as_u64()
        .unwrap();

    for _round in 0..5 {
        let mut guests: Vec<Worker> = (0..4).map(|_| Worker::start(&scratch, &app, &[])).collect();
        for guest in &mut guests {
            guest.wait_ready(READY);
        }
        for guest in &guests {
            guest.signal("TERM");
        }
        for guest in &mut guests {
            assert_eq!(
                guest.wait_exit(Duration::from_secs(30)).code(),
                Some(0),
                "{}",
                guest.log_text()
            );
        }
        assert!(
            leads(&workers[leader], "leader"),
            "leadership moved during the joins and leaves"
        );
        assert_eq!(epoch_seen_by(&workers[leader], "leader"), Some(epoch));
    }
    let rebalances_after = workers[leader].get_json("/stats")["rebalances"]
        .as_u64()
        .unwrap();
    assert!(
        rebalances_after > rebalances_before,
        "the agents' group should have rebalanced"
    );

    let shown = Command::new(common::binary())
        .arg("-A")
        .arg(&app)
        .args(["leader", "--json-output"])
        .output()
        .unwrap();
    assert!(shown.status.success());
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["epoch"], epoch, "{shown}");
    assert_eq!(shown["worker"], worker_id(&workers[leader]).as_str());
}

/// `--no-candidate` workers never lead; two elections each have their own leader, and standing
/// down from one moves only that one.
#[test]
fn non_candidates_never_lead_and_elections_are_independent() {
    let scratch = Scratch::new("elections");
    let id = common::unique_name("elections");
    let out = format!("{id}-ticks");
    let app = scratch.app(
        "two.toml",
        &format!(
            r#"
[app]
id = "{id}"
broker = "@BROKER@"
session_timeout = 3.0
election_session_timeout = 3.0
heartbeat_interval = 0.5

[[topics]]
name = "{out}"
partitions = 1

[[elections]]
name = "crawl"

[[elections]]
name = "report"

[[timers]]
name = "crawl_tick"
interval = 0.3
election = "crawl"
body = '''send("{out}", worker_id());'''

[[timers]]
name = "report_tick"
interval = 0.3
election = "report"
body = '''send("{out}", worker_id());'''
"#
        ),
    );
    let mut bystander = Worker::start(&scratch, &app, &["--no-candidate"]);
    bystander.wait_ready(READY);
    let token = common::web_token_env();
    let mut workers = vec![Worker::start_with_env(&scratch, &app, &[], &token)];
    workers[0].wait_ready(READY);
    wait_until(READY, "the first candidate leads both elections", || {
        leads(&workers[0], "crawl") && leads(&workers[0], "report")
    });
    workers.push(Worker::start_with_env(&scratch, &app, &[], &token));
    workers[1].wait_ready(READY);

    let stand_down = Command::new(common::binary())
        .arg("-A")
        .arg(&app)
        .args([
            "leader",
            "--stand-down",
            "--election",
            "crawl",
            "--web-port",
            &workers[0].port.to_string(),
        ])
        .envs(common::web_token_env())
        .output()
        .unwrap();
    assert!(
        stand_down.status.success(),
        "{}",
        String::from_utf8_lossy(&stand_down.stderr)
    );
    wait_until(
        Duration::from_secs(20),
        "crawl moves to the second worker, report stays",
        || leads(&workers[1], "crawl") && leads(&workers[0], "report"),
    );
    // The bystander reads the new term's announcement from the topic: a moment after.
    wait_until(
        Duration::from_secs(10),
        "the bystander names the new leader of crawl",
        || leader_port(&bystander, "crawl") == Some(workers[1].port),
    );
    assert_eq!(leader_port(&bystander, "report"), Some(workers[0].port));
    for election in ["crawl", "report"] {
        assert!(!leads(&bystander, election));
        assert_eq!(
            bystander.get_json("/leader")["elections"][election]["candidate"],
            false
        );
    }
    let stats = bystander.get_json("/stats");
    assert_eq!(stats["timers"]["crawl_tick"]["runs"], 0, "{stats}");
    assert_eq!(stats["timers"]["report_tick"]["runs"], 0, "{stats}");
}

fn count(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .matches(needle)
        .count()
}

/// The seed tutorial (`configs/leader.toml`) with a fresh app id, on the test broker.
fn tutorial_app(scratch: &Scratch) -> std::path::PathBuf {
    let id = common::unique_name("leader-example");
    scratch.app("leader.toml", &common::tutorial_toml(&id, "@BROKER@"))
}

/// A newcomer's first run: three workers of the tutorial joining one after another, each once
/// the previous one is ready, log no warning in their first 30 s (commits during the
/// cooperative rebalances used to log librdkafka's COMMITFAIL warnings, though nothing was lost).
#[test]
fn the_tutorial_joining_one_by_one_logs_no_warning() {
    let scratch = Scratch::new("no-warn");
    let app = tutorial_app(&scratch);
    let started = Instant::now();
    let mut workers: Vec<Worker> = Vec::new();
    for _ in 0..3 {
        let mut worker = Worker::start(&scratch, &app, &[]);
        worker.wait_ready(READY);
        workers.push(worker);
    }
    // The window is the point: watch the logs for the first 30 s, while greetings flow.
    wait_until(
        Duration::from_secs(40),
        "30 s since the first start",
        || started.elapsed() >= Duration::from_secs(30),
    );
    let greetings: usize = workers.iter().map(|w| count(&w.stdout, "0.")).sum();
    assert!(greetings > 0, "no greeting was printed");
    for worker in &workers {
        let log = worker.log_text();
        let warnings: Vec<&str> = log.lines().filter(|l| l.contains(" WARN ")).collect();
        assert!(warnings.is_empty(), "{}", warnings.join("\n"));
    }
}

/// The seed tutorial as written: three workers of configs/leader.toml differing only in
/// --web-port; one publishes about every 2 s and the greetings are printed; INT the leader
/// and another takes over; down to the last worker there is always exactly one publisher.
#[test]
fn tutorial_has_exactly_one_publisher_down_to_the_last_worker() {
    let scratch = Scratch::new("tutorial");
    let app = tutorial_app(&scratch);
    let mut workers: Vec<Worker> = (0..3).map(|_| Worker::start(&scratch, &app, &[])).collect();
    for worker in &mut workers {
        worker.wait_ready(READY);
    }
    let mut alive: Vec<usize> = vec![0, 1, 2];
    let publishing = |w: &Worker| count(&w.stdout, "PUBLISHING ON LEADER!");
    while !alive.is_empty() {
        let leader = wait_for_new_leader(&workers, &alive, "leader", None, READY);
        // Two more ticks from the leader, and none from anyone else meanwhile.
        let before: Vec<usize> = workers.iter().map(publishing).collect();
        wait_until(Duration::from_secs(10), "two ticks of the leader", || {
            publishing(&workers[leader]) >= before[leader] + 2
        });
        for &other in alive.iter().filter(|&&i| i != leader) {
            assert_eq!(
                publishing(&workers[other]),
                before[other],
                "worker {other} published while {leader} led"
            );
        }
        workers[leader].signal("INT");
        assert_eq!(
            workers[leader].wait_exit(Duration::from_secs(30)).code(),
            Some(0)
        );
        alive.retain(|&i| i != leader);
    }
    let published: usize = workers.iter().map(publishing).sum();
    let greetings: usize = workers
        .iter()
        .map(|w| {
            std::fs::read_to_string(&w.stdout)
                .unwrap()
                .lines()
                .filter(|l| l.parse::<f64>().is_ok())
                .count()
        })
        .sum();
    assert!(published >= 6, "published {published}");
    // Each tick sent one greeting; the last few may still have been in flight at the end.
    assert!(
        greetings + 3 >= published,
        "{greetings} greetings for {published} ticks"
    );
}

/// An agent told to `drop_stale_epochs` skips records whose epoch header is older than the
/// newest it has seen, and processes the rest (and records without the header).
#[test]
fn agents_can_drop_records_of_stale_terms() {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::FutureRecord;

    let scratch = Scratch::new("stale");
    let id = common::unique_name("stale");
    let out = format!("{id}-out");
    let app = scratch.app(
        "stale.toml",
        &format!(
            r#"
[app]
id = "{id}"
broker = "@BROKER@"
topic_partitions = 1
value_serializer = "raw"

[[topics]]
name = "{out}"
partitions = 1
value_serializer = "raw"

[[agents]]
name = "fenced"
sink = ["{out}"]
drop_stale_epochs = true
body = '''value'''
"#
        ),
    );
    let mut worker = Worker::start(&scratch, &app, &["--no-candidate"]);
    worker.wait_ready(READY);
    let producer = common::producer();
    let sends = [
        ("a", Some("5")),
        ("b", Some("3")),
        ("c", None),
        ("d", Some("5")),
        ("e", Some("7")),
        ("f", Some("6")),
    ];
    let topic = format!("{id}-fenced");
    common::block_on(async {
        for (value, epoch) in sends {
            let mut record = FutureRecord::<(), _>::to(&topic).payload(value);
            if let Some(epoch) = epoch {
                record = record.headers(OwnedHeaders::new().insert(Header {
                    key: "faust-rs-epoch",
                    value: Some(epoch),
                }));
            }
            producer
                .send(record, Duration::from_secs(10))
                .await
                .unwrap();
        }
    });
    let consumer = common::reader(&out);
    let mut processed = Vec::new();
    let start = Instant::now();
    while processed.len() < 4 && start.elapsed() < Duration::from_secs(30) {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            processed.push(String::from_utf8_lossy(message.payload().unwrap()).into_owned());
        }
    }
    assert_eq!(processed, ["a", "c", "d", "e"]);
    wait_until(
        Duration::from_secs(10),
        "both stale records counted",
        || worker.get_json("/stats")["agents"]["fenced"]["events_stale"] == 2,
    );
}

/// `on_elected`, `[[tasks]] on_leader = true` and `on_revoked` run each time a term begins and
/// ends (Faust runs leader tasks only at start); `leader --watch` streams each new leader.
#[test]
fn term_hooks_run_on_every_term_and_watch_follows_leaders() {
    let scratch = Scratch::new("hooks");
    let id = common::unique_name("hooks");
    let out = format!("{id}-events");
    let app = scratch.app(
        "hooks.toml",
        &format!(
            r#"
[app]
id = "{id}"
broker = "@BROKER@"
session_timeout = 3.0
election_session_timeout = 3.0
heartbeat_interval = 0.5
value_serializer = "raw"

[[topics]]
name = "{out}"
partitions = 1
value_serializer = "raw"

[[elections]]
name = "leader"
on_elected = '''send("{out}", "elected " + worker_id() + " " + leader_epoch());'''
on_revoked = '''send("{out}", "revoked " + worker_id());'''

[[tasks]]
name = "warm_up"
on_leader = true
body = '''send("{out}", "task " + worker_id());'''
"#
        ),
    );
    let mut workers = vec![
        Worker::start(&scratch, &app, &[]),
        Worker::start(&scratch, &app, &[]),
    ];
    for worker in &mut workers {
        worker.wait_ready(READY);
    }
    let mut watch = common::Reaped(
        std::process::Command::new(common::binary())
            .arg("-A")
            .arg(&app)
            .args(["leader", "--watch"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let watched = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let reader = {
        let watched = watched.clone();
        let stdout = watch.0.stdout.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                watched.lock().unwrap().push(line);
            }
        })
    };
    let first = wait_for_new_leader(&workers, &[0, 1], "leader", None, READY);
    let first_id = worker_id(&workers[first]);
    // `leader --watch` printed the first leader, its resignation, then the second leader.
    let at = |lines: &[String], prefix: &str| lines.iter().position(|l| l.starts_with(prefix));
    let first_line = format!("leader: {} ", first_id);
    let resigned_line = format!("leader: no leader ({} resigned", first_id);
    wait_until(
        Duration::from_secs(10),
        "--watch prints the first leader",
        || at(&watched.lock().unwrap(), &first_line).is_some(),
    );
    // Let the first term's hooks finish before ending it (a hook cut short by the end of its
    // term sends nothing: its records would carry a term that is over).
    let consumer = common::reader(&out);
    let mut seen: Vec<String> = Vec::new();
    let mut wait_for_records = |expected: &[String]| {
        let start = Instant::now();
        while !expected
            .iter()
            .all(|e| seen.iter().any(|s| s.starts_with(e.as_str())))
        {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "hook records so far: {seen:?}"
            );
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
                seen.push(String::from_utf8_lossy(message.payload().unwrap()).into_owned());
            }
        }
        seen.clone()
    };
    wait_for_records(&[format!("elected {first_id} "), format!("task {first_id}")]);
    workers[first].signal("USR2");
    let second = wait_for_new_leader(
        &workers,
        &[0, 1],
        "leader",
        Some(first),
        Duration::from_secs(20),
    );
    let ids: Vec<String> = workers.iter().map(worker_id).collect();

    let seen = wait_for_records(&[
        format!("revoked {}", ids[first]),
        format!("elected {} ", ids[second]),
        format!("task {}", ids[second]),
    ]);
    // The second term's hook sees the second term's epoch.
    let second_epoch = epoch_seen_by(&workers[second], "leader").unwrap();
    assert!(
        seen.contains(&format!("elected {} {second_epoch}", ids[second])),
        "{seen:?}"
    );

    // `leader --watch` printed the first leader, its resignation, then the second leader.
    let second_line = format!("leader: {} ", ids[second]);
    wait_until(
        Duration::from_secs(10),
        "--watch prints the second leader",
        || at(&watched.lock().unwrap(), &second_line).is_some(),
    );
    drop(watch);
    let _ = reader.join();
    let lines = watched.lock().unwrap().clone();
    let order: Vec<Option<usize>> = [&first_line, &resigned_line, &second_line]
        .iter()
        .map(|p| at(&lines, p))
        .collect();
    assert!(
        matches!(order[..], [Some(a), Some(b), Some(c)] if a < b && b < c),
        "--watch output out of order or incomplete: {lines:#?}"
    );
}

/// A follower that shuts down cleanly leaves the election group at once. (A cooperative member
/// holding no partition sends no LeaveGroup on close unless told to unsubscribe: the group then
/// waited a whole session timeout for it, and a leader leaving meanwhile had no successor.)
#[test]
fn a_follower_shutting_down_leaves_the_election_at_once() {
    let scratch = Scratch::new("follower-leaves");
    let id = common::unique_name("follower-leaves");
    // A long election session timeout makes a member that does not leave explicitly obvious.
    let app = scratch.app(
        "app.toml",
        &format!("[app]\nid = \"{id}\"\nbroker = \"@BROKER@\"\nelection_session_timeout = 30.0\n"),
    );
    let mut workers: Vec<Worker> = (0..3).map(|_| Worker::start(&scratch, &app, &[])).collect();
    for worker in &mut workers {
        worker.wait_ready(READY);
    }
    let leader = wait_for_new_leader(&workers, &[0, 1, 2], "leader", None, READY);
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    workers[followers[0]].signal("TERM");
    assert_eq!(
        workers[followers[0]]
            .wait_exit(Duration::from_secs(30))
            .code(),
        Some(0)
    );
    workers[leader].signal("TERM");
    assert_eq!(
        workers[leader].wait_exit(Duration::from_secs(30)).code(),
        Some(0)
    );
    // Well under the 30 s session timeout the group would otherwise wait out.
    wait_until(
        Duration::from_secs(15),
        "the last follower takes over",
        || leads(&workers[followers[1]], "leader"),
    );
}

/// A leader timer slower than the session timeout keeps one term across its ticks: the term
/// is confirmed in between, not only at ticks (which would look like a stall at every tick).
#[test]
fn a_slow_leader_timer_keeps_its_term() {
    let scratch = Scratch::new("slow-timer");
    let id = common::unique_name("slow-timer");
    let app = scratch.app(
        "app.toml",
        &format!(
            r#"
[app]
id = "{id}"
broker = "@BROKER@"
session_timeout = 2.0
election_session_timeout = 2.0
heartbeat_interval = 0.5

[[timers]]
name = "slow"
interval = 2.5
on_leader = true
body = '''log_info("slow tick");'''
"#
        ),
    );
    let mut worker = Worker::start(&scratch, &app, &[]);
    worker.wait_ready(READY);
    let workers = [worker];
    let leader = wait_for_new_leader(&workers, &[0], "leader", None, READY);
    let epoch = epoch_seen_by(&workers[leader], "leader");
    let runs = |w: &Worker| {
        w.get_json("/stats")["timers"]["slow"]["runs"]
            .as_u64()
            .unwrap()
    };
    // Counted from when it leads: a tick due before the first election (slow on a fresh
    // broker) is rightly skipped.
    let skipped = |w: &Worker| w.get_json("/stats")["timers"]["slow"]["skipped_not_leader"].clone();
    let (runs_before, skipped_before) = (runs(&workers[0]), skipped(&workers[0]));
    wait_until(Duration::from_secs(20), "three more slow ticks", || {
        runs(&workers[0]) >= runs_before + 3
    });
    assert_eq!(
        epoch_seen_by(&workers[0], "leader"),
        epoch,
        "the term changed between ticks"
    );
    assert_eq!(
        skipped(&workers[0]),
        skipped_before,
        "a tick was skipped while leading"
    );
    assert!(
        !workers[0].log_text().contains("lost its term"),
        "{}",
        workers[0].log_text()
    );
}

/// Agents' bodies that keep every thread of the evaluation pool busy for longer than the
/// session timeout do not cost the leader its term: its timer keeps ticking and the term is
/// confirmed in between, because bodies never run on the threads that do that.
#[test]
fn the_leader_keeps_its_term_while_bodies_saturate_the_pool() {
    let scratch = Scratch::new("saturated");
    let id = common::unique_name("saturated");
    const RECORDS: u64 = 8;
    let app = scratch.app(
        "app.toml",
        &format!(
            r#"
[app]
id = "{id}"
broker = "@BROKER@"
session_timeout = 2.0
election_session_timeout = 2.0
heartbeat_interval = 0.5
topic_partitions = 4

[app.limits]
max_operations = 0

[[agents]]
name = "burn"
concurrency = 4
body = '''
let deadline = now() + 3.0;
while now() < deadline {{ }}
'''

[[timers]]
name = "tick"
interval = 0.5
on_leader = true
body = '''log_info("tick");'''
"#
        ),
    );
    let mut worker = Worker::start(&scratch, &app, &["--eval-threads", "2"]);
    worker.wait_ready(READY);
    let workers = [worker];
    wait_for_new_leader(&workers, &[0], "leader", None, READY);
    let epoch = epoch_seen_by(&workers[0], "leader");
    let stat = |path: &[&str]| {
        let mut value = workers[0].get_json("/stats");
        for key in path {
            value = value[*key].take();
        }
        value.as_u64().unwrap()
    };
    let producer = common::producer();
    let topic = format!("{id}-burn");
    common::block_on(async {
        for n in 0..RECORDS {
            let key = n.to_string();
            let record = rdkafka::producer::FutureRecord::to(&topic)
                .key(&key)
                .payload("1");
            producer
                .send(record, Duration::from_secs(10))
                .await
                .unwrap();
        }
    });
    // Each record burns 3 s of a pool thread: two threads are busy for about 12 s.
    wait_until(Duration::from_secs(20), "the pool is saturated", || {
        stat(&["agents", "burn", "events_in"]) >= 2
    });
    let ticks_before = stat(&["timers", "tick", "runs"]);
    wait_until(Duration::from_secs(90), "every record burnt", || {
        stat(&["agents", "burn", "events_in"]) >= RECORDS
    });
    let ticks = stat(&["timers", "tick", "runs"]) - ticks_before;
    let log = workers[0].log_text();
    assert!(
        ticks >= 3,
        "the leader ticked {ticks} times meanwhile\n{log}"
    );
    assert_eq!(
        epoch_seen_by(&workers[0], "leader"),
        epoch,
        "the term changed\n{log}"
    );
    assert_eq!(log.matches("this worker leads").count(), 1, "{log}");
    assert!(!log.contains("lost its term"), "{log}");
}

/// A leader killed with KILL is removed from the election group by the other candidates as
/// soon as its web port refuses connections, well before its session times out (30 s here);
/// a leader paused for less than the session timeout keeps its term (a stopped process keeps
/// its sockets open: nothing is concluded from it).
#[test]
fn a_dead_leader_is_removed_at_once_and_a_paused_one_is_not() {
    let scratch = Scratch::new("evict-dead");
    let id = common::unique_name("evict-dead");
    let app = scratch.app(
        "app.toml",
        &format!("[app]\nid = \"{id}\"\nbroker = \"@BROKER@\"\nelection_session_timeout = 30.0\n"),
    );
    let web_host = ["--web-host", "127.0.0.1"];
    let mut workers: Vec<Worker> = (0..2)
        .map(|_| Worker::start(&scratch, &app, &web_host))
        .collect();
    for worker in &mut workers {
        worker.wait_ready(READY);
    }
    let leader = wait_for_new_leader(&workers, &[0, 1], "leader", None, READY);
    let follower = 1 - leader;
    let epoch = epoch_seen_by(&workers[follower], "leader").unwrap();

    workers[leader].signal("STOP");
    // The follower holds its watch on the stopped leader for a while; nothing changes.
    let paused = Instant::now();
    while paused.elapsed() < Duration::from_secs(3) {
        assert_eq!(epoch_seen_by(&workers[follower], "leader"), Some(epoch));
        std::thread::sleep(Duration::from_millis(100));
    }
    workers[leader].signal("CONT");
    wait_until(
        Duration::from_secs(10),
        "the resumed leader answers",
        || workers[leader].get("/leader").is_some(),
    );
    assert!(
        leads(&workers[leader], "leader"),
        "the paused leader lost its term"
    );
    assert_eq!(epoch_seen_by(&workers[follower], "leader"), Some(epoch));
    assert!(!workers[follower].log_text().contains("is gone"));

    workers[leader].signal("KILL");
    workers[leader].wait_exit(Duration::from_secs(5));
    // Much less than the 30 s session timeout the group would otherwise wait out.
    wait_until(Duration::from_secs(15), "the follower takes over", || {
        leads(&workers[follower], "leader")
    });
    let log = workers[follower].log_text();
    assert!(
        log.contains("refuses connections; removing it from the group")
            && log.contains("removed the dead leader's member"),
        "{log}"
    );
}

/// A TCP forwarder from `listen` to `target`: stands in for a leader's web port that stops
/// answering while the leader lives. Dropping it closes its port and every connection.
struct Forwarder {
    stop: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
    accepted: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Forwarder {
    fn start(listen: &str, target: &str) -> Forwarder {
        let listener = TcpListener::bind(listen).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(Vec::<TcpStream>::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let target = target.to_string();
        let (stopping, open, count) = (stop.clone(), connections.clone(), accepted.clone());
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    // Non-blocking accept: nothing pending.
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server.try_clone().unwrap(), client.try_clone().unwrap()),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
                open.lock().unwrap().extend([client, server]);
                count.fetch_add(1, Ordering::SeqCst);
            }
        });
        Forwarder {
            stop,
            connections,
            accepted,
            thread: Some(thread),
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        for connection in self.connections.lock().unwrap().drain(..) {
            let _ = connection.shutdown(Shutdown::Both);
        }
    }
}

/// The failure detector wrong on purpose: the other candidate watches the leader through a
/// forwarder (the leader announces `--web-host 127.0.0.3`, where the forwarder listens), and the
/// forwarder is closed while the leader lives. The candidate takes the leader for dead and
/// removes it from the group. That costs the leader its term, never a second leader: one worker
/// per epoch, epochs only growing, and a newer term after the removal.
#[test]
fn a_wrongly_removed_leader_loses_its_term_and_nothing_else() {
    let scratch = Scratch::new("evict-wrong");
    let id = common::unique_name("evict-wrong");
    let out = format!("{id}-ticks");
    let app = ticking_app(&scratch, &id, &out);
    let mut leader = Worker::start(&scratch, &app, &["--web-host", "127.0.0.3"]);
    let forwarder = Forwarder::start(
        &format!("127.0.0.3:{}", leader.port),
        &format!("127.0.0.1:{}", leader.port),
    );
    leader.wait_ready(READY);
    // Its own view says so at once; `/leader` names the epoch once its reader has read the
    // announcement back from the topic.
    wait_until(
        READY,
        "the first worker leads, its announcement read",
        || leads(&leader, "leader") && epoch_seen_by(&leader, "leader").is_some(),
    );
    wait_for_ticks(&leader, "stamp");
    let epoch = epoch_seen_by(&leader, "leader").unwrap();

    let mut watcher = Worker::start(&scratch, &app, &["--web-host", "127.0.0.1"]);
    watcher.wait_ready(READY);
    wait_until(
        READY,
        "the watcher holds /alive open through the forwarder",
        || forwarder.accepted.load(Ordering::SeqCst) >= 1,
    );
    let since = now_ms();
    drop(forwarder);
    wait_until(Duration::from_secs(20), "a newer term", || {
        [&leader, &watcher]
            .iter()
            .any(|w| leads(w, "leader") && epoch_seen_by(w, "leader") > Some(epoch))
    });
    let log = watcher.log_text();
    assert!(
        log.contains("127.0.0.3") && log.contains("removing it from the group"),
        "{log}"
    );
    assert!(
        leader
            .log_text()
            .contains(&format!("lost its term (epoch {epoch})"))
    );

    let newest = epoch_seen_by(&watcher, "leader").unwrap();
    let ticks = read_ticks(&out, |ticks| {
        ticks
            .iter()
            .filter(|t| t.epoch >= newest && t.timestamp_ms > since)
            .count()
            >= 3
    });
    assert_one_leader_per_term(&ticks);
}

/// A leader announced at an address where it never answered (here nothing listens on
/// 127.0.0.2) is not taken for dead: a refusal from there says nothing about the leader (a
/// misconfigured `--web-host`, a firewall). The other candidate says it cannot watch it, and
/// the leader keeps its term.
#[test]
fn a_leader_never_seen_at_its_address_is_not_removed() {
    let scratch = Scratch::new("evict-unseen");
    let id = common::unique_name("evict-unseen");
    let app = ticking_app(&scratch, &id, &format!("{id}-ticks"));
    let mut leader = Worker::start(&scratch, &app, &["--web-host", "127.0.0.2"]);
    leader.wait_ready(READY);
    // Its own view says so at once; `/leader` names the epoch once its reader has read the
    // announcement back from the topic.
    wait_until(
        READY,
        "the first worker leads, its announcement read",
        || leads(&leader, "leader") && epoch_seen_by(&leader, "leader").is_some(),
    );
    let epoch = epoch_seen_by(&leader, "leader").unwrap();

    let mut other = Worker::start(&scratch, &app, &["--web-host", "127.0.0.1"]);
    other.wait_ready(READY);
    wait_until(
        Duration::from_secs(20),
        "the other says it cannot watch",
        || {
            other
                .log_text()
                .contains("cannot watch the leader's process")
        },
    );
    wait_for_ticks(&leader, "stamp");
    assert!(leads(&leader, "leader"));
    assert_eq!(epoch_seen_by(&other, "leader"), Some(epoch));
    assert!(!other.log_text().contains("removing it from the group"));
}

/// `/metrics` of `worker` as `name{labels}` -> value.
fn metrics(worker: &Worker) -> BTreeMap<String, f64> {
    let (status, text) = worker.get("/metrics").expect("/metrics answers");
    assert_eq!(status, 200, "{text}");
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn metric(worker: &Worker, series: &str) -> f64 {
    metrics(worker).get(series).copied().unwrap_or(f64::NAN)
}

/// The election's gauges name exactly one leader and agree on its epoch; a leader change is
/// counted once by the worker that takes over; the histograms fill as the workers work.
#[test]
fn metrics_name_one_leader_and_count_its_changes() {
    let scratch = Scratch::new("metrics");
    let id = common::unique_name("metrics");
    let app = scratch.app(
        "app.toml",
        &format!(
            r#"
[app]
id = "{id}"
broker = "@BROKER@"
topic_partitions = 2
commit_interval = 0.5

[[agents]]
name = "greet"
body = '''value'''

[[timers]]
name = "hello"
interval = 0.2
on_leader = true
body = '''greet.send(worker_id());'''
"#
        ),
    );
    let mut workers: Vec<Worker> = (0..2).map(|_| Worker::start(&scratch, &app, &[])).collect();
    for worker in &mut workers {
        worker.wait_ready(READY);
    }
    let leader = wait_for_new_leader(&workers, &[0, 1], "leader", None, READY);
    let follower = 1 - leader;
    let is_leader = r#"faust_rs_is_leader{election="leader"}"#;
    let epoch = r#"faust_rs_leader_epoch{election="leader"}"#;
    assert_eq!(metric(&workers[leader], is_leader), 1.0);
    assert_eq!(metric(&workers[follower], is_leader), 0.0);
    for worker in &workers {
        assert_eq!(
            metric(worker, r#"faust_rs_election_candidate{election="leader"}"#),
            1.0
        );
    }
    wait_until(Duration::from_secs(10), "both see the same epoch", || {
        metric(&workers[leader], epoch) == metric(&workers[follower], epoch)
    });

    let events = r#"faust_rs_event_duration_seconds_count{agent="greet"}"#;
    wait_until(
        Duration::from_secs(20),
        "events, ticks, commits and rebalances in the histograms",
        || {
            let [a, b] = [metrics(&workers[0]), metrics(&workers[1])];
            let both = |series: &str| {
                a.get(series).copied().unwrap_or(0.0) + b.get(series).copied().unwrap_or(0.0)
            };
            both(events) >= 3.0
                && metric(
                    &workers[leader],
                    r#"faust_rs_timer_lateness_seconds_count{timer="hello"}"#,
                ) >= 2.0
                && both("faust_rs_commit_duration_seconds_count") >= 1.0
                && a["faust_rs_rebalance_duration_seconds_count"] >= 1.0
                && b["faust_rs_rebalance_duration_seconds_count"] >= 1.0
        },
    );
    // Each histogram's +Inf bucket holds every observation.
    let seen = metrics(&workers[leader]);
    assert_eq!(
        seen[r#"faust_rs_timer_lateness_seconds_bucket{timer="hello",le="+Inf"}"#],
        seen[r#"faust_rs_timer_lateness_seconds_count{timer="hello"}"#]
    );

    let changes = r#"faust_rs_leader_changes_total{election="leader"}"#;
    let changes_before = metric(&workers[follower], changes);
    let epoch_before = metric(&workers[follower], epoch);
    workers[leader].signal("TERM");
    assert_eq!(
        workers[leader].wait_exit(Duration::from_secs(30)).code(),
        Some(0)
    );
    wait_until(Duration::from_secs(20), "the follower leads", || {
        metric(&workers[follower], is_leader) == 1.0
    });
    assert!(metric(&workers[follower], epoch) > epoch_before);
    // Its own term, counted once (seen begun by itself and read back from the topic).
    wait_until(Duration::from_secs(5), "its announcement read back", || {
        epoch_seen_by(&workers[follower], "leader")
            == Some(metric(&workers[follower], epoch) as i64)
    });
    assert_eq!(metric(&workers[follower], changes), changes_before + 1.0);
}
