//! The scanning engines' clients against the real daemons from Debian's packages: rspamd and
//! clamd, each started here on a free loopback port with a configuration of the test's own (the
//! harness of issue 15's anti-spam and anti-virus services).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use rampart_scan::{Clamd, ClamdAddress, Rspamd, ScanEnvelope, ScanError, VirusVerdict};
use rampart_testkit::{Group, RspamdConf};

use crate::dns::DnsServer;
use crate::harness::free_port;

/// How long a daemon may take to start (rspamd compiles its rules on a fresh database dir).
const START_DEADLINE: Duration = Duration::from_secs(90);

/// GTUBE, the anti-spam test string: rspamd rejects any message carrying it.
pub const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

/// A subject rspamd scores as suspected spam (see `start_rspamd`).
pub const SUSPECT_SUBJECT: &str = "SUSPECT-TEST offer";

/// EICAR inside a zip archive, base64-encoded: clamd finds it by unpacking.
pub const EICAR_ZIP_BASE64: &str = "UEsDBBQAAAAIAAAAg108z1FoRgAAAEQAAAAJAAAAZWljYXIuY29tizD1VwxQdXAMiDaJCYiKMDXRCIjTNHd21jSvVXH1dHYM0g0OcfRzcQxy0XX0C/EM8wwKDdYNcQ0O0XXz9HFVVPHQ9tACAFBLAQIUAxQAAAAIAAAAg108z1FoRgAAAEQAAAAJAAAAAAAAAAAAAACAAQAAAABlaWNhci5jb21QSwUGAAAAAAEAAQA3AAAAbQAAAAAA";

/// EICAR, the anti-virus test file (68 bytes), base64-encoded as a mail client would attach it.
pub const EICAR_BASE64: &str =
    "WDVPIVAlQEFQWzRcUFpYNTQoUF4pN0NDKTd9JEVJQ0FSLVNUQU5EQVJELUFOVElWSVJVUy1URVNULUZJTEUhJEgrSCo=";

/// A daemon started for one test, killed with it (its whole process group).
pub struct Daemon {
    pub addr: SocketAddr,
    _child: Group,
    _dir: tempfile::TempDir,
    /// rspamd answers SERVFAIL-at-once DNS from here, so scans never wait on timeouts.
    _dns: Option<DnsServer>,
}

/// rspamd with its normal worker on a free port and DNS pointed at a server that answers at
/// once.
pub async fn start_rspamd() -> Daemon {
    let dns = DnsServer::start_failing().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let conf = RspamdConf::new(d, dns.addr, "0.5s").unwrap();
    let write = |name: &str, text: &str| conf.local(name, text).unwrap();
    write(
        "worker-normal.inc",
        &format!("bind_socket = \"127.0.0.1:{port}\";\ncount = 1;\n"),
    );
    write(
        "worker-controller.inc",
        &format!("bind_socket = \"127.0.0.1:{}\";\n", free_port()),
    );
    write(
        "worker-proxy.inc",
        &format!("bind_socket = \"127.0.0.1:{}\";\n", free_port()),
    );
    // A short public-suffix list: compiling rspamd's full one takes ~11 s of its start.
    std::fs::write(d.join("tld.dat"), "com\nnet\norg\ntest\nexample\n").unwrap();
    conf.append(
        "options.inc",
        &format!("url_tld = \"{}\";\n", d.join("tld.dat").display()),
    )
    .unwrap();
    // A subject with SUSPECT-TEST lands between `add header` (50) and `reject` (100): suspected
    // spam, whatever DNS says (plain mail stays well below `add header`).
    write(
        "multimap.conf",
        "TEST_SUSPECT { type = \"header\"; header = \"Subject\"; regexp = true; map = \"${LOCAL_CONFDIR}/suspect.map\"; score = 60.0; }\n",
    );
    std::fs::write(d.join("suspect.map"), "/SUSPECT-TEST/\n").unwrap();
    let child = conf
        .spawn()
        .expect("rspamd is installed (cargo xtask test installs it)");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let client = Rspamd::new(&format!("http://{addr}"), Duration::from_secs(2)).unwrap();
    wait_up("rspamd", d, || async { client.ping().await.is_ok() }).await;
    Daemon {
        addr,
        _child: child,
        _dir: dir,
        _dns: Some(dns),
    }
}

/// clamd on a free port with the one-line test database and `max_stream` as its stream limit.
pub async fn start_clamd(max_stream: &str) -> Daemon {
    start_clamd_with(max_stream, "").await
}

/// clamd with extra lines in its configuration.
pub async fn start_clamd_with(max_stream: &str, extra: &str) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let child = rampart_testkit::spawn_clamd(d, port, max_stream, extra)
        .expect("clamd is installed (cargo xtask test installs clamav-daemon)");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let client = Clamd::new(ClamdAddress::Tcp(addr.to_string()), Duration::from_secs(2));
    wait_up("clamd", d, || async { client.version().await.is_ok() }).await;
    Daemon {
        addr,
        _child: child,
        _dir: dir,
        _dns: None,
    }
}

async fn wait_up<F, Fut>(name: &str, dir: &Path, mut up: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while !up().await {
        if start.elapsed() > START_DEADLINE {
            let logs: Vec<String> = ["log/rspamd.log", "clamd.log"]
                .iter()
                .filter_map(|f| std::fs::read_to_string(dir.join(f)).ok())
                .collect();
            panic!("{name} did not start; its log:\n{}", logs.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn message(body: &str) -> Bytes {
    Bytes::from(format!(
        "From: a@sender.test\r\nTo: u@example.com\r\nSubject: test\r\nMessage-ID: <t@sender.test>\r\nDate: Thu, 3 Dec 2026 10:00:00 +0000\r\n\r\n{body}\r\n"
    ))
}

fn envelope(recipients: &[String]) -> ScanEnvelope<'_> {
    ScanEnvelope {
        client_ip: Some("192.0.2.7".parse().unwrap()),
        helo: "mx.sender.test",
        sender: "a@sender.test",
        recipients,
        user: None,
        queue_id: "42".into(),
    }
}

/// A listener that accepts connections and never answers: an engine that hangs.
async fn silent_listener() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    (addr, task)
}

#[tokio::test]
async fn rspamd_scores_gtube_as_positive_and_plain_mail_as_not() {
    let daemon = start_rspamd().await;
    let client = Rspamd::new(&format!("http://{}", daemon.addr), Duration::from_secs(10)).unwrap();
    let rcpts = vec!["u@example.com".to_owned()];
    let spam = client
        .check(message(GTUBE), &envelope(&rcpts))
        .await
        .unwrap();
    assert!(spam.is_positive(), "{spam:?}");
    assert!(spam.symbols.iter().any(|s| s == "GTUBE"), "{spam:?}");
    let ham = client
        .check(message("Lunch at noon?"), &envelope(&rcpts))
        .await
        .unwrap();
    assert!(!ham.is_positive() && !ham.is_suspect(), "{ham:?}");
    assert!(ham.score < ham.required_score, "{ham:?}");
    let suspect = client
        .check(
            Bytes::from(format!(
                "From: a@sender.test\r\nTo: u@example.com\r\nSubject: {SUSPECT_SUBJECT}\r\n\r\nhi\r\n"
            )),
            &envelope(&rcpts),
        )
        .await
        .unwrap();
    assert!(suspect.is_suspect(), "{suspect:?}");
    // The envelope reached rspamd: its symbols compare it with the message.
    for symbol in ["FROM_EQ_ENVFROM", "RCPT_COUNT_ONE", "TO_MATCH_ENVRCPT_ALL"] {
        assert!(ham.symbols.iter().any(|s| s == symbol), "{symbol}: {ham:?}");
    }
    // The connection is kept: many scans in a row work on the pool.
    for _ in 0..5 {
        let again = client
            .check(message(GTUBE), &envelope(&rcpts))
            .await
            .unwrap();
        assert!(again.is_positive());
    }
    assert!(client.ping().await.unwrap().starts_with("rspamd"));
}

#[tokio::test]
async fn rspamd_down_or_hung_is_an_error_never_a_verdict() {
    let closed = Rspamd::new(
        &format!("http://127.0.0.1:{}", free_port()),
        Duration::from_secs(5),
    )
    .unwrap();
    let rcpts = vec!["u@example.com".to_owned()];
    let err = closed
        .check(message("x"), &envelope(&rcpts))
        .await
        .unwrap_err();
    assert!(matches!(err, ScanError::Connect { .. }), "{err}");
    let (addr, _task) = silent_listener().await;
    let hung = Rspamd::new(&format!("http://{addr}"), Duration::from_millis(300)).unwrap();
    let err = hung
        .check(message("x"), &envelope(&rcpts))
        .await
        .unwrap_err();
    assert!(matches!(err, ScanError::Timeout { .. }), "{err}");
}

#[tokio::test]
async fn clamd_finds_eicar_attached_and_passes_clean_mail() {
    let daemon = start_clamd("1M").await;
    let client = Clamd::new(
        ClamdAddress::Tcp(daemon.addr.to_string()),
        Duration::from_secs(10),
    );
    assert!(client.version().await.unwrap().starts_with("ClamAV"));
    let infected = format!(
        "From: a@sender.test\r\nSubject: invoice\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n\
--b\r\nContent-Type: application/octet-stream; name=eicar.com\r\nContent-Disposition: attachment; filename=eicar.com\r\nContent-Transfer-Encoding: base64\r\n\r\n{EICAR_BASE64}\r\n--b--\r\n"
    );
    assert_eq!(
        client.scan(infected.as_bytes()).await.unwrap(),
        VirusVerdict::Infected("Eicar-Test-Signature.UNOFFICIAL".into())
    );
    assert_eq!(
        client.scan(&message("nothing to see")).await.unwrap(),
        VirusVerdict::Clean
    );
    // Over clamd's stream limit: an error (the caller's "unscannable"), never "clean".
    let big = vec![b'a'; 2 << 20];
    let err = client.scan(&big).await.unwrap_err();
    assert!(
        matches!(&err, ScanError::Engine { message, .. } if message.contains("size limit")),
        "{err}"
    );
}

#[tokio::test]
async fn clamd_down_or_hung_is_an_error_never_a_verdict() {
    let closed = Clamd::new(
        ClamdAddress::Tcp(format!("127.0.0.1:{}", free_port())),
        Duration::from_secs(5),
    );
    let err = closed.scan(b"x").await.unwrap_err();
    assert!(matches!(err, ScanError::Connect { .. }), "{err}");
    let (addr, _task) = silent_listener().await;
    let hung = Clamd::new(
        ClamdAddress::Tcp(addr.to_string()),
        Duration::from_millis(300),
    );
    let err = hung.scan(b"x").await.unwrap_err();
    assert!(matches!(err, ScanError::Timeout { .. }), "{err}");
}

/// A TCP forwarder in front of `to` that counts the connections it was asked for and says when
/// the server side of one closed.
struct CountingProxy {
    addr: SocketAddr,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    closed_by_server: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl CountingProxy {
    async fn start(to: SocketAddr) -> CountingProxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let closed_by_server = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (a, c) = (accepted.clone(), closed_by_server.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                let c = c.clone();
                tokio::spawn(async move {
                    let server = tokio::net::TcpStream::connect(to).await.unwrap();
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = tokio::spawn(async move { tokio::io::copy(&mut cr, &mut sw).await });
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    c.fetch_add(1, Ordering::SeqCst);
                    up.abort();
                });
            }
        });
        CountingProxy {
            addr,
            accepted,
            closed_by_server,
        }
    }
}

/// Scans reuse one clamd session; a session clamd closed while idle is replaced, and the scan
/// on it still gets its verdict.
#[tokio::test]
async fn clamd_sessions_are_reused_and_replaced_when_clamd_closes_them() {
    use std::sync::atomic::Ordering;
    let daemon = start_clamd_with("1M", "ReadTimeout 1\n").await;
    let proxy = CountingProxy::start(daemon.addr).await;
    let client = Clamd::new(
        ClamdAddress::Tcp(proxy.addr.to_string()),
        Duration::from_secs(10),
    );
    for _ in 0..5 {
        assert_eq!(
            client.scan(&message("nothing to see")).await.unwrap(),
            VirusVerdict::Clean
        );
    }
    assert_eq!(
        proxy.accepted.load(Ordering::SeqCst),
        1,
        "five scans, one session"
    );
    // clamd ends a session that sends nothing for ReadTimeout (a second here).
    crate::harness::wait_until("clamd to close the idle session", || async {
        proxy.closed_by_server.load(Ordering::SeqCst) >= 1
    })
    .await;
    assert_eq!(
        client.scan(&message("still fine")).await.unwrap(),
        VirusVerdict::Clean
    );
    assert_eq!(proxy.accepted.load(Ordering::SeqCst), 2);
}
