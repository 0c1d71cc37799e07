//! A validation problem of a settings set, keyed by where it is.

use std::fmt;

use serde::Serialize;

/// One validation problem: `at` names the entry as the settings file and the REST API spell it —
/// `rat[2]`, `hat[0] (LOOPBACK)`, `incoming_policies[1] (sales)`,
/// `incoming_policies[1] (sales).content_filters[0] (x)`, `bounce_profile`, `tdc`, or a field path
/// such as `rat[1].action` — and `message` says what to fix. Its text is `at: message` (just the
/// message when `at` is empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub at: String,
    pub message: String,
}

impl Problem {
    pub fn new(at: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            at: at.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.at, self.message)
        }
    }
}
