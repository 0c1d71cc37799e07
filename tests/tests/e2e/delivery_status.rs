//! Delivery Status details (AsyncOS `hoststatus`, `suspenddel`, `resumedel`) end to end: a held
//! destination's mail waits while other mail flows, the last error and the.tdc.queue per intake
//! address, through the API, the web page and the CLI.

use reqwest::Method;
use serde_json::json;

use crate::harness::*;
use crate::tdc;

#[tokio::test]
async fn a_held_destination_waits_the_last_error_shows_and_each_intake_is_counted() {
    // The intake refuses the finance policy's custom intake address.
    let (tdc::Setup { app, dest, .. }, _intake) = tdc::setup_with_refused_finance(json!([])).await;
    dest.set(|s| {
        s.rcpt.insert(
            "busy@example.com".into(),
            "452 4.2.2 mailbox busy, try later".into(),
        );
    });

    // Hold example.com, then send to it and to finance.example.com.
    let (status, body) = app
        .api(
            Method::POST,
            "/suspenddel",
            Some(json!({"host": "Example.COM"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["host"], "example.com");
    let (mut c, _) = SmtpClient::greeted(app.smtp).await;
    for i in 0..2 {
        queued_mid(
            &c.send_mail(
                "a@sender.test",
                &["u@example.com"],
                &message(&format!("held {i}")),
            )
            .await,
        );
    }
    queued_mid(
        &c.send_mail(
            "a@sender.test",
            &["cfo@finance.example.com"],
            &message("ledger"),
        )
        .await,
    );
    c.cmd("QUIT").await;

    // Other mail flows meanwhile: finance is delivered, every journal copy is tried.
    dest.wait_messages(1).await;
    wait_until("the three journal copies to be tried", || async {
        let (_, tdc) = app
            .api(Method::GET, "/hoststatus/the.tdc.queue", None)
            .await;
        tdc["delivered_recipients"].as_u64().unwrap_or(0)
            + tdc["hard_bounced"].as_u64().unwrap_or(0)
            == 3
    })
    .await;
    let (_, held) = app.api(Method::GET, "/hoststatus/example.com", None).await;
    assert_eq!(held["active_recipients"], 2, "{held}");
    assert_eq!(held["held"]["by"], "admin", "{held}");
    assert_eq!(dest.messages().len(), 1, "nothing for the held host");
    // Retry Delivery leaves a held host alone.
    let (_, retried) = app
        .api(
            Method::POST,
            "/deliverynow",
            Some(json!({"host": "example.com"})),
        )
        .await;
    assert_eq!(retried["rescheduled_recipients"], 0);

    // The.tdc.queue per intake address: the refused one with its error, failing first.
    let (_, tdc) = app
        .api(Method::GET, "/hoststatus/the.tdc.queue", None)
        .await;
    let intakes = tdc["intakes"].as_array().unwrap();
    assert_eq!(intakes.len(), 2, "{tdc}");
    assert_eq!(intakes[0]["intake_address"], "refused@intake.test");
    assert_eq!(intakes[0]["failed"], 1);
    // Journal replies are kept as the TDC log lines show them: ('550', '5.1.1 …').
    let error = intakes[0]["last_error"].as_str().unwrap();
    assert!(
        error.contains("550") && error.contains("no such intake"),
        "{error}"
    );
    assert_eq!(intakes[1]["intake_address"], "journal@intake.test");
    assert_eq!(intakes[1]["delivered"], 2);
    assert!(intakes[1]["last_error"].is_null());

    // The web page says the same.
    let page = app.page("/monitor/delivery/host/the.tdc.queue").await;
    assert!(page.contains("refused@intake.test"), "{page}");
    assert!(page.contains("5.1.1 no such intake"), "{page}");
    let page = app.page("/monitor/delivery/host/example.com").await;
    assert!(page.contains("Delivery suspended"), "{page}");
    assert!(page.contains("Resume Delivery"), "{page}");

    // Resume: the two waiting messages are delivered.
    let (status, body) = app
        .api(
            Method::POST,
            "/resumedel",
            Some(json!({"host": "example.com"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rescheduled_recipients"], 2);
    dest.wait_messages(3).await;

    // A deferral: the last error and the next retry.
    let (mut c, _) = SmtpClient::greeted(app.smtp).await;
    queued_mid(
        &c.send_mail("a@sender.test", &["busy@example.com"], &message("busy"))
            .await,
    );
    c.cmd("QUIT").await;
    wait_until("the deferral to be recorded", || async {
        let (_, d) = app.api(Method::GET, "/hoststatus/example.com", None).await;
        d["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("452 4.2.2 mailbox busy"))
    })
    .await;
    let (_, d) = app.api(Method::GET, "/hoststatus/example.com", None).await;
    assert!(d["next_retry"].is_string(), "{d}");
    assert!(d["held"].is_null(), "{d}");
    assert_eq!(d["delivered_recipients"], 2, "the two held messages: {d}");

    // Refusals with the reason.
    let (status, body) = app
        .api(
            Method::POST,
            "/suspenddel",
            Some(json!({"host": "the.tdc.queue"})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body.to_string()
            .contains("disable the Threat Defense Connector")
    );
    let (status, _) = app
        .api(
            Method::POST,
            "/resumedel",
            Some(json!({"host": "example.com"})),
        )
        .await;
    assert_eq!(status, 409);
    let (status, _) = app.api(Method::GET, "/hoststatus/nowhere.test", None).await;
    assert_eq!(status, 404);
    let (status, _) = app
        .api(Method::POST, "/suspenddel", Some(json!({"host": "a b"})))
        .await;
    assert_eq!(status, 400);

    // The CLI: AsyncOS names and texts.
    let out = app.cli(&["hoststatus", "example.com"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Host mail status for: 'example.com'"),
        "{text}"
    );
    assert!(text.contains("452 4.2.2 mailbox busy"), "{text}");
    let out = app.cli(&["suspenddel", "example.com"]).await;
    assert!(out.status.success(), "{out:?}");
    let out = app.cli(&["hoststatus", "example.com", "--json"]).await;
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(d["held"]["by"].as_str().unwrap().ends_with("(cli)"), "{d}");
    let out = app.cli(&["resumedel", "example.com"]).await;
    assert!(out.status.success(), "{out:?}");
    let out = app.cli(&["resumedel", "example.com"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not suspended"));
}
