//! faust-rs: Faust's workers and leader election for Kafka, driven by an app definition in TOML
//! whose agent and timer bodies are Rhai scripts.
//!
//! Data flows one way: CLI -> app definition -> worker -> (kafka, election, script) -> effects.

pub mod app;
pub mod cli;
pub mod codec;
pub mod commands;
pub mod exit;
pub mod kafka;
pub mod logging;
pub mod script;
pub mod web;
pub mod worker;

use std::io::Write;

use cli::{Cli, Command};
use exit::{Fatal, Result, Status};

/// Runs one command line to completion and returns the status to exit with.
pub fn run(cli: Cli) -> Result<Status> {
    match cli.command {
        Command::Man => {
            write_stdout(&cli::render_man_page())?;
            Ok(Status::Clean)
        }
        Command::Completion(args) => {
            let mut buffer = Vec::new();
            clap_complete::generate(args.shell, &mut cli::command(), "faust-rs", &mut buffer);
            write_stdout(&buffer)?;
            Ok(Status::Clean)
        }
        Command::Check => commands::check::run(&cli.global),
        Command::Agents(ref args) => commands::agents::run(&cli.global, args),
        _ => {
            logging::init(&cli.global)?;
            Err(Fatal::runtime("this command is not implemented yet"))
        }
    }
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    std::io::stdout()
        .write_all(bytes)
        .map_err(|e| Fatal::runtime(format!("cannot write to standard output: {e}")))
}
