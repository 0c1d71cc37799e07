//! Mail policies and their security services, with no I/O (SPEC §1–§3).
//!
//! - [`patterns`]: the sender/recipient patterns of a policy.
//! - [`PolicyTable`]: the ordered policies (DEFAULT last); [`PolicyTable::split`] groups a
//!   message's recipients by the first policy each matches.
//! - [`filters`]: content filters, evaluated in order against the [`Facts`] of a message.
//! - [`Verdict`]: what to do with one split, and whether it is *clean* — the condition for a
//!   Threat Defense journal copy.

pub mod edit;
pub mod facts;
pub mod filters;
pub mod patterns;
mod problem;
pub mod services;
mod table;
mod verdict;

pub use facts::{AuthResult, DmarcRequest, Facts};
pub use filters::{ContentFilter, FilterAction, FilterCondition, FilterTest, test_filter};
pub use problem::Problem;
pub use services::{
    Antispam, Antivirus, ScanAction, ServiceMode, SpamResult, SuspectTreatment, Treatment,
    VirusResult,
};
pub use table::{
    CompiledPolicy, DEFAULT_POLICY, DmarcAction, EmailAuthentication, MailPolicy, PolicyTable,
};
pub use verdict::{Disposition, Verdict};
