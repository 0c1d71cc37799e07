//! The connector's `[tdc]` settings from the bootstrap configuration, as the.tdc.queue uses them.

/// STARTTLS toward the intake. Whatever the mode, certificates are verified and a failed
/// handshake is final (SPEC §4: no plaintext fallback, no retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TdcTls {
    Off,
    /// Used when the intake offers it.
    Preferred,
    /// The session fails when the intake does not offer it.
    Required,
}

/// `[tdc]` of the bootstrap configuration.
#[derive(Debug, Clone)]
pub struct TdcConfig {
    /// A copy still queued after this long is removed (Cisco: 120 s).
    pub max_queue_age_secs: u64,
    /// Wait before the one retry a retryable failure gets.
    pub retry_delay_secs: u64,
    /// Connections kept open toward the intake while copies wait (Cisco: at least three).
    pub min_connections: u32,
    pub max_connections: u32,
    pub max_messages_per_connection: u32,
    pub tls: TdcTls,
    /// The header that tells SETD the client's address (`X-IronPort-RemoteIP`).
    pub remote_ip_header: String,
    /// Send the original itself instead of a journal message.
    pub copy_format: bool,
    /// Envelope sender; empty = the null sender.
    pub envelope_sender: String,
}
