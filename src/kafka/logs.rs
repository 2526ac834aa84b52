//! librdkafka's log lines, forwarded to `tracing` under the `librdkafka` target (as
//! rust-rdkafka's default does), minus two kinds of warnings about what librdkafka retries by
//! itself and loses nothing by: a commit that raced a rebalance of its group, and a request to
//! a coordinator that is still loading (a fresh broker). A newcomer reads a warning as a fault;
//! they are debug lines.

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// The errors of a commit sent while its group was rebalancing: the group's generation moved
/// on, or the member is rejoining. Nothing is lost: the offsets stay committable and are
/// committed again once the rebalance is over (revoked partitions are committed before they
/// are given up).
const REBALANCE_RACES: [RDKafkaErrorCode; 3] = [
    RDKafkaErrorCode::IllegalGeneration,
    RDKafkaErrorCode::RebalanceInProgress,
    RDKafkaErrorCode::UnknownMemberId,
];

/// Whether a failed commit only raced a rebalance (see [`REBALANCE_RACES`]).
pub fn is_rebalance_race(error: &KafkaError) -> bool {
    error
        .rdkafka_error_code()
        .is_some_and(|code| REBALANCE_RACES.contains(&code))
}

/// Forwards a log line, as a debug line when it only says librdkafka retries something that
/// loses nothing: a commit that raced a rebalance (the worker commits those offsets again), a
/// coordinator still loading.
pub fn forward_quietly(level: RDKafkaLogLevel, facility: &str, message: &str) {
    if retried_harmlessly(facility, message) {
        tracing::debug!(target: "librdkafka", "librdkafka: {facility} {message} (retried)");
    } else {
        forward(level, facility, message);
    }
}

fn retried_harmlessly(facility: &str, message: &str) -> bool {
    let commit_raced = facility == "COMMITFAIL"
        && REBALANCE_RACES
            .iter()
            .any(|&code| message.contains(&description(code)));
    let coordinator_loading = message.ends_with("retrying")
        && message.contains(&description(RDKafkaErrorCode::CoordinatorLoadInProgress));
    commit_raced || coordinator_loading
}

/// The client context of the worker's producers: log lines through [`forward_quietly`], errors
/// through [`forward_error`].
pub struct QuietLogs;

impl ClientContext for QuietLogs {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        forward_quietly(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        forward_error(&error, reason);
    }
}

/// Also for consumers that join no group (the election's readers and end-offset probe).
impl ConsumerContext for QuietLogs {}

/// Whether an error only repeats what librdkafka's own log line about it said: a broker
/// connection that failed (its `FAIL` line, at error level) and the "all brokers down" that
/// follows. Every client reports each one, many times a second while a broker is down.
pub fn repeats_a_log_line(error: &KafkaError) -> bool {
    error.rdkafka_error_code().is_some_and(|code| {
        matches!(
            code,
            RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown
        )
    })
}

/// Forwards an error of librdkafka's error callback: at error level, unless it only repeats a
/// log line ([`repeats_a_log_line`]) or is the end of a partition that a changelog reader asked
/// to be told of (`enable.partition.eof`, which librdkafka also reports as a global error),
/// then at debug level.
pub fn forward_error(error: &KafkaError, reason: &str) {
    let partition_end = error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF)
        || matches!(error, KafkaError::PartitionEOF(_));
    if repeats_a_log_line(error) || partition_end {
        tracing::debug!(target: "librdkafka", "librdkafka: {error}: {reason}");
    } else {
        tracing::error!(target: "librdkafka", "librdkafka: {error}: {reason}");
    }
}

/// librdkafka's text for an error (`rd_kafka_err2str`), as its log lines carry it: rust-rdkafka
/// shows a code as `Name (text)`.
fn description(code: RDKafkaErrorCode) -> String {
    let shown = code.to_string();
    let name = format!("{code:?} (");
    shown
        .strip_prefix(&name)
        .and_then(|rest| rest.strip_suffix(')'))
        .map_or(shown.clone(), str::to_string)
}

/// Forwards a log line at its level.
pub fn forward(level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", "librdkafka: {facility} {message}")
        }
        RDKafkaLogLevel::Warning => {
            tracing::warn!(target: "librdkafka", "librdkafka: {facility} {message}")
        }
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", "librdkafka: {facility} {message}")
        }
        RDKafkaLogLevel::Debug => {
            tracing::debug!(target: "librdkafka", "librdkafka: {facility} {message}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rebalance_races_count_as_races() {
        let raced = KafkaError::ConsumerCommit(RDKafkaErrorCode::IllegalGeneration);
        assert!(is_rebalance_race(&raced));
        let real = KafkaError::ConsumerCommit(RDKafkaErrorCode::GroupAuthorizationFailed);
        assert!(!is_rebalance_race(&real));
    }

    #[test]
    fn the_warnings_of_a_first_run_are_quiet_and_real_failures_are_not() {
        // Both seen on the tutorial's first run (issue 16).
        assert!(retried_harmlessly(
            "COMMITFAIL",
            "[thrd:main]: Offset commit (manual) failed for 1/1 partition(s) in join-state \
             wait-metadata: Broker: Specified group generation id is not valid: t((null))[2]@1(\
             Broker: Specified group generation id is not valid)"
        ));
        assert!(retried_harmlessly(
            "GETPID",
            "[thrd:main]: Failed to acquire idempotence PID from broker 127.0.0.1:9092/1: \
             Broker: Coordinator load in progress: retrying"
        ));
        assert!(!retried_harmlessly(
            "COMMITFAIL",
            "[thrd:main]: Offset commit (manual) failed for 1/1 partition(s) in join-state \
             steady: Broker: Group authorization failed"
        ));
        assert!(!retried_harmlessly(
            "FAIL",
            "127.0.0.1:9092/1: Connect to ipv4#127.0.0.1:9092 failed: Connection refused"
        ));
    }

    #[test]
    fn only_broker_connection_failures_repeat_a_log_line() {
        let down = KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure);
        assert!(repeats_a_log_line(&down));
        let all_down = KafkaError::MessageConsumption(RDKafkaErrorCode::AllBrokersDown);
        assert!(repeats_a_log_line(&all_down));
        let refused = KafkaError::Global(RDKafkaErrorCode::Authentication);
        assert!(!repeats_a_log_line(&refused));
    }

    #[test]
    fn librdkafka_names_the_race_as_this_module_matches_it() {
        // The text COMMITFAIL lines carry for the error (librdkafka's rd_kafka_err2str).
        assert_eq!(
            description(RDKafkaErrorCode::IllegalGeneration),
            "Broker: Specified group generation id is not valid"
        );
    }
}
