//! Tests of the HL7 contract: every reference sample (`tests/data/hl7/`, copied from
//! `shared/reference/hl7/`), then each clause of the module documentation and its bad cases.

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use vigil_model::{
    Instant, Measurand, ObservationCode, ObservationStatus, ObservationValue, QualityFlags, Reading,
};

use super::*;
use crate::mllp;

macro_rules! data {
    ($file:expr) => {
        include_bytes!(concat!("../../tests/data/hl7/", $file))
    };
}

struct Sample {
    name: &'static str,
    hl7: &'static [u8],
    mllp: &'static [u8],
    ack_mllp: &'static [u8],
    ack_txt: &'static [u8],
}

macro_rules! sample {
    ($name:literal) => {
        Sample {
            name: $name,
            hl7: data!(concat!($name, ".hl7")),
            mllp: data!(concat!($name, ".mllp")),
            ack_mllp: data!(concat!($name, ".expected_ack.mllp")),
            ack_txt: data!(concat!($name, ".expected_ack.txt")),
        }
    };
}

const SAMPLES: [Sample; 7] = [
    sample!("oru_01_icu_periodic"),
    sample!("oru_02_ward_spotcheck"),
    sample!("oru_03_probe_off_fahrenheit"),
    sample!("oru_04_v25_kpa_transport"),
    sample!("bad_01_unsupported_version"),
    sample!("bad_02_nm_decimal_comma"),
    sample!("bad_03_obx_before_obr"),
];

const EXPECTED_RESULTS: &[u8] = data!("expected_results.json");

fn sample_named(name: &str) -> &'static Sample {
    SAMPLES.iter().find(|s| s.name == name).unwrap()
}

/// When the test messages arrive: after every time in the samples.
fn received() -> Instant {
    Utc.with_ymd_and_hms(2025, 1, 17, 0, 0, 0).unwrap()
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Instant {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn decode(bytes: &[u8]) -> Result<OruMessage, Hl7Error> {
    decode_oru(bytes, received(), &Hl7Limits::default())
}

fn ok(bytes: &[u8]) -> OruMessage {
    decode(bytes).unwrap_or_else(|e| panic!("{e} ({})", e.kind()))
}

fn err(bytes: &[u8]) -> Hl7Error {
    match decode(bytes) {
        Ok(m) => panic!("the message should be refused: {:?}", m.items),
        Err(e) => e,
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// A sample's segments, without terminators.
fn segments_of(name: &str) -> Vec<String> {
    text(sample_named(name).hl7)
        .trim_end_matches('\r')
        .split('\r')
        .map(str::to_owned)
        .collect()
}

fn join(segments: &[String]) -> Vec<u8> {
    let mut out = segments.join("\r");
    out.push('\r');
    out.into_bytes()
}

/// oru_01 with its segments edited.
fn oru01_with(edit: impl FnOnce(&mut Vec<String>)) -> Vec<u8> {
    let mut segments = segments_of("oru_01_icu_periodic");
    edit(&mut segments);
    join(&segments)
}

/// An edit of a sample's segments.
type Edit = fn(&mut Vec<String>);

/// Index in oru_01's segments of the OBX whose OBX-1 is `set_id`.
fn obx(segments: &[String], set_id: u32) -> usize {
    segments
        .iter()
        .position(|s| s.starts_with(&format!("OBX|{set_id}|")))
        .unwrap()
}

/// Sets field `n` of a non-MSH segment.
fn set_field(segment: &mut String, n: usize, value: &str) {
    let mut fields: Vec<String> = segment.split('|').map(str::to_owned).collect();
    if fields.len() <= n {
        fields.resize(n + 1, String::new());
    }
    fields[n] = value.to_owned();
    *segment = fields.join("|");
}

/// Sets field `n` (as the standard numbers MSH fields) of the MSH segment.
fn set_msh(segment: &mut String, n: usize, value: &str) {
    set_field(segment, n - 1, value);
}

/// oru_01 with one field of one OBX (by OBX-1) changed.
fn oru01_obx(set_id: u32, field: usize, value: &str) -> Vec<u8> {
    oru01_with(|s| {
        let i = obx(s, set_id);
        set_field(&mut s[i], field, value);
    })
}

fn oru01_msh(field: usize, value: &str) -> Vec<u8> {
    oru01_with(|s| set_msh(&mut s[0], field, value))
}

/// The parts of a reading: (measurand, value) for each component, or the one quantity.
fn parts(r: &Reading) -> Vec<(Measurand, f64)> {
    match (&r.code, &r.value) {
        (ObservationCode::Single(m), ObservationValue::Quantity(q)) => {
            assert_eq!(q.unit, m.canonical_unit());
            vec![(*m, q.value)]
        }
        (ObservationCode::BloodPressure, ObservationValue::Components(c)) => c
            .iter()
            .map(|c| {
                assert_eq!(c.value.unit, "mm[Hg]");
                (c.measurand, c.value.value)
            })
            .collect(),
        other => panic!("unexpected reading {other:?}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// An ACK's segments and fields (`fields[0]` is the segment ID; for MSH, `fields[n]` is MSH-(n+1)).
fn ack_fields(ack: &[u8]) -> Vec<Vec<String>> {
    let ack = std::str::from_utf8(ack).unwrap();
    assert!(
        ack.ends_with('\r'),
        "every ACK segment ends with CR: {ack:?}"
    );
    ack.trim_end_matches('\r')
        .split('\r')
        .map(|s| s.split('|').map(str::to_owned).collect())
        .collect()
}

/// The unframed payload of an MLLP file.
fn unframe(framed: &[u8]) -> Vec<u8> {
    let split = mllp::split_frames(framed, 1 << 20);
    assert_eq!(split.discarded, 0);
    assert_eq!(split.frames.len(), 1);
    split.frames.into_iter().next().unwrap().unwrap().to_vec()
}

/// MSH-7 of a message, as an instant.
fn msh7(bytes: &[u8]) -> (Instant, FixedOffset) {
    let t = text(bytes);
    let stamp = t.split('|').nth(6).unwrap();
    let parsed = DateTime::parse_from_str(stamp, "%Y%m%d%H%M%S%z").unwrap();
    (parsed.with_timezone(&Utc), *parsed.offset())
}

// ---------------------------------------------------------------------------------------------
// The reference samples

/// The copies in `tests/data/hl7/` are the reference's files (`../shared` beside the repository,
/// as on every developer machine and in CI).
#[test]
fn sample_copies_match_the_shared_reference() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/hl7");
    let mut compared = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let copy = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/hl7")
            .join(&name);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            std::fs::read(&copy).unwrap_or_else(|e| panic!("{name}: {e}")),
            "{name} differs from the reference"
        );
        compared += 1;
    }
    assert_eq!(compared, 36);
}

/// Every sample against `expected_results.json`: MSH-10, MSA-1, ERR, framing, and the expected
/// ACK byte for byte (with the reference's time and control ID) and field by field (with others).
#[test]
fn every_sample_gives_the_expected_result_and_ack() {
    let expected: serde_json::Value = serde_json::from_slice(EXPECTED_RESULTS).unwrap();
    let expected = expected.as_object().unwrap();
    assert_eq!(expected.len(), SAMPLES.len());
    for sample in &SAMPLES {
        let want = &expected[sample.name];
        let name = sample.name;
        // Framing: the .mllp file is the .hl7 file framed.
        assert_eq!(
            sample.mllp.len() as u64,
            want["framed_length"].as_u64().unwrap()
        );
        assert_eq!(sample.mllp[0], 0x0B);
        assert_eq!(&sample.mllp[sample.mllp.len() - 2..], [0x1C, 0x0D]);
        assert_eq!(unframe(sample.mllp), sample.hl7, "{name}");
        assert_eq!(mllp::frame(sample.hl7, 1 << 20).unwrap(), sample.mllp);

        let msh10 = want["msh10"].as_str().unwrap();
        let msa1 = want["expected_msa1"].as_str().unwrap();
        let errors = want["errors"].as_array().unwrap();
        let (sent, _) = msh7(sample.hl7);
        let now = sent + Duration::seconds(1);
        let expected_ack = unframe(sample.ack_mllp);
        assert_eq!(
            text(&expected_ack).replace('\r', "\n"),
            text(sample.ack_txt).trim_end().to_owned() + "\n",
            "{name}: the .txt and .mllp ACKs agree"
        );
        let their_control_id = ack_fields(&expected_ack)[0][9].clone();

        let (ack, again) = match decode(sample.hl7) {
            Ok(msg) => {
                assert_eq!(msa1, "AA", "{name} was accepted");
                assert!(errors.is_empty());
                assert_eq!(msg.header.control_id, msh10);
                assert_eq!(msg.ack.original_control_id(), msh10);
                assert!(msg.ack.application_ack_wanted(AckCode::Accept));
                let ack = build_ack(&msg.ack, AckCode::Accept, None, now, &their_control_id);
                let other = build_ack(
                    &msg.ack,
                    AckCode::Accept,
                    None,
                    now + Duration::hours(3),
                    "VIGIL-42",
                );
                (ack, other)
            }
            Err(e) => {
                assert_eq!(e.ack_code().as_str(), msa1, "{name}: {e}");
                assert_eq!(errors.len(), 1);
                let [code, text, location] = [0, 1, 2].map(|i| errors[0][i].as_str().unwrap());
                assert_eq!(e.error_code().code().to_string(), code, "{name}");
                assert_eq!(e.error_code().text(), text, "{name}");
                assert_eq!(e.location().unwrap().to_string(), location, "{name}");
                assert_eq!(
                    AckContext::best_effort(sample.hl7).original_control_id(),
                    msh10
                );
                let ack = build_nack(sample.hl7, &e, now, &their_control_id);
                let other = build_nack(sample.hl7, &e, now + Duration::hours(3), "VIGIL-42");
                (ack, other)
            }
        };
        assert_eq!(text(&ack), text(&expected_ack), "{name}: ACK byte for byte");
        assert_eq!(
            mllp::frame(&ack, 1 << 20).unwrap(),
            sample.ack_mllp,
            "{name}: framed ACK"
        );
        // Field by field, MSH-7 (time) and MSH-10 (control ID) legitimately differing.
        let (mut got, mut want) = (ack_fields(&again), ack_fields(&expected_ack));
        assert_eq!(got[0][9], "VIGIL-42");
        assert!(got[0][6].ends_with("+0100"), "{name}: {}", got[0][6]);
        for fields in [&mut got, &mut want] {
            fields[0][6].clear();
            fields[0][9].clear();
        }
        assert_eq!(got, want, "{name}: ACK field by field");
    }
}

#[test]
fn oru_01_icu_periodic() {
    let msg = ok(sample_named("oru_01_icu_periodic").hl7);
    let h = &msg.header;
    assert_eq!(h.control_id, "ICU1-000001");
    assert_eq!(h.version, Hl7Version::V2_6);
    assert_eq!(h.message_profile.as_deref(), Some("PCD_DEC_001"));
    assert_eq!(
        h.sending_application,
        HierarchicDesignator {
            namespace_id: Some("MONITOR_GW".into()),
            universal_id: Some("0012340000000001".into()),
            universal_id_type: Some("EUI-64".into()),
        }
    );
    assert_eq!(h.sending_facility.namespace_id.as_deref(), Some("ICU_EAST"));
    assert_eq!(
        h.receiving_application.namespace_id.as_deref(),
        Some("IOMT_HUB")
    );
    assert_eq!(
        h.receiving_facility.namespace_id.as_deref(),
        Some("HOSPITAL")
    );
    assert_eq!(h.sent_at, Some(utc(2025, 1, 14, 9, 30, 0)));
    assert_eq!(
        msg.patient_ids,
        [PatientIdentifier {
            id: "MRN10001".into(),
            assigning_authority: Some("HOSP".into()),
            type_code: Some("MR".into()),
        }]
    );
    // MDS + five VMDs.
    assert_eq!(msg.containment_rows, 6);
    // The oximeter's pulse rate (OBX 6) repeats the ECG heart rate (OBX 3) at the same time.
    assert_eq!(
        msg.skipped,
        [SkippedObx {
            obx: ObxPosition {
                sequence: 6,
                set_id: Some(6)
            },
            mdc_code: Some(149530),
            reason: SkipReason::Superseded {
                by: ObxPosition {
                    sequence: 3,
                    set_id: Some(3)
                }
            },
        }]
    );
    let codes: Vec<u32> = msg.items.iter().map(|i| i.mdc().code).collect();
    assert_eq!(
        codes,
        [147842, 150456, 150021, 150022, 150023, 151562, 150344]
    );
    assert_eq!(msg.items[6].mdc().refid, "MDC_TEMP");
    assert_eq!(msg.equipment.len(), 1);
    let device = &msg.equipment[0];
    assert_eq!(
        device.equipment,
        EquipmentId {
            id: "0012340000000001".into(),
            namespace_id: None,
            universal_id: Some("0012340000000001".into()),
            universal_id_type: Some("EUI-64".into()),
        }
    );
    assert!(device.absent.is_empty());
    let at_1030 = utc(2025, 1, 14, 9, 30, 0);
    let at_1027 = utc(2025, 1, 14, 9, 27, 0);
    let got: Vec<_> = device
        .readings
        .iter()
        .map(|r| (r.code, parts(r), r.effective))
        .collect();
    use Measurand::*;
    assert_eq!(
        got,
        [
            (
                ObservationCode::Single(HeartRate),
                vec![(HeartRate, 88.0)],
                at_1030
            ),
            (ObservationCode::Single(Spo2), vec![(Spo2, 94.0)], at_1030),
            (
                ObservationCode::BloodPressure,
                vec![(SystolicBp, 104.0), (DiastolicBp, 62.0), (MeanBp, 76.0)],
                at_1027
            ),
            (
                ObservationCode::Single(RespRate),
                vec![(RespRate, 24.0)],
                at_1030
            ),
            (
                ObservationCode::Single(Temperature),
                vec![(Temperature, 38.4)],
                at_1030
            ),
        ]
    );
    for r in &device.readings {
        // OBX-11 R: not verified by a clinician.
        assert_eq!(r.status, ObservationStatus::Preliminary);
        assert!(r.quality.is_empty());
    }
    for item in &msg.items {
        let Hl7Item::Value {
            equipment_source, ..
        } = item
        else {
            panic!("{item:?}")
        };
        assert_eq!(*equipment_source, EquipmentSource::Obx18);
    }
}

#[test]
fn oru_02_ward_spotcheck() {
    let msg = ok(sample_named("oru_02_ward_spotcheck").hl7);
    assert_eq!(msg.header.control_id, "WARD-000417");
    assert_eq!(msg.containment_rows, 4);
    assert!(msg.skipped.is_empty(), "{:?}", msg.skipped);
    let device = &msg.equipment[0];
    assert_eq!(device.equipment.id, "0012340000000002");
    let t = utc(2025, 1, 14, 13, 15, 12);
    let got: Vec<_> = device
        .readings
        .iter()
        .map(|r| (parts(r), r.effective))
        .collect();
    use Measurand::*;
    assert_eq!(
        got,
        [
            (
                vec![(SystolicBp, 88.0), (DiastolicBp, 51.0), (MeanBp, 63.0)],
                t
            ),
            // The NIBP cuff's pulse rate is the only heart rate here.
            (vec![(HeartRate, 118.0)], t),
            (vec![(Spo2, 92.0)], t),
            (vec![(Temperature, 38.9)], t),
        ]
    );
    assert_eq!(msg.items[3].mdc().code, 149546);
}

#[test]
fn oru_03_probe_off_is_absent_never_zero_and_fahrenheit_converts() {
    let msg = ok(sample_named("oru_03_probe_off_fahrenheit").hl7);
    assert_eq!(msg.header.control_id, "ICU3-002211");
    let device = &msg.equipment[0];
    let t = utc(2025, 1, 15, 1, 10, 0);
    assert_eq!(
        device.absent,
        [AbsentValue {
            obx: ObxPosition {
                sequence: 5,
                set_id: Some(5)
            },
            mdc: vigil_model::catalogue::MdcCode {
                code: 150456,
                refid: "MDC_PULS_OXIM_SAT_O2"
            },
            measurand: Measurand::Spo2,
            effective: t,
        }]
    );
    assert!(matches!(
        &msg.items[1],
        Hl7Item::Absent { measurand: Measurand::Spo2, equipment, equipment_source: EquipmentSource::Obx18, effective, .. }
            if equipment.id == "0012340000000003" && *effective == t
    ));
    assert_eq!(device.readings.len(), 2);
    assert!(
        device
            .readings
            .iter()
            .all(|r| r.code != ObservationCode::Single(Measurand::Spo2)),
        "no SpO2 value, not even 0"
    );
    assert_eq!(parts(&device.readings[0]), [(Measurand::HeartRate, 132.0)]);
    let temperature = &device.readings[1];
    let [(Measurand::Temperature, celsius)] = parts(temperature)[..] else {
        panic!("{temperature:?}")
    };
    assert!(close(celsius, (101.8 - 32.0) * 5.0 / 9.0), "{celsius}");
    assert_eq!((celsius * 10.0).round() / 10.0, 38.8);
    assert!(temperature.quality.contains(QualityFlags::CONVERTED_UNIT));
    assert!(
        !device.readings[0]
            .quality
            .contains(QualityFlags::CONVERTED_UNIT)
    );
}

#[test]
fn oru_04_v25_without_profile_and_kilopascal() {
    let msg = ok(sample_named("oru_04_v25_kpa_transport").hl7);
    assert_eq!(msg.header.version, Hl7Version::V2_5);
    assert_eq!(msg.header.message_profile, None);
    assert_eq!(msg.containment_rows, 0);
    let device = &msg.equipment[0];
    assert_eq!(device.readings.len(), 5);
    let bp = &device.readings[0];
    assert_eq!(bp.code, ObservationCode::BloodPressure);
    assert!(bp.quality.contains(QualityFlags::CONVERTED_UNIT));
    let mmhg_per_kpa = 1000.0 / 133.322_387_415;
    let got = parts(bp);
    for ((measurand, value), (want_m, kpa, rounded)) in got.iter().zip([
        (Measurand::SystolicBp, 12.4, 93.0),
        (Measurand::DiastolicBp, 7.6, 57.0),
        (Measurand::MeanBp, 9.2, 69.0),
    ]) {
        assert_eq!(*measurand, want_m);
        assert!(close(*value, kpa * mmhg_per_kpa), "{value}");
        assert_eq!(value.round(), rounded);
    }
    assert_eq!(parts(&device.readings[1]), [(Measurand::HeartRate, 54.0)]);
    assert_eq!(parts(&device.readings[4]), [(Measurand::Temperature, 35.9)]);
}

#[test]
fn bad_01_version_2_2_is_rejected_before_content() {
    let e = err(sample_named("bad_01_unsupported_version").hl7);
    assert_eq!(
        e,
        Hl7Error::UnsupportedVersion {
            found: "2.2".into()
        }
    );
    assert_eq!(e.ack_code(), AckCode::Reject);
    assert_eq!(e.kind(), "unsupported_version");
}

#[test]
fn bad_02_decimal_comma_is_a_data_type_error_never_a_guess() {
    let e = err(sample_named("bad_02_nm_decimal_comma").hl7);
    assert_eq!(
        e,
        Hl7Error::DataType {
            location: ErrorLocation::segment("OBX", 10).field(5).repetition(1),
            problem: DataTypeProblem::NotNumeric,
        }
    );
    assert_eq!(e.ack_code(), AckCode::Error);
    assert!(!e.to_string().contains("38,9"), "{e}");
}

#[test]
fn bad_03_obx_before_obr_is_a_segment_sequence_error() {
    let e = err(sample_named("bad_03_obx_before_obr").hl7);
    assert_eq!(
        e,
        Hl7Error::SegmentSequence {
            location: ErrorLocation::segment("OBX", 1),
            problem: SequenceProblem::Unexpected {
                segment: "OBX",
                after: "PV1"
            },
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Not HL7, broken MSH, encoding characters

#[test]
fn empty_and_garbage_input_is_not_hl7() {
    for garbage in [
        &b""[..],
        b"hello world",
        b"{\"obs\": []}",
        b"\x0bMSH|^~\\&|",
        b" MSH|^~\\&|",
        b"msh|^~\\&|",
        b"\xff\xfe\x00M\x00S\x00H",
        b"PID|||MRN\r",
    ] {
        let e = err(garbage);
        assert_eq!(e, Hl7Error::NotHl7, "{garbage:?}");
        assert_eq!(e.ack_code(), AckCode::Reject);
        assert_eq!(e.error_code().code(), 100);
        // The NACK still goes out, with nothing echoed.
        let nack = build_nack(garbage, &e, received(), "N1");
        let fields = ack_fields(&nack);
        assert_eq!(fields[0][..6], ["MSH", "^~\\&", "", "", "", ""]);
        assert_eq!(fields[0][8..], ["ACK^R01^ACK", "N1", "P", "2.6"]);
        assert_eq!(fields[1], ["MSA", "AR", ""]);
        assert_eq!(
            fields[2],
            ["ERR", "", "", "100^Segment sequence error^HL70357", "E"]
        );
    }
}

#[test]
fn truncated_msh() {
    use EncodingProblem::*;
    for (bytes, problem) in [
        (&b"MSH"[..], Truncated),
        (b"MSH|", Truncated),
        (b"MSH|^~", Truncated),
        (b"MSH|^~\r", WrongCount { count: 2 }),
        (b"MSH|^~|", WrongCount { count: 2 }),
    ] {
        assert_eq!(
            err(bytes),
            Hl7Error::BadEncodingCharacters(problem),
            "{bytes:?}"
        );
    }
    // Delimiters complete, the rest of MSH missing: MSH-9 is the first header check.
    let e = err(b"MSH|^~\\&\r");
    assert_eq!(
        e,
        Hl7Error::MissingField {
            location: ErrorLocation::segment("MSH", 1).field(9)
        }
    );
    assert_eq!(e.ack_code(), AckCode::Reject);
    assert_eq!(e.error_code().code(), 101);
}

#[test]
fn every_prefix_of_a_message_is_refused_unless_it_ends_a_segment() {
    let full = sample_named("oru_01_icu_periodic").hl7;
    for len in 0..full.len() {
        let prefix = &full[..len];
        match decode(prefix) {
            Ok(msg) => {
                assert!(prefix.ends_with(b"\r"), "accepted a cut segment at {len}");
                assert!(msg.items.len() < 7);
            }
            Err(e) => {
                let nack = build_nack(prefix, &e, received(), "N");
                assert_eq!(ack_fields(&nack)[1][1], e.ack_code().as_str());
            }
        }
    }
    // Cut inside the last OBX's value: the missing terminator is what betrays it.
    let cut = &full[..full.len() - 1];
    assert_eq!(err(cut), Hl7Error::UnterminatedSegment);
}

#[test]
fn wrong_encoding_characters() {
    let with_msh2 = |msh2: &str| oru01_with(|s| s[0] = s[0].replacen("^~\\&", msh2, 1));
    assert_eq!(
        err(&with_msh2("^^\\&")),
        Hl7Error::BadEncodingCharacters(EncodingProblem::NotDistinct)
    );
    assert_eq!(
        err(&with_msh2("^~\\")),
        Hl7Error::BadEncodingCharacters(EncodingProblem::WrongCount { count: 3 })
    );
    assert_eq!(
        err(&with_msh2("^~A&")),
        Hl7Error::BadEncodingCharacters(EncodingProblem::NotADelimiter { byte: b'A' })
    );
    // A v2.7 truncation character in a v2.6 message…
    let e = err(&with_msh2("^~\\&#"));
    assert_eq!(
        e,
        Hl7Error::BadEncodingCharacters(EncodingProblem::WrongCount { count: 5 })
    );
    assert_eq!(e.location().unwrap().to_string(), "MSH^1^2");
    assert_eq!(e.ack_code(), AckCode::Reject);
    // …but a v2.7 sender hears that its version is unsupported.
    let v27 = oru01_with(|s| {
        s[0] = s[0]
            .replacen("^~\\&", "^~\\&#", 1)
            .replacen("|P|2.6|", "|P|2.7|", 1);
    });
    assert_eq!(
        err(&v27),
        Hl7Error::UnsupportedVersion {
            found: "2.7".into()
        }
    );
}

#[test]
fn any_delimiters_are_honoured() {
    let standard = ok(sample_named("oru_01_icu_periodic").hl7);
    let other: String = text(sample_named("oru_01_icu_periodic").hl7)
        .chars()
        .map(|c| match c {
            '|' => '#',
            '^' => '$',
            '~' => '%',
            '\\' => '!',
            '&' => '*',
            c => c,
        })
        .collect();
    let msg = ok(other.as_bytes());
    assert_eq!(msg.items, standard.items);
    assert_eq!(msg.equipment, standard.equipment);
    assert_eq!(msg.patient_ids, standard.patient_ids);
    let ack = text(&build_ack(
        &msg.ack,
        AckCode::Error,
        Some(&AckError {
            location: Some(ErrorLocation::segment("OBX", 2).field(5).repetition(1)),
            code: ErrorCode::DataType,
            severity: Severity::Error,
        }),
        received(),
        "A|1",
    ));
    assert!(
        ack.starts_with("MSH#$%!*#IOMT_HUB#HOSPITAL#MONITOR_GW$0012340000000001$EUI-64#ICU_EAST#")
    );
    assert!(
        ack.contains("#ACK$R01$ACK#A|1#P#2.6\rMSA#AE#ICU1-000001\r"),
        "{ack}"
    );
    assert!(
        ack.ends_with("ERR##OBX$2$5$1#102$Data type error$HL70357#E\r"),
        "{ack}"
    );
}

// ---------------------------------------------------------------------------------------------
// Header checks

#[test]
fn unsupported_message_type_event_structure_processing_id_and_character_set() {
    let cases = [
        (9, "ADT^A01", "unsupported_message_type", 200, "MSH^1^9"),
        (9, "ORU^R30", "unsupported_event", 201, "MSH^1^9"),
        (
            9,
            "ORU^R01^ORU_R30",
            "unsupported_structure",
            200,
            "MSH^1^9",
        ),
        (11, "T", "unsupported_processing_id", 202, "MSH^1^11"),
        (11, "D", "unsupported_processing_id", 202, "MSH^1^11"),
        (12, "2.3.1", "unsupported_version", 203, "MSH^1^12"),
        (12, "2.6.1", "unsupported_version", 203, "MSH^1^12"),
        (18, "8859/1", "unsupported_character_set", 103, "MSH^1^18"),
        (
            18,
            "UNICODE UTF-8~8859/1",
            "unsupported_character_set",
            103,
            "MSH^1^18",
        ),
    ];
    for (field, value, kind, code, location) in cases {
        let e = err(&oru01_msh(field, value));
        assert_eq!(e.kind(), kind, "MSH-{field} {value}");
        assert_eq!(e.error_code().code(), code, "MSH-{field} {value}");
        assert_eq!(e.location().unwrap().to_string(), location);
        assert_eq!(e.ack_code(), AckCode::Reject, "MSH-{field} {value}");
    }
    // These are fine: ORU^R01 without structure, P with a processing mode, ASCII, 2.5.1.
    for (field, value) in [
        (9, "ORU^R01"),
        (11, "P^T"),
        (18, "ASCII"),
        (18, ""),
        (12, "2.5.1"),
    ] {
        ok(&oru01_msh(field, value));
    }
    assert_eq!(
        ok(&oru01_msh(12, "2.5.1")).header.version,
        Hl7Version::V2_5_1
    );
}

#[test]
fn the_ack_to_another_message_type_names_its_event() {
    let bytes = oru01_msh(9, "ADT^A01^ADT_A01");
    let e = err(&bytes);
    let ack = ack_fields(&build_nack(&bytes, &e, received(), "N"));
    assert_eq!(ack[0][8], "ACK^A01^ACK");
    assert_eq!(ack[1], ["MSA", "AR", "ICU1-000001"]);
    assert_eq!(ack[2][3], "200^Unsupported message type^HL70357");
    // The type is quoted in the error, cut and cleaned.
    assert_eq!(
        e.to_string(),
        "MSH-9 message type ADT is not ORU (Vigil accepts ORU^R01)"
    );
    let long = err(&oru01_msh(9, "AAAAAAAAAAAAAAAAAAAAAAAA\u{7f}^R01"));
    assert_eq!(
        long,
        Hl7Error::UnsupportedMessageType {
            found: "AAAAAAAAAAAAAAAA…".into()
        }
    );
}

#[test]
fn a_missing_control_id_is_rejected_with_an_empty_msa_2() {
    let bytes = oru01_msh(10, "");
    let e = err(&bytes);
    assert_eq!(
        e,
        Hl7Error::MissingField {
            location: ErrorLocation::segment("MSH", 1).field(10)
        }
    );
    assert_eq!(e.ack_code(), AckCode::Reject);
    let ack = ack_fields(&build_nack(&bytes, &e, received(), "N"));
    assert_eq!(ack[1], ["MSA", "AR", ""]);
    assert_eq!(
        ack[2],
        [
            "ERR",
            "",
            "MSH^1^10",
            "101^Required field missing^HL70357",
            "E"
        ]
    );
    for field in [7, 9, 11, 12] {
        let e = err(&oru01_msh(field, ""));
        assert_eq!(e.kind(), "missing_field", "MSH-{field}");
        assert_eq!(e.ack_code(), AckCode::Reject);
    }
}

#[test]
fn msh_7_must_be_a_time_and_names_the_ack_offset() {
    assert_eq!(
        err(&oru01_msh(7, "yesterday")),
        Hl7Error::DataType {
            location: ErrorLocation::segment("MSH", 1)
                .field(7)
                .repetition(1)
                .component(1),
            problem: DataTypeProblem::Time(TimeProblem::Syntax),
        }
    );
    // A send time without an offset is accepted (it is not an observation time)…
    let msg = ok(&oru01_msh(7, "20250114103000"));
    assert_eq!(msg.header.sent_at, None);
    // …and the ACK is then written in UTC.
    let ack = ack_fields(&build_ack(
        &msg.ack,
        AckCode::Accept,
        None,
        utc(2025, 1, 14, 9, 30, 1),
        "A",
    ));
    assert_eq!(ack[0][6], "20250114093001+0000");
    let msg = ok(&oru01_msh(7, "20250114043000-0500"));
    let ack = ack_fields(&build_ack(
        &msg.ack,
        AckCode::Accept,
        None,
        utc(2025, 1, 14, 9, 30, 1),
        "A",
    ));
    assert_eq!(ack[0][6], "20250114043001-0500");
}

// ---------------------------------------------------------------------------------------------
// Segments and their order

#[test]
fn line_feeds_and_missing_terminators_are_refused() {
    let crlf = text(sample_named("oru_01_icu_periodic").hl7).replace('\r', "\r\n");
    let first_lf = crlf.find('\n').unwrap();
    assert_eq!(
        err(crlf.as_bytes()),
        Hl7Error::LineFeed { offset: first_lf }
    );
    let lf = text(sample_named("oru_01_icu_periodic").hl7).replace('\r', "\n");
    let e = err(lf.as_bytes());
    assert_eq!(e.kind(), "line_feed");
    assert_eq!(e.ack_code(), AckCode::Error);
    // The NACK for a \n message still finds its MSH.
    let ack = ack_fields(&build_nack(lf.as_bytes(), &e, received(), "N"));
    assert_eq!(ack[1], ["MSA", "AE", "ICU1-000001"]);
    assert_eq!(ack[0][4], "MONITOR_GW^0012340000000001^EUI-64");

    let unterminated = sample_named("oru_02_ward_spotcheck").hl7;
    assert_eq!(
        err(&unterminated[..unterminated.len() - 1]),
        Hl7Error::UnterminatedSegment
    );
}

#[test]
fn bad_segment_ids_and_empty_segments() {
    let cases: [(Edit, usize); 5] = [
        (|s| s.insert(2, String::new()), 3),
        (|s| s[1] = s[1].to_lowercase(), 2),
        (|s| s[3] = s[3].replacen("OBR|", "OB|", 1), 4),
        (|s| s[3] = s[3].replacen("OBR|", "OBRX|", 1), 4),
        (|s| s.push("1BX|".into()), 19),
    ];
    for (edit, index) in cases {
        let e = err(&oru01_with(edit));
        assert_eq!(e, Hl7Error::BadSegmentId { index });
        assert_eq!(e.ack_code(), AckCode::Error);
    }
}

#[test]
fn segment_order_follows_the_oru_r01_grammar() {
    use SequenceProblem::*;
    let seq = |edit: fn(&mut Vec<String>)| match err(&oru01_with(edit)) {
        Hl7Error::SegmentSequence { location, problem } => (location.to_string(), problem),
        other => panic!("{other}"),
    };
    // PV1 before PID.
    assert_eq!(
        seq(|s| s.swap(1, 2)),
        (
            "PV1^1".into(),
            Unexpected {
                segment: "PV1",
                after: "MSH"
            }
        )
    );
    // PID after the OBR: a second patient result group.
    assert_eq!(
        seq(|s| {
            let pid = s.remove(1);
            s.remove(1); // PV1
            s.insert(2, pid);
        }),
        ("PID^1".into(), SecondPatient)
    );
    assert_eq!(
        seq(|s| s.insert(3, s[1].clone())),
        ("PID^2".into(), SecondPatient)
    );
    // No OBR at all.
    assert_eq!(
        seq(|s| {
            s.remove(3);
        }),
        (
            "OBX^1".into(),
            Unexpected {
                segment: "OBX",
                after: "PV1"
            }
        )
    );
    assert_eq!(
        seq(|s| s.truncate(3)),
        ("OBR^1".into(), NoObservationRequest)
    );
    // A second MSH, an NTE after PV1, something after DSC, PV2 without PV1.
    assert_eq!(seq(|s| s.push(s[0].clone())), ("MSH^2".into(), RepeatedMsh));
    assert_eq!(
        seq(|s| s.insert(3, "NTE|1||note".into())),
        (
            "NTE^1".into(),
            Unexpected {
                segment: "NTE",
                after: "PV1"
            }
        )
    );
    assert_eq!(
        seq(|s| s.extend(["DSC|1".into(), "NTE|1".into()])),
        ("NTE^1".into(), AfterDsc)
    );
    assert_eq!(
        seq(|s| s[2] = "PV2|".into()),
        (
            "PV2^1".into(),
            Unexpected {
                segment: "PV2",
                after: "PID"
            }
        )
    );
    assert_eq!(
        seq(|s| {
            s.insert(3, "ORC|RE".into());
            s.insert(3, "ORC|RE".into());
        }),
        (
            "ORC^2".into(),
            Unexpected {
                segment: "ORC",
                after: "ORC"
            }
        )
    );
}

#[test]
fn the_grammar_allows_what_it_names_and_ignores_unknown_segments() {
    let base = ok(sample_named("oru_01_icu_periodic").hl7);
    let msg = ok(&oru01_with(|s| {
        s.insert(1, "SFT|Vendor^L^1|1.0".into());
        s.insert(3, "NTE|1||patient note".into());
        s.insert(5, "PV2|||".into());
        s.insert(6, "ORC|RE".into());
        s.insert(8, "NTE|1||order note".into());
        s.insert(9, "TQ1|1".into());
        s.insert(10, "ZXY|vendor|specific".into());
        let after_first_obx = 12;
        s.insert(after_first_obx, "NTE|1||observation note".into());
        s.insert(after_first_obx + 1, "ABC|unknown to the grammar".into());
        s.push("NTE|2||last".into());
        s.push("FT1|1".into());
        s.push("DSC|1".into());
    }));
    assert_eq!(msg.items.len(), base.items.len());
    assert_eq!(msg.equipment, base.equipment);
    // Without PID and PV1 at all: no identifiers, the values all the same.
    let anonymous = ok(&oru01_with(|s| {
        s.drain(1..3);
    }));
    assert!(anonymous.patient_ids.is_empty());
    assert_eq!(anonymous.equipment, base.equipment);
}

#[test]
fn a_second_obr_group_takes_its_own_obr_7() {
    let msg = ok(&oru01_with(|s| {
        s.push("OBR|2|||182777000^monitoring of patient^SCT|||20250114104500+0100".into());
        s.push(
            "OBX|1|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|91|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||F||||||||0012340000000001^^0012340000000001^EUI-64".into(),
        );
    }));
    let last = msg.items.last().unwrap();
    assert_eq!(last.effective(), utc(2025, 1, 14, 9, 45, 0));
    assert_eq!(last.obx().sequence, 15);
    let Hl7Item::Value { measurement, .. } = last else {
        panic!()
    };
    assert_eq!(measurement.status, ObservationStatus::Final);
    assert_eq!(msg.equipment[0].readings.len(), 6);
}

#[test]
fn specimen_observations_are_skipped() {
    let msg = ok(&oru01_with(|s| {
        s.push("SPM|1".into());
        s.push(
            "OBX|15|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.2.1.1|50|262688^MDC_DIM_PERCENT^MDC|||||F"
                .into(),
        );
    }));
    let last = msg.skipped.last().unwrap();
    assert_eq!(last.reason, SkipReason::SpecimenObservation);
    assert_eq!(last.mdc_code, Some(150456));
    assert_eq!(last.obx.sequence, 15);
}

// ---------------------------------------------------------------------------------------------
// OBX rows

#[test]
fn an_empty_value_with_a_final_status_is_refused() {
    let e = err(&oru01_with(|s| {
        let i = obx(s, 3);
        set_field(&mut s[i], 5, "");
        set_field(&mut s[i], 11, "F");
    }));
    assert_eq!(
        e,
        Hl7Error::MissingField {
            location: ErrorLocation::segment("OBX", 3).field(5)
        }
    );
    assert_eq!(e.ack_code(), AckCode::Error);
    assert_eq!(e.error_code().code(), 101);
}

#[test]
fn status_x_with_a_value_is_refused() {
    assert_eq!(
        err(&oru01_obx(3, 11, "X")),
        Hl7Error::DataType {
            location: ErrorLocation::segment("OBX", 3).field(5).repetition(1),
            problem: DataTypeProblem::ValueWithStatusX,
        }
    );
}

#[test]
fn status_x_without_value_type_or_unit_is_absent() {
    let msg = ok(&oru01_with(|s| {
        let i = obx(s, 5);
        for field in [2, 5, 6] {
            set_field(&mut s[i], field, "");
        }
        set_field(&mut s[i], 11, "X");
    }));
    assert_eq!(msg.equipment[0].absent.len(), 1);
    assert_eq!(msg.equipment[0].absent[0].measurand, Measurand::Spo2);
}

#[test]
fn result_statuses() {
    let status_of = |letter: &str| {
        let msg = ok(&oru01_obx(3, 11, letter));
        let Hl7Item::Value { measurement, .. } = &msg.items[0] else {
            panic!()
        };
        measurement.status
    };
    assert_eq!(status_of("F"), ObservationStatus::Final);
    assert_eq!(status_of("R"), ObservationStatus::Preliminary);
    assert_eq!(status_of("C"), ObservationStatus::Corrected);
    for letter in ["D", "W", "U", "I"] {
        let e = err(&oru01_obx(3, 11, letter));
        assert_eq!(e.kind(), "unsupported_status", "{letter}");
        assert_eq!(e.error_code().code(), 103);
        assert_eq!(e.location().unwrap().to_string(), "OBX^3^11^1");
    }
    assert_eq!(err(&oru01_obx(3, 11, "Q")).kind(), "unknown_status");
    assert_eq!(
        err(&oru01_obx(3, 11, "")),
        Hl7Error::MissingField {
            location: ErrorLocation::segment("OBX", 3).field(11)
        }
    );
}

#[test]
fn value_data_type_errors() {
    let at5 = ErrorLocation::segment("OBX", 3).field(5);
    for value in [
        "8.8e1", "88 ", "eighty", "1,000", "88^1", "0x58", "NaN", "\\X38\\8",
    ] {
        assert_eq!(
            err(&oru01_obx(3, 5, value)),
            Hl7Error::DataType {
                location: at5.repetition(1),
                problem: DataTypeProblem::NotNumeric
            },
            "{value:?}"
        );
    }
    assert_eq!(
        err(&oru01_obx(3, 5, "88~89")),
        Hl7Error::DataType {
            location: at5.repetition(2),
            problem: DataTypeProblem::RepeatedValue
        }
    );
    assert_eq!(
        err(&oru01_obx(3, 2, "ST")),
        Hl7Error::DataType {
            location: ErrorLocation::segment("OBX", 3).field(2).repetition(1),
            problem: DataTypeProblem::NotNumericType
        }
    );
    assert_eq!(
        err(&oru01_obx(3, 2, "")),
        Hl7Error::MissingField {
            location: ErrorLocation::segment("OBX", 3).field(2)
        }
    );
    // Signs and a leading point are NM.
    let msg = ok(&oru01_obx(14, 5, "+38.40"));
    assert_eq!(
        parts(msg.equipment[0].readings.last().unwrap()),
        [(Measurand::Temperature, 38.4)]
    );
}

#[test]
fn implausible_values_are_refused_without_quoting_them() {
    let e = err(&oru01_obx(5, 5, "101"));
    assert_eq!(
        e,
        Hl7Error::ImplausibleValue {
            location: ErrorLocation::segment("OBX", 5).field(5).repetition(1),
            measurand: Measurand::Spo2
        }
    );
    assert_eq!(
        e.to_string(),
        "OBX^5^5^1: the spo2 value is outside the plausible range 0 to 100 % (a device fault)"
    );
    assert_eq!(e.ack_code(), AckCode::Error);
    // A huge number of digits is still just implausible.
    assert_eq!(
        err(&oru01_obx(3, 5, &"9".repeat(400))).kind(),
        "implausible_value"
    );
    assert_eq!(err(&oru01_obx(3, 5, "-1")).kind(), "implausible_value");
    // The bounds themselves are plausible.
    ok(&oru01_obx(5, 5, "100"));
    ok(&oru01_obx(5, 5, "0"));
}

#[test]
fn unknown_and_unverified_codes_are_skipped_not_refused() {
    let msg = ok(&oru01_with(|s| {
        // The invasive arterial block (unverified in the reference), with a value.
        s.push("OBX|15|NM|150017^MDC_PRESS_BLD_ART_SYS^MDC|1.3.2.1|120|266016^MDC_DIM_MMHG^MDC|||||R|||20250114103000+0100".into());
        // The compound NIBP.
        s.push("OBX|16||150020^MDC_PRESS_BLD_NONINV^MDC|1.3.1.0|||||||X".into());
        // LOINC only.
        s.push("OBX|17|NM|8867-4^Heart rate^LN||70|/min^^UCUM|||||F|||20250114103000+0100".into());
        // A waveform row of another type.
        s.push("OBX|18|NA|131330^MDC_ECG_ELEC_POTL_II^MDC|1.1.2.1|1^2^3|||||||F".into());
    }));
    let skipped: Vec<_> = msg
        .skipped
        .iter()
        .map(|s| (s.obx.sequence, s.mdc_code, s.reason))
        .collect();
    assert_eq!(
        skipped[1..],
        [
            (15, Some(150017), SkipReason::UnknownMdcCode),
            (16, Some(150020), SkipReason::CompoundPanel),
            (17, None, SkipReason::NotMdcCoded),
            (18, Some(131330), SkipReason::UnknownMdcCode),
        ]
    );
    assert_eq!(msg.skipped[3].reason.kind(), "not_mdc_coded");
    assert_eq!(msg.items.len(), 7);
}

#[test]
fn obx_3_rules() {
    assert_eq!(
        err(&oru01_obx(3, 3, "")),
        Hl7Error::MissingField {
            location: ErrorLocation::segment("OBX", 3).field(3)
        }
    );
    assert_eq!(
        err(&oru01_obx(3, 3, "MDC_ECG_HEART_RATE^^MDC")),
        Hl7Error::DataType {
            location: ErrorLocation::segment("OBX", 3)
                .field(3)
                .repetition(1)
                .component(1),
            problem: DataTypeProblem::BadMdcCode
        }
    );
    // The numeric code decides, whatever the REFID says.
    let msg = ok(&oru01_obx(3, 3, "147842^MDC_WRONG_LABEL^MDC"));
    assert_eq!(msg.items[0].mdc().refid, "MDC_ECG_HEART_RATE");
    // MDC as the alternate coding.
    let msg = ok(&oru01_obx(
        3,
        3,
        "8867-4^Heart rate^LN^147842^MDC_ECG_HEART_RATE^MDC",
    ));
    assert_eq!(msg.items[0].mdc().code, 147842);
    assert_eq!(msg.items[0].measurand(), Measurand::HeartRate);
}

#[test]
fn units() {
    let at6 = ErrorLocation::segment("OBX", 3).field(6).repetition(1);
    assert_eq!(
        err(&oru01_obx(3, 6, "999999^MDC_DIM_WHAT^MDC")),
        Hl7Error::TableValue {
            location: at6.component(1),
            problem: TableProblem::UnknownUnit(999999)
        }
    );
    // A heart rate in breaths per minute.
    assert_eq!(
        err(&oru01_obx(3, 6, "264928^MDC_DIM_RESP_PER_MIN^MDC")),
        Hl7Error::TableValue {
            location: at6.component(1),
            problem: TableProblem::UnitDoesNotFit(Measurand::HeartRate)
        }
    );
    assert_eq!(
        err(&oru01_obx(3, 6, "266016^MDC_DIM_MMHG^MDC")).kind(),
        "unit_does_not_fit"
    );
    assert_eq!(
        err(&oru01_obx(3, 6, "bpm")),
        Hl7Error::TableValue {
            location: at6.component(3),
            problem: TableProblem::UnitNotCoded
        }
    );
    assert_eq!(
        err(&oru01_obx(3, 6, "")),
        Hl7Error::MissingField {
            location: ErrorLocation::segment("OBX", 3).field(6)
        }
    );
    assert_eq!(err(&oru01_obx(3, 6, "x^^MDC")).kind(), "bad_mdc_code");
    // UCUM-coded units convert exactly, as alternates too.
    let msg = ok(&oru01_with(|s| {
        let i = obx(s, 14);
        set_field(&mut s[i], 5, "101.3");
        set_field(&mut s[i], 6, "[degF]^degF^UCUM");
    }));
    let [(_, c)] = parts(msg.equipment[0].readings.last().unwrap())[..] else {
        panic!()
    };
    assert!(close(c, (101.3 - 32.0) * 5.0 / 9.0), "{c}");
    let msg = ok(&oru01_obx(8, 6, "mmHg^mmHg^L^mm[Hg]^mmHg^UCUM"));
    assert_eq!(msg.equipment[0].readings.len(), 5);
    assert_eq!(
        err(&oru01_obx(8, 6, "cel^^UCUM")).kind(),
        "unit_does_not_fit"
    );
}

// ---------------------------------------------------------------------------------------------
// Times

#[test]
fn time_zone_offsets_are_exact() {
    let effective = |stamp: &str| ok(&oru01_obx(3, 14, stamp)).items[0].effective();
    assert_eq!(effective("20250114103000+0100"), utc(2025, 1, 14, 9, 30, 0));
    assert_eq!(effective("20250114043000-0500"), utc(2025, 1, 14, 9, 30, 0));
    assert_eq!(effective("20250114151500+0545"), utc(2025, 1, 14, 9, 30, 0));
    assert_eq!(effective("20250114093000+0000"), utc(2025, 1, 14, 9, 30, 0));
    assert_eq!(effective("202501141030+0100"), utc(2025, 1, 14, 9, 30, 0));
    let fraction = effective("20250114103000.25+0100");
    assert_eq!(
        fraction,
        utc(2025, 1, 14, 9, 30, 0) + Duration::milliseconds(250)
    );
}

#[test]
fn invalid_times_are_refused_where_they_are() {
    let at14 = ErrorLocation::segment("OBX", 3)
        .field(14)
        .repetition(1)
        .component(1);
    for (stamp, problem) in [
        ("20250114253000+0100", TimeProblem::OutOfRange),
        ("20250230103000+0100", TimeProblem::OutOfRange),
        ("2025-01-14T10:30:00+01:00", TimeProblem::Syntax),
        ("20250114103000", TimeProblem::NoOffset),
        ("2025011410+0100", TimeProblem::TooImprecise),
        ("20250114103000+1500", TimeProblem::OffsetOutOfRange),
        ("19691231235959+0000", TimeProblem::BeforeEpoch),
    ] {
        assert_eq!(
            err(&oru01_obx(3, 14, stamp)),
            Hl7Error::DataType {
                location: at14,
                problem: DataTypeProblem::Time(problem)
            },
            "{stamp}"
        );
    }
}

#[test]
fn obr_7_is_the_fallback_time() {
    let msg = ok(&oru01_obx(3, 14, ""));
    assert_eq!(msg.items[0].effective(), utc(2025, 1, 14, 9, 30, 0));
    let changed = oru01_with(|s| {
        let i = obx(s, 3);
        set_field(&mut s[i], 14, "");
        set_field(&mut s[3], 7, "20250114102000+0100");
    });
    assert_eq!(
        ok(&changed).items[0].effective(),
        utc(2025, 1, 14, 9, 20, 0)
    );
    // OBR-7 without an offset is refused where it is used, at OBR-7.
    let no_offset = oru01_with(|s| {
        let i = obx(s, 3);
        set_field(&mut s[i], 14, "");
        set_field(&mut s[3], 7, "20250114102000");
    });
    assert_eq!(
        err(&no_offset),
        Hl7Error::DataType {
            location: ErrorLocation::segment("OBR", 1)
                .field(7)
                .repetition(1)
                .component(1),
            problem: DataTypeProblem::Time(TimeProblem::NoOffset)
        }
    );
    // A malformed OBR-7 is refused even if no row needs it.
    assert_eq!(
        err(&oru01_with(|s| set_field(&mut s[3], 7, "soon")))
            .location()
            .unwrap()
            .to_string(),
        "OBR^1^7^1^1"
    );
    // Neither time.
    let neither = oru01_with(|s| {
        let i = obx(s, 3);
        set_field(&mut s[i], 14, "");
        set_field(&mut s[3], 7, "");
    });
    assert_eq!(
        err(&neither),
        Hl7Error::NoObservationTime {
            location: ErrorLocation::segment("OBX", 3).field(14)
        }
    );
}

#[test]
fn an_assumed_offset_serves_senders_of_local_times() {
    let bytes = oru01_obx(3, 14, "20250114103000");
    let limits = Hl7Limits {
        assume_offset: FixedOffset::east_opt(3600),
        ..Hl7Limits::default()
    };
    let msg = decode_oru(&bytes, received(), &limits).unwrap();
    assert_eq!(msg.items[0].effective(), utc(2025, 1, 14, 9, 30, 0));
}

#[test]
fn times_in_the_future_are_refused() {
    let bytes = sample_named("oru_01_icu_periodic").hl7;
    let sent = utc(2025, 1, 14, 9, 30, 0);
    let limits = Hl7Limits::default();
    // Exactly the allowed skew ahead is accepted; a second more is not.
    assert!(decode_oru(bytes, sent - Duration::minutes(5), &limits).is_ok());
    let e = decode_oru(
        bytes,
        sent - Duration::minutes(5) - Duration::seconds(1),
        &limits,
    )
    .unwrap_err();
    assert_eq!(
        e,
        Hl7Error::FutureTime {
            location: ErrorLocation::segment("OBX", 3)
                .field(14)
                .repetition(1)
                .component(1),
            max_skew: Duration::minutes(5)
        }
    );
    assert_eq!(
        e.to_string(),
        "OBX^3^14^1^1: the observation time is more than 300 s after the time of receipt"
    );
}

// ---------------------------------------------------------------------------------------------
// Equipment

#[test]
fn equipment_identifier_forms_and_fallbacks() {
    let id_of = |obx18: &str| {
        let msg = ok(&oru01_obx(3, 18, obx18));
        let Hl7Item::Value {
            equipment,
            equipment_source,
            ..
        } = &msg.items[0]
        else {
            panic!()
        };
        (equipment.clone(), *equipment_source)
    };
    let (ge, source) = id_of("080019FFFE0B4020^B40_GE");
    assert_eq!(
        (ge.id.as_str(), ge.namespace_id.as_deref()),
        ("080019FFFE0B4020", Some("B40_GE"))
    );
    assert_eq!(source, EquipmentSource::Obx18);
    let (continua, _) = id_of("0012340000000001^EUI-64");
    assert_eq!(continua.namespace_id.as_deref(), Some("EUI-64"));
    // Only the first repetition counts.
    let (first, _) = id_of("AAAA^^AAAA^EUI-64~BBBB^^BBBB^EUI-64");
    assert_eq!(first.id, "AAAA");
    // Empty: the MDS row's OBX-18 (containment) …
    let inherited = oru01_with(|s| {
        set_field(&mut s[4], 18, "00AA000000000009^^00AA000000000009^EUI-64");
        let i = obx(s, 3);
        set_field(&mut s[i], 18, "");
    });
    let msg = ok(&inherited);
    let Hl7Item::Value {
        equipment,
        equipment_source,
        ..
    } = &msg.items[0]
    else {
        panic!()
    };
    assert_eq!(
        (equipment.id.as_str(), *equipment_source),
        ("00AA000000000009", EquipmentSource::Containment)
    );
    // … the nearest ancestor first (the VMD over the MDS).
    let nearest = oru01_with(|s| {
        set_field(&mut s[4], 18, "MDS");
        set_field(&mut s[5], 18, "VMD");
        let i = obx(s, 3);
        set_field(&mut s[i], 18, "");
    });
    assert_eq!(ok(&nearest).items[0].equipment().id, "VMD");
    // … else MSH-3's EUI-64, the sending device.
    let (fallback, source) = id_of("");
    assert_eq!(fallback.id, "0012340000000001");
    assert_eq!(source, EquipmentSource::SendingApplication);
    // … else refused.
    let nowhere = oru01_with(|s| {
        set_msh(&mut s[0], 3, "MONITOR_GW");
        let i = obx(s, 3);
        set_field(&mut s[i], 18, "");
    });
    assert_eq!(
        err(&nowhere),
        Hl7Error::NoEquipment {
            location: ErrorLocation::segment("OBX", 3).field(18)
        }
    );
}

#[test]
fn two_devices_in_one_message_are_two_groups() {
    let msg = ok(&oru01_with(|s| {
        for set_id in [8, 9, 10] {
            let i = obx(s, set_id);
            set_field(&mut s[i], 18, "00AA000000000009^^00AA000000000009^EUI-64");
        }
    }));
    assert_eq!(msg.equipment.len(), 2);
    assert_eq!(msg.equipment[0].equipment.id, "0012340000000001");
    assert_eq!(msg.equipment[0].readings.len(), 4);
    assert_eq!(msg.equipment[1].equipment.id, "00AA000000000009");
    assert_eq!(msg.equipment[1].readings.len(), 1);
    assert_eq!(
        msg.equipment[1].readings[0].code,
        ObservationCode::BloodPressure
    );
}

#[test]
fn the_preferred_row_wins_whatever_the_order() {
    // The oximeter's pulse rate before the ECG heart rate: the ECG rate is still kept.
    let msg = ok(&oru01_with(|s| {
        let hr = s.remove(obx(s, 3));
        s.push(hr);
    }));
    assert_eq!(
        msg.items
            .iter()
            .filter(|i| i.measurand() == Measurand::HeartRate)
            .count(),
        1
    );
    let hr = msg
        .items
        .iter()
        .find(|i| i.measurand() == Measurand::HeartRate)
        .unwrap();
    assert_eq!(hr.mdc().code, 147842);
    assert_eq!(msg.skipped[0].mdc_code, Some(149530));
    assert_eq!(
        msg.skipped[0].reason,
        SkipReason::Superseded { by: hr.obx() }
    );
    // An identical repeat keeps the first.
    let msg = ok(&oru01_with(|s| {
        let copy = s[obx(s, 12)].replacen(
            "OBX|12|NM|151562^MDC_RESP_RATE^MDC|1.4.1.1|24",
            "OBX|15|NM|151562^MDC_RESP_RATE^MDC|1.4.1.1|99",
            1,
        );
        s.push(copy);
    }));
    let rr: Vec<_> = msg.equipment[0]
        .readings
        .iter()
        .filter(|r| r.code == ObservationCode::Single(Measurand::RespRate))
        .collect();
    assert_eq!(parts(rr[0]), [(Measurand::RespRate, 24.0)]);
    assert_eq!(rr.len(), 1);
    // A value beats an absence of the same measurand: the ECG rate over a probe-off pulse rate.
    let msg = ok(&oru01_with(|s| {
        let i = obx(s, 6);
        set_field(&mut s[i], 5, "");
        set_field(&mut s[i], 11, "X");
    }));
    assert!(msg.equipment[0].absent.is_empty());
    assert_eq!(msg.skipped[0].obx.sequence, 6);
}

// ---------------------------------------------------------------------------------------------
// Escapes, identifiers, UTF-8

#[test]
fn escape_sequences_in_identifiers_are_decoded() {
    let msg = ok(&oru01_with(|s| {
        set_field(&mut s[1], 3, r"MRN\T\1^^^HOSP\F\X^MR~\X4142\^^^^NHS");
        set_msh(&mut s[0], 10, r"ICU1\S\000001");
        let i = obx(s, 3);
        set_field(&mut s[i], 18, r"caf\XC3A9\^^x^EUI-64");
    }));
    assert_eq!(msg.header.control_id, "ICU1^000001");
    assert_eq!(msg.patient_ids[0].id, "MRN&1");
    assert_eq!(
        msg.patient_ids[0].assigning_authority.as_deref(),
        Some("HOSP|X")
    );
    assert_eq!(msg.patient_ids[1].id, "AB");
    assert_eq!(msg.patient_ids[1].type_code.as_deref(), Some("NHS"));
    assert_eq!(msg.items[0].equipment().id, "café");
    // The ACK echoes MSH-10 as sent, escaped.
    let ack = ack_fields(&build_ack(&msg.ack, AckCode::Accept, None, received(), "A"));
    assert_eq!(ack[1], ["MSA", "AA", r"ICU1\S\000001"]);
}

#[test]
fn bad_escapes_and_control_characters_are_refused_where_they_are() {
    let at = |seg, seq, field, rep, comp| {
        ErrorLocation::segment(seg, seq)
            .field(field)
            .repetition(rep)
            .component(comp)
    };
    for (bytes, location, problem) in [
        (
            oru01_with(|s| set_field(&mut s[1], 3, r"MRN\T1^^^HOSP^MR")),
            at("PID", 1, 3, 1, 1),
            DataTypeProblem::Escape(EscapeProblem::Unterminated),
        ),
        (
            oru01_with(|s| set_field(&mut s[1], 3, r"MRN1^^^HOSP^MR~\H\X")),
            at("PID", 1, 3, 2, 1),
            DataTypeProblem::Escape(EscapeProblem::Unsupported('H')),
        ),
        (
            oru01_obx(3, 18, r"\X0D\^^x^EUI-64"),
            at("OBX", 3, 18, 1, 1),
            DataTypeProblem::ControlCharacter,
        ),
        (
            oru01_obx(3, 18, "tab\there"),
            at("OBX", 3, 18, 1, 1),
            DataTypeProblem::ControlCharacter,
        ),
        (
            oru01_msh(10, r"\XFF\"),
            ErrorLocation::segment("MSH", 1).field(10),
            DataTypeProblem::Escape(EscapeProblem::HexNotUtf8),
        ),
    ] {
        assert_eq!(err(&bytes), Hl7Error::DataType { location, problem });
    }
}

#[test]
fn non_utf8_bytes_are_refused_with_their_offset() {
    let mut bytes = sample_named("oru_01_icu_periodic").hl7.to_vec();
    let name = text(&bytes).find("TESTPATIENT").unwrap();
    bytes[name] = 0xC9; // a Latin-1 É
    let e = err(&bytes);
    assert_eq!(e, Hl7Error::NotUtf8 { offset: name });
    assert_eq!(e.ack_code(), AckCode::Error);
    // The NACK still echoes the (intact) MSH.
    let ack = ack_fields(&build_nack(&bytes, &e, received(), "N"));
    assert_eq!(ack[1], ["MSA", "AE", "ICU1-000001"]);
    // In MSH itself: the ACK keeps the fields before the bad byte.
    let mut bytes = sample_named("oru_01_icu_periodic").hl7.to_vec();
    let facility = text(&bytes).find("ICU_EAST").unwrap();
    bytes[facility] = 0xFF;
    assert_eq!(err(&bytes), Hl7Error::NotUtf8 { offset: facility });
    let ack = ack_fields(&build_nack(&bytes, &err(&bytes), received(), "N"));
    assert_eq!(
        ack[0][2..6],
        ["", "", "MONITOR_GW^0012340000000001^EUI-64", ""]
    );
    assert_eq!(ack[1], ["MSA", "AE", ""]);
}

// ---------------------------------------------------------------------------------------------
// Limits

#[test]
fn huge_repetitions_are_refused() {
    let reps = |n: usize| {
        oru01_with(|s| {
            let ids: Vec<String> = (0..n).map(|i| format!("ID{i}^^^HOSP^MR")).collect();
            set_field(&mut s[1], 3, &ids.join("~"));
        })
    };
    assert_eq!(ok(&reps(32)).patient_ids.len(), 32);
    let e = err(&reps(33));
    assert_eq!(
        e,
        Hl7Error::TooManyRepetitions {
            location: ErrorLocation::segment("PID", 1).field(3),
            max: 32
        }
    );
    assert_eq!(e.ack_code(), AckCode::Reject);
    assert_eq!(e.error_code().code(), 207);
    let huge = oru01_with(|s| set_field(&mut s[1], 3, &"~".repeat(100_000)));
    assert_eq!(err(&huge).kind(), "too_many_repetitions");
    // Empty repetitions are not identifiers.
    let sparse = oru01_with(|s| set_field(&mut s[1], 3, "~~MRN1^^^HOSP^MR~"));
    assert_eq!(ok(&sparse).patient_ids.len(), 1);
}

#[test]
fn size_segment_observation_and_identifier_limits() {
    let bytes = sample_named("oru_01_icu_periodic").hl7;
    let decode_with = |limits: Hl7Limits| decode_oru(bytes, received(), &limits);
    let size = bytes.len();
    assert!(
        decode_with(Hl7Limits {
            max_bytes: size,
            ..Default::default()
        })
        .is_ok()
    );
    assert_eq!(
        decode_with(Hl7Limits {
            max_bytes: size - 1,
            ..Default::default()
        })
        .unwrap_err(),
        Hl7Error::TooLarge {
            size,
            max: size - 1
        }
    );
    // 18 segments, 14 OBX.
    assert!(
        decode_with(Hl7Limits {
            max_segments: 18,
            ..Default::default()
        })
        .is_ok()
    );
    assert_eq!(
        decode_with(Hl7Limits {
            max_segments: 17,
            ..Default::default()
        })
        .unwrap_err(),
        Hl7Error::TooManySegments { max: 17 }
    );
    assert!(
        decode_with(Hl7Limits {
            max_observations: 14,
            ..Default::default()
        })
        .is_ok()
    );
    assert_eq!(
        decode_with(Hl7Limits {
            max_observations: 13,
            ..Default::default()
        })
        .unwrap_err(),
        Hl7Error::TooManyObservations { max: 13 }
    );
    let long = err(&oru01_obx(3, 18, &"A".repeat(200)));
    assert_eq!(
        long,
        Hl7Error::ValueTooLong {
            location: ErrorLocation::segment("OBX", 3)
                .field(18)
                .repetition(1)
                .component(1),
            max: 199
        }
    );
    assert_eq!(long.ack_code(), AckCode::Reject);
    ok(&oru01_obx(3, 18, &"A".repeat(199)));
}

// ---------------------------------------------------------------------------------------------
// Errors never carry patient data

#[test]
fn errors_name_positions_never_patient_data() {
    let secrets = [
        "MRN10001",
        "TESTPATIENT",
        "ALPHA",
        "19580312",
        "0012340000000001",
    ];
    let cases = [
        oru01_obx(3, 5, "88,5"),
        oru01_obx(3, 14, "20250114253000+0100"),
        oru01_obx(3, 18, r"0012340000000001\H\"),
        oru01_with(|s| set_field(&mut s[1], 3, r"MRN10001\X0A\^^^HOSP^MR")),
        oru01_with(|s| set_field(&mut s[1], 3, &"MRN10001~".repeat(40))),
        oru01_obx(5, 5, "190"),
        oru01_with(|s| s.swap(1, 2)),
    ];
    for bytes in &cases {
        let e = err(bytes);
        let shown = format!("{e} {e:?}");
        for secret in secrets {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(!shown.contains("88,5") && !shown.contains("190"), "{shown}");
    }
}

// ---------------------------------------------------------------------------------------------
// The acknowledgement

#[test]
fn ack_without_location_and_for_store_failures() {
    let msg = ok(sample_named("oru_02_ward_spotcheck").hl7);
    let ack = ack_fields(&build_ack(
        &msg.ack,
        AckCode::Error,
        Some(&AckError::internal()),
        received(),
        "ACK9",
    ));
    assert_eq!(ack[1], ["MSA", "AE", "WARD-000417"]);
    assert_eq!(
        ack[2],
        ["ERR", "", "", "207^Application internal error^HL70357", "E"]
    );
    // A warning may accompany an accept.
    let warning = AckError {
        location: Some(ErrorLocation::segment("OBX", 6)),
        code: ErrorCode::TableValueNotFound,
        severity: Severity::Warning,
    };
    let ack = ack_fields(&build_ack(
        &msg.ack,
        AckCode::Accept,
        Some(&warning),
        received(),
        "A",
    ));
    assert_eq!(
        ack[2],
        ["ERR", "", "OBX^6", "103^Table value not found^HL70357", "W"]
    );
}

#[test]
fn our_control_id_is_escaped() {
    let msg = ok(sample_named("oru_01_icu_periodic").hl7);
    let ack = text(&build_ack(
        &msg.ack,
        AckCode::Accept,
        None,
        received(),
        "A|B^C\r",
    ));
    assert!(ack.contains(r"|A\F\B\S\C\X0D\|P|2.6"), "{ack}");
    assert_eq!(ack.matches('\r').count(), 2);
}

#[test]
fn which_acks_the_sender_wants() {
    let wanted = |msh16: &str| {
        let ctx = AckContext::best_effort(&oru01_msh(16, msh16));
        [AckCode::Accept, AckCode::Error, AckCode::Reject].map(|c| ctx.application_ack_wanted(c))
    };
    assert_eq!(wanted("AL"), [true, true, true]);
    assert_eq!(wanted("NE"), [false, false, false]);
    assert_eq!(wanted("ER"), [false, true, true]);
    assert_eq!(wanted("SU"), [true, false, false]);
    assert_eq!(wanted(""), [true, true, true]);
    let ctx = AckContext::best_effort(sample_named("oru_01_icu_periodic").hl7);
    assert_eq!(ctx.accept_ack(), Some(AckCondition::Never));
    assert_eq!(ctx.application_ack(), Some(AckCondition::Always));
}

#[test]
fn best_effort_drops_what_it_cannot_echo_safely() {
    // A control character (an MLLP byte) in MSH-10, an overlong MSH-4.
    let bytes = oru01_with(|s| {
        set_msh(&mut s[0], 10, "ICU\u{1c}1");
        set_msh(&mut s[0], 4, &"F".repeat(300));
    });
    let ctx = AckContext::best_effort(&bytes);
    assert_eq!(ctx.original_control_id(), "");
    let ack = ack_fields(&build_ack(&ctx, AckCode::Reject, None, received(), "N"));
    assert_eq!(ack[0][5], "");
    assert_eq!(ack[0][4], "MONITOR_GW^0012340000000001^EUI-64");
    let framed = mllp::frame(
        &build_ack(&ctx, AckCode::Reject, None, received(), "N"),
        1 << 20,
    );
    assert!(framed.is_ok());
    // Bad delimiters: nothing is echoed, the default delimiters are used.
    let ctx = AckContext::best_effort(b"MSH|^^\\&|APP|FAC|||||CTL|P|2.6\r");
    assert_eq!(ctx.encoding(), EncodingCharacters::default());
    assert_eq!(ctx.original_control_id(), "");
    // A processing ID of T is echoed (the ACK is part of the same training exchange).
    let ctx = AckContext::best_effort(&oru01_msh(11, "T"));
    let ack = ack_fields(&build_ack(&ctx, AckCode::Reject, None, received(), "N"));
    assert_eq!(ack[0][10], "T");
}

/// Every refusal above gives an ACK that is itself well formed HL7 and frames.
#[test]
fn every_nack_is_well_formed() {
    let inputs: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"MSH|".to_vec(),
        oru01_msh(9, "ADT^A01"),
        oru01_msh(12, "2.2"),
        oru01_obx(3, 5, "1,5"),
        oru01_with(|s| s.swap(1, 2)),
        oru01_obx(3, 18, &"\u{b}".repeat(3)),
        text(sample_named("oru_01_icu_periodic").hl7)
            .replace('\r', "\n")
            .into_bytes(),
    ];
    for bytes in inputs {
        let e = err(&bytes);
        let nack = build_nack(&bytes, &e, received(), "N");
        let fields = ack_fields(&nack);
        assert_eq!(fields.len(), 3, "{fields:?}");
        assert_eq!(fields[0][0], "MSH");
        assert_eq!(fields[1][1], e.ack_code().as_str());
        assert_eq!(
            fields[2][3].split('^').next().unwrap(),
            e.error_code().code().to_string()
        );
        assert!(mllp::frame(&nack, 4096).is_ok());
        assert!(!nack.contains(&b'\n'));
    }
}
