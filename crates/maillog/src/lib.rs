//! The AsyncOS-format mail log (`<data_dir>/logs/mail_logs`, SPEC §5).
//!
//! One event per line, `Fri Feb 16 21:19:22 2024 Info: <text>`, in the local time of the
//! appliance, so that SIEM parsers written for ESA mail logs read it unchanged. Lines go into a
//! queue that one writer thread takes whole, writes and flushes, then lets fill again for
//! [`LINGER`]: a mail session never waits for the disk because of logging, a line is on disk
//! moments after its event, and logging costs no thread wake-up per line (waking the writer for
//! every line was 6% of the appliance's CPU under load). Files roll over by size to
//! `mail_logs.@<timestamp>.s`, as AsyncOS names rolled logs.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

pub mod line;
mod syslog;

pub use syslog::{Framing, Syslog, SyslogConfig, SyslogStatus, Transport};

/// How long the writer lets lines gather after writing a batch.
const LINGER: Duration = Duration::from_millis(10);

/// A cheap, cloneable handle to the mail log.
#[derive(Debug, Clone)]
pub struct MailLog {
    sink: Sink,
}

#[derive(Debug, Clone)]
enum Sink {
    Thread(Arc<Sender>),
    /// Lines kept in memory, for unit tests of code that logs.
    Memory(Arc<Mutex<Vec<String>>>),
}

/// Lines on their way to the writer thread.
#[derive(Debug, Default)]
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

#[derive(Debug, Default)]
struct QueueState {
    lines: Vec<String>,
    /// The writer sleeps until a line arrives; only then does a sender wake it.
    waiting: bool,
    /// Every handle is gone: write what is left and stop.
    closed: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, line: String) {
        let mut state = self.lock();
        state.lines.push(line);
        if std::mem::take(&mut state.waiting) {
            drop(state);
            self.ready.notify_one();
        }
    }

    /// Waits for lines; returns them with whether the log was closed.
    fn take(&self) -> (Vec<String>, bool) {
        let mut state = self.lock();
        while state.lines.is_empty() && !state.closed {
            state.waiting = true;
            state = self.ready.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        state.waiting = false;
        (std::mem::take(&mut state.lines), state.closed)
    }
}

/// Shared by every clone of a [`MailLog`]; closes the queues when the last one is dropped.
#[derive(Debug)]
struct Sender(Arc<Queue>, Option<Arc<Syslog>>);

impl Drop for Sender {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.ready.notify_one();
        if let Some(s) = &self.1 {
            s.close();
        }
    }
}

impl MailLog {
    /// Opens (appending) `<dir>/mail_logs` and starts the writer thread. The thread ends when the
    /// last handle is dropped, after writing everything sent. The file rolls over at
    /// `roll_bytes`; at most `retain_files` rolled files are kept, the oldest are deleted. With
    /// `syslog`, every event is also pushed to a syslog server (SPEC §5); the [`Syslog`] handle
    /// tells how that goes.
    pub fn open(
        dir: &Path,
        roll_bytes: u64,
        retain_files: usize,
        syslog: Option<SyslogConfig>,
    ) -> io::Result<(MailLog, std::thread::JoinHandle<()>, Option<Arc<Syslog>>)> {
        fs::create_dir_all(dir)?;
        let syslog = syslog.map(Syslog::start).transpose()?;
        let path = dir.join("mail_logs");
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        let queue = Arc::new(Queue::default());
        let rx = queue.clone();
        let mut writer = Writer {
            path,
            out: BufWriter::with_capacity(64 * 1024, file),
            size,
            roll_bytes,
            retain_files,
        };
        let handle = std::thread::Builder::new()
            .name("mail_logs".into())
            .spawn(move || {
                loop {
                    let (lines, closed) = rx.take();
                    for line in &lines {
                        writer.write(line);
                    }
                    writer.flush();
                    if closed {
                        if lines.is_empty() {
                            break;
                        }
                    } else {
                        std::thread::sleep(LINGER);
                    }
                }
            })?;
        Ok((
            MailLog {
                sink: Sink::Thread(Arc::new(Sender(queue, syslog.clone()))),
            },
            handle,
            syslog,
        ))
    }

    /// A log that keeps its lines in memory (without timestamps), for tests.
    pub fn memory() -> (MailLog, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        (
            MailLog {
                sink: Sink::Memory(lines.clone()),
            },
            lines,
        )
    }

    /// Logs one `Info:` event.
    pub fn info(&self, text: impl AsRef<str>) {
        self.event("Info", text.as_ref());
    }

    /// Logs one `Warning:` event.
    pub fn warning(&self, text: impl AsRef<str>) {
        self.event("Warning", text.as_ref());
    }

    fn event(&self, level: &'static str, text: &str) {
        let text = neutralise(text);
        match &self.sink {
            Sink::Thread(tx) => {
                if let Some(syslog) = &tx.1 {
                    syslog.push(level, &text);
                }
                tx.0.push(format!("{} {level}: {text}\n", timestamp()));
            }
            Sink::Memory(lines) => {
                if let Ok(mut l) = lines.lock() {
                    l.push(text.into_owned());
                }
            }
        }
    }
}

/// A line break inside an event would forge a second event for log parsers, and terminal
/// control sequences (ESC, from a remote server's reply) would act on an administrator's
/// terminal: every control character, and the Unicode line and paragraph separators, become a
/// space.
fn neutralise(text: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}';
    if text.contains(bad) {
        std::borrow::Cow::Owned(text.replace(bad, " "))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// The AsyncOS timestamp, `Fri Feb 16 21:19:22 2024` (ctime layout, local time). Formatted
/// once per second and thread: many lines share a second.
pub fn timestamp() -> String {
    thread_local! {
        static LAST: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let now = std::time::SystemTime::now();
    let this_second = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    LAST.with_borrow_mut(|(second, text)| {
        if *second != this_second {
            *text = chrono::DateTime::<chrono::Local>::from(now)
                .format("%a %b %e %H:%M:%S %Y")
                .to_string();
            *second = this_second;
        }
        text.clone()
    })
}

/// Quotes a Message-ID or subject the way AsyncOS does: `'…'`, or `"…"` when it contains `'`.
pub fn quote(s: &str) -> String {
    if s.contains('\'') {
        format!("\"{s}\"")
    } else {
        format!("'{s}'")
    }
}

struct Writer {
    path: PathBuf,
    out: BufWriter<File>,
    size: u64,
    roll_bytes: u64,
    retain_files: usize,
}

impl Writer {
    fn write(&mut self, line: &str) {
        if self.size + line.len() as u64 > self.roll_bytes && self.size > 0 {
            self.roll();
        }
        match self.out.write_all(line.as_bytes()) {
            Ok(()) => self.size += line.len() as u64,
            Err(e) => tracing::error!(error = %e, "cannot write mail_logs"),
        }
    }

    fn flush(&mut self) {
        if let Err(e) = self.out.flush() {
            tracing::error!(error = %e, "cannot flush mail_logs");
        }
    }

    /// Renames the current file to `mail_logs.@<timestamp>.s`, starts a new one and deletes the
    /// oldest rolled files beyond `retain_files`.
    fn roll(&mut self) {
        self.flush();
        let stamp = chrono::Local::now().format("%Y%m%dT%H%M%S").to_string();
        // Two rolls within one second must not overwrite each other.
        let mut rolled = self.path.with_file_name(format!("mail_logs.@{stamp}.s"));
        let mut n = 1;
        while rolled.exists() {
            rolled = self
                .path
                .with_file_name(format!("mail_logs.@{stamp}-{n}.s"));
            n += 1;
        }
        let reopened = fs::rename(&self.path, &rolled).and_then(|()| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
        });
        match reopened {
            Ok(file) => {
                self.out = BufWriter::with_capacity(64 * 1024, file);
                self.size = 0;
            }
            Err(e) => tracing::error!(error = %e, "cannot roll mail_logs"),
        }
        self.prune();
    }

    fn prune(&self) {
        let Some(dir) = self.path.parent() else {
            return;
        };
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        let mut rolled: Vec<(std::time::SystemTime, PathBuf)> = entries
            .flatten()
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with("mail_logs.@") && name.ends_with(".s")
            })
            .map(|e| {
                let modified = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                (modified, e.path())
            })
            .collect();
        // Oldest first: by modification time, then by name (the timestamp in it).
        rolled.sort();
        let excess = rolled.len().saturating_sub(self.retain_files);
        for (_, path) in rolled.into_iter().take(excess) {
            if let Err(e) = fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot delete an old mail_logs file");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("<a@b>"), "'<a@b>'");
        assert_eq!(quote("it's"), "\"it's\"");
    }

    /// Lines from several threads and clones all reach the file, each thread's in order, and
    /// the writer stops once the last clone is gone.
    #[test]
    fn every_line_of_every_clone_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let (log, handle, _) = MailLog::open(dir.path(), 100 << 20, 10, None).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        log.info(format!("thread {t} line {i}"));
                    }
                })
            })
            .collect();
        drop(log);
        for t in threads {
            t.join().unwrap();
        }
        handle.join().unwrap();
        let text = fs::read_to_string(dir.path().join("mail_logs")).unwrap();
        assert_eq!(text.lines().count(), 4000);
        for t in 0..4 {
            let own: Vec<&str> = text
                .lines()
                .filter_map(|l| l.split_once(&format!("Info: thread {t} line ")))
                .map(|(_, i)| i)
                .collect();
            let expected: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
            assert_eq!(own, expected);
        }
    }

    #[test]
    fn lines_have_the_asyncos_layout_and_roll() {
        let dir = tempfile::tempdir().unwrap();
        let (log, handle, _) = MailLog::open(dir.path(), 200, 3, None).unwrap();
        for i in 0..30 {
            log.info(format!(
                "New SMTP ICID {i} interface Management (127.0.0.1) address 127.0.0.1"
            ));
        }
        log.info("evil\nFri Feb 16 21:19:22 2024 Info: forged");
        log.info("vt\u{b}ff\u{c}esc\u{1b}[2Jnel\u{85}ls\u{2028}ps\u{2029}end");
        drop(log);
        handle.join().unwrap();
        let text = fs::read_to_string(dir.path().join("mail_logs")).unwrap();
        let last = text.lines().last().unwrap();
        // "Fri Feb 16 21:19:22 2024 Info: ..." — weekday, month, day, time, year.
        let parts: Vec<&str> = last.split_whitespace().collect();
        assert_eq!(parts[0].len(), 3);
        assert_eq!(parts[3].len(), 8);
        assert_eq!(parts[4].len(), 4);
        assert_eq!(parts[5], "Info:");
        assert!(text.contains("evil Fri Feb 16 21:19:22 2024 Info: forged\n"));
        assert!(last.ends_with("vt ff esc [2Jnel ls ps end"), "{last:?}");
        let rolled = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                let n = e.as_ref().unwrap().file_name().into_string().unwrap();
                n.starts_with("mail_logs.@") && n.ends_with(".s")
            })
            .count();
        assert_eq!(rolled, 3, "rolled files exist, no more than retained");
    }
}
