//! The Anti-Spam and Anti-Virus settings of a mail policy (SPEC §3a), as AsyncOS shows them:
//! each service is `Enabled`, `Disabled` or `(use default)` (the DEFAULT policy's whole setting),
//! with an action and an optional subject prefix per outcome.
//!
//! The engines' answers come in as [`SpamResult`] / [`VirusResult`] in the message's
//! [`Facts`](crate::Facts); what they mean for one split is decided in `verdict.rs`.

use serde::{Deserialize, Serialize};

use crate::Problem;

/// Whether a service runs for a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceMode {
    /// `(use default)`: the DEFAULT policy's setting, actions included (not for DEFAULT).
    #[default]
    Default,
    Enabled,
    Disabled,
}

/// What happens to a message a service judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScanAction {
    /// Delivered, with the subject prefix if one is set.
    Deliver,
    /// Accepted and discarded.
    Drop,
    /// Refused at the end of DATA (`550 5.7.1`) when no other split accepts it, else a DSN.
    Bounce,
    /// Held in the quarantine, with the finding as its reason.
    Quarantine,
}

impl ScanAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ScanAction::Deliver => "deliver",
            ScanAction::Drop => "drop",
            ScanAction::Bounce => "bounce",
            ScanAction::Quarantine => "quarantine",
        }
    }
}

/// The action for one outcome and the prefix it puts in front of the subject (`""` = none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Treatment {
    pub action: ScanAction,
    #[serde(default)]
    pub subject_prefix: String,
}

impl Treatment {
    fn new(action: ScanAction, prefix: &str) -> Treatment {
        Treatment {
            action,
            subject_prefix: prefix.into(),
        }
    }
}

/// Suspected spam: like [`Treatment`], and it can be switched off (then suspect is negative).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuspectTreatment {
    pub enabled: bool,
    pub action: ScanAction,
    #[serde(default)]
    pub subject_prefix: String,
}

/// A policy's Anti-Spam setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Antispam {
    #[serde(default)]
    pub mode: ServiceMode,
    /// Positively identified spam.
    #[serde(default = "Antispam::default_positive")]
    pub positive: Treatment,
    /// Suspected spam.
    #[serde(default = "Antispam::default_suspect")]
    pub suspect: SuspectTreatment,
}

impl Antispam {
    fn default_positive() -> Treatment {
        Treatment::new(ScanAction::Quarantine, "[SPAM] ")
    }

    fn default_suspect() -> SuspectTreatment {
        SuspectTreatment {
            enabled: true,
            action: ScanAction::Deliver,
            subject_prefix: "[SUSPECTED SPAM] ".into(),
        }
    }

    /// AsyncOS's defaults with the given mode.
    pub fn with_mode(mode: ServiceMode) -> Antispam {
        Antispam {
            mode,
            positive: Antispam::default_positive(),
            suspect: Antispam::default_suspect(),
        }
    }
}

impl Default for Antispam {
    fn default() -> Antispam {
        Antispam::with_mode(ServiceMode::Default)
    }
}

/// A policy's Anti-Virus setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Antivirus {
    #[serde(default)]
    pub mode: ServiceMode,
    /// Virus infected messages.
    #[serde(default = "Antivirus::default_infected")]
    pub infected: Treatment,
    /// Messages the engine could not scan (too big, or the engine failed under
    /// `on_error = "accept"`).
    #[serde(default = "Antivirus::default_unscannable")]
    pub unscannable: Treatment,
}

impl Antivirus {
    fn default_infected() -> Treatment {
        Treatment::new(ScanAction::Drop, "[WARNING: VIRUS DETECTED] ")
    }

    fn default_unscannable() -> Treatment {
        Treatment::new(ScanAction::Deliver, "[WARNING: A/V UNSCANNABLE] ")
    }

    /// AsyncOS's defaults with the given mode.
    pub fn with_mode(mode: ServiceMode) -> Antivirus {
        Antivirus {
            mode,
            infected: Antivirus::default_infected(),
            unscannable: Antivirus::default_unscannable(),
        }
    }
}

impl Default for Antivirus {
    fn default() -> Antivirus {
        Antivirus::with_mode(ServiceMode::Default)
    }
}

/// What the anti-spam engine said about a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpamResult {
    /// Positively identified spam; the score as the engine printed it.
    Positive {
        score: String,
    },
    Suspect {
        score: String,
    },
    Negative {
        score: String,
    },
    /// Not scanned because the message is larger than `antispam.max_scan_bytes`. Spam is
    /// small: like AsyncOS, such a message counts as not spam (the anti-virus scan still runs).
    TooBig(String),
    /// The engine failed and `on_error = "accept"` let the message in: unscannable, not clean.
    Failed(String),
}

/// What the anti-virus engine said about a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VirusResult {
    /// Infected, with the signature's name.
    Infected(String),
    Clean,
    /// Not scanned: too big, or the engine failed under `on_error = "accept"`.
    Unscannable(String),
}

/// Subject prefixes are printable one-line text: they go into a header.
pub(crate) fn validate_prefix(prefix: &str, at: &str, what: &str, errors: &mut Vec<Problem>) {
    if prefix.len() > 100 || prefix.chars().any(char::is_control) {
        errors.push(Problem::new(
            at.to_string(),
            format!("the {what} subject prefix must be one line of at most 100 characters"),
        ));
    }
}

impl Antispam {
    pub(crate) fn validate(&self, at: &str, errors: &mut Vec<Problem>) {
        validate_prefix(
            &self.positive.subject_prefix,
            at,
            "anti-spam positive",
            errors,
        );
        validate_prefix(
            &self.suspect.subject_prefix,
            at,
            "anti-spam suspect",
            errors,
        );
    }
}

impl Antivirus {
    pub(crate) fn validate(&self, at: &str, errors: &mut Vec<Problem>) {
        validate_prefix(
            &self.infected.subject_prefix,
            at,
            "anti-virus infected",
            errors,
        );
        validate_prefix(
            &self.unscannable.subject_prefix,
            at,
            "anti-virus unscannable",
            errors,
        );
    }
}

/// The column label of a service in the policy tables: `Enabled`, `Disabled` or
/// `(use default)`; `Disabled` whatever the mode when no engine is configured.
pub fn label(mode: ServiceMode, engine_configured: bool) -> &'static str {
    match (mode, engine_configured) {
        (_, false) | (ServiceMode::Disabled, true) => "Disabled",
        (ServiceMode::Enabled, true) => "Enabled",
        (ServiceMode::Default, true) => "(use default)",
    }
}
