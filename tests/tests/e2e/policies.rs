//! Mail policies end to end: matching and splitting, each content-filter action, the quarantine,
//! and the policies API's refusals.

use reqwest::Method;
use serde_json::json;

use crate::harness::*;
use crate::sink::{Script, Sink};

async fn appliance(sink: &Sink) -> Appliance {
    let app = Appliance::start("").await;
    app.accept_domains(&["example.com", "finance.example.com"])
        .await;
    let routes = json!([
        {"domain": "example.com", "hosts": [sink.addr.to_string()]},
        {"domain": "finance.example.com", "hosts": [sink.addr.to_string()]}
    ]);
    assert_eq!(
        app.api(Method::PUT, "/smtp-routes", Some(routes)).await.0,
        200
    );
    app
}

async fn add_policy(app: &Appliance, policy: serde_json::Value) {
    let (status, body) = app
        .api(Method::POST, "/policies/incoming", Some(policy))
        .await;
    assert_eq!(status, 201, "{body}");
}

async fn send(app: &Appliance, to: &[&str], subject: &str, body: &str) -> Reply {
    let (mut c, _) = SmtpClient::greeted(app.smtp).await;
    let msg = format!(
        "From: a@sender.test\r\nMessage-ID: <{subject}@sender.test>\r\nSubject: {subject}\r\n\r\n{body}\r\n"
    );
    c.send_mail("a@sender.test", to, &msg).await
}

#[tokio::test]
async fn recipients_of_different_policies_are_split_into_mids() {
    let sink = Sink::start(Script::default()).await;
    let app = appliance(&sink).await;
    add_policy(
        &app,
        json!({"name": "finance", "recipients": ["@finance.example.com"]}),
    )
    .await;
    let reply = send(
        &app,
        &["u@example.com", "cfo@finance.example.com", "v@example.com"],
        "split",
        "hello",
    )
    .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let logs = app.wait_log("was split creating MID").await;
    let first = logs
        .lines()
        .find(|l| {
            l.contains(
                "matched all recipients for per-recipient policy DEFAULT in the inbound table",
            )
        })
        .unwrap();
    let mid: u64 = first
        .split("MID ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        logs.contains(&format!("MID {mid} was split creating MID ")),
        "{logs}"
    );
    assert!(logs.contains("due to a per-recipient policy finance in the inbound table"));
    let got = sink.wait_messages(2).await;
    let mut rcpts: Vec<Vec<String>> = got.iter().map(|m| m.rcpts.clone()).collect();
    rcpts.sort();
    assert_eq!(
        rcpts,
        [
            vec!["cfo@finance.example.com".to_string()],
            vec!["u@example.com".to_string(), "v@example.com".to_string()]
        ]
    );
}

#[tokio::test]
async fn content_filter_actions() {
    let sink = Sink::start(Script::default()).await;
    let app = appliance(&sink).await;
    let filters = json!([
        {"name": "no_lottery", "conditions": [{"type": "subject", "regex": "lottery"}], "actions": [{"type": "drop"}]},
        {"name": "no_exe", "conditions": [{"type": "body", "regex": "\\.exe\\b"}], "actions": [{"type": "bounce", "reply": "Executables are not accepted here"}]},
        {"name": "hold_invoices", "conditions": [{"type": "subject", "regex": "^invoice"}], "actions": [{"type": "quarantine"}]},
        {"name": "mark_external", "conditions": [{"type": "header", "name": "From", "regex": "sender\\.test"}],
         "actions": [{"type": "tag_subject", "tag": "[EXTERNAL]"}, {"type": "add_header", "name": "X-Rampart-Filter", "value": "external"}]}
    ]);
    let default = json!({"name": "DEFAULT", "content_filters": filters, "tdc": {"mode": "no"}});
    let (status, body) = app
        .api(Method::PUT, "/policies/incoming/DEFAULT", Some(default))
        .await;
    assert_eq!(status, 200, "{body}");

    // drop: accepted, never delivered.
    let dropped = queued_mid(&send(&app, &["u@example.com"], "You won the lottery", "x").await);
    app.wait_log(&format!(
        "MID {dropped} dropped by content filter 'no_lottery' in the inbound table"
    ))
    .await;
    // bounce: the client gets the custom reply, nothing is stored.
    let refused = send(&app, &["u@example.com"], "tool", "run setup.exe now").await;
    assert_eq!(
        refused.line(),
        "550 5.7.1 Executables are not accepted here"
    );
    // quarantine: kept, listed, delivered only when released.
    let held = queued_mid(&send(&app, &["u@example.com"], "Invoice 42", "pay").await);
    app.wait_log(&format!(
        "MID {held} quarantined to \"Policy\" (content filter:hold_invoices)"
    ))
    .await;
    let (_, q) = app.api(Method::GET, "/quarantine", None).await;
    assert_eq!(q[0]["mid"], held);
    assert_eq!(
        q[0]["findings"],
        "content filter hold_invoices; content filter mark_external"
    );
    // tag subject + add header: delivered, modified.
    let tagged = queued_mid(&send(&app, &["u@example.com"], "hello", "x").await);
    let got = sink.wait_messages(1).await;
    let text = got[0].text();
    assert!(
        text.contains("Subject: [EXTERNAL] hello\r\n")
            && text.contains("X-Rampart-Filter: external\r\n"),
        "{text}"
    );
    app.wait_log(&format!("Message finished MID {tagged} done"))
        .await;
    assert_eq!(
        sink.messages().len(),
        1,
        "the dropped and the quarantined message were not delivered"
    );

    let (status, _) = app
        .api(Method::POST, &format!("/quarantine/{held}/release"), None)
        .await;
    assert_eq!(status, 200);
    let got = sink.wait_messages(2).await;
    assert!(
        got[1].text().contains("Subject: [EXTERNAL] Invoice 42")
            || got[1].text().contains("Subject: Invoice 42")
    );
    let (_, q) = app.api(Method::GET, "/quarantine", None).await;
    assert_eq!(q, json!([]));
    let (status, _) = app
        .api(Method::POST, &format!("/quarantine/{held}/release"), None)
        .await;
    assert_eq!(status, 404, "released already");
    let (_, tracked) = app
        .api(Method::GET, &format!("/tracking?mid={dropped}"), None)
        .await;
    let events = tracked[0]["events"].to_string();
    assert!(
        events.contains("verdict: drop (content filter no_lottery)"),
        "{events}"
    );
}

#[tokio::test]
async fn policies_api_refuses_bad_input() {
    let sink = Sink::start(Script::default()).await;
    let app = appliance(&sink).await;
    let cases = [
        (
            json!({"name": "x", "recipients": ["not a pattern"]}),
            400,
            "recipient pattern \"not a pattern\"",
        ),
        (
            json!({"name": "x", "recipients": ["@x.test"], "content_filters": [{"name": "f", "conditions": [{"type": "subject", "regex": "("}], "actions": [{"type": "drop"}]}]}),
            400,
            "content_filters[0] (f): invalid regex",
        ),
        (
            json!({"name": "x", "recipients": ["@x.test"], "tdc": {"mode": "custom", "intake_address": "nope"}}),
            400,
            "custom Message Intake Address must be a valid address",
        ),
        (
            json!({"name": "x", "recipients": ["@x.test"], "bogus": 1}),
            400,
            "unknown field `bogus`",
        ),
        (
            json!({"name": "x", "recipients": ["@x.test"], "antispam": {"mode": "enabled", "positive": {"action": "shred"}}}),
            400,
            "unknown variant `shred`",
        ),
        (
            json!({"name": "x", "recipients": ["@x.test"], "antivirus": {"mode": "enabled", "infected": {"action": "drop", "subject_prefix": "a\r\nBcc: x@y.test"}}}),
            400,
            "subject prefix must be one line",
        ),
        (
            json!({"name": "DEFAULT", "recipients": ["@x.test"]}),
            409,
            "exists already",
        ),
        (
            json!({"name": "x", "recipients": ["@x.test"], "position": 5}),
            400,
            "out of range",
        ),
    ];
    for (body, status, want) in cases {
        let (got, resp) = app
            .api(Method::POST, "/policies/incoming", Some(body.clone()))
            .await;
        assert_eq!(got, status, "{body} -> {resp}");
        assert!(
            resp["error"].as_str().unwrap().contains(want),
            "{body} -> {resp}"
        );
    }
    let (status, resp) = app
        .api(Method::DELETE, "/policies/incoming/DEFAULT", None)
        .await;
    assert_eq!(
        (status, resp["error"].as_str().unwrap()),
        (400, "the DEFAULT policy cannot be deleted")
    );
    let (status, _) = app
        .api(Method::DELETE, "/policies/incoming/nope", None)
        .await;
    assert_eq!(status, 404);
    add_policy(&app, json!({"name": "first", "recipients": ["@a.test"]})).await;
    add_policy(
        &app,
        json!({"name": "zeroth", "recipients": ["@b.test"], "position": 0}),
    )
    .await;
    let (_, list) = app.api(Method::GET, "/policies/incoming", None).await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["zeroth", "first", "DEFAULT"]);
    assert_eq!(list[2]["tdc_label"], "Disabled");
    assert_eq!(list[0]["tdc_label"], "(use default)");
    let (status, _) = app
        .api(Method::DELETE, "/policies/incoming/first", None)
        .await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn remaining_filter_conditions_and_actions() {
    let sink = Sink::start(Script::default()).await;
    let app = appliance(&sink).await;
    let filters = json!([
        {"name": "exe_attachment", "conditions": [{"type": "attachment_name", "regex": "\\.exe$"}], "actions": [{"type": "drop"}]},
        {"name": "pdf_type", "conditions": [{"type": "attachment_type", "regex": "^application/pdf$"}], "actions": [{"type": "quarantine"}]},
        {"name": "big", "conditions": [{"type": "size_at_least", "bytes": 20000}], "actions": [{"type": "tag_subject", "tag": "[BIG]"}]},
        {"name": "trusted_net", "combine": "all",
         "conditions": [{"type": "remote_ip", "networks": ["127.0.0.0/8"]}, {"type": "subject", "regex": "^internal"}],
         "actions": [{"type": "replace_header", "name": "X-Origin", "value": "internal"}, {"type": "skip_remaining"}]},
        {"name": "never_after_skip", "conditions": [{"type": "subject", "regex": "^internal"}], "actions": [{"type": "drop"}]}
    ]);
    let (status, body) = app
        .api(
            Method::PUT,
            "/policies/incoming/DEFAULT",
            Some(json!({"name": "DEFAULT", "content_filters": filters})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let attachment = |name: &str, ctype: &str| {
        format!(
            "From: a@sender.test\r\nSubject: files\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: {ctype}; name={name}\r\n\
Content-Disposition: attachment; filename={name}\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--b--\r\n"
        )
    };
    let (mut c, _) = SmtpClient::greeted(app.smtp).await;
    let exe = queued_mid(
        &c.send_mail(
            "a@sender.test",
            &["u@example.com"],
            &attachment("setup.exe", "application/octet-stream"),
        )
        .await,
    );
    let pdf = queued_mid(
        &c.transaction(
            "a@sender.test",
            &["u@example.com"],
            &attachment("invoice.pdf", "application/pdf"),
        )
        .await,
    );
    let big_body = format!(
        "From: a@sender.test\r\nSubject: large\r\n\r\n{}\r\n",
        "x".repeat(30_000)
    );
    queued_mid(
        &c.transaction("a@sender.test", &["u@example.com"], &big_body)
            .await,
    );
    let internal =
        "From: a@sender.test\r\nSubject: internal memo\r\nX-Origin: forged\r\n\r\nhello\r\n";
    queued_mid(
        &c.transaction("a@sender.test", &["u@example.com"], internal)
            .await,
    );
    app.wait_log(&format!(
        "MID {exe} dropped by content filter 'exe_attachment'"
    ))
    .await;
    app.wait_log(&format!(
        "MID {pdf} quarantined to \"Policy\" (content filter:pdf_type)"
    ))
    .await;
    let got = sink.wait_messages(2).await;
    let texts: Vec<String> = got.iter().map(|m| m.text()).collect();
    assert!(
        texts.iter().any(|t| t.contains("Subject: [BIG] large")),
        "size condition tags the subject"
    );
    let memo = texts
        .iter()
        .find(|t| t.contains("Subject: internal memo"))
        .expect("skip_remaining kept it from the drop");
    assert!(
        memo.contains("X-Origin: internal\r\n") && !memo.contains("X-Origin: forged"),
        "{memo}"
    );
}

#[tokio::test]
async fn a_split_bounced_by_policy_gets_a_dsn_while_the_rest_is_delivered() {
    let sink = Sink::start(Script::default()).await;
    let senders = Sink::start(Script::default()).await;
    let app = appliance(&sink).await;
    let routes = json!([
        {"domain": "example.com", "hosts": [sink.addr.to_string()]},
        {"domain": "finance.example.com", "hosts": [sink.addr.to_string()]},
        {"domain": "sender.test", "hosts": [senders.addr.to_string()]}
    ]);
    assert_eq!(
        app.api(Method::PUT, "/smtp-routes", Some(routes)).await.0,
        200
    );
    let refuse = json!([{"name": "no_finance", "conditions": [{"type": "subject", "regex": "."}],
        "actions": [{"type": "bounce", "reply": "Finance accepts no mail from outside"}]}]);
    add_policy(&app, json!({"name": "finance", "recipients": ["@finance.example.com"], "content_filters": refuse})).await;
    let reply = send(
        &app,
        &["u@example.com", "cfo@finance.example.com"],
        "partly",
        "hello",
    )
    .await;
    assert_eq!(
        reply.code, 250,
        "one split is accepted, so the client gets 250: {reply:?}"
    );
    let delivered = sink.wait_messages(1).await;
    assert_eq!(delivered[0].rcpts, ["u@example.com"]);
    let dsn = senders.wait_messages(1).await;
    let text = dsn[0].text();
    assert!(
        text.contains("Final-Recipient: rfc822; cfo@finance.example.com"),
        "{text}"
    );
    assert!(
        text.contains("550 5.7.1 Finance accepts no mail from outside"),
        "{text}"
    );
    app.wait_log("bounced by content filter 'no_finance' in the inbound table")
        .await;
    assert_eq!(
        sink.messages().len(),
        1,
        "the bounced recipient got nothing"
    );
}
