//! The per-host counters behind `tophosts`: delivered, soft and hard bounced recipients, open
//! connections and the down flag, changed with each attempt's outcome through the writer.

use sqlx::Row;

use crate::{Store, StoreError};

/// One line of `tophosts`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostRow {
    pub host: String,
    pub active_recipients: u64,
    pub connections_out: u64,
    pub delivered: u64,
    pub soft_bounced: u64,
    pub hard_bounced: u64,
    pub down: bool,
}

/// Counter changes for one host, applied with an outcome.
#[derive(Debug, Clone, Default)]
pub struct HostDelta {
    pub delivered: u64,
    pub soft_bounced: u64,
    pub hard_bounced: u64,
}

impl Store {
    /// The `tophosts` table: every host with counters or queued recipients.
    pub async fn tophosts(&self) -> Result<Vec<HostRow>, StoreError> {
        self.host_rows(None).await
    }

    /// The `tophosts` rows, of every host or of one (its keys only, not the whole table).
    async fn host_rows(&self, only: Option<&str>) -> Result<Vec<HostRow>, StoreError> {
        let rows = sqlx::query(
            "WITH active AS (SELECT queue_name AS host, SUM(n) AS n FROM queue_counts WHERE state = 'queued' \
             AND (?1 IS NULL OR queue_name = ?1) GROUP BY queue_name HAVING SUM(n) > 0), \
             hosts AS (SELECT host FROM host_counters WHERE ?1 IS NULL OR host = ?1 UNION SELECT host FROM active) \
             SELECT hosts.host AS host, COALESCE(active.n, 0) AS active, COALESCE(c.connections_out, 0) AS conns, \
             COALESCE(c.delivered, 0) AS delivered, COALESCE(c.soft_bounced, 0) AS soft, \
             COALESCE(c.hard_bounced, 0) AS hard, COALESCE(c.down, 0) AS down \
             FROM hosts LEFT JOIN active ON active.host = hosts.host LEFT JOIN host_counters c ON c.host = hosts.host \
             ORDER BY active DESC, hosts.host",
        )
        .bind(only)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(HostRow {
                    host: r.try_get("host")?,
                    active_recipients: r.try_get::<i64, _>("active")? as u64,
                    connections_out: r.try_get::<i64, _>("conns")? as u64,
                    delivered: r.try_get::<i64, _>("delivered")? as u64,
                    soft_bounced: r.try_get::<i64, _>("soft")? as u64,
                    hard_bounced: r.try_get::<i64, _>("hard")? as u64,
                    down: r.try_get::<i64, _>("down")? != 0,
                })
            })
            .collect()
    }
}

/// Where the rows of a held destination wait: 9999-12-31, far beyond any retry.
pub(crate) const HELD_UNTIL: i64 = 253_402_300_799;

/// The.tdc.queue's queue name: it cannot be held (its copies expire after 120 seconds).
const TDC_QUEUE: &str = "the.tdc.queue";

/// One destination in detail (*Delivery Status* details, AsyncOS `hoststatus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDetail {
    pub row: HostRow,
    /// Unix seconds of the last attempt, delivery, and error (with its reply).
    pub last_attempt_at: Option<i64>,
    pub last_delivered_at: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    /// When the last deferred recipient is tried again.
    pub next_retry_at: Option<i64>,
    /// Delivery suspended: since when, by whom.
    pub held: Option<(i64, String)>,
}

/// Journal copies for one intake address (the.tdc.queue in detail).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntakeRow {
    pub intake: String,
    pub queued: u64,
    pub delivered: u64,
    /// Refused by the intake (or dropped).
    pub failed: u64,
    pub expired: u64,
    pub last_delivered_at: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    pub next_retry_at: Option<i64>,
}

impl Store {
    /// One destination in detail, or None when it has neither counters nor queued rows.
    pub async fn host_detail(&self, host: &str) -> Result<Option<HostDetail>, StoreError> {
        let Some(row) = self.host_rows(Some(host)).await?.into_iter().next() else {
            return Ok(None);
        };
        let c = sqlx::query(
            "SELECT last_attempt_at, last_delivered_at, last_error, last_error_at, next_retry_at \
             FROM host_counters WHERE host = ?1",
        )
        .bind(host)
        .fetch_optional(self.pool())
        .await?;
        let held = sqlx::query_as::<_, (i64, String)>(
            "SELECT held_at, held_by FROM held_hosts WHERE host = ?1",
        )
        .bind(host)
        .fetch_optional(self.pool())
        .await?;
        let get = |name: &str| -> Result<Option<i64>, StoreError> {
            Ok(match &c {
                Some(c) => c.try_get(name)?,
                None => None,
            })
        };
        Ok(Some(HostDetail {
            last_attempt_at: get("last_attempt_at")?,
            last_delivered_at: get("last_delivered_at")?,
            last_error: match &c {
                Some(c) => c.try_get("last_error")?,
                None => None,
            },
            last_error_at: get("last_error_at")?,
            next_retry_at: get("next_retry_at")?,
            held,
            row,
        }))
    }

    /// The.tdc.queue per intake address, the most recently failing first.
    pub async fn intakes(&self) -> Result<Vec<IntakeRow>, StoreError> {
        let rows = sqlx::query(
            "WITH i AS (SELECT intake FROM intake_counts UNION SELECT intake FROM intake_status) \
             SELECT i.intake, \
               COALESCE((SELECT SUM(n) FROM intake_counts c WHERE c.intake = i.intake AND c.state = 'queued'), 0) AS queued, \
               COALESCE((SELECT SUM(n) FROM intake_counts c WHERE c.intake = i.intake AND c.state = 'delivered'), 0) AS delivered, \
               COALESCE((SELECT SUM(n) FROM intake_counts c WHERE c.intake = i.intake AND c.state IN ('bounced', 'dropped')), 0) AS failed, \
               COALESCE((SELECT SUM(n) FROM intake_counts c WHERE c.intake = i.intake AND c.state = 'expired'), 0) AS expired, \
               s.last_delivered_at, s.last_error, s.last_error_at, s.next_retry_at \
             FROM i LEFT JOIN intake_status s ON s.intake = i.intake \
             ORDER BY COALESCE(s.last_error_at, 0) > COALESCE(s.last_delivered_at, 0) DESC, i.intake",
        )
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(IntakeRow {
                    intake: r.try_get("intake")?,
                    queued: r.try_get::<i64, _>("queued")?.max(0) as u64,
                    delivered: r.try_get::<i64, _>("delivered")?.max(0) as u64,
                    failed: r.try_get::<i64, _>("failed")?.max(0) as u64,
                    expired: r.try_get::<i64, _>("expired")?.max(0) as u64,
                    last_delivered_at: r.try_get("last_delivered_at")?,
                    last_error: r.try_get("last_error")?,
                    last_error_at: r.try_get("last_error_at")?,
                    next_retry_at: r.try_get("next_retry_at")?,
                })
            })
            .collect()
    }

    /// Destinations whose delivery is suspended.
    pub async fn held_hosts(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT host FROM held_hosts ORDER BY host")
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// Suspends delivery to `host` (AsyncOS `suspenddel`): its queued recipients wait, new mail
    /// for it is accepted and waits too. Returns the recipients now waiting. The.tdc.queue
    /// cannot be held: switch the connector off instead.
    pub async fn hold_host(&self, host: &str, by: &str) -> Result<u64, StoreError> {
        if host.eq_ignore_ascii_case(TDC_QUEUE) {
            return Err(StoreError::Conflict(
                "the.tdc.queue cannot be held: journal copies expire after 120 seconds; \
                 disable the Threat Defense Connector instead"
                    .into(),
            ));
        }
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO held_hosts (host, held_at, held_by) VALUES (?1, ?2, ?3) \
             ON CONFLICT (host) DO NOTHING",
        )
        .bind(host)
        .bind(crate::unix_now())
        .bind(by)
        .execute(&mut *tx)
        .await?;
        let n = sqlx::query(
            "UPDATE queue SET next_attempt_at = ?2 WHERE state = 'queued' AND queue_name = ?1 \
             AND lease_until = 0",
        )
        .bind(host)
        .bind(HELD_UNTIL)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    /// Resumes delivery to `host` (AsyncOS `resumedel`): its waiting recipients are due now.
    /// Returns them, or None when the host was not held.
    pub async fn resume_host(&self, host: &str) -> Result<Option<u64>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let was_held = sqlx::query("DELETE FROM held_hosts WHERE host = ?1")
            .bind(host)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if !was_held {
            return Ok(None);
        }
        let n = sqlx::query(
            "UPDATE queue SET next_attempt_at = ?3 WHERE state = 'queued' AND queue_name = ?1 \
             AND next_attempt_at >= ?2",
        )
        .bind(host)
        .bind(HELD_UNTIL)
        .bind(crate::unix_now())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        self.queued.notify_one();
        Ok(Some(n))
    }
}

/// A change to one host's counters that nobody waits for.
#[derive(Debug)]
pub(crate) struct HostChange {
    pub(crate) host: String,
    pub(crate) connections: i64,
    pub(crate) down: Option<bool>,
}

/// Applies connection-count and down-flag changes, one statement per host.
pub(crate) async fn apply_host_changes(
    tx: &mut sqlx::SqliteConnection,
    changes: &[&HostChange],
) -> Result<(), StoreError> {
    let mut hosts: Vec<(&str, i64, Option<bool>)> = Vec::new();
    for c in changes {
        match hosts.iter_mut().find(|(h, _, _)| *h == c.host) {
            Some(h) => {
                h.1 += c.connections;
                h.2 = c.down.or(h.2);
            }
            None => hosts.push((&c.host, c.connections, c.down)),
        }
    }
    for (host, connections, down) in hosts {
        sqlx::query(
            "INSERT INTO host_counters (host, connections_out, down) VALUES (?1, MAX(?2, 0), COALESCE(?3, 0)) \
             ON CONFLICT(host) DO UPDATE SET connections_out = MAX(connections_out + ?2, 0), down = COALESCE(?3, down)",
        )
        .bind(host)
        .bind(connections)
        .bind(down)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
