//! The state of the one evaluation running on this thread: its outbox, its table changes, its
//! host and table access, its name and its deadline.
//!
//! Why a thread-local and not rhai's per-call tag: the tag can only be set per call through
//! `Engine::call_fn_with_options`, which calls a *named function* — whose body cannot see the
//! scope's event variables, and whose surrounding top-level result is discarded — while
//! `eval_ast_with_scope` always starts from the engine's `default_tag`, which we cannot change
//! because one engine is shared by all tasks. An evaluation is synchronous (no `.await` inside
//! it), so it starts and ends on one thread and nothing else can run on that thread meanwhile:
//! a thread-local frame installed for exactly that span is per-evaluation state with no
//! sharing, no locks and no globals that concurrent evaluations could see. [`Frame::enter`]
//! returns a guard that restores the previous frame on drop, so it is panic-safe and nests.
//!
//! The frame owns a clone of the caller's `Arc<dyn Host>` rather than a borrowed `&dyn Host`:
//! a thread-local is `'static` and cannot hold a borrow without erasing its lifetime, while a
//! clone costs one atomic increment per evaluation. The same goes for the table access.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use super::event::OutgoingRecord;
use super::tables::{PendingChanges, TableAccess, TableChange};
use super::{Host, ScriptLimits};

/// Per-evaluation state that registered functions reach through [`with_frame`].
pub(super) struct Frame {
    pub outbox: Vec<OutgoingRecord>,
    /// What the evaluation changed in tables, which its reads see first.
    pub changes: PendingChanges,
    /// The engine's limits: `max_sends`, `max_table_changes`, and the sizes of what is sent
    /// and stored.
    pub limits: ScriptLimits,
    /// The script's name, for log lines.
    pub script: Arc<str>,
    /// When `max_duration` runs out (`None` when that instant is past what the clock can
    /// represent: no bound then).
    deadline: Option<Instant>,
    /// The worker's host; a shared handle, so the frame owns what it points to.
    host: Arc<dyn Host>,
    /// What the evaluation may read of the tables; shared like the host.
    tables: Arc<dyn TableAccess>,
}

thread_local! {
    static CURRENT: RefCell<Option<Frame>> = const { RefCell::new(None) };
}

/// Restores the previous frame when dropped, and hands back the outbox and table changes.
pub(super) struct FrameGuard {
    previous: Option<Frame>,
}

impl Frame {
    /// Installs a frame for the evaluation about to run on this thread.
    pub fn enter(
        host: &Arc<dyn Host>,
        tables: Arc<dyn TableAccess>,
        script: Arc<str>,
        limits: &ScriptLimits,
    ) -> FrameGuard {
        let frame = Frame {
            outbox: Vec::new(),
            changes: PendingChanges::default(),
            limits: limits.clone(),
            script,
            deadline: Instant::now().checked_add(limits.max_duration),
            host: Arc::clone(host),
            tables,
        };
        let previous = CURRENT.with(|current| current.replace(Some(frame)));
        FrameGuard { previous }
    }
}

impl FrameGuard {
    /// The records sent so far by this evaluation (leaves the outbox empty).
    pub fn take_outbox(&self) -> Vec<OutgoingRecord> {
        with_frame(|frame| std::mem::take(&mut frame.outbox)).unwrap_or_default()
    }

    /// The table changes made so far by this evaluation, in order (leaves none).
    pub fn take_changes(&self) -> Vec<TableChange> {
        with_frame(|frame| std::mem::take(&mut frame.changes).into_changes()).unwrap_or_default()
    }
}

impl Drop for FrameGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|current| *current.borrow_mut() = previous);
    }
}

/// Runs `f` on the current frame; `None` outside an evaluation (e.g. a function called by the
/// optimizer at compile time).
pub(super) fn with_frame<R>(f: impl FnOnce(&mut Frame) -> R) -> Option<R> {
    CURRENT.with(|current| current.borrow_mut().as_mut().map(f))
}

/// Runs `f` with the current evaluation's host. The frame is not borrowed while `f` runs (it
/// runs on a clone of the handle), so a host may do anything, even start another evaluation on
/// this thread.
pub(super) fn with_host<R>(f: impl FnOnce(&dyn Host) -> R) -> Option<R> {
    let host = with_frame(|frame| Arc::clone(&frame.host))?;
    Some(f(host.as_ref()))
}

/// The current evaluation's table access, as a clone of the handle: the frame is not borrowed
/// while the access answers, as for [`with_host`].
pub(super) fn table_access() -> Option<Arc<dyn TableAccess>> {
    with_frame(|frame| Arc::clone(&frame.tables))
}

/// Whether the evaluation running on this thread is past its `max_duration` (reads the clock).
pub(super) fn past_deadline() -> bool {
    with_frame(|frame| frame.deadline)
        .flatten()
        .is_some_and(|deadline| Instant::now() >= deadline)
}
