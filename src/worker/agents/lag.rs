//! The commit lag of the partitions this worker holds: the records between the group's
//! committed offset and the partition's end (its high watermark as of the last fetch), for
//! `/stats` (`commit_lag`) and the `faust_rs_consumer_lag` metric.
//!
//! librdkafka's statistics would give a figure too, but turning them on costs every worker,
//! busy or idle: HDR histograms per broker connection (0.35 MiB) and a JSON document to build
//! and parse every interval. And they count from what the consumer committed, which under
//! exactly-once is nothing: the offsets go out with the transactions. Here the committed
//! offsets are the ones this worker committed, either way, and for a partition it has not
//! committed yet, what the group had committed when the partition came (asked once).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};

use crate::kafka::TopicPartition;
use crate::kafka::watermark::last_high_watermark;
use crate::worker::shutdown::Shutdown;
use crate::worker::state::WorkerState;

/// How often the lag is worked out. The figure moves with every fetch; this is often enough for
/// a scrape every 15 s and costs a lock per held partition.
const INTERVAL: Duration = Duration::from_secs(5);

/// Bounds the question to the group's coordinator about partitions just assigned.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// The group's committed offset of each held partition, as far as this worker knows it.
#[derive(Default)]
pub struct CommittedOffsets {
    state: Mutex<Known>,
    /// A question to the coordinator is out (one at a time).
    asking: AtomicBool,
}

#[derive(Default)]
struct Known {
    /// `None`: the group has no committed offset for the partition.
    offsets: HashMap<TopicPartition, Option<i64>>,
    /// Bumped on every [`CommittedOffsets::forget`]: an answer to a question asked before may
    /// be stale.
    forgotten: u64,
}

impl CommittedOffsets {
    /// After a commit of these positions (offsets, or a transaction's).
    pub fn record(&self, positions: &[(TopicPartition, i64)]) {
        let mut known = self.state.lock().unwrap();
        for (tp, position) in positions {
            known.offsets.insert(tp.clone(), Some(*position));
        }
    }

    /// Partitions given up (their next owner commits them) or just assigned (what was known of
    /// them may be stale): an answer about them asked before is dropped.
    pub fn forget(&self, partitions: &[TopicPartition]) {
        let mut known = self.state.lock().unwrap();
        for tp in partitions {
            known.offsets.remove(tp);
        }
        known.forgotten += 1;
    }

    /// Which of `held` have no committed offset known yet, and the count of forgets to hand
    /// back with the answer.
    fn unknown(&self, held: &[TopicPartition]) -> (Vec<TopicPartition>, u64) {
        let known = self.state.lock().unwrap();
        let unknown = held
            .iter()
            .filter(|tp| !known.offsets.contains_key(*tp))
            .cloned()
            .collect();
        (unknown, known.forgotten)
    }

    /// The coordinator's answer about partitions that had no offset known: kept unless a
    /// rebalance came in between, and never over a commit this worker made meanwhile.
    fn answered(&self, answer: Vec<(TopicPartition, Option<i64>)>, asked_at: u64) {
        let mut known = self.state.lock().unwrap();
        if known.forgotten != asked_at {
            return;
        }
        for (tp, committed) in answer {
            known.offsets.entry(tp).or_insert(committed);
        }
    }

    fn get(&self, tp: &TopicPartition) -> Option<i64> {
        self.state
            .lock()
            .unwrap()
            .offsets
            .get(tp)
            .copied()
            .flatten()
    }
}

/// Records between `committed` and the partition's `end`: unknown without both, or when the
/// commit lies past the end (a partition truncated or recreated).
pub fn records_behind(end: Option<i64>, committed: Option<i64>) -> Option<i64> {
    let (end, committed) = (end?, committed?);
    (committed <= end).then_some(end - committed)
}

/// Works the lag out every [`INTERVAL`] into `state.lag`, until the warm shutdown or the
/// consumer is gone (held weakly: this task must not keep it open).
pub async fn follow<C: ConsumerContext + 'static>(
    consumer: Weak<BaseConsumer<C>>,
    committed: Arc<CommittedOffsets>,
    state: Arc<WorkerState>,
    shutdown: Shutdown,
) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.warm.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(consumer) = consumer.upgrade() else {
            return;
        };
        let held = held_partitions(&state);
        let lag = held
            .iter()
            .filter_map(|tp| {
                let end = last_high_watermark(&consumer, tp);
                Some((tp.to_string(), records_behind(end, committed.get(tp))?))
            })
            .collect::<BTreeMap<_, _>>();
        *state.lag.lock().unwrap() = lag;
        ask_about_new_partitions(consumer, &committed, &held);
    }
}

/// Asks the group's coordinator, on a blocking thread, for the committed offsets of held
/// partitions this worker knows none of (just assigned); the answer counts from the next tick.
fn ask_about_new_partitions<C: ConsumerContext + 'static>(
    consumer: Arc<BaseConsumer<C>>,
    committed: &Arc<CommittedOffsets>,
    held: &[TopicPartition],
) {
    let (unknown, asked_at) = committed.unknown(held);
    if unknown.is_empty() || committed.asking.swap(true, Ordering::AcqRel) {
        return;
    }
    let committed = committed.clone();
    tokio::task::spawn_blocking(move || {
        match ask(&consumer, &unknown) {
            Ok(answer) => committed.answered(answer, asked_at),
            Err(e) => tracing::debug!("committed offsets of new partitions not known yet: {e}"),
        }
        committed.asking.store(false, Ordering::Release);
    });
}

fn ask<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    partitions: &[TopicPartition],
) -> rdkafka::error::KafkaResult<Vec<(TopicPartition, Option<i64>)>> {
    let mut list = TopicPartitionList::new();
    for tp in partitions {
        list.add_partition(&tp.topic, tp.partition);
    }
    let answer = consumer.committed_offsets(list, ASK_TIMEOUT)?;
    Ok(answer
        .elements()
        .iter()
        .filter(|e| e.error().is_ok())
        .map(|e| {
            let committed = match e.offset() {
                Offset::Offset(at) => Some(at),
                _ => None,
            };
            (TopicPartition::new(e.topic(), e.partition()), committed)
        })
        .collect())
}

fn held_partitions(state: &WorkerState) -> Vec<TopicPartition> {
    let assignment = state.assignment.lock().unwrap();
    assignment
        .iter()
        .flat_map(|(topic, partitions)| {
            partitions
                .iter()
                .map(move |p| TopicPartition::new(topic, *p))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(partition: i32) -> TopicPartition {
        TopicPartition::new("t", partition)
    }

    #[test]
    fn records_behind_needs_both_ends_and_a_commit_within_the_partition() {
        assert_eq!(records_behind(Some(10), Some(3)), Some(7));
        assert_eq!(records_behind(Some(10), Some(10)), Some(0));
        assert_eq!(records_behind(None, Some(3)), None);
        assert_eq!(records_behind(Some(10), None), None);
        assert_eq!(records_behind(Some(10), Some(12)), None);
    }

    #[test]
    fn an_answer_never_overwrites_a_commit_and_is_dropped_after_a_revocation() {
        let committed = CommittedOffsets::default();
        let (unknown, asked_at) = committed.unknown(&[tp(0), tp(1)]);
        assert_eq!(unknown, vec![tp(0), tp(1)]);
        committed.record(&[(tp(0), 9)]);
        committed.answered(vec![(tp(0), Some(3)), (tp(1), None)], asked_at);
        assert_eq!(
            committed.get(&tp(0)),
            Some(9),
            "the worker's own commit stays"
        );
        assert_eq!(committed.get(&tp(1)), None);
        assert!(committed.unknown(&[tp(1)]).0.is_empty(), "asked once");

        let (_, asked_at) = committed.unknown(&[tp(2)]);
        committed.forget(&[tp(0)]);
        committed.answered(vec![(tp(2), Some(5))], asked_at);
        assert_eq!(committed.get(&tp(2)), None, "stale answer dropped");
        assert_eq!(committed.unknown(&[tp(0), tp(2)]).0, vec![tp(0), tp(2)]);
    }
}
