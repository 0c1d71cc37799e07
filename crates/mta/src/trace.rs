//! Trace (AsyncOS *System Administration > Trace* and the `trace` command): what the appliance
//! would do with a connection and, optionally, a message — without sending, storing or logging
//! anything. It walks the steps of a session with the same settings snapshot and the same code:
//! reverse DNS and the HAT, the RAT, the policy split, email authentication, the engines, each
//! split's verdict, and what the Threat Defense Connector would journal, with the reason.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rampart_dns::Resolver;
use rampart_policy::{Disposition, Facts};
use rampart_settings::{FlowPolicy, SharedSettings};
use rampart_smtp::Mailbox;
use rampart_store::{Icid, Mid};
use serde::{Deserialize, Serialize};

use crate::Mta;
use crate::process::Envelope;

/// What to trace (`POST /api/v1/trace`, the Trace page, `rampart trace`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceRequest {
    pub client_ip: String,
    #[serde(default)]
    pub helo: String,
    /// The envelope sender; empty or `<>` for the null sender.
    #[serde(default)]
    pub sender: String,
    pub recipients: Vec<String>,
    /// A whole message (headers and body); its security services are evaluated when given.
    #[serde(default)]
    pub message: Option<String>,
}

/// What the appliance would do.
#[derive(Debug, Clone, Serialize)]
pub struct TraceReport {
    pub client_ip: String,
    pub reverse_dns: ReverseDns,
    pub sender_group: String,
    /// The sender group entry that matched (`127.0.0.0/8`, `.example.com`, `ALL`).
    pub matched: String,
    pub mail_flow_policy: &'static str,
    /// `accepted`, or how the connection would be refused.
    pub connection: String,
    /// `incoming` (ACCEPT clients) or `outgoing` (RELAY clients): the policy table used.
    pub direction: &'static str,
    pub recipients: Vec<RecipientTrace>,
    /// One per MID the message would become (one per policy of its accepted recipients).
    pub splits: Vec<SplitTrace>,
    /// SPF, DKIM and DMARC results, when a message was given and a policy asks for them.
    pub email_authentication: Option<AuthTrace>,
    /// The reply to the end of DATA, when a message was given.
    pub reply: Option<String>,
    /// What Trace could not evaluate, and why.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReverseDns {
    pub host: Option<String>,
    pub verified: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecipientTrace {
    pub recipient: String,
    /// `accept` or `reject` (the RAT), or `relay` for a RELAY client (the RAT is not consulted).
    pub rat: &'static str,
    /// The mail policy, for an accepted recipient.
    pub policy: Option<String>,
    pub journal: JournalTrace,
}

#[derive(Debug, Clone, Serialize)]
pub struct JournalTrace {
    /// The intake address a journal copy would go to, if one would be made.
    pub intake_address: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SplitTrace {
    pub policy: String,
    pub recipients: Vec<String>,
    /// The security services' verdict, when a message was given.
    pub verdict: Option<VerdictTrace>,
    pub journal: JournalTrace,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerdictTrace {
    /// `deliver`, `drop`, `bounce` or `quarantine`.
    pub action: &'static str,
    /// What decided a drop, bounce or quarantine (`Anti-Spam`, `DMARC`, a content filter).
    pub decided_by: Option<String>,
    /// Everything the services found; none means clean.
    pub findings: Vec<String>,
    pub matched_filters: Vec<String>,
    /// The Anti-Spam result (`positive score=…`, `negative score=…`), when the policy scans.
    pub spam: Option<String>,
    /// The Anti-Virus result (`negative`, `positive 'name'`, `unscannable`).
    pub virus: Option<String>,
    pub clean: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuthTrace {
    pub spf: &'static str,
    pub dkim: &'static str,
    pub dmarc: &'static str,
}

/// Input Trace refuses, with what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TraceError(pub String);

/// Runs traces with a running appliance's settings, engines and resolver.
#[derive(Clone)]
pub struct Tracer {
    settings: SharedSettings,
    engines: Arc<rampart_scan::Engines>,
    auth: Option<Arc<rampart_emailauth::Authenticator>>,
    resolver: Option<Arc<dyn Resolver>>,
    reverse_dns_timeout: Duration,
    max_message_size: u64,
    max_recipients: u32,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer").finish_non_exhaustive()
    }
}

impl Mta {
    /// A tracer that sees what this MTA's sessions see.
    pub fn tracer(&self) -> Tracer {
        Tracer {
            settings: self.settings.clone(),
            engines: self.engines.clone(),
            auth: self.auth.clone(),
            resolver: self.resolver.clone(),
            reverse_dns_timeout: self.config.reverse_dns_timeout,
            max_message_size: self.config.max_message_size,
            max_recipients: self.config.max_recipients,
        }
    }
}

fn bad(text: impl Into<String>) -> TraceError {
    TraceError(text.into())
}

impl Tracer {
    pub async fn trace(&self, req: &TraceRequest) -> Result<TraceReport, TraceError> {
        let ip: IpAddr = req.client_ip.trim().parse().map_err(|_| {
            bad(format!(
                "client_ip: {:?} is not an IP address (e.g. 192.0.2.7)",
                req.client_ip
            ))
        })?;
        let ip = rampart_dns::canonical_ip(ip);
        let helo = req.helo.trim();
        if helo.len() > 255 || helo.chars().any(char::is_control) {
            return Err(bad("helo: at most 255 characters on one line"));
        }
        let sender = req.sender.trim();
        let from = match sender {
            "" | "<>" => None,
            s => Some(
                Mailbox::parse(s.trim_start_matches('<').trim_end_matches('>'))
                    .map_err(|e| bad(format!("sender: {s:?} is not a valid address: {e}")))?,
            ),
        };
        if req.recipients.is_empty() {
            return Err(bad("recipients: give at least one recipient"));
        }
        if req.recipients.len() > self.max_recipients as usize {
            return Err(bad(format!(
                "recipients: at most {} (smtp.max_recipients)",
                self.max_recipients
            )));
        }
        let mut rcpts = Vec::with_capacity(req.recipients.len());
        for r in &req.recipients {
            let r = r.trim();
            rcpts.push(
                Mailbox::parse(r.trim_start_matches('<').trim_end_matches('>'))
                    .map_err(|e| bad(format!("recipients: {r:?} is not a valid address: {e}")))?,
            );
        }
        let body = match &req.message {
            Some(m) if !m.trim().is_empty() => {
                if m.len() as u64 > self.max_message_size {
                    return Err(bad(format!(
                        "message: {} bytes is over smtp.max_message_size ({})",
                        m.len(),
                        self.max_message_size
                    )));
                }
                Some(crlf(m))
            }
            _ => None,
        };

        let rdns = crate::client_name(self.resolver.as_deref(), ip, self.reverse_dns_timeout).await;
        let settings = self.settings.load_full();
        let hat = settings.classify(ip, rdns.verified_name());
        let outgoing = hat.policy == FlowPolicy::Relay;
        let mut report = TraceReport {
            client_ip: ip.to_string(),
            reverse_dns: ReverseDns {
                host: rdns.host.clone(),
                verified: rdns.verified,
            },
            sender_group: hat.group.clone(),
            matched: hat.matched.clone(),
            mail_flow_policy: hat.policy.as_str(),
            connection: match hat.policy {
                FlowPolicy::Accept | FlowPolicy::Relay => "accepted".into(),
                FlowPolicy::Reject => "refused: 554 5.7.1 Access denied".into(),
                FlowPolicy::Tcprefuse => "refused: closed before the banner".into(),
            },
            direction: if outgoing { "outgoing" } else { "incoming" },
            recipients: vec![],
            splits: vec![],
            email_authentication: None,
            reply: None,
            notes: vec![],
        };
        if matches!(hat.policy, FlowPolicy::Reject | FlowPolicy::Tcprefuse) {
            report
                .notes
                .push("The connection is refused: no recipient is considered.".into());
            return Ok(report);
        }

        let table = settings.policies(outgoing);
        let journal = |pidx: usize| -> JournalTrace {
            if outgoing {
                return JournalTrace {
                    intake_address: None,
                    reason: "outgoing mail is not journaled".into(),
                };
            }
            let (intake_address, reason) = settings.explain_journal(pidx);
            JournalTrace {
                intake_address,
                reason,
            }
        };
        let mut accepted = Vec::new();
        for r in &rcpts {
            let rat = if outgoing {
                "relay"
            } else if settings.rat_accepts(r.domain.as_str()) {
                "accept"
            } else {
                "reject"
            };
            let (policy, journal) = if rat == "reject" {
                let why = "refused by the RAT: 550 5.7.1 Relaying denied";
                (None, no_journal(why))
            } else {
                accepted.push(r.clone());
                let pidx = table.policy_for(from.as_ref(), r);
                (table.get(pidx).map(|p| p.name.clone()), journal(pidx))
            };
            report.recipients.push(RecipientTrace {
                recipient: r.to_string(),
                rat,
                policy,
                journal,
            });
        }
        let groups = table.split(from.as_ref(), &accepted);
        for (pidx, idxs) in &groups {
            report.splits.push(SplitTrace {
                policy: table.get(*pidx).map(|p| p.name.clone()).unwrap_or_default(),
                recipients: idxs
                    .iter()
                    .filter_map(|i| accepted.get(*i))
                    .map(ToString::to_string)
                    .collect(),
                verdict: None,
                journal: journal(*pidx),
            });
        }
        if accepted.is_empty() {
            report
                .notes
                .push("No recipient is accepted: DATA would be refused.".into());
            return Ok(report);
        }
        let Some(body) = body else {
            report.notes.push(
                "No message given: the security services were not evaluated, and the journal \
                 choice assumes a clean message."
                    .into(),
            );
            return Ok(report);
        };

        // The message, as at the end of DATA (`process`), with nothing logged or stored.
        let wants = crate::process::Wants::of(table, &groups);
        let mut facts = if wants.body {
            Facts::from_message(&body, Some(ip))
        } else {
            Facts::from_headers(&body, Some(ip))
        };
        if wants.auth {
            match &self.auth {
                Some(auth) => {
                    let sender = from.as_ref().map(ToString::to_string).unwrap_or_default();
                    let outcome = auth.check(&body, ip, helo, &sender).await;
                    report.email_authentication = Some(AuthTrace {
                        spf: outcome.spf.as_str(),
                        dkim: outcome.dkim.as_str(),
                        dmarc: outcome.dmarc.as_str(),
                    });
                    crate::process::note_auth(&mut facts, outcome);
                }
                None => report
                    .notes
                    .push("Email authentication is not available here: not evaluated.".into()),
            }
        }
        let env = Envelope {
            mid: Mid(0),
            icid: Icid(0),
            from: from.as_ref(),
            rcpts: &accepted,
            peer: ip,
            helo,
            hat: &hat,
            tls: None,
            message_id: None,
            subject: None,
        };
        let (_, scanned) =
            crate::scan::scan(&self.engines, None, &env, body, wants.spam, wants.virus).await;
        match scanned {
            Ok(s) => {
                facts.spam = s.spam;
                facts.virus = s.virus;
            }
            Err(reply) => {
                report.reply = Some(reply.to_string().trim_end().to_owned());
                report
                    .notes
                    .push("An engine is unavailable: the message would be refused for now.".into());
                return Ok(report);
            }
        }
        let mut all_bounced = None;
        let mut any_accepted = false;
        for (split, (pidx, _)) in report.splits.iter_mut().zip(&groups) {
            let Some(policy) = table.get(*pidx) else {
                continue;
            };
            let v = policy.judge(&facts);
            let header = |name: &str| {
                v.replace_headers
                    .iter()
                    .find(|(h, _)| h == name)
                    .map(|(_, value)| value.clone())
            };
            match &v.disposition {
                Disposition::Bounce(text) => {
                    all_bounced.get_or_insert_with(|| text.clone());
                }
                _ => any_accepted = true,
            }
            if !v.is_clean() && split.journal.intake_address.is_some() {
                split.journal = no_journal(&format!(
                    "{}; not journaled: the message is not clean ({})",
                    split.journal.reason,
                    if v.findings.is_empty() {
                        v.as_str().to_owned()
                    } else {
                        v.findings.join("; ")
                    }
                ));
            }
            split.verdict = Some(VerdictTrace {
                action: v.as_str(),
                decided_by: v.decided_by.clone(),
                findings: v.findings.clone(),
                matched_filters: v.matched_filters.clone(),
                spam: header("X-Rampart-Spam"),
                virus: header("X-Rampart-Virus"),
                clean: v.is_clean(),
            });
        }
        for r in &mut report.recipients {
            if let Some(split) = report
                .splits
                .iter()
                .find(|s| s.recipients.contains(&r.recipient))
            {
                r.journal = split.journal.clone();
            }
        }
        report.reply = Some(match all_bounced.filter(|_| !any_accepted) {
            Some(text) => format!("550 5.7.1 {text}"),
            None => "250 2.0.0 Ok: queued".to_owned(),
        });
        Ok(report)
    }
}

fn no_journal(reason: &str) -> JournalTrace {
    JournalTrace {
        intake_address: None,
        reason: reason.to_owned(),
    }
}

/// A message typed or pasted with bare LF line ends, as SMTP would carry it (CRLF).
fn crlf(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 32);
    let mut prev = 0u8;
    for &b in text.as_bytes() {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn bare_line_feeds_become_crlf() {
        assert_eq!(
            super::crlf("Subject: a\nX: b\r\n\nbody\n"),
            b"Subject: a\r\nX: b\r\n\r\nbody\r\n"
        );
    }
}
