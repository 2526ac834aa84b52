//! What runs on the evaluation pool for the agents: a job takes consecutive records of one
//! partition for one agent, decodes each with the agent's serializers, runs the body,
//! enqueues what it sent (and its result, to the sinks) on the producer, in one group per
//! job, applies the error policy to failures, and reports to the agents' loop, which awaits
//! the group's acknowledgements and does the offset bookkeeping.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::consumer::{Batch, Consumed};
use crate::app::{Agent, App, ErrorPolicy};
use crate::codec;
use crate::kafka::TopicPartition;
use crate::kafka::producer::{Group, Producer, Record, Sealed};
use crate::script::{Event, Host, OutgoingRecord, ScriptEngine, TableAccess, TableChange};
use crate::tables::Tables;
use crate::worker::state::WorkerState;
use crate::worker::tables::EventView;

/// Everything an agent's evaluation needs, shared by the pool's threads.
pub struct Evaluator {
    pub app: Arc<App>,
    pub engine: Arc<ScriptEngine>,
    pub host: Arc<dyn Host>,
    pub state: Arc<WorkerState>,
    pub producer: Producer,
    /// The app's tables (`None`: it has none).
    pub tables: Option<Arc<Tables>>,
}

/// Records `range` of `batch` for agent `agent`.
pub struct Job {
    pub agent: usize,
    /// The assignment the records were dispatched under (see the loop's `assigned`).
    pub assignment: u64,
    pub batch: Arc<Batch>,
    pub range: Range<usize>,
    /// When the job was cut for the pool: its events' durations start here.
    pub handed_off: Instant,
}

impl Job {
    pub fn tp(&self) -> &TopicPartition {
        &self.batch.tp
    }

    pub fn records(&self) -> &[Consumed] {
        &self.batch.records[self.range.clone()]
    }
}

/// What a job's records sent, acknowledged together before any of them finishes.
pub struct Sent {
    pub acks: Sealed,
    /// Per partitioned table written: its changelog records (all in the job's partition), to
    /// learn where the changelog ends once they are acknowledged.
    pub changelogs: Vec<(usize, Sealed)>,
    /// Records of the agent's own (sends and results for its sinks), and dead letters.
    pub outputs: u64,
    pub dead_letters: u64,
}

/// A job's report to the agents' loop.
pub struct JobDone {
    pub job: Job,
    /// `None`: the job sent nothing, its records are finished.
    pub sent: Option<Sent>,
    /// Why the worker must stop: the job stopped at a record that can never finish.
    pub fatal: Option<String>,
    pub elapsed: Duration,
}

/// The records a job sends, while it runs.
#[derive(Default)]
struct Sending {
    group: Group,
    /// Changelog records of partitioned tables, a group per table.
    changelogs: std::collections::BTreeMap<usize, Group>,
    outputs: u64,
    dead_letters: u64,
}

impl Sending {
    fn seal(self) -> Option<Sent> {
        (self.group.sent() > 0 || !self.changelogs.is_empty()).then(|| Sent {
            acks: self.group.seal(),
            changelogs: self
                .changelogs
                .into_iter()
                .map(|(table, group)| (table, group.seal()))
                .collect(),
            outputs: self.outputs,
            dead_letters: self.dead_letters,
        })
    }
}

/// What a record's evaluation asks for: records to send, and table changes.
struct Evaluated {
    records: Vec<OutgoingRecord>,
    changes: Vec<TableChange>,
}

impl Evaluator {
    /// Runs a job on the calling thread (one of the pool's), to completion or to the first
    /// record that stops the worker. A job is never cut short by a warm shutdown: with
    /// `concurrency > 1` a later job of the same partition may finish meanwhile, and records
    /// skipped before it would be processed twice (the commit cannot pass them).
    pub fn run(&self, job: Job) -> JobDone {
        let started = Instant::now();
        let mut sending = Sending::default();
        let view = self.view(&job);
        // The job's table partitions stay its own until it ends.
        let held = view.as_ref().map(|view| view.lock());
        let fatal = job.records().iter().find_map(|record| {
            self.process(job.agent, job.tp(), record, view.as_ref(), &mut sending)
                .err()
        });
        drop(held);
        JobDone {
            job,
            sent: sending.seal(),
            fatal,
            elapsed: started.elapsed(),
        }
    }

    /// The tables a job of agent `job.agent` reads and writes (`None`: it uses none).
    fn view(&self, job: &Job) -> Option<Arc<EventView>> {
        let used = &self.app.agents[job.agent].tables;
        let tables = self.tables.as_ref().filter(|_| !used.is_empty())?;
        let partition = job.tp().partition as u32;
        Some(Arc::new(EventView::new(tables.clone(), used, partition)))
    }

    /// Processes one record, sending in `sending`; an error stops the worker.
    fn process(
        &self,
        index: usize,
        tp: &TopicPartition,
        record: &Consumed,
        view: Option<&Arc<EventView>>,
        sending: &mut Sending,
    ) -> Result<(), String> {
        match self.evaluate(index, tp, record, view) {
            Ok(evaluated) => {
                self.deliver(index, tp, record, &evaluated.records, sending)?;
                let Some(view) = view.filter(|_| !evaluated.changes.is_empty()) else {
                    return Ok(());
                };
                match view.apply(&evaluated.changes) {
                    Ok(records) => self.log_changes(index, tp, record, &records, sending),
                    Err(reason) => self.on_failure(index, tp, record, reason, sending),
                }
            }
            Err(reason) => self.on_failure(index, tp, record, reason, sending),
        }
    }

    /// Enqueues the changelog records of a record's table changes (already applied).
    fn log_changes(
        &self,
        index: usize,
        tp: &TopicPartition,
        record: &Consumed,
        records: &[(usize, Record)],
        sending: &mut Sending,
    ) -> Result<(), String> {
        for (table, changelog) in records {
            let group = match changelog.partition {
                Some(_) => sending.changelogs.entry(*table).or_default(),
                None => &mut sending.group,
            };
            // Applied already: a change that cannot be logged must not be committed past.
            if let Err(reason) = self.producer.send_blocking(group, changelog, &[]) {
                let agent = &self.app.agents[index].name;
                return Err(format!(
                    "agent {agent} topic {} partition {} offset {}: cannot write to the changelog: {reason}",
                    tp.topic, tp.partition, record.offset
                ));
            }
        }
        Ok(())
    }

    /// Runs agent `index`'s body on one record: the records to send (what the body sent,
    /// then its result for each sink) and its table changes, or why it failed.
    fn evaluate(
        &self,
        index: usize,
        tp: &TopicPartition,
        record: &Consumed,
        view: Option<&Arc<EventView>>,
    ) -> Result<Evaluated, String> {
        let agent = &self.app.agents[index];
        let counters = self.state.agent(&agent.name);
        counters.events_in.fetch_add(1, Ordering::Relaxed);
        let event = event(agent, tp, record)?;
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
                    "agent {} {tp} offset {}: epoch {epoch} is older than {newest}; skipped",
                    agent.name,
                    record.offset
                );
                return Ok(Evaluated {
                    records: Vec::new(),
                    changes: Vec::new(),
                });
            }
        }
        counters.start(tp.partition, record.offset);
        let script = &agent.body.script;
        let outcome = match view {
            Some(view) => {
                let tables: Arc<dyn TableAccess> = view.clone();
                script.run_with_tables(&self.engine, &self.host, Some(&event), tables)
            }
            None => script.run(&self.engine, &self.host, Some(&event)),
        };
        counters.done();
        let outcome = outcome.map_err(|e| e.to_string())?;
        let mut records = outcome.sends;
        if let Some(result) = outcome.result {
            records.extend(crate::app::sink_records(&agent.sinks, &result));
        }
        Ok(Evaluated {
            records,
            changes: outcome.changes,
        })
    }

    /// Encodes and enqueues what agent `index` sent for a record.
    fn deliver(
        &self,
        index: usize,
        tp: &TopicPartition,
        record: &Consumed,
        records: &[OutgoingRecord],
        sending: &mut Sending,
    ) -> Result<(), String> {
        for outgoing in records {
            // An unencodable result is the body's fault: the error policy decides.
            let enqueued = self.app.encode(outgoing).and_then(|encoded| {
                self.producer
                    .send_blocking(&mut sending.group, &encoded, &[])
            });
            match enqueued {
                Ok(()) => sending.outputs += 1,
                Err(reason) => return self.on_failure(index, tp, record, reason, sending),
            }
        }
        Ok(())
    }

    /// Applies the agent's error policy to a record it could not process; an error stops
    /// the worker.
    fn on_failure(
        &self,
        index: usize,
        tp: &TopicPartition,
        record: &Consumed,
        reason: String,
        sending: &mut Sending,
    ) -> Result<(), String> {
        let agent = &self.app.agents[index];
        self.state
            .agent(&agent.name)
            .events_failed
            .fetch_add(1, Ordering::Relaxed);
        let place = format!(
            "agent {} topic {} partition {} offset {}",
            agent.name, tp.topic, tp.partition, record.offset
        );
        match &agent.on_error {
            ErrorPolicy::Log => {
                tracing::error!("{place}: {reason}; skipped (on_error = \"log\")");
                Ok(())
            }
            ErrorPolicy::DeadLetter { topic } => {
                tracing::error!("{place}: {reason}; sent to dead-letter topic {topic}");
                self.dead_letter(agent, topic, tp, record, &reason, &mut sending.group)
                    .map_err(|e| format!("{place}: cannot dead-letter: {e}"))?;
                sending.dead_letters += 1;
                Ok(())
            }
            ErrorPolicy::Stop => Err(format!(
                "{place}: {reason}; stopping the worker (on_error = \"stop\")"
            )),
        }
    }

    /// Enqueues the record as it came, with headers saying where it came from and why it
    /// failed.
    fn dead_letter(
        &self,
        agent: &Agent,
        topic: &str,
        tp: &TopicPartition,
        record: &Consumed,
        reason: &str,
        group: &mut Group,
    ) -> Result<(), String> {
        let partition = tp.partition.to_string();
        let offset = record.offset.to_string();
        let mut headers: Vec<(&str, &[u8])> = record
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        headers.extend([
            ("faust-rs-error", reason.as_bytes()),
            ("faust-rs-agent", agent.name.as_bytes()),
            ("faust-rs-topic", tp.topic.as_bytes()),
            ("faust-rs-partition", partition.as_bytes()),
            ("faust-rs-offset", offset.as_bytes()),
        ]);
        let copy = Record {
            topic: topic.to_string(),
            partition: None,
            key: record.key.clone(),
            value: record.value.clone(),
        };
        self.producer.send_blocking(group, &copy, &headers)
    }
}

/// Decodes a record with the agent's serializers into the event its body sees.
fn event(agent: &Agent, tp: &TopicPartition, record: &Consumed) -> Result<Event, String> {
    let key = codec::decode(agent.key_serializer, record.key.as_deref()).map_err(|e| {
        format!(
            "undecodable key ({} serializer): {e}",
            agent.key_serializer.name()
        )
    })?;
    let value = codec::decode(agent.value_serializer, record.value.as_deref()).map_err(|e| {
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
        offset: record.offset,
        timestamp: record.timestamp,
        headers: record.headers.clone(),
    })
}
