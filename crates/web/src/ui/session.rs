//! Logging in and out: session cookies, CSRF tokens, and throttling of failed logins.
//!
//! The session cookie holds 32 random bytes; the store keeps only their SHA-256. The cookie is
//! `HttpOnly` and `SameSite=Strict` (and `Secure` when the UI is served over HTTPS), and every
//! form also carries the session's CSRF token.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::{Posted, UiError, render};
use crate::{AppState, ClientAddr};

const COOKIE: &str = "rampart_session";

/// Failed logins per account and per client address.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Throttle {
    /// Seconds until `keys` may try again, if any of them is locked out.
    async fn locked(&self, keys: &[String], max: u32, lockout: Duration) -> Option<u64> {
        let mut failures = self.failures.lock().await;
        failures.retain(|_, (_, last)| last.elapsed() < lockout);
        keys.iter()
            .filter_map(|k| failures.get(k))
            .filter(|(n, _)| *n >= max)
            .map(|(_, last)| lockout.saturating_sub(last.elapsed()).as_secs() + 1)
            .max()
    }

    async fn fail(&self, keys: &[String]) {
        let mut failures = self.failures.lock().await;
        for k in keys {
            let e = failures.entry(k.clone()).or_insert((0, Instant::now()));
            e.0 += 1;
            e.1 = Instant::now();
        }
    }

    async fn succeed(&self, keys: &[String]) {
        let mut failures = self.failures.lock().await;
        for k in keys {
            failures.remove(k);
        }
    }
}

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
    let mut keys = vec![format!("user:{}", form.username.to_ascii_lowercase())];
    if let Some(addr) = client {
        keys.push(format!("ip:{}", canonical(addr.ip())));
    }
    let page = |error: String, status| {
        let mut r = render(&LoginPage {
            next: next.clone(),
            username: form.username.clone(),
            error: Some(error),
        });
        *r.status_mut() = status;
        r
    };
    let opts = &state.options;
    if let Some(wait) = state
        .throttle
        .locked(&keys, opts.max_failed_logins, opts.lockout)
        .await
    {
        tracing::warn!(user = %form.username, "web UI login refused: too many failed attempts");
        return page(
            format!(
                "Too many failed logins. Try again in {} minute(s).",
                wait.div_ceil(60)
            ),
            axum::http::StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let Some(caller) = crate::auth::authenticate(&state, &form.username, &form.password).await
    else {
        state.throttle.fail(&keys).await;
        tracing::warn!(user = %form.username, "web UI login failed");
        return page(
            "Invalid username or password.".into(),
            axum::http::StatusCode::UNAUTHORIZED,
        );
    };
    state.throttle.succeed(&keys).await;
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

/// An IPv4-mapped IPv6 address counts as its IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}
