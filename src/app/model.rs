//! The app definition once validated: names resolved, defaults applied, durations converted,
//! bodies compiled. This is what the worker and the commands use; nothing here can be invalid.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::codec::{Datum, Serializer};
use crate::kafka::{GroupProtocol, ProcessingGuarantee, Properties};
use crate::script::{Script, ScriptLimits};

/// The election that exists in every app, whose leader runs `on_leader = true` timers and
/// tasks. Its topic is Faust's `{id}-__assignor-__leader`.
pub const DEFAULT_ELECTION: &str = "leader";

/// A validated app.
#[derive(Debug)]
pub struct App {
    /// The app file it was loaded from.
    pub path: PathBuf,
    /// Consumer group and prefix of internal topics.
    pub id: String,
    /// `host:port` of each broker, in the order given.
    pub brokers: Vec<String>,
    pub key_serializer: Serializer,
    pub value_serializer: Serializer,
    pub topic_partitions: u32,
    pub topic_replication_factor: u16,
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    /// Session timeout of the election groups: how long a leader that stopped heartbeating
    /// keeps leadership from the others.
    pub election_session_timeout: Duration,
    /// Heartbeat interval of the election groups: bounds the leader hand-off.
    pub election_heartbeat_interval: Duration,
    pub max_poll_interval: Duration,
    pub commit_interval: Duration,
    pub commit_every: u64,
    pub processing_guarantee: ProcessingGuarantee,
    pub group_protocol: GroupProtocol,
    /// Candidates remove a dead leader's member from the election group (see
    /// `crate::election::liveness`).
    pub evict_dead_leaders: bool,
    pub limits: ScriptLimits,
    /// `[kafka]`, as strings (values from the environment and files read in), for every
    /// librdkafka client.
    pub kafka: Properties,
    /// Every topic the app uses: declared ones first (file order), then the implicit ones
    /// (agent channels, dead-letter topics, undeclared agent topics) in agent order, then the
    /// tables' changelogs in table order.
    pub topics: Vec<Topic>,
    pub agents: Vec<Agent>,
    pub timers: Vec<Timer>,
    pub tasks: Vec<Task>,
    /// Every election: the default one ([`DEFAULT_ELECTION`]) first, declared or not.
    pub elections: Vec<Election>,
    /// `[[tables]]`, in file order (scripts name them by index in this order).
    pub tables: Vec<Table>,
}

impl App {
    /// The brokers as librdkafka's `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        self.brokers.join(",")
    }

    pub fn topic(&self, name: &str) -> Option<&Topic> {
        self.topics.iter().find(|t| t.name == name)
    }

    pub fn agent(&self, name: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| a.name == name)
    }

    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }

    pub fn election(&self, name: &str) -> Option<&Election> {
        self.elections.iter().find(|e| e.name == name)
    }

    /// The topic of the default election, as Faust names it.
    pub fn leader_topic(&self) -> String {
        self.election_topic(DEFAULT_ELECTION)
    }

    /// The one-partition topic an election's leaders announce themselves on: Faust's
    /// `{id}-__assignor-__leader` for the default election, with `-{name}` for the others.
    pub fn election_topic(&self, election: &str) -> String {
        if election == DEFAULT_ELECTION {
            format!("{}-__assignor-__leader", self.id)
        } else {
            format!("{}-__assignor-__leader-{election}", self.id)
        }
    }

    /// The consumer group an election's candidates join. It is not the agents' group, so agent
    /// rebalances never move leadership.
    pub fn election_group(&self, election: &str) -> String {
        format!("{}-__election-{election}", self.id)
    }
}

/// A topic and how it is encoded and created.
#[derive(Debug, Clone, PartialEq)]
pub struct Topic {
    pub name: String,
    pub partitions: u32,
    pub replicas: u16,
    pub key_serializer: Serializer,
    pub value_serializer: Serializer,
    pub retention: Option<Duration>,
    pub compacted: bool,
    /// Whether faust-rs may create it when missing.
    pub create: bool,
    /// `[[topics]] config`, as strings.
    pub config: BTreeMap<String, String>,
    /// Declared in `[[topics]]` (false: implied by an agent).
    pub declared: bool,
}

impl Topic {
    /// The configuration to create the topic with: `config` plus `retention.ms` and
    /// `cleanup.policy` from `retention` and `compacted`.
    pub fn creation_config(&self) -> BTreeMap<String, String> {
        let mut config = self.config.clone();
        if let Some(retention) = self.retention {
            config.insert("retention.ms".into(), retention.as_millis().to_string());
        }
        if self.compacted {
            config.insert("cleanup.policy".into(), "compact".into());
        }
        config
    }
}

/// Where an agent's result goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// Another agent (its topic, with its serializers).
    Agent(String),
    /// A declared topic.
    Topic(String),
}

impl fmt::Display for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sink::Agent(name) => write!(f, "@{name}"),
            Sink::Topic(name) => f.write_str(name),
        }
    }
}

/// What an agent does when its body fails on a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorPolicy {
    Log,
    DeadLetter { topic: String },
    Stop,
}

impl fmt::Display for ErrorPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorPolicy::Log => f.write_str("log"),
            ErrorPolicy::DeadLetter { topic } => write!(f, "dead-letter -> {topic}"),
            ErrorPolicy::Stop => f.write_str("stop"),
        }
    }
}

/// Where a body's source came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyOrigin {
    /// Inline in the app file; the script's line 1 is this line of the app file.
    Inline { line: usize },
    /// A `.rhai` file (the path as resolved from the app file's folder).
    File(PathBuf),
}

/// A compiled body.
pub struct Body {
    pub origin: BodyOrigin,
    pub source: String,
    pub script: Script,
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body")
            .field("origin", &self.origin)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// A stream processor.
#[derive(Debug)]
pub struct Agent {
    pub name: String,
    /// The topic it consumes (an entry of [`App::topics`]).
    pub topic: String,
    pub key_serializer: Serializer,
    pub value_serializer: Serializer,
    pub concurrency: u32,
    pub sinks: Vec<Sink>,
    pub on_error: ErrorPolicy,
    /// Skip events whose leader epoch is older than the newest seen.
    pub drop_stale_epochs: bool,
    /// The `help` key, or the body's first comment line, or empty.
    pub help: String,
    pub body: Body,
    /// Indices into [`App::tables`] of the tables its body names, ascending.
    pub tables: Vec<usize>,
}

/// A table (Faust's `Table`, or `GlobalTable` when `global`): keys and values kept per
/// partition, every change written to a compacted changelog topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub name: String,
    /// The value of a missing key (`t[k]`): `null` when not given.
    pub default: Datum,
    /// Partitions of the table and its changelog: those of the topics of the agents that use
    /// it (co-partitioning), checked when the app is loaded.
    pub partitions: u32,
    pub key_serializer: Serializer,
    pub value_serializer: Serializer,
    /// Every worker holds every partition (read from the changelog); agents' writes go to the
    /// key's partition.
    pub global: bool,
    /// `{app id}-{name}-changelog`: compacted, created with the app's topics (an entry of
    /// [`App::topics`]).
    pub changelog: String,
}

/// When a timer fires.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Every so often; the first run one interval after start.
    Interval(Duration),
    /// At the times a crontab expression matches, read in a time zone.
    Cron {
        expression: String,
        timezone: chrono_tz::Tz,
        cron: Box<croner::Cron>,
    },
}

impl Schedule {
    /// The first fire time strictly after `now` (`None` when a cron expression never matches
    /// again).
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Interval(every) => {
                let step = chrono::Duration::from_std(*every).ok()?;
                now.checked_add_signed(step)
            }
            Schedule::Cron { timezone, cron, .. } => {
                let local = now.with_timezone(timezone);
                cron.find_next_occurrence(&local, false)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            }
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Interval(every) => write!(f, "every {}s", every.as_secs_f64()),
            Schedule::Cron {
                expression,
                timezone,
                ..
            } => write!(f, "cron '{expression}' ({timezone})"),
        }
    }
}

/// A periodic body.
#[derive(Debug)]
pub struct Timer {
    pub name: String,
    pub schedule: Schedule,
    /// `Some(election)`: runs only on that election's leader. `None`: on every worker.
    pub election: Option<String>,
    pub help: String,
    pub body: Body,
}

/// A body run once at start (`election: None`) or each time the worker becomes leader.
#[derive(Debug)]
pub struct Task {
    pub name: String,
    pub election: Option<String>,
    pub help: String,
    pub body: Body,
}

/// A named election.
#[derive(Debug)]
pub struct Election {
    pub name: String,
    /// Whether this app's workers run for it.
    pub candidate: bool,
    /// Declared in `[[elections]]` (false: the implicit default election).
    pub declared: bool,
    pub on_elected: Option<Body>,
    pub on_revoked: Option<Body>,
}
