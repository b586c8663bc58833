//! A vendor message parsed into a `serde_json::Value` (what the JSONPath engine queries), refusing
//! a member name repeated within one object: RFC 8259 §4 leaves what a receiver does with it
//! unpredictable, and `serde_json::Value` would silently keep the last one, so a path could read
//! a value other than the one a second parser would.

use std::fmt;

use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// The whole message; nesting depth is bounded by `serde_json`'s recursion limit (128).
pub(crate) fn parse(text: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str::<Strict>(text).map(|s| s.0)
}

/// The message of the one error this visitor raises itself (`serde_json` classifies it as
/// [`serde_json::error::Category::Data`]): the repeated name, cut to the echo limit.
pub(crate) struct Strict(pub(crate) Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // `serde_json` refuses numbers that overflow, so `v` is finite.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element::<Strict>()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            if members.contains_key(&name) {
                return Err(A::Error::custom(crate::device_json::echo(&name)));
            }
            let Strict(value) = map.next_value::<Strict>()?;
            members.insert(name, value);
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_names_are_a_data_error_naming_the_member() {
        let err = parse(r#"{"a": {"hr": 1, "hr": 2}}"#).unwrap_err();
        assert_eq!(err.classify(), serde_json::error::Category::Data);
        assert!(err.to_string().starts_with("hr at line 1"), "{err}");
        assert_eq!(
            parse(r#"{"a": [1, 2.5, null, true, "x"], "b": {}}"#).unwrap(),
            serde_json::json!({"a": [1, 2.5, null, true, "x"], "b": {}})
        );
        // The same name in sibling objects is no repetition.
        assert!(parse(r#"[{"a": 1}, {"a": 2}]"#).is_ok());
    }

    #[test]
    fn syntax_errors_and_deep_nesting_are_syntax_errors() {
        assert_eq!(
            parse("{").unwrap_err().classify(),
            serde_json::error::Category::Eof
        );
        assert_eq!(
            parse(&"[".repeat(10_000)).unwrap_err().classify(),
            serde_json::error::Category::Syntax
        );
    }
}
