//! The scanning runs of the bench (issue 15): the engines on their own (`scan-limit`: rspamd and
//! clamd driven directly, both per message at once, as Rampart asks them), Rampart scanning and
//! journaling (`rampart+tdc+scan`), and Postfix with rspamd's milter and the same clamd behind
//! rspamd's antivirus module (`postfix+rspamd`). All three use one rspamd and one clamd started
//! here with the same configuration, so the ratios compare like with like.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bytes::Bytes;
use rampart_scan::{Clamd, ClamdAddress, Rspamd, ScanEnvelope};
use rampart_testkit::{Group, RspamdConf, free_port};

use super::{RunResult, TempDir, percentiles};

/// The two engines, killed when dropped (each its whole process group).
pub struct Engines {
    pub rspamd: SocketAddr,
    /// rspamd's proxy worker in milter mode, for Postfix.
    pub milter: SocketAddr,
    pub clamd: SocketAddr,
    _rspamd: Group,
    _clamd: Group,
    _dir: TempDir,
}

/// Starts rspamd and clamd on free loopback ports. DNS goes to a port where nothing answers
/// (this machine has no DNS), with a short timeout; the score thresholds are raised
/// (`RspamdConf::new`) so that the generator's messages stay clean.
pub async fn start_engines() -> Result<Engines> {
    let dir = TempDir::new()?;
    let d = dir.0.clone();
    let (normal, controller, proxy, clamd_port) =
        (free_port()?, free_port()?, free_port()?, free_port()?);
    let conf = RspamdConf::new(&d, ([127, 0, 0, 1], 9).into(), "0.2s")?;
    conf.local(
        "worker-normal.inc",
        &format!("bind_socket = \"127.0.0.1:{normal}\";\ncount = 2;\n"),
    )?;
    conf.local(
        "worker-controller.inc",
        &format!("bind_socket = \"127.0.0.1:{controller}\";\n"),
    )?;
    conf.local(
        "worker-proxy.inc",
        &format!(
            "bind_socket = \"127.0.0.1:{proxy}\";\nmilter = yes;\ntimeout = 120s;\nupstream \"local\" {{ default = yes; self_scan = yes; }}\ncount = 2;\n"
        ),
    )?;
    // For Postfix: rspamd asks the same clamd, and a virus is a reject.
    conf.local(
        "antivirus.conf",
        &format!(
            "clamav {{ type = \"clamav\"; servers = \"127.0.0.1:{clamd_port}\"; action = \"reject\"; scan_mime_parts = false; scan_text_mime = true; scan_image_mime = true; }}\n"
        ),
    )?;
    let rspamd = conf.spawn()?;
    let clamd =
        rampart_testkit::spawn_clamd(&d.join("clamd"), clamd_port, "25M", "MaxThreads 20\n")?;
    let engines = Engines {
        rspamd: ([127, 0, 0, 1], normal).into(),
        milter: ([127, 0, 0, 1], proxy).into(),
        clamd: ([127, 0, 0, 1], clamd_port).into(),
        _rspamd: rspamd,
        _clamd: clamd,
        _dir: dir,
    };
    let r = Rspamd::new(
        &format!("http://{}", engines.rspamd),
        Duration::from_secs(2),
    )?;
    let c = Clamd::new(
        ClamdAddress::Tcp(engines.clamd.to_string()),
        Duration::from_secs(2),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while r.ping().await.is_err() || c.version().await.is_err() {
        if Instant::now() > deadline {
            bail!("rspamd or clamd did not start within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(engines)
}

/// The bootstrap keys that make an appliance scan with `engines`.
pub fn appliance_config(engines: &Engines) -> String {
    format!(
        "[antispam]\nengine = \"rspamd\"\nurl = \"http://{}\"\n[antivirus]\nengine = \"clamav\"\naddress = \"{}\"\n",
        engines.rspamd, engines.clamd
    )
}

/// The engines' own limit: `sessions` workers each asking rspamd and clamd about one message at
/// a time, both at once, as Rampart does at the end of DATA. Each scan is of another message
/// (the generator's headers for its sequence number, the same body), as in the end-to-end runs:
/// clamd remembers what it found clean, so the same message over and over cost it nothing
/// after the first time and the limit came out a fifth too high at 100 KiB.
pub async fn limit_run(
    engines: &Engines,
    size: usize,
    sessions: usize,
    length: super::Length,
) -> Result<RunResult> {
    let rspamd = Arc::new(Rspamd::new(
        &format!("http://{}", engines.rspamd),
        Duration::from_secs(30),
    )?);
    let clamd = Arc::new(Clamd::new(
        ClamdAddress::Tcp(engines.clamd.to_string()),
        Duration::from_secs(30),
    ));
    let messages = Arc::new(super::loadgen::Messages::new(size));
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let stop = length.stop(start);
    let mut tasks = Vec::new();
    for _ in 0..sessions {
        let (rspamd, clamd, next, failed, messages) = (
            rspamd.clone(),
            clamd.clone(),
            next.clone(),
            failed.clone(),
            messages.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let rcpts = vec!["user@example.com".to_owned()];
            let mut latencies = Vec::new();
            while let Some(seq) = stop.next_seq(&next) {
                let message = Bytes::from(messages.get(seq));
                let env = ScanEnvelope {
                    client_ip: Some([127, 0, 0, 1].into()),
                    helo: "bench.test",
                    sender: "sender@bench.test",
                    recipients: &rcpts,
                    user: None,
                    queue_id: String::new(),
                };
                let t = Instant::now();
                let (spam, virus) =
                    tokio::join!(rspamd.check(message.clone(), &env), clamd.scan(&message));
                latencies.push(t.elapsed());
                if spam.is_err() || virus.is_err() {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap_or_default());
    }
    let elapsed = start.elapsed();
    let failed = failed.load(Ordering::Relaxed);
    let messages = latencies.len();
    let rate = messages as f64 / elapsed.as_secs_f64();
    let (p50, p90, p99, max) = percentiles(latencies);
    Ok(RunResult {
        name: "scan-limit".into(),
        size,
        sessions,
        messages,
        accepted_per_sec: rate,
        e2e_per_sec: Some(rate),
        p50_ms: p50,
        p90_ms: p90,
        p99_ms: p99,
        max_ms: max,
        peak_rss_mb: None,
        cpu_secs: None,
        drain_secs: None,
        ok: failed == 0,
        note: format!("rspamd + clamd per message, {failed} failed"),
    })
}

/// Postfix as in the `postfix` run, with rspamd's proxy worker as its milter (`milter_default_action
/// = tempfail`, so a scan that fails is not a pass), rspamd asking the same clamd.
pub async fn postfix_run(
    engines: &Engines,
    size: usize,
    sessions: usize,
    length: super::Length,
) -> Result<RunResult> {
    let postconf = |settings: &[String]| -> Result<()> {
        let ok = std::process::Command::new("postconf")
            .arg("-e")
            .args(settings)
            .status()?
            .success()
            && std::process::Command::new("postfix")
                .arg("reload")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?
                .success();
        if !ok {
            bail!("postconf/postfix reload failed");
        }
        Ok(())
    };
    super::shared_script("sinks.sh", "start")?;
    if !super::shared_script("postfix-peer.sh", "setup")?.success() {
        bail!("postfix-peer.sh setup failed");
    }
    postconf(&[
        format!("smtpd_milters=inet:{}", engines.milter),
        "milter_default_action=tempfail".into(),
        "milter_protocol=6".into(),
        "milter_mail_macros=i {mail_addr} {client_addr} {client_name} {auth_authen}".into(),
    ])?;
    let mut result = super::postfix_run_here(size, sessions, length).await;
    let _ = postconf(&["smtpd_milters=".into()]);
    let _ = super::shared_script("postfix-peer.sh", "stop");
    let _ = super::shared_script("sinks.sh", "stop");
    if let Ok(r) = &mut result {
        r.name = "postfix+rspamd".into();
    }
    result
}

/// Whether Postfix and the shared peer scripts are here.
pub fn postfix_ready() -> bool {
    super::postfix_available() && Path::new("/usr/sbin/postconf").exists()
}
