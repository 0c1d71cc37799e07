//! SMTP replies: a three-digit code (RFC 5321 §4.2), an optional enhanced status code
//! (RFC 3463, advertised with ENHANCEDSTATUSCODES, RFC 2034) and text.

use std::borrow::Cow;
use std::fmt;

/// An enhanced mail system status code `class.subject.detail` (RFC 3463 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enhanced(pub u8, pub u16, pub u16);

impl fmt::Display for Enhanced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// One SMTP reply. `text` may hold several lines separated by `\n`; they are sent as a
/// multi-line reply (RFC 5321 §4.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: Option<Enhanced>,
    pub text: Cow<'static, str>,
}

impl Reply {
    pub const fn new(code: u16, enhanced: Option<Enhanced>, text: &'static str) -> Reply {
        Reply {
            code,
            enhanced,
            text: Cow::Borrowed(text),
        }
    }

    pub fn owned(code: u16, enhanced: Option<Enhanced>, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced,
            text: Cow::Owned(text.into()),
        }
    }

    /// 2xx and 3xx replies.
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// 4xx replies: the client may try again later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx replies.
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// Appends the reply in wire form, CRLF-terminated, to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut lines = self.text.split('\n').peekable();
        if lines.peek().is_none() {
            out.extend_from_slice(format!("{}\r\n", self.code).as_bytes());
            return;
        }
        while let Some(line) = lines.next() {
            let sep = if lines.peek().is_some() { '-' } else { ' ' };
            let line = line.trim_end_matches('\r');
            match self.enhanced {
                Some(e) => {
                    out.extend_from_slice(format!("{}{sep}{e} {line}\r\n", self.code).as_bytes())
                }
                None => out.extend_from_slice(format!("{}{sep}{line}\r\n", self.code).as_bytes()),
            }
        }
    }

    /// Parses the lines of a server reply (without CRLF) as read by a client. The enhanced code is
    /// taken from the first line when it carries one. `None` for lines that are not a reply.
    pub fn parse_lines<S: AsRef<str>>(lines: &[S]) -> Option<Reply> {
        let first = lines.first()?.as_ref();
        let code: u16 = first.get(..3)?.parse().ok()?;
        if !(200..600).contains(&code) {
            return None;
        }
        let mut enhanced = None;
        let mut texts = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            let mut text = line.as_ref().get(4..).unwrap_or("");
            if let Some((e, rest)) = parse_enhanced(text) {
                if i == 0 {
                    enhanced = Some(e);
                }
                if enhanced == Some(e) {
                    text = rest;
                }
            }
            texts.push(text.to_owned());
        }
        Some(Reply {
            code,
            enhanced,
            text: Cow::Owned(texts.join("\n")),
        })
    }

    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }
}

/// `5.1.1 rest` → (Enhanced(5, 1, 1), "rest").
fn parse_enhanced(text: &str) -> Option<(Enhanced, &str)> {
    let (code, rest) = text.split_once(' ').unwrap_or((text, ""));
    let mut parts = code.split('.');
    let class: u8 = parts.next()?.parse().ok()?;
    let subject: u16 = parts.next()?.parse().ok()?;
    let detail: u16 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(2..=5).contains(&class) {
        return None;
    }
    Some((Enhanced(class, subject, detail), rest))
}

impl fmt::Display for Reply {
    /// The reply on one line, as mail logs and DSNs quote it: `550 5.7.1 Relaying denied`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.text.replace('\n', " ");
        match self.enhanced {
            Some(e) => write!(f, "{} {e} {text}", self.code),
            None => write!(f, "{} {text}", self.code),
        }
    }
}

/// Reply codes by name (RFC 5321 §4.2.2, §4.2.3).
pub mod code {
    pub const SERVICE_READY: u16 = 220;
    pub const CLOSING: u16 = 221;
    pub const OK: u16 = 250;
    pub const CANNOT_VRFY: u16 = 252;
    pub const START_MAIL_INPUT: u16 = 354;
    pub const SERVICE_NOT_AVAILABLE: u16 = 421;
    pub const LOCAL_ERROR: u16 = 451;
    pub const INSUFFICIENT_STORAGE: u16 = 452;
    pub const TLS_NOT_AVAILABLE: u16 = 454;
    pub const SYNTAX_ERROR: u16 = 500;
    pub const PARAM_SYNTAX_ERROR: u16 = 501;
    pub const NOT_IMPLEMENTED: u16 = 502;
    pub const BAD_SEQUENCE: u16 = 503;
    pub const PARAM_NOT_IMPLEMENTED: u16 = 504;
    pub const MAILBOX_UNAVAILABLE: u16 = 550;
    pub const EXCEEDED_STORAGE: u16 = 552;
    pub const MAILBOX_NAME_NOT_ALLOWED: u16 = 553;
    pub const TRANSACTION_FAILED: u16 = 554;
    pub const PARAMS_NOT_RECOGNIZED: u16 = 555;
}

/// Replies the inbound session sends, each with its enhanced code (RFC 3463, RFC 5248).
pub mod replies {
    use super::{Enhanced as E, Reply, code};

    pub const OK: Reply = Reply::new(code::OK, Some(E(2, 0, 0)), "Ok");
    pub const SENDER_OK: Reply = Reply::new(code::OK, Some(E(2, 1, 0)), "Sender ok");
    pub const RECIPIENT_OK: Reply = Reply::new(code::OK, Some(E(2, 1, 5)), "Recipient ok");
    pub const RESET: Reply = Reply::new(code::OK, Some(E(2, 0, 0)), "Reset state");
    pub const BYE: Reply = Reply::new(code::CLOSING, Some(E(2, 0, 0)), "Goodbye");
    pub const START_DATA: Reply = Reply::new(
        code::START_MAIL_INPUT,
        None,
        "Start mail input; end with <CRLF>.<CRLF>",
    );
    pub const START_TLS: Reply =
        Reply::new(code::SERVICE_READY, Some(E(2, 0, 0)), "Ready to start TLS");
    pub const VRFY: Reply = Reply::new(
        code::CANNOT_VRFY,
        Some(E(2, 5, 2)),
        "Cannot VRFY user, but will accept message and attempt delivery",
    );
    pub const HELP: Reply = Reply::new(
        214,
        Some(E(2, 0, 0)),
        "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS",
    );

    pub const UNRECOGNIZED: Reply =
        Reply::new(code::SYNTAX_ERROR, Some(E(5, 5, 1)), "Command unrecognized");
    pub const LINE_TOO_LONG: Reply =
        Reply::new(code::SYNTAX_ERROR, Some(E(5, 5, 2)), "Line too long");
    pub const BAD_SEQUENCE: Reply = Reply::new(
        code::BAD_SEQUENCE,
        Some(E(5, 5, 1)),
        "Bad sequence of commands",
    );
    pub const NEED_HELO: Reply = Reply::new(
        code::BAD_SEQUENCE,
        Some(E(5, 5, 1)),
        "Send EHLO or HELO first",
    );
    pub const NEED_MAIL: Reply =
        Reply::new(code::BAD_SEQUENCE, Some(E(5, 5, 1)), "Need MAIL command");
    pub const NEED_RCPT: Reply =
        Reply::new(code::BAD_SEQUENCE, Some(E(5, 5, 1)), "Need RCPT command");
    pub const NESTED_MAIL: Reply =
        Reply::new(code::BAD_SEQUENCE, Some(E(5, 5, 1)), "Nested MAIL command");
    pub const ALREADY_TLS: Reply =
        Reply::new(code::BAD_SEQUENCE, Some(E(5, 5, 1)), "TLS already active");
    pub const NOT_IMPLEMENTED: Reply = Reply::new(
        code::NOT_IMPLEMENTED,
        Some(E(5, 5, 1)),
        "Command not implemented",
    );
    pub const TLS_NOT_AVAILABLE: Reply = Reply::new(
        code::TLS_NOT_AVAILABLE,
        Some(E(4, 7, 0)),
        "TLS not available",
    );
    pub const RELAY_DENIED: Reply = Reply::new(
        code::MAILBOX_UNAVAILABLE,
        Some(E(5, 7, 1)),
        "Relaying denied",
    );
    pub const RECIPIENT_REJECTED: Reply = Reply::new(
        code::MAILBOX_UNAVAILABLE,
        Some(E(5, 7, 1)),
        "Recipient address rejected",
    );
    pub const TOO_MANY_RECIPIENTS: Reply = Reply::new(
        code::INSUFFICIENT_STORAGE,
        Some(E(4, 5, 3)),
        "Too many recipients",
    );
    pub const MESSAGE_TOO_BIG: Reply = Reply::new(
        code::EXCEEDED_STORAGE,
        Some(E(5, 3, 4)),
        "Message size exceeds fixed maximum message size",
    );
    pub const NO_VALID_RECIPIENTS: Reply = Reply::new(
        code::TRANSACTION_FAILED,
        Some(E(5, 5, 1)),
        "No valid recipients",
    );
    pub const STORAGE_FAILED: Reply = Reply::new(
        code::LOCAL_ERROR,
        Some(E(4, 3, 0)),
        "Requested action aborted: local error in processing",
    );
    pub const ACCESS_DENIED: Reply =
        Reply::new(code::TRANSACTION_FAILED, Some(E(5, 7, 1)), "Access denied");
    pub const TOO_MANY_CONNECTIONS: Reply = Reply::new(
        code::SERVICE_NOT_AVAILABLE,
        Some(E(4, 3, 2)),
        "Too many concurrent connections, try again later",
    );
    pub const TOO_MANY_ERRORS: Reply = Reply::new(
        code::SERVICE_NOT_AVAILABLE,
        Some(E(4, 7, 0)),
        "Too many errors, closing connection",
    );
    pub const TIMEOUT: Reply = Reply::new(
        code::SERVICE_NOT_AVAILABLE,
        Some(E(4, 4, 2)),
        "Timeout exceeded, closing connection",
    );
    pub const SHUTTING_DOWN: Reply = Reply::new(
        code::SERVICE_NOT_AVAILABLE,
        Some(E(4, 3, 2)),
        "Service shutting down, try again later",
    );
    pub const TLS_REQUIRED: Reply =
        Reply::new(530, Some(E(5, 7, 0)), "Must issue a STARTTLS command first");
    pub const TOO_MANY_MESSAGES: Reply = Reply::new(
        code::SERVICE_NOT_AVAILABLE,
        Some(E(4, 7, 0)),
        "Too many messages in this connection, send the rest in a new one",
    );
    pub const RECIPIENT_RATE: Reply = Reply::new(
        code::INSUFFICIENT_STORAGE,
        Some(E(4, 5, 3)),
        "Too many recipients received this hour from your address, try again later",
    );
    pub const TOO_MANY_FROM_ADDRESS: Reply = Reply::new(
        code::SERVICE_NOT_AVAILABLE,
        Some(E(4, 7, 0)),
        "Too many concurrent connections from your address, try again later",
    );
    pub const SESSION_TOO_LONG: Reply = Reply::new(
        code::SERVICE_NOT_AVAILABLE,
        Some(E(4, 4, 2)),
        "Session lasted too long, closing connection",
    );
    pub const TOO_MANY_JUNK: Reply = Reply::new(
        code::SERVICE_NOT_AVAILABLE,
        Some(E(4, 7, 0)),
        "Too many commands without mail, closing connection",
    );
    /// RFC 5321 §6.3: a message with too many `Received:` fields is in a loop; 5.4.6 is
    /// "routing loop detected" (RFC 3463).
    pub const TOO_MANY_HOPS: Reply = Reply::new(
        code::TRANSACTION_FAILED,
        Some(E(5, 4, 6)),
        "Too many hops, mail loop detected",
    );
    pub const NO_MEMORY: Reply = Reply::new(
        code::INSUFFICIENT_STORAGE,
        Some(E(4, 3, 1)),
        "Insufficient system resources, try again later",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_multi_line_wire_form() {
        assert_eq!(
            replies::RELAY_DENIED.to_wire(),
            b"550 5.7.1 Relaying denied\r\n"
        );
        let ehlo = Reply::owned(250, None, "host\nPIPELINING\nSIZE 10");
        assert_eq!(
            ehlo.to_wire(),
            b"250-host\r\n250-PIPELINING\r\n250 SIZE 10\r\n"
        );
        assert_eq!(
            replies::MESSAGE_TOO_BIG.to_string(),
            "552 5.3.4 Message size exceeds fixed maximum message size"
        );
    }

    #[test]
    fn parse_server_replies() {
        let r = Reply::parse_lines(&["550 5.1.1 <u@example.com>: user unknown"]).unwrap();
        assert_eq!(
            (r.code, r.enhanced, r.text.as_ref()),
            (
                550,
                Some(Enhanced(5, 1, 1)),
                "<u@example.com>: user unknown"
            )
        );
        let r =
            Reply::parse_lines(&["250-mx.example.com", "250-PIPELINING", "250 SIZE 100"]).unwrap();
        assert_eq!(
            (r.code, r.enhanced, r.text.as_ref()),
            (250, None, "mx.example.com\nPIPELINING\nSIZE 100")
        );
        let r = Reply::parse_lines(&["451 Try again later"]).unwrap();
        assert_eq!(r.to_string(), "451 Try again later");
        assert_eq!(Reply::parse_lines(&["hello"]), None);
        assert_eq!(Reply::parse_lines(&["999 x"]), None);
    }

    #[test]
    fn classes() {
        assert!(replies::OK.is_positive());
        assert!(replies::TOO_MANY_RECIPIENTS.is_transient());
        assert!(replies::RELAY_DENIED.is_permanent());
    }
}
