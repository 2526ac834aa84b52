//! What a running worker knows about itself, shared between its tasks and read by the web
//! server and the USR1 dump. Counters are atomics so the hot path never takes a lock; the
//! assignment and lag maps change only on rebalances and lag ticks.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;
use serde_json::json;

use crate::election::Election;
use crate::worker::timing::Seconds;

/// How long a worker assigned nothing waits for a second cooperative round before it calls
/// itself ready.
pub const READY_SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// Counters of one agent.
#[derive(Debug, Default)]
pub struct AgentCounters {
    /// Events taken from the agent's topic and handed to its body.
    pub events_in: AtomicU64,
    /// Records the body sent (to sinks, agents or topics), once acknowledged.
    pub events_out: AtomicU64,
    /// Events whose processing failed (bad payload, script error, over a limit).
    pub events_failed: AtomicU64,
    /// Failed events written to the dead-letter topic.
    pub dead_lettered: AtomicU64,
    /// Events skipped as sent by a stale leader (`drop_stale_epochs`).
    pub events_stale: AtomicU64,
    /// The newest leader epoch seen in this agent's events (epochs start at 0).
    pub newest_epoch: std::sync::atomic::AtomicI64,
    /// The event being processed, for the USR1 dump: busy flag, partition, offset, start
    /// (ms since the Unix epoch). With concurrency > 1, the latest one started.
    pub busy: AtomicBool,
    pub busy_partition: std::sync::atomic::AtomicI32,
    pub busy_offset: std::sync::atomic::AtomicI64,
    pub busy_since_ms: std::sync::atomic::AtomicI64,
    /// From an event's hand-off to the body until every record it sent is acknowledged.
    pub event_duration: Seconds,
}

impl AgentCounters {
    /// Marks the start of an event's processing (three relaxed stores: cheap on the hot path).
    pub fn start(&self, partition: i32, offset: i64) {
        self.busy_partition.store(partition, Ordering::Relaxed);
        self.busy_offset.store(offset, Ordering::Relaxed);
        self.busy_since_ms
            .store(crate::clock::now_ms(), Ordering::Relaxed);
        self.busy.store(true, Ordering::Relaxed);
    }

    pub fn done(&self) {
        self.busy.store(false, Ordering::Relaxed);
    }
}

/// Counters of one timer.
#[derive(Debug, Default)]
pub struct TimerCounters {
    pub runs: AtomicU64,
    pub failures: AtomicU64,
    /// Ticks skipped because this worker did not lead (`on_leader` timers).
    pub skipped_not_leader: AtomicU64,
    /// For the USR1 dump: the body is running now; when it last started and when it runs
    /// next (ms since the Unix epoch, 0 for unknown).
    pub running: AtomicBool,
    pub last_run_ms: std::sync::atomic::AtomicI64,
    pub next_run_ms: std::sync::atomic::AtomicI64,
    /// How long after its scheduled time each run's body started.
    pub lateness: Seconds,
}

/// What the agents' loop is waiting on, as of its last turn: for the USR1 dump of a worker
/// that seems stuck.
#[derive(Debug, Default)]
pub struct LoopGauges {
    pub jobs_running: AtomicU64,
    pub events_awaiting_acks: AtomicU64,
    /// Exactly-once only: a transaction is open, being settled, due to be committed or to be
    /// aborted, and how many revocations wait for it.
    pub transaction_open: AtomicBool,
    pub transaction_settling: AtomicBool,
    pub commit_due: AtomicBool,
    pub abort_due: AtomicBool,
    pub revocations_waiting: AtomicU64,
}

/// Shared state of one worker process.
#[derive(Debug)]
pub struct WorkerState {
    pub app_id: String,
    pub worker_id: String,
    pub web_url: String,
    pub started: Instant,
    /// Joined the agents' group and received an assignment (see [`WorkerState::is_ready`]).
    pub ready: AtomicBool,
    /// When the last assignment arrived.
    pub last_assignment: Mutex<Option<Instant>>,
    pub rebalances: AtomicU64,
    pub commits: AtomicU64,
    /// Agents' transactions aborted (exactly-once): their events are processed again.
    pub transactions_aborted: AtomicU64,
    /// The app's tables, once opened (for the web server and the dump).
    pub tables: std::sync::OnceLock<std::sync::Arc<crate::worker::table_routes::TableService>>,
    pub agents_loop: LoopGauges,
    /// From an offset commit's request to the broker's answer.
    pub commit_duration: Seconds,
    /// From the start of a join or of a revocation to the assignment that ends it.
    pub rebalance_duration: Seconds,
    pub agents: BTreeMap<String, AgentCounters>,
    pub timers: BTreeMap<String, TimerCounters>,
    /// topic -> partitions currently assigned to this worker.
    pub assignment: Mutex<BTreeMap<String, Vec<i32>>>,
    /// "topic[partition]" -> records between the committed offset and the end (see
    /// `agents::lag`).
    pub lag: Mutex<BTreeMap<String, i64>>,
    /// Every election of the app, as this worker takes part in it.
    pub elections: Vec<std::sync::Arc<Election>>,
}

impl WorkerState {
    pub fn new(
        app_id: &str,
        worker_id: &str,
        web_url: &str,
        agents: impl IntoIterator<Item = String>,
        timers: impl IntoIterator<Item = String>,
        elections: Vec<std::sync::Arc<Election>>,
    ) -> Self {
        WorkerState {
            app_id: app_id.to_string(),
            worker_id: worker_id.to_string(),
            web_url: web_url.to_string(),
            started: Instant::now(),
            ready: AtomicBool::new(false),
            last_assignment: Mutex::new(None),
            rebalances: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            tables: std::sync::OnceLock::new(),
            transactions_aborted: AtomicU64::new(0),
            agents_loop: LoopGauges::default(),
            commit_duration: Seconds::default(),
            rebalance_duration: Seconds::default(),
            agents: agents
                .into_iter()
                .map(|name| (name, AgentCounters::default()))
                .collect(),
            timers: timers
                .into_iter()
                .map(|name| (name, TimerCounters::default()))
                .collect(),
            assignment: Mutex::new(BTreeMap::new()),
            lag: Mutex::new(BTreeMap::new()),
            elections,
        }
    }

    /// Who leads each election, as this worker knows it (`GET /leader`, the USR1 dump).
    pub fn leadership(&self) -> serde_json::Value {
        let elections: serde_json::Map<String, serde_json::Value> = self
            .elections
            .iter()
            .map(|e| {
                // After a resignation nobody leads until the next announcement.
                let latest = e.latest();
                let leader = latest.as_ref().filter(|a| !a.resigned).map(|a| a.view());
                let resigned = latest.as_ref().filter(|a| a.resigned).map(|a| a.view());
                let view = json!({
                    "leader": leader,
                    "resigned": resigned,
                    "this_worker_leads": e.is_leading(),
                    "candidate": e.candidate,
                    "epoch": e.current_epoch(),
                });
                (e.name.clone(), view)
            })
            .collect();
        json!({ "worker": self.worker_id, "elections": elections })
    }

    /// `/ready`: joined the group and holding partitions — or holding none for
    /// [`READY_SETTLE`] after the last assignment. With cooperative rebalancing a joining
    /// worker is first assigned nothing while others give partitions up, and gets its share a
    /// moment later; a worker that stays empty (more workers than partitions) is ready too.
    pub fn is_ready(&self) -> bool {
        if !self.ready.load(Ordering::Relaxed) {
            return false;
        }
        let holds_partitions = self
            .assignment
            .lock()
            .unwrap()
            .values()
            .any(|p| !p.is_empty());
        holds_partitions
            || self
                .last_assignment
                .lock()
                .unwrap()
                .is_none_or(|at| at.elapsed() >= READY_SETTLE)
    }

    /// Records partitions assigned in a rebalance: the worker is ready from now on.
    pub fn assigned(&self, partitions: &[crate::kafka::TopicPartition]) {
        let mut assignment = self.assignment.lock().unwrap();
        for tp in partitions {
            let owned = assignment.entry(tp.topic.clone()).or_default();
            if !owned.contains(&tp.partition) {
                owned.push(tp.partition);
                owned.sort_unstable();
            }
        }
        drop(assignment);
        self.rebalances.fetch_add(1, Ordering::Relaxed);
        *self.last_assignment.lock().unwrap() = Some(Instant::now());
        self.ready.store(true, Ordering::Relaxed);
    }

    /// Forgets partitions revoked in a rebalance.
    pub fn forget(&self, partitions: &[crate::kafka::TopicPartition]) {
        let mut assignment = self.assignment.lock().unwrap();
        for tp in partitions {
            if let Some(owned) = assignment.get_mut(&tp.topic) {
                owned.retain(|p| *p != tp.partition);
            }
        }
        assignment.retain(|_, owned| !owned.is_empty());
    }

    pub fn agent(&self, name: &str) -> &AgentCounters {
        &self.agents[name]
    }

    pub fn timer(&self, name: &str) -> &TimerCounters {
        &self.timers[name]
    }

    /// A consistent-enough copy of every counter, for `/stats` and `/metrics`.
    pub fn snapshot(&self) -> StatsSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            ready: self.is_ready(),
            rebalances: load(&self.rebalances),
            commits: load(&self.commits),
            transactions_aborted: load(&self.transactions_aborted),
            agents: self
                .agents
                .iter()
                .map(|(name, c)| {
                    let stats = AgentStats {
                        events_in: load(&c.events_in),
                        events_out: load(&c.events_out),
                        events_failed: load(&c.events_failed),
                        dead_lettered: load(&c.dead_lettered),
                        events_stale: load(&c.events_stale),
                    };
                    (name.clone(), stats)
                })
                .collect(),
            timers: self
                .timers
                .iter()
                .map(|(name, c)| {
                    let stats = TimerStats {
                        runs: load(&c.runs),
                        failures: load(&c.failures),
                        skipped_not_leader: load(&c.skipped_not_leader),
                    };
                    (name.clone(), stats)
                })
                .collect(),
            commit_lag: self.lag.lock().unwrap().clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AgentStats {
    pub events_in: u64,
    pub events_out: u64,
    pub events_failed: u64,
    pub dead_lettered: u64,
    pub events_stale: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TimerStats {
    pub runs: u64,
    pub failures: u64,
    pub skipped_not_leader: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatsSnapshot {
    pub uptime_seconds: f64,
    pub ready: bool,
    pub rebalances: u64,
    pub commits: u64,
    pub transactions_aborted: u64,
    pub agents: BTreeMap<String, AgentStats>,
    pub timers: BTreeMap<String, TimerStats>,
    pub commit_lag: BTreeMap<String, i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_assignment_is_ready_only_once_the_group_settled() {
        let state = WorkerState::new("app", "w", "http://h:1", [], [], Vec::new());
        assert!(!state.is_ready(), "not joined yet");
        state.ready.store(true, Ordering::Relaxed);
        *state.last_assignment.lock().unwrap() = Some(Instant::now());
        assert!(
            !state.is_ready(),
            "assigned nothing a moment ago: a second round may follow"
        );
        state.assignment.lock().unwrap().insert("t".into(), vec![0]);
        assert!(state.is_ready(), "holds a partition");
        state.assignment.lock().unwrap().clear();
        *state.last_assignment.lock().unwrap() = Instant::now().checked_sub(READY_SETTLE * 2);
        assert!(state.is_ready(), "stayed empty past the settle window");
    }
}
