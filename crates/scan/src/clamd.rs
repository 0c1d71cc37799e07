//! clamd's `INSTREAM` (clamd(8)): the message goes over the connection in chunks, each a 4-byte
//! big-endian length and that many bytes, ended by a zero length; clamd answers
//! `stream: OK`, `stream: <name> FOUND` or `<reason> ERROR`. Commands use the `z` form (NUL
//! terminated). clamd decodes MIME itself, so the whole message is sent as it was stored.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::ScanError;

const ENGINE: &str = "clamd";

/// Bytes per INSTREAM chunk.
const CHUNK: usize = 64 * 1024;

/// Longest answer read from clamd; a virus name and a status fit in far less.
const MAX_ANSWER: usize = 4096;

/// Where clamd listens: `host:port` (an IP or a name, resolved at each connection, so a
/// container name works) or a unix socket path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClamdAddress {
    Tcp(String),
    Unix(PathBuf),
}

impl ClamdAddress {
    /// `127.0.0.1:3310`, `[::1]:3310`, `clamd:3310` or a path (`/run/clamav/clamd.ctl`).
    pub fn parse(s: &str) -> Option<ClamdAddress> {
        if s.starts_with('/') {
            return Some(ClamdAddress::Unix(PathBuf::from(s)));
        }
        let (host, port) = s.rsplit_once(':')?;
        let host_ok = !host.is_empty()
            && !host.contains(|c: char| c.is_whitespace() || c == '/')
            && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']')));
        (host_ok && port.parse::<u16>().is_ok()).then(|| ClamdAddress::Tcp(s.to_owned()))
    }
}

impl std::fmt::Display for ClamdAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClamdAddress::Tcp(a) => write!(f, "{a}"),
            ClamdAddress::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

/// What clamd found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VirusVerdict {
    Clean,
    /// The signature's name, e.g. `Eicar-Test-Signature.UNOFFICIAL`.
    Infected(String),
}

/// Idle sessions kept for reuse; more concurrent scans than this open sessions of their own.
const MAX_IDLE: usize = 16;

/// A clamd to ask. Scans run in clamd sessions (`IDSESSION`): a connection serves one scan after
/// another, so a busy gateway does not open and close a connection per message. A session that
/// clamd closed while it sat idle (its `IdleTimeout`) fails on first use and the scan is retried
/// once on a new one.
#[derive(Clone)]
pub struct Clamd {
    address: ClamdAddress,
    timeout: Duration,
    idle: std::sync::Arc<std::sync::Mutex<Vec<Box<dyn Stream>>>>,
}

impl std::fmt::Debug for Clamd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clamd")
            .field("address", &self.address)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Clamd {
    pub fn new(address: ClamdAddress, timeout: Duration) -> Clamd {
        Clamd {
            address,
            timeout,
            idle: std::sync::Arc::default(),
        }
    }

    /// Scans a whole message.
    pub async fn scan(&self, message: &[u8]) -> Result<VirusVerdict, ScanError> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        if let Some(session) = pooled {
            // A failure on a reused session may only mean clamd closed it meanwhile; a slow
            // clamd is not retried (that would double the wait).
            match self.scan_in(session, message).await {
                Err(ScanError::Engine { .. } | ScanError::Protocol { .. }) => {}
                done => return done,
            }
        }
        let session = crate::within(ENGINE, self.timeout, async {
            let mut s = self.connect().await?;
            s.write_all(b"zIDSESSION\0")
                .await
                .map_err(|e| self.failed(e))?;
            Ok(s)
        })
        .await?;
        self.scan_in(session, message).await
    }

    /// One `INSTREAM` in a session; the session goes back to the pool after a clear answer.
    async fn scan_in(
        &self,
        mut s: Box<dyn Stream>,
        message: &[u8],
    ) -> Result<VirusVerdict, ScanError> {
        let work = async {
            s.write_all(b"zINSTREAM\0").await?;
            for chunk in message.chunks(CHUNK) {
                let len = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
                s.write_all(&len.to_be_bytes()).await?;
                s.write_all(chunk).await?;
            }
            s.write_all(&0u32.to_be_bytes()).await?;
            s.flush().await?;
            read_answer(&mut s).await
        };
        let answer = crate::within(ENGINE, self.timeout, async {
            work.await.map_err(|e| self.failed(e))
        })
        .await?;
        let verdict = parse_answer(&answer);
        if verdict.is_ok() {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push(s);
            }
        }
        verdict
    }

    /// The engine and signature database versions (`ClamAV 1.4.6/27424/Tue Nov 25 …`).
    pub async fn version(&self) -> Result<String, ScanError> {
        crate::within(ENGINE, self.timeout, async {
            let mut s = self.connect().await?;
            let talk = async {
                s.write_all(b"zVERSION\0").await?;
                s.flush().await?;
                read_answer(&mut s).await
            };
            talk.await.map_err(|e| self.failed(e))
        })
        .await
    }

    fn failed(&self, e: std::io::Error) -> ScanError {
        ScanError::Engine {
            engine: ENGINE,
            message: e.to_string(),
        }
    }

    /// A new connection to clamd.
    async fn connect(&self) -> Result<Box<dyn Stream>, ScanError> {
        let refused = |source| ScanError::Connect {
            engine: ENGINE,
            address: self.address.to_string(),
            source,
        };
        Ok(match &self.address {
            ClamdAddress::Tcp(a) => {
                let s = tokio::net::TcpStream::connect(a.as_str())
                    .await
                    .map_err(refused)?;
                let _ = s.set_nodelay(true);
                Box::new(s)
            }
            #[cfg(unix)]
            ClamdAddress::Unix(p) => {
                Box::new(tokio::net::UnixStream::connect(p).await.map_err(refused)?)
            }
            #[cfg(not(unix))]
            ClamdAddress::Unix(_) => {
                return Err(ScanError::Engine {
                    engine: ENGINE,
                    message: "unix sockets are not available here".into(),
                });
            }
        })
    }
}

/// A connection to clamd, TCP or unix.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Reads clamd's answer up to its NUL (or the end of the connection), bounded.
async fn read_answer<S: AsyncRead + Unpin + ?Sized>(s: &mut S) -> std::io::Result<String> {
    let mut answer = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let n = s.read(&mut buf).await?;
        let got = buf.get(..n).unwrap_or_default();
        match memchr(got) {
            Some(end) => {
                answer.extend_from_slice(got.get(..end).unwrap_or_default());
                break;
            }
            None => answer.extend_from_slice(got),
        }
        if n == 0 || answer.len() > MAX_ANSWER {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&answer).trim().to_owned())
}

fn memchr(b: &[u8]) -> Option<usize> {
    b.iter().position(|c| *c == 0)
}

/// clamd's answer to an `INSTREAM`, in a session (`1: stream: OK`) or not: the verdict, or
/// what went wrong. Public for the fuzz target; the answer comes from the network.
pub fn parse_answer(answer: &str) -> Result<VirusVerdict, ScanError> {
    // In a session clamd numbers its answers: `1: stream: OK`.
    let answer = answer
        .split_once(": ")
        .filter(|(id, _)| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
        .map_or(answer, |(_, rest)| rest);
    parse_scan(answer)
}

/// `stream: OK`, `stream: <name> FOUND`, or an error.
fn parse_scan(answer: &str) -> Result<VirusVerdict, ScanError> {
    let body = answer.strip_prefix("stream:").map(str::trim);
    match body {
        Some("OK") => Ok(VirusVerdict::Clean),
        // The name goes into a header, a log line and possibly an SMTP reply: one line only.
        Some(rest) if rest.ends_with(" FOUND") => Ok(VirusVerdict::Infected(
            rest.trim_end_matches(" FOUND")
                .trim()
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
        )),
        _ if answer.ends_with("ERROR") => Err(ScanError::Engine {
            engine: ENGINE,
            message: answer.trim_end_matches("ERROR").trim().to_owned(),
        }),
        _ => Err(ScanError::Protocol {
            engine: ENGINE,
            answer: answer.chars().take(200).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        assert_eq!(parse_scan("stream: OK").unwrap(), VirusVerdict::Clean);
        assert_eq!(
            parse_scan("stream: Eicar-Test-Signature.UNOFFICIAL FOUND").unwrap(),
            VirusVerdict::Infected("Eicar-Test-Signature.UNOFFICIAL".into())
        );
        assert!(matches!(
            parse_scan("INSTREAM size limit exceeded. ERROR"),
            Err(ScanError::Engine { message, .. }) if message == "INSTREAM size limit exceeded."
        ));
        assert!(matches!(
            parse_scan("garbage"),
            Err(ScanError::Protocol { .. })
        ));
        assert_eq!(parse_answer("12: stream: OK").unwrap(), VirusVerdict::Clean);
        assert_eq!(
            parse_answer("3: stream: X FOUND").unwrap(),
            VirusVerdict::Infected("X".into())
        );
        assert!(parse_answer("x: stream: OK").is_err());
        assert_eq!(
            parse_answer("stream: Evil\r\nBcc: x FOUND").unwrap(),
            VirusVerdict::Infected("Evil  Bcc: x".into())
        );
    }

    #[test]
    fn addresses() {
        assert_eq!(
            ClamdAddress::parse("127.0.0.1:3310"),
            Some(ClamdAddress::Tcp("127.0.0.1:3310".into()))
        );
        assert_eq!(
            ClamdAddress::parse("clamd:3310"),
            Some(ClamdAddress::Tcp("clamd:3310".into()))
        );
        assert_eq!(
            ClamdAddress::parse("[::1]:3310"),
            Some(ClamdAddress::Tcp("[::1]:3310".into()))
        );
        assert_eq!(
            ClamdAddress::parse("/run/clamav/clamd.ctl"),
            Some(ClamdAddress::Unix("/run/clamav/clamd.ctl".into()))
        );
        for bad in [
            "clamd",
            "clamd:",
            ":3310",
            "::1:3310",
            "clamd:port",
            "relative/sock",
        ] {
            assert_eq!(ClamdAddress::parse(bad), None, "{bad}");
        }
    }
}
