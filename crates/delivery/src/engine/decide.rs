//! What one attempt comes to: each row's outcome, the destination's counters, tracking events,
//! `mail_logs` lines and the recipients a DSN names. Pure: the worker does the I/O before
//! (connecting, sending) and after (storing, logging, building the DSN); the case table in the
//! tests pins the rules for mail (the bounce profile) and journal copies (Cisco's table, SPEC §4).

use rampart_dsn as dsn;
use rampart_maillog::line;
use rampart_settings::BounceProfile;
use rampart_smtp::{Enhanced, Reply};
use rampart_store::{Claimed, Dcid, HostDelta, Mid, Outcome, RowOutcome};
use rampart_tdc::rules::{self as tdc_rules, Failure, Next};
use rampart_tdc::{TdcConfig, text as tdc};

use super::rules::Kind;

/// The job an attempt was for.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    pub dest: &'a str,
    /// The session's DCID; 0 when no session was opened.
    pub dcid: Dcid,
    pub mid: Mid,
    pub rows: &'a [Claimed],
    /// The message's envelope sender (empty: the null sender, who never gets a DSN).
    pub sender: &'a str,
    /// The server that answered, for DSNs.
    pub remote: Option<&'a str>,
    pub now: i64,
}

/// What the worker saw.
#[derive(Debug, Clone)]
pub(crate) enum Attempt {
    /// The server answered: one reply per row, in row order. `tls` is the session's protocol.
    Replied {
        replies: Vec<Reply>,
        tls: Option<String>,
    },
    /// The session broke during the transaction.
    Lost(String),
    /// No session was opened.
    Unreached(Unreached),
    /// Not sent: queued longer than its rules allow (journal copies, before each attempt).
    TooOld,
}

/// Why no session was opened.
#[derive(Debug, Clone)]
pub(crate) enum Unreached {
    /// DNS says there is no such domain, or a null MX: `status` is the enhanced code.
    NoSuchDomain { status: Enhanced, text: String },
    /// DNS could not answer now.
    DnsTemporary(String),
    /// No host took a session: the last host's failure, if a host was tried.
    Hosts(Option<HostFailure>),
}

/// Why one host could not be used.
#[derive(Debug, Clone)]
pub(crate) struct HostFailure {
    pub kind: HostFailureKind,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostFailureKind {
    Tls,
    /// The greeting or EHLO was refused with this code.
    Refused(u16),
    Network,
}

/// Everything an attempt changes.
#[derive(Debug, Default)]
pub(crate) struct Decision {
    pub rows: Vec<RowOutcome>,
    pub delta: HostDelta,
    /// Tracking events of the job's message.
    pub tracking: Vec<String>,
    /// `mail_logs` lines, written as soon as the attempt is decided.
    pub log: Vec<String>,
    /// The recipients a DSN to the sender names; empty when none is sent.
    pub failed: Vec<dsn::Failed>,
}

/// Decides an attempt. `jitter(wait)` picks the random part (up to a tenth) added to a mail
/// retry's wait, so that retries of one burst spread out.
pub(crate) fn decide(
    cx: &Context<'_>,
    attempt: Attempt,
    kind: &Kind,
    jitter: &mut dyn FnMut(u64) -> u64,
) -> Decision {
    match kind {
        Kind::Mail(profile) => mail(cx, attempt, profile, jitter),
        Kind::Journal(config) => journal(cx, attempt, config),
    }
}

fn mail(
    cx: &Context<'_>,
    attempt: Attempt,
    profile: &BounceProfile,
    jitter: &mut dyn FnMut(u64) -> u64,
) -> Decision {
    let (mid, dcid) = (cx.mid, cx.dcid);
    let n = cx.rows.len();
    let (replies, tls) = match attempt {
        Attempt::Replied { replies, tls } => (replies, tls),
        Attempt::Lost(e) => (vec![Reply::owned(451, Some(Enhanced(4, 4, 2)), e); n], None),
        Attempt::Unreached(Unreached::NoSuchDomain { status, text }) => {
            (vec![Reply::owned(550, Some(status), text); n], None)
        }
        Attempt::Unreached(Unreached::DnsTemporary(text)) => (
            vec![Reply::owned(451, Some(Enhanced(4, 4, 1)), text); n],
            None,
        ),
        Attempt::Unreached(Unreached::Hosts(_)) => {
            let text = format!("Unable to connect to any host for {}", cx.dest);
            (
                vec![Reply::owned(451, Some(Enhanced(4, 4, 1)), text); n],
                None,
            )
        }
        // Mail expires by its attempts; a too-old job is expired as after a failed one.
        Attempt::TooOld => {
            let text = "Delivery expired (message too old)";
            (
                vec![Reply::owned(451, Some(Enhanced(4, 4, 7)), text); n],
                None,
            )
        }
    };
    let mut d = Decision::default();
    let mut delivered_rids = Vec::new();
    let mut delivered_reply = None;
    for (row, reply) in cx.rows.iter().zip(replies) {
        let rid = row.rcpt_idx;
        let text = reply.to_string();
        let smtp_text = reply_text(&reply);
        let outcome = if reply.is_positive() {
            delivered_rids.push(rid);
            d.delta.delivered += 1;
            d.tracking.push(format!(
                "Message {mid} to <{}> delivered (DCID {dcid}): {text}",
                row.recipient
            ));
            delivered_reply = Some(smtp_text);
            Outcome::Delivered
        } else if reply.is_transient() {
            d.delta.soft_bounced += 1;
            let attempts = row.attempts + 1;
            let expired = attempts > profile.max_retries
                || cx.now - row.created_at >= profile.max_queue_secs as i64;
            if expired {
                d.delta.hard_bounced += 1;
                d.log.push(line::expired(dcid, mid, rid, &text));
                d.tracking.push(format!(
                    "Message {mid} to <{}> expired after {attempts} attempts: {text}",
                    row.recipient
                ));
                d.failed.push(dsn::Failed {
                    recipient: row.recipient.clone(),
                    status: "5.4.7".into(),
                    diagnostic: format!(
                        "delivery expired after {attempts} attempts; last error: {text}"
                    ),
                    remote_mta: cx.remote.map(str::to_owned),
                });
                Outcome::Expired
            } else {
                let wait = profile.backoff_secs(attempts);
                let wait = wait + jitter(wait).min(wait / 10);
                let status = reply
                    .enhanced
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "4.0.0".into());
                d.log.push(line::delayed(
                    dcid, mid, rid, &status, reply.code, &smtp_text,
                ));
                d.tracking.push(format!(
                    "Message {mid} to <{}> soft bounced, retry in {wait}s: {text}",
                    row.recipient
                ));
                Outcome::Retry {
                    next_attempt_at: cx.now + wait as i64,
                }
            }
        } else {
            d.delta.hard_bounced += 1;
            let status = reply
                .enhanced
                .map(|e| e.to_string())
                .unwrap_or_else(|| "5.0.0".into());
            d.log.push(line::bounced(
                dcid, mid, rid, &status, reply.code, &smtp_text,
            ));
            d.tracking.push(format!(
                "Message {mid} to <{}> hard bounced: {text}",
                row.recipient
            ));
            d.failed.push(dsn::Failed {
                recipient: row.recipient.clone(),
                status,
                diagnostic: text.clone(),
                remote_mta: cx.remote.map(str::to_owned),
            });
            Outcome::Bounced
        };
        let tls = matches!(outcome, Outcome::Delivered)
            .then(|| tls.clone())
            .flatten();
        d.rows.push(RowOutcome {
            id: row.id,
            outcome,
            reply: text,
            tls,
        });
    }
    if !delivered_rids.is_empty() {
        d.log.push(line::message_done(dcid, mid, &delivered_rids));
        if let Some(text) = delivered_reply {
            d.log.push(line::response(mid, &delivered_rids, &text));
        }
    }
    if !profile.send_dsn || cx.sender.is_empty() {
        d.failed.clear();
    }
    d
}

/// Journal copies: Cisco's retry table and the queue-age expiry; never a DSN.
fn journal(cx: &Context<'_>, attempt: Attempt, config: &TdcConfig) -> Decision {
    let mid = cx.mid;
    let mut d = Decision::default();
    // Per row: delivered over `tls`, too old, or failed with a reason.
    enum Result {
        Delivered(String, Option<String>),
        TooOld,
        Failed(Failure, String),
    }
    let results: Vec<Result> = match attempt {
        Attempt::Replied { replies, tls } => replies
            .into_iter()
            .map(|reply| {
                if reply.is_positive() {
                    Result::Delivered(reply.to_string(), tls.clone())
                } else {
                    let text = reply.to_string();
                    let rest = text.get(4..).unwrap_or("");
                    Result::Failed(Failure::Smtp(reply.code), tdc::refusal(reply.code, rest))
                }
            })
            .collect(),
        Attempt::TooOld => cx.rows.iter().map(|_| Result::TooOld).collect(),
        other => {
            let (failure, reason) = match other {
                Attempt::Lost(e) => (Failure::Network, e),
                Attempt::Unreached(Unreached::NoSuchDomain { status, text }) => {
                    d.log.push(tdc::hard_bounced(&status.to_string(), &text));
                    (Failure::NxDomain, format!("{status} {text}"))
                }
                Attempt::Unreached(Unreached::DnsTemporary(text)) => (Failure::DnsTemporary, text),
                Attempt::Unreached(Unreached::Hosts(Some(h))) => (tdc_failure(h.kind), h.text),
                _ => (
                    Failure::Network,
                    "no intake host could be reached".to_owned(),
                ),
            };
            cx.rows
                .iter()
                .map(|_| Result::Failed(failure.clone(), reason.clone()))
                .collect()
        }
    };
    for (row, result) in cx.rows.iter().zip(results) {
        let (outcome, reply, tls) = match result {
            Result::Delivered(reply, tls) => {
                d.delta.delivered += 1;
                d.log.push(tdc::delivered(mid));
                d.tracking.push(tdc::delivered_event(mid));
                (Outcome::Delivered, reply, tls)
            }
            Result::TooOld => {
                let reason = tdc::expiry(cx.now - row.created_at);
                d.delta.hard_bounced += 1;
                d.log.push(tdc::failed(mid, &reason));
                d.tracking.push(tdc::failed_event(mid, &reason));
                (Outcome::Expired, reason, None)
            }
            Result::Failed(failure, reason) => {
                let attempts = row.attempts + 1;
                let expired = tdc_rules::expired(cx.now, row.created_at, config.max_queue_age_secs);
                if tdc_rules::after_failure(&failure, attempts) == Next::Retry && !expired {
                    let at = tdc_rules::retry_at(
                        cx.now,
                        row.created_at,
                        config.retry_delay_secs,
                        config.max_queue_age_secs,
                    );
                    d.delta.soft_bounced += 1;
                    d.log.push(tdc::deferred(mid, at - cx.now, &reason));
                    d.tracking.push(tdc::deferred_event(mid, &reason));
                    (
                        Outcome::Retry {
                            next_attempt_at: at,
                        },
                        reason,
                        None,
                    )
                } else {
                    // A retryable failure that ran out of retries was a soft bounce first.
                    d.delta.soft_bounced += u64::from(tdc_rules::retryable(&failure));
                    d.delta.hard_bounced += 1;
                    d.log.push(tdc::failed(mid, &reason));
                    d.tracking.push(tdc::failed_event(mid, &reason));
                    (Outcome::Bounced, reason, None)
                }
            }
        };
        d.rows.push(RowOutcome {
            id: row.id,
            outcome,
            reply,
            tls,
        });
    }
    d
}

/// A host failure in the terms of Cisco's retry table.
pub(crate) fn tdc_failure(kind: HostFailureKind) -> Failure {
    match kind {
        HostFailureKind::Tls => Failure::Tls,
        HostFailureKind::Refused(code) => Failure::Smtp(code),
        HostFailureKind::Network => Failure::Network,
    }
}

/// The reply without its code, as AsyncOS quotes responses: `2.0.0 Ok: queued as 12`.
fn reply_text(reply: &Reply) -> String {
    let text = reply.text.replace('\n', " ");
    match reply.enhanced {
        Some(e) => format!("{e} {text}"),
        None => text,
    }
}

#[cfg(test)]
mod tests;
