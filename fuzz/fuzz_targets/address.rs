//! Address parsing (MAIL FROM / RCPT TO paths, mailboxes, domains): never a panic, and a parsed
//! mailbox prints as text that parses back to the same mailbox.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_smtp::{Domain, Mailbox};

fuzz_target!(|s: &str| {
    let _ = rampart_smtp::address::parse_path(s);
    let _ = Domain::parse(s);
    if let Ok(m) = Mailbox::parse(s) {
        let printed = m.to_string();
        let again = Mailbox::parse(&printed).expect("a printed mailbox parses");
        assert_eq!(again, m);
        let _ = m.local_folded();
    }
});
