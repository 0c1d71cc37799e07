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
    pub async fn put_user(&self, user: &User) -> Result<(), StoreError> {
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
}
