//! The test harness: starting the appliance, talking SMTP to it, reading its logs and store.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use rampart_store::Store;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

pub const ADMIN_PASSWORD: &str = "test-admin-password";
/// How long any awaited condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_rampart-under-test")
}

/// A running appliance with its own data dir.
pub struct Appliance {
    pub dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    child: Child,
    pub smtp: SocketAddr,
    pub web: SocketAddr,
    /// The `[[listener]]`s' addresses by name.
    pub listeners: std::collections::HashMap<String, SocketAddr>,
    pub config_path: PathBuf,
    pub stderr_path: PathBuf,
    _dns: Option<crate::dns::DnsServer>,
}

/// A failed test shows what the appliance logged: the end of its mail log and the start of its
/// stderr. A test that passed fails anyway if the appliance panicked anywhere (a panic in a task
/// kills only that task, so the test itself might not notice).
impl Drop for Appliance {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let stderr = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
            assert!(
                !stderr.contains("panicked at"),
                "the appliance panicked:\n{stderr}"
            );
            return;
        }
        let tail = |text: String| {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(60)..].join("\n")
        };
        // A panic's message is at the start of its report; the backtrace follows.
        let stderr = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let head: Vec<&str> = stderr.lines().take(40).collect();
        eprintln!(
            "--- the appliance's mail_logs (last lines) ---\n{}\n--- its stderr (first lines) ---\n{}",
            tail(self.mail_logs()),
            head.join("\n")
        );
    }
}

impl Appliance {
    /// Starts an appliance on the test defaults plus `extra` TOML (sections appended as-is).
    pub async fn start(extra: &str) -> Appliance {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_path_buf();
        let mut app = Appliance::start_in(&dir, extra).await;
        app._temp = Some(temp);
        app
    }

    /// Starts (or restarts) an appliance in an existing data dir.
    pub async fn start_in(dir: &Path, extra: &str) -> Appliance {
        let config_path = dir.join("rampart.toml");
        // Unless the test brings its own, a DNS server that answers SERVFAIL to everything: mail
        // the test does not route stays queued (a temporary failure) instead of bouncing.
        let dns = if extra.contains("[dns]") {
            None
        } else {
            Some(crate::dns::DnsServer::start_failing().await)
        };
        write_config(dir, &config_path, extra, dns.as_ref().map(|d| d.addr));
        let stderr_path = dir.join("stderr.log");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stderr_path)
            .unwrap();
        let mut child = Command::new(binary())
            .arg("--config")
            .arg(&config_path)
            .arg("serve")
            .env("RAMPART_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let (mut smtp, mut web) = (None, None);
        let mut listeners = std::collections::HashMap::new();
        let found = tokio::time::timeout(DEADLINE, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(a) = line.strip_prefix("smtp listening on ") {
                    smtp = Some(a.parse().unwrap());
                }
                if let Some(rest) = line.strip_prefix("smtp listener ")
                    && let Some((name, a)) = rest.split_once(" listening on ")
                {
                    listeners.insert(name.to_owned(), a.parse().unwrap());
                }
                if let Some(a) = line.strip_prefix("web listening on ") {
                    web = Some(a.parse().unwrap());
                }
                if smtp.is_some() && web.is_some() {
                    return true;
                }
            }
            false
        })
        .await;
        if found != Ok(true) {
            let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            panic!("appliance did not start; stderr:\n{err}");
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Appliance {
            dir: dir.to_path_buf(),
            _temp: None,
            child,
            smtp: smtp.unwrap(),
            web: web.unwrap(),
            listeners,
            config_path,
            stderr_path,
            _dns: dns,
        }
    }

    /// SIGKILL: no chance to clean up, as in a crash.
    pub async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }

    /// SIGTERM, then waits for the process to exit; returns its success.
    pub async fn terminate(&mut self) -> bool {
        let pid = self.child.id().unwrap() as i32;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .unwrap()
            .unwrap();
        status.success()
    }

    /// Kills this process and starts a new one on the same data dir.
    pub async fn crash_and_restart(mut self, extra: &str) -> Appliance {
        self.kill().await;
        let temp = self._temp.take();
        let mut next = Appliance::start_in(&self.dir, extra).await;
        next._temp = temp;
        next
    }

    pub fn mail_logs(&self) -> String {
        std::fs::read_to_string(self.dir.join("data/logs/mail_logs")).unwrap_or_default()
    }

    /// Waits until mail_logs contains `needle`; returns the whole log.
    pub async fn wait_log(&self, needle: &str) -> String {
        let start = std::time::Instant::now();
        loop {
            let logs = self.mail_logs();
            if logs.contains(needle) {
                return logs;
            }
            if start.elapsed() > DEADLINE {
                panic!("mail_logs never showed {needle:?}; it has:\n{logs}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Opens the appliance's database (concurrently with it, as SQLite WAL allows).
    pub async fn store(&self) -> Store {
        Store::open(&self.dir.join("data/rampart.db"))
            .await
            .unwrap()
    }

    pub async fn smtp(&self) -> SmtpClient<TcpStream> {
        SmtpClient::connect(self.smtp).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.web, path)
    }

    /// An API request as the admin; returns status and parsed JSON body.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        self.api_as("admin", ADMIN_PASSWORD, method, path, body)
            .await
    }

    pub async fn api_as(
        &self,
        user: &str,
        password: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let client = reqwest::Client::new();
        let mut req = client
            .request(method, self.url(&format!("/api/v1{path}")))
            .basic_auth(user, Some(password));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        (status, json)
    }

    /// A web UI page as the admin (logged in through the login form): its HTML.
    pub async fn page(&self, path: &str) -> String {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let login = client
            .post(self.url("/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("username=admin&password={ADMIN_PASSWORD}"))
            .send()
            .await
            .unwrap();
        let cookie = login.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let resp = client
            .get(self.url(path))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        resp.text().await.unwrap()
    }

    /// Runs a CLI subcommand against this appliance's configuration.
    pub async fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(binary())
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .output()
            .await
            .unwrap()
    }

    /// Replaces the RAT through the API.
    pub async fn accept_domains(&self, domains: &[&str]) {
        let rat: Vec<_> = domains
            .iter()
            .map(|d| serde_json::json!({"domain": d, "action": "accept"}))
            .collect();
        let (status, body) = self
            .api(
                reqwest::Method::PUT,
                "/rat",
                Some(serde_json::Value::Array(rat)),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
}

/// The test configuration: loopback, ports picked by the kernel, short timeouts where a test
/// needs them (through `extra`).
fn write_config(dir: &Path, path: &Path, extra: &str, dns: Option<SocketAddr>) {
    let text = format!(
        "hostname = \"rampart.test\"\ndata_dir = \"{}\"\n{}\n",
        dir.join("data").display(),
        merge_sections(extra, dns)
    );
    std::fs::write(path, text).unwrap();
}

/// Puts the test defaults into `[smtp]` and `[web]` unless `extra` sets those keys.
fn merge_sections(extra: &str, dns: Option<SocketAddr>) -> String {
    let mut table: toml::Table = extra.parse().unwrap();
    let smtp = table
        .entry("smtp")
        .or_insert(toml::Value::Table(Default::default()));
    if let toml::Value::Table(t) = smtp {
        t.entry("listen")
            .or_insert(toml::Value::Array(vec!["127.0.0.1:0".into()]));
    }
    let web = table
        .entry("web")
        .or_insert(toml::Value::Table(Default::default()));
    if let toml::Value::Table(t) = web {
        t.entry("listen").or_insert("127.0.0.1:0".into());
    }
    if let Some(dns) = dns {
        // Never the machine's resolver: tests only talk to loopback.
        let section = table
            .entry("dns")
            .or_insert(toml::Value::Table(Default::default()));
        if let toml::Value::Table(t) = section {
            t.entry("nameservers")
                .or_insert(toml::Value::Array(vec![dns.to_string().into()]));
        }
    }
    toml::to_string(&table).unwrap()
}

/// A raw SMTP client that reports exact replies.
pub struct SmtpClient<S> {
    pub stream: S,
    buf: Vec<u8>,
}

/// One reply: code and the text of all lines joined with `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

impl Reply {
    /// The first line as `code text`, e.g. `550 5.7.1 Relaying denied`.
    pub fn line(&self) -> String {
        format!("{} {}", self.code, self.text.lines().next().unwrap_or(""))
    }
}

impl SmtpClient<TcpStream> {
    pub async fn connect(addr: SocketAddr) -> SmtpClient<TcpStream> {
        let stream = TcpStream::connect(addr).await.unwrap();
        SmtpClient {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects and reads the banner.
    pub async fn greeted(addr: SocketAddr) -> (SmtpClient<TcpStream>, Reply) {
        let mut c = SmtpClient::connect(addr).await;
        let banner = c.reply().await.unwrap();
        (c, banner)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> SmtpClient<S> {
    pub fn new(stream: S) -> SmtpClient<S> {
        SmtpClient {
            stream,
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    /// Reads one (possibly multi-line) reply; `None` if the server closed the connection.
    pub async fn reply(&mut self) -> Option<Reply> {
        let mut code;
        let mut text = Vec::new();
        loop {
            let line = self.line().await?;
            code = line.get(..3)?.parse().ok()?;
            text.push(line.get(4..).unwrap_or("").to_owned());
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
        Some(Reply {
            code,
            text: text.join("\n"),
        })
    }

    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(String::from_utf8_lossy(&line).trim_end().to_owned());
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(DEADLINE, self.stream.read(&mut chunk))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends one command line and reads its reply.
    pub async fn cmd(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply()
            .await
            .unwrap_or_else(|| panic!("connection closed after {line:?}"))
    }

    /// EHLO, MAIL, RCPT..., DATA with `message` (dot-stuffed here); returns the final reply.
    pub async fn send_mail(&mut self, from: &str, to: &[&str], message: &str) -> Reply {
        assert_eq!(self.cmd("EHLO client.test").await.code, 250);
        self.transaction(from, to, message).await
    }

    /// MAIL, RCPT..., DATA on an already greeted session.
    pub async fn transaction(&mut self, from: &str, to: &[&str], message: &str) -> Reply {
        let r = self.cmd(&format!("MAIL FROM:<{from}>")).await;
        assert_eq!(r.code, 250, "{r:?}");
        for rcpt in to {
            let r = self.cmd(&format!("RCPT TO:<{rcpt}>")).await;
            assert_eq!(r.code, 250, "{r:?}");
        }
        let r = self.cmd("DATA").await;
        assert_eq!(r.code, 354, "{r:?}");
        let mut data = Vec::new();
        for line in message
            .strip_suffix("\r\n")
            .unwrap_or(message)
            .split("\r\n")
        {
            if line.starts_with('.') {
                data.push(b'.');
            }
            data.extend_from_slice(line.as_bytes());
            data.extend_from_slice(b"\r\n");
        }
        data.extend_from_slice(b".\r\n");
        self.send(&data).await;
        self.reply().await.unwrap()
    }

    /// True once the server has closed the connection (reads until EOF).
    pub async fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 1024];
        loop {
            match tokio::time::timeout(DEADLINE, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

/// The MID from `250 2.0.0 Ok: queued as N`.
/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    rampart_testkit::free_port().unwrap()
}

pub fn queued_mid(reply: &Reply) -> u64 {
    assert_eq!(reply.code, 250, "{reply:?}");
    reply.text.rsplit(' ').next().unwrap().parse().unwrap()
}

/// A small test message.
pub fn message(subject: &str) -> String {
    format!(
        "From: a@sender.test\r\nTo: u@example.com\r\nMessage-ID: <{subject}@sender.test>\r\nSubject: {subject}\r\n\r\nHello.\r\n"
    )
}

/// Runs `serve` with `config` where it must refuse to start; returns what it said on stderr.
pub async fn serve_refused(config: &Path) -> String {
    let out = Command::new(binary())
        .arg("--config")
        .arg(config)
        .arg("serve")
        .output()
        .await
        .unwrap();
    assert!(
        !out.status.success(),
        "serve started with {}",
        config.display()
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Waits for `cond` to become true, polling; fails the test after [`DEADLINE`].
pub async fn wait_until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while !cond().await {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A TCP connection to `to` from the loopback address `source`.
pub async fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(source.parse().unwrap(), 0))
        .unwrap();
    socket.connect(to).await.unwrap()
}
