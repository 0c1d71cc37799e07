//! A scriptable SMTP sink standing in for destination servers and the Threat Defense intake:
//! it can answer any code at any step, drop the connection mid-DATA, be slow, offer STARTTLS,
//! and records everything it receives.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_smtp::{DataDecoder, DataStatus};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the sink answers.
#[derive(Clone)]
pub struct Script {
    pub banner: String,
    /// Answer EHLO with 502, as an old server would, so the client must fall back to HELO.
    pub ehlo_refused: bool,
    pub pipelining: bool,
    /// Offer STARTTLS with this server configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Replies to RCPT by recipient address; others get `250 2.1.5 Ok`.
    pub rcpt: HashMap<String, String>,
    /// Replies to MAIL FROM, used in order (then `250 2.1.0 Ok`).
    pub mail: VecDeque<String>,
    /// Replies after the end of data, used in order (then `250 2.0.0 Ok: queued`).
    pub data: VecDeque<String>,
    /// Close the connection after this many bytes of the next message's data (once).
    pub drop_in_data: Option<usize>,
    /// Wait before every reply.
    pub delay: Duration,
}

impl Default for Script {
    fn default() -> Script {
        Script {
            banner: "220 sink.test ESMTP".into(),
            ehlo_refused: false,
            pipelining: true,
            tls: None,
            rcpt: HashMap::new(),
            mail: VecDeque::new(),
            data: VecDeque::new(),
            drop_in_data: None,
            delay: Duration::ZERO,
        }
    }
}

/// A message the sink accepted.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub rcpts: Vec<String>,
    pub data: Vec<u8>,
    pub tls: bool,
}

impl Received {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

#[derive(Debug, Default)]
pub struct Stats {
    pub messages: Vec<Received>,
    /// Every MAIL FROM seen (accepted or not), i.e. delivery attempts.
    pub mail_commands: usize,
    pub connections: usize,
    pub open: usize,
    pub max_open: usize,
    pub quits: usize,
}

#[derive(Clone)]
pub struct Sink {
    pub addr: SocketAddr,
    pub script: Arc<Mutex<Script>>,
    pub stats: Arc<Mutex<Stats>>,
}

impl Sink {
    pub async fn start(script: Script) -> Sink {
        Sink::start_on("127.0.0.1:0".parse().unwrap(), script).await
    }

    /// Starts on a given address (another loopback IP, a port shared with other sinks).
    pub async fn start_on(addr: SocketAddr, script: Script) -> Sink {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sink = Sink {
            addr,
            script: Arc::new(Mutex::new(script)),
            stats: Arc::default(),
        };
        let s = sink.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move { s.session(stream).await });
            }
        });
        sink
    }

    pub fn messages(&self) -> Vec<Received> {
        self.stats.lock().unwrap().messages.clone()
    }

    pub fn mail_commands(&self) -> usize {
        self.stats.lock().unwrap().mail_commands
    }

    pub fn set<F: FnOnce(&mut Script)>(&self, f: F) {
        f(&mut self.script.lock().unwrap());
    }

    /// Waits until the sink holds at least `n` messages; returns them.
    pub async fn wait_messages(&self, n: usize) -> Vec<Received> {
        crate::harness::wait_until(&format!("{n} messages at sink {}", self.addr), || async {
            self.messages().len() >= n
        })
        .await;
        self.messages()
    }

    async fn session(&self, stream: TcpStream) {
        {
            let mut st = self.stats.lock().unwrap();
            st.connections += 1;
            st.open += 1;
            st.max_open = st.max_open.max(st.open);
        }
        let mut conn = Conn {
            stream: Box::new(stream) as Box<dyn Io>,
            buf: Vec::new(),
            tls: false,
        };
        let _ = self.serve(&mut conn).await;
        self.stats.lock().unwrap().open -= 1;
    }

    async fn serve(&self, conn: &mut Conn) -> Option<()> {
        let banner = self.script.lock().unwrap().banner.clone();
        self.reply(conn, &banner).await?;
        if !banner.starts_with('2') {
            return None;
        }
        let mut from = String::new();
        let mut rcpts: Vec<String> = Vec::new();
        loop {
            let line = conn.line().await?;
            let upper = line.to_ascii_uppercase();
            if upper.starts_with("EHLO") && self.script.lock().unwrap().ehlo_refused {
                self.reply(conn, "502 5.5.1 EHLO not supported").await?;
            } else if upper.starts_with("EHLO") {
                let (pipelining, tls) = {
                    let s = self.script.lock().unwrap();
                    (s.pipelining, s.tls.is_some() && !conn.tls)
                };
                let mut r = String::from("250-sink.test\r\n250-8BITMIME\r\n250-SIZE 100000000");
                if pipelining {
                    r.push_str("\r\n250-PIPELINING");
                }
                if tls {
                    r.push_str("\r\n250-STARTTLS");
                }
                r.push_str("\r\n250 ENHANCEDSTATUSCODES");
                self.reply(conn, &r).await?;
            } else if upper.starts_with("HELO") {
                self.reply(conn, "250 sink.test").await?;
            } else if upper == "STARTTLS" {
                let config = self.script.lock().unwrap().tls.clone()?;
                self.reply(conn, "220 2.0.0 go ahead").await?;
                let plain = std::mem::replace(&mut conn.stream, Box::new(tokio::io::duplex(1).0));
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                let tls = acceptor.accept(plain).await.ok()?;
                conn.stream = Box::new(tls);
                conn.tls = true;
                conn.buf.clear();
            } else if upper.starts_with("MAIL FROM:") {
                self.stats.lock().unwrap().mail_commands += 1;
                let r = self
                    .script
                    .lock()
                    .unwrap()
                    .mail
                    .pop_front()
                    .unwrap_or_else(|| "250 2.1.0 Ok".into());
                if r.starts_with('2') {
                    from = path(&line);
                    rcpts.clear();
                }
                self.reply(conn, &r).await?;
            } else if upper.starts_with("RCPT TO:") {
                let rcpt = path(&line);
                let r = self
                    .script
                    .lock()
                    .unwrap()
                    .rcpt
                    .get(&rcpt)
                    .cloned()
                    .unwrap_or_else(|| "250 2.1.5 Ok".into());
                if r.starts_with('2') {
                    rcpts.push(rcpt);
                }
                self.reply(conn, &r).await?;
            } else if upper == "DATA" {
                if rcpts.is_empty() {
                    self.reply(conn, "554 5.5.1 no valid recipients").await?;
                    continue;
                }
                self.reply(conn, "354 go ahead").await?;
                let drop_after = self.script.lock().unwrap().drop_in_data.take();
                let data = conn.data(drop_after).await?;
                let r = self
                    .script
                    .lock()
                    .unwrap()
                    .data
                    .pop_front()
                    .unwrap_or_else(|| "250 2.0.0 Ok: queued".into());
                if r.starts_with('2') {
                    self.stats.lock().unwrap().messages.push(Received {
                        from: from.clone(),
                        rcpts: rcpts.clone(),
                        data,
                        tls: conn.tls,
                    });
                }
                rcpts.clear();
                self.reply(conn, &r).await?;
            } else if upper == "RSET" || upper.starts_with("NOOP") {
                rcpts.clear();
                self.reply(conn, "250 2.0.0 Ok").await?;
            } else if upper == "QUIT" {
                self.stats.lock().unwrap().quits += 1;
                self.reply(conn, "221 2.0.0 Bye").await?;
                return Some(());
            } else {
                self.reply(conn, "500 5.5.1 what?").await?;
            }
        }
    }

    async fn reply(&self, conn: &mut Conn, text: &str) -> Option<()> {
        let delay = self.script.lock().unwrap().delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        conn.stream
            .write_all(format!("{text}\r\n").as_bytes())
            .await
            .ok()?;
        conn.stream.flush().await.ok()
    }
}

fn path(line: &str) -> String {
    let start = line.find('<').map(|i| i + 1).unwrap_or(0);
    let end = line.find('>').unwrap_or(line.len());
    line.get(start..end).unwrap_or("").to_owned()
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

struct Conn {
    stream: Box<dyn Io>,
    buf: Vec<u8>,
    tls: bool,
}

impl Conn {
    async fn fill(&mut self) -> Option<()> {
        let mut chunk = [0u8; 16384];
        let n = self.stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Some(())
    }

    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(String::from_utf8_lossy(&line).trim_end().to_owned());
            }
            self.fill().await?;
        }
    }

    /// Reads the message up to CRLF.CRLF; `drop_after` closes the connection part way.
    async fn data(&mut self, drop_after: Option<usize>) -> Option<Vec<u8>> {
        let mut decoder = DataDecoder::new(usize::MAX, b"");
        let mut seen = 0usize;
        loop {
            if !self.buf.is_empty() {
                if drop_after.is_some_and(|limit| seen + self.buf.len() >= limit) {
                    return None;
                }
                seen += self.buf.len();
                match decoder.feed(&self.buf) {
                    DataStatus::Done { consumed } => {
                        self.buf.drain(..consumed);
                        return Some(decoder.into_message());
                    }
                    DataStatus::More => self.buf.clear(),
                }
            }
            self.fill().await?;
        }
    }
}

/// A self-signed certificate for `names`, as a server config and the certificate's PEM.
pub fn tls_server(names: &[&str]) -> (Arc<rustls::ServerConfig>, String) {
    let cert =
        rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    let pem = cert.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    (Arc::new(config), pem)
}
