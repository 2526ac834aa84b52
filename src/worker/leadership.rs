//! The worker's part in its app's elections: one [`Election`] per election, a membership task
//! for each it is a candidate in, a reader that follows every election's announcements, and
//! the hooks (`on_elected`, `on_revoked`, `[[tasks]] on_leader = true`) run when terms begin
//! and end.

use std::sync::Arc;

use rdkafka::consumer::BaseConsumer;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::app::{App, DEFAULT_ELECTION};
use crate::election::member::{self, Identity, TermHooks};
use crate::election::{Control, Election, observer};
use crate::kafka::admin::TopicSpec;
use crate::kafka::{ClientSettings, GroupProtocol, GroupSettings};
use crate::worker::sender::Sender;
use crate::worker::timers::BodyRunner;

/// Every election of the app, as this worker takes part in it.
pub struct Leadership {
    pub elections: Vec<Arc<Election>>,
    controls: Vec<Option<mpsc::UnboundedReceiver<Control>>>,
    members: Vec<JoinHandle<()>>,
    reader: Option<JoinHandle<()>>,
    stop_members: watch::Sender<bool>,
    stop_reader: watch::Sender<bool>,
}

/// The topics elections need: one partition each, compacted so the newest announcement is
/// kept however old it gets (compaction keeps offsets, so epochs still only grow).
pub fn election_topics(app: &App) -> Vec<TopicSpec> {
    app.elections
        .iter()
        .map(|e| TopicSpec {
            name: app.election_topic(&e.name),
            partitions: 1,
            replicas: i32::from(app.topic_replication_factor),
            config: vec![("cleanup.policy".into(), "compact".into())],
        })
        .collect()
}

impl Leadership {
    /// Sets up the elections without joining anything yet. `candidate` is false under
    /// `worker --no-candidate`.
    pub fn new(
        app: &App,
        settings: &ClientSettings,
        candidate: bool,
    ) -> Result<Leadership, String> {
        let probe: Arc<BaseConsumer> = Arc::new(
            settings
                .admin()
                .create()
                .map_err(|e| format!("cannot create a metadata client: {e}"))?,
        );
        let mut elections = Vec::new();
        let mut controls = Vec::new();
        for e in &app.elections {
            let (election, control) = Election::new(
                &e.name,
                &app.election_topic(&e.name),
                candidate && e.candidate,
                app.session_timeout,
                probe.clone(),
            );
            elections.push(election);
            controls.push(Some(control));
        }
        Ok(Leadership {
            elections,
            controls,
            members: Vec::new(),
            reader: None,
            stop_members: watch::channel(false).0,
            stop_reader: watch::channel(false).0,
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
    /// candidate in.
    pub fn start(
        &mut self,
        app: &Arc<App>,
        settings: &ClientSettings,
        sender: &Sender,
        identity: Identity,
        runner: BodyRunner,
    ) -> Result<(), String> {
        let topics: Vec<String> = self.elections.iter().map(|e| e.topic.clone()).collect();
        let reader = observer::tail(&settings.admin(), &topics)?;
        self.reader = Some(tokio::spawn(observer::follow(
            reader,
            self.elections.clone(),
            self.stop_reader.subscribe(),
        )));
        let hooks: Arc<dyn TermHooks> = Arc::new(Hooks { runner });
        // Announcements and resignations are on the hand-off's critical path: their own
        // producer sends them at once instead of lingering for a batch (5 ms each).
        let announcer = if self.elections.iter().any(|e| e.candidate) {
            let producer = settings
                .producer()
                .set("linger.ms", "0")
                .create()
                .map_err(|e| format!("cannot create the election announcer: {e}"))?;
            sender.with_producer(producer)
        } else {
            sender.clone()
        };
        for (election, control) in self.elections.iter().zip(&mut self.controls) {
            if !election.candidate {
                continue;
            }
            let group = GroupSettings {
                group_id: app.election_group(&election.name),
                // Never static: a leaving leader must hand over at once, not after the
                // session timeout.
                instance_id: None,
                protocol: GroupProtocol::Classic,
                session_timeout: app.session_timeout,
                // The other candidates learn that a leader left (and the group is
                // rebalancing) at their next heartbeat, so this bounds the hand-off.
                heartbeat_interval: app.election_heartbeat_interval,
                max_poll_interval: app.max_poll_interval,
            };
            let config = settings.consumer(&group);
            // One transactional id per election, shared by its candidates: a new leader's
            // producer fences the previous one's. An open transaction of a leader that died
            // holds back read-committed consumers until the next leader starts or it times out.
            let mut term_config = settings.producer();
            let timeout = (app.session_timeout * 2).max(std::time::Duration::from_secs(10));
            term_config
                .set(
                    "transactional.id",
                    format!("{}-__leader-{}", app.id, election.name),
                )
                .set("transaction.timeout.ms", timeout.as_millis().to_string());
            let control = control.take().expect("started once");
            let clients = member::Clients {
                consumer: config,
                heartbeat_interval: group.heartbeat_interval,
                term_producer: term_config,
                sender: announcer.clone(),
            };
            self.members.push(tokio::spawn(member::run(
                election.clone(),
                clients,
                identity.clone(),
                hooks.clone(),
                control,
                self.stop_members.subscribe(),
            )));
        }
        Ok(())
    }

    /// Gives up every term and leaves the election groups, so other candidates are elected
    /// while this worker drains its agents. Returns once the groups acknowledged the leave.
    pub async fn resign(&mut self) {
        let _ = self.stop_members.send(true);
        for member in self.members.drain(..) {
            let _ = member.await;
        }
    }

    /// Stops following announcements.
    pub async fn stop(&mut self) {
        self.resign().await;
        let _ = self.stop_reader.send(true);
        if let Some(reader) = self.reader.take() {
            let _ = reader.await;
        }
    }
}

/// Runs the app's term hooks on their own tasks, with the term's epoch on what they send.
struct Hooks {
    runner: BodyRunner,
}

impl TermHooks for Hooks {
    fn elected(&self, election: &Arc<Election>, epoch: i64) {
        let runner = self.runner.clone();
        let name = election.name.clone();
        let election = election.clone();
        tokio::spawn(async move {
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
        tokio::spawn(async move {
            let app = runner.app.clone();
            if let Some(body) = app.election(&name).and_then(|d| d.on_revoked.as_ref())
                && let Err(e) = runner.run(body, None).await
            {
                tracing::error!("election {name}: on_revoked (after epoch {epoch}) failed: {e}");
            }
        });
    }
}
