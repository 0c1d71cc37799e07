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

/// A clamd to ask. Each scan uses a connection of its own: clamd serves one `INSTREAM` per
/// connection unless in a session (`IDSESSION`), and on loopback a connection costs far less
/// than the scan.
#[derive(Debug, Clone)]
pub struct Clamd {
    address: ClamdAddress,
    timeout: Duration,
}

impl Clamd {
    pub fn new(address: ClamdAddress, timeout: Duration) -> Clamd {
        Clamd { address, timeout }
    }

    /// Scans a whole message.
    pub async fn scan(&self, message: &[u8]) -> Result<VirusVerdict, ScanError> {
        let answer = self
            .exchange(|mut s| async move {
                s.write_all(b"zINSTREAM\0").await?;
                for chunk in message.chunks(CHUNK) {
                    let len = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
                    s.write_all(&len.to_be_bytes()).await?;
                    s.write_all(chunk).await?;
                }
                s.write_all(&0u32.to_be_bytes()).await?;
                s.flush().await?;
                read_answer(&mut s).await
            })
            .await?;
        parse_scan(&answer)
    }

    /// The engine and signature database versions (`ClamAV 1.4.6/27424/Tue Nov 25 …`).
    pub async fn version(&self) -> Result<String, ScanError> {
        self.exchange(|mut s| async move {
            s.write_all(b"zVERSION\0").await?;
            s.flush().await?;
            read_answer(&mut s).await
        })
        .await
    }

    /// Connects and runs `talk` on the connection, all within the timeout.
    async fn exchange<F, Fut>(&self, talk: F) -> Result<String, ScanError>
    where
        F: FnOnce(Box<dyn Stream>) -> Fut,
        Fut: std::future::Future<Output = std::io::Result<String>>,
    {
        let work = async {
            let refused = |source| ScanError::Connect {
                engine: ENGINE,
                address: self.address.to_string(),
                source,
            };
            let stream: Box<dyn Stream> = match &self.address {
                ClamdAddress::Tcp(a) => Box::new(
                    tokio::net::TcpStream::connect(a.as_str())
                        .await
                        .map_err(refused)?,
                ),
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
            };
            talk(stream).await.map_err(|e| ScanError::Engine {
                engine: ENGINE,
                message: e.to_string(),
            })
        };
        crate::within(ENGINE, self.timeout, work).await
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

/// `stream: OK`, `stream: <name> FOUND`, or an error.
fn parse_scan(answer: &str) -> Result<VirusVerdict, ScanError> {
    let body = answer.strip_prefix("stream:").map(str::trim);
    match body {
        Some("OK") => Ok(VirusVerdict::Clean),
        Some(rest) if rest.ends_with(" FOUND") => Ok(VirusVerdict::Infected(
            rest.trim_end_matches(" FOUND").trim().to_owned(),
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
