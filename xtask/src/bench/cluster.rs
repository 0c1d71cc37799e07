//! `--scenario cluster`: cluster mode's figures on one machine. A PostgreSQL from Debian's
//! packages (started here on a free loopback port) and three nodes on 127.0.0.2-4:
//!
//! 1. settings propagation: 100 RAT changes through node A's API, each timed from the `200` to
//!    the moment nodes B and C report the new generation in force (p50/p99 of the 200 samples);
//! 2. throughput: the load generator on node A alone, then on all three at once, end to end
//!    with journaling (one machine: the three compete for the same 2 cores);
//! 3. tracking lag under that load: a marked message through node A every 500 ms, timed from
//!    its `250` to the moment the cluster-wide tracking search finds it;
//! 4. the same load on a single appliance without `[cluster]` (the nodes stopped, PostgreSQL
//!    idle), for the cost of clustering on this machine.
//!
//! Figures in `target/bench/cluster.json`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rampart_testkit::Postgres;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::sink::Sink;
use super::{Options, TempDir, loadgen, percentiles, serve};

const CHANGES: usize = 100;
const NODES: [(&str, &str); 3] = [
    ("node-a", "127.0.0.2"),
    ("node-b", "127.0.0.3"),
    ("node-c", "127.0.0.4"),
];

pub async fn run(binary: &Path, opts: &Options) -> Result<()> {
    let secs = match opts.length {
        super::Length::Secs { secs, .. } => secs,
        super::Length::Messages(_) => 20,
    };
    let size = opts.sizes.first().copied().unwrap_or(4096);
    let sessions = opts.sessions.first().copied().unwrap_or(20);
    let pg = Postgres::start(true)?;
    let dest = Sink::start(usize::MAX / 4).await?;
    let intake = Sink::start(usize::MAX / 4).await?;
    let mut nodes = Vec::new();
    for (i, (name, ip)) in NODES.iter().enumerate() {
        nodes.push(Node::start(binary, &pg, name, ip, dest.addr, intake.addr, i == 0).await?);
    }
    eprintln!(
        "bench: cluster of 3 nodes on PostgreSQL at 127.0.0.1:{}",
        pg.port
    );

    // 1. Propagation.
    let mut samples = Vec::new();
    for i in 0..CHANGES {
        let rat = format!(
            "[{{\"domain\": \"example.com\", \"action\": \"accept\"}}, {{\"domain\": \"change{i}.example\", \"action\": \"accept\"}}]"
        );
        let (status, _) = http(nodes[0].web, "PUT", "/api/v1/rat", Some(&rat)).await?;
        let done = Instant::now();
        if status != 200 {
            bail!("PUT /api/v1/rat answered {status}");
        }
        let (_, cluster) = http(nodes[0].web, "GET", "/api/v1/cluster", None).await?;
        let generation = cluster["settings_generation"]["cluster"]
            .as_i64()
            .context("no cluster generation")?;
        for node in &nodes[1..] {
            let deadline = done + Duration::from_secs(30);
            loop {
                let (_, status) = http(node.web, "GET", "/api/v1/status", None).await?;
                if status["cluster"]["settings_generation"].as_i64() >= Some(generation) {
                    samples.push(done.elapsed());
                    break;
                }
                if Instant::now() > deadline {
                    bail!("generation {generation} never reached {}", node.name);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    let (p50, _, p99, max) = percentiles(samples);
    eprintln!(
        "bench: settings propagation over {CHANGES} changes: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms"
    );

    // 2. and 3. Throughput, with the tracking lag sampled on the way.
    let smtp: Vec<SocketAddr> = nodes.iter().map(|n| n.smtp).collect();
    let probe = Some((nodes[0].smtp, nodes[0].web));
    let one = load(&smtp[..1], probe, sessions, size, secs, &dest).await?;
    eprintln!(
        "bench: 1 node: {:.0} msg/s accepted, {:.0} delivered/s; tracking lag p50 {:.0} ms, p99 {:.0} ms",
        one.accepted, one.delivered, one.lag.0, one.lag.1
    );
    let three = load(&smtp, probe, sessions, size, secs, &dest).await?;
    eprintln!(
        "bench: 3 nodes: {:.0} msg/s accepted, {:.0} delivered/s ({:.2}x); tracking lag p50 {:.0} ms, p99 {:.0} ms",
        three.accepted,
        three.delivered,
        three.delivered / one.delivered.max(1.0),
        three.lag.0,
        three.lag.1
    );
    drop(nodes);
    let single = super::start_appliance(binary, dest.addr, intake.addr, true, 1000).await?;
    let alone = load(&[single.smtp], None, sessions, size, secs, &dest).await?;
    drop(single);
    eprintln!(
        "bench: a single appliance without [cluster]: {:.0} msg/s accepted, {:.0} delivered/s",
        alone.accepted, alone.delivered
    );
    let out = json!({
        "date": chrono_now(),
        "machine": super::machine(),
        "size": size,
        "sessions_per_node": sessions,
        "secs": secs,
        "propagation_ms": {"changes": CHANGES, "p50": p50, "p99": p99, "max": max},
        "one_node": one.json(),
        "three_nodes": three.json(),
        "single_appliance": alone.json(),
        "journal_copies": intake.messages(),
    });
    std::fs::create_dir_all(super::series_dir())?;
    let path = super::series_dir().join("cluster.json");
    std::fs::write(&path, serde_json::to_string_pretty(&out)?)?;
    eprintln!("bench: results written to {}", path.display());
    Ok(())
}

fn chrono_now() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

struct Loaded {
    accepted: f64,
    delivered: f64,
    /// Tracking lag p50, p99 (ms).
    lag: (f64, f64),
    lag_samples: usize,
}

impl Loaded {
    fn json(&self) -> Value {
        json!({
            "accepted_per_sec": self.accepted,
            "delivered_per_sec": self.delivered,
            "tracking_lag_ms": {"p50": self.lag.0, "p99": self.lag.1, "samples": self.lag_samples},
        })
    }
}

/// The load generator on every address of `smtp` at once for `secs`, and with `probe` (a node's
/// SMTP and web addresses) the tracking lag sampled through it meanwhile.
async fn load(
    smtp: &[SocketAddr],
    probe: Option<(SocketAddr, SocketAddr)>,
    sessions: usize,
    size: usize,
    secs: u64,
    dest: &Sink,
) -> Result<Loaded> {
    let before = dest.messages();
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let mut runs = Vec::new();
    for &smtp in smtp {
        runs.push(tokio::spawn(async move {
            loadgen::run(
                smtp,
                sessions,
                loadgen::Stop::At(until),
                size,
                Arc::new(AtomicU64::new(0)),
            )
            .await
        }));
    }
    let mut lags = Vec::new();
    let mut n = 0;
    while let Some((probe_smtp, probe_web)) = probe
        && Instant::now() + Duration::from_secs(1) < until
    {
        n += 1;
        let subject = format!("lag-probe-{}-{n}", start.elapsed().as_millis());
        let accepted = send(probe_smtp, &subject).await?;
        let deadline = accepted + Duration::from_secs(60);
        loop {
            let (_, found) = http(
                probe_web,
                "GET",
                &format!("/api/v1/tracking?node=*&subject={subject}&limit=1"),
                None,
            )
            .await?;
            if found.as_array().is_some_and(|f| !f.is_empty()) {
                lags.push(accepted.elapsed());
                break;
            }
            if Instant::now() > deadline {
                bail!("the probe {subject} never reached the cluster's tracking");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut sent = 0;
    for r in runs {
        sent += r.await?.sent;
    }
    let elapsed = start.elapsed().as_secs_f64();
    // Deliveries still under way when the load stopped count if they finish within 30 s.
    let expected = before + sent as u64;
    let drain = Instant::now();
    while dest.messages() < expected && drain.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered_secs = elapsed + drain.elapsed().as_secs_f64();
    let samples = lags.len();
    let (p50, _, p99, _) = percentiles(lags);
    Ok(Loaded {
        accepted: sent as f64 / elapsed,
        delivered: (dest.messages() - before) as f64 / delivered_secs,
        lag: (p50, p99),
        lag_samples: samples,
    })
}

/// Sends one small message with `subject`; when its `250` came.
async fn send(smtp: SocketAddr, subject: &str) -> Result<Instant> {
    let mut s = TcpStream::connect(smtp).await?;
    let script = "EHLO probe.bench\r\nMAIL FROM:<probe@bench.test>\r\nRCPT TO:<user@example.com>\r\nDATA\r\n";
    read_reply(&mut s).await?;
    for line in script.lines() {
        s.write_all(format!("{line}\r\n").as_bytes()).await?;
        read_reply(&mut s).await?;
    }
    s.write_all(format!("Subject: {subject}\r\n\r\nprobe\r\n.\r\n").as_bytes())
        .await?;
    let reply = read_reply(&mut s).await?;
    let at = Instant::now();
    if !reply.starts_with("250") {
        bail!("the probe was refused: {reply}");
    }
    s.write_all(b"QUIT\r\n").await?;
    Ok(at)
}

/// One SMTP reply (all its lines).
async fn read_reply(s: &mut TcpStream) -> Result<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        if s.read(&mut byte).await? == 0 {
            bail!("the connection closed");
        }
        buf.push(byte[0]);
        if buf.ends_with(b"\r\n") {
            let text = String::from_utf8_lossy(&buf).to_string();
            let last = text.trim_end().lines().last().unwrap_or("").to_owned();
            if last.len() < 4 || last.as_bytes()[3] != b'-' {
                return Ok(text);
            }
        }
    }
}

/// One API request as the bench's admin; the status and the JSON answer.
async fn http(
    web: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, Value)> {
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {web}\r\nAuthorization: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        super::backlog::basic(),
        body.len()
    );
    let mut s = TcpStream::connect(web).await?;
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut buf))
        .await
        .context("the web answered nothing in 60 s")??;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .context("no HTTP status")?;
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

/// One node: its own data dir and configuration, the shared database.
struct Node {
    name: &'static str,
    smtp: SocketAddr,
    web: SocketAddr,
    _child: tokio::process::Child,
    _dir: TempDir,
}

impl Node {
    async fn start(
        binary: &Path,
        pg: &Postgres,
        name: &'static str,
        ip: &str,
        dest: SocketAddr,
        intake: SocketAddr,
        first: bool,
    ) -> Result<Node> {
        let dir = TempDir::new()?;
        let config = dir.0.join("rampart.toml");
        std::fs::write(
            &config,
            format!(
                "hostname = \"{name}.bench\"\ndata_dir = \"{}\"\n[smtp]\nlisten = [\"{ip}:0\"]\nmax_connections = 1000\n\
                 max_connections_per_ip = 1000\n[web]\nlisten = \"{ip}:0\"\n[dns]\nnameservers = [\"127.0.0.1:9\"]\n\
                 [tdc]\ntls = \"off\"\n[cluster]\ndatabase_url = \"{}\"\nnode_name = \"{name}\"\n",
                dir.0.join("data").display(),
                pg.url()
            ),
        )?;
        if first {
            // Into the cluster database: every node takes these settings.
            let settings = dir.0.join("settings.toml");
            std::fs::write(
                &settings,
                format!(
                    "[[rat]]\ndomain = \"example.com\"\naction = \"accept\"\n\n[[smtp_routes]]\ndomain = \"example.com\"\nhosts = [\"{dest}\"]\n\n\
                     [[smtp_routes]]\ndomain = \"intake.bench\"\nhosts = [\"{intake}\"]\n\n[tdc]\nenabled = true\nintake_address = \"journal@intake.bench\"\n\n\
                     [[incoming_policies]]\nname = \"DEFAULT\"\n\n[incoming_policies.tdc]\nmode = \"global\"\n"
                ),
            )?;
            let status = tokio::process::Command::new(binary)
                .arg("--config")
                .arg(&config)
                .args(["loadconfig", "--partial"])
                .arg(&settings)
                .env("RAMPART_ADMIN_PASSWORD", "bench")
                .status()
                .await?;
            if !status.success() {
                bail!("rampart loadconfig into the cluster database failed");
            }
        }
        let (child, smtp, web) = serve(binary, &config).await?;
        Ok(Node {
            name,
            smtp,
            web,
            _child: child,
            _dir: dir,
        })
    }
}
