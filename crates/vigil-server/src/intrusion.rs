//! Device intrusion detection: signals from the sources (refused sign-ins, publishes to another
//! device's topics, floods, bursts of implausible values, a device speaking for other patients)
//! are counted per device or per address in windows; each crossing of a threshold raises a
//! security alert for the administrators and, where configured, quarantines the device: it is
//! marked in the store, its connections are closed, and it is refused at sign-in until an
//! administrator releases it.
//!
//! [`Detector`] is the pure part, with time as a value (tests need no sleeping). [`Intrusion`] is
//! the sources' cheap handle on it; [`run`] is the task that records alerts, quarantines and
//! disconnects, off the ingest path (a bounded queue between them: a signal never waits).
//!
//! A window opens at the first signal of its kind for its subject and lasts `window`; signals at or
//! after its end open a new one. The alert is raised by the signal that brings the window's count
//! to `count`, once per window. Logs and alerts carry device ids and addresses, never patient data.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vigil_model::{DeviceId, PatientId};
use vigil_store::{NewSecurityAlert, Store, StoreError};

use crate::telemetry;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignalKind {
    /// Sign-in refused for a wrong secret or an unknown device id.
    AuthFailures,
    /// A publish to another device's topics.
    TopicViolation,
    /// Messages held back by the device's rate limit.
    MessageFlood,
    /// Readings refused as physiologically implausible.
    ImplausibleValues,
    /// A message naming a patient other than the one the device is bound to.
    ForeignPatient,
    /// One device naming several different patients in a short time.
    ManyPatients,
}

impl SignalKind {
    pub const ALL: [SignalKind; 6] = [
        SignalKind::AuthFailures,
        SignalKind::TopicViolation,
        SignalKind::MessageFlood,
        SignalKind::ImplausibleValues,
        SignalKind::ForeignPatient,
        SignalKind::ManyPatients,
    ];

    /// Stable name: the alert's `kind` and the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::AuthFailures => "auth_failures",
            SignalKind::TopicViolation => "topic_violation",
            SignalKind::MessageFlood => "message_flood",
            SignalKind::ImplausibleValues => "implausible_values",
            SignalKind::ForeignPatient => "foreign_patient",
            SignalKind::ManyPatients => "many_patients",
        }
    }
}

/// Whose behaviour a signal is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    Device(DeviceId),
    /// A remote address (failed sign-ins from one place, whatever ids it tries).
    Address(IpAddr),
}

/// When a signal raises an alert: `count` signals within `window`. `quarantine` quarantines the
/// device (ignored for an address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    pub count: u32,
    pub window: Duration,
    pub quarantine: bool,
}

impl Threshold {
    const fn new(count: u32, window_secs: u64, quarantine: bool) -> Threshold {
        Threshold {
            count,
            window: Duration::from_secs(window_secs),
            quarantine,
        }
    }
}

/// The thresholds; see `docs/defence.md` for why each default is what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntrusionConfig {
    /// Refused sign-ins naming one device id (wrong secret, or an id that is not registered).
    pub auth_failures_per_device: Threshold,
    /// Refused sign-ins from one remote address, whatever ids it names.
    pub auth_failures_per_address: Threshold,
    pub topic_violations: Threshold,
    /// Messages held back by the device's rate limit.
    pub message_flood: Threshold,
    /// Readings refused as implausible.
    pub implausible_values: Threshold,
    /// Messages naming a patient other than the device's bound one.
    pub foreign_patient: Threshold,
    /// Different patients named by one device (`count` distinct patients within `window`).
    pub many_patients: Threshold,
    /// Windows kept at most; beyond it, new subjects are not tracked until windows expire
    /// (bounded memory under a spray of addresses; counted in a metric).
    pub max_tracked: usize,
}

impl Default for IntrusionConfig {
    fn default() -> Self {
        IntrusionConfig {
            auth_failures_per_device: Threshold::new(5, 60, false),
            auth_failures_per_address: Threshold::new(20, 60, false),
            topic_violations: Threshold::new(1, 60, true),
            message_flood: Threshold::new(1_000, 30, false),
            implausible_values: Threshold::new(20, 60, false),
            foreign_patient: Threshold::new(1, 60, true),
            many_patients: Threshold::new(5, 600, false),
            max_tracked: 100_000,
        }
    }
}

impl IntrusionConfig {
    fn threshold(&self, kind: SignalKind, subject: &Subject) -> Threshold {
        match (kind, subject) {
            (SignalKind::AuthFailures, Subject::Address(_)) => self.auth_failures_per_address,
            (SignalKind::AuthFailures, Subject::Device(_)) => self.auth_failures_per_device,
            (SignalKind::TopicViolation, _) => self.topic_violations,
            (SignalKind::MessageFlood, _) => self.message_flood,
            (SignalKind::ImplausibleValues, _) => self.implausible_values,
            (SignalKind::ForeignPatient, _) => self.foreign_patient,
            (SignalKind::ManyPatients, _) => self.many_patients,
        }
    }
}

/// A threshold crossed: one security alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crossing {
    pub kind: SignalKind,
    pub subject: Subject,
    /// Signals in the window when it was crossed (the threshold's count).
    pub count: u32,
    pub window: Duration,
    /// The device is to be quarantined.
    pub quarantine: bool,
}

struct Window {
    start: Instant,
    count: u32,
    raised: bool,
    /// Distinct patients named (by a keyed hash, never the id itself), for `ManyPatients`.
    patients: Vec<u64>,
}

/// The pure detector: counts signals in windows and says when a threshold is crossed.
pub struct Detector {
    config: IntrusionConfig,
    windows: HashMap<(SignalKind, Subject), Window>,
}

impl Detector {
    pub fn new(config: IntrusionConfig) -> Detector {
        Detector {
            config,
            windows: HashMap::new(),
        }
    }

    /// `n` signals of `kind` about `subject` at `now`.
    pub fn observe(
        &mut self,
        kind: SignalKind,
        subject: Subject,
        n: u32,
        now: Instant,
    ) -> Option<Crossing> {
        self.count(kind, subject, now, |w| {
            w.count = w.count.saturating_add(n);
        })
    }

    /// `device` named a patient (identified by `patient_key`, a hash): counts the distinct ones.
    pub fn patient_named(
        &mut self,
        device: DeviceId,
        patient_key: u64,
        now: Instant,
    ) -> Option<Crossing> {
        self.count(
            SignalKind::ManyPatients,
            Subject::Device(device),
            now,
            |w| {
                if !w.patients.contains(&patient_key) {
                    w.patients.push(patient_key);
                    w.count = w.count.saturating_add(1);
                }
            },
        )
    }

    fn count(
        &mut self,
        kind: SignalKind,
        subject: Subject,
        now: Instant,
        add: impl FnOnce(&mut Window),
    ) -> Option<Crossing> {
        let threshold = self.config.threshold(kind, &subject);
        if threshold.count == 0 {
            return None;
        }
        let key = (kind, subject);
        if !self.windows.contains_key(&key) && self.windows.len() >= self.config.max_tracked {
            self.windows.retain(|(kind, subject), w| {
                now < w.start + self.config.threshold(*kind, subject).window
            });
            if self.windows.len() >= self.config.max_tracked {
                telemetry::intrusion_untracked();
                return None;
            }
        }
        let window = self.windows.entry(key.clone()).or_insert(Window {
            start: now,
            count: 0,
            raised: false,
            patients: Vec::new(),
        });
        if now >= window.start + threshold.window || now < window.start {
            *window = Window {
                start: now,
                count: 0,
                raised: false,
                patients: Vec::new(),
            };
        }
        add(window);
        if window.raised || window.count < threshold.count {
            return None;
        }
        window.raised = true;
        let (kind, subject) = key;
        let quarantine = threshold.quarantine && matches!(subject, Subject::Device(_));
        Some(Crossing {
            kind,
            count: window.count,
            subject,
            window: threshold.window,
            quarantine,
        })
    }

    /// Windows currently kept (for tests and the bound).
    pub fn tracked(&self) -> usize {
        self.windows.len()
    }
}

/// Crossings waiting to be recorded; beyond this they are dropped and counted (an alert storm
/// must not slow ingest; the open alert of the same kind already says what is going on).
const CROSSINGS_QUEUE: usize = 256;

/// Named-patient checks waiting for their binding lookup; beyond this they are skipped (and
/// counted): the detector is best effort and must never hold ingest back.
const NAMED_QUEUE: usize = 1024;

/// A message that named its patient, to be checked against the device's binding.
struct Named {
    device: DeviceId,
    patient: PatientId,
    at: vigil_model::Instant,
}

/// The sources' handle: report signals here. Cheap to clone; never blocks.
#[derive(Clone)]
pub struct Intrusion {
    detector: Arc<Mutex<Detector>>,
    tx: mpsc::Sender<Crossing>,
    named: mpsc::Sender<Named>,
    /// A per-process key for hashing patient ids, so what the detector keeps says nothing that
    /// could be matched against a patient list.
    patient_hash_key: u64,
}

/// The other end of [`Intrusion`]: give it to [`run`].
pub struct Crossings(mpsc::Receiver<Crossing>, mpsc::Receiver<Named>);

impl Intrusion {
    pub fn new(config: IntrusionConfig) -> (Intrusion, Crossings) {
        let (tx, rx) = mpsc::channel(CROSSINGS_QUEUE);
        let (named, named_rx) = mpsc::channel(NAMED_QUEUE);
        (
            Intrusion {
                detector: Arc::new(Mutex::new(Detector::new(config))),
                tx,
                named,
                patient_hash_key: rand::random(),
            },
            Crossings(rx, named_rx),
        )
    }

    /// A handle whose crossings go nowhere (tests that build the API by hand).
    pub fn disabled() -> Intrusion {
        Intrusion::new(IntrusionConfig::default()).0
    }

    /// Reports `n` signals of `kind` about `subject` now.
    pub fn signal(&self, kind: SignalKind, subject: Subject, n: u32) {
        if n == 0 {
            return;
        }
        telemetry::intrusion_signal(kind.as_str(), n);
        let crossing = self
            .detector
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(kind, subject, n, Instant::now());
        self.raise(crossing);
    }

    /// A refused sign-in: counted for the device id named (if any) and for the address.
    pub fn auth_failure(&self, device: Option<&str>, peer: Option<IpAddr>) {
        if let Some(device) = device.and_then(|d| DeviceId::new(d.to_owned()).ok()) {
            self.signal(SignalKind::AuthFailures, Subject::Device(device), 1);
        }
        if let Some(peer) = peer {
            self.signal(SignalKind::AuthFailures, Subject::Address(peer), 1);
        }
    }

    /// `device` sent a message naming `patient`; `bound` is whom the device is bound to then
    /// (`None`: bound to nobody, as an HL7 central station's equipment often is).
    pub fn patient_named(&self, device: &DeviceId, patient: &PatientId, bound: Option<&PatientId>) {
        for crossing in self.check_patient(device, patient, bound) {
            self.raise(Some(crossing));
        }
    }

    fn check_patient(
        &self,
        device: &DeviceId,
        patient: &PatientId,
        bound: Option<&PatientId>,
    ) -> Vec<Crossing> {
        let now = Instant::now();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.patient_hash_key.hash(&mut hasher);
        patient.as_str().hash(&mut hasher);
        let mut detector = self.detector.lock().unwrap_or_else(|e| e.into_inner());
        let mut crossings = Vec::new();
        if bound.is_some_and(|b| b != patient) {
            telemetry::intrusion_signal(SignalKind::ForeignPatient.as_str(), 1);
            crossings.extend(detector.observe(
                SignalKind::ForeignPatient,
                Subject::Device(device.clone()),
                1,
                now,
            ));
        }
        crossings.extend(detector.patient_named(device.clone(), hasher.finish(), now));
        crossings
    }

    /// `device` sent readings from `at` on naming `patient`: [`run`] looks up whom the device is
    /// bound to then and reports [`Intrusion::patient_named`]. Never waits.
    pub fn check_named_patient(
        &self,
        device: &DeviceId,
        patient: &PatientId,
        at: vigil_model::Instant,
    ) {
        // Vigil's own software devices (the FHIR entry device) speak for every patient by design.
        if vigil_model::is_reserved_device_id(device.as_str()) {
            return;
        }
        let named = Named {
            device: device.clone(),
            patient: patient.clone(),
            at,
        };
        if self.named.try_send(named).is_err() && !self.named.is_closed() {
            telemetry::intrusion_untracked();
        }
    }

    fn raise(&self, crossing: Option<Crossing>) {
        if let Some(crossing) = crossing
            && self.tx.try_send(crossing).is_err()
        {
            telemetry::intrusion_alert_dropped();
        }
    }
}

/// What [`run`] needs to act on a crossing.
pub struct Responders {
    pub store: Arc<dyn Store>,
    /// The audit trail, where every security alert is also recorded.
    pub audit: crate::audit::Auditor,
    /// Closes a device's open connections; returns how many.
    pub disconnect: Box<dyn Fn(&DeviceId) -> usize + Send + Sync>,
}

/// Records each crossing as a security alert, quarantines and disconnects where configured; checks
/// named patients against bindings. Ends with `shutdown`.
pub async fn run(
    mut crossings: Crossings,
    intrusion: Intrusion,
    responders: Responders,
    shutdown: CancellationToken,
) {
    // The same device naming the same patient again and again (every HL7 message of a bed) needs
    // one lookup, not one per message: a pair checked within this long is skipped.
    const RECHECK: Duration = Duration::from_secs(10);
    let mut checked: HashMap<(DeviceId, PatientId), Instant> = HashMap::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            c = crossings.0.recv() => match c {
                Some(c) => respond(&c, &responders).await,
                None => break,
            },
            Some(named) = crossings.1.recv() => {
                let now = Instant::now();
                let key = (named.device.clone(), named.patient.clone());
                if checked.get(&key).is_some_and(|at| now < *at + RECHECK) {
                    continue;
                }
                if checked.len() >= 10_000 {
                    checked.retain(|_, at| now < *at + RECHECK);
                }
                checked.insert(key, now);
                let store = responders.store.clone();
                let device = named.device.clone();
                let bindings = tokio::task::spawn_blocking(move || store.bindings(&device)).await;
                let bound = match bindings {
                    Ok(Ok(bindings)) => bindings
                        .into_iter()
                        .find(|b| b.covers(named.at))
                        .map(|b| b.patient),
                    // Equipment Vigil registered a moment ago, or a store hiccup: nothing to compare.
                    _ => None,
                };
                let crossings = intrusion.check_patient(&named.device, &named.patient, bound.as_ref());
                for c in crossings {
                    respond(&c, &responders).await;
                }
            }
        }
    }
}

async fn respond(crossing: &Crossing, responders: &Responders) {
    let kind = crossing.kind.as_str();
    let (device, peer) = match &crossing.subject {
        Subject::Device(d) => (Some(d.clone()), None),
        Subject::Address(a) => (None, Some(a.to_string())),
    };
    let alert = NewSecurityAlert {
        device: device.clone(),
        peer: peer.clone(),
        kind: kind.to_owned(),
        count: u64::from(crossing.count),
        at: chrono::Utc::now(),
        detail: detail(crossing),
        quarantined: crossing.quarantine,
    };
    let store = responders.store.clone();
    let quarantine = crossing.quarantine.then(|| device.clone()).flatten();
    let recorded = tokio::task::spawn_blocking(move || {
        let mut quarantined = false;
        if let Some(device) = &quarantine {
            match store.set_device_quarantine(device, Some(alert.at)) {
                Ok(()) => quarantined = true,
                // An id nobody registered (someone guessing): nothing to quarantine.
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let alert = NewSecurityAlert {
            quarantined,
            ..alert
        };
        store.record_security_alert(&alert)
    })
    .await;
    let alert = match recorded {
        Ok(Ok(alert)) => alert,
        Ok(Err(e)) => {
            tracing::error!(kind, error = %e, "security alert could not be recorded");
            return;
        }
        Err(_) => return,
    };
    telemetry::security_alert(kind);
    let mut closed = 0;
    if alert.quarantined
        && let Some(device) = &alert.device
    {
        closed = (responders.disconnect)(device);
    }
    tracing::warn!(
        alert = alert.id,
        kind,
        device = alert.device.as_ref().map(|d| d.as_str()),
        peer = alert.peer.as_deref(),
        quarantined = alert.quarantined,
        connections_closed = closed,
        "security alert"
    );
    responders.audit.record_done(audit_entry(&alert)).await;
}

/// A security alert as an audit entry: Vigil itself is the agent; the device (or address) and
/// what happened, never patient data.
fn audit_entry(alert: &vigil_store::SecurityAlert) -> vigil_model::audit::AuditEntry {
    use vigil_model::audit::{AuditAction, AuditAgent, AuditEntity, AuditEntry, AuditOutcome};
    let entity = match &alert.device {
        Some(device) => AuditEntity::resource("Device", device.as_str()),
        None => AuditEntity::kind("Peer"),
    };
    AuditEntry::new(
        alert.last_seen,
        AuditAction::SecurityAlert,
        AuditAgent::system("vigil", Some("intrusion-detection".into())),
        entity,
    )
    .outcome(AuditOutcome::MinorFailure)
    .detail(format!(
        "{} (alert {}{}{})",
        alert.kind,
        alert.id,
        if alert.quarantined {
            ", quarantined"
        } else {
            ""
        },
        alert
            .peer
            .as_deref()
            .map(|p| format!(", from {p}"))
            .unwrap_or_default()
    ))
}

/// The alert's detail: what crossed which threshold, in words; never patient data.
fn detail(c: &Crossing) -> String {
    let window = c.window.as_secs();
    let what = match c.kind {
        SignalKind::AuthFailures => "refused sign-ins",
        SignalKind::TopicViolation => "publishes to another device's topics",
        SignalKind::MessageFlood => "messages held back by the rate limit",
        SignalKind::ImplausibleValues => "readings refused as implausible",
        SignalKind::ForeignPatient => "messages naming a patient the device is not bound to",
        SignalKind::ManyPatients => "different patients named",
    };
    let action = if c.quarantine {
        "; the device is quarantined until an administrator releases it"
    } else {
        ""
    };
    format!("{} {what} within {window} s{action}", c.count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(id: &str) -> Subject {
        Subject::Device(DeviceId::new(id).unwrap())
    }

    fn config() -> IntrusionConfig {
        IntrusionConfig::default()
    }

    /// Feeds `n` single signals at `at` and returns the crossings.
    fn feed(d: &mut Detector, kind: SignalKind, s: &Subject, n: u32, at: Instant) -> Vec<Crossing> {
        (0..n)
            .filter_map(|_| d.observe(kind, s.clone(), 1, at))
            .collect()
    }

    #[test]
    fn each_threshold_is_crossed_exactly_at_its_count_and_once_per_window() {
        let t0 = Instant::now();
        let c = config();
        for kind in SignalKind::ALL {
            if kind == SignalKind::ManyPatients {
                continue;
            }
            let subject = device("mon-1");
            let threshold = c.threshold(kind, &subject);
            let mut d = Detector::new(c.clone());
            if threshold.count > 1 {
                assert!(
                    feed(&mut d, kind, &subject, threshold.count - 1, t0).is_empty(),
                    "{kind:?}: one below the threshold raises nothing"
                );
                let crossing = d
                    .observe(kind, subject.clone(), 1, t0)
                    .expect("at the count");
                assert_eq!(crossing.count, threshold.count);
                assert_eq!(crossing.quarantine, threshold.quarantine, "{kind:?}");
            } else {
                assert!(d.observe(kind, subject.clone(), 1, t0).is_some());
            }
            assert!(
                d.observe(kind, subject.clone(), 1, t0).is_none(),
                "{kind:?}: raised once per window"
            );
        }
    }

    #[test]
    fn the_window_ends_exactly_at_its_length() {
        let t0 = Instant::now();
        let mut d = Detector::new(config());
        let s = device("mon-1");
        // 4 failures at t0, the 5th just inside the window: crossed.
        assert!(feed(&mut d, SignalKind::AuthFailures, &s, 4, t0).is_empty());
        let last = t0 + Duration::from_secs(60) - Duration::from_millis(1);
        assert!(
            d.observe(SignalKind::AuthFailures, s.clone(), 1, last)
                .is_some()
        );

        // 4 failures at t0, the 5th exactly at the window's end opens a new window: not crossed.
        let mut d = Detector::new(config());
        assert!(feed(&mut d, SignalKind::AuthFailures, &s, 4, t0).is_empty());
        let end = t0 + Duration::from_secs(60);
        assert!(
            d.observe(SignalKind::AuthFailures, s.clone(), 1, end)
                .is_none()
        );
        // ... which then needs its own 5 (4 more).
        assert!(feed(&mut d, SignalKind::AuthFailures, &s, 3, end).is_empty());
        assert!(
            d.observe(SignalKind::AuthFailures, s.clone(), 1, end)
                .is_some()
        );
    }

    #[test]
    fn a_new_window_can_raise_again() {
        let t0 = Instant::now();
        let mut d = Detector::new(config());
        let s = device("mon-1");
        assert!(
            d.observe(SignalKind::TopicViolation, s.clone(), 1, t0)
                .is_some()
        );
        assert!(
            d.observe(
                SignalKind::TopicViolation,
                s.clone(),
                1,
                t0 + Duration::from_secs(59)
            )
            .is_none()
        );
        assert!(
            d.observe(
                SignalKind::TopicViolation,
                s.clone(),
                1,
                t0 + Duration::from_secs(60)
            )
            .is_some()
        );
    }

    #[test]
    fn subjects_and_kinds_are_counted_apart() {
        let t0 = Instant::now();
        let mut d = Detector::new(config());
        assert!(feed(&mut d, SignalKind::AuthFailures, &device("a"), 4, t0).is_empty());
        assert!(feed(&mut d, SignalKind::AuthFailures, &device("b"), 4, t0).is_empty());
        assert!(feed(&mut d, SignalKind::ImplausibleValues, &device("a"), 4, t0).is_empty());
        assert_eq!(d.tracked(), 3);
    }

    #[test]
    fn failures_from_one_address_cross_the_address_threshold_and_never_quarantine() {
        let t0 = Instant::now();
        let mut config = config();
        config.auth_failures_per_address.quarantine = true;
        let mut d = Detector::new(config);
        let from = Subject::Address("192.0.2.7".parse().unwrap());
        assert!(feed(&mut d, SignalKind::AuthFailures, &from, 19, t0).is_empty());
        let c = d.observe(SignalKind::AuthFailures, from, 1, t0).unwrap();
        assert_eq!(c.count, 20);
        assert!(!c.quarantine, "an address is not a device");
    }

    #[test]
    fn a_batch_of_signals_counts_as_many() {
        let t0 = Instant::now();
        let mut d = Detector::new(config());
        let s = device("mon-1");
        assert!(
            d.observe(SignalKind::ImplausibleValues, s.clone(), 19, t0)
                .is_none()
        );
        let c = d.observe(SignalKind::ImplausibleValues, s, 5, t0).unwrap();
        assert_eq!(c.count, 24);
    }

    #[test]
    fn distinct_patients_are_counted_not_messages() {
        let t0 = Instant::now();
        let mut d = Detector::new(config());
        let mon = DeviceId::new("mon-1").unwrap();
        for _ in 0..10 {
            assert!(
                d.patient_named(mon.clone(), 1, t0).is_none(),
                "one patient, many messages"
            );
        }
        for p in 2..=4 {
            assert!(d.patient_named(mon.clone(), p, t0).is_none());
        }
        let c = d
            .patient_named(mon.clone(), 5, t0 + Duration::from_secs(599))
            .expect("the fifth patient within 10 minutes");
        assert_eq!(
            (c.kind, c.count, c.quarantine),
            (SignalKind::ManyPatients, 5, false)
        );

        let mut d = Detector::new(config());
        for p in 1..=4 {
            assert!(d.patient_named(mon.clone(), p, t0).is_none());
        }
        assert!(
            d.patient_named(mon, 5, t0 + Duration::from_secs(600))
                .is_none(),
            "the fifth patient after the window"
        );
    }

    #[test]
    fn a_zero_count_turns_a_signal_off() {
        let t0 = Instant::now();
        let mut config = config();
        config.topic_violations.count = 0;
        let mut d = Detector::new(config);
        assert!(feed(&mut d, SignalKind::TopicViolation, &device("a"), 10, t0).is_empty());
        assert_eq!(d.tracked(), 0);
    }

    #[test]
    fn tracking_is_bounded_and_expired_windows_make_room() {
        let t0 = Instant::now();
        let mut config = config();
        config.max_tracked = 2;
        let mut d = Detector::new(config);
        d.observe(SignalKind::AuthFailures, device("a"), 1, t0);
        d.observe(SignalKind::AuthFailures, device("b"), 1, t0);
        d.observe(SignalKind::AuthFailures, device("c"), 1, t0);
        assert_eq!(
            d.tracked(),
            2,
            "a third subject is not tracked while the others are live"
        );
        d.observe(
            SignalKind::AuthFailures,
            device("c"),
            1,
            t0 + Duration::from_secs(60),
        );
        assert_eq!(d.tracked(), 1, "expired windows are dropped to make room");
    }

    #[test]
    fn foreign_patient_is_only_a_patient_other_than_the_bound_one() {
        let (intrusion, mut crossings) = Intrusion::new(config());
        let mon = DeviceId::new("mon-1").unwrap();
        let (p1, p2) = (PatientId::new("p1").unwrap(), PatientId::new("p2").unwrap());
        intrusion.patient_named(&mon, &p1, Some(&p1));
        intrusion.patient_named(&mon, &p1, None);
        assert!(
            crossings.0.try_recv().is_err(),
            "its own patient, or unbound: no signal"
        );
        intrusion.patient_named(&mon, &p2, Some(&p1));
        let c = crossings
            .0
            .try_recv()
            .expect("another patient than the bound one");
        assert_eq!((c.kind, c.quarantine), (SignalKind::ForeignPatient, true));
    }

    #[test]
    fn the_detail_names_no_patient() {
        let c = Crossing {
            kind: SignalKind::ManyPatients,
            subject: device("mon-1"),
            count: 3,
            window: Duration::from_secs(600),
            quarantine: true,
        };
        assert_eq!(
            detail(&c),
            "3 different patients named within 600 s; the device is quarantined until an administrator releases it"
        );
    }
}
