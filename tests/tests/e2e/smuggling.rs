//! SMTP smuggling: only CRLF.CRLF ends DATA. A dot line framed by bare CR or LF must stay inside
//! the one message, so nothing can be slipped in as a second message — here or at the next hop.

use crate::harness::*;

#[tokio::test]
async fn bare_cr_and_lf_dot_lines_never_split_a_message() {
    let app = Appliance::start("").await;
    app.accept_domains(&["example.com"]).await;
    let variants: &[&[u8]] = &[b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r\n.\r"];
    for (i, sep) in variants.iter().enumerate() {
        let (mut c, _) = SmtpClient::greeted(app.smtp).await;
        c.cmd("EHLO client.test").await;
        c.cmd("MAIL FROM:<a@sender.test>").await;
        c.cmd("RCPT TO:<u@example.com>").await;
        assert_eq!(c.cmd("DATA").await.code, 354);
        let mut data = format!("Subject: smuggle {i}\r\n\r\nfirst part").into_bytes();
        data.extend_from_slice(sep);
        data.extend_from_slice(b"MAIL FROM:<evil@sender.test>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n");
        c.send(&data).await;
        // Exactly one reply: the whole thing was one message.
        let reply = c.reply().await.unwrap();
        let mid = queued_mid(&reply);
        assert_eq!(
            c.cmd("QUIT").await.code,
            221,
            "variant {i}: no stray replies before QUIT's"
        );
        let store = app.store().await;
        let stored = store
            .message(rampart_store::Mid(mid))
            .await
            .unwrap()
            .unwrap();
        let body = String::from_utf8_lossy(&stored.body).into_owned();
        assert!(
            body.contains("MAIL FROM:<evil@sender.test>"),
            "variant {i}: smuggled text is content"
        );
        assert!(
            !body.contains('\n')
                || body
                    .split("\r\n")
                    .all(|l| !l.contains('\n') && !l.contains('\r')),
            "variant {i}: stored with CRLF line ends only: {body:?}"
        );
        let rows = store.queue_rows(rampart_store::Mid(mid)).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].recipient, "u@example.com");
    }
    let store = app.store().await;
    assert_eq!(
        store.mids().await.unwrap().len(),
        variants.len(),
        "one message per attempt, none smuggled"
    );
}
