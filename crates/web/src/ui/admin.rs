//! *Commit Changes*, the audit log, accounts and passwords.
//!
//! Account changes take effect at once (and are audited): a locked-out administrator must not
//! depend on a pending commit to get back in. Settings changes wait for Commit Changes.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use rampart_changes::{ChangeError, Conflicts};
use rampart_store::{Audit, AuditEntry, Role};
use serde::Deserialize;

use crate::auth::{MIN_PASSWORD, valid_username};

use super::{ConfirmPage, Done, Layout, Posted, Ui, UiError, done, render, role_label, time};
use crate::AppState;

#[derive(Template)]
#[template(path = "commit.html")]
struct CommitPage {
    l: Layout,
    changes: Vec<(String, String)>,
    errors: Vec<String>,
    /// What the settings would do once committed that an administrator should think twice about.
    warnings: Vec<String>,
    comment: String,
}

pub(crate) async fn commit_page(
    State(state): State<AppState>,
    ui: Ui,
    Query(q): Query<Done>,
) -> Result<Response, UiError> {
    let changes = pending(&state, &ui).await?;
    let warnings = if changes.is_empty() {
        Vec::new()
    } else {
        super::working(&state, &ui).await?.warnings()
    };
    Ok(render(&CommitPage {
        l: Layout::new(&state, &ui, "admin", "Uncommitted Changes").flash(q.done.as_deref()),
        changes,
        errors: Vec::new(),
        warnings,
        comment: String::new(),
    }))
}

async fn pending(state: &AppState, ui: &Ui) -> Result<Vec<(String, String)>, UiError> {
    Ok(state
        .store
        .pending_changes(&ui.user)
        .await?
        .into_iter()
        .map(|(at, d)| (time(at), d))
        .collect())
}

#[derive(Debug, Deserialize)]
pub(crate) struct CommitForm {
    #[serde(default)]
    comment: String,
}

pub(crate) async fn commit(
    State(state): State<AppState>,
    Posted { ui, form }: Posted<CommitForm>,
) -> Result<Response, UiError> {
    ui.require(Role::Admin)?;
    let comment = form.comment.trim().to_owned();
    if comment.len() > 1000 {
        return Err(UiError::BadRequest(
            "The comment is limited to 1000 characters.".into(),
        ));
    }
    let errors = match state.changes.commit(&ui.user, &comment).await {
        Ok(saved) => {
            if saved.value > 0 {
                tracing::info!(user = %ui.user, changes = saved.value, "changes committed from the web UI");
            }
            return Ok(done("/commit", "committed"));
        }
        // Someone else's commit conflicts with these changes, or together they are invalid.
        Err(ChangeError::Edit(Conflicts(errors))) => errors,
        Err(ChangeError::Invalid(problems)) => {
            problems.iter().map(super::problems::describe).collect()
        }
        Err(ChangeError::Store(e)) => return Err(e.into()),
        Err(e @ (ChangeError::Busy | ChangeError::Stale { .. })) => {
            return Err(UiError::BadRequest(format!("{e}")));
        }
    };
    let changes = pending(&state, &ui).await?;
    let mut r = render(&CommitPage {
        l: Layout::new(&state, &ui, "admin", "Uncommitted Changes"),
        changes,
        errors,
        warnings: Vec::new(),
        comment,
    });
    *r.status_mut() = axum::http::StatusCode::CONFLICT;
    Ok(r)
}

pub(crate) async fn abandon(
    State(state): State<AppState>,
    Posted { ui, form: _ }: Posted<super::session::Empty>,
) -> Result<Response, UiError> {
    ui.require(Role::Admin)?;
    state.changes.abandon(&ui.user).await?;
    Ok(done("/commit", "abandoned"))
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    l: Layout,
    entries: Vec<AuditEntry>,
    /// Cluster mode: the log is the cluster's, with the node of each change.
    clustered: bool,
}

pub(crate) async fn audit(State(state): State<AppState>, ui: Ui) -> Result<Response, UiError> {
    let entries = state.store.audit_log(500).await?;
    Ok(render(&AuditPage {
        l: Layout::new(&state, &ui, "admin", "Audit Log"),
        entries,
        clustered: state.store.is_clustered(),
    }))
}

#[derive(Template)]
#[template(path = "cluster.html")]
struct ClusterPage {
    l: Layout,
    view: Option<crate::cluster::ClusterView>,
}

/// *System Administration > Cluster* (AsyncOS `clusterconfig`).
pub(crate) async fn cluster(State(state): State<AppState>, ui: Ui) -> Result<Response, UiError> {
    let view = crate::cluster::ClusterView::read(&state.store).await?;
    Ok(render(&ClusterPage {
        l: Layout::new(&state, &ui, "admin", "Cluster"),
        view,
    }))
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    l: Layout,
    users: Vec<(String, &'static str, String)>,
    me: String,
    name: String,
    role: String,
    name_error: Option<String>,
    password_error: Option<String>,
    /// The form edits this existing account (its name is fixed).
    editing: bool,
}

/// *Users*' query: the confirmation of the last form, or the account to edit.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct UsersQuery {
    done: Option<String>,
    edit: Option<String>,
}

async fn users_page(
    state: &AppState,
    ui: &Ui,
    done: Option<&str>,
    form: Option<(&UsersForm, Option<String>, Option<String>)>,
    edit: Option<(String, Role)>,
) -> Result<Response, UiError> {
    let users = state
        .store
        .users()
        .await?
        .into_iter()
        .map(|(u, created)| (u.name, role_label(u.role), time(created)))
        .collect();
    let editing = edit.is_some();
    let (name, role, name_error, password_error) = match (form, edit) {
        (Some((f, n, p)), _) => (f.name.clone(), f.role.clone(), n, p),
        (None, Some((name, role))) => (name, role.as_str().to_owned(), None, None),
        (None, None) => (String::new(), "readonly".into(), None, None),
    };
    let invalid = name_error.is_some() || password_error.is_some();
    let mut r = render(&UsersPage {
        l: Layout::new(state, ui, "admin", "Users").flash(done),
        users,
        me: ui.user.clone(),
        name,
        role,
        name_error,
        password_error,
        editing,
    });
    if invalid {
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(r)
}

pub(crate) async fn users(
    State(state): State<AppState>,
    ui: Ui,
    Query(q): Query<UsersQuery>,
) -> Result<Response, UiError> {
    ui.require(Role::Admin)?;
    let edit = match q.edit {
        None => None,
        Some(name) => {
            let user =
                state.store.user(&name).await?.ok_or_else(|| {
                    UiError::NotFound(format!("There is no account named {name:?}."))
                })?;
            Some((user.name, user.role))
        }
    };
    users_page(&state, &ui, q.done.as_deref(), None, edit).await
}

#[derive(Debug, Deserialize)]
pub(crate) struct UsersForm {
    /// save | delete
    #[serde(default)]
    op: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    role: String,
    /// `yes` once the administrator confirmed a delete.
    #[serde(default)]
    confirm: String,
}

pub(crate) async fn users_post(
    State(state): State<AppState>,
    Posted { ui, form }: Posted<UsersForm>,
) -> Result<Response, UiError> {
    ui.require(Role::Admin)?;
    let name = form.name.trim().to_owned();
    if form.op == "delete" {
        if name == ui.user {
            return Err(UiError::BadRequest(
                "You cannot remove your own account.".into(),
            ));
        }
        if form.confirm != "yes" {
            let Some(user) = state.store.user(&name).await? else {
                return Err(UiError::NotFound(format!(
                    "There is no account named {name:?}."
                )));
            };
            return Ok(render(&ConfirmPage {
                l: Layout::new(&state, &ui, "admin", "Delete User"),
                question: format!(
                    "Delete the account {name} ({})? Its sessions end at once.",
                    role_label(user.role)
                ),
                action: "/admin/users".into(),
                fields: vec![("op", "delete".into()), ("name", name)],
                button: "Delete",
                back: "/admin/users".into(),
            }));
        }
        if !state.store.delete_user(&name).await? {
            return Err(UiError::NotFound(format!(
                "There is no account named {name:?}."
            )));
        }
        state
            .store
            .audit(&Audit::new(
                &ui.user,
                "ui",
                format!("Users: removed account {name}"),
            ))
            .await?;
        return Ok(done("/admin/users", "user-deleted"));
    }
    let Some(role) = Role::parse(&form.role) else {
        return Err(UiError::BadRequest(format!(
            "Unknown role {:?}: use admin, operator or readonly.",
            form.role
        )));
    };
    let existing = state.store.user(&name).await?;
    let name_error = (!valid_username(&name))
        .then(|| "A username is 1–32 letters, digits, '.', '_' or '-'.".to_owned());
    let password_error = match (&existing, form.password.len()) {
        // An existing account keeps its password when the field is left empty.
        (Some(_), 0) => None,
        (_, n) if n < MIN_PASSWORD => Some(format!(
            "The passphrase must have at least {MIN_PASSWORD} characters."
        )),
        _ => None,
    };
    if name_error.is_some() || password_error.is_some() {
        let editing = existing.as_ref().map(|u| (u.name.clone(), u.role));
        return users_page(
            &state,
            &ui,
            None,
            Some((&form, name_error, password_error)),
            editing,
        )
        .await;
    }
    if name == ui.user && role != Role::Admin {
        return Err(UiError::BadRequest(
            "You cannot take the administrator role from your own account.".into(),
        ));
    }
    let password = Some(form.password.as_str()).filter(|p| !p.is_empty());
    crate::auth::save_account(&state.store, &name, password, role, &ui.user, "ui")
        .await
        .map_err(|e| match e {
            crate::auth::AccountError::Internal(e) => UiError::internal(e),
            crate::auth::AccountError::Unavailable(e) => {
                UiError::Page(axum::http::StatusCode::SERVICE_UNAVAILABLE, e)
            }
            other => UiError::BadRequest(other.to_string()),
        })?;
    Ok(done("/admin/users", "user-saved"))
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    l: Layout,
    error: Option<String>,
}

pub(crate) async fn password_form(
    State(state): State<AppState>,
    ui: Ui,
) -> Result<Response, UiError> {
    Ok(render(&PasswordPage {
        l: Layout::new(&state, &ui, "admin", "Change Password"),
        error: None,
    }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    confirm: String,
}

/// Changes the user's own passphrase; every session of the account ends, this one included.
pub(crate) async fn password(
    State(state): State<AppState>,
    Posted { ui, form }: Posted<PasswordForm>,
) -> Result<Response, UiError> {
    let user = state
        .store
        .user(&ui.user)
        .await?
        .ok_or_else(|| UiError::Login("/admin/password".into()))?;
    let current = crate::auth::check_password(&state, &form.current, &user.password_hash).await;
    let error = if current == Err(crate::auth::Refusal::Busy) {
        Some("The appliance is busy checking other logins. Try again in a moment.".to_owned())
    } else if current != Ok(true) {
        Some("The current passphrase is wrong.".to_owned())
    } else if form.new.len() < MIN_PASSWORD {
        Some(format!(
            "The new passphrase must have at least {MIN_PASSWORD} characters."
        ))
    } else if form.new != form.confirm {
        Some("The new passphrase and its confirmation differ.".to_owned())
    } else {
        None
    };
    if let Some(error) = error {
        let mut r = render(&PasswordPage {
            l: Layout::new(&state, &ui, "admin", "Change Password"),
            error: Some(error),
        });
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(r);
    }
    crate::auth::save_account(
        &state.store,
        &ui.user,
        Some(&form.new),
        user.role,
        &ui.user,
        "ui",
    )
    .await
    .map_err(|e| UiError::internal(e.to_string()))?;
    Ok(Redirect::to("/login?next=/monitor/status").into_response())
}
