//! Where mail for a destination domain goes: an SMTP route when one applies, else the MX
//! records (RFC 5321 §5.1): by preference, equal preferences in random order, the implicit MX
//! (the domain's own address) when there is no MX, and the null MX of RFC 7505 as "no mail".

use std::net::SocketAddr;

use rampart_settings::Snapshot;
use rampart_smtp::Enhanced;

use rampart_dns::{DnsError, Resolver};

/// One host to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host name (for SNI and logs), or the IP as text.
    pub name: String,
    pub addr: SocketAddr,
}

/// Why there is nowhere to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// Permanent: no such domain, or a null MX. `status` is the enhanced code.
    Hard { status: Enhanced, text: String },
    /// Try again later.
    Temporary(String),
}

/// Most hosts tried for one destination per connection attempt.
const MAX_TARGETS: usize = 10;

/// Resolves the hosts for `domain`, in the order to try them.
pub async fn targets(
    domain: &str,
    settings: &Snapshot,
    resolver: &dyn Resolver,
    default_port: u16,
) -> Result<Vec<Target>, RouteError> {
    if let Some(hosts) = settings.route(domain) {
        let mut out = Vec::new();
        let mut last = String::new();
        for h in hosts {
            let port = h.port.unwrap_or(default_port);
            match resolver.ips(&h.host).await {
                Ok(ips) => out.extend(ips.into_iter().map(|ip| Target {
                    name: h.host.clone(),
                    addr: SocketAddr::new(ip, port),
                })),
                Err(e) => last = format!("cannot resolve SMTP route host {}: {e}", h.host),
            }
        }
        out.truncate(MAX_TARGETS);
        return if out.is_empty() {
            Err(RouteError::Temporary(last))
        } else {
            Ok(out)
        };
    }
    let mxs = match resolver.mx(domain).await {
        Ok(mxs) => mxs,
        Err(DnsError::NoRecords) => {
            // Implicit MX: the domain itself (RFC 5321 §5.1).
            return match resolver.ips(domain).await {
                Ok(ips) => Ok(ips
                    .into_iter()
                    .take(MAX_TARGETS)
                    .map(|ip| Target {
                        name: domain.to_owned(),
                        addr: SocketAddr::new(ip, default_port),
                    })
                    .collect()),
                Err(DnsError::NxDomain) | Err(DnsError::NoRecords) => {
                    Err(bad_host(domain, "A", "NoRecords"))
                }
                Err(DnsError::Temporary(e)) => Err(temporary(domain, "A", &e)),
            };
        }
        Err(DnsError::NxDomain) => return Err(bad_host(domain, "MX", "NXDomain")),
        Err(DnsError::Temporary(e)) => return Err(temporary(domain, "MX", &e)),
    };
    if mxs.len() == 1
        && mxs
            .first()
            .is_some_and(|m| m.host.is_empty() || m.host == ".")
    {
        return Err(RouteError::Hard {
            status: Enhanced(5, 1, 10),
            text: format!("Recipient domain {domain} accepts no mail (null MX, RFC 7505)"),
        });
    }
    let mut ordered = mxs;
    shuffle_equal_preferences(&mut ordered);
    let mut out = Vec::new();
    let mut last = String::new();
    for mx in ordered {
        if mx.host.is_empty() || mx.host == "." {
            continue;
        }
        match resolver.ips(&mx.host).await {
            Ok(ips) => out.extend(ips.into_iter().map(|ip| Target {
                name: mx.host.clone(),
                addr: SocketAddr::new(ip, default_port),
            })),
            Err(e) => last = format!("cannot resolve MX host {}: {e}", mx.host),
        }
        if out.len() >= MAX_TARGETS {
            break;
        }
    }
    out.truncate(MAX_TARGETS);
    if out.is_empty() {
        Err(RouteError::Temporary(last))
    } else {
        Ok(out)
    }
}

fn bad_host(domain: &str, rtype: &str, what: &str) -> RouteError {
    RouteError::Hard {
        status: Enhanced(5, 1, 2),
        text: format!(
            "Bad destination host ('000', 'DNS Hard Error looking up {domain} ({rtype}): {what}')"
        ),
    }
}

fn temporary(domain: &str, rtype: &str, e: &str) -> RouteError {
    RouteError::Temporary(format!(
        "DNS Temporary Failure looking up {domain} ({rtype}): {e}"
    ))
}

/// Keeps the preference order but randomises hosts of equal preference (RFC 5321 §5.1).
fn shuffle_equal_preferences(mxs: &mut [rampart_dns::Mx]) {
    use rand::seq::SliceRandom;
    mxs.sort_by_key(|m| m.preference);
    let mut rng = rand::rng();
    for group in mxs.chunk_by_mut(|a, b| a.preference == b.preference) {
        group.shuffle(&mut rng);
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use rampart_dns::Mx;
    use rampart_dns::fake::FakeDns;

    fn mx(p: u16, h: &str) -> Mx {
        Mx {
            preference: p,
            host: h.into(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    async fn check(
        dns: &FakeDns,
        settings: &Snapshot,
        domain: &str,
    ) -> Result<Vec<String>, RouteError> {
        targets(domain, settings, dns, 25).await.map(|t| {
            t.into_iter()
                .map(|t| format!("{} {}", t.name, t.addr))
                .collect()
        })
    }

    #[tokio::test]
    async fn mx_routes_and_failures() {
        let mut dns = FakeDns::default();
        dns.mx.insert(
            "example.com".into(),
            Ok(vec![mx(20, "mx2.example.com"), mx(10, "mx1.example.com")]),
        );
        dns.ips
            .insert("mx1.example.com".into(), Ok(vec![ip("127.0.0.10")]));
        dns.ips
            .insert("mx2.example.com".into(), Ok(vec![ip("127.0.0.20")]));
        dns.mx
            .insert("implicit.test".into(), Err(DnsError::NoRecords));
        dns.ips
            .insert("implicit.test".into(), Ok(vec![ip("127.0.0.30")]));
        dns.mx.insert("nullmx.test".into(), Ok(vec![mx(0, "")]));
        dns.mx.insert(
            "servfail.test".into(),
            Err(DnsError::Temporary("ServFail".into())),
        );
        dns.mx
            .insert("lame.test".into(), Ok(vec![mx(10, "nowhere.lame.test")]));
        let mut s = rampart_settings::Settings::default();
        s.smtp_routes.push(rampart_settings::SmtpRoute {
            domain: "routed.test".into(),
            hosts: vec!["127.0.0.1:2626".into(), "mx1.example.com".into()],
        });
        let snap = s.compile().unwrap();

        assert_eq!(
            check(&dns, &snap, "example.com").await.unwrap(),
            [
                "mx1.example.com 127.0.0.10:25",
                "mx2.example.com 127.0.0.20:25"
            ]
        );
        assert_eq!(
            check(&dns, &snap, "implicit.test").await.unwrap(),
            ["implicit.test 127.0.0.30:25"]
        );
        assert_eq!(
            check(&dns, &snap, "routed.test").await.unwrap(),
            ["127.0.0.1 127.0.0.1:2626", "mx1.example.com 127.0.0.10:25"]
        );
        assert!(matches!(
            check(&dns, &snap, "nullmx.test").await,
            Err(RouteError::Hard {
                status: Enhanced(5, 1, 10),
                ..
            })
        ));
        match check(&dns, &snap, "nosuch.test").await {
            Err(RouteError::Hard { status, text }) => {
                assert_eq!(status, Enhanced(5, 1, 2));
                assert_eq!(
                    text,
                    "Bad destination host ('000', 'DNS Hard Error looking up nosuch.test (MX): NXDomain')"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            check(&dns, &snap, "servfail.test").await,
            Err(RouteError::Temporary(_))
        ));
        assert!(matches!(
            check(&dns, &snap, "lame.test").await,
            Err(RouteError::Temporary(_))
        ));
    }
}
