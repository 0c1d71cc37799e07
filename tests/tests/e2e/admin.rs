//! Administration through the REST API and the CLI against a running appliance: accounts and
//! roles, the audit log, status, deliverynow, tail mail_logs, and the OpenAPI document.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::harness::*;
use crate::sink::{Script, Sink};

/// An appliance delivering example.com to a sink that first answers 451, with a retry delay of
/// an hour: only a `deliverynow` gets the message out within the test.
async fn deferred_delivery() -> (Appliance, Sink, u64) {
    let dest = Sink::start(Script {
        data: ["451 4.3.0 try later".to_owned()].into(),
        ..Script::default()
    })
    .await;
    let app = Appliance::start("").await;
    app.accept_domains(&["example.com"]).await;
    for (path, body) in [
        (
            "/smtp-routes",
            json!([{"domain": "example.com", "hosts": [dest.addr.to_string()]}]),
        ),
        (
            "/bounce-profile",
            json!({"initial_retry_secs": 3600, "max_retry_secs": 3600}),
        ),
    ] {
        let (status, resp) = app.api(Method::PUT, path, Some(body)).await;
        assert_eq!(status, 200, "{path}: {resp}");
    }
    let (mut c, _) = SmtpClient::greeted(app.smtp).await;
    let mid = queued_mid(
        &c.send_mail("a@sender.test", &["u@example.com"], &message("deferred"))
            .await,
    );
    app.wait_log(&format!("MID {mid} to RID 0 - 4.3.0 - 4.3.0 try later"))
        .await;
    (app, dest, mid)
}

#[tokio::test]
async fn api_accounts_roles_and_audit_log() {
    let app = Appliance::start("").await;
    let (status, doc) = app
        .api_as("nobody", "x", Method::GET, "/openapi.json", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc["paths"]["/policies/{direction}/{name}"]["put"].is_object());

    let add = |body| app.api(Method::POST, "/users", Some(body));
    let (status, body) =
        add(json!({"name": "ops", "password": "password1", "role": "operator"})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["role"], "operator");
    assert!(body.get("password").is_none() && body.get("password_hash").is_none());
    for (bad, status, error) in [
        (
            json!({"name": "ops", "password": "password1", "role": "operator"}),
            409,
            "exists already",
        ),
        (
            json!({"name": "x", "password": "password1", "role": "wizard"}),
            400,
            "invalid role",
        ),
        (
            json!({"name": "x", "password": "short", "role": "readonly"}),
            400,
            "at least 8 characters",
        ),
        (
            json!({"name": "bad name", "password": "password1", "role": "readonly"}),
            400,
            "invalid username",
        ),
        (
            json!({"name": "x", "password": "password1", "role": "readonly", "admin": true}),
            400,
            "unknown field `admin`",
        ),
        (
            json!({"name": "x", "role": "readonly"}),
            400,
            "`password` is required",
        ),
    ] {
        let (s, b) = add(bad.clone()).await;
        assert_eq!(s, status, "{bad}: {b}");
        assert!(b["error"].as_str().unwrap().contains(error), "{bad}: {b}");
    }
    add(json!({"name": "viewer", "password": "password1", "role": "readonly"})).await;
    let (_, users) = app.api(Method::GET, "/users", None).await;
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "ops", "viewer"]);

    // Roles: operators operate, read-only accounts look, neither configures.
    let (s, _) = app
        .api_as("ops", "password1", Method::GET, "/status", None)
        .await;
    assert_eq!(s, 200);
    let (s, b) = app
        .api_as("ops", "password1", Method::PUT, "/rat", Some(json!([])))
        .await;
    assert_eq!(s, 403, "{b}");
    let (s, _) = app
        .api_as("ops", "password1", Method::GET, "/users", None)
        .await;
    assert_eq!(s, 403);
    let (s, _) = app
        .api_as(
            "ops",
            "password1",
            Method::POST,
            "/deliverynow",
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, b) = app
        .api_as(
            "viewer",
            "password1",
            Method::POST,
            "/deliverynow",
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 403);
    assert!(b["error"].as_str().unwrap().contains("read-only"));
    let (s, b) = app
        .api(Method::POST, "/deliverynow", Some(json!({"hosts": "x"})))
        .await;
    assert_eq!(s, 400, "{b}");

    // Changing a password through PUT, then removing accounts.
    let (s, _) = app
        .api(
            Method::PUT,
            "/users/ops",
            Some(json!({"password": "password2", "role": "operator"})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = app
        .api_as("ops", "password2", Method::GET, "/status", None)
        .await;
    assert_eq!(s, 200);
    let (s, b) = app
        .api(
            Method::PUT,
            "/users/admin",
            Some(json!({"role": "readonly"})),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    let (s, _) = app.api(Method::DELETE, "/users/admin", None).await;
    assert_eq!(s, 400);
    let (s, _) = app.api(Method::DELETE, "/users/ops", None).await;
    assert_eq!(s, 204);
    let (s, _) = app.api(Method::DELETE, "/users/ops", None).await;
    assert_eq!(s, 404);

    // Every change is in the audit log, with the API user.
    app.accept_domains(&["example.com"]).await;
    let (_, log) = app.api(Method::GET, "/audit?limit=100", None).await;
    let entries = log.as_array().unwrap();
    let newest = &entries[0];
    assert_eq!(newest["user"], "admin");
    assert_eq!(newest["source"], "api");
    assert_eq!(newest["changes"], json!(["PUT /api/v1/rat"]));
    let all: Vec<String> = entries
        .iter()
        .flat_map(|e| {
            e["changes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_owned())
        })
        .collect();
    assert!(all.contains(&"Users: saved account ops with role operator".to_owned()));
    assert!(all.contains(&"Users: removed account ops".to_owned()));
    let (s, _) = app.api(Method::GET, "/audit?limit=many", None).await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn api_status_and_deliverynow() {
    let (app, dest, mid) = deferred_delivery().await;
    let (_, status) = app.api(Method::GET, "/status", None).await;
    assert_eq!(status["counters"]["messages_received"], 1);
    assert_eq!(status["gauges"]["active_recipients"], 1);
    assert_eq!(status["tdc"]["enabled"], false);
    assert!(status["uptime_secs"].as_i64().unwrap() >= 0);
    assert!(status["started_at"].is_string());
    let (_, found) = app.api(Method::GET, "/tracking?since=3600", None).await;
    assert_eq!(found[0]["mid"], mid);
    let (s, _) = app.api(Method::GET, "/tracking?since=-5", None).await;
    assert_eq!(s, 400);
    let out = app.cli(&["tracking", "--since", "1h", "--json"]).await;
    let cli: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli[0]["mid"], mid);
    let out = app.cli(&["tracking", "--since", "soon"]).await;
    assert!(!out.status.success());
    let (s, body) = app
        .api(
            Method::POST,
            "/deliverynow",
            Some(json!({"host": "example.com"})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["rescheduled_recipients"], 1);
    let got = dest.wait_messages(1).await;
    assert!(got[0].text().contains("Subject: deferred"));
    app.wait_log(&format!("Message finished MID {mid} done"))
        .await;
}

#[tokio::test]
async fn cli_status_deliverynow_and_tail() {
    let (app, dest, mid) = deferred_delivery().await;
    let out = app.cli(&["status"]).await;
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("Status as of:"), "{text}");
    assert!(text.contains("Threat Defense Connector:      Disabled"));
    assert!(
        text.contains(&format!("  {:<30}{:>12}\n", "Messages Received", 1)),
        "{text}"
    );
    assert!(
        text.contains(&format!("  {:<30}{:>12}\n", "Active Recipients", 1)),
        "{text}"
    );
    let out = app.cli(&["status", "--json"]).await;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["gauges"]["active_recipients"], 1);

    // tail: the last lines now, then what the appliance writes next.
    let out = app
        .cli(&["tail", "mail_logs", "-n", "3", "--no-follow"])
        .await;
    let last: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let logs = app.mail_logs();
    let expected: Vec<&str> = logs
        .lines()
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    assert_eq!(last, expected);
    let mut follow = tokio::process::Command::new(binary())
        .arg("--config")
        .arg(&app.config_path)
        .args(["tail", "mail_logs", "-n", "0"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();

    // deliverynow from another process: the running appliance notices within a second.
    let out = app.cli(&["deliverynow", "example.com", "--json"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["rescheduled_recipients"], 1);
    dest.wait_messages(1).await;
    let done = format!("Message finished MID {mid} done");
    let seen = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.ends_with(&done) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(seen, Ok(true), "tail did not follow the log to {done:?}");
    let out = app.cli(&["tail", "secure_logs"]).await;
    assert!(!out.status.success());
}

#[tokio::test]
async fn cli_userconfig_and_auditlog() {
    let app = Appliance::start("").await;
    let out = tokio::process::Command::new(binary())
        .arg("--config")
        .arg(&app.config_path)
        .args(["userconfig", "add", "bob", "--role", "operator"])
        .env("RAMPART_USER_PASSWORD", "password1")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (s, _) = app
        .api_as("bob", "password1", Method::GET, "/status", None)
        .await;
    assert_eq!(s, 200);
    let out = app.cli(&["userconfig", "--json"]).await;
    let users: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        users,
        json!([{"name": "admin", "role": "admin"}, {"name": "bob", "role": "operator"}])
    );
    let out = app.cli(&["userconfig", "delete", "admin"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("last administrator"));
    let out = app.cli(&["userconfig", "role", "bob", "readonly"]).await;
    assert!(out.status.success());
    let out = app
        .cli(&["tdcconfig", "--intake-address", "j@beta.cmd.cisco.com"])
        .await;
    assert!(out.status.success());

    let out = app.cli(&["auditlog", "--json"]).await;
    let log: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let changes: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["changes"][0].as_str().unwrap())
        .collect();
    assert_eq!(
        changes,
        [
            "rampart --config ".to_owned()
                + app.config_path.to_str().unwrap()
                + " tdcconfig --intake-address j@beta.cmd.cisco.com",
            "Users: saved account bob with role readonly".to_owned(),
            "Users: saved account bob with role operator".to_owned(),
        ]
    );
    assert!(log.as_array().unwrap().iter().all(|e| e["source"] == "cli"));
    let out = app.cli(&["auditlog"]).await;
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("    Users: saved account bob with role readonly")
    );
}
