//! librdkafka client configurations. Every client starts from the same base (brokers, client
//! id, the app's `[kafka]` pass-through table) and adds what its role needs. The pass-through
//! table wins over our defaults, except for the few settings at-least-once depends on, which
//! are forced back and named in a warning.

use std::time::Duration;

use rdkafka::ClientConfig;
use serde::Deserialize;

use super::Properties;

/// Which consumer-group protocol a group uses. Deserialized from the app file's
/// `group_protocol` spelling (`"classic"`, `"consumer"`), which is also librdkafka's
/// `group.protocol` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupProtocol {
    /// The classic protocol, with the cooperative-sticky assignor: a rebalance moves only the
    /// partitions that must move. Works with every broker.
    Classic,
    /// Kafka 4's broker-driven protocol (KIP-848). Session timeout and heartbeat interval are
    /// then the broker's (per-group) settings, not the client's.
    Consumer,
}

impl GroupProtocol {
    /// librdkafka's `group.protocol` value, as the app file spells it too.
    pub fn name(self) -> &'static str {
        match self {
            GroupProtocol::Classic => "classic",
            GroupProtocol::Consumer => "consumer",
        }
    }
}

/// What the agents promise about their records (`processing_guarantee` in the app file, the
/// same spelling as Faust's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessingGuarantee {
    /// Offsets are committed once the records a body sent are acknowledged: after a crash,
    /// events since the last commit are processed again and their records sent again.
    AtLeastOnce,
    /// Each worker's outputs and input offsets are committed together in Kafka transactions
    /// (KIP-447): a read-committed reader sees every event's records once.
    ExactlyOnce,
}

impl ProcessingGuarantee {
    /// The app file's spelling.
    pub fn name(self) -> &'static str {
        match self {
            ProcessingGuarantee::AtLeastOnce => "at_least_once",
            ProcessingGuarantee::ExactlyOnce => "exactly_once",
        }
    }
}

/// How a worker talks to the cluster: shared by every client it creates.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// librdkafka's `bootstrap.servers` list.
    pub bootstrap: String,
    /// Shown in the broker's logs and metrics.
    pub client_id: String,
    /// The app's `[kafka]` table, passed as-is.
    pub overrides: Properties,
}

/// One consumer group membership.
#[derive(Debug, Clone)]
pub struct GroupSettings {
    pub group_id: String,
    /// Static membership (`group.instance.id`): a restart within the session timeout gets its
    /// partitions back without a rebalance.
    pub instance_id: Option<String>,
    pub protocol: GroupProtocol,
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub max_poll_interval: Duration,
}

/// Settings the worker's correctness rests on; a pass-through value for them is overridden.
const CONSUMER_INVARIANTS: &[(&str, &str)] = &[
    // Offsets are committed by the worker once events and their sends are acknowledged.
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
];

/// What exactly-once adds to [`CONSUMER_INVARIANTS`].
const EXACTLY_ONCE_CONSUMER_INVARIANTS: &[(&str, &str)] = &[
    // Records of aborted transactions (a dead or fenced worker's) are never read, and the
    // committed offsets a new owner starts from wait for transactions still settling
    // (librdkafka asks for stable offsets when it reads committed).
    ("isolation.level", "read_committed"),
];

/// What reading a table's changelog rests on, whatever the `[kafka]` table says.
const CHANGELOG_READER_INVARIANTS: &[(&str, &str)] = &[
    // librdkafka assigns partitions through a group handle, so it needs a group id; nothing
    // joins that group or commits to it.
    ("group.id", "faust-rs-changelog-reader"),
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("enable.partition.eof", "true"),
    ("auto.offset.reset", "earliest"),
    ("isolation.level", "read_committed"),
];

/// How long a transaction of the agents may stay open before the broker aborts it: what a
/// read-committed reader of their outputs waits, at worst, for a worker killed with a
/// transaction open (whose partitions' next owner has another transactional id, so it does not
/// fence it). Kafka Streams' default under exactly-once; librdkafka's is 60 s.
const EXACTLY_ONCE_TRANSACTION_TIMEOUT: &str = "10000";

impl ClientSettings {
    fn base(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap)
            .set("client.id", &self.client_id);
        // KIP-714 client metrics, on by default in librdkafka, cost six HDR histograms per
        // broker connection of every client from the start, though they are only pushed if
        // the cluster has a metrics subscription matching the client: 1.6 MiB of an idle
        // worker's 3.2 MiB of heap. Off; `enable.metrics.push = "true"` in `[kafka]` turns
        // them on.
        config.set("enable.metrics.push", "false");
        // The static OpenSSL's own CA directory is the one it was built for (/usr/local/ssl),
        // which distributions leave empty. For brokers librdkafka then probes the usual places
        // (/etc/ssl/certs/ca-certificates.crt, ...) by itself; for HTTPS (the OIDC token
        // endpoint) it does not, and an identity provider's certificate would not verify. So
        // probe there too, unless the app names its CAs (`https.ca.location` or `https.ca.pem`,
        // which librdkafka will not take together).
        let names_its_cas = ["https.ca.location", "https.ca.pem"]
            .iter()
            .any(|key| self.overrides.get(key).is_some());
        if !names_its_cas {
            config.set("https.ca.location", "probe");
        }
        config
    }

    fn apply_overrides(&self, config: &mut ClientConfig) {
        for (key, value) in self.overrides.iter() {
            config.set(key, value);
        }
    }

    /// A producer that never loses or duplicates a record on retry: idempotent, acks from
    /// every in-sync replica, and a short linger so sends batch without adding visible delay.
    pub fn producer(&self) -> ClientConfig {
        let mut config = self.base();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5");
        self.apply_overrides(&mut config);
        config
    }

    /// The producer of an election's terms (the caller adds `transactional.id`): a
    /// [`ClientSettings::producer`] that also retries a lost broker within a second.
    ///
    /// While the transaction coordinator is down, librdkafka looks for its successor
    /// (FindCoordinator) only after a connection attempt to the lost one fails, and those
    /// attempts back off exponentially up to `reconnect.backoff.max.ms` (10 s by default). After
    /// a kill -9 of the coordinator's broker, Kafka moves the coordinator once that broker is
    /// fenced (9 s or more later), when those attempts are seconds apart: measured, the
    /// commit of the transaction in flight came 5.6 and 8.7 s after the move (a leader's tick
    /// 18.6 and 20.1 s late, while its election went on within 0.4 s). With at most 1 s
    /// between attempts (and librdkafka's 0.5 s before each query) the successor is found
    /// within 1.5 s of the move. The pass-through table still wins.
    pub fn term_producer(&self) -> ClientConfig {
        let mut config = self.producer();
        if self.overrides.get("reconnect.backoff.max.ms").is_none() {
            config.set("reconnect.backoff.max.ms", "1000");
        }
        config
    }

    /// The agents' producer under exactly-once: transactional, under `transactional_id` (one
    /// per worker, stable across its restarts, so that a restarted worker fences what it left
    /// open), with a [`ClientSettings::term_producer`]'s quick reconnects to a moved
    /// coordinator and a transaction timeout of 10 s unless the `[kafka]` table says otherwise.
    pub fn exactly_once_producer(&self, transactional_id: &str) -> ClientConfig {
        let mut config = self.term_producer();
        config.set("transactional.id", transactional_id);
        if self.overrides.get("transaction.timeout.ms").is_none() {
            config.set("transaction.timeout.ms", EXACTLY_ONCE_TRANSACTION_TIMEOUT);
        }
        config
    }

    /// The agents' consumer under exactly-once: a [`ClientSettings::consumer`] that reads
    /// committed records only, whatever the `[kafka]` table says.
    pub fn exactly_once_consumer(&self, group: &GroupSettings) -> ClientConfig {
        let mut config = self.consumer(group);
        enforce(&mut config, EXACTLY_ONCE_CONSUMER_INVARIANTS);
        config
    }

    /// A consumer in `group` that commits only what the worker says is finished.
    pub fn consumer(&self, group: &GroupSettings) -> ClientConfig {
        let mut config = self.base();
        config
            .set("group.id", &group.group_id)
            .set("auto.offset.reset", "earliest")
            .set("max.poll.interval.ms", millis(group.max_poll_interval))
            .set("group.protocol", group.protocol.name())
            // librdkafka (since 2.1) stops fetching a partition for this long once its local
            // queue is full; at the default 1000 ms a fast agent drains the queue long before
            // the next fetch and idles most of the time (measured: 130k events/s at 20% CPU,
            // 700k at 100% with 10 ms).
            .set("fetch.queue.backoff.ms", "10")
            // What librdkafka prefetches ahead of the agents (64 MiB by default): 2 MiB is
            // about 100 ms of records at 250k events/s of 80 bytes, enough to keep fetching
            // ahead of the agents on a LAN; measured (bench/pipeline.sh, 1M records) peak RSS
            // 88 -> 51 MiB and no fewer events/s. Over a slow link to the brokers raise it in
            // `[kafka]`.
            .set("queued.max.messages.kbytes", "2048");
        match group.protocol {
            GroupProtocol::Classic => {
                config
                    .set("partition.assignment.strategy", "cooperative-sticky")
                    .set("session.timeout.ms", millis(group.session_timeout))
                    .set("heartbeat.interval.ms", millis(group.heartbeat_interval));
            }
            // The broker owns session and heartbeat timing; librdkafka refuses them here.
            GroupProtocol::Consumer => {}
        }
        if let Some(instance) = &group.instance_id {
            config.set("group.instance.id", instance);
        }
        self.apply_overrides(&mut config);
        enforce(&mut config, CONSUMER_INVARIANTS);
        config
    }

    /// A reader of tables' changelogs: assigned partitions (no group, nothing committed),
    /// committed records only (an aborted transaction's changes never happened), and told when
    /// it reaches a partition's end.
    pub fn changelog_reader(&self) -> ClientConfig {
        let mut config = self.base();
        // As for the agents' consumer (see `consumer`): at librdkafka's 1000 ms backoff on a
        // full local queue a recovery idled a second at a time (measured: 1,000,000 records in
        // 3.0-4.0 s, 2.3-3.1 s with 10 ms), and 2 MiB of prefetch is plenty to read ahead.
        config
            .set("fetch.queue.backoff.ms", "10")
            .set("queued.max.messages.kbytes", "2048");
        self.apply_overrides(&mut config);
        enforce(&mut config, CHANGELOG_READER_INVARIANTS);
        config
    }

    /// An admin client (topic creation).
    pub fn admin(&self) -> ClientConfig {
        let mut config = self.base();
        self.apply_overrides(&mut config);
        config
    }
}

/// The librdkafka this binary links: its version and the features it was built with
/// (`builtin.features`: codecs, ssl, sasl mechanisms, ...).
pub fn librdkafka_build() -> (String, String) {
    let (_, version) = rdkafka::util::get_rdkafka_version();
    let features = ClientConfig::new()
        .create_native_config()
        .and_then(|config| config.get("builtin.features"))
        .unwrap_or_else(|e| format!("unknown ({e})"));
    (version, without_phantom_gssapi(features))
}

/// `features` without `sasl_gssapi` unless this binary has GSSAPI (`--features gssapi`).
/// librdkafka built with CMake (as it is here, for OIDC) but without Cyrus SASL still lists
/// `sasl_gssapi`: it tests `#ifdef WITH_SASL_CYRUS`, which its CMake build defines as 0. The
/// mechanism itself is missing all the same (`sasl.mechanism=GSSAPI` fails when a client is
/// created: "No provider for SASL mechanism GSSAPI").
fn without_phantom_gssapi(features: String) -> String {
    if cfg!(feature = "gssapi") {
        return features;
    }
    features
        .split(',')
        .filter(|feature| *feature != "sasl_gssapi")
        .collect::<Vec<_>>()
        .join(",")
}

/// Sets `invariants` in `config`, warning of each pass-through value it overrides.
fn enforce(config: &mut ClientConfig, invariants: &[(&str, &str)]) {
    for (key, value) in invariants {
        if config.get(key).is_some_and(|v| v != *value) {
            tracing::warn!(
                "[kafka] {key} is ignored: faust-rs needs {key}={value} for its processing guarantee"
            );
        }
        config.set(*key, *value);
    }
}

fn millis(duration: Duration) -> String {
    duration.as_millis().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(overrides: &[(&str, &str)]) -> ClientSettings {
        ClientSettings {
            bootstrap: "h1:9092,h2:9092".into(),
            client_id: "faust-rs-test".into(),
            overrides: Properties::new(
                overrides
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
        }
    }

    fn group(protocol: GroupProtocol) -> GroupSettings {
        GroupSettings {
            group_id: "app".into(),
            instance_id: Some("app-w1".into()),
            protocol,
            session_timeout: Duration::from_secs(6),
            heartbeat_interval: Duration::from_millis(1500),
            max_poll_interval: Duration::from_secs(300),
        }
    }

    #[test]
    fn the_binary_speaks_tls_sasl_oidc_and_every_codec() {
        let (version, features) = librdkafka_build();
        assert!(version.starts_with("2."), "{version}");
        let features: Vec<&str> = features.split(',').collect();
        for wanted in [
            "gzip",
            "snappy",
            "ssl",
            "sasl_plain",
            "sasl_scram",
            "sasl_oauthbearer",
            "zstd",
            "lz4",
            // libcurl (static): the OIDC client-credentials token request.
            "http",
            "oidc",
        ] {
            assert!(features.contains(&wanted), "{wanted} missing: {features:?}");
        }
        assert_eq!(
            features.contains(&"sasl_gssapi"),
            cfg!(feature = "gssapi"),
            "sasl_gssapi listed iff built with --features gssapi: {features:?}"
        );
    }

    #[test]
    fn gssapi_is_there_exactly_when_built_in() {
        // What `without_phantom_gssapi` relies on: without the feature, librdkafka lists
        // sasl_gssapi but has no provider for it. No brokers are named: nothing is contacted;
        // relogin 0 keeps librdkafka from running `kinit`.
        let created = ClientConfig::new()
            .set("security.protocol", "SASL_PLAINTEXT")
            .set("sasl.mechanism", "GSSAPI")
            .set("sasl.kerberos.min.time.before.relogin", "0")
            .create::<rdkafka::producer::BaseProducer>();
        if cfg!(feature = "gssapi") {
            assert!(created.is_ok(), "{:?}", created.err());
        } else {
            let error = created.err().expect("no GSSAPI provider").to_string();
            assert!(
                error.contains("No provider for SASL mechanism GSSAPI"),
                "{error}"
            );
        }
    }

    #[test]
    fn classic_consumer_carries_timing_and_sticky_assignment() {
        let config = settings(&[]).consumer(&group(GroupProtocol::Classic));
        assert_eq!(config.get("session.timeout.ms"), Some("6000"));
        assert_eq!(config.get("heartbeat.interval.ms"), Some("1500"));
        assert_eq!(
            config.get("partition.assignment.strategy"),
            Some("cooperative-sticky")
        );
        assert_eq!(config.get("group.instance.id"), Some("app-w1"));
        assert_eq!(config.get("fetch.queue.backoff.ms"), Some("10"));
        assert_eq!(config.get("queued.max.messages.kbytes"), Some("2048"));
        assert_eq!(config.get("bootstrap.servers"), Some("h1:9092,h2:9092"));
    }

    #[test]
    fn kip848_consumer_sets_no_client_side_timing() {
        // librdkafka refuses these with group.protocol=consumer: the broker owns them.
        let config = settings(&[]).consumer(&group(GroupProtocol::Consumer));
        assert_eq!(config.get("group.protocol"), Some("consumer"));
        for key in [
            "session.timeout.ms",
            "heartbeat.interval.ms",
            "partition.assignment.strategy",
        ] {
            assert_eq!(config.get(key), None, "{key} must not be set");
        }
    }

    #[test]
    fn https_cas_are_probed_unless_the_app_names_them() {
        let config = settings(&[]).producer();
        assert_eq!(config.get("https.ca.location"), Some("probe"));
        let own = settings(&[("https.ca.location", "/etc/idp-ca.pem")]).admin();
        assert_eq!(own.get("https.ca.location"), Some("/etc/idp-ca.pem"));
        let pem = settings(&[("https.ca.pem", "-----BEGIN CERTIFICATE-----")])
            .consumer(&group(GroupProtocol::Classic));
        assert_eq!(pem.get("https.ca.location"), None);
    }

    #[test]
    fn client_metrics_push_is_off_unless_the_app_turns_it_on() {
        let off = settings(&[]);
        let classic = group(GroupProtocol::Classic);
        for config in [
            off.producer(),
            off.consumer(&classic),
            off.changelog_reader(),
            off.admin(),
        ] {
            assert_eq!(config.get("enable.metrics.push"), Some("false"));
        }
        let on = settings(&[("enable.metrics.push", "true")]).consumer(&classic);
        assert_eq!(on.get("enable.metrics.push"), Some("true"));
    }

    #[test]
    fn pass_through_wins_except_for_commit_invariants() {
        let config = settings(&[
            ("security.protocol", "SASL_SSL"),
            ("enable.auto.commit", "true"),
            ("queued.max.messages.kbytes", "65536"),
        ])
        .consumer(&group(GroupProtocol::Classic));
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(config.get("queued.max.messages.kbytes"), Some("65536"));
        assert_eq!(config.get("enable.auto.commit"), Some("false"));
        let producer = settings(&[("linger.ms", "50")]).producer();
        assert_eq!(producer.get("linger.ms"), Some("50"));
        assert_eq!(producer.get("enable.idempotence"), Some("true"));
    }

    #[test]
    fn exactly_once_reads_committed_and_transacts_with_a_short_timeout() {
        let consumer = settings(&[("isolation.level", "read_uncommitted")])
            .exactly_once_consumer(&group(GroupProtocol::Classic));
        assert_eq!(consumer.get("isolation.level"), Some("read_committed"));
        assert_eq!(consumer.get("enable.auto.commit"), Some("false"));
        let producer = settings(&[]).exactly_once_producer("app-w1");
        assert_eq!(producer.get("transactional.id"), Some("app-w1"));
        assert_eq!(producer.get("transaction.timeout.ms"), Some("10000"));
        assert_eq!(producer.get("reconnect.backoff.max.ms"), Some("1000"));
        let producer =
            settings(&[("transaction.timeout.ms", "30000")]).exactly_once_producer("app-w1");
        assert_eq!(producer.get("transaction.timeout.ms"), Some("30000"));
    }

    #[test]
    fn the_term_producer_retries_a_lost_broker_within_a_second_unless_told_otherwise() {
        let config = settings(&[("linger.ms", "50")]).term_producer();
        assert_eq!(config.get("reconnect.backoff.max.ms"), Some("1000"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("linger.ms"), Some("50"));
        let config = settings(&[("reconnect.backoff.max.ms", "5000")]).term_producer();
        assert_eq!(config.get("reconnect.backoff.max.ms"), Some("5000"));
    }
}
