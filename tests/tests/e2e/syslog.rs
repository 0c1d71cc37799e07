//! The syslog push of mail_logs (AsyncOS log subscriptions, SPEC §5) to receivers in the test:
//! UDP, TCP with either framing, TLS verified against a CA file, and a server that is down.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use reqwest::Method;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};

use crate::harness::*;

/// A syslog server on loopback that keeps every message it receives.
struct Receiver {
    addr: SocketAddr,
    messages: Arc<Mutex<Vec<String>>>,
}

#[derive(Clone, Copy)]
enum Framing {
    Newline,
    OctetCounting,
}

impl Receiver {
    async fn udp() -> Receiver {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let messages: Arc<Mutex<Vec<String>>> = Arc::default();
        let m = messages.clone();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = socket.recv(&mut buf).await {
                m.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        });
        Receiver { addr, messages }
    }

    /// TCP, or TLS with `tls` (a server config).
    async fn stream(
        listener: TcpListener,
        framing: Framing,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let messages: Arc<Mutex<Vec<String>>> = Arc::default();
        let m = messages.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let m = m.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        Some(config) => {
                            let acceptor = tokio_rustls::TlsAcceptor::from(config);
                            if let Ok(s) = acceptor.accept(stream).await {
                                read_frames(s, framing, m).await;
                            }
                        }
                        None => read_frames(stream, framing, m).await,
                    }
                });
            }
        });
        Receiver { addr, messages }
    }

    async fn tcp(framing: Framing) -> Receiver {
        Receiver::stream(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            framing,
            None,
        )
        .await
    }

    /// Waits for a message containing `needle` and returns it.
    async fn wait(&self, needle: &str) -> String {
        let mut found = None;
        wait_until(&format!("a syslog message with {needle:?}"), || {
            let hit = self
                .messages
                .lock()
                .unwrap()
                .iter()
                .find(|m| m.contains(needle))
                .cloned();
            let ok = hit.is_some();
            found = hit;
            async move { ok }
        })
        .await;
        found.unwrap()
    }
}

async fn read_frames<S: AsyncRead + Unpin>(s: S, framing: Framing, m: Arc<Mutex<Vec<String>>>) {
    let mut r = BufReader::new(s);
    loop {
        let message = match framing {
            Framing::Newline => {
                let mut line = String::new();
                match r.read_line(&mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => line.trim_end_matches('\n').to_owned(),
                }
            }
            Framing::OctetCounting => {
                let mut len = Vec::new();
                if r.read_until(b' ', &mut len).await.unwrap_or(0) == 0 {
                    return;
                }
                let n: usize = std::str::from_utf8(&len)
                    .unwrap()
                    .trim()
                    .parse()
                    .expect("an octet count");
                let mut buf = vec![0u8; n];
                if r.read_exact(&mut buf).await.is_err() {
                    return;
                }
                String::from_utf8(buf).unwrap()
            }
        };
        m.lock().unwrap().push(message);
    }
}

/// `<PRI>Mmm dd hh:mm:ss <hostname> mail_logs: Info: <text>`, PRI = facility × 8 + severity.
fn assert_rfc3164(message: &str, pri: u32, text: &str) {
    let head = format!("<{pri}>");
    assert!(message.starts_with(&head), "{message}");
    let rest = &message[head.len()..];
    // "Dec  3 16:05:09" — month, space-padded day, time.
    let (stamp, rest) = rest.split_at(15);
    let b = stamp.as_bytes();
    assert!(
        b[0].is_ascii_uppercase() && b[3] == b' ' && b[6] == b' ' && b[9] == b':' && b[12] == b':',
        "{message}"
    );
    assert_eq!(
        rest,
        format!(" rampart.test mail_logs: {text}"),
        "{message}"
    );
}

async fn send_one(app: &Appliance) -> u64 {
    app.accept_domains(&["example.com"]).await;
    let (mut c, _) = SmtpClient::greeted(app.smtp).await;
    let mid = queued_mid(
        &c.send_mail("a@sender.test", &["u@example.com"], &message("syslog"))
            .await,
    );
    c.cmd("QUIT").await;
    mid
}

#[tokio::test]
async fn mail_logs_are_pushed_over_udp_with_the_facility() {
    let r = Receiver::udp().await;
    let app = Appliance::start(&format!(
        "[logs]\nsyslog = \"udp://{}\"\nsyslog_facility = \"local3\"",
        r.addr
    ))
    .await;
    let mid = send_one(&app).await;
    let ready = r.wait(&format!("Info: MID {mid} ready ")).await;
    // local3 = 19, Info = 6.
    let text = ready.split_once("mail_logs: ").unwrap().1;
    assert_rfc3164(&ready, 19 * 8 + 6, text);
    // The same event, in the file.
    app.wait_log(&text["Info: ".len()..]).await;
    wait_until("the push to count what it sent", || async {
        let (_, status) = app.api(Method::GET, "/status", None).await;
        status["syslog"]["sent"].as_u64().unwrap() > 0
    })
    .await;
    let (_, status) = app.api(Method::GET, "/status", None).await;
    assert_eq!(status["syslog"]["target"], format!("udp://{}", r.addr));
    assert_eq!(status["syslog"]["dropped"], 0);

    // `rampart logconfig`: both subscriptions, with the counters the appliance recorded.
    let out = app.cli(&["logconfig"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "2. \"mail_logs\" Type: \"Mail Logs\" Retrieval: Syslog Push udp://{} facility local3",
            r.addr
        )),
        "{text}"
    );
    assert!(text.contains("Retrieval: File "), "{text}");
    wait_until("the push's counters to be recorded", || async {
        let out = app.cli(&["logconfig", "--json"]).await;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        !json["syslog"]["status"].is_null()
    })
    .await;
    let out = app.cli(&["logconfig", "--json"]).await;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["syslog"]["facility"], "local3");
    assert_eq!(
        json["syslog"]["status"]["target"],
        format!("udp://{}", r.addr)
    );
    assert_eq!(json["file"]["retain_files"], 10);
}

#[tokio::test]
async fn mail_logs_are_pushed_over_tcp_in_either_framing() {
    for (framing, name) in [
        (Framing::OctetCounting, "octet-counting"),
        (Framing::Newline, "newline"),
    ] {
        let r = Receiver::tcp(framing).await;
        let app = Appliance::start(&format!(
            "[logs]\nsyslog = \"tcp://{}\"\nsyslog_framing = \"{name}\"",
            r.addr
        ))
        .await;
        let mid = send_one(&app).await;
        let start = r.wait(&format!("Start MID {mid} ICID ")).await;
        // mail = 2.
        let text = start.split_once("mail_logs: ").unwrap().1;
        assert_rfc3164(&start, 2 * 8 + 6, text);
        assert!(text.starts_with("Info: Start MID"), "{name}: {start}");
    }
}

#[tokio::test]
async fn mail_logs_are_pushed_over_tls_verified_with_the_ca_file() {
    let (server, pem) = crate::sink::tls_server(&["localhost"]);
    let r = Receiver::stream(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        Framing::Newline,
        Some(server),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("syslog-ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let app = Appliance::start(&format!(
        "[logs]\nsyslog = \"tls://localhost:{}\"\nsyslog_ca_file = \"{}\"",
        r.addr.port(),
        ca.display()
    ))
    .await;
    let mid = send_one(&app).await;
    r.wait(&format!("Info: MID {mid} ready ")).await;

    // Without the CA the server is not trusted: nothing is pushed, and the status says why.
    let r2 = Receiver::stream(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        Framing::Newline,
        Some(crate::sink::tls_server(&["localhost"]).0),
    )
    .await;
    let app = Appliance::start(&format!(
        "[logs]\nsyslog = \"tls://localhost:{}\"",
        r2.addr.port()
    ))
    .await;
    send_one(&app).await;
    wait_until("the TLS failure to show", || async {
        let (_, s) = app.api(Method::GET, "/status", None).await;
        s["syslog"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("TLS handshake"))
    })
    .await;
    assert!(r2.messages.lock().unwrap().is_empty());
}

/// A syslog server that is down never holds mail back: events beyond the queue are dropped and
/// counted, and those that waited are pushed once the server is back.
#[tokio::test]
async fn a_down_syslog_server_never_blocks_mail() {
    let port = free_port();
    let app = Appliance::start(&format!(
        "[logs]\nsyslog = \"tcp://127.0.0.1:{port}\"\nsyslog_queue_lines = 5"
    ))
    .await;
    app.accept_domains(&["example.com"]).await;
    let mut mids = Vec::new();
    for _ in 0..3 {
        let (mut c, _) = SmtpClient::greeted(app.smtp).await;
        let reply = c
            .send_mail("a@sender.test", &["u@example.com"], &message("down"))
            .await;
        assert_eq!(reply.code, 250, "mail flows while syslog is down");
        mids.push(queued_mid(&reply));
        c.cmd("QUIT").await;
    }
    let (_, s) = app.api(Method::GET, "/status", None).await;
    let syslog = &s["syslog"];
    assert_eq!(syslog["connected"], false, "{s}");
    assert!(syslog["dropped"].as_u64().unwrap() > 0, "{s}");
    assert!(syslog["queued"].as_u64().unwrap() <= 5, "{s}");
    assert!(
        syslog["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{s}"
    );
    // The server comes back: what waited is pushed.
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let r = Receiver::stream(listener, Framing::Newline, None).await;
    r.wait("mail_logs: Info: ").await;
    wait_until("the push to reconnect", || async {
        let (_, s) = app.api(Method::GET, "/status", None).await;
        s["syslog"]["connected"] == true && s["syslog"]["queued"] == 0
    })
    .await;
}
