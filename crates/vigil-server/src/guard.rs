//! What every source consults before it takes a message: the rate limits (per client address on
//! HTTP, per device on HTTP and MQTT) and where intrusion signals go. One [`Guard`] per server,
//! carried by the pipeline handle ([`crate::pipeline::Ingest::guard`]) so every source has it.
//!
//! Limits are token buckets (GCRA, the `governor` crate): `burst` messages at once, refilled at
//! `requests` per `per`. Defaults and their reasons are in `docs/defence.md`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use vigil_model::DeviceId;

use crate::intrusion::{Intrusion, IntrusionConfig, SignalKind, Subject};

/// A token bucket: `burst` at once, refilled at `requests` per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: NonZeroU32,
    pub per: Duration,
    pub burst: NonZeroU32,
}

impl RateLimit {
    /// `requests` per second with a burst of `burst`; `None` if either is 0 (no limit).
    pub fn per_second(requests: u32, burst: u32) -> Option<RateLimit> {
        Some(RateLimit {
            requests: NonZeroU32::new(requests)?,
            per: Duration::from_secs(1),
            burst: NonZeroU32::new(burst)?,
        })
    }

    fn quota(&self) -> Option<Quota> {
        let cell = self.per.checked_div(self.requests.get())?;
        Some(Quota::with_period(cell)?.allow_burst(self.burst))
    }
}

/// Rate limits and intrusion thresholds (`[defence]` in the configuration file).
#[derive(Debug, Clone, PartialEq)]
pub struct DefenceConfig {
    /// Per remote address, every HTTP request except health probes; `None`: unlimited.
    pub http_per_client: Option<RateLimit>,
    /// Per device, its HTTP ingest requests (after it signed in).
    pub http_per_device: Option<RateLimit>,
    /// Per device, its MQTT publishes (all its connections together). Over it, the connection
    /// stops reading its socket until a token is free (backpressure; nothing is dropped).
    pub mqtt_per_device: Option<RateLimit>,
    /// Origins allowed cross-origin access to the HTTP API (exact, e.g. `https://ward.example.org`);
    /// empty: none.
    pub cors_origins: Vec<String>,
    pub intrusion: IntrusionConfig,
}

impl Default for DefenceConfig {
    fn default() -> Self {
        DefenceConfig {
            http_per_client: RateLimit::per_second(100, 200),
            http_per_device: RateLimit::per_second(50, 100),
            mqtt_per_device: RateLimit::per_second(20_000, 20_000),
            cors_origins: Vec::new(),
            intrusion: IntrusionConfig::default(),
        }
    }
}

/// The server's rate limiters and its intrusion handle. Cheap to clone.
#[derive(Clone)]
pub struct Guard {
    limiters: Arc<Limiters>,
    intrusion: Intrusion,
}

struct Limiters {
    http_client: Option<DefaultKeyedRateLimiter<IpAddr>>,
    http_device: Option<DefaultKeyedRateLimiter<DeviceId>>,
    mqtt_device: Option<DefaultKeyedRateLimiter<DeviceId>>,
}

fn keyed<K: std::hash::Hash + Eq + Clone>(
    limit: &Option<RateLimit>,
) -> Option<DefaultKeyedRateLimiter<K>> {
    limit
        .as_ref()
        .and_then(RateLimit::quota)
        .map(RateLimiter::keyed)
}

/// `Err(wait)` when over the limit.
fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &Option<DefaultKeyedRateLimiter<K>>,
    key: &K,
) -> Result<(), Duration> {
    match limiter {
        Some(l) => l
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now())),
        None => Ok(()),
    }
}

impl Guard {
    pub fn new(config: &DefenceConfig, intrusion: Intrusion) -> Guard {
        Guard {
            limiters: Arc::new(Limiters {
                http_client: keyed(&config.http_per_client),
                http_device: keyed(&config.http_per_device),
                mqtt_device: keyed(&config.mqtt_per_device),
            }),
            intrusion,
        }
    }

    /// No limits; intrusion signals go nowhere (pipelines built by hand in tests and tools).
    pub fn disabled() -> Guard {
        Guard::new(
            &DefenceConfig {
                http_per_client: None,
                http_per_device: None,
                mqtt_per_device: None,
                ..DefenceConfig::default()
            },
            Intrusion::disabled(),
        )
    }

    pub fn intrusion(&self) -> &Intrusion {
        &self.intrusion
    }

    pub fn check_http_client(&self, peer: IpAddr) -> Result<(), Duration> {
        check(&self.limiters.http_client, &peer)
    }

    /// A device's HTTP request; over the limit counts as a flood signal.
    pub fn check_http_device(&self, device: &DeviceId) -> Result<(), Duration> {
        check(&self.limiters.http_device, device).inspect_err(|_| {
            self.intrusion
                .signal(SignalKind::MessageFlood, Subject::Device(device.clone()), 1);
        })
    }

    /// A device's MQTT publish; over the limit counts as a flood signal. The caller waits the
    /// returned time before it takes the publish (and reads nothing more meanwhile).
    pub fn check_mqtt_device(&self, device: &DeviceId) -> Result<(), Duration> {
        check(&self.limiters.mqtt_device, device).inspect_err(|_| {
            self.intrusion
                .signal(SignalKind::MessageFlood, Subject::Device(device.clone()), 1);
        })
    }

    /// Forgets buckets that are full again (bounded memory over many clients); call periodically.
    pub fn housekeeping(&self) {
        if let Some(l) = &self.limiters.http_client {
            l.retain_recent();
        }
        if let Some(l) = &self.limiters.http_device {
            l.retain_recent();
        }
        if let Some(l) = &self.limiters.mqtt_device {
            l.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_lets_the_burst_through_then_says_how_long_to_wait() {
        let config = DefenceConfig {
            http_per_client: Some(RateLimit {
                requests: NonZeroU32::new(1).unwrap(),
                per: Duration::from_secs(3600),
                burst: NonZeroU32::new(3).unwrap(),
            }),
            ..DefenceConfig::default()
        };
        let guard = Guard::new(&config, Intrusion::disabled());
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        for _ in 0..3 {
            assert!(guard.check_http_client(a).is_ok());
        }
        let wait = guard.check_http_client(a).unwrap_err();
        assert!(wait > Duration::from_secs(3000) && wait <= Duration::from_secs(3600));
        assert!(
            guard.check_http_client(b).is_ok(),
            "each address has its own bucket"
        );
    }

    #[test]
    fn zero_means_no_limit() {
        assert_eq!(RateLimit::per_second(0, 10), None);
        assert_eq!(RateLimit::per_second(10, 0), None);
        let guard = Guard::disabled();
        let d = DeviceId::new("mon-1").unwrap();
        for _ in 0..100_000 {
            assert!(guard.check_mqtt_device(&d).is_ok());
        }
    }
}
