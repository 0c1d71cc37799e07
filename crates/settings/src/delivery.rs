//! Delivery settings: destination controls (*Network > Destination Controls*) and the bounce
//! profile (*Network > Bounce Profiles*), with AsyncOS defaults.

use serde::{Deserialize, Serialize};

use crate::Problem;

/// TLS toward a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsPolicy {
    /// Never STARTTLS.
    Off,
    /// STARTTLS when offered; deliver in plain text when it is not offered or fails.
    Preferred,
    /// STARTTLS or no delivery.
    Required,
}

/// Limits and TLS for one destination domain (or the default, `domain = "default"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationControl {
    /// `default`, `example.com`, `.example.com`.
    pub domain: String,
    /// Most simultaneous connections to the destination.
    #[serde(default = "default_connections")]
    pub max_connections: u32,
    /// Most messages sent over one connection before it is closed.
    #[serde(default = "default_messages")]
    pub max_messages_per_connection: u32,
    #[serde(default = "default_tls")]
    pub tls: TlsPolicy,
    /// Verify the destination's certificate (webpki roots) when using TLS.
    #[serde(default)]
    pub verify_tls: bool,
}

fn default_connections() -> u32 {
    20
}
fn default_messages() -> u32 {
    50
}
fn default_tls() -> TlsPolicy {
    TlsPolicy::Preferred
}

impl DestinationControl {
    pub fn default_entry() -> DestinationControl {
        DestinationControl {
            domain: "default".into(),
            max_connections: default_connections(),
            max_messages_per_connection: default_messages(),
            tls: default_tls(),
            verify_tls: false,
        }
    }
}

/// When and how often a soft-bounced delivery is retried, and when it gives up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BounceProfile {
    /// Retries before a soft bounce becomes a hard bounce.
    #[serde(default = "d_retries")]
    pub max_retries: u32,
    /// Seconds a message may stay in the queue before it expires (hard bounce).
    #[serde(default = "d_queue")]
    pub max_queue_secs: u64,
    /// Seconds before the first retry; each later wait doubles.
    #[serde(default = "d_initial")]
    pub initial_retry_secs: u64,
    /// Longest wait between retries.
    #[serde(default = "d_max_retry")]
    pub max_retry_secs: u64,
    /// Send a delivery status notification (DSN) to the sender on a hard bounce.
    #[serde(default = "d_true")]
    pub send_dsn: bool,
}

fn d_retries() -> u32 {
    100
}
fn d_queue() -> u64 {
    259_200
}
fn d_initial() -> u64 {
    60
}
fn d_max_retry() -> u64 {
    3600
}
fn d_true() -> bool {
    true
}

impl Default for BounceProfile {
    fn default() -> BounceProfile {
        BounceProfile {
            max_retries: d_retries(),
            max_queue_secs: d_queue(),
            initial_retry_secs: d_initial(),
            max_retry_secs: d_max_retry(),
            send_dsn: true,
        }
    }
}

impl BounceProfile {
    /// Seconds to wait before retry number `attempt` (1 = first retry), before jitter.
    pub fn backoff_secs(&self, attempt: u32) -> u64 {
        let shift = attempt.saturating_sub(1).min(32);
        self.initial_retry_secs
            .saturating_mul(1u64 << shift)
            .min(self.max_retry_secs)
            .max(1)
    }
}

#[derive(Debug)]
pub(crate) struct CompiledControl {
    pub(crate) pattern: crate::domains::Pattern,
    pub(crate) control: DestinationControl,
}

pub(crate) fn compile_controls(
    controls: &[DestinationControl],
    errors: &mut Vec<Problem>,
) -> (DestinationControl, Vec<CompiledControl>) {
    let mut default = DestinationControl::default_entry();
    let mut out = Vec::new();
    for (i, c) in controls.iter().enumerate() {
        if c.max_connections == 0 || c.max_connections > 1000 {
            errors.push(Problem::new(
                format!("destination_controls[{i}] ({})", c.domain),
                "max_connections must be 1-1000",
            ));
        }
        if c.max_messages_per_connection == 0 {
            errors.push(Problem::new(
                format!("destination_controls[{i}] ({})", c.domain),
                "max_messages_per_connection must be at least 1",
            ));
        }
        if controls
            .iter()
            .take(i)
            .any(|o| o.domain.trim().eq_ignore_ascii_case(c.domain.trim()))
        {
            errors.push(Problem::new(
                format!("destination_controls[{i}]"),
                format!("domain {:?} appears twice", c.domain),
            ));
        }
        if c.domain.trim().eq_ignore_ascii_case("default") {
            default = c.clone();
            continue;
        }
        match crate::domains::Pattern::parse(&c.domain) {
            Some(crate::domains::Pattern::All) | None => errors.push(Problem::new(
                format!("destination_controls[{i}]"),
                format!(
                    "domain {:?} is not a domain, a .domain or default",
                    c.domain
                ),
            )),
            Some(pattern) => out.push(CompiledControl {
                pattern,
                control: c.clone(),
            }),
        }
    }
    (default, out)
}

pub(crate) fn validate_profile(p: &BounceProfile, errors: &mut Vec<Problem>) {
    if p.initial_retry_secs == 0 {
        errors.push(Problem::new(
            "bounce_profile",
            "initial_retry_secs must be at least 1",
        ));
    }
    if p.max_retry_secs < p.initial_retry_secs {
        errors.push(Problem::new(
            "bounce_profile",
            "max_retry_secs must not be below initial_retry_secs",
        ));
    }
    if p.max_queue_secs == 0 {
        errors.push(Problem::new(
            "bounce_profile",
            "max_queue_secs must be at least 1",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = BounceProfile::default();
        assert_eq!(
            [1, 2, 3, 6, 7, 50].map(|a| p.backoff_secs(a)),
            [60, 120, 240, 1920, 3600, 3600]
        );
    }
}
