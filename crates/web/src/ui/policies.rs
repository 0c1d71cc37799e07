//! *Mail Policies > Incoming / Outgoing Mail Policies*: the ordered table with one column per
//! security service and the Threat Defense Connector last, and the per-policy pages.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use rampart_policy::patterns::Pattern;
use rampart_policy::{DEFAULT_POLICY, DmarcAction, EmailAuthentication};
use rampart_settings::{MailPolicy, Settings};
use rampart_settings::{TdcChoice, TdcMode};
use rampart_store::Role;
use serde::Deserialize;

use super::{Done, Layout, Posted, Ui, UiError, done, items, render, stage, working};
use crate::AppState;

/// `incoming` or `outgoing`, from the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Incoming,
    Outgoing,
}

impl Direction {
    pub(super) fn parse(s: &str) -> Result<Direction, UiError> {
        match s {
            "incoming" => Ok(Direction::Incoming),
            "outgoing" => Ok(Direction::Outgoing),
            _ => Err(UiError::NotFound("There is no such page.".into())),
        }
    }

    pub(super) fn slug(self) -> &'static str {
        match self {
            Direction::Incoming => "incoming",
            Direction::Outgoing => "outgoing",
        }
    }

    pub(super) fn title(self) -> &'static str {
        match self {
            Direction::Incoming => "Incoming Mail Policies",
            Direction::Outgoing => "Outgoing Mail Policies",
        }
    }

    pub(super) fn table(self) -> &'static str {
        match self {
            Direction::Incoming => "incoming_policies",
            Direction::Outgoing => "outgoing_policies",
        }
    }

    pub(super) fn of(self, settings: &mut Settings) -> &mut Vec<MailPolicy> {
        match self {
            Direction::Incoming => &mut settings.incoming_policies,
            Direction::Outgoing => &mut settings.outgoing_policies,
        }
    }
}

fn edit_error(e: rampart_policy::edit::EditError) -> UiError {
    match e {
        rampart_policy::edit::EditError::NotFound(name) => {
            UiError::NotFound(format!("There is no policy named {name:?}."))
        }
        other => UiError::BadRequest(other.to_string()),
    }
}

/// One row of the policy table, as shown.
#[derive(Debug)]
struct Row {
    name: String,
    is_default: bool,
    senders: String,
    recipients: String,
    email_auth: String,
    antispam: &'static str,
    antivirus: &'static str,
    filters: String,
    tdc: &'static str,
    first: bool,
    last_movable: bool,
}

#[derive(Template)]
#[template(path = "policies.html")]
struct TablePage {
    l: Layout,
    direction: &'static str,
    incoming: bool,
    rows: Vec<Row>,
}

fn patterns_label(list: &[String]) -> String {
    if list.is_empty() {
        "Any".into()
    } else {
        list.join(", ")
    }
}

pub(crate) async fn table(
    State(state): State<AppState>,
    ui: Ui,
    Path(direction): Path<String>,
    Query(q): Query<Done>,
) -> Result<Response, UiError> {
    let direction = Direction::parse(&direction)?;
    let mut settings = working(&state, &ui).await?;
    let global = settings.tdc.clone();
    let policies = direction.of(&mut settings);
    let n = policies.len();
    let rows = policies
        .iter()
        .enumerate()
        .map(|(i, p)| Row {
            name: p.name.clone(),
            is_default: p.name == DEFAULT_POLICY,
            senders: patterns_label(&p.senders),
            recipients: patterns_label(&p.recipients),
            email_auth: if p.email_authentication.enabled {
                format!(
                    "DMARC: {}",
                    dmarc_label(p.email_authentication.dmarc_action)
                )
            } else {
                "Disabled".into()
            },
            filters: if p.content_filters.is_empty() {
                "Disabled".into()
            } else {
                p.content_filters
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            antispam: rampart_policy::services::label(
                p.antispam.mode,
                state.engines.spam.is_some(),
            ),
            antivirus: rampart_policy::services::label(
                p.antivirus.mode,
                state.engines.virus.is_some(),
            ),
            tdc: match p.tdc.mode {
                TdcMode::Default => "(use default)",
                TdcMode::No => "Disabled",
                _ if global.enabled => "Enabled",
                _ => "Disabled",
            },
            first: i == 0,
            last_movable: i + 2 >= n,
        })
        .collect();
    Ok(render(&TablePage {
        l: Layout::new(&state, &ui, "policies", direction.title()).flash(q.done.as_deref()),
        direction: direction.slug(),
        incoming: direction == Direction::Incoming,
        rows,
    }))
}

fn dmarc_label(a: DmarcAction) -> &'static str {
    match a {
        DmarcAction::Honor => "honor the sender's policy",
        DmarcAction::None => "monitor only",
        DmarcAction::Quarantine => "quarantine failures",
        DmarcAction::Reject => "reject failures",
    }
}

#[derive(Template)]
#[template(path = "policy_form.html")]
struct PolicyForm {
    l: Layout,
    direction: &'static str,
    /// The policy being edited; `None` when adding.
    original: Option<String>,
    name: String,
    senders: String,
    recipients: String,
    name_error: Option<String>,
    senders_error: Option<String>,
    recipients_error: Option<String>,
    errors: Vec<String>,
}

impl PolicyForm {
    fn new(l: Layout, direction: Direction, original: Option<String>) -> PolicyForm {
        PolicyForm {
            l,
            direction: direction.slug(),
            original,
            name: String::new(),
            senders: String::new(),
            recipients: String::new(),
            name_error: None,
            senders_error: None,
            recipients_error: None,
            errors: Vec::new(),
        }
    }

    fn has_errors(&self) -> bool {
        self.name_error.is_some()
            || self.senders_error.is_some()
            || self.recipients_error.is_some()
            || !self.errors.is_empty()
    }

    fn invalid(&self) -> Response {
        let mut r = render(self);
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
        r
    }
}

pub(crate) async fn add_form(
    State(state): State<AppState>,
    ui: Ui,
    Path(direction): Path<String>,
) -> Result<Response, UiError> {
    ui.require(Role::Admin)?;
    let direction = Direction::parse(&direction)?;
    let title = format!("Add Policy — {}", direction.title());
    Ok(render(&PolicyForm::new(
        Layout::new(&state, &ui, "policies", title),
        direction,
        None,
    )))
}

pub(crate) async fn edit_form(
    State(state): State<AppState>,
    ui: Ui,
    Path((direction, name)): Path<(String, String)>,
) -> Result<Response, UiError> {
    ui.require(Role::Admin)?;
    let direction = Direction::parse(&direction)?;
    let mut settings = working(&state, &ui).await?;
    let p = find(direction.of(&mut settings), &name)?;
    let title = format!("Edit Policy: {name}");
    let mut form = PolicyForm::new(
        Layout::new(&state, &ui, "policies", title),
        direction,
        Some(name.clone()),
    );
    form.name = p.name.clone();
    form.senders = p.senders.join("\n");
    form.recipients = p.recipients.join("\n");
    Ok(render(&form))
}

/// The Threat Defense Connector has no page for outgoing policies.
fn incoming_only(direction: Direction) -> Result<(), UiError> {
    if direction == Direction::Incoming {
        Ok(())
    } else {
        Err(UiError::NotFound(
            "The Threat Defense Connector journals incoming mail only.".into(),
        ))
    }
}

pub(super) fn policy_mut<'a>(
    settings: &'a mut Settings,
    direction: Direction,
    name: &str,
) -> Result<&'a mut MailPolicy, UiError> {
    direction
        .of(settings)
        .iter_mut()
        .find(|p| p.name == name)
        .ok_or_else(|| UiError::NotFound(format!("There is no policy named {name:?}.")))
}

pub(super) fn find<'a>(policies: &'a [MailPolicy], name: &str) -> Result<&'a MailPolicy, UiError> {
    policies
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| UiError::NotFound(format!("There is no policy named {name:?}.")))
}

#[derive(Debug, Deserialize)]
pub(crate) struct PolicyFields {
    #[serde(default)]
    name: String,
    #[serde(default)]
    senders: String,
    #[serde(default)]
    recipients: String,
}

/// Checks each pattern, naming the bad ones.
fn check_patterns(list: &[String]) -> Option<String> {
    let bad: Vec<String> = list
        .iter()
        .filter_map(|s| Pattern::parse(s).err())
        .collect();
    (!bad.is_empty()).then(|| bad.join("; "))
}

async fn save_policy(
    state: &AppState,
    ui: &Ui,
    direction: Direction,
    original: Option<String>,
    fields: PolicyFields,
) -> Result<Response, UiError> {
    ui.require(Role::Admin)?;
    let title = match &original {
        Some(n) => format!("Edit Policy: {n}"),
        None => format!("Add Policy — {}", direction.title()),
    };
    let mut form = PolicyForm::new(
        Layout::new(state, ui, "policies", title),
        direction,
        original.clone(),
    );
    form.name = fields.name.trim().to_owned();
    form.senders = fields.senders.clone();
    form.recipients = fields.recipients.clone();
    let senders = items(&fields.senders);
    let recipients = items(&fields.recipients);
    if form.name.is_empty() {
        form.name_error = Some("Enter a policy name.".into());
    }
    form.senders_error = check_patterns(&senders);
    form.recipients_error = check_patterns(&recipients);
    if form.has_errors() {
        return Ok(form.invalid());
    }
    let mut settings = working(state, ui).await?;
    let policies = direction.of(&mut settings);
    let result = match &original {
        None => rampart_policy::edit::add(
            policies,
            MailPolicy::new(form.name.clone(), senders, recipients),
            None,
        ),
        Some(original) => match policies.iter().find(|p| &p.name == original).cloned() {
            None => {
                return Err(UiError::NotFound(format!(
                    "There is no policy named {original:?}."
                )));
            }
            Some(current) => rampart_policy::edit::replace(
                policies,
                original,
                MailPolicy {
                    name: form.name.clone(),
                    senders,
                    recipients,
                    ..current
                },
                None,
            ),
        },
    };
    if let Err(e) = result {
        match e {
            rampart_policy::edit::EditError::Duplicate(_) => form.name_error = Some(e.to_string()),
            other => form.errors.push(other.to_string()),
        }
        return Ok(form.invalid());
    }
    let description = match &original {
        None => format!("{}: added policy {:?}", direction.title(), form.name),
        Some(o) if *o != form.name => format!(
            "{}: policy {o:?} renamed to {:?}, senders and recipients edited",
            direction.title(),
            form.name
        ),
        Some(o) => format!(
            "{}: policy {o:?} senders and recipients edited",
            direction.title()
        ),
    };
    match stage(state, ui, &settings, &[direction.table()], description).await? {
        Ok(code) => Ok(done(&format!("/mail-policies/{}", direction.slug()), code)),
        Err(errors) => {
            form.errors = errors;
            Ok(form.invalid())
        }
    }
}

pub(crate) async fn add(
    State(state): State<AppState>,
    Path(direction): Path<String>,
    Posted { ui, form }: Posted<PolicyFields>,
) -> Result<Response, UiError> {
    let direction = Direction::parse(&direction)?;
    save_policy(&state, &ui, direction, None, form).await
}

pub(crate) async fn edit(
    State(state): State<AppState>,
    Path((direction, name)): Path<(String, String)>,
    Posted { ui, form }: Posted<PolicyFields>,
) -> Result<Response, UiError> {
    let direction = Direction::parse(&direction)?;
    save_policy(&state, &ui, direction, Some(name), form).await
}

/// Applies a table edit that has no form of its own (delete, move) and stages it.
async fn table_edit(
    state: &AppState,
    ui: &Ui,
    direction: Direction,
    description: String,
    change: impl FnOnce(&mut Vec<MailPolicy>) -> Result<(), rampart_policy::edit::EditError>,
) -> Result<Response, UiError> {
    ui.require(Role::Admin)?;
    let mut settings = working(state, ui).await?;
    change(direction.of(&mut settings)).map_err(edit_error)?;
    match stage(state, ui, &settings, &[direction.table()], description).await? {
        Ok(code) => Ok(done(&format!("/mail-policies/{}", direction.slug()), code)),
        Err(errors) => Err(UiError::BadRequest(errors.join(" "))),
    }
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    Path((direction, name)): Path<(String, String)>,
    Posted { ui, form: _ }: Posted<super::session::Empty>,
) -> Result<Response, UiError> {
    let direction = Direction::parse(&direction)?;
    let description = format!("{}: deleted policy {name:?}", direction.title());
    table_edit(&state, &ui, direction, description, |t| {
        rampart_policy::edit::delete(t, &name).map(drop)
    })
    .await
}

#[derive(Debug, Deserialize)]
pub(crate) struct MoveForm {
    #[serde(default)]
    to: String,
}

pub(crate) async fn shift(
    State(state): State<AppState>,
    Path((direction, name)): Path<(String, String)>,
    Posted { ui, form }: Posted<MoveForm>,
) -> Result<Response, UiError> {
    let direction = Direction::parse(&direction)?;
    let up = match form.to.as_str() {
        "up" => true,
        "down" => false,
        other => {
            return Err(UiError::BadRequest(format!(
                "Move where? {other:?} is neither up nor down."
            )));
        }
    };
    let description = format!(
        "{}: moved policy {name:?} {}",
        direction.title(),
        if up { "up" } else { "down" }
    );
    table_edit(&state, &ui, direction, description, |t| {
        rampart_policy::edit::shift(t, &name, up)
    })
    .await
}

#[derive(Template)]
#[template(path = "policy_tdc.html")]
struct TdcPage {
    l: Layout,
    direction: &'static str,
    name: String,
    is_default: bool,
    mode: &'static str,
    intake_address: String,
    global_address: String,
    global_enabled: bool,
    error: Option<String>,
}

fn mode_slug(m: TdcMode) -> &'static str {
    match m {
        TdcMode::Default => "default",
        TdcMode::Global => "global",
        TdcMode::Custom => "custom",
        TdcMode::No => "no",
    }
}

pub(crate) async fn tdc_form(
    State(state): State<AppState>,
    ui: Ui,
    Path((direction, name)): Path<(String, String)>,
) -> Result<Response, UiError> {
    let direction = Direction::parse(&direction)?;
    incoming_only(direction)?;
    let mut settings = working(&state, &ui).await?;
    let global = settings.tdc.clone();
    let p = find(direction.of(&mut settings), &name)?.clone();
    Ok(render(&TdcPage {
        l: Layout::new(
            &state,
            &ui,
            "policies",
            format!("Threat Defense Connector: {name}"),
        ),
        direction: direction.slug(),
        is_default: p.name == DEFAULT_POLICY,
        name: p.name,
        mode: mode_slug(p.tdc.mode),
        intake_address: p.tdc.intake_address,
        global_address: global.intake_address,
        global_enabled: global.enabled,
        error: None,
    }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct TdcForm {
    #[serde(default)]
    mode: String,
    #[serde(default)]
    intake_address: String,
}

pub(crate) async fn tdc(
    State(state): State<AppState>,
    Path((direction, name)): Path<(String, String)>,
    Posted { ui, form }: Posted<TdcForm>,
) -> Result<Response, UiError> {
    ui.require(Role::Admin)?;
    let direction = Direction::parse(&direction)?;
    incoming_only(direction)?;
    let mut settings = working(&state, &ui).await?;
    let global = settings.tdc.clone();
    let is_default = name == DEFAULT_POLICY;
    let mode = match form.mode.as_str() {
        "default" if !is_default => Some(TdcMode::Default),
        "global" => Some(TdcMode::Global),
        "custom" => Some(TdcMode::Custom),
        "no" => Some(TdcMode::No),
        _ => None,
    };
    let address = form.intake_address.trim().to_owned();
    let error = match mode {
        None => Some("Choose one of the options.".to_owned()),
        Some(TdcMode::Custom) if address.is_empty() => {
            Some("Enter the custom Message Intake Address.".to_owned())
        }
        Some(TdcMode::Custom) if rampart_smtp::Mailbox::parse(&address).is_err() => Some(format!(
            "{address:?} is not a valid address (e.g. journal@beta.cmd.cisco.com)."
        )),
        _ => None,
    };
    let policy = policy_mut(&mut settings, direction, &name)?;
    let page = |error: String| {
        let mut r = render(&TdcPage {
            l: Layout::new(
                &state,
                &ui,
                "policies",
                format!("Threat Defense Connector: {name}"),
            ),
            direction: direction.slug(),
            name: name.clone(),
            is_default,
            mode: mode.map(mode_slug).unwrap_or(""),
            intake_address: form.intake_address.clone(),
            global_address: global.intake_address.clone(),
            global_enabled: global.enabled,
            error: Some(error),
        });
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
        r
    };
    let (Some(mode), None) = (mode, &error) else {
        return Ok(page(error.unwrap_or_default()));
    };
    policy.tdc = TdcChoice {
        mode,
        intake_address: if mode == TdcMode::Custom {
            address.clone()
        } else {
            String::new()
        },
    };
    let description = format!(
        "Incoming Mail Policies: policy {name:?} Threat Defense Connector set to {}",
        match mode {
            TdcMode::Default => "Use Default Settings".to_owned(),
            TdcMode::Global => "Use Global Settings".to_owned(),
            TdcMode::Custom => format!("custom Message Intake Address {address}"),
            TdcMode::No => "No".to_owned(),
        }
    );
    match stage(&state, &ui, &settings, &[direction.table()], description).await? {
        Ok(code) => Ok(done("/mail-policies/incoming", code)),
        Err(errors) => Ok(page(errors.join(" "))),
    }
}

#[derive(Template)]
#[template(path = "policy_auth.html")]
struct AuthPage {
    l: Layout,
    direction: &'static str,
    name: String,
    enabled: bool,
    action: &'static str,
}

fn action_slug(a: DmarcAction) -> &'static str {
    match a {
        DmarcAction::Honor => "honor",
        DmarcAction::None => "none",
        DmarcAction::Quarantine => "quarantine",
        DmarcAction::Reject => "reject",
    }
}

pub(crate) async fn auth_form(
    State(state): State<AppState>,
    ui: Ui,
    Path((direction, name)): Path<(String, String)>,
) -> Result<Response, UiError> {
    let direction = Direction::parse(&direction)?;
    let mut settings = working(&state, &ui).await?;
    let p = find(direction.of(&mut settings), &name)?.clone();
    Ok(render(&AuthPage {
        l: Layout::new(
            &state,
            &ui,
            "policies",
            format!("Email Authentication: {name}"),
        ),
        direction: direction.slug(),
        name: p.name,
        enabled: p.email_authentication.enabled,
        action: action_slug(p.email_authentication.dmarc_action),
    }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct AuthForm {
    #[serde(default)]
    enabled: Option<String>,
    #[serde(default)]
    dmarc_action: String,
}

pub(crate) async fn auth(
    State(state): State<AppState>,
    Path((direction, name)): Path<(String, String)>,
    Posted { ui, form }: Posted<AuthForm>,
) -> Result<Response, UiError> {
    ui.require(Role::Admin)?;
    let direction = Direction::parse(&direction)?;
    let action = match form.dmarc_action.as_str() {
        "honor" => DmarcAction::Honor,
        "none" => DmarcAction::None,
        "quarantine" => DmarcAction::Quarantine,
        "reject" => DmarcAction::Reject,
        other => {
            return Err(UiError::BadRequest(format!(
                "Unknown DMARC action {other:?}: use honor, none, quarantine or reject."
            )));
        }
    };
    let mut settings = working(&state, &ui).await?;
    let policy = policy_mut(&mut settings, direction, &name)?;
    policy.email_authentication = EmailAuthentication {
        enabled: form.enabled.is_some(),
        dmarc_action: action,
    };
    let description = format!(
        "{}: policy {name:?} email authentication {}, DMARC {}",
        direction.title(),
        if form.enabled.is_some() {
            "enabled"
        } else {
            "disabled"
        },
        action_slug(action)
    );
    stage_policies(&state, &ui, &settings, direction, description).await
}

/// Stages a change to one direction's policy table and goes back to that table; a change that
/// does not validate is refused with the reasons.
pub(super) async fn stage_policies(
    state: &AppState,
    ui: &Ui,
    settings: &Settings,
    direction: Direction,
    description: String,
) -> Result<Response, UiError> {
    match stage(state, ui, settings, &[direction.table()], description).await? {
        Ok(code) => Ok(done(&format!("/mail-policies/{}", direction.slug()), code)),
        Err(errors) => Err(UiError::BadRequest(errors.join(" "))),
    }
}

#[derive(Template)]
#[template(path = "policy_filters.html")]
struct FiltersPage {
    l: Layout,
    direction: &'static str,
    name: String,
    /// (name, combine, conditions, actions) of each filter, for reading.
    summary: Vec<(String, String, Vec<String>, Vec<String>)>,
    json: String,
    error: Option<String>,
}

fn summarise(
    filters: &[rampart_policy::ContentFilter],
) -> Vec<(String, String, Vec<String>, Vec<String>)> {
    let one = |v: serde_json::Value| v.to_string();
    filters
        .iter()
        .map(|f| {
            (
                f.name.clone(),
                serde_json::to_value(f.combine)
                    .map(|v| v.as_str().unwrap_or("").to_owned())
                    .unwrap_or_default(),
                f.conditions
                    .iter()
                    .map(|c| one(serde_json::to_value(c).unwrap_or_default()))
                    .collect(),
                f.actions
                    .iter()
                    .map(|a| one(serde_json::to_value(a).unwrap_or_default()))
                    .collect(),
            )
        })
        .collect()
}

pub(crate) async fn filters_form(
    State(state): State<AppState>,
    ui: Ui,
    Path((direction, name)): Path<(String, String)>,
    Query(q): Query<super::Done>,
) -> Result<Response, UiError> {
    let direction = Direction::parse(&direction)?;
    let mut settings = working(&state, &ui).await?;
    let p = find(direction.of(&mut settings), &name)?.clone();
    Ok(render(&FiltersPage {
        l: Layout::new(&state, &ui, "policies", format!("Content Filters: {name}"))
            .flash(q.done.as_deref()),
        direction: direction.slug(),
        summary: summarise(&p.content_filters),
        json: serde_json::to_string_pretty(&p.content_filters).unwrap_or_default(),
        name: p.name,
        error: None,
    }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct FiltersForm {
    #[serde(default)]
    filters: String,
}

pub(crate) async fn filters(
    State(state): State<AppState>,
    Path((direction, name)): Path<(String, String)>,
    Posted { ui, form }: Posted<FiltersForm>,
) -> Result<Response, UiError> {
    ui.require(Role::Admin)?;
    let direction = Direction::parse(&direction)?;
    let mut settings = working(&state, &ui).await?;
    let policy = policy_mut(&mut settings, direction, &name)?;
    let current = policy.content_filters.clone();
    let text = if form.filters.trim().is_empty() {
        "[]"
    } else {
        form.filters.trim()
    };
    let parsed: Result<Vec<rampart_policy::ContentFilter>, String> =
        serde_json::from_str::<serde_json::Value>(text)
            .map_err(|e| format!("not valid JSON: {e}"))
            .and_then(|v| {
                serde_path_to_error::deserialize(v).map_err(|e| {
                    let path = e.path().to_string();
                    format!("at `{path}`: {}", e.inner())
                })
            });
    let result = match parsed {
        Ok(filters) => {
            let count = filters.len();
            policy.content_filters = filters;
            let description = format!(
                "{}: policy {name:?} content filters replaced ({count} filter(s))",
                direction.title()
            );
            stage(&state, &ui, &settings, &[direction.table()], description)
                .await?
                .map_err(|e| e.join(" "))
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(code) => Ok(done(&format!("/mail-policies/{}", direction.slug()), code)),
        Err(error) => {
            let mut r = render(&FiltersPage {
                l: Layout::new(&state, &ui, "policies", format!("Content Filters: {name}")),
                direction: direction.slug(),
                name: name.clone(),
                summary: summarise(&current),
                json: form.filters,
                error: Some(error),
            });
            *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
    }
}
