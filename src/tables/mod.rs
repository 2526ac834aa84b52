//! Tables (Faust's `Table` and `GlobalTable`): keyed state kept per partition, every change
//! written to a compacted changelog topic, each worker's partitions kept in a local store in
//! its data directory. Below the worker and the scripts: nothing here knows of Kafka clients or
//! Rhai.

pub mod store;
