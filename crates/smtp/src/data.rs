//! DATA framing (RFC 5321 §4.1.1.4, §4.5.2).
//!
//! [`DataDecoder`] reads the bytes after `354` and finds the end of the message. Only
//! `<CRLF>.<CRLF>` ends it: a dot line framed by a bare LF or bare CR (`\n.\n`, `\r.\r`,
//! `\n.\r\n`, `\r\n.\n`) is message content, never an end — otherwise a sender could smuggle a
//! second message past us or past the next hop (SMTP smuggling, CVE-2023-51764/5/6).
//!
//! The decoder also canonicalises what it stores: dot-stuffing is undone, and every bare CR or
//! bare LF becomes CRLF. So a stored message has only CRLF line ends, and [`dot_stuff`] on the way
//! out can never produce a dot line that the next hop would take for the end of DATA.

/// Where the wire is, relative to lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line (after a CRLF, or at the start of DATA).
    LineStart,
    /// Inside a line.
    Text,
    /// Inside a line, after a CR whose LF has not been seen yet.
    Cr,
    /// A line that began with a dot.
    Dot,
    /// A line that began with a dot followed by CR.
    DotCr,
}

/// What [`DataDecoder::feed`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataStatus {
    /// All input was consumed; more is needed.
    More,
    /// The end of data was found after `consumed` bytes of the input; the rest belongs to the
    /// next command (pipelining).
    Done { consumed: usize },
}

/// Incremental DATA decoder with a size limit.
#[derive(Debug)]
pub struct DataDecoder {
    state: State,
    out: Vec<u8>,
    max_size: usize,
    /// Set once the message grew past `max_size`; the rest is read and discarded.
    too_big: bool,
    /// Set when the receiver can no longer hold the message; the rest is read and discarded.
    discarded: bool,
    size: usize,
}

impl DataDecoder {
    /// `max_size` bounds the decoded message; `prefix` (our `Received:` header) is stored first
    /// and does not count against the limit.
    pub fn new(max_size: usize, prefix: &[u8]) -> DataDecoder {
        let mut out = Vec::with_capacity(prefix.len() + 8 * 1024);
        out.extend_from_slice(prefix);
        DataDecoder {
            state: State::LineStart,
            out,
            max_size,
            too_big: false,
            discarded: false,
            size: 0,
        }
    }

    /// Makes room for a message of `size` bytes at once (the size the client declared), so the
    /// buffer does not double its way there; never more than the size limit.
    pub fn expect(&mut self, size: usize) {
        self.out.reserve(size.min(self.max_size));
    }

    /// Stops keeping the message (the receiver cannot hold it) and frees what was kept; the
    /// rest is still decoded, to find the end of DATA, and dropped.
    pub fn discard(&mut self) {
        self.discarded = true;
        self.out = Vec::new();
    }

    /// Bytes of memory the decoded message holds now.
    pub fn held(&self) -> usize {
        self.out.capacity()
    }

    /// Feeds bytes read from the client.
    pub fn feed(&mut self, input: &[u8]) -> DataStatus {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Text {
                // Fast path: copy everything up to the next CR or LF in one go.
                let rest = input.get(i..).unwrap_or_default();
                match memchr::memchr2(b'\r', b'\n', rest) {
                    None => {
                        self.emit(rest);
                        return DataStatus::More;
                    }
                    Some(n) => {
                        self.emit(rest.get(..n).unwrap_or_default());
                        i += n;
                    }
                }
            }
            let Some(&b) = input.get(i) else { break };
            i += 1;
            self.state = match (self.state, b) {
                (State::LineStart, b'.') => State::Dot,
                (State::LineStart | State::Text, b'\r') => State::Cr,
                (State::LineStart | State::Text, b'\n') => {
                    // Bare LF: a line break in the content, but not a line start on the wire.
                    self.emit(b"\r\n");
                    State::Text
                }
                (State::LineStart | State::Text, _) => {
                    self.emit(&[b]);
                    State::Text
                }
                (State::Cr, b'\n') => {
                    self.emit(b"\r\n");
                    State::LineStart
                }
                (State::Cr, b'\r') => {
                    self.emit(b"\r\n");
                    State::Cr
                }
                (State::Cr, _) => {
                    self.emit(b"\r\n");
                    self.emit(&[b]);
                    State::Text
                }
                (State::Dot, b'\r') => State::DotCr,
                (State::Dot, b'\n') => {
                    // ".\n" is not the end; keep the dot line as content.
                    self.emit(b".\r\n");
                    State::Text
                }
                (State::Dot, _) => {
                    // A stuffed line: the leading dot goes (RFC 5321 §4.5.2).
                    self.emit(&[b]);
                    State::Text
                }
                (State::DotCr, b'\n') => return DataStatus::Done { consumed: i },
                (State::DotCr, b'\r') => {
                    self.emit(b".\r\n");
                    State::Cr
                }
                (State::DotCr, _) => {
                    self.emit(b".\r\n");
                    self.emit(&[b]);
                    State::Text
                }
            };
        }
        DataStatus::More
    }

    fn emit(&mut self, bytes: &[u8]) {
        self.size += bytes.len();
        if self.size > self.max_size {
            self.too_big = true;
        }
        if !self.too_big && !self.discarded {
            self.out.extend_from_slice(bytes);
        }
    }

    /// True once the message exceeded the size limit.
    pub fn too_big(&self) -> bool {
        self.too_big
    }

    /// Size of the decoded message so far, without the prefix.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The stored message: prefix plus decoded content, CRLF line ends only.
    pub fn into_message(self) -> Vec<u8> {
        let mut out = self.out;
        // A message that does not end with a line break gets one, so the framing on the way out
        // stays well-formed.
        if self.size > 0 && !out.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        out
    }
}

/// Dot-stuffs a canonical (CRLF-only) message for the wire and appends the end-of-data marker
/// (RFC 5321 §4.5.2). Bare CR or LF, should any reach here, are sent as CRLF for the same
/// reason the decoder canonicalises them.
pub fn dot_stuff(message: &[u8], out: &mut Vec<u8>) {
    out.reserve(message.len() + message.len() / 64 + 5);
    let mut line_start = true;
    let mut i = 0;
    while i < message.len() {
        let rest = message.get(i..).unwrap_or_default();
        if line_start && rest.first() == Some(&b'.') {
            out.push(b'.');
        }
        match memchr::memchr2(b'\r', b'\n', rest) {
            None => {
                out.extend_from_slice(rest);
                line_start = false;
                break;
            }
            Some(n) => {
                out.extend_from_slice(rest.get(..n).unwrap_or_default());
                let crlf = rest.get(n..n + 2) == Some(b"\r\n");
                out.extend_from_slice(b"\r\n");
                i += n + if crlf { 2 } else { 1 };
                line_start = true;
            }
        }
    }
    if !line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in chunks of `chunk` bytes; returns the message and what followed the end.
    fn decode(input: &[u8], chunk: usize) -> Option<(Vec<u8>, Vec<u8>)> {
        let mut d = DataDecoder::new(1 << 20, b"");
        let mut pos = 0;
        while pos < input.len() {
            let end = (pos + chunk).min(input.len());
            match d.feed(&input[pos..end]) {
                DataStatus::More => pos = end,
                DataStatus::Done { consumed } => {
                    return Some((d.into_message(), input[pos + consumed..].to_vec()));
                }
            }
        }
        None
    }

    fn check(input: &[u8], want_msg: Option<&[u8]>, want_rest: &[u8]) {
        for chunk in [1, 2, 3, 7, 4096] {
            let got = decode(input, chunk);
            match want_msg {
                Some(m) => {
                    let (msg, rest) = got.unwrap_or_else(|| panic!("no end found in {input:?}"));
                    assert_eq!(
                        String::from_utf8_lossy(&msg),
                        String::from_utf8_lossy(m),
                        "chunk {chunk}"
                    );
                    assert_eq!(rest, want_rest, "chunk {chunk}");
                }
                None => assert!(got.is_none(), "end found in {input:?} with chunk {chunk}"),
            }
        }
    }

    #[test]
    fn ends_only_on_crlf_dot_crlf() {
        check(
            b"Subject: a\r\n\r\nbody\r\n.\r\nQUIT\r\n",
            Some(b"Subject: a\r\n\r\nbody\r\n"),
            b"QUIT\r\n",
        );
        check(b".\r\n", Some(b""), b"");
        check(b"x\r\n.\r\n", Some(b"x\r\n"), b"");
    }

    #[test]
    fn smuggling_variants_never_end_data() {
        // Each would split the message on a lenient server; here they are content.
        check(b"a\n.\nMAIL FROM:<x@y>\n", None, b"");
        check(b"a\r.\rMAIL FROM:<x@y>\r", None, b"");
        check(b"a\n.\r\nMAIL FROM:<x@y>\r\n", None, b"");
        check(b"a\r\n.\nMAIL FROM:<x@y>\r\n", None, b"");
        check(b"a\r\n.\r\rMAIL FROM:<x@y>\r\n", None, b"");
        // ... and once the real end comes, the smuggled lines are inside the one message,
        // canonicalised so that the next hop sees them as ordinary (stuffed) lines.
        check(
            b"a\n.\nMAIL FROM:<x@y>\r\n.\r\n",
            Some(b"a\r\n.\r\nMAIL FROM:<x@y>\r\n"),
            b"",
        );
        check(b"a\r.\rb\r\n.\r\n", Some(b"a\r\n.\r\nb\r\n"), b"");
        check(b"a\n.\r\nb\r\n.\r\n", Some(b"a\r\n.\r\nb\r\n"), b"");
    }

    #[test]
    fn dot_unstuffing() {
        check(
            b"..leading\r\n...\r\n.\r\n",
            Some(b".leading\r\n..\r\n"),
            b"",
        );
        check(b"a.b\r\n .\r\n.\r\n", Some(b"a.b\r\n .\r\n"), b"");
    }

    #[test]
    fn size_limit() {
        let mut d = DataDecoder::new(10, b"Received: x\r\n");
        assert_eq!(d.feed(b"0123456789\r\n"), DataStatus::More);
        assert!(d.too_big());
        assert_eq!(d.feed(b"more\r\n.\r\n"), DataStatus::Done { consumed: 9 });
        assert_eq!(d.size(), 18);
    }

    #[test]
    fn prefix_is_kept_and_unterminated_last_line_is_closed() {
        let mut d = DataDecoder::new(100, b"Received: x\r\n");
        assert_eq!(d.feed(b"body\r\n.\r\n"), DataStatus::Done { consumed: 9 });
        assert_eq!(d.into_message(), b"Received: x\r\nbody\r\n");
    }

    #[test]
    fn stuffing_round_trip() {
        let msgs: &[&[u8]] = &[b"a\r\n.\r\n..x\r\n", b"", b".", b"no newline", b"\r\n.\r\n"];
        for m in msgs {
            let mut wire = Vec::new();
            dot_stuff(m, &mut wire);
            let (back, rest) = decode(&wire, 4096).unwrap();
            let mut want = m.to_vec();
            if !want.is_empty() && !want.ends_with(b"\r\n") {
                want.extend_from_slice(b"\r\n");
            }
            assert_eq!(back, want, "{m:?}");
            assert!(rest.is_empty());
        }
        let mut wire = Vec::new();
        dot_stuff(b"a\n.\nb", &mut wire);
        assert_eq!(wire, b"a\r\n..\r\nb\r\n.\r\n");
    }

    /// A small deterministic generator (xorshift), so the property tests need no crate and
    /// fail the same way every time.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// Bytes drawn mostly from what framing is about: dots, CR, LF.
        fn bytes(&mut self, max: usize) -> Vec<u8> {
            const ALPHABET: &[u8] = b"..\r\r\n\n\nab \x00\xff";
            let n = (self.next() as usize) % (max + 1);
            (0..n)
                .map(|_| ALPHABET[(self.next() as usize) % ALPHABET.len()])
                .collect()
        }
    }

    /// Properties over 20,000 generated inputs: whatever a client sends decodes the same in any
    /// chunking, to CRLF-only text, and a stored message dot-stuffed for the next hop decodes
    /// back to itself with its end of data exactly at the end.
    #[test]
    fn property_framing_round_trips() {
        let mut g = Gen(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let mut input = g.bytes(64);
            input.extend_from_slice(b"\r\n.\r\n");
            let whole = decode(&input, input.len()).expect("CRLF.CRLF ends DATA");
            let chunk = 1 + (g.next() as usize) % 8;
            assert_eq!(decode(&input, chunk), Some(whole.clone()), "{input:?}");
            let message = whole.0;
            for (i, b) in message.iter().enumerate() {
                match b {
                    b'\r' => assert_eq!(message.get(i + 1), Some(&b'\n'), "{input:?}"),
                    b'\n' => assert!(i > 0 && message[i - 1] == b'\r', "{input:?}"),
                    _ => {}
                }
            }
            let mut wire = Vec::new();
            dot_stuff(&message, &mut wire);
            let (again, rest) = decode(&wire, 1 + (g.next() as usize) % 8).expect("ends");
            assert_eq!(again, message, "{input:?}");
            assert!(rest.is_empty(), "{input:?}");
        }
    }
}
