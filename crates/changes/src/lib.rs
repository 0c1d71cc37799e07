//! Settings changes, made one way by every writer — the web UI's *Commit Changes*, the REST
//! API, the CLI's `loadconfig`, `tdcconfig` and `policyconfig`: read the stored settings with
//! their generation, apply the edit, validate the whole result, save it with its audit record as
//! a compare-and-swap on that generation (another writer's save is never overwritten: the edit
//! is applied again to the new settings, or refused when the caller said which generation it
//! edited), then swap the running snapshot.
//!
//! Beside it, the web UI's staging: an administrator's edits are kept as pending tables,
//! validated as a whole settings set when staged and again when committed.

use std::sync::Arc;

use rampart_settings::{Problem, Settings, SettingsErrors, SharedSettings};
use rampart_store::{Audit, Store, StoreError};
use tokio::sync::Mutex;

/// How often a change is applied again when another process saved between its read and write.
const TRIES: usize = 5;

/// The settings writer; cheap to clone.
#[derive(Debug, Clone)]
pub struct Changes {
    store: Store,
    /// The running appliance's snapshot; `None` in the CLI, whose changes the appliance picks
    /// up by polling the generation.
    running: Option<SharedSettings>,
    /// Serialises this process's writers, so they do not keep invalidating each other.
    lock: Arc<Mutex<()>>,
}

/// Why a change was not saved.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError<E = String> {
    /// The edit refused itself.
    #[error("{0}")]
    Edit(E),
    /// The result is not a valid settings set: every problem, each keyed by its entry.
    #[error("{}", SettingsErrors(.0.clone()))]
    Invalid(Vec<Problem>),
    /// The settings changed since the generation the caller edited.
    #[error(
        "the settings changed since they were read (generation {expected}, now {current}); read them again and redo the change"
    )]
    Stale { expected: i64, current: i64 },
    /// Other writers kept saving while this change was applied.
    #[error(
        "the settings kept changing while this change was applied; nothing was saved, try again"
    )]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A saved change: what the edit returned, and the new generation.
#[derive(Debug)]
pub struct Saved<T> {
    pub value: T,
    pub generation: i64,
}

impl Changes {
    pub fn new(store: Store, running: Option<SharedSettings>) -> Changes {
        Changes {
            store,
            running,
            lock: Arc::default(),
        }
    }

    /// Applies `edit` to the stored settings and saves the result with `audit`. With `expect`,
    /// only if the stored settings are still at that generation (an API client's `If-Match`);
    /// without, the edit is applied again when another writer saved meanwhile.
    pub async fn apply<T, E>(
        &self,
        audit: &Audit,
        expect: Option<i64>,
        edit: impl FnMut(&mut Settings) -> Result<T, E>,
    ) -> Result<Saved<T>, ChangeError<E>> {
        self.save(audit, expect, false, edit).await
    }

    async fn save<T, E>(
        &self,
        audit: &Audit,
        expect: Option<i64>,
        clear_pending: bool,
        mut edit: impl FnMut(&mut Settings) -> Result<T, E>,
    ) -> Result<Saved<T>, ChangeError<E>> {
        let _guard = self.lock.lock().await;
        for _ in 0..TRIES {
            let (mut settings, generation) = self.store.load_settings_at().await?;
            if let Some(expected) = expect
                && expected != generation
            {
                return Err(ChangeError::Stale {
                    expected,
                    current: generation,
                });
            }
            let value = edit(&mut settings).map_err(ChangeError::Edit)?;
            let snapshot = settings
                .clone()
                .compile()
                .map_err(|e| ChangeError::Invalid(e.0))?;
            let saved = if clear_pending {
                self.store
                    .commit_pending(&settings, audit, generation)
                    .await
            } else {
                self.store
                    .save_settings_if(&settings, audit, generation)
                    .await
            };
            match saved {
                Ok(generation) => {
                    if let Some(running) = &self.running {
                        running.store(Arc::new(snapshot));
                    }
                    return Ok(Saved { value, generation });
                }
                Err(StoreError::Stale { expected, current }) if expect.is_some() => {
                    return Err(ChangeError::Stale { expected, current });
                }
                Err(StoreError::Stale { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ChangeError::Busy)
    }

    /// The settings edits are staged against: the running ones (the stored ones in the CLI).
    async fn base(&self) -> Result<Settings, StoreError> {
        Ok(match &self.running {
            Some(running) => running.load().settings().clone(),
            None => self.store.load_settings().await?,
        })
    }

    /// The settings `user` is editing: the running ones (the stored ones in the CLI) with the
    /// user's pending tables applied.
    pub async fn working(&self, user: &str) -> Result<Settings, StoreError> {
        let mut settings = self.base().await?;
        for (table, value) in self.store.pending_tables(user).await? {
            let json: serde_json::Value = serde_json::from_str(&value)
                .map_err(|e| StoreError::Settings(format!("pending {table}: {e}")))?;
            settings
                .set_table_json(&table, &json)
                .map_err(|e| StoreError::Settings(e.to_string()))?;
        }
        Ok(settings)
    }

    /// Stages an edit: validates the whole working `settings` and records the touched tables,
    /// each with the running version it was based on, and a description as pending for `user`.
    /// Validation problems come back for the form to show; nothing is staged then.
    pub async fn stage(
        &self,
        user: &str,
        settings: &Settings,
        tables: &[&str],
        description: &str,
    ) -> Result<Result<(), Vec<Problem>>, StoreError> {
        if let Err(e) = settings.clone().compile() {
            return Ok(Err(e.0));
        }
        let base = self.base().await?;
        let json = |s: &Settings, table: &str| {
            s.table_json(table)
                .map(|v| v.to_string())
                .ok_or_else(|| StoreError::Settings(format!("cannot serialise {table}")))
        };
        let mut docs = Vec::with_capacity(tables.len());
        for table in tables {
            docs.push((*table, json(settings, table)?, json(&base, table)?));
        }
        self.store.put_pending(user, &docs, description).await?;
        Ok(Ok(()))
    }

    /// *Commit Changes*: saves `user`'s pending tables with one audit record carrying
    /// `comment` and a line per change, and clears them in the same transaction. A table
    /// someone else changed since it was staged is a conflict (`Edit` with one line per
    /// table): nothing is saved, the pending changes stay. Returns the number of changes
    /// committed (0: there was nothing to commit).
    pub async fn commit(
        &self,
        user: &str,
        comment: &str,
    ) -> Result<Saved<usize>, ChangeError<Conflicts>> {
        let changes: Vec<String> = self
            .store
            .pending_changes(user)
            .await?
            .into_iter()
            .map(|(_, d)| d)
            .collect();
        if changes.is_empty() {
            return Ok(Saved {
                value: 0,
                generation: self.store.settings_generation().await?,
            });
        }
        let bases = self.store.pending_bases(user).await?;
        let tables = self.store.pending_tables(user).await?;
        let audit = Audit {
            user: user.to_owned(),
            source: "ui".into(),
            comment: comment.to_owned(),
            changes: changes.clone(),
        };
        self.save(&audit, None, true, |settings| {
            let conflicts: Vec<String> = bases
                .iter()
                .filter(|(table, base)| {
                    base.is_some() && settings.table_json(table).map(|v| v.to_string()) != *base
                })
                .map(|(table, _)| {
                    format!(
                        "{} was changed by someone else since you staged your change. Abandon your changes and make them again on the current settings.",
                        rampart_settings::table_title(table)
                    )
                })
                .collect();
            if !conflicts.is_empty() {
                return Err(Conflicts(conflicts));
            }
            for (table, value) in &tables {
                let json: serde_json::Value = serde_json::from_str(value)
                    .map_err(|e| Conflicts(vec![format!("pending {table}: {e}")]))?;
                settings
                    .set_table_json(table, &json)
                    .map_err(|e| Conflicts(e.0.iter().map(ToString::to_string).collect()))?;
            }
            Ok(changes.len())
        })
        .await
    }

    /// Drops `user`'s pending changes.
    pub async fn abandon(&self, user: &str) -> Result<(), StoreError> {
        self.store.abandon_pending(user).await
    }
}

/// Staged tables that someone else changed meanwhile, one line each.
#[derive(Debug)]
pub struct Conflicts(pub Vec<String>);

impl std::fmt::Display for Conflicts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

#[cfg(test)]
mod tests;
