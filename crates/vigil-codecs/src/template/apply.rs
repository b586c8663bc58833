//! Applying a template to one vendor message, and the dry run that explains it.

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use serde_json::Value;
use vigil_model::{
    Acvpu, DeviceId, Instant, MeasuredValue, Measurement, ObservationCode, ObservationStatus,
    ObservationValue, QualityFlags, Quantity, ValueKind, assemble_readings, is_reserved_device_id,
    units,
};

use super::decimal::{self, Decimal};
use super::path::Path;
use super::spec::{ReadingRule, TimeRule, UnitRule};
use super::{
    Mapped, Rejection, RejectionReason, RuleRef, Template, TemplateApplyError, TimeError,
    TimeFormat,
};
use crate::device_json::{
    DecodeLimits, MAX_EPOCH_MS, PayloadError, echo, json_error, rfc3339, utf8_error,
};

/// The JSON type of a value, as an English noun phrase for error messages.
pub(crate) fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number with a fraction or exponent",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Where a reading's time came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeSource {
    /// The rule's own `time`.
    Reading,
    /// The template's `time`.
    Message,
    Receipt,
}

impl TimeSource {
    fn as_str(self) -> &'static str {
        match self {
            TimeSource::Reading => "reading",
            TimeSource::Message => "message",
            TimeSource::Receipt => "receipt",
        }
    }
}

/// One accepted measurement and where it came from.
struct Accepted {
    measurement: Measurement,
    rule: usize,
    item: Option<usize>,
    pointer: String,
    sent: Value,
    sent_unit: Option<String>,
    /// `value × scale + offset` when the rule scales or offsets.
    computed: Option<f64>,
    time_from: TimeSource,
}

/// Everything one message yielded, before it is shaped for [`Mapped`] or [`DryRun`].
struct Run {
    device: DeviceId,
    message_time: Option<Instant>,
    accepted: Vec<Accepted>,
    rejected: Vec<Rejection>,
    skipped: Vec<Rejection>,
    battery_pct: Option<u8>,
}

pub(crate) fn apply(
    template: &Template,
    message: &[u8],
    received: Instant,
    limits: &DecodeLimits,
) -> Result<Mapped, TemplateApplyError> {
    let root = parse_message(message, limits)?;
    let run = run(template, &root, received, limits)?;
    Ok(Mapped {
        device: run.device,
        readings: assemble_readings(run.accepted.into_iter().map(|a| a.measurement).collect()),
        battery_pct: run.battery_pct,
        rejected: run.rejected,
        skipped: run.skipped,
    })
}

fn parse_message(message: &[u8], limits: &DecodeLimits) -> Result<Value, TemplateApplyError> {
    if message.len() > limits.max_bytes {
        return Err(TemplateApplyError::Envelope(PayloadError::TooLarge {
            size: message.len(),
            max: limits.max_bytes,
        }));
    }
    let text = std::str::from_utf8(message)
        .map_err(|e| TemplateApplyError::Envelope(utf8_error(message, e.valid_up_to())))?;
    super::strict::parse(text).map_err(|e| {
        if e.classify() == serde_json::error::Category::Data {
            let (line, column) = (e.line(), e.column());
            let full = e.to_string();
            let name = full
                .strip_suffix(&format!(" at line {line} column {column}"))
                .unwrap_or(&full)
                .to_owned();
            TemplateApplyError::DuplicateMember { name, line, column }
        } else {
            TemplateApplyError::Envelope(json_error(e))
        }
    })
}

/// What every reading of one message shares.
struct Context<'l> {
    message_time: Option<Instant>,
    received: Instant,
    limits: &'l DecodeLimits,
}

/// One value an `each` path found (or the whole message, for a rule without `each`).
struct Item<'v> {
    value: &'v Value,
    /// Its JSON Pointer and index, for a rule with `each`.
    at: Option<(usize, String)>,
}

fn run(
    template: &Template,
    root: &Value,
    received: Instant,
    limits: &DecodeLimits,
) -> Result<Run, TemplateApplyError> {
    check_matches(template, root)?;
    let device = find_device(template, root)?;
    let message_time = template
        .time
        .as_ref()
        .map(|rule| message_time(rule, root))
        .transpose()?;

    // Every item, counted before any reading is made.
    let mut plans: Vec<Vec<Item<'_>>> = Vec::with_capacity(template.readings.len());
    for rule in &template.readings {
        plans.push(match &rule.each {
            None => vec![Item {
                value: root,
                at: None,
            }],
            Some(each) => each
                .find_all(root)
                .into_iter()
                .enumerate()
                .map(|(index, found)| Item {
                    value: found.value,
                    at: Some((index, found.pointer)),
                })
                .collect(),
        });
    }
    let count = plans.iter().map(Vec::len).sum::<usize>();
    if count > limits.max_readings {
        return Err(TemplateApplyError::TooManyItems {
            count,
            max: limits.max_readings,
        });
    }

    let cx = Context {
        message_time,
        received,
        limits,
    };
    let mut accepted: Vec<Accepted> = Vec::with_capacity(count);
    let mut rejected = Vec::new();
    let mut skipped = Vec::new();
    for (index, (rule, items)) in template.readings.iter().zip(&plans).enumerate() {
        if let (Some(each), true) = (&rule.each, items.is_empty()) {
            skipped.push(Rejection {
                rule: RuleRef::Reading(index),
                item: None,
                path: each.as_str().to_owned(),
                pointer: None,
                code: Some(rule.measurand.short_name()),
                reason: RejectionReason::NoItems,
            });
            continue;
        }
        for item in items {
            match read(index, rule, item, &cx) {
                Ok(reading) => {
                    let m = &reading.measurement;
                    let first = accepted.iter().find(|seen| {
                        seen.measurement.measurand == m.measurand
                            && seen.measurement.effective == m.effective
                    });
                    match first {
                        Some(first) => rejected.push(Rejection {
                            rule: RuleRef::Reading(index),
                            item: reading.item,
                            path: rule.value.as_str().to_owned(),
                            pointer: Some(reading.pointer),
                            code: Some(m.measurand.short_name()),
                            reason: RejectionReason::Duplicate {
                                measurand: m.measurand,
                                effective: m.effective,
                                first: label(first.rule, first.item),
                            },
                        }),
                        None => accepted.push(reading),
                    }
                }
                Err(Refused::Rejected(r)) => rejected.push(*r),
                Err(Refused::Skipped(r)) => skipped.push(*r),
            }
        }
    }

    let mut battery_pct = None;
    if let Some(path) = &template.battery {
        match read_battery(path, root) {
            Ok(pct) => battery_pct = Some(pct),
            Err(Refused::Rejected(r)) => rejected.push(*r),
            Err(Refused::Skipped(r)) => skipped.push(*r),
        }
    }

    Ok(Run {
        device,
        message_time,
        accepted,
        rejected,
        skipped,
        battery_pct,
    })
}

fn label(rule: usize, item: Option<usize>) -> String {
    match item {
        Some(item) => format!("readings[{rule}] item {item}"),
        None => format!("readings[{rule}]"),
    }
}

fn check_matches(template: &Template, root: &Value) -> Result<(), TemplateApplyError> {
    for (rule, m) in template.matches.iter().enumerate() {
        let found = m.path.find(root);
        let holds = found
            .as_ref()
            .is_some_and(|f| m.accepted.iter().any(|a| same_scalar(a, f.value)));
        if !holds {
            let expected = match m.accepted.as_slice() {
                [one] => one.to_string(),
                many => format!(
                    "one of {}",
                    many.iter()
                        .map(Value::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            return Err(TemplateApplyError::NotMatched {
                rule,
                path: m.path.as_str().to_owned(),
                found: found.map(|f| echo(&f.value.to_string())),
                expected,
            });
        }
    }
    Ok(())
}

/// Strings, booleans exactly; numbers by numeric value (`2` and `2.0` are one number).
fn same_scalar(expected: &Value, found: &Value) -> bool {
    match (expected, found) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

fn find_device(template: &Template, root: &Value) -> Result<DeviceId, TemplateApplyError> {
    let rule = &template.device;
    let path = || rule.path.as_str().to_owned();
    let raw = match rule.path.find(root).map(|f| f.value) {
        None => {
            return Err(TemplateApplyError::MissingDevice {
                path: path(),
                sent_null: false,
            });
        }
        Some(Value::Null) => {
            return Err(TemplateApplyError::MissingDevice {
                path: path(),
                sent_null: true,
            });
        }
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) if n.is_u64() => n.to_string(),
        Some(other) => {
            return Err(TemplateApplyError::DeviceWrongType {
                path: path(),
                found: describe(other),
            });
        }
    };
    let id = format!("{}{raw}", rule.prefix);
    if is_reserved_device_id(&id) {
        return Err(TemplateApplyError::ReservedDevice { id: echo(&id) });
    }
    DeviceId::new(id.as_str()).map_err(|error| TemplateApplyError::InvalidDevice {
        id: echo(&id),
        error,
    })
}

fn message_time(rule: &TimeRule, root: &Value) -> Result<Instant, TemplateApplyError> {
    let path = || rule.path.as_str().to_owned();
    match rule.path.find(root).map(|f| f.value) {
        None => Err(TemplateApplyError::MissingTime {
            path: path(),
            sent_null: false,
        }),
        Some(Value::Null) => Err(TemplateApplyError::MissingTime {
            path: path(),
            sent_null: true,
        }),
        Some(raw) => parse_time(raw, rule.format).map_err(|error| TemplateApplyError::BadTime {
            path: path(),
            error,
        }),
    }
}

/// Parses a time in the format the template names (see the module documentation).
pub(crate) fn parse_time(raw: &Value, format: TimeFormat) -> Result<Instant, TimeError> {
    let out_of_range = || TimeError::OutOfRange {
        format,
        value: echo(&raw.to_string()),
    };
    let from_ms = |ms: Option<i64>| {
        ms.filter(|ms| (0..=MAX_EPOCH_MS).contains(ms))
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
            .ok_or_else(out_of_range)
    };
    match (format, raw) {
        (TimeFormat::Rfc3339, Value::String(text)) => {
            // Sub-millisecond digits are kept: they are what the device sent.
            let time = DateTime::parse_from_rfc3339(text)
                .map_err(|error| TimeError::NotRfc3339 {
                    text: echo(text),
                    error,
                })?
                .with_timezone(&Utc);
            if time < DateTime::UNIX_EPOCH || time.timestamp_millis() > MAX_EPOCH_MS {
                return Err(out_of_range());
            }
            Ok(time)
        }
        // An integer: beyond i64 it is far past the latest accepted time.
        (TimeFormat::EpochMs, Value::Number(n)) if !n.is_f64() => from_ms(n.as_i64()),
        (TimeFormat::EpochS, Value::Number(n)) => from_ms(
            n.as_f64()
                .and_then(Decimal::from_f64)
                .and_then(|s| s.round_scaled(3))
                .and_then(|ms| i64::try_from(ms).ok()),
        ),
        (format, other) => Err(TimeError::WrongType {
            format,
            found: describe(other),
        }),
    }
}

/// A reading not made: rejected, or (an `optional` value, an empty `each`, no battery) skipped.
enum Refused {
    Rejected(Box<Rejection>),
    Skipped(Box<Rejection>),
}

impl Refused {
    fn rejected(r: Rejection) -> Refused {
        Refused::Rejected(Box::new(r))
    }
    fn skipped(r: Rejection) -> Refused {
        Refused::Skipped(Box::new(r))
    }
}

/// `base` (the item's pointer) followed by `rest` (a pointer relative to the item).
fn join(base: Option<&str>, rest: &str) -> String {
    format!("{}{rest}", base.unwrap_or(""))
}

fn read(
    index: usize,
    rule: &ReadingRule,
    item: &Item<'_>,
    cx: &Context<'_>,
) -> Result<Accepted, Refused> {
    let item_pointer = item.at.as_ref().map(|(_, p)| p.as_str());
    let reject = |path: &Path, pointer: Option<String>, reason: RejectionReason| Rejection {
        rule: RuleRef::Reading(index),
        item: item.at.as_ref().map(|(i, _)| *i),
        path: path.as_str().to_owned(),
        pointer,
        code: Some(rule.measurand.short_name()),
        reason,
    };
    let missing = |pointer: Option<String>, sent_null: bool| {
        let r = reject(
            &rule.value,
            pointer,
            RejectionReason::Missing {
                field: "value",
                sent_null,
            },
        );
        if rule.optional {
            Refused::skipped(r)
        } else {
            Refused::rejected(r)
        }
    };
    let found = match rule.value.find(item.value) {
        None => return Err(missing(item_pointer.map(str::to_owned), false)),
        Some(f) if f.value.is_null() => {
            return Err(missing(Some(join(item_pointer, &f.pointer)), true));
        }
        Some(f) => f,
    };
    let pointer = join(item_pointer, &found.pointer);
    let at_value = |reason| Refused::rejected(reject(&rule.value, Some(pointer.clone()), reason));

    let kind = rule.measurand.value_kind();
    let mut sent_unit = None;
    let mut computed = None;
    let (value, converted) = match (kind, found.value) {
        (ValueKind::Acvpu, Value::String(letter)) => match Acvpu::parse(letter) {
            Some(a) => (MeasuredValue::Acvpu(a), false),
            None => {
                return Err(at_value(RejectionReason::InvalidCodedValue {
                    value: echo(letter),
                    expected: "A (alert), C (new confusion), V (voice), P (pain) or U \
                               (unresponsive)",
                }));
            }
        },
        (ValueKind::OxygenSupport, Value::Bool(on)) => (MeasuredValue::OnOxygen(*on), false),
        (ValueKind::Quantity | ValueKind::OxygenSupport, Value::Number(n)) => {
            let sent = n.as_f64().unwrap_or(f64::NAN);
            let value = decimal::affine(sent, rule.scale, rule.offset);
            if rule.scale != Decimal::ONE || !rule.offset.is_zero() {
                computed = Some(value);
            }
            let unit: &str = match &rule.unit {
                UnitRule::Fixed(unit) => unit,
                UnitRule::None => rule.measurand.canonical_unit(),
                UnitRule::FromPath { path, map } => {
                    let unit_found = path.find(item.value);
                    let unit_pointer = unit_found
                        .as_ref()
                        .map(|f| join(item_pointer, &f.pointer))
                        .or_else(|| item_pointer.map(str::to_owned));
                    let at_unit =
                        |reason| Refused::rejected(reject(path, unit_pointer.clone(), reason));
                    let text = match unit_found.map(|f| f.value) {
                        None => {
                            return Err(at_unit(RejectionReason::Missing {
                                field: "unit",
                                sent_null: false,
                            }));
                        }
                        Some(Value::Null) => {
                            return Err(at_unit(RejectionReason::Missing {
                                field: "unit",
                                sent_null: true,
                            }));
                        }
                        Some(Value::String(text)) => text,
                        Some(other) => {
                            return Err(at_unit(RejectionReason::WrongType {
                                field: "unit",
                                expected: "a unit string",
                                found: describe(other),
                            }));
                        }
                    };
                    sent_unit = Some(echo(text));
                    if map.is_empty() {
                        text
                    } else {
                        match map.iter().find(|(vendor, _)| vendor == text) {
                            Some((_, ucum)) => ucum,
                            None => {
                                return Err(at_unit(RejectionReason::UnitNotInMap {
                                    unit: echo(text),
                                    known: map
                                        .iter()
                                        .map(|(vendor, _)| format!("{vendor:?}"))
                                        .collect::<Vec<_>>()
                                        .join(", "),
                                }));
                            }
                        }
                    }
                }
            };
            let (canonical, converted) = units::to_canonical(rule.measurand, value, unit)
                .map_err(|e| at_value(RejectionReason::UnitMismatch(e)))?;
            let range = rule.measurand.plausible();
            // `contains` is false for NaN, and ±inf is outside every range.
            if !(range.min..=range.max).contains(&canonical) {
                return Err(at_value(RejectionReason::ImplausibleValue {
                    measurand: rule.measurand,
                    value: canonical,
                    sent: (converted || computed.is_some())
                        .then(|| Quantity::new(sent, sent_unit.clone().unwrap_or(unit.to_owned()))),
                }));
            }
            (MeasuredValue::Number(canonical), converted)
        }
        (kind, other) => {
            let expected = match kind {
                ValueKind::Acvpu => "one of the strings \"A\", \"C\", \"V\", \"P\", \"U\"",
                ValueKind::OxygenSupport => "a boolean (on oxygen) or a number (the flow)",
                ValueKind::Quantity => "a number",
            };
            return Err(at_value(RejectionReason::WrongType {
                field: "value",
                expected,
                found: describe(other),
            }));
        }
    };

    let (effective, time_from) = match &rule.time {
        Some(time) => {
            let time_found = time.path.find(item.value);
            let time_pointer = time_found
                .as_ref()
                .map(|f| join(item_pointer, &f.pointer))
                .or_else(|| item_pointer.map(str::to_owned));
            let at_time =
                |reason| Refused::rejected(reject(&time.path, time_pointer.clone(), reason));
            match time_found.map(|f| f.value) {
                None => {
                    return Err(at_time(RejectionReason::Missing {
                        field: "time",
                        sent_null: false,
                    }));
                }
                Some(Value::Null) => {
                    return Err(at_time(RejectionReason::Missing {
                        field: "time",
                        sent_null: true,
                    }));
                }
                Some(raw) => match parse_time(raw, time.format) {
                    Ok(t) => (t, TimeSource::Reading),
                    Err(e) => return Err(at_time(RejectionReason::BadTime(e))),
                },
            }
        }
        None => match cx.message_time {
            Some(t) => (t, TimeSource::Message),
            None => (cx.received, TimeSource::Receipt),
        },
    };
    if effective.signed_duration_since(cx.received) > cx.limits.max_future_skew {
        let path = rule.time.as_ref().map_or(&rule.value, |t| &t.path);
        return Err(Refused::rejected(reject(
            path,
            Some(pointer),
            RejectionReason::FutureTime {
                time: effective,
                received: cx.received,
                max_skew: cx.limits.max_future_skew,
            },
        )));
    }

    let mut quality = QualityFlags::empty();
    if converted {
        quality.insert(QualityFlags::CONVERTED_UNIT);
    }
    if time_from == TimeSource::Receipt {
        quality.insert(QualityFlags::TIME_FROM_RECEIPT);
    }
    Ok(Accepted {
        measurement: Measurement {
            measurand: rule.measurand,
            value,
            effective,
            status: ObservationStatus::Final,
            quality,
        },
        rule: index,
        item: item.at.as_ref().map(|(i, _)| *i),
        pointer,
        sent: found.value.clone(),
        sent_unit,
        computed,
        time_from,
    })
}

fn read_battery(path: &Path, root: &Value) -> Result<u8, Refused> {
    let refusal = |pointer: Option<String>, reason| Rejection {
        rule: RuleRef::Battery,
        item: None,
        path: path.as_str().to_owned(),
        pointer,
        code: None,
        reason,
    };
    let Some(found) = path.find(root) else {
        return Err(Refused::skipped(refusal(
            None,
            RejectionReason::Missing {
                field: "battery",
                sent_null: false,
            },
        )));
    };
    let pointer = Some(found.pointer);
    match found.value {
        Value::Null => Err(Refused::skipped(refusal(
            pointer,
            RejectionReason::Missing {
                field: "battery",
                sent_null: true,
            },
        ))),
        Value::Number(n) => {
            let value = n.as_f64().unwrap_or(f64::NAN);
            if (0.0..=100.0).contains(&value) && value.fract() == 0.0 {
                // A whole number from 0 to 100 converts exactly.
                Ok(value as u8)
            } else {
                Err(Refused::rejected(refusal(
                    pointer,
                    RejectionReason::BatteryOutOfRange { value },
                )))
            }
        }
        other => Err(Refused::rejected(refusal(
            pointer,
            RejectionReason::WrongType {
                field: "battery",
                expected: "a whole number from 0 to 100",
                found: describe(other),
            },
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// The dry run.

/// What a sample message would become, for an integrator (serialised by the API as JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DryRun {
    pub template: String,
    pub version: u32,
    /// The message was JSON and every `match` rule held.
    pub matched: bool,
    /// Why the whole message would be refused; nothing of it would be kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<DryRunRefusal>,
    /// The device id the message is from.
    pub device: Option<String>,
    /// The template-level time, when the template has one and the message had it.
    pub message_time: Option<String>,
    /// Each accepted value, one entry per measurement, in rule and item order.
    pub readings: Vec<DryRunReading>,
    /// How many observations the readings make once blood-pressure parts are grouped.
    pub observations: usize,
    pub rejected: Vec<DryRunRejection>,
    pub skipped: Vec<DryRunRejection>,
    pub battery_pct: Option<u8>,
    /// Sentences about what happened as a whole.
    pub notes: Vec<String>,
}

/// A whole-message refusal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DryRunRefusal {
    pub kind: &'static str,
    pub message: String,
}

/// One accepted value and how it was read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DryRunReading {
    /// `readings[2]`.
    pub rule: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
    /// The measurand's short name and the LOINC code it is recorded under.
    pub code: &'static str,
    pub loinc: &'static str,
    /// JSON Pointer (RFC 6901) of the value in the message.
    pub pointer: String,
    /// The value as the message had it.
    pub sent: Value,
    /// The unit string the message had, for a rule with `unit_path`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_unit: Option<String>,
    /// `value × scale + offset`, for a rule that scales or offsets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub computed: Option<f64>,
    /// The value recorded: a number in `unit`, an ACVPU letter, or true/false for oxygen.
    pub value: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<&'static str>,
    /// RFC 3339, UTC.
    pub time: String,
    /// `reading` (the rule's time), `message` (the template's) or `receipt`.
    pub time_from: &'static str,
    pub quality: Vec<&'static str>,
}

/// A refused or skipped reading, as the API shows it (also usable for [`Mapped::rejected`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DryRunRejection {
    /// `readings[2]` or `battery`.
    pub rule: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    pub kind: &'static str,
    pub message: String,
}

impl From<&Rejection> for DryRunRejection {
    fn from(r: &Rejection) -> Self {
        DryRunRejection {
            rule: r.rule.to_string(),
            item: r.item,
            path: r.path.clone(),
            pointer: r.pointer.clone(),
            code: r.code,
            kind: r.kind(),
            message: r.reason.to_string(),
        }
    }
}

pub(crate) fn dry_run(
    template: &Template,
    message: &[u8],
    received: Instant,
    limits: &DecodeLimits,
) -> DryRun {
    let mut out = DryRun {
        template: template.name.clone(),
        version: template.version,
        matched: false,
        refused: None,
        device: None,
        message_time: None,
        readings: Vec::new(),
        observations: 0,
        rejected: Vec::new(),
        skipped: Vec::new(),
        battery_pct: None,
        notes: Vec::new(),
    };
    let outcome =
        parse_message(message, limits).and_then(|root| run(template, &root, received, limits));
    let run = match outcome {
        Ok(run) => run,
        Err(e) => {
            out.matched = !matches!(
                e,
                TemplateApplyError::Envelope(_)
                    | TemplateApplyError::DuplicateMember { .. }
                    | TemplateApplyError::NotMatched { .. }
            );
            out.notes
                .push("the whole message would be refused: nothing of it would be kept".into());
            out.refused = Some(DryRunRefusal {
                kind: e.kind(),
                message: e.to_string(),
            });
            return out;
        }
    };
    out.matched = true;
    out.device = Some(run.device.to_string());
    out.message_time = run.message_time.as_ref().map(rfc3339);
    out.battery_pct = run.battery_pct;
    out.rejected = run.rejected.iter().map(DryRunRejection::from).collect();
    out.skipped = run.skipped.iter().map(DryRunRejection::from).collect();
    out.readings = run.accepted.iter().map(explain).collect();
    if template.time.is_none() {
        out.notes.push(
            "the template names no time: readings without a time of their own take the time \
             of receipt (flagged time-from-receipt)"
                .into(),
        );
    }
    let readings = assemble_readings(run.accepted.iter().map(|a| a.measurement.clone()).collect());
    for r in &readings {
        if let (ObservationCode::BloodPressure, ObservationValue::Components(parts)) =
            (&r.code, &r.value)
            && parts.len() > 1
        {
            out.notes.push(format!(
                "{} at {} form one blood_pressure panel",
                parts
                    .iter()
                    .map(|p| p.measurand.short_name())
                    .collect::<Vec<_>>()
                    .join(", "),
                rfc3339(&r.effective)
            ));
        }
    }
    out.observations = readings.len();
    out.notes.push(format!(
        "{} value(s) accepted as {} observation(s), {} rejected, {} skipped",
        out.readings.len(),
        out.observations,
        out.rejected.len(),
        out.skipped.len()
    ));
    out
}

fn explain(a: &Accepted) -> DryRunReading {
    let m = &a.measurement;
    let (value, unit) = match m.value {
        MeasuredValue::Number(n) => (
            serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number),
            Some(m.measurand.canonical_unit()),
        ),
        MeasuredValue::Acvpu(letter) => (Value::String(letter.code().to_owned()), None),
        MeasuredValue::OnOxygen(on) => (Value::Bool(on), None),
    };
    DryRunReading {
        rule: format!("readings[{}]", a.rule),
        item: a.item,
        code: m.measurand.short_name(),
        loinc: m.measurand.loinc(),
        pointer: a.pointer.clone(),
        sent: a.sent.clone(),
        sent_unit: a.sent_unit.clone(),
        computed: a.computed,
        value,
        unit,
        time: rfc3339(&m.effective),
        time_from: a.time_from.as_str(),
        quality: m.quality.names().collect(),
    }
}
