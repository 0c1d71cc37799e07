//! *Monitor > Quarantine*: messages held by a policy's `quarantine` action; operators release or
//! delete them.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use rampart_store::{Mid, Quarantined, Role};

use super::{Confirm, ConfirmPage, Done, Layout, Posted, Ui, UiError, done, render, time};
use crate::AppState;

#[derive(Template)]
#[template(path = "quarantine.html")]
struct ListPage {
    l: Layout,
    messages: Vec<Quarantined>,
}

pub(crate) async fn list(
    State(state): State<AppState>,
    ui: Ui,
    Query(q): Query<Done>,
) -> Result<Response, UiError> {
    let messages = state.store.quarantine().await?;
    Ok(render(&ListPage {
        l: Layout::new(&state, &ui, "monitor", "Quarantine").flash(q.done.as_deref()),
        messages,
    }))
}

#[derive(Template)]
#[template(path = "quarantine_detail.html")]
struct DetailPage {
    l: Layout,
    q: Quarantined,
    received: String,
    remote_ip: String,
    /// The stored message as text (headers and body), at most [`PREVIEW`] bytes.
    text: String,
    truncated: bool,
}

/// How much of a quarantined message the page shows.
const PREVIEW: usize = 64 * 1024;

fn mid(s: &str) -> Result<Mid, UiError> {
    s.parse()
        .map(Mid)
        .map_err(|_| UiError::NotFound(format!("{s:?} is not a message ID.")))
}

/// The quarantine entry of `mid`, or a 404 page.
async fn held(state: &AppState, mid: Mid) -> Result<Quarantined, UiError> {
    state
        .store
        .quarantine()
        .await?
        .into_iter()
        .find(|q| q.mid == mid)
        .ok_or_else(|| UiError::NotFound(format!("MID {mid} is not in the quarantine.")))
}

pub(crate) async fn detail(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let mid = mid(&id)?;
    let q = held(&state, mid).await?;
    let message = state
        .store
        .message(mid)
        .await?
        .ok_or_else(|| UiError::NotFound(format!("MID {mid} is not stored.")))?;
    let truncated = message.body.len() > PREVIEW;
    let shown = message.body.get(..PREVIEW).unwrap_or(&message.body);
    Ok(render(&DetailPage {
        l: Layout::new(
            &state,
            &ui,
            "monitor",
            format!("Quarantined Message MID {mid}"),
        ),
        received: time(q.received_at),
        remote_ip: message.remote_ip,
        text: String::from_utf8_lossy(shown).into_owned(),
        truncated,
        q,
    }))
}

pub(crate) async fn release(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted { ui, form: _ }: Posted<super::session::Empty>,
) -> Result<Response, UiError> {
    act(&state, &ui, &id, true).await
}

/// Deletes a quarantined message once the operator has confirmed it: the message is gone for
/// good, so the first post only asks.
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted { ui, form }: Posted<Confirm>,
) -> Result<Response, UiError> {
    if form.given() {
        return act(&state, &ui, &id, false).await;
    }
    ui.require(Role::Operator)?;
    let mid = mid(&id)?;
    let q = held(&state, mid).await?;
    Ok(render(&ConfirmPage {
        l: Layout::new(&state, &ui, "monitor", "Delete Quarantined Message"),
        question: format!(
            "Delete MID {mid} from {} (subject {:?}) for good? It will not be delivered and \
             cannot be released afterwards.",
            if q.sender.is_empty() {
                "<>"
            } else {
                q.sender.as_str()
            },
            q.subject.as_deref().unwrap_or("")
        ),
        action: format!("/monitor/quarantine/{mid}/delete"),
        fields: Vec::new(),
        button: "Delete",
        back: "/monitor/quarantine".into(),
    }))
}

/// Releases or deletes a quarantined message (operators and admins).
async fn act(state: &AppState, ui: &Ui, id: &str, release: bool) -> Result<Response, UiError> {
    ui.require(Role::Operator)?;
    let mid = mid(id)?;
    let n = if release {
        state.store.quarantine_release(mid, &ui.user).await?
    } else {
        state.store.quarantine_delete(mid, &ui.user).await?
    };
    if n == 0 {
        return Err(UiError::NotFound(format!(
            "MID {mid} is not in the quarantine."
        )));
    }
    Ok(done(
        "/monitor/quarantine",
        if release { "released" } else { "deleted" },
    ))
}
