//! Delivery: per-destination queues fed from the store, routing (SMTP routes, MX lookups with
//! `rampart-dns`), the SMTP client, retries with the bounce profile, DSNs (`rampart-dsn`) and the `tophosts`
//! counters. Journal copies for the Threat Defense Connector use the same machinery as one more
//! destination, `the.tdc.queue`.

pub mod client;
mod engine;
pub mod route;

pub use engine::{Engine, EngineConfig, TdcConfig, TdcTls};
