//! Kafka requests librdkafka has no API for, over a small connection of our own: kafka-protocol
//! encodes and decodes the messages; [`connection`] brings TCP, TLS and SASL as the worker's
//! clients are configured; [`groups`] removes another member from a group.

pub mod connection;
pub mod groups;
pub mod security;

pub use groups::{MemberRemover, Removal};
pub use security::Security;
