//! Reporting end to end (Monitor > Overview): mail sent over SMTP shows up in the report's
//! categories, journaling outcomes and top lists, in the API (JSON and CSV) and the CLI.

use reqwest::Method;
use serde_json::json;

use crate::harness::*;
use crate::tdc;

async fn report(app: &Appliance, query: &str) -> serde_json::Value {
    let (status, body) = app
        .api(Method::GET, &format!("/reports/overview?{query}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn mail_through_the_gateway_is_reported_by_category_outcome_and_top_list() {
    // The intake refuses the finance policy's custom intake address: its copy fails.
    let (tdc::Setup { app, .. }, _intake) = tdc::setup_with_refused_finance(json!([
        {"name": "no_lottery", "conditions": [{"type": "subject", "regex": "lottery"}],
         "actions": [{"type": "drop"}]}
    ]))
    .await;

    let (mut c, _) = SmtpClient::greeted(app.smtp).await;
    for i in 0..3 {
        queued_mid(
            &c.send_mail(
                "a@Sender.test",
                &["u@example.com"],
                &message(&format!("hello {i}")),
            )
            .await,
        );
    }
    queued_mid(
        &c.send_mail(
            "b@other.test",
            &["cfo@finance.example.com"],
            &message("ledger"),
        )
        .await,
    );
    queued_mid(
        &c.send_mail(
            "b@other.test",
            &["cfo@finance.example.com"],
            &message("lottery win"),
        )
        .await,
    );
    c.cmd("QUIT").await;

    // Three copies journaled, the finance one refused by the intake; four recipients delivered.
    wait_until("the journal copies and deliveries to finish", || async {
        let t = report(&app, "range=hour").await["totals"].clone();
        t["journal_delivered"] == 3 && t["journal_failed"] == 1 && t["delivered"] == 4
    })
    .await;
    let r = report(&app, "range=hour&top=1").await;
    let t = &r["totals"];
    assert_eq!(t["in_clean"], 4, "{r}");
    assert_eq!(t["in_filtered"], 1, "the dropped lottery message: {r}");
    assert_eq!(t["out_clean"], 0);
    assert_eq!(r["range"], "hour");
    assert_eq!(r["buckets"].as_array().unwrap().len(), 12);
    assert_eq!(r["bucket_seconds"], 300);
    // Top lists: lower-cased domains, the biggest first, the rest under others.
    assert_eq!(
        r["sender_domains"],
        json!({"entries": [{"key": "sender.test", "count": 3}], "others": 2})
    );
    assert_eq!(
        r["sender_ips"]["entries"][0],
        json!({"key": "127.0.0.1", "count": 5})
    );
    assert_eq!(
        r["threats"]["entries"][0],
        json!({"key": "Content filter: no_lottery", "count": 1})
    );
    let r = report(&app, "range=month").await;
    assert_eq!(r["buckets"].as_array().unwrap().len(), 30);
    assert_eq!(r["totals"]["in_clean"], 4);

    // CSV through the API.
    let resp = reqwest::Client::new()
        .get(app.url("/api/v1/reports/overview.csv?range=day&table=recipients"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("rampart-recipients-day.csv")
    );
    assert_eq!(
        resp.text().await.unwrap(),
        "recipient,count\nu@example.com,3\ncfo@finance.example.com,2\n"
    );

    // Bad input gets a clear 400.
    let (status, body) = app
        .api(Method::GET, "/reports/overview?range=year", None)
        .await;
    assert_eq!(status, 400);
    assert!(
        body.to_string().contains("hour, day, week, month"),
        "{body}"
    );
    let (status, _) = app.api(Method::GET, "/reports/overview?top=0", None).await;
    assert_eq!(status, 400);

    // The CLI prints the same report.
    let out = app.cli(&["report", "--range", "hour"]).await;
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Report for the last hour:"), "{text}");
    assert!(text.contains("Top senders by domain"), "{text}");
    assert!(text.contains("sender.test"), "{text}");
    let out = app
        .cli(&["report", "--range", "day", "--csv", "threats"])
        .await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "threat,count\nContent filter: no_lottery,1\n"
    );
    let out = app.cli(&["report", "--range", "year"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("hour, day, week, month"));
}
