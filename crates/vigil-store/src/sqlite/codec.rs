//! How model values become column values and back: times, statuses, observation values and
//! waveform samples. Pure functions, tested here.

use vigil_model::{
    Instant, Measurand, ObservationCode, ObservationComponent, ObservationStatus, ObservationValue,
    Quantity,
};

/// Microseconds since the Unix epoch, UTC; finer parts are truncated (floored).
pub(super) fn micros(t: Instant) -> i64 {
    t.timestamp_micros()
}

/// The instant `us` microseconds after the Unix epoch; `None` if out of chrono's range.
pub(super) fn instant(us: i64) -> Option<Instant> {
    chrono::DateTime::from_timestamp_micros(us)
}

/// The stored status number. Explicit and stable: never derived from enum order.
pub(super) fn status_code(status: ObservationStatus) -> i64 {
    match status {
        ObservationStatus::Final => 0,
        ObservationStatus::Preliminary => 1,
        ObservationStatus::Amended => 2,
        ObservationStatus::Corrected => 3,
        ObservationStatus::Cancelled => 4,
        ObservationStatus::EnteredInError => 5,
        ObservationStatus::Registered => 6,
        ObservationStatus::Unknown => 7,
    }
}

pub(super) fn status_from_code(code: i64) -> Option<ObservationStatus> {
    Some(match code {
        0 => ObservationStatus::Final,
        1 => ObservationStatus::Preliminary,
        2 => ObservationStatus::Amended,
        3 => ObservationStatus::Corrected,
        4 => ObservationStatus::Cancelled,
        5 => ObservationStatus::EnteredInError,
        6 => ObservationStatus::Registered,
        7 => ObservationStatus::Unknown,
        _ => return None,
    })
}

/// An observation value as the columns `value, unit, systolic, diastolic, mean, value_json`.
#[derive(Debug, Default, PartialEq)]
pub(super) struct ValueColumns<'a> {
    pub value: Option<f64>,
    pub unit: Option<&'a str>,
    pub systolic: Option<f64>,
    pub diastolic: Option<f64>,
    pub mean: Option<f64>,
    pub json: Option<String>,
}

/// A value the store cannot represent exactly.
#[derive(Debug, PartialEq)]
pub(super) struct NotFinite;

fn all_finite(value: &ObservationValue) -> bool {
    match value {
        ObservationValue::Quantity(q) => q.value.is_finite(),
        ObservationValue::Components(c) => c.iter().all(|c| c.value.value.is_finite()),
        ObservationValue::Acvpu(_)
        | ObservationValue::OnOxygen(_)
        | ObservationValue::Detected
        | ObservationValue::Absent(_)
        | ObservationValue::News2(_) => true,
    }
}

/// Encodes compactly when the value has the usual shape (a single measurand's quantity; a
/// blood-pressure panel of distinct canonical-unit components in systolic, diastolic, mean order)
/// and as JSON otherwise (also for the rare coded values: consciousness, on oxygen), so every
/// value round-trips exactly.
pub(super) fn encode_value(
    code: ObservationCode,
    value: &ObservationValue,
) -> Result<ValueColumns<'_>, NotFinite> {
    if !all_finite(value) {
        return Err(NotFinite);
    }
    match (code, value) {
        (ObservationCode::Single(m), ObservationValue::Quantity(q)) => Ok(ValueColumns {
            value: Some(q.value),
            unit: (q.unit != m.canonical_unit()).then_some(q.unit.as_str()),
            ..ValueColumns::default()
        }),
        (ObservationCode::BloodPressure, ObservationValue::Components(parts))
            if is_compact_panel(parts) =>
        {
            let mut cols = ValueColumns::default();
            for part in parts {
                let slot = match part.measurand {
                    Measurand::SystolicBp => &mut cols.systolic,
                    Measurand::DiastolicBp => &mut cols.diastolic,
                    _ => &mut cols.mean,
                };
                *slot = Some(part.value.value);
            }
            Ok(cols)
        }
        _ => Ok(ValueColumns {
            // Serialising plain data with finite numbers cannot fail.
            json: Some(serde_json::to_string(value).map_err(|_| NotFinite)?),
            ..ValueColumns::default()
        }),
    }
}

fn is_compact_panel(parts: &[ObservationComponent]) -> bool {
    parts
        .iter()
        .all(|p| p.measurand.is_bp_component() && p.value.unit == p.measurand.canonical_unit())
        && parts.windows(2).all(|w| w[0].measurand < w[1].measurand)
}

/// The inverse of [`encode_value`]; the error says what is wrong without quoting data.
pub(super) fn decode_value(
    code: ObservationCode,
    cols: ValueColumns<'_>,
) -> Result<ObservationValue, &'static str> {
    if let Some(json) = cols.json {
        return serde_json::from_str(&json).map_err(|_| "value_json is not a valid value");
    }
    match code {
        ObservationCode::Single(m) => {
            let value = cols.value.ok_or("value is missing")?;
            let unit = cols.unit.unwrap_or(m.canonical_unit());
            Ok(ObservationValue::Quantity(Quantity::new(value, unit)))
        }
        ObservationCode::BloodPressure => {
            let parts = [
                (Measurand::SystolicBp, cols.systolic),
                (Measurand::DiastolicBp, cols.diastolic),
                (Measurand::MeanBp, cols.mean),
            ]
            .into_iter()
            .filter_map(|(measurand, value)| {
                value.map(|v| ObservationComponent {
                    measurand,
                    value: Quantity::new(v, measurand.canonical_unit()),
                })
            })
            .collect();
            Ok(ObservationValue::Components(parts))
        }
        // Events and scores are always written with their value in `value_json`.
        ObservationCode::Event(_) | ObservationCode::News2 => Err("value_json is missing"),
    }
}

/// Format byte of [`encode_samples`]'s output.
const SAMPLES_DELTA_ZIGZAG_VARINT: u8 = 1;

/// Waveform samples as stored: a format byte (1), then for each sample its difference from the
/// previous sample (the first sample's from 0), zigzag-mapped to an unsigned integer
/// (0, -1, 1, -2, … → 0, 1, 2, 3, …) and written as an LEB128 varint (7 bits a byte, low bits
/// first, high bit set on all but the last byte). A smooth signal costs 1–2 bytes a sample.
pub(super) fn encode_samples(samples: &[i32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + samples.len() * 2);
    out.push(SAMPLES_DELTA_ZIGZAG_VARINT);
    let mut previous = 0i64;
    for &sample in samples {
        let delta = i64::from(sample) - previous;
        previous = i64::from(sample);
        let mut zigzag = ((delta << 1) ^ (delta >> 63)) as u64;
        loop {
            let byte = (zigzag & 0x7f) as u8;
            zigzag >>= 7;
            if zigzag == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
    out
}

/// The inverse of [`encode_samples`], checking that exactly `count` samples are there.
pub(super) fn decode_samples(blob: &[u8], count: usize) -> Result<Vec<i32>, &'static str> {
    let (&format, mut rest) = blob.split_first().ok_or("samples are empty")?;
    if format != SAMPLES_DELTA_ZIGZAG_VARINT {
        return Err("samples have an unknown format");
    }
    let mut samples = Vec::with_capacity(count);
    let mut previous = 0i64;
    while !rest.is_empty() {
        let mut zigzag = 0u64;
        let mut shift = 0u32;
        loop {
            let (&byte, tail) = rest.split_first().ok_or("samples end inside a number")?;
            rest = tail;
            if shift > 63 {
                return Err("samples hold an over-long number");
            }
            zigzag |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        let delta = (zigzag >> 1) as i64 ^ -((zigzag & 1) as i64);
        previous = previous
            .checked_add(delta)
            .ok_or("a sample is out of range")?;
        let sample = i32::try_from(previous).map_err(|_| "a sample is out of range")?;
        if samples.len() == count {
            return Err("there are more samples than recorded");
        }
        samples.push(sample);
    }
    if samples.len() != count {
        return Err("there are fewer samples than recorded");
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_round_trip_including_extremes() {
        let cases: Vec<Vec<i32>> = vec![
            vec![],
            vec![0],
            vec![i32::MIN, i32::MAX, i32::MIN, 0, -1, 1, 63, -64, 64, -65],
            (0..5000)
                .map(|i| ((i as f64 / 20.0).sin() * 1000.0) as i32)
                .collect(),
        ];
        for samples in cases {
            let blob = encode_samples(&samples);
            assert_eq!(decode_samples(&blob, samples.len()).unwrap(), samples);
        }
    }

    #[test]
    fn a_smooth_signal_costs_about_a_byte_a_sample() {
        let samples: Vec<i32> = (0..7500)
            .map(|i| ((i as f64 / 40.0).sin() * 500.0) as i32)
            .collect();
        let blob = encode_samples(&samples);
        assert!(blob.len() < samples.len() * 2, "{} bytes", blob.len());
    }

    #[test]
    fn damaged_samples_are_refused() {
        let blob = encode_samples(&[1, 2, 300]);
        assert!(decode_samples(&blob, 2).is_err(), "more than recorded");
        assert!(decode_samples(&blob, 4).is_err(), "fewer than recorded");
        assert!(
            decode_samples(&blob[..blob.len() - 1], 3).is_err(),
            "cut inside a number"
        );
        assert!(decode_samples(&[], 0).is_err(), "no format byte");
        assert!(decode_samples(&[9], 0).is_err(), "unknown format");
        let mut too_long = vec![SAMPLES_DELTA_ZIGZAG_VARINT];
        too_long.extend([0xff; 11]);
        too_long.push(0);
        assert!(decode_samples(&too_long, 1).is_err(), "over-long varint");
        // A delta that leaves the i32 range.
        let out_of_range = encode_samples(&[i32::MAX]);
        let mut twice = out_of_range.clone();
        twice.extend_from_slice(&out_of_range[1..]);
        assert!(decode_samples(&twice, 2).is_err());
    }

    #[test]
    fn statuses_have_distinct_stable_codes() {
        for s in ObservationStatus::ALL {
            assert_eq!(status_from_code(status_code(s)), Some(s));
        }
        assert_eq!(status_code(ObservationStatus::Final), 0);
        assert_eq!(status_from_code(8), None);
    }

    #[test]
    fn usual_values_are_compact_and_unusual_ones_round_trip_as_json() {
        let hr = ObservationCode::Single(Measurand::HeartRate);
        let q = ObservationValue::Quantity(Quantity::new(72.0, "/min"));
        let cols = encode_value(hr, &q).unwrap();
        assert_eq!(
            (cols.value, cols.unit, cols.json.is_none()),
            (Some(72.0), None, true)
        );

        let bp = ObservationValue::Components(vec![
            ObservationComponent {
                measurand: Measurand::SystolicBp,
                value: Quantity::new(120.0, "mm[Hg]"),
            },
            ObservationComponent {
                measurand: Measurand::MeanBp,
                value: Quantity::new(93.0, "mm[Hg]"),
            },
        ]);
        let cols = encode_value(ObservationCode::BloodPressure, &bp).unwrap();
        assert_eq!(
            (cols.systolic, cols.diastolic, cols.mean),
            (Some(120.0), None, Some(93.0))
        );
        assert_eq!(
            decode_value(ObservationCode::BloodPressure, cols).unwrap(),
            bp
        );

        let unusual = [
            (hr, ObservationValue::Quantity(Quantity::new(1.2, "Hz"))),
            (
                ObservationCode::BloodPressure,
                ObservationValue::Quantity(Quantity::new(1.0, "mm[Hg]")),
            ),
            (
                ObservationCode::BloodPressure,
                ObservationValue::Components(vec![
                    ObservationComponent {
                        measurand: Measurand::DiastolicBp,
                        value: Quantity::new(80.0, "mm[Hg]"),
                    },
                    ObservationComponent {
                        measurand: Measurand::SystolicBp,
                        value: Quantity::new(120.0, "mm[Hg]"),
                    },
                ]),
            ),
            (hr, ObservationValue::Components(vec![])),
        ];
        for (code, value) in unusual {
            let cols = encode_value(code, &value).unwrap();
            assert_eq!(decode_value(code, cols).unwrap(), value, "{code:?}");
        }
        assert_eq!(
            encode_value(
                hr,
                &ObservationValue::Quantity(Quantity::new(f64::NAN, "/min"))
            ),
            Err(NotFinite)
        );
    }
}
