//! IEEE 11073-10101 (MDC) codes Vigil reads in OBX-3 and OBX-6, keyed on the numeric 32-bit code
//! (partition × 65 536 + term code), never on the reference id text: `shared/reference/hl7v2.md`
//! §2 lists reference ids that public code gets wrong (e.g. 150020 labelled `…_SYS`).
//!
//! Only codes verified there are listed. Codes the reference marks as unverified (the invasive
//! 150017–150019 block, the cuff codes 150301–150303) are deliberately absent: such rows are
//! skipped and reported, not guessed at.

use vigil_model::Measurand;
use vigil_model::catalogue::MdcCode;

/// Partitions of the 32-bit code (IEEE 11073-10101 code partitions): 1 object (containment) classes, 2 SCADA
/// (metrics), 4 dimensions (units).
pub(crate) const PARTITION_OBJECT: u32 = 1;

/// One metric: its code and the measurand it is recorded as. `rank` orders metrics that record the
/// same measurand: when two of them arrive for one device at one time, the lower rank is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Metric {
    pub mdc: MdcCode,
    pub measurand: Measurand,
    pub rank: u8,
}

const fn metric(code: u32, refid: &'static str, measurand: Measurand, rank: u8) -> Metric {
    Metric {
        mdc: MdcCode { code, refid },
        measurand,
        rank,
    }
}

/// Reference §2 (codes) and §6 (MDC → LOINC). Heart rate: the ECG rate is the primary one; pulse
/// rates from the oximeter and the NIBP cuff record the same LOINC 8867-4 and rank after it.
/// Temperature: the body-temperature term is more specific than the generic `MDC_TEMP`.
pub(crate) const METRICS: [Metric; 12] = [
    metric(147842, "MDC_ECG_HEART_RATE", Measurand::HeartRate, 0),
    metric(149530, "MDC_PULS_OXIM_PULS_RATE", Measurand::HeartRate, 1),
    metric(149546, "MDC_PULS_RATE_NON_INV", Measurand::HeartRate, 2),
    metric(150456, "MDC_PULS_OXIM_SAT_O2", Measurand::Spo2, 0),
    metric(150021, "MDC_PRESS_BLD_NONINV_SYS", Measurand::SystolicBp, 0),
    metric(
        150022,
        "MDC_PRESS_BLD_NONINV_DIA",
        Measurand::DiastolicBp,
        0,
    ),
    metric(150023, "MDC_PRESS_BLD_NONINV_MEAN", Measurand::MeanBp, 0),
    metric(151562, "MDC_RESP_RATE", Measurand::RespRate, 0),
    metric(150364, "MDC_TEMP_BODY", Measurand::Temperature, 0),
    metric(150344, "MDC_TEMP", Measurand::Temperature, 1),
    metric(188736, "MDC_MASS_BODY_ACTUAL", Measurand::Weight, 0),
    metric(
        160184,
        "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD",
        Measurand::Glucose,
        0,
    ),
];

/// The compound NIBP code (150020 = 2 × 65 536 + 18 948) names the panel, not a value; its
/// systolic, diastolic and mean parts come as their own rows (reference §2, §6).
pub(crate) const COMPOUND_NIBP: u32 = 150020;

pub(crate) fn metric_for(code: u32) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.mdc.code == code)
}

/// One unit: its MDC code and UCUM equivalent. `only_for` restricts units whose UCUM form loses
/// meaning: beats and breaths per minute are both `/min`, but a heart rate in breaths per minute is
/// a sender error, not a conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unit {
    pub mdc: MdcCode,
    pub ucum: &'static str,
    pub only_for: Option<Measurand>,
}

const fn unit(code: u32, refid: &'static str, ucum: &'static str, only: Option<Measurand>) -> Unit {
    Unit {
        mdc: MdcCode { code, refid },
        ucum,
        only_for: only,
    }
}

/// Reference §2 (unit codes) and §6 ("MDC unit → UCUM").
pub(crate) const UNITS: [Unit; 10] = [
    unit(
        264864,
        "MDC_DIM_BEAT_PER_MIN",
        "/min",
        Some(Measurand::HeartRate),
    ),
    unit(
        264928,
        "MDC_DIM_RESP_PER_MIN",
        "/min",
        Some(Measurand::RespRate),
    ),
    unit(262688, "MDC_DIM_PERCENT", "%", None),
    unit(266016, "MDC_DIM_MMHG", "mm[Hg]", None),
    unit(265987, "MDC_DIM_KILO_PASCAL", "kPa", None),
    unit(268192, "MDC_DIM_DEGC", "Cel", None),
    unit(266560, "MDC_DIM_FAHR", "[degF]", None),
    unit(263875, "MDC_DIM_KILO_G", "kg", None),
    unit(264274, "MDC_DIM_MILLI_G_PER_DL", "mg/dL", None),
    unit(266866, "MDC_DIM_MILLI_MOLE_PER_L", "mmol/L", None),
];

pub(crate) fn unit_for(code: u32) -> Option<&'static Unit> {
    UNITS.iter().find(|u| u.mdc.code == code)
}

/// Reads a numeric MDC code: decimal digits only, fitting 32 bits.
pub(crate) fn parse_code(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Partition and term code of each entry, as the reference's §2 table prints them.
    #[test]
    fn codes_match_the_reference_partition_arithmetic() {
        let expected_metrics = [
            (147842, 2, 16770),
            (149530, 2, 18458),
            (149546, 2, 18474),
            (150456, 2, 19384),
            (150021, 2, 18949),
            (150022, 2, 18950),
            (150023, 2, 18951),
            (151562, 2, 20490),
            (150364, 2, 19292),
            (150344, 2, 19272),
            (188736, 2, 57664),
            (160184, 2, 29112),
        ];
        assert_eq!(METRICS.len(), expected_metrics.len());
        for (m, (code, partition, term)) in METRICS.iter().zip(expected_metrics) {
            assert_eq!(m.mdc.code, code);
            assert_eq!(m.mdc.code, partition * 65_536 + term, "{}", m.mdc.refid);
        }
        let expected_units = [
            (264864, 2720),
            (264928, 2784),
            (262688, 544),
            (266016, 3872),
            (265987, 3843),
            (268192, 6048),
            (266560, 4416),
            (263875, 1731),
            (264274, 2130),
            (266866, 4722),
        ];
        for (u, (code, term)) in UNITS.iter().zip(expected_units) {
            assert_eq!(u.mdc.code, code);
            assert_eq!(u.mdc.code, 4 * 65_536 + term, "{}", u.mdc.refid);
        }
    }

    /// The model's own resolver agrees with this table (one vocabulary, two entry points).
    #[test]
    fn agrees_with_the_catalogue() {
        for m in &METRICS {
            assert_eq!(
                Measurand::from_code(&m.mdc.code.to_string()),
                Some(m.measurand),
                "{}",
                m.mdc.refid
            );
            assert_eq!(Measurand::from_code(m.mdc.refid), Some(m.measurand));
        }
    }

    /// Every unit converts for the measurands it can carry.
    #[test]
    fn every_unit_is_known_to_the_model() {
        for u in &UNITS {
            let fits = Measurand::ALL.into_iter().any(|m| {
                u.only_for.is_none_or(|only| only == m)
                    && vigil_model::units::to_canonical(m, 1.0, u.ucum).is_ok()
            });
            assert!(fits, "{}", u.mdc.refid);
        }
    }

    #[test]
    fn ranks_are_unique_per_measurand() {
        for a in &METRICS {
            for b in &METRICS {
                if a.mdc.code != b.mdc.code && a.measurand == b.measurand {
                    assert_ne!(a.rank, b.rank, "{} {}", a.mdc.refid, b.mdc.refid);
                }
            }
        }
    }

    #[test]
    fn parses_numeric_codes_only() {
        assert_eq!(parse_code("147842"), Some(147842));
        assert_eq!(parse_code("4294967295"), Some(u32::MAX));
        assert_eq!(parse_code("4294967296"), None);
        assert_eq!(parse_code(""), None);
        assert_eq!(parse_code("+147842"), None);
        assert_eq!(parse_code("MDC_ECG_HEART_RATE"), None);
        assert_eq!(parse_code("00000000001"), None);
    }
}
