//! Decoding ORU^R01 (v2.6 chapter 7, §7.3.1) as IHE PCD-01 uses it. The rules are in the module
//! documentation of [`crate::hl7`].

use vigil_model::catalogue::MdcCode;
use vigil_model::{
    Instant, Measurand, MeasuredValue, Measurement, ObservationStatus, QualityFlags, Reading,
    assemble_readings, units,
};

use super::ack::AckContext;
use super::dtm::{self, Dtm};
use super::mdc::{self, Metric};
use super::wire::{
    EncodingCharacters, SEGMENT_TERMINATOR, Segment, component, read_encoding_characters,
    repetitions, subcomponent, unescape,
};
use super::{
    DataTypeProblem, ErrorLocation, Hl7Error, Hl7Limits, SequenceProblem, TableProblem, echo_header,
};

/// The HL7 versions Vigil implements (reference §5: 2.5, 2.5.1, 2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hl7Version {
    V2_5,
    V2_5_1,
    V2_6,
}

impl Hl7Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Hl7Version::V2_5 => "2.5",
            Hl7Version::V2_5_1 => "2.5.1",
            Hl7Version::V2_6 => "2.6",
        }
    }
    pub(crate) fn parse(raw: &str) -> Option<Self> {
        match raw {
            "2.5" => Some(Hl7Version::V2_5),
            "2.5.1" => Some(Hl7Version::V2_5_1),
            "2.6" => Some(Hl7Version::V2_6),
            _ => None,
        }
    }
}

/// An HD (hierarchic designator, v2.6 chapter 2A), escapes decoded; empty components are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct HierarchicDesignator {
    pub namespace_id: Option<String>,
    pub universal_id: Option<String>,
    pub universal_id_type: Option<String>,
}

/// What MSH says about the message.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageHeader {
    /// MSH-10, the sender's message control ID (idempotency key: a retransmission repeats it).
    pub control_id: String,
    /// MSH-3, e.g. `MONITOR_GW^0012340000000001^EUI-64`.
    pub sending_application: HierarchicDesignator,
    /// MSH-4.
    pub sending_facility: HierarchicDesignator,
    /// MSH-5.
    pub receiving_application: HierarchicDesignator,
    /// MSH-6.
    pub receiving_facility: HierarchicDesignator,
    /// MSH-7, when it names an instant (minute precision and an offset, or the assumed offset).
    pub sent_at: Option<Instant>,
    /// MSH-12.
    pub version: Hl7Version,
    /// MSH-21's first profile identifier, e.g. `PCD_DEC_001` (absent from legacy v2.5 senders).
    pub message_profile: Option<String>,
}

/// One PID-3 repetition (CX, extended composite ID, v2.6 chapter 2A), escapes decoded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PatientIdentifier {
    /// CX.1, e.g. the MRN.
    pub id: String,
    /// CX.4's namespace ID (HD.1), e.g. `HOSP`.
    pub assigning_authority: Option<String>,
    /// CX.5, identifier type code (HL7 table 0203), e.g. `MR`.
    pub type_code: Option<String>,
}

/// Which OBX a result came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObxPosition {
    /// Which OBX of the message, counting from 1 (the ERR-2 sequence).
    pub sequence: usize,
    /// OBX-1 as sent, when it is a number.
    pub set_id: Option<u32>,
}

/// The device a value comes from: OBX-18's EI (entity identifier, v2.6 chapter 2A), escapes decoded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EquipmentId {
    /// EI.1, e.g. the EUI-64 `0012340000000001`.
    pub id: String,
    /// EI.2 (`B40_GE` in the GE form).
    pub namespace_id: Option<String>,
    /// EI.3.
    pub universal_id: Option<String>,
    /// EI.4, e.g. `EUI-64`.
    pub universal_id_type: Option<String>,
}

/// Where a row's [`EquipmentId`] was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EquipmentSource {
    /// The row's own OBX-18.
    Obx18,
    /// The OBX-18 of the containment row (MDS, VMD or channel) above it.
    Containment,
    /// MSH-3's universal ID, an EUI-64: the sending device itself.
    SendingApplication,
}

/// One recorded OBX row.
#[derive(Debug, Clone, PartialEq)]
pub enum Hl7Item {
    /// A value, in the measurand's canonical unit.
    Value {
        obx: ObxPosition,
        mdc: MdcCode,
        equipment: EquipmentId,
        equipment_source: EquipmentSource,
        measurement: Measurement,
    },
    /// Status `X`: the device could not obtain the result (e.g. SpO₂ probe off). Not a number.
    Absent {
        obx: ObxPosition,
        mdc: MdcCode,
        measurand: Measurand,
        equipment: EquipmentId,
        equipment_source: EquipmentSource,
        effective: Instant,
    },
}

impl Hl7Item {
    pub fn obx(&self) -> ObxPosition {
        match self {
            Hl7Item::Value { obx, .. } | Hl7Item::Absent { obx, .. } => *obx,
        }
    }
    pub fn mdc(&self) -> MdcCode {
        match self {
            Hl7Item::Value { mdc, .. } | Hl7Item::Absent { mdc, .. } => *mdc,
        }
    }
    pub fn equipment(&self) -> &EquipmentId {
        match self {
            Hl7Item::Value { equipment, .. } | Hl7Item::Absent { equipment, .. } => equipment,
        }
    }
    pub fn measurand(&self) -> Measurand {
        match self {
            Hl7Item::Value { measurement, .. } => measurement.measurand,
            Hl7Item::Absent { measurand, .. } => *measurand,
        }
    }
    pub fn effective(&self) -> Instant {
        match self {
            Hl7Item::Value { measurement, .. } => measurement.effective,
            Hl7Item::Absent { effective, .. } => *effective,
        }
    }
}

/// A value the device could not obtain, as grouped in [`EquipmentReadings`].
#[derive(Debug, Clone, PartialEq)]
pub struct AbsentValue {
    pub obx: ObxPosition,
    pub mdc: MdcCode,
    pub measurand: Measurand,
    pub effective: Instant,
}

/// What one device reported in the message, ready to store under that device.
#[derive(Debug, Clone, PartialEq)]
pub struct EquipmentReadings {
    pub equipment: EquipmentId,
    /// Values in message order, blood-pressure parts at one time assembled into one panel.
    pub readings: Vec<Reading>,
    /// Results the device could not obtain (status `X`).
    pub absent: Vec<AbsentValue>,
}

/// Why an OBX row was not recorded although the message was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// An MDC code Vigil does not record (or has not verified).
    UnknownMdcCode,
    /// The compound NIBP code 150020: its parts are separate rows.
    CompoundPanel,
    /// OBX-3 has no MDC coding.
    NotMdcCoded,
    /// An OBX of a specimen (after SPM), not of the patient.
    SpecimenObservation,
    /// Another row for the same measurand, device and time was kept (module documentation).
    Superseded { by: ObxPosition },
}

impl SkipReason {
    /// A stable snake_case label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            SkipReason::UnknownMdcCode => "unknown_mdc_code",
            SkipReason::CompoundPanel => "compound_panel",
            SkipReason::NotMdcCoded => "not_mdc_coded",
            SkipReason::SpecimenObservation => "specimen_observation",
            SkipReason::Superseded { .. } => "superseded",
        }
    }
}

/// An OBX row not recorded. Carries codes and positions only, never a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SkippedObx {
    pub obx: ObxPosition,
    /// OBX-3's MDC code, when it has one.
    pub mdc_code: Option<u32>,
    pub reason: SkipReason,
}

/// An accepted message.
#[derive(Debug, Clone, PartialEq)]
pub struct OruMessage {
    pub header: MessageHeader,
    /// PID-3, every repetition with an ID, in order; empty without PID.
    pub patient_ids: Vec<PatientIdentifier>,
    /// Every recorded row, in message order.
    pub items: Vec<Hl7Item>,
    /// The same rows grouped per device, devices in order of first appearance.
    pub equipment: Vec<EquipmentReadings>,
    /// Rows not recorded, in message order.
    pub skipped: Vec<SkippedObx>,
    /// MDS/VMD/channel rows (partition 1), which structure the device and carry no value.
    pub containment_rows: usize,
    /// For the acknowledgement.
    pub ack: AckContext,
}

/// Decodes one ORU^R01 message (the MLLP payload). `received` is when Vigil received it, the
/// reference for [`Hl7Limits::max_future_skew`]. Pure; never panics; see the module documentation
/// of [`crate::hl7`] for the contract.
pub fn decode_oru(
    bytes: &[u8],
    received: Instant,
    limits: &Hl7Limits,
) -> Result<OruMessage, Hl7Error> {
    if bytes.len() > limits.max_bytes {
        return Err(Hl7Error::TooLarge {
            size: bytes.len(),
            max: limits.max_bytes,
        });
    }
    if !bytes.starts_with(b"MSH") {
        return Err(Hl7Error::NotHl7);
    }
    let (enc, msh2_len) =
        read_encoding_characters(bytes).map_err(Hl7Error::BadEncodingCharacters)?;
    if let Some(offset) = bytes.iter().position(|&b| b == b'\n') {
        return Err(Hl7Error::LineFeed { offset });
    }
    let msh_end = bytes
        .iter()
        .position(|&b| b == SEGMENT_TERMINATOR)
        .unwrap_or(bytes.len());
    let msh_text = std::str::from_utf8(&bytes[..msh_end]).map_err(|e| Hl7Error::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let cx = Context {
        enc,
        limits,
        received,
    };
    let msh = Segment::split(msh_text, &enc);
    let header = cx.header(&msh, msh2_len)?;

    let text = std::str::from_utf8(bytes).map_err(|e| Hl7Error::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let Some(body) = text.strip_suffix('\r') else {
        return Err(Hl7Error::UnterminatedSegment);
    };
    if body.bytes().filter(|&b| b == SEGMENT_TERMINATOR).count() + 1 > limits.max_segments {
        return Err(Hl7Error::TooManySegments {
            max: limits.max_segments,
        });
    }

    let msh_equipment = msh_equipment(&header.sending_application);
    let mut walk = Walk::new(&cx, msh_equipment);
    for (index, raw) in body.split('\r').enumerate().skip(1) {
        if !valid_segment_id(raw, enc.field) {
            return Err(Hl7Error::BadSegmentId { index: index + 1 });
        }
        let segment = Segment::split(raw, &enc);
        walk.segment(&segment)?;
    }
    walk.finish(header, AckContext::best_effort(bytes))
}

/// A segment starts with three upper-case letters or digits, the first a letter, then the field
/// separator or the end of the segment (v2.6 chapter 2, "segments").
fn valid_segment_id(raw: &str, field: u8) -> bool {
    let b = raw.as_bytes();
    b.len() >= 3
        && b[0].is_ascii_uppercase()
        && b[1..3]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        && (b.len() == 3 || b[3] == field)
}

/// The EUI-64 in MSH-3's universal ID, as the equipment of last resort (reference §3 samples:
/// `MONITOR_GW^0012340000000001^EUI-64`), in the PCD form of OBX-18 so both group together.
fn msh_equipment(app: &HierarchicDesignator) -> Option<EquipmentId> {
    match (&app.universal_id, &app.universal_id_type) {
        (Some(id), Some(kind)) if kind == "EUI-64" => Some(EquipmentId {
            id: id.clone(),
            namespace_id: None,
            universal_id: Some(id.clone()),
            universal_id_type: Some(kind.clone()),
        }),
        _ => None,
    }
}

/// What every part of the decoding shares.
struct Context<'l> {
    enc: EncodingCharacters,
    limits: &'l Hl7Limits,
    received: Instant,
}

impl Context<'_> {
    /// A value Vigil keeps: escapes decoded, no control characters, within the identifier bound.
    /// `None` when empty.
    fn text(&self, raw: &str, location: ErrorLocation) -> Result<Option<String>, Hl7Error> {
        let decoded = unescape(raw, &self.enc).map_err(|p| Hl7Error::DataType {
            location,
            problem: DataTypeProblem::Escape(p),
        })?;
        if decoded.chars().any(char::is_control) {
            return Err(Hl7Error::DataType {
                location,
                problem: DataTypeProblem::ControlCharacter,
            });
        }
        if decoded.len() > self.limits.max_identifier_bytes {
            return Err(Hl7Error::ValueTooLong {
                location,
                max: self.limits.max_identifier_bytes,
            });
        }
        Ok((!decoded.is_empty()).then(|| decoded.into_owned()))
    }

    fn first_repetition<'a>(&self, raw: &'a str) -> &'a str {
        repetitions(raw, &self.enc).next().unwrap_or("")
    }

    /// An HD field: namespace ID, universal ID, universal ID type.
    fn hd(&self, raw: &str, at: ErrorLocation) -> Result<HierarchicDesignator, Hl7Error> {
        let first = self.first_repetition(raw);
        let part = |n| {
            self.text(
                component(first, n, &self.enc),
                at.repetition(1).component(n),
            )
        };
        Ok(HierarchicDesignator {
            namespace_id: part(1)?,
            universal_id: part(2)?,
            universal_id_type: part(3)?,
        })
    }

    /// MSH, checked in the order of v2.6 §2.9.2: message type, version, processing ID; then the
    /// rest Vigil needs.
    fn header(&self, msh: &Segment<'_>, msh2_len: usize) -> Result<MessageHeader, Hl7Error> {
        let at = |field| ErrorLocation::segment("MSH", 1).field(field);
        let required = |field| {
            let raw = msh.field(field);
            if raw.is_empty() {
                Err(Hl7Error::MissingField {
                    location: at(field),
                })
            } else {
                Ok(self.first_repetition(raw))
            }
        };
        let message_type = required(9)?;
        let part = |n| component(message_type, n, &self.enc);
        if part(1) != "ORU" {
            return Err(Hl7Error::UnsupportedMessageType {
                found: echo_header(part(1)),
            });
        }
        if part(2) != "R01" {
            return Err(Hl7Error::UnsupportedEvent {
                found: echo_header(part(2)),
            });
        }
        if !part(3).is_empty() && part(3) != "ORU_R01" {
            return Err(Hl7Error::UnsupportedStructure {
                found: echo_header(part(3)),
            });
        }
        let version_id = component(required(12)?, 1, &self.enc);
        let version =
            Hl7Version::parse(version_id).ok_or_else(|| Hl7Error::UnsupportedVersion {
                found: echo_header(version_id),
            })?;
        let processing_id = component(required(11)?, 1, &self.enc);
        if processing_id != "P" {
            return Err(Hl7Error::UnsupportedProcessingId {
                found: echo_header(processing_id),
            });
        }
        if msh2_len != 4 {
            return Err(Hl7Error::BadEncodingCharacters(
                super::EncodingProblem::WrongCount { count: msh2_len },
            ));
        }
        let control_id = self
            .text(required(10)?, at(10))?
            .ok_or(Hl7Error::MissingField { location: at(10) })?;
        for set in repetitions(msh.field(18), &self.enc) {
            if !matches!(set, "" | "ASCII" | "UNICODE UTF-8") {
                return Err(Hl7Error::UnsupportedCharacterSet {
                    found: echo_header(set),
                });
            }
        }
        let sent = component(required(7)?, 1, &self.enc);
        let sent_at = dtm::parse(sent)
            .map_err(|p| Hl7Error::DataType {
                location: at(7).repetition(1).component(1),
                problem: DataTypeProblem::Time(p),
            })?
            .observation_instant(self.limits)
            .ok();
        let profile = component(self.first_repetition(msh.field(21)), 1, &self.enc);
        Ok(MessageHeader {
            control_id,
            sending_application: self.hd(msh.field(3), at(3))?,
            sending_facility: self.hd(msh.field(4), at(4))?,
            receiving_application: self.hd(msh.field(5), at(5))?,
            receiving_facility: self.hd(msh.field(6), at(6))?,
            sent_at,
            version,
            message_profile: self.text(profile, at(21).repetition(1).component(1))?,
        })
    }
}

/// Where the walk is in the ORU^R01 grammar (v2.6 §7.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// After MSH and SFT.
    Header,
    /// After PID, PD1, the patient's NTE, NK1.
    Patient,
    /// After PV1, PV2.
    Visit,
    /// After ORC.
    OrderControl,
    /// After OBR and its NTE, TQ1, TQ2, CTD.
    Order,
    /// After OBX and its NTE.
    Observation,
    /// After FT1, CTI.
    OrderTail,
    /// After SPM and its OBX.
    Specimen,
    /// After DSC.
    End,
}

/// The segments the ORU^R01 grammar names. Others are ignored (chapter 2's receiving rules: ignore segments not expected).
const KNOWN_SEGMENTS: [&str; 18] = [
    "MSH", "SFT", "PID", "PD1", "NTE", "NK1", "PV1", "PV2", "ORC", "OBR", "TQ1", "TQ2", "CTD",
    "OBX", "FT1", "CTI", "SPM", "DSC",
];

fn next_position(
    from: Position,
    id: &'static str,
    after: &'static str,
) -> Result<Position, SequenceProblem> {
    use Position::*;
    let order_open = matches!(from, Order | Observation | OrderTail | Specimen);
    Ok(match (from, id) {
        (End, _) => return Err(SequenceProblem::AfterDsc),
        (_, "MSH") => return Err(SequenceProblem::RepeatedMsh),
        (Header, "SFT") => Header,
        (Header, "PID") => Patient,
        (_, "PID") => return Err(SequenceProblem::SecondPatient),
        (Patient, "PD1" | "NTE" | "NK1") => Patient,
        (Patient, "PV1") => Visit,
        (Visit, "PV2") => Visit,
        (Header | Patient | Visit, "ORC") => OrderControl,
        (_, "ORC") if order_open => OrderControl,
        (Header | Patient | Visit | OrderControl, "OBR") => Order,
        (_, "OBR") if order_open => Order,
        (Order, "NTE" | "TQ1" | "TQ2" | "CTD") => Order,
        (Order | Observation, "OBX") => Observation,
        (Observation, "NTE") => Observation,
        (Order | Observation | OrderTail, "FT1" | "CTI") => OrderTail,
        (_, "SPM") if order_open => Specimen,
        (Specimen, "OBX") => Specimen,
        (_, "DSC") if order_open => End,
        _ => {
            return Err(SequenceProblem::Unexpected { segment: id, after });
        }
    })
}

/// The current OBR group.
struct OrderGroup {
    /// Which OBR of the message.
    sequence: usize,
    /// OBR-7, syntactically valid.
    time: Option<Dtm>,
    /// OBX-18 of the containment rows seen so far, by OBX-4 sub-ID.
    containment: Vec<([u32; 4], EquipmentId)>,
}

/// Walks the segments after MSH, collecting what the message yields.
struct Walk<'c, 'l> {
    cx: &'c Context<'l>,
    msh_equipment: Option<EquipmentId>,
    position: Position,
    last: &'static str,
    /// How many of each known segment so far (for ERL sequences), in `KNOWN_SEGMENTS` order.
    counts: [usize; KNOWN_SEGMENTS.len()],
    order: Option<OrderGroup>,
    patient_ids: Vec<PatientIdentifier>,
    items: Vec<Hl7Item>,
    skipped: Vec<SkippedObx>,
    containment_rows: usize,
}

impl<'c, 'l> Walk<'c, 'l> {
    fn new(cx: &'c Context<'l>, msh_equipment: Option<EquipmentId>) -> Self {
        let mut counts = [0; KNOWN_SEGMENTS.len()];
        counts[0] = 1;
        Walk {
            cx,
            msh_equipment,
            position: Position::Header,
            last: "MSH",
            counts,
            order: None,
            patient_ids: Vec::new(),
            items: Vec::new(),
            skipped: Vec::new(),
            containment_rows: 0,
        }
    }

    fn segment(&mut self, segment: &Segment<'_>) -> Result<(), Hl7Error> {
        let Some(known) = KNOWN_SEGMENTS.iter().position(|k| *k == segment.id) else {
            return Ok(());
        };
        let id = KNOWN_SEGMENTS[known];
        self.counts[known] += 1;
        let sequence = self.counts[known];
        let location = ErrorLocation::segment(id, sequence);
        let next = next_position(self.position, id, self.last)
            .map_err(|problem| Hl7Error::SegmentSequence { location, problem })?;
        let specimen = next == Position::Specimen;
        self.position = next;
        self.last = id;
        match id {
            "PID" => self.pid(segment),
            "OBR" => self.obr(segment, sequence),
            "OBX" => {
                if sequence > self.cx.limits.max_observations {
                    return Err(Hl7Error::TooManyObservations {
                        max: self.cx.limits.max_observations,
                    });
                }
                self.obx(segment, sequence, specimen)
            }
            _ => Ok(()),
        }
    }

    /// PID-3: every repetition's CX.1, CX.4 (HD namespace ID), CX.5.
    fn pid(&mut self, segment: &Segment<'_>) -> Result<(), Hl7Error> {
        let enc = &self.cx.enc;
        let raw = segment.field(3);
        let at = ErrorLocation::segment("PID", 1).field(3);
        let count = raw.bytes().filter(|&b| b == enc.repetition).count() + 1;
        if count > self.cx.limits.max_repetitions {
            return Err(Hl7Error::TooManyRepetitions {
                location: at,
                max: self.cx.limits.max_repetitions,
            });
        }
        for (i, rep) in repetitions(raw, enc).enumerate() {
            let at = at.repetition(i + 1);
            let Some(id) = self.cx.text(component(rep, 1, enc), at.component(1))? else {
                continue;
            };
            let authority = subcomponent(component(rep, 4, enc), 1, enc);
            self.patient_ids.push(PatientIdentifier {
                id,
                assigning_authority: self.cx.text(authority, at.component(4))?,
                type_code: self.cx.text(component(rep, 5, enc), at.component(5))?,
            });
        }
        Ok(())
    }

    /// A new ORDER_OBSERVATION group; OBR-7 is the time of its rows that carry none.
    fn obr(&mut self, segment: &Segment<'_>, sequence: usize) -> Result<(), Hl7Error> {
        let raw = component(self.cx.first_repetition(segment.field(7)), 1, &self.cx.enc);
        let time = if raw.is_empty() {
            None
        } else {
            Some(dtm::parse(raw).map_err(|p| Hl7Error::DataType {
                location: obr7(sequence),
                problem: DataTypeProblem::Time(p),
            })?)
        };
        self.order = Some(OrderGroup {
            sequence,
            time,
            containment: Vec::new(),
        });
        Ok(())
    }

    fn obx(
        &mut self,
        segment: &Segment<'_>,
        sequence: usize,
        specimen: bool,
    ) -> Result<(), Hl7Error> {
        let enc = &self.cx.enc;
        let at = |field| ErrorLocation::segment("OBX", sequence).field(field);
        let obx = ObxPosition {
            sequence,
            set_id: segment.field(1).parse().ok(),
        };
        let identifier = self.cx.first_repetition(segment.field(3));
        if identifier.is_empty() {
            return Err(Hl7Error::MissingField { location: at(3) });
        }
        // The MDC triplet: the identifier itself, or its alternate (CWE.4–6).
        let coded = [1, 4]
            .into_iter()
            .find(|&first| component(identifier, first + 2, enc) == "MDC");
        let code = match coded {
            None => None,
            Some(first) => Some(mdc::parse_code(component(identifier, first, enc)).ok_or(
                Hl7Error::DataType {
                    location: at(3).repetition(1).component(first),
                    problem: DataTypeProblem::BadMdcCode,
                },
            )?),
        };
        let skip = |reason| SkippedObx {
            obx,
            mdc_code: code,
            reason,
        };
        if specimen {
            self.skipped.push(skip(SkipReason::SpecimenObservation));
            return Ok(());
        }
        let Some(code) = code else {
            self.skipped.push(skip(SkipReason::NotMdcCoded));
            return Ok(());
        };
        let Some(metric) = mdc::metric_for(code) else {
            if code >> 16 == mdc::PARTITION_OBJECT {
                return self.containment_row(segment, sequence);
            }
            let reason = if code == mdc::COMPOUND_NIBP {
                SkipReason::CompoundPanel
            } else {
                SkipReason::UnknownMdcCode
            };
            self.skipped.push(skip(reason));
            return Ok(());
        };
        let item = self.metric_row(segment, sequence, obx, metric)?;
        self.keep(item, metric.rank);
        Ok(())
    }

    /// An MDS, VMD or channel row: remembered for the equipment of the rows it contains.
    fn containment_row(&mut self, segment: &Segment<'_>, sequence: usize) -> Result<(), Hl7Error> {
        self.containment_rows += 1;
        let equipment = self.own_equipment(segment, sequence)?;
        if let (Some(equipment), Some(sub_id), Some(order)) = (
            equipment,
            containment_id(segment.field(4)),
            self.order.as_mut(),
        ) {
            order.containment.push((sub_id, equipment));
        }
        Ok(())
    }

    /// OBX-18's first repetition, when its EI.1 is given.
    fn own_equipment(
        &self,
        segment: &Segment<'_>,
        sequence: usize,
    ) -> Result<Option<EquipmentId>, Hl7Error> {
        let enc = &self.cx.enc;
        let first = self.cx.first_repetition(segment.field(18));
        let at = |n| {
            ErrorLocation::segment("OBX", sequence)
                .field(18)
                .repetition(1)
                .component(n)
        };
        let part = |n| self.cx.text(component(first, n, enc), at(n));
        let Some(id) = part(1)? else {
            return Ok(None);
        };
        Ok(Some(EquipmentId {
            id,
            namespace_id: part(2)?,
            universal_id: part(3)?,
            universal_id_type: part(4)?,
        }))
    }

    fn equipment(
        &self,
        segment: &Segment<'_>,
        sequence: usize,
    ) -> Result<(EquipmentId, EquipmentSource), Hl7Error> {
        if let Some(own) = self.own_equipment(segment, sequence)? {
            return Ok((own, EquipmentSource::Obx18));
        }
        let inherited = containment_id(segment.field(4)).and_then(|[m, v, c, x]| {
            let ancestors = [
                (x != 0, [m, v, c, 0]),
                (c != 0, [m, v, 0, 0]),
                (v != 0, [m, 0, 0, 0]),
            ];
            let order = self.order.as_ref()?;
            ancestors
                .into_iter()
                .filter(|(applies, _)| *applies)
                .find_map(|(_, key)| {
                    order
                        .containment
                        .iter()
                        .rev()
                        .find(|(id, _)| *id == key)
                        .map(|(_, e)| e.clone())
                })
        });
        if let Some(equipment) = inherited {
            return Ok((equipment, EquipmentSource::Containment));
        }
        match &self.msh_equipment {
            Some(equipment) => Ok((equipment.clone(), EquipmentSource::SendingApplication)),
            None => Err(Hl7Error::NoEquipment {
                location: ErrorLocation::segment("OBX", sequence).field(18),
            }),
        }
    }

    /// A row of a metric Vigil records: status, value and unit, time, equipment.
    fn metric_row(
        &self,
        segment: &Segment<'_>,
        sequence: usize,
        obx: ObxPosition,
        metric: &Metric,
    ) -> Result<Hl7Item, Hl7Error> {
        let enc = &self.cx.enc;
        let at = |field| ErrorLocation::segment("OBX", sequence).field(field);
        let measurand = metric.measurand;
        let status = match segment.field(11) {
            "" => return Err(Hl7Error::MissingField { location: at(11) }),
            raw => status(raw).map_err(|problem| Hl7Error::TableValue {
                location: at(11).repetition(1),
                problem,
            })?,
        };
        let value_type = segment.field(2);
        let raw_value = segment.field(5);
        if let Some(extra) = repetitions(raw_value, enc).nth(1).map(|_| 2) {
            return Err(Hl7Error::DataType {
                location: at(5).repetition(extra),
                problem: DataTypeProblem::RepeatedValue,
            });
        }
        if !value_type.is_empty() && value_type != "NM" {
            return Err(Hl7Error::DataType {
                location: at(2).repetition(1),
                problem: DataTypeProblem::NotNumericType,
            });
        }
        let value = match (status, raw_value.is_empty()) {
            (None, true) => None,
            (None, false) => {
                return Err(Hl7Error::DataType {
                    location: at(5).repetition(1),
                    problem: DataTypeProblem::ValueWithStatusX,
                });
            }
            (Some(_), true) => return Err(Hl7Error::MissingField { location: at(5) }),
            (Some(_), false) if value_type.is_empty() => {
                return Err(Hl7Error::MissingField { location: at(2) });
            }
            (Some(_), false) => {
                let number = parse_nm(raw_value).ok_or(Hl7Error::DataType {
                    location: at(5).repetition(1),
                    problem: DataTypeProblem::NotNumeric,
                })?;
                Some(self.convert(segment, sequence, measurand, number)?)
            }
        };
        let effective = self.time(segment, sequence)?;
        let (equipment, equipment_source) = self.equipment(segment, sequence)?;
        Ok(match (value, status) {
            (Some((value, converted)), Some(status)) => Hl7Item::Value {
                obx,
                mdc: metric.mdc,
                equipment,
                equipment_source,
                measurement: Measurement {
                    measurand,
                    value: MeasuredValue::Number(value),
                    effective,
                    status,
                    quality: if converted {
                        QualityFlags::CONVERTED_UNIT
                    } else {
                        QualityFlags::empty()
                    },
                },
            },
            _ => Hl7Item::Absent {
                obx,
                mdc: metric.mdc,
                measurand,
                equipment,
                equipment_source,
                effective,
            },
        })
    }

    /// OBX-6 to UCUM, then exactly to the canonical unit, then the plausibility check. Returns
    /// the canonical value and whether it was converted.
    fn convert(
        &self,
        segment: &Segment<'_>,
        sequence: usize,
        measurand: Measurand,
        number: f64,
    ) -> Result<(f64, bool), Hl7Error> {
        let enc = &self.cx.enc;
        let at = ErrorLocation::segment("OBX", sequence)
            .field(6)
            .repetition(1);
        let unit = self.cx.first_repetition(segment.field(6));
        if unit.is_empty() {
            return Err(Hl7Error::MissingField {
                location: ErrorLocation::segment("OBX", sequence).field(6),
            });
        }
        let system = [1, 4]
            .into_iter()
            .find_map(|first| match component(unit, first + 2, enc) {
                "MDC" => Some((first, true)),
                "UCUM" => Some((first, false)),
                _ => None,
            });
        let table = |problem| Hl7Error::TableValue {
            location: at.component(system.map_or(3, |(first, _)| first)),
            problem,
        };
        let ucum = match system {
            None => return Err(table(TableProblem::UnitNotCoded)),
            Some((first, true)) => {
                let raw = component(unit, first, enc);
                let code = mdc::parse_code(raw).ok_or(Hl7Error::DataType {
                    location: at.component(first),
                    problem: DataTypeProblem::BadMdcCode,
                })?;
                let entry = mdc::unit_for(code).ok_or(table(TableProblem::UnknownUnit(code)))?;
                if entry.only_for.is_some_and(|only| only != measurand) {
                    return Err(table(TableProblem::UnitDoesNotFit(measurand)));
                }
                std::borrow::Cow::Borrowed(entry.ucum)
            }
            Some((first, false)) => {
                let raw = component(unit, first, enc);
                unescape(raw, enc).map_err(|p| Hl7Error::DataType {
                    location: at.component(first),
                    problem: DataTypeProblem::Escape(p),
                })?
            }
        };
        let (value, converted) = units::to_canonical(measurand, number, &ucum)
            .map_err(|_| table(TableProblem::UnitDoesNotFit(measurand)))?;
        let range = measurand.plausible();
        // `contains` is false for NaN, and ±inf lies outside every range.
        if !(range.min..=range.max).contains(&value) {
            return Err(Hl7Error::ImplausibleValue {
                location: ErrorLocation::segment("OBX", sequence)
                    .field(5)
                    .repetition(1),
                measurand,
            });
        }
        Ok((value, converted))
    }

    /// OBX-14, else OBR-7 of the row's group (reference §1).
    fn time(&self, segment: &Segment<'_>, sequence: usize) -> Result<Instant, Hl7Error> {
        let own = component(self.cx.first_repetition(segment.field(14)), 1, &self.cx.enc);
        let obx14 = ErrorLocation::segment("OBX", sequence)
            .field(14)
            .repetition(1);
        let (dtm, location) = if own.is_empty() {
            match self
                .order
                .as_ref()
                .and_then(|o| o.time.map(|t| (t, o.sequence)))
            {
                Some((time, obr)) => (time, obr7(obr)),
                None => {
                    return Err(Hl7Error::NoObservationTime {
                        location: ErrorLocation::segment("OBX", sequence).field(14),
                    });
                }
            }
        } else {
            let location = obx14.component(1);
            let dtm = dtm::parse(own).map_err(|p| Hl7Error::DataType {
                location,
                problem: DataTypeProblem::Time(p),
            })?;
            (dtm, location)
        };
        let instant = dtm
            .observation_instant(self.cx.limits)
            .map_err(|p| Hl7Error::DataType {
                location,
                problem: DataTypeProblem::Time(p),
            })?;
        if instant.signed_duration_since(self.cx.received) > self.cx.limits.max_future_skew {
            return Err(Hl7Error::FutureTime {
                location,
                max_skew: self.cx.limits.max_future_skew,
            });
        }
        Ok(instant)
    }

    /// Records an item unless one for the same device, measurand and time is preferred (a value
    /// over an absence, then the lower rank, then the first sent).
    fn keep(&mut self, item: Hl7Item, rank: u8) {
        let rival = self.items.iter().position(|kept| {
            kept.equipment() == item.equipment()
                && kept.measurand() == item.measurand()
                && kept.effective() == item.effective()
        });
        let Some(i) = rival else {
            self.items.push(item);
            return;
        };
        let kept_rank = mdc::metric_for(self.items[i].mdc().code).map_or(u8::MAX, |m| m.rank);
        let is_value = |it: &Hl7Item| matches!(it, Hl7Item::Value { .. });
        let wins = match (is_value(&item), is_value(&self.items[i])) {
            (true, false) => true,
            (false, true) => false,
            _ => rank < kept_rank,
        };
        let (winner, loser) = if wins {
            let loser = self.items.remove(i);
            self.items.push(item);
            (self.items[self.items.len() - 1].obx(), loser)
        } else {
            (self.items[i].obx(), item)
        };
        self.skipped.push(SkippedObx {
            obx: loser.obx(),
            mdc_code: Some(loser.mdc().code),
            reason: SkipReason::Superseded { by: winner },
        });
    }

    fn finish(mut self, header: MessageHeader, ack: AckContext) -> Result<OruMessage, Hl7Error> {
        if self.order.is_none() {
            return Err(Hl7Error::SegmentSequence {
                location: ErrorLocation::segment("OBR", 1),
                problem: SequenceProblem::NoObservationRequest,
            });
        }
        self.items.sort_by_key(|item| item.obx().sequence);
        self.skipped.sort_by_key(|s| s.obx.sequence);
        let equipment = group(&self.items);
        Ok(OruMessage {
            header,
            patient_ids: self.patient_ids,
            items: self.items,
            equipment,
            skipped: self.skipped,
            containment_rows: self.containment_rows,
            ack,
        })
    }
}

fn obr7(sequence: usize) -> ErrorLocation {
    ErrorLocation::segment("OBR", sequence)
        .field(7)
        .repetition(1)
        .component(1)
}

/// Groups items per device (first appearance first) and assembles each device's readings.
fn group(items: &[Hl7Item]) -> Vec<EquipmentReadings> {
    let mut devices: Vec<&EquipmentId> = Vec::new();
    for item in items {
        if !devices.contains(&item.equipment()) {
            devices.push(item.equipment());
        }
    }
    devices
        .into_iter()
        .map(|device| {
            let mine = || items.iter().filter(move |i| i.equipment() == device);
            let measurements = mine()
                .filter_map(|i| match i {
                    Hl7Item::Value { measurement, .. } => Some(measurement.clone()),
                    Hl7Item::Absent { .. } => None,
                })
                .collect();
            let absent = mine()
                .filter_map(|i| match i {
                    Hl7Item::Absent {
                        obx,
                        mdc,
                        measurand,
                        effective,
                        ..
                    } => Some(AbsentValue {
                        obx: *obx,
                        mdc: *mdc,
                        measurand: *measurand,
                        effective: *effective,
                    }),
                    Hl7Item::Value { .. } => None,
                })
                .collect();
            EquipmentReadings {
                equipment: device.clone(),
                readings: assemble_readings(measurements),
                absent,
            }
        })
        .collect()
}

/// OBX-4 as PCD containment `MDS.VMD.CHAN.METRIC` (*PCD TF, recalled*); `None` in any other form.
fn containment_id(raw: &str) -> Option<[u32; 4]> {
    let mut parts = raw.split('.');
    let mut id = [0u32; 4];
    for slot in &mut id {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 9 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *slot = part.parse().ok()?;
    }
    parts.next().is_none().then_some(id)
}

/// OBX-11 (HL7 table 0085) to FHIR `ObservationStatus`, after the HL7 v2-to-FHIR ConceptMap;
/// `None` for `X` (no value).
fn status(raw: &str) -> Result<Option<ObservationStatus>, TableProblem> {
    let mut chars = raw.chars();
    let (Some(letter), None) = (chars.next(), chars.next()) else {
        return Err(TableProblem::UnknownStatus);
    };
    match letter {
        'F' => Ok(Some(ObservationStatus::Final)),
        // Reference §1: `R` is "not verified; used for auto-charted device data".
        'R' | 'P' | 'S' => Ok(Some(ObservationStatus::Preliminary)),
        'C' => Ok(Some(ObservationStatus::Corrected)),
        'X' => Ok(None),
        'D' | 'W' | 'U' | 'I' | 'N' | 'O' => Err(TableProblem::UnsupportedStatus(letter)),
        _ => Err(TableProblem::UnknownStatus),
    }
}

/// NM (v2.6 chapter 2A, "NM - numeric"): an optional sign, digits, an optional decimal point; nothing else.
fn parse_nm(raw: &str) -> Option<f64> {
    let body = raw.strip_prefix(['+', '-']).unwrap_or(raw);
    let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(fraction) || whole.len() + fraction.len() == 0 {
        return None;
    }
    // Rust's float syntax is a superset of this grammar, and reads it exactly (correctly
    // rounded), long digit strings included.
    raw.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nm_grammar() {
        for (text, value) in [
            ("88", 88.0),
            ("38.4", 38.4),
            ("+1.5", 1.5),
            ("-0.5", -0.5),
            ("007", 7.0),
            ("5.", 5.0),
            (".5", 0.5),
            ("0", 0.0),
        ] {
            assert_eq!(parse_nm(text), Some(value), "{text:?}");
        }
        for bad in [
            "", "38,9", "1e3", "1E3", "1,000", "1 000", " 88", "88 ", "+", "-", ".", "+-1",
            "1.2.3", "NaN", "inf", "infinity", "0x10", "٣", "88^1", "1_000",
        ] {
            assert_eq!(parse_nm(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn containment_ids() {
        assert_eq!(containment_id("1.2.1.1"), Some([1, 2, 1, 1]));
        assert_eq!(containment_id("1.0.0.0"), Some([1, 0, 0, 0]));
        for bad in [
            "",
            "1.2.1",
            "1.2.1.1.1",
            "1..1.1",
            "a.b.c.d",
            "1.2.1.-1",
            "9999999999.0.0.0",
        ] {
            assert_eq!(containment_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn status_table() {
        assert_eq!(status("F"), Ok(Some(ObservationStatus::Final)));
        assert_eq!(status("R"), Ok(Some(ObservationStatus::Preliminary)));
        assert_eq!(status("P"), Ok(Some(ObservationStatus::Preliminary)));
        assert_eq!(status("S"), Ok(Some(ObservationStatus::Preliminary)));
        assert_eq!(status("C"), Ok(Some(ObservationStatus::Corrected)));
        assert_eq!(status("X"), Ok(None));
        for letter in ['D', 'W', 'U', 'I', 'N', 'O'] {
            assert_eq!(
                status(&letter.to_string()),
                Err(TableProblem::UnsupportedStatus(letter))
            );
        }
        for bad in ["f", "FF", "Z", " F", "É"] {
            assert_eq!(status(bad), Err(TableProblem::UnknownStatus), "{bad:?}");
        }
    }

    #[test]
    fn segment_ids() {
        assert!(valid_segment_id("OBX|1", b'|'));
        assert!(valid_segment_id("PV1|", b'|'));
        assert!(valid_segment_id("NTE", b'|'));
        assert!(valid_segment_id("ZX1|a", b'|'));
        for bad in ["", "OB", "obx|", "1BX|", "OBXX|", "OB-|", "OBX^", "ÖBX|"] {
            assert!(!valid_segment_id(bad, b'|'), "{bad:?}");
        }
    }
}
