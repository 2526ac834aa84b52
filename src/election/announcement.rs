//! Leader announcements: the records a new leader appends to its election's topic. The topic
//! has one partition, so the offsets of its records are strictly increasing: the offset of a
//! term's announcement is that term's *epoch*, a fencing token that survives restarts of every
//! worker because it lives in Kafka.

use serde::{Deserialize, Serialize};

/// Who leads, from when — the value of an announcement record (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Announcement {
    pub election: String,
    /// The worker's id (`host:web port`).
    pub worker: String,
    pub host: String,
    pub pid: u32,
    pub web_url: String,
    /// The leader's process: a random id drawn at its start, which its web server's
    /// `GET /alive` names (see [`crate::election::liveness`]). Empty in records of versions
    /// without it.
    #[serde(default)]
    pub instance: String,
    /// The leader's member id in the election group, for removing it once its process is
    /// gone. Empty in resignations and in records of versions without it.
    #[serde(default)]
    pub member_id: String,
    /// When the term began (or, for a resignation, ended), in milliseconds since the Unix
    /// epoch.
    pub since_ms: i64,
    /// The leader gave its term up (shutdown or stand-down): nobody leads until the next
    /// announcement.
    #[serde(default)]
    pub resigned: bool,
    /// The record's offset; not part of the record itself, filled in when read or acknowledged.
    #[serde(default, skip_serializing)]
    pub epoch: i64,
}

impl Announcement {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an announcement always serializes")
    }

    /// Reads a record of the election topic found at `offset`.
    pub fn decode(payload: &[u8], offset: i64) -> Result<Announcement, String> {
        let mut announcement: Announcement = serde_json::from_slice(payload)
            .map_err(|e| format!("not a leader announcement at offset {offset}: {e}"))?;
        announcement.epoch = offset;
        Ok(announcement)
    }

    /// The record as shown by `GET /leader` and `faust-rs leader --json-output`.
    pub fn view(&self) -> serde_json::Value {
        serde_json::json!({
            "worker": self.worker, "host": self.host, "pid": self.pid, "web_url": self.web_url,
            "epoch": self.epoch, "since": self.since(), "since_ms": self.since_ms,
        })
    }

    /// `since_ms` as an RFC 3339 UTC time.
    pub fn since(&self) -> String {
        crate::clock::rfc3339_ms(self.since_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_takes_the_epoch_from_the_offset() {
        let announcement = Announcement {
            election: "leader".into(),
            worker: "h:6066".into(),
            host: "h".into(),
            pid: 42,
            web_url: "http://h:6066/".into(),
            instance: "i".into(),
            member_id: "m".into(),
            since_ms: 1_700_000_000_000,
            resigned: false,
            epoch: 999,
        };
        let bytes = announcement.encode();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("999"),
            "the epoch is the offset, not a field"
        );
        let read = Announcement::decode(&bytes, 17).unwrap();
        assert_eq!(
            read,
            Announcement {
                epoch: 17,
                ..announcement
            }
        );
        assert!(
            Announcement::decode(b"junk", 3)
                .unwrap_err()
                .contains("offset 3")
        );
    }
}
