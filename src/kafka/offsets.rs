//! At-least-once offset bookkeeping. An offset may be committed only when its event, and every
//! event before it in the partition, has finished (its body ran and every record it sent was
//! acknowledged). With `concurrency > 1` events finish out of order, so the committable
//! position of a partition is the lowest offset still in flight, or one past the highest
//! dispatched offset when nothing is in flight.

use std::collections::{HashMap, VecDeque};

use rdkafka::{Offset, TopicPartitionList};

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

/// `positions` as librdkafka's list, for a commit, a transaction's offsets or a seek; a
/// position librdkafka refuses (none that an [`OffsetTracker`] hands out) is logged as left out
/// of `purpose`.
pub fn position_list(positions: &[(TopicPartition, i64)], purpose: &str) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for (tp, position) in positions {
        let added = list.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*position));
        if let Err(e) = added {
            tracing::warn!("offset {position} of {tp} left out of {purpose}: {e}");
        }
    }
    list
}

/// One partition's events in dispatch order (offsets only grow), each with the number of
/// pieces of work it still waits for: one per agent that has not finished it (an agent's
/// piece ends once every record its body sent for the event is acknowledged).
#[derive(Debug, Default)]
struct PartitionState {
    pending: VecDeque<(i64, u32)>,
    /// One past the highest offset dispatched so far.
    next: Option<i64>,
    /// The position last committed (or handed to a commit), to skip no-op commits.
    committed: Option<i64>,
    /// The first event dispatched since the last commit known to have succeeded: where the
    /// partition is read again from when a transaction is aborted (exactly-once).
    uncommitted_from: Option<i64>,
}

impl PartitionState {
    fn committable(&self) -> Option<i64> {
        self.pending
            .front()
            .map(|(offset, _)| *offset)
            .or(self.next)
    }
}

/// Offsets of the partitions this worker currently owns. Owned by the agents' loop alone.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<TopicPartition, PartitionState>,
}

impl OffsetTracker {
    /// Records that the events at `offsets` (increasing, and above any dispatched before in
    /// the partition) were each handed to `pieces` agents.
    pub fn dispatched(
        &mut self,
        tp: &TopicPartition,
        offsets: impl Iterator<Item = i64>,
        pieces: u32,
    ) {
        let state = match self.partitions.get_mut(tp) {
            Some(state) => state,
            None => self.partitions.entry(tp.clone()).or_default(),
        };
        for offset in offsets {
            debug_assert!(state.next.is_none_or(|next| offset >= next));
            state.uncommitted_from.get_or_insert(offset);
            state.pending.push_back((offset, pieces));
            state.next = Some(offset + 1);
        }
    }

    /// Records that one piece of each of `count` events finished: the event at `first` and
    /// those dispatched right after it (one job's records). Events of partitions no longer
    /// owned (revoked while in flight) are ignored: their new owner processes them again.
    pub fn finished(&mut self, tp: &TopicPartition, first: i64, count: usize) {
        let Some(state) = self.partitions.get_mut(tp) else {
            return;
        };
        let Ok(start) = state.pending.binary_search_by_key(&first, |(o, _)| *o) else {
            return;
        };
        for (_, pieces) in state.pending.range_mut(start..).take(count) {
            *pieces = pieces.saturating_sub(1);
        }
        while state
            .pending
            .front()
            .is_some_and(|(_, pieces)| *pieces == 0)
        {
            state.pending.pop_front();
        }
    }

    /// Number of events dispatched and not yet finished, over every partition.
    pub fn in_flight(&self) -> usize {
        self.partitions
            .values()
            .map(|s| s.pending.iter().filter(|(_, pieces)| *pieces > 0).count())
            .sum()
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

    /// Records that the commit of `commits` (from [`OffsetTracker::take_commits`]) succeeded:
    /// the events before those positions will never be read again.
    pub fn committed(&mut self, commits: &[(TopicPartition, i64)]) {
        for (tp, position) in commits {
            if let Some(state) = self.partitions.get_mut(tp) {
                state.uncommitted_from =
                    state.next.filter(|next| next > position).map(|_| *position);
            }
        }
    }

    /// Where to read each partition again from when everything since the last successful
    /// commit is thrown away (an aborted transaction): partitions with events dispatched since
    /// then, with the position of the first of them.
    pub fn rewind_points(&self) -> Vec<(TopicPartition, i64)> {
        let mut points: Vec<_> = self
            .partitions
            .iter()
            .filter_map(|(tp, state)| Some((tp.clone(), state.uncommitted_from?)))
            .collect();
        points.sort();
        points
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
            tracker.dispatched(&tp(0), [offset].into_iter(), 1);
            tracker.finished(&tp(0), offset, 1);
        }
        assert_eq!(tracker.take_commits(None), vec![(tp(0), 15)]);
        assert_eq!(tracker.take_commits(None), vec![], "nothing moved since");
    }

    #[test]
    fn an_unfinished_event_holds_back_its_partition_only() {
        let mut tracker = OffsetTracker::default();
        for offset in 0..5 {
            tracker.dispatched(&tp(0), [offset].into_iter(), 1);
            tracker.dispatched(&tp(1), [offset].into_iter(), 1);
        }
        for offset in [0, 1, 3, 4] {
            tracker.finished(&tp(0), offset, 1);
        }
        for offset in 0..5 {
            tracker.finished(&tp(1), offset, 1);
        }
        assert_eq!(tracker.take_commits(None), vec![(tp(0), 2), (tp(1), 5)]);
        assert_eq!(tracker.in_flight(), 1);
        tracker.finished(&tp(0), 2, 1);
        assert_eq!(tracker.take_commits(None), vec![(tp(0), 5)]);
    }

    #[test]
    fn revoked_partitions_are_forgotten_and_late_finishes_ignored() {
        let mut tracker = OffsetTracker::default();
        tracker.dispatched(&tp(0), [7].into_iter(), 1);
        tracker.dispatched(&tp(1), [3].into_iter(), 1);
        tracker.finished(&tp(1), 3, 1);
        assert_eq!(tracker.take_commits(Some(&[tp(1)])), vec![(tp(1), 4)]);
        tracker.revoke(&[tp(0), tp(1)]);
        tracker.finished(&tp(0), 7, 1);
        assert_eq!(tracker.in_flight(), 0);
        assert_eq!(tracker.take_commits(None), vec![]);
    }

    #[test]
    fn an_event_finishes_once_every_agent_did() {
        let mut tracker = OffsetTracker::default();
        tracker.dispatched(&tp(0), [0].into_iter(), 2);
        tracker.dispatched(&tp(0), [1].into_iter(), 1);
        tracker.finished(&tp(0), 1, 1);
        tracker.finished(&tp(0), 0, 1);
        assert_eq!(
            tracker.take_commits(None),
            vec![(tp(0), 0)],
            "one agent left"
        );
        assert_eq!(tracker.in_flight(), 1);
        tracker.finished(&tp(0), 0, 1);
        assert_eq!(tracker.take_commits(None), vec![(tp(0), 2)]);
    }

    #[test]
    fn a_job_finishes_its_run_of_events_whatever_their_offsets() {
        let mut tracker = OffsetTracker::default();
        // Offsets with gaps (transaction markers, compaction): jobs cut runs of events.
        tracker.dispatched(&tp(0), [3, 4, 7, 8, 12, 13].into_iter(), 1);
        tracker.finished(&tp(0), 8, 3);
        assert_eq!(
            tracker.take_commits(None),
            vec![(tp(0), 3)],
            "3..=7 still run"
        );
        assert_eq!(tracker.in_flight(), 3);
        tracker.finished(&tp(0), 3, 3);
        assert_eq!(tracker.take_commits(None), vec![(tp(0), 14)]);
        assert_eq!(tracker.in_flight(), 0);
    }

    #[test]
    fn rewinding_goes_back_to_the_last_successful_commit_only() {
        let mut tracker = OffsetTracker::default();
        tracker.dispatched(&tp(0), 10..13, 1);
        tracker.dispatched(&tp(1), 5..6, 1);
        assert_eq!(tracker.rewind_points(), vec![(tp(0), 10), (tp(1), 5)]);
        tracker.finished(&tp(0), 10, 3);
        tracker.finished(&tp(1), 5, 1);
        let commits = tracker.take_commits(None);
        tracker.dispatched(&tp(0), 13..15, 1);
        assert_eq!(
            tracker.rewind_points(),
            vec![(tp(0), 10), (tp(1), 5)],
            "taken for a commit is not committed yet"
        );
        tracker.committed(&commits);
        assert_eq!(
            tracker.rewind_points(),
            vec![(tp(0), 13)],
            "what came after the commit, and nothing of a partition wholly committed"
        );
        tracker.dispatched(&tp(1), 6..7, 1);
        assert_eq!(tracker.rewind_points(), vec![(tp(0), 13), (tp(1), 6)]);
    }

    #[test]
    fn a_failed_commit_is_retried() {
        let mut tracker = OffsetTracker::default();
        tracker.dispatched(&tp(0), [0].into_iter(), 1);
        tracker.finished(&tp(0), 0, 1);
        let commits = tracker.take_commits(None);
        tracker.commit_failed(&commits);
        assert_eq!(tracker.take_commits(None), commits);
    }
}
