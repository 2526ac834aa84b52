//! The command line: the one definition that `--help`, the man page (`man/faust-rs.1`) and the
//! shell completions are generated from. Flags follow Faust's CLI (`faust -A app -l info worker
//! --web-port 6066`) so an operator's scripts translate word for word.

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

/// Faust-style stream-processing workers and leader election on Kafka, in one binary.
///
/// An app is a TOML file naming topics, agents and timers whose bodies are Rhai scripts. Every
/// worker started with the same app joins the same consumer group, shares the agents'
/// partitions and takes part in electing exactly one leader, which runs the `on_leader` timers.
#[derive(Debug, Parser)]
#[command(
    name = "faust-rs",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_long_help = SIGNALS_AND_EXIT_STATUSES
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOptions,

    #[command(subcommand)]
    pub command: Command,
}

/// The operators' contract, shown by `--help` and in the man page.
const SIGNALS_AND_EXIT_STATUSES: &str = "\
Signals (worker):
  TERM, INT  warm shutdown: hand leadership over, stop timers and fetching, finish in-flight
             events within --shutdown-timeout, commit, leave the group; exit 0. A second TERM
             or INT, or the deadline, turns it cold.
  QUIT       cold shutdown: exit at once (status 3); unfinished events are processed again by
             the partitions' next owner.
  USR1       dump the worker's state (agents' current events, timers, elections, assignment)
             to the log; the worker goes on.
  USR2       stand down from every election this worker leads; it stays a candidate.
  KILL       nothing to handle: unfinished events are processed again elsewhere.

Exit statuses:
  0  clean: finished, or a warm shutdown completed
  1  runtime failure (brokers unreachable, an undeliverable record, on_error = \"stop\")
  2  bad usage or a bad app definition, found before anything touched Kafka; a web port or
     data directory already in use
  3  cold shutdown: events were left unfinished and will be processed again";

/// Options every subcommand accepts, as in `faust -A proj -l info --datadir DIR worker`.
#[derive(Debug, Args)]
pub struct GlobalOptions {
    /// The app definition (TOML) to load. A name without an extension that is no file finds
    /// NAME.toml, as Faust's `-A leader` finds `leader.py`.
    #[arg(
        short = 'A',
        long = "app",
        value_name = "FILE",
        env = "FAUST_RS_APP",
        global = true
    )]
    pub app: Option<PathBuf>,

    /// Log level.
    #[arg(
        short = 'l',
        long = "loglevel",
        value_enum,
        default_value_t = LogLevel::Warn,
        env = "FAUST_RS_LOGLEVEL",
        global = true
    )]
    pub loglevel: LogLevel,

    /// The worker's data directory (holds its lock file and identity). Default:
    /// `./{app id}-data/worker-{web port}`, so workers that differ only in --web-port never share
    /// one.
    #[arg(long, value_name = "DIR", env = "FAUST_RS_DATADIR", global = true)]
    pub datadir: Option<PathBuf>,

    /// Write log lines as JSON objects (one per line) instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// Write the log to FILE (appending) instead of standard error.
    #[arg(short = 'f', long = "logfile", value_name = "FILE", global = true)]
    pub logfile: Option<PathBuf>,
}

/// Log levels with Faust's names (`crit` is the most severe).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    #[value(alias = "critical")]
    Crit,
    Error,
    #[value(alias = "warning")]
    Warn,
    Info,
    Debug,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a worker: join the app's consumer group, run its agents and timers, take part in the
    /// leader election and serve status over HTTP.
    Worker(WorkerArgs),
    /// Load and validate the app definition, print a summary; exit 0 if valid, 2 if not.
    Check(CheckArgs),
    /// List the app's agents with the topics they consume.
    Agents(AgentsArgs),
    /// Send a value to an agent (`@name`) or a topic, and print where it was written as JSON.
    Send(SendArgs),
    /// Show who leads each election, without joining the group; or ask a leader to stand down.
    Leader(LeaderArgs),
    /// Print a shell completion script to standard output.
    Completion(CompletionArgs),
    /// Print the man page (roff) to standard output.
    #[command(hide = true)]
    Man,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Port of the worker's HTTP status server.
    #[arg(long, default_value_t = 6066, env = "FAUST_RS_WEB_PORT")]
    pub web_port: u16,

    /// Address the HTTP status server binds to.
    #[arg(long, default_value = "0.0.0.0", env = "FAUST_RS_WEB_BIND")]
    pub web_bind: String,

    /// Host name other workers and the `leader` command use to reach this worker's web server.
    /// The other candidates connect there to see at once if this worker dies while it leads,
    /// so name an address they can reach. Default: this machine's host name.
    #[arg(long, env = "FAUST_RS_WEB_HOST")]
    pub web_host: Option<String>,

    /// File holding the control token that `POST /leader/stand-down` requests must carry
    /// (`Authorization: Bearer TOKEN`); else the token in FAUST_RS_WEB_TOKEN. With neither,
    /// the worker refuses every such request (403): the control endpoint is locked.
    #[arg(long, value_name = "FILE", env = "FAUST_RS_WEB_TOKEN_FILE")]
    pub web_token_file: Option<std::path::PathBuf>,

    /// Static membership of the agents' group (`group.instance.id`): a worker restarted
    /// within the session timeout gets its partitions back without a rebalance. `auto` makes
    /// one and keeps it in the data directory. Default: dynamic membership.
    #[arg(long, value_name = "ID|auto", env = "FAUST_RS_INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// Never lead: do not run for any election (the worker still runs agents and non-leader
    /// timers, and knows who leads).
    #[arg(long)]
    pub no_candidate: bool,

    /// Seconds a warm shutdown (TERM, INT) may take to finish in-flight events before it turns
    /// cold. A second TERM or INT turns it cold at once.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 25.0,
        value_parser = parse_seconds,
        env = "FAUST_RS_SHUTDOWN_TIMEOUT"
    )]
    pub shutdown_timeout: f64,

    /// Threads that evaluate agents' bodies (the evaluation pool). Bodies never run on the
    /// threads that keep the worker's elections, heartbeats, web server and commits going, so
    /// busy agents cannot starve them. Timers, tasks and hooks have threads of their own (as
    /// many, at most one per timer plus one). Default: the number of cores.
    #[arg(long, value_name = "N", env = "FAUST_RS_EVAL_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    pub eval_threads: Option<u16>,
}

#[derive(Debug, Args)]
pub struct AgentsArgs {
    /// Print the list as JSON.
    #[arg(long = "json-output")]
    pub json_output: bool,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// `@agent` to send to an agent's topic, or the name of a topic.
    pub entity: String,

    /// The value to send (serialized with the target's value serializer). Omitted: null.
    pub value: Option<String>,

    /// The record's key.
    #[arg(short = 'k', long)]
    pub key: Option<String>,

    /// The partition to write to. Default: chosen by the key (or spread when there is none).
    #[arg(long)]
    pub partition: Option<i32>,

    /// Send the value this many times.
    #[arg(short = 'r', long, default_value_t = 1)]
    pub repeat: u64,
}

#[derive(Debug, Args)]
pub struct LeaderArgs {
    /// Print as JSON.
    #[arg(long = "json-output")]
    pub json_output: bool,

    /// Keep running and print every change of leader.
    #[arg(long)]
    pub watch: bool,

    /// Ask a worker to stand down from the elections it leads (another candidate is elected
    /// if there is one): the worker at --url, or on this machine at --web-port. Sends the
    /// control token (--web-token-file, or FAUST_RS_WEB_TOKEN). Needs no -A.
    #[arg(long)]
    pub stand_down: bool,

    /// Web port of the worker on this machine addressed by --stand-down.
    #[arg(long, conflicts_with = "url")]
    pub web_port: Option<u16>,

    /// Web address of the worker addressed by --stand-down, on any host
    /// (`http://host:port`).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,

    /// File holding the control token --stand-down sends; else FAUST_RS_WEB_TOKEN.
    #[arg(long, value_name = "FILE", env = "FAUST_RS_WEB_TOKEN_FILE")]
    pub web_token_file: Option<std::path::PathBuf>,

    /// Only this election (default: every election of the app).
    #[arg(long, value_name = "NAME")]
    pub election: Option<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Print the resolved app as one JSON document (for scripts) instead of the summary.
    #[arg(long = "json-output")]
    pub json_output: bool,
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to write completions for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// A duration in seconds: a finite, non-negative number.
fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if (0.0..1e9).contains(&seconds) => Ok(seconds),
        _ => Err(format!(
            "{text:?} is not a number of seconds (e.g. 25 or 2.5)"
        )),
    }
}

/// The clap command, for generators (man page, completions) and tests.
pub fn command() -> clap::Command {
    Cli::command()
}

/// `--version`: this binary's version and the git commit it was built from, and the
/// librdkafka it links with its built-in features.
pub fn long_version() -> String {
    let (librdkafka, features) = crate::kafka::librdkafka_build();
    format!(
        "{} (commit {})\nlibrdkafka {librdkafka} (built-in features: {features})",
        env!("CARGO_PKG_VERSION"),
        env!("FAUST_RS_GIT_COMMIT")
    )
}

/// Renders the man page from the command definition.
pub fn render_man_page() -> Vec<u8> {
    let mut out = Vec::new();
    clap_mangen::Man::new(command())
        .render(&mut out)
        .expect("writing to a Vec cannot fail");
    // Subcommands get their own sections so `man faust-rs` documents every flag in one page.
    for sub in command().get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_name().to_string();
        let sub = sub.clone().name(format!("faust-rs {name}"));
        let man = clap_mangen::Man::new(sub);
        out.extend_from_slice(format!(".SH \"FAUST-RS {}\"\n", name.to_uppercase()).as_bytes());
        man.render_description_section(&mut out).expect("in memory");
        man.render_synopsis_section(&mut out).expect("in memory");
        man.render_options_section(&mut out).expect("in memory");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn committed_man_page_is_current() {
        let committed = include_str!("../man/faust-rs.1");
        let fresh = String::from_utf8(render_man_page()).unwrap();
        assert!(
            committed == fresh,
            "man/faust-rs.1 is stale: regenerate it with `cargo run -q -- man > man/faust-rs.1`"
        );
    }

    #[test]
    fn tutorial_command_line_parses() {
        let cli = Cli::try_parse_from([
            "faust-rs",
            "-A",
            "leader.toml",
            "worker",
            "-l",
            "info",
            "--web-port",
            "6067",
        ])
        .unwrap();
        assert_eq!(cli.global.loglevel, LogLevel::Info);
        assert_eq!(
            cli.global.app.as_deref(),
            Some(std::path::Path::new("leader.toml"))
        );
        match cli.command {
            Command::Worker(w) => assert_eq!(w.web_port, 6067),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn faust_level_names_are_accepted() {
        for (name, level) in [("critical", LogLevel::Crit), ("warning", LogLevel::Warn)] {
            let cli = Cli::try_parse_from(["faust-rs", "-l", name, "check"]).unwrap();
            assert_eq!(cli.global.loglevel, level);
        }
    }
}
