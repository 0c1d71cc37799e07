//! Anti-Spam and Anti-Virus end to end (SPEC §3a): the appliance scans with a real rspamd and a
//! real clamd started by the test, applies each policy's actions, and journals only clean mail.

use reqwest::Method;
use serde_json::{Value, json};

use crate::engines::{
    Daemon, EICAR_BASE64, EICAR_ZIP_BASE64, GTUBE, SUSPECT_SUBJECT, start_clamd, start_rspamd,
};
use crate::harness::*;
use crate::sink::{Received, Script, Sink};
use crate::tdc::{self, put};

struct Setup {
    app: Appliance,
    dest: Sink,
    senders: Sink,
    intake: Sink,
    _engines: Vec<Daemon>,
}

/// An appliance scanning with fresh engines (plus `extra` keys for `[antispam]` and
/// `[antivirus]`), set up as for the connector's tests (`tdc::setup`: example.com and its
/// subdomains routed to `dest`, DSNs to `senders`, DEFAULT journaling to `intake`).
async fn setup(spam_extra: &str, virus_extra: &str) -> Setup {
    let (rspamd, clamd) = tokio::join!(start_rspamd(), start_clamd("10M"));
    let config = format!(
        "[antispam]\nengine = \"rspamd\"\nurl = \"http://{}\"\n{spam_extra}\n[antivirus]\nengine = \"clamav\"\naddress = \"{}\"\n{virus_extra}\n",
        rspamd.addr, clamd.addr
    );
    with_config(&config, vec![rspamd, clamd]).await
}

/// `config`: the engines' sections of the bootstrap file.
async fn with_config(config: &str, engines: Vec<Daemon>) -> Setup {
    let intake = Sink::start(Script::default()).await;
    let tdc::Setup { app, dest, senders } =
        tdc::setup(&intake.addr.to_string(), &format!("\n{config}")).await;
    Setup {
        app,
        dest,
        senders,
        intake,
        _engines: engines,
    }
}

/// Sets DEFAULT's Anti-Spam or Anti-Virus setting (the rest of the policy stays).
async fn default_service(app: &Appliance, service: &str, setting: Value) {
    put(
        app,
        "/policies/incoming/DEFAULT",
        json!({"name": "DEFAULT", service: setting}),
    )
    .await;
}

fn text_message(subject: &str, body: &str) -> String {
    format!(
        "From: a@sender.test\r\nTo: u@example.com\r\nMessage-ID: <{}@sender.test>\r\nSubject: {subject}\r\n\r\n{body}\r\n",
        subject.replace(' ', "-")
    )
}

fn with_attachment(subject: &str, name: &str, base64: &str) -> String {
    format!(
        "From: a@sender.test\r\nTo: u@example.com\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n\
         See attached.\r\n--b1\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\n\
         Content-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
         {base64}\r\n--b1--\r\n"
    )
}

async fn send_to(app: &Appliance, to: &[&str], message: &str) -> Reply {
    let (mut c, _) = SmtpClient::greeted(app.smtp).await;
    let r = c.send_mail("a@sender.test", to, message).await;
    c.cmd("QUIT").await;
    r
}

async fn send(app: &Appliance, message: &str) -> u64 {
    queued_mid(&send_to(app, &["u@example.com"], message).await)
}

/// The header section of a delivered message, one field per line.
fn header_lines(m: &Received) -> Vec<String> {
    let text = m.text();
    let head = text.split("\r\n\r\n").next().unwrap_or_default().to_owned();
    head.split("\r\n").map(str::to_owned).collect()
}

fn find<'a>(messages: &'a [Received], subject_part: &str) -> &'a Received {
    messages
        .iter()
        .find(|m| {
            header_lines(m)
                .iter()
                .any(|l| l.starts_with("Subject:") && l.contains(subject_part))
        })
        .unwrap_or_else(|| panic!("no delivered message with {subject_part:?} in its subject"))
}

fn journaled(app: &Appliance, mid: u64) -> bool {
    app.mail_logs()
        .contains(&format!("TDC: MID {mid} with Message-ID"))
}

#[tokio::test]
async fn spam_verdicts_meet_each_action_and_only_clean_mail_is_journaled() {
    let s = setup("", "").await;
    let app = &s.app;

    // Clean: delivered with both verdict headers, and journaled as before.
    let clean = send(app, &text_message("lunch", "Lunch at noon?")).await;
    let delivered = s.dest.wait_messages(1).await;
    let lines = header_lines(find(&delivered, "lunch"));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("X-Rampart-Spam: negative score=")),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"X-Rampart-Virus: negative".to_owned()),
        "{lines:?}"
    );
    s.intake.wait_messages(1).await;
    assert!(journaled(app, clean));
    let logs = app
        .wait_log(&format!("MID {clean} antivirus negative"))
        .await;
    assert!(logs.contains(&format!(
        "MID {clean} interim verdict using engine: RSPAMD spam negative"
    )));
    assert!(logs.contains(&format!("MID {clean} using engine: RSPAMD spam negative")));
    assert!(logs.contains(&format!(
        "MID {clean} interim AV verdict using CLAMAV CLEAN"
    )));

    // Suspected spam: delivered with the suspect prefix, never journaled.
    let suspect = send(app, &text_message(SUSPECT_SUBJECT, "hi")).await;
    let delivered = s.dest.wait_messages(2).await;
    let m = find(&delivered, SUSPECT_SUBJECT);
    let lines = header_lines(m);
    assert!(
        lines.contains(&format!("Subject: [SUSPECTED SPAM] {SUSPECT_SUBJECT}")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("X-Rampart-Spam: suspect score="))
    );
    assert!(!journaled(app, suspect));

    // Positive, AsyncOS's default action: the spam quarantine, with the reason.
    let held = send(app, &text_message("win money", GTUBE)).await;
    app.wait_log(&format!(
        "MID {held} quarantined to \"Spam\" (Anti-Spam: spam positive"
    ))
    .await;
    let (_, q) = app.api(Method::GET, "/quarantine", None).await;
    let entry = q
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["mid"] == held)
        .unwrap_or_else(|| panic!("{held} not in {q}"));
    assert!(entry.to_string().contains("spam positive"), "{entry}");

    // deliver with a prefix, drop, bounce.
    default_service(
        app,
        "antispam",
        json!({"mode": "enabled", "positive": {"action": "deliver", "subject_prefix": "[SPAM] "}}),
    )
    .await;
    let tagged = send(app, &text_message("tagged offer", GTUBE)).await;
    let delivered = s.dest.wait_messages(3).await;
    let lines = header_lines(find(&delivered, "tagged offer"));
    assert!(
        lines.contains(&"Subject: [SPAM] tagged offer".to_owned()),
        "{lines:?}"
    );
    default_service(
        app,
        "antispam",
        json!({"mode": "enabled", "positive": {"action": "drop"}}),
    )
    .await;
    let dropped = send(app, &text_message("dropped offer", GTUBE)).await;
    app.wait_log(&format!(
        "MID {dropped} dropped by Anti-Spam in the inbound table"
    ))
    .await;
    default_service(
        app,
        "antispam",
        json!({"mode": "enabled", "positive": {"action": "bounce"}}),
    )
    .await;
    let refused = send_to(
        app,
        &["u@example.com"],
        &text_message("refused offer", GTUBE),
    )
    .await;
    assert_eq!(refused.code, 550, "{refused:?}");
    assert!(
        refused.line().contains("5.7.1 Message rejected as spam"),
        "{refused:?}"
    );

    // None of the spam was journaled; nothing but the three deliveries reached the destination;
    // no DSN for any of it.
    for mid in [held, tagged, dropped] {
        assert!(!journaled(app, mid), "MID {mid} was journaled");
    }
    assert_eq!(s.intake.messages().len(), 1);
    assert_eq!(s.dest.messages().len(), 3);
    assert!(s.senders.messages().is_empty());

    // The services' page figures: every message scanned once by each engine.
    let (_, spam) = app.api(Method::GET, "/antispam", None).await;
    assert_eq!(spam["engine"], "rspamd");
    assert_eq!(spam["reachable"], true, "{spam}");
    assert!(
        spam["version"].as_str().unwrap().starts_with("rspamd"),
        "{spam}"
    );
    assert_eq!(spam["last_hour"]["scans"], 6, "{spam}");
    assert_eq!(spam["last_hour"]["positives"], 4, "{spam}");
    // Tracking shows the verdicts.
    let (_, t) = app
        .api(Method::GET, &format!("/tracking?mid={dropped}"), None)
        .await;
    let events = t.to_string();
    assert!(
        events.contains("using engine: RSPAMD spam positive"),
        "{events}"
    );
}

#[tokio::test]
async fn viruses_are_found_attached_and_zipped_and_big_mail_is_unscannable() {
    let s = setup("", "max_scan_bytes = 20000").await;
    let app = &s.app;

    // Infected, AsyncOS's default action: dropped.
    let dropped = send(app, &with_attachment("invoice", "eicar.com", EICAR_BASE64)).await;
    let logs = app
        .wait_log(&format!(
            "MID {dropped} dropped by Anti-Virus in the inbound table"
        ))
        .await;
    assert!(logs.contains(&format!(
        "MID {dropped} interim AV verdict using CLAMAV VIRAL"
    )));
    assert!(
        logs.contains(&format!(
            "MID {dropped} antivirus positive 'Eicar-Test-Signature"
        )),
        "{logs}"
    );

    // Inside a zip, to the virus quarantine.
    default_service(
        app,
        "antivirus",
        json!({"mode": "enabled", "infected": {"action": "quarantine"}}),
    )
    .await;
    let held = send(
        app,
        &with_attachment("zipped", "invoice.zip", EICAR_ZIP_BASE64),
    )
    .await;
    app.wait_log(&format!(
        "MID {held} quarantined to \"Virus\" (Anti-Virus: virus 'Eicar-Test-Signature"
    ))
    .await;

    // Over antivirus.max_scan_bytes: unscannable, delivered with its prefix, not journaled.
    let big = send(app, &text_message("big report", &"x".repeat(30_000))).await;
    let delivered = s.dest.wait_messages(1).await;
    let lines = header_lines(find(&delivered, "big report"));
    assert!(
        lines.contains(&"Subject: [WARNING: A/V UNSCANNABLE] big report".to_owned()),
        "{lines:?}"
    );
    assert!(lines.contains(&"X-Rampart-Virus: unscannable".to_owned()));
    let logs = app
        .wait_log(&format!("MID {big} is too big to be scanned by CLAMAV"))
        .await;
    assert!(logs.contains(&format!("MID {big} antivirus unscannable")));
    for mid in [dropped, held, big] {
        assert!(!journaled(app, mid), "MID {mid} was journaled");
    }
    let (_, av) = app.api(Method::GET, "/antivirus", None).await;
    assert_eq!(av["reachable"], true, "{av}");
    // clamd's VERSION: engine/signature database version/date.
    assert!(
        av["version"].as_str().unwrap().starts_with("ClamAV"),
        "{av}"
    );
    assert_eq!(av["last_hour"]["positives"], 2, "{av}");
}

#[tokio::test]
async fn an_engine_that_is_down_tempfails_or_lets_mail_in_as_unscannable() {
    // Nothing listens on these ports: both engines are down.
    let closed = |_| {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    };
    let (spam_at, virus_at) = (closed(0), closed(1));
    let engines = |on_error: &str| {
        format!(
            "[antispam]\nengine = \"rspamd\"\nurl = \"http://{spam_at}\"\non_error = \"{on_error}\"\n\
             [antivirus]\nengine = \"clamav\"\naddress = \"{virus_at}\"\non_error = \"{on_error}\"\n"
        )
    };
    let s = with_config(&engines("tempfail"), vec![]).await;
    let r = send_to(&s.app, &["u@example.com"], &text_message("retry me", "hi")).await;
    assert_eq!(r.code, 451, "{r:?}");
    assert!(r.line().contains("4.7.1"), "{r:?}");
    let logs = s.app.wait_log("scanning error using engine: RSPAMD").await;
    assert!(
        logs.contains("scanning error using engine: CLAMAV"),
        "{logs}"
    );
    // Nothing was stored: the sender keeps the message and retries.
    let (_, found) = s.app.api(Method::GET, "/tracking?since=3600", None).await;
    assert_eq!(found, json!([]));
    let (_, spam) = s.app.api(Method::GET, "/antispam", None).await;
    assert_eq!(spam["reachable"], false);
    assert!(
        spam["error"].as_str().unwrap().contains("cannot connect"),
        "{spam}"
    );
    drop(s);

    let s = with_config(&engines("accept"), vec![]).await;
    let mid = send(&s.app, &text_message("let in", "hi")).await;
    let delivered = s.dest.wait_messages(1).await;
    let lines = header_lines(&delivered[0]);
    assert!(
        lines.contains(&"Subject: [WARNING: A/V UNSCANNABLE] let in".to_owned()),
        "{lines:?}"
    );
    s.app
        .wait_log(&format!("MID {mid} queued for delivery"))
        .await;
    assert!(!journaled(&s.app, mid), "an unscanned message is not clean");
    let (_, t) = s
        .app
        .api(Method::GET, &format!("/tracking?mid={mid}"), None)
        .await;
    assert!(
        t.to_string()
            .contains("unscannable: anti-spam engine failed"),
        "{t}"
    );
}

#[tokio::test]
async fn splits_are_scanned_once_and_take_their_own_actions() {
    let s = setup("", "").await;
    let app = &s.app;
    for (name, recipients, antispam) in [
        (
            "strict",
            "@strict.example.com",
            json!({"mode": "enabled", "positive": {"action": "bounce"}}),
        ),
        (
            "inherit",
            "@inherit.example.com",
            json!({"mode": "default"}),
        ),
    ] {
        let (status, body) = app
            .api(
                Method::POST,
                "/policies/incoming",
                Some(json!({"name": name, "recipients": [recipients], "antispam": antispam})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    default_service(
        app,
        "antispam",
        json!({"mode": "enabled", "positive": {"action": "deliver", "subject_prefix": "[SPAM] "}}),
    )
    .await;

    // A client's own verdict header must not pass for ours.
    let message = format!(
        "From: a@sender.test\r\nTo: u@example.com\r\nSubject: offer\r\nX-Rampart-Spam: negative score=0.00\r\n\r\n{GTUBE}\r\n"
    );
    let r = send_to(
        app,
        &[
            "u@example.com",
            "s@strict.example.com",
            "i@inherit.example.com",
        ],
        &message,
    )
    .await;
    assert_eq!(r.code, 250, "one split accepts: {r:?}");
    let delivered = s.dest.wait_messages(2).await;
    for m in &delivered {
        let lines = header_lines(m);
        assert!(
            lines.contains(&"Subject: [SPAM] offer".to_owned()),
            "{lines:?}"
        );
        let verdicts: Vec<&String> = lines
            .iter()
            .filter(|l| l.starts_with("X-Rampart-Spam:"))
            .collect();
        assert_eq!(verdicts.len(), 1, "{lines:?}");
        assert!(
            verdicts[0].starts_with("X-Rampart-Spam: positive"),
            "{lines:?}"
        );
        assert!(!m.rcpts.iter().any(|r| r.contains("strict")));
    }
    // The strict split was bounced: its sender gets one DSN.
    let dsn = s.senders.wait_messages(1).await;
    assert!(dsn[0].text().contains("s@strict.example.com"));
    let logs = app.mail_logs();
    assert_eq!(
        logs.matches("interim verdict using engine: RSPAMD spam positive")
            .count(),
        3,
        "one verdict line per split"
    );
    let (_, spam) = app.api(Method::GET, "/antispam", None).await;
    assert_eq!(
        spam["last_hour"]["scans"], 1,
        "one scan for three splits: {spam}"
    );

    // Read-modify-write: what GET returns, PUT takes back unchanged.
    let (_, strict) = app
        .api(Method::GET, "/policies/incoming/strict", None)
        .await;
    assert_eq!(strict["antispam_label"], "Enabled");
    assert_eq!(strict["antivirus_label"], "(use default)");
    put(app, "/policies/incoming/strict", strict.clone()).await;
    let (_, again) = app
        .api(Method::GET, "/policies/incoming/strict", None)
        .await;
    assert_eq!(again, strict);
    let (_, inherit) = app
        .api(Method::GET, "/policies/incoming/inherit", None)
        .await;
    assert_eq!(inherit["antispam_label"], "(use default)");
}

/// Without an engine in the bootstrap file, the services read `Disabled` whatever the policy
/// says, and mail flows unscanned as before.
#[tokio::test]
async fn without_engines_the_services_read_disabled() {
    let app = Appliance::start("").await;
    let (_, p) = app
        .api(Method::GET, "/policies/incoming/DEFAULT", None)
        .await;
    assert_eq!(p["antispam"]["mode"], "enabled");
    assert_eq!(p["antispam_label"], "Disabled");
    assert_eq!(p["antivirus_label"], "Disabled");
    let (_, spam) = app.api(Method::GET, "/antispam", None).await;
    assert_eq!(spam["engine"], Value::Null);
}
