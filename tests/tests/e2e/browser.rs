//! The web UI in a real browser: Debian's Chromium driven through chromedriver (WebDriver).
//!
//! An administrator logs in, goes through the menus, enables the Threat Defense Connector,
//! adds a policy with a custom intake address, commits, sees `Enabled` in the policy table,
//! sends mail, and finds it in Message Tracking with its TDC line and under `the.tdc.queue` in
//! Delivery Status. Screenshots of the main pages land in `target/screenshots/`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::Method;
use serde_json::json;
use tokio::process::{Child, Command};

use crate::harness::*;
use crate::sink::{Script, Sink};

/// chromedriver with a headless Chromium session.
struct Browser {
    client: Client,
    _driver: Child,
    shots: PathBuf,
}

impl Browser {
    async fn start() -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver is not installed: apt-get install chromium chromium-driver (cargo xtask test does)");
        let url = format!("http://127.0.0.1:{port}");
        let status = format!("{url}/status");
        wait_until("chromedriver to answer", || {
            let status = status.clone();
            async move { reqwest::get(&status).await.is_ok() }
        })
        .await;
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1366,1000", "--lang=en-US"]
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .expect("cannot start a Chromium session");
        let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            client,
            _driver: driver,
            shots,
        }
    }

    async fn css(&self, selector: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(DEADLINE)
            .for_element(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("no element {selector}: {e}"))
    }

    /// Clicks something that stays on the page (a checkbox, a radio button).
    async fn click(&self, selector: &str) {
        self.css(selector).await.click().await.unwrap();
    }

    /// Clicks a link or a submit button and waits until the next page has replaced this one,
    /// so that nothing is read from the old page.
    async fn go(&self, target: Locator<'_>) {
        let old = self.client.find(Locator::Css("html")).await.unwrap();
        self.client
            .wait()
            .at_most(DEADLINE)
            .for_element(target)
            .await
            .unwrap_or_else(|e| panic!("nothing to click at {target:?}: {e}"))
            .click()
            .await
            .unwrap();
        let start = std::time::Instant::now();
        // The old document's root goes stale once the new page is loaded.
        while old.tag_name().await.is_ok() {
            assert!(
                start.elapsed() < DEADLINE,
                "clicking {target:?} loaded no page"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn submit(&self, selector: &str) {
        self.go(Locator::Css(selector)).await;
    }

    async fn link(&self, text: &str) {
        self.go(Locator::LinkText(text)).await;
    }

    async fn type_into(&self, selector: &str, text: &str) {
        let e = self.css(selector).await;
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    async fn heading(&self) -> String {
        self.css("main h1").await.text().await.unwrap()
    }

    async fn text(&self, selector: &str) -> String {
        self.css(selector).await.text().await.unwrap()
    }

    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    /// Reloads `path` until `selector`'s text contains `needle` (the appliance works in the
    /// background; the page shows its state when loaded).
    async fn reload_until(&self, path: &str, selector: &str, needle: &str) -> String {
        let start = std::time::Instant::now();
        loop {
            self.client.goto(path).await.unwrap();
            if let Ok(e) = self.client.find(Locator::Css(selector)).await {
                let t = e.text().await.unwrap_or_default();
                if t.contains(needle) {
                    return t;
                }
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{path}: {selector} never showed {needle:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn administrator_sets_up_journaling_in_the_browser_and_tracks_a_message() {
    let dest = Sink::start(Script::default()).await;
    let intake = Sink::start(Script::default()).await;
    let app = Appliance::start("[tdc]\ntls = \"off\"\nretry_delay_secs = 1\n").await;
    app.accept_domains(&["example.com"]).await;
    let routes = json!([
        {"domain": "example.com", "hosts": [dest.addr.to_string()]},
        {"domain": "intake.test", "hosts": [intake.addr.to_string()]},
    ]);
    let (status, body) = app.api(Method::PUT, "/smtp-routes", Some(routes)).await;
    assert_eq!(status, 200, "{body}");

    let b = Browser::start().await;
    let base = app.url("");
    // Any page asks for a login first, and comes back to it afterwards.
    b.client
        .goto(&format!("{base}/security/tdc"))
        .await
        .unwrap();
    assert!(
        b.client
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/login")
    );
    b.shot("01-login").await;
    b.type_into("#username", "admin").await;
    b.type_into("#password", "wrong-password").await;
    b.submit("button[type=submit]").await;
    assert_eq!(b.text("p.error").await, "Invalid username or password.");
    b.type_into("#password", ADMIN_PASSWORD).await;
    b.submit("button[type=submit]").await;
    assert_eq!(b.heading().await, "Threat Defense Connector Settings");
    assert!(b.text("#tdc-settings").await.contains("Disabled"));

    // Monitor > System Status, then Security Services through the menus.
    b.link("Monitor").await;
    assert_eq!(b.heading().await, "System Status");
    b.shot("02-system-status").await;
    b.link("Security Services").await;
    b.submit("#edit-settings").await;
    assert_eq!(b.heading().await, "Edit Threat Defense Connector Settings");
    // Enabled without an address: the error beside the field.
    b.click("#enabled").await;
    b.submit("#submit").await;
    assert!(b.text("#intake-error").await.contains("required"));
    b.type_into("#intake_address", "journal@intake.test").await;
    b.submit("#submit").await;
    assert!(b.text("p.flash").await.contains("pending"));
    assert_eq!(b.text("#intake-address").await, "journal@intake.test");
    b.shot("03-tdc-settings").await;

    // Mail Policies: a policy for example.com with its own intake address.
    b.link("Mail Policies").await;
    assert_eq!(b.heading().await, "Incoming Mail Policies");
    b.submit("#add-policy").await;
    b.type_into("#name", "finance").await;
    b.type_into("#recipients", "@example.com").await;
    b.submit("#submit").await;
    assert_eq!(
        b.text("tr[data-policy='finance'] a.tdc-link").await,
        "(use default)"
    );
    b.submit("tr[data-policy='finance'] a.tdc-link").await;
    assert_eq!(b.heading().await, "Threat Defense Connector: finance");
    b.click("#mode-custom").await;
    b.type_into("#custom-address", "finance-journal@intake.test")
        .await;
    b.shot("04-policy-tdc").await;
    b.submit("#submit").await;

    // Commit Changes, from the header.
    assert_eq!(b.text("#commit-link").await, "Commit Changes (3)");
    b.submit("#commit-link").await;
    assert_eq!(b.heading().await, "Uncommitted Changes");
    b.shot("05-commit").await;
    b.type_into("#comment", "journal finance mail (browser test)")
        .await;
    b.submit("#commit").await;
    assert!(b.text("p.flash").await.contains("committed"));
    assert_eq!(b.text("#commit-link").await, "No Changes Pending");
    b.link("Mail Policies").await;
    assert_eq!(
        b.text("tr[data-policy='finance'] a.tdc-link").await,
        "Enabled"
    );
    assert_eq!(
        b.text("tr[data-policy='DEFAULT'] a.tdc-link").await,
        "Disabled"
    );
    b.shot("06-incoming-policies").await;

    // A message over SMTP: delivered, and journaled to the policy's intake.
    let (mut smtp, _) = SmtpClient::greeted(app.smtp).await;
    let mid = queued_mid(
        &smtp
            .send_mail(
                "a@sender.test",
                &["u@example.com"],
                &message("browser-journal"),
            )
            .await,
    );
    let journal = intake.wait_messages(1).await;
    assert_eq!(journal[0].rcpts, ["finance-journal@intake.test"]);
    dest.wait_messages(1).await;

    // Monitor > Message Tracking: search, open, find the TDC line.
    b.link("Monitor").await;
    b.link("Message Tracking").await;
    b.type_into("#subject", "browser-journal").await;
    b.submit("#search").await;
    b.link(&mid.to_string()).await;
    let tdc_line = format!(
        "TDC: Message {mid} was successfully delivered for scanning with Cisco Secure Email Threat Defense."
    );
    let detail = b.client.current_url().await.unwrap().to_string();
    b.reload_until(&detail, "#events", &tdc_line).await;
    b.shot("07-tracking-detail").await;

    // Monitor > Mail Logs: the TDC lines of the message.
    b.link("Mail Logs").await;
    b.type_into("input[name=find]", &format!("MID {mid}")).await;
    b.submit("#log-search button").await;
    let log = b.text("#mail-log").await;
    assert!(
        log.contains(&format!("TDC: MID {mid} successfully delivered for scanning with Cisco Secure Email Threat Defense")),
        "{log}"
    );
    b.shot("08-mail-logs").await;

    // Monitor > Delivery Status: the.tdc.queue with one delivered copy.
    let row = b
        .reload_until(
            &format!("{base}/monitor/delivery"),
            "tr[data-host='the.tdc.queue']",
            "the.tdc.queue",
        )
        .await;
    let cells: Vec<&str> = row.split_whitespace().collect();
    // #, host, active, connections out, delivered, soft bounced, hard bounced
    assert_eq!(
        cells.get(1..),
        Some(&["the.tdc.queue", "0", "0", "1", "0", "0"][..]),
        "{row}"
    );
    b.shot("08-delivery-status-tdc").await;
    // Its details: the policy's custom intake address with its delivered copy.
    b.link("the.tdc.queue").await;
    assert_eq!(b.heading().await, "Delivery Status: the.tdc.queue");
    let intakes = b.text("#intakes").await;
    assert!(
        intakes.contains("finance-journal@intake.test 0 1 0 0"),
        "{intakes}"
    );
    b.shot("08-delivery-status-tdc-details").await;

    // Security Services: the intake's health and the ledger count the copy.
    let health = b
        .reload_until(
            &format!("{base}/security/tdc"),
            "#intake-health",
            "delivered",
        )
        .await;
    assert!(health.contains("no TLS"), "{health}");
    let ledger = b.text("#ledger-summary").await;
    assert!(ledger.contains("Last hour 1 0 0 0 0"), "{ledger}");
    b.shot("09-tdc-health").await;

    // Monitor > Overview: the message in the incoming summary, its journal copy in the chart.
    b.link("Monitor").await;
    b.link("Overview").await;
    assert_eq!(b.heading().await, "Overview");
    b.link("Hour").await;
    let summary = b.text("#incoming-summary").await;
    assert!(summary.contains("Clean 1 100.0 %"), "{summary}");
    assert!(b.text("#journal-summary").await.contains("Journaled 1"));
    let bars = b
        .client
        .find_all(Locator::Css("#journal-chart rect"))
        .await
        .unwrap();
    assert_eq!(bars.len(), 1, "one bucket with one journaled copy");
    assert!(b.text("#sender_domains").await.contains("sender.test"));
    b.shot("11-overview").await;

    // System Administration > Alerts: a recipient for Warning and above, staged like any setting.
    b.link("System Administration").await;
    b.link("Alerts").await;
    assert_eq!(b.heading().await, "Alerts");
    b.type_into("#recipients", "postmaster@example.com warning")
        .await;
    b.submit("form[action='/admin/alerts'] button.primary")
        .await;
    assert!(b.text("p.flash").await.contains("pending"));
    assert_eq!(
        b.css("#recipients").await.prop("value").await.unwrap(),
        Some("postmaster@example.com warning".to_owned())
    );
    b.shot("19-alerts").await;
    b.submit("#commit-link").await;
    b.submit("#commit").await;

    // The audit log shows the commit with its comment.
    b.link("System Administration").await;
    b.link("Audit Log").await;
    let audit = b.text("#audit").await;
    assert!(audit.contains("journal finance mail (browser test)"));
    assert!(audit.contains("finance"));
    b.shot("10-audit-log").await;
    b.client.clone().close().await.unwrap();
}

/// Anti-Spam per policy in the browser, AsyncOS style: the column in the policy table, the
/// policy's page, Commit, then the engine's page and System Status counting the spam.
#[tokio::test]
async fn administrator_sets_anti_spam_per_policy_and_watches_the_engines() {
    use crate::engines::{GTUBE, start_clamd, start_rspamd};
    let (rspamd, clamd) = tokio::join!(start_rspamd(), start_clamd("10M"));
    let app = Appliance::start(&format!(
        "[antispam]\nengine = \"rspamd\"\nurl = \"http://{}\"\n[antivirus]\nengine = \"clamav\"\naddress = \"{}\"\n",
        rspamd.addr, clamd.addr
    ))
    .await;
    app.accept_domains(&["example.com"]).await;
    let b = Browser::start().await;
    let base = app.url("");
    b.client
        .goto(&format!("{base}/mail-policies/incoming"))
        .await
        .unwrap();
    b.type_into("#username", "admin").await;
    b.type_into("#password", ADMIN_PASSWORD).await;
    b.submit("button[type=submit]").await;
    assert_eq!(b.heading().await, "Incoming Mail Policies");
    let headers = b.text("#policies thead").await;
    assert!(
        headers.contains("Email Authentication Anti-Spam Anti-Virus Content Filters"),
        "{headers}"
    );
    assert_eq!(
        b.text("tr[data-policy='DEFAULT'] td.antispam-cell").await,
        "Enabled"
    );
    assert_eq!(
        b.text("tr[data-policy='DEFAULT'] td.antivirus-cell").await,
        "Enabled"
    );

    // The Default Policy's Anti-Spam page: positive spam is dropped from now on.
    b.submit("tr[data-policy='DEFAULT'] td.antispam-cell a")
        .await;
    assert_eq!(b.heading().await, "Anti-Spam: DEFAULT");
    assert!(
        b.client.find(Locator::Css("#mode-default")).await.is_err(),
        "DEFAULT has no (use default)"
    );
    b.css("#positive-action")
        .await
        .select_by_value("drop")
        .await
        .unwrap();
    b.type_into("#positive-prefix", "").await;
    b.shot("11-policy-antispam").await;
    b.submit("#submit").await;
    b.submit("#commit-link").await;
    b.submit("#commit").await;
    assert!(b.text("p.flash").await.contains("committed"));

    let (mut smtp, _) = SmtpClient::greeted(app.smtp).await;
    let mid = queued_mid(
        &smtp
            .send_mail(
                "a@sender.test",
                &["u@example.com"],
                &format!(
                    "From: a@sender.test\r\nTo: u@example.com\r\nSubject: offer\r\n\r\n{GTUBE}\r\n"
                ),
            )
            .await,
    );
    app.wait_log(&format!("MID {mid} dropped by Anti-Spam"))
        .await;

    // Security Services > Anti-Spam: reachable, its version, one positive this hour.
    b.link("Security Services").await;
    b.link("Anti-Spam").await;
    assert_eq!(b.heading().await, "Anti-Spam");
    assert!(b.text("#engine-state").await.contains("Reachable"));
    assert!(b.text("#engine-version").await.starts_with("rspamd"));
    let hour = b.text("#engine-hour").await;
    assert!(hour.contains("\n1 1 0"), "scans, positives, errors: {hour}");
    b.shot("12-antispam-engine").await;
    b.link("Anti-Virus").await;
    assert!(b.text("#engine-version").await.starts_with("ClamAV"));
    b.shot("13-antivirus-engine").await;
    // System Status counts it.
    b.link("Monitor").await;
    assert_eq!(b.text("#spam").await, "1");

    // System Administration > Trace: the same message, evaluated without being sent.
    b.link("System Administration").await;
    b.link("Trace").await;
    assert_eq!(b.heading().await, "Trace");
    b.type_into("#client_ip", "127.0.0.1").await;
    b.type_into("#sender", "a@sender.test").await;
    b.type_into("#recipients", "u@example.com").await;
    b.type_into(
        "#message",
        &format!("From: a@sender.test\nTo: u@example.com\nSubject: offer\n\n{GTUBE}\n"),
    )
    .await;
    b.submit("#submit").await;
    assert_eq!(b.text("#trace-flow-policy").await, "ACCEPT");
    assert!(b.text("#trace-sender-group").await.starts_with("LOOPBACK"));
    let split = b.text("dl.trace-split").await;
    assert!(split.contains("drop (by Anti-Spam)"), "{split}");
    assert!(split.contains("Anti-Spam:\npositive score="), "{split}");
    assert!(split.contains("connector disabled"), "{split}");
    b.shot("14-trace").await;
    // Nothing was counted, stored or logged.
    b.link("Security Services").await;
    b.link("Anti-Spam").await;
    let hour = b.text("#engine-hour").await;
    assert!(
        hour.contains("\n1 1 0"),
        "a trace is not a scan of mail: {hour}"
    );
    assert_eq!(app.store().await.mids().await.unwrap().len(), 1);
    b.client.clone().close().await.unwrap();
}

/// The everyday defects an administrator trips over, in a real browser at 800 px: no page
/// scrolls sideways (a long subject and address included), the page's sub-menu entry is
/// marked, a quarantined message is deleted only after a confirmation, Mail Logs show the
/// newest line first, and a read-only user who opens an administrator's page keeps the menus.
#[tokio::test]
async fn pages_fit_a_narrow_window_and_destructive_actions_ask_first() {
    let dest = Sink::start(Script::default()).await;
    let app = Appliance::start("").await;
    app.accept_domains(&["example.com"]).await;
    let routes = json!([{"domain": "example.com", "hosts": [dest.addr.to_string()]}]);
    assert_eq!(
        app.api(Method::PUT, "/smtp-routes", Some(routes)).await.0,
        200
    );
    let hold = json!({"name": "DEFAULT", "content_filters": [
        {"name": "hold", "conditions": [{"type": "subject", "regex": "^hold"}], "actions": [{"type": "quarantine"}]}
    ]});
    let (status, body) = app
        .api(Method::PUT, "/policies/incoming/DEFAULT", Some(hold))
        .await;
    assert_eq!(status, 200, "{body}");
    let viewer = json!({"name": "viewer", "password": "viewer-password", "role": "readonly"});
    let (status, body) = app.api(Method::POST, "/users", Some(viewer)).await;
    assert!(status == 201 || status == 200, "{body}");
    // A subject and a sender with no place to break: they must wrap, not widen the page.
    let long = "x".repeat(180);
    let sender = format!("{}@sender.test", "s".repeat(60));
    let (mut smtp, _) = SmtpClient::greeted(app.smtp).await;
    let held = queued_mid(
        &smtp
            .send_mail(
                &sender,
                &["u@example.com"],
                &format!(
                    "From: {sender}\r\nTo: u@example.com\r\nSubject: hold{long}\r\n\r\nHi.\r\n"
                ),
            )
            .await,
    );
    app.wait_log(&format!("MID {held} quarantined")).await;
    let delivered = queued_mid(
        &smtp
            .send_mail("a@sender.test", &["u@example.com"], &message("last-one"))
            .await,
    );
    dest.wait_messages(1).await;

    let b = Browser::start().await;
    b.client.set_window_size(800, 900).await.unwrap();
    let base = app.url("");
    b.client
        .goto(&format!("{base}/monitor/quarantine"))
        .await
        .unwrap();
    b.type_into("#username", "admin").await;
    b.type_into("#password", ADMIN_PASSWORD).await;
    b.submit("button[type=submit]").await;
    assert_eq!(b.heading().await, "Quarantine");
    for path in [
        "/monitor/overview",
        "/monitor/overview?range=month",
        "/monitor/status",
        "/monitor/delivery",
        "/monitor/tracking",
        "/monitor/mail-logs",
        "/monitor/quarantine",
        &format!("/monitor/quarantine/{held}"),
        &format!("/monitor/tracking/{held}"),
        "/mail-policies/incoming",
        "/mail-policies/outgoing",
        "/mail-policies/hat",
        "/mail-policies/rat",
        "/security/tdc",
        "/security/tdc/ledger",
        "/network/smtp-routes",
        "/network/destination-controls",
        "/admin/users",
        "/admin/audit",
        "/admin/log-subscriptions",
        "/admin/alerts",
        "/admin/cluster",
        "/mail-policies/incoming/DEFAULT/content-filters",
        "/mail-policies/incoming/DEFAULT/content-filters/builder",
    ] {
        b.client.goto(&format!("{base}{path}")).await.unwrap();
        let widths = b
            .client
            .execute(
                "const e = document.documentElement; return [e.scrollWidth, e.clientWidth, \
                 new Set([...document.querySelectorAll('[id]')].map(x => x.id)).size, \
                 document.querySelectorAll('[id]').length, \
                 document.querySelectorAll('nav.submenu a[aria-current=page]').length];",
                vec![],
            )
            .await
            .unwrap();
        let n: Vec<u64> = serde_json::from_value(widths).unwrap();
        assert!(n[0] <= n[1], "{path} scrolls sideways at 800 px: {n:?}");
        assert_eq!(n[2], n[3], "{path} has a duplicate id");
        assert_eq!(n[4], 1, "{path}: its sub-menu entry is marked once");
        if path == "/monitor/tracking" {
            b.shot("15-tracking-800px").await;
        }
    }

    // Delete from the quarantine: a question first; Cancel keeps the message.
    b.client
        .goto(&format!("{base}/monitor/quarantine"))
        .await
        .unwrap();
    b.submit("#quarantine button.danger").await;
    assert_eq!(b.heading().await, "Delete Quarantined Message");
    assert!(
        b.text("#question")
            .await
            .contains(&format!("Delete MID {held}"))
    );
    let fits = b
        .client
        .execute(
            "const e = document.documentElement; return e.scrollWidth <= e.clientWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        fits,
        json!(true),
        "the question wraps the long sender and subject"
    );
    b.shot("16-confirm-delete").await;
    b.submit("#cancel").await;
    assert_eq!(b.heading().await, "Quarantine");
    assert!(b.text("#quarantine").await.contains(&held.to_string()));
    b.submit("#quarantine button.danger").await;
    b.submit("#confirm-button").await;
    assert!(b.text("p.flash").await.contains("deleted"));
    assert!(!b.text("#quarantine").await.contains(&held.to_string()));

    // Mail Logs: the newest line comes first.
    b.link("Mail Logs").await;
    let log = b.text("#mail-log").await;
    let pos = |needle: &str| log.find(needle).unwrap_or(usize::MAX);
    assert!(
        pos(&format!("MID {delivered} ")) < pos(&format!("MID {held} ")),
        "the later message first: {log}"
    );

    // A read-only user opening Users keeps the menus and finds the pages they may use.
    b.client
        .goto(&format!("{base}/monitor/status"))
        .await
        .unwrap();
    b.submit("button.link").await;
    b.type_into("#username", "viewer").await;
    b.type_into("#password", "viewer-password").await;
    b.submit("button[type=submit]").await;
    b.client.goto(&format!("{base}/admin/users")).await.unwrap();
    assert_eq!(b.heading().await, "Forbidden");
    b.link("Audit Log").await;
    assert_eq!(b.heading().await, "Audit Log");
    b.link("System Administration").await;
    assert_eq!(b.heading().await, "Change Password");
    b.link("Network").await;
    b.link("Bounce Profiles").await;
    assert!(b.text("#read-only").await.contains("Read-Only Operator"));
    let disabled = b
        .client
        .execute(
            "return document.querySelector('#max_retries').matches(':disabled');",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(disabled, json!(true));
    b.shot("17-read-only").await;
    b.client.clone().close().await.unwrap();
}

/// The content filter builder: a filter chosen from lists, tested against a pasted message,
/// saved and committed — and then it drops real mail.
#[tokio::test]
async fn administrator_builds_a_content_filter_tests_it_and_it_drops_mail() {
    let dest = Sink::start(Script::default()).await;
    let app = Appliance::start("").await;
    app.accept_domains(&["example.com"]).await;
    let (status, body) = app
        .api(
            Method::PUT,
            "/smtp-routes",
            Some(json!([{"domain": "example.com", "hosts": [dest.addr.to_string()]}])),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let b = Browser::start().await;
    let base = app.url("");
    b.client
        .goto(&format!(
            "{base}/mail-policies/incoming/DEFAULT/content-filters"
        ))
        .await
        .unwrap();
    b.type_into("#username", "admin").await;
    b.type_into("#password", ADMIN_PASSWORD).await;
    b.submit("button[type=submit]").await;
    assert_eq!(b.heading().await, "Content Filters: DEFAULT");
    b.submit("#add-filter").await;
    assert_eq!(b.heading().await, "Add Content Filter: DEFAULT");
    b.type_into("#name", "no-lottery").await;
    b.css("select[name=c0_type]")
        .await
        .select_by_value("subject")
        .await
        .unwrap();
    b.type_into("input[name=c0_value]", "lottery").await;
    b.css("select[name=a0_type]")
        .await
        .select_by_value("drop")
        .await
        .unwrap();
    b.type_into(
        "#message",
        "From: a@sender.test\nSubject: You won the LOTTERY\n\nClaim now.\n",
    )
    .await;
    b.submit("#test").await;
    let result = b.text("#test-result").await;
    assert!(
        result.contains("The filter matches this message. Its actions would apply: Drop."),
        "{result}"
    );
    assert!(
        result.contains("matches — Subject matches: lottery"),
        "{result}"
    );
    b.client
        .execute(
            "document.getElementById('test-result').scrollIntoView();",
            vec![],
        )
        .await
        .unwrap();
    b.shot("18-filter-builder").await;
    b.submit("#save").await;
    assert_eq!(b.heading().await, "Content Filters: DEFAULT");
    assert!(b.text("#filter-table").await.contains("no-lottery"));
    b.submit("#commit-link").await;
    b.submit("#commit").await;
    assert!(b.text("p.flash").await.contains("committed"));
    b.client.clone().close().await.unwrap();

    let (mut smtp, _) = SmtpClient::greeted(app.smtp).await;
    let lottery = queued_mid(
        &smtp
            .send_mail("a@sender.test", &["u@example.com"], &message("lottery win"))
            .await,
    );
    queued_mid(
        &smtp
            .send_mail("a@sender.test", &["u@example.com"], &message("hello"))
            .await,
    );
    smtp.cmd("QUIT").await;
    let delivered = dest.wait_messages(1).await;
    assert!(String::from_utf8_lossy(&delivered[0].data).contains("hello"));
    let (_, found) = app.api(Method::GET, "/tracking?event=dropped", None).await;
    let mids: Vec<u64> = found
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["mid"].as_u64())
        .collect();
    assert_eq!(mids, [lottery]);
}
