//! Address patterns of mail policies (SPEC §3): `user@example.com`, `@example.com`,
//! `@.example.com` (subdomains), `user@` (that local part at any domain). An empty list means any.
//! Domains and local parts compare case-insensitively; quoted local parts compare unquoted.

use rampart_smtp::Mailbox;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Address {
        local: String,
        domain: String,
    },
    Domain(String),
    /// Stored with its leading dot.
    Subdomains(String),
    Local(String),
}

impl Pattern {
    /// Parses one pattern; the error says what is wrong with it.
    pub fn parse(s: &str) -> Result<Pattern, String> {
        let s = s.trim();
        let Some((local, domain)) = s.rsplit_once('@') else {
            return Err(format!(
                "{s:?} is not a pattern: use user@example.com, @example.com, @.example.com or user@"
            ));
        };
        if domain.is_empty() {
            if local.is_empty() {
                return Err(
                    "\"@\" alone is not a pattern; leave the list empty to match any address"
                        .into(),
                );
            }
            return Ok(Pattern::Local(fold_local(local)));
        }
        let (sub, bare) = match domain.strip_prefix('.') {
            Some(rest) => (true, rest),
            None => (false, domain),
        };
        let dom = rampart_smtp::Domain::parse(bare).map_err(|e| format!("{s:?}: {e}"))?;
        let dom = dom.as_str().to_owned();
        match (local.is_empty(), sub) {
            (true, true) => Ok(Pattern::Subdomains(format!(".{dom}"))),
            (true, false) => Ok(Pattern::Domain(dom)),
            (false, false) => {
                Mailbox::parse(&format!("{local}@{dom}")).map_err(|e| format!("{s:?}: {e}"))?;
                Ok(Pattern::Address {
                    local: fold_local(local),
                    domain: dom,
                })
            }
            (false, true) => Err(format!(
                "{s:?}: a user with subdomains is not a pattern; use @.{bare}"
            )),
        }
    }

    pub fn matches(&self, addr: &Mailbox) -> bool {
        let domain = addr.domain.as_str();
        match self {
            Pattern::Address { local, domain: d } => d == domain && *local == addr.local_folded(),
            Pattern::Domain(d) => d == domain,
            Pattern::Subdomains(suffix) => domain.ends_with(suffix.as_str()),
            Pattern::Local(local) => *local == addr.local_folded(),
        }
    }
}

fn fold_local(local: &str) -> String {
    Mailbox::parse(&format!("{local}@x.invalid"))
        .map(|m| m.local_folded())
        .unwrap_or_else(|_| local.to_ascii_lowercase())
}

/// True when `list` is empty (any) or one of its patterns matches. The null sender `<>` is
/// matched only by an empty list.
pub fn any_matches(list: &[Pattern], addr: Option<&Mailbox>) -> bool {
    match addr {
        _ if list.is_empty() => true,
        None => false,
        Some(a) => list.iter().any(|p| p.matches(a)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Mailbox {
        Mailbox::parse(s).unwrap()
    }

    #[test]
    fn matching_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("user@example.com", "user@example.com", true),
            ("user@example.com", "USER@Example.COM", true),
            ("user@example.com", "user@sub.example.com", false),
            ("user@example.com", "other@example.com", false),
            ("@example.com", "anyone@EXAMPLE.com", true),
            ("@example.com", "anyone@sub.example.com", false),
            ("@.example.com", "anyone@sub.example.com", true),
            ("@.example.com", "anyone@a.b.example.com", true),
            ("@.example.com", "anyone@example.com", false),
            ("@.example.com", "anyone@badexample.com", false),
            ("postmaster@", "postmaster@anywhere.test", true),
            ("postmaster@", "PostMaster@x.test", true),
            ("postmaster@", "other@x.test", false),
            ("\"john doe\"@example.com", "\"John Doe\"@example.com", true),
            ("@xn--bcher-kva.example", "u@XN--BCHER-KVA.example", true),
        ];
        for (pattern, addr, want) in cases {
            let p = Pattern::parse(pattern).unwrap();
            assert_eq!(p.matches(&m(addr)), *want, "{pattern} vs {addr}");
        }
    }

    #[test]
    fn bad_patterns_say_why() {
        for bad in [
            "example.com",
            "@",
            "@bad domain",
            "us er@example.com",
            "user@.example.com",
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
        assert!(
            Pattern::parse("@bad domain")
                .unwrap_err()
                .contains("domain is invalid")
        );
    }

    #[test]
    fn empty_list_is_any_and_null_sender() {
        assert!(any_matches(&[], None));
        assert!(!any_matches(&[Pattern::Domain("example.com".into())], None));
    }
}
