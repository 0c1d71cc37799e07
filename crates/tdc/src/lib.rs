//! The Threat Defense Connector (SPEC §4): its configuration, what a journal copy looks like,
//! how the.tdc.queue treats failures, what it logs, and the ledger's words for a copy's fate. Pure code; the delivery engine sends the
//! copies as one more destination, with rules built from [`TdcConfig`] and [`rules`].
//!
//! Which messages get a copy is decided where the policy verdict is made, before `250`
//! (`rampart-mta`'s `process` module), by the rule and the per-policy choice in [`choice`].

pub mod choice;
mod config;
pub mod journal;
mod ledger;
pub mod rules;
pub mod text;

pub use choice::{TdcChoice, TdcMode, TdcSettings};
pub use config::{TdcConfig, TdcTls};
pub use ledger::LedgerState;

/// The pseudo destination under which journal copies are queued and counted.
pub const TDC_QUEUE: &str = "the.tdc.queue";

/// The phrase AsyncOS uses in TDC log lines and tracking.
pub const SETD: &str = "Cisco Secure Email Threat Defense";
