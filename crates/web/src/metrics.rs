//! `GET /metrics`: the appliance's counters and gauges for Prometheus (OpenMetrics text), HTTP
//! Basic with any role.
//!
//! Everything comes from what the pages already read — counters kept by triggers in the store,
//! the per-host counters, the engines' in-process statistics — so a scrape costs a few indexed
//! reads and two engine pings, whatever the traffic. A fresh registry is filled per scrape: the
//! values live in the database (shared by every process on it), not in this process's memory.

use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::auth::Caller;
use crate::{ApiError, AppState};

/// Destinations with series of their own; the totals cover every destination. Prometheus keeps
/// every label value as a series, and an edge gateway sends to tens of thousands of domains.
pub const HOST_SERIES: u32 = 200;

/// How long a scrape waits for an engine to answer its ping.
const PING_WAIT: Duration = Duration::from_secs(2);

/// The OpenMetrics content type Prometheus asks for and parses natively.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;

fn counters() -> Family<Labels, Counter> {
    Family::default()
}

fn gauges() -> Family<Labels, Gauge> {
    Family::default()
}

fn count(family: &Family<Labels, Counter>, labels: Labels, n: u64) {
    family.get_or_create(&labels).inc_by(n);
}

fn set(family: &Family<Labels, Gauge>, labels: Labels, n: u64) {
    family
        .get_or_create(&labels)
        .set(i64::try_from(n).unwrap_or(i64::MAX));
}

/// A counter or gauge without labels, registered with its value.
fn single_counter(r: &mut Registry, name: &str, help: &str, n: u64) {
    let c = Counter::<u64>::default();
    c.inc_by(n);
    r.register(name, help, c);
}

fn single_gauge(r: &mut Registry, name: &str, help: &str, n: i64) {
    let g = Gauge::<i64>::default();
    g.set(n);
    r.register(name, help, g);
}

pub(crate) async fn metrics(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Response, ApiError> {
    let text = render(&state).await?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}

/// The whole exposition.
pub(crate) async fn render(state: &AppState) -> Result<String, ApiError> {
    let store = &state.store;
    let totals = store.totals().await?;
    let policies = store.policy_counts().await?;
    let hosts = store.host_metrics(HOST_SERIES).await?;
    let tdc_enabled = state.settings.load().settings().tdc.enabled;
    let mut r = Registry::with_prefix("rampart");

    let info = gauges();
    set(
        &info,
        vec![("version", env!("CARGO_PKG_VERSION").to_owned())],
        1,
    );
    r.register("build_info", "The running version", info);
    single_gauge(
        &mut r,
        "uptime_seconds",
        "Seconds since the appliance started",
        i64::try_from(state.started.elapsed().as_secs()).unwrap_or(i64::MAX),
    );

    // Mail in.
    single_counter(
        &mut r,
        "messages_received",
        "Messages (MIDs) received",
        totals.received,
    );
    single_counter(
        &mut r,
        "messages_spam",
        "Messages Anti-Spam found positive or suspect",
        totals.spam,
    );
    single_counter(
        &mut r,
        "messages_virus",
        "Messages Anti-Virus found infected",
        totals.virus,
    );
    let per_policy = counters();
    for p in policies {
        let direction = if p.outgoing { "outgoing" } else { "incoming" };
        count(
            &per_policy,
            vec![
                ("direction", direction.to_owned()),
                ("policy", p.policy),
                ("verdict", p.verdict),
            ],
            p.n,
        );
    }
    r.register(
        "policy_messages",
        "Messages (one MID per policy split) by mail policy and verdict: deliver, drop, bounce, quarantine",
        per_policy,
    );

    // Delivery, over every destination.
    let recipients = counters();
    for (outcome, n) in [("delivered", totals.delivered), ("bounced", totals.bounced)] {
        count(&recipients, vec![("outcome", outcome.to_owned())], n);
    }
    r.register(
        "recipients",
        "Recipients delivered, or hard bounced or expired, over every destination",
        recipients,
    );
    single_gauge(
        &mut r,
        "active_recipients",
        "Recipients waiting for delivery, over every destination",
        i64::try_from(totals.queued).unwrap_or(i64::MAX),
    );
    single_gauge(
        &mut r,
        "quarantined_recipients",
        "Recipients held in the quarantine",
        i64::try_from(totals.quarantined).unwrap_or(i64::MAX),
    );

    // Per destination, the.tdc.queue included (as tophosts shows it).
    let active = gauges();
    let rows = counters();
    let conns = gauges();
    let soft = counters();
    let down = gauges();
    for h in &hosts {
        let host = || vec![("host", h.host.clone())];
        let queued = h
            .states
            .iter()
            .filter(|(s, _)| s == "queued")
            .map(|(_, n)| n)
            .sum();
        set(&active, host(), queued);
        for (s, n) in h.states.iter().filter(|(s, _)| s != "queued") {
            count(
                &rows,
                vec![("host", h.host.clone()), ("outcome", s.clone())],
                *n,
            );
        }
        set(&conns, host(), h.connections_out);
        count(&soft, host(), h.soft_bounced);
        set(&down, host(), u64::from(h.down));
    }
    let about =
        format!(" (the {HOST_SERIES} destinations with the most recipients, and those down)");
    r.register(
        "queue_active_recipients",
        format!("Recipients waiting per destination{about}"),
        active,
    );
    r.register(
        "queue_recipients",
        format!("Queue rows per destination by final state: delivered, bounced, expired, dropped, quarantined{about}"),
        rows,
    );
    r.register(
        "queue_connections_out",
        format!("Open delivery connections per destination{about}"),
        conns,
    );
    r.register(
        "queue_soft_bounces",
        format!("Soft bounce events per destination{about}"),
        soft,
    );
    r.register(
        "queue_host_down",
        format!("1 when the last connection attempt to the destination failed{about}"),
        down,
    );

    // The Threat Defense Connector.
    single_gauge(
        &mut r,
        "tdc_enabled",
        "1 when the Threat Defense Connector journals",
        i64::from(tdc_enabled),
    );
    let journal = counters();
    for (outcome, n) in [
        ("delivered", totals.journaled),
        ("failed", totals.journal_failed),
    ] {
        count(&journal, vec![("outcome", outcome.to_owned())], n);
    }
    r.register(
        "journal_copies",
        "Journal copies delivered to the Threat Defense intake, or failed (refused, expired after 120 s, dropped)",
        journal,
    );
    single_gauge(
        &mut r,
        "tdc_queue_copies",
        "Journal copies waiting in the.tdc.queue",
        i64::try_from(totals.journal_queued).unwrap_or(i64::MAX),
    );

    engines(state, &mut r).await;
    syslog(state, &mut r);
    process(&mut r);

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &r)
        .map_err(|e| ApiError::internal(format_args!("cannot write the metrics: {e}")))?;
    Ok(text)
}

/// The scanning engines: reachable now, scans since start by outcome, scan times.
async fn engines(state: &AppState, r: &mut Registry) {
    let up = gauges();
    let scans = counters();
    let engines = &state.engines;
    let spam_up = async {
        match &engines.spam {
            Some(s) => Some(reachable(s.client.ping()).await),
            None => None,
        }
    };
    let virus_up = async {
        match &engines.virus {
            Some(v) => Some(reachable(v.client.version()).await),
            None => None,
        }
    };
    let (spam_up, virus_up) = tokio::join!(spam_up, virus_up);
    let mut durations = Vec::new();
    for (engine, stats, is_up) in [
        ("rspamd", engines.spam.as_ref().map(|s| &s.stats), spam_up),
        ("clamav", engines.virus.as_ref().map(|v| &v.stats), virus_up),
    ] {
        let (Some(stats), Some(is_up)) = (stats, is_up) else {
            continue;
        };
        set(&up, vec![("engine", engine.to_owned())], u64::from(is_up));
        let t = stats.totals();
        for (outcome, n) in [
            ("negative", t.negatives),
            ("positive", t.positives),
            ("error", t.errors),
        ] {
            count(
                &scans,
                vec![
                    ("engine", engine.to_owned()),
                    ("outcome", outcome.to_owned()),
                ],
                n,
            );
        }
        durations.push((engine, stats.durations()));
    }
    r.register(
        "engine_up",
        "1 when the scanning engine answered a ping now",
        up,
    );
    r.register(
        "scans",
        "Scans since the appliance started, by engine and outcome",
        scans,
    );
    for (engine, histogram) in durations {
        r.sub_registry_with_label(("engine".into(), engine.into()))
            .register_with_unit(
                "scan_duration",
                "Time of the scans that got an answer",
                prometheus_client::registry::Unit::Seconds,
                histogram,
            );
    }
}

async fn reachable<T>(
    ask: impl std::future::Future<Output = Result<T, rampart_scan::ScanError>>,
) -> bool {
    matches!(tokio::time::timeout(PING_WAIT, ask).await, Ok(Ok(_)))
}

/// The syslog push of mail_logs, when one is configured.
fn syslog(state: &AppState, r: &mut Registry) {
    let Some(s) = &state.syslog else {
        return;
    };
    let s = s.status();
    single_gauge(
        r,
        "syslog_connected",
        "1 when the syslog server is connected (TCP, TLS) or the socket open (UDP)",
        i64::from(s.connected),
    );
    single_counter(r, "syslog_sent", "mail_logs events sent to syslog", s.sent);
    single_counter(
        r,
        "syslog_dropped",
        "mail_logs events dropped because the syslog server was too slow or away",
        s.dropped,
    );
    single_gauge(
        r,
        "syslog_queued",
        "mail_logs events waiting for the syslog server",
        i64::try_from(s.queued).unwrap_or(i64::MAX),
    );
}

/// Resident memory and open descriptors, from /proc (Linux; left out elsewhere).
fn process(r: &mut Registry) {
    let rss_kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        });
    if let Some(kib) = rss_kib {
        single_gauge(
            r,
            "resident_memory_bytes",
            "Resident memory of the appliance process",
            kib.saturating_mul(1024),
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        single_gauge(
            r,
            "open_fds",
            "Open file descriptors (connections, database, logs)",
            i64::try_from(fds.count()).unwrap_or(i64::MAX),
        );
    }
}
