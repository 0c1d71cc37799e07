//! Runtime settings: the tables an administrator edits while the appliance runs (HAT, RAT, and
//! the tables later features add), their validation, and the TOML import/export format of
//! `saveconfig` / `loadconfig`.
//!
//! Settings are validated once into a [`Snapshot`] — patterns parsed, lookups ready — that the
//! mail path reads without locks through [`SharedSettings`]; a change builds a new snapshot and
//! swaps it in atomically, so a session sees either the old tables or the new ones, never a mix.

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub mod alerts;
pub mod delivery;
mod domains;
pub mod hat;
pub mod rat;
pub mod routes;

pub use alerts::{AlertRecipient, AlertSettings, Severity};
pub use delivery::{BounceProfile, DestinationControl, TlsPolicy};
pub use hat::{FlowLimits, FlowPolicy, HatMatch, SenderGroup};
pub use rampart_policy::{MailPolicy, PolicyTable, Problem};
pub use rampart_tdc::{TdcChoice, TdcMode, TdcSettings};
pub use rat::{RatAction, RatEntry};
pub use routes::{RouteHost, SmtpRoute};

/// Validation problems, each keyed by the entry it is about and saying what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsErrors(pub Vec<Problem>);

impl std::fmt::Display for SettingsErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SettingsErrors {}

/// All runtime settings, as stored and as exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Host access table: sender groups in order, first match wins.
    pub hat: Vec<SenderGroup>,
    /// Recipient access table: accepted recipient domains.
    pub rat: Vec<RatEntry>,
    /// SMTP routes: destination domains sent to fixed hosts instead of their MX.
    pub smtp_routes: Vec<SmtpRoute>,
    /// Per-destination connection limits and TLS.
    pub destination_controls: Vec<DestinationControl>,
    /// Retry timing and expiry of normal deliveries.
    pub bounce_profile: BounceProfile,
    /// Incoming mail policies (mail from non-RELAY clients), DEFAULT last.
    pub incoming_policies: Vec<MailPolicy>,
    /// Outgoing mail policies (mail from RELAY clients), DEFAULT last.
    pub outgoing_policies: Vec<MailPolicy>,
    /// The global Threat Defense Connector setting.
    pub tdc: TdcSettings,
    /// Alert recipients, webhook and thresholds (settings stored before alerts existed have
    /// none).
    #[serde(default)]
    pub alerts: AlertSettings,
    /// The HATs of the listeners besides `[smtp]`'s (`[[listener]]`), by listener name.
    #[serde(default)]
    pub listener_hats: Vec<ListenerHat>,
}

/// The HAT a `[[listener]]` runs with until it has one of its own: loopback clients only.
pub fn loopback_only_hat() -> Vec<SenderGroup> {
    hat::loopback_only()
}

/// The HAT of one `[[listener]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerHat {
    pub listener: String,
    pub hat: Vec<SenderGroup>,
}

impl Default for Settings {
    /// A fresh appliance: loopback and everyone else ACCEPT (inbound only), nobody relays, and no
    /// recipient domain is accepted until the administrator adds one — never an open relay.
    fn default() -> Settings {
        Settings {
            hat: hat::default_table(),
            rat: Vec::new(),
            smtp_routes: Vec::new(),
            destination_controls: vec![DestinationControl::default_entry()],
            bounce_profile: BounceProfile::default(),
            incoming_policies: vec![MailPolicy::default_policy()],
            outgoing_policies: vec![MailPolicy::default_policy()],
            tdc: TdcSettings::default(),
            alerts: AlertSettings::default(),
            listener_hats: Vec::new(),
        }
    }
}

/// The names of the settings tables, as used in storage and in the export file.
pub const TABLES: &[&str] = &[
    "hat",
    "rat",
    "smtp_routes",
    "destination_controls",
    "bounce_profile",
    "incoming_policies",
    "outgoing_policies",
    "tdc",
    "alerts",
    "listener_hats",
];

/// A table as the menus name it, for messages about it.
pub fn table_title(table: &str) -> &str {
    match table {
        "hat" => "The HAT",
        "rat" => "The Recipient Access Table",
        "smtp_routes" => "SMTP Routes",
        "destination_controls" => "Destination Controls",
        "bounce_profile" => "The bounce profile",
        "tdc" => "The Threat Defense Connector settings",
        "incoming_policies" => "Incoming Mail Policies",
        "outgoing_policies" => "Outgoing Mail Policies",
        "alerts" => "The alert settings",
        "listener_hats" => "The listeners' HATs",
        other => other,
    }
}

impl Settings {
    /// Validates every table and builds the snapshot the mail path uses.
    pub fn compile(self) -> Result<Snapshot, SettingsErrors> {
        let mut errors = Vec::new();
        let hat = hat::compile(&self.hat, &mut errors);
        let mut listener_hats = Vec::new();
        for (k, l) in self.listener_hats.iter().enumerate() {
            let at = format!("listener_hats[{k}]");
            if l.listener.trim().is_empty() {
                errors.push(Problem::new(at.clone(), "needs the listener's name"));
            }
            if self
                .listener_hats
                .iter()
                .take(k)
                .any(|o| o.listener.eq_ignore_ascii_case(&l.listener))
            {
                errors.push(Problem::new(
                    at.clone(),
                    format!("listener {:?} has a HAT already", l.listener),
                ));
            }
            let table = hat::compile_at(&l.hat, &format!("{at}.hat"), &mut errors);
            listener_hats.push((l.listener.clone(), table));
        }
        let loopback_only = hat::compile(&hat::loopback_only(), &mut errors);
        let rat = rat::compile(&self.rat, &mut errors);
        let routes = routes::compile(&self.smtp_routes, &mut errors);
        let (default_control, controls) =
            delivery::compile_controls(&self.destination_controls, &mut errors);
        delivery::validate_profile(&self.bounce_profile, &mut errors);
        let incoming = PolicyTable::compile(
            &self.incoming_policies,
            "incoming_policies",
            true,
            &mut errors,
        );
        let outgoing = PolicyTable::compile(
            &self.outgoing_policies,
            "outgoing_policies",
            false,
            &mut errors,
        );
        alerts::validate(&self.alerts, &mut errors);
        if let Some(e) = rampart_tdc::choice::validate_settings(&self.tdc) {
            errors.push(Problem::new("tdc", e));
        }
        if errors.is_empty() {
            Ok(Snapshot {
                settings: self,
                hat,
                listener_hats,
                loopback_only,
                rat,
                routes,
                default_control,
                controls,
                incoming,
                outgoing,
            })
        } else {
            Err(SettingsErrors(errors))
        }
    }

    /// Settings that are valid but most likely not what the administrator wants, for the pages
    /// to show before and after a commit.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if rat::accepts_all(&self.rat) {
            out.push(
                "The Recipient Access Table accepts ALL domains: every client the HAT accepts \
                 can send mail through this gateway to any domain on the internet, which makes \
                 it an open relay. List your own domains instead, and keep ALL only to Reject."
                    .to_owned(),
            );
        }
        out
    }

    /// Reads one table from its JSON form (storage and the REST API), replacing the current one.
    pub fn set_table_json(
        &mut self,
        table: &str,
        value: &serde_json::Value,
    ) -> Result<(), SettingsErrors> {
        let one = |e: Problem| SettingsErrors(vec![e]);
        match table {
            "hat" => self.hat = from_json(table, value).map_err(one)?,
            "rat" => self.rat = from_json(table, value).map_err(one)?,
            "smtp_routes" => self.smtp_routes = from_json(table, value).map_err(one)?,
            "destination_controls" => {
                self.destination_controls = from_json(table, value).map_err(one)?
            }
            "bounce_profile" => self.bounce_profile = from_json(table, value).map_err(one)?,
            "incoming_policies" => self.incoming_policies = from_json(table, value).map_err(one)?,
            "outgoing_policies" => self.outgoing_policies = from_json(table, value).map_err(one)?,
            "tdc" => self.tdc = from_json(table, value).map_err(one)?,
            "alerts" => self.alerts = from_json(table, value).map_err(one)?,
            "listener_hats" => self.listener_hats = from_json(table, value).map_err(one)?,
            _ => {
                let message = format!("unknown settings table `{table}`");
                return Err(one(Problem::new("", message)));
            }
        }
        Ok(())
    }

    /// One table in JSON form.
    pub fn table_json(&self, table: &str) -> Option<serde_json::Value> {
        match table {
            "hat" => serde_json::to_value(&self.hat).ok(),
            "rat" => serde_json::to_value(&self.rat).ok(),
            "smtp_routes" => serde_json::to_value(&self.smtp_routes).ok(),
            "destination_controls" => serde_json::to_value(&self.destination_controls).ok(),
            "bounce_profile" => serde_json::to_value(&self.bounce_profile).ok(),
            "incoming_policies" => serde_json::to_value(&self.incoming_policies).ok(),
            "outgoing_policies" => serde_json::to_value(&self.outgoing_policies).ok(),
            "tdc" => serde_json::to_value(&self.tdc).ok(),
            "alerts" => serde_json::to_value(&self.alerts).ok(),
            "listener_hats" => serde_json::to_value(&self.listener_hats).ok(),
            _ => None,
        }
    }

    /// The export file of `saveconfig`.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string(self).unwrap_or_default();
        format!(
            "# Rampart runtime settings, written by `rampart saveconfig`.\n\
             # Apply with `rampart loadconfig FILE`: the whole file is validated, then applied at once.\n\n{body}"
        )
    }

    /// Parses an export file, reporting every problem found (missing tables keep their defaults).
    pub fn from_toml(text: &str) -> Result<Settings, SettingsErrors> {
        let mut settings = Settings::default();
        settings.apply_toml(text)?;
        Ok(settings)
    }

    /// Replaces the tables an export file names, reporting every problem found; returns the
    /// names of the tables the file carried. On error `self` may be half-changed: apply to a
    /// copy.
    pub fn apply_toml(&mut self, text: &str) -> Result<Vec<String>, SettingsErrors> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let message = format!("not valid TOML: {}", e.to_string().trim());
            SettingsErrors(vec![Problem::new("", message)])
        })?;
        let mut errors = Vec::new();
        let mut named = Vec::new();
        for (key, value) in table {
            let json = match serde_json::to_value(&value) {
                Ok(j) => j,
                Err(e) => {
                    errors.push(Problem::new(key, e.to_string()));
                    continue;
                }
            };
            match self.set_table_json(&key, &json) {
                Ok(()) => named.push(key),
                Err(e) => errors.extend(e.0),
            }
        }
        // Semantic checks, so that loadconfig reports everything in one pass.
        if let Err(e) = self.clone().compile() {
            errors.extend(e.0);
        }
        if errors.is_empty() {
            Ok(named)
        } else {
            Err(SettingsErrors(errors))
        }
    }
}

/// Deserialises a table with the path of the offending field in the error.
fn from_json<T: serde::de::DeserializeOwned>(
    table: &str,
    value: &serde_json::Value,
) -> Result<T, Problem> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        Problem::new(format!("{table}{path}"), e.inner().to_string())
    })
}

/// Validated settings with their lookups prepared.
#[derive(Debug)]
pub struct Snapshot {
    settings: Settings,
    hat: Vec<hat::Compiled>,
    /// Each `[[listener]]`'s HAT, by name.
    listener_hats: Vec<(String, Vec<hat::Compiled>)>,
    /// The HAT of a listener that has none yet.
    loopback_only: Vec<hat::Compiled>,
    rat: Vec<rat::Compiled>,
    routes: Vec<routes::Compiled>,
    default_control: DestinationControl,
    controls: Vec<delivery::CompiledControl>,
    incoming: PolicyTable,
    outgoing: PolicyTable,
}

impl Snapshot {
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The sender group and mail flow policy for a connecting client (first match);
    /// `verified_name` is its forward-confirmed reverse DNS name, if any.
    pub fn classify(&self, ip: IpAddr, verified_name: Option<&str>) -> HatMatch {
        hat::classify(&self.hat, ip, verified_name)
    }

    /// The same on a listener: `None` is `[smtp]`'s (the `hat` table), a name a `[[listener]]`
    /// (its own HAT, or loopback only while it has none).
    pub fn classify_on(
        &self,
        listener: Option<&str>,
        ip: IpAddr,
        verified_name: Option<&str>,
    ) -> HatMatch {
        let Some(name) = listener else {
            return self.classify(ip, verified_name);
        };
        let table = self
            .listener_hats
            .iter()
            .find(|(l, _)| l.eq_ignore_ascii_case(name))
            .map_or(&self.loopback_only, |(_, t)| t);
        hat::classify(table, ip, verified_name)
    }

    /// Whether mail to `domain` is accepted for delivery (first matching RAT entry).
    pub fn rat_accepts(&self, domain: &str) -> bool {
        rat::accepts(&self.rat, domain)
    }

    /// The SMTP route for a destination domain, if one applies.
    pub fn route(&self, domain: &str) -> Option<&[RouteHost]> {
        routes::lookup(&self.routes, domain)
    }

    /// The destination controls that apply to a domain.
    pub fn destination(&self, domain: &str) -> &DestinationControl {
        domains::most_specific(
            self.controls.iter().map(|c| (&c.pattern, &c.control)),
            domain,
        )
        .unwrap_or(&self.default_control)
    }

    pub fn bounce_profile(&self) -> &BounceProfile {
        &self.settings.bounce_profile
    }

    /// The policy table for mail from RELAY clients (`outgoing`) or everyone else.
    pub fn policies(&self, outgoing: bool) -> &PolicyTable {
        if outgoing {
            &self.outgoing
        } else {
            &self.incoming
        }
    }

    /// The intake address an incoming policy's clean messages are journaled to, if any.
    pub fn journal_address(&self, incoming_policy: usize) -> Option<String> {
        let policy = self.incoming.get(incoming_policy)?;
        let default = self.incoming.policies().last()?;
        rampart_tdc::choice::resolve(&self.settings.tdc, &policy.tdc, &default.tdc)
    }

    /// [`Snapshot::journal_address`] with the reason, for Trace.
    pub fn explain_journal(&self, incoming_policy: usize) -> (Option<String>, String) {
        use rampart_tdc::choice::{Named, explain};
        let policies = self.incoming.policies();
        let (Some(policy), Some(default)) = (policies.get(incoming_policy), policies.last()) else {
            return (None, "no such policy".into());
        };
        fn named(p: &rampart_policy::CompiledPolicy) -> Named<'_> {
            Named {
                name: &p.name,
                choice: &p.tdc,
            }
        }
        let own = (incoming_policy + 1 != policies.len()).then(|| named(policy));
        explain(&self.settings.tdc, own, named(default))
    }

    /// The Threat Defense Connector column label of a policy's mode.
    pub fn tdc_label(&self, mode: TdcMode) -> &'static str {
        rampart_tdc::choice::label(&self.settings.tdc, mode)
    }
}

/// The current snapshot, swapped atomically on change.
pub type SharedSettings = Arc<ArcSwap<Snapshot>>;

/// Parses a host entry of a sender group: an IP, a CIDR or `ALL`.
pub(crate) fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_appliance() {
        let snap = Settings::default().compile().unwrap();
        let lo = snap.classify("127.0.0.1".parse().unwrap(), None);
        assert_eq!(
            (lo.group.as_str(), lo.policy),
            ("LOOPBACK", FlowPolicy::Accept)
        );
        let v6 = snap.classify("::1".parse().unwrap(), None);
        assert_eq!(v6.policy, FlowPolicy::Accept);
        let other = snap.classify("192.0.2.7".parse().unwrap(), None);
        assert_eq!(
            (other.group.as_str(), other.policy),
            ("ALL", FlowPolicy::Accept)
        );
        assert!(
            !snap.rat_accepts("example.com"),
            "no domain accepted until added"
        );
    }

    #[test]
    fn journal_address_resolution() {
        use rampart_tdc::TdcChoice;
        let policy = |name: &str, mode: TdcMode, addr: &str| MailPolicy {
            tdc: TdcChoice {
                mode,
                intake_address: addr.into(),
            },
            ..MailPolicy::new(name.into(), vec![], vec![format!("@{name}.example.com")])
        };
        let mut s = Settings {
            incoming_policies: vec![
                policy("custom", TdcMode::Custom, "custom@intake.test"),
                policy("no", TdcMode::No, ""),
                policy("inherit", TdcMode::Default, ""),
                MailPolicy {
                    tdc: TdcChoice {
                        mode: TdcMode::Global,
                        intake_address: String::new(),
                    },
                    ..MailPolicy::default_policy()
                },
            ],
            tdc: TdcSettings {
                enabled: true,
                intake_address: "global@intake.test".into(),
            },
            ..Settings::default()
        };
        let snap = s.clone().compile().unwrap();
        let got: Vec<Option<String>> = (0..4).map(|i| snap.journal_address(i)).collect();
        assert_eq!(
            got,
            [
                Some("custom@intake.test".into()),
                None,
                Some("global@intake.test".into()),
                Some("global@intake.test".into())
            ]
        );
        assert_eq!(
            [
                TdcMode::Custom,
                TdcMode::No,
                TdcMode::Default,
                TdcMode::Global
            ]
            .map(|m| snap.tdc_label(m)),
            ["Enabled", "Disabled", "(use default)", "Enabled"]
        );
        // Trace's explanation agrees with the resolution and says why.
        let reasons: Vec<String> = (0..4)
            .map(|i| {
                let (address, reason) = snap.explain_journal(i);
                assert_eq!(address, snap.journal_address(i), "policy {i}");
                reason
            })
            .collect();
        assert_eq!(
            reasons,
            [
                "policy custom: custom → custom@intake.test",
                "policy no: No",
                "policy inherit: use default → DEFAULT: global → global@intake.test",
                "DEFAULT: global → global@intake.test",
            ]
        );
        // The global switch is the master switch.
        s.tdc.enabled = false;
        let snap = s.clone().compile().unwrap();
        assert!((0..4).all(|i| snap.journal_address(i).is_none()));
        assert_eq!(snap.explain_journal(0), (None, "connector disabled".into()));
        assert_eq!(snap.tdc_label(TdcMode::Global), "Disabled");
        // A fresh appliance: DEFAULT shows Disabled.
        let fresh = Settings::default().compile().unwrap();
        let default = fresh.policies(false).policies().last().unwrap();
        assert_eq!(fresh.tdc_label(default.tdc.mode), "Disabled");
        // Enabled without an address is refused.
        s.tdc = TdcSettings {
            enabled: true,
            intake_address: String::new(),
        };
        assert!(
            s.clone().compile().unwrap_err().0[0]
                .to_string()
                .contains("Message Intake Address is required")
        );
    }

    #[test]
    fn toml_round_trip() {
        let mut s = Settings::default();
        s.rat.push(RatEntry {
            domain: "example.com".into(),
            action: RatAction::Accept,
        });
        s.hat.insert(
            0,
            SenderGroup {
                name: "RELAYLIST".into(),
                hosts: vec!["10.0.0.0/8".into()],
                policy: FlowPolicy::Relay,
                limits: hat::FlowLimits::default(),
            },
        );
        let filter: rampart_policy::ContentFilter = serde_json::from_value(serde_json::json!({
            "name": "tag", "combine": "any",
            "conditions": [{"type": "subject", "regex": "^x"}, {"type": "remote_ip", "networks": ["10.0.0.0/8"]}],
            "actions": [{"type": "tag_subject", "tag": "[X]"}, {"type": "bounce", "reply": "no"}]
        }))
        .unwrap();
        s.incoming_policies.insert(
            0,
            MailPolicy {
                name: "finance".into(),
                senders: vec![],
                recipients: vec!["@finance.example.com".into()],
                content_filters: vec![filter],
                email_authentication: rampart_policy::EmailAuthentication {
                    enabled: true,
                    dmarc_action: rampart_policy::DmarcAction::Reject,
                },
                antispam: rampart_policy::Antispam {
                    mode: rampart_policy::ServiceMode::Enabled,
                    positive: rampart_policy::Treatment {
                        action: rampart_policy::ScanAction::Bounce,
                        subject_prefix: String::new(),
                    },
                    ..Default::default()
                },
                antivirus: rampart_policy::Antivirus::with_mode(
                    rampart_policy::ServiceMode::Disabled,
                ),
                tdc: TdcChoice {
                    mode: TdcMode::Custom,
                    intake_address: "j@intake.test".into(),
                },
            },
        );
        s.tdc = TdcSettings {
            enabled: true,
            intake_address: "g@intake.test".into(),
        };
        let text = s.to_toml();
        assert_eq!(Settings::from_toml(&text).unwrap(), s, "{text}");
    }

    #[test]
    fn from_toml_reports_every_error() {
        let text = r#"
[[hat]]
name = "BAD"
hosts = ["300.1.1.1"]
policy = "ACCEPT"

[[rat]]
domain = "exa mple.com"
action = "accept"

[[rat]]
domain = "ok.example"
action = "maybe"

[unknown]
x = 1
"#;
        let errors = Settings::from_toml(text).unwrap_err().0;
        // Keyed by the field at fault.
        assert!(errors.iter().any(|p| p.at == "rat[1].action"), "{errors:?}");
        let joined = SettingsErrors(errors).to_string();
        assert!(joined.contains("rat[1].action: "), "{joined}");
        assert!(
            joined.contains("unknown settings table `unknown`"),
            "{joined}"
        );
        let text = "[[hat]]\nname = \"BAD\"\nhosts = [\"300.1.1.1\"]\npolicy = \"ACCEPT\"\n[[rat]]\ndomain = \"exa mple.com\"\naction = \"accept\"\n";
        let joined = Settings::from_toml(text).unwrap_err().to_string();
        assert!(
            joined.contains("hat[0] (BAD): host \"300.1.1.1\""),
            "{joined}"
        );
        assert!(
            joined.contains("rat[0]: domain \"exa mple.com\""),
            "{joined}"
        );
    }
}
