//! Telling a dead leader from a paused one, and removing a dead one from its election group.
//!
//! Without this, a leader killed with `kill -9` (or by the OOM killer, or a crash) is replaced
//! only when the group coordinator gives up on its heartbeats: a whole session timeout. Yet the
//! death of a process is visible at once: the kernel closes its sockets. So every candidate
//! keeps one connection open to the current leader's web server (`GET /alive`, which answers
//! with the process's [`this_process`] id and then never ends) and, when it closes, looks again:
//!
//! - the port refuses connections, or another process answers there, where the leader's own
//!   process was seen answering before: the leader is **dead**;
//!   the candidate removes the leader's member (named in its announcement) from the group with
//!   a LeaveGroup on its behalf ([`crate::kafka::wire`]), and the group elects the next leader
//!   now;
//! - the port does not answer, or the host is unreachable: **nothing is concluded**. A paused
//!   process (SIGSTOP, a stall) keeps its sockets open, and a host crash or a network partition
//!   looks the same as a slow network: those stay the session timeout's job, as without this.
//!
//! Safety does not rest on this: removing a leader that is in fact alive only costs it its
//! term — its next heartbeat learns it is no longer a member and revokes its partition, and the
//! new leader's fencing (`init_transactions`) and newer announcement stop anything it still
//! tries (see [`crate::election`]). Several candidates may remove the same member; the second
//! removal finds it gone.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::{Announcement, Election};
use crate::kafka::wire::{MemberRemover, Removal};

/// The web server's route that names the process and stays open while it lives.
pub const ALIVE_PATH: &str = "/alive";
/// The response header that carries [`this_process`].
pub const INSTANCE_HEADER: &str = "x-faust-rs-instance";

/// This process, among every process that ever served a web port: a random id drawn once.
pub fn this_process() -> &'static str {
    static INSTANCE: OnceLock<String> = OnceLock::new();
    INSTANCE.get_or_init(|| uuid::Uuid::new_v4().to_string())
}

/// A connection attempt that does not complete in this time concludes nothing.
const CONNECT: Duration = Duration::from_secs(2);
/// Between looks at a leader whose state could not be told.
const LOOK_AGAIN: Duration = Duration::from_secs(1);
/// Between looks after a connection closed before it was answered: a dying process closes its
/// sockets one by one, so a connection made just before its listening socket closes is
/// accepted and then reset (measured: a connect 20 ms after the watched connection closed).
const LOOK_SOON: Duration = Duration::from_millis(20);
/// The response head of `GET /alive` is small; anything longer is not ours.
const MAX_HEAD: usize = 4096;

/// Follows the announced leader of `election` until `stop`, removing it from the group if its
/// process dies.
pub async fn watch(election: Arc<Election>, remover: Arc<MemberRemover>, stop: CancellationToken) {
    let mut latest = election.watch_latest();
    loop {
        let term = latest.borrow_and_update().clone().filter(watchable);
        if let Some(term) = term {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = latest.changed() => continue,
                verdict = follow(&term) => match verdict {
                    Verdict::Dead(why) => {
                        election.expect_handoff();
                        evict(&election, &remover, &term, &why).await
                    }
                    Verdict::CannotTell(why) => tracing::info!(
                        "election {}: cannot watch the leader's process ({why}); if it dies, the next leader is elected after election_session_timeout",
                        election.name
                    ),
                },
            }
        }
        // Until the next term (or a change to this one, such as its resignation).
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = latest.changed() => if changed.is_err() { return },
        }
    }
}

/// A term this worker can watch: another process's, still running, naming its member.
fn watchable(term: &Announcement) -> bool {
    !term.resigned
        && !term.member_id.is_empty()
        && !term.instance.is_empty()
        && term.instance != this_process()
        && web_address(&term.web_url).is_some()
}

/// `host:port` of a web URL as announced (`http://host:port/`).
fn web_address(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("http://")?;
    let address = rest.split('/').next()?;
    address.contains(':').then_some(address)
}

enum Verdict {
    Dead(String),
    CannotTell(String),
}

/// What one look at the leader's web port found.
enum Sight {
    /// The leader's process answered: the connection stays open while it lives.
    Alive(TcpStream),
    Dead(String),
    /// Nothing can be concluded (no answer, a network error): look again later.
    Unclear(String),
    /// The connection closed before an answer: the process may be exiting; look again soon.
    Closed(String),
    /// The process does not serve `/alive` (a faust-rs without it): nothing to watch.
    NotServed(String),
}

/// Watches the term's process until it is found dead, or cannot be watched.
///
/// Death is concluded only at an address where the leader's own process was seen answering:
/// a refusal from an address never seen alive proves nothing about the leader (a `--web-host`
/// other workers cannot reach, a loopback-only `--web-bind`, a firewall that rejects, the
/// same `--web-host localhost` on every machine).
async fn follow(term: &Announcement) -> Verdict {
    let address = web_address(&term.web_url).expect("watchable terms have one");
    let mut seen_alive = false;
    let mut closed_in_a_row = 0;
    loop {
        let sight = look(address, &term.instance).await;
        closed_in_a_row = match sight {
            Sight::Closed(_) => closed_in_a_row + 1,
            _ => 0,
        };
        match sight {
            Sight::Alive(stream) => {
                seen_alive = true;
                let opened = Instant::now();
                closed(stream).await;
                // Look again at once: that is when a death shows. A server that closes at
                // once (not ours) must not make this spin.
                if opened.elapsed() < LOOK_AGAIN {
                    tokio::time::sleep(LOOK_AGAIN).await;
                }
            }
            Sight::Dead(why) if seen_alive => return Verdict::Dead(why),
            Sight::Dead(why) => {
                return Verdict::CannotTell(format!(
                    "{why}, where the leader's process was never seen"
                ));
            }
            Sight::NotServed(why) => return Verdict::CannotTell(why),
            Sight::Unclear(why) => {
                tracing::debug!("leader at {address}: {why}; looking again");
                tokio::time::sleep(LOOK_AGAIN).await;
            }
            // A few quick looks, then slower ones (something that is not a dying faust-rs).
            Sight::Closed(why) => {
                tracing::debug!("leader at {address}: {why}; looking again");
                let pause = if closed_in_a_row <= 5 {
                    LOOK_SOON
                } else {
                    LOOK_AGAIN
                };
                tokio::time::sleep(pause).await;
            }
        }
    }
}

async fn look(address: &str, instance: &str) -> Sight {
    let mut stream = match tokio::time::timeout(CONNECT, TcpStream::connect(address)).await {
        Err(_) => return Sight::Unclear(format!("{address} does not answer")),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Sight::Dead(format!("{address} refuses connections"));
        }
        Ok(Err(e)) => return Sight::Unclear(format!("{address}: {e}")),
        Ok(Ok(stream)) => stream,
    };
    let request = format!("GET {ALIVE_PATH} HTTP/1.1\r\nHost: {address}\r\n\r\n");
    if let Err(e) = stream.write_all(request.as_bytes()).await {
        return Sight::Closed(format!("{address} closed the connection: {e}"));
    }
    // No deadline: a paused process answers when it resumes, or its socket closes if it dies.
    let head = match read_head(&mut stream).await {
        Ok(head) => head,
        Err(e) => return Sight::Closed(format!("{address} closed the connection: {e}")),
    };
    match answered_instance(&head) {
        Ok(answered) if answered == instance => Sight::Alive(stream),
        Ok(answered) => Sight::Dead(format!("another process ({answered}) serves {address} now")),
        Err(why) => Sight::NotServed(format!("{address}{ALIVE_PATH}: {why}")),
    }
}

/// Reads a response head (up to the blank line).
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD || stream.read(&mut byte).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// The instance a `GET /alive` response head names.
fn answered_instance(head: &str) -> Result<&str, String> {
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("answered {status:?}"));
    }
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case(INSTANCE_HEADER))
        .map(|(_, value)| value.trim())
        .ok_or_else(|| format!("no {INSTANCE_HEADER} header"))
}

/// Waits until the connection closes (the body never sends anything before the server stops).
async fn closed(mut stream: TcpStream) {
    let mut buffer = [0u8; 512];
    while matches!(stream.read(&mut buffer).await, Ok(n) if n > 0) {}
}

/// Removes the dead leader's member from the group, unless a newer term began meanwhile.
async fn evict(election: &Election, remover: &Arc<MemberRemover>, term: &Announcement, why: &str) {
    let name = &election.name;
    let current = election
        .latest()
        .is_some_and(|l| l.epoch == term.epoch && !l.resigned);
    if !current {
        return;
    }
    tracing::warn!(
        "election {name}: the leader {} (epoch {}) is gone: {why}; removing it from the group",
        term.worker,
        term.epoch
    );
    let started = Instant::now();
    let reason = format!("faust-rs: the leader's process is gone ({why})");
    // After a session timeout the coordinator has removed it anyway.
    let removed = remover
        .remove(term.member_id.clone(), reason, election.session_timeout)
        .await;
    let took = started.elapsed().as_millis();
    match removed {
        Ok(Removal::Removed) => {
            tracing::info!("election {name}: removed the dead leader's member in {took} ms")
        }
        Ok(Removal::AlreadyGone) => {
            tracing::debug!("election {name}: the dead leader's member had already left")
        }
        Err(e) => tracing::warn!(
            "election {name}: cannot remove the dead leader's member: {e}; the group notices after the session timeout"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_is_read_from_an_ok_head_only() {
        let head =
            "HTTP/1.1 200 OK\r\nX-Faust-Rs-Instance: abc\r\ncontent-type: text/plain\r\n\r\n";
        assert_eq!(answered_instance(head), Ok("abc"));
        let missing = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n";
        assert!(
            answered_instance(missing)
                .unwrap_err()
                .contains(INSTANCE_HEADER)
        );
        let not_found = "HTTP/1.1 404 Not Found\r\nx-faust-rs-instance: abc\r\n\r\n";
        assert!(answered_instance(not_found).unwrap_err().contains("404"));
    }

    #[test]
    fn only_running_terms_of_other_processes_with_a_member_are_watched() {
        let term = Announcement {
            election: "leader".into(),
            worker: "h:1".into(),
            host: "h".into(),
            pid: 1,
            web_url: "http://h:6066/".into(),
            instance: "other".into(),
            member_id: "m".into(),
            since_ms: 0,
            resigned: false,
            epoch: 3,
        };
        assert!(watchable(&term));
        assert!(!watchable(&Announcement {
            resigned: true,
            ..term.clone()
        }));
        assert!(!watchable(&Announcement {
            member_id: String::new(),
            ..term.clone()
        }));
        assert!(!watchable(&Announcement {
            instance: this_process().into(),
            ..term.clone()
        }));
        assert!(!watchable(&Announcement {
            web_url: "junk".into(),
            ..term
        }));
        assert_eq!(web_address("http://[::1]:6066/"), Some("[::1]:6066"));
    }
}
