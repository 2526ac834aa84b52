//! Leader election, one per `[[elections]]` entry plus the app's default one.
//!
//! Mechanism (Faust's, decoupled from the agents): each election has a one-partition topic and
//! its own consumer group. The candidate the group coordinator assigns partition 0 to wins;
//! the cooperative-sticky assignor keeps it there when others join or leave. On winning, the
//! worker appends an [`Announcement`] to the topic; its offset is the term's epoch.
//!
//! Self-fencing: before every leader action the worker *confirms* its term ([`Election::confirm`]):
//! it still holds partition 0, it has not been stalled longer than the session timeout since its
//! previous confirmation attempt, and the topic's end offset shows its announcement is still the
//! newest. Exactly one announcement is the newest at any instant, so at most one worker can pass.
//!
//! A confirmation that fails (the topic's partition has no leader: its broker died) does not
//! end the term, it only keeps the worker from acting until one succeeds: nobody can announce a
//! newer term on a partition without a leader either, and the group does not move partition 0
//! while this worker's heartbeats reach the coordinator (librdkafka revokes it, as lost, once
//! they have not for a session timeout). So the leader ticks again as soon as the partition has
//! a new leader, instead of after a new election on top of it.

pub mod announcement;
pub mod liveness;
pub mod member;
pub mod observer;
pub mod term_producer;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::sync::{mpsc, watch};

use crate::kafka::logs::QuietLogs;

pub use announcement::Announcement;

/// No epoch (no term held).
const NO_EPOCH: i64 = -1;

/// What the membership task is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Give up the term and let another candidate win (tooz `stand_down_group_leader`); stay a
    /// candidate.
    StandDown,
    /// The term was lost while still in the group (a stall, a newer announcement): leave and
    /// rejoin so the group settles and this worker can win a new term later.
    Rejoin,
}

/// One election as this worker takes part in it, shared between the membership task, the
/// timers that need its leader, the web server and scripts.
pub struct Election {
    pub name: String,
    pub topic: String,
    /// Whether this worker runs for it.
    pub candidate: bool,
    session_timeout: Duration,
    /// Holding partition 0 with an acknowledged announcement, and not fenced since.
    leading: AtomicBool,
    /// The epoch of the term held, or of the last one held ([`NO_EPOCH`] if never).
    epoch: AtomicI64,
    last_confirmed: Mutex<Instant>,
    /// When the last confirmation attempt ended, whatever its outcome: a longer gap than the
    /// session timeout means this process was stalled.
    last_attempt: Mutex<Instant>,
    /// The newest announcement this worker knows of (its own or another's).
    latest: watch::Sender<Option<Announcement>>,
    /// The epoch of the term this worker holds, `None` between terms.
    term: watch::Sender<Option<i64>>,
    control: mpsc::UnboundedSender<Control>,
    /// A group-less client for the end-offset queries of [`Election::confirm`].
    probe: Arc<BaseConsumer<QuietLogs>>,
    /// The transactional producer of the term held (see [`term_producer`]).
    term_producer: Mutex<Option<Arc<term_producer::TermProducer>>>,
    terms_seen: TermsSeen,
    /// Counts the signs that the leader is going (its resignation read, its process found
    /// dead): the membership task then heartbeats fast for a while (see `member::Pump`).
    handoffs: watch::Sender<u64>,
}

impl std::fmt::Debug for Election {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Election")
            .field("name", &self.name)
            .field("topic", &self.topic)
            .field("candidate", &self.candidate)
            .field("leading", &self.is_leading())
            .field("epoch", &self.epoch.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl Election {
    pub fn new(
        name: &str,
        topic: &str,
        candidate: bool,
        session_timeout: Duration,
        probe: Arc<BaseConsumer<QuietLogs>>,
    ) -> (Arc<Election>, mpsc::UnboundedReceiver<Control>) {
        let (control, control_rx) = mpsc::unbounded_channel();
        let election = Election {
            name: name.to_string(),
            topic: topic.to_string(),
            candidate,
            session_timeout,
            leading: AtomicBool::new(false),
            epoch: AtomicI64::new(NO_EPOCH),
            last_confirmed: Mutex::new(Instant::now()),
            last_attempt: Mutex::new(Instant::now()),
            latest: watch::channel(None).0,
            term: watch::channel(None).0,
            control,
            probe,
            term_producer: Mutex::new(None),
            terms_seen: TermsSeen::since(crate::clock::now_ms()),
            handoffs: watch::channel(0).0,
        };
        (Arc::new(election), control_rx)
    }

    /// Whether this worker holds the term, as far as it knows without asking the broker.
    pub fn is_leading(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    /// The epoch of the newest term this worker knows of: its own while it leads, else the
    /// newest announcement it has read.
    pub fn current_epoch(&self) -> Option<i64> {
        let own = self.epoch.load(Ordering::SeqCst);
        let latest = self.latest.borrow().as_ref().map(|a| a.epoch);
        match (self.is_leading(), latest) {
            (true, Some(seen)) => Some(own.max(seen)),
            (true, None) => Some(own),
            (false, seen) => seen,
        }
    }

    /// How many terms this worker has seen begin (`faust_rs_leader_changes_total`).
    pub fn terms_begun(&self) -> u64 {
        self.terms_seen.begun.load(Ordering::Relaxed)
    }

    /// The newest announcement known, and a receiver for changes.
    pub fn latest(&self) -> Option<Announcement> {
        self.latest.borrow().clone()
    }

    pub fn watch_latest(&self) -> watch::Receiver<Option<Announcement>> {
        self.latest.subscribe()
    }

    /// Records an announcement read from the topic; one newer than this worker's own term
    /// fences it at once.
    pub fn saw_announcement(&self, announcement: Announcement) {
        let epoch = announcement.epoch;
        self.terms_seen
            .saw(epoch, announcement.since_ms, announcement.resigned);
        let resigned = announcement.resigned;
        let newer = self.latest.send_if_modified(|latest| {
            if latest.as_ref().is_none_or(|l| l.epoch < epoch) {
                *latest = Some(announcement);
                true
            } else {
                false
            }
        });
        if newer && resigned {
            self.expect_handoff();
        }
        if self.is_leading() && epoch > self.epoch.load(Ordering::SeqCst) {
            self.lose_term(&format!("a newer leader announced itself (epoch {epoch})"));
        }
    }

    /// The leader is going (it resigned, or its process died): a new one is about to be
    /// elected.
    pub fn expect_handoff(&self) {
        self.handoffs.send_modify(|count| *count += 1);
    }

    /// Changes whenever [`Election::expect_handoff`] is called.
    pub fn watch_handoffs(&self) -> watch::Receiver<u64> {
        self.handoffs.subscribe()
    }

    /// Starts a term: called by the membership task once its announcement is acknowledged.
    fn begin_term(&self, epoch: i64) {
        self.terms_seen.saw(epoch, crate::clock::now_ms(), false);
        self.epoch.store(epoch, Ordering::SeqCst);
        *self.last_confirmed.lock().unwrap() = Instant::now();
        *self.last_attempt.lock().unwrap() = Instant::now();
        self.leading.store(true, Ordering::SeqCst);
        self.term.send_replace(Some(epoch));
    }

    /// Changes to `Some(epoch)` when this worker begins a term, to `None` when it ends.
    pub fn watch_term(&self) -> watch::Receiver<Option<i64>> {
        self.term.subscribe()
    }

    /// Stops acting as leader at once (partition 0 is being revoked, or the worker stands
    /// down). Returns the epoch of the term that ended, if one was held.
    fn end_term(&self) -> Option<i64> {
        let ended = self
            .leading
            .swap(false, Ordering::SeqCst)
            .then(|| self.epoch.load(Ordering::SeqCst));
        if ended.is_some() {
            self.term.send_replace(None);
        }
        ended
    }

    /// Ends the term because it can no longer be trusted, and asks the membership task to
    /// rejoin the group.
    fn lose_term(&self, reason: &str) {
        if let Some(epoch) = self.end_term() {
            tracing::warn!(
                "election {}: lost its term (epoch {epoch}): {reason}; it will not act as leader again in that term",
                self.name
            );
            let _ = self.control.send(Control::Rejoin);
        }
    }

    /// A local check that the term of `epoch` is still held and was confirmed within the
    /// session timeout: cheap enough to run right before a leader's records are produced.
    pub fn still_holds(&self, epoch: i64) -> bool {
        self.is_leading()
            && self.epoch.load(Ordering::SeqCst) == epoch
            && self.last_confirmed.lock().unwrap().elapsed() <= self.session_timeout
    }

    /// The producer a leader action of the current term sends with.
    pub fn term_producer(&self) -> Option<Arc<term_producer::TermProducer>> {
        self.term_producer.lock().unwrap().clone()
    }

    /// Replaces the term's producer; the previous one, for the caller to close.
    fn set_term_producer(
        &self,
        producer: Option<Arc<term_producer::TermProducer>>,
    ) -> Option<Arc<term_producer::TermProducer>> {
        std::mem::replace(&mut *self.term_producer.lock().unwrap(), producer)
    }

    /// The broker fenced this term's producer: a newer leader took over.
    pub fn fenced(&self, why: &str) {
        self.lose_term(why);
    }

    /// Asks this worker to stand down if it leads. Returns whether it led.
    pub fn stand_down(&self) -> bool {
        let led = self.is_leading();
        if led {
            let _ = self.control.send(Control::StandDown);
        }
        led
    }

    /// Confirms the term before a leader action; the epoch to act under, or `None` when this
    /// worker must not act as leader. See the module documentation for the checks.
    pub async fn confirm(self: &Arc<Self>) -> Option<i64> {
        if !self.is_leading() {
            return None;
        }
        let epoch = self.epoch.load(Ordering::SeqCst);
        let stalled = self.last_attempt.lock().unwrap().elapsed();
        if stalled > self.session_timeout {
            // The process was paused (SIGSTOP, swap, a long stall): the group may have given
            // partition 0 away meanwhile, and a newer leader may not have announced yet.
            self.lose_term(&format!(
                "{:.1}s since the term was last checked, longer than the session timeout ({:.1}s)",
                stalled.as_secs_f64(),
                self.session_timeout.as_secs_f64()
            ));
            return None;
        }
        let this = self.clone();
        let end = tokio::task::spawn_blocking(move || {
            let end = this
                .probe
                .fetch_watermarks(&this.topic, 0, Duration::from_secs(1))
                .map(|(_, high)| high);
            if end.is_err() {
                // The query goes to the partition leader in the client's metadata, which
                // nothing refreshes while that broker is down: without this, the leader stays
                // unconfirmed until the dead broker returns (measured: 23 s instead of 10).
                let _ = this
                    .probe
                    .fetch_metadata(Some(&this.topic), Duration::from_secs(1));
            }
            end
        })
        .await
        .ok()?;
        *self.last_attempt.lock().unwrap() = Instant::now();
        match end {
            Ok(high) if high == epoch + 1 && self.is_leading() => {
                *self.last_confirmed.lock().unwrap() = Instant::now();
                Some(epoch)
            }
            Ok(high) if high > epoch + 1 => {
                self.lose_term(&format!(
                    "a newer leader announced itself (epoch {})",
                    high - 1
                ));
                None
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(
                    "election {}: cannot confirm the term (epoch {epoch}): {e}; not acting as leader",
                    self.name
                );
                None
            }
        }
    }
}

/// Counts the terms this worker has seen begin: each term once, whether this worker read its
/// announcement or began it, and none that began before this worker started (the current
/// term's announcement, which every worker reads when it starts, is not a change).
struct TermsSeen {
    /// The newest epoch seen, begun or resigned.
    newest: AtomicI64,
    begun: AtomicU64,
    started_ms: i64,
}

impl TermsSeen {
    fn since(started_ms: i64) -> TermsSeen {
        TermsSeen {
            newest: AtomicI64::new(NO_EPOCH),
            begun: AtomicU64::new(0),
            started_ms,
        }
    }

    /// An announcement of `epoch`, made at `made_ms`: a term beginning unless `resigned`.
    fn saw(&self, epoch: i64, made_ms: i64, resigned: bool) {
        let previous = self.newest.fetch_max(epoch, Ordering::SeqCst);
        let new_term = epoch > previous && !resigned;
        if new_term && (previous != NO_EPOCH || made_ms >= self.started_ms) {
            self.begun.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_seen_count_each_new_term_once_and_not_the_one_found_at_start() {
        let seen = TermsSeen::since(1_000);
        seen.saw(4, 500, false); // the current term, read at start
        assert_eq!(seen.begun.load(Ordering::Relaxed), 0);
        seen.saw(4, 500, false); // read again
        seen.saw(9, 2_000, true); // its leader resigned: no term begins
        assert_eq!(seen.begun.load(Ordering::Relaxed), 0);
        seen.saw(12, 2_100, false); // the next leader
        seen.saw(12, 2_100, false); // its own view and the topic's: one term
        seen.saw(7, 2_200, false); // an older record read late
        assert_eq!(seen.begun.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_first_term_that_began_after_start_is_counted() {
        let seen = TermsSeen::since(1_000);
        seen.saw(0, 1_500, false);
        assert_eq!(seen.begun.load(Ordering::Relaxed), 1);
    }

    fn announcement(epoch: i64, resigned: bool) -> Announcement {
        Announcement {
            election: "leader".into(),
            worker: "h:1".into(),
            host: "h".into(),
            pid: 1,
            web_url: "http://h:6066/".into(),
            instance: "other".into(),
            member_id: String::new(),
            since_ms: 0,
            resigned,
            epoch,
        }
    }

    #[test]
    fn a_new_resignation_and_nothing_else_announces_a_handoff() {
        let mut config = rdkafka::ClientConfig::new();
        config.set("bootstrap.servers", "127.0.0.1:1");
        let probe = Arc::new(config.create_with_context(QuietLogs).expect("a client"));
        let (election, _control) =
            Election::new("leader", "t", true, Duration::from_secs(15), probe);
        let mut handoffs = election.watch_handoffs();
        election.saw_announcement(announcement(4, false));
        assert!(!handoffs.has_changed().unwrap(), "a term began");
        election.saw_announcement(announcement(5, true));
        assert!(handoffs.has_changed().unwrap(), "its leader resigned");
        handoffs.mark_unchanged();
        election.saw_announcement(announcement(5, true));
        assert!(
            !handoffs.has_changed().unwrap(),
            "the same resignation, read again"
        );
    }
}
