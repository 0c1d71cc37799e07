//! Retention: message bodies and records of finished messages are removed after their time
//! (`[retention]`), in small transactions.

use crate::{Store, StoreError};

impl Store {
    /// Retention: empties the bodies of finished messages received before `bodies_before`, and
    /// deletes finished messages received before `records_before` with their queue rows and
    /// tracking (unix seconds). A message with a recipient still queued or in quarantine is
    /// never touched. Works in small transactions, so mail is never held up for long.
    pub async fn prune(
        &self,
        bodies_before: i64,
        records_before: i64,
    ) -> Result<Pruned, StoreError> {
        const BATCH: i64 = 500;
        const FINISHED: &str = "NOT EXISTS (SELECT 1 FROM queue q WHERE q.mid = m.mid \
                                AND q.state IN ('queued', 'quarantined'))";
        let mut pruned = Pruned::default();
        loop {
            let sql = format!(
                "SELECT m.mid FROM messages m WHERE m.body_pruned IN (0, 1) AND m.received_at < ?1 \
                 AND {FINISHED} ORDER BY m.received_at LIMIT ?2"
            );
            let mids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(records_before)
                .bind(BATCH)
                .fetch_all(self.pool())
                .await?;
            if mids.is_empty() {
                break;
            }
            let list = mids
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let mut tx = self.pool().begin().await?;
            for table in ["queue", "tracking", "messages"] {
                // The MIDs are integers read from the database just now: nothing to bind.
                let sql = format!("DELETE FROM {table} WHERE mid IN ({list})");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            pruned.records += mids.len() as u64;
            if (mids.len() as i64) < BATCH {
                break;
            }
        }
        loop {
            let sql = format!(
                "UPDATE messages SET body = x'', body_pruned = 1 WHERE mid IN \
                 (SELECT m.mid FROM messages m WHERE m.body_pruned = 0 AND m.received_at < ?1 \
                  AND {FINISHED} ORDER BY m.received_at LIMIT ?2)"
            );
            let n = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(bodies_before)
                .bind(BATCH)
                .execute(self.pool())
                .await?
                .rows_affected();
            pruned.bodies += n;
            if (n as i64) < BATCH {
                break;
            }
        }
        Ok(pruned)
    }
}

/// What one retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Message bodies emptied.
    pub bodies: u64,
    /// Messages deleted with their queue rows and tracking.
    pub records: u64,
}
