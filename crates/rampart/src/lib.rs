//! The `rampart` binary: command line, configuration loading, wiring and shutdown. This is the
//! only crate that reads the environment and configuration files.

mod admin;
mod cli;
mod cluster;
mod data_dir;
mod envconfig;
mod health;
mod policyconfig;
mod serve;
mod sink;
mod status;
mod tls;

use std::process::ExitCode;

/// Entry point shared by the shipped binary and the end-to-end test harness.
pub fn main() -> ExitCode {
    cli::main()
}
