//! The global Threat Defense Connector setting (*Security Services > Threat Defense Connector
//! Settings*) and how a policy's choice resolves to an intake address (SPEC §3).

use rampart_policy::{PolicyTable, TdcMode};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdcSettings {
    /// Enable Threat Defense Connector: the master switch.
    pub enabled: bool,
    /// Message Intake Address (required when enabled).
    #[serde(default)]
    pub intake_address: String,
}

pub(crate) fn validate(t: &TdcSettings, errors: &mut Vec<String>) {
    let address = t.intake_address.trim();
    if t.enabled && address.is_empty() {
        errors
            .push("tdc: a Message Intake Address is required when the connector is enabled".into());
    } else if !address.is_empty() && rampart_smtp::Mailbox::parse(address).is_err() {
        errors.push(format!(
            "tdc: Message Intake Address {:?} is not a valid address (e.g. journal@beta.cmd.cisco.com)",
            t.intake_address
        ));
    }
}

/// The intake address a policy journals to, if any: inherit → DEFAULT's choice; global → the
/// global address; custom → the policy's own; no → none. Nothing when the connector is off.
pub(crate) fn resolve(global: &TdcSettings, table: &PolicyTable, idx: usize) -> Option<String> {
    if !global.enabled {
        return None;
    }
    let policy = table.get(idx)?;
    let choice = if policy.tdc.mode == TdcMode::Default {
        &table.policies().last()?.tdc
    } else {
        &policy.tdc
    };
    match choice.mode {
        TdcMode::Global => Some(global.intake_address.trim().to_owned()),
        TdcMode::Custom => Some(choice.intake_address.trim().to_owned()),
        TdcMode::No | TdcMode::Default => None,
    }
}

/// [`resolve`] with the reason, as Trace shows it: `connector disabled`, `policy hr: No`,
/// `DEFAULT: global → journal@…`, `policy sales: use default → DEFAULT: custom → x@…`.
pub(crate) fn explain(
    global: &TdcSettings,
    table: &PolicyTable,
    idx: usize,
) -> (Option<String>, String) {
    let Some(policy) = table.get(idx) else {
        return (None, "no such policy".into());
    };
    let is_default = idx + 1 == table.policies().len();
    let name = if is_default {
        policy.name.clone()
    } else {
        format!("policy {}", policy.name)
    };
    if !global.enabled {
        return (None, "connector disabled".into());
    }
    let (choice, via) = match (policy.tdc.mode, table.policies().last()) {
        (TdcMode::Default, Some(default)) => (
            &default.tdc,
            format!("{name}: use default → {}: ", default.name),
        ),
        _ => (&policy.tdc, format!("{name}: ")),
    };
    let address = resolve(global, table, idx);
    let how = match (choice.mode, &address) {
        (TdcMode::Global, Some(a)) => format!("global → {a}"),
        (TdcMode::Custom, Some(a)) => format!("custom → {a}"),
        _ => "No".into(),
    };
    (address, format!("{via}{how}"))
}

/// The label of the policy table's last column: `Enabled`, `Disabled` or `(use default)`.
pub(crate) fn label(global: &TdcSettings, mode: TdcMode) -> &'static str {
    match mode {
        TdcMode::Default => "(use default)",
        TdcMode::No => "Disabled",
        TdcMode::Global | TdcMode::Custom if global.enabled => "Enabled",
        TdcMode::Global | TdcMode::Custom => "Disabled",
    }
}
