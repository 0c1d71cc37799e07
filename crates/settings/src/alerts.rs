//! Alert settings (*System Administration > Alerts*): who is told what, by email and by webhook,
//! how often a lasting condition is repeated, and the thresholds of the queue and disk checks.

use serde::{Deserialize, Serialize};

use crate::Problem;

/// How bad an alert is, AsyncOS's three levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// As a page or an email subject says it.
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "Info",
            Severity::Warning => "Warning",
            Severity::Critical => "Critical",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        match s.trim().to_ascii_lowercase().as_str() {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

/// One alert recipient: an address and the least severity it receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRecipient {
    pub address: String,
    #[serde(default = "d_severity")]
    pub severity: Severity,
}

/// The alert settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSettings {
    /// Who gets alert emails; none by default.
    #[serde(default)]
    pub recipients: Vec<AlertRecipient>,
    /// An `http://` or `https://` URL that receives each alert as JSON (POST); empty for none.
    #[serde(default)]
    pub webhook_url: String,
    /// The least severity the webhook receives.
    #[serde(default = "d_severity")]
    pub webhook_severity: Severity,
    /// The From address of alert emails; empty for `rampart-alerts@<hostname>`.
    #[serde(default)]
    pub from_address: String,
    /// While a condition lasts, its alert is sent again after this many minutes (1–10080).
    #[serde(default = "d_repeat")]
    pub repeat_mins: u32,
    /// Warn when at least this many recipients are queued for delivery; 0 switches it off.
    #[serde(default = "d_queue")]
    pub queue_threshold: u64,
    /// Critical when the data directory's file system has less free space than this percentage;
    /// 0 switches it off.
    #[serde(default = "d_disk")]
    pub disk_free_percent: u8,
}

fn d_severity() -> Severity {
    Severity::Warning
}
fn d_repeat() -> u32 {
    60
}
fn d_queue() -> u64 {
    10_000
}
fn d_disk() -> u8 {
    10
}

impl Default for AlertSettings {
    fn default() -> AlertSettings {
        AlertSettings {
            recipients: Vec::new(),
            webhook_url: String::new(),
            webhook_severity: d_severity(),
            from_address: String::new(),
            repeat_mins: d_repeat(),
            queue_threshold: d_queue(),
            disk_free_percent: d_disk(),
        }
    }
}

/// A plausible mailbox: `local@domain`, no spaces, no angle brackets.
fn is_address(s: &str) -> bool {
    match s.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && s.len() <= 254
                && !s
                    .chars()
                    .any(|c| c.is_whitespace() || "<>\"(),;:\\[]".contains(c))
        }
        None => false,
    }
}

pub(crate) fn validate(a: &AlertSettings, errors: &mut Vec<Problem>) {
    for (i, r) in a.recipients.iter().enumerate() {
        if !is_address(&r.address) {
            errors.push(Problem::new(
                format!("alerts.recipients[{i}]"),
                format!("{:?} is not an email address", r.address),
            ));
        }
    }
    if a.recipients.len() > 50 {
        errors.push(Problem::new(
            "alerts.recipients",
            "at most 50 alert recipients",
        ));
    }
    let url = a.webhook_url.trim();
    if !url.is_empty() {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or_default());
        if host.is_none_or(str::is_empty) || url.len() > 2048 || url.contains(char::is_whitespace) {
            errors.push(Problem::new(
                "alerts.webhook_url",
                format!("{url:?} is not an http:// or https:// URL"),
            ));
        }
    }
    if !a.from_address.is_empty() && !is_address(&a.from_address) {
        errors.push(Problem::new(
            "alerts.from_address",
            format!("{:?} is not an email address", a.from_address),
        ));
    }
    if !(1..=10_080).contains(&a.repeat_mins) {
        errors.push(Problem::new(
            "alerts.repeat_mins",
            "must be 1-10080 minutes (a week)",
        ));
    }
    if a.disk_free_percent > 99 {
        errors.push(Problem::new(
            "alerts.disk_free_percent",
            "must be 0-99 percent",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_are_named() {
        let a = AlertSettings {
            recipients: vec![AlertRecipient {
                address: "ops at example.com".into(),
                severity: Severity::Critical,
            }],
            webhook_url: "ftp://x".into(),
            from_address: "<x@y.z>".into(),
            repeat_mins: 0,
            disk_free_percent: 100,
            ..AlertSettings::default()
        };
        let mut errors = Vec::new();
        validate(&a, &mut errors);
        let at: Vec<_> = errors.iter().map(|p| p.to_string()).collect();
        assert_eq!(at.len(), 5, "{at:?}");
        assert!(at[0].contains("alerts.recipients[0]"));
        let mut errors = Vec::new();
        validate(
            &AlertSettings {
                recipients: vec![AlertRecipient {
                    address: "ops@example.com".into(),
                    severity: Severity::Info,
                }],
                webhook_url: "https://hooks.example.com/T0/B0?x=1".into(),
                ..AlertSettings::default()
            },
            &mut errors,
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert!(Severity::Critical > Severity::Warning);
    }
}
