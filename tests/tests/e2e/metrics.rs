//! `GET /metrics` end to end: what Prometheus scrapes after real mail went through a real clamd,
//! a destination sink, a destination that is down and the Threat Defense intake.

use reqwest::Method;
use serde_json::json;

use crate::engines::{EICAR_BASE64, start_clamd};
use crate::harness::*;
use crate::sink::{Script, Sink};
use crate::tdc::{self, put};

/// The value of one series (`name{labels}` exactly as written), if the scrape has it.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

async fn scrape_as(app: &Appliance, user: &str, password: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(app.url("/metrics"))
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap()
}

async fn scrape(app: &Appliance) -> String {
    let resp = scrape_as(app, "admin", ADMIN_PASSWORD).await;
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_mail_destinations_journal_copies_and_scans() {
    let clamd = start_clamd("10M").await;
    let intake = Sink::start(Script::default()).await;
    let config = format!(
        "\n[antivirus]\nengine = \"clamav\"\naddress = \"{}\"\n",
        clamd.addr
    );
    let tdc::Setup { app, dest, .. } = tdc::setup(&intake.addr.to_string(), &config).await;
    // down.example.com goes to a port nobody listens on.
    let (_, routes) = app.api(Method::GET, "/smtp-routes", None).await;
    let mut routes = routes.as_array().unwrap().clone();
    routes.insert(
        0,
        json!({"domain": "down.example.com", "hosts": ["127.0.0.1:1"]}),
    );
    put(&app, "/smtp-routes", json!(routes)).await;

    // Two clean messages (one for each destination) and one infected.
    for (to, body) in [
        ("u@example.com", "clean".to_owned()),
        ("x@down.example.com", "clean too".to_owned()),
    ] {
        let (mut c, _) = SmtpClient::greeted(app.smtp).await;
        queued_mid(&c.send_mail("a@sender.test", &[to], &message(&body)).await);
        c.cmd("QUIT").await;
    }
    let infected = format!(
        "From: a@sender.test\r\nTo: u@example.com\r\nSubject: invoice\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n\
         See attached.\r\n--b1\r\nContent-Type: application/octet-stream; name=\"e.com\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{EICAR_BASE64}\r\n--b1--\r\n"
    );
    let (mut c, _) = SmtpClient::greeted(app.smtp).await;
    let reply = c
        .send_mail("a@sender.test", &["u@example.com"], &infected)
        .await;
    c.cmd("QUIT").await;
    assert_eq!(
        reply.code, 250,
        "infected mail is dropped after 250: {reply:?}"
    );

    dest.wait_messages(1).await;
    intake.wait_messages(2).await;
    wait_until(
        "the journal copies and the down host to show in /metrics",
        || async {
            let text = scrape(&app).await;
            value(&text, "rampart_journal_copies_total{outcome=\"delivered\"}") == Some(2.0)
                && value(&text, "rampart_queue_host_down{host=\"down.example.com\"}") == Some(1.0)
                && value(
                    &text,
                    "rampart_queue_recipients_total{host=\"example.com\",outcome=\"delivered\"}",
                ) == Some(1.0)
        },
    )
    .await;

    let resp = scrape_as(&app, "admin", ADMIN_PASSWORD).await;
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = resp.text().await.unwrap();
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    let v = |series: &str| value(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));

    assert_eq!(v("rampart_messages_received_total"), 3.0);
    assert_eq!(v("rampart_messages_virus_total"), 1.0);
    let default_policy: f64 = text
        .lines()
        .filter(|l| {
            l.starts_with(
                "rampart_policy_messages_total{direction=\"incoming\",policy=\"DEFAULT\",",
            )
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(default_policy, 3.0, "every MID under DEFAULT:\n{text}");
    assert_eq!(
        v(
            "rampart_policy_messages_total{direction=\"incoming\",policy=\"DEFAULT\",verdict=\"deliver\"}"
        ),
        2.0
    );
    assert_eq!(
        v("rampart_queue_active_recipients{host=\"down.example.com\"}"),
        1.0
    );
    assert_eq!(
        v("rampart_queue_active_recipients{host=\"example.com\"}"),
        0.0
    );
    assert_eq!(v("rampart_queue_host_down{host=\"example.com\"}"), 0.0);
    assert_eq!(v("rampart_active_recipients"), 1.0);
    assert_eq!(v("rampart_recipients_total{outcome=\"delivered\"}"), 1.0);
    assert_eq!(v("rampart_tdc_enabled"), 1.0);
    assert_eq!(v("rampart_tdc_queue_copies"), 0.0);
    assert_eq!(
        v("rampart_queue_recipients_total{host=\"the.tdc.queue\",outcome=\"delivered\"}"),
        2.0
    );
    assert_eq!(v("rampart_engine_up{engine=\"clamav\"}"), 1.0);
    assert_eq!(
        v("rampart_scans_total{engine=\"clamav\",outcome=\"negative\"}"),
        2.0
    );
    assert_eq!(
        v("rampart_scans_total{engine=\"clamav\",outcome=\"positive\"}"),
        1.0
    );
    assert_eq!(
        v("rampart_scan_duration_seconds_count{engine=\"clamav\"}"),
        3.0
    );
    assert_eq!(
        v("rampart_scan_duration_seconds_bucket{engine=\"clamav\",le=\"+Inf\"}"),
        3.0
    );
    assert!(v("rampart_resident_memory_bytes") > 1_000_000.0);
    assert!(v("rampart_open_fds") > 3.0);
    assert!(text.contains("rampart_build_info{version=\""), "{text}");
    // No engine configured, no series for it.
    assert!(!text.contains("engine=\"rspamd\""), "{text}");

    // Any role may scrape; nobody without a password.
    let (status, _) = app
        .api(
            Method::POST,
            "/users",
            Some(json!({"name": "prometheus", "password": "scrape-password", "role": "readonly"})),
        )
        .await;
    assert_eq!(status, 201, "account created");
    assert_eq!(
        scrape_as(&app, "prometheus", "scrape-password")
            .await
            .status(),
        200
    );
    assert_eq!(scrape_as(&app, "prometheus", "wrong").await.status(), 401);
    let anonymous = reqwest::get(app.url("/metrics")).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers().contains_key("www-authenticate"));
}
