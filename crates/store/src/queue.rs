//! The delivery queue: claiming due rows with a lease and recording attempt outcomes. The
//! counters behind `tophosts` are in `hosts.rs`, the journal ledger in `ledger.rs`, the
//! quarantine in `quarantine.rs`, retention in `retention.rs`.
//!
//! Claiming moves `next_attempt_at` (and `lease_until`) forward *before* the attempt, so a row
//! whose attempt never reports back — the process died — comes due again by itself. At start-up
//! [`Store::release_leases`] makes such rows due at once.

use sqlx::Row;

use crate::hosts::HostDelta;
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

    /// When the next not-yet-due row comes due (unix seconds), if any row is waiting.
    pub async fn next_due_at(&self) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM queue WHERE state = 'queued'")
                .fetch_one(self.pool())
                .await?,
        )
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

/// What a host's attempts in one batch said last.
#[derive(Debug, Default)]
struct HostLast<'a> {
    /// The reply of the last attempt that did not deliver.
    error: Option<&'a str>,
    delivered_at: Option<i64>,
    /// When the last deferred recipient is tried again (None after a later delivery).
    next_retry: Option<i64>,
    /// Whether `next_retry` is known from this batch (else the stored one stays).
    retry_known: bool,
}

impl<'a> HostLast<'a> {
    fn see(&mut self, o: &'a RowOutcome, now: i64) {
        match o.outcome {
            Outcome::Delivered => {
                self.delivered_at = Some(now);
                self.next_retry = None;
                self.retry_known = true;
            }
            Outcome::Retry { next_attempt_at } => {
                self.error = Some(&o.reply);
                self.next_retry = Some(next_attempt_at);
                self.retry_known = true;
            }
            Outcome::Bounced | Outcome::Expired => self.error = Some(&o.reply),
        }
    }
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
        let sql = format!(
            "UPDATE queue SET next_attempt_at = ?, lease_until = 0 WHERE state = 'queued' AND id IN ({})",
            crate::params(chunk.len())
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
    // `LIMIT ?3 + 0`, not `LIMIT ?3`: SQLite's planner reads a bare parameter's value in a
    // LIMIT and then compiles the statement again whenever that parameter is bound anew (even
    // to the same value) — the whole UPDATE with its triggers, once per claim: 9 % of the
    // appliance's CPU while scanning, where each claim finds one or two rows.
    let rows = sqlx::query(
        "UPDATE queue SET next_attempt_at = ?1 + ?2, lease_until = ?1 + ?2 \
         WHERE id IN (SELECT id FROM queue WHERE state = 'queued' AND next_attempt_at <= ?1 \
                      ORDER BY next_attempt_at, id LIMIT ?3 + 0) \
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
    // Rows of a destination on hold that became due (queued after the hold, or a lease given
    // back) wait with the others instead of being delivered.
    let held: Vec<String> = sqlx::query_scalar("SELECT host FROM held_hosts")
        .fetch_all(&mut *tx)
        .await?;
    if !held.is_empty() {
        let (parked, kept): (Vec<Claimed>, Vec<Claimed>) =
            out.into_iter().partition(|c| held.contains(&c.queue_name));
        for chunk in parked.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "UPDATE queue SET next_attempt_at = ?, lease_until = 0 WHERE id IN ({})",
                crate::params(chunk.len())
            );
            // Only generated placeholders are formatted into the SQL; every value is bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(crate::hosts::HELD_UNTIL);
            for c in chunk {
                q = q.bind(c.id);
            }
            q.execute(&mut *tx).await?;
        }
        out = kept;
    }
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
        let values = crate::placeholders(chunk.len(), 6);
        // VALUES columns are column1…column6: id, state, reply, next attempt, done at, TLS.
        let sql = format!(
            "UPDATE queue SET state = v.column2, attempts = attempts + 1, last_reply = v.column3, \
             lease_until = 0, next_attempt_at = COALESCE(v.column4, queue.next_attempt_at), done_at = v.column5, \
             tls = v.column6 FROM (VALUES {values}) AS v WHERE queue.id = v.column1"
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
    crate::tracking::insert_tracking(&mut *tx, &events, now_ms).await?;
    // One counter update per host, however many attempts the batch holds for it, with what the
    // last of them said (Delivery Status details, `hoststatus`).
    let mut hosts: Vec<(&str, HostDelta, HostLast)> = Vec::new();
    for a in attempts {
        if !hosts.iter().any(|(h, _, _)| *h == a.host) {
            hosts.push((&a.host, HostDelta::default(), HostLast::default()));
        }
        if let Some((_, d, last)) = hosts.iter_mut().find(|(h, _, _)| *h == a.host) {
            d.delivered += a.delta.delivered;
            d.soft_bounced += a.delta.soft_bounced;
            d.hard_bounced += a.delta.hard_bounced;
            for o in &a.outcomes {
                last.see(o, now);
            }
        }
    }
    for (host, delta, last) in hosts {
        sqlx::query(
            "INSERT INTO host_counters (host, delivered, soft_bounced, hard_bounced, last_attempt_at, \
             last_error, last_error_at, last_delivered_at, next_retry_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT(host) DO UPDATE SET \
             delivered = delivered + excluded.delivered, soft_bounced = soft_bounced + excluded.soft_bounced, \
             hard_bounced = hard_bounced + excluded.hard_bounced, last_attempt_at = excluded.last_attempt_at, \
             last_error = COALESCE(excluded.last_error, last_error), \
             last_error_at = COALESCE(excluded.last_error_at, last_error_at), \
             last_delivered_at = COALESCE(excluded.last_delivered_at, last_delivered_at), \
             next_retry_at = CASE WHEN ?10 THEN excluded.next_retry_at ELSE next_retry_at END",
        )
        .bind(host)
        .bind(delta.delivered as i64)
        .bind(delta.soft_bounced as i64)
        .bind(delta.hard_bounced as i64)
        .bind(now)
        .bind(last.error)
        .bind(last.error.map(|_| now))
        .bind(last.delivered_at)
        .bind(last.next_retry)
        .bind(last.retry_known)
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
        let sql = format!(
            "SELECT q.id, q.mid FROM queue q WHERE q.id IN ({}) \
             AND NOT EXISTS (SELECT 1 FROM queue o WHERE o.mid = q.mid AND o.state = 'queued')",
            crate::params(chunk.len())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::temp_store;
    use crate::{HostRow, Pruned};

    async fn queue_one(store: &Store, n_rcpts: u32) -> Mid {
        let mid = store.next_mid().await.unwrap();
        let m = NewMessage {
            body: b"x\r\n".to_vec(),
            tracking: vec![],
            ..crate::tests::new_message(mid, n_rcpts)
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
    async fn a_held_destination_waits_until_resumed_and_its_details_tell_why() {
        let (_dir, store) = temp_store().await;
        queue_one(&store, 1).await;
        assert_eq!(store.hold_host("example.com", "admin").await.unwrap(), 1);
        assert!(store.claim_due(600, 100).await.unwrap().is_empty());
        // Mail queued after the hold waits too, and Retry Delivery leaves it alone.
        queue_one(&store, 1).await;
        assert!(store.claim_due(600, 100).await.unwrap().is_empty());
        assert_eq!(store.deliver_now(Some("example.com")).await.unwrap(), 0);
        assert!(store.claim_due(600, 100).await.unwrap().is_empty());
        let d = store.host_detail("example.com").await.unwrap().unwrap();
        assert_eq!(d.row.active_recipients, 2);
        assert_eq!(d.held.map(|h| h.1), Some("admin".to_owned()));
        assert_eq!(store.held_hosts().await.unwrap(), ["example.com"]);
        assert!(matches!(
            store.hold_host("the.tdc.queue", "admin").await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(store.resume_host("example.com").await.unwrap(), Some(2));
        assert_eq!(store.resume_host("example.com").await.unwrap(), None);
        let claimed = store.claim_due(600, 100).await.unwrap();
        assert_eq!(claimed.len(), 2);

        // A deferral, then a delivery: the last error stays, the next retry goes.
        let retry_at = unix_now() + 300;
        let outcomes = [RowOutcome {
            id: claimed[0].id,
            outcome: Outcome::Retry {
                next_attempt_at: retry_at,
            },
            reply: "451 4.3.0 try later".into(),
            tls: None,
        }];
        let soft = HostDelta {
            soft_bounced: 1,
            ..HostDelta::default()
        };
        store
            .record_attempt("example.com", &outcomes, &soft, &[], None)
            .await
            .unwrap();
        let d = store.host_detail("example.com").await.unwrap().unwrap();
        assert_eq!(d.last_error.as_deref(), Some("451 4.3.0 try later"));
        assert_eq!(d.next_retry_at, Some(retry_at));
        assert_eq!(d.last_delivered_at, None);
        assert!(d.held.is_none());
        let outcomes = [RowOutcome {
            id: claimed[1].id,
            outcome: Outcome::Delivered,
            reply: "250 ok".into(),
            tls: None,
        }];
        let delivered = HostDelta {
            delivered: 1,
            ..HostDelta::default()
        };
        store
            .record_attempt("example.com", &outcomes, &delivered, &[], None)
            .await
            .unwrap();
        let d = store.host_detail("example.com").await.unwrap().unwrap();
        assert_eq!(d.last_error.as_deref(), Some("451 4.3.0 try later"));
        assert_eq!(d.next_retry_at, None);
        assert!(d.last_delivered_at.is_some());
        assert_eq!((d.row.delivered, d.row.soft_bounced), (1, 1));
        assert!(store.host_detail("nowhere.test").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn the_tdc_queue_is_counted_per_intake_address() {
        let (_dir, store) = temp_store().await;
        for intake in ["a@intake.test", "b@intake.test", "b@intake.test"] {
            let mid = store.next_mid().await.unwrap();
            store
                .accept(NewMessage {
                    recipients: vec![crate::NewRecipient {
                        rcpt_idx: 0,
                        recipient: intake.into(),
                        queue_name: "the.tdc.queue".into(),
                        kind: crate::QueueKind::Journal,
                        state: crate::RowState::Queued,
                    }],
                    ..crate::tests::new_message(mid, 0)
                })
                .await
                .unwrap();
        }
        let claimed = store.claim_due(600, 100).await.unwrap();
        let outcomes: Vec<RowOutcome> = claimed
            .iter()
            .map(|c| RowOutcome {
                id: c.id,
                outcome: if c.recipient == "a@intake.test" {
                    Outcome::Delivered
                } else {
                    Outcome::Bounced
                },
                reply: if c.recipient == "a@intake.test" {
                    "250 ok".into()
                } else {
                    "550 5.1.1 no such intake".into()
                },
                tls: None,
            })
            .collect();
        store
            .record_attempt("the.tdc.queue", &outcomes, &HostDelta::default(), &[], None)
            .await
            .unwrap();
        let rows = store.intakes().await.unwrap();
        assert_eq!(rows.len(), 2);
        // The failing intake first.
        let b = &rows[0];
        assert_eq!(b.intake, "b@intake.test");
        assert_eq!((b.queued, b.delivered, b.failed, b.expired), (0, 0, 2, 0));
        assert_eq!(b.last_error.as_deref(), Some("550 5.1.1 no such intake"));
        let a = &rows[1];
        assert_eq!((a.queued, a.delivered, a.failed), (0, 1, 0));
        assert!(a.last_error.is_none() && a.last_delivered_at.is_some());
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

    /// A connection count with nothing after it is not held back for good: the writer
    /// commits it on its own once it has waited a while for company.
    #[tokio::test]
    async fn a_lone_host_change_is_committed() {
        let (_dir, store) = temp_store().await;
        store.host_connection("alone.example", 1).await.unwrap();
        let connections = || async {
            store
                .tophosts()
                .await
                .unwrap()
                .iter()
                .find(|h| h.host == "alone.example")
                .map(|h| h.connections_out)
        };
        let waited = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while connections().await != Some(1) {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "the change was never committed");
    }
}
