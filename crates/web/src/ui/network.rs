//! The table pages: *Mail Policies > HAT Overview* and *Recipient Access Table*, *Network > SMTP
//! Routes*, *Destination Controls* and *Bounce Profiles*.
//!
//! Each page shows its table and one form that adds (or replaces) an entry; every row has its
//! own small forms (delete, and move for ordered tables). All of them post an `op` to the page's
//! URL; changes are staged until *Commit Changes*.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use rampart_settings::{
    BounceProfile, DestinationControl, FlowPolicy, RatAction, RatEntry, SenderGroup, Settings,
    SmtpRoute, TlsPolicy,
};
use rampart_store::Role;
use serde::Deserialize;

use super::{Done, Layout, Posted, Ui, UiError, done, items, render, stage, working};
use crate::AppState;

/// The fields every table form may carry; each page reads the ones it has.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct TableForm {
    /// add | delete | up | down
    #[serde(default)]
    op: String,
    /// The row a delete or move applies to.
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    domain: String,
    #[serde(default)]
    hosts: String,
    #[serde(default)]
    policy: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    max_connections: String,
    #[serde(default)]
    max_messages_per_connection: String,
    #[serde(default)]
    tls: String,
    #[serde(default)]
    verify_tls: Option<String>,
    #[serde(default)]
    max_retries: String,
    #[serde(default)]
    max_queue_secs: String,
    #[serde(default)]
    initial_retry_secs: String,
    #[serde(default)]
    max_retry_secs: String,
    #[serde(default)]
    send_dsn: Option<String>,
}

/// Deletes or moves row `index` of `rows`; `None` when `op` is neither.
fn row_op<T>(rows: &mut Vec<T>, form: &TableForm) -> Option<Result<String, UiError>> {
    let op = form.op.as_str();
    if !matches!(op, "delete" | "up" | "down") {
        return None;
    }
    let Some(i) = form.index.filter(|&i| i < rows.len()) else {
        return Some(Err(UiError::BadRequest(
            "That row does not exist (any more); reload the page.".into(),
        )));
    };
    Some(match op {
        "delete" => {
            rows.remove(i);
            Ok(format!("deleted row {}", i + 1))
        }
        "up" if i > 0 => {
            rows.swap(i, i - 1);
            Ok(format!("moved row {} up", i + 1))
        }
        "down" if i + 1 < rows.len() => {
            rows.swap(i, i + 1);
            Ok(format!("moved row {} down", i + 1))
        }
        _ => Err(UiError::BadRequest("That row cannot move further.".into())),
    })
}

/// Stages a table change, or re-shows the page with the problems.
async fn commit_or_show(
    state: &AppState,
    ui: &Ui,
    settings: &Settings,
    table: &str,
    description: String,
    path: &str,
    show: impl FnOnce(String) -> Response,
) -> Result<Response, UiError> {
    match stage(state, ui, settings, &[table], description).await? {
        Ok(()) => Ok(done(path, "staged")),
        Err(errors) => Ok(invalid(show(errors.join("; ")))),
    }
}

fn invalid(mut r: Response) -> Response {
    *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    r
}

fn number<T: std::str::FromStr>(value: &str, what: &str) -> Result<T, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("{what} must be a whole number, not {:?}", value.trim()))
}

// --- HAT -----------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "hat.html")]
struct HatPage {
    l: Layout,
    rows: Vec<SenderGroup>,
    form: TableForm,
    error: Option<String>,
}

pub(crate) async fn hat(
    State(state): State<AppState>,
    ui: Ui,
    Query(q): Query<Done>,
) -> Result<Response, UiError> {
    let settings = working(&state, &ui).await?;
    Ok(render(&HatPage {
        l: Layout::new(&state, &ui, "policies", "HAT Overview").flash(q.done.as_deref()),
        rows: settings.hat,
        form: TableForm::default(),
        error: None,
    }))
}

pub(crate) async fn hat_post(
    State(state): State<AppState>,
    Posted { ui, form }: Posted<TableForm>,
) -> Result<Response, UiError> {
    ui.require(Role::Admin)?;
    let mut settings = working(&state, &ui).await?;
    let description = match row_op(&mut settings.hat, &form) {
        Some(r) => format!("HAT: {}", r?),
        None => {
            let policy = match form.policy.as_str() {
                "ACCEPT" => FlowPolicy::Accept,
                "RELAY" => FlowPolicy::Relay,
                "REJECT" => FlowPolicy::Reject,
                "TCPREFUSE" => FlowPolicy::Tcprefuse,
                _ => FlowPolicy::Accept,
            };
            let group = SenderGroup {
                name: form.name.trim().to_owned(),
                hosts: items(&form.hosts),
                policy,
            };
            let error = if group.name.is_empty() {
                Some("Enter a sender group name.".to_owned())
            } else if group.hosts.is_empty() {
                Some(
                    "Enter at least one host: an IP address, a CIDR range, a host name, or ALL."
                        .to_owned(),
                )
            } else if settings
                .hat
                .iter()
                .any(|g| g.name.eq_ignore_ascii_case(&group.name))
            {
                Some(format!(
                    "A sender group named {:?} exists already.",
                    group.name
                ))
            } else {
                None
            };
            if let Some(error) = error {
                let rows = settings.hat;
                return Ok(invalid(render(&HatPage {
                    l: Layout::new(&state, &ui, "policies", "HAT Overview"),
                    rows,
                    form,
                    error: Some(error),
                })));
            }
            let d = format!(
                "HAT: added sender group {} ({}) with policy {}",
                group.name,
                group.hosts.join(", "),
                policy.as_str()
            );
            // New groups go above a final catch-all, as on an appliance.
            let at = match settings.hat.last() {
                Some(g) if g.hosts.iter().any(|h| h.eq_ignore_ascii_case("ALL")) => {
                    settings.hat.len() - 1
                }
                _ => settings.hat.len(),
            };
            settings.hat.insert(at, group);
            d
        }
    };
    let rows = settings.hat.clone();
    commit_or_show(
        &state,
        &ui,
        &settings,
        "hat",
        description,
        "/mail-policies/hat",
        |e| {
            render(&HatPage {
                l: Layout::new(&state, &ui, "policies", "HAT Overview"),
                rows,
                form,
                error: Some(e),
            })
        },
    )
    .await
}

// --- RAT -----------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "rat.html")]
struct RatPage {
    l: Layout,
    rows: Vec<RatEntry>,
    form: TableForm,
    error: Option<String>,
}

pub(crate) async fn rat(
    State(state): State<AppState>,
    ui: Ui,
    Query(q): Query<Done>,
) -> Result<Response, UiError> {
    let settings = working(&state, &ui).await?;
    Ok(render(&RatPage {
        l: Layout::new(&state, &ui, "policies", "Recipient Access Table (RAT)")
            .flash(q.done.as_deref()),
        rows: settings.rat,
        form: TableForm::default(),
        error: None,
    }))
}

pub(crate) async fn rat_post(
    State(state): State<AppState>,
    Posted { ui, form }: Posted<TableForm>,
) -> Result<Response, UiError> {
    ui.require(Role::Admin)?;
    let mut settings = working(&state, &ui).await?;
    let description = match row_op(&mut settings.rat, &form) {
        Some(r) => format!("RAT: {}", r?),
        None => {
            let action = if form.action == "reject" {
                RatAction::Reject
            } else {
                RatAction::Accept
            };
            let domain = form.domain.trim().to_owned();
            if domain.is_empty() {
                let rows = settings.rat;
                return Ok(invalid(render(&RatPage {
                    l: Layout::new(&state, &ui, "policies", "Recipient Access Table (RAT)"),
                    rows,
                    form,
                    error: Some(
                        "Enter a domain: example.com, .example.com for its subdomains, or ALL."
                            .into(),
                    ),
                })));
            }
            let d = format!(
                "RAT: added {domain} ({})",
                if action == RatAction::Accept {
                    "accept"
                } else {
                    "reject"
                }
            );
            settings.rat.push(RatEntry { domain, action });
            d
        }
    };
    let rows = settings.rat.clone();
    commit_or_show(
        &state,
        &ui,
        &settings,
        "rat",
        description,
        "/mail-policies/rat",
        |e| {
            render(&RatPage {
                l: Layout::new(&state, &ui, "policies", "Recipient Access Table (RAT)"),
                rows,
                form,
                error: Some(e),
            })
        },
    )
    .await
}

// --- SMTP routes ---------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "routes.html")]
struct RoutesPage {
    l: Layout,
    rows: Vec<SmtpRoute>,
    form: TableForm,
    error: Option<String>,
}

pub(crate) async fn routes(
    State(state): State<AppState>,
    ui: Ui,
    Query(q): Query<Done>,
) -> Result<Response, UiError> {
    let settings = working(&state, &ui).await?;
    Ok(render(&RoutesPage {
        l: Layout::new(&state, &ui, "network", "SMTP Routes").flash(q.done.as_deref()),
        rows: settings.smtp_routes,
        form: TableForm::default(),
        error: None,
    }))
}

pub(crate) async fn routes_post(
    State(state): State<AppState>,
    Posted { ui, form }: Posted<TableForm>,
) -> Result<Response, UiError> {
    ui.require(Role::Admin)?;
    let mut settings = working(&state, &ui).await?;
    let description = match row_op(&mut settings.smtp_routes, &form) {
        Some(r) => format!("SMTP Routes: {}", r?),
        None => {
            let route = SmtpRoute {
                domain: form.domain.trim().to_owned(),
                hosts: items(&form.hosts),
            };
            let error = if route.domain.is_empty() {
                Some("Enter the receiving domain (example.com, .example.com or ALL).".to_owned())
            } else if route.hosts.is_empty() {
                Some(
                    "Enter at least one destination host (host, host:port or [ip]:port)."
                        .to_owned(),
                )
            } else {
                None
            };
            if let Some(error) = error {
                let rows = settings.smtp_routes;
                return Ok(invalid(render(&RoutesPage {
                    l: Layout::new(&state, &ui, "network", "SMTP Routes"),
                    rows,
                    form,
                    error: Some(error),
                })));
            }
            let d = format!("SMTP Routes: {} → {}", route.domain, route.hosts.join(", "));
            // One route per domain: a new route for a known domain replaces it.
            match settings
                .smtp_routes
                .iter_mut()
                .find(|r| r.domain.eq_ignore_ascii_case(&route.domain))
            {
                Some(existing) => *existing = route,
                None => settings.smtp_routes.push(route),
            }
            d
        }
    };
    let rows = settings.smtp_routes.clone();
    commit_or_show(
        &state,
        &ui,
        &settings,
        "smtp_routes",
        description,
        "/network/smtp-routes",
        |e| {
            render(&RoutesPage {
                l: Layout::new(&state, &ui, "network", "SMTP Routes"),
                rows,
                form,
                error: Some(e),
            })
        },
    )
    .await
}

// --- Destination controls ------------------------------------------------------------------

#[derive(Template)]
#[template(path = "destinations.html")]
struct DestinationsPage {
    l: Layout,
    rows: Vec<DestinationControl>,
    form: TableForm,
    error: Option<String>,
}

fn tls_label(t: &TlsPolicy) -> &'static str {
    match t {
        TlsPolicy::Off => "No",
        TlsPolicy::Preferred => "Preferred",
        TlsPolicy::Required => "Required",
    }
}

pub(crate) async fn destinations(
    State(state): State<AppState>,
    ui: Ui,
    Query(q): Query<Done>,
) -> Result<Response, UiError> {
    let settings = working(&state, &ui).await?;
    Ok(render(&DestinationsPage {
        l: Layout::new(&state, &ui, "network", "Destination Controls").flash(q.done.as_deref()),
        rows: settings.destination_controls,
        form: TableForm {
            max_connections: "20".into(),
            max_messages_per_connection: "50".into(),
            tls: "preferred".into(),
            ..TableForm::default()
        },
        error: None,
    }))
}

pub(crate) async fn destinations_post(
    State(state): State<AppState>,
    Posted { ui, form }: Posted<TableForm>,
) -> Result<Response, UiError> {
    ui.require(Role::Admin)?;
    let mut settings = working(&state, &ui).await?;
    if form.op == "delete"
        && form
            .index
            .and_then(|i| settings.destination_controls.get(i))
            .map(|d| d.domain.as_str())
            == Some("default")
    {
        return Err(UiError::BadRequest(
            "The default destination control cannot be deleted; edit it instead.".into(),
        ));
    }
    let description = match row_op(&mut settings.destination_controls, &form) {
        Some(r) => format!("Destination Controls: {}", r?),
        None => {
            let parsed = (|| {
                let domain = form.domain.trim().to_owned();
                if domain.is_empty() {
                    return Err("Enter a destination domain, or default.".to_owned());
                }
                Ok(DestinationControl {
                    domain,
                    max_connections: number(&form.max_connections, "Maximum connections")?,
                    max_messages_per_connection: number(
                        &form.max_messages_per_connection,
                        "Messages per connection",
                    )?,
                    tls: match form.tls.as_str() {
                        "off" => TlsPolicy::Off,
                        "required" => TlsPolicy::Required,
                        _ => TlsPolicy::Preferred,
                    },
                    verify_tls: form.verify_tls.is_some(),
                })
            })();
            let control = match parsed {
                Ok(c) => c,
                Err(error) => {
                    let rows = settings.destination_controls;
                    return Ok(invalid(render(&DestinationsPage {
                        l: Layout::new(&state, &ui, "network", "Destination Controls"),
                        rows,
                        form,
                        error: Some(error),
                    })));
                }
            };
            let d = format!(
                "Destination Controls: {} at most {} connections, {} messages per connection, TLS {}{}",
                control.domain,
                control.max_connections,
                control.max_messages_per_connection,
                tls_label(&control.tls),
                if control.verify_tls {
                    " (verified)"
                } else {
                    ""
                }
            );
            match settings
                .destination_controls
                .iter_mut()
                .find(|c| c.domain.eq_ignore_ascii_case(&control.domain))
            {
                Some(existing) => *existing = control,
                None => settings.destination_controls.push(control),
            }
            d
        }
    };
    let rows = settings.destination_controls.clone();
    commit_or_show(
        &state,
        &ui,
        &settings,
        "destination_controls",
        description,
        "/network/destination-controls",
        |e| {
            render(&DestinationsPage {
                l: Layout::new(&state, &ui, "network", "Destination Controls"),
                rows,
                form,
                error: Some(e),
            })
        },
    )
    .await
}

// --- Bounce profile ------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "bounce.html")]
struct BouncePage {
    l: Layout,
    form: TableForm,
    error: Option<String>,
}

fn bounce_form(p: &BounceProfile) -> TableForm {
    TableForm {
        max_retries: p.max_retries.to_string(),
        max_queue_secs: p.max_queue_secs.to_string(),
        initial_retry_secs: p.initial_retry_secs.to_string(),
        max_retry_secs: p.max_retry_secs.to_string(),
        send_dsn: p.send_dsn.then(|| "on".to_owned()),
        ..TableForm::default()
    }
}

pub(crate) async fn bounce(
    State(state): State<AppState>,
    ui: Ui,
    Query(q): Query<Done>,
) -> Result<Response, UiError> {
    let settings = working(&state, &ui).await?;
    Ok(render(&BouncePage {
        l: Layout::new(&state, &ui, "network", "Bounce Profiles").flash(q.done.as_deref()),
        form: bounce_form(&settings.bounce_profile),
        error: None,
    }))
}

pub(crate) async fn bounce_post(
    State(state): State<AppState>,
    Posted { ui, form }: Posted<TableForm>,
) -> Result<Response, UiError> {
    ui.require(Role::Admin)?;
    let mut settings = working(&state, &ui).await?;
    let parsed = (|| {
        Ok::<_, String>(BounceProfile {
            max_retries: number(&form.max_retries, "Maximum number of retries")?,
            max_queue_secs: number(&form.max_queue_secs, "Maximum time in queue")?,
            initial_retry_secs: number(&form.initial_retry_secs, "Initial time to wait")?,
            max_retry_secs: number(&form.max_retry_secs, "Maximum time to wait")?,
            send_dsn: form.send_dsn.is_some(),
        })
    })();
    let profile = match parsed {
        Ok(p) => p,
        Err(e) => {
            return Ok(invalid(render(&BouncePage {
                l: Layout::new(&state, &ui, "network", "Bounce Profiles"),
                form,
                error: Some(e),
            })));
        }
    };
    let description = format!(
        "Bounce Profiles: {} retries, {} s in queue, retry wait {}–{} s, DSNs {}",
        profile.max_retries,
        profile.max_queue_secs,
        profile.initial_retry_secs,
        profile.max_retry_secs,
        if profile.send_dsn { "on" } else { "off" }
    );
    settings.bounce_profile = profile;
    commit_or_show(
        &state,
        &ui,
        &settings,
        "bounce_profile",
        description,
        "/network/bounce-profiles",
        |e| {
            render(&BouncePage {
                l: Layout::new(&state, &ui, "network", "Bounce Profiles"),
                form,
                error: Some(e),
            })
        },
    )
    .await
}
