//! `[kafka]`: librdkafka properties passed through, except those faust-rs sets itself.

use std::path::{Path, PathBuf};

use toml::Spanned;

use super::super::diagnostics::Report;
use super::super::schema::{KafkaSection, KafkaValue};
use crate::kafka::properties::{HIDDEN, Properties, is_secret};

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
        "transactional.id",
        "faust-rs gives each worker its own under `processing_guarantee = \"exactly_once\"`",
    ),
    (
        "group.instance.id",
        "pass `worker --instance-id ID|auto`: each worker needs its own",
    ),
];

/// The table as strings, without (and reporting) the managed keys, values that cannot be read
/// from where they are said to come from, and any property librdkafka itself refuses.
pub(super) fn check(report: &mut Report<'_>, section: &KafkaSection) -> Properties {
    let properties = section
        .iter()
        .filter_map(|(key, value)| {
            let text = property(report, key, value)?;
            Some((key.get_ref().clone(), text))
        })
        .collect();
    Properties::new(properties)
}

/// One property's value, or `None` after reporting why it cannot be used.
fn property(
    report: &mut Report<'_>,
    key: &Spanned<String>,
    value: &Spanned<KafkaValue>,
) -> Option<String> {
    let name: &str = key.get_ref();
    if let Some((_, instead)) = MANAGED_KAFKA_KEYS.iter().find(|(k, _)| *k == name) {
        report.error(
            key.span(),
            format!("`{name}` is managed by faust-rs: {instead}"),
        );
        return None;
    }
    let text = read(report.path, name, value.get_ref())
        .map_err(|why| report.error(value.span(), why))
        .ok()?;
    let written = matches!(value.get_ref(), KafkaValue::Written(_));
    if is_secret(name) && written {
        report.warn(
            value.span(),
            format!(
                "`{name}` is written in the app file: read it from the environment \
                 ({{ env = \"VARIABLE\" }}) or a file ({{ file = \"PATH\" }}) so the app \
                 file can be shared without it"
            ),
        );
    }
    if needs_gssapi(name, &text) {
        report.error(
            value.span(),
            format!(
                "`{name}` needs GSSAPI (Kerberos), which this binary was built without \
                 (build faust-rs with `--features gssapi`)"
            ),
        );
        return None;
    }
    if let Err(refusal) = librdkafka_accepts(name, &text) {
        let (span, why) = match refusal {
            Refusal::UnknownKey(why) => (key.span(), why),
            Refusal::BadValue(why) => (value.span(), why),
        };
        let why = if is_secret(name) || !written {
            redact(&text, why)
        } else {
            why
        };
        report.error(span, format!("librdkafka refuses `{name}`: {why}"));
        return None;
    }
    Some(text)
}

/// The value of property `name`: as written, or read from the environment or a file (relative
/// to the app file). The error never contains the value.
fn read(app_file: &Path, name: &str, value: &KafkaValue) -> Result<String, String> {
    match value {
        KafkaValue::Written(text) => Ok(text.clone()),
        KafkaValue::Env(variable) => match std::env::var(variable) {
            Ok(text) if text.is_empty() => Err(format!(
                "`{name}` comes from the environment variable {variable}, which is empty"
            )),
            Ok(text) => Ok(text),
            Err(std::env::VarError::NotPresent) => Err(format!(
                "`{name}` comes from the environment variable {variable}, which is not set"
            )),
            Err(std::env::VarError::NotUnicode(_)) => Err(format!(
                "`{name}` comes from the environment variable {variable}, which is not UTF-8"
            )),
        },
        KafkaValue::File(file) => {
            let path = app_file
                .parent()
                .filter(|dir| !dir.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from(file), |dir| dir.join(file));
            let text = std::fs::read_to_string(&path).map_err(|e| {
                format!(
                    "`{name}` comes from `{}`, which cannot be read: {e}",
                    path.display()
                )
            })?;
            // `echo secret > file` ends the file with a line end that is not part of the value.
            let text = text.strip_suffix('\n').unwrap_or(&text);
            let text = text.strip_suffix('\r').unwrap_or(text);
            if text.is_empty() {
                return Err(format!(
                    "`{name}` comes from `{}`, which is empty",
                    path.display()
                ));
            }
            Ok(text.to_owned())
        }
    }
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
/// without. Its message may repeat the value.
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
    Err(if unknown {
        Refusal::UnknownKey(why)
    } else {
        Refusal::BadValue(why)
    })
}

/// `why` without `value`.
fn redact(value: &str, why: String) -> String {
    if value.is_empty() {
        why
    } else {
        why.replace(value, HIDDEN)
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
        let shown = redact("hunter2", why.to_string());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("sasl.password"), "{shown}");
    }
}
