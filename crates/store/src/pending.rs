//! Pending UI changes (AsyncOS *Commit Changes*): each administrator's staged settings tables,
//! with the version each was based on and a line per change, until committed or abandoned.

use sqlx::{Row, Sqlite, Transaction};

use crate::{Store, StoreError, unix_now};

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
    /// The settings tables `user` changed and has not committed, as JSON documents.
    pub async fn pending_tables(&self, user: &str) -> Result<Vec<(String, String)>, StoreError> {
        if let Some(c) = self.central() {
            return Ok(c
                .pending_pairs(
                    "SELECT name, value FROM pending_tables WHERE \"user\" = $1",
                    user,
                )
                .await?
                .into_iter()
                .map(|(n, v)| (n, v.unwrap_or_default()))
                .collect());
        }
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
        if let Some(c) = self.central() {
            return c
                .pending_pairs(
                    "SELECT name, base FROM pending_tables WHERE \"user\" = $1",
                    user,
                )
                .await;
        }
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
        if let Some(c) = self.central() {
            return c.pending_changes(user).await;
        }
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
        if self.central().is_some() {
            return Ok(self.pending_changes(user).await?.len() as u64);
        }
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
        if let Some(c) = self.central() {
            return c.put_pending(user, tables, description).await;
        }
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
        if let Some(c) = self.central() {
            return c.abandon_pending(user).await;
        }
        let mut tx = self.pool().begin().await?;
        clear_pending(&mut tx, user).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::tests::{temp_store, user};
    use crate::{Audit, Role};

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
