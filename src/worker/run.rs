//! A worker's life: start-up in an order that fails fast on bad input, the main loop, and a
//! shutdown that hands leadership over first and finishes in-flight work before leaving.
//!
//! Start-up: lock the data directory and bind the web port (both exit 2 when taken, before
//! anything touches Kafka), create the topics the app owns, join the agents' group, then run
//! for the elections. Warm shutdown: resign every term (other candidates are elected at once),
//! stop timers and fetching, finish in-flight events (bounded by the shutdown timeout), commit,
//! leave the group.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::producer::Producer;
use tokio::sync::{mpsc, watch};

use crate::app::{App, Topic};
use crate::election::Election;
use crate::election::member::Identity;
use crate::exit::{Fatal, Result, Status};
use crate::kafka::admin::{TopicSpec, ensure_topics};
use crate::kafka::{ClientSettings, GroupProtocol, GroupSettings};
use crate::script::{Host, ScriptEngine};
use crate::web;
use crate::worker::agents::Agents;
use crate::worker::datadir::DataDir;
use crate::worker::dump;
use crate::worker::leadership::{Leadership, election_topics};
use crate::worker::sender::Sender;
use crate::worker::signals::Request;
use crate::worker::state::WorkerState;
use crate::worker::timers::{self, BodyRunner};

/// How this worker runs, from the command line.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub web_port: u16,
    pub web_bind: String,
    pub web_host: Option<String>,
    pub datadir: Option<PathBuf>,
    pub shutdown_timeout: Duration,
    /// Runs for the app's elections (false under `--no-candidate`).
    pub candidate: bool,
    /// Static membership of the agents' group: an id, or `auto` (kept in the data directory).
    pub instance_id: Option<String>,
}

/// The worker's answers to scripts' `worker_id()`, `is_leader()`, `leader_epoch()`: the
/// default election's.
struct WorkerHost {
    app_id: String,
    worker_id: String,
    leader: Arc<Election>,
}

impl Host for WorkerHost {
    fn worker_id(&self) -> String {
        self.worker_id.clone()
    }
    fn app_id(&self) -> String {
        self.app_id.clone()
    }
    fn is_leader(&self) -> bool {
        self.leader.is_leading()
    }
    fn leader_epoch(&self) -> Option<i64> {
        self.leader.current_epoch()
    }
}

/// This machine's host name, for the worker id and web URL.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The default data directory: distinct per web port, so the tutorial's workers, which differ
/// only in `--web-port`, never share one.
pub fn default_datadir(app: &App, web_port: u16) -> PathBuf {
    PathBuf::from(format!("{}-data", app.id)).join(format!("worker-{web_port}"))
}

/// The client settings every Kafka client of this app starts from.
pub fn client_settings(app: &App, client_id: String) -> ClientSettings {
    ClientSettings {
        bootstrap: app.bootstrap_servers(),
        client_id,
        overrides: app
            .kafka
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// How a topic of the app is created.
pub fn topic_spec(topic: &Topic) -> TopicSpec {
    TopicSpec {
        name: topic.name.clone(),
        partitions: topic.partitions as i32,
        replicas: i32::from(topic.replicas),
        config: topic.creation_config().into_iter().collect(),
    }
}

/// Runs a worker until a signal or a fatal failure ends it.
pub async fn run(
    app: Arc<App>,
    engine: Arc<ScriptEngine>,
    options: WorkerOptions,
    mut requests: mpsc::UnboundedReceiver<Request>,
) -> Result<Status> {
    let datadir_path = options
        .datadir
        .clone()
        .unwrap_or_else(|| default_datadir(&app, options.web_port));
    let datadir = DataDir::lock(&datadir_path).map_err(Fatal::config)?;
    let listener = web::bind(&options.web_bind, options.web_port)
        .await
        .map_err(Fatal::config)?;
    let host = host_name();
    let web_host = options.web_host.clone().unwrap_or_else(|| host.clone());
    let worker_id = format!("{web_host}:{}", options.web_port);
    let web_url = format!("http://{web_host}:{}/", options.web_port);

    tracing::info!(
        "faust-rs {} starting: app {} (from {}), broker {}, worker {worker_id}, web {web_url}, datadir {}, pid {}, librdkafka {}, candidate {}",
        env!("CARGO_PKG_VERSION"),
        app.id,
        app.path.display(),
        app.bootstrap_servers(),
        datadir.path().display(),
        std::process::id(),
        rdkafka::util::get_rdkafka_version().1,
        options.candidate,
    );

    let settings = client_settings(&app, format!("faust-rs-{}-{worker_id}", app.id));
    let mut leadership =
        Leadership::new(&app, &settings, options.candidate).map_err(Fatal::runtime)?;
    let state = Arc::new(WorkerState::new(
        &app.id,
        &worker_id,
        &web_url,
        app.agents.iter().map(|a| a.name.clone()),
        app.timers.iter().map(|t| t.name.clone()),
        leadership.elections.clone(),
    ));
    // Serve from now on: /health answers (and /ready says 503) while the topics are created
    // and the group is joined, however long the brokers take.
    let (web_stop_tx, web_stop_rx) = watch::channel(false);
    let web_task = tokio::spawn(web::serve(listener, state.clone(), async move {
        let mut rx = web_stop_rx;
        let _ = rx.wait_for(|s| *s).await;
    }));

    let mut owned: Vec<TopicSpec> = app
        .topics
        .iter()
        .filter(|t| t.create)
        .map(topic_spec)
        .collect();
    owned.extend(election_topics(&app));
    // The one start-up step that can take long (brokers down or slow): a shutdown request
    // ends it, as there is nothing to finish yet.
    tokio::select! {
        created = ensure_topics(&settings, &owned) => created.map_err(Fatal::runtime)?,
        signal = next_shutdown_request(&mut requests) => {
            tracing::warn!("{signal} during start-up: stopping before joining the group");
            return Ok(Status::Clean);
        }
    }

    let producer = settings
        .producer()
        .create()
        .map_err(|e| Fatal::runtime(format!("cannot create the producer: {e}")))?;
    let sender = Sender::new(producer, app.clone());
    let script_host: Arc<dyn Host> = Arc::new(WorkerHost {
        app_id: app.id.clone(),
        worker_id: worker_id.clone(),
        leader: leadership.default_election().clone(),
    });

    let group = GroupSettings {
        group_id: app.id.clone(),
        instance_id: match options.instance_id.as_deref() {
            Some("auto") => Some(datadir.instance_id(&app.id).map_err(Fatal::runtime)?),
            other => other.map(str::to_string),
        },
        protocol: app.group_protocol,
        session_timeout: app.session_timeout,
        heartbeat_interval: app.heartbeat_interval,
        max_poll_interval: app.max_poll_interval,
    };
    let group_description = format!(
        "{} ({} protocol, {})",
        group.group_id,
        app.group_protocol.name(),
        match &group.instance_id {
            Some(id) => format!("static member {id}"),
            None => "dynamic member".to_string(),
        }
    );
    tracing::info!("joining group {group_description}");
    let mut consumer_config = settings.consumer(&group);
    consumer_config.set("statistics.interval.ms", "5000");
    let agents = Arc::new(
        Agents::new(
            app.clone(),
            engine.clone(),
            script_host.clone(),
            state.clone(),
            sender.clone(),
            consumer_config,
        )
        .map_err(Fatal::runtime)?,
    );
    agents.subscribe().map_err(Fatal::runtime)?;

    let runner = BodyRunner {
        app: app.clone(),
        engine: engine.clone(),
        host: script_host.clone(),
        sender: sender.clone(),
    };
    let identity = Identity {
        worker: worker_id.clone(),
        host,
        web_url: web_url.clone(),
    };
    leadership
        .start(&app, &settings, &sender, identity, runner.clone())
        .map_err(Fatal::runtime)?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let agents_task = tokio::spawn({
        let agents = agents.clone();
        let stop = stop_rx.clone();
        async move { agents.run(stop).await }
    });
    let commit_task = tokio::spawn(agents.clone().commit_loop(stop_rx.clone()));
    let mut timer_tasks = Vec::new();
    for (index, timer) in app.timers.iter().enumerate() {
        let election = timer
            .election
            .as_deref()
            .and_then(|name| leadership.get(name).cloned());
        timer_tasks.push(tokio::spawn(timers::run_timer(
            runner.clone(),
            state.clone(),
            index,
            election,
            stop_rx.clone(),
        )));
    }
    let startup = tokio::spawn({
        let runner = runner.clone();
        async move { timers::run_startup_tasks(&runner).await }
    });

    let mut failures = agents.failures();
    let ending = loop {
        tokio::select! {
            request = requests.recv() => match request {
                Some(Request::Dump) => tracing::warn!("{}", dump::render(&app, &state, &group_description)),
                Some(Request::StandDown(signal)) => {
                    let led: Vec<&str> = leadership.elections.iter().filter(|e| e.stand_down()).map(|e| e.name.as_str()).collect();
                    tracing::warn!("{signal}: standing down from {}", if led.is_empty() { "nothing (this worker leads no election)".to_string() } else { led.join(", ") });
                }
                Some(request) => break Ending::Requested(request),
                None => break Ending::Requested(Request::WarmShutdown("end of signal stream")),
            },
            _ = failures.changed() => {
                let reason = failures.borrow().clone().unwrap_or_default();
                break Ending::Failed(reason);
            }
        }
    };

    let cold = matches!(ending, Ending::Requested(Request::ColdShutdown(_)));
    let failed = matches!(ending, Ending::Failed(_));
    // Not ready from here on: load balancers and scripts stop counting on this worker.
    state.ready.store(false, Ordering::Relaxed);
    match &ending {
        Ending::Requested(Request::WarmShutdown(signal)) => tracing::warn!(
            "{signal}: warm shutdown (deadline {:?}; send TERM or INT again to stop at once)",
            options.shutdown_timeout
        ),
        Ending::Requested(Request::ColdShutdown(signal)) => {
            tracing::warn!("{signal}: cold shutdown")
        }
        Ending::Requested(request) => unreachable!("{request:?} does not end the loop"),
        Ending::Failed(reason) => tracing::error!("stopping: {reason}"),
    }
    // Leader timers stop acting at once, whatever else shutdown still does.
    let _ = stop_tx.send(true);
    startup.abort();
    let finished_warm = !cold
        && {
            let drain = async {
                // Hand leadership over first: the next leader is elected while this one drains.
                leadership.resign().await;
                let _ = agents_task.await;
                for task in timer_tasks {
                    let _ = task.await;
                }
                let _ = commit_task.await;
                // After a failure, the event that caused it never finishes: don't wait for it.
                let patience = if failed {
                    Duration::ZERO
                } else {
                    options.shutdown_timeout
                };
                let left = agents.drain(patience).await;
                let _ = sender.producer().flush(Duration::from_secs(5));
                left
            };
            tokio::select! {
                left = drain => {
                    if left > 0 {
                        tracing::warn!("{left} events still in flight at the shutdown deadline: turning cold; their new owner will process them again");
                    }
                    left == 0
                }
                signal = next_shutdown_request(&mut requests) => {
                    tracing::warn!("{signal} during warm shutdown: turning cold");
                    false
                }
            }
        };
    if finished_warm {
        leadership.stop().await;
        // Leave the agents' group now, so its partitions move at once rather than after the
        // session timeout. A dynamic classic member makes sure its LeaveGroup goes out (see
        // `kafka::group`); a static one sends none by design, and under KIP-848 librdkafka
        // leaves on close.
        agents.consumer().unsubscribe();
        if group.instance_id.is_none() && group.protocol == GroupProtocol::Classic {
            let _ = crate::kafka::group::leave(
                agents.consumer(),
                app.session_timeout,
                &format!("group {}", group.group_id),
            )
            .await;
        }
    } else {
        // Cold: no waiting on work; only hand leadership over if that is instant.
        let _ = tokio::time::timeout(Duration::from_millis(300), leadership.resign()).await;
        // Dropping the Kafka clients would close them politely, which takes a second or more
        // (revocation, LeaveGroup, producer flush). A cold shutdown skips that: the process is
        // about to exit, and the group reassigns the partitions after the session timeout.
        std::mem::forget((agents, sender, leadership));
    }
    let _ = web_stop_tx.send(true);
    if finished_warm {
        let _ = tokio::time::timeout(Duration::from_millis(200), web_task).await;
    }
    state.ready.store(false, Ordering::Relaxed);
    match ending {
        Ending::Failed(reason) => Err(Fatal::runtime(reason)),
        Ending::Requested(_) if finished_warm => Ok(Status::Clean),
        Ending::Requested(_) => Ok(Status::Cold),
    }
}

/// Waits for the next TERM, INT or QUIT (USR1 still dumps, USR2 is moot while stopping).
async fn next_shutdown_request(requests: &mut mpsc::UnboundedReceiver<Request>) -> &'static str {
    loop {
        match requests.recv().await {
            Some(Request::WarmShutdown(signal) | Request::ColdShutdown(signal)) => return signal,
            Some(_) => {}
            None => std::future::pending::<()>().await,
        }
    }
}

enum Ending {
    Requested(Request),
    Failed(String),
}
