//! The harness shared by the end-to-end tests (`tests/`) and the bench (`xtask`): the engines and
//! the database they start from Debian's packages, each on a free loopback port with a
//! configuration of its own, each stopped when its guard is dropped. Not part of the appliance.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

/// A loopback port nobody listens on now.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A daemon's process, the leader of a process group of its own: dropping it kills the group.
/// Killing only rspamd's main process (what `kill_on_drop` does) left its workers running,
/// six processes per test or bench run, holding memory and ports. (A test killed by nextest's
/// timeout does not drop it; its daemons then outlive it.)
#[derive(Debug)]
pub struct Group(Child);

impl Group {
    /// Starts `command` as the leader of a new process group, output discarded.
    pub fn spawn(command: &mut Command) -> std::io::Result<Group> {
        command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map(Group)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pid) = self.0.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// An rspamd configuration in a directory of the caller's: Debian's `/etc/rspamd` with a
/// `local.d` of our own, and its databases, run and log files beside it.
#[derive(Debug)]
pub struct RspamdConf {
    dir: PathBuf,
}

impl RspamdConf {
    /// Lays out `dir` and writes what every caller wants: action thresholds high enough that
    /// messages collecting points for failed DNS lookups (this machine has no DNS) stay clean
    /// (GTUBE still rejects), and DNS at `nameserver` with a short timeout and no retries, so
    /// a scan never waits long on a lookup.
    pub fn new(dir: &Path, nameserver: SocketAddr, dns_timeout: &str) -> Result<RspamdConf> {
        for sub in ["local.d", "db", "run", "log"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let conf = RspamdConf { dir: dir.into() };
        conf.local(
            "actions.conf",
            "reject = 100;\nadd_header = 50;\ngreylist = 49;\n",
        )?;
        conf.local(
            "options.inc",
            &format!(
                "dns {{ nameserver = [\"{nameserver}\"]; timeout = {dns_timeout}; retransmits = 0; }}\n"
            ),
        )?;
        Ok(conf)
    }

    /// Writes (or replaces) `local.d/<name>`.
    pub fn local(&self, name: &str, text: &str) -> Result<()> {
        std::fs::write(self.dir.join("local.d").join(name), text)
            .with_context(|| format!("writing rspamd's local.d/{name}"))
    }

    /// Appends to `local.d/<name>`.
    pub fn append(&self, name: &str, text: &str) -> Result<()> {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.dir.join("local.d").join(name))
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .with_context(|| format!("writing rspamd's local.d/{name}"))
    }

    /// Starts rspamd in the foreground on this configuration (as root when run as root: the
    /// tests and the bench run as whoever runs them).
    pub fn spawn(&self) -> Result<Group> {
        let var = |name: &str, sub: &str| format!("{name}={}", self.dir.join(sub).display());
        Group::spawn(
            Command::new("rspamd")
                .args(["-f", "-u", "root", "-g", "root"])
                .args(["-c", "/etc/rspamd/rspamd.conf"])
                .args(["--var", &var("LOCAL_CONFDIR", "")])
                .args(["--var", &var("DBDIR", "db")])
                .args(["--var", &var("RUNDIR", "run")])
                .args(["--var", &var("LOGDIR", "log")]),
        )
        .context("starting rspamd (apt-get install rspamd)")
    }
}

/// A signature database with one line: EICAR's MD5 and size. freshclam cannot reach the
/// internet here, and clamd refuses to start without signatures.
pub const EICAR_HDB: &str = "44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature\n";

/// Starts clamd on `port` with its configuration, log and the one-line EICAR database in `dir`,
/// `max_stream` as its stream limit and `extra` lines appended to its configuration.
pub fn spawn_clamd(dir: &Path, port: u16, max_stream: &str, extra: &str) -> Result<Group> {
    std::fs::create_dir_all(dir.join("db"))?;
    std::fs::write(dir.join("db/test.hdb"), EICAR_HDB)?;
    let conf = dir.join("clamd.conf");
    std::fs::write(
        &conf,
        format!(
            "Foreground yes\nTCPSocket {port}\nTCPAddr 127.0.0.1\nDatabaseDirectory {}\nLogFile {}\nStreamMaxLength {max_stream}\n{extra}",
            dir.join("db").display(),
            dir.join("clamd.log").display()
        ),
    )?;
    let clamd = if Path::new("/usr/sbin/clamd").exists() {
        "/usr/sbin/clamd"
    } else {
        "clamd"
    };
    Group::spawn(Command::new(clamd).arg("-c").arg(&conf))
        .context("starting clamd (apt-get install clamav-daemon)")
}

/// Debian's PostgreSQL on a free loopback port with a throwaway data dir, stopped when dropped.
/// initdb refuses to run as root: run as root, the server runs as the `postgres` user.
#[derive(Debug)]
pub struct Postgres {
    pub port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
    as_postgres: bool,
    options: String,
}

impl Postgres {
    /// Creates a cluster with the database `rampart` owned by the role `rampart` (trust
    /// authentication on loopback), and starts it. `fsync = false` suits tests, which never
    /// lose power; the bench keeps PostgreSQL's default.
    pub fn start(fsync: bool) -> Result<Postgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .context("PostgreSQL is not installed (apt-get install postgresql)")?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("pg_ctl").exists())
            .max()
            .context("no PostgreSQL under /usr/lib/postgresql")?;
        let uid = std::process::Command::new("id").arg("-u").output()?.stdout;
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let data = dir.path().join("data");
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync={}",
            data.display(),
            if fsync { "on" } else { "off" }
        );
        let pg = Postgres {
            port,
            bin,
            dir,
            as_postgres: String::from_utf8_lossy(&uid).trim() == "0",
            options,
        };
        std::fs::create_dir(&data)?;
        if pg.as_postgres {
            run(std::process::Command::new("chmod")
                .arg("755")
                .arg(pg.dir.path()))?;
            run(std::process::Command::new("chown")
                .arg("postgres:postgres")
                .arg(&data))?;
        }
        let d = data.display().to_string();
        let initdb = ["-A", "trust", "-U", "rampart", "-E", "UTF8", "--no-sync"];
        pg.pg("initdb", &[&["-D", &d][..], &initdb[..]].concat())?;
        pg.start_server()?;
        let port = pg.port.to_string();
        pg.pg(
            "createdb",
            &["-h", "127.0.0.1", "-p", &port, "-U", "rampart", "rampart"],
        )?;
        Ok(pg)
    }

    /// The URL for the appliance's `[cluster] database_url`.
    pub fn url(&self) -> String {
        format!("postgres://rampart@127.0.0.1:{}/rampart", self.port)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Starts the server on its data dir and waits until it takes connections.
    pub fn start_server(&self) -> Result<()> {
        let data = self.data();
        let log = format!("{data}/server.log");
        self.pg(
            "pg_ctl",
            &["-D", &data, "-o", &self.options, "-l", &log, "-w", "start"],
        )
    }

    /// Stops the server; its clients' connections end at once.
    pub fn stop_server(&self) -> Result<()> {
        self.pg("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"])
    }

    fn command(&self, program: &str) -> std::process::Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            std::process::Command::new(path)
        }
    }

    fn pg(&self, program: &str, args: &[&str]) -> Result<()> {
        let out = self.command(program).args(args).output()?;
        if !out.status.success() {
            bail!(
                "{program} {args:?} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn run(command: &mut std::process::Command) -> Result<()> {
    let status = command.status()?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(())
}
