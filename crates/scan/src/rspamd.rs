//! rspamd's scan API (`POST /checkv2`, rspamd's "protocol v2"): the message as the body, the
//! envelope in headers (`IP`, `Helo`, `From`, one `Rcpt` per recipient, `User`, `Queue-Id`),
//! and a JSON answer whose `action` is rspamd's verdict. Connections go through hyper's pool,
//! so they would be reused, but rspamd's normal worker (3.4, Debian 12) answers every scan with
//! `Connection: close`: each scan is a connection of its own. Only `http://` is spoken, as
//! rspamd runs on the gateway or beside it.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use crate::ScanError;

const ENGINE: &str = "rspamd";

/// Longest answer read from rspamd (its JSON lists every symbol that matched).
const MAX_ANSWER: usize = 1 << 20;

/// The envelope rspamd scores with the message.
#[derive(Debug, Clone, Default)]
pub struct ScanEnvelope<'a> {
    pub client_ip: Option<IpAddr>,
    pub helo: &'a str,
    /// The envelope sender; empty for the null sender.
    pub sender: &'a str,
    pub recipients: &'a [String],
    /// The authenticated user, if the client authenticated.
    pub user: Option<&'a str>,
    /// Our MID, so rspamd's log can be matched with `mail_logs`.
    pub queue_id: String,
}

/// rspamd's recommended action (its `action` field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpamAction {
    Reject,
    SoftReject,
    RewriteSubject,
    AddHeader,
    Greylist,
    NoAction,
    Other(String),
}

impl SpamAction {
    fn parse(s: &str) -> SpamAction {
        match s {
            "reject" => SpamAction::Reject,
            "soft reject" => SpamAction::SoftReject,
            "rewrite subject" => SpamAction::RewriteSubject,
            "add header" => SpamAction::AddHeader,
            "greylist" => SpamAction::Greylist,
            "no action" => SpamAction::NoAction,
            other => SpamAction::Other(other.to_owned()),
        }
    }
}

/// rspamd's answer for one message.
#[derive(Debug, Clone, PartialEq)]
pub struct SpamVerdict {
    pub action: SpamAction,
    pub score: f64,
    pub required_score: f64,
    /// Names of the symbols that matched, sorted.
    pub symbols: Vec<String>,
}

impl SpamVerdict {
    /// Spam for certain: rspamd would reject it (AsyncOS "positive").
    pub fn is_positive(&self) -> bool {
        self.action == SpamAction::Reject
    }

    /// Probably spam: rspamd would mark it (AsyncOS "suspect"). Greylisting and soft rejects
    /// are about timing, not content, and count as negative here.
    pub fn is_suspect(&self) -> bool {
        matches!(
            self.action,
            SpamAction::AddHeader | SpamAction::RewriteSubject
        )
    }
}

#[derive(Debug, Deserialize)]
struct Answer {
    action: String,
    #[serde(default)]
    score: f64,
    #[serde(default)]
    required_score: f64,
    #[serde(default)]
    symbols: serde_json::Map<String, serde_json::Value>,
}

/// rspamd's `/checkv2` answer (JSON) as a verdict. Public for the fuzz target: the answer comes
/// from the network.
pub fn parse_answer(body: &[u8]) -> Result<SpamVerdict, ScanError> {
    let answer: Answer = serde_json::from_slice(body).map_err(|_| ScanError::Protocol {
        engine: ENGINE,
        answer: preview(body),
    })?;
    let mut symbols: Vec<String> = answer.symbols.keys().cloned().collect();
    symbols.sort();
    Ok(SpamVerdict {
        action: SpamAction::parse(&answer.action),
        score: answer.score,
        required_score: answer.required_score,
        symbols,
    })
}

/// An rspamd to ask.
#[derive(Debug, Clone)]
pub struct Rspamd {
    base: String,
    timeout: Duration,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Rspamd {
    /// `url` is rspamd's normal worker, e.g. `http://127.0.0.1:11333`.
    pub fn new(url: &str, timeout: Duration) -> Result<Rspamd, ScanError> {
        let base = url.trim_end_matches('/').to_owned();
        let ok = base
            .strip_prefix("http://")
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'));
        if !ok {
            return Err(ScanError::Engine {
                engine: ENGINE,
                message: format!("{url:?} is not an http://host:port address"),
            });
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Rspamd {
            base,
            timeout,
            client,
        })
    }

    /// Scores a whole message.
    pub async fn check(
        &self,
        message: Bytes,
        env: &ScanEnvelope<'_>,
    ) -> Result<SpamVerdict, ScanError> {
        let mut req = hyper::Request::post(format!("{}/checkv2", self.base))
            .header("Helo", header_safe(env.helo))
            .header("From", header_safe(env.sender))
            .header("Queue-Id", header_safe(&env.queue_id));
        if let Some(ip) = env.client_ip {
            req = req.header("IP", ip.to_string());
        }
        if let Some(user) = env.user {
            req = req.header("User", header_safe(user));
        }
        for rcpt in env.recipients {
            req = req.header("Rcpt", header_safe(rcpt));
        }
        let req = req
            .body(Full::new(message))
            .map_err(|e| ScanError::Engine {
                engine: ENGINE,
                message: e.to_string(),
            })?;
        let (status, body) = self.send(req).await?;
        if status != 200 {
            return Err(ScanError::Engine {
                engine: ENGINE,
                message: format!("HTTP {status}: {}", preview(&body)),
            });
        }
        parse_answer(&body)
    }

    /// Whether rspamd answers, and its version from the `Server` header (`rspamd/3.4`).
    pub async fn ping(&self) -> Result<String, ScanError> {
        let req = hyper::Request::get(format!("{}/ping", self.base))
            .body(Full::new(Bytes::new()))
            .map_err(|e| ScanError::Engine {
                engine: ENGINE,
                message: e.to_string(),
            })?;
        let work = async {
            let resp = self.client.request(req).await.map_err(|e| self.failed(e))?;
            let server = resp
                .headers()
                .get(hyper::header::SERVER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("rspamd")
                .to_owned();
            Ok(server)
        };
        self.within(work).await
    }

    async fn send(&self, req: hyper::Request<Full<Bytes>>) -> Result<(u16, Bytes), ScanError> {
        let work = async {
            let resp = self.client.request(req).await.map_err(|e| self.failed(e))?;
            let status = resp.status().as_u16();
            let body = Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| ScanError::Engine {
                    engine: ENGINE,
                    message: format!("reading the answer: {e}"),
                })?
                .to_bytes();
            Ok((status, body))
        };
        self.within(work).await
    }

    async fn within<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, ScanError>>,
    ) -> Result<T, ScanError> {
        crate::within(ENGINE, self.timeout, work).await
    }

    fn failed(&self, e: hyper_util::client::legacy::Error) -> ScanError {
        if e.is_connect() {
            ScanError::Connect {
                engine: ENGINE,
                address: self.base.clone(),
                source: std::io::Error::other(e.to_string()),
            }
        } else {
            ScanError::Engine {
                engine: ENGINE,
                message: e.to_string(),
            }
        }
    }
}

/// A header value without control characters (addresses and HELO names come from clients).
fn header_safe(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn preview(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_and_what_they_mean() {
        let verdict = |action: &str| SpamVerdict {
            action: SpamAction::parse(action),
            score: 0.0,
            required_score: 15.0,
            symbols: vec![],
        };
        assert!(verdict("reject").is_positive());
        assert!(verdict("add header").is_suspect());
        assert!(verdict("rewrite subject").is_suspect());
        for negative in ["no action", "greylist", "soft reject", "something new"] {
            let v = verdict(negative);
            assert!(!v.is_positive() && !v.is_suspect(), "{negative}");
        }
    }

    #[test]
    fn only_plain_http_addresses() {
        assert!(Rspamd::new("http://127.0.0.1:11333", Duration::from_secs(1)).is_ok());
        assert!(Rspamd::new("http://127.0.0.1:11333/", Duration::from_secs(1)).is_ok());
        assert!(Rspamd::new("https://rspamd:11333", Duration::from_secs(1)).is_err());
        assert!(Rspamd::new("127.0.0.1:11333", Duration::from_secs(1)).is_err());
        assert!(Rspamd::new("http://h:1/path", Duration::from_secs(1)).is_err());
    }

    #[test]
    fn client_text_cannot_inject_headers() {
        assert_eq!(header_safe("mx\r\nX-Evil: 1"), "mx  X-Evil: 1");
    }
}
