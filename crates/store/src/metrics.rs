//! What `GET /metrics` reads: counters kept by triggers (`queue_counts`, `policy_counts`) and
//! the per-host counters, for a bounded set of destinations.

use sqlx::Row;

use crate::{Store, StoreError};

/// Messages of one mail policy with one verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyCount {
    pub policy: String,
    /// Outgoing (a RELAY client's mail) or incoming.
    pub outgoing: bool,
    /// `deliver`, `drop`, `bounce` or `quarantine`.
    pub verdict: String,
    pub n: u64,
}

/// One destination's queue rows per state, and its connection counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostMetrics {
    pub host: String,
    /// Queue rows (recipients, or journal copies for `the.tdc.queue`) per state: `queued`,
    /// `delivered`, `bounced`, `expired`, `dropped`, `quarantined`.
    pub states: Vec<(String, u64)>,
    pub connections_out: u64,
    pub soft_bounced: u64,
    pub down: bool,
}

impl Store {
    /// Messages per policy, direction and verdict since the database was created.
    pub async fn policy_counts(&self) -> Result<Vec<PolicyCount>, StoreError> {
        let rows = sqlx::query(
            "SELECT policy, relayed, verdict, n FROM policy_counts ORDER BY relayed, policy, verdict",
        )
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(PolicyCount {
                    policy: r.try_get("policy")?,
                    outgoing: r.try_get::<i64, _>("relayed")? != 0,
                    verdict: r.try_get("verdict")?,
                    n: r.try_get::<i64, _>("n")?.max(0) as u64,
                })
            })
            .collect()
    }

    /// The `limit` destinations with the most queue rows ever (a stable choice: a host does not
    /// come and go with its queue), and up to `limit` more that are marked down; by name.
    pub async fn host_metrics(&self, limit: u32) -> Result<Vec<HostMetrics>, StoreError> {
        let rows = sqlx::query(
            "WITH chosen AS ( \
                 SELECT host FROM (SELECT queue_name AS host FROM queue_counts GROUP BY queue_name \
                                   ORDER BY SUM(n) DESC, queue_name LIMIT ?1) \
                 UNION \
                 SELECT host FROM (SELECT host FROM host_counters WHERE down = 1 ORDER BY host LIMIT ?1)) \
             SELECT chosen.host AS host, q.state AS state, SUM(q.n) AS n, \
                    COALESCE(c.connections_out, 0) AS conns, COALESCE(c.soft_bounced, 0) AS soft, \
                    COALESCE(c.down, 0) AS down \
             FROM chosen LEFT JOIN queue_counts q ON q.queue_name = chosen.host \
             LEFT JOIN host_counters c ON c.host = chosen.host \
             GROUP BY chosen.host, q.state ORDER BY chosen.host, q.state",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut out: Vec<HostMetrics> = Vec::new();
        for r in rows {
            let host: String = r.try_get("host")?;
            if out.last().is_none_or(|h| h.host != host) {
                out.push(HostMetrics {
                    host,
                    states: Vec::new(),
                    connections_out: r.try_get::<i64, _>("conns")?.max(0) as u64,
                    soft_bounced: r.try_get::<i64, _>("soft")?.max(0) as u64,
                    down: r.try_get::<i64, _>("down")? != 0,
                });
            }
            let state: Option<String> = r.try_get("state")?;
            let n: Option<i64> = r.try_get("n")?;
            if let (Some(h), Some(state), Some(n)) = (out.last_mut(), state, n) {
                h.states.push((state, n.max(0) as u64));
            }
        }
        Ok(out)
    }
}
