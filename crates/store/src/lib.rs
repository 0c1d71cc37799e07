//! The store: one SQLite database (WAL) holding messages, queue rows, tracking events, runtime
//! settings, accounts and ID counters. This is the only crate with SQL in it.
//!
//! Accepting a message goes through [`Store::accept`], and recording a delivery attempt through
//! [`Store::record_attempt`]; both hand their write to a single writer task. The writer commits
//! whatever is waiting in *one* transaction (group commit): with `synchronous = FULL`, each commit
//! costs one fsync of the WAL however many messages it carries, so concurrent sessions share
//! fsyncs instead of queueing behind one each, and delivery workers never contend for SQLite's
//! write lock. `accept` returns only after that commit, which is when the session may answer `250`.

mod admin;
mod alerts;
mod audit;
mod central;
mod hosts;
mod ids;
mod ledger;
mod messages;
mod metrics;
mod pending;
mod quarantine;
mod queue;
mod reports;
mod retention;
mod sessions;
mod settings;
mod shipping;
mod spool;
mod tracking;
mod users;
mod writer;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, SqlitePool};
use tokio::sync::{mpsc, oneshot};

pub use admin::{Bucket, Totals};
pub use alerts::AlertRecord;
pub use audit::{Audit, AuditEntry};
pub use central::{
    ClusterHealth, ClusterListener, ClusterOptions, HEARTBEAT_HOSTS, NodeInfo, NodeRow, Pulled,
};
pub use hosts::{HostDelta, HostDetail, HostRow, IntakeRow};
pub use ids::{Dcid, Icid, Mid};
pub use ledger::{LedgerCounts, LedgerEntry};
pub use messages::{
    NewMessage, NewMessageRef, NewRecipient, QueueKind, QueueRow, RowState, StoredMessage,
};
pub use metrics::{HostMetrics, PolicyCount};
pub use quarantine::Quarantined;
pub use queue::{Claimed, Outcome, RowOutcome};
pub use reports::{Report, ReportBucket, ReportRange, Series, TopEntry, TopList};
pub use retention::Pruned;
pub use sessions::Session;
pub use shipping::{NodeTracked, Shipped};
pub use tracking::{TrackEvent, TrackFilter, Tracked, TrackingEvent};
pub use users::{Role, User};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored settings are invalid: {0}")]
    Settings(String),
    #[error("the store is shutting down")]
    Closed,
    #[error("{0}")]
    NotDurable(String),
    /// A message body in the spool directory could not be written, read or removed.
    #[error("message spool: {0}")]
    Spool(String),
    #[error(
        "the settings changed meanwhile (generation {current}, this change was based on {expected}); read them again and redo the change"
    )]
    Stale { expected: i64, current: i64 },
    #[error("{0}")]
    Conflict(String),
    /// Cluster mode: the cluster database cannot be reached. Mail is not affected; changes of
    /// the shared state (settings, accounts) are refused until it is back.
    #[error(
        "the cluster database is unreachable ({0}): configuration changes are refused until it is back; mail keeps flowing with the settings in force"
    )]
    Unavailable(String),
}

/// Messages committed together at most, so one huge burst cannot hold the write lock for long.
const MAX_BATCH: usize = 256;

/// A handle to the store; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    writer: mpsc::Sender<writer::Job>,
    ids: std::sync::Arc<ids::Allocators>,
    /// Signalled after every commit of new messages, so the delivery scheduler wakes at once.
    queued: std::sync::Arc<tokio::sync::Notify>,
    /// Messages accepted lately, so that delivery and journaling need not read them back.
    recent: std::sync::Arc<messages::Recent>,
    /// Cluster mode: the shared settings, accounts and audit log in PostgreSQL.
    central: Option<std::sync::Arc<central::Central>>,
    /// Where large message bodies live (`rampart.spool/` beside the database).
    spool: std::sync::Arc<spool::Spool>,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, None).await
    }

    /// [`Store::open`], in cluster mode with `cluster`: the settings, accounts, audit log and
    /// staged changes are then the cluster database's (see `central.rs`). PostgreSQL is not
    /// contacted here; [`Store::cluster_join`] does that.
    pub async fn open_with(
        path: &Path,
        cluster: Option<&ClusterOptions>,
    ) -> Result<Store, StoreError> {
        let central = match cluster {
            Some(options) => Some(std::sync::Arc::new(central::Central::new(options)?)),
            None => None,
        };
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL for the pool (counters, settings) and for the writer's batches that carry only
            // delivery outcomes: in WAL mode a commit
            // survives a crash of the process, and the next FULL commit of the writer makes it
            // survive a power cut too. Losing a "delivered" mark to a power cut means one duplicate
            // delivery, never a lost message.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .disable_statement_logging();
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("../../migrations").run(&pool).await?;
        // FULL for the accept path: a commit is on disk when it returns; a `250` must survive a
        // power cut.
        //
        // The writer checkpoints itself (SQLite's automatic checkpoint, every 1,000 WAL pages):
        // measured against a checkpoint task beside the writer, that task gave ~10 % more
        // messages per second at 100 KiB but a commit whose WAL fsync met the task's database
        // fsync waited 200–400 ms; here the cost is spread evenly (p99 31–34 ms, max ≤ 62 ms).
        let conn = options
            .clone()
            .synchronous(SqliteSynchronous::Full)
            .connect()
            .await?;
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        let queued = std::sync::Arc::new(tokio::sync::Notify::new());
        let recent = std::sync::Arc::new(messages::Recent::default());
        tokio::spawn(writer::writer(conn, rx, queued.clone(), recent.clone()));
        Ok(Store {
            ids: std::sync::Arc::new(ids::Allocators::default()),
            pool,
            writer: tx,
            queued,
            recent,
            central,
            spool: std::sync::Arc::new(spool::Spool::beside(path)),
        })
    }

    /// Durably stores an accepted message with all its queue rows and tracking events, in one
    /// transaction shared with whatever other messages are being accepted at the same moment.
    pub async fn accept(&self, message: NewMessage) -> Result<(), StoreError> {
        self.accept_all(vec![message]).await
    }

    /// Like [`Store::accept`] for the several MIDs one SMTP transaction became (policy splits):
    /// all of them or none.
    ///
    /// Large bodies are written to the spool and synced first, here on the session's side and
    /// in parallel with other sessions; the writer's commit then only records that they are
    /// there (see `spool.rs`).
    pub async fn accept_all(&self, messages: Vec<NewMessage>) -> Result<(), StoreError> {
        let in_files: Vec<Mid> = messages
            .iter()
            .filter(|m| m.body.len() >= spool::IN_FILE_FROM)
            .map(|m| m.mid)
            .collect();
        let messages = if in_files.is_empty() {
            messages
        } else {
            let spool = self.spool.clone();
            let files: Vec<(usize, spool::SpoolFile)> = messages
                .iter()
                .enumerate()
                .filter(|(_, m)| m.body.len() >= spool::IN_FILE_FROM)
                .map(|(i, m)| (i, spool.file(m.mid)))
                .collect();
            let written = tokio::task::spawn_blocking(move || {
                // Stops at the first failure; `Spool::write` removes a file it created and
                // could not finish, so only the ones before it are left to remove.
                let mut done = Vec::new();
                for (i, file) in &files {
                    let body = messages.get(*i).map_or(&[][..], |m| &m.body[..]);
                    if let Err(e) = spool.write(file, body) {
                        return (messages, done, Err(e));
                    }
                    done.push(file.mid());
                }
                (messages, done, Ok(()))
            })
            .await;
            match written {
                Ok((messages, _, Ok(()))) => messages,
                Ok((_, done, Err(e))) => {
                    self.remove_spooled(done).await;
                    return Err(StoreError::Spool(format!(
                        "cannot write the message body: {e}"
                    )));
                }
                // The task panicked: which files it made is unknown, and a file of another
                // message cannot have these MIDs, so all of them go.
                Err(e) => {
                    self.remove_spooled(in_files).await;
                    return Err(StoreError::Spool(format!("spool task failed: {e}")));
                }
            }
        };
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(writer::Job::Accept {
                messages,
                in_files: in_files.clone(),
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                // Not committed: no row refers to the files.
                self.remove_spooled(in_files).await;
                Err(e)
            }
            // The writer went away without an answer: whether it committed is unknown, so the
            // files stay; the sweep at the next start removes them if their rows are not there.
            Err(_) => Err(StoreError::Closed),
        }
    }

    /// Removes the spool files of messages that were not committed (best effort: a file left
    /// behind is removed by the sweep at the next start).
    async fn remove_spooled(&self, mids: Vec<Mid>) {
        if mids.is_empty() {
            return;
        }
        let files: Vec<spool::SpoolFile> = mids.iter().map(|&m| self.spool.file(m)).collect();
        if let Err(e) = spool::blocking(move || spool::Spool::remove(&files)).await {
            tracing::warn!(error = %e, "spool: cannot remove the files of messages that were not accepted");
        }
    }

    /// The next message ID; never repeats, across restarts too.
    pub async fn next_mid(&self) -> Result<Mid, StoreError> {
        self.ids.next(&self.pool, ids::Kind::Mid).await.map(Mid)
    }

    /// The next injection connection ID.
    pub async fn next_icid(&self) -> Result<Icid, StoreError> {
        self.ids.next(&self.pool, ids::Kind::Icid).await.map(Icid)
    }

    /// The next delivery connection ID.
    pub async fn next_dcid(&self) -> Result<Dcid, StoreError> {
        self.ids.next(&self.pool, ids::Kind::Dcid).await.map(Dcid)
    }

    /// Notified whenever new queue rows were committed.
    pub fn queued_notify(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.queued.clone()
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes the pool after the writer has finished what it was given.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Rows per multi-row INSERT: SQLite allows 32,766 bound parameters in one statement.
pub(crate) const ROWS_PER_INSERT: usize = 500;

/// `(?, ?, ?), (?, ?, ?), …` for `rows` rows of `cols` parameters, bound row by row.
pub(crate) fn placeholders(rows: usize, cols: usize) -> String {
    let row = format!("({})", params(cols));
    vec![row; rows].join(", ")
}

/// `n` anonymous parameters, `?, ?, ?`, bound in order.
///
/// Never `?NNN` in a statement with many parameters: SQLite keeps numbered parameters in a list
/// it searches linearly, and sqlx asks for every parameter's name when it binds, so a multi-row
/// INSERT of a few hundred numbered parameters cost time quadratic in its size (3.4 % of the
/// appliance's CPU at 4 KiB, all of it on the writer's thread, before this).
pub(crate) fn params(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Current unix time in seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Current unix time in milliseconds.
pub fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) async fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("rampart.db")).await.unwrap();
        (dir, store)
    }

    /// A message from a@example.org to `n_rcpts` recipients u0@, u1@… of example.com.
    pub(crate) fn new_message(mid: Mid, n_rcpts: u32) -> NewMessage {
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
            threats: vec![],
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

    /// Creates account `name` (the sessions and pending changes of a user need one).
    pub(crate) async fn user(store: &Store, name: &str, role: Role) {
        store
            .put_user(&User {
                name: name.into(),
                password_hash: "x".into(),
                role,
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn ids_never_repeat_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rampart.db");
        let store = Store::open(&path).await.unwrap();
        let a = store.next_mid().await.unwrap();
        let b = store.next_mid().await.unwrap();
        assert!(b.0 > a.0);
        let i = store.next_icid().await.unwrap();
        store.close().await;
        drop(store);
        let store = Store::open(&path).await.unwrap();
        let c = store.next_mid().await.unwrap();
        assert!(c.0 > b.0, "{c:?} after {b:?}");
        assert!(store.next_icid().await.unwrap().0 > i.0);
    }
}
