//! The Threat Defense Connector (SPEC §4): what a journal copy looks like and how the.tdc.queue
//! treats failures. Pure code; the delivery engine sends the copies as one more destination.
//!
//! Selection (which messages get a copy) happens where the policy verdict is made, before `250`:
//! see `rampart-mta`'s `process` module and `Snapshot::journal_address`.

pub mod journal;
pub mod rules;

/// The pseudo destination under which journal copies are queued and counted.
pub const TDC_QUEUE: &str = "the.tdc.queue";

/// The phrase AsyncOS uses in TDC log lines and tracking.
pub const SETD: &str = "Cisco Secure Email Threat Defense";
