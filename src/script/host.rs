//! What the runtime tells a script about itself: who this worker is and whether it leads.

/// The worker's identity and election state, asked for by `worker_id()`, `app_id()`,
/// `is_leader()` and `leader_epoch()` while a body runs. Implementations must be cheap: a body
/// may call them in a loop.
pub trait Host: Send + Sync {
    fn worker_id(&self) -> String;
    fn app_id(&self) -> String;
    fn is_leader(&self) -> bool;
    /// The current leader's epoch (the offset of its announcement), when one is known.
    fn leader_epoch(&self) -> Option<i64>;
}

/// A host with fixed answers, for tests and for `faust-rs check`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StaticHost {
    pub worker_id: String,
    pub app_id: String,
    pub is_leader: bool,
    pub leader_epoch: Option<i64>,
}

impl Host for StaticHost {
    fn worker_id(&self) -> String {
        self.worker_id.clone()
    }
    fn app_id(&self) -> String {
        self.app_id.clone()
    }
    fn is_leader(&self) -> bool {
        self.is_leader
    }
    fn leader_epoch(&self) -> Option<i64> {
        self.leader_epoch
    }
}
