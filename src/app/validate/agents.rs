//! `[[agents]]`: names first (every body may send to any agent), then each agent's topic,
//! sinks, error policy and body.

use super::super::diagnostics::Report;
use super::super::load::Entry;
use super::super::model::{Agent, ErrorPolicy, Sink};
use super::super::schema::{AgentDef, OnError};
use super::bodies::{Bodies, BodyKeys, help};
use super::names::{Names, check_app_id, check_topic_name};
use super::topics::Topics;
use super::values::positive;
use crate::codec::Serializer;
use crate::script::{BodyKind, check_agent_name};

/// The agents whose names are declared once, in file order, and those names.
pub(super) struct Declared<'r> {
    pub names: Names,
    pub entries: Vec<&'r Entry<AgentDef>>,
}

impl Declared<'_> {
    /// The names scripts may send to, sorted.
    pub(super) fn script_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .entries
            .iter()
            .map(|e| e.def.name.get_ref().clone())
            .collect();
        names.sort();
        names
    }
}

pub(super) fn declare<'r>(report: &mut Report<'_>, entries: &'r [Entry<AgentDef>]) -> Declared<'r> {
    let mut declared = Declared {
        names: Names::new("agent"),
        entries: Vec::new(),
    };
    for entry in entries {
        if declared
            .names
            .admit(report, &entry.def.name, check_agent_name)
        {
            declared.entries.push(entry);
        }
    }
    declared
}

/// What an agent's checks look up besides its own entry.
pub(super) struct Scope<'a> {
    pub app_id: &'a str,
    pub agents: &'a Names,
    /// Names of entries left out for errors: a sink naming one is not reported unknown.
    pub broken_names: &'a [String],
}

/// Each declared agent, resolved; those with errors are left out (after reporting them).
pub(super) fn check(
    report: &mut Report<'_>,
    declared: &Declared<'_>,
    scope: &Scope<'_>,
    topics: &mut Topics,
    bodies: &Bodies<'_>,
) -> Vec<Agent> {
    declared
        .entries
        .iter()
        .filter_map(|entry| agent(report, entry, scope, topics, bodies))
        .collect()
}

fn agent(
    report: &mut Report<'_>,
    entry: &Entry<AgentDef>,
    scope: &Scope<'_>,
    topics: &mut Topics,
    bodies: &Bodies<'_>,
) -> Option<Agent> {
    let def = &entry.def;
    let name = def.name.get_ref();
    let topic = consumed_topic(report, def, scope.app_id);
    check_name_clash(report, &topics.names, name, &topic);
    // An undeclared topic is created with the app's serializers.
    let (key, value) = topics
        .declared(&topic)
        .map_or((topics.defaults.key, topics.defaults.value), |t| {
            (t.key_serializer, t.value_serializer)
        });
    topics.imply(&topic, key, value);
    let concurrency = positive(
        report,
        def.concurrency.as_ref(),
        "concurrency",
        AgentDef::CONCURRENCY,
    );
    let sinks = sinks(report, def, scope, &topics.names);
    let on_error = error_policy(report, def, scope.app_id, &topic, topics, (key, value));
    let body = bodies.read(
        report,
        BodyKeys::body_or_file(
            BodyKind::Agent,
            &def.name,
            def.body.as_ref(),
            def.file.as_ref(),
            &entry.dropped,
        ),
    );
    Some(Agent {
        name: name.clone(),
        topic,
        key_serializer: key,
        value_serializer: value,
        concurrency,
        sinks,
        on_error,
        drop_stale_epochs: def.drop_stale_epochs.unwrap_or(AgentDef::DROP_STALE_EPOCHS),
        help: help(def.help.as_ref(), body.as_ref()),
        body: body?,
        // Filled in by `tables::check`, which needs every agent's topic.
        tables: Vec::new(),
    })
}

/// The `topic` key, or the agent's default topic.
fn consumed_topic(report: &mut Report<'_>, def: &AgentDef, app_id: &str) -> String {
    if let Some(t) = &def.topic {
        if let Err(why) = check_topic_name(t.get_ref()) {
            report.error(t.span(), why);
        }
        return t.get_ref().clone();
    }
    let name = def.name.get_ref();
    let derived = AgentDef::default_topic(app_id, name);
    // Only report what the parts' own checks did not already report.
    if check_app_id(app_id).is_ok()
        && check_agent_name(name).is_ok()
        && let Err(why) = check_topic_name(&derived)
    {
        report.error(
            def.name.span(),
            format!("the agent's default topic `{{id}}-{{name}}` is invalid: {why}"),
        );
    }
    derived
}

/// A sink names an agent or a declared topic, so the two may not share a name, unless the
/// topic is the agent's own.
fn check_name_clash(report: &mut Report<'_>, topics: &Names, agent: &str, topic: &str) {
    if let Some(span) = topics.span(agent)
        && topic != agent
    {
        report.error(
            span.clone(),
            format!(
                "topic `{agent}` has the same name as agent `{agent}`: sinks name either, so \
                 rename one of them"
            ),
        );
    }
}

fn sinks(report: &mut Report<'_>, def: &AgentDef, scope: &Scope<'_>, topics: &Names) -> Vec<Sink> {
    let mut sinks = Vec::new();
    for sink in &def.sink {
        let target = sink.get_ref();
        if scope.agents.contains(target) {
            sinks.push(Sink::Agent(target.clone()));
        } else if topics.contains(target) {
            sinks.push(Sink::Topic(target.clone()));
        } else if !scope.broken_names.contains(target) {
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
    sinks
}

/// `on_error`, with its dead-letter topic (implied with the serializers of the records it
/// receives, those of the agent's topic).
fn error_policy(
    report: &mut Report<'_>,
    def: &AgentDef,
    app_id: &str,
    consumed: &str,
    topics: &mut Topics,
    (key, value): (Serializer, Serializer),
) -> ErrorPolicy {
    let policy = match def.on_error.unwrap_or_default() {
        OnError::Log => ErrorPolicy::Log,
        OnError::Stop => ErrorPolicy::Stop,
        OnError::DeadLetter => {
            let topic = dead_letter_topic(report, def, app_id, consumed);
            topics.imply(&topic, key, value);
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
    policy
}

fn dead_letter_topic(
    report: &mut Report<'_>,
    def: &AgentDef,
    app_id: &str,
    consumed: &str,
) -> String {
    let topic = match &def.dead_letter_topic {
        Some(t) => {
            if let Err(why) = check_topic_name(t.get_ref()) {
                report.error(t.span(), why);
            }
            t.get_ref().clone()
        }
        None => AgentDef::default_dead_letter_topic(app_id, def.name.get_ref()),
    };
    if topic == consumed {
        let span = def
            .dead_letter_topic
            .as_ref()
            .map_or(def.name.span(), |t| t.span());
        report.error(
            span,
            "the dead-letter topic is the topic the agent consumes: failed records would be \
             processed again forever",
        );
    }
    topic
}
