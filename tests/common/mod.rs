//! Helpers shared by the integration tests: the real broker's address, unique names, and
//! waiting on conditions with deadlines.

#![allow(dead_code)] // each test binary uses its own subset

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// The broker the tests run against: `FAUST_RS_TEST_BROKER`, else the address
/// `scripts/kafka.sh start` uses. Panics with instructions when nothing answers there: a test
/// that needs Kafka must fail loudly, never skip.
pub fn broker() -> String {
    let address =
        std::env::var("FAUST_RS_TEST_BROKER").unwrap_or_else(|_| "127.0.0.1:9092".to_string());
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &address)
        .create()
        .expect("creating a metadata probe");
    if let Err(e) = probe.fetch_metadata(None, Duration::from_secs(10)) {
        panic!(
            "no Kafka broker answers at {address} ({e}).\n\
             Start the project's broker with `scripts/kafka.sh start`, or run the tests with \
             `scripts/test.sh`, which starts it. Set FAUST_RS_TEST_BROKER to use another one."
        );
    }
    address
}

/// A name no other test run uses: prefix, process id, time and a random suffix.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{nanos}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

/// Creates a topic and waits until its metadata shows every partition.
pub async fn create_topic(broker: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .create()
        .expect("admin client");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let results = admin
        .create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("create_topics request");
    for result in results {
        result.unwrap_or_else(|(topic, code)| panic!("creating topic {topic}: {code}"));
    }
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .create()
        .unwrap();
    wait_until(
        Duration::from_secs(30),
        "topic metadata shows every partition",
        || {
            probe
                .fetch_metadata(Some(name), Duration::from_secs(5))
                .map(|m| {
                    m.topics()
                        .first()
                        .is_some_and(|t| t.partitions().len() == partitions as usize)
                })
                .unwrap_or(false)
        },
    );
}

/// Polls `condition` until it holds, panicking with `what` once `deadline` has passed.
pub fn wait_until(deadline: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The faust-rs binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_faust-rs")
}

/// A scratch folder for one test, removed when dropped.
pub struct Scratch(pub std::path::PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(unique_name(&format!("faust-rs-test-{name}")));
        std::fs::create_dir_all(&dir).expect("scratch folder");
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }

    /// Writes an app file whose `@BROKER@` placeholder becomes the test broker.
    pub fn app(&self, name: &str, toml: &str) -> std::path::PathBuf {
        let path = self.path(name);
        std::fs::write(
            &path,
            toml.replace("@BROKER@", &format!("kafka://{}", broker())),
        )
        .unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on 127.0.0.1:port; the status code and body, or None when nothing answers
/// within 5 s.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    // A new agent per call: no pooled connection outlives a test's worker.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into();
    let mut response = agent
        .get(format!("http://127.0.0.1:{port}{path}"))
        .call()
        .ok()?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().ok()?;
    Some((status, body))
}

/// The control token test workers that are asked to stand down over HTTP run with.
pub const WEB_TOKEN: &str = "9c1f7e5a2b-token";

/// The environment giving a worker (or `leader --stand-down`) [`WEB_TOKEN`].
pub fn web_token_env() -> Vec<(String, String)> {
    vec![("FAUST_RS_WEB_TOKEN".to_string(), WEB_TOKEN.to_string())]
}

/// A worker process started from the real binary; KILLed on drop if still running.
pub struct Worker {
    pub child: std::process::Child,
    pub port: u16,
    pub stdout: std::path::PathBuf,
    pub log: std::path::PathBuf,
}

impl Worker {
    /// Starts `faust-rs -A app worker -l info --web-port PORT --datadir DIR` with stdout and
    /// the log in files under `scratch`.
    pub fn start(scratch: &Scratch, app: &std::path::Path, extra: &[&str]) -> Worker {
        Worker::start_with_env(scratch, app, extra, &[])
    }

    /// [`Worker::start`] with more environment variables.
    pub fn start_with_env(
        scratch: &Scratch,
        app: &std::path::Path,
        extra: &[&str],
        env: &[(String, String)],
    ) -> Worker {
        Worker::start_on(scratch, app, free_port(), extra, env)
    }

    /// A worker like this one (its port, so its data directory) once it has exited: its
    /// restart.
    pub fn restart(&self, scratch: &Scratch, app: &std::path::Path, extra: &[&str]) -> Worker {
        Worker::start_on(scratch, app, self.port, extra, &[])
    }

    fn start_on(
        scratch: &Scratch,
        app: &std::path::Path,
        port: u16,
        extra: &[&str],
        env: &[(String, String)],
    ) -> Worker {
        // A restart on the same port keeps the logs of the earlier runs.
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stdout = scratch.path(&format!("worker-{port}-{run}.out"));
        let log = scratch.path(&format!("worker-{port}-{run}.log"));
        let datadir = scratch.path(&format!("data-{port}"));
        let child = std::process::Command::new(binary())
            .arg("-A")
            .arg(app)
            .args([
                "-l",
                "info",
                "worker",
                "--web-port",
                &port.to_string(),
                "--web-bind",
                "127.0.0.1",
            ])
            .arg("--datadir")
            .arg(&datadir)
            .args(extra)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting the worker");
        Worker {
            child,
            port,
            stdout,
            log,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.port, path)
    }

    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self
            .get(path)
            .unwrap_or_else(|| panic!("{path}: no answer"));
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }

    /// Waits until `/ready` answers 200.
    pub fn wait_ready(&mut self, deadline: Duration) {
        let start = Instant::now();
        loop {
            if let Some((200, _)) = self.get("/ready") {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "worker exited with {status} before it was ready:\n{}",
                    self.log_text()
                );
            }
            assert!(
                start.elapsed() < deadline,
                "worker not ready after {deadline:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for the process to end; its exit status.
    pub fn wait_exit(&mut self, deadline: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < deadline,
                "worker still running after {deadline:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A consumer in a group of its own, reading `topic` from the beginning.
pub fn reader(topic: &str) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("group.id", unique_name("test-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("a test reader");
    consumer
        .subscribe(&[topic])
        .expect("subscribing the test reader");
    consumer
}

/// A producer to the test broker.
pub fn producer() -> rdkafka::producer::FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", broker())
        .create()
        .expect("a test producer")
}

/// Runs `future` to completion on a small runtime of its own (the tests are synchronous).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

/// A child process killed and reaped when dropped, even when a test fails: a leftover holding
/// the test's standard error open would keep `cargo test | ...` pipelines waiting.
pub struct Reaped(pub std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Closes a group consumer, failing the test if closing takes longer than `patience`.
/// rust-rdkafka's drop polls until librdkafka says the consumer is closed, with no deadline, and
/// librdkafka can wait forever when a cooperative rebalance is under way (librdkafka #4527,
/// rust-rdkafka #509): leave the group first (`kafka::group::leave`), and let this make a
/// regression a failure in seconds instead of a test run that never ends. The drop runs on a
/// thread of its own so that a stuck close cannot hold the test's runtime either.
pub fn close_within<T: Send + 'static>(consumer: T, patience: Duration, what: &str) {
    let (closed, is_closed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(consumer);
        let _ = closed.send(());
    });
    assert!(
        is_closed.recv_timeout(patience).is_ok(),
        "{what} did not close within {patience:?}"
    );
}

/// The seed tutorial (`configs/leader.toml`) as written, with app id `id` and `broker` as its
/// `broker` value (e.g. `@BROKER@` for [`Scratch::app`]).
pub fn tutorial_toml(id: &str, broker: &str) -> String {
    let original =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/leader.toml"))
            .unwrap();
    let toml = original
        .replacen("id = \"leader-example\"", &format!("id = \"{id}\""), 1)
        .replacen(
            "broker = \"kafka://localhost:9092\"",
            &format!("broker = \"{broker}\""),
            1,
        );
    assert!(
        toml.contains(&format!("id = \"{id}\""))
            && toml.contains(&format!("broker = \"{broker}\"")),
        "configs/leader.toml changed shape"
    );
    toml
}
