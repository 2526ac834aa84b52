//! The worker runtime: it wires the layers below it together. Start-up and shutdown order
//! ([`run`], [`shutdown`]), the agents ([`agents`]), timers and tasks ([`timers`]), the part in
//! the elections ([`leadership`]), the tables' views and partitions ([`tables`]), the evaluation pool every body runs on ([`pool`]), signals,
//! the data-directory lock, the shared state ([`state`]) that the status server ([`web`],
//! [`metrics`]) and the USR1 dump show.

pub mod agents;
pub mod datadir;
pub mod dump;
pub mod leadership;
pub mod metrics;
pub mod pool;
pub mod run;
pub mod shutdown;
pub mod signals;
pub mod state;
pub mod systemd;
pub mod table_routes;
pub mod tables;
pub mod timers;
pub mod timing;
pub mod web;
