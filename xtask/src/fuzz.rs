//! `cargo xtask fuzz [--secs N] [TARGET...]`: builds the fuzz targets of `fuzz/` with libFuzzer's
//! coverage instrumentation (the flags cargo-fuzz uses, all stable; no sanitizer, as none of our
//! crates has `unsafe` code) and runs each for N seconds, starting from its checked-in corpus
//! in `fuzz/corpus/<target>`. New inputs are written to `target/fuzz/corpus/<target>`, crashes
//! to `target/fuzz/artifacts/<target>/`; a crash fails the task with the command that
//! reproduces it.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Every target, in `fuzz/Cargo.toml` order.
pub(crate) const TARGETS: &[&str] = &[
    "smtp_command",
    "smtp_reply",
    "data_framing",
    "address",
    "mime_facts",
    "header_fields",
    "journal",
    "config_file",
    "settings_file",
    "engine_answers",
];

const RUSTFLAGS: &str = "-Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    --cfg fuzzing";

pub(crate) fn run(args: &[String]) -> Result<()> {
    let mut secs: u64 = 60;
    let mut targets: Vec<&str> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--secs" => {
                secs = it
                    .next()
                    .context("--secs needs a number")?
                    .parse()
                    .context("--secs needs a number of seconds")?;
            }
            t if TARGETS.contains(&t) => targets.push(t),
            other => bail!(
                "unknown fuzz argument {other:?}; targets are {}",
                TARGETS.join(", ")
            ),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.to_vec();
    }
    let host = host()?;
    build(&host)?;
    let mut summary = Vec::new();
    for target in &targets {
        let (runs, corpus) = fuzz_one(&host, target, secs)?;
        summary.push(format!(
            "{target:<14} {secs:>5} s  {runs:>10} runs  corpus {corpus}"
        ));
    }
    eprintln!("xtask: fuzzing finished, no crash:");
    for line in summary {
        eprintln!("  {line}");
    }
    Ok(())
}

/// The host's target triple: naming it keeps RUSTFLAGS (the instrumentation) off build
/// scripts and proc-macros, which cannot link against libFuzzer.
fn host() -> Result<String> {
    let out = Command::new("rustc").arg("-vV").output()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .context("rustc -vV names no host")
}

fn build(host: &str) -> Result<()> {
    crate::run(
        Command::new("cargo")
            .args([
                "build",
                "--release",
                "--locked",
                "--manifest-path",
                "fuzz/Cargo.toml",
                "--bins",
                "--target",
                host,
            ])
            .env("RUSTFLAGS", RUSTFLAGS)
            .env("CARGO_TARGET_DIR", "target/fuzz"),
    )
}

/// Runs one target; returns the number of executions and the corpus size it ended with.
fn fuzz_one(host: &str, target: &str, secs: u64) -> Result<(u64, usize)> {
    let seeds = Path::new("fuzz/corpus").join(target);
    let work = Path::new("target/fuzz/corpus").join(target);
    let artifacts = Path::new("target/fuzz/artifacts").join(target);
    std::fs::create_dir_all(&seeds)?;
    std::fs::create_dir_all(&work)?;
    std::fs::create_dir_all(&artifacts)?;
    let binary = Path::new("target/fuzz")
        .join(host)
        .join("release")
        .join(target);
    let started = Instant::now();
    let out = Command::new(&binary)
        .arg(format!("-max_total_time={secs}"))
        .arg("-max_len=65536")
        .arg("-rss_limit_mb=2048")
        .arg("-timeout=10")
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(&work)
        .arg(&seeds)
        .output()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    let log = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "fuzz target {target} failed after {:.0} s:\n{}\nreproduce with: {} {}/<crash file>",
            started.elapsed().as_secs_f64(),
            tail.join("\n"),
            binary.display(),
            artifacts.display()
        );
    }
    let runs = log
        .lines()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let corpus = std::fs::read_dir(&work).map(|d| d.count()).unwrap_or(0);
    Ok((runs, corpus))
}
