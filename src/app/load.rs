//! Reading an app file: TOML parsing with spans, then deserializing each section and each
//! array entry on its own, so that one bad agent does not hide another's errors, and several
//! bad keys in one entry are all reported.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::diagnostics::{Report, one_line};
use super::schema::{
    AgentDef, AppSection, ElectionDef, KafkaSection, TableDef, TaskDef, TimerDef, TopicDef,
};

/// The top-level keys of an app file.
const SECTIONS: &str =
    "`app`, `kafka`, `topics`, `agents`, `timers`, `tasks`, `elections`, `tables`";

/// One deserialized table, and the keys that were dropped from it because they had errors
/// (already reported): checks that would only repeat those errors skip them.
pub(crate) struct Entry<T> {
    pub def: T,
    pub dropped: Vec<String>,
}

impl<T> Entry<T> {
    /// Whether `key` was given but dropped for an error of its own.
    pub fn dropped(&self, key: &str) -> bool {
        self.dropped.iter().any(|k| k == key)
    }
}

/// The app file's sections, each entry deserialized. An entry with bad keys is kept without
/// them so that its other keys are checked too; one missing a required key is left out.
#[derive(Default)]
pub(crate) struct RawApp {
    /// `[app]`, when present and it has an `id`.
    pub app: Option<AppSection>,
    /// Whether `[app]` was present at all (to avoid reporting it missing when it was invalid).
    pub app_present: bool,
    pub kafka: KafkaSection,
    pub topics: Vec<Entry<TopicDef>>,
    pub agents: Vec<Entry<AgentDef>>,
    pub timers: Vec<Entry<TimerDef>>,
    pub tasks: Vec<Entry<TaskDef>>,
    pub elections: Vec<Entry<ElectionDef>>,
    pub tables: Vec<Entry<TableDef>>,
    /// Names of entries left out, so that references to them are not reported as unknown.
    pub broken_names: Vec<String>,
}

/// Parses the document. A syntax error is reported alone (the rest cannot be trusted).
pub(crate) fn parse(report: &mut Report<'_>) -> Option<RawApp> {
    let text = report.text;
    let document = match DeTable::parse(text) {
        Ok(document) => document,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            report.error(span, format!("TOML syntax: {}", one_line(e.message())));
            return None;
        }
    };
    let mut raw = RawApp::default();
    for (key, value) in document.get_ref().iter() {
        let name: &str = key.get_ref();
        match name {
            "app" => {
                raw.app_present = true;
                if expect_table(report, value, "`app` must be a table: write [app]") {
                    raw.app = deserialize_entry(report, value).map(|e| e.def);
                }
            }
            "kafka" => {
                if expect_table(report, value, "`kafka` must be a table: write [kafka]") {
                    raw.kafka = deserialize_entry(report, value)
                        .map(|e| e.def)
                        .unwrap_or_default();
                }
            }
            "topics" => raw.topics = entries(report, value, "topics", &mut raw.broken_names),
            "agents" => raw.agents = entries(report, value, "agents", &mut raw.broken_names),
            "timers" => raw.timers = entries(report, value, "timers", &mut raw.broken_names),
            "tasks" => raw.tasks = entries(report, value, "tasks", &mut raw.broken_names),
            "elections" => {
                raw.elections = entries(report, value, "elections", &mut raw.broken_names)
            }
            "tables" => raw.tables = entries(report, value, "tables", &mut raw.broken_names),
            other => report.error(
                key.span(),
                format!("unknown section `{other}`, expected one of {SECTIONS}"),
            ),
        }
    }
    Some(raw)
}

fn expect_table(report: &mut Report<'_>, value: &Spanned<DeValue<'_>>, message: &str) -> bool {
    let is_table = value.get_ref().is_table();
    if !is_table {
        report.error(value.span(), message);
    }
    is_table
}

/// Deserializes each entry of an array of tables (`[[agents]]`).
fn entries<T: DeserializeOwned>(
    report: &mut Report<'_>,
    value: &Spanned<DeValue<'_>>,
    section: &str,
    broken_names: &mut Vec<String>,
) -> Vec<Entry<T>> {
    let Some(array) = value.get_ref().as_array() else {
        report.error(
            value.span(),
            format!(
                "`{section}` must be an array of tables: write [[{section}]] before each entry"
            ),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in array.iter() {
        if !item.get_ref().is_table() {
            report.error(
                item.span(),
                format!(
                    "each entry of `{section}` must be a table, found {}",
                    item.get_ref().type_str()
                ),
            );
            continue;
        }
        match deserialize_entry(report, item) {
            Some(entry) => out.push(entry),
            None => {
                if let Some(name) = item
                    .get_ref()
                    .get("name")
                    .and_then(|n| n.get_ref().as_str())
                {
                    broken_names.push(name.to_owned());
                }
            }
        }
    }
    out
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end && inner.start < outer.end.max(1)
}

/// Whether a value's text holds a span. Sub-tables written as `[a.b]` headers have spans that
/// do not cover their keys, so tables and arrays are searched too.
fn holds(value: &Spanned<DeValue<'_>>, span: &Range<usize>) -> bool {
    if contains(&value.span(), span) {
        return true;
    }
    match value.get_ref() {
        DeValue::Table(table) => table
            .iter()
            .any(|(k, v)| contains(&k.span(), span) || holds(v, span)),
        DeValue::Array(array) => array.iter().any(|v| holds(v, span)),
        _ => false,
    }
}

/// Deserializes one table. On an error, reports it, drops the key it is about and tries again,
/// so that every bad key of the entry is reported. `None` when a required key is missing.
pub(crate) fn deserialize_entry<T: DeserializeOwned>(
    report: &mut Report<'_>,
    value: &Spanned<DeValue<'_>>,
) -> Option<Entry<T>> {
    let mut value = value.clone();
    let mut removed: Vec<String> = Vec::new();
    let attempts = value.get_ref().as_table().map_or(0, |t| t.len()) + 1;
    for _ in 0..attempts {
        let error = match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(def) => {
                return Some(Entry {
                    def,
                    dropped: removed,
                });
            }
            Err(error) => error,
        };
        let message = one_line(error.message());
        if message.starts_with("missing field") {
            // A key removed after an error of its own is not missing: it was reported.
            if !removed.iter().any(|k| message.contains(&format!("`{k}`"))) {
                report.error(entry_anchor(&value), message);
            }
            return None;
        }
        let span = error.span().unwrap_or_else(|| value.span());
        report.error(span.clone(), message);
        let DeValue::Table(table) = value.get_mut() else {
            return None;
        };
        let culprit = table
            .iter()
            .find(|(k, v)| contains(&k.span(), &span) || holds(v, &span))
            .map(|(k, _)| k.get_ref().to_string());
        match culprit {
            Some(key) => {
                table.remove(key.as_str());
                removed.push(key);
            }
            None => return None,
        }
    }
    None
}

/// Where to report something about a whole entry: its `name` if it has one, else its first
/// key, else the entry itself.
fn entry_anchor(value: &Spanned<DeValue<'_>>) -> Range<usize> {
    if let Some(table) = value.get_ref().as_table() {
        if let Some((key, _)) = table.get_key_value("name") {
            return key.span();
        }
        if let Some(first) = table.keys().map(|k| k.span()).min_by_key(|s| s.start) {
            return first;
        }
    }
    value.span()
}
