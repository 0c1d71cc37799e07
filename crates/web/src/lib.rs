//! The web side of the appliance: the REST API under `/api/v1` (and, as it lands, the admin UI).
//!
//! Domain logic stays in the other crates; handlers here translate between HTTP and them. All API
//! errors are JSON `{"error": "..."}` with a 4xx status that says what is wrong; a 500 means a
//! fault of ours, never of the client's input.

pub mod api;
pub mod auth;
mod error;

use std::sync::Arc;

use axum::Router;
use rampart_settings::SharedSettings;
use rampart_store::Store;
use tokio::sync::Mutex;

pub use error::ApiError;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub settings: SharedSettings,
    /// Serialises settings edits, so two concurrent changes cannot overwrite each other.
    pub(crate) settings_edit: Arc<Mutex<()>>,
    pub(crate) auth: Arc<auth::Cache>,
}

impl AppState {
    pub fn new(store: Store, settings: SharedSettings) -> AppState {
        AppState {
            store,
            settings,
            settings_edit: Arc::default(),
            auth: Arc::default(),
        }
    }
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    use axum::http::{HeaderValue, header};
    use tower_http::set_header::SetResponseHeaderLayer;
    Router::new()
        .nest("/api/v1", api::router())
        .fallback(|uri: axum::http::Uri| async move {
            ApiError::not_found(format!("no such resource: {}", uri.path()))
        })
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"),
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            4 * 1024 * 1024,
        ))
        .with_state(state)
}
