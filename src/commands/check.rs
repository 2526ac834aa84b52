//! `faust-rs -A app.toml check`: load and validate the app definition and print what it
//! resolves to. Exit 0 when valid; 2 with every error on standard error when not.

use std::fmt::Write as _;

use crate::app::{App, Sink};
use crate::cli::GlobalOptions;
use crate::exit::{Result, Status};

use super::{load_app, write_stdout};

pub fn run(global: &GlobalOptions) -> Result<Status> {
    let loaded = load_app(global)?;
    write_stdout(&summary(&loaded.app))?;
    Ok(Status::Clean)
}

fn secs(d: std::time::Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// The human-readable summary `check` prints.
pub fn summary(app: &App) -> String {
    let mut out = String::new();
    let w = &mut out;
    // Writing to a String cannot fail.
    let _ = writeln!(w, "{}: valid", app.path.display());
    let _ = writeln!(w, "app {}", app.id);
    let _ = writeln!(w, "  brokers: {}", app.bootstrap_servers());
    let _ = writeln!(
        w,
        "  serializers: key {}, value {}",
        app.key_serializer.name(),
        app.value_serializer.name()
    );
    let _ = writeln!(
        w,
        "  group: protocol {}, session timeout {}, heartbeat {}, max poll interval {}",
        app.group_protocol.name(),
        secs(app.session_timeout),
        secs(app.heartbeat_interval),
        secs(app.max_poll_interval),
    );
    let _ = writeln!(
        w,
        "  elections: election session timeout {}, election heartbeat {}, evict dead leaders {}",
        secs(app.election_session_timeout),
        secs(app.election_heartbeat_interval),
        if app.evict_dead_leaders { "yes" } else { "no" }
    );
    let _ = writeln!(
        w,
        "  commits: every {} or {} records",
        secs(app.commit_interval),
        app.commit_every
    );
    if !app.kafka.is_empty() {
        let keys: Vec<&str> = app.kafka.names().collect();
        let _ = writeln!(w, "  kafka: {}", keys.join(", "));
    }
    let _ = writeln!(w, "topics ({}):", app.topics.len());
    for t in &app.topics {
        let mut notes = vec![
            format!("partitions {}", t.partitions),
            format!("replicas {}", t.replicas),
            format!(
                "key {} value {}",
                t.key_serializer.name(),
                t.value_serializer.name()
            ),
        ];
        if let Some(r) = t.retention {
            notes.push(format!("retention {}", secs(r)));
        }
        if t.compacted {
            notes.push("compacted".into());
        }
        if !t.create {
            notes.push("not created by faust-rs".into());
        }
        if !t.declared {
            notes.push("implicit".into());
        }
        let _ = writeln!(w, "  {}: {}", t.name, notes.join(", "));
    }
    let _ = writeln!(w, "agents ({}):", app.agents.len());
    for a in &app.agents {
        let sinks: Vec<String> = a
            .sinks
            .iter()
            .map(|s| match s {
                Sink::Agent(n) => format!("agent {n}"),
                Sink::Topic(n) => format!("topic {n}"),
            })
            .collect();
        let sinks = if sinks.is_empty() {
            "none".to_string()
        } else {
            sinks.join(", ")
        };
        let _ = writeln!(
            w,
            "  {}: topic {}, concurrency {}, sinks {}, on_error {}{}",
            a.name,
            a.topic,
            a.concurrency,
            sinks,
            a.on_error,
            if a.drop_stale_epochs {
                ", drops stale epochs"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(w, "timers ({}):", app.timers.len());
    for t in &app.timers {
        let on = match &t.election {
            Some(e) => format!("on the leader of `{e}`"),
            None => "on every worker".into(),
        };
        let _ = writeln!(w, "  {}: {}, {}", t.name, t.schedule, on);
    }
    let _ = writeln!(w, "tasks ({}):", app.tasks.len());
    for t in &app.tasks {
        let when = match &t.election {
            Some(e) => format!("each time this worker becomes leader of `{e}`"),
            None => "once at start".into(),
        };
        let _ = writeln!(w, "  {}: {}", t.name, when);
    }
    let _ = writeln!(w, "elections ({}):", app.elections.len());
    for e in &app.elections {
        let mut notes = vec![if e.candidate {
            "candidate".to_string()
        } else {
            "not a candidate".to_string()
        }];
        if !e.declared {
            notes.push("default".into());
        }
        if e.on_elected.is_some() {
            notes.push("on_elected".into());
        }
        if e.on_revoked.is_some() {
            notes.push("on_revoked".into());
        }
        let _ = writeln!(w, "  {}: {}", e.name, notes.join(", "));
    }
    out
}
