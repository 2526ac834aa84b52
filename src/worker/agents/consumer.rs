//! The agents' consumer, polled on a thread of its own. librdkafka runs the rebalance and
//! commit callbacks on the thread that polls, and some of them must block (a revocation
//! commits synchronously before the partitions are given up), so that thread is never one of
//! the async runtime's.
//!
//! The thread copies records out of librdkafka in batches, one per partition, and hands them
//! to the agents' loop; it tells the loop of rebalances, and on a revocation asks it which
//! offsets finished, commits them and only then lets librdkafka give the partitions up.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::{mpsc, oneshot};

use crate::kafka::{TopicPartition, position_list};
use crate::kafka::{group, logs};
use crate::worker::agents::lag::CommittedOffsets;
use crate::worker::state::WorkerState;
use crate::worker::tables::TablePartitions;

/// A record copied out of librdkafka's buffers.
pub struct Consumed {
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub timestamp: Option<i64>,
}

impl Consumed {
    fn of(message: &BorrowedMessage<'_>) -> Consumed {
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        Consumed {
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            headers,
            timestamp: message.timestamp().to_millis(),
        }
    }

    /// Bytes held, for the loop's bound on what it queues.
    pub fn size(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len)
            + self.value.as_ref().map_or(0, Vec::len)
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }
}

/// Consecutive records of one partition, as polled.
pub struct Batch {
    pub tp: TopicPartition,
    /// The rebalance count when they were polled: records polled before a partition was
    /// revoked and assigned again are older than its assignment, and dropped.
    pub generation: u64,
    pub records: Vec<Consumed>,
}

/// What the consumer thread tells the agents' loop, ahead of any record.
pub enum Rebalanced {
    /// Partitions assigned in rebalance number `generation`.
    Assigned {
        partitions: Vec<TopicPartition>,
        generation: u64,
    },
    /// Partitions being revoked: reply with the positions to commit for them (none under
    /// exactly-once, whose transaction is settled first), and forget them. `lost`: the group
    /// has already given them to others (this worker was out of it), so nothing done since the
    /// last commit may be committed now.
    Revoked {
        partitions: Vec<TopicPartition>,
        lost: bool,
        commits: std_mpsc::SyncSender<Vec<(TopicPartition, i64)>>,
    },
    /// Partitions read again from an earlier position ([`Rewind`]) under rebalance number
    /// `generation`: records polled before are stale. Those the consumer no longer owned are
    /// left out.
    Rewound {
        partitions: Vec<TopicPartition>,
        generation: u64,
    },
    /// A partition still owned could not be read again from where it must be: the worker
    /// cannot go on without losing its events.
    RewindFailed(String),
    /// The tables of assigned partitions could not be recovered: the worker cannot process
    /// their events.
    TablesFailed(String),
    /// An asynchronous commit of these positions failed: commit them again later.
    CommitFailed(Vec<(TopicPartition, i64)>),
}

/// How the agents' loop ends the consumer thread's work.
pub struct Finish {
    /// Positions to commit (synchronously) before leaving.
    pub commits: Vec<(TopicPartition, i64)>,
    /// After unsubscribing, wait up to this long for the LeaveGroup to go out (dynamic classic
    /// members, see `kafka::group`; a static member sends none by design, and under KIP-848
    /// librdkafka leaves on close).
    pub wait_for_leave: Option<Duration>,
    pub done: oneshot::Sender<()>,
}

/// Rebalance and commit callbacks of the agents' consumer.
pub struct AgentsContext {
    state: Arc<WorkerState>,
    rebalanced: mpsc::UnboundedSender<Rebalanced>,
    /// Bumped on every rebalance callback, on the polling thread.
    generation: AtomicU64,
    /// Asynchronous commits awaiting their callback, for `commit_duration`.
    commits_in_flight: InFlightCommits,
    /// When the rebalance under way began (a join or a revocation), for `rebalance_duration`.
    rebalance_began: std::sync::Mutex<Option<Instant>>,
    /// Under exactly-once a revocation waits for the loop's answer without a bound.
    exactly_once: bool,
    /// What the group has committed for the held partitions, for their commit lag.
    committed: Arc<CommittedOffsets>,
    /// The tables co-partitioned with the agents' topics: recovered when partitions are
    /// assigned (before any of their records is polled), stored when they are given up.
    tables: Option<Arc<TablePartitions>>,
}

/// Read these partitions again from these positions (after an aborted transaction).
pub type Rewind = Vec<(TopicPartition, i64)>;

/// How long a revocation waits for the loop's answer under at-least-once. The loop answers at
/// once (rebalances come first in its `select!`); this only bounds a loop that is gone or
/// wedged. Under exactly-once the loop first settles its transaction, which waits for the jobs
/// running to end: the revocation waits for its answer however long that takes, as giving the
/// partitions up before could let their next owner process what the transaction then commits.
/// (Past `max.poll.interval.ms` the group removes this worker, and the broker refuses the
/// offsets of its transaction: KIP-447.)
const REVOKE_PATIENCE: Duration = Duration::from_secs(10);

impl ClientContext for AgentsContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        logs::forward_quietly(level, facility, message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        logs::forward_error(&error, reason);
    }
}

impl ConsumerContext for AgentsContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            self.rebalance_began
                .lock()
                .unwrap()
                .get_or_insert_with(Instant::now);
            self.generation.fetch_add(1, Ordering::SeqCst);
            let revoked = partitions_of(list);
            // Commit what finished here before the next owner starts from the committed
            // position. Unfinished events are processed again there.
            let (reply, answer) = std_mpsc::sync_channel(1);
            let lost = consumer.assignment_lost();
            let asked = self.rebalanced.send(Rebalanced::Revoked {
                partitions: revoked.clone(),
                lost,
                commits: reply,
            });
            let commits = match asked {
                Ok(()) if self.exactly_once => answer.recv().unwrap_or_default(),
                Ok(()) => answer.recv_timeout(REVOKE_PATIENCE).unwrap_or_default(),
                Err(_) => Vec::new(), // the loop has ended and committed already
            };
            commit(consumer, &self.state, &commits, CommitMode::Sync);
            if let Some(tables) = &self.tables {
                tables.release(&revoked);
            }
            self.committed.forget(&revoked);
            self.state.forget(&revoked);
            let lost = if lost {
                " (lost: the group went on without this worker)"
            } else {
                ""
            };
            tracing::info!("rebalance: revoked {}{lost}", describe(&revoked));
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
                let assigned = partitions_of(list);
                if let Some(began) = self.rebalance_began.lock().unwrap().take() {
                    self.state.rebalance_duration.observe(began.elapsed());
                }
                tracing::info!("rebalance: assigned {}", describe(&assigned));
                // Whatever was known of them (a late answer to a commit before they were
                // revoked) may be stale: the group's offsets are asked again.
                self.committed.forget(&assigned);
                if let Err(why) = self.recover_tables(&assigned) {
                    let _ = self.rebalanced.send(Rebalanced::TablesFailed(why));
                }
                self.state.assigned(&assigned);
                let _ = self.rebalanced.send(Rebalanced::Assigned {
                    partitions: assigned,
                    generation,
                });
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!("rebalance error: {e}"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Some(started) = self.commits_in_flight.answered(offsets) {
            self.state.commit_duration.observe(started.elapsed());
        }
        let positions: Vec<(TopicPartition, i64)> = offsets
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((TopicPartition::new(e.topic(), e.partition()), o)),
                _ => None,
            })
            .collect();
        if let Err(e) = result {
            if logs::is_rebalance_race(&e) {
                tracing::debug!("offset commit raced a rebalance (committed again after it): {e}");
            } else {
                tracing::warn!("asynchronous offset commit failed (will retry): {e}");
            }
            let _ = self.rebalanced.send(Rebalanced::CommitFailed(positions));
        } else {
            self.committed.record(&positions);
        }
    }
}

impl AgentsContext {
    /// Recovers the tables' partitions of `partitions` (blocks this thread: their records
    /// wait, as in Faust, until the tables they change are whole).
    fn recover_tables(&self, partitions: &[TopicPartition]) -> Result<(), String> {
        let Some(tables) = &self.tables else {
            return Ok(());
        };
        tables
            .recover(partitions)
            .map_err(|e| format!("cannot recover the tables of {}: {e}", describe(partitions)))
    }
}

pub type AgentsConsumer = BaseConsumer<AgentsContext>;

/// Asynchronous commits not answered yet, by the positions they commit: librdkafka's commit
/// callback names the positions, not the request.
#[derive(Default)]
struct InFlightCommits(std::sync::Mutex<HashMap<Positions, Instant>>);

/// (topic, partition, offset), sorted.
type Positions = Vec<(String, i32, i64)>;

/// Commits whose answer never came (the consumer closed first) are forgotten after this.
const IN_FLIGHT_MEMORY: Duration = Duration::from_secs(300);

impl InFlightCommits {
    fn sent(&self, positions: &TopicPartitionList, at: Instant) {
        let mut in_flight = self.0.lock().unwrap();
        in_flight.retain(|_, sent| sent.elapsed() < IN_FLIGHT_MEMORY);
        in_flight.insert(key(positions), at);
    }

    /// When the commit of `positions` was sent, if it was an asynchronous one of ours.
    fn answered(&self, positions: &TopicPartitionList) -> Option<Instant> {
        self.0.lock().unwrap().remove(&key(positions))
    }
}

fn key(positions: &TopicPartitionList) -> Positions {
    let mut key: Vec<_> = positions
        .elements()
        .iter()
        .map(|e| {
            let offset = e.offset().to_raw().unwrap_or(-1);
            (e.topic().to_string(), e.partition(), offset)
        })
        .collect();
    key.sort_unstable();
    key
}

/// Creates the agents' consumer (not yet subscribed) and the channel its rebalances come on.
pub fn create(
    config: &rdkafka::ClientConfig,
    state: Arc<WorkerState>,
    exactly_once: bool,
    tables: Option<Arc<TablePartitions>>,
    committed: Arc<CommittedOffsets>,
) -> Result<(Arc<AgentsConsumer>, mpsc::UnboundedReceiver<Rebalanced>), String> {
    let (rebalanced, rebalances) = mpsc::unbounded_channel();
    let context = AgentsContext {
        state,
        rebalanced,
        generation: AtomicU64::new(0),
        commits_in_flight: InFlightCommits::default(),
        // The first join begins with the consumer.
        rebalance_began: std::sync::Mutex::new(Some(Instant::now())),
        exactly_once,
        tables,
        committed,
    };
    let consumer: AgentsConsumer = config
        .create_with_context(context)
        .map_err(|e| format!("cannot create the agents' consumer: {e}"))?;
    Ok((Arc::new(consumer), rebalances))
}

/// Commits `commits`; `false` when it failed (logged).
pub fn commit(
    consumer: &AgentsConsumer,
    state: &WorkerState,
    commits: &[(TopicPartition, i64)],
    mode: CommitMode,
) -> bool {
    if commits.is_empty() {
        return true;
    }
    let list = position_list(commits, "the offset commit");
    let started = Instant::now();
    let committed = match mode {
        CommitMode::Sync => consumer.commit(&list, mode),
        CommitMode::Async => crate::kafka::commit::commit_async(consumer, &list),
    };
    match committed {
        Ok(()) => {
            state.commits.fetch_add(1, Ordering::Relaxed);
            match mode {
                CommitMode::Sync => {
                    state.commit_duration.observe(started.elapsed());
                    consumer.context().committed.record(commits);
                }
                CommitMode::Async => consumer.context().commits_in_flight.sent(&list, started),
            }
            true
        }
        Err(e) => {
            tracing::warn!("offset commit failed: {e}");
            false
        }
    }
}

/// Most records copied out per turn of the polling thread (one hand-off to the loop).
const MAX_POLL_BATCH: usize = 1024;
/// How long one poll waits for a record; also how soon the thread sees a [`Finish`].
const POLL_WAIT: Duration = Duration::from_millis(50);

/// Starts the polling thread. It forwards records until `records`' receiver is dropped, then
/// keeps serving callbacks until it gets the [`Finish`] and carries it out.
pub fn spawn(
    consumer: Arc<AgentsConsumer>,
    records: mpsc::Sender<Vec<Batch>>,
    rewinds: std_mpsc::Receiver<Rewind>,
    finish: std_mpsc::Receiver<Finish>,
    group_name: String,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("faust-rs-agents-consumer".into())
        .spawn(move || {
            forward(&consumer, &records, &rewinds);
            drop(records);
            let finish = serve_until_finish(&consumer, &finish);
            if let Some(finish) = finish {
                carry_out(&consumer, finish, &group_name);
            }
        })
}

/// Polls and forwards records until the loop stops taking them.
fn forward(
    consumer: &AgentsConsumer,
    records: &mpsc::Sender<Vec<Batch>>,
    rewinds: &std_mpsc::Receiver<Rewind>,
) {
    while !records.is_closed() {
        while let Ok(rewind) = rewinds.try_recv() {
            carry_out_rewind(consumer, rewind);
        }
        let Some(first) = consumer.poll(POLL_WAIT) else {
            continue;
        };
        let mut batches: Vec<Batch> = Vec::new();
        add(consumer, &mut batches, first);
        for _ in 1..MAX_POLL_BATCH {
            match consumer.poll(Duration::ZERO) {
                Some(polled) => add(consumer, &mut batches, polled),
                None => break,
            }
        }
        if !batches.is_empty() && records.blocking_send(batches).is_err() {
            return;
        }
    }
}

/// Reads partitions again from earlier positions: those of `rewind` still assigned, under a
/// new rebalance count, so that the loop drops every record polled before (librdkafka drops
/// those it fetched before the seek). Done on the polling thread: no poll comes between the
/// new count and the seek.
fn carry_out_rewind(consumer: &AgentsConsumer, rewind: Rewind) {
    let context = consumer.context();
    let owned = consumer.assignment().unwrap_or_default();
    let sought: Rewind = rewind
        .into_iter()
        .filter(|(tp, _)| owned.find_partition(&tp.topic, tp.partition).is_some())
        .collect();
    let list = position_list(&sought, "the rewind");
    let partitions = partitions_of(&list);
    if partitions.is_empty() {
        return;
    }
    // The tables' partitions an aborted transaction changed were let go: read them again
    // before the records that change them.
    if let Err(why) = context.recover_tables(&partitions) {
        let _ = context.rebalanced.send(Rebalanced::TablesFailed(why));
        return;
    }
    let generation = context.generation.fetch_add(1, Ordering::SeqCst) + 1;
    let failed = match consumer.seek_partitions(list, SEEK_TIMEOUT) {
        Ok(sought) => sought.elements().iter().find_map(|e| {
            e.error()
                .err()
                .map(|error| format!("{}[{}]: {error}", e.topic(), e.partition()))
        }),
        Err(e) => Some(e.to_string()),
    };
    let report = match failed {
        Some(why) => Rebalanced::RewindFailed(format!(
            "cannot read partitions again after an aborted transaction: {why}"
        )),
        None => {
            tracing::info!(
                "read again from the last commit: {}",
                describe_positions(&sought)
            );
            Rebalanced::Rewound {
                partitions,
                generation,
            }
        }
    };
    let _ = context.rebalanced.send(report);
}

/// Bounds a seek of a rewind.
const SEEK_TIMEOUT: Duration = Duration::from_secs(10);

fn describe_positions(positions: &[(TopicPartition, i64)]) -> String {
    positions
        .iter()
        .map(|(tp, position)| format!("{tp} at {position}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Adds a polled record to the batch of its partition, stamped with the rebalance count as of
/// its poll: a rebalance callback may run inside any poll, so a revocation and a new
/// assignment of the same partition can fall between two records of one turn.
fn add(
    consumer: &AgentsConsumer,
    batches: &mut Vec<Batch>,
    polled: KafkaResult<BorrowedMessage<'_>>,
) {
    let message = match polled {
        Ok(message) => message,
        // A broker that went away is already in the log, from librdkafka itself.
        Err(e) if logs::repeats_a_log_line(&e) => return tracing::debug!("agents' consumer: {e}"),
        Err(e) => return tracing::warn!("agents' consumer: {e}"),
    };
    let generation = consumer.context().generation.load(Ordering::SeqCst);
    let (topic, partition) = (message.topic(), message.partition());
    match batches.last_mut() {
        Some(last)
            if last.generation == generation
                && last.tp.partition == partition
                && last.tp.topic == topic =>
        {
            last.records.push(Consumed::of(&message));
        }
        _ => batches.push(Batch {
            tp: TopicPartition::new(topic, partition),
            generation,
            records: vec![Consumed::of(&message)],
        }),
    }
}

/// Serves the callbacks (a rebalance may still come while the loop drains) and discards any
/// record: it is not committed, so its partition's next owner reads it.
fn serve_until_finish(
    consumer: &AgentsConsumer,
    finish: &std_mpsc::Receiver<Finish>,
) -> Option<Finish> {
    if let Ok(assignment) = consumer.assignment() {
        let _ = consumer.pause(&assignment);
    }
    loop {
        match finish.try_recv() {
            Ok(finish) => return Some(finish),
            Err(std_mpsc::TryRecvError::Disconnected) => return None,
            Err(std_mpsc::TryRecvError::Empty) => {
                let _ = consumer.poll(POLL_WAIT);
            }
        }
    }
}

fn carry_out(consumer: &AgentsConsumer, finish: Finish, group_name: &str) {
    let started = Instant::now();
    commit(
        consumer,
        &consumer.context().state,
        &finish.commits,
        CommitMode::Sync,
    );
    consumer.unsubscribe();
    if let Some(patience) = finish.wait_for_leave {
        let _ = group::leave_blocking(consumer, patience, group_name);
    }
    tracing::debug!(
        "agents' consumer: final commit and leave took {} ms",
        started.elapsed().as_millis()
    );
    let _ = finish.done.send(());
}

fn partitions_of(list: &TopicPartitionList) -> Vec<TopicPartition> {
    list.elements()
        .iter()
        .map(|e| TopicPartition::new(e.topic(), e.partition()))
        .collect()
}

fn describe(partitions: &[TopicPartition]) -> String {
    if partitions.is_empty() {
        return "nothing".into();
    }
    partitions
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
