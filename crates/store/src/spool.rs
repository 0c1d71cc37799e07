//! The spool: bodies of large messages as files beside the database, in `rampart.spool/`
//! (`rampart.spool/000123/1234567.eml`, one directory per 10,000 MIDs).
//!
//! Why: the group-commit writer is one thread, and a body stored in SQLite is copied into the
//! WAL and, at the checkpoint, again into the database, all on that thread: at 100 KiB that was
//! most of its time, and every session waited for it (issue 18). A body in a file is written
//! and synced by its own session, in parallel with the others, and once.
//!
//! The invariant, as for bodies in the database: a `250` means durable. A session writes its
//! file, syncs it and its directory, and only then hands the row (with `body_file = 1`) to the
//! writer, whose commit is what the `250` waits for. So a committed row always has its file; a
//! file without a row is an orphan — its commit failed (the session removes it) or the process
//! died in between (the sweep at the next start removes it). Retention removes a file before the
//! row stops referring to it, so a crash in between only leaves the work to be done again.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Mid, Store, StoreError};

/// Bodies of at least this many bytes go to the spool. Smaller ones stay in the database,
/// where a group commit carries many of them for one sync: a file costs a create, a sync of the
/// file and of its directory whatever its size. Measured (30 s runs with journaling, 20
/// sessions): every body in a file gave 1,671 msg/s at 4 KiB against 2,303 with this threshold;
/// at 100 KiB the spool took 867 msg/s to 1,143 and p99 from 42 to 22 ms.
pub(crate) const IN_FILE_FROM: usize = 32 * 1024;

/// MIDs per spool directory.
const PER_DIR: u64 = 10_000;

/// Where the bodies of one database live.
#[derive(Debug, Clone)]
pub(crate) struct Spool {
    root: PathBuf,
}

impl Spool {
    /// The spool of the database at `db`: `rampart.db` → `rampart.spool/` beside it.
    pub(crate) fn beside(db: &Path) -> Spool {
        Spool {
            root: db.with_extension("spool"),
        }
    }

    fn dir_of(&self, mid: Mid) -> PathBuf {
        self.root.join(format!("{:06}", mid.0 / PER_DIR))
    }

    pub(crate) fn path(&self, mid: Mid) -> PathBuf {
        self.dir_of(mid).join(format!("{}.eml", mid.0))
    }

    /// Where `mid`'s body goes. Paths are made here, on the caller's thread, and the blocking
    /// work allocates nothing of its own: memory allocated on the blocking pool's threads stayed
    /// with their idle allocator heaps (measured: +40 MB resident at 100 KiB).
    pub(crate) fn file(&self, mid: Mid) -> SpoolFile {
        SpoolFile {
            mid,
            dir: self.dir_of(mid),
            path: self.path(mid),
        }
    }

    /// Writes `body` as `file` and makes it durable: the file's data and its directory entry
    /// are on disk when this returns (blocking).
    pub(crate) fn write(&self, file: &SpoolFile, body: &[u8]) -> std::io::Result<()> {
        let create = || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&file.path)
        };
        let mut out = match create() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.make_dir(&file.dir)?;
                create()?
            }
            other => other?,
        };
        let finished = out
            .write_all(body)
            .and_then(|()| out.sync_data())
            .and_then(|()| sync_dir(&file.dir));
        if finished.is_err() {
            // Ours and unfinished (a full disk, say): nothing will refer to it.
            let _ = std::fs::remove_file(&file.path);
        }
        finished
    }

    /// Creates the directory of a new block of MIDs (and the spool itself the first time),
    /// each made durable in its parent.
    fn make_dir(&self, dir: &Path) -> std::io::Result<()> {
        if create_dir(&self.root)? {
            let parent = match self.root.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            sync_dir(parent)?;
        }
        if create_dir(dir)? {
            sync_dir(&self.root)?;
        }
        Ok(())
    }

    /// Reads `file` into `body`, which the caller allocated with the size its row gives
    /// (blocking). A file of another size is an error: the body would not be the one accepted.
    pub(crate) fn read(file: &SpoolFile, mut body: Vec<u8>) -> std::io::Result<Vec<u8>> {
        let mut f = std::fs::File::open(&file.path)?;
        let want = body.capacity();
        std::io::Read::read_to_end(&mut f, &mut body)?;
        if body.len() != want {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} holds {} bytes, the message has {want}",
                    file.path.display(),
                    body.len()
                ),
            ));
        }
        Ok(body)
    }

    /// Removes `files`; a missing one is not an error (removed before a crash). Directories
    /// left empty go too (blocking).
    pub(crate) fn remove(files: &[SpoolFile]) -> std::io::Result<()> {
        let mut last_dir: Option<&Path> = None;
        for file in files {
            match std::fs::remove_file(&file.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            if last_dir != Some(&file.dir) {
                if let Some(dir) = last_dir {
                    remove_dir_if_empty(dir);
                }
                last_dir = Some(&file.dir);
            }
        }
        if let Some(dir) = last_dir {
            remove_dir_if_empty(dir);
        }
        Ok(())
    }

    /// The MIDs of the spool's files in `from..below`, by directory (blocking).
    fn files(&self, from: Mid, below: Mid) -> std::io::Result<Vec<Vec<Mid>>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut dirs = Vec::new();
        for entry in entries {
            let entry = entry?;
            let Some(n) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if n.saturating_add(1).saturating_mul(PER_DIR) <= from.0
                || n.saturating_mul(PER_DIR) >= below.0
            {
                continue;
            }
            let mut mids = Vec::new();
            for file in std::fs::read_dir(entry.path())? {
                let name = file?.file_name();
                let Some(mid) = name
                    .to_str()
                    .and_then(|n| n.strip_suffix(".eml"))
                    .and_then(|n| n.parse::<u64>().ok())
                else {
                    continue;
                };
                if (from.0..below.0).contains(&mid) {
                    mids.push(Mid(mid));
                }
            }
            dirs.push(mids);
        }
        Ok(dirs)
    }
}

/// The paths of one message's body file.
#[derive(Debug, Clone)]
pub(crate) struct SpoolFile {
    mid: Mid,
    dir: PathBuf,
    path: PathBuf,
}

impl SpoolFile {
    pub(crate) fn mid(&self) -> Mid {
        self.mid
    }
}

/// Fails while the directory holds files, which is the normal case; a session about to write
/// into a directory removed here makes it again (`Spool::write`).
fn remove_dir_if_empty(dir: &Path) {
    let _ = std::fs::remove_dir(dir);
}

/// Creates `dir`; false when it was there already.
fn create_dir(dir: &Path) -> std::io::Result<bool> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Runs blocking spool work off the runtime's threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Spool(format!("spool task failed: {e}")))?
        .map_err(|e| StoreError::Spool(e.to_string()))
}

impl Store {
    /// The MID from which this run's messages are numbered: every MID below it was handed out by
    /// an earlier run, so a spool file below it without its row is an orphan. The appliance
    /// calls this once at start, before it accepts mail, and gives it to [`Store::sweep_spool`].
    pub async fn run_start_mid(&self) -> Result<Mid, StoreError> {
        self.next_mid().await
    }

    /// Removes the spool files whose rows were never committed (the process died between a
    /// session's file and the writer's commit), for MIDs below `below` (see
    /// [`Store::run_start_mid`]) and above the previous sweep's mark. Returns how many it
    /// removed.
    pub async fn sweep_spool(&self, below: Mid) -> Result<u64, StoreError> {
        const MARK: &str = "spool_swept_below";
        let from = Mid(self
            .meta(MARK)
            .await?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0));
        if from >= below {
            return Ok(0);
        }
        let spool = self.spool.clone();
        let dirs = blocking(move || spool.files(from, below)).await?;
        let mut removed = 0;
        for mids in dirs {
            let (Some(lo), Some(hi)) = (mids.iter().min(), mids.iter().max()) else {
                continue;
            };
            let kept: std::collections::HashSet<i64> = sqlx::query_scalar(
                "SELECT mid FROM messages WHERE mid BETWEEN ?1 AND ?2 AND body_file = 1",
            )
            .bind(lo.0 as i64)
            .bind(hi.0 as i64)
            .fetch_all(self.pool())
            .await?
            .into_iter()
            .collect();
            let orphans: Vec<Mid> = mids
                .into_iter()
                .filter(|m| !kept.contains(&(m.0 as i64)))
                .collect();
            if orphans.is_empty() {
                continue;
            }
            removed += orphans.len() as u64;
            for mid in &orphans {
                tracing::warn!(
                    mid = mid.0,
                    "spool: removing the body file of a message that was never committed (the process stopped before its 250)"
                );
            }
            let files: Vec<SpoolFile> = orphans.iter().map(|&m| self.spool.file(m)).collect();
            blocking(move || Spool::remove(&files)).await?;
        }
        self.set_meta(MARK, &below.0.to_string()).await?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NewMessage;
    use crate::tests::new_message;

    fn with_body(mid: Mid, body: Vec<u8>) -> NewMessage {
        NewMessage {
            body,
            tracking: vec![],
            ..new_message(mid, 1)
        }
    }

    /// A body of `len` bytes that differs from message to message.
    fn body(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| b'a' + ((i + seed as usize) % 26) as u8)
            .collect()
    }

    async fn column(store: &Store, mid: Mid) -> (Vec<u8>, i64, i64) {
        sqlx::query_as("SELECT body, body_file, size FROM messages WHERE mid = ?1")
            .bind(mid.0 as i64)
            .fetch_one(store.pool())
            .await
            .unwrap()
    }

    /// A large body is a synced file beside the database and not in it; a small one stays in
    /// the database; both read back the same after a restart (nothing from memory).
    #[tokio::test]
    async fn large_bodies_live_in_the_spool_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rampart.db");
        let store = Store::open(&path).await.unwrap();
        let big = store.next_mid().await.unwrap();
        let small = store.next_mid().await.unwrap();
        let big_body = body(IN_FILE_FROM, 1);
        let small_body = body(IN_FILE_FROM - 1, 2);
        store
            .accept_all(vec![
                with_body(big, big_body.clone()),
                with_body(small, small_body.clone()),
            ])
            .await
            .unwrap();
        let file = dir
            .path()
            .join("rampart.spool")
            .join(format!("{:06}", big.0 / PER_DIR))
            .join(format!("{}.eml", big.0));
        assert_eq!(std::fs::read(&file).unwrap(), big_body);
        assert_eq!(
            column(&store, big).await,
            (vec![], 1, IN_FILE_FROM as i64),
            "the row says where the body is, and its size"
        );
        assert_eq!(
            column(&store, small).await,
            (small_body.clone(), 0, (IN_FILE_FROM - 1) as i64)
        );
        assert!(!store.spool.path(small).exists());

        drop(store);
        let again = Store::open(&path).await.unwrap();
        assert_eq!(again.message(big).await.unwrap().unwrap().body, big_body);
        assert_eq!(
            again.message(small).await.unwrap().unwrap().body,
            small_body
        );
    }

    /// A body whose row was not committed leaves no file behind.
    #[tokio::test]
    async fn a_refused_commit_leaves_no_file() {
        let (_dir, store) = crate::tests::temp_store().await;
        let mid = store.next_mid().await.unwrap();
        store
            .accept(with_body(mid, b"x\r\n".to_vec()))
            .await
            .unwrap();
        // The same MID again: its file is written, then the commit fails on the primary key.
        let err = store
            .accept(with_body(mid, body(IN_FILE_FROM * 2, 3)))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Db(_)), "{err}");
        assert!(!store.spool.path(mid).exists());
        assert_eq!(
            store.message(mid).await.unwrap().unwrap().body,
            &b"x\r\n"[..]
        );
    }

    /// A body that cannot be written is refused before anything is committed (the session
    /// answers 451), and the message is not there.
    #[tokio::test]
    async fn a_body_that_cannot_be_written_is_refused() {
        let (dir, store) = crate::tests::temp_store().await;
        // The spool's place is taken by a file: no directory can be made in it.
        std::fs::write(dir.path().join("rampart.spool"), "in the way").unwrap();
        let mid = store.next_mid().await.unwrap();
        let err = store
            .accept(with_body(mid, body(IN_FILE_FROM, 7)))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Spool(_)), "{err}");
        assert!(store.message(mid).await.unwrap().is_none());
        // Small bodies do not need the spool.
        let small = store.next_mid().await.unwrap();
        store
            .accept(with_body(small, b"x\r\n".to_vec()))
            .await
            .unwrap();
    }

    /// Files of messages an earlier run wrote but never committed go at the next start, once;
    /// committed ones and this run's stay.
    #[tokio::test]
    async fn the_sweep_removes_files_never_committed() {
        let (_dir, store) = crate::tests::temp_store().await;
        let kept = store.next_mid().await.unwrap();
        store
            .accept(with_body(kept, body(IN_FILE_FROM, 4)))
            .await
            .unwrap();
        let orphan = store.next_mid().await.unwrap();
        store
            .spool
            .write(&store.spool.file(orphan), &body(IN_FILE_FROM, 5))
            .unwrap();
        // As the appliance does at start, before accepting mail.
        let run_start = store.run_start_mid().await.unwrap();
        let current = store.next_mid().await.unwrap();
        store
            .spool
            .write(&store.spool.file(current), &body(IN_FILE_FROM, 6))
            .unwrap();

        assert_eq!(store.sweep_spool(run_start).await.unwrap(), 1);
        assert!(store.spool.path(kept).exists());
        assert!(!store.spool.path(orphan).exists());
        assert!(
            store.spool.path(current).exists(),
            "a file of this run is not judged"
        );
        // The next start looks only at what came since.
        let stray = Mid(orphan.0);
        store
            .spool
            .write(&store.spool.file(stray), b"again")
            .unwrap();
        assert_eq!(store.sweep_spool(run_start).await.unwrap(), 0);
        assert!(store.spool.path(stray).exists());
    }

    /// Retention removes the file with the body, and with the record; a file a crash left
    /// behind after the body was marked pruned goes at the next pass.
    #[tokio::test]
    async fn retention_removes_spooled_bodies() {
        let (_dir, store) = crate::tests::temp_store().await;
        let mut mids = Vec::new();
        for seed in 0..3 {
            let mid = store.next_mid().await.unwrap();
            store
                .accept(with_body(mid, body(IN_FILE_FROM, seed)))
                .await
                .unwrap();
            mids.push(mid);
        }
        sqlx::query("UPDATE queue SET state = 'delivered', done_at = 1")
            .execute(store.pool())
            .await
            .unwrap();
        // A crash after the mark and before the file went.
        sqlx::query("UPDATE messages SET body_pruned = 1 WHERE mid = ?1")
            .bind(mids[2].0 as i64)
            .execute(store.pool())
            .await
            .unwrap();
        assert!(
            !store
                .message(mids[2])
                .await
                .unwrap()
                .unwrap()
                .body
                .is_empty(),
            "from memory"
        );

        let now = crate::unix_now();
        let p = store.prune(now + 1, now - 86_400).await.unwrap();
        assert_eq!(p.bodies, 2);
        for &mid in &mids {
            assert!(!store.spool.path(mid).exists(), "{mid}");
            assert_eq!(column(&store, mid).await.1, 0);
        }
        let other = Store::open(&store.spool.root.with_extension("db"))
            .await
            .unwrap();
        assert!(
            other
                .message(mids[0])
                .await
                .unwrap()
                .unwrap()
                .body
                .is_empty()
        );

        // A record deleted with its body still spooled.
        let last = store.next_mid().await.unwrap();
        store
            .accept(with_body(last, body(IN_FILE_FROM, 9)))
            .await
            .unwrap();
        sqlx::query("UPDATE queue SET state = 'delivered', done_at = 1 WHERE mid = ?1")
            .bind(last.0 as i64)
            .execute(store.pool())
            .await
            .unwrap();
        let p = store.prune(now - 86_400, now + 1).await.unwrap();
        assert_eq!(p.records, 4);
        assert!(!store.spool.path(last).exists());
        assert!(
            std::fs::read_dir(&store.spool.root)
                .unwrap()
                .next()
                .is_none(),
            "empty directories go too"
        );
    }
}
