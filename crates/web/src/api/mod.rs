//! REST API `/api/v1` (SPEC §6–§7): JSON in and out, HTTP Basic with an appliance account.

mod policies;
mod quarantine;
mod reports;
mod settings;
mod status;
mod users;

pub(crate) use reports::csv_response;
pub use settings::mask_webhook;
pub use status::host_name;
pub(crate) use status::rfc3339;
pub(crate) use status::track_filter;
pub use status::track_node;
pub use status::{
    alert_json, audit_json, hoststatus_json, ledger_json, status_report, syslog_json, tophost_json,
};

use axum::Router;
use axum::routing::get;

use crate::AppState;

pub(crate) fn router() -> Router<AppState> {
    routes().layer(axum::middleware::from_fn(same_origin_only))
}

/// Browsers keep HTTP Basic credentials and send them with any request to the appliance, also
/// one that a hostile page makes (a form posted to `/api/v1/quarantine/{mid}/release` needs no
/// body). Scripts send neither `Origin` nor `Sec-Fetch-Site`; a browser sends them on every
/// cross-site request that changes something, so such a request is refused.
async fn same_origin_only(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{Method, header};
    use axum::response::IntoResponse;
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let headers = req.headers();
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none");
    let cross_site = !matches!(fetch_site, "none" | "same-origin");
    let foreign_origin = headers.get(header::ORIGIN).is_some_and(|origin| {
        let origin = origin.to_str().unwrap_or_default();
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
        host.is_empty() || !origin_host.eq_ignore_ascii_case(host)
    });
    if changes && (cross_site || foreign_origin) {
        return crate::ApiError::forbidden(
            "cross-site request refused: the API takes changes from scripts and same-origin pages only",
        )
        .into_response();
    }
    next.run(req).await
}

fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/hat", settings::get_handler("hat"))
        .route("/listener-hats", settings::get_handler("listener_hats"))
        .route("/listeners", get(status::listeners))
        .route("/rat", settings::get_handler("rat"))
        .route("/smtp-routes", settings::get_handler("smtp_routes"))
        .route(
            "/destination-controls",
            settings::get_handler("destination_controls"),
        )
        .route("/bounce-profile", settings::get_handler("bounce_profile"))
        .route("/tdc", settings::get_handler("tdc"))
        .route("/alerts", settings::get_handler("alerts"))
        .route("/alerts/test", axum::routing::post(status::alert_test))
        .route("/alert-log", get(status::alert_log))
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
        .route("/status", get(status::status))
        .route("/antispam", get(status::antispam))
        .route("/antivirus", get(status::antivirus))
        .route("/deliverynow", axum::routing::post(status::deliver_now))
        .route("/hoststatus/{host}", get(status::hoststatus))
        .route("/suspenddel", axum::routing::post(status::suspenddel))
        .route("/resumedel", axum::routing::post(status::resumedel))
        .route("/tdc/replay", axum::routing::post(status::replay))
        .route("/trace", axum::routing::post(status::trace))
        .route("/audit", get(status::audit))
        .route("/cluster", get(status::cluster))
        .route("/reports/overview", get(reports::overview))
        .route("/reports/overview.csv", get(reports::overview_csv))
        .route("/users", get(users::list).post(users::add))
        .route(
            "/users/{name}",
            axum::routing::put(users::put).delete(users::delete),
        )
        .route("/openapi.json", get(openapi))
}

/// The OpenAPI description of this API (kept in sync with the routes above by a test).
pub const OPENAPI: &str = include_str!("openapi.json");

/// `GET /api/v1/openapi.json`: no authentication, so tools can discover the API.
async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
}

/// `GET /api/v1/health`: no authentication, for load balancers and container health checks.
async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use tower::ServiceExt;

    /// (method, path) of every route this module declares, read from its source.
    fn routes_in_source() -> BTreeSet<(String, String)> {
        let source = include_str!("mod.rs");
        let body = source.split("#[cfg(test)]").next().unwrap_or_default();
        let mut out = BTreeSet::new();
        for chunk in body.split(".route(").skip(1) {
            let path = chunk.split('"').nth(1).unwrap().to_owned();
            let handler = chunk.split(".route(").next().unwrap();
            // `get_handler(..)` serves GET and PUT of a settings table.
            for (token, methods) in [
                ("get_handler(", &["get", "put"][..]),
                ("get(", &["get"][..]),
                ("post(", &["post"][..]),
                ("put(", &["put"][..]),
                ("delete(", &["delete"][..]),
            ] {
                if handler.contains(token) {
                    for m in methods {
                        out.insert((m.to_string(), path.clone()));
                    }
                }
            }
        }
        out
    }

    fn routes_in_openapi() -> BTreeSet<(String, String)> {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap();
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for m in ["get", "put", "post", "delete"] {
                if item.get(m).is_some() {
                    out.insert((m.to_owned(), path.clone()));
                }
            }
        }
        out
    }

    /// The web state of a fresh appliance on a temporary database.
    async fn fresh_state() -> (tempfile::TempDir, crate::AppState) {
        let dir = tempfile::tempdir().unwrap();
        let store = rampart_store::Store::open(&dir.path().join("r.db"))
            .await
            .unwrap();
        let snapshot = rampart_settings::Settings::default().compile().unwrap();
        let state = crate::AppState::new(
            store,
            Arc::new(arc_swap::ArcSwap::from_pointee(snapshot)),
            crate::WebOptions::default(),
        );
        (dir, state)
    }

    #[test]
    fn openapi_documents_exactly_the_routes() {
        assert_eq!(routes_in_openapi(), routes_in_source());
    }

    #[tokio::test]
    async fn cross_site_changes_are_refused_before_authentication() {
        let (_dir, state) = fresh_state().await;
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], StatusCode);
        let cases: &[Case] = &[
            (
                "POST",
                &[("origin", "http://evil.example"), ("host", "gw:8080")],
                StatusCode::FORBIDDEN,
            ),
            (
                "POST",
                &[("sec-fetch-site", "cross-site")],
                StatusCode::FORBIDDEN,
            ),
            (
                "POST",
                &[("sec-fetch-site", "same-site")],
                StatusCode::FORBIDDEN,
            ),
            (
                "POST",
                &[("origin", "null"), ("host", "gw:8080")],
                StatusCode::FORBIDDEN,
            ),
            // A script, or a page of the appliance itself, gets as far as authentication.
            ("POST", &[], StatusCode::UNAUTHORIZED),
            (
                "POST",
                &[
                    ("origin", "https://GW:8080"),
                    ("host", "gw:8080"),
                    ("sec-fetch-site", "same-origin"),
                ],
                StatusCode::UNAUTHORIZED,
            ),
        ];
        for (method, headers, want) in cases {
            let mut req = Request::builder()
                .method(*method)
                .uri("/api/v1/quarantine/1/release");
            for (k, v) in *headers {
                req = req.header(*k, *v);
            }
            let r = crate::router(state.clone())
                .oneshot(req.body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(r.status(), *want, "{method} {headers:?}");
        }
    }

    #[tokio::test]
    async fn every_documented_operation_is_served() {
        let (_dir, state) = fresh_state().await;
        for (method, path) in routes_in_openapi() {
            let concrete = path
                .replace("{direction}", "incoming")
                .replace("{name}", "DEFAULT")
                .replace("{mid}", "1");
            let req = Request::builder()
                .method(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap())
                .uri(format!("/api/v1{concrete}"))
                .body(Body::empty())
                .unwrap();
            let r = crate::router(state.clone()).oneshot(req).await.unwrap();
            let open = path == "/health" || path == "/openapi.json";
            let expected = if open {
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            };
            assert_eq!(r.status(), expected, "{method} {path}");
        }
    }
}
