//! The data directory as the running appliance holds it: one process at a time (a lock file),
//! readable by the appliance's user only, and enough file descriptors for every listener.

use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result, bail};
use rampart_config::Config;

/// Takes the exclusive lock on `<data_dir>/rampart.lock` for as long as the returned file lives.
/// A second `serve` on the same data dir would release the first one's delivery leases at start
/// and deliver the same messages twice; it is refused instead.
pub(crate) fn lock(dir: &Path) -> Result<File> {
    let path = dir.join("rampart.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another rampart is already serving the data dir {} (it holds {}); stop it first",
            dir.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Makes the data dir and what is already in it private to the appliance's user (0700 / 0600):
/// files created by older versions, or before the umask was set, were world-readable.
pub(crate) fn protect(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let set = |path: &Path, mode: u32| {
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
            tracing::warn!(path = %path.display(), error = %e, "cannot restrict permissions");
        }
    };
    set(dir, 0o700);
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => {
                    set(&path, 0o700);
                    // The spool can hold a million files, each made under the umask (0077)
                    // since it exists: walking it would only slow every start down.
                    if entry.file_name() != "rampart.spool" {
                        dirs.push(path);
                    }
                }
                Ok(t) if t.is_file() => set(&path, 0o600),
                _ => {}
            }
        }
    }
}

/// Descriptors kept for everything but the listeners' connections: the database and its WAL,
/// the mail log, DNS, delivery and journal connections.
const RESERVED_FDS: u64 = 512;

/// Raises the soft limit on open files to the hard limit, and warns when the listeners' caps
/// could still use up every descriptor (then the web side could starve SMTP, or both SQLite).
pub(crate) fn raise_fd_limit(config: &Config) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let limit = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        hard
    } else {
        soft
    };
    let needed = u64::from(config.smtp.max_connections)
        .saturating_add(u64::from(config.web.max_connections))
        .saturating_add(RESERVED_FDS);
    if needed > limit {
        tracing::warn!(
            limit,
            needed,
            "the open-file limit is below smtp.max_connections + web.max_connections + {RESERVED_FDS}: \
             lower those or raise the limit (ulimit -n)"
        );
    }
}
