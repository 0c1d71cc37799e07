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

/// Most body text kept for regex conditions.
const MAX_BODY_TEXT: usize = 1 << 20;

#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Header fields in order, names lowercased, values decoded and unfolded.
    pub headers: Vec<(String, String)>,
    pub subject: String,
    /// The text parts (plain, or HTML as sent), concatenated, capped at 1 MiB.
    pub body_text: String,
    /// `(file name, content type)` of each attachment.
    pub attachments: Vec<(String, String)>,
    pub size: usize,
    pub remote_ip: Option<IpAddr>,
    pub spf: Option<AuthResult>,
    pub dkim: Option<AuthResult>,
    pub dmarc: Option<AuthResult>,
    /// What the sender domain's DMARC record asks for on failure (`p=`).
    pub dmarc_request: Option<DmarcRequest>,
    /// The RFC5322.From domain DMARC evaluated.
    pub dmarc_domain: String,
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
        let mut body = String::new();
        for i in 0..parsed.text_body.len() {
            if let Some(t) = parsed.body_text(i) {
                if body.len() + t.len() > MAX_BODY_TEXT {
                    break;
                }
                body.push_str(&t);
                body.push('\n');
            }
        }
        self.body_text = body;
        for part in parsed.attachments() {
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
            self.attachments.push((name, ctype));
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
