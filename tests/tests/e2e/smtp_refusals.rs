//! Every refusal of the inbound session, with its exact reply code, and bad input that must
//! neither crash the appliance nor leave anything half-stored.

use crate::harness::*;

async fn greeted(app: &Appliance) -> SmtpClient<tokio::net::TcpStream> {
    let (c, banner) = SmtpClient::greeted(app.smtp).await;
    assert_eq!(banner.code, 220);
    c
}

#[tokio::test]
async fn commands_out_of_order_and_malformed() {
    let app = Appliance::start("[smtp]\nmax_errors = 50").await;
    app.accept_domains(&["example.com"]).await;
    let mut c = greeted(&app).await;
    let cases: &[(&str, &str)] = &[
        (
            "MAIL FROM:<a@sender.test>",
            "503 5.5.1 Send EHLO or HELO first",
        ),
        ("EHLO", "501 5.5.4 Syntax: EHLO hostname"),
        ("EHLO client.test", "250 rampart.test"),
        ("RCPT TO:<u@example.com>", "503 5.5.1 Need MAIL command"),
        ("DATA", "503 5.5.1 Need MAIL command"),
        ("FROB", "500 5.5.1 Command unrecognized"),
        ("EXPN list", "502 5.5.1 Command not implemented"),
        (
            "MAIL FROM:a@sender.test",
            "501 5.5.4 Syntax: MAIL FROM:<address>",
        ),
        (
            "MAIL FROM:<a@@sender.test>",
            "501 5.1.7 Bad sender address syntax: local part is empty or invalid",
        ),
        (
            "MAIL FROM:<a@sender.test> AUTH=<>",
            "555 5.5.4 Unsupported parameter AUTH=<>",
        ),
        (
            "MAIL FROM:<a@sender.test> SIZE=999999999999",
            "552 5.3.4 Message size exceeds fixed maximum message size",
        ),
        ("MAIL FROM:<a@sender.test>", "250 2.1.0 Sender ok"),
        ("MAIL FROM:<a@sender.test>", "503 5.5.1 Nested MAIL command"),
        (
            "RCPT TO:<not an address>",
            "501 5.1.3 Bad recipient address syntax: address is missing the @ and domain",
        ),
        (
            "RCPT TO:<not an@example.com>",
            "501 5.1.3 Bad recipient address syntax: local part is empty or invalid",
        ),
        (
            "RCPT TO:<u@exa_mple.com>",
            "501 5.1.3 Bad recipient address syntax: domain is invalid",
        ),
        ("DATA", "554 5.5.1 No valid recipients"),
        ("RSET", "250 2.0.0 Reset state"),
    ];
    for (cmd, want) in cases {
        let got = c.cmd(cmd).await;
        assert_eq!(got.line(), *want, "after {cmd:?}");
    }
    assert_eq!(c.cmd("QUIT").await.code, 221);
    assert!(
        app.store().await.mids().await.unwrap().is_empty(),
        "nothing stored"
    );
}

#[tokio::test]
async fn garbage_and_overlong_lines_get_500_and_the_session_goes_on() {
    let app = Appliance::start("").await;
    app.accept_domains(&["example.com"]).await;
    let mut c = greeted(&app).await;
    c.send(b"\x00\xff\xfe\x01garbage\r\n").await;
    assert_eq!(
        c.reply().await.unwrap().line(),
        "500 5.5.2 Command line contains invalid characters"
    );
    let long = format!("EHLO {}\r\n", "a".repeat(600));
    c.send(long.as_bytes()).await;
    assert_eq!(c.reply().await.unwrap().line(), "500 5.5.2 Line too long");
    // A line far longer than any buffer, without a newline for a while.
    let huge = vec![b'x'; 100_000];
    c.send(&huge).await;
    c.send(b"\r\n").await;
    assert_eq!(c.reply().await.unwrap().line(), "500 5.5.2 Line too long");
    let mid = queued_mid(
        &c.send_mail(
            "a@sender.test",
            &["u@example.com"],
            &message("after-garbage"),
        )
        .await,
    );
    assert!(mid > 0);
}

#[tokio::test]
async fn too_many_errors_closes_the_session() {
    let app = Appliance::start("[smtp]\nmax_errors = 3").await;
    let mut c = greeted(&app).await;
    assert_eq!(c.cmd("FOO").await.code, 500);
    assert_eq!(c.cmd("BAR").await.code, 500);
    c.send(b"BAZ\r\n").await;
    assert_eq!(c.reply().await.unwrap().code, 500);
    assert_eq!(
        c.reply().await.unwrap().line(),
        "421 4.7.0 Too many errors, closing connection"
    );
    assert!(c.closed().await);
}

#[tokio::test]
async fn oversized_message_is_refused_and_nothing_is_stored() {
    let app = Appliance::start("[smtp]\nmax_message_size = 1000").await;
    app.accept_domains(&["example.com"]).await;
    let mut c = greeted(&app).await;
    let big = format!("Subject: big\r\n\r\n{}", "0123456789\r\n".repeat(200));
    let reply = c.send_mail("a@sender.test", &["u@example.com"], &big).await;
    assert_eq!(
        reply.line(),
        "552 5.3.4 Message size exceeds fixed maximum message size"
    );
    // The session is still usable and a small message goes through.
    let ok = c
        .transaction(
            "a@sender.test",
            &["u@example.com"],
            "Subject: small\r\n\r\nok\r\n",
        )
        .await;
    let mid = queued_mid(&ok);
    assert_eq!(
        app.store().await.mids().await.unwrap(),
        vec![rampart_store::Mid(mid)],
        "only the small one"
    );
    app.wait_log("Receiving Failed: Message Size Too Large")
        .await;
}

#[tokio::test]
async fn recipient_limit() {
    let app = Appliance::start("[smtp]\nmax_recipients = 2").await;
    app.accept_domains(&["example.com"]).await;
    let mut c = greeted(&app).await;
    c.cmd("EHLO client.test").await;
    c.cmd("MAIL FROM:<a@sender.test>").await;
    assert_eq!(c.cmd("RCPT TO:<u1@example.com>").await.code, 250);
    assert_eq!(c.cmd("RCPT TO:<u2@example.com>").await.code, 250);
    assert_eq!(
        c.cmd("RCPT TO:<u3@example.com>").await.line(),
        "452 4.5.3 Too many recipients"
    );
}

#[tokio::test]
async fn connection_limit() {
    let app = Appliance::start("[smtp]\nmax_connections = 1").await;
    let (_first, banner) = SmtpClient::greeted(app.smtp).await;
    assert_eq!(banner.code, 220);
    let (mut second, reply) = SmtpClient::greeted(app.smtp).await;
    assert_eq!(
        reply.line(),
        "421 4.3.2 Too many concurrent connections, try again later"
    );
    assert!(second.closed().await);
}

#[tokio::test]
async fn idle_client_times_out() {
    let app = Appliance::start("[smtp]\ntimeout_secs = 1").await;
    let mut c = greeted(&app).await;
    // Say nothing; the server must give up on its own.
    assert_eq!(
        c.reply().await.unwrap().line(),
        "421 4.4.2 Timeout exceeded, closing connection"
    );
    assert!(c.closed().await);
}

#[tokio::test]
async fn hat_reject_and_tcprefuse() {
    let app = Appliance::start("").await;
    let hat =
        serde_json::json!([{"name": "BLOCKED", "hosts": ["127.0.0.0/8"], "policy": "REJECT"}]);
    assert_eq!(
        app.api(reqwest::Method::PUT, "/hat", Some(hat)).await.0,
        200
    );
    let (mut c, banner) = SmtpClient::greeted(app.smtp).await;
    assert_eq!(banner.line(), "554 5.7.1 rampart.test Access denied");
    assert_eq!(
        c.cmd("EHLO client.test").await.line(),
        "503 5.5.1 Bad sequence of commands"
    );
    assert_eq!(c.cmd("QUIT").await.code, 221);
    app.wait_log("REJECT SG BLOCKED match 127.0.0.0/8").await;

    let hat =
        serde_json::json!([{"name": "REFUSED", "hosts": ["127.0.0.1"], "policy": "TCPREFUSE"}]);
    assert_eq!(
        app.api(reqwest::Method::PUT, "/hat", Some(hat)).await.0,
        200
    );
    let mut c = SmtpClient::connect(app.smtp).await;
    assert_eq!(c.reply().await, None, "closed without a banner");
    app.wait_log("TCPREFUSE SG REFUSED").await;
}

/// A sender group by host name matches a client whose reverse DNS name is forward-confirmed,
/// and not one whose name points elsewhere. On loopback the names come from the machine's own
/// resolver (its hosts file, or `localhost` by RFC 6761), which the appliance asks as it would
/// ask DNS for a remote client.
#[tokio::test]
async fn hat_sender_groups_match_verified_reverse_names() {
    let app = Appliance::start("").await;
    let mut c = greeted(&app).await;
    c.cmd("QUIT").await;
    let prefix = "address 127.0.0.1 reverse dns host ";
    let log = app.wait_log(prefix).await;
    let line = log.lines().find(|l| l.contains(prefix)).unwrap();
    let rest = &line[line.find(prefix).unwrap() + prefix.len()..];
    let (name, verified) = rest.split_once(' ').unwrap();
    assert_eq!(verified, "verified yes", "{line}");
    assert_ne!(name, "unknown");

    let hat = serde_json::json!([
        {"name": "NAMED", "hosts": [name], "policy": "RELAY"},
        {"name": "LOOPBACK", "hosts": ["127.0.0.0/8"], "policy": "ACCEPT"},
    ]);
    assert_eq!(
        app.api(reqwest::Method::PUT, "/hat", Some(hat)).await.0,
        200
    );

    // 127.0.0.1: its name is confirmed, so it may relay.
    let mut c = greeted(&app).await;
    c.cmd("EHLO client.test").await;
    c.cmd("MAIL FROM:<a@sender.test>").await;
    assert_eq!(c.cmd("RCPT TO:<u@elsewhere.test>").await.code, 250);
    c.cmd("QUIT").await;
    app.wait_log(&format!("RELAY SG NAMED match {name} ")).await;

    // 127.0.0.2: its name (`localhost`, or what the hosts file says) does not point back to it.
    let mut c = SmtpClient::new(connect_from("127.0.0.2", app.smtp).await);
    assert_eq!(c.reply().await.unwrap().code, 220);
    c.cmd("EHLO client.test").await;
    c.cmd("MAIL FROM:<a@sender.test>").await;
    assert_eq!(
        c.cmd("RCPT TO:<u@elsewhere.test>").await.line(),
        "550 5.7.1 Relaying denied"
    );
    c.cmd("QUIT").await;
    let log = app.wait_log("address 127.0.0.2 reverse dns host ").await;
    let line = log
        .lines()
        .find(|l| l.contains("address 127.0.0.2 reverse dns host "))
        .unwrap();
    assert!(line.ends_with(" verified no"), "{line}");
    app.wait_log("ACCEPT SG LOOPBACK match 127.0.0.0/8").await;

    // A host name that is not a name is refused with the reason.
    let bad = serde_json::json!([{"name": "X", "hosts": ["mail..example.com"], "policy": "RELAY"}]);
    let (status, body) = app.api(reqwest::Method::PUT, "/hat", Some(bad)).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("host \"mail..example.com\" is not an IP address, a CIDR range, a host name"),
        "{body}"
    );
}

/// With `smtp.reverse_dns_timeout_ms = 0` no lookup is made: every client is `unknown`.
#[tokio::test]
async fn reverse_dns_can_be_switched_off() {
    let app = Appliance::start("[smtp]\nreverse_dns_timeout_ms = 0").await;
    let mut c = greeted(&app).await;
    c.cmd("QUIT").await;
    app.wait_log("address 127.0.0.1 reverse dns host unknown verified no")
        .await;
}

#[tokio::test]
async fn client_vanishing_mid_data_stores_nothing() {
    let app = Appliance::start("").await;
    app.accept_domains(&["example.com"]).await;
    let mut c = greeted(&app).await;
    c.cmd("EHLO client.test").await;
    c.cmd("MAIL FROM:<a@sender.test>").await;
    c.cmd("RCPT TO:<u@example.com>").await;
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.send(b"Subject: cut\r\n\r\nhalf a mess").await;
    drop(c);
    app.wait_log("lost connection during DATA").await;
    app.wait_log("aborted").await;
    let store = app.store().await;
    assert!(store.mids().await.unwrap().is_empty());
    assert_eq!(store.queued_count().await.unwrap(), 0);
}
