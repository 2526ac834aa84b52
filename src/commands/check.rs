//! `faust-rs -A app.toml check`: load and validate the app definition and print what it
//! resolves to. Exit 0 when valid; 2 with every error on standard error when not.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::app::{App, Sink};
use crate::cli::{CheckArgs, GlobalOptions};
use crate::codec::Datum;
use crate::exit::{Result, Status};

use super::{load_app, write_stdout};

pub fn run(global: &GlobalOptions, args: &CheckArgs) -> Result<Status> {
    let loaded = load_app(global)?;
    if args.json_output {
        write_stdout(&format!("{}\n", resolved(&loaded.app)))?;
    } else {
        write_stdout(&summary(&loaded.app))?;
    }
    Ok(Status::Clean)
}

fn secs(d: std::time::Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// The resolved app as `check --json-output` prints it: every entry by name, with its defaults
/// applied; durations in seconds. `[kafka]` shows its keys only (values may be secrets).
pub fn resolved(app: &App) -> Value {
    let topics: Vec<Value> = app
        .topics
        .iter()
        .map(|t| {
            json!({
                "name": t.name, "partitions": t.partitions, "replicas": t.replicas,
                "key_serializer": t.key_serializer.name(),
                "value_serializer": t.value_serializer.name(),
                "retention_seconds": t.retention.map(|r| r.as_secs_f64()),
                "compacted": t.compacted, "create": t.create, "declared": t.declared,
            })
        })
        .collect();
    let agents: Vec<Value> = app
        .agents
        .iter()
        .map(|a| {
            let sinks: Vec<Value> = a
                .sinks
                .iter()
                .map(|s| match s {
                    Sink::Agent(n) => json!({ "agent": n }),
                    Sink::Topic(n) => json!({ "topic": n }),
                })
                .collect();
            let tables: Vec<&str> = a
                .tables
                .iter()
                .map(|&i| app.tables[i].name.as_str())
                .collect();
            json!({
                "name": a.name, "topic": a.topic, "concurrency": a.concurrency, "sinks": sinks,
                "on_error": a.on_error.to_string(), "drop_stale_epochs": a.drop_stale_epochs,
                "tables": tables,
            })
        })
        .collect();
    let timers: Vec<Value> = app
        .timers
        .iter()
        .map(|t| json!({ "name": t.name, "schedule": t.schedule.to_string(), "election": t.election }))
        .collect();
    let tasks: Vec<Value> = app
        .tasks
        .iter()
        .map(|t| json!({ "name": t.name, "election": t.election }))
        .collect();
    let elections: Vec<Value> = app
        .elections
        .iter()
        .map(|e| {
            json!({
                "name": e.name, "candidate": e.candidate, "declared": e.declared,
                "topic": app.election_topic(&e.name), "group": app.election_group(&e.name),
                "on_elected": e.on_elected.is_some(), "on_revoked": e.on_revoked.is_some(),
            })
        })
        .collect();
    let tables: Vec<Value> = app
        .tables
        .iter()
        .map(|t| {
            json!({
                "name": t.name, "partitions": t.partitions, "global": t.global,
                "changelog": t.changelog, "default": default_json(&t.default),
                "key_serializer": t.key_serializer.name(),
                "value_serializer": t.value_serializer.name(),
            })
        })
        .collect();
    let seconds = |d: std::time::Duration| d.as_secs_f64();
    json!({
        "path": app.path.display().to_string(),
        "id": app.id,
        "brokers": app.brokers,
        "key_serializer": app.key_serializer.name(),
        "value_serializer": app.value_serializer.name(),
        "group_protocol": app.group_protocol.name(),
        "session_timeout": seconds(app.session_timeout),
        "heartbeat_interval": seconds(app.heartbeat_interval),
        "max_poll_interval": seconds(app.max_poll_interval),
        "election_session_timeout": seconds(app.election_session_timeout),
        "election_heartbeat_interval": seconds(app.election_heartbeat_interval),
        "evict_dead_leaders": app.evict_dead_leaders,
        "commit_interval": seconds(app.commit_interval),
        "commit_every": app.commit_every,
        "kafka_keys": app.kafka.names().collect::<Vec<_>>(),
        "topics": topics,
        "agents": agents,
        "timers": timers,
        "tasks": tasks,
        "elections": elections,
        "tables": tables,
    })
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
    write_tables(w, app);
    out
}

/// The tables part of the summary: each table with its partitions and changelog.
fn write_tables(w: &mut String, app: &App) {
    let _ = writeln!(w, "tables ({}):", app.tables.len());
    for t in &app.tables {
        let _ = writeln!(
            w,
            "  {}: partitions {}, key {} value {}, default {}, changelog {}{}",
            t.name,
            t.partitions,
            t.key_serializer.name(),
            t.value_serializer.name(),
            default_json(&t.default),
            t.changelog,
            if t.global { ", global" } else { "" }
        );
    }
}

/// A table's default as JSON (defaults come from TOML, so they are always JSON values).
fn default_json(default: &Datum) -> Value {
    match default {
        Datum::Value(v) => v.clone(),
        Datum::Bytes(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
    }
}
