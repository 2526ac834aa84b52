//! The worker runtime: start-up and shutdown order, agents, timers, signals, the data
//! directory lock and the shared state the web server shows.

pub mod agents;
pub mod datadir;
pub mod dump;
pub mod leadership;
pub mod run;
pub mod sender;
pub mod signals;
pub mod state;
pub mod timers;
