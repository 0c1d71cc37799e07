//! Clients of the scanning engines a mail policy's security services use (SPEC §3a, §7): rspamd
//! over its HTTP scan API for anti-spam, clamd over `INSTREAM` for anti-virus. I/O only: what a
//! verdict means for a message is the policy crate's business.
//!
//! Both speak to daemons of the administrator's, usually on the same host; both bound every
//! exchange with the configured timeout, so a slow or stuck engine turns into an error the
//! caller maps to `451 4.7.1` (or to "unscannable" with `on_error = "accept"`).

pub mod clamd;
mod engines;
pub mod rspamd;

pub use clamd::{Clamd, ClamdAddress, VirusVerdict};
pub use engines::{
    Counted, Engines, HourSummary, SpamService, Stats, Totals as ScanTotals, VirusService,
};
pub use rspamd::{Rspamd, ScanEnvelope, SpamAction, SpamVerdict};

/// Runs `work` within `timeout`; running out of time is [`ScanError::Timeout`].
pub(crate) async fn within<T>(
    engine: &'static str,
    timeout: std::time::Duration,
    work: impl std::future::Future<Output = Result<T, ScanError>>,
) -> Result<T, ScanError> {
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ScanError::Timeout {
            engine,
            secs: timeout.as_secs(),
        })?
}

/// Why an engine gave no verdict.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot connect to {engine} at {address}: {source}")]
    Connect {
        engine: &'static str,
        address: String,
        source: std::io::Error,
    },
    #[error("{engine} did not answer within {secs} s")]
    Timeout { engine: &'static str, secs: u64 },
    #[error("{engine} failed: {message}")]
    Engine {
        engine: &'static str,
        message: String,
    },
    #[error("{engine} answered something unexpected: {answer}")]
    Protocol {
        engine: &'static str,
        answer: String,
    },
}
