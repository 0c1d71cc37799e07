//! SMTP protocol pieces with no I/O, shared by the inbound session and the delivery client.
//!
//! Everything here is pure and tested with data: command parsing (RFC 5321 §4.1), replies with
//! enhanced status codes (RFC 3463), mailbox and path syntax (RFC 5321 §4.1.2), and the DATA
//! framing that finds the end of a message and undoes dot-stuffing (RFC 5321 §4.5.2) without ever
//! being fooled by bare CR or LF (SMTP smuggling).

pub mod address;
pub mod command;
pub mod data;
pub mod message;
pub mod reply;
pub mod tls_names;

pub use address::{AddressError, Domain, Mailbox, ReversePath};
pub use command::{Command, CommandError, MailParams};
pub use data::{DataDecoder, DataStatus, dot_stuff};
pub use reply::{Enhanced, Reply};
