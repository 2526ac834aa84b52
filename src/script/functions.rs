//! The functions scripts may call, named as a Faust (Python) user expects.
//!
//! | Function | What it does |
//! |---|---|
//! | `agent.send(v)`, `agent.send(k, v)` | queue a record for an agent of the app |
//! | `send("topic", v)`, `send("topic", k, v)` | queue a record for a topic |
//! | `print(x)`, `print(a, b, ..)` | one line on standard output, values joined by a space, arrays and maps as JSON (see [`super::PrintSink`]) |
//! | `log_debug/log_info/log_warn/log_error(msg)` | a `tracing` event with a `script` field |
//! | `str(x)` | `x` as text (like Python's `str`; also `to_string`) |
//! | `random()` | a float in `[0, 1)` |
//! | `random_int(lo, hi)` | an integer in `[lo, hi]`, both ends included (Python's `randint`) |
//! | `random_choice(array)` | one element of a non-empty array |
//! | `uuid()` | a random (version 4) UUID string |
//! | `now()`, `now_ms()`, `now_iso()` | wall-clock time: Unix seconds (float), Unix milliseconds (int), RFC 3339 UTC |
//! | `worker_id()`, `app_id()`, `is_leader()`, `leader_epoch()` | from the worker's [`super::Host`] |
//! | `parse_json(s)`, `to_json(v)` | JSON text to a value and back |
//!
//! What scripts may do with tables is registered by `table_functions.rs`.
//!
//! Sends queue records in the evaluation's outbox (see `context.rs`); nothing here does I/O
//! except `print` and logging. Every function whose answer can change (time, randomness, the
//! host, sends) is registered as *volatile*, so an optimizer never evaluates it at compile time
//! (the engine uses `OptimizationLevel::Simple`, which evaluates no function anyway).

use rand::Rng;
use rhai::{Array, Dynamic, Engine, EvalAltResult, FLOAT, FuncRegistration, INT, Map, Position};

use super::context::{with_frame, with_host};
use super::convert::{
    ConvertError, display, display_array, display_map, dynamic_to_json, from_dynamic,
    json_to_dynamic,
};
use super::engine::Agent;
use super::errors::TOO_MANY_SENDS;
use super::event::{OutgoingRecord, SendTarget};

pub(super) type Result<T> = std::result::Result<T, Box<EvalAltResult>>;

pub(super) fn runtime(message: impl Into<String>) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(message.into().into(), Position::NONE).into()
}

pub(super) fn fail<T>(message: impl Into<String>) -> Result<T> {
    Err(runtime(message))
}

/// Reported by the engine (and [`super::RunError`]) as over the limit `what` names.
pub(super) fn too_large(what: &str) -> Box<EvalAltResult> {
    EvalAltResult::ErrorDataTooLarge(what.into(), Position::NONE).into()
}

pub(super) fn outside() -> Box<EvalAltResult> {
    runtime("this function is only available while a body runs")
}

/// The error of a value that could not be converted: a size error naming the limit, or a
/// script error saying what the value was for (`context`, e.g. "send: the key cannot be
/// sent") and why.
pub(super) fn convert_failure(
    error: ConvertError,
    context: impl FnOnce() -> String,
) -> Box<EvalAltResult> {
    match error {
        ConvertError::TooLarge { what } => too_large(what),
        ConvertError::NoJsonForm(m) => runtime(format!("{}: {m}", context())),
    }
}

pub(super) fn func(name: &str) -> FuncRegistration {
    FuncRegistration::new(name).with_volatility(true)
}

pub(super) fn register(engine: &mut Engine) {
    register_sends(engine);
    register_text(engine);
    register_logging(engine);
    register_random(engine);
    register_time(engine);
    register_host(engine);
    register_json(engine);
    super::table_functions::register(engine);
    // `sleep` would block a worker thread and is not counted as operations: a timer is the
    // way to wait. Registered functions shadow the standard library's.
    func("sleep").register_into_engine(engine, |_: INT| -> Result<()> { fail(NO_SLEEP) });
    func("sleep").register_into_engine(engine, |_: FLOAT| -> Result<()> { fail(NO_SLEEP) });
}

const NO_SLEEP: &str =
    "sleep() is not available in scripts (it would stall the worker): use a timer";

// ---- sending ----------------------------------------------------------------------------

fn queue(target: SendTarget, key: Option<Dynamic>, value: Dynamic) -> Result<()> {
    with_frame(|frame| {
        let convert = |datum: &Dynamic, what: &str| {
            from_dynamic(datum, Some(&frame.limits))
                .map_err(|e| convert_failure(e, || format!("send: the {what} cannot be sent")))
        };
        let value = convert(&value, "value")?;
        let key = match key {
            Some(key) if !key.is_unit() => Some(convert(&key, "key")?),
            _ => None,
        };
        if frame.outbox.len() >= frame.limits.max_sends {
            return Err(too_large(TOO_MANY_SENDS));
        }
        frame.outbox.push(OutgoingRecord { target, key, value });
        Ok(())
    })
    .ok_or_else(outside)?
}

fn topic_target(topic: &str) -> Result<SendTarget> {
    if topic.is_empty() {
        return fail("send: the topic name is empty");
    }
    Ok(SendTarget::Topic(topic.to_owned()))
}

fn register_sends(engine: &mut Engine) {
    // Handles are constants, so the methods take them by value (a clone of a shared string).
    func("send").register_into_engine(engine, |agent: Agent, value: Dynamic| {
        queue(SendTarget::Agent(agent.name().to_owned()), None, value)
    });
    func("send").register_into_engine(engine, |agent: Agent, key: Dynamic, value: Dynamic| {
        queue(SendTarget::Agent(agent.name().to_owned()), Some(key), value)
    });
    func("send").register_into_engine(engine, |topic: &str, value: Dynamic| {
        queue(topic_target(topic)?, None, value)
    });
    func("send").register_into_engine(engine, |topic: &str, key: Dynamic, value: Dynamic| {
        queue(topic_target(topic)?, Some(key), value)
    });
    engine.register_get("name", |agent: &mut Agent| agent.name().to_owned());
    engine.register_fn("to_string", |agent: &mut Agent| {
        format!("Agent({})", agent.name())
    });
}

// ---- text -------------------------------------------------------------------------------

fn register_text(engine: &mut Engine) {
    func("str").register_into_engine(engine, |value: Dynamic| display(&value));
    // `print`, `to_string` and "${interpolation}" show arrays and maps as JSON.
    // `print` has its own overloads for arrays and maps in the standard library.
    for name in ["to_string", "print"] {
        engine.register_fn(name, |array: &mut Array| display_array(array));
        engine.register_fn(name, |map: &mut Map| display_map(map));
    }
    // Python's `print(a, b, ...)`: the values joined by a space, on one line.
    engine.register_fn("print", |a: Dynamic, b: Dynamic| join(&[a, b]));
    engine.register_fn("print", |a: Dynamic, b: Dynamic, c: Dynamic| {
        join(&[a, b, c])
    });
    engine.register_fn("print", |a: Dynamic, b: Dynamic, c: Dynamic, d: Dynamic| {
        join(&[a, b, c, d])
    });
}

fn join(values: &[Dynamic]) -> String {
    values.iter().map(display).collect::<Vec<_>>().join(" ")
}

// ---- logging ----------------------------------------------------------------------------

fn register_logging(engine: &mut Engine) {
    // The text is made outside the macros: inside them `display` would be tracing's own.
    fn script() -> std::sync::Arc<str> {
        with_frame(|frame| frame.script.clone()).unwrap_or_else(|| "".into())
    }
    func("log_debug").register_into_engine(engine, |msg: Dynamic| {
        let text = display(&msg);
        tracing::debug!(script = &*script(), "{text}");
    });
    func("log_info").register_into_engine(engine, |msg: Dynamic| {
        let text = display(&msg);
        tracing::info!(script = &*script(), "{text}");
    });
    func("log_warn").register_into_engine(engine, |msg: Dynamic| {
        let text = display(&msg);
        tracing::warn!(script = &*script(), "{text}");
    });
    func("log_error").register_into_engine(engine, |msg: Dynamic| {
        let text = display(&msg);
        tracing::error!(script = &*script(), "{text}");
    });
}

// ---- randomness -------------------------------------------------------------------------

/// A random version 4 UUID, e.g. `"0f8fad5b-d9cb-469f-a165-70867728950e"` (lowercase,
/// hyphenated).
pub fn uuid_v4() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn register_random(engine: &mut Engine) {
    func("random").register_into_engine(engine, || rand::random::<f64>() as FLOAT);
    func("random_int").register_into_engine(engine, |lo: INT, hi: INT| -> Result<INT> {
        if lo > hi {
            return fail(format!("random_int: lo ({lo}) is greater than hi ({hi})"));
        }
        Ok(rand::rng().random_range(lo..=hi))
    });
    func("random_choice").register_into_engine(engine, |items: &mut Array| -> Result<Dynamic> {
        if items.is_empty() {
            return fail("random_choice: the array is empty");
        }
        let index = rand::rng().random_range(0..items.len());
        Ok(items[index].clone())
    });
    func("uuid").register_into_engine(engine, uuid_v4);
}

// ---- time -------------------------------------------------------------------------------

fn register_time(engine: &mut Engine) {
    use crate::clock;
    func("now").register_into_engine(engine, || clock::now_secs() as FLOAT);
    func("now_ms").register_into_engine(engine, || clock::now_ms() as INT);
    func("now_iso").register_into_engine(engine, || clock::rfc3339_ms(clock::now_ms()));
}

// ---- identity and election --------------------------------------------------------------

fn register_host(engine: &mut Engine) {
    func("worker_id").register_into_engine(engine, || -> Result<String> {
        with_host(|host| host.worker_id()).ok_or_else(outside)
    });
    func("app_id").register_into_engine(engine, || -> Result<String> {
        with_host(|host| host.app_id()).ok_or_else(outside)
    });
    func("is_leader").register_into_engine(engine, || -> Result<bool> {
        with_host(|host| host.is_leader()).ok_or_else(outside)
    });
    func("leader_epoch").register_into_engine(engine, || -> Result<Dynamic> {
        with_host(|host| host.leader_epoch().map_or(Dynamic::UNIT, Dynamic::from_int))
            .ok_or_else(outside)
    });
}

// ---- JSON -------------------------------------------------------------------------------

fn register_json(engine: &mut Engine) {
    // Sizes of the parsed value are checked by the engine like any function's return value.
    func("parse_json").register_into_engine(engine, |text: &str| -> Result<Dynamic> {
        match serde_json::from_str(text) {
            Ok(value) => Ok(json_to_dynamic(&value, None).expect("no limits, no error")),
            Err(e) => fail(format!("parse_json: invalid JSON: {e}")),
        }
    });
    func("to_json").register_into_engine(engine, |value: Dynamic| -> Result<String> {
        // The engine checks the size of the text it returns.
        match dynamic_to_json(&value, None) {
            Ok(json) => Ok(json.to_string()),
            Err(ConvertError::NoJsonForm(m)) => fail(format!("to_json: {m}")),
            Err(ConvertError::TooLarge { what }) => Err(too_large(what)),
        }
    });
}
