//! # HL7 v2 ORU^R01 from bedside monitors (IHE PCD-01), and its acknowledgement
//!
//! What a patient monitor or its gateway sends over MLLP ([`crate::mllp`]) and what Vigil answers.
//! This comment is the public contract; the tests beside it pin each clause against the samples in
//! `shared/reference/hl7/` (copied to `crates/vigil-codecs/tests/data/hl7/`). Sources: HL7 v2.6
//! chapter 2 (control: MSH, ACK, escapes, §2.9 acknowledgement rules), chapter 2A (data types NM,
//! DTM, CWE, CX, EI, HD), chapter 7 (ORU^R01, OBR, OBX); IHE PCD Technical Framework vol. 2
//! (PCD-01 "Communicate PCD Data") as summarised in `shared/reference/hl7v2.md` (where that file
//! says a point is recalled, so does this one).
//!
//! ## Using it
//! ```text
//! frame (MllpCodec) ──► decode_oru(bytes, now, &limits)
//!                         ├─ Ok(msg):  store msg.equipment, then build_ack(&msg.ack, Accept, None, …)
//!                         │            (or Error + AckError::internal() if the store failed)
//!                         └─ Err(e):   store nothing, build_nack(bytes, &e, …)
//! ```
//! [`decode_oru`] is pure and never panics. Nothing of a refused message may be stored. The ACK
//! goes out only after the store has committed (house rule "acknowledge after commit").
//!
//! The HL7 encoding is parsed here, not with the `hl7-parser` crate: see `wire.rs` for why.
//!
//! ## The message
//! At most [`Hl7Limits::max_bytes`] bytes, starting with `MSH`. Segments end with a carriage
//! return (0x0D), the last one too; a line feed anywhere is refused (`\n` and `\r\n` line endings
//! are not HL7 segment terminators, and the reference allows no leniency). The text is UTF-8
//! (MSH-18 empty, `ASCII` or `UNICODE UTF-8`; other character sets are refused).
//!
//! **Delimiters** come from MSH-1 and MSH-2 (exactly four encoding characters for v2.5/v2.6); any
//! printable, non-alphanumeric, pairwise different characters are accepted, not only `|^~\&`.
//! **Escapes** (v2.6 §2.7) in the values Vigil reads: `\F\ \S\ \T\ \R\ \E\` and `\Xhh…\` (UTF-8
//! bytes) are decoded; highlighting, formatting, character-set and `\Z…\` sequences, unterminated
//! escapes and control characters are refused (a data type error). Values Vigil does not read are
//! not inspected beyond the whole message being UTF-8 (chapter 2's rules for receiving: ignore
//! what is not expected).
//!
//! **Header checks**, in the order of v2.6 §2.9.2 (original mode), each refused with `AR` because
//! resending unchanged can never succeed:
//!
//! | field | accepted | refused with (ERR-3) |
//! |---|---|---|
//! | MSH-9 | `ORU^R01`, `ORU^R01^ORU_R01` | 200 (type or structure), 201 (event) |
//! | MSH-12 | `2.5`, `2.5.1`, `2.6` (v2.5 without MSH-21 is accepted: reference sample 4) | 203 |
//! | MSH-11 | `P` (a training or debugging message must not become a patient's vital sign) | 202 |
//! | MSH-10 | present (echoed in MSA-2) | 101 |
//! | MSH-18 | empty, `ASCII`, `UNICODE UTF-8` | 103 |
//!
//! **Segment order** follows the ORU^R01 grammar (v2.6 §7.3.1): `MSH [SFT…] [PID [PD1] [NTE…]
//! [NK1…] [PV1 [PV2]]] { [ORC] OBR [NTE…] [TQ1 [TQ2…]…] [CTD] {OBX [NTE…]} [FT1…] [CTI…]
//! [SPM [OBX…]…] } [DSC]`. An OBX outside an OBR group (reference `bad_03`), a second MSH, a
//! second patient (Vigil takes one patient per message), or a message with no OBR is a segment
//! sequence error (100, `AE`). Segments whose ID the grammar does not name (Z-segments, newer
//! segments) are ignored.
//!
//! ## An OBX row
//! OBX-3 must be coded `<32-bit MDC code>^<REFID>^MDC` (or carry that triplet as its alternate
//! identifier, components 4–6). The numeric code decides, never the REFID text. Then:
//!
//! * **Containment rows** (MDS/VMD/CHAN, partition 1, e.g. `69965^MDC_DEV_MON_…`) carry no value;
//!   they are counted in [`OruMessage::containment_rows`] and their OBX-18 is inherited by the
//!   metrics below them (OBX-4 `MDS.VMD.CHAN.METRIC`; *PCD TF, recalled*).
//! * **Metrics Vigil knows** (the verified codes of reference §2: heart rate 147842, pulse rates
//!   149530 and 149546, SpO₂ 150456, NIBP 150021/150022/150023, respiration 151562, temperature
//!   150364 and 150344, weight 188736, glucose 160184) are decoded as below.
//! * **Anything else** (other MDC codes including unverified ones, the compound NIBP 150020, rows
//!   not MDC-coded, observations of a specimen) is skipped and listed in
//!   [`OruMessage::skipped`]; the message is still accepted. A monitor sends far more than Vigil
//!   records, and refusing those rows would refuse every real message.
//!
//! A known metric row:
//!
//! | field | rule |
//! |---|---|
//! | OBX-2 | `NM` (may be empty on a row with status `X`) |
//! | OBX-5 | NM (v2.6 chapter 2A): optional sign, digits, at most one `.`; no exponent, no thousands separator, no decimal comma (`38,9` is refused, never read as 38.9 or 389); one value, no repetition |
//! | OBX-6 | `<MDC unit code>^<REFID>^MDC` from reference §6 (or a `UCUM`-coded unit); converted exactly to the canonical unit with [`vigil_model::units::to_canonical`] |
//! | OBX-11 | status, HL7 table 0085 → FHIR (v2-to-FHIR map): `F` final, `R` preliminary (device data not verified by a clinician), `P`/`S` preliminary, `C` corrected, `X` no value (below). `D`, `W`, `U`, `I`, `N`, `O` (retractions, status changes, no result yet) are refused (103) |
//! | OBX-14 | the time of the value; empty → OBR-7 of its OBR group (reference §1). DTM with at least minute precision and a UTC offset (reference: "DTM with offset"); without an offset only if [`Hl7Limits::assume_offset`] is set. Not more than [`Hl7Limits::max_future_skew`] after receipt, not before 1970 |
//! | OBX-18 | the equipment (device): first repetition's EI.1, in any of the three forms the reference lists (`<EUI-64>^^<EUI-64>^EUI-64`, `<id>^<vendor>`, `<EUI-64>^EUI-64`); if empty, the OBX-18 of its containment ancestor; else MSH-3's universal ID when it is an EUI-64; else refused (101) |
//!
//! Status **`X`** ("result cannot be obtained", e.g. SpO₂ probe off) with an empty OBX-5 becomes
//! an [`Hl7Item::Absent`]: "no value", never 0. `X` with a value, or any other status without a
//! value (e.g. `F` with an empty OBX-5), is refused.
//!
//! The converted value must lie within the measurand's plausible range; outside it, it is a
//! device fault.
//!
//! **One bad row refuses the whole message** (`AE`, nothing stored): the reference's policy
//! (`bad_02`, "as here"). The error names the first problem in message order, with its location
//! (ERL: segment ^ sequence of that segment ID in the message ^ field ^ repetition ^ component).
//!
//! **Several rows for one measurand** at one time from one device: metrics ranked by the table in
//! `mdc.rs` (ECG heart rate before oximeter pulse rate before NIBP pulse rate; body temperature
//! before generic temperature; otherwise the first sent) — the kept one is recorded and the other
//! listed in [`OruMessage::skipped`]; a value beats an "absent". (The store keeps one value per
//! device, code and time.)
//!
//! ## What the caller gets
//! [`OruMessage`]: the header (MSH-10, MSH-3/4/5/6, version, profile), PID-3 identifiers (every
//! repetition: CX.1, CX.4 namespace, CX.5), every recorded row with its MDC code
//! ([`OruMessage::items`]), the same grouped per equipment with blood-pressure parts at one time
//! assembled into one panel ([`OruMessage::equipment`], via [`vigil_model::assemble_readings`]),
//! and the [`AckContext`] to answer with.
//!
//! ## Errors
//! [`Hl7Error`]: `kind()` is a stable label for logs and metrics; `Display` names positions,
//! codes and limits (and quotes a refused header code such as the version) but never a value, a
//! name or an identifier from the message (house rule 7);
//! [`Hl7Error::ack_code`] and [`Hl7Error::ack_error`] give MSA-1 and the ERR segment.
//!
//! ## The acknowledgement ([`build_ack`])
//! v2.6 §2.9 and reference §4: MSH with sender and receiver swapped, the original encoding
//! characters and version (the hub's 2.6 when the sender's version is unsupported, reference
//! `bad_01`), MSH-9 `ACK^<event>^ACK`, a new control ID; `MSA|<code>|<original MSH-10>`; and for
//! an error `ERR||<location>|<code>^<text>^HL70357|E`. MSH-7 is written in the UTC offset of the
//! original MSH-7. [`AckContext::best_effort`] reads whatever of an MSH is readable, for a message
//! that could not be decoded.

mod ack;
mod dtm;
mod mdc;
mod oru;
mod wire;

pub use ack::{AckCode, AckCondition, AckContext, AckError, Severity, build_ack, build_nack};
pub use dtm::TimeProblem;
pub use oru::{
    AbsentValue, EquipmentId, EquipmentReadings, EquipmentSource, HierarchicDesignator, Hl7Item,
    Hl7Version, MessageHeader, ObxPosition, OruMessage, PatientIdentifier, SkipReason, SkippedObx,
    decode_oru,
};
pub use wire::{EncodingCharacters, EncodingProblem, EscapeProblem};

use std::fmt;

use vigil_model::Measurand;

/// Bounds (house rule 1) and the one time policy of [`decode_oru`]. A message over a bound is
/// refused whole with `AR` (resending it cannot help).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hl7Limits {
    /// Largest message, in bytes, checked first. Default 256 KiB (a PCD-01 message with a full
    /// monitor's metrics is a few KiB). Use the same bound for [`crate::mllp::MllpCodec`].
    pub max_bytes: usize,
    /// Most segments. Default 2000.
    pub max_segments: usize,
    /// Most OBX segments. Default 1000.
    pub max_observations: usize,
    /// Most repetitions of a repeating field Vigil reads (PID-3). Default 32.
    pub max_repetitions: usize,
    /// Longest identifier Vigil keeps (MSH-10, MSH-3/4/5/6 components, PID-3 CX.1, OBX-18 EI.1 …),
    /// in bytes after escapes are decoded. Default 199 (the ST length of v2.6).
    pub max_identifier_bytes: usize,
    /// How far after the time of receipt an observation time may lie (device clock skew).
    /// Default 5 minutes.
    pub max_future_skew: chrono::Duration,
    /// The UTC offset to assume for an OBX-14/OBR-7 written without one. Default `None`: such a
    /// time is refused, because the instant it names is unknown. Set it only for a sender known
    /// to write local times in a fixed offset.
    pub assume_offset: Option<chrono::FixedOffset>,
}

impl Default for Hl7Limits {
    fn default() -> Self {
        Hl7Limits {
            max_bytes: 256 * 1024,
            max_segments: 2000,
            max_observations: 1000,
            max_repetitions: 32,
            max_identifier_bytes: 199,
            max_future_skew: chrono::Duration::minutes(5),
            assume_offset: None,
        }
    }
}

/// HL7 table 0357 (message error condition codes), the ones Vigil sends in ERR-3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    SegmentSequence,
    RequiredFieldMissing,
    DataType,
    TableValueNotFound,
    UnsupportedMessageType,
    UnsupportedEventCode,
    UnsupportedProcessingId,
    UnsupportedVersionId,
    /// The message names something the receiver does not know (a sender, a patient).
    UnknownKeyIdentifier,
    ApplicationInternalError,
}

impl ErrorCode {
    pub fn code(self) -> u16 {
        match self {
            ErrorCode::SegmentSequence => 100,
            ErrorCode::RequiredFieldMissing => 101,
            ErrorCode::DataType => 102,
            ErrorCode::TableValueNotFound => 103,
            ErrorCode::UnsupportedMessageType => 200,
            ErrorCode::UnsupportedEventCode => 201,
            ErrorCode::UnsupportedProcessingId => 202,
            ErrorCode::UnsupportedVersionId => 203,
            ErrorCode::UnknownKeyIdentifier => 204,
            ErrorCode::ApplicationInternalError => 207,
        }
    }
    /// The table's text, as ERR-3.2 carries it.
    pub fn text(self) -> &'static str {
        match self {
            ErrorCode::SegmentSequence => "Segment sequence error",
            ErrorCode::RequiredFieldMissing => "Required field missing",
            ErrorCode::DataType => "Data type error",
            ErrorCode::TableValueNotFound => "Table value not found",
            ErrorCode::UnsupportedMessageType => "Unsupported message type",
            ErrorCode::UnsupportedEventCode => "Unsupported event code",
            ErrorCode::UnsupportedProcessingId => "Unsupported processing id",
            ErrorCode::UnsupportedVersionId => "Unsupported version id",
            ErrorCode::UnknownKeyIdentifier => "Unknown key identifier",
            ErrorCode::ApplicationInternalError => "Application internal error",
        }
    }
}

/// Where an error is (ERR-2, data type ERL, v2.6 chapter 2A): the segment ID, which occurrence of that
/// segment ID in the message (1-based), and optionally field, repetition and component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorLocation {
    pub segment: &'static str,
    pub sequence: usize,
    pub field: Option<usize>,
    pub repetition: Option<usize>,
    pub component: Option<usize>,
}

impl ErrorLocation {
    pub fn segment(segment: &'static str, sequence: usize) -> Self {
        ErrorLocation {
            segment,
            sequence,
            field: None,
            repetition: None,
            component: None,
        }
    }
    pub fn field(self, field: usize) -> Self {
        ErrorLocation {
            field: Some(field),
            ..self
        }
    }
    pub fn repetition(self, repetition: usize) -> Self {
        ErrorLocation {
            repetition: Some(repetition),
            ..self
        }
    }
    pub fn component(self, component: usize) -> Self {
        ErrorLocation {
            component: Some(component),
            ..self
        }
    }
    /// The ERL written with the given component separator, e.g. `OBX^10^5^1`.
    pub fn to_erl(&self, separator: char) -> String {
        let mut out = format!("{}{separator}{}", self.segment, self.sequence);
        for part in [self.field, self.repetition, self.component] {
            match part {
                Some(n) => out.push_str(&format!("{separator}{n}")),
                None => break,
            }
        }
        out
    }
}

impl fmt::Display for ErrorLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_erl('^'))
    }
}

/// Why a segment is out of place (ORU^R01 grammar, v2.6 §7.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SequenceProblem {
    #[error("{segment} is not allowed after {after} in ORU^R01")]
    Unexpected {
        segment: &'static str,
        after: &'static str,
    },
    #[error("a message has one MSH, at its start")]
    RepeatedMsh,
    #[error("a second patient (PID) in one message; Vigil takes one patient per message")]
    SecondPatient,
    #[error("DSC must be the last segment")]
    AfterDsc,
    #[error("ORU^R01 needs at least one OBR (ORDER_OBSERVATION group)")]
    NoObservationRequest,
}

/// Why a value does not fit its data type. Never carries the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DataTypeProblem {
    #[error(
        "not an NM number: optional sign, digits and at most one '.' (no exponent, thousands \
         separator or decimal comma)"
    )]
    NotNumeric,
    #[error("OBX-5 repeats; a numeric result is one value")]
    RepeatedValue,
    #[error("OBX-2 must be NM for this measurand")]
    NotNumericType,
    #[error("status X (result cannot be obtained) was sent with a value")]
    ValueWithStatusX,
    #[error("an MDC code must be a decimal 32-bit number")]
    BadMdcCode,
    #[error("{0}")]
    Escape(EscapeProblem),
    #[error("a control character is not allowed in this value")]
    ControlCharacter,
    #[error("{0}")]
    Time(TimeProblem),
}

impl DataTypeProblem {
    fn kind(&self) -> &'static str {
        match self {
            DataTypeProblem::NotNumeric => "not_numeric",
            DataTypeProblem::RepeatedValue => "repeated_value",
            DataTypeProblem::NotNumericType => "not_numeric_type",
            DataTypeProblem::ValueWithStatusX => "value_with_status_x",
            DataTypeProblem::BadMdcCode => "bad_mdc_code",
            DataTypeProblem::Escape(_) => "bad_escape",
            DataTypeProblem::ControlCharacter => "control_character",
            DataTypeProblem::Time(_) => "bad_time",
        }
    }
}

/// Why a coded value was refused (Vigil's tables: HL7 table 0085, reference §6 units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TableProblem {
    #[error("OBX-11 is not a result status of HL7 table 0085")]
    UnknownStatus,
    #[error(
        "OBX-11 status {0} (deletion, wrong result, status change or no result) cannot be \
         recorded as a measurement"
    )]
    UnsupportedStatus(char),
    #[error("the MDC unit code {0} is not one Vigil converts (reference §6)")]
    UnknownUnit(u32),
    #[error("OBX-6 must be coded in MDC or UCUM")]
    UnitNotCoded,
    #[error("the unit does not fit {}", .0.short_name())]
    UnitDoesNotFit(Measurand),
}

/// Why a whole message was refused; nothing of it may be stored.
///
/// `Display` is for logs and the sender: it names positions (ERL), codes and limits, and quotes
/// only the header codes it refuses (message type, event, structure, processing ID, version,
/// character set: at most 16 printable ASCII characters), never a value, name or identifier from
/// the message. `kind` is a stable label for metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Hl7Error {
    #[error("message is {size} bytes, more than the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("not an HL7 v2 message: it does not start with MSH")]
    NotHl7,
    #[error("MSH-1/MSH-2 encoding characters: {0}")]
    BadEncodingCharacters(EncodingProblem),
    #[error(
        "a line feed (0x0A) at byte {offset}: HL7 segments end with a carriage return (0x0D) \
         only"
    )]
    LineFeed { offset: usize },
    #[error("message is not UTF-8: invalid byte at offset {offset}")]
    NotUtf8 { offset: usize },
    #[error("the last segment does not end with a carriage return (0x0D); the message may be cut")]
    UnterminatedSegment,
    #[error(
        "segment {index} (counting from 1) does not start with a segment ID (three upper-case \
         letters or digits, the first a letter) and a field separator"
    )]
    BadSegmentId { index: usize },
    #[error("message has more than the limit of {max} segments")]
    TooManySegments { max: usize },
    #[error("message has more than the limit of {max} OBX segments")]
    TooManyObservations { max: usize },
    #[error("{location} repeats more than the limit of {max} times")]
    TooManyRepetitions { location: ErrorLocation, max: usize },
    #[error("{location} is longer than the limit of {max} bytes")]
    ValueTooLong { location: ErrorLocation, max: usize },
    #[error("{location} is required but empty")]
    MissingField { location: ErrorLocation },
    #[error("MSH-9 message type {found} is not ORU (Vigil accepts ORU^R01)")]
    UnsupportedMessageType { found: String },
    #[error("MSH-9 trigger event {found} is not R01 (Vigil accepts ORU^R01)")]
    UnsupportedEvent { found: String },
    #[error("MSH-9 message structure {found} is not ORU_R01")]
    UnsupportedStructure { found: String },
    #[error("MSH-11 processing ID {found} is not P (production)")]
    UnsupportedProcessingId { found: String },
    #[error("MSH-12 version {found} is not one Vigil implements (2.5, 2.5.1, 2.6)")]
    UnsupportedVersion { found: String },
    #[error("MSH-18 character set {found} is not ASCII or UNICODE UTF-8")]
    UnsupportedCharacterSet { found: String },
    #[error("{location}: segment sequence error: {problem}")]
    SegmentSequence {
        location: ErrorLocation,
        problem: SequenceProblem,
    },
    #[error("{location}: {problem}")]
    DataType {
        location: ErrorLocation,
        problem: DataTypeProblem,
    },
    #[error("{location}: {problem}")]
    TableValue {
        location: ErrorLocation,
        problem: TableProblem,
    },
    #[error(
        "{location}: the {} value is outside the plausible range {} to {} {} (a device fault)",
        .measurand.short_name(), .measurand.plausible().min, .measurand.plausible().max,
        .measurand.canonical_unit()
    )]
    ImplausibleValue {
        location: ErrorLocation,
        measurand: Measurand,
    },
    #[error(
        "{location}: the observation time is more than {} s after the time of receipt",
        .max_skew.num_seconds()
    )]
    FutureTime {
        location: ErrorLocation,
        max_skew: chrono::Duration,
    },
    #[error(
        "{location}: no equipment identifier (OBX-18, the containment row's OBX-18, or an EUI-64 \
         in MSH-3)"
    )]
    NoEquipment { location: ErrorLocation },
    #[error("{location}: no observation time (OBX-14, or OBR-7 of its OBR)")]
    NoObservationTime { location: ErrorLocation },
}

impl Hl7Error {
    /// A stable snake_case label for logs and metrics (never carries data from the message).
    pub fn kind(&self) -> &'static str {
        match self {
            Hl7Error::TooLarge { .. } => "too_large",
            Hl7Error::NotHl7 => "not_hl7",
            Hl7Error::BadEncodingCharacters(_) => "bad_encoding_characters",
            Hl7Error::LineFeed { .. } => "line_feed",
            Hl7Error::NotUtf8 { .. } => "not_utf8",
            Hl7Error::UnterminatedSegment => "unterminated_segment",
            Hl7Error::BadSegmentId { .. } => "bad_segment_id",
            Hl7Error::TooManySegments { .. } => "too_many_segments",
            Hl7Error::TooManyObservations { .. } => "too_many_observations",
            Hl7Error::TooManyRepetitions { .. } => "too_many_repetitions",
            Hl7Error::ValueTooLong { .. } => "value_too_long",
            Hl7Error::MissingField { .. } => "missing_field",
            Hl7Error::UnsupportedMessageType { .. } => "unsupported_message_type",
            Hl7Error::UnsupportedEvent { .. } => "unsupported_event",
            Hl7Error::UnsupportedStructure { .. } => "unsupported_structure",
            Hl7Error::UnsupportedProcessingId { .. } => "unsupported_processing_id",
            Hl7Error::UnsupportedVersion { .. } => "unsupported_version",
            Hl7Error::UnsupportedCharacterSet { .. } => "unsupported_character_set",
            Hl7Error::SegmentSequence { .. } => "segment_sequence",
            Hl7Error::DataType { problem, .. } => problem.kind(),
            Hl7Error::TableValue { problem, .. } => match problem {
                TableProblem::UnknownStatus => "unknown_status",
                TableProblem::UnsupportedStatus(_) => "unsupported_status",
                TableProblem::UnknownUnit(_) => "unknown_unit",
                TableProblem::UnitNotCoded => "unit_not_coded",
                TableProblem::UnitDoesNotFit(_) => "unit_does_not_fit",
            },
            Hl7Error::ImplausibleValue { .. } => "implausible_value",
            Hl7Error::FutureTime { .. } => "future_time",
            Hl7Error::NoEquipment { .. } => "no_equipment",
            Hl7Error::NoObservationTime { .. } => "no_observation_time",
        }
    }

    /// ERR-3: the HL7 table 0357 code. Limits are an application's own, so they are 207.
    /// Implausible values and future times have no code of their own; they are 102, the value
    /// not being a valid one of its kind.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Hl7Error::TooLarge { .. }
            | Hl7Error::TooManySegments { .. }
            | Hl7Error::TooManyObservations { .. }
            | Hl7Error::TooManyRepetitions { .. }
            | Hl7Error::ValueTooLong { .. } => ErrorCode::ApplicationInternalError,
            Hl7Error::NotHl7
            | Hl7Error::LineFeed { .. }
            | Hl7Error::UnterminatedSegment
            | Hl7Error::BadSegmentId { .. }
            | Hl7Error::SegmentSequence { .. } => ErrorCode::SegmentSequence,
            Hl7Error::BadEncodingCharacters(_)
            | Hl7Error::NotUtf8 { .. }
            | Hl7Error::DataType { .. }
            | Hl7Error::ImplausibleValue { .. }
            | Hl7Error::FutureTime { .. } => ErrorCode::DataType,
            Hl7Error::MissingField { .. }
            | Hl7Error::NoEquipment { .. }
            | Hl7Error::NoObservationTime { .. } => ErrorCode::RequiredFieldMissing,
            Hl7Error::UnsupportedMessageType { .. } | Hl7Error::UnsupportedStructure { .. } => {
                ErrorCode::UnsupportedMessageType
            }
            Hl7Error::UnsupportedEvent { .. } => ErrorCode::UnsupportedEventCode,
            Hl7Error::UnsupportedProcessingId { .. } => ErrorCode::UnsupportedProcessingId,
            Hl7Error::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersionId,
            Hl7Error::UnsupportedCharacterSet { .. } | Hl7Error::TableValue { .. } => {
                ErrorCode::TableValueNotFound
            }
        }
    }

    /// ERR-2.
    pub fn location(&self) -> Option<ErrorLocation> {
        let msh = |field| Some(ErrorLocation::segment("MSH", 1).field(field));
        match self {
            Hl7Error::BadEncodingCharacters(_) => msh(2),
            Hl7Error::UnsupportedMessageType { .. }
            | Hl7Error::UnsupportedEvent { .. }
            | Hl7Error::UnsupportedStructure { .. } => msh(9),
            Hl7Error::UnsupportedProcessingId { .. } => msh(11),
            Hl7Error::UnsupportedVersion { .. } => msh(12),
            Hl7Error::UnsupportedCharacterSet { .. } => msh(18),
            Hl7Error::TooManyRepetitions { location, .. }
            | Hl7Error::ValueTooLong { location, .. }
            | Hl7Error::MissingField { location }
            | Hl7Error::SegmentSequence { location, .. }
            | Hl7Error::DataType { location, .. }
            | Hl7Error::TableValue { location, .. }
            | Hl7Error::ImplausibleValue { location, .. }
            | Hl7Error::FutureTime { location, .. }
            | Hl7Error::NoEquipment { location }
            | Hl7Error::NoObservationTime { location } => Some(*location),
            Hl7Error::TooLarge { .. }
            | Hl7Error::NotHl7
            | Hl7Error::LineFeed { .. }
            | Hl7Error::NotUtf8 { .. }
            | Hl7Error::UnterminatedSegment
            | Hl7Error::BadSegmentId { .. }
            | Hl7Error::TooManySegments { .. }
            | Hl7Error::TooManyObservations { .. } => None,
        }
    }

    /// MSA-1 (reference §5, original-mode logic): `AR` when the header is unacceptable, the
    /// message is not HL7 or is over a limit (resending it unchanged can never succeed; a GE
    /// monitor does not retransmit after AR); `AE` when its content or structure is wrong.
    pub fn ack_code(&self) -> AckCode {
        match self {
            Hl7Error::TooLarge { .. }
            | Hl7Error::NotHl7
            | Hl7Error::BadEncodingCharacters(_)
            | Hl7Error::TooManySegments { .. }
            | Hl7Error::TooManyObservations { .. }
            | Hl7Error::TooManyRepetitions { .. }
            | Hl7Error::ValueTooLong { .. }
            | Hl7Error::UnsupportedMessageType { .. }
            | Hl7Error::UnsupportedEvent { .. }
            | Hl7Error::UnsupportedStructure { .. }
            | Hl7Error::UnsupportedProcessingId { .. }
            | Hl7Error::UnsupportedVersion { .. }
            | Hl7Error::UnsupportedCharacterSet { .. } => AckCode::Reject,
            Hl7Error::MissingField { location } if location.segment == "MSH" => AckCode::Reject,
            Hl7Error::LineFeed { .. }
            | Hl7Error::NotUtf8 { .. }
            | Hl7Error::UnterminatedSegment
            | Hl7Error::BadSegmentId { .. }
            | Hl7Error::MissingField { .. }
            | Hl7Error::SegmentSequence { .. }
            | Hl7Error::DataType { .. }
            | Hl7Error::TableValue { .. }
            | Hl7Error::ImplausibleValue { .. }
            | Hl7Error::FutureTime { .. }
            | Hl7Error::NoEquipment { .. }
            | Hl7Error::NoObservationTime { .. } => AckCode::Error,
        }
    }

    /// The ERR segment's content for this error (severity E).
    pub fn ack_error(&self) -> AckError {
        AckError {
            location: self.location(),
            code: self.error_code(),
            severity: Severity::Error,
        }
    }
}

/// A header value quoted in an error: printable ASCII only, at most 16 characters. Header values
/// (types, versions) are not patient data, but a hostile sender must not grow or corrupt a log.
pub(crate) fn echo_header(raw: &str) -> String {
    const MAX: usize = 16;
    let clean: String = raw
        .chars()
        .take(MAX)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect();
    if raw.chars().count() > MAX {
        format!("{clean}…")
    } else if clean.is_empty() {
        "(empty)".to_owned()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests;
