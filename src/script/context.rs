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

use std::cell::RefCell;
use std::time::Instant;

use super::event::OutgoingRecord;
use super::{Host, ScriptLimits};

/// Per-evaluation state that registered functions reach through [`with_frame`].
pub(super) struct Frame {
    pub outbox: Vec<OutgoingRecord>,
    /// The engine's limits: `max_sends`, and the sizes of what is sent.
    pub limits: ScriptLimits,
    /// The script's name, for log lines.
    pub script: std::sync::Arc<str>,
    /// When `max_duration` runs out (`None` when that instant is past what the clock can
    /// represent: no bound then).
    deadline: Option<Instant>,
    /// Lifetime-erased `&dyn Host`; valid while the guard that installed it lives.
    host: *const (dyn Host + 'static),
}

thread_local! {
    static CURRENT: RefCell<Option<Frame>> = const { RefCell::new(None) };
}

/// Restores the previous frame when dropped, and hands back the outbox.
pub(super) struct FrameGuard<'h> {
    previous: Option<Frame>,
    _host: std::marker::PhantomData<&'h dyn Host>,
}

impl Frame {
    /// Installs a frame for the evaluation about to run on this thread.
    pub fn enter<'h>(
        host: &'h dyn Host,
        script: std::sync::Arc<str>,
        limits: &ScriptLimits,
    ) -> FrameGuard<'h> {
        // SAFETY: only the lifetime is erased. The pointer is stored in the frame, which the
        // guard (bound to 'h) removes from the thread-local on drop, and it is only
        // dereferenced by `with_host` while that frame is installed: so never after 'h ends.
        let host: &'static dyn Host = unsafe { std::mem::transmute::<&'h dyn Host, _>(host) };
        let deadline = Instant::now().checked_add(limits.max_duration);
        let frame = Frame {
            outbox: Vec::new(),
            deadline,
            limits: limits.clone(),
            script,
            host,
        };
        let previous = CURRENT.with(|current| current.replace(Some(frame)));
        FrameGuard {
            previous,
            _host: std::marker::PhantomData,
        }
    }
}

impl FrameGuard<'_> {
    /// The records sent so far by this evaluation (leaves the outbox empty).
    pub fn take_outbox(&self) -> Vec<OutgoingRecord> {
        with_frame(|frame| std::mem::take(&mut frame.outbox)).unwrap_or_default()
    }
}

impl Drop for FrameGuard<'_> {
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

/// Runs `f` with the current evaluation's host. The frame is not borrowed while `f` runs, so
/// a host may do anything but start another evaluation on this thread mid-call.
pub(super) fn with_host<R>(f: impl FnOnce(&dyn Host) -> R) -> Option<R> {
    let host = with_frame(|frame| frame.host)?;
    // SAFETY: a frame is installed, so the guard that installed it and the `&dyn Host` it was
    // made from are alive (see `Frame::enter`).
    Some(f(unsafe { &*host }))
}

/// Whether the evaluation running on this thread is past its `max_duration` (reads the clock).
pub(super) fn past_deadline() -> bool {
    with_frame(|frame| frame.deadline)
        .flatten()
        .is_some_and(|deadline| Instant::now() >= deadline)
}
