//! What an evaluation gets (an event) and gives back (a result and the records to send).

use crate::codec::Datum;

/// The header a leader's records carry: its epoch, as decimal ASCII digits.
pub const EPOCH_HEADER: &str = "faust-rs-epoch";

/// The value of [`EPOCH_HEADER`] for `epoch`.
pub fn encode_epoch(epoch: i64) -> Vec<u8> {
    epoch.to_string().into_bytes()
}

/// The epoch in a [`EPOCH_HEADER`] value; `None` when it is not a decimal integer.
pub fn parse_epoch(header: &[u8]) -> Option<i64> {
    std::str::from_utf8(header).ok()?.trim().parse().ok()
}

/// One incoming record, decoded, as an agent body sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub value: Datum,
    pub key: Datum,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the Unix epoch, when the record has a timestamp.
    pub timestamp: Option<i64>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Event {
    /// The leader epoch the record carries in its [`EPOCH_HEADER`], if any (the last one wins).
    pub fn epoch(&self) -> Option<i64> {
        self.headers
            .iter()
            .rev()
            .find(|(name, _)| name == EPOCH_HEADER)
            .and_then(|(_, value)| parse_epoch(value))
    }
}

/// Where a record a body sent should go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendTarget {
    /// An agent of the app, by name (`say.send(v)`): its input topic.
    Agent(String),
    /// A topic, by name (`send("topic", v)`).
    Topic(String),
}

/// A record a body asked to send. Nothing is produced during the evaluation: the worker
/// produces these after it, and waits for their acknowledgements before committing the
/// incoming record's offset (at-least-once).
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingRecord {
    pub target: SendTarget,
    /// `None` when the body gave no key (or `()`): a Kafka null key.
    pub key: Option<Datum>,
    pub value: Datum,
}

/// What a successful evaluation produced.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    /// The body's final expression, for the agent's sinks; `None` when it was `()`.
    pub result: Option<Datum>,
    /// The records the body sent, in the order it sent them.
    pub sends: Vec<OutgoingRecord>,
    /// What the body changed in tables (applied by the runtime): one change per key, with its
    /// last value, in the order the keys were first changed.
    pub changes: Vec<super::TableChange>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_header_round_trips_and_rejects_garbage() {
        assert_eq!(parse_epoch(&encode_epoch(42)), Some(42));
        assert_eq!(parse_epoch(&encode_epoch(-1)), Some(-1));
        assert_eq!(parse_epoch(b"x1"), None);
        assert_eq!(parse_epoch(&[0xff]), None);
        let event = Event {
            value: Datum::NULL,
            key: Datum::NULL,
            topic: "t".into(),
            partition: 0,
            offset: 0,
            timestamp: None,
            headers: vec![
                (EPOCH_HEADER.into(), b"3".to_vec()),
                ("other".into(), b"9".to_vec()),
                (EPOCH_HEADER.into(), b"7".to_vec()),
            ],
        };
        assert_eq!(event.epoch(), Some(7));
    }
}
