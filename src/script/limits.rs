//! Bounds on what one evaluation may do, and how they are applied to the engine.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Per-app bounds on what one evaluation may do (`[app.limits]` in the app file).
///
/// Every bound is checked by the engine while a body runs; a body that crosses one stops with
/// an error naming the bound (see [`super::RunErrorKind`]). `0` means "no bound" for
/// `max_operations` only; for the other integer fields it is a real (tiny) bound, and
/// `max_duration` must be a positive number of seconds.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ScriptLimits {
    /// Operations one evaluation may run before it is stopped (an endless loop ends here).
    pub max_operations: u64,
    /// Nesting depth of function calls (deep recursion ends here).
    pub max_call_depth: usize,
    /// Length of any string, in bytes.
    pub max_string_size: usize,
    /// Elements of any array (and bytes of any blob).
    pub max_array_size: usize,
    /// Entries of any object map.
    pub max_map_size: usize,
    /// Nesting depth of expressions, checked when a body is compiled.
    pub max_expr_depth: usize,
    /// Records one evaluation may send (`say.send(..)` and `send(..)` together).
    pub max_sends: usize,
    /// Table keys one evaluation may change (set or remove), all tables together; a key
    /// changed again counts once. Bounds what an evaluation holds until it ends, and what the
    /// runtime then applies and logs to the changelog in one go.
    pub max_table_changes: usize,
    /// Wall-clock time one evaluation may run (`max_duration = 0.5` in the app file: seconds,
    /// a positive finite number). The default, 10 s, is far above any reasonable body, which
    /// runs in micro- to milliseconds: it is not a performance budget but a bound on how long
    /// one evaluation can hold a thread of the evaluation pool, whatever `max_operations` is
    /// (including `0`, unbounded) and however slow its operations are. Checked every
    /// [`CLOCK_EVERY`] operations, so a body may overrun it by that many operations.
    #[serde(deserialize_with = "positive_seconds")]
    pub max_duration: Duration,
}

/// How many operations an evaluation runs between two looks at the clock for `max_duration`.
/// A power of two, so the test is a mask; large enough that `Instant::now()` (tens of
/// nanoseconds) costs nothing next to that many operations, small enough that a body is
/// stopped within well under a millisecond of its deadline.
pub(super) const CLOCK_EVERY: u64 = 1 << 10;

/// Reads a number of seconds that must be positive and finite (`max_duration`). The error is
/// a serde error, which the app loader reports at the value's line and column.
fn positive_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let seconds = f64::deserialize(deserializer)?;
    if seconds > 0.0
        && let Ok(duration) = Duration::try_from_secs_f64(seconds)
        && !duration.is_zero()
    {
        return Ok(duration);
    }
    Err(serde::de::Error::custom(format!(
        "max_duration must be a positive, finite number of seconds (e.g. 0.5), not {seconds}"
    )))
}

impl Default for ScriptLimits {
    fn default() -> Self {
        ScriptLimits {
            max_operations: 1_000_000,
            max_call_depth: 64,
            max_string_size: 1 << 20,
            max_array_size: 100_000,
            max_map_size: 100_000,
            max_expr_depth: 64,
            max_sends: 10_000,
            max_table_changes: 10_000,
            max_duration: Duration::from_secs(10),
        }
    }
}

impl ScriptLimits {
    /// Sets the engine's own bounds from these limits.
    pub(super) fn apply(&self, engine: &mut rhai::Engine) {
        engine.set_max_operations(self.max_operations);
        engine.set_max_call_levels(self.max_call_depth);
        engine.set_max_string_size(self.max_string_size);
        engine.set_max_array_size(self.max_array_size);
        engine.set_max_map_size(self.max_map_size);
        // Functions bodies get the same bound as the top level: one knob is enough for users.
        engine.set_max_expr_depths(self.max_expr_depth, self.max_expr_depth);
        // `max_duration`: the deadline is the running evaluation's (set in its frame); the
        // clock is read only every CLOCK_EVERY operations. Rhai calls this on every operation,
        // whether or not `max_operations` bounds them.
        engine.on_progress(|operations| {
            if operations % CLOCK_EVERY == 0 && super::context::past_deadline() {
                Some(rhai::Dynamic::UNIT)
            } else {
                None
            }
        });
    }
}
