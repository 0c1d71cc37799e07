//! The configured engines with their limits and what they did in the last hour: what the MTA
//! scans with and what the *Security Services* pages show.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::metrics::histogram::Histogram;

use crate::{Clamd, ClamdAddress, Rspamd, ScanError};

/// The anti-spam engine as configured (`[antispam]`).
#[derive(Debug)]
pub struct SpamService {
    pub client: Rspamd,
    /// Where it listens, for the pages.
    pub url: String,
    pub max_scan_bytes: u64,
    /// `on_error = "accept"`: an engine failure lets the message in as unscannable.
    pub accept_on_error: bool,
    pub stats: Stats,
}

/// The anti-virus engine as configured (`[antivirus]`).
#[derive(Debug)]
pub struct VirusService {
    pub client: Clamd,
    pub address: ClamdAddress,
    pub max_scan_bytes: u64,
    pub accept_on_error: bool,
    pub stats: Stats,
}

/// Both engines; either may be absent (not configured).
#[derive(Debug, Default)]
pub struct Engines {
    pub spam: Option<SpamService>,
    pub virus: Option<VirusService>,
}

impl SpamService {
    pub fn new(
        url: &str,
        timeout: Duration,
        max_scan_bytes: u64,
        accept_on_error: bool,
    ) -> Result<SpamService, ScanError> {
        Ok(SpamService {
            client: Rspamd::new(url, timeout)?,
            url: url.to_owned(),
            max_scan_bytes,
            accept_on_error,
            stats: Stats::default(),
        })
    }
}

impl VirusService {
    pub fn new(
        address: ClamdAddress,
        timeout: Duration,
        max_scan_bytes: u64,
        accept_on_error: bool,
    ) -> VirusService {
        VirusService {
            client: Clamd::new(address.clone(), timeout),
            address,
            max_scan_bytes,
            accept_on_error,
            stats: Stats::default(),
        }
    }
}

/// One minute of scans.
#[derive(Debug, Clone, Copy, Default)]
struct Minute {
    /// Minutes since the process started.
    at: u64,
    scans: u64,
    positives: u64,
    errors: u64,
    micros: u64,
}

/// Scans of the last hour, by minute (bounded: 60 entries whatever the mail rate), and since the
/// process started (for `GET /metrics`).
#[derive(Debug)]
pub struct Stats {
    started: Instant,
    minutes: Mutex<VecDeque<Minute>>,
    negatives: AtomicU64,
    positives: AtomicU64,
    errors: AtomicU64,
    /// Seconds per answered scan.
    durations: Histogram,
}

/// Upper bounds of the scan-time histogram, in seconds: a local clamd answers a small message
/// in a few milliseconds; the engines' timeouts are 10–30 s.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            started: Instant::now(),
            minutes: Mutex::new(VecDeque::with_capacity(61)),
            negatives: AtomicU64::new(0),
            positives: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            durations: Histogram::new(DURATION_BUCKETS),
        }
    }
}

/// Scans since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub negatives: u64,
    pub positives: u64,
    pub errors: u64,
}

/// What [`Stats::last_hour`] sums up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HourSummary {
    pub scans: u64,
    pub positives: u64,
    pub errors: u64,
    /// Mean time of the scans that gave an answer, errors left out.
    pub average: Option<Duration>,
}

/// The outcome of one scan, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    Negative,
    Positive,
    Error,
}

impl Stats {
    pub fn record(&self, took: Duration, outcome: Counted) {
        let total = match outcome {
            Counted::Negative => &self.negatives,
            Counted::Positive => &self.positives,
            Counted::Error => &self.errors,
        };
        total.fetch_add(1, Ordering::Relaxed);
        if outcome != Counted::Error {
            self.durations.observe(took.as_secs_f64());
        }
        let at = self.started.elapsed().as_secs() / 60;
        let mut minutes = self.minutes.lock().unwrap_or_else(|p| p.into_inner());
        if minutes.back().is_none_or(|m| m.at != at) {
            minutes.push_back(Minute {
                at,
                ..Minute::default()
            });
        }
        while minutes.front().is_some_and(|m| m.at + 60 <= at) {
            minutes.pop_front();
        }
        if let Some(m) = minutes.back_mut() {
            match outcome {
                Counted::Error => m.errors += 1,
                _ => {
                    m.scans += 1;
                    m.micros += u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
                    if outcome == Counted::Positive {
                        m.positives += 1;
                    }
                }
            }
        }
    }

    /// Every scan since the process started.
    pub fn totals(&self) -> Totals {
        Totals {
            negatives: self.negatives.load(Ordering::Relaxed),
            positives: self.positives.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }

    /// The times of the answered scans since the process started (a handle on the live
    /// histogram, for a metrics registry).
    pub fn durations(&self) -> Histogram {
        self.durations.clone()
    }

    /// The last 60 minutes.
    pub fn last_hour(&self) -> HourSummary {
        let now = self.started.elapsed().as_secs() / 60;
        let minutes = self.minutes.lock().unwrap_or_else(|p| p.into_inner());
        let mut s = HourSummary::default();
        let mut micros = 0u64;
        for m in minutes.iter().filter(|m| m.at + 60 > now) {
            s.scans += m.scans;
            s.positives += m.positives;
            s.errors += m.errors;
            micros = micros.saturating_add(m.micros);
        }
        s.average = micros
            .checked_div(s.scans)
            .map(Duration::from_micros)
            .filter(|_| s.scans > 0);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hour_sums_answers_and_keeps_errors_apart() {
        let s = Stats::default();
        s.record(Duration::from_millis(10), Counted::Negative);
        s.record(Duration::from_millis(30), Counted::Positive);
        s.record(Duration::from_secs(15), Counted::Error);
        assert_eq!(
            s.last_hour(),
            HourSummary {
                scans: 2,
                positives: 1,
                errors: 1,
                average: Some(Duration::from_millis(20)),
            }
        );
        assert_eq!(Stats::default().last_hour().average, None);
        assert_eq!(
            s.totals(),
            Totals {
                negatives: 1,
                positives: 1,
                errors: 1
            }
        );
        // Errors have no answer time: two observations, 40 ms in all.
        let mut r = prometheus_client::registry::Registry::default();
        r.register("scan_duration_seconds", "", s.durations());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
        assert!(text.contains("scan_duration_seconds_count 2"), "{text}");
        assert!(text.contains("scan_duration_seconds_sum 0.04"), "{text}");
        assert!(
            text.contains("scan_duration_seconds_bucket{le=\"0.01\"} 1"),
            "{text}"
        );
    }
}
