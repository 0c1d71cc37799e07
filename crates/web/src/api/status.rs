//! Read-only resources: `tophosts` and `tracking`.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::{ApiError, AppState};

/// `GET /api/v1/tophosts`: the AsyncOS figures per recipient host.
pub(crate) async fn tophosts(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let rows = state.store.tophosts().await?;
    Ok(Json(Value::Array(
        rows.into_iter()
            .map(|r| {
                json!({
                    "host": r.host,
                    "active_recipients": r.active_recipients,
                    "connections_out": r.connections_out,
                    "delivered_recipients": r.delivered,
                    "soft_bounced": r.soft_bounced,
                    "hard_bounced": r.hard_bounced,
                    "down": r.down,
                })
            })
            .collect(),
    )))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrackingQuery {
    mid: Option<String>,
    sender: Option<String>,
    recipient: Option<String>,
    subject: Option<String>,
    /// Most messages returned (newest first); default 100.
    limit: Option<u32>,
}

/// `GET /api/v1/tracking?mid=N` or `?sender=&recipient=&subject=` (substring matches).
pub(crate) async fn tracking(
    State(state): State<AppState>,
    _caller: Caller,
    query: Result<Query<TrackingQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) =
        query.map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text())))?;
    let mid = match q.mid.as_deref() {
        None | Some("") => None,
        Some(m) => Some(
            m.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("mid must be a number, got {m:?}")))?,
        ),
    };
    let filter = rampart_store::TrackFilter {
        mid: mid.map(rampart_store::Mid),
        sender: q.sender.filter(|s| !s.is_empty()),
        recipient: q.recipient.filter(|s| !s.is_empty()),
        subject: q.subject.filter(|s| !s.is_empty()),
        since: None,
        until: None,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
    };
    let found = state.store.track(&filter).await?;
    Ok(Json(Value::Array(
        found
            .into_iter()
            .map(|t| {
                json!({
                    "mid": t.mid.0,
                    "sender": t.sender,
                    "recipients": t.recipients,
                    "subject": t.subject,
                    "message_id": t.message_id,
                    "received_at": rfc3339(t.received_at * 1000),
                    "events": t.events.into_iter().map(|e| json!({"time": rfc3339(e.at), "text": e.text})).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )))
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LedgerQuery {
    /// Seconds back from now (default 3600).
    since: Option<i64>,
    state: Option<String>,
    limit: Option<u32>,
}

/// `GET /api/v1/ledger?since=SECONDS&state=queued|delivered|failed|expired`: the fate of every
/// journal copy — "which clean messages of the last hour never reached Threat Defense?".
pub(crate) async fn ledger(
    State(state): State<AppState>,
    _caller: Caller,
    query: Result<Query<LedgerQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) =
        query.map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text())))?;
    if let Some(s) = q.state.as_deref()
        && !matches!(s, "queued" | "delivered" | "failed" | "expired")
    {
        return Err(ApiError::bad_request(format!(
            "state must be queued, delivered, failed or expired, got {s:?}"
        )));
    }
    let since = q.since.unwrap_or(3600);
    if since < 0 {
        return Err(ApiError::bad_request(
            "since is a number of seconds back from now and cannot be negative",
        ));
    }
    let entries = state
        .store
        .ledger(
            rampart_store::unix_now() - since,
            q.state.as_deref(),
            q.limit.unwrap_or(1000),
        )
        .await?;
    Ok(Json(Value::Array(
        entries.into_iter().map(ledger_json).collect(),
    )))
}

pub fn ledger_json(e: rampart_store::LedgerEntry) -> Value {
    json!({
        "mid": e.mid.0, "intake_address": e.intake, "state": e.state, "attempts": e.attempts,
        "last_reply": e.last_reply, "queued_at": rfc3339(e.queued_at * 1000),
        "done_at": e.done_at.map(|t| rfc3339(t * 1000)), "sender": e.sender, "subject": e.subject,
        "message_id": e.message_id,
    })
}
