//! Logging in and out: session cookies, CSRF tokens, and throttling of failed logins.
//!
//! The session cookie holds 32 random bytes; the store keeps only their SHA-256. The cookie is
//! `HttpOnly` and `SameSite=Strict` (and `Secure` when the UI is served over HTTPS), and every
//! form also carries the session's CSRF token.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{Posted, UiError, render};
use crate::auth::Refusal;
use crate::{AppState, ClientAddr};
use axum::http::StatusCode;

const COOKIE: &str = "rampart_session";

pub(crate) fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

pub(crate) fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty())
}

/// Compares two secrets in time independent of where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
        && !b.is_empty()
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    next: String,
    username: String,
    error: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
pub(crate) struct Next {
    next: Option<String>,
}

/// Where to go after logging in: only paths on this appliance.
fn safe_next(next: Option<&str>) -> String {
    match next {
        // Printable ASCII only: browsers drop tabs and newlines from URLs, so "/\t/host" would
        // become "//host", another site; and a header value cannot carry control characters.
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            n.to_owned()
        }
        _ => "/monitor/status".to_owned(),
    }
}

pub(crate) async fn login_page(Query(q): Query<Next>) -> Response {
    render(&LoginPage {
        next: safe_next(q.next.as_deref()),
        username: String::new(),
        error: None,
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: Option<String>,
}

pub(crate) async fn login(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let page = |error: String, status| {
        let mut r = render(&LoginPage {
            next: next.clone(),
            username: form.username.clone(),
            error: Some(error),
        });
        *r.status_mut() = status;
        r
    };
    let client = client.map(|a| a.ip());
    let caller =
        match crate::auth::authenticate(&state, &form.username, &form.password, client).await {
            Ok(caller) => caller,
            Err(Refusal::Locked(wait)) => {
                return page(
                    format!(
                        "Too many failed logins. Try again in {} minute(s).",
                        wait.div_ceil(60)
                    ),
                    StatusCode::TOO_MANY_REQUESTS,
                );
            }
            Err(Refusal::Busy) => {
                return page(
                    "The appliance is busy checking other logins. Try again in a moment.".into(),
                    StatusCode::SERVICE_UNAVAILABLE,
                );
            }
            Err(Refusal::Invalid) => {
                return page(
                    "Invalid username or password.".into(),
                    StatusCode::UNAUTHORIZED,
                );
            }
        };
    let token = random_token();
    if let Err(e) = state
        .store
        .create_session(&token_hash(&token), &caller.name, &random_token())
        .await
    {
        return UiError::internal(e).into_response();
    }
    tracing::info!(user = %caller.name, "web UI login");
    let secure = if state.options.https { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}");
    ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
}

#[derive(Debug, Deserialize)]
pub(crate) struct Empty {}

/// The client's address, when the server was started with connection info.
#[derive(Debug)]
pub(crate) struct ClientIp(Option<std::net::SocketAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<ClientIp, std::convert::Infallible> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<ClientAddr>>()
                .map(|c| c.0.0),
        ))
    }
}

pub(crate) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    posted: Result<Posted<Empty>, UiError>,
) -> Response {
    if let Err(e) = posted {
        return e.into_response();
    }
    if let Some(token) = cookie_token(&headers)
        && let Err(e) = state.store.delete_session(&token_hash(&token)).await
    {
        return UiError::internal(e).into_response();
    }
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}
