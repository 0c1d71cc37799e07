//! *Monitor*: System Status (counters and charts as server-rendered SVG), Delivery Status (the
//! `tophosts` figures with *Retry Delivery*), and Message Tracking.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use rampart_store::{Bucket, HostRow, Mid, Role, Totals, TrackEvent, TrackFilter, Tracked};
use serde::{Deserialize, Serialize};

use super::{Done, Layout, Posted, Ui, UiError, done, render, thousands, time, time_ms};
use crate::AppState;

/// Slots of the activity chart: 24 of 15 minutes, the last six hours.
const SLOT_SECS: i64 = 15 * 60;
const SLOTS: usize = 24;

/// A line chart drawn on the server: no script, no inline style.
#[derive(Debug)]
pub(crate) struct Chart {
    pub width: u32,
    pub height: u32,
    /// (css class, colour, polyline points, total) per series.
    pub series: Vec<(&'static str, &'static str, String, u64)>,
    /// (x, label) along the bottom.
    pub x_labels: Vec<(u32, String)>,
    pub y_max: u64,
    /// Plot area: left, top, right, bottom.
    pub plot: (u32, u32, u32, u32),
}

impl Chart {
    fn new(buckets: &[Bucket]) -> Chart {
        let (width, height) = (900u32, 240u32);
        let (left, top, right, bottom) = (48u32, 14u32, width - 12, height - 28);
        let y_max = buckets
            .iter()
            .flat_map(|b| {
                [
                    b.received,
                    b.delivered,
                    b.journaled,
                    b.bounced,
                    b.spam,
                    b.virus,
                ]
            })
            .max()
            .unwrap_or(0)
            .max(4);
        let n = buckets.len().max(2);
        let x = |i: usize| left + ((right - left) as usize * i / (n - 1)) as u32;
        let y = |v: u64| bottom - ((bottom - top) as u64 * v / y_max) as u32;
        let line = |get: fn(&Bucket) -> u64| {
            buckets
                .iter()
                .enumerate()
                .map(|(i, b)| format!("{},{}", x(i), y(get(b))))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let total = |get: fn(&Bucket) -> u64| buckets.iter().map(get).sum();
        let series = [
            (
                "received",
                "#049fd9",
                (|b| b.received) as fn(&Bucket) -> u64,
            ),
            ("delivered", "#2e7d32", |b| b.delivered),
            ("journaled", "#7b1fa2", |b| b.journaled),
            ("bounced", "#c62828", |b| b.bounced),
            ("spam", "#ef6c00", |b| b.spam),
            ("virus", "#4e342e", |b| b.virus),
        ]
        .into_iter()
        .map(|(name, colour, get)| (name, colour, line(get), total(get)))
        .collect();
        let x_labels = buckets
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 4 == 0)
            .map(|(i, b)| {
                let label = chrono::DateTime::from_timestamp(b.start, 0)
                    .map(|t| t.format("%H:%M").to_string())
                    .unwrap_or_default();
                (x(i), label)
            })
            .collect();
        Chart {
            width,
            height,
            series,
            x_labels,
            y_max,
            plot: (left, top, right, bottom),
        }
    }
}

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage {
    l: Layout,
    uptime: String,
    totals: Totals,
    tdc_enabled: bool,
    tdc_address: String,
    chart: Chart,
    hosts_down: usize,
    syslog: Option<rampart_maillog::SyslogStatus>,
    cluster: Option<rampart_store::ClusterHealth>,
    /// Cluster mode: every node's counters summed, as of their heartbeats.
    cluster_totals: Option<Totals>,
}

fn uptime(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    format!("{d}d {h}h {m}m {}s", secs % 60)
}

pub(crate) async fn status(State(state): State<AppState>, ui: Ui) -> Result<Response, UiError> {
    let totals = state.store.totals().await?;
    let buckets = state.store.activity(SLOT_SECS, SLOTS).await?;
    let hosts_down = state
        .store
        .tophosts()
        .await?
        .iter()
        .filter(|h| h.down)
        .count();
    let snapshot = state.settings.load();
    let tdc = &snapshot.settings().tdc;
    Ok(render(&StatusPage {
        l: Layout::new(&state, &ui, "monitor", "System Status"),
        uptime: uptime(state.started.elapsed().as_secs()),
        totals,
        tdc_enabled: tdc.enabled,
        tdc_address: tdc.intake_address.clone(),
        chart: Chart::new(&buckets),
        hosts_down,
        syslog: state.syslog.as_ref().map(|s| s.status()),
        cluster: state.store.cluster_health(),
        cluster_totals: crate::cluster::ClusterView::read(&state.store)
            .await
            .ok()
            .flatten()
            .and_then(|v| v.totals()),
    }))
}

#[derive(Template)]
#[template(path = "delivery.html")]
struct DeliveryPage {
    l: Layout,
    hosts: Vec<HostRow>,
    held: Vec<String>,
    now: String,
    /// Cluster mode: the nodes to show (this node first), and the one asked for.
    nodes: Option<Vec<String>>,
    node: String,
    /// This node's table: its hosts link to their details, and Retry is offered.
    local: bool,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct DeliveryQuery {
    done: Option<String>,
    /// Cluster mode: `*` for the whole cluster, a node's name; empty: this node.
    #[serde(default)]
    node: String,
}

pub(crate) async fn delivery(
    State(state): State<AppState>,
    ui: Ui,
    Query(q): Query<DeliveryQuery>,
) -> Result<Response, UiError> {
    let node = crate::api::track_node(&state.store, Some(&q.node)).map_err(UiError::BadRequest)?;
    let own = state.store.cluster_health().map(|h| h.node);
    let local = node.is_none() || node == own;
    let hosts = match state.store.tophosts_in(node.as_deref()).await {
        Err(rampart_store::StoreError::Conflict(why)) => return Err(UiError::NotFound(why)),
        r => r?,
    };
    Ok(render(&DeliveryPage {
        l: Layout::new(&state, &ui, "monitor", "Delivery Status").flash(q.done.as_deref()),
        hosts,
        held: state.store.held_hosts().await?,
        now: time(rampart_store::unix_now()),
        nodes: super::node_choices(&state).await,
        node: q.node,
        local,
    }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct RetryForm {
    /// A host of the table, or empty for all.
    #[serde(default)]
    host: String,
    /// `host` to come back to the host's details page.
    #[serde(default)]
    back: String,
}

/// *Retry Delivery*: everything queued for the host is due now.
pub(crate) async fn retry(
    State(state): State<AppState>,
    Posted { ui, form }: Posted<RetryForm>,
) -> Result<Response, UiError> {
    ui.require(Role::Operator)?;
    let host = Some(form.host.trim()).filter(|h| !h.is_empty());
    let n = state.store.deliver_now(host).await?;
    tracing::info!(user = %ui.user, host = host.unwrap_or("all"), rows = n, "retry delivery from the web UI");
    match (host, form.back.as_str()) {
        (Some(h), "host") => Ok(done(&host_page(&h.to_ascii_lowercase()), "retried")),
        _ => Ok(done("/monitor/delivery", "retried")),
    }
}

#[derive(Template)]
#[template(path = "delivery_host.html")]
struct HostPage {
    l: Layout,
    d: rampart_store::HostDetail,
    intakes: Vec<rampart_store::IntakeRow>,
    is_tdc: bool,
    /// Message Tracking's search for this destination's waiting recipients.
    tracking_link: String,
}

/// A unix time as the details show it, or a dash.
pub(crate) fn maybe_time(t: &Option<i64>) -> String {
    t.map_or_else(|| "–".to_owned(), time)
}

/// *Delivery Status* details of one destination (AsyncOS `hoststatus`): the counters, the last
/// error, the next retry, Retry / Hold / Resume; the.tdc.queue per intake address.
pub(crate) async fn host_detail(
    State(state): State<AppState>,
    ui: Ui,
    Path(host): Path<String>,
    Query(q): Query<Done>,
) -> Result<Response, UiError> {
    let host = crate::api::host_name(&host).map_err(UiError::BadRequest)?;
    let d =
        state.store.host_detail(&host).await?.ok_or_else(|| {
            UiError::NotFound(format!("Nothing was delivered or queued for {host}."))
        })?;
    let is_tdc = host == rampart_tdc::TDC_QUEUE;
    let intakes = if is_tdc {
        state.store.intakes().await?
    } else {
        Vec::new()
    };
    let tracking_link = format!(
        "/monitor/tracking?{}",
        serde_urlencoded::to_string([
            ("recipient", format!("@{host}")),
            ("event", "queued".into())
        ])
        .unwrap_or_default()
    );
    Ok(render(&HostPage {
        l: Layout::new(&state, &ui, "monitor", format!("Delivery Status: {host}"))
            .flash(q.done.as_deref()),
        d,
        intakes,
        is_tdc,
        tracking_link,
    }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct HostForm {
    host: String,
}

fn host_page(host: &str) -> String {
    format!("/monitor/delivery/host/{host}")
}

/// *Hold Delivery* (AsyncOS `suspenddel` for one destination).
pub(crate) async fn hold(
    State(state): State<AppState>,
    Posted { ui, form }: Posted<HostForm>,
) -> Result<Response, UiError> {
    ui.require(Role::Operator)?;
    let host = crate::api::host_name(&form.host).map_err(UiError::BadRequest)?;
    let n = match state.store.hold_host(&host, &ui.user).await {
        Err(rampart_store::StoreError::Conflict(why)) => return Err(UiError::BadRequest(why)),
        other => other?,
    };
    tracing::info!(user = %ui.user, host = %host, rows = n, "delivery suspended from the web UI");
    Ok(done(&host_page(&host), "held"))
}

/// *Resume Delivery* (AsyncOS `resumedel`).
pub(crate) async fn resume(
    State(state): State<AppState>,
    Posted { ui, form }: Posted<HostForm>,
) -> Result<Response, UiError> {
    ui.require(Role::Operator)?;
    let host = crate::api::host_name(&form.host).map_err(UiError::BadRequest)?;
    let n = state
        .store
        .resume_host(&host)
        .await?
        .ok_or_else(|| UiError::BadRequest(format!("Delivery to {host} is not suspended.")))?;
    tracing::info!(user = %ui.user, host = %host, rows = n, "delivery resumed from the web UI");
    Ok(done(&host_page(&host), "resumed"))
}

#[derive(Debug, Deserialize, Serialize, Default, Clone)]
pub(crate) struct TrackingQuery {
    #[serde(default)]
    mid: String,
    #[serde(default)]
    sender: String,
    #[serde(default)]
    recipient: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    message_id: String,
    #[serde(default)]
    remote_ip: String,
    #[serde(default)]
    policy: String,
    /// A [`TrackEvent`] name.
    #[serde(default)]
    event: String,
    /// `YYYY-MM-DDTHH:MM` (a datetime-local input), UTC.
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    /// Cluster mode: `*` for the whole cluster, a node's name; empty: this node.
    #[serde(default)]
    node: String,
    /// 1-based page of [`TRACKING_PAGE`] results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    page: Option<u32>,
}

/// Results per page of Message Tracking.
const TRACKING_PAGE: u32 = 50;

#[derive(Template)]
#[template(path = "tracking.html")]
struct TrackingPage {
    l: Layout,
    q: TrackingQuery,
    searched: bool,
    error: Option<String>,
    results: Vec<TrackedRow>,
    /// The events to search for: (name, label).
    events: Vec<(&'static str, &'static str)>,
    /// Every mail policy's name, incoming first, for the policy list.
    policies: Vec<String>,
    /// "Messages 51–100 of 1,234", when anything matched.
    range: Option<String>,
    previous: Option<String>,
    next: Option<String>,
    /// Cluster mode: the nodes to search (this node first).
    nodes: Option<Vec<String>>,
}

#[derive(Debug)]
struct TrackedRow {
    /// The node that handled it, in cluster mode; a link to the details only for this node's.
    node: String,
    local: bool,
    mid: u64,
    received: String,
    sender: String,
    recipients: String,
    subject: String,
    last_event: String,
    journaled: bool,
}

fn parse_time(s: &str, what: &str) -> Result<Option<i64>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(s, f).ok())
        .map(|t| Some(t.and_utc().timestamp()))
        .ok_or_else(|| format!("{what} must be a date and time like 2026-11-28T09:30 (UTC)"))
}

pub(crate) async fn tracking(
    State(state): State<AppState>,
    ui: Ui,
    q: Result<Query<TrackingQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, UiError> {
    let Query(q) =
        q.map_err(|e| UiError::BadRequest(format!("Invalid search: {}", e.body_text())))?;
    let searched = [
        &q.mid,
        &q.sender,
        &q.recipient,
        &q.subject,
        &q.message_id,
        &q.remote_ip,
        &q.policy,
        &q.event,
        &q.since,
        &q.until,
    ]
    .iter()
    .any(|f| !f.trim().is_empty());
    let page = q.page.unwrap_or(1).max(1);
    let own = state.store.cluster_health().map(|h| h.node);
    let filter = (|| {
        let (mid, remote_ip, event) = crate::api::track_filter(&q.mid, &q.remote_ip, &q.event)
            .map_err(|e| {
                let mut chars = e.chars();
                chars
                    .next()
                    .map(|c| c.to_uppercase().chain(chars).collect::<String>() + ".")
                    .unwrap_or_default()
            })?;
        let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        Ok::<_, String>(TrackFilter {
            mid,
            sender: text(&q.sender),
            recipient: text(&q.recipient),
            subject: text(&q.subject),
            message_id: text(&q.message_id),
            remote_ip,
            policy: text(&q.policy),
            event,
            since: parse_time(&q.since, "From")?,
            until: parse_time(&q.until, "To")?,
            limit: TRACKING_PAGE,
            offset: (page - 1).saturating_mul(TRACKING_PAGE),
        })
    })();
    let node = crate::api::track_node(&state.store, Some(&q.node));
    let (mut results, mut error, mut total) = (Vec::new(), None, 0);
    match (filter, node) {
        (Err(e), _) | (_, Err(e)) => error = Some(e),
        (Ok(filter), Ok(node)) => {
            let (found, n) = state.store.track_in(&filter, node.as_deref()).await?;
            total = n;
            results = found
                .into_iter()
                .map(|t| row(t.tracked, &t.node, own.as_deref()))
                .collect();
        }
    }
    let nodes = super::node_choices(&state).await;
    let first = u64::from(page - 1) * u64::from(TRACKING_PAGE);
    let range = (!results.is_empty()).then(|| {
        format!(
            "Messages {}–{} of {} (newest first)",
            thousands(first + 1),
            thousands(first + results.len() as u64),
            thousands(total)
        )
    });
    let link = |page: u32| {
        let mut to = q.clone();
        to.page = Some(page);
        format!(
            "/monitor/tracking?{}",
            serde_urlencoded::to_string(&to).unwrap_or_default()
        )
    };
    let previous = (page > 1 && error.is_none()).then(|| link(page - 1));
    let next = (first + (results.len() as u64) < total).then(|| link(page + 1));
    if error.is_none() && results.is_empty() && page > 1 && total > 0 {
        error = Some(format!(
            "There is no page {page}: the search found {} messages.",
            thousands(total)
        ));
    }
    let settings = state.settings.load();
    let settings = settings.settings();
    let policies = settings
        .incoming_policies
        .iter()
        .chain(settings.outgoing_policies.iter())
        .map(|p| p.name.clone())
        .fold(Vec::<String>::new(), |mut names, n| {
            if !names.contains(&n) {
                names.push(n);
            }
            names
        });
    let mut page = render(&TrackingPage {
        l: Layout::new(&state, &ui, "monitor", "Message Tracking"),
        searched,
        error: error.clone(),
        results,
        events: TrackEvent::ALL
            .iter()
            .map(|(_, slug, label)| (*slug, *label))
            .collect(),
        policies,
        range,
        previous,
        next,
        nodes,
        q,
    });
    if error.is_some() {
        *page.status_mut() = axum::http::StatusCode::BAD_REQUEST;
    }
    Ok(page)
}

fn row(t: Tracked, node: &str, own: Option<&str>) -> TrackedRow {
    TrackedRow {
        node: node.to_owned(),
        local: own.is_none_or(|own| own == node),
        mid: t.mid.0,
        received: time(t.received_at),
        sender: if t.sender.is_empty() {
            "<>".into()
        } else {
            t.sender
        },
        recipients: t.recipients.join(", "),
        subject: t.subject.unwrap_or_default(),
        last_event: t.events.last().map(|e| e.text.clone()).unwrap_or_default(),
        journaled: t.events.iter().any(|e| {
            e.text.starts_with("TDC: Message") && e.text.contains("successfully delivered")
        }),
    }
}

#[derive(Template)]
#[template(path = "tracking_detail.html")]
struct DetailPage {
    l: Layout,
    mid: u64,
    sender: String,
    recipients: Vec<String>,
    subject: String,
    message_id: String,
    received: String,
    events: Vec<(String, String)>,
}

pub(crate) async fn tracking_detail(
    State(state): State<AppState>,
    ui: Ui,
    Path(mid): Path<String>,
) -> Result<Response, UiError> {
    let mid: u64 = mid
        .parse()
        .map_err(|_| UiError::NotFound(format!("{mid:?} is not a message ID.")))?;
    let found = state
        .store
        .track(&TrackFilter {
            mid: Some(Mid(mid)),
            limit: 1,
            ..TrackFilter::default()
        })
        .await?;
    let t = found
        .into_iter()
        .next()
        .ok_or_else(|| UiError::NotFound(format!("No message with MID {mid}.")))?;
    Ok(render(&DetailPage {
        l: Layout::new(
            &state,
            &ui,
            "monitor",
            format!("Message Tracking: MID {mid}"),
        ),
        mid,
        sender: if t.sender.is_empty() {
            "<>".into()
        } else {
            t.sender
        },
        recipients: t.recipients,
        subject: t.subject.unwrap_or_default(),
        message_id: t.message_id.unwrap_or_default(),
        received: time(t.received_at),
        events: t
            .events
            .into_iter()
            .map(|e| (time_ms(e.at), e.text))
            .collect(),
    }))
}

/// How much of the end of the mail log the page reads.
const LOG_TAIL_BYTES: u64 = 512 * 1024;

#[derive(Debug, Deserialize, Default)]
pub(crate) struct LogQuery {
    /// Only lines containing this text (e.g. `MID 1001`, `TDC:`).
    #[serde(default)]
    find: String,
    #[serde(default)]
    lines: Option<usize>,
}

#[derive(Template)]
#[template(path = "mail_logs.html")]
struct LogsPage {
    l: Layout,
    find: String,
    lines: usize,
    shown: Vec<String>,
    path: String,
}

/// *Monitor > Mail Logs*: the end of `mail_logs`, optionally only the lines with some text.
pub(crate) async fn mail_logs(
    State(state): State<AppState>,
    ui: Ui,
    q: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, UiError> {
    let Query(q) =
        q.map_err(|e| UiError::BadRequest(format!("Invalid search: {}", e.body_text())))?;
    let lines = q.lines.unwrap_or(200).clamp(1, 5000);
    let path = state
        .options
        .mail_log
        .clone()
        .ok_or_else(|| UiError::NotFound("This appliance writes no mail log.".into()))?;
    let find = q.find.trim().to_owned();
    let tail = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || read_tail(&path, LOG_TAIL_BYTES))
            .await
            .map_err(UiError::internal)?
    };
    let text = tail.unwrap_or_default();
    let mut shown: Vec<String> = text
        .lines()
        .filter(|l| find.is_empty() || l.contains(&find))
        .map(str::to_owned)
        .collect();
    let skip = shown.len().saturating_sub(lines);
    shown.drain(..skip);
    // Newest first, as an administrator reading "what just happened" expects; `rampart tail`
    // keeps the file's order for a shell.
    shown.reverse();
    Ok(render(&LogsPage {
        l: Layout::new(&state, &ui, "monitor", "Mail Logs"),
        find,
        lines,
        shown,
        path: path.display().to_string(),
    }))
}

/// The last `max` bytes of a file, from the first whole line.
fn read_tail(path: &std::path::Path, max: u64) -> std::io::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let start = len.saturating_sub(max);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    Ok(if start > 0 {
        text.split_once('\n')
            .map(|(_, rest)| rest.to_owned())
            .unwrap_or_default()
    } else {
        text
    })
}
