//! `cargo xtask image` and `cargo xtask e2e`: the container appliance, built offline from a
//! static binary, and its compose demo driven by swaks, asserting delivery, journaling, the API's
//! counters, and that configuration and queued mail survive a restart.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

const PROJECT: &str = "rampart-e2e";
const SMTP_PORT: &str = "12525";
const WEB_PORT: &str = "18080";
const PASSWORD: &str = "e2e-admin-password";

/// Builds the static binary (`-C target-feature=+crt-static`, glibc, no musl needed).
pub fn build_static() -> Result<PathBuf> {
    crate::run(
        Command::new("cargo")
            .args([
                "build",
                "--release",
                "--locked",
                "--target",
                "x86_64-unknown-linux-gnu",
                "-p",
                "rampart",
            ])
            .env("RUSTFLAGS", "-C target-feature=+crt-static"),
    )?;
    Ok(PathBuf::from(
        "target/x86_64-unknown-linux-gnu/release/rampart",
    ))
}

pub fn docker_available() -> bool {
    Command::new("docker")
        .arg("info")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// `docker compose` when the plugin exists, else Debian's `docker-compose`.
pub(crate) fn compose() -> Vec<String> {
    let plugin = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if plugin {
        vec!["docker".into(), "compose".into()]
    } else {
        vec!["docker-compose".into()]
    }
}

/// `cargo xtask image [--cluster]`: the appliance and the demo's engines (with `--cluster`, the
/// cluster demo's PostgreSQL instead).
pub fn image(args: &[String]) -> Result<()> {
    rampart_image()?;
    if args.iter().any(|a| a == "--cluster") {
        postgres_image()
    } else {
        engines_image()
    }
}

/// `rampart:latest` from the static binary.
pub fn rampart_image() -> Result<()> {
    let binary = build_static()?;
    // The image carries the build machine's CA bundle (Debian's ca-certificates).
    let bundle = std::path::Path::new("/etc/ssl/certs/ca-certificates.crt");
    if !bundle.exists() {
        crate::ensure_packages(&[("ca-certificates", "update-ca-certificates")])?;
    }
    std::fs::create_dir_all("target/docker")?;
    std::fs::copy(bundle, "target/docker/ca-certificates.crt")
        .context("cannot copy the CA bundle")?;
    let size = std::fs::metadata(&binary)?.len();
    eprintln!(
        "xtask: static binary {} ({:.1} MB)",
        binary.display(),
        size as f64 / 1e6
    );
    crate::run(Command::new("docker").args([
        "build",
        "-f",
        "docker/Dockerfile",
        "--target",
        "image-prebuilt",
        "-t",
        "rampart:latest",
        ".",
    ]))?;
    let out = Command::new("docker")
        .args([
            "image",
            "inspect",
            "rampart:latest",
            "--format",
            "{{.Size}}",
        ])
        .output()?;
    let bytes: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0.0);
    eprintln!("xtask: image rampart:latest is {:.1} MB", bytes / 1e6);
    Ok(())
}

/// The scanning engines of the demo, `rampart-engines:latest`: rspamd and clamd from Debian's
/// packages (see [`debian_image`]). Its configuration is mounted by the compose file
/// (`docker/engines/`).
pub fn engines_image() -> Result<()> {
    debian_image(
        "rampart-engines:latest",
        "rspamd,clamav-daemon,ca-certificates",
        &[
            // Directories systemd would make at boot; a container has no systemd.
            "--customize-hook=chroot \"$1\" install -d -o _rspamd -g _rspamd /run/rspamd",
            "--customize-hook=chroot \"$1\" install -d -o clamav -g clamav /run/clamav",
        ],
    )
}

/// PostgreSQL for the cluster demo, `rampart-postgres:latest`, from Debian's packages (see
/// [`debian_image`]); `docker/postgres/entrypoint.sh`, mounted by the compose file, sets it up.
pub fn postgres_image() -> Result<()> {
    debian_image("rampart-postgres:latest", "postgresql", &[])
}

/// An image of Debian packages without a registry: a root file system of the host's Debian
/// release with `packages` made by mmdebstrap, loaded with `docker import`.
fn debian_image(tag: &str, packages: &str, hooks: &[&str]) -> Result<()> {
    crate::ensure_packages(&[("mmdebstrap", "mmdebstrap")])?;
    // The host's Debian release, so the packages match what the tests run against.
    let release = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("VERSION_CODENAME=").map(str::to_owned))
        })
        .unwrap_or_else(|| "bookworm".into());
    let name = tag.split(':').next().unwrap_or("image");
    let tar = PathBuf::from(format!("target/docker/{name}.tar"));
    std::fs::create_dir_all("target/docker")?;
    let _ = std::fs::remove_file(&tar);
    let started = Instant::now();
    let include = format!("--include={packages}");
    crate::run(
        Command::new("mmdebstrap")
            .args([
                "--quiet",
                "--variant=apt",
                &include,
                "--dpkgopt=path-exclude=/usr/share/doc/*",
                "--dpkgopt=path-exclude=/usr/share/man/*",
                "--dpkgopt=path-exclude=/usr/share/locale/*",
            ])
            .args(hooks)
            .args([
                &release,
                tar.to_str().unwrap_or("image.tar"),
                &format!("deb http://deb.debian.org/debian {release} main"),
                &format!("deb http://deb.debian.org/debian {release}-updates main"),
                &format!("deb http://deb.debian.org/debian-security {release}-security main"),
            ]),
    )?;
    crate::run(Command::new("docker").args([
        "import",
        "--change",
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        tar.to_str().unwrap_or("image.tar"),
        tag,
    ]))?;
    let _ = std::fs::remove_file(&tar);
    eprintln!(
        "xtask: image {tag} ({packages} from Debian {release}) built in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn dc(args: &[&str]) -> Command {
    let base = compose();
    let mut cmd = Command::new(&base[0]);
    cmd.args(&base[1..])
        .args(["-f", "docker/compose.yaml", "-p", PROJECT])
        .args(args)
        .env("RAMPART_SMTP_PORT", SMTP_PORT)
        .env("RAMPART_WEB_PORT", WEB_PORT)
        .env("RAMPART_ADMIN_PASSWORD", PASSWORD);
    cmd
}

pub fn e2e() -> Result<()> {
    if !docker_available() {
        eprintln!("xtask: *** NO DOCKER ENGINE: the container end-to-end test is SKIPPED ***");
        return Ok(());
    }
    crate::ensure_packages(&[("swaks", "swaks"), ("curl", "curl")])?;
    rampart_image()?;
    engines_image()?;
    let _ = dc(&["down", "-v", "--remove-orphans"]).status();
    let result = scenario();
    if result.is_err() {
        let _ = dc(&["logs", "--no-color"]).status();
    }
    let _ = dc(&["down", "-v", "--remove-orphans"]).status();
    result?;
    eprintln!("xtask: container e2e passed");
    Ok(())
}

fn scenario() -> Result<()> {
    crate::run(&mut dc(&["up", "-d"]))?;
    wait(
        "the appliance's health endpoint",
        Duration::from_secs(60),
        || Ok(http_get("/api/v1/health")?.0 == 200),
    )?;

    // rspamd compiles its rules for ~15 s; until both engines answer, mail gets 451 4.7.1.
    wait(
        "rspamd and clamd to answer the appliance",
        Duration::from_secs(180),
        || {
            let up = |path| -> Result<bool> {
                let (status, body) = http_get(path)?;
                Ok(status == 200 && body.contains("\"reachable\":true"))
            };
            Ok(up("/api/v1/antispam")? && up("/api/v1/antivirus")?)
        },
    )?;

    swaks(&[])?;
    swaks(&["--tls"])?;
    wait(
        "two messages at the mail sink and two journal copies at the intake",
        Duration::from_secs(60),
        || Ok(sink_files("mail")?.len() >= 2 && sink_files("intake")?.len() >= 2),
    )?;
    let delivered = std::fs::read_to_string(sink_files("mail")?.first().context("a message")?)?;
    if !delivered.contains("X-Rampart-Spam: negative")
        || !delivered.contains("X-Rampart-Virus: negative")
    {
        bail!("clean mail lacks the scan verdict headers:\n{delivered}");
    }
    // Spam (GTUBE) is quarantined and a virus (EICAR) dropped, by the DEFAULT policy's
    // AsyncOS defaults; neither is delivered nor journaled.
    swaks(&[
        "--body",
        "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X",
    ])?;
    let eicar = std::env::temp_dir().join("rampart-e2e-eicar.com");
    std::fs::write(
        &eicar,
        "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*",
    )?;
    swaks(&["--attach", eicar.to_str().unwrap_or_default()])?;
    wait(
        "the spam and the virus counted on System Status",
        Duration::from_secs(30),
        || {
            let (_, body) = http_get("/api/v1/status")?;
            Ok(body.contains("\"messages_spam\":1") && body.contains("\"messages_virus\":1"))
        },
    )?;
    let (_, quarantine) = http_get("/api/v1/quarantine")?;
    if !quarantine.contains("spam positive") {
        bail!("the GTUBE message is not in the quarantine: {quarantine}");
    }
    if sink_files("mail")?.len() != 2 || sink_files("intake")?.len() != 2 {
        bail!("spam or a virus was delivered or journaled");
    }
    let (status, page) = ui_page("/security/antivirus")?;
    if status != 200 || !page.contains("ClamAV") {
        bail!("the Anti-Virus page does not show clamd's version: {status}");
    }
    let journal = sink_files("intake")?;
    let first = std::fs::read_to_string(journal.first().context("a journal copy")?)?;
    if !first.contains("X-IronPort-RemoteIP: ") || !first.contains("Content-Type: message/rfc822") {
        bail!("the journal copy lacks X-IronPort-RemoteIP or the attached original:\n{first}");
    }
    let (status, body) = http_get("/api/v1/tophosts")?;
    if status != 200 || !body.contains("\"host\":\"the.tdc.queue\"") {
        bail!("tophosts has no the.tdc.queue row: {status} {body}");
    }
    let tdc_row = body
        .split('{')
        .find(|r| r.contains("the.tdc.queue"))
        .unwrap_or_default()
        .to_owned();
    if !tdc_row.contains("\"delivered_recipients\":2") {
        bail!("the.tdc.queue should show 2 delivered copies: {tdc_row}");
    }
    // The web UI shows the same: Monitor > Delivery Status has the.tdc.queue row.
    let (status, page) = ui_page("/monitor/delivery")?;
    if status != 200 || !page.contains("data-host=\"the.tdc.queue\"") {
        bail!("the web UI's Delivery Status lacks the.tdc.queue: {status}");
    }

    // Queued mail and configuration survive a restart: stop the mail server, queue a message,
    // restart the appliance, bring the mail server back.
    crate::run(&mut dc(&["stop", "mail"]))?;
    swaks(&[])?;
    crate::run(&mut dc(&["restart", "rampart"]))?;
    wait(
        "the appliance after its restart",
        Duration::from_secs(60),
        || Ok(http_get("/api/v1/health")?.0 == 200),
    )?;
    let (_, rat) = http_get("/api/v1/rat")?;
    if !rat.contains("example.com") {
        bail!("the RAT did not survive the restart: {rat}");
    }
    crate::run(&mut dc(&["start", "mail"]))?;
    wait(
        "the queued message delivered after the restart",
        Duration::from_secs(120),
        || Ok(sink_files("mail")?.len() >= 3),
    )?;
    Ok(())
}

fn swaks(extra: &[&str]) -> Result<()> {
    let out = Command::new("swaks")
        .args([
            "--server",
            &format!("127.0.0.1:{SMTP_PORT}"),
            "--to",
            "user@example.com",
            "--from",
            "tester@sender.test",
        ])
        .args(extra)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !text.contains("250 2.0.0 Ok: queued as") {
        bail!("swaks {extra:?} failed:\n{text}");
    }
    Ok(())
}

/// The .eml files a sink container has stored, copied out with `docker cp` (the image has no shell).
fn sink_files(service: &str) -> Result<Vec<PathBuf>> {
    let id = dc(&["ps", "-q", service]).output()?;
    let id = String::from_utf8_lossy(&id.stdout).trim().to_owned();
    if id.is_empty() {
        return Ok(vec![]);
    }
    let dest = std::env::temp_dir().join(format!("rampart-e2e-{service}"));
    let _ = std::fs::remove_dir_all(&dest);
    let ok = Command::new("docker")
        .args(["cp", &format!("{id}:/sink"), dest.to_str().unwrap_or("")])
        .output()?;
    if !ok.status.success() {
        return Ok(vec![]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dest)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    Ok(files)
}

/// A GET with Basic auth against the published web port. The container listens beyond
/// loopback, so the appliance serves HTTPS with its self-signed certificate (`-k`).
fn http_get(path: &str) -> Result<(u16, String)> {
    curl(&["-u", &format!("admin:{PASSWORD}"), &web_url(path)])
}

fn web_url(path: &str) -> String {
    format!("https://127.0.0.1:{WEB_PORT}{path}")
}

/// Runs curl; returns the status of the last response and its body.
pub(crate) fn curl(args: &[&str]) -> Result<(u16, String)> {
    let out = Command::new("curl")
        .args(["-ksS", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .context("cannot run curl")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    Ok((status.trim().parse().unwrap_or(0), body.to_owned()))
}

/// Logs in to the web UI as the administrator and returns a page, as a browser would see it.
fn ui_page(path: &str) -> Result<(u16, String)> {
    let jar = std::env::temp_dir().join("rampart-e2e-cookies");
    let jar = jar.to_str().unwrap_or("rampart-e2e-cookies");
    let (status, _) = curl(&[
        "-c",
        jar,
        "--data-urlencode",
        "username=admin",
        "--data-urlencode",
        &format!("password={PASSWORD}"),
        &web_url("/login"),
    ])?;
    if status != 303 {
        bail!("logging in to the web UI answered {status}");
    }
    curl(&["-b", jar, &web_url(path)])
}

pub(crate) fn wait(
    what: &str,
    limit: Duration,
    mut cond: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let start = Instant::now();
    loop {
        if cond().unwrap_or(false) {
            return Ok(());
        }
        if start.elapsed() > limit {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
