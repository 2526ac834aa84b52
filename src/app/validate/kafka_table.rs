//! `[kafka]`: librdkafka properties passed through, except those faust-rs sets itself.

use std::collections::BTreeMap;

use super::super::diagnostics::Report;
use super::super::schema::KafkaSection;

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

/// The table as strings, without (and reporting) the managed keys.
pub(super) fn check(report: &mut Report<'_>, section: &KafkaSection) -> BTreeMap<String, String> {
    let mut kafka = BTreeMap::new();
    for (key, value) in section {
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
    kafka
}
