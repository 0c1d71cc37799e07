//! `rampart`: the Rampart secure email gateway appliance.

fn main() -> std::process::ExitCode {
    rampart::main()
}
