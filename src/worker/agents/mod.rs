//! Agents: one consumer in the app's group (`{app id}`) subscribed to every agent topic, and
//! one loop that owns everything about its records.
//!
//! Three kinds of threads, each with one job:
//! - the consumer thread ([`consumer`]) polls librdkafka, copies records out in batches and
//!   serves the rebalance callbacks;
//! - the evaluation pool ([`crate::worker::pool`]) runs the bodies ([`evaluate`]) and enqueues
//!   what they send;
//! - the agents' loop ([`run`], an async task) owns the offset bookkeeping: one `select!` over
//!   rebalances, finished jobs, acknowledgements, the commit tick, new records and shutdown
//!   (vector's Kafka source has the same shape). Nothing else touches the
//!   [`OffsetTracker`], so it needs no lock.
//!
//! An offset becomes committable once every agent of its topic has processed the record and
//! every record those bodies sent is acknowledged. Offsets are committed on the commit tick,
//! after `commit_every` events, for partitions being revoked (before they are given up), and
//! once more when the worker stops. Under exactly-once each of those commits ends the agents'
//! transaction ([`transactions`]), which takes the offsets with the records sent.

pub mod consumer;
pub mod evaluate;
pub mod lag;
mod queue;
pub mod transactions;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use rdkafka::consumer::{CommitMode, Consumer};
use tokio::sync::{mpsc, oneshot};

use self::consumer::{AgentsConsumer, Batch, Finish, Rebalanced, Rewind};
use self::evaluate::{Evaluator, JobDone};
use self::lag::CommittedOffsets;
use self::queue::Queues;
use self::transactions::{Settled, Transactions};
use crate::kafka::producer::KafkaProducer;
use crate::kafka::{OffsetTracker, TopicPartition};
use crate::worker::pool::EvalPool;
use crate::worker::shutdown::Shutdown;
use crate::worker::tables::TablePartitions;

/// How the agents' group is left at the end (see [`Finish::wait_for_leave`]).
pub struct Leaving {
    pub group_name: String,
    pub wait_for_leave: Option<Duration>,
}

/// Joins the group and starts the consumer thread and the agents' loop (on `shutdown`'s
/// tracker). The loop ends on a warm shutdown once the work in flight is done and committed,
/// or at once on a cold one; its result is the number of events it left unfinished.
/// `transactional`: under exactly-once, the initialized transactional producer the evaluator
/// sends through. `tables`: the tables co-partitioned with the agents' topics.
pub fn start(
    evaluator: Arc<Evaluator>,
    pool: Arc<EvalPool>,
    consumer_config: &rdkafka::ClientConfig,
    transactional: Option<KafkaProducer>,
    tables: Option<Arc<TablePartitions>>,
    leaving: Leaving,
    shutdown: &Shutdown,
) -> Result<tokio::task::JoinHandle<usize>, String> {
    let app = evaluator.app.clone();
    let committed = Arc::new(CommittedOffsets::default());
    let (consumer, rebalances) = consumer::create(
        consumer_config,
        evaluator.state.clone(),
        transactional.is_some(),
        tables,
        committed.clone(),
    )?;
    let queues = Queues::new(&app);
    if queues.topics().is_empty() {
        evaluator.state.ready.store(true, Ordering::Relaxed);
        return Ok(shutdown.tasks.spawn(async { 0 }));
    }
    consumer
        .subscribe(&queues.topics())
        .map_err(|e| format!("cannot subscribe to {:?}: {e}", queues.topics()))?;
    let (records_tx, records) = mpsc::channel(RECORDS_CHANNEL);
    let (finish_tx, finish_rx) = std::sync::mpsc::channel();
    let (rewinds, rewinds_rx) = std::sync::mpsc::channel();
    let wait_for_leave = leaving.wait_for_leave;
    consumer::spawn(
        consumer.clone(),
        records_tx,
        rewinds_rx,
        finish_rx,
        leaving.group_name,
    )
    .map_err(|e| format!("cannot start the agents' consumer thread: {e}"))?;
    shutdown.tasks.spawn(lag::follow(
        Arc::downgrade(&consumer),
        committed.clone(),
        evaluator.state.clone(),
        shutdown.clone(),
    ));
    let transactions = transactional.map(|producer| Transactions::new(producer, consumer.clone()));
    let agents_loop = AgentsLoop {
        commit_every: app.commit_every,
        commit_interval: app.commit_interval,
        evaluator,
        pool,
        shutdown: shutdown.clone(),
        consumer: Some(consumer),
        committed,
        tracker: OffsetTracker::default(),
        assigned: HashMap::new(),
        queues,
        running: 0,
        running_records: 0,
        acks: FuturesUnordered::new(),
        events_awaiting_acks: 0,
        finished_since_commit: 0,
        exactly_once: transactions.map(|transactions| ExactlyOnce {
            transactions,
            settling: None,
            commit_due: false,
            abort_due: None,
            revocations: Vec::new(),
            rewinds,
        }),
    };
    Ok(shutdown
        .tasks
        .spawn(agents_loop.run(records, rebalances, finish_tx, wait_for_leave)))
}

/// Hand-offs of polled batches that may wait for the loop: a little slack between the threads.
const RECORDS_CHANNEL: usize = 4;

/// One job's records, once processed: what the offset bookkeeping and the metrics need of
/// it after the job itself (and its batch) is gone.
struct Processed {
    tp: TopicPartition,
    assignment: u64,
    first_offset: i64,
    records: usize,
    agent: usize,
    handed_off: Instant,
}

impl Processed {
    fn of(job: &evaluate::Job) -> Processed {
        Processed {
            tp: job.tp().clone(),
            assignment: job.assignment,
            first_offset: job.records().first().map_or(0, |r| r.offset),
            records: job.range.len(),
            agent: job.agent,
            handed_off: job.handed_off,
        }
    }
}

/// A job's sent records, acknowledged (or not).
struct Acked {
    processed: Processed,
    outputs: u64,
    dead_letters: u64,
    /// Per partitioned table written: the offset of its last changelog record.
    changelog_ends: Vec<(usize, i64)>,
    result: Result<(), String>,
}

/// Waits for a job's records and changelog records to be acknowledged.
async fn acknowledged(processed: Processed, sent: evaluate::Sent) -> Acked {
    let mut changelog_ends = Vec::with_capacity(sent.changelogs.len());
    let mut result = sent.acks.acknowledged().await;
    for (table, sealed) in sent.changelogs {
        match sealed.acknowledged_through().await {
            Ok(Some(end)) => changelog_ends.push((table, end)),
            Ok(None) => {}
            Err(e) => result = result.and(Err(e)),
        }
    }
    Acked {
        processed,
        outputs: sent.outputs,
        dead_letters: sent.dead_letters,
        changelog_ends,
        result,
    }
}

struct AgentsLoop {
    commit_every: u64,
    commit_interval: Duration,
    evaluator: Arc<Evaluator>,
    pool: Arc<EvalPool>,
    shutdown: Shutdown,
    /// For asynchronous commits; dropped before the consumer thread's last work, so the
    /// consumer closes there.
    consumer: Option<Arc<AgentsConsumer>>,
    /// Told of the offsets each transaction commits, for the commit lag (under at-least-once
    /// the consumer's commits tell it).
    committed: Arc<CommittedOffsets>,
    tracker: OffsetTracker,
    /// Partitions owned now, each with the rebalance that assigned it: records and results of
    /// an earlier assignment of the same partition are stale.
    assigned: HashMap<TopicPartition, u64>,
    queues: Queues,
    /// Jobs on the pool, and the records they hold.
    running: usize,
    running_records: usize,
    /// One per job waiting for the acknowledgements of what it sent.
    acks: FuturesUnordered<BoxFuture<'static, Acked>>,
    /// The events of those jobs.
    events_awaiting_acks: usize,
    finished_since_commit: u64,
    /// `None` under at-least-once.
    exactly_once: Option<ExactlyOnce>,
}

/// A transaction being committed or aborted on a blocking thread, and when to give up on it.
struct Settling {
    task: tokio::task::JoinHandle<Settled>,
    deadline: tokio::time::Instant,
}

/// How long a transaction may take to settle before the worker stops. librdkafka 2.12 can block
/// past its own timeouts while the group's coordinator is lost (`send_offsets_to_transaction`
/// goes on waiting for it: confluentinc/librdkafka#5456, #5511); a worker that stops lets its
/// partitions' next owners go on, and its restart (under the same transactional id) aborts what
/// it left open. Longer than a commit needs even while a broker is replaced (the offsets 10 s,
/// a commit resumed up to three times 30 s); an abort after a refused commit can take 30 s
/// more, and is cut short: stopping is safe.
const SETTLE_PATIENCE: Duration = Duration::from_secs(45);

/// Where a revocation waits for the positions to commit for its partitions.
type CommitsReply = std::sync::mpsc::SyncSender<Vec<(TopicPartition, i64)>>;

/// The agents' loop's state under exactly-once: a transaction spans the jobs between two
/// commits, and a commit waits for the jobs running to end.
struct ExactlyOnce {
    transactions: Transactions,
    /// The transaction being committed or aborted.
    settling: Option<Settling>,
    /// A commit is due: no job starts until the transaction is settled.
    commit_due: bool,
    /// The transaction must be aborted instead (why): the partitions were lost.
    abort_due: Option<String>,
    /// Revocations waiting for the transaction to settle (their partitions are committed with
    /// it), with the consumer thread's reply channel.
    revocations: Vec<(Vec<TopicPartition>, CommitsReply)>,
    /// To the consumer thread: partitions to read again after an abort.
    rewinds: std::sync::mpsc::Sender<Rewind>,
}

impl ExactlyOnce {
    /// New jobs wait: a commit is due or under way.
    fn holding(&self) -> bool {
        self.commit_due || self.abort_due.is_some() || self.settling.is_some()
    }
}

impl AgentsLoop {
    async fn run(
        mut self,
        records: mpsc::Receiver<Vec<Batch>>,
        mut rebalances: mpsc::UnboundedReceiver<Rebalanced>,
        finish: std::sync::mpsc::Sender<Finish>,
        wait_for_leave: Option<Duration>,
    ) -> usize {
        let (done_tx, mut done) = mpsc::unbounded_channel::<JobDone>();
        let mut records = Some(records);
        let mut commit_tick = tokio::time::interval(self.commit_interval);
        commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let shutdown = self.shutdown.clone();
        loop {
            self.settle_when_due();
            self.dispatch(&done_tx);
            self.show_gauges();
            let stopping = records.is_none();
            if stopping && (self.finished() || shutdown.failure().is_some()) {
                break;
            }
            let settling = self.exactly_once.as_mut().map(|eos| &mut eos.settling);
            tokio::select! {
                biased;
                _ = shutdown.cold.cancelled() => {
                    self.abandon_transaction().await;
                    return self.unfinished();
                }
                Some(event) = rebalances.recv() => self.rebalanced(event),
                Some(job) = done.recv() => self.job_done(job),
                Some(ack) = self.acks.next(), if !self.acks.is_empty() => self.acked(ack),
                settled = settlement(settling) => self.settled(settled),
                _ = commit_tick.tick() => self.commit(),
                _ = shutdown.warm.cancelled(), if !stopping => {
                    // Dropping the receiver tells the consumer thread to stop forwarding.
                    records = None;
                    self.queues.clear();
                    self.commit();
                }
                Some(batches) = next(&mut records), if self.queues.has_room() => {
                    self.accept(batches);
                }
            }
        }
        self.abandon_transaction().await;
        if self.exactly_once.is_none() || shutdown.failure().is_none() {
            self.flush_tables(true);
            // On disk before the process may exit: a restart then reads no changelog record.
            if let Some(tables) = self.evaluator.tables.clone() {
                let _ = tokio::task::spawn_blocking(move || tables.sync()).await;
            }
        }
        // A revocation still waiting (the worker stops on a failure) gives its partitions up
        // uncommitted: their next owner reads them from the last commit.
        self.answer_revocations();
        let left = self.unfinished();
        // Under exactly-once everything finished is committed with the last transaction.
        let commits = match self.exactly_once {
            Some(_) => Vec::new(),
            None => self.tracker.take_commits(None),
        };
        // From here on the consumer thread commits and leaves on its own: a revocation while
        // it leaves must not wait for this loop's answer.
        drop(rebalances);
        drop(self.consumer.take());
        let (done, finished) = oneshot::channel();
        let finishing = finish.send(Finish {
            commits,
            wait_for_leave,
            done,
        });
        if finishing.is_ok() {
            tokio::select! {
                _ = finished => {}
                _ = shutdown.cold.cancelled() => {}
            }
        }
        left
    }

    /// No job running and no acknowledgement awaited.
    fn idle(&self) -> bool {
        self.running == 0 && self.acks.is_empty()
    }

    /// Publishes what the loop waits on (for the USR1 dump): a few relaxed stores a turn.
    fn show_gauges(&self) {
        let gauges = &self.evaluator.state.agents_loop;
        let store = |gauge: &std::sync::atomic::AtomicU64, value: usize| {
            gauge.store(value as u64, Ordering::Relaxed);
        };
        store(&gauges.jobs_running, self.running);
        store(&gauges.events_awaiting_acks, self.events_awaiting_acks);
        if let Some(eos) = &self.exactly_once {
            let flag = |gauge: &std::sync::atomic::AtomicBool, value: bool| {
                gauge.store(value, Ordering::Relaxed);
            };
            flag(&gauges.transaction_open, eos.transactions.is_open());
            flag(&gauges.transaction_settling, eos.settling.is_some());
            flag(&gauges.commit_due, eos.commit_due);
            flag(&gauges.abort_due, eos.abort_due.is_some());
            store(&gauges.revocations_waiting, eos.revocations.len());
        }
    }

    /// Idle, and (under exactly-once) with no transaction left to settle.
    fn finished(&self) -> bool {
        self.idle()
            && self.exactly_once.as_ref().is_none_or(|eos| {
                !eos.transactions.is_open() && eos.settling.is_none() && eos.revocations.is_empty()
            })
    }

    /// Aborts a transaction left open (a cold shutdown, or a failure): read-committed readers
    /// of the outputs need not wait for the broker to time it out. At most a second.
    async fn abandon_transaction(&mut self) {
        let abort = self.exactly_once.as_mut().and_then(|eos| {
            eos.settling = None;
            eos.transactions.abandon(Duration::from_secs(1))
        });
        if let Some(abort) = abort {
            let _ = tokio::task::spawn_blocking(abort).await;
        }
    }

    /// Events being processed or waiting for acknowledgements (records only queued here are
    /// not: dropping them loses nothing, their partition's next owner reads them).
    fn unfinished(&self) -> usize {
        self.running_records + self.events_awaiting_acks
    }

    fn rebalanced(&mut self, event: Rebalanced) {
        match event {
            Rebalanced::Assigned {
                partitions,
                generation,
            }
            | Rebalanced::Rewound {
                partitions,
                generation,
            } => {
                for tp in partitions {
                    self.assigned.insert(tp, generation);
                }
            }
            Rebalanced::Revoked {
                partitions,
                lost,
                commits,
            } => self.revoked(partitions, lost, commits),
            Rebalanced::CommitFailed(failed) => self.tracker.commit_failed(&failed),
            Rebalanced::RewindFailed(why) | Rebalanced::TablesFailed(why) => {
                self.shutdown.fail(why)
            }
        }
    }

    /// Partitions being revoked: at-least-once answers with their finished offsets at once;
    /// exactly-once first settles the transaction (see [`AgentsLoop::settle_when_due`]).
    fn revoked(&mut self, partitions: Vec<TopicPartition>, lost: bool, reply: CommitsReply) {
        let Some(eos) = self.exactly_once.as_mut() else {
            let _ = reply.send(self.tracker.take_commits(Some(&partitions)));
            return self.forget(&partitions);
        };
        if lost {
            eos.abort_due
                .get_or_insert_with(|| "the group gave this worker's partitions to others".into());
        }
        eos.revocations.push((partitions, reply));
        eos.commit_due = true;
    }

    /// Drops every trace of partitions this worker no longer owns (or reads again).
    fn forget(&mut self, partitions: &[TopicPartition]) {
        self.tracker.revoke(partitions);
        self.queues.forget(partitions);
        for tp in partitions {
            self.assigned.remove(tp);
        }
    }

    /// Takes polled batches into the agents' queues; drops records polled under an earlier
    /// assignment of their partition.
    fn accept(&mut self, batches: Vec<Batch>) {
        for batch in batches {
            let Some(&assignment) = self.assigned.get(&batch.tp) else {
                continue;
            };
            if batch.generation < assignment {
                continue;
            }
            let Some(pieces) = self.queues.agents_of(&batch.tp.topic) else {
                continue;
            };
            let offsets = batch.records.iter().map(|record| record.offset);
            self.tracker.dispatched(&batch.tp, offsets, pieces);
            self.queues.push(Arc::new(batch), assignment);
        }
    }

    /// Hands queued records to the pool, as far as each agent's concurrency allows (under
    /// exactly-once, in the open transaction, and not while one is being settled).
    fn dispatch(&mut self, done: &mpsc::UnboundedSender<JobDone>) {
        if self.exactly_once.as_ref().is_some_and(ExactlyOnce::holding) {
            return;
        }
        while let Some(job) = self.queues.next_job() {
            if let Some(eos) = self.exactly_once.as_mut()
                && let Err(e) = eos.transactions.ensure_begun()
            {
                // The job's events stay uncommitted: their partitions' next owner runs them.
                return self.shutdown.fail(e);
            }
            self.running += 1;
            self.running_records += job.range.len();
            let evaluator = self.evaluator.clone();
            let done = done.clone();
            self.pool.spawn_agent(move || {
                let _ = done.send(evaluator.run(job));
            });
        }
    }

    fn job_done(&mut self, done: JobDone) {
        self.running -= 1;
        self.queues.finished(&done.job, done.elapsed);
        self.running_records -= done.job.range.len();
        if let Some(reason) = done.fatal {
            self.shutdown.fail(reason);
            return;
        }
        let processed = Processed::of(&done.job);
        let Some(sent) = done.sent else {
            self.finish(processed);
            return;
        };
        self.events_awaiting_acks += processed.records;
        self.acks.push(Box::pin(acknowledged(processed, sent)));
    }

    fn acked(&mut self, acked: Acked) {
        let processed = acked.processed;
        self.events_awaiting_acks -= processed.records;
        if let Err(e) = acked.result {
            let undelivered = format!(
                "{e} (for {} offsets from {}, {} events)",
                processed.tp, processed.first_offset, processed.records
            );
            // Exactly-once: the transaction cannot commit (librdkafka: an abortable error);
            // aborting it reads its events again. At-least-once: librdkafka gave up after
            // message.timeout.ms, and neither these offsets nor any after them may be
            // committed.
            match self.exactly_once.as_mut() {
                Some(eos) => _ = eos.abort_due.get_or_insert(undelivered),
                None => self
                    .shutdown
                    .fail(format!("{undelivered}; stopping so they are redelivered")),
            }
            return;
        }
        let counters = self
            .evaluator
            .state
            .agent(&self.evaluator.app.agents[processed.agent].name);
        counters
            .events_out
            .fetch_add(acked.outputs, Ordering::Relaxed);
        counters
            .dead_lettered
            .fetch_add(acked.dead_letters, Ordering::Relaxed);
        if let Some(tables) = &self.evaluator.tables
            && self.assigned.get(&processed.tp) == Some(&processed.assignment)
        {
            for (table, end) in acked.changelog_ends {
                tables.acknowledged(table, processed.tp.partition as u32, end);
            }
        }
        self.finish(processed);
    }

    /// A job's events are finished (for their agent); commits early after `commit_every`
    /// events.
    fn finish(&mut self, processed: Processed) {
        let agent = &self.evaluator.app.agents[processed.agent].name;
        let took = processed.handed_off.elapsed();
        let durations = &self.evaluator.state.agent(agent).event_duration;
        for _ in 0..processed.records {
            durations.observe(took);
        }
        if self.assigned.get(&processed.tp) != Some(&processed.assignment) {
            return;
        }
        self.tracker
            .finished(&processed.tp, processed.first_offset, processed.records);
        self.finished_since_commit += processed.records as u64;
        if self.finished_since_commit >= self.commit_every {
            self.commit();
        }
    }

    /// Commits every finished offset: at once under at-least-once (errors come back through
    /// the commit callback and are retried), with the transaction under exactly-once (once the
    /// jobs running end).
    fn commit(&mut self) {
        self.finished_since_commit = 0;
        match self.exactly_once.as_mut() {
            // With no transaction open nothing finished since the last commit.
            Some(eos) => eos.commit_due |= eos.transactions.is_open(),
            None => self.commit_async(),
        }
    }

    /// Exactly-once: settles the transaction when a commit is due and no job runs — commits it
    /// with the finished offsets, or aborts it when the partitions were lost. With no
    /// transaction open there is nothing to commit: revocations are answered at once.
    fn settle_when_due(&mut self) {
        let idle = self.idle();
        let Some(eos) = self.exactly_once.as_mut() else {
            return;
        };
        if eos.settling.is_some() || !(eos.commit_due || eos.abort_due.is_some()) || !idle {
            return;
        }
        eos.commit_due = false;
        let abort = eos.abort_due.take();
        if !eos.transactions.is_open() {
            return self.answer_revocations();
        }
        let positions = match abort {
            Some(_) => Vec::new(),
            None => self.tracker.take_commits(None),
        };
        eos.settling = Some(Settling {
            task: eos.transactions.settle(positions, abort),
            deadline: tokio::time::Instant::now() + SETTLE_PATIENCE,
        });
    }

    /// Exactly-once: how the transaction ended.
    fn settled(&mut self, settled: Settled) {
        match settled {
            Settled::Committed(positions) => {
                if !positions.is_empty() {
                    self.evaluator.state.commits.fetch_add(1, Ordering::Relaxed);
                }
                self.committed.record(&positions);
                self.tracker.committed(&positions);
                self.flush_tables(false);
                self.answer_revocations();
            }
            Settled::Aborted(why) => {
                let aborted = &self.evaluator.state.transactions_aborted;
                aborted.fetch_add(1, Ordering::Relaxed);
                // The tables' partitions the transaction changed are read again (from the
                // store and the changelog's committed records) before they are used again.
                if let Some(tables) = &self.evaluator.tables {
                    tables.discard_changed();
                }
                self.answer_revocations();
                let rewind = self.tracker.rewind_points();
                tracing::warn!(
                    "the agents' transaction was aborted ({why}); its events are processed again"
                );
                let partitions: Vec<_> = rewind.iter().map(|(tp, _)| tp.clone()).collect();
                self.forget(&partitions);
                if let Some(eos) = &self.exactly_once
                    && !rewind.is_empty()
                {
                    let _ = eos.rewinds.send(rewind);
                }
            }
            Settled::Fenced(why) => {
                self.answer_revocations();
                self.shutdown.fail(format!(
                    "the agents' transactional producer is done for ({why}): stopping; the partitions' next owner processes the events since the last commit"
                ));
            }
        }
    }

    /// Lets the consumer thread give up the partitions of revocations waiting for the
    /// transaction: it is settled, or there was none.
    fn answer_revocations(&mut self) {
        let Some(eos) = self.exactly_once.as_mut() else {
            return;
        };
        for (partitions, reply) in std::mem::take(&mut eos.revocations) {
            let _ = reply.send(Vec::new());
            self.forget(&partitions);
        }
    }

    /// Commits every finished offset with the consumer, asynchronously.
    fn commit_async(&mut self) {
        let Some(consumer) = &self.consumer else {
            return;
        };
        let commits = self.tracker.take_commits(None);
        if !consumer::commit(
            consumer.as_ref(),
            &self.evaluator.state,
            &commits,
            CommitMode::Async,
        ) {
            self.tracker.commit_failed(&commits);
        }
        self.flush_tables(false);
    }

    /// Hands the tables' changes to their local stores (see [`crate::tables`]): under
    /// exactly-once only right after a commit, while no job runs, so that a store never holds
    /// what an aborted transaction changed.
    fn flush_tables(&self, durable: bool) {
        if let Some(tables) = &self.evaluator.tables {
            tables.flush(durable);
        }
    }
}

/// The end of the transaction being settled, or never when none is.
async fn settlement(settling: Option<&mut Option<Settling>>) -> Settled {
    let Some(slot) = settling else {
        return std::future::pending().await;
    };
    let Some(Settling { task, deadline }) = slot.as_mut() else {
        return std::future::pending().await;
    };
    let settled = match tokio::time::timeout_at(*deadline, task).await {
        Ok(Ok(settled)) => settled,
        Ok(Err(e)) => Settled::Fenced(format!("the transaction's task failed: {e}")),
        Err(_) => Settled::Fenced(format!(
            "the transaction did not settle in {} s (librdkafka can wait past its timeouts while \
             the group's coordinator is lost: confluentinc/librdkafka#5456, #5511)",
            SETTLE_PATIENCE.as_secs()
        )),
    };
    *slot = None;
    settled
}

/// The next polled batches, or never once the loop stopped taking records.
async fn next(records: &mut Option<mpsc::Receiver<Vec<Batch>>>) -> Option<Vec<Batch>> {
    match records {
        Some(records) => records.recv().await,
        None => std::future::pending().await,
    }
}
