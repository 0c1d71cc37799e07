//! The per-host counters behind `tophosts`: delivered, soft and hard bounced recipients, open
//! connections and the down flag, changed with each attempt's outcome through the writer.

use sqlx::Row;

use crate::{Store, StoreError};

/// One line of `tophosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
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
        let rows = sqlx::query(
            "WITH active AS (SELECT queue_name AS host, SUM(n) AS n FROM queue_counts WHERE state = 'queued' \
             GROUP BY queue_name HAVING SUM(n) > 0), \
             hosts AS (SELECT host FROM host_counters UNION SELECT host FROM active) \
             SELECT hosts.host AS host, COALESCE(active.n, 0) AS active, COALESCE(c.connections_out, 0) AS conns, \
             COALESCE(c.delivered, 0) AS delivered, COALESCE(c.soft_bounced, 0) AS soft, \
             COALESCE(c.hard_bounced, 0) AS hard, COALESCE(c.down, 0) AS down \
             FROM hosts LEFT JOIN active ON active.host = hosts.host LEFT JOIN host_counters c ON c.host = hosts.host \
             ORDER BY active DESC, hosts.host",
        )
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
