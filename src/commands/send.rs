//! `faust-rs send ENTITY [VALUE]`: write a value to an agent (`@name`) or a topic and print, as
//! Faust does, one JSON line per record with where it landed.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;

use rdkafka::Timestamp;

use crate::app::App;
use crate::cli::SendArgs;
use crate::codec::Serializer;
use crate::exit::{Fatal, Result, Status};
use crate::kafka::admin::ensure_topics;
use crate::kafka::producer::{self, Pending, Producer, Record};
use crate::kafka::reach;
use crate::script::SendTarget;

/// Records enqueued before the oldest is awaited: keeps `--repeat` fast without unbounded
/// memory.
const WINDOW: usize = 10_000;

pub async fn run(app: Arc<App>, args: SendArgs) -> Result<Status> {
    let target = match args.entity.strip_prefix('@') {
        Some(name) => {
            if app.agent(name).is_none() {
                let known: Vec<&str> = app.agents.iter().map(|a| a.name.as_str()).collect();
                return Err(Fatal::config(format!(
                    "no agent named {name:?} in {} (agents: {})",
                    app.path.display(),
                    known.join(", ")
                )));
            }
            SendTarget::Agent(name.to_string())
        }
        None => SendTarget::Topic(args.entity.clone()),
    };
    let settings = app.client_settings(format!("faust-rs-{}-send", app.id));
    reach::ensure_reachable(&settings, reach::PATIENCE)
        .await
        .map_err(Fatal::runtime)?;
    let producer = Producer::new(
        producer::create(&settings.producer())
            .map_err(|e| Fatal::runtime(format!("cannot create a producer: {e}")))?,
    );
    let (topic, key_serializer, value_serializer) = app.route(&target);
    let key = args
        .key
        .as_deref()
        .map(|k| as_payload(key_serializer, k, "--key"))
        .transpose()?;
    let value = args
        .value
        .as_deref()
        .map(|v| as_payload(value_serializer, v, "VALUE"))
        .transpose()?;

    // Create the topic first when the app owns it, so it gets the app's partition count rather
    // than whatever the broker's auto-creation would give it.
    if let Some(owned) = app.topic(&topic).filter(|t| t.create) {
        ensure_topics(&settings, &[owned.spec()])
            .await
            .map_err(Fatal::runtime)?;
    }

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let record = Record {
        topic,
        partition: args.partition,
        key,
        value,
    };
    let mut window: VecDeque<Pending> = VecDeque::with_capacity(WINDOW.min(args.repeat as usize));
    for _ in 0..args.repeat {
        if window.len() >= WINDOW {
            report(&mut out, window.pop_front().expect("window is full")).await?;
        }
        let pending = producer.send(&record, &[]).await.map_err(Fatal::runtime)?;
        window.push_back(pending);
    }
    while let Some(pending) = window.pop_front() {
        report(&mut out, pending).await?;
    }
    out.flush()
        .map_err(|e| Fatal::runtime(format!("cannot write to standard output: {e}")))?;
    Ok(Status::Clean)
}

/// Checks a command-line value against its serializer: JSON must parse, raw is sent as is.
fn as_payload(serializer: Serializer, text: &str, what: &str) -> Result<Vec<u8>> {
    if serializer == Serializer::Json
        && let Err(e) = serde_json::from_str::<serde_json::Value>(text)
    {
        return Err(Fatal::config(format!(
            "{what} is not valid JSON for the json serializer: {e}"
        )));
    }
    Ok(text.as_bytes().to_vec())
}

async fn report(out: &mut impl Write, pending: Pending) -> Result<()> {
    let topic = pending.topic.clone();
    let delivery = pending.delivered().await.map_err(Fatal::runtime)?;
    let timestamp = match delivery.timestamp {
        Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => Some(t),
        Timestamp::NotAvailable => None,
    };
    let line = serde_json::json!({
        "topic": topic,
        "partition": delivery.partition,
        "offset": delivery.offset,
        "timestamp": timestamp,
    });
    writeln!(out, "{line}")
        .map_err(|e| Fatal::runtime(format!("cannot write to standard output: {e}")))
}
