//! Retention: message bodies and records of finished messages are removed after their time
//! (`[retention]`), in small transactions.

use crate::{Mid, Store, StoreError};

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
                "SELECT m.mid, m.body_file = 1 FROM messages m WHERE m.body_pruned IN (0, 1) AND m.received_at < ?1 \
                 AND {FINISHED} ORDER BY m.received_at LIMIT ?2"
            );
            let rows: Vec<(i64, bool)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(records_before)
                .bind(BATCH)
                .fetch_all(self.pool())
                .await?;
            if rows.is_empty() {
                break;
            }
            // Files first: a crash before the DELETE leaves rows whose files are gone, which
            // the next pass deletes again; the other order would leave files nobody refers to.
            let files: Vec<Mid> = rows
                .iter()
                .filter(|(_, in_file)| *in_file)
                .map(|(mid, _)| Mid(*mid as u64))
                .collect();
            self.remove_spool_files(files).await?;
            let list = rows
                .iter()
                .map(|(mid, _)| mid.to_string())
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
            pruned.records += rows.len() as u64;
            if (rows.len() as i64) < BATCH {
                break;
            }
        }
        loop {
            // One statement decides and marks, so a replay cannot slip in between; the files of
            // the bodies marked here go in the next loop.
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
        // Pruned bodies still in the spool (just marked, or left by a crash): remove the files,
        // then clear the mark that they exist.
        loop {
            let mids: Vec<i64> = sqlx::query_scalar(
                "SELECT mid FROM messages WHERE body_file = 1 AND body_pruned = 1 ORDER BY mid LIMIT ?1",
            )
            .bind(BATCH)
            .fetch_all(self.pool())
            .await?;
            if mids.is_empty() {
                break;
            }
            self.remove_spool_files(mids.iter().map(|m| Mid(*m as u64)).collect())
                .await?;
            let list = mids
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",");
            // The MIDs are integers read from the database just now: nothing to bind.
            let sql = format!("UPDATE messages SET body_file = 0 WHERE mid IN ({list})");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(self.pool())
                .await?;
            if (mids.len() as i64) < BATCH {
                break;
            }
        }
        Ok(pruned)
    }
}

impl Store {
    async fn remove_spool_files(&self, mids: Vec<Mid>) -> Result<(), StoreError> {
        if mids.is_empty() {
            return Ok(());
        }
        let files: Vec<crate::spool::SpoolFile> =
            mids.iter().map(|&m| self.spool.file(m)).collect();
        crate::spool::blocking(move || crate::spool::Spool::remove(&files)).await
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
