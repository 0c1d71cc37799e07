//! The delivery queue: claiming due rows with a lease, recording attempt outcomes, and the
//! per-host counters behind `tophosts`.
//!
//! Claiming moves `next_attempt_at` (and `lease_until`) forward *before* the attempt, so a row
//! whose attempt never reports back — the process died — comes due again by itself. At start-up
//! [`Store::release_leases`] makes such rows due at once.

use sqlx::{Connection, Row};

use rampart_tdc::LedgerState;

use crate::messages::NewMessage;
use crate::{Mid, Store, StoreError, unix_now, unix_now_ms};

/// A queue row claimed for an attempt.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub mid: Mid,
    pub rcpt_idx: u32,
    pub recipient: String,
    pub queue_name: String,
    pub kind: crate::QueueKind,
    /// Attempts made before this one.
    pub attempts: u32,
    /// Unix seconds when the row was queued.
    pub created_at: i64,
}

/// How one attempt for one row ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Try again at this unix time.
    Retry {
        next_attempt_at: i64,
    },
    /// Permanently failed.
    Bounced,
    /// Gave up: too old or too many attempts.
    Expired,
}

#[derive(Debug, Clone)]
pub struct RowOutcome {
    pub id: i64,
    pub outcome: Outcome,
    /// The reply or error text that explains the outcome.
    pub reply: String,
    /// The TLS protocol of the session that delivered the row, if it used TLS.
    pub tls: Option<String>,
}

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
    /// Makes every row that was claimed by a previous process due now, and zeroes the
    /// connection counts it left behind. Call once at start-up, before delivering.
    pub async fn release_leases(&self) -> Result<u64, StoreError> {
        let now = unix_now();
        let released = sqlx::query(
            "UPDATE queue SET next_attempt_at = ?1, lease_until = 0 WHERE state = 'queued' AND lease_until > 0",
        )
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected();
        sqlx::query("UPDATE host_counters SET connections_out = 0")
            .execute(self.pool())
            .await?;
        Ok(released)
    }

    /// Claims up to `limit` due rows, leasing them for `lease_secs`. The writer task commits the
    /// lease (with whatever else it is writing) before the rows are handed out.
    pub async fn claim_due(&self, lease_secs: i64, limit: u32) -> Result<Vec<Claimed>, StoreError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.writer
            .send(crate::writer::Job::Claim {
                lease_secs,
                limit,
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// When the next not-yet-due row comes due (unix seconds), if any row is waiting.
    pub async fn next_due_at(&self) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM queue WHERE state = 'queued'")
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// Records the outcome of an attempt in one transaction: row states, tracking events, host
    /// counters and, for a bounce, the DSN message with its queue row. Returns the MIDs whose
    /// rows are now all final (delivered, bounced, expired or dropped). The writer task commits
    /// it together with whatever else is being written at the same moment.
    pub async fn record_attempt(
        &self,
        host: &str,
        outcomes: &[RowOutcome],
        delta: &HostDelta,
        tracking: &[(Mid, String)],
        dsn: Option<&NewMessage>,
    ) -> Result<Vec<Mid>, StoreError> {
        let attempt = Box::new(Attempt {
            host: host.to_owned(),
            outcomes: outcomes.to_vec(),
            delta: delta.clone(),
            tracking: tracking.to_vec(),
            dsn: dsn.cloned(),
        });
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.writer
            .send(crate::writer::Job::Attempt { attempt, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Gives back the lease of claimed rows the scheduler could not take because their previous
    /// attempt was still being answered: they are due again at once (not after the lease).
    /// Applied with the writer's next commit; the caller does not wait for it.
    pub async fn unlease(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        self.writer
            .send(crate::writer::Job::Unlease(ids))
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// Adjusts the open-connection count of a host (+1 on connect, -1 on close). Applied with
    /// the writer's next commit; the caller does not wait for it.
    pub async fn host_connection(&self, host: &str, delta: i64) -> Result<(), StoreError> {
        self.host_change(HostChange {
            host: host.to_owned(),
            connections: delta,
            down: None,
        })
        .await
    }

    /// Marks a host down (its last connection attempt failed) or up; like
    /// [`Store::host_connection`], applied with the writer's next commit.
    pub async fn host_down(&self, host: &str, down: bool) -> Result<(), StoreError> {
        self.host_change(HostChange {
            host: host.to_owned(),
            connections: 0,
            down: Some(down),
        })
        .await
    }

    async fn host_change(&self, change: HostChange) -> Result<(), StoreError> {
        self.writer
            .send(crate::writer::Job::Host(change))
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// The `tophosts` table: every host with counters or queued recipients.
    pub async fn tophosts(&self) -> Result<Vec<HostRow>, StoreError> {
        let rows = sqlx::query(
            "WITH active AS (SELECT queue_name AS host, COUNT(*) AS n FROM queue WHERE state = 'queued' GROUP BY queue_name), \
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
        crate::messages::insert_tracking(&mut tx, &events, unix_now_ms()).await?;
        tx.commit().await?;
        if !mids.is_empty() {
            self.queued.notify_one();
        }
        Ok(mids)
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::temp_store;
    use crate::{NewRecipient, QueueKind};

    async fn queue_one(store: &Store, n_rcpts: u32) -> Mid {
        let mid = store.next_mid().await.unwrap();
        let m = NewMessage {
            mid,
            icid: 1,
            sender: "a@example.org".into(),
            remote_ip: "127.0.0.1".into(),
            helo: "h".into(),
            sender_group: "ALL".into(),
            relayed: false,
            policy: "DEFAULT".into(),
            verdict: "deliver".into(),
            findings: String::new(),
            spam: None,
            virus: None,
            tls: None,
            message_id: None,
            subject: None,
            body: b"x\r\n".to_vec(),
            recipients: (0..n_rcpts)
                .map(|i| NewRecipient {
                    rcpt_idx: i,
                    recipient: format!("u{i}@example.com"),
                    queue_name: "example.com".into(),
                    kind: QueueKind::Deliver,
                    state: crate::RowState::Queued,
                })
                .collect(),
            tracking: vec![],
        };
        store.accept(m).await.unwrap();
        mid
    }

    /// Retention: only finished messages lose their body, then their record; a message with a
    /// recipient queued or in quarantine keeps both; a pruned body cannot be replayed.
    #[tokio::test]
    async fn retention_prunes_only_finished_messages() {
        let (_dir, store) = temp_store().await;
        let done = queue_one(&store, 1).await;
        let waiting = queue_one(&store, 1).await;
        let held = queue_one(&store, 1).await;
        let failed_copy = queue_one(&store, 1).await;
        let set = |mid: Mid, state: &'static str, kind: &'static str| {
            let store = store.clone();
            async move {
                sqlx::query("UPDATE queue SET state = ?2, kind = ?3, done_at = 1 WHERE mid = ?1")
                    .bind(mid.0 as i64)
                    .bind(state)
                    .bind(kind)
                    .execute(store.pool())
                    .await
                    .unwrap();
            }
        };
        set(done, "delivered", "deliver").await;
        set(held, "quarantined", "deliver").await;
        set(failed_copy, "expired", "journal").await;
        sqlx::query("INSERT INTO tracking (mid, at, text) VALUES (?1, 0, 'delivered')")
            .bind(done.0 as i64)
            .execute(store.pool())
            .await
            .unwrap();
        assert_eq!(store.tracking(done).await.unwrap().len(), 1);
        assert_eq!(store.replayable(0).await.unwrap(), 1);
        let body = |mid: Mid| {
            let store = store.clone();
            async move {
                sqlx::query_scalar::<_, Vec<u8>>("SELECT body FROM messages WHERE mid = ?1")
                    .bind(mid.0 as i64)
                    .fetch_optional(store.pool())
                    .await
                    .unwrap()
            }
        };

        // Nothing is old enough yet.
        let now = unix_now();
        assert_eq!(
            store.prune(now - 3600, now - 86_400).await.unwrap(),
            Pruned::default()
        );
        // Everything received until now is old enough for its body to go.
        let p = store.prune(now + 1, now - 86_400).await.unwrap();
        assert_eq!(
            p,
            Pruned {
                bodies: 2,
                records: 0
            }
        );
        assert_eq!(body(done).await, Some(vec![]));
        assert_eq!(body(failed_copy).await, Some(vec![]));
        assert_eq!(body(waiting).await, Some(b"x\r\n".to_vec()));
        assert_eq!(body(held).await, Some(b"x\r\n".to_vec()));
        assert_eq!(store.replayable(0).await.unwrap(), 0, "its body is gone");
        assert!(store.replay_journal(0).await.unwrap().is_empty());
        // Then the records.
        let p = store.prune(now + 1, now + 1).await.unwrap();
        assert_eq!(
            p,
            Pruned {
                bodies: 0,
                records: 2
            }
        );
        assert_eq!(body(done).await, None);
        assert!(store.tracking(done).await.unwrap().is_empty());
        assert_eq!(body(waiting).await, Some(b"x\r\n".to_vec()));
        assert_eq!(body(held).await, Some(b"x\r\n".to_vec()));
        assert_eq!(store.queued_count().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn claim_lease_release_and_record() {
        let (_dir, store) = temp_store().await;
        let mid = queue_one(&store, 2).await;
        let claimed = store.claim_due(600, 100).await.unwrap();
        assert_eq!(claimed.len(), 2);
        assert!(
            store.claim_due(600, 100).await.unwrap().is_empty(),
            "leased rows are not claimed twice"
        );
        // A crash: the lease is given back at start-up.
        assert_eq!(store.release_leases().await.unwrap(), 2);
        let claimed = store.claim_due(600, 100).await.unwrap();
        assert_eq!(claimed.len(), 2);
        let outcomes = vec![
            RowOutcome {
                id: claimed[0].id,
                outcome: Outcome::Delivered,
                reply: "250 ok".into(),
                tls: None,
            },
            RowOutcome {
                id: claimed[1].id,
                outcome: Outcome::Retry {
                    next_attempt_at: unix_now() + 60,
                },
                reply: "451 later".into(),
                tls: None,
            },
        ];
        let delta = HostDelta {
            delivered: 1,
            soft_bounced: 1,
            hard_bounced: 0,
        };
        let finished = store
            .record_attempt(
                "example.com",
                &outcomes,
                &delta,
                &[(mid, "done".into())],
                None,
            )
            .await
            .unwrap();
        assert!(finished.is_empty(), "one recipient still queued");
        let hosts = store.tophosts().await.unwrap();
        assert_eq!(
            hosts,
            vec![HostRow {
                host: "example.com".into(),
                active_recipients: 1,
                connections_out: 0,
                delivered: 1,
                soft_bounced: 1,
                hard_bounced: 0,
                down: false
            }]
        );
        let outcomes = vec![RowOutcome {
            id: claimed[1].id,
            outcome: Outcome::Bounced,
            reply: "550 no".into(),
            tls: None,
        }];
        let delta = HostDelta {
            hard_bounced: 1,
            ..Default::default()
        };
        let finished = store
            .record_attempt("example.com", &outcomes, &delta, &[], None)
            .await
            .unwrap();
        assert_eq!(finished, vec![mid]);
        let rows = store.queue_rows(mid).await.unwrap();
        assert_eq!(
            rows.iter()
                .map(|r| (r.state.as_str(), r.attempts))
                .collect::<Vec<_>>(),
            [("delivered", 1), ("bounced", 2)]
        );
    }

    /// A claim committed together with an outcome that makes its row due again does not hand
    /// the row out while its worker is still being answered; a row given back is due at once.
    #[tokio::test]
    async fn a_claim_in_the_batch_of_an_outcome_does_not_take_its_row() {
        let (_dir, store) = temp_store().await;
        queue_one(&store, 1).await;
        let row = store.claim_due(600, 100).await.unwrap().remove(0);
        let retry = RowOutcome {
            id: row.id,
            outcome: Outcome::Retry {
                next_attempt_at: unix_now() - 1,
            },
            reply: "451 later".into(),
            tls: None,
        };
        let delta = HostDelta::default();
        let outcomes = [retry];
        // Sent in this order before either is awaited: one batch, the outcome first.
        let (finished, claimed) = tokio::join!(
            store.record_attempt("example.com", &outcomes, &delta, &[], None),
            store.claim_due(600, 100)
        );
        assert!(finished.unwrap().is_empty());
        assert!(
            claimed.unwrap().is_empty(),
            "claimed before the outcome was applied"
        );
        // A later claim takes it; given back, it is due again at once.
        let again = store.claim_due(600, 100).await.unwrap();
        assert_eq!(again.iter().map(|r| r.id).collect::<Vec<_>>(), [row.id]);
        assert!(store.claim_due(600, 100).await.unwrap().is_empty());
        store.unlease(vec![row.id]).await.unwrap();
        let after = store.claim_due(600, 100).await.unwrap();
        assert_eq!(after.iter().map(|r| r.id).collect::<Vec<_>>(), [row.id]);
    }

    /// Outcomes committed in one group commit: each row gets its own state and reply, the
    /// counters add up, and a MID finished by two attempts of the batch is reported once.
    #[tokio::test]
    async fn attempts_committed_together_finish_each_message_once() {
        let (_dir, store) = temp_store().await;
        let mids = [queue_one(&store, 2).await, queue_one(&store, 1).await];
        let claimed = store.claim_due(600, 100).await.unwrap();
        assert_eq!(claimed.len(), 3);
        // Queue every attempt before awaiting any, so the writer takes them in one batch.
        let attempt = |i: usize| {
            let row = &claimed[i];
            let store = store.clone();
            let outcome = RowOutcome {
                id: row.id,
                outcome: if i == 2 {
                    Outcome::Retry {
                        next_attempt_at: unix_now() + 60,
                    }
                } else {
                    Outcome::Delivered
                },
                reply: format!("250 row {i}"),
                tls: None,
            };
            let delta = HostDelta {
                delivered: u64::from(i != 2),
                soft_bounced: u64::from(i == 2),
                hard_bounced: 0,
            };
            let tracking = vec![(row.mid, format!("event {i}"))];
            async move {
                store
                    .record_attempt("example.com", &[outcome], &delta, &tracking, None)
                    .await
                    .unwrap()
            }
        };
        let finished = tokio::join!(attempt(0), attempt(1), attempt(2));
        // The first message's two rows were delivered by two attempts: finished once, by the
        // later one; the second message is still queued.
        assert_eq!(finished, (vec![], vec![mids[0]], vec![]));
        let rows: Vec<(i64, String, String, i64)> =
            sqlx::query_as("SELECT mid, state, last_reply, attempts FROM queue ORDER BY id")
                .fetch_all(store.pool())
                .await
                .unwrap();
        let m = |mid: Mid| mid.0 as i64;
        assert_eq!(
            rows,
            [
                (m(mids[0]), "delivered".into(), "250 row 0".into(), 1),
                (m(mids[0]), "delivered".into(), "250 row 1".into(), 1),
                (m(mids[1]), "queued".into(), "250 row 2".into(), 1),
            ]
        );
        assert_eq!(store.tracking(mids[0]).await.unwrap().len(), 2);
        // Connection counts and the down flag go through the writer without a reply; the next
        // awaited write is committed after them.
        store.host_connection("example.com", 1).await.unwrap();
        store.host_connection("example.com", 1).await.unwrap();
        store.host_connection("example.com", -1).await.unwrap();
        store.host_down("example.com", true).await.unwrap();
        store.host_connection("other.example", -1).await.unwrap();
        store.claim_due(600, 100).await.unwrap();
        let hosts = store.tophosts().await.unwrap();
        let host = hosts.iter().find(|h| h.host == "example.com").unwrap();
        assert_eq!(
            (
                host.connections_out,
                host.delivered,
                host.soft_bounced,
                host.down
            ),
            (1, 2, 1, true)
        );
        let other = hosts.iter().find(|h| h.host == "other.example");
        assert!(other.is_none_or(|h| h.connections_out == 0));
    }
}

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
fn ledger_state(db_state: &str, replayed: bool) -> Option<LedgerState> {
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
    /// Journal copies queued since `since` (unix seconds), counted by ledger state.
    pub async fn ledger_counts(&self, since: i64) -> Result<LedgerCounts, StoreError> {
        let rows = sqlx::query(
            "SELECT state, replayed_at IS NOT NULL AS replayed, COUNT(*) AS n FROM queue \
             WHERE kind = 'journal' AND created_at >= ?1 GROUP BY state, replayed",
        )
        .bind(since)
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

/// The outcome of one attempt, as the writer task applies it.
#[derive(Debug)]
pub(crate) struct Attempt {
    pub(crate) host: String,
    pub(crate) outcomes: Vec<RowOutcome>,
    pub(crate) delta: HostDelta,
    pub(crate) tracking: Vec<(Mid, String)>,
    pub(crate) dsn: Option<NewMessage>,
}

/// A change to one host's counters that nobody waits for.
#[derive(Debug)]
pub(crate) struct HostChange {
    pub(crate) host: String,
    pub(crate) connections: i64,
    pub(crate) down: Option<bool>,
}

/// Rows per multi-row statement (SQLite allows 32,766 bound parameters in one statement).
const ROWS_PER_STATEMENT: usize = 500;

/// Makes leased rows due now (see [`Store::unlease`]); rows that were finished meanwhile keep
/// their state.
pub(crate) async fn unlease(
    tx: &mut sqlx::SqliteConnection,
    ids: &[i64],
    now: i64,
) -> Result<(), StoreError> {
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let list: Vec<String> = (0..chunk.len()).map(|i| format!("?{}", i + 2)).collect();
        let sql = format!(
            "UPDATE queue SET next_attempt_at = ?1, lease_until = 0 WHERE state = 'queued' AND id IN ({})",
            list.join(", ")
        );
        // Only generated placeholders are formatted into the SQL; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
        for id in chunk {
            q = q.bind(id);
        }
        q.execute(&mut *tx).await?;
    }
    Ok(())
}

/// Leases up to `limit` due rows inside an open transaction.
pub(crate) async fn claim(
    tx: &mut sqlx::SqliteConnection,
    now: i64,
    lease_secs: i64,
    limit: u32,
) -> Result<Vec<Claimed>, StoreError> {
    let rows = sqlx::query(
        "UPDATE queue SET next_attempt_at = ?1 + ?2, lease_until = ?1 + ?2 \
         WHERE id IN (SELECT id FROM queue WHERE state = 'queued' AND next_attempt_at <= ?1 \
                      ORDER BY next_attempt_at, id LIMIT ?3) \
         RETURNING id, mid, rcpt_idx, recipient, queue_name, kind, attempts, created_at",
    )
    .bind(now)
    .bind(lease_secs)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    let mut out = rows
        .into_iter()
        .map(|r| {
            Ok(Claimed {
                id: r.try_get("id")?,
                mid: Mid(r.try_get::<i64, _>("mid")? as u64),
                rcpt_idx: r.try_get::<i64, _>("rcpt_idx")? as u32,
                recipient: r.try_get("recipient")?,
                queue_name: r.try_get("queue_name")?,
                kind: crate::QueueKind::from_row(&r)?,
                attempts: r.try_get::<i64, _>("attempts")? as u32,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    out.sort_by_key(|c| (c.mid, c.rcpt_idx));
    Ok(out)
}

/// Applies the outcomes of a batch of attempts inside an open transaction, with one statement
/// per kind of change for the whole batch; returns, for each attempt, the MIDs it finished (a
/// MID whose rows became final in several attempts of the batch goes to the last of them, as if
/// they had been committed one after another).
pub(crate) async fn apply_attempts(
    tx: &mut sqlx::SqliteConnection,
    attempts: &[&Attempt],
    now: i64,
) -> Result<Vec<Vec<Mid>>, StoreError> {
    if attempts.is_empty() {
        return Ok(Vec::new());
    }
    let now_ms = unix_now_ms();
    let outcomes: Vec<(usize, &RowOutcome)> = attempts
        .iter()
        .enumerate()
        .flat_map(|(i, a)| a.outcomes.iter().map(move |o| (i, o)))
        .collect();
    for chunk in outcomes.chunks(ROWS_PER_STATEMENT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let b = i * 6;
                format!(
                    "(?{}, ?{}, ?{}, ?{}, ?{}, ?{})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6
                )
            })
            .collect();
        // VALUES columns are column1…column6: id, state, reply, next attempt, done at, TLS.
        let sql = format!(
            "UPDATE queue SET state = v.column2, attempts = attempts + 1, last_reply = v.column3, \
             lease_until = 0, next_attempt_at = COALESCE(v.column4, queue.next_attempt_at), done_at = v.column5, \
             tls = v.column6 FROM (VALUES {}) AS v WHERE queue.id = v.column1",
            values.join(", ")
        );
        // Only generated placeholders are formatted into the SQL; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (_, o) in chunk {
            let (state, next) = match o.outcome {
                Outcome::Delivered => ("delivered", None),
                Outcome::Retry { next_attempt_at } => ("queued", Some(next_attempt_at)),
                Outcome::Bounced => ("bounced", None),
                Outcome::Expired => ("expired", None),
            };
            let done_at = (state != "queued").then_some(now);
            q = q
                .bind(o.id)
                .bind(state)
                .bind(&o.reply)
                .bind(next)
                .bind(done_at)
                .bind(o.tls.as_deref());
        }
        q.execute(&mut *tx).await?;
    }
    let events: Vec<(Mid, &str)> = attempts
        .iter()
        .flat_map(|a| a.tracking.iter().map(|(m, t)| (*m, t.as_str())))
        .collect();
    crate::messages::insert_tracking(&mut *tx, &events, now_ms).await?;
    // One counter update per host, however many attempts the batch holds for it.
    let mut hosts: Vec<(&str, HostDelta)> = Vec::new();
    for a in attempts {
        if !hosts.iter().any(|(h, _)| *h == a.host) {
            hosts.push((&a.host, HostDelta::default()));
        }
        if let Some((_, d)) = hosts.iter_mut().find(|(h, _)| *h == a.host) {
            d.delivered += a.delta.delivered;
            d.soft_bounced += a.delta.soft_bounced;
            d.hard_bounced += a.delta.hard_bounced;
        }
    }
    for (host, delta) in hosts {
        sqlx::query(
            "INSERT INTO host_counters (host, delivered, soft_bounced, hard_bounced, last_attempt_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(host) DO UPDATE SET \
             delivered = delivered + excluded.delivered, soft_bounced = soft_bounced + excluded.soft_bounced, \
             hard_bounced = hard_bounced + excluded.hard_bounced, last_attempt_at = excluded.last_attempt_at",
        )
        .bind(host)
        .bind(delta.delivered as i64)
        .bind(delta.soft_bounced as i64)
        .bind(delta.hard_bounced as i64)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    // The MIDs of the rows that became final and now have no queued row left, in one query per
    // few hundred rows.
    let done: Vec<(usize, i64)> = outcomes
        .iter()
        .filter(|(_, o)| !matches!(o.outcome, Outcome::Retry { .. }))
        .map(|(i, o)| (*i, o.id))
        .collect();
    let mut finished: Vec<Vec<Mid>> = vec![Vec::new(); attempts.len()];
    let mut last_attempt: std::collections::HashMap<i64, usize> = Default::default();
    for chunk in done.chunks(ROWS_PER_STATEMENT) {
        let list: Vec<String> = (1..=chunk.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "SELECT q.id, q.mid FROM queue q WHERE q.id IN ({}) \
             AND NOT EXISTS (SELECT 1 FROM queue o WHERE o.mid = q.mid AND o.state = 'queued')",
            list.join(", ")
        );
        // Only generated placeholders are formatted into the SQL; every value is bound.
        let mut q = sqlx::query_as::<_, (i64, i64)>(sqlx::AssertSqlSafe(sql));
        for (_, id) in chunk {
            q = q.bind(id);
        }
        let attempt_of: std::collections::HashMap<i64, usize> =
            chunk.iter().map(|(i, id)| (*id, *i)).collect();
        for (id, mid) in q.fetch_all(&mut *tx).await? {
            if let Some(&i) = attempt_of.get(&id) {
                let last = last_attempt.entry(mid).or_insert(i);
                *last = (*last).max(i);
            }
        }
    }
    let mut by_attempt: Vec<(usize, i64)> = last_attempt.into_iter().map(|(m, i)| (i, m)).collect();
    by_attempt.sort_unstable();
    for (i, mid) in by_attempt {
        if let Some(f) = finished.get_mut(i) {
            f.push(Mid(mid as u64));
        }
    }
    Ok(finished)
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
                    mid,
                    icid: 1,
                    sender: "a@example.org".into(),
                    remote_ip: "127.0.0.1".into(),
                    helo: "h".into(),
                    sender_group: "LOOPBACK".into(),
                    relayed: false,
                    policy: "DEFAULT".into(),
                    verdict: "deliver".into(),
                    findings: String::new(),
                    spam: None,
                    virus: None,
                    tls: None,
                    message_id: None,
                    subject: None,
                    body: b"\r\n".to_vec(),
                    recipients: vec![NewRecipient {
                        rcpt_idx: 0,
                        recipient: "j@intake.test".into(),
                        queue_name: "the.tdc.queue".into(),
                        kind: QueueKind::Journal,
                        state,
                    }],
                    tracking: vec![],
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
