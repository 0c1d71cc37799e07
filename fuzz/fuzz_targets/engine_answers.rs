//! What the scanning engines answer (rspamd's JSON, clamd's `INSTREAM` reply, in a session or
//! not) and the clamd address of the bootstrap file: never a panic; a clamd verdict is clean only
//! for a `stream: OK` answer, and a virus name is one non-empty line (it goes into a header, the
//! mail log and possibly an SMTP reply).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_scan::{ClamdAddress, VirusVerdict, clamd, rspamd};

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = rspamd::parse_answer(data) {
        let _ = (v.is_positive(), v.is_suspect(), v.score, v.symbols.len());
    }
    let text = String::from_utf8_lossy(data);
    match clamd::parse_answer(&text) {
        Ok(VirusVerdict::Clean) => {
            assert!(text.contains("stream:") && text.trim_end().ends_with("OK"), "{text:?}")
        }
        Ok(VirusVerdict::Infected(name)) => {
            assert!(!name.is_empty(), "{text:?}");
            assert!(!name.chars().any(char::is_control), "{name:?}");
        }
        Err(_) => {}
    }
    if let Some(a) = ClamdAddress::parse(&text) {
        assert!(!a.to_string().is_empty());
    }
});
