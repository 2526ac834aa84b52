//! Timers, crontabs and start-up tasks. A timer never overlaps itself (one task runs it in a
//! loop), its ticks stay on the grid laid at start (no drift over hours; ticks missed while a
//! run overran are skipped, not bunched up), and a failing body is logged and counted while the
//! timer keeps its schedule — unlike Faust, where an exception in a timer ends the worker.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::app::{App, Body, Schedule, Timer};
use crate::clock::now_ms;
use crate::election::Election;
use crate::election::term_producer::TermSendError;
use crate::kafka::producer::{Producer, Record};
use crate::script::{EPOCH_HEADER, Host, Outcome, ScriptEngine, TableAccess, encode_epoch};
use crate::worker::pool::EvalPool;
use crate::worker::state::{TimerCounters, WorkerState};

/// What a timer, task or hook body needs to run.
#[derive(Clone)]
pub struct BodyRunner {
    pub app: Arc<App>,
    pub engine: Arc<ScriptEngine>,
    pub host: Arc<dyn Host>,
    pub producer: Producer,
    pub pool: Arc<EvalPool>,
    /// What the bodies read of the tables (they write none).
    pub tables: Arc<dyn TableAccess>,
}

impl BodyRunner {
    /// Runs a body that has no incoming event and waits until what it sent is acknowledged.
    ///
    /// A body run as leader passes its term: every record it sends carries the term's epoch in
    /// the `faust-rs-epoch` header, so consumers can tell a stale leader's records, and the
    /// term is checked again (locally, without a broker round trip) after the body ran and
    /// just before its records are produced, so a worker paused mid-tick drops them.
    pub async fn run(&self, body: &Body, term: Option<(&Election, i64)>) -> Result<usize, String> {
        let outcome = self.evaluate(body).await?;
        if let Some((election, epoch)) = term
            && !election.still_holds(epoch)
        {
            return Err(format!(
                "the term (epoch {epoch}) of election {} ended while the body ran: its {} records were not sent",
                election.name,
                outcome.sends.len()
            ));
        }
        let records = outcome
            .sends
            .iter()
            .map(|record| self.app.encode(record))
            .collect::<Result<Vec<Record>, String>>()?;
        let epoch_value = term.map(|(_, epoch)| encode_epoch(epoch));
        let headers: Vec<(&str, &[u8])> = epoch_value
            .iter()
            .map(|v| (EPOCH_HEADER, v.as_slice()))
            .collect();
        if let Some((election, epoch)) = term {
            // A leader's records go out in one transaction of the term's fenced producer.
            let producer = election.term_producer().ok_or_else(|| {
                format!(
                    "the term (epoch {epoch}) of election {} has no producer",
                    election.name
                )
            })?;
            return producer.send_all(&records, &headers).await.map_err(|e| {
                if let TermSendError::Fenced(why) = &e {
                    election.fenced(why);
                }
                e.to_string()
            });
        }
        let mut pending = Vec::with_capacity(records.len());
        for record in &records {
            pending.push(self.producer.send(record, &headers).await?);
        }
        let sent = pending.len();
        for p in pending {
            p.delivered().await?;
        }
        Ok(sent)
    }

    /// Runs a body on the evaluation pool (never on the async runtime's threads).
    async fn evaluate(&self, body: &Body) -> Result<Outcome, String> {
        let (script, engine, host) = (body.script.clone(), self.engine.clone(), self.host.clone());
        let tables = self.tables.clone();
        self.pool
            .run(move || script.run_with_tables(&engine, &host, None, tables))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }
}

/// Runs `timer` until `stop` turns true. A timer bound to an election runs only while this
/// worker leads it, and only after confirming its term just before each tick.
pub async fn run_timer(
    runner: BodyRunner,
    state: Arc<WorkerState>,
    timer_index: usize,
    election: Option<Arc<Election>>,
    stop: CancellationToken,
) {
    let timer: &Timer = &runner.app.timers[timer_index];
    let counters = state.timer(&timer.name);
    let mut next_tick = match &timer.schedule {
        // Faust's semantics: the first run one interval after start.
        Schedule::Interval(every) => Ticks::Interval {
            next: Instant::now() + *every,
            every: *every,
        },
        Schedule::Cron { .. } => Ticks::Cron,
    };
    let mut term = election.as_ref().map(|e| e.watch_term());
    // An interval tick skipped because this worker held no term. When a term begins before
    // the next one is due, the timer fires at once and starts a new grid from there: a new
    // leader picks up the beat instead of leaving it unplayed for up to one more interval.
    // (Cron timers don't catch up: the skipped time may well have run on the old leader.)
    // `Some(term at the time)` after such a skip: only a term other than that one counts.
    let mut missed_tick: Option<Option<i64>> = None;
    loop {
        let wait = next_tick.wait(&timer.schedule, counters);
        let term_began = async {
            match (term.as_mut(), missed_tick) {
                (Some(term), Some(then)) => {
                    let _ = term.wait_for(|now| now.is_some() && *now != then).await;
                }
                _ => std::future::pending().await,
            }
        };
        let due = tokio::select! {
            _ = stop.cancelled() => return,
            due = wait => match due {
                Some(due) => due,
                None => {
                    tracing::warn!("timer {}: its schedule has no future time; it will not run again", timer.name);
                    return;
                }
            },
            _ = term_began => {
                next_tick.restart();
                Instant::now()
            }
        };
        let term = match &election {
            Some(election) => match election.confirm().await {
                Some(epoch) => Some((election.as_ref(), epoch)),
                None => {
                    tracing::debug!(
                        "timer {}: not the leader of election {}; tick skipped",
                        timer.name,
                        election.name
                    );
                    counters.skipped_not_leader.fetch_add(1, Ordering::Relaxed);
                    if matches!(next_tick, Ticks::Interval { .. }) {
                        missed_tick = Some(*election.watch_term().borrow());
                    }
                    continue;
                }
            },
            None => None,
        };
        missed_tick = None;
        counters.lateness.observe(due.elapsed());
        counters.runs.fetch_add(1, Ordering::Relaxed);
        counters.last_run_ms.store(now_ms(), Ordering::Relaxed);
        counters.running.store(true, Ordering::Relaxed);
        let result = runner.run(&timer.body, term).await;
        counters.running.store(false, Ordering::Relaxed);
        if let Err(e) = result {
            counters.failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!("timer {} failed: {e}; it keeps its schedule", timer.name);
        }
    }
}

/// When a timer fires next.
enum Ticks {
    /// On the grid `start + k * every`: no drift however long it runs; ticks missed while a
    /// run overran are skipped, not bunched up.
    Interval {
        next: Instant,
        every: Duration,
    },
    Cron,
}

impl Ticks {
    /// Lays the interval grid anew from now: the next tick one interval from now.
    fn restart(&mut self) {
        if let Ticks::Interval { next, every } = self {
            *next = Instant::now() + *every;
        }
    }

    /// Sleeps until the next tick, recording when that is in `counters`; returns the time the
    /// tick was due, or `None` when the schedule has no next tick.
    async fn wait(&mut self, schedule: &Schedule, counters: &TimerCounters) -> Option<Instant> {
        match self {
            Ticks::Interval { next, every } => {
                let wall =
                    now_ms() + next.saturating_duration_since(Instant::now()).as_millis() as i64;
                counters.next_run_ms.store(wall, Ordering::Relaxed);
                let due = *next;
                tokio::time::sleep_until(due).await;
                let now = Instant::now();
                *next += *every;
                if *next <= now {
                    let behind = (now - *next).as_nanos() / every.as_nanos().max(1);
                    *next += every.saturating_mul(u32::try_from(behind + 1).unwrap_or(u32::MAX));
                }
                Some(due)
            }
            Ticks::Cron => {
                let next = schedule.next_after(Utc::now())?;
                counters
                    .next_run_ms
                    .store(next.timestamp_millis(), Ordering::Relaxed);
                let delay = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                let due = Instant::now() + delay;
                tokio::time::sleep_until(due).await;
                Some(due)
            }
        }
    }
}

/// Runs the start-up tasks (`[[tasks]]` without `on_leader`), in file order.
pub async fn run_startup_tasks(runner: &BodyRunner) {
    for task in runner.app.tasks.iter().filter(|t| t.election.is_none()) {
        match runner.run(&task.body, None).await {
            Ok(_) => tracing::info!("task {} done", task.name),
            Err(e) => tracing::error!("task {} failed: {e}", task.name),
        }
    }
}
