//! Serializers between Kafka payloads (bytes) and the values scripts work with. Faust's names
//! and defaults: `raw` (bytes, as text when they are UTF-8) and `json`; keys default to `raw`,
//! values to `json`.

use serde::Deserialize;
use serde_json::Value;

/// How a topic's keys or values are encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Serializer {
    /// Bytes as they are. Decoded to a string when they are valid UTF-8, else to bytes.
    #[default]
    Raw,
    /// A JSON document.
    Json,
}

impl Serializer {
    pub fn name(self) -> &'static str {
        match self {
            Serializer::Raw => "raw",
            Serializer::Json => "json",
        }
    }
}

/// A decoded key or value: a JSON-shaped value, or bytes that are not text.
#[derive(Debug, Clone, PartialEq)]
pub enum Datum {
    Value(Value),
    Bytes(Vec<u8>),
}

impl Datum {
    pub const NULL: Datum = Datum::Value(Value::Null);
}

/// Why a payload could not be decoded or a value encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct CodecError(pub String);

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Decodes a payload; a missing payload (Kafka null) is `null` whatever the serializer.
pub fn decode(serializer: Serializer, payload: Option<&[u8]>) -> Result<Datum, CodecError> {
    let Some(bytes) = payload else {
        return Ok(Datum::NULL);
    };
    match serializer {
        Serializer::Raw => Ok(match std::str::from_utf8(bytes) {
            Ok(text) => Datum::Value(Value::String(text.to_owned())),
            Err(_) => Datum::Bytes(bytes.to_vec()),
        }),
        Serializer::Json => serde_json::from_slice(bytes)
            .map(Datum::Value)
            .map_err(|e| CodecError(format!("invalid JSON: {e}"))),
    }
}

/// Encodes a value; `null` becomes a Kafka null payload whatever the serializer. With `raw`,
/// strings are written as their UTF-8 bytes and other values as their JSON text.
pub fn encode(serializer: Serializer, datum: &Datum) -> Result<Option<Vec<u8>>, CodecError> {
    match (serializer, datum) {
        (_, Datum::Value(Value::Null)) => Ok(None),
        (Serializer::Raw, Datum::Value(Value::String(text))) => Ok(Some(text.as_bytes().to_vec())),
        (_, Datum::Value(value)) => Ok(Some(
            serde_json::to_vec(value).expect("a Value always serializes"),
        )),
        (Serializer::Raw, Datum::Bytes(bytes)) => Ok(Some(bytes.clone())),
        (Serializer::Json, Datum::Bytes(_)) => Err(CodecError(
            "bytes cannot be encoded as JSON: use the raw serializer".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn raw_decodes_text_as_string_and_other_bytes_as_bytes() {
        assert_eq!(
            decode(Serializer::Raw, Some(b"hi")).unwrap(),
            Datum::Value(json!("hi"))
        );
        assert_eq!(
            decode(Serializer::Raw, Some(&[0xff, 0])).unwrap(),
            Datum::Bytes(vec![0xff, 0])
        );
    }

    #[test]
    fn json_round_trips_and_rejects_garbage() {
        let datum = decode(Serializer::Json, Some(br#"{"a":[1,2.5,"x"]}"#)).unwrap();
        assert_eq!(datum, Datum::Value(json!({"a": [1, 2.5, "x"]})));
        let bytes = encode(Serializer::Json, &datum).unwrap().unwrap();
        assert_eq!(decode(Serializer::Json, Some(&bytes)).unwrap(), datum);
        assert!(
            decode(Serializer::Json, Some(b"{nope"))
                .unwrap_err()
                .0
                .contains("invalid JSON")
        );
    }

    #[test]
    fn null_is_a_kafka_null_both_ways() {
        assert_eq!(decode(Serializer::Json, None).unwrap(), Datum::NULL);
        assert_eq!(encode(Serializer::Raw, &Datum::NULL).unwrap(), None);
        assert_eq!(encode(Serializer::Json, &Datum::NULL).unwrap(), None);
    }

    #[test]
    fn raw_writes_strings_verbatim_and_other_values_as_json() {
        assert_eq!(
            encode(Serializer::Raw, &Datum::Value(json!("0.5")))
                .unwrap()
                .unwrap(),
            b"0.5"
        );
        assert_eq!(
            encode(Serializer::Raw, &Datum::Value(json!({"n": 1})))
                .unwrap()
                .unwrap(),
            br#"{"n":1}"#
        );
        assert!(encode(Serializer::Json, &Datum::Bytes(vec![1])).is_err());
    }
}
