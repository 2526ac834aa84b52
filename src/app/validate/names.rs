//! What the app's names may be (Kafka's rules for topics and groups), and that each entry's
//! name is declared once. Agent names follow the scripts' rules instead:
//! [`crate::script::check_agent_name`].

use std::collections::HashMap;
use std::ops::Range;

use toml::Spanned;

use super::super::diagnostics::Report;

/// The names declared so far of one kind of entry, with where each was first declared.
pub(super) struct Names {
    /// For messages: "agent", "topic".
    kind: &'static str,
    first: HashMap<String, Range<usize>>,
}

impl Names {
    pub(super) fn new(kind: &'static str) -> Self {
        Names {
            kind,
            first: HashMap::new(),
        }
    }

    /// Records the first declaration of `name`; a later one is reported (naming the first's
    /// line) and refused.
    fn declare(&mut self, report: &mut Report<'_>, name: &Spanned<String>) -> bool {
        if let Some(first) = self.first.get(name.get_ref()) {
            let line = report.position(first.start).0;
            report.error(
                name.span(),
                format!(
                    "duplicate {} `{}` (first declared on line {line})",
                    self.kind,
                    name.get_ref()
                ),
            );
            return false;
        }
        self.first.insert(name.get_ref().clone(), name.span());
        true
    }

    /// Reports `name` if it breaks `rule` (a name check of this module or the script
    /// layer's), then declares it.
    pub(super) fn admit(
        &mut self,
        report: &mut Report<'_>,
        name: &Spanned<String>,
        rule: impl FnOnce(&str) -> Result<(), String>,
    ) -> bool {
        if let Err(why) = rule(name.get_ref()) {
            report.error(name.span(), why);
        }
        self.declare(report, name)
    }

    pub(super) fn contains(&self, name: &str) -> bool {
        self.first.contains_key(name)
    }

    /// Where `name` was declared.
    pub(super) fn span(&self, name: &str) -> Option<&Range<usize>> {
        self.first.get(name)
    }
}

fn kafka_name_chars(name: &str) -> bool {
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Kafka's rules for topic names.
pub(super) fn check_topic_name(name: &str) -> Result<(), String> {
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

/// The app id names the consumer group and prefixes topic names, so it follows their rules
/// with room left for the suffix.
pub(super) fn check_app_id(id: &str) -> Result<(), String> {
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

/// Timer, task and election names: they appear in group and topic names and in logs.
pub(super) fn check_plain_name(name: &str, what: &str) -> Result<(), String> {
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
