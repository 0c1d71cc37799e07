//! The policy quarantine: list, release (deliver after all), delete.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::{ApiError, AppState};

pub(crate) async fn list(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let items = state.store.quarantine().await?;
    Ok(Json(Value::Array(
        items
            .into_iter()
            .map(|q| {
                json!({
                    "mid": q.mid.0, "sender": q.sender, "recipients": q.recipients, "subject": q.subject,
                    "policy": q.policy, "findings": q.findings,
                    "received_at": chrono::DateTime::from_timestamp(q.received_at, 0).map(|t| t.to_rfc3339()),
                })
            })
            .collect(),
    )))
}

fn mid(s: &str) -> Result<rampart_store::Mid, ApiError> {
    s.parse::<u64>()
        .map(rampart_store::Mid)
        .map_err(|_| ApiError::bad_request(format!("MID must be a number, got {s:?}")))
}

pub(crate) async fn release(
    State(state): State<AppState>,
    caller: Caller,
    Path(m): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_operator()?;
    let mid = mid(&m)?;
    let n = state.store.quarantine_release(mid, &caller.name).await?;
    if n == 0 {
        return Err(ApiError::not_found(format!(
            "MID {} is not in the quarantine",
            mid.0
        )));
    }
    Ok(Json(json!({"mid": mid.0, "released_recipients": n})))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(m): Path<String>,
) -> Result<axum::http::StatusCode, ApiError> {
    caller.require_operator()?;
    let mid = mid(&m)?;
    let n = state.store.quarantine_delete(mid, &caller.name).await?;
    if n == 0 {
        return Err(ApiError::not_found(format!(
            "MID {} is not in the quarantine",
            mid.0
        )));
    }
    Ok(axum::http::StatusCode::NO_CONTENT)
}
