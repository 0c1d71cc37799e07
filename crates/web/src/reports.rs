//! Reports as JSON (API, `rampart report --json`) and CSV (the Overview page's exports, the API
//! and the CLI): one shape for every way out.

use rampart_store::{Report, ReportRange, Series, TopList};
use serde_json::{Value, json};

/// Most keys a top list shows (the `top` parameter's upper bound).
pub const TOP_MAX: usize = 100;

/// A table of a report, as exported to CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportTable {
    /// The time series: one row per bucket, one column per series.
    Series,
    SenderDomains,
    SenderIps,
    Recipients,
    Threats,
}

impl ReportTable {
    pub const ALL: [ReportTable; 5] = [
        ReportTable::Series,
        ReportTable::SenderDomains,
        ReportTable::SenderIps,
        ReportTable::Recipients,
        ReportTable::Threats,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportTable::Series => "series",
            ReportTable::SenderDomains => "sender_domains",
            ReportTable::SenderIps => "sender_ips",
            ReportTable::Recipients => "recipients",
            ReportTable::Threats => "threats",
        }
    }

    pub fn parse(s: &str) -> Result<ReportTable, String> {
        ReportTable::ALL
            .into_iter()
            .find(|t| t.as_str() == s.trim())
            .ok_or_else(|| {
                format!(
                    "table must be one of {}, got {s:?}",
                    ReportTable::ALL.map(ReportTable::as_str).join(", ")
                )
            })
    }

    /// The header of the key column.
    fn key_name(self) -> &'static str {
        match self {
            ReportTable::Series => "start",
            ReportTable::SenderDomains => "sender_domain",
            ReportTable::SenderIps => "sender_ip",
            ReportTable::Recipients => "recipient",
            ReportTable::Threats => "threat",
        }
    }

    fn list(self, r: &Report) -> Option<&TopList> {
        match self {
            ReportTable::Series => None,
            ReportTable::SenderDomains => Some(&r.sender_domains),
            ReportTable::SenderIps => Some(&r.sender_ips),
            ReportTable::Recipients => Some(&r.recipients),
            ReportTable::Threats => Some(&r.threats),
        }
    }
}

/// A range from a query parameter, with the error an administrator can act on.
pub fn parse_range(s: &str) -> Result<ReportRange, String> {
    ReportRange::parse(s).ok_or_else(|| {
        format!(
            "range must be one of {}, got {s:?}",
            ReportRange::ALL.map(ReportRange::as_str).join(", ")
        )
    })
}

/// Unix seconds in RFC 3339.
fn rfc3339(t: i64) -> String {
    crate::api::rfc3339(t.saturating_mul(1000))
}

fn list_json(l: &TopList) -> Value {
    json!({
        "entries": l.entries.iter().map(|e| json!({ "key": e.key, "count": e.n })).collect::<Vec<_>>(),
        "others": l.others,
    })
}

/// `GET /api/v1/reports/overview` and `rampart report --json`.
pub fn report_json(r: &Report) -> Value {
    let totals: serde_json::Map<String, Value> = Series::ALL
        .into_iter()
        .map(|s| (s.as_str().to_owned(), json!(r.total(s))))
        .collect();
    json!({
        "range": r.range.as_str(),
        "start": rfc3339(r.start),
        "end": rfc3339(r.end),
        "bucket_seconds": r.range.buckets().0,
        "totals": totals,
        "buckets": r.buckets.iter().map(|b| {
            let counts: serde_json::Map<String, Value> = Series::ALL
                .into_iter()
                .map(|s| (s.as_str().to_owned(), json!(b.get(s))))
                .collect();
            json!({ "start": rfc3339(b.start), "counts": counts })
        }).collect::<Vec<_>>(),
        "top_start": rfc3339(r.top_start),
        "sender_domains": list_json(&r.sender_domains),
        "sender_ips": list_json(&r.sender_ips),
        "recipients": list_json(&r.recipients),
        "threats": list_json(&r.threats),
    })
}

/// A cell a spreadsheet would read as a formula (`=`, `+`, `-`, `@`) gets a leading `'`: sender
/// domains and recipients come from the network.
fn cell(s: &str) -> std::borrow::Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}").into()
    } else {
        s.into()
    }
}

/// One table of a report as CSV (RFC 4180, a header row first).
pub fn report_csv(r: &Report, table: ReportTable) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    match table.list(r) {
        None => {
            let mut header = vec![table.key_name()];
            header.extend(Series::ALL.map(Series::as_str));
            w.write_record(&header)?;
            for b in &r.buckets {
                let mut row = vec![rfc3339(b.start)];
                row.extend(Series::ALL.map(|s| b.get(s).to_string()));
                w.write_record(&row)?;
            }
        }
        Some(list) => {
            w.write_record([table.key_name(), "count"])?;
            for e in &list.entries {
                w.write_record([cell(&e.key).as_ref(), &e.n.to_string()])?;
            }
            if list.others > 0 {
                w.write_record(["(others)", &list.others.to_string()])?;
            }
        }
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The file name a CSV download is saved as.
pub fn csv_file_name(r: &Report, table: ReportTable) -> String {
    format!("rampart-{}-{}.csv", table.as_str(), r.range.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_store::{ReportBucket, TopEntry};

    fn report() -> Report {
        let mut b = ReportBucket {
            start: 0,
            ..ReportBucket::default()
        };
        b.counts.insert(Series::InClean, 3);
        Report {
            range: ReportRange::Hour,
            start: 0,
            end: 300,
            buckets: vec![b],
            top_start: 0,
            sender_domains: TopList::default(),
            sender_ips: TopList::default(),
            recipients: TopList {
                entries: vec![
                    TopEntry {
                        key: "=cmd|'/c calc'!A1@example.com".into(),
                        n: 2,
                    },
                    TopEntry {
                        key: "\"quoted, name\"@example.com".into(),
                        n: 1,
                    },
                ],
                others: 4,
            },
            threats: TopList::default(),
        }
    }

    #[test]
    fn csv_quotes_fields_and_defuses_formulas() {
        let csv = report_csv(&report(), ReportTable::Recipients).unwrap();
        assert_eq!(
            csv,
            "recipient,count\n'=cmd|'/c calc'!A1@example.com,2\n\"\"\"quoted, name\"\"@example.com\",1\n(others),4\n"
        );
        let series = report_csv(&report(), ReportTable::Series).unwrap();
        let mut lines = series.lines();
        assert!(lines.next().unwrap().starts_with("start,in_clean,in_spam,"));
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("1970-01-01T00:00:00+00:00,3,0,")
        );
    }

    #[test]
    fn bad_names_are_refused_with_the_choices() {
        assert_eq!(
            ReportTable::parse("nope").unwrap_err(),
            "table must be one of series, sender_domains, sender_ips, recipients, threats, got \"nope\""
        );
        assert_eq!(
            parse_range("year").unwrap_err(),
            "range must be one of hour, day, week, month, got \"year\""
        );
        assert_eq!(parse_range("30d"), Ok(ReportRange::Month));
    }
}
