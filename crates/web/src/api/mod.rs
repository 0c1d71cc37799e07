//! REST API `/api/v1` (SPEC §6–§7): JSON in and out, HTTP Basic with an appliance account.

mod policies;
mod quarantine;
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
        .route("/tdc", settings::get_handler("tdc"))
        .route(
            "/policies/{direction}",
            get(policies::get_list).post(policies::add),
        )
        .route(
            "/policies/{direction}/{name}",
            get(policies::get_one)
                .put(policies::put_one)
                .delete(policies::delete_one),
        )
        .route("/quarantine", get(quarantine::list))
        .route(
            "/quarantine/{mid}",
            axum::routing::delete(quarantine::delete),
        )
        .route(
            "/quarantine/{mid}/release",
            axum::routing::post(quarantine::release),
        )
        .route("/tophosts", get(status::tophosts))
        .route("/ledger", get(status::ledger))
        .route("/tracking", get(status::tracking))
}

/// `GET /api/v1/health`: no authentication, for load balancers and container health checks.
async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}
