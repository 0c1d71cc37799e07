//! REST API `/api/v1` (SPEC §6–§7): JSON in and out, HTTP Basic with an appliance account.

mod settings;

use axum::Router;
use axum::routing::get;

use crate::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/hat", get(settings::get_hat).put(settings::put_hat))
        .route("/rat", get(settings::get_rat).put(settings::put_rat))
}

/// `GET /api/v1/health`: no authentication, for load balancers and container health checks.
async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}
