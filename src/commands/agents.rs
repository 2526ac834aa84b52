//! `faust-rs -A app.toml agents` (Faust's `faust agents`): the agents with their topics and help
//! lines, as a table or (`--json-output`) as a JSON array.

use crate::app::App;
use crate::cli::{AgentsArgs, GlobalOptions};
use crate::exit::{Result, Status};

use super::{load_app, write_stdout};

pub fn run(global: &GlobalOptions, args: &AgentsArgs) -> Result<Status> {
    let loaded = load_app(global)?;
    let text = if args.json_output {
        json(&loaded.app)
    } else {
        table(&loaded.app)
    };
    write_stdout(&text)?;
    Ok(Status::Clean)
}

/// `[{"name": .., "topic": .., "help": ..}, ...]` and a newline.
pub fn json(app: &App) -> String {
    let rows: Vec<serde_json::Value> = app
        .agents
        .iter()
        .map(|a| serde_json::json!({ "name": a.name, "topic": a.topic, "help": a.help }))
        .collect();
    format!("{}\n", serde_json::Value::Array(rows))
}

/// An aligned table with a header, as `faust agents` prints.
pub fn table(app: &App) -> String {
    let mut rows = vec![["name", "topic", "help"].map(String::from)];
    for a in &app.agents {
        rows.push([format!("@{}", a.name), a.topic.clone(), a.help.clone()]);
    }
    let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
    let (w0, w1) = (width(0), width(1));
    let mut out = String::new();
    for row in &rows {
        let line = format!("{:<w0$}  {:<w1$}  {}", row[0], row[1], row[2]);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
