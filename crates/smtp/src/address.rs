//! Mailbox and path syntax of RFC 5321 §4.1.2, with the length limits of §4.5.3.1.
//!
//! Domains are kept lowercase (they are case-insensitive, RFC 5321 §2.4); local parts are kept as
//! sent, since only the destination host may interpret them. Only ASCII is accepted: Rampart does
//! not announce SMTPUTF8, so internationalised domains arrive as A-labels (`xn--…`).

use std::fmt;

/// Longest local part (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_PART: usize = 64;
/// Longest domain (RFC 5321 §4.5.3.1.2).
pub const MAX_DOMAIN: usize = 255;
/// Longest path including the angle brackets (RFC 5321 §4.5.3.1.3).
pub const MAX_PATH: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("address must be enclosed in <>")]
    NoBrackets,
    #[error("address is missing the @ and domain")]
    NoDomain,
    #[error("local part is empty or invalid")]
    BadLocalPart,
    #[error("domain is invalid")]
    BadDomain,
    #[error("address is too long")]
    TooLong,
    #[error("address contains non-ASCII characters (SMTPUTF8 is not supported)")]
    NonAscii,
}

/// A lowercase domain name or address literal (`[192.0.2.1]`, `[IPv6:…]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(String);

impl Domain {
    /// Parses a domain (RFC 5321 `Domain` or `address-literal`).
    pub fn parse(s: &str) -> Result<Domain, AddressError> {
        if !s.is_ascii() {
            return Err(AddressError::NonAscii);
        }
        if s.is_empty() || s.len() > MAX_DOMAIN {
            return Err(AddressError::BadDomain);
        }
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or(AddressError::BadDomain)?;
            let valid = if let Some(v6) = inner
                .strip_prefix("IPv6:")
                .or_else(|| inner.strip_prefix("ipv6:"))
            {
                v6.parse::<std::net::Ipv6Addr>().is_ok()
            } else {
                inner.parse::<std::net::Ipv4Addr>().is_ok()
            };
            return if valid {
                Ok(Domain(s.to_ascii_lowercase()))
            } else {
                Err(AddressError::BadDomain)
            };
        }
        let s = s.strip_suffix('.').unwrap_or(s);
        for label in s.split('.') {
            let bytes = label.as_bytes();
            let ok = !bytes.is_empty()
                && bytes.len() <= 63
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
                && bytes.first().is_some_and(|b| *b != b'-')
                && bytes.last().is_some_and(|b| *b != b'-');
            if !ok {
                return Err(AddressError::BadDomain);
            }
        }
        Ok(Domain(s.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A mailbox `local@domain`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mailbox {
    /// The local part exactly as sent, quotes included when it was a quoted string.
    pub local: String,
    pub domain: Domain,
}

impl Mailbox {
    /// Parses a bare mailbox (no angle brackets), as found in forms, settings and the API.
    pub fn parse(s: &str) -> Result<Mailbox, AddressError> {
        if !s.is_ascii() {
            return Err(AddressError::NonAscii);
        }
        if s.len() > MAX_PATH - 2 {
            return Err(AddressError::TooLong);
        }
        let at = local_part_end(s)?;
        let (local, rest) = s.split_at(at);
        let domain = rest.strip_prefix('@').ok_or(AddressError::NoDomain)?;
        if local.len() > MAX_LOCAL_PART {
            return Err(AddressError::TooLong);
        }
        Ok(Mailbox {
            local: local.to_owned(),
            domain: Domain::parse(domain)?,
        })
    }

    /// The local part with quoting removed, lowercased: what policy patterns compare against.
    pub fn local_folded(&self) -> String {
        let inner = self
            .local
            .strip_prefix('"')
            .and_then(|l| l.strip_suffix('"'))
            .map(|q| {
                let mut out = String::with_capacity(q.len());
                let mut chars = q.chars();
                while let Some(c) = chars.next() {
                    if c == '\\' {
                        if let Some(n) = chars.next() {
                            out.push(n);
                        }
                    } else {
                        out.push(c);
                    }
                }
                out
            })
            .unwrap_or_else(|| self.local.clone());
        inner.to_ascii_lowercase()
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// The MAIL FROM path: a mailbox, or the null path `<>` used by bounces (RFC 5321 §4.5.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReversePath {
    Null,
    Mailbox(Mailbox),
}

impl fmt::Display for ReversePath {
    /// The address without brackets; the null path is the empty string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReversePath::Null => Ok(()),
            ReversePath::Mailbox(m) => m.fmt(f),
        }
    }
}

/// Parses `<…>` with an optional, ignored source route (`<@a,@b:user@c>`, RFC 5321 §4.1.2 and
/// Appendix C). Returns `None` for `<>`.
pub fn parse_path(s: &str) -> Result<Option<Mailbox>, AddressError> {
    if s.len() > MAX_PATH {
        return Err(AddressError::TooLong);
    }
    let inner = s
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .ok_or(AddressError::NoBrackets)?;
    if inner.is_empty() {
        return Ok(None);
    }
    // A source route is `@dom,@dom:`; its hosts must be ignored by receivers.
    let inner = if inner.starts_with('@') {
        let colon = inner.find(':').ok_or(AddressError::BadLocalPart)?;
        inner.get(colon + 1..).ok_or(AddressError::BadLocalPart)?
    } else {
        inner
    };
    Mailbox::parse(inner).map(Some)
}

/// Finds where the local part ends (the `@` before the domain), validating it as a Dot-string or
/// Quoted-string (RFC 5321 §4.1.2).
fn local_part_end(s: &str) -> Result<usize, AddressError> {
    let bytes = s.as_bytes();
    if bytes.first() == Some(&b'"') {
        let mut i = 1;
        while let Some(&b) = bytes.get(i) {
            match b {
                b'\\' => {
                    // quoted-pairSMTP: backslash followed by any printable ASCII.
                    match bytes.get(i + 1) {
                        Some(n) if (32..=126).contains(n) => i += 2,
                        _ => return Err(AddressError::BadLocalPart),
                    }
                }
                b'"' => {
                    return if i >= 1 && bytes.get(i + 1) == Some(&b'@') {
                        Ok(i + 1)
                    } else {
                        Err(AddressError::BadLocalPart)
                    };
                }
                32..=126 => i += 1,
                _ => return Err(AddressError::BadLocalPart),
            }
        }
        return Err(AddressError::BadLocalPart);
    }
    let at = s.rfind('@').ok_or(AddressError::NoDomain)?;
    let local = s.get(..at).ok_or(AddressError::BadLocalPart)?;
    if local.is_empty() || local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(AddressError::BadLocalPart);
    }
    if !local.bytes().all(|b| b == b'.' || is_atext(b)) {
        return Err(AddressError::BadLocalPart);
    }
    Ok(at)
}

/// RFC 5322 §3.2.3 atext.
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let cases: &[(&str, Result<Option<&str>, AddressError>)] = &[
            ("<>", Ok(None)),
            ("<user@Example.COM>", Ok(Some("user@example.com"))),
            (
                "<User.Name+tag@sub.example.com>",
                Ok(Some("User.Name+tag@sub.example.com")),
            ),
            (
                "<\"john doe\"@example.com>",
                Ok(Some("\"john doe\"@example.com")),
            ),
            (
                "<\"a\\\"b\"@example.com>",
                Ok(Some("\"a\\\"b\"@example.com")),
            ),
            (
                "<@relay.example,@b.example:user@example.com>",
                Ok(Some("user@example.com")),
            ),
            ("<user@[192.0.2.1]>", Ok(Some("user@[192.0.2.1]"))),
            (
                "<user@[IPv6:2001:db8::1]>",
                Ok(Some("user@[ipv6:2001:db8::1]")),
            ),
            (
                "<user@xn--bcher-kva.example>",
                Ok(Some("user@xn--bcher-kva.example")),
            ),
            ("user@example.com", Err(AddressError::NoBrackets)),
            ("<user>", Err(AddressError::NoDomain)),
            ("<@example.com>", Err(AddressError::BadLocalPart)),
            ("<.user@example.com>", Err(AddressError::BadLocalPart)),
            ("<us..er@example.com>", Err(AddressError::BadLocalPart)),
            ("<us er@example.com>", Err(AddressError::BadLocalPart)),
            ("<user@-bad.example>", Err(AddressError::BadDomain)),
            ("<user@exa_mple.com>", Err(AddressError::BadDomain)),
            ("<user@>", Err(AddressError::BadDomain)),
            ("<user@[300.1.1.1]>", Err(AddressError::BadDomain)),
            ("<üser@example.com>", Err(AddressError::NonAscii)),
        ];
        for (input, want) in cases {
            let got = parse_path(input).map(|m| m.map(|m| m.to_string()));
            let want = want.clone().map(|m| m.map(str::to_owned));
            assert_eq!(got, want, "{input}");
        }
    }

    #[test]
    fn length_limits() {
        let long_local = format!("<{}@example.com>", "a".repeat(65));
        assert_eq!(parse_path(&long_local), Err(AddressError::TooLong));
        let long_path = format!("<a@{}.com>", "b".repeat(260));
        assert_eq!(parse_path(&long_path), Err(AddressError::TooLong));
    }

    #[test]
    fn folded_local_part() {
        let m = Mailbox::parse("\"John\\ Doe\"@example.com").unwrap();
        assert_eq!(m.local_folded(), "john doe");
        assert_eq!(
            Mailbox::parse("Bob@Example.com").unwrap().local_folded(),
            "bob"
        );
    }

    /// Property over generated addresses: a mailbox that parses prints as text that parses back
    /// to the same mailbox.
    #[test]
    fn property_print_parse_round_trip() {
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        const LOCAL: &[u8] = b"abcXYZ019.-_+=!#$%&'*/?^`{|}~\" @\\";
        const DOMAIN: &[u8] = b"abz09-.[]:IPv6";
        let mut parsed = 0;
        for _ in 0..50_000 {
            let mut pick = |alphabet: &[u8], max: u64| -> String {
                let n = 1 + next() % max;
                (0..n)
                    .map(|_| alphabet[(next() as usize) % alphabet.len()] as char)
                    .collect()
            };
            let local = pick(LOCAL, 12);
            let domain = pick(DOMAIN, 12);
            let text = if next() % 4 == 0 {
                format!("\"{local}\"@{domain}")
            } else {
                format!("{local}@{domain}")
            };
            if let Ok(m) = Mailbox::parse(&text) {
                parsed += 1;
                let printed = m.to_string();
                assert_eq!(
                    Mailbox::parse(&printed).as_ref(),
                    Ok(&m),
                    "{text:?} printed {printed:?}"
                );
            }
        }
        assert!(
            parsed > 1000,
            "the generator reaches valid addresses ({parsed})"
        );
    }
}
