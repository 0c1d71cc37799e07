//! The SMTP command parser on any line a client can send: never a panic, and an error always
//! has a reply with a code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_smtp::Command;

fuzz_target!(|line: &[u8]| {
    if let Err(e) = Command::parse(line) {
        let reply = e.reply();
        assert!((400..600).contains(&reply.code));
    }
});
