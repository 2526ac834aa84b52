//! The sandboxed engine, body kinds, compiled scripts and their evaluation.

use std::io::Write;
use std::sync::Arc;

use rhai::{AST, Dynamic, ImmutableString, Map, OptimizationLevel, Scope};

use super::context::Frame;
use super::convert::{ConvertError, from_dynamic, to_dynamic};
use super::event::{Event, Outcome};
use super::{CompileError, Host, RunError, RunErrorKind, ScriptLimits, functions};

/// Names a script may refer to besides its built-ins: the app's agents (`say.send(v)`).
#[derive(Debug, Clone, Default)]
pub struct ScriptNames {
    pub agents: Vec<String>,
}

/// What a body is, which decides the variables it can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyKind {
    /// Runs once per incoming record, and sees the event variables ([`EVENT_VARIABLES`]).
    Agent,
    /// Runs on an interval or crontab; no event.
    Timer,
    /// Runs once at start-up; no event.
    Task,
    /// Runs on a lifecycle event (e.g. leadership gained); no event.
    Hook,
}

impl BodyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BodyKind::Agent => "agent",
            BodyKind::Timer => "timer",
            BodyKind::Task => "task",
            BodyKind::Hook => "hook",
        }
    }

    fn has_event(self) -> bool {
        self == BodyKind::Agent
    }
}

/// The variables an agent body sees, in the order they are pushed.
pub const EVENT_VARIABLES: [&str; 8] = [
    "value",
    "key",
    "topic",
    "partition",
    "offset",
    "timestamp",
    "headers",
    "epoch",
];

/// A handle on one of the app's agents, bound to a variable of the agent's name in every
/// body: `say.send(v)` / `say.send(k, v)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    name: ImmutableString,
}

impl Agent {
    pub fn new(name: &str) -> Self {
        Agent { name: name.into() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Where `print(..)` output goes.
#[derive(Clone, Default)]
pub enum PrintSink {
    /// Standard output, one whole line per `print` (the default; what the tutorial shows).
    #[default]
    Stdout,
    /// Nowhere (benchmarks, `check`).
    Discard,
    /// A function of the printed text (without the line end).
    Custom(Arc<dyn Fn(&str) + Send + Sync>),
}

impl std::fmt::Debug for PrintSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PrintSink::Stdout => "Stdout",
            PrintSink::Discard => "Discard",
            PrintSink::Custom(_) => "Custom",
        })
    }
}

/// Writes one printed line as a single write followed by a flush, so that a line from one
/// evaluation is never split by a line from another (the caller holds the lock on `out`).
pub fn write_print_line(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    let mut line = String::with_capacity(text.len() + 1);
    line.push_str(text);
    line.push('\n');
    out.write_all(line.as_bytes())?;
    out.flush()
}

/// The sandboxed engine, shared by every script of an app (it is `Send + Sync`).
///
/// The sandbox: rhai's standard library minus `eval`, `import`/`export` (no module resolver,
/// so no file access), and `sleep` (it would block a worker thread); strict variables (a
/// misspelt variable is a compile error); the bounds of [`ScriptLimits`]. Rhai has no file,
/// process or network functions, and we register none.
pub struct ScriptEngine {
    engine: rhai::Engine,
    limits: ScriptLimits,
    names: ScriptNames,
    /// The agent handles, as constants: the start of every evaluation's scope.
    handles: Scope<'static>,
}

/// A compiled body, evaluated many times without re-parsing. Cloning is cheap (the syntax
/// tree is shared).
#[derive(Debug, Clone)]
pub struct Script {
    ast: Arc<AST>,
    kind: BodyKind,
    name: Arc<str>,
}

impl ScriptEngine {
    pub fn new(limits: &ScriptLimits, names: ScriptNames) -> Self {
        let mut engine = rhai::Engine::new();
        limits.apply(&mut engine);
        engine.set_strict_variables(true);
        // Simple: never evaluate functions at compile time (ours are volatile anyway).
        engine.set_optimization_level(OptimizationLevel::Simple);
        engine.disable_symbol("eval");
        engine.disable_symbol("import");
        engine.disable_symbol("export");
        engine.set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
        engine.set_max_modules(0);
        engine.register_type_with_name::<Agent>("Agent");
        functions::register(&mut engine);
        engine.on_debug(|text, _source, position| {
            tracing::debug!(line = position.line().unwrap_or(0), "{text}");
        });

        let mut handles = Scope::new();
        for name in &names.agents {
            handles.push_constant(name.as_str(), Agent::new(name));
        }
        let mut script_engine = ScriptEngine {
            engine,
            limits: limits.clone(),
            names,
            handles,
        };
        script_engine.set_print_sink(PrintSink::Stdout);
        script_engine
    }

    /// Sends `print(..)` output to `sink` from now on.
    pub fn set_print_sink(&mut self, sink: PrintSink) {
        match sink {
            PrintSink::Stdout => self.engine.on_print(|text| {
                // Nowhere to report a closed stdout from here; the worker goes on.
                let _ = write_print_line(&mut std::io::stdout().lock(), text);
            }),
            PrintSink::Discard => self.engine.on_print(|_| {}),
            PrintSink::Custom(f) => self.engine.on_print(move |text| f(text)),
        };
    }

    pub fn limits(&self) -> &ScriptLimits {
        &self.limits
    }

    pub fn names(&self) -> &ScriptNames {
        &self.names
    }

    /// Compiles an agent body; errors carry the position inside `source`.
    pub fn compile(&self, source: &str) -> Result<Script, CompileError> {
        self.compile_for(BodyKind::Agent, source)
    }

    /// Compiles a body of `kind`: only the variables that kind sees may be used (a timer that
    /// reads `value` does not compile). The script is named after its kind until
    /// [`Script::with_name`] names it.
    pub fn compile_for(&self, kind: BodyKind, source: &str) -> Result<Script, CompileError> {
        let mut scope = self.handles.clone();
        if kind.has_event() {
            for name in EVENT_VARIABLES {
                scope.push_dynamic(name, Dynamic::UNIT);
            }
        }
        let ast = self.engine.compile_with_scope(&scope, source)?;
        Ok(Script {
            ast: Arc::new(ast),
            kind,
            name: kind.as_str().into(),
        })
    }
}

impl Script {
    pub fn kind(&self) -> BodyKind {
        self.kind
    }

    /// The name log lines give the script (`log_info(..)` has a `script` field).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The same script under another name (an agent's or timer's).
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// Runs the body once, with `engine` (the one that compiled it), and `event` for an agent
    /// body (`None` leaves the event variables `()`; timers, tasks and hooks ignore it).
    ///
    /// Nothing is sent during the evaluation: the records the body sent are in the
    /// [`Outcome`], in order, for the caller to produce. A failed evaluation sends nothing.
    pub fn run(
        &self,
        engine: &ScriptEngine,
        host: &dyn Host,
        event: Option<&Event>,
    ) -> Result<Outcome, RunError> {
        let mut scope = engine.handles.clone();
        if self.kind.has_event() {
            push_event(&mut scope, event, &engine.limits)?;
        }
        let frame = Frame::enter(host, self.name.clone(), &engine.limits);
        let evaluated = engine
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut scope, &self.ast);
        let sends = frame.take_outbox();
        drop(frame);
        let value = evaluated.map_err(|e| RunError::from_eval(e, &engine.limits))?;
        let result = if value.is_unit() {
            None
        } else {
            let datum = from_dynamic(&value, Some(&engine.limits)).map_err(|e| {
                let kind = match e {
                    ConvertError::TooLarge { .. } => RunErrorKind::SizeLimit,
                    ConvertError::NoJsonForm(_) => RunErrorKind::Script,
                };
                let message = e.message(&engine.limits);
                RunError::unplaced(kind, format!("the body's final value: {message}"))
            })?;
            Some(datum)
        };
        Ok(Outcome { result, sends })
    }
}

fn push_event(
    scope: &mut Scope<'static>,
    event: Option<&Event>,
    limits: &ScriptLimits,
) -> Result<(), RunError> {
    let Some(event) = event else {
        for name in EVENT_VARIABLES {
            scope.push_dynamic(name, Dynamic::UNIT);
        }
        return Ok(());
    };
    let too_large = |what: &'static str| {
        move |e: ConvertError| {
            let message = e.message(limits);
            RunError::unplaced(
                RunErrorKind::SizeLimit,
                format!("the event's {what}: {message}"),
            )
        }
    };
    let value = to_dynamic(&event.value, limits).map_err(too_large("value"))?;
    let key = to_dynamic(&event.key, limits).map_err(too_large("key"))?;
    let mut headers = Map::new();
    for (name, bytes) in &event.headers {
        headers.insert(
            name.as_str().into(),
            Dynamic::from(String::from_utf8_lossy(bytes).into_owned()),
        );
    }
    let optional = |n: Option<i64>| n.map_or(Dynamic::UNIT, Dynamic::from_int);
    // Same order as EVENT_VARIABLES.
    scope.push_dynamic("value", value);
    scope.push_dynamic("key", key);
    scope.push_dynamic("topic", Dynamic::from(event.topic.clone()));
    scope.push_dynamic("partition", Dynamic::from_int(event.partition.into()));
    scope.push_dynamic("offset", Dynamic::from_int(event.offset));
    scope.push_dynamic("timestamp", optional(event.timestamp));
    scope.push_dynamic("headers", Dynamic::from_map(headers));
    scope.push_dynamic("epoch", optional(event.epoch()));
    Ok(())
}
