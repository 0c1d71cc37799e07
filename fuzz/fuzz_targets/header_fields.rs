//! Header field splitting, the hop count and the removal of forged trust headers: fields lie
//! inside the message in order, stripping only removes whole fields (never our first one), and
//! a stripped message has nothing left to strip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_smtp::message::{fields, received_count, strip_forged};

fuzz_target!(|message: &[u8]| {
    let f = fields(message);
    let mut end = 0;
    for field in &f {
        assert!(field.range.start >= end && field.range.end <= message.len());
        end = field.range.end;
    }
    let hops = received_count(message);
    assert!(hops <= f.len());
    let (out, removed) = strip_forged(message.to_vec(), &["X-IronPort-RemoteIP"], "gw.test");
    assert!(out.len() <= message.len());
    assert_eq!(removed.is_empty(), out.len() == message.len());
    if let (Some(first), false) = (f.first(), f.is_empty()) {
        assert!(
            out.starts_with(&message[first.range.clone()]),
            "our first field stays"
        );
    }
    let (again, removed_again) = strip_forged(out.clone(), &["X-IronPort-RemoteIP"], "gw.test");
    assert!(
        removed_again.is_empty() && again == out,
        "stripping is idempotent"
    );
});
