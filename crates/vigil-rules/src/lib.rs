//! Surveillance as pure state machines: the NEWS2 early-warning score, threshold, trend and
//! technical alarm conditions, and the alarm lifecycle. No I/O and no clock of its own: time comes
//! in as a value, so every rule is tested without sleeping and replays identically after a restart.

pub mod news2;
