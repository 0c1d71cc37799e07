//! Delivery: per-destination queues fed from the store, routing (SMTP routes, MX lookups with
//! `rampart-dns`), the SMTP client, retries with the bounce profile, DSNs (`rampart-dsn`) and the `tophosts`
//! counters. Journal copies for the Threat Defense Connector go through the same worker loop as one
//! more destination, `the.tdc.queue`, with rules built from `rampart-tdc`.

pub mod client;
mod engine;
pub mod route;

pub use engine::{Engine, EngineConfig};
