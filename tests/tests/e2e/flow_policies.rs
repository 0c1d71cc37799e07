//! Mail flow policy limits per sender group (AsyncOS *Mail Flow Policies*): messages per
//! connection, recipients per hour per client address, concurrent connections per address, and
//! TLS off / required — over real SMTP from different loopback addresses.

use reqwest::Method;
use serde_json::json;

use crate::harness::*;

async fn client_from(app: &Appliance, source: &str) -> (SmtpClient<tokio::net::TcpStream>, Reply) {
    let mut c = SmtpClient::new(connect_from(source, app.smtp).await);
    let greeting = c.reply().await.expect("a greeting");
    (c, greeting)
}

#[tokio::test]
async fn sender_groups_limit_messages_recipients_connections_and_tls() {
    let app = Appliance::start("").await;
    app.accept_domains(&["example.com"]).await;
    // Bad limits are refused with the row named.
    let (status, body) = app
        .api(
            Method::PUT,
            "/hat",
            Some(json!([{"name": "X", "hosts": ["ALL"], "policy": "ACCEPT",
                         "limits": {"max_messages_per_connection": 0}}])),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("hat[0] (X)"), "{body}");
    let hat = json!([
        {"name": "LIMITED", "hosts": ["127.0.0.2"], "policy": "ACCEPT",
         "limits": {"max_messages_per_connection": 2, "max_connections_per_ip": 1}},
        {"name": "TLSREQUIRED", "hosts": ["127.0.0.3"], "policy": "ACCEPT", "limits": {"tls": "required"}},
        {"name": "NOTLS", "hosts": ["127.0.0.4"], "policy": "ACCEPT", "limits": {"tls": "off"}},
        {"name": "RATED", "hosts": ["127.0.0.5"], "policy": "ACCEPT", "limits": {"max_recipients_per_hour": 3}},
        {"name": "LOOPBACK", "hosts": ["127.0.0.0/8", "::1/128"], "policy": "ACCEPT"},
    ]);
    let (status, body) = app.api(Method::PUT, "/hat", Some(hat.clone())).await;
    assert_eq!(status, 200, "{body}");
    let (_, read) = app.api(Method::GET, "/hat", None).await;
    assert_eq!(
        read, hat,
        "limits round-trip; none are written for LOOPBACK"
    );

    // Two messages per connection: the third MAIL gets 421 and the connection closes.
    let (mut a, greeting) = client_from(&app, "127.0.0.2").await;
    assert_eq!(greeting.code, 220);
    for i in 0..2 {
        queued_mid(
            &a.send_mail(
                "s@sender.test",
                &["u@example.com"],
                &message(&format!("m{i}")),
            )
            .await,
        );
    }
    // Meanwhile a second connection from the same address is one too many.
    let (mut b, greeting) = client_from(&app, "127.0.0.2").await;
    assert_eq!(
        greeting.line(),
        "421 4.7.0 Too many concurrent connections from your address, try again later"
    );
    assert!(b.closed().await);
    let r = a.cmd("MAIL FROM:<s@sender.test>").await;
    assert_eq!(
        r.line(),
        "421 4.7.0 Too many messages in this connection, send the rest in a new one"
    );
    assert!(a.closed().await);
    // A new connection may send again.
    let (mut a, _) = client_from(&app, "127.0.0.2").await;
    queued_mid(
        &a.send_mail("s@sender.test", &["u@example.com"], &message("again"))
            .await,
    );
    a.cmd("QUIT").await;

    // Three recipients an hour from 127.0.0.5: the fourth is told to come back later.
    let (mut r, _) = client_from(&app, "127.0.0.5").await;
    assert_eq!(r.cmd("EHLO client.test").await.code, 250);
    assert_eq!(r.cmd("MAIL FROM:<s@sender.test>").await.code, 250);
    for i in 0..3 {
        assert_eq!(
            r.cmd(&format!("RCPT TO:<u{i}@example.com>")).await.code,
            250
        );
    }
    let refused = r.cmd("RCPT TO:<u3@example.com>").await;
    assert_eq!(refused.code, 452, "{refused:?}");
    assert!(
        refused
            .text
            .contains("4.5.3 Too many recipients received this hour")
    );
    assert_eq!(r.cmd("DATA").await.code, 354);
    r.send(format!("{}.\r\n", message("three")).as_bytes())
        .await;
    let done = r.reply().await.unwrap();
    assert_eq!(
        done.code, 250,
        "the three accepted recipients still get the message"
    );

    // TLS required: offered, and MAIL before it is refused.
    let (mut t, _) = client_from(&app, "127.0.0.3").await;
    let ehlo = t.cmd("EHLO client.test").await;
    assert!(ehlo.text.contains("STARTTLS"), "{ehlo:?}");
    assert_eq!(
        t.cmd("MAIL FROM:<s@sender.test>").await.line(),
        "530 5.7.0 Must issue a STARTTLS command first"
    );
    // TLS off: not offered, and refused if asked for.
    let (mut n, _) = client_from(&app, "127.0.0.4").await;
    let ehlo = n.cmd("EHLO client.test").await;
    assert!(!ehlo.text.contains("STARTTLS"), "{ehlo:?}");
    assert_eq!(n.cmd("STARTTLS").await.code, 454);
    queued_mid(
        &n.transaction("s@sender.test", &["u@example.com"], &message("plain"))
            .await,
    );

    // The mail log says why each was refused (the log is written as the sessions go).
    for needle in [
        "recipients this hour from 127.0.0.5, the limit of sender group RATED",
        "sender group TLSREQUIRED requires TLS, replied 530",
        "2 messages in this connection, the limit of sender group LIMITED",
        "concurrent connections from 127.0.0.2, sender group LIMITED allows 1",
    ] {
        app.wait_log(needle).await;
    }
}
