//! The parser of replies from remote SMTP servers (the delivery client and the connector read
//! them from hosts anywhere): never a panic; what parses has a code of 200–599 and goes back to
//! the wire as lines that all carry that code and end with CRLF.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_smtp::Reply;

fuzz_target!(|text: &str| {
    let lines: Vec<&str> = text.split('\n').map(|l| l.trim_end_matches('\r')).collect();
    if let Some(reply) = Reply::parse_lines(&lines) {
        assert!((200..600).contains(&reply.code));
        let wire = reply.to_wire();
        assert!(wire.ends_with(b"\r\n"));
        let code = reply.code.to_string();
        for line in wire.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            assert!(line.starts_with(code.as_bytes()), "{line:?}");
        }
        let _ = (
            reply.is_positive(),
            reply.is_transient(),
            reply.is_permanent(),
        );
    }
});
