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
            // A second entry for the same domain would never match (first match wins): it is
            // a mistake, most likely an edit that was meant to replace the first.
            Some(pattern) if out.iter().any(|c: &Compiled| c.pattern == pattern) => {
                let first = entries
                    .iter()
                    .position(|o| {
                        crate::domains::Pattern::parse(&o.domain) == Some(pattern.clone())
                    })
                    .unwrap_or(0);
                errors.push(Problem::new(
                    format!("rat[{i}]"),
                    format!(
                        "domain {:?} is in the table already (row {}); edit that entry instead",
                        e.domain,
                        first + 1
                    ),
                ));
            }
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

/// Whether the table has an `ALL` → Accept entry: every domain that no entry above it rejects
/// is then a destination, and every client the HAT accepts can send through this gateway to it.
pub fn accepts_all(entries: &[RatEntry]) -> bool {
    entries.iter().any(|e| {
        e.action == RatAction::Accept
            && crate::domains::Pattern::parse(&e.domain) == Some(crate::domains::Pattern::All)
    })
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

    #[test]
    fn a_domain_twice_is_refused() {
        let entry = |d: &str, action| RatEntry {
            domain: d.into(),
            action,
        };
        let mut errors = Vec::new();
        compile(
            &[
                entry("example.com", RatAction::Accept),
                entry("example.org", RatAction::Accept),
                entry("EXAMPLE.com", RatAction::Reject),
            ],
            &mut errors,
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].at, "rat[2]");
        assert!(errors[0].message.contains("row 1"), "{}", errors[0].message);
        assert!(!accepts_all(&[entry("ALL", RatAction::Reject)]));
        assert!(accepts_all(&[
            entry("example.com", RatAction::Accept),
            entry("all", RatAction::Accept)
        ]));
    }
}
