//! The host access table (HAT): sender groups matched on the client's IP or its verified
//! reverse DNS name, in order, each with a mail flow policy (SPEC §1). A group whose hosts include
//! `ALL` matches every client; a client that matches no group is refused (`554`), as if the table
//! ended with `ALL REJECT`.
//!
//! A host name entry (`mail.example.com`, or `.example.com` for any name below it) matches only a
//! forward-confirmed name: anyone can publish a PTR record claiming to be `mail.bank.example`,
//! only the owner of that name can make it point back to the client.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::Problem;

/// What a sender group's clients may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum FlowPolicy {
    /// Inbound mail: only recipients in the RAT are accepted.
    Accept,
    /// Outbound mail: any recipient is accepted.
    Relay,
    /// Greeted with `554` and refused.
    Reject,
    /// The connection is closed before the banner.
    Tcprefuse,
}

impl FlowPolicy {
    /// The AsyncOS name, as in mail logs.
    pub fn as_str(self) -> &'static str {
        match self {
            FlowPolicy::Accept => "ACCEPT",
            FlowPolicy::Relay => "RELAY",
            FlowPolicy::Reject => "REJECT",
            FlowPolicy::Tcprefuse => "TCPREFUSE",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SenderGroup {
    /// Group name, e.g. `RELAYLIST`.
    pub name: String,
    /// IP addresses, CIDR ranges, host names (`mail.example.com`, `.example.com`) or `ALL`.
    pub hosts: Vec<String>,
    pub policy: FlowPolicy,
    /// The mail flow policy's limits and TLS for this group's clients; none by default.
    #[serde(default, skip_serializing_if = "FlowLimits::is_none")]
    pub limits: FlowLimits,
}

/// What a mail flow policy allows a client of its sender group (AsyncOS *Mail Flow Policies*):
/// each limit unset means only the listener's own limits apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowLimits {
    /// Messages accepted in one connection; the next MAIL gets `421` and the connection closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_messages_per_connection: Option<u32>,
    /// Recipients accepted per hour from one client IP address; more get `452`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_recipients_per_hour: Option<u32>,
    /// Simultaneous connections from one client IP address; more get `421`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_ip: Option<u32>,
    /// STARTTLS: `off` (not offered), `preferred` (offered, the default), `required` (MAIL
    /// before STARTTLS gets `530`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::TlsPolicy>,
}

impl FlowLimits {
    pub fn is_none(&self) -> bool {
        *self == FlowLimits::default()
    }
}

/// The result of matching a client against the HAT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HatMatch {
    pub group: String,
    pub policy: FlowPolicy,
    /// The host entry that matched, for the log line (`match 127.0.0.0/8`).
    pub matched: String,
    pub limits: FlowLimits,
}

#[derive(Debug)]
pub(crate) struct Compiled {
    name: String,
    policy: FlowPolicy,
    limits: FlowLimits,
    hosts: Vec<(String, Host)>,
}

#[derive(Debug)]
enum Host {
    All,
    Net(IpNet),
    Name(crate::domains::Pattern),
}

pub(crate) fn default_table() -> Vec<SenderGroup> {
    let mut table = loopback_only();
    table.push(SenderGroup {
        name: "ALL".into(),
        hosts: vec!["ALL".into()],
        policy: FlowPolicy::Accept,
        limits: FlowLimits::default(),
    });
    table
}

pub(crate) fn compile(groups: &[SenderGroup], errors: &mut Vec<Problem>) -> Vec<Compiled> {
    compile_at(groups, "hat", errors)
}

/// The HAT of a listener without one of its own: loopback clients are accepted, everyone else
/// is refused, until the administrator adds sender groups.
pub(crate) fn loopback_only() -> Vec<SenderGroup> {
    vec![SenderGroup {
        name: "LOOPBACK".into(),
        hosts: vec!["127.0.0.0/8".into(), "::1/128".into()],
        policy: FlowPolicy::Accept,
        limits: FlowLimits::default(),
    }]
}

/// `at` names the table in problems (`hat`, `listener_hats[0].hat`).
pub(crate) fn compile_at(
    groups: &[SenderGroup],
    at: &str,
    errors: &mut Vec<Problem>,
) -> Vec<Compiled> {
    let mut out = Vec::with_capacity(groups.len());
    for (i, g) in groups.iter().enumerate() {
        let name_ok = !g.name.is_empty()
            && g.name.len() <= 64
            && g.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !name_ok {
            errors.push(Problem::new(
                format!("{at}[{i}]"),
                format!("name {:?} must be 1-64 letters, digits, '_' or '-'", g.name),
            ));
        }
        if groups
            .iter()
            .take(i)
            .any(|o| o.name.eq_ignore_ascii_case(&g.name))
        {
            errors.push(Problem::new(
                format!("{at}[{i}]"),
                format!("sender group name {:?} is used twice", g.name),
            ));
        }
        let mut hosts = Vec::with_capacity(g.hosts.len());
        for h in &g.hosts {
            let h = h.trim();
            if h.eq_ignore_ascii_case("ALL") {
                hosts.push(("ALL".to_owned(), Host::All));
            } else if let Some(net) = crate::parse_net(h) {
                hosts.push((h.to_owned(), Host::Net(net.trunc())));
            } else if let Some(p) = crate::domains::Pattern::parse(h)
                .filter(|p| !matches!(p, crate::domains::Pattern::All))
                // Not an address literal, nor a mistyped address such as `10.0.0`.
                .filter(|_| {
                    !h.starts_with('[') && !h.bytes().all(|b| b.is_ascii_digit() || b == b'.')
                })
            {
                hosts.push((h.to_ascii_lowercase(), Host::Name(p)));
            } else {
                errors.push(Problem::new(format!("{at}[{i}] ({})", g.name), format!("host {h:?} is not an IP address, a CIDR range, a host name (mail.example.com, .example.com) or ALL")));
            }
        }
        let here = || format!("{at}[{i}] ({})", g.name);
        for (what, value, max) in [
            (
                "limits.max_messages_per_connection",
                g.limits.max_messages_per_connection,
                100_000,
            ),
            (
                "limits.max_recipients_per_hour",
                g.limits.max_recipients_per_hour,
                100_000_000,
            ),
            (
                "limits.max_connections_per_ip",
                g.limits.max_connections_per_ip,
                10_000,
            ),
        ] {
            if value.is_some_and(|v| v == 0 || v > max) {
                errors.push(Problem::new(
                    here(),
                    format!("{what} must be 1-{max}, or left out for no limit"),
                ));
            }
        }
        out.push(Compiled {
            name: g.name.clone(),
            policy: g.policy,
            limits: g.limits,
            hosts,
        });
    }
    out
}

/// `verified_name` is the client's forward-confirmed reverse DNS name, if it has one.
pub(crate) fn classify(table: &[Compiled], ip: IpAddr, verified_name: Option<&str>) -> HatMatch {
    // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    let name = verified_name.map(str::to_ascii_lowercase);
    for g in table {
        for (text, host) in &g.hosts {
            let hit = match host {
                Host::All => true,
                Host::Net(net) => net.contains(&ip),
                Host::Name(p) => name.as_deref().is_some_and(|n| p.matches(n)),
            };
            if hit {
                return HatMatch {
                    group: g.name.clone(),
                    policy: g.policy,
                    matched: text.clone(),
                    limits: g.limits,
                };
            }
        }
    }
    HatMatch {
        group: "ALL".into(),
        policy: FlowPolicy::Reject,
        matched: "no sender group".into(),
        limits: FlowLimits::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(groups: &[(&str, &[&str], FlowPolicy)]) -> Vec<Compiled> {
        let groups: Vec<SenderGroup> = groups
            .iter()
            .map(|(n, h, p)| SenderGroup {
                name: n.to_string(),
                hosts: h.iter().map(|s| s.to_string()).collect(),
                policy: *p,
                limits: FlowLimits::default(),
            })
            .collect();
        let mut errors = Vec::new();
        let t = compile(&groups, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        t
    }

    #[test]
    fn first_match_wins() {
        let t = table(&[
            (
                "RELAYLIST",
                &["10.1.0.0/16", "192.0.2.5"],
                FlowPolicy::Relay,
            ),
            ("BLOCKED", &["10.0.0.0/8"], FlowPolicy::Reject),
            ("REFUSE", &["2001:db8::/32"], FlowPolicy::Tcprefuse),
        ]);
        let cases = [
            ("10.1.2.3", "RELAYLIST", FlowPolicy::Relay),
            ("192.0.2.5", "RELAYLIST", FlowPolicy::Relay),
            ("::ffff:10.1.2.3", "RELAYLIST", FlowPolicy::Relay),
            ("10.2.0.1", "BLOCKED", FlowPolicy::Reject),
            ("2001:db8::1", "REFUSE", FlowPolicy::Tcprefuse),
            ("198.51.100.1", "ALL", FlowPolicy::Reject),
        ];
        for (ip, group, policy) in cases {
            let m = classify(&t, ip.parse().unwrap(), None);
            assert_eq!((m.group.as_str(), m.policy), (group, policy), "{ip}");
        }
    }

    #[test]
    fn host_names_match_only_a_verified_name() {
        let t = table(&[
            ("PARTNERS", &["mail.partner.test"], FlowPolicy::Relay),
            ("TRUSTED", &[".example.com"], FlowPolicy::Accept),
            ("REST", &["ALL"], FlowPolicy::Reject),
        ]);
        let cases = [
            (Some("mail.partner.test"), "PARTNERS", "mail.partner.test"),
            (Some("MAIL.Partner.TEST"), "PARTNERS", "mail.partner.test"),
            (Some("other.partner.test"), "REST", "ALL"),
            (Some("mx1.example.com"), "TRUSTED", ".example.com"),
            (Some("a.b.example.com"), "TRUSTED", ".example.com"),
            // `.example.com` is strictly below the domain, as in the RAT.
            (Some("example.com"), "REST", "ALL"),
            (Some("badexample.com"), "REST", "ALL"),
            (None, "REST", "ALL"),
        ];
        for (name, group, matched) in cases {
            let m = classify(&t, "192.0.2.1".parse().unwrap(), name);
            assert_eq!(
                (m.group.as_str(), m.matched.as_str()),
                (group, matched),
                "{name:?}"
            );
        }
    }

    #[test]
    fn invalid_entries_are_named() {
        let groups = vec![
            SenderGroup {
                name: "bad name".into(),
                hosts: vec!["10.0.0.0/33".into()],
                policy: FlowPolicy::Accept,
                limits: FlowLimits::default(),
            },
            SenderGroup {
                name: "X".into(),
                hosts: vec!["mail..example.com".into(), "10.0.0".into()],
                policy: FlowPolicy::Accept,
                limits: FlowLimits::default(),
            },
            SenderGroup {
                name: "x".into(),
                hosts: vec![],
                policy: FlowPolicy::Accept,
                limits: FlowLimits::default(),
            },
        ];
        let mut errors = Vec::new();
        compile(&groups, &mut errors);
        assert_eq!(errors.len(), 5, "{errors:?}");
        assert!(
            errors[0]
                .to_string()
                .starts_with("hat[0]: name \"bad name\"")
        );
        assert!(errors[1].to_string().contains("\"10.0.0.0/33\""));
        assert!(errors[2].to_string().contains("\"mail..example.com\""));
        assert!(
            errors[3]
                .to_string()
                .contains("\"10.0.0\" is not an IP address")
        );
        assert!(errors[4].to_string().contains("used twice"));
    }
}
