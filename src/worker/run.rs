//! A worker's life: start-up in an order that fails fast on bad input, the main loop, and a
//! shutdown that finishes in-flight work before leaving.
//!
//! Start-up: lock the data directory and bind the web port (both exit 2 when taken, before
//! anything touches Kafka), create the topics the app owns, then join the group. Shutdown
//! (warm): stop timers and fetching, finish in-flight events (bounded by the shutdown
//! timeout), commit, leave the group.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::producer::Producer;
use tokio::sync::{mpsc, watch};

use crate::app::App;
use crate::exit::{Fatal, Result, Status};
use crate::kafka::admin::{TopicSpec, ensure_topics};
use crate::kafka::{ClientSettings, GroupProtocol, GroupSettings};
use crate::script::{Host, ScriptEngine};
use crate::web;
use crate::worker::agents::Agents;
use crate::worker::datadir::DataDir;
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
}

/// The worker's answers to scripts' `worker_id()`, `is_leader()`, ...
struct WorkerHost {
    app_id: String,
    worker_id: String,
}

impl Host for WorkerHost {
    fn worker_id(&self) -> String {
        self.worker_id.clone()
    }
    fn app_id(&self) -> String {
        self.app_id.clone()
    }
    fn is_leader(&self) -> bool {
        // Leader election lands in its own module; until then no worker leads.
        false
    }
    fn leader_epoch(&self) -> Option<i64> {
        None
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
    let web_host = options.web_host.clone().unwrap_or_else(host_name);
    let worker_id = format!("{web_host}:{}", options.web_port);
    let web_url = format!("http://{web_host}:{}/", options.web_port);

    tracing::info!(
        "faust-rs {} starting: app {} (from {}), broker {}, worker {worker_id}, web {web_url}, datadir {}, pid {}, librdkafka {}",
        env!("CARGO_PKG_VERSION"),
        app.id,
        app.path.display(),
        app.bootstrap_servers(),
        datadir.path().display(),
        std::process::id(),
        rdkafka::util::get_rdkafka_version().1,
    );

    let settings = ClientSettings {
        bootstrap: app.bootstrap_servers(),
        client_id: format!("faust-rs-{}-{worker_id}", app.id),
        overrides: app
            .kafka
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    let owned: Vec<TopicSpec> = app
        .topics
        .iter()
        .filter(|t| t.create)
        .map(|t| TopicSpec {
            name: t.name.clone(),
            partitions: t.partitions as i32,
            replicas: i32::from(t.replicas),
            config: t.creation_config().into_iter().collect(),
        })
        .collect();
    ensure_topics(&settings, &owned)
        .await
        .map_err(Fatal::runtime)?;

    let producer = settings
        .producer()
        .create()
        .map_err(|e| Fatal::runtime(format!("cannot create the producer: {e}")))?;
    let sender = Sender::new(producer, app.clone());
    let state = Arc::new(WorkerState::new(
        &app.id,
        &worker_id,
        &web_url,
        app.agents.iter().map(|a| a.name.clone()),
        app.timers.iter().map(|t| t.name.clone()),
    ));
    let host: Arc<dyn Host> = Arc::new(WorkerHost {
        app_id: app.id.clone(),
        worker_id: worker_id.clone(),
    });

    let group = GroupSettings {
        group_id: app.id.clone(),
        instance_id: None,
        protocol: match app.group_protocol {
            crate::app::GroupProtocol::Classic => GroupProtocol::Classic,
            crate::app::GroupProtocol::Consumer => GroupProtocol::Consumer,
        },
        session_timeout: app.session_timeout,
        heartbeat_interval: app.heartbeat_interval,
        max_poll_interval: app.max_poll_interval,
    };
    let mut consumer_config = settings.consumer(&group);
    consumer_config.set("statistics.interval.ms", "5000");
    let agents = Arc::new(
        Agents::new(
            app.clone(),
            engine.clone(),
            host.clone(),
            state.clone(),
            sender.clone(),
            consumer_config,
        )
        .map_err(Fatal::runtime)?,
    );
    agents.subscribe().map_err(Fatal::runtime)?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let (web_stop_tx, web_stop_rx) = watch::channel(false);
    let web_task = tokio::spawn(web::serve(listener, state.clone(), async move {
        let mut rx = web_stop_rx;
        let _ = rx.wait_for(|s| *s).await;
    }));
    let agents_task = tokio::spawn({
        let agents = agents.clone();
        let stop = stop_rx.clone();
        async move { agents.run(stop).await }
    });
    let commit_task = tokio::spawn(agents.clone().commit_loop(stop_rx.clone()));
    let runner = BodyRunner {
        app: app.clone(),
        engine: engine.clone(),
        host: host.clone(),
        sender: sender.clone(),
    };
    let mut timer_tasks = Vec::new();
    for index in 0..app.timers.len() {
        timer_tasks.push(tokio::spawn(timers::run_timer(
            runner.clone(),
            state.clone(),
            index,
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
                Some(Request::Dump) => dump(&state),
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
    match &ending {
        Ending::Requested(Request::WarmShutdown(signal)) => tracing::warn!(
            "{signal}: warm shutdown (deadline {:?}; send it again to stop at once)",
            options.shutdown_timeout
        ),
        Ending::Requested(Request::ColdShutdown(signal)) => {
            tracing::warn!("{signal}: cold shutdown")
        }
        Ending::Requested(Request::Dump) => unreachable!("dumps do not end the loop"),
        Ending::Failed(reason) => tracing::error!("stopping: {reason}"),
    }
    let _ = stop_tx.send(true);
    startup.abort();
    if !cold {
        let drain = async {
            let _ = agents_task.await;
            for task in timer_tasks {
                let _ = task.await;
            }
            let _ = commit_task.await;
            let left = agents.drain(options.shutdown_timeout).await;
            let _ = sender.producer().flush(Duration::from_secs(5));
            left
        };
        tokio::pin!(drain);
        let interrupted = tokio::select! {
            left = &mut drain => {
                if left > 0 {
                    tracing::warn!("{left} events were still in flight at the shutdown deadline; their new owner will process them again");
                }
                false
            }
            request = requests.recv() => {
                tracing::warn!("{request:?} during warm shutdown: stopping at once");
                true
            }
        };
        if !interrupted {
            // Leave the group now so the partitions move at once, not after the session timeout.
            agents.consumer().unsubscribe();
        }
    }
    let _ = web_stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(1), web_task).await;
    state.ready.store(false, Ordering::Relaxed);
    match ending {
        Ending::Failed(reason) => Err(Fatal::runtime(reason)),
        Ending::Requested(_) => Ok(Status::Clean),
    }
}

enum Ending {
    Requested(Request),
    Failed(String),
}

/// USR1: the worker's state, in the log.
fn dump(state: &WorkerState) {
    let stats = serde_json::to_string(&state.snapshot()).unwrap_or_default();
    let assignment = format!("{:?}", state.assignment.lock().unwrap());
    tracing::warn!(
        "USR1 dump: worker {} assignment {assignment} stats {stats}",
        state.worker_id
    );
}
