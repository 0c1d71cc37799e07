//! How the.tdc.queue handles a failed attempt: Cisco's retry table (SPEC §4), plus expiry.
//!
//! | error | retried | retries |
//! |---|---|---|
//! | SMTP 5xx except 503 and 552 | no | – |
//! | SMTP 4xx, and 503, 552 | yes | 1 |
//! | TLS error | no | – |
//! | network / connection error, temporary DNS error | yes | 1 |
//! | DNS NXDOMAIN | no: hard bounce `5.1.2` | – |

/// What went wrong with one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The intake replied with this code.
    Smtp(u16),
    Tls,
    Network,
    DnsTemporary,
    NxDomain,
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again after the retry delay.
    Retry,
    /// Give up: the copy is removed and counted as failed.
    Fail,
}

/// Retries a journal copy gets after its first attempt.
pub const MAX_RETRIES: u32 = 1;

/// Whether Cisco's table retries this failure (a soft bounce) at all.
pub fn retryable(failure: &Failure) -> bool {
    match failure {
        Failure::Smtp(503 | 552) => true,
        Failure::Smtp(code) => (400..500).contains(code),
        Failure::Tls | Failure::NxDomain => false,
        Failure::Network | Failure::DnsTemporary => true,
    }
}

/// Decides after attempt number `attempts` (1 = the first attempt) failed.
pub fn after_failure(failure: &Failure, attempts: u32) -> Next {
    if retryable(failure) && attempts <= MAX_RETRIES {
        Next::Retry
    } else {
        Next::Fail
    }
}

/// When the retry happens: after the delay, but never after the copy's expiry, so an
/// expired copy is removed on time.
pub fn retry_at(now: i64, created_at: i64, retry_delay_secs: u64, max_age_secs: u64) -> i64 {
    (now + retry_delay_secs as i64).min(created_at + max_age_secs as i64)
}

/// True when a copy has been queued longer than its maximum age.
pub fn expired(now: i64, created_at: i64, max_age_secs: u64) -> bool {
    now - created_at >= max_age_secs as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cisco_table() {
        // (failure, total attempts the intake sees)
        let cases = [
            (Failure::Smtp(451), 2),
            (Failure::Smtp(421), 2),
            (Failure::Smtp(503), 2),
            (Failure::Smtp(552), 2),
            (Failure::Smtp(550), 1),
            (Failure::Smtp(554), 1),
            (Failure::Smtp(501), 1),
            (Failure::Tls, 1),
            (Failure::Network, 2),
            (Failure::DnsTemporary, 2),
            (Failure::NxDomain, 1),
        ];
        for (failure, want) in cases {
            let mut attempts = 1;
            while after_failure(&failure, attempts) == Next::Retry {
                attempts += 1;
            }
            assert_eq!(attempts, want, "{failure:?}");
        }
    }

    #[test]
    fn expiry_bounds_the_retry() {
        assert_eq!(retry_at(100, 90, 10, 120), 110);
        assert_eq!(retry_at(100, 0, 60, 120), 120);
        assert!(expired(120, 0, 120));
        assert!(!expired(119, 0, 120));
    }
}
