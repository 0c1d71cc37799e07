//! `--scenario backlog`: a gateway's bad day. The destination is down while N messages arrive
//! (journaling on: the intake is up, so the.tdc.queue keeps flowing); then, with all N queued:
//! how long the admin pages and API listings take, how long a restart takes, and how fast the
//! queue drains when the destination comes back. Memory is sampled every second throughout.
//!
//! Figures: accept rate at the start and at the end of the accept phase (10 % windows), p50/p95
//! of 20 requests per page, stop and start-to-serving times, the drain rate; curves in
//! `target/bench/backlog-accept.*` and `backlog-drain.*`, the figures in `target/bench/backlog.json`.
//!
//! Then Postfix the same way (`--postfix-backlog N`, default 100,000: it accepts a few hundred
//! messages a second here), timing `mailq` and `qshape` instead of pages, `postqueue -f` instead of
//! `deliverynow`: `backlog-postfix-*` and `backlog-postfix.json`. `--only rampart|postfix` picks a side.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::sink::Sink;
use super::{Options, loadgen, series};

/// Pages and listings timed with the full queue: (what, path, through the UI's session).
const PAGES: &[(&str, &str, bool)] = &[
    ("Delivery Status (UI)", "/monitor/delivery", true),
    ("System Status (UI)", "/monitor/status", true),
    (
        "Message Tracking search (UI)",
        "/monitor/tracking?recipient=user%40example.com",
        true,
    ),
    ("Threat Defense Connector (UI)", "/security/tdc", true),
    ("TDC ledger (UI)", "/security/tdc/ledger", true),
    ("tophosts (API)", "/api/v1/tophosts", false),
    ("status (API)", "/api/v1/status", false),
    (
        "tracking search (API)",
        "/api/v1/tracking?recipient=user%40example.com&limit=100",
        false,
    ),
    ("ledger (API)", "/api/v1/ledger?limit=100", false),
];

const REQUESTS_PER_PAGE: usize = 20;

pub async fn run(binary: &Path, opts: &Options) -> Result<()> {
    if opts.wants("rampart") {
        rampart(binary, opts).await?;
    }
    if opts.wants("postfix") {
        if opts.postfix && super::postfix_available() {
            postfix(opts).await?;
        } else {
            eprintln!(
                "bench: Postfix's part of the backlog scenario is skipped (--no-postfix, or Postfix and ../shared/bench are missing)"
            );
        }
    }
    Ok(())
}

/// Rampart's part: accept N with the destination down, time the pages, restart, drain.
async fn rampart(binary: &Path, opts: &Options) -> Result<()> {
    let n = opts.backlog;
    let size = opts.sizes.first().copied().unwrap_or(4096);
    let sessions = opts.sessions.first().copied().unwrap_or(20);
    eprintln!(
        "bench: backlog scenario: {n} messages of {size} bytes over {sessions} sessions, destination down"
    );
    // The destination's port: bound to learn a free one, then closed, so connections to it are
    // refused until the sink comes up there.
    let dest_addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let intake = Sink::start(n).await?;
    let mut app =
        super::start_appliance_with(binary, dest_addr, intake.addr, true, 1000, "").await?;

    // 1. Accept N with the destination down.
    let accepted = accept(
        app.smtp,
        Some(app.pid()),
        &intake,
        (n, size, sessions),
        "backlog-accept",
        &format!("backlog: accepting {n} messages, destination down"),
    )
    .await?;
    let sent = accepted.sent;
    eprintln!("bench: {}", accepted.summary());

    // 2. The admin pages with the queue full.
    let cookie = login(app.web).await?;
    let mut pages = Vec::new();
    for (what, path, ui) in PAGES {
        let mut times = Vec::new();
        let mut status = 0;
        for _ in 0..REQUESTS_PER_PAGE {
            let (s, t) = get(app.web, path, *ui, &cookie).await?;
            status = s;
            times.push(t);
        }
        times.sort();
        let ms = |p: f64| at_ms(&times, p);
        eprintln!(
            "bench:   {what:<32} {path:<56} HTTP {status}  p50 {:>8.1} ms  p95 {:>8.1} ms",
            ms(0.5),
            ms(0.95)
        );
        pages.push(json!({"page": what, "path": path, "status": status, "p50_ms": ms(0.5), "p95_ms": ms(0.95)}));
    }
    let rss_full = series::rss_now_mb(app.pid());

    // 3. Restart with the queue full: stop, then start until both listeners answer.
    let stop_time = app.stop().await;
    let t = Instant::now();
    let (child, smtp, web) = super::serve(binary, &app.config).await?;
    app.child = child;
    app.smtp = smtp;
    app.web = web;
    loadgen::banner_time(smtp).await?;
    let (health, _) = get(web, "/api/v1/health", false, "").await?;
    let start_time = t.elapsed();
    eprintln!(
        "bench: restart with {n} queued: stopped in {:.2} s, serving again in {:.2} s (health HTTP {health})",
        stop_time.as_secs_f64(),
        start_time.as_secs_f64()
    );

    // 4. The destination comes back; `deliverynow` makes its rows due at once.
    let dest = Sink::bind(dest_addr, n).await?;
    let web = app.web;
    let drain = drain(
        &dest,
        Some(app.pid()),
        sent,
        "backlog-drain",
        &format!("backlog: draining {n} messages after the destination came back"),
        async move {
            let status = post_json(web, "/api/v1/deliverynow", r#"{"host":"example.com"}"#).await?;
            if status != 200 {
                bail!("deliverynow answered HTTP {status}");
            }
            Ok(())
        },
    )
    .await?;
    let peak = [
        series::peak_rss(&accepted.samples),
        series::peak_rss(&drain.samples),
        rss_full,
    ]
    .into_iter()
    .flatten()
    .fold(0.0, f64::max);
    app.stop().await;
    let (missing, dups) = dest.check();
    let (jmissing, jdups) = intake.check();
    eprintln!(
        "bench: {}; peak RSS {peak:.1} MB; destination missing {missing} dup {dups}, intake missing {jmissing} dup {jdups}",
        drain.summary()
    );
    let out = json!({
        "machine": super::machine(),
        "messages": n, "size": size, "sessions": sessions,
        "accept": accepted.json(),
        "pages": pages,
        "rss_full_queue_mb": rss_full,
        "restart": {"stop_secs": stop_time.as_secs_f64(), "start_to_serving_secs": start_time.as_secs_f64()},
        "drain": drain.json(),
        "peak_rss_mb": peak,
        "check": {"dest_missing": missing, "dest_dups": dups, "intake_missing": jmissing, "intake_dups": jdups},
    });
    let path = super::series_dir().join("backlog.json");
    std::fs::write(&path, serde_json::to_string_pretty(&out)?)?;
    eprintln!("bench: results written to {}", path.display());
    if missing + dups + jmissing + jdups > 0 || accepted.failed > 0 || !drain.complete {
        bail!("the backlog scenario lost, duplicated or failed mail (see above)");
    }
    Ok(())
}

/// Postfix's part: the same day for Postfix as set up by `../shared/bench/postfix-peer.sh` (relay
/// plus `always_bcc`), with `--postfix-backlog` messages. Postfix has no admin pages, so what is
/// timed with the full queue is what its administrator runs: `mailq` and `qshape deferred`.
async fn postfix(opts: &Options) -> Result<()> {
    let n = opts.postfix_backlog;
    let size = opts.sizes.first().copied().unwrap_or(4096);
    let sessions = opts.sessions.first().copied().unwrap_or(20);
    eprintln!(
        "bench: backlog scenario for Postfix: {n} messages of {size} bytes over {sessions} sessions, destination down"
    );
    // The peer script checks itself with swaks against its smtp-sink pair; Postfix is then
    // pointed at this bench's own sinks, which check that every message arrived once.
    super::shared_script("sinks.sh", "start")?;
    let setup = super::shared_script("postfix-peer.sh", "setup")?;
    let _ = super::shared_script("sinks.sh", "stop");
    if !setup.success() {
        bail!("postfix-peer.sh setup failed");
    }
    let result = postfix_here(n, size, sessions).await;
    // Leave no queue behind for the next run: it would count towards its sinks.
    let _ = command("postsuper", &["-d", "ALL"]);
    let _ = super::shared_script("postfix-peer.sh", "stop");
    result
}

async fn postfix_here(n: usize, size: usize, sessions: usize) -> Result<()> {
    let dest_addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let intake = Sink::start(n).await?;
    let relayhost = format!("relayhost=[127.0.0.1]:{}", dest_addr.port());
    let journal = format!(
        "transport_maps=inline:{{ intake.test=smtp:[127.0.0.1]:{} }}",
        intake.addr.port()
    );
    for (cmd, args) in [
        ("postconf", vec!["-e", relayhost.as_str(), journal.as_str()]),
        ("postsuper", vec!["-d", "ALL"]),
        ("postfix", vec!["reload"]),
    ] {
        if !command(cmd, &args)?.1 {
            bail!("{cmd} {} failed", args.join(" "));
        }
    }
    let smtp: SocketAddr = "127.0.0.1:2525".parse()?;

    // 1. Accept N with the destination down.
    let accepted = accept(
        smtp,
        None,
        &intake,
        (n, size, sessions),
        "backlog-postfix-accept",
        &format!("backlog: Postfix accepting {n} messages, destination down"),
    )
    .await?;
    let sent = accepted.sent;
    let queued = files_under(Path::new("/var/spool/postfix/deferred"))
        + files_under(Path::new("/var/spool/postfix/active"))
        + files_under(Path::new("/var/spool/postfix/incoming"));
    eprintln!(
        "bench: Postfix {}; {queued} queue files",
        accepted.summary()
    );

    // 2. What a Postfix administrator runs with the queue full.
    let mut tools = Vec::new();
    for (what, cmd, args) in [
        ("mailq", "postqueue", vec!["-p"]),
        ("qshape deferred", "qshape", vec!["deferred"]),
    ] {
        let mut times = Vec::new();
        let mut ok = true;
        for _ in 0..TOOL_RUNS {
            let (t, success) = command(cmd, &args)?;
            ok &= success;
            times.push(t);
        }
        times.sort();
        let ms = |p: f64| at_ms(&times, p);
        eprintln!(
            "bench:   {what:<32} p50 {:>8.1} ms  max {:>8.1} ms{}",
            ms(0.5),
            ms(1.0),
            if ok { "" } else { " (it FAILED)" }
        );
        tools.push(json!({"tool": what, "ok": ok, "p50_ms": ms(0.5), "max_ms": ms(1.0), "runs": TOOL_RUNS}));
    }
    let memory_full = postfix_memory_mb();
    eprintln!(
        "bench:   Postfix's processes with the queue full: {} MB (PSS)",
        memory_full.map_or("?".to_owned(), |m| format!("{m:.1}"))
    );

    // 3. Restart with the queue full.
    let (stop_time, _) = command("postfix", &["stop"])?;
    let t = Instant::now();
    if !command("postfix", &["start"])?.1 {
        bail!("postfix start failed");
    }
    let banner = loop {
        match loadgen::banner_time(smtp).await {
            Ok(_) => break true,
            Err(_) if t.elapsed() < Duration::from_secs(60) => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            Err(_) => break false,
        }
    };
    let start_time = t.elapsed();
    eprintln!(
        "bench: Postfix restart with {queued} queued: stopped in {:.2} s, serving again in {:.2} s{}",
        stop_time.as_secs_f64(),
        start_time.as_secs_f64(),
        if banner { "" } else { " (NO banner)" }
    );

    // 4. The destination comes back; `postqueue -f` is Postfix's `deliverynow`.
    let dest = Sink::bind(dest_addr, n).await?;
    let drain = drain(
        &dest,
        None,
        sent,
        "backlog-postfix-drain",
        &format!("backlog: Postfix draining {n} messages after the destination came back"),
        async {
            if !command("postqueue", &["-f"])?.1 {
                bail!("postqueue -f failed");
            }
            Ok(())
        },
    )
    .await?;
    let (missing, dups) = dest.check();
    let (jmissing, jdups) = intake.check();
    eprintln!(
        "bench: Postfix {}; destination missing {missing} dup {dups}, intake missing {jmissing} dup {jdups}",
        drain.summary()
    );
    let out = json!({
        "machine": super::machine(),
        "messages": n, "size": size, "sessions": sessions, "queue_files": queued,
        "accept": accepted.json(),
        "tools": tools,
        "pss_full_queue_mb": memory_full,
        "restart": {"stop_secs": stop_time.as_secs_f64(), "start_to_serving_secs": start_time.as_secs_f64()},
        "drain": drain.json(),
        "check": {"dest_missing": missing, "dest_dups": dups, "intake_missing": jmissing, "intake_dups": jdups},
    });
    let path = super::series_dir().join("backlog-postfix.json");
    std::fs::write(&path, serde_json::to_string_pretty(&out)?)?;
    eprintln!("bench: results written to {}", path.display());
    if missing + dups + jmissing + jdups > 0 || accepted.failed > 0 || !drain.complete || !banner {
        bail!("Postfix's backlog run lost, duplicated or failed mail (see above)");
    }
    Ok(())
}

/// What the accept phase of either side measured.
struct Accepted {
    sent: u64,
    failed: usize,
    secs: f64,
    /// Every journal copy reached the intake.
    journaled: bool,
    samples: Vec<series::Sample>,
    /// Accept rates over the first and the last tenth of the phase.
    rate_start: f64,
    rate_end: f64,
    latencies: (f64, f64, f64, f64),
}

impl Accepted {
    fn summary(&self) -> String {
        format!(
            "accepted {} in {:.0} s: {:.0} msg/s at the start, {:.0} at the end; journal copies {}",
            self.sent,
            self.secs,
            self.rate_start,
            self.rate_end,
            if self.journaled {
                "all out"
            } else {
                "NOT all out"
            }
        )
    }

    fn json(&self) -> serde_json::Value {
        let (p50, _, p99, max) = self.latencies;
        json!({
            "secs": self.secs, "accepted": self.sent, "failed": self.failed,
            "rate_start": self.rate_start, "rate_end": self.rate_end,
            "end_vs_start": self.rate_end / self.rate_start.max(1e-9),
            "latency_ms": {"p50": p50, "p99": p99, "max": max},
        })
    }
}

/// Sends `n` messages of `size` bytes over `sessions` to `smtp` with the destination down, then
/// waits until `intake` has every journal copy (so what is timed next is a queue of N messages
/// for one down destination); the curve goes to `target/bench/NAME.*`. `pid` is the process
/// whose memory is sampled.
async fn accept(
    smtp: SocketAddr,
    pid: Option<u32>,
    intake: &Sink,
    (n, size, sessions): (usize, usize, usize),
    name: &str,
    title: &str,
) -> Result<Accepted> {
    let j = intake.clone();
    let accepted = std::sync::Arc::<std::sync::atomic::AtomicU64>::default();
    let sampler = series::Sampler::start(
        Instant::now(),
        series::Probes {
            accepted: accepted.clone(),
            delivered: Box::new(|| 0),
            journaled: Some(Box::new(move || j.messages())),
            pid,
            poll: Duration::from_millis(20),
        },
    );
    let load = loadgen::run(smtp, sessions, loadgen::Stop::Messages(n), size, accepted).await;
    let secs = load.elapsed.as_secs_f64();
    let sent = load.sent as u64;
    let journaled = sampler
        .wait_for(Duration::from_secs(1800), |s| {
            s.journaled.unwrap_or(0) >= sent
        })
        .await;
    let samples = sampler.finish().await;
    series::write(&super::series_dir(), name, title, &samples)?;
    let window = (secs / 10.0).max(1.0);
    let warm = 2.0_f64.min(window);
    Ok(Accepted {
        sent,
        failed: load.failed,
        secs,
        journaled,
        rate_start: series::rate(&samples, warm, warm + window, |s| s.accepted),
        rate_end: series::rate(&samples, secs - window, secs, |s| s.accepted),
        samples,
        latencies: super::percentiles(load.latencies),
    })
}

/// What the drain phase of either side measured.
struct Drained {
    messages: u64,
    secs: f64,
    rate: f64,
    complete: bool,
    samples: Vec<series::Sample>,
}

impl Drained {
    fn summary(&self) -> String {
        format!(
            "drained {} in {:.1} s: {:.0} msg/s{}",
            self.messages,
            self.secs,
            self.rate,
            if self.complete {
                ""
            } else {
                " (NOT all delivered)"
            }
        )
    }

    fn json(&self) -> serde_json::Value {
        json!({"secs": self.secs, "rate": self.rate, "complete": self.complete})
    }
}

/// With the destination `dest` back up, runs `flush` (the side's "deliver now") and waits until
/// `sent` messages arrived; the curve goes to `target/bench/NAME.*`.
async fn drain(
    dest: &Sink,
    pid: Option<u32>,
    sent: u64,
    name: &str,
    title: &str,
    flush: impl std::future::Future<Output = Result<()>>,
) -> Result<Drained> {
    let t = Instant::now();
    let d = dest.clone();
    let sampler = series::Sampler::start(
        t,
        series::Probes {
            accepted: Default::default(),
            delivered: Box::new(move || d.messages()),
            journaled: None,
            pid,
            poll: Duration::from_millis(20),
        },
    );
    flush.await?;
    let complete = sampler
        .wait_for(Duration::from_secs(3600), |s| s.delivered >= sent)
        .await;
    let secs = t.elapsed().as_secs_f64();
    let samples = sampler.finish().await;
    series::write(&super::series_dir(), name, title, &samples)?;
    Ok(Drained {
        messages: dest.messages(),
        secs,
        rate: dest.messages() as f64 / secs,
        complete,
        samples,
    })
}

/// The `p` quantile of sorted durations, in milliseconds.
fn at_ms(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 - 1.0) * p).round() as usize)
        .map_or(0.0, |t| t.as_secs_f64() * 1000.0)
}

/// Runs of each Postfix queue tool with the full queue (each reads every queue file).
const TOOL_RUNS: usize = 5;

/// Runs a command with its output discarded: how long it took and whether it succeeded.
fn command(cmd: &str, args: &[&str]) -> Result<(Duration, bool)> {
    let t = Instant::now();
    let status = std::process::Command::new(cmd)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .with_context(|| format!("cannot run {cmd}"))?;
    Ok((t.elapsed(), status.success()))
}

/// Regular files below `dir` (Postfix's queue directories hash into subdirectories).
fn files_under(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => files_under(&e.path()),
            Ok(t) if t.is_file() => 1,
            _ => 0,
        })
        .sum()
}

/// Memory of Postfix's master and its children: the sum of their proportional set sizes (PSS),
/// so pages the processes share (the binaries, libraries) count once in all, not once each.
fn postfix_memory_mb() -> Option<f64> {
    let master: u32 = std::fs::read_to_string("/var/spool/postfix/pid/master.pid")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let mut total = pss_mb(master)?;
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        // The parent is the fourth field of /proc/PID/stat, after the parenthesised name.
        let parent = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
            });
        if parent == Some(master) {
            total += pss_mb(pid).unwrap_or(0.0);
        }
    }
    Some(total)
}

fn pss_mb(pid: u32) -> Option<f64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let kb: f64 = rollup
        .lines()
        .find(|l| l.starts_with("Pss:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

pub(super) fn basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("admin:bench")
    )
}

/// One HTTP/1.1 request over a fresh connection; the status code, the whole response's time
/// and the response head.
async fn request(web: SocketAddr, req: String) -> Result<(u16, Duration, String)> {
    let t = Instant::now();
    let mut s = TcpStream::connect(web).await?;
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(120), s.read_to_end(&mut buf))
        .await
        .context("the web answered nothing in 120 s")??;
    let elapsed = t.elapsed();
    let text = String::from_utf8_lossy(&buf);
    let head = text.split("\r\n\r\n").next().unwrap_or("").to_owned();
    let status = head
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .context("no HTTP status")?;
    Ok((status, elapsed, head))
}

async fn get(web: SocketAddr, path: &str, ui: bool, cookie: &str) -> Result<(u16, Duration)> {
    let auth = if ui {
        format!("Cookie: {cookie}")
    } else {
        format!("Authorization: {}", basic())
    };
    let (status, t, _) = request(
        web,
        format!("GET {path} HTTP/1.1\r\nHost: {web}\r\n{auth}\r\nConnection: close\r\n\r\n"),
    )
    .await?;
    Ok((status, t))
}

async fn post_json(web: SocketAddr, path: &str, body: &str) -> Result<u16> {
    let (status, _, _) = request(
        web,
        format!(
            "POST {path} HTTP/1.1\r\nHost: {web}\r\nAuthorization: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            basic(),
            body.len()
        ),
    )
    .await?;
    Ok(status)
}

/// Logs in to the web UI as the bench's admin; the session cookie (`name=value`).
async fn login(web: SocketAddr) -> Result<String> {
    let body = "username=admin&password=bench";
    let (_, _, head) = request(
        web,
        format!(
            "POST /login HTTP/1.1\r\nHost: {web}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await?;
    head.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("set-cookie")
                .then(|| value.trim().split(';').next().unwrap_or("").to_owned())
        })
        .context("the login set no cookie")
}
