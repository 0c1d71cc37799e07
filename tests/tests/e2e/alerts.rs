//! Alerts end to end: the Threat Defense intake goes down and an email and a webhook say so,
//! once while it lasts; a later condition, *Cleared*, the test alert, the page, API and CLI.

use std::sync::{Arc, Mutex};

use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::*;
use crate::tdc;

/// A webhook receiver: keeps each POSTed JSON body and answers 204.
struct Hook {
    url: String,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Hook {
    async fn start() -> Hook {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let bodies: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
        let kept = bodies.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let n = s.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).to_string();
                        if let Some((head, body)) = text.split_once("\r\n\r\n") {
                            let len: usize = head
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse().unwrap_or(0))
                                })
                                .unwrap_or(0);
                            if body.len() >= len {
                                kept.lock()
                                    .unwrap()
                                    .push(serde_json::from_str(body).unwrap_or_default());
                                let _ = s
                                    .write_all(
                                        b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
                                    )
                                    .await;
                                return;
                            }
                        }
                    }
                });
            }
        });
        Hook { url, bodies }
    }

    fn keys(&self) -> Vec<String> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| b["key"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

async fn log(app: &Appliance) -> Vec<serde_json::Value> {
    let (status, body) = app.api(Method::GET, "/alert-log?limit=100", None).await;
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

/// ops@example.com takes Warning and up, the webhook Critical; the disk check is off and the
/// queue check at `queue_threshold`.
async fn put_alerts(app: &Appliance, hook: &Hook, queue_threshold: u64) {
    let (status, body) = app
        .api(
            Method::PUT,
            "/alerts",
            Some(json!({
                "recipients": [{"address": "ops@example.com", "severity": "warning"}],
                "webhook_url": hook.url, "webhook_severity": "critical",
                "repeat_mins": 60, "queue_threshold": queue_threshold, "disk_free_percent": 0,
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

fn keys(log: &[serde_json::Value]) -> Vec<&str> {
    log.iter().map(|a| a["key"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn an_unreachable_intake_alerts_once_by_email_and_webhook_then_clears() {
    // The intake's route points at a port nobody listens on.
    let closed = format!("127.0.0.1:{}", free_port());
    let hook = Hook::start().await;
    let tdc::Setup { app, dest, .. } = tdc::setup(&closed, "\n[alerts]\ncheck_secs = 1\n").await;

    // Bad settings are refused with the entry named.
    let (status, body) = app
        .api(
            Method::PUT,
            "/alerts",
            Some(json!({"recipients": [{"address": "ops at example.com"}]})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("alerts.recipients[0]"), "{body}");
    put_alerts(&app, &hook, 0).await;

    // A clean message: its journal copy cannot reach the intake.
    let (mut c, _) = SmtpClient::greeted(app.smtp).await;
    queued_mid(
        &c.send_mail("a@sender.test", &["u@example.com"], &message("hello"))
            .await,
    );
    c.cmd("QUIT").await;

    // The alert email arrives at the recipient's destination, the webhook gets the JSON.
    let mail = dest
        .wait_messages(2)
        .await
        .into_iter()
        .find(|m| m.rcpts == ["ops@example.com"])
        .expect("the alert email");
    let text = String::from_utf8_lossy(&mail.data).to_string();
    assert!(
        text.contains("Critical: The Threat Defense intake is unreachable"),
        "{text}"
    );
    assert!(text.contains("Auto-Submitted: auto-generated"), "{text}");
    wait_until("the webhook to be called", || async {
        hook.keys().contains(&"tdc_intake".to_owned())
    })
    .await;
    let body = hook.bodies.lock().unwrap()[0].clone();
    assert_eq!(body["severity"], "critical");
    assert_eq!(body["hostname"], "rampart.test");

    // A second condition, later: the queue threshold. The intake alert was not repeated
    // meanwhile, although every check since saw it.
    dest.set(|s| {
        s.rcpt
            .insert("slow@example.com".into(), "451 4.3.0 later".into());
    });
    let (mut c, _) = SmtpClient::greeted(app.smtp).await;
    queued_mid(
        &c.send_mail("a@sender.test", &["slow@example.com"], &message("slow"))
            .await,
    );
    c.cmd("QUIT").await;
    put_alerts(&app, &hook, 1).await;
    wait_until("the queue alert", || async {
        keys(&log(&app).await).contains(&"queue")
    })
    .await;
    let entries = log(&app).await;
    let intake = entries.iter().filter(|a| a["key"] == "tdc_intake").count();
    assert_eq!(intake, 1, "sent once while it lasts: {entries:?}");

    // The intake comes back: Cleared (Info, which nobody here takes).
    let (status, body) = app
        .api(
            Method::PUT,
            "/smtp-routes",
            Some(json!([
                {"domain": ".example.com", "hosts": [dest.addr.to_string()]},
                {"domain": "example.com", "hosts": [dest.addr.to_string()]},
                {"domain": "intake.test", "hosts": [dest.addr.to_string()]},
            ])),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // A journal copy still queued is retried now; by this time both copies may also have had
    // their one retry (Cisco's table) and failed, so a new clean message makes sure one copy
    // reaches the intake.
    app.api(
        Method::POST,
        "/deliverynow",
        Some(json!({"host": "the.tdc.queue"})),
    )
    .await;
    let (mut c, _) = SmtpClient::greeted(app.smtp).await;
    queued_mid(
        &c.send_mail("a@sender.test", &["u@example.com"], &message("back"))
            .await,
    );
    c.cmd("QUIT").await;
    wait_until("the intake alert to clear", || async {
        log(&app).await.iter().any(|a| {
            a["key"] == "tdc_intake"
                && a["severity"] == "info"
                && a["subject"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("Cleared: "))
        })
    })
    .await;

    // Send Test Alert: every recipient and the webhook.
    let (status, body) = app.api(Method::POST, "/alerts/test", None).await;
    assert_eq!(status, 200, "{body}");
    let sent = body["sent_to"].as_str().unwrap();
    assert!(sent.contains("email to ops@example.com"), "{sent}");
    assert!(sent.contains("webhook (HTTP 204)"), "{sent}");
    // The page and the CLI show the log.
    let page = app.page("/admin/alerts").await;
    assert!(
        page.contains("The Threat Defense intake is unreachable"),
        "{page}"
    );
    assert!(page.contains("ops@example.com warning"), "{page}");
    let out = app.cli(&["alertconfig"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ops@example.com"), "{text}");
    assert!(text.contains("Test alert"), "{text}");
    let out = app.cli(&["alertconfig", "--json"]).await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["settings"]["queue_threshold"], 1);
}
