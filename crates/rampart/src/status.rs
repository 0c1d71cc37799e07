//! Read-only commands: `tophosts`, `tracking` and `report`, reading the store of a running
//! appliance.

use anyhow::Result;
use rampart_store::{HostRow, Store, TrackFilter};

/// `tophosts` sort orders (AsyncOS asks the same question interactively).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Sort {
    /// Active recipients.
    Active,
    /// Connections out.
    Conn,
    /// Delivered recipients.
    Deliv,
    /// Soft bounced events.
    Soft,
    /// Hard bounced recipients.
    Hard,
}

pub(crate) async fn tophosts(
    store: &Store,
    sort: Sort,
    node: Option<&str>,
    json: bool,
) -> Result<()> {
    let mut rows = store.tophosts_in(node).await?;
    let key = |r: &HostRow| match sort {
        Sort::Active => r.active_recipients,
        Sort::Conn => r.connections_out,
        Sort::Deliv => r.delivered,
        Sort::Soft => r.soft_bounced,
        Sort::Hard => r.hard_bounced,
    };
    rows.sort_by(|a, b| key(b).cmp(&key(a)).then_with(|| a.host.cmp(&b.host)));
    if json {
        let list: Vec<_> = rows.iter().map(rampart_web::api::tophost_json).collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        print!("{}", tophosts_table(&rows, chrono::Utc::now()));
    }
    Ok(())
}

/// The AsyncOS `tophosts` table (columns end at 46, 54, 65, 76 and 87).
pub(crate) fn tophosts_table(rows: &[HostRow], now: chrono::DateTime<chrono::Utc>) -> String {
    let mut out = format!(
        "Status as of:                {}\n",
        now.format("%a %b %e %H:%M:%S %Y UTC")
    );
    out.push_str("Hosts marked with '*' were down as of the last delivery attempt.\n\n");
    out.push_str(&format!(
        "{:<40}{:>6}{:>8}{:>11}{:>11}{:>11}\n",
        "", "Active", "Conn.", "Deliv.", "Soft", "Hard"
    ));
    out.push_str(&format!(
        "{:<4}{:<36}{:>6}{:>8}{:>11}{:>11}{:>11}\n",
        "#", "Recipient Host", "Recip.", "Out", "Recip.", "Bounced", "Bounced"
    ));
    for (i, r) in rows.iter().enumerate() {
        let host = if r.down {
            format!("*{}", r.host)
        } else {
            r.host.clone()
        };
        let host: String = host.chars().take(35).collect();
        out.push_str(&format!(
            "{:<4}{:<36}{:>6}{:>8}{:>11}{:>11}{:>11}\n",
            i + 1,
            host,
            thousands(r.active_recipients),
            thousands(r.connections_out),
            thousands(r.delivered),
            thousands(r.soft_bounced),
            thousands(r.hard_bounced)
        ));
    }
    out
}

/// `104163` → `104,163`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `--event`: one of the tracking search's events.
/// `rampart hoststatus HOST`: one destination in detail, AsyncOS style.
pub(crate) async fn hoststatus(store: &Store, host: &str, json: bool) -> Result<()> {
    let host = rampart_web::api::host_name(host).map_err(anyhow::Error::msg)?;
    let Some(d) = store.host_detail(&host).await? else {
        anyhow::bail!("no delivery to {host} so far");
    };
    let intakes = if host == rampart_tdc::TDC_QUEUE {
        store.intakes().await?
    } else {
        Vec::new()
    };
    if json {
        let value = rampart_web::api::hoststatus_json(&d, &intakes);
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", hoststatus_text(&d, &intakes));
    }
    Ok(())
}

/// The `hoststatus` text: counters, gauges, the last error.
pub(crate) fn hoststatus_text(
    d: &rampart_store::HostDetail,
    intakes: &[rampart_store::IntakeRow],
) -> String {
    let when = |t: Option<i64>| {
        t.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .map_or_else(
                || "-".to_owned(),
                |t| t.format("%a %b %e %H:%M:%S %Y UTC").to_string(),
            )
    };
    let r = &d.row;
    let state = match (&d.held, r.down) {
        (Some((at, by)), _) => format!("delivery suspended since {} by {by}", when(Some(*at))),
        (None, true) => "down".to_owned(),
        (None, false) => "up".to_owned(),
    };
    let mut out = format!(
        "Host mail status for: '{}'\nStatus as of: {}\nHost up/down: {state}\n\n",
        r.host,
        when(Some(rampart_store::unix_now()))
    );
    out.push_str("Counters:\n");
    for (name, n) in [
        ("Delivered Recipients", r.delivered),
        ("Soft Bounced Events", r.soft_bounced),
        ("Hard Bounced Recipients", r.hard_bounced),
    ] {
        out.push_str(&format!("  {name:<32}{:>12}\n", thousands(n)));
    }
    out.push_str("Gauges:\n");
    for (name, n) in [
        ("Active Recipients", r.active_recipients),
        ("Connections Out", r.connections_out),
    ] {
        out.push_str(&format!("  {name:<32}{:>12}\n", thousands(n)));
    }
    out.push_str(&format!("\nLast Attempt:    {}\n", when(d.last_attempt_at)));
    out.push_str(&format!("Last Delivery:   {}\n", when(d.last_delivered_at)));
    match &d.last_error {
        Some(e) => out.push_str(&format!(
            "Last Error:      {} ({})\n",
            e,
            when(d.last_error_at)
        )),
        None => out.push_str("Last Error:      none\n"),
    }
    out.push_str(&format!("Next Retry:      {}\n", when(d.next_retry_at)));
    if !intakes.is_empty() {
        out.push_str(&format!(
            "\n{:<40}{:>8}{:>11}{:>8}{:>9}  Last error\n",
            "Intake address", "Queued", "Delivered", "Failed", "Expired"
        ));
        for i in intakes {
            out.push_str(&format!(
                "{:<40}{:>8}{:>11}{:>8}{:>9}  {}\n",
                i.intake,
                thousands(i.queued),
                thousands(i.delivered),
                thousands(i.failed),
                thousands(i.expired),
                i.last_error.as_deref().unwrap_or("-")
            ));
        }
    }
    out
}

/// `rampart report`: the reports of *Monitor > Overview*, as text, JSON or one table as CSV.
pub(crate) async fn report(
    store: &Store,
    range: rampart_store::ReportRange,
    top: usize,
    csv: Option<rampart_web::reports::ReportTable>,
    json: bool,
) -> Result<()> {
    let report = store.report(range, top).await?;
    if let Some(table) = csv {
        print!("{}", rampart_web::reports::report_csv(&report, table)?);
    } else if json {
        let value = rampart_web::reports::report_json(&report);
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", report_text(&report));
    }
    Ok(())
}

/// The report as the CLI prints it: the summary tables, then the top lists.
pub(crate) fn report_text(r: &rampart_store::Report) -> String {
    use rampart_store::Series;
    let utc = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default()
    };
    let mut out = format!(
        "Report for the last {}: {} to {} UTC\n",
        r.range.label().to_lowercase(),
        utc(r.start),
        utc(r.end)
    );
    let section = |out: &mut String, title: &str, series: &[Series]| {
        let total: u64 = series.iter().map(|s| r.total(*s)).sum();
        out.push_str(&format!("\n{title:<44}{:>12}{:>9}\n", "Count", "Share"));
        for s in series {
            let n = r.total(*s);
            let share = if total == 0 {
                "-".to_owned()
            } else {
                format!("{:.1} %", n as f64 * 100.0 / total as f64)
            };
            out.push_str(&format!(
                "  {:<42}{:>12}{share:>9}\n",
                s.label(),
                thousands(n)
            ));
        }
    };
    section(
        &mut out,
        "Incoming messages",
        &[
            Series::InClean,
            Series::InSpam,
            Series::InVirus,
            Series::InFiltered,
        ],
    );
    section(
        &mut out,
        "Outgoing messages",
        &[
            Series::OutClean,
            Series::OutSpam,
            Series::OutVirus,
            Series::OutFiltered,
        ],
    );
    section(
        &mut out,
        "Recipients",
        &[Series::Delivered, Series::Bounced, Series::Expired],
    );
    section(
        &mut out,
        "Threat Defense journaling",
        &[
            Series::JournalDelivered,
            Series::JournalFailed,
            Series::JournalExpired,
            Series::JournalReplayed,
        ],
    );
    out.push_str(&format!("\nTop lists from {} UTC\n", utc(r.top_start)));
    for (title, list) in [
        ("Top senders by domain", &r.sender_domains),
        ("Top senders by IP address", &r.sender_ips),
        ("Top recipients", &r.recipients),
        ("Threat categories", &r.threats),
    ] {
        out.push_str(&format!("\n{title}\n"));
        if list.entries.is_empty() {
            out.push_str("  (none)\n");
        }
        for (i, e) in list.entries.iter().enumerate() {
            out.push_str(&format!(
                "  {:<4}{:<50}{:>10}\n",
                i + 1,
                e.key,
                thousands(e.n)
            ));
        }
        if list.others > 0 {
            out.push_str(&format!(
                "  {:<54}{:>10}\n",
                "Others",
                thousands(list.others)
            ));
        }
    }
    out
}

pub(crate) fn parse_track_event(s: &str) -> Result<rampart_store::TrackEvent, String> {
    rampart_store::TrackEvent::parse_named(s)
}

pub(crate) async fn tracking(
    store: &Store,
    filter: &TrackFilter,
    node: Option<&str>,
    json: bool,
) -> Result<()> {
    let (found, total) = store.track_in(filter, node).await?;
    let clustered = store.is_clustered();
    if json {
        let list: Vec<_> = found
            .iter()
            .map(|rampart_store::NodeTracked { node, tracked: t }| {
                serde_json::json!({
                    "node": clustered.then_some(node),
                    "mid": t.mid.0, "sender": t.sender, "recipients": t.recipients, "subject": t.subject,
                    "events": t.events.iter().map(|e| serde_json::json!({
                        "time": chrono::DateTime::from_timestamp_millis(e.at).map(|d| d.to_rfc3339()),
                        "text": e.text,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if found.is_empty() {
        println!("No messages found.");
    }
    let shown = found.len() as u64;
    for rampart_store::NodeTracked { node, tracked: t } in found {
        let on = if clustered {
            format!("{node}: ")
        } else {
            String::new()
        };
        println!(
            "{on}MID {}  from <{}>  to {}  subject {}",
            t.mid,
            t.sender,
            t.recipients
                .iter()
                .map(|r| format!("<{r}>"))
                .collect::<Vec<_>>()
                .join(", "),
            t.subject
                .as_deref()
                .map(rampart_maillog::quote)
                .unwrap_or_default()
        );
        for e in t.events {
            let time = chrono::DateTime::from_timestamp_millis(e.at)
                .map(|d| {
                    d.with_timezone(&chrono::Local)
                        .format("%d %b %Y %H:%M:%S")
                        .to_string()
                })
                .unwrap_or_default();
            println!("  {time}  {}", e.text);
        }
    }
    if shown > 0 && total > shown {
        let first = u64::from(filter.offset) + 1;
        println!(
            "Messages {first}-{} of {total} (newest first); --offset {} for more.",
            first + shown - 1,
            u64::from(filter.offset) + shown
        );
    }
    Ok(())
}

/// `30m`, `1h`, `2d`, `90s` or plain seconds → seconds.
pub(crate) fn parse_age(s: &str) -> Result<i64, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30m, 1h or 2d"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: unit must be s, m, h or d")),
    };
    Ok(n * mult)
}

pub(crate) async fn ledger(
    store: &Store,
    since: i64,
    state: Option<rampart_tdc::LedgerState>,
    node: Option<&str>,
    json: bool,
) -> Result<()> {
    let entries = store
        .ledger_in(rampart_store::unix_now() - since, state, 10_000, node)
        .await?;
    let clustered = store.is_clustered();
    if json {
        // The API's form, so that a script reads either the same way.
        let list: Vec<_> = entries
            .into_iter()
            .map(|(node, e)| {
                let mut one = rampart_web::api::ledger_json(e);
                if clustered && let Some(map) = one.as_object_mut() {
                    map.insert("node".into(), node.into());
                }
                one
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    println!(
        "{}{:<10} {:<10} {:>8}  {:<19}  {:<32} Last reply",
        if clustered { "Node            " } else { "" },
        "MID",
        "State",
        "Attempts",
        "Queued",
        "Intake"
    );
    for (node, e) in entries {
        let queued = chrono::DateTime::from_timestamp(e.queued_at, 0)
            .map(|d| {
                d.with_timezone(&chrono::Local)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string()
            })
            .unwrap_or_default();
        let node = if clustered {
            format!("{node:<15} ")
        } else {
            String::new()
        };
        println!(
            "{node}{:<10} {:<10} {:>8}  {:<19}  {:<32} {}",
            e.mid.0,
            e.state,
            e.attempts,
            queued,
            e.intake,
            e.last_reply.unwrap_or_default()
        );
    }
    Ok(())
}

/// `rampart ledger --replay`: journal copies that failed or expired within `since` seconds are
/// queued again (once each; never for a message whose copy was delivered).
pub(crate) async fn replay(store: &Store, since: i64, json: bool) -> Result<()> {
    let settings = store.load_settings().await?;
    if !settings.tdc.enabled {
        anyhow::bail!(
            "the Threat Defense Connector is disabled (rampart tdcconfig --enable): nothing was replayed"
        );
    }
    let mids = store
        .replay_journal(rampart_store::unix_now() - since)
        .await?;
    if json {
        println!(
            "{}",
            serde_json::json!({"replayed": mids.len(), "mids": mids.iter().map(|m| m.0).collect::<Vec<_>>()})
        );
    } else if mids.is_empty() {
        println!("No failed or expired journal copies to replay in that window.");
    } else {
        let list: Vec<String> = mids.iter().map(ToString::to_string).collect();
        println!(
            "{} journal copies queued again (MID {}); a running appliance sends them within a second.",
            mids.len(),
            list.join(", ")
        );
    }
    Ok(())
}

/// `rampart trace` as text: one section per step, as AsyncOS's `trace` prints it.
pub(crate) fn trace_text(r: &rampart_mta::TraceReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let _ = writeln!(
        out,
        "Client {} reverse dns host {} verified {}",
        r.client_ip,
        r.reverse_dns.host.as_deref().unwrap_or("unknown"),
        yes_no(r.reverse_dns.verified)
    );
    let _ = writeln!(
        out,
        "Sender group {} (match {}), mail flow policy {}: connection {}",
        r.sender_group, r.matched, r.mail_flow_policy, r.connection
    );
    if let Some(a) = &r.email_authentication {
        let _ = writeln!(
            out,
            "Email authentication: SPF {} DKIM {} DMARC {}",
            a.spf, a.dkim, a.dmarc
        );
    }
    for x in &r.recipients {
        let _ = writeln!(
            out,
            "Recipient {}: RAT {}{}",
            x.recipient,
            x.rat,
            x.policy
                .as_deref()
                .map(|p| format!(", {} policy {p}", r.direction))
                .unwrap_or_default()
        );
    }
    for s in &r.splits {
        let _ = writeln!(out, "Policy {} ({}):", s.policy, s.recipients.join(", "));
        if let Some(v) = &s.verdict {
            if let Some(x) = &v.spam {
                let _ = writeln!(out, "  Anti-Spam: {x}");
            }
            if let Some(x) = &v.virus {
                let _ = writeln!(out, "  Anti-Virus: {x}");
            }
            if !v.matched_filters.is_empty() {
                let _ = writeln!(
                    out,
                    "  Content filters matched: {}",
                    v.matched_filters.join(", ")
                );
            }
            let _ = writeln!(
                out,
                "  Action: {}{}; {}",
                v.action,
                v.decided_by
                    .as_deref()
                    .map(|d| format!(" (by {d})"))
                    .unwrap_or_default(),
                if v.clean {
                    "clean".to_owned()
                } else {
                    format!("not clean: {}", v.findings.join("; "))
                }
            );
        }
        let _ = writeln!(
            out,
            "  Threat Defense Connector: {} — {}",
            s.journal
                .intake_address
                .as_deref()
                .map(|a| format!("journaled to {a}"))
                .unwrap_or_else(|| "not journaled".into()),
            s.journal.reason
        );
    }
    if let Some(reply) = &r.reply {
        let _ = writeln!(out, "Reply to DATA: {reply}");
    }
    for n in &r.notes {
        let _ = writeln!(out, "Note: {n}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_asyncos_columns() {
        let rows = vec![
            HostRow {
                host: "the.tdc.queue".into(),
                active_recipients: 1,
                connections_out: 0,
                delivered: 104_163,
                soft_bounced: 0,
                hard_bounced: 0,
                down: false,
            },
            HostRow {
                host: "example.com".into(),
                active_recipients: 0,
                connections_out: 2,
                delivered: 5,
                soft_bounced: 1,
                hard_bounced: 1_000_000,
                down: true,
            },
        ];
        let now = chrono::DateTime::parse_from_rfc3339("2024-02-16T19:55:34Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let want = "\
Status as of:                Fri Feb 16 19:55:34 2024 UTC
Hosts marked with '*' were down as of the last delivery attempt.

                                        Active   Conn.     Deliv.       Soft       Hard
#   Recipient Host                      Recip.     Out     Recip.    Bounced    Bounced
1   the.tdc.queue                            1       0    104,163          0          0
2   *example.com                             0       2          5          1  1,000,000
";
        assert_eq!(tophosts_table(&rows, now), want);
    }
}
