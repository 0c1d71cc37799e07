//! The web side of the appliance: the admin UI (server-rendered Askama pages, menus as in
//! AsyncOS) and the REST API under `/api/v1`.
//!
//! Domain logic stays in the other crates; handlers here translate between HTTP and them. All API
//! errors are JSON `{"error": "..."}` with a 4xx status that says what is wrong; a 500 means a
//! fault of ours, never of the client's input.

pub mod api;
pub mod auth;
pub mod cluster;
mod engines;
mod error;
mod metrics;
pub mod reports;
pub mod server;
mod ui;

use std::sync::Arc;

use axum::Router;
use rampart_settings::SharedSettings;
use rampart_store::Store;

pub use error::ApiError;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub settings: SharedSettings,
    /// The one way settings change: API edits, staging and Commit Changes.
    pub(crate) changes: rampart_changes::Changes,
    /// The login throttle, verification slots and remembered logins (API and UI alike).
    pub(crate) auth: Arc<auth::Guard>,
    pub(crate) options: Arc<WebOptions>,
    /// When the appliance started, for *System Status*.
    pub(crate) started: std::time::Instant,
    /// The scanning engines, for the *Security Services* pages and the policy columns.
    pub(crate) engines: Arc<rampart_scan::Engines>,
    /// Trace (*System Administration > Trace*), when an MTA runs beside the web UI.
    pub(crate) tracer: Option<rampart_mta::Tracer>,
    /// The syslog push of mail_logs, when one is configured.
    pub(crate) syslog: Option<Arc<rampart_maillog::Syslog>>,
    /// The alert sender, for *Send Test Alert*.
    pub(crate) alerts: Option<Arc<rampart_alerts::Alerts>>,
}

/// How the web UI behaves; from the `[web]` section of the bootstrap configuration.
#[derive(Debug, Clone)]
pub struct WebOptions {
    /// The UI is served over HTTPS: session cookies get `Secure`.
    pub https: bool,
    /// Seconds a session may stay idle.
    pub session_idle_secs: i64,
    /// Failed logins per (account, client address) before that pair is refused; a client
    /// address is refused after four times as many over all accounts.
    pub max_failed_logins: u32,
    /// How long logins stay refused after that.
    pub lockout: std::time::Duration,
    /// The appliance's hostname, shown in the header.
    pub hostname: String,
    /// The AsyncOS mail log the *Mail Logs* page shows (`<data_dir>/logs/mail_logs`).
    pub mail_log: Option<std::path::PathBuf>,
    /// How the mail log is kept, for *Log Subscriptions*.
    pub logs: LogOptions,
    /// `retention.message_body_hours`: how long a message can be replayed, for the TDC page.
    pub message_body_hours: u64,
    /// The SMTP listeners, the main one first (empty in tests that run no MTA).
    pub listeners: Vec<ListenerInfo>,
}

/// The `[logs]` settings *Log Subscriptions* shows.
#[derive(Debug, Clone)]
pub struct LogOptions {
    pub retain_files: u32,
    pub max_file_bytes: u64,
    pub syslog_facility: String,
    pub syslog_framing: &'static str,
}

impl Default for LogOptions {
    fn default() -> LogOptions {
        LogOptions {
            retain_files: 10,
            max_file_bytes: 104_857_600,
            syslog_facility: "mail".into(),
            syslog_framing: "newline",
        }
    }
}

/// An SMTP listener, as the HAT page and `GET /api/v1/listeners` show it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerInfo {
    /// The interface name (`smtp.interface` for the main listener, a `[[listener]]`'s name).
    pub name: String,
    pub listen: Vec<String>,
    /// `[smtp]`'s listener, whose HAT is the `hat` table.
    pub main: bool,
}

impl Default for WebOptions {
    fn default() -> WebOptions {
        WebOptions {
            listeners: Vec::new(),
            https: false,
            session_idle_secs: 30 * 60,
            max_failed_logins: 5,
            lockout: std::time::Duration::from_secs(5 * 60),
            hostname: "rampart.localdomain".into(),
            mail_log: None,
            logs: LogOptions::default(),
            message_body_hours: 24,
        }
    }
}

impl AppState {
    pub fn new(store: Store, settings: SharedSettings, options: WebOptions) -> AppState {
        // The dummy hash is made now, so the first login for an unknown name does not take
        // twice as long as the others (which would tell that the name is unknown).
        auth::warm_up();
        AppState {
            changes: rampart_changes::Changes::new(store.clone(), Some(settings.clone())),
            store,
            settings,
            auth: Arc::new(auth::Guard::new(auth::Options {
                max_failed_logins: options.max_failed_logins,
                lockout: options.lockout,
            })),
            options: Arc::new(options),
            started: std::time::Instant::now(),
            alerts: None,
            engines: Arc::default(),
            tracer: None,
            syslog: None,
        }
    }

    /// The engines the MTA scans with (the pages show them; none by default).
    pub fn with_engines(mut self, engines: Arc<rampart_scan::Engines>) -> AppState {
        self.engines = engines;
        self
    }

    /// The syslog push whose counters *System Status* and *Log Subscriptions* show.
    pub fn with_syslog(mut self, syslog: Option<Arc<rampart_maillog::Syslog>>) -> AppState {
        self.syslog = syslog;
        self
    }

    /// The alert sender of this appliance (*System Administration > Alerts*).
    pub fn with_alerts(mut self, alerts: Arc<rampart_alerts::Alerts>) -> AppState {
        self.alerts = Some(alerts);
        self
    }

    /// Trace with what this MTA's sessions see.
    pub fn with_tracer(mut self, tracer: rampart_mta::Tracer) -> AppState {
        self.tracer = Some(tracer);
        self
    }
}

/// The client's address as the listener saw it (plain TCP or TLS), for login throttling.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::SocketAddr);

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    use axum::http::{HeaderValue, header};
    use tower_http::set_header::SetResponseHeaderLayer;
    // Over HTTPS, browsers are told to keep using it (a plain-HTTP listener must not say so).
    let hsts = state.options.https.then(|| {
        SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        )
    });
    Router::new()
        .nest(
            "/api/v1",
            // The nested router sees the path without its prefix.
            api::router().fallback(|uri: axum::http::Uri| async move {
                ApiError::not_found(format!("no such resource: /api/v1{}", uri.path()))
            }),
        )
        .route("/metrics", axum::routing::get(metrics::metrics))
        .merge(ui::router(state.clone()))
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
            // No inline script or style anywhere: the UI works without JavaScript.
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                 base-uri 'none'; frame-ancestors 'none'",
            ),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            4 * 1024 * 1024,
        ))
        .layer(tower::util::option_layer(hsts))
        .with_state(state)
}
