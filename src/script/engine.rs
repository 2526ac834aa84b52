//! The sandboxed engine, body kinds, compiled scripts and their evaluation.

use std::io::Write;
use std::sync::{Arc, LazyLock};

use rhai::{AST, Dynamic, ImmutableString, Map, OptimizationLevel, Scope};

use super::context::Frame;
use super::convert::{ConvertError, from_dynamic, to_dynamic};
use super::event::{Event, Outcome};
use super::tables::{NoTables, Table, TableAccess};
use super::{CompileError, Host, RunError, RunErrorKind, ScriptLimits, functions};

/// Names a script may refer to besides its built-ins: the app's agents (`say.send(v)`) and
/// tables (`counts[k] += 1`). Each should pass [`check_agent_name`] or [`check_table_name`].
#[derive(Debug, Clone, Default)]
pub struct ScriptNames {
    pub agents: Vec<String>,
    /// The app's tables, in [`crate::app::App::tables`]' order.
    pub tables: Vec<super::tables::TableName>,
}

/// Whether `name` can be an agent's handle in scripts: see [`check_script_name`]. The error
/// is worded for the app loader to report at the agent's `name`.
pub fn check_agent_name(name: &str) -> Result<(), String> {
    check_script_name("agent", &format!("scripts call `{name}.send(v)`"), name)
}

/// Whether `name` can be a table's variable in scripts: see [`check_script_name`].
pub fn check_table_name(name: &str) -> Result<(), String> {
    check_script_name("table", &format!("scripts read it as `{name}[key]`"), name)
}

/// Whether `name` can be bound as a variable in every body: an identifier that is not a
/// keyword, nor one of the event variables (which would hide it in agent bodies: `epoch.send(v)`
/// would call `send` on the event's epoch), nor a name of [`NOT_SCRIPT_NAMES`]. This is the one
/// check of the names scripts see; `kind` ("agent", "table") and `usage` (why it must be an
/// identifier) word the error.
fn check_script_name(kind: &str, usage: &str, name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let identifier = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !identifier {
        return Err(format!(
            "{kind} name `{name}` must be an identifier (a letter or `_`, then letters, digits or \
             `_`): {usage}"
        ));
    }
    // Rhai's own parser knows its keywords and reserved words (`fn`, `print`, `goto`, ...):
    // asking it keeps this check right across Rhai versions.
    let keyword = rhai::Engine::new_raw()
        .compile(format!("let {name} = 1;"))
        .is_err();
    if keyword || EVENT_VARIABLES.contains(&name) || NOT_SCRIPT_NAMES.contains(&name) {
        return Err(format!(
            "{kind} name `{name}` is reserved by the script language"
        ));
    }
    Ok(())
}

/// Names Rhai accepts as variables that would still read wrongly as agents or tables: `global` is Rhai's
/// path to the script's own constants (`global::NAME`), and `send` is the function
/// `send(topic, v)`.
const NOT_SCRIPT_NAMES: &[&str] = &["global", "send"];

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
    /// One handle per agent, bound as a constant of the agent's name.
    handles: Vec<Agent>,
    /// One handle per table, bound as a variable of the table's name.
    tables: Vec<Table>,
}

/// A compiled body, evaluated many times without re-parsing. Cloning is cheap (the syntax
/// tree is shared).
#[derive(Debug, Clone)]
pub struct Script {
    ast: Arc<AST>,
    kind: BodyKind,
    name: Arc<str>,
    /// The variables the body may use, so that an evaluation binds only those.
    uses: Arc<Uses>,
}

/// Which of the variables a body could see it may actually use.
///
/// Strict variables guarantee that a body uses no variable outside its compile scope, and a
/// body cannot use a variable whose name it does not contain: so a variable whose name is not
/// a word of the source need not be bound (nor its value converted) when the body runs. A
/// name that only appears in a string or a comment is bound for nothing, which is harmless.
#[derive(Debug, Default)]
struct Uses {
    /// Parallel to [`EVENT_VARIABLES`].
    event: [bool; EVENT_VARIABLES.len()],
    /// Indices into the engine's handles.
    handles: Vec<usize>,
    /// Indices into the engine's tables.
    tables: Vec<usize>,
}

impl Uses {
    fn of(source: &str, kind: BodyKind, handles: &[Agent], tables: &[Table]) -> Self {
        let mut uses = Uses::default();
        if kind.has_event() {
            for (used, name) in uses.event.iter_mut().zip(EVENT_VARIABLES) {
                *used = mentions(source, name);
            }
        }
        uses.handles = (0..handles.len())
            .filter(|&i| mentions(source, handles[i].name()))
            .collect();
        uses.tables = (0..tables.len())
            .filter(|&i| mentions(source, tables[i].name()))
            .collect();
        uses
    }

    fn count(&self) -> usize {
        self.event.iter().filter(|&&used| used).count() + self.handles.len() + self.tables.len()
    }
}

/// Whether `word` occurs in `source` as a whole identifier (also what tells the app loader
/// which tables an agent's body uses).
pub(crate) fn mentions(source: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    source.match_indices(word).any(|(at, _)| {
        let before = source[..at].chars().next_back();
        let after = source[at + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
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
            let script = super::context::with_frame(|frame| frame.script.clone());
            tracing::debug!(
                script = script.as_deref().unwrap_or(""),
                line = position.line().unwrap_or(0),
                "{text}"
            );
        });

        let handles = names.agents.iter().map(|name| Agent::new(name)).collect();
        let tables = names
            .tables
            .iter()
            .enumerate()
            .map(|(index, table)| Table::new(index, table))
            .collect();
        let mut script_engine = ScriptEngine {
            engine,
            limits: limits.clone(),
            names,
            handles,
            tables,
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
    ///
    /// One gap of rhai's strict mode: inside a `fn` defined in an agent body, a use of an event
    /// variable compiles (the name is in the compile scope) but fails when run, since rhai
    /// functions do not see the caller's variables; pass them as arguments.
    pub fn compile_for(&self, kind: BodyKind, source: &str) -> Result<Script, CompileError> {
        let mut scope = Scope::new();
        for agent in &self.handles {
            scope.push_constant(agent.name(), agent.clone());
        }
        for table in &self.tables {
            scope.push(table.name(), table.clone());
        }
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
            uses: Arc::new(Uses::of(source, kind, &self.handles, &self.tables)),
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

    /// Runs the body once, with `engine` (the one that compiled it), `host` answering the
    /// identity and election functions, and `event` for an agent body (`None` leaves the event
    /// variables `()`; timers, tasks and hooks ignore it).
    ///
    /// Nothing is sent during the evaluation: the records the body sent are in the
    /// [`Outcome`], in order, for the caller to produce. A failed evaluation sends nothing.
    /// The body sees no table contents and may write none ([`NoTables`]).
    pub fn run(
        &self,
        engine: &ScriptEngine,
        host: &Arc<dyn Host>,
        event: Option<&Event>,
    ) -> Result<Outcome, RunError> {
        static NO_TABLES: LazyLock<Arc<dyn TableAccess>> = LazyLock::new(|| Arc::new(NoTables));
        self.run_with_tables(engine, host, event, Arc::clone(&NO_TABLES))
    }

    /// [`Script::run`], with the body's table handles reading through `tables`. What the body
    /// changed is in the [`Outcome`]'s `changes`, for the caller to apply: nothing is written
    /// during the evaluation, and a failed evaluation changes nothing.
    pub fn run_with_tables(
        &self,
        engine: &ScriptEngine,
        host: &Arc<dyn Host>,
        event: Option<&Event>,
        tables: Arc<dyn TableAccess>,
    ) -> Result<Outcome, RunError> {
        let mut scope = Scope::with_capacity(self.uses.count());
        // (An engine other than the one that compiled the script may lack a handle: then the
        // body fails on a missing variable rather than this panicking.)
        for agent in self
            .uses
            .handles
            .iter()
            .filter_map(|&i| engine.handles.get(i))
        {
            scope.push_constant(agent.name(), agent.clone());
        }
        for table in self
            .uses
            .tables
            .iter()
            .filter_map(|&i| engine.tables.get(i))
        {
            scope.push(table.name(), table.clone());
        }
        if self.kind.has_event() {
            push_event(&mut scope, &self.uses.event, event, &engine.limits)?;
        }
        let frame = Frame::enter(host, tables, self.name.clone(), &engine.limits);
        let evaluated = engine
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut scope, &self.ast);
        let sends = frame.take_outbox();
        let changes = frame.take_changes();
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
        Ok(Outcome {
            result,
            sends,
            changes,
        })
    }
}

/// Binds the event variables the body uses (`used` is parallel to [`EVENT_VARIABLES`]).
fn push_event(
    scope: &mut Scope<'static>,
    used: &[bool; EVENT_VARIABLES.len()],
    event: Option<&Event>,
    limits: &ScriptLimits,
) -> Result<(), RunError> {
    let used_names = EVENT_VARIABLES
        .iter()
        .zip(used)
        .filter_map(|(&name, &used)| used.then_some(name));
    let Some(event) = event else {
        for name in used_names {
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
    let optional = |n: Option<i64>| n.map_or(Dynamic::UNIT, Dynamic::from_int);
    for name in used_names {
        let value = match name {
            "value" => to_dynamic(&event.value, limits).map_err(too_large("value"))?,
            "key" => to_dynamic(&event.key, limits).map_err(too_large("key"))?,
            "topic" => Dynamic::from(ImmutableString::from(event.topic.as_str())),
            "partition" => Dynamic::from_int(event.partition.into()),
            "offset" => Dynamic::from_int(event.offset),
            "timestamp" => optional(event.timestamp),
            "headers" => {
                let mut headers = Map::new();
                for (name, bytes) in &event.headers {
                    let text = String::from_utf8_lossy(bytes).into_owned();
                    headers.insert(name.as_str().into(), Dynamic::from(text));
                }
                Dynamic::from_map(headers)
            }
            "epoch" => optional(event.epoch()),
            other => unreachable!("{other} is not in EVENT_VARIABLES"),
        };
        scope.push_dynamic(name, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Datum;
    use crate::script::TableName;

    #[test]
    fn agent_names_must_be_usable_as_variables() {
        assert!(check_agent_name("say").is_ok());
        assert!(check_agent_name("_count_2").is_ok());
        assert!(
            check_agent_name("say-hello")
                .unwrap_err()
                .contains("must be an identifier")
        );
        assert!(check_agent_name("2x").is_err());
        assert!(check_agent_name("").is_err());
        let why = check_table_name("my-counts").unwrap_err();
        assert!(
            why.starts_with("table name `my-counts` must be an identifier"),
            "{why}"
        );
        assert!(
            check_table_name("send")
                .unwrap_err()
                .contains("is reserved")
        );
        // Keywords (Rhai's), event variables and the names of `NOT_SCRIPT_NAMES`.
        for name in [
            "fn", "import", "print", "true", "value", "epoch", "global", "send",
        ] {
            let why = check_agent_name(name).unwrap_err();
            assert!(why.contains("is reserved"), "{name}: {why}");
        }
    }

    #[test]
    fn mentions_finds_whole_identifiers_only() {
        assert!(mentions("print(value)", "value"));
        assert!(mentions("value", "value"));
        assert!(mentions("x+value.n", "value"));
        assert!(!mentions("print(values); my_value; value2", "value"));
        assert!(mentions("values + value", "value"));
        assert!(mentions("é value", "value"));
        assert!(!mentions("évalue", "value"));
    }

    #[test]
    fn only_the_variables_a_body_mentions_are_bound() {
        let agents = [Agent::new("say"), Agent::new("audit")];
        let tables = [TableName {
            name: "counts".into(),
            default: Datum::NULL,
        }]
        .iter()
        .enumerate()
        .map(|(index, table)| Table::new(index, table))
        .collect::<Vec<_>>();
        let uses = Uses::of("say.send(key); topic", BodyKind::Agent, &agents, &tables);
        let used: Vec<_> = EVENT_VARIABLES
            .iter()
            .zip(uses.event)
            .filter_map(|(name, used)| used.then_some(*name))
            .collect();
        assert_eq!(used, ["key", "topic"]);
        assert_eq!(uses.handles, [0]);
        assert!(uses.tables.is_empty());
        assert_eq!(uses.count(), 3);
        let timer = Uses::of("value; counts[1] = 2", BodyKind::Timer, &agents, &tables);
        assert_eq!((timer.tables.as_slice(), timer.count()), (&[0][..], 1));
    }
}
