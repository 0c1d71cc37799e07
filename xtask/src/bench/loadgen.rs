//! The load generator: N concurrent SMTP sessions sending M messages of S bytes, one message per
//! connection (as `smtp-source` does), timing each message from the end of DATA to the `250`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
}

/// A realistic message of about `size` bytes with a fixed seed: headers like a mail client's,
/// base64-looking body lines of 76 characters.
pub fn message(seq: usize, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Load Generator <sender@bench.test>\r\nTo: <user@example.com>\r\nSubject: bench message {seq}\r\n\
Date: Sat, 28 Nov 2026 06:00:00 +0000\r\nMessage-ID: <bench.{seq}@bench.test>\r\nX-Bench-Seq: {seq}\r\n\
MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    )
    .into_bytes();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ seq as u64;
    while m.len() + 78 < size {
        for _ in 0..76 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            m.push(alphabet[(x % 64) as usize]);
        }
        m.extend_from_slice(b"\r\n");
    }
    m
}

pub async fn run(target: SocketAddr, sessions: usize, messages: usize, size: usize) -> LoadResult {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..sessions {
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut failed = 0;
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= messages {
                    break;
                }
                match one(target, seq, size).await {
                    Ok(l) => lat.push(l),
                    Err(_) => failed += 1,
                }
            }
            (lat, failed)
        }));
    }
    let mut result = LoadResult::default();
    for t in tasks {
        if let Ok((lat, failed)) = t.await {
            result.sent += lat.len();
            result.failed += failed;
            result.latencies.extend(lat);
        }
    }
    result.elapsed = start.elapsed();
    result
}

async fn one(target: SocketAddr, seq: usize, size: usize) -> std::io::Result<Duration> {
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
    let mut body = message(seq, size);
    body.extend_from_slice(b".\r\n");
    s.write_all(&body).await?;
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
