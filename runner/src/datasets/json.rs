//! JSON Lines (one object per line; blank lines skipped but counted, so line numbers match an editor's)
//! and JSON documents (an array of objects, or an object whose one array field holds them, as many
//! published datasets are shipped: `{"data": [...]}`).

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use super::{DecodeError, Decoded, utf8};
use crate::scenario::Value;

/// A JSON value whose objects keep their keys in the file's order (serde_json's own `Value` sorts them
/// unless a crate-wide feature is switched on).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn is_string(&self) -> bool {
        matches!(self, Json::String(_))
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        struct JsonVisitor;
        impl<'de> Visitor<'de> for JsonVisitor {
            type Value = Json;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_none<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
                Ok(Json::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
                Ok(Json::Number(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
                Ok(Json::Number(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
                Ok(serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number))
            }
            fn visit_str<E>(self, v: &str) -> Result<Json, E> {
                Ok(Json::String(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Json, E> {
                Ok(Json::String(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Json::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
                let mut fields: Vec<(String, Json)> = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Json>()? {
                    // A repeated key keeps its last value, in its first place (as JavaScript does).
                    match fields.iter_mut().find(|(k, _)| *k == key) {
                        Some(field) => field.1 = value,
                        None => fields.push((key, value)),
                    }
                }
                Ok(Json::Object(fields))
            }
        }
        deserializer.deserialize_any(JsonVisitor)
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => serializer.serialize_unit(),
            Json::Bool(b) => serializer.serialize_bool(*b),
            Json::Number(n) => n.serialize(serializer),
            Json::String(s) => serializer.serialize_str(s),
            Json::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Object(fields) => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                for (key, value) in fields {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&serde_json::to_string(self).map_err(|_| fmt::Error)?)
    }
}

pub(super) fn decode_lines(file: &str, bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let text = utf8(file, "line", bytes)?;
    let mut decoded = Decoded::default();
    for (index, line) in text.lines().enumerate() {
        let number = index as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let json: Json = serde_json::from_str(line)
            .map_err(|e| DecodeError::at(file, "line", number, format!("invalid JSON: {e}")))?;
        let Json::Object(object) = json else {
            return Err(DecodeError::at(
                file,
                "line",
                number,
                format!("expected a JSON object, found {}", kind(&json)),
            ));
        };
        decoded.push(number, columns(object));
    }
    Ok(decoded)
}

pub(super) fn decode_document(file: &str, bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let text = utf8(file, "line", bytes)?;
    let json: Json = serde_json::from_str(text).map_err(|e| {
        DecodeError::at(file, "line", e.line() as u64, format!("invalid JSON (column {}): {e}", e.column()))
    })?;
    let items = match json {
        Json::Array(items) => items,
        Json::Object(mut object) => {
            let arrays: Vec<String> =
                object.iter().filter(|(_, v)| matches!(v, Json::Array(_))).map(|(k, _)| k.clone()).collect();
            match arrays.as_slice() {
                [only] => match object.iter().position(|(k, _)| k == only).map(|i| object.swap_remove(i).1) {
                    Some(Json::Array(items)) => items,
                    _ => unreachable!("the field was just found to be an array"),
                },
                [] => {
                    return Err(DecodeError::new(
                        file,
                        "expected an array of records, or an object with one array field; the object has no array field",
                    ));
                }
                many => {
                    return Err(DecodeError::new(
                        file,
                        format!(
                            "the object has several array fields ({}); give a file whose top level is the array of records",
                            many.join(", ")
                        ),
                    ));
                }
            }
        }
        other => {
            return Err(DecodeError::new(file, format!("expected an array of records, found {}", kind(&other))));
        }
    };
    let mut decoded = Decoded::default();
    for (index, item) in items.into_iter().enumerate() {
        let number = index as u64 + 1;
        let Json::Object(object) = item else {
            return Err(DecodeError::at(
                file,
                "element",
                number,
                format!("expected a JSON object, found {}", kind(&item)),
            ));
        };
        decoded.push(number, columns(object));
    }
    Ok(decoded)
}

fn columns(object: Vec<(String, Json)>) -> Vec<(String, Value)> {
    object.into_iter().map(|(name, value)| (name, value_of(value))).collect()
}

/// A JSON value as a record value: scalars as themselves, lists of strings as text lists, anything
/// nested as JSON text.
pub(super) fn value_of(json: Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => match n.as_f64() {
                Some(f) if n.is_f64() => Value::Float(f),
                // Integers beyond i64 keep their digits.
                _ => Value::Json(n.to_string()),
            },
        },
        Json::String(s) => Value::Text(s),
        Json::Array(items) if items.iter().all(Json::is_string) => Value::TextList(
            items
                .into_iter()
                .map(|item| match item {
                    Json::String(s) => s,
                    _ => unreachable!("every item was just found to be a string"),
                })
                .collect(),
        ),
        other => Value::Json(other.to_string()),
    }
}

fn kind(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}
