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

use rampart_dns::Resolver;
use rampart_maillog::MailLog;
use rampart_settings::SharedSettings;
use rampart_store::{Claimed, Mid, QueueKind, Store, unix_now};
use rampart_tdc::TdcConfig;
use tokio::sync::{Mutex, mpsc, watch};

use crate::client::{Timeouts, TlsConfigs};
use crate::route::Target;

mod decide;
mod rules;
mod worker;

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
/// Most queue rows held in memory at once (claimed and waiting in a destination queue, or being
/// sent): a backlog of a million due rows is claimed piece by piece as it drains, so memory
/// stays bounded whatever the queue holds; the rest waits, due, in the store.
const MAX_IN_MEMORY: usize = 20_000;
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
    /// `config.tdc`, shared with the.tdc.queue's rules.
    tdc: Arc<TdcConfig>,
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

/// What makes rows one job: the message, the destination, and for a journal copy its row.
type JobKey = (Mid, String, Option<i64>);

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
                tdc: Arc::new(config.tdc.clone()),
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
        // Whether the next pass claims: not when only a worker ended (at a few messages a
        // second that was two claims per message, each a commit finding nothing), unless the
        // last claim stopped at the in-memory bound with rows still due.
        let mut claim = true;
        let mut memory_full = false;
        loop {
            if *shutdown.borrow() {
                break;
            }
            if claim || memory_full {
                memory_full = inner.claim().await;
            }
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
            claim = tokio::select! {
                _ = notify.notified() => true,
                _ = tokio::time::sleep(wait) => true,
                // A worker ended: start another where jobs still wait.
                Some(()) = exit_rx.recv() => false,
                _ = shutdown.wait_for(|s| *s) => break,
            };
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

    /// Claims due rows, up to [`MAX_IN_MEMORY`] held, and files them into destination queues.
    /// True when it stopped at that bound (rows may still be due).
    async fn claim(&self) -> bool {
        loop {
            let held = self.inflight.lock().map(|i| i.len()).unwrap_or(0);
            let room = MAX_IN_MEMORY.saturating_sub(held).min(CLAIM_BATCH as usize) as u32;
            if room == 0 {
                return true;
            }
            let claimed = match self.store.claim_due(LEASE_SECS, room).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "cannot claim queue rows");
                    return false;
                }
            };
            let n = claimed.len();
            // In claim order, with an index by key (a pass holds up to a thousand jobs).
            let mut jobs: Vec<(JobKey, Job)> = Vec::new();
            let mut index: HashMap<JobKey, usize> = HashMap::new();
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
                    // A message's rows for one destination go in one transaction; a journal
                    // copy is its own job (its intake address is its own route).
                    let key = (
                        row.mid,
                        row.queue_name.clone(),
                        (row.kind == QueueKind::Journal).then_some(row.id),
                    );
                    match index.get(&key).and_then(|i| jobs.get_mut(*i)) {
                        Some((_, job)) => job.rows.push(row),
                        None => {
                            index.insert(key.clone(), jobs.len());
                            jobs.push((
                                key,
                                Job {
                                    mid: row.mid,
                                    rows: vec![row],
                                },
                            ));
                        }
                    }
                }
            }
            if !busy.is_empty()
                && let Err(e) = self.store.unlease(busy).await
            {
                tracing::error!(error = %e, "cannot give back claimed rows");
            }
            let mut dests = self.dests.lock().await;
            for ((_, queue, _), job) in jobs {
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
            if n < room as usize {
                return false;
            }
        }
    }

    /// Starts workers where a destination has more work than its open connections handle.
    async fn spawn_workers(self: &Arc<Self>, exit: &mpsc::UnboundedSender<()>) {
        let settings = self.settings.load_full();
        let mut dests = self.dests.lock().await;
        dests.retain(|_, d| d.active.load(Ordering::SeqCst) > 0 || d.pending_len() > 0);
        for dest in dests.values() {
            let rules = rules::Rules::for_destination(&dest.name, &settings, &self.tdc, &self.tls);
            let desired = rules.workers(dest.pending_len());
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
