//! Syslog push of mail_logs (AsyncOS *log subscriptions*, SPEC §5): every event also goes to a
//! syslog server as `<PRI>Mmm dd hh:mm:ss <hostname> mail_logs: Info: <text>` (RFC 3164), over
//! UDP, TCP or TLS, so that SIEM parsers that type ESA logs by the tag `mail_logs` read it.
//!
//! A slow or unreachable server never holds mail back: events wait in a bounded queue that a
//! thread of its own drains; when it is full, new events are dropped for syslog (never for the
//! file) and counted. A lost TCP or TLS connection is reopened with a growing pause.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// How long connecting or writing to the server may take before the connection is given up.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest pause between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Longest message in a UDP datagram; longer ones are cut (rsyslog's default limit).
const MAX_UDP_BYTES: usize = 8192;

/// How events reach the server.
#[derive(Debug, Clone)]
pub enum Transport {
    Udp,
    Tcp,
    /// TLS over TCP, verified with this configuration (RFC 5425).
    Tls(Arc<rustls::ClientConfig>),
}

/// How messages are delimited on a TCP or TLS stream (RFC 6587).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `<length> <message>`.
    OctetCounting,
    /// `<message>\n`, as AsyncOS and most SIEM inputs expect.
    Newline,
}

/// Where and how to push.
#[derive(Debug, Clone)]
pub struct SyslogConfig {
    pub transport: Transport,
    pub host: String,
    pub port: u16,
    /// The syslog facility number (mail = 2, local0 = 16, …).
    pub facility: u8,
    pub framing: Framing,
    /// The host name in each message's header.
    pub hostname: String,
    /// Events that may wait for the server; more are dropped and counted.
    pub queue_lines: usize,
}

impl SyslogConfig {
    /// `udp://host:514`, as the administrator wrote it.
    pub fn target(&self) -> String {
        let scheme = match self.transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls(_) => "tls",
        };
        format!("{scheme}://{}:{}", self.host, self.port)
    }
}

/// What the push has done, for *System Status* and *Log Subscriptions*.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogStatus {
    pub target: String,
    /// UDP: the socket is open; TCP/TLS: the connection is up.
    pub connected: bool,
    pub sent: u64,
    pub dropped: u64,
    /// Events waiting for the server.
    pub queued: u64,
    pub last_error: Option<String>,
}

/// One event on its way to the server.
struct Pending {
    at: SystemTime,
    level: &'static str,
    text: String,
}

/// The queue between the loggers and the sender thread, with the counters.
pub struct Syslog {
    target: String,
    capacity: usize,
    state: Mutex<State>,
    ready: Condvar,
    connected: AtomicBool,
    sent: AtomicU64,
    dropped: AtomicU64,
    /// Events the sender has taken and not yet sent.
    inflight: AtomicU64,
    last_error: Mutex<Option<String>>,
}

#[derive(Default)]
struct State {
    events: VecDeque<Pending>,
    closed: bool,
}

impl std::fmt::Debug for Syslog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syslog")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Syslog {
    /// Starts the sender thread.
    pub(crate) fn start(config: SyslogConfig) -> io::Result<Arc<Syslog>> {
        let queue = Arc::new(Syslog {
            target: config.target(),
            capacity: config.queue_lines.max(1),
            state: Mutex::default(),
            ready: Condvar::new(),
            connected: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            inflight: AtomicU64::new(0),
            last_error: Mutex::new(None),
        });
        let q = queue.clone();
        std::thread::Builder::new()
            .name("syslog".into())
            .spawn(move || Sender::new(config, q).run())?;
        Ok(queue)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues an event; never waits for the server.
    pub(crate) fn push(&self, level: &'static str, text: &str) {
        let mut state = self.lock();
        // The sender's batch counts too: at most `capacity` events wait in all.
        let waiting = state.events.len() + self.inflight.load(Ordering::Relaxed) as usize;
        if waiting >= self.capacity {
            drop(state);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let was_empty = state.events.is_empty();
        state.events.push_back(Pending {
            at: SystemTime::now(),
            level,
            text: text.to_owned(),
        });
        drop(state);
        if was_empty {
            self.ready.notify_one();
        }
    }

    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    pub fn status(&self) -> SyslogStatus {
        SyslogStatus {
            target: self.target.clone(),
            connected: self.connected.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            queued: self.lock().events.len() as u64 + self.inflight.load(Ordering::Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    fn failed(&self, e: &str) {
        self.connected.store(false, Ordering::Relaxed);
        let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        if last.as_deref() != Some(e) {
            tracing::warn!(target = %self.target, error = %e, "syslog push failed");
        }
        *last = Some(e.to_owned());
    }

    /// Waits for events and takes them all; `None` once closed and empty.
    fn take(&self) -> Option<VecDeque<Pending>> {
        let mut state = self.lock();
        while state.events.is_empty() && !state.closed {
            state = self.ready.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        if state.events.is_empty() {
            return None;
        }
        Some(std::mem::take(&mut state.events))
    }
}

enum Connection {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

struct Sender {
    config: SyslogConfig,
    queue: Arc<Syslog>,
    conn: Option<Connection>,
    backoff: Duration,
}

impl Sender {
    fn new(config: SyslogConfig, queue: Arc<Syslog>) -> Sender {
        Sender {
            config,
            queue,
            conn: None,
            backoff: Duration::from_secs(1),
        }
    }

    fn run(mut self) {
        // Events taken from the queue and not yet sent: the queue stays free for new ones.
        let mut inflight: VecDeque<Pending> = VecDeque::new();
        loop {
            self.queue
                .inflight
                .store(inflight.len() as u64, Ordering::Relaxed);
            if inflight.is_empty() {
                match self.queue.take() {
                    Some(batch) => {
                        self.queue
                            .inflight
                            .store(batch.len() as u64, Ordering::Relaxed);
                        inflight = batch;
                    }
                    None => return,
                }
            }
            if self.conn.is_none() {
                match self.connect() {
                    Ok(c) => {
                        self.conn = Some(c);
                        self.queue.connected.store(true, Ordering::Relaxed);
                        self.backoff = Duration::from_secs(1);
                    }
                    Err(e) => {
                        self.queue.failed(&e);
                        // Wait before the next attempt, but leave at once when the log closes
                        // (what is left cannot be delivered anyway).
                        let closed = {
                            let state = self.queue.lock();
                            let (state, _) = self
                                .queue
                                .ready
                                .wait_timeout_while(state, self.backoff, |s| !s.closed)
                                .unwrap_or_else(|p| p.into_inner());
                            state.closed
                        };
                        if closed {
                            return;
                        }
                        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                }
            }
            let mut out = Vec::with_capacity(inflight.len() * 160);
            let mut count = 0u64;
            while let Some(p) = inflight.front() {
                let message = self.message(p);
                if let Some(Connection::Udp(socket)) = &self.conn {
                    if let Err(e) = socket.send(message.as_bytes()) {
                        self.queue.failed(&e.to_string());
                        self.conn = None;
                        break;
                    }
                    self.queue.sent.fetch_add(1, Ordering::Relaxed);
                } else {
                    match self.config.framing {
                        Framing::OctetCounting => {
                            out.extend_from_slice(format!("{} ", message.len()).as_bytes());
                            out.extend_from_slice(message.as_bytes());
                        }
                        Framing::Newline => {
                            out.extend_from_slice(message.as_bytes());
                            out.push(b'\n');
                        }
                    }
                    count += 1;
                }
                inflight.pop_front();
            }
            if out.is_empty() {
                continue;
            }
            let written = match &mut self.conn {
                Some(Connection::Tcp(s)) => s.write_all(&out).and_then(|()| s.flush()),
                Some(Connection::Tls(s)) => s.write_all(&out).and_then(|()| s.flush()),
                _ => Ok(()),
            };
            match written {
                Ok(()) => {
                    self.queue.sent.fetch_add(count, Ordering::Relaxed);
                }
                Err(e) => {
                    // The batch may be partly written; it counts as lost rather than sent twice.
                    self.queue.dropped.fetch_add(count, Ordering::Relaxed);
                    self.queue.failed(&e.to_string());
                    self.conn = None;
                }
            }
        }
    }

    /// `<PRI>Mmm dd hh:mm:ss hostname mail_logs: Info: text` (RFC 3164 §4.1).
    fn message(&self, p: &Pending) -> String {
        let severity: u8 = if p.level == "Warning" { 4 } else { 6 };
        let pri = u16::from(self.config.facility) * 8 + u16::from(severity);
        let stamp = chrono::DateTime::<chrono::Local>::from(p.at).format("%b %e %H:%M:%S");
        let mut m = format!(
            "<{pri}>{stamp} {} mail_logs: {}: {}",
            self.config.hostname, p.level, p.text
        );
        if matches!(self.config.transport, Transport::Udp) && m.len() > MAX_UDP_BYTES {
            let mut cut = MAX_UDP_BYTES;
            while !m.is_char_boundary(cut) {
                cut -= 1;
            }
            m.truncate(cut);
        }
        m
    }

    fn connect(&self) -> Result<Connection, String> {
        let c = &self.config;
        let addrs: Vec<_> = (c.host.as_str(), c.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", c.host))?
            .collect();
        let mut last = format!("{} has no address", c.host);
        for addr in addrs {
            let attempt = match &c.transport {
                Transport::Udp => {
                    let bind: std::net::SocketAddr = if addr.is_ipv4() {
                        ([0, 0, 0, 0], 0).into()
                    } else {
                        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                    };
                    UdpSocket::bind(bind)
                        .and_then(|s| s.connect(addr).map(|()| s))
                        .map(Connection::Udp)
                        .map_err(|e| e.to_string())
                }
                Transport::Tcp => tcp(addr).map(Connection::Tcp),
                Transport::Tls(tls) => tcp(addr).and_then(|s| {
                    let name = rustls::pki_types::ServerName::try_from(c.host.clone())
                        .map_err(|e| format!("{}: {e}", c.host))?;
                    let conn = rustls::ClientConnection::new(tls.clone(), name)
                        .map_err(|e| e.to_string())?;
                    let mut stream = rustls::StreamOwned::new(conn, s);
                    // Handshake now, so a certificate problem shows as a connection error.
                    while stream.conn.is_handshaking() {
                        stream
                            .conn
                            .complete_io(&mut stream.sock)
                            .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
                    }
                    Ok(Connection::Tls(Box::new(stream)))
                }),
            };
            match attempt {
                Ok(conn) => return Ok(conn),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

fn tcp(addr: std::net::SocketAddr) -> Result<TcpStream, String> {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    s.set_write_timeout(Some(IO_TIMEOUT))
        .and_then(|()| s.set_read_timeout(Some(IO_TIMEOUT)))
        .and_then(|()| s.set_nodelay(true))
        .map_err(|e| e.to_string())?;
    Ok(s)
}
