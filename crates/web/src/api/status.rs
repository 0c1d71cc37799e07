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
