//! The app file as written: serde types for each section, with unknown keys rejected. Values
//! whose position matters for later checks are `Spanned`. These types are what the user writes;
//! [`crate::app::model`] holds what they resolve to. The README's "The app definition" section
//! documents the same keys for users.
//!
//! Units: every duration is in **seconds**, as a float or an integer (`2.0`, `2`, `0.5`), like
//! Faust's `@app.timer(2.0)`.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;

use crate::codec::Serializer;
use crate::kafka::{GroupProtocol, ProcessingGuarantee};
use crate::script::ScriptLimits;

/// `[app]`: the application, as `faust.App(id, broker=..., value_serializer=...)`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSection {
    /// Required. The app's name: the Kafka consumer group of its agents and the prefix of its
    /// internal topics (`{id}-{agent}`, `{id}-__assignor-__leader`). Letters, digits, `.`, `_`
    /// and `-`.
    pub id: Spanned<String>,
    /// Brokers in Faust's URL syntax: `kafka://host:9092`, several separated by `;` or `,`
    /// (`kafka://a:9092;kafka://b:9092`). The scheme may be left out; the port defaults to
    /// [`Self::BROKER_PORT`]. Default: [`Self::BROKER`].
    pub broker: Option<Spanned<String>>,
    /// Serializer of record values on the app's topics unless a `[[topics]]` entry says
    /// otherwise: `raw` or `json`. Default: [`Self::VALUE_SERIALIZER`].
    pub value_serializer: Option<Serializer>,
    /// Serializer of record keys: `raw` or `json`. Default: [`Self::KEY_SERIALIZER`].
    pub key_serializer: Option<Serializer>,
    /// Partitions of the topics faust-rs creates (agent channels, dead-letter topics, declared
    /// topics without `partitions`). Default: [`Self::TOPIC_PARTITIONS`].
    pub topic_partitions: Option<Spanned<u32>>,
    /// Replication factor of the topics faust-rs creates. Default:
    /// [`Self::TOPIC_REPLICATION_FACTOR`].
    pub topic_replication_factor: Option<Spanned<u16>>,
    /// Seconds without heartbeat after which the broker evicts a worker from the group (and a
    /// new leader is elected). librdkafka `session.timeout.ms`. Default and bound:
    /// [`Self::SESSION_TIMEOUT`].
    pub session_timeout: Option<Spanned<f64>>,
    /// Seconds between heartbeats; must be less than `session_timeout` (a third of it or less
    /// is advised). librdkafka `heartbeat.interval.ms`. Default and bound:
    /// [`Self::HEARTBEAT_INTERVAL`].
    pub heartbeat_interval: Option<Spanned<f64>>,
    /// Seconds without heartbeat after which an election group gives a candidate up — and, if
    /// it led, elects another: how long a paused, crashed-host or cut-off leader keeps
    /// leadership from the others (a dead leader process is removed at once, see
    /// `evict_dead_leaders`). Longer than the time a Kafka cluster needs to replace a failed
    /// broker, so that a broker failure never costs a term. Default and bound:
    /// [`Self::ELECTION_SESSION_TIMEOUT`].
    pub election_session_timeout: Option<Spanned<f64>>,
    /// Seconds between heartbeats of the election groups (one per election, separate from the
    /// agents' group). A leader's departure is noticed by the other candidates at their next
    /// heartbeat, so this bounds the leader hand-off; must be less than
    /// `election_session_timeout`. Default and bound: [`Self::ELECTION_HEARTBEAT_INTERVAL`].
    pub election_heartbeat_interval: Option<Spanned<f64>>,
    /// Seconds an agent may spend between two polls before the worker is considered stuck and
    /// leaves the group; at least `session_timeout`. librdkafka `max.poll.interval.ms`.
    /// Default and bound: [`Self::MAX_POLL_INTERVAL`].
    pub max_poll_interval: Option<Spanned<f64>>,
    /// `at_least_once` or `exactly_once` (Faust's `processing_guarantee`): whether the agents'
    /// outputs and input offsets are committed together in Kafka transactions. Default:
    /// [`Self::PROCESSING_GUARANTEE`].
    pub processing_guarantee: Option<ProcessingGuarantee>,
    /// Seconds between offset commits of processed records (consumed by the worker), which
    /// under `exactly_once` are transaction commits. Faust's `broker_commit_interval`. Default
    /// and bound: [`Self::COMMIT_INTERVAL`], [`Self::EXACTLY_ONCE_COMMIT_INTERVAL`] under
    /// `exactly_once`.
    pub commit_interval: Option<Spanned<f64>>,
    /// Commit after this many processed records even before `commit_interval` has passed
    /// (consumed by the worker). Faust's `broker_commit_every`. Default: [`Self::COMMIT_EVERY`],
    /// [`Self::EXACTLY_ONCE_COMMIT_EVERY`] under `exactly_once`.
    pub commit_every: Option<Spanned<u64>>,
    /// Kafka group protocol: `classic` or `consumer` (KIP-848, brokers 4.0+). librdkafka
    /// `group.protocol`. Default: [`Self::GROUP_PROTOCOL`].
    pub group_protocol: Option<GroupProtocol>,
    /// When a leader's process dies (its web port refuses connections or another process
    /// answers there), the candidates remove its member from the election group at once
    /// instead of waiting for its session to time out. A paused leader is never removed this
    /// way. Default: [`Self::EVICT_DEAD_LEADERS`].
    pub evict_dead_leaders: Option<bool>,
    /// `[app.limits]`: bounds on what one script evaluation may do.
    #[serde(default)]
    pub limits: ScriptLimits,
}

/// The defaults of `[app]` keys, each defined here once (the README's `[app]` table states the
/// same values; a test compares them). Duration keys also carry the largest value accepted.
impl AppSection {
    pub const BROKER: &'static str = "kafka://localhost:9092";
    /// The port of a broker written without one.
    pub const BROKER_PORT: u16 = 9092;
    /// Faust's default.
    pub const VALUE_SERIALIZER: Serializer = Serializer::Json;
    /// Faust's default.
    pub const KEY_SERIALIZER: Serializer = Serializer::Raw;
    pub const TOPIC_PARTITIONS: u32 = 8;
    pub const TOPIC_REPLICATION_FACTOR: u16 = 1;
    /// 6 s is the smallest a default broker accepts (`group.min.session.timeout.ms`): the
    /// fastest failover.
    pub const SESSION_TIMEOUT: DurationKey = DurationKey::new("session_timeout", 6.0, 3600.0);
    pub const HEARTBEAT_INTERVAL: DurationKey = DurationKey::new("heartbeat_interval", 1.5, 3600.0);
    /// Kafka's brokers fence a failed broker after `broker.session.timeout.ms` (9 s by default)
    /// and then move its partitions and group coordinators; the election groups' members reach
    /// the new coordinator a second or two later. Until then their heartbeats go unanswered —
    /// also when only a replica of the coordinator's log died, which holds its answers back.
    /// 15 s outlasts that: measured with 6 s, every broker KILL that touched an election group
    /// ended its term, with 13–19 s without a leader.
    pub const ELECTION_SESSION_TIMEOUT: DurationKey =
        DurationKey::new("election_session_timeout", 15.0, 3600.0);
    pub const ELECTION_HEARTBEAT_INTERVAL: DurationKey =
        DurationKey::new("election_heartbeat_interval", 0.1, 3600.0);
    pub const MAX_POLL_INTERVAL: DurationKey =
        DurationKey::new("max_poll_interval", 300.0, 86400.0);
    pub const COMMIT_INTERVAL: DurationKey = DurationKey::new("commit_interval", 2.8, 86400.0);
    /// A read-committed reader sees an event's outputs once their transaction commits: the
    /// commit interval is the latency it adds. Kafka Streams' default under exactly-once.
    pub const EXACTLY_ONCE_COMMIT_INTERVAL: DurationKey =
        DurationKey::new("commit_interval", 0.1, 86400.0);
    /// Faust's default.
    pub const PROCESSING_GUARANTEE: ProcessingGuarantee = ProcessingGuarantee::AtLeastOnce;
    pub const COMMIT_EVERY: u64 = 10_000;
    /// Under exactly-once each commit ends a transaction (a marker in every partition written
    /// to, a round trip to the coordinator) and holds new jobs back until the running ones
    /// end: at 10,000 a busy worker committed every 40 ms and lost 40 % of its events/s
    /// (bench/pipeline.sh). The commit interval bounds the work redone after a crash anyway.
    pub const EXACTLY_ONCE_COMMIT_EVERY: u64 = 100_000;
    /// Works with every broker.
    pub const GROUP_PROTOCOL: GroupProtocol = GroupProtocol::Classic;
    /// Safe on (a wrong removal costs the live leader one term, never a second leader), and
    /// a dead leader's successor leads in a fraction of a second instead of a session timeout.
    pub const EVICT_DEAD_LEADERS: bool = true;
}

/// A duration key: its name, its default and the largest value it accepts, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DurationKey {
    pub key: &'static str,
    pub default: f64,
    pub max: f64,
}

impl DurationKey {
    const fn new(key: &'static str, default: f64, max: f64) -> Self {
        DurationKey { key, default, max }
    }
}

/// `[[topics]]`: a topic the app reads or writes, with how it is encoded and created.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicDef {
    /// Required. The topic's name in Kafka.
    pub name: Spanned<String>,
    /// Partitions when faust-rs creates it. Default: `[app] topic_partitions`.
    pub partitions: Option<Spanned<u32>>,
    /// Replication factor when faust-rs creates it. Default: `[app] topic_replication_factor`.
    pub replicas: Option<Spanned<u16>>,
    /// `raw` or `json`. Default: `[app] key_serializer`.
    pub key_serializer: Option<Serializer>,
    /// `raw` or `json`. Default: `[app] value_serializer`.
    pub value_serializer: Option<Serializer>,
    /// How long records are kept, in seconds (Kafka `retention.ms`), at most
    /// [`Self::RETENTION_MAX`]. Default: the broker's.
    pub retention: Option<Spanned<f64>>,
    /// Keep only the latest record per key (Kafka `cleanup.policy=compact`). Default:
    /// [`Self::COMPACTED`].
    pub compacted: Option<bool>,
    /// Whether faust-rs may create the topic when it is missing. `false` for topics owned by
    /// someone else: the worker then only checks it exists. Default: [`Self::CREATE`].
    pub create: Option<bool>,
    /// More topic configuration passed to topic creation as is (`"min.insync.replicas" = 2`).
    #[serde(default)]
    pub config: BTreeMap<Spanned<String>, Spanned<ConfigValue>>,
}

/// The defaults of a `[[topics]]` entry, which also apply to the topics faust-rs implies (agent
/// channels, dead-letter topics). Partitions, replicas and serializers default to `[app]`'s.
impl TopicDef {
    pub const COMPACTED: bool = false;
    pub const CREATE: bool = true;
    pub const RETENTION_MAX: f64 = 1e12;
}

/// What an agent does when its body fails on a record (a script error, a value that does not
/// decode, a sink that cannot be written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// Log the error with topic/partition/offset and go on with the next record.
    #[default]
    Log,
    /// Write the record as received to the dead-letter topic, log, and go on.
    DeadLetter,
    /// Log and stop the worker (exit status 1), leaving the record uncommitted.
    Stop,
}

/// `[[agents]]`: a stream processor, as `@app.agent()`; its body runs once per record.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentDef {
    /// Required. Scripts send to the agent with `name.send(v)`, the CLI with `send @name`, so it
    /// is an identifier: a letter or `_`, then letters, digits or `_`.
    pub name: Spanned<String>,
    /// The topic the agent consumes: a `[[topics]]` entry or any topic. Default:
    /// [`Self::default_topic`] (Faust's agent channel), created by faust-rs.
    pub topic: Option<Spanned<String>>,
    /// How many copies of the agent run in each worker (Faust's `concurrency`), at least 1.
    /// Default: [`Self::CONCURRENCY`].
    pub concurrency: Option<Spanned<u32>>,
    /// Where the body's result goes (Faust's `sink=`): agent names, or names of `[[topics]]`
    /// entries (declare an external topic with `create = false`). A `null`/unit result sends
    /// nothing. Default: none.
    #[serde(default)]
    pub sink: Vec<Spanned<String>>,
    /// `log`, `dead-letter` or `stop`. Default: [`OnError`]'s.
    pub on_error: Option<OnError>,
    /// Topic for `on_error = "dead-letter"`. Default: [`Self::default_dead_letter_topic`].
    pub dead_letter_topic: Option<Spanned<String>>,
    /// Drop events sent by a stale leader: an event whose `faust-rs-epoch` header is older
    /// than the newest epoch this agent has seen (in events or in the default election) is
    /// skipped and counted, not processed. Events without the header are always processed.
    /// Default: [`Self::DROP_STALE_EPOCHS`].
    pub drop_stale_epochs: Option<bool>,
    /// One line shown by `faust-rs agents`. Default: the body's first comment line.
    pub help: Option<String>,
    /// The Rhai body, inline. Exactly one of `body` and `file`.
    pub body: Option<Spanned<String>>,
    /// A `.rhai` file holding the body, relative to the app file. Exactly one of `body` and
    /// `file`.
    pub file: Option<Spanned<String>>,
}

/// The defaults of an `[[agents]]` entry.
impl AgentDef {
    pub const CONCURRENCY: u32 = 1;
    pub const DROP_STALE_EPOCHS: bool = false;

    /// `{app id}-{name}`: Faust's agent channel.
    pub fn default_topic(app_id: &str, name: &str) -> String {
        format!("{app_id}-{name}")
    }

    pub fn default_dead_letter_topic(app_id: &str, name: &str) -> String {
        format!("{app_id}-{name}-dead-letter")
    }
}

/// `[[timers]]`: a body run periodically, as `@app.timer(2.0, on_leader=True)` or `@app.crontab`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimerDef {
    /// Required. Letters, digits, `.`, `_`, `-`.
    pub name: Spanned<String>,
    /// Seconds between runs (> 0, at most [`Self::INTERVAL_MAX`]). The first run is one interval
    /// after start. Exactly one of `interval` and `cron`.
    pub interval: Option<Spanned<f64>>,
    /// A 5-field crontab expression: minute hour day-of-month month day-of-week. Exactly one of
    /// `interval` and `cron`.
    pub cron: Option<Spanned<String>>,
    /// IANA time zone the `cron` expression is read in (`Europe/Paris`). Default:
    /// [`Self::TIMEZONE`].
    pub timezone: Option<Spanned<String>>,
    /// Run only on the leader of the app's default election (`leader`). Default: false.
    pub on_leader: Option<Spanned<bool>>,
    /// Deprecated spelling of `on_leader` (Faust's older `on_master`); accepted with a warning.
    pub on_master: Option<Spanned<bool>>,
    /// Run only on the leader of this `[[elections]]` entry (implies `on_leader`).
    pub election: Option<Spanned<String>>,
    /// One line describing the timer. Default: the body's first comment line.
    pub help: Option<String>,
    /// The Rhai body, inline. Exactly one of `body` and `file`.
    pub body: Option<Spanned<String>>,
    /// A `.rhai` file holding the body, relative to the app file.
    pub file: Option<Spanned<String>>,
}

/// The defaults and bounds of a `[[timers]]` entry.
impl TimerDef {
    pub const INTERVAL_MAX: f64 = 1e9;
    pub const TIMEZONE: chrono_tz::Tz = chrono_tz::Tz::UTC;
}

/// `[[tasks]]`: a body run once at start (Faust's `@app.task`), or each time the worker becomes
/// leader.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskDef {
    /// Required. Letters, digits, `.`, `_`, `-`.
    pub name: Spanned<String>,
    /// false: run once when the worker starts. true: run each time this worker becomes leader
    /// of the default election. Default: false.
    pub on_leader: Option<Spanned<bool>>,
    /// Run each time this worker becomes leader of this `[[elections]]` entry.
    pub election: Option<Spanned<String>>,
    /// One line describing the task. Default: the body's first comment line.
    pub help: Option<String>,
    /// The Rhai body, inline. Exactly one of `body` and `file`.
    pub body: Option<Spanned<String>>,
    /// A `.rhai` file holding the body, relative to the app file.
    pub file: Option<Spanned<String>>,
}

/// `[[elections]]`: a named election in the tooz sense: one leader at a time among the
/// candidates. The default election `leader` exists without being declared; declare it to give
/// it hooks or make this app's workers non-candidates.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElectionDef {
    /// Required. Letters, digits, `.`, `_`, `-`.
    pub name: Spanned<String>,
    /// Whether this app's workers run for the election (false: they only follow it).
    /// Default: [`Self::CANDIDATE`].
    pub candidate: Option<bool>,
    /// Body run when this worker is elected, inline.
    pub on_elected: Option<Spanned<String>>,
    /// Body run when this worker is elected, from a `.rhai` file relative to the app file.
    pub on_elected_file: Option<Spanned<String>>,
    /// Body run when this worker loses the leadership, inline.
    pub on_revoked: Option<Spanned<String>>,
    /// Body run when this worker loses the leadership, from a `.rhai` file.
    pub on_revoked_file: Option<Spanned<String>>,
}

/// The defaults of an `[[elections]]` entry (also those of the default election when it is not
/// declared).
impl ElectionDef {
    pub const CANDIDATE: bool = true;
}

/// `[[tables]]`: a table kept by the app's agents (Faust's `app.Table`, or `app.GlobalTable`
/// with `global = true`): keys and values per partition, every change written to a compacted
/// changelog topic ([`Self::changelog_topic`]) that a worker restores its partitions from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableDef {
    /// Required. Every body sees the table as a variable of this name (`counts[key] += 1`), so
    /// it is an identifier, and no agent may have it.
    pub name: Spanned<String>,
    /// The value of a missing key (`t[k]`, Faust's `default=`): any TOML value but a date-time,
    /// read as JSON. Default: null.
    pub default: Option<Spanned<toml::Value>>,
    /// Partitions of the table and of its changelog. Those of a non-global table must be
    /// those of the topic of every agent that uses it (co-partitioning: an agent reads and
    /// writes the partition of its event). Default: those of the topic of the first agent
    /// (file order) whose body names the table, else `[app] topic_partitions`.
    pub partitions: Option<Spanned<u32>>,
    /// `raw` or `json`, for the changelog's keys. Default: `[app] key_serializer`.
    pub key_serializer: Option<Serializer>,
    /// `raw` or `json`, for the changelog's values. Default: `[app] value_serializer`.
    pub value_serializer: Option<Serializer>,
    /// Every worker holds every partition (Faust's `GlobalTable`); exempt from
    /// co-partitioning. Default: [`Self::GLOBAL`].
    pub global: Option<bool>,
    /// One line describing the table, for readers of the app file.
    pub help: Option<String>,
}

/// The defaults of a `[[tables]]` entry. Partitions and serializers default as described on
/// the keys.
impl TableDef {
    pub const GLOBAL: bool = false;

    /// `{app id}-{name}-changelog`: Faust's changelog topic.
    pub fn changelog_topic(app_id: &str, name: &str) -> String {
        format!("{app_id}-{name}-changelog")
    }
}

/// A librdkafka or topic configuration value: a string, integer, float or boolean, kept as the
/// string librdkafka expects (`true`, `5000`, `0.5`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigValue(pub String);

impl<'de> Deserialize<'de> for ConfigValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ConfigValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a string, number or boolean (librdkafka keys contain dots: quote them, \
                     as in \"sasl.mechanism\" = \"PLAIN\")",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ConfigValue, E> {
                Ok(ConfigValue(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ConfigValue, E> {
                Ok(ConfigValue(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ConfigValue, E> {
                Ok(ConfigValue(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ConfigValue, E> {
                Ok(ConfigValue(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ConfigValue, E> {
                Ok(ConfigValue(v.to_string()))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// `[kafka]`: librdkafka properties passed as they are to every client.
pub type KafkaSection = BTreeMap<Spanned<String>, Spanned<KafkaValue>>;

/// A `[kafka]` value: written in the app file, or taken from the environment or a file when the
/// worker starts, so that an app file can be committed without its secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KafkaValue {
    /// `"sasl.mechanism" = "PLAIN"` (strings, numbers and booleans, as [`ConfigValue`]).
    Written(String),
    /// `"sasl.password" = { env = "KAFKA_PASSWORD" }`: the variable's value.
    Env(String),
    /// `"sasl.password" = { file = "/run/secrets/kafka" }`: the file's content without its final
    /// line end; a relative path is relative to the app file.
    File(String),
}

impl<'de> Deserialize<'de> for KafkaValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = toml::Value::deserialize(deserializer)?;
        let Some(table) = value.as_table() else {
            let ConfigValue(text) = ConfigValue::deserialize(value)
                .map_err(|e| de::Error::custom(e.message().trim_end()))?;
            return Ok(KafkaValue::Written(text));
        };
        let source = match table.iter().next() {
            Some((from, toml::Value::String(name))) if table.len() == 1 => match from.as_str() {
                "env" => Some(KafkaValue::Env(name.clone())),
                "file" => Some(KafkaValue::File(name.clone())),
                _ => None,
            },
            _ => None,
        };
        source.ok_or_else(|| {
            de::Error::custom(
                "a table is no librdkafka value: read a value from { env = \"VARIABLE\" } or \
                 { file = \"PATH\" }; and quote keys with dots, as in \"sasl.mechanism\" = \
                 \"PLAIN\" (unquoted, they make tables)",
            )
        })
    }
}
