//! Messages, their queue rows and tracking events, and the group-commit writer.

use sqlx::{Connection, Row, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use crate::{MAX_BATCH, Mid, Store, StoreError, unix_now, unix_now_ms};

/// What a queue row carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    /// A normal delivery to a recipient.
    Deliver,
    /// A journal copy for the Threat Defense Connector.
    Journal,
}

impl QueueKind {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueKind::Deliver => "deliver",
            QueueKind::Journal => "journal",
        }
    }
}

/// A message accepted by the MTA, ready to be committed.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub mid: Mid,
    pub icid: u64,
    /// Envelope sender without brackets; empty for the null sender.
    pub sender: String,
    pub remote_ip: String,
    pub helo: String,
    pub sender_group: String,
    pub relayed: bool,
    /// The mail policy the message was processed under.
    pub policy: String,
    /// deliver | drop | bounce | quarantine.
    pub verdict: String,
    /// What the security services found, `; `-separated; empty when clean.
    pub findings: String,
    /// The anti-spam verdict (`positive`, `suspect`, `negative`, `unscannable`), if scanned.
    pub spam: Option<&'static str>,
    /// The anti-virus verdict (`positive`, `negative`, `unscannable`), if scanned.
    pub virus: Option<&'static str>,
    pub tls: Option<String>,
    pub message_id: Option<String>,
    pub subject: Option<String>,
    /// The message as stored: our `Received:` header, then the client's bytes (CRLF-canonical).
    pub body: Vec<u8>,
    pub recipients: Vec<NewRecipient>,
    /// Tracking events to record with the message, in order.
    pub tracking: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct NewRecipient {
    pub rcpt_idx: u32,
    pub recipient: String,
    /// The queue this row goes to: the recipient's domain, or `the.tdc.queue`.
    pub queue_name: String,
    pub kind: QueueKind,
    /// The row's first state: normally `queued`.
    pub state: RowState,
}

/// The state a queue row starts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowState {
    Queued,
    /// Dropped by a security service: kept for tracking, never delivered.
    Dropped,
    /// Held in the quarantine until released or deleted.
    Quarantined,
    /// Refused by a security service; the sender is notified.
    Bounced,
}

impl RowState {
    pub fn as_str(self) -> &'static str {
        match self {
            RowState::Queued => "queued",
            RowState::Dropped => "dropped",
            RowState::Quarantined => "quarantined",
            RowState::Bounced => "bounced",
        }
    }
}

/// What a DSN needs to know of the message it reports on.
#[derive(Debug, Clone, Copy)]
pub struct NewMessageRef<'a> {
    pub mid: Mid,
    pub sender: &'a str,
    pub arrival: chrono::DateTime<chrono::Local>,
    pub body: &'a [u8],
}

/// A stored message, as read back.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub mid: Mid,
    pub icid: u64,
    pub received_at: i64,
    pub sender: String,
    pub remote_ip: String,
    pub message_id: Option<String>,
    pub subject: Option<String>,
    /// The mail policy the message was processed under.
    pub policy: String,
    /// Shared, not copied: delivery and journaling read the same bytes.
    pub body: bytes::Bytes,
}

/// One queue row, as read back.
#[derive(Debug, Clone)]
pub struct QueueRow {
    pub id: i64,
    pub mid: Mid,
    pub rcpt_idx: u32,
    pub recipient: String,
    pub queue_name: String,
    pub kind: String,
    pub state: String,
    pub attempts: u32,
}

#[derive(Debug, Clone)]
pub struct TrackingEvent {
    /// Unix milliseconds.
    pub at: i64,
    pub text: String,
}

/// Work for the writer task. Every write to the queue goes through it, so that one connection
/// holds SQLite's write lock and nothing waits in SQLite's busy handler.
pub(crate) enum Job {
    /// Accepted messages (the batch then commits with `synchronous = FULL`).
    Accept {
        messages: Vec<NewMessage>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// The outcome of a delivery attempt; answered with the MIDs it finished.
    Attempt {
        attempt: Box<crate::queue::Attempt>,
        reply: oneshot::Sender<Result<Vec<Mid>, StoreError>>,
    },
    /// Lease due queue rows for delivery; answered after the lease is committed.
    Claim {
        lease_secs: i64,
        limit: u32,
        reply: oneshot::Sender<Result<Vec<crate::queue::Claimed>, StoreError>>,
    },
    /// A change of a host's connection count or down flag; nobody waits for it.
    Host(crate::queue::HostChange),
    /// Give back the lease of rows the scheduler claimed but could not take (see
    /// [`Store::unlease`]); nobody waits for it.
    Unlease(Vec<i64>),
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Accept { messages, .. } => f
                .debug_struct("Accept")
                .field("mids", &messages.iter().map(|m| m.mid).collect::<Vec<_>>())
                .finish(),
            Job::Attempt { attempt, .. } => f
                .debug_struct("Attempt")
                .field("host", &attempt.host)
                .field("rows", &attempt.outcomes.len())
                .finish(),
            Job::Claim { limit, .. } => f.debug_struct("Claim").field("limit", limit).finish(),
            Job::Host(h) => h.fmt(f),
            Job::Unlease(ids) => f.debug_tuple("Unlease").field(ids).finish(),
        }
    }
}

impl Job {
    fn wakes_scheduler(&self) -> bool {
        match self {
            Job::Accept { .. } => true,
            Job::Attempt { attempt, .. } => attempt.dsn.is_some(),
            // Given-back rows are due at once, but waking the scheduler for them could spin while
            // their worker still holds them: its next look (a quarter second on) finds them.
            Job::Claim { .. } | Job::Host(_) | Job::Unlease(_) => false,
        }
    }
}

/// What the commit of one job produced.
#[derive(Debug)]
enum Done {
    Nothing,
    Finished(Vec<Mid>),
    Claimed(Vec<crate::queue::Claimed>),
}

/// The writer task: takes whatever jobs are waiting (up to [`MAX_BATCH`]), commits them in
/// one transaction, answers them all. One connection writes everything, so writers never wait
/// for SQLite's write lock; a batch with accepted messages commits with `synchronous = FULL`
/// (on disk before `250`), other batches only with `NORMAL` (see [`Store::open`]).
pub(crate) async fn writer(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Job>,
    queued: std::sync::Arc<tokio::sync::Notify>,
    recent: std::sync::Arc<Recent>,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut full = true;
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let wake = batch.iter().any(Job::wakes_scheduler);
        let needs_full = batch.iter().any(|j| matches!(j, Job::Accept { .. }));
        if needs_full != full {
            let pragma = if needs_full {
                "PRAGMA synchronous = FULL"
            } else {
                "PRAGMA synchronous = NORMAL"
            };
            match sqlx::query(pragma).execute(&mut conn).await {
                Ok(_) => full = needs_full,
                Err(e) => {
                    tracing::error!(error = %e, "cannot set the synchronous mode");
                    if needs_full {
                        // Without FULL a commit may not be on disk when it returns, and a `250`
                        // must mean durable: the messages are refused (451) instead, and the
                        // rest of the batch goes ahead.
                        let now = unix_now();
                        let (accepts, rest): (Vec<Job>, Vec<Job>) = batch
                            .drain(..)
                            .partition(|j| matches!(j, Job::Accept { .. }));
                        for job in accepts {
                            let why = format!("cannot make the commit durable: {e}");
                            answer(job, Err(StoreError::NotDurable(why)), &recent, now);
                        }
                        batch = rest;
                        if batch.is_empty() {
                            continue;
                        }
                    }
                }
            }
        }
        let now = unix_now();
        match commit(&mut conn, &batch, now).await {
            Ok(done) => {
                for (job, done) in batch.drain(..).zip(done) {
                    answer(job, Ok(done), &recent, now);
                }
            }
            Err(e) => {
                // One bad job must not fail its neighbours: retry each on its own.
                tracing::warn!(error = %e, n = batch.len(), "group commit failed, committing one by one");
                for job in batch.drain(..) {
                    let one = commit(&mut conn, std::slice::from_ref(&job), now).await;
                    answer(
                        job,
                        one.map(|mut d| d.pop().unwrap_or(Done::Nothing)),
                        &recent,
                        now,
                    );
                }
            }
        }
        if wake {
            queued.notify_one();
        }
    }
    let _ = conn.close().await;
}

/// Answers a committed (or failed) job; committed messages go to the memory cache.
fn answer(job: Job, done: Result<Done, StoreError>, recent: &Recent, now: i64) {
    match job {
        Job::Accept { messages, reply } => {
            let ok = done.is_ok();
            let _ = reply.send(done.map(drop));
            if ok {
                recent.remember(messages, now);
            }
        }
        Job::Attempt { reply, .. } => {
            let _ = reply.send(done.map(|d| match d {
                Done::Finished(mids) => mids,
                _ => Vec::new(),
            }));
        }
        Job::Claim { reply, .. } => {
            let _ = reply.send(done.map(|d| match d {
                Done::Claimed(rows) => rows,
                _ => Vec::new(),
            }));
        }
        Job::Host(change) => {
            if let Err(e) = done {
                tracing::warn!(error = %e, host = %change.host, "cannot update the host counters");
            }
        }
        Job::Unlease(ids) => {
            if let Err(e) = done {
                tracing::warn!(error = %e, rows = ids.len(), "cannot give back claimed rows; they come due when their lease ends");
            }
        }
    }
}

/// Commits `jobs` in one transaction with as few statements as the batch allows (each
/// statement is a round trip to the connection's thread); returns what each job produced.
async fn commit(
    conn: &mut SqliteConnection,
    jobs: &[Job],
    now: i64,
) -> Result<Vec<Done>, StoreError> {
    let mut tx = conn.begin().await?;
    // Every accepted message and every bounce of the batch in one set of multi-row INSERTs.
    let mut new: Vec<&NewMessage> = Vec::new();
    let mut attempts: Vec<&crate::queue::Attempt> = Vec::new();
    let mut hosts: Vec<&crate::queue::HostChange> = Vec::new();
    let mut unlease: Vec<i64> = Vec::new();
    for job in jobs {
        match job {
            Job::Accept { messages, .. } => new.extend(messages.iter()),
            Job::Attempt { attempt, .. } => {
                new.extend(attempt.dsn.iter());
                attempts.push(attempt);
            }
            Job::Host(change) => hosts.push(change),
            Job::Unlease(ids) => unlease.extend(ids),
            Job::Claim { .. } => {}
        }
    }
    if !new.is_empty() {
        insert_messages(&mut tx, &new, now).await?;
    }
    crate::queue::unlease(&mut tx, &unlease, now).await?;
    // Claims after this batch's new messages went in, so that those can be claimed at once, and
    // before its outcomes: a row that an outcome makes due again is still held by its worker
    // until the outcome is answered, so this batch must not hand it out a second time.
    let mut done = Vec::with_capacity(jobs.len());
    for job in jobs {
        done.push(match job {
            Job::Claim {
                lease_secs, limit, ..
            } => Done::Claimed(crate::queue::claim(&mut tx, now, *lease_secs, *limit).await?),
            _ => Done::Nothing,
        });
    }
    let finished = crate::queue::apply_attempts(&mut tx, &attempts, now).await?;
    let mut finished = finished.into_iter();
    for (job, d) in jobs.iter().zip(done.iter_mut()) {
        if let Job::Attempt { .. } = job {
            *d = Done::Finished(finished.next().unwrap_or_default());
        }
    }
    crate::queue::apply_host_changes(&mut tx, &hosts).await?;
    tx.commit().await?;
    Ok(done)
}

/// Bytes of message bodies kept in memory after acceptance.
const RECENT_BYTES: usize = 32 << 20;

/// The most recently accepted messages, as [`Store::message`] returns them: a message is read
/// back for its delivery and again for its journal copy moments after it was written, and each
/// read is a round trip to a database thread. Stored messages never change, so a copy is exact.
#[derive(Debug, Default)]
pub(crate) struct Recent {
    inner: std::sync::Mutex<(
        std::collections::VecDeque<std::sync::Arc<RecentEntry>>,
        usize,
    )>,
}

#[derive(Debug)]
struct RecentEntry {
    message: StoredMessage,
    /// The envelope recipients of normal deliveries, in RID order.
    recipients: Vec<String>,
}

impl Recent {
    /// Keeps committed messages, taking them over from the writer (no copy of the bodies).
    fn remember(&self, messages: Vec<NewMessage>, received_at: i64) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (queue, bytes) = &mut *guard;
        for m in messages {
            *bytes += m.body.len();
            let mut recipients: Vec<NewRecipient> = m
                .recipients
                .into_iter()
                .filter(|r| r.kind == QueueKind::Deliver)
                .collect();
            recipients.sort_by_key(|r| r.rcpt_idx);
            queue.push_back(std::sync::Arc::new(RecentEntry {
                message: StoredMessage {
                    mid: m.mid,
                    icid: m.icid,
                    received_at,
                    sender: m.sender,
                    remote_ip: m.remote_ip,
                    message_id: m.message_id,
                    subject: m.subject,
                    policy: m.policy,
                    body: m.body.into(),
                },
                recipients: recipients.into_iter().map(|r| r.recipient).collect(),
            }));
        }
        while *bytes > RECENT_BYTES {
            match queue.pop_front() {
                Some(old) => *bytes -= old.message.body.len(),
                None => break,
            }
        }
    }

    fn get(&self, mid: Mid) -> Option<std::sync::Arc<RecentEntry>> {
        let guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.iter().rev().find(|e| e.message.mid == mid).cloned()
    }
}

/// Rows per multi-row INSERT: SQLite allows 32,766 bound parameters in one statement.
const ROWS_PER_INSERT: usize = 500;

/// Inserts messages with their queue rows and tracking events into an open transaction, with
/// one multi-row INSERT per table (per few hundred rows): each statement is a round trip to the
/// connection's thread, so a group commit of many messages costs three statements, not dozens.
pub(crate) async fn insert_messages(
    tx: &mut SqliteConnection,
    messages: &[&NewMessage],
    received_at: i64,
) -> Result<(), StoreError> {
    let now = received_at;
    let now_ms = unix_now_ms();
    for chunk in messages.chunks(ROWS_PER_INSERT / 18) {
        let sql = format!(
            "INSERT INTO messages (mid, icid, received_at, sender, remote_ip, helo, sender_group, relayed, \
             tls, message_id, subject, size, body, policy, verdict, findings, spam, virus) VALUES {}",
            placeholders(chunk.len(), 18)
        );
        // Only generated placeholders are formatted into the SQL; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for m in chunk {
            q = q
                .bind(m.mid.0 as i64)
                .bind(m.icid as i64)
                .bind(received_at)
                .bind(&m.sender)
                .bind(&m.remote_ip)
                .bind(&m.helo)
                .bind(&m.sender_group)
                .bind(m.relayed)
                .bind(&m.tls)
                .bind(&m.message_id)
                .bind(&m.subject)
                .bind(m.body.len() as i64)
                .bind(&m.body)
                .bind(&m.policy)
                .bind(&m.verdict)
                .bind(&m.findings)
                .bind(m.spam)
                .bind(m.virus);
        }
        q.execute(&mut *tx).await?;
    }
    let rows: Vec<(Mid, &NewRecipient)> = messages
        .iter()
        .flat_map(|m| m.recipients.iter().map(move |r| (m.mid, r)))
        .collect();
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO queue (mid, rcpt_idx, recipient, queue_name, kind, state, created_at, next_attempt_at, done_at) VALUES {}",
            (0..chunk.len())
                .map(|i| {
                    let b = i * 7;
                    format!(
                        "(?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{}, CASE WHEN ?{} IN ('queued', 'quarantined') THEN NULL ELSE ?{} END)",
                        b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 7, b + 6, b + 7
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
        // Only generated placeholders are formatted into the SQL; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (mid, r) in chunk {
            q = q
                .bind(mid.0 as i64)
                .bind(r.rcpt_idx)
                .bind(&r.recipient)
                .bind(&r.queue_name)
                .bind(r.kind.as_str())
                .bind(r.state.as_str())
                .bind(now);
        }
        q.execute(&mut *tx).await?;
    }
    let events: Vec<(Mid, &str)> = messages
        .iter()
        .flat_map(|m| m.tracking.iter().map(move |t| (m.mid, t.as_str())))
        .collect();
    insert_tracking(tx, &events, now_ms).await
}

/// Tracking events in multi-row INSERTs.
pub(crate) async fn insert_tracking(
    tx: &mut SqliteConnection,
    events: &[(Mid, &str)],
    at_ms: i64,
) -> Result<(), StoreError> {
    for chunk in events.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO tracking (mid, at, text) VALUES {}",
            placeholders(chunk.len(), 3)
        );
        // Only generated placeholders are formatted into the SQL; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (mid, text) in chunk {
            q = q.bind(mid.0 as i64).bind(at_ms).bind(*text);
        }
        q.execute(&mut *tx).await?;
    }
    Ok(())
}

/// `(?1, ?2, ?3), (?4, ?5, ?6), …` for `rows` rows of `cols` parameters.
fn placeholders(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            let params: Vec<String> = (1..=cols).map(|c| format!("?{}", r * cols + c)).collect();
            format!("({})", params.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// A stored message with its body.
    /// A message with the recipients of its normal deliveries (in RID order), as a journal copy
    /// needs them; from memory when it was accepted lately.
    pub async fn message_with_recipients(
        &self,
        mid: Mid,
    ) -> Result<Option<(StoredMessage, Vec<String>)>, StoreError> {
        if let Some(e) = self.recent.get(mid) {
            return Ok(Some((e.message.clone(), e.recipients.clone())));
        }
        let Some(message) = self.message(mid).await? else {
            return Ok(None);
        };
        let recipients = self
            .queue_rows(mid)
            .await?
            .into_iter()
            .filter(|r| r.kind == QueueKind::Deliver.as_str())
            .map(|r| r.recipient)
            .collect();
        Ok(Some((message, recipients)))
    }

    pub async fn message(&self, mid: Mid) -> Result<Option<StoredMessage>, StoreError> {
        if let Some(e) = self.recent.get(mid) {
            return Ok(Some(e.message.clone()));
        }
        let row = sqlx::query(
                        "SELECT mid, icid, received_at, sender, remote_ip, message_id, subject, policy, body FROM messages WHERE mid = ?1",
        )
        .bind(mid.0 as i64)
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            None => None,
            Some(r) => Some(StoredMessage {
                mid: Mid(r.try_get::<i64, _>("mid")? as u64),
                icid: r.try_get::<i64, _>("icid")? as u64,
                received_at: r.try_get("received_at")?,
                sender: r.try_get("sender")?,
                remote_ip: r.try_get("remote_ip")?,
                message_id: r.try_get("message_id")?,
                subject: r.try_get("subject")?,
                policy: r.try_get("policy")?,
                body: r.try_get::<Vec<u8>, _>("body")?.into(),
            }),
        })
    }

    /// All messages' MIDs, oldest first.
    pub async fn mids(&self) -> Result<Vec<Mid>, StoreError> {
        let rows: Vec<i64> = sqlx::query_scalar("SELECT mid FROM messages ORDER BY mid")
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().map(|m| Mid(m as u64)).collect())
    }

    /// Queue rows of one message.
    pub async fn queue_rows(&self, mid: Mid) -> Result<Vec<QueueRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, mid, rcpt_idx, recipient, queue_name, kind, state, attempts FROM queue WHERE mid = ?1 ORDER BY id",
        )
        .bind(mid.0 as i64)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(QueueRow {
                    id: r.try_get("id")?,
                    mid: Mid(r.try_get::<i64, _>("mid")? as u64),
                    rcpt_idx: r.try_get::<i64, _>("rcpt_idx")? as u32,
                    recipient: r.try_get("recipient")?,
                    queue_name: r.try_get("queue_name")?,
                    kind: r.try_get("kind")?,
                    state: r.try_get("state")?,
                    attempts: r.try_get::<i64, _>("attempts")? as u32,
                })
            })
            .collect()
    }

    /// Number of queue rows still waiting for delivery.
    pub async fn queued_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM queue WHERE state = 'queued'")
            .fetch_one(self.pool())
            .await?;
        Ok(n as u64)
    }

    /// Tracking events of one message, in order.
    pub async fn tracking(&self, mid: Mid) -> Result<Vec<TrackingEvent>, StoreError> {
        let rows = sqlx::query("SELECT at, text FROM tracking WHERE mid = ?1 ORDER BY id")
            .bind(mid.0 as i64)
            .fetch_all(self.pool())
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(TrackingEvent {
                    at: r.try_get("at")?,
                    text: r.try_get("text")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::temp_store;

    fn message(mid: Mid, n_rcpts: u32) -> NewMessage {
        NewMessage {
            mid,
            icid: 7,
            sender: "a@example.org".into(),
            remote_ip: "127.0.0.1".into(),
            helo: "client".into(),
            sender_group: "LOOPBACK".into(),
            relayed: false,
            policy: "DEFAULT".into(),
            verdict: "deliver".into(),
            findings: String::new(),
            spam: None,
            virus: None,
            tls: None,
            message_id: Some("<id@x>".into()),
            subject: Some("hi".into()),
            body: b"Subject: hi\r\n\r\nbody\r\n".to_vec(),
            recipients: (0..n_rcpts)
                .map(|i| NewRecipient {
                    rcpt_idx: i,
                    recipient: format!("u{i}@example.com"),
                    queue_name: "example.com".into(),
                    kind: QueueKind::Deliver,
                    state: RowState::Queued,
                })
                .collect(),
            tracking: vec!["Message received".into()],
        }
    }

    #[tokio::test]
    async fn recent_messages_read_from_memory_equal_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let store = Store::open(&path).await.unwrap();
        let mid = store.next_mid().await.unwrap();
        let mut m = message(mid, 3);
        m.recipients.push(NewRecipient {
            rcpt_idx: 3,
            recipient: "journal@intake.test".into(),
            queue_name: "the.tdc.queue".into(),
            kind: QueueKind::Journal,
            state: RowState::Queued,
        });
        store.accept(m).await.unwrap();
        let (cached, rcpts) = store.message_with_recipients(mid).await.unwrap().unwrap();
        // A second store on the same file has nothing in memory: it reads the database.
        let other = Store::open(&path).await.unwrap();
        let (stored, db_rcpts) = other.message_with_recipients(mid).await.unwrap().unwrap();
        assert_eq!(
            rcpts,
            ["u0@example.com", "u1@example.com", "u2@example.com"]
        );
        assert_eq!(db_rcpts, rcpts, "journal rows are not recipients");
        assert_eq!(
            (
                cached.mid,
                cached.icid,
                cached.received_at,
                &cached.sender,
                &cached.body
            ),
            (
                stored.mid,
                stored.icid,
                stored.received_at,
                &stored.sender,
                &stored.body
            )
        );
        assert_eq!(
            (
                &cached.remote_ip,
                &cached.message_id,
                &cached.subject,
                &cached.policy
            ),
            (
                &stored.remote_ip,
                &stored.message_id,
                &stored.subject,
                &stored.policy
            )
        );
        assert!(other.message(Mid(9999)).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn concurrent_accepts_are_all_committed() {
        let (_dir, store) = temp_store().await;
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mid = store.next_mid().await.unwrap();
                store.accept(message(mid, 2)).await.unwrap();
                mid
            }));
        }
        let mut mids = Vec::new();
        for t in tasks {
            mids.push(t.await.unwrap());
        }
        assert_eq!(store.queued_count().await.unwrap(), 100);
        let stored = store.message(mids[3]).await.unwrap().unwrap();
        assert_eq!(stored.body, &b"Subject: hi\r\n\r\nbody\r\n"[..]);
        assert_eq!(store.queue_rows(mids[3]).await.unwrap().len(), 2);
        assert_eq!(
            store.tracking(mids[3]).await.unwrap()[0].text,
            "Message received"
        );
    }

    #[tokio::test]
    async fn a_failing_message_does_not_fail_its_batch() {
        let (_dir, store) = temp_store().await;
        let mid = store.next_mid().await.unwrap();
        store.accept(message(mid, 1)).await.unwrap();
        // The same MID again violates the primary key; others in flight must still commit.
        let dup = store.accept(message(mid, 1));
        let mid2 = store.next_mid().await.unwrap();
        let ok = store.accept(message(mid2, 1));
        let (dup, ok) = tokio::join!(dup, ok);
        assert!(dup.is_err());
        ok.unwrap();
        assert_eq!(store.mids().await.unwrap(), vec![mid, mid2]);
        // Nothing half-written: the failed duplicate added no queue rows.
        assert_eq!(store.queued_count().await.unwrap(), 2);
    }
}

/// A message tracking search; all given fields must match (substrings, case-insensitive).
#[derive(Debug, Clone, Default)]
pub struct TrackFilter {
    pub mid: Option<Mid>,
    pub sender: Option<String>,
    pub recipient: Option<String>,
    pub subject: Option<String>,
    /// Received at or after (unix seconds).
    pub since: Option<i64>,
    /// Received before (unix seconds).
    pub until: Option<i64>,
    pub limit: u32,
}

/// One message with its tracking events.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub mid: Mid,
    pub sender: String,
    pub recipients: Vec<String>,
    pub subject: Option<String>,
    pub message_id: Option<String>,
    pub received_at: i64,
    pub events: Vec<TrackingEvent>,
}

impl Store {
    /// Message tracking: messages matching `filter`, newest first, with their events.
    pub async fn track(&self, filter: &TrackFilter) -> Result<Vec<Tracked>, StoreError> {
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
        let rows = sqlx::query(
            "SELECT m.mid, m.sender, m.subject, m.message_id, m.received_at FROM messages m \
             WHERE (?1 IS NULL OR m.mid = ?1) \
             AND (?2 IS NULL OR m.sender LIKE ?2 ESCAPE '\\') \
             AND (?3 IS NULL OR EXISTS (SELECT 1 FROM queue q WHERE q.mid = m.mid AND q.recipient LIKE ?3 ESCAPE '\\')) \
             AND (?4 IS NULL OR m.subject LIKE ?4 ESCAPE '\\') \
             AND (?6 IS NULL OR m.received_at >= ?6) AND (?7 IS NULL OR m.received_at < ?7) \
             ORDER BY m.mid DESC LIMIT ?5",
        )
        .bind(filter.mid.map(|m| m.0 as i64))
        .bind(like(&filter.sender))
        .bind(like(&filter.recipient))
        .bind(like(&filter.subject))
        .bind(filter.limit.max(1))
        .bind(filter.since)
        .bind(filter.until)
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let mid = Mid(r.try_get::<i64, _>("mid")? as u64);
            let recipients: Vec<String> = sqlx::query_scalar(
                "SELECT recipient FROM queue WHERE mid = ?1 AND kind = 'deliver' ORDER BY rcpt_idx",
            )
            .bind(mid.0 as i64)
            .fetch_all(self.pool())
            .await?;
            out.push(Tracked {
                mid,
                sender: r.try_get("sender")?,
                recipients,
                subject: r.try_get("subject")?,
                message_id: r.try_get("message_id")?,
                received_at: r.try_get("received_at")?,
                events: self.tracking(mid).await?,
            });
        }
        Ok(out)
    }
}
