//! Project automation, run as `cargo xtask <task>`.
//!
//! - `test`: installs the system packages the tests use when they are missing, then runs the
//!   whole test suite (the README's test command).
//! - `ci`: formatting and lint checks, then `test` (what `.ci/run` runs).
//! - `codegen`: regenerates generated documentation (the configuration reference).
//! - `bench`: throughput, latency and memory against the one-hop limit and Postfix.
//! - `image`: the container image from a static binary; `e2e`: the compose demo, tested.
//! - `fuzz [--secs N] [TARGET...]`: the coverage-guided fuzz targets of `fuzz/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

mod bench;
mod cluster_e2e;
mod container;
mod fuzz;

/// Debian packages the test suite uses, with the command (or file) that shows each is installed.
const TEST_PACKAGES: &[(&str, &str)] = &[
    ("swaks", "swaks"),
    // swaks --tls needs Net::SSLeay, only a recommendation of the swaks package.
    ("libnet-ssleay-perl", "perl -MNet::SSLeay -e 1"),
    // The browser tests drive Debian's Chromium through chromedriver.
    ("chromium", "chromium"),
    ("chromium-driver", "chromedriver"),
    // Readable screenshots: a font Chromium can render with.
    ("fonts-dejavu-core", "/usr/share/fonts/truetype/dejavu"),
    // The scanning engines the anti-spam and anti-virus services use; the tests start their own.
    ("rspamd", "/usr/bin/rspamd"),
    ("clamav-daemon", "/usr/sbin/clamd"),
    // Cluster mode's shared database; the tests start their own server.
    ("postgresql", "/usr/lib/postgresql"),
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = project_root();
    std::env::set_current_dir(&root)?;
    match args.first().map(String::as_str) {
        Some("test") => test(args.get(1..).unwrap_or_default()),
        Some("ci") => ci(),
        Some("codegen") => codegen(),
        Some("bench") => bench::run(args.get(1..).unwrap_or_default()),
        Some("image") => container::image(args.get(1..).unwrap_or_default()),
        Some("e2e") if args.get(1).is_some_and(|a| a == "--cluster") => cluster_e2e::run(),
        Some("e2e") => container::e2e(),
        Some("fuzz") => fuzz::run(args.get(1..).unwrap_or_default()),
        _ => {
            eprintln!(
                "usage: cargo xtask <test [nextest args]|ci|codegen|bench [flags]|image [--cluster]|e2e [--cluster]|fuzz [--secs N] [TARGET...]>"
            );
            bail!("unknown or missing task")
        }
    }
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

pub(crate) fn have(command: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {command} >/dev/null 2>&1"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

/// Installs missing Debian packages with apt-get (through sudo when not root).
pub(crate) fn ensure_packages(packages: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(_, probe)| {
            // A path is a file the package installs, a line with spaces a shell command that
            // succeeds once it is installed; anything else is a command it provides.
            if probe.starts_with('/') {
                !Path::new(probe).exists()
            } else if probe.contains(' ') {
                !Command::new("sh")
                    .arg("-c")
                    .arg(format!("{probe} >/dev/null 2>&1"))
                    .status()
                    .is_ok_and(|s| s.success())
            } else {
                !have(probe)
            }
        })
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing missing packages: {}", missing.join(" "));
    let prefix: Vec<&str> = if is_root() {
        vec![]
    } else if have("sudo") {
        vec!["sudo"]
    } else {
        bail!(
            "the tests need {} (apt-get install -y {}); run as root or install them first",
            missing.join(", "),
            missing.join(" ")
        );
    };
    let apt = |args: &[&str]| {
        let mut all: Vec<&str> = prefix.clone();
        all.push("apt-get");
        all.extend_from_slice(args);
        let mut cmd = Command::new(all.first().copied().unwrap_or("apt-get"));
        cmd.args(all.get(1..).unwrap_or_default())
            .env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut cmd)
    };
    apt(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-qq", "--no-install-recommends"];
    install.extend(missing.iter().copied());
    apt(&install)
}

fn test(extra: &[String]) -> Result<()> {
    ensure_packages(TEST_PACKAGES)?;
    let nextest = Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if nextest {
        let profile = if std::env::var_os("CI").is_some() {
            "ci"
        } else {
            "default"
        };
        run(Command::new("cargo")
            .args(["nextest", "run", "--workspace", "--profile", profile])
            .args(extra))
    } else {
        eprintln!("xtask: cargo-nextest not found, using cargo test");
        run(Command::new("cargo")
            .args(["test", "--workspace"])
            .args(extra))
    }
}

/// Seconds each fuzz target runs in `cargo xtask ci`.
const FUZZ_SMOKE_SECS: u64 = 12;

fn ci() -> Result<()> {
    run(Command::new("cargo").args(["fmt", "--all", "--", "--check"]))?;
    run(Command::new("cargo").args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    test(&[])?;
    // A smoke run of every fuzz target from its checked-in corpus (a crash fails CI).
    fuzz::run(&["--secs".into(), FUZZ_SMOKE_SECS.to_string()])?;
    // The container appliance, where a Docker Engine is present (says so loudly when not),
    // alone and as a cluster of three on PostgreSQL.
    container::e2e()?;
    cluster_e2e::run()
}

fn codegen() -> Result<()> {
    let out = Command::new("cargo")
        .args([
            "run",
            "--quiet",
            "--package",
            "rampart",
            "--",
            "config-reference",
        ])
        .output()
        .context("cannot run rampart config-reference")?;
    if !out.status.success() {
        bail!(
            "rampart config-reference failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let table = String::from_utf8(out.stdout)?;
    let path = Path::new("docs/CONFIG.md");
    let doc = std::fs::read_to_string(path).unwrap_or_default();
    let (begin, end) = ("<!-- BEGIN GENERATED -->\n", "<!-- END GENERATED -->");
    let (Some(b), Some(e)) = (doc.find(begin), doc.find(end)) else {
        bail!("docs/CONFIG.md lacks the generated-section markers");
    };
    let updated = format!(
        "{}{begin}{table}{}",
        doc.get(..b).unwrap_or_default(),
        doc.get(e..).unwrap_or_default()
    );
    std::fs::write(path, updated)?;
    eprintln!("xtask: docs/CONFIG.md updated");
    Ok(())
}
