//! Process signals, as Faust's workers guide defines them: TERM and INT start a warm shutdown
//! (a second one makes it cold), QUIT is a cold shutdown, USR1 dumps the worker's state to the
//! log, USR2 makes a leader stand down. They are turned into events the worker's main loop selects on.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

/// What an operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// TERM or INT: finish in-flight work, commit, leave, exit 0.
    WarmShutdown(&'static str),
    /// QUIT: leave as soon as possible.
    ColdShutdown(&'static str),
    /// USR1: log a dump of the worker's state, keep running.
    Dump,
    /// USR2: stand down from every election this worker leads (tooz
    /// `stand_down_group_leader`); it stays a candidate.
    StandDown(&'static str),
}

/// Installs the handlers and returns the stream of requests. Installing replaces the default
/// actions at once, so a signal that arrives during start-up is not lost.
pub fn listen() -> std::io::Result<mpsc::UnboundedReceiver<Request>> {
    let (tx, rx) = mpsc::unbounded_channel();
    let kinds = [
        (SignalKind::terminate(), Request::WarmShutdown("TERM")),
        (SignalKind::interrupt(), Request::WarmShutdown("INT")),
        (SignalKind::quit(), Request::ColdShutdown("QUIT")),
        (SignalKind::user_defined1(), Request::Dump),
        (SignalKind::user_defined2(), Request::StandDown("USR2")),
    ];
    for (kind, request) in kinds {
        let mut stream = signal(kind)?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if tx.send(request).is_err() {
                    return;
                }
            }
        });
    }
    Ok(rx)
}
