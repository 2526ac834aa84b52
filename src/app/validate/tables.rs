//! `[[tables]]`: names and defaults first (every body sees the tables as variables, so the
//! script engine needs them before any body is compiled); then, once the agents are resolved,
//! which agents use each table, its partitions (co-partitioned with those agents' topics) and
//! its changelog topic.

use serde_json::Value;
use toml::Spanned;

use super::super::diagnostics::Report;
use super::super::load::Entry;
use super::super::model::{Agent, Table, Topic};
use super::super::schema::TableDef;
use super::names::{Names, check_app_id, check_topic_name};
use super::topics::Topics;
use super::values::positive;
use crate::codec::{Datum, Serializer};
use crate::script::{TableName, check_table_name, mentions};

/// The tables admitted, in file order: the order of [`crate::app::App::tables`], by which
/// scripts name them.
pub(super) struct Declared<'r> {
    tables: Vec<DeclaredTable<'r>>,
}

struct DeclaredTable<'r> {
    def: &'r TableDef,
    default: Datum,
}

impl Declared<'_> {
    /// The tables as the script engine binds them, in file order.
    pub(super) fn script_names(&self) -> Vec<TableName> {
        self.tables
            .iter()
            .map(|t| TableName {
                name: t.def.name.get_ref().clone(),
                default: t.default.clone(),
            })
            .collect()
    }
}

/// Admits each table whose name is free: not another table's, nor an agent's (both are
/// variables in every body, so one would hide the other).
pub(super) fn declare<'r>(
    report: &mut Report<'_>,
    entries: &'r [Entry<TableDef>],
    agents: &Names,
) -> Declared<'r> {
    let mut names = Names::new("table");
    let mut tables = Vec::new();
    for Entry { def, .. } in entries {
        let name = &def.name;
        if !names.admit(report, name, check_table_name) {
            continue;
        }
        if let Some(agent) = agents.span(name.get_ref()) {
            let line = report.position(agent.start).0;
            report.error(
                name.span(),
                format!(
                    "table `{0}` has the same name as agent `{0}` (line {line}): both are \
                     variables in every body, so rename one of them",
                    name.get_ref()
                ),
            );
            continue;
        }
        let default = default_value(report, def.default.as_ref());
        tables.push(DeclaredTable { def, default });
    }
    Declared { tables }
}

/// `default` as JSON, or null when not given (or, after reporting it, when it has no JSON form).
fn default_value(report: &mut Report<'_>, value: Option<&Spanned<toml::Value>>) -> Datum {
    let Some(value) = value else {
        return Datum::NULL;
    };
    match to_json(value.get_ref()) {
        Ok(json) => Datum::Value(json),
        Err(why) => {
            report.error(value.span(), format!("`default` {why}"));
            Datum::NULL
        }
    }
}

fn to_json(value: &toml::Value) -> Result<Value, String> {
    Ok(match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .ok_or_else(|| format!("holds {f}, which JSON cannot represent"))?,
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => {
            return Err(format!(
                "holds the date-time {d}, which JSON cannot represent: quote it to make it a string"
            ));
        }
        toml::Value::Array(items) => {
            Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?)
        }
        toml::Value::Table(table) => Value::Object(
            table
                .iter()
                .map(|(k, v)| Ok((k.clone(), to_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

/// Each declared table, resolved against the agents (whose `tables` this fills in) and added
/// to the topics with its changelog.
pub(super) fn check(
    report: &mut Report<'_>,
    declared: &Declared<'_>,
    app_id: &str,
    agents: &mut [Agent],
    topics: &mut Topics,
) -> Vec<Table> {
    mark_uses(declared, agents);
    declared
        .tables
        .iter()
        .enumerate()
        .map(|(index, t)| table(report, t, index, app_id, agents, topics))
        .collect()
}

/// Sets each agent's `tables`: those its body names, by the rule that decides which
/// variables a body is given.
fn mark_uses(declared: &Declared<'_>, agents: &mut [Agent]) {
    for agent in agents {
        agent.tables = (0..declared.tables.len())
            .filter(|&i| mentions(&agent.body.source, declared.tables[i].def.name.get_ref()))
            .collect();
    }
}

/// An agent that uses a table, with its topic's partitions when known before run time.
struct User<'a> {
    agent: &'a str,
    topic: &'a str,
    partitions: Option<u32>,
}

fn table(
    report: &mut Report<'_>,
    declared: &DeclaredTable<'_>,
    index: usize,
    app_id: &str,
    agents: &[Agent],
    topics: &mut Topics,
) -> Table {
    let def = declared.def;
    let users: Vec<User<'_>> = agents
        .iter()
        .filter(|a| a.tables.contains(&index))
        .map(|a| User {
            agent: &a.name,
            topic: &a.topic,
            partitions: topics.partitions(&a.topic),
        })
        .collect();
    let global = def.global.unwrap_or(TableDef::GLOBAL);
    let partitions = partitions(report, def, global, &users, topics.defaults.partitions);
    let key = def.key_serializer.unwrap_or(topics.defaults.key);
    let value = def.value_serializer.unwrap_or(topics.defaults.value);
    let changelog = changelog(report, def, app_id, topics, partitions, (key, value));
    Table {
        name: def.name.get_ref().clone(),
        default: declared.default.clone(),
        partitions,
        key_serializer: key,
        value_serializer: value,
        global,
        changelog,
    }
}

/// `partitions`, else those of the first user's topic, else the app's. A non-global table
/// must have those of every user's topic: an agent reads and writes the table's partition of
/// its event, which is only the key's partition when both have the same count. (A topic whose
/// count is known only at run time is checked then.)
fn partitions(
    report: &mut Report<'_>,
    def: &TableDef,
    global: bool,
    users: &[User<'_>],
    fallback: u32,
) -> u32 {
    let first = users.iter().find(|u| u.partitions.is_some());
    let derived = first.and_then(|u| u.partitions).unwrap_or(fallback);
    let count = positive(report, def.partitions.as_ref(), "partitions", derived);
    if global {
        return count;
    }
    // A `partitions = 0` was reported: the table is then checked as if it had none.
    let given = def.partitions.as_ref().filter(|p| *p.get_ref() > 0);
    let name = def.name.get_ref();
    let advice = "a table has the partitions of its agents' topics (co-partitioning): make them \
                  equal, or make the table global";
    for user in users {
        let Some(theirs) = user.partitions.filter(|&p| p != count) else {
            continue;
        };
        let (agent, topic) = (user.agent, user.topic);
        match (given, first) {
            (Some(p), _) => report.error(
                p.span(),
                format!(
                    "table `{name}` has {count} partitions but agent `{agent}`, which uses it, \
                     consumes `{topic}`, which has {theirs}: {advice}"
                ),
            ),
            (None, Some(f)) => report.error(
                def.name.span(),
                format!(
                    "agents `{}` and `{agent}` use table `{name}` but their topics have \
                     different partitions (`{}`: {count}, `{topic}`: {theirs}): {advice}",
                    f.agent, f.topic
                ),
            ),
            (None, None) => {}
        }
    }
    count
}

/// The changelog topic, added to the app's topics: compacted (only each key's latest value
/// matters to a restore), with the table's partitions and serializers. faust-rs owns it, so
/// a topic of the same name elsewhere in the app is an error rather than a way to configure it.
fn changelog(
    report: &mut Report<'_>,
    def: &TableDef,
    app_id: &str,
    topics: &mut Topics,
    partitions: u32,
    (key, value): (Serializer, Serializer),
) -> String {
    let table = def.name.get_ref();
    let name = TableDef::changelog_topic(app_id, table);
    // Only report what the parts' own checks did not already report.
    if check_app_id(app_id).is_ok()
        && check_table_name(table).is_ok()
        && let Err(why) = check_topic_name(&name)
    {
        report.error(
            def.name.span(),
            format!("the table's changelog topic `{{id}}-{{name}}-changelog` is invalid: {why}"),
        );
    }
    if topics.contains(&name) {
        report.error(
            def.name.span(),
            format!(
                "the changelog topic `{name}` of table `{table}` is already a topic of the app \
                 (a [[topics]] entry or an agent's): faust-rs creates it compacted with the \
                 table's partitions, so rename the table or the topic"
            ),
        );
    } else {
        let topic = Topic {
            partitions,
            compacted: true,
            ..topics.implied_topic(&name, key, value)
        };
        topics.imply_topic(topic);
    }
    name
}
