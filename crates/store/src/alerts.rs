//! The alert log (*System Administration > Alerts*): every alert the appliance sent.

use sqlx::Row;

use crate::{Store, StoreError, unix_now};

/// One alert as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRecord {
    pub at: i64,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// The condition it is about (`tdc_intake`, `host_down:example.com`, …).
    pub key: String,
    pub subject: String,
    pub text: String,
    /// Where it went, or why it went nowhere.
    pub sent_to: String,
}

/// Alerts are kept this long.
const KEEP_SECS: i64 = 90 * 86_400;

impl Store {
    pub async fn log_alert(&self, a: &AlertRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO alert_log (at, severity, key, subject, text, sent_to) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(a.at)
        .bind(&a.severity)
        .bind(&a.key)
        .bind(&a.subject)
        .bind(&a.text)
        .bind(&a.sent_to)
        .execute(self.pool())
        .await?;
        sqlx::query("DELETE FROM alert_log WHERE at < ?1")
            .bind(unix_now() - KEEP_SECS)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The newest `limit` alerts, newest first.
    pub async fn alert_log(&self, limit: u32) -> Result<Vec<AlertRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, severity, key, subject, text, sent_to FROM alert_log \
             ORDER BY id DESC LIMIT ?1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(AlertRecord {
                    at: r.try_get("at")?,
                    severity: r.try_get("severity")?,
                    key: r.try_get("key")?,
                    subject: r.try_get("subject")?,
                    text: r.try_get("text")?,
                    sent_to: r.try_get("sent_to")?,
                })
            })
            .collect()
    }
}
