//! A candidate's membership in an election's consumer group. The group coordinator assigns the
//! election topic's one partition to exactly one member; this task turns that assignment into
//! a term: it announces itself, and gives the term up *before* the partition is revoked.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::{ClientConfig, ClientContext, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::announcement::Announcement;
use super::term_producer::TermProducer;
use super::{Control, Election};
use crate::clock::now_ms;
use crate::kafka::group;
use crate::kafka::producer::{Producer, Record};
use crate::kafka::wire::{MemberRemover, Removal};

/// What the rebalance callbacks tell the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Membership {
    Won,
    Lost,
    /// Any rebalance of the group: more may follow soon (members joining one after the other).
    Rebalanced,
}

struct MemberContext {
    election: Arc<Election>,
    events: mpsc::UnboundedSender<Membership>,
}

fn holds_the_partition(list: &TopicPartitionList) -> bool {
    list.elements().iter().any(|e| e.partition() == 0)
}

impl ClientContext for MemberContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        crate::kafka::logs::forward_quietly(level, facility, message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        crate::kafka::logs::forward_error(&error, reason);
    }
}

impl ConsumerContext for MemberContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance
            && holds_the_partition(list)
        {
            // Stop acting before the partition can be given to someone else.
            // A term this worker gave up itself (stand-down, shutdown) has already ended; one
            // still running here is being taken away.
            if let Some(epoch) = self.election.end_term() {
                tracing::warn!(
                    "election {}: lost its term (epoch {epoch}): the group revoked its partition{}",
                    self.election.name,
                    if consumer.assignment_lost() {
                        " (membership lost)"
                    } else {
                        ""
                    }
                );
            }
            let _ = self.events.send(Membership::Lost);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let _ = self.events.send(Membership::Rebalanced);
        if let Rebalance::Assign(list) = rebalance
            && holds_the_partition(list)
        {
            let _ = self.events.send(Membership::Won);
        }
    }
}

type MemberConsumer = StreamConsumer<MemberContext>;

/// One turn of the membership loop.
enum Step {
    Stop,
    Control(Control),
    Membership(Membership),
    Confirm,
    Pump,
    HandoffExpected,
    Polled,
}

/// Who this worker is, for its announcements.
#[derive(Debug, Clone)]
pub struct Identity {
    pub worker: String,
    pub host: String,
    pub web_url: String,
    /// This process, as its web server's `GET /alive` names it.
    pub instance: String,
}

/// The Kafka clients a candidacy uses.
pub struct Clients {
    /// The election group's consumer.
    pub consumer: ClientConfig,
    /// The election heartbeat interval, the [`Pump`]'s unit.
    pub heartbeat_interval: Duration,
    /// The term's transactional producer (`transactional.id` set).
    pub term_producer: ClientConfig,
    /// Announcements and resignations (not transactional: the election topic's end offset
    /// must be the newest announcement's offset + 1).
    pub announcer: Producer,
    /// Removes this worker's replaced member ids from the group (see
    /// [`Candidacy::notice_replaced_member`]); `None` where that cannot be done.
    pub remover: Option<Arc<MemberRemover>>,
}

/// Hooks the membership task calls; they run on their own tasks.
pub trait TermHooks: Send + Sync {
    fn elected(&self, election: &Arc<Election>, epoch: i64);
    fn revoked(&self, election: &Arc<Election>, epoch: i64);
}

/// Runs this worker's candidacy until `stop` is cancelled; then leaves the group, so the next
/// leader is elected at once rather than after the session timeout.
pub async fn run(
    election: Arc<Election>,
    clients: Clients,
    identity: Identity,
    hooks: Arc<dyn TermHooks>,
    control: mpsc::UnboundedReceiver<Control>,
    stop: CancellationToken,
) {
    let mut candidacy = Candidacy {
        // Three confirmations per session timeout while leading: one late or failed
        // confirmation does not end a term, a stall longer than the session timeout always does.
        confirmations: ticker(election.session_timeout / 3),
        pump: Pump::new(clients.heartbeat_interval),
        handoffs: election.watch_handoffs(),
        election,
        clients,
        identity,
        hooks,
        control,
        stop,
        held: None,
    };
    loop {
        let Some((consumer, events)) = candidacy.join() else {
            return;
        };
        let ending = candidacy.serve(&consumer, events).await;
        candidacy.leave(consumer).await;
        match ending {
            None => return,
            Some(Control::StandDown) => {
                if !candidacy.wait_to_rejoin().await {
                    return;
                }
            }
            Some(Control::Rejoin) => {}
        }
        candidacy.held = None;
    }
}

/// One worker's candidacy in one election, across the group memberships it takes.
struct Candidacy {
    election: Arc<Election>,
    clients: Clients,
    identity: Identity,
    hooks: Arc<dyn TermHooks>,
    control: mpsc::UnboundedReceiver<Control>,
    stop: CancellationToken,
    confirmations: tokio::time::Interval,
    pump: Pump,
    /// Signs that the leader is going, which speed the pump up.
    handoffs: tokio::sync::watch::Receiver<u64>,
    /// The epoch of the term won in the current membership.
    held: Option<i64>,
}

impl Candidacy {
    /// Creates the election consumer and joins the group.
    fn join(&self) -> Option<(MemberConsumer, mpsc::UnboundedReceiver<Membership>)> {
        let election = &self.election;
        let (events_tx, events) = mpsc::unbounded_channel();
        let context = MemberContext {
            election: election.clone(),
            events: events_tx,
        };
        let consumer: MemberConsumer = match self.clients.consumer.create_with_context(context) {
            Ok(consumer) => consumer,
            Err(e) => {
                let name = &election.name;
                tracing::error!("election {name}: cannot create its consumer: {e}");
                return None;
            }
        };
        if let Err(e) = consumer.subscribe(&[&election.topic]) {
            tracing::error!("election {}: cannot join: {e}", election.name);
            return None;
        }
        Some((consumer, events))
    }

    /// Serves one membership until it must end: `None` to stop, else what to do next.
    async fn serve(
        &mut self,
        consumer: &MemberConsumer,
        mut events: mpsc::UnboundedReceiver<Membership>,
    ) -> Option<Control> {
        let election = self.election.clone();
        // The next term's producer, created ahead (one term, one producer).
        let mut prepared = self.prepare();
        // This membership's member id, as last seen.
        let mut member = String::new();
        // Joining starts rebalances, and others may be joining too.
        self.pump.alert();
        loop {
            // Only plain values leave the select: a polled message borrows librdkafka's
            // buffers and must not live across the awaits below.
            let step = tokio::select! {
                biased;
                _ = self.stop.cancelled() => Step::Stop,
                Some(request) = self.control.recv() => Step::Control(request),
                Some(event) = events.recv() => Step::Membership(event),
                _ = self.confirmations.tick(), if self.held.is_some() => Step::Confirm,
                _ = self.pump.tick() => Step::Pump,
                Ok(()) = self.handoffs.changed() => Step::HandoffExpected,
                // Polling serves the rebalance callbacks; the records themselves
                // (announcements) are read by the observer.
                message = consumer.recv() => {
                    if let Err(e) = message {
                        tracing::debug!("election {}: {e}", election.name);
                    }
                    Step::Polled
                }
            };
            match step {
                Step::Stop => return None,
                Step::Control(request) => return Some(request),
                Step::Polled => {}
                Step::HandoffExpected => self.pump.kick(),
                // Any request to the consumer's group handler wakes librdkafka's main thread,
                // which then sends the heartbeat if one is due.
                Step::Pump => {
                    drop(consumer.assignment());
                    self.notice_replaced_member(consumer, &mut member);
                }
                // Keeps the term confirmed between leader ticks (a timer may tick less often
                // than the session timeout) and notices a stall or a newer leader promptly.
                Step::Confirm => drop(election.confirm().await),
                Step::Membership(Membership::Won) => {
                    let member_id = group::member_id(consumer).unwrap_or_default();
                    if self.start_term(prepared.take(), member_id).await.is_err() {
                        return Some(Control::Rejoin);
                    }
                }
                Step::Membership(Membership::Rebalanced) => self.pump.alert(),
                Step::Membership(Membership::Lost) => {
                    close_term_producer(&election).await;
                    prepared = self.prepare();
                    if let Some(epoch) = self.held.take() {
                        self.hooks.revoked(&election, epoch);
                    }
                }
            }
        }
    }

    /// librdkafka drops its member id when its session times out without a word from the
    /// coordinator — as when the coordinator's broker dies — and joins again under a new id.
    /// The coordinator that takes over still lists the old member, and would wait a session
    /// timeout for it to rejoin before electing anyone (measured: 15–30 s without a leader
    /// after a coordinator's `kill -9`). So once the new member id exists (the group is not
    /// left empty, which would delay the next rebalance), the old one is removed.
    fn notice_replaced_member(&self, consumer: &MemberConsumer, known: &mut String) {
        let current = group::member_id(consumer).unwrap_or_default();
        if current.is_empty() || current == *known {
            return;
        }
        let replaced = std::mem::replace(known, current);
        let Some(remover) = self
            .clients
            .remover
            .clone()
            .filter(|_| !replaced.is_empty())
        else {
            return;
        };
        let name = self.election.name.clone();
        let patience = self.election.session_timeout;
        tokio::spawn(async move {
            let reason = "faust-rs: this worker rejoined under a new member id".to_string();
            match remover.remove(replaced.clone(), reason, patience).await {
                Ok(Removal::Removed) => tracing::info!(
                    "election {name}: removed this worker's replaced member {replaced} from the group"
                ),
                Ok(Removal::AlreadyGone) => {}
                Err(e) => tracing::debug!(
                    "election {name}: cannot remove this worker's replaced member: {e}"
                ),
            }
        });
    }

    fn prepare(&self) -> Option<crate::kafka::producer::KafkaProducer> {
        TermProducer::prepare(&self.clients.term_producer, &self.election.topic).ok()
    }

    /// Turns the assignment of the partition into a term: fences the previous leader's
    /// producer, then announces. `Err` (logged) when either fails: rejoin.
    async fn start_term(
        &mut self,
        prepared: Option<crate::kafka::producer::KafkaProducer>,
        member_id: String,
    ) -> Result<(), ()> {
        let election = &self.election;
        let won_at = std::time::Instant::now();
        tracing::debug!("election {}: assigned the partition", election.name);
        // Fence first: once this term is announced, nothing the old leader still had queued
        // can be committed.
        let opened = match prepared {
            Some(producer) => TermProducer::fence(producer, &election.topic).await,
            None => TermProducer::open(&self.clients.term_producer, &election.topic).await,
        };
        let fenced_at = std::time::Instant::now();
        let producer = opened.map_err(|e| {
            tracing::error!("election {}: {e}; rejoining", election.name);
        })?;
        // The partition cannot move on while this awaits: the rebalance callbacks run only
        // when this task polls the consumer.
        let announced = append(
            election,
            &self.clients.announcer,
            &self.identity,
            &member_id,
            false,
        )
        .await;
        let epoch = announced.map_err(|e| {
            tracing::error!(
                "election {}: cannot announce: {e}; rejoining",
                election.name
            );
        })?;
        election.set_term_producer(Some(Arc::new(producer)));
        election.begin_term(epoch);
        self.held = Some(epoch);
        tracing::info!(
            "election {}: this worker leads (epoch {epoch})",
            election.name
        );
        tracing::debug!(
            "election {}: fencing took {} ms, announcing {} ms",
            election.name,
            (fenced_at - won_at).as_millis(),
            fenced_at.elapsed().as_millis()
        );
        self.hooks.elected(election, epoch);
        Ok(())
    }

    /// Gives up the term (recording the resignation) and leaves the group.
    async fn leave(&mut self, consumer: MemberConsumer) {
        let election = &self.election;
        if let Some(epoch) = election.end_term() {
            tracing::info!(
                "election {}: gave up its term (epoch {epoch})",
                election.name
            );
            self.record_resignation().await;
        }
        if let Some(epoch) = self.held {
            self.hooks.revoked(election, epoch);
        }
        // Leave the group explicitly and make sure the LeaveGroup goes out: closing alone
        // sends none for a cooperative member that holds no partition (a follower), nor for one
        // still joining a rebalance (see `kafka::group`). The group would then wait a whole
        // session timeout for it, with no leader meanwhile if the leader leaves too: 6.0 s
        // without a leader in 3 of 8 static rolling restarts before `group::leave`, none in 17
        // since. Closing blocks until the group acknowledges, so it runs off the async threads.
        consumer.unsubscribe();
        let name = format!("election {}", election.name);
        let _ = group::leave(&consumer, election.session_timeout, &name).await;
        let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
        // The hand-off is done; only now close the term's producer (which can take a moment).
        close_term_producer(election).await;
    }

    /// Says on the topic that the term ended, so `faust-rs leader` and the other workers stop
    /// naming this worker before a successor announces itself. Written before leaving the
    /// group, so it always precedes the successor's announcement. Best effort: a failure only
    /// delays the news until the successor's announcement.
    async fn record_resignation(&self) {
        let name = &self.election.name;
        let resignation = append(
            &self.election,
            &self.clients.announcer,
            &self.identity,
            "",
            true,
        );
        match tokio::time::timeout(std::time::Duration::from_secs(1), resignation).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("election {name}: cannot record the resignation: {e}"),
            Err(_) => tracing::warn!("election {name}: recording the resignation timed out"),
        }
    }

    /// After a stand-down: waits until another candidate has announced itself (rejoining at
    /// once could win the partition straight back in the rebalance our leaving started) or,
    /// with no other candidate, a session timeout. `false` when the candidacy must stop.
    async fn wait_to_rejoin(&self) -> bool {
        let election = &self.election;
        tracing::info!("election {}: stood down; still a candidate", election.name);
        let old = self.held.unwrap_or(-1);
        let mut latest = election.watch_latest();
        tokio::select! {
            _ = self.stop.cancelled() => false,
            _ = latest.wait_for(|l| l.as_ref().is_some_and(|a| a.epoch > old && !a.resigned)) => true,
            _ = tokio::time::sleep(election.session_timeout) => true,
        }
    }
}

fn ticker(period: Duration) -> tokio::time::Interval {
    ticker_from(tokio::time::Instant::now(), period)
}

/// A ticker whose first tick is at `first`, then every `period`; a late tick delays the rest.
fn ticker_from(first: tokio::time::Instant, period: Duration) -> tokio::time::Interval {
    let mut ticker = tokio::time::interval_at(first, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker
}

/// Wakes librdkafka's group handler, which is when the election consumer heartbeats.
///
/// librdkafka sends a classic-protocol heartbeat only when its main thread wakes up and finds
/// one due (librdkafka issue #1005: the group is served once per main-loop turn, not by a
/// timer), and an idle consumer's main thread wakes every 0.5–1 s: with
/// `heartbeat.interval.ms=100` alone, heartbeats went 0.13–0.5 s apart, and the other
/// candidates learned of a leader's leaving up to half a second late. So the election
/// consumer's `heartbeat.interval.ms` is tiny (see `worker::leadership`) and this pump decides
/// when heartbeats go:
///
/// - every heartbeat interval for [`ALERTED_FOR`] after a sign that the group is changing:
///   this member joined, or a rebalance ran (members join one after the other);
/// - [`KICK_AFTER`] after a sign that the leader is going — its resignation read from the
///   topic, or its process found dead, which every candidate sees within milliseconds — and
///   then every interval: the first heartbeat after the leader's LeaveGroup learns of the
///   rebalance;
/// - otherwise every [`STEADY_INTERVALS`] intervals (1 s by default), which keeps the
///   membership alive and notices a lone join (which does not move the term) within a second.
///
/// Measured (`bench/failover.py`, `bench/idle.sh`), against poking eight times per interval
/// all the time: an idle worker 1.8 → 0.5 % of a core; hand-off medians with 3 workers TERM
/// 0.10 → 0.024–0.088 s, KILL 0.18 → 0.05 s, stand-down 0.08 → 0.034–0.038 s (two runs).
/// With 50 workers started together and the leader stopped seconds later, TERM medians of
/// 0.17 and 0.46 s in two runs (0.27 s before): the group is often still converging then.
/// Alerting on resignations alone left 50 fresh workers converging for longer (0.72 s).
struct Pump {
    steady: Duration,
    alerted: Duration,
    alerted_until: Option<tokio::time::Instant>,
    ticker: tokio::time::Interval,
}

/// How long the pump stays fast after a sign that the group is changing: a rebalance of the
/// election group takes tens of milliseconds when every candidate heartbeats on time.
const ALERTED_FOR: Duration = Duration::from_secs(3);
/// The steady pump's period, in heartbeat intervals.
const STEADY_INTERVALS: u32 = 10;
/// How long after a sign that the leader is going the next heartbeat goes: about when its
/// LeaveGroup (sent right after its resignation is acknowledged) is in.
const KICK_AFTER: Duration = Duration::from_millis(10);

impl Pump {
    fn new(heartbeat_interval: Duration) -> Pump {
        let steady = heartbeat_interval * STEADY_INTERVALS;
        Pump {
            steady,
            alerted: heartbeat_interval,
            alerted_until: None,
            ticker: ticker(steady),
        }
    }

    async fn tick(&mut self) {
        self.ticker.tick().await;
        if self
            .alerted_until
            .is_some_and(|until| tokio::time::Instant::now() >= until)
        {
            self.alerted_until = None;
            self.ticker = ticker(self.steady);
        }
    }

    /// The group is changing: heartbeat every interval for a while.
    fn alert(&mut self) {
        if self.alerted_until.is_none() {
            self.restart(self.alerted);
        }
        self.alerted_until = Some(tokio::time::Instant::now() + ALERTED_FOR);
    }

    /// The leader is going: heartbeat right after its LeaveGroup, then every interval.
    fn kick(&mut self) {
        self.restart(KICK_AFTER);
        self.alerted_until = Some(tokio::time::Instant::now() + ALERTED_FOR);
    }

    fn restart(&mut self, first_after: Duration) {
        self.ticker = ticker_from(tokio::time::Instant::now() + first_after, self.alerted);
    }
}

/// Drops the term's transactional producer off the async threads (closing it may block).
async fn close_term_producer(election: &Election) {
    if let Some(producer) = election.set_term_producer(None) {
        let _ = tokio::task::spawn_blocking(move || drop(producer)).await;
    }
}

/// Appends this worker's announcement (its offset is the epoch), naming its `member_id` in the
/// group, or, with `resigned`, the record that its term ended by its own choice.
async fn append(
    election: &Election,
    announcer: &Producer,
    identity: &Identity,
    member_id: &str,
    resigned: bool,
) -> Result<i64, String> {
    let announcement = Announcement {
        resigned,
        election: election.name.clone(),
        worker: identity.worker.clone(),
        host: identity.host.clone(),
        pid: std::process::id(),
        web_url: identity.web_url.clone(),
        instance: identity.instance.clone(),
        member_id: member_id.to_string(),
        since_ms: now_ms(),
        epoch: 0,
    };
    let record = Record {
        topic: election.topic.clone(),
        partition: Some(0),
        key: Some(election.name.as_bytes().to_vec()),
        value: Some(announcement.encode()),
    };
    let pending = announcer.send(&record, &[]).await?;
    let delivery = pending.delivered().await?;
    Ok(delivery.offset)
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;

    async fn gap(pump: &mut Pump) -> Duration {
        let before = Instant::now();
        pump.tick().await;
        before.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn the_pump_is_fast_only_for_a_while_after_the_group_changes() {
        let mut pump = Pump::new(Duration::from_millis(100));
        pump.tick().await; // an interval's first tick is at once
        assert_eq!(gap(&mut pump).await, Duration::from_secs(1), "steady");
        pump.alert();
        assert_eq!(gap(&mut pump).await, Duration::from_millis(100), "alerted");
        pump.kick(); // the leader is going: a heartbeat at once, then every interval
        assert_eq!(gap(&mut pump).await, KICK_AFTER);
        assert_eq!(gap(&mut pump).await, Duration::from_millis(100));
        let started = Instant::now();
        while gap(&mut pump).await < Duration::from_secs(1) {
            assert!(started.elapsed() <= ALERTED_FOR + Duration::from_millis(100));
        }
        assert!(
            started.elapsed() >= ALERTED_FOR - Duration::from_millis(100),
            "fast for the whole window"
        );
    }
}
