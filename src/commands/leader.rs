//! `faust-rs leader`: who leads each election, read from the election topics without joining
//! any group (tooz `get_leader`); `--watch` follows changes; `--stand-down` asks the worker at
//! `--url` (or on this machine's `--web-port`) to give up its terms (tooz
//! `stand_down_group_leader`).

use std::sync::Arc;
use std::time::Duration;

use rdkafka::{Message, Offset};

use crate::app::App;
use crate::cli::LeaderArgs;
use crate::control_token::ControlToken;
use crate::election::{Announcement, observer};
use crate::exit::{Fatal, Result, Status};
use crate::kafka::{admin, reach};

pub async fn run(app: Arc<App>, args: LeaderArgs) -> Result<Status> {
    if let Some(name) = &args.election
        && app.election(name).is_none()
    {
        let known: Vec<&str> = app.elections.iter().map(|e| e.name.as_str()).collect();
        return Err(Fatal::config(format!(
            "no election named {name:?} (elections: {})",
            known.join(", ")
        )));
    }
    let settings = app.client_settings(format!("faust-rs-{}-leader", app.id));
    reach::ensure_reachable(&settings, reach::PATIENCE)
        .await
        .map_err(Fatal::runtime)?;
    let config = settings.admin();
    let names: Vec<String> = app
        .elections
        .iter()
        .map(|e| e.name.clone())
        .filter(|name| args.election.as_ref().is_none_or(|only| only == name))
        .collect();
    let topics: Vec<String> = names.iter().map(|n| app.election_topic(n)).collect();
    // Metadata and the newest records are blocking reads: off the async runtime's threads.
    let (readable, newest) = {
        let (config, topics) = (config.clone(), topics.clone());
        tokio::task::spawn_blocking(move || {
            let existing = admin::existing_topics(&config).map_err(Fatal::runtime)?;
            let readable: Vec<String> = topics
                .into_iter()
                .filter(|t| existing.contains(t))
                .collect();
            let newest = observer::newest(&config, &readable).map_err(Fatal::runtime)?;
            Ok::<_, Fatal>((readable, newest))
        })
        .await
        .map_err(|e| Fatal::runtime(format!("reading the election topics: {e}")))??
    };
    let mut current: Vec<(String, Option<Announcement>)> =
        names.iter().map(|n| (n.clone(), None)).collect();
    for (topic, announcement) in readable.iter().zip(newest) {
        let index = topics
            .iter()
            .position(|t| t == topic)
            .expect("readable topics come from topics");
        current[index].1 = announcement;
    }
    for (election, announcement) in &current {
        print_leader(election, announcement.as_ref(), args.json_output);
    }
    if !args.watch {
        return Ok(Status::Clean);
    }
    if readable.len() < topics.len() {
        return Err(Fatal::runtime(
            "--watch needs every election topic to exist: start a worker of this app first",
        ));
    }
    // Go on right after what was printed: anything written since (even a resignation and a
    // new term within milliseconds) is printed too.
    let consumer = observer::tail_from(&config, &topics, |_, topic| {
        let name = &names[topics.iter().position(|t| t == topic).expect("one of ours")];
        let printed = current
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, a)| a.as_ref());
        Ok(printed.map_or(Offset::Beginning, |a| Offset::Offset(a.epoch + 1)))
    })
    .map_err(Fatal::runtime)?;
    loop {
        let message = consumer
            .recv()
            .await
            .map_err(|e| Fatal::runtime(format!("reading the election topics: {e}")))?;
        let Some(payload) = message.payload() else {
            continue;
        };
        let Ok(announcement) = Announcement::decode(payload, message.offset()) else {
            continue;
        };
        let Some(slot) = current
            .iter_mut()
            .find(|(name, _)| *name == announcement.election)
        else {
            continue;
        };
        if slot
            .1
            .as_ref()
            .is_some_and(|seen| seen.epoch >= announcement.epoch)
        {
            continue; // the newest record, already printed
        }
        print_leader(
            &announcement.election,
            Some(&announcement),
            args.json_output,
        );
        slot.1 = Some(announcement);
    }
}

fn print_leader(election: &str, announcement: Option<&Announcement>, json: bool) {
    match (announcement, json) {
        (Some(a), true) => {
            let mut view = a.view();
            view["election"] = election.into();
            if a.resigned {
                // Nobody leads: the worker named is the one that resigned.
                view =
                    serde_json::json!({ "election": election, "worker": null, "resigned": view });
            }
            println!("{view}");
        }
        (None, true) => println!(
            "{}",
            serde_json::json!({ "election": election, "worker": null })
        ),
        (Some(a), false) if a.resigned => println!(
            "{election}: no leader ({} resigned at {}; epoch {})",
            a.worker,
            a.since(),
            a.epoch
        ),
        (Some(a), false) => println!(
            "{election}: {} (host {}, pid {}, {}) epoch {} since {}",
            a.worker,
            a.host,
            a.pid,
            a.web_url,
            a.epoch,
            a.since()
        ),
        (None, false) => println!("{election}: no leader elected yet"),
    }
}

/// How long `--stand-down` waits for the worker's answer, connecting included.
const STAND_DOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// `faust-rs leader --stand-down`: `POST /leader/stand-down` to the worker at `--url` or on
/// 127.0.0.1:`--web-port`, with the control token; prints its answer. The HTTP client is
/// blocking, so the request runs on tokio's blocking pool.
pub async fn stand_down(args: LeaderArgs) -> Result<Status> {
    let base = match (&args.url, args.web_port) {
        (Some(url), _) => url.trim_end_matches('/').to_string(),
        (None, Some(port)) => format!("http://127.0.0.1:{port}"),
        (None, None) => {
            return Err(Fatal::config(
                "--stand-down needs the worker to ask: --url http://host:port or --web-port N",
            ));
        }
    };
    let token = ControlToken::load(args.web_token_file.as_deref()).map_err(Fatal::config)?;
    let answer = tokio::task::spawn_blocking(move || {
        post_stand_down(&base, args.election.as_deref(), token.as_ref())
    })
    .await
    .map_err(|e| Fatal::runtime(format!("the stand-down request did not finish: {e}")))??;
    println!("{}", answer.trim());
    Ok(Status::Clean)
}

/// The request of [`stand_down`]: the worker's answer when it is a 200.
fn post_stand_down(
    base: &str,
    election: Option<&str>,
    token: Option<&ControlToken>,
) -> Result<String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(STAND_DOWN_TIMEOUT))
        .http_status_as_error(false)
        // Straight to the worker: never through a proxy named by the environment.
        .proxy(None)
        .build()
        .into();
    let mut request = agent.post(format!("{base}/leader/stand-down"));
    if let Some(name) = election {
        request = request.query("election", name);
    }
    if let Some(token) = token {
        request = request.header("authorization", token.header());
    }
    let failed = |e: ureq::Error| match e {
        ureq::Error::Timeout(_) => Fatal::runtime(format!(
            "the worker at {base} did not answer in {} s",
            STAND_DOWN_TIMEOUT.as_secs()
        )),
        e => Fatal::runtime(format!("no worker answers at {base}: {e}")),
    };
    let mut response = request.send_empty().map_err(failed)?;
    let status = response.status();
    let body = response.body_mut().read_to_string().map_err(failed)?;
    if status != ureq::http::StatusCode::OK {
        return Err(Fatal::runtime(format!(
            "the worker at {base} refused: HTTP {status}: {}",
            body.trim()
        )));
    }
    Ok(body)
}
