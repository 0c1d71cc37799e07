//! The AsyncOS `mail_logs` lines (SPEC §5), one constructor each, so that every line of a kind is
//! written one way and the texts SIEM parsers read (Elastic's, Cribl's and Exabeam's ESA parsers)
//! are pinned by the golden tests below. The Threat Defense Connector's `TDC:` lines are in
//! `rampart_tdc::text`. IDs are printed as given; callers pass Rampart's ID types.

use std::fmt::Display;
use std::net::IpAddr;

use crate::quote;

// --- Connections in --------------------------------------------------------------------------

/// A client connected: `New SMTP ICID 5 interface Management (10.0.0.1) address 10.0.0.2
/// reverse dns host unknown verified no`.
pub fn new_icid(
    icid: impl Display,
    interface: &str,
    interface_ip: IpAddr,
    client: IpAddr,
    reverse_name: Option<&str>,
    verified: bool,
) -> String {
    format!(
        "New SMTP ICID {icid} interface {interface} ({interface_ip}) address {client} reverse dns host {} verified {}",
        reverse_name.unwrap_or("unknown"),
        if verified { "yes" } else { "no" }
    )
}

/// The client's sender group: `ICID 5 ACCEPT SG UNKNOWNLIST match ALL SBRS None country not
/// applicable`.
pub fn sender_group(icid: impl Display, policy: &str, group: &str, matched: &str) -> String {
    format!("ICID {icid} {policy} SG {group} match {matched} SBRS None country not applicable")
}

/// STARTTLS succeeded on an incoming connection.
pub fn icid_tls(icid: impl Display, protocol: &str, cipher: &str) -> String {
    format!("ICID {icid} TLS success protocol {protocol} cipher {cipher}")
}

pub fn icid_close(icid: impl Display) -> String {
    format!("ICID {icid} close")
}

// --- Messages in ------------------------------------------------------------------------------

pub fn start_mid(mid: impl Display, icid: impl Display) -> String {
    format!("Start MID {mid} ICID {icid}")
}

/// The envelope sender (empty for the null sender: `From: <>`).
pub fn from(mid: impl Display, icid: impl Display, sender: &str) -> String {
    format!("MID {mid} ICID {icid} From: <{sender}>")
}

pub fn to(mid: impl Display, icid: impl Display, rid: u32, recipient: &str) -> String {
    format!("MID {mid} ICID {icid} RID {rid} To: <{recipient}>")
}

pub fn message_id(mid: impl Display, id: &str) -> String {
    format!("MID {mid} Message-ID {}", quote(id))
}

pub fn subject(mid: impl Display, subject: &str) -> String {
    format!("MID {mid} Subject {}", quote(subject))
}

pub fn ready(mid: impl Display, bytes: usize, sender: &str) -> String {
    format!("MID {mid} ready {bytes} bytes from <{sender}>")
}

/// `direction`: `inbound` or `outbound`.
pub fn matched_policy(mid: impl Display, policy: &str, direction: &str) -> String {
    format!(
        "MID {mid} matched all recipients for per-recipient policy {policy} in the {direction} table"
    )
}

/// Recipients of another policy were split off into a new MID.
pub fn split(mid: impl Display, new: impl Display, policy: &str, direction: &str) -> String {
    format!(
        "MID {mid} was split creating MID {new} due to a per-recipient policy {policy} in the {direction} table"
    )
}

pub fn queued_for_delivery(mid: impl Display) -> String {
    format!("MID {mid} queued for delivery")
}

/// Every recipient of the MID is done with (delivered, bounced, dropped or quarantined out).
pub fn finished(mid: impl Display) -> String {
    format!("Message finished MID {mid} done")
}

pub fn generated_for_bounce(dsn: impl Display, mid: impl Display) -> String {
    format!("MID {dsn} was generated for bounce of MID {mid}")
}

// --- Scanning ---------------------------------------------------------------------------------

/// Anti-Spam's verdict (`positive`, `suspect`, `negative`, `unscannable`): the interim and the
/// final line, as AsyncOS writes both.
pub fn spam_verdict(mid: impl Display, word: &str) -> [String; 2] {
    [
        format!("MID {mid} interim verdict using engine: RSPAMD spam {word}"),
        format!("MID {mid} using engine: RSPAMD spam {word}"),
    ]
}

/// Anti-Virus found `virus`.
pub fn virus_positive(mid: impl Display, virus: &str) -> [String; 2] {
    [
        format!("MID {mid} interim AV verdict using CLAMAV VIRAL"),
        format!("MID {mid} antivirus positive {}", quote(virus)),
    ]
}

pub fn virus_negative(mid: impl Display) -> [String; 2] {
    [
        format!("MID {mid} interim AV verdict using CLAMAV CLEAN"),
        format!("MID {mid} antivirus negative"),
    ]
}

pub fn virus_unscannable(mid: impl Display) -> [String; 2] {
    [
        format!("MID {mid} interim AV verdict using CLAMAV UNSCANNABLE"),
        format!("MID {mid} antivirus unscannable"),
    ]
}

// --- Connections and deliveries out -----------------------------------------------------------

/// `[0, 1]`, as AsyncOS lists recipient indexes.
pub fn rids(rids: &[u32]) -> String {
    let list: Vec<String> = rids.iter().map(u32::to_string).collect();
    format!("[{}]", list.join(", "))
}

pub fn new_dcid(dcid: impl Display, local: IpAddr, remote: IpAddr, port: u16) -> String {
    format!("New SMTP DCID {dcid} interface {local} address {remote} port {port}")
}

/// STARTTLS succeeded on an outgoing connection (the.tdc.queue's too).
pub fn dcid_tls(dcid: impl Display, protocol: &str, cipher: &str) -> String {
    format!("DCID {dcid} TLS success protocol {protocol} cipher {cipher}")
}

/// One host of a destination could not be used.
pub fn connection_error(
    dcid: impl Display,
    domain: &str,
    remote: IpAddr,
    port: u16,
    details: impl Display,
    reason: &str,
) -> String {
    format!(
        "Connection Error: DCID {dcid} domain: {domain} IP: {remote} port: {port} details: {details} interface: 0.0.0.0 reason: {reason}"
    )
}

pub fn dcid_close(dcid: impl Display) -> String {
    format!("DCID {dcid} close")
}

pub fn delivery_start(dcid: impl Display, mid: impl Display, rid_list: &[u32]) -> String {
    format!(
        "Delivery start DCID {dcid} MID {mid} to RID {}",
        rids(rid_list)
    )
}

pub fn message_done(dcid: impl Display, mid: impl Display, rid_list: &[u32]) -> String {
    format!(
        "Message done DCID {dcid} MID {mid} to RID {}",
        rids(rid_list)
    )
}

/// The destination's reply to delivered recipients, without its code: `2.0.0 Ok: queued`.
pub fn response(mid: impl Display, rid_list: &[u32], reply: &str) -> String {
    format!("MID {mid} RID {} Response {}", rids(rid_list), quote(reply))
}

/// A recipient the destination refused for good; `reply` without its code.
pub fn bounced(
    dcid: impl Display,
    mid: impl Display,
    rid: u32,
    status: &str,
    code: u16,
    reply: &str,
) -> String {
    format!(
        "Bounced: DCID {dcid} MID {mid} to RID {rid} - Bounced by destination server with response: {status} - {reply} ('{code}', [{}])",
        quote(reply)
    )
}

/// A recipient out of retries or time; `last` is the last reply in full.
pub fn expired(dcid: impl Display, mid: impl Display, rid: u32, last: &str) -> String {
    format!(
        "Bounced: DCID {dcid} MID {mid} to RID {rid} - 5.4.7 - Delivery expired (message too old) ('000', [{}])",
        quote(last)
    )
}

/// A recipient to try again; `reply` without its code.
pub fn delayed(
    dcid: impl Display,
    mid: impl Display,
    rid: u32,
    status: &str,
    code: u16,
    reply: &str,
) -> String {
    format!(
        "Delayed: DCID {dcid} MID {mid} to RID {rid} - {status} - {reply} ('{code}', [{}])",
        quote(reply)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// SPEC §5's lines (and the AsyncOS forms it names), character for character.
    #[test]
    fn golden_lines() {
        #[rustfmt::skip]
        let cases: Vec<(String, &str)> = vec![
            (
                new_icid(5, "Management", ip("10.0.0.1"), ip("10.0.0.2"), None, false),
                "New SMTP ICID 5 interface Management (10.0.0.1) address 10.0.0.2 reverse dns host unknown verified no",
            ),
            (
                new_icid(5, "Management", ip("10.0.0.1"), ip("10.0.0.2"), Some("mx.example.com"), true),
                "New SMTP ICID 5 interface Management (10.0.0.1) address 10.0.0.2 reverse dns host mx.example.com verified yes",
            ),
            (
                sender_group(5, "ACCEPT", "UNKNOWNLIST", "ALL"),
                "ICID 5 ACCEPT SG UNKNOWNLIST match ALL SBRS None country not applicable",
            ),
            (start_mid(14501404, 5), "Start MID 14501404 ICID 5"),
            (from(14501404, 5, "a@b.test"), "MID 14501404 ICID 5 From: <a@b.test>"),
            (from(14501404, 5, ""), "MID 14501404 ICID 5 From: <>"),
            (to(14501404, 5, 0, "u@example.com"), "MID 14501404 ICID 5 RID 0 To: <u@example.com>"),
            (message_id(14501404, "<x@y>"), "MID 14501404 Message-ID '<x@y>'"),
            (subject(14501404, "it's"), "MID 14501404 Subject \"it's\""),
            (ready(14501404, 1234, "a@b.test"), "MID 14501404 ready 1234 bytes from <a@b.test>"),
            (
                matched_policy(14501404, "DEFAULT", "inbound"),
                "MID 14501404 matched all recipients for per-recipient policy DEFAULT in the inbound table",
            ),
            (
                new_dcid(4566150, ip("10.13.0.99"), ip("10.10.55.171"), 25),
                "New SMTP DCID 4566150 interface 10.13.0.99 address 10.10.55.171 port 25",
            ),
            (
                dcid_tls(4566150, "TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"),
                "DCID 4566150 TLS success protocol TLSv1.2 cipher ECDHE-RSA-AES128-GCM-SHA256",
            ),
            (delivery_start(7, 14501404, &[0]), "Delivery start DCID 7 MID 14501404 to RID [0]"),
            (message_done(7, 14501404, &[0, 1]), "Message done DCID 7 MID 14501404 to RID [0, 1]"),
            (response(14501404, &[0], "2.0.0 Ok"), "MID 14501404 RID [0] Response '2.0.0 Ok'"),
            (finished(14501404), "Message finished MID 14501404 done"),
            (icid_close(5), "ICID 5 close"),
            (dcid_close(7), "DCID 7 close"),
            (
                bounced(7, 14501404, 0, "5.1.1", 550, "5.1.1 unknown user"),
                "Bounced: DCID 7 MID 14501404 to RID 0 - Bounced by destination server with response: 5.1.1 - 5.1.1 unknown user ('550', ['5.1.1 unknown user'])",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
        assert_eq!(
            spam_verdict(14501404, "positive"),
            [
                "MID 14501404 interim verdict using engine: RSPAMD spam positive",
                "MID 14501404 using engine: RSPAMD spam positive"
            ]
        );
        assert_eq!(
            virus_positive(14501404, "Eicar-Test-Signature"),
            [
                "MID 14501404 interim AV verdict using CLAMAV VIRAL",
                "MID 14501404 antivirus positive 'Eicar-Test-Signature'"
            ]
        );
        assert_eq!(
            virus_negative(14501404)[1],
            "MID 14501404 antivirus negative"
        );
    }
}
