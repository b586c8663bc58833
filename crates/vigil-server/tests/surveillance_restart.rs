//! The surveillance engine across a crash between a commit and its evaluation: what was
//! committed (and so acknowledged to the device) but never evaluated is evaluated at the next
//! start, once; and a NEWS2 change is recorded as an Observation of Vigil's scorer (of several
//! changes evaluated together, only where the score ended).

mod common;

use std::sync::Arc;

use common::*;
use vigil_model::{
    DeviceEvent, ObservationCode, ObservationStatus, ObservationValue, QualityFlags, Reading,
};
use vigil_store::sqlite::SqliteStore;
use vigil_store::{AlarmQuery, ObservationQuery, Store, Submission, SurveillanceStep};

fn submit(store: &dyn Store, reading: Reading) -> vigil_model::ObservationId {
    let outcome = store
        .append(&[Submission {
            patient: None,
            device: did("pendant-1"),
            received: reading.effective,
            readings: vec![reading],
            waveforms: Vec::new(),
            battery_pct: None,
            signal_dbm: None,
        }])
        .unwrap();
    match outcome[0].readings[0] {
        vigil_store::Outcome::Stored(id) => vigil_model::ObservationId(id),
        other => panic!("not stored: {other:?}"),
    }
}

fn fall(at_ms_: i64) -> Reading {
    Reading {
        code: ObservationCode::Event(DeviceEvent::Fall),
        value: ObservationValue::Detected,
        effective: at_ms(at_ms_),
        status: ObservationStatus::Final,
        quality: QualityFlags::empty(),
    }
}

fn falls(store: &dyn Store) -> Vec<u64> {
    store
        .alarms(&AlarmQuery {
            limit: 100,
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .filter(|a| a.condition == "event:fall")
        .map(|a| a.id)
        .collect()
}

fn start(store: &Arc<SqliteStore>) -> vigil_server::surveillance::SurveillanceThread {
    let (_, thread) = vigil_server::surveillance::start(store.clone(), Default::default()).unwrap();
    thread
}

/// Waits until `check` holds (the engine thread works on its own).
fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + DEADLINE;
    while !check() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn an_event_committed_but_not_evaluated_before_a_crash_raises_its_alarm_once_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    register(store.as_ref(), "p1", "pendant-1");
    let now = chrono::Utc::now().timestamp_millis();
    // The engine evaluated the first fall and recorded how far it got...
    let first = submit(store.as_ref(), fall(now - 60_000));
    store
        .record_surveillance(&SurveillanceStep {
            position: Some(first),
            ..Default::default()
        })
        .unwrap();
    // ...then the process died right after the second fall was committed and acknowledged.
    submit(store.as_ref(), fall(now - 1_000));

    let engine = start(&store);
    eventually("the second fall is evaluated", || {
        falls(store.as_ref()).len() == 1
    });
    engine.stop();
    assert_eq!(
        store.surveillance_position().unwrap(),
        Some(store.last_observation_id().unwrap()),
        "the position moved past what was evaluated"
    );

    // Another restart: nothing is evaluated twice.
    let engine = start(&store);
    std::thread::sleep(std::time::Duration::from_millis(300));
    engine.stop();
    assert_eq!(falls(store.as_ref()).len(), 1);
}

#[test]
fn every_news2_change_is_recorded_as_an_observation_of_the_scorer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    register(store.as_ref(), "p1", "pendant-1");
    let (handle, engine) =
        vigil_server::surveillance::start(store.clone(), Default::default()).unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let rr = |value: f64, ms: i64| Reading {
        code: ObservationCode::Single(vigil_model::Measurand::RespRate),
        value: ObservationValue::Quantity(vigil_model::Quantity::new(value, "/min")),
        effective: at_ms(ms),
        status: ObservationStatus::Final,
        quality: QualityFlags::empty(),
    };
    let scores = || {
        store
            .search_observations(&ObservationQuery {
                patient: Some(pid("p1")),
                codes: vec![ObservationCode::News2],
                limit: 10,
                ..Default::default()
            })
            .unwrap()
    };
    submit(store.as_ref(), rr(16.0, now - 2_000));
    handle.notify_committed();
    eventually("the first NEWS2 record", || scores().len() == 1);
    submit(store.as_ref(), rr(26.0, now - 1_000));
    handle.notify_committed();
    eventually("two NEWS2 records", || scores().len() == 2);
    engine.stop();
    let recorded = scores();
    let totals: Vec<(u8, bool)> = recorded
        .iter()
        .map(|o| match &o.value {
            ObservationValue::News2(v) => (v.total, v.complete),
            other => panic!("{other:?}"),
        })
        .collect();
    // RR 16 scores 0, RR 26 scores 3; the other six parameters are missing: incomplete.
    assert_eq!(totals, [(0, false), (3, false)]);
    assert!(
        recorded
            .iter()
            .all(|o| o.device.as_str() == vigil_model::NEWS2_SCORER)
    );
}

#[test]
fn of_the_score_changes_evaluated_together_only_the_last_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    register(store.as_ref(), "p1", "pendant-1");
    let (handle, engine) =
        vigil_server::surveillance::start(store.clone(), Default::default()).unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let quantity = |m: vigil_model::Measurand, value: f64| Reading {
        code: ObservationCode::Single(m),
        value: ObservationValue::Quantity(vigil_model::Quantity::new(value, m.canonical_unit())),
        effective: at_ms(now - 1_000),
        status: ObservationStatus::Final,
        quality: QualityFlags::empty(),
    };
    // One message whose every reading moves the score: RR 26 → 3, SpO2 91 → 3, pulse 135 → 3.
    store
        .append(&[Submission {
            patient: None,
            device: did("pendant-1"),
            received: at_ms(now),
            readings: vec![
                quantity(vigil_model::Measurand::RespRate, 26.0),
                quantity(vigil_model::Measurand::Spo2, 91.0),
                quantity(vigil_model::Measurand::HeartRate, 135.0),
            ],
            waveforms: Vec::new(),
            battery_pct: None,
            signal_dbm: None,
        }])
        .unwrap();
    handle.notify_committed();
    let recorded = || {
        store
            .search_observations(&ObservationQuery {
                patient: Some(pid("p1")),
                codes: vec![ObservationCode::News2],
                limit: 10,
                ..Default::default()
            })
            .unwrap()
    };
    eventually("a NEWS2 record", || !recorded().is_empty());
    std::thread::sleep(std::time::Duration::from_millis(200));
    engine.stop();
    let recorded = recorded();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    match &recorded[0].value {
        ObservationValue::News2(v) => assert_eq!((v.total, v.complete), (9, false)),
        other => panic!("{other:?}"),
    }
}
