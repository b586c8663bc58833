//! The conformance suite on `SqliteStore`, and what only the SQLite backend promises: files,
//! migrations, other processes on the same file, rollback, the stored layout and query plans.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use tempfile::TempDir;
use vigil_model::{ObservationValue, Quantity, Reading};

use super::*;
use crate::{
    AlarmEventRecord, AlarmQuery, AlarmRecord, NewStreamEvent, ObservationQuery, TimeBound,
    conformance,
};

fn fresh() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(dir.path()).expect("open store");
    (dir, store)
}

/// A plain connection to the store's file, as another program (or the operator's `sqlite3`) has.
fn raw(dir: &TempDir) -> Connection {
    let conn = Connection::open(dir.path().join(DATABASE_FILE)).expect("raw connection");
    conn.busy_timeout(BUSY_TIMEOUT).expect("busy timeout");
    conn
}

fn t(h: u32, m: u32, s: u32) -> vigil_model::Instant {
    Utc.with_ymd_and_hms(2026, 11, 21, h, m, s).unwrap()
}

fn hr(value: f64, at: vigil_model::Instant) -> Reading {
    Reading {
        code: ObservationCode::Single(Measurand::HeartRate),
        value: ObservationValue::Quantity(Quantity::new(value, "/min")),
        effective: at,
        status: vigil_model::ObservationStatus::Final,
        quality: QualityFlags::empty(),
    }
}

fn submission(device: &str, received: vigil_model::Instant, readings: Vec<Reading>) -> Submission {
    Submission {
        patient: None,
        device: DeviceId::new(device).unwrap(),
        received,
        readings,
        waveforms: Vec::new(),
        battery_pct: None,
        signal_dbm: None,
    }
}

fn register(store: &dyn Store, device: &str, patient: &str) {
    store
        .create_device(
            &Device::new(DeviceId::new(device).unwrap(), DeviceKind::new("monitor")),
            &[3; 32],
        )
        .unwrap();
    if store
        .patient(&PatientId::new(patient).unwrap())
        .unwrap()
        .is_none()
    {
        store
            .create_patient(&Patient::new(
                PatientId::new(patient).unwrap(),
                "Test Patient",
            ))
            .unwrap();
    }
}

fn bind(store: &dyn Store, device: &str, patient: &str, from: vigil_model::Instant) {
    store
        .bind(
            &DeviceId::new(device).unwrap(),
            &PatientId::new(patient).unwrap(),
            from,
        )
        .unwrap();
}

fn observations_of(store: &dyn Store, patient: &str) -> Vec<Observation> {
    store
        .search_observations(&ObservationQuery {
            patient: Some(PatientId::new(patient).unwrap()),
            limit: 1000,
            ..ObservationQuery::default()
        })
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The conformance suite, one test per behaviour

macro_rules! conformance_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let (_dir, store) = fresh();
                conformance::$name(&store);
            }
        )*
        const COVERED: &[&str] = &[$(stringify!($name)),*];
    };
}

conformance_tests!(
    patient_crud,
    patient_search,
    device_registry,
    device_search,
    bindings_lifecycle,
    moved_device_attribution,
    append_outcomes,
    last_seen_and_battery,
    failed_batch_stores_nothing,
    observation_search_filters,
    observation_time_bounds,
    observation_keyset_paging,
    blood_pressure_panel_round_trip,
    status_quality_and_values_round_trip,
    waveform_round_trip_and_dedup,
    waveform_search,
    stats,
    observations_after_tails_the_log,
    alarm_round_trip_and_upsert,
    alarm_history_in_order,
    alarm_search_and_paging,
    max_alarm_id_counts_resolved_alarms,
    failed_alarm_changes_store_nothing,
    stream_seqs_strictly_increase,
    stream_events_by_patient,
    stream_events_prune,
    patient_settings_round_trip,
    surveillance_steps_record_scores_and_position,
    failed_surveillance_step_stores_nothing,
    a_named_patient_overrides_the_binding,
    refused_messages_are_kept_newest_first,
    device_commands_wait_until_confirmed_or_expired,
    templates_are_versioned_upwards,
    a_correction_is_kept_beside_the_original,
    accounts_and_lockout_state,
    sessions_lifecycle,
    care_teams_reach_named_and_ward_patients,
    consents_round_trip_and_revoke,
    searches_are_restricted_within_patients,
    quarantine_and_security_alerts,
    emergency_access_holds_for_its_period,
    series_are_summarised_in_buckets,
);

#[test]
fn every_conformance_behaviour_has_a_test_here() {
    let all: Vec<&str> = conformance::ALL.iter().map(|(name, _)| *name).collect();
    assert_eq!(all, COVERED);
}

#[test]
fn run_all_runs_on_fresh_stores() {
    let root = tempfile::tempdir().unwrap();
    let next = std::sync::atomic::AtomicUsize::new(0);
    conformance::run_all(&|| {
        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Box::new(SqliteStore::open(&root.path().join(n.to_string())).unwrap())
    });
    assert_eq!(next.into_inner(), conformance::ALL.len());
}

// ---------------------------------------------------------------------------------------------
// Files, pragmas and migrations

#[test]
fn the_store_is_send_and_sync() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<SqliteStore>();
    shareable::<Arc<dyn Store>>();
}

#[test]
fn open_creates_the_directory_and_sets_durability_pragmas() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("nested").join("data");
    let store = SqliteStore::open(&dir).unwrap();
    assert_eq!(store.path(), dir.join(DATABASE_FILE));
    assert!(store.path().is_file());
    let writer = store.writer();
    let pragma = |name: &str| -> String {
        writer
            .conn
            .pragma_query_value(None, name, |r| r.get::<_, rusqlite::types::Value>(0))
            .map(|v| format!("{v:?}"))
            .unwrap()
    };
    assert_eq!(pragma("journal_mode"), r#"Text("wal")"#);
    assert_eq!(pragma("synchronous"), "Integer(2)", "FULL");
    assert_eq!(pragma("foreign_keys"), "Integer(1)");
    assert_eq!(pragma("busy_timeout"), "Integer(5000)");
    assert_eq!(
        pragma("application_id"),
        format!("Integer({})", schema::APPLICATION_ID)
    );
    drop(writer);
    let mut reader = store.readers.get().unwrap();
    let synchronous: i64 = reader
        .conn()
        .pragma_query_value(None, "synchronous", |r| r.get(0))
        .unwrap();
    let query_only: i64 = reader
        .conn()
        .pragma_query_value(None, "query_only", |r| r.get(0))
        .unwrap();
    assert_eq!((synchronous, query_only), (2, 1));
}

#[test]
fn opening_again_applies_no_migration_twice() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path()).unwrap());
    let first = SqliteStore::open(dir.path()).unwrap();
    // Also while another store has the file open.
    let second = SqliteStore::open(dir.path()).unwrap();
    drop((first, second));
    let conn = raw(&dir);
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, schema::MIGRATIONS.len() as i64);
    let applied: Vec<i64> = conn
        .prepare("SELECT version FROM schema_migrations ORDER BY version")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        applied,
        (1..=schema::MIGRATIONS.len() as i64).collect::<Vec<_>>()
    );
    let codes: i64 = conn
        .query_row("SELECT count(*) FROM observation_codes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(codes as usize, known_codes().count(), "codes inserted once");
}

#[test]
fn a_database_from_a_newer_vigil_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path()).unwrap());
    raw(&dir).pragma_update(None, "user_version", 99).unwrap();
    match SqliteStore::open(dir.path()) {
        Err(StoreError::Corrupt(message)) => {
            assert!(
                message.contains("schema version 99") && message.contains("newer"),
                "{message}"
            )
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn another_programs_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let conn = raw(&dir);
    conn.execute_batch("CREATE TABLE notes (body TEXT); PRAGMA user_version = 1;")
        .unwrap();
    drop(conn);
    match SqliteStore::open(dir.path()) {
        Err(StoreError::Corrupt(message)) => {
            assert!(message.contains("another program"), "{message}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_file_that_is_not_a_database_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(DATABASE_FILE),
        "this is not a database, just some text. ".repeat(100),
    )
    .unwrap();
    assert!(matches!(
        SqliteStore::open(dir.path()),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn an_unusable_data_directory_is_a_backend_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    assert!(matches!(
        SqliteStore::open(&file.join("data")),
        Err(StoreError::Backend(_))
    ));
}

#[test]
fn everything_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    register(&store, "mon-1", "a");
    bind(&store, "mon-1", "a", t(8, 0, 0));
    let mut sub = submission("mon-1", t(9, 0, 1), vec![hr(72.0, t(9, 0, 0))]);
    sub.battery_pct = Some(77);
    sub.waveforms.push(WaveformSegment {
        code: WaveformCode::EcgLeadI,
        start: t(9, 0, 0),
        period_ms: 2.0,
        factor: 0.001,
        origin: 0.0,
        samples: (0..1000).collect(),
    });
    let outcome = store.append(&[sub.clone()]).unwrap();
    let before = (
        store.patient(&PatientId::new("a").unwrap()).unwrap(),
        store.device(&DeviceId::new("mon-1").unwrap()).unwrap(),
        store.bindings(&DeviceId::new("mon-1").unwrap()).unwrap(),
        observations_of(&store, "a"),
        store.stats().unwrap(),
    );
    drop(store);

    let store = SqliteStore::open(dir.path()).unwrap();
    let after = (
        store.patient(&PatientId::new("a").unwrap()).unwrap(),
        store.device(&DeviceId::new("mon-1").unwrap()).unwrap(),
        store.bindings(&DeviceId::new("mon-1").unwrap()).unwrap(),
        observations_of(&store, "a"),
        store.stats().unwrap(),
    );
    assert_eq!(before, after);
    assert_eq!(after.3.len(), 1);
    assert_eq!(after.1.and_then(|d| d.battery_pct), Some(77));
    let waves = store
        .waveforms(&WaveformQuery {
            patient: PatientId::new("a").unwrap(),
            codes: vec![],
            from: None,
            to: None,
            limit: 5,
        })
        .unwrap();
    assert_eq!(waves.len(), 1);
    assert_eq!(waves[0].segment, sub.waveforms[0]);
    // De-duplication holds across restarts: the redelivery after a crash is recognised.
    let again = store.append(&[sub]).unwrap();
    assert_eq!(
        again[0].readings[0],
        Outcome::Duplicate(match outcome[0].readings[0] {
            Outcome::Stored(id) => id,
            other => panic!("{other:?}"),
        })
    );
}

fn alarm(id: u64, patient: Option<&str>, state: &str) -> (AlarmRecord, AlarmEventRecord) {
    let at = t(9, 0, 0) + Duration::seconds(id as i64);
    (
        AlarmRecord {
            id,
            patient: patient.map(|p| PatientId::new(p).unwrap()),
            device: None,
            condition: "threshold:hr:high".into(),
            state: state.into(),
            priority: "medium".into(),
            raised_at: at,
            updated_at: at,
            snapshot: format!(r#"{{"id":{id}}}"#),
        },
        AlarmEventRecord {
            alarm: id,
            at,
            kind: state.into(),
            by: None,
            detail: "{}".into(),
        },
    )
}

fn stream_event(patient: Option<&str>, second: u32) -> NewStreamEvent {
    NewStreamEvent {
        at: t(9, 0, second),
        patient: patient.map(|p| PatientId::new(p).unwrap()),
        kind: "score".into(),
        data: format!(r#"{{"second":{second}}}"#),
    }
}

#[test]
fn alarms_and_stream_seqs_continue_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    register(&store, "mon-1", "a");
    let first = store
        .record_alarm_changes(
            &[alarm(1, Some("a"), "active"), alarm(4, None, "resolved")],
            &[stream_event(Some("a"), 1), stream_event(None, 2)],
        )
        .unwrap();
    let more = store
        .append_stream_events(&[stream_event(Some("a"), 3)])
        .unwrap();
    assert!(first[0] < first[1] && first[1] < more[0]);
    store
        .put_patient_settings(&PatientId::new("a").unwrap(), r#"{"x":1}"#)
        .unwrap();
    let before = (
        store.alarm(1).unwrap(),
        store.alarm(4).unwrap(),
        store.alarm_events(4).unwrap(),
        store.stream_events_after(0, None, 10).unwrap(),
    );
    drop(store);

    let store = SqliteStore::open(dir.path()).unwrap();
    let after = (
        store.alarm(1).unwrap(),
        store.alarm(4).unwrap(),
        store.alarm_events(4).unwrap(),
        store.stream_events_after(0, None, 10).unwrap(),
    );
    assert_eq!(before, after);
    assert_eq!(
        store.max_alarm_id().unwrap(),
        Some(4),
        "the resolved one too"
    );
    assert_eq!(store.last_stream_seq().unwrap(), more[0]);
    assert_eq!(
        store
            .patient_settings(&PatientId::new("a").unwrap())
            .unwrap()
            .as_deref(),
        Some(r#"{"x":1}"#)
    );
    let next = store
        .append_stream_events(&[stream_event(None, 4)])
        .unwrap();
    assert!(next[0] > more[0], "seqs continue across a restart");

    // Pruned away entirely, then restarted: seqs still continue and are never reused.
    assert_eq!(store.prune_stream_events(t(12, 0, 0)).unwrap(), 4);
    drop(store);
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(store.last_stream_seq().unwrap(), next[0]);
    let after_prune = store
        .append_stream_events(&[stream_event(None, 5)])
        .unwrap();
    assert!(after_prune[0] > next[0]);
}

/// A database exactly as schema version 1 left it, with a little data written by hand the way
/// version 1 wrote it.
fn version_1_database(dir: &TempDir) {
    let mut conn = raw(dir);
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    let tx = conn.transaction().unwrap();
    tx.execute_batch(schema::MIGRATIONS[0]).unwrap();
    tx.execute(
        "INSERT INTO schema_migrations (version, applied_at_us) VALUES (1, 0)",
        [],
    )
    .unwrap();
    tx.pragma_update(None, "user_version", 1).unwrap();
    tx.pragma_update(None, "application_id", schema::APPLICATION_ID)
        .unwrap();
    tx.execute(
        "INSERT INTO patients (id, name, family, given, mrn, birth_date, gender, active, search_text) \
         VALUES ('a', 'Jan Novák', 'Novák', '[\"Jan\"]', 'MRN-1', '1950-03-04', 'male', 1, ?1)",
        [format!("jan novák{NAME_SEPARATOR}novák{NAME_SEPARATOR}jan")],
    )
    .unwrap();
    tx.execute(
        "INSERT INTO devices (id, kind, battery_pct, last_seen_us, secret_hash) \
         VALUES ('mon-1', 'monitor', 80, ?1, zeroblob(32))",
        [t(9, 1, 0).timestamp_micros()],
    )
    .unwrap();
    tx.execute(
        "INSERT INTO bindings (device, patient, from_us, to_us) VALUES (1, 1, ?1, NULL)",
        [t(8, 0, 0).timestamp_micros()],
    )
    .unwrap();
    tx.execute(
        "INSERT INTO observation_codes (short_name) VALUES ('heart_rate')",
        [],
    )
    .unwrap();
    for (second, value) in [(0, 72.0), (30, 74.0)] {
        tx.execute(
            "INSERT INTO observations (patient, device, code, effective_us, received_us, value, status, quality) \
             VALUES (1, 1, 1, ?1, ?2, ?3, 0, 0)",
            params![
                t(9, 0, second).timestamp_micros(),
                t(9, 1, 0).timestamp_micros(),
                value
            ],
        )
        .unwrap();
    }
    tx.execute(
        "UPDATE store_meta SET value = 2 WHERE key = 'observations'",
        [],
    )
    .unwrap();
    tx.commit().unwrap();
}

#[test]
fn a_version_1_database_upgrades_to_the_newest_version_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    version_1_database(&dir);
    let store = SqliteStore::open(dir.path()).unwrap();

    let conn = raw(&dir);
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    let newest = super::schema::MIGRATIONS.len() as i64;
    assert_eq!(version, newest);
    let applied: Vec<i64> = conn
        .prepare("SELECT version FROM schema_migrations ORDER BY version")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(applied, (1..=newest).collect::<Vec<i64>>());

    let a = PatientId::new("a").unwrap();
    let patient = store.patient(&a).unwrap().expect("the patient kept");
    assert_eq!(
        (
            patient.name.as_str(),
            patient.mrn.as_deref(),
            patient.given.clone()
        ),
        ("Jan Novák", Some("MRN-1"), vec!["Jan".to_owned()])
    );
    let device = store.device(&DeviceId::new("mon-1").unwrap()).unwrap();
    assert_eq!(device.and_then(|d| d.battery_pct), Some(80));
    let old = observations_of(&store, "a");
    assert_eq!(
        old.iter()
            .map(|o| (o.id.0, o.effective, o.value.clone()))
            .collect::<Vec<_>>(),
        [
            (
                1,
                t(9, 0, 0),
                ObservationValue::Quantity(Quantity::new(72.0, "/min"))
            ),
            (
                2,
                t(9, 0, 30),
                ObservationValue::Quantity(Quantity::new(74.0, "/min"))
            ),
        ]
    );
    assert_eq!(store.stats().unwrap().observations, 2);
    assert_eq!(
        store
            .codes
            .number(ObservationCode::Single(Measurand::HeartRate))
            .unwrap(),
        1
    );

    // The old log is tailed like a new one, and the next observation continues it.
    assert_eq!(store.last_observation_id().unwrap(), ObservationId(2));
    assert_eq!(store.observations_after(ObservationId(0), 10).unwrap(), old);
    let outcomes = store
        .append(&[submission(
            "mon-1",
            t(9, 2, 0),
            vec![hr(72.0, t(9, 0, 0)), hr(75.0, t(9, 1, 0))],
        )])
        .unwrap();
    assert_eq!(
        outcomes[0].readings,
        [Outcome::Duplicate(1), Outcome::Stored(3)],
        "de-duplication spans the upgrade"
    );

    // The new tables work on the upgraded file.
    let seqs = store
        .record_alarm_changes(
            &[alarm(1, Some("a"), "active")],
            &[stream_event(Some("a"), 1)],
        )
        .unwrap();
    assert_eq!(seqs, [1]);
    assert_eq!(store.max_alarm_id().unwrap(), Some(1));
    store.put_patient_settings(&a, "{}").unwrap();
    drop(store);
    // And opening it again changes nothing.
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(store.last_observation_id().unwrap(), ObservationId(3));
    assert_eq!(store.last_stream_seq().unwrap(), 1);
}

#[test]
fn observations_are_append_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    register(&store, "mon-1", "a");
    bind(&store, "mon-1", "a", t(8, 0, 0));
    store
        .append(&[submission(
            "mon-1",
            t(9, 0, 2),
            vec![hr(70.0, t(9, 0, 0)), hr(71.0, t(9, 0, 1))],
        )])
        .unwrap();
    // Deleting the newest row would let SQLite hand its id out again, and a tailer past it would
    // miss the next observation: the schema refuses.
    let err = raw(&dir)
        .execute("DELETE FROM observations WHERE id = 2", [])
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    assert_eq!(store.last_observation_id().unwrap(), ObservationId(2));
}

#[test]
fn a_failing_stream_append_rolls_back_the_alarm_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    register(&store, "mon-1", "a");
    // Make the database refuse stream rows, so the call fails after its alarms went in.
    raw(&dir)
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON stream_events BEGIN SELECT RAISE(ABORT, 'refused'); END;",
        )
        .unwrap();
    let err = store
        .record_alarm_changes(
            &[alarm(1, Some("a"), "active"), alarm(2, None, "active")],
            &[stream_event(Some("a"), 1)],
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.max_alarm_id().unwrap(), None);
    assert!(store.alarm_events(1).unwrap().is_empty());
    raw(&dir).execute_batch("DROP TRIGGER refuse").unwrap();
    let seqs = store
        .record_alarm_changes(
            &[alarm(1, Some("a"), "active")],
            &[stream_event(Some("a"), 1)],
        )
        .unwrap();
    assert_eq!(seqs, [1], "the failed call took no seq");
}

// ---------------------------------------------------------------------------------------------
// Another process on the same file

#[test]
fn a_binding_made_by_another_process_is_seen_by_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let server = SqliteStore::open(dir.path()).unwrap();
    register(&server, "mon-1", "a");
    bind(&server, "mon-1", "a", t(8, 0, 0));
    // The server's writer now caches mon-1 → a.
    let first = server
        .append(&[submission("mon-1", t(9, 0, 1), vec![hr(70.0, t(9, 0, 0))])])
        .unwrap();
    assert!(matches!(first[0].readings[0], Outcome::Stored(_)));

    // The operator moves the device with the CLI: another process, another connection.
    let cli = SqliteStore::open(dir.path()).unwrap();
    cli.create_patient(&Patient::new(PatientId::new("b").unwrap(), "Other"))
        .unwrap();
    bind(&cli, "mon-1", "b", t(10, 0, 0));
    drop(cli);

    let later = server
        .append(&[submission(
            "mon-1",
            t(10, 0, 6),
            vec![hr(71.0, t(9, 59, 0)), hr(72.0, t(10, 0, 5))],
        )])
        .unwrap();
    assert!(
        later[0]
            .readings
            .iter()
            .all(|o| matches!(o, Outcome::Stored(_)))
    );
    assert_eq!(observations_of(&server, "a").len(), 2);
    let b = observations_of(&server, "b");
    assert_eq!(
        b.iter().map(|o| o.effective).collect::<Vec<_>>(),
        [t(10, 0, 5)],
        "attributed to the new patient"
    );

    // And an unbind by the other process.
    let cli = SqliteStore::open(dir.path()).unwrap();
    cli.unbind(&DeviceId::new("mon-1").unwrap(), t(11, 0, 0))
        .unwrap();
    let unbound = server
        .append(&[submission(
            "mon-1",
            t(11, 0, 6),
            vec![hr(73.0, t(11, 0, 5))],
        )])
        .unwrap();
    assert_eq!(unbound[0].readings[0], Outcome::Unattributed);
}

#[test]
fn a_device_registered_by_another_process_is_seen_by_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let server = SqliteStore::open(dir.path()).unwrap();
    // Unknown device: the writer remembers that it does not exist.
    let unknown = server
        .append(&[submission("mon-9", t(9, 0, 1), vec![hr(70.0, t(9, 0, 0))])])
        .unwrap();
    assert_eq!(unknown[0].readings[0], Outcome::Unattributed);

    let cli = SqliteStore::open(dir.path()).unwrap();
    register(&cli, "mon-9", "a");
    bind(&cli, "mon-9", "a", t(8, 0, 0));
    let known = server
        .append(&[submission("mon-9", t(9, 0, 1), vec![hr(70.0, t(9, 0, 0))])])
        .unwrap();
    assert!(matches!(known[0].readings[0], Outcome::Stored(_)));
    // The CLI process reads what the server wrote.
    assert_eq!(observations_of(&cli, "a").len(), 1);
}

#[test]
fn the_stores_own_registry_writes_refresh_its_attribution() {
    let (_dir, store) = fresh();
    let unknown = store
        .append(&[submission("mon-1", t(9, 0, 1), vec![hr(70.0, t(9, 0, 0))])])
        .unwrap();
    assert_eq!(unknown[0].readings[0], Outcome::Unattributed);
    register(&store, "mon-1", "a");
    bind(&store, "mon-1", "a", t(8, 0, 0));
    let known = store
        .append(&[submission("mon-1", t(9, 0, 1), vec![hr(70.0, t(9, 0, 0))])])
        .unwrap();
    assert!(matches!(known[0].readings[0], Outcome::Stored(_)));
}

// ---------------------------------------------------------------------------------------------
// Atomicity

#[test]
fn a_batch_failing_midway_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    register(&store, "mon-1", "a");
    bind(&store, "mon-1", "a", t(8, 0, 0));
    // Make the database refuse waveform rows, so the batch fails after its readings went in.
    raw(&dir)
        .execute_batch("CREATE TRIGGER refuse BEFORE INSERT ON waveforms BEGIN SELECT RAISE(ABORT, 'refused'); END;")
        .unwrap();
    let mut with_wave = submission("mon-1", t(9, 0, 2), vec![hr(71.0, t(9, 0, 1))]);
    with_wave.battery_pct = Some(40);
    with_wave.waveforms.push(WaveformSegment {
        code: WaveformCode::Pleth,
        start: t(9, 0, 0),
        period_ms: 10.0,
        factor: 1.0,
        origin: 0.0,
        samples: vec![1, 2, 3],
    });
    let batch = [
        submission("mon-1", t(9, 0, 1), vec![hr(70.0, t(9, 0, 0))]),
        with_wave,
    ];
    let err = store.append(&batch).unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(
        !err.to_string().contains("mon-1"),
        "no identifiers in the message: {err}"
    );

    assert!(observations_of(&store, "a").is_empty());
    assert_eq!(store.stats().unwrap().observations, 0);
    let device = store
        .device(&DeviceId::new("mon-1").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!((device.last_seen, device.battery_pct), (None, None));

    raw(&dir).execute_batch("DROP TRIGGER refuse").unwrap();
    let outcomes = store.append(&batch).unwrap();
    assert!(
        matches!(outcomes[0].readings[0], Outcome::Stored(_)),
        "nothing was left half-stored"
    );
    assert!(matches!(outcomes[1].waveforms[0], Outcome::Stored(_)));
    assert_eq!(store.stats().unwrap().observations, 2);
}

#[test]
fn a_locked_database_is_a_backend_error_after_the_busy_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let mut blocker = raw(&dir);
    blocker.busy_timeout(std::time::Duration::ZERO).unwrap();
    let tx = blocker
        .transaction_with_behavior(TransactionBehavior::Exclusive)
        .unwrap();
    // Shorten the wait for the test.
    store
        .writer()
        .conn
        .busy_timeout(std::time::Duration::from_millis(50))
        .unwrap();
    let err = store
        .create_patient(&Patient::new(PatientId::new("a").unwrap(), "A"))
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Backend(m) if m.contains("locked")),
        "{err:?}"
    );
    drop(tx);
    store
        .create_patient(&Patient::new(PatientId::new("a").unwrap(), "A"))
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Concurrency

#[test]
fn readers_run_while_the_writer_commits() {
    let (_dir, store) = fresh();
    register(&store, "mon-1", "a");
    bind(&store, "mon-1", "a", t(8, 0, 0));
    let store = Arc::new(store);
    let writer = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            for batch in 0..20i64 {
                let readings = (0..50)
                    .map(|i| hr(60.0, t(9, 0, 0) + Duration::seconds(batch * 50 + i)))
                    .collect();
                store
                    .append(&[submission("mon-1", t(10, 0, 0), readings)])
                    .unwrap();
            }
        })
    };
    let readers: Vec<_> = (0..READERS + 2)
        .map(|_| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let mut last = 0;
                for _ in 0..30 {
                    let count = observations_of(store.as_ref(), "a").len();
                    assert!(
                        count >= last && count.is_multiple_of(50),
                        "a reader saw a partial batch: {count}"
                    );
                    last = count;
                }
            })
        })
        .collect();
    writer.join().unwrap();
    for reader in readers {
        reader.join().unwrap();
    }
    assert_eq!(observations_of(store.as_ref(), "a").len(), 1000);
    assert!(store.readers.lock().open <= READERS);
}

// ---------------------------------------------------------------------------------------------
// Stored layout

#[test]
fn times_keep_microseconds_and_drop_finer_parts() {
    let (_dir, store) = fresh();
    register(&store, "mon-1", "a");
    bind(&store, "mon-1", "a", t(8, 0, 0));
    let at = t(9, 0, 0) + Duration::nanoseconds(123_456_789);
    let first = store
        .append(&[submission("mon-1", t(9, 1, 0), vec![hr(70.0, at)])])
        .unwrap();
    let found = observations_of(&store, "a");
    assert_eq!(
        found[0].effective,
        t(9, 0, 0) + Duration::microseconds(123_456)
    );
    // Differs only below a microsecond: the same reading.
    let again = store
        .append(&[submission(
            "mon-1",
            t(9, 1, 0),
            vec![hr(70.0, at + Duration::nanoseconds(100))],
        )])
        .unwrap();
    assert_eq!(
        again[0].readings[0],
        match first[0].readings[0] {
            Outcome::Stored(id) => Outcome::Duplicate(id),
            other => panic!("{other:?}"),
        }
    );
    // Before the epoch, truncation is towards the past.
    assert_eq!(codec::micros(Utc.timestamp_nanos(-1)), -1);
}

#[test]
fn the_observation_row_is_compact() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    register(&store, "mon-1", "a");
    bind(&store, "mon-1", "a", t(8, 0, 0));
    let mut sub = submission("mon-1", t(9, 0, 1), vec![hr(72.5, t(9, 0, 0))]);
    sub.waveforms.push(WaveformSegment {
        code: WaveformCode::EcgLeadIi,
        start: t(9, 0, 0),
        period_ms: 4.0,
        factor: 0.005,
        origin: 0.0,
        samples: vec![0, 1, -1, 200],
    });
    store.append(&[sub]).unwrap();
    let conn = raw(&dir);
    type Layout = (
        i64,
        i64,
        i64,
        i64,
        Option<f64>,
        Option<String>,
        Option<String>,
        i64,
        i64,
    );
    let row: Layout = conn
        .query_row(
            "SELECT patient, device, code, effective_us, value, unit, value_json, status, quality FROM observations",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(
        row,
        (
            1,
            row.1,
            row.2,
            t(9, 0, 0).timestamp_micros(),
            Some(72.5),
            None,
            None,
            0,
            0
        )
    );
    let name: String = conn
        .query_row(
            "SELECT short_name FROM observation_codes WHERE code = ?1",
            [row.2],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(name, "heart_rate");
    let samples: Vec<u8> = conn
        .query_row("SELECT samples FROM waveforms", [], |r| r.get(0))
        .unwrap();
    // Format 1; deltas 0, +1, -2, +201 → zigzag 0, 2, 3, 402 → varints 00 02 03 92 03.
    assert_eq!(samples, [1, 0x00, 0x02, 0x03, 0x92, 0x03]);
}

#[test]
fn observation_codes_keep_their_numbers_across_opens() {
    let dir = tempfile::tempdir().unwrap();
    let first = SqliteStore::open(dir.path()).unwrap();
    let numbers: Vec<(ObservationCode, i64)> = known_codes()
        .map(|c| (c, first.codes.number(c).unwrap()))
        .collect();
    drop(first);
    // A newer Vigil added a code: this version ignores the name and keeps the rest.
    raw(&dir)
        .execute(
            "INSERT INTO observation_codes (short_name) VALUES ('future_code')",
            [],
        )
        .unwrap();
    let second = SqliteStore::open(dir.path()).unwrap();
    for (code, number) in numbers {
        assert_eq!(second.codes.number(code).unwrap(), number, "{code:?}");
    }
}

#[test]
fn an_unknown_stored_code_reads_as_corrupt_without_data_in_the_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    register(&store, "mon-1", "a");
    bind(&store, "mon-1", "a", t(8, 0, 0));
    store
        .append(&[submission("mon-1", t(9, 0, 1), vec![hr(72.0, t(9, 0, 0))])])
        .unwrap();
    raw(&dir)
        .execute_batch("PRAGMA foreign_keys = OFF; UPDATE observations SET code = 999;")
        .unwrap();
    let err = store
        .search_observations(&ObservationQuery {
            patient: Some(PatientId::new("a").unwrap()),
            limit: 10,
            ..ObservationQuery::default()
        })
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("999") && !m.contains("mon-1")),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Query plans: the hot searches use their index and need no sort

fn plan(conn: &Connection, sql: &str, args: &[Value]) -> String {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let rows = stmt
        .query_map(params_from_iter(args), |r| r.get::<_, String>(3))
        .unwrap();
    rows.collect::<Result<Vec<_>, _>>().unwrap().join("\n")
}

#[test]
fn observation_searches_use_an_index_in_order() {
    let (_dir, store) = fresh();
    let reader = store.readers.get().unwrap();
    let conn = reader.conn.as_ref().unwrap();
    let cursor = crate::Cursor {
        effective: t(9, 0, 0),
        id: ObservationId(10),
    };
    let bound = Some(TimeBound {
        at: t(9, 0, 0),
        inclusive: true,
    });
    for newest_first in [false, true] {
        for (code, index) in [
            (Some(3), "observations_patient_code"),
            (None, "observations_patient "),
        ] {
            let q = ObservationQuery {
                from: bound,
                after: Some(cursor),
                newest_first,
                limit: 50,
                ..ObservationQuery::default()
            };
            let (sql, args) = observation_sql(&q, Some(1), None, code);
            let plan = plan(conn, &sql, &args);
            assert!(plan.contains(&format!("USING INDEX {index}")), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "a sort: {plan}");
        }
    }
    let q = ObservationQuery {
        limit: 50,
        ..ObservationQuery::default()
    };
    let (sql, args) = observation_sql(&q, None, Some(1), Some(3));
    let plan = plan(conn, &sql, &args);
    assert!(plan.contains("USING INDEX observations_dedup"), "{plan}");
}

#[test]
fn surveillance_reads_use_their_indexes_in_order() {
    let (_dir, store) = fresh();
    let reader = store.readers.get().unwrap();
    let conn = reader.conn.as_ref().unwrap();
    let check = |sql: &str, args: &[Value], expect: &str| {
        let plan = plan(conn, sql, args);
        assert!(plan.contains(expect), "expected {expect}: {plan}");
        assert!(!plan.contains("TEMP B-TREE"), "a sort: {plan}");
    };
    let query = |open_only: bool| AlarmQuery {
        open_only,
        before: Some(100),
        limit: 50,
        ..AlarmQuery::default()
    };
    let (sql, args) = alarm_sql(&query(false), Some(1));
    check(&sql, &args, "USING INDEX alarms_patient");
    let (sql, args) = alarm_sql(&query(true), None);
    check(&sql, &args, "USING INDEX alarms_open");
    let (sql, args) = alarm_sql(&query(false), None);
    check(&sql, &args, "USING INTEGER PRIMARY KEY");
    let (sql, args) = alarm_sql(&query(true), Some(1));
    check(&sql, &args, "USING INDEX alarms_");
    check(
        "SELECT at_us, kind, actor, detail FROM alarm_events WHERE alarm = ?1 ORDER BY id",
        &[Value::Integer(1)],
        "USING INDEX alarm_events_alarm",
    );
    let (sql, args) = stream_sql(10, Some(1), 50);
    check(&sql, &args, "USING INDEX stream_events_patient");
    let (sql, args) = stream_sql(10, None, 50);
    check(&sql, &args, "USING INTEGER PRIMARY KEY (rowid>?)");
    check(
        &format!("{OBSERVATION_SELECT} {OBSERVATIONS_AFTER}"),
        &[Value::Integer(10), Value::Integer(50)],
        "SEARCH o USING INTEGER PRIMARY KEY (rowid>?)",
    );
    check(
        "DELETE FROM stream_events WHERE at_us < ?1",
        &[Value::Integer(10)],
        "USING COVERING INDEX stream_events_at",
    );
}
