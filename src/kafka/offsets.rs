//! At-least-once offset bookkeeping. An offset may be committed only when its event, and every
//! event before it in the partition, has finished (its body ran and every record it sent was
//! acknowledged). With `concurrency > 1` events finish out of order, so the committable
//! position of a partition is the lowest offset still in flight, or one past the highest
//! dispatched offset when nothing is in flight.

use std::collections::{BTreeSet, HashMap};

/// A topic and partition, owned so it can key maps across threads.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.topic, self.partition)
    }
}

#[derive(Debug, Default)]
struct PartitionState {
    in_flight: BTreeSet<i64>,
    /// One past the highest offset dispatched so far.
    next: Option<i64>,
    /// The position last committed (or handed to a commit), to skip no-op commits.
    committed: Option<i64>,
}

impl PartitionState {
    fn committable(&self) -> Option<i64> {
        self.in_flight.first().copied().or(self.next)
    }
}

/// Offsets of the partitions this worker currently owns.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<TopicPartition, PartitionState>,
}

impl OffsetTracker {
    /// Records that the event at `offset` was handed to an agent.
    pub fn dispatched(&mut self, tp: &TopicPartition, offset: i64) {
        let state = self.partitions.entry(tp.clone()).or_default();
        state.in_flight.insert(offset);
        state.next = Some(state.next.map_or(offset + 1, |n| n.max(offset + 1)));
    }

    /// Records an event that was dispatched and finished at once (nothing to wait for): one
    /// step instead of [`OffsetTracker::dispatched`] then [`OffsetTracker::finished`].
    pub fn completed(&mut self, tp: &TopicPartition, offset: i64) {
        if let Some(state) = self.partitions.get_mut(tp) {
            state.next = Some(state.next.map_or(offset + 1, |n| n.max(offset + 1)));
        } else {
            let state = PartitionState {
                next: Some(offset + 1),
                ..PartitionState::default()
            };
            self.partitions.insert(tp.clone(), state);
        }
    }

    /// Records that the event at `offset` finished. Events of partitions no longer owned
    /// (revoked while in flight) are ignored: their new owner processes them again.
    pub fn finished(&mut self, tp: &TopicPartition, offset: i64) {
        if let Some(state) = self.partitions.get_mut(tp) {
            state.in_flight.remove(&offset);
        }
    }

    /// Number of events dispatched and not yet finished, over every partition.
    pub fn in_flight(&self) -> usize {
        self.partitions.values().map(|s| s.in_flight.len()).sum()
    }

    /// Positions to commit (the next offset to read, Kafka's convention) for every partition
    /// that moved since the last call, and marks them committed. Pass a filter to commit only
    /// some partitions (those being revoked).
    pub fn take_commits(&mut self, only: Option<&[TopicPartition]>) -> Vec<(TopicPartition, i64)> {
        let mut commits = Vec::new();
        for (tp, state) in &mut self.partitions {
            if only.is_some_and(|only| !only.contains(tp)) {
                continue;
            }
            if let Some(position) = state.committable()
                && state.committed != Some(position)
            {
                state.committed = Some(position);
                commits.push((tp.clone(), position));
            }
        }
        commits.sort();
        commits
    }

    /// Puts back positions whose commit failed, so the next commit retries them.
    pub fn commit_failed(&mut self, failed: &[(TopicPartition, i64)]) {
        for (tp, position) in failed {
            if let Some(state) = self.partitions.get_mut(tp)
                && state.committed == Some(*position)
            {
                state.committed = None;
            }
        }
    }

    /// Forgets partitions given up in a rebalance.
    pub fn revoke(&mut self, revoked: &[TopicPartition]) {
        for tp in revoked {
            self.partitions.remove(tp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    #[test]
    fn in_order_completion_commits_one_past_the_last() {
        let mut tracker = OffsetTracker::default();
        for offset in 10..15 {
            tracker.dispatched(&tp(0), offset);
            tracker.finished(&tp(0), offset);
        }
        assert_eq!(tracker.take_commits(None), vec![(tp(0), 15)]);
        assert_eq!(tracker.take_commits(None), vec![], "nothing moved since");
    }

    #[test]
    fn an_unfinished_event_holds_back_its_partition_only() {
        let mut tracker = OffsetTracker::default();
        for offset in 0..5 {
            tracker.dispatched(&tp(0), offset);
            tracker.dispatched(&tp(1), offset);
        }
        for offset in [0, 1, 3, 4] {
            tracker.finished(&tp(0), offset);
        }
        for offset in 0..5 {
            tracker.finished(&tp(1), offset);
        }
        assert_eq!(tracker.take_commits(None), vec![(tp(0), 2), (tp(1), 5)]);
        assert_eq!(tracker.in_flight(), 1);
        tracker.finished(&tp(0), 2);
        assert_eq!(tracker.take_commits(None), vec![(tp(0), 5)]);
    }

    #[test]
    fn revoked_partitions_are_forgotten_and_late_finishes_ignored() {
        let mut tracker = OffsetTracker::default();
        tracker.dispatched(&tp(0), 7);
        tracker.dispatched(&tp(1), 3);
        tracker.finished(&tp(1), 3);
        assert_eq!(tracker.take_commits(Some(&[tp(1)])), vec![(tp(1), 4)]);
        tracker.revoke(&[tp(0), tp(1)]);
        tracker.finished(&tp(0), 7);
        assert_eq!(tracker.in_flight(), 0);
        assert_eq!(tracker.take_commits(None), vec![]);
    }

    #[test]
    fn completed_events_move_the_position_but_never_past_one_in_flight() {
        let mut tracker = OffsetTracker::default();
        tracker.completed(&tp(0), 0);
        tracker.dispatched(&tp(0), 1);
        tracker.completed(&tp(0), 2);
        assert_eq!(tracker.take_commits(None), vec![(tp(0), 1)]);
        tracker.finished(&tp(0), 1);
        assert_eq!(tracker.take_commits(None), vec![(tp(0), 3)]);
    }

    #[test]
    fn a_failed_commit_is_retried() {
        let mut tracker = OffsetTracker::default();
        tracker.dispatched(&tp(0), 0);
        tracker.finished(&tp(0), 0);
        let commits = tracker.take_commits(None);
        tracker.commit_failed(&commits);
        assert_eq!(tracker.take_commits(None), commits);
    }
}
