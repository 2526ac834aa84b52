//! The USR1 dump: what the worker is doing right now, written to the log in one block that an
//! operator can read when a worker seems stuck (Faust dumps thread tracebacks; a faust-rs worker
//! has no threads worth reading, so it names the work instead).

use std::fmt::Write;
use std::sync::atomic::Ordering;

use crate::app::App;
use crate::clock::now_ms;
use crate::worker::state::WorkerState;

fn ago(ms: i64, now: i64) -> String {
    format!("{:.3}s", (now - ms) as f64 / 1000.0)
}

/// What the agents' loop waits on.
fn describe_loop(state: &WorkerState, app: &App) -> String {
    let gauges = &state.agents_loop;
    let flag = |flag: &std::sync::atomic::AtomicBool| flag.load(Ordering::Relaxed);
    let mut text = format!(
        "{} jobs running, {} events awaiting acknowledgements",
        gauges.jobs_running.load(Ordering::Relaxed),
        gauges.events_awaiting_acks.load(Ordering::Relaxed)
    );
    if app.processing_guarantee == crate::kafka::ProcessingGuarantee::ExactlyOnce {
        let transaction = match (
            flag(&gauges.transaction_settling),
            flag(&gauges.transaction_open),
        ) {
            (true, _) => "being settled",
            (false, true) => "open",
            (false, false) => "none open",
        };
        let _ = write!(text, "; transaction {transaction}");
        if flag(&gauges.commit_due) {
            text.push_str(", commit due");
        }
        if flag(&gauges.abort_due) {
            text.push_str(", abort due");
        }
        let waiting = gauges.revocations_waiting.load(Ordering::Relaxed);
        if waiting > 0 {
            let _ = write!(text, ", {waiting} revocations waiting for it");
        }
    }
    text
}

/// The tables held here and what their recoveries are doing.
fn describe_tables(tables: &crate::tables::Tables) -> String {
    let progress = &tables.progress;
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    let sizes: Vec<String> = tables
        .sizes()
        .iter()
        .map(|(name, keys)| format!("{name} {keys} keys"))
        .collect();
    format!(
        "{}; {} partitions recovering, {} of {} changelog records read, {} rows loaded from the stores",
        sizes.join(", "),
        load(&progress.recovering),
        load(&progress.records_read),
        load(&progress.records_to_read),
        load(&progress.rows_loaded)
    )
}

/// Renders the dump. `group` describes the agents' group membership.
pub fn render(app: &App, state: &WorkerState, group: &str) -> String {
    let now = now_ms();
    let mut out = String::new();
    let stats = state.snapshot();
    let _ = writeln!(
        out,
        "USR1 dump of worker {} (app {}, pid {}, up {:.1}s)",
        state.worker_id,
        app.id,
        std::process::id(),
        stats.uptime_seconds
    );
    let _ = writeln!(
        out,
        "  group {group}: {}, {} rebalances, {} commits",
        if stats.ready { "ready" } else { "not ready" },
        stats.rebalances,
        stats.commits
    );
    let assignment = state.assignment.lock().unwrap().clone();
    if assignment.is_empty() {
        let _ = writeln!(out, "  assignment: nothing");
    }
    for (topic, partitions) in &assignment {
        let _ = writeln!(out, "  assignment: {topic} {partitions:?}");
    }
    for agent in &app.agents {
        let c = state.agent(&agent.name);
        let s = &stats.agents[&agent.name];
        let doing = if c.busy.load(Ordering::Relaxed) {
            format!(
                "busy on {}[{}] offset {} for {}",
                agent.topic,
                c.busy_partition.load(Ordering::Relaxed),
                c.busy_offset.load(Ordering::Relaxed),
                ago(c.busy_since_ms.load(Ordering::Relaxed), now)
            )
        } else {
            "idle".to_string()
        };
        let _ = writeln!(
            out,
            "  agent {} ({}, concurrency {}): {doing}; in {} out {} failed {} dead-lettered {} stale {}",
            agent.name,
            agent.topic,
            agent.concurrency,
            s.events_in,
            s.events_out,
            s.events_failed,
            s.dead_lettered,
            s.events_stale
        );
    }
    let _ = writeln!(out, "  agents' loop: {}", describe_loop(state, app));
    if let Some(service) = state.tables.get() {
        let _ = writeln!(out, "  tables: {}", describe_tables(&service.tables));
    }
    for timer in &app.timers {
        let c = state.timer(&timer.name);
        let last = match c.last_run_ms.load(Ordering::Relaxed) {
            0 => "never ran".to_string(),
            ms => format!("last run {} ago", ago(ms, now)),
        };
        let next = match c.next_run_ms.load(Ordering::Relaxed) {
            0 => "next run unknown".to_string(),
            ms => format!("next in {:.3}s", (ms - now) as f64 / 1000.0),
        };
        let running = if c.running.load(Ordering::Relaxed) {
            "running now, "
        } else {
            ""
        };
        let leader = timer
            .election
            .as_deref()
            .map(|e| format!(", on the leader of {e}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  timer {} ({}{leader}): {running}{last}, {next}; runs {} failures {} skipped {}",
            timer.name,
            timer.schedule,
            c.runs.load(Ordering::Relaxed),
            c.failures.load(Ordering::Relaxed),
            c.skipped_not_leader.load(Ordering::Relaxed)
        );
    }
    for election in &state.elections {
        let role = match (election.candidate, election.is_leading()) {
            (_, true) => "leads",
            (true, false) => "candidate, follows",
            (false, false) => "not a candidate, follows",
        };
        let leader = match election.latest() {
            Some(a) if a.resigned => format!("no leader ({} resigned at {})", a.worker, a.since()),
            Some(a) => format!(
                "leader {} (pid {}) epoch {} since {}",
                a.worker,
                a.pid,
                a.epoch,
                a.since()
            ),
            None => "no leader known".to_string(),
        };
        let _ = writeln!(
            out,
            "  election {}: this worker {role}; {leader}",
            election.name
        );
    }
    out
}
