//! A candidate's membership in an election's consumer group. The group coordinator assigns the
//! election topic's one partition to exactly one member; this task turns that assignment into
//! a term: it announces itself, and gives the term up *before* the partition is revoked.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::{ClientConfig, ClientContext, TopicPartitionList};
use tokio::sync::{mpsc, watch};

use super::announcement::Announcement;
use super::term_producer::TermProducer;
use super::{Control, Election};
use crate::clock::now_ms;
use crate::kafka::group;
use crate::worker::sender::Sender;

/// What the rebalance callbacks tell the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Membership {
    Won,
    Lost,
}

struct MemberContext {
    election: Arc<Election>,
    events: mpsc::UnboundedSender<Membership>,
    /// Bumped on every revocation, so an announcement acknowledged after the partition moved
    /// on is not taken for a term.
    revocations: Arc<AtomicU64>,
}

fn holds_the_partition(list: &TopicPartitionList) -> bool {
    list.elements().iter().any(|e| e.partition() == 0)
}

impl ClientContext for MemberContext {}

impl ConsumerContext for MemberContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance
            && holds_the_partition(list)
        {
            // Stop acting before the partition can be given to someone else.
            self.revocations.fetch_add(1, Ordering::SeqCst);
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
    Polled,
}

/// Who this worker is, for its announcements.
#[derive(Debug, Clone)]
pub struct Identity {
    pub worker: String,
    pub host: String,
    pub web_url: String,
}

/// The Kafka clients a candidacy uses.
pub struct Clients {
    /// The election group's consumer.
    pub consumer: ClientConfig,
    /// Its `heartbeat.interval.ms`, which [`heartbeat_pump`] keeps to.
    pub heartbeat_interval: Duration,
    /// The term's transactional producer (`transactional.id` set).
    pub term_producer: ClientConfig,
    /// Announcements and resignations (not transactional: the election topic's end offset
    /// must be the newest announcement's offset + 1).
    pub sender: Sender,
}

/// Hooks the membership task calls; they run on their own tasks.
pub trait TermHooks: Send + Sync {
    fn elected(&self, election: &Arc<Election>, epoch: i64);
    fn revoked(&self, election: &Arc<Election>, epoch: i64);
}

/// Runs this worker's candidacy until `stop` turns true; then leaves the group, so the next
/// leader is elected at once rather than after the session timeout.
pub async fn run(
    election: Arc<Election>,
    clients: Clients,
    identity: Identity,
    hooks: Arc<dyn TermHooks>,
    mut control: mpsc::UnboundedReceiver<Control>,
    mut stop: watch::Receiver<bool>,
) {
    let revocations = Arc::new(AtomicU64::new(0));
    // Three confirmations per session timeout while leading: one late or failed confirmation
    // does not end a term, a stall longer than the session timeout always does.
    let mut confirmations = tokio::time::interval(election.session_timeout / 3);
    confirmations.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pump = heartbeat_pump(clients.heartbeat_interval);
    'membership: loop {
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let context = MemberContext {
            election: election.clone(),
            events: events_tx,
            revocations: revocations.clone(),
        };
        let consumer: MemberConsumer = match clients.consumer.create_with_context(context) {
            Ok(consumer) => consumer,
            Err(e) => {
                tracing::error!(
                    "election {}: cannot create its consumer: {e}",
                    election.name
                );
                return;
            }
        };
        if let Err(e) = consumer.subscribe(&[&election.topic]) {
            tracing::error!("election {}: cannot join: {e}", election.name);
            return;
        }
        let mut held: Option<i64> = None;
        // The next term's producer, created ahead (one term, one producer).
        let mut prepared = TermProducer::prepare(&clients.term_producer, &election.topic).ok();
        let ending = loop {
            // Only plain values leave the select: a polled message borrows librdkafka's
            // buffers and must not live across the awaits below.
            let step = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => Step::Stop,
                Some(request) = control.recv() => Step::Control(request),
                Some(event) = events.recv() => Step::Membership(event),
                _ = confirmations.tick(), if held.is_some() => Step::Confirm,
                _ = pump.tick() => Step::Pump,
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
                Step::Stop => break None,
                Step::Control(request) => break Some(request),
                Step::Polled => {}
                Step::Pump => {
                    // Any request to the consumer's group handler wakes librdkafka's main
                    // thread, which then sends the heartbeat if one is due.
                    let _ = consumer.assignment();
                }
                // Keeps the term confirmed between leader ticks (a timer may tick less often
                // than the session timeout) and notices a stall or a newer leader promptly.
                Step::Confirm => {
                    election.confirm().await;
                }
                Step::Membership(Membership::Won) => {
                    let won_at = std::time::Instant::now();
                    tracing::debug!("election {}: assigned the partition", election.name);
                    let before = revocations.load(Ordering::SeqCst);
                    // Fence the previous leader's producer first: once this term is announced,
                    // nothing the old leader still had queued can be committed.
                    let opened = match prepared.take() {
                        Some(producer) => {
                            TermProducer::fence(producer, &clients.sender, &election.topic).await
                        }
                        None => {
                            TermProducer::open(
                                &clients.term_producer,
                                &clients.sender,
                                &election.topic,
                            )
                            .await
                        }
                    };
                    let fenced_at = std::time::Instant::now();
                    let producer = match opened {
                        Ok(producer) => Arc::new(producer),
                        Err(e) => {
                            tracing::error!("election {}: {e}; rejoining", election.name);
                            break Some(Control::Rejoin);
                        }
                    };
                    match append(&election, &clients.sender, &identity, false).await {
                        Ok(epoch) if revocations.load(Ordering::SeqCst) == before => {
                            election.set_term_producer(Some(producer));
                            election.begin_term(epoch);
                            held = Some(epoch);
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
                            hooks.elected(&election, epoch);
                        }
                        Ok(epoch) => tracing::info!(
                            "election {}: partition moved on while announcing epoch {epoch}; no term",
                            election.name
                        ),
                        Err(e) => {
                            tracing::error!(
                                "election {}: cannot announce: {e}; rejoining",
                                election.name
                            );
                            break Some(Control::Rejoin);
                        }
                    }
                }
                Step::Membership(Membership::Lost) => {
                    close_term_producer(&election).await;
                    prepared = TermProducer::prepare(&clients.term_producer, &election.topic).ok();
                    if let Some(epoch) = held.take() {
                        hooks.revoked(&election, epoch);
                    }
                }
            }
        };
        if let Some(epoch) = election.end_term() {
            tracing::info!(
                "election {}: gave up its term (epoch {epoch})",
                election.name
            );
            // Say so on the topic, so `faust-rs leader` and the other workers stop naming this
            // worker before a successor announces itself. Written before leaving the group, so
            // it always precedes the successor's announcement. Best effort: a failure only
            // delays the news until the successor's announcement.
            let resignation = append(&election, &clients.sender, &identity, true);
            match tokio::time::timeout(std::time::Duration::from_secs(1), resignation).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(
                    "election {}: cannot record the resignation: {e}",
                    election.name
                ),
                Err(_) => tracing::warn!(
                    "election {}: recording the resignation timed out",
                    election.name
                ),
            }
        }
        if let Some(epoch) = held {
            hooks.revoked(&election, epoch);
        }
        // Leave the group explicitly and make sure the LeaveGroup goes out: closing alone
        // sends none for a cooperative member that holds no partition (a follower), nor for one
        // still joining a rebalance (see `kafka::group`). The group would then wait a whole
        // session timeout for it, with no leader meanwhile if the leader leaves too: 6.0 s
        // without a leader in 3 of 8 static rolling restarts before `group::leave`, none in 17
        // since. Closing blocks until the group acknowledges, so it runs off the async threads.
        consumer.unsubscribe();
        let _ = group::leave(
            &consumer,
            election.session_timeout,
            &format!("election {}", election.name),
        )
        .await;
        let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
        // The hand-off is done; only now close the term's producer (which can take a moment).
        close_term_producer(&election).await;
        match ending {
            None => return,
            Some(Control::StandDown) => {
                tracing::info!("election {}: stood down; still a candidate", election.name);
                // Rejoin once another candidate has announced itself: rejoining at once could
                // win the partition straight back in the rebalance our leaving started. With no
                // other candidate, nobody announces, and we rejoin after a session timeout.
                let old = held.unwrap_or(-1);
                let mut latest = election.watch_latest();
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    _ = latest.wait_for(|l| l.as_ref().is_some_and(|a| a.epoch > old && !a.resigned)) => {}
                    _ = tokio::time::sleep(election.session_timeout) => {}
                }
                continue 'membership;
            }
            Some(Control::Rejoin) => continue 'membership,
        }
    }
}

/// A ticker that makes the election consumer's heartbeats keep to `heartbeat_interval`.
///
/// librdkafka sends a classic-protocol heartbeat only when its main thread wakes up and finds
/// one due (librdkafka issue #1005: the group is served once per main-loop turn, not by a
/// timer), and an idle consumer's main thread wakes every 0.5–1 s. Measured on a consumer with
/// `heartbeat.interval.ms=100`: heartbeats 0.13–0.5 s apart, so the other candidates learned of
/// a leader's leaving up to half a second late. Poking the group handler eight times per
/// interval keeps heartbeats within 1.125 intervals of each other (100–125 ms measured).
fn heartbeat_pump(heartbeat_interval: Duration) -> tokio::time::Interval {
    let period = (heartbeat_interval / 8).max(Duration::from_millis(5));
    let mut pump = tokio::time::interval(period);
    pump.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    pump
}

/// Drops the term's transactional producer off the async threads (closing it may block).
async fn close_term_producer(election: &Election) {
    if let Some(producer) = election.set_term_producer(None) {
        let _ = tokio::task::spawn_blocking(move || drop(producer)).await;
    }
}

/// Appends this worker's announcement (its offset is the epoch) or, with `resigned`, the
/// record that its term ended by its own choice.
async fn append(
    election: &Election,
    sender: &Sender,
    identity: &Identity,
    resigned: bool,
) -> Result<i64, String> {
    let announcement = Announcement {
        resigned,
        election: election.name.clone(),
        worker: identity.worker.clone(),
        host: identity.host.clone(),
        pid: std::process::id(),
        web_url: identity.web_url.clone(),
        since_ms: now_ms(),
        epoch: 0,
    };
    let pending = sender
        .send_bytes(
            &election.topic,
            Some(0),
            Some(election.name.as_bytes()),
            Some(&announcement.encode()),
            &[],
        )
        .await?;
    let delivery = pending.delivered().await?;
    Ok(delivery.offset)
}
