//! One shutdown mechanism for every task of a worker: two cancellation signals and one task
//! tracker (tokio-util's `CancellationToken` and `TaskTracker`).
//!
//! - `warm` (TERM, INT, a fatal failure): stop taking new work, finish what is in flight,
//!   commit, leave. Timers stop ticking, the agents stop fetching.
//! - `cold` (QUIT, a second TERM/INT, the shutdown deadline): abandon everything on purpose;
//!   the process exits and the groups reassign after the session timeout. Cancelling `cold`
//!   cancels `warm` too, so a task that only waits for `warm` also stops.
//!
//! Every task the worker spawns is spawned on [`Shutdown::tasks`], so a warm shutdown waits
//! for exactly the tasks it started — no more, no fewer.

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone)]
pub struct Shutdown {
    pub warm: CancellationToken,
    pub cold: CancellationToken,
    pub tasks: TaskTracker,
    failure: Arc<Mutex<Option<String>>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        let cold = CancellationToken::new();
        Shutdown {
            warm: cold.child_token(),
            cold,
            tasks: TaskTracker::new(),
            failure: Arc::default(),
        }
    }
}

impl Shutdown {
    /// Records why the worker must stop (the first reason wins, and is logged) and starts a
    /// warm shutdown.
    pub fn fail(&self, reason: String) {
        let mut failure = self.failure.lock().unwrap();
        if failure.is_none() {
            tracing::error!("{reason}");
            *failure = Some(reason);
        }
        drop(failure);
        self.warm.cancel();
    }

    /// Why the worker stopped on its own, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().unwrap().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cold_implies_warm_and_the_first_failure_is_kept() {
        let shutdown = Shutdown::default();
        shutdown.warm.cancel();
        assert!(!shutdown.cold.is_cancelled(), "warm does not imply cold");
        let shutdown = Shutdown::default();
        shutdown.cold.cancel();
        assert!(shutdown.warm.is_cancelled());
        let shutdown = Shutdown::default();
        shutdown.fail("first".into());
        shutdown.fail("second".into());
        assert_eq!(shutdown.failure().as_deref(), Some("first"));
        assert!(shutdown.warm.is_cancelled());
    }
}
