//! Delivery: SMTP routes, MX lookups against a real DNS server, retries, bounces and DSNs,
//! per-recipient results, STARTTLS, timeouts, crash safety and the tophosts figures.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::dns::DnsServer;
use crate::harness::*;
use crate::sink::{Script, Sink};

/// An appliance accepting example.com, with `routes` as its SMTP routes and fast retries.
async fn appliance_with_routes(extra: &str, routes: serde_json::Value) -> Appliance {
    let app = Appliance::start(extra).await;
    app.accept_domains(&["example.com"]).await;
    put(&app, "/smtp-routes", routes).await;
    put(
        &app,
        "/bounce-profile",
        json!({"initial_retry_secs": 1, "max_retry_secs": 1}),
    )
    .await;
    app
}

async fn put(app: &Appliance, path: &str, body: serde_json::Value) {
    let (status, resp) = app.api(Method::PUT, path, Some(body)).await;
    assert_eq!(status, 200, "PUT {path}: {resp}");
}

async fn send(app: &Appliance, from: &str, to: &[&str], subject: &str) -> u64 {
    let (mut c, _) = SmtpClient::greeted(app.smtp).await;
    let mid = queued_mid(&c.send_mail(from, to, &message(subject)).await);
    c.cmd("QUIT").await;
    mid
}

async fn tophost(app: &Appliance, host: &str) -> serde_json::Value {
    let (_, hosts) = app.api(Method::GET, "/tophosts", None).await;
    hosts
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == host)
        .cloned()
        .unwrap_or(json!(null))
}

#[tokio::test]
async fn delivers_through_an_smtp_route_in_one_transaction() {
    let sink = Sink::start(Script::default()).await;
    let app = appliance_with_routes(
        "",
        json!([{"domain": "example.com", "hosts": [sink.addr.to_string()]}]),
    )
    .await;
    let mid = send(
        &app,
        "a@sender.test",
        &["u1@example.com", "u2@example.com"],
        "routed",
    )
    .await;
    let got = sink.wait_messages(1).await;
    assert_eq!(got[0].from, "a@sender.test");
    assert_eq!(
        got[0].rcpts,
        ["u1@example.com", "u2@example.com"],
        "both recipients in one transaction"
    );
    let stored = app
        .store()
        .await
        .message(rampart_store::Mid(mid))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got[0].data, stored.body,
        "the destination gets exactly what was stored"
    );
    let logs = app
        .wait_log(&format!("Message finished MID {mid} done"))
        .await;
    for needle in [
        "New SMTP DCID ".to_string(),
        format!(
            "interface 127.0.0.1 address 127.0.0.1 port {}",
            sink.addr.port()
        ),
        "Delivery start DCID ".to_string(),
        format!(" MID {mid} to RID [0, 1]"),
        "Message done DCID ".to_string(),
        format!("MID {mid} RID [0, 1] Response '2.0.0 Ok: queued'"),
    ] {
        assert!(logs.contains(&needle), "{needle:?} missing:\n{logs}");
    }
    app.wait_log(" close").await;
    let rows = app
        .store()
        .await
        .queue_rows(rampart_store::Mid(mid))
        .await
        .unwrap();
    assert!(
        rows.iter()
            .all(|r| r.state == rampart_store::RowState::Delivered)
    );
    let host = tophost(&app, "example.com").await;
    assert_eq!(host["delivered_recipients"], 2);
    assert_eq!(host["active_recipients"], 0);
    let (_, tracked) = app
        .api(Method::GET, &format!("/tracking?mid={mid}"), None)
        .await;
    let events: Vec<&str> = tracked[0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e.starts_with(&format!("Message {mid} to <u1@example.com> delivered"))),
        "{events:?}"
    );
}

#[tokio::test]
async fn mx_preference_and_fallback_to_the_next_mx() {
    // Two destination servers on different loopback addresses and the same port, as MX hosts.
    let first = Sink::start_on("127.0.0.2:0".parse().unwrap(), Script::default()).await;
    let port = first.addr.port();
    let second = Sink::start_on(
        format!("127.0.0.3:{port}").parse().unwrap(),
        Script::default(),
    )
    .await;
    let dns = DnsServer::start().await;
    dns.mx(
        "example.com",
        &[(20, "mx2.example.com"), (10, "mx1.example.com")],
    );
    dns.a("mx1.example.com", "127.0.0.2".parse().unwrap());
    dns.a("mx2.example.com", "127.0.0.3".parse().unwrap());
    let extra = format!(
        "[dns]\nnameservers = [\"{}\"]\n[delivery]\nport = {port}\n",
        dns.addr
    );
    let app = Appliance::start(&extra).await;
    app.accept_domains(&["example.com"]).await;
    put(
        &app,
        "/bounce-profile",
        json!({"initial_retry_secs": 1, "max_retry_secs": 1}),
    )
    .await;

    send(&app, "a@sender.test", &["u@example.com"], "preferred").await;
    first.wait_messages(1).await;
    assert!(
        second.messages().is_empty(),
        "the lower preference MX is used first"
    );

    // The first connection must be gone, or it could carry the next message to the old MX.
    wait_until("the connection to the first MX closed", || async {
        first.stats.lock().unwrap().open == 0
    })
    .await;
    // The preferred MX now points at an address where nothing listens: refused, next MX.
    dns.a("mx1.example.com", "127.0.0.4".parse().unwrap());
    let mid = send(&app, "a@sender.test", &["u@example.com"], "fallback").await;
    // Waiting on the log first: if this times out, the failure shows what the appliance did.
    let logs = app
        .wait_log(&format!("Message finished MID {mid} done"))
        .await;
    let got = second.wait_messages(1).await;
    assert!(got[0].text().contains("Subject: fallback"));
    assert!(
        logs.contains(&format!(
            "domain: example.com IP: 127.0.0.4 port: {port} details:"
        )),
        "{logs}"
    );
    assert!(dns.queries("example.com", hickory_proto::rr::RecordType::MX) >= 2);
}

#[tokio::test]
async fn soft_failure_is_retried_and_delivered_once() {
    let sink = Sink::start(Script {
        data: ["451 4.3.0 try again later".to_string()].into(),
        ..Script::default()
    })
    .await;
    let app = appliance_with_routes(
        "",
        json!([{"domain": "example.com", "hosts": [sink.addr.to_string()]}]),
    )
    .await;
    let mid = send(&app, "a@sender.test", &["u@example.com"], "retry").await;
    let logs = app
        .wait_log(&format!("Message finished MID {mid} done"))
        .await;
    assert!(
        logs.contains("Delayed: DCID ")
            && logs.contains("- 4.3.0 - 4.3.0 try again later ('451', ['4.3.0 try again later'])"),
        "{logs}"
    );
    assert_eq!(sink.messages().len(), 1, "delivered exactly once");
    assert_eq!(sink.mail_commands(), 2, "one failed attempt, one retry");
    let host = tophost(&app, "example.com").await;
    assert_eq!(
        (
            host["delivered_recipients"].as_u64(),
            host["soft_bounced"].as_u64()
        ),
        (Some(1), Some(1))
    );
}

#[tokio::test]
async fn hard_bounce_sends_a_dsn_with_the_original_headers() {
    let dest = Sink::start(Script {
        rcpt: [(
            "gone@example.com".to_string(),
            "550 5.1.1 <gone@example.com>: no such user".to_string(),
        )]
        .into(),
        ..Script::default()
    })
    .await;
    let senders = Sink::start(Script::default()).await;
    let routes = json!([
        {"domain": "example.com", "hosts": [dest.addr.to_string()]},
        {"domain": "sender.test", "hosts": [senders.addr.to_string()]}
    ]);
    let app = appliance_with_routes("", routes).await;
    let mid = send(
        &app,
        "a@sender.test",
        &["ok@example.com", "gone@example.com"],
        "partly-bounced",
    )
    .await;
    let dsn = senders.wait_messages(1).await;
    assert_eq!(dsn[0].from, "", "DSNs use the null sender");
    assert_eq!(dsn[0].rcpts, ["a@sender.test"]);
    let text = dsn[0].text();
    assert!(text.contains("report-type=delivery-status"), "{text}");
    assert!(
        text.contains(
            "Final-Recipient: rfc822; gone@example.com\r\nAction: failed\r\nStatus: 5.1.1"
        ),
        "{text}"
    );
    assert!(
        text.contains("Subject: partly-bounced"),
        "original headers are returned: {text}"
    );
    assert!(
        !text.contains("Final-Recipient: rfc822; ok@example.com"),
        "only the failed recipient is reported"
    );
    // The good recipient was delivered in the same transaction.
    let got = dest.wait_messages(1).await;
    assert_eq!(got[0].rcpts, ["ok@example.com"]);
    let logs = app.wait_log("was generated for bounce of MID").await;
    assert!(logs.contains(&format!(
        "MID {mid} to RID 1 - Bounced by destination server with response: 5.1.1 - 5.1.1 <gone@example.com>: no such user ('550', ['5.1.1 <gone@example.com>: no such user'])"
    )), "{logs}");
    let host = tophost(&app, "example.com").await;
    assert_eq!(
        (
            host["delivered_recipients"].as_u64(),
            host["hard_bounced"].as_u64()
        ),
        (Some(1), Some(1))
    );
}

#[tokio::test]
async fn mixed_results_per_recipient() {
    let dest = Sink::start(Script {
        rcpt: [
            (
                "bad@example.com".to_string(),
                "550 5.1.1 unknown".to_string(),
            ),
            (
                "later@example.com".to_string(),
                "452 4.2.2 mailbox full".to_string(),
            ),
        ]
        .into(),
        ..Script::default()
    })
    .await;
    let senders = Sink::start(Script::default()).await;
    let routes = json!([
        {"domain": "example.com", "hosts": [dest.addr.to_string()]},
        {"domain": "sender.test", "hosts": [senders.addr.to_string()]}
    ]);
    let app = appliance_with_routes("", routes).await;
    let mid = send(
        &app,
        "a@sender.test",
        &["ok@example.com", "bad@example.com", "later@example.com"],
        "mixed",
    )
    .await;
    app.wait_log(&format!("MID {mid} to RID 2 - 4.2.2")).await;
    // The mailbox has room again: the retry delivers only the deferred recipient.
    dest.set(|s| {
        s.rcpt.remove("later@example.com");
    });
    app.wait_log(&format!("Message finished MID {mid} done"))
        .await;
    let got = dest.messages();
    let rcpts: Vec<Vec<String>> = got.iter().map(|m| m.rcpts.clone()).collect();
    assert_eq!(
        rcpts,
        [
            vec!["ok@example.com".to_string()],
            vec!["later@example.com".to_string()]
        ]
    );
    let states: Vec<&str> = app
        .store()
        .await
        .queue_rows(rampart_store::Mid(mid))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.state.as_str())
        .collect();
    assert_eq!(states, ["delivered", "bounced", "delivered"]);
    assert_eq!(
        senders.wait_messages(1).await.len(),
        1,
        "one DSN for the one bad recipient"
    );
}

#[tokio::test]
async fn connection_dropped_mid_data_is_retried() {
    let dest = Sink::start(Script {
        drop_in_data: Some(20),
        ..Script::default()
    })
    .await;
    let app = appliance_with_routes(
        "",
        json!([{"domain": "example.com", "hosts": [dest.addr.to_string()]}]),
    )
    .await;
    let mid = send(&app, "a@sender.test", &["u@example.com"], "dropped").await;
    app.wait_log(&format!("Message finished MID {mid} done"))
        .await;
    assert_eq!(dest.messages().len(), 1);
    assert!(
        app.mail_logs().contains("Delayed: DCID "),
        "the drop was logged as a soft bounce"
    );
}

#[tokio::test]
async fn slow_server_times_out_then_delivers() {
    let dest = Sink::start(Script {
        delay: Duration::from_secs(3),
        ..Script::default()
    })
    .await;
    let app = appliance_with_routes(
        "[delivery]\ncommand_timeout_secs = 1\n",
        json!([{"domain": "example.com", "hosts": [dest.addr.to_string()]}]),
    )
    .await;
    let mid = send(&app, "a@sender.test", &["u@example.com"], "slow").await;
    app.wait_log("timed out").await;
    dest.set(|s| s.delay = Duration::ZERO);
    app.wait_log(&format!("Message finished MID {mid} done"))
        .await;
    assert_eq!(dest.messages().len(), 1);
}

#[tokio::test]
async fn starttls_is_used_when_offered() {
    let (tls, _) = crate::sink::tls_server(&["sink.test"]);
    let dest = Sink::start(Script {
        tls: Some(tls),
        ..Script::default()
    })
    .await;
    let app = appliance_with_routes(
        "",
        json!([{"domain": "example.com", "hosts": [dest.addr.to_string()]}]),
    )
    .await;
    send(&app, "a@sender.test", &["u@example.com"], "encrypted").await;
    let got = dest.wait_messages(1).await;
    assert!(got[0].tls, "delivered over TLS");
    let logs = app.wait_log("Message done DCID").await;
    assert!(
        logs.contains(" TLS success protocol TLSv1.3 cipher "),
        "{logs}"
    );
}

#[tokio::test]
async fn nxdomain_bounces_and_null_sender_gets_no_dsn() {
    let dns = DnsServer::start().await;
    dns.set(
        "nosuch.example.com",
        hickory_proto::rr::RecordType::MX,
        crate::dns::Answer::NxDomain,
    );
    let senders = Sink::start(Script::default()).await;
    let extra = format!("[dns]\nnameservers = [\"{}\"]\n", dns.addr);
    let app = Appliance::start(&extra).await;
    app.accept_domains(&["example.com", ".example.com"]).await;
    put(
        &app,
        "/smtp-routes",
        json!([{"domain": "sender.test", "hosts": [senders.addr.to_string()]}]),
    )
    .await;
    let bounced = send(&app, "a@sender.test", &["u@nosuch.example.com"], "nxdomain").await;
    let logs = app
        .wait_log(&format!("Message finished MID {bounced} done"))
        .await;
    assert!(logs.contains(&format!(
        "Bounced: DCID 0 MID {bounced} to RID 0 - Bounced by destination server with response: 5.1.2 - 5.1.2 Bad destination host ('000', 'DNS Hard Error looking up nosuch.example.com (MX): NXDomain')"
    )), "{logs}");
    let dsn = senders.wait_messages(1).await;
    assert!(dsn[0].text().contains("Status: 5.1.2"));
    // A message from the null sender (itself a bounce) never gets a DSN.
    let null = send(&app, "", &["v@nosuch.example.com"], "null-sender").await;
    app.wait_log(&format!("Message finished MID {null} done"))
        .await;
    let states: Vec<&str> = app
        .store()
        .await
        .queue_rows(rampart_store::Mid(null))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.state.as_str())
        .collect();
    assert_eq!(states, ["bounced"]);
    assert!(
        !app.mail_logs().contains(&format!("bounce of MID {null}")),
        "no DSN about a null-sender message"
    );
    assert_eq!(senders.messages().len(), 1);
}

#[tokio::test]
async fn nothing_is_lost_when_killed_during_delivery() {
    // A slow destination keeps deliveries in flight when the appliance is killed.
    let dest = Sink::start(Script {
        delay: Duration::from_millis(150),
        ..Script::default()
    })
    .await;
    let app = appliance_with_routes(
        "",
        json!([{"domain": "example.com", "hosts": [dest.addr.to_string()]}]),
    )
    .await;
    let n = 20;
    let mut tasks = Vec::new();
    for i in 0..n {
        let addr = app.smtp;
        tasks.push(tokio::spawn(async move {
            let (mut c, _) = SmtpClient::greeted(addr).await;
            queued_mid(
                &c.send_mail(
                    "a@sender.test",
                    &["u@example.com"],
                    &message(&format!("kill-{i}")),
                )
                .await,
            )
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Kill once some but not all have arrived.
    wait_until("first deliveries", || async { !dest.messages().is_empty() }).await;
    let app = app.crash_and_restart("").await;
    wait_until("every message delivered after the restart", || async {
        let got = dest.messages();
        (0..n).all(|i| {
            got.iter()
                .any(|m| m.text().contains(&format!("Subject: kill-{i}\r\n")))
        })
    })
    .await;
    let got = dest.messages();
    let duplicates = got.len() - n;
    // Only a message whose 250 from the destination was not yet recorded can be sent twice: at
    // most one per open connection at the moment of the kill.
    assert!(duplicates <= 20, "{duplicates} duplicates");
    let store = app.store().await;
    wait_until("all rows final", || async {
        store.queued_count().await.unwrap() == 0
    })
    .await;
}

#[tokio::test]
async fn tophosts_cli_shows_what_the_sinks_received() {
    let dest = Sink::start(Script {
        rcpt: [(
            "bad@example.com".to_string(),
            "550 5.1.1 unknown".to_string(),
        )]
        .into(),
        ..Script::default()
    })
    .await;
    let app = appliance_with_routes(
        "",
        json!([{"domain": "example.com", "hosts": [dest.addr.to_string()]}]),
    )
    .await;
    for i in 0..3 {
        send(
            &app,
            "",
            &["a@example.com", "b@example.com", "bad@example.com"],
            &format!("count-{i}"),
        )
        .await;
    }
    // The connection count is written with the writer's next commit, up to a fifth of a
    // second after the attempts' outcomes: wait for both.
    wait_until("three deliveries and the connection closed", || async {
        let host = tophost(&app, "example.com").await;
        host["hard_bounced"] == 3 && host["connections_out"] == 0
    })
    .await;
    let delivered: usize = dest.messages().iter().map(|m| m.rcpts.len()).sum();
    assert_eq!(delivered, 6);
    let out = app.cli(&["tophosts"]).await;
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text
        .lines()
        .find(|l| l.contains("example.com"))
        .unwrap_or_else(|| panic!("{text}"));
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        fields,
        ["1", "example.com", "0", "0", "6", "0", "3"],
        "{text}"
    );
    let out = app.cli(&["tophosts", "--json"]).await;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["delivered_recipients"], 6);
}

#[tokio::test]
async fn helo_fallback_and_lockstep_without_pipelining() {
    let dest = Sink::start(Script {
        ehlo_refused: true,
        pipelining: false,
        rcpt: [(
            "bad@example.com".to_string(),
            "550 5.1.1 unknown".to_string(),
        )]
        .into(),
        ..Script::default()
    })
    .await;
    let app = appliance_with_routes(
        "",
        json!([{"domain": "example.com", "hosts": [dest.addr.to_string()]}]),
    )
    .await;
    let mid = send(
        &app,
        "",
        &["a@example.com", "bad@example.com"],
        "old-server",
    )
    .await;
    app.wait_log(&format!("Message finished MID {mid} done"))
        .await;
    let got = dest.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpts, ["a@example.com"]);
}

#[tokio::test]
async fn unreachable_destination_is_marked_down_and_retried() {
    // Reserve a port, then close it: connections are refused. On an address of its own, so
    // that no other test's listener can take the port meanwhile.
    let port = std::net::TcpListener::bind("127.0.0.9:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = appliance_with_routes(
        "",
        json!([{"domain": "example.com", "hosts": [format!("127.0.0.9:{port}")]}]),
    )
    .await;
    let mid = send(&app, "a@sender.test", &["u@example.com"], "unreachable").await;
    app.wait_log(&format!("Delayed: DCID 0 MID {mid} to RID 0 - 4.4.1 - 4.4.1 Unable to connect to any host for example.com")).await;
    wait_until("example.com marked down", || async {
        tophost(&app, "example.com").await["down"] == true
    })
    .await;
    let host = tophost(&app, "example.com").await;
    assert_eq!(host["active_recipients"], 1, "still queued for a retry");
    let out = app.cli(&["tophosts"]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("*example.com"));
    // The destination comes back: the retry delivers and the mark goes.
    let dest = Sink::start_on(
        format!("127.0.0.9:{port}").parse().unwrap(),
        Script::default(),
    )
    .await;
    dest.wait_messages(1).await;
    wait_until("example.com up again", || async {
        tophost(&app, "example.com").await["down"] == false
    })
    .await;
}

#[tokio::test]
async fn destination_control_requiring_tls_never_sends_in_plain_text() {
    // The destination offers no STARTTLS; its destination control requires TLS.
    let dest = Sink::start(Script::default()).await;
    let app = appliance_with_routes(
        "",
        json!([{"domain": "example.com", "hosts": [dest.addr.to_string()]}]),
    )
    .await;
    put(
        &app,
        "/destination-controls",
        json!([
            {"domain": "default"},
            {"domain": "example.com", "tls": "required"},
        ]),
    )
    .await;
    let mid = send(&app, "a@sender.test", &["u@example.com"], "secret").await;
    let logs = app
        .wait_log(&format!("Delayed: DCID 0 MID {mid} to RID 0 - 4.4.1"))
        .await;
    assert!(logs.contains("STARTTLS"), "{logs}");
    assert_eq!(dest.mail_commands(), 0, "no MAIL FROM in plain text");
    assert!(dest.messages().is_empty());
    // With TLS offered (and required) it goes through, encrypted.
    let (tls, _) = crate::sink::tls_server(&["sink.test"]);
    dest.set(|s| s.tls = Some(tls));
    let got = dest.wait_messages(1).await;
    assert!(got[0].tls);
}

#[tokio::test]
async fn destination_control_limits_simultaneous_connections() {
    let dest = Sink::start(Script {
        delay: Duration::from_millis(50),
        ..Script::default()
    })
    .await;
    let app = appliance_with_routes(
        "",
        json!([{"domain": "example.com", "hosts": [dest.addr.to_string()]}]),
    )
    .await;
    put(
        &app,
        "/destination-controls",
        json!([
            {"domain": "default"},
            {"domain": "example.com", "max_connections": 2, "max_messages_per_connection": 1},
        ]),
    )
    .await;
    let mut c = SmtpClient::greeted(app.smtp).await.0;
    for i in 0..12 {
        queued_mid(
            &c.send_mail(
                "a@sender.test",
                &["u@example.com"],
                &message(&format!("burst {i}")),
            )
            .await,
        );
    }
    dest.wait_messages(12).await;
    let st = dest.stats.lock().unwrap();
    // A slow server and one message per connection: without the limit, every queued message
    // would get a connection of its own at once.
    assert_eq!(
        st.max_open, 2,
        "exactly the limit of simultaneous connections"
    );
    assert_eq!(st.connections, 12, "one message per connection");
}
