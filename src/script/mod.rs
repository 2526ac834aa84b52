//! Rhai scripts: the sandboxed engine, its limits, the functions scripts may call, and the
//! conversion between payloads and Rhai values. Scripts never see Kafka types: an evaluation
//! takes an event and returns what the script asked to send; the worker does the I/O.

use serde::Deserialize;

/// Per-app bounds on what one evaluation may do (`[app.limits]` in the app file).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ScriptLimits {
    /// Operations one evaluation may run before it is stopped (an endless loop ends here).
    pub max_operations: u64,
    /// Nesting depth of function calls.
    pub max_call_depth: usize,
    /// Length of any string, in bytes.
    pub max_string_size: usize,
    /// Elements of any array.
    pub max_array_size: usize,
    /// Entries of any object map.
    pub max_map_size: usize,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        ScriptLimits {
            max_operations: 1_000_000,
            max_call_depth: 64,
            max_string_size: 1 << 20,
            max_array_size: 100_000,
            max_map_size: 100_000,
        }
    }
}

/// A script that failed to compile, with the position inside the script (1-based; 0 when the
/// engine gave none).
#[derive(Debug, Clone, PartialEq)]
pub struct CompileError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Names a script may refer to besides its built-ins: the app's agents (`say.send(v)`).
#[derive(Debug, Clone, Default)]
pub struct ScriptNames {
    pub agents: Vec<String>,
}

/// The sandboxed engine, shared by every script of an app.
pub struct ScriptEngine {
    engine: rhai::Engine,
    names: ScriptNames,
}

/// A compiled body, evaluated many times without re-parsing.
pub struct Script {
    #[allow(dead_code)]
    ast: rhai::AST,
}

impl ScriptEngine {
    pub fn new(limits: &ScriptLimits, names: ScriptNames) -> Self {
        let mut engine = rhai::Engine::new();
        engine.set_max_operations(limits.max_operations);
        engine.set_max_call_levels(limits.max_call_depth);
        engine.set_max_string_size(limits.max_string_size);
        engine.set_max_array_size(limits.max_array_size);
        engine.set_max_map_size(limits.max_map_size);
        ScriptEngine { engine, names }
    }

    /// Compiles one body; errors carry the position inside `source`.
    pub fn compile(&self, source: &str) -> Result<Script, CompileError> {
        let _ = &self.names;
        self.engine
            .compile(source)
            .map(|ast| Script { ast })
            .map_err(|e| {
                let position = e.position();
                CompileError {
                    line: position.line().unwrap_or(0),
                    column: position.position().unwrap_or(0),
                    message: e.err_type().to_string(),
                }
            })
    }
}
