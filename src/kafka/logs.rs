//! librdkafka's log lines, forwarded to `tracing` under the `librdkafka` target (as
//! rust-rdkafka's default does), and the one kind a consumer of the worker demotes: an offset
//! commit that raced a rebalance of its group.

use rdkafka::config::RDKafkaLogLevel;
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

/// Forwards a log line of a consumer that commits offsets itself: librdkafka's `COMMITFAIL`
/// warning for a commit that raced a rebalance becomes a debug line, since the worker commits
/// those offsets again (a newcomer reads a warning as a fault). Every other line is forwarded
/// at its own level.
pub fn forward_committing(level: RDKafkaLogLevel, facility: &str, message: &str) {
    let raced = facility == "COMMITFAIL"
        && REBALANCE_RACES
            .iter()
            .any(|&code| message.contains(&description(code)));
    if raced {
        tracing::debug!(target: "librdkafka", "librdkafka: {facility} {message} (committed again after the rebalance)");
    } else {
        forward(level, facility, message);
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
    fn librdkafka_names_the_race_as_this_module_matches_it() {
        // The text COMMITFAIL lines carry for the error (librdkafka's rd_kafka_err2str).
        assert_eq!(
            description(RDKafkaErrorCode::IllegalGeneration),
            "Broker: Specified group generation id is not valid"
        );
    }
}
