//! Mail policies: `policies/{incoming,outgoing}` (ordered list, add) and
//! `policies/{direction}/{name}` (one policy: read, replace, delete), plus `tdc`.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use rampart_settings::{MailPolicy, Settings};
use serde::Deserialize;
use serde_json::{Value, json};

use super::settings::{IfMatch, edit_settings, json_body};
use crate::auth::Caller;
use crate::{ApiError, AppState};

fn table<'a>(
    settings: &'a mut Settings,
    direction: &str,
) -> Result<&'a mut Vec<MailPolicy>, ApiError> {
    match direction {
        "incoming" => Ok(&mut settings.incoming_policies),
        "outgoing" => Ok(&mut settings.outgoing_policies),
        other => Err(ApiError::not_found(format!(
            "no such policy table: {other:?} (use incoming or outgoing)"
        ))),
    }
}

/// A policy as the API shows it: the stored fields plus the column labels of the policy table
/// (read-only: a PUT may send them back and they are ignored).
fn view(state: &AppState, p: &MailPolicy) -> Value {
    let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        map.insert(
            "tdc_label".into(),
            json!(state.settings.load().tdc_label(p.tdc.mode)),
        );
        map.insert(
            "antispam_label".into(),
            json!(rampart_policy::services::label(
                p.antispam.mode,
                state.engines.spam.is_some()
            )),
        );
        map.insert(
            "antivirus_label".into(),
            json!(rampart_policy::services::label(
                p.antivirus.mode,
                state.engines.virus.is_some()
            )),
        );
    }
    v
}

fn list(state: &AppState, direction: &str) -> Result<Json<Value>, ApiError> {
    let snapshot = state.settings.load();
    let mut settings = snapshot.settings().clone();
    let policies = table(&mut settings, direction)?;
    Ok(Json(Value::Array(
        policies.iter().map(|p| view(state, p)).collect(),
    )))
}

pub(crate) async fn get_list(
    State(state): State<AppState>,
    _caller: Caller,
    Path(direction): Path<String>,
) -> Result<Json<Value>, ApiError> {
    list(&state, &direction)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPolicy {
    #[serde(flatten)]
    policy: MailPolicy,
    /// Where to insert (0 = first); default: just above DEFAULT.
    position: Option<usize>,
    // What GET shows besides the policy; read-only, accepted and ignored (read-modify-write).
    #[serde(default, rename = "tdc_label")]
    _tdc_label: Option<Value>,
    #[serde(default, rename = "antispam_label")]
    _antispam_label: Option<Value>,
    #[serde(default, rename = "antivirus_label")]
    _antivirus_label: Option<Value>,
}

fn parse<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            ApiError::bad_request(e.inner().to_string())
        } else {
            ApiError::bad_request(format!("`{path}`: {}", e.inner()))
        }
    })
}

/// `POST /api/v1/policies/{direction}`: adds a policy above DEFAULT, or at `position`.
pub(crate) async fn add(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(direction): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(axum::http::StatusCode, Json<Value>), ApiError> {
    let new: NewPolicy = parse(json_body(body)?)?;
    let name = new.policy.name.clone();
    let what = format!("POST /api/v1/policies/{direction}: added {name:?}");
    edit_settings(&state, &caller, if_match, what, |settings| {
        rampart_policy::edit::add(
            table(settings, &direction)?,
            new.policy.clone(),
            new.position,
        )
        .map_err(ApiError::from)
    })
    .await?;
    let mut settings = state.settings.load().settings().clone();
    let p = table(&mut settings, &direction)?
        .iter()
        .find(|p| p.name == name)
        .cloned();
    Ok((
        axum::http::StatusCode::CREATED,
        Json(p.map(|p| view(&state, &p)).unwrap_or(Value::Null)),
    ))
}

pub(crate) async fn get_one(
    State(state): State<AppState>,
    _caller: Caller,
    Path((direction, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let mut settings = state.settings.load().settings().clone();
    let policies = table(&mut settings, &direction)?;
    let p = policies
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no {direction} policy named {name:?}")))?;
    Ok(Json(view(&state, p)))
}

/// `PUT /api/v1/policies/{direction}/{name}`: replaces one policy (it may be renamed, except
/// DEFAULT). A `position` moves it.
pub(crate) async fn put_one(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path((direction, name)): Path<(String, String)>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = json_body(body)?;
    // The Threat Defense Connector choice and each security service have their own page (as in
    // AsyncOS): a PUT that does not mention one keeps the policy's current setting.
    let keeps_tdc = body.get("tdc").is_none();
    let keeps_antispam = body.get("antispam").is_none();
    let keeps_antivirus = body.get("antivirus").is_none();
    let new: NewPolicy = parse(body)?;
    let new_name = new.policy.name.clone();
    let what = format!("PUT /api/v1/policies/{direction}/{name}");
    edit_settings(&state, &caller, if_match, what, |settings| {
        let policies = table(settings, &direction)?;
        let mut policy = new.policy.clone();
        if let Some(current) = policies.iter().find(|p| p.name == name) {
            if keeps_tdc {
                policy.tdc = current.tdc.clone();
            }
            if keeps_antispam {
                policy.antispam = current.antispam.clone();
            }
            if keeps_antivirus {
                policy.antivirus = current.antivirus.clone();
            }
        }
        rampart_policy::edit::replace(policies, &name, policy, new.position).map_err(ApiError::from)
    })
    .await?;
    let mut settings = state.settings.load().settings().clone();
    let p = table(&mut settings, &direction)?
        .iter()
        .find(|p| p.name == new_name)
        .cloned();
    Ok(Json(p.map(|p| view(&state, &p)).unwrap_or(Value::Null)))
}

pub(crate) async fn delete_one(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path((direction, name)): Path<(String, String)>,
) -> Result<axum::http::StatusCode, ApiError> {
    let what = format!("DELETE /api/v1/policies/{direction}/{name}");
    edit_settings(&state, &caller, if_match, what, |settings| {
        rampart_policy::edit::delete(table(settings, &direction)?, &name)
            .map(drop)
            .map_err(ApiError::from)
    })
    .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
