//! The app definition: the TOML format (serde types), loading and validation with errors that
//! name file, line and column, and the compiled scripts.
