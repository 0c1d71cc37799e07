//! Small edits of stored messages (CRLF line ends, our `Received:` header first).

/// Inserts `field` (a complete header field with its CRLF) right after the message's first
/// header field and that field's continuation lines — after Rampart's own `Received:` header,
/// where trace fields such as `Authentication-Results:` belong (RFC 8601 §5).
pub fn insert_after_first_field(message: &[u8], field: &[u8]) -> Vec<u8> {
    let at = first_field_end(message);
    let mut out = Vec::with_capacity(message.len() + field.len());
    out.extend_from_slice(message.get(..at).unwrap_or_default());
    out.extend_from_slice(field);
    out.extend_from_slice(message.get(at..).unwrap_or_default());
    out
}

/// Where the first header field (with its folded continuation lines) ends.
fn first_field_end(message: &[u8]) -> usize {
    let mut pos = 0;
    let mut first = true;
    while pos < message.len() {
        let rest = message.get(pos..).unwrap_or_default();
        let continuation = rest.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if !first && !continuation {
            return pos;
        }
        first = false;
        match memchr::memchr(b'\n', rest) {
            Some(n) => pos += n + 1,
            None => return message.len(),
        }
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goes_after_the_folded_first_field() {
        let m = b"Received: from a\r\n\tby b; date\r\nSubject: x\r\n\r\nbody\r\n";
        let out = insert_after_first_field(m, b"X-New: 1\r\n");
        assert_eq!(
            out,
            b"Received: from a\r\n\tby b; date\r\nX-New: 1\r\nSubject: x\r\n\r\nbody\r\n"
        );
        assert_eq!(insert_after_first_field(b"", b"X: 1\r\n"), b"X: 1\r\n");
    }
}
