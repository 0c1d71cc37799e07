//! The appliance under test: the same code as the shipped `rampart` binary, built inside this
//! package so that the end-to-end tests can find it through `CARGO_BIN_EXE_rampart-under-test`.

fn main() -> std::process::ExitCode {
    rampart::main()
}
