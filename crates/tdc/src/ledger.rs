//! The journal ledger's vocabulary: what became of each journal copy, as the ledger page, the
//! REST API and `rampart ledger` name it.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LedgerState {
    /// Waiting for its (next) attempt.
    Queued,
    /// The intake accepted it.
    Delivered,
    /// The intake refused it, or it could not be sent (Cisco's table gave up).
    Failed,
    /// Removed by the 120-second queue-age limit.
    Expired,
    /// Failed or expired, then queued again by a journal replay (the new copy has its own
    /// entry).
    Replayed,
}

impl LedgerState {
    pub const ALL: [LedgerState; 5] = [
        LedgerState::Queued,
        LedgerState::Delivered,
        LedgerState::Failed,
        LedgerState::Expired,
        LedgerState::Replayed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LedgerState::Queued => "queued",
            LedgerState::Delivered => "delivered",
            LedgerState::Failed => "failed",
            LedgerState::Expired => "expired",
            LedgerState::Replayed => "replayed",
        }
    }

    pub fn parse(s: &str) -> Option<LedgerState> {
        LedgerState::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// `queued, delivered, failed, expired or replayed`, for error messages.
    pub fn choices() -> String {
        let words: Vec<&str> = LedgerState::ALL.iter().map(|l| l.as_str()).collect();
        match words.split_last() {
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    }
}

impl fmt::Display for LedgerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for l in LedgerState::ALL {
            assert_eq!(LedgerState::parse(l.as_str()), Some(l));
        }
        assert_eq!(LedgerState::parse("bounced"), None);
        assert_eq!(
            LedgerState::choices(),
            "queued, delivered, failed, expired or replayed"
        );
    }
}
