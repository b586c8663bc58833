//! Alarms and their lifecycle, in the vocabulary of IEC 60601-1-8:2006 + A1:2012 + A2:2020
//! (alarm systems in medical electrical equipment), with the BICEPS (IEEE 11073-10207)
//! enumerations where the standard leaves the representation open.
//!
//! * **Alarm condition** vs **alarm signal** (clause 3 definitions): a rule module decides whether a
//!   condition is present ([`ConditionChange`]); the [`AlarmBook`] decides what is signalled.
//!   "Condition present" and "signal generated" are kept apart (`condition_present` vs
//!   [`AlarmState`]), as latching requires.
//! * **Priorities** high / medium / low ([`Priority`]), **physiological** vs **technical**
//!   ([`AlarmKind`], BICEPS `AlertConditionKind` Phy / Tec).
//! * **Latching** (BICEPS `AlertSignalPresence::Latch`): a *high*-priority alarm whose condition has
//!   cleared stays [`AlarmState::Active`] with `condition_present == false` until an operator
//!   acknowledges it (the standard's "alarm reset"). Medium and low alarms are non-latching: they
//!   resolve by themselves when the condition clears.
//! * **Acknowledged** (A1:2012): inactivates the signal of the *currently existing* condition until
//!   the condition ends; the alarm then resolves. Acknowledging an alarm whose condition is gone
//!   resolves it at once.
//! * **Audio paused** ([`AlarmBook::silence`]): timed, at most [`MAX_AUDIO_PAUSE_SECS`]; when it
//!   ends the signal resumes ([`AlarmBook::tick`]).
//! * **Escalation**: a higher priority raises the alarm's priority and is recorded. An open alarm
//!   never de-escalates by itself: its priority is the highest its condition reached.
//! * **Re-alarm**: an acknowledged or audio-paused alarm whose condition escalates, or whose value
//!   worsens by the trigger's [`Worsening`] margin beyond the value at the time of the operator's
//!   action, becomes active again. Anything less never re-sounds (an acknowledged alarm must not
//!   repeat).
//!
//! **One open alarm per condition.** The book holds the open (not yet resolved) alarms keyed by
//! [`ConditionKey`]; a condition reported again updates its open alarm instead of raising a second.
//! Once resolved an alarm leaves the book; the condition's next occurrence is a new alarm.
//!
//! **Changes and persistence.** Every operation returns the [`Change`]s it made, in order: the event
//! (who, when, what) and the alarm's snapshot just after it. The caller persists and publishes them;
//! the history of an alarm is its sequence of events. The book's state is the last snapshot of each
//! open alarm plus `next_id`, so after a restart it is rebuilt with [`AlarmBook::restore`] (or
//! deserialised), and neither forgets an open alarm nor raises a duplicate. Only the live fields
//! `value` and `message` follow the condition between changes without a change of their own.
//!
//! **Alarm ids** are assigned by the book from its `next_id` counter, which is part of its persisted
//! state. A caller rebuilding the book from storage passes a `next_id` greater than every id it
//! ever stored (resolved alarms included), so ids are never reused.
//!
//! Time is always passed in (`now`); nothing here reads a clock.

use std::collections::BTreeMap;
use std::fmt;

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};
use vigil_model::{DeviceId, Instant, PatientId};

/// The longest audio pause an operator may set, in seconds. Audio *off* (indefinite) is not
/// offered: the standard asks for extra safeguards around indefinite inactivation, and an
/// acknowledgement already silences a condition for as long as it lasts.
pub const MAX_AUDIO_PAUSE_SECS: i64 = 15 * 60;

/// IEC 60601-1-8 alarm priority, by the urgency of the operator response it demands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Operator awareness is required.
    Low,
    /// Prompt operator response is required.
    Medium,
    /// Immediate operator response is required.
    High,
}

impl Priority {
    pub fn name(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
        }
    }
}

/// Whether the condition arises from a patient variable or from the equipment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlarmKind {
    /// From a monitored patient-related variable (SpO2 below its limit, NEWS2 band).
    Physiological,
    /// From the equipment or the alarm system (no data, low battery, probe off, clock skew).
    Technical,
}

/// Who or what a condition is about: a patient (physiological) or a device (technical).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    Patient(PatientId),
    Device(DeviceId),
}

/// Identifies one alarm condition, stably across restarts: the subject and a condition id such as
/// `threshold:spo2:low`, `news2:band` or `technical:silent`. At most one alarm is open per key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConditionKey {
    pub subject: Subject,
    pub condition: String,
}

impl ConditionKey {
    pub fn patient(patient: PatientId, condition: impl Into<String>) -> Self {
        ConditionKey {
            subject: Subject::Patient(patient),
            condition: condition.into(),
        }
    }
    pub fn device(device: DeviceId, condition: impl Into<String>) -> Self {
        ConditionKey {
            subject: Subject::Device(device),
            condition: condition.into(),
        }
    }
}

impl fmt::Display for ConditionKey {
    /// `patient/{id}/{condition}` or `device/{id}/{condition}`; ids never contain `/`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.subject {
            Subject::Patient(p) => write!(f, "patient/{p}/{}", self.condition),
            Subject::Device(d) => write!(f, "device/{d}/{}", self.condition),
        }
    }
}

/// An alarm's identity, assigned by the [`AlarmBook`] from its persisted counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AlarmId(pub u64);

impl fmt::Display for AlarmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where an alarm is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlarmState {
    /// The signal is generated (unless audio-paused). With `condition_present == false`, a latched
    /// high-priority alarm waiting for an operator.
    Active,
    /// An operator acknowledged it; it stays open, silent, until its condition ends.
    Acknowledged,
    /// Over: the condition ended and nothing keeps the alarm open. Resolved alarms leave the book.
    Resolved,
}

/// Which way a value gets worse (or, for a trend, which way it moves).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Down,
    Up,
}

/// How a value worsens, and by how much it must worsen beyond the value at the operator's last
/// acknowledgement or audio pause before the alarm re-sounds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Worsening {
    pub direction: Direction,
    /// In the value's unit; the value must move at least this far the wrong way.
    pub margin: f64,
}

impl Worsening {
    /// True when `value` is worse than `reference` by at least the margin.
    pub fn is_worse(&self, reference: f64, value: f64) -> bool {
        match self.direction {
            Direction::Down => value <= reference - self.margin,
            Direction::Up => value >= reference + self.margin,
        }
    }
}

/// What a rule reports about a present condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    pub priority: Priority,
    pub kind: AlarmKind,
    /// For people; carries no identifiers (the key does).
    pub message: String,
    /// The value that makes the condition, in its canonical unit, when there is one.
    pub value: Option<f64>,
    /// When set, a worse value re-sounds an acknowledged or audio-paused alarm.
    pub worsening: Option<Worsening>,
}

/// What a rule module reports: a condition is (still) present, or it has cleared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditionChange {
    Present {
        key: ConditionKey,
        trigger: Trigger,
        /// The time of the evidence (reading time, or the tick that found a device silent).
        at: Instant,
    },
    Cleared {
        key: ConditionKey,
        at: Instant,
    },
}

impl ConditionChange {
    pub fn key(&self) -> &ConditionKey {
        match self {
            ConditionChange::Present { key, .. } | ConditionChange::Cleared { key, .. } => key,
        }
    }
    pub fn at(&self) -> Instant {
        match self {
            ConditionChange::Present { at, .. } | ConditionChange::Cleared { at, .. } => *at,
        }
    }
    pub fn is_present(&self) -> bool {
        matches!(self, ConditionChange::Present { .. })
    }
}

/// Who did something, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribution {
    pub by: String,
    pub at: Instant,
}

/// An audio pause in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioPause {
    pub by: String,
    pub at: Instant,
    pub until: Instant,
}

/// One alarm: the signal raised for one occurrence of one condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    pub id: AlarmId,
    pub key: ConditionKey,
    pub kind: AlarmKind,
    /// The highest priority the condition reached while this alarm was open.
    pub priority: Priority,
    pub state: AlarmState,
    /// Whether the condition still exists. False only on a latched (high-priority, active) alarm
    /// or, in a final snapshot, on a resolved one.
    pub condition_present: bool,
    pub message: String,
    /// The condition's latest value, when it has one.
    pub value: Option<f64>,
    pub worsening: Option<Worsening>,
    pub raised_at: Instant,
    /// Time of the latest change.
    pub updated_at: Instant,
    /// The acknowledgement in force (cleared when the alarm re-sounds).
    pub acknowledged: Option<Attribution>,
    /// The audio pause in force.
    pub audio_paused: Option<AudioPause>,
    /// The value when an operator last acknowledged or paused the alarm: a re-alarm needs a value
    /// worse than this by the worsening margin.
    pub reference_value: Option<f64>,
    pub resolved_at: Option<Instant>,
}

impl Alarm {
    /// High-priority alarms latch (IEC 60601-1-8 leaves the choice to the manufacturer; Vigil
    /// latches exactly the alarms that demand an immediate response).
    pub fn is_latching(&self) -> bool {
        self.priority == Priority::High
    }
    /// True when the alarm's signal is generated at `now`: active and not audio-paused.
    pub fn is_sounding(&self, now: Instant) -> bool {
        self.state == AlarmState::Active
            && self.audio_paused.as_ref().is_none_or(|p| now >= p.until)
    }
    fn is_worse(&self, value: Option<f64>) -> Option<(f64, f64)> {
        let (w, reference, value) = (self.worsening?, self.reference_value?, value?);
        w.is_worse(reference, value).then_some((reference, value))
    }
}

/// What happened to an alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlarmEventKind {
    /// A new alarm for a condition that had none open.
    Raised,
    /// The priority rose.
    Escalated,
    /// An operator acknowledged it.
    Acknowledged,
    /// An operator paused its audio until a time.
    Silenced,
    /// The audio pause ended; the signal resumes.
    Unsilenced,
    /// The condition ended (the alarm may stay open, latched).
    ConditionCleared,
    /// The condition of a latched alarm came back before anyone acknowledged it.
    ConditionReturned,
    /// The alarm is over and leaves the book.
    Resolved,
    /// An acknowledged or audio-paused alarm sounds again because its condition worsened.
    ReAlarmed,
}

/// One recorded state change of an alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmEvent {
    pub alarm: AlarmId,
    pub at: Instant,
    pub kind: AlarmEventKind,
    /// The operator, for operator actions; `None` for what the system did.
    pub by: Option<String>,
    pub detail: String,
}

/// A change the caller must persist and publish: the event and the alarm just after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub event: AlarmEvent,
    pub alarm: Alarm,
}

/// Why an operator action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlarmError {
    #[error("alarm {0} is not open (it was resolved, or never existed)")]
    NotOpen(AlarmId),
    #[error("an audio pause must end after now")]
    PauseNotInFuture,
    #[error("an audio pause of {0} s is longer than the {MAX_AUDIO_PAUSE_SECS} s allowed")]
    PauseTooLong(i64),
}

/// Why a persisted alarm book could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("condition {0} has more than one open alarm")]
    DuplicateCondition(String),
    #[error("alarm id {0} is used twice")]
    DuplicateId(AlarmId),
    #[error("alarm {id} is not below next_id {next}")]
    IdNotBelowNext { id: AlarmId, next: AlarmId },
    #[error("alarm {0} is resolved; only open alarms belong in the book")]
    Resolved(AlarmId),
}

/// The open alarms, one per condition. Pure: every method takes the time and returns the changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "BookState", into = "BookState")]
pub struct AlarmBook {
    next_id: AlarmId,
    open: BTreeMap<ConditionKey, Alarm>,
    by_id: BTreeMap<AlarmId, ConditionKey>,
}

/// The persisted form of an [`AlarmBook`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BookState {
    pub next_id: AlarmId,
    pub alarms: Vec<Alarm>,
}

impl TryFrom<BookState> for AlarmBook {
    type Error = RestoreError;
    fn try_from(state: BookState) -> Result<Self, RestoreError> {
        AlarmBook::restore(state.next_id, state.alarms)
    }
}

impl From<AlarmBook> for BookState {
    fn from(book: AlarmBook) -> BookState {
        BookState {
            next_id: book.next_id,
            alarms: book.open.into_values().collect(),
        }
    }
}

impl Default for AlarmBook {
    fn default() -> Self {
        AlarmBook::new(AlarmId(1))
    }
}

impl AlarmBook {
    /// An empty book whose first alarm gets `first_id`.
    pub fn new(first_id: AlarmId) -> Self {
        AlarmBook {
            next_id: first_id,
            open: BTreeMap::new(),
            by_id: BTreeMap::new(),
        }
    }

    /// Rebuilds the book from the last persisted snapshot of each open alarm. `next_id` must be
    /// greater than every id ever assigned, resolved alarms included.
    pub fn restore(next_id: AlarmId, alarms: Vec<Alarm>) -> Result<Self, RestoreError> {
        let mut book = AlarmBook::new(next_id);
        for alarm in alarms {
            if alarm.state == AlarmState::Resolved {
                return Err(RestoreError::Resolved(alarm.id));
            }
            if alarm.id >= next_id {
                return Err(RestoreError::IdNotBelowNext {
                    id: alarm.id,
                    next: next_id,
                });
            }
            if book.by_id.contains_key(&alarm.id) {
                return Err(RestoreError::DuplicateId(alarm.id));
            }
            if book.open.contains_key(&alarm.key) {
                return Err(RestoreError::DuplicateCondition(alarm.key.to_string()));
            }
            book.by_id.insert(alarm.id, alarm.key.clone());
            book.open.insert(alarm.key.clone(), alarm);
        }
        Ok(book)
    }

    /// The id the next new alarm will get (persist it with the book).
    pub fn next_id(&self) -> AlarmId {
        self.next_id
    }

    /// Open alarms, in key order.
    pub fn open(&self) -> impl Iterator<Item = &Alarm> {
        self.open.values()
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    pub fn get(&self, id: AlarmId) -> Option<&Alarm> {
        self.by_id.get(&id).and_then(|k| self.open.get(k))
    }

    pub fn by_key(&self, key: &ConditionKey) -> Option<&Alarm> {
        self.open.get(key)
    }

    /// Applies a rule module's report: [`AlarmBook::raise_or_update`] or
    /// [`AlarmBook::condition_cleared`].
    pub fn apply(&mut self, change: &ConditionChange, now: Instant) -> Vec<Change> {
        match change {
            ConditionChange::Present { key, trigger, .. } => {
                self.raise_or_update(key, trigger.clone(), now)
            }
            ConditionChange::Cleared { key, .. } => self.condition_cleared(key, now),
        }
    }

    /// The condition is present: raises a new alarm if none is open for `key`, otherwise updates
    /// the open one: a latched alarm's condition returns, a higher priority escalates it, and an
    /// acknowledged or paused alarm that escalated or worsened re-sounds. A report that changes
    /// nothing but the live value and message returns no change.
    pub fn raise_or_update(
        &mut self,
        key: &ConditionKey,
        trigger: Trigger,
        now: Instant,
    ) -> Vec<Change> {
        let Some(alarm) = self.open.get_mut(key) else {
            return self.raise(key, trigger, now);
        };
        let mut changes = Vec::new();
        alarm.message = trigger.message;
        alarm.value = trigger.value;
        if trigger.worsening.is_some() {
            alarm.worsening = trigger.worsening;
        }
        if !alarm.condition_present {
            alarm.condition_present = true;
            record(
                &mut changes,
                alarm,
                now,
                AlarmEventKind::ConditionReturned,
                None,
                "condition present again before the latched alarm was acknowledged".into(),
            );
        }
        let escalated_from = (trigger.priority > alarm.priority).then_some(alarm.priority);
        if let Some(from) = escalated_from {
            alarm.priority = trigger.priority;
            let detail = format!("{} → {}", from.name(), trigger.priority.name());
            record(
                &mut changes,
                alarm,
                now,
                AlarmEventKind::Escalated,
                None,
                detail,
            );
        }
        let inactivated = alarm.state == AlarmState::Acknowledged || alarm.audio_paused.is_some();
        if inactivated {
            let worse = alarm.is_worse(trigger.value);
            let reason = match (escalated_from, worse) {
                (Some(from), _) => Some(format!(
                    "priority rose from {} to {}",
                    from.name(),
                    alarm.priority.name()
                )),
                (None, Some((reference, value))) => {
                    Some(format!("value worsened from {reference} to {value}"))
                }
                (None, None) => None,
            };
            if let Some(reason) = reason {
                alarm.state = AlarmState::Active;
                alarm.acknowledged = None;
                alarm.audio_paused = None;
                alarm.reference_value = None;
                record(
                    &mut changes,
                    alarm,
                    now,
                    AlarmEventKind::ReAlarmed,
                    None,
                    reason,
                );
            }
        }
        changes
    }

    fn raise(&mut self, key: &ConditionKey, trigger: Trigger, now: Instant) -> Vec<Change> {
        let id = self.next_id;
        self.next_id = AlarmId(id.0.saturating_add(1));
        let mut alarm = Alarm {
            id,
            key: key.clone(),
            kind: trigger.kind,
            priority: trigger.priority,
            state: AlarmState::Active,
            condition_present: true,
            message: trigger.message,
            value: trigger.value,
            worsening: trigger.worsening,
            raised_at: now,
            updated_at: now,
            acknowledged: None,
            audio_paused: None,
            reference_value: None,
            resolved_at: None,
        };
        let mut changes = Vec::with_capacity(1);
        let detail = format!("{} priority", alarm.priority.name());
        record(
            &mut changes,
            &mut alarm,
            now,
            AlarmEventKind::Raised,
            None,
            detail,
        );
        self.by_id.insert(id, key.clone());
        self.open.insert(key.clone(), alarm);
        changes
    }

    /// The condition ended. An acknowledged or non-latching alarm resolves; a latched
    /// (high-priority, unacknowledged) one stays active with `condition_present == false`.
    pub fn condition_cleared(&mut self, key: &ConditionKey, now: Instant) -> Vec<Change> {
        let Some(alarm) = self.open.get_mut(key) else {
            return Vec::new();
        };
        if !alarm.condition_present {
            return Vec::new();
        }
        let mut changes = Vec::new();
        alarm.condition_present = false;
        record(
            &mut changes,
            alarm,
            now,
            AlarmEventKind::ConditionCleared,
            None,
            String::new(),
        );
        if alarm.state == AlarmState::Acknowledged || !alarm.is_latching() {
            let detail = if alarm.state == AlarmState::Acknowledged {
                "condition ended after acknowledgement"
            } else {
                "non-latching alarm ended with its condition"
            };
            self.resolve(key, now, None, detail.into(), &mut changes);
        }
        changes
    }

    /// An operator acknowledges. An active alarm with its condition present becomes acknowledged
    /// (silent until the condition ends); a latched alarm whose condition is gone resolves.
    /// Acknowledging an acknowledged alarm changes nothing.
    pub fn acknowledge(
        &mut self,
        id: AlarmId,
        by: &str,
        now: Instant,
    ) -> Result<Vec<Change>, AlarmError> {
        let key = self
            .by_id
            .get(&id)
            .cloned()
            .ok_or(AlarmError::NotOpen(id))?;
        let alarm = self.open.get_mut(&key).ok_or(AlarmError::NotOpen(id))?;
        let mut changes = Vec::new();
        if alarm.state == AlarmState::Acknowledged {
            return Ok(changes);
        }
        alarm.state = AlarmState::Acknowledged;
        alarm.acknowledged = Some(Attribution {
            by: by.to_owned(),
            at: now,
        });
        alarm.audio_paused = None;
        alarm.reference_value = alarm.value;
        record(
            &mut changes,
            alarm,
            now,
            AlarmEventKind::Acknowledged,
            Some(by),
            String::new(),
        );
        if !alarm.condition_present {
            self.resolve(
                &key,
                now,
                Some(by),
                "latched alarm reset by acknowledgement".into(),
                &mut changes,
            );
        }
        Ok(changes)
    }

    /// An operator pauses an active alarm's audio until `until` (after `now`, at most
    /// [`MAX_AUDIO_PAUSE_SECS`] later). An acknowledged alarm is already silent: nothing changes.
    pub fn silence(
        &mut self,
        id: AlarmId,
        by: &str,
        until: Instant,
        now: Instant,
    ) -> Result<Vec<Change>, AlarmError> {
        if until <= now {
            return Err(AlarmError::PauseNotInFuture);
        }
        let length = (until - now).num_seconds();
        if until - now > TimeDelta::seconds(MAX_AUDIO_PAUSE_SECS) {
            return Err(AlarmError::PauseTooLong(length));
        }
        let alarm = self
            .by_id
            .get(&id)
            .and_then(|k| self.open.get_mut(k))
            .ok_or(AlarmError::NotOpen(id))?;
        let mut changes = Vec::new();
        if alarm.state != AlarmState::Active {
            return Ok(changes);
        }
        alarm.audio_paused = Some(AudioPause {
            by: by.to_owned(),
            at: now,
            until,
        });
        alarm.reference_value = alarm.value;
        record(
            &mut changes,
            alarm,
            now,
            AlarmEventKind::Silenced,
            Some(by),
            format!("audio paused until {}", until.to_rfc3339()),
        );
        Ok(changes)
    }

    /// Ends the audio pauses that have expired at `now`: those alarms sound again.
    pub fn tick(&mut self, now: Instant) -> Vec<Change> {
        let mut changes = Vec::new();
        for alarm in self.open.values_mut() {
            let expired = alarm.audio_paused.as_ref().is_some_and(|p| p.until <= now);
            if expired && alarm.state == AlarmState::Active {
                alarm.audio_paused = None;
                alarm.reference_value = None;
                let detail = if alarm.condition_present {
                    "audio pause expired; condition still present"
                } else {
                    "audio pause expired; latched alarm not yet acknowledged"
                };
                record(
                    &mut changes,
                    alarm,
                    now,
                    AlarmEventKind::Unsilenced,
                    None,
                    detail.into(),
                );
            }
        }
        changes
    }

    /// The earliest time at which [`AlarmBook::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.open
            .values()
            .filter(|a| a.state == AlarmState::Active)
            .filter_map(|a| a.audio_paused.as_ref().map(|p| p.until))
            .min()
    }

    fn resolve(
        &mut self,
        key: &ConditionKey,
        now: Instant,
        by: Option<&str>,
        detail: String,
        changes: &mut Vec<Change>,
    ) {
        if let Some(mut alarm) = self.open.remove(key) {
            self.by_id.remove(&alarm.id);
            alarm.state = AlarmState::Resolved;
            alarm.audio_paused = None;
            alarm.resolved_at = Some(now);
            record(
                changes,
                &mut alarm,
                now,
                AlarmEventKind::Resolved,
                by,
                detail,
            );
        }
    }
}

fn record(
    changes: &mut Vec<Change>,
    alarm: &mut Alarm,
    now: Instant,
    kind: AlarmEventKind,
    by: Option<&str>,
    detail: String,
) {
    alarm.updated_at = now;
    changes.push(Change {
        event: AlarmEvent {
            alarm: alarm.id,
            at: now,
            kind,
            by: by.map(str::to_owned),
            detail,
        },
        alarm: alarm.clone(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;

    fn t(secs: i64) -> Instant {
        Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap() + TimeDelta::seconds(secs)
    }

    fn key(patient: &str, condition: &str) -> ConditionKey {
        ConditionKey::patient(PatientId::new(patient).unwrap(), condition)
    }

    fn spo2_low() -> ConditionKey {
        key("bed-1", "threshold:spo2:low")
    }

    fn trig(priority: Priority, value: f64) -> Trigger {
        Trigger {
            priority,
            kind: AlarmKind::Physiological,
            message: format!("SpO2 {value} %"),
            value: Some(value),
            worsening: Some(Worsening {
                direction: Direction::Down,
                margin: 3.0,
            }),
        }
    }

    fn kinds(changes: &[Change]) -> Vec<AlarmEventKind> {
        changes.iter().map(|c| c.event.kind).collect()
    }

    use AlarmEventKind as E;

    #[test]
    fn repeated_raises_keep_one_alarm_per_condition() {
        let mut book = AlarmBook::default();
        let first = book.raise_or_update(&spo2_low(), trig(Priority::Medium, 88.0), t(0));
        assert_eq!(kinds(&first), vec![E::Raised]);
        let id = first[0].alarm.id;
        for i in 1..50 {
            let c = book.raise_or_update(&spo2_low(), trig(Priority::Medium, 88.0), t(i));
            assert!(c.is_empty(), "repeat {i} changed {c:?}");
        }
        assert_eq!(book.len(), 1);
        assert_eq!(book.by_key(&spo2_low()).map(|a| a.id), Some(id));
        // Other conditions and other patients get their own alarms.
        book.raise_or_update(
            &key("bed-1", "threshold:heart_rate:high"),
            trig(Priority::Medium, 140.0),
            t(60),
        );
        book.raise_or_update(
            &key("bed-2", "threshold:spo2:low"),
            trig(Priority::Medium, 88.0),
            t(60),
        );
        assert_eq!(book.len(), 3);
        let ids: Vec<_> = book.open().map(|a| a.id.0).collect();
        assert_eq!(ids.len(), 3);
        assert!(ids.contains(&1) && ids.contains(&2) && ids.contains(&3));
    }

    #[test]
    fn a_raised_alarm_records_its_event() {
        let mut book = AlarmBook::new(AlarmId(41));
        let c = book.raise_or_update(&spo2_low(), trig(Priority::High, 85.0), t(5));
        assert_eq!(c.len(), 1);
        let Change { event, alarm } = &c[0];
        assert_eq!(event.alarm, AlarmId(41));
        assert_eq!(event.at, t(5));
        assert_eq!(event.by, None);
        assert_eq!(event.kind, E::Raised);
        assert_eq!(alarm.state, AlarmState::Active);
        assert!(alarm.condition_present);
        assert_eq!(alarm.raised_at, t(5));
        assert!(alarm.is_sounding(t(5)));
        assert_eq!(book.next_id(), AlarmId(42));
    }

    #[test]
    fn medium_and_low_alarms_resolve_with_their_condition() {
        for p in [Priority::Low, Priority::Medium] {
            let mut book = AlarmBook::default();
            book.raise_or_update(&spo2_low(), trig(p, 88.0), t(0));
            let c = book.condition_cleared(&spo2_low(), t(30));
            assert_eq!(kinds(&c), vec![E::ConditionCleared, E::Resolved]);
            let last = &c[1].alarm;
            assert_eq!(last.state, AlarmState::Resolved);
            assert!(!last.condition_present);
            assert_eq!(last.resolved_at, Some(t(30)));
            assert!(book.is_empty());
            // Clearing again, or clearing what was never raised, changes nothing.
            assert!(book.condition_cleared(&spo2_low(), t(31)).is_empty());
        }
    }

    #[test]
    fn high_priority_latches_until_acknowledged() {
        let mut book = AlarmBook::default();
        let id = book.raise_or_update(&spo2_low(), trig(Priority::High, 84.0), t(0))[0]
            .alarm
            .id;
        let c = book.condition_cleared(&spo2_low(), t(20));
        assert_eq!(kinds(&c), vec![E::ConditionCleared]);
        let alarm = book.get(id).unwrap();
        assert_eq!(alarm.state, AlarmState::Active);
        assert!(!alarm.condition_present);
        assert!(alarm.is_sounding(t(21)), "a latched alarm stays visible");
        assert!(book.condition_cleared(&spo2_low(), t(25)).is_empty());
        let c = book.acknowledge(id, "nadia", t(40)).unwrap();
        assert_eq!(kinds(&c), vec![E::Acknowledged, E::Resolved]);
        assert!(c.iter().all(|c| c.event.by.as_deref() == Some("nadia")));
        assert_eq!(c[1].alarm.state, AlarmState::Resolved);
        assert!(book.is_empty());
        assert_eq!(
            book.acknowledge(id, "nadia", t(41)),
            Err(AlarmError::NotOpen(id))
        );
    }

    #[test]
    fn a_latched_condition_can_return() {
        let mut book = AlarmBook::default();
        book.raise_or_update(&spo2_low(), trig(Priority::High, 84.0), t(0));
        book.condition_cleared(&spo2_low(), t(20));
        let c = book.raise_or_update(&spo2_low(), trig(Priority::High, 86.0), t(30));
        assert_eq!(kinds(&c), vec![E::ConditionReturned]);
        assert!(c[0].alarm.condition_present);
        assert_eq!(book.len(), 1);
    }

    #[test]
    fn acknowledging_an_active_condition_keeps_it_open_and_silent() {
        let mut book = AlarmBook::default();
        let id = book.raise_or_update(&spo2_low(), trig(Priority::High, 86.0), t(0))[0]
            .alarm
            .id;
        let c = book.acknowledge(id, "nadia", t(10)).unwrap();
        assert_eq!(kinds(&c), vec![E::Acknowledged]);
        let alarm = &c[0].alarm;
        assert_eq!(alarm.state, AlarmState::Acknowledged);
        assert_eq!(
            alarm.acknowledged,
            Some(Attribution {
                by: "nadia".into(),
                at: t(10)
            })
        );
        assert!(!alarm.is_sounding(t(11)));
        // The same condition reported again, even slightly worse, does not repeat the alarm.
        for (i, v) in [86.0, 85.0, 84.0, 87.0, 90.0].into_iter().enumerate() {
            let c = book.raise_or_update(&spo2_low(), trig(Priority::High, v), t(11 + i as i64));
            assert!(c.is_empty(), "{v}: {c:?}");
        }
        // A second acknowledgement is a no-op.
        assert!(book.acknowledge(id, "osei", t(20)).unwrap().is_empty());
        // The condition ends: an acknowledged alarm resolves even though it is high priority.
        let c = book.condition_cleared(&spo2_low(), t(30));
        assert_eq!(kinds(&c), vec![E::ConditionCleared, E::Resolved]);
        assert!(book.is_empty());
    }

    #[test]
    fn escalation_after_acknowledgement_re_alarms() {
        let mut book = AlarmBook::default();
        let id = book.raise_or_update(&spo2_low(), trig(Priority::Medium, 89.0), t(0))[0]
            .alarm
            .id;
        book.acknowledge(id, "nadia", t(5)).unwrap();
        let c = book.raise_or_update(&spo2_low(), trig(Priority::High, 88.5), t(9));
        assert_eq!(kinds(&c), vec![E::Escalated, E::ReAlarmed]);
        assert_eq!(c[0].event.detail, "medium → high");
        let alarm = book.get(id).unwrap();
        assert_eq!(alarm.state, AlarmState::Active);
        assert_eq!(alarm.priority, Priority::High);
        assert_eq!(alarm.acknowledged, None);
        assert!(alarm.is_latching(), "escalated to high, it now latches");
        assert_eq!(book.len(), 1, "still the same alarm");
    }

    #[test]
    fn escalation_of_an_active_alarm_is_recorded_without_re_alarm() {
        let mut book = AlarmBook::default();
        book.raise_or_update(&spo2_low(), trig(Priority::Low, 89.0), t(0));
        let c = book.raise_or_update(&spo2_low(), trig(Priority::Medium, 89.0), t(1));
        assert_eq!(kinds(&c), vec![E::Escalated]);
        // Never de-escalates by itself.
        let c = book.raise_or_update(&spo2_low(), trig(Priority::Low, 89.0), t(2));
        assert!(c.is_empty());
        assert_eq!(book.by_key(&spo2_low()).unwrap().priority, Priority::Medium);
    }

    #[test]
    fn a_worse_value_after_acknowledgement_re_alarms_at_the_margin() {
        let mut book = AlarmBook::default();
        let id = book.raise_or_update(&spo2_low(), trig(Priority::High, 89.0), t(0))[0]
            .alarm
            .id;
        // The value moved to 88 before the acknowledgement: that is the reference.
        assert!(
            book.raise_or_update(&spo2_low(), trig(Priority::High, 88.0), t(1))
                .is_empty()
        );
        book.acknowledge(id, "nadia", t(2)).unwrap();
        assert_eq!(book.get(id).unwrap().reference_value, Some(88.0));
        // One step short of the 3-point margin: nothing.
        assert!(
            book.raise_or_update(&spo2_low(), trig(Priority::High, 85.1), t(3))
                .is_empty()
        );
        // Exactly at the margin: re-alarm.
        let c = book.raise_or_update(&spo2_low(), trig(Priority::High, 85.0), t(4));
        assert_eq!(kinds(&c), vec![E::ReAlarmed]);
        assert_eq!(c[0].event.detail, "value worsened from 88 to 85");
        assert_eq!(book.get(id).unwrap().state, AlarmState::Active);
        // Active again: further worsening is not another event.
        assert!(
            book.raise_or_update(&spo2_low(), trig(Priority::High, 80.0), t(5))
                .is_empty()
        );
        // Re-acknowledged at 80, the reference moves with it.
        book.acknowledge(id, "nadia", t(6)).unwrap();
        assert!(
            book.raise_or_update(&spo2_low(), trig(Priority::High, 78.0), t(7))
                .is_empty()
        );
    }

    #[test]
    fn a_worse_value_upwards_re_alarms() {
        let w = Worsening {
            direction: Direction::Up,
            margin: 10.0,
        };
        assert!(!w.is_worse(140.0, 149.9));
        assert!(w.is_worse(140.0, 150.0));
        assert!(!w.is_worse(140.0, 120.0));
    }

    #[test]
    fn an_audio_pause_expires_and_the_alarm_sounds_again() {
        let mut book = AlarmBook::default();
        let id = book.raise_or_update(&spo2_low(), trig(Priority::Medium, 88.0), t(0))[0]
            .alarm
            .id;
        let c = book.silence(id, "nadia", t(120), t(10)).unwrap();
        assert_eq!(kinds(&c), vec![E::Silenced]);
        assert_eq!(c[0].event.by.as_deref(), Some("nadia"));
        assert_eq!(book.next_deadline(), Some(t(120)));
        let alarm = book.get(id).unwrap();
        assert_eq!(alarm.state, AlarmState::Active);
        assert!(!alarm.is_sounding(t(119)));
        assert!(book.tick(t(119)).is_empty());
        let c = book.tick(t(120));
        assert_eq!(kinds(&c), vec![E::Unsilenced]);
        assert_eq!(c[0].event.by, None);
        assert!(book.get(id).unwrap().is_sounding(t(120)));
        assert!(book.tick(t(500)).is_empty(), "expires once");
        assert_eq!(book.next_deadline(), None);
    }

    #[test]
    fn a_paused_alarm_that_escalates_sounds_at_once() {
        let mut book = AlarmBook::default();
        let id = book.raise_or_update(&spo2_low(), trig(Priority::Medium, 89.0), t(0))[0]
            .alarm
            .id;
        book.silence(id, "nadia", t(300), t(1)).unwrap();
        let c = book.raise_or_update(&spo2_low(), trig(Priority::High, 89.0), t(2));
        assert_eq!(kinds(&c), vec![E::Escalated, E::ReAlarmed]);
        assert_eq!(book.get(id).unwrap().audio_paused, None);
        assert!(book.tick(t(300)).is_empty());
    }

    #[test]
    fn a_paused_alarm_whose_condition_clears_resolves_or_stays_latched() {
        let mut book = AlarmBook::default();
        let id = book.raise_or_update(&spo2_low(), trig(Priority::Medium, 89.0), t(0))[0]
            .alarm
            .id;
        book.silence(id, "nadia", t(300), t(1)).unwrap();
        let c = book.condition_cleared(&spo2_low(), t(2));
        assert_eq!(kinds(&c), vec![E::ConditionCleared, E::Resolved]);
        assert_eq!(c[1].alarm.audio_paused, None);
        assert_eq!(book.next_deadline(), None);

        let id = book.raise_or_update(&spo2_low(), trig(Priority::High, 84.0), t(10))[0]
            .alarm
            .id;
        book.silence(id, "nadia", t(100), t(11)).unwrap();
        book.condition_cleared(&spo2_low(), t(12));
        let c = book.tick(t(100));
        assert_eq!(kinds(&c), vec![E::Unsilenced]);
        assert!(!c[0].alarm.condition_present);
    }

    #[test]
    fn audio_pause_limits() {
        let mut book = AlarmBook::default();
        let id = book.raise_or_update(&spo2_low(), trig(Priority::Medium, 88.0), t(0))[0]
            .alarm
            .id;
        assert_eq!(
            book.silence(id, "n", t(10), t(10)),
            Err(AlarmError::PauseNotInFuture)
        );
        assert_eq!(
            book.silence(id, "n", t(9), t(10)),
            Err(AlarmError::PauseNotInFuture)
        );
        assert_eq!(
            book.silence(id, "n", t(10 + MAX_AUDIO_PAUSE_SECS + 1), t(10)),
            Err(AlarmError::PauseTooLong(MAX_AUDIO_PAUSE_SECS + 1))
        );
        assert!(
            book.silence(id, "n", t(10 + MAX_AUDIO_PAUSE_SECS), t(10))
                .is_ok()
        );
        assert_eq!(
            book.silence(AlarmId(99), "n", t(20), t(10)),
            Err(AlarmError::NotOpen(AlarmId(99)))
        );
        // An acknowledged alarm is already silent.
        book.acknowledge(id, "n", t(11)).unwrap();
        assert!(book.silence(id, "n", t(60), t(12)).unwrap().is_empty());
        // Acknowledging cleared the pause.
        assert_eq!(book.next_deadline(), None);
    }

    #[test]
    fn after_resolution_the_next_occurrence_is_a_new_alarm() {
        let mut book = AlarmBook::default();
        let a = book.raise_or_update(&spo2_low(), trig(Priority::Medium, 88.0), t(0))[0]
            .alarm
            .id;
        book.condition_cleared(&spo2_low(), t(10));
        let b = book.raise_or_update(&spo2_low(), trig(Priority::Medium, 88.0), t(20))[0]
            .alarm
            .id;
        assert_ne!(a, b);
        assert!(book.get(a).is_none());
    }

    #[test]
    fn apply_routes_condition_changes() {
        let mut book = AlarmBook::default();
        let present = ConditionChange::Present {
            key: spo2_low(),
            trigger: trig(Priority::Medium, 88.0),
            at: t(0),
        };
        assert_eq!(kinds(&book.apply(&present, t(0))), vec![E::Raised]);
        assert!(book.apply(&present, t(1)).is_empty());
        let cleared = ConditionChange::Cleared {
            key: spo2_low(),
            at: t(2),
        };
        assert_eq!(
            kinds(&book.apply(&cleared, t(2))),
            vec![E::ConditionCleared, E::Resolved]
        );
    }

    #[test]
    fn condition_keys_print_stably() {
        assert_eq!(spo2_low().to_string(), "patient/bed-1/threshold:spo2:low");
        let k = ConditionKey::device(DeviceId::new("ox-7").unwrap(), "technical:silent");
        assert_eq!(k.to_string(), "device/ox-7/technical:silent");
        let json = serde_json::to_string(&k).unwrap();
        assert_eq!(
            json,
            r#"{"subject":{"device":"ox-7"},"condition":"technical:silent"}"#
        );
    }

    #[test]
    fn event_kinds_serialise_in_kebab_case() {
        assert_eq!(
            serde_json::to_string(&E::ConditionCleared).unwrap(),
            r#""condition-cleared""#
        );
        assert_eq!(
            serde_json::to_string(&E::ReAlarmed).unwrap(),
            r#""re-alarmed""#
        );
        assert_eq!(serde_json::to_string(&Priority::High).unwrap(), r#""high""#);
    }

    /// Journey 8: a restart neither forgets an open alarm nor raises a duplicate, and an
    /// acknowledged alarm stays acknowledged.
    #[test]
    fn a_restarted_book_keeps_acknowledgements_latches_and_pauses() {
        let mut book = AlarmBook::default();
        let acked = book.raise_or_update(&spo2_low(), trig(Priority::High, 86.0), t(0))[0]
            .alarm
            .id;
        book.acknowledge(acked, "nadia", t(5)).unwrap();
        let latched_key = key("bed-2", "threshold:heart_rate:low");
        book.raise_or_update(&latched_key, trig(Priority::High, 35.0), t(0));
        book.condition_cleared(&latched_key, t(10));
        let paused_key = key("bed-3", "threshold:spo2:low");
        let paused = book.raise_or_update(&paused_key, trig(Priority::Medium, 89.0), t(0))[0]
            .alarm
            .id;
        book.silence(paused, "nadia", t(100), t(20)).unwrap();

        let json = serde_json::to_string(&book).unwrap();
        let mut restored: AlarmBook = serde_json::from_str(&json).unwrap();
        assert_eq!(restored, book);
        assert_eq!(restored.next_id(), AlarmId(4));
        // Still acknowledged: the same condition reported after the restart changes nothing.
        assert!(
            restored
                .raise_or_update(&spo2_low(), trig(Priority::High, 86.0), t(30))
                .is_empty()
        );
        assert_eq!(restored.get(acked).unwrap().state, AlarmState::Acknowledged);
        assert!(!restored.by_key(&latched_key).unwrap().condition_present);
        assert_eq!(restored.next_deadline(), Some(t(100)));
        assert_eq!(kinds(&restored.tick(t(100))), vec![E::Unsilenced]);
        // New alarms continue the id sequence.
        let c = restored.raise_or_update(&key("bed-4", "x"), trig(Priority::Low, 1.0), t(101));
        assert_eq!(c[0].alarm.id, AlarmId(4));
    }

    #[test]
    fn restore_refuses_an_inconsistent_book() {
        let mut book = AlarmBook::default();
        let c = book.raise_or_update(&spo2_low(), trig(Priority::Medium, 88.0), t(0));
        let alarm = c[0].alarm.clone();
        let mut twin = alarm.clone();
        twin.id = AlarmId(2);
        assert_eq!(
            AlarmBook::restore(AlarmId(3), vec![alarm.clone(), twin]),
            Err(RestoreError::DuplicateCondition(
                "patient/bed-1/threshold:spo2:low".into()
            ))
        );
        let mut other = alarm.clone();
        other.key = key("bed-2", "x");
        assert_eq!(
            AlarmBook::restore(AlarmId(3), vec![alarm.clone(), other]),
            Err(RestoreError::DuplicateId(AlarmId(1)))
        );
        assert_eq!(
            AlarmBook::restore(AlarmId(1), vec![alarm.clone()]),
            Err(RestoreError::IdNotBelowNext {
                id: AlarmId(1),
                next: AlarmId(1)
            })
        );
        let mut resolved = alarm.clone();
        resolved.state = AlarmState::Resolved;
        assert_eq!(
            AlarmBook::restore(AlarmId(2), vec![resolved]),
            Err(RestoreError::Resolved(AlarmId(1)))
        );
        let bad = r#"{"next_id":1,"alarms":[]}"#;
        assert!(serde_json::from_str::<AlarmBook>(bad).is_ok());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Raise(usize, Priority, f64),
        Clear(usize),
        Ack(u64),
        Silence(u64, i64),
        Tick,
        Restart,
    }

    fn op() -> impl Strategy<Value = Op> {
        let priority = prop_oneof![
            Just(Priority::Low),
            Just(Priority::Medium),
            Just(Priority::High)
        ];
        prop_oneof![
            // Device values have few digits (serde_json without `float_roundtrip` may move the
            // last bit of a full-precision float).
            4 => (0..3usize, priority, 700..950i32)
                .prop_map(|(k, p, v)| Op::Raise(k, p, f64::from(v) / 10.0)),
            2 => (0..3usize).prop_map(Op::Clear),
            2 => (1..12u64).prop_map(Op::Ack),
            1 => (1..12u64, -5..1000i64).prop_map(|(id, s)| Op::Silence(id, s)),
            1 => Just(Op::Tick),
            1 => Just(Op::Restart),
        ]
    }

    proptest! {
        /// No sequence of raises, clears, acknowledgements, pauses, ticks and restarts ever opens
        /// two alarms for one condition, and the book is always exactly what its changes say.
        #[test]
        fn one_open_alarm_per_condition_whatever_happens(
            ops in proptest::collection::vec((op(), 0..120i64), 1..80)
        ) {
            let keys = [spo2_low(), key("bed-1", "threshold:heart_rate:high"), key("bed-2", "news2:band")];
            let mut book = AlarmBook::default();
            let mut now = t(0);
            // What the changes say is open, per condition, and the latest snapshot per alarm.
            let mut open_by_key: BTreeMap<ConditionKey, AlarmId> = BTreeMap::new();
            let mut snapshots: BTreeMap<AlarmId, Alarm> = BTreeMap::new();
            for (op, step) in ops {
                now += TimeDelta::seconds(step);
                let changes = match op {
                    Op::Raise(k, p, v) => book.raise_or_update(&keys[k], trig(p, v), now),
                    Op::Clear(k) => book.condition_cleared(&keys[k], now),
                    Op::Ack(id) => book.acknowledge(AlarmId(id), "n", now).unwrap_or_default(),
                    Op::Silence(id, s) => book
                        .silence(AlarmId(id), "n", now + TimeDelta::seconds(s), now)
                        .unwrap_or_default(),
                    Op::Tick => book.tick(now),
                    Op::Restart => {
                        let json = serde_json::to_string(&book).unwrap();
                        let restored: AlarmBook = serde_json::from_str(&json).unwrap();
                        prop_assert_eq!(&restored, &book);
                        book = restored;
                        Vec::new()
                    }
                };
                for c in &changes {
                    let k = c.alarm.key.clone();
                    match c.event.kind {
                        E::Raised => {
                            prop_assert!(!open_by_key.contains_key(&k), "second alarm for {}", k);
                            open_by_key.insert(k, c.alarm.id);
                        }
                        E::Resolved => {
                            prop_assert_eq!(open_by_key.remove(&k), Some(c.alarm.id));
                        }
                        _ => prop_assert_eq!(open_by_key.get(&k), Some(&c.alarm.id)),
                    }
                    prop_assert_eq!(c.event.alarm, c.alarm.id);
                    snapshots.insert(c.alarm.id, c.alarm.clone());
                }
                // The book agrees with its changes.
                let ids: Vec<(ConditionKey, AlarmId)> = book.open().map(|a| (a.key.clone(), a.id)).collect();
                prop_assert_eq!(ids, open_by_key.clone().into_iter().collect::<Vec<_>>());
                for alarm in book.open() {
                    prop_assert!(alarm.id < book.next_id());
                    prop_assert_ne!(alarm.state, AlarmState::Resolved);
                    // Acknowledged alarms always have their condition; only latched alarms lack it.
                    if !alarm.condition_present {
                        prop_assert_eq!(alarm.state, AlarmState::Active);
                        prop_assert!(alarm.is_latching());
                    }
                    // Rebuilding from the last snapshot restores everything but the live value.
                    let snap = &snapshots[&alarm.id];
                    prop_assert_eq!(
                        &Alarm { value: alarm.value, message: alarm.message.clone(), ..snap.clone() },
                        alarm
                    );
                }
            }
        }
    }
}
