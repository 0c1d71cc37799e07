//! The ordered table of mail policies and recipient splitting (SPEC §3).

use rampart_smtp::Mailbox;
use rampart_tdc::{TdcChoice, TdcMode};
use serde::{Deserialize, Serialize};

use crate::Problem;
use crate::filters::{self, CompiledFilter, ContentFilter};
use crate::patterns::{self, Pattern};
use crate::services::{Antispam, Antivirus, ServiceMode};

/// The policy that always exists, is always last and matches everything.
pub const DEFAULT_POLICY: &str = "DEFAULT";

/// One mail policy as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredPolicy")]
pub struct MailPolicy {
    pub name: String,
    /// Sender patterns; empty = any sender.
    #[serde(default)]
    pub senders: Vec<String>,
    /// Recipient patterns; empty = any recipient.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Content filters, in order.
    #[serde(default)]
    pub content_filters: Vec<ContentFilter>,
    /// SPF, DKIM and DMARC verification.
    pub email_authentication: EmailAuthentication,
    /// Anti-Spam (SPEC §3a).
    pub antispam: Antispam,
    /// Anti-Virus (SPEC §3a).
    pub antivirus: Antivirus,
    /// The Threat Defense Connector choice (incoming policies only).
    pub tdc: TdcChoice,
}

/// A policy as read from storage, a settings file or the API. A service left out takes its
/// default, which for DEFAULT is `enabled` (settings saved before a service existed, and a
/// DEFAULT written without it, scan as a new appliance does) and for the others `(use default)`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredPolicy {
    name: String,
    #[serde(default)]
    senders: Vec<String>,
    #[serde(default)]
    recipients: Vec<String>,
    #[serde(default)]
    content_filters: Vec<ContentFilter>,
    #[serde(default)]
    email_authentication: EmailAuthentication,
    antispam: Option<Antispam>,
    antivirus: Option<Antivirus>,
    #[serde(default)]
    tdc: TdcChoice,
}

impl From<StoredPolicy> for MailPolicy {
    fn from(p: StoredPolicy) -> MailPolicy {
        let missing = if p.name == DEFAULT_POLICY {
            ServiceMode::Enabled
        } else {
            ServiceMode::Default
        };
        MailPolicy {
            antispam: p.antispam.unwrap_or_else(|| Antispam::with_mode(missing)),
            antivirus: p.antivirus.unwrap_or_else(|| Antivirus::with_mode(missing)),
            name: p.name,
            senders: p.senders,
            recipients: p.recipients,
            content_filters: p.content_filters,
            email_authentication: p.email_authentication,
            tdc: p.tdc,
        }
    }
}

/// The email authentication service of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailAuthentication {
    /// Verify SPF, DKIM and DMARC for this policy's mail (off by default: it costs DNS lookups
    /// before `250`; turn it on for policies that receive mail from the internet).
    #[serde(default)]
    pub enabled: bool,
    /// What a DMARC failure does.
    #[serde(default)]
    pub dmarc_action: DmarcAction,
}

/// The action on a DMARC failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DmarcAction {
    /// Do what the sender domain's `p=` asks (AsyncOS's default).
    #[default]
    Honor,
    None,
    Quarantine,
    Reject,
}

impl MailPolicy {
    /// A new policy above DEFAULT: no content filters, every service `(use default)`.
    pub fn new(name: String, senders: Vec<String>, recipients: Vec<String>) -> MailPolicy {
        MailPolicy {
            name,
            senders,
            recipients,
            content_filters: vec![],
            email_authentication: EmailAuthentication::default(),
            antispam: Antispam::default(),
            antivirus: Antivirus::default(),
            tdc: TdcChoice::default(),
        }
    }

    /// The DEFAULT policy of a new appliance: matches all, no filters, Anti-Spam and Anti-Virus
    /// enabled (they scan once an engine is configured), connector off (`No`).
    pub fn default_policy() -> MailPolicy {
        MailPolicy {
            name: DEFAULT_POLICY.into(),
            senders: vec![],
            recipients: vec![],
            content_filters: vec![],
            email_authentication: EmailAuthentication::default(),
            antispam: Antispam::with_mode(ServiceMode::Enabled),
            antivirus: Antivirus::with_mode(ServiceMode::Enabled),
            tdc: TdcChoice {
                mode: TdcMode::No,
                intake_address: String::new(),
            },
        }
    }
}

/// A validated policy, ready to match.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    pub name: String,
    senders: Vec<Pattern>,
    recipients: Vec<Pattern>,
    pub(crate) filters: Vec<CompiledFilter>,
    pub email_authentication: EmailAuthentication,
    /// The Anti-Spam setting in force, `(use default)` resolved; `None` when disabled.
    pub antispam: Option<Antispam>,
    /// The Anti-Virus setting in force, `(use default)` resolved; `None` when disabled.
    pub antivirus: Option<Antivirus>,
    pub tdc: TdcChoice,
}

/// The ordered policies of one direction, DEFAULT last.
#[derive(Debug, Clone)]
pub struct PolicyTable {
    policies: Vec<CompiledPolicy>,
}

impl PolicyTable {
    /// Validates `policies` (named `table` in messages, e.g. `incoming_policies`).
    pub fn compile(
        policies: &[MailPolicy],
        table: &str,
        incoming: bool,
        errors: &mut Vec<Problem>,
    ) -> PolicyTable {
        let mut out = Vec::with_capacity(policies.len());
        match policies.last() {
            Some(p) if p.name == DEFAULT_POLICY => {}
            _ => errors.push(Problem::new(
                table.to_string(),
                "the DEFAULT policy must exist and be last",
            )),
        }
        for (i, p) in policies.iter().enumerate() {
            let at = format!("{table}[{i}] ({})", p.name);
            let name_ok = !p.name.is_empty()
                && p.name.len() <= 64
                && p.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-. ".contains(&b))
                && p.name.trim() == p.name;
            if !name_ok {
                errors.push(Problem::new(
                    at.to_string(),
                    "name must be 1-64 letters, digits, spaces, '_', '-' or '.'",
                ));
            }
            if policies
                .iter()
                .take(i)
                .any(|o| o.name.eq_ignore_ascii_case(&p.name))
            {
                errors.push(Problem::new(
                    at.to_string(),
                    format!("a policy named {:?} exists already", p.name),
                ));
            }
            let is_default = p.name == DEFAULT_POLICY;
            if is_default && i + 1 != policies.len() {
                errors.push(Problem::new(
                    at.to_string(),
                    "DEFAULT must be the last policy",
                ));
            }
            if is_default && (!p.senders.is_empty() || !p.recipients.is_empty()) {
                errors.push(Problem::new(
                    at.to_string(),
                    "DEFAULT matches every message; it takes no sender or recipient patterns",
                ));
            }
            if !is_default && p.senders.is_empty() && p.recipients.is_empty() {
                errors.push(Problem::new(at.to_string(), "give at least one sender or recipient pattern (DEFAULT already matches everything)"));
            }
            let mut parse = |list: &[String], what: &str| -> Vec<Pattern> {
                list.iter()
                    .filter_map(|s| match Pattern::parse(s) {
                        Ok(p) => Some(p),
                        Err(e) => {
                            errors
                                .push(Problem::new(at.to_string(), format!("{what} pattern {e}")));
                            None
                        }
                    })
                    .collect()
            };
            let senders = parse(&p.senders, "sender");
            let recipients = parse(&p.recipients, "recipient");
            if let Some(e) = rampart_tdc::choice::validate_choice(&p.tdc, is_default, incoming) {
                errors.push(Problem::new(at.clone(), e));
            }
            if is_default {
                for (mode, service) in [
                    (p.antispam.mode, "Anti-Spam"),
                    (p.antivirus.mode, "Anti-Virus"),
                ] {
                    if mode == ServiceMode::Default {
                        errors.push(Problem::new(at.to_string(), format!("DEFAULT cannot use the default settings for {service}; choose enabled or disabled")));
                    }
                }
            }
            p.antispam.validate(&at, errors);
            p.antivirus.validate(&at, errors);
            let filters = filters::compile(&p.content_filters, &at, errors);
            out.push(CompiledPolicy {
                name: p.name.clone(),
                senders,
                recipients,
                filters,
                email_authentication: p.email_authentication.clone(),
                antispam: None,
                antivirus: None,
                tdc: p.tdc.clone(),
            });
        }
        // `(use default)` takes DEFAULT's whole setting, actions included.
        if let Some(default) = policies.last() {
            for (compiled, p) in out.iter_mut().zip(policies) {
                let spam = match p.antispam.mode {
                    ServiceMode::Default => &default.antispam,
                    _ => &p.antispam,
                };
                compiled.antispam = (spam.mode == ServiceMode::Enabled).then(|| spam.clone());
                let virus = match p.antivirus.mode {
                    ServiceMode::Default => &default.antivirus,
                    _ => &p.antivirus,
                };
                compiled.antivirus = (virus.mode == ServiceMode::Enabled).then(|| virus.clone());
            }
        }
        PolicyTable { policies: out }
    }

    pub fn policies(&self) -> &[CompiledPolicy] {
        &self.policies
    }

    pub fn get(&self, idx: usize) -> Option<&CompiledPolicy> {
        self.policies.get(idx)
    }

    /// The first policy whose sender AND recipient conditions match (DEFAULT at the latest).
    pub fn policy_for(&self, sender: Option<&Mailbox>, rcpt: &Mailbox) -> usize {
        self.policies
            .iter()
            .position(|p| {
                patterns::any_matches(&p.senders, sender)
                    && patterns::any_matches(&p.recipients, Some(rcpt))
            })
            .unwrap_or(self.policies.len().saturating_sub(1))
    }

    /// Groups recipient indexes by policy, in order of each group's first recipient
    /// ("splintering": each group becomes its own MID).
    pub fn split(&self, sender: Option<&Mailbox>, rcpts: &[Mailbox]) -> Vec<(usize, Vec<usize>)> {
        let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
        for (i, r) in rcpts.iter().enumerate() {
            let p = self.policy_for(sender, r);
            match groups.iter_mut().find(|(idx, _)| *idx == p) {
                Some((_, list)) => list.push(i),
                None => groups.push((p, vec![i])),
            }
        }
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, senders: &[&str], recipients: &[&str]) -> MailPolicy {
        MailPolicy::new(
            name.into(),
            senders.iter().map(|s| s.to_string()).collect(),
            recipients.iter().map(|s| s.to_string()).collect(),
        )
    }

    fn table(policies: Vec<MailPolicy>) -> PolicyTable {
        let mut errors = Vec::new();
        let t = PolicyTable::compile(&policies, "incoming_policies", true, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        t
    }

    fn m(s: &str) -> Mailbox {
        Mailbox::parse(s).unwrap()
    }

    #[test]
    fn first_match_on_sender_and_recipient() {
        let t = table(vec![
            policy("finance", &[], &["@finance.example.com"]),
            policy("vip-from-partner", &["@partner.test"], &["ceo@example.com"]),
            policy("subs", &[], &["@.example.com"]),
            policy("postmasters", &[], &["postmaster@"]),
            MailPolicy::default_policy(),
        ]);
        let cases = [
            ("a@x.test", "u@finance.example.com", "finance"),
            ("a@partner.test", "CEO@example.com", "vip-from-partner"),
            ("a@other.test", "ceo@example.com", "DEFAULT"),
            ("a@x.test", "u@hr.example.com", "subs"),
            ("a@x.test", "postmaster@example.com", "postmasters"),
            ("a@x.test", "u@example.com", "DEFAULT"),
        ];
        for (sender, rcpt, want) in cases {
            let idx = t.policy_for(Some(&m(sender)), &m(rcpt));
            assert_eq!(t.get(idx).unwrap().name, want, "{sender} -> {rcpt}");
        }
        // The null sender only matches policies without sender patterns.
        let idx = t.policy_for(None, &m("ceo@example.com"));
        assert_eq!(t.get(idx).unwrap().name, "DEFAULT");
    }

    #[test]
    fn splitting_groups_recipients_by_policy() {
        let t = table(vec![
            policy("finance", &[], &["@finance.example.com"]),
            MailPolicy::default_policy(),
        ]);
        let rcpts = [
            m("a@example.com"),
            m("b@finance.example.com"),
            m("c@example.com"),
            m("d@finance.example.com"),
        ];
        assert_eq!(
            t.split(None, &rcpts),
            vec![(1, vec![0, 2]), (0, vec![1, 3])]
        );
    }

    #[test]
    fn invalid_tables_name_each_problem() {
        let mut custom = policy("c", &[], &["@x.test"]);
        custom.tdc = TdcChoice {
            mode: TdcMode::Custom,
            intake_address: "not an address".into(),
        };
        let mut default_inherits = MailPolicy::default_policy();
        default_inherits.tdc.mode = TdcMode::Default;
        let policies = vec![
            policy("dup", &[], &["@a.test"]),
            policy("DUP", &[], &["bad pattern"]),
            policy("empty", &[], &[]),
            custom,
            default_inherits,
        ];
        let mut errors = Vec::new();
        PolicyTable::compile(&policies, "incoming_policies", true, &mut errors);
        let joined = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        for want in [
            "incoming_policies[1] (DUP): a policy named \"DUP\" exists already",
            "incoming_policies[1] (DUP): recipient pattern \"bad pattern\" is not a pattern",
            "incoming_policies[2] (empty): give at least one sender or recipient pattern",
            "incoming_policies[3] (c): a custom Message Intake Address must be a valid address",
            "incoming_policies[4] (DEFAULT): DEFAULT cannot use the default settings",
        ] {
            assert!(joined.contains(want), "missing {want:?} in\n{joined}");
        }
        let mut errors = Vec::new();
        PolicyTable::compile(
            &[policy("x", &[], &["@a.test"])],
            "incoming_policies",
            true,
            &mut errors,
        );
        assert!(errors.iter().any(|e| {
            e.to_string()
                .contains("DEFAULT policy must exist and be last")
        }));
    }
}
