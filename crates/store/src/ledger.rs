//! The Threat Defense journal ledger (every journal copy and what became of it, in
//! `rampart_tdc::LedgerState`'s words) and journal replay.

use sqlx::Row;

use rampart_tdc::LedgerState;

use crate::{Mid, Store, StoreError, unix_now, unix_now_ms};

/// One journal copy's fate: the Threat Defense journal ledger.
#[derive(Debug, Clone)]
pub struct LedgerEntry {
    pub mid: Mid,
    pub intake: String,
    pub state: LedgerState,
    pub attempts: u32,
    /// The intake's last reply, or why it failed.
    pub last_reply: Option<String>,
    /// The TLS protocol the copy was delivered over; `None` without TLS or not delivered.
    pub tls: Option<String>,
    pub queued_at: i64,
    pub done_at: Option<i64>,
    pub sender: String,
    pub subject: Option<String>,
    pub message_id: Option<String>,
}

/// Journal copies by ledger state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerCounts {
    pub queued: u64,
    pub delivered: u64,
    pub failed: u64,
    pub expired: u64,
    /// Failed or expired copies that were queued again by a replay.
    pub replayed: u64,
}

/// The ledger's name for a journal row's state: a bounced or dropped copy has `failed`, one
/// that was queued again `replayed`.
pub(crate) fn ledger_state(db_state: &str, replayed: bool) -> Option<LedgerState> {
    Some(match db_state {
        _ if replayed => LedgerState::Replayed,
        "bounced" | "dropped" => LedgerState::Failed,
        "queued" => LedgerState::Queued,
        "delivered" => LedgerState::Delivered,
        "expired" => LedgerState::Expired,
        _ => return None,
    })
}

/// Journal rows a replay may queue again: failed or expired, not replayed yet, queued since
/// `?1`, of a MID whose body is still kept (retention) and with no copy delivered or on its way.
const REPLAYABLE: &str = "q.kind = 'journal' AND q.state IN ('bounced', 'expired', 'dropped') \
     AND q.replayed_at IS NULL AND q.created_at >= ?1 \
     AND EXISTS (SELECT 1 FROM messages k WHERE k.mid = q.mid AND k.body_pruned = 0) \
     AND NOT EXISTS (SELECT 1 FROM queue d WHERE d.mid = q.mid AND d.kind = 'journal' \
                     AND d.state IN ('delivered', 'queued'))";

impl Store {
    /// Journal copies queued since `since` (unix seconds, from the start of its minute),
    /// counted by ledger state; read from per-minute counters, so a day of a busy connector
    /// costs at most 1,440 rows per state.
    pub async fn ledger_counts(&self, since: i64) -> Result<LedgerCounts, StoreError> {
        let rows = sqlx::query(
            "SELECT state, replayed, SUM(n) AS n FROM journal_minutes \
             WHERE minute >= ?1 GROUP BY state, replayed",
        )
        .bind(since.div_euclid(60))
        .fetch_all(self.pool())
        .await?;
        let mut c = LedgerCounts::default();
        for r in rows {
            let state: String = r.try_get("state")?;
            let replayed: bool = r.try_get("replayed")?;
            let n = r.try_get::<i64, _>("n")? as u64;
            match ledger_state(&state, replayed) {
                Some(LedgerState::Queued) => c.queued += n,
                Some(LedgerState::Delivered) => c.delivered += n,
                Some(LedgerState::Expired) => c.expired += n,
                Some(LedgerState::Failed) => c.failed += n,
                Some(LedgerState::Replayed) => c.replayed += n,
                None => {}
            }
        }
        Ok(c)
    }

    /// Journal copies queued since `since` (unix seconds), newest first, optionally of one
    /// state.
    pub async fn ledger(
        &self,
        since: i64,
        state: Option<LedgerState>,
        limit: u32,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT q.mid, q.recipient, q.state, q.replayed_at IS NOT NULL AS replayed, q.attempts, \
             q.last_reply, q.tls, q.created_at, q.done_at, m.sender, m.subject, m.message_id \
             FROM queue q JOIN messages m ON m.mid = q.mid \
             WHERE q.kind = 'journal' AND q.created_at >= ?1 AND (?2 IS NULL \
             OR (?2 = 'replayed' AND q.replayed_at IS NOT NULL) \
             OR (q.replayed_at IS NULL AND (q.state = ?2 \
                 OR (?2 = 'failed' AND q.state IN ('bounced', 'dropped'))))) \
             ORDER BY q.id DESC LIMIT ?3",
        )
        .bind(since)
        .bind(state.map(LedgerState::as_str))
        .bind(limit.max(1))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                let state: String = r.try_get("state")?;
                let replayed: bool = r.try_get("replayed")?;
                Ok(LedgerEntry {
                    mid: Mid(r.try_get::<i64, _>("mid")? as u64),
                    intake: r.try_get("recipient")?,
                    state: ledger_state(&state, replayed).ok_or_else(|| {
                        StoreError::Db(sqlx::Error::ColumnDecode {
                            index: "state".into(),
                            source: format!("no ledger state for a journal row in {state:?}")
                                .into(),
                        })
                    })?,
                    attempts: r.try_get::<i64, _>("attempts")? as u32,
                    last_reply: r.try_get("last_reply")?,
                    tls: r.try_get("tls")?,
                    queued_at: r.try_get("created_at")?,
                    done_at: r.try_get("done_at")?,
                    sender: r.try_get("sender")?,
                    subject: r.try_get("subject")?,
                    message_id: r.try_get("message_id")?,
                })
            })
            .collect()
    }
}

impl Store {
    /// Journal copies queued since `since` (unix seconds) that a replay would send again.
    pub async fn replayable(&self, since: i64) -> Result<u64, StoreError> {
        let sql = format!("SELECT COUNT(DISTINCT q.mid) FROM queue q WHERE {REPLAYABLE}");
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(since)
            .fetch_one(self.pool())
            .await?;
        Ok(n as u64)
    }

    /// Journal replay: every MID whose journal copy failed or expired since `since` gets one new
    /// copy to its intake, queued now (so Cisco's expiry counts from now); the old rows become
    /// `replayed`. Never a MID whose copy was delivered or is still queued. Returns the MIDs.
    pub async fn replay_journal(&self, since: i64) -> Result<Vec<Mid>, StoreError> {
        let now = unix_now();
        let mut tx = self.pool().begin().await?;
        let sql = format!(
            "SELECT q.mid, q.recipient, q.queue_name FROM queue q WHERE {REPLAYABLE} \
             AND q.id = (SELECT MAX(o.id) FROM queue o WHERE o.mid = q.mid AND o.kind = 'journal') \
             ORDER BY q.mid"
        );
        let rows: Vec<(i64, String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(since)
            .fetch_all(&mut *tx)
            .await?;
        let mut mids = Vec::with_capacity(rows.len());
        for (mid, intake, queue_name) in rows {
            sqlx::query(
                "UPDATE queue SET replayed_at = ?2 WHERE mid = ?1 AND kind = 'journal' \
                 AND state IN ('bounced', 'expired', 'dropped') AND replayed_at IS NULL",
            )
            .bind(mid)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO queue (mid, rcpt_idx, recipient, queue_name, kind, state, created_at, \
                 next_attempt_at) SELECT ?1, MAX(rcpt_idx) + 1, ?2, ?3, 'journal', 'queued', ?4, ?4 \
                 FROM queue WHERE mid = ?1",
            )
            .bind(mid)
            .bind(&intake)
            .bind(&queue_name)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            mids.push(Mid(mid as u64));
        }
        let texts: Vec<String> = mids
            .iter()
            .map(|m| {
                format!("Message {m} journal copy queued again for Cisco Secure Email Threat Defense (replay)")
            })
            .collect();
        let events: Vec<(Mid, &str)> = mids
            .iter()
            .zip(&texts)
            .map(|(m, t)| (*m, t.as_str()))
            .collect();
        crate::tracking::insert_tracking(&mut tx, &events, unix_now_ms()).await?;
        tx.commit().await?;
        if !mids.is_empty() {
            self.queued.notify_one();
        }
        Ok(mids)
    }
}

#[cfg(test)]
mod ledger_tests {
    use crate::messages::{NewMessage, NewRecipient, QueueKind, RowState};
    use crate::tests::temp_store;
    use crate::{LedgerCounts, unix_now};

    #[tokio::test]
    async fn ledger_counts_name_states_as_the_ledger_does() {
        let (_dir, store) = temp_store().await;
        for state in [
            RowState::Queued,
            RowState::Queued,
            RowState::Bounced,
            RowState::Dropped,
        ] {
            let mid = store.next_mid().await.unwrap();
            store
                .accept(NewMessage {
                    recipients: vec![NewRecipient {
                        rcpt_idx: 0,
                        recipient: "j@intake.test".into(),
                        queue_name: "the.tdc.queue".into(),
                        kind: QueueKind::Journal,
                        state,
                    }],
                    ..crate::tests::new_message(mid, 0)
                })
                .await
                .unwrap();
        }
        let counts = store.ledger_counts(unix_now() - 60).await.unwrap();
        assert_eq!(
            counts,
            LedgerCounts {
                queued: 2,
                failed: 2,
                ..LedgerCounts::default()
            }
        );
        let listed = store
            .ledger(unix_now() - 60, Some(rampart_tdc::LedgerState::Failed), 10)
            .await
            .unwrap();
        assert_eq!(
            listed.len() as u64,
            counts.failed,
            "the list and the count agree"
        );
        assert_eq!(
            store.ledger_counts(unix_now() + 60).await.unwrap(),
            LedgerCounts::default()
        );
    }
}
