//! `users`: appliance accounts (admins only). Passwords go in, never out.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use rampart_store::{Audit, Role, User};
use serde::Deserialize;
use serde_json::{Value, json};

use super::settings::json_body;
use crate::auth::Caller;
use crate::{ApiError, AppState};

use crate::auth::{MIN_PASSWORD, valid_username};

fn view(u: &User, created: i64) -> Value {
    json!({
        "name": u.name,
        "role": u.role.as_str(),
        "created_at": chrono::DateTime::from_timestamp(created, 0).map(|t| t.to_rfc3339()),
    })
}

pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let users = state.store.users().await?;
    Ok(Json(Value::Array(
        users.iter().map(|(u, c)| view(u, *c)).collect(),
    )))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: Option<String>,
    password: Option<String>,
    role: String,
    /// Shown by GET; read-only, accepted and ignored (read-modify-write).
    #[serde(default, rename = "created_at")]
    _created_at: Option<Value>,
}

/// `POST /api/v1/users` creates an account; `PUT /api/v1/users/{name}` creates or changes one
/// (the password may be left out to keep it).
async fn save(
    state: &AppState,
    caller: &Caller,
    name: Option<String>,
    body: Value,
    create: bool,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require_admin()?;
    let req: NewUser = serde_path_to_error::deserialize(body)
        .map_err(|e| ApiError::bad_request(format!("`{}`: {}", e.path(), e.inner())))?;
    let name = match (name, req.name) {
        (Some(path), Some(body)) if path != body => {
            return Err(ApiError::bad_request(format!(
                "the body names {body:?} but the URL names {path:?}; accounts cannot be renamed"
            )));
        }
        (Some(n), _) | (None, Some(n)) => n,
        (None, None) => return Err(ApiError::bad_request("`name` is required")),
    };
    if !valid_username(&name) {
        return Err(ApiError::bad_request(format!(
            "invalid username {name:?}: use 1-32 letters, digits, '.', '_' or '-'"
        )));
    }
    let role = Role::parse(&req.role).ok_or_else(|| {
        ApiError::bad_request(format!(
            "invalid role {:?}: use admin, operator or readonly",
            req.role
        ))
    })?;
    let existing = state.store.user(&name).await?;
    if create && existing.is_some() {
        return Err(ApiError::conflict(format!(
            "an account named {name:?} exists already"
        )));
    }
    if name == caller.name && role != Role::Admin {
        return Err(ApiError::bad_request(
            "you cannot take the admin role from your own account",
        ));
    }
    crate::auth::save_account(
        &state.store,
        &name,
        req.password.as_deref(),
        role,
        &caller.name,
        "api",
    )
    .await
    .map_err(|e| match e {
        crate::auth::AccountError::Internal(e) => ApiError::internal(e),
        crate::auth::AccountError::Unavailable(e) => ApiError::unavailable(e),
        crate::auth::AccountError::MissingPassword => {
            ApiError::bad_request("`password` is required for a new account")
        }
        crate::auth::AccountError::ShortPassword => ApiError::bad_request(format!(
            "`password` must have at least {MIN_PASSWORD} characters"
        )),
        other => ApiError::bad_request(other.to_string()),
    })?;
    let user = User {
        name: name.clone(),
        password_hash: String::new(),
        role,
    };
    let status = if create {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view(&user, rampart_store::unix_now()))))
}

pub(crate) async fn add(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    save(&state, &caller, None, json_body(body)?, true).await
}

pub(crate) async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    save(&state, &caller, Some(name), json_body(body)?, false).await
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    if name == caller.name {
        return Err(ApiError::bad_request("you cannot remove your own account"));
    }
    if !state.store.delete_user(&name).await? {
        return Err(ApiError::not_found(format!("no account named {name:?}")));
    }
    state
        .store
        .audit(&Audit::new(
            &caller.name,
            "api",
            format!("Users: removed account {name}"),
        ))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
