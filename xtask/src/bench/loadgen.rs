//! The load generator: N concurrent SMTP sessions sending M messages of S bytes, one message per
//! connection (as `smtp-source` does), timing each message from the end of DATA to the `250`.
//! A run ends after a number of messages or at a deadline (a sustained run).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Default, Clone)]
pub struct LoadResult {
    pub sent: usize,
    pub failed: usize,
    pub elapsed: Duration,
    /// Accept latency of each message (end of DATA → 250).
    pub latencies: Vec<Duration>,
    /// When each message was accepted, beside its latency (for steady-state percentiles).
    pub accepted_at: Vec<Instant>,
    /// The sequence number of each accepted message.
    pub seqs: Vec<usize>,
}

impl LoadResult {
    /// Latencies of the messages accepted at or after `from`.
    pub fn latencies_since(&self, from: Instant) -> Vec<Duration> {
        self.accepted_at
            .iter()
            .zip(&self.latencies)
            .filter(|(at, _)| **at >= from)
            .map(|(_, l)| *l)
            .collect()
    }
}

/// When a run stops sending.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// After this many messages (numbered 0..n).
    Messages(usize),
    /// At this instant (no new message starts after it).
    At(Instant),
}

impl Stop {
    /// The number of the next message to send, drawn from `next` (shared by the run's
    /// sessions), or None when the run is over.
    pub fn next_seq(self, next: &AtomicUsize) -> Option<usize> {
        let seq = next.fetch_add(1, Ordering::Relaxed);
        let more = match self {
            Stop::Messages(n) => seq < n,
            Stop::At(t) => Instant::now() < t,
        };
        more.then_some(seq)
    }
}

/// The header block of message `seq`, like a mail client's, with `X-Bench-Seq` for the sinks.
fn headers(seq: usize) -> Vec<u8> {
    format!(
        "From: Load Generator <sender@bench.test>\r\nTo: <user@example.com>\r\nSubject: bench message {seq}\r\n\
Date: Sat, 28 Nov 2026 06:00:00 +0000\r\nMessage-ID: <bench.{seq}@bench.test>\r\nX-Bench-Seq: {seq}\r\n\
MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    )
    .into_bytes()
}

/// A body that brings a message to about `size` bytes: base64-looking lines of 76 characters
/// from a fixed seed, ending with the end-of-data line. Made once per run and shared by every
/// message, so the generator spends its time on SMTP rather than on making bytes.
fn body(size: usize) -> Vec<u8> {
    let room = size.saturating_sub(headers(0).len());
    let mut m = Vec::with_capacity(room + 80);
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while m.len() + 78 < room {
        for _ in 0..76 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            m.push(alphabet[(x % 64) as usize]);
        }
        m.extend_from_slice(b"\r\n");
    }
    m.extend_from_slice(b".\r\n");
    m
}

/// The messages the generator sends, as they are stored (no end-of-data line), for the scan
/// limit: the body is made once, each message is its own headers before it.
pub struct Messages {
    body: Vec<u8>,
}

impl Messages {
    pub fn new(size: usize) -> Messages {
        let mut body = body(size);
        body.truncate(body.len().saturating_sub(3));
        Messages { body }
    }

    /// Message `seq`.
    pub fn get(&self, seq: usize) -> Vec<u8> {
        let mut m = headers(seq);
        m.extend_from_slice(&self.body);
        m
    }
}

/// A run that counts each accepted message into `accepted` as it goes (for the sampler).
pub async fn run(
    target: SocketAddr,
    sessions: usize,
    stop: Stop,
    size: usize,
    accepted: Arc<AtomicU64>,
) -> LoadResult {
    let next = Arc::new(AtomicUsize::new(0));
    let body: Arc<[u8]> = body(size).into();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..sessions {
        let next = next.clone();
        let body = body.clone();
        let accepted = accepted.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut at = Vec::new();
            let mut seqs = Vec::new();
            let mut failed = 0;
            while let Some(seq) = stop.next_seq(&next) {
                match one(target, seq, &body).await {
                    Ok(l) => {
                        lat.push(l);
                        at.push(Instant::now());
                        seqs.push(seq);
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => failed += 1,
                }
            }
            (lat, at, seqs, failed)
        }));
    }
    let mut result = LoadResult::default();
    for t in tasks {
        if let Ok((lat, at, seqs, failed)) = t.await {
            result.sent += lat.len();
            result.failed += failed;
            result.latencies.extend(lat);
            result.accepted_at.extend(at);
            result.seqs.extend(seqs);
        }
    }
    result.elapsed = start.elapsed();
    result
}

async fn one(target: SocketAddr, seq: usize, body: &[u8]) -> std::io::Result<Duration> {
    let mut s = TcpStream::connect(target).await?;
    let _ = s.set_nodelay(true);
    let mut buf = Vec::with_capacity(1024);
    expect(&mut s, &mut buf, b'2').await?;
    s.write_all(b"EHLO loadgen.bench.test\r\n").await?;
    expect(&mut s, &mut buf, b'2').await?;
    // MAIL, RCPT and DATA pipelined, as a PIPELINING client does.
    s.write_all(b"MAIL FROM:<sender@bench.test>\r\nRCPT TO:<user@example.com>\r\nDATA\r\n")
        .await?;
    expect(&mut s, &mut buf, b'2').await?;
    expect(&mut s, &mut buf, b'2').await?;
    expect(&mut s, &mut buf, b'3').await?;
    let mut message = headers(seq);
    message.extend_from_slice(body);
    s.write_all(&message).await?;
    let t = Instant::now();
    expect(&mut s, &mut buf, b'2').await?;
    let latency = t.elapsed();
    s.write_all(b"QUIT\r\n").await?;
    let _ = expect(&mut s, &mut buf, b'2').await;
    Ok(latency)
}

/// Reads one reply (all its lines) and checks its first digit.
async fn expect(s: &mut TcpStream, buf: &mut Vec<u8>, class: u8) -> std::io::Result<()> {
    loop {
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            if line.get(3) == Some(&b'-') {
                continue;
            }
            return if line.first() == Some(&class) {
                Ok(())
            } else {
                Err(std::io::Error::other(
                    String::from_utf8_lossy(&line).trim().to_owned(),
                ))
            };
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(60), s.read(&mut chunk))
            .await
            .map_err(|_| std::io::Error::other("timeout"))??;
        if n == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Opens `n` idle connections that read their banner and then wait; returns them.
pub async fn idle_connections(target: SocketAddr, n: usize) -> (Vec<TcpStream>, usize) {
    let mut out = Vec::with_capacity(n);
    let mut failed = 0;
    for _ in 0..n {
        match TcpStream::connect(target).await {
            Ok(mut s) => {
                let mut buf = Vec::new();
                if expect(&mut s, &mut buf, b'2').await.is_ok() {
                    out.push(s);
                } else {
                    failed += 1;
                }
            }
            Err(_) => failed += 1,
        }
    }
    (out, failed)
}

/// Time from connecting to the banner of one new session.
pub async fn banner_time(target: SocketAddr) -> std::io::Result<Duration> {
    let t = Instant::now();
    let mut s = TcpStream::connect(target).await?;
    let mut buf = Vec::new();
    expect(&mut s, &mut buf, b'2').await?;
    Ok(t.elapsed())
}
