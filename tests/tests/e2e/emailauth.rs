//! Email authentication against a real DNS server on loopback: SPF, DKIM (messages signed here
//! with mail-auth) and DMARC, with their effect on the verdict and on journaling.

use base64::Engine;
use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use reqwest::Method;
use serde_json::json;

use crate::dns::{Answer, DnsServer};
use crate::harness::*;
use crate::sink::{Script, Sink};

struct Setup {
    app: Appliance,
    dns: DnsServer,
    dest: Sink,
    intake: Sink,
}

async fn setup() -> Setup {
    let dns = DnsServer::start().await;
    let dest = Sink::start(Script::default()).await;
    let intake = Sink::start(Script::default()).await;
    let app = Appliance::start(&format!(
        "[dns]\nnameservers = [\"{}\"]\n[tdc]\ntls = \"off\"\n",
        dns.addr
    ))
    .await;
    app.accept_domains(&["example.com"]).await;
    let routes = json!([
        {"domain": "example.com", "hosts": [dest.addr.to_string()]},
        {"domain": "intake.test", "hosts": [intake.addr.to_string()]}
    ]);
    assert_eq!(
        app.api(Method::PUT, "/smtp-routes", Some(routes)).await.0,
        200
    );
    assert_eq!(
        app.api(
            Method::PUT,
            "/tdc",
            Some(json!({"enabled": true, "intake_address": "j@intake.test"}))
        )
        .await
        .0,
        200
    );
    let default = json!({"name": "DEFAULT", "email_authentication": {"enabled": true}, "tdc": {"mode": "global"}});
    let (status, body) = app
        .api(Method::PUT, "/policies/incoming/DEFAULT", Some(default))
        .await;
    assert_eq!(status, 200, "{body}");
    Setup {
        app,
        dns,
        dest,
        intake,
    }
}

fn message(from_domain: &str, subject: &str) -> String {
    format!(
        "From: alice@{from_domain}\r\nTo: u@example.com\r\nSubject: {subject}\r\nMessage-ID: <{subject}@{from_domain}>\r\n\r\nHello.\r\n"
    )
}

/// A DKIM-signed copy of `message` and the DNS TXT value publishing the key.
fn sign(message: &str, domain: &str) -> (String, String) {
    let pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
    let key = Ed25519Key::from_pkcs8_der(&pkcs8).unwrap();
    let public = base64::engine::general_purpose::STANDARD.encode(key.public_key());
    let signature = DkimSigner::from_key(key)
        .domain(domain)
        .selector("sel")
        .headers(["From", "To", "Subject", "Message-ID"])
        .sign(message.as_bytes())
        .unwrap();
    (
        format!("{}{message}", signature.to_header()),
        format!("v=DKIM1; k=ed25519; p={public}"),
    )
}

async fn send(app: &Appliance, from: &str, message: &str) -> Reply {
    let (mut c, _) = SmtpClient::greeted(app.smtp).await;
    c.send_mail(from, &["u@example.com"], message).await
}

#[tokio::test]
async fn spf_dkim_dmarc_pass_is_clean_and_recorded() {
    let s = setup().await;
    s.dns.txt("good.test", "v=spf1 ip4:127.0.0.0/8 -all");
    s.dns.txt("_dmarc.good.test", "v=DMARC1; p=reject");
    let (signed, key) = sign(&message("good.test", "authpass"), "good.test");
    s.dns.txt("sel._domainkey.good.test", &key);
    let mid = queued_mid(&send(&s.app, "alice@good.test", &signed).await);
    let got = s.dest.wait_messages(1).await;
    let text = got[0].text();
    let ar = text
        .lines()
        .find(|l| l.starts_with("Authentication-Results: rampart.test"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        ar.contains("spf=pass") || text.contains("spf=pass"),
        "{text}"
    );
    assert!(
        text.contains("dkim=pass") && text.contains("dmarc=pass"),
        "{text}"
    );
    s.app
        .wait_log(&format!("MID {mid} SPF pass DKIM pass DMARC pass"))
        .await;
    s.intake.wait_messages(1).await;
}

#[tokio::test]
async fn dmarc_reject_is_honoured_and_spf_fail_is_not_clean() {
    let s = setup().await;
    // The domain authorises another network only, signs nothing, and asks for rejection.
    s.dns.txt("spoofed.test", "v=spf1 ip4:192.0.2.0/24 -all");
    s.dns.txt("_dmarc.spoofed.test", "v=DMARC1; p=reject");
    let reply = send(
        &s.app,
        "ceo@spoofed.test",
        &message("spoofed.test", "spoof"),
    )
    .await;
    assert_eq!(
        reply.line(),
        "550 5.7.1 Message rejected by the DMARC policy of spoofed.test"
    );

    // p=none (another domain: answers are cached for their TTL): delivered, but SPF and DMARC
    // failed, so it is not journaled.
    s.dns.txt("monitored.test", "v=spf1 ip4:192.0.2.0/24 -all");
    s.dns.txt("_dmarc.monitored.test", "v=DMARC1; p=none");
    let mid = queued_mid(
        &send(
            &s.app,
            "ceo@monitored.test",
            &message("monitored.test", "monitor"),
        )
        .await,
    );
    s.dest.wait_messages(1).await;
    s.app
        .wait_log(&format!("Message finished MID {mid} done"))
        .await;
    let logs = s.app.mail_logs();
    assert!(
        logs.contains(&format!("MID {mid} SPF fail DKIM none DMARC fail")),
        "{logs}"
    );
    assert!(
        !logs.contains(&format!("TDC: MID {mid} ")),
        "not clean, not journaled"
    );
    let (_, tracked) = s
        .app
        .api(Method::GET, &format!("/tracking?mid={mid}"), None)
        .await;
    assert!(
        tracked[0]["events"]
            .to_string()
            .contains("verdict: deliver (SPF fail; DMARC fail)")
    );

    // The policy can override the domain's wish: quarantine instead.
    let default = json!({"name": "DEFAULT", "email_authentication": {"enabled": true, "dmarc_action": "quarantine"}, "tdc": {"mode": "global"}});
    assert_eq!(
        s.app
            .api(Method::PUT, "/policies/incoming/DEFAULT", Some(default))
            .await
            .0,
        200
    );
    let held =
        queued_mid(&send(&s.app, "ceo@spoofed.test", &message("spoofed.test", "held")).await);
    s.app
        .wait_log(&format!(
            "MID {held} quarantined to \"Policy\" (content filter:DMARC)"
        ))
        .await;
}

#[tokio::test]
async fn no_records_and_temporary_errors_do_not_block_mail() {
    let s = setup().await;
    // none: a domain that publishes nothing.
    s.dns.txt("plain.test", "some other text record");
    let none = queued_mid(&send(&s.app, "bob@plain.test", &message("plain.test", "none")).await);
    s.app
        .wait_log(&format!("MID {none} SPF none DKIM none DMARC none"))
        .await;
    // temperror: the domain's DNS is broken.
    s.dns.set(
        "broken.test",
        hickory_proto::rr::RecordType::TXT,
        Answer::ServFail,
    );
    s.dns.set(
        "_dmarc.broken.test",
        hickory_proto::rr::RecordType::TXT,
        Answer::ServFail,
    );
    let temp = queued_mid(&send(&s.app, "bob@broken.test", &message("broken.test", "temp")).await);
    s.app.wait_log(&format!("MID {temp} SPF temperror")).await;
    s.dest.wait_messages(2).await;
    // Neither is a finding: both are clean and journaled.
    s.intake.wait_messages(2).await;
}
