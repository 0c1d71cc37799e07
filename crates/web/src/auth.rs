//! Appliance accounts: password hashing (argon2) and HTTP Basic authentication for the API.
//!
//! Verifying an argon2 hash costs tens of milliseconds by design, too much for every request of
//! a script. Successful logins are therefore remembered for a short time, keyed by a SHA-256 of
//! the credentials, so a changed password or role takes effect within [`CACHE_TTL`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine;
use rampart_store::Role;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::{ApiError, AppState};

/// How long a verified login is remembered.
pub const CACHE_TTL: Duration = Duration::from_secs(60);

/// The shortest passphrase accepted for an account.
pub const MIN_PASSWORD: usize = 8;

/// Account names: what a login form and a Basic header carry unambiguously.
pub fn valid_username(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Why an account could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("invalid username {0:?}: use 1-32 letters, digits, '.', '_' or '-'")]
    InvalidName(String),
    #[error("the passphrase must have at least {MIN_PASSWORD} characters")]
    ShortPassword,
    #[error("a passphrase is required for a new account")]
    MissingPassword,
    #[error("{0}")]
    Internal(String),
}

impl From<rampart_store::StoreError> for AccountError {
    fn from(e: rampart_store::StoreError) -> AccountError {
        AccountError::Internal(e.to_string())
    }
}

/// Creates or changes an account — the one way the UI, the API and the CLI do it: a new
/// passphrase is hashed and ends the account's sessions; `password: None` keeps the current one.
/// The change is recorded in the audit log as made by `by` through `source`.
pub async fn save_account(
    store: &rampart_store::Store,
    name: &str,
    password: Option<&str>,
    role: Role,
    by: &str,
    source: &str,
) -> Result<(), AccountError> {
    if !valid_username(name) {
        return Err(AccountError::InvalidName(name.to_owned()));
    }
    let password_hash = match (password, store.user(name).await?) {
        (Some(p), _) if p.len() < MIN_PASSWORD => return Err(AccountError::ShortPassword),
        (Some(p), _) => {
            let p = p.to_owned();
            tokio::task::spawn_blocking(move || hash_password(&p))
                .await
                .map_err(|e| AccountError::Internal(e.to_string()))?
                .map_err(AccountError::Internal)?
        }
        (None, Some(existing)) => existing.password_hash,
        (None, None) => return Err(AccountError::MissingPassword),
    };
    store
        .put_user(&rampart_store::User {
            name: name.to_owned(),
            password_hash,
            role,
        })
        .await?;
    if password.is_some() {
        store.delete_sessions_of(name).await?;
    }
    let change = format!("Users: saved account {name} with role {}", role.as_str());
    store
        .audit(&rampart_store::Audit::new(by, source, change))
        .await?;
    Ok(())
}

/// Hashes a password into an argon2 PHC string.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Checks a password against a PHC string.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Recently verified credentials.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    entries: Mutex<HashMap<[u8; 32], (String, Role, Instant)>>,
}

/// An authenticated API caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

impl Caller {
    /// Refuses read-only callers: operators release quarantined mail and retry delivery.
    pub fn require_operator(&self) -> Result<(), ApiError> {
        if self.role.at_least(Role::Operator) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "user '{}' is read-only; this needs the operator or admin role",
                self.name
            )))
        }
    }

    /// Refuses callers that may not change configuration.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role.at_least(Role::Admin) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "user '{}' has role {}; changing configuration needs the admin role",
                self.name,
                self.role.as_str()
            )))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(ApiError::unauthorized)?;
        let encoded = value
            .strip_prefix("Basic ")
            .or_else(|| value.strip_prefix("basic "))
            .ok_or_else(ApiError::unauthorized)?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| ApiError::unauthorized())?;
        let decoded = String::from_utf8(decoded).map_err(|_| ApiError::unauthorized())?;
        let (name, password) = decoded.split_once(':').ok_or_else(ApiError::unauthorized)?;
        authenticate(state, name, password)
            .await
            .ok_or_else(ApiError::unauthorized)
    }
}

/// Checks a name and password against the accounts, using the cache of recent logins.
pub async fn authenticate(state: &AppState, name: &str, password: &str) -> Option<Caller> {
    let key: [u8; 32] = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([0u8])
        .chain_update(password.as_bytes())
        .finalize()
        .into();
    {
        let entries = state.auth.entries.lock().await;
        if let Some((n, role, at)) = entries.get(&key)
            && at.elapsed() < CACHE_TTL
        {
            return Some(Caller {
                name: n.clone(),
                role: *role,
            });
        }
    }
    let user = state.store.user(name).await.ok()??;
    let hash = user.password_hash.clone();
    let pw = password.to_owned();
    let ok = tokio::task::spawn_blocking(move || verify_password(&pw, &hash))
        .await
        .unwrap_or(false);
    if !ok {
        tracing::warn!(user = name, "API authentication failed");
        return None;
    }
    let mut entries = state.auth.entries.lock().await;
    entries.retain(|_, (_, _, at)| at.elapsed() < CACHE_TTL);
    entries.insert(key, (user.name.clone(), user.role, Instant::now()));
    Some(Caller {
        name: user.name,
        role: user.role,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2"));
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("s3cret", "not a hash"));
    }
}
