//! A worker's life: start-up in an order that fails fast on bad input, the main loop, and a
//! shutdown that hands leadership over first and finishes in-flight work before leaving.
//!
//! Start-up: lock the data directory and bind the web port (both exit 2 when taken, before
//! anything touches Kafka), create the topics the app owns, join the agents' group, then run
//! for the elections. Warm shutdown: resign every term (other candidates are elected at once),
//! stop timers and fetching, finish in-flight events (bounded by the shutdown timeout), commit,
//! leave the group.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rdkafka::producer::Producer as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::election::Election;
use crate::election::member::Identity;
use crate::exit::{Fatal, Result, Status};
use crate::kafka;
use crate::kafka::admin::ensure_topics;
use crate::kafka::producer::{KafkaProducer, Producer};
use crate::kafka::reach;
use crate::kafka::{ClientSettings, GroupProtocol, GroupSettings, ProcessingGuarantee};
use crate::script::{Host, NoTables, ScriptEngine};
use crate::tables::Tables;
use crate::worker::agents::evaluate::Evaluator;
use crate::worker::agents::{self, Leaving, transactions};
use crate::worker::datadir::DataDir;
use crate::worker::dump;
use crate::worker::leadership::Leadership;
use crate::worker::pool::EvalPool;
use crate::worker::shutdown::Shutdown;
use crate::worker::signals::Request;
use crate::worker::state::WorkerState;
use crate::worker::systemd;
use crate::worker::table_routes::TableService;
use crate::worker::tables::{LocalView, TablePartitions, follow_global_tables};
use crate::worker::timers::{self, BodyRunner};
use crate::worker::web;

/// How this worker runs, from the command line.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub web_port: u16,
    pub web_bind: String,
    pub web_host: Option<String>,
    /// What `POST /leader/stand-down` requests must carry; `None`: refused.
    pub web_token: Option<crate::control_token::ControlToken>,
    pub datadir: Option<PathBuf>,
    pub shutdown_timeout: Duration,
    /// Runs for the app's elections (false under `--no-candidate`).
    pub candidate: bool,
    /// Static membership of the agents' group: an id, or `auto` (kept in the data directory).
    pub instance_id: Option<String>,
    /// Threads of the evaluation pool's agents' lane.
    pub eval_threads: usize,
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

/// Who this worker is: its id, host and web URL.
fn identity(options: &WorkerOptions) -> Identity {
    let host = host_name();
    let web_host = options.web_host.clone().unwrap_or_else(|| host.clone());
    Identity {
        worker: format!("{web_host}:{}", options.web_port),
        host,
        web_url: format!("http://{web_host}:{}/", options.web_port),
        instance: crate::election::liveness::this_process().to_string(),
    }
}

/// Runs a worker until a signal or a fatal failure ends it.
pub async fn run(
    app: Arc<App>,
    engine: Arc<ScriptEngine>,
    options: WorkerOptions,
    requests: mpsc::UnboundedReceiver<Request>,
) -> Result<Status> {
    let datadir_path = options
        .datadir
        .clone()
        .unwrap_or_else(|| default_datadir(&app, options.web_port));
    let datadir = DataDir::lock(&datadir_path).map_err(Fatal::config)?;
    let listener = web::bind(&options.web_bind, options.web_port)
        .await
        .map_err(Fatal::config)?;
    let identity = identity(&options);
    tracing::info!(
        "faust-rs {} starting: app {} (from {}), broker {}, worker {}, web {}, datadir {}, pid {}, librdkafka {}, candidate {}, evaluation threads {}, {}",
        env!("CARGO_PKG_VERSION"),
        app.id,
        app.path.display(),
        app.bootstrap_servers(),
        identity.worker,
        identity.web_url,
        datadir.path().display(),
        std::process::id(),
        rdkafka::util::get_rdkafka_version().1,
        options.candidate,
        options.eval_threads,
        app.processing_guarantee.name(),
    );
    let settings = app.client_settings(format!("faust-rs-{}-{}", app.id, identity.worker));
    let leadership = Leadership::new(&app, &settings, options.candidate).map_err(Fatal::runtime)?;
    let state = Arc::new(WorkerState::new(
        &app.id,
        &identity.worker,
        &identity.web_url,
        app.agents.iter().map(|a| a.name.clone()),
        app.timers.iter().map(|t| t.name.clone()),
        leadership.elections.clone(),
    ));
    let worker = Worker {
        app,
        engine,
        options,
        settings,
        identity,
        state,
        shutdown: Shutdown::default(),
        joined: Arc::new(OnceLock::new()),
    };
    // Signals are obeyed from now until the process exits: USR1 dumps even during start-up
    // and shutdown.
    let obeying = tokio::spawn(obey(
        requests,
        worker.shutdown.clone(),
        worker.app.clone(),
        worker.state.clone(),
        worker.joined.clone(),
        worker.options.shutdown_timeout,
    ));
    // Serve from now on: /health answers (and /ready says 503) while the topics are created
    // and the group is joined, however long the brokers take.
    let web_stop = CancellationToken::new();
    let web_task = tokio::spawn(web::serve(
        listener,
        worker.state.clone(),
        worker.options.web_token.clone(),
        web_stop.clone(),
    ));
    // systemd: STOPPING=1 as soon as a shutdown begins, watchdog pings until the process ends.
    let announce_stopping = worker.shutdown.warm.clone();
    let notifying = tokio::spawn(async move {
        announce_stopping.cancelled().await;
        systemd::stopping();
    });
    let pinging = tokio::spawn(systemd::keep_alive());
    let finished_warm = worker.live(leadership, &datadir).await?;
    notifying.abort();
    pinging.abort();
    web_stop.cancel();
    if finished_warm {
        let _ = tokio::time::timeout(Duration::from_millis(200), web_task).await;
    }
    obeying.abort();
    match worker.shutdown.failure() {
        Some(reason) => Err(Fatal::runtime(reason)),
        None if finished_warm => Ok(Status::Clean),
        None => Ok(Status::Cold),
    }
}

/// What every stage of a worker's life needs.
struct Worker {
    app: Arc<App>,
    engine: Arc<ScriptEngine>,
    options: WorkerOptions,
    settings: ClientSettings,
    identity: Identity,
    state: Arc<WorkerState>,
    shutdown: Shutdown,
    /// The agents' group, described, once the worker joins it (for the USR1 dump).
    joined: Arc<OnceLock<String>>,
}

/// What a started worker stops.
struct Running {
    leadership: Leadership,
    agents: tokio::task::JoinHandle<usize>,
    producer: Producer,
}

impl Worker {
    /// Starts, runs until the warm signal and stops. `true` when the shutdown was warm to the
    /// end (everything in flight finished, committed, left).
    async fn live(&self, leadership: Leadership, datadir: &DataDir) -> Result<bool> {
        // The start-up steps that can take long (brokers down or slow): a shutdown request
        // ends them, as there is nothing to finish yet.
        let owned = self.app.owned_topics();
        let first_contact = async {
            let took = reach::ensure_reachable(&self.settings, reach::PATIENCE).await?;
            tracing::debug!("the cluster answered in {} ms", took.as_millis());
            ensure_topics(&self.settings, &owned).await
        };
        tokio::select! {
            ready = first_contact => ready.map_err(Fatal::runtime)?,
            _ = self.shutdown.warm.cancelled() => return Ok(true),
        }
        let running = self.start(leadership, datadir).await?;
        systemd::ready();
        self.shutdown.warm.cancelled().await;
        Ok(self.stop(running).await)
    }

    /// Starts the evaluation pool, the agents, the elections and the timers.
    async fn start(&self, mut leadership: Leadership, datadir: &DataDir) -> Result<Running> {
        let app = &self.app;
        let pool = EvalPool::start(self.options.eval_threads, app.timers.len())
            .map_err(|e| Fatal::runtime(format!("cannot start the evaluation pool: {e}")))?;
        let pool = Arc::new(pool);
        let producer = kafka::producer::create(&self.settings.producer())
            .map_err(|e| Fatal::runtime(format!("cannot create the producer: {e}")))?;
        let producer = Producer::new(producer);
        let group = agents_group(app, &self.options, datadir)?;
        let transactional = match app.processing_guarantee {
            ProcessingGuarantee::AtLeastOnce => None,
            ProcessingGuarantee::ExactlyOnce => Some(self.transactional_producer(&group).await?),
        };
        let tables = self.open_tables(datadir).await?;
        let host: Arc<dyn Host> = Arc::new(WorkerHost {
            app_id: app.id.clone(),
            worker_id: self.identity.worker.clone(),
            leader: leadership.default_election().clone(),
        });
        let evaluator = Arc::new(Evaluator {
            app: app.clone(),
            engine: self.engine.clone(),
            host: host.clone(),
            state: self.state.clone(),
            // Under exactly-once the agents' records go out in their transactions; timers and
            // tasks keep the plain producer (they consume nothing to commit with them).
            producer: transactional
                .clone()
                .map_or_else(|| producer.clone(), Producer::new),
            tables: tables.clone(),
        });
        let table_partitions = tables.as_ref().map(|tables| {
            let reader = self.settings.changelog_reader();
            Arc::new(TablePartitions::new(app, tables.clone(), reader))
        });
        let agents = self.start_agents(evaluator, &pool, group, transactional, table_partitions)?;
        let runner = BodyRunner {
            app: app.clone(),
            engine: self.engine.clone(),
            host,
            producer: producer.clone(),
            pool: pool.clone(),
            tables: match &tables {
                Some(tables) => Arc::new(LocalView {
                    tables: tables.clone(),
                }),
                None => Arc::new(NoTables),
            },
        };
        let identity = self.identity.clone();
        leadership
            .start(
                app,
                &self.settings,
                identity,
                runner.clone(),
                &self.shutdown,
            )
            .await
            .map_err(Fatal::runtime)?;
        start_timers(&runner, &self.state, &leadership, &self.shutdown);
        Ok(Running {
            leadership,
            agents,
            producer,
        })
    }

    /// The agents' producer under exactly-once, holding the worker's transactional id: the
    /// app id and the worker's static instance id, or its id (`host:port`), both stable across
    /// restarts, so the broker aborts what this worker's previous process left open.
    async fn transactional_producer(&self, group: &GroupSettings) -> Result<KafkaProducer> {
        let member = group
            .instance_id
            .as_deref()
            .unwrap_or(&self.identity.worker);
        let transactional_id = format!("{}-{member}", self.app.id);
        let config = self.settings.exactly_once_producer(&transactional_id);
        let producer = kafka::producer::create(&config).map_err(|e| {
            Fatal::runtime(format!("cannot create the transactional producer: {e}"))
        })?;
        let initializing = producer.clone();
        tokio::task::spawn_blocking(move || transactions::initialize(&initializing))
            .await
            .map_err(|e| Fatal::runtime(format!("init_transactions: {e}")))?
            .map_err(Fatal::runtime)?;
        tracing::info!("exactly-once: transactional id {transactional_id}");
        Ok(producer)
    }

    /// Opens the app's tables in the data directory and reads the global ones' changelogs to
    /// their end (followed until the worker stops); `None` when the app has no table.
    async fn open_tables(&self, datadir: &DataDir) -> Result<Option<Arc<Tables>>> {
        if self.app.tables.is_empty() {
            return Ok(None);
        }
        let tables = Tables::open(&self.app.tables, &datadir.path().join("tables"))
            .map_err(Fatal::runtime)?;
        let service = TableService::new(&self.app, tables.clone(), self.settings.admin());
        let _ = self.state.tables.set(Arc::new(service));
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = (stop.clone(), self.shutdown.warm.clone());
        self.shutdown.tasks.spawn(async move {
            stopping.1.cancelled().await;
            stopping.0.store(true, Ordering::Relaxed);
        });
        let reader = self.settings.changelog_reader();
        follow_global_tables(&tables, &reader, stop)
            .await
            .map_err(Fatal::runtime)?;
        Ok(Some(tables))
    }

    /// Joins the agents' group.
    fn start_agents(
        &self,
        evaluator: Arc<Evaluator>,
        pool: &Arc<EvalPool>,
        group: GroupSettings,
        transactional: Option<KafkaProducer>,
        tables: Option<Arc<TablePartitions>>,
    ) -> Result<tokio::task::JoinHandle<usize>> {
        let app = &self.app;
        let description = describe_group(app, &group);
        tracing::info!("joining group {description}");
        let _ = self.joined.set(description);
        let consumer_config = match transactional {
            Some(_) => self.settings.exactly_once_consumer(&group),
            None => self.settings.consumer(&group),
        };
        let leaving = Leaving {
            group_name: format!("group {}", group.group_id),
            // A static member sends no LeaveGroup by design, and under KIP-848 librdkafka
            // leaves on close; a dynamic classic member makes sure its LeaveGroup goes out.
            wait_for_leave: (group.instance_id.is_none()
                && group.protocol == GroupProtocol::Classic)
                .then_some(app.session_timeout),
        };
        let pool = pool.clone();
        agents::start(
            evaluator,
            pool,
            &consumer_config,
            transactional,
            tables,
            leaving,
            &self.shutdown,
        )
        .map_err(Fatal::runtime)
    }

    /// Stops after the warm signal; `true` when it stayed warm to the end.
    async fn stop(&self, mut running: Running) -> bool {
        // Not ready from here on: load balancers and scripts stop counting on this worker.
        self.state.ready.store(false, Ordering::Relaxed);
        let drained = drain(&mut running, &self.shutdown);
        let finished_warm = tokio::select! {
            left = drained => {
                if left > 0 {
                    tracing::warn!("{left} events unfinished at shutdown; their partitions' next owner processes them again");
                }
                left == 0
            }
            _ = self.shutdown.cold.cancelled() => false,
        };
        if !finished_warm {
            // Cold: no waiting on work; only hand leadership over if that is instant.
            let resigned = running.leadership.resigned();
            let _ = tokio::time::timeout(Duration::from_millis(300), resigned).await;
            // Dropping the Kafka clients would close them politely, which takes a second or
            // more (revocation, LeaveGroup, producer flush). A cold shutdown skips that: the
            // process is about to exit, and the groups reassign after the session timeout.
            std::mem::forget(running);
        }
        finished_warm
    }
}

/// The agents' group membership.
fn agents_group(app: &App, options: &WorkerOptions, datadir: &DataDir) -> Result<GroupSettings> {
    Ok(GroupSettings {
        group_id: app.id.clone(),
        instance_id: match options.instance_id.as_deref() {
            Some("auto") => Some(datadir.instance_id(&app.id).map_err(Fatal::runtime)?),
            other => other.map(str::to_string),
        },
        protocol: app.group_protocol,
        session_timeout: app.session_timeout,
        heartbeat_interval: app.heartbeat_interval,
        max_poll_interval: app.max_poll_interval,
    })
}

fn describe_group(app: &App, group: &GroupSettings) -> String {
    format!(
        "{} ({} protocol, {})",
        group.group_id,
        app.group_protocol.name(),
        match &group.instance_id {
            Some(id) => format!("static member {id}"),
            None => "dynamic member".to_string(),
        }
    )
}

/// Starts every timer and the start-up tasks; they stop on a warm shutdown.
fn start_timers(
    runner: &BodyRunner,
    state: &Arc<WorkerState>,
    leadership: &Leadership,
    shutdown: &Shutdown,
) {
    for (index, timer) in runner.app.timers.iter().enumerate() {
        let election = timer
            .election
            .as_deref()
            .and_then(|name| leadership.get(name).cloned());
        shutdown.tasks.spawn(timers::run_timer(
            runner.clone(),
            state.clone(),
            index,
            election,
            shutdown.warm.clone(),
        ));
    }
    let (runner, stop) = (runner.clone(), shutdown.warm.clone());
    shutdown.tasks.spawn(async move {
        tokio::select! {
            _ = timers::run_startup_tasks(&runner) => {}
            _ = stop.cancelled() => {}
        }
    });
}

/// A warm shutdown after the warm signal: hand leadership over first (the next leader is
/// elected while this one drains), let the agents finish what is in flight, commit and leave,
/// wait for every other task, flush. Returns the number of events left unfinished.
async fn drain(running: &mut Running, shutdown: &Shutdown) -> usize {
    running.leadership.resigned().await;
    let left = (&mut running.agents).await.unwrap_or(0);
    shutdown.tasks.close();
    shutdown.tasks.wait().await;
    let producer = running.producer.inner().clone();
    let _ = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(5))).await;
    left
}

/// Carries out operators' requests (signals) until the process exits: the first TERM or INT
/// starts a warm shutdown, a second one (or QUIT, or the shutdown deadline) makes it cold;
/// USR1 dumps the worker's state, USR2 stands down.
async fn obey(
    mut requests: mpsc::UnboundedReceiver<Request>,
    shutdown: Shutdown,
    app: Arc<App>,
    state: Arc<WorkerState>,
    group: Arc<OnceLock<String>>,
    deadline: Duration,
) {
    while let Some(request) = requests.recv().await {
        match request {
            Request::Dump => {
                let group = group.get().map_or("(not joined yet)", String::as_str);
                tracing::warn!("{}", dump::render(&app, &state, group));
            }
            Request::StandDown(signal) => {
                let led: Vec<&str> = state
                    .elections
                    .iter()
                    .filter(|e| e.stand_down())
                    .map(|e| e.name.as_str())
                    .collect();
                let what = if led.is_empty() {
                    "nothing (this worker leads no election)".to_string()
                } else {
                    led.join(", ")
                };
                tracing::warn!("{signal}: standing down from {what}");
            }
            Request::WarmShutdown(signal) if !shutdown.warm.is_cancelled() => {
                if group.get().is_none() {
                    tracing::warn!("{signal} during start-up: stopping before joining the group");
                } else {
                    tracing::warn!(
                        "{signal}: warm shutdown (deadline {deadline:?}; send TERM or INT again to stop at once)"
                    );
                }
                shutdown.warm.cancel();
            }
            Request::WarmShutdown(signal) | Request::ColdShutdown(signal) => {
                if shutdown.warm.is_cancelled() {
                    tracing::warn!("{signal} during warm shutdown: turning cold");
                } else {
                    tracing::warn!("{signal}: cold shutdown");
                }
                shutdown.cold.cancel();
            }
        }
    }
}
