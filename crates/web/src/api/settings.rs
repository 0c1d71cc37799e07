//! Whole-table settings resources: `hat`, `rat` (and the tables later features add).
//!
//! A PUT replaces the table, validated with every other table as one snapshot; on success it is
//! stored in one transaction and swapped into the running appliance at once.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use serde_json::Value;

use crate::auth::Caller;
use crate::{ApiError, AppState};

fn get_table(state: &AppState, table: &str) -> Result<Json<Value>, ApiError> {
    let snapshot = state.settings.load();
    snapshot
        .settings()
        .table_json(table)
        .map(Json)
        .ok_or_else(|| ApiError::internal(format!("cannot serialise {table}")))
}

async fn put_table(
    state: &AppState,
    caller: &Caller,
    table: &str,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = json_body(body)?;
    let what = format!("PUT /api/v1/{}", table.replace('_', "-"));
    edit_settings(state, caller, what, |settings| {
        settings
            .set_table_json(table, &body)
            .map_err(|e| ApiError::bad_request(e.0.join("; ")))
    })
    .await?;
    tracing::info!(user = %caller.name, table, "settings table replaced through the API");
    get_table(state, table)
}

/// The JSON body, or a 400 that says what is wrong with it.
pub(crate) fn json_body(body: Result<Json<Value>, JsonRejection>) -> Result<Value, ApiError> {
    body.map(|Json(v)| v)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {}", e.body_text())))
}

/// Applies `change` to a copy of the settings, validates the whole result, stores it in one
/// transaction with its audit record (`what`, by the API user) and swaps it into the running
/// appliance. Admins only; edits are serialised.
pub(crate) async fn edit_settings<T>(
    state: &AppState,
    caller: &Caller,
    what: String,
    change: impl FnOnce(&mut rampart_settings::Settings) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    caller.require_admin()?;
    let _guard = state.settings_edit.lock().await;
    let mut settings = state.settings.load().settings().clone();
    let out = change(&mut settings)?;
    let snapshot = settings
        .clone()
        .compile()
        .map_err(|e| ApiError::bad_request(e.0.join("; ")))?;
    let audit = rampart_store::Audit::new(&caller.name, "api", what);
    state.store.save_settings(&settings, &audit).await?;
    state.settings.store(Arc::new(snapshot));
    Ok(out)
}

/// `GET /api/v1/{resource}` for a settings table.
pub(crate) fn get_handler(table: &'static str) -> axum::routing::MethodRouter<AppState> {
    axum::routing::get(move |State(state): State<AppState>, _caller: Caller| async move { get_table(&state, table) })
        .put(move |State(state): State<AppState>, caller: Caller, body: Result<Json<Value>, JsonRejection>| async move {
            put_table(&state, &caller, table, body).await
        })
}
