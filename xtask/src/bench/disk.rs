//! The `disk` run: how many messages a second the disk can make durable. Every message Rampart
//! answers `250` for is on disk with fsync first; the writer commits what all sessions have
//! ready in one transaction, so at best one sync covers one message per session. This run writes
//! message-sized blocks sequentially into a file in the directory the appliance's data goes to,
//! with `fdatasync` after every `sessions` blocks, reusing the file past 256 MB as a write-ahead
//! log is reused after a checkpoint. The honest limit of a run is the lower of this and one SMTP
//! hop.

use std::io::{Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::{Length, RunResult, TempDir};

const REUSE_AT: u64 = 256 << 20;

pub fn run(size: usize, sessions: usize, length: Length) -> Result<RunResult> {
    let dir = TempDir::new()?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(dir.0.join("disk-limit"))?;
    let block = vec![0x5a_u8; size.max(1)];
    let batch = sessions.max(1);
    // The disk's figure settles in seconds; a sustained run measures 10 s of it after 2 s.
    let (warmup, until) = match length {
        Length::Messages(n) => (None, Stop::Messages(n)),
        Length::Secs { secs, .. } => (
            Some(Duration::from_secs(2)),
            Stop::After(Duration::from_secs(secs.min(12))),
        ),
    };
    let start = Instant::now();
    let mut counted_from = start;
    let mut written: usize = 0;
    let mut counted: usize = 0;
    let mut warm = warmup.is_none();
    loop {
        for _ in 0..batch {
            file.write_all(&block)?;
        }
        file.sync_data()?;
        written += batch;
        counted += batch;
        if file.stream_position()? >= REUSE_AT {
            file.seek(SeekFrom::Start(0))?;
        }
        if !warm && warmup.is_some_and(|w| start.elapsed() >= w) {
            warm = true;
            counted = 0;
            counted_from = Instant::now();
        }
        let done = match until {
            Stop::Messages(n) => written >= n,
            Stop::After(d) => start.elapsed() >= d,
        };
        if done {
            break;
        }
    }
    let rate = counted as f64 / counted_from.elapsed().as_secs_f64();
    Ok(RunResult {
        note: format!("fdatasync every {batch} writes of {size} bytes"),
        ..RunResult::rate_only("disk", size, sessions, written, rate)
    })
}

enum Stop {
    Messages(usize),
    After(Duration),
}
