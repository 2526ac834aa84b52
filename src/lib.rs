//! faust-rs: Faust's workers and leader election for Kafka, driven by an app definition in TOML
//! whose agent and timer bodies are Rhai scripts.
//!
//! Layers import one way, top to bottom:
//!
//! - `cli`, `commands` (one module per subcommand) and `worker` (the runtime, which wires the
//!   layers below together);
//! - `app` (the app definition: loading, validation, what it means to Kafka) and `election`;
//! - `script` (the Rhai sandbox), `kafka` (librdkafka glue), `codec`, `clock`.
//!
//! `relocation_table` is process set-up that `main` runs first; it imports nothing of the crate.
//!
//! Nothing below `worker` imports it; scripts never see librdkafka types, Kafka code never
//! sees Rhai types.

pub mod app;
pub mod cli;
pub mod clock;
pub mod codec;
pub mod commands;
pub mod control_token;
pub mod election;
pub mod exit;
pub mod kafka;
pub mod logging;
pub mod relocation_table;
pub mod script;
pub mod tables;
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
        Command::Check(ref args) => commands::check::run(&cli.global, args),
        Command::Agents(ref args) => commands::agents::run(&cli.global, args),
        Command::Worker(args) => {
            // Everything that can be wrong with the input is found before Kafka is touched.
            let loaded = commands::load_app(&cli.global)?;
            let web_token = control_token::ControlToken::load(args.web_token_file.as_deref())
                .map_err(Fatal::config)?;
            logging::init(&cli.global)?;
            let options = worker::run::WorkerOptions {
                web_port: args.web_port,
                web_bind: args.web_bind,
                web_host: args.web_host,
                web_token,
                datadir: cli.global.datadir.clone(),
                shutdown_timeout: std::time::Duration::from_secs_f64(args.shutdown_timeout),
                candidate: !args.no_candidate,
                instance_id: args.instance_id,
                eval_threads: args.eval_threads.map_or_else(
                    || std::thread::available_parallelism().map_or(1, usize::from),
                    usize::from,
                ),
            };
            let runtime = runtime()?;
            let status = runtime.block_on(async {
                let requests = worker::signals::listen(options.shutdown_timeout)
                    .map_err(|e| Fatal::runtime(format!("cannot install signal handlers: {e}")))?;
                let app = std::sync::Arc::new(loaded.app);
                let engine = std::sync::Arc::new(loaded.engine);
                worker::run::run(app, engine, options, requests).await
            });
            // Whatever is still running was abandoned on purpose (a cold shutdown): don't wait
            // for it. A warm shutdown has already finished, committed and left.
            if let Ok(Status::Cold) = status {
                // Not even for librdkafka's handles to close: their new owners take over.
                std::process::exit(i32::from(Status::Cold.code()));
            }
            runtime.shutdown_background();
            status
        }
        Command::Send(args) => {
            let loaded = commands::load_app(&cli.global)?;
            logging::init(&cli.global)?;
            runtime()?.block_on(commands::send::run(std::sync::Arc::new(loaded.app), args))
        }
        // A stand-down only talks to a worker's web server: no app needed.
        Command::Leader(args) if args.stand_down => {
            logging::init(&cli.global)?;
            runtime()?.block_on(commands::leader::stand_down(args))
        }
        Command::Leader(args) => {
            let loaded = commands::load_app(&cli.global)?;
            logging::init(&cli.global)?;
            runtime()?.block_on(commands::leader::run(std::sync::Arc::new(loaded.app), args))
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Fatal::runtime(format!("cannot start the async runtime: {e}")))
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    std::io::stdout()
        .write_all(bytes)
        .map_err(|e| Fatal::runtime(format!("cannot write to standard output: {e}")))
}
