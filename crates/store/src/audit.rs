//! The audit log of configuration and account changes (who, when, from where, what, and the
//! administrator's comment).

use sqlx::{Row, Sqlite, Transaction};

use crate::{Store, StoreError, unix_now};

/// A configuration change as recorded in the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    /// The appliance account that made the change.
    pub user: String,
    /// Where it was made: `ui`, `api`, `cli` or `boot` (initial settings at first start).
    pub source: String,
    /// The administrator's comment (the Commit Changes comment box); may be empty.
    pub comment: String,
    /// What changed, one line each.
    pub changes: Vec<String>,
}

impl Audit {
    /// A record of one change without a comment.
    pub fn new(user: &str, source: &str, change: impl Into<String>) -> Audit {
        Audit {
            user: user.to_owned(),
            source: source.to_owned(),
            comment: String::new(),
            changes: vec![change.into()],
        }
    }
}

/// One row of the audit log.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    /// The node the change was made on (cluster mode); `None` on a single appliance.
    pub node: Option<String>,
    pub audit: Audit,
}

/// An audit-log entry from a row of `id, at, user, source, comment, changes`, of the local store
/// or (with the `node` it names) of the cluster database alike.
pub(crate) fn audit_row<'r, R: Row>(
    r: &'r R,
    node: Option<String>,
) -> Result<AuditEntry, sqlx::Error>
where
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let changes: String = r.try_get("changes")?;
    Ok(AuditEntry {
        id: r.try_get("id")?,
        at: r.try_get("at")?,
        node,
        audit: Audit {
            user: r.try_get("user")?,
            source: r.try_get("source")?,
            comment: r.try_get("comment")?,
            changes: changes.lines().map(str::to_owned).collect(),
        },
    })
}

pub(crate) async fn insert_audit(
    tx: &mut Transaction<'_, Sqlite>,
    audit: &Audit,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (at, user, source, comment, changes) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .bind(unix_now())
    .bind(&audit.user)
    .bind(&audit.source)
    .bind(&audit.comment)
    .bind(audit.changes.join("\n"))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// The audit log, newest first.
    /// The newest `limit` entries; in cluster mode the whole cluster's.
    pub async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        if let Some(c) = self.central() {
            return c.audit_log(limit).await;
        }
        let rows = sqlx::query(
            "SELECT id, at, user, source, comment, changes FROM audit_log ORDER BY id DESC LIMIT ?1",
        )
        .bind(limit.max(1))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| audit_row(r, None))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// Records a change that is not a settings change (accounts, for example).
    pub async fn audit(&self, audit: &Audit) -> Result<(), StoreError> {
        if let Some(c) = self.central() {
            return c.audit(audit).await;
        }
        let mut tx = self.pool().begin().await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }
}
