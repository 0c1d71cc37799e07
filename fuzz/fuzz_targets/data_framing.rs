//! DATA framing and dot-unstuffing: any byte stream in any chunking decodes to the same
//! message, which has CRLF line ends only, and a stored message dot-stuffed for the next hop
//! decodes back to itself (no smuggled end of data in either direction).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_smtp::{DataDecoder, DataStatus, dot_stuff};

const MAX: usize = 1 << 20;

fn decode(chunks: &[&[u8]]) -> Option<(Vec<u8>, usize)> {
    let mut d = DataDecoder::new(MAX, b"");
    let mut consumed_total = 0;
    for chunk in chunks {
        match d.feed(chunk) {
            DataStatus::Done { consumed } => {
                assert!(consumed <= chunk.len());
                return Some((d.into_message(), consumed_total + consumed));
            }
            DataStatus::More => consumed_total += chunk.len(),
        }
    }
    None
}

fuzz_target!(|input: &[u8]| {
    let Some((&split, data)) = input.split_first() else {
        return;
    };
    let whole = decode(&[data]);
    let at = (split as usize).min(data.len());
    let (a, b) = data.split_at(at);
    let parts: Vec<&[u8]> = if a.is_empty() { vec![b] } else { vec![a, b] };
    assert_eq!(decode(&parts), whole, "chunking changed the message");
    let mut bytewise: Vec<&[u8]> = Vec::new();
    for i in 0..data.len().min(4096) {
        bytewise.push(&data[i..i + 1]);
    }
    if data.len() <= 4096 {
        assert_eq!(decode(&bytewise), whole, "byte-by-byte changed the message");
    }
    if let Some((message, _)) = whole {
        // Canonical: every CR is followed by LF and every LF preceded by CR.
        for (i, b) in message.iter().enumerate() {
            if *b == b'\r' {
                assert_eq!(message.get(i + 1), Some(&b'\n'));
            }
            if *b == b'\n' {
                assert!(i > 0 && message[i - 1] == b'\r');
            }
        }
        let mut wire = Vec::new();
        dot_stuff(&message, &mut wire);
        let again = decode(&[&wire]).expect("a dot-stuffed message ends");
        assert_eq!(again.0, message, "dot-stuffing round trip");
        assert_eq!(again.1, wire.len(), "the end of data is the last line");
    }
});
