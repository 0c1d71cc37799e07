//! The Threat Defense Connector end to end: selection per policy, the journal message, Cisco's
//! retry table, expiry, connections, TLS, logs, tracking, tophosts and the ledger.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::dns::{Answer, DnsServer};
use crate::harness::*;
use crate::sink::{Script, Sink};

/// An appliance with example.com routed to `dest`, sender.test routed to `senders` (where DSNs
/// would land) and the intake domain routed to `intake`, the connector enabled globally and the
/// DEFAULT policy set to the global intake.
pub struct Setup {
    pub app: Appliance,
    pub dest: Sink,
    pub senders: Sink,
}

/// `extra` goes into `[tdc]`; sections of its own may follow it.
pub async fn setup(intake_route: &str, extra: &str) -> Setup {
    let dest = Sink::start(Script::default()).await;
    let senders = Sink::start(Script::default()).await;
    let tls = if extra.contains("tls =") {
        ""
    } else {
        "tls = \"off\"\n"
    };
    let delay = if extra.contains("retry_delay_secs") {
        ""
    } else {
        "retry_delay_secs = 1\n"
    };
    let extra = format!("[tdc]\n{delay}{tls}{extra}");
    let app = Appliance::start(&extra).await;
    app.accept_domains(&["example.com", ".example.com"]).await;
    let routes = json!([
        {"domain": ".example.com", "hosts": [dest.addr.to_string()]},
        {"domain": "example.com", "hosts": [dest.addr.to_string()]},
        {"domain": "sender.test", "hosts": [senders.addr.to_string()]},
        {"domain": "intake.test", "hosts": [intake_route]},
    ]);
    put(&app, "/smtp-routes", routes).await;
    put(
        &app,
        "/tdc",
        json!({"enabled": true, "intake_address": "journal@intake.test"}),
    )
    .await;
    put(
        &app,
        "/policies/incoming/DEFAULT",
        json!({"name": "DEFAULT", "tdc": {"mode": "global"}}),
    )
    .await;
    Setup { app, dest, senders }
}

/// [`setup`] with an intake that refuses `refused@intake.test` (`550 5.1.1 no such intake`) and
/// an incoming policy `finance` (recipients `@finance.example.com`) journaling there, so its
/// copies fail while DEFAULT's are delivered; `content_filters` are finance's filters. The
/// intake sink comes back too: it must live as long as the appliance.
pub async fn setup_with_refused_finance(content_filters: serde_json::Value) -> (Setup, Sink) {
    let intake = Sink::start(Script {
        rcpt: std::collections::HashMap::from([(
            "refused@intake.test".to_owned(),
            "550 5.1.1 no such intake".to_owned(),
        )]),
        ..Script::default()
    })
    .await;
    let setup = setup(&intake.addr.to_string(), "").await;
    let (status, body) = setup
        .app
        .api(
            Method::POST,
            "/policies/incoming",
            Some(json!({
                "name": "finance", "senders": [], "recipients": ["@finance.example.com"],
                "tdc": {"mode": "custom", "intake_address": "refused@intake.test"},
                "content_filters": content_filters,
            })),
        )
        .await;
    assert!(status == 200 || status == 201, "{status} {body}");
    (setup, intake)
}

pub async fn put(app: &Appliance, path: &str, body: serde_json::Value) {
    let (status, resp) = app.api(Method::PUT, path, Some(body)).await;
    assert!(status == 200, "PUT {path}: {status} {resp}");
}

async fn send(app: &Appliance, to: &[&str], subject: &str) -> u64 {
    let (mut c, _) = SmtpClient::greeted(app.smtp).await;
    let mid = queued_mid(&c.send_mail("a@sender.test", to, &message(subject)).await);
    c.cmd("QUIT").await;
    mid
}

async fn ledger(app: &Appliance) -> Vec<serde_json::Value> {
    app.api(Method::GET, "/ledger", None)
        .await
        .1
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits until the journal copy of `mid` is final; returns its ledger entry.
async fn final_entry(app: &Appliance, mid: u64) -> serde_json::Value {
    let start = std::time::Instant::now();
    loop {
        let entry = ledger(app)
            .await
            .into_iter()
            .find(|e| e["mid"] == mid)
            .unwrap_or(json!(null));
        if entry["state"].as_str().is_some_and(|s| s != "queued") {
            return entry;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "journal copy of MID {mid} never became final: {entry}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn tdc_host(app: &Appliance) -> serde_json::Value {
    let (_, hosts) = app.api(Method::GET, "/tophosts", None).await;
    hosts
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "the.tdc.queue")
        .cloned()
        .unwrap_or(json!(null))
}

#[tokio::test]
async fn clean_message_is_journaled_once_as_a_journal_message() {
    let intake = Sink::start(Script::default()).await;
    let s = setup(&intake.addr.to_string(), "").await;
    let mid = send(&s.app, &["u@example.com", "v@example.com"], "journal-me").await;
    let original = s.dest.wait_messages(1).await.remove(0);
    let journal = intake.wait_messages(1).await.remove(0);
    assert_eq!(journal.from, "", "journal copies use the null sender");
    assert_eq!(
        journal.rcpts,
        ["journal@intake.test"],
        "only the intake address"
    );
    let parsed = mail_parser::MessageParser::default()
        .parse(&journal.data)
        .expect("the journal copy is MIME");
    let attached = parsed
        .attachment(0)
        .expect("the original is attached")
        .contents()
        .to_vec();
    let attached = String::from_utf8(attached).unwrap();
    let delivered = original.text();
    assert!(
        !delivered.contains("X-IronPort-RemoteIP"),
        "the delivered original is unchanged"
    );
    assert_eq!(
        attached.replacen("X-IronPort-RemoteIP: 127.0.0.1\r\n", "", 1),
        delivered,
        "byte for byte"
    );
    let received_end = delivered.find("\r\nFrom: ").unwrap() + 2;
    assert!(
        attached[received_end..].starts_with("X-IronPort-RemoteIP: 127.0.0.1\r\nFrom: "),
        "the header follows our Received: header"
    );
    let report = parsed.body_text(0).unwrap();
    assert!(
        report.contains("Recipients: u@example.com, v@example.com")
            && report.contains(&format!("MID: {mid}")),
        "{report}"
    );

    let entry = final_entry(&s.app, mid).await;
    assert_eq!(
        (entry["state"].as_str(), entry["attempts"].as_u64()),
        (Some("delivered"), Some(1))
    );
    let logs = s.app.wait_log(&format!("TDC: MID {mid} successfully delivered for scanning with Cisco Secure Email Threat Defense")).await;
    for line in [
        format!(
            "TDC: MID {mid} with Message-ID '<journal-me@sender.test>' enqueued for delivery to Cisco Secure Email Threat Defense"
        ),
        "TDC: New SMTP DCID ".to_string(),
        format!("address 127.0.0.1 port {}", intake.addr.port()),
        "TDC: Delivery start DCID ".to_string(),
    ] {
        assert!(logs.contains(&line), "{line:?} missing:\n{logs}");
    }
    s.app
        .wait_log(&format!("Message finished MID {mid} done"))
        .await;
    let (_, tracked) = s
        .app
        .api(Method::GET, &format!("/tracking?mid={mid}"), None)
        .await;
    let events = tracked[0]["events"].to_string();
    assert!(events.contains(&format!("TDC: Message {mid} was successfully delivered for scanning with Cisco Secure Email Threat Defense.")), "{events}");
    let host = tdc_host(&s.app).await;
    assert_eq!(
        (
            host["delivered_recipients"].as_u64(),
            host["active_recipients"].as_u64()
        ),
        (Some(1), Some(0))
    );
    assert_eq!(intake.messages().len(), 1, "exactly once");
    let out = s.app.cli(&["tophosts"]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("the.tdc.queue"));
}

#[tokio::test]
async fn retry_table_counts_the_intakes_attempts_exactly() {
    for (reply, attempts) in [
        ("451 4.3.0 busy", 2),
        ("503 5.5.1 bad sequence", 2),
        ("552 5.3.4 too big", 2),
        ("550 5.7.1 no", 1),
        ("554 5.7.1 denied", 1),
    ] {
        let intake = Sink::start(Script {
            data: vec![reply.to_string(); 5].into(),
            ..Script::default()
        })
        .await;
        let s = setup(&intake.addr.to_string(), "").await;
        let mid = send(&s.app, &["u@example.com"], "retry-table").await;
        let entry = final_entry(&s.app, mid).await;
        assert_eq!(entry["state"], "failed", "{reply}");
        assert_eq!(
            intake.mail_commands(),
            attempts,
            "{reply}: attempts at the intake"
        );
        assert_eq!(entry["attempts"].as_u64(), Some(attempts as u64), "{reply}");
        s.app
            .wait_log(&format!(
                "TDC: MID {mid} delivery failed to Cisco Secure Email Threat Defense: ('{}'",
                &reply[..3]
            ))
            .await;
        assert_eq!(
            s.dest.wait_messages(1).await.len(),
            1,
            "{reply}: the original was delivered"
        );
        s.app
            .wait_log(&format!("Message finished MID {mid} done"))
            .await;
        assert!(
            s.senders.messages().is_empty(),
            "{reply}: no DSN for a journal copy"
        );
        assert_eq!(tdc_host(&s.app).await["hard_bounced"], 1);
    }
}

#[tokio::test]
async fn refused_connection_is_retried_once() {
    // A closed port on an address no other test listens on, so nobody takes it meanwhile.
    let port = std::net::TcpListener::bind("127.0.0.9:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = setup(&format!("127.0.0.9:{port}"), "").await;
    let mid = send(&s.app, &["u@example.com"], "refused").await;
    let entry = final_entry(&s.app, mid).await;
    assert_eq!(
        (entry["state"].as_str(), entry["attempts"].as_u64()),
        (Some("failed"), Some(2))
    );
    let logs = s.app.mail_logs();
    assert!(
        logs.contains("TDC: Connection Error: DCID ")
            && logs.contains(&format!(
                "domain: the.tdc.queue IP: 127.0.0.9 port: {port} details: "
            )),
        "{logs}"
    );
    assert_eq!(s.dest.wait_messages(1).await.len(), 1);
    assert!(s.senders.messages().is_empty());
}

#[tokio::test]
async fn tls_failure_is_final_and_never_falls_back_to_plain_text() {
    let (tls, _) = crate::sink::tls_server(&["intake.test"]);
    let intake = Sink::start(Script {
        tls: Some(tls),
        ..Script::default()
    })
    .await;
    // The intake's certificate is self-signed and not trusted: the handshake fails.
    let dest = Sink::start(Script::default()).await;
    let app = Appliance::start("[tdc]\nretry_delay_secs = 1\ntls = \"preferred\"\n").await;
    app.accept_domains(&["example.com"]).await;
    put(&app, "/smtp-routes", json!([{"domain": "example.com", "hosts": [dest.addr.to_string()]}, {"domain": "intake.test", "hosts": [intake.addr.to_string()]}])).await;
    put(
        &app,
        "/tdc",
        json!({"enabled": true, "intake_address": "journal@intake.test"}),
    )
    .await;
    put(
        &app,
        "/policies/incoming/DEFAULT",
        json!({"name": "DEFAULT", "tdc": {"mode": "global"}}),
    )
    .await;
    let mid = send(&app, &["u@example.com"], "tls").await;
    let entry = final_entry(&app, mid).await;
    assert_eq!(
        (entry["state"].as_str(), entry["attempts"].as_u64()),
        (Some("failed"), Some(1))
    );
    assert_eq!(
        intake.mail_commands(),
        0,
        "no MAIL FROM in plain text after the failed handshake"
    );
    assert!(app.mail_logs().contains("reason: TLS negotiation failed"));
    dest.wait_messages(1).await;
}

#[tokio::test]
async fn tls_with_a_trusted_ca_file() {
    let (tls, pem) = crate::sink::tls_server(&["127.0.0.1"]);
    let intake = Sink::start(Script {
        tls: Some(tls),
        ..Script::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("intake-ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let s = setup(
        &intake.addr.to_string(),
        &format!("tls = \"required\"\nca_file = \"{}\"\n", ca.display()),
    )
    .await;
    let mid = send(&s.app, &["u@example.com"], "trusted-tls").await;
    let entry = final_entry(&s.app, mid).await;
    assert_eq!(entry["state"], "delivered", "{entry}");
    // How it travelled is a field of its own, the reply is the intake's.
    assert!(
        entry["tls"]
            .as_str()
            .is_some_and(|p| p.starts_with("TLSv1.")),
        "{entry}"
    );
    assert!(
        !entry["last_reply"].as_str().unwrap().contains("TLS"),
        "{entry}"
    );
    let got = intake.wait_messages(1).await;
    assert!(got[0].tls, "journaled over TLS");
    let logs = s.app.mail_logs();
    assert!(logs.contains(" TLS success protocol TLSv1."), "{logs}");
}

#[tokio::test]
async fn dns_servfail_is_retried_once_and_nxdomain_hard_bounces() {
    let dns = DnsServer::start().await;
    dns.set(
        "servfail.test",
        hickory_proto::rr::RecordType::MX,
        Answer::ServFail,
    );
    dns.set(
        "nxdomain.test",
        hickory_proto::rr::RecordType::MX,
        Answer::NxDomain,
    );
    let dest = Sink::start(Script::default()).await;
    let extra = format!(
        "[dns]\nnameservers = [\"{}\"]\n[tdc]\nretry_delay_secs = 1\ntls = \"off\"\n",
        dns.addr
    );
    let app = Appliance::start(&extra).await;
    app.accept_domains(&["example.com", "other.example.com"])
        .await;
    put(&app, "/smtp-routes", json!([{"domain": "example.com", "hosts": [dest.addr.to_string()]}, {"domain": "other.example.com", "hosts": [dest.addr.to_string()]}])).await;
    put(
        &app,
        "/tdc",
        json!({"enabled": true, "intake_address": "journal@servfail.test"}),
    )
    .await;
    put(
        &app,
        "/policies/incoming/DEFAULT",
        json!({"name": "DEFAULT", "tdc": {"mode": "global"}}),
    )
    .await;
    put_policy(&app, json!({"name": "other", "recipients": ["@other.example.com"], "tdc": {"mode": "custom", "intake_address": "journal@nxdomain.test"}})).await;

    let servfail = send(&app, &["u@example.com"], "servfail").await;
    let entry = final_entry(&app, servfail).await;
    assert_eq!(
        (entry["state"].as_str(), entry["attempts"].as_u64()),
        (Some("failed"), Some(2))
    );
    assert_eq!(
        dns.queries("servfail.test", hickory_proto::rr::RecordType::MX),
        2,
        "one lookup per attempt"
    );

    let nx = send(&app, &["u@other.example.com"], "nxdomain").await;
    let entry = final_entry(&app, nx).await;
    assert_eq!(
        (entry["state"].as_str(), entry["attempts"].as_u64()),
        (Some("failed"), Some(1))
    );
    app.wait_log("TDC: Hard bounced - 5.1.2 - Bad destination host ('000', 'DNS Hard Error looking up nxdomain.test (MX): NXDomain')").await;
    assert_eq!(
        dest.wait_messages(2).await.len(),
        2,
        "both originals delivered"
    );
}

async fn put_policy(app: &Appliance, policy: serde_json::Value) {
    let (status, body) = app
        .api(Method::POST, "/policies/incoming", Some(policy))
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn copies_expire_after_max_queue_age() {
    let intake = Sink::start(Script {
        data: vec!["451 4.3.0 busy".to_string(); 10].into(),
        ..Script::default()
    })
    .await;
    let s = setup(
        &intake.addr.to_string(),
        "max_queue_age_secs = 2\nretry_delay_secs = 60\n",
    )
    .await;
    // A long retry delay: only the expiry can end the copy's life in time.
    let mid = send(&s.app, &["u@example.com"], "expire").await;
    let entry = final_entry(&s.app, mid).await;
    assert_eq!(entry["state"], "expired", "{entry}");
    assert!(entry["attempts"].as_u64().unwrap() <= 2);
    s.app
        .wait_log(&format!(
            "TDC: MID {mid} delivery failed to Cisco Secure Email Threat Defense: expired after "
        ))
        .await;
    let (_, expired) = s.app.api(Method::GET, "/ledger?state=expired", None).await;
    assert_eq!(expired[0]["mid"], mid);
}

#[tokio::test]
async fn at_least_three_connections_and_all_closed_afterwards() {
    let intake = Sink::start(Script {
        delay: Duration::from_millis(200),
        ..Script::default()
    })
    .await;
    let s = setup(&intake.addr.to_string(), "").await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let addr = s.app.smtp;
        tasks.push(tokio::spawn(async move {
            let (mut c, _) = SmtpClient::greeted(addr).await;
            queued_mid(
                &c.send_mail(
                    "a@sender.test",
                    &["u@example.com"],
                    &message(&format!("burst-{i}")),
                )
                .await,
            )
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    intake.wait_messages(12).await;
    wait_until("every intake connection closed", || async {
        let st = intake.stats.lock().unwrap();
        st.open == 0
    })
    .await;
    let st = intake.stats.lock().unwrap();
    assert!(
        st.max_open >= 3,
        "at least three simultaneous connections, saw {}",
        st.max_open
    );
    assert!(
        st.max_open <= 10,
        "at most max_connections, saw {}",
        st.max_open
    );
    assert_eq!(st.quits, st.connections, "every connection ended with QUIT");
}

#[tokio::test]
async fn journaling_follows_each_policys_choice() {
    let intake = Sink::start(Script::default()).await;
    let custom_intake = Sink::start(Script::default()).await;
    let s = setup(&intake.addr.to_string(), "").await;
    let mut routes = s.app.api(Method::GET, "/smtp-routes", None).await.1;
    routes
        .as_array_mut()
        .unwrap()
        .push(json!({"domain": "intake2.test", "hosts": [custom_intake.addr.to_string()]}));
    put(&s.app, "/smtp-routes", routes).await;
    put_policy(&s.app, json!({"name": "custom", "recipients": ["@custom.example.com"], "tdc": {"mode": "custom", "intake_address": "special@intake2.test"}})).await;
    put_policy(
        &s.app,
        json!({"name": "none", "recipients": ["@none.example.com"], "tdc": {"mode": "no"}}),
    )
    .await;
    put_policy(
        &s.app,
        json!({"name": "inherit", "recipients": ["@inherit.example.com"]}),
    )
    .await;
    let (_, list) = s.app.api(Method::GET, "/policies/incoming", None).await;
    let labels: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["tdc_label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["Enabled", "Disabled", "(use default)", "Enabled"]);

    send(
        &s.app,
        &[
            "a@custom.example.com",
            "b@none.example.com",
            "c@inherit.example.com",
            "d@example.com",
        ],
        "per-policy",
    )
    .await;
    s.dest.wait_messages(4).await;
    let global = intake.wait_messages(2).await;
    let custom = custom_intake.wait_messages(1).await;
    wait_until("journal queue empty", || async {
        tdc_host(&s.app).await["active_recipients"] == 0
    })
    .await;
    assert_eq!(
        intake.messages().len(),
        2,
        "DEFAULT and the inheriting policy"
    );
    assert_eq!(custom.len(), 1);
    assert_eq!(custom[0].rcpts, ["special@intake2.test"]);
    let mut journaled: Vec<String> = global
        .iter()
        .chain(custom.iter())
        .map(|m| {
            let p = mail_parser::MessageParser::default()
                .parse(&m.data)
                .unwrap();
            p.body_text(0)
                .unwrap()
                .lines()
                .find(|l| l.starts_with("Recipients:"))
                .unwrap()
                .to_string()
        })
        .collect();
    journaled.sort();
    assert_eq!(
        journaled,
        [
            "Recipients: a@custom.example.com",
            "Recipients: c@inherit.example.com",
            "Recipients: d@example.com"
        ]
    );

    // The global switch off: nothing is journaled.
    put(
        &s.app,
        "/tdc",
        json!({"enabled": false, "intake_address": "journal@intake.test"}),
    )
    .await;
    let mid = send(
        &s.app,
        &["e@example.com", "f@custom.example.com"],
        "switched-off",
    )
    .await;
    s.dest.wait_messages(6).await;
    s.app
        .wait_log(&format!("Message finished MID {mid} done"))
        .await;
    assert!(!s.app.mail_logs().contains(&format!("TDC: MID {mid} with")));
    assert_eq!(intake.messages().len() + custom_intake.messages().len(), 3);
}

#[tokio::test]
async fn only_clean_messages_are_journaled() {
    let intake = Sink::start(Script::default()).await;
    let s = setup(&intake.addr.to_string(), "").await;
    let filters = json!([
        {"name": "tag", "conditions": [{"type": "subject", "regex": "^tagme"}], "actions": [{"type": "tag_subject", "tag": "[X]"}]},
        {"name": "hold", "conditions": [{"type": "subject", "regex": "^holdme"}], "actions": [{"type": "quarantine"}]},
        {"name": "drop", "conditions": [{"type": "subject", "regex": "^dropme"}], "actions": [{"type": "drop"}]},
        {"name": "allow", "conditions": [{"type": "subject", "regex": "^allowme"}], "actions": [{"type": "deliver"}]}
    ]);
    put(
        &s.app,
        "/policies/incoming/DEFAULT",
        json!({"name": "DEFAULT", "content_filters": filters, "tdc": {"mode": "global"}}),
    )
    .await;
    let tagged = send(&s.app, &["u@example.com"], "tagme").await;
    let held = send(&s.app, &["u@example.com"], "holdme").await;
    let dropped = send(&s.app, &["u@example.com"], "dropme").await;
    let allowed = send(&s.app, &["u@example.com"], "allowme").await;
    let got = intake.wait_messages(1).await;
    s.dest.wait_messages(2).await;
    let entries = ledger(&s.app).await;
    let mids: Vec<u64> = entries.iter().map(|e| e["mid"].as_u64().unwrap()).collect();
    assert_eq!(
        mids,
        [allowed],
        "only the clean message (an explicit deliver is clean)"
    );
    assert!(got[0].text().contains("Subject: allowme"));
    for mid in [tagged, held, dropped] {
        assert!(
            !s.app.mail_logs().contains(&format!("TDC: MID {mid} ")),
            "MID {mid} was not journaled"
        );
    }
}

#[tokio::test]
async fn copy_format_sends_the_original_itself() {
    let intake = Sink::start(Script::default()).await;
    let s = setup(&intake.addr.to_string(), "format = \"copy\"\n").await;
    send(&s.app, &["u@example.com"], "plain-copy").await;
    let delivered = s.dest.wait_messages(1).await.remove(0).text();
    let copy = intake.wait_messages(1).await.remove(0);
    assert_eq!(copy.from, "", "still the null sender");
    assert_eq!(copy.rcpts, ["journal@intake.test"]);
    let text = copy.text();
    // Not a journal message: the delivered original, with the client's IP header after our
    // Received: field (the first field, perhaps folded).
    assert!(!text.contains("message/rfc822"), "{text}");
    let mut end = 0;
    loop {
        end += delivered[end..].find("\r\n").unwrap() + 2;
        if !delivered[end..].starts_with([' ', '\t']) {
            break;
        }
    }
    assert!(delivered.starts_with("Received: "));
    let expected = format!(
        "{}X-IronPort-RemoteIP: 127.0.0.1\r\n{}",
        &delivered[..end],
        &delivered[end..]
    );
    assert_eq!(text, expected);
}

/// Journal replay: a copy the intake refused is queued again on request, once, with Cisco's
/// expiry counted from the replay; a delivered copy is never sent twice; the ledger shows the old
/// copy as `replayed`. Through the API, then the CLI.
#[tokio::test]
async fn failed_journal_copies_can_be_replayed_once() {
    let intake = Sink::start(Script {
        data: vec!["554 5.7.1 not now".to_string(); 1].into(),
        ..Script::default()
    })
    .await;
    let s = setup(&intake.addr.to_string(), "").await;
    let failed = send(&s.app, &["u@example.com"], "replay-me").await;
    assert_eq!(final_entry(&s.app, failed).await["state"], "failed");
    // The intake takes mail again; a second message is delivered at once.
    let delivered = send(&s.app, &["u@example.com"], "delivered-once").await;
    assert_eq!(final_entry(&s.app, delivered).await["state"], "delivered");
    assert_eq!(intake.messages().len(), 1);

    // Bad requests are refused precisely.
    let (status, body) = s
        .app
        .api(
            Method::POST,
            "/tdc/replay",
            Some(json!({"since": "yesterday"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("RFC 3339"));
    let since = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let (status, body) = s
        .app
        .api(Method::POST, "/tdc/replay", Some(json!({"since": since})))
        .await;
    assert_eq!(
        (status, body.clone()),
        (200, json!({"replayed": 1})),
        "{body}"
    );
    let copies = intake.wait_messages(2).await;
    assert!(
        copies[1].text().contains("replay-me"),
        "the failed copy was sent again"
    );
    // Once: a second request finds nothing; the delivered MID was never a candidate.
    let (_, again) = s
        .app
        .api(Method::POST, "/tdc/replay", Some(json!({"since": since})))
        .await;
    assert_eq!(again, json!({"replayed": 0}));
    wait_until("the replayed copy to be delivered", || async {
        ledger(&s.app)
            .await
            .iter()
            .any(|e| e["mid"] == failed && e["state"] == "delivered")
    })
    .await;
    let entries = ledger(&s.app).await;
    let states = |mid: u64| -> Vec<String> {
        let mut v: Vec<String> = entries
            .iter()
            .filter(|e| e["mid"] == mid)
            .map(|e| e["state"].as_str().unwrap_or_default().to_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(states(failed), ["delivered", "replayed"]);
    assert_eq!(states(delivered), ["delivered"]);
    // The ledger filters by every state it shows, `replayed` included.
    let (code, replayed) = s.app.api(Method::GET, "/ledger?state=replayed", None).await;
    assert_eq!(code, 200, "{replayed}");
    let mids: Vec<u64> = replayed
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["mid"].as_u64()).collect())
        .unwrap_or_default();
    assert_eq!(mids, [failed], "{replayed}");
    let (code, bad) = s.app.api(Method::GET, "/ledger?state=bounced", None).await;
    assert_eq!(code, 400);
    assert!(
        bad.to_string()
            .contains("queued, delivered, failed, expired or replayed"),
        "{bad}"
    );
    // At most 10,000 entries a request, the newest first.
    let (code, bad) = s.app.api(Method::GET, "/ledger?limit=20000", None).await;
    assert_eq!(code, 400);
    assert!(bad.to_string().contains("limit must be 1-10000"), "{bad}");
    let (code, one) = s.app.api(Method::GET, "/ledger?limit=1", None).await;
    assert_eq!(code, 200, "{one}");
    assert_eq!(one.as_array().map(Vec::len), Some(1));
    s.app
        .wait_log(&format!(
            "TDC: MID {failed} successfully delivered for scanning with Cisco Secure Email Threat Defense"
        ))
        .await;
    let (_, t) = s
        .app
        .api(Method::GET, &format!("/tracking?mid={failed}"), None)
        .await;
    assert!(t.to_string().contains("queued again"), "{t}");
    assert_eq!(intake.messages().len(), 2);

    // The CLI: another refused copy, replayed with `rampart ledger --replay`.
    intake.set(|sc| sc.data = vec!["554 5.7.1 not now".to_string()].into());
    let cli_failed = send(&s.app, &["u@example.com"], "cli-replay").await;
    assert_eq!(final_entry(&s.app, cli_failed).await["state"], "failed");
    let out = s
        .app
        .cli(&["ledger", "--replay", "--since", "1h", "--json"])
        .await;
    assert!(out.status.success(), "{out:?}");
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer, json!({"replayed": 1, "mids": [cli_failed]}));
    intake.wait_messages(3).await;

    // With the connector switched off, a replay is refused, through the API and the CLI alike.
    put(
        &s.app,
        "/tdc",
        json!({"enabled": false, "intake_address": "journal@intake.test"}),
    )
    .await;
    let (status, body) = s
        .app
        .api(
            Method::POST,
            "/tdc/replay",
            Some(json!({"since": "2020-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("disabled"),
        "{body}"
    );
    let out = s.app.cli(&["ledger", "--replay", "--since", "1h"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is disabled"));
}
