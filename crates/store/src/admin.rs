//! The figures of *System Status* and its activity chart, appliance metadata, and *Retry
//! Delivery* for a host's queue.

use sqlx::Row;

use crate::{Store, StoreError, unix_now};

/// Counters for *System Status*, since the database was created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Messages (MIDs) received.
    pub received: u64,
    /// Recipients delivered.
    pub delivered: u64,
    /// Recipients hard bounced or expired.
    pub bounced: u64,
    /// Journal copies delivered to the Threat Defense intake.
    pub journaled: u64,
    /// Journal copies that failed or expired.
    pub journal_failed: u64,
    /// Recipients waiting for delivery.
    pub queued: u64,
    /// Journal copies waiting in the.tdc.queue.
    pub journal_queued: u64,
    /// Recipients held in the quarantine.
    pub quarantined: u64,
    /// Messages (MIDs) anti-spam found positive or suspect.
    pub spam: u64,
    /// Messages (MIDs) anti-virus found infected.
    pub virus: u64,
}

/// Activity in one time slot of the System Status charts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Unix seconds at the start of the slot.
    pub start: i64,
    pub received: u64,
    pub delivered: u64,
    pub journaled: u64,
    pub bounced: u64,
    /// Messages received in the slot that were spam (positive or suspect).
    pub spam: u64,
    /// Messages received in the slot that carried a virus.
    pub virus: u64,
}

impl Store {
    /// The counters of *System Status*.
    pub async fn totals(&self) -> Result<Totals, StoreError> {
        // One pass over the messages for all three counts.
        let (received, spam, virus): (i64, Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), SUM(spam IN ('positive', 'suspect')), SUM(virus = 'positive') \
             FROM messages",
        )
        .fetch_one(self.pool())
        .await?;
        let rows = sqlx::query("SELECT kind, state, COUNT(*) AS n FROM queue GROUP BY kind, state")
            .fetch_all(self.pool())
            .await?;
        let mut t = Totals {
            received: received as u64,
            spam: spam.unwrap_or(0) as u64,
            virus: virus.unwrap_or(0) as u64,
            ..Totals::default()
        };
        for r in rows {
            let kind: String = r.try_get("kind")?;
            let state: String = r.try_get("state")?;
            let n = r.try_get::<i64, _>("n")? as u64;
            let slot = match (kind.as_str(), state.as_str()) {
                ("deliver", "delivered") => &mut t.delivered,
                ("deliver", "bounced" | "expired") => &mut t.bounced,
                ("deliver", "queued") => &mut t.queued,
                ("deliver", "quarantined") => &mut t.quarantined,
                ("journal", "delivered") => &mut t.journaled,
                ("journal", "bounced" | "expired" | "dropped") => &mut t.journal_failed,
                ("journal", "queued") => &mut t.journal_queued,
                _ => continue,
            };
            *slot += n;
        }
        Ok(t)
    }

    /// Activity per slot of `width` seconds over the `n` slots ending now, oldest first.
    pub async fn activity(&self, width: i64, n: usize) -> Result<Vec<Bucket>, StoreError> {
        let width = width.max(1);
        let now = unix_now();
        let end = (now / width + 1) * width;
        let start = end - width * n as i64;
        let mut buckets: Vec<Bucket> = (0..n)
            .map(|i| Bucket {
                start: start + width * i as i64,
                ..Bucket::default()
            })
            .collect();
        let received = sqlx::query(
            "SELECT (received_at - ?1) / ?2 AS slot, COUNT(*) AS n, \
             SUM(spam IN ('positive', 'suspect')) AS spam, SUM(virus = 'positive') AS virus \
             FROM messages WHERE received_at >= ?1 GROUP BY slot",
        )
        .bind(start)
        .bind(width)
        .fetch_all(self.pool())
        .await?;
        for r in received {
            let slot: i64 = r.try_get("slot")?;
            if let Some(b) = usize::try_from(slot).ok().and_then(|s| buckets.get_mut(s)) {
                b.received = r.try_get::<i64, _>("n")? as u64;
                b.spam = r.try_get::<Option<i64>, _>("spam")?.unwrap_or(0) as u64;
                b.virus = r.try_get::<Option<i64>, _>("virus")?.unwrap_or(0) as u64;
            }
        }
        let done = sqlx::query(
            "SELECT (done_at - ?1) / ?2 AS slot, kind, state, COUNT(*) AS n FROM queue \
             WHERE done_at >= ?1 GROUP BY slot, kind, state",
        )
        .bind(start)
        .bind(width)
        .fetch_all(self.pool())
        .await?;
        for r in done {
            let slot: i64 = r.try_get("slot")?;
            let Some(b) = usize::try_from(slot).ok().and_then(|s| buckets.get_mut(s)) else {
                continue;
            };
            let kind: String = r.try_get("kind")?;
            let state: String = r.try_get("state")?;
            let n = r.try_get::<i64, _>("n")? as u64;
            match (kind.as_str(), state.as_str()) {
                ("deliver", "delivered") => b.delivered += n,
                ("deliver", "bounced" | "expired") => b.bounced += n,
                ("journal", "delivered") => b.journaled += n,
                _ => {}
            }
        }
        Ok(buckets)
    }

    /// Records a fact about the running appliance (`started_at`, `version`).
    pub async fn set_meta(&self, name: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO meta (name, value) VALUES (?1, ?2) \
             ON CONFLICT(name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(value)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A fact recorded with [`Store::set_meta`].
    pub async fn meta(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE name = ?1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?)
    }

    /// *Retry Delivery*: makes every queued row of `host` (a destination domain or
    /// `the.tdc.queue`; all hosts when `None`) due now, clears its down mark, and wakes the
    /// scheduler. Returns how many rows were rescheduled.
    pub async fn deliver_now(&self, host: Option<&str>) -> Result<u64, StoreError> {
        let now = unix_now();
        let mut tx = self.pool().begin().await?;
        let n = sqlx::query(
            "UPDATE queue SET next_attempt_at = ?1 \
             WHERE state = 'queued' AND next_attempt_at > ?1 AND (?2 IS NULL OR queue_name = ?2)",
        )
        .bind(now)
        .bind(host)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("UPDATE host_counters SET down = 0 WHERE ?1 IS NULL OR host = ?1")
            .bind(host)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.queued.notify_one();
        Ok(n)
    }
}
