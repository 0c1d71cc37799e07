//! The inbound MTA: SMTP listeners and sessions.
//!
//! A listener accepts connections, applies the connection limit and hands each connection to a
//! [`session`], which speaks ESMTP (RFC 5321) with PIPELINING, SIZE, 8BITMIME,
//! ENHANCEDSTATUSCODES and STARTTLS, applies the HAT and RAT from the current settings snapshot,
//! and commits each accepted message to the store before answering `250`.

mod io;
mod process;
mod received;
mod scan;
mod session;
pub mod trace;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rampart_maillog::MailLog;
use rampart_settings::SharedSettings;
use rampart_store::Store;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

pub use trace::{TraceError, TraceReport, TraceRequest, Tracer};

/// Listener tunables, from the bootstrap configuration.
#[derive(Debug, Clone)]
pub struct MtaConfig {
    /// Name in the banner, EHLO reply and `Received:` header.
    pub hostname: String,
    /// Interface name for mail logs.
    pub interface: String,
    pub max_message_size: u64,
    pub max_recipients: u32,
    pub max_connections: u32,
    /// Most connections at once from one client address.
    pub max_connections_per_ip: u32,
    /// Longest silence allowed from a client, and longest wait for it to read our replies.
    pub timeout: Duration,
    /// Longest a session may last, however busy.
    pub max_session: Duration,
    /// Protocol errors tolerated before the session is closed.
    pub max_errors: u32,
    /// Commands that move no mail tolerated before the session is closed.
    pub max_junk_commands: u32,
    /// Most `Received:` fields a message may carry.
    pub max_hops: u32,
    /// Longest the banner waits for the client's reverse DNS name; zero = no lookup.
    pub reverse_dns_timeout: Duration,
    /// Bytes of message data all sessions together may hold.
    pub max_memory_bytes: u64,
    /// The header Threat Defense reads as the client's address; a client's own copy is removed.
    pub remote_ip_header: String,
}

/// Headers of ours that a client's copy must never pass for (SPEC §3a), besides the configured
/// remote-IP header.
pub(crate) const OUR_HEADERS: [&str; 2] = ["X-Rampart-Spam", "X-Rampart-Virus"];

/// A client's reverse DNS name within `budget`, as the banner and Trace need it: `unknown` when
/// there is no resolver or the budget is zero (lookups switched off).
pub(crate) async fn client_name(
    resolver: Option<&dyn rampart_dns::Resolver>,
    ip: std::net::IpAddr,
    budget: Duration,
) -> rampart_dns::ReverseName {
    match resolver {
        Some(r) if !budget.is_zero() => rampart_dns::reverse_name(r, ip, budget).await,
        _ => rampart_dns::ReverseName::default(),
    }
}

/// Everything sessions share.
#[derive(Clone)]
pub struct Mta {
    pub(crate) config: Arc<MtaConfig>,
    pub(crate) store: Store,
    pub(crate) settings: SharedSettings,
    pub(crate) log: MailLog,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) connections: Arc<Semaphore>,
    /// Open sessions per client address.
    pub(crate) per_ip: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, u32>>>,
    /// Recipients accepted this hour per client address, for mail flow policies that limit them.
    pub(crate) recipients_per_hour: Arc<HourlyCounter>,
    /// Message memory still free, in KiB.
    pub(crate) memory: Arc<Semaphore>,
    /// The second of the last refused-connection warning and how many were left out since.
    pub(crate) refusals: Arc<std::sync::Mutex<(u64, u64)>>,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// SPF/DKIM/DMARC, for policies that enable email authentication.
    pub(crate) auth: Option<Arc<rampart_emailauth::Authenticator>>,
    /// Anti-Spam and Anti-Virus engines, for policies that enable them.
    pub(crate) engines: Arc<rampart_scan::Engines>,
    /// For clients' reverse DNS names.
    pub(crate) resolver: Option<Arc<dyn rampart_dns::Resolver>>,
}

impl std::fmt::Debug for Mta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mta")
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Mta {
    pub fn new(
        config: MtaConfig,
        store: Store,
        settings: SharedSettings,
        log: MailLog,
        tls: Option<TlsAcceptor>,
        shutdown: watch::Receiver<bool>,
    ) -> Mta {
        let connections = Arc::new(Semaphore::new(config.max_connections as usize));
        let kib = usize::try_from(config.max_memory_bytes / 1024)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        Mta {
            per_ip: Arc::default(),
            recipients_per_hour: Arc::default(),
            refusals: Arc::default(),
            memory: Arc::new(Semaphore::new(kib)),
            config: Arc::new(config),
            store,
            settings,
            log,
            tls,
            connections,
            shutdown,
            auth: None,
            engines: Arc::default(),
            resolver: None,
        }
    }

    /// Logs a refused connection, at most once a second: a flood of connections beyond the caps
    /// must not turn into a flood of log lines (disk). The next line says how many were left out.
    pub(crate) fn refusal(&self, line: String) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut last = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        if last.0 == now {
            last.1 += 1;
            return;
        }
        let left_out = std::mem::take(&mut last.1);
        last.0 = now;
        drop(last);
        if left_out > 0 {
            self.log.warning(format!(
                "{line} ({left_out} more refused since the last such line, not logged)"
            ));
        } else {
            self.log.warning(line);
        }
    }

    /// Enables email authentication for the policies that ask for it.
    pub fn with_authenticator(mut self, auth: rampart_emailauth::Authenticator) -> Mta {
        self.auth = Some(Arc::new(auth));
        self
    }

    /// Scans with these engines for the policies that enable Anti-Spam or Anti-Virus.
    pub fn with_engines(mut self, engines: Arc<rampart_scan::Engines>) -> Mta {
        self.engines = engines;
        self
    }

    /// Looks up clients' reverse DNS names with this resolver.
    pub fn with_resolver(mut self, resolver: Arc<dyn rampart_dns::Resolver>) -> Mta {
        self.resolver = Some(resolver);
        self
    }

    /// Accepts connections on `listener` until shutdown is signalled.
    pub async fn serve(self, listener: TcpListener) {
        self.serve_as(listener, None).await
    }

    /// Accepts SMTP sessions on a `[[listener]]`: its name is the interface in the mail log and
    /// picks its HAT.
    pub async fn serve_as(self, listener: TcpListener, name: Option<std::sync::Arc<str>>) {
        let local = listener.local_addr().ok();
        let mut shutdown = self.shutdown.clone();
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shutdown.changed() => break,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Usually EMFILE: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let local = stream
                .local_addr()
                .ok()
                .or(local)
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
            let mta = self.clone();
            let name = name.clone();
            tokio::spawn(async move {
                session::run(mta, stream, peer, local, name).await;
            });
        }
    }

    /// Waits until every session has ended, or until `grace` has passed.
    pub async fn drain(&self, grace: Duration) -> bool {
        let all = self.config.max_connections;
        tokio::time::timeout(grace, self.connections.acquire_many(all))
            .await
            .is_ok()
    }
}

/// Counts per client address within the current clock hour (a fixed window, reset on the hour).
/// At most [`HourlyCounter::TRACKED`] addresses are counted in one hour; past that, an address
/// not yet counted is let through rather than making the table grow without bound.
#[derive(Debug, Default)]
pub(crate) struct HourlyCounter {
    inner: std::sync::Mutex<(i64, std::collections::HashMap<std::net::IpAddr, u32>)>,
}

impl HourlyCounter {
    const TRACKED: usize = 100_000;

    /// Counts one for `ip` if it is under `limit` this hour; false when it is not.
    pub(crate) fn take(&self, ip: std::net::IpAddr, limit: u32) -> bool {
        self.take_at(ip, limit, rampart_store::unix_now() / 3600)
    }

    fn take_at(&self, ip: std::net::IpAddr, limit: u32, hour: i64) -> bool {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (current, counts) = &mut *guard;
        if *current != hour {
            *current = hour;
            counts.clear();
        }
        if counts.len() >= Self::TRACKED && !counts.contains_key(&ip) {
            return true;
        }
        let n = counts.entry(ip).or_insert(0);
        if *n >= limit {
            return false;
        }
        *n += 1;
        true
    }
}

#[cfg(test)]
mod hourly_tests {
    use super::HourlyCounter;

    #[test]
    fn counts_per_address_and_resets_on_the_hour() {
        let c = HourlyCounter::default();
        let (a, b) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        assert!(c.take_at(a, 2, 10) && c.take_at(a, 2, 10));
        assert!(!c.take_at(a, 2, 10), "the third in the hour is refused");
        assert!(c.take_at(b, 2, 10), "another address has its own count");
        assert!(c.take_at(a, 2, 11), "a new hour starts again");
    }
}
