//! What a destination queue does, chosen by the scheduler for each destination: connection
//! counts, TLS use and what follows a TLS error, how long workers share a route lookup, and the
//! kind of mail, which decides retries and expiry, DSNs, the body sent and the log flavour.
//!
//! Ordinary destinations take their rules from the destination controls and the bounce profile;
//! the.tdc.queue takes them from the connector's configuration (`rampart_tdc`, SPEC §4).

use std::sync::Arc;
use std::time::Duration;

use rampart_settings::{BounceProfile, Snapshot, TlsPolicy};
use rampart_tdc::{TDC_QUEUE, TdcConfig, TdcTls};

use super::Job;
use crate::client::{TlsConfigs, TlsUse};

#[derive(Debug, Clone)]
pub(crate) struct Rules {
    pub per_connection: u32,
    /// Connections kept open while the queue has work.
    pub min_connections: u32,
    pub max_connections: u32,
    pub tls: TlsUse,
    /// After a failed handshake with opportunistic TLS, try the same host in plain text.
    pub plain_after_tls_error: bool,
    /// A TLS error ends the attempt: no other host is tried.
    pub tls_error_is_final: bool,
    /// How long simultaneous connections share one route lookup (zero: each looks up).
    pub route_reuse: Duration,
    pub kind: Kind,
}

/// What is delivered, which decides everything after the connection.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// Mail to its recipients: the bounce profile's retries and expiry, DSNs to the sender,
    /// the message as stored.
    Mail(BounceProfile),
    /// Journal copies to the intake: Cisco's retry table and queue-age expiry, never a DSN,
    /// the journal message, `TDC:` log lines.
    Journal(Arc<TdcConfig>),
}

/// Simultaneous intake connections share a lookup (the connector opens several at once).
const JOURNAL_ROUTE_REUSE: Duration = Duration::from_secs(5);

impl Rules {
    /// The rules for destination `dest`.
    pub fn for_destination(
        dest: &str,
        settings: &Snapshot,
        tdc: &Arc<TdcConfig>,
        tls: &TlsConfigs,
    ) -> Rules {
        if dest == TDC_QUEUE {
            return Rules::journal(tdc, tls);
        }
        let control = settings.destination(dest);
        let config = |verify: bool| {
            if verify {
                tls.verified.clone()
            } else {
                tls.unverified.clone()
            }
        };
        Rules {
            per_connection: control.max_messages_per_connection,
            min_connections: 1,
            max_connections: control.max_connections,
            tls: match control.tls {
                TlsPolicy::Off => TlsUse::Off,
                TlsPolicy::Preferred => TlsUse::Opportunistic(config(control.verify_tls)),
                TlsPolicy::Required => TlsUse::Required(config(control.verify_tls)),
            },
            plain_after_tls_error: control.tls == TlsPolicy::Preferred,
            tls_error_is_final: false,
            route_reuse: Duration::ZERO,
            kind: Kind::Mail(settings.bounce_profile().clone()),
        }
    }

    fn journal(tdc: &Arc<TdcConfig>, tls: &TlsConfigs) -> Rules {
        Rules {
            per_connection: tdc.max_messages_per_connection,
            min_connections: tdc.min_connections,
            max_connections: tdc.max_connections,
            // Always verified, and never plain text after a failed handshake.
            tls: match tdc.tls {
                TdcTls::Off => TlsUse::Off,
                TdcTls::Preferred => TlsUse::Opportunistic(tls.verified.clone()),
                TdcTls::Required => TlsUse::Required(tls.verified.clone()),
            },
            plain_after_tls_error: false,
            tls_error_is_final: true,
            route_reuse: JOURNAL_ROUTE_REUSE,
            kind: Kind::Journal(tdc.clone()),
        }
    }

    /// Workers to run for `pending` jobs.
    pub fn workers(&self, pending: usize) -> usize {
        let per_conn = self.per_connection.max(1) as usize;
        let max = self.max_connections as usize;
        let min = if pending > 0 {
            self.min_connections as usize
        } else {
            0
        };
        pending.div_ceil(per_conn).clamp(min.min(max), max)
    }

    /// The domain whose hosts take `job`: the destination itself, or for a journal copy its
    /// intake address's domain. One connection carries only jobs of one route domain.
    pub fn route_domain(&self, dest: &str, job: &Job) -> String {
        match self.kind {
            Kind::Mail(_) => dest.to_owned(),
            Kind::Journal(_) => intake_domain(job).to_ascii_lowercase(),
        }
    }

    /// True when `job` goes to `domain`'s hosts (see [`Rules::route_domain`]).
    pub fn routes_to(&self, job: &Job, domain: &str) -> bool {
        match self.kind {
            Kind::Mail(_) => true,
            Kind::Journal(_) => intake_domain(job).eq_ignore_ascii_case(domain),
        }
    }

    /// True when a job must not be sent any more: a journal copy past its queue age (mail
    /// expires by its attempts, after a failed one).
    pub fn too_old(&self, job: &Job, now: i64) -> bool {
        match &self.kind {
            Kind::Mail(_) => false,
            Kind::Journal(tdc) => job.rows.first().is_some_and(|r| {
                rampart_tdc::rules::expired(now, r.created_at, tdc.max_queue_age_secs)
            }),
        }
    }

    pub fn is_journal(&self) -> bool {
        matches!(self.kind, Kind::Journal(_))
    }
}

/// The domain of a journal copy's intake address.
fn intake_domain(job: &Job) -> &str {
    job.rows
        .first()
        .and_then(|r| r.recipient.rsplit_once('@'))
        .map_or("", |(_, d)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(min: u32, max: u32, per: u32) -> Rules {
        Rules {
            per_connection: per,
            min_connections: min,
            max_connections: max,
            tls: TlsUse::Off,
            plain_after_tls_error: false,
            tls_error_is_final: false,
            route_reuse: Duration::ZERO,
            kind: Kind::Mail(BounceProfile::default()),
        }
    }

    #[test]
    fn worker_counts() {
        // (min, max, per connection, pending) → workers
        let cases = [
            ((1, 20, 50), 0, 0),
            ((1, 20, 50), 1, 1),
            ((1, 20, 50), 51, 2),
            ((1, 2, 1), 10, 2),
            // The connector keeps three open for a single copy.
            ((3, 10, 50), 1, 3),
            ((3, 10, 50), 0, 0),
            // min above max: max wins.
            ((3, 2, 50), 1, 2),
            // per-connection 0 counts as 1.
            ((1, 5, 0), 3, 3),
        ];
        for ((min, max, per), pending, want) in cases {
            assert_eq!(
                rules(min, max, per).workers(pending),
                want,
                "{min} {max} {per} {pending}"
            );
        }
    }
}
