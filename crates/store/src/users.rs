//! Appliance accounts. Passwords arrive here already hashed; hashing is the caller's business.

use sqlx::Row;

use crate::{Store, StoreError, unix_now};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Can change everything.
    Admin,
    /// Can operate queues and quarantines but not change configuration.
    Operator,
    /// Can only look.
    ReadOnly,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::ReadOnly => "readonly",
        }
    }

    /// Whether this role may do what `required` may: admin > operator > read-only.
    pub fn at_least(self, required: Role) -> bool {
        let rank = |r: Role| match r {
            Role::Admin => 2,
            Role::Operator => 1,
            Role::ReadOnly => 0,
        };
        rank(self) >= rank(required)
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "operator" => Some(Role::Operator),
            "readonly" => Some(Role::ReadOnly),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    /// argon2 PHC string.
    pub password_hash: String,
    pub role: Role,
}

/// An account and its creation time from a row of `name, password_hash, role, created_at`, of
/// the local store or of the cluster database alike.
pub(crate) fn user_row<'r, R: Row>(r: &'r R) -> Result<(User, i64), sqlx::Error>
where
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let role: String = r.try_get("role")?;
    Ok((
        User {
            name: r.try_get("name")?,
            password_hash: r.try_get("password_hash")?,
            role: Role::parse(&role).unwrap_or(Role::ReadOnly),
        },
        r.try_get("created_at")?,
    ))
}

impl Store {
    pub async fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query("SELECT name, password_hash, role FROM users WHERE name = ?1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        match row {
            None => Ok(None),
            Some(r) => {
                let role: String = r.try_get("role")?;
                Ok(Some(User {
                    name: r.try_get("name")?,
                    password_hash: r.try_get("password_hash")?,
                    role: Role::parse(&role).unwrap_or(Role::ReadOnly),
                }))
            }
        }
    }

    pub async fn user_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(self.pool())
            .await?;
        Ok(n as u64)
    }

    /// Creates an account, or replaces its password and role.
    /// Creates or changes an account (in cluster mode in the cluster database, and in this
    /// node's copy).
    pub async fn put_user(&self, user: &User) -> Result<(), StoreError> {
        if let Some(c) = self.central() {
            return self.central_put_user(c, user, false).await.map(|_| ());
        }
        self.local_put_user(user).await
    }

    /// Creates `user` only when there is no account at all (the first start's `admin`; nodes
    /// of a cluster starting together create it once). Answers whether it did.
    pub async fn put_first_user(&self, user: &User) -> Result<bool, StoreError> {
        if let Some(c) = self.central() {
            return self.central_put_user(c, user, true).await;
        }
        let n = sqlx::query(
            "INSERT INTO users (name, password_hash, role, created_at) \
             SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS (SELECT 1 FROM users)",
        )
        .bind(&user.name)
        .bind(&user.password_hash)
        .bind(user.role.as_str())
        .bind(unix_now())
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    pub(crate) async fn local_put_user(&self, user: &User) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (name, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT(name) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role",
        )
        .bind(&user.name)
        .bind(&user.password_hash)
        .bind(user.role.as_str())
        .bind(unix_now())
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

impl Store {
    /// Every account, by name, with its creation time.
    /// Every account with its creation time (in force on this node).
    pub async fn users(&self) -> Result<Vec<(User, i64)>, StoreError> {
        self.local_users().await
    }

    pub(crate) async fn local_users(&self) -> Result<Vec<(User, i64)>, StoreError> {
        let rows =
            sqlx::query("SELECT name, password_hash, role, created_at FROM users ORDER BY name")
                .fetch_all(self.pool())
                .await?;
        Ok(rows
            .iter()
            .map(user_row)
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// Removes an account with its sessions and pending changes; returns whether it existed.
    pub async fn delete_user(&self, name: &str) -> Result<bool, StoreError> {
        if let Some(c) = self.central() {
            return self.central_delete_user(c, name).await;
        }
        self.local_delete_user(name).await
    }

    pub(crate) async fn local_delete_user(&self, name: &str) -> Result<bool, StoreError> {
        let n = sqlx::query("DELETE FROM users WHERE name = ?1")
            .bind(name)
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// Makes the local accounts the cluster's `users` (at `generation`): changed ones updated
    /// in place (their sessions end only with a new passphrase), removed ones deleted (their sessions and pending changes
    /// with them).
    pub(crate) async fn replace_local_users(
        &self,
        users: &[(User, i64)],
        generation: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        let local: Vec<(String, String)> = sqlx::query_as("SELECT name, password_hash FROM users")
            .fetch_all(&mut *tx)
            .await?;
        for (name, hash) in local {
            match users.iter().find(|(u, _)| u.name == name) {
                None => {
                    sqlx::query("DELETE FROM users WHERE name = ?1")
                        .bind(&name)
                        .execute(&mut *tx)
                        .await?;
                }
                // A new passphrase ends the account's sessions on every node, as on the one
                // where it was set.
                Some((u, _)) if u.password_hash != hash => {
                    sqlx::query("DELETE FROM sessions WHERE user = ?1")
                        .bind(&name)
                        .execute(&mut *tx)
                        .await?;
                }
                Some(_) => {}
            }
        }
        for (u, created) in users {
            sqlx::query(
                "INSERT INTO users (name, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT(name) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role",
            )
            .bind(&u.name)
            .bind(&u.password_hash)
            .bind(u.role.as_str())
            .bind(created)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE settings_meta SET users_generation = ?1 WHERE id = 1")
            .bind(generation)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
