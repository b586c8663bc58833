//! The template as written (serde structures, unknown members refused) and its validation into
//! the compiled rules [`Template::apply`] runs.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use vigil_model::{DeviceId, Measurand, ValueKind, is_reserved_device_id, units};

use super::decimal::Decimal;
use super::path::Path;
use super::{
    MAX_DESCRIPTION_BYTES, MAX_ONE_OF, MAX_PREFIX_BYTES, Template, TemplateError, TemplateFormat,
    TemplateLimits, TemplateProblem, TimeFormat,
};
use crate::device_json::echo;

// ---------------------------------------------------------------------------------------------
// Compiled rules.

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MatchRule {
    pub path: Path,
    /// Scalars (string, number, boolean); the rule holds when the value found equals one.
    pub accepted: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DeviceRule {
    pub path: Path,
    pub prefix: String,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TimeRule {
    pub path: Path,
    pub format: TimeFormat,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum UnitRule {
    /// A coded value (`acvpu`).
    None,
    /// One UCUM unit for every value.
    Fixed(String),
    /// The unit is in the message; `map` (vendor string → UCUM) is empty when the strings are
    /// UCUM units already.
    FromPath {
        path: Path,
        map: Vec<(String, String)>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReadingRule {
    pub measurand: Measurand,
    pub each: Option<Path>,
    pub value: Path,
    pub unit: UnitRule,
    pub scale: Decimal,
    pub offset: Decimal,
    pub time: Option<TimeRule>,
    pub optional: bool,
}

// ---------------------------------------------------------------------------------------------
// The document as written.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    name: String,
    version: u32,
    description: Option<String>,
    #[serde(rename = "match")]
    matches: Option<OneOrMany<MatchDoc>>,
    device: Shorthand<DeviceDoc>,
    time: Option<TimeDoc>,
    readings: Vec<ReadingDoc>,
    battery: Option<Shorthand<BatteryDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchDoc {
    path: String,
    equals: Option<Value>,
    one_of: Option<Vec<Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceDoc {
    path: String,
    prefix: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatteryDoc {
    path: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeDoc {
    path: String,
    format: TimeFormat,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadingDoc {
    code: String,
    each: Option<String>,
    value: String,
    unit: Option<String>,
    unit_path: Option<String>,
    units: Option<UnitMap>,
    scale: Option<f64>,
    offset: Option<f64>,
    time: Option<TimeDoc>,
    #[serde(default)]
    optional: bool,
}

/// Members that may be written as just their path: `device: "$.serial"`.
trait FromPath {
    fn from_path(path: String) -> Self;
}

impl FromPath for DeviceDoc {
    fn from_path(path: String) -> Self {
        DeviceDoc { path, prefix: None }
    }
}

impl FromPath for BatteryDoc {
    fn from_path(path: String) -> Self {
        BatteryDoc { path }
    }
}

/// A path string, or the member's full map form.
struct Shorthand<T>(T);

impl<'de, T: Deserialize<'de> + FromPath> Deserialize<'de> for Shorthand<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + FromPath> Visitor<'de> for V<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSONPath string or a map with a path")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
                Ok(T::from_path(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        deserializer.deserialize_any(V(PhantomData)).map(Shorthand)
    }
}

/// One rule, or a list of them.
struct OneOrMany<T>(Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Vec<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a rule (a map) or a list of rules")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Vec<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(|one| vec![one])
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Vec<T>, A::Error> {
                Vec::<T>::deserialize(SeqAccessDeserializer::new(seq))
            }
        }
        deserializer.deserialize_any(V(PhantomData)).map(OneOrMany)
    }
}

/// Vendor unit strings to UCUM units, in the order written; a key given twice is refused (a
/// map that silently kept one of them would hide a mistake).
struct UnitMap(Vec<(String, String)>);

impl<'de> Deserialize<'de> for UnitMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = UnitMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map from the vendor's unit strings to UCUM units")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UnitMap, A::Error> {
                let mut entries: Vec<(String, String)> = Vec::new();
                while let Some((vendor, ucum)) = map.next_entry::<String, String>()? {
                    if entries.iter().any(|(k, _)| *k == vendor) {
                        return Err(A::Error::custom(format_args!(
                            "unit {:?} appears twice in units",
                            echo(&vendor)
                        )));
                    }
                    entries.push((vendor, ucum));
                }
                Ok(UnitMap(entries))
            }
        }
        deserializer.deserialize_map(V)
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing and validation.

pub(crate) fn parse(
    text: &str,
    format: TemplateFormat,
    limits: &TemplateLimits,
) -> Result<Template, TemplateError> {
    if text.len() > limits.max_bytes {
        return Err(TemplateError::TooLarge {
            size: text.len(),
            max: limits.max_bytes,
        });
    }
    let doc: Document = match format {
        TemplateFormat::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            let doc = serde_path_to_error::deserialize(&mut de).map_err(|e| {
                let path = field_path(e.path());
                json_error(path, e.into_inner())
            })?;
            de.end().map_err(|e| json_error(String::new(), e))?;
            doc
        }
        TemplateFormat::Yaml => {
            let de = yaml_serde::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let path = field_path(e.path());
                yaml_error(path, e.into_inner())
            })?
        }
    };
    compile(doc, limits)
}

fn field_path(path: &serde_path_to_error::Path) -> String {
    let text = path.to_string();
    if text == "." { String::new() } else { text }
}

fn json_error(path: String, error: serde_json::Error) -> TemplateError {
    let (line, column) = (error.line(), error.column());
    let full = error.to_string();
    let message = full
        .strip_suffix(&format!(" at line {line} column {column}"))
        .unwrap_or(&full)
        .to_owned();
    TemplateError::Document {
        path,
        message,
        line: (line > 0).then_some(line),
        column: (line > 0).then_some(column),
    }
}

fn yaml_error(path: String, error: yaml_serde::Error) -> TemplateError {
    let location = error.location();
    let full = error.to_string();
    let mut message = full.as_str();
    if let Some(at) = &location {
        let suffix = format!(" at line {} column {}", at.line(), at.column());
        message = message.strip_suffix(&suffix).unwrap_or(message);
    }
    // The YAML deserializer starts its message with the path of the map or list it was in (the
    // path or an ancestor of it); the path is kept apart.
    let mut prefix = path.as_str();
    while !prefix.is_empty() {
        if let Some(rest) = message
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix(": "))
        {
            message = rest;
            break;
        }
        prefix = prefix.rfind(['.', '[']).map_or("", |end| &prefix[..end]);
    }
    TemplateError::Document {
        path,
        message: message.to_owned(),
        line: location.as_ref().map(yaml_serde::Location::line),
        column: location.as_ref().map(yaml_serde::Location::column),
    }
}

fn invalid(field: impl Into<String>, problem: TemplateProblem) -> TemplateError {
    TemplateError::Invalid {
        field: field.into(),
        problem,
    }
}

fn path(
    field: impl Into<String>,
    text: &str,
    singular: bool,
    limits: &TemplateLimits,
) -> Result<Path, TemplateError> {
    Path::parse(text, singular, limits.max_path_len).map_err(|p| invalid(field, p))
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn compile(doc: Document, limits: &TemplateLimits) -> Result<Template, TemplateError> {
    if !valid_name(&doc.name) {
        return Err(invalid(
            "name",
            TemplateProblem::BadName {
                name: echo(&doc.name),
            },
        ));
    }
    if doc.version == 0 {
        return Err(invalid("version", TemplateProblem::BadVersion));
    }
    if let Some(description) = &doc.description
        && description.len() > MAX_DESCRIPTION_BYTES
    {
        return Err(invalid(
            "description",
            TemplateProblem::TooLong {
                len: description.len(),
                max: MAX_DESCRIPTION_BYTES,
            },
        ));
    }

    let match_docs = doc.matches.map(|m| m.0).unwrap_or_default();
    if match_docs.len() > limits.max_match_rules {
        return Err(invalid(
            "match",
            TemplateProblem::TooMany {
                count: match_docs.len(),
                max: limits.max_match_rules,
            },
        ));
    }
    let mut matches = Vec::with_capacity(match_docs.len());
    for (i, m) in match_docs.into_iter().enumerate() {
        let rule_path = path(format!("match[{i}].path"), &m.path, true, limits)?;
        let accepted = match (m.equals, m.one_of) {
            (Some(value), None) => vec![scalar(format!("match[{i}].equals"), value)?],
            (None, Some(values)) => {
                let field = format!("match[{i}].one_of");
                if values.is_empty() {
                    return Err(invalid(field, TemplateProblem::Empty));
                }
                if values.len() > MAX_ONE_OF {
                    return Err(invalid(
                        field,
                        TemplateProblem::TooMany {
                            count: values.len(),
                            max: MAX_ONE_OF,
                        },
                    ));
                }
                values
                    .into_iter()
                    .enumerate()
                    .map(|(j, v)| scalar(format!("{field}[{j}]"), v))
                    .collect::<Result<_, _>>()?
            }
            _ => {
                return Err(invalid(
                    format!("match[{i}]"),
                    TemplateProblem::BadMatchRule,
                ));
            }
        };
        matches.push(MatchRule {
            path: rule_path,
            accepted,
        });
    }

    let device_doc = doc.device.0;
    let prefix = device_doc.prefix.unwrap_or_default();
    if !prefix.is_empty() {
        if prefix.len() > MAX_PREFIX_BYTES {
            return Err(invalid(
                "device.prefix",
                TemplateProblem::TooLong {
                    len: prefix.len(),
                    max: MAX_PREFIX_BYTES,
                },
            ));
        }
        if let Err(error) = DeviceId::new(prefix.as_str()) {
            return Err(invalid(
                "device.prefix",
                TemplateProblem::BadPrefix {
                    prefix: echo(&prefix),
                    error,
                },
            ));
        }
        if is_reserved_device_id(&prefix) {
            return Err(invalid(
                "device.prefix",
                TemplateProblem::ReservedPrefix { prefix },
            ));
        }
    }
    let device = DeviceRule {
        path: path("device.path", &device_doc.path, true, limits)?,
        prefix,
    };

    let time = doc
        .time
        .map(|t| time_rule("time".to_owned(), t, limits))
        .transpose()?;

    if doc.readings.is_empty() {
        return Err(invalid("readings", TemplateProblem::Empty));
    }
    if doc.readings.len() > limits.max_rules {
        return Err(invalid(
            "readings",
            TemplateProblem::TooMany {
                count: doc.readings.len(),
                max: limits.max_rules,
            },
        ));
    }
    let mut readings: Vec<ReadingRule> = Vec::with_capacity(doc.readings.len());
    for (i, r) in doc.readings.into_iter().enumerate() {
        let rule = reading_rule(i, r, limits)?;
        let same = |a: &Option<Path>, b: &Option<Path>| {
            a.as_ref().map(Path::printed) == b.as_ref().map(Path::printed)
        };
        if let Some(first) = readings.iter().position(|seen| {
            seen.measurand == rule.measurand
                && same(&seen.each, &rule.each)
                && seen.value.printed() == rule.value.printed()
        }) {
            return Err(invalid(
                format!("readings[{i}]"),
                TemplateProblem::DuplicateRule { first },
            ));
        }
        readings.push(rule);
    }

    let battery = doc
        .battery
        .map(|b| path("battery.path", &b.0.path, true, limits))
        .transpose()?;

    Ok(Template {
        name: doc.name,
        version: doc.version,
        description: doc.description,
        matches,
        device,
        time,
        readings,
        battery,
    })
}

fn time_rule(
    field: String,
    doc: TimeDoc,
    limits: &TemplateLimits,
) -> Result<TimeRule, TemplateError> {
    Ok(TimeRule {
        path: path(format!("{field}.path"), &doc.path, true, limits)?,
        format: doc.format,
    })
}

fn scalar(field: String, value: Value) -> Result<Value, TemplateError> {
    match value {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok(value),
        other => Err(invalid(
            field,
            TemplateProblem::BadMatchValue {
                found: super::apply::describe(&other),
            },
        )),
    }
}

fn reading_rule(
    i: usize,
    r: ReadingDoc,
    limits: &TemplateLimits,
) -> Result<ReadingRule, TemplateError> {
    let field = |name: &str| format!("readings[{i}].{name}");
    let measurand = Measurand::from_code(&r.code).ok_or_else(|| {
        invalid(
            field("code"),
            TemplateProblem::UnknownCode {
                code: echo(&r.code),
            },
        )
    })?;
    let each = r
        .each
        .as_deref()
        .map(|text| path(field("each"), text, false, limits))
        .transpose()?;
    let value = path(field("value"), &r.value, true, limits)?;
    let time = r
        .time
        .map(|t| time_rule(field("time"), t, limits))
        .transpose()?;

    let unit = if measurand.value_kind() == ValueKind::Acvpu {
        let present = [
            ("unit", r.unit.is_some()),
            ("unit_path", r.unit_path.is_some()),
            ("units", r.units.is_some()),
            ("scale", r.scale.is_some()),
            ("offset", r.offset.is_some()),
        ];
        if let Some((name, _)) = present.iter().find(|(_, given)| *given) {
            return Err(invalid(
                field(name),
                TemplateProblem::NotForCodedValue { measurand },
            ));
        }
        UnitRule::None
    } else {
        match (r.unit, r.unit_path) {
            (None, None) => {
                return Err(invalid(
                    format!("readings[{i}]"),
                    TemplateProblem::MissingUnit { measurand },
                ));
            }
            (Some(_), Some(_)) => {
                return Err(invalid(
                    format!("readings[{i}]"),
                    TemplateProblem::ConflictingUnits,
                ));
            }
            (Some(unit), None) => {
                if r.units.is_some() {
                    return Err(invalid(field("units"), TemplateProblem::UnitMapWithoutPath));
                }
                units::to_canonical(measurand, 1.0, &unit)
                    .map_err(|e| invalid(field("unit"), TemplateProblem::UnitMismatch(e)))?;
                UnitRule::Fixed(unit)
            }
            (None, Some(unit_path)) => {
                let unit_path = path(field("unit_path"), &unit_path, true, limits)?;
                let map = r.units.map(|m| m.0);
                if let Some(map) = &map {
                    if map.is_empty() {
                        return Err(invalid(field("units"), TemplateProblem::EmptyUnitMap));
                    }
                    if map.len() > limits.max_units {
                        return Err(invalid(
                            field("units"),
                            TemplateProblem::TooMany {
                                count: map.len(),
                                max: limits.max_units,
                            },
                        ));
                    }
                    for (vendor, ucum) in map {
                        units::to_canonical(measurand, 1.0, ucum).map_err(|e| {
                            invalid(
                                format!("readings[{i}].units.{}", echo(vendor)),
                                TemplateProblem::UnitMismatch(e),
                            )
                        })?;
                    }
                }
                UnitRule::FromPath {
                    path: unit_path,
                    map: map.unwrap_or_default(),
                }
            }
        }
    };

    let scale = match r.scale {
        None => Decimal::ONE,
        Some(s) => match Decimal::from_f64(s) {
            Some(d) if !d.is_zero() => d,
            _ => {
                return Err(invalid(
                    field("scale"),
                    TemplateProblem::BadScale { value: s },
                ));
            }
        },
    };
    let offset = match r.offset {
        None => Decimal::ZERO,
        Some(o) => Decimal::from_f64(o)
            .ok_or_else(|| invalid(field("offset"), TemplateProblem::BadOffset { value: o }))?,
    };

    Ok(ReadingRule {
        measurand,
        each,
        value,
        unit,
        scale,
        offset,
        time,
        optional: r.optional,
    })
}
