//! Browser sessions of the web UI, identified by the hash of their cookie token.

use sqlx::Row;

use crate::{Role, Store, StoreError, unix_now};

/// A live browser session.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub role: Role,
    /// The token every form of this session must carry back.
    pub csrf: String,
}

impl Store {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{temp_store, user};

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
}
