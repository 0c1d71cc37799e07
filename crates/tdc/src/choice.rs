//! Which messages are journaled, and to which intake address (SPEC §3): the global setting
//! (*Security Services > Threat Defense Connector Settings*), each incoming policy's choice,
//! how a choice resolves, how the policy table labels it, and what Trace says about it.

use serde::{Deserialize, Serialize};

/// The global connector setting.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdcSettings {
    /// Enable Threat Defense Connector: the master switch.
    pub enabled: bool,
    /// Message Intake Address (required when enabled).
    #[serde(default)]
    pub intake_address: String,
}

/// A mail policy's connector setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdcChoice {
    pub mode: TdcMode,
    /// Required for `custom`, ignored otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub intake_address: String,
}

impl Default for TdcChoice {
    /// A new policy's choice: use DEFAULT's.
    fn default() -> TdcChoice {
        TdcChoice {
            mode: TdcMode::Default,
            intake_address: String::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TdcMode {
    /// Use Default Settings: inherit the DEFAULT policy's choice (not for DEFAULT itself).
    Default,
    /// Use Global Settings: the global Message Intake Address.
    Global,
    /// Use custom Message Intake Address.
    Custom,
    /// No journaling.
    No,
}

/// The selection rule: a message gets a journal copy when it was received (not relayed out),
/// its verdict is clean (scanned and nothing found), and its policy's choice resolves to an
/// intake address.
pub fn selects(incoming: bool, clean: bool) -> bool {
    incoming && clean
}

/// What is wrong with the global setting (the `tdc` table), if anything.
pub fn validate_settings(t: &TdcSettings) -> Option<String> {
    let address = t.intake_address.trim();
    if t.enabled && address.is_empty() {
        Some("a Message Intake Address is required when the connector is enabled".into())
    } else if !address.is_empty() && rampart_smtp::Mailbox::parse(address).is_err() {
        Some(format!(
            "Message Intake Address {:?} is not a valid address (e.g. journal@beta.cmd.cisco.com)",
            t.intake_address
        ))
    } else {
        None
    }
}

/// What is wrong with a policy's choice, if anything.
pub fn validate_choice(choice: &TdcChoice, is_default: bool, incoming: bool) -> Option<String> {
    match (choice.mode, is_default) {
        (TdcMode::Default, true) => Some(
            "DEFAULT cannot use the default settings; choose global, custom or no".to_owned(),
        ),
        (TdcMode::Custom, _)
            if rampart_smtp::Mailbox::parse(choice.intake_address.trim()).is_err() =>
        {
            Some(format!(
                "a custom Message Intake Address must be a valid address like journal@beta.cmd.cisco.com, got {:?}",
                choice.intake_address
            ))
        }
        (mode, _) if !incoming && mode != TdcMode::Default && mode != TdcMode::No => Some(
            "the Threat Defense Connector journals incoming mail only; outgoing policies take mode \"no\""
                .to_owned(),
        ),
        _ => None,
    }
}

/// The intake address a policy journals to, if any: `default` → DEFAULT's choice; `global` →
/// the global address; `custom` → the policy's own; `no` → none. Nothing when the connector is
/// off.
pub fn resolve(global: &TdcSettings, choice: &TdcChoice, default: &TdcChoice) -> Option<String> {
    if !global.enabled {
        return None;
    }
    let choice = if choice.mode == TdcMode::Default {
        default
    } else {
        choice
    };
    match choice.mode {
        TdcMode::Global => Some(global.intake_address.trim().to_owned()),
        TdcMode::Custom => Some(choice.intake_address.trim().to_owned()),
        TdcMode::No | TdcMode::Default => None,
    }
}

/// A policy, as [`explain`] names it.
#[derive(Debug, Clone, Copy)]
pub struct Named<'a> {
    pub name: &'a str,
    pub choice: &'a TdcChoice,
}

/// [`resolve`] with the reason, as Trace shows it: `connector disabled`, `policy hr: No`,
/// `DEFAULT: global → journal@…`, `policy sales: use default → DEFAULT: custom → x@…`.
/// `policy` is `None` when it is DEFAULT itself.
pub fn explain(
    global: &TdcSettings,
    policy: Option<Named<'_>>,
    default: Named<'_>,
) -> (Option<String>, String) {
    if !global.enabled {
        return (None, "connector disabled".into());
    }
    let (choice, via) = match policy {
        None => (default.choice, format!("{}: ", default.name)),
        Some(p) if p.choice.mode == TdcMode::Default => (
            default.choice,
            format!("policy {}: use default → {}: ", p.name, default.name),
        ),
        Some(p) => (p.choice, format!("policy {}: ", p.name)),
    };
    let address = resolve(global, choice, default.choice);
    let how = match (choice.mode, &address) {
        (TdcMode::Global, Some(a)) => format!("global → {a}"),
        (TdcMode::Custom, Some(a)) => format!("custom → {a}"),
        _ => "No".into(),
    };
    (address, format!("{via}{how}"))
}

/// The label of the policy table's connector column: `Enabled`, `Disabled` or `(use default)`.
pub fn label(global: &TdcSettings, mode: TdcMode) -> &'static str {
    match mode {
        TdcMode::Default => "(use default)",
        TdcMode::No => "Disabled",
        TdcMode::Global | TdcMode::Custom if global.enabled => "Enabled",
        TdcMode::Global | TdcMode::Custom => "Disabled",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(mode: TdcMode, address: &str) -> TdcChoice {
        TdcChoice {
            mode,
            intake_address: address.into(),
        }
    }

    #[test]
    fn resolution_and_explanation() {
        let on = TdcSettings {
            enabled: true,
            intake_address: " journal@global.test ".into(),
        };
        let off = TdcSettings {
            enabled: false,
            ..on.clone()
        };
        let global = choice(TdcMode::Global, "");
        let custom = choice(TdcMode::Custom, "c@custom.test");
        let inherit = choice(TdcMode::Default, "");
        let no = choice(TdcMode::No, "");
        let d = |c| Named {
            name: "DEFAULT",
            choice: c,
        };
        let p = |c| Named {
            name: "sales",
            choice: c,
        };
        // (policy, DEFAULT's choice) → address, Trace's words
        #[rustfmt::skip]
        let cases = [
            (&on, None, &global, Some("journal@global.test"), "DEFAULT: global → journal@global.test"),
            (&on, Some(&custom), &global, Some("c@custom.test"), "policy sales: custom → c@custom.test"),
            (&on, Some(&inherit), &custom, Some("c@custom.test"), "policy sales: use default → DEFAULT: custom → c@custom.test"),
            (&on, Some(&inherit), &no, None, "policy sales: use default → DEFAULT: No"),
            (&on, Some(&no), &global, None, "policy sales: No"),
            (&off, Some(&custom), &global, None, "connector disabled"),
        ];
        for (settings, policy, default, want, words) in cases {
            let (address, why) = explain(settings, policy.map(p), d(default));
            assert_eq!(address.as_deref(), want, "{words}");
            assert_eq!(why, words);
            let own = policy.unwrap_or(default);
            assert_eq!(resolve(settings, own, default), address, "{words}");
        }
    }

    #[test]
    fn labels_and_validation() {
        let on = TdcSettings {
            enabled: true,
            intake_address: "j@x.test".into(),
        };
        assert_eq!(label(&on, TdcMode::Custom), "Enabled");
        assert_eq!(label(&TdcSettings::default(), TdcMode::Global), "Disabled");
        assert_eq!(label(&on, TdcMode::Default), "(use default)");
        assert!(validate_settings(&on).is_none());
        let missing = TdcSettings {
            enabled: true,
            intake_address: " ".into(),
        };
        assert!(validate_settings(&missing).is_some());
        assert!(validate_choice(&choice(TdcMode::Default, ""), true, true).is_some());
        assert!(validate_choice(&choice(TdcMode::Custom, "nope"), false, true).is_some());
        assert!(validate_choice(&choice(TdcMode::Global, ""), false, false).is_some());
        assert!(validate_choice(&choice(TdcMode::No, ""), false, false).is_none());
        assert!(!selects(false, true) && !selects(true, false) && selects(true, true));
    }
}
