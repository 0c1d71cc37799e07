//! The figures of *System Status* and its activity chart, appliance metadata, and *Retry
//! Delivery* for a host's queue.

use sqlx::Row;

use crate::{Store, StoreError, unix_now};

/// Counters for *System Status*, since the database was created.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
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
        // Kept by triggers (see the queue_counts migration): no count walks the queue or the
        // messages, however many there are.
        let (received, spam, virus): (i64, i64, i64) =
            sqlx::query_as("SELECT received, spam, virus FROM message_counts WHERE id = 1")
                .fetch_optional(self.pool())
                .await?
                .unwrap_or_default();
        let rows =
            sqlx::query("SELECT kind, state, SUM(n) AS n FROM queue_counts GROUP BY kind, state")
                .fetch_all(self.pool())
                .await?;
        let mut t = Totals {
            received: received as u64,
            spam: spam as u64,
            virus: virus as u64,
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
        // Per-minute counters (see the queue_counts migration); a slot that is not whole
        // minutes takes the minutes that start in it.
        let rows = sqlx::query(
            "SELECT (minute * 60 - ?1) / ?2 AS slot, kind, state, SUM(n) AS n FROM activity_minutes \
             WHERE minute >= ?3 GROUP BY slot, kind, state",
        )
        .bind(start)
        .bind(width)
        .bind(start.div_euclid(60))
        .fetch_all(self.pool())
        .await?;
        for r in rows {
            let slot: i64 = r.try_get("slot")?;
            let Some(b) = usize::try_from(slot).ok().and_then(|s| buckets.get_mut(s)) else {
                continue;
            };
            let kind: String = r.try_get("kind")?;
            let state: String = r.try_get("state")?;
            let n = r.try_get::<i64, _>("n")? as u64;
            match (kind.as_str(), state.as_str()) {
                ("message", "received") => b.received += n,
                ("message", "spam") => b.spam += n,
                ("message", "virus") => b.virus += n,
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
             WHERE state = 'queued' AND next_attempt_at > ?1 AND (?2 IS NULL OR queue_name = ?2) \
             AND queue_name NOT IN (SELECT host FROM held_hosts)",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{new_message, temp_store};
    use crate::{HostDelta, NewRecipient, Outcome, QueueKind, RowOutcome, RowState};

    /// The counters the triggers keep, against counting the rows themselves.
    async fn assert_counters_match_the_rows(store: &Store, when: &str) {
        let kept: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT queue_name, kind, state, n FROM queue_counts WHERE n != 0 \
             ORDER BY queue_name, kind, state",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        let counted: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT queue_name, kind, state, COUNT(*) FROM queue \
             GROUP BY queue_name, kind, state ORDER BY queue_name, kind, state",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert_eq!(kept, counted, "queue counters {when}");
        let kept: (i64, i64, i64) =
            sqlx::query_as("SELECT received, spam, virus FROM message_counts")
                .fetch_one(store.pool())
                .await
                .unwrap();
        let counted: (i64, i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(spam IN ('positive', 'suspect')), 0), \
             COALESCE(SUM(virus = 'positive'), 0) FROM messages",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(kept, counted, "message counters {when}");
        let kept: Vec<(i64, String, String, i64)> = sqlx::query_as(
            "SELECT minute, kind, state, n FROM activity_minutes WHERE n != 0 ORDER BY 1, 2, 3",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        let counted: Vec<(i64, String, String, i64)> = sqlx::query_as(
            "SELECT minute, kind, state, SUM(n) FROM ( \
               SELECT received_at / 60 AS minute, 'message' AS kind, 'received' AS state, 1 AS n FROM messages \
               UNION ALL SELECT received_at / 60, 'message', 'spam', 1 FROM messages WHERE spam IN ('positive', 'suspect') \
               UNION ALL SELECT received_at / 60, 'message', 'virus', 1 FROM messages WHERE virus = 'positive' \
               UNION ALL SELECT done_at / 60, kind, state, 1 FROM queue WHERE done_at IS NOT NULL) \
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert_eq!(kept, counted, "activity counters {when}");
        let kept: Vec<(i64, String, i64, i64)> = sqlx::query_as(
            "SELECT minute, state, replayed, n FROM journal_minutes WHERE n != 0 ORDER BY 1, 2, 3",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        let counted: Vec<(i64, String, i64, i64)> = sqlx::query_as(
            "SELECT created_at / 60, state, replayed_at IS NOT NULL, COUNT(*) FROM queue \
             WHERE kind = 'journal' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert_eq!(kept, counted, "journal ledger counters {when}");
    }

    /// System Status and tophosts read counters kept by triggers; they must follow every way a
    /// row is made or changes state: accept (queued, quarantined, journal copies, verdicts),
    /// outcomes (delivered, retry, bounced, expired), quarantine release and delete, replay.
    #[tokio::test]
    async fn trigger_kept_counters_follow_every_change_of_the_rows() {
        let (_dir, store) = temp_store().await;
        assert_counters_match_the_rows(&store, "when empty").await;
        let mut mids = Vec::new();
        for i in 0..4u32 {
            let mid = store.next_mid().await.unwrap();
            let mut m = new_message(mid, 2);
            m.spam = [Some("positive"), Some("suspect"), Some("negative"), None][i as usize];
            m.virus = (i == 1).then_some("positive");
            if i == 3 {
                for r in &mut m.recipients {
                    r.state = RowState::Quarantined;
                }
            }
            m.recipients.push(NewRecipient {
                rcpt_idx: 2,
                recipient: "journal@intake.example".into(),
                queue_name: "the.tdc.queue".into(),
                kind: QueueKind::Journal,
                state: RowState::Queued,
            });
            store.accept(m).await.unwrap();
            mids.push(mid);
        }
        assert_counters_match_the_rows(&store, "after accepting").await;
        let totals = store.totals().await.unwrap();
        assert_eq!(
            (totals.received, totals.spam, totals.virus, totals.queued),
            (4, 2, 1, 6)
        );
        assert_eq!((totals.quarantined, totals.journal_queued), (2, 4));

        let claimed = store.claim_due(600, 100).await.unwrap();
        let outcomes: Vec<RowOutcome> = claimed
            .iter()
            .enumerate()
            .map(|(i, c)| RowOutcome {
                id: c.id,
                outcome: match i % 4 {
                    0 => Outcome::Delivered,
                    1 => Outcome::Retry {
                        next_attempt_at: unix_now() + 60,
                    },
                    2 => Outcome::Bounced,
                    _ => Outcome::Expired,
                },
                reply: "reply".into(),
                tls: None,
            })
            .collect();
        store
            .record_attempt("example.com", &outcomes, &HostDelta::default(), &[], None)
            .await
            .unwrap();
        assert_counters_match_the_rows(&store, "after outcomes").await;
        let hosts = store.tophosts().await.unwrap();
        let active: u64 = hosts.iter().map(|h| h.active_recipients).sum();
        assert_eq!(active, store.queued_count().await.unwrap());

        store.quarantine_release(mids[3], "admin").await.unwrap();
        assert_counters_match_the_rows(&store, "after a quarantine release").await;
        let mid = store.next_mid().await.unwrap();
        let mut m = new_message(mid, 1);
        m.recipients[0].state = RowState::Quarantined;
        store.accept(m).await.unwrap();
        store.quarantine_delete(mid, "admin").await.unwrap();
        assert_counters_match_the_rows(&store, "after a quarantine delete").await;
        store.replay_journal(0).await.unwrap();
        store.deliver_now(None).await.unwrap();
        assert_counters_match_the_rows(&store, "after a replay and deliverynow").await;
        // What the pages read: the chart's slots and the ledger's summary add up to the rows.
        let chart = store.activity(900, 4).await.unwrap();
        let sum = |f: fn(&Bucket) -> u64| chart.iter().map(f).sum::<u64>();
        let totals = store.totals().await.unwrap();
        assert_eq!(
            (sum(|b| b.received), sum(|b| b.spam), sum(|b| b.virus)),
            (5, 2, 1)
        );
        assert_eq!(
            (
                sum(|b| b.delivered),
                sum(|b| b.bounced),
                sum(|b| b.journaled)
            ),
            (totals.delivered, totals.bounced, totals.journaled)
        );
        let ledger = store.ledger_counts(unix_now() - 3600).await.unwrap();
        assert_eq!(
            ledger.delivered + ledger.failed + ledger.expired + ledger.queued + ledger.replayed,
            totals.journaled + totals.journal_failed + totals.journal_queued
        );
    }
}
