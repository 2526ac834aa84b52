//! The state of the one evaluation running on this thread: its outbox, its host, its name and
//! its deadline.
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
//! clone costs one atomic increment per evaluation.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use super::event::OutgoingRecord;
use super::{Host, ScriptLimits};

/// Per-evaluation state that registered functions reach through [`with_frame`].
pub(super) struct Frame {
    pub outbox: Vec<OutgoingRecord>,
    /// The engine's limits: `max_sends`, and the sizes of what is sent.
    pub limits: ScriptLimits,
    /// The script's name, for log lines.
    pub script: Arc<str>,
    /// When `max_duration` runs out (`None` when that instant is past what the clock can
    /// represent: no bound then).
    deadline: Option<Instant>,
    /// The worker's host; a shared handle, so the frame owns what it points to.
    host: Arc<dyn Host>,
}

thread_local! {
    static CURRENT: RefCell<Option<Frame>> = const { RefCell::new(None) };
}

/// Restores the previous frame when dropped, and hands back the outbox.
pub(super) struct FrameGuard {
    previous: Option<Frame>,
}

impl Frame {
    /// Installs a frame for the evaluation about to run on this thread.
    pub fn enter(host: &Arc<dyn Host>, script: Arc<str>, limits: &ScriptLimits) -> FrameGuard {
        let frame = Frame {
            outbox: Vec::new(),
            limits: limits.clone(),
            script,
            deadline: Instant::now().checked_add(limits.max_duration),
            host: Arc::clone(host),
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

/// Whether the evaluation running on this thread is past its `max_duration` (reads the clock).
pub(super) fn past_deadline() -> bool {
    with_frame(|frame| frame.deadline)
        .flatten()
        .is_some_and(|deadline| Instant::now() >= deadline)
}
