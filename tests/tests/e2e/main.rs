//! End-to-end tests: the real appliance as a child process on loopback ports chosen by the
//! kernel, a temporary data dir each, real SMTP, real swaks, real SQLite files.

mod dns;
mod harness;
mod policies;
mod scanning;
mod sink;

mod admin;
mod alerts;
mod api;
mod browser;
mod cli;
mod cluster;
mod delivery;
mod delivery_status;
mod durability;
mod emailauth;
mod engines;
mod flow_policies;
mod hardening;
mod listeners;
mod metrics;
mod reports;
mod smtp_ingest;
mod smtp_refusals;
mod smuggling;
mod swaks;
mod syslog;
mod tdc;
mod trace;
mod tracking;
