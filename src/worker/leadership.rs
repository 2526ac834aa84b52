//! The worker's part in its app's elections: one [`Election`] per election, a membership task
//! for each it is a candidate in, a reader that follows every election's announcements, and
//! the hooks (`on_elected`, `on_revoked`, `[[tasks]] on_leader = true`) run when terms begin
//! and end.

use std::sync::Arc;

use rdkafka::consumer::BaseConsumer;

use crate::kafka::logs::QuietLogs;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use crate::app::{App, DEFAULT_ELECTION};
use crate::election::member::{self, Identity, TermHooks};
use crate::election::{Control, Election, liveness, observer};
use crate::kafka::producer::{self, Producer};
use crate::kafka::wire::{MemberRemover, Security};
use crate::kafka::{ClientSettings, GroupProtocol, GroupSettings};
use crate::worker::shutdown::Shutdown;
use crate::worker::timers::BodyRunner;

/// Every election of the app, as this worker takes part in it.
pub struct Leadership {
    pub elections: Vec<Arc<Election>>,
    controls: Vec<Option<mpsc::UnboundedReceiver<Control>>>,
    members: Vec<JoinHandle<()>>,
}

impl Leadership {
    /// Sets up the elections without joining anything yet. `candidate` is false under
    /// `worker --no-candidate`.
    pub fn new(
        app: &App,
        settings: &ClientSettings,
        candidate: bool,
    ) -> Result<Leadership, String> {
        let probe: Arc<BaseConsumer<QuietLogs>> = Arc::new(
            settings
                .admin()
                .create_with_context(QuietLogs)
                .map_err(|e| format!("cannot create a metadata client: {e}"))?,
        );
        let mut elections = Vec::new();
        let mut controls = Vec::new();
        for e in &app.elections {
            let (election, control) = Election::new(
                &e.name,
                &app.election_topic(&e.name),
                candidate && e.candidate,
                app.election_session_timeout,
                probe.clone(),
            );
            elections.push(election);
            controls.push(Some(control));
        }
        Ok(Leadership {
            elections,
            controls,
            members: Vec::new(),
        })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Election>> {
        self.elections.iter().find(|e| e.name == name)
    }

    /// The app's default election (`on_leader = true`).
    pub fn default_election(&self) -> &Arc<Election> {
        self.get(DEFAULT_ELECTION)
            .expect("every app has the default election")
    }

    /// Starts following the announcements and running for the elections this worker is a
    /// candidate in, until a warm shutdown: then every term is given up and the election
    /// groups left first, so other candidates are elected while this worker drains.
    pub async fn start(
        &mut self,
        app: &Arc<App>,
        settings: &ClientSettings,
        identity: Identity,
        runner: BodyRunner,
        shutdown: &Shutdown,
    ) -> Result<(), String> {
        self.follow_announcements(settings, shutdown).await?;
        let hooks: Arc<dyn TermHooks> = Arc::new(Hooks {
            runner,
            tasks: shutdown.tasks.clone(),
        });
        // Announcements and resignations are on the hand-off's critical path: their own
        // producer sends them at once instead of lingering for a batch (5 ms each).
        let announcer = Producer::new(
            producer::create(settings.producer().set("linger.ms", "0"))
                .map_err(|e| format!("cannot create the election announcer: {e}"))?,
        );
        // Only candidates remove members (and need to say when they cannot).
        let candidate = self.elections.iter().any(|e| e.candidate);
        let security = candidate.then(|| removal_security(settings, app)).flatten();
        for (election, control) in self.elections.iter().zip(&mut self.controls) {
            if !election.candidate {
                continue;
            }
            let control = control.take().expect("started once");
            let remover = security
                .as_ref()
                .map(|security| member_remover(app, election, security));
            // Watches the leader's process, to remove it from the group once it is gone.
            if let Some(remover) = remover.as_ref().filter(|_| app.evict_dead_leaders) {
                shutdown.tasks.spawn(liveness::watch(
                    election.clone(),
                    remover.clone(),
                    shutdown.warm.clone(),
                ));
            }
            let clients = candidacy_clients(app, settings, election, &announcer, remover);
            self.members.push(shutdown.tasks.spawn(member::run(
                election.clone(),
                clients,
                identity.clone(),
                hooks.clone(),
                control,
                shutdown.warm.clone(),
            )));
        }
        Ok(())
    }

    /// Starts the reader that follows every election's announcements, from each topic's end.
    async fn follow_announcements(
        &self,
        settings: &ClientSettings,
        shutdown: &Shutdown,
    ) -> Result<(), String> {
        let topics: Vec<String> = self.elections.iter().map(|e| e.topic.clone()).collect();
        let config = settings.admin();
        // Finding where each topic ends is a blocking broker round trip.
        let reader = tokio::task::spawn_blocking(move || observer::tail(&config, &topics))
            .await
            .map_err(|e| format!("election reader: {e}"))??;
        shutdown.tasks.spawn(observer::follow(
            reader,
            self.elections.clone(),
            shutdown.warm.clone(),
        ));
        Ok(())
    }

    /// Waits until every candidacy has given up its term and left its group (they do on a
    /// warm shutdown).
    pub async fn resigned(&mut self) {
        for member in self.members.drain(..) {
            let _ = member.await;
        }
    }
}

/// How the connections that remove members from election groups (a dead leader's, this
/// worker's own replaced one) are secured; `None`, said once, when they cannot be.
fn removal_security(settings: &ClientSettings, app: &App) -> Option<Arc<Security>> {
    match Security::from_properties(&settings.overrides) {
        Ok(security) => Some(Arc::new(security)),
        Err(why) => {
            tracing::warn!(
                "faust-rs cannot remove members from election groups here ({why}): a dead leader is replaced after election_session_timeout ({:.1}s; lower it for a faster failover)",
                app.election_session_timeout.as_secs_f64()
            );
            None
        }
    }
}

/// Removes members from `election`'s group.
fn member_remover(app: &App, election: &Election, security: &Arc<Security>) -> Arc<MemberRemover> {
    Arc::new(MemberRemover {
        bootstrap: app.brokers.clone(),
        security: security.clone(),
        group: app.election_group(&election.name),
    })
}

/// The Kafka clients of one candidacy.
fn candidacy_clients(
    app: &App,
    settings: &ClientSettings,
    election: &Election,
    announcer: &Producer,
    remover: Option<Arc<MemberRemover>>,
) -> member::Clients {
    let group = GroupSettings {
        group_id: app.election_group(&election.name),
        // Never static: a leaving leader must hand over at once, not after the session
        // timeout.
        instance_id: None,
        protocol: GroupProtocol::Classic,
        session_timeout: app.election_session_timeout,
        // Heartbeats go when the candidacy's pump wakes librdkafka (see `member::Pump`, which
        // keeps to `election_heartbeat_interval`): any wake-up this long after the last
        // heartbeat sends one. Not less: librdkafka's main thread wakes often during a
        // rebalance, and with 5 ms the 50 members of `bench/failover.py --workers 50`
        // heartbeat at every wake-up (TERM hand-off median 0.52 s against 0.17 s).
        heartbeat_interval: std::time::Duration::from_millis(30),
        // librdkafka refuses a max poll interval below the session timeout; the election
        // consumer is polled all the time anyway.
        max_poll_interval: app.max_poll_interval.max(app.election_session_timeout),
    };
    // One transactional id per election, shared by its candidates: a new leader's producer
    // fences the previous one's. An open transaction of a leader that died holds back
    // read-committed consumers until the next leader starts or it times out.
    let mut term_producer = settings.term_producer();
    let timeout = (app.election_session_timeout * 2).max(std::time::Duration::from_secs(10));
    term_producer
        .set(
            "transactional.id",
            format!("{}-__leader-{}", app.id, election.name),
        )
        .set("transaction.timeout.ms", timeout.as_millis().to_string());
    member::Clients {
        consumer: settings.consumer(&group),
        heartbeat_interval: app.election_heartbeat_interval,
        term_producer,
        announcer: announcer.clone(),
        remover,
    }
}

/// Runs the app's term hooks on their own tasks, with the term's epoch on what they send.
struct Hooks {
    runner: BodyRunner,
    tasks: TaskTracker,
}

impl TermHooks for Hooks {
    fn elected(&self, election: &Arc<Election>, epoch: i64) {
        let runner = self.runner.clone();
        let name = election.name.clone();
        let election = election.clone();
        self.tasks.spawn(async move {
            let app = runner.app.clone();
            let Some(definition) = app.election(&name) else {
                return;
            };
            if let Some(body) = &definition.on_elected
                && let Err(e) = runner.run(body, Some((&election, epoch))).await
            {
                tracing::error!("election {name}: on_elected failed: {e}");
            }
            for task in app
                .tasks
                .iter()
                .filter(|t| t.election.as_deref() == Some(name.as_str()))
            {
                match runner.run(&task.body, Some((&election, epoch))).await {
                    Ok(_) => {
                        tracing::info!("task {} done (leader of {name}, epoch {epoch})", task.name)
                    }
                    Err(e) => tracing::error!("task {} failed: {e}", task.name),
                }
            }
        });
    }

    /// `on_revoked` runs after the term ended: what it sends carries no epoch.
    fn revoked(&self, election: &Arc<Election>, epoch: i64) {
        let runner = self.runner.clone();
        let name = election.name.clone();
        self.tasks.spawn(async move {
            let app = runner.app.clone();
            if let Some(body) = app.election(&name).and_then(|d| d.on_revoked.as_ref())
                && let Err(e) = runner.run(body, None).await
            {
                tracing::error!("election {name}: on_revoked (after epoch {epoch}) failed: {e}");
            }
        });
    }
}
