//! Administration: browser sessions, pending UI changes (AsyncOS *Commit Changes*), the audit log
//! of configuration changes, account listing, the figures of *System Status*, and *Retry
//! Delivery* for a host's queue.

use sqlx::{Row, Sqlite, Transaction};

use crate::{Role, Store, StoreError, User, unix_now};

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
    pub audit: Audit,
}

/// A live browser session.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub role: Role,
    /// The token every form of this session must carry back.
    pub csrf: String,
}

/// Counters for *System Status*, since the database was created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

pub(crate) async fn clear_pending(
    tx: &mut Transaction<'_, Sqlite>,
    user: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM pending_tables WHERE user = ?1")
        .bind(user)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM pending_changes WHERE user = ?1")
        .bind(user)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    /// The audit log, newest first.
    pub async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, user, source, comment, changes FROM audit_log ORDER BY id DESC LIMIT ?1",
        )
        .bind(limit.max(1))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                let changes: String = r.try_get("changes")?;
                Ok(AuditEntry {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    audit: Audit {
                        user: r.try_get("user")?,
                        source: r.try_get("source")?,
                        comment: r.try_get("comment")?,
                        changes: changes.lines().map(str::to_owned).collect(),
                    },
                })
            })
            .collect()
    }

    /// Records a change that is not a settings change (accounts, for example).
    pub async fn audit(&self, audit: &Audit) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Starts a session for `user`, identified by the hash of its cookie token.
    pub async fn create_session(
        &self,
        token_hash: &[u8],
        user: &str,
        csrf: &str,
    ) -> Result<(), StoreError> {
        let now = unix_now();
        sqlx::query(
            "INSERT INTO sessions (token_hash, user, csrf, created_at, last_seen) VALUES (?1, ?2, ?3, ?4, ?4)",
        )
        .bind(token_hash)
        .bind(user)
        .bind(csrf)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The session for a token hash, if it exists and was used within `idle_secs`; using it
    /// keeps it alive. Expired sessions are removed on the way.
    pub async fn session(
        &self,
        token_hash: &[u8],
        idle_secs: i64,
    ) -> Result<Option<Session>, StoreError> {
        let now = unix_now();
        sqlx::query("DELETE FROM sessions WHERE last_seen < ?1")
            .bind(now - idle_secs)
            .execute(self.pool())
            .await?;
        let row = sqlx::query(
            "SELECT s.user, s.csrf, s.last_seen, u.role FROM sessions s JOIN users u ON u.name = s.user \
             WHERE s.token_hash = ?1",
        )
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        let Some(r) = row else { return Ok(None) };
        let last_seen: i64 = r.try_get("last_seen")?;
        // Touch at most once a minute: a page view should not always cost a write.
        if now - last_seen >= 60 {
            sqlx::query("UPDATE sessions SET last_seen = ?1 WHERE token_hash = ?2")
                .bind(now)
                .bind(token_hash)
                .execute(self.pool())
                .await?;
        }
        let role: String = r.try_get("role")?;
        Ok(Some(Session {
            user: r.try_get("user")?,
            role: Role::parse(&role).unwrap_or(Role::ReadOnly),
            csrf: r.try_get("csrf")?,
        }))
    }

    /// Ends one session (log out).
    pub async fn delete_session(&self, token_hash: &[u8]) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ?1")
            .bind(token_hash)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Ends every session of `user` (password changed or account removed).
    pub async fn delete_sessions_of(&self, user: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE user = ?1")
            .bind(user)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The settings tables `user` changed and has not committed, as JSON documents.
    pub async fn pending_tables(&self, user: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT name, value FROM pending_tables WHERE user = ?1")
            .bind(user)
            .fetch_all(self.pool())
            .await?;
        rows.into_iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("value")?)))
            .collect()
    }

    /// The live state each of `user`'s staged tables had when first changed (`None` for changes
    /// staged by an older version).
    pub async fn pending_bases(
        &self,
        user: &str,
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let rows = sqlx::query("SELECT name, base FROM pending_tables WHERE user = ?1")
            .bind(user)
            .fetch_all(self.pool())
            .await?;
        rows.into_iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("base")?)))
            .collect()
    }

    /// What `user` changed and has not committed: (unix seconds, description), oldest first.
    pub async fn pending_changes(&self, user: &str) -> Result<Vec<(i64, String)>, StoreError> {
        let rows =
            sqlx::query("SELECT at, description FROM pending_changes WHERE user = ?1 ORDER BY id")
                .bind(user)
                .fetch_all(self.pool())
                .await?;
        rows.into_iter()
            .map(|r| Ok((r.try_get("at")?, r.try_get("description")?)))
            .collect()
    }

    /// How many changes `user` has not committed (shown in the header of every page).
    pub async fn pending_count(&self, user: &str) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pending_changes WHERE user = ?1")
            .bind(user)
            .fetch_one(self.pool())
            .await?;
        Ok(n as u64)
    }

    /// Records an uncommitted change: the new state of the tables it touched, their live state
    /// (kept from the first change of each table, the base a commit is checked against) and its
    /// description. `tables` holds `(name, new value, live value)`.
    pub async fn put_pending(
        &self,
        user: &str,
        tables: &[(&str, String, String)],
        description: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        for (name, value, base) in tables {
            sqlx::query(
                "INSERT INTO pending_tables (user, name, value, base) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT(user, name) DO UPDATE SET value = excluded.value",
            )
            .bind(user)
            .bind(name)
            .bind(value)
            .bind(base)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("INSERT INTO pending_changes (user, at, description) VALUES (?1, ?2, ?3)")
            .bind(user)
            .bind(unix_now())
            .bind(description)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Abandons `user`'s uncommitted changes.
    pub async fn abandon_pending(&self, user: &str) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        clear_pending(&mut tx, user).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Commits `user`'s pending changes: saves `settings` (the stored settings at `generation`
    /// with the pending tables applied, validated by the caller), records `audit`, and clears
    /// the pending state, all in one transaction — or [`StoreError::Stale`] when the stored
    /// settings are no longer at `generation`.
    pub async fn commit_pending(
        &self,
        settings: &rampart_settings::Settings,
        audit: &Audit,
        generation: i64,
    ) -> Result<i64, StoreError> {
        self.save_settings_clearing(settings, audit, Some(&audit.user), Some(generation))
            .await
    }

    /// Every account, by name, with its creation time.
    pub async fn users(&self) -> Result<Vec<(User, i64)>, StoreError> {
        let rows =
            sqlx::query("SELECT name, password_hash, role, created_at FROM users ORDER BY name")
                .fetch_all(self.pool())
                .await?;
        rows.into_iter()
            .map(|r| {
                let role: String = r.try_get("role")?;
                Ok((
                    User {
                        name: r.try_get("name")?,
                        password_hash: r.try_get("password_hash")?,
                        role: Role::parse(&role).unwrap_or(Role::ReadOnly),
                    },
                    r.try_get("created_at")?,
                ))
            })
            .collect()
    }

    /// Removes an account with its sessions and pending changes; returns whether it existed.
    pub async fn delete_user(&self, name: &str) -> Result<bool, StoreError> {
        let n = sqlx::query("DELETE FROM users WHERE name = ?1")
            .bind(name)
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// The counters of *System Status*.
    pub async fn totals(&self) -> Result<Totals, StoreError> {
        // One pass over the messages for all three counts.
        let (received, spam, virus): (i64, Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), SUM(spam IN ('positive', 'suspect')), SUM(virus = 'positive') \
             FROM messages",
        )
        .fetch_one(self.pool())
        .await?;
        let rows = sqlx::query("SELECT kind, state, COUNT(*) AS n FROM queue GROUP BY kind, state")
            .fetch_all(self.pool())
            .await?;
        let mut t = Totals {
            received: received as u64,
            spam: spam.unwrap_or(0) as u64,
            virus: virus.unwrap_or(0) as u64,
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
        let received = sqlx::query(
            "SELECT (received_at - ?1) / ?2 AS slot, COUNT(*) AS n, \
             SUM(spam IN ('positive', 'suspect')) AS spam, SUM(virus = 'positive') AS virus \
             FROM messages WHERE received_at >= ?1 GROUP BY slot",
        )
        .bind(start)
        .bind(width)
        .fetch_all(self.pool())
        .await?;
        for r in received {
            let slot: i64 = r.try_get("slot")?;
            if let Some(b) = usize::try_from(slot).ok().and_then(|s| buckets.get_mut(s)) {
                b.received = r.try_get::<i64, _>("n")? as u64;
                b.spam = r.try_get::<Option<i64>, _>("spam")?.unwrap_or(0) as u64;
                b.virus = r.try_get::<Option<i64>, _>("virus")?.unwrap_or(0) as u64;
            }
        }
        let done = sqlx::query(
            "SELECT (done_at - ?1) / ?2 AS slot, kind, state, COUNT(*) AS n FROM queue \
             WHERE done_at >= ?1 GROUP BY slot, kind, state",
        )
        .bind(start)
        .bind(width)
        .fetch_all(self.pool())
        .await?;
        for r in done {
            let slot: i64 = r.try_get("slot")?;
            let Some(b) = usize::try_from(slot).ok().and_then(|s| buckets.get_mut(s)) else {
                continue;
            };
            let kind: String = r.try_get("kind")?;
            let state: String = r.try_get("state")?;
            let n = r.try_get::<i64, _>("n")? as u64;
            match (kind.as_str(), state.as_str()) {
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
             WHERE state = 'queued' AND next_attempt_at > ?1 AND (?2 IS NULL OR queue_name = ?2)",
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
    use crate::tests::temp_store;

    async fn user(store: &Store, name: &str, role: Role) {
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
    async fn sessions_expire_and_follow_the_account() {
        let (_dir, store) = temp_store().await;
        user(&store, "alice", Role::Operator).await;
        store.create_session(b"tok", "alice", "c1").await.unwrap();
        let s = store.session(b"tok", 1800).await.unwrap().unwrap();
        assert_eq!(
            (s.user.as_str(), s.role, s.csrf.as_str()),
            ("alice", Role::Operator, "c1")
        );
        assert!(store.session(b"other", 1800).await.unwrap().is_none());
        // An idle limit in the past expires it, and it stays gone.
        assert!(store.session(b"tok", -1).await.unwrap().is_none());
        assert!(store.session(b"tok", 1800).await.unwrap().is_none());
        // Removing the account removes its sessions.
        store.create_session(b"tok2", "alice", "c2").await.unwrap();
        assert!(store.delete_user("alice").await.unwrap());
        assert!(store.session(b"tok2", 1800).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn pending_changes_commit_with_their_audit_record() {
        let (_dir, store) = temp_store().await;
        user(&store, "admin", Role::Admin).await;
        store
            .put_pending(
                "admin",
                &[("rat", "[]".into(), "[]".into())],
                "RAT: added example.com",
            )
            .await
            .unwrap();
        assert_eq!(store.pending_tables("admin").await.unwrap().len(), 1);
        assert_eq!(store.pending_count("admin").await.unwrap(), 1);
        let changes = store.pending_changes("admin").await.unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].1, "RAT: added example.com");
        let audit = Audit {
            user: "admin".into(),
            source: "ui".into(),
            comment: "ticket 42".into(),
            changes: changes.into_iter().map(|c| c.1).collect(),
        };
        let (settings, generation) = store.load_settings_at().await.unwrap();
        store
            .commit_pending(&settings, &audit, generation)
            .await
            .unwrap();
        assert!(store.pending_tables("admin").await.unwrap().is_empty());
        assert!(store.pending_changes("admin").await.unwrap().is_empty());
        let log = store.audit_log(10).await.unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].audit, audit);
    }

    #[tokio::test]
    async fn abandon_clears_only_that_user() {
        let (_dir, store) = temp_store().await;
        user(&store, "a", Role::Admin).await;
        user(&store, "b", Role::Admin).await;
        store
            .put_pending("a", &[("rat", "[]".into(), "[]".into())], "x")
            .await
            .unwrap();
        store
            .put_pending("b", &[("hat", "[]".into(), "[]".into())], "y")
            .await
            .unwrap();
        store.abandon_pending("a").await.unwrap();
        assert!(store.pending_tables("a").await.unwrap().is_empty());
        assert_eq!(store.pending_tables("b").await.unwrap().len(), 1);
        assert!(store.audit_log(10).await.unwrap().is_empty());
    }
}
