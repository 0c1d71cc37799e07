//! The web admin UI: server-rendered Askama pages with the menus of AsyncOS, working without
//! JavaScript.
//!
//! Every page but the login page and the stylesheet needs a session ([`Ui`]); every form carries
//! the session's CSRF token, checked by the [`Posted`] extractor before a handler sees the form.
//! Configuration edits are *staged* per user and take effect only on *Commit Changes*, as on an
//! AsyncOS appliance; each commit is recorded in the audit log.

mod admin;
mod logs;
mod monitor;
mod network;
mod policies;
mod quarantine;
mod services;
pub(crate) mod session;
mod tdc;
mod trace;

use askama::Template;
use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use rampart_settings::Settings;
use rampart_store::Role;
use serde::Deserialize;

use crate::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/monitor/status") }))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/static/rampart.css", get(stylesheet))
        .route("/monitor/status", get(monitor::status))
        .route("/monitor/delivery", get(monitor::delivery))
        .route("/monitor/delivery/retry", post(monitor::retry))
        .route("/monitor/tracking", get(monitor::tracking))
        .route("/monitor/tracking/{mid}", get(monitor::tracking_detail))
        .route("/monitor/mail-logs", get(monitor::mail_logs))
        .route("/monitor/quarantine", get(quarantine::list))
        .route("/monitor/quarantine/{mid}", get(quarantine::detail))
        .route(
            "/monitor/quarantine/{mid}/release",
            post(quarantine::release),
        )
        .route("/monitor/quarantine/{mid}/delete", post(quarantine::delete))
        .route(
            "/mail-policies/hat",
            get(network::view::<network::HatPage>).post(network::post::<network::HatPage>),
        )
        .route(
            "/mail-policies/rat",
            get(network::view::<network::RatPage>).post(network::post::<network::RatPage>),
        )
        .route("/mail-policies/{direction}", get(policies::table))
        .route(
            "/mail-policies/{direction}/add",
            get(policies::add_form).post(policies::add),
        )
        .route(
            "/mail-policies/{direction}/{name}/edit",
            get(policies::edit_form).post(policies::edit),
        )
        .route(
            "/mail-policies/{direction}/{name}/delete",
            post(policies::delete),
        )
        .route(
            "/mail-policies/{direction}/{name}/move",
            post(policies::shift),
        )
        .route(
            "/mail-policies/{direction}/{name}/tdc",
            get(policies::tdc_form).post(policies::tdc),
        )
        .route(
            "/mail-policies/{direction}/{name}/email-authentication",
            get(policies::auth_form).post(policies::auth),
        )
        .route(
            "/mail-policies/{direction}/{name}/content-filters",
            get(policies::filters_form).post(policies::filters),
        )
        .route(
            "/mail-policies/{direction}/{name}/{service}",
            get(services::form).post(services::save),
        )
        .route("/security/antispam", get(services::antispam))
        .route("/security/antivirus", get(services::antivirus))
        .route("/security/tdc", get(tdc::view))
        .route("/security/tdc/edit", get(tdc::edit_form).post(tdc::edit))
        .route("/security/tdc/ledger", get(tdc::ledger))
        .route("/security/tdc/resend", post(tdc::resend))
        .route(
            "/network/smtp-routes",
            get(network::view::<network::RoutesPage>).post(network::post::<network::RoutesPage>),
        )
        .route(
            "/network/destination-controls",
            get(network::view::<network::DestinationsPage>)
                .post(network::post::<network::DestinationsPage>),
        )
        .route(
            "/network/bounce-profiles",
            get(network::bounce).post(network::bounce_post),
        )
        .route("/commit", get(admin::commit_page).post(admin::commit))
        .route("/commit/abandon", post(admin::abandon))
        .route("/admin/audit", get(admin::audit))
        .route("/admin/trace", get(trace::page).post(trace::run))
        .route("/admin/log-subscriptions", get(logs::page))
        .route("/admin/users", get(admin::users).post(admin::users_post))
        .route(
            "/admin/password",
            get(admin::password_form).post(admin::password),
        )
        .fallback(|ui: Option<Ui>| async move {
            UiError::NotFound("There is no such page.".into()).with(ui)
        })
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../../../web/static/rampart.css"),
    )
}

/// A logged-in user of the UI.
#[derive(Debug, Clone)]
pub(crate) struct Ui {
    pub user: String,
    pub role: Role,
    pub csrf: String,
    /// How many staged changes this user has not committed.
    pub pending: u64,
}

impl Ui {
    /// Refuses users below `role` (admin > operator > read-only), checked on the server for every
    /// change whatever the page showed.
    pub fn require(&self, role: Role) -> Result<(), UiError> {
        if self.role.at_least(role) {
            Ok(())
        } else {
            Err(UiError::Forbidden(format!(
                "Your account ({}) has the {} role; this needs the {} role.",
                self.user,
                role_label(self.role),
                role_label(role)
            )))
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    pub fn can_operate(&self) -> bool {
        self.role != Role::ReadOnly
    }
}

pub(crate) fn role_label(role: Role) -> &'static str {
    match role {
        Role::Admin => "Administrator",
        Role::Operator => "Operator",
        Role::ReadOnly => "Read-Only Operator",
    }
}

impl FromRequestParts<AppState> for Ui {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Ui, UiError> {
        let next = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into());
        let Some(token) = session::cookie_token(&parts.headers) else {
            return Err(UiError::Login(next));
        };
        let found = state
            .store
            .session(
                &session::token_hash(&token),
                state.options.session_idle_secs,
            )
            .await
            .map_err(UiError::internal)?;
        let Some(s) = found else {
            return Err(UiError::Login(next));
        };
        let pending = state
            .store
            .pending_count(&s.user)
            .await
            .map_err(UiError::internal)?;
        Ok(Ui {
            user: s.user,
            role: s.role,
            csrf: s.csrf,
            pending,
        })
    }
}

impl axum::extract::OptionalFromRequestParts<AppState> for Ui {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Ui>, std::convert::Infallible> {
        Ok(
            <Ui as FromRequestParts<AppState>>::from_request_parts(parts, state)
                .await
                .ok(),
        )
    }
}

/// A submitted form whose CSRF token matched the session's, with the user who sent it.
#[derive(Debug)]
pub(crate) struct Posted<T> {
    pub ui: Ui,
    pub form: T,
}

#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

impl<T: serde::de::DeserializeOwned> FromRequest<AppState> for Posted<T> {
    type Rejection = UiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Posted<T>, UiError> {
        let (mut parts, body) = req.into_parts();
        let ui = <Ui as FromRequestParts<AppState>>::from_request_parts(&mut parts, state)
            .await
            .map_err(|e| match e {
                // A form sent after the session expired: log in again, then start over.
                UiError::Login(_) => UiError::Login("/".into()),
                other => other,
            })?;
        let bytes = axum::body::Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|e| UiError::BadRequest(format!("The form could not be read: {e}")))?;
        let sent: CsrfField = serde_urlencoded::from_bytes(&bytes).unwrap_or(CsrfField {
            csrf: String::new(),
        });
        if !session::same_secret(&sent.csrf, &ui.csrf) {
            tracing::warn!(user = %ui.user, "web UI form refused: missing or wrong CSRF token");
            return Err(UiError::Csrf(ui));
        }
        let form = serde_urlencoded::from_bytes(&bytes).map_err(|e| {
            UiError::BadRequest(format!("The form is incomplete or malformed: {e}"))
        })?;
        Ok(Posted { ui, form })
    }
}

/// What every page shows around its content.
#[derive(Debug)]
pub(crate) struct Layout {
    pub title: String,
    /// The top-level menu this page is under, highlighted in the navigation.
    pub menu: &'static str,
    pub user: String,
    pub role: &'static str,
    pub csrf: String,
    pub pending: u64,
    pub is_admin: bool,
    pub can_operate: bool,
    pub flash: Option<&'static str>,
    pub hostname: String,
}

impl Layout {
    pub fn new(state: &AppState, ui: &Ui, menu: &'static str, title: impl Into<String>) -> Layout {
        Layout {
            title: title.into(),
            menu,
            user: ui.user.clone(),
            role: role_label(ui.role),
            csrf: ui.csrf.clone(),
            pending: ui.pending,
            is_admin: ui.is_admin(),
            can_operate: ui.can_operate(),
            flash: None,
            hostname: state.options.hostname.clone(),
        }
    }

    /// Shows the confirmation named by a `?done=` code (fixed texts: nothing from the URL is
    /// echoed into the page).
    pub fn flash(mut self, done: Option<&str>) -> Layout {
        self.flash = done.and_then(|d| {
            Some(match d {
                "staged" => "Your changes are pending. Click Commit Changes to make them active.",
                "committed" => "Your changes have been committed.",
                "abandoned" => "Your pending changes have been abandoned.",
                "released" => "The message was released for delivery.",
                "deleted" => "The message was deleted.",
                "retried" => "Delivery was rescheduled for now.",
                "resent" => "The failed and expired journal copies of that period were queued again; the ledger shows the old copies as replayed.",
                "user-saved" => "The account was saved.",
                "user-deleted" => "The account was removed.",
                "password" => "Your password was changed.",
                _ => return None,
            })
        });
        self
    }
}

/// The `?done=` confirmation code of a page after a successful form.
#[derive(Debug, Deserialize, Default)]
pub(crate) struct Done {
    pub done: Option<String>,
}

/// Renders a template into a response, with headers that keep admin pages out of caches.
pub(crate) fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            html,
        )
            .into_response(),
        Err(e) => UiError::internal(e).into_response(),
    }
}

/// After a successful form: back to a page, with a confirmation.
pub(crate) fn done(path: &str, code: &str) -> Response {
    Redirect::to(&format!("{path}?done={code}")).into_response()
}

/// Errors of the UI, as pages.
#[derive(Debug)]
pub(crate) enum UiError {
    /// No session: to the login page, then back to this path.
    Login(String),
    Csrf(Ui),
    Forbidden(String),
    NotFound(String),
    BadRequest(String),
    Internal,
}

impl UiError {
    pub fn internal(e: impl std::fmt::Display) -> UiError {
        tracing::error!(error = %e, "internal error in web UI");
        UiError::Internal
    }

    /// The error page, with the navigation when the user is known.
    pub fn with(self, ui: Option<Ui>) -> Response {
        let (status, message) = match &self {
            UiError::Login(next) => {
                let next = if next.starts_with('/') && !next.starts_with("//") {
                    next.as_str()
                } else {
                    "/"
                };
                let target = format!(
                    "/login?next={}",
                    serde_urlencoded::to_string([("n", next)])
                        .unwrap_or_default()
                        .trim_start_matches("n=")
                );
                return Redirect::to(&target).into_response();
            }
            UiError::Csrf(_) => (
                StatusCode::FORBIDDEN,
                "The form was refused because its security token is missing or out of date. \
                 Go back, reload the page and try again."
                    .to_owned(),
            ),
            UiError::Forbidden(m) => (StatusCode::FORBIDDEN, m.clone()),
            UiError::NotFound(m) => (StatusCode::NOT_FOUND, m.clone()),
            UiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m.clone()),
            UiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on the appliance; the details are in its log.".to_owned(),
            ),
        };
        let ui = match self {
            UiError::Csrf(ui) => Some(ui),
            _ => ui,
        };
        let page = ErrorPage {
            l: ui.map(|ui| Layout {
                title: String::new(),
                menu: "",
                user: ui.user.clone(),
                role: role_label(ui.role),
                csrf: ui.csrf.clone(),
                pending: ui.pending,
                is_admin: ui.is_admin(),
                can_operate: ui.can_operate(),
                flash: None,
                hostname: String::new(),
            }),
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("Error"),
            message,
        };
        let mut response = render(&page);
        *response.status_mut() = status;
        response
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        self.with(None)
    }
}

impl From<rampart_store::StoreError> for UiError {
    fn from(e: rampart_store::StoreError) -> UiError {
        UiError::internal(e)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    l: Option<Layout>,
    status: u16,
    reason: &'static str,
    message: String,
}

/// The settings as this user sees them: the live settings with their staged changes applied.
pub(crate) async fn working(state: &AppState, ui: &Ui) -> Result<Settings, UiError> {
    Ok(state.changes.working(&ui.user).await?)
}

/// Stages a change: validates the whole working settings and records the touched tables and a
/// description as pending for this user. Validation problems come back for the form to show.
pub(crate) async fn stage(
    state: &AppState,
    ui: &Ui,
    settings: &Settings,
    tables: &[&str],
    description: String,
) -> Result<Result<(), Vec<String>>, UiError> {
    ui.require(Role::Admin)?;
    let staged = state
        .changes
        .stage(&ui.user, settings, tables, &description)
        .await?;
    Ok(staged.map_err(|problems| problems.iter().map(ToString::to_string).collect()))
}

/// Splits a text area or comma list into trimmed, non-empty items.
pub(crate) fn items(text: &str) -> Vec<String> {
    text.split([',', '\n', '\r'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Unix seconds as AsyncOS shows times: `Fri Feb 16 21:19:22 2024`.
pub(crate) fn time(unix: impl std::borrow::Borrow<i64>) -> String {
    chrono::DateTime::from_timestamp(*unix.borrow(), 0)
        .map(|t| t.format("%a %b %e %H:%M:%S %Y").to_string())
        .unwrap_or_default()
}

/// Unix milliseconds as AsyncOS shows times.
pub(crate) fn time_ms(unix_ms: i64) -> String {
    time(unix_ms.div_euclid(1000))
}

/// 104163 → "104,163", as in the AsyncOS tables.
pub(crate) fn thousands(n: impl std::borrow::Borrow<u64>) -> String {
    let digits = n.borrow().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
