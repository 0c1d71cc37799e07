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

/// A message tracking search; all given fields must match (text fields as substrings,
/// case-insensitive).
#[derive(Debug, Clone, Default)]
pub struct TrackFilter {
    pub mid: Option<Mid>,
    pub sender: Option<String>,
    /// An envelope recipient (not the journal copies' intake address).
    pub recipient: Option<String>,
    pub subject: Option<String>,
    /// The Message-ID header.
    pub message_id: Option<String>,
    /// The client's IP address, exactly as the mail logs show it.
    pub remote_ip: Option<String>,
    /// The mail policy (exact name, any case).
    pub policy: Option<String>,
    /// Something that happened to the message.
    pub event: Option<TrackEvent>,
    /// Received at or after (unix seconds).
    pub since: Option<i64>,
    /// Received before (unix seconds).
    pub until: Option<i64>,
    pub limit: u32,
    /// Matches skipped (newest first), for paging.
    pub offset: u32,
}

/// What happened to a message, as the tracking search offers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackEvent {
    /// A recipient was delivered.
    Delivered,
    /// A recipient is still waiting for delivery.
    Queued,
    /// A recipient hard bounced or expired, or the message was refused at DATA.
    Bounced,
    /// The message was quarantined.
    Quarantined,
    /// The message was dropped (a policy's action) or a recipient deleted from the quarantine.
    Dropped,
    /// Its journal copy reached the Threat Defense intake.
    Journaled,
    /// Its journal copy failed or expired.
    JournalFailed,
    /// Anti-Spam found it positive or suspect.
    Spam,
    /// Anti-Virus found it infected.
    Virus,
}

impl TrackEvent {
    /// Every event with its query name and its label on the page.
    pub const ALL: [(TrackEvent, &'static str, &'static str); 9] = [
        (TrackEvent::Delivered, "delivered", "Delivered"),
        (TrackEvent::Queued, "queued", "Waiting for delivery"),
        (TrackEvent::Bounced, "bounced", "Bounced"),
        (TrackEvent::Quarantined, "quarantined", "Quarantined"),
        (TrackEvent::Dropped, "dropped", "Dropped"),
        (
            TrackEvent::Journaled,
            "journaled",
            "Journaled to Threat Defense",
        ),
        (
            TrackEvent::JournalFailed,
            "journal_failed",
            "Journal copy failed",
        ),
        (TrackEvent::Spam, "spam", "Spam (positive or suspect)"),
        (TrackEvent::Virus, "virus", "Virus"),
    ];

    /// From its query name (`journal_failed`).
    pub fn parse(s: &str) -> Option<TrackEvent> {
        TrackEvent::ALL
            .iter()
            .find(|(_, slug, _)| *slug == s)
            .map(|(e, _, _)| *e)
    }

    /// From its query name, or an error naming the allowed ones (for the API, UI and CLI).
    pub fn parse_named(s: &str) -> Result<TrackEvent, String> {
        TrackEvent::parse(s).ok_or_else(|| {
            let names: Vec<&str> = TrackEvent::ALL.iter().map(|(_, slug, _)| *slug).collect();
            format!("unknown event {s:?}: use one of {}", names.join(", "))
        })
    }

    pub fn slug(self) -> &'static str {
        TrackEvent::ALL
            .iter()
            .find(|(e, _, _)| *e == self)
            .map_or("", |(_, slug, _)| slug)
    }

    /// The condition on a message `m`: fixed text, never built from input.
    pub(crate) fn sql(self) -> &'static str {
        match self {
            TrackEvent::Delivered => {
                "EXISTS (SELECT 1 FROM queue q WHERE q.mid = m.mid AND q.kind = 'deliver' AND q.state = 'delivered')"
            }
            TrackEvent::Queued => {
                "EXISTS (SELECT 1 FROM queue q WHERE q.mid = m.mid AND q.kind = 'deliver' AND q.state = 'queued')"
            }
            TrackEvent::Bounced => {
                "(m.verdict = 'bounce' OR EXISTS (SELECT 1 FROM queue q WHERE q.mid = m.mid AND q.kind = 'deliver' \
                 AND q.state IN ('bounced', 'expired')))"
            }
            TrackEvent::Quarantined => {
                "(m.verdict = 'quarantine' OR EXISTS (SELECT 1 FROM queue q WHERE q.mid = m.mid AND q.state = 'quarantined'))"
            }
            TrackEvent::Dropped => {
                "(m.verdict = 'drop' OR EXISTS (SELECT 1 FROM queue q WHERE q.mid = m.mid AND q.kind = 'deliver' AND q.state = 'dropped'))"
            }
            TrackEvent::Journaled => {
                "EXISTS (SELECT 1 FROM queue q WHERE q.mid = m.mid AND q.kind = 'journal' AND q.state = 'delivered')"
            }
            TrackEvent::JournalFailed => {
                "EXISTS (SELECT 1 FROM queue q WHERE q.mid = m.mid AND q.kind = 'journal' \
                 AND q.state IN ('bounced', 'expired', 'dropped'))"
            }
            TrackEvent::Spam => "COALESCE(m.spam, '') IN ('positive', 'suspect')",
            TrackEvent::Virus => "COALESCE(m.virus, '') = 'positive'",
        }
    }
}

/// The conditions of a search, parameters ?1 to ?9 (see [`TrackFilter::params`]).
const TRACK_WHERE: &str = "(?1 IS NULL OR m.mid = ?1) \
     AND (?2 IS NULL OR m.sender LIKE ?2 ESCAPE '\\') \
     AND (?3 IS NULL OR EXISTS (SELECT 1 FROM queue q WHERE q.mid = m.mid AND q.kind = 'deliver' \
          AND q.recipient LIKE ?3 ESCAPE '\\')) \
     AND (?4 IS NULL OR m.subject LIKE ?4 ESCAPE '\\') \
     AND (?5 IS NULL OR m.received_at >= ?5) AND (?6 IS NULL OR m.received_at < ?6) \
     AND (?7 IS NULL OR m.message_id LIKE ?7 ESCAPE '\\') \
     AND (?8 IS NULL OR m.remote_ip = ?8) \
     AND (?9 IS NULL OR m.policy = ?9 COLLATE NOCASE)";

/// One bound value of a search.
enum Param {
    Int(Option<i64>),
    Text(Option<String>),
}

impl TrackFilter {
    /// The values of ?1 to ?9 of [`TRACK_WHERE`].
    fn params(&self) -> [Param; 9] {
        let like = |s: &Option<String>| {
            Param::Text(s.as_ref().map(|v| {
                format!(
                    "%{}%",
                    v.replace('\\', "\\\\")
                        .replace('%', "\\%")
                        .replace('_', "\\_")
                )
            }))
        };
        [
            Param::Int(self.mid.map(|m| m.0 as i64)),
            like(&self.sender),
            like(&self.recipient),
            like(&self.subject),
            Param::Int(self.since),
            Param::Int(self.until),
            like(&self.message_id),
            Param::Text(self.remote_ip.clone()),
            Param::Text(self.policy.clone()),
        ]
    }

    /// `WHERE …` of the search: the fixed conditions and the event's fixed condition.
    fn where_clause(&self) -> String {
        match self.event {
            Some(e) => format!("WHERE {TRACK_WHERE} AND {}", e.sql()),
            None => format!("WHERE {TRACK_WHERE}"),
        }
    }
}

/// Binds a search's parameters to a query, in order.
macro_rules! bind_params {
    ($q:expr, $params:expr) => {{
        let mut q = $q;
        for p in $params {
            q = match p {
                Param::Int(v) => q.bind(v),
                Param::Text(v) => q.bind(v),
            };
        }
        q
    }};
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
        // Only fixed text is formatted into the SQL (the conditions and the event's); every
        // value is bound.
        let sql = format!(
            "SELECT m.mid, m.sender, m.subject, m.message_id, m.received_at FROM messages m {} \
             ORDER BY m.mid DESC LIMIT ?10 OFFSET ?11",
            filter.where_clause()
        );
        let q = bind_params!(sqlx::query(sqlx::AssertSqlSafe(sql)), filter.params());
        let rows = q
            .bind(filter.limit.max(1))
            .bind(filter.offset)
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

impl Store {
    /// How many messages match `filter` (its limit and offset aside): the total of a paged
    /// search.
    pub async fn track_count(&self, filter: &TrackFilter) -> Result<u64, StoreError> {
        let sql = format!("SELECT COUNT(*) FROM messages m {}", filter.where_clause());
        let q = bind_params!(
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql)),
            filter.params()
        );
        Ok(q.fetch_one(self.pool()).await?.max(0) as u64)
    }
}
