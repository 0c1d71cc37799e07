//! Several SMTP listeners (`[[listener]]`), each with its own HAT: a private outbound listener
//! that relays for one host and refuses the rest, beside the public one that never relays.

use reqwest::Method;
use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn a_second_listener_has_its_own_hat() {
    let app = Appliance::start(
        "[smtp]\ninterface = \"InboundMail\"\n\n[[listener]]\nname = \"OutboundMail\"\nlisten = [\"127.0.0.1:0\"]\n",
    )
    .await;
    app.accept_domains(&["example.com"]).await;
    let outbound = app.listeners["OutboundMail"];
    let (_, listeners) = app.api(Method::GET, "/listeners", None).await;
    assert_eq!(listeners[0]["name"], "InboundMail");
    assert_eq!(listeners[1]["name"], "OutboundMail");
    assert_eq!(listeners[1]["own_hat"], false, "{listeners}");

    // Until it has a HAT of its own, the new listener takes loopback clients only.
    app.wait_log("Listener OutboundMail has no HAT of its own yet")
        .await;

    // Its HAT: 127.0.0.3 relays, everyone else is refused.
    let (status, body) = app
        .api(
            Method::PUT,
            "/listener-hats",
            Some(json!([{"listener": "OutboundMail", "hat": [
                {"name": "RELAYLIST", "hosts": ["127.0.0.3"], "policy": "RELAY"},
                {"name": "ALL", "hosts": ["ALL"], "policy": "REJECT"},
            ]}])),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .api(
            Method::PUT,
            "/listener-hats",
            Some(json!([{"listener": "OutboundMail", "hat": [{"name": "x y", "hosts": ["ALL"], "policy": "RELAY"}]}])),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.to_string().contains("listener_hats[0].hat[0]"),
        "{body}"
    );

    // On the outbound listener 127.0.0.3 relays to any domain; 127.0.0.2 is refused.
    let mut relay = SmtpClient::new(connect_from("127.0.0.3", outbound).await);
    assert_eq!(relay.reply().await.unwrap().code, 220);
    queued_mid(
        &relay
            .send_mail(
                "me@example.com",
                &["someone@elsewhere.test"],
                &message("out"),
            )
            .await,
    );
    relay.cmd("QUIT").await;
    let mut other = SmtpClient::new(connect_from("127.0.0.2", outbound).await);
    assert_eq!(other.reply().await.unwrap().code, 554);
    // On the main listener the same client does not relay: the main HAT accepts, the RAT decides.
    let mut inbound = SmtpClient::new(connect_from("127.0.0.3", app.smtp).await);
    assert_eq!(inbound.reply().await.unwrap().code, 220);
    assert_eq!(inbound.cmd("EHLO client.test").await.code, 250);
    assert_eq!(inbound.cmd("MAIL FROM:<me@example.com>").await.code, 250);
    assert_eq!(
        inbound.cmd("RCPT TO:<someone@elsewhere.test>").await.code,
        550
    );
    // The mail log names the listener as the interface.
    app.wait_log("interface OutboundMail (127.0.0.1) address 127.0.0.3")
        .await;
    app.wait_log("RELAY SG RELAYLIST match 127.0.0.3").await;
    let (_, listeners) = app.api(Method::GET, "/listeners", None).await;
    assert_eq!(listeners[1]["own_hat"], true);

    // The HAT page shows the listener's table, and saves into it.
    let page = app.page("/mail-policies/hat/OutboundMail").await;
    assert!(page.contains("RELAYLIST"), "{page}");
    assert!(page.contains("This is the HAT of listener <strong>OutboundMail</strong>"));
}
