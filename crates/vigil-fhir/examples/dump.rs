//! Prints an example of every resource vigil-fhir writes, as one FHIR R4 `collection` Bundle, for
//! an independent validator:
//!
//! ```sh
//! cargo run -p vigil-fhir --example dump | /tmp/fhirvenv/bin/python scripts/validate_fhir.py -
//! ```

use chrono::{DateTime, Duration, TimeZone, Utc};
use vigil_fhir::{
    FhirError, IssueType, Severity, capability_statement, collection_bundle, device_to_fhir,
    observation_to_fhir, operation_outcome, parse_observation_search, patient_to_fhir,
    searchset_bundle, waveform_to_fhir,
};
use vigil_model::units::to_canonical;
use vigil_model::{
    Device, DeviceId, DeviceKind, Gender, Measurand, Observation, ObservationCode,
    ObservationComponent, ObservationId, ObservationStatus, ObservationValue, Patient, PatientId,
    QualityFlags, Quantity, StoredWaveform, WaveformCode, WaveformSegment,
};

fn at(sec: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, sec)
        .single()
        .unwrap_or_default()
}

fn id<T: std::str::FromStr>(raw: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    raw.parse().expect("example ids are valid")
}

fn observation(n: i64, code: ObservationCode, value: ObservationValue) -> Observation {
    Observation {
        id: ObservationId(n),
        patient: id("bed-12"),
        device: id("mon-1"),
        code,
        value,
        effective: at(0) + Duration::microseconds(250_500),
        received: at(2),
        status: ObservationStatus::Final,
        quality: QualityFlags::empty(),
    }
}

fn single(n: i64, m: Measurand, value: f64) -> Observation {
    observation(
        n,
        ObservationCode::Single(m),
        ObservationValue::Quantity(Quantity::new(value, m.canonical_unit())),
    )
}

/// One AuditEvent per audited action, so every type/subtype/action mapping is validated.
fn audit_events(patient: &PatientId) -> Vec<serde_json::Value> {
    use vigil_model::audit::{
        AuditAction, AuditAgent, AuditEntity, AuditEntry, AuditOutcome, AuditSource, Channel,
    };
    AuditAction::ALL
        .into_iter()
        .enumerate()
        .map(|(i, action)| {
            let (agent, entity) = match i % 4 {
                0 => (
                    AuditAgent::person("nadia", "clinician"),
                    AuditEntity::search("Observation", "patient=bed-12&code=8867-4"),
                ),
                1 => (AuditAgent::device("mon-1"), AuditEntity::kind("Session")),
                2 => (
                    AuditAgent::system("lab-gateway", Some("integration".into())),
                    AuditEntity::resource("Patient", patient.as_str()),
                ),
                _ => (AuditAgent::anonymous(), AuditEntity::resource("Alarm", "3")),
            };
            let outcome = match i % 3 {
                0 => AuditOutcome::Success,
                1 => AuditOutcome::MinorFailure,
                _ => AuditOutcome::SeriousFailure,
            };
            let entry = AuditEntry::new(at(i as u32), action, agent, entity)
                .patient(patient.clone())
                .source(AuditSource::new(
                    Channel::Http,
                    Some("192.0.2.7:51234".into()),
                ))
                .outcome(outcome)
                .detail("example");
            vigil_fhir::audit_event_to_fhir(i as u64 + 1, &entry, "Vigil")
        })
        .collect()
}

fn main() {
    let patient = Patient {
        id: id("bed-12"),
        name: "Jan Havel".into(),
        family: Some("Havel".into()),
        given: vec!["Jan".into()],
        mrn: Some("MRN-0042".into()),
        birth_date: chrono::NaiveDate::from_ymd_opt(1950, 3, 7),
        gender: Some(Gender::Male),
        active: true,
    };
    let device = Device {
        id: id("mon-1"),
        kind: DeviceKind::new(DeviceKind::MULTIPARAMETER_MONITOR),
        manufacturer: Some("Acme Medical".into()),
        model: Some("VM-9".into()),
        serial: Some("SN-77881".into()),
        firmware: Some("2.4.1".into()),
        ble_address: None,
        signal_dbm: Some(-67),
        calibrated_at: Some(at(0) - chrono::Duration::days(200)),
        calibration_due: Some(at(0) + chrono::Duration::days(165)),
        battery_pct: Some(87),
        last_seen: Some(at(2)),
    };
    let mut oximeter = Device::new(
        id::<DeviceId>("ox-7"),
        DeviceKind::new(DeviceKind::PULSE_OXIMETER),
    );
    oximeter.ble_address = Some("C4:7C:8D:6A:11:02".into());

    let heart_rate = single(1, Measurand::HeartRate, 72.0);
    let (systolic, _) = to_canonical(Measurand::SystolicBp, 16.0, "kPa").expect("kPa is accepted");
    let mut blood_pressure = observation(
        2,
        ObservationCode::BloodPressure,
        ObservationValue::Components(vec![
            ObservationComponent {
                measurand: Measurand::SystolicBp,
                value: Quantity::new(systolic, "mm[Hg]"),
            },
            ObservationComponent {
                measurand: Measurand::DiastolicBp,
                value: Quantity::new(80.0, "mm[Hg]"),
            },
            ObservationComponent {
                measurand: Measurand::MeanBp,
                value: Quantity::new(93.0, "mm[Hg]"),
            },
        ]),
    );
    blood_pressure.quality = QualityFlags::CONVERTED_UNIT;
    let mut spo2 = single(3, Measurand::Spo2, 97.0);
    spo2.quality = QualityFlags::QUESTIONABLE;
    let (celsius, _) =
        to_canonical(Measurand::Temperature, 100.4, "[degF]").expect("°F is accepted");
    let mut temperature = single(4, Measurand::Temperature, celsius);
    temperature.quality = QualityFlags::CONVERTED_UNIT;
    let glucose = single(5, Measurand::Glucose, 99.0858);
    let steps = single(6, Measurand::Steps, 1200.0);
    let weight = single(7, Measurand::Weight, 45.359237);
    let height = single(8, Measurand::Height, 172.5);
    let resp_rate = single(9, Measurand::RespRate, 16.0);
    let consciousness = observation(
        20,
        ObservationCode::Single(Measurand::Consciousness),
        ObservationValue::Acvpu(vigil_model::Acvpu::NewConfusion),
    );
    let on_oxygen = observation(
        21,
        ObservationCode::Single(Measurand::SupplementalOxygen),
        ObservationValue::OnOxygen(true),
    );
    let oxygen_flow = single(22, Measurand::SupplementalOxygen, 2.0);
    let fall = observation(
        23,
        ObservationCode::Event(vigil_model::DeviceEvent::Fall),
        ObservationValue::Detected,
    );
    let panic_press = observation(
        24,
        ObservationCode::Event(vigil_model::DeviceEvent::Panic),
        ObservationValue::Detected,
    );
    let probe_off = observation(
        25,
        ObservationCode::Single(Measurand::Spo2),
        ObservationValue::Absent(vigil_model::AbsentReason::SensorOff),
    );
    let mut news2 = observation(
        26,
        ObservationCode::News2,
        ObservationValue::News2(vigil_model::News2Value {
            total: 6,
            band: "medium".into(),
            complete: false,
            spo2_scale: 1,
            scores: vec![
                ("respiration_rate".into(), Some(2)),
                ("spo2".into(), Some(1)),
                ("air_or_oxygen".into(), Some(0)),
                ("systolic_bp".into(), None),
                ("pulse".into(), Some(1)),
                ("consciousness".into(), Some(0)),
                ("temperature".into(), Some(2)),
            ],
        }),
    );
    news2.device = id(vigil_model::NEWS2_SCORER);
    let mut systolic_only = observation(
        10,
        ObservationCode::BloodPressure,
        ObservationValue::Components(vec![ObservationComponent {
            measurand: Measurand::SystolicBp,
            value: Quantity::new(131.0, "mm[Hg]"),
        }]),
    );
    systolic_only.status = ObservationStatus::Preliminary;
    let mut artifact = single(11, Measurand::HeartRate, f64::NAN);
    artifact.quality = QualityFlags::ARTIFACT | QualityFlags::TIME_FROM_RECEIPT;

    let waveform = StoredWaveform {
        id: 7,
        patient: id::<PatientId>("bed-12"),
        device: id("mon-1"),
        segment: WaveformSegment {
            code: WaveformCode::EcgLeadIi,
            start: at(0),
            period_ms: 4.0,
            factor: 0.005,
            origin: 0.0,
            samples: vec![0, 12, 48, 210, 35, -20, -8, 0],
        },
        received: at(3),
    };
    let pleth = StoredWaveform {
        id: 8,
        segment: WaveformSegment {
            code: WaveformCode::Pleth,
            start: at(0),
            period_ms: 8.0,
            factor: 1.0,
            origin: 0.0,
            samples: vec![100, 130, 180, 150],
        },
        ..waveform.clone()
    };

    let base = "http://localhost:8080/fhir";
    let search = parse_observation_search(&[
        ("patient".to_owned(), "bed-12".to_owned()),
        ("code".to_owned(), "http://loinc.org|8867-4".to_owned()),
        ("date".to_owned(), "ge2026-11-21".to_owned()),
    ])
    .expect("the example search is valid");
    let query: Vec<String> = search
        .to_params()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let searchset = searchset_bundle(
        &format!("{base}/Observation?{}", query.join("&")).replace('|', "%7C"),
        Some(&format!(
            "{base}/Observation?patient=bed-12&_cursor=1795255200.250500000.1"
        )),
        vec![(
            format!("{base}/Observation/1"),
            observation_to_fhir(&heart_rate),
        )],
    );
    let error = FhirError::UnsupportedFormat {
        value: "xml".into(),
    };

    let bundle = collection_bundle(
        vec![
            {
                let mut p = patient_to_fhir(&patient);
                vigil_fhir::add_monitoring_extension(
                    &mut p,
                    &vigil_fhir::MonitoringSettings {
                        cohort: Some("copd".into()),
                        spo2_scale: 2,
                        limits: vec![vigil_fhir::AlarmLimit {
                            measurand: Measurand::Spo2,
                            bound: "low",
                            limit: 85.0,
                            priority: "high",
                            delay_secs: 15,
                        }],
                    },
                );
                p
            },
            patient_to_fhir(&Patient::new(id("bed-13"), "Anonymous")),
            device_to_fhir(&device, Some(&patient.id)),
            vigil_fhir::calibration_metric(&device, at(0))
                .expect("the example device is calibrated"),
            device_to_fhir(&oximeter, None),
            observation_to_fhir(&heart_rate),
            observation_to_fhir(&fall),
            observation_to_fhir(&panic_press),
            observation_to_fhir(&probe_off),
            observation_to_fhir(&news2),
            observation_to_fhir(&blood_pressure),
            observation_to_fhir(&spo2),
            observation_to_fhir(&temperature),
            observation_to_fhir(&glucose),
            observation_to_fhir(&steps),
            observation_to_fhir(&weight),
            observation_to_fhir(&height),
            observation_to_fhir(&resp_rate),
            observation_to_fhir(&consciousness),
            vigil_fhir::alarm_to_flag(&vigil_fhir::AlarmFlag {
                id: 3,
                patient: &patient.id,
                condition: "news2:band",
                message: "NEWS2 7, high clinical risk: Urgent or emergency response",
                priority: "high",
                physiological: true,
                open: true,
                raised_at: at(1),
                resolved_at: None,
            }),
            vigil_fhir::alarm_to_flag(&vigil_fhir::AlarmFlag {
                id: 4,
                patient: &patient.id,
                condition: "technical:silent",
                message: "no data for 90 s; expected every 60 s",
                priority: "medium",
                physiological: false,
                open: false,
                raised_at: at(1),
                resolved_at: Some(at(2)),
            }),
            observation_to_fhir(&on_oxygen),
            observation_to_fhir(&oxygen_flow),
            observation_to_fhir(&systolic_only),
            observation_to_fhir(&artifact),
            waveform_to_fhir(&waveform),
            waveform_to_fhir(&pleth),
            capability_statement(base, env!("CARGO_PKG_VERSION")),
            operation_outcome(
                Severity::Error,
                IssueType::NotFound,
                "Patient/bed-99 is not known",
            ),
            error.to_operation_outcome(),
            searchset,
        ]
        .into_iter()
        .chain(audit_events(&patient.id))
        .collect(),
    );
    match serde_json::to_string_pretty(&bundle) {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("cannot serialise the examples: {e}");
            std::process::exit(1);
        }
    }
}
