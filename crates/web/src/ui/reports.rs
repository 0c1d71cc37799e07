//! *Monitor > Overview*: the reports over an hour, a day, a week or 30 days, with charts drawn
//! on the server (SVG, no script) and CSV exports.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use rampart_store::{Report, ReportBucket, ReportRange, Series, TopList};
use serde::Deserialize;

use super::{Layout, Ui, UiError, render, thousands};
use crate::AppState;
use crate::reports::{ReportTable, parse_range};

/// Keys shown per top list on the page (the CSV export has the same).
const TOP: usize = 10;

#[derive(Debug, Deserialize)]
pub(crate) struct OverviewQuery {
    #[serde(default)]
    range: Option<String>,
    #[serde(default)]
    table: Option<String>,
}

impl OverviewQuery {
    fn range(&self) -> Result<ReportRange, UiError> {
        match self.range.as_deref().filter(|r| !r.is_empty()) {
            None => Ok(ReportRange::Day),
            Some(r) => parse_range(r).map_err(UiError::BadRequest),
        }
    }
}

/// One bar of a chart.
#[derive(Debug)]
pub(crate) struct Bar {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
    pub colour: &'static str,
    /// Shown by the browser on hover, and read by screen readers.
    pub title: String,
}

/// A bar chart drawn on the server: stacked (parts of one whole, like message categories) or
/// side by side (outcomes that are not parts of one whole).
#[derive(Debug)]
pub(crate) struct Bars {
    pub id: &'static str,
    pub label: String,
    pub width: u32,
    pub height: u32,
    /// Plot area: left, top, right, bottom.
    pub plot: (u32, u32, u32, u32),
    pub y_max: u64,
    pub bars: Vec<Bar>,
    pub x_labels: Vec<(u32, String)>,
    /// (css class, label, total) per series.
    pub legend: Vec<(&'static str, &'static str, String)>,
}

/// The colour of a series in charts and legends (the legend's CSS uses the same).
fn colour(s: Series) -> &'static str {
    match s {
        Series::InClean | Series::OutClean => "#2e7d32",
        Series::InSpam | Series::OutSpam => "#ef6c00",
        Series::InVirus | Series::OutVirus => "#4e342e",
        Series::InFiltered | Series::OutFiltered => "#5c6bc0",
        Series::Delivered => "#2e7d32",
        Series::Bounced => "#c62828",
        Series::Expired => "#8d6e63",
        Series::JournalDelivered => "#7b1fa2",
        Series::JournalFailed => "#c62828",
        Series::JournalExpired => "#8d6e63",
        Series::JournalReplayed => "#049fd9",
    }
}

fn bucket_label(range: ReportRange, start: i64) -> String {
    let format = match range {
        ReportRange::Hour | ReportRange::Day => "%H:%M",
        ReportRange::Week => "%a %H:%M",
        ReportRange::Month => "%b %d",
    };
    chrono::DateTime::from_timestamp(start, 0)
        .map(|t| t.format(format).to_string())
        .unwrap_or_default()
}

impl Bars {
    fn new(
        id: &'static str,
        label: String,
        report: &Report,
        series: &[Series],
        stacked: bool,
    ) -> Bars {
        let (width, height) = (900u32, 240u32);
        let (left, top, right, bottom) = (56u32, 14u32, width - 12, height - 28);
        let buckets: &[ReportBucket] = &report.buckets;
        let y_max = buckets
            .iter()
            .map(|b| {
                let values = series.iter().map(|s| b.get(*s));
                if stacked {
                    values.sum()
                } else {
                    values.max().unwrap_or(0)
                }
            })
            .max()
            .unwrap_or(0)
            .max(4);
        let n = buckets.len().max(1) as u32;
        let slot = (right - left) / n;
        let gap = (slot / 6).max(1);
        let scale = |v: u64| ((bottom - top) as u64 * v / y_max) as u32;
        let mut bars = Vec::new();
        for (i, b) in buckets.iter().enumerate() {
            let x0 = left + slot * i as u32 + gap / 2;
            let inner = slot - gap;
            let mut base = bottom;
            let when = bucket_label(report.range, b.start);
            for (k, s) in series.iter().enumerate() {
                let v = b.get(*s);
                if v == 0 {
                    continue;
                }
                let h = scale(v).max(1);
                let title = format!("{when}: {} {}", s.label(), thousands(v));
                if stacked {
                    base = base.saturating_sub(h);
                    bars.push(Bar {
                        x: x0,
                        y: base,
                        w: inner,
                        h,
                        colour: colour(*s),
                        title,
                    });
                } else {
                    let w = (inner / series.len() as u32).max(1);
                    bars.push(Bar {
                        x: x0 + w * k as u32,
                        y: bottom - h,
                        w,
                        h,
                        colour: colour(*s),
                        title,
                    });
                }
            }
        }
        let every = (buckets.len() / 6).max(1);
        let x_labels = buckets
            .iter()
            .enumerate()
            .filter(|(i, _)| i % every == 0)
            .map(|(i, b)| {
                (
                    left + slot * i as u32 + slot / 2,
                    bucket_label(report.range, b.start),
                )
            })
            .collect();
        let legend = series
            .iter()
            .map(|s| (s.as_str(), s.label(), thousands(report.total(*s))))
            .collect();
        Bars {
            id,
            label,
            width,
            height,
            plot: (left, top, right, bottom),
            y_max,
            bars,
            x_labels,
            legend,
        }
    }
}

/// A row of a summary table: label, count, share of the table's total.
type SummaryRow = (&'static str, String, String);

fn summary(report: &Report, series: &[Series]) -> (Vec<SummaryRow>, String) {
    let total: u64 = series.iter().map(|s| report.total(*s)).sum();
    let rows = series
        .iter()
        .map(|s| {
            let n = report.total(*s);
            let share = if total == 0 {
                "–".to_owned()
            } else {
                format!("{:.1} %", n as f64 * 100.0 / total as f64)
            };
            (s.label(), thousands(n), share)
        })
        .collect();
    (rows, thousands(total))
}

/// A top list as the page shows it.
#[derive(Debug)]
pub(crate) struct TopTable {
    pub id: &'static str,
    pub title: &'static str,
    pub column: &'static str,
    pub table: &'static str,
    pub rows: Vec<(String, String)>,
    pub others: String,
}

fn top_table(
    table: ReportTable,
    title: &'static str,
    column: &'static str,
    list: &TopList,
) -> TopTable {
    TopTable {
        id: table.as_str(),
        title,
        column,
        table: table.as_str(),
        rows: list
            .entries
            .iter()
            .map(|e| (e.key.clone(), thousands(e.n)))
            .collect(),
        others: if list.others == 0 {
            String::new()
        } else {
            thousands(list.others)
        },
    }
}

const INCOMING: [Series; 4] = [
    Series::InClean,
    Series::InSpam,
    Series::InVirus,
    Series::InFiltered,
];
const OUTGOING: [Series; 4] = [
    Series::OutClean,
    Series::OutSpam,
    Series::OutVirus,
    Series::OutFiltered,
];
const RECIPIENTS: [Series; 3] = [Series::Delivered, Series::Bounced, Series::Expired];
const JOURNAL: [Series; 4] = [
    Series::JournalDelivered,
    Series::JournalFailed,
    Series::JournalExpired,
    Series::JournalReplayed,
];

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    l: Layout,
    range: &'static str,
    /// (value, label, current) of the range links.
    ranges: Vec<(&'static str, &'static str, bool)>,
    from: String,
    to: String,
    per: &'static str,
    top_from: String,
    incoming: (Vec<SummaryRow>, String),
    outgoing: (Vec<SummaryRow>, String),
    recipients: Vec<SummaryRow>,
    journal: Vec<SummaryRow>,
    incoming_chart: Bars,
    journal_chart: Bars,
    tops: Vec<TopTable>,
}

fn utc(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

pub(crate) async fn overview(
    State(state): State<AppState>,
    ui: Ui,
    Query(q): Query<OverviewQuery>,
) -> Result<Response, UiError> {
    let range = q.range()?;
    let report = state.store.report(range, TOP).await?;
    let per = match range {
        ReportRange::Hour => "5 minutes",
        ReportRange::Day => "hour",
        ReportRange::Week => "6 hours",
        ReportRange::Month => "day",
    };
    Ok(render(&OverviewPage {
        l: Layout::new(&state, &ui, "monitor", "Overview"),
        range: range.as_str(),
        ranges: ReportRange::ALL
            .into_iter()
            .map(|r| (r.as_str(), r.label(), r == range))
            .collect(),
        from: utc(report.start),
        to: utc(report.end),
        per,
        top_from: utc(report.top_start),
        incoming: summary(&report, &INCOMING),
        outgoing: summary(&report, &OUTGOING),
        recipients: summary(&report, &RECIPIENTS).0,
        journal: summary(&report, &JOURNAL).0,
        incoming_chart: Bars::new(
            "incoming-chart",
            format!("Incoming messages per {per} by category"),
            &report,
            &INCOMING,
            true,
        ),
        journal_chart: Bars::new(
            "journal-chart",
            format!("Journal copies to Threat Defense per {per} by outcome"),
            &report,
            &JOURNAL,
            false,
        ),
        tops: vec![
            top_table(
                ReportTable::SenderDomains,
                "Top senders by domain",
                "Sender domain",
                &report.sender_domains,
            ),
            top_table(
                ReportTable::SenderIps,
                "Top senders by IP address",
                "Sender IP",
                &report.sender_ips,
            ),
            top_table(
                ReportTable::Recipients,
                "Top recipients",
                "Recipient",
                &report.recipients,
            ),
            top_table(
                ReportTable::Threats,
                "Threat categories",
                "Category",
                &report.threats,
            ),
        ],
    }))
}

/// `/monitor/overview.csv?range=…&table=…`: the page's tables as CSV.
pub(crate) async fn overview_csv(
    State(state): State<AppState>,
    _ui: Ui,
    Query(q): Query<OverviewQuery>,
) -> Result<Response, UiError> {
    let range = q.range()?;
    let table =
        ReportTable::parse(q.table.as_deref().unwrap_or("series")).map_err(UiError::BadRequest)?;
    let report = state.store.report(range, TOP).await?;
    crate::api::csv_response(&report, table).map_err(|e| UiError::internal(e.message))
}
