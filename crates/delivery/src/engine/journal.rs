//! Delivery of Threat Defense journal copies (the.tdc.queue), SPEC §4: the same queue and
//! connection machinery as every destination, with the connector's own connection counts, TLS
//! rules (verified, no plaintext fallback), Cisco's retry table, the 120-second expiry, no DSN
//! ever, and the `TDC:` log lines.

use std::sync::Arc;

use rampart_maillog::quote;
use rampart_smtp::Reply;
use rampart_store::{Dcid, HostDelta, Outcome, RowOutcome, unix_now};
use rampart_tdc::rules::{self, Failure, Next};
use rampart_tdc::{SETD, TDC_QUEUE};

use super::{Connected, Dest, Inner, Job};
use crate::client::{ClientError, Connection, TlsUse};
use crate::route::{self, RouteError};

/// STARTTLS toward the intake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TdcTls {
    Off,
    Preferred,
    Required,
}

/// `[tdc]` settings of the bootstrap configuration.
#[derive(Debug, Clone)]
pub struct TdcConfig {
    pub max_queue_age_secs: u64,
    pub retry_delay_secs: u64,
    pub min_connections: u32,
    pub max_connections: u32,
    pub max_messages_per_connection: u32,
    pub tls: TdcTls,
    pub remote_ip_header: String,
    /// Send the original itself instead of a journal message.
    pub copy_format: bool,
    /// Envelope sender; empty = the null sender.
    pub envelope_sender: String,
}

/// The intake's domain, from the row's recipient (the intake address).
fn intake_domain(job: &Job) -> String {
    job.rows
        .first()
        .and_then(|r| r.recipient.rsplit_once('@'))
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default()
}

impl Inner {
    pub(super) async fn journal_worker(self: &Arc<Self>, dest: &Dest) {
        loop {
            if *self.shutdown.borrow() {
                return;
            }
            let Some(domain) = dest.peek(intake_domain) else {
                return;
            };
            let same = |j: &Job| intake_domain(j) == domain;
            let settings = self.settings.load_full();
            let targets = {
                let mut routing = dest.routing.lock().await;
                match routing.as_ref() {
                    Some((at, d, t)) if *d == domain && at.elapsed() < super::ROUTE_REUSE => {
                        t.clone()
                    }
                    _ => {
                        // Another worker may have failed these jobs while this one waited.
                        if dest.peek(intake_domain).as_deref() != Some(domain.as_str()) {
                            continue;
                        }
                        match route::targets(
                            &domain,
                            &settings,
                            self.resolver.as_ref(),
                            self.config.port,
                        )
                        .await
                        {
                            Ok(t) => {
                                *routing =
                                    Some((std::time::Instant::now(), domain.clone(), t.clone()));
                                t
                            }
                            Err(RouteError::Hard { status, text }) => {
                                for job in dest.take_all_where(same) {
                                    self.log
                                        .info(format!("TDC: Hard bounced - {status} - {text}"));
                                    self.journal_failed(
                                        &job,
                                        Failure::NxDomain,
                                        &format!("{status} {text}"),
                                    )
                                    .await;
                                }
                                continue;
                            }
                            Err(RouteError::Temporary(text)) => {
                                for job in dest.take_all_where(same) {
                                    self.journal_failed(&job, Failure::DnsTemporary, &text)
                                        .await;
                                }
                                continue;
                            }
                        }
                    }
                }
            };
            let tls = match self.config.tdc.tls {
                TdcTls::Off => TlsUse::Off,
                TdcTls::Preferred => TlsUse::Opportunistic(self.tls.verified.clone()),
                TdcTls::Required => TlsUse::Required(self.tls.verified.clone()),
            };
            let mut connected = None;
            let mut failure = (
                Failure::Network,
                String::from("no intake host could be reached"),
            );
            for t in &targets {
                let Ok(dcid) = self.store.next_dcid().await else {
                    return;
                };
                match Connection::open(
                    t.addr,
                    &t.name,
                    &self.config.hostname,
                    &tls,
                    &self.config.timeouts,
                )
                .await
                {
                    Ok(conn) => {
                        self.log.info(format!(
                            "TDC: New SMTP DCID {dcid} interface {} address {} port {}",
                            conn.local.ip(),
                            t.addr.ip(),
                            t.addr.port()
                        ));
                        if let Some((protocol, cipher)) = &conn.tls {
                            self.log.info(format!(
                                "DCID {dcid} TLS success protocol {protocol} cipher {cipher}"
                            ));
                        }
                        connected = Some((conn, dcid));
                        break;
                    }
                    Err(e) => {
                        let (kind, reason) = match &e {
                            ClientError::Tls(_) => (Failure::Tls, "TLS negotiation failed"),
                            ClientError::Refused(r) => {
                                (Failure::Smtp(r.code), "the intake refused the session")
                            }
                            _ => (Failure::Network, "connection to the intake failed"),
                        };
                        self.log.info(format!(
                            "TDC: Connection Error: DCID {dcid} domain: {TDC_QUEUE} IP: {} port: {} details: {e} interface: 0.0.0.0 reason: {reason}",
                            t.addr.ip(),
                            t.addr.port()
                        ));
                        failure = (kind, e.to_string());
                        // A TLS failure is final: no other host, no plain text.
                        if matches!(failure.0, Failure::Tls) {
                            break;
                        }
                    }
                }
            }
            let Some((mut conn, dcid)) = connected else {
                let _ = self.store.host_down(TDC_QUEUE, true).await;
                for job in dest.take_all_where(same) {
                    self.journal_failed(&job, failure.0.clone(), &failure.1)
                        .await;
                }
                continue;
            };
            let _ = self.store.host_down(TDC_QUEUE, false).await;
            let _ = self.store.host_connection(TDC_QUEUE, 1).await;
            let mut sent = 0;
            let mut broken = false;
            while sent < self.config.tdc.max_messages_per_connection && !*self.shutdown.borrow() {
                let Some(job) = dest.take_where(same) else {
                    break;
                };
                if self.journal_expired(&job).await {
                    continue;
                }
                sent += 1;
                if self.send_journal(&mut conn, dcid, &job).await == Connected::Broken {
                    broken = true;
                    break;
                }
            }
            if !broken {
                conn.quit().await;
            }
            let _ = self.store.host_connection(TDC_QUEUE, -1).await;
            self.log.info(format!("DCID {dcid} close"));
        }
    }

    /// Removes a copy that has been queued too long; true when it did.
    async fn journal_expired(self: &Arc<Self>, job: &Job) -> bool {
        let Some(row) = job.rows.first() else {
            return true;
        };
        let now = unix_now();
        if !rules::expired(now, row.created_at, self.config.tdc.max_queue_age_secs) {
            return false;
        }
        let reason = format!(
            "expired after {} seconds in the queue",
            now - row.created_at
        );
        self.journal_record(
            job,
            Outcome::Expired,
            &reason,
            HostDelta {
                hard_bounced: 1,
                ..Default::default()
            },
            None,
        )
        .await;
        true
    }

    /// Sends one journal copy; says whether the connection can carry the next one.
    async fn send_journal(
        self: &Arc<Self>,
        conn: &mut Connection,
        dcid: Dcid,
        job: &Job,
    ) -> Connected {
        let Some(row) = job.rows.first() else {
            return Connected::Usable;
        };
        let mid = job.mid;
        let (message, recipients) = match self.store.message_with_recipients(mid).await {
            Ok(Some(m)) => m,
            _ => {
                self.release(job);
                return Connected::Usable;
            }
        };
        let tdc = &self.config.tdc;
        let original = rampart_tdc::journal::with_remote_ip(
            &message.body,
            &tdc.remote_ip_header,
            &message.remote_ip,
        );
        let body = if tdc.copy_format {
            original
        } else {
            let env = rampart_tdc::journal::Envelope {
                mid: mid.0,
                sender: &message.sender,
                recipients: &recipients,
                remote_ip: &message.remote_ip,
                policy: &message.policy,
                message_id: message.message_id.as_deref(),
                hostname: &self.config.hostname,
                intake: &row.recipient,
            };
            rampart_tdc::journal::build(&env, &original)
        };
        self.log
            .info(format!("TDC: Delivery start DCID {dcid} MID {mid}"));
        match conn
            .send(&tdc.envelope_sender, &[row.recipient.as_str()], &body)
            .await
        {
            Ok(replies) => {
                let reply = replies.for_rcpt(0);
                if reply.is_positive() {
                    self.log.info(format!(
                        "TDC: MID {mid} successfully delivered for scanning with {SETD}"
                    ));
                    // The ledger keeps how the copy travelled, for the intake health view.
                    self.journal_record(
                        job,
                        Outcome::Delivered,
                        &reply.to_string(),
                        HostDelta {
                            delivered: 1,
                            ..Default::default()
                        },
                        conn.tls.as_ref().map(|(protocol, _)| protocol.clone()),
                    )
                    .await;
                } else {
                    self.journal_failed(job, Failure::Smtp(reply.code), &reply_line(&reply))
                        .await;
                }
                Connected::Usable
            }
            Err(e) => {
                self.journal_failed(job, Failure::Network, &e.to_string())
                    .await;
                Connected::Broken
            }
        }
    }

    /// Applies the retry table to a failed attempt.
    async fn journal_failed(self: &Arc<Self>, job: &Job, failure: Failure, reason: &str) {
        let Some(row) = job.rows.first() else { return };
        let mid = job.mid;
        let attempts = row.attempts + 1;
        let now = unix_now();
        let tdc = &self.config.tdc;
        match rules::after_failure(&failure, attempts) {
            Next::Retry if !rules::expired(now, row.created_at, tdc.max_queue_age_secs) => {
                let at = rules::retry_at(
                    now,
                    row.created_at,
                    tdc.retry_delay_secs,
                    tdc.max_queue_age_secs,
                );
                self.log.info(format!(
                    "TDC: MID {mid} delivery deferred, retrying in {}s: {reason}",
                    at - now
                ));
                self.journal_record(
                    job,
                    Outcome::Retry {
                        next_attempt_at: at,
                    },
                    reason,
                    HostDelta {
                        soft_bounced: 1,
                        ..Default::default()
                    },
                    None,
                )
                .await;
            }
            _ => {
                self.log.info(format!(
                    "TDC: MID {mid} delivery failed to {SETD}: {reason}"
                ));
                // A retryable failure that ran out of retries was a soft bounce first.
                let delta = HostDelta {
                    soft_bounced: u64::from(rules::retryable(&failure)),
                    hard_bounced: 1,
                    ..Default::default()
                };
                self.journal_record(job, Outcome::Bounced, reason, delta, None)
                    .await;
            }
        }
    }

    /// Stores the outcome of a journal attempt (never a DSN) and logs what became final; `tls`
    /// is the protocol of the session that delivered it, if TLS was used.
    async fn journal_record(
        self: &Arc<Self>,
        job: &Job,
        outcome: Outcome,
        reason: &str,
        delta: HostDelta,
        tls: Option<String>,
    ) {
        let mid = job.mid;
        let event = match &outcome {
            Outcome::Delivered => {
                format!("TDC: Message {mid} was successfully delivered for scanning with {SETD}.")
            }
            Outcome::Retry { .. } => {
                format!("TDC: Message {mid} delivery to {SETD} deferred: {reason}.")
            }
            Outcome::Expired => format!(
                "TDC: Message {mid} could not be delivered for scanning with {SETD}: {reason}."
            ),
            _ => format!(
                "TDC: Message {mid} could not be delivered for scanning with {SETD}: {reason}."
            ),
        };
        let outcomes: Vec<RowOutcome> = job
            .rows
            .iter()
            .map(|r| RowOutcome {
                id: r.id,
                outcome: outcome.clone(),
                reply: reason.to_owned(),
                tls: tls.clone(),
            })
            .collect();
        if outcome == Outcome::Expired {
            self.log.info(format!(
                "TDC: MID {mid} delivery failed to {SETD}: {reason}"
            ));
        }
        let inner = self.clone();
        let job = job.clone();
        self.commit_in_background(async move {
            match inner
                .store
                .record_attempt(TDC_QUEUE, &outcomes, &delta, &[(mid, event)], None)
                .await
            {
                Ok(finished) => {
                    for m in finished {
                        inner.log.info(format!("Message finished MID {m} done"));
                    }
                }
                Err(e) => tracing::error!(error = %e, mid = mid.0, "cannot record journal outcome"),
            }
            inner.release(&job);
        });
    }
}

/// `550 5.7.1 text` → `('550', '5.7.1 text')`, as AsyncOS quotes a remote reply.
fn reply_line(reply: &Reply) -> String {
    let text = reply.to_string();
    let rest = text.get(4..).unwrap_or("");
    format!("('{}', {})", reply.code, quote(rest))
}
