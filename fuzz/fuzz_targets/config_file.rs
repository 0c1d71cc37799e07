//! The bootstrap configuration parser on any text: never a panic; every error names a key or
//! the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(e) = rampart_config::Config::parse(text) {
        assert!(!e.0.is_empty());
    }
});
