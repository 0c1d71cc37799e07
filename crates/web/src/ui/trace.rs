//! *System Administration > Trace*: what the appliance would do with a connection and a
//! message, evaluated with the committed settings; nothing is sent, stored or logged.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use rampart_mta::{TraceReport, TraceRequest};
use rampart_store::Role;
use serde::Deserialize;

use super::{Layout, Posted, Ui, UiError, render};
use crate::AppState;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct TraceForm {
    #[serde(default)]
    client_ip: String,
    #[serde(default)]
    helo: String,
    #[serde(default)]
    sender: String,
    /// One per line.
    #[serde(default)]
    recipients: String,
    #[serde(default)]
    message: String,
}

#[derive(Template)]
#[template(path = "trace.html")]
struct TracePage {
    l: Layout,
    form: TraceForm,
    error: Option<String>,
    report: Option<TraceReport>,
    available: bool,
}

pub(crate) async fn page(State(state): State<AppState>, ui: Ui) -> Result<Response, UiError> {
    ui.require(Role::Operator)?;
    Ok(render(&TracePage {
        l: Layout::new(&state, &ui, "admin", "Trace"),
        form: TraceForm {
            client_ip: "192.0.2.7".into(),
            helo: "mx.sender.test".into(),
            ..TraceForm::default()
        },
        error: None,
        report: None,
        available: state.tracer.is_some(),
    }))
}

pub(crate) async fn run(
    State(state): State<AppState>,
    Posted { ui, form }: Posted<TraceForm>,
) -> Result<Response, UiError> {
    ui.require(Role::Operator)?;
    let req = TraceRequest {
        client_ip: form.client_ip.clone(),
        helo: form.helo.clone(),
        sender: form.sender.clone(),
        recipients: form
            .recipients
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        message: Some(form.message.clone()).filter(|m| !m.trim().is_empty()),
    };
    let (report, error) = match &state.tracer {
        None => (
            None,
            Some("Trace needs the SMTP listener of a running appliance.".into()),
        ),
        Some(t) => match t.trace(&req).await {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(e.to_string())),
        },
    };
    Ok(render(&TracePage {
        l: Layout::new(&state, &ui, "admin", "Trace"),
        form,
        error,
        report,
        available: state.tracer.is_some(),
    }))
}
