//! What happens between the end of DATA and `250`: each recipient is matched to a mail policy,
//! recipients of different policies become separate MIDs ("splintering"), each split is judged by
//! its policy's security services, and clean splits of incoming policies get their Threat Defense
//! journal copy — all decided before the one transaction that makes the message durable.

use std::net::IpAddr;

use rampart_maillog::line;
use rampart_policy::{Disposition, Facts};
use rampart_settings::{FlowPolicy, HatMatch};
use rampart_smtp::reply::{code, replies};
use rampart_smtp::{Enhanced, Mailbox, Reply};
use rampart_store::{Icid, Mid, NewMessage, NewRecipient, QueueKind, RowState};

use crate::Mta;

use rampart_tdc::{TDC_QUEUE, text as tdc};

/// Everything known about the transaction besides the message bytes.
pub(crate) struct Envelope<'a> {
    pub mid: Mid,
    pub icid: Icid,
    pub from: Option<&'a Mailbox>,
    pub rcpts: &'a [Mailbox],
    pub peer: IpAddr,
    pub helo: &'a str,
    pub hat: &'a HatMatch,
    pub tls: Option<&'a str>,
    pub message_id: Option<&'a str>,
    pub subject: Option<&'a str>,
}

pub(crate) struct Processed {
    /// The MIDs to commit together (empty when the whole message was refused).
    pub messages: Vec<NewMessage>,
    /// The reply to the end of DATA once they are committed.
    pub reply: Reply,
    /// Mail log lines that become true once the commit succeeded.
    pub log_after: Vec<String>,
}

pub(crate) async fn process(
    mta: &Mta,
    env: &Envelope<'_>,
    body: Vec<u8>,
) -> Result<Processed, Reply> {
    let settings = mta.settings.load_full();
    let outgoing = env.hat.policy == FlowPolicy::Relay;
    let table = settings.policies(outgoing);
    let direction = if outgoing { "outbound" } else { "inbound" };
    let groups = table.split(env.from, env.rcpts);
    let wants = Wants::of(table, &groups);
    let mut facts = if wants.body {
        Facts::from_message(&body, Some(env.peer))
    } else {
        Facts::from_headers(&body, Some(env.peer))
    };
    // Email authentication costs DNS lookups: only when a recipient's policy asks for it.
    let auth_header = match (&mta.auth, wants.auth) {
        (Some(auth), true) => {
            let sender = env.from.map(ToString::to_string).unwrap_or_default();
            let outcome = auth.check(&body, env.peer, env.helo, &sender).await;
            mta.log.info(format!(
                "MID {} SPF {} DKIM {} DMARC {}",
                env.mid,
                outcome.spf.as_str(),
                outcome.dkim.as_str(),
                outcome.dmarc.as_str()
            ));
            Some(note_auth(&mut facts, outcome))
        }
        _ => None,
    };
    // Each engine scans the message once, for every split whose policy enables it.
    let (body, scanned) = crate::scan::scan(
        &mta.engines,
        Some(&mta.log),
        env,
        body,
        wants.spam,
        wants.virus,
    )
    .await;
    let scanned = scanned?;
    facts.spam = scanned.spam;
    facts.virus = scanned.virus;
    let sender = env.from.map(ToString::to_string).unwrap_or_default();

    // Judge every split first: if all of them refuse the message, the client is told so.
    let mut judged = Vec::with_capacity(groups.len());
    for (pidx, rcpt_idxs) in groups {
        let Some(policy) = table.get(pidx) else {
            continue;
        };
        let verdict = policy.judge(&facts);
        judged.push((pidx, policy.name.clone(), rcpt_idxs, verdict));
    }
    let mut log_before = Vec::new();
    let mut log_after = Vec::new();
    if let Some(text) = all_bounce_text(&judged) {
        for (pidx, name, _, v) in &judged {
            if let Some(policy) = table.get(*pidx) {
                log_before.extend(scan_lines(env.mid, scan_words(policy, &facts), &facts));
            }
            log_before.push(format!(
                "MID {} bounced by {} in the {direction} table (policy {name})",
                env.mid,
                decider(v)
            ));
        }
        log_before.push(line::finished(env.mid));
        return Ok(Processed {
            messages: vec![],
            reply: Reply::owned(code::MAILBOX_UNAVAILABLE, Some(Enhanced(5, 7, 1)), text),
            log_after: log_before,
        });
    }

    let mut messages = Vec::with_capacity(judged.len());
    let mut mids = Vec::with_capacity(judged.len());
    let splits = judged.len();
    let mut body = Some(body);
    for (i, (pidx, name, rcpt_idxs, verdict)) in judged.into_iter().enumerate() {
        let mid = if i == 0 {
            log_before.push(line::matched_policy(env.mid, &name, direction));
            env.mid
        } else {
            let new = mta
                .store
                .next_mid()
                .await
                .map_err(|_| replies::STORAGE_FAILED)?;
            log_before.push(line::split(env.mid, new, &name, direction));
            new
        };
        mids.push(mid);
        let words = table
            .get(pidx)
            .map(|p| scan_words(p, &facts))
            .unwrap_or_default();
        let scan_log = scan_lines(mid, words, &facts);
        // Message Tracking shows the verdict lines too.
        let scan_events: Vec<String> = scan_log
            .iter()
            .filter_map(|l| l.strip_prefix(&format!("MID {mid} ")))
            .map(|event| format!("Message {mid} {event}"))
            .collect();
        log_before.extend(scan_log);
        for f in &verdict.matched_filters {
            log_before.push(format!(
                "MID {mid} content filter '{f}' matched in the {direction} table"
            ));
        }
        let (state, finding_line) = match &verdict.disposition {
            Disposition::Deliver => (RowState::Queued, None),
            Disposition::Drop => (
                RowState::Dropped,
                Some(format!(
                    "MID {mid} dropped by {} in the {direction} table",
                    decider(&verdict)
                )),
            ),
            Disposition::Quarantine => (
                RowState::Quarantined,
                Some(format!(
                    "MID {mid} quarantined to \"{}\" ({})",
                    quarantine_name(&verdict),
                    match verdict.decided_by.as_deref() {
                        Some(s @ ("Anti-Spam" | "Anti-Virus")) =>
                            format!("{s}: {}", verdict.findings.join("; ")),
                        other => format!("content filter:{}", other.unwrap_or_default()),
                    }
                )),
            ),
            Disposition::Bounce(_) => (
                RowState::Bounced,
                Some(format!(
                    "MID {mid} bounced by {} in the {direction} table",
                    decider(&verdict)
                )),
            ),
        };
        // The last split takes the received bytes over; only earlier ones need a copy.
        let received = if i + 1 == splits {
            body.take().unwrap_or_default()
        } else {
            body.clone().unwrap_or_default()
        };
        let mut split_body = verdict.apply(received);
        if let (Some(header), true) = (
            &auth_header,
            table
                .get(pidx)
                .is_some_and(|p| p.email_authentication.enabled),
        ) {
            split_body =
                rampart_smtp::message::insert_after_first_field(&split_body, header.as_bytes());
        }
        let mut tracking = vec![
            format!(
                "Message {mid} received on ICID {} from {} (sender group {}, {})",
                env.icid,
                env.peer,
                env.hat.group,
                env.hat.policy.as_str()
            ),
            format!("Message {mid} from: <{sender}>"),
        ];
        if i > 0 {
            tracking.push(format!(
                "Message {mid} was split from MID {} by policy {name}",
                env.mid
            ));
        }
        tracking.push(format!("Message {mid} matched policy {name} ({direction})"));
        let mut recipients = Vec::with_capacity(rcpt_idxs.len() + 1);
        for (rid, &ri) in rcpt_idxs.iter().enumerate() {
            let Some(r) = env.rcpts.get(ri) else { continue };
            tracking.push(format!("Message {mid} to: <{r}>"));
            if i > 0 {
                log_before.push(line::to(mid, env.icid, rid as u32, &r.to_string()));
            }
            recipients.push(NewRecipient {
                rcpt_idx: rid as u32,
                recipient: r.to_string(),
                queue_name: r.domain.to_string(),
                kind: QueueKind::Deliver,
                state,
            });
        }
        tracking.push(format!("Message {mid} ready {} bytes", split_body.len()));
        tracking.extend(scan_events);
        let verdict_text = if verdict.findings.is_empty() {
            format!(
                "Message {mid} security services verdict: {}, clean",
                verdict.as_str()
            )
        } else {
            format!(
                "Message {mid} security services verdict: {} ({})",
                verdict.as_str(),
                verdict.findings.join("; ")
            )
        };
        tracking.push(verdict_text);
        match (&verdict.disposition, &finding_line) {
            (Disposition::Deliver, _) => {
                tracking.push(format!("Message {mid} queued for delivery"));
                log_after.push(line::queued_for_delivery(mid));
            }
            (_, Some(line)) => {
                log_after.push(line.clone());
                if !matches!(verdict.disposition, Disposition::Quarantine) {
                    log_after.push(line::finished(mid));
                }
                tracking.push(line.replacen("MID", "Message", 1));
            }
            _ => {}
        }
        if rampart_tdc::choice::selects(!outgoing, verdict.is_clean())
            && let Some(intake) = settings.journal_address(pidx)
        {
            recipients.push(NewRecipient {
                rcpt_idx: recipients.len() as u32,
                recipient: intake,
                queue_name: TDC_QUEUE.into(),
                kind: QueueKind::Journal,
                state: RowState::Queued,
            });
            log_after.push(tdc::enqueued(mid, env.message_id.unwrap_or("")));
            tracking.push(tdc::enqueued_event(mid));
        }
        messages.push(NewMessage {
            mid,
            icid: env.icid.0,
            sender: sender.clone(),
            remote_ip: env.peer.to_string(),
            helo: env.helo.to_owned(),
            sender_group: env.hat.group.clone(),
            relayed: outgoing,
            policy: name.clone(),
            verdict: verdict.as_str().to_owned(),
            findings: verdict.findings.join("; "),
            threats: verdict.threats(),
            spam: words.0,
            virus: words.1,
            tls: env.tls.map(str::to_owned),
            message_id: env.message_id.map(str::to_owned),
            subject: env.subject.map(str::to_owned),
            body: split_body,
            recipients,
            tracking,
        });
        if let Disposition::Bounce(text) = &verdict.disposition {
            // Part of the message was refused by policy: tell the sender with a DSN.
            if let Some(dsn) = bounce_notice(mta, &messages, mid, text).await {
                log_after.push(line::generated_for_bounce(dsn.mid, mid));
                messages.push(dsn);
            }
        }
    }
    for line in log_before {
        mta.log.info(line);
    }
    let ids = mids
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Processed {
        messages,
        reply: Reply::owned(
            code::OK,
            Some(Enhanced(2, 0, 0)),
            format!("Ok: queued as {ids}"),
        ),
        log_after,
    })
}

/// What the policies of a message's splits ask for.
pub(crate) struct Wants {
    /// A content filter looks at the body or attachments ([`Facts::from_message`]).
    pub body: bool,
    pub auth: bool,
    pub spam: bool,
    pub virus: bool,
}

impl Wants {
    pub(crate) fn of(table: &rampart_policy::PolicyTable, groups: &[(usize, Vec<usize>)]) -> Wants {
        let any = |f: &dyn Fn(&rampart_policy::CompiledPolicy) -> bool| {
            groups.iter().any(|(p, _)| table.get(*p).is_some_and(f))
        };
        Wants {
            body: any(&|p| p.needs_body()),
            auth: any(&|p| p.email_authentication.enabled),
            spam: any(&|p| p.antispam.is_some()),
            virus: any(&|p| p.antivirus.is_some()),
        }
    }
}

/// Puts an email-authentication outcome into the facts the policies judge; gives back its
/// `Authentication-Results:` field.
pub(crate) fn note_auth(facts: &mut Facts, outcome: rampart_emailauth::Outcome) -> String {
    facts.spf = Some(outcome.spf);
    facts.dkim = Some(outcome.dkim);
    facts.dmarc = Some(outcome.dmarc);
    facts.dmarc_request = outcome.dmarc_policy;
    facts.dmarc_domain = outcome.from_domain;
    outcome.header
}

/// Who decided a verdict, as the mail log names it.
fn decider(v: &rampart_policy::Verdict) -> String {
    match v.decided_by.as_deref() {
        Some(s @ ("Anti-Spam" | "Anti-Virus" | "DMARC")) => s.to_owned(),
        other => format!("content filter '{}'", other.unwrap_or_default()),
    }
}

/// The quarantine a verdict puts a message in (AsyncOS's names).
fn quarantine_name(v: &rampart_policy::Verdict) -> &'static str {
    match v.decided_by.as_deref() {
        Some("Anti-Spam") => "Spam",
        Some("Anti-Virus") => "Virus",
        _ => "Policy",
    }
}

/// A split's anti-spam and anti-virus verdict words (`positive`, `suspect`, `negative`,
/// `unscannable`), for the services its policy runs.
fn scan_words(
    policy: &rampart_policy::CompiledPolicy,
    facts: &Facts,
) -> (Option<&'static str>, Option<&'static str>) {
    use rampart_policy::{SpamResult, VirusResult};
    let spam = match (&policy.antispam, &facts.spam) {
        (Some(cfg), Some(spam)) => match spam {
            SpamResult::Positive { .. } => Some("positive"),
            SpamResult::Suspect { .. } if cfg.suspect.enabled => Some("suspect"),
            SpamResult::Suspect { .. } | SpamResult::Negative { .. } => Some("negative"),
            SpamResult::TooBig(_) => None,
            SpamResult::Failed(_) => Some("unscannable"),
        },
        _ => None,
    };
    let virus = match (&policy.antivirus, &facts.virus) {
        (Some(_), Some(VirusResult::Infected(_))) => Some("positive"),
        (Some(_), Some(VirusResult::Clean)) => Some("negative"),
        (Some(_), Some(VirusResult::Unscannable(_))) => Some("unscannable"),
        _ => None,
    };
    (spam, virus)
}

/// The AsyncOS scanning lines of one split (SPEC §5), from its verdict words ([`scan_words`]).
fn scan_lines(
    mid: Mid,
    (spam, virus): (Option<&'static str>, Option<&'static str>),
    facts: &Facts,
) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(word) = spam {
        lines.extend(line::spam_verdict(mid, word));
    }
    match (virus, &facts.virus) {
        (Some(_), Some(rampart_policy::VirusResult::Infected(name))) => {
            lines.extend(line::virus_positive(mid, name));
        }
        (Some("negative"), _) => lines.extend(line::virus_negative(mid)),
        (Some(_), _) => lines.extend(line::virus_unscannable(mid)),
        (None, _) => {}
    }
    lines
}

/// The custom reply when every split was refused by a bounce action.
fn all_bounce_text(
    judged: &[(usize, String, Vec<usize>, rampart_policy::Verdict)],
) -> Option<String> {
    let mut text = None;
    for (_, _, _, v) in judged {
        match &v.disposition {
            Disposition::Bounce(t) => {
                text.get_or_insert_with(|| t.clone());
            }
            _ => return None,
        }
    }
    text
}

/// A DSN for the recipients of a split that a content filter bounced (only when other splits
/// of the same message were accepted; otherwise the client got the refusal directly).
async fn bounce_notice(
    mta: &Mta,
    messages: &[NewMessage],
    mid: Mid,
    text: &str,
) -> Option<NewMessage> {
    let m = messages.iter().find(|m| m.mid == mid)?;
    if m.sender.is_empty() {
        return None;
    }
    let failed: Vec<rampart_dsn::Failed> = m
        .recipients
        .iter()
        .filter(|r| r.kind == QueueKind::Deliver)
        .map(|r| rampart_dsn::Failed {
            recipient: r.recipient.clone(),
            status: "5.7.1".into(),
            diagnostic: format!("550 5.7.1 {text}"),
            remote_mta: None,
        })
        .collect();
    let dsn_mid = mta.store.next_mid().await.ok()?;
    let original = rampart_store::NewMessageRef {
        mid,
        sender: &m.sender,
        arrival: chrono::Local::now(),
        body: &m.body,
    };
    Some(rampart_dsn::notification(
        dsn_mid,
        &mta.config.hostname,
        &original,
        &failed,
    ))
}
