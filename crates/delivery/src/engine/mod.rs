//! The queue manager: one scheduler task that claims due queue rows, sorts them into
//! per-destination queues and starts connection workers within each destination's limits.
//!
//! Bursts of new mail wake the scheduler through the store's notification, so a message is on its
//! way as soon as it is committed; retries wake it by time. Workers deliver over one connection
//! as many messages as the destination allows, then close; recipients of one message for one
//! destination go in one SMTP transaction with a reply per recipient.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rampart_maillog::{MailLog, quote};
use rampart_settings::{SharedSettings, Snapshot, TlsPolicy};
use rampart_smtp::Reply;
use rampart_store::{
    Claimed, Dcid, HostDelta, Mid, NewMessage, Outcome, QueueKind, RowOutcome, Store, unix_now,
};
use tokio::sync::{Mutex, mpsc, watch};

use crate::client::{ClientError, Connection, Timeouts, TlsConfigs, TlsUse};
use crate::route::{self, RouteError, Target};
use rampart_dns::Resolver;
use rampart_dsn as dsn;

mod journal;
pub use journal::{TdcConfig, TdcTls};

/// Whether a connection can carry the next job after one was sent over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
enum Connected {
    Usable,
    /// The session failed: close it and open a new one for the next job.
    Broken,
}

/// How long a claimed row stays leased; only a crash leaves a lease to run out, and start-up
/// releases those at once.
const LEASE_SECS: i64 = 3600;
/// Rows claimed per pass.
const CLAIM_BATCH: u32 = 1000;
/// Longest the scheduler sleeps without looking at the queue: another process (the CLI's
/// `deliverynow`, a quarantine release) can make rows due without waking this one.
const MAX_IDLE: Duration = Duration::from_secs(1);

/// Delivery tunables from the bootstrap configuration.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// EHLO name and DSN reporting host.
    pub hostname: String,
    /// Port for MX hosts and for SMTP route hosts that name no port.
    pub port: u16,
    pub timeouts: Timeouts,
    /// The Threat Defense Connector's queue settings.
    pub tdc: TdcConfig,
}

/// The delivery engine; cheap to clone.
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: EngineConfig,
    store: Store,
    settings: SharedSettings,
    log: MailLog,
    resolver: Arc<dyn Resolver>,
    tls: TlsConfigs,
    dests: Mutex<HashMap<String, Arc<Dest>>>,
    /// Queue row IDs held in memory by the scheduler or a worker.
    inflight: std::sync::Mutex<HashSet<i64>>,
    shutdown: watch::Receiver<bool>,
    /// Attempt outcomes being committed in the background; shutdown waits for them.
    committing: AtomicUsize,
    committed: tokio::sync::Notify,
}

/// One destination queue in memory.
#[derive(Debug)]
struct Dest {
    name: String,
    pending: std::sync::Mutex<VecDeque<Job>>,
    active: AtomicUsize,
    /// The last route resolution `(when, domain, targets)`, shared by the destination's
    /// workers so that simultaneous connections cost one lookup, and held while resolving so a
    /// failed lookup fails the waiting jobs once instead of once per worker.
    routing: Mutex<Option<(std::time::Instant, String, Vec<Target>)>>,
}

/// How long a successful route resolution is reused by a destination's workers.
const ROUTE_REUSE: Duration = Duration::from_secs(5);

/// The rows of one message for one destination: delivered in one transaction.
#[derive(Debug, Clone)]
struct Job {
    mid: Mid,
    rows: Vec<Claimed>,
}

impl Engine {
    pub fn new(
        config: EngineConfig,
        store: Store,
        settings: SharedSettings,
        log: MailLog,
        resolver: Arc<dyn Resolver>,
        tls: TlsConfigs,
        shutdown: watch::Receiver<bool>,
    ) -> Engine {
        Engine {
            inner: Arc::new(Inner {
                config,
                store,
                settings,
                log,
                resolver,
                tls,
                dests: Mutex::default(),
                inflight: std::sync::Mutex::default(),
                shutdown,
                committing: AtomicUsize::new(0),
                committed: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Runs the scheduler until shutdown.
    pub async fn run(self) {
        let inner = self.inner;
        match inner.store.release_leases().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "released deliveries interrupted by the last stop"),
            Err(e) => tracing::error!(error = %e, "cannot release leases"),
        }
        let notify = inner.store.queued_notify();
        let (exit_tx, mut exit_rx) = mpsc::unbounded_channel::<()>();
        let mut shutdown = inner.shutdown.clone();
        loop {
            if *shutdown.borrow() {
                break;
            }
            inner.claim().await;
            inner.spawn_workers(&exit_tx).await;
            let wait = match inner.store.next_due_at().await {
                Ok(Some(at)) => {
                    Duration::from_secs((at - unix_now()).clamp(0, MAX_IDLE.as_secs() as i64) as u64)
                }
                Ok(None) => MAX_IDLE,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the queue");
                    Duration::from_secs(1)
                }
            };
            // A row due "now" may have been claimed already; never spin on it.
            let wait = wait.max(Duration::from_millis(250));
            tokio::select! {
                _ = notify.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                Some(()) = exit_rx.recv() => {}
                _ = shutdown.wait_for(|s| *s) => break,
            }
        }
        inner.wait_for_commits(SHUTDOWN_COMMIT_WAIT).await;
    }
}

/// How long shutdown waits for outcomes still being committed (each takes milliseconds).
const SHUTDOWN_COMMIT_WAIT: Duration = Duration::from_secs(10);

impl Inner {
    /// Runs `commit` (storing an attempt's outcome, then logging and releasing its rows) beside
    /// the worker, so that a connection moves on to its next message while the outcome waits
    /// for the writer's next group commit. The rows stay leased until then; a crash in between
    /// costs at most a repeated delivery, never a lost message.
    fn commit_in_background(
        self: &Arc<Self>,
        commit: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        self.committing.fetch_add(1, Ordering::SeqCst);
        let inner = self.clone();
        tokio::spawn(async move {
            commit.await;
            if inner.committing.fetch_sub(1, Ordering::SeqCst) == 1 {
                inner.committed.notify_waiters();
            }
        });
    }

    async fn wait_for_commits(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            loop {
                let idle = self.committed.notified();
                tokio::pin!(idle);
                idle.as_mut().enable();
                if self.committing.load(Ordering::SeqCst) == 0 {
                    return;
                }
                idle.await;
            }
        })
        .await;
    }

    /// Claims due rows and files them into destination queues.
    async fn claim(&self) {
        loop {
            let claimed = match self.store.claim_due(LEASE_SECS, CLAIM_BATCH).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "cannot claim queue rows");
                    return;
                }
            };
            let n = claimed.len();
            let mut jobs: Vec<((Mid, String), Job)> = Vec::new();
            // Rows whose last attempt's outcome is committed but not yet answered to its worker
            // (a retry already due): still in flight here, so they are given back, not dropped —
            // else they would wait for the whole lease.
            let mut busy = Vec::new();
            {
                let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
                for row in claimed {
                    if !inflight.insert(row.id) {
                        busy.push(row.id);
                        continue;
                    }
                    let key = (row.mid, row.queue_name.clone());
                    match jobs.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, job)) => job.rows.push(row),
                        None => jobs.push((
                            key,
                            Job {
                                mid: row.mid,
                                rows: vec![row],
                            },
                        )),
                    }
                }
            }
            if !busy.is_empty()
                && let Err(e) = self.store.unlease(busy).await
            {
                tracing::error!(error = %e, "cannot give back claimed rows");
            }
            let mut dests = self.dests.lock().await;
            for ((_, queue), job) in jobs {
                let dest = dests.entry(queue.clone()).or_insert_with(|| {
                    Arc::new(Dest {
                        name: queue,
                        pending: Default::default(),
                        active: AtomicUsize::new(0),
                        routing: Mutex::new(None),
                    })
                });
                dest.pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push_back(job);
            }
            if n < CLAIM_BATCH as usize {
                return;
            }
        }
    }

    /// Starts workers where a destination has more work than its open connections handle.
    async fn spawn_workers(self: &Arc<Self>, exit: &mpsc::UnboundedSender<()>) {
        let settings = self.settings.load_full();
        let mut dests = self.dests.lock().await;
        dests.retain(|_, d| d.active.load(Ordering::SeqCst) > 0 || !d.pending_is_empty());
        for dest in dests.values() {
            let pending = dest.pending_len();
            let (per_conn, min, max) = if dest.name == rampart_tdc::TDC_QUEUE {
                // Cisco opens at least three connections to the intake while it has entries.
                let t = &self.config.tdc;
                (
                    t.max_messages_per_connection,
                    t.min_connections,
                    t.max_connections,
                )
            } else {
                let control = settings.destination(&dest.name);
                (
                    control.max_messages_per_connection,
                    1,
                    control.max_connections,
                )
            };
            let per_conn = per_conn.max(1) as usize;
            let min = if pending > 0 { min as usize } else { 0 };
            let desired = pending
                .div_ceil(per_conn)
                .clamp(min.min(max as usize), max as usize);
            while dest.active.load(Ordering::SeqCst) < desired {
                dest.active.fetch_add(1, Ordering::SeqCst);
                let inner = self.clone();
                let dest = dest.clone();
                let exit = exit.clone();
                tokio::spawn(async move {
                    // Counted down however the worker ends, so a destination is never left
                    // believing it has a connection that is gone.
                    let _active = Active { dest: &dest, exit };
                    inner.worker(&dest).await;
                });
            }
        }
    }

    /// One connection's worth of work at a time, until the destination queue is empty.
    async fn worker(self: &Arc<Self>, dest: &Dest) {
        if dest.name == rampart_tdc::TDC_QUEUE {
            return self.journal_worker(dest).await;
        }
        loop {
            if dest.pending_is_empty() || *self.shutdown.borrow() {
                return;
            }
            let settings = self.settings.load_full();
            let control = settings.destination(&dest.name).clone();
            let targets = match route::targets(
                &dest.name,
                &settings,
                self.resolver.as_ref(),
                self.config.port,
            )
            .await
            {
                Ok(t) => t,
                Err(e) => {
                    for job in dest.take_all() {
                        self.fail_without_connection(&settings, &dest.name, job, &e)
                            .await;
                    }
                    return;
                }
            };
            let tls = match control.tls {
                TlsPolicy::Off => TlsUse::Off,
                TlsPolicy::Preferred if control.verify_tls => {
                    TlsUse::Opportunistic(self.tls.verified.clone())
                }
                TlsPolicy::Preferred => TlsUse::Opportunistic(self.tls.unverified.clone()),
                TlsPolicy::Required if control.verify_tls => {
                    TlsUse::Required(self.tls.verified.clone())
                }
                TlsPolicy::Required => TlsUse::Required(self.tls.unverified.clone()),
            };
            let Some((mut conn, dcid)) = self.connect(&dest.name, &targets, &tls).await else {
                let _ = self.store.host_down(&dest.name, true).await;
                let reason = RouteError::Temporary(format!(
                    "Unable to connect to any host for {}",
                    dest.name
                ));
                for job in dest.take_all() {
                    self.fail_without_connection(&settings, &dest.name, job, &reason)
                        .await;
                }
                return;
            };
            let _ = self.store.host_down(&dest.name, false).await;
            let _ = self.store.host_connection(&dest.name, 1).await;
            let mut sent = 0;
            let mut broken = false;
            while sent < control.max_messages_per_connection {
                if *self.shutdown.borrow() {
                    break;
                }
                let Some(job) = dest.take_one() else { break };
                sent += 1;
                if self
                    .deliver(&settings, &dest.name, &mut conn, dcid, job)
                    .await
                    == Connected::Broken
                {
                    broken = true;
                    break;
                }
            }
            if !broken {
                conn.quit().await;
            }
            let _ = self.store.host_connection(&dest.name, -1).await;
            self.log.info(format!("DCID {dcid} close"));
        }
    }

    /// Tries the targets in order; logs each failure as AsyncOS does.
    async fn connect(
        &self,
        dest: &str,
        targets: &[Target],
        tls: &TlsUse,
    ) -> Option<(Connection, Dcid)> {
        for t in targets {
            let dcid = self.store.next_dcid().await.ok()?;
            let mut attempt = Connection::open(
                t.addr,
                &t.name,
                &self.config.hostname,
                tls,
                &self.config.timeouts,
            )
            .await;
            // "Preferred" TLS falls back to plain text on this host when the handshake fails.
            if let (Err(ClientError::Tls(_)), TlsUse::Opportunistic(_)) = (&attempt, tls) {
                self.log.info(format!(
                    "DCID {dcid} TLS failed with {}, retrying without TLS",
                    t.addr.ip()
                ));
                attempt = Connection::open(
                    t.addr,
                    &t.name,
                    &self.config.hostname,
                    &TlsUse::Off,
                    &self.config.timeouts,
                )
                .await;
            }
            match attempt {
                Ok(conn) => {
                    self.log.info(format!(
                        "New SMTP DCID {dcid} interface {} address {} port {}",
                        conn.local.ip(),
                        t.addr.ip(),
                        t.addr.port()
                    ));
                    if let Some((protocol, cipher)) = &conn.tls {
                        self.log.info(format!(
                            "DCID {dcid} TLS success protocol {protocol} cipher {cipher}"
                        ));
                    }
                    return Some((conn, dcid));
                }
                Err(e) => {
                    let reason = match &e {
                        ClientError::Connect(_) => "connection refused or unreachable",
                        ClientError::Network(_) => "connection lost",
                        ClientError::Tls(_) => "TLS failure",
                        ClientError::Refused(_) => "server refused the session",
                        ClientError::Protocol(_) => "protocol error",
                    };
                    self.log.info(format!(
                        "Connection Error: DCID {dcid} domain: {dest} IP: {} port: {} details: {e} interface: 0.0.0.0 reason: {reason}",
                        t.addr.ip(),
                        t.addr.port()
                    ));
                }
            }
        }
        None
    }

    /// Delivers one job over an open connection and records the outcome; says whether the
    /// connection can carry the next job.
    async fn deliver(
        self: &Arc<Self>,
        settings: &Snapshot,
        dest: &str,
        conn: &mut Connection,
        dcid: Dcid,
        job: Job,
    ) -> Connected {
        let message = match self.store.message(job.mid).await {
            Ok(Some(m)) => m,
            Ok(None) | Err(_) => {
                tracing::error!(mid = job.mid.0, "queued message is missing from the store");
                self.release(&job);
                return Connected::Usable;
            }
        };
        let rids = rid_list(&job.rows);
        self.log.info(format!(
            "Delivery start DCID {dcid} MID {} to RID {rids}",
            job.mid
        ));
        let rcpts: Vec<&str> = job.rows.iter().map(|r| r.recipient.as_str()).collect();
        let result = if conn.size_ok(message.body.len()) {
            conn.send(&message.sender, &rcpts, &message.body)
                .await
                .map(Some)
        } else {
            Ok(None)
        };
        let remote = Some(conn.peer.ip().to_string());
        match result {
            Ok(Some(replies)) => {
                let per_rcpt: Vec<Reply> =
                    (0..job.rows.len()).map(|i| replies.for_rcpt(i)).collect();
                self.record(settings, dest, dcid, &job, &message, per_rcpt, remote)
                    .await;
                Connected::Usable
            }
            Ok(None) => {
                let reply = Reply::new(
                    552,
                    Some(rampart_smtp::Enhanced(5, 3, 4)),
                    "Message too big for the destination (SIZE)",
                );
                self.record(
                    settings,
                    dest,
                    dcid,
                    &job,
                    &message,
                    vec![reply; job.rows.len()],
                    remote,
                )
                .await;
                Connected::Usable
            }
            Err(e) => {
                let reply = Reply::owned(451, Some(rampart_smtp::Enhanced(4, 4, 2)), e.to_string());
                self.record(
                    settings,
                    dest,
                    dcid,
                    &job,
                    &message,
                    vec![reply; job.rows.len()],
                    remote,
                )
                .await;
                Connected::Broken
            }
        }
    }

    /// Fails a job that never reached a server: DNS said no, or no host answered.
    async fn fail_without_connection(
        self: &Arc<Self>,
        settings: &Snapshot,
        dest: &str,
        job: Job,
        why: &RouteError,
    ) {
        let Ok(Some(message)) = self.store.message(job.mid).await else {
            self.release(&job);
            return;
        };
        let reply = match why {
            RouteError::Hard { status, text } => {
                let e = parse_status(status).unwrap_or(rampart_smtp::Enhanced(5, 1, 2));
                Reply::owned(550, Some(e), text.clone())
            }
            RouteError::Temporary(text) => {
                Reply::owned(451, Some(rampart_smtp::Enhanced(4, 4, 1)), text.clone())
            }
        };
        self.record(
            settings,
            dest,
            Dcid(0),
            &job,
            &message,
            vec![reply; job.rows.len()],
            None,
        )
        .await;
    }

    /// Turns replies into row outcomes, logs them, and stores them with counters, tracking and
    /// any DSN in one transaction.
    #[allow(clippy::too_many_arguments)]
    async fn record(
        self: &Arc<Self>,
        settings: &Snapshot,
        dest: &str,
        dcid: Dcid,
        job: &Job,
        message: &rampart_store::StoredMessage,
        replies: Vec<Reply>,
        remote: Option<String>,
    ) {
        let profile = settings.bounce_profile();
        let now = unix_now();
        let mid = job.mid;
        let mut outcomes = Vec::with_capacity(job.rows.len());
        let mut tracking = Vec::new();
        let mut delta = HostDelta::default();
        let mut delivered_rids = Vec::new();
        let mut failed: Vec<dsn::Failed> = Vec::new();
        let mut delivered_reply = None;
        for (row, reply) in job.rows.iter().zip(replies) {
            let rid = row.rcpt_idx;
            let text = reply.to_string();
            let smtp_text = reply_text(&reply);
            let outcome = if reply.is_positive() {
                delivered_rids.push(rid);
                delta.delivered += 1;
                tracking.push((
                    mid,
                    format!(
                        "Message {mid} to <{}> delivered (DCID {dcid}): {text}",
                        row.recipient
                    ),
                ));
                delivered_reply = Some(smtp_text.clone());
                Outcome::Delivered
            } else if reply.is_transient() {
                delta.soft_bounced += 1;
                let attempts = row.attempts + 1;
                let expired = attempts > profile.max_retries
                    || now - row.created_at >= profile.max_queue_secs as i64;
                if expired {
                    delta.hard_bounced += 1;
                    self.log.info(format!(
                        "Bounced: DCID {dcid} MID {mid} to RID {rid} - 5.4.7 - Delivery expired (message too old) ('000', [{}])",
                        quote(&text)
                    ));
                    tracking.push((
                        mid,
                        format!(
                            "Message {mid} to <{}> expired after {attempts} attempts: {text}",
                            row.recipient
                        ),
                    ));
                    failed.push(dsn::Failed {
                        recipient: row.recipient.clone(),
                        status: "5.4.7".into(),
                        diagnostic: format!(
                            "delivery expired after {attempts} attempts; last error: {text}"
                        ),
                        remote_mta: remote.clone(),
                    });
                    Outcome::Expired
                } else {
                    let wait = profile.backoff_secs(attempts);
                    let jitter = rand::random_range(0..=wait / 10);
                    let next = now + (wait + jitter) as i64;
                    let status = reply
                        .enhanced
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| "4.0.0".into());
                    self.log.info(format!(
                        "Delayed: DCID {dcid} MID {mid} to RID {rid} - {status} - {} ('{}', [{}])",
                        smtp_text,
                        reply.code,
                        quote(&smtp_text)
                    ));
                    tracking.push((
                        mid,
                        format!(
                            "Message {mid} to <{}> soft bounced, retry in {}s: {text}",
                            row.recipient,
                            wait + jitter
                        ),
                    ));
                    Outcome::Retry {
                        next_attempt_at: next,
                    }
                }
            } else {
                delta.hard_bounced += 1;
                let status = reply
                    .enhanced
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "5.0.0".into());
                self.log.info(format!(
                    "Bounced: DCID {dcid} MID {mid} to RID {rid} - Bounced by destination server with response: {status} - {} ('{}', [{}])",
                    smtp_text,
                    reply.code,
                    quote(&smtp_text)
                ));
                tracking.push((
                    mid,
                    format!("Message {mid} to <{}> hard bounced: {text}", row.recipient),
                ));
                failed.push(dsn::Failed {
                    recipient: row.recipient.clone(),
                    status,
                    diagnostic: text.clone(),
                    remote_mta: remote.clone(),
                });
                Outcome::Bounced
            };
            outcomes.push(RowOutcome {
                id: row.id,
                outcome,
                reply: text,
                tls: None,
            });
        }
        if !delivered_rids.is_empty() {
            let rids = format!(
                "[{}]",
                delivered_rids
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            self.log
                .info(format!("Message done DCID {dcid} MID {mid} to RID {rids}"));
            if let Some(text) = delivered_reply {
                self.log
                    .info(format!("MID {mid} RID {rids} Response {}", quote(&text)));
            }
        }
        let is_journal = job.rows.iter().any(|r| r.kind == QueueKind::Journal);
        let dsn = if !failed.is_empty()
            && !message.sender.is_empty()
            && profile.send_dsn
            && !is_journal
        {
            self.build_dsn(message, &failed).await
        } else {
            None
        };
        if let Some(d) = &dsn {
            tracking.push((
                mid,
                format!(
                    "Message {mid} bounce notification MID {} queued to <{}>",
                    d.mid, message.sender
                ),
            ));
        }
        let inner = self.clone();
        let (dest, job) = (dest.to_owned(), job.clone());
        self.commit_in_background(async move {
            match inner
                .store
                .record_attempt(&dest, &outcomes, &delta, &tracking, dsn.as_ref())
                .await
            {
                Ok(finished) => {
                    if let Some(d) = &dsn {
                        inner.log.info(format!(
                            "MID {} was generated for bounce of MID {mid}",
                            d.mid
                        ));
                    }
                    for m in finished {
                        inner.log.info(format!("Message finished MID {m} done"));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, mid = mid.0, "cannot record delivery outcome; rows will be retried")
                }
            }
            inner.release(&job);
        });
    }

    async fn build_dsn(
        &self,
        message: &rampart_store::StoredMessage,
        failed: &[dsn::Failed],
    ) -> Option<NewMessage> {
        let mid = self.store.next_mid().await.ok()?;
        let arrival = chrono::DateTime::from_timestamp(message.received_at, 0)
            .map(|t| t.with_timezone(&chrono::Local))
            .unwrap_or_else(chrono::Local::now);
        let original = rampart_store::NewMessageRef {
            mid: message.mid,
            sender: &message.sender,
            arrival,
            body: &message.body,
        };
        Some(dsn::notification(
            mid,
            &self.config.hostname,
            &original,
            failed,
        ))
    }

    /// Forgets a job's rows once their outcome is stored (or when they go back to the queue).
    fn release(&self, job: &Job) {
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        for r in &job.rows {
            inflight.remove(&r.id);
        }
    }
}

/// A running worker of a destination, counted in `Dest::active` until dropped.
struct Active<'a> {
    dest: &'a Dest,
    exit: mpsc::UnboundedSender<()>,
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.dest.active.fetch_sub(1, Ordering::SeqCst);
        let _ = self.exit.send(());
    }
}

impl Dest {
    fn pending_len(&self) -> usize {
        self.pending.lock().map(|p| p.len()).unwrap_or(0)
    }

    fn pending_is_empty(&self) -> bool {
        self.pending_len() == 0
    }

    fn take_one(&self) -> Option<Job> {
        self.pending.lock().ok()?.pop_front()
    }

    fn take_all(&self) -> Vec<Job> {
        self.pending
            .lock()
            .map(|mut p| p.drain(..).collect())
            .unwrap_or_default()
    }

    /// The first pending job that satisfies `pred`.
    fn take_where(&self, pred: impl Fn(&Job) -> bool) -> Option<Job> {
        let mut pending = self.pending.lock().ok()?;
        let idx = pending.iter().position(pred)?;
        pending.remove(idx)
    }

    /// Every pending job that satisfies `pred`.
    fn take_all_where(&self, pred: impl Fn(&Job) -> bool) -> Vec<Job> {
        let Ok(mut pending) = self.pending.lock() else {
            return Vec::new();
        };
        let (take, keep): (VecDeque<Job>, VecDeque<Job>) = pending.drain(..).partition(|j| pred(j));
        *pending = keep;
        take.into()
    }

    fn peek<T>(&self, f: impl FnOnce(&Job) -> T) -> Option<T> {
        self.pending.lock().ok()?.front().map(f)
    }
}

/// `[0, 1]`, as AsyncOS lists recipient indexes.
fn rid_list(rows: &[Claimed]) -> String {
    format!(
        "[{}]",
        rows.iter()
            .map(|r| r.rcpt_idx.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The reply without its code, as AsyncOS quotes responses: `2.0.0 Ok: queued as 12`.
fn reply_text(reply: &Reply) -> String {
    let text = reply.text.replace('\n', " ");
    match reply.enhanced {
        Some(e) => format!("{e} {text}"),
        None => text,
    }
}

fn parse_status(s: &str) -> Option<rampart_smtp::Enhanced> {
    let mut p = s.split('.');
    Some(rampart_smtp::Enhanced(
        p.next()?.parse().ok()?,
        p.next()?.parse().ok()?,
        p.next()?.parse().ok()?,
    ))
}
