//! From the sections as written to a validated [`App`]: defaults, names, references between
//! entries, schedules, and compiling every body. Every problem is reported with its position;
//! checking goes on after an error so that all of them are found.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use croner::parser::{CronParser, Seconds, Year};
use toml::Spanned;

use super::diagnostics::Report;
use super::load::{Entry, RawApp};
use super::model::*;
use super::schema::{AppSection, OnError, TimerDef, TopicDef};
use crate::codec::Serializer;
use crate::kafka::GroupProtocol;
use crate::script::{
    BodyKind, CompileError, Script, ScriptEngine, ScriptLimits, ScriptNames, check_agent_name,
};

/// An entry's help line (its `help` key, else its body's first comment line) and the index of
/// its body among those waiting to be compiled.
fn queue_body(
    help: Option<&String>,
    body: Option<PendingBody>,
    pending: &mut Vec<PendingBody>,
) -> (String, Option<usize>) {
    let help = help
        .cloned()
        .or_else(|| body.as_ref().and_then(|b| first_comment(&b.source)))
        .unwrap_or_default();
    let index = body.map(|b| {
        pending.push(b);
        pending.len() - 1
    });
    (help, index)
}

/// Records the first declaration of a `kind` called `name`; a later one with the same name is
/// reported (naming the first's line) and refused.
fn first_declaration(
    report: &mut Report<'_>,
    seen: &mut HashMap<String, Range<usize>>,
    name: &Spanned<String>,
    kind: &str,
) -> bool {
    if let Some(first) = seen.get(name.get_ref()) {
        let line = report.position(first.start).0;
        report.error(
            name.span(),
            format!(
                "duplicate {kind} `{}` (first declared on line {line})",
                name.get_ref()
            ),
        );
        return false;
    }
    seen.insert(name.get_ref().clone(), name.span());
    true
}

/// The one place bodies are compiled.
fn compile_body(
    engine: &ScriptEngine,
    kind: BodyKind,
    source: &str,
) -> Result<Script, CompileError> {
    engine.compile_for(kind, source)
}

const DEFAULT_BROKER: &str = "kafka://localhost:9092";
const DEFAULT_PORT: u16 = 9092;

/// `[kafka]` keys that faust-rs sets itself, with where to set them instead.
const MANAGED_KAFKA_KEYS: &[(&str, &str)] = &[
    (
        "bootstrap.servers",
        "set the brokers with `broker` in [app]",
    ),
    (
        "metadata.broker.list",
        "set the brokers with `broker` in [app]",
    ),
    ("group.id", "the group is the app's `id` in [app]"),
    (
        "enable.auto.commit",
        "faust-rs commits offsets after processing (see `commit_interval` in [app])",
    ),
    (
        "enable.auto.offset.store",
        "faust-rs stores offsets after processing",
    ),
    ("session.timeout.ms", "set `session_timeout` in [app]"),
    ("heartbeat.interval.ms", "set `heartbeat_interval` in [app]"),
    ("max.poll.interval.ms", "set `max_poll_interval` in [app]"),
    ("group.protocol", "set `group_protocol` in [app]"),
    (
        "partition.assignment.strategy",
        "faust-rs uses cooperative-sticky assignment, which keeps the leader where it is",
    ),
    (
        "group.instance.id",
        "pass `worker --instance-id ID|auto`: each worker needs its own",
    ),
];

/// A body read but not compiled yet.
struct PendingBody {
    kind: BodyKind,
    /// What owns it, for messages: "agent `say`".
    owner: String,
    origin: BodyOrigin,
    source: String,
    /// Inline bodies: line and column in the app file of the script's first character.
    start: (usize, usize),
}

pub(crate) fn validate(report: &mut Report<'_>, raw: RawApp) -> Option<(App, ScriptEngine)> {
    let base_dir = report
        .path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let base_dir = if base_dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base_dir
    };

    // [app]
    if !raw.app_present {
        report.error(
            0..0,
            "missing [app] table: an app needs at least `[app]` with `id = \"...\"`",
        );
    }
    let settings = raw.app.as_ref().map(|a| app_settings(report, a));
    let id = raw
        .app
        .as_ref()
        .map(|a| a.id.get_ref().clone())
        .unwrap_or_else(|| "app".into());
    let limits = raw
        .app
        .as_ref()
        .map(|a| a.limits.clone())
        .unwrap_or_default();
    let default_partitions = settings.as_ref().map_or(8, |s| s.topic_partitions);
    let default_replicas = settings.as_ref().map_or(1, |s| s.topic_replication_factor);
    let default_key = settings
        .as_ref()
        .map_or(Serializer::Raw, |s| s.key_serializer);
    let default_value = settings
        .as_ref()
        .map_or(Serializer::Json, |s| s.value_serializer);

    // [kafka]
    let mut kafka = BTreeMap::new();
    for (key, value) in &raw.kafka {
        let name: &str = key.get_ref();
        if let Some((_, instead)) = MANAGED_KAFKA_KEYS.iter().find(|(k, _)| *k == name) {
            report.error(
                key.span(),
                format!("`{name}` is managed by faust-rs: {instead}"),
            );
        } else {
            kafka.insert(name.to_owned(), value.get_ref().0.clone());
        }
    }

    // [[topics]]
    let mut topics: Vec<Topic> = Vec::new();
    let mut topic_spans: HashMap<String, Range<usize>> = HashMap::new();
    for entry in &raw.topics {
        let def = &entry.def;
        let name = def.name.get_ref();
        if let Err(why) = check_topic_name(name) {
            report.error(def.name.span(), why);
        }
        if !first_declaration(report, &mut topic_spans, &def.name, "topic") {
            continue;
        }
        topics.push(declared_topic(
            report,
            def,
            default_partitions,
            default_replicas,
            default_key,
            default_value,
        ));
    }

    // [[elections]]
    let mut pending: Vec<PendingBody> = Vec::new();
    let mut election_names: HashMap<String, Range<usize>> = HashMap::new();
    // (name, candidate, declared, on_elected, on_revoked): hooks are indexes into `pending`.
    type ElectionParts = (String, bool, bool, Option<usize>, Option<usize>);
    let mut elections_raw: Vec<ElectionParts> = Vec::new();
    for entry in &raw.elections {
        let def = &entry.def;
        let name = def.name.get_ref();
        if let Err(why) = check_plain_name(name, "election") {
            report.error(def.name.span(), why);
        }
        if !first_declaration(report, &mut election_names, &def.name, "election") {
            continue;
        }
        let owner = format!("election `{name}`");
        let mut hook = |report: &mut Report<'_>,
                        inline: &Option<Spanned<String>>,
                        file: &Option<Spanned<String>>,
                        key: &str| {
            if inline.is_none() && file.is_none() {
                return None;
            }
            read_body(
                report,
                &base_dir,
                BodyKind::Hook,
                &format!("{owner} ({key})"),
                inline.as_ref(),
                file.as_ref(),
                def.name.span(),
                (key, &format!("{key}_file")),
                &entry.dropped,
            )
            .map(|b| {
                pending.push(b);
                pending.len() - 1
            })
        };
        let elected = hook(report, &def.on_elected, &def.on_elected_file, "on_elected");
        let revoked = hook(report, &def.on_revoked, &def.on_revoked_file, "on_revoked");
        elections_raw.push((
            name.clone(),
            def.candidate.unwrap_or(true),
            true,
            elected,
            revoked,
        ));
    }
    if !election_names.contains_key(DEFAULT_ELECTION) {
        elections_raw.insert(0, (DEFAULT_ELECTION.into(), true, false, None, None));
    } else if let Some(i) = elections_raw.iter().position(|e| e.0 == DEFAULT_ELECTION) {
        let default = elections_raw.remove(i);
        elections_raw.insert(0, default);
    }
    let election_exists =
        |name: &str| name == DEFAULT_ELECTION || election_names.contains_key(name);

    // [[agents]]: names first, so sinks can refer to agents declared later.
    let mut agent_names: HashMap<String, Range<usize>> = HashMap::new();
    let mut agent_defs = Vec::new();
    for entry in &raw.agents {
        let def = &entry.def;
        let name = def.name.get_ref();
        if let Err(why) = check_agent_name(name) {
            report.error(def.name.span(), why);
        }
        if !first_declaration(report, &mut agent_names, &def.name, "agent") {
            continue;
        }
        agent_defs.push(entry);
    }
    let mut implicit_topics: Vec<Topic> = Vec::new();
    let implicit = |name: &str, key: Serializer, value: Serializer| Topic {
        name: name.to_owned(),
        partitions: default_partitions,
        replicas: default_replicas,
        key_serializer: key,
        value_serializer: value,
        retention: None,
        compacted: false,
        create: true,
        config: BTreeMap::new(),
        declared: false,
    };
    // (name, topic, key, value, concurrency, sinks, policy, help, body index)
    type AgentParts = (
        String,
        String,
        Serializer,
        Serializer,
        u32,
        Vec<Sink>,
        ErrorPolicy,
        String,
        Option<usize>,
        bool,
    );
    let mut agents_raw: Vec<AgentParts> = Vec::new();
    for entry in agent_defs {
        let def = &entry.def;
        let name = def.name.get_ref().clone();
        let topic_name = match &def.topic {
            Some(t) => {
                if let Err(why) = check_topic_name(t.get_ref()) {
                    report.error(t.span(), why);
                }
                t.get_ref().clone()
            }
            None => {
                let derived = format!("{id}-{name}");
                // Only report what the parts' own checks did not already report.
                if check_app_id(&id).is_ok()
                    && check_agent_name(&name).is_ok()
                    && let Err(why) = check_topic_name(&derived)
                {
                    report.error(
                        def.name.span(),
                        format!("the agent's default topic `{{id}}-{{name}}` is invalid: {why}"),
                    );
                }
                derived
            }
        };
        if let Some(span) = topic_spans.get(&name)
            && topic_name != name
        {
            report.error(
                span.clone(),
                format!(
                    "topic `{name}` has the same name as agent `{name}`: sinks name either, so \
                     rename one of them"
                ),
            );
        }
        let (key, value) = match topics.iter().find(|t| t.name == topic_name) {
            Some(t) => (t.key_serializer, t.value_serializer),
            None => {
                if !implicit_topics.iter().any(|t| t.name == topic_name) {
                    implicit_topics.push(implicit(&topic_name, default_key, default_value));
                }
                (default_key, default_value)
            }
        };
        let concurrency = match &def.concurrency {
            Some(c) if *c.get_ref() == 0 => {
                report.error(c.span(), "`concurrency` must be at least 1");
                1
            }
            Some(c) => *c.get_ref(),
            None => 1,
        };
        let mut sinks = Vec::new();
        for sink in &def.sink {
            let target = sink.get_ref();
            if agent_names.contains_key(target) {
                sinks.push(Sink::Agent(target.clone()));
            } else if topic_spans.contains_key(target) {
                sinks.push(Sink::Topic(target.clone()));
            } else if !raw.broken_names.contains(target) {
                report.error(
                    sink.span(),
                    format!(
                        "unknown sink `{target}`: not an agent nor a [[topics]] entry (to write \
                         to an external topic, declare it: [[topics]] name = \"{target}\" \
                         create = false)"
                    ),
                );
            }
        }
        let policy = match def.on_error.unwrap_or_default() {
            OnError::Log => ErrorPolicy::Log,
            OnError::Stop => ErrorPolicy::Stop,
            OnError::DeadLetter => {
                let topic = match &def.dead_letter_topic {
                    Some(t) => {
                        if let Err(why) = check_topic_name(t.get_ref()) {
                            report.error(t.span(), why);
                        }
                        t.get_ref().clone()
                    }
                    None => format!("{id}-{name}-dead-letter"),
                };
                if topic == topic_name {
                    let span = def
                        .dead_letter_topic
                        .as_ref()
                        .map_or(def.name.span(), |t| t.span());
                    report.error(
                        span,
                        "the dead-letter topic is the topic the agent consumes: failed records \
                         would be processed again forever",
                    );
                }
                if !topics.iter().any(|t| t.name == topic)
                    && !implicit_topics.iter().any(|t| t.name == topic)
                {
                    implicit_topics.push(implicit(&topic, key, value));
                }
                ErrorPolicy::DeadLetter { topic }
            }
        };
        if let Some(t) = &def.dead_letter_topic
            && !matches!(policy, ErrorPolicy::DeadLetter { .. })
        {
            report.warn(
                t.span(),
                "`dead_letter_topic` is ignored unless on_error = \"dead-letter\"",
            );
        }
        let body = read_body(
            report,
            &base_dir,
            BodyKind::Agent,
            &format!("agent `{name}`"),
            def.body.as_ref(),
            def.file.as_ref(),
            def.name.span(),
            ("body", "file"),
            &entry.dropped,
        );
        let (help, body) = queue_body(def.help.as_ref(), body, &mut pending);
        agents_raw.push((
            name,
            topic_name,
            key,
            value,
            concurrency,
            sinks,
            policy,
            help,
            body,
            def.drop_stale_epochs.unwrap_or(false),
        ));
    }

    // [[timers]]
    let mut timer_names: HashMap<String, Range<usize>> = HashMap::new();
    let mut timers_raw = Vec::new();
    for entry in &raw.timers {
        let def = &entry.def;
        let name = def.name.get_ref();
        if let Err(why) = check_plain_name(name, "timer") {
            report.error(def.name.span(), why);
        }
        if !first_declaration(report, &mut timer_names, &def.name, "timer") {
            continue;
        }
        let schedule = schedule(report, entry);
        if let Some(m) = &def.on_master {
            report.warn(
                m.span(),
                "`on_master` is deprecated: write `on_leader` (same meaning)",
            );
            if def.on_leader.is_some() {
                report.error(
                    m.span(),
                    "both `on_leader` and its deprecated alias `on_master` are set: keep `on_leader`",
                );
            }
        }
        let on_leader = def.on_leader.as_ref().or(def.on_master.as_ref());
        let election = leader_election(report, on_leader, &def.election, &election_exists);
        let body = read_body(
            report,
            &base_dir,
            BodyKind::Timer,
            &format!("timer `{name}`"),
            def.body.as_ref(),
            def.file.as_ref(),
            def.name.span(),
            ("body", "file"),
            &entry.dropped,
        );
        let (help, body) = queue_body(def.help.as_ref(), body, &mut pending);
        timers_raw.push((name.clone(), schedule, election, help, body));
    }

    // [[tasks]]
    let mut task_names: HashMap<String, Range<usize>> = HashMap::new();
    let mut tasks_raw = Vec::new();
    for entry in &raw.tasks {
        let def = &entry.def;
        let name = def.name.get_ref();
        if let Err(why) = check_plain_name(name, "task") {
            report.error(def.name.span(), why);
        }
        if !first_declaration(report, &mut task_names, &def.name, "task") {
            continue;
        }
        let election = leader_election(
            report,
            def.on_leader.as_ref(),
            &def.election,
            &election_exists,
        );
        let body = read_body(
            report,
            &base_dir,
            BodyKind::Task,
            &format!("task `{name}`"),
            def.body.as_ref(),
            def.file.as_ref(),
            def.name.span(),
            ("body", "file"),
            &entry.dropped,
        );
        let (help, body) = queue_body(def.help.as_ref(), body, &mut pending);
        tasks_raw.push((name.clone(), election, help, body));
    }

    // Compile every body with one engine that knows the agents' names.
    let mut names: Vec<String> = agents_raw.iter().map(|a| a.0.clone()).collect();
    names.sort();
    let engine = ScriptEngine::new(&limits, ScriptNames { agents: names });
    let mut compiled: Vec<Option<Body>> = Vec::with_capacity(pending.len());
    for body in pending {
        match compile_body(&engine, body.kind, &body.source) {
            Ok(script) => compiled.push(Some(Body {
                origin: body.origin,
                source: body.source,
                // Names the body in its log lines: `script="agent say"`.
                script: script.with_name(&body.owner.replace('`', "")),
            })),
            Err(e) => {
                let message = format!("in {}: {}", body.owner, one_line(&e.message));
                match &body.origin {
                    BodyOrigin::Inline { .. } => {
                        let (line, column) = map_inline(body.start, e.line, e.column);
                        let path = report.path.to_path_buf();
                        report.error_at(&path, line, column, message);
                    }
                    BodyOrigin::File(path) => {
                        report.error_at(path, e.line.max(1), e.column.max(1), message)
                    }
                }
                compiled.push(None);
            }
        }
    }

    if !report.errors.is_empty() {
        return None;
    }
    let settings = settings?;
    let mut take = |i: Option<usize>| i.and_then(|i| compiled.get_mut(i).and_then(Option::take));

    let mut agents = Vec::new();
    for (
        name,
        topic,
        key_serializer,
        value_serializer,
        concurrency,
        sinks,
        on_error,
        help,
        body,
        drop_stale_epochs,
    ) in agents_raw
    {
        agents.push(Agent {
            drop_stale_epochs,
            name,
            topic,
            key_serializer,
            value_serializer,
            concurrency,
            sinks,
            on_error,
            help,
            body: take(body)?,
        });
    }
    let mut timers = Vec::new();
    for (name, schedule, election, help, body) in timers_raw {
        timers.push(Timer {
            name,
            schedule: schedule?,
            election,
            help,
            body: take(body)?,
        });
    }
    let mut tasks = Vec::new();
    for (name, election, help, body) in tasks_raw {
        tasks.push(Task {
            name,
            election,
            help,
            body: take(body)?,
        });
    }
    let elections = elections_raw
        .into_iter()
        .map(|(name, candidate, declared, elected, revoked)| Election {
            name,
            candidate,
            declared,
            on_elected: take(elected),
            on_revoked: take(revoked),
        })
        .collect();
    topics.extend(implicit_topics);
    let app = App {
        path: report.path.to_path_buf(),
        id,
        brokers: settings.brokers,
        key_serializer: settings.key_serializer,
        value_serializer: settings.value_serializer,
        topic_partitions: settings.topic_partitions,
        topic_replication_factor: settings.topic_replication_factor,
        session_timeout: settings.session_timeout,
        heartbeat_interval: settings.heartbeat_interval,
        election_heartbeat_interval: settings.election_heartbeat_interval,
        max_poll_interval: settings.max_poll_interval,
        commit_interval: settings.commit_interval,
        commit_every: settings.commit_every,
        group_protocol: settings.group_protocol,
        limits: settings.limits,
        kafka,
        topics,
        agents,
        timers,
        tasks,
        elections,
    };
    Some((app, engine))
}

/// `[app]` with defaults applied.
struct Settings {
    brokers: Vec<String>,
    key_serializer: Serializer,
    value_serializer: Serializer,
    topic_partitions: u32,
    topic_replication_factor: u16,
    session_timeout: Duration,
    heartbeat_interval: Duration,
    election_heartbeat_interval: Duration,
    max_poll_interval: Duration,
    commit_interval: Duration,
    commit_every: u64,
    group_protocol: GroupProtocol,
    limits: ScriptLimits,
}

fn app_settings(report: &mut Report<'_>, app: &AppSection) -> Settings {
    if let Err(why) = check_app_id(app.id.get_ref()) {
        report.error(app.id.span(), why);
    }
    let brokers = match &app.broker {
        Some(url) => match parse_brokers(url.get_ref()) {
            Ok(brokers) => brokers,
            Err(why) => {
                report.error(url.span(), why);
                Vec::new()
            }
        },
        None => parse_brokers(DEFAULT_BROKER).unwrap_or_default(),
    };
    let topic_partitions = positive(report, app.topic_partitions.as_ref(), "topic_partitions", 8);
    let topic_replication_factor = positive(
        report,
        app.topic_replication_factor.as_ref(),
        "topic_replication_factor",
        1,
    );
    let session = seconds(
        report,
        app.session_timeout.as_ref(),
        "session_timeout",
        6.0,
        3600.0,
    );
    let heartbeat = seconds(
        report,
        app.heartbeat_interval.as_ref(),
        "heartbeat_interval",
        1.5,
        3600.0,
    );
    let election_heartbeat = seconds(
        report,
        app.election_heartbeat_interval.as_ref(),
        "election_heartbeat_interval",
        0.1,
        3600.0,
    );
    if election_heartbeat >= session
        && let Some(h) = &app.election_heartbeat_interval
    {
        report.error(
            h.span(),
            format!(
                "`election_heartbeat_interval` ({}s) must be less than `session_timeout` ({}s)",
                election_heartbeat.as_secs_f64(),
                session.as_secs_f64()
            ),
        );
    }
    let max_poll = seconds(
        report,
        app.max_poll_interval.as_ref(),
        "max_poll_interval",
        300.0,
        86400.0,
    );
    let commit_interval = seconds(
        report,
        app.commit_interval.as_ref(),
        "commit_interval",
        2.8,
        86400.0,
    );
    let commit_every = positive(report, app.commit_every.as_ref(), "commit_every", 10_000);
    let group_protocol = app.group_protocol.unwrap_or(GroupProtocol::Classic);
    if heartbeat >= session {
        let span = app
            .heartbeat_interval
            .as_ref()
            .or(app.session_timeout.as_ref())
            .map_or(app.id.span(), |s| s.span());
        report.error(
            span,
            format!(
                "`heartbeat_interval` ({}s) must be less than `session_timeout` ({}s)",
                heartbeat.as_secs_f64(),
                session.as_secs_f64()
            ),
        );
    } else if heartbeat * 3 > session
        && let Some(h) = &app.heartbeat_interval
    {
        report.warn(
            h.span(),
            "`heartbeat_interval` above a third of `session_timeout` risks evictions on a \
             single lost heartbeat",
        );
    }
    if max_poll < session {
        let span = app
            .max_poll_interval
            .as_ref()
            .or(app.session_timeout.as_ref())
            .map_or(app.id.span(), |s| s.span());
        report.error(
            span,
            format!(
                "`max_poll_interval` ({}s) must be at least `session_timeout` ({}s)",
                max_poll.as_secs_f64(),
                session.as_secs_f64()
            ),
        );
    }
    if group_protocol == GroupProtocol::Consumer {
        for (key, value) in [
            ("session_timeout", &app.session_timeout),
            ("heartbeat_interval", &app.heartbeat_interval),
        ] {
            if let Some(v) = value {
                report.warn(
                    v.span(),
                    format!(
                        "`{key}` is ignored with group_protocol = \"consumer\": the broker sets it"
                    ),
                );
            }
        }
    }
    Settings {
        brokers,
        key_serializer: app.key_serializer.unwrap_or(Serializer::Raw),
        value_serializer: app.value_serializer.unwrap_or(Serializer::Json),
        topic_partitions,
        topic_replication_factor,
        session_timeout: session,
        heartbeat_interval: heartbeat,
        election_heartbeat_interval: election_heartbeat,
        max_poll_interval: max_poll,
        commit_interval,
        commit_every,
        group_protocol,
        limits: app.limits.clone(),
    }
}

fn positive<T>(report: &mut Report<'_>, value: Option<&Spanned<T>>, key: &str, default: T) -> T
where
    T: Copy + PartialEq + Default,
{
    match value {
        Some(v) if *v.get_ref() == T::default() => {
            report.error(v.span(), format!("`{key}` must be at least 1"));
            default
        }
        Some(v) => *v.get_ref(),
        None => default,
    }
}

/// A duration in seconds: finite, > 0, at most `max`.
fn seconds(
    report: &mut Report<'_>,
    value: Option<&Spanned<f64>>,
    key: &str,
    default: f64,
    max: f64,
) -> Duration {
    let fallback = Duration::from_secs_f64(default);
    let Some(v) = value else {
        return fallback;
    };
    match checked_seconds(*v.get_ref(), max) {
        Ok(d) => d,
        Err(why) => {
            report.error(v.span(), format!("`{key}` {why}"));
            fallback
        }
    }
}

fn checked_seconds(value: f64, max: f64) -> Result<Duration, String> {
    if !value.is_finite() || value <= 0.0 {
        return Err(format!("must be a positive number of seconds, got {value}"));
    }
    if value > max {
        return Err(format!("must be at most {max} seconds, got {value}"));
    }
    if value < 0.001 {
        return Err(format!("must be at least 0.001 seconds, got {value}"));
    }
    Duration::try_from_secs_f64(value).map_err(|e| format!("is not a duration: {e}"))
}

fn declared_topic(
    report: &mut Report<'_>,
    def: &TopicDef,
    default_partitions: u32,
    default_replicas: u16,
    default_key: Serializer,
    default_value: Serializer,
) -> Topic {
    let partitions = positive(
        report,
        def.partitions.as_ref(),
        "partitions",
        default_partitions,
    );
    let replicas = positive(report, def.replicas.as_ref(), "replicas", default_replicas);
    let retention =
        def.retention
            .as_ref()
            .and_then(|r| match checked_seconds(*r.get_ref(), 1e12) {
                Ok(d) => Some(d),
                Err(why) => {
                    report.error(r.span(), format!("`retention` {why}"));
                    None
                }
            });
    let mut config = BTreeMap::new();
    for (key, value) in &def.config {
        let name: &str = key.get_ref();
        let clash = match name {
            "retention.ms" if def.retention.is_some() => Some("retention"),
            "cleanup.policy" if def.compacted.is_some() => Some("compacted"),
            _ => None,
        };
        if let Some(other) = clash {
            report.error(
                key.span(),
                format!("`{name}` in `config` conflicts with `{other}`: set only one"),
            );
        }
        config.insert(name.to_owned(), value.get_ref().0.clone());
    }
    Topic {
        name: def.name.get_ref().clone(),
        partitions,
        replicas,
        key_serializer: def.key_serializer.unwrap_or(default_key),
        value_serializer: def.value_serializer.unwrap_or(default_value),
        retention,
        compacted: def.compacted.unwrap_or(false),
        create: def.create.unwrap_or(true),
        config,
        declared: true,
    }
}

fn schedule(report: &mut Report<'_>, entry: &Entry<TimerDef>) -> Option<Schedule> {
    let def = &entry.def;
    match (&def.interval, &def.cron) {
        (None, None) if entry.dropped("interval") || entry.dropped("cron") => None,
        (Some(_), Some(cron)) => {
            report.error(
                cron.span(),
                "`interval` and `cron` are both set: give exactly one",
            );
            None
        }
        (None, None) => {
            report.error(
                def.name.span(),
                format!(
                    "timer `{}` needs a schedule: `interval = SECONDS` or `cron = \"M H DOM MON DOW\"`",
                    def.name.get_ref()
                ),
            );
            None
        }
        (Some(interval), None) => {
            if let Some(tz) = &def.timezone {
                report.error(tz.span(), "`timezone` applies only to `cron` timers");
            }
            match checked_seconds(*interval.get_ref(), 1e9) {
                Ok(every) => Some(Schedule::Interval(every)),
                Err(why) => {
                    report.error(interval.span(), format!("`interval` {why}"));
                    None
                }
            }
        }
        (None, Some(cron)) => {
            let timezone = match &def.timezone {
                None => Some(chrono_tz::Tz::UTC),
                Some(tz) => match chrono_tz::Tz::from_str(tz.get_ref()) {
                    Ok(tz) => Some(tz),
                    Err(_) => {
                        report.error(
                            tz.span(),
                            format!(
                                "unknown time zone `{}`: use an IANA name such as `UTC` or \
                                 `Europe/Paris`",
                                tz.get_ref()
                            ),
                        );
                        None
                    }
                },
            };
            let parsed = match parse_cron(cron.get_ref()) {
                Ok(parsed) => Some(parsed),
                Err(why) => {
                    report.error(cron.span(), why);
                    None
                }
            };
            Some(Schedule::Cron {
                expression: cron.get_ref().trim().to_owned(),
                timezone: timezone?,
                cron: Box::new(parsed?),
            })
        }
    }
}

/// A strict 5-field crontab expression.
pub(crate) fn parse_cron(expression: &str) -> Result<croner::Cron, String> {
    let fields = expression.split_whitespace().count();
    if expression.trim_start().starts_with('@') {
        return Err(format!(
            "bad cron expression `{expression}`: nicknames such as @daily are not accepted; \
             write the 5 fields (e.g. `0 0 * * *`)"
        ));
    }
    if fields != 5 {
        return Err(format!(
            "bad cron expression `{expression}`: expected 5 fields (minute hour day-of-month \
             month day-of-week), found {fields}"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(expression)
        .map_err(|e| format!("bad cron expression `{expression}`: {e}"))
}

/// The election a timer or task is bound to, from `on_leader` and `election`.
fn leader_election(
    report: &mut Report<'_>,
    on_leader: Option<&Spanned<bool>>,
    election: &Option<Spanned<String>>,
    exists: &dyn Fn(&str) -> bool,
) -> Option<String> {
    match election {
        Some(e) => {
            if !exists(e.get_ref()) {
                report.error(
                    e.span(),
                    format!(
                        "unknown election `{}`: declare it with [[elections]] name = \"{}\" \
                         (the default election is `{DEFAULT_ELECTION}`)",
                        e.get_ref(),
                        e.get_ref()
                    ),
                );
            }
            if let Some(flag) = on_leader
                && !flag.get_ref()
            {
                report.error(
                    flag.span(),
                    "`on_leader = false` contradicts `election`: a body bound to an election runs on its leader",
                );
            }
            Some(e.get_ref().clone())
        }
        None if on_leader.is_some_and(|f| *f.get_ref()) => Some(DEFAULT_ELECTION.to_owned()),
        None => None,
    }
}

#[allow(clippy::too_many_arguments)]
fn read_body(
    report: &mut Report<'_>,
    base_dir: &Path,
    kind: BodyKind,
    owner: &str,
    inline: Option<&Spanned<String>>,
    file: Option<&Spanned<String>>,
    owner_span: Range<usize>,
    keys: (&str, &str),
    dropped: &[String],
) -> Option<PendingBody> {
    let (body_key, file_key) = keys;
    match (inline, file) {
        (Some(_), Some(f)) => {
            report.error(
                f.span(),
                format!("`{body_key}` and `{file_key}` are both set for {owner}: give exactly one"),
            );
            None
        }
        (None, None) if dropped.iter().any(|k| k == body_key || k == file_key) => None,
        (None, None) => {
            report.error(
                owner_span,
                format!(
                    "{owner} has no body: set `{body_key} = '''...'''` or `{file_key} = \"path.rhai\"`"
                ),
            );
            None
        }
        (Some(body), None) => Some(PendingBody {
            kind,
            owner: owner.to_owned(),
            origin: BodyOrigin::Inline {
                line: inline_start(report, body.span()).0,
            },
            source: body.get_ref().clone(),
            start: inline_start(report, body.span()),
        }),
        (None, Some(f)) => {
            if f.get_ref().trim().is_empty() {
                report.error(f.span(), format!("`{file_key}` is empty"));
                return None;
            }
            let path = base_dir.join(f.get_ref());
            match std::fs::read_to_string(&path) {
                Ok(source) => Some(PendingBody {
                    kind,
                    owner: owner.to_owned(),
                    origin: BodyOrigin::File(path),
                    source,
                    start: (1, 1),
                }),
                Err(e) => {
                    report.error(
                        f.span(),
                        format!("cannot read script file `{}`: {e}", path.display()),
                    );
                    None
                }
            }
        }
    }
}

/// Line and column in the app file of an inline body's first character. TOML drops a newline
/// right after the opening `'''` or `"""`, so the body then starts on the next line.
fn inline_start(report: &Report<'_>, span: Range<usize>) -> (usize, usize) {
    let text = report.text;
    let rest = text.get(span.start..).unwrap_or("");
    let offset = if rest.starts_with("'''") || rest.starts_with("\"\"\"") {
        let after = span.start + 3;
        let tail = text.get(after..).unwrap_or("");
        if tail.starts_with("\r\n") {
            after + 2
        } else if tail.starts_with('\n') {
            after + 1
        } else {
            after
        }
    } else if rest.starts_with('\'') || rest.starts_with('"') {
        span.start + 1
    } else {
        span.start
    };
    report.position(offset)
}

/// A position inside an inline body to a position in the app file.
pub(crate) fn map_inline(start: (usize, usize), line: usize, column: usize) -> (usize, usize) {
    match line {
        0 => start,
        1 => (start.0, start.1 + column.max(1) - 1),
        n => (start.0 + n - 1, column.max(1)),
    }
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The help line of a body: its first line if that is a `//` comment.
fn first_comment(source: &str) -> Option<String> {
    let line = source.lines().map(str::trim).find(|l| !l.is_empty())?;
    let text = line.strip_prefix("//")?.trim_start_matches('/').trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// Parses Faust's broker URL list into `host:port` entries.
pub(crate) fn parse_brokers(url: &str) -> Result<Vec<String>, String> {
    let mut brokers = Vec::new();
    for part in url.split([';', ',']) {
        let part = part.trim();
        if part.is_empty() {
            return Err(format!(
                "bad broker URL `{url}`: empty entry (separate brokers with `;` or `,`)"
            ));
        }
        let rest = match part.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("kafka") => rest,
            Some((scheme, _)) => {
                return Err(format!(
                    "bad broker URL `{part}`: unsupported scheme `{scheme}://` (faust-rs speaks \
                     Kafka only: write kafka://host:port)"
                ));
            }
            None => part,
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let Some((host, after)) = v6.split_once(']') else {
                return Err(format!(
                    "bad broker URL `{part}`: unclosed `[` in IPv6 address"
                ));
            };
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| {
                    format!("bad broker URL `{part}`: expected `:port` after `]`")
                })?),
            };
            (format!("[{host}]"), port)
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) => (host.to_owned(), Some(port)),
                None => (rest.to_owned(), None),
            }
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':');
        if bare.is_empty() || !bare.chars().all(ok_char) || (bare.contains(':') && host == bare) {
            return Err(format!(
                "bad broker URL `{part}`: `{host}` is not a host name or address"
            ));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => {
                    return Err(format!(
                        "bad broker URL `{part}`: `{p}` is not a port (1-65535)"
                    ));
                }
            },
        };
        brokers.push(format!("{host}:{port}"));
    }
    Ok(brokers)
}

fn kafka_name_chars(name: &str) -> bool {
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Kafka's rules for topic names.
pub(crate) fn check_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("`{name}` is not a valid topic name"));
    }
    if name.len() > 249 {
        return Err(format!(
            "topic name `{name}` is longer than Kafka's 249 characters"
        ));
    }
    if !kafka_name_chars(name) {
        return Err(format!(
            "topic name `{name}` may only hold letters, digits, `.`, `_` and `-`"
        ));
    }
    Ok(())
}

fn check_app_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("`id` is empty".into());
    }
    if id.len() > 200 {
        return Err("`id` is longer than 200 characters (it prefixes topic names)".into());
    }
    if !kafka_name_chars(id) {
        return Err(format!(
            "`id` `{id}` may only hold letters, digits, `.`, `_` and `-` (it names the group and prefixes topics)"
        ));
    }
    Ok(())
}

fn check_plain_name(name: &str, what: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} name is empty"));
    }
    if !kafka_name_chars(name) {
        return Err(format!(
            "{what} name `{name}` may only hold letters, digits, `.`, `_` and `-`"
        ));
    }
    Ok(())
}
