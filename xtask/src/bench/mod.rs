//! `cargo xtask bench`: throughput, latency and memory of Rampart against the one-hop limit, the
//! disk and Postfix, in one interleaved run (see the README's performance section).
//!
//! Each run is sustained for `--secs S` (default 60) and reports its steady state after a
//! warm-up (`--warmup W`, default 10 s), with its curve over time in `target/bench/RUN.csv` and
//! `.svg`; `--messages M` runs a message count instead (a burst). `--scenario backlog` is the
//! spool-growth scenario instead of the runs (see `backlog.rs`; `--backlog N`, default 1,000,000;
//! then Postfix in the same scenario with `--postfix-backlog N`, default 100,000; `--only rampart`
//! or `--only postfix` runs one side);
//! `--scenario cluster` measures cluster mode (see `cluster.rs`; `--secs` per load run).
//!
//! Flags: `--sessions 20,200`, `--sizes 4096,102400`,
//! `--idle N` idle connections for the connection-scale run (default 10000, 0 skips it),
//! `--no-postfix`, `--only RUN[,RUN]` (some of `limit`, `disk`, `rampart`, `rampart+tdc`, `smtp-source`,
//! `postfix`, `scan-limit`, `rampart+tdc+scan`, `postfix+rspamd`, `hostile`; `smtp-source` is
//! Postfix's generator into its sink, the reference one-hop figure; `disk` is what the disk can
//! make durable: sequential writes of the message size, synced once per `sessions` messages as
//! the group commit does at best; the `scan` runs use a real
//! rspamd and clamd, see `scan.rs`; `hostile` is a password storm and a web-listener exhaustion
//! attempt),
//! `--out FILE` (default target/bench/bench.json), `--binary PATH` (bench an
//! already built `rampart`, e.g. an older commit's, instead of building this tree's).

mod backlog;
mod cluster;
mod disk;
mod hostile;
mod loadgen;
mod scan;
mod series;
mod sink;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use sink::Sink;

/// How long each run sends.
#[derive(Debug, Clone, Copy)]
enum Length {
    Messages(usize),
    Secs { secs: u64, warmup: u64 },
}

impl Length {
    fn stop(self, start: Instant) -> loadgen::Stop {
        match self {
            Length::Messages(n) => loadgen::Stop::Messages(n),
            Length::Secs { secs, .. } => loadgen::Stop::At(start + Duration::from_secs(secs)),
        }
    }

    /// Messages a sink should expect by number (0 for a sustained run, which checks the
    /// numbers it sent).
    fn expected(self) -> usize {
        match self {
            Length::Messages(n) => n,
            Length::Secs { .. } => 0,
        }
    }

    fn describe(self) -> String {
        match self {
            Length::Messages(n) => format!("{n} messages per run"),
            Length::Secs { secs, warmup } => {
                format!("{secs} s per run, steady state after {warmup} s")
            }
        }
    }
}

struct Options {
    length: Length,
    scenario: Option<String>,
    backlog: usize,
    /// Messages for Postfix's part of the backlog scenario (Postfix accepts ~500 msg/s here).
    postfix_backlog: usize,
    sessions: Vec<usize>,
    sizes: Vec<usize>,
    idle: usize,
    postfix: bool,
    out: PathBuf,
    binary: Option<PathBuf>,
    /// Runs to do (`limit`, `rampart`, `rampart+tdc`, `postfix`); all when empty.
    only: Vec<String>,
}

impl Options {
    fn wants(&self, run: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|r| r == run)
    }
}

fn parse(args: &[String]) -> Result<Options> {
    let mut secs = 60;
    let mut warmup = 10;
    let mut messages = None;
    let mut o = Options {
        length: Length::Messages(0),
        scenario: None,
        backlog: 1_000_000,
        postfix_backlog: 100_000,
        sessions: vec![20],
        sizes: vec![4096, 102_400],
        idle: 10_000,
        postfix: true,
        out: PathBuf::from("target/bench/bench.json"),
        binary: None,
        only: Vec::new(),
    };
    let list = |v: &str| -> Result<Vec<usize>> {
        v.split(',')
            .map(|x| {
                x.trim()
                    .parse::<usize>()
                    .with_context(|| format!("{x:?} is not a number"))
            })
            .collect()
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .with_context(|| format!("{a} needs a value"))
        };
        match a.as_str() {
            "--messages" => messages = Some(value()?.parse()?),
            "--secs" => secs = value()?.parse()?,
            "--warmup" => warmup = value()?.parse()?,
            "--scenario" => o.scenario = Some(value()?),
            "--backlog" => o.backlog = value()?.parse()?,
            "--postfix-backlog" => o.postfix_backlog = value()?.parse()?,
            "--sessions" => o.sessions = list(&value()?)?,
            "--sizes" => o.sizes = list(&value()?)?,
            "--idle" => o.idle = value()?.parse()?,
            "--no-postfix" => o.postfix = false,
            "--out" => o.out = PathBuf::from(value()?),
            "--binary" => o.binary = Some(PathBuf::from(value()?)),
            "--only" => o.only = value()?.split(',').map(|r| r.trim().to_owned()).collect(),
            other => bail!("unknown bench flag {other}; see xtask/src/bench/mod.rs"),
        }
    }
    o.length = match messages {
        Some(n) => Length::Messages(n),
        None if secs == 0 => bail!("--secs must be at least 1"),
        // A warm-up of at most a third of the run, so a short run still has a steady part.
        None => Length::Secs {
            secs,
            warmup: warmup.min(secs / 3),
        },
    };
    if let Some(s) = &o.scenario
        && s != "backlog"
        && s != "cluster"
    {
        bail!("unknown scenario {s:?}: the scenarios are backlog and cluster");
    }
    Ok(o)
}

pub fn run(args: &[String]) -> Result<()> {
    let opts = parse(args)?;
    // The load generator and the sinks are measuring instruments: an unoptimised build of them
    // would spend the CPU the appliance needs (it once halved the 100 KiB one-hop limit). `cargo
    // xtask` builds debug, so the bench runs itself again from a release build of xtask.
    if cfg!(debug_assertions) {
        return crate::run(
            std::process::Command::new("cargo")
                .args([
                    "run",
                    "--quiet",
                    "--release",
                    "--locked",
                    "-p",
                    "xtask",
                    "--",
                    "bench",
                ])
                .args(args),
        );
    }
    // The same static binary as the container image, so one release build serves both.
    let binary = match &opts.binary {
        Some(b) => {
            std::fs::canonicalize(b).with_context(|| format!("no binary at {}", b.display()))?
        }
        None => std::fs::canonicalize(crate::container::build_static()?)?,
    };
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(bench(opts, binary));
    // The runtime first, so every run's appliance has been stopped and its directory handed over.
    drop(rt);
    remove_finished();
    result
}

/// Idle-connection runs need far more descriptors than the usual soft limit of 1024.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard.min(1 << 20), hard);
    }
}

#[derive(Debug, Clone)]
struct RunResult {
    name: String,
    size: usize,
    sessions: usize,
    messages: usize,
    /// Steady state in a sustained run; the whole run for a message count.
    accepted_per_sec: f64,
    e2e_per_sec: Option<f64>,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    peak_rss_mb: Option<f64>,
    cpu_secs: Option<f64>,
    /// Seconds from the last message accepted to the last delivered: the backlog a run built.
    drain_secs: Option<f64>,
    ok: bool,
    note: String,
}

impl RunResult {
    /// A row for a run that has only a rate (the disk, the one-hop generator of Postfix).
    fn rate_only(name: &str, size: usize, sessions: usize, messages: usize, rate: f64) -> Self {
        RunResult {
            name: name.into(),
            size,
            sessions,
            messages,
            accepted_per_sec: rate,
            e2e_per_sec: Some(rate),
            p50_ms: f64::NAN,
            p90_ms: f64::NAN,
            p99_ms: f64::NAN,
            max_ms: f64::NAN,
            peak_rss_mb: None,
            cpu_secs: None,
            drain_secs: None,
            ok: true,
            note: String::new(),
        }
    }
}

async fn bench(opts: Options, binary: PathBuf) -> Result<()> {
    match opts.scenario.as_deref() {
        Some("backlog") => return backlog::run(&binary, &opts).await,
        Some("cluster") => return cluster::run(&binary, &opts).await,
        _ => {}
    }
    eprintln!("bench: {}", opts.length.describe());
    let postfix = opts.postfix && postfix_available();
    if opts.postfix && !postfix {
        if !shared_bench().join("postfix-peer.sh").exists() {
            eprintln!(
                "bench: {} is missing (the Postfix peer scripts live beside the repository), so the smtp-source and postfix runs are skipped",
                shared_bench().join("postfix-peer.sh").display()
            );
        } else {
            eprintln!(
                "bench: Postfix is not installed, so the smtp-source and postfix runs are skipped (apt-get install postfix swaks; see ../shared/bench/README.md)"
            );
        }
    }
    let wants_scan = ["scan-limit", "rampart+tdc+scan", "postfix+rspamd"]
        .iter()
        .any(|r| opts.wants(r));
    let engines = if wants_scan {
        match scan::start_engines().await {
            Ok(e) => Some(e),
            Err(e) => {
                eprintln!("bench: the scanning runs are skipped: {e:#}");
                None
            }
        }
    } else {
        None
    };
    let length = opts.length;
    let mut results = Vec::new();
    for &size in &opts.sizes {
        for &sessions in &opts.sessions {
            // Interleaved: each configuration runs right after the others, so drift hits all alike.
            if opts.wants("limit") {
                results.push(limit_run(size, sessions, length).await?);
            }
            if opts.wants("disk") {
                results.push(disk::run(size, sessions, length)?);
            }
            if opts.wants("rampart") {
                results.push(rampart_run(&binary, size, sessions, length, false, None).await?);
            }
            if opts.wants("rampart+tdc") {
                results.push(rampart_run(&binary, size, sessions, length, true, None).await?);
            }
            if postfix && opts.wants("smtp-source") {
                match smtp_source_run(size, sessions, length).await {
                    Ok(r) => results.push(r),
                    Err(e) => eprintln!("bench: smtp-source run failed: {e:#}"),
                }
            }
            if postfix && opts.wants("postfix") {
                match postfix_run(size, sessions, length).await {
                    Ok(r) => results.push(r),
                    Err(e) => eprintln!("bench: postfix run failed: {e:#}"),
                }
            }
            if let Some(engines) = &engines {
                if opts.wants("scan-limit") {
                    results.push(scan::limit_run(engines, size, sessions, length).await?);
                }
                if opts.wants("rampart+tdc+scan") {
                    results.push(
                        rampart_run(&binary, size, sessions, length, true, Some(engines)).await?,
                    );
                }
                if postfix && scan::postfix_ready() && opts.wants("postfix+rspamd") {
                    match scan::postfix_run(engines, size, sessions, length).await {
                        Ok(r) => results.push(r),
                        Err(e) => eprintln!("bench: postfix+rspamd run failed: {e:#}"),
                    }
                }
            }
        }
    }
    let idle = if opts.idle > 0 {
        Some(idle_run(&binary, opts.idle).await?)
    } else {
        None
    };
    let hostile = if opts.wants("hostile") {
        let dest = Sink::start(1).await?;
        let intake = Sink::start(1).await?;
        let app = start_appliance(&binary, dest.addr, intake.addr, false, 1000).await?;
        let pid = app.child.id().unwrap_or(0);
        let storm = hostile::password_storm(app.web, pid, 200, 3).await;
        let exhaustion = hostile::web_exhaustion(app.web, app.smtp, pid, 20_000).await;
        Some((storm, exhaustion))
    } else {
        None
    };
    print_table(&results, idle.as_ref());
    if let Some((storm, exhaustion)) = &hostile {
        hostile::print(storm, exhaustion);
    }
    let json = json!({
        "machine": machine(),
        "length": length.describe(),
        "runs": results.iter().map(|r| json!({
            "name": r.name, "size": r.size, "sessions": r.sessions, "messages": r.messages,
            "accepted_per_sec": r.accepted_per_sec, "end_to_end_per_sec": r.e2e_per_sec,
            "latency_ms": {"p50": r.p50_ms, "p90": r.p90_ms, "p99": r.p99_ms, "max": r.max_ms},
            "peak_rss_mb": r.peak_rss_mb, "cpu_secs": r.cpu_secs, "drain_secs": r.drain_secs,
            "ok": r.ok, "note": r.note,
        })).collect::<Vec<_>>(),
        "idle": idle,
        "hostile": hostile.map(|(storm, exhaustion)| json!({"password_storm": storm, "web_exhaustion": exhaustion})),
    });
    if let Some(dir) = opts.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&opts.out, serde_json::to_string_pretty(&json)?)?;
    eprintln!("bench: results written to {}", opts.out.display());
    if results.iter().any(|r| !r.ok) {
        bail!("a run lost or duplicated mail (see the table)");
    }
    Ok(())
}

fn percentiles(mut l: Vec<Duration>) -> (f64, f64, f64, f64) {
    if l.is_empty() {
        return (0.0, 0.0, 0.0, 0.0);
    }
    l.sort();
    let at = |p: f64| l[((l.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0;
    (
        at(0.5),
        at(0.9),
        at(0.99),
        l[l.len() - 1].as_secs_f64() * 1000.0,
    )
}

/// Where the curves go.
fn series_dir() -> PathBuf {
    PathBuf::from("target/bench")
}

/// What one load measured: the generator's result, the samples over time and when the last
/// message was delivered.
struct Measured {
    load: loadgen::LoadResult,
    samples: Vec<series::Sample>,
    /// Seconds from the end of sending to the last delivery (`None`: not all arrived).
    drain_secs: Option<f64>,
    accepted_per_sec: f64,
    e2e_per_sec: f64,
    latencies: (f64, f64, f64, f64),
}

/// Sends the load to `target`, samples the counters each second, waits (up to ten minutes)
/// until the end-to-end counter has every accepted message, and writes the curve.
async fn measure(
    target: std::net::SocketAddr,
    sessions: usize,
    size: usize,
    length: Length,
    probes: series::Probes,
    curve: &str,
) -> Result<Measured> {
    let start = Instant::now();
    let accepted = probes.accepted.clone();
    let sampler = series::Sampler::start(start, probes);
    let load = loadgen::run(target, sessions, length.stop(start), size, accepted).await;
    let sent_at = sampler.elapsed();
    let sent = load.sent as u64;
    let drained = sampler
        .wait_for(Duration::from_secs(600), |s| series::e2e(s) >= sent)
        .await
        .then(|| sampler.elapsed().saturating_sub(sent_at).as_secs_f64());
    let total = sampler.elapsed();
    let samples = sampler.finish().await;
    let (accepted_per_sec, e2e_per_sec, latencies) = match length {
        Length::Messages(_) => (
            load.sent as f64 / load.elapsed.as_secs_f64(),
            load.sent as f64 / total.as_secs_f64(),
            percentiles(load.latencies.clone()),
        ),
        Length::Secs { warmup, .. } => {
            let (from, to) = (warmup as f64, sent_at.as_secs_f64());
            (
                series::rate(&samples, from, to, |s| s.accepted),
                series::rate(&samples, from, to, series::e2e),
                percentiles(load.latencies_since(start + Duration::from_secs(warmup))),
            )
        }
    };
    series::write(&series_dir(), curve, curve, &samples)?;
    Ok(Measured {
        load,
        samples,
        drain_secs: drained,
        accepted_per_sec,
        e2e_per_sec,
        latencies,
    })
}

async fn limit_run(size: usize, sessions: usize, length: Length) -> Result<RunResult> {
    let dest = Sink::start(length.expected()).await?;
    let d = dest.clone();
    let probes = series::Probes {
        accepted: Default::default(),
        delivered: Box::new(move || d.messages()),
        journaled: None,
        pid: None,
        poll: Duration::from_millis(5),
    };
    let m = measure(
        dest.addr,
        sessions,
        size,
        length,
        probes,
        &format!("limit-{size}-{sessions}"),
    )
    .await?;
    let (missing, dups) = check(&dest, length, &m.load);
    let (p50, p90, p99, max) = m.latencies;
    Ok(RunResult {
        name: "limit".into(),
        size,
        sessions,
        messages: m.load.sent,
        accepted_per_sec: m.accepted_per_sec,
        // The generator into its sink is one hop: what arrived is what was accepted.
        e2e_per_sec: Some(m.accepted_per_sec),
        p50_ms: p50,
        p90_ms: p90,
        p99_ms: p99,
        max_ms: max,
        peak_rss_mb: None,
        cpu_secs: None,
        drain_secs: None,
        ok: missing == 0 && dups == 0 && m.load.failed == 0,
        note: format!(
            "missing {missing}, duplicates {dups}, failed {}",
            m.load.failed
        ),
    })
}

/// (missing, duplicated) at a sink: by number for a message count, by the numbers accepted for
/// a sustained run.
fn check(sink: &Sink, length: Length, load: &loadgen::LoadResult) -> (usize, usize) {
    match length {
        Length::Messages(_) => sink.check(),
        Length::Secs { .. } => sink.check_seqs(&load.seqs),
    }
}

/// A running appliance for the bench.
struct Appliance {
    child: tokio::process::Child,
    smtp: std::net::SocketAddr,
    web: std::net::SocketAddr,
    config: PathBuf,
    _dir: TempDir,
}

async fn start_appliance(
    binary: &Path,
    dest: std::net::SocketAddr,
    intake: std::net::SocketAddr,
    journal: bool,
    max_conns: usize,
) -> Result<Appliance> {
    start_appliance_with(binary, dest, intake, journal, max_conns, "").await
}

/// As [`start_appliance`], with `extra` bootstrap sections (the scanning engines).
async fn start_appliance_with(
    binary: &Path,
    dest: std::net::SocketAddr,
    intake: std::net::SocketAddr,
    journal: bool,
    max_conns: usize,
    extra: &str,
) -> Result<Appliance> {
    let dir = TempDir::new()?;
    let config = dir.0.join("rampart.toml");
    std::fs::write(
        &config,
        format!(
            "hostname = \"rampart.bench\"\ndata_dir = \"{}\"\n[smtp]\nlisten = [\"127.0.0.1:0\"]\nmax_connections = {max_conns}\n\
             max_connections_per_ip = {max_conns}\n\
             [web]\nlisten = \"127.0.0.1:0\"\n[dns]\nnameservers = [\"127.0.0.1:9\"]\n[tdc]\ntls = \"off\"\n{extra}",
            dir.0.join("data").display()
        ),
    )?;
    let settings = dir.0.join("settings.toml");
    std::fs::write(
        &settings,
        format!(
            "[[rat]]\ndomain = \"example.com\"\naction = \"accept\"\n\n[[smtp_routes]]\ndomain = \"example.com\"\nhosts = [\"{dest}\"]\n\n\
             [[smtp_routes]]\ndomain = \"intake.bench\"\nhosts = [\"{intake}\"]\n\n[tdc]\nenabled = {journal}\nintake_address = \"journal@intake.bench\"\n\n\
             [[incoming_policies]]\nname = \"DEFAULT\"\n\n[incoming_policies.tdc]\nmode = \"global\"\n"
        ),
    )?;
    let status = tokio::process::Command::new(binary)
        .arg("--config")
        .arg(&config)
        .arg("loadconfig")
        .arg("--partial")
        .arg(&settings)
        .env("RAMPART_ADMIN_PASSWORD", "bench")
        .stderr(Stdio::null())
        .status()
        .await?;
    if !status.success() {
        bail!("rampart loadconfig failed for the bench settings");
    }
    let (child, smtp, web) = serve(binary, &config).await?;
    Ok(Appliance {
        child,
        smtp,
        web,
        config,
        _dir: dir,
    })
}

/// Starts `rampart serve` and waits until it reports both listeners.
async fn serve(
    binary: &Path,
    config: &Path,
) -> Result<(
    tokio::process::Child,
    std::net::SocketAddr,
    std::net::SocketAddr,
)> {
    let mut child = tokio::process::Command::new(binary)
        .arg("--config")
        .arg(config)
        .arg("serve")
        .env("RAMPART_ADMIN_PASSWORD", "bench")
        .env("RAMPART_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let mut smtp = None;
    let mut web = None;
    while let Some(line) = lines.next_line().await? {
        if let Some(a) = line.strip_prefix("smtp listening on ") {
            smtp = Some(a.parse()?);
        }
        if let Some(a) = line.strip_prefix("web listening on ") {
            web = Some(a.parse()?);
            break;
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((
        child,
        smtp.context("rampart did not report its SMTP port")?,
        web.context("rampart did not report its web port")?,
    ))
}

impl Appliance {
    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// SIGTERM, and waits (up to a minute) for the process to end; how long it took.
    async fn stop(&mut self) -> Duration {
        let t = Instant::now();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await;
        t.elapsed()
    }
}

/// Peak RSS (MB) and CPU seconds of a process, from /proc.
fn usage(pid: u32) -> (Option<f64>, Option<f64>) {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        });
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1;
            let f: Vec<&str> = after.split_whitespace().collect();
            let utime: f64 = f.get(11)?.parse().ok()?;
            let stime: f64 = f.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        });
    (rss.map(|kb| kb / 1024.0), cpu)
}

async fn rampart_run(
    binary: &Path,
    size: usize,
    sessions: usize,
    length: Length,
    journal: bool,
    engines: Option<&scan::Engines>,
) -> Result<RunResult> {
    let dest = Sink::start(length.expected()).await?;
    let intake = Sink::start(length.expected()).await?;
    let extra = engines.map(scan::appliance_config).unwrap_or_default();
    let mut app =
        start_appliance_with(binary, dest.addr, intake.addr, journal, 1000, &extra).await?;
    let pid = app.pid();
    let name = match (journal, engines.is_some()) {
        (true, true) => "rampart+tdc+scan",
        (true, false) => "rampart+tdc",
        (false, _) => "rampart",
    };
    let (d, j) = (dest.clone(), intake.clone());
    let probes = series::Probes {
        accepted: Default::default(),
        delivered: Box::new(move || d.messages()),
        journaled: journal.then(|| Box::new(move || j.messages()) as series::Counter),
        pid: Some(pid),
        poll: Duration::from_millis(5),
    };
    let m = measure(
        app.smtp,
        sessions,
        size,
        length,
        probes,
        &format!("{name}-{size}-{sessions}"),
    )
    .await?;
    let (rss, cpu) = usage(pid);
    app.stop().await;
    let (missing, dups) = check(&dest, length, &m.load);
    let (jmissing, jdups) = if journal {
        check(&intake, length, &m.load)
    } else {
        (0, 0)
    };
    let (p50, p90, p99, max) = m.latencies;
    Ok(RunResult {
        name: name.into(),
        size,
        sessions,
        messages: m.load.sent,
        accepted_per_sec: m.accepted_per_sec,
        e2e_per_sec: Some(m.e2e_per_sec),
        p50_ms: p50,
        p90_ms: p90,
        p99_ms: p99,
        max_ms: max,
        peak_rss_mb: rss.or(series::peak_rss(&m.samples)),
        cpu_secs: cpu,
        drain_secs: m.drain_secs,
        ok: missing + dups + jmissing + jdups == 0 && m.load.failed == 0,
        note: format!(
            "dest missing {missing} dup {dups}; intake missing {jmissing} dup {jdups}; failed {}",
            m.load.failed
        ),
    })
}

fn shared_bench() -> PathBuf {
    PathBuf::from("../shared/bench")
}

/// Runs one of the `../shared/bench` scripts quietly.
fn shared_script(name: &str, arg: &str) -> std::io::Result<std::process::ExitStatus> {
    std::process::Command::new("bash")
        .arg(shared_bench().join(name))
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
}

fn postfix_available() -> bool {
    crate::have("postfix")
        && crate::have("smtp-sink")
        && shared_bench().join("postfix-peer.sh").exists()
}

fn sink_counts() -> Result<(u64, u64)> {
    let out = std::process::Command::new("bash")
        .arg(shared_bench().join("sinks.sh"))
        .arg("counts")
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text
        .split_whitespace()
        .map(|n| n.parse::<u64>().unwrap_or(0));
    Ok((it.next().unwrap_or(0), it.next().unwrap_or(0)))
}

/// Postfix's `smtp-source` straight into `smtp-sink`: the one-hop figure of
/// `../shared/bench/README.md`, measured in the same run so that this bench's own limit (its
/// generator into its sink) can be read against it. Informational: no ratio is taken from it.
/// A sustained run stops the generator at its time and counts what the sink got meanwhile.
async fn smtp_source_run(size: usize, sessions: usize, length: Length) -> Result<RunResult> {
    let source = ["/usr/sbin/smtp-source", "smtp-source"]
        .into_iter()
        .find(|p| Path::new(p).exists() || crate::have(p))
        .context("smtp-source is not installed")?;
    shared_script("sinks.sh", "start")?;
    let (d0, _) = sink_counts()?;
    let count = match length {
        Length::Messages(n) => n,
        Length::Secs { .. } => 100_000_000,
    };
    let start = Instant::now();
    let mut child = tokio::process::Command::new(source)
        .args(["-s", &sessions.to_string(), "-m", &count.to_string()])
        .args([
            "-l",
            &size.to_string(),
            "-f",
            "sender@bench.test",
            "-t",
            "user@example.com",
        ])
        .arg("127.0.0.1:2626")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let (rate, got, ok) = match length {
        Length::Messages(n) => {
            let status = child.wait().await?;
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut d = d0;
            while d - d0 < n as u64 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
                (d, _) = sink_counts()?;
            }
            let got = d - d0;
            (
                got as f64 / start.elapsed().as_secs_f64(),
                got,
                status.success() && got == n as u64,
            )
        }
        Length::Secs { secs, warmup } => {
            tokio::time::sleep(Duration::from_secs(warmup)).await;
            let (w, _) = sink_counts()?;
            let from = Instant::now();
            tokio::time::sleep(Duration::from_secs(secs - warmup)).await;
            let (e, _) = sink_counts()?;
            let elapsed = from.elapsed();
            let _ = child.kill().await;
            ((e - w) as f64 / elapsed.as_secs_f64(), e - d0, true)
        }
    };
    let _ = shared_script("sinks.sh", "stop");
    Ok(RunResult {
        ok,
        note: format!("smtp-sink counted {got}"),
        ..RunResult::rate_only("smtp-source", size, sessions, got as usize, rate)
    })
}

async fn postfix_run(size: usize, sessions: usize, length: Length) -> Result<RunResult> {
    shared_script("sinks.sh", "start")?;
    let setup = shared_script("postfix-peer.sh", "setup")?;
    if !setup.success() {
        bail!("postfix-peer.sh setup failed");
    }
    let result = postfix_run_here(size, sessions, length).await;
    let _ = shared_script("postfix-peer.sh", "stop");
    let _ = shared_script("sinks.sh", "stop");
    result
}

/// The measuring part of a Postfix run, on a Postfix and sinks already set up.
async fn postfix_run_here(size: usize, sessions: usize, length: Length) -> Result<RunResult> {
    let (d0, j0) = sink_counts()?;
    let probes = series::Probes {
        accepted: Default::default(),
        delivered: Box::new(move || sink_counts().map_or(0, |(d, _)| d.saturating_sub(d0))),
        journaled: Some(Box::new(move || {
            sink_counts().map_or(0, |(_, j)| j.saturating_sub(j0))
        })),
        pid: None,
        poll: Duration::from_millis(50),
    };
    let m = measure(
        "127.0.0.1:2525".parse()?,
        sessions,
        size,
        length,
        probes,
        &format!("postfix-{size}-{sessions}"),
    )
    .await?;
    let (d, j) = sink_counts()?;
    let (p50, p90, p99, max) = m.latencies;
    let sent = m.load.sent as u64;
    Ok(RunResult {
        name: "postfix".into(),
        size,
        sessions,
        messages: m.load.sent,
        accepted_per_sec: m.accepted_per_sec,
        e2e_per_sec: Some(m.e2e_per_sec),
        p50_ms: p50,
        p90_ms: p90,
        p99_ms: p99,
        max_ms: max,
        peak_rss_mb: None,
        cpu_secs: None,
        drain_secs: m.drain_secs,
        ok: d - d0 == sent && j - j0 == sent,
        note: format!("destination +{}, journal +{}", d - d0, j - j0),
    })
}

async fn idle_run(binary: &Path, n: usize) -> Result<serde_json::Value> {
    let dest = Sink::start(1).await?;
    let intake = Sink::start(1).await?;
    let app = start_appliance(binary, dest.addr, intake.addr, false, n + 100).await?;
    let pid = app.child.id().unwrap_or(0);
    let (before, _) = usage(pid);
    let (conns, failed) = loadgen::idle_connections(app.smtp, n).await;
    let banner = loadgen::banner_time(app.smtp).await;
    let rss_now = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        });
    let (peak, _) = usage(pid);
    drop(conns);
    Ok(json!({
        "connections": n - failed, "failed": failed,
        "rss_before_mb": before, "rss_mb": rss_now.map(|k| k / 1024.0), "peak_rss_mb": peak,
        "new_session_banner_ms": banner.ok().map(|d| d.as_secs_f64() * 1000.0),
    }))
}

fn print_table(results: &[RunResult], idle: Option<&serde_json::Value>) {
    println!(
        "\n{:<16} {:>7} {:>5} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>9} {:>10}  check",
        "run",
        "size",
        "sess",
        "accept/s",
        "e2e/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "RSS MB",
        "CPU s",
        "drain s",
        "vs limit",
        "vs postfix"
    );
    for r in results {
        let same = |name: &'static str| {
            results
                .iter()
                .filter(move |l| l.name == name && l.size == r.size && l.sessions == r.sessions)
                .filter_map(|l| l.e2e_per_sec)
        };
        // A scanning run is compared with the engines' own limit and with Postfix scanning
        // through the same engines; the others with the lower of one SMTP hop and the disk.
        let (limit, postfix) = if r.name.ends_with("+scan") {
            (same("scan-limit").next(), same("postfix+rspamd").next())
        } else {
            (
                same("limit").chain(same("disk")).reduce(f64::min),
                same("postfix").next(),
            )
        };
        let ratio = |o: Option<f64>| match (o, r.e2e_per_sec) {
            (Some(b), Some(a)) if b > 0.0 && r.name.starts_with("rampart") => {
                format!("{:.2}x", a / b)
            }
            _ => "-".into(),
        };
        println!(
            "{:<16} {:>7} {:>5} {:>10.0} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8} {:>7} {:>7} {:>9} {:>10}  {}",
            r.name,
            r.size,
            r.sessions,
            r.accepted_per_sec,
            r.e2e_per_sec.unwrap_or(0.0),
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.max_ms,
            r.peak_rss_mb
                .map(|m| format!("{m:.1}"))
                .unwrap_or("-".into()),
            r.cpu_secs.map(|c| format!("{c:.1}")).unwrap_or("-".into()),
            r.drain_secs
                .map(|c| format!("{c:.1}"))
                .unwrap_or("-".into()),
            ratio(limit),
            ratio(postfix),
            if r.ok {
                "ok".to_string()
            } else {
                format!("FAILED ({})", r.note)
            }
        );
    }
    if let Some(i) = idle {
        println!("\nidle connections: {i}");
    }
}

fn machine() -> serde_json::Value {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("model name"))
            .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
    });
    json!({"cpus": cpus, "cpu_model": model})
}

/// A temporary directory removed on drop (the bench needs no crate for this).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        let base = std::env::temp_dir().join(format!(
            "rampart-bench-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&base)?;
        Ok(TempDir(base))
    }
}

/// Data directories of finished runs, removed when the bench ends: removing one (tens of thousands
/// of spool files) between runs made ext4 without a journal — this machine's disk — skip over the
/// freshly freed inodes on every file the next run created for minutes (`recently_deleted` in its
/// inode allocator), which slowed whichever run came next, Postfix's or Rampart's.
static FINISHED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Ok(mut l) = FINISHED.lock() {
            l.push(std::mem::take(&mut self.0));
        }
    }
}

/// Removes the data directories of the bench's runs.
fn remove_finished() {
    let dirs = FINISHED.lock().map(|mut l| std::mem::take(&mut *l));
    for d in dirs.unwrap_or_default() {
        let _ = std::fs::remove_dir_all(&d);
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
