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

/// The table as strings, without (and reporting) the managed keys and any property librdkafka
/// itself refuses.
pub(super) fn check(report: &mut Report<'_>, section: &KafkaSection) -> BTreeMap<String, String> {
    let mut kafka = BTreeMap::new();
    for (key, value) in section {
        let name: &str = key.get_ref();
        let text = &value.get_ref().0;
        if let Some((_, instead)) = MANAGED_KAFKA_KEYS.iter().find(|(k, _)| *k == name) {
            report.error(
                key.span(),
                format!("`{name}` is managed by faust-rs: {instead}"),
            );
        } else if needs_gssapi(name, text) {
            report.error(
                value.span(),
                format!(
                    "`{name}` needs GSSAPI (Kerberos), which this binary was built without \
                     (build faust-rs with `--features gssapi`)"
                ),
            );
        } else if let Err(refusal) = librdkafka_accepts(name, text) {
            let (span, why) = match refusal {
                Refusal::UnknownKey(why) => (key.span(), why),
                Refusal::BadValue(why) => (value.span(), why),
            };
            report.error(span, format!("librdkafka refuses `{name}`: {why}"));
        } else {
            kafka.insert(name.to_owned(), text.clone());
        }
    }
    kafka
}

/// Whether `name = value` asks for GSSAPI (Kerberos) in a binary built without it. librdkafka
/// cannot say so itself here: built with CMake (for OIDC) but without Cyrus SASL, it accepts
/// the `sasl.kerberos.*` properties (it tests `#ifdef WITH_SASL_CYRUS`, which its CMake build
/// defines as 0) and refuses `sasl.mechanism=GSSAPI` only when a client is created.
fn needs_gssapi(name: &str, value: &str) -> bool {
    if cfg!(feature = "gssapi") {
        return false;
    }
    name.starts_with("sasl.kerberos.")
        || (matches!(name, "sasl.mechanism" | "sasl.mechanisms")
            && value.trim().eq_ignore_ascii_case("GSSAPI"))
}

/// Why librdkafka refused a property, in its words (which may name an alias of the key).
enum Refusal {
    UnknownKey(String),
    BadValue(String),
}

/// Asks librdkafka whether it takes `name = value` (as every client of the worker would be
/// configured with it): an unknown property, a bad value, or a feature this binary was built
/// without. The message never repeats the value of a secret (`*password*`, `*secret*`,
/// `*token*`, `*key*` properties).
fn librdkafka_accepts(name: &str, value: &str) -> Result<(), Refusal> {
    let mut config = rdkafka::ClientConfig::new();
    config.set(name, value);
    let Err(error) = config.create_native_config() else {
        return Ok(());
    };
    let (unknown, why) = match &error {
        rdkafka::error::KafkaError::ClientConfig(result, why, _, _) => (
            *result == rdkafka::types::RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN,
            why.clone(),
        ),
        other => (false, other.to_string()),
    };
    let why = redact(name, value, why);
    Err(if unknown {
        Refusal::UnknownKey(why)
    } else {
        Refusal::BadValue(why)
    })
}

/// `why` without the value of a secret property.
fn redact(name: &str, value: &str, why: String) -> String {
    let secret = ["password", "secret", "token", "key"]
        .iter()
        .any(|word| name.contains(word));
    if secret && !value.is_empty() {
        why.replace(value, "(hidden)")
    } else {
        why
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn librdkafka_refuses_unknown_keys_and_bad_values() {
        assert!(librdkafka_accepts("linger.ms", "50").is_ok());
        assert!(librdkafka_accepts("compression.type", "lz4").is_ok());
        let Err(Refusal::UnknownKey(why)) = librdkafka_accepts("compression.typo", "lz4") else {
            panic!("an unknown key is refused as such");
        };
        assert!(why.contains("compression.typo"), "{why}");
        let Err(Refusal::BadValue(why)) = librdkafka_accepts("linger.ms", "soon") else {
            panic!("a bad value is refused as such");
        };
        // librdkafka names the property by its alias here; the loader names the user's key.
        assert!(why.contains("Invalid value"), "{why}");
    }

    #[test]
    fn gssapi_is_refused_unless_built_in() {
        let built_in = cfg!(feature = "gssapi");
        assert_eq!(needs_gssapi("sasl.mechanism", "GSSAPI"), !built_in);
        assert_eq!(needs_gssapi("sasl.mechanisms", "GSSAPI"), !built_in);
        assert_eq!(needs_gssapi("sasl.kerberos.keytab", "/k"), !built_in);
        assert!(!needs_gssapi("sasl.mechanism", "OAUTHBEARER"));
        assert!(!needs_gssapi("sasl.username", "GSSAPI"));
    }

    #[test]
    fn oidc_is_built_in() {
        assert!(librdkafka_accepts("sasl.oauthbearer.method", "oidc").is_ok());
        assert!(librdkafka_accepts("https.ca.location", "probe").is_ok());
    }

    #[test]
    fn secrets_are_not_repeated_in_errors() {
        let why = "Invalid value \"hunter2\" for configuration property \"sasl.password\"";
        let shown = redact("sasl.password", "hunter2", why.to_string());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("sasl.password"), "{shown}");
        let plain = redact("linger.ms", "soon", "Invalid value \"soon\"".to_string());
        assert!(plain.contains("soon"), "{plain}");
    }
}
