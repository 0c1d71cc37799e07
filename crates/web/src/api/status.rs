//! Read-only resources: `tophosts` and `tracking`.

use axum::Json;
use axum::extract::{Query, State};
use rampart_tdc::LedgerState;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::{ApiError, AppState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NodeQuery {
    /// Cluster mode: `*` for the whole cluster, or a node's name; absent: this node.
    node: Option<String>,
}

/// `GET /api/v1/tophosts[?node=*|NAME]`: the AsyncOS figures per recipient host.
pub(crate) async fn tophosts(
    State(state): State<AppState>,
    _caller: Caller,
    query: Result<Query<NodeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) =
        query.map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text())))?;
    let node = track_node(&state.store, q.node.as_deref()).map_err(ApiError::bad_request)?;
    let rows = match state.store.tophosts_in(node.as_deref()).await {
        Err(rampart_store::StoreError::Conflict(why)) => return Err(ApiError::not_found(why)),
        r => r?,
    };
    Ok(Json(Value::Array(rows.iter().map(tophost_json).collect())))
}

/// One `tophosts` row as the API and `rampart tophosts --json` show it.
pub fn tophost_json(r: &rampart_store::HostRow) -> Value {
    json!({
        "host": r.host,
        "active_recipients": r.active_recipients,
        "connections_out": r.connections_out,
        "delivered_recipients": r.delivered,
        "soft_bounced": r.soft_bounced,
        "hard_bounced": r.hard_bounced,
        "down": r.down,
    })
}

/// `GET /api/v1/antispam`: the anti-spam engine, checked now, and its last hour.
pub(crate) async fn antispam(State(state): State<AppState>, _caller: Caller) -> Json<Value> {
    Json(json!(crate::engines::antispam(&state).await))
}

/// `GET /api/v1/antivirus`: the anti-virus engine, checked now, and its last hour.
pub(crate) async fn antivirus(State(state): State<AppState>, _caller: Caller) -> Json<Value> {
    Json(json!(crate::engines::antivirus(&state).await))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrackingQuery {
    mid: Option<String>,
    sender: Option<String>,
    recipient: Option<String>,
    subject: Option<String>,
    message_id: Option<String>,
    remote_ip: Option<String>,
    policy: Option<String>,
    /// One of [`rampart_store::TrackEvent::ALL`]'s names.
    event: Option<String>,
    /// Only messages received within this many seconds back from now.
    since: Option<i64>,
    /// Most messages returned (newest first); default 100, at most 1000.
    limit: Option<u32>,
    /// Matches skipped, for paging; the total is in `X-Total-Count`.
    offset: Option<u32>,
    /// Cluster mode: `*` for the whole cluster, or a node's name; absent: this node.
    node: Option<String>,
}

/// The tracking search of the API and the UI, from its text fields; errors are for people.
/// A tracking search's MID, client IP and event, checked.
pub(crate) type TrackKeys = (
    Option<rampart_store::Mid>,
    Option<String>,
    Option<rampart_store::TrackEvent>,
);

pub(crate) fn track_filter(mid: &str, remote_ip: &str, event: &str) -> Result<TrackKeys, String> {
    let mid = match mid.trim() {
        "" => None,
        m => {
            Some(rampart_store::Mid(m.parse().map_err(|_| {
                format!("the MID must be a number, not {m:?}")
            })?))
        }
    };
    let remote_ip = match remote_ip.trim() {
        "" => None,
        ip => Some(
            ip.parse::<std::net::IpAddr>()
                .map_err(|_| format!("{ip:?} is not an IP address"))?
                .to_string(),
        ),
    };
    let event = match event.trim() {
        "" => None,
        e => Some(rampart_store::TrackEvent::parse_named(e)?),
    };
    Ok((mid, remote_ip, event))
}

/// The node a tracking search asks for: `None` for this node, `*` for the whole cluster, or a
/// node's name (cluster mode only).
pub fn track_node(
    store: &rampart_store::Store,
    node: Option<&str>,
) -> Result<Option<String>, String> {
    match node.map(str::trim).filter(|n| !n.is_empty()) {
        None => Ok(None),
        Some(_) if !store.is_clustered() => {
            Err("node: this appliance is not in a cluster; search without a node".into())
        }
        Some(n)
            if n == "*"
                || (n.len() <= 64
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))) =>
        {
            Ok(Some(n.to_owned()))
        }
        Some(n) => Err(format!(
            "node: {n:?} is not a node name (or * for the whole cluster)"
        )),
    }
}

/// `GET /api/v1/tracking?mid=N` or `?sender=&recipient=&subject=&message_id=&remote_ip=&policy=&event=&since=`
/// (text as substrings), paged with `limit` and `offset`, the total in `X-Total-Count`.
pub(crate) async fn tracking(
    State(state): State<AppState>,
    _caller: Caller,
    query: Result<Query<TrackingQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let Query(q) =
        query.map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text())))?;
    let (mid, remote_ip, event) = track_filter(
        q.mid.as_deref().unwrap_or_default(),
        q.remote_ip.as_deref().unwrap_or_default(),
        q.event.as_deref().unwrap_or_default(),
    )
    .map_err(ApiError::bad_request)?;
    let text = |s: Option<String>| s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let filter = rampart_store::TrackFilter {
        mid,
        sender: text(q.sender),
        recipient: text(q.recipient),
        subject: text(q.subject),
        message_id: text(q.message_id),
        remote_ip,
        policy: text(q.policy),
        event,
        since: match q.since {
            Some(s) if s < 0 => {
                return Err(ApiError::bad_request(
                    "since is a number of seconds back from now and cannot be negative",
                ));
            }
            s => s.map(|s| rampart_store::unix_now() - s),
        },
        until: None,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
        offset: q.offset.unwrap_or(0),
    };
    let node = track_node(&state.store, q.node.as_deref()).map_err(ApiError::bad_request)?;
    let (found, total) = state.store.track_in(&filter, node.as_deref()).await?;
    let clustered = state.store.is_clustered();
    let body = Json(Value::Array(
        found
            .into_iter()
            .map(|rampart_store::NodeTracked { node, tracked: t }| {
                let mut one = json!({
                    "mid": t.mid.0,
                    "sender": t.sender,
                    "recipients": t.recipients,
                    "subject": t.subject,
                    "message_id": t.message_id,
                    "received_at": rfc3339(t.received_at * 1000),
                    "events": t.events.into_iter().map(|e| json!({"time": rfc3339(e.at), "text": e.text})).collect::<Vec<_>>(),
                });
                if clustered && let Some(map) = one.as_object_mut() {
                    map.insert("node".into(), node.into());
                }
                one
            })
            .collect(),
    ));
    Ok(([("x-total-count", total.to_string())], body).into_response())
}

/// Unix milliseconds in RFC 3339, as every time in the API is written.
pub(crate) fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LedgerQuery {
    /// Seconds back from now (default 3600).
    since: Option<i64>,
    state: Option<String>,
    limit: Option<u32>,
    /// Cluster mode: `*` for the whole cluster, or a node's name; absent: this node.
    node: Option<String>,
}

/// `GET /api/v1/ledger?since=SECONDS&state=queued|delivered|failed|expired|replayed&limit=1000`
/// (at most 10,000, newest first): the fate of every
/// journal copy — "which clean messages of the last hour never reached Threat Defense?".
pub(crate) async fn ledger(
    State(state): State<AppState>,
    _caller: Caller,
    query: Result<Query<LedgerQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) =
        query.map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text())))?;
    let filter = match q.state.as_deref() {
        None => None,
        Some(s) => Some(LedgerState::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "state must be {}, got {s:?}",
                LedgerState::choices()
            ))
        })?),
    };
    let since = q.since.unwrap_or(3600);
    if since < 0 {
        return Err(ApiError::bad_request(
            "since is a number of seconds back from now and cannot be negative",
        ));
    }
    // Each entry is read whole into memory: a caller gets at most 10,000 per request.
    let limit = match q.limit {
        None => 1000,
        Some(n @ 1..=10_000) => n,
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "limit must be 1-10000, got {n}"
            )));
        }
    };
    let node = track_node(&state.store, q.node.as_deref()).map_err(ApiError::bad_request)?;
    let entries = state
        .store
        .ledger_in(
            rampart_store::unix_now() - since,
            filter,
            limit,
            node.as_deref(),
        )
        .await?;
    let clustered = state.store.is_clustered();
    Ok(Json(Value::Array(
        entries
            .into_iter()
            .map(|(node, e)| {
                let mut one = ledger_json(e);
                if clustered && let Some(map) = one.as_object_mut() {
                    map.insert("node".into(), node.into());
                }
                one
            })
            .collect(),
    )))
}

/// One journal copy as the API and `rampart ledger --json` show it.
pub fn ledger_json(e: rampart_store::LedgerEntry) -> Value {
    json!({
        "mid": e.mid.0, "intake_address": e.intake, "state": e.state.as_str(), "attempts": e.attempts,
        "last_reply": e.last_reply, "tls": e.tls, "queued_at": rfc3339(e.queued_at * 1000),
        "done_at": e.done_at.map(|t| rfc3339(t * 1000)), "sender": e.sender, "subject": e.subject,
        "message_id": e.message_id,
    })
}

/// The appliance's status as `GET /api/v1/status` and `rampart status` show it: start time,
/// counters since the database was created, queue gauges and the connector's state.
pub async fn status_report(
    store: &rampart_store::Store,
    settings: &rampart_settings::Settings,
) -> Result<Value, rampart_store::StoreError> {
    let t = store.totals().await?;
    let started_at: Option<i64> = store.meta("started_at").await?.and_then(|s| s.parse().ok());
    let hosts = store.tophosts().await?;
    let now = rampart_store::unix_now();
    Ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "status_as_of": rfc3339(now * 1000),
        "started_at": started_at.map(|s| rfc3339(s * 1000)),
        "uptime_secs": started_at.map(|s| now - s),
        "counters": {
            "messages_received": t.received,
            "recipients_delivered": t.delivered,
            "recipients_hard_bounced": t.bounced,
            "journal_copies_delivered": t.journaled,
            "journal_copies_failed": t.journal_failed,
            "messages_spam": t.spam,
            "messages_virus": t.virus,
        },
        "gauges": {
            "active_recipients": t.queued,
            "tdc_queue": t.journal_queued,
            "quarantined_recipients": t.quarantined,
            "hosts_down": hosts.iter().filter(|h| h.down).map(|h| h.host.clone()).collect::<Vec<_>>(),
        },
        "tdc": {
            "enabled": settings.tdc.enabled,
            "intake_address": settings.tdc.intake_address,
        },
        "cluster": store.cluster_health().map(|h| json!({
            "node": h.node,
            "database": h.database,
            "database_reachable": h.reachable,
            "since": rfc3339(h.since * 1000),
            "error": h.error,
            "settings_generation": h.settings_generation,
        })),
    }))
}

/// `GET /api/v1/status`.
pub(crate) async fn status(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let settings = state.settings.load().settings().clone();
    let mut report = status_report(&state.store, &settings).await?;
    if let Some(map) = report.as_object_mut() {
        let syslog = match &state.syslog {
            Some(s) => syslog_json(&s.status()),
            None => Value::Null,
        };
        map.insert("syslog".into(), syslog);
    }
    Ok(Json(report))
}

/// The syslog push's state, as `GET /api/v1/status` shows it.
pub fn syslog_json(s: &rampart_maillog::SyslogStatus) -> Value {
    json!({
        "target": s.target,
        "connected": s.connected,
        "sent": s.sent,
        "dropped": s.dropped,
        "queued": s.queued,
        "last_error": s.last_error,
    })
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeliverNow {
    /// A destination domain or `the.tdc.queue`; absent for every host.
    host: Option<String>,
}

/// `POST /api/v1/deliverynow` `{"host": "example.com"}` (or `{}` for all): AsyncOS
/// `deliverynow`, the web UI's *Retry Delivery*. Operators may do it.
pub(crate) async fn deliver_now(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require_operator()?;
    let req: DeliverNow = super::settings::typed_body(body)?;
    let host = req.host.as_deref().map(str::trim).filter(|h| !h.is_empty());
    let n = state.store.deliver_now(host).await?;
    tracing::info!(user = %caller.name, host = host.unwrap_or("all"), rows = n, "deliverynow through the API");
    Ok(Json(json!({"host": host, "rescheduled_recipients": n})))
}

/// A destination as typed into a form or a request: trimmed, lower case, and made only of what
/// a domain name (or `the.tdc.queue`) is made of.
pub fn host_name(s: &str) -> Result<String, String> {
    let host = s.trim().trim_end_matches('.').to_ascii_lowercase();
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '[' | ']' | ':'));
    if ok {
        Ok(host)
    } else {
        Err(format!("{:?} is not a destination domain", s.trim()))
    }
}

/// Unix seconds in RFC 3339, or null.
fn time_json(t: Option<i64>) -> Value {
    t.map_or(Value::Null, |t| json!(rfc3339(t.saturating_mul(1000))))
}

/// One destination in detail, as `GET /api/v1/hoststatus/{host}` and `rampart hoststatus
/// --json` show it; the.tdc.queue with its intake addresses.
pub fn hoststatus_json(
    d: &rampart_store::HostDetail,
    intakes: &[rampart_store::IntakeRow],
) -> Value {
    let mut v = tophost_json(&d.row);
    if let Some(map) = v.as_object_mut() {
        map.insert("last_attempt".into(), time_json(d.last_attempt_at));
        map.insert("last_delivered".into(), time_json(d.last_delivered_at));
        map.insert("last_error".into(), json!(d.last_error));
        map.insert("last_error_time".into(), time_json(d.last_error_at));
        map.insert("next_retry".into(), time_json(d.next_retry_at));
        map.insert(
            "held".into(),
            match &d.held {
                Some((at, by)) => json!({"since": time_json(Some(*at)), "by": by}),
                None => Value::Null,
            },
        );
        if d.row.host == "the.tdc.queue" {
            map.insert(
                "intakes".into(),
                Value::Array(
                    intakes
                        .iter()
                        .map(|i| {
                            json!({
                                "intake_address": i.intake, "queued": i.queued,
                                "delivered": i.delivered, "failed": i.failed, "expired": i.expired,
                                "last_delivered": time_json(i.last_delivered_at),
                                "last_error": i.last_error, "last_error_time": time_json(i.last_error_at),
                                "next_retry": time_json(i.next_retry_at),
                            })
                        })
                        .collect(),
                ),
            );
        }
    }
    v
}

/// `GET /api/v1/hoststatus/{host}`: AsyncOS `hoststatus`.
pub(crate) async fn hoststatus(
    State(state): State<AppState>,
    _caller: Caller,
    axum::extract::Path(host): axum::extract::Path<String>,
) -> Result<Json<Value>, ApiError> {
    let host = host_name(&host).map_err(ApiError::bad_request)?;
    let detail = state
        .store
        .host_detail(&host)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no delivery to {host} so far")))?;
    let intakes = if host == "the.tdc.queue" {
        state.store.intakes().await?
    } else {
        Vec::new()
    };
    Ok(Json(hoststatus_json(&detail, &intakes)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HostBody {
    host: String,
}

/// `POST /api/v1/suspenddel` `{"host": "example.com"}`: AsyncOS `suspenddel` for one
/// destination; its mail is still accepted and waits. Operators may do it.
pub(crate) async fn suspenddel(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require_operator()?;
    let req: HostBody = super::settings::typed_body(body)?;
    let host = host_name(&req.host).map_err(ApiError::bad_request)?;
    let n = match state.store.hold_host(&host, &caller.name).await {
        Err(rampart_store::StoreError::Conflict(why)) => return Err(ApiError::conflict(why)),
        other => other?,
    };
    tracing::info!(user = %caller.name, host = %host, rows = n, "delivery suspended through the API");
    Ok(Json(
        json!({"host": host, "held": true, "waiting_recipients": n}),
    ))
}

/// `POST /api/v1/resumedel` `{"host": "example.com"}`: AsyncOS `resumedel`.
pub(crate) async fn resumedel(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require_operator()?;
    let req: HostBody = super::settings::typed_body(body)?;
    let host = host_name(&req.host).map_err(ApiError::bad_request)?;
    let n = state
        .store
        .resume_host(&host)
        .await?
        .ok_or_else(|| ApiError::conflict(format!("delivery to {host} is not suspended")))?;
    tracing::info!(user = %caller.name, host = %host, rows = n, "delivery resumed through the API");
    Ok(Json(
        json!({"host": host, "held": false, "rescheduled_recipients": n}),
    ))
}

/// `GET /api/v1/listeners`: the SMTP listeners, the main one (`[smtp]`, HAT `hat`) first, each
/// `[[listener]]` with whether it has a HAT of its own (`listener-hats`).
pub(crate) async fn listeners(State(state): State<AppState>, _caller: Caller) -> Json<Value> {
    let snapshot = state.settings.load();
    let own = &snapshot.settings().listener_hats;
    Json(Value::Array(
        state
            .options
            .listeners
            .iter()
            .map(|l| {
                json!({
                    "name": l.name,
                    "listen": l.listen,
                    "hat": if l.main { "hat" } else { "listener-hats" },
                    "own_hat": l.main || own.iter().any(|h| h.listener == l.name),
                })
            })
            .collect(),
    ))
}

/// One alert as the API and `rampart alertconfig --json` show it.
pub fn alert_json(a: &rampart_store::AlertRecord) -> Value {
    json!({
        "time": time_json(Some(a.at)), "severity": a.severity, "key": a.key,
        "subject": a.subject, "text": a.text, "sent_to": a.sent_to,
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct AlertLogQuery {
    limit: Option<u32>,
}

/// `GET /api/v1/alert-log?limit=100`: the alerts sent, newest first.
pub(crate) async fn alert_log(
    State(state): State<AppState>,
    _caller: Caller,
    query: Result<Query<AlertLogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) =
        query.map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text())))?;
    let limit = match q.limit {
        None => 100,
        Some(n @ 1..=1000) => n,
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "limit must be 1-1000, got {n}"
            )));
        }
    };
    let log = state.store.alert_log(limit).await?;
    Ok(Json(Value::Array(log.iter().map(alert_json).collect())))
}

/// `POST /api/v1/alerts/test`: an Info alert to every recipient and the webhook (operator).
pub(crate) async fn alert_test(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_operator()?;
    let Some(alerts) = &state.alerts else {
        return Err(ApiError::conflict(
            "this web server runs without the appliance's alert sender",
        ));
    };
    let sent_to = alerts.send_test(&caller.name).await;
    Ok(Json(json!({"sent_to": sent_to})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Replay {
    /// RFC 3339: copies queued since then.
    since: String,
}

/// `POST /api/v1/tdc/replay`: journal copies that failed or expired since `since` are queued
/// again, once each, never one of a message whose copy was delivered.
pub(crate) async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require_operator()?;
    let req: Replay = super::settings::typed_body(body)?;
    let since = chrono::DateTime::parse_from_rfc3339(req.since.trim())
        .map_err(|e| {
            ApiError::bad_request(format!(
                "`since` must be an RFC 3339 time like 2026-12-03T10:00:00Z: {e}"
            ))
        })?
        .timestamp();
    if !state.settings.load().settings().tdc.enabled {
        return Err(ApiError::conflict(
            "the Threat Defense Connector is disabled: enable it before replaying journal copies",
        ));
    }
    let mids = state.store.replay_journal(since).await?;
    tracing::info!(user = %caller.name, since, copies = mids.len(), "journal replay through the API");
    Ok(Json(json!({"replayed": mids.len()})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    limit: Option<u32>,
}

/// `GET /api/v1/audit?limit=N`: configuration changes, newest first.
pub(crate) async fn audit(
    State(state): State<AppState>,
    _caller: Caller,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) =
        query.map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text())))?;
    let entries = state
        .store
        .audit_log(q.limit.unwrap_or(100).clamp(1, 10_000))
        .await?;
    Ok(Json(Value::Array(entries.iter().map(audit_json).collect())))
}

/// One audit-log entry as the API and `rampart auditlog --json` show it.
pub fn audit_json(e: &rampart_store::AuditEntry) -> Value {
    json!({
        "id": e.id, "time": rfc3339(e.at * 1000), "user": e.audit.user,
        "source": e.audit.source, "comment": e.audit.comment, "changes": e.audit.changes,
        "node": e.node,
    })
}

/// `POST /api/v1/trace`: what the appliance would do with a connection and a message (SPEC §7);
/// nothing is sent, stored or logged.
pub(crate) async fn trace(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<rampart_mta::TraceReport>, ApiError> {
    caller.require_operator()?;
    let req: rampart_mta::TraceRequest = super::settings::typed_body(body)?;
    let tracer = state.tracer.as_ref().ok_or_else(|| {
        ApiError::conflict("Trace needs the SMTP listener of a running appliance")
    })?;
    let report = tracer
        .trace(&req)
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Json(report))
}

/// `GET /api/v1/cluster`: this node's view of the cluster (AsyncOS `clusterconfig`).
pub(crate) async fn cluster(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        match crate::cluster::ClusterView::read(&state.store).await? {
            Some(view) => view.json(),
            None => crate::cluster::standalone_json(),
        },
    ))
}
