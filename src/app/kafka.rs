//! What the app definition means to Kafka: the settings every client of the app starts from,
//! the topics it creates, and where and how a record a body sent is produced (the target's
//! topic and serializers).

use crate::codec::{self, Datum, Serializer};
use crate::kafka::ClientSettings;
use crate::kafka::admin::TopicSpec;
use crate::kafka::producer::Record;
use crate::script::{OutgoingRecord, SendTarget};

use super::{App, Sink, Topic};

impl App {
    /// The client settings every Kafka client of this app starts from.
    pub fn client_settings(&self, client_id: String) -> ClientSettings {
        ClientSettings {
            bootstrap: self.bootstrap_servers(),
            client_id,
            overrides: self.kafka.clone(),
        }
    }

    /// Every topic a worker creates at start-up: the app's own and one per election. Election
    /// topics have one partition and are compacted, so the newest announcement is kept however
    /// old it gets (compaction keeps offsets, so epochs still only grow).
    pub fn owned_topics(&self) -> Vec<TopicSpec> {
        let mut owned: Vec<TopicSpec> = self
            .topics
            .iter()
            .filter(|t| t.create)
            .map(Topic::spec)
            .collect();
        owned.extend(self.elections.iter().map(|e| TopicSpec {
            name: self.election_topic(&e.name),
            partitions: 1,
            replicas: i32::from(self.topic_replication_factor),
            config: vec![("cleanup.policy".into(), "compact".into())],
        }));
        owned
    }

    /// The topic and serializers (key, value) a target resolves to. Undeclared topics use the
    /// app's default serializers.
    pub fn route(&self, target: &SendTarget) -> (String, Serializer, Serializer) {
        match target {
            SendTarget::Agent(name) => {
                let agent = self
                    .agent(name)
                    .expect("agent names are checked at load time");
                (
                    agent.topic.clone(),
                    agent.key_serializer,
                    agent.value_serializer,
                )
            }
            SendTarget::Topic(name) => match self.topic(name) {
                Some(topic) => (
                    topic.name.clone(),
                    topic.key_serializer,
                    topic.value_serializer,
                ),
                None => (name.clone(), self.key_serializer, self.value_serializer),
            },
        }
    }

    /// Encodes a record a body sent with its target's serializers.
    pub fn encode(&self, record: &OutgoingRecord) -> Result<Record, String> {
        let (topic, key_serializer, value_serializer) = self.route(&record.target);
        let key = match &record.key {
            Some(key) => codec::encode(key_serializer, key)
                .map_err(|e| format!("cannot encode a key for {topic}: {e}"))?,
            None => None,
        };
        let value = codec::encode(value_serializer, &record.value)
            .map_err(|e| format!("cannot encode a value for {topic}: {e}"))?;
        Ok(Record {
            topic,
            partition: None,
            key,
            value,
        })
    }
}

impl Topic {
    /// How this topic is created.
    pub fn spec(&self) -> TopicSpec {
        TopicSpec {
            name: self.name.clone(),
            partitions: self.partitions as i32,
            replicas: i32::from(self.replicas),
            config: self.creation_config().into_iter().collect(),
        }
    }
}

/// An agent's sinks as send targets for its body's result.
pub fn sink_records(sinks: &[Sink], result: &Datum) -> Vec<OutgoingRecord> {
    sinks
        .iter()
        .map(|sink| OutgoingRecord {
            target: match sink {
                Sink::Agent(name) => SendTarget::Agent(name.clone()),
                Sink::Topic(name) => SendTarget::Topic(name.clone()),
            },
            key: None,
            value: result.clone(),
        })
        .collect()
}
