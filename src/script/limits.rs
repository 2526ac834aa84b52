//! Bounds on what one evaluation may do, and how they are applied to the engine.

use serde::Deserialize;

/// Per-app bounds on what one evaluation may do (`[app.limits]` in the app file).
///
/// Every bound is checked by the engine while a body runs; a body that crosses one stops with
/// an error naming the bound (see [`super::RunErrorKind`]). `0` means "no bound" for
/// `max_operations` only; for the other fields it is a real (tiny) bound.
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
    }
}
