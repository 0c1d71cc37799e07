//! Cluster mode (`[cluster] database_url`): the part of the state every node shares, in
//! PostgreSQL — the runtime settings, the accounts, the audit log and the staged UI changes.
//!
//! Writes go to PostgreSQL (each with a generation bump and a `NOTIFY`); reads of what is in
//! force come from the node's own SQLite copy, which the node's follower keeps current
//! ([`Store::cluster_pull`]). So a node starts and runs on its last copy while PostgreSQL is
//! unreachable, and only changes are refused then ([`StoreError::Unavailable`]). Mail never
//! touches PostgreSQL: a `250` stays a local fsync.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rampart_settings::Settings;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{Postgres, Row, Transaction};

use crate::audit::{Audit, AuditEntry};
use crate::users::User;
use crate::{Store, StoreError, unix_now};

/// The channel nodes listen on; the payload names what changed (`settings` or `users`).
const CHANNEL: &str = "rampart_cluster";
/// Longest one exchange with PostgreSQL may take: a cut network must not hang a form or the CLI.
const EXCHANGE: Duration = Duration::from_secs(5);

/// How to reach the cluster database, and this node's name in it.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub database_url: String,
    pub node_name: String,
}

/// This node's view of the cluster database, for *System Status* and the *Cluster* page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterHealth {
    pub node: String,
    /// `host:port/database`, without credentials.
    pub database: String,
    pub reachable: bool,
    /// When `reachable` last changed (unix seconds).
    pub since: i64,
    pub error: Option<String>,
    /// The settings generation this node has in force (`-1` before its first).
    pub settings_generation: i64,
}

/// A node as its last heartbeat described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    pub name: String,
    pub version: String,
    pub smtp: String,
    pub web: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
    pub settings_generation: i64,
    /// Tracking events not yet shipped to the cluster database.
    pub outbox: i64,
    /// Its System Status counters as of its heartbeat.
    pub totals: crate::Totals,
    /// Its busiest `tophosts` rows (at most [`HEARTBEAT_HOSTS`]) as of its heartbeat.
    pub hosts: Vec<crate::HostRow>,
}

/// `tophosts` rows a heartbeat carries at most: the busiest by active recipients, then
/// delivered. Beyond them a destination shows in its own node's `tophosts` only.
pub const HEARTBEAT_HOSTS: usize = 500;

/// What a heartbeat carries besides the node's description.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
struct Stats {
    totals: crate::Totals,
    hosts: Vec<crate::HostRow>,
}

/// What a node says about itself in its heartbeat.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub version: String,
    pub smtp: String,
    pub web: String,
    pub started_at: i64,
}

/// What [`Store::cluster_pull`] brought in.
#[derive(Debug, Default)]
pub struct Pulled {
    /// New settings and their generation, now also in the local copy.
    pub settings: Option<(Settings, i64)>,
    /// The accounts' generation, when the local accounts were replaced.
    pub users: Option<i64>,
}

/// Notifications from the cluster database.
pub struct ClusterListener(PgListener);

impl std::fmt::Debug for ClusterListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterListener")
    }
}

impl ClusterListener {
    /// Waits for the next change. `Ok(false)`: the connection was lost and is re-established
    /// on the next call, so notifications may have been missed (pull everything).
    pub async fn changed(&mut self) -> Result<bool, StoreError> {
        match self.0.try_recv().await {
            Ok(Some(_)) => Ok(true),
            Ok(None) => Ok(false),
            Err(e) => Err(classify(e)),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Central {
    pub(crate) pool: PgPool,
    pub(crate) node: String,
    health: Mutex<ClusterHealth>,
    /// The last exchange found the database unreachable (see [`Central::run`]).
    tripped: AtomicBool,
    /// This process has applied the database's migrations.
    migrated: AtomicBool,
}

/// Errors that mean "PostgreSQL cannot be reached" become [`StoreError::Unavailable`].
fn classify(e: sqlx::Error) -> StoreError {
    let down = match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // Class 08: connection exceptions; 57P: the server is shutting down or starting.
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    };
    if down {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Db(e)
    }
}

impl Central {
    pub(crate) fn new(options: &ClusterOptions) -> Result<Central, StoreError> {
        let connect: PgConnectOptions = options
            .database_url
            .parse()
            .map_err(|e| StoreError::Settings(format!("cluster.database_url: {e}")))?;
        let connect = connect.application_name(&format!("rampart {}", options.node_name));
        let database = format!(
            "{}:{}/{}",
            connect.get_host(),
            connect.get_port(),
            connect.get_database().unwrap_or_default()
        );
        // Lazy: a node starts whether or not PostgreSQL answers; each use waits at most
        // `EXCHANGE` for a connection.
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            .acquire_timeout(EXCHANGE)
            .idle_timeout(Duration::from_secs(60))
            .connect_lazy_with(connect);
        Ok(Central {
            pool,
            node: options.node_name.clone(),
            tripped: AtomicBool::new(false),
            migrated: AtomicBool::new(false),
            health: Mutex::new(ClusterHealth {
                node: options.node_name.clone(),
                database,
                reachable: false,
                since: unix_now(),
                error: Some("not connected yet".into()),
                settings_generation: -1,
            }),
        })
    }

    /// Runs one exchange within [`EXCHANGE`], classifying its error and keeping the health.
    /// Once the database was found unreachable, answers at once instead of making every
    /// form and API call wait out a connection attempt, until a [`Central::probe`] (the
    /// follower's, every few seconds) reaches it again.
    pub(crate) async fn run<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        if self.tripped.load(Ordering::Relaxed) {
            let why = self.health().error.unwrap_or_else(|| "no answer".into());
            return Err(StoreError::Unavailable(why));
        }
        self.probe(work).await
    }

    /// [`Central::run`] even while the database is known to be unreachable.
    async fn probe<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        // Whatever process talks to the database first (a node, or the CLI before any node
        // started) brings its tables up to date.
        let migrated = if self.migrated.load(Ordering::Relaxed) {
            Ok(())
        } else {
            self.migrate().await
        };
        let result = match migrated {
            Err(e) => Err(e),
            Ok(()) => match tokio::time::timeout(EXCHANGE, work).await {
                Ok(r) => r.map_err(classify),
                Err(_) => Err(StoreError::Unavailable(format!(
                    "no answer within {} s",
                    EXCHANGE.as_secs()
                ))),
            },
        };
        match &result {
            Ok(_) => {
                self.tripped.store(false, Ordering::Relaxed);
                self.set_reachable(None);
            }
            Err(StoreError::Unavailable(why)) => {
                self.tripped.store(true, Ordering::Relaxed);
                self.set_reachable(Some(why.clone()));
            }
            Err(_) => {}
        }
        result
    }

    fn set_reachable(&self, error: Option<String>) {
        if let Ok(mut h) = self.health.lock() {
            let reachable = error.is_none();
            if h.reachable != reachable {
                h.since = unix_now();
                if reachable {
                    tracing::info!(database = %h.database, "cluster database reachable");
                } else {
                    tracing::error!(database = %h.database, error = ?error, "cluster database unreachable");
                }
            }
            h.reachable = reachable;
            h.error = error;
        }
    }

    fn health(&self) -> ClusterHealth {
        self.health
            .lock()
            .map(|h| h.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        // Nodes starting together are safe: sqlx takes an advisory lock around migrations.
        let result = tokio::time::timeout(
            EXCHANGE * 6,
            sqlx::migrate!("../../migrations/postgres").run(&self.pool),
        )
        .await;
        match result {
            Ok(Ok(())) => {
                self.migrated.store(true, Ordering::Relaxed);
                Ok(())
            }
            Ok(Err(
                sqlx::migrate::MigrateError::Execute(e)
                | sqlx::migrate::MigrateError::ExecuteMigration(e, _),
            )) => Err(classify(e)),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(StoreError::Unavailable("migrations did not finish".into())),
        }
    }

    pub(crate) async fn generations(&self) -> Result<(i64, i64), StoreError> {
        self.run(async {
            let r = sqlx::query(
                "SELECT settings_generation, users_generation FROM cluster_meta WHERE id = 1",
            )
            .fetch_one(&self.pool)
            .await?;
            Ok((r.try_get(0)?, r.try_get(1)?))
        })
        .await
    }

    /// The settings rows with their generation, read so that no writer is half-way.
    pub(crate) async fn settings_rows(&self) -> Result<(Vec<(String, String)>, i64), StoreError> {
        self.run(async {
            let mut tx = self.pool.begin().await?;
            // FOR SHARE waits for a writer holding the row FOR UPDATE (see `save_settings`).
            let generation: i64 = sqlx::query_scalar(
                "SELECT settings_generation FROM cluster_meta WHERE id = 1 FOR SHARE",
            )
            .fetch_one(&mut *tx)
            .await?;
            let rows = sqlx::query("SELECT name, value FROM settings")
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            let rows = rows
                .into_iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<Vec<(String, String)>, sqlx::Error>>()?;
            Ok((rows, generation))
        })
        .await
    }

    pub(crate) async fn settings_at(&self) -> Result<(Settings, i64), StoreError> {
        let (rows, generation) = self.settings_rows().await?;
        Ok((crate::settings::settings_from_rows(&rows)?, generation))
    }

    pub(crate) async fn save_settings(
        &self,
        settings: &Settings,
        audit: &Audit,
        clear_pending_of: Option<&str>,
        expected: Option<i64>,
    ) -> Result<i64, StoreError> {
        let mut docs = Vec::new();
        for table in rampart_settings::TABLES {
            let json = settings
                .table_json(table)
                .ok_or_else(|| StoreError::Settings(format!("cannot serialise {table}")))?;
            docs.push((*table, json.to_string()));
        }
        let saved = self
            .run(async {
                let mut tx = self.pool.begin().await?;
                let current: i64 = sqlx::query_scalar(
                    "SELECT settings_generation FROM cluster_meta WHERE id = 1 FOR UPDATE",
                )
                .fetch_one(&mut *tx)
                .await?;
                if let Some(expected) = expected
                    && current != expected
                {
                    return Ok(Err((expected, current)));
                }
                self.insert_audit(&mut tx, audit).await?;
                if let Some(user) = clear_pending_of {
                    clear_pending(&mut tx, user).await?;
                }
                for (table, json) in &docs {
                    sqlx::query(
                        "INSERT INTO settings (name, value) VALUES ($1, $2) \
                         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    )
                    .bind(table)
                    .bind(json)
                    .execute(&mut *tx)
                    .await?;
                }
                let generation: i64 = sqlx::query_scalar(
                    "UPDATE cluster_meta SET settings_generation = settings_generation + 1 \
                     WHERE id = 1 RETURNING settings_generation",
                )
                .fetch_one(&mut *tx)
                .await?;
                // Delivered to the listeners when the transaction commits, not before.
                sqlx::query("SELECT pg_notify($1, 'settings')")
                    .bind(CHANNEL)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Ok(generation))
            })
            .await?;
        saved.map_err(|(expected, current)| StoreError::Stale { expected, current })
    }

    async fn insert_audit(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        audit: &Audit,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO audit_log (at, node, \"user\", source, comment, changes) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(unix_now())
        .bind(&self.node)
        .bind(&audit.user)
        .bind(&audit.source)
        .bind(&audit.comment)
        .bind(audit.changes.join("\n"))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub(crate) async fn audit(&self, audit: &Audit) -> Result<(), StoreError> {
        self.run(async {
            let mut tx = self.pool.begin().await?;
            self.insert_audit(&mut tx, audit).await?;
            tx.commit().await
        })
        .await
    }

    pub(crate) async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        self.run(async {
            let rows = sqlx::query(
                "SELECT id, at, node, \"user\", source, comment, changes FROM audit_log \
                 ORDER BY id DESC LIMIT $1",
            )
            .bind(i64::from(limit.max(1)))
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| crate::audit::audit_row(r, Some(r.try_get("node")?)))
                .collect()
        })
        .await
    }

    async fn users(&self) -> Result<Vec<(User, i64)>, StoreError> {
        self.run(async {
            let rows = sqlx::query(
                "SELECT name, password_hash, role, created_at FROM users ORDER BY name",
            )
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(crate::users::user_row).collect()
        })
        .await
    }

    /// Creates or changes an account; with `only_first`, only when there is no account yet
    /// (the first start's `admin`, which nodes starting together must not each create).
    /// Answers whether it was written.
    pub(crate) async fn put_user(&self, user: &User, only_first: bool) -> Result<bool, StoreError> {
        self.run(async {
            let mut tx = self.pool.begin().await?;
            // Serialises account changes with each other and with the generation bump.
            sqlx::query("SELECT 1 FROM cluster_meta WHERE id = 1 FOR UPDATE")
                .execute(&mut *tx)
                .await?;
            if only_first {
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
                    .fetch_one(&mut *tx)
                    .await?;
                if n > 0 {
                    return Ok(false);
                }
            }
            sqlx::query(
                "INSERT INTO users (name, password_hash, role, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role",
            )
            .bind(&user.name)
            .bind(&user.password_hash)
            .bind(user.role.as_str())
            .bind(unix_now())
            .execute(&mut *tx)
            .await?;
            bump_users(&mut tx).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    pub(crate) async fn delete_user(&self, name: &str) -> Result<bool, StoreError> {
        self.run(async {
            let mut tx = self.pool.begin().await?;
            let n = sqlx::query("DELETE FROM users WHERE name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n > 0 {
                bump_users(&mut tx).await?;
            }
            tx.commit().await?;
            Ok(n > 0)
        })
        .await
    }

    pub(crate) async fn pending_pairs(
        &self,
        sql: &'static str,
        user: &str,
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        self.run(async {
            let rows = sqlx::query(sql).bind(user).fetch_all(&self.pool).await?;
            rows.into_iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect()
        })
        .await
    }

    pub(crate) async fn pending_changes(
        &self,
        user: &str,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        self.run(async {
            let rows = sqlx::query(
                "SELECT at, description FROM pending_changes WHERE \"user\" = $1 ORDER BY id",
            )
            .bind(user)
            .fetch_all(&self.pool)
            .await?;
            rows.into_iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect()
        })
        .await
    }

    pub(crate) async fn put_pending(
        &self,
        user: &str,
        tables: &[(&str, String, String)],
        description: &str,
    ) -> Result<(), StoreError> {
        self.run(async {
            let mut tx = self.pool.begin().await?;
            for (name, value, base) in tables {
                sqlx::query(
                    "INSERT INTO pending_tables (\"user\", name, value, base) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (\"user\", name) DO UPDATE SET value = excluded.value",
                )
                .bind(user)
                .bind(name)
                .bind(value)
                .bind(base)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "INSERT INTO pending_changes (\"user\", at, description) VALUES ($1, $2, $3)",
            )
            .bind(user)
            .bind(unix_now())
            .bind(description)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        })
        .await
    }

    pub(crate) async fn abandon_pending(&self, user: &str) -> Result<(), StoreError> {
        self.run(async {
            let mut tx = self.pool.begin().await?;
            clear_pending(&mut tx, user).await?;
            tx.commit().await
        })
        .await
    }

    async fn heartbeat(
        &self,
        info: &NodeInfo,
        generation: i64,
        outbox: u64,
        stats: &str,
    ) -> Result<(), StoreError> {
        self.probe(async {
            sqlx::query(
                "INSERT INTO nodes (name, version, smtp, web, started_at, heartbeat_at, settings_generation, outbox, stats) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (name) DO UPDATE SET \
                 version = excluded.version, smtp = excluded.smtp, web = excluded.web, \
                 started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, \
                 settings_generation = excluded.settings_generation, outbox = excluded.outbox, \
                 stats = excluded.stats",
            )
            .bind(&self.node)
            .bind(&info.version)
            .bind(&info.smtp)
            .bind(&info.web)
            .bind(info.started_at)
            .bind(unix_now())
            .bind(generation)
            .bind(i64::try_from(outbox).unwrap_or(i64::MAX))
            .bind(stats)
            .execute(&self.pool)
            .await
            .map(|_| ())
        })
        .await
    }

    async fn nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        self.run(async {
            let rows = sqlx::query(
                "SELECT name, version, smtp, web, started_at, heartbeat_at, settings_generation, outbox, stats \
                 FROM nodes ORDER BY name",
            )
            .fetch_all(&self.pool)
            .await?;
            rows.into_iter()
                .map(|r| {
                    // A node of another version may write fields this one does not know.
                    let stats: Stats =
                        serde_json::from_str(&r.try_get::<String, _>(8)?).unwrap_or_default();
                    Ok(NodeRow {
                        name: r.try_get(0)?,
                        version: r.try_get(1)?,
                        smtp: r.try_get(2)?,
                        web: r.try_get(3)?,
                        started_at: r.try_get(4)?,
                        heartbeat_at: r.try_get(5)?,
                        settings_generation: r.try_get(6)?,
                        outbox: r.try_get(7)?,
                        totals: stats.totals,
                        hosts: stats.hosts,
                    })
                })
                .collect()
        })
        .await
    }

    /// Copies a node's own settings and accounts into a cluster database that has none yet
    /// (a single appliance joining a new cluster keeps its configuration). Only the first
    /// node to get here seeds; the others find generations above 0.
    async fn seed(
        &self,
        settings: Option<Vec<(String, String)>>,
        users: Vec<(User, i64)>,
    ) -> Result<(bool, bool), StoreError> {
        self.run(async {
            let mut tx = self.pool.begin().await?;
            let r = sqlx::query(
                "SELECT settings_generation, users_generation FROM cluster_meta WHERE id = 1 FOR UPDATE",
            )
            .fetch_one(&mut *tx)
            .await?;
            let (sg, ug): (i64, i64) = (r.try_get(0)?, r.try_get(1)?);
            let mut seeded = (false, false);
            if let Some(rows) = settings.filter(|_| sg == 0) {
                for (name, value) in &rows {
                    sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value")
                        .bind(name)
                        .bind(value)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query("UPDATE cluster_meta SET settings_generation = 1 WHERE id = 1")
                    .execute(&mut *tx)
                    .await?;
                self.insert_audit(
                    &mut tx,
                    &Audit::new(
                        "system",
                        "boot",
                        format!("the cluster's settings seeded from node {}'s", self.node),
                    ),
                )
                .await?;
                seeded.0 = true;
            }
            if ug == 0 && !users.is_empty() {
                for (u, created) in &users {
                    sqlx::query("INSERT INTO users (name, password_hash, role, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING")
                        .bind(&u.name)
                        .bind(&u.password_hash)
                        .bind(u.role.as_str())
                        .bind(created)
                        .execute(&mut *tx)
                        .await?;
                }
                bump_users(&mut tx).await?;
                seeded.1 = true;
            }
            if seeded != (false, false) {
                sqlx::query("SELECT pg_notify($1, 'seeded')")
                    .bind(CHANNEL)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(seeded)
        })
        .await
    }
}

async fn bump_users(tx: &mut Transaction<'_, Postgres>) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE cluster_meta SET users_generation = users_generation + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    sqlx::query("SELECT pg_notify($1, 'users')")
        .bind(CHANNEL)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn clear_pending(tx: &mut Transaction<'_, Postgres>, user: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM pending_tables WHERE \"user\" = $1")
        .bind(user)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM pending_changes WHERE \"user\" = $1")
        .bind(user)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The shared state's calls: each goes to PostgreSQL in cluster mode and to SQLite otherwise.
/// Settings and accounts *in force* are always read locally (`load_settings`, `user`, `users`).
impl Store {
    /// This node's cluster health; `None` on a single appliance.
    pub fn cluster_health(&self) -> Option<ClusterHealth> {
        self.central.as_ref().map(|c| c.health())
    }

    /// Whether settings and accounts live in a cluster database.
    pub fn is_clustered(&self) -> bool {
        self.central.is_some()
    }

    pub(crate) fn central(&self) -> Option<&Central> {
        self.central.as_deref()
    }

    /// Joins the cluster database at start: applies its migrations, and seeds it with this
    /// node's settings and accounts when it has none yet. Answers what was seeded.
    pub async fn cluster_join(&self) -> Result<(bool, bool), StoreError> {
        let Some(c) = self.central() else {
            return Ok((false, false));
        };
        self.cluster_migrate().await?;
        let local_generation: i64 =
            sqlx::query_scalar("SELECT generation FROM settings_meta WHERE id = 1")
                .fetch_one(self.pool())
                .await?;
        let settings = if local_generation > 0 {
            Some(crate::settings::local_rows(self.pool()).await?)
        } else {
            None
        };
        let users = self.local_users().await?;
        c.seed(settings, users).await
    }

    /// Applies the cluster database's migrations now (`rampart migrate`); `false` on a single
    /// appliance. (Any first exchange of a process applies them too.)
    pub async fn cluster_migrate(&self) -> Result<bool, StoreError> {
        let Some(c) = self.central() else {
            return Ok(false);
        };
        c.probe(async { Ok::<(), sqlx::Error>(()) }).await?;
        Ok(true)
    }

    /// A connection that hears about every change made on any node.
    pub async fn cluster_listen(&self) -> Result<ClusterListener, StoreError> {
        let Some(c) = self.central() else {
            return Err(StoreError::Unavailable("not in cluster mode".into()));
        };
        c.probe(async {
            let mut l = PgListener::connect_with(&c.pool).await?;
            l.listen(CHANNEL).await?;
            Ok(l)
        })
        .await
        .map(ClusterListener)
    }

    /// Brings the local copy up to the cluster database: the settings when their generation
    /// differs from `in_force` (`None`: always), the accounts when theirs differs from the
    /// local copy's. What came in is also written to the local SQLite copy, so a restart while
    /// PostgreSQL is down starts on it.
    pub async fn cluster_pull(&self, in_force: Option<i64>) -> Result<Pulled, StoreError> {
        let Some(c) = self.central() else {
            return Ok(Pulled::default());
        };
        let (sg, ug) = c.generations().await?;
        let mut pulled = Pulled::default();
        if in_force != Some(sg) {
            let (rows, generation) = c.settings_rows().await?;
            let settings = crate::settings::settings_from_rows(&rows)?;
            crate::settings::replace_local(self.pool(), &rows, generation).await?;
            pulled.settings = Some((settings, generation));
        }
        let local_ug: i64 =
            sqlx::query_scalar("SELECT users_generation FROM settings_meta WHERE id = 1")
                .fetch_one(self.pool())
                .await?;
        if local_ug != ug || in_force.is_none() {
            let users = c.users().await?;
            self.replace_local_users(&users, ug).await?;
            pulled.users = Some(ug);
        }
        Ok(pulled)
    }

    /// Records which settings generation this node has in force (shown on the Cluster page and
    /// in the heartbeat).
    pub fn cluster_in_force(&self, generation: i64) {
        if let Some(c) = self.central()
            && let Ok(mut h) = c.health.lock()
        {
            h.settings_generation = generation;
        }
    }

    /// This node's heartbeat.
    pub async fn cluster_heartbeat(&self, info: &NodeInfo) -> Result<(), StoreError> {
        let Some(c) = self.central() else {
            return Ok(());
        };
        let generation = c.health().settings_generation;
        let outbox = self.cluster_backlog().await?;
        let mut hosts = self.tophosts().await?;
        hosts.sort_by(|a, b| {
            (b.active_recipients, b.delivered).cmp(&(a.active_recipients, a.delivered))
        });
        hosts.truncate(HEARTBEAT_HOSTS);
        let stats = serde_json::to_string(&Stats {
            totals: self.totals().await?,
            hosts,
        })
        .map_err(|e| StoreError::Settings(format!("cannot serialise the heartbeat: {e}")))?;
        c.heartbeat(info, generation, outbox, &stats).await
    }

    /// Every node's last heartbeat.
    pub async fn cluster_nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        match self.central() {
            Some(c) => c.nodes().await,
            None => Ok(Vec::new()),
        }
    }

    /// An account change: in the cluster database, then in the local copy at once (so that a
    /// login on this node right after works; the other nodes follow through their pull).
    pub(crate) async fn central_put_user(
        &self,
        c: &Central,
        user: &User,
        only_first: bool,
    ) -> Result<bool, StoreError> {
        let written = c.put_user(user, only_first).await?;
        if written {
            self.local_put_user(user).await?;
        } else {
            // Another node made the first account: take the cluster's accounts now rather
            // than at the follower's first pull, so this node's logins work from its start.
            // The generation is read first: a change in between makes the follower pull again.
            let (_, generation) = c.generations().await?;
            let users = c.users().await?;
            self.replace_local_users(&users, generation).await?;
        }
        Ok(written)
    }

    pub(crate) async fn central_delete_user(
        &self,
        c: &Central,
        name: &str,
    ) -> Result<bool, StoreError> {
        let deleted = c.delete_user(name).await?;
        self.local_delete_user(name).await?;
        Ok(deleted)
    }
}
