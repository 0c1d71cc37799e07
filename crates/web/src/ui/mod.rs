//! The web admin UI: server-rendered Askama pages with the menus of AsyncOS, working without
//! JavaScript.
//!
//! Every page but the login page and the stylesheet needs a session ([`Ui`]); every form carries
//! the session's CSRF token, checked by the [`Posted`] extractor before a handler sees the form.
//! Configuration edits are *staged* per user and take effect only on *Commit Changes*, as on an
//! AsyncOS appliance; each commit is recorded in the audit log.

mod admin;
mod alerts;
mod filters;
mod logs;
mod monitor;
mod network;
mod policies;
mod problems;
mod quarantine;
mod reports;
mod services;
pub(crate) mod session;
mod tdc;
mod trace;

use askama::Template;
use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use rampart_settings::Settings;
use rampart_store::Role;
use serde::Deserialize;

use crate::AppState;

pub(crate) fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/monitor/status") }))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/static/rampart.css", get(stylesheet))
        .route("/monitor/overview", get(reports::overview))
        .route("/monitor/overview.csv", get(reports::overview_csv))
        .route("/monitor/status", get(monitor::status))
        .route("/monitor/delivery", get(monitor::delivery))
        .route("/monitor/delivery/retry", post(monitor::retry))
        .route("/monitor/delivery/host/{host}", get(monitor::host_detail))
        .route("/monitor/delivery/hold", post(monitor::hold))
        .route("/monitor/delivery/resume", post(monitor::resume))
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
            "/mail-policies/hat/{listener}",
            get(network::view_in::<network::HatPage>).post(network::post_in::<network::HatPage>),
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
            "/mail-policies/{direction}/{name}/content-filters/builder",
            get(filters::builder_form).post(filters::builder),
        )
        .route(
            "/mail-policies/{direction}/{name}/content-filters/{op}",
            post(filters::arrange),
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
        .route("/admin/cluster", get(admin::cluster))
        .route("/admin/trace", get(trace::page).post(trace::run))
        .route("/admin/log-subscriptions", get(logs::page))
        .route("/admin/alerts", get(alerts::view).post(alerts::save))
        .route("/admin/alerts/test", post(alerts::test))
        .route("/admin/users", get(admin::users).post(admin::users_post))
        .route(
            "/admin/password",
            get(admin::password_form).post(admin::password),
        )
        .fallback(|ui: Option<Ui>| async move {
            UiError::NotFound("There is no such page.".into()).with(ui)
        })
        .layer(axum::middleware::from_fn_with_state(
            state,
            menus_on_error_pages,
        ))
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
    /// The path of the page asked for, for the navigation to mark where the user is.
    pub path: String,
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
        let path = parts.uri.path().to_owned();
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
        // Cluster mode with the cluster database unreachable: the pages still show (System
        // Status says why); the staged changes cannot be read, nor committed.
        let pending = match state.store.pending_count(&s.user).await {
            Ok(n) => n,
            Err(rampart_store::StoreError::Unavailable(_)) => 0,
            Err(e) => return Err(UiError::internal(e)),
        };
        Ok(Ui {
            user: s.user,
            role: s.role,
            csrf: s.csrf,
            pending,
            path,
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
    /// The path of this page, to mark its sub-menu entry.
    pub page: String,
    /// The pages of this page's menu that the user's role may open, in menu order.
    pub submenu: Vec<(&'static str, &'static str)>,
    /// The SMTP listeners (name, whether it is `[smtp]`'s), for the HAT page's choice.
    pub listeners: Vec<(String, bool)>,
}

/// A sub-menu entry: its path, its title, the least role that sees it.
type Entry = (&'static str, &'static str, Role);

/// The pages under each top-level menu (path, title), with the least role that may open each.
const SUBMENUS: &[(&str, &[Entry])] = &[
    (
        "monitor",
        &[
            ("/monitor/overview", "Overview", Role::ReadOnly),
            ("/monitor/status", "System Status", Role::ReadOnly),
            ("/monitor/delivery", "Delivery Status", Role::ReadOnly),
            ("/monitor/tracking", "Message Tracking", Role::ReadOnly),
            ("/monitor/mail-logs", "Mail Logs", Role::ReadOnly),
            ("/monitor/quarantine", "Quarantine", Role::ReadOnly),
        ],
    ),
    (
        "policies",
        &[
            (
                "/mail-policies/incoming",
                "Incoming Mail Policies",
                Role::ReadOnly,
            ),
            (
                "/mail-policies/outgoing",
                "Outgoing Mail Policies",
                Role::ReadOnly,
            ),
            ("/mail-policies/hat", "HAT Overview", Role::ReadOnly),
            (
                "/mail-policies/rat",
                "Recipient Access Table (RAT)",
                Role::ReadOnly,
            ),
        ],
    ),
    (
        "security",
        &[
            ("/security/antispam", "Anti-Spam", Role::ReadOnly),
            ("/security/antivirus", "Anti-Virus", Role::ReadOnly),
            (
                "/security/tdc",
                "Threat Defense Connector Settings",
                Role::ReadOnly,
            ),
        ],
    ),
    (
        "network",
        &[
            ("/network/smtp-routes", "SMTP Routes", Role::ReadOnly),
            (
                "/network/destination-controls",
                "Destination Controls",
                Role::ReadOnly,
            ),
            (
                "/network/bounce-profiles",
                "Bounce Profiles",
                Role::ReadOnly,
            ),
        ],
    ),
    (
        "admin",
        &[
            ("/admin/users", "Users", Role::Admin),
            ("/admin/password", "Change Password", Role::ReadOnly),
            ("/admin/audit", "Audit Log", Role::ReadOnly),
            (
                "/admin/log-subscriptions",
                "Log Subscriptions",
                Role::ReadOnly,
            ),
            ("/admin/alerts", "Alerts", Role::Operator),
            ("/admin/cluster", "Cluster", Role::ReadOnly),
            ("/admin/trace", "Trace", Role::Operator),
            ("/commit", "Commit Changes", Role::ReadOnly),
        ],
    ),
];

/// The pages of `menu` that `role` may open.
fn submenu(menu: &str, role: Role) -> Vec<(&'static str, &'static str)> {
    SUBMENUS
        .iter()
        .filter(|(m, _)| *m == menu)
        .flat_map(|(_, pages)| pages.iter())
        .filter(|(_, _, least)| role.at_least(*least))
        .map(|(path, title, _)| (*path, *title))
        .collect()
}

/// The top-level menu a path is under (for error pages, which have no handler to say).
fn menu_of(path: &str) -> &'static str {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match first {
        "monitor" => "monitor",
        "mail-policies" => "policies",
        "security" => "security",
        "network" => "network",
        "admin" | "commit" => "admin",
        _ => "",
    }
}

impl Layout {
    pub fn new(state: &AppState, ui: &Ui, menu: &'static str, title: impl Into<String>) -> Layout {
        let mut l = Layout::bare(ui, menu, title.into());
        l.hostname = state.options.hostname.clone();
        l.listeners = state
            .options
            .listeners
            .iter()
            .map(|x| (x.name.clone(), x.main))
            .collect();
        l
    }

    fn bare(ui: &Ui, menu: &'static str, title: String) -> Layout {
        Layout {
            title,
            menu,
            user: ui.user.clone(),
            role: role_label(ui.role),
            csrf: ui.csrf.clone(),
            pending: ui.pending,
            is_admin: ui.is_admin(),
            can_operate: ui.can_operate(),
            flash: None,
            hostname: String::new(),
            page: ui.path.clone(),
            submenu: submenu(menu, ui.role),
            listeners: Vec::new(),
        }
    }

    /// Whether `href` is this page's sub-menu entry: the page itself or one of its sub-pages
    /// (`/monitor/tracking/42` is under *Message Tracking*).
    pub fn is_current(&self, href: &str) -> bool {
        self.page == href
            || self
                .page
                .strip_prefix(href)
                .is_some_and(|rest| rest.starts_with('/'))
    }

    /// Where *System Administration* leads: the first of its pages this user may open.
    pub fn admin_home(&self) -> &'static str {
        if self.is_admin {
            "/admin/users"
        } else {
            "/admin/password"
        }
    }

    /// Shows the confirmation named by a `?done=` code (fixed texts: nothing from the URL is
    /// echoed into the page).
    pub fn flash(mut self, done: Option<&str>) -> Layout {
        self.flash = done.and_then(|d| {
            Some(match d {
                "staged" => "Your changes are pending. Click Commit Changes to make them active.",
                "unchanged" => "Nothing was changed: the settings are as they were.",
                "committed" => "Your changes have been committed.",
                "abandoned" => "Your pending changes have been abandoned.",
                "released" => "The message was released for delivery.",
                "deleted" => "The message was deleted.",
                "retried" => "Delivery was rescheduled for now.",
                "held" => "Delivery to this destination is suspended: its mail is accepted and waits until you resume delivery.",
                "resumed" => "Delivery was resumed; the waiting recipients are due now.",
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

/// A question before an action that cannot be undone, answered by posting the same form again
/// with `confirm=yes` (no script needed, and a stray or replayed click deletes nothing).
#[derive(Template)]
#[template(path = "confirm.html")]
pub(crate) struct ConfirmPage {
    pub l: Layout,
    pub question: String,
    /// Where the answer is posted, with the form's own fields.
    pub action: String,
    pub fields: Vec<(&'static str, String)>,
    /// The label of the button that acts.
    pub button: &'static str,
    /// Where Cancel leads.
    pub back: String,
}

/// The `confirm` field of a form whose action asks first.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Confirm {
    #[serde(default)]
    pub confirm: String,
}

impl Confirm {
    pub fn given(&self) -> bool {
        self.confirm == "yes"
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
    /// An error page already decided on, shown again with the menus.
    Page(StatusCode, String),
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
            UiError::Page(status, m) => (*status, m.clone()),
            UiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on the appliance; the details are in its log.".to_owned(),
            ),
        };
        let ui = match self {
            UiError::Csrf(ui) => Some(ui),
            _ => ui,
        };
        let known = ui.is_some();
        let page = ErrorPage {
            l: ui.map(|ui| {
                let menu = menu_of(&ui.path);
                Layout::bare(&ui, menu, String::new())
            }),
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("Error"),
            message: message.clone(),
        };
        let mut response = render(&page);
        *response.status_mut() = status;
        if !known {
            // Rendered without the user: [`menus_on_error_pages`] puts the menus back.
            response
                .extensions_mut()
                .insert(BareErrorPage { status, message });
        }
        response
    }
}

/// An error page rendered by a handler that no longer had the user at hand.
#[derive(Debug, Clone)]
struct BareErrorPage {
    status: StatusCode,
    message: String,
}

/// Gives error pages the menus of a logged-in user: a handler refusing with `?` (a role too low,
/// a row that is gone) renders its error without knowing who asked, and a bare page with no way
/// back would strand an operator who clicked a menu they may not use.
async fn menus_on_error_pages(
    State(state): State<AppState>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let (cookie, path) = (
        req.headers().get(header::COOKIE).cloned(),
        req.uri().clone(),
    );
    let response = next.run(req).await;
    let (Some(bare), Some(cookie)) = (response.extensions().get::<BareErrorPage>(), cookie) else {
        return response;
    };
    let bare = bare.clone();
    let mut probe = Request::new(axum::body::Body::empty());
    *probe.uri_mut() = path;
    probe.headers_mut().insert(header::COOKIE, cookie);
    let (mut parts, _) = probe.into_parts();
    match <Ui as FromRequestParts<AppState>>::from_request_parts(&mut parts, &state).await {
        Ok(ui) => UiError::Page(bare.status, bare.message).with(Some(ui)),
        Err(_) => response,
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        self.with(None)
    }
}

impl From<rampart_store::StoreError> for UiError {
    fn from(e: rampart_store::StoreError) -> UiError {
        match e {
            rampart_store::StoreError::Unavailable(_) => {
                UiError::Page(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            e => UiError::internal(e),
        }
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

/// Cluster mode: the nodes a page can show, this node first, then every other node that
/// reported in (`None` on a single appliance). The page offers *Whole cluster* after the first.
pub(crate) async fn node_choices(state: &AppState) -> Option<Vec<String>> {
    let own = state.store.cluster_health()?.node;
    let others = state.store.cluster_nodes().await.unwrap_or_default();
    Some(
        std::iter::once(own.clone())
            .chain(others.into_iter().map(|n| n.name).filter(|n| *n != own))
            .collect(),
    )
}

/// The settings as this user sees them: the live settings with their staged changes applied.
pub(crate) async fn working(state: &AppState, ui: &Ui) -> Result<Settings, UiError> {
    Ok(state.changes.working(&ui.user).await?)
}

/// Stages a change: validates the whole working settings and records the touched tables and a
/// description as pending for this user. Answers the `?done=` code for the page: `staged`, or
/// `unchanged` when the form changed nothing (a form submitted as it was shown must not leave
/// a pending change to commit). Validation problems come back for the form to show.
pub(crate) async fn stage(
    state: &AppState,
    ui: &Ui,
    settings: &Settings,
    tables: &[&str],
    description: String,
) -> Result<Result<&'static str, Vec<String>>, UiError> {
    ui.require(Role::Admin)?;
    let before = working(state, ui).await?;
    if tables
        .iter()
        .all(|t| before.table_json(t) == settings.table_json(t))
    {
        return Ok(Ok("unchanged"));
    }
    let staged = state
        .changes
        .stage(&ui.user, settings, tables, &description)
        .await?;
    Ok(staged
        .map(|()| "staged")
        .map_err(|problems| problems.iter().map(problems::describe).collect()))
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
