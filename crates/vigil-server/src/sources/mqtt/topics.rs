//! The device topic tree and who may use which part of it.
//!
//! ```text
//! vigil/v1/devices/{device_id}/obs      device → Vigil   readings (the payload contract)
//! vigil/v1/devices/{device_id}/events   device → Vigil   events: fall, panic, sensor off
//! vigil/v1/gateways/{gateway_id}/ble    gateway → Vigil  relayed Bluetooth LE characteristic values
//! vigil/v1/ingest/{template}            device → Vigil   a vendor's own JSON, read with that template
//! vigil/v1/devices/{device_id}/errors   Vigil → device   why something was refused
//! vigil/v1/devices/{device_id}/cmd      Vigil → device   commands (reminders, configuration)
//! vigil/v1/devices/{device_id}/cmd/ack  device → Vigil   the device's confirmation of a command
//! ```
//! A device may publish only to its own `obs` and `events` topics and subscribe only inside its
//! own subtree.

pub const PREFIX: &str = "vigil/v1/devices/";
pub const GATEWAY_PREFIX: &str = "vigil/v1/gateways/";
pub const INGEST_PREFIX: &str = "vigil/v1/ingest/";

pub fn obs_topic(device: &str) -> String {
    format!("{PREFIX}{device}/obs")
}

pub fn events_topic(device: &str) -> String {
    format!("{PREFIX}{device}/events")
}

pub fn cmd_topic(device: &str) -> String {
    format!("{PREFIX}{device}/cmd")
}

pub fn errors_topic(device: &str) -> String {
    format!("{PREFIX}{device}/errors")
}

/// What a device's publish to `topic` is.
#[derive(Debug, PartialEq, Eq)]
pub enum PublishTarget {
    /// Its own readings topic.
    OwnReadings,
    /// Its own events topic.
    OwnEvents,
    /// Its own BLE relay topic (for a device registered as a gateway).
    OwnGatewayBle,
    /// Its own command confirmation topic.
    OwnCommandAck,
    /// A vendor message for the named mapping template.
    Vendor(String),
    /// Its own subtree, but not a topic a device writes to.
    OwnReadOnly,
    /// Anything else: another device's topic or outside the tree.
    Foreign,
}

/// Whether `topic` lies in some device's or gateway's part of the tree.
pub fn is_device_topic(topic: &str) -> bool {
    topic.starts_with(PREFIX) || topic.starts_with(GATEWAY_PREFIX)
}

pub fn classify_publish(device: &str, topic: &str) -> PublishTarget {
    if let Some(template) = topic.strip_prefix(INGEST_PREFIX)
        && !template.is_empty()
        && !template.contains('/')
    {
        return PublishTarget::Vendor(template.to_owned());
    }
    if topic
        .strip_prefix(GATEWAY_PREFIX)
        .and_then(|rest| rest.strip_prefix(device))
        == Some("/ble")
    {
        return PublishTarget::OwnGatewayBle;
    }
    match topic
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_prefix(device))
        .and_then(|rest| rest.strip_prefix('/'))
    {
        Some("obs") => PublishTarget::OwnReadings,
        Some("events") => PublishTarget::OwnEvents,
        Some("cmd/ack") => PublishTarget::OwnCommandAck,
        Some(_) => PublishTarget::OwnReadOnly,
        None => PublishTarget::Foreign,
    }
}

/// A subscription is allowed when every topic it can match lies in the device's own subtree.
pub fn subscription_allowed(device: &str, filter: &str) -> bool {
    let Some(rest) = filter
        .strip_prefix(PREFIX)
        .and_then(|r| r.strip_prefix(device))
    else {
        return false;
    };
    match rest.strip_prefix('/') {
        Some(tail) => valid_filter(tail),
        None => false,
    }
}

/// MQTT topic-filter syntax: `#` only as the whole last level, `+` only as a whole level.
pub fn valid_filter(filter: &str) -> bool {
    if filter.is_empty() {
        return false;
    }
    let levels: Vec<&str> = filter.split('/').collect();
    levels.iter().enumerate().all(|(i, level)| match *level {
        "#" => i == levels.len() - 1,
        "+" => true,
        l => !l.contains('#') && !l.contains('+'),
    })
}

/// Whether `topic` matches `filter` (MQTT 3.1.1 §4.7).
pub fn matches(filter: &str, topic: &str) -> bool {
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => continue,
            (Some(a), Some(b)) if a == b => continue,
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_publishes_only_to_its_own_obs_topic() {
        assert_eq!(
            classify_publish("d1", "vigil/v1/devices/d1/obs"),
            PublishTarget::OwnReadings
        );
        assert_eq!(
            classify_publish("d1", "vigil/v1/devices/d1/errors"),
            PublishTarget::OwnReadOnly
        );
        assert_eq!(
            classify_publish("d1", "vigil/v1/devices/d2/obs"),
            PublishTarget::Foreign
        );
        // A device whose id is a prefix of another's must not reach it.
        assert_eq!(
            classify_publish("d1", "vigil/v1/devices/d10/obs"),
            PublishTarget::Foreign
        );
        assert_eq!(
            classify_publish("d1", "vigil/v1/devices/d1"),
            PublishTarget::Foreign
        );
        assert_eq!(
            classify_publish("d1", "$SYS/broker"),
            PublishTarget::Foreign
        );
    }

    #[test]
    fn subscriptions_stay_inside_the_own_subtree() {
        assert!(subscription_allowed("d1", "vigil/v1/devices/d1/errors"));
        assert!(subscription_allowed("d1", "vigil/v1/devices/d1/#"));
        assert!(subscription_allowed("d1", "vigil/v1/devices/d1/+"));
        assert!(!subscription_allowed("d1", "vigil/v1/devices/+/errors"));
        assert!(!subscription_allowed("d1", "vigil/v1/devices/#"));
        assert!(!subscription_allowed("d1", "#"));
        assert!(!subscription_allowed("d1", "vigil/v1/devices/d10/errors"));
        assert!(!subscription_allowed("d1", "vigil/v1/devices/d1/a#"));
    }

    #[test]
    fn filter_matching() {
        assert!(matches("a/+/c", "a/b/c"));
        assert!(matches("a/#", "a/b/c"));
        assert!(matches("a/#", "a"));
        assert!(!matches("a/+", "a/b/c"));
        assert!(!matches("a/b", "a/b/c"));
    }
}
