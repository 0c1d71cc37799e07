//! The connector's `mail_logs` lines and message-tracking events (SPEC §5), in one place so that
//! the MTA, the.tdc.queue and the tests say them the same way.
//!
//! `mid`, `dcid` are printed as given; callers pass Rampart's ID types.

use std::fmt::Display;
use std::net::IpAddr;

use rampart_maillog::{line, quote};

use crate::SETD;

/// Log: a clean message's copy was queued (before the `250`).
pub fn enqueued(mid: impl Display, message_id: &str) -> String {
    format!(
        "TDC: MID {mid} with Message-ID {} enqueued for delivery to {SETD}",
        quote(message_id)
    )
}

/// Tracking: a clean message's copy was queued.
pub fn enqueued_event(mid: impl Display) -> String {
    format!("Message {mid} enqueued for delivery to {SETD}")
}

/// Log: a session to the intake is open (the AsyncOS line, marked `TDC:`).
pub fn new_smtp(dcid: impl Display, local: IpAddr, remote: IpAddr, port: u16) -> String {
    format!("TDC: {}", line::new_dcid(dcid, local, remote, port))
}

/// Log: one intake host could not be used.
pub fn connection_error(
    dcid: impl Display,
    remote: IpAddr,
    port: u16,
    details: impl Display,
    reason: &str,
) -> String {
    let text = line::connection_error(dcid, crate::TDC_QUEUE, remote, port, details, reason);
    format!("TDC: {text}")
}

/// Log: a copy is being sent.
pub fn delivery_start(dcid: impl Display, mid: impl Display) -> String {
    format!("TDC: Delivery start DCID {dcid} MID {mid}")
}

/// Log: the intake took the copy.
pub fn delivered(mid: impl Display) -> String {
    format!("TDC: MID {mid} successfully delivered for scanning with {SETD}")
}

/// Tracking: the intake took the copy (the one line SPEC §5 shows per journaled message).
pub fn delivered_event(mid: impl Display) -> String {
    format!("TDC: Message {mid} was successfully delivered for scanning with {SETD}.")
}

/// Log: the attempt failed and the copy is retried in `secs`.
pub fn deferred(mid: impl Display, secs: i64, reason: &str) -> String {
    format!("TDC: MID {mid} delivery deferred, retrying in {secs}s: {reason}")
}

/// Tracking: the attempt failed and the copy is retried.
pub fn deferred_event(mid: impl Display, reason: &str) -> String {
    format!("TDC: Message {mid} delivery to {SETD} deferred: {reason}.")
}

/// Log: the copy is given up (failed for good, or expired).
pub fn failed(mid: impl Display, reason: &str) -> String {
    format!("TDC: MID {mid} delivery failed to {SETD}: {reason}")
}

/// Tracking: the copy is given up.
pub fn failed_event(mid: impl Display, reason: &str) -> String {
    format!("TDC: Message {mid} could not be delivered for scanning with {SETD}: {reason}.")
}

/// Log: DNS says the intake domain does not exist.
pub fn hard_bounced(status: &str, text: &str) -> String {
    format!("TDC: Hard bounced - {status} - {text}")
}

/// The reason given for an intake's refusal, as AsyncOS quotes a remote reply:
/// `('550', '5.7.1 text')`.
pub fn refusal(code: u16, rest: &str) -> String {
    format!("('{code}', {})", quote(rest))
}

/// The reason given for a copy removed by the queue-age limit.
pub fn expiry(secs_queued: i64) -> String {
    format!("expired after {secs_queued} seconds in the queue")
}

/// Why one intake host could not be used, for [`connection_error`].
pub fn connection_reason(failure: &crate::rules::Failure) -> &'static str {
    match failure {
        crate::rules::Failure::Tls => "TLS negotiation failed",
        crate::rules::Failure::Smtp(_) => "the intake refused the session",
        _ => "connection to the intake failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SPEC §5 texts, character for character.
    #[test]
    fn spec_lines() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            enqueued(14501404, "<a@b>"),
            "TDC: MID 14501404 with Message-ID '<a@b>' enqueued for delivery to Cisco Secure Email Threat Defense"
        );
        assert_eq!(
            new_smtp(4566150, ip("10.13.0.99"), ip("10.10.55.171"), 25),
            "TDC: New SMTP DCID 4566150 interface 10.13.0.99 address 10.10.55.171 port 25"
        );
        assert_eq!(
            delivery_start(4566150, 14501404),
            "TDC: Delivery start DCID 4566150 MID 14501404"
        );
        assert_eq!(
            delivered(14501404),
            "TDC: MID 14501404 successfully delivered for scanning with Cisco Secure Email Threat Defense"
        );
        assert_eq!(
            connection_error(36, ip("10.10.0.3"), 25, "refused", "x"),
            "TDC: Connection Error: DCID 36 domain: the.tdc.queue IP: 10.10.0.3 port: 25 details: refused interface: 0.0.0.0 reason: x"
        );
        assert_eq!(
            failed(1450012, "r"),
            "TDC: MID 1450012 delivery failed to Cisco Secure Email Threat Defense: r"
        );
        assert_eq!(
            hard_bounced(
                "5.1.2",
                "Bad destination host ('000', 'DNS Hard Error looking up x.test (MX): NXDomain')"
            ),
            "TDC: Hard bounced - 5.1.2 - Bad destination host ('000', 'DNS Hard Error looking up x.test (MX): NXDomain')"
        );
        assert_eq!(
            delivered_event(14501404),
            "TDC: Message 14501404 was successfully delivered for scanning with Cisco Secure Email Threat Defense."
        );
        assert_eq!(refusal(550, "5.7.1 no"), "('550', '5.7.1 no')");
    }
}
