//! The simulated ward and the MQTT load generator.
//!
//! - [`ward`]: patients with their own baselines, circadian drift, noise, occasional artifacts and
//!   scripted deteriorations, turned into device messages in Vigil's payload contract.
//! - [`burden`]: the alarm-burden benchmark: the ward for a simulated day through the real decoder
//!   and rules engine, against naive single-threshold alarming.
//! - [`devices`]: simulated devices publishing a ward through a real MQTT client (rumqttc).
//! - [`load`]: a lean load generator that drives any MQTT broker with QoS 0/1 publishes and
//!   measures publish→acknowledgement latency.

pub mod burden;
pub mod devices;
pub mod load;
pub mod ward;
