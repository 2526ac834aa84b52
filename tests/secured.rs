//! The worker, `send` and `leader` against the project broker's secured listeners
//! (`scripts/kafka.sh`: SASL_SSL with SCRAM-SHA-512, and SSL with client certificates, both
//! signed by a CA the script generates; an authorizer that denies the `limited` user topic
//! creation). `scripts/test.sh` exports where they are (`scripts/kafka.sh clients-env`).
//!
//! - the leader tutorial over SASL_SSL and over mTLS: one publisher, greetings printed, `leader`
//!   answers, a KILLed leader is removed from the election group over the same listener; the
//!   password, read from the environment, appears in no log line, dump or HTTP answer;
//! - a wrong password and an untrusted CA: exit 1 at once, one line naming the broker and why;
//! - a principal that may not create topics runs when its topics exist, and is refused with the
//!   topic's name when one is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{Scratch, Worker, wait_until};

const READY: Duration = Duration::from_secs(60);
/// A refused login or certificate ends a command at once; 30 s is the bound for a cluster that
/// does not answer at all.
const REFUSED_WITHIN: Duration = Duration::from_secs(30);

/// One of the variables `scripts/kafka.sh clients-env` prints; panics with instructions when
/// it is not set.
fn secured(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!(
            "{variable} is not set: run the tests with scripts/test.sh, or first \
             `export $(scripts/kafka.sh clients-env)` (the broker's secured listeners)"
        )
    })
}

fn read_secret(file_variable: &str) -> String {
    let path = secured(file_variable);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim_end()
        .to_string()
}

/// How a test reaches the cluster: the listener and the `[kafka]` lines.
struct Access {
    bootstrap: String,
    kafka: String,
    /// Environment the commands run with (the password, read through `{ env = ... }`).
    env: Vec<(String, String)>,
}

const PASSWORD_VARIABLE: &str = "FAUST_RS_TEST_KAFKA_PASSWORD";

fn scram(user_variable: &str, password_file_variable: &str, ca: &str) -> Access {
    Access {
        bootstrap: secured("FAUST_RS_TEST_SASL_SSL"),
        kafka: format!(
            "\"security.protocol\" = \"SASL_SSL\"\n\
             \"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\
             \"sasl.username\" = \"{}\"\n\
             \"sasl.password\" = {{ env = \"{PASSWORD_VARIABLE}\" }}\n\
             \"ssl.ca.location\" = \"{ca}\"\n",
            secured(user_variable)
        ),
        env: vec![(
            PASSWORD_VARIABLE.to_string(),
            read_secret(password_file_variable),
        )],
    }
}

fn faust() -> Access {
    scram(
        "FAUST_RS_TEST_SCRAM_USER",
        "FAUST_RS_TEST_SCRAM_PASSWORD_FILE",
        &secured("FAUST_RS_TEST_CA"),
    )
}

fn mtls() -> Access {
    Access {
        bootstrap: secured("FAUST_RS_TEST_MTLS"),
        kafka: format!(
            "\"security.protocol\" = \"SSL\"\n\
             \"ssl.ca.location\" = \"{}\"\n\
             \"ssl.certificate.location\" = \"{}\"\n\
             \"ssl.key.location\" = \"{}\"\n",
            secured("FAUST_RS_TEST_CA"),
            secured("FAUST_RS_TEST_CLIENT_CERT"),
            secured("FAUST_RS_TEST_CLIENT_KEY"),
        ),
        env: Vec::new(),
    }
}

/// The seed tutorial (`configs/leader.toml`) with a fresh app id, reaching the cluster through
/// `access`; `extra` is appended (more entries).
fn tutorial(scratch: &Scratch, name: &str, id: &str, access: &Access, extra: &str) -> PathBuf {
    let toml = common::tutorial_toml(id, &format!("kafka://{}", access.bootstrap));
    let path = scratch.path(name);
    std::fs::write(&path, format!("{toml}\n[kafka]\n{}\n{extra}", access.kafka)).unwrap();
    path
}

fn start(scratch: &Scratch, app: &Path, access: &Access) -> Worker {
    Worker::start_with_env(scratch, app, &["--web-host", "127.0.0.1"], &access.env)
}

/// Runs `faust-rs -A app ARGS` to its end with `access`'s environment, in the app's folder (a
/// worker's data directory goes there).
fn run(app: &Path, access: &Access, args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let output = Command::new(common::binary())
        .current_dir(app.parent().expect("the app is in a scratch folder"))
        .arg("-A")
        .arg(app)
        .args(args)
        .envs(access.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("run faust-rs");
    (output, started.elapsed())
}

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

/// The tutorial's promise over a secured listener: two workers elect one publisher, the
/// greetings are printed, `faust-rs leader` names the leader.
fn tutorial_runs_over(access: &Access, label: &str) -> (Scratch, Vec<Worker>, PathBuf) {
    let scratch = Scratch::new(label);
    let id = common::unique_name(label);
    let app = tutorial(&scratch, "app.toml", &id, access, "");
    let mut workers = vec![start(&scratch, &app, access), start(&scratch, &app, access)];
    for worker in &mut workers {
        worker.wait_ready(READY);
    }
    wait_until(READY, "a leader publishing and greetings printed", || {
        let publishers = workers
            .iter()
            .filter(|w| count(&w.stdout_text(), "PUBLISHING ON LEADER!") > 0)
            .count();
        let greetings: usize = workers
            .iter()
            .map(|w| {
                w.stdout_text()
                    .lines()
                    .filter(|l| l.parse::<f64>().is_ok())
                    .count()
            })
            .sum();
        publishers == 1 && greetings >= 2
    });
    let (shown, _) = run(&app, access, &["leader", "--json-output"]);
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let view: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert!(view["worker"].is_string(), "no leader named: {view}");
    (scratch, workers, app)
}

#[test]
fn the_tutorial_runs_over_sasl_ssl_and_the_password_is_never_shown() {
    let access = faust();
    let password = access.env[0].1.clone();
    let (_scratch, mut workers, _app) = tutorial_runs_over(&access, "scram");
    // Everything an operator can look at: the HTTP answers, a USR1 dump, the logs at debug.
    let mut seen = String::new();
    for worker in &workers {
        for path in [
            "/",
            "/health",
            "/ready",
            "/assignment",
            "/stats",
            "/metrics",
            "/leader",
        ] {
            seen.push_str(&worker.get(path).map(|(_, body)| body).unwrap_or_default());
        }
        worker.signal("USR1");
    }
    wait_until(Duration::from_secs(10), "the USR1 dumps", || {
        workers
            .iter()
            .all(|w| w.log_text().contains("USR1 dump of worker"))
    });
    let killed = a_killed_leader_is_removed_from_the_group(&mut workers);
    seen.push_str(&killed.log_text());
    for worker in &mut workers {
        worker.signal("INT");
        assert_eq!(worker.wait_exit(Duration::from_secs(40)).code(), Some(0));
        seen.push_str(&worker.log_text());
        seen.push_str(&worker.stdout_text());
    }
    assert!(seen.contains("USR1 dump of worker"));
    assert!(
        !seen.contains(&password),
        "the password appears in what the workers showed"
    );
}

#[test]
fn the_tutorial_runs_over_mutual_tls() {
    let (_scratch, mut workers, _app) = tutorial_runs_over(&mtls(), "mtls");
    a_killed_leader_is_removed_from_the_group(&mut workers);
    for worker in &mut workers {
        worker.signal("INT");
        assert_eq!(worker.wait_exit(Duration::from_secs(40)).code(), Some(0));
    }
}

/// KILLs the leader of `workers`: the other worker removes its member from the election group
/// over the same secured listener (SASL or mTLS) and takes over. Returns the killed worker,
/// taken out of `workers`.
fn a_killed_leader_is_removed_from_the_group(workers: &mut Vec<Worker>) -> Worker {
    let leads =
        |w: &Worker| w.get_json("/leader")["elections"]["leader"]["this_worker_leads"] == true;
    let leader = workers.iter().position(leads).expect("a worker leads");
    let mut killed = workers.remove(leader);
    killed.signal("KILL");
    killed.wait_exit(Duration::from_secs(5));
    wait_until(READY, "the other worker takes over", || leads(&workers[0]));
    let log = workers[0].log_text();
    assert!(log.contains("removed the dead leader's member"), "{log}");
    killed
}

/// The tutorial reaching the cluster through `access`, which the cluster refuses: each command
/// ends with status 1 within `REFUSED_WITHIN`, its last line naming the listener and containing
/// `why`.
fn each_command_is_refused(label: &str, access: &Access, why: &str) {
    let scratch = Scratch::new(label);
    let app = tutorial(
        &scratch,
        "app.toml",
        &common::unique_name(label),
        access,
        "",
    );
    for args in [
        &["worker", "--web-port", "0"][..],
        &["send", "@say", "hello"][..],
        &["leader"][..],
    ] {
        let (output, took) = run(&app, access, args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or_default();
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(took < REFUSED_WITHIN, "{args:?} took {took:?}");
        assert!(
            last.starts_with("faust-rs: cannot connect to ")
                && last.contains(&access.bootstrap)
                && last.contains(why),
            "{args:?}: last line {last:?}"
        );
    }
}

#[test]
fn a_wrong_password_is_refused_at_once() {
    let mut access = faust();
    access.env[0].1 = "not-the-password".into();
    each_command_is_refused("wrong-password", &access, "SASL authentication error");
}

#[test]
fn an_untrusted_certificate_authority_is_refused_at_once() {
    let access = scram(
        "FAUST_RS_TEST_SCRAM_USER",
        "FAUST_RS_TEST_SCRAM_PASSWORD_FILE",
        &secured("FAUST_RS_TEST_UNTRUSTED_CA"),
    );
    each_command_is_refused("untrusted-ca", &access, "certificate verify failed");
}

/// A principal the ACLs deny topic creation (Confluent Cloud's usual service account): its
/// worker runs once the topics exist, and names the topic it may not create otherwise.
#[test]
fn a_principal_without_create_runs_on_existing_topics_only() {
    let scratch = Scratch::new("acl");
    let id = common::unique_name("acl");
    // The privileged user's worker creates the app's topics.
    let owner = faust();
    let app = tutorial(&scratch, "owner.toml", &id, &owner, "");
    let mut creator = start(&scratch, &app, &owner);
    creator.wait_ready(READY);
    creator.signal("INT");
    assert_eq!(creator.wait_exit(Duration::from_secs(40)).code(), Some(0));

    let limited = scram(
        "FAUST_RS_TEST_LIMITED_USER",
        "FAUST_RS_TEST_LIMITED_PASSWORD_FILE",
        &secured("FAUST_RS_TEST_CA"),
    );
    let app = tutorial(&scratch, "limited.toml", &id, &limited, "");
    let mut worker = start(&scratch, &app, &limited);
    worker.wait_ready(READY);
    wait_until(READY, "the limited worker publishing", || {
        count(&worker.stdout_text(), "PUBLISHING ON LEADER!") > 0
    });
    worker.signal("INT");
    assert_eq!(worker.wait_exit(Duration::from_secs(40)).code(), Some(0));

    // One more topic, which nobody created.
    let missing = format!("{id}-missing");
    let app = tutorial(
        &scratch,
        "more.toml",
        &id,
        &limited,
        &format!("[[topics]]\nname = \"{missing}\"\n"),
    );
    let (output, took) = run(&app, &limited, &["worker", "--web-port", "0"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(took < Duration::from_secs(60), "took {took:?}");
    assert!(
        stderr.contains(&format!("not allowed to create topic {missing}"))
            && stderr.contains("CREATE"),
        "{stderr}"
    );
}
