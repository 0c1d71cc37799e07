//! SMTP command parsing (RFC 5321 §4.1.1), one line at a time, without the trailing CRLF.
//!
//! The parser is deliberately a little lenient where real clients are sloppy and harmless (a space
//! after `MAIL FROM:`, lowercase verbs) and strict where it matters (paths, parameters).

use crate::address::{self, AddressError, Mailbox};
use crate::reply::{Enhanced as E, Reply, code};

/// Longest command line including CRLF (RFC 5321 §4.5.3.1.4).
pub const MAX_COMMAND_LINE: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    Mail {
        from: Option<Mailbox>,
        params: MailParams,
    },
    Rcpt {
        to: Mailbox,
    },
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Help,
    StartTls,
    /// Known verbs that Rampart does not implement (EXPN, BDAT, AUTH, TURN, ...).
    NotImplemented(String),
}

/// ESMTP parameters of MAIL FROM that Rampart announces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    /// Declared size (RFC 1870).
    pub size: Option<u64>,
    /// Declared body type (RFC 6152): `true` for 8BITMIME.
    pub eight_bit: bool,
}

/// Why a line is not an acceptable command; each maps to one precise reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("command unrecognized")]
    Unrecognized,
    #[error("syntax: {0}")]
    Syntax(&'static str),
    #[error("bad sender address: {0}")]
    BadSender(AddressError),
    #[error("bad recipient address: {0}")]
    BadRecipient(AddressError),
    #[error("unsupported parameter {0}")]
    UnsupportedParam(String),
    #[error("command line is not valid text")]
    NotText,
}

impl CommandError {
    pub fn reply(&self) -> Reply {
        match self {
            CommandError::Unrecognized => crate::reply::replies::UNRECOGNIZED,
            CommandError::Syntax(usage) => {
                Reply::owned(code::PARAM_SYNTAX_ERROR, Some(E(5, 5, 4)), *usage)
            }
            CommandError::NotText => Reply::new(
                code::SYNTAX_ERROR,
                Some(E(5, 5, 2)),
                "Command line contains invalid characters",
            ),
            CommandError::BadSender(e) => Reply::owned(
                code::PARAM_SYNTAX_ERROR,
                Some(E(5, 1, 7)),
                format!("Bad sender address syntax: {e}"),
            ),
            CommandError::BadRecipient(e) => Reply::owned(
                code::PARAM_SYNTAX_ERROR,
                Some(E(5, 1, 3)),
                format!("Bad recipient address syntax: {e}"),
            ),
            CommandError::UnsupportedParam(p) => Reply::owned(
                code::PARAMS_NOT_RECOGNIZED,
                Some(E(5, 5, 4)),
                format!("Unsupported parameter {p}"),
            ),
        }
    }
}

impl Command {
    /// Parses one command line (CRLF already removed).
    pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
        let line = std::str::from_utf8(line).map_err(|_| CommandError::NotText)?;
        if line.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(CommandError::NotText);
        }
        let (verb, rest) = match line.find(' ') {
            Some(i) => (line.get(..i).unwrap_or(""), line.get(i + 1..).unwrap_or("")),
            None => (line, ""),
        };
        let verb = verb.to_ascii_uppercase();
        let arg = rest.trim();
        match verb.as_str() {
            "EHLO" | "HELO" => {
                let mut words = arg.split_whitespace();
                let Some(host) = words.next() else {
                    return Err(CommandError::Syntax(if verb == "EHLO" {
                        "Syntax: EHLO hostname"
                    } else {
                        "Syntax: HELO hostname"
                    }));
                };
                let host = host.to_owned();
                Ok(if verb == "EHLO" {
                    Command::Ehlo(host)
                } else {
                    Command::Helo(host)
                })
            }
            "MAIL" => parse_mail(rest),
            "RCPT" => parse_rcpt(rest),
            "DATA" if arg.is_empty() => Ok(Command::Data),
            "DATA" => Err(CommandError::Syntax("Syntax: DATA (no parameters)")),
            "RSET" if arg.is_empty() => Ok(Command::Rset),
            "RSET" => Err(CommandError::Syntax("Syntax: RSET (no parameters)")),
            "QUIT" if arg.is_empty() => Ok(Command::Quit),
            "QUIT" => Err(CommandError::Syntax("Syntax: QUIT (no parameters)")),
            "STARTTLS" if arg.is_empty() => Ok(Command::StartTls),
            "STARTTLS" => Err(CommandError::Syntax("Syntax: STARTTLS (no parameters)")),
            "NOOP" => Ok(Command::Noop),
            "HELP" => Ok(Command::Help),
            "VRFY" if !arg.is_empty() => Ok(Command::Vrfy),
            "VRFY" => Err(CommandError::Syntax("Syntax: VRFY address")),
            "EXPN" | "BDAT" | "AUTH" | "TURN" | "ETRN" | "ATRN" | "SEND" | "SOML" | "SAML" => {
                Ok(Command::NotImplemented(verb))
            }
            _ => Err(CommandError::Unrecognized),
        }
    }
}

/// `MAIL FROM:<path> [SIZE=n] [BODY=7BIT|8BITMIME]` (RFC 5321 §4.1.1.2, RFC 1870, RFC 6152).
fn parse_mail(rest: &str) -> Result<Command, CommandError> {
    let usage = CommandError::Syntax("Syntax: MAIL FROM:<address>");
    let (path, params) = split_path(rest, "FROM:").ok_or(usage)?;
    let from = address::parse_path(path).map_err(CommandError::BadSender)?;
    let mut out = MailParams::default();
    for p in params.split_whitespace() {
        let (key, value) = p.split_once('=').unwrap_or((p, ""));
        match key.to_ascii_uppercase().as_str() {
            "SIZE" => {
                let size = value
                    .parse::<u64>()
                    .map_err(|_| CommandError::Syntax("Syntax: SIZE=<number of octets>"))?;
                out.size = Some(size);
            }
            "BODY" => match value.to_ascii_uppercase().as_str() {
                "7BIT" => out.eight_bit = false,
                "8BITMIME" => out.eight_bit = true,
                _ => return Err(CommandError::UnsupportedParam(p.to_owned())),
            },
            _ => return Err(CommandError::UnsupportedParam(p.to_owned())),
        }
    }
    Ok(Command::Mail { from, params: out })
}

/// `RCPT TO:<path>` (RFC 5321 §4.1.1.3); `<Postmaster>` without a domain is not accepted because
/// a gateway has no local mailboxes to deliver it to.
fn parse_rcpt(rest: &str) -> Result<Command, CommandError> {
    let usage = CommandError::Syntax("Syntax: RCPT TO:<address>");
    let (path, params) = split_path(rest, "TO:").ok_or(usage)?;
    if let Some(p) = params.split_whitespace().next() {
        return Err(CommandError::UnsupportedParam(p.to_owned()));
    }
    match address::parse_path(path) {
        Ok(Some(to)) => Ok(Command::Rcpt { to }),
        Ok(None) => Err(CommandError::BadRecipient(AddressError::NoDomain)),
        Err(e) => Err(CommandError::BadRecipient(e)),
    }
}

/// Splits `FROM:<path> params` into the path (with brackets) and the parameter string. A single
/// space after the colon is tolerated, as most servers do.
fn split_path<'a>(rest: &'a str, keyword: &str) -> Option<(&'a str, &'a str)> {
    let head = rest.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let after = rest.get(keyword.len()..)?.trim_start();
    if !after.starts_with('<') {
        return None;
    }
    // The path ends at the first '>' outside a quoted local part.
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in after.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '>' if !in_quotes => {
                let path = after.get(..=i)?;
                let params = after.get(i + 1..)?;
                if !params.is_empty() && !params.starts_with(' ') {
                    return None;
                }
                return Some((path, params));
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(line: &str, want: Result<Command, CommandError>) {
        assert_eq!(Command::parse(line.as_bytes()), want, "{line:?}");
    }

    fn mbox(s: &str) -> Mailbox {
        Mailbox::parse(s).unwrap()
    }

    #[test]
    fn verbs() {
        check(
            "EHLO client.example",
            Ok(Command::Ehlo("client.example".into())),
        );
        check("ehlo [127.0.0.1]", Ok(Command::Ehlo("[127.0.0.1]".into())));
        check("HELO x", Ok(Command::Helo("x".into())));
        check("EHLO", Err(CommandError::Syntax("Syntax: EHLO hostname")));
        check("DATA", Ok(Command::Data));
        check(
            "data x",
            Err(CommandError::Syntax("Syntax: DATA (no parameters)")),
        );
        check("RSET", Ok(Command::Rset));
        check("NOOP anything", Ok(Command::Noop));
        check("QUIT", Ok(Command::Quit));
        check("VRFY bob", Ok(Command::Vrfy));
        check("HELP", Ok(Command::Help));
        check("STARTTLS", Ok(Command::StartTls));
        check("EXPN list", Ok(Command::NotImplemented("EXPN".into())));
        check("BDAT 10 LAST", Ok(Command::NotImplemented("BDAT".into())));
        check("FOO", Err(CommandError::Unrecognized));
        check("", Err(CommandError::Unrecognized));
        check("MAIL FROM:<a@b.c>\u{0}", Err(CommandError::NotText));
    }

    #[test]
    fn mail_from() {
        check(
            "MAIL FROM:<>",
            Ok(Command::Mail {
                from: None,
                params: MailParams::default(),
            }),
        );
        check(
            "MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME",
            Ok(Command::Mail {
                from: Some(mbox("a@b.example")),
                params: MailParams {
                    size: Some(1000),
                    eight_bit: true,
                },
            }),
        );
        check(
            "mail from: <a@b.example>",
            Ok(Command::Mail {
                from: Some(mbox("a@b.example")),
                params: MailParams::default(),
            }),
        );
        check(
            "MAIL FROM:<\"x>y\"@b.example>",
            Ok(Command::Mail {
                from: Some(mbox("\"x>y\"@b.example")),
                params: MailParams::default(),
            }),
        );
        check(
            "MAIL FROM:a@b.example",
            Err(CommandError::Syntax("Syntax: MAIL FROM:<address>")),
        );
        check(
            "MAIL TO:<a@b.example>",
            Err(CommandError::Syntax("Syntax: MAIL FROM:<address>")),
        );
        check(
            "MAIL FROM:<a@b.example>SIZE=1",
            Err(CommandError::Syntax("Syntax: MAIL FROM:<address>")),
        );
        check(
            "MAIL FROM:<a@b.example> SIZE=x",
            Err(CommandError::Syntax("Syntax: SIZE=<number of octets>")),
        );
        check(
            "MAIL FROM:<a@b.example> AUTH=<>",
            Err(CommandError::UnsupportedParam("AUTH=<>".into())),
        );
        check(
            "MAIL FROM:<a@@b>",
            Err(CommandError::BadSender(AddressError::BadLocalPart)),
        );
    }

    #[test]
    fn rcpt_to() {
        check(
            "RCPT TO:<u@d.example>",
            Ok(Command::Rcpt {
                to: mbox("u@d.example"),
            }),
        );
        check(
            "RCPT TO:<>",
            Err(CommandError::BadRecipient(AddressError::NoDomain)),
        );
        check(
            "RCPT TO:<Postmaster>",
            Err(CommandError::BadRecipient(AddressError::NoDomain)),
        );
        check(
            "RCPT TO:<u@d.example> NOTIFY=NEVER",
            Err(CommandError::UnsupportedParam("NOTIFY=NEVER".into())),
        );
        check(
            "RCPT FROM:<u@d.example>",
            Err(CommandError::Syntax("Syntax: RCPT TO:<address>")),
        );
    }

    #[test]
    fn replies_are_precise() {
        assert_eq!(CommandError::Unrecognized.reply().code, 500);
        assert_eq!(
            CommandError::BadRecipient(AddressError::BadDomain)
                .reply()
                .to_string(),
            "501 5.1.3 Bad recipient address syntax: domain is invalid"
        );
        assert_eq!(
            CommandError::UnsupportedParam("X=1".into()).reply().code,
            555
        );
    }
}
