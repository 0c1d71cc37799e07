//! DNS lookups for delivery, behind a small trait so route resolution can be tested with data.
//! The real implementation is hickory-resolver with the configured nameservers (or the system's).

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

type Lookup<'a, T> = Pin<Box<dyn Future<Output = Result<T, DnsError>> + Send + 'a>>;

/// The lookups delivery needs.
pub trait Resolver: Send + Sync + std::fmt::Debug {
    fn mx<'a>(&'a self, domain: &'a str) -> Lookup<'a, Vec<Mx>>;
    fn ips<'a>(&'a self, host: &'a str) -> Lookup<'a, Vec<IpAddr>>;
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
}
