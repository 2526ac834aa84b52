//! The first contact with the cluster. Before a command does anything else, one metadata
//! request must be answered: a refused login or certificate ends the command at once, an
//! unreachable cluster after a bounded wait, each with one line naming the broker and
//! librdkafka's reason. librdkafka itself never gives up: it retries a wrong password forever,
//! logging every attempt, and the worker would hang in its first request.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use super::ClientSettings;

/// How long a command waits for a cluster that does not answer at all.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Waits until a broker of `settings` answers a metadata request: `Ok` with the time it took,
/// or `Err` with one line saying why not — at once for a failure that retrying cannot mend
/// (authentication, TLS), after `patience` otherwise.
pub async fn ensure_reachable(
    settings: &ClientSettings,
    patience: Duration,
) -> Result<Duration, String> {
    let config = settings.admin();
    let bootstrap = settings.bootstrap.clone();
    // Metadata requests block: not on the async runtime's threads.
    tokio::task::spawn_blocking(move || {
        let probe: BaseConsumer<Probe> = config
            .create_with_context(Probe::default())
            .map_err(|e| format!("cannot create a Kafka client: {e}"))?;
        wait_for_answer(&probe, &bootstrap, patience)
    })
    .await
    .map_err(|e| format!("the connection probe failed: {e}"))?
}

fn wait_for_answer(
    probe: &BaseConsumer<Probe>,
    bootstrap: &str,
    patience: Duration,
) -> Result<Duration, String> {
    let started = Instant::now();
    loop {
        if probe.fetch_metadata(None, Duration::from_secs(1)).is_ok() {
            return Ok(started.elapsed());
        }
        // Serves the client's events (its errors reach `Probe::error`): each error returns at
        // once, and the log lines between them are consumed within the wait.
        while probe.poll(Duration::from_millis(100)).is_some() {}
        let last = probe.context().last.lock().unwrap().clone();
        if let Some(failure) = last.as_ref().filter(|f| f.is_final()) {
            return Err(format!("cannot connect to {bootstrap}: {}", failure.reason));
        }
        if started.elapsed() >= patience {
            let why = last.map_or_else(|| "no answer".to_string(), |f| f.reason);
            return Err(format!(
                "no broker of {bootstrap} answered within {} s: {why}",
                patience.as_secs()
            ));
        }
    }
}

/// The probe's client context: keeps librdkafka's last error, and its log lines at debug level
/// (the error the command ends with says what they would).
#[derive(Default)]
struct Probe {
    last: Mutex<Option<Failure>>,
}

#[derive(Debug, Clone)]
struct Failure {
    code: Option<RDKafkaErrorCode>,
    /// librdkafka's words, which name the broker: `sasl_ssl://host:9094/bootstrap: SASL
    /// authentication error: ...`.
    reason: String,
}

impl Failure {
    /// Whether retrying cannot help: the credentials or the certificates are wrong, or the
    /// listener does not speak the configured protocol.
    fn is_final(&self) -> bool {
        matches!(
            self.code,
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SSL)
        ) || self.reason.contains("SSL handshake failed")
    }
}

impl ClientContext for Probe {
    fn log(&self, _level: RDKafkaLogLevel, facility: &str, message: &str) {
        tracing::debug!(target: "librdkafka", "librdkafka: {facility} {message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", "librdkafka: {error}: {reason}");
        let code = error.rdkafka_error_code();
        // "All brokers are down" follows every failure and says less than the one before it.
        if code == Some(RDKafkaErrorCode::AllBrokersDown) && self.last.lock().unwrap().is_some() {
            return;
        }
        *self.last.lock().unwrap() = Some(Failure {
            code,
            reason: reason.to_string(),
        });
    }
}

impl ConsumerContext for Probe {}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: RDKafkaErrorCode, reason: &str) -> Failure {
        Failure {
            code: Some(code),
            reason: reason.into(),
        }
    }

    #[test]
    fn refused_logins_and_certificates_are_final_and_a_closed_port_is_not() {
        assert!(
            failure(
                RDKafkaErrorCode::Authentication,
                "SASL authentication error"
            )
            .is_final()
        );
        assert!(failure(RDKafkaErrorCode::SSL, "certificate verify failed").is_final());
        assert!(
            failure(
                RDKafkaErrorCode::BrokerTransportFailure,
                "ssl://127.0.0.1:9092/bootstrap: SSL handshake failed: Disconnected: connecting \
                 to a PLAINTEXT broker listener?"
            )
            .is_final()
        );
        assert!(
            !failure(
                RDKafkaErrorCode::BrokerTransportFailure,
                "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused"
            )
            .is_final()
        );
    }
}
