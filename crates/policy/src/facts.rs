//! What the security services look at: a message parsed once (headers, subject, text body,
//! attachments) plus its envelope facts.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Result of one email authentication check (SPF, DKIM or DMARC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthResult {
    Pass,
    Fail,
    SoftFail,
    Neutral,
    None,
    TempError,
    PermError,
}

impl AuthResult {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthResult::Pass => "pass",
            AuthResult::Fail => "fail",
            AuthResult::SoftFail => "softfail",
            AuthResult::Neutral => "neutral",
            AuthResult::None => "none",
            AuthResult::TempError => "temperror",
            AuthResult::PermError => "permerror",
        }
    }
}

/// Most body text that body conditions look at: the text parts of the message and of the
/// messages attached to it, together. A message with more is unscannable, never clean.
pub const MAX_BODY_TEXT: usize = 4 << 20;

/// Deepest nesting of attached messages (`message/rfc822` inside `message/rfc822`) looked into.
pub const MAX_NESTED_MESSAGES: usize = 5;

/// Most MIME parts looked at, over the message and its attached messages.
pub const MAX_PARTS: usize = 1000;

#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Header fields in order, names lowercased, values decoded and unfolded.
    pub headers: Vec<(String, String)>,
    pub subject: String,
    /// The text parts (plain, or HTML as sent) of the message and of attached messages,
    /// concatenated, up to [`MAX_BODY_TEXT`].
    pub body_text: String,
    /// `(file name, content type)` of each attachment, those of attached messages included.
    pub attachments: Vec<(String, String)>,
    /// Why the body could not be read whole (a limit was reached); body and attachment
    /// conditions then make the message unscannable.
    pub unscannable: Vec<String>,
    pub size: usize,
    pub remote_ip: Option<IpAddr>,
    pub spf: Option<AuthResult>,
    pub dkim: Option<AuthResult>,
    pub dmarc: Option<AuthResult>,
    /// What the sender domain's DMARC record asks for on failure (`p=`).
    pub dmarc_request: Option<DmarcRequest>,
    /// The RFC5322.From domain DMARC evaluated.
    pub dmarc_domain: String,
    /// The anti-spam engine's answer; `None` when no policy of the message scans for spam.
    pub spam: Option<crate::SpamResult>,
    /// The anti-virus engine's answer; `None` when no policy of the message scans for viruses.
    pub virus: Option<crate::VirusResult>,
}

/// A DMARC record's policy (`p=` / `sp=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmarcRequest {
    None,
    Quarantine,
    Reject,
}

impl Facts {
    /// Parses a message, body and attachments included. Malformed MIME never fails: whatever
    /// can be read is used.
    pub fn from_message(message: &[u8], remote_ip: Option<IpAddr>) -> Facts {
        let mut facts = Facts::unparsed(message, remote_ip);
        if let Some(parsed) = mail_parser::MessageParser::default().parse(message) {
            facts.read_headers(&parsed, message);
            facts.read_body(&parsed);
        }
        facts
    }

    /// Parses only the header block: enough for every condition but body text and attachments
    /// (see [`crate::CompiledPolicy::needs_body`]). Decoding a large body costs more than the
    /// rest of a message's processing, so it is done only for a policy that looks at it.
    pub fn from_headers(message: &[u8], remote_ip: Option<IpAddr>) -> Facts {
        let mut facts = Facts::unparsed(message, remote_ip);
        if let Some(parsed) = mail_parser::MessageParser::default().parse_headers(message) {
            facts.read_headers(&parsed, message);
        }
        facts
    }

    fn unparsed(message: &[u8], remote_ip: Option<IpAddr>) -> Facts {
        Facts {
            size: message.len(),
            remote_ip,
            ..Facts::default()
        }
    }

    fn read_headers(&mut self, parsed: &mail_parser::Message<'_>, message: &[u8]) {
        for h in parsed.headers() {
            let name = h.name().to_ascii_lowercase();
            let value = match h.value() {
                mail_parser::HeaderValue::Text(t) => t.to_string(),
                mail_parser::HeaderValue::TextList(l) => l.join(", "),
                _ => raw_value(message, h.offset_start() as usize, h.offset_end() as usize),
            };
            self.headers.push((name, value));
        }
        self.subject = parsed.subject().unwrap_or_default().to_owned();
    }

    fn read_body(&mut self, parsed: &mail_parser::Message<'_>) {
        let mut parts = 0;
        self.read_message(parsed, 0, &mut parts);
    }

    /// Text and attachments of one message, then of the messages attached to it.
    fn read_message(&mut self, msg: &mail_parser::Message<'_>, depth: usize, parts: &mut usize) {
        for i in 0..msg.text_body.len() {
            let Some(t) = msg.body_text(i) else {
                continue;
            };
            let room = MAX_BODY_TEXT.saturating_sub(self.body_text.len());
            if t.len() + 1 > room {
                let mut cut = room;
                while !t.is_char_boundary(cut) {
                    cut -= 1;
                }
                self.body_text.push_str(t.get(..cut).unwrap_or_default());
                self.give_up(format!("body text over {MAX_BODY_TEXT} bytes"));
                break;
            }
            self.body_text.push_str(&t);
            self.body_text.push('\n');
        }
        for part in msg.attachments() {
            *parts += 1;
            if *parts > MAX_PARTS {
                self.give_up(format!("more than {MAX_PARTS} MIME parts"));
                return;
            }
            let name = mail_parser::MimeHeaders::attachment_name(part)
                .unwrap_or_default()
                .to_owned();
            let ctype = mail_parser::MimeHeaders::content_type(part)
                .map(|c| match c.subtype() {
                    Some(sub) => format!("{}/{}", c.ctype(), sub),
                    None => c.ctype().to_owned(),
                })
                .unwrap_or_default()
                .to_ascii_lowercase();
            let is_message = ctype == "message/rfc822" || ctype == "message/global";
            self.attachments.push((name, ctype));
            match part.message() {
                Some(_) if depth + 1 > MAX_NESTED_MESSAGES => self.give_up(format!(
                    "attached messages nested deeper than {MAX_NESTED_MESSAGES}"
                )),
                Some(nested) => self.read_message(nested, depth + 1, parts),
                // An attached message the parser could not open (encoded too many times).
                None if is_message => {
                    self.give_up("an attached message could not be decoded".into())
                }
                None => {}
            }
        }
    }

    fn give_up(&mut self, why: String) {
        if !self.unscannable.contains(&why) {
            self.unscannable.push(why);
        }
    }

    /// All values of a header (name case-insensitive).
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn raw_value(message: &[u8], start: usize, end: usize) -> String {
    let raw = message.get(start..end).unwrap_or_default();
    String::from_utf8_lossy(raw)
        .replace("\r\n", "")
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_multipart_message() {
        let m = b"From: a@x.test\r\nTo: b@y.test\r\nSubject: =?UTF-8?Q?Rechnung_f=C3=BCr?= you\r\nX-Spam: yes\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nPlease pay now.\r\n\
--b1\r\nContent-Type: application/pdf; name=invoice.pdf\r\nContent-Disposition: attachment; filename=invoice.pdf\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b1--\r\n";
        let f = Facts::from_message(m, None);
        assert_eq!(f.subject, "Rechnung f\u{fc}r you");
        assert!(f.body_text.contains("Please pay now."));
        assert_eq!(
            f.attachments,
            vec![("invoice.pdf".to_string(), "application/pdf".to_string())]
        );
        assert_eq!(f.header_values("x-spam").collect::<Vec<_>>(), ["yes"]);
    }

    #[test]
    fn text_beyond_the_first_megabyte_and_attached_messages_are_read() {
        // A first text part of 2 MiB does not hide the second one.
        let big = "a".repeat(2 << 20);
        let m = format!(
            "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n{big}\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nwire the money\r\n\
--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n\
--c\r\nContent-Type: text/plain\r\n\r\ninner text\r\n\
--c\r\nContent-Type: application/octet-stream; name=evil.exe\r\nContent-Disposition: attachment; filename=evil.exe\r\n\r\nMZ\r\n--c--\r\n\
--b--\r\n"
        );
        let f = Facts::from_message(m.as_bytes(), None);
        assert!(f.body_text.contains("wire the money"));
        assert!(f.body_text.contains("inner text"));
        assert!(
            f.attachments.iter().any(|(n, _)| n == "evil.exe"),
            "{:?}",
            f.attachments
        );
        assert!(f.unscannable.is_empty(), "{:?}", f.unscannable);
    }

    #[test]
    fn limits_make_a_message_unscannable() {
        let big = "a".repeat(MAX_BODY_TEXT + 10);
        let m = format!("Subject: x\r\n\r\n{big}\r\n");
        let f = Facts::from_message(m.as_bytes(), None);
        assert_eq!(
            f.unscannable,
            [format!("body text over {MAX_BODY_TEXT} bytes")]
        );
        assert!(f.body_text.len() <= MAX_BODY_TEXT);

        let mut nested = "Subject: core\r\n\r\ncore text\r\n".to_string();
        for i in 0..MAX_NESTED_MESSAGES + 1 {
            nested = format!(
                "Subject: level {i}\r\nContent-Type: multipart/mixed; boundary=l{i}\r\n\r\n--l{i}\r\nContent-Type: message/rfc822\r\n\r\n{nested}\r\n--l{i}--\r\n"
            );
        }
        let f = Facts::from_message(nested.as_bytes(), None);
        assert_eq!(
            f.unscannable,
            [format!(
                "attached messages nested deeper than {MAX_NESTED_MESSAGES}"
            )]
        );

        let mut many = "Content-Type: multipart/mixed; boundary=b\r\n\r\n".to_string();
        for i in 0..MAX_PARTS + 1 {
            many.push_str(&format!(
                "--b\r\nContent-Type: application/octet-stream; name=f{i}.bin\r\n\r\nx\r\n"
            ));
        }
        many.push_str("--b--\r\n");
        let f = Facts::from_message(many.as_bytes(), None);
        assert_eq!(f.unscannable, [format!("more than {MAX_PARTS} MIME parts")]);
    }

    #[test]
    fn garbage_and_huge_headers_do_not_crash() {
        let mut m = b"Subject: x\r\n".to_vec();
        for _ in 0..10_000 {
            m.extend_from_slice(b"X-Long: ");
            m.extend_from_slice(&[b'a'; 200]);
            m.extend_from_slice(b"\r\n");
        }
        m.extend_from_slice(b"\r\nbody");
        let f = Facts::from_message(&m, None);
        assert_eq!(f.subject, "x");
        let f = Facts::from_message(b"\x00\xff\xfe garbage --- \r\n\r\n\r\n", None);
        assert_eq!(f.subject, "");
        let f = Facts::from_message(b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x--", None);
        assert!(f.attachments.len() < 10);
    }
}
