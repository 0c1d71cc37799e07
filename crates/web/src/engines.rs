//! What the *Security Services > Anti-Spam / Anti-Virus* pages and `GET /api/v1/antispam`,
//! `/antivirus` show: the engine, whether it answers now, its version and the last hour.

use std::time::Duration;

use rampart_scan::HourSummary;
use serde::Serialize;

use crate::AppState;

/// A page must not hang on an engine that does not answer.
const CHECK_WAIT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Serialize)]
pub(crate) struct EngineStatus {
    /// `rspamd` or `clamav`; `null` when not configured.
    pub engine: Option<&'static str>,
    pub address: Option<String>,
    pub reachable: bool,
    /// The engine's version (for clamd with the signature database version and date).
    pub version: Option<String>,
    /// Why it is not reachable.
    pub error: Option<String>,
    pub max_scan_bytes: Option<u64>,
    pub on_error: Option<&'static str>,
    pub last_hour: LastHour,
}

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct LastHour {
    pub scans: u64,
    pub positives: u64,
    pub errors: u64,
    /// Mean scan time in milliseconds, `null` without scans.
    pub average_ms: Option<f64>,
}

impl From<HourSummary> for LastHour {
    fn from(h: HourSummary) -> LastHour {
        LastHour {
            scans: h.scans,
            positives: h.positives,
            errors: h.errors,
            average_ms: h
                .average
                .map(|d| (d.as_secs_f64() * 10_000.0).round() / 10.0),
        }
    }
}

fn not_configured() -> EngineStatus {
    EngineStatus {
        engine: None,
        address: None,
        reachable: false,
        version: None,
        error: None,
        max_scan_bytes: None,
        on_error: None,
        last_hour: LastHour::default(),
    }
}

fn on_error(accept: bool) -> &'static str {
    if accept { "accept" } else { "tempfail" }
}

/// Asks an engine for its version now, within [`CHECK_WAIT`]: the version, or why there is none.
async fn version_now(
    ask: impl std::future::Future<Output = Result<String, rampart_scan::ScanError>>,
) -> (Option<String>, Option<String>) {
    match tokio::time::timeout(CHECK_WAIT, ask).await {
        Ok(Ok(v)) => (Some(v), None),
        Ok(Err(e)) => (None, Some(e.to_string())),
        Err(_) => (
            None,
            Some(format!("no answer within {} s", CHECK_WAIT.as_secs())),
        ),
    }
}

/// Anti-Spam, checked now.
pub(crate) async fn antispam(state: &AppState) -> EngineStatus {
    let Some(spam) = &state.engines.spam else {
        return not_configured();
    };
    let (version, error) = version_now(spam.client.ping()).await;
    EngineStatus {
        engine: Some("rspamd"),
        address: Some(spam.url.clone()),
        reachable: error.is_none(),
        version,
        error,
        max_scan_bytes: Some(spam.max_scan_bytes),
        on_error: Some(on_error(spam.accept_on_error)),
        last_hour: spam.stats.last_hour().into(),
    }
}

/// Anti-Virus, checked now.
pub(crate) async fn antivirus(state: &AppState) -> EngineStatus {
    let Some(virus) = &state.engines.virus else {
        return not_configured();
    };
    let (version, error) = version_now(virus.client.version()).await;
    EngineStatus {
        engine: Some("clamav"),
        address: Some(virus.address.to_string()),
        reachable: error.is_none(),
        version,
        error,
        max_scan_bytes: Some(virus.max_scan_bytes),
        on_error: Some(on_error(virus.accept_on_error)),
        last_hour: virus.stats.last_hour().into(),
    }
}
