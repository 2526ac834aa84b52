//! librdkafka glue: client configuration, topic creation, the producer, group membership and
//! offset tracking for at-least-once. The bottom layer: nothing here knows about apps, scripts
//! or the worker.

pub mod admin;
pub mod commit;
pub mod config;
pub mod group;
pub mod logs;
pub mod members;
pub mod offsets;
pub mod poller;
pub mod producer;
pub mod properties;
pub mod reach;
pub mod transaction;
pub mod watermark;
pub mod wire;

pub use config::{
    ClientSettings, GroupProtocol, GroupSettings, ProcessingGuarantee, librdkafka_build,
};
pub use offsets::{OffsetTracker, TopicPartition, position_list};
pub use properties::Properties;
