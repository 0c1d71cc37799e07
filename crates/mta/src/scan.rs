//! Anti-Spam and Anti-Virus at the end of DATA (SPEC §3a): each engine is asked once per
//! message, both at the same time, and only when a policy of one of its recipients enables the
//! service. An engine that fails either refuses the message for now (`451 4.7.1`: the sender
//! retries, nothing is stored) or, with `on_error = "accept"`, lets it in as unscannable.

use std::time::Instant;

use bytes::Bytes;
use rampart_policy::{SpamResult, VirusResult};
use rampart_scan::{Counted, ScanEnvelope, VirusVerdict};
use rampart_smtp::reply::code;
use rampart_smtp::{Enhanced, Reply};

use rampart_maillog::MailLog;
use rampart_scan::Engines;

use crate::process::Envelope;

/// What the engines said; `None` for a service no policy of the message asked for.
pub(crate) struct Scanned {
    pub spam: Option<SpamResult>,
    pub virus: Option<VirusResult>,
}

/// The refusal while an engine is unavailable.
fn unavailable(service: &str) -> Reply {
    Reply::owned(
        code::LOCAL_ERROR,
        Some(Enhanced(4, 7, 1)),
        format!("The {service} service is unavailable, try again later"),
    )
}

/// Scans `body` with the engines asked for. Gives the body back in every case. `log` is the
/// mail log for a received message; Trace passes `None`: nothing logged, nothing counted.
pub(crate) async fn scan(
    engines: &Engines,
    log: Option<&MailLog>,
    env: &Envelope<'_>,
    body: Vec<u8>,
    want_spam: bool,
    want_virus: bool,
) -> (Vec<u8>, Result<Scanned, Reply>) {
    let record = |stats: &rampart_scan::Stats, took, what| {
        if log.is_some() {
            stats.record(took, what);
        }
    };
    let spam = engines.spam.as_ref().filter(|_| want_spam);
    let virus = engines.virus.as_ref().filter(|_| want_virus);
    if spam.is_none() && virus.is_none() {
        return (
            body,
            Ok(Scanned {
                spam: None,
                virus: None,
            }),
        );
    }
    let size = body.len() as u64;
    let mid = env.mid;
    // `Bytes` hands the buffer to the HTTP client without a copy and gives it back after.
    let shared = Bytes::from(body);
    let recipients: Vec<String> = env.rcpts.iter().map(ToString::to_string).collect();
    let sender = env.from.map(ToString::to_string).unwrap_or_default();
    let scan_env = ScanEnvelope {
        client_ip: Some(env.peer),
        helo: env.helo,
        sender: &sender,
        recipients: &recipients,
        user: None,
        queue_id: mid.to_string(),
    };
    let spam_work = async {
        let service = spam?;
        if size > service.max_scan_bytes {
            if let Some(log) = log {
                log.info(format!(
                    "MID {mid} is too big to be scanned by RSPAMD ({size} bytes, antispam.max_scan_bytes {})",
                    service.max_scan_bytes
                ));
            }
            return Some(Ok(SpamResult::TooBig(format!(
                "{size} bytes is over the anti-spam scan limit"
            ))));
        }
        let start = Instant::now();
        let answer = service.client.check(shared.clone(), &scan_env).await;
        let took = start.elapsed();
        Some(match answer {
            Ok(v) => {
                let score = format!("{:.2}", v.score);
                record(
                    &service.stats,
                    took,
                    if v.is_positive() {
                        Counted::Positive
                    } else {
                        Counted::Negative
                    },
                );
                Ok(if v.is_positive() {
                    SpamResult::Positive { score }
                } else if v.is_suspect() {
                    SpamResult::Suspect { score }
                } else {
                    SpamResult::Negative { score }
                })
            }
            Err(e) => {
                record(&service.stats, took, Counted::Error);
                if let Some(log) = log {
                    log.warning(format!(
                        "MID {mid} scanning error using engine: RSPAMD: {e}"
                    ));
                }
                if service.accept_on_error {
                    Ok(SpamResult::Failed(format!("anti-spam engine failed: {e}")))
                } else {
                    Err(unavailable("anti-spam"))
                }
            }
        })
    };
    let virus_work = async {
        let service = virus?;
        if size > service.max_scan_bytes {
            if let Some(log) = log {
                log.info(format!(
                    "MID {mid} is too big to be scanned by CLAMAV ({size} bytes, antivirus.max_scan_bytes {})",
                    service.max_scan_bytes
                ));
            }
            return Some(Ok(VirusResult::Unscannable(format!(
                "{size} bytes is over the anti-virus scan limit"
            ))));
        }
        let start = Instant::now();
        let answer = service.client.scan(&shared).await;
        let took = start.elapsed();
        Some(match answer {
            Ok(VirusVerdict::Clean) => {
                record(&service.stats, took, Counted::Negative);
                Ok(VirusResult::Clean)
            }
            Ok(VirusVerdict::Infected(name)) => {
                record(&service.stats, took, Counted::Positive);
                Ok(VirusResult::Infected(name))
            }
            Err(e) => {
                record(&service.stats, took, Counted::Error);
                if let Some(log) = log {
                    log.warning(format!(
                        "MID {mid} scanning error using engine: CLAMAV: {e}"
                    ));
                }
                if service.accept_on_error {
                    Ok(VirusResult::Unscannable(format!(
                        "anti-virus engine failed: {e}"
                    )))
                } else {
                    Err(unavailable("anti-virus"))
                }
            }
        })
    };
    let (spam, virus) = tokio::join!(spam_work, virus_work);
    drop(scan_env);
    let body = Vec::from(shared);
    let result = match (spam.transpose(), virus.transpose()) {
        (Ok(spam), Ok(virus)) => Ok(Scanned { spam, virus }),
        (Err(reply), _) | (_, Err(reply)) => Err(reply),
    };
    if let (Err(reply), Some(log)) = (&result, log) {
        log.info(format!(
            "MID {mid} rejected for now: {}",
            reply.to_string().trim_end()
        ));
    }
    (body, result)
}
