//! Alerts (*System Administration > Alerts*): conditions checked every few seconds — the Threat
//! Defense intake unreachable or refusing copies, copies expiring, a scanning engine down, the
//! queue past its threshold, the disk nearly full, a destination down — each sent by email to the
//! recipients whose severity it reaches and to the webhook, once when it starts, again after the
//! repeat interval while it lasts, and as *cleared* (Info) when it ends. Every alert is logged.

pub mod webhook;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rampart_settings::{AlertSettings, Severity, SharedSettings};
use rampart_store::{AlertRecord, Mid, NewMessage, NewRecipient, QueueKind, RowState, Store};
use tokio::sync::{Mutex, watch};

/// An engine that does not answer its version within this time is down.
const ENGINE_WAIT: Duration = Duration::from_secs(3);
/// Journal failures and expiries this recent make an alert.
const RECENT_SECS: i64 = 600;

/// A condition that holds now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// What it is about, stable while it lasts: `tdc_intake`, `host_down:example.com`, …
    pub key: String,
    pub severity: Severity,
    /// One line, our own words (no text from the network).
    pub subject: String,
    /// The details: the last error and what to do.
    pub text: String,
}

/// The alert checker and sender of one appliance.
#[derive(Debug)]
pub struct Alerts {
    store: Store,
    settings: SharedSettings,
    engines: Arc<rampart_scan::Engines>,
    data_dir: PathBuf,
    hostname: String,
    /// Conditions alerted and still holding: key → (the condition, when last sent).
    active: Mutex<HashMap<String, (Condition, i64)>>,
}

impl Alerts {
    pub fn new(
        store: Store,
        settings: SharedSettings,
        engines: Arc<rampart_scan::Engines>,
        data_dir: PathBuf,
        hostname: String,
    ) -> Alerts {
        Alerts {
            store,
            settings,
            engines,
            data_dir,
            hostname,
            active: Mutex::new(HashMap::new()),
        }
    }

    fn config(&self) -> AlertSettings {
        self.settings.load().settings().alerts.clone()
    }

    /// Every condition that holds now.
    pub async fn check(&self) -> Vec<Condition> {
        let config = self.config();
        let mut out = Vec::new();
        let now = rampart_store::unix_now();
        let tdc_enabled = self.settings.load().settings().tdc.enabled;
        if tdc_enabled {
            self.check_tdc(now, &mut out).await;
        }
        self.check_engines(&mut out).await;
        match self.store.totals().await {
            Ok(t) if config.queue_threshold > 0 && t.queued >= config.queue_threshold => {
                out.push(Condition {
                    key: "queue".into(),
                    severity: Severity::Warning,
                    subject: format!(
                        "{} recipients are queued (threshold {})",
                        t.queued, config.queue_threshold
                    ),
                    text: "Delivery is not keeping up or destinations are down: see Monitor > \
                           Delivery Status (tophosts)."
                        .into(),
                });
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "alerts: cannot read the queue size"),
        }
        if config.disk_free_percent > 0
            && let Some(free) = free_percent(&self.data_dir)
            && free < f64::from(config.disk_free_percent)
        {
            out.push(Condition {
                key: "disk".into(),
                severity: Severity::Critical,
                subject: format!(
                    "Only {free:.1} % of the disk holding {} is free",
                    self.data_dir.display()
                ),
                text: format!(
                    "The threshold is {} %. Free space or enlarge the volume; [retention] \
                     bounds how long message bodies and records are kept.",
                    config.disk_free_percent
                ),
            });
        }
        match self.store.tophosts().await {
            Ok(rows) => {
                for r in rows
                    .iter()
                    .filter(|r| r.down && r.host != rampart_tdc::TDC_QUEUE)
                {
                    let last = match self.store.host_detail(&r.host).await {
                        Ok(Some(d)) => d.last_error.unwrap_or_default(),
                        _ => String::new(),
                    };
                    out.push(Condition {
                        key: format!("host_down:{}", r.host),
                        severity: Severity::Warning,
                        subject: format!("Destination {} is down", r.host),
                        text: format!(
                            "The last connection attempt failed{}. {} recipient(s) wait and are \
                             retried by the bounce profile.",
                            if last.is_empty() {
                                String::new()
                            } else {
                                format!(": {last}")
                            },
                            r.active_recipients
                        ),
                    });
                }
            }
            Err(e) => tracing::warn!(error = %e, "alerts: cannot read tophosts"),
        }
        out
    }

    async fn check_tdc(&self, now: i64, out: &mut Vec<Condition>) {
        if let Ok(Some(d)) = self.store.host_detail(rampart_tdc::TDC_QUEUE).await
            && d.row.down
        {
            out.push(Condition {
                key: "tdc_intake".into(),
                severity: Severity::Critical,
                subject: "The Threat Defense intake is unreachable".into(),
                text: format!(
                    "Journal copies cannot be delivered{}; they expire 120 seconds after they \
                     were queued. Check the network path to the intake (Security Services > \
                     Threat Defense Connector shows its health).",
                    d.last_error.map(|e| format!(": {e}")).unwrap_or_default()
                ),
            });
        }
        if let Ok(intakes) = self.store.intakes().await {
            for i in intakes {
                let failing = i.last_error_at.is_some_and(|t| {
                    t >= now - RECENT_SECS && i.last_delivered_at.is_none_or(|d| d < t)
                });
                if failing {
                    out.push(Condition {
                        key: format!("tdc_refused:{}", i.intake),
                        severity: Severity::Warning,
                        subject: format!("Journal copies to {} are failing", i.intake),
                        text: format!(
                            "The last copy for this intake address failed: {}. {} failed and {} \
                             expired in all. Failed copies can be resent from the ledger \
                             (Resend) once the cause is fixed.",
                            i.last_error.unwrap_or_default(),
                            i.failed,
                            i.expired
                        ),
                    });
                }
            }
        }
        if let Ok(c) = self.store.ledger_counts(now - RECENT_SECS).await
            && c.expired > 0
        {
            out.push(Condition {
                key: "tdc_expired".into(),
                severity: Severity::Warning,
                subject: format!(
                    "{} journal copies expired in the last 10 minutes",
                    c.expired
                ),
                text: "A copy not delivered within 120 seconds expires, as Cisco's connector \
                       does. They can be resent from the ledger (Resend)."
                    .into(),
            });
        }
    }

    async fn check_engines(&self, out: &mut Vec<Condition>) {
        if let Some(spam) = &self.engines.spam {
            let answer = tokio::time::timeout(ENGINE_WAIT, spam.client.ping()).await;
            if let Some(why) = engine_error(answer) {
                out.push(Condition {
                    key: "engine:rspamd".into(),
                    severity: Severity::Critical,
                    subject: format!("The anti-spam engine at {} does not answer", spam.url),
                    text: engine_text(&why, spam.accept_on_error),
                });
            }
        }
        if let Some(virus) = &self.engines.virus {
            let answer = tokio::time::timeout(ENGINE_WAIT, virus.client.version()).await;
            if let Some(why) = engine_error(answer) {
                out.push(Condition {
                    key: "engine:clamav".into(),
                    severity: Severity::Critical,
                    subject: format!("The anti-virus engine at {} does not answer", virus.address),
                    text: engine_text(&why, virus.accept_on_error),
                });
            }
        }
    }

    /// Checks now and sends what is new, due again, or cleared.
    pub async fn tick(&self) {
        let conditions = self.check().await;
        let repeat = i64::from(self.config().repeat_mins) * 60;
        let now = rampart_store::unix_now();
        let mut due = Vec::new();
        {
            let mut active = self.active.lock().await;
            for c in &conditions {
                match active.get_mut(&c.key) {
                    Some((_, sent)) if now - *sent < repeat => {}
                    Some((held, sent)) => {
                        *held = c.clone();
                        *sent = now;
                        due.push(c.clone());
                    }
                    None => {
                        active.insert(c.key.clone(), (c.clone(), now));
                        due.push(c.clone());
                    }
                }
            }
            let ended: Vec<String> = active
                .keys()
                .filter(|k| !conditions.iter().any(|c| &c.key == *k))
                .cloned()
                .collect();
            for key in ended {
                if let Some((c, _)) = active.remove(&key) {
                    due.push(Condition {
                        key: c.key,
                        severity: Severity::Info,
                        subject: format!("Cleared: {}", c.subject),
                        text: "The condition no longer holds.".into(),
                    });
                }
            }
        }
        for c in due {
            self.send(&c).await;
        }
    }

    /// Sends one alert to the recipients and the webhook that take its severity, and logs it.
    /// Returns where it went.
    pub async fn send(&self, c: &Condition) -> String {
        let config = self.config();
        let recipients: Vec<&str> = config
            .recipients
            .iter()
            .filter(|r| c.severity >= r.severity)
            .map(|r| r.address.as_str())
            .collect();
        self.deliver(
            c,
            &config,
            &recipients,
            c.severity >= config.webhook_severity,
        )
        .await
    }

    /// *Send Test Alert*: an Info alert to every recipient and the webhook, whatever their
    /// severity, so the path can be checked.
    pub async fn send_test(&self, by: &str) -> String {
        let config = self.config();
        let recipients: Vec<&str> = config
            .recipients
            .iter()
            .map(|r| r.address.as_str())
            .collect();
        let c = Condition {
            key: "test".into(),
            severity: Severity::Info,
            subject: "Test alert".into(),
            text: format!("A test alert sent by {by} from System Administration > Alerts."),
        };
        self.deliver(&c, &config, &recipients, true).await
    }

    async fn deliver(
        &self,
        c: &Condition,
        config: &AlertSettings,
        recipients: &[&str],
        webhook: bool,
    ) -> String {
        let now = rampart_store::unix_now();
        let mut sent = Vec::new();
        if !recipients.is_empty() {
            match self.queue_email(c, config, recipients).await {
                Ok(mid) => sent.push(format!("email to {} (MID {mid})", recipients.join(", "))),
                Err(e) => sent.push(format!("email not queued: {e}")),
            }
        }
        let url = config.webhook_url.trim();
        if webhook && !url.is_empty() {
            let body = serde_json::json!({
                "severity": c.severity.as_str(),
                "key": c.key,
                "subject": c.subject,
                "text": c.text,
                "hostname": self.hostname,
                "time": chrono::DateTime::from_timestamp(now, 0).map(|t| t.to_rfc3339()),
            });
            match webhook::post(url, &body).await {
                Ok(status) if (200..300).contains(&status) => {
                    sent.push(format!("webhook (HTTP {status})"))
                }
                Ok(status) => sent.push(format!("webhook failed: HTTP {status}")),
                Err(e) => sent.push(format!("webhook failed: {e}")),
            }
        }
        let sent_to = if sent.is_empty() {
            "nobody: no recipient or webhook takes this severity".to_owned()
        } else {
            sent.join("; ")
        };
        tracing::info!(severity = c.severity.as_str(), key = %c.key, subject = %c.subject, sent_to = %sent_to, "alert");
        let record = AlertRecord {
            at: now,
            severity: c.severity.as_str().into(),
            key: c.key.clone(),
            subject: c.subject.clone(),
            text: c.text.clone(),
            sent_to: sent_to.clone(),
        };
        if let Err(e) = self.store.log_alert(&record).await {
            tracing::warn!(error = %e, "alerts: cannot log an alert");
        }
        sent_to
    }

    /// Queues the alert email like a bounce notice: generated here (ICID 0), delivered by the
    /// normal queues and routes, tracked under its MID.
    async fn queue_email(
        &self,
        c: &Condition,
        config: &AlertSettings,
        recipients: &[&str],
    ) -> Result<Mid, rampart_store::StoreError> {
        let from = if config.from_address.is_empty() {
            format!("rampart-alerts@{}", self.hostname)
        } else {
            config.from_address.clone()
        };
        let mid = self.store.next_mid().await?;
        let subject = one_line(&format!(
            "[Rampart {}] {}: {}",
            self.hostname,
            c.severity.label(),
            c.subject
        ));
        let now = chrono::Utc::now();
        let body = format!(
            "From: Rampart alerts <{from}>\r\nTo: {}\r\nSubject: {subject}\r\nDate: {}\r\n\
             Message-ID: <alert-{}.{}@{}>\r\nAuto-Submitted: auto-generated\r\n\
             X-Rampart-Alert: {} {}\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
             {}\r\n\r\n{}\r\n\r\nSeverity: {}\r\nCondition: {}\r\nAppliance: {}\r\nTime: {}\r\n",
            recipients.join(", "),
            now.to_rfc2822(),
            now.timestamp(),
            mid,
            self.hostname,
            c.severity.as_str(),
            one_line(&c.key),
            c.subject,
            c.text.replace('\n', "\r\n"),
            c.severity.label(),
            c.key,
            self.hostname,
            now.format("%a %b %e %H:%M:%S %Y UTC"),
        );
        let message = NewMessage {
            mid,
            icid: 0,
            sender: from,
            remote_ip: "127.0.0.1".into(),
            helo: self.hostname.clone(),
            sender_group: String::new(),
            relayed: true,
            policy: String::new(),
            verdict: "deliver".into(),
            findings: String::new(),
            threats: Vec::new(),
            spam: None,
            virus: None,
            tls: None,
            message_id: None,
            subject: Some(subject.clone()),
            body: body.into_bytes(),
            recipients: recipients
                .iter()
                .enumerate()
                .map(|(i, r)| NewRecipient {
                    rcpt_idx: i as u32,
                    recipient: (*r).to_owned(),
                    queue_name: r
                        .rsplit_once('@')
                        .map(|(_, d)| d.to_ascii_lowercase())
                        .unwrap_or_default(),
                    kind: QueueKind::Deliver,
                    state: RowState::Queued,
                })
                .collect(),
            tracking: vec![format!("Message {mid} is an alert: {subject}")],
        };
        self.store.accept(message).await?;
        Ok(mid)
    }
}

/// A header value on one line: control characters become spaces.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn engine_error<T>(
    answer: Result<Result<T, rampart_scan::ScanError>, tokio::time::error::Elapsed>,
) -> Option<String> {
    match answer {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {} s", ENGINE_WAIT.as_secs())),
    }
}

fn engine_text(why: &str, accept_on_error: bool) -> String {
    format!(
        "{why}. Meanwhile {}.",
        if accept_on_error {
            "mail is accepted unscanned (on_error = \"accept\") and is never journaled"
        } else {
            "mail that this engine must scan is refused with 451 4.7.1 and senders retry"
        }
    )
}

/// Free space of the file system holding `dir`, in percent of its size.
fn free_percent(dir: &std::path::Path) -> Option<f64> {
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    let total = s.blocks() as f64;
    (total > 0.0).then(|| s.blocks_available() as f64 * 100.0 / total)
}

/// Checks every `every` until `stop`.
pub async fn run(alerts: Arc<Alerts>, every: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        alerts.tick().await;
    }
}
