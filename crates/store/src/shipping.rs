//! Cluster mode: shipping this node's message tracking to the cluster database, and the
//! cluster-wide tracking search.
//!
//! The local `tracking` table is the outbox: its ids only grow, and a cursor in `meta`
//! (`cluster_tracking_cursor`) says how far the cluster database has it. Each batch ships the
//! new events and, for every message they touch, its current summary (envelope, subject, what
//! has happened to it), in one PostgreSQL transaction; the cursor moves only after it
//! committed, and both tables take a row twice harmlessly. So an outage loses nothing and
//! delays only the central view; nothing is added to the accept path.

use sqlx::Row;

use crate::tracking::{TrackEvent, TrackFilter, Tracked, TrackingEvent};
use crate::{Mid, Store, StoreError};

const CURSOR: &str = "cluster_tracking_cursor";

/// What one [`Store::cluster_ship`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Shipped {
    pub events: u64,
    pub messages: u64,
    /// Events still waiting after this batch.
    pub backlog: u64,
}

/// A message of the cluster-wide search, with the node that handled it.
#[derive(Debug, Clone)]
pub struct NodeTracked {
    pub node: String,
    pub tracked: Tracked,
}

/// A journal row as shipped (the ledger).
struct JournalRow {
    row_id: i64,
    mid: i64,
    intake: String,
    state: &'static str,
    attempts: i64,
    last_reply: Option<String>,
    tls: Option<String>,
    queued_at: i64,
    done_at: Option<i64>,
}

/// A message's summary as shipped.
struct Summary {
    mid: i64,
    received_at: i64,
    sender: String,
    recipients: String,
    subject: Option<String>,
    message_id: Option<String>,
    remote_ip: String,
    policy: String,
    events: Vec<&'static str>,
}

impl Store {
    async fn cursor(&self) -> Result<i64, StoreError> {
        Ok(self
            .meta(CURSOR)
            .await?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// Events committed locally and not yet in the cluster database.
    pub async fn cluster_backlog(&self) -> Result<u64, StoreError> {
        let last: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM tracking")
            .fetch_one(self.pool())
            .await?;
        // Ids are dense, so the difference is the count without walking the rows.
        Ok((last.unwrap_or(0) - self.cursor().await?).max(0) as u64)
    }

    /// Ships up to `batch` tracking events (and the summaries of their messages) to the
    /// cluster database.
    pub async fn cluster_ship(&self, batch: u32) -> Result<Shipped, StoreError> {
        let Some(c) = self.central() else {
            return Ok(Shipped::default());
        };
        let cursor = self.cursor().await?;
        let rows = sqlx::query(
            // `+ 0`: a bare parameter in a LIMIT recompiles the statement at each bind (see
            // `queue::claim`), and the shipper runs this at least twice a second.
            "SELECT id, mid, at, text FROM tracking WHERE id > ?1 ORDER BY id LIMIT ?2 + 0",
        )
        .bind(cursor)
        .bind(batch.max(1))
        .fetch_all(self.pool())
        .await?;
        let Some(last) = rows.last() else {
            return Ok(Shipped::default());
        };
        let last: i64 = last.try_get("id")?;
        let mut events = Vec::with_capacity(rows.len());
        let mut mids: Vec<i64> = Vec::new();
        for r in &rows {
            let mid: i64 = r.try_get("mid")?;
            if !mids.contains(&mid) {
                mids.push(mid);
            }
            events.push((
                r.try_get::<i64, _>("id")?,
                mid,
                r.try_get::<i64, _>("at")?,
                r.try_get::<String, _>("text")?,
            ));
        }
        let summaries = self.summaries(&mids).await?;
        let ledger = self.journal_rows(&mids).await?;
        let node = c.node.clone();
        // Column arrays: one statement per table for the whole batch.
        let col = |f: fn(&Summary) -> Option<String>| summaries.iter().map(f).collect::<Vec<_>>();
        let s_mids: Vec<i64> = summaries.iter().map(|s| s.mid).collect();
        let s_received: Vec<i64> = summaries.iter().map(|s| s.received_at).collect();
        let s_sender = col(|s| Some(s.sender.clone()));
        let s_recipients = col(|s| Some(s.recipients.clone()));
        let s_subject = col(|s| s.subject.clone());
        let s_message_id = col(|s| s.message_id.clone());
        let s_remote_ip = col(|s| Some(s.remote_ip.clone()));
        let s_policy = col(|s| Some(s.policy.clone()));
        let s_events = col(|s| Some(s.events.join(",")));
        let ids: Vec<i64> = events.iter().map(|e| e.0).collect();
        let e_mids: Vec<i64> = events.iter().map(|e| e.1).collect();
        let ats: Vec<i64> = events.iter().map(|e| e.2).collect();
        let texts: Vec<&str> = events.iter().map(|e| e.3.as_str()).collect();
        c.run(async {
            let mut tx = c.pool.begin().await?;
            sqlx::query(
                "INSERT INTO tracked_messages (node, mid, received_at, sender, recipients, subject, \
                 message_id, remote_ip, policy, events) \
                 SELECT $1, t.mid, t.received_at, t.sender, t.recipients, t.subject, t.message_id, \
                 t.remote_ip, t.policy, string_to_array(t.events, ',') \
                 FROM UNNEST($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], \
                 $7::text[], $8::text[], $9::text[], $10::text[]) \
                 AS t(mid, received_at, sender, recipients, subject, message_id, remote_ip, policy, events) \
                 ON CONFLICT (node, mid) DO UPDATE SET recipients = excluded.recipients, \
                 events = excluded.events",
            )
            .bind(&node)
            .bind(&s_mids)
            .bind(&s_received)
            .bind(&s_sender)
            .bind(&s_recipients)
            .bind(&s_subject)
            .bind(&s_message_id)
            .bind(&s_remote_ip)
            .bind(&s_policy)
            .bind(&s_events)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO tracked_ledger (node, row_id, mid, intake, state, attempts, last_reply, \
                 tls, queued_at, done_at) SELECT $1, * FROM UNNEST($2::bigint[], $3::bigint[], \
                 $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[], $9::bigint[], $10::bigint[]) \
                 ON CONFLICT (node, row_id) DO UPDATE SET state = excluded.state, \
                 attempts = excluded.attempts, last_reply = excluded.last_reply, tls = excluded.tls, \
                 done_at = excluded.done_at",
            )
            .bind(&node)
            .bind(ledger.iter().map(|l| l.row_id).collect::<Vec<_>>())
            .bind(ledger.iter().map(|l| l.mid).collect::<Vec<_>>())
            .bind(ledger.iter().map(|l| l.intake.clone()).collect::<Vec<_>>())
            .bind(ledger.iter().map(|l| l.state).collect::<Vec<_>>())
            .bind(ledger.iter().map(|l| l.attempts).collect::<Vec<_>>())
            .bind(ledger.iter().map(|l| l.last_reply.clone()).collect::<Vec<_>>())
            .bind(ledger.iter().map(|l| l.tls.clone()).collect::<Vec<_>>())
            .bind(ledger.iter().map(|l| l.queued_at).collect::<Vec<_>>())
            .bind(ledger.iter().map(|l| l.done_at).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO tracked_events (node, id, mid, at, text) \
                 SELECT $1, * FROM UNNEST($2::bigint[], $3::bigint[], $4::bigint[], $5::text[]) \
                 ON CONFLICT (node, id) DO NOTHING",
            )
            .bind(&node)
            .bind(&ids)
            .bind(&e_mids)
            .bind(&ats)
            .bind(&texts)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        })
        .await?;
        self.set_meta(CURSOR, &last.to_string()).await?;
        Ok(Shipped {
            events: rows.len() as u64,
            messages: summaries.len() as u64,
            backlog: self.cluster_backlog().await?,
        })
    }

    /// The journal rows of `mids`, in ledger terms.
    async fn journal_rows(&self, mids: &[i64]) -> Result<Vec<JournalRow>, StoreError> {
        let list = serde_json::to_string(mids)
            .map_err(|e| StoreError::Settings(format!("cannot list MIDs: {e}")))?;
        let rows = sqlx::query(
            "SELECT id, mid, recipient, state, replayed_at IS NOT NULL AS replayed, attempts, \
             last_reply, tls, created_at, done_at FROM queue \
             WHERE kind = 'journal' AND mid IN (SELECT value FROM json_each(?1))",
        )
        .bind(&list)
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let state: String = r.try_get("state")?;
            // A row in no ledger state (none today) is not shipped.
            let Some(state) = crate::ledger::ledger_state(&state, r.try_get("replayed")?) else {
                continue;
            };
            out.push(JournalRow {
                row_id: r.try_get("id")?,
                mid: r.try_get("mid")?,
                intake: r.try_get("recipient")?,
                state: state.as_str(),
                attempts: r.try_get("attempts")?,
                last_reply: r.try_get("last_reply")?,
                tls: r.try_get("tls")?,
                queued_at: r.try_get("created_at")?,
                done_at: r.try_get("done_at")?,
            });
        }
        Ok(out)
    }

    /// The journal ledger of this node (`node` `None`, or this node's name), of another node
    /// or of the whole cluster (`"*"`), as shipped: copies queued since `since` (unix seconds),
    /// newest first, each with its node (`""` on a single appliance).
    pub async fn ledger_in(
        &self,
        since: i64,
        state: Option<rampart_tdc::LedgerState>,
        limit: u32,
        node: Option<&str>,
    ) -> Result<Vec<(String, crate::LedgerEntry)>, StoreError> {
        let own = self.central().map(|c| c.node.clone()).unwrap_or_default();
        let (c, node) = match (self.central(), node) {
            (Some(c), Some(n)) if n != own => (c, (n != "*").then(|| n.to_owned())),
            (None, Some(_)) => {
                return Err(StoreError::Conflict(
                    "this appliance is not in a cluster: ask without a node".into(),
                ));
            }
            _ => {
                let local = self.ledger(since, state, limit).await?;
                return Ok(local.into_iter().map(|e| (own.clone(), e)).collect());
            }
        };
        c.run(async {
            let rows = sqlx::query(
                "SELECT l.node, l.mid, l.intake, l.state, l.attempts, l.last_reply, l.tls, \
                 l.queued_at, l.done_at, m.sender, m.subject, m.message_id \
                 FROM tracked_ledger l LEFT JOIN tracked_messages m ON m.node = l.node AND m.mid = l.mid \
                 WHERE l.queued_at >= $1 AND ($2::text IS NULL OR l.state = $2) \
                 AND ($3::text IS NULL OR l.node = $3) \
                 ORDER BY l.queued_at DESC, l.node, l.row_id DESC LIMIT $4",
            )
            .bind(since)
            .bind(state.map(rampart_tdc::LedgerState::as_str))
            .bind(&node)
            .bind(i64::from(limit.max(1)))
            .fetch_all(&c.pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let state: String = r.try_get("state")?;
                let Some(state) = rampart_tdc::LedgerState::parse(&state) else {
                    continue;
                };
                out.push((
                    r.try_get::<String, _>("node")?,
                    crate::LedgerEntry {
                        mid: Mid(r.try_get::<i64, _>("mid")?.max(0) as u64),
                        intake: r.try_get("intake")?,
                        state,
                        attempts: u32::try_from(r.try_get::<i64, _>("attempts")?).unwrap_or(0),
                        last_reply: r.try_get("last_reply")?,
                        tls: r.try_get("tls")?,
                        queued_at: r.try_get("queued_at")?,
                        done_at: r.try_get("done_at")?,
                        sender: r
                            .try_get::<Option<String>, _>("sender")?
                            .unwrap_or_default(),
                        subject: r.try_get("subject")?,
                        message_id: r.try_get("message_id")?,
                    },
                ));
            }
            Ok(out)
        })
        .await
    }

    /// The current summaries of `mids` (those still in the store: retention may have removed
    /// some), in two queries.
    async fn summaries(&self, mids: &[i64]) -> Result<Vec<Summary>, StoreError> {
        let list = serde_json::to_string(mids)
            .map_err(|e| StoreError::Settings(format!("cannot list MIDs: {e}")))?;
        // The event conditions are the local search's own fixed SQL.
        let conditions: Vec<&str> = TrackEvent::ALL.iter().map(|(e, _, _)| e.sql()).collect();
        let sql = format!(
            "SELECT m.mid, m.received_at, m.sender, m.subject, m.message_id, m.remote_ip, m.policy, {} \
             FROM messages m WHERE m.mid IN (SELECT value FROM json_each(?1))",
            conditions.join(", ")
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&list)
            .fetch_all(self.pool())
            .await?;
        let recipients = sqlx::query(
            "SELECT mid, recipient FROM queue WHERE mid IN (SELECT value FROM json_each(?1)) \
             AND kind = 'deliver' ORDER BY mid, rcpt_idx",
        )
        .bind(&list)
        .fetch_all(self.pool())
        .await?;
        let mut by_mid: std::collections::HashMap<i64, Vec<String>> = Default::default();
        for r in recipients {
            by_mid
                .entry(r.try_get("mid")?)
                .or_default()
                .push(r.try_get("recipient")?);
        }
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let mid: i64 = r.try_get("mid")?;
            let mut events = Vec::new();
            for (i, (_, slug, _)) in TrackEvent::ALL.iter().enumerate() {
                if r.try_get::<bool, _>(7 + i)? {
                    events.push(*slug);
                }
            }
            out.push(Summary {
                mid,
                received_at: r.try_get("received_at")?,
                sender: r.try_get("sender")?,
                recipients: by_mid.remove(&mid).unwrap_or_default().join("\n"),
                subject: r.try_get("subject")?,
                message_id: r.try_get("message_id")?,
                remote_ip: r.try_get("remote_ip")?,
                policy: r.try_get("policy")?,
                events,
            });
        }
        Ok(out)
    }

    /// Message tracking on this node (`node` `None`, or this node's name) or, in cluster mode,
    /// on the whole cluster (`"*"`) or another node, each message with its node (`""` on a
    /// single appliance); and the number of matches.
    pub async fn track_in(
        &self,
        filter: &TrackFilter,
        node: Option<&str>,
    ) -> Result<(Vec<NodeTracked>, u64), StoreError> {
        let own = self.central().map(|c| c.node.clone()).unwrap_or_default();
        match node {
            Some("*") => self.cluster_track(filter, None).await,
            Some(n) if n != own => self.cluster_track(filter, Some(n)).await,
            _ => {
                let total = self.track_count(filter).await?;
                let found = self.track(filter).await?;
                let found = found
                    .into_iter()
                    .map(|tracked| NodeTracked {
                        node: own.clone(),
                        tracked,
                    })
                    .collect();
                Ok((found, total))
            }
        }
    }

    /// Message tracking over the whole cluster (or one `node`): as [`Store::track`], newest
    /// first, each message with its node; and the number of matches.
    async fn cluster_track(
        &self,
        filter: &TrackFilter,
        node: Option<&str>,
    ) -> Result<(Vec<NodeTracked>, u64), StoreError> {
        let Some(c) = self.central() else {
            return Err(StoreError::Conflict(
                "this appliance is not in a cluster: search it without a node".into(),
            ));
        };
        let like = |s: &Option<String>| {
            s.as_ref().map(|v| {
                format!(
                    "%{}%",
                    v.replace('\\', "\\\\")
                        .replace('%', "\\%")
                        .replace('_', "\\_")
                )
            })
        };
        const WHERE: &str = "($1::bigint IS NULL OR mid = $1) \
             AND ($2::text IS NULL OR sender ILIKE $2) \
             AND ($3::text IS NULL OR recipients ILIKE $3) \
             AND ($4::text IS NULL OR subject ILIKE $4) \
             AND ($5::bigint IS NULL OR received_at >= $5) AND ($6::bigint IS NULL OR received_at < $6) \
             AND ($7::text IS NULL OR message_id ILIKE $7) \
             AND ($8::text IS NULL OR remote_ip = $8) \
             AND ($9::text IS NULL OR lower(policy) = lower($9)) \
             AND ($10::text IS NULL OR $10 = ANY(events)) \
             AND ($11::text IS NULL OR node = $11)";
        let (sender, recipient, subject, message_id) = (
            like(&filter.sender),
            like(&filter.recipient),
            like(&filter.subject),
            like(&filter.message_id),
        );
        let mid = filter.mid.map(|m| m.0 as i64);
        let event = filter.event.map(TrackEvent::slug);
        let bind = |q: sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments>| {
            q.bind(mid)
                .bind(sender.clone())
                .bind(recipient.clone())
                .bind(subject.clone())
                .bind(filter.since)
                .bind(filter.until)
                .bind(message_id.clone())
                .bind(filter.remote_ip.clone())
                .bind(filter.policy.clone())
                .bind(event)
                .bind(node.map(str::to_owned))
        };
        c.run(async {
            let total: i64 = bind(sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM tracked_messages WHERE {WHERE}"
            ))))
            .fetch_one(&c.pool)
            .await?
            .try_get(0)?;
            let rows = bind(sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT node, mid, sender, recipients, subject, message_id, received_at \
                 FROM tracked_messages WHERE {WHERE} \
                 ORDER BY received_at DESC, node, mid DESC LIMIT $12 OFFSET $13"
            ))))
            .bind(i64::from(filter.limit.max(1)))
            .bind(i64::from(filter.offset))
            .fetch_all(&c.pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let node: String = r.try_get("node")?;
                let mid: i64 = r.try_get("mid")?;
                let events = sqlx::query(
                    "SELECT at, text FROM tracked_events WHERE node = $1 AND mid = $2 ORDER BY id",
                )
                .bind(&node)
                .bind(mid)
                .fetch_all(&c.pool)
                .await?
                .into_iter()
                .map(|e| {
                    Ok(TrackingEvent {
                        at: e.try_get("at")?,
                        text: e.try_get("text")?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
                let recipients: String = r.try_get("recipients")?;
                out.push(NodeTracked {
                    node,
                    tracked: Tracked {
                        mid: Mid(mid.max(0) as u64),
                        sender: r.try_get("sender")?,
                        recipients: recipients
                            .lines()
                            .filter(|l| !l.is_empty())
                            .map(str::to_owned)
                            .collect(),
                        subject: r.try_get("subject")?,
                        message_id: r.try_get("message_id")?,
                        received_at: r.try_get("received_at")?,
                        events,
                    },
                });
            }
            Ok((out, total.max(0) as u64))
        })
        .await
    }

    /// `tophosts` of this node (`node` `None`, or this node's name), of another node as its
    /// last heartbeat had it, or of the whole cluster (`"*"`): each host's figures summed over
    /// the nodes (this node's current ones, the others' as of their heartbeats), marked down
    /// when any node found it down.
    pub async fn tophosts_in(&self, node: Option<&str>) -> Result<Vec<crate::HostRow>, StoreError> {
        let own = self.central().map(|c| c.node.clone()).unwrap_or_default();
        let Some(node) = node.filter(|n| *n != own) else {
            return self.tophosts().await;
        };
        if self.central().is_none() {
            return Err(StoreError::Conflict(
                "this appliance is not in a cluster: ask without a node".into(),
            ));
        }
        let nodes = self.cluster_nodes().await?;
        if node != "*" {
            return nodes
                .into_iter()
                .find(|n| n.name == node)
                .map(|n| n.hosts)
                .ok_or_else(|| {
                    StoreError::Conflict(format!("no node named {node:?} in the cluster"))
                });
        }
        let mut sum: Vec<crate::HostRow> = self.tophosts().await?;
        for n in nodes.into_iter().filter(|n| n.name != own) {
            for h in n.hosts {
                match sum.iter_mut().find(|s| s.host == h.host) {
                    Some(s) => {
                        s.active_recipients += h.active_recipients;
                        s.connections_out += h.connections_out;
                        s.delivered += h.delivered;
                        s.soft_bounced += h.soft_bounced;
                        s.hard_bounced += h.hard_bounced;
                        s.down |= h.down;
                    }
                    None => sum.push(h),
                }
            }
        }
        Ok(sum)
    }

    /// Removes this node's shipped tracking of messages received before `before` (unix
    /// seconds), as retention does locally.
    pub async fn cluster_prune(&self, before: i64) -> Result<u64, StoreError> {
        let Some(c) = self.central() else {
            return Ok(0);
        };
        c.run(async {
            let mut tx = c.pool.begin().await?;
            sqlx::query(
                "DELETE FROM tracked_events e USING tracked_messages m \
                 WHERE e.node = $1 AND m.node = $1 AND e.mid = m.mid AND m.received_at < $2",
            )
            .bind(&c.node)
            .bind(before)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM tracked_ledger WHERE node = $1 AND queued_at < $2")
                .bind(&c.node)
                .bind(before)
                .execute(&mut *tx)
                .await?;
            let n =
                sqlx::query("DELETE FROM tracked_messages WHERE node = $1 AND received_at < $2")
                    .bind(&c.node)
                    .bind(before)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            tx.commit().await?;
            Ok(n)
        })
        .await
    }
}
