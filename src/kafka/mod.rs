//! librdkafka glue: client configuration, topic creation, the producer, and offset tracking
//! for at-least-once. Nothing here knows about scripts.

pub mod admin;
pub mod config;
pub mod group;
pub mod offsets;

pub use config::{ClientSettings, GroupProtocol, GroupSettings};
pub use offsets::{OffsetTracker, TopicPartition};
