//! Creating the topics faust-rs owns (agent topics, dead-letter topics, the leader topic).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use super::ClientSettings;

/// A topic to create if it does not exist.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replicas: i32,
    /// Topic-level configs (`retention.ms`, `cleanup.policy`, ...).
    pub config: Vec<(String, String)>,
}

/// Creates every topic in `specs` that does not exist yet and waits until the cluster's
/// metadata shows them all. Existing topics are left as they are (their partition count is
/// the operator's business). Fails with one line per topic that could not be created.
pub async fn ensure_topics(settings: &ClientSettings, specs: &[TopicSpec]) -> Result<(), String> {
    if specs.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = settings
        .admin()
        .create()
        .map_err(|e| format!("cannot create an admin client: {e}"))?;
    let new_topics: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|spec| {
            spec.config.iter().fold(
                NewTopic::new(
                    &spec.name,
                    spec.partitions,
                    TopicReplication::Fixed(spec.replicas),
                ),
                |topic, (key, value)| topic.set(key, value),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(|e| format!("cannot create topics: {e}"))?;
    let failures: Vec<String> = results
        .into_iter()
        .filter_map(|result| match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => None,
            Err((topic, RDKafkaErrorCode::TopicAuthorizationFailed)) => Some(format!(
                "not allowed to create topic {topic}: create it yourself, and declare it with \
                 `create = false` in [[topics]]"
            )),
            Err((topic, code)) => Some(format!("cannot create topic {topic}: {code}")),
        })
        .collect();
    if !failures.is_empty() {
        return Err(failures.join("\n"));
    }
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    wait_for_metadata(settings, &names, Duration::from_secs(30)).await
}

/// Waits until the metadata of every topic in `names` lists its partitions, each with a leader.
async fn wait_for_metadata(
    settings: &ClientSettings,
    names: &[&str],
    deadline: Duration,
) -> Result<(), String> {
    let probe: Arc<BaseConsumer> = Arc::new(
        settings
            .admin()
            .create()
            .map_err(|e| format!("cannot create a metadata client: {e}"))?,
    );
    let start = Instant::now();
    let mut missing: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    loop {
        // Metadata requests block (up to 5 s each): not on the async runtime's threads.
        let probe = probe.clone();
        missing = tokio::task::spawn_blocking(move || not_visible(&probe, missing))
            .await
            .map_err(|e| format!("metadata query: {e}"))?;
        if missing.is_empty() {
            return Ok(());
        }
        if start.elapsed() > deadline {
            return Err(format!(
                "topics not visible after {deadline:?}: {}",
                missing.join(", ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The topics of `names` whose metadata does not list partitions yet, each with a leader. A
/// topic just created has partitions without a leader for a moment, and a client reading one
/// then gets "not leader for partition".
fn not_visible(probe: &BaseConsumer, names: Vec<String>) -> Vec<String> {
    names
        .into_iter()
        .filter(|name| {
            !probe
                .fetch_metadata(Some(name), Duration::from_secs(5))
                .is_ok_and(|m| {
                    m.topics().first().is_some_and(|t| {
                        t.error().is_none()
                            && !t.partitions().is_empty()
                            && t.partitions()
                                .iter()
                                .all(|p| p.error().is_none() && p.leader() >= 0)
                    })
                })
        })
        .collect()
}
