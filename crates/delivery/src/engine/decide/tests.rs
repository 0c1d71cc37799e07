//! The attempt rules as a case table: mail under the bounce profile, journal copies under
//! Cisco's table (SPEC §4), and the log and tracking texts they produce.

use std::sync::Arc;

use rampart_settings::BounceProfile;
use rampart_smtp::{Enhanced, Reply};
use rampart_store::{Claimed, Dcid, Mid, Outcome, QueueKind};
use rampart_tdc::{TdcConfig, TdcTls};

use super::*;
use crate::engine::rules::Kind;

const NOW: i64 = 1_000_000;

fn row(attempts: u32, age: i64, kind: QueueKind, recipient: &str) -> Claimed {
    Claimed {
        id: 7,
        mid: Mid(42),
        rcpt_idx: 0,
        recipient: recipient.into(),
        queue_name: "example.com".into(),
        kind,
        attempts,
        created_at: NOW - age,
    }
}

fn profile() -> BounceProfile {
    BounceProfile {
        max_retries: 3,
        max_queue_secs: 1000,
        initial_retry_secs: 60,
        max_retry_secs: 600,
        send_dsn: true,
    }
}

fn mail() -> Kind {
    Kind::Mail(profile())
}

fn journal() -> Kind {
    Kind::Journal(Arc::new(TdcConfig {
        max_queue_age_secs: 120,
        retry_delay_secs: 60,
        min_connections: 3,
        max_connections: 10,
        max_messages_per_connection: 50,
        tls: TdcTls::Preferred,
        remote_ip_header: "X-IronPort-RemoteIP".into(),
        copy_format: false,
        envelope_sender: String::new(),
    }))
}

fn reply(code: u16, e: (u8, u16, u16), text: &str) -> Reply {
    Reply::owned(code, Some(Enhanced(e.0, e.1, e.2)), text)
}

fn replied(code: u16, e: (u8, u16, u16), text: &str) -> Attempt {
    Attempt::Replied {
        replies: vec![reply(code, e, text)],
        tls: Some("TLSv1.3".into()),
    }
}

fn hosts(kind: HostFailureKind) -> Attempt {
    Attempt::Unreached(Unreached::Hosts(Some(HostFailure {
        kind,
        text: "it failed".into(),
    })))
}

fn run(kind: &Kind, rows: &[Claimed], sender: &str, attempt: Attempt) -> Decision {
    let cx = Context {
        dest: "example.com",
        dcid: Dcid(9),
        mid: Mid(42),
        rows,
        sender,
        remote: Some("192.0.2.25"),
        now: NOW,
    };
    decide(&cx, attempt, kind, &mut |_| 0)
}

/// What a case must come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Delivered,
    /// Retry this many seconds from now.
    Retry(i64),
    Bounced,
    Expired,
}

fn outcome(o: &Outcome) -> Want {
    match o {
        Outcome::Delivered => Want::Delivered,
        Outcome::Retry { next_attempt_at } => Want::Retry(next_attempt_at - NOW),
        Outcome::Bounced => Want::Bounced,
        Outcome::Expired => Want::Expired,
    }
}

#[test]
fn the_case_table() {
    use HostFailureKind::{Network, Refused, Tls};
    let (m, j) = (mail(), journal());
    let nxdomain = || {
        Attempt::Unreached(Unreached::NoSuchDomain {
            status: Enhanced(5, 1, 2),
            text: "Bad destination host".into(),
        })
    };
    let dns_temp = || Attempt::Unreached(Unreached::DnsTemporary("SERVFAIL".into()));
    // (name, rules, attempts before, age in s, attempt,
    //  outcome, (delivered, soft, hard), recipients named in a DSN)
    type Case<'a> = (
        &'a str,
        &'a Kind,
        u32,
        i64,
        Attempt,
        Want,
        (u64, u64, u64),
        usize,
    );
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        // Mail: the bounce profile.
        ("mail 250", &m, 0, 0, replied(250, (2, 0, 0), "ok"), Want::Delivered, (1, 0, 0), 0),
        ("mail 451 first", &m, 0, 0, replied(451, (4, 3, 0), "later"), Want::Retry(60), (0, 1, 0), 0),
        ("mail 451 backs off", &m, 2, 0, replied(451, (4, 3, 0), "later"), Want::Retry(240), (0, 1, 0), 0),
        ("mail 451 out of retries", &m, 3, 0, replied(451, (4, 3, 0), "later"), Want::Expired, (0, 1, 1), 1),
        ("mail 451 too old", &m, 0, 1000, replied(451, (4, 3, 0), "later"), Want::Expired, (0, 1, 1), 1),
        ("mail 550", &m, 0, 0, replied(550, (5, 1, 1), "no such user"), Want::Bounced, (0, 0, 1), 1),
        ("mail lost session", &m, 0, 0, Attempt::Lost("reset".into()), Want::Retry(60), (0, 1, 0), 0),
        ("mail NXDOMAIN", &m, 0, 0, nxdomain(), Want::Bounced, (0, 0, 1), 1),
        ("mail DNS temporary", &m, 0, 0, dns_temp(), Want::Retry(60), (0, 1, 0), 0),
        ("mail no host", &m, 0, 0, hosts(Network), Want::Retry(60), (0, 1, 0), 0),
        ("mail TLS error", &m, 0, 0, hosts(Tls), Want::Retry(60), (0, 1, 0), 0),
        // Journal copies: Cisco's table, one retry after 60 s, never a DSN.
        ("tdc 250", &j, 0, 0, replied(250, (2, 0, 0), "ok"), Want::Delivered, (1, 0, 0), 0),
        ("tdc 451 first", &j, 0, 0, replied(451, (4, 3, 0), "later"), Want::Retry(60), (0, 1, 0), 0),
        ("tdc 451 retried once", &j, 1, 60, replied(451, (4, 3, 0), "later"), Want::Bounced, (0, 1, 1), 0),
        ("tdc 421", &j, 0, 0, replied(421, (4, 4, 0), "busy"), Want::Retry(60), (0, 1, 0), 0),
        ("tdc 503", &j, 0, 0, replied(503, (5, 5, 1), "sequence"), Want::Retry(60), (0, 1, 0), 0),
        ("tdc 552", &j, 0, 0, replied(552, (5, 3, 4), "too big"), Want::Retry(60), (0, 1, 0), 0),
        ("tdc 550", &j, 0, 0, replied(550, (5, 7, 1), "no"), Want::Bounced, (0, 0, 1), 0),
        ("tdc 554", &j, 0, 0, replied(554, (5, 7, 1), "no"), Want::Bounced, (0, 0, 1), 0),
        ("tdc TLS error", &j, 0, 0, hosts(Tls), Want::Bounced, (0, 0, 1), 0),
        ("tdc refused 421", &j, 0, 0, hosts(Refused(421)), Want::Retry(60), (0, 1, 0), 0),
        ("tdc refused 554", &j, 0, 0, hosts(Refused(554)), Want::Bounced, (0, 0, 1), 0),
        ("tdc network", &j, 0, 0, hosts(Network), Want::Retry(60), (0, 1, 0), 0),
        ("tdc no host", &j, 0, 0, Attempt::Unreached(Unreached::Hosts(None)), Want::Retry(60), (0, 1, 0), 0),
        ("tdc lost session", &j, 0, 0, Attempt::Lost("reset".into()), Want::Retry(60), (0, 1, 0), 0),
        ("tdc DNS temporary", &j, 0, 0, dns_temp(), Want::Retry(60), (0, 1, 0), 0),
        ("tdc NXDOMAIN", &j, 0, 0, nxdomain(), Want::Bounced, (0, 0, 1), 0),
        // The retry never outlives the 120 s expiry ...
        ("tdc retry capped by expiry", &j, 0, 100, hosts(Network), Want::Retry(20), (0, 1, 0), 0),
        // ... and a failure at or past it is final.
        ("tdc failure after expiry", &j, 0, 120, hosts(Network), Want::Bounced, (0, 1, 1), 0),
        ("tdc too old to send", &j, 1, 130, Attempt::TooOld, Want::Expired, (0, 0, 1), 0),
    ];
    for (name, kind, attempts, age, attempt, want, (delivered, soft, hard), dsn) in cases {
        let q = if matches!(kind, Kind::Journal(_)) {
            QueueKind::Journal
        } else {
            QueueKind::Deliver
        };
        let rows = [row(attempts, age, q, "u@example.com")];
        let d = run(kind, &rows, "sender@example.org", attempt);
        assert_eq!(d.rows.len(), 1, "{name}");
        assert_eq!(d.rows[0].id, 7, "{name}");
        assert_eq!(outcome(&d.rows[0].outcome), want, "{name}");
        assert_eq!(
            (
                d.delta.delivered,
                d.delta.soft_bounced,
                d.delta.hard_bounced
            ),
            (delivered, soft, hard),
            "{name}"
        );
        assert_eq!(d.failed.len(), dsn, "{name}");
        assert!(!d.tracking.is_empty(), "{name}: a tracking event");
        assert!(!d.log.is_empty(), "{name}: a log line");
        let tls = d.rows[0].tls.as_deref();
        assert_eq!(
            tls.is_some(),
            want == Want::Delivered,
            "{name}: TLS only when delivered"
        );
    }
}

#[test]
fn mail_log_and_tracking_texts() {
    let rows = [row(0, 0, QueueKind::Deliver, "u@example.com")];
    let d = run(
        &mail(),
        &rows,
        "s@example.org",
        replied(250, (2, 0, 0), "Ok: queued as 12"),
    );
    assert_eq!(
        d.log,
        [
            "Message done DCID 9 MID 42 to RID [0]",
            "MID 42 RID [0] Response '2.0.0 Ok: queued as 12'"
        ]
    );
    assert_eq!(
        d.tracking,
        ["Message 42 to <u@example.com> delivered (DCID 9): 250 2.0.0 Ok: queued as 12"]
    );
    assert_eq!(d.rows[0].tls.as_deref(), Some("TLSv1.3"));

    let d = run(
        &mail(),
        &rows,
        "s@example.org",
        replied(550, (5, 1, 1), "unknown user"),
    );
    assert_eq!(
        d.log,
        [
            "Bounced: DCID 9 MID 42 to RID 0 - Bounced by destination server with response: 5.1.1 - 5.1.1 unknown user ('550', ['5.1.1 unknown user'])"
        ]
    );
    assert_eq!(d.failed[0].status, "5.1.1");
    assert_eq!(d.failed[0].remote_mta.as_deref(), Some("192.0.2.25"));

    let d = run(
        &mail(),
        &rows,
        "s@example.org",
        Attempt::Unreached(Unreached::Hosts(None)),
    );
    assert_eq!(
        d.rows[0].reply,
        "451 4.4.1 Unable to connect to any host for example.com"
    );
    assert!(
        d.log[0].starts_with("Delayed: DCID 9 MID 42 to RID 0 - 4.4.1 - "),
        "{:?}",
        d.log
    );
}

#[test]
fn mail_dsn_rules() {
    let rows = [row(0, 0, QueueKind::Deliver, "u@example.com")];
    let bounce = || replied(550, (5, 1, 1), "no");
    assert!(
        run(&mail(), &rows, "", bounce()).failed.is_empty(),
        "never to the null sender"
    );
    let quiet = Kind::Mail(BounceProfile {
        send_dsn: false,
        ..profile()
    });
    assert!(
        run(&quiet, &rows, "s@example.org", bounce())
            .failed
            .is_empty(),
        "DSNs off"
    );
}

#[test]
fn mail_replies_go_to_their_rows() {
    let mut second = row(0, 0, QueueKind::Deliver, "v@example.com");
    second.id = 8;
    second.rcpt_idx = 1;
    let rows = [row(0, 0, QueueKind::Deliver, "u@example.com"), second];
    let attempt = Attempt::Replied {
        replies: vec![reply(250, (2, 0, 0), "ok"), reply(550, (5, 1, 1), "no")],
        tls: None,
    };
    let d = run(&mail(), &rows, "s@example.org", attempt);
    assert_eq!(outcome(&d.rows[0].outcome), Want::Delivered);
    assert_eq!(outcome(&d.rows[1].outcome), Want::Bounced);
    assert_eq!(d.rows[1].id, 8);
    assert_eq!(d.failed.len(), 1);
    assert_eq!(d.failed[0].recipient, "v@example.com");
}

#[test]
fn mail_retry_jitter_is_at_most_a_tenth() {
    let rows = [row(0, 0, QueueKind::Deliver, "u@example.com")];
    let cx = Context {
        dest: "example.com",
        dcid: Dcid(9),
        mid: Mid(42),
        rows: &rows,
        sender: "s@example.org",
        remote: None,
        now: NOW,
    };
    let d = decide(&cx, Attempt::Lost("reset".into()), &mail(), &mut |w| w * 5);
    assert_eq!(outcome(&d.rows[0].outcome), Want::Retry(66));
}

#[test]
fn journal_texts() {
    let rows = [row(0, 0, QueueKind::Journal, "journal@intake.test")];
    let d = run(
        &journal(),
        &rows,
        "s@example.org",
        replied(250, (2, 0, 0), "ok"),
    );
    assert_eq!(
        d.log,
        ["TDC: MID 42 successfully delivered for scanning with Cisco Secure Email Threat Defense"]
    );
    assert_eq!(
        d.tracking,
        [
            "TDC: Message 42 was successfully delivered for scanning with Cisco Secure Email Threat Defense."
        ]
    );

    let d = run(
        &journal(),
        &rows,
        "s@example.org",
        replied(550, (5, 7, 1), "no"),
    );
    assert_eq!(
        d.log,
        ["TDC: MID 42 delivery failed to Cisco Secure Email Threat Defense: ('550', '5.7.1 no')"]
    );

    let d = run(
        &journal(),
        &rows,
        "s@example.org",
        replied(451, (4, 3, 0), "later"),
    );
    assert_eq!(
        d.log,
        ["TDC: MID 42 delivery deferred, retrying in 60s: ('451', '4.3.0 later')"]
    );

    let nx = Attempt::Unreached(Unreached::NoSuchDomain {
        status: Enhanced(5, 1, 2),
        text:
            "Bad destination host ('000', 'DNS Hard Error looking up intake.test (MX): NXDomain')"
                .into(),
    });
    let d = run(&journal(), &rows, "s@example.org", nx);
    assert_eq!(
        d.log[0],
        "TDC: Hard bounced - 5.1.2 - Bad destination host ('000', 'DNS Hard Error looking up intake.test (MX): NXDomain')"
    );

    let old = [row(1, 130, QueueKind::Journal, "journal@intake.test")];
    let d = run(&journal(), &old, "s@example.org", Attempt::TooOld);
    assert_eq!(
        d.log,
        [
            "TDC: MID 42 delivery failed to Cisco Secure Email Threat Defense: expired after 130 seconds in the queue"
        ]
    );
}
