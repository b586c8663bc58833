//! A JSON tree (RFC 8259) borrowed from the input, for decoders that validate field by field.
//!
//! Unlike `serde_json::Value` it keeps object members in the order sent and keeps repeated names
//! (RFC 8259 §4: names SHOULD be unique, and what a receiver does with duplicates is
//! unpredictable), so a decoder can refuse a duplicate instead of silently keeping the last one.
//! Strings without escapes borrow from the input. Nesting depth is bounded by `serde_json`'s
//! recursion limit (128), so parsing, validating and dropping a tree never exhausts the stack.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// One JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json<'a> {
    Null,
    Bool(bool),
    /// An integer (no fraction, no exponent) that fits `u64`.
    PosInt(u64),
    /// A negative integer that fits `i64`.
    NegInt(i64),
    /// Any other number: written with a fraction or an exponent, or an integer beyond 64 bits.
    /// Always finite: `serde_json` refuses numbers that overflow `f64`.
    Float(f64),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    /// Members in the order sent, repeated names included.
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl<'a> Json<'a> {
    /// Parses one JSON text; anything but whitespace after the value is an error.
    pub(crate) fn parse(text: &'a str) -> Result<Json<'a>, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The value's JSON type, as an English noun phrase for error messages ("a string").
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::PosInt(_) | Json::NegInt(_) => "an integer",
            Json::Float(_) => "a number with a fraction or exponent",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// Any JSON number as `f64` (integers beyond 2^53 are rounded).
    pub(crate) fn as_f64(&self) -> Option<f64> {
        match *self {
            Json::PosInt(n) => Some(n as f64),
            Json::NegInt(n) => Some(n as f64),
            Json::Float(x) => Some(x),
            _ => None,
        }
    }

    /// The first member called `name`, if this is an object.
    pub(crate) fn member(&self, name: &str) -> Option<&Json<'a>> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json<'de>, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json<'de>, E> {
        Ok(Json::PosInt(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json<'de>, E> {
        Ok(if v >= 0 {
            Json::PosInt(v as u64)
        } else {
            Json::NegInt(v)
        })
    }
    fn visit_f64<E>(self, v: f64) -> Result<Json<'de>, E> {
        Ok(Json::Float(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Json<'de>>()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut members = Vec::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let value = map.next_value::<Json<'de>>()?;
            members.push((key, value));
        }
        Ok(Json::Object(members))
    }
}

/// An object member name, borrowed when it has no escapes (serde's own `Cow<str>` always copies).
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_repeated_names() {
        let json = Json::parse(r#"{"b": 1, "a": [true, null], "b": "x"}"#).unwrap();
        let Json::Object(members) = &json else {
            panic!("{json:?}")
        };
        let names: Vec<&str> = members.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(names, ["b", "a", "b"]);
        assert_eq!(json.member("b"), Some(&Json::PosInt(1)));
        assert_eq!(
            json.member("a"),
            Some(&Json::Array(vec![Json::Bool(true), Json::Null]))
        );
    }

    #[test]
    fn strings_without_escapes_borrow() {
        let json = Json::parse(r#"{"plain": "abc", "escaped": "a\"c"}"#).unwrap();
        let Json::Object(members) = &json else {
            panic!()
        };
        assert!(matches!(&members[0].0, Cow::Borrowed("plain")));
        assert!(matches!(&members[0].1, Json::String(Cow::Borrowed("abc"))));
        assert!(matches!(&members[1].1, Json::String(Cow::Owned(s)) if s == "a\"c"));
    }

    #[test]
    fn numbers_keep_their_kind() {
        assert_eq!(Json::parse("72").unwrap(), Json::PosInt(72));
        assert_eq!(Json::parse("-3").unwrap(), Json::NegInt(-3));
        assert_eq!(Json::parse("72.0").unwrap(), Json::Float(72.0));
        assert_eq!(Json::parse("1e2").unwrap(), Json::Float(100.0));
        assert!(matches!(
            Json::parse("18446744073709551616").unwrap(),
            Json::Float(_)
        ));
        assert!(
            Json::parse("1e400").is_err(),
            "overflowing numbers are refused"
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        assert!(Json::parse(&deep).is_err());
        let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(Json::parse(&ok).is_ok());
    }
}
