//! From the sections as written to a validated [`App`]: defaults, names, references between
//! entries, schedules, and compiling every body. Every problem is reported with its position;
//! checking goes on after an error so that all of them are found.
//!
//! One module per kind of entry; this one runs them in the order their references need (agent
//! and table names before any body is compiled, elections before the timers and tasks bound to
//! them, agents before the tables they use) and puts the results together.

mod agents;
pub(super) mod bodies;
pub(super) mod brokers;
mod elections;
mod kafka_table;
mod names;
mod settings;
mod tables;
mod tasks;
pub(super) mod timers;
mod topics;
mod values;

use std::path::Path;

use super::diagnostics::Report;
use super::load::RawApp;
use super::model::{Agent, App, Election, Table, Task, Timer, Topic};
use crate::kafka::Properties;
use crate::script::{ScriptEngine, ScriptLimits, ScriptNames};
use bodies::Bodies;
use settings::Settings;
use topics::TopicDefaults;

pub(crate) fn validate(report: &mut Report<'_>, raw: RawApp) -> Option<(App, ScriptEngine)> {
    if !raw.app_present {
        report.error(
            0..0,
            "missing [app] table: an app needs at least `[app]` with `id = \"...\"`",
        );
    }
    // Without a valid [app] the app is refused, but its entries are still checked, with the
    // defaults of [app]'s keys.
    let settings = raw.app.as_ref().map(|a| settings::check(report, a));
    let id = raw
        .app
        .as_ref()
        .map_or_else(|| "app".to_owned(), |a| a.id.get_ref().clone());
    // [app.limits] has no check here: its keys are checked as they are read.
    let limits = raw
        .app
        .as_ref()
        .map(|a| a.limits.clone())
        .unwrap_or_default();
    let kafka = kafka_table::check(report, &raw.kafka);
    let mut topics = topics::check(report, &raw.topics, TopicDefaults::of(settings.as_ref()));
    let declared = agents::declare(report, &raw.agents);
    let declared_tables = tables::declare(report, &raw.tables, &declared.names);
    // One engine compiles every body; it binds each agent's name, for `name.send(v)`, and each
    // table's.
    let names = ScriptNames {
        agents: declared.script_names(),
        tables: declared_tables.script_names(),
    };
    let engine = ScriptEngine::new(&limits, names);
    let bodies = Bodies::new(report.path, &engine);
    let elections = elections::check(report, &raw.elections, &bodies);
    let scope = agents::Scope {
        app_id: &id,
        agents: &declared.names,
        broken_names: &raw.broken_names,
    };
    let mut agents = agents::check(report, &declared, &scope, &mut topics, &bodies);
    let tables = tables::check(report, &declared_tables, &id, &mut agents, &mut topics);
    let timers = timers::check(report, &raw.timers, &elections, &bodies);
    let tasks = tasks::check(report, &raw.tasks, &elections, &bodies);
    let entries = Entries {
        kafka,
        topics: topics.into_list(),
        agents,
        timers,
        tasks,
        elections: elections.list,
        tables,
    };
    // Entries with errors were left out: only an app without errors is whole.
    if !report.errors.is_empty() {
        return None;
    }
    let app = assemble(report.path, id, settings?, limits, entries);
    Some((app, engine))
}

/// The app's entries, validated.
struct Entries {
    kafka: Properties,
    topics: Vec<Topic>,
    agents: Vec<Agent>,
    timers: Vec<Timer>,
    tasks: Vec<Task>,
    elections: Vec<Election>,
    tables: Vec<Table>,
}

fn assemble(
    path: &Path,
    id: String,
    settings: Settings,
    limits: ScriptLimits,
    entries: Entries,
) -> App {
    let timing = settings.timing;
    App {
        path: path.to_path_buf(),
        id,
        brokers: settings.brokers,
        key_serializer: settings.key_serializer,
        value_serializer: settings.value_serializer,
        topic_partitions: settings.topic_partitions,
        topic_replication_factor: settings.topic_replication_factor,
        session_timeout: timing.session_timeout,
        heartbeat_interval: timing.heartbeat_interval,
        election_session_timeout: timing.election_session_timeout,
        election_heartbeat_interval: timing.election_heartbeat_interval,
        max_poll_interval: timing.max_poll_interval,
        commit_interval: timing.commit_interval,
        commit_every: settings.commit_every,
        processing_guarantee: settings.processing_guarantee,
        group_protocol: settings.group_protocol,
        evict_dead_leaders: settings.evict_dead_leaders,
        limits,
        kafka: entries.kafka,
        topics: entries.topics,
        agents: entries.agents,
        timers: entries.timers,
        tasks: entries.tasks,
        elections: entries.elections,
        tables: entries.tables,
    }
}
