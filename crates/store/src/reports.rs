//! Reporting (*Monitor > Overview*): message categories and outcomes per 5-minute slot, and top
//! lists per hour or day, kept as rollups (see the `reports` migration) so that a month of
//! history is a few thousand rows whatever the traffic was.

use std::collections::BTreeMap;

use sqlx::{Row, SqliteConnection};

use crate::{NewMessage, QueueKind, ROWS_PER_INSERT, Store, StoreError, placeholders, unix_now};

/// The width of a `report_counts` slot.
const SLOT_SECS: i64 = 300;
/// Reports look back 30 days; rows are kept a little longer so the oldest bucket is whole.
const KEEP_SECS: i64 = 32 * 86_400;
/// Keys kept per hour (or day) and list once the hour is over; the rest is summed under ''.
const TOP_KEPT: i64 = 100;
/// Top-list keys longer than this are cut (a recipient is at most 256 octets anyway).
const KEY_MAX: usize = 255;

/// A time series of the reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Series {
    /// Incoming messages (MIDs, one per policy split) by category: clean, spam (positive or
    /// suspect), virus, and the rest that a service stopped or flagged (content filters, DMARC,
    /// unscannable).
    InClean,
    InSpam,
    InVirus,
    InFiltered,
    /// The same for outgoing mail (from RELAY sender groups).
    OutClean,
    OutSpam,
    OutVirus,
    OutFiltered,
    /// Recipients delivered, bounced (refused by the destination or a service), expired.
    Delivered,
    Bounced,
    Expired,
    /// Journal copies to the Threat Defense intake: delivered, failed (refused or dropped),
    /// expired (the 120-second limit), and failed or expired ones queued again by a replay.
    JournalDelivered,
    JournalFailed,
    JournalExpired,
    JournalReplayed,
}

impl Series {
    pub const ALL: [Series; 15] = [
        Series::InClean,
        Series::InSpam,
        Series::InVirus,
        Series::InFiltered,
        Series::OutClean,
        Series::OutSpam,
        Series::OutVirus,
        Series::OutFiltered,
        Series::Delivered,
        Series::Bounced,
        Series::Expired,
        Series::JournalDelivered,
        Series::JournalFailed,
        Series::JournalExpired,
        Series::JournalReplayed,
    ];

    /// The name in the database, the API and the CSV export.
    pub fn as_str(self) -> &'static str {
        match self {
            Series::InClean => "in_clean",
            Series::InSpam => "in_spam",
            Series::InVirus => "in_virus",
            Series::InFiltered => "in_filtered",
            Series::OutClean => "out_clean",
            Series::OutSpam => "out_spam",
            Series::OutVirus => "out_virus",
            Series::OutFiltered => "out_filtered",
            Series::Delivered => "delivered",
            Series::Bounced => "bounced",
            Series::Expired => "expired",
            Series::JournalDelivered => "journal_delivered",
            Series::JournalFailed => "journal_failed",
            Series::JournalExpired => "journal_expired",
            Series::JournalReplayed => "journal_replayed",
        }
    }

    /// Words for a page.
    pub fn label(self) -> &'static str {
        match self {
            Series::InClean | Series::OutClean => "Clean",
            Series::InSpam | Series::OutSpam => "Spam",
            Series::InVirus | Series::OutVirus => "Virus",
            Series::InFiltered | Series::OutFiltered => "Content filters and other findings",
            Series::Delivered => "Recipients delivered",
            Series::Bounced => "Recipients bounced",
            Series::Expired => "Recipients expired",
            Series::JournalDelivered => "Journaled",
            Series::JournalFailed => "Journal copies failed",
            Series::JournalExpired => "Journal copies expired",
            Series::JournalReplayed => "Journal copies replayed",
        }
    }

    fn parse(s: &str) -> Option<Series> {
        Series::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The category of a message, as the migration's backfill computes it too.
    fn of(m: &NewMessage) -> Series {
        let spam = matches!(m.spam, Some("positive" | "suspect"));
        let virus = m.virus == Some("positive");
        let filtered = m.verdict != "deliver" || !m.findings.is_empty();
        match (m.relayed, virus, spam, filtered) {
            (false, true, _, _) => Series::InVirus,
            (false, _, true, _) => Series::InSpam,
            (false, _, _, true) => Series::InFiltered,
            (false, ..) => Series::InClean,
            (true, true, _, _) => Series::OutVirus,
            (true, _, true, _) => Series::OutSpam,
            (true, _, _, true) => Series::OutFiltered,
            (true, ..) => Series::OutClean,
        }
    }
}

/// The time range of a report: its buckets end with the one holding now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportRange {
    /// 12 buckets of 5 minutes.
    Hour,
    /// 24 buckets of an hour.
    Day,
    /// 28 buckets of 6 hours.
    Week,
    /// 30 buckets of a day.
    Month,
}

impl ReportRange {
    pub const ALL: [ReportRange; 4] = [
        ReportRange::Hour,
        ReportRange::Day,
        ReportRange::Week,
        ReportRange::Month,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportRange::Hour => "hour",
            ReportRange::Day => "day",
            ReportRange::Week => "week",
            ReportRange::Month => "month",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ReportRange::Hour => "Hour",
            ReportRange::Day => "Day",
            ReportRange::Week => "Week",
            ReportRange::Month => "30 days",
        }
    }

    /// `hour`, `day`, `week`, `month` (or `30d`).
    pub fn parse(s: &str) -> Option<ReportRange> {
        match s.trim().to_ascii_lowercase().as_str() {
            "hour" | "1h" => Some(ReportRange::Hour),
            "day" | "24h" | "1d" => Some(ReportRange::Day),
            "week" | "7d" => Some(ReportRange::Week),
            "month" | "30d" | "30 days" => Some(ReportRange::Month),
            _ => None,
        }
    }

    /// Bucket width in seconds and number of buckets.
    pub fn buckets(self) -> (i64, usize) {
        match self {
            ReportRange::Hour => (300, 12),
            ReportRange::Day => (3600, 24),
            ReportRange::Week => (6 * 3600, 28),
            ReportRange::Month => (86_400, 30),
        }
    }

    /// Top lists count whole hours (hour, day) or whole days (week, 30 days).
    fn top_granularity(self) -> i64 {
        match self {
            ReportRange::Hour | ReportRange::Day => 3600,
            ReportRange::Week | ReportRange::Month => 86_400,
        }
    }
}

/// One bucket of a report's time series.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportBucket {
    /// Unix seconds.
    pub start: i64,
    pub counts: BTreeMap<Series, u64>,
}

impl ReportBucket {
    pub fn get(&self, s: Series) -> u64 {
        self.counts.get(&s).copied().unwrap_or(0)
    }
}

/// One line of a top list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopEntry {
    pub key: String,
    pub n: u64,
}

/// A top list: its biggest keys, and what the rest adds up to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopList {
    pub entries: Vec<TopEntry>,
    /// Everything not listed, including keys summed away when their hour ended.
    pub others: u64,
}

/// A report over a [`ReportRange`].
#[derive(Debug, Clone)]
pub struct Report {
    pub range: ReportRange,
    /// The first bucket's start and the last one's end (unix seconds).
    pub start: i64,
    pub end: i64,
    pub buckets: Vec<ReportBucket>,
    /// Where the top lists start (whole hours or days: at or before `start`).
    pub top_start: i64,
    pub sender_domains: TopList,
    pub sender_ips: TopList,
    pub recipients: TopList,
    pub threats: TopList,
}

impl Report {
    /// The series summed over the range.
    pub fn total(&self, s: Series) -> u64 {
        self.buckets.iter().map(|b| b.get(s)).sum()
    }
}

/// A top-list key as stored: trimmed, lower case for addresses and domains, at most
/// [`KEY_MAX`] bytes.
fn key(s: &str, lower: bool) -> String {
    let s = if lower {
        s.trim().to_lowercase()
    } else {
        s.trim().to_owned()
    };
    if s.len() <= KEY_MAX {
        return s;
    }
    let mut end = KEY_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default().to_owned()
}

/// Adds a group commit's messages to the reports, in the writer's transaction: a handful of
/// upserts per commit, however many messages it carries. Bounce notices Rampart generated
/// (ICID 0) are not mail received; their deliveries still count as recipients.
pub(crate) async fn count_messages(
    tx: &mut SqliteConnection,
    messages: &[&NewMessage],
    received_at: i64,
) -> Result<(), StoreError> {
    let slot = received_at.div_euclid(SLOT_SECS);
    let hour = received_at.div_euclid(3600) * 3600;
    let mut series: BTreeMap<&'static str, i64> = BTreeMap::new();
    let mut top: BTreeMap<(&'static str, String), i64> = BTreeMap::new();
    for m in messages.iter().filter(|m| m.icid != 0) {
        *series.entry(Series::of(m).as_str()).or_default() += 1;
        for t in &m.threats {
            *top.entry(("threat", key(t, false))).or_default() += 1;
        }
        if m.relayed {
            continue;
        }
        let domain = match m.sender.rsplit_once('@') {
            Some((_, d)) => key(d, true),
            None if m.sender.is_empty() => "<>".to_owned(),
            None => key(&m.sender, true),
        };
        *top.entry(("sender_domain", domain)).or_default() += 1;
        *top.entry(("sender_ip", key(&m.remote_ip, false)))
            .or_default() += 1;
        for r in m.recipients.iter().filter(|r| r.kind == QueueKind::Deliver) {
            *top.entry(("recipient", key(&r.recipient, true)))
                .or_default() += 1;
        }
    }
    if !series.is_empty() {
        let sql = format!(
            "INSERT INTO report_counts (slot, series, n) VALUES {} \
             ON CONFLICT (slot, series) DO UPDATE SET n = n + excluded.n",
            placeholders(series.len(), 3)
        );
        // Only generated placeholders are formatted into the SQL; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (s, n) in &series {
            q = q.bind(slot).bind(*s).bind(*n);
        }
        q.execute(&mut *tx).await?;
    }
    let top: Vec<_> = top.into_iter().collect();
    for chunk in top.chunks(ROWS_PER_INSERT / 5) {
        let sql = format!(
            "INSERT INTO report_top (dimension, start, span, key, n) VALUES {} \
             ON CONFLICT (dimension, start, span, key) DO UPDATE SET n = n + excluded.n",
            placeholders(chunk.len(), 5)
        );
        // Only generated placeholders are formatted into the SQL; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for ((dimension, key), n) in chunk {
            q = q
                .bind(*dimension)
                .bind(hour)
                .bind(3600i64)
                .bind(key)
                .bind(*n);
        }
        q.execute(&mut *tx).await?;
    }
    Ok(())
}

impl Store {
    /// The report over `range` ending now, with the `top` biggest keys of each list.
    pub async fn report(&self, range: ReportRange, top: usize) -> Result<Report, StoreError> {
        self.report_at(range, top, unix_now()).await
    }

    pub(crate) async fn report_at(
        &self,
        range: ReportRange,
        top: usize,
        now: i64,
    ) -> Result<Report, StoreError> {
        let (width, n) = range.buckets();
        let end = (now.div_euclid(width) + 1) * width;
        let start = end - width * n as i64;
        let mut buckets: Vec<ReportBucket> = (0..n)
            .map(|i| ReportBucket {
                start: start + width * i as i64,
                counts: BTreeMap::new(),
            })
            .collect();
        let rows = sqlx::query(
            "SELECT (slot * 300 - ?1) / ?2 AS b, series, SUM(n) AS n FROM report_counts \
             WHERE slot >= ?3 GROUP BY b, series",
        )
        .bind(start)
        .bind(width)
        .bind(start.div_euclid(SLOT_SECS))
        .fetch_all(self.pool())
        .await?;
        for r in rows {
            let b: i64 = r.try_get("b")?;
            let name: String = r.try_get("series")?;
            let (Some(bucket), Some(series)) = (
                usize::try_from(b).ok().and_then(|b| buckets.get_mut(b)),
                Series::parse(&name),
            ) else {
                continue;
            };
            *bucket.counts.entry(series).or_default() += r.try_get::<i64, _>("n")?.max(0) as u64;
        }
        let top_start = start.div_euclid(range.top_granularity()) * range.top_granularity();
        Ok(Report {
            range,
            start,
            end,
            buckets,
            top_start,
            sender_domains: self.top_list("sender_domain", top_start, top).await?,
            sender_ips: self.top_list("sender_ip", top_start, top).await?,
            recipients: self.top_list("recipient", top_start, top).await?,
            threats: self.top_list("threat", top_start, top).await?,
        })
    }

    async fn top_list(
        &self,
        dimension: &str,
        since: i64,
        top: usize,
    ) -> Result<TopList, StoreError> {
        let rows = sqlx::query(
            "SELECT key, SUM(n) AS n FROM report_top WHERE dimension = ?1 AND start >= ?2 \
             GROUP BY key ORDER BY n DESC, key",
        )
        .bind(dimension)
        .bind(since)
        .fetch_all(self.pool())
        .await?;
        let mut list = TopList::default();
        for r in rows {
            let key: String = r.try_get("key")?;
            let n = r.try_get::<i64, _>("n")?.max(0) as u64;
            if key.is_empty() || list.entries.len() >= top {
                list.others += n;
            } else {
                list.entries.push(TopEntry { key, n });
            }
        }
        Ok(list)
    }

    /// Keeps the reports small (run by retention every few minutes): an hour that is over keeps
    /// its 100 biggest keys per list and sums the rest under ''; before yesterday, top lists are
    /// folded into days (trimmed the same way) and 5-minute counts into hours; rows older than
    /// 32 days go. A month is then about 11,000 count rows and 12,000 top-list rows. The
    /// per-minute counters of System Status and the ledger summaries are kept 2 and 32 days.
    pub async fn compact_reports(&self) -> Result<(), StoreError> {
        self.compact_reports_at(unix_now()).await
    }

    pub(crate) async fn compact_reports_at(&self, now: i64) -> Result<(), StoreError> {
        let this_hour = now.div_euclid(3600) * 3600;
        let yesterday = (now.div_euclid(86_400) - 1) * 86_400;
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO report_top (dimension, start, span, key, n) \
             SELECT dimension, start / 86400 * 86400, 86400, key, SUM(n) FROM report_top \
             WHERE span = 3600 AND start < ?1 GROUP BY 1, 2, 4 \
             ON CONFLICT (dimension, start, span, key) DO UPDATE SET n = n + excluded.n",
        )
        .bind(yesterday)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM report_top WHERE span = 3600 AND start < ?1")
            .bind(yesterday)
            .execute(&mut *tx)
            .await?;
        // Groups that are complete (the hour or day is over) and have more than TOP_KEPT keys.
        // Recent ones only: older groups were trimmed by an earlier pass.
        const RANKED: &str = "WITH ranked AS (SELECT dimension, start, span, key, n, \
             ROW_NUMBER() OVER (PARTITION BY dimension, start, span ORDER BY n DESC, key) AS r \
             FROM report_top WHERE key != '' AND start >= ?1 AND start + span <= ?2) ";
        let since = yesterday - 2 * 86_400;
        let fold = format!(
            "{RANKED} INSERT INTO report_top (dimension, start, span, key, n) \
             SELECT dimension, start, span, '', SUM(n) FROM ranked WHERE r > ?3 GROUP BY 1, 2, 3 \
             ON CONFLICT (dimension, start, span, key) DO UPDATE SET n = n + excluded.n"
        );
        sqlx::query(sqlx::AssertSqlSafe(fold))
            .bind(since)
            .bind(this_hour)
            .bind(TOP_KEPT)
            .execute(&mut *tx)
            .await?;
        let delete = format!(
            "{RANKED} DELETE FROM report_top WHERE (dimension, start, span, key) IN \
             (SELECT dimension, start, span, key FROM ranked WHERE r > ?3)"
        );
        sqlx::query(sqlx::AssertSqlSafe(delete))
            .bind(since)
            .bind(this_hour)
            .bind(TOP_KEPT)
            .execute(&mut *tx)
            .await?;
        // 5-minute slots before yesterday become hours (the slot of the hour's start): only the
        // week and 30-day ranges reach back that far, and their buckets are whole hours.
        let hours_before = yesterday.div_euclid(SLOT_SECS);
        sqlx::query(
            "INSERT INTO report_counts (slot, series, n) \
             SELECT slot / 12 * 12, series, SUM(n) FROM report_counts \
             WHERE slot < ?1 AND slot % 12 != 0 GROUP BY 1, 2 \
             ON CONFLICT (slot, series) DO UPDATE SET n = n + excluded.n",
        )
        .bind(hours_before)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM report_counts WHERE slot < ?1 AND slot % 12 != 0")
            .bind(hours_before)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM report_top WHERE start < ?1")
            .bind(now - KEEP_SECS - 86_400)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM report_counts WHERE slot < ?1")
            .bind((now - KEEP_SECS).div_euclid(SLOT_SECS))
            .execute(&mut *tx)
            .await?;
        // The per-minute counters of System Status (its chart shows six hours) and of the
        // ledger's summaries (an hour and a day) would otherwise grow a row per minute forever.
        sqlx::query("DELETE FROM activity_minutes WHERE minute < ?1")
            .bind((now - 2 * 86_400).div_euclid(60))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM journal_minutes WHERE minute < ?1")
            .bind((now - KEEP_SECS).div_euclid(60))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{new_message, temp_store};
    use crate::{NewRecipient, RowState};

    #[tokio::test]
    async fn messages_are_counted_by_category_and_in_the_top_lists() {
        let (_dir, store) = temp_store().await;
        let mut spam = new_message(store.next_mid().await.unwrap(), 2);
        spam.spam = Some("positive");
        spam.verdict = "quarantine".into();
        spam.findings = "spam positive (score 15.00)".into();
        spam.threats = vec!["Spam".into()];
        store.accept(spam).await.unwrap();
        let mut other = new_message(store.next_mid().await.unwrap(), 1);
        other.sender = "B@Example.NET".into();
        other.remote_ip = "192.0.2.9".into();
        store.accept(other).await.unwrap();
        let mut out = new_message(store.next_mid().await.unwrap(), 1);
        out.relayed = true;
        out.sender = "me@inside.test".into();
        store.accept(out).await.unwrap();
        let mut notice = new_message(store.next_mid().await.unwrap(), 1);
        notice.icid = 0;
        notice.sender = String::new();
        store.accept(notice).await.unwrap();

        let r = store.report(ReportRange::Hour, 10).await.unwrap();
        assert_eq!(r.total(Series::InSpam), 1);
        assert_eq!(r.total(Series::InClean), 1);
        assert_eq!(r.total(Series::OutClean), 1);
        assert_eq!(r.buckets.len(), 12);
        // Incoming senders only; domains in lower case, the most frequent first.
        let domains: Vec<_> = r
            .sender_domains
            .entries
            .iter()
            .map(|e| (e.key.as_str(), e.n))
            .collect();
        assert_eq!(domains, [("example.net", 1), ("example.org", 1)]);
        let ips: Vec<_> = r.sender_ips.entries.iter().map(|e| e.n).collect();
        assert_eq!(ips, [1, 1]);
        let rcpts: Vec<_> = r
            .recipients
            .entries
            .iter()
            .map(|e| (e.key.as_str(), e.n))
            .collect();
        assert_eq!(rcpts, [("u0@example.com", 2), ("u1@example.com", 1)]);
        assert_eq!(
            r.threats.entries,
            [TopEntry {
                key: "Spam".into(),
                n: 1
            }]
        );
        let r = store.report(ReportRange::Hour, 1).await.unwrap();
        assert_eq!(r.recipients.entries.len(), 1);
        assert_eq!(r.recipients.others, 1);
    }

    #[tokio::test]
    async fn outcomes_are_counted_when_rows_finish_and_replays_when_queued_again() {
        let (_dir, store) = temp_store().await;
        let mid = store.next_mid().await.unwrap();
        store
            .accept(NewMessage {
                recipients: vec![
                    NewRecipient {
                        rcpt_idx: 0,
                        recipient: "u@example.com".into(),
                        queue_name: "example.com".into(),
                        kind: QueueKind::Deliver,
                        state: RowState::Bounced,
                    },
                    NewRecipient {
                        rcpt_idx: 1,
                        recipient: "j@intake.test".into(),
                        queue_name: "the.tdc.queue".into(),
                        kind: QueueKind::Journal,
                        state: RowState::Queued,
                    },
                ],
                ..new_message(mid, 0)
            })
            .await
            .unwrap();
        sqlx::query("UPDATE queue SET state = 'expired', done_at = ?1 WHERE kind = 'journal'")
            .bind(unix_now())
            .execute(store.pool())
            .await
            .unwrap();
        sqlx::query("UPDATE queue SET replayed_at = ?1 WHERE kind = 'journal'")
            .bind(unix_now())
            .execute(store.pool())
            .await
            .unwrap();
        let r = store.report(ReportRange::Day, 10).await.unwrap();
        assert_eq!(r.total(Series::Bounced), 1);
        assert_eq!(r.total(Series::JournalExpired), 1);
        assert_eq!(r.total(Series::JournalReplayed), 1);
        assert_eq!(r.total(Series::JournalDelivered), 0);
        assert_eq!(r.buckets.len(), 24);
    }

    #[tokio::test]
    async fn compaction_keeps_the_biggest_keys_folds_days_and_forgets_old_rows() {
        let (_dir, store) = temp_store().await;
        let now = 100 * 86_400 + 12 * 3600;
        let insert = |dimension: &'static str, start: i64, key: String, n: i64| {
            let store = store.clone();
            async move {
                sqlx::query(
                    "INSERT INTO report_top (dimension, start, span, key, n) VALUES (?1, ?2, 3600, ?3, ?4)",
                )
                .bind(dimension)
                .bind(start)
                .bind(key)
                .bind(n)
                .execute(store.pool())
                .await
                .unwrap();
            }
        };
        // Last hour (over): 150 keys; key i has i + 1 messages.
        let last_hour = now - 3600 - now % 3600;
        for i in 0..150 {
            insert("sender_ip", last_hour, format!("k{i:03}"), i + 1).await;
        }
        // This hour: not trimmed while it fills.
        for i in 0..150 {
            insert("sender_ip", now - now % 3600, format!("c{i:03}"), 1).await;
        }
        // Three days ago, two hours: folded into one day row per key.
        let old = now - 3 * 86_400 - now % 86_400;
        insert("recipient", old, "a@x".into(), 2).await;
        insert("recipient", old + 3600, "a@x".into(), 3).await;
        // Forty days ago: gone.
        insert("recipient", now - 40 * 86_400, "gone@x".into(), 1).await;
        // Counts: one slot forty days ago (gone), three 5-minute slots of one hour three days
        // ago (one hour row), one slot of the last hour (kept as it is).
        let hour_slot = old / 300 + 24;
        for (slot, n) in [
            ((now - 40 * 86_400) / 300, 1),
            (hour_slot + 1, 2),
            (hour_slot + 5, 3),
            (hour_slot + 11, 4),
            (last_hour / 300 + 3, 7),
        ] {
            sqlx::query("INSERT INTO report_counts (slot, series, n) VALUES (?1, 'in_clean', ?2)")
                .bind(slot)
                .bind(n)
                .execute(store.pool())
                .await
                .unwrap();
        }

        for (table, minute) in [
            ("activity_minutes", (now - 3 * 86_400) / 60),
            ("activity_minutes", now / 60),
            ("journal_minutes", (now - 40 * 86_400) / 60),
            ("journal_minutes", now / 60),
        ] {
            let sql = if table == "activity_minutes" {
                "INSERT INTO activity_minutes (minute, kind, state, n) VALUES (?1, 'message', 'received', 1)"
            } else {
                "INSERT INTO journal_minutes (minute, state, replayed, n) VALUES (?1, 'delivered', 0, 1)"
            };
            sqlx::query(sql)
                .bind(minute)
                .execute(store.pool())
                .await
                .unwrap();
        }

        store.compact_reports_at(now).await.unwrap();

        for table in ["activity_minutes", "journal_minutes"] {
            let minutes: Vec<i64> =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT minute FROM {table}")))
                    .fetch_all(store.pool())
                    .await
                    .unwrap();
            assert_eq!(minutes, [now / 60], "{table}: only the recent minute stays");
        }

        let rows = |sql: &'static str| {
            let store = store.clone();
            async move {
                sqlx::query_as::<_, (i64, i64, String, i64)>(sql)
                    .fetch_all(store.pool())
                    .await
                    .unwrap()
            }
        };
        let last: Vec<_> = rows(
            "SELECT start, span, key, n FROM report_top WHERE dimension = 'sender_ip' \
             AND key NOT LIKE 'c%' ORDER BY n DESC",
        )
        .await;
        assert_eq!(last.len(), 101, "100 keys and the others");
        assert!(last.iter().any(|r| r.2 == "k149" && r.3 == 150));
        assert!(!last.iter().any(|r| r.2 == "k049"), "the 100 biggest stay");
        let others = last.iter().find(|r| r.2.is_empty()).unwrap();
        assert_eq!(others.3, (1..=50).sum::<i64>());
        let current = rows(
            "SELECT start, span, key, n FROM report_top WHERE dimension = 'sender_ip' AND key LIKE 'c%'",
        )
        .await;
        assert_eq!(current.len(), 150);
        let recipients = rows(
            "SELECT start, span, key, n FROM report_top WHERE dimension = 'recipient' ORDER BY start",
        )
        .await;
        assert_eq!(recipients, [(old, 86_400, "a@x".to_owned(), 5)]);
        let counts: Vec<(i64, i64)> =
            sqlx::query_as("SELECT slot, n FROM report_counts ORDER BY slot")
                .fetch_all(store.pool())
                .await
                .unwrap();
        assert_eq!(counts, [(hour_slot, 9), (last_hour / 300 + 3, 7)]);
        let week = store.report_at(ReportRange::Week, 5, now).await.unwrap();
        assert_eq!(week.total(Series::InClean), 16);

        // A day report at that time still sees the trimmed hour whole.
        let r = store.report_at(ReportRange::Day, 5, now).await.unwrap();
        let total: u64 =
            r.sender_ips.entries.iter().map(|e| e.n).sum::<u64>() + r.sender_ips.others;
        assert_eq!(total, (1..=150).sum::<u64>() + 150);
        assert_eq!(r.sender_ips.entries.first().map(|e| e.n), Some(150));
    }
}
