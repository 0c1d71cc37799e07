//! The Anti-Spam and Anti-Virus pages: one per policy and service under *Mail Policies*
//! (AsyncOS's column links), and one per engine under *Security Services*.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use rampart_policy::services::label;
use rampart_policy::{
    Antispam, Antivirus, DEFAULT_POLICY, ScanAction, ServiceMode, SuspectTreatment, Treatment,
};
use rampart_store::Role;
use serde::Deserialize;

use super::policies::{Direction, find, policy_mut, stage_policies};
use super::{Layout, Posted, Ui, UiError, render, working};
use crate::AppState;
use crate::engines::EngineStatus;

/// The two services, from the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Antispam,
    Antivirus,
}

impl Service {
    fn parse(s: &str) -> Result<Service, UiError> {
        match s {
            "antispam" => Ok(Service::Antispam),
            "antivirus" => Ok(Service::Antivirus),
            _ => Err(UiError::NotFound("There is no such page.".into())),
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Service::Antispam => "antispam",
            Service::Antivirus => "antivirus",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Service::Antispam => "Anti-Spam",
            Service::Antivirus => "Anti-Virus",
        }
    }

    fn configured(self, state: &AppState) -> bool {
        match self {
            Service::Antispam => state.engines.spam.is_some(),
            Service::Antivirus => state.engines.virus.is_some(),
        }
    }
}

/// The actions offered, as AsyncOS words them.
const ACTIONS: [(&str, &str); 4] = [
    ("deliver", "Deliver"),
    ("drop", "Drop"),
    (
        "bounce",
        "Bounce (refused with 550 5.7.1 at the end of DATA)",
    ),
    ("quarantine", "Quarantine"),
];

/// One outcome of a service (positive / suspect, infected / unscannable).
struct Outcome {
    key: &'static str,
    title: &'static str,
    can_switch_off: bool,
    enabled: bool,
    action: &'static str,
    prefix: String,
}

#[derive(Template)]
#[template(path = "policy_service.html")]
struct ServicePage {
    l: Layout,
    direction: &'static str,
    name: String,
    is_default: bool,
    service: &'static str,
    service_title: &'static str,
    engine_name: &'static str,
    engine_configured: bool,
    mode: &'static str,
    /// What `(use default)` gives now: DEFAULT's label.
    default_label: &'static str,
    outcomes: Vec<Outcome>,
    actions: &'static [(&'static str, &'static str)],
    note: &'static str,
}

fn mode_slug(m: ServiceMode) -> &'static str {
    match m {
        ServiceMode::Default => "default",
        ServiceMode::Enabled => "enabled",
        ServiceMode::Disabled => "disabled",
    }
}

fn outcome(key: &'static str, title: &'static str, t: &Treatment, switch: Option<bool>) -> Outcome {
    Outcome {
        key,
        title,
        can_switch_off: switch.is_some(),
        enabled: switch.unwrap_or(true),
        action: t.action.as_str(),
        prefix: t.subject_prefix.clone(),
    }
}

/// `GET /mail-policies/{direction}/{name}/{antispam|antivirus}`.
pub(crate) async fn form(
    State(state): State<AppState>,
    ui: Ui,
    Path((direction, name, service)): Path<(String, String, String)>,
) -> Result<Response, UiError> {
    let direction = Direction::parse(&direction)?;
    let service = Service::parse(&service)?;
    let mut settings = working(&state, &ui).await?;
    let policies = direction.of(&mut settings);
    let p = find(policies, &name)?.clone();
    let default = find(policies, DEFAULT_POLICY)?.clone();
    let configured = service.configured(&state);
    let (mode, default_mode, outcomes, engine_name, note) = match service {
        Service::Antispam => (
            p.antispam.mode,
            default.antispam.mode,
            vec![
                outcome(
                    "positive",
                    "Positively Identified Spam",
                    &p.antispam.positive,
                    None,
                ),
                outcome(
                    "suspect",
                    "Suspected Spam",
                    &Treatment {
                        action: p.antispam.suspect.action,
                        subject_prefix: p.antispam.suspect.subject_prefix.clone(),
                    },
                    Some(p.antispam.suspect.enabled),
                ),
            ],
            "anti-spam (rspamd)",
            "Positive is rspamd's reject action; suspect is its add header or rewrite subject \
             action. Spam, positive or suspect, is never journaled to Threat Defense.",
        ),
        Service::Antivirus => (
            p.antivirus.mode,
            default.antivirus.mode,
            vec![
                outcome(
                    "infected",
                    "Virus Infected Messages",
                    &p.antivirus.infected,
                    None,
                ),
                outcome(
                    "unscannable",
                    "Unscannable Messages",
                    &p.antivirus.unscannable,
                    None,
                ),
            ],
            "anti-virus (clamd)",
            "Unscannable: larger than antivirus.max_scan_bytes, or the engine failed while \
             on_error = \"accept\". Infected and unscannable messages are never journaled.",
        ),
    };
    Ok(render(&ServicePage {
        l: Layout::new(
            &state,
            &ui,
            "policies",
            format!("{}: {name}", service.title()),
        ),
        direction: direction.slug(),
        is_default: p.name == DEFAULT_POLICY,
        name: p.name,
        service: service.slug(),
        service_title: service.title(),
        engine_name,
        engine_configured: configured,
        mode: mode_slug(mode),
        default_label: label(default_mode, configured),
        outcomes,
        actions: &ACTIONS,
        note,
    }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ServiceForm {
    #[serde(default)]
    mode: String,
    #[serde(default)]
    positive_action: String,
    #[serde(default)]
    positive_prefix: String,
    #[serde(default)]
    suspect_enabled: Option<String>,
    #[serde(default)]
    suspect_action: String,
    #[serde(default)]
    suspect_prefix: String,
    #[serde(default)]
    infected_action: String,
    #[serde(default)]
    infected_prefix: String,
    #[serde(default)]
    unscannable_action: String,
    #[serde(default)]
    unscannable_prefix: String,
}

fn action(s: &str) -> Result<ScanAction, UiError> {
    match s {
        "deliver" => Ok(ScanAction::Deliver),
        "drop" => Ok(ScanAction::Drop),
        "bounce" => Ok(ScanAction::Bounce),
        "quarantine" => Ok(ScanAction::Quarantine),
        other => Err(UiError::BadRequest(format!(
            "Unknown action {other:?}: use deliver, drop, bounce or quarantine."
        ))),
    }
}

/// `POST /mail-policies/{direction}/{name}/{antispam|antivirus}`: stages the change.
pub(crate) async fn save(
    State(state): State<AppState>,
    Path((direction, name, service)): Path<(String, String, String)>,
    Posted { ui, form }: Posted<ServiceForm>,
) -> Result<Response, UiError> {
    ui.require(Role::Admin)?;
    let direction = Direction::parse(&direction)?;
    let service = Service::parse(&service)?;
    let mode = match form.mode.as_str() {
        "default" => ServiceMode::Default,
        "enabled" => ServiceMode::Enabled,
        "disabled" => ServiceMode::Disabled,
        other => {
            return Err(UiError::BadRequest(format!(
                "Unknown mode {other:?}: use default, enabled or disabled."
            )));
        }
    };
    let mut settings = working(&state, &ui).await?;
    let policy = policy_mut(&mut settings, direction, &name)?;
    match service {
        Service::Antispam => {
            policy.antispam = Antispam {
                mode,
                positive: Treatment {
                    action: action(&form.positive_action)?,
                    subject_prefix: form.positive_prefix.clone(),
                },
                suspect: SuspectTreatment {
                    enabled: form.suspect_enabled.is_some(),
                    action: action(&form.suspect_action)?,
                    subject_prefix: form.suspect_prefix.clone(),
                },
            }
        }
        Service::Antivirus => {
            policy.antivirus = Antivirus {
                mode,
                infected: Treatment {
                    action: action(&form.infected_action)?,
                    subject_prefix: form.infected_prefix.clone(),
                },
                unscannable: Treatment {
                    action: action(&form.unscannable_action)?,
                    subject_prefix: form.unscannable_prefix.clone(),
                },
            }
        }
    }
    let description = format!(
        "{}: policy {name:?} {} {}",
        direction.title(),
        service.title(),
        mode_slug(mode)
    );
    stage_policies(&state, &ui, &settings, direction, description).await
}

#[derive(Template)]
#[template(path = "engine.html")]
struct EnginePage {
    l: Layout,
    service: &'static str,
    title: &'static str,
    engine_slug: &'static str,
    positives_label: &'static str,
    status: EngineStatus,
}

/// `GET /security/antispam`: rspamd, checked now.
pub(crate) async fn antispam(State(state): State<AppState>, ui: Ui) -> Result<Response, UiError> {
    let status = crate::engines::antispam(&state).await;
    Ok(render(&EnginePage {
        l: Layout::new(&state, &ui, "security", "Anti-Spam"),
        service: "antispam",
        title: "Anti-Spam",
        engine_slug: "rspamd",
        positives_label: "Positive",
        status,
    }))
}

/// `GET /security/antivirus`: clamd, checked now.
pub(crate) async fn antivirus(State(state): State<AppState>, ui: Ui) -> Result<Response, UiError> {
    let status = crate::engines::antivirus(&state).await;
    Ok(render(&EnginePage {
        l: Layout::new(&state, &ui, "security", "Anti-Virus"),
        service: "antivirus",
        title: "Anti-Virus",
        engine_slug: "clamav",
        positives_label: "Virus infected",
        status,
    }))
}
