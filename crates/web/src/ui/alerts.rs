//! *System Administration > Alerts*: recipients and their severities, the webhook, the
//! thresholds, the repeat interval (staged and committed like every setting), the alert log, and
//! *Send Test Alert*.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use rampart_settings::{AlertRecipient, AlertSettings, Severity};
use rampart_store::{AlertRecord, Role};
use serde::Deserialize;

use super::{Layout, Posted, Ui, UiError, done, render, stage, working};
use crate::AppState;

/// Alerts shown on the page.
const LOG_ROWS: u32 = 100;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct AlertForm {
    /// One recipient per line: `address [critical|warning|info]`.
    #[serde(default)]
    recipients: String,
    #[serde(default)]
    webhook_url: String,
    #[serde(default)]
    webhook_severity: String,
    #[serde(default)]
    from_address: String,
    #[serde(default)]
    repeat_mins: String,
    #[serde(default)]
    queue_threshold: String,
    #[serde(default)]
    disk_free_percent: String,
}

impl AlertForm {
    fn of(a: &AlertSettings) -> AlertForm {
        AlertForm {
            recipients: a
                .recipients
                .iter()
                .map(|r| format!("{} {}", r.address, r.severity.as_str()))
                .collect::<Vec<_>>()
                .join("\n"),
            webhook_url: a.webhook_url.clone(),
            webhook_severity: a.webhook_severity.as_str().into(),
            from_address: a.from_address.clone(),
            repeat_mins: a.repeat_mins.to_string(),
            queue_threshold: a.queue_threshold.to_string(),
            disk_free_percent: a.disk_free_percent.to_string(),
        }
    }

    /// The settings the form says, or what to correct, in the page's words.
    fn parse(&self) -> Result<AlertSettings, String> {
        let severity = |s: &str, line: &str| {
            Severity::parse(s).ok_or_else(|| {
                format!("Recipient line {line:?}: the severity must be critical, warning or info")
            })
        };
        let mut recipients = Vec::new();
        for line in self
            .recipients
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            let mut words = line.split_whitespace();
            let address = words.next().unwrap_or_default().to_owned();
            let level = match words.next() {
                Some(w) => severity(w, line)?,
                None => Severity::Warning,
            };
            if words.next().is_some() {
                return Err(format!(
                    "Recipient line {line:?}: write one address and one severity per line"
                ));
            }
            recipients.push(AlertRecipient {
                address,
                severity: level,
            });
        }
        let number = |v: &str, what: &str| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| format!("{what} must be a whole number, not {:?}", v.trim()))
        };
        Ok(AlertSettings {
            recipients,
            webhook_url: self.webhook_url.trim().to_owned(),
            webhook_severity: severity(&self.webhook_severity, "webhook")?,
            from_address: self.from_address.trim().to_owned(),
            repeat_mins: u32::try_from(number(&self.repeat_mins, "Repeat after")?)
                .map_err(|_| "Repeat after must be 1-10080 minutes".to_owned())?,
            queue_threshold: number(&self.queue_threshold, "Queue threshold")?,
            disk_free_percent: u8::try_from(number(&self.disk_free_percent, "Free disk space")?)
                .map_err(|_| "Free disk space must be 0-99 percent".to_owned())?,
        })
    }
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    l: Layout,
    form: AlertForm,
    error: Option<String>,
    log: Vec<AlertRecord>,
    /// The outcome of *Send Test Alert*, shown once.
    test: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct AlertsQuery {
    #[serde(default)]
    done: Option<String>,
}

async fn page(
    state: &AppState,
    ui: &Ui,
    form: AlertForm,
    error: Option<String>,
    done: Option<&str>,
    test: Option<String>,
) -> Result<Response, UiError> {
    Ok(render(&AlertsPage {
        l: Layout::new(state, ui, "admin", "Alerts").flash(done),
        form,
        error,
        log: state.store.alert_log(LOG_ROWS).await?,
        test,
    }))
}

pub(crate) async fn view(
    State(state): State<AppState>,
    ui: Ui,
    Query(q): Query<AlertsQuery>,
) -> Result<Response, UiError> {
    ui.require(Role::Operator)?;
    let settings = working(&state, &ui).await?;
    let mut form = AlertForm::of(&settings.alerts);
    if !ui.is_admin() {
        form.webhook_url = crate::api::mask_webhook(&form.webhook_url);
    }
    let done = q.done.as_deref().filter(|d| *d != "tested");
    // After Send Test Alert: where the newest alert, the test, went.
    let test = if q.done.as_deref() == Some("tested") {
        state
            .store
            .alert_log(1)
            .await?
            .into_iter()
            .next()
            .map(|a| a.sent_to)
    } else {
        None
    };
    page(&state, &ui, form, None, done, test).await
}

pub(crate) async fn save(
    State(state): State<AppState>,
    Posted { ui, form }: Posted<AlertForm>,
) -> Result<Response, UiError> {
    ui.require(Role::Admin)?;
    let mut settings = working(&state, &ui).await?;
    let alerts = match form.parse() {
        Ok(a) => a,
        Err(e) => {
            let mut r = page(&state, &ui, form, Some(e), None, None).await?;
            *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            return Ok(r);
        }
    };
    let description = format!(
        "Alerts: {} recipient(s), webhook {}, repeat after {} min, queue threshold {}, free disk {} %",
        alerts.recipients.len(),
        if alerts.webhook_url.is_empty() {
            "none"
        } else {
            "set"
        },
        alerts.repeat_mins,
        alerts.queue_threshold,
        alerts.disk_free_percent
    );
    settings.alerts = alerts;
    match stage(&state, &ui, &settings, &["alerts"], description).await? {
        Ok(code) => Ok(done("/admin/alerts", code)),
        Err(errors) => {
            let mut r = page(&state, &ui, form, Some(errors.join(" ")), None, None).await?;
            *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Empty {}

/// *Send Test Alert*, with the committed settings.
pub(crate) async fn test(
    State(state): State<AppState>,
    Posted { ui, .. }: Posted<Empty>,
) -> Result<Response, UiError> {
    ui.require(Role::Operator)?;
    let Some(alerts) = &state.alerts else {
        return Err(UiError::BadRequest(
            "This web server runs without the appliance's alert sender.".into(),
        ));
    };
    alerts.send_test(&ui.user).await;
    Ok(done("/admin/alerts", "tested"))
}
