//! The group-commit writer: one task holds SQLite's write lock and commits accepted messages,
//! delivery outcomes, claims and host changes in batches, so nothing waits in SQLite's busy
//! handler and a burst of work costs one fsync. It sits on top of the table modules
//! (`messages`, `queue`, `hosts`, `tracking`), which hold the SQL and never call it: the
//! `Store` methods that hand work to the writer are here.

use sqlx::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use crate::hosts::{HostChange, HostDelta};
use crate::messages::{NewMessage, Recent, insert_messages};
use crate::queue::{Attempt, Claimed, RowOutcome};
use crate::{MAX_BATCH, Mid, Store, StoreError, unix_now};

/// Work for the writer task. Every write to the queue goes through it, so that one connection
/// holds SQLite's write lock and nothing waits in SQLite's busy handler.
pub(crate) enum Job {
    /// Accepted messages (the batch then commits with `synchronous = FULL`).
    Accept {
        messages: Vec<NewMessage>,
        /// The messages whose bodies are already in the spool (their rows say so).
        in_files: Vec<Mid>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// The outcome of a delivery attempt; answered with the MIDs it finished.
    Attempt {
        attempt: Box<Attempt>,
        reply: oneshot::Sender<Result<Vec<Mid>, StoreError>>,
    },
    /// Lease due queue rows for delivery; answered after the lease is committed.
    Claim {
        lease_secs: i64,
        limit: u32,
        reply: oneshot::Sender<Result<Vec<Claimed>, StoreError>>,
    },
    /// A change of a host's connection count or down flag; nobody waits for it.
    Host(HostChange),
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
    /// Whether someone waits for this job's commit (a session for its `250`, a worker or the
    /// scheduler for its answer).
    fn awaited(&self) -> bool {
        match self {
            Job::Accept { .. } | Job::Attempt { .. } | Job::Claim { .. } => true,
            Job::Host(_) | Job::Unlease(_) => false,
        }
    }

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
    Claimed(Vec<Claimed>),
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
        take_waiting(&mut rx, &mut batch);
        // Work nobody waits for (connection counts, a host's down flag, given-back leases)
        // rides with the next commit somebody does wait for, or goes on its own after
        // `LINGER`: at a few messages a second each connection opened and closed was a
        // commit of its own, most of the writer's transactions.
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < MAX_BATCH && !batch.iter().any(Job::awaited) {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(job)) => {
                    batch.push(job);
                    take_waiting(&mut rx, &mut batch);
                }
                // Closed (shutting down) or the time is up: commit what there is.
                Ok(None) | Err(_) => break,
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

/// Longest a batch of work nobody waits for is held back for company (see [`writer`]).
const LINGER: std::time::Duration = std::time::Duration::from_millis(200);

/// Adds the jobs already waiting to `batch`, up to [`MAX_BATCH`].
fn take_waiting(rx: &mut mpsc::Receiver<Job>, batch: &mut Vec<Job>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

/// Answers a committed (or failed) job; committed messages go to the memory cache.
fn answer(job: Job, done: Result<Done, StoreError>, recent: &Recent, now: i64) {
    match job {
        Job::Accept {
            messages, reply, ..
        } => {
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
    let mut new: Vec<(&NewMessage, bool)> = Vec::new();
    let mut attempts: Vec<&Attempt> = Vec::new();
    let mut hosts: Vec<&HostChange> = Vec::new();
    let mut unlease: Vec<i64> = Vec::new();
    for job in jobs {
        match job {
            Job::Accept {
                messages, in_files, ..
            } => new.extend(messages.iter().map(|m| (m, in_files.contains(&m.mid)))),
            Job::Attempt { attempt, .. } => {
                // A DSN is written by the writer itself, so its body stays in the database.
                new.extend(attempt.dsn.iter().map(|m| (m, false)));
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
    crate::hosts::apply_host_changes(&mut tx, &hosts).await?;
    tx.commit().await?;
    Ok(done)
}

/// What goes through the writer: claims, attempt outcomes, lease returns and host counter
/// changes, each applied with the writer's next commit.
impl Store {
    /// Claims up to `limit` due rows, leasing them for `lease_secs`. The writer task commits the
    /// lease (with whatever else it is writing) before the rows are handed out.
    pub async fn claim_due(&self, lease_secs: i64, limit: u32) -> Result<Vec<Claimed>, StoreError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.writer
            .send(Job::Claim {
                lease_secs,
                limit,
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
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
            .send(Job::Attempt { attempt, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
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
            .send(Job::Host(change))
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// Gives back the lease of claimed rows the scheduler could not take because their previous
    /// attempt was still being answered: they are due again at once (not after the lease).
    /// Applied with the writer's next commit; the caller does not wait for it.
    pub async fn unlease(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        self.writer
            .send(Job::Unlease(ids))
            .await
            .map_err(|_| StoreError::Closed)
    }
}
