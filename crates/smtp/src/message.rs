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

/// One header field of a message: its name and where the field (with its folded continuation
/// lines and final CRLF) lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
    pub range: std::ops::Range<usize>,
}

/// The header fields of a message, in order, up to the empty line that ends the header section
/// (or the end of the message). A line that is neither a field nor a continuation (no colon)
/// ends the section too, as it would for a parser downstream.
pub fn fields(message: &[u8]) -> Vec<Field<'_>> {
    let mut out: Vec<Field<'_>> = Vec::new();
    let mut pos = 0;
    while pos < message.len() {
        let rest = message.get(pos..).unwrap_or_default();
        let line_len = memchr::memchr(b'\n', rest).map_or(rest.len(), |n| n + 1);
        let line = rest.get(..line_len).unwrap_or_default();
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        let continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if continuation {
            match out.last_mut() {
                Some(f) => f.range.end = pos + line_len,
                None => break,
            }
        } else {
            let Some(colon) = memchr::memchr(b':', line) else {
                break;
            };
            let name = line.get(..colon).unwrap_or_default();
            out.push(Field {
                name,
                value: &[],
                range: pos..pos + line_len,
            });
        }
        pos += line_len;
    }
    for f in &mut out {
        let start = f.range.start + f.name.len() + 1;
        f.value = message.get(start..f.range.end).unwrap_or_default();
    }
    out
}

/// How many `Received:` fields the header section carries: the hop count of RFC 5321 §6.3.
pub fn received_count(message: &[u8]) -> usize {
    fields(message)
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case(b"Received"))
        .count()
}

/// Removes header fields that a sender must not be able to set because the gateway's own copies
/// are trusted downstream: every field named in `names` (e.g. `X-IronPort-RemoteIP`, which
/// Threat Defense reads as the client's address), and every `Authentication-Results` field that
/// claims `authserv_id` (RFC 8601 §5). The first field (our own `Received:`) is never removed.
/// Returns the message and the names of the fields removed.
pub fn strip_forged(message: Vec<u8>, names: &[&str], authserv_id: &str) -> (Vec<u8>, Vec<String>) {
    let remove: Vec<std::ops::Range<usize>> = fields(&message)
        .iter()
        .skip(1)
        .filter(|f| {
            names
                .iter()
                .any(|n| f.name.eq_ignore_ascii_case(n.as_bytes()))
                || (f.name.eq_ignore_ascii_case(b"Authentication-Results")
                    && authserv_id_of(f.value).eq_ignore_ascii_case(authserv_id.as_bytes()))
        })
        .map(|f| f.range.clone())
        .collect();
    if remove.is_empty() {
        return (message, Vec::new());
    }
    let mut removed = Vec::new();
    let mut out = Vec::with_capacity(message.len());
    let mut at = 0;
    for r in remove {
        out.extend_from_slice(message.get(at..r.start).unwrap_or_default());
        if let Some(f) = message.get(r.clone()) {
            let name = f.split(|b| *b == b':').next().unwrap_or_default();
            removed.push(String::from_utf8_lossy(name).into_owned());
        }
        at = r.end;
    }
    out.extend_from_slice(message.get(at..).unwrap_or_default());
    (out, removed)
}

/// The authserv-id of an `Authentication-Results` value (RFC 8601 §2.2): the first token,
/// after leading white space and comments.
fn authserv_id_of(value: &[u8]) -> &[u8] {
    let mut v = value;
    loop {
        v = v.trim_ascii_start();
        if v.first() == Some(&b'(') {
            // Skip a comment, nested ones included.
            let mut depth = 0usize;
            let mut end = v.len();
            for (i, b) in v.iter().enumerate() {
                match b {
                    b'(' => depth += 1,
                    b')' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            end = i + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            v = v.get(end..).unwrap_or_default();
            continue;
        }
        break;
    }
    let end = v
        .iter()
        .position(|b| b.is_ascii_whitespace() || *b == b';' || *b == b'(')
        .unwrap_or(v.len());
    v.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_with_folding_and_the_end_of_the_header() {
        let m = b"Received: a\r\n\tb\r\nSubject: x\r\n\r\nReceived: in body\r\n";
        let f = fields(m);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].name, b"Received");
        assert_eq!(f[0].value, b" a\r\n\tb\r\n");
        assert_eq!(&m[f[1].range.clone()], b"Subject: x\r\n");
        assert_eq!(received_count(m), 1);
        assert_eq!(received_count(b"no colon line\r\nReceived: x\r\n"), 0);
        assert_eq!(received_count(b"\tcontinuation first\r\n"), 0);
    }

    #[test]
    fn forged_trust_fields_are_removed_and_ours_kept() {
        let m = b"Received: from client by gw.test\r\n\
X-IronPort-RemoteIP: 10.9.9.9\r\n\
Authentication-Results: (comment) GW.test; spf=pass\r\n\tsmtp.mailfrom=x\r\n\
Authentication-Results: other.example; spf=fail\r\n\
x-ironport-remoteip: 10.8.8.8\r\n\
Subject: hi\r\n\r\n\
X-IronPort-RemoteIP: in the body stays\r\n"
            .to_vec();
        let (out, removed) = strip_forged(m, &["X-IronPort-RemoteIP"], "gw.test");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Received: from client by gw.test\r\n\
Authentication-Results: other.example; spf=fail\r\n\
Subject: hi\r\n\r\n\
X-IronPort-RemoteIP: in the body stays\r\n"
        );
        assert_eq!(
            removed,
            [
                "X-IronPort-RemoteIP",
                "Authentication-Results",
                "x-ironport-remoteip"
            ]
        );
        let clean = b"Received: x\r\nSubject: y\r\n\r\n".to_vec();
        assert_eq!(strip_forged(clean.clone(), &["X-A"], "gw").0, clean);
    }

    #[test]
    fn authserv_ids() {
        assert_eq!(authserv_id_of(b" gw.test; spf=pass"), b"gw.test");
        assert_eq!(
            authserv_id_of(b" (a (nested) c) gw.test 1; none"),
            b"gw.test"
        );
        assert_eq!(authserv_id_of(b"gw.test(c);none"), b"gw.test");
        assert_eq!(authserv_id_of(b" ((("), b"");
    }

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
