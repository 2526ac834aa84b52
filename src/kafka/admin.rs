//! Creating the topics faust-rs owns (agent topics, dead-letter topics, the leader topic).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
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
/// the operator's business) and not asked for: a principal allowed to use topics but not to
/// create them (managed clusters' usual ACLs) runs once they exist. Fails with one line per
/// topic that could not be created.
pub async fn ensure_topics(settings: &ClientSettings, specs: &[TopicSpec]) -> Result<(), String> {
    if specs.is_empty() {
        return Ok(());
    }
    let existing = {
        let config = settings.admin();
        tokio::task::spawn_blocking(move || existing_topics(&config))
            .await
            .map_err(|e| format!("metadata query: {e}"))??
    };
    let missing: Vec<&TopicSpec> = specs
        .iter()
        .filter(|spec| !existing.contains(&spec.name))
        .collect();
    if !missing.is_empty() {
        create(settings, &missing).await?;
    }
    // Also those another worker created a moment ago: their partitions may still lack leaders.
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    wait_for_metadata(settings, &names, Duration::from_secs(30)).await
}

/// Creates the topics of `missing`; an existing one is no failure.
async fn create(settings: &ClientSettings, missing: &[&TopicSpec]) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = settings
        .admin()
        .create()
        .map_err(|e| format!("cannot create an admin client: {e}"))?;
    let new_topics: Vec<NewTopic<'_>> = missing.iter().map(|spec| spec.new_topic()).collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(|e| format!("cannot create topics: {e}"))?;
    let failures: Vec<String> = results
        .into_iter()
        .filter_map(|result| match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => None,
            Err((
                topic,
                RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed,
            )) => Some(format!(
                "not allowed to create topic {topic}: the cluster's ACLs do not give this \
                 principal CREATE on the topic (or the cluster); create it yourself (`check` \
                 lists the topics), or grant CREATE"
            )),
            Err((topic, code)) => Some(format!("cannot create topic {topic}: {code}")),
        })
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

impl TopicSpec {
    fn new_topic(&self) -> NewTopic<'_> {
        self.config.iter().fold(
            NewTopic::new(
                &self.name,
                self.partitions,
                TopicReplication::Fixed(self.replicas),
            ),
            |topic, (key, value)| topic.set(key, value),
        )
    }
}

/// The names of the topics the cluster's metadata lists (those this principal may describe).
/// Blocks.
pub fn existing_topics(config: &ClientConfig) -> Result<HashSet<String>, String> {
    let probe: BaseConsumer = config
        .create()
        .map_err(|e| format!("cannot create a metadata client: {e}"))?;
    let metadata = probe
        .fetch_metadata(None, Duration::from_secs(10))
        .map_err(|e| format!("cannot list the cluster's topics: {e}"))?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| t.name().to_string())
        .collect())
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
