//! The bootstrap configuration file: listeners, paths and tunables that are fixed while the
//! appliance runs (SPEC §7). Runtime settings (HAT, RAT, policies, ...) live in the store instead.
//!
//! Every key is optional. Parsing reports *all* problems at once — unknown keys, wrong types and
//! bad values, each naming its key — so that an administrator fixes a file in one pass.
//! The configuration reference in the docs is generated from the field doc comments through
//! [`reference`].

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// All errors found in a configuration file, one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct ConfigErrors(pub Vec<String>);

/// One documented key, for the generated reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDoc {
    pub key: String,
    pub default: String,
    pub doc: String,
}

macro_rules! section {
    (
        $(#[doc = $sdoc:literal])*
        $name:ident in $prefix:literal {
            $( $(#[doc = $doc:literal])* $field:ident : $ty:ty = $default:expr, )*
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            $( $(#[doc = $doc])* pub $field: $ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                Self { $( $field: $default, )* }
            }
        }

        impl $name {
            fn read(table: &toml::Table, errors: &mut Vec<String>) -> Self {
                let mut out = Self::default();
                for (key, value) in table {
                    match key.as_str() {
                        $( stringify!($field) => match <$ty>::deserialize(value.clone()) {
                            Ok(v) => out.$field = v,
                            Err(e) => errors.push(format!("`{}{}`: {}", $prefix, key, e.message())),
                        }, )*
                        _ => errors.push(format!("`{}{}`: unknown key", $prefix, key)),
                    }
                }
                out
            }

            fn reference(out: &mut Vec<FieldDoc>) {
                let defaults = Self::default();
                $(
                    out.push(FieldDoc {
                        key: format!("{}{}", $prefix, stringify!($field)),
                        default: toml_literal(&defaults.$field),
                        doc: [$($doc),*].iter().map(|l| l.trim()).collect::<Vec<_>>().join(" "),
                    });
                )*
            }
        }
    };
}

section! {
    /// Top-level keys.
    Root in "" {
        /// Name used in the SMTP banner, EHLO and `Received:` headers.
        hostname: String = "rampart.localdomain".into(),
        /// Directory for the database, TLS material and logs; created on first start.
        data_dir: PathBuf = PathBuf::from("data"),
    }
}

section! {
    /// `[smtp]`: the inbound listeners.
    Smtp in "smtp." {
        /// Addresses the SMTP listener binds, `ip:port`; port 0 picks a free port.
        listen: Vec<SocketAddr> = vec![SocketAddr::from(([127, 0, 0, 1], 2525))],
        /// Interface name shown in mail logs (`New SMTP ICID … interface Management …`).
        interface: String = "Management".into(),
        /// Largest message accepted, in bytes; announced with SIZE and enforced with `552`.
        max_message_size: u64 = 10_485_760,
        /// Most recipients in one message; more get `452 4.5.3`.
        max_recipients: u32 = 1000,
        /// Most simultaneous inbound connections; more get `421 4.3.2`.
        max_connections: u32 = 1000,
        /// Most simultaneous connections from one client IP address (AsyncOS "max concurrency
        /// per host"); more get `421 4.7.0`, so one host cannot take every slot.
        max_connections_per_ip: u32 = 50,
        /// Seconds a client may stay silent between commands or data blocks (RFC 5321 §4.5.3.2),
        /// and may take to read our replies.
        timeout_secs: u64 = 300,
        /// Longest a session may last in seconds, however busy; it then ends with `421 4.4.2`
        /// (after the message in DATA, if any).
        max_session_secs: u64 = 1800,
        /// Invalid commands tolerated in one session before it is closed with `421`. Recipients
        /// refused by the RAT do not count: they are answers, not errors.
        max_errors: u32 = 10,
        /// Commands that move no mail (NOOP, RSET, VRFY, HELP, and MAIL transactions that never
        /// reach DATA) tolerated in one session before it is closed with `421 4.7.0`.
        max_junk_commands: u32 = 100,
        /// Most `Received:` headers a message may carry (a mail loop); more get `554 5.4.6`.
        max_hops: u32 = 50,
        /// Longest the banner waits for the client's reverse DNS name, in milliseconds: a PTR
        /// lookup through `dns.nameservers` and its forward confirmation (FCrDNS), which host
        /// name sender groups match and `New SMTP ICID … reverse dns host … verified yes|no`
        /// shows. A lookup that takes longer gives `unknown`. 0 = no lookup.
        reverse_dns_timeout_ms: u64 = 2000,
        /// Bytes of message data all sessions together may hold in memory while receiving and
        /// processing messages; a message that would exceed it is read to its end and refused
        /// with `452 4.3.1` (the client retries later). A client that declares `SIZE=` gets
        /// exactly that reserved at MAIL (or `452` then); one that does not may need up to twice
        /// its size while its buffer grows.
        max_memory_bytes: u64 = 268_435_456,
        /// PEM certificate chain for STARTTLS; empty = a self-signed one in the data dir.
        tls_cert: PathBuf = PathBuf::new(),
        /// PEM private key for `tls_cert`.
        tls_key: PathBuf = PathBuf::new(),
    }
}

section! {
    /// `[web]`: the web UI and REST API.
    Web in "web." {
        /// Address the web UI and API bind, `ip:port`.
        listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8080)),
        /// `auto`: HTTPS with the appliance certificate (`smtp.tls_cert`, or the self-signed one)
        /// when `listen` is not a loopback address, plain HTTP on loopback; `on`: always HTTPS;
        /// `off`: always plain HTTP (only behind a TLS-terminating proxy).
        https: HttpsMode = HttpsMode::Auto,
        /// Minutes a web UI session may stay idle before the administrator must log in again.
        session_timeout_mins: u64 = 30,
        /// Failed logins for one account from one client address before that pair is refused
        /// (the API and the login page count together; an address is refused after four times as
        /// many over all accounts).
        max_failed_logins: u32 = 5,
        /// Minutes a login stays refused after `max_failed_logins`.
        lockout_mins: u64 = 5,
        /// Most simultaneous web and API connections; more are closed at once.
        max_connections: u32 = 256,
        /// Most simultaneous web and API connections from one client IP address.
        max_connections_per_ip: u32 = 32,
        /// Seconds a client may take to send a request's headers (also the idle time allowed
        /// between requests on a kept-alive connection), and a whole request may take.
        timeout_secs: u64 = 30,
    }
}

/// Whether the web UI and API speak HTTPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpsMode {
    Auto,
    On,
    Off,
}

impl Web {
    /// Whether the web listener serves HTTPS.
    pub fn uses_https(&self) -> bool {
        match self.https {
            HttpsMode::On => true,
            HttpsMode::Off => false,
            HttpsMode::Auto => !self.listen.ip().is_loopback(),
        }
    }
}

section! {
    /// `[dns]`: resolvers for MX lookups and email authentication.
    Dns in "dns." {
        /// Nameservers as `ip:port`; empty = the system's resolv.conf.
        nameservers: Vec<SocketAddr> = Vec::new(),
    }
}

section! {
    /// `[delivery]`: outbound SMTP.
    Delivery in "delivery." {
        /// Port used for hosts found by MX lookup, and for SMTP route hosts that name no port.
        port: u16 = 25,
        /// Seconds to wait for a TCP connection to a destination host.
        connect_timeout_secs: u64 = 30,
        /// Seconds to wait for the banner and for each reply to a command.
        command_timeout_secs: u64 = 120,
        /// Seconds to wait for the reply after the end of the message (RFC 5321 §4.5.3.2.6).
        data_timeout_secs: u64 = 600,
    }
}

/// How the Threat Defense Connector uses TLS toward the intake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    Off,
    Preferred,
    Required,
}

/// What the Threat Defense Connector sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JournalFormat {
    /// A journal message with the original as a `message/rfc822` attachment.
    Journal,
    /// The original message itself.
    Copy,
}

section! {
    /// `[tdc]`: Threat Defense Connector tunables (SPEC §4).
    Tdc in "tdc." {
        /// Seconds a journal copy may stay queued before it is removed and counted as expired.
        max_queue_age_secs: u64 = 120,
        /// Seconds between a failed attempt and its one retry.
        retry_delay_secs: u64 = 10,
        /// Connections opened to the intake whenever the.tdc.queue has entries.
        min_connections: u32 = 3,
        /// Most simultaneous connections to the intake.
        max_connections: u32 = 10,
        /// STARTTLS toward the intake: `off`, `preferred` (when offered) or `required`.
        /// A journal copy is a whole message: the default never sends one in plain text, so an
        /// attacker who strips STARTTLS gets nothing.
        tls: TlsMode = TlsMode::Required,
        /// Extra trusted CA certificate (PEM) for verifying the intake; empty = system roots only.
        ca_file: PathBuf = PathBuf::new(),
        /// Header carrying the connecting client's IP in the journaled message.
        remote_ip_header: String = "X-IronPort-RemoteIP".into(),
        /// `journal` (the original as an RFC 822 attachment) or `copy` (the original itself).
        format: JournalFormat = JournalFormat::Journal,
        /// Envelope sender of journal copies; empty = the null sender `<>`.
        envelope_sender: String = String::new(),
        /// Most journal copies sent over one connection.
        max_messages_per_connection: u32 = 10,
    }
}

/// What a scan does when its engine is down, too slow or answers nonsense.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnScanError {
    /// `451 4.7.1`: the sender retries later; nothing is stored.
    Tempfail,
    /// Accept the message as unscannable (delivered by the policy's unscannable action, never
    /// journaled).
    Accept,
}

/// The anti-spam engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpamEngine {
    /// Not configured: Anti-Spam reads `Disabled` in every policy.
    #[serde(rename = "")]
    None,
    Rspamd,
}

/// The anti-virus engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VirusEngine {
    /// Not configured: Anti-Virus reads `Disabled` in every policy.
    #[serde(rename = "")]
    None,
    Clamav,
}

section! {
    /// `[antispam]`: the anti-spam engine (SPEC §3a).
    Antispam in "antispam." {
        /// `""` (none) or `"rspamd"`.
        engine: SpamEngine = SpamEngine::None,
        /// rspamd's normal worker (its HTTP scan API).
        url: String = "http://127.0.0.1:11333".into(),
        /// Seconds a scan may take, connection included.
        timeout_secs: u64 = 15,
        /// Larger messages are not spam-scanned (logged; spam is small).
        max_scan_bytes: u64 = 1_048_576,
        /// `tempfail` (`451 4.7.1` while the engine is down or slow) or `accept` (deliver as
        /// unscannable, never journaled).
        on_error: OnScanError = OnScanError::Tempfail,
    }
}

section! {
    /// `[antivirus]`: the anti-virus engine (SPEC §3a).
    Antivirus in "antivirus." {
        /// `""` (none) or `"clamav"`.
        engine: VirusEngine = VirusEngine::None,
        /// clamd's `host:port` (an IP or a name), or the path of its unix socket.
        address: String = "127.0.0.1:3310".into(),
        /// Seconds a scan may take, connection included.
        timeout_secs: u64 = 30,
        /// Larger messages are unscannable. Keep it at most clamd's `StreamMaxLength`.
        max_scan_bytes: u64 = 10_485_760,
        /// `tempfail` (`451 4.7.1` while the engine is down or slow) or `accept` (deliver as
        /// unscannable, never journaled).
        on_error: OnScanError = OnScanError::Tempfail,
    }
}

section! {
    /// `[logs]`: the AsyncOS `mail_logs` files and their syslog push (log subscriptions).
    Logs in "logs." {
        /// Rolled `mail_logs` files kept; older ones are deleted.
        retain_files: u32 = 10,
        /// Size in bytes at which `mail_logs` is rolled over to `mail_logs.@<timestamp>.s`.
        max_file_bytes: u64 = 104_857_600,
        /// Also push every event to a syslog server: `""` (no), `udp://host:514`,
        /// `tcp://host:601` or `tls://host:6514` (the port may be left out: those are the
        /// defaults). Each message is `<PRI>Mmm dd hh:mm:ss <hostname> mail_logs: Info: <text>`.
        syslog: String = String::new(),
        /// Syslog facility: `kern`, `user`, `mail`, `daemon`, `auth`, `syslog`, `lpr`, `news`,
        /// `uucp`, `cron`, `authpriv`, `ftp` or `local0` … `local7`.
        syslog_facility: String = "mail".into(),
        /// How messages are delimited over TCP and TLS: `newline` (as AsyncOS sends them, and
        /// as most SIEM inputs read) or `octet-counting` (RFC 6587 §3.4.1).
        syslog_framing: SyslogFraming = SyslogFraming::Newline,
        /// Extra CA certificate (PEM) trusted for a `tls://` server, besides the webpki roots.
        syslog_ca_file: PathBuf = PathBuf::new(),
        /// Events that may wait for a slow or unreachable syslog server; beyond that they are
        /// dropped from the push (never from the file) and counted on *System Status*.
        syslog_queue_lines: u32 = 10_000,
    }
}

section! {
    /// `[retention]`: how long finished messages stay in the database.
    Retention in "retention." {
        /// Hours the body of a finished message (every recipient delivered, bounced or dropped;
        /// never one still queued or in quarantine) is kept after it was received, so that its
        /// Threat Defense journal copy can be sent again (*Resend*, journal replay); after that
        /// only its tracking record remains.
        message_body_hours: u64 = 24,
        /// Days a finished message's tracking record, journal ledger entries and queue rows are
        /// kept after it was received.
        tracking_days: u64 = 30,
    }
}

section! {
    /// `[alerts]`: how often the alert conditions are checked. Who gets alerts, the webhook
    /// and the thresholds are runtime settings (*System Administration > Alerts*).
    Alerts in "alerts." {
        /// Seconds between two checks of the alert conditions (intake, engines, queue, disk,
        /// destinations).
        check_secs: u64 = 30,
    }
}

section! {
    /// `[cluster]`: several nodes managed as one. Without `database_url`, a single appliance.
    /// With it, the runtime settings, accounts, audit log and staged changes live in that
    /// PostgreSQL database, and a change made on any node is in force on every node within
    /// seconds; mail, queues and tracking stay in each node's own store.
    Cluster in "cluster." {
        /// `postgres://user:password@host:5432/database`; add `?sslmode=verify-full` for TLS
        /// with the server's certificate checked against the webpki roots (`&sslrootcert=FILE`
        /// for a private CA). Empty: no cluster.
        database_url: String = String::new(),
        /// This node's name in the cluster (letters, digits, `.`, `-`, `_`; unique per node);
        /// empty: the `hostname`.
        node_name: String = String::new(),
    }
}

section! {
    /// `[[listener]]`: an SMTP listener besides the one of `[smtp]`, with a HAT of its own (the
    /// runtime settings' `listener_hats`; until it has one, only loopback clients are accepted).
    /// Everything else is as in `[smtp]`: the limits, TLS, the mail policies.
    Listener in "listener." {
        /// The listener's name: one word, shown as the interface in mail logs and on the HAT
        /// page (`OutboundMail`).
        name: String = String::new(),
        /// Addresses to listen on.
        listen: Vec<SocketAddr> = Vec::new(),
    }
}

/// Delimiting of syslog messages on a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyslogFraming {
    Newline,
    OctetCounting,
}

impl SyslogFraming {
    /// The name in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            SyslogFraming::Newline => "newline",
            SyslogFraming::OctetCounting => "octet-counting",
        }
    }
}

/// The transport of `logs.syslog`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogScheme {
    Udp,
    Tcp,
    Tls,
}

/// `logs.syslog`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogTarget {
    pub scheme: SyslogScheme,
    /// A name or an IP address (without brackets).
    pub host: String,
    pub port: u16,
}

const FACILITIES: [&str; 20] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
];

impl Logs {
    /// The syslog server, if one is configured.
    pub fn syslog_target(&self) -> Result<Option<SyslogTarget>, String> {
        let url = self.syslog.trim();
        if url.is_empty() {
            return Ok(None);
        }
        let usage = "must be udp://host:port, tcp://host:port or tls://host:port";
        let (scheme, rest) = url.split_once("://").ok_or(usage)?;
        let (scheme, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "udp" => (SyslogScheme::Udp, 514),
            "tcp" => (SyslogScheme::Tcp, 601),
            "tls" => (SyslogScheme::Tls, 6514),
            _ => return Err(usage.into()),
        };
        let rest = rest.trim_end_matches('/');
        // `[::1]:514`, `host:514`, `host`, `::1` is ambiguous without brackets.
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or(usage)?;
            match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None if after.is_empty() => (host, None),
                None => return Err(usage.into()),
            }
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        let port = match port {
            Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or(usage)?,
            None => default_port,
        };
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_'));
        if !host_ok {
            return Err(usage.into());
        }
        Ok(Some(SyslogTarget {
            scheme,
            host: host.to_owned(),
            port,
        }))
    }

    /// The number of `syslog_facility` (RFC 5424 §6.2.1: mail = 2, local0 = 16).
    pub fn syslog_facility_code(&self) -> Option<u8> {
        FACILITIES
            .iter()
            .position(|f| f.eq_ignore_ascii_case(self.syslog_facility.trim()))
            .and_then(|i| u8::try_from(if i >= 12 { i + 4 } else { i }).ok())
    }
}

/// The whole bootstrap configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    pub hostname: String,
    pub data_dir: PathBuf,
    pub smtp: Smtp,
    pub web: Web,
    pub dns: Dns,
    pub delivery: Delivery,
    pub tdc: Tdc,
    pub antispam: Antispam,
    pub antivirus: Antivirus,
    pub logs: Logs,
    pub retention: Retention,
    pub alerts: Alerts,
    /// SMTP listeners besides `[smtp]`'s, each with its own HAT.
    pub listeners: Vec<Listener>,
    pub cluster: Cluster,
}

impl Config {
    /// This node's name in a cluster: `cluster.node_name`, or the host name.
    pub fn node_name(&self) -> &str {
        if self.cluster.node_name.is_empty() {
            &self.hostname
        } else {
            &self.cluster.node_name
        }
    }

    /// The embedded default: what `rampart serve` runs without `--config`.
    pub fn embedded_default() -> Config {
        Config::from_root(
            Root::default(),
            Default::default(),
            Default::default(),
            Default::default(),
            Default::default(),
            Default::default(),
            Default::default(),
            Default::default(),
            Default::default(),
            Default::default(),
            Default::default(),
            Vec::new(),
            Default::default(),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn from_root(
        root: Root,
        smtp: Smtp,
        web: Web,
        dns: Dns,
        delivery: Delivery,
        tdc: Tdc,
        antispam: Antispam,
        antivirus: Antivirus,
        logs: Logs,
        retention: Retention,
        alerts: Alerts,
        listeners: Vec<Listener>,
        cluster: Cluster,
    ) -> Config {
        Config {
            hostname: root.hostname,
            data_dir: root.data_dir,
            smtp,
            web,
            dns,
            delivery,
            tdc,
            antispam,
            antivirus,
            logs,
            retention,
            alerts,
            listeners,
            cluster,
        }
    }

    /// Parses and validates a configuration file's text.
    pub fn parse(text: &str) -> Result<Config, ConfigErrors> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            ConfigErrors(vec![format!("not valid TOML: {}", e.to_string().trim())])
        })?;
        let mut errors = Vec::new();
        let mut root_keys = toml::Table::new();
        let empty = toml::Table::new();
        let mut sections: Vec<(&str, &toml::Table)> = Vec::new();
        let mut listeners = Vec::new();
        for (key, value) in &table {
            match (key.as_str(), value) {
                (
                    "smtp" | "web" | "dns" | "delivery" | "tdc" | "antispam" | "antivirus" | "logs"
                    | "retention" | "alerts" | "cluster",
                    toml::Value::Table(t),
                ) => {
                    sections.push((key.as_str(), t));
                }
                (
                    "smtp" | "web" | "dns" | "delivery" | "tdc" | "antispam" | "antivirus" | "logs"
                    | "retention" | "alerts" | "cluster",
                    _,
                ) => {
                    errors.push(format!("`{key}`: must be a table ([{key}])"));
                }
                ("listener", toml::Value::Array(list)) => {
                    for (i, item) in list.iter().enumerate() {
                        match item {
                            toml::Value::Table(t) => listeners.push(Listener::read(t, &mut errors)),
                            _ => errors.push(format!(
                                "`listener` #{}: must be a table ([[listener]])",
                                i + 1
                            )),
                        }
                    }
                }
                ("listener", _) => {
                    errors.push("`listener`: must be an array of tables ([[listener]])".into());
                }
                _ => {
                    root_keys.insert(key.clone(), value.clone());
                }
            }
        }
        let section = |name: &str| {
            sections
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| *t)
                .unwrap_or(&empty)
        };
        let root = Root::read(&root_keys, &mut errors);
        let smtp = Smtp::read(section("smtp"), &mut errors);
        let web = Web::read(section("web"), &mut errors);
        let dns = Dns::read(section("dns"), &mut errors);
        let delivery = Delivery::read(section("delivery"), &mut errors);
        let tdc = Tdc::read(section("tdc"), &mut errors);
        let antispam = Antispam::read(section("antispam"), &mut errors);
        let antivirus = Antivirus::read(section("antivirus"), &mut errors);
        let logs = Logs::read(section("logs"), &mut errors);
        let retention = Retention::read(section("retention"), &mut errors);
        let alerts = Alerts::read(section("alerts"), &mut errors);
        let cluster = Cluster::read(section("cluster"), &mut errors);
        let config = Config::from_root(
            root, smtp, web, dns, delivery, tdc, antispam, antivirus, logs, retention, alerts,
            listeners, cluster,
        );
        config.validate(&mut errors);
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Checks values that parse but make no sense.
    fn validate(&self, errors: &mut Vec<String>) {
        let mut bad = |key: &str, why: &str| errors.push(format!("`{key}`: {why}"));
        if self.hostname.is_empty() || self.hostname.contains(char::is_whitespace) {
            bad("hostname", "must be a host name without spaces");
        }
        if self.data_dir.as_os_str().is_empty() {
            bad("data_dir", "must not be empty");
        }
        if self.smtp.listen.is_empty() {
            bad("smtp.listen", "needs at least one address");
        }
        if self.smtp.max_message_size == 0 {
            bad("smtp.max_message_size", "must be greater than 0");
        }
        for (key, v) in [
            ("smtp.max_recipients", self.smtp.max_recipients),
            ("smtp.max_connections", self.smtp.max_connections),
            ("smtp.max_errors", self.smtp.max_errors),
            (
                "smtp.max_connections_per_ip",
                self.smtp.max_connections_per_ip,
            ),
            ("smtp.max_junk_commands", self.smtp.max_junk_commands),
            ("smtp.max_hops", self.smtp.max_hops),
            ("web.max_connections", self.web.max_connections),
            (
                "web.max_connections_per_ip",
                self.web.max_connections_per_ip,
            ),
            ("logs.retain_files", self.logs.retain_files),
            ("tdc.min_connections", self.tdc.min_connections),
            ("tdc.max_connections", self.tdc.max_connections),
            (
                "tdc.max_messages_per_connection",
                self.tdc.max_messages_per_connection,
            ),
        ] {
            if v == 0 {
                bad(key, "must be greater than 0");
            }
        }
        for (key, v) in [
            (
                "delivery.connect_timeout_secs",
                self.delivery.connect_timeout_secs,
            ),
            (
                "delivery.command_timeout_secs",
                self.delivery.command_timeout_secs,
            ),
            (
                "delivery.data_timeout_secs",
                self.delivery.data_timeout_secs,
            ),
        ] {
            if v == 0 {
                bad(key, "must be greater than 0");
            }
        }
        for (key, v) in [
            ("smtp.timeout_secs", self.smtp.timeout_secs),
            ("smtp.max_session_secs", self.smtp.max_session_secs),
            ("web.timeout_secs", self.web.timeout_secs),
        ] {
            if v == 0 {
                bad(key, "must be greater than 0");
            }
        }
        if self.smtp.max_memory_bytes < self.smtp.max_message_size {
            bad(
                "smtp.max_memory_bytes",
                "must be at least `smtp.max_message_size`, or no message of the largest size could be received",
            );
        }
        if self.smtp.tls_cert.as_os_str().is_empty() != self.smtp.tls_key.as_os_str().is_empty() {
            bad(
                "smtp.tls_cert",
                "set both `smtp.tls_cert` and `smtp.tls_key`, or neither",
            );
        }
        if self.smtp.interface.is_empty() || self.smtp.interface.contains(char::is_whitespace) {
            bad("smtp.interface", "must be one word");
        }
        if self.tdc.min_connections > self.tdc.max_connections {
            bad(
                "tdc.min_connections",
                "must not exceed `tdc.max_connections`",
            );
        }
        if self.tdc.max_queue_age_secs == 0 {
            bad("tdc.max_queue_age_secs", "must be greater than 0");
        }
        let header_ok = !self.tdc.remote_ip_header.is_empty()
            && self
                .tdc
                .remote_ip_header
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b':');
        if !header_ok {
            bad(
                "tdc.remote_ip_header",
                "must be a header field name (printable ASCII, no colon or space)",
            );
        }
        for (key, v) in [
            ("antispam.timeout_secs", self.antispam.timeout_secs),
            ("antispam.max_scan_bytes", self.antispam.max_scan_bytes),
            ("antivirus.timeout_secs", self.antivirus.timeout_secs),
            ("antivirus.max_scan_bytes", self.antivirus.max_scan_bytes),
        ] {
            if v == 0 {
                bad(key, "must be greater than 0");
            }
        }
        if self.antispam.engine == SpamEngine::Rspamd {
            let url = &self.antispam.url;
            let ok = url
                .strip_prefix("http://")
                .is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace));
            if !ok {
                bad(
                    "antispam.url",
                    "must be rspamd's address as http://host:port (e.g. http://127.0.0.1:11333)",
                );
            }
        }
        if self.antivirus.engine == VirusEngine::Clamav {
            let a = &self.antivirus.address;
            let tcp = a.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty()
                    && !host.contains(char::is_whitespace)
                    && port.parse::<u16>().is_ok()
            });
            if !tcp && !a.starts_with('/') {
                bad(
                    "antivirus.address",
                    "must be clamd's host:port (e.g. 127.0.0.1:3310) or the absolute path of its unix socket",
                );
            }
        }
        if let Err(why) = self.logs.syslog_target() {
            bad("logs.syslog", &why);
        }
        if self.logs.syslog_facility_code().is_none() {
            bad(
                "logs.syslog_facility",
                "must be kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp or local0 … local7",
            );
        }
        if self.logs.syslog_queue_lines == 0 {
            bad("logs.syslog_queue_lines", "must be greater than 0");
        }
        let mut names = vec![self.smtp.interface.as_str()];
        let mut addresses: Vec<SocketAddr> = self.smtp.listen.clone();
        if self.listeners.len() > 16 {
            bad("listener", "at most 16 listeners besides [smtp]'s");
        }
        for l in &self.listeners {
            let key = format!("listener.name ({:?})", l.name);
            let word = !l.name.is_empty()
                && l.name.len() <= 32
                && l.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !word {
                bad(&key, "must be one word of 1-32 letters, digits, '_' or '-'");
            } else if names.iter().any(|n| n.eq_ignore_ascii_case(&l.name)) {
                bad(
                    &key,
                    "is taken already (smtp.interface or another listener)",
                );
            }
            names.push(&l.name);
            if l.listen.is_empty() {
                bad(
                    &format!("listener.listen ({:?})", l.name),
                    "needs an address",
                );
            }
            for a in &l.listen {
                if addresses.contains(a) && a.port() != 0 {
                    bad(
                        &format!("listener.listen ({:?})", l.name),
                        &format!("{a} is used by another listener"),
                    );
                }
                addresses.push(*a);
            }
        }
        if self.alerts.check_secs == 0 || self.alerts.check_secs > 3600 {
            bad("alerts.check_secs", "must be 1-3600 seconds");
        }
        let url = &self.cluster.database_url;
        if !url.is_empty()
            && (!(url.starts_with("postgres://") || url.starts_with("postgresql://"))
                || url.len() > 2048)
        {
            bad(
                "cluster.database_url",
                "must be a postgres:// or postgresql:// URL (at most 2048 characters)",
            );
        }
        let node = &self.cluster.node_name;
        if !node.is_empty()
            && (node.len() > 64
                || !node
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)))
        {
            bad(
                "cluster.node_name",
                "must be 1-64 letters, digits, '.', '-' or '_'",
            );
        }
        if self.retention.message_body_hours == 0 {
            bad("retention.message_body_hours", "must be greater than 0");
        }
        if self.retention.tracking_days.saturating_mul(24) < self.retention.message_body_hours {
            bad(
                "retention.tracking_days",
                "must cover at least `retention.message_body_hours`",
            );
        }
        if self.logs.max_file_bytes < 65_536 {
            bad("logs.max_file_bytes", "must be at least 65536");
        }
        let sender = &self.tdc.envelope_sender;
        if !sender.is_empty() && !looks_like_address(sender) {
            bad(
                "tdc.envelope_sender",
                "must be an email address like journal@example.com, or empty for <>",
            );
        }
    }
}

/// A cheap syntactic check; the SMTP crate does the real parsing where addresses are used.
fn looks_like_address(s: &str) -> bool {
    match s.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && s.is_ascii()
                && !s.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// Renders a default value as a TOML literal for the reference.
fn toml_literal<T: serde::Serialize + ?Sized>(value: &T) -> String {
    #[derive(serde::Serialize)]
    struct Wrap<'a, T: ?Sized> {
        v: &'a T,
    }
    toml::to_string(&Wrap { v: value })
        .map(|s| s.trim().trim_start_matches("v = ").to_owned())
        .unwrap_or_default()
}

/// The documented keys, in file order, for the generated configuration reference.
pub fn reference() -> Vec<FieldDoc> {
    let mut out = Vec::new();
    Root::reference(&mut out);
    Smtp::reference(&mut out);
    Web::reference(&mut out);
    Dns::reference(&mut out);
    Delivery::reference(&mut out);
    Tdc::reference(&mut out);
    Antispam::reference(&mut out);
    Antivirus::reference(&mut out);
    Logs::reference(&mut out);
    Retention::reference(&mut out);
    Alerts::reference(&mut out);
    Cluster::reference(&mut out);
    Listener::reference(&mut out);
    out
}

/// The configuration reference as a Markdown table.
pub fn reference_markdown() -> String {
    let mut out = String::from("| key | default | meaning |\n|---|---|---|\n");
    for f in reference() {
        out.push_str(&format!("| `{}` | `{}` | {} |\n", f.key, f.default, f.doc));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_embedded_default() {
        assert_eq!(Config::parse("").unwrap(), Config::embedded_default());
        let c = Config::embedded_default();
        assert_eq!(c.smtp.listen, vec!["127.0.0.1:2525".parse().unwrap()]);
        assert_eq!(c.web.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.tdc.max_queue_age_secs, 120);
        assert_eq!(
            c.tdc.tls,
            TlsMode::Required,
            "no plaintext journal copies by default"
        );
    }

    #[test]
    fn spec_example_parses() {
        let text = r#"
hostname = "gw.example.com"
data_dir = "/var/lib/rampart"
[smtp]
listen = ["0.0.0.0:25", "[::1]:2525"]
max_message_size = 1000
[web]
listen = "0.0.0.0:8443"
[dns]
nameservers = ["127.0.0.1:5353"]
[delivery]
port = 2626
[tdc]
max_queue_age_secs = 60
tls = "required"
format = "copy"
envelope_sender = "journal@example.com"
"#;
        let c = Config::parse(text).unwrap();
        assert_eq!(c.hostname, "gw.example.com");
        assert_eq!(c.smtp.listen.len(), 2);
        assert_eq!(c.dns.nameservers, vec!["127.0.0.1:5353".parse().unwrap()]);
        assert_eq!(c.delivery.port, 2626);
        assert_eq!(c.tdc.tls, TlsMode::Required);
        assert_eq!(c.tdc.format, JournalFormat::Copy);
    }

    #[test]
    fn scanning_engines() {
        let c = Config::parse(
            "[antispam]\nengine = \"rspamd\"\nurl = \"http://rspamd:11333\"\non_error = \"accept\"\n\
             [antivirus]\nengine = \"clamav\"\naddress = \"/run/clamav/clamd.ctl\"\n",
        )
        .unwrap();
        assert_eq!(c.antispam.engine, SpamEngine::Rspamd);
        assert_eq!(c.antispam.on_error, OnScanError::Accept);
        assert_eq!(c.antivirus.engine, VirusEngine::Clamav);
        assert_eq!(Config::embedded_default().antispam.engine, SpamEngine::None);
        let errors = Config::parse(
            "[antispam]\nengine = \"spamassassin\"\n[antivirus]\nengine = \"clamav\"\naddress = \"clamd\"\nmax_scan_bytes = 0\non_error = \"ignore\"\n",
        )
        .unwrap_err()
        .0
        .join("\n");
        for key in [
            "`antispam.engine`",
            "`antivirus.address`: must be clamd's host:port",
            "`antivirus.max_scan_bytes`: must be greater than 0",
            "`antivirus.on_error`",
        ] {
            assert!(errors.contains(key), "missing {key} in:\n{errors}");
        }
        let errors = Config::parse("[antispam]\nengine = \"rspamd\"\nurl = \"https://r:1\"\n")
            .unwrap_err()
            .0
            .join("\n");
        assert!(errors.contains("`antispam.url`: must be rspamd's address as http://host:port"));
    }

    #[test]
    fn listeners_are_named_once_with_their_own_addresses() {
        let c = Config::parse(
            "[smtp]\nlisten = [\"127.0.0.1:25\"]\n\n[[listener]]\nname = \"OutboundMail\"\nlisten = [\"127.0.0.1:587\"]\n",
        )
        .unwrap();
        assert_eq!(c.listeners.len(), 1);
        assert_eq!(c.listeners[0].name, "OutboundMail");
        let errors = Config::parse(
            "[smtp]\nlisten = [\"127.0.0.1:25\"]\n\
             [[listener]]\nname = \"Management\"\nlisten = [\"127.0.0.1:587\"]\n\
             [[listener]]\nname = \"two words\"\nlisten = [\"127.0.0.1:25\"]\n\
             [[listener]]\nname = \"X\"\nport = 1\n",
        )
        .unwrap_err()
        .0;
        let text = errors.join("\n");
        assert!(
            text.contains("`listener.name (\"Management\")`: is taken already"),
            "{text}"
        );
        assert!(
            text.contains("`listener.name (\"two words\")`: must be one word"),
            "{text}"
        );
        assert!(
            text.contains("127.0.0.1:25 is used by another listener"),
            "{text}"
        );
        assert!(text.contains("`listener.port`: unknown key"), "{text}");
        assert!(
            text.contains("`listener.listen (\"X\")`: needs an address"),
            "{text}"
        );
    }

    #[test]
    fn all_errors_at_once_naming_each_key() {
        let text = r#"
hostnme = "typo"
[smtp]
max_message_size = "big"
listen = []
[tdc]
tls = "sometimes"
min_connections = 5
max_connections = 2
envelope_sender = "nobody"
[web]
listen = "localhost"
"#;
        let errors = Config::parse(text).unwrap_err().0;
        let joined = errors.join("\n");
        for key in [
            "`hostnme`: unknown key",
            "`smtp.max_message_size`",
            "`smtp.listen`: needs at least one address",
            "`tdc.tls`",
            "`tdc.min_connections`: must not exceed",
            "`tdc.envelope_sender`",
            "`web.listen`",
        ] {
            assert!(joined.contains(key), "missing {key} in:\n{joined}");
        }
    }

    #[test]
    fn cluster_keys() {
        let c = Config::parse("hostname = \"mx1.example\"\n[cluster]\ndatabase_url = \"postgres://r@db:5432/rampart\"\n").unwrap();
        assert_eq!(c.cluster.database_url, "postgres://r@db:5432/rampart");
        assert_eq!(c.node_name(), "mx1.example", "the hostname by default");
        let c = Config::parse("[cluster]\nnode_name = \"node-2\"\n").unwrap();
        assert_eq!(c.node_name(), "node-2");
        let errors = Config::parse(
            "[cluster]\ndatabase_url = \"mysql://db/x\"\nnode_name = \"a b/c\"\nport = 5\n",
        )
        .unwrap_err()
        .0
        .join("\n");
        for key in [
            "`cluster.database_url`",
            "`cluster.node_name`",
            "`cluster.port`: unknown key",
        ] {
            assert!(errors.contains(key), "missing {key} in:\n{errors}");
        }
    }

    #[test]
    fn invalid_toml_and_wrong_section_type() {
        assert!(Config::parse("[smtp").unwrap_err().0[0].starts_with("not valid TOML"));
        assert_eq!(
            Config::parse("smtp = 1").unwrap_err().0,
            vec!["`smtp`: must be a table ([smtp])"]
        );
    }

    #[test]
    fn syslog_targets_and_facilities() {
        let target = |url: &str| {
            Logs {
                syslog: url.into(),
                ..Logs::default()
            }
            .syslog_target()
        };
        assert_eq!(target(""), Ok(None));
        let t = target("udp://siem.example.com").unwrap().unwrap();
        assert_eq!(
            (t.scheme, t.host.as_str(), t.port),
            (SyslogScheme::Udp, "siem.example.com", 514)
        );
        let t = target("tcp://10.0.0.5:1514").unwrap().unwrap();
        assert_eq!(
            (t.scheme, t.host.as_str(), t.port),
            (SyslogScheme::Tcp, "10.0.0.5", 1514)
        );
        let t = target("tls://[::1]").unwrap().unwrap();
        assert_eq!(
            (t.scheme, t.host.as_str(), t.port),
            (SyslogScheme::Tls, "::1", 6514)
        );
        for bad in [
            "siem:514",
            "http://siem",
            "udp://",
            "udp://siem:0",
            "tcp://si em:1",
            "tls://[::1",
        ] {
            assert!(target(bad).is_err(), "{bad}");
        }
        let facility = |f: &str| {
            Logs {
                syslog_facility: f.into(),
                ..Logs::default()
            }
            .syslog_facility_code()
        };
        assert_eq!(facility("mail"), Some(2));
        assert_eq!(facility("local0"), Some(16));
        assert_eq!(facility("LOCAL7"), Some(23));
        assert_eq!(facility("mial"), None);
        let errors = Config::parse(
            "[logs]\nsyslog = \"smtp://x\"\nsyslog_facility = \"mial\"\nsyslog_framing = \"crlf\"",
        )
        .unwrap_err()
        .0;
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("`logs.syslog_framing`"))
        );
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("`logs.syslog`: must be udp://"))
        );
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("`logs.syslog_facility`: must be"))
        );
    }

    #[test]
    fn reference_covers_every_key_with_docs() {
        let r = reference();
        assert!(
            r.iter()
                .any(|f| f.key == "tdc.remote_ip_header" && f.default == "\"X-IronPort-RemoteIP\"")
        );
        assert!(
            r.iter()
                .any(|f| f.key == "smtp.max_message_size" && f.default == "10485760")
        );
        assert!(
            r.iter().all(|f| !f.doc.is_empty()),
            "every key has a doc comment"
        );
    }
}

#[cfg(test)]
mod tidy {
    /// docs/CONFIG.md carries the generated reference; keep it in step with the code.
    #[test]
    fn config_reference_in_docs_is_current() {
        let doc = include_str!("../../../docs/CONFIG.md");
        let want = format!(
            "<!-- BEGIN GENERATED -->\n{}<!-- END GENERATED -->",
            super::reference_markdown()
        );
        assert!(
            doc.contains(&want),
            "docs/CONFIG.md is out of date: run `cargo xtask codegen`"
        );
    }
}
