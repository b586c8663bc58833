//! # Vendor JSON mapping templates, version 1
//!
//! A device that speaks its vendor's JSON rather than the device JSON payload
//! ([`crate::device_json`]) publishes that JSON on MQTT `vigil/v1/ingest/{template}`; an
//! integrator writes a template saying how to recognise the vendor's message and where its device
//! id, time, values and units are, and Vigil turns each message into readings. This comment is the
//! public contract; the tests beside it pin each clause. Shipped examples, with sample messages,
//! are in `examples/templates/`.
//!
//! ```yaml
//! name: acme-band                    # the MQTT topic level: vigil/v1/ingest/acme-band
//! version: 3
//! description: AcmeBand 2 wrist wearable, firmware 4.x
//! match: { path: "$.model", equals: "AcmeBand-2" }
//! device: { path: "$.serial", prefix: "acme-" }
//! time: { path: "$.ts", format: epoch_ms }
//! readings:
//!   - code: heart_rate
//!     value: "$.hr"
//!     unit: "/min"
//!   - code: temperature
//!     value: "$.body_temp_c10"       # tenths of a degree: 368 is 36.8 Cel
//!     scale: 0.1
//!     unit: Cel
//!     optional: true                 # the band sends it only every 10 minutes
//!   - code: spo2
//!     each: "$.samples[*]"           # one reading per sample; inside, $ is the sample
//!     value: "$.spo2"
//!     unit: "%"
//!     time: { path: "$.t", format: epoch_ms }
//! battery: "$.batt"
//! ```
//!
//! A template is written in JSON (RFC 8259) or YAML (one document; plain scalars resolved by the
//! YAML 1.2 core schema, so `no` and `on` are strings), at most
//! [`TemplateLimits::max_bytes`] long, and parsed with [`Template::parse`]. Any member not named
//! below, a member given twice, a value of the wrong type or a rule that breaks a clause below
//! refuses the whole template ([`TemplateError`], naming the field: `readings[2].unit`).
//!
//! ## The template
//!
//! | member        | type                                | meaning |
//! |---------------|-------------------------------------|---------|
//! | `name`        | string, required                    | 1–64 characters from `a-z`, `0-9`, `-`; the MQTT topic level |
//! | `version`     | integer ≥ 1, required               | increases with every change (the store enforces the increase) |
//! | `description` | string, optional                    | at most 512 bytes, for people |
//! | `match`       | a rule or a list of rules, optional | at most [`TemplateLimits::max_match_rules`]; every rule must hold, or the message is refused |
//! | `device`      | path, or `{path, prefix}`, required | where the device id is |
//! | `time`        | `{path, format}`, optional          | when the readings were taken, unless a rule says otherwise |
//! | `readings`    | list of reading rules, required     | 1 to [`TemplateLimits::max_rules`] rules |
//! | `battery`     | path, or `{path}`, optional         | battery charge in percent |
//!
//! **Paths** are JSONPath queries (RFC 9535), at most [`TemplateLimits::max_path_len`] bytes.
//! Where one value is meant (everything but `each`) a path must be a *singular query*
//! (RFC 9535 §2.3.5.1: member names and indices only, such as `$.vitals.hr`, `$['hr-bpm']`,
//! `$.readings[0]`), so it finds one value or none, never several. In `each`, any query is
//! accepted, with three restrictions that bound its cost: a query inside a filter starts at the
//! current node (`@`), not at the root (`$`); brackets and parentheses nest at most
//! [`MAX_PATH_NESTING`] deep; the regular-expression functions `match()` and `search()` are not
//! available (`length()`, `count()` and `value()` are).
//!
//! **`match`**: each rule is `{path, equals}` or `{path, one_of}`, where `equals` is a string,
//! number or boolean and `one_of` a list of 1 to 32 of them. The rule holds when the path finds a
//! value equal to it (numbers by numeric value: `2` equals `2.0`; strings exactly).
//!
//! **`device`**: the value found must be a string or a non-negative integer (written in decimal);
//! `prefix` (optional, up to 32 characters) is put before it, so one vendor's serial numbers
//! cannot collide with another's. The result must be a valid Vigil device id (1–64 ASCII letters,
//! digits, `-` and `.`) and must not start with `vigil-` (reserved for Vigil itself).
//!
//! **Times** (`{path, format}`) name their format: `rfc3339` (a string, RFC 3339 §5.6
//! `date-time` with any offset, converted to UTC), `epoch_ms` (an integer number of milliseconds
//! since 1970-01-01T00:00:00Z) or `epoch_s` (a number of seconds since then; a fraction is kept
//! to the millisecond, rounded half away from zero). Times before 1970 or after
//! 9999-12-31T23:59:59.999Z are refused, and so is a time more than
//! [`DecodeLimits::max_future_skew`] after the moment Vigil received the message.
//!
//! ## A reading rule
//!
//! | member      | type                         | meaning |
//! |-------------|------------------------------|---------|
//! | `code`      | string, required             | a measurand in any form the device JSON payload accepts: `heart_rate`, `8867-4`, `MDC_ECG_HEART_RATE`, `147842` |
//! | `each`      | path, optional               | the items this rule reads, one reading per value found; inside the rule, `$` is the item |
//! | `value`     | singular path, required      | the value |
//! | `unit`      | UCUM string                  | the unit of every value this rule reads |
//! | `unit_path` | singular path                | where the value's unit is, for vendors that send it |
//! | `units`     | map, with `unit_path` only   | the vendor's unit strings to UCUM (`mmHg: "mm[Hg]"`); at most [`TemplateLimits::max_units`] |
//! | `scale`     | number, optional, default 1  | finite and not 0 |
//! | `offset`    | number, optional, default 0  | finite |
//! | `time`      | `{path, format}`, optional   | the reading's own time; overrides the template's `time` |
//! | `optional`  | boolean, default false       | a value that is not there is skipped quietly rather than rejected |
//!
//! A quantity (every measurand but `acvpu`) needs exactly one of `unit` and `unit_path`: the unit
//! is never guessed. Every UCUM unit the template names (`unit`, the values of `units`) must
//! convert to the measurand's canonical unit, which is checked when the template is parsed. With
//! `unit_path` and no `units`, the string found must itself be a UCUM unit accepted for the
//! measurand; with `units`, it must be one of the map's keys (exactly, case included). `acvpu`
//! takes one of the strings `"A"`, `"C"`, `"V"`, `"P"`, `"U"` and no unit, scale or offset;
//! `o2_supplemental` takes `true`/`false` (on oxygen or on air) or a flow with its unit.
//!
//! **Computed values**: the value found, a JSON number, becomes `value × scale + offset` in the
//! vendor's unit, then is converted exactly to the canonical unit (`units::to_canonical`, flagged
//! `converted-unit` when the unit is not the canonical one or a synonym). The scale and offset are
//! computed on the decimal numbers as written, exactly, and rounded once to the nearest `f64`
//! (338 × 0.1 is 33.8, where `f64` multiplication gives 33.800000000000004); the unit conversion
//! is `f64` arithmetic, as for the device JSON payload. A number given as a string (`"72"`) is
//! refused, not read.
//!
//! **`each`** pairs values with their times by the item that holds both: with
//! `each: "$.samples[*]"`, `value: "$.spo2"` and `time: {path: "$.t", …}`, each sample's value
//! goes with that sample's time. Two parallel arrays paired by position are not supported: one
//! missing entry would shift every later time onto the wrong value. `each` finding no items
//! produces nothing and is noted as skipped, never rejected (a hub's message may hold no
//! measurement of that kind). Inside `each`, `value`, `unit_path` and `time.path` are evaluated
//! on the item; `device`, `match`, `battery` and the template's `time` always on the whole
//! message.
//!
//! **A value that is not there** (the path finds nothing, or finds `null`) is never taken as a
//! normal value: the reading is rejected with the reason, or, for an `optional` rule, skipped
//! quietly (listed in [`Mapped::skipped`]).
//!
//! **Which time**: the rule's `time` if it has one (a missing or bad one rejects the reading);
//! else the template's `time` (a missing or bad one refuses the whole message); else the time of
//! receipt, flagged `time-from-receipt`. A time too far ahead of receipt rejects each reading
//! that has it, whichever it came from.
//!
//! After conversion a value must lie within the measurand's plausible range (inclusive). A second
//! reading of the same measurand at the same time as an accepted one is rejected as a duplicate
//! (the first is kept). Accepted readings are grouped with [`vigil_model::assemble_readings`], so
//! a systolic and a diastolic pressure at one time become one blood-pressure panel. Every reading
//! is `final`.
//!
//! Two rules with the same `code`, `each` and `value` are refused as a repeated rule (paths
//! compared as the JSONPath parser prints them back).
//!
//! **`battery`**: a number that is a whole number from 0 to 100; another value is rejected and
//! ignored, a missing one skipped.
//!
//! ## Applying a template: [`Template::apply`]
//!
//! The whole message is refused ([`TemplateApplyError`]) when it is over
//! [`DecodeLimits::max_bytes`], not UTF-8, not JSON, repeats a member name within an object,
//! fails a `match` rule, has no valid device id, has a missing or bad template-level time, or
//! would produce more than [`DecodeLimits::max_readings`] readings (counted before any is
//! made). Otherwise each reading stands alone: a bad one is listed in [`Mapped::rejected`] with
//! its rule (`readings[2]`), its item index within `each`, the path, and the JSON Pointer
//! (RFC 6901) of the value in the message when one was found; the rest are kept.
//! [`Template::dry_run`] does the same and explains it ([`DryRun`]), for an integrator trying a
//! sample message. Waveforms are not part of templates.
//!
//! ## Dependencies
//! JSONPath is `serde_json_path`, an RFC 9535 implementation tested against the JSONPath
//! compliance suite, built without its `regex` feature (its `match()` and `search()` compile a
//! regular expression for every node tested). YAML is `yaml_serde`, the YAML organisation's
//! maintained continuation of the archived `serde_yaml` (same parser, with its recursion and
//! alias-expansion limits); `serde_yaml` itself is unmaintained, and the younger forks
//! `serde_yaml_ng` and `serde_norway` have had no release since 2024. `serde_path_to_error`
//! names the field a structural error is in.

use std::fmt;

use vigil_model::{DeviceId, IdError, Instant, Measurand, Quantity, Reading, UnitError};

use crate::device_json::{DecodeLimits, PayloadError, duration, rfc3339};

mod apply;
mod decimal;
mod path;
mod spec;
mod strict;

pub use apply::{DryRun, DryRunReading, DryRunRefusal, DryRunRejection};
pub use path::{MAX_PATH_NESTING, NotAllowed};

/// The language a template is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TemplateFormat {
    Json,
    Yaml,
}

impl TemplateFormat {
    /// From an HTTP media type (`application/json`, `application/yaml`, `application/x-yaml`,
    /// `text/yaml`), ignoring parameters such as `; charset=utf-8`.
    pub fn from_media_type(media_type: &str) -> Option<TemplateFormat> {
        let essence = media_type.split(';').next().unwrap_or("").trim();
        match essence.to_ascii_lowercase().as_str() {
            "application/json" => Some(TemplateFormat::Json),
            "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" => {
                Some(TemplateFormat::Yaml)
            }
            _ => None,
        }
    }
}

/// Bounds on one template (house rule 1). The bounds on the messages it is applied to are the
/// device JSON payload's [`DecodeLimits`]: `max_bytes` for the message, `max_readings` for the
/// readings one message may produce, `max_future_skew` for device clocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateLimits {
    /// Largest accepted template text, in bytes. Default 64 KiB.
    pub max_bytes: usize,
    /// Most reading rules. Default 64.
    pub max_rules: usize,
    /// Most `match` rules. Default 8.
    pub max_match_rules: usize,
    /// Most entries in one rule's `units` map. Default 32.
    pub max_units: usize,
    /// Longest path, in bytes. Default 512.
    pub max_path_len: usize,
}

impl Default for TemplateLimits {
    fn default() -> Self {
        TemplateLimits {
            max_bytes: 64 * 1024,
            max_rules: 64,
            max_match_rules: 8,
            max_units: 32,
            max_path_len: 512,
        }
    }
}

/// Longest `description`, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 512;
/// Longest device id `prefix`, in bytes.
pub const MAX_PREFIX_BYTES: usize = 32;
/// Most values in a `match` rule's `one_of`.
pub const MAX_ONE_OF: usize = 32;

/// A validated template, ready to apply to messages. Immutable and cheap to share between
/// threads (`Send + Sync`); cloning copies the compiled rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    name: String,
    version: u32,
    description: Option<String>,
    matches: Vec<spec::MatchRule>,
    device: spec::DeviceRule,
    time: Option<spec::TimeRule>,
    readings: Vec<spec::ReadingRule>,
    battery: Option<path::Path>,
}

impl Template {
    /// Parses and validates a template with the default [`TemplateLimits`].
    pub fn parse(text: &str, format: TemplateFormat) -> Result<Template, TemplateError> {
        Template::parse_with_limits(text, format, &TemplateLimits::default())
    }

    /// Parses and validates a template (see the module documentation for every rule). Pure;
    /// never panics.
    pub fn parse_with_limits(
        text: &str,
        format: TemplateFormat,
        limits: &TemplateLimits,
    ) -> Result<Template, TemplateError> {
        spec::parse(text, format, limits)
    }

    /// The template's name: the MQTT topic level `vigil/v1/ingest/{name}`.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// How many reading rules the template has.
    pub fn rule_count(&self) -> usize {
        self.readings.len()
    }

    /// Applies the template to one vendor message (see the module documentation).
    ///
    /// `received` is when Vigil received the message: the time of readings that carry none, and
    /// the reference for [`DecodeLimits::max_future_skew`]. Pure and deterministic; never panics.
    pub fn apply(
        &self,
        message: &[u8],
        received: Instant,
        limits: &DecodeLimits,
    ) -> Result<Mapped, TemplateApplyError> {
        apply::apply(self, message, received, limits)
    }

    /// Applies the template as [`Template::apply`] does and explains what the message became,
    /// refusal included, for an integrator trying a sample. Never fails; never panics.
    pub fn dry_run(&self, message: &[u8], received: Instant, limits: &DecodeLimits) -> DryRun {
        apply::dry_run(self, message, received, limits)
    }
}

/// What one message became.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    /// The device the message is from (its `prefix` included).
    pub device: DeviceId,
    /// Accepted readings in canonical units, blood-pressure parts grouped into panels, in rule
    /// order and, within a rule, item order.
    pub readings: Vec<Reading>,
    /// Battery charge in percent, when the template reads one and the message had a valid one.
    pub battery_pct: Option<u8>,
    /// Readings (and a `battery`) refused one by one; the rest of the message is kept.
    pub rejected: Vec<Rejection>,
    /// What was not there and is not an error: values of `optional` rules, `each` that found no
    /// items, a missing `battery`. Their reason is [`RejectionReason::Missing`] or
    /// [`RejectionReason::NoItems`].
    pub skipped: Vec<Rejection>,
}

/// Which part of the template a rejection comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleRef {
    /// `readings[i]`.
    Reading(usize),
    Battery,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleRef::Reading(i) => write!(f, "readings[{i}]"),
            RuleRef::Battery => f.write_str("battery"),
        }
    }
}

/// One reading (or the battery) refused or skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub rule: RuleRef,
    /// Index of the item among those `each` found, for a rule with `each`.
    pub item: Option<usize>,
    /// The template path the reason is about, as written (`$.spo2`, or the `each` path).
    pub path: String,
    /// JSON Pointer (RFC 6901) into the message: of the value when one was found, else of the
    /// `each` item; `None` when there is neither.
    pub pointer: Option<String>,
    /// The measurand's short name, for a reading rule.
    pub code: Option<&'static str>,
    pub reason: RejectionReason,
}

impl Rejection {
    /// A stable snake_case label for metrics (never carries data from the message).
    pub fn kind(&self) -> &'static str {
        self.reason.kind()
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.rule)?;
        if let Some(item) = self.item {
            write!(f, " item {item}")?;
        }
        match &self.pointer {
            Some(pointer) => write!(f, " ({} at {pointer:?})", self.path)?,
            None => write!(f, " ({})", self.path)?,
        }
        write!(f, ": {}", self.reason)
    }
}

/// Why one reading was refused (or skipped).
///
/// `Display` is a sentence for the integrator or the sender and may quote the message, values
/// included; logs and metrics take [`RejectionReason::kind`] only (house rule 7).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RejectionReason {
    #[error("{}", missing(.field, *.sent_null))]
    Missing {
        /// `value`, `unit` (at `unit_path`), `time` or `battery`.
        field: &'static str,
        sent_null: bool,
    },
    #[error("each found no items")]
    NoItems,
    #[error("{field} must be {expected}, but {found} was sent")]
    WrongType {
        field: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("unit {unit:?} is not in the template's unit map; it maps {known}")]
    UnitNotInMap { unit: String, known: String },
    #[error("{0}")]
    UnitMismatch(UnitError),
    #[error("value {value:?} is not valid; expected {expected}")]
    InvalidCodedValue {
        value: String,
        expected: &'static str,
    },
    #[error(
        "{} {} {}{} is outside the plausible range {} to {} {}",
        .measurand.short_name(), .value, .measurand.canonical_unit(), sent_as(.sent),
        .measurand.plausible().min, .measurand.plausible().max, .measurand.canonical_unit()
    )]
    ImplausibleValue {
        measurand: Measurand,
        /// In the canonical unit.
        value: f64,
        /// The value and unit as sent, when they differ from the canonical ones.
        sent: Option<Quantity>,
    },
    #[error("time is not valid: {0}")]
    BadTime(TimeError),
    #[error(
        "time {} is {} after the time of receipt {}; at most {} ahead is accepted",
        rfc3339(.time), duration(.time.signed_duration_since(*.received)), rfc3339(.received),
        duration(*.max_skew)
    )]
    FutureTime {
        time: Instant,
        received: Instant,
        max_skew: chrono::Duration,
    },
    #[error(
        "{} at {} was already read by {first}; only the first is kept",
        .measurand.short_name(), rfc3339(.effective)
    )]
    Duplicate {
        measurand: Measurand,
        effective: Instant,
        /// The accepted reading's rule and item: `readings[0]`, `readings[2] item 1`.
        first: String,
    },
    #[error("battery {value} is not a whole number from 0 to 100 %; it is ignored")]
    BatteryOutOfRange { value: f64 },
}

impl RejectionReason {
    /// A stable snake_case label for metrics (never carries data from the message). Labels
    /// shared with the device JSON payload mean the same there.
    pub fn kind(&self) -> &'static str {
        match self {
            RejectionReason::Missing { field: "value", .. } => "missing_value",
            RejectionReason::Missing { .. } => "missing_field",
            RejectionReason::NoItems => "no_items",
            RejectionReason::WrongType { .. } => "wrong_type",
            RejectionReason::UnitNotInMap { .. } => "unit_not_in_map",
            RejectionReason::UnitMismatch(_) => "unit_mismatch",
            RejectionReason::InvalidCodedValue { .. } => "invalid_coded_value",
            RejectionReason::ImplausibleValue { .. } => "implausible_value",
            RejectionReason::BadTime(_) => "bad_timestamp",
            RejectionReason::FutureTime { .. } => "future_timestamp",
            RejectionReason::Duplicate { .. } => "duplicate",
            RejectionReason::BatteryOutOfRange { .. } => "battery_out_of_range",
        }
    }
}

/// A time format a template names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    Rfc3339,
    EpochMs,
    EpochS,
}

impl TimeFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            TimeFormat::Rfc3339 => "rfc3339",
            TimeFormat::EpochMs => "epoch_ms",
            TimeFormat::EpochS => "epoch_s",
        }
    }

    fn expected(self) -> &'static str {
        match self {
            TimeFormat::Rfc3339 => "an RFC 3339 date-time string such as 2026-11-21T10:15:00Z",
            TimeFormat::EpochMs => "an integer number of milliseconds since 1970-01-01T00:00:00Z",
            TimeFormat::EpochS => "a number of seconds since 1970-01-01T00:00:00Z",
        }
    }
}

/// Why a time was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("format {} expects {}, but {found} was sent", .format.as_str(), .format.expected())]
    WrongType {
        format: TimeFormat,
        found: &'static str,
    },
    #[error("{text:?} is not an RFC 3339 date-time such as 2026-11-21T10:15:00.250Z ({error})")]
    NotRfc3339 {
        text: String,
        error: chrono::format::ParseError,
    },
    #[error("{value} ({}) is before 1970-01-01T00:00:00Z or after 9999-12-31T23:59:59.999Z", .format.as_str())]
    OutOfRange { format: TimeFormat, value: String },
}

/// Why a whole message was refused; nothing of it is kept.
///
/// `Display` is a sentence for the sender or the integrator; logs and metrics take
/// [`TemplateApplyError::kind`] only.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateApplyError {
    /// Too large, not UTF-8 or not JSON.
    #[error(transparent)]
    Envelope(PayloadError),
    #[error(
        "member name {name:?} appears twice in one object (line {line}, column {column}); the \
         message is ambiguous"
    )]
    DuplicateMember {
        name: String,
        line: usize,
        column: usize,
    },
    #[error("the message does not match the template: match[{rule}] ({path}) {}", match .found {
        None => format!("found nothing; expected {expected}"),
        Some(found) => format!("is {found}; expected {expected}"),
    })]
    NotMatched {
        rule: usize,
        path: String,
        /// What the path found, as JSON (cut to 64 bytes), when it found something.
        found: Option<String>,
        expected: String,
    },
    #[error("device ({path}) is {}", if *.sent_null { "null" } else { "not in the message" })]
    MissingDevice { path: String, sent_null: bool },
    #[error("device ({path}) must be a string or a non-negative integer, but {found} was sent")]
    DeviceWrongType { path: String, found: &'static str },
    #[error("{id:?} is not a valid device id: {error}")]
    InvalidDevice { id: String, error: IdError },
    #[error("device id {id:?} is reserved: ids starting with \"vigil-\" belong to Vigil itself")]
    ReservedDevice { id: String },
    #[error("time ({path}) is {}; the template says where every message's time is", if *.sent_null { "null" } else { "not in the message" })]
    MissingTime { path: String, sent_null: bool },
    #[error("time ({path}) is not valid: {error}")]
    BadTime { path: String, error: TimeError },
    #[error("the message would produce {count} readings, more than the limit of {max}")]
    TooManyItems { count: usize, max: usize },
}

impl TemplateApplyError {
    /// A stable snake_case label for metrics (never carries data from the message).
    pub fn kind(&self) -> &'static str {
        match self {
            TemplateApplyError::Envelope(e) => e.kind(),
            TemplateApplyError::DuplicateMember { .. } => "duplicate_member",
            TemplateApplyError::NotMatched { .. } => "not_matched",
            TemplateApplyError::MissingDevice { .. } => "missing_device",
            TemplateApplyError::DeviceWrongType { .. } => "device_wrong_type",
            TemplateApplyError::InvalidDevice { .. } => "invalid_device",
            TemplateApplyError::ReservedDevice { .. } => "reserved_device",
            TemplateApplyError::MissingTime { .. } => "missing_timestamp",
            TemplateApplyError::BadTime { .. } => "bad_timestamp",
            TemplateApplyError::TooManyItems { .. } => "too_many_items",
        }
    }
}

/// Why a template was refused.
///
/// `Display` is a sentence for the integrator, naming the field; logs and metrics take
/// [`TemplateError::kind`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    #[error("template is {size} bytes, more than the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    /// Not JSON or YAML, or not the template's structure: an unknown or repeated member, a
    /// missing required one, a value of the wrong type. `message` is the parser's.
    #[error("{}{message}{}", at_field(.path), at_position(*.line, *.column))]
    Document {
        /// The field the problem is in (`readings[1]`), empty for the template itself.
        path: String,
        message: String,
        line: Option<usize>,
        column: Option<usize>,
    },
    /// The structure is right but a rule is not.
    #[error("{field}: {problem}")]
    Invalid {
        /// `readings[2].unit`, `match[0].path`, `device.prefix`, …
        field: String,
        problem: TemplateProblem,
    },
}

impl TemplateError {
    /// A stable snake_case label for metrics and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            TemplateError::TooLarge { .. } => "too_large",
            TemplateError::Document { .. } => "invalid_document",
            TemplateError::Invalid { problem, .. } => problem.kind(),
        }
    }

    /// The field the problem is in (`readings[2].unit`), empty for the whole template.
    pub fn field(&self) -> &str {
        match self {
            TemplateError::TooLarge { .. } => "",
            TemplateError::Document { path, .. } => path,
            TemplateError::Invalid { field, .. } => field,
        }
    }
}

/// What is wrong with one field of a template whose structure is right.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateProblem {
    #[error("{name:?} is not a valid template name: 1 to 64 characters from a-z, 0-9 and '-'")]
    BadName { name: String },
    #[error("version must be at least 1")]
    BadVersion,
    #[error("is {len} bytes long; at most {max} are accepted")]
    TooLong { len: usize, max: usize },
    #[error("path is {len} bytes long; at most {max} are accepted")]
    PathTooLong { len: usize, max: usize },
    #[error("{path:?} is not a valid JSONPath (RFC 9535): {message} at character {position}")]
    BadPath {
        path: String,
        /// 0-based character offset where the JSONPath parser stopped.
        position: usize,
        message: String,
    },
    #[error(
        "{path:?} can select several values, but one value is meant here: use member names and \
         indices only (a singular query), and put what selects several items in each"
    )]
    PathNotSingular { path: String },
    #[error("{path:?} is not accepted: {why}")]
    PathNotAllowed { path: String, why: NotAllowed },
    #[error(
        "unknown measurand code {code:?}; expected a short name such as \"heart_rate\", a LOINC \
         code, an IEEE 11073-10101 reference id or a numeric MDC code"
    )]
    UnknownCode { code: String },
    #[error("{0}")]
    UnitMismatch(UnitError),
    #[error(
        "{} needs a unit: give unit (a UCUM unit such as {:?}) or unit_path",
        .measurand.short_name(), .measurand.canonical_unit()
    )]
    MissingUnit { measurand: Measurand },
    #[error("give either unit or unit_path, not both")]
    ConflictingUnits,
    #[error("units maps the strings found at unit_path, and this rule has no unit_path")]
    UnitMapWithoutPath,
    #[error("units is empty; leave it out to take the strings at unit_path as UCUM units")]
    EmptyUnitMap,
    #[error("{} takes a coded value, which has no unit, scale or offset", .measurand.short_name())]
    NotForCodedValue { measurand: Measurand },
    #[error("must be a finite number other than 0, but {value} was given")]
    BadScale { value: f64 },
    #[error("must be a finite number, but {value} was given")]
    BadOffset { value: f64 },
    #[error("repeats readings[{first}]: the same code, each and value")]
    DuplicateRule { first: usize },
    #[error("has {count} entries, more than the limit of {max}")]
    TooMany { count: usize, max: usize },
    #[error("is empty; at least one entry is needed")]
    Empty,
    #[error("give exactly one of equals and one_of")]
    BadMatchRule,
    #[error("must be a string, a number or a boolean, but {found} was given")]
    BadMatchValue { found: &'static str },
    #[error("{prefix:?} is not a valid device id prefix: {error}")]
    BadPrefix { prefix: String, error: IdError },
    #[error(
        "{prefix:?} would give reserved device ids: ids starting with \"vigil-\" belong to Vigil"
    )]
    ReservedPrefix { prefix: String },
}

impl TemplateProblem {
    pub fn kind(&self) -> &'static str {
        match self {
            TemplateProblem::BadName { .. } => "bad_name",
            TemplateProblem::BadVersion => "bad_version",
            TemplateProblem::TooLong { .. } => "too_long",
            TemplateProblem::PathTooLong { .. } => "path_too_long",
            TemplateProblem::BadPath { .. } => "bad_path",
            TemplateProblem::PathNotSingular { .. } => "path_not_singular",
            TemplateProblem::PathNotAllowed { .. } => "path_not_allowed",
            TemplateProblem::UnknownCode { .. } => "unknown_code",
            TemplateProblem::UnitMismatch(_) => "unit_mismatch",
            TemplateProblem::MissingUnit { .. } => "missing_unit",
            TemplateProblem::ConflictingUnits => "conflicting_units",
            TemplateProblem::UnitMapWithoutPath => "unit_map_without_path",
            TemplateProblem::EmptyUnitMap => "empty_unit_map",
            TemplateProblem::NotForCodedValue { .. } => "not_for_coded_value",
            TemplateProblem::BadScale { .. } => "bad_scale",
            TemplateProblem::BadOffset { .. } => "bad_offset",
            TemplateProblem::DuplicateRule { .. } => "duplicate_rule",
            TemplateProblem::TooMany { .. } => "too_many",
            TemplateProblem::Empty => "empty",
            TemplateProblem::BadMatchRule => "bad_match_rule",
            TemplateProblem::BadMatchValue { .. } => "bad_match_value",
            TemplateProblem::BadPrefix { .. } => "bad_prefix",
            TemplateProblem::ReservedPrefix { .. } => "reserved_prefix",
        }
    }
}

fn at_field(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

fn at_position(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(" (line {line}, column {column})"),
        (Some(line), None) => format!(" (line {line})"),
        _ => String::new(),
    }
}

fn missing(field: &str, sent_null: bool) -> String {
    let state = if sent_null {
        "null"
    } else {
        "not in the message"
    };
    let why = match field {
        "value" => "; a reading without a value is never taken as normal",
        "unit" => "; a value is never read without its unit",
        "time" => "; a value is never given another time than its own",
        _ => "",
    };
    format!("{field} is {state}{why}")
}

fn sent_as(sent: &Option<Quantity>) -> String {
    sent.as_ref().map_or_else(String::new, |q| {
        format!(" (sent as {} {})", q.value, q.unit)
    })
}

#[cfg(test)]
mod tests;
