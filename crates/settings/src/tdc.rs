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

/// The label of the policy table's last column: `Enabled`, `Disabled` or `(use default)`.
pub(crate) fn label(global: &TdcSettings, mode: TdcMode) -> &'static str {
    match mode {
        TdcMode::Default => "(use default)",
        TdcMode::No => "Disabled",
        TdcMode::Global | TdcMode::Custom if global.enabled => "Enabled",
        TdcMode::Global | TdcMode::Custom => "Disabled",
    }
}
