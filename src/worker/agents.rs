//! Agents: one consumer in the app's group (`{app id}`) subscribed to every agent topic. Each
//! record is decoded with the agent's serializers and handed to its body; what the body sends
//! (and its result, to the sinks) is produced, and the record's offset becomes committable only
//! once those records are acknowledged. Offsets are committed in batches, and for partitions
//! being revoked, before they are given up.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::{Notify, Semaphore, watch};

use crate::app::{Agent, App, ErrorPolicy};
use crate::codec;
use crate::kafka::{OffsetTracker, TopicPartition};
use crate::script::{Event, Host, OutgoingRecord, ScriptEngine};
use crate::worker::sender::{Pending, Sender};
use crate::worker::state::WorkerState;

/// Rebalance and statistics hooks of the agents' consumer. Runs on the thread that polls, so
/// it only does bookkeeping and the one synchronous commit Kafka's protocol needs before
/// partitions are given up.
pub struct AgentsContext {
    state: Arc<WorkerState>,
    tracker: Arc<Mutex<OffsetTracker>>,
}

impl ClientContext for AgentsContext {
    fn stats(&self, statistics: Statistics) {
        // librdkafka keeps reporting partitions for a while after they were revoked: only the
        // ones this worker owns count.
        let assignment = self.state.assignment.lock().unwrap().clone();
        let owned = |topic: &str, partition: i32| {
            assignment
                .get(topic)
                .is_some_and(|ps| ps.contains(&partition))
        };
        let mut lag = BTreeMap::new();
        for (topic, stats) in &statistics.topics {
            for (partition, p) in &stats.partitions {
                // -1 marks unknown lags (and librdkafka's internal "unassigned" partition).
                if owned(topic, *partition) && p.consumer_lag >= 0 {
                    lag.insert(format!("{topic}[{partition}]"), p.consumer_lag);
                }
            }
        }
        *self.state.lag.lock().unwrap() = lag;
    }
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

/// Commits `commits` synchronously or not; a failure puts them back into the tracker.
fn commit(
    consumer: &impl Consumer<AgentsContext>,
    tracker: &Mutex<OffsetTracker>,
    state: &WorkerState,
    commits: Vec<(TopicPartition, i64)>,
    mode: CommitMode,
) -> KafkaResult<()> {
    if commits.is_empty() {
        return Ok(());
    }
    let mut list = TopicPartitionList::new();
    for (tp, position) in &commits {
        list.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*position))?;
    }
    let result = consumer.commit(&list, mode);
    match &result {
        Ok(()) => {
            state.commits.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            tracing::warn!("offset commit failed (will retry): {e}");
            tracker.lock().unwrap().commit_failed(&commits);
        }
    }
    result
}

impl ConsumerContext for AgentsContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let revoked = partitions_of(list);
            // At-least-once across owners: commit what finished here before the next owner
            // starts from the committed position. Unfinished events are processed again there.
            let commits = self.tracker.lock().unwrap().take_commits(Some(&revoked));
            let _ = commit(
                consumer,
                &self.tracker,
                &self.state,
                commits,
                CommitMode::Sync,
            );
            self.tracker.lock().unwrap().revoke(&revoked);
            let mut assignment = self.state.assignment.lock().unwrap();
            for tp in &revoked {
                if let Some(partitions) = assignment.get_mut(&tp.topic) {
                    partitions.retain(|p| *p != tp.partition);
                }
            }
            assignment.retain(|_, partitions| !partitions.is_empty());
            tracing::info!("rebalance: revoked {}", describe(&revoked));
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                let assigned = partitions_of(list);
                let mut assignment = self.state.assignment.lock().unwrap();
                for tp in &assigned {
                    let partitions = assignment.entry(tp.topic.clone()).or_default();
                    if !partitions.contains(&tp.partition) {
                        partitions.push(tp.partition);
                        partitions.sort_unstable();
                    }
                }
                self.state.rebalances.fetch_add(1, Ordering::Relaxed);
                *self.state.last_assignment.lock().unwrap() = Some(std::time::Instant::now());
                self.state.ready.store(true, Ordering::Relaxed);
                tracing::info!("rebalance: assigned {}", describe(&assigned));
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!("rebalance error: {e}"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result {
            let failed: Vec<(TopicPartition, i64)> = offsets
                .elements()
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(o) => Some((TopicPartition::new(e.topic(), e.partition()), o)),
                    _ => None,
                })
                .collect();
            tracing::warn!("asynchronous offset commit failed (will retry): {e}");
            self.tracker.lock().unwrap().commit_failed(&failed);
        }
    }
}

pub type AgentsConsumer = StreamConsumer<AgentsContext>;

/// Why the agents stopped on their own (not by a shutdown request).
#[derive(Debug)]
pub enum AgentsStop {
    /// An agent with `on_error = "stop"` failed, or the producer could not deliver.
    Failed(String),
}

/// The running agents of one worker.
pub struct Agents {
    app: Arc<App>,
    engine: Arc<ScriptEngine>,
    host: Arc<dyn Host>,
    state: Arc<WorkerState>,
    sender: Sender,
    consumer: Arc<AgentsConsumer>,
    tracker: Arc<Mutex<OffsetTracker>>,
    /// topic -> indexes into `app.agents` of the agents that consume it.
    by_topic: HashMap<String, Vec<usize>>,
    /// Topics whose agents all have `concurrency = 1`: processed without copying records.
    inline_topics: HashSet<String>,
    /// One per agent: bounds its concurrent evaluations to `concurrency`.
    permits: Vec<Arc<Semaphore>>,
    /// Raised by the first fatal failure.
    failure: watch::Sender<Option<String>>,
    /// Woken after `commit_every` finished events.
    commit_now: Arc<Notify>,
}

impl Agents {
    /// Creates the consumer (not yet subscribed).
    pub fn new(
        app: Arc<App>,
        engine: Arc<ScriptEngine>,
        host: Arc<dyn Host>,
        state: Arc<WorkerState>,
        sender: Sender,
        consumer_config: rdkafka::ClientConfig,
    ) -> Result<Agents, String> {
        let tracker = Arc::new(Mutex::new(OffsetTracker::default()));
        let context = AgentsContext {
            state: state.clone(),
            tracker: tracker.clone(),
        };
        let consumer: AgentsConsumer = consumer_config
            .create_with_context(context)
            .map_err(|e| format!("cannot create the agents' consumer: {e}"))?;
        let mut by_topic: HashMap<String, Vec<usize>> = HashMap::new();
        for (index, agent) in app.agents.iter().enumerate() {
            by_topic.entry(agent.topic.clone()).or_default().push(index);
        }
        let inline_topics = by_topic
            .iter()
            .filter(|(_, agents)| agents.iter().all(|&i| app.agents[i].concurrency <= 1))
            .map(|(topic, _)| topic.clone())
            .collect();
        let permits = app
            .agents
            .iter()
            .map(|a| Arc::new(Semaphore::new(a.concurrency.max(1) as usize)))
            .collect();
        Ok(Agents {
            app,
            engine,
            host,
            state,
            sender,
            consumer: Arc::new(consumer),
            tracker,
            by_topic,
            inline_topics,
            permits,
            failure: watch::channel(None).0,
            commit_now: Arc::new(Notify::new()),
        })
    }

    /// Subscribes to every agent topic: joins the app's group.
    pub fn subscribe(&self) -> Result<(), String> {
        let mut topics: Vec<&str> = self.by_topic.keys().map(String::as_str).collect();
        topics.sort_unstable();
        if topics.is_empty() {
            self.state.ready.store(true, Ordering::Relaxed);
            return Ok(());
        }
        self.consumer
            .subscribe(&topics)
            .map_err(|e| format!("cannot subscribe to {topics:?}: {e}"))
    }

    /// A receiver that changes to `Some(reason)` when the agents must stop the worker.
    pub fn failures(&self) -> watch::Receiver<Option<String>> {
        self.failure.subscribe()
    }

    /// Consumes and processes until `stop` turns true. Returns with events possibly still in
    /// flight: call [`Agents::drain`] next.
    pub async fn run(self: &Arc<Self>, mut stop: watch::Receiver<bool>) {
        if self.by_topic.is_empty() {
            return;
        }
        let mut finished_since_commit: u64 = 0;
        loop {
            let message = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return,
                message = self.consumer.recv() => message,
            };
            match message {
                Ok(message) => {
                    if !self.by_topic.contains_key(message.topic()) {
                        continue;
                    }
                    if self.inline_topics.contains(message.topic()) {
                        self.process_inline(message).await;
                    } else {
                        // Copy what processing needs and release the borrowed message before
                        // awaiting: it points into librdkafka's buffers and is not Send.
                        let record = self.take(&message);
                        drop(message);
                        self.dispatch(record).await;
                    }
                    finished_since_commit += 1;
                    if finished_since_commit >= self.app.commit_every {
                        finished_since_commit = 0;
                        self.commit_now.notify_one();
                    }
                }
                Err(e) => tracing::warn!("agents' consumer: {e}"),
            }
        }
    }

    /// Copies a consumed record out of librdkafka's buffers.
    fn take(&self, message: &BorrowedMessage<'_>) -> (TopicPartition, i64, Arc<RawRecord>) {
        let tp = TopicPartition::new(message.topic(), message.partition());
        (tp, message.offset(), Arc::new(RawRecord::of(message)))
    }

    /// The common case, agents with `concurrency = 1`: bodies run right here, on the borrowed
    /// message, without copying it. Only records that send something (or fail) are tracked
    /// as in flight.
    async fn process_inline(self: &Arc<Self>, message: BorrowedMessage<'_>) {
        let tp = TopicPartition::new(message.topic(), message.partition());
        let offset = message.offset();
        let agents = &self.by_topic[&tp.topic];
        let headers = headers_of(&message);
        let outcomes: Vec<(usize, Result<Vec<OutgoingRecord>, String>)> = agents
            .iter()
            .map(|&index| {
                let agent = &self.app.agents[index];
                let event = event(
                    agent,
                    &tp,
                    offset,
                    message.key(),
                    message.payload(),
                    headers.clone(),
                    message.timestamp().to_millis(),
                );
                (index, self.evaluate(index, event))
            })
            .collect();
        if outcomes
            .iter()
            .all(|(_, outcome)| outcome.as_ref().is_ok_and(Vec::is_empty))
        {
            self.tracker.lock().unwrap().completed(&tp, offset);
            return;
        }
        let raw = RawRecord::of(&message);
        drop(message);
        self.tracker.lock().unwrap().dispatched(&tp, offset);
        let mut work = Vec::new();
        for (index, outcome) in outcomes {
            work.extend(match outcome {
                Ok(records) => self.deliver(index, &tp, offset, &raw, records).await,
                Err(reason) => self.on_failure(index, &tp, offset, &raw, reason).await,
            });
        }
        self.finish_when_done(tp, offset, work);
    }

    /// Hands one record to every agent of its topic.
    async fn dispatch(self: &Arc<Self>, (tp, offset, raw): (TopicPartition, i64, Arc<RawRecord>)) {
        let agents = &self.by_topic[&tp.topic];
        self.tracker.lock().unwrap().dispatched(&tp, offset);
        let mut pending_all = Vec::new();
        for &index in agents {
            let permit = self.permits[index]
                .clone()
                .acquire_owned()
                .await
                .expect("never closed");
            if self.app.agents[index].concurrency <= 1 {
                pending_all.extend(self.process(index, &tp, offset, &raw).await);
                drop(permit);
            } else {
                // Concurrent agents: the evaluation runs on its own task; the offset stays in
                // flight until it (and its sends) finish, so commits never pass it.
                let this = self.clone();
                let (tp, raw) = (tp.clone(), raw.clone());
                let (done_tx, done_rx) = tokio::sync::oneshot::channel();
                tokio::spawn(async move {
                    let pending = this.process(index, &tp, offset, &raw).await;
                    drop(permit);
                    let _ = done_tx.send(pending);
                });
                pending_all.push(PendingWork::Task(done_rx));
            }
        }
        self.finish_when_done(tp, offset, pending_all);
    }

    /// Marks the offset finished once every piece of work it caused is acknowledged.
    fn finish_when_done(self: &Arc<Self>, tp: TopicPartition, offset: i64, work: Vec<PendingWork>) {
        if work.is_empty() {
            self.tracker.lock().unwrap().finished(&tp, offset);
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let mut queue = work;
            while let Some(item) = queue.pop() {
                match item {
                    PendingWork::Delivery { agent, pending } => match pending.delivered().await {
                        Ok(_) => {
                            this.state
                                .agent(&this.app.agents[agent].name)
                                .events_out
                                .fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            // librdkafka gave up after message.timeout.ms: the offset must not
                            // be committed, and the events after it cannot be either.
                            this.fail(format!(
                                "{e} (for {tp} offset {offset}); stopping so it is redelivered"
                            ));
                            return;
                        }
                    },
                    PendingWork::DeadLetter { agent, pending } => match pending.delivered().await {
                        Ok(_) => {
                            this.state
                                .agent(&this.app.agents[agent].name)
                                .dead_lettered
                                .fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            this.fail(format!("dead-letter {e} (for {tp} offset {offset})"));
                            return;
                        }
                    },
                    PendingWork::Task(done) => match done.await {
                        Ok(more) => queue.extend(more),
                        Err(_) => return, // the task panicked; its failure was reported
                    },
                    PendingWork::Never => return,
                }
            }
            this.tracker.lock().unwrap().finished(&tp, offset);
        });
    }

    fn fail(&self, reason: String) {
        tracing::error!("{reason}");
        self.failure.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// Runs agent `index` on one record copied out of librdkafka; returns the deliveries to
    /// await before the offset is finished.
    async fn process(
        &self,
        index: usize,
        tp: &TopicPartition,
        offset: i64,
        raw: &RawRecord,
    ) -> Vec<PendingWork> {
        let agent = &self.app.agents[index];
        let event = event(
            agent,
            tp,
            offset,
            raw.key.as_deref(),
            raw.value.as_deref(),
            raw.headers.clone(),
            raw.timestamp,
        );
        match self.evaluate(index, event) {
            Ok(records) => self.deliver(index, tp, offset, raw, records).await,
            Err(reason) => self.on_failure(index, tp, offset, raw, reason).await,
        }
    }

    /// Runs agent `index`'s body on a decoded event: the records to send (what the body sent,
    /// then its result for each sink), or why it failed.
    fn evaluate(
        &self,
        index: usize,
        event: Result<Event, String>,
    ) -> Result<Vec<OutgoingRecord>, String> {
        let agent = &self.app.agents[index];
        let counters = self.state.agent(&agent.name);
        counters.events_in.fetch_add(1, Ordering::Relaxed);
        let event = event?;
        if agent.drop_stale_epochs
            && let Some(epoch) = event.epoch()
        {
            // Fencing on the consumer side: a record from a term older than one already seen
            // (here, or announced in the default election) comes from a leader that lost.
            let newest = counters.newest_epoch.fetch_max(epoch, Ordering::Relaxed);
            let newest = newest.max(self.host.leader_epoch().unwrap_or(-1));
            if epoch < newest {
                counters.events_stale.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    "agent {} topic {} partition {} offset {}: epoch {epoch} is older than {newest}; skipped",
                    agent.name,
                    event.topic,
                    event.partition,
                    event.offset
                );
                return Ok(Vec::new());
            }
        }
        counters.start(event.partition, event.offset);
        let outcome = agent
            .body
            .script
            .run(&self.engine, &self.host, Some(&event));
        counters.done();
        let outcome = outcome.map_err(|e| e.to_string())?;
        let mut records = outcome.sends;
        if let Some(result) = outcome.result {
            records.extend(self.sender.sink_records(&agent.sinks, &result));
        }
        Ok(records)
    }

    /// Produces what agent `index` sent for a record; the deliveries to await.
    async fn deliver(
        &self,
        index: usize,
        tp: &TopicPartition,
        offset: i64,
        raw: &RawRecord,
        records: Vec<OutgoingRecord>,
    ) -> Vec<PendingWork> {
        let mut pending = Vec::with_capacity(records.len());
        for record in &records {
            match self.sender.send(record, &[]).await {
                Ok(p) => pending.push(PendingWork::Delivery {
                    agent: index,
                    pending: p,
                }),
                // An unencodable result is the body's fault: the error policy decides.
                Err(reason) => return self.on_failure(index, tp, offset, raw, reason).await,
            }
        }
        pending
    }

    /// Applies the agent's error policy to a record it could not process.
    async fn on_failure(
        &self,
        index: usize,
        tp: &TopicPartition,
        offset: i64,
        raw: &RawRecord,
        reason: String,
    ) -> Vec<PendingWork> {
        let agent = &self.app.agents[index];
        self.state
            .agent(&agent.name)
            .events_failed
            .fetch_add(1, Ordering::Relaxed);
        let place = format!(
            "agent {} topic {} partition {} offset {offset}",
            agent.name, tp.topic, tp.partition
        );
        match &agent.on_error {
            ErrorPolicy::Log => {
                tracing::error!("{place}: {reason}; skipped (on_error = \"log\")");
                Vec::new()
            }
            ErrorPolicy::DeadLetter { topic } => {
                tracing::error!("{place}: {reason}; sent to dead-letter topic {topic}");
                let partition = tp.partition.to_string();
                let offset_text = offset.to_string();
                let mut headers: Vec<(&str, &[u8])> = raw
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_slice()))
                    .collect();
                headers.extend([
                    ("faust-rs-error", reason.as_bytes()),
                    ("faust-rs-agent", agent.name.as_bytes()),
                    ("faust-rs-topic", tp.topic.as_bytes()),
                    ("faust-rs-partition", partition.as_bytes()),
                    ("faust-rs-offset", offset_text.as_bytes()),
                ]);
                match self
                    .sender
                    .send_bytes(
                        topic,
                        None,
                        raw.key.as_deref(),
                        raw.value.as_deref(),
                        &headers,
                    )
                    .await
                {
                    Ok(pending) => vec![PendingWork::DeadLetter {
                        agent: index,
                        pending,
                    }],
                    Err(e) => {
                        self.fail(format!("{place}: cannot dead-letter: {e}"));
                        vec![PendingWork::Never]
                    }
                }
            }
            ErrorPolicy::Stop => {
                self.fail(format!(
                    "{place}: {reason}; stopping the worker (on_error = \"stop\")"
                ));
                vec![PendingWork::Never]
            }
        }
    }

    /// Commits every finished offset now (asynchronously: errors come back through the
    /// commit callback and are retried).
    pub fn commit(&self, mode: CommitMode) {
        let commits = self.tracker.lock().unwrap().take_commits(None);
        let _ = commit(
            self.consumer.as_ref(),
            &self.tracker,
            &self.state,
            commits,
            mode,
        );
    }

    /// Commits on a timer (`commit_interval`) and after `commit_every` events, until `stop`.
    pub async fn commit_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(self.app.commit_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = ticker.tick() => {}
                _ = self.commit_now.notified() => {}
            }
            self.commit(CommitMode::Async);
        }
    }

    /// Waits (up to `deadline`) for the events in flight to finish, then commits
    /// synchronously. Returns the number still in flight when it gave up.
    pub async fn drain(&self, deadline: Duration) -> usize {
        let start = tokio::time::Instant::now();
        loop {
            let in_flight = self.tracker.lock().unwrap().in_flight();
            if in_flight == 0 || start.elapsed() >= deadline {
                self.commit(CommitMode::Sync);
                return in_flight;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn consumer(&self) -> &Arc<AgentsConsumer> {
        &self.consumer
    }
}

/// A record's bytes, kept for dead-lettering and for concurrent evaluations.
struct RawRecord {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
    timestamp: Option<i64>,
}

/// Work an event caused that must complete before its offset is finished.
enum PendingWork {
    Delivery {
        agent: usize,
        pending: Pending,
    },
    DeadLetter {
        agent: usize,
        pending: Pending,
    },
    /// A concurrent evaluation, which yields its own deliveries.
    Task(tokio::sync::oneshot::Receiver<Vec<PendingWork>>),
    /// Never finishes: the worker is stopping because of this event.
    Never,
}

/// Decodes a record with the agent's serializers into the event its body sees.
fn event(
    agent: &Agent,
    tp: &TopicPartition,
    offset: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: Vec<(String, Vec<u8>)>,
    timestamp: Option<i64>,
) -> Result<Event, String> {
    let key = codec::decode(agent.key_serializer, key).map_err(|e| {
        format!(
            "undecodable key ({} serializer): {e}",
            agent.key_serializer.name()
        )
    })?;
    let value = codec::decode(agent.value_serializer, value).map_err(|e| {
        format!(
            "undecodable value ({} serializer): {e}",
            agent.value_serializer.name()
        )
    })?;
    Ok(Event {
        value,
        key,
        topic: tp.topic.clone(),
        partition: tp.partition,
        offset,
        timestamp,
        headers,
    })
}

/// A record's headers, owned (values of null headers become empty).
fn headers_of(message: &BorrowedMessage<'_>) -> Vec<(String, Vec<u8>)> {
    message
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    (
                        h.key.to_string(),
                        h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

impl RawRecord {
    fn of(message: &BorrowedMessage<'_>) -> RawRecord {
        RawRecord {
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            headers: headers_of(message),
            timestamp: message.timestamp().to_millis(),
        }
    }
}
