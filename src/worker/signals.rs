//! Process signals, as Faust's workers guide defines them: TERM and INT start a warm shutdown
//! (a second one makes it cold), QUIT is a cold shutdown, USR1 dumps the worker's state to the
//! log, USR2 makes a leader stand down. They are turned into requests the worker's main loop
//! selects on.
//!
//! A plain thread waits for the signals (signal-hook), not a task on the async runtime: agent
//! bodies are synchronous, and while long ones keep every runtime thread busy a task could be
//! polled late, which would make QUIT anything but immediate.

use signal_hook::consts::{SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::Signals;
use std::time::Duration;

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

fn request_for(signal: i32) -> Option<Request> {
    match signal {
        SIGTERM => Some(Request::WarmShutdown("TERM")),
        SIGINT => Some(Request::WarmShutdown("INT")),
        SIGQUIT => Some(Request::ColdShutdown("QUIT")),
        SIGUSR1 => Some(Request::Dump),
        SIGUSR2 => Some(Request::StandDown("USR2")),
        _ => None,
    }
}

/// Installs the handlers and returns the stream of requests. Installing replaces the default
/// actions at once, so a signal that arrives during start-up is not lost.
///
/// The first TERM or INT also starts the warm shutdown's deadline: after `shutdown_timeout` a
/// cold shutdown is requested, however busy the runtime's threads are (a body still running
/// can't hold the worker past its deadline).
pub fn listen(shutdown_timeout: Duration) -> std::io::Result<mpsc::UnboundedReceiver<Request>> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2])?;
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("faust-rs-signals".into())
        .spawn(move || {
            let mut deadline_armed = false;
            for signal in signals.forever() {
                let Some(request) = request_for(signal) else {
                    continue;
                };
                if matches!(request, Request::WarmShutdown(_)) && !deadline_armed {
                    deadline_armed = true;
                    let tx = tx.clone();
                    std::thread::spawn(move || {
                        std::thread::sleep(shutdown_timeout);
                        let _ = tx.send(Request::ColdShutdown("the shutdown deadline"));
                    });
                }
                if tx.send(request).is_err() {
                    return;
                }
            }
        })?;
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_signal_means_what_the_workers_guide_says() {
        assert_eq!(request_for(SIGTERM), Some(Request::WarmShutdown("TERM")));
        assert_eq!(request_for(SIGINT), Some(Request::WarmShutdown("INT")));
        assert_eq!(request_for(SIGQUIT), Some(Request::ColdShutdown("QUIT")));
        assert_eq!(request_for(SIGUSR1), Some(Request::Dump));
        assert_eq!(request_for(SIGUSR2), Some(Request::StandDown("USR2")));
        assert_eq!(request_for(signal_hook::consts::SIGHUP), None);
    }
}
