//! DNS lookups for delivery and the listener, behind a small trait so route resolution can be
//! tested with data. The real implementation is hickory-resolver with the configured nameservers
//! (or the system's).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;

/// Why a lookup gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The name does not exist (permanent).
    #[error("NXDomain")]
    NxDomain,
    /// The name exists but has no records of the type asked (for MX: use the implicit MX).
    #[error("no records")]
    NoRecords,
    /// SERVFAIL, timeout, refused, network trouble (temporary).
    #[error("{0}")]
    Temporary(String),
}

/// One MX record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mx {
    pub preference: u16,
    /// Exchange host name without the trailing dot; `""` for a null MX (RFC 7505).
    pub host: String,
}

/// A lookup in progress.
pub type Lookup<'a, T> = Pin<Box<dyn Future<Output = Result<T, DnsError>> + Send + 'a>>;

/// The lookups delivery needs.
pub trait Resolver: Send + Sync + std::fmt::Debug {
    fn mx<'a>(&'a self, domain: &'a str) -> Lookup<'a, Vec<Mx>>;
    fn ips<'a>(&'a self, host: &'a str) -> Lookup<'a, Vec<IpAddr>>;
    /// The names of `ip`'s PTR records, without the trailing dot.
    fn ptr(&self, ip: IpAddr) -> Lookup<'_, Vec<String>>;
}

/// A client's reverse DNS name and whether it is forward-confirmed (FCrDNS: one of the names
/// its address points to resolves back to that address).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReverseName {
    /// The confirmed name, or else the first PTR name; `None` when there is none.
    pub host: Option<String>,
    pub verified: bool,
}

impl ReverseName {
    /// The name, when it is confirmed: the only one that may be trusted (HAT host names).
    pub fn verified_name(&self) -> Option<&str> {
        self.host.as_deref().filter(|_| self.verified)
    }
}

/// Most PTR names of one address tried for confirmation: a hostile zone can list many.
const MAX_PTR_NAMES: usize = 4;

/// Looks up `ip`'s reverse name and confirms it, within `budget` in all (a slow or silent
/// nameserver gives `unknown`, never a longer wait).
pub async fn reverse_name(resolver: &dyn Resolver, ip: IpAddr, budget: Duration) -> ReverseName {
    let work = async {
        let Ok(names) = resolver.ptr(ip).await else {
            return ReverseName::default();
        };
        for name in names.iter().take(MAX_PTR_NAMES) {
            if resolver
                .ips(name)
                .await
                .is_ok_and(|ips| ips.iter().any(|a| canonical_ip(*a) == canonical_ip(ip)))
            {
                return ReverseName {
                    host: Some(name.clone()),
                    verified: true,
                };
            }
        }
        ReverseName {
            host: names.into_iter().next(),
            verified: false,
        }
    };
    tokio::time::timeout(budget, work).await.unwrap_or_default()
}

/// An IPv4 client of a dual-stack socket appears as `::ffff:a.b.c.d`: it is logged, matched and
/// compared as IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// hickory-resolver with Rampart's settings: no cache (lookups always reflect DNS as it is now)
/// and one query per lookup (retries are the queue's business).
#[derive(Debug)]
pub struct HickoryResolver {
    inner: TokioResolver,
}

/// The resolver configuration for `nameservers` (`ip:port`, UDP and TCP each); `None` for an
/// empty list, meaning the system's resolv.conf. Shared with email authentication, so that SPF,
/// DKIM and DMARC ask the same servers as delivery.
pub fn resolver_config(nameservers: &[SocketAddr]) -> Option<ResolverConfig> {
    if nameservers.is_empty() {
        return None;
    }
    let servers = nameservers
        .iter()
        .map(|addr| {
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = addr.port();
            NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
        })
        .collect();
    Some(ResolverConfig::from_name_servers(servers))
}

impl HickoryResolver {
    /// Uses `nameservers` (`ip:port`), or the system's resolv.conf when the list is empty.
    pub fn new(nameservers: &[SocketAddr], timeout: Duration) -> Result<HickoryResolver, DnsError> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = match resolver_config(nameservers) {
            None => TokioResolver::builder(provider).map_err(|e| {
                DnsError::Temporary(format!("cannot read system DNS configuration: {e}"))
            })?,
            Some(config) => TokioResolver::builder_with_config(config, provider),
        };
        let opts = builder.options_mut();
        opts.cache_size = 0;
        // hickory's `attempts` counts retries after the first query; the queue does the retrying.
        opts.attempts = 0;
        opts.timeout = timeout;
        let inner = builder
            .build()
            .map_err(|e| DnsError::Temporary(e.to_string()))?;
        Ok(HickoryResolver { inner })
    }
}

fn classify(e: &hickory_resolver::net::NetError) -> DnsError {
    if e.is_nx_domain() {
        DnsError::NxDomain
    } else if e.is_no_records_found() {
        // NOERROR without answers; other response codes (SERVFAIL, REFUSED) are temporary.
        let text = e.to_string();
        if text.contains("ServFail") || text.contains("Refused") {
            DnsError::Temporary(text)
        } else {
            DnsError::NoRecords
        }
    } else {
        DnsError::Temporary(e.to_string())
    }
}

/// Names are looked up as absolute names, so no search domain is ever appended.
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

impl Resolver for HickoryResolver {
    fn mx<'a>(&'a self, domain: &'a str) -> Lookup<'a, Vec<Mx>> {
        Box::pin(async move {
            let lookup = self
                .inner
                .mx_lookup(fqdn(domain))
                .await
                .map_err(|e| classify(&e))?;
            let mut out: Vec<Mx> = lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    hickory_resolver::proto::rr::RData::MX(mx) => Some(Mx {
                        preference: mx.preference,
                        host: mx
                            .exchange
                            .to_ascii()
                            .trim_end_matches('.')
                            .to_ascii_lowercase(),
                    }),
                    _ => None,
                })
                .collect();
            if out.is_empty() {
                return Err(DnsError::NoRecords);
            }
            out.sort_by_key(|m| m.preference);
            Ok(out)
        })
    }

    fn ips<'a>(&'a self, host: &'a str) -> Lookup<'a, Vec<IpAddr>> {
        Box::pin(async move {
            if let Ok(ip) = host.parse::<IpAddr>() {
                return Ok(vec![ip]);
            }
            let lookup = self
                .inner
                .lookup_ip(fqdn(host))
                .await
                .map_err(|e| classify(&e))?;
            let ips: Vec<IpAddr> = lookup.iter().collect();
            if ips.is_empty() {
                Err(DnsError::NoRecords)
            } else {
                Ok(ips)
            }
        })
    }

    fn ptr(&self, ip: IpAddr) -> Lookup<'_, Vec<String>> {
        Box::pin(async move {
            // Loopback addresses are answered `localhost` without a query (RFC 6761 §6.3).
            let lookup = self
                .inner
                .reverse_lookup(ip)
                .await
                .map_err(|e| classify(&e))?;
            let names: Vec<String> = lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    hickory_resolver::proto::rr::RData::PTR(name) => {
                        Some(name.0.to_ascii().trim_end_matches('.').to_ascii_lowercase())
                    }
                    _ => None,
                })
                // A PTR name goes into the mail log and is matched as a host name: anything but
                // a plain host name (a hostile zone can put spaces or escapes in one) is ignored.
                .filter(|n| {
                    !n.is_empty()
                        && n.len() <= 253
                        && n.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
                })
                .collect();
            // In a stable order: DNS may rotate the records, the hosts file lists them as it
            // likes, and the name shown (the first that is confirmed) should not change.
            let mut names = names;
            names.sort();
            names.dedup();
            if names.is_empty() {
                Err(DnsError::NoRecords)
            } else {
                Ok(names)
            }
        })
    }
}

/// DNS answers from a table, for unit tests (here, and elsewhere with the `fake` feature).
#[cfg(any(test, feature = "fake"))]
pub mod fake {
    use std::collections::HashMap;
    use std::net::IpAddr;

    use super::{DnsError, Lookup, Mx, Resolver};

    #[derive(Debug, Default)]
    pub struct FakeDns {
        pub mx: HashMap<String, Result<Vec<Mx>, DnsError>>,
        pub ips: HashMap<String, Result<Vec<IpAddr>, DnsError>>,
        pub ptr: HashMap<IpAddr, Result<Vec<String>, DnsError>>,
    }

    impl Resolver for FakeDns {
        fn mx<'a>(&'a self, d: &'a str) -> Lookup<'a, Vec<Mx>> {
            let r = self.mx.get(d).cloned().unwrap_or(Err(DnsError::NxDomain));
            Box::pin(async move { r })
        }
        fn ips<'a>(&'a self, h: &'a str) -> Lookup<'a, Vec<IpAddr>> {
            let r = match h.parse::<IpAddr>() {
                Ok(ip) => Ok(vec![ip]),
                Err(_) => self.ips.get(h).cloned().unwrap_or(Err(DnsError::NxDomain)),
            };
            Box::pin(async move { r })
        }
        fn ptr(&self, ip: IpAddr) -> Lookup<'_, Vec<String>> {
            let r = self
                .ptr
                .get(&ip)
                .cloned()
                .unwrap_or(Err(DnsError::NxDomain));
            Box::pin(async move { r })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unreachable nameserver is a temporary failure, never "no such domain".
    #[tokio::test]
    async fn unreachable_nameserver_is_temporary() {
        let r = HickoryResolver::new(
            &["127.0.0.1:9".parse().unwrap()],
            Duration::from_millis(300),
        )
        .unwrap();
        assert!(matches!(
            r.mx("example.com").await,
            Err(DnsError::Temporary(_))
        ));
    }

    /// Forward-confirmed reverse DNS: the name must point back to the address.
    #[tokio::test]
    async fn reverse_names_are_confirmed() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut dns = fake::FakeDns::default();
        dns.ptr
            .insert(ip("192.0.2.1"), Ok(vec!["mail.example.com".into()]));
        dns.ips
            .insert("mail.example.com".into(), Ok(vec![ip("192.0.2.1")]));
        // A forged PTR: the name points elsewhere.
        dns.ptr
            .insert(ip("192.0.2.2"), Ok(vec!["mail.bank.test".into()]));
        dns.ips
            .insert("mail.bank.test".into(), Ok(vec![ip("198.51.100.9")]));
        // The second name confirms.
        dns.ptr.insert(
            ip("192.0.2.3"),
            Ok(vec!["gone.example.com".into(), "mx.example.com".into()]),
        );
        dns.ips
            .insert("mx.example.com".into(), Ok(vec![ip("192.0.2.3")]));
        dns.ptr
            .insert(ip("192.0.2.4"), Err(DnsError::Temporary("SERVFAIL".into())));
        // Through a dual-stack socket.
        dns.ptr
            .insert(ip("::ffff:192.0.2.1"), Ok(vec!["mail.example.com".into()]));
        let budget = Duration::from_secs(5);
        for (client, host, verified) in [
            ("192.0.2.1", Some("mail.example.com"), true),
            ("192.0.2.2", Some("mail.bank.test"), false),
            ("192.0.2.3", Some("mx.example.com"), true),
            ("192.0.2.4", None, false),
            ("192.0.2.5", None, false),
            ("::ffff:192.0.2.1", Some("mail.example.com"), true),
        ] {
            let name = reverse_name(&dns, ip(client), budget).await;
            assert_eq!(name.host.as_deref(), host, "{client}");
            assert_eq!(name.verified, verified, "{client}");
        }
    }

    /// 127.0.0.1 has a confirmed name on any machine (its hosts file, or `localhost` by RFC 6761
    /// §6.3); 127.0.0.2's name, `localhost` too, points back to 127.0.0.1, not to it.
    #[tokio::test]
    async fn loopback_reverse_names() {
        let r = HickoryResolver::new(
            &["127.0.0.1:9".parse().unwrap()],
            Duration::from_millis(300),
        )
        .unwrap();
        let budget = Duration::from_secs(5);
        let one = reverse_name(&r, "127.0.0.1".parse().unwrap(), budget).await;
        assert!(one.host.is_some() && one.verified, "{one:?}");
        let two = reverse_name(&r, "127.0.0.2".parse().unwrap(), budget).await;
        assert!(two.host.is_some() && !two.verified, "{two:?}");
    }

    /// A resolver that never answers.
    #[derive(Debug)]
    struct Silent;

    impl Resolver for Silent {
        fn mx<'a>(&'a self, _: &'a str) -> Lookup<'a, Vec<Mx>> {
            Box::pin(std::future::pending())
        }
        fn ips<'a>(&'a self, _: &'a str) -> Lookup<'a, Vec<IpAddr>> {
            Box::pin(std::future::pending())
        }
        fn ptr(&self, _: IpAddr) -> Lookup<'_, Vec<String>> {
            Box::pin(std::future::pending())
        }
    }

    /// The budget bounds the whole lookup: a silent nameserver gives "unknown" when it ends
    /// (without the budget this test would never finish).
    #[tokio::test]
    async fn the_budget_bounds_a_silent_nameserver() {
        let budget = Duration::from_millis(50);
        let start = std::time::Instant::now();
        let name = reverse_name(&Silent, "192.0.2.1".parse().unwrap(), budget).await;
        assert_eq!(name, ReverseName::default());
        assert!(start.elapsed() >= budget);
    }
}
