//! Runtime settings: one JSON document per table, and a generation number that every change bumps
//! so that a running appliance notices changes made by another process (the CLI).

use rampart_settings::Settings;
use sqlx::{Row, SqlitePool};

use crate::{Audit, Store, StoreError};

impl Store {
    /// Loads the settings in force on this appliance; tables never saved keep their defaults.
    /// In cluster mode, this node's local copy of the cluster's settings.
    pub async fn load_settings(&self) -> Result<Settings, StoreError> {
        let rows = local_rows(self.pool()).await?;
        settings_from_rows(&rows)
    }

    /// The stored settings with the generation they are at, read in one transaction: the base
    /// of a read-modify-write that ends with [`Store::save_settings_if`]. In cluster mode, the
    /// cluster database's ([`StoreError::Unavailable`] while it cannot be reached).
    pub async fn load_settings_at(&self) -> Result<(Settings, i64), StoreError> {
        if let Some(c) = self.central() {
            return c.settings_at().await;
        }
        let mut tx = self.pool().begin().await?;
        let generation: i64 =
            sqlx::query_scalar("SELECT generation FROM settings_meta WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?;
        let rows = sqlx::query("SELECT name, value FROM settings")
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let rows = rows
            .into_iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("value")?)))
            .collect::<Result<Vec<(String, String)>, sqlx::Error>>()?;
        Ok((settings_from_rows(&rows)?, generation))
    }

    /// Saves every table and the audit record of the change in one transaction, and bumps the
    /// generation. The caller validates first. No settings change can happen without its record.
    pub async fn save_settings(
        &self,
        settings: &Settings,
        audit: &Audit,
    ) -> Result<i64, StoreError> {
        self.save_settings_clearing(settings, audit, None, None)
            .await
    }

    /// [`Store::save_settings`] as a compare-and-swap: only if the stored settings are still at
    /// `generation` (the one they were read at), else [`StoreError::Stale`] and nothing changes.
    /// Two writers can then never silently overwrite each other.
    pub async fn save_settings_if(
        &self,
        settings: &Settings,
        audit: &Audit,
        generation: i64,
    ) -> Result<i64, StoreError> {
        self.save_settings_clearing(settings, audit, None, Some(generation))
            .await
    }

    /// Commits `user`'s pending changes: saves `settings` (the stored settings at `generation`
    /// with the pending tables applied, validated by the caller), records `audit`, and clears
    /// the pending state, all in one transaction — or [`StoreError::Stale`] when the stored
    /// settings are no longer at `generation`.
    pub async fn commit_pending(
        &self,
        settings: &Settings,
        audit: &Audit,
        generation: i64,
    ) -> Result<i64, StoreError> {
        self.save_settings_clearing(settings, audit, Some(&audit.user), Some(generation))
            .await
    }

    /// [`Store::save_settings`], also removing `user`'s pending UI changes in the same
    /// transaction (a commit of the web UI).
    pub(crate) async fn save_settings_clearing(
        &self,
        settings: &Settings,
        audit: &Audit,
        clear_pending_of: Option<&str>,
        expected: Option<i64>,
    ) -> Result<i64, StoreError> {
        if let Some(c) = self.central() {
            let generation = c
                .save_settings(settings, audit, clear_pending_of, expected)
                .await?;
            // This node's copy at once; the follower would bring it a moment later.
            let rows = table_rows(settings)?;
            replace_local(self.pool(), &rows, generation).await?;
            return Ok(generation);
        }
        let mut tx = self.pool().begin().await?;
        if let Some(expected) = expected {
            // The generation row is updated below in this transaction; this first write takes
            // SQLite's write lock, so nobody can save between the check and the save.
            let current: i64 = sqlx::query_scalar(
                "UPDATE settings_meta SET generation = generation WHERE id = 1 RETURNING generation",
            )
            .fetch_one(&mut *tx)
            .await?;
            if current != expected {
                return Err(StoreError::Stale { expected, current });
            }
        }
        crate::audit::insert_audit(&mut tx, audit).await?;
        if let Some(user) = clear_pending_of {
            crate::pending::clear_pending(&mut tx, user).await?;
        }
        for (table, json) in table_rows(settings)? {
            sqlx::query("INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET value = excluded.value")
                .bind(table)
                .bind(json)
                .execute(&mut *tx)
                .await?;
        }
        let generation: i64 = sqlx::query_scalar(
            "UPDATE settings_meta SET generation = generation + 1 WHERE id = 1 RETURNING generation",
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(generation)
    }

    /// The generation of the settings in the local database (in cluster mode, of this node's
    /// copy of the cluster's).
    pub async fn settings_generation_local(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT generation FROM settings_meta WHERE id = 1")
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// The settings generation: changes whenever any process saves settings. In cluster mode,
    /// the cluster database's.
    pub async fn settings_generation(&self) -> Result<i64, StoreError> {
        if let Some(c) = self.central() {
            return Ok(c.generations().await?.0);
        }
        Ok(
            sqlx::query_scalar("SELECT generation FROM settings_meta WHERE id = 1")
                .fetch_one(self.pool())
                .await?,
        )
    }
}

/// Every settings table as its stored JSON text.
fn table_rows(settings: &Settings) -> Result<Vec<(String, String)>, StoreError> {
    rampart_settings::TABLES
        .iter()
        .map(|table| {
            settings
                .table_json(table)
                .map(|json| ((*table).to_owned(), json.to_string()))
                .ok_or_else(|| StoreError::Settings(format!("cannot serialise {table}")))
        })
        .collect()
}

/// The settings from their stored rows; tables without a row keep their defaults.
pub(crate) fn settings_from_rows(rows: &[(String, String)]) -> Result<Settings, StoreError> {
    let mut settings = Settings::default();
    for (name, value) in rows {
        let json: serde_json::Value = serde_json::from_str(value)
            .map_err(|e| StoreError::Settings(format!("{name}: {e}")))?;
        settings
            .set_table_json(name, &json)
            .map_err(|e| StoreError::Settings(e.to_string()))?;
    }
    Ok(settings)
}

/// The local settings rows.
pub(crate) async fn local_rows(pool: &SqlitePool) -> Result<Vec<(String, String)>, StoreError> {
    let rows = sqlx::query("SELECT name, value FROM settings")
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| Ok((r.try_get("name")?, r.try_get("value")?)))
        .collect::<Result<Vec<(String, String)>, sqlx::Error>>()?)
}

/// Replaces the local copy of the settings with the cluster's rows at `generation`.
pub(crate) async fn replace_local(
    pool: &SqlitePool,
    rows: &[(String, String)],
    generation: i64,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM settings")
        .execute(&mut *tx)
        .await?;
    for (name, value) in rows {
        sqlx::query("INSERT INTO settings (name, value) VALUES (?1, ?2)")
            .bind(name)
            .bind(value)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("UPDATE settings_meta SET generation = ?1 WHERE id = 1")
        .bind(generation)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use rampart_settings::{RatAction, RatEntry};

    use crate::Audit;

    use crate::tests::temp_store;

    #[tokio::test]
    async fn save_load_and_generation() {
        let (_dir, store) = temp_store().await;
        assert_eq!(store.load_settings().await.unwrap(), Default::default());
        let g0 = store.settings_generation().await.unwrap();
        let mut s = store.load_settings().await.unwrap();
        s.rat.push(RatEntry {
            domain: "example.com".into(),
            action: RatAction::Accept,
        });
        let g1 = store
            .save_settings(&s, &Audit::new("admin", "cli", "test"))
            .await
            .unwrap();
        assert!(g1 > g0);
        assert_eq!(store.settings_generation().await.unwrap(), g1);
        assert_eq!(store.load_settings().await.unwrap(), s);
    }

    #[tokio::test]
    async fn a_stale_write_is_refused_and_changes_nothing() {
        let (_dir, store) = temp_store().await;
        let (mut mine, at) = store.load_settings_at().await.unwrap();
        let (mut theirs, _) = store.load_settings_at().await.unwrap();
        theirs.rat.push(RatEntry {
            domain: "theirs.example".into(),
            action: RatAction::Accept,
        });
        let audit = Audit::new("admin", "api", "test");
        let g = store.save_settings_if(&theirs, &audit, at).await.unwrap();
        mine.rat.push(RatEntry {
            domain: "mine.example".into(),
            action: RatAction::Accept,
        });
        match store.save_settings_if(&mine, &audit, at).await {
            Err(crate::StoreError::Stale { expected, current }) => {
                assert_eq!((expected, current), (at, g));
            }
            other => panic!("expected a stale write, got {other:?}"),
        }
        assert_eq!(store.load_settings().await.unwrap(), theirs);
        assert_eq!(store.load_settings_at().await.unwrap().1, g);
    }
}
