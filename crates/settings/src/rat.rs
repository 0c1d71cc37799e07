//! The recipient access table (RAT): the recipient domains this gateway accepts mail for, in
//! order, first match wins. `example.com` matches that domain, `.example.com` its subdomains,
//! `ALL` every domain. A domain that matches no entry is refused (unless the client may relay).

use serde::{Deserialize, Serialize};

use crate::Problem;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RatAction {
    Accept,
    Reject,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatEntry {
    pub domain: String,
    pub action: RatAction,
}

#[derive(Debug)]
pub(crate) struct Compiled {
    pattern: crate::domains::Pattern,
    action: RatAction,
}

pub(crate) fn compile(entries: &[RatEntry], errors: &mut Vec<Problem>) -> Vec<Compiled> {
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        match crate::domains::Pattern::parse(&e.domain) {
            Some(pattern) => out.push(Compiled {
                pattern,
                action: e.action,
            }),
            None => errors.push(Problem::new(
                format!("rat[{i}]"),
                format!(
                    "domain {:?} is not a domain, a .domain (subdomains) or ALL",
                    e.domain
                ),
            )),
        }
    }
    out
}

pub(crate) fn accepts(table: &[Compiled], domain: &str) -> bool {
    let domain = domain.to_ascii_lowercase();
    for e in table {
        if e.pattern.matches(&domain) {
            return e.action == RatAction::Accept;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        let entries = vec![
            RatEntry {
                domain: "blocked.example.com".into(),
                action: RatAction::Reject,
            },
            RatEntry {
                domain: "Example.com".into(),
                action: RatAction::Accept,
            },
            RatEntry {
                domain: ".example.com".into(),
                action: RatAction::Accept,
            },
            RatEntry {
                domain: "example.org".into(),
                action: RatAction::Accept,
            },
        ];
        let mut errors = Vec::new();
        let t = compile(&entries, &mut errors);
        assert!(errors.is_empty());
        for (d, want) in [
            ("example.com", true),
            ("EXAMPLE.COM", true),
            ("mail.example.com", true),
            ("blocked.example.com", false),
            ("badexample.com", false),
            ("example.org", true),
            ("sub.example.org", false),
            ("example.net", false),
        ] {
            assert_eq!(accepts(&t, d), want, "{d}");
        }
        let all = compile(
            &[RatEntry {
                domain: "ALL".into(),
                action: RatAction::Accept,
            }],
            &mut errors,
        );
        assert!(accepts(&all, "anything.test"));
    }
}
