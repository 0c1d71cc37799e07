//! Email authentication for the policy engine's security services: SPF for MAIL FROM and HELO
//! (RFC 7208), DKIM verification (RFC 6376) and DMARC with the sender domain's policy (RFC 7489),
//! done by mail-auth over the same nameservers as delivery, plus the `Authentication-Results`
//! header (RFC 8601) that records them in the message.

use std::net::IpAddr;
use std::time::Duration;

use hickory_resolver::config::{ResolverConfig, ResolverOpts};
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimResult, DmarcResult, MessageAuthenticator,
    SpfResult, dmarc::Policy, dmarc::verify::DmarcParameters, spf::verify::SpfParameters,
};
use rampart_policy::{AuthResult, DmarcRequest};

/// The results for one message.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub spf: AuthResult,
    pub dkim: AuthResult,
    pub dmarc: AuthResult,
    /// The DMARC record's `p=` (or `sp=`), when DMARC was evaluated.
    pub dmarc_policy: Option<DmarcRequest>,
    /// The RFC5322.From domain DMARC looked at.
    pub from_domain: String,
    /// The `Authentication-Results:` header field, CRLF-terminated.
    pub header: String,
}

/// Checks messages; cheap to share.
pub struct Authenticator {
    inner: MessageAuthenticator,
    hostname: String,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("hostname", &self.hostname)
            .finish()
    }
}

impl Authenticator {
    /// Uses `config` (see `rampart_dns::resolver_config`), or the system's
    /// resolv.conf without one.
    pub fn new(
        config: Option<ResolverConfig>,
        hostname: &str,
        timeout: Duration,
    ) -> Result<Authenticator, String> {
        let inner = match config {
            None => MessageAuthenticator::new_system_conf()
                .map_err(|e| format!("cannot read the system DNS configuration: {e}"))?,
            Some(config) => {
                let mut opts = ResolverOpts::default();
                opts.timeout = timeout;
                // One query per lookup; mail is retried by the client, not by the resolver.
                opts.attempts = 0;
                MessageAuthenticator::new(config, opts).map_err(|e| e.to_string())?
            }
        };
        Ok(Authenticator {
            inner,
            hostname: hostname.to_owned(),
        })
    }

    /// Runs SPF (MAIL FROM, or HELO for the null sender), DKIM and DMARC on a message.
    pub async fn check(&self, message: &[u8], ip: IpAddr, helo: &str, mail_from: &str) -> Outcome {
        let parsed = AuthenticatedMessage::parse(message);
        let helo_domain = helo.trim_start_matches('[').trim_end_matches(']');
        let spf = if mail_from.is_empty() {
            self.inner
                .verify_spf(SpfParameters::verify_ehlo(ip, helo_domain, &self.hostname))
                .await
        } else {
            self.inner
                .verify_spf(SpfParameters::verify_mail_from(
                    ip,
                    helo_domain,
                    &self.hostname,
                    mail_from,
                ))
                .await
        };
        let mail_from_domain = mail_from
            .rsplit_once('@')
            .map(|(_, d)| d.to_owned())
            .unwrap_or_else(|| helo_domain.to_owned());
        let mut results = AuthenticationResults::new(&self.hostname);
        results = if mail_from.is_empty() {
            results.with_spf_ehlo_result(&spf, ip, helo_domain)
        } else {
            results.with_spf_mailfrom_result(&spf, ip, mail_from, helo_domain)
        };
        let Some(parsed) = parsed else {
            // Not a parsable RFC 5322 message: DKIM and DMARC cannot be evaluated.
            let header = format!("Authentication-Results: {results}\r\n");
            return Outcome {
                spf: spf_result(spf.result()),
                dkim: AuthResult::PermError,
                dmarc: AuthResult::None,
                dmarc_policy: None,
                from_domain: String::new(),
                header,
            };
        };
        let dkim = self.inner.verify_dkim(&parsed).await;
        let from_domain = parsed
            .from()
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        let dmarc = self
            .inner
            .verify_dmarc(DmarcParameters::new(
                &parsed,
                &dkim,
                &mail_from_domain,
                &spf,
            ))
            .await;
        results = results
            .with_dkim_results(&dkim, &from_domain)
            .with_dmarc_result(&dmarc);
        let dkim_result = if dkim.is_empty() {
            AuthResult::None
        } else if dkim.iter().any(|d| *d.result() == DkimResult::Pass) {
            AuthResult::Pass
        } else {
            dkim.iter()
                .map(|d| dkim_result(d.result()))
                .next()
                .unwrap_or(AuthResult::None)
        };
        // A published record with no aligned pass is a failure (RFC 7489 §6.6.2).
        let dmarc_result = match dmarc.result() {
            DmarcResult::Pass => AuthResult::Pass,
            DmarcResult::Fail(_) => AuthResult::Fail,
            DmarcResult::TempError(_) => AuthResult::TempError,
            DmarcResult::PermError(_) => AuthResult::PermError,
            DmarcResult::None => AuthResult::None,
        };
        let dmarc_policy = (dmarc_result != AuthResult::None).then(|| match dmarc.policy() {
            Policy::Reject => DmarcRequest::Reject,
            Policy::Quarantine => DmarcRequest::Quarantine,
            Policy::None | Policy::Unspecified => DmarcRequest::None,
        });
        Outcome {
            spf: spf_result(spf.result()),
            dkim: dkim_result,
            dmarc: dmarc_result,
            dmarc_policy,
            from_domain,
            header: format!("Authentication-Results: {results}\r\n"),
        }
    }
}

fn spf_result(r: SpfResult) -> AuthResult {
    match r {
        SpfResult::Pass => AuthResult::Pass,
        SpfResult::Fail => AuthResult::Fail,
        SpfResult::SoftFail => AuthResult::SoftFail,
        SpfResult::Neutral => AuthResult::Neutral,
        SpfResult::TempError => AuthResult::TempError,
        SpfResult::PermError => AuthResult::PermError,
        SpfResult::None => AuthResult::None,
    }
}

fn dkim_result(r: &DkimResult) -> AuthResult {
    match r {
        DkimResult::Pass => AuthResult::Pass,
        DkimResult::Neutral(_) => AuthResult::Neutral,
        DkimResult::Fail(_) => AuthResult::Fail,
        DkimResult::PermError(_) => AuthResult::PermError,
        DkimResult::TempError(_) => AuthResult::TempError,
        DkimResult::None => AuthResult::None,
    }
}
