//! IEEE 11073-20601 SFLOAT (`medfloat16`) and FLOAT (`medfloat32`): base-10 floating point, as
//! Bluetooth SIG health characteristics carry their measured values.
//!
//! ```text
//! SFLOAT: bits 15..12 exponent (4-bit two's complement), bits 11..0 mantissa (12-bit)
//! FLOAT:  bits 31..24 exponent (8-bit two's complement), bits 23..0 mantissa (24-bit)
//! value = mantissa × 10^exponent
//! ```
//!
//! The five special values (NaN, NRes, ±INFINITY, reserved) are defined on the **raw** word with
//! exponent 0 (IEEE 11073-20601 §F.8, the HL7 PHD IG "IEEE 11073 FLOATs and SFLOATs" table). A
//! raw word whose mantissa has a special pattern but whose exponent is not 0 (0xF7FF, mantissa
//! 2047 at exponent −1) is not special in 20601 and decodes as the number it spells (204.7):
//! Vigil follows the standard rather than the stacks that read any 0x7FF mantissa as NaN, so
//! that a value is refused or kept for one reason only, the one the standard gives.

use std::fmt;

/// A decoded SFLOAT or FLOAT: an exact decimal, or one of the special values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Medfloat {
    /// `mantissa × 10^exponent`, kept exactly: 2, 2.0 and 2.00 are different values here
    /// because the exponent carries the device's precision.
    Value { mantissa: i32, exponent: i8 },
    /// Not a number: the device has no value. Never turned into a number.
    Special(Special),
}

/// The special values of IEEE 11073-20601 SFLOAT and FLOAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Special {
    /// Not a number: an invalid result.
    Nan,
    /// Not at this resolution: the value cannot be represented.
    NRes,
    /// Above the range the device can represent.
    PositiveInfinity,
    /// Below the range the device can represent.
    NegativeInfinity,
    /// Reserved for future use by 20601.
    Reserved,
}

impl Special {
    pub const ALL: [Special; 5] = [
        Special::Nan,
        Special::NRes,
        Special::PositiveInfinity,
        Special::NegativeInfinity,
        Special::Reserved,
    ];

    /// A stable snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Special::Nan => "nan",
            Special::NRes => "nres",
            Special::PositiveInfinity => "positive_infinity",
            Special::NegativeInfinity => "negative_infinity",
            Special::Reserved => "reserved",
        }
    }

    /// The FHIR `data-absent-reason` code the HL7 PHD IG gives the special value.
    pub fn data_absent_reason(self) -> &'static str {
        match self {
            Special::Nan => "not-a-number",
            Special::NRes | Special::Reserved => "error",
            Special::PositiveInfinity => "positive-infinity",
            Special::NegativeInfinity => "negative-infinity",
        }
    }

    /// The raw SFLOAT word that stands for this special value.
    pub fn sfloat_raw(self) -> u16 {
        match self {
            Special::Nan => 0x07FF,
            Special::NRes => 0x0800,
            Special::PositiveInfinity => 0x07FE,
            Special::NegativeInfinity => 0x0802,
            Special::Reserved => 0x0801,
        }
    }

    /// The raw FLOAT word that stands for this special value.
    pub fn float_raw(self) -> u32 {
        match self {
            Special::Nan => 0x007F_FFFF,
            Special::NRes => 0x0080_0000,
            Special::PositiveInfinity => 0x007F_FFFE,
            Special::NegativeInfinity => 0x0080_0002,
            Special::Reserved => 0x0080_0001,
        }
    }
}

impl fmt::Display for Special {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Special::Nan => "NaN",
            Special::NRes => "NRes",
            Special::PositiveInfinity => "+INFINITY",
            Special::NegativeInfinity => "-INFINITY",
            Special::Reserved => "a reserved special value",
        })
    }
}

/// Decodes an SFLOAT from its raw 16-bit word (already assembled from the little-endian octets).
pub fn decode_sfloat(raw: u16) -> Medfloat {
    if let Some(special) = Special::ALL.into_iter().find(|s| s.sfloat_raw() == raw) {
        return Medfloat::Special(special);
    }
    // Arithmetic shifts sign-extend the 4-bit exponent and the 12-bit mantissa.
    let exponent = ((raw as i16) >> 12) as i8;
    let mantissa = i32::from(((raw << 4) as i16) >> 4);
    Medfloat::Value { mantissa, exponent }
}

/// Decodes a FLOAT from its raw 32-bit word (already assembled from the little-endian octets).
pub fn decode_float(raw: u32) -> Medfloat {
    if let Some(special) = Special::ALL.into_iter().find(|s| s.float_raw() == raw) {
        return Medfloat::Special(special);
    }
    let exponent = (raw >> 24) as u8 as i8;
    let mantissa = ((raw << 8) as i32) >> 8;
    Medfloat::Value { mantissa, exponent }
}

/// SFLOAT mantissa range (12-bit two's complement).
const SFLOAT_MANTISSA: std::ops::RangeInclusive<i32> = -2048..=2047;
/// SFLOAT exponent range (4-bit two's complement).
const SFLOAT_EXPONENT: std::ops::RangeInclusive<i8> = -8..=7;
/// FLOAT mantissa range (24-bit two's complement).
const FLOAT_MANTISSA: std::ops::RangeInclusive<i32> = -8_388_608..=8_388_607;

/// Encodes a value as an SFLOAT word, the inverse of [`decode_sfloat`]. `None` when the value
/// does not fit, or when it is a number whose word would be a special value's (mantissa ±2047,
/// −2048 or ±2046 at exponent 0): such a word would be read back as the special value.
pub fn encode_sfloat(value: Medfloat) -> Option<u16> {
    match value {
        Medfloat::Special(s) => Some(s.sfloat_raw()),
        Medfloat::Value { mantissa, exponent } => {
            if !SFLOAT_MANTISSA.contains(&mantissa) || !SFLOAT_EXPONENT.contains(&exponent) {
                return None;
            }
            let raw = ((exponent as u16 & 0x0F) << 12) | (mantissa as u16 & 0x0FFF);
            (decode_sfloat(raw) == value).then_some(raw)
        }
    }
}

/// Encodes a value as a FLOAT word, the inverse of [`decode_float`]; `None` as for
/// [`encode_sfloat`] (mantissa ±(2²³−1), −2²³ or ±(2²³−2) at exponent 0 are special words).
pub fn encode_float(value: Medfloat) -> Option<u32> {
    match value {
        Medfloat::Special(s) => Some(s.float_raw()),
        Medfloat::Value { mantissa, exponent } => {
            if !FLOAT_MANTISSA.contains(&mantissa) {
                return None;
            }
            let raw = (u32::from(exponent as u8) << 24) | (mantissa as u32 & 0x00FF_FFFF);
            (decode_float(raw) == value).then_some(raw)
        }
    }
}

impl Medfloat {
    /// The number, or `None` for a special value (a special value is never a number).
    ///
    /// Correctly rounded (the f64 nearest to the exact decimal) when |exponent| ≤ 22, which covers
    /// every SFLOAT and every plausible FLOAT; within a few ulps beyond.
    pub fn to_f64(self) -> Option<f64> {
        match self {
            Medfloat::Value { mantissa, exponent } => {
                Some(decimal_to_f64(i64::from(mantissa), i32::from(exponent)))
            }
            Medfloat::Special(_) => None,
        }
    }

    /// The special value, if this is one.
    pub fn special(self) -> Option<Special> {
        match self {
            Medfloat::Value { .. } => None,
            Medfloat::Special(s) => Some(s),
        }
    }
}

impl fmt::Display for Medfloat {
    /// The decimal as the device wrote it, precision kept: 2.00, 36.7, -1234, 1.18e-3 as 0.00118.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Medfloat::Special(s) => s.fmt(f),
            Medfloat::Value { mantissa, exponent } => {
                let sign = if mantissa < 0 { "-" } else { "" };
                let digits = mantissa.unsigned_abs().to_string();
                if exponent >= 0 {
                    let zeros = "0".repeat(exponent as usize);
                    return write!(f, "{sign}{digits}{zeros}");
                }
                let places = usize::from(exponent.unsigned_abs());
                if digits.len() > places {
                    let (int, frac) = digits.split_at(digits.len() - places);
                    write!(f, "{sign}{int}.{frac}")
                } else {
                    let zeros = "0".repeat(places - digits.len());
                    write!(f, "{sign}0.{zeros}{digits}")
                }
            }
        }
    }
}

/// Powers of ten that f64 holds exactly.
const EXACT_POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// `mantissa × 10^exponent` as the nearest f64 when |mantissa| < 2⁵³ and |exponent| ≤ 22: one
/// IEEE operation on two exact operands rounds once. Multiplying by 0.1 instead would round twice
/// (36.7 would come out as 36.699999999999996).
pub(crate) fn decimal_to_f64(mantissa: i64, exponent: i32) -> f64 {
    let m = mantissa as f64;
    let k = exponent.unsigned_abs() as usize;
    let scale = EXACT_POW10
        .get(k)
        .copied()
        .unwrap_or_else(|| 10f64.powi(k as i32));
    if exponent >= 0 { m * scale } else { m / scale }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn v(mantissa: i32, exponent: i8) -> Medfloat {
        Medfloat::Value { mantissa, exponent }
    }

    /// Every worked example of `shared/reference/ble_gatt.md` §0 (the HL7 PHD IG table).
    #[test]
    fn reference_sfloat_examples() {
        let cases: [(u16, Medfloat, f64); 9] = [
            (0x0002, v(2, 0), 2.0),
            (0xF014, v(20, -1), 2.0),
            (0xE0C8, v(200, -2), 2.0),
            (0x1002, v(2, 1), 20.0),
            (0x0B2E, v(-1234, 0), -1234.0),
            (0x0072, v(114, 0), 114.0),
            (0xB076, v(118, -5), 0.00118),
            (0x0803, v(-2045, 0), -2045.0),
            // The glucose examples of §6: 110 mg/dL = 0.00110 kg/L, 6.1 mmol/L = 0.0061 mol/L.
            (0xB06E, v(110, -5), 0.0011),
        ];
        for (raw, value, number) in cases {
            assert_eq!(decode_sfloat(raw), value, "{raw:#06x}");
            assert_eq!(value.to_f64(), Some(number), "{raw:#06x}");
            assert_eq!(encode_sfloat(value), Some(raw), "{raw:#06x}");
        }
        assert_eq!(decode_sfloat(0xC03D), v(61, -4));
        assert_eq!(decode_sfloat(0xC03D).to_f64(), Some(0.0061));
        // 2, 2.0 and 2.00 are equal numbers but different encodings.
        assert_ne!(decode_sfloat(0x0002), decode_sfloat(0xF014));
        // The octets come little-endian: `72 00` is 114.
        assert_eq!(decode_sfloat(u16::from_le_bytes([0x72, 0x00])), v(114, 0));
    }

    #[test]
    fn reference_float_examples() {
        let cases: [(u32, Medfloat, f64); 5] = [
            (0x0000_0002, v(2, 0), 2.0),
            (0xFF00_0014, v(20, -1), 2.0),
            (0xFE00_00C8, v(200, -2), 2.0),
            (0x0100_0002, v(2, 1), 20.0),
            (0x00FF_FB2E, v(-1234, 0), -1234.0),
        ];
        for (raw, value, number) in cases {
            assert_eq!(decode_float(raw), value, "{raw:#010x}");
            assert_eq!(value.to_f64(), Some(number));
            assert_eq!(encode_float(value), Some(raw));
        }
        // 36.7 °C: bytes 6f 01 00 ff.
        let t = decode_float(u32::from_le_bytes([0x6f, 0x01, 0x00, 0xff]));
        assert_eq!(t, v(367, -1));
        assert_eq!(t.to_f64(), Some(36.7));
        // −5.5: bytes c9 ff ff ff.
        let t = decode_float(u32::from_le_bytes([0xc9, 0xff, 0xff, 0xff]));
        assert_eq!(t, v(-55, -1));
        assert_eq!(t.to_f64(), Some(-5.5));
    }

    #[test]
    fn reference_special_values() {
        let table = [
            (
                Special::Nan,
                0x07FF,
                [0xff, 0x07],
                0x007F_FFFF,
                [0xff, 0xff, 0x7f, 0x00],
            ),
            (
                Special::NRes,
                0x0800,
                [0x00, 0x08],
                0x0080_0000,
                [0x00, 0x00, 0x80, 0x00],
            ),
            (
                Special::PositiveInfinity,
                0x07FE,
                [0xfe, 0x07],
                0x007F_FFFE,
                [0xfe, 0xff, 0x7f, 0x00],
            ),
            (
                Special::NegativeInfinity,
                0x0802,
                [0x02, 0x08],
                0x0080_0002,
                [0x02, 0x00, 0x80, 0x00],
            ),
            (
                Special::Reserved,
                0x0801,
                [0x01, 0x08],
                0x0080_0001,
                [0x01, 0x00, 0x80, 0x00],
            ),
        ];
        for (special, s_raw, s_bytes, f_raw, f_bytes) in table {
            assert_eq!(decode_sfloat(s_raw), Medfloat::Special(special));
            assert_eq!(
                decode_sfloat(u16::from_le_bytes(s_bytes)),
                Medfloat::Special(special)
            );
            assert_eq!(decode_float(f_raw), Medfloat::Special(special));
            assert_eq!(
                decode_float(u32::from_le_bytes(f_bytes)),
                Medfloat::Special(special)
            );
            assert_eq!(Medfloat::Special(special).to_f64(), None);
            assert_eq!(encode_sfloat(Medfloat::Special(special)), Some(s_raw));
            assert_eq!(encode_float(Medfloat::Special(special)), Some(f_raw));
        }
        // The PHD IG's dataAbsentReason for each.
        let reasons: Vec<_> = Special::ALL
            .iter()
            .map(|s| s.data_absent_reason())
            .collect();
        assert_eq!(
            reasons,
            [
                "not-a-number",
                "error",
                "positive-infinity",
                "negative-infinity",
                "error"
            ]
        );
    }

    #[test]
    fn a_special_mantissa_with_a_non_zero_exponent_is_a_number() {
        assert_eq!(decode_sfloat(0xF7FF), v(2047, -1));
        assert_eq!(decode_sfloat(0x1800), v(-2048, 1));
        assert_eq!(decode_float(0x017F_FFFF), v(8_388_607, 1));
        // …and a number whose word would be special at exponent 0 cannot be encoded.
        for m in [2047, -2048, 2046, -2046, -2047] {
            assert_eq!(encode_sfloat(v(m, 0)), None, "{m}");
        }
        for m in [8_388_607, -8_388_608, 8_388_606, -8_388_606, -8_388_607] {
            assert_eq!(encode_float(v(m, 0)), None, "{m}");
        }
        assert_eq!(encode_sfloat(v(2045, 0)), Some(0x07FD));
        assert_eq!(encode_sfloat(v(2048, 0)), None, "mantissa out of range");
        assert_eq!(encode_sfloat(v(1, 8)), None, "exponent out of range");
        assert_eq!(encode_float(v(8_388_608, 0)), None);
    }

    /// All 65 536 SFLOAT words: exactly the five documented ones are special, every other one
    /// is a number that encodes back to the same word.
    #[test]
    fn every_sfloat_word_decodes_and_numbers_round_trip() {
        let mut specials = Vec::new();
        for raw in 0..=u16::MAX {
            match decode_sfloat(raw) {
                Medfloat::Special(s) => specials.push((raw, s)),
                value => {
                    assert_eq!(encode_sfloat(value), Some(raw), "{raw:#06x}");
                    assert!(value.to_f64().is_some_and(f64::is_finite));
                }
            }
        }
        assert_eq!(
            specials,
            [
                (0x07FE, Special::PositiveInfinity),
                (0x07FF, Special::Nan),
                (0x0800, Special::NRes),
                (0x0801, Special::Reserved),
                (0x0802, Special::NegativeInfinity),
            ]
        );
    }

    #[test]
    fn display_keeps_the_precision() {
        assert_eq!(v(200, -2).to_string(), "2.00");
        assert_eq!(v(367, -1).to_string(), "36.7");
        assert_eq!(v(-55, -1).to_string(), "-5.5");
        assert_eq!(v(118, -5).to_string(), "0.00118");
        assert_eq!(v(2, 1).to_string(), "20");
        assert_eq!(v(-1234, 0).to_string(), "-1234");
        assert_eq!(Medfloat::Special(Special::Nan).to_string(), "NaN");
    }

    proptest! {
        /// Any FLOAT word decodes; a number encodes back to the same word; a special is one of
        /// the five documented words.
        #[test]
        fn every_float_word_decodes(raw in any::<u32>()) {
            match decode_float(raw) {
                Medfloat::Special(s) => prop_assert_eq!(s.float_raw(), raw),
                value => {
                    prop_assert_eq!(encode_float(value), Some(raw));
                    prop_assert!(value.to_f64().is_some_and(f64::is_finite));
                }
            }
        }

        #[test]
        fn special_float_words_are_only_the_documented_ones(
            raw in prop_oneof![Just(0x007F_FFFFu32), Just(0x0080_0000u32), Just(0x007F_FFFEu32),
                               Just(0x0080_0002u32), Just(0x0080_0001u32), any::<u32>()]
        ) {
            let documented = [0x007F_FFFF, 0x0080_0000, 0x007F_FFFE, 0x0080_0002, 0x0080_0001];
            prop_assert_eq!(decode_float(raw).special().is_some(), documented.contains(&raw));
        }

        #[test]
        fn finite_sfloat_values_round_trip(mantissa in -2048i32..=2047, exponent in -8i8..=7) {
            let value = v(mantissa, exponent);
            match encode_sfloat(value) {
                Some(raw) => prop_assert_eq!(decode_sfloat(raw), value),
                None => prop_assert!(
                    exponent == 0 && [2047, -2048, 2046, -2046, -2047].contains(&mantissa)
                ),
            }
        }

        #[test]
        fn finite_float_values_round_trip(
            mantissa in -8_388_608i32..=8_388_607,
            exponent in any::<i8>(),
        ) {
            let value = v(mantissa, exponent);
            match encode_float(value) {
                Some(raw) => prop_assert_eq!(decode_float(raw), value),
                None => prop_assert!(exponent == 0 && [8_388_607, -8_388_608, 8_388_606,
                    -8_388_606, -8_388_607].contains(&mantissa)),
            }
        }

        /// The f64 is the one Rust's (correctly rounding) decimal parser gives for the same text.
        #[test]
        fn to_f64_is_correctly_rounded(mantissa in -8_388_608i32..=8_388_607, exponent in -22i8..=22) {
            let exact: f64 = format!("{mantissa}e{exponent}").parse().unwrap();
            prop_assert_eq!(v(mantissa, exponent).to_f64(), Some(exact));
        }
    }
}
