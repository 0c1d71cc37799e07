//! The verdict of a policy's security services for one split, and the header changes it makes.

use crate::facts::Facts;
use crate::filters::FilterAction;
use crate::services::{ScanAction, SpamResult, VirusResult};
use crate::table::CompiledPolicy;

/// The category of one finding as [`CompiledPolicy::judge`] words it: `virus 'NAME'` →
/// `Virus: NAME`, `spam positive (score …)` → `Spam`, `content filter NAME` → `Content filter:
/// NAME`, `unscannable: …` → `Unscannable`; authentication results (`SPF fail`) stay as they are.
fn threat_category(finding: &str) -> String {
    if let Some(name) = finding.strip_prefix("virus '") {
        return format!("Virus: {}", name.strip_suffix('\'').unwrap_or(name));
    }
    if finding.starts_with("spam positive") {
        return "Spam".into();
    }
    if finding.starts_with("spam suspect") {
        return "Suspected spam".into();
    }
    if let Some(name) = finding.strip_prefix("content filter ") {
        return format!("Content filter: {name}");
    }
    if finding.starts_with("unscannable") {
        return "Unscannable".into();
    }
    finding.to_owned()
}

/// What happens to the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    Deliver,
    Drop,
    /// Refused, with the text the sender sees.
    Bounce(String),
    Quarantine,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub disposition: Disposition,
    /// Content filters that matched, in order.
    pub matched_filters: Vec<String>,
    /// The filter whose action set the disposition (drop, bounce, quarantine).
    pub decided_by: Option<String>,
    /// Everything the services found: a non-empty list means the message is not clean.
    pub findings: Vec<String>,
    pub add_headers: Vec<(String, String)>,
    pub replace_headers: Vec<(String, String)>,
    pub subject_tags: Vec<String>,
}

impl Verdict {
    /// Clean: delivered as it came, and no service found anything (SPEC §1) — the only messages
    /// the Threat Defense Connector journals.
    pub fn is_clean(&self) -> bool {
        self.disposition == Disposition::Deliver && self.findings.is_empty()
    }

    /// The threat categories of the findings, for the reports' *Threat categories* list: one
    /// per finding, without its details (scores, reasons), so that counts add up per kind.
    pub fn threats(&self) -> Vec<String> {
        self.findings.iter().map(|f| threat_category(f)).collect()
    }

    pub fn as_str(&self) -> &'static str {
        match self.disposition {
            Disposition::Deliver => "deliver",
            Disposition::Drop => "drop",
            Disposition::Bounce(_) => "bounce",
            Disposition::Quarantine => "quarantine",
        }
    }

    /// Applies the header changes to a stored message (CRLF line ends).
    pub fn apply(&self, message: Vec<u8>) -> Vec<u8> {
        if self.add_headers.is_empty()
            && self.replace_headers.is_empty()
            && self.subject_tags.is_empty()
        {
            // Unchanged: the same bytes, not a copy of a possibly large message.
            return message;
        }
        let message = message.as_slice();
        let head_end = memchr::memmem::find(message, b"\r\n\r\n")
            .map(|i| i + 2)
            .unwrap_or(message.len());
        let (head, body) = message.split_at(head_end);
        let mut fields = split_fields(head);
        for (name, value) in &self.replace_headers {
            fields.retain(|f| !field_is(f, name));
            fields.push(format!("{name}: {value}\r\n").into_bytes());
        }
        for tag in &self.subject_tags {
            match fields.iter_mut().find(|f| field_is(f, "subject")) {
                Some(f) => {
                    let colon = f.iter().position(|b| *b == b':').unwrap_or(f.len());
                    let rest = f.get(colon + 1..).unwrap_or_default().to_vec();
                    let rest = rest.strip_prefix(b" ").unwrap_or(&rest).to_vec();
                    let mut new = format!("Subject: {tag} ").into_bytes();
                    new.extend_from_slice(&rest);
                    *f = new;
                }
                None => fields.push(format!("Subject: {tag}\r\n").into_bytes()),
            }
        }
        for (name, value) in &self.add_headers {
            fields.push(format!("{name}: {value}\r\n").into_bytes());
        }
        let mut out = fields.concat();
        out.extend_from_slice(body);
        out
    }
}

/// Applies one scan outcome's action; `true` when it ends processing (drop, bounce).
fn apply(
    v: &mut Verdict,
    action: ScanAction,
    prefix: &str,
    service: &str,
    bounce_text: &str,
) -> bool {
    match action {
        ScanAction::Deliver => {
            let prefix = prefix.trim();
            if !prefix.is_empty() {
                v.subject_tags.push(prefix.to_owned());
            }
            false
        }
        ScanAction::Quarantine => {
            v.disposition = Disposition::Quarantine;
            v.decided_by = Some(service.to_owned());
            false
        }
        ScanAction::Drop => {
            v.disposition = Disposition::Drop;
            v.decided_by = Some(service.to_owned());
            true
        }
        ScanAction::Bounce => {
            v.disposition = Disposition::Bounce(bounce_text.to_owned());
            v.decided_by = Some(service.to_owned());
            true
        }
    }
}

/// Splits a header section into fields, each with its continuation lines.
fn split_fields(head: &[u8]) -> Vec<Vec<u8>> {
    let mut fields: Vec<Vec<u8>> = Vec::new();
    for line in head.split_inclusive(|b| *b == b'\n') {
        let continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        match fields.last_mut() {
            Some(last) if continuation => last.extend_from_slice(line),
            _ => fields.push(line.to_vec()),
        }
    }
    fields
}

fn field_is(field: &[u8], name: &str) -> bool {
    field.len() > name.len()
        && field.get(name.len()) == Some(&b':')
        && field
            .get(..name.len())
            .is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes()))
}

impl CompiledPolicy {
    /// Whether a content filter of this policy looks at the body text or the attachments, which
    /// [`Facts::from_headers`] leaves out.
    pub fn needs_body(&self) -> bool {
        self.filters.iter().any(|f| {
            f.conditions.iter().any(|c| {
                matches!(
                    c,
                    crate::filters::Compiled::Body(_)
                        | crate::filters::Compiled::AttachmentName(_)
                        | crate::filters::Compiled::AttachmentType(_)
                )
            })
        })
    }

    /// Applies the Anti-Spam and Anti-Virus results (in that order, as AsyncOS does) to `v`.
    /// `true` when an action ended processing (drop or bounce): content filters do not run.
    fn scan_verdict(&self, facts: &Facts, v: &mut Verdict) -> bool {
        let mut ended = false;
        if let (Some(cfg), Some(result)) = (&self.antispam, &facts.spam) {
            let (treatment, finding, header) = match result {
                SpamResult::Positive { score } => (
                    Some((cfg.positive.action, cfg.positive.subject_prefix.as_str())),
                    Some(format!("spam positive (score {score})")),
                    Some(format!("positive score={score}")),
                ),
                SpamResult::Suspect { score } if cfg.suspect.enabled => (
                    Some((cfg.suspect.action, cfg.suspect.subject_prefix.as_str())),
                    Some(format!("spam suspect (score {score})")),
                    Some(format!("suspect score={score}")),
                ),
                // Suspected-spam scanning switched off: a suspect score is negative (AsyncOS).
                SpamResult::Suspect { score } | SpamResult::Negative { score } => {
                    (None, None, Some(format!("negative score={score}")))
                }
                SpamResult::TooBig(_) => (None, None, None),
                SpamResult::Failed(why) => (None, Some(format!("unscannable: {why}")), None),
            };
            if let Some(h) = header {
                v.replace_headers.push(("X-Rampart-Spam".into(), h));
            }
            if let Some(f) = finding {
                v.findings.push(f);
            }
            if let Some((action, prefix)) = treatment {
                ended = apply(v, action, prefix, "Anti-Spam", "Message rejected as spam");
            }
        }
        if ended {
            return true;
        }
        if let (Some(cfg), Some(result)) = (&self.antivirus, &facts.virus) {
            let (treatment, header) = match result {
                VirusResult::Infected(name) => {
                    v.findings.push(format!("virus '{name}'"));
                    (Some(&cfg.infected), format!("positive '{name}'"))
                }
                VirusResult::Clean => (None, "negative".into()),
                VirusResult::Unscannable(why) => {
                    v.findings.push(format!("unscannable: {why}"));
                    (Some(&cfg.unscannable), "unscannable".into())
                }
            };
            v.replace_headers.push(("X-Rampart-Virus".into(), header));
            if let Some(t) = treatment {
                let text = match result {
                    VirusResult::Infected(name) => {
                        format!("Message rejected: it contains a virus ({name})")
                    }
                    _ => "Message rejected: it could not be scanned for viruses".into(),
                };
                ended = apply(v, t.action, &t.subject_prefix, "Anti-Virus", &text);
            }
        }
        ended
    }

    /// Runs the policy's content filters in order and returns the verdict.
    pub fn judge(&self, facts: &Facts) -> Verdict {
        let mut v = Verdict {
            disposition: Disposition::Deliver,
            matched_filters: vec![],
            decided_by: None,
            findings: vec![],
            add_headers: vec![],
            replace_headers: vec![],
            subject_tags: vec![],
        };
        if self.email_authentication.enabled {
            for (name, result) in [
                ("SPF", facts.spf),
                ("DKIM", facts.dkim),
                ("DMARC", facts.dmarc),
            ] {
                if let Some(r) = result.filter(|r| {
                    matches!(
                        r,
                        crate::AuthResult::Fail
                            | crate::AuthResult::SoftFail
                            | crate::AuthResult::PermError
                    )
                }) {
                    v.findings.push(format!("{name} {}", r.as_str()));
                }
            }
            if facts.dmarc == Some(crate::AuthResult::Fail) {
                let action = match self.email_authentication.dmarc_action {
                    crate::DmarcAction::Honor => {
                        facts.dmarc_request.unwrap_or(crate::DmarcRequest::None)
                    }
                    crate::DmarcAction::None => crate::DmarcRequest::None,
                    crate::DmarcAction::Quarantine => crate::DmarcRequest::Quarantine,
                    crate::DmarcAction::Reject => crate::DmarcRequest::Reject,
                };
                match action {
                    crate::DmarcRequest::None => {}
                    crate::DmarcRequest::Quarantine => {
                        v.disposition = Disposition::Quarantine;
                        v.decided_by = Some("DMARC".into());
                    }
                    crate::DmarcRequest::Reject => {
                        v.disposition = Disposition::Bounce(format!(
                            "Message rejected by the DMARC policy of {}",
                            if facts.dmarc_domain.is_empty() {
                                "the sender's domain"
                            } else {
                                &facts.dmarc_domain
                            }
                        ));
                        v.decided_by = Some("DMARC".into());
                        return v;
                    }
                }
            }
        }
        if self.scan_verdict(facts, &mut v) {
            return v;
        }
        // Conditions on the body that could not see all of it must not call the message clean.
        if self.needs_body() {
            for why in &facts.unscannable {
                v.findings.push(format!("unscannable: {why}"));
            }
        }
        'filters: for f in &self.filters {
            if !f.matches(facts) {
                continue;
            }
            v.matched_filters.push(f.name.clone());
            if f.actions
                .iter()
                .any(|a| !matches!(a, FilterAction::Deliver | FilterAction::SkipRemaining))
            {
                v.findings.push(format!("content filter {}", f.name));
            }
            for a in &f.actions {
                match a {
                    FilterAction::Deliver => {}
                    FilterAction::Drop => {
                        v.disposition = Disposition::Drop;
                        v.decided_by = Some(f.name.clone());
                        break 'filters;
                    }
                    FilterAction::Bounce { reply } => {
                        v.disposition = Disposition::Bounce(reply.clone());
                        v.decided_by = Some(f.name.clone());
                        break 'filters;
                    }
                    FilterAction::Quarantine => {
                        v.disposition = Disposition::Quarantine;
                        v.decided_by = Some(f.name.clone());
                    }
                    FilterAction::AddHeader { name, value } => {
                        v.add_headers.push((name.clone(), value.clone()))
                    }
                    FilterAction::ReplaceHeader { name, value } => {
                        v.replace_headers.push((name.clone(), value.clone()))
                    }
                    FilterAction::TagSubject { tag } => v.subject_tags.push(tag.clone()),
                    FilterAction::SkipRemaining => break 'filters,
                }
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::{Combine, ContentFilter, FilterCondition};
    use crate::{MailPolicy, PolicyTable};

    fn policy_with(filters: Vec<ContentFilter>) -> CompiledPolicy {
        let mut p = MailPolicy::default_policy();
        p.content_filters = filters;
        let mut errors = Vec::new();
        let t = PolicyTable::compile(&[p], "incoming_policies", true, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        t.get(0).unwrap().clone()
    }

    fn filter(
        name: &str,
        conditions: Vec<FilterCondition>,
        actions: Vec<FilterAction>,
    ) -> ContentFilter {
        ContentFilter {
            name: name.into(),
            combine: Combine::All,
            conditions,
            actions,
        }
    }

    const MSG: &[u8] = b"Received: x\r\nSubject: Invoice 42\r\nX-Prio: high\r\n\r\nplease pay\r\n";

    #[test]
    fn clean_when_nothing_matches_or_only_deliver() {
        let facts = Facts::from_message(MSG, None);
        let p = policy_with(vec![filter(
            "none",
            vec![FilterCondition::Subject {
                regex: "lottery".into(),
            }],
            vec![FilterAction::Drop],
        )]);
        assert!(p.judge(&facts).is_clean());
        let p = policy_with(vec![filter(
            "allow",
            vec![FilterCondition::Subject {
                regex: "invoice".into(),
            }],
            vec![FilterAction::Deliver],
        )]);
        let v = p.judge(&facts);
        assert!(v.is_clean(), "an explicit deliver is not a finding");
        assert_eq!(v.matched_filters, ["allow"]);
    }

    /// Only a policy with a body or attachment condition pays for decoding the body; the
    /// header-only facts match everything else alike.
    #[test]
    fn body_is_read_only_for_policies_that_look_at_it() {
        let by_subject = policy_with(vec![filter(
            "subject",
            vec![FilterCondition::Subject {
                regex: "invoice".into(),
            }],
            vec![FilterAction::Drop],
        )]);
        let by_body = policy_with(vec![filter(
            "body",
            vec![FilterCondition::Body {
                regex: "please pay".into(),
            }],
            vec![FilterAction::Drop],
        )]);
        let by_attachment = policy_with(vec![filter(
            "attachment",
            vec![FilterCondition::AttachmentName {
                regex: "\\.exe$".into(),
            }],
            vec![FilterAction::Drop],
        )]);
        assert!(!by_subject.needs_body());
        assert!(by_body.needs_body());
        assert!(by_attachment.needs_body());
        let headers = Facts::from_headers(MSG, None);
        assert_eq!(headers.subject, "Invoice 42");
        assert_eq!(headers.size, MSG.len());
        assert!(headers.body_text.is_empty());
        assert_eq!(by_subject.judge(&headers).disposition, Disposition::Drop);
        let full = Facts::from_message(MSG, None);
        assert_eq!(full.headers, headers.headers);
        assert_eq!(by_body.judge(&full).disposition, Disposition::Drop);
    }

    /// A body the services could not read whole is never clean for a policy that reads bodies.
    #[test]
    fn unscannable_bodies_are_not_clean() {
        let by_attachment = policy_with(vec![filter(
            "exe",
            vec![FilterCondition::AttachmentName {
                regex: "\\.exe$".into(),
            }],
            vec![FilterAction::Drop],
        )]);
        let by_subject = policy_with(vec![filter(
            "subject",
            vec![FilterCondition::Subject {
                regex: "nothing-matches-this".into(),
            }],
            vec![FilterAction::Drop],
        )]);
        let mut facts = Facts::from_message(MSG, None);
        facts.unscannable = vec!["more than 1000 MIME parts".into()];
        let v = by_attachment.judge(&facts);
        assert_eq!(v.disposition, Disposition::Deliver);
        assert!(!v.is_clean());
        assert_eq!(v.findings, ["unscannable: more than 1000 MIME parts"]);
        assert!(
            by_subject.judge(&facts).is_clean(),
            "headers were read whole"
        );
    }

    #[test]
    fn each_action() {
        let facts = Facts::from_message(MSG, Some("192.0.2.1".parse().unwrap()));
        let cond = || {
            vec![FilterCondition::Header {
                name: "X-Prio".into(),
                regex: "^high$".into(),
            }]
        };
        let cases: Vec<(Vec<FilterAction>, Disposition)> = vec![
            (vec![FilterAction::Drop], Disposition::Drop),
            (
                vec![FilterAction::Bounce {
                    reply: "no invoices".into(),
                }],
                Disposition::Bounce("no invoices".into()),
            ),
            (vec![FilterAction::Quarantine], Disposition::Quarantine),
            (
                vec![FilterAction::TagSubject {
                    tag: "[EXT]".into(),
                }],
                Disposition::Deliver,
            ),
        ];
        for (actions, want) in cases {
            let v = policy_with(vec![filter("f", cond(), actions.clone())]).judge(&facts);
            assert_eq!(v.disposition, want, "{actions:?}");
            assert!(!v.is_clean(), "{actions:?} makes the message not clean");
        }
        let ip = FilterCondition::RemoteIp {
            networks: vec!["192.0.2.0/24".into()],
        };
        assert_eq!(
            policy_with(vec![filter("ip", vec![ip], vec![FilterAction::Drop])])
                .judge(&facts)
                .disposition,
            Disposition::Drop
        );
        let big = FilterCondition::SizeAtLeast { bytes: 1_000_000 };
        assert!(
            policy_with(vec![filter("big", vec![big], vec![FilterAction::Drop])])
                .judge(&facts)
                .is_clean()
        );
    }

    #[test]
    fn skip_remaining_and_any() {
        let facts = Facts::from_message(MSG, None);
        let p = policy_with(vec![
            filter(
                "skip",
                vec![FilterCondition::Body {
                    regex: "pay".into(),
                }],
                vec![FilterAction::Deliver, FilterAction::SkipRemaining],
            ),
            filter(
                "never",
                vec![FilterCondition::Body {
                    regex: "pay".into(),
                }],
                vec![FilterAction::Drop],
            ),
        ]);
        let v = p.judge(&facts);
        assert_eq!(
            (v.disposition.clone(), v.matched_filters.clone()),
            (Disposition::Deliver, vec!["skip".to_string()])
        );
        let any = ContentFilter {
            name: "any".into(),
            combine: Combine::Any,
            conditions: vec![
                FilterCondition::Subject {
                    regex: "nope".into(),
                },
                FilterCondition::Body {
                    regex: "PAY".into(),
                },
            ],
            actions: vec![FilterAction::Quarantine],
        };
        assert_eq!(
            policy_with(vec![any]).judge(&facts).disposition,
            Disposition::Quarantine
        );
    }

    #[test]
    fn header_changes() {
        let facts = Facts::from_message(MSG, None);
        let p = policy_with(vec![filter(
            "mark",
            vec![FilterCondition::Subject {
                regex: "invoice".into(),
            }],
            vec![
                FilterAction::TagSubject {
                    tag: "[EXTERNAL]".into(),
                },
                FilterAction::AddHeader {
                    name: "X-Rampart".into(),
                    value: "checked".into(),
                },
                FilterAction::ReplaceHeader {
                    name: "X-Prio".into(),
                    value: "normal".into(),
                },
            ],
        )]);
        let out = String::from_utf8(p.judge(&facts).apply(MSG.to_vec())).unwrap();
        assert_eq!(
            out,
            "Received: x\r\nSubject: [EXTERNAL] Invoice 42\r\nX-Prio: normal\r\nX-Rampart: checked\r\n\r\nplease pay\r\n"
        );
    }

    #[test]
    fn invalid_filters_are_refused_with_their_place() {
        let mut p = MailPolicy::default_policy();
        p.content_filters = vec![filter(
            "bad",
            vec![FilterCondition::Subject { regex: "(".into() }],
            vec![FilterAction::Drop],
        )];
        let mut errors = Vec::new();
        PolicyTable::compile(&[p], "incoming_policies", true, &mut errors);
        assert!(
            errors[0].to_string().starts_with(
                "incoming_policies[0] (DEFAULT).content_filters[0] (bad): invalid regex \"(\""
            ),
            "{errors:?}"
        );
    }

    fn scanned(spam: Option<SpamResult>, virus: Option<VirusResult>) -> Facts {
        let mut facts = Facts::from_message(MSG, None);
        facts.spam = spam;
        facts.virus = virus;
        facts
    }

    fn score(s: &str) -> String {
        s.into()
    }

    /// Each spam outcome meets the action the policy sets for it, and only a negative answer
    /// leaves the message clean (the condition for a journal copy).
    #[test]
    fn spam_outcomes_and_their_actions() {
        let p = policy_with(vec![]);
        let positive = scanned(
            Some(SpamResult::Positive {
                score: score("15.00"),
            }),
            None,
        );
        let v = p.judge(&positive);
        assert_eq!(v.disposition, Disposition::Quarantine, "AsyncOS default");
        assert_eq!(v.decided_by.as_deref(), Some("Anti-Spam"));
        assert_eq!(v.findings, ["spam positive (score 15.00)"]);
        assert_eq!(
            v.replace_headers,
            [(
                "X-Rampart-Spam".to_owned(),
                "positive score=15.00".to_owned()
            )]
        );
        let suspect = scanned(
            Some(SpamResult::Suspect {
                score: score("6.10"),
            }),
            None,
        );
        let v = p.judge(&suspect);
        assert_eq!(v.disposition, Disposition::Deliver);
        assert_eq!(v.subject_tags, ["[SUSPECTED SPAM]"]);
        assert!(!v.is_clean(), "suspected spam is never journaled");
        let negative = scanned(
            Some(SpamResult::Negative {
                score: score("0.20"),
            }),
            None,
        );
        let v = p.judge(&negative);
        assert!(v.is_clean());
        assert_eq!(v.replace_headers[0].1, "negative score=0.20");
        // Too big to scan for spam: not spam, as AsyncOS treats it; a failed engine is not clean.
        assert!(
            p.judge(&scanned(Some(SpamResult::TooBig("big".into())), None))
                .is_clean()
        );
        let failed = p.judge(&scanned(Some(SpamResult::Failed("down".into())), None));
        assert_eq!(failed.disposition, Disposition::Deliver);
        assert_eq!(failed.findings, ["unscannable: down"]);

        for (action, want) in [
            (ScanAction::Drop, Disposition::Drop),
            (
                ScanAction::Bounce,
                Disposition::Bounce("Message rejected as spam".into()),
            ),
            (ScanAction::Deliver, Disposition::Deliver),
        ] {
            let mut mp = MailPolicy::default_policy();
            mp.antispam.positive.action = action;
            let p = compile_one(mp);
            let v = p.judge(&positive);
            assert_eq!(v.disposition, want, "{action:?}");
            assert!(!v.is_clean());
            if action == ScanAction::Deliver {
                assert_eq!(v.subject_tags, ["[SPAM]"]);
            }
        }
        // Suspected-spam scanning switched off: a suspect score counts as negative.
        let mut mp = MailPolicy::default_policy();
        mp.antispam.suspect.enabled = false;
        let v = compile_one(mp).judge(&suspect);
        assert!(v.is_clean());
        assert_eq!(v.replace_headers[0].1, "negative score=6.10");
    }

    #[test]
    fn virus_outcomes_and_their_actions() {
        let p = policy_with(vec![]);
        let infected = scanned(
            None,
            Some(VirusResult::Infected("Eicar-Test-Signature".into())),
        );
        let v = p.judge(&infected);
        assert_eq!(v.disposition, Disposition::Drop, "AsyncOS default");
        assert_eq!(v.findings, ["virus 'Eicar-Test-Signature'"]);
        assert_eq!(
            v.replace_headers,
            [(
                "X-Rampart-Virus".to_owned(),
                "positive 'Eicar-Test-Signature'".to_owned()
            )]
        );
        let unscannable = scanned(None, Some(VirusResult::Unscannable("too big".into())));
        let v = p.judge(&unscannable);
        assert_eq!(v.disposition, Disposition::Deliver);
        assert_eq!(v.subject_tags, ["[WARNING: A/V UNSCANNABLE]"]);
        assert!(!v.is_clean());
        let v = p.judge(&scanned(None, Some(VirusResult::Clean)));
        assert!(v.is_clean());
        assert_eq!(v.replace_headers[0].1, "negative");
        // Spam is looked at first; a virus drop still wins over a spam quarantine.
        let both = scanned(
            Some(SpamResult::Positive {
                score: score("20.00"),
            }),
            Some(VirusResult::Infected("X".into())),
        );
        let v = p.judge(&both);
        assert_eq!(v.disposition, Disposition::Drop);
        assert_eq!(v.decided_by.as_deref(), Some("Anti-Virus"));
        // A disabled service ignores the engine's answer; so does a policy whose engine result
        // is missing (no engine configured).
        let mut mp = MailPolicy::default_policy();
        mp.antivirus.mode = crate::ServiceMode::Disabled;
        assert!(compile_one(mp).judge(&infected).is_clean());
        assert!(p.judge(&scanned(None, None)).is_clean());
    }

    /// `(use default)` takes DEFAULT's whole setting; DEFAULT itself must choose.
    #[test]
    fn services_inherit_from_default() {
        let mut default = MailPolicy::default_policy();
        default.antispam.positive.action = ScanAction::Drop;
        let inherit = MailPolicy::new("inherit".into(), vec![], vec!["@a.test".into()]);
        let mut off = MailPolicy::new("off".into(), vec![], vec!["@b.test".into()]);
        off.antispam.mode = crate::ServiceMode::Disabled;
        let mut errors = Vec::new();
        let t = PolicyTable::compile(
            &[inherit, off, default],
            "incoming_policies",
            true,
            &mut errors,
        );
        assert!(errors.is_empty(), "{errors:?}");
        let positive = scanned(
            Some(SpamResult::Positive {
                score: score("15.00"),
            }),
            None,
        );
        assert_eq!(
            t.get(0).unwrap().judge(&positive).disposition,
            Disposition::Drop
        );
        assert!(t.get(1).unwrap().judge(&positive).is_clean());
        let mut bad = MailPolicy::default_policy();
        bad.antivirus.mode = crate::ServiceMode::Default;
        bad.antispam.positive.subject_prefix = "[SPAM]\r\nBcc: x@y".into();
        let mut errors = Vec::new();
        PolicyTable::compile(&[bad], "incoming_policies", true, &mut errors);
        let joined = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(joined.contains("DEFAULT cannot use the default settings for Anti-Virus"));
        assert!(joined.contains("subject prefix must be one line"));
    }

    /// Settings written before the services existed: DEFAULT scans, other policies inherit.
    #[test]
    fn services_left_out_take_their_defaults() {
        let default: MailPolicy = serde_json::from_value(serde_json::json!({"name": "DEFAULT",
            "tdc": {"mode": "no"}}))
        .unwrap();
        assert_eq!(default.antispam.mode, crate::ServiceMode::Enabled);
        assert_eq!(default.antivirus.mode, crate::ServiceMode::Enabled);
        let other: MailPolicy =
            serde_json::from_value(serde_json::json!({"name": "x", "recipients": ["@x.test"]}))
                .unwrap();
        assert_eq!(other.antispam.mode, crate::ServiceMode::Default);
        let unknown = serde_json::from_value::<MailPolicy>(
            serde_json::json!({"name": "x", "antispam": {"mode": "on"}}),
        );
        assert!(unknown.is_err());
    }

    fn compile_one(p: MailPolicy) -> CompiledPolicy {
        let mut errors = Vec::new();
        let t = PolicyTable::compile(&[p], "incoming_policies", true, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        t.get(0).unwrap().clone()
    }

    #[test]
    fn each_kind_of_finding_has_a_threat_category() {
        let v = Verdict {
            disposition: Disposition::Drop,
            matched_filters: vec![],
            decided_by: None,
            findings: vec![
                "virus 'Eicar-Test-Signature'".into(),
                "spam positive (score 15.00)".into(),
                "spam suspect (score 6.10)".into(),
                "content filter block_exe".into(),
                "unscannable: more than 1000 MIME parts".into(),
                "DMARC fail".into(),
            ],
            add_headers: vec![],
            replace_headers: vec![],
            subject_tags: vec![],
        };
        assert_eq!(
            v.threats(),
            [
                "Virus: Eicar-Test-Signature",
                "Spam",
                "Suspected spam",
                "Content filter: block_exe",
                "Unscannable",
                "DMARC fail"
            ]
        );
    }
}
