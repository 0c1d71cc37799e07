//! The journal builder on any stored message: the result is a MIME message whose attachment is
//! the original (with the remote-IP header) byte for byte, whatever the original contains
//! (boundary look-alikes included).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_tdc::journal::{Envelope, build, with_remote_ip};

fuzz_target!(|original: &[u8]| {
    let with_ip = with_remote_ip(original, "X-IronPort-RemoteIP", "192.0.2.7");
    let recipients = vec!["u@example.com".to_owned()];
    let env = Envelope {
        mid: 1,
        sender: "a@sender.test",
        recipients: &recipients,
        remote_ip: "192.0.2.7",
        policy: "DEFAULT",
        message_id: None,
        hostname: "gw.test",
        intake: "journal@intake.test",
    };
    let journal = build(&env, &with_ip);
    assert!(
        memchr::memmem::find(&journal, &with_ip).is_some(),
        "the original is carried unchanged"
    );
});
