//! SMTP routes (*Network > SMTP Routes*): destination domains delivered to fixed hosts instead of
//! their MX records. `example.com` matches that domain, `.example.com` its subdomains, `ALL` every
//! domain; the most specific entry wins (exact, then the longest subdomain suffix, then `ALL`).

use serde::{Deserialize, Serialize};

use crate::Problem;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpRoute {
    pub domain: String,
    /// Hosts tried in order: `host`, `host:port`, `ip:port`, `[ipv6]:port`.
    pub hosts: Vec<String>,
}

/// A destination host of a route; `port` is `None` when the route did not name one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteHost {
    pub host: String,
    pub port: Option<u16>,
}

#[derive(Debug)]
pub(crate) struct Compiled {
    pub(crate) pattern: crate::domains::Pattern,
    pub(crate) hosts: Vec<RouteHost>,
}

pub(crate) fn compile(routes: &[SmtpRoute], errors: &mut Vec<Problem>) -> Vec<Compiled> {
    let mut out = Vec::new();
    for (i, r) in routes.iter().enumerate() {
        let pattern = crate::domains::Pattern::parse(&r.domain);
        if pattern.is_none() {
            errors.push(Problem::new(
                format!("smtp_routes[{i}]"),
                format!(
                    "domain {:?} is not a domain, a .domain (subdomains) or ALL",
                    r.domain
                ),
            ));
        }
        if pattern.is_some()
            && routes
                .iter()
                .take(i)
                .any(|o| crate::domains::Pattern::parse(&o.domain) == pattern)
        {
            errors.push(Problem::new(
                format!("smtp_routes[{i}]"),
                format!("domain {:?} has a route already", r.domain),
            ));
        }
        if r.hosts.is_empty() {
            errors.push(Problem::new(
                format!("smtp_routes[{i}] ({})", r.domain),
                "needs at least one host",
            ));
        }
        let mut hosts = Vec::new();
        for h in &r.hosts {
            match parse_host(h) {
                Some(host) => hosts.push(host),
                None => errors.push(Problem::new(
                    format!("smtp_routes[{i}] ({})", r.domain),
                    format!("host {h:?} is not host, host:port, ip:port or [ipv6]:port"),
                )),
            }
        }
        if let Some(pattern) = pattern {
            out.push(Compiled { pattern, hosts });
        }
    }
    out
}

/// Parses `host`, `host:port`, `1.2.3.4:25`, `[::1]:25` or a bare IPv6 address.
pub fn parse_host(s: &str) -> Option<RouteHost> {
    let s = s.trim();
    if let Ok(addr) = s.parse::<std::net::SocketAddr>() {
        return Some(RouteHost {
            host: addr.ip().to_string(),
            port: Some(addr.port()),
        });
    }
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Some(RouteHost {
            host: ip.to_string(),
            port: None,
        });
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p.parse::<u16>().ok().filter(|p| *p > 0)?)),
        None => (s, None),
    };
    let host = host.trim_end_matches('.');
    rampart_smtp::Domain::parse(host).ok()?;
    Some(RouteHost {
        host: host.to_ascii_lowercase(),
        port,
    })
}

pub(crate) fn lookup<'a>(table: &'a [Compiled], domain: &str) -> Option<&'a [RouteHost]> {
    crate::domains::most_specific(table.iter().map(|c| (&c.pattern, c)), domain)
        .map(|c| c.hosts.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let cases = [
            ("127.0.0.1:2626", Some(("127.0.0.1", Some(2626)))),
            ("[::1]:25", Some(("::1", Some(25)))),
            ("::1", Some(("::1", None))),
            ("mx.Example.com", Some(("mx.example.com", None))),
            ("mx.example.com:587", Some(("mx.example.com", Some(587)))),
            ("mx.example.com:0", None),
            ("mx.example.com:x", None),
            ("bad host", None),
        ];
        for (input, want) in cases {
            let got = parse_host(input);
            let want = want.map(|(h, p)| RouteHost {
                host: h.to_string(),
                port: p,
            });
            assert_eq!(got, want, "{input}");
        }
    }

    #[test]
    fn most_specific_route_wins() {
        let routes = vec![
            SmtpRoute {
                domain: "ALL".into(),
                hosts: vec!["10.0.0.1:25".into()],
            },
            SmtpRoute {
                domain: ".example.com".into(),
                hosts: vec!["10.0.0.2:25".into()],
            },
            SmtpRoute {
                domain: ".sub.example.com".into(),
                hosts: vec!["10.0.0.3:25".into()],
            },
            SmtpRoute {
                domain: "example.com".into(),
                hosts: vec!["10.0.0.4:25".into(), "10.0.0.5:25".into()],
            },
        ];
        let mut errors = Vec::new();
        let t = compile(&routes, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        let first = |d: &str| lookup(&t, d).map(|h| h[0].host.clone());
        assert_eq!(first("example.com").as_deref(), Some("10.0.0.4"));
        assert_eq!(lookup(&t, "example.com").unwrap().len(), 2);
        assert_eq!(first("a.example.com").as_deref(), Some("10.0.0.2"));
        assert_eq!(first("x.sub.example.com").as_deref(), Some("10.0.0.3"));
        assert_eq!(first("other.test").as_deref(), Some("10.0.0.1"));
        let none = compile(&routes[1..2], &mut errors);
        assert_eq!(lookup(&none, "other.test"), None);
    }
}
