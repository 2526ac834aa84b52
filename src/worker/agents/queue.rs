//! The agents' queues: records taken from the consumer and not yet handed to the pool, one
//! queue per agent, and the jobs cut from them.
//!
//! An agent has at most `concurrency` jobs on the pool at once, so with `concurrency = 1` it
//! processes its records one after the other, in the order they were consumed (Faust's
//! semantics). A job's size adapts to the body's cost: as many records as the body processes
//! in about [`JOB_TARGET`], so fast bodies pay one hand-off per many records while slow ones
//! get one record per job (and the pool's threads share them evenly).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::consumer::Batch;
use super::evaluate::Job;
use crate::app::App;
use crate::kafka::TopicPartition;

/// How long one job should keep a pool thread busy.
const JOB_TARGET: Duration = Duration::from_millis(5);
/// The most records in one job.
const MAX_JOB_RECORDS: usize = 512;
/// Bounds on what waits here; the consumer thread waits (and librdkafka buffers) beyond them.
const MAX_QUEUED_RECORDS: usize = 8192;
const MAX_QUEUED_BYTES: usize = 64 << 20;

/// Records of one batch an agent has yet to process.
struct Slice {
    batch: Arc<Batch>,
    assignment: u64,
    /// The first record not yet handed to the pool.
    next: usize,
    bytes: usize,
}

struct AgentQueue {
    slices: VecDeque<Slice>,
    running: usize,
    concurrency: usize,
    /// A moving average of the body's time per record.
    cost: Duration,
}

pub struct Queues {
    /// topic -> the agents that consume it.
    by_topic: HashMap<String, Vec<usize>>,
    agents: Vec<AgentQueue>,
    /// Where the next round-robin look for work starts.
    cursor: usize,
    queued_records: usize,
    queued_bytes: usize,
}

impl Queues {
    pub fn new(app: &App) -> Queues {
        let mut by_topic: HashMap<String, Vec<usize>> = HashMap::new();
        for (index, agent) in app.agents.iter().enumerate() {
            by_topic.entry(agent.topic.clone()).or_default().push(index);
        }
        let agents = app
            .agents
            .iter()
            .map(|agent| AgentQueue {
                slices: VecDeque::new(),
                running: 0,
                concurrency: agent.concurrency.max(1) as usize,
                // Until measured, assume the worst: one record per job.
                cost: JOB_TARGET,
            })
            .collect();
        Queues {
            by_topic,
            agents,
            cursor: 0,
            queued_records: 0,
            queued_bytes: 0,
        }
    }

    /// Every agent topic, sorted.
    pub fn topics(&self) -> Vec<&str> {
        let mut topics: Vec<&str> = self.by_topic.keys().map(String::as_str).collect();
        topics.sort_unstable();
        topics
    }

    /// How many agents consume `topic` (`None`: none).
    pub fn agents_of(&self, topic: &str) -> Option<u32> {
        self.by_topic.get(topic).map(|agents| agents.len() as u32)
    }

    pub fn has_room(&self) -> bool {
        self.queued_records < MAX_QUEUED_RECORDS && self.queued_bytes < MAX_QUEUED_BYTES
    }

    /// Queues `batch` for every agent of its topic.
    pub fn push(&mut self, batch: Arc<Batch>, assignment: u64) {
        let Some(agents) = self.by_topic.get(&batch.tp.topic) else {
            return;
        };
        let bytes: usize = batch.records.iter().map(|r| r.size()).sum();
        for &agent in agents {
            self.queued_records += batch.records.len();
            self.queued_bytes += bytes;
            self.agents[agent].slices.push_back(Slice {
                batch: batch.clone(),
                assignment,
                next: 0,
                bytes,
            });
        }
    }

    /// The next job an agent may start, round robin over the agents.
    pub fn next_job(&mut self) -> Option<Job> {
        let count = self.agents.len();
        for step in 0..count {
            let index = (self.cursor + step) % count;
            if let Some(job) = self.cut(index) {
                self.cursor = (index + 1) % count;
                return Some(job);
            }
        }
        None
    }

    /// A job for agent `index` from the front of its queue, if it may start one.
    fn cut(&mut self, index: usize) -> Option<Job> {
        let queue = &mut self.agents[index];
        if queue.running >= queue.concurrency {
            return None;
        }
        let slice = queue.slices.front_mut()?;
        let per_job = (JOB_TARGET.as_nanos() / queue.cost.as_nanos().max(1)) as usize;
        let start = slice.next;
        let end = (start + per_job.clamp(1, MAX_JOB_RECORDS)).min(slice.batch.records.len());
        slice.next = end;
        let job = Job {
            agent: index,
            assignment: slice.assignment,
            batch: slice.batch.clone(),
            range: start..end,
            handed_off: Instant::now(),
        };
        if end == slice.batch.records.len() {
            self.queued_bytes -= slice.bytes;
            queue.slices.pop_front();
        }
        queue.running += 1;
        self.queued_records -= end - start;
        Some(job)
    }

    /// A job of agent `job.agent` came back after `elapsed`.
    pub fn finished(&mut self, job: &Job, elapsed: Duration) {
        let queue = &mut self.agents[job.agent];
        queue.running -= 1;
        let per_record = elapsed / (job.range.len().max(1) as u32);
        queue.cost = (queue.cost * 4 + per_record) / 5;
    }

    /// Drops the queued records of partitions given up.
    pub fn forget(&mut self, partitions: &[TopicPartition]) {
        self.drop_slices(|slice| partitions.contains(&slice.batch.tp));
    }

    /// Drops every queued record (the worker is stopping).
    pub fn clear(&mut self) {
        self.drop_slices(|_| true);
    }

    fn drop_slices(&mut self, doomed: impl Fn(&Slice) -> bool) {
        for queue in &mut self.agents {
            queue.slices.retain(|slice| {
                if !doomed(slice) {
                    return true;
                }
                self.queued_records -= slice.batch.records.len() - slice.next;
                self.queued_bytes -= slice.bytes;
                false
            });
        }
    }
}
