//! The quarantine: messages a policy held, released to delivery or deleted by an operator.

use sqlx::{Connection, Row};

use crate::{Mid, Store, StoreError, unix_now, unix_now_ms};

/// A quarantined message.
#[derive(Debug, Clone)]
pub struct Quarantined {
    pub mid: Mid,
    pub sender: String,
    pub recipients: Vec<String>,
    pub subject: Option<String>,
    pub policy: String,
    pub findings: String,
    pub received_at: i64,
}

impl Store {
    /// Messages held in the quarantine, newest first.
    pub async fn quarantine(&self) -> Result<Vec<Quarantined>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.mid, m.sender, m.subject, m.policy, m.findings, m.received_at, \
             group_concat(q.recipient, char(10)) AS rcpts FROM messages m JOIN queue q ON q.mid = m.mid \
             WHERE q.state = 'quarantined' GROUP BY m.mid ORDER BY m.mid DESC",
        )
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                let rcpts: String = r.try_get("rcpts")?;
                Ok(Quarantined {
                    mid: Mid(r.try_get::<i64, _>("mid")? as u64),
                    sender: r.try_get("sender")?,
                    recipients: rcpts.lines().map(str::to_owned).collect(),
                    subject: r.try_get("subject")?,
                    policy: r.try_get("policy")?,
                    findings: r.try_get("findings")?,
                    received_at: r.try_get("received_at")?,
                })
            })
            .collect()
    }

    /// Releases a quarantined message for delivery; returns how many recipients were released.
    pub async fn quarantine_release(&self, mid: Mid, by: &str) -> Result<u64, StoreError> {
        self.quarantine_move(
            mid,
            "queued",
            &format!("Message {mid} released from the quarantine by {by}"),
        )
        .await
    }

    /// Deletes a quarantined message (its rows become `dropped`).
    pub async fn quarantine_delete(&self, mid: Mid, by: &str) -> Result<u64, StoreError> {
        self.quarantine_move(
            mid,
            "dropped",
            &format!("Message {mid} deleted from the quarantine by {by}"),
        )
        .await
    }

    async fn quarantine_move(&self, mid: Mid, state: &str, event: &str) -> Result<u64, StoreError> {
        let now = unix_now();
        let mut conn = self.pool().acquire().await?;
        let mut tx = conn.begin().await?;
        let n = sqlx::query(
            "UPDATE queue SET state = ?2, next_attempt_at = ?3, done_at = CASE WHEN ?2 = 'dropped' THEN ?3 END \
             WHERE mid = ?1 AND state = 'quarantined'",
        )
        .bind(mid.0 as i64)
        .bind(state)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            sqlx::query("INSERT INTO tracking (mid, at, text) VALUES (?1, ?2, ?3)")
                .bind(mid.0 as i64)
                .bind(unix_now_ms())
                .bind(event)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        if n > 0 && state == "queued" {
            self.queued.notify_one();
        }
        Ok(n)
    }
}
