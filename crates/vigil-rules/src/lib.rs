//! Surveillance as pure state machines: the NEWS2 early-warning score, threshold, trend and
//! technical alarm conditions, and the alarm lifecycle. No I/O and no clock of its own: time comes
//! in as a value, so every rule is tested without sleeping and replays identically after a restart.
//!
//! The rule modules ([`threshold`], [`technical`], [`trend`]) decide whether an alarm *condition*
//! is present and report [`alarm::ConditionChange`]s; the [`alarm::AlarmBook`] turns those into
//! alarms and carries them through their lifecycle.

pub mod alarm;
pub mod cohort;
pub mod news2;
pub mod surveillance;
pub mod technical;
pub mod threshold;
pub mod trend;
