//! Conversion between [`Datum`] (what the codec decodes from and encodes to Kafka payloads) and
//! Rhai's `Dynamic`:
//!
//! | JSON / Datum        | Rhai            |
//! |---------------------|-----------------|
//! | `null`              | `()`            |
//! | bool                | `bool`          |
//! | integer             | `INT` (`i64`); integers above `i64::MAX` become `FLOAT` |
//! | float               | `FLOAT` (`2.0` stays a float, both ways) |
//! | string              | string          |
//! | array               | array           |
//! | object              | object map      |
//! | `Datum::Bytes`      | BLOB            |
//!
//! Going back, a `char` becomes a one-character string. Values that have no JSON form (an
//! agent handle, a function pointer, a timestamp, a BLOB nested inside an array or map, a
//! non-finite float) are an error, never a panic.
//!
//! Sizes are checked both ways against [`ScriptLimits`] (each string, array, BLOB and map at
//! any depth): an event cannot smuggle in what a body could not build, and a body cannot send
//! what the engine does not catch by itself (rhai does not check a map that grows through
//! `m[new_key] = v`).

use rhai::{Array, Blob, Dynamic, FLOAT, INT, ImmutableString, Map};
use serde_json::{Map as JsonMap, Number, Value};

use super::ScriptLimits;
use super::engine::Agent;
use super::tables::Table;
use crate::codec::Datum;

/// Why a value could not be converted.
#[derive(Debug, Clone, PartialEq)]
pub enum ConvertError {
    /// Over a size limit; `what` is rhai's name for it ("Length of string", "Size of array",
    /// "Size of object map", "Size of BLOB"), see [`super::errors::size_message`].
    TooLarge { what: &'static str },
    /// The value has no JSON form; the message says which value.
    NoJsonForm(String),
}

impl ConvertError {
    /// A one-line description naming the limit, if any.
    pub fn message(&self, limits: &ScriptLimits) -> String {
        match self {
            ConvertError::TooLarge { what } => super::errors::size_message(what, limits),
            ConvertError::NoJsonForm(message) => message.clone(),
        }
    }
}

pub(super) const STRING: &str = "Length of string";
pub(super) const ARRAY: &str = "Size of array";
pub(super) const MAP: &str = "Size of object map";
pub(super) const BLOB: &str = "Size of BLOB";

/// Converts a datum to a Rhai value, refusing strings, arrays, BLOBs and maps (at any depth)
/// that are over `limits`.
pub fn to_dynamic(datum: &Datum, limits: &ScriptLimits) -> Result<Dynamic, ConvertError> {
    match datum {
        Datum::Bytes(bytes) => {
            check(bytes.len(), limits.max_array_size, BLOB)?;
            Ok(Dynamic::from_blob(bytes.clone()))
        }
        Datum::Value(value) => json_to_dynamic(value, Some(limits)),
    }
}

/// Converts a JSON value to a Rhai value; with `limits`, sizes are checked as in [`to_dynamic`].
pub fn json_to_dynamic(
    value: &Value,
    limits: Option<&ScriptLimits>,
) -> Result<Dynamic, ConvertError> {
    Ok(match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => number_to_dynamic(n),
        Value::String(s) => {
            if let Some(limits) = limits {
                check(s.len(), limits.max_string_size, STRING)?;
            }
            Dynamic::from(ImmutableString::from(s.as_str()))
        }
        Value::Array(items) => {
            if let Some(limits) = limits {
                check(items.len(), limits.max_array_size, ARRAY)?;
            }
            let array = items
                .iter()
                .map(|item| json_to_dynamic(item, limits))
                .collect::<Result<Array, _>>()?;
            Dynamic::from_array(array)
        }
        Value::Object(entries) => {
            if let Some(limits) = limits {
                check(entries.len(), limits.max_map_size, MAP)?;
            }
            let mut map = Map::new();
            for (name, item) in entries {
                map.insert(name.as_str().into(), json_to_dynamic(item, limits)?);
            }
            Dynamic::from_map(map)
        }
    })
}

fn number_to_dynamic(n: &Number) -> Dynamic {
    match n.as_i64() {
        Some(i) => Dynamic::from_int(i as INT),
        // Above i64::MAX (u64) or a float: the nearest float.
        None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN) as FLOAT),
    }
}

fn check(len: usize, max: usize, what: &'static str) -> Result<(), ConvertError> {
    if len > max {
        Err(ConvertError::TooLarge { what })
    } else {
        Ok(())
    }
}

/// Converts a Rhai value to a datum: a BLOB becomes bytes, anything else must have a JSON
/// form. With `limits`, sizes are checked as in [`to_dynamic`].
pub fn from_dynamic(value: &Dynamic, limits: Option<&ScriptLimits>) -> Result<Datum, ConvertError> {
    if value.is_blob() {
        let blob = value.read_lock::<Blob>().expect("checked to be a BLOB");
        if let Some(limits) = limits {
            check(blob.len(), limits.max_array_size, BLOB)?;
        }
        return Ok(Datum::Bytes(blob.clone()));
    }
    dynamic_to_json(value, limits).map(Datum::Value)
}

/// Converts a Rhai value to JSON; with `limits`, sizes are checked as in [`to_dynamic`].
pub fn dynamic_to_json(
    value: &Dynamic,
    limits: Option<&ScriptLimits>,
) -> Result<Value, ConvertError> {
    if value.is_unit() {
        Ok(Value::Null)
    } else if let Ok(b) = value.as_bool() {
        Ok(Value::Bool(b))
    } else if let Ok(i) = value.as_int() {
        Ok(Value::Number(i.into()))
    } else if let Ok(f) = value.as_float() {
        Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| ConvertError::NoJsonForm(format!("the float {f} has no JSON form")))
    } else if let Ok(c) = value.as_char() {
        Ok(Value::String(c.to_string()))
    } else if let Some(s) = value.read_lock::<ImmutableString>() {
        if let Some(limits) = limits {
            check(s.len(), limits.max_string_size, STRING)?;
        }
        Ok(Value::String(s.as_str().to_owned()))
    } else if let Some(items) = value.read_lock::<Array>() {
        if let Some(limits) = limits {
            check(items.len(), limits.max_array_size, ARRAY)?;
        }
        items
            .iter()
            .map(|item| dynamic_to_json(item, limits))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array)
    } else if let Some(map) = value.read_lock::<Map>() {
        if let Some(limits) = limits {
            check(map.len(), limits.max_map_size, MAP)?;
        }
        let mut object = JsonMap::new();
        for (name, item) in map.iter() {
            object.insert(name.to_string(), dynamic_to_json(item, limits)?);
        }
        Ok(Value::Object(object))
    } else {
        Err(ConvertError::NoJsonForm(format!(
            "{} has no JSON form",
            describe(value)
        )))
    }
}

/// A reader's name for a value's type, for error messages.
pub fn describe(value: &Dynamic) -> String {
    if value.is::<Agent>() {
        let agent = value.read_lock::<Agent>().expect("checked to be an agent");
        format!("the agent handle '{}'", agent.name())
    } else if value.is::<Table>() {
        let table = value.read_lock::<Table>().expect("checked to be a table");
        format!("the table handle '{}'", table.name())
    } else if value.is_fnptr() {
        "a function pointer".to_owned()
    } else if value.is_blob() {
        "a BLOB inside an array or map (bytes are only sendable as a whole value)".to_owned()
    } else if value.is_timestamp() {
        "a timestamp (use now() or now_ms() for wall-clock time)".to_owned()
    } else {
        format!("a value of type {}", value.type_name())
    }
}

/// How `print`, `str` and string interpolation show a value: strings as they are, arrays and
/// maps as compact JSON when they have a JSON form, anything else as Rhai shows it.
pub fn display(value: &Dynamic) -> String {
    if let Some(items) = value.read_lock::<Array>() {
        display_array(&items)
    } else if let Some(map) = value.read_lock::<Map>() {
        display_map(&map)
    } else {
        value.to_string()
    }
}

/// [`display`] for an array.
pub fn display_array(items: &Array) -> String {
    match items
        .iter()
        .map(|item| dynamic_to_json(item, None))
        .collect()
    {
        Ok(json) => Value::Array(json).to_string(),
        Err(_) => format!("{items:?}"),
    }
}

/// [`display`] for a map.
pub fn display_map(map: &Map) -> String {
    let entries: Result<JsonMap<_, _>, _> = map
        .iter()
        .map(|(name, item)| Ok((name.to_string(), dynamic_to_json(item, None)?)))
        .collect();
    match entries {
        Ok(json) => Value::Object(json).to_string(),
        Err(ConvertError::NoJsonForm(_) | ConvertError::TooLarge { .. }) => format!("{map:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(value: Value) -> Value {
        let limits = ScriptLimits::default();
        let dynamic = to_dynamic(&Datum::Value(value), &limits).unwrap();
        match from_dynamic(&dynamic, Some(&limits)).unwrap() {
            Datum::Value(v) => v,
            Datum::Bytes(_) => panic!("a JSON value came back as bytes"),
        }
    }

    #[test]
    fn json_scalars_map_to_rhai_types() {
        let limits = ScriptLimits::default();
        let d = |v: Value| to_dynamic(&Datum::Value(v), &limits).unwrap();
        assert!(d(json!(null)).is_unit());
        assert!(d(json!(true)).as_bool().unwrap());
        assert_eq!(d(json!(42)).as_int().unwrap(), 42);
        assert!(d(json!(42)).is_int());
        assert!(d(json!(2.0)).is_float());
        assert_eq!(d(json!(2.5)).as_float().unwrap(), 2.5);
        assert_eq!(d(json!("hé")).into_string().unwrap(), "hé");
        assert_eq!(d(json!(u64::MAX)).as_float().unwrap(), u64::MAX as f64);
    }

    #[test]
    fn json_round_trips_keep_integers_and_whole_floats_apart() {
        let value = json!({
            "int": 3, "neg": -7, "whole": 2.0, "frac": 0.25, "s": "x", "b": false,
            "nil": null, "list": [1, 2.0, "three", [], {}], "nested": {"a": {"b": [null]}}
        });
        let back = round_trip(value.clone());
        assert_eq!(back, value);
        assert!(back["int"].is_i64());
        assert!(back["whole"].is_f64());
        assert_eq!(back["whole"].to_string(), "2.0");
    }

    #[test]
    fn bytes_round_trip_as_a_blob() {
        let limits = ScriptLimits::default();
        let dynamic = to_dynamic(&Datum::Bytes(vec![0, 255, 7]), &limits).unwrap();
        assert!(dynamic.is_blob());
        assert_eq!(
            from_dynamic(&dynamic, None).unwrap(),
            Datum::Bytes(vec![0, 255, 7])
        );
    }

    #[test]
    fn chars_become_strings() {
        assert_eq!(
            dynamic_to_json(&Dynamic::from_char('z'), None).unwrap(),
            json!("z")
        );
    }

    #[test]
    fn values_without_a_json_form_are_errors() {
        let from_dynamic = |d: &Dynamic| match super::from_dynamic(d, None) {
            Err(ConvertError::NoJsonForm(message)) => message,
            other => panic!("unexpected {other:?}"),
        };
        let agent = Dynamic::from(Agent::new("say"));
        assert!(from_dynamic(&agent).contains("agent handle 'say'"));
        let nested = Dynamic::from_array(vec![Dynamic::from_blob(vec![1])]);
        assert!(from_dynamic(&nested).contains("BLOB"));
        let nan = Dynamic::from_float(f64::NAN);
        assert!(from_dynamic(&nan).contains("no JSON form"));
        let fn_ptr = Dynamic::from(rhai::FnPtr::new("f").unwrap());
        assert!(from_dynamic(&fn_ptr).contains("function pointer"));
    }

    #[test]
    fn data_over_the_limits_is_refused_both_ways() {
        let limits = ScriptLimits {
            max_string_size: 4,
            max_array_size: 2,
            max_map_size: 1,
            ..ScriptLimits::default()
        };
        let over = |v: Value| {
            let incoming = to_dynamic(&Datum::Value(v.clone()), &limits)
                .unwrap_err()
                .message(&limits);
            let dynamic = json_to_dynamic(&v, None).unwrap();
            let outgoing = from_dynamic(&dynamic, Some(&limits)).unwrap_err();
            assert_eq!(outgoing.message(&limits), incoming);
            incoming
        };
        assert!(to_dynamic(&Datum::Value(json!({"a": ["four", 1]})), &limits).is_ok());
        assert!(over(json!("fives")).contains("max_string_size = 4"));
        assert!(over(json!([[1, 2, 3]])).contains("max_array_size = 2"));
        assert!(over(json!({"a": 1, "b": 2})).contains("max_map_size = 1"));
        assert!(over(json!({"a": "toolong"})).contains("max_string_size"));
        let bytes = to_dynamic(&Datum::Bytes(vec![0; 3]), &limits).unwrap_err();
        assert_eq!(bytes, ConvertError::TooLarge { what: BLOB });
        let blob = Dynamic::from_blob(vec![0; 3]);
        assert!(from_dynamic(&blob, Some(&limits)).is_err());
        assert!(from_dynamic(&blob, None).is_ok());
    }

    #[test]
    fn display_shows_strings_raw_and_containers_as_json() {
        assert_eq!(display(&Dynamic::from("hi")), "hi");
        assert_eq!(display(&Dynamic::from_float(0.5)), "0.5");
        let map = json_to_dynamic(&json!({"a": [1, "x"]}), None).unwrap();
        assert_eq!(display(&map), r#"{"a":[1,"x"]}"#);
        let odd = Dynamic::from_array(vec![Dynamic::from(Agent::new("say"))]);
        assert!(display(&odd).starts_with('['));
    }
}
