//! The table pages: *Mail Policies > HAT Overview* and *Recipient Access Table*, *Network > SMTP
//! Routes*, *Destination Controls* and *Bounce Profiles*.
//!
//! Each table page shows its table and one form that adds (or replaces) an entry; every row has
//! its own small forms (delete, and move for ordered tables). All of them post an `op` to the
//! page's URL; changes are staged until *Commit Changes*. The four tables share one [`view`] and
//! one [`post`]: a [`TablePage`] says what differs. The bounce profile is one record, not a table.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use rampart_settings::{
    BounceProfile, DestinationControl, FlowLimits, FlowPolicy, RatAction, RatEntry, SenderGroup,
    Settings, SmtpRoute, TlsPolicy,
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
    #[serde(default)]
    max_recipients_per_hour: String,
    #[serde(default)]
    max_connections_per_ip: String,
    /// The `[[listener]]` whose table this is ("" for a table kept once); set by the handler
    /// from the address, never read from the form.
    #[serde(skip)]
    listener: String,
}

impl TableForm {
    /// The HAT page this form belongs to: `[smtp]`'s, or a `[[listener]]`'s.
    pub(crate) fn hat_path(&self) -> String {
        if self.listener.is_empty() {
            "/mail-policies/hat".to_owned()
        } else {
            format!("/mail-policies/hat/{}", self.listener)
        }
    }
}

/// A table page's query: the confirmation of the last form, or the row to edit.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct TableQuery {
    done: Option<String>,
    /// `?edit=N`: the form shows row N and saves over it.
    edit: Option<usize>,
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
        Ok(code) => Ok(done(path, code)),
        Err(errors) => Ok(invalid(show(errors.join(" ")))),
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

// --- The generic table page ------------------------------------------------------------------

/// A table page: which settings table it shows, where it sits in the menus, and how its add
/// form becomes an entry. [`view`] and [`post`] do the rest for every table alike.
pub(crate) trait TablePage {
    type Row: Clone;
    /// The settings table, as staged.
    const TABLE: &'static str;
    /// The menu it sits under, its title and its URL.
    const MENU: &'static str;
    const TITLE: &'static str;
    const PATH: &'static str;
    /// How a change's description starts: `HAT`, `RAT`, ...
    const LABEL: &'static str;

    fn rows(settings: &mut Settings) -> &mut Vec<Self::Row>;
    /// A table kept per listener (the HAT) is edited for `scope`, a `[[listener]]`'s name; the
    /// others have only `""`.
    fn rows_in<'a>(settings: &'a mut Settings, _scope: &str) -> &'a mut Vec<Self::Row> {
        Self::rows(settings)
    }
    /// The settings table `scope`'s rows are staged in.
    fn table_in(_scope: &str) -> &'static str {
        Self::TABLE
    }
    /// Whether the table is kept per listener.
    const PER_LISTENER: bool = false;
    /// The add form's starting values.
    fn blank() -> TableForm {
        TableForm::default()
    }
    /// The form filled with an entry, to edit it.
    fn form_of(row: &Self::Row) -> TableForm;
    /// Refuses a delete or move the table does not allow.
    fn check_op(_rows: &[Self::Row], _form: &TableForm) -> Result<(), UiError> {
        Ok(())
    }
    /// The entry the form describes with the words for it, or what to fix; `rows` are the
    /// other entries (without the one being edited).
    fn parse(form: &TableForm, rows: &[Self::Row]) -> Result<(Self::Row, String), String>;
    /// Puts a new entry in (appended unless the table says otherwise).
    fn insert(rows: &mut Vec<Self::Row>, row: Self::Row) {
        rows.push(row);
    }
    fn page(l: Layout, rows: Vec<Self::Row>, form: TableForm, error: Option<String>) -> Response;
}

/// Shows a table page with the administrator's pending changes.
pub(crate) async fn view<P: TablePage>(
    state: State<AppState>,
    ui: Ui,
    q: Result<Query<TableQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, UiError> {
    show::<P>(state, ui, q, String::new()).await
}

/// The same for one `[[listener]]`'s table (`/mail-policies/hat/{listener}`).
pub(crate) async fn view_in<P: TablePage>(
    state: State<AppState>,
    ui: Ui,
    Path(listener): Path<String>,
    q: Result<Query<TableQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, UiError> {
    let scope = listener_scope::<P>(&state, &listener)?;
    show::<P>(state, ui, q, scope).await
}

/// A `[[listener]]` of this appliance (not `[smtp]`'s), for a table kept per listener.
fn listener_scope<P: TablePage>(state: &AppState, name: &str) -> Result<String, UiError> {
    state
        .options
        .listeners
        .iter()
        .find(|l| !l.main && l.name == name)
        .filter(|_| P::PER_LISTENER)
        .map(|l| l.name.clone())
        .ok_or_else(|| UiError::NotFound(format!("There is no listener named {name:?}.")))
}

/// Where a table's page is: its path, or its path for a listener.
fn path_in<P: TablePage>(scope: &str) -> String {
    if scope.is_empty() {
        P::PATH.to_owned()
    } else {
        format!("{}/{scope}", P::PATH)
    }
}

async fn show<P: TablePage>(
    State(state): State<AppState>,
    ui: Ui,
    q: Result<Query<TableQuery>, axum::extract::rejection::QueryRejection>,
    scope: String,
) -> Result<Response, UiError> {
    let Query(q) =
        q.map_err(|e| UiError::BadRequest(format!("Invalid address: {}", e.body_text())))?;
    let mut settings = working(&state, &ui).await?;
    let rows = std::mem::take(P::rows_in(&mut settings, &scope));
    let form = match q.edit {
        None => P::blank(),
        Some(i) => {
            let row = rows.get(i).ok_or_else(|| {
                UiError::NotFound(format!(
                    "There is no row {} in this table (any more); reload the page.",
                    i + 1
                ))
            })?;
            TableForm {
                op: "edit".into(),
                index: Some(i),
                ..P::form_of(row)
            }
        }
    };
    let form = TableForm {
        listener: scope,
        ..form
    };
    let l = Layout::new(&state, &ui, P::MENU, P::TITLE).flash(q.done.as_deref());
    Ok(P::page(l, rows, form, None))
}

/// Stages a delete, a move or an added entry, or shows the page again with what to fix.
pub(crate) async fn post<P: TablePage>(
    state: State<AppState>,
    posted: Posted<TableForm>,
) -> Result<Response, UiError> {
    save::<P>(state, posted, String::new()).await
}

/// The same for one `[[listener]]`'s table.
pub(crate) async fn post_in<P: TablePage>(
    state: State<AppState>,
    Path(listener): Path<String>,
    posted: Posted<TableForm>,
) -> Result<Response, UiError> {
    let scope = listener_scope::<P>(&state, &listener)?;
    save::<P>(state, posted, scope).await
}

async fn save<P: TablePage>(
    State(state): State<AppState>,
    Posted { ui, form }: Posted<TableForm>,
    scope: String,
) -> Result<Response, UiError> {
    ui.require(Role::Admin)?;
    let form = TableForm {
        listener: scope.clone(),
        ..form
    };
    let mut settings = working(&state, &ui).await?;
    P::check_op(P::rows_in(&mut settings, &scope), &form)?;
    let editing = match (form.op.as_str(), form.index) {
        ("edit", Some(i)) if i < P::rows_in(&mut settings, &scope).len() => Some(i),
        ("edit", _) => {
            return Err(UiError::BadRequest(
                "That row does not exist (any more); reload the page.".into(),
            ));
        }
        _ => None,
    };
    let label = if scope.is_empty() {
        P::LABEL.to_owned()
    } else {
        format!("{} of listener {scope}", P::LABEL)
    };
    let description = match row_op(P::rows_in(&mut settings, &scope), &form) {
        Some(r) => format!("{label}: {}", r?),
        None => {
            let rows = P::rows_in(&mut settings, &scope);
            let others: Vec<P::Row> = rows
                .iter()
                .enumerate()
                .filter(|(i, _)| Some(*i) != editing)
                .map(|(_, r)| r.clone())
                .collect();
            match (P::parse(&form, &others), editing) {
                (Ok((row, words)), Some(i)) => {
                    if let Some(slot) = rows.get_mut(i) {
                        *slot = row;
                    }
                    format!("{label}: row {} changed to {words}", i + 1)
                }
                (Ok((row, words)), None) => {
                    P::insert(rows, row);
                    format!("{label}: added {words}")
                }
                (Err(error), _) => {
                    let rows = std::mem::take(rows);
                    let l = Layout::new(&state, &ui, P::MENU, P::TITLE);
                    return Ok(invalid(P::page(l, rows, form, Some(error))));
                }
            }
        }
    };
    let rows = P::rows_in(&mut settings, &scope).clone();
    commit_or_show(
        &state,
        &ui,
        &settings,
        P::table_in(&scope),
        description,
        &path_in::<P>(&scope),
        |e| {
            P::page(
                Layout::new(&state, &ui, P::MENU, P::TITLE),
                rows,
                form,
                Some(e),
            )
        },
    )
    .await
}

/// Replaces the entry for the same domain, or appends: one entry per domain.
fn replace_by_domain<T>(rows: &mut Vec<T>, row: T, domain: impl Fn(&T) -> &str) {
    match rows
        .iter_mut()
        .find(|r| domain(r).eq_ignore_ascii_case(domain(&row)))
    {
        Some(existing) => *existing = row,
        None => rows.push(row),
    }
}

// --- HAT -----------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "hat.html")]
pub(crate) struct HatPage {
    l: Layout,
    rows: Vec<SenderGroup>,
    form: TableForm,
    error: Option<String>,
}

impl TablePage for HatPage {
    type Row = SenderGroup;
    const TABLE: &'static str = "hat";
    const MENU: &'static str = "policies";
    const TITLE: &'static str = "HAT Overview";
    const PATH: &'static str = "/mail-policies/hat";
    const LABEL: &'static str = "HAT";

    fn rows(settings: &mut Settings) -> &mut Vec<SenderGroup> {
        &mut settings.hat
    }

    const PER_LISTENER: bool = true;

    /// A listener without a HAT of its own starts from the one it runs with: loopback only.
    fn rows_in<'a>(settings: &'a mut Settings, scope: &str) -> &'a mut Vec<SenderGroup> {
        if scope.is_empty() {
            return &mut settings.hat;
        }
        let at = match settings
            .listener_hats
            .iter()
            .position(|h| h.listener == scope)
        {
            Some(i) => i,
            None => {
                settings.listener_hats.push(rampart_settings::ListenerHat {
                    listener: scope.to_owned(),
                    hat: rampart_settings::loopback_only_hat(),
                });
                settings.listener_hats.len() - 1
            }
        };
        match settings.listener_hats.get_mut(at) {
            Some(h) => &mut h.hat,
            None => &mut settings.hat,
        }
    }

    fn table_in(scope: &str) -> &'static str {
        if scope.is_empty() {
            "hat"
        } else {
            "listener_hats"
        }
    }

    fn parse(form: &TableForm, rows: &[SenderGroup]) -> Result<(SenderGroup, String), String> {
        let policy = match form.policy.as_str() {
            "RELAY" => FlowPolicy::Relay,
            "REJECT" => FlowPolicy::Reject,
            "TCPREFUSE" => FlowPolicy::Tcprefuse,
            _ => FlowPolicy::Accept,
        };
        // A limit left empty is no limit.
        let limit = |value: &str, what: &str| -> Result<Option<u32>, String> {
            match value.trim() {
                "" => Ok(None),
                v => number(v, what).map(Some),
            }
        };
        let limits = FlowLimits {
            max_messages_per_connection: limit(
                &form.max_messages_per_connection,
                "Max. Messages per Connection",
            )?,
            max_recipients_per_hour: limit(
                &form.max_recipients_per_hour,
                "Max. Recipients per Hour",
            )?,
            max_connections_per_ip: limit(
                &form.max_connections_per_ip,
                "Max. Concurrent Connections per IP",
            )?,
            tls: match form.tls.as_str() {
                "off" => Some(TlsPolicy::Off),
                "required" => Some(TlsPolicy::Required),
                "preferred" => Some(TlsPolicy::Preferred),
                _ => None,
            },
        };
        let group = SenderGroup {
            name: form.name.trim().to_owned(),
            hosts: items(&form.hosts),
            policy,
            limits,
        };
        if group.name.is_empty() {
            return Err("Enter a sender group name.".to_owned());
        }
        if group.hosts.is_empty() {
            return Err(
                "Enter at least one host: an IP address, a CIDR range, a host name, or ALL."
                    .to_owned(),
            );
        }
        if rows
            .iter()
            .any(|g| g.name.eq_ignore_ascii_case(&group.name))
        {
            return Err(format!(
                "A sender group named {:?} exists already.",
                group.name
            ));
        }
        let words = format!(
            "sender group {} ({}) with policy {}",
            group.name,
            group.hosts.join(", "),
            policy.as_str()
        );
        Ok((group, words))
    }

    fn form_of(g: &SenderGroup) -> TableForm {
        TableForm {
            name: g.name.clone(),
            hosts: g.hosts.join("\n"),
            policy: g.policy.as_str().to_owned(),
            max_messages_per_connection: g
                .limits
                .max_messages_per_connection
                .map(|n| n.to_string())
                .unwrap_or_default(),
            max_recipients_per_hour: g
                .limits
                .max_recipients_per_hour
                .map(|n| n.to_string())
                .unwrap_or_default(),
            max_connections_per_ip: g
                .limits
                .max_connections_per_ip
                .map(|n| n.to_string())
                .unwrap_or_default(),
            tls: match g.limits.tls {
                Some(TlsPolicy::Off) => "off",
                Some(TlsPolicy::Required) => "required",
                Some(TlsPolicy::Preferred) => "preferred",
                None => "",
            }
            .to_owned(),
            ..TableForm::default()
        }
    }

    /// New groups go above a final catch-all, as on an appliance.
    fn insert(rows: &mut Vec<SenderGroup>, group: SenderGroup) {
        let at = match rows.last() {
            Some(g) if g.hosts.iter().any(|h| h.eq_ignore_ascii_case("ALL")) => rows.len() - 1,
            _ => rows.len(),
        };
        rows.insert(at, group);
    }

    fn page(l: Layout, rows: Vec<SenderGroup>, form: TableForm, error: Option<String>) -> Response {
        render(&HatPage {
            l,
            rows,
            form,
            error,
        })
    }
}

// --- RAT -----------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "rat.html")]
pub(crate) struct RatPage {
    l: Layout,
    rows: Vec<RatEntry>,
    form: TableForm,
    error: Option<String>,
    /// `ALL` → Accept is in the table: say what that means.
    open_relay: bool,
}

impl TablePage for RatPage {
    type Row = RatEntry;
    const TABLE: &'static str = "rat";
    const MENU: &'static str = "policies";
    const TITLE: &'static str = "Recipient Access Table (RAT)";
    const PATH: &'static str = "/mail-policies/rat";
    const LABEL: &'static str = "RAT";

    fn rows(settings: &mut Settings) -> &mut Vec<RatEntry> {
        &mut settings.rat
    }

    fn parse(form: &TableForm, _rows: &[RatEntry]) -> Result<(RatEntry, String), String> {
        let action = if form.action == "reject" {
            RatAction::Reject
        } else {
            RatAction::Accept
        };
        let domain = form.domain.trim().to_owned();
        if domain.is_empty() {
            return Err(
                "Enter a domain: example.com, .example.com for its subdomains, or ALL.".into(),
            );
        }
        let words = format!(
            "{domain} ({})",
            if action == RatAction::Accept {
                "accept"
            } else {
                "reject"
            }
        );
        Ok((RatEntry { domain, action }, words))
    }

    fn form_of(e: &RatEntry) -> TableForm {
        TableForm {
            domain: e.domain.clone(),
            action: match e.action {
                RatAction::Accept => "accept",
                RatAction::Reject => "reject",
            }
            .into(),
            ..TableForm::default()
        }
    }

    fn page(l: Layout, rows: Vec<RatEntry>, form: TableForm, error: Option<String>) -> Response {
        let open_relay = rampart_settings::rat::accepts_all(&rows);
        render(&RatPage {
            l,
            rows,
            form,
            error,
            open_relay,
        })
    }
}

// --- SMTP routes ---------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "routes.html")]
pub(crate) struct RoutesPage {
    l: Layout,
    rows: Vec<SmtpRoute>,
    form: TableForm,
    error: Option<String>,
}

impl TablePage for RoutesPage {
    type Row = SmtpRoute;
    const TABLE: &'static str = "smtp_routes";
    const MENU: &'static str = "network";
    const TITLE: &'static str = "SMTP Routes";
    const PATH: &'static str = "/network/smtp-routes";
    const LABEL: &'static str = "SMTP Routes";

    fn rows(settings: &mut Settings) -> &mut Vec<SmtpRoute> {
        &mut settings.smtp_routes
    }

    fn parse(form: &TableForm, _rows: &[SmtpRoute]) -> Result<(SmtpRoute, String), String> {
        let route = SmtpRoute {
            domain: form.domain.trim().to_owned(),
            hosts: items(&form.hosts),
        };
        if route.domain.is_empty() {
            return Err(
                "Enter the receiving domain (example.com, .example.com or ALL).".to_owned(),
            );
        }
        if route.hosts.is_empty() {
            return Err(
                "Enter at least one destination host (host, host:port or [ip]:port).".to_owned(),
            );
        }
        let words = format!("{} → {}", route.domain, route.hosts.join(", "));
        Ok((route, words))
    }

    fn form_of(r: &SmtpRoute) -> TableForm {
        TableForm {
            domain: r.domain.clone(),
            hosts: r.hosts.join("\n"),
            ..TableForm::default()
        }
    }

    /// One route per domain: a new route for a known domain replaces it.
    fn insert(rows: &mut Vec<SmtpRoute>, route: SmtpRoute) {
        replace_by_domain(rows, route, |r| &r.domain);
    }

    fn page(l: Layout, rows: Vec<SmtpRoute>, form: TableForm, error: Option<String>) -> Response {
        render(&RoutesPage {
            l,
            rows,
            form,
            error,
        })
    }
}

// --- Destination controls ------------------------------------------------------------------

#[derive(Template)]
#[template(path = "destinations.html")]
pub(crate) struct DestinationsPage {
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

impl TablePage for DestinationsPage {
    type Row = DestinationControl;
    const TABLE: &'static str = "destination_controls";
    const MENU: &'static str = "network";
    const TITLE: &'static str = "Destination Controls";
    const PATH: &'static str = "/network/destination-controls";
    const LABEL: &'static str = "Destination Controls";

    fn rows(settings: &mut Settings) -> &mut Vec<DestinationControl> {
        &mut settings.destination_controls
    }

    fn blank() -> TableForm {
        TableForm {
            max_connections: "20".into(),
            max_messages_per_connection: "50".into(),
            tls: "preferred".into(),
            ..TableForm::default()
        }
    }

    fn check_op(rows: &[DestinationControl], form: &TableForm) -> Result<(), UiError> {
        let target = form.index.and_then(|i| rows.get(i));
        if form.op == "delete" && target.is_some_and(|d| d.domain == "default") {
            return Err(UiError::BadRequest(
                "The default destination control cannot be deleted; edit it instead.".into(),
            ));
        }
        if form.op == "edit"
            && target.is_some_and(|d| d.domain == "default")
            && !form.domain.trim().eq_ignore_ascii_case("default")
        {
            return Err(UiError::BadRequest(
                "The default destination control keeps its name; add a new destination for \
                 a domain instead."
                    .into(),
            ));
        }
        Ok(())
    }

    fn parse(
        form: &TableForm,
        _rows: &[DestinationControl],
    ) -> Result<(DestinationControl, String), String> {
        let domain = form.domain.trim().to_owned();
        if domain.is_empty() {
            return Err("Enter a destination domain, or default.".to_owned());
        }
        let control = DestinationControl {
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
        };
        let words = format!(
            "{} at most {} connections, {} messages per connection, TLS {}{}",
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
        Ok((control, words))
    }

    fn form_of(c: &DestinationControl) -> TableForm {
        TableForm {
            domain: c.domain.clone(),
            max_connections: c.max_connections.to_string(),
            max_messages_per_connection: c.max_messages_per_connection.to_string(),
            tls: match c.tls {
                TlsPolicy::Off => "off",
                TlsPolicy::Preferred => "preferred",
                TlsPolicy::Required => "required",
            }
            .into(),
            verify_tls: c.verify_tls.then(|| "on".to_owned()),
            ..TableForm::default()
        }
    }

    /// One control per domain: a new one for a known domain replaces it.
    fn insert(rows: &mut Vec<DestinationControl>, control: DestinationControl) {
        replace_by_domain(rows, control, |c| &c.domain);
    }

    fn page(
        l: Layout,
        rows: Vec<DestinationControl>,
        form: TableForm,
        error: Option<String>,
    ) -> Response {
        render(&DestinationsPage {
            l,
            rows,
            form,
            error,
        })
    }
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
