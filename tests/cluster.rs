//! The election on the 3-node cluster of `scripts/kafka.sh cluster` (replication factor 3,
//! `min.insync.replicas=2`), which `scripts/test.sh` starts and names in
//! `FAUST_RS_TEST_CLUSTER`: when the broker leading the election topic's partition is killed
//! (`kill -9`), the leader ticks again once the partition has a new leader, and never two
//! workers in one term. The lighter, CI-sized sibling of `bench/broker-faults.sh`, which
//! measures the gaps; this test bounds the recovery generously and proves it happens.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Scratch, Worker, wait_until};

const READY: Duration = Duration::from_secs(60);
/// Kafka's broker session timeout (9 s) until the partition moves, plus a loaded machine's
/// margin: a bound on the recovery, not the goal (the benchmark measures that).
const RECOVERED_WITHIN: Duration = Duration::from_secs(45);

fn cluster() -> String {
    std::env::var("FAUST_RS_TEST_CLUSTER").unwrap_or_else(|_| {
        panic!(
            "FAUST_RS_TEST_CLUSTER is not set: run the tests with scripts/test.sh, which starts \
             the 3-node cluster (scripts/kafka.sh cluster start) and names it there"
        )
    })
}

/// `scripts/kafka.sh cluster ARGS`; its standard output, trimmed.
fn kafka_cluster(args: &[&str]) -> String {
    let output = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka.sh"))
        .arg("cluster")
        .args(args)
        .output()
        .expect("run scripts/kafka.sh");
    assert!(
        output.status.success(),
        "scripts/kafka.sh cluster {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Brings a killed node back when dropped, so a failed test leaves the cluster whole.
struct Killed(String);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka.sh"))
            .args(["cluster", "start-node", &self.0])
            .output();
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `(time in ms, epoch, worker)` of every `TICK` line the workers printed.
fn ticks(workers: &[Worker]) -> Vec<(i64, i64, String)> {
    let mut all: Vec<(i64, i64, String)> = workers
        .iter()
        .flat_map(|w| {
            w.stdout_text()
                .lines()
                .filter_map(|line| {
                    let mut fields = line.strip_prefix("TICK ")?.split(' ');
                    let ms = fields.next()?.parse().ok()?;
                    let epoch = fields.next()?.parse().ok()?;
                    Some((ms, epoch, fields.next()?.to_string()))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    all.sort();
    all
}

#[test]
fn the_leader_ticks_again_after_the_election_partitions_broker_dies() {
    let bootstrap = cluster();
    let scratch = Scratch::new("cluster");
    let id = common::unique_name("cluster");
    let app = scratch.path("app.toml");
    std::fs::write(
        &app,
        format!(
            "[app]\nid = \"{id}\"\nbroker = \"kafka://{bootstrap}\"\n\
             value_serializer = \"raw\"\ntopic_replication_factor = 3\n\n\
             [[agents]]\nname = \"say\"\nbody = 'print(\"GOT \" + value)'\n\n\
             [[timers]]\nname = \"tick\"\ninterval = 0.2\non_leader = true\n\
             body = '''\nprint(\"TICK \" + now_ms() + \" \" + leader_epoch() + \" \" + \
             worker_id());\nsay.send(worker_id());\n'''\n"
        ),
    )
    .unwrap();
    let mut workers = vec![
        Worker::start(&scratch, &app, &[]),
        Worker::start(&scratch, &app, &[]),
    ];
    for worker in &mut workers {
        worker.wait_ready(READY);
    }
    wait_until(READY, "a leader ticking", || !ticks(&workers).is_empty());

    let topic = format!("{id}-__assignor-__leader");
    let node = kafka_cluster(&["leader-of", &topic, "0"]);
    let killed_at = now_ms();
    kafka_cluster(&["kill", &node]);
    let _back = Killed(node.clone());
    // A tick well after the kill: the leader's confirmation fails at once without the
    // partition's leader, so ticks stop until it has a new one.
    let started = Instant::now();
    wait_until(
        RECOVERED_WITHIN,
        &format!("a leader tick after node {node} was killed"),
        || {
            ticks(&workers)
                .iter()
                .any(|(ms, _, _)| *ms > killed_at + 2_000)
        },
    );
    eprintln!(
        "a leader ticked again {:.1} s after node {node} was killed",
        started.elapsed().as_secs_f64()
    );
    let mut owners: BTreeMap<i64, &str> = BTreeMap::new();
    let mut newest = i64::MIN;
    let all = ticks(&workers);
    for (ms, epoch, worker) in &all {
        let owner = owners.entry(*epoch).or_insert(worker.as_str());
        assert_eq!(
            *owner, worker,
            "two workers ticked in epoch {epoch} (at {ms})"
        );
        assert!(
            *epoch >= newest,
            "epoch {epoch} ticked after {newest} (at {ms})"
        );
        newest = newest.max(*epoch);
    }
    for worker in &mut workers {
        worker.signal("TERM");
        assert_eq!(worker.wait_exit(Duration::from_secs(40)).code(), Some(0));
    }
}
