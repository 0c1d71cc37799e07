//! Content filters: ordered per policy, each a set of conditions (all or any) and actions
//! (AsyncOS *Incoming Content Filters*, simplified to what Rampart's security services offer).

use ipnet::IpNet;
use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use crate::Problem;
use crate::facts::{AuthResult, Facts};

/// Largest compiled regex, so a hostile pattern cannot eat the appliance's memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentFilter {
    pub name: String,
    /// `all` (every condition) or `any` (at least one).
    #[serde(default = "all")]
    pub combine: Combine,
    pub conditions: Vec<FilterCondition>,
    pub actions: Vec<FilterAction>,
}

fn all() -> Combine {
    Combine::All
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Combine {
    All,
    Any,
}

/// One condition; regexes are case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FilterCondition {
    Header {
        name: String,
        regex: String,
    },
    Subject {
        regex: String,
    },
    Body {
        regex: String,
    },
    AttachmentName {
        regex: String,
    },
    AttachmentType {
        regex: String,
    },
    /// Message size in bytes at least this.
    SizeAtLeast {
        bytes: u64,
    },
    RemoteIp {
        networks: Vec<String>,
    },
    Spf {
        result: AuthResult,
    },
    Dkim {
        result: AuthResult,
    },
    Dmarc {
        result: AuthResult,
    },
}

/// What a matching filter does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FilterAction {
    /// Deliver; an explicit deliver is not a finding (the message stays clean).
    Deliver,
    Drop,
    /// Refuse the message; `reply` is the text the sender sees (`550 5.7.1 <reply>`).
    Bounce {
        reply: String,
    },
    Quarantine,
    AddHeader {
        name: String,
        value: String,
    },
    ReplaceHeader {
        name: String,
        value: String,
    },
    TagSubject {
        tag: String,
    },
    /// Stop evaluating the remaining filters.
    SkipRemaining,
}

#[derive(Debug, Clone)]
pub(crate) enum Compiled {
    Header(String, Regex),
    Subject(Regex),
    Body(Regex),
    AttachmentName(Regex),
    AttachmentType(Regex),
    SizeAtLeast(u64),
    RemoteIp(Vec<IpNet>),
    Spf(AuthResult),
    Dkim(AuthResult),
    Dmarc(AuthResult),
}

#[derive(Debug, Clone)]
pub struct CompiledFilter {
    pub(crate) name: String,
    pub(crate) combine: Combine,
    pub(crate) conditions: Vec<Compiled>,
    pub(crate) actions: Vec<FilterAction>,
}

fn regex(where_: &str, pattern: &str) -> Result<Regex, Problem> {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            Problem::new(
                where_,
                format!(
                    "invalid regex {pattern:?}: {}",
                    e.to_string().lines().last().unwrap_or("")
                ),
            )
        })
}

fn header_name_ok(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

/// Validates and compiles the filters of one policy; `at` names the policy for messages.
pub(crate) fn compile(
    filters: &[ContentFilter],
    at: &str,
    errors: &mut Vec<Problem>,
) -> Vec<CompiledFilter> {
    let mut out = Vec::new();
    for (i, f) in filters.iter().enumerate() {
        let here = format!("{at}.content_filters[{i}] ({})", f.name);
        if f.name.trim().is_empty() {
            errors.push(Problem::new(here.to_string(), "a filter needs a name"));
        }
        if f.conditions.is_empty() {
            errors.push(Problem::new(
                here.to_string(),
                "needs at least one condition",
            ));
        }
        if f.actions.is_empty() {
            errors.push(Problem::new(here.to_string(), "needs at least one action"));
        }
        let mut conditions = Vec::new();
        for c in &f.conditions {
            let compiled = match c {
                FilterCondition::Header { name, regex: r } => {
                    if !header_name_ok(name) {
                        errors.push(Problem::new(
                            here.to_string(),
                            format!("header name {name:?} is not valid"),
                        ));
                        continue;
                    }
                    regex(&here, r).map(|r| Compiled::Header(name.to_ascii_lowercase(), r))
                }
                FilterCondition::Subject { regex: r } => regex(&here, r).map(Compiled::Subject),
                FilterCondition::Body { regex: r } => regex(&here, r).map(Compiled::Body),
                FilterCondition::AttachmentName { regex: r } => {
                    regex(&here, r).map(Compiled::AttachmentName)
                }
                FilterCondition::AttachmentType { regex: r } => {
                    regex(&here, r).map(Compiled::AttachmentType)
                }
                FilterCondition::SizeAtLeast { bytes } => Ok(Compiled::SizeAtLeast(*bytes)),
                FilterCondition::RemoteIp { networks } => {
                    let mut nets = Vec::new();
                    for n in networks {
                        match n
                            .parse::<IpNet>()
                            .or_else(|_| n.parse::<std::net::IpAddr>().map(IpNet::from))
                        {
                            Ok(net) => nets.push(net.trunc()),
                            Err(_) => errors.push(Problem::new(
                                here.to_string(),
                                format!("{n:?} is not an IP address or CIDR range"),
                            )),
                        }
                    }
                    Ok(Compiled::RemoteIp(nets))
                }
                FilterCondition::Spf { result } => Ok(Compiled::Spf(*result)),
                FilterCondition::Dkim { result } => Ok(Compiled::Dkim(*result)),
                FilterCondition::Dmarc { result } => Ok(Compiled::Dmarc(*result)),
            };
            match compiled {
                Ok(c) => conditions.push(c),
                Err(e) => errors.push(e),
            }
        }
        for a in &f.actions {
            match a {
                FilterAction::AddHeader { name, value }
                | FilterAction::ReplaceHeader { name, value } => {
                    if !header_name_ok(name) {
                        errors.push(Problem::new(
                            here.to_string(),
                            format!("header name {name:?} is not valid"),
                        ));
                    }
                    if value.contains(['\r', '\n']) {
                        errors.push(Problem::new(
                            here.to_string(),
                            "header value must be one line",
                        ));
                    }
                }
                FilterAction::Bounce { reply } if reply.contains(['\r', '\n']) => {
                    errors.push(Problem::new(
                        here.to_string(),
                        "bounce reply must be one line",
                    ));
                }
                FilterAction::TagSubject { tag } if tag.contains(['\r', '\n']) => {
                    errors.push(Problem::new(
                        here.to_string(),
                        "subject tag must be one line",
                    ));
                }
                _ => {}
            }
        }
        out.push(CompiledFilter {
            name: f.name.clone(),
            combine: f.combine,
            conditions,
            actions: f.actions.clone(),
        });
    }
    out
}

impl Compiled {
    fn matches(&self, facts: &Facts) -> bool {
        match self {
            Compiled::Header(name, r) => facts.header_values(name).any(|v| r.is_match(v)),
            Compiled::Subject(r) => r.is_match(&facts.subject),
            Compiled::Body(r) => r.is_match(&facts.body_text),
            Compiled::AttachmentName(r) => facts.attachments.iter().any(|(n, _)| r.is_match(n)),
            Compiled::AttachmentType(r) => facts.attachments.iter().any(|(_, t)| r.is_match(t)),
            Compiled::SizeAtLeast(n) => facts.size as u64 >= *n,
            Compiled::RemoteIp(nets) => facts.remote_ip.is_some_and(|ip| {
                let ip = match ip {
                    std::net::IpAddr::V6(v6) => {
                        v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip)
                    }
                    v4 => v4,
                };
                nets.iter().any(|n| n.contains(&ip))
            }),
            Compiled::Spf(r) => facts.spf == Some(*r),
            Compiled::Dkim(r) => facts.dkim == Some(*r),
            Compiled::Dmarc(r) => facts.dmarc == Some(*r),
        }
    }
}

/// What one filter says of a message (the content filter builder's *Test*): each condition's
/// result, and the filter's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterTest {
    pub conditions: Vec<bool>,
    pub matches: bool,
}

/// Tests `filter` against `facts`, or says why it does not compile.
pub fn test_filter(filter: &ContentFilter, facts: &Facts) -> Result<FilterTest, Vec<Problem>> {
    let mut errors = Vec::new();
    let compiled = compile(std::slice::from_ref(filter), "filter", &mut errors);
    let Some(f) = compiled.first().filter(|_| errors.is_empty()) else {
        return Err(errors);
    };
    Ok(FilterTest {
        conditions: f.conditions.iter().map(|c| c.matches(facts)).collect(),
        matches: f.matches(facts),
    })
}

impl CompiledFilter {
    pub(crate) fn matches(&self, facts: &Facts) -> bool {
        match self.combine {
            Combine::All => self.conditions.iter().all(|c| c.matches(facts)),
            Combine::Any => self.conditions.iter().any(|c| c.matches(facts)),
        }
    }
}
