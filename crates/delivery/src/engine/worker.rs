//! The one worker loop every destination runs, the.tdc.queue included: look up the route, open
//! a session (logging each failed host), send jobs over it within the destination's limits,
//! and hand each attempt to [`decide`](super::decide) for its outcome. The destination's
//! [`Rules`] make the differences.

use std::borrow::Cow;
use std::sync::Arc;

use rampart_dsn as dsn;
use rampart_maillog::line;
use rampart_settings::Snapshot;
use rampart_smtp::{Enhanced, Reply};
use rampart_store::{Dcid, Mid, NewMessage, StoredMessage, unix_now};
use rampart_tdc::text as tdc;

use super::decide::{self, Attempt, Context, HostFailure, HostFailureKind, Unreached};
use super::rules::{Kind, Rules};
use super::{Connected, Dest, Inner, Job};
use crate::client::{ClientError, Connection, TlsUse};
use crate::route::{self, RouteError, Target};

/// What a route lookup gave a worker.
enum Routed {
    Targets(Vec<Target>),
    /// The lookup failed: the jobs of that domain are failed with this.
    Failed(Unreached),
    /// Another worker dealt with the jobs while this one waited; look again.
    Gone,
}

impl Inner {
    /// One connection's worth of work at a time, until the destination queue is empty.
    pub(super) async fn worker(self: &Arc<Self>, dest: &Dest) {
        loop {
            if *self.shutdown.borrow() {
                return;
            }
            let settings = self.settings.load_full();
            let rules = Rules::for_destination(&dest.name, &settings, &self.tdc, &self.tls);
            let Some(domain) = dest.peek(|j| rules.route_domain(&dest.name, j)) else {
                return;
            };
            let same = |j: &Job| rules.routes_to(j, &domain);
            let targets = match self.route(dest, &domain, &settings, &rules).await {
                Routed::Targets(t) => t,
                Routed::Gone => continue,
                Routed::Failed(why) => {
                    for job in dest.take_all_where(same) {
                        let attempt = Attempt::Unreached(why.clone());
                        self.conclude(&rules, &dest.name, Dcid(0), job, None, None, attempt)
                            .await;
                    }
                    continue;
                }
            };
            let (mut conn, dcid) = match self.connect(&rules, &dest.name, &targets).await {
                Ok(c) => c,
                Err(last) => {
                    let _ = self.store.host_down(&dest.name, true).await;
                    for job in dest.take_all_where(same) {
                        let attempt = Attempt::Unreached(Unreached::Hosts(last.clone()));
                        self.conclude(&rules, &dest.name, Dcid(0), job, None, None, attempt)
                            .await;
                    }
                    continue;
                }
            };
            let _ = self.store.host_down(&dest.name, false).await;
            let _ = self.store.host_connection(&dest.name, 1).await;
            let mut sent = 0;
            let mut broken = false;
            while sent < rules.per_connection && !*self.shutdown.borrow() {
                let Some(job) = dest.take_where(same) else {
                    break;
                };
                if rules.too_old(&job, unix_now()) {
                    self.conclude(&rules, &dest.name, dcid, job, None, None, Attempt::TooOld)
                        .await;
                    continue;
                }
                sent += 1;
                if self.deliver(&rules, &dest.name, &mut conn, dcid, job).await == Connected::Broken
                {
                    broken = true;
                    break;
                }
            }
            if !broken {
                conn.quit().await;
            }
            let _ = self.store.host_connection(&dest.name, -1).await;
            self.log.info(line::dcid_close(dcid));
        }
    }

    /// Looks up where `domain`'s jobs go. When the rules share lookups, the lock is held while
    /// looking up, so that simultaneous workers cost one lookup and a failed one fails the
    /// waiting jobs once.
    async fn route(&self, dest: &Dest, domain: &str, settings: &Snapshot, rules: &Rules) -> Routed {
        if rules.route_reuse.is_zero() {
            return self.look_up(domain, settings).await;
        }
        let mut routing = dest.routing.lock().await;
        if let Some((at, d, t)) = routing.as_ref()
            && d == domain
            && at.elapsed() < rules.route_reuse
        {
            return Routed::Targets(t.clone());
        }
        // Another worker may have failed these jobs while this one waited.
        if dest.peek(|j| rules.routes_to(j, domain)) != Some(true) {
            return Routed::Gone;
        }
        let routed = self.look_up(domain, settings).await;
        if let Routed::Targets(t) = &routed {
            *routing = Some((std::time::Instant::now(), domain.to_owned(), t.clone()));
        }
        routed
    }

    async fn look_up(&self, domain: &str, settings: &Snapshot) -> Routed {
        match route::targets(domain, settings, self.resolver.as_ref(), self.config.port).await {
            Ok(t) => Routed::Targets(t),
            Err(RouteError::Hard { status, text }) => {
                Routed::Failed(Unreached::NoSuchDomain { status, text })
            }
            Err(RouteError::Temporary(text)) => Routed::Failed(Unreached::DnsTemporary(text)),
        }
    }

    /// Tries the targets in order, logging each failure as AsyncOS does; on failure, says why
    /// the last host could not be used.
    async fn connect(
        &self,
        rules: &Rules,
        dest: &str,
        targets: &[Target],
    ) -> Result<(Connection, Dcid), Option<HostFailure>> {
        let journal = rules.is_journal();
        let mut last = None;
        for t in targets {
            let Ok(dcid) = self.store.next_dcid().await else {
                return Err(last);
            };
            let (config, plain) = (&self.config, TlsUse::Off);
            let open =
                |tls| Connection::open(t.addr, &t.name, &config.hostname, tls, &config.timeouts);
            let mut attempt = open(&rules.tls).await;
            if rules.plain_after_tls_error && matches!(attempt, Err(ClientError::Tls(_))) {
                self.log.info(format!(
                    "DCID {dcid} TLS failed with {}, retrying without TLS",
                    t.addr.ip()
                ));
                attempt = open(&plain).await;
            }
            match attempt {
                Ok(conn) => {
                    let (local, ip, port) = (conn.local.ip(), t.addr.ip(), t.addr.port());
                    self.log.info(if journal {
                        tdc::new_smtp(dcid, local, ip, port)
                    } else {
                        line::new_dcid(dcid, local, ip, port)
                    });
                    if let Some((protocol, cipher)) = &conn.tls {
                        self.log.info(line::dcid_tls(dcid, protocol, cipher));
                    }
                    return Ok((conn, dcid));
                }
                Err(e) => {
                    let kind = match &e {
                        ClientError::Tls(_) => HostFailureKind::Tls,
                        ClientError::Refused(r) => HostFailureKind::Refused(r.code),
                        _ => HostFailureKind::Network,
                    };
                    let (ip, port) = (t.addr.ip(), t.addr.port());
                    self.log.info(if journal {
                        let reason = tdc::connection_reason(&decide::tdc_failure(kind));
                        tdc::connection_error(dcid, ip, port, &e, reason)
                    } else {
                        let reason = match &e {
                            ClientError::Connect(_) => "connection refused or unreachable",
                            ClientError::Network(_) => "connection lost",
                            ClientError::Tls(_) => "TLS failure",
                            ClientError::Refused(_) => "server refused the session",
                            ClientError::Protocol(_) => "protocol error",
                        };
                        line::connection_error(dcid, dest, ip, port, &e, reason)
                    });
                    last = Some(HostFailure {
                        kind,
                        text: e.to_string(),
                    });
                    if kind == HostFailureKind::Tls && rules.tls_error_is_final {
                        break;
                    }
                }
            }
        }
        Err(last)
    }

    /// Sends one job over an open connection and records the outcome; says whether the
    /// connection can carry the next job.
    async fn deliver(
        self: &Arc<Self>,
        rules: &Rules,
        dest: &str,
        conn: &mut Connection,
        dcid: Dcid,
        job: Job,
    ) -> Connected {
        let loaded = match &rules.kind {
            Kind::Mail(_) => self
                .store
                .message(job.mid)
                .await
                .map(|m| m.map(|m| (m, None))),
            Kind::Journal(_) => self
                .store
                .message_with_recipients(job.mid)
                .await
                .map(|m| m.map(|(m, r)| (m, Some(r)))),
        };
        let (message, recipients) = match loaded {
            Ok(Some(m)) => m,
            Ok(None) => {
                tracing::error!(mid = job.mid.0, "queued message is missing from the store");
                self.release(&job);
                return Connected::Usable;
            }
            Err(e) => {
                // Its rows come due again after the lease (a full disk or descriptor table may
                // pass; a body file gone missing shows here on every attempt).
                tracing::error!(mid = job.mid.0, error = %e, "cannot read the queued message");
                self.release(&job);
                return Connected::Usable;
            }
        };
        let rcpts: Vec<&str> = job.rows.iter().map(|r| r.recipient.as_str()).collect();
        let (sender, body) = match &rules.kind {
            Kind::Mail(_) => {
                let rids: Vec<u32> = job.rows.iter().map(|r| r.rcpt_idx).collect();
                self.log.info(line::delivery_start(dcid, job.mid, &rids));
                (message.sender.as_str(), Cow::Borrowed(&message.body[..]))
            }
            Kind::Journal(config) => {
                self.log.info(tdc::delivery_start(dcid, job.mid));
                let env = rampart_tdc::journal::Envelope {
                    mid: job.mid.0,
                    sender: &message.sender,
                    recipients: recipients.as_deref().unwrap_or_default(),
                    remote_ip: &message.remote_ip,
                    policy: &message.policy,
                    message_id: message.message_id.as_deref(),
                    hostname: &self.config.hostname,
                    intake: rcpts.first().copied().unwrap_or_default(),
                };
                let body = rampart_tdc::journal::body(config, &env, &message.body);
                (config.envelope_sender.as_str(), Cow::Owned(body))
            }
        };
        let (attempt, connected) = if !conn.size_ok(body.len()) {
            let reply = Reply::new(
                552,
                Some(Enhanced(5, 3, 4)),
                "Message too big for the destination (SIZE)",
            );
            let replies = vec![reply; job.rows.len()];
            (Attempt::Replied { replies, tls: None }, Connected::Usable)
        } else {
            match conn.send(sender, &rcpts, &body).await {
                Ok(replies) => {
                    let replies = (0..job.rows.len()).map(|i| replies.for_rcpt(i)).collect();
                    let tls = conn.tls.as_ref().map(|(protocol, _)| protocol.clone());
                    (Attempt::Replied { replies, tls }, Connected::Usable)
                }
                Err(e) => (Attempt::Lost(e.to_string()), Connected::Broken),
            }
        };
        let remote = Some(conn.peer.ip().to_string());
        self.conclude(rules, dest, dcid, job, Some(message), remote, attempt)
            .await;
        connected
    }

    /// Decides an attempt and stores its outcome: logs at once, then the row outcomes, counters,
    /// tracking and any DSN in one transaction, in the background. A mail job that never
    /// reached a server has its message loaded here (a DSN needs it).
    #[allow(clippy::too_many_arguments)]
    async fn conclude(
        self: &Arc<Self>,
        rules: &Rules,
        dest: &str,
        dcid: Dcid,
        job: Job,
        message: Option<StoredMessage>,
        remote: Option<String>,
        attempt: Attempt,
    ) {
        let message = match message {
            None if matches!(rules.kind, Kind::Mail(_)) => {
                match self.store.message(job.mid).await {
                    Ok(Some(m)) => Some(m),
                    Ok(None) => {
                        tracing::error!(
                            mid = job.mid.0,
                            "queued message is missing from the store"
                        );
                        self.release(&job);
                        return;
                    }
                    Err(e) => {
                        tracing::error!(mid = job.mid.0, error = %e, "cannot read the queued message");
                        self.release(&job);
                        return;
                    }
                }
            }
            m => m,
        };
        let mid = job.mid;
        let sender = message.as_ref().map_or("", |m| m.sender.as_str());
        let cx = Context {
            dest,
            dcid,
            mid,
            rows: &job.rows,
            sender,
            remote: remote.as_deref(),
            now: unix_now(),
        };
        let decision = decide::decide(&cx, attempt, &rules.kind, &mut |wait| {
            rand::random_range(0..=wait / 10)
        });
        for line in decision.log {
            self.log.info(line);
        }
        let dsn = match &message {
            Some(m) if !decision.failed.is_empty() => self.build_dsn(m, &decision.failed).await,
            _ => None,
        };
        let mut tracking: Vec<(Mid, String)> =
            decision.tracking.into_iter().map(|t| (mid, t)).collect();
        if let Some(d) = &dsn {
            tracking.push((
                mid,
                format!(
                    "Message {mid} bounce notification MID {} queued to <{sender}>",
                    d.mid
                ),
            ));
        }
        let (rows, delta) = (decision.rows, decision.delta);
        let inner = self.clone();
        let dest = dest.to_owned();
        self.commit_in_background(async move {
            match inner
                .store
                .record_attempt(&dest, &rows, &delta, &tracking, dsn.as_ref())
                .await
            {
                Ok(finished) => {
                    if let Some(d) = &dsn {
                        inner.log.info(line::generated_for_bounce(d.mid, mid));
                    }
                    for m in finished {
                        inner.log.info(line::finished(m));
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
        message: &StoredMessage,
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
}
