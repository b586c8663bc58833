//! Sampled signals (ECG, plethysmogram, respiration) in segments, as FHIR `SampledData` models them:
//! value = origin + factor × sample, one sample every `period_ms`.

use serde::{Deserialize, Serialize};

use crate::{DeviceId, Instant, PatientId};

/// The signals Vigil accepts as waveforms, with their IEEE 11073-10101 codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaveformCode {
    /// ECG lead I (MDC_ECG_ELEC_POTL_I).
    EcgLeadI,
    /// ECG lead II (MDC_ECG_ELEC_POTL_II).
    EcgLeadIi,
    /// ECG lead III (MDC_ECG_ELEC_POTL_III).
    EcgLeadIii,
    /// Photoplethysmogram from a pulse oximeter (MDC_PULS_OXIM_PLETH).
    Pleth,
    /// Respiration by impedance (MDC_IMPED_TTHOR).
    Respiration,
}

impl WaveformCode {
    pub const ALL: [WaveformCode; 5] = [
        WaveformCode::EcgLeadI,
        WaveformCode::EcgLeadIi,
        WaveformCode::EcgLeadIii,
        WaveformCode::Pleth,
        WaveformCode::Respiration,
    ];
    pub fn short_name(self) -> &'static str {
        match self {
            WaveformCode::EcgLeadI => "ecg_lead_i",
            WaveformCode::EcgLeadIi => "ecg_lead_ii",
            WaveformCode::EcgLeadIii => "ecg_lead_iii",
            WaveformCode::Pleth => "pleth",
            WaveformCode::Respiration => "respiration",
        }
    }
    pub fn mdc(self) -> (u32, &'static str) {
        match self {
            WaveformCode::EcgLeadI => (131329, "MDC_ECG_ELEC_POTL_I"),
            WaveformCode::EcgLeadIi => (131330, "MDC_ECG_ELEC_POTL_II"),
            WaveformCode::EcgLeadIii => (131389, "MDC_ECG_ELEC_POTL_III"),
            WaveformCode::Pleth => (150452, "MDC_PULS_OXIM_PLETH"),
            WaveformCode::Respiration => (151780, "MDC_IMPED_TTHOR"),
        }
    }
    /// The UCUM unit of `origin + factor × sample`.
    pub fn unit(self) -> &'static str {
        match self {
            WaveformCode::EcgLeadI | WaveformCode::EcgLeadIi | WaveformCode::EcgLeadIii => "mV",
            WaveformCode::Pleth => "1",
            WaveformCode::Respiration => "Ohm",
        }
    }
    pub fn display(self) -> &'static str {
        match self {
            WaveformCode::EcgLeadI => "ECG lead I",
            WaveformCode::EcgLeadIi => "ECG lead II",
            WaveformCode::EcgLeadIii => "ECG lead III",
            WaveformCode::Pleth => "Plethysmogram",
            WaveformCode::Respiration => "Impedance respiration",
        }
    }
    pub fn from_code(code: &str) -> Option<WaveformCode> {
        Self::ALL.into_iter().find(|w| {
            let (num, refid) = w.mdc();
            w.short_name() == code || refid == code || num.to_string() == code
        })
    }
}

/// Most samples one segment may carry: 60 s of a 500 Hz ECG.
pub const MAX_SAMPLES_PER_SEGMENT: usize = 30_000;

/// A stretch of one signal from one device.
#[derive(Debug, Clone, PartialEq)]
pub struct WaveformSegment {
    pub code: WaveformCode,
    pub start: Instant,
    /// Milliseconds between samples (4 ms for 250 Hz).
    pub period_ms: f64,
    /// Physical value = origin + factor × sample, in `code.unit()`.
    pub factor: f64,
    pub origin: f64,
    pub samples: Vec<i32>,
}

impl WaveformSegment {
    pub fn end(&self) -> Instant {
        let span_ms = self.period_ms * self.samples.len() as f64;
        self.start + chrono::Duration::microseconds((span_ms * 1000.0) as i64)
    }
}

/// A stored segment, attributed to a patient.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredWaveform {
    pub id: i64,
    pub patient: PatientId,
    pub device: DeviceId,
    pub segment: WaveformSegment,
    pub received: Instant,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_resolve() {
        for w in WaveformCode::ALL {
            assert_eq!(WaveformCode::from_code(w.short_name()), Some(w));
            assert_eq!(WaveformCode::from_code(w.mdc().1), Some(w));
        }
        assert_eq!(WaveformCode::from_code("ecg"), None);
    }
}
