//! Whole-table settings resources: `hat`, `rat` (and the tables later features add).
//!
//! A PUT replaces the table, validated with every other table as one snapshot; on success it is
//! stored in one transaction and swapped into the running appliance at once.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use serde_json::Value;

use rampart_changes::ChangeError;

use crate::auth::Caller;
use crate::{ApiError, AppState};

/// A settings answer with the generation it was read at as its `ETag`: a client that sends it
/// back in `If-Match` with its change gets `412` instead of overwriting someone else's change.
pub(crate) type Tagged = ([(axum::http::HeaderName, String); 1], Json<Value>);

pub(crate) fn tagged(generation: i64, value: Value) -> Tagged {
    (
        [(axum::http::header::ETAG, format!("\"{generation}\""))],
        Json(value),
    )
}

async fn get_table(state: &AppState, table: &str) -> Result<Tagged, ApiError> {
    // From the store, not the running snapshot: the ETag must name the generation of exactly
    // what is returned (the snapshot follows a CLI change only within a second).
    let (settings, generation) = state.store.load_settings_at().await?;
    let value = settings
        .table_json(table)
        .ok_or_else(|| ApiError::internal(format!("cannot serialise {table}")))?;
    Ok(tagged(generation, value))
}

async fn put_table(
    state: &AppState,
    caller: &Caller,
    if_match: IfMatch,
    table: &str,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Tagged, ApiError> {
    let body = json_body(body)?;
    let what = format!("PUT /api/v1/{}", table.replace('_', "-"));
    edit_settings(state, caller, if_match, what, |settings| {
        settings
            .set_table_json(table, &body)
            .map_err(|e| ApiError::invalid(e.0))
    })
    .await?;
    tracing::info!(user = %caller.name, table, "settings table replaced through the API");
    get_table(state, table).await
}

/// The generation a client read its settings at (`If-Match: "N"`), if it sent one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IfMatch(pub Option<i64>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<IfMatch, ApiError> {
        let Some(value) = parts.headers.get(axum::http::header::IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        let text = value.to_str().unwrap_or_default().trim();
        if text == "*" {
            return Ok(IfMatch(None));
        }
        text.trim_start_matches("W/")
            .trim_matches('"')
            .parse()
            .map(|g| IfMatch(Some(g)))
            .map_err(|_| {
                ApiError::bad_request(format!(
                    "If-Match must be the ETag of a settings answer, like \"42\"; got {text:?}"
                ))
            })
    }
}

/// The JSON body, or a 400 that says what is wrong with it.
pub(crate) fn json_body(body: Result<Json<Value>, JsonRejection>) -> Result<Value, ApiError> {
    body.map(|Json(v)| v)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {}", e.body_text())))
}

/// A request body as the typed request it must be, or a `400` saying what is wrong with it.
pub(crate) fn typed_body<T: serde::de::DeserializeOwned>(
    body: Result<Json<Value>, JsonRejection>,
) -> Result<T, ApiError> {
    serde_json::from_value(json_body(body)?)
        .map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
}

/// Applies `change` to the stored settings, validates the whole result, stores it with its
/// audit record (`what`, by the API user) as a compare-and-swap on the generation it read, and
/// swaps it into the running appliance. A change made meanwhile by another process (the CLI's
/// `loadconfig`) is never overwritten: with `If-Match` the request fails with `412`, without
/// it the change is applied again to the new settings. Admins only.
pub(crate) async fn edit_settings<T>(
    state: &AppState,
    caller: &Caller,
    if_match: IfMatch,
    what: String,
    mut change: impl FnMut(&mut rampart_settings::Settings) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    caller.require_admin()?;
    let audit = rampart_store::Audit::new(&caller.name, "api", what);
    match state.changes.apply(&audit, if_match.0, &mut change).await {
        Ok(saved) => Ok(saved.value),
        Err(ChangeError::Edit(e)) => Err(e),
        Err(ChangeError::Invalid(problems)) => Err(ApiError::invalid(problems)),
        Err(ChangeError::Stale { expected, current }) => Err(stale(expected, current)),
        Err(ChangeError::Busy) => Err(ApiError::conflict(
            "the settings kept changing while this change was applied; try again",
        )),
        Err(ChangeError::Store(e)) => Err(e.into()),
    }
}

fn stale(expected: i64, current: i64) -> ApiError {
    ApiError {
        status: axum::http::StatusCode::PRECONDITION_FAILED,
        message: format!(
            "the settings changed since you read them (ETag \"{expected}\", now \"{current}\"); GET them again and redo your change"
        ),
        retry_after: None,
        problems: Vec::new(),
    }
}

/// A webhook URL often carries its credential in the path (`/services/T0/B0/XXXX`): callers
/// that may not change settings see only its scheme and host.
pub fn mask_webhook(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            if host.len() == rest.len() {
                url.to_owned()
            } else {
                format!("{scheme}://{host}/…")
            }
        }
        None => url.to_owned(),
    }
}

/// `GET /api/v1/{resource}` for a settings table.
pub(crate) fn get_handler(table: &'static str) -> axum::routing::MethodRouter<AppState> {
    axum::routing::get(
        move |State(state): State<AppState>, caller: Caller| async move {
            let (headers, Json(mut value)) = get_table(&state, table).await?;
            if table == "alerts"
                && caller.role != rampart_store::Role::Admin
                && let Some(url) = value.get_mut("webhook_url")
                && let Some(text) = url.as_str()
            {
                *url = Value::String(mask_webhook(text));
            }
            Ok::<_, ApiError>((headers, Json(value)))
        },
    )
    .put(
        move |State(state): State<AppState>,
              caller: Caller,
              if_match: IfMatch,
              body: Result<Json<Value>, JsonRejection>| async move {
            put_table(&state, &caller, if_match, table, body).await
        },
    )
}

#[cfg(test)]
mod tests {
    use super::mask_webhook;

    #[test]
    fn a_webhook_path_is_hidden() {
        assert_eq!(
            mask_webhook("https://hooks.example.com/services/T0/B0/secret"),
            "https://hooks.example.com/…"
        );
        assert_eq!(
            mask_webhook("http://10.0.0.5:8080?token=x"),
            "http://10.0.0.5:8080/…"
        );
        assert_eq!(
            mask_webhook("https://alerts.example.com"),
            "https://alerts.example.com"
        );
        assert_eq!(mask_webhook(""), "");
    }
}
