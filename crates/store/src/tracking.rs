//! Message tracking: the events of each message (received, split, scanned, delivered, journaled,
//! bounced…) as they are committed with the change they describe, and the tracking search.

use sqlx::{Row, SqliteConnection};

use crate::{Mid, ROWS_PER_INSERT, Store, StoreError, placeholders};

/// One tracking event.
#[derive(Debug, Clone)]
pub struct TrackingEvent {
    /// Unix milliseconds.
    pub at: i64,
    pub text: String,
}

/// Tracking events in multi-row INSERTs.
pub(crate) async fn insert_tracking(
    tx: &mut SqliteConnection,
    events: &[(Mid, &str)],
    at_ms: i64,
) -> Result<(), StoreError> {
    for chunk in events.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO tracking (mid, at, text) VALUES {}",
            placeholders(chunk.len(), 3)
        );
        // Only generated placeholders are formatted into the SQL; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (mid, text) in chunk {
            q = q.bind(mid.0 as i64).bind(at_ms).bind(*text);
        }
        q.execute(&mut *tx).await?;
    }
    Ok(())
}

impl Store {
    /// Tracking events of one message, in order.
    pub async fn tracking(&self, mid: Mid) -> Result<Vec<TrackingEvent>, StoreError> {
        let rows = sqlx::query("SELECT at, text FROM tracking WHERE mid = ?1 ORDER BY id")
            .bind(mid.0 as i64)
            .fetch_all(self.pool())
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(TrackingEvent {
                    at: r.try_get("at")?,
                    text: r.try_get("text")?,
                })
            })
            .collect()
    }
}

/// A message tracking search; all given fields must match (substrings, case-insensitive).
#[derive(Debug, Clone, Default)]
pub struct TrackFilter {
    pub mid: Option<Mid>,
    pub sender: Option<String>,
    pub recipient: Option<String>,
    pub subject: Option<String>,
    /// Received at or after (unix seconds).
    pub since: Option<i64>,
    /// Received before (unix seconds).
    pub until: Option<i64>,
    pub limit: u32,
}

/// One message with its tracking events.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub mid: Mid,
    pub sender: String,
    pub recipients: Vec<String>,
    pub subject: Option<String>,
    pub message_id: Option<String>,
    pub received_at: i64,
    pub events: Vec<TrackingEvent>,
}

impl Store {
    /// Message tracking: messages matching `filter`, newest first, with their events.
    pub async fn track(&self, filter: &TrackFilter) -> Result<Vec<Tracked>, StoreError> {
        let like = |s: &Option<String>| {
            s.as_ref().map(|v| {
                format!(
                    "%{}%",
                    v.replace('\\', "\\\\")
                        .replace('%', "\\%")
                        .replace('_', "\\_")
                )
            })
        };
        let rows = sqlx::query(
            "SELECT m.mid, m.sender, m.subject, m.message_id, m.received_at FROM messages m \
             WHERE (?1 IS NULL OR m.mid = ?1) \
             AND (?2 IS NULL OR m.sender LIKE ?2 ESCAPE '\\') \
             AND (?3 IS NULL OR EXISTS (SELECT 1 FROM queue q WHERE q.mid = m.mid AND q.recipient LIKE ?3 ESCAPE '\\')) \
             AND (?4 IS NULL OR m.subject LIKE ?4 ESCAPE '\\') \
             AND (?6 IS NULL OR m.received_at >= ?6) AND (?7 IS NULL OR m.received_at < ?7) \
             ORDER BY m.mid DESC LIMIT ?5",
        )
        .bind(filter.mid.map(|m| m.0 as i64))
        .bind(like(&filter.sender))
        .bind(like(&filter.recipient))
        .bind(like(&filter.subject))
        .bind(filter.limit.max(1))
        .bind(filter.since)
        .bind(filter.until)
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let mid = Mid(r.try_get::<i64, _>("mid")? as u64);
            let recipients: Vec<String> = sqlx::query_scalar(
                "SELECT recipient FROM queue WHERE mid = ?1 AND kind = 'deliver' ORDER BY rcpt_idx",
            )
            .bind(mid.0 as i64)
            .fetch_all(self.pool())
            .await?;
            out.push(Tracked {
                mid,
                sender: r.try_get("sender")?,
                recipients,
                subject: r.try_get("subject")?,
                message_id: r.try_get("message_id")?,
                received_at: r.try_get("received_at")?,
                events: self.tracking(mid).await?,
            });
        }
        Ok(out)
    }
}
