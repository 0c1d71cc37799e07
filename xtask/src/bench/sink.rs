//! A fast counting SMTP sink: accepts everything, stores nothing, and records each message's
//! `X-Bench-Seq` so the bench can prove every message arrived exactly once.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Default)]
pub struct Counts {
    /// How many times each sequence number arrived (grown as numbers arrive).
    pub seen: Vec<u32>,
    pub messages: u64,
    /// Sequence numbers 0..expected must each arrive once.
    pub expected: usize,
}

#[derive(Debug, Clone)]
pub struct Sink {
    pub addr: std::net::SocketAddr,
    pub counts: Arc<Mutex<Counts>>,
}

impl Sink {
    pub async fn start(expected: usize) -> anyhow::Result<Sink> {
        Sink::bind("127.0.0.1:0".parse()?, expected).await
    }

    /// A sink on `addr` (a destination that was down comes up on its old port).
    pub async fn bind(addr: std::net::SocketAddr, expected: usize) -> anyhow::Result<Sink> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let counts = Arc::new(Mutex::new(Counts {
            seen: Vec::new(),
            expected,
            messages: 0,
        }));
        let c = counts.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let c = c.clone();
                tokio::spawn(async move {
                    let _ = session(stream, c).await;
                });
            }
        });
        Ok(Sink { addr, counts })
    }

    pub fn messages(&self) -> u64 {
        self.counts.lock().map(|c| c.messages).unwrap_or(0)
    }

    /// (missing, duplicated) sequence numbers: of the first `expected`, those that never
    /// arrived, and any that arrived more than once.
    pub fn check(&self) -> (usize, usize) {
        let c = self.counts.lock().expect("sink counts");
        let expected = c.seen.len().min(c.expected);
        (
            c.seen[..expected].iter().filter(|n| **n == 0).count() + c.expected - expected,
            c.seen.iter().filter(|n| **n > 1).count(),
        )
    }

    /// As [`Sink::check`] for the numbers a sustained run had accepted (not contiguous: a
    /// session that found the run over had taken a number it never sent).
    pub fn check_seqs(&self, accepted: &[usize]) -> (usize, usize) {
        let c = self.counts.lock().expect("sink counts");
        (
            accepted
                .iter()
                .filter(|s| c.seen.get(**s).is_none_or(|n| *n == 0))
                .count(),
            c.seen.iter().filter(|n| **n > 1).count(),
        )
    }
}

async fn session(mut s: TcpStream, counts: Arc<Mutex<Counts>>) -> std::io::Result<()> {
    let _ = s.set_nodelay(true);
    s.write_all(b"220 sink ESMTP\r\n").await?;
    let mut buf = Vec::with_capacity(256 * 1024);
    let mut chunk = vec![0u8; 256 * 1024];
    let mut in_data = false;
    // Where the next search for the end of data starts (the message starts at 0).
    let mut scan_from = 0;
    loop {
        // Handle every complete line or message in the buffer.
        loop {
            if in_data {
                // Search only what arrived since the last look (the marker may straddle reads).
                let Some(found) = find(&buf[scan_from..], b"\r\n.\r\n") else {
                    scan_from = buf.len().saturating_sub(4);
                    break;
                };
                let end = scan_from + found;
                record(&buf[..end], &counts);
                buf.drain(..end + 5);
                scan_from = 0;
                in_data = false;
                s.write_all(b"250 2.0.0 Ok: queued\r\n").await?;
                continue;
            }
            let Some(i) = buf.iter().position(|b| *b == b'\n') else {
                break;
            };
            let line: Vec<u8> = buf.drain(..=i).collect();
            let upper = line.to_ascii_uppercase();
            let reply: &[u8] = if upper.starts_with(b"EHLO") {
                b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 0\r\n"
            } else if upper.starts_with(b"DATA") {
                in_data = true;
                // The message starts on a fresh line; CRLF.CRLF search needs the leading CRLF.
                buf.splice(0..0, b"\r\n".iter().copied());
                scan_from = 0;
                b"354 go\r\n"
            } else if upper.starts_with(b"QUIT") {
                s.write_all(b"221 bye\r\n").await?;
                return Ok(());
            } else {
                b"250 ok\r\n"
            };
            s.write_all(reply).await?;
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// Finds `X-Bench-Seq: N` (possibly inside an attached journal copy) and counts it.
fn record(msg: &[u8], counts: &Mutex<Counts>) {
    let seq = find(msg, b"X-Bench-Seq: ").and_then(|i| {
        let rest = &msg[i + 13..];
        let end = rest
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end])
            .ok()?
            .parse::<usize>()
            .ok()
    });
    if let Ok(mut c) = counts.lock() {
        c.messages += 1;
        if let Some(seq) = seq {
            if c.seen.len() <= seq {
                c.seen.resize(seq + 1, 0);
            }
            c.seen[seq] += 1;
        }
    }
}
