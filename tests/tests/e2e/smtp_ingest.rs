//! Accepting mail: the ESMTP dialogue, pipelining, what is stored and what is logged.

use crate::harness::*;

#[tokio::test]
async fn ehlo_announces_the_extensions() {
    let app = Appliance::start("[smtp]\nmax_message_size = 123456").await;
    let (mut c, banner) = SmtpClient::greeted(app.smtp).await;
    assert_eq!(banner.line(), "220 rampart.test ESMTP Rampart");
    let ehlo = c.cmd("EHLO client.test").await;
    assert_eq!(ehlo.code, 250);
    let lines: Vec<&str> = ehlo.text.lines().collect();
    assert_eq!(
        lines,
        [
            "rampart.test",
            "PIPELINING",
            "SIZE 123456",
            "8BITMIME",
            "ENHANCEDSTATUSCODES",
            "STARTTLS"
        ]
    );
    assert_eq!(c.cmd("HELO client.test").await.line(), "250 rampart.test");
    assert_eq!(c.cmd("NOOP").await.line(), "250 2.0.0 Ok");
    assert_eq!(c.cmd("VRFY someone").await.code, 252);
    assert_eq!(c.cmd("HELP").await.code, 214);
    assert_eq!(c.cmd("RSET").await.line(), "250 2.0.0 Reset state");
    assert_eq!(c.cmd("QUIT").await.line(), "221 2.0.0 Goodbye");
    assert!(c.closed().await);
}

#[tokio::test]
async fn accepted_message_is_stored_queued_logged_and_tracked() {
    let app = Appliance::start("").await;
    app.accept_domains(&["example.com", ".example.org"]).await;
    let mut c = app.smtp().await;
    c.reply().await.unwrap();
    let body = message("first");
    let reply = c
        .send_mail(
            "a@sender.test",
            &["u@example.com", "v@sub.example.org"],
            &body,
        )
        .await;
    let mid = queued_mid(&reply);
    assert_eq!(c.cmd("QUIT").await.code, 221);

    let store = app.store().await;
    let stored = store
        .message(rampart_store::Mid(mid))
        .await
        .unwrap()
        .expect("message stored");
    let text = String::from_utf8(stored.body.to_vec()).unwrap();
    assert!(
        text.starts_with(
            "Received: from client.test ([127.0.0.1])\r\n\tby rampart.test with ESMTP id "
        ),
        "{text}"
    );
    assert!(
        text.ends_with(&body),
        "original bytes kept after our Received: header"
    );
    assert_eq!(stored.sender, "a@sender.test");
    assert_eq!(stored.message_id.as_deref(), Some("<first@sender.test>"));
    let rows = store.queue_rows(rampart_store::Mid(mid)).await.unwrap();
    let queued: Vec<(u32, &str, &str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r.rcpt_idx,
                r.recipient.as_str(),
                r.queue_name.as_str(),
                r.state.as_str(),
            )
        })
        .collect();
    assert_eq!(
        queued,
        [
            (0, "u@example.com", "example.com", "queued"),
            (1, "v@sub.example.org", "sub.example.org", "queued")
        ]
    );
    let events = store.tracking(rampart_store::Mid(mid)).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.text == format!("Message {mid} queued for delivery"))
    );

    let logs = app
        .wait_log(&format!("MID {mid} queued for delivery"))
        .await;
    for line in [
        "New SMTP ICID ".to_string(),
        // 127.0.0.1's name is the machine's (its hosts file, or `localhost`), and it points back.
        " interface Management (127.0.0.1) address 127.0.0.1 reverse dns host ".into(),
        " verified yes".into(),
        " ACCEPT SG LOOPBACK match 127.0.0.0/8 SBRS None country not applicable".into(),
        format!("Start MID {mid} ICID "),
        format!("MID {mid} ICID "),
        " From: <a@sender.test>".into(),
        " RID 0 To: <u@example.com>".into(),
        " RID 1 To: <v@sub.example.org>".into(),
        format!("MID {mid} Message-ID '<first@sender.test>'"),
        format!("MID {mid} Subject 'first'"),
        format!("MID {mid} ready "),
    ] {
        assert!(logs.contains(&line), "mail_logs lacks {line:?}:\n{logs}");
    }
    app.wait_log(" close").await;
    // Each line has the AsyncOS layout: "Sat Nov 28 06:24:50 2026 Info: ...".
    for l in logs.lines() {
        let fields: Vec<&str> = l.split_whitespace().collect();
        assert!(
            fields.len() > 6 && (fields[5] == "Info:" || fields[5] == "Warning:"),
            "{l}"
        );
    }
}

#[tokio::test]
async fn pipelined_commands_are_answered_in_order() {
    let app = Appliance::start("").await;
    app.accept_domains(&["example.com"]).await;
    let (mut c, _) = SmtpClient::greeted(app.smtp).await;
    // Everything up to DATA in one packet, as a PIPELINING client sends it (RFC 2920).
    c.send(b"EHLO client.test\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<u@example.com>\r\nRCPT TO:<x@elsewhere.test>\r\nRCPT TO:<w@example.com>\r\nDATA\r\n").await;
    let codes: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..6 {
            v.push(c.reply().await.unwrap().line());
        }
        v
    };
    assert_eq!(codes[0].get(..3), Some("250"));
    assert_eq!(codes[1], "250 2.1.0 Sender ok");
    assert_eq!(codes[2], "250 2.1.5 Recipient ok");
    assert_eq!(codes[3], "550 5.7.1 Relaying denied");
    assert_eq!(codes[4], "250 2.1.5 Recipient ok");
    assert!(codes[5].starts_with("354"));
    // The message and the next commands in one packet too.
    c.send(
        b"Subject: piped\r\n\r\nbody\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<u@example.com>\r\nQUIT\r\n",
    )
    .await;
    let done = c.reply().await.unwrap();
    let mid = queued_mid(&done);
    assert_eq!(c.reply().await.unwrap().code, 250);
    assert_eq!(c.reply().await.unwrap().code, 250);
    assert_eq!(c.reply().await.unwrap().code, 221);
    let rows = app
        .store()
        .await
        .queue_rows(rampart_store::Mid(mid))
        .await
        .unwrap();
    assert_eq!(rows.len(), 2, "the refused recipient was not queued");
}

#[tokio::test]
async fn relay_clients_may_send_anywhere_others_only_to_the_rat() {
    let app = Appliance::start("").await;
    let (mut c, _) = SmtpClient::greeted(app.smtp).await;
    c.cmd("EHLO client.test").await;
    c.cmd("MAIL FROM:<a@sender.test>").await;
    // A fresh appliance accepts no recipient domain: never an open relay.
    assert_eq!(
        c.cmd("RCPT TO:<u@example.com>").await.line(),
        "550 5.7.1 Relaying denied"
    );
    let hat = serde_json::json!([
        {"name": "RELAYLIST", "hosts": ["127.0.0.1/32"], "policy": "RELAY"},
        {"name": "ALL", "hosts": ["ALL"], "policy": "ACCEPT"}
    ]);
    let (status, body) = app.api(reqwest::Method::PUT, "/hat", Some(hat)).await;
    assert_eq!(status, 200, "{body}");
    let (mut c, _) = SmtpClient::greeted(app.smtp).await;
    let reply = c
        .send_mail(
            "a@sender.test",
            &["anyone@anywhere.test"],
            &message("relayed"),
        )
        .await;
    queued_mid(&reply);
    app.wait_log("RELAY SG RELAYLIST match 127.0.0.1/32").await;
}

#[tokio::test]
async fn starttls_then_mail_over_tls() {
    use std::sync::Arc;
    let app = Appliance::start("").await;
    app.accept_domains(&["example.com"]).await;
    let (mut c, _) = SmtpClient::greeted(app.smtp).await;
    c.cmd("EHLO client.test").await;
    assert_eq!(
        c.cmd("STARTTLS").await.line(),
        "220 2.0.0 Ready to start TLS"
    );
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tls = connector
        .connect(
            rustls::pki_types::ServerName::try_from("rampart.test").unwrap(),
            c.stream,
        )
        .await
        .unwrap();
    let mut t = SmtpClient::new(tls);
    let ehlo = t.cmd("EHLO client.test").await;
    assert!(
        !ehlo.text.contains("STARTTLS"),
        "STARTTLS is not offered twice"
    );
    assert_eq!(
        t.cmd("STARTTLS").await.line(),
        "503 5.5.1 TLS already active"
    );
    let mid = queued_mid(
        &t.transaction("a@sender.test", &["u@example.com"], &message("tls"))
            .await,
    );
    let logs = app.wait_log(&format!("MID {mid} queued")).await;
    assert!(
        logs.contains("TLS success protocol TLSv1.3 cipher TLS_"),
        "{logs}"
    );
    let stored = app
        .store()
        .await
        .message(rampart_store::Mid(mid))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&stored.body).contains(" with ESMTPS id "));
}

/// The appliance's certificate is self-signed; these tests check the protocol, not trust.
#[derive(Debug)]
pub(crate) struct AcceptAny;

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
