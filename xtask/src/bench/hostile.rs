//! The `hostile` bench run (issue 14's figures): what a hostile client costs the appliance.
//! - **Password storm**: 200 clients, each from its own loopback address (so the per-address
//!   throttle alone cannot answer them), send API requests with wrong passwords at once, in
//!   rounds; every answer's status and time, and the appliance's peak RSS.
//! - **Web exhaustion**: 20,000 half-sent HTTP requests from 100 addresses while new SMTP
//!   sessions are timed from connect to banner; the appliance's open descriptors.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A connection from the loopback address `source`.
async fn connect_from(source: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    socket.connect(to).await
}

/// One API request with a wrong password; its status code and time.
async fn wrong_password(source: Ipv4Addr, web: SocketAddr, n: usize) -> (u16, Duration, Duration) {
    let start = Instant::now();
    let mut connected = Duration::ZERO;
    let status = async {
        let mut s = connect_from(source, web).await.ok()?;
        connected = start.elapsed();
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("admin:wrong-{n}"));
        let req = format!(
            "GET /api/v1/rat HTTP/1.1\r\nHost: {web}\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = [0u8; 64];
        let mut got = 0;
        while got < 12 {
            let n = s.read(&mut buf[got..]).await.ok()?;
            if n == 0 {
                break;
            }
            got += n;
        }
        std::str::from_utf8(buf.get(9..12)?).ok()?.parse().ok()
    };
    let status = tokio::time::timeout(Duration::from_secs(30), status)
        .await
        .ok()
        .flatten()
        .unwrap_or(0);
    (status, start.elapsed(), connected)
}

fn client(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8)
}

pub async fn password_storm(web: SocketAddr, pid: u32, clients: usize, rounds: usize) -> Value {
    let (rss_before, _) = super::usage(pid);
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut times = Vec::new();
    let mut connects = Vec::new();
    for round in 0..rounds {
        let tasks: Vec<_> = (0..clients)
            .map(|i| {
                // Fresh source addresses each round: a reused address and port could meet the
                // previous round's connection in TIME_WAIT and wait a second for a SYN retry.
                let n = round * clients + i;
                tokio::spawn(wrong_password(client(n), web, n))
            })
            .collect();
        for t in tasks {
            if let Ok((status, took, connected)) = t.await {
                *statuses.entry(status).or_default() += 1;
                times.push(took);
                connects.push(connected);
            }
        }
    }
    let (rss_peak, cpu) = super::usage(pid);
    let (p50, p90, p99, max) = super::percentiles(times);
    let (_, _, connect_p99, connect_max) = super::percentiles(connects);
    json!({
        "clients": clients, "rounds": rounds,
        "statuses": statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "latency_ms": {"p50": p50, "p90": p90, "p99": p99, "max": max},
        "connect_ms": {"p99": connect_p99, "max": connect_max},
        "rss_before_mb": rss_before, "peak_rss_mb": rss_peak, "cpu_secs": cpu,
    })
}

/// Whether the appliance still holds this connection open (no EOF waiting to be read).
fn still_open(s: &std::net::TcpStream) -> bool {
    let mut buf = [0u8; 256];
    match s.peek(&mut buf) {
        // End of stream: the appliance closed it.
        Ok(0) => false,
        // An answer (408) before the close: a later look sees the end.
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
    }
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

pub async fn web_exhaustion(web: SocketAddr, smtp: SocketAddr, pid: u32, n: usize) -> Value {
    let attack = tokio::spawn(async move {
        // Held as std sockets (non-blocking): a peek tells for sure whether the appliance closed
        // one. Those it closed cost it nothing any more, and the generator lets go of them too,
        // or it would run out of descriptors itself (its hard limit may be 20,000).
        let mut held: Vec<std::net::TcpStream> = Vec::new();
        let mut refused = 0usize;
        for i in 0..n {
            let source = Ipv4Addr::new(127, 2, 0, (i % 100 + 1) as u8);
            match connect_from(source, web).await {
                Ok(mut s) => {
                    let _ = s
                        .write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n")
                        .await;
                    if let Ok(std) = s.into_std() {
                        held.push(std);
                    }
                }
                Err(_) => refused += 1,
            }
            if i % 1000 == 999 {
                held.retain(still_open);
            }
        }
        held.retain(still_open);
        (held, refused)
    });
    let mut banners = Vec::new();
    let mut failed_banners = 0;
    let mut max_fds = 0;
    while !attack.is_finished() {
        match super::loadgen::banner_time(smtp).await {
            Ok(t) => banners.push(t),
            Err(_) => failed_banners += 1,
        }
        max_fds = max_fds.max(open_fds(pid));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (held, refused) = attack.await.unwrap_or_default();
    let still_held = held.len();
    // And with all of them still open:
    for _ in 0..20 {
        match super::loadgen::banner_time(smtp).await {
            Ok(t) => banners.push(t),
            Err(_) => failed_banners += 1,
        }
    }
    max_fds = max_fds.max(open_fds(pid));
    let samples = banners.len();
    let (p50, p90, p99, max) = super::percentiles(banners);
    drop(held);
    json!({
        "connections_attempted": n, "connect_errors": refused, "held_open_by_appliance_at_end": still_held,
        "smtp_banner_ms": {"samples": samples, "failed": failed_banners, "p50": p50, "p90": p90, "p99": p99, "max": max},
        "appliance_max_open_fds": max_fds,
    })
}

pub fn print(storm: &Value, exhaustion: &Value) {
    println!("\nHostile clients (issue 14):");
    println!(
        "  password storm: {} clients x {} rounds of wrong passwords: statuses {}, latency p50 {:.1} ms p99 {:.1} ms max {:.1} ms, peak RSS {:.1} MB (before {:.1} MB)",
        storm["clients"],
        storm["rounds"],
        storm["statuses"],
        storm["latency_ms"]["p50"].as_f64().unwrap_or(0.0),
        storm["latency_ms"]["p99"].as_f64().unwrap_or(0.0),
        storm["latency_ms"]["max"].as_f64().unwrap_or(0.0),
        storm["peak_rss_mb"].as_f64().unwrap_or(0.0),
        storm["rss_before_mb"].as_f64().unwrap_or(0.0),
    );
    let b = &exhaustion["smtp_banner_ms"];
    println!(
        "  web exhaustion: {} half-sent HTTP requests: SMTP banner p50 {:.2} ms p99 {:.2} ms max {:.2} ms over {} sessions ({} failed), appliance open fds at most {}",
        exhaustion["connections_attempted"],
        b["p50"].as_f64().unwrap_or(0.0),
        b["p99"].as_f64().unwrap_or(0.0),
        b["max"].as_f64().unwrap_or(0.0),
        b["samples"],
        b["failed"],
        exhaustion["appliance_max_open_fds"],
    );
}
