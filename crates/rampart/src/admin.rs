//! Administration commands: `status`, `deliverynow`, `tail`, `userconfig`, `auditlog`. They work
//! on the data dir of a (running or stopped) appliance, like the other commands.

use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use rampart_store::{Role, Store};
use serde_json::Value;

/// `rampart status`: the figures of `GET /api/v1/status`, as AsyncOS `status` lays them out.
pub(crate) async fn status(store: &Store, json: bool) -> Result<()> {
    let settings = store.load_settings().await?;
    let report = rampart_web::api::status_report(store, &settings).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    print!("{}", status_text(&report));
    Ok(())
}

/// `rampart logconfig`: the mail_logs file and the syslog push as configured, with the push's
/// counters as the running appliance last recorded them (every 10 seconds).
pub(crate) async fn logconfig(
    config: &rampart_config::Config,
    store: &Store,
    json: bool,
) -> Result<()> {
    let logs = &config.logs;
    let path = config.data_dir.join("logs").join("mail_logs");
    let target = logs
        .syslog_target()
        .ok()
        .flatten()
        .map(|_| logs.syslog.trim().to_owned());
    let status: Option<Value> = match &target {
        Some(_) => store
            .meta("syslog_status")
            .await?
            .and_then(|s| serde_json::from_str(&s).ok())
            // Counters of an earlier push configuration are not this one's.
            .filter(|s: &Value| s.get("target").and_then(Value::as_str) == target.as_deref()),
        None => None,
    };
    let framing = logs.syslog_framing.as_str();
    let report = serde_json::json!({
        "file": {
            "path": path.display().to_string(),
            "max_file_bytes": logs.max_file_bytes,
            "retain_files": logs.retain_files,
        },
        "syslog": target.as_ref().map(|t| serde_json::json!({
            "target": t,
            "facility": logs.syslog_facility.trim().to_ascii_lowercase(),
            "framing": framing,
            "status": status,
        })),
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("Currently configured logs:");
    println!(
        "1. \"mail_logs\" Type: \"Mail Logs\" Retrieval: File {} (rolled at {} bytes, {} rolled files kept)",
        path.display(),
        logs.max_file_bytes,
        logs.retain_files
    );
    match &target {
        Some(t) => {
            println!(
                "2. \"mail_logs\" Type: \"Mail Logs\" Retrieval: Syslog Push {t} facility {} ({framing} framing)",
                logs.syslog_facility.trim().to_ascii_lowercase()
            );
            let field = |name: &str| {
                status
                    .as_ref()
                    .and_then(|s| s.get(name))
                    .cloned()
                    .unwrap_or(Value::Null)
            };
            if status.is_some() {
                let as_of = field("as_of")
                    .as_i64()
                    .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                    .map(|t| t.format("%a %b %e %H:%M:%S %Y UTC").to_string())
                    .unwrap_or_default();
                let state = match (field("connected").as_bool(), field("last_error").as_str()) {
                    (Some(true), _) => "connected".to_owned(),
                    (_, Some(e)) => format!("not connected ({e})"),
                    _ => "not connected".to_owned(),
                };
                println!(
                    "   as of {as_of}: {state}, {} sent, {} waiting, {} dropped",
                    field("sent"),
                    field("queued"),
                    field("dropped")
                );
            } else {
                println!("   no counters yet: the appliance has not run with this push");
            }
        }
        None => println!("   (no syslog push: set logs.syslog in the configuration file)"),
    }
    Ok(())
}

fn status_text(r: &Value) -> String {
    let at = |pointer: &str| r.pointer(pointer).unwrap_or(&Value::Null);
    let time = |v: &Value| {
        v.as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.format("%a %b %e %H:%M:%S %Y UTC").to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    let n = |v: &Value| crate::status::thousands(v.as_u64().unwrap_or(0));
    let mut out = format!(
        "Status as of:                  {}\n",
        time(at("/status_as_of"))
    );
    let up = match at("/uptime_secs").as_i64() {
        Some(s) => format!(
            "{} ({}d {}h {}m {}s)",
            time(at("/started_at")),
            s / 86_400,
            s % 86_400 / 3600,
            s % 3600 / 60,
            s % 60
        ),
        None => "never started".into(),
    };
    out.push_str(&format!("Up since:                      {up}\n"));
    let tdc = if at("/tdc/enabled").as_bool() == Some(true) {
        format!(
            "Enabled ({})",
            at("/tdc/intake_address").as_str().unwrap_or("")
        )
    } else {
        "Disabled".into()
    };
    out.push_str(&format!("Threat Defense Connector:      {tdc}\n\n"));
    out.push_str(&format!("{:<32}{:>12}\n", "Counters:", "Total"));
    for (label, key) in [
        ("Messages Received", "messages_received"),
        ("Recipients Delivered", "recipients_delivered"),
        ("Recipients Hard Bounced", "recipients_hard_bounced"),
        ("Journal Copies Delivered", "journal_copies_delivered"),
        ("Journal Copies Failed", "journal_copies_failed"),
        ("Spam Messages", "messages_spam"),
        ("Virus Messages", "messages_virus"),
    ] {
        out.push_str(&format!(
            "  {label:<30}{:>12}\n",
            n(at(&format!("/counters/{key}")))
        ));
    }
    out.push_str(&format!("\n{:<32}{:>12}\n", "Gauges:", "Current"));
    for (label, key) in [
        ("Active Recipients", "active_recipients"),
        ("the.tdc.queue", "tdc_queue"),
        ("Quarantined Recipients", "quarantined_recipients"),
    ] {
        out.push_str(&format!(
            "  {label:<30}{:>12}\n",
            n(at(&format!("/gauges/{key}")))
        ));
    }
    let down: Vec<&str> = at("/gauges/hosts_down")
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let down = if down.is_empty() {
        "none".to_owned()
    } else {
        down.join(", ")
    };
    out.push_str(&format!("  {:<30}{:>12}\n", "Hosts Down", down));
    out
}

/// `rampart deliverynow [HOST]`.
pub(crate) async fn deliverynow(store: &Store, host: Option<&str>, json: bool) -> Result<()> {
    let n = store.deliver_now(host).await?;
    if json {
        println!(
            "{}",
            serde_json::json!({"host": host, "rescheduled_recipients": n})
        );
    } else {
        eprintln!(
            "{n} recipient(s) for {} rescheduled for immediate delivery; a running appliance starts within a second",
            host.unwrap_or("all hosts")
        );
    }
    Ok(())
}

/// `rampart alertconfig`: who gets alerts, the thresholds, and the latest alerts.
pub(crate) async fn alertconfig(store: &Store, limit: u32, json: bool) -> Result<()> {
    let (settings, _) = store.load_settings_at().await?;
    let log = store.alert_log(limit).await?;
    let a = &settings.alerts;
    if json {
        let value = serde_json::json!({
            "settings": a,
            "log": log.iter().map(rampart_web::api::alert_json).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!("Alert recipients:");
    if a.recipients.is_empty() {
        println!("  (none)");
    }
    for r in &a.recipients {
        println!("  {:<40} {} and above", r.address, r.severity.label());
    }
    println!(
        "Webhook: {}",
        if a.webhook_url.is_empty() {
            "(none)".to_owned()
        } else {
            format!(
                "{} ({} and above)",
                a.webhook_url,
                a.webhook_severity.label()
            )
        }
    );
    println!(
        "From: {}",
        if a.from_address.is_empty() {
            "rampart-alerts@<hostname>"
        } else {
            &a.from_address
        }
    );
    println!("Repeat a lasting alert after: {} minutes", a.repeat_mins);
    println!(
        "Queue threshold: {} recipients (0 = off)",
        a.queue_threshold
    );
    println!(
        "Free disk space below: {} % (0 = off)\n",
        a.disk_free_percent
    );
    println!("Latest alerts:");
    if log.is_empty() {
        println!("  (none)");
    }
    for e in &log {
        let when = chrono::DateTime::from_timestamp(e.at, 0)
            .map(|t| t.format("%a %b %e %H:%M:%S %Y").to_string())
            .unwrap_or_default();
        println!("  {when}  {:<8} {}  → {}", e.severity, e.subject, e.sent_to);
    }
    Ok(())
}

/// `rampart suspenddel HOST`: delivery to HOST waits until `resumedel`.
pub(crate) async fn suspenddel(store: &Store, host: &str, json: bool) -> Result<()> {
    let host = rampart_web::api::host_name(host).map_err(anyhow::Error::msg)?;
    let by = format!("{} (cli)", crate::cli::cli_audit().user);
    let n = store.hold_host(&host, &by).await?;
    tracing::info!(host = %host, rows = n, by = %by, "delivery suspended from the CLI");
    if json {
        println!(
            "{}",
            serde_json::json!({"host": host, "held": true, "waiting_recipients": n})
        );
    } else {
        eprintln!(
            "delivery to {host} suspended; {n} queued recipient(s) wait, and new mail for it waits too, until `rampart resumedel {host}`"
        );
    }
    Ok(())
}

/// `rampart resumedel HOST`.
pub(crate) async fn resumedel(store: &Store, host: &str, json: bool) -> Result<()> {
    let host = rampart_web::api::host_name(host).map_err(anyhow::Error::msg)?;
    let Some(n) = store.resume_host(&host).await? else {
        anyhow::bail!("delivery to {host} is not suspended");
    };
    if json {
        println!(
            "{}",
            serde_json::json!({"host": host, "held": false, "rescheduled_recipients": n})
        );
    } else {
        eprintln!(
            "delivery to {host} resumed; {n} recipient(s) are due now and a running appliance starts within a second"
        );
    }
    Ok(())
}

/// `rampart tail mail_logs`: the last `lines` lines, then new lines as they are written (across
/// a roll-over to `mail_logs.@…s`, when a new file appears under the same name).
pub(crate) async fn tail(path: &Path, lines: usize, follow: bool) -> Result<()> {
    let open =
        || std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()));
    let mut file = open()?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let all: Vec<&str> = text.lines().collect();
    let mut stdout = std::io::stdout().lock();
    for line in all.iter().skip(all.len().saturating_sub(lines)) {
        writeln!(stdout, "{line}")?;
    }
    stdout.flush()?;
    drop(stdout);
    if !follow {
        return Ok(());
    }
    let mut pos = file.stream_position()?;
    let mut inode = file.metadata()?.ino();
    loop {
        // Polling a file is what `tail -f` does too; the log writer does not notify readers.
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Ok(meta) = std::fs::metadata(path)
            && (meta.ino() != inode || meta.len() < pos)
        {
            file = open()?;
            inode = meta.ino();
            pos = 0;
        }
        file.seek(SeekFrom::Start(pos))?;
        let mut fresh = Vec::new();
        file.read_to_end(&mut fresh)?;
        // Only whole lines; a line being written is printed once it is complete.
        if let Some(end) = fresh.iter().rposition(|&b| b == b'\n') {
            let mut out = std::io::stdout().lock();
            out.write_all(fresh.get(..=end).unwrap_or_default())?;
            out.flush()?;
            pos += end as u64 + 1;
        }
    }
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum UserAction {
    /// List the accounts.
    List,
    /// Create an account, or replace one's password and role. The passphrase is read from
    /// RAMPART_USER_PASSWORD, or else from the first line of standard input.
    Add {
        name: String,
        #[arg(long, value_parser = ["admin", "operator", "readonly"])]
        role: String,
    },
    /// Change an account's role.
    Role {
        name: String,
        #[arg(value_parser = ["admin", "operator", "readonly"])]
        role: String,
    },
    /// Set an account's passphrase (from RAMPART_USER_PASSWORD or standard input); its
    /// sessions end.
    Password { name: String },
    /// Remove an account and its sessions.
    Delete { name: String },
}

fn read_password() -> Result<String> {
    let password = match std::env::var("RAMPART_USER_PASSWORD") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the passphrase from standard input")?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    if password.len() < rampart_web::auth::MIN_PASSWORD {
        bail!(
            "the passphrase must have at least {} characters",
            rampart_web::auth::MIN_PASSWORD
        );
    }
    Ok(password)
}

/// `rampart userconfig`.
pub(crate) async fn userconfig(
    store: &Store,
    action: Option<UserAction>,
    json: bool,
) -> Result<()> {
    let role_of = |r: &str| Role::parse(r).ok_or_else(|| anyhow!("unknown role {r:?}"));
    let who = crate::cli::cli_audit().user;
    let save = |name: String, password: Option<String>, role: Role| {
        let who = who.clone();
        async move {
            rampart_web::auth::save_account(store, &name, password.as_deref(), role, &who, "cli")
                .await
                .map_err(|e| anyhow!("{e}"))?;
            anyhow::Ok(format!(
                "Users: saved account {name} with role {}",
                role.as_str()
            ))
        }
    };
    let change = match action.unwrap_or(UserAction::List) {
        UserAction::List => {
            let users = store.users().await?;
            if json {
                let list: Vec<Value> = users
                    .iter()
                    .map(|(u, _)| serde_json::json!({"name": u.name, "role": u.role.as_str()}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!("{:<32} Role", "Username");
                for (u, _) in users {
                    println!("{:<32} {}", u.name, u.role.as_str());
                }
            }
            return Ok(());
        }
        UserAction::Add { name, role } => {
            save(name, Some(read_password()?), role_of(&role)?).await?
        }
        UserAction::Role { name, role } => {
            let role = role_of(&role)?;
            let user = store
                .user(&name)
                .await?
                .ok_or_else(|| anyhow!("no account named {name:?}"))?;
            if user.role == Role::Admin && role != Role::Admin && admins(store).await? == 1 {
                bail!("{name} is the last administrator; make another account admin first");
            }
            save(name, None, role).await?
        }
        UserAction::Password { name } => {
            let user = store
                .user(&name)
                .await?
                .ok_or_else(|| anyhow!("no account named {name:?}"))?;
            save(name, Some(read_password()?), user.role).await?
        }
        UserAction::Delete { name } => {
            let user = store
                .user(&name)
                .await?
                .ok_or_else(|| anyhow!("no account named {name:?}"))?;
            if user.role == Role::Admin && admins(store).await? == 1 {
                bail!("{name} is the last administrator and cannot be removed");
            }
            store.delete_user(&name).await?;
            let change = format!("Users: removed account {name}");
            store
                .audit(&rampart_store::Audit::new(&who, "cli", change.clone()))
                .await?;
            change
        }
    };
    if json {
        println!("{}", serde_json::json!({"changed": change}));
    } else {
        eprintln!("{change}");
    }
    Ok(())
}

async fn admins(store: &Store) -> Result<usize> {
    Ok(store
        .users()
        .await?
        .iter()
        .filter(|(u, _)| u.role == Role::Admin)
        .count())
}

/// `rampart auditlog`.
pub(crate) async fn auditlog(store: &Store, limit: u32, json: bool) -> Result<()> {
    let entries = store.audit_log(limit).await?;
    if json {
        let list: Vec<Value> = entries.iter().map(rampart_web::api::audit_json).collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    for e in entries {
        let at = chrono::DateTime::from_timestamp(e.at, 0)
            .map(|t| t.format("%a %b %e %H:%M:%S %Y").to_string())
            .unwrap_or_default();
        let comment = if e.audit.comment.is_empty() {
            String::new()
        } else {
            format!(" — {}", e.audit.comment)
        };
        let node = e.node.map(|n| format!(" on {n}")).unwrap_or_default();
        println!("{at} {} ({}{node}){comment}", e.audit.user, e.audit.source);
        for c in e.audit.changes {
            println!("    {c}");
        }
    }
    Ok(())
}

/// `rampart clusterconfig`.
pub(crate) async fn clusterconfig(store: &Store, json: bool) -> Result<()> {
    let Some(view) = rampart_web::cluster::ClusterView::read(store).await? else {
        if json {
            println!("{}", rampart_web::cluster::standalone_json());
        } else {
            println!(
                "This appliance is not in a cluster ([cluster] database_url is not set in its configuration)."
            );
        }
        return Ok(());
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&view.json())?);
        return Ok(());
    }
    let Some(nodes) = &view.nodes else {
        anyhow::bail!(
            "the cluster database {} cannot be reached: {}",
            view.health.database,
            view.health.error.as_deref().unwrap_or("no answer")
        );
    };
    println!("Cluster database: {} (reachable)", view.health.database);
    if let Some(g) = view.generation {
        println!("Settings generation: {g}");
    }
    println!();
    let time = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default()
    };
    println!(
        "{:<20} {:<14} {:<10} {:<22} {:<20} {:>10}",
        "Node", "State", "Version", "SMTP", "Last heartbeat (UTC)", "Generation"
    );
    for n in nodes {
        println!(
            "{:<20} {:<14} {:<10} {:<22} {:<20} {:>10}",
            n.name,
            if view.answering(n) {
                "up"
            } else {
                "not answering"
            },
            n.version,
            n.smtp,
            time(n.heartbeat_at),
            n.settings_generation
        );
    }
    if nodes.is_empty() {
        println!("(no node has sent a heartbeat yet)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_layout() {
        let r = serde_json::json!({
            "status_as_of": "2024-02-16T19:55:34+00:00", "started_at": "2024-02-15T19:55:34+00:00",
            "uptime_secs": 86_400 + 3661,
            "counters": {"messages_received": 104163, "recipients_delivered": 5, "recipients_hard_bounced": 0,
                         "journal_copies_delivered": 5, "journal_copies_failed": 1},
            "gauges": {"active_recipients": 2, "tdc_queue": 1, "quarantined_recipients": 0, "hosts_down": ["example.com"]},
            "tdc": {"enabled": true, "intake_address": "j@beta.cmd.cisco.com"},
        });
        let text = status_text(&r);
        assert!(
            text.starts_with("Status as of:                  Fri Feb 16 19:55:34 2024 UTC\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "Up since:                      Thu Feb 15 19:55:34 2024 UTC (1d 1h 1m 1s)"
            )
        );
        assert!(text.contains("Threat Defense Connector:      Enabled (j@beta.cmd.cisco.com)"));
        assert!(
            text.contains("  Messages Received                  104,163\n"),
            "{text}"
        );
        assert!(text.contains("  the.tdc.queue                            1\n"));
        assert!(text.contains("  Hosts Down                     example.com\n"));
    }
}
