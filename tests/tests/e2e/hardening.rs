//! The appliance on a hostile network: each test reproduces an attack seen against an earlier
//! build (issue 14) and checks that it no longer works.

use std::net::IpAddr;

use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::*;
use crate::sink::{Script, Sink};

/// An HTTP client whose connections come from `source` (any 127.0.0.0/8 address is this
/// machine), so one test can be several clients.
fn client_from(source: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(source.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn api_status(client: &reqwest::Client, app: &Appliance, user: &str, pw: &str) -> u16 {
    client
        .get(app.url("/api/v1/rat"))
        .basic_auth(user, Some(pw))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn api_password_guessing_is_throttled_per_account_and_source_before_hashing() {
    // Room for the whole burst below on the web listener.
    let app = Appliance::start("[web]\nmax_connections_per_ip = 100\n").await;
    let attacker = client_from("127.0.0.2");
    // Sequential guesses: five are checked, the rest refused without hashing, and the right
    // password from the attacker's address is refused too while the lockout lasts.
    let mut statuses = Vec::new();
    for i in 0..30 {
        statuses.push(api_status(&attacker, &app, "admin", &format!("guess-{i}")).await);
    }
    assert_eq!(&statuses[..5], &[401; 5]);
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    assert_eq!(
        api_status(&attacker, &app, "admin", ADMIN_PASSWORD).await,
        429
    );
    // The UI login form shares the throttle.
    let form = attacker
        .post(app.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("username=admin&password={ADMIN_PASSWORD}"))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status().as_u16(), 429);
    // The real administrator, elsewhere, is not locked out by the stranger.
    let admin = client_from("127.0.0.3");
    assert_eq!(api_status(&admin, &app, "admin", ADMIN_PASSWORD).await, 200);

    // A burst of concurrent guesses with different passwords: every request is answered, and
    // at most the allowed number were verified (401); the rest got 429 at once.
    let burst = client_from("127.0.0.4");
    let answers = futures_join(
        (0..60)
            .map(|i| {
                let (burst, url) = (burst.clone(), app.url("/api/v1/rat"));
                async move {
                    let r = burst
                        .get(url)
                        .basic_auth("admin", Some(format!("burst-{i}")))
                        .send()
                        .await
                        .unwrap();
                    let retry = r.headers().get("retry-after").is_some();
                    (r.status().as_u16(), retry)
                }
            })
            .collect(),
    )
    .await;
    let checked = answers.iter().filter(|(s, _)| *s == 401).count();
    let refused = answers.iter().filter(|(s, r)| *s == 429 && *r).count();
    assert!(checked <= 5, "{answers:?}");
    assert_eq!(checked + refused, 60, "{answers:?}");

    // Unknown accounts are throttled like known ones: no difference to enumerate by.
    let prober = client_from("127.0.0.5");
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(api_status(&prober, &app, "nobody", "whatever1").await);
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429]);
}

/// Runs futures concurrently on the test's runtime and collects their outputs in order.
async fn futures_join<F, T>(futures: Vec<F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn deleted_or_demoted_accounts_lose_api_access_at_once() {
    let app = Appliance::start("").await;
    let (status, body) = app
        .api(
            Method::POST,
            "/users",
            Some(json!({"name": "ops", "password": "ops-password", "role": "admin"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let put_rat = |user: &'static str, pw: &'static str| {
        let app = &app;
        async move {
            app.api_as(
                user,
                pw,
                Method::PUT,
                "/rat",
                Some(json!([{"domain": "example.com", "action": "accept"}])),
            )
            .await
            .0
        }
    };
    assert_eq!(put_rat("ops", "ops-password").await, 200, "remembered now");
    // Demoted by another process (the CLI): the next request already has the new role.
    let out = app.cli(&["userconfig", "role", "ops", "readonly"]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(put_rat("ops", "ops-password").await, 403);
    assert_eq!(
        app.api_as("ops", "ops-password", Method::GET, "/rat", None)
            .await
            .0,
        200
    );
    // Deleted: the remembered login is worth nothing.
    let (status, _) = app.api(Method::DELETE, "/users/ops", None).await;
    assert_eq!(status, 204);
    assert_eq!(
        app.api_as("ops", "ops-password", Method::GET, "/rat", None)
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn half_sent_http_requests_cannot_exhaust_the_web_listener_or_stop_mail() {
    let app = Appliance::start(
        "[web]\nmax_connections = 8\nmax_connections_per_ip = 4\ntimeout_secs = 2\n",
    )
    .await;
    app.accept_domains(&["example.com"]).await;
    // A slow-loris client from one address: it gets its four connections, no more.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut c = connect_from("127.0.0.2", app.web).await;
        c.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        held.push(c);
    }
    let mut fifth = connect_from("127.0.0.2", app.web).await;
    assert!(closed_without_answer(&mut fifth).await, "per-address cap");
    // Others are still served meanwhile, and so is mail.
    let other = client_from("127.0.0.3");
    let health = other.get(app.url("/api/v1/health")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let (mut smtp, banner) = SmtpClient::greeted(app.smtp).await;
    assert_eq!(banner.code, 220);
    let r = smtp
        .send_mail(
            "a@sender.test",
            &["u@example.com"],
            &message("during-loris"),
        )
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    // The half-sent requests are ended by the header deadline (408 or a plain close).
    for mut c in held {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(DEADLINE, c.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "a half-sent request was never ended");
    }
    // Their slots are free again.
    let again = client_from("127.0.0.2");
    let health = again.get(app.url("/api/v1/health")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

/// True when the server closes the connection without sending anything.
async fn closed_without_answer(c: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(DEADLINE, c.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn a_message_with_too_many_hops_is_refused_as_a_loop() {
    let app = Appliance::start("[smtp]\nmax_hops = 5\n").await;
    app.accept_domains(&["example.com"]).await;
    // Ours is the fifth Received: field: still fine.
    let four = "Received: from a by b; Thu, 3 Dec 2026 10:00:00 +0000\r\n".repeat(4);
    let (mut c, _) = SmtpClient::greeted(app.smtp).await;
    let r = c
        .send_mail(
            "a@sender.test",
            &["u@example.com"],
            &format!("{four}{}", message("four-hops")),
        )
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    let five = "Received: from a by b; Thu, 3 Dec 2026 10:00:00 +0000\r\n".repeat(5);
    let r = c
        .transaction(
            "a@sender.test",
            &["u@example.com"],
            &format!("{five}{}", message("five-hops")),
        )
        .await;
    assert_eq!(r.line(), "554 5.4.6 Too many hops, mail loop detected");
    app.wait_log("mail loop detected (6 Received: headers, limit 5)")
        .await;
}

#[tokio::test]
async fn a_route_back_to_the_gateway_ends_as_a_bounced_loop() {
    let app = Appliance::start("[smtp]\nmax_hops = 8\n").await;
    app.accept_domains(&["example.com"]).await;
    let senders = Sink::start(Script::default()).await;
    let routes = json!([
        {"domain": "example.com", "hosts": [app.smtp.to_string()]},
        {"domain": "sender.test", "hosts": [senders.addr.to_string()]},
    ]);
    let (status, body) = app.api(Method::PUT, "/smtp-routes", Some(routes)).await;
    assert_eq!(status, 200, "{body}");
    let (mut c, _) = SmtpClient::greeted(app.smtp).await;
    let r = c
        .send_mail("a@sender.test", &["u@example.com"], &message("loop"))
        .await;
    assert_eq!(r.code, 250);
    // The loop is cut at the hop limit and the sender hears of it, once.
    let dsn = senders.wait_messages(1).await.remove(0);
    assert!(dsn.text().contains("5.4.6"), "{}", dsn.text());
    let logs = app.wait_log("mail loop detected").await;
    let accepted = logs.matches("Start MID").count();
    assert!(accepted <= 10, "the loop went on: {accepted} MIDs\n{logs}");
}

#[tokio::test]
async fn client_supplied_trust_headers_are_removed() {
    let intake = Sink::start(Script::default()).await;
    let dest = Sink::start(Script::default()).await;
    let app = Appliance::start("[tdc]\ntls = \"off\"\n").await;
    app.accept_domains(&["example.com"]).await;
    let routes = json!([
        {"domain": "example.com", "hosts": [dest.addr.to_string()]},
        {"domain": "intake.test", "hosts": [intake.addr.to_string()]},
    ]);
    for (path, body) in [
        ("/smtp-routes", routes),
        (
            "/tdc",
            json!({"enabled": true, "intake_address": "journal@intake.test"}),
        ),
        (
            "/policies/incoming/DEFAULT",
            json!({"name": "DEFAULT", "tdc": {"mode": "global"}}),
        ),
    ] {
        let (status, resp) = app.api(Method::PUT, path, Some(body)).await;
        assert_eq!(status, 200, "{path}: {resp}");
    }
    let forged = format!(
        "X-IronPort-RemoteIP: 203.0.113.66\r\n\
         Authentication-Results: rampart.test; spf=pass smtp.mailfrom=ceo@example.com\r\n\
         Authentication-Results: mx.elsewhere.test; spf=fail\r\n\
         X-Rampart-Virus: negative\r\n{}",
        message("forged")
    );
    let (mut c, _) = SmtpClient::greeted(app.smtp).await;
    let r = c
        .send_mail("a@sender.test", &["u@example.com"], &forged)
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    let delivered = dest.wait_messages(1).await.remove(0).text();
    assert!(!delivered.contains("203.0.113.66"), "{delivered}");
    assert!(!delivered.contains("X-IronPort-RemoteIP"), "{delivered}");
    assert!(!delivered.contains("rampart.test; spf=pass"), "{delivered}");
    assert!(!delivered.contains("X-Rampart-Virus"), "{delivered}");
    assert!(
        delivered.contains("Authentication-Results: mx.elsewhere.test; spf=fail"),
        "another host's results stay: {delivered}"
    );
    let journal = intake.wait_messages(1).await.remove(0).text();
    assert_eq!(
        journal.matches("X-IronPort-RemoteIP:").count(),
        1,
        "{journal}"
    );
    assert!(journal.contains("X-IronPort-RemoteIP: 127.0.0.1\r\n"));
    assert!(!journal.contains("203.0.113.66"));
    app.wait_log(
        "removed client-supplied header(s): X-IronPort-RemoteIP, Authentication-Results, X-Rampart-Virus",
    )
    .await;
}

#[tokio::test]
async fn one_address_cannot_take_every_smtp_slot() {
    let app = Appliance::start("[smtp]\nmax_connections_per_ip = 2\n").await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = SmtpClient::new(connect_from("127.0.0.2", app.smtp).await);
        assert_eq!(c.reply().await.unwrap().code, 220);
        held.push(c);
    }
    let mut third = SmtpClient::new(connect_from("127.0.0.2", app.smtp).await);
    assert_eq!(
        third.reply().await.unwrap().line(),
        "421 4.7.0 Too many concurrent connections from your address, try again later"
    );
    let mut other = SmtpClient::new(connect_from("127.0.0.3", app.smtp).await);
    assert_eq!(
        other.reply().await.unwrap().code,
        220,
        "other clients still served"
    );
    drop(held);
    // The slots come back when the sessions end.
    wait_until("a slot for 127.0.0.2 again", || async {
        let mut c = SmtpClient::new(connect_from("127.0.0.2", app.smtp).await);
        c.reply().await.is_some_and(|r| r.code == 220)
    })
    .await;
}

#[tokio::test]
async fn a_busy_session_still_ends_at_its_lifetime() {
    let app = Appliance::start("[smtp]\nmax_session_secs = 1\nmax_junk_commands = 100000\n").await;
    let (mut c, _) = SmtpClient::greeted(app.smtp).await;
    c.cmd("EHLO client.test").await;
    let start = std::time::Instant::now();
    let last = loop {
        let r = c.cmd("NOOP").await;
        if r.code != 250 {
            break r;
        }
        assert!(start.elapsed() < DEADLINE, "NOOP kept the session alive");
    };
    assert_eq!(
        last.line(),
        "421 4.4.2 Session lasted too long, closing connection"
    );
    assert!(c.closed().await);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_let_go() {
    let app = Appliance::start("[smtp]\ntimeout_secs = 1\nmax_junk_commands = 100000000\n").await;
    let stream = TcpStream::connect(app.smtp).await.unwrap();
    let (_read_half, mut write_half) = stream.into_split();
    // Pipelined HELP commands whose replies are never read fill both socket buffers.
    let writer = tokio::spawn(async move {
        let chunk = "HELP\r\n".repeat(10_000);
        while write_half.write_all(chunk.as_bytes()).await.is_ok() {}
    });
    let logs = app.wait_log(" close").await;
    assert!(logs.contains("ICID"), "{logs}");
    writer.abort();
}

#[tokio::test]
async fn commands_without_mail_end_the_session() {
    let app = Appliance::start("[smtp]\nmax_junk_commands = 20\n").await;
    let (mut c, _) = SmtpClient::greeted(app.smtp).await;
    c.cmd("EHLO client.test").await;
    let mut last = None;
    for _ in 0..40 {
        let r = c.cmd("MAIL FROM:<a@sender.test>").await;
        if r.code != 250 {
            last = Some(r);
            break;
        }
        let r = c.cmd("RSET").await;
        if r.code != 250 {
            last = Some(r);
            break;
        }
    }
    assert_eq!(
        last.expect("the loop was never stopped").line(),
        "421 4.7.0 Too many commands without mail, closing connection"
    );
    app.wait_log("too many commands without mail, closing")
        .await;
}

#[tokio::test]
async fn refused_recipients_do_not_abort_the_valid_ones() {
    let app = Appliance::start("[smtp]\nmax_errors = 3\n").await;
    app.accept_domains(&["example.com"]).await;
    let (mut c, _) = SmtpClient::greeted(app.smtp).await;
    c.cmd("EHLO client.test").await;
    assert_eq!(c.cmd("MAIL FROM:<a@sender.test>").await.code, 250);
    assert_eq!(c.cmd("RCPT TO:<u@example.com>").await.code, 250);
    for i in 0..10 {
        let r = c.cmd(&format!("RCPT TO:<u{i}@elsewhere.test>")).await;
        assert_eq!(r.line(), "550 5.7.1 Relaying denied");
    }
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.send(message("mixed").as_bytes()).await;
    c.send(b".\r\n").await;
    assert_eq!(c.reply().await.unwrap().code, 250);
}

#[tokio::test]
async fn message_memory_is_bounded_across_sessions() {
    // Room for one message of the largest size, not two.
    let app =
        Appliance::start("[smtp]\nmax_message_size = 1048576\nmax_memory_bytes = 1572864\n").await;
    app.accept_domains(&["example.com"]).await;
    let line = format!("{}\r\n", "x".repeat(998));
    let big = line.repeat(950); // 950,000 bytes
    let size = big.len() + 100;
    let start = |size: Option<usize>| {
        let app = &app;
        async move {
            let (mut c, _) = SmtpClient::greeted(app.smtp).await;
            c.cmd("EHLO client.test").await;
            let size = size.map(|s| format!(" SIZE={s}")).unwrap_or_default();
            let r = c.cmd(&format!("MAIL FROM:<a@sender.test>{size}")).await;
            (c, r)
        }
    };
    // The first client declares its size: the memory is its own from MAIL on.
    let (mut first, r) = start(Some(size)).await;
    assert_eq!(r.code, 250);
    first.cmd("RCPT TO:<u@example.com>").await;
    assert_eq!(first.cmd("DATA").await.code, 354);
    first
        .send(format!("Subject: first\r\n\r\n{big}").as_bytes())
        .await;
    // A second that declares a size that does not fit now is refused at MAIL (RFC 1870)...
    let (_, r) = start(Some(size)).await;
    assert_eq!(
        r.line(),
        "452 4.3.1 Insufficient system resources, try again later"
    );
    // ...and one that declares nothing is read to its end and refused after DATA.
    let (mut second, r) = start(None).await;
    assert_eq!(r.code, 250);
    second.cmd("RCPT TO:<u@example.com>").await;
    assert_eq!(second.cmd("DATA").await.code, 354);
    second
        .send(format!("Subject: second\r\n\r\n{big}.\r\n").as_bytes())
        .await;
    assert_eq!(
        second.reply().await.unwrap().line(),
        "452 4.3.1 Insufficient system resources, try again later"
    );
    // The first is unaffected, and its memory is given back afterwards.
    first.send(b".\r\n").await;
    assert_eq!(first.reply().await.unwrap().code, 250);
    let (mut third, r) = start(Some(size)).await;
    assert_eq!(r.code, 250);
    third.cmd("RCPT TO:<u@example.com>").await;
    third.cmd("DATA").await;
    third
        .send(format!("Subject: third\r\n\r\n{big}.\r\n").as_bytes())
        .await;
    assert_eq!(third.reply().await.unwrap().code, 250);
    app.wait_log("message memory (smtp.max_memory_bytes) in use by other sessions, replied 452")
        .await;
}

#[tokio::test]
async fn the_data_dir_is_private_and_served_by_one_process() {
    use std::os::unix::fs::PermissionsExt;
    let app = Appliance::start("").await;
    app.accept_domains(&["example.com"]).await;
    let data = app.dir.join("data");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    for file in ["rampart.db", "logs/mail_logs", "tls/key.pem"] {
        let path = data.join(file);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{file}");
        }
    }
    assert_eq!(mode(&data.join("rampart.db")), 0o600);
    // A second appliance on the same data dir is refused, and the first goes on.
    let err = serve_refused(&app.config_path).await;
    assert!(
        err.contains("another rampart is already serving the data dir"),
        "{err}"
    );
    let (status, _) = app.api(Method::GET, "/rat", None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn settings_writers_never_overwrite_each_other() {
    let app = Appliance::start("").await;
    // A file naming only some tables would reset the others: refused unless --partial.
    let file = app.dir.join("rat-only.toml");
    std::fs::write(
        &file,
        "[[rat]]\ndomain = \"loaded.example\"\naction = \"accept\"\n",
    )
    .unwrap();
    let out = app.cli(&["loadconfig", file.to_str().unwrap()]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not name the table(s) hat, smtp_routes")
            && err.contains("nothing was changed"),
        "{err}"
    );
    let out = app
        .cli(&["loadconfig", "--partial", file.to_str().unwrap()])
        .await;
    assert!(out.status.success(), "{out:?}");
    // An API edit right after (before the appliance's once-a-second reload) builds on the
    // stored settings, not on its older snapshot: the loaded RAT stays.
    let routes = json!([{"domain": "example.com", "hosts": ["127.0.0.1:2626"]}]);
    let (status, body) = app.api(Method::PUT, "/smtp-routes", Some(routes)).await;
    assert_eq!(status, 200, "{body}");
    let (_, rat) = app.api(Method::GET, "/rat", None).await;
    assert_eq!(rat[0]["domain"], "loaded.example", "{rat}");
    let (_, hat) = app.api(Method::GET, "/hat", None).await;
    assert_eq!(hat[0]["name"], "LOOPBACK", "--partial kept the HAT");

    // A client's own read-modify-write: GET gives an ETag, a PUT with a stale If-Match is 412.
    let client = reqwest::Client::new();
    let get = client
        .get(app.url("/api/v1/rat"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    let etag = get.headers()["etag"].to_str().unwrap().to_owned();
    let put = |etag: String, domain: &'static str| {
        let client = client.clone();
        let url = app.url("/api/v1/rat");
        async move {
            client
                .put(url)
                .basic_auth("admin", Some(ADMIN_PASSWORD))
                .header("if-match", etag)
                .json(&json!([{"domain": domain, "action": "accept"}]))
                .send()
                .await
                .unwrap()
        }
    };
    let first = put(etag.clone(), "first.example").await;
    assert_eq!(first.status().as_u16(), 200);
    assert_ne!(first.headers()["etag"].to_str().unwrap(), etag);
    let second = put(etag, "second.example").await;
    assert_eq!(second.status().as_u16(), 412);
    let body: serde_json::Value = second.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("the settings changed since you read them"),
        "{body}"
    );
    let (_, rat) = app.api(Method::GET, "/rat", None).await;
    assert_eq!(rat[0]["domain"], "first.example");
}

#[tokio::test]
async fn content_filters_see_every_text_part_and_attached_messages() {
    let app = Appliance::start("").await;
    app.accept_domains(&["example.com"]).await;
    let filters = json!([
        {"name": "no_exe", "conditions": [{"type": "attachment_name", "regex": "\\.exe$"}], "actions": [{"type": "drop"}]},
        {"name": "no_wire", "conditions": [{"type": "body", "regex": "wire the money"}], "actions": [{"type": "drop"}]}
    ]);
    let default = json!({"name": "DEFAULT", "content_filters": filters, "tdc": {"mode": "no"}});
    let (status, body) = app
        .api(Method::PUT, "/policies/incoming/DEFAULT", Some(default))
        .await;
    assert_eq!(status, 200, "{body}");
    let send = |text: String| {
        let app = &app;
        async move {
            let (mut c, _) = SmtpClient::greeted(app.smtp).await;
            queued_mid(
                &c.send_mail("a@sender.test", &["u@example.com"], &text)
                    .await,
            )
        }
    };
    // An executable inside an attached message.
    let nested = send(
        "From: a@sender.test\r\nSubject: fwd\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n\
--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n\
--c\r\nContent-Type: application/octet-stream; name=evil.exe\r\nContent-Disposition: attachment; filename=evil.exe\r\n\r\nMZ\r\n--c--\r\n\
--b--\r\n"
            .to_owned(),
    )
    .await;
    app.wait_log(&format!("MID {nested} dropped by content filter 'no_exe'"))
        .await;
    // Text after a first text part of 2 MiB.
    let padding = format!("{}\r\n", "p".repeat(998)).repeat(2100);
    let hidden = send(format!(
        "From: a@sender.test\r\nSubject: pay\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\n{padding}--b\r\nContent-Type: text/plain\r\n\r\nplease wire the money\r\n--b--\r\n"
    ))
    .await;
    app.wait_log(&format!("MID {hidden} dropped by content filter 'no_wire'"))
        .await;
    // Beyond what the filters read, the verdict says so and the message is not clean.
    let huge = format!("{}\r\n", "h".repeat(998)).repeat(4400);
    let unscannable = send(format!(
        "From: a@sender.test\r\nSubject: huge\r\n\r\n{huge}"
    ))
    .await;
    let (_, tracking) = app
        .api(Method::GET, &format!("/tracking?mid={unscannable}"), None)
        .await;
    let text = tracking.to_string();
    assert!(
        text.contains(
            "security services verdict: deliver (unscannable: body text over 4194304 bytes)"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn the_bounded_web_listener_serves_https_too() {
    use std::sync::Arc;
    let app = Appliance::start("[web]\nhttps = \"on\"\n").await;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(crate::smtp_ingest::AcceptAny))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(app.web).await.unwrap();
    let mut tls = connector
        .connect(
            rustls::pki_types::ServerName::try_from("rampart.test").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    tls.write_all(
        b"GET /api/v1/health HTTP/1.1\r\nHost: rampart.test\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, tls.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("strict-transport-security"), "{answer}");
}
