//! `[[topics]]`, and the topics the app implies without declaring them (agent channels,
//! dead-letter topics, tables' changelogs): all are created with the same defaults.

use std::collections::BTreeMap;

use super::super::diagnostics::Report;
use super::super::load::Entry;
use super::super::model::Topic;
use super::super::schema::{AppSection, TopicDef};
use super::names::{Names, check_topic_name};
use super::settings::Settings;
use super::values::{checked_seconds, positive};
use crate::codec::Serializer;

/// What a topic is created with unless its entry says otherwise: `[app]`'s settings.
#[derive(Clone, Copy)]
pub(super) struct TopicDefaults {
    pub partitions: u32,
    pub replicas: u16,
    pub key: Serializer,
    pub value: Serializer,
}

impl TopicDefaults {
    /// `[app]`'s values, or the defaults of its keys when it is missing or invalid (the app is
    /// refused then, but its topics are still checked).
    pub(super) fn of(settings: Option<&Settings>) -> Self {
        match settings {
            Some(s) => TopicDefaults {
                partitions: s.topic_partitions,
                replicas: s.topic_replication_factor,
                key: s.key_serializer,
                value: s.value_serializer,
            },
            None => TopicDefaults {
                partitions: AppSection::TOPIC_PARTITIONS,
                replicas: AppSection::TOPIC_REPLICATION_FACTOR,
                key: AppSection::KEY_SERIALIZER,
                value: AppSection::VALUE_SERIALIZER,
            },
        }
    }
}

/// Every topic of the app so far: declared ones, then those implied by agents.
pub(super) struct Topics {
    pub defaults: TopicDefaults,
    /// The declared names, for sinks and for the agent-name clash.
    pub names: Names,
    declared: Vec<Topic>,
    implied: Vec<Topic>,
}

impl Topics {
    pub(super) fn declared(&self, name: &str) -> Option<&Topic> {
        self.declared.iter().find(|t| t.name == name)
    }

    /// Whether `name` is a topic of the app so far, declared or implied.
    pub(super) fn contains(&self, name: &str) -> bool {
        self.declared(name).is_some() || self.implied.iter().any(|t| t.name == name)
    }

    /// The partitions of topic `name` as the app knows them: `None` for a topic faust-rs does
    /// not create (its count is the broker's, known at run time) or does not know.
    pub(super) fn partitions(&self, name: &str) -> Option<u32> {
        let topic = self
            .declared(name)
            .or_else(|| self.implied.iter().find(|t| t.name == name));
        topic.filter(|t| t.create).map(|t| t.partitions)
    }

    /// Adds `name` as an implied topic with these serializers, unless it already exists.
    pub(super) fn imply(&mut self, name: &str, key: Serializer, value: Serializer) {
        if !self.contains(name) {
            self.implied.push(self.implied_topic(name, key, value));
        }
    }

    /// Adds an implied topic as `topic` says; the caller checked that its name is free.
    pub(super) fn imply_topic(&mut self, topic: Topic) {
        self.implied.push(topic);
    }

    /// A topic the app implies: created with the defaults of a `[[topics]]` entry.
    pub(super) fn implied_topic(&self, name: &str, key: Serializer, value: Serializer) -> Topic {
        Topic {
            name: name.to_owned(),
            partitions: self.defaults.partitions,
            replicas: self.defaults.replicas,
            key_serializer: key,
            value_serializer: value,
            retention: None,
            compacted: TopicDef::COMPACTED,
            create: TopicDef::CREATE,
            config: BTreeMap::new(),
            declared: false,
        }
    }

    /// Declared topics first (in file order), then the implied ones.
    pub(super) fn into_list(self) -> Vec<Topic> {
        let mut topics = self.declared;
        topics.extend(self.implied);
        topics
    }
}

pub(super) fn check(
    report: &mut Report<'_>,
    entries: &[Entry<TopicDef>],
    defaults: TopicDefaults,
) -> Topics {
    let mut topics = Topics {
        defaults,
        names: Names::new("topic"),
        declared: Vec::new(),
        implied: Vec::new(),
    };
    for Entry { def, .. } in entries {
        if topics.names.admit(report, &def.name, check_topic_name) {
            let topic = declared_topic(report, def, &defaults);
            topics.declared.push(topic);
        }
    }
    topics
}

fn declared_topic(report: &mut Report<'_>, def: &TopicDef, defaults: &TopicDefaults) -> Topic {
    let partitions = positive(
        report,
        def.partitions.as_ref(),
        "partitions",
        defaults.partitions,
    );
    let replicas = positive(report, def.replicas.as_ref(), "replicas", defaults.replicas);
    let retention = def.retention.as_ref().and_then(|r| {
        checked_seconds(*r.get_ref(), TopicDef::RETENTION_MAX)
            .map_err(|why| report.error(r.span(), format!("`retention` {why}")))
            .ok()
    });
    Topic {
        name: def.name.get_ref().clone(),
        partitions,
        replicas,
        key_serializer: def.key_serializer.unwrap_or(defaults.key),
        value_serializer: def.value_serializer.unwrap_or(defaults.value),
        retention,
        compacted: def.compacted.unwrap_or(TopicDef::COMPACTED),
        create: def.create.unwrap_or(TopicDef::CREATE),
        config: config(report, def),
        declared: true,
    }
}

/// `config` as strings; keys that other keys of the entry already set are refused.
fn config(report: &mut Report<'_>, def: &TopicDef) -> BTreeMap<String, String> {
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
    config
}
