//! The tables over HTTP (Faust's table router): `GET /table/{name}` lists the partitions this
//! worker holds and their sizes; `GET /table/{name}/{key}` answers the key's value from this
//! worker when it holds the key, and otherwise redirects (307) to the worker that holds the
//! key's partition, found in the agents' group (DescribeGroups).
//!
//! A key's partition is where faust-rs's producer puts a record with that key (librdkafka's
//! `partitioner`, CRC-32 by default): the router assumes, as Faust's does, that a table's keys
//! are the keys of the records that change them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rdkafka::consumer::BaseConsumer;
use serde_json::{Value, json};

use crate::app::App;
use crate::codec::{Datum, Serializer};
use crate::kafka::logs::QuietLogs;
use crate::kafka::members;
use crate::tables::Tables;
use crate::worker::state::WorkerState;

/// What the table routes need besides the tables.
pub struct TableService {
    pub tables: Arc<Tables>,
    app_id: String,
    group: String,
    partitioner: Option<String>,
    /// Per table: the agent topics co-partitioned with it (whose owners hold its partitions).
    topics: Vec<Vec<String>>,
    client_config: rdkafka::ClientConfig,
    /// Created on the first question about the group.
    client: Mutex<Option<Arc<BaseConsumer<QuietLogs>>>>,
}

impl std::fmt::Debug for TableService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableService")
            .field("tables", &self.tables)
            .finish_non_exhaustive()
    }
}

/// Bounds the question "who holds this partition?".
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

impl TableService {
    pub fn new(app: &App, tables: Arc<Tables>, client_config: rdkafka::ClientConfig) -> Self {
        let topics = (0..app.tables.len())
            .map(|table| {
                let mut topics: Vec<String> = app
                    .agents
                    .iter()
                    .filter(|agent| agent.tables.contains(&table))
                    .map(|agent| agent.topic.clone())
                    .collect();
                topics.dedup();
                topics
            })
            .collect();
        TableService {
            tables,
            app_id: app.id.clone(),
            group: app.id.clone(),
            partitioner: app.kafka.get("partitioner").map(str::to_string),
            topics,
            client_config,
            client: Mutex::new(None),
        }
    }

    /// `GET /table/{name}`.
    fn describe(&self, table: usize, worker: &str) -> Value {
        let def = self.tables.def(table);
        let held: Vec<Value> = self
            .tables
            .held_partitions(table)
            .iter()
            .map(|(partition, held)| {
                let rows = held.rows.read().unwrap();
                json!({
                    "partition": partition,
                    "keys": rows.len(),
                    "changelog_position": rows.position(),
                })
            })
            .collect();
        json!({
            "table": def.name,
            "global": def.global,
            "partitions": def.partitions,
            "changelog": def.changelog,
            "worker": worker,
            "held": held,
        })
    }

    /// The worker (its id, `host:port`) that holds partition `partition` of table `table`.
    fn owner(&self, table: usize, partition: u32) -> Result<Option<String>, String> {
        let client = self.client()?;
        let members = members::describe(&client, &self.group, DESCRIBE_TIMEOUT)?;
        let prefix = format!("faust-rs-{}-", self.app_id);
        let holds = |assignment: &[(String, Vec<i32>)]| {
            assignment.iter().any(|(topic, partitions)| {
                self.topics[table].contains(topic) && partitions.contains(&(partition as i32))
            })
        };
        Ok(members
            .iter()
            .find(|member| holds(&member.assignment))
            .and_then(|member| member.client_id.strip_prefix(&prefix))
            .map(str::to_string))
    }

    fn client(&self) -> Result<Arc<BaseConsumer<QuietLogs>>, String> {
        let mut client = self.client.lock().unwrap();
        if let Some(client) = client.as_ref() {
            return Ok(client.clone());
        }
        let created: BaseConsumer<QuietLogs> = self
            .client_config
            .create_with_context(QuietLogs)
            .map_err(|e| format!("cannot create a client to describe the group: {e}"))?;
        Ok(client.insert(Arc::new(created)).clone())
    }
}

/// A key as written in a URL, read with the table's key serializer: JSON text for `json` (a
/// string when it is not JSON), the text itself for `raw`.
fn key_from_url(serializer: Serializer, text: &str) -> Datum {
    match serializer {
        Serializer::Json => serde_json::from_str(text)
            .map(Datum::Value)
            .unwrap_or_else(|_| Datum::Value(Value::String(text.to_string()))),
        Serializer::Raw => Datum::Value(Value::String(text.to_string())),
    }
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// The service and the index of table `name`; `None` when there is no such table.
fn service(state: &WorkerState, name: &str) -> Option<(Arc<TableService>, usize)> {
    let service = state.tables.get()?;
    let table = service.tables.index_of(name)?;
    Some((service.clone(), table))
}

fn no_table(name: &str) -> Response {
    answer(
        StatusCode::NOT_FOUND,
        json!({ "error": format!("no table {name}") }),
    )
}

/// `GET /table/{name}`.
pub async fn table(State(state): State<Arc<WorkerState>>, Path(name): Path<String>) -> Response {
    match service(&state, &name) {
        Some((service, table)) => Json(service.describe(table, &state.worker_id)).into_response(),
        None => no_table(&name),
    }
}

/// `GET /table/{name}/{key}`.
pub async fn table_key(
    State(state): State<Arc<WorkerState>>,
    Path((name, key_text)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let Some((service, table)) = service(&state, &name) else {
        return no_table(&name);
    };
    let def = service.tables.def(table).clone();
    let key = key_from_url(def.key_serializer, &key_text);
    let encoded = match service.tables.encode_key(table, &key) {
        Ok(encoded) => encoded,
        Err(e) => return answer(StatusCode::BAD_REQUEST, json!({ "error": e })),
    };
    let here = service
        .tables
        .held_partitions(table)
        .into_iter()
        .find_map(|(partition, held)| {
            let value = held.rows.read().unwrap().get(&encoded).cloned()?;
            Some((partition, value))
        });
    let mut body = json!({ "table": def.name, "key": datum_json(&key), "worker": state.worker_id });
    if let Some((partition, value)) = here {
        body["partition"] = json!(partition);
        body["value"] = datum_json(&value);
        return answer(StatusCode::OK, body);
    }
    let partition =
        members::key_partition(&encoded, def.partitions, service.partitioner.as_deref());
    let held_here = |p: u32| def.global || service.tables.held(table, p).is_some();
    let Some(partition) = partition.filter(|&p| !held_here(p)) else {
        body["error"] = json!("no such key");
        return answer(StatusCode::NOT_FOUND, body);
    };
    body["partition"] = json!(partition);
    let asking = service.clone();
    let owner = tokio::task::spawn_blocking(move || asking.owner(table, partition)).await;
    match owner {
        Ok(Ok(Some(owner))) => {
            let location = format!("http://{owner}{}", uri.path());
            body["owner"] = json!(format!("http://{owner}/"));
            (
                StatusCode::TEMPORARY_REDIRECT,
                [(header::LOCATION, location)],
                Json(body),
            )
                .into_response()
        }
        Ok(Ok(None)) => {
            body["error"] =
                json!("no worker holds this key's partition now (the group is rebalancing?)");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "1")],
                Json(body),
            )
                .into_response()
        }
        Ok(Err(e)) => {
            body["error"] = json!(e);
            answer(StatusCode::BAD_GATEWAY, body)
        }
        Err(e) => {
            body["error"] = json!(e.to_string());
            answer(StatusCode::INTERNAL_SERVER_ERROR, body)
        }
    }
}

fn datum_json(datum: &Datum) -> Value {
    match datum {
        Datum::Value(value) => value.clone(),
        Datum::Bytes(bytes) => json!({ "bytes": bytes }),
    }
}
