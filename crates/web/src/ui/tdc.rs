//! *Security Services > Threat Defense Connector Settings*: the global switch and intake address,
//! the intake's health, and the journal ledger.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use rampart_store::{Role, unix_now};
use rampart_tdc::LedgerState;
use serde::Deserialize;

use super::{Done, Layout, Posted, Ui, UiError, done, render, stage, time, working};
use crate::AppState;

/// One row of the ledger summary: copies by state over a period.
#[derive(Debug)]
struct Summary {
    label: &'static str,
    /// The period, for the links to the ledger.
    hours: i64,
    delivered: u64,
    failed: u64,
    expired: u64,
    queued: u64,
    replayed: u64,
}

/// The intake's health, from the most recent journal copies.
#[derive(Debug, Default)]
struct Health {
    /// State, reply and time of the latest finished copy.
    last: Option<(String, String, String)>,
    /// Seconds from queueing to delivery of the latest delivered copy.
    latency_secs: Option<i64>,
    /// How the latest delivered copy travelled (`TLS TLSv1.3` / `no TLS`).
    tls: Option<String>,
}

#[derive(Template)]
#[template(path = "tdc.html")]
struct View {
    l: Layout,
    enabled: bool,
    intake_address: String,
    health: Health,
    summaries: Vec<Summary>,
    /// Failed or expired copies of the last day that *Resend* would queue again.
    /// Failed or expired copies whose message is still kept (any age).
    replayable: u64,
    /// `retention.message_body_hours`: how long messages are kept for replay.
    body_hours: u64,
    /// An operator or administrator may resend.
    can_resend: bool,
}

pub(crate) async fn view(
    State(state): State<AppState>,
    ui: Ui,
    Query(q): Query<Done>,
) -> Result<Response, UiError> {
    let settings = working(&state, &ui).await?;
    let mut summaries = Vec::with_capacity(2);
    for (label, hours) in [("Last hour", 1), ("Last day", 24)] {
        let c = state.store.ledger_counts(unix_now() - hours * 3600).await?;
        summaries.push(Summary {
            label,
            hours,
            delivered: c.delivered,
            failed: c.failed,
            expired: c.expired,
            queued: c.queued,
            replayed: c.replayed,
        });
    }
    let mut health = Health::default();
    let recent = state.store.ledger(0, None, 50).await?;
    if let Some(e) = recent.iter().find(|e| e.done_at.is_some()) {
        health.last = Some((
            e.state.to_string(),
            e.last_reply.clone().unwrap_or_default(),
            time(e.done_at.unwrap_or_default()),
        ));
    }
    if let Some(e) = recent.iter().find(|e| e.state == LedgerState::Delivered) {
        health.latency_secs = e.done_at.map(|d| d - e.queued_at);
        health.tls = Some(match &e.tls {
            Some(protocol) => format!("TLS {protocol}"),
            None => "no TLS".to_owned(),
        });
    }
    Ok(render(&View {
        l: Layout::new(&state, &ui, "security", "Threat Defense Connector Settings")
            .flash(q.done.as_deref()),
        enabled: settings.tdc.enabled,
        intake_address: settings.tdc.intake_address,
        health,
        summaries,
        replayable: state.store.replayable(0).await?,
        body_hours: state.options.message_body_hours,
        can_resend: ui.role.at_least(Role::Operator),
    }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ResendForm {
    /// The window, in hours back from now.
    hours: i64,
}

/// *Resend*: journal copies that failed or expired in the window are queued again (journal
/// replay), once each, never for a message whose copy was delivered.
pub(crate) async fn resend(
    State(state): State<AppState>,
    Posted { ui, form }: Posted<ResendForm>,
) -> Result<Response, UiError> {
    ui.require(Role::Operator)?;
    if !state.settings.load().settings().tdc.enabled {
        return Err(UiError::BadRequest(
            "The Threat Defense Connector is disabled: enable it before resending journal copies."
                .into(),
        ));
    }
    let hours = form.hours.clamp(1, 24 * 90);
    let mids = state
        .store
        .replay_journal(unix_now() - hours * 3600)
        .await?;
    tracing::info!(user = %ui.user, hours, copies = mids.len(), "journal replay from the web UI");
    Ok(done("/security/tdc", "resent"))
}

#[derive(Template)]
#[template(path = "tdc_edit.html")]
struct EditPage {
    l: Layout,
    enabled: bool,
    intake_address: String,
    error: Option<String>,
}

pub(crate) async fn edit_form(State(state): State<AppState>, ui: Ui) -> Result<Response, UiError> {
    ui.require(Role::Admin)?;
    let settings = working(&state, &ui).await?;
    Ok(render(&EditPage {
        l: Layout::new(
            &state,
            &ui,
            "security",
            "Edit Threat Defense Connector Settings",
        ),
        enabled: settings.tdc.enabled,
        intake_address: settings.tdc.intake_address,
        error: None,
    }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct EditForm {
    #[serde(default)]
    enabled: Option<String>,
    #[serde(default)]
    intake_address: String,
}

pub(crate) async fn edit(
    State(state): State<AppState>,
    Posted { ui, form }: Posted<EditForm>,
) -> Result<Response, UiError> {
    ui.require(Role::Admin)?;
    let enabled = form.enabled.is_some();
    let address = form.intake_address.trim().to_owned();
    let mut settings = working(&state, &ui).await?;
    settings.tdc.enabled = enabled;
    settings.tdc.intake_address = address.clone();
    let description = format!(
        "Threat Defense Connector: {}, Message Intake Address {}",
        if enabled { "enabled" } else { "disabled" },
        if address.is_empty() {
            "(none)".to_owned()
        } else {
            address.clone()
        }
    );
    match stage(&state, &ui, &settings, &["tdc"], description).await? {
        Ok(code) => Ok(done("/security/tdc", code)),
        Err(errors) => {
            let mut page = render(&EditPage {
                l: Layout::new(
                    &state,
                    &ui,
                    "security",
                    "Edit Threat Defense Connector Settings",
                ),
                enabled,
                intake_address: form.intake_address,
                error: Some(
                    errors
                        .join(" ")
                        .trim_start_matches("Threat Defense Connector settings: ")
                        .to_owned(),
                ),
            });
            *page.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok(page)
        }
    }
}

#[derive(Template)]
#[template(path = "ledger.html")]
struct LedgerPage {
    l: Layout,
    entries: Vec<LedgerRow>,
    state_filter: String,
    hours: i64,
    /// Cluster mode: the nodes to show (this node first), and the one asked for.
    nodes: Option<Vec<String>>,
    node: String,
}

#[derive(Debug)]
struct LedgerRow {
    node: String,
    /// This node's copy: its MID links to the tracking details.
    local: bool,
    mid: u64,
    state: &'static str,
    intake: String,
    attempts: u32,
    reply: String,
    queued: String,
    done: String,
    subject: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct LedgerQuery {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    hours: Option<i64>,
    /// Cluster mode: `*` for the whole cluster, a node's name; empty: this node.
    #[serde(default)]
    node: String,
}

/// The journal ledger: every journal copy of a period, optionally of one state.
pub(crate) async fn ledger(
    State(state): State<AppState>,
    ui: Ui,
    q: Result<Query<LedgerQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, UiError> {
    let Query(q) =
        q.map_err(|e| UiError::BadRequest(format!("Invalid search: {}", e.body_text())))?;
    let state_filter = match q.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(LedgerState::parse(s).ok_or_else(|| {
            UiError::BadRequest(format!(
                "Unknown state {s:?}: use {}.",
                LedgerState::choices()
            ))
        })?),
    };
    let hours = q.hours.unwrap_or(24).clamp(1, 24 * 90);
    let node = crate::api::track_node(&state.store, Some(&q.node)).map_err(UiError::BadRequest)?;
    let own = state.store.cluster_health().map(|h| h.node);
    let entries = state
        .store
        .ledger_in(
            unix_now() - hours * 3600,
            state_filter,
            500,
            node.as_deref(),
        )
        .await?
        .into_iter()
        .map(|(node, e)| LedgerRow {
            local: own.as_deref().is_none_or(|own| own == node),
            node,
            mid: e.mid.0,
            state: e.state.as_str(),
            intake: e.intake,
            attempts: e.attempts,
            reply: e.last_reply.unwrap_or_default(),
            queued: time(e.queued_at),
            done: e.done_at.map(time).unwrap_or_default(),
            subject: e.subject.unwrap_or_default(),
        })
        .collect();
    Ok(render(&LedgerPage {
        l: Layout::new(&state, &ui, "security", "Threat Defense Journal Ledger"),
        entries,
        state_filter: state_filter.map_or("", LedgerState::as_str).to_owned(),
        hours,
        nodes: super::node_choices(&state).await,
        node: q.node,
    }))
}
