//! The behaviour every [`Store`] backend must show, as plain functions that panic on a deviation.
//!
//! Each function takes a fresh, empty store. A backend runs them all with [`run_all`] or, for one
//! test per behaviour, one `#[test]` per entry of [`ALL`] (see `sqlite/tests.rs`). Other crates
//! enable the `conformance` feature to use this module.
//!
//! The suite uses only the trait and times with microsecond precision, the precision the trait
//! promises.

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use vigil_model::{
    Binding, Device, DeviceId, DeviceKind, Gender, Instant, Measurand, Measurement,
    ObservationCode, ObservationComponent, ObservationStatus, ObservationValue, Patient, PatientId,
    QualityFlags, Quantity, Reading, WaveformCode, WaveformSegment, assemble_readings,
};

use crate::{
    AlarmEventRecord, AlarmQuery, AlarmRecord, Cursor, DeviceQuery, NewSecurityAlert,
    NewStreamEvent, ObservationQuery, Outcome, PatientQuery, SecretHash, SecurityAlertQuery, Store,
    StoreError, StoreStats, StreamEvent, Submission, SubmissionOutcome, TimeBound, WaveformQuery,
};
use crate::{CareReach, SessionRecord, UserAccount};
use vigil_model::{
    CareTeam, CareTeamId, Consent, ConsentId, ConsentStatus, Grantee, GranteeKind, UserId,
};

/// One behaviour: a function that checks it on a fresh store, panicking on a deviation.
pub type Check = fn(&dyn Store);

/// Every behaviour, by name.
pub const ALL: &[(&str, Check)] = &[
    ("patient_crud", patient_crud),
    ("patient_search", patient_search),
    ("device_registry", device_registry),
    ("device_search", device_search),
    ("bindings_lifecycle", bindings_lifecycle),
    ("moved_device_attribution", moved_device_attribution),
    ("append_outcomes", append_outcomes),
    ("last_seen_and_battery", last_seen_and_battery),
    ("failed_batch_stores_nothing", failed_batch_stores_nothing),
    ("observation_search_filters", observation_search_filters),
    ("observation_time_bounds", observation_time_bounds),
    ("observation_keyset_paging", observation_keyset_paging),
    (
        "blood_pressure_panel_round_trip",
        blood_pressure_panel_round_trip,
    ),
    (
        "status_quality_and_values_round_trip",
        status_quality_and_values_round_trip,
    ),
    (
        "waveform_round_trip_and_dedup",
        waveform_round_trip_and_dedup,
    ),
    ("waveform_search", waveform_search),
    ("stats", stats),
    (
        "observations_after_tails_the_log",
        observations_after_tails_the_log,
    ),
    ("alarm_round_trip_and_upsert", alarm_round_trip_and_upsert),
    ("alarm_history_in_order", alarm_history_in_order),
    ("alarm_search_and_paging", alarm_search_and_paging),
    (
        "max_alarm_id_counts_resolved_alarms",
        max_alarm_id_counts_resolved_alarms,
    ),
    (
        "failed_alarm_changes_store_nothing",
        failed_alarm_changes_store_nothing,
    ),
    (
        "stream_seqs_strictly_increase",
        stream_seqs_strictly_increase,
    ),
    ("stream_events_by_patient", stream_events_by_patient),
    ("stream_events_prune", stream_events_prune),
    ("patient_settings_round_trip", patient_settings_round_trip),
    (
        "surveillance_steps_record_scores_and_position",
        surveillance_steps_record_scores_and_position,
    ),
    (
        "failed_surveillance_step_stores_nothing",
        failed_surveillance_step_stores_nothing,
    ),
    (
        "a_named_patient_overrides_the_binding",
        a_named_patient_overrides_the_binding,
    ),
    (
        "refused_messages_are_kept_newest_first",
        refused_messages_are_kept_newest_first,
    ),
    (
        "device_commands_wait_until_confirmed_or_expired",
        device_commands_wait_until_confirmed_or_expired,
    ),
    (
        "templates_are_versioned_upwards",
        templates_are_versioned_upwards,
    ),
    (
        "a_correction_is_kept_beside_the_original",
        a_correction_is_kept_beside_the_original,
    ),
    ("accounts_and_lockout_state", accounts_and_lockout_state),
    ("sessions_lifecycle", sessions_lifecycle),
    (
        "care_teams_reach_named_and_ward_patients",
        care_teams_reach_named_and_ward_patients,
    ),
    (
        "consents_round_trip_and_revoke",
        consents_round_trip_and_revoke,
    ),
    (
        "searches_are_restricted_within_patients",
        searches_are_restricted_within_patients,
    ),
    (
        "quarantine_and_security_alerts",
        quarantine_and_security_alerts,
    ),
    (
        "emergency_access_holds_for_its_period",
        emergency_access_holds_for_its_period,
    ),
    (
        "series_are_summarised_in_buckets",
        series_are_summarised_in_buckets,
    ),
];

/// Runs every behaviour of [`ALL`], each on a store fresh from `make`.
pub fn run_all(make: &dyn Fn() -> Box<dyn Store>) {
    for (name, check) in ALL {
        eprintln!("store conformance: {name}");
        let store = make();
        check(store.as_ref());
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// 2026-11-21 at `h:m:s` UTC.
fn t(h: u32, m: u32, s: u32) -> Instant {
    Utc.with_ymd_and_hms(2026, 11, 21, h, m, s)
        .single()
        .expect("a valid fixture time")
}

fn us(n: i64) -> Duration {
    Duration::microseconds(n)
}

fn pid(id: &str) -> PatientId {
    PatientId::new(id).expect("a valid fixture patient id")
}

fn did(id: &str) -> DeviceId {
    DeviceId::new(id).expect("a valid fixture device id")
}

fn secret(n: u8) -> SecretHash {
    [n; 32]
}

fn add_patient(store: &dyn Store, id: &str) -> PatientId {
    let patient = Patient::new(pid(id), format!("Patient {id}"));
    store.create_patient(&patient).expect("create patient");
    patient.id
}

fn add_device(store: &dyn Store, id: &str) -> DeviceId {
    let device = Device::new(did(id), DeviceKind::new(DeviceKind::MULTIPARAMETER_MONITOR));
    store
        .create_device(&device, &secret(1))
        .expect("create device");
    device.id
}

/// A patient and a device bound to them from `from` on.
fn bound(store: &dyn Store, device: &str, patient: &str, from: Instant) -> (DeviceId, PatientId) {
    let d = add_device(store, device);
    let p = add_patient(store, patient);
    store.bind(&d, &p, from).expect("bind");
    (d, p)
}

fn quantity(measurand: Measurand, value: f64, at: Instant) -> Reading {
    Reading {
        code: ObservationCode::Single(measurand),
        value: ObservationValue::Quantity(Quantity::new(value, measurand.canonical_unit())),
        effective: at,
        status: ObservationStatus::Final,
        quality: QualityFlags::empty(),
    }
}

fn hr(value: f64, at: Instant) -> Reading {
    quantity(Measurand::HeartRate, value, at)
}

fn submission(device: &DeviceId, received: Instant, readings: Vec<Reading>) -> Submission {
    Submission {
        patient: None,
        device: device.clone(),
        received,
        readings,
        waveforms: Vec::new(),
        battery_pct: None,
        signal_dbm: None,
    }
}

fn append(store: &dyn Store, batch: &[Submission]) -> Vec<SubmissionOutcome> {
    let outcomes = store.append(batch).expect("append");
    assert_eq!(outcomes.len(), batch.len(), "one outcome per submission");
    for (outcome, submission) in outcomes.iter().zip(batch) {
        assert_eq!(
            outcome.readings.len(),
            submission.readings.len(),
            "one outcome per reading"
        );
        assert_eq!(
            outcome.waveforms.len(),
            submission.waveforms.len(),
            "one outcome per waveform"
        );
    }
    outcomes
}

fn stored_id(outcome: Outcome) -> i64 {
    match outcome {
        Outcome::Stored(id) => id,
        other => panic!("expected Stored, got {other:?}"),
    }
}

fn query_for(patient: &PatientId) -> ObservationQuery {
    ObservationQuery {
        patient: Some(patient.clone()),
        limit: 10_000,
        ..ObservationQuery::default()
    }
}

fn search(store: &dyn Store, query: &ObservationQuery) -> Vec<vigil_model::Observation> {
    store
        .search_observations(query)
        .expect("search observations")
}

fn effective_times(observations: &[vigil_model::Observation]) -> Vec<Instant> {
    observations.iter().map(|o| o.effective).collect()
}

fn ids<T>(items: &[T], id: impl Fn(&T) -> String) -> Vec<String> {
    items.iter().map(id).collect()
}

fn patient_ids(patients: &[Patient]) -> Vec<String> {
    ids(patients, |p| p.id.to_string())
}

fn device_ids(devices: &[Device]) -> Vec<String> {
    ids(devices, |d| d.id.to_string())
}

fn expect_already_exists<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    assert!(
        matches!(result, Err(StoreError::AlreadyExists { .. })),
        "{what}: expected AlreadyExists, got {result:?}"
    );
}

fn expect_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    assert!(
        matches!(result, Err(StoreError::NotFound { .. })),
        "{what}: expected NotFound, got {result:?}"
    );
}

fn expect_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    assert!(
        matches!(result, Err(StoreError::Conflict(_))),
        "{what}: expected Conflict, got {result:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Patients

/// Create, read (by id and MRN), update; AlreadyExists for a taken id or MRN; NotFound on update
/// of an absent patient; every field round-trips.
pub fn patient_crud(store: &dyn Store) {
    let mut jan = Patient {
        id: pid("p-1"),
        name: "Jan Havel".into(),
        family: Some("Havel".into()),
        given: vec!["Jan".into(), "Karel".into()],
        mrn: Some("MRN-001".into()),
        birth_date: NaiveDate::from_ymd_opt(1950, 3, 4),
        gender: Some(Gender::Male),
        active: true,
    };
    store.create_patient(&jan).unwrap();
    assert_eq!(store.patient(&jan.id).unwrap(), Some(jan.clone()));
    assert_eq!(store.patient_by_mrn("MRN-001").unwrap(), Some(jan.clone()));
    assert_eq!(store.patient(&pid("nobody")).unwrap(), None);
    assert_eq!(store.patient_by_mrn("MRN-404").unwrap(), None);

    expect_already_exists(
        store.create_patient(&Patient::new(jan.id.clone(), "Someone else")),
        "same id",
    );
    let mut eva = Patient::new(pid("p-2"), "Eva Svobodová");
    eva.mrn = Some("MRN-001".into());
    expect_already_exists(store.create_patient(&eva), "same MRN");
    assert_eq!(
        store.patient(&eva.id).unwrap(),
        None,
        "a refused patient is not stored"
    );

    let minimal = Patient::new(pid("p-3"), "Minimal");
    store.create_patient(&minimal).unwrap();
    assert_eq!(store.patient(&minimal.id).unwrap(), Some(minimal.clone()));

    jan.name = "Jan Havel ml.".into();
    jan.family = None;
    jan.given = Vec::new();
    jan.mrn = Some("MRN-002".into());
    jan.birth_date = None;
    jan.gender = Some(Gender::Other);
    jan.active = false;
    store.update_patient(&jan).unwrap();
    assert_eq!(store.patient(&jan.id).unwrap(), Some(jan.clone()));
    assert_eq!(
        store.patient_by_mrn("MRN-001").unwrap(),
        None,
        "the old MRN is free"
    );
    assert_eq!(store.patient_by_mrn("MRN-002").unwrap(), Some(jan.clone()));
    store.update_patient(&jan).unwrap(); // keeping one's own MRN is fine

    eva.mrn = Some("MRN-003".into());
    store.create_patient(&eva).unwrap();
    let mut taken = jan.clone();
    taken.mrn = Some("MRN-003".into());
    expect_already_exists(
        store.update_patient(&taken),
        "update to another patient's MRN",
    );
    assert_eq!(
        store.patient(&jan.id).unwrap(),
        Some(jan.clone()),
        "a refused update changes nothing"
    );

    expect_not_found(
        store.update_patient(&Patient::new(pid("p-404"), "Ghost")),
        "update absent",
    );
    assert_eq!(store.patient(&pid("p-404")).unwrap(), None);
}

/// Identifier (id or MRN, exact), case-insensitive name substring over name, family and given
/// names (Unicode), ordered by id, limit and offset.
pub fn patient_search(store: &dyn Store) {
    let mut novak = Patient::new(pid("pat-c"), "Jan Novák");
    novak.family = Some("Novák".into());
    novak.given = vec!["Jan".into()];
    novak.mrn = Some("M1".into());
    let mut novakova = Patient::new(pid("pat-a"), "Eva Nováková");
    novakova.family = Some("Nováková".into());
    novakova.given = vec!["Eva".into(), "Marie".into()];
    let mut svoboda = Patient::new(pid("pat-d"), "Petr Svoboda");
    svoboda.mrn = Some("M3".into());
    let mut cerny = Patient::new(pid("pat-b"), "ČESTMÍR ČERNÝ");
    cerny.family = Some("Černý".into());
    for p in [&novak, &novakova, &svoboda, &cerny] {
        store.create_patient(p).unwrap();
    }
    let find = |identifier: Option<&str>, name: Option<&str>, limit: usize, offset: usize| {
        let query = PatientQuery {
            identifier: identifier.map(str::to_owned),
            name: name.map(str::to_owned),
            limit,
            offset,
            within: None,
        };
        patient_ids(&store.search_patients(&query).unwrap())
    };
    assert_eq!(find(Some("pat-a"), None, 10, 0), ["pat-a"]);
    assert_eq!(find(Some("M3"), None, 10, 0), ["pat-d"], "by MRN");
    assert_eq!(
        find(Some("m3"), None, 10, 0),
        Vec::<String>::new(),
        "identifiers match exactly"
    );
    assert_eq!(
        find(Some("pat"), None, 10, 0),
        Vec::<String>::new(),
        "identifiers match whole"
    );
    assert_eq!(
        find(None, Some("novák"), 10, 0),
        ["pat-a", "pat-c"],
        "substring, ordered by id"
    );
    assert_eq!(
        find(None, Some("NOVÁK"), 10, 0),
        ["pat-a", "pat-c"],
        "case-insensitive"
    );
    assert_eq!(find(None, Some("marie"), 10, 0), ["pat-a"], "given names");
    assert_eq!(
        find(None, Some("černý"), 10, 0),
        ["pat-b"],
        "Unicode case folding"
    );
    assert_eq!(find(None, Some("čestmír"), 10, 0), ["pat-b"]);
    assert_eq!(
        find(None, Some("voBod"), 10, 0),
        ["pat-d"],
        "inside the name"
    );
    assert_eq!(find(None, Some("nobody"), 10, 0), Vec::<String>::new());
    assert_eq!(
        find(Some("pat-c"), Some("eva"), 10, 0),
        Vec::<String>::new(),
        "both filters apply"
    );
    assert_eq!(find(Some("M1"), Some("jan"), 10, 0), ["pat-c"]);
    assert_eq!(
        find(None, None, 10, 0),
        ["pat-a", "pat-b", "pat-c", "pat-d"]
    );
    assert_eq!(find(None, None, 2, 0), ["pat-a", "pat-b"]);
    assert_eq!(find(None, None, 2, 2), ["pat-c", "pat-d"]);
    assert_eq!(find(None, None, 2, 4), Vec::<String>::new());
    assert_eq!(
        find(None, None, 0, 0),
        Vec::<String>::new(),
        "limit 0 returns nothing"
    );
}

// ---------------------------------------------------------------------------------------------
// Devices and bindings

/// Register, read every field, secret hash, AlreadyExists for a taken id.
pub fn device_registry(store: &dyn Store) {
    let full = Device {
        id: did("mon-1"),
        kind: DeviceKind::new(DeviceKind::PULSE_OXIMETER),
        manufacturer: Some("Acme Medical".into()),
        model: Some("OX-9".into()),
        serial: Some("SN-0001".into()),
        firmware: Some("2.4.1".into()),
        ble_address: Some("C4:7C:8D:6A:11:02".into()),
        calibrated_at: Some(t(8, 0, 0)),
        calibration_due: Some(t(8, 0, 0) + Duration::days(365)),
        signal_dbm: Some(-71),
        battery_pct: Some(80),
        last_seen: Some(t(9, 0, 0) + us(123_456)),
    };
    let hash: SecretHash = std::array::from_fn(|i| i as u8 * 7);
    store.create_device(&full, &hash).unwrap();
    assert_eq!(store.device(&full.id).unwrap(), Some(full.clone()));
    assert_eq!(store.device_secret(&full.id).unwrap(), Some(hash));

    let minimal = Device::new(did("thermo-1"), DeviceKind::new("a-kind-nobody-listed"));
    store.create_device(&minimal, &secret(9)).unwrap();
    assert_eq!(store.device(&minimal.id).unwrap(), Some(minimal.clone()));
    assert_eq!(store.device_secret(&minimal.id).unwrap(), Some(secret(9)));

    expect_already_exists(
        store.create_device(&Device::new(did("mon-1"), DeviceKind::new("x")), &secret(2)),
        "same id",
    );
    assert_eq!(
        store.device_secret(&full.id).unwrap(),
        Some(hash),
        "a refused device changes nothing"
    );
    assert_eq!(store.device(&did("ghost")).unwrap(), None);

    // Calibration is recorded and read back; unknown ids are NotFound.
    store
        .set_calibration(
            &full.id,
            Some(t(9, 0, 0)),
            Some(t(9, 0, 0) + Duration::days(180)),
        )
        .unwrap();
    let calibrated = store.device(&full.id).unwrap().unwrap();
    assert_eq!(
        (calibrated.calibrated_at, calibrated.calibration_due),
        (Some(t(9, 0, 0)), Some(t(9, 0, 0) + Duration::days(180)))
    );
    assert!(matches!(
        store.set_calibration(&did("ghost"), None, None),
        Err(StoreError::NotFound { .. })
    ));
    store
        .set_calibration(&full.id, full.calibrated_at, full.calibration_due)
        .unwrap();

    // Rotation replaces the hash; revocation is a hash like any other; unknown ids are NotFound.
    store.set_device_secret(&full.id, &secret(5)).unwrap();
    assert_eq!(store.device_secret(&full.id).unwrap(), Some(secret(5)));
    store.set_device_secret(&full.id, &crate::REVOKED).unwrap();
    assert_eq!(store.device_secret(&full.id).unwrap(), Some(crate::REVOKED));
    assert!(matches!(
        store.set_device_secret(&did("ghost"), &secret(5)),
        Err(StoreError::NotFound { .. })
    ));
    store.set_device_secret(&full.id, &hash).unwrap();

    // A BLE address finds its device, and names at most one.
    assert_eq!(
        store.device_by_ble_address("C4:7C:8D:6A:11:02").unwrap(),
        Some(full.clone())
    );
    assert_eq!(
        store.device_by_ble_address("C4:7C:8D:6A:11:03").unwrap(),
        None
    );
    let mut twin = Device::new(did("cuff-2"), DeviceKind::new(DeviceKind::BP_MONITOR));
    twin.ble_address = full.ble_address.clone();
    expect_already_exists(store.create_device(&twin, &secret(3)), "same BLE address");
    assert_eq!(store.device(&did("cuff-2")).unwrap(), None);
    assert_eq!(store.device_secret(&did("ghost")).unwrap(), None);
}

/// Identifier (id or serial), currently bound to a patient (open binding), ordering and paging.
pub fn device_search(store: &dyn Store) {
    for (id, serial) in [
        ("dev-c", Some("SN-1")),
        ("dev-a", Some("SN-2")),
        ("dev-b", None),
    ] {
        let mut device = Device::new(did(id), DeviceKind::new(DeviceKind::WEARABLE));
        device.serial = serial.map(str::to_owned);
        store.create_device(&device, &secret(1)).unwrap();
    }
    let a = add_patient(store, "pa");
    let b = add_patient(store, "pb");
    let find =
        |patient: Option<&PatientId>, identifier: Option<&str>, limit: usize, offset: usize| {
            let query = DeviceQuery {
                patient: patient.cloned(),
                identifier: identifier.map(str::to_owned),
                limit,
                offset,
                within: None,
            };
            device_ids(&store.search_devices(&query).unwrap())
        };
    let none = Vec::<String>::new();
    assert_eq!(find(None, None, 10, 0), ["dev-a", "dev-b", "dev-c"]);
    assert_eq!(find(None, None, 2, 1), ["dev-b", "dev-c"]);
    assert_eq!(find(None, None, 0, 0), none);
    assert_eq!(find(None, Some("SN-2"), 10, 0), ["dev-a"], "by serial");
    assert_eq!(find(None, Some("dev-c"), 10, 0), ["dev-c"], "by id");
    assert_eq!(
        find(None, Some("SN"), 10, 0),
        none,
        "identifiers match whole"
    );
    assert_eq!(find(Some(&a), None, 10, 0), none, "nothing bound yet");

    store.bind(&did("dev-c"), &a, t(8, 0, 0)).unwrap();
    store.bind(&did("dev-a"), &a, t(8, 0, 0)).unwrap();
    store.bind(&did("dev-b"), &b, t(8, 0, 0)).unwrap();
    assert_eq!(find(Some(&a), None, 10, 0), ["dev-a", "dev-c"]);
    assert_eq!(find(Some(&a), None, 1, 1), ["dev-c"]);
    assert_eq!(
        find(Some(&a), Some("SN-1"), 10, 0),
        ["dev-c"],
        "both filters apply"
    );
    assert_eq!(find(Some(&b), Some("SN-1"), 10, 0), none);

    store.bind(&did("dev-a"), &b, t(10, 0, 0)).unwrap();
    assert_eq!(
        find(Some(&a), None, 10, 0),
        ["dev-c"],
        "a moved device leaves its old patient"
    );
    assert_eq!(find(Some(&b), None, 10, 0), ["dev-a", "dev-b"]);
    store.unbind(&did("dev-c"), t(11, 0, 0)).unwrap();
    assert_eq!(
        find(Some(&a), None, 10, 0),
        none,
        "an unbound device is bound to no one"
    );
    assert_eq!(find(Some(&pid("nobody")), None, 10, 0), none);
}

/// bind / unbind / bindings: NotFound, Conflict, closing the previous binding, history order.
pub fn bindings_lifecycle(store: &dyn Store) {
    let d = add_device(store, "mon-1");
    let a = add_patient(store, "a");
    let b = add_patient(store, "b");
    let binding = |patient: &PatientId, from: Instant, to: Option<Instant>| Binding {
        device: d.clone(),
        patient: patient.clone(),
        from,
        to,
    };

    expect_not_found(
        store.bind(&did("ghost"), &a, t(8, 0, 0)),
        "bind an unknown device",
    );
    expect_not_found(
        store.bind(&d, &pid("ghost"), t(8, 0, 0)),
        "bind to an unknown patient",
    );
    expect_not_found(
        store.bindings(&did("ghost")),
        "bindings of an unknown device",
    );
    expect_not_found(
        store.unbind(&did("ghost"), t(8, 0, 0)),
        "unbind an unknown device",
    );
    expect_not_found(store.unbind(&d, t(8, 0, 0)), "unbind with nothing open");
    assert_eq!(store.bindings(&d).unwrap(), Vec::<Binding>::new());

    let from = t(8, 0, 0) + us(250);
    assert_eq!(store.bind(&d, &a, from).unwrap(), binding(&a, from, None));
    assert_eq!(store.bindings(&d).unwrap(), [binding(&a, from, None)]);

    store.bind(&d, &b, t(10, 0, 0)).unwrap();
    let history = vec![
        binding(&a, from, Some(t(10, 0, 0))),
        binding(&b, t(10, 0, 0), None),
    ];
    assert_eq!(
        store.bindings(&d).unwrap(),
        history,
        "rebinding closes the open binding"
    );

    expect_conflict(
        store.bind(&d, &a, t(9, 0, 0)),
        "bind before the latest binding's start",
    );
    assert_eq!(
        store.bindings(&d).unwrap(),
        history,
        "a refused bind changes nothing"
    );
    expect_conflict(
        store.unbind(&d, t(9, 59, 59)),
        "unbind before the open binding's start",
    );

    store.unbind(&d, t(12, 0, 0)).unwrap();
    expect_not_found(store.unbind(&d, t(12, 30, 0)), "unbind twice");
    store.bind(&d, &a, t(13, 0, 0)).unwrap();
    // Rebinding at the very instant the latest binding starts is allowed (a correction).
    store.bind(&d, &b, t(13, 0, 0)).unwrap();
    assert_eq!(
        store.bindings(&d).unwrap(),
        [
            binding(&a, from, Some(t(10, 0, 0))),
            binding(&b, t(10, 0, 0), Some(t(12, 0, 0))),
            binding(&a, t(13, 0, 0), Some(t(13, 0, 0))),
            binding(&b, t(13, 0, 0), None),
        ]
    );
    // A binding that already ended after the new start is cut at it: bindings never overlap.
    store.unbind(&d, t(15, 0, 0)).unwrap();
    store.bind(&d, &a, t(14, 0, 0)).unwrap();
    let last_two = store.bindings(&d).unwrap().split_off(3);
    assert_eq!(
        last_two,
        [
            binding(&b, t(13, 0, 0), Some(t(14, 0, 0))),
            binding(&a, t(14, 0, 0), None)
        ]
    );
}

/// Readings are attributed by their effective time: a device bound to A until 10:00 and to B after
/// puts earlier readings with A and later ones with B, even when they arrive late together.
pub fn moved_device_attribution(store: &dyn Store) {
    let (d, a) = bound(store, "mon-1", "a", t(8, 0, 0));
    let b = add_patient(store, "b");
    store.bind(&d, &b, t(10, 0, 0)).unwrap();

    let late = t(11, 0, 1);
    let outcomes = append(
        store,
        &[submission(
            &d,
            late,
            vec![
                hr(60.0, t(7, 59, 59)),
                hr(61.0, t(8, 0, 0)),
                hr(62.0, t(10, 0, 0) - us(1)),
                hr(63.0, t(10, 0, 0)),
                hr(64.0, t(11, 0, 0)),
            ],
        )],
    );
    let readings = &outcomes[0].readings;
    assert_eq!(readings[0], Outcome::Unattributed, "before any binding");
    for outcome in &readings[1..] {
        stored_id(*outcome);
    }
    let for_a = search(store, &query_for(&a));
    assert_eq!(effective_times(&for_a), [t(8, 0, 0), t(10, 0, 0) - us(1)]);
    assert!(
        for_a
            .iter()
            .all(|o| o.patient == a && o.device == d && o.received == late)
    );
    let for_b = search(store, &query_for(&b));
    assert_eq!(
        effective_times(&for_b),
        [t(10, 0, 0), t(11, 0, 0)],
        "the boundary belongs to the new binding"
    );

    store.unbind(&d, t(12, 0, 0)).unwrap();
    let outcomes = append(
        store,
        &[submission(
            &d,
            t(12, 31, 0),
            vec![
                hr(65.0, t(12, 0, 0) - us(1)),
                hr(66.0, t(12, 0, 0)),
                hr(67.0, t(12, 30, 0)),
            ],
        )],
    );
    stored_id(outcomes[0].readings[0]);
    assert_eq!(
        outcomes[0].readings[1],
        Outcome::Unattributed,
        "a binding's end is exclusive"
    );
    assert_eq!(
        outcomes[0].readings[2],
        Outcome::Unattributed,
        "after the binding ended"
    );
    assert_eq!(search(store, &query_for(&b)).len(), 3);
}

/// Stored, Duplicate across batches and within one batch (keeping the first value), Unattributed
/// for an unbound or unknown device; outcomes line up with the submissions.
pub fn append_outcomes(store: &dyn Store) {
    let (d1, a) = bound(store, "mon-1", "a", t(8, 0, 0));
    let d2 = add_device(store, "mon-2");
    store.bind(&d2, &a, t(8, 0, 0)).unwrap();
    let unbound = add_device(store, "spare-1");
    assert_eq!(store.append(&[]).unwrap(), Vec::<SubmissionOutcome>::new());

    let first = append(
        store,
        &[submission(
            &d1,
            t(9, 0, 1),
            vec![
                hr(72.0, t(9, 0, 0)),
                quantity(Measurand::Spo2, 97.0, t(9, 0, 0)),
                hr(73.0, t(9, 1, 0)),
            ],
        )],
    );
    let ids: Vec<i64> = first[0].readings.iter().map(|o| stored_id(*o)).collect();
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "distinct ids"
    );
    let stored = store
        .observation(vigil_model::ObservationId(ids[0]))
        .unwrap()
        .expect("stored observation");
    assert_eq!(
        (stored.patient.clone(), stored.device.clone()),
        (a.clone(), d1.clone())
    );
    assert_eq!(
        stored.value,
        ObservationValue::Quantity(Quantity::new(72.0, "/min"))
    );
    assert_eq!(stored.received, t(9, 0, 1));

    // Redelivery with another value: duplicate, first value kept.
    let again = append(
        store,
        &[submission(
            &d1,
            t(9, 5, 0),
            vec![hr(99.0, t(9, 0, 0)), hr(74.0, t(9, 2, 0))],
        )],
    );
    assert_eq!(again[0].readings[0], Outcome::Duplicate(ids[0]));
    stored_id(again[0].readings[1]);
    let kept = store
        .observation(vigil_model::ObservationId(ids[0]))
        .unwrap()
        .expect("kept");
    assert_eq!(kept, stored, "a duplicate changes nothing");

    // Within one batch: across submissions and within one submission.
    let batch = append(
        store,
        &[
            submission(
                &d1,
                t(9, 6, 0),
                vec![hr(80.0, t(9, 3, 0)), hr(80.0, t(9, 3, 0))],
            ),
            submission(&d1, t(9, 6, 0), vec![hr(81.0, t(9, 3, 0))]),
            // Same code and time from another device is not a duplicate.
            submission(&d2, t(9, 6, 0), vec![hr(82.0, t(9, 3, 0))]),
            submission(&unbound, t(9, 6, 0), vec![hr(83.0, t(9, 3, 0))]),
            submission(
                &did("never-registered"),
                t(9, 6, 0),
                vec![hr(84.0, t(9, 3, 0))],
            ),
        ],
    );
    let id = stored_id(batch[0].readings[0]);
    assert_eq!(batch[0].readings[1], Outcome::Duplicate(id));
    assert_eq!(batch[1].readings[0], Outcome::Duplicate(id));
    assert_ne!(stored_id(batch[2].readings[0]), id);
    assert_eq!(
        batch[3].readings[0],
        Outcome::Unattributed,
        "unbound device"
    );
    assert_eq!(
        batch[4].readings[0],
        Outcome::Unattributed,
        "unknown device"
    );

    let all = search(store, &query_for(&a));
    assert_eq!(all.len(), 6, "3 + 1 + 1 + 1 stored");
    let by_device = |device: &DeviceId| ObservationQuery {
        device: Some(device.clone()),
        limit: 100,
        ..ObservationQuery::default()
    };
    assert!(search(store, &by_device(&unbound)).is_empty());
    assert_eq!(search(store, &by_device(&d2)).len(), 1);
    assert_eq!(
        store
            .observation(vigil_model::ObservationId(id))
            .unwrap()
            .map(|o| o.value),
        Some(ObservationValue::Quantity(Quantity::new(80.0, "/min")))
    );
    assert_eq!(
        store
            .observation(vigil_model::ObservationId(i64::MAX))
            .unwrap(),
        None
    );
}

/// `last_seen` is the latest `received`, whatever the order; battery follows the latest report
/// and survives submissions without one; unbound devices are seen too.
pub fn last_seen_and_battery(store: &dyn Store) {
    let (d, _) = bound(store, "mon-1", "a", t(8, 0, 0));
    let spare = add_device(store, "spare-1");
    let seen = |id: &DeviceId| {
        let device = store.device(id).unwrap().expect("device");
        (device.last_seen, device.battery_pct)
    };
    assert_eq!(seen(&d), (None, None));
    let with_battery = |received: Instant, pct: Option<u8>| Submission {
        patient: None,
        battery_pct: pct,
        signal_dbm: None,
        ..submission(&d, received, vec![hr(70.0, received - us(500_000))])
    };

    append(store, &[with_battery(t(9, 0, 0), Some(90))]);
    assert_eq!(seen(&d), (Some(t(9, 0, 0)), Some(90)));
    // Signal strength is kept the same way, independently of the battery.
    append(
        store,
        &[Submission {
            signal_dbm: Some(-67),
            ..with_battery(t(9, 0, 1), None)
        }],
    );
    assert_eq!(store.device(&d).unwrap().unwrap().signal_dbm, Some(-67));
    assert_eq!(seen(&d), (Some(t(9, 0, 1)), Some(90)));
    append(
        store,
        &[Submission {
            signal_dbm: Some(-90),
            ..with_battery(t(8, 0, 30), None)
        }],
    );
    assert_eq!(
        store.device(&d).unwrap().unwrap().signal_dbm,
        Some(-67),
        "an old backlog does not change the signal"
    );
    append(store, &[with_battery(t(9, 1, 0) + us(7), None)]);
    assert_eq!(
        seen(&d),
        (Some(t(9, 1, 0) + us(7)), Some(90)),
        "no battery: kept"
    );
    append(store, &[with_battery(t(8, 30, 0), Some(10))]);
    assert_eq!(
        seen(&d),
        (Some(t(9, 1, 0) + us(7)), Some(90)),
        "an old backlog changes neither"
    );
    append(
        store,
        &[
            with_battery(t(9, 3, 0), Some(60)),
            with_battery(t(9, 2, 0), Some(70)),
        ],
    );
    assert_eq!(
        seen(&d),
        (Some(t(9, 3, 0)), Some(60)),
        "the latest received in a batch wins"
    );
    append(
        store,
        &[Submission {
            patient: None,
            battery_pct: Some(55),
            signal_dbm: None,
            ..submission(&d, t(9, 4, 0), Vec::new())
        }],
    );
    assert_eq!(
        seen(&d),
        (Some(t(9, 4, 0)), Some(55)),
        "a submission without readings counts"
    );

    let outcomes = append(
        store,
        &[Submission {
            patient: None,
            battery_pct: Some(40),
            signal_dbm: None,
            ..submission(&spare, t(9, 5, 0), vec![hr(1.0, t(9, 5, 0))])
        }],
    );
    assert_eq!(outcomes[0].readings, [Outcome::Unattributed]);
    assert_eq!(
        seen(&spare),
        (Some(t(9, 5, 0)), Some(40)),
        "an unbound device was still seen"
    );
}

/// A batch that cannot be stored (here: a NaN value) fails as a whole: nothing of it is stored,
/// no device is marked seen, and the store keeps working.
pub fn failed_batch_stores_nothing(store: &dyn Store) {
    let (d, a) = bound(store, "mon-1", "a", t(8, 0, 0));
    let good = Submission {
        patient: None,
        battery_pct: Some(50),
        signal_dbm: None,
        ..submission(&d, t(9, 0, 0), vec![hr(70.0, t(9, 0, 0))])
    };
    let bad = submission(
        &d,
        t(9, 0, 1),
        vec![hr(71.0, t(9, 0, 1)), hr(f64::NAN, t(9, 0, 2))],
    );
    expect_conflict(store.append(&[good.clone(), bad]), "a NaN value");
    let mut bad_wave = submission(&d, t(9, 0, 1), Vec::new());
    bad_wave.waveforms.push(WaveformSegment {
        code: WaveformCode::Pleth,
        start: t(9, 0, 0),
        period_ms: 10.0,
        factor: f64::INFINITY,
        origin: 0.0,
        samples: vec![1, 2, 3],
    });
    expect_conflict(
        store.append(&[good.clone(), bad_wave]),
        "an infinite waveform factor",
    );
    assert!(
        search(store, &query_for(&a)).is_empty(),
        "nothing of the failed batches stored"
    );
    assert_eq!(store.stats().unwrap().observations, 0);
    let device = store.device(&d).unwrap().expect("device");
    assert_eq!(
        (device.last_seen, device.battery_pct),
        (None, None),
        "no device marked seen"
    );

    let outcomes = append(store, &[good]);
    stored_id(outcomes[0].readings[0]);
    assert_eq!(
        search(store, &query_for(&a)).len(),
        1,
        "the store still works"
    );
}

// ---------------------------------------------------------------------------------------------
// Observation search

/// Patient, device, one or several codes, sort order and limit.
pub fn observation_search_filters(store: &dyn Store) {
    let (monitor, a) = bound(store, "mon-1", "a", t(8, 0, 0));
    let thermometer = add_device(store, "thermo-1");
    store.bind(&thermometer, &a, t(8, 0, 0)).unwrap();
    let (other, b) = bound(store, "mon-2", "b", t(8, 0, 0));

    let mut readings = Vec::new();
    for minute in 0..10 {
        readings.push(hr(60.0 + f64::from(minute), t(9, minute, 0)));
        readings.push(quantity(
            Measurand::Spo2,
            90.0 + f64::from(minute),
            t(9, minute, 0),
        ));
    }
    append(
        store,
        &[
            submission(&monitor, t(9, 10, 0), readings),
            submission(
                &thermometer,
                t(9, 10, 0),
                vec![quantity(Measurand::Temperature, 37.2, t(9, 5, 0) + us(1))],
            ),
            submission(
                &other,
                t(9, 10, 0),
                vec![hr(100.0, t(9, 0, 0)), hr(101.0, t(9, 1, 0))],
            ),
        ],
    );
    let query = |codes: Vec<ObservationCode>, newest_first: bool, limit: usize| ObservationQuery {
        codes,
        newest_first,
        limit,
        ..query_for(&a)
    };
    let heart = ObservationCode::Single(Measurand::HeartRate);
    let spo2 = ObservationCode::Single(Measurand::Spo2);
    let temperature = ObservationCode::Single(Measurand::Temperature);

    let all = search(store, &query(Vec::new(), false, 100));
    assert_eq!(all.len(), 21, "every code of patient a, and nothing of b");
    assert!(all.iter().all(|o| o.patient == a));
    assert_sorted(&all, false);

    let hr_only = search(store, &query(vec![heart], false, 100));
    assert_eq!(hr_only.len(), 10);
    assert!(hr_only.iter().all(|o| o.code == heart));
    assert_eq!(
        hr_only[0].value,
        ObservationValue::Quantity(Quantity::new(60.0, "/min"))
    );

    let two = search(store, &query(vec![spo2, heart], false, 100));
    assert_eq!(two.len(), 20);
    assert_sorted(&two, false);
    assert_eq!(
        two,
        all.iter()
            .filter(|o| o.code != temperature)
            .cloned()
            .collect::<Vec<_>>()
    );
    assert_eq!(
        search(store, &query(vec![heart, heart], false, 100)),
        hr_only,
        "a repeated code counts once"
    );

    let newest = search(store, &query(vec![heart, spo2, temperature], true, 5));
    let mut expected: Vec<_> = all.iter().rev().take(5).cloned().collect();
    assert_eq!(
        newest, expected,
        "newest first, ties by id descending, limited"
    );
    assert_eq!(newest[0].effective, t(9, 9, 0));
    expected = all.iter().take(3).cloned().collect();
    assert_eq!(search(store, &query(vec![heart, spo2], false, 3)), expected);
    assert!(
        search(
            store,
            &query(vec![ObservationCode::BloodPressure], false, 100)
        )
        .is_empty()
    );
    assert!(
        search(store, &query(Vec::new(), false, 0)).is_empty(),
        "limit 0 returns nothing"
    );

    let by_device = ObservationQuery {
        device: Some(thermometer.clone()),
        ..query_for(&a)
    };
    let found = search(store, &by_device);
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].code, found[0].device.clone()),
        (temperature, thermometer.clone())
    );
    let device_only = ObservationQuery {
        device: Some(other.clone()),
        limit: 100,
        ..ObservationQuery::default()
    };
    assert_eq!(
        search(store, &device_only)
            .iter()
            .map(|o| o.patient.clone())
            .collect::<Vec<_>>(),
        [b.clone(), b.clone()]
    );
    let mismatch = ObservationQuery {
        device: Some(other),
        ..query_for(&a)
    };
    assert!(
        search(store, &mismatch).is_empty(),
        "patient and device both apply"
    );
    assert!(search(store, &query_for(&pid("nobody"))).is_empty());
    let ghost_device = ObservationQuery {
        device: Some(did("ghost")),
        limit: 10,
        ..ObservationQuery::default()
    };
    assert!(search(store, &ghost_device).is_empty());
}

fn assert_sorted(observations: &[vigil_model::Observation], newest_first: bool) {
    for pair in observations.windows(2) {
        let (x, y) = (
            (pair[0].effective, pair[0].id),
            (pair[1].effective, pair[1].id),
        );
        if newest_first {
            assert!(x > y, "not newest first: {x:?} then {y:?}");
        } else {
            assert!(x < y, "not oldest first: {x:?} then {y:?}");
        }
    }
}

/// Inclusive and exclusive lower and upper bounds on the effective time, in both orders.
pub fn observation_time_bounds(store: &dyn Store) {
    let (d, a) = bound(store, "mon-1", "a", t(8, 0, 0));
    let at = |minute: u32| t(9, minute, 0) + us(17);
    append(
        store,
        &[submission(
            &d,
            t(9, 30, 0),
            (0..10).map(|m| hr(60.0, at(m))).collect(),
        )],
    );
    let bound_at = |minute: u32, inclusive: bool| {
        Some(TimeBound {
            at: at(minute),
            inclusive,
        })
    };
    let minutes = |from: Option<TimeBound>, to: Option<TimeBound>, newest_first: bool| {
        let found = search(
            store,
            &ObservationQuery {
                from,
                to,
                newest_first,
                ..query_for(&a)
            },
        );
        found
            .iter()
            .map(|o| {
                (0..10)
                    .find(|m| at(*m) == o.effective)
                    .expect("a fixture time")
            })
            .collect::<Vec<u32>>()
    };
    assert_eq!(
        minutes(bound_at(3, true), None, false),
        [3, 4, 5, 6, 7, 8, 9]
    );
    assert_eq!(minutes(bound_at(3, false), None, false), [4, 5, 6, 7, 8, 9]);
    assert_eq!(
        minutes(None, bound_at(6, true), false),
        [0, 1, 2, 3, 4, 5, 6]
    );
    assert_eq!(minutes(None, bound_at(6, false), false), [0, 1, 2, 3, 4, 5]);
    assert_eq!(
        minutes(bound_at(3, false), bound_at(6, false), false),
        [4, 5]
    );
    assert_eq!(
        minutes(bound_at(3, true), bound_at(6, true), true),
        [6, 5, 4, 3]
    );
    assert_eq!(minutes(bound_at(3, true), bound_at(3, true), false), [3]);
    assert_eq!(
        minutes(bound_at(3, true), bound_at(3, false), false),
        Vec::<u32>::new()
    );
    assert_eq!(
        minutes(bound_at(7, true), bound_at(2, true), false),
        Vec::<u32>::new(),
        "an empty range"
    );
    // A bound one microsecond off the stored time.
    let just_after_3 = Some(TimeBound {
        at: at(3) + us(1),
        inclusive: true,
    });
    assert_eq!(minutes(just_after_3, bound_at(5, true), false), [4, 5]);
}

/// Keyset paging through a few hundred observations (many sharing a time) in both orders, alone
/// and with codes and time bounds: every observation exactly once, in order.
pub fn observation_keyset_paging(store: &dyn Store) {
    let (d, a) = bound(store, "mon-1", "a", t(8, 0, 0));
    let (other, _) = bound(store, "mon-2", "b", t(8, 0, 0));
    let mut readings = Vec::new();
    for second in 0..100u32 {
        let at = t(9, 0, 0) + Duration::seconds(i64::from(second * 7));
        readings.push(hr(60.0, at));
        readings.push(quantity(Measurand::Spo2, 95.0, at));
        readings.push(quantity(Measurand::RespRate, 14.0, at));
    }
    // Two batches, interleaved with another patient's data, so ids are not one run.
    let (first, second) = readings.split_at(150);
    append(
        store,
        &[
            submission(&d, t(9, 30, 0), first.to_vec()),
            submission(&other, t(9, 30, 0), vec![hr(1.0, t(9, 0, 0))]),
        ],
    );
    append(
        store,
        &[
            submission(&other, t(9, 31, 0), vec![hr(2.0, t(9, 0, 7))]),
            submission(&d, t(9, 31, 0), second.to_vec()),
        ],
    );

    let heart = ObservationCode::Single(Measurand::HeartRate);
    let resp = ObservationCode::Single(Measurand::RespRate);
    let variants = [
        ObservationQuery { ..query_for(&a) },
        ObservationQuery {
            codes: vec![heart, resp],
            ..query_for(&a)
        },
        ObservationQuery {
            from: Some(TimeBound {
                at: t(9, 2, 0),
                inclusive: true,
            }),
            to: Some(TimeBound {
                at: t(9, 9, 0),
                inclusive: false,
            }),
            codes: vec![heart],
            ..query_for(&a)
        },
    ];
    let expected_len = [300, 200, 60];
    for (variant, expected_len) in variants.into_iter().zip(expected_len) {
        for newest_first in [false, true] {
            let base = ObservationQuery {
                newest_first,
                ..variant.clone()
            };
            let full = search(store, &base);
            assert_eq!(full.len(), expected_len, "{base:?}");
            assert_sorted(&full, newest_first);
            for page_size in [7, 50] {
                let mut paged = Vec::new();
                let mut after = None;
                loop {
                    let page = search(
                        store,
                        &ObservationQuery {
                            after,
                            limit: page_size,
                            ..base.clone()
                        },
                    );
                    assert!(page.len() <= page_size);
                    let Some(last) = page.last() else { break };
                    after = Some(Cursor {
                        effective: last.effective,
                        id: last.id,
                    });
                    paged.extend(page);
                    assert!(paged.len() <= full.len(), "paging repeats observations");
                }
                assert_eq!(
                    paged, full,
                    "paging by {page_size}, newest first: {newest_first}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Round trips

/// A blood-pressure panel (as the pipeline assembles it) round-trips with its components.
pub fn blood_pressure_panel_round_trip(store: &dyn Store) {
    let (d, a) = bound(store, "bp-1", "a", t(8, 0, 0));
    let measure =
        |measurand: Measurand, value: f64, at: Instant, quality: QualityFlags| Measurement {
            measurand,
            value: vigil_model::MeasuredValue::Number(value),
            effective: at,
            status: ObservationStatus::Final,
            quality,
        };
    let readings = assemble_readings(vec![
        measure(
            Measurand::DiastolicBp,
            80.0,
            t(9, 0, 0),
            QualityFlags::empty(),
        ),
        measure(
            Measurand::SystolicBp,
            128.0,
            t(9, 0, 0),
            QualityFlags::QUESTIONABLE,
        ),
        measure(Measurand::MeanBp, 96.3, t(9, 0, 0), QualityFlags::empty()),
        measure(
            Measurand::SystolicBp,
            131.0,
            t(9, 30, 0),
            QualityFlags::empty(),
        ),
        measure(
            Measurand::DiastolicBp,
            85.0,
            t(9, 30, 0),
            QualityFlags::empty(),
        ),
        measure(
            Measurand::HeartRate,
            71.0,
            t(9, 30, 0),
            QualityFlags::empty(),
        ),
    ]);
    assert_eq!(readings.len(), 3);
    let outcomes = append(store, &[submission(&d, t(9, 31, 0), readings.clone())]);
    for (outcome, reading) in outcomes[0].readings.iter().zip(&readings) {
        let observation = store
            .observation(vigil_model::ObservationId(stored_id(*outcome)))
            .unwrap()
            .expect("stored");
        assert_eq!(observation.code, reading.code);
        assert_eq!(observation.value, reading.value);
        assert_eq!(observation.quality, reading.quality);
    }
    let panels = search(
        store,
        &ObservationQuery {
            codes: vec![ObservationCode::BloodPressure],
            ..query_for(&a)
        },
    );
    assert_eq!(panels.len(), 2);
    let component = |measurand: Measurand, value: f64| ObservationComponent {
        measurand,
        value: Quantity::new(value, "mm[Hg]"),
    };
    assert_eq!(
        panels[0].value,
        ObservationValue::Components(vec![
            component(Measurand::SystolicBp, 128.0),
            component(Measurand::DiastolicBp, 80.0),
            component(Measurand::MeanBp, 96.3),
        ])
    );
    assert_eq!(panels[0].quality, QualityFlags::QUESTIONABLE);
    assert_eq!(
        panels[1].value,
        ObservationValue::Components(vec![
            component(Measurand::SystolicBp, 131.0),
            component(Measurand::DiastolicBp, 85.0)
        ])
    );
}

/// Every status, combinations of quality flags, awkward numbers, microsecond times and unusual
/// value shapes come back exactly as stored.
pub fn status_quality_and_values_round_trip(store: &dyn Store) {
    let (d, a) = bound(store, "mon-1", "a", t(8, 0, 0));
    let qualities = [
        QualityFlags::empty(),
        QualityFlags::CONVERTED_UNIT,
        QualityFlags::QUESTIONABLE,
        QualityFlags::ARTIFACT,
        QualityFlags::TIME_FROM_RECEIPT,
        QualityFlags::CONVERTED_UNIT
            | QualityFlags::QUESTIONABLE
            | QualityFlags::ARTIFACT
            | QualityFlags::TIME_FROM_RECEIPT,
    ];
    let values = [
        36.6,
        0.1 + 0.2,
        1e-300,
        123_456_789.123_456_78,
        0.0,
        f64::MAX,
    ];
    let mut readings = Vec::new();
    let mut at = t(9, 0, 0) + us(1);
    for (i, status) in ObservationStatus::ALL.into_iter().enumerate() {
        at += us(1_000_001);
        readings.push(Reading {
            status,
            quality: qualities[i % qualities.len()],
            ..quantity(Measurand::Temperature, values[i % values.len()], at)
        });
    }
    // Shapes outside the usual ones must round-trip too.
    let odd = [
        (
            ObservationCode::Single(Measurand::Temperature),
            ObservationValue::Quantity(Quantity::new(98.6, "[degF]")),
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
        (
            ObservationCode::BloodPressure,
            ObservationValue::Components(vec![ObservationComponent {
                measurand: Measurand::SystolicBp,
                value: Quantity::new(16.0, "kPa"),
            }]),
        ),
        (
            ObservationCode::BloodPressure,
            ObservationValue::Components(Vec::new()),
        ),
        // Coded values: consciousness and on-oxygen, each kind.
        (
            ObservationCode::Single(Measurand::Consciousness),
            ObservationValue::Acvpu(vigil_model::Acvpu::NewConfusion),
        ),
        (
            ObservationCode::Single(Measurand::Consciousness),
            ObservationValue::Acvpu(vigil_model::Acvpu::Alert),
        ),
        (
            ObservationCode::Single(Measurand::SupplementalOxygen),
            ObservationValue::OnOxygen(true),
        ),
        (
            ObservationCode::Single(Measurand::SupplementalOxygen),
            ObservationValue::Quantity(Quantity::new(2.5, "L/min")),
        ),
        // Device events, and values a device reported absent.
        (
            ObservationCode::Event(vigil_model::DeviceEvent::Fall),
            ObservationValue::Detected,
        ),
        (
            ObservationCode::Event(vigil_model::DeviceEvent::Panic),
            ObservationValue::Detected,
        ),
        (
            ObservationCode::Single(Measurand::Spo2),
            ObservationValue::Absent(vigil_model::AbsentReason::SensorOff),
        ),
        (
            ObservationCode::BloodPressure,
            ObservationValue::Absent(vigil_model::AbsentReason::NotObtained),
        ),
    ];
    for (code, value) in odd {
        at += us(3);
        readings.push(Reading {
            code,
            value,
            effective: at,
            status: ObservationStatus::Preliminary,
            quality: QualityFlags::ARTIFACT,
        });
    }
    let received = t(10, 0, 0) + us(999_999);
    let outcomes = append(store, &[submission(&d, received, readings.clone())]);
    for (outcome, reading) in outcomes[0].readings.iter().zip(&readings) {
        let id = vigil_model::ObservationId(stored_id(*outcome));
        let o = store.observation(id).unwrap().expect("stored");
        assert_eq!(
            (
                o.id,
                o.patient.clone(),
                o.device.clone(),
                o.code,
                &o.value,
                o.effective,
                o.received,
                o.status,
                o.quality
            ),
            (
                id,
                a.clone(),
                d.clone(),
                reading.code,
                &reading.value,
                reading.effective,
                received,
                reading.status,
                reading.quality
            )
        );
    }
}

fn wave(code: WaveformCode, start: Instant, seconds: u32) -> WaveformSegment {
    let period_ms = 4.0;
    let count = seconds as usize * 250;
    WaveformSegment {
        code,
        start,
        period_ms,
        factor: 0.005,
        origin: -1.5,
        samples: (0..count)
            .map(|i| ((i as f64 / 15.0).sin() * 800.0) as i32)
            .collect(),
    }
}

/// Segments come back sample for sample; a redelivered segment is a duplicate (also within a
/// batch); an unbound device's segment is unattributed; segments are attributed by start time.
pub fn waveform_round_trip_and_dedup(store: &dyn Store) {
    let (d, a) = bound(store, "mon-1", "a", t(8, 0, 0));
    let spare = add_device(store, "spare-1");
    let mut ecg = wave(WaveformCode::EcgLeadIi, t(9, 0, 0) + us(1), 30);
    ecg.samples.extend([i32::MIN, i32::MAX, i32::MIN, 0, -1, 1]);
    let pleth = WaveformSegment {
        factor: 1.0 / 3.0,
        origin: 0.0,
        period_ms: 1000.0 / 75.0,
        ..wave(WaveformCode::Pleth, t(9, 0, 0) + us(1), 10)
    };
    let received = t(9, 0, 31);
    let with_waves = |device: &DeviceId, waves: Vec<WaveformSegment>| Submission {
        patient: None,
        waveforms: waves,
        ..submission(device, received, vec![hr(70.0, t(9, 0, 30))])
    };
    let outcomes = append(
        store,
        &[
            with_waves(&d, vec![ecg.clone(), pleth.clone(), ecg.clone()]),
            with_waves(&spare, vec![ecg.clone()]),
        ],
    );
    let ecg_id = stored_id(outcomes[0].waveforms[0]);
    let pleth_id = stored_id(outcomes[0].waveforms[1]);
    assert_ne!(ecg_id, pleth_id, "same start, another signal");
    assert_eq!(
        outcomes[0].waveforms[2],
        Outcome::Duplicate(ecg_id),
        "duplicate within the batch"
    );
    stored_id(outcomes[0].readings[0]);
    assert_eq!(outcomes[1].waveforms[0], Outcome::Unattributed);

    let again = append(
        store,
        &[with_waves(
            &d,
            vec![WaveformSegment {
                samples: vec![1, 2, 3],
                ..ecg.clone()
            }],
        )],
    );
    assert_eq!(
        again[0].waveforms[0],
        Outcome::Duplicate(ecg_id),
        "redelivery"
    );
    assert_eq!(
        again[0].readings[0],
        Outcome::Duplicate(stored_id(outcomes[0].readings[0]))
    );

    let query = WaveformQuery {
        patient: a.clone(),
        codes: Vec::new(),
        from: None,
        to: None,
        limit: 10,
    };
    let found = store.waveforms(&query).unwrap();
    assert_eq!(found.len(), 2);
    let stored_ecg = found
        .iter()
        .find(|w| w.id == ecg_id)
        .expect("the ECG segment");
    assert_eq!(
        stored_ecg.segment, ecg,
        "samples and scaling exact; the first delivery kept"
    );
    assert_eq!(
        (
            stored_ecg.patient.clone(),
            stored_ecg.device.clone(),
            stored_ecg.received
        ),
        (a.clone(), d.clone(), received)
    );
    assert_eq!(
        found
            .iter()
            .find(|w| w.id == pleth_id)
            .expect("pleth")
            .segment,
        pleth
    );

    // Attribution by start: a segment that starts before a move stays with the old patient.
    let b = add_patient(store, "b");
    store.bind(&d, &b, t(9, 1, 0)).unwrap();
    let across = wave(WaveformCode::EcgLeadIi, t(9, 0, 50), 20);
    let after = wave(WaveformCode::EcgLeadIi, t(9, 1, 10), 20);
    append(
        store,
        &[with_waves(&d, vec![across.clone(), after.clone()])],
    );
    let segments = |patient: &PatientId| {
        let query = WaveformQuery {
            patient: patient.clone(),
            codes: vec![WaveformCode::EcgLeadIi],
            from: None,
            to: None,
            limit: 10,
        };
        store
            .waveforms(&query)
            .unwrap()
            .into_iter()
            .map(|w| w.segment.start)
            .collect::<Vec<_>>()
    };
    assert_eq!(segments(&a), [ecg.start, across.start]);
    assert_eq!(segments(&b), [after.start]);
}

/// Waveform search: codes (none = all), overlap with `[from, to)`, start order and limit.
pub fn waveform_search(store: &dyn Store) {
    let (d, a) = bound(store, "mon-1", "a", t(8, 0, 0));
    let (other, b) = bound(store, "mon-2", "b", t(8, 0, 0));
    let ecg = |second: u32| wave(WaveformCode::EcgLeadIi, t(10, 0, second), 10);
    let pleth = wave(WaveformCode::Pleth, t(10, 0, 5), 10);
    let resp = WaveformSegment {
        samples: Vec::new(),
        ..wave(WaveformCode::Respiration, t(10, 0, 12), 0)
    };
    let segments = vec![ecg(20), ecg(0), pleth.clone(), ecg(10), resp.clone()];
    append(
        store,
        &[Submission {
            patient: None,
            waveforms: segments,
            ..submission(&d, t(10, 1, 0), Vec::new())
        }],
    );
    append(
        store,
        &[Submission {
            patient: None,
            waveforms: vec![ecg(0)],
            ..submission(&other, t(10, 1, 0), Vec::new())
        }],
    );

    let starts =
        |codes: Vec<WaveformCode>, from: Option<Instant>, to: Option<Instant>, limit: usize| {
            let query = WaveformQuery {
                patient: a.clone(),
                codes,
                from,
                to,
                limit,
            };
            let found = store.waveforms(&query).unwrap();
            assert!(found.iter().all(|w| w.patient == a));
            found
                .iter()
                .map(|w| (w.segment.code, w.segment.start))
                .collect::<Vec<_>>()
        };
    let e = |second: u32| (WaveformCode::EcgLeadIi, t(10, 0, second));
    let p = (WaveformCode::Pleth, pleth.start);
    let r = (WaveformCode::Respiration, resp.start);
    assert_eq!(
        starts(vec![WaveformCode::EcgLeadIi], None, None, 10),
        [e(0), e(10), e(20)]
    );
    assert_eq!(
        starts(Vec::new(), None, None, 10),
        [e(0), p, e(10), r, e(20)],
        "no codes: every signal"
    );
    assert_eq!(
        starts(
            vec![WaveformCode::Pleth, WaveformCode::Respiration],
            None,
            None,
            10
        ),
        [p, r]
    );
    assert_eq!(starts(Vec::new(), None, None, 2), [e(0), p]);
    let nothing: Vec<(WaveformCode, Instant)> = Vec::new();
    assert_eq!(starts(Vec::new(), None, None, 0), nothing);
    // [10:00:15, 10:00:25): ECG 10–20 and 20–30 overlap; pleth 5–15 ends exactly at the start.
    assert_eq!(
        starts(Vec::new(), Some(t(10, 0, 15)), Some(t(10, 0, 25)), 10),
        [e(10), e(20)]
    );
    // [.., 10:00:10): ECG 10–20 starts exactly at the end: excluded.
    assert_eq!(starts(Vec::new(), None, Some(t(10, 0, 10)), 10), [e(0), p]);
    // An empty segment is the instant it starts.
    assert_eq!(
        starts(
            vec![WaveformCode::Respiration],
            Some(t(10, 0, 12)),
            Some(t(10, 0, 13)),
            10
        ),
        [r]
    );
    assert_eq!(
        starts(
            vec![WaveformCode::Respiration],
            Some(t(10, 0, 12) + us(1)),
            None,
            10
        ),
        nothing
    );
    assert_eq!(
        starts(Vec::new(), Some(t(10, 0, 29) + us(999_999)), None, 10),
        [e(20)],
        "the last microsecond"
    );
    assert_eq!(starts(Vec::new(), Some(t(10, 0, 30)), None, 10), nothing);

    let only_b = WaveformQuery {
        patient: b,
        codes: Vec::new(),
        from: None,
        to: None,
        limit: 10,
    };
    assert_eq!(store.waveforms(&only_b).unwrap().len(), 1);
    let nobody = WaveformQuery {
        patient: pid("nobody"),
        codes: Vec::new(),
        from: None,
        to: None,
        limit: 10,
    };
    assert!(store.waveforms(&nobody).unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Stats

/// Counts of patients, devices and stored observations (not duplicates or unattributed ones).
pub fn stats(store: &dyn Store) {
    assert_eq!(store.stats().unwrap(), StoreStats::default());
    let (d, _) = bound(store, "mon-1", "a", t(8, 0, 0));
    add_patient(store, "b");
    let spare = add_device(store, "spare-1");
    add_device(store, "spare-2");
    append(
        store,
        &[
            submission(
                &d,
                t(9, 1, 0),
                vec![
                    hr(1.0, t(9, 0, 0)),
                    hr(2.0, t(9, 0, 1)),
                    hr(3.0, t(9, 0, 0)),
                ],
            ),
            submission(&spare, t(9, 1, 0), vec![hr(4.0, t(9, 0, 0))]),
        ],
    );
    append(
        store,
        &[submission(
            &d,
            t(9, 2, 0),
            vec![hr(1.0, t(9, 0, 0)), hr(5.0, t(9, 0, 2))],
        )],
    );
    assert_eq!(
        store.stats().unwrap(),
        StoreStats {
            patients: 2,
            devices: 3,
            observations: 3
        }
    );
}

// ---------------------------------------------------------------------------------------------
// The observation log

/// `observations_after` pages through every stored observation in id order with no gaps and no
/// repeats (a few hundred, appended in several batches with duplicates and unattributed readings
/// among them); ids increase from batch to batch; `last_observation_id` is the newest.
pub fn observations_after_tails_the_log(store: &dyn Store) {
    use vigil_model::ObservationId;
    assert_eq!(store.last_observation_id().unwrap(), ObservationId(0));
    assert!(
        store
            .observations_after(ObservationId(0), 10)
            .unwrap()
            .is_empty()
    );

    let (d1, a) = bound(store, "mon-1", "a", t(8, 0, 0));
    let (d2, b) = bound(store, "mon-2", "b", t(8, 0, 0));
    let spare = add_device(store, "spare-1");
    let mut batches: Vec<Vec<i64>> = Vec::new();
    for batch in 0..6i64 {
        let at = |i: i64| t(9, 0, 0) + Duration::seconds(batch * 30 + i);
        let mut first = (0..30).map(|i| hr(60.0, at(i))).collect::<Vec<_>>();
        if batch > 0 {
            // A redelivery of the previous batch's first reading.
            first.push(hr(60.0, t(9, 0, 0) + Duration::seconds((batch - 1) * 30)));
        }
        let second = (0..20)
            .map(|i| quantity(Measurand::Spo2, 95.0, at(i) + us(1)))
            .collect();
        let outcomes = append(
            store,
            &[
                submission(&d1, at(30), first),
                submission(&spare, at(30), vec![hr(1.0, at(0))]),
                submission(&d2, at(30), second),
            ],
        );
        let ids: Vec<i64> = outcomes
            .iter()
            .flat_map(|o| o.readings.iter())
            .filter_map(|o| match o {
                Outcome::Stored(id) => Some(*id),
                _ => None,
            })
            .collect();
        assert_eq!(ids.len(), 50);
        batches.push(ids);
    }
    for pair in batches.windows(2) {
        let last = pair[0].iter().max().expect("ids");
        let first = pair[1].iter().min().expect("ids");
        assert!(first > last, "a later commit has greater ids");
    }
    let mut stored: Vec<i64> = batches.concat();
    stored.sort_unstable();
    stored.dedup();
    assert_eq!(stored.len(), 300, "distinct ids");

    let mut seen = Vec::new();
    let mut after = ObservationId(0);
    loop {
        let page = store.observations_after(after, 37).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 37);
        for o in &page {
            assert!(o.id > after, "ascending, after the cursor");
            after = o.id;
        }
        seen.extend(page);
    }
    assert_eq!(
        seen.iter().map(|o| o.id.0).collect::<Vec<_>>(),
        stored,
        "every stored observation once, in id order"
    );
    let mut searched = search(store, &query_for(&a));
    searched.extend(search(store, &query_for(&b)));
    searched.sort_by_key(|o| o.id);
    assert_eq!(seen, searched, "the same observations as a search finds");
    let newest = ObservationId(*stored.last().expect("ids"));
    assert_eq!(store.last_observation_id().unwrap(), newest);
    assert!(store.observations_after(newest, 10).unwrap().is_empty());
    assert!(
        store
            .observations_after(ObservationId(0), 0)
            .unwrap()
            .is_empty(),
        "limit 0 returns nothing"
    );

    let outcomes = append(
        store,
        &[submission(&d1, t(11, 0, 0), vec![hr(99.0, t(11, 0, 0))])],
    );
    let next = stored_id(outcomes[0].readings[0]);
    let tail = store.observations_after(newest, 10).unwrap();
    assert_eq!(
        tail.iter().map(|o| o.id.0).collect::<Vec<_>>(),
        [next],
        "a tailer sees the next commit"
    );
    assert_eq!(store.last_observation_id().unwrap(), ObservationId(next));
}

// ---------------------------------------------------------------------------------------------
// Alarms

fn alarm_record(id: u64, patient: Option<&PatientId>, state: &str, at: Instant) -> AlarmRecord {
    AlarmRecord {
        id,
        patient: patient.cloned(),
        device: None,
        condition: "threshold:spo2:low".into(),
        state: state.into(),
        priority: "high".into(),
        raised_at: at,
        updated_at: at,
        snapshot: format!(r#"{{"id":{id},"state":"{state}"}}"#),
    }
}

/// An alarm change with its event (of `kind`, at the alarm's `updated_at`).
fn change(alarm: AlarmRecord, kind: &str) -> (AlarmRecord, AlarmEventRecord) {
    let event = AlarmEventRecord {
        alarm: alarm.id,
        at: alarm.updated_at,
        kind: kind.into(),
        by: None,
        detail: format!(r#"{{"state":"{}"}}"#, alarm.state),
    };
    (alarm, event)
}

fn record(store: &dyn Store, changes: &[(AlarmRecord, AlarmEventRecord)]) {
    let seqs = store
        .record_alarm_changes(changes, &[])
        .expect("record alarm changes");
    assert!(seqs.is_empty(), "no stream events, no seqs");
}

fn alarm_ids(store: &dyn Store, query: AlarmQuery) -> Vec<u64> {
    store
        .alarms(&query)
        .expect("search alarms")
        .iter()
        .map(|a| a.id)
        .collect()
}

/// An alarm comes back field for field (times to the microsecond, no patient or device, Unicode
/// in the snapshot); recording an alarm id again replaces every column.
pub fn alarm_round_trip_and_upsert(store: &dyn Store) {
    let (d, a) = bound(store, "mon-1", "a", t(8, 0, 0));
    let b = add_patient(store, "b");
    assert_eq!(store.alarm(1).unwrap(), None);
    assert_eq!(store.alarm(u64::MAX).unwrap(), None);
    let full = AlarmRecord {
        id: 1,
        patient: Some(a.clone()),
        device: Some(d.clone()),
        condition: "technical:silent".into(),
        state: "active".into(),
        priority: "medium".into(),
        raised_at: t(9, 0, 0) + us(123_457),
        updated_at: t(9, 0, 1) + us(999_999),
        snapshot: r#"{"kind": "silent", "note": "Čestmír ✓", "nested": {"a": [1, 2.5]}}"#.into(),
    };
    let bare = AlarmRecord {
        id: 2,
        patient: None,
        device: None,
        condition: "news2:band".into(),
        state: "resolved".into(),
        priority: "low".into(),
        raised_at: t(9, 0, 0) - us(1),
        updated_at: t(9, 0, 0),
        snapshot: String::new(),
    };
    record(
        store,
        &[
            change(full.clone(), "raised"),
            change(bare.clone(), "raised"),
        ],
    );
    assert_eq!(store.alarm(1).unwrap(), Some(full.clone()));
    assert_eq!(store.alarm(2).unwrap(), Some(bare.clone()));

    let replaced = AlarmRecord {
        id: 1,
        patient: Some(b.clone()),
        device: None,
        condition: "threshold:hr:high".into(),
        state: "acknowledged".into(),
        priority: "high".into(),
        raised_at: t(9, 0, 2),
        updated_at: t(9, 5, 0) + us(1),
        snapshot: r#"{"v":2}"#.into(),
    };
    record(store, &[change(replaced.clone(), "acknowledged")]);
    assert_eq!(
        store.alarm(1).unwrap(),
        Some(replaced.clone()),
        "every column replaced"
    );
    let with_device = AlarmRecord {
        patient: None,
        device: Some(d.clone()),
        ..bare.clone()
    };
    record(store, &[change(with_device.clone(), "moved")]);
    assert_eq!(store.alarm(2).unwrap(), Some(with_device));
    let all = AlarmQuery {
        limit: 10,
        ..AlarmQuery::default()
    };
    assert_eq!(alarm_ids(store, all), [2, 1], "an upsert adds no alarm");
    assert_eq!(
        alarm_ids(
            store,
            AlarmQuery {
                patient: Some(a),
                limit: 10,
                ..AlarmQuery::default()
            }
        ),
        Vec::<u64>::new(),
        "the replaced patient no longer finds it"
    );
}

/// An alarm's history comes back in the order recorded (not by time), events of several changes
/// of one alarm in one call included; `by` round-trips; an unknown alarm has none.
pub fn alarm_history_in_order(store: &dyn Store) {
    let a = add_patient(store, "a");
    let raised = alarm_record(7, Some(&a), "active", t(9, 0, 0) + us(5));
    let other = alarm_record(8, Some(&a), "active", t(9, 0, 10));
    let (alarm, first) = change(raised.clone(), "raised");
    record(store, &[(alarm, first.clone()), change(other, "raised")]);
    let acked = AlarmRecord {
        state: "acknowledged".into(),
        updated_at: t(9, 1, 0),
        ..raised.clone()
    };
    let (acked, mut ack) = change(acked, "acknowledged");
    ack.by = Some("nurse.novakova".into());
    // Recorded later but stamped earlier: history keeps the order of recording.
    let (escalated, mut escalation) = change(
        AlarmRecord {
            priority: "high".into(),
            ..acked.clone()
        },
        "escalated",
    );
    escalation.at = t(9, 0, 30);
    let resolved = AlarmRecord {
        state: "resolved".into(),
        updated_at: t(9, 2, 0),
        ..escalated.clone()
    };
    let (resolved, resolution) = change(resolved, "resolved");
    record(
        store,
        &[
            (acked, ack.clone()),
            (escalated, escalation.clone()),
            (resolved.clone(), resolution.clone()),
        ],
    );
    assert_eq!(
        store.alarm_events(7).unwrap(),
        [first, ack, escalation, resolution]
    );
    assert_eq!(
        store.alarm(7).unwrap(),
        Some(resolved),
        "the last change of a call wins"
    );
    assert_eq!(store.alarm_events(8).unwrap().len(), 1);
    assert!(store.alarm_events(9).unwrap().is_empty());
    assert!(store.alarm_events(u64::MAX).unwrap().is_empty());
}

/// Newest (highest id) first whatever the order recorded; by patient; open only (not resolved);
/// paging with `before`; limit 0; an unknown patient has none.
pub fn alarm_search_and_paging(store: &dyn Store) {
    let a = add_patient(store, "a");
    let b = add_patient(store, "b");
    let d = add_device(store, "spare-1");
    // Odd ids are a's, even ids b's, every third one resolved; 13 is a device's alone.
    let mut changes = Vec::new();
    for id in [5u64, 1, 12, 3, 8, 2, 11, 4, 10, 6, 9, 7] {
        let patient = if id % 2 == 1 { &a } else { &b };
        let state = if id % 3 == 0 { "resolved" } else { "active" };
        changes.push(change(
            alarm_record(id, Some(patient), state, t(9, 0, 0)),
            "raised",
        ));
    }
    changes.push(change(
        AlarmRecord {
            device: Some(d),
            ..alarm_record(13, None, "acknowledged", t(9, 0, 0))
        },
        "raised",
    ));
    record(store, &changes);
    let q = |patient: Option<&PatientId>, open_only: bool, before: Option<u64>, limit: usize| {
        alarm_ids(
            store,
            AlarmQuery {
                patient: patient.cloned(),
                open_only,
                before,
                limit,
                within: None,
            },
        )
    };
    let none = Vec::<u64>::new();
    assert_eq!(
        q(None, false, None, 100),
        (1..=13).rev().collect::<Vec<_>>()
    );
    assert_eq!(q(Some(&a), false, None, 100), [11, 9, 7, 5, 3, 1]);
    assert_eq!(q(Some(&b), false, None, 100), [12, 10, 8, 6, 4, 2]);
    assert_eq!(
        q(None, true, None, 100),
        [13, 11, 10, 8, 7, 5, 4, 2, 1],
        "acknowledged alarms are open"
    );
    assert_eq!(q(Some(&a), true, None, 100), [11, 7, 5, 1]);

    assert_eq!(q(None, false, None, 4), [13, 12, 11, 10]);
    assert_eq!(q(None, false, Some(10), 4), [9, 8, 7, 6]);
    assert_eq!(q(None, false, Some(6), 4), [5, 4, 3, 2]);
    assert_eq!(q(None, false, Some(2), 4), [1]);
    assert_eq!(q(None, false, Some(1), 4), none);
    assert_eq!(
        q(None, false, Some(u64::MAX), 2),
        [13, 12],
        "a bound above every id"
    );
    assert_eq!(q(Some(&a), true, None, 2), [11, 7]);
    assert_eq!(q(Some(&a), true, Some(7), 2), [5, 1]);
    assert_eq!(q(Some(&a), true, Some(1), 2), none);
    assert_eq!(q(None, false, None, 0), none, "limit 0 returns nothing");
    assert_eq!(q(Some(&pid("nobody")), false, None, 10), none);

    // Resolving an alarm takes it out of the open ones; full records come back.
    let resolved = alarm_record(11, Some(&a), "resolved", t(9, 5, 0));
    record(store, &[change(resolved.clone(), "resolved")]);
    assert_eq!(q(Some(&a), true, None, 100), [7, 5, 1]);
    let found = store
        .alarms(&AlarmQuery {
            patient: Some(a.clone()),
            limit: 1,
            ..AlarmQuery::default()
        })
        .unwrap();
    assert_eq!(found, [resolved]);
}

/// `max_alarm_id` is `None` on an empty store, then the highest id ever recorded, resolved
/// alarms included, whatever the order they were recorded in.
pub fn max_alarm_id_counts_resolved_alarms(store: &dyn Store) {
    assert_eq!(store.max_alarm_id().unwrap(), None);
    let a = add_patient(store, "a");
    record(
        store,
        &[
            change(
                alarm_record(5, Some(&a), "resolved", t(9, 0, 0)),
                "resolved",
            ),
            change(alarm_record(3, Some(&a), "active", t(9, 0, 0)), "raised"),
        ],
    );
    assert_eq!(store.max_alarm_id().unwrap(), Some(5));
    record(
        store,
        &[change(
            alarm_record(3, Some(&a), "resolved", t(9, 1, 0)),
            "resolved",
        )],
    );
    assert_eq!(store.max_alarm_id().unwrap(), Some(5));
    record(
        store,
        &[change(
            alarm_record(9, None, "resolved", t(9, 2, 0)),
            "resolved",
        )],
    );
    assert_eq!(
        store.max_alarm_id().unwrap(),
        Some(9),
        "every alarm resolved: still counted"
    );
}

fn stream_event(at: Instant, patient: Option<&PatientId>, kind: &str) -> NewStreamEvent {
    NewStreamEvent {
        at,
        patient: patient.cloned(),
        kind: kind.into(),
        data: format!(r#"{{"kind":"{kind}"}}"#),
    }
}

/// A call to `record_alarm_changes` (or `append_stream_events`) that fails anywhere stores none
/// of it: not the alarms before the failing one, not their history, not the stream events.
/// Failures: an unknown patient or device (`NotFound`), an event of another alarm, a state or
/// priority outside the vocabulary, an id too large (`Conflict`).
pub fn failed_alarm_changes_store_nothing(store: &dyn Store) {
    let (_, a) = bound(store, "mon-1", "a", t(8, 0, 0));
    let first = alarm_record(1, Some(&a), "active", t(9, 0, 0));
    let seqs = store
        .record_alarm_changes(
            &[change(first.clone(), "raised")],
            &[stream_event(t(9, 0, 0), Some(&a), "alarm")],
        )
        .unwrap();
    let last = store.last_stream_seq().unwrap();
    assert_eq!(seqs, [last]);

    let acked = change(
        AlarmRecord {
            state: "acknowledged".into(),
            updated_at: t(9, 1, 0),
            ..first.clone()
        },
        "acknowledged",
    );
    let second = change(alarm_record(2, Some(&a), "active", t(9, 1, 0)), "raised");
    let events = vec![
        stream_event(t(9, 1, 0), Some(&a), "alarm"),
        stream_event(t(9, 1, 0), None, "alarm"),
    ];
    let nothing_stored = |what: &str| {
        assert_eq!(
            store.alarm(1).unwrap(),
            Some(first.clone()),
            "{what}: the stored alarm is unchanged"
        );
        assert_eq!(store.alarm(2).unwrap(), None, "{what}: no new alarm stored");
        assert_eq!(
            store.alarm_events(1).unwrap().len(),
            1,
            "{what}: no history added"
        );
        assert!(store.alarm_events(2).unwrap().is_empty(), "{what}");
        assert_eq!(store.max_alarm_id().unwrap(), Some(1), "{what}");
        assert_eq!(
            store.last_stream_seq().unwrap(),
            last,
            "{what}: no stream event"
        );
        assert_eq!(
            store.stream_events_after(0, None, 100).unwrap().len(),
            1,
            "{what}"
        );
    };

    let ghost_patient = change(
        alarm_record(3, Some(&pid("ghost")), "active", t(9, 1, 0)),
        "raised",
    );
    expect_not_found(
        store.record_alarm_changes(&[acked.clone(), second.clone(), ghost_patient], &events),
        "an alarm of an unknown patient",
    );
    nothing_stored("unknown patient");

    let ghost_device = change(
        AlarmRecord {
            device: Some(did("ghost")),
            ..alarm_record(3, None, "active", t(9, 1, 0))
        },
        "raised",
    );
    expect_not_found(
        store.record_alarm_changes(&[acked.clone(), second.clone(), ghost_device], &events),
        "an alarm of an unknown device",
    );
    nothing_stored("unknown device");

    let mut with_ghost_event = events.clone();
    with_ghost_event.push(stream_event(t(9, 1, 0), Some(&pid("ghost")), "score"));
    expect_not_found(
        store.record_alarm_changes(&[acked.clone(), second.clone()], &with_ghost_event),
        "a stream event of an unknown patient",
    );
    nothing_stored("stream event of an unknown patient");
    expect_not_found(
        store.append_stream_events(&with_ghost_event),
        "append_stream_events with an unknown patient",
    );
    nothing_stored("append_stream_events");

    let (alarm, mut misfiled) = second.clone();
    misfiled.alarm = 1;
    expect_conflict(
        store.record_alarm_changes(&[acked.clone(), (alarm, misfiled)], &events),
        "an event of another alarm",
    );
    nothing_stored("event of another alarm");

    for (what, bad) in [
        (
            "an unknown state",
            AlarmRecord {
                state: "silenced".into(),
                ..second.0.clone()
            },
        ),
        (
            "an unknown priority",
            AlarmRecord {
                priority: "urgent".into(),
                ..second.0.clone()
            },
        ),
        (
            "an id beyond i64::MAX",
            AlarmRecord {
                id: u64::MAX,
                ..second.0.clone()
            },
        ),
    ] {
        expect_conflict(
            store.record_alarm_changes(&[acked.clone(), change(bad, "raised")], &events),
            what,
        );
        nothing_stored(what);
    }

    // The store still works, and numbering continues after the last committed seq.
    let seqs = store
        .record_alarm_changes(&[acked.clone(), second.clone()], &events)
        .unwrap();
    assert_eq!(seqs.len(), 2);
    assert!(seqs[0] > last && seqs[1] > seqs[0]);
    assert_eq!(store.alarm(1).unwrap(), Some(acked.0));
    assert_eq!(store.alarm(2).unwrap(), Some(second.0));
    assert_eq!(store.alarm_events(1).unwrap().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// The stream log

/// Seqs are assigned in order, strictly increasing across calls of both writing methods; events
/// round-trip (times to the microsecond, no patient); `stream_events_after` pages by seq.
pub fn stream_seqs_strictly_increase(store: &dyn Store) {
    assert_eq!(store.last_stream_seq().unwrap(), 0);
    assert!(store.stream_events_after(0, None, 10).unwrap().is_empty());
    assert!(store.append_stream_events(&[]).unwrap().is_empty());
    assert!(store.record_alarm_changes(&[], &[]).unwrap().is_empty());
    assert_eq!(store.last_stream_seq().unwrap(), 0, "nothing appended");

    let a = add_patient(store, "a");
    let mut appended = vec![
        stream_event(t(9, 0, 0) + us(1), Some(&a), "score"),
        stream_event(t(9, 0, 0), None, "alarm"),
        NewStreamEvent {
            data: r#"{"news2": 7, "note": "ünïcode"}"#.into(),
            ..stream_event(t(8, 59, 59) + us(999_999), Some(&a), "score")
        },
    ];
    let first = store.append_stream_events(&appended).unwrap();
    assert_eq!(first.len(), 3);
    assert!(first[0] > 0 && first[0] < first[1] && first[1] < first[2]);
    assert_eq!(store.last_stream_seq().unwrap(), first[2]);

    let more = vec![
        stream_event(t(9, 1, 0), Some(&a), "alarm"),
        stream_event(t(9, 1, 0), Some(&a), "alarm"),
    ];
    let second = store
        .record_alarm_changes(
            &[change(
                alarm_record(1, Some(&a), "active", t(9, 1, 0)),
                "raised",
            )],
            &more,
        )
        .unwrap();
    assert_eq!(second.len(), 2);
    assert!(first[2] < second[0] && second[0] < second[1]);
    record(
        store,
        &[change(
            alarm_record(1, Some(&a), "resolved", t(9, 2, 0)),
            "resolved",
        )],
    );
    assert_eq!(
        store.last_stream_seq().unwrap(),
        second[1],
        "alarm changes alone take no seq"
    );

    appended.extend(more);
    let seqs: Vec<u64> = first.iter().chain(&second).copied().collect();
    let expected: Vec<StreamEvent> = appended
        .iter()
        .zip(&seqs)
        .map(|(e, &seq)| StreamEvent {
            seq,
            at: e.at,
            patient: e.patient.clone(),
            kind: e.kind.clone(),
            data: e.data.clone(),
        })
        .collect();
    assert_eq!(store.stream_events_after(0, None, 100).unwrap(), expected);
    assert_eq!(
        store.stream_events_after(seqs[1], None, 2).unwrap(),
        expected[2..4],
        "after a seq, limited"
    );
    assert!(
        store
            .stream_events_after(seqs[4], None, 10)
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .stream_events_after(u64::MAX, None, 10)
            .unwrap()
            .is_empty()
    );
    assert!(
        store.stream_events_after(0, None, 0).unwrap().is_empty(),
        "limit 0 returns nothing"
    );
}

/// With a patient, only that patient's events (not other patients', not those of no patient),
/// in seq order, paged; an unknown patient has none.
pub fn stream_events_by_patient(store: &dyn Store) {
    let a = add_patient(store, "a");
    let b = add_patient(store, "b");
    let mut events = Vec::new();
    for i in 0..12u32 {
        let patient = match i % 3 {
            0 => Some(&a),
            1 => Some(&b),
            _ => None,
        };
        events.push(stream_event(t(9, 0, i), patient, "score"));
    }
    let seqs = store.append_stream_events(&events).unwrap();
    let seqs_of = |patient: Option<&PatientId>, after: u64, limit: usize| {
        store
            .stream_events_after(after, patient, limit)
            .unwrap()
            .iter()
            .map(|e| {
                assert!(patient.is_none() || e.patient.as_ref() == patient);
                e.seq
            })
            .collect::<Vec<_>>()
    };
    let pick = |n: u32| {
        seqs.iter()
            .enumerate()
            .filter(|(i, _)| *i as u32 % 3 == n)
            .map(|(_, s)| *s)
            .collect::<Vec<_>>()
    };
    assert_eq!(seqs_of(Some(&a), 0, 100), pick(0));
    assert_eq!(seqs_of(Some(&b), 0, 100), pick(1));
    assert_eq!(seqs_of(None, 0, 100), seqs, "no filter: every event");
    assert_eq!(seqs_of(Some(&a), 0, 2), pick(0)[..2]);
    assert_eq!(seqs_of(Some(&a), pick(0)[1], 2), pick(0)[2..4]);
    assert_eq!(seqs_of(Some(&a), pick(0)[3], 2), Vec::<u64>::new());
    assert_eq!(seqs_of(Some(&pid("nobody")), 0, 100), Vec::<u64>::new());
}

/// Pruning deletes the events stamped before the time (not at it), whatever their seq, and
/// returns how many; the rest keep their seqs; seqs are not reused after everything is pruned.
pub fn stream_events_prune(store: &dyn Store) {
    let a = add_patient(store, "a");
    assert_eq!(store.prune_stream_events(t(12, 0, 0)).unwrap(), 0);
    let times = [
        t(9, 0, 0),
        t(9, 1, 0),
        t(9, 2, 0) - us(1),
        t(9, 2, 0),
        t(9, 3, 0),
        // Appended last, stamped early.
        t(8, 59, 0),
    ];
    let events: Vec<NewStreamEvent> = times
        .iter()
        .map(|&at| stream_event(at, Some(&a), "score"))
        .collect();
    let seqs = store.append_stream_events(&events).unwrap();
    let before = store.stream_events_after(0, None, 100).unwrap();
    assert_eq!(store.prune_stream_events(t(9, 2, 0)).unwrap(), 4);
    let after = store.stream_events_after(0, None, 100).unwrap();
    assert_eq!(
        after,
        before[3..5],
        "the event at the cut is kept; the rest keep their seqs"
    );
    assert_eq!(store.prune_stream_events(t(9, 2, 0)).unwrap(), 0);
    assert_eq!(store.last_stream_seq().unwrap(), seqs[5]);

    assert_eq!(store.prune_stream_events(t(12, 0, 0)).unwrap(), 2);
    assert!(store.stream_events_after(0, None, 100).unwrap().is_empty());
    assert_eq!(
        store.last_stream_seq().unwrap(),
        seqs[5],
        "the last seq survives pruning"
    );
    let next = store
        .append_stream_events(&[stream_event(t(12, 0, 0), None, "score")])
        .unwrap();
    assert!(next[0] > seqs[5], "a pruned seq is not reused");
}

// ---------------------------------------------------------------------------------------------
// Patient settings

/// Settings round-trip verbatim and are replaced by the next put; `None` until one; `NotFound`
/// for an unknown patient, reading or writing.
pub fn patient_settings_round_trip(store: &dyn Store) {
    let a = add_patient(store, "a");
    let b = add_patient(store, "b");
    assert_eq!(store.patient_settings(&a).unwrap(), None);
    expect_not_found(
        store.patient_settings(&pid("ghost")),
        "read an unknown patient",
    );
    expect_not_found(
        store.put_patient_settings(&pid("ghost"), "{}"),
        "write an unknown patient",
    );
    let settings = r#"{ "spo2_scale": 2, "thresholds": {"hr": [40, 130.5]}, "note": "Čestmír" }"#;
    store.put_patient_settings(&a, settings).unwrap();
    assert_eq!(
        store.patient_settings(&a).unwrap().as_deref(),
        Some(settings)
    );
    store
        .put_patient_settings(&a, r#"{"spo2_scale":1}"#)
        .unwrap();
    assert_eq!(
        store.patient_settings(&a).unwrap().as_deref(),
        Some(r#"{"spo2_scale":1}"#),
        "replaced"
    );
    assert_eq!(
        store.patient_settings(&b).unwrap(),
        None,
        "another patient's are untouched"
    );
}

fn news2(total: u8, band: &str) -> vigil_model::News2Value {
    vigil_model::News2Value {
        total,
        band: band.to_owned(),
        complete: false,
        spo2_scale: 1,
        scores: vec![("respiration_rate".into(), Some(3)), ("spo2".into(), None)],
    }
}

fn score(patient: &PatientId, at: Instant, total: u8) -> crate::ScoreRecord {
    crate::ScoreRecord {
        patient: patient.clone(),
        effective: at,
        recorded: at + us(5),
        value: news2(total, "low-medium"),
    }
}

/// NEWS2 records join the observation log under the scorer device (two patients may be scored at
/// the same instant; a repeated record is stored once) and are searched like any observation; the
/// engine's position is kept and never moves back.
pub fn surveillance_steps_record_scores_and_position(store: &dyn Store) {
    let (_, a) = bound(store, "mon-1", "a", t(8, 0, 0));
    let b = add_patient(store, "b");
    assert_eq!(store.surveillance_position().unwrap(), None);
    let before = store.last_observation_id().unwrap();
    let scores = [score(&a, t(9, 0, 0), 3), score(&b, t(9, 0, 0), 5)];
    let written = store
        .record_surveillance(&crate::SurveillanceStep {
            scores: &scores,
            stream_events: &[stream_event(t(9, 0, 0), Some(&a), "news2")],
            position: Some(vigil_model::ObservationId(7)),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(written.scores.len(), 2);
    assert_eq!(written.stream_seqs.len(), 1);
    assert!(written.scores.iter().all(|id| *id > before));
    assert_ne!(written.scores[0], written.scores[1]);
    let o = store
        .observation(written.scores[0])
        .unwrap()
        .expect("stored");
    assert_eq!(o.code, ObservationCode::News2);
    assert_eq!(o.patient, a);
    assert_eq!(o.device.as_str(), vigil_model::NEWS2_SCORER);
    assert_eq!(o.effective, t(9, 0, 0));
    assert_eq!(o.received, t(9, 0, 0) + us(5));
    assert_eq!(o.status, ObservationStatus::Final);
    assert_eq!(o.value, ObservationValue::News2(news2(3, "low-medium")));
    assert_eq!(
        store.surveillance_position().unwrap(),
        Some(vigil_model::ObservationId(7))
    );

    // Tailed and searched like any observation.
    let tail = store.observations_after(before, 10).unwrap();
    assert_eq!(
        tail.iter().map(|o| o.id).collect::<Vec<_>>(),
        written.scores
    );
    let found = store
        .search_observations(&ObservationQuery {
            patient: Some(b.clone()),
            codes: vec![ObservationCode::News2],
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, written.scores[1]);

    // The same record again is not stored twice; the position never moves back.
    let again = store
        .record_surveillance(&crate::SurveillanceStep {
            scores: &scores[..1],
            position: Some(vigil_model::ObservationId(3)),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(again.scores, written.scores[..1]);
    assert_eq!(store.last_observation_id().unwrap(), written.scores[1]);
    assert_eq!(
        store.surveillance_position().unwrap(),
        Some(vigil_model::ObservationId(7))
    );
    assert_eq!(store.stats().unwrap().observations, 2);
}

/// A step that cannot be stored (a score for an unknown patient) stores none of its parts.
pub fn failed_surveillance_step_stores_nothing(store: &dyn Store) {
    let (_, a) = bound(store, "mon-1", "a", t(8, 0, 0));
    let first = alarm_record(1, Some(&a), "active", t(9, 0, 0));
    let ghost = pid("ghost");
    let result = store.record_surveillance(&crate::SurveillanceStep {
        alarm_changes: &[change(first, "raised")],
        scores: &[score(&a, t(9, 0, 0), 3), score(&ghost, t(9, 0, 0), 3)],
        stream_events: &[stream_event(t(9, 0, 0), Some(&a), "alarm")],
        position: Some(vigil_model::ObservationId(9)),
    });
    assert!(result.is_err());
    assert_eq!(store.alarm(1).unwrap(), None);
    assert_eq!(
        store.last_observation_id().unwrap(),
        vigil_model::ObservationId(0)
    );
    assert_eq!(store.last_stream_seq().unwrap(), 0);
    assert_eq!(store.surveillance_position().unwrap(), None);
}

/// A submission that names its patient (an HL7 message's PID) is attributed to that patient,
/// whatever the device's bindings say; one naming an unknown patient attributes nothing; the same
/// reading for two patients is two observations, and for one patient it is stored once.
pub fn a_named_patient_overrides_the_binding(store: &dyn Store) {
    let (d, a) = bound(store, "mon-1", "a", t(8, 0, 0));
    let b = add_patient(store, "b");
    let unbound = add_device(store, "mon-2");
    let named = |device: &DeviceId, patient: &PatientId, at: Instant| Submission {
        patient: Some(patient.clone()),
        ..submission(device, at, vec![quantity(Measurand::HeartRate, 70.0, at)])
    };
    let outcomes = append(
        store,
        &[
            named(&d, &b, t(9, 0, 0)),
            named(&unbound, &b, t(9, 0, 0)),
            named(&d, &a, t(9, 0, 0)),
            Submission {
                patient: Some(pid("nobody")),
                ..submission(
                    &d,
                    t(9, 0, 1),
                    vec![quantity(Measurand::HeartRate, 71.0, t(9, 0, 1))],
                )
            },
            named(&d, &b, t(9, 0, 0)),
        ],
    );
    let to_b = store
        .observation(vigil_model::ObservationId(stored_id(
            outcomes[0].readings[0],
        )))
        .unwrap()
        .unwrap();
    assert_eq!(
        (to_b.patient.clone(), to_b.device.clone()),
        (b.clone(), d.clone()),
        "not the binding's patient a"
    );
    let unbound_to_b = stored_id(outcomes[1].readings[0]);
    assert_eq!(
        store
            .observation(vigil_model::ObservationId(unbound_to_b))
            .unwrap()
            .unwrap()
            .patient,
        b
    );
    let to_a = stored_id(outcomes[2].readings[0]);
    assert_ne!(
        to_a,
        stored_id(outcomes[0].readings[0]),
        "a second patient, a second observation"
    );
    assert_eq!(outcomes[3].readings[0], Outcome::Unattributed);
    assert_eq!(
        outcomes[4].readings[0],
        Outcome::Duplicate(stored_id(outcomes[0].readings[0]))
    );
}

/// Refused messages are kept with their reason and (cut) payload, newest first, filtered by source
/// and device, paged by id, and pruned by time.
pub fn refused_messages_are_kept_newest_first(store: &dyn Store) {
    let refusal =
        |n: u32, source: &str, device: Option<&str>, payload: Vec<u8>| crate::RefusedMessage {
            at: t(9, n, 0),
            source: source.to_owned(),
            device: device.map(did),
            kind: format!("kind_{n}"),
            reason: format!("reason {n}"),
            payload,
            whole: n.is_multiple_of(2),
        };
    let big = vec![b'x'; crate::REFUSED_PAYLOAD_MAX + 100];
    store
        .record_refusals(&[
            refusal(0, "mqtt", Some("mon-1"), b"{}".to_vec()),
            refusal(1, "http", Some("mon-2"), big),
            refusal(2, "mllp", None, b"MSH|".to_vec()),
            refusal(3, "mqtt", Some("mon-1"), Vec::new()),
        ])
        .unwrap();
    let all = store
        .refusals(&crate::RefusalQuery {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    let kinds: Vec<&str> = all.iter().map(|r| r.message.kind.as_str()).collect();
    assert_eq!(kinds, ["kind_3", "kind_2", "kind_1", "kind_0"]);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id));
    assert_eq!(all[1].message.device, None);
    assert_eq!(
        all[2].message.payload.len(),
        crate::REFUSED_PAYLOAD_MAX,
        "cut to the limit"
    );
    assert_eq!(
        all[3].message,
        refusal(0, "mqtt", Some("mon-1"), b"{}".to_vec())
    );
    let mon1 = store
        .refusals(&crate::RefusalQuery {
            device: Some(did("mon-1")),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(mon1.len(), 2);
    let mllp = store
        .refusals(&crate::RefusalQuery {
            source: Some("mllp".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(mllp.len(), 1);
    let page = store
        .refusals(&crate::RefusalQuery {
            before: Some(all[1].id),
            limit: 1,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page[0].id, all[2].id);
    assert_eq!(store.prune_refusals(t(9, 2, 0)).unwrap(), 2);
    assert_eq!(
        store
            .refusals(&crate::RefusalQuery {
                limit: 10,
                ..Default::default()
            })
            .unwrap()
            .len(),
        2
    );
}

/// A command waits for its device until the device confirms it (once: the first confirmation
/// stands) or it expires; a correlation id names one command per device.
pub fn device_commands_wait_until_confirmed_or_expired(store: &dyn Store) {
    let d = add_device(store, "disp-1");
    let other = add_device(store, "disp-2");
    let a = store
        .queue_command(&d, "c-1", r#"{"remind":"08:00"}"#, t(9, 0, 0), t(10, 0, 0))
        .unwrap();
    assert_eq!(a.state(t(9, 0, 0)), "queued");
    store
        .queue_command(&d, "c-2", "{}", t(9, 0, 0), t(9, 30, 0))
        .unwrap();
    store
        .queue_command(&other, "c-1", "{}", t(9, 0, 0), t(10, 0, 0))
        .unwrap();
    expect_already_exists(
        store
            .queue_command(&d, "c-1", "{}", t(9, 0, 0), t(10, 0, 0))
            .map(|_| ()),
        "same correlation id",
    );
    assert!(matches!(
        store.queue_command(&did("ghost"), "c-1", "{}", t(9, 0, 0), t(10, 0, 0)),
        Err(StoreError::NotFound { .. })
    ));
    let pending = |at| -> Vec<String> {
        store
            .pending_commands(&d, at)
            .unwrap()
            .into_iter()
            .map(|c| c.correlation_id)
            .collect()
    };
    assert_eq!(pending(t(9, 10, 0)), ["c-1", "c-2"]);
    assert_eq!(pending(t(9, 30, 0)), ["c-1"], "c-2 expired");
    store.mark_command_sent(a.id, t(9, 1, 0)).unwrap();
    let sent = store.command(&d, "c-1").unwrap().unwrap();
    assert_eq!(
        (sent.sent, sent.state(t(9, 2, 0))),
        (Some(t(9, 1, 0)), "sent")
    );
    let confirmed = store
        .confirm_command(&d, "c-1", "ok", None, t(9, 5, 0))
        .unwrap()
        .unwrap();
    assert_eq!(confirmed.state(t(11, 0, 0)), "confirmed");
    let again = store
        .confirm_command(&d, "c-1", "failed", Some("late"), t(9, 6, 0))
        .unwrap()
        .unwrap();
    assert_eq!(
        (again.outcome.as_deref(), again.confirmed),
        (Some("ok"), Some(t(9, 5, 0)))
    );
    assert_eq!(pending(t(9, 10, 0)), ["c-2"]);
    assert_eq!(
        store
            .confirm_command(&d, "nope", "ok", None, t(9, 5, 0))
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .command(&d, "c-2")
            .unwrap()
            .unwrap()
            .state(t(9, 40, 0)),
        "expired"
    );
    let failed = store
        .confirm_command(
            &other,
            "c-1",
            "rejected",
            Some("unknown command"),
            t(9, 5, 0),
        )
        .unwrap()
        .unwrap();
    assert_eq!(failed.state(t(9, 5, 0)), "failed");
    assert_eq!(failed.detail.as_deref(), Some("unknown command"));
}

/// Every template version is kept; a new one must have a greater version; the newest is served.
pub fn templates_are_versioned_upwards(store: &dyn Store) {
    let version = |name: &str, v: u32, text: &str| crate::StoredTemplate {
        name: name.to_owned(),
        version: v,
        format: "yaml".to_owned(),
        text: text.to_owned(),
        uploaded: t(9, v, 0),
        by: "integrator".to_owned(),
    };
    assert_eq!(store.template("acme").unwrap(), None);
    store.put_template(&version("acme", 1, "one")).unwrap();
    store.put_template(&version("acme", 3, "three")).unwrap();
    store.put_template(&version("zeta", 1, "z")).unwrap();
    for stale in [1, 2, 3] {
        assert!(
            matches!(
                store.put_template(&version("acme", stale, "x")),
                Err(StoreError::Conflict(_))
            ),
            "version {stale}"
        );
    }
    assert_eq!(
        store.template("acme").unwrap(),
        Some(version("acme", 3, "three"))
    );
    let all: Vec<(String, u32)> = store
        .templates()
        .unwrap()
        .into_iter()
        .map(|t| (t.name, t.version))
        .collect();
    assert_eq!(all, [("acme".to_owned(), 3), ("zeta".to_owned(), 1)]);
}

/// A corrected result for the same device, code and time is stored beside the original (the log
/// is append-only and both were acknowledged); the same correction resent is a duplicate.
pub fn a_correction_is_kept_beside_the_original(store: &dyn Store) {
    let (d, a) = bound(store, "mon-1", "a", t(8, 0, 0));
    let original = hr(70.0, t(9, 0, 0));
    let corrected = Reading {
        value: ObservationValue::Quantity(Quantity::new(72.0, "/min")),
        status: ObservationStatus::Corrected,
        ..original.clone()
    };
    let outcomes = append(
        store,
        &[
            submission(&d, t(9, 0, 1), vec![original]),
            submission(&d, t(9, 5, 0), vec![corrected.clone()]),
            submission(&d, t(9, 6, 0), vec![corrected]),
        ],
    );
    let first = stored_id(outcomes[0].readings[0]);
    let correction = stored_id(outcomes[1].readings[0]);
    assert_ne!(first, correction);
    assert_eq!(outcomes[2].readings[0], Outcome::Duplicate(correction));
    let found = store
        .search_observations(&ObservationQuery {
            patient: Some(a),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    let statuses: Vec<ObservationStatus> = found.iter().map(|o| o.status).collect();
    assert_eq!(
        statuses,
        [ObservationStatus::Final, ObservationStatus::Corrected]
    );
}

fn uid(id: &str) -> UserId {
    UserId::new(id).expect("a valid fixture account id")
}

fn account(id: &str, role: &str, patient: Option<PatientId>) -> UserAccount {
    UserAccount {
        id: uid(id),
        display_name: format!("Account {id}"),
        role: role.into(),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        patient,
        organization: None,
        failed_logins: 0,
        locked_until: None,
        disabled: false,
        created_at: t(8, 0, 0),
    }
}

pub fn accounts_and_lockout_state(store: &dyn Store) {
    let p = add_patient(store, "p1");
    let nurse = account("nurse.ana", "clinician", None);
    store.create_user(&nurse).expect("create");
    let mut own = account("p1-login", "patient", Some(p.clone()));
    own.organization = Some("home-care".into());
    store.create_user(&own).expect("create a patient's account");
    assert!(matches!(
        store.create_user(&nurse),
        Err(StoreError::AlreadyExists { .. })
    ));
    assert!(matches!(
        store.create_user(&account("ghost", "patient", Some(pid("nobody")))),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.user(&uid("nurse.ana")).unwrap(), Some(nurse.clone()));
    assert_eq!(store.user(&uid("p1-login")).unwrap(), Some(own.clone()));
    assert_eq!(store.user(&uid("nobody")).unwrap(), None);
    let ids: Vec<String> = store
        .users()
        .unwrap()
        .iter()
        .map(|u| u.id.to_string())
        .collect();
    assert_eq!(ids, ["nurse.ana", "p1-login"]);

    store
        .set_login_state(&nurse.id, 3, Some(t(9, 0, 0)))
        .expect("record failures");
    let read = store.user(&nurse.id).unwrap().unwrap();
    assert_eq!(
        (read.failed_logins, read.locked_until),
        (3, Some(t(9, 0, 0)))
    );
    store.set_password(&nurse.id, "new-hash").expect("reset");
    let read = store.user(&nurse.id).unwrap().unwrap();
    assert_eq!(read.password_hash.as_deref(), Some("new-hash"));
    assert_eq!(
        (read.failed_logins, read.locked_until),
        (0, None),
        "a reset unlocks"
    );
    store.set_user_disabled(&nurse.id, true).expect("disable");
    assert!(store.user(&nurse.id).unwrap().unwrap().disabled);
    assert!(matches!(
        store.set_password(&uid("nobody"), "x"),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.set_login_state(&uid("nobody"), 1, None),
        Err(StoreError::NotFound { .. })
    ));
}

pub fn sessions_lifecycle(store: &dyn Store) {
    store
        .create_user(&account("ana", "clinician", None))
        .unwrap();
    store
        .create_user(&account("ben", "clinician", None))
        .unwrap();
    let session = |n: u8, user: &str, expires: Instant| SessionRecord {
        token_hash: [n; 32],
        user: uid(user),
        csrf: format!("csrf-{n}"),
        created_at: t(8, 0, 0),
        last_seen: t(8, 0, 0),
        expires_at: expires,
    };
    let a1 = session(1, "ana", t(20, 0, 0));
    store.create_session(&a1).unwrap();
    store
        .create_session(&session(2, "ana", t(9, 0, 0)))
        .unwrap();
    store
        .create_session(&session(3, "ben", t(20, 0, 0)))
        .unwrap();
    assert!(matches!(
        store.create_session(&session(4, "nobody", t(20, 0, 0))),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.session(&[1; 32]).unwrap(), Some(a1.clone()));
    assert_eq!(store.session(&[9; 32]).unwrap(), None);
    store.touch_session(&[1; 32], t(8, 30, 0)).unwrap();
    store.touch_session(&[1; 32], t(8, 10, 0)).unwrap();
    assert_eq!(
        store.session(&[1; 32]).unwrap().unwrap().last_seen,
        t(8, 30, 0),
        "last seen never goes back"
    );
    assert_eq!(store.prune_sessions(t(10, 0, 0)).unwrap(), 1);
    assert_eq!(store.session(&[2; 32]).unwrap(), None);
    store.end_session(&[3; 32]).unwrap();
    assert_eq!(store.session(&[3; 32]).unwrap(), None);
    store
        .create_session(&session(5, "ana", t(20, 0, 0)))
        .unwrap();
    assert_eq!(store.end_sessions_of(&uid("ana")).unwrap(), 2);
    assert_eq!(store.session(&[1; 32]).unwrap(), None);
}

pub fn care_teams_reach_named_and_ward_patients(store: &dyn Store) {
    for p in ["p1", "p2", "p3", "p4"] {
        add_patient(store, p);
    }
    store.set_patient_ward(&pid("p2"), Some("4B")).unwrap();
    store.set_patient_ward(&pid("p3"), Some("4B")).unwrap();
    store.set_patient_ward(&pid("p4"), Some("ICU")).unwrap();
    assert_eq!(
        store.patient_ward(&pid("p2")).unwrap().as_deref(),
        Some("4B")
    );
    assert!(matches!(
        store.set_patient_ward(&pid("nobody"), Some("4B")),
        Err(StoreError::NotFound { .. })
    ));
    let team = CareTeam {
        id: CareTeamId::new("4b-nurses").unwrap(),
        name: "Ward 4B nurses".into(),
        members: vec![uid("ana")],
        patients: vec![pid("p1")],
        wards: vec!["4B".into()],
        every_patient: false,
    };
    store.put_care_team(&team).unwrap();
    assert_eq!(store.care_teams().unwrap(), vec![team.clone()]);
    assert_eq!(
        store.care_reach(&uid("ana")).unwrap(),
        CareReach {
            every_patient: false,
            patients: vec![pid("p1"), pid("p2"), pid("p3")],
        }
    );
    assert_eq!(store.care_reach(&uid("ben")).unwrap(), CareReach::default());
    // Moving a patient off the ward takes them out of the team's reach at once.
    store.set_patient_ward(&pid("p3"), None).unwrap();
    assert_eq!(
        store.care_reach(&uid("ana")).unwrap().patients,
        vec![pid("p1"), pid("p2")]
    );
    // Replacing the team replaces its lists.
    let replaced = CareTeam {
        members: vec![uid("ben")],
        patients: vec![],
        ..team.clone()
    };
    store.put_care_team(&replaced).unwrap();
    assert_eq!(store.care_reach(&uid("ana")).unwrap(), CareReach::default());
    assert_eq!(
        store.care_reach(&uid("ben")).unwrap().patients,
        vec![pid("p2")]
    );
    let station = CareTeam {
        id: CareTeamId::new("central").unwrap(),
        name: "Central monitoring".into(),
        members: vec![uid("cora")],
        patients: vec![],
        wards: vec![],
        every_patient: true,
    };
    store.put_care_team(&station).unwrap();
    assert!(store.care_reach(&uid("cora")).unwrap().every_patient);
    assert!(matches!(
        store.put_care_team(&CareTeam {
            patients: vec![pid("nobody")],
            ..station
        }),
        Err(StoreError::NotFound { .. })
    ));
}

pub fn consents_round_trip_and_revoke(store: &dyn Store) {
    add_patient(store, "p1");
    add_patient(store, "p2");
    let consent = Consent {
        id: ConsentId::new("c1").unwrap(),
        patient: pid("p1"),
        grantee: Grantee {
            kind: GranteeKind::Person,
            id: "daughter".into(),
        },
        resource_types: vec!["Observation".into(), "Flag".into()],
        start: t(8, 0, 0),
        end: Some(t(20, 0, 0)),
        status: ConsentStatus::Active,
        recorded_by: uid("p1-login"),
        recorded_at: t(8, 0, 0),
    };
    store.put_consent(&consent).unwrap();
    let insurer = Consent {
        id: ConsentId::new("c2").unwrap(),
        patient: pid("p2"),
        grantee: Grantee {
            kind: GranteeKind::Organization,
            id: "acme-insurance".into(),
        },
        resource_types: vec![],
        end: None,
        recorded_at: t(9, 0, 0),
        ..consent.clone()
    };
    store.put_consent(&insurer).unwrap();
    assert_eq!(store.consent(&consent.id).unwrap(), Some(consent.clone()));
    assert_eq!(
        store.consents_of(&pid("p1")).unwrap(),
        vec![consent.clone()]
    );
    assert_eq!(
        store.consents_granted_to(&uid("daughter"), None).unwrap(),
        vec![consent.clone()]
    );
    assert_eq!(
        store
            .consents_granted_to(&uid("agent-7"), Some("acme-insurance"))
            .unwrap(),
        vec![insurer.clone()]
    );
    assert!(
        store
            .consents_granted_to(&uid("acme-insurance"), None)
            .unwrap()
            .is_empty(),
        "a person's id never matches an organisation's grant"
    );
    let revoked = Consent {
        status: ConsentStatus::Inactive,
        ..consent.clone()
    };
    store.put_consent(&revoked).unwrap();
    assert_eq!(store.consent(&consent.id).unwrap(), Some(revoked));
    assert!(matches!(
        store.put_consent(&Consent {
            id: ConsentId::new("c3").unwrap(),
            patient: pid("nobody"),
            ..consent
        }),
        Err(StoreError::NotFound { .. })
    ));
}

pub fn searches_are_restricted_within_patients(store: &dyn Store) {
    let (d1, p1) = bound(store, "d1", "p1", t(8, 0, 0));
    let (d2, _p2) = bound(store, "d2", "p2", t(8, 0, 0));
    append(
        store,
        &[
            submission(&d1, t(9, 0, 0), vec![hr(70.0, t(9, 0, 0))]),
            submission(&d2, t(9, 0, 0), vec![hr(80.0, t(9, 0, 0))]),
        ],
    );
    let only = Some(vec![p1.clone()]);
    let patients = store
        .search_patients(&PatientQuery {
            within: only.clone(),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(patients.len(), 1);
    assert_eq!(patients[0].id, p1);
    let devices = store
        .search_devices(&DeviceQuery {
            within: only.clone(),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        devices.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
        [d1]
    );
    let observations = store
        .search_observations(&ObservationQuery {
            within: only.clone(),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(observations.len(), 1);
    assert_eq!(observations[0].patient, p1);
    let none = store
        .search_observations(&ObservationQuery {
            within: Some(vec![]),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert!(none.is_empty(), "an empty restriction reaches nobody");
    let everyone = store
        .search_observations(&ObservationQuery {
            within: None,
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(everyone.len(), 2);
    record(
        store,
        &[
            change(alarm_record(1, Some(&p1), "active", t(9, 0, 0)), "raised"),
            change(
                alarm_record(2, Some(&pid("p2")), "active", t(9, 0, 0)),
                "raised",
            ),
        ],
    );
    let alarms = store
        .alarms(&AlarmQuery {
            within: only,
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(alarms.iter().map(|a| a.id).collect::<Vec<_>>(), [1]);
}

/// A device is quarantined and released without touching its secret; security alerts add up
/// while open, start afresh once acknowledged, and are listed newest first.
pub fn quarantine_and_security_alerts(store: &dyn Store) {
    let device = add_device(store, "mon-q");
    assert_eq!(store.device_quarantine(&device).unwrap(), None);
    assert_eq!(store.device_quarantine(&did("nobody")).unwrap(), None);
    store
        .set_device_quarantine(&device, Some(t(10, 0, 0)))
        .unwrap();
    assert_eq!(store.device_quarantine(&device).unwrap(), Some(t(10, 0, 0)));
    assert_eq!(
        store.device_secret(&device).unwrap(),
        Some(secret(1)),
        "quarantine keeps the secret"
    );
    store.set_device_quarantine(&device, None).unwrap();
    assert_eq!(store.device_quarantine(&device).unwrap(), None);
    expect_not_found(
        store.set_device_quarantine(&did("nobody"), Some(t(10, 0, 0))),
        "quarantining an unknown device",
    );

    let alert =
        |device: Option<&str>, peer: Option<&str>, kind: &str, at: Instant| NewSecurityAlert {
            device: device.map(did),
            peer: peer.map(str::to_owned),
            kind: kind.into(),
            count: 5,
            at,
            detail: format!("{kind} detail"),
            quarantined: false,
        };
    let first = store
        .record_security_alert(&alert(Some("mon-q"), None, "auth_failures", t(10, 0, 0)))
        .unwrap();
    assert_eq!(
        (
            first.count,
            first.first_seen,
            first.last_seen,
            first.status.as_str()
        ),
        (5, t(10, 0, 0), t(10, 0, 0), "open")
    );
    // Same kind, device and address while open: the same alert grows.
    let mut again = alert(Some("mon-q"), None, "auth_failures", t(10, 5, 0));
    again.quarantined = true;
    again.detail = "newer detail".into();
    let grown = store.record_security_alert(&again).unwrap();
    assert_eq!(grown.id, first.id);
    assert_eq!(
        (
            grown.count,
            grown.first_seen,
            grown.last_seen,
            grown.quarantined
        ),
        (10, t(10, 0, 0), t(10, 5, 0), true)
    );
    assert_eq!(grown.detail, "newer detail");
    // Another address, another kind, an unregistered device id: separate alerts.
    let by_peer = store
        .record_security_alert(&alert(
            None,
            Some("192.0.2.7"),
            "auth_failures",
            t(10, 6, 0),
        ))
        .unwrap();
    let other_kind = store
        .record_security_alert(&alert(Some("mon-q"), None, "topic_violation", t(10, 7, 0)))
        .unwrap();
    let unknown = store
        .record_security_alert(&alert(Some("ghost"), None, "auth_failures", t(10, 8, 0)))
        .unwrap();
    let ids: Vec<u64> = [&first, &by_peer, &other_kind, &unknown]
        .iter()
        .map(|a| a.id)
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "distinct, increasing ids: {ids:?}"
    );
    assert_eq!(by_peer.peer.as_deref(), Some("192.0.2.7"));

    let acked = store
        .acknowledge_security_alert(first.id, "sam", t(11, 0, 0))
        .unwrap();
    assert_eq!(acked.status, "acknowledged");
    assert_eq!(acked.acknowledged_by.as_deref(), Some("sam"));
    assert_eq!(acked.acknowledged_at, Some(t(11, 0, 0)));
    let twice = store
        .acknowledge_security_alert(first.id, "alex", t(12, 0, 0))
        .unwrap();
    assert_eq!(
        twice.acknowledged_by.as_deref(),
        Some("sam"),
        "the first acknowledgement stands"
    );
    expect_not_found(
        store.acknowledge_security_alert(9_999, "sam", t(12, 0, 0)),
        "acknowledging an unknown alert",
    );
    // Once acknowledged, the next crossing raises a new alert.
    let fresh = store
        .record_security_alert(&alert(Some("mon-q"), None, "auth_failures", t(12, 0, 0)))
        .unwrap();
    assert_ne!(fresh.id, first.id);
    assert_eq!(fresh.count, 5);

    let all = store
        .security_alerts(&SecurityAlertQuery {
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    let listed: Vec<u64> = all.iter().map(|a| a.id).collect();
    assert_eq!(
        listed,
        vec![fresh.id, unknown.id, other_kind.id, by_peer.id, first.id]
    );
    let open = store
        .security_alerts(&SecurityAlertQuery {
            open_only: true,
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert!(open.iter().all(|a| a.status == "open") && open.len() == 4);
    let page = store
        .security_alerts(&SecurityAlertQuery {
            before: Some(other_kind.id),
            limit: 1,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        page.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![by_peer.id]
    );
    assert!(
        store
            .security_alerts(&SecurityAlertQuery::default())
            .unwrap()
            .is_empty(),
        "limit 0 returns nothing"
    );
}

pub fn emergency_access_holds_for_its_period(store: &dyn Store) {
    add_patient(store, "p1");
    let access = vigil_model::EmergencyAccess {
        patient: pid("p1"),
        clinician: uid("dr.er"),
        reason: "cardiac arrest on the corridor".into(),
        start: t(9, 0, 0),
        end: t(13, 0, 0),
    };
    store.grant_emergency_access(&access).unwrap();
    assert_eq!(
        store
            .emergency_access_in_force(&uid("dr.er"), t(12, 59, 59))
            .unwrap(),
        vec![access.clone()]
    );
    assert!(
        store
            .emergency_access_in_force(&uid("dr.er"), t(13, 0, 0))
            .unwrap()
            .is_empty(),
        "end is exclusive"
    );
    assert!(
        store
            .emergency_access_in_force(&uid("dr.er"), t(8, 59, 59))
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .emergency_access_in_force(&uid("dr.other"), t(10, 0, 0))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.emergency_accesses_since(t(8, 0, 0)).unwrap(),
        vec![access.clone()]
    );
    assert!(
        store
            .emergency_accesses_since(t(9, 0, 1))
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store.grant_emergency_access(&vigil_model::EmergencyAccess {
            patient: pid("nobody"),
            ..access.clone()
        }),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.grant_emergency_access(&vigil_model::EmergencyAccess {
            end: access.start,
            ..access
        }),
        Err(StoreError::Conflict(_))
    ));
}

pub fn series_are_summarised_in_buckets(store: &dyn Store) {
    let (d, p) = bound(store, "d1", "p1", t(8, 0, 0));
    let (d2, _) = bound(store, "d2", "p2", t(8, 0, 0));
    // One heart rate a minute from 09:00 to 09:59: 60..=119; an SpO2 at 09:00; p2's reading.
    let readings: Vec<Reading> = (0..60)
        .map(|m| hr(60.0 + f64::from(m), t(9, m, 0)))
        .chain([quantity(Measurand::Spo2, 97.0, t(9, 0, 0))])
        .collect();
    append(
        store,
        &[
            submission(&d, t(10, 0, 0), readings),
            submission(&d2, t(10, 0, 0), vec![hr(200.0, t(9, 0, 0))]),
        ],
    );
    let q = crate::SeriesQuery {
        patient: p.clone(),
        measurand: Measurand::HeartRate,
        from: t(9, 0, 0),
        to: t(10, 0, 0),
        buckets: 4,
    };
    assert_eq!(q.bucket_us(), 15 * 60 * 1_000_000);
    let buckets = store.series(&q).unwrap();
    assert_eq!(buckets.len(), 4);
    assert_eq!(buckets[0].start, t(9, 0, 0));
    assert_eq!(
        (buckets[0].min, buckets[0].max, buckets[0].count),
        (60.0, 74.0, 15)
    );
    assert!((buckets[0].mean - 67.0).abs() < 1e-9);
    assert_eq!(buckets[3].start, t(9, 45, 0));
    assert_eq!((buckets[3].min, buckets[3].max), (105.0, 119.0));
    // The range is half-open and empty buckets are left out.
    let late = store
        .series(&crate::SeriesQuery {
            from: t(9, 30, 0),
            to: t(11, 0, 0),
            buckets: 3,
            ..q.clone()
        })
        .unwrap();
    assert_eq!(late.len(), 1, "only 09:30-10:00 has readings");
    assert_eq!((late[0].min, late[0].max, late[0].count), (90.0, 119.0, 30));
    assert!(
        store
            .series(&crate::SeriesQuery {
                to: q.from,
                ..q.clone()
            })
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .series(&crate::SeriesQuery {
                patient: pid("nobody"),
                ..q.clone()
            })
            .unwrap()
            .is_empty()
    );
    let spo2 = store
        .series(&crate::SeriesQuery {
            measurand: Measurand::Spo2,
            ..q
        })
        .unwrap();
    assert_eq!(spo2.len(), 1);
    assert_eq!(spo2[0].max, 97.0);
}
