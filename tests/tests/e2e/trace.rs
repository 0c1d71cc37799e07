//! Trace (*System Administration > Trace*, `POST /api/v1/trace`, `rampart trace`): what the
//! appliance would do, explained, with nothing sent, stored or logged.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;
use crate::tdc::{self, put};

async fn trace(app: &Appliance, body: Value) -> (u16, Value) {
    app.api(Method::POST, "/trace", Some(body)).await
}

/// The HAT, the RAT, the policy of each recipient and the connector's choice with its reason.
#[tokio::test]
async fn trace_explains_groups_policies_and_the_journal_choice() {
    let tdc::Setup { app, .. } = tdc::setup("127.0.0.1:9", "").await;
    let (status, body) = app
        .api(
            Method::POST,
            "/policies/incoming",
            Some(json!({"name": "hr", "recipients": ["@hr.example.com"], "tdc": {"mode": "no"}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let log_before = app.mail_logs();

    let (status, r) = trace(
        &app,
        json!({"client_ip": "127.0.0.1", "helo": "mx.sender.test", "sender": "a@sender.test",
               "recipients": ["u@example.com", "p@hr.example.com", "x@other.test"]}),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["sender_group"], "LOOPBACK");
    assert_eq!(r["matched"], "127.0.0.0/8");
    assert_eq!(r["mail_flow_policy"], "ACCEPT");
    assert_eq!(r["connection"], "accepted");
    assert_eq!(r["reverse_dns"]["verified"], true);
    let rcpts = r["recipients"].as_array().unwrap();
    assert_eq!(
        rcpts[0],
        json!({"recipient": "u@example.com", "rat": "accept", "policy": "DEFAULT",
               "journal": {"intake_address": "journal@intake.test", "reason": "DEFAULT: global → journal@intake.test"}})
    );
    assert_eq!(
        rcpts[1],
        json!({"recipient": "p@hr.example.com", "rat": "accept", "policy": "hr",
               "journal": {"intake_address": null, "reason": "policy hr: No"}})
    );
    assert_eq!(rcpts[2]["rat"], "reject");
    assert_eq!(rcpts[2]["policy"], Value::Null);
    let splits = r["splits"].as_array().unwrap();
    assert_eq!(splits.len(), 2, "one MID per policy: {r}");
    assert_eq!(splits[0]["policy"], "DEFAULT");
    assert_eq!(splits[1]["recipients"], json!(["p@hr.example.com"]));
    assert_eq!(splits[0]["verdict"], Value::Null, "no message given");
    assert!(
        r["notes"][0]
            .as_str()
            .unwrap()
            .starts_with("No message given")
    );

    // With a message: content filters run, a clean message is journaled, one that is not is not.
    let filters = json!([{"name": "hold_invoices", "conditions": [{"type": "subject", "regex": "^invoice"}],
                           "actions": [{"type": "quarantine"}]}]);
    put(
        &app,
        "/policies/incoming/DEFAULT",
        json!({"name": "DEFAULT", "content_filters": filters, "tdc": {"mode": "global"}}),
    )
    .await;
    let with = |subject: &str| {
        json!({"client_ip": "127.0.0.1", "sender": "a@sender.test", "recipients": ["u@example.com"],
               "message": format!("From: a@sender.test\nSubject: {subject}\n\nhello\n")})
    };
    let (_, clean) = trace(&app, with("lunch")).await;
    let split = &clean["splits"][0];
    assert_eq!(split["verdict"]["action"], "deliver", "{clean}");
    assert_eq!(split["verdict"]["clean"], true);
    assert_eq!(split["journal"]["intake_address"], "journal@intake.test");
    assert_eq!(clean["reply"], "250 2.0.0 Ok: queued");
    let (_, held) = trace(&app, with("Invoice 42")).await;
    let split = &held["splits"][0];
    assert_eq!(split["verdict"]["action"], "quarantine", "{held}");
    assert_eq!(split["verdict"]["decided_by"], "hold_invoices");
    assert_eq!(split["journal"]["intake_address"], Value::Null);
    assert_eq!(
        split["journal"]["reason"],
        "DEFAULT: global → journal@intake.test; not journaled: the message is not clean (content filter hold_invoices)"
    );
    assert_eq!(held["recipients"][0]["journal"], split["journal"]);

    // The connector switched off.
    put(
        &app,
        "/tdc",
        json!({"enabled": false, "intake_address": "journal@intake.test"}),
    )
    .await;
    let (_, off) = trace(&app, with("lunch")).await;
    assert_eq!(
        off["splits"][0]["journal"],
        json!({"intake_address": null, "reason": "connector disabled"})
    );

    // Nothing was stored, sent or logged.
    assert!(app.store().await.mids().await.unwrap().is_empty());
    let log_after = app.mail_logs();
    assert!(
        !log_after[log_before.len()..].contains("ICID"),
        "a trace opens no session: {log_after}"
    );
}

/// A refused client, a relaying one, and input that is not what it should be.
#[tokio::test]
async fn trace_shows_refusals_and_relaying_and_refuses_bad_input() {
    let app = Appliance::start("").await;
    let hat = json!([
        {"name": "RELAYLIST", "hosts": ["127.0.0.1"], "policy": "RELAY"},
        {"name": "BLOCKED", "hosts": ["ALL"], "policy": "REJECT"},
    ]);
    put(&app, "/hat", hat).await;
    let (_, r) = trace(
        &app,
        json!({"client_ip": "192.0.2.7", "recipients": ["u@example.com"]}),
    )
    .await;
    assert_eq!(r["sender_group"], "BLOCKED");
    assert_eq!(r["mail_flow_policy"], "REJECT");
    assert_eq!(r["connection"], "refused: 554 5.7.1 Access denied");
    assert_eq!(r["recipients"], json!([]));
    assert_eq!(
        r["reverse_dns"]["host"],
        Value::Null,
        "192.0.2.7 has no name here"
    );

    let (_, r) = trace(
        &app,
        json!({"client_ip": "127.0.0.1", "recipients": ["someone@elsewhere.test"]}),
    )
    .await;
    assert_eq!(r["direction"], "outgoing");
    assert_eq!(r["recipients"][0]["rat"], "relay");
    assert_eq!(r["recipients"][0]["policy"], "DEFAULT");
    assert_eq!(
        r["recipients"][0]["journal"]["reason"],
        "outgoing mail is not journaled"
    );

    for (body, error) in [
        (
            json!({"client_ip": "nope", "recipients": ["u@example.com"]}),
            "client_ip: \"nope\" is not an IP address",
        ),
        (
            json!({"client_ip": "127.0.0.1", "recipients": []}),
            "recipients: give at least one recipient",
        ),
        (
            json!({"client_ip": "127.0.0.1", "recipients": ["not an address"]}),
            "recipients: \"not an address\" is not a valid address",
        ),
        (
            json!({"client_ip": "127.0.0.1", "sender": "a@@b", "recipients": ["u@example.com"]}),
            "sender: \"a@@b\" is not a valid address",
        ),
        (
            json!({"client_ip": "127.0.0.1", "recipients": ["u@example.com"], "colour": "red"}),
            "unknown field `colour`",
        ),
    ] {
        let (status, r) = trace(&app, body).await;
        assert_eq!(status, 400, "{r}");
        assert!(r["error"].as_str().unwrap().contains(error), "{r}");
    }
}

/// `rampart trace` says the same as the API, as text or JSON.
#[tokio::test]
async fn trace_from_the_command_line() {
    let tdc::Setup { app, .. } = tdc::setup("127.0.0.1:9", "").await;
    let message = app.dir.join("message.eml");
    std::fs::write(&message, "From: a@sender.test\nSubject: hi\n\nhello\n").unwrap();
    let out = app
        .cli(&[
            "trace",
            "--client-ip",
            "127.0.0.1",
            "--from",
            "a@sender.test",
            "--to",
            "u@example.com",
            "--message",
            message.to_str().unwrap(),
        ])
        .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("Sender group LOOPBACK (match 127.0.0.0/8), mail flow policy ACCEPT"),
        "{text}"
    );
    assert!(
        text.contains("Recipient u@example.com: RAT accept, incoming policy DEFAULT"),
        "{text}"
    );
    assert!(text.contains("  Threat Defense Connector: journaled to journal@intake.test — DEFAULT: global → journal@intake.test"), "{text}");
    let out = app
        .cli(&[
            "trace",
            "--client-ip",
            "127.0.0.1",
            "--to",
            "u@example.com",
            "--json",
        ])
        .await;
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (_, api) = trace(
        &app,
        json!({"client_ip": "127.0.0.1", "recipients": ["u@example.com"]}),
    )
    .await;
    assert_eq!(json, api);
    let out = app
        .cli(&["trace", "--client-ip", "x", "--to", "u@example.com"])
        .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("client_ip: \"x\" is not an IP address"));
}
