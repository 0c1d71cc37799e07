//! Message Tracking's advanced search end to end: by Message-ID, client IP, policy and event,
//! paged with the total in `X-Total-Count`, in the API, the web page and the CLI.

use serde_json::json;

use crate::harness::*;
use crate::tdc;

/// GET /api/v1/tracking with `query`: status, MIDs found, `X-Total-Count`.
async fn search(app: &Appliance, query: &str) -> (u16, Vec<u64>, Option<u64>, String) {
    let resp = reqwest::Client::new()
        .get(app.url(&format!("/api/v1/tracking?{query}")))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let total = resp
        .headers()
        .get("x-total-count")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let text = resp.text().await.unwrap();
    let mids = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|m| m["mid"].as_u64())
        .collect();
    (status, mids, total, text)
}

#[tokio::test]
async fn tracking_finds_messages_by_message_id_ip_policy_and_event_and_pages_with_a_total() {
    // The intake refuses the finance policy's custom intake address: its copies fail.
    let (tdc::Setup { app, .. }, _intake) = tdc::setup_with_refused_finance(json!([])).await;

    let (mut c, _) = SmtpClient::greeted(app.smtp).await;
    let alpha = queued_mid(
        &c.send_mail(
            "a@sender.test",
            &["u@example.com"],
            "From: a@sender.test\r\nMessage-ID: <alpha-123@sender.test>\r\nSubject: alpha\r\n\r\nhi\r\n",
        )
        .await,
    );
    let finance = queued_mid(
        &c.send_mail(
            "b@sender.test",
            &["cfo@finance.example.com"],
            &message("ledger"),
        )
        .await,
    );
    let mut bulk = Vec::new();
    for i in 0..30 {
        bulk.push(queued_mid(
            &c.send_mail(
                "a@sender.test",
                &["u@example.com"],
                &message(&format!("bulk {i}")),
            )
            .await,
        ));
    }
    c.cmd("QUIT").await;
    wait_until("the finance copy to fail", || async {
        search(&app, "event=journal_failed").await.1 == vec![finance]
    })
    .await;

    assert_eq!(search(&app, "message_id=alpha-123").await.1, vec![alpha]);
    assert_eq!(search(&app, "policy=FINANCE").await.1, vec![finance]);
    let (_, journaled, _, _) = search(&app, "event=journaled&limit=1000").await;
    assert!(journaled.contains(&alpha) && !journaled.contains(&finance));
    assert_eq!(search(&app, "remote_ip=127.0.0.1").await.2, Some(32));
    assert_eq!(
        search(&app, "remote_ip=192.0.2.1").await.1,
        Vec::<u64>::new()
    );

    // Paging: newest first, the total in a header.
    let (_, first, total, _) = search(&app, "subject=bulk&limit=20").await;
    let (_, second, _, _) = search(&app, "subject=bulk&limit=20&offset=20").await;
    assert_eq!(total, Some(30));
    assert_eq!(first.len(), 20);
    assert_eq!(second.len(), 10);
    let mut all: Vec<u64> = first.into_iter().chain(second).collect();
    assert!(all.windows(2).all(|w| w[0] > w[1]), "newest first: {all:?}");
    all.sort_unstable();
    bulk.sort_unstable();
    assert_eq!(all, bulk);

    // Bad input gets a clear 400.
    let (status, _, _, body) = search(&app, "event=exploded").await;
    assert_eq!(status, 400);
    assert!(body.contains("journal_failed"), "{body}");
    let (status, _, _, body) = search(&app, "remote_ip=300.1.2.3").await;
    assert_eq!(status, 400);
    assert!(body.contains("not an IP address"), "{body}");

    // The CLI searches the same way.
    let out = app
        .cli(&["tracking", "--event", "journal_failed", "--json"])
        .await;
    assert!(out.status.success(), "{out:?}");
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["mid"], finance);
    let out = app
        .cli(&["tracking", "--subject", "bulk", "--limit", "20"])
        .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Messages 1-20 of 30 (newest first); --offset 20 for more."),
        "{text}"
    );
    let out = app.cli(&["tracking", "--event", "nope"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("journal_failed"));
}
