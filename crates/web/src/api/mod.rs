//! REST API `/api/v1` (SPEC §6–§7): JSON in and out, HTTP Basic with an appliance account.

mod settings;
mod status;

use axum::Router;
use axum::routing::get;

use crate::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/hat", settings::get_handler("hat"))
        .route("/rat", settings::get_handler("rat"))
        .route("/smtp-routes", settings::get_handler("smtp_routes"))
        .route(
            "/destination-controls",
            settings::get_handler("destination_controls"),
        )
        .route("/bounce-profile", settings::get_handler("bounce_profile"))
        .route("/tophosts", get(status::tophosts))
        .route("/tracking", get(status::tracking))
}

/// `GET /api/v1/health`: no authentication, for load balancers and container health checks.
async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}
