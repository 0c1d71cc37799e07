//! The SMTP client for outbound delivery (RFC 5321): EHLO with HELO fallback, STARTTLS
//! (RFC 3207), PIPELINING (RFC 2920), SIZE, 8BITMIME, several messages per connection, and a
//! reply per recipient so partial success is reported as such.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rampart_smtp::{Reply, dot_stuff, tls_names};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Timeouts of one connection.
#[derive(Debug, Clone)]
pub struct Timeouts {
    pub connect: Duration,
    /// Waiting for the banner and for replies to commands.
    pub command: Duration,
    /// Waiting for the reply after the end of data (RFC 5321 §4.5.3.2.6 suggests 10 minutes).
    pub data: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(30),
            command: Duration::from_secs(120),
            data: Duration::from_secs(600),
        }
    }
}

/// How a connection uses STARTTLS.
#[derive(Debug, Clone)]
pub enum TlsUse {
    Off,
    /// Use it when offered; stay in plain text when not offered.
    Opportunistic(Arc<rustls::ClientConfig>),
    /// Fail the connection when it is not offered or fails.
    Required(Arc<rustls::ClientConfig>),
}

/// Why a connection or transaction failed as a whole.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The TCP connection could not be made (refused, unreachable, timed out).
    #[error("{0}")]
    Connect(String),
    /// The connection broke or timed out after it was made.
    #[error("{0}")]
    Network(String),
    /// The TLS handshake failed or STARTTLS was required but not possible.
    #[error("{0}")]
    Tls(String),
    /// The server refused at the banner, EHLO/HELO or STARTTLS.
    #[error("{0}")]
    Refused(Reply),
    /// The server sent something that is not SMTP.
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// Extensions the server announced.
#[derive(Debug, Clone, Default)]
struct Caps {
    pipelining: bool,
    starttls: bool,
    eight_bit: bool,
    size: Option<u64>,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Closed,
}

/// An open SMTP connection, ready for transactions.
pub struct Connection {
    stream: Stream,
    buf: Vec<u8>,
    caps: Caps,
    timeouts: Timeouts,
    /// `(protocol, cipher)` when STARTTLS succeeded, in AsyncOS spelling.
    pub tls: Option<(String, String)>,
    pub peer: SocketAddr,
    pub local: SocketAddr,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .field("tls", &self.tls)
            .finish()
    }
}

/// The replies of one transaction.
#[derive(Debug, Clone)]
pub struct TxReplies {
    pub mail: Reply,
    /// One per recipient, in order.
    pub rcpts: Vec<Reply>,
    /// The reply after the end of data, or to DATA itself when it was refused; `None` when DATA
    /// was never sent (MAIL or every RCPT failed).
    pub data: Option<Reply>,
}

impl TxReplies {
    /// The reply that decides recipient `i`: MAIL's if it failed, else its RCPT's if that failed,
    /// else the final data reply.
    pub fn for_rcpt(&self, i: usize) -> Reply {
        if !self.mail.is_positive() {
            return self.mail.clone();
        }
        match self.rcpts.get(i) {
            Some(r) if !r.is_positive() => r.clone(),
            _ => self
                .data
                .clone()
                .unwrap_or_else(|| Reply::owned(451, None, "transaction not completed".to_owned())),
        }
    }
}

impl Connection {
    /// Connects, reads the banner, says EHLO (or HELO) and negotiates STARTTLS per `tls`.
    pub async fn open(
        addr: SocketAddr,
        server_name: &str,
        helo: &str,
        tls: &TlsUse,
        timeouts: &Timeouts,
    ) -> Result<Connection, ClientError> {
        let tcp = tokio::time::timeout(timeouts.connect, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Connect(format!("connection to {addr} timed out")))?
            .map_err(|e| ClientError::Connect(format!("{e}")))?;
        let _ = tcp.set_nodelay(true);
        let local = tcp
            .local_addr()
            .map_err(|e| ClientError::Connect(e.to_string()))?;
        let mut conn = Connection {
            stream: Stream::Plain(tcp),
            buf: Vec::with_capacity(4096),
            caps: Caps::default(),
            timeouts: timeouts.clone(),
            tls: None,
            peer: addr,
            local,
        };
        let banner = conn.read_reply(timeouts.command).await?;
        if banner.code != 220 {
            return Err(ClientError::Refused(banner));
        }
        conn.hello(helo).await?;
        let config = match tls {
            TlsUse::Off => return Ok(conn),
            TlsUse::Opportunistic(c) | TlsUse::Required(c) => c.clone(),
        };
        if !conn.caps.starttls {
            return match tls {
                TlsUse::Required(_) => Err(ClientError::Tls(
                    "STARTTLS is required but was not offered".into(),
                )),
                _ => Ok(conn),
            };
        }
        let reply = conn.command("STARTTLS").await?;
        if reply.code != 220 {
            return match tls {
                TlsUse::Required(_) => Err(ClientError::Tls(format!("STARTTLS refused: {reply}"))),
                _ => Ok(conn),
            };
        }
        conn.start_tls(config, server_name).await?;
        conn.hello(helo).await?;
        Ok(conn)
    }

    /// EHLO, falling back to HELO when EHLO is refused (RFC 5321 §3.2).
    async fn hello(&mut self, helo: &str) -> Result<(), ClientError> {
        let reply = self.command(&format!("EHLO {helo}")).await?;
        if reply.code == 250 {
            self.caps = parse_caps(&reply);
            return Ok(());
        }
        let reply = self.command(&format!("HELO {helo}")).await?;
        if reply.code != 250 {
            return Err(ClientError::Refused(reply));
        }
        self.caps = Caps::default();
        Ok(())
    }

    async fn start_tls(
        &mut self,
        config: Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> Result<(), ClientError> {
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Closed) else {
            return Err(ClientError::Protocol(
                "STARTTLS on a connection that is not plain".into(),
            ));
        };
        // Anything the server sent before the handshake must not be read as if it came over TLS.
        self.buf.clear();
        let name = match server_name.parse::<std::net::IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(server_name.to_owned()).map_err(|e| {
                ClientError::Tls(format!("invalid server name {server_name:?}: {e}"))
            })?,
        };
        let connector = tokio_rustls::TlsConnector::from(config);
        let tls = tokio::time::timeout(self.timeouts.command, connector.connect(name, tcp))
            .await
            .map_err(|_| ClientError::Tls("TLS handshake timed out".into()))?
            .map_err(|e| ClientError::Tls(format!("TLS handshake failed: {e}")))?;
        let (_, session) = tls.get_ref();
        let protocol = session
            .protocol_version()
            .map(|v| tls_names::protocol_name(&format!("{v:?}")))
            .unwrap_or_default();
        let cipher = session
            .negotiated_cipher_suite()
            .map(|c| tls_names::cipher_name(&format!("{:?}", c.suite())))
            .unwrap_or_default();
        self.tls = Some((protocol, cipher));
        self.stream = Stream::Tls(Box::new(tls));
        Ok(())
    }

    /// Whether the server takes messages of this size (RFC 1870).
    pub fn size_ok(&self, size: usize) -> bool {
        self.caps
            .size
            .is_none_or(|max| max == 0 || size as u64 <= max)
    }

    /// Sends one message to `rcpts`. Protocol-level failures of single recipients are in the
    /// replies; an `Err` means the connection is no longer usable.
    pub async fn send(
        &mut self,
        from: &str,
        rcpts: &[&str],
        body: &[u8],
    ) -> Result<TxReplies, ClientError> {
        let mut mail = format!("MAIL FROM:<{from}>");
        if self.caps.size.is_some() {
            mail.push_str(&format!(" SIZE={}", body.len()));
        }
        if self.caps.eight_bit && !body.is_ascii() {
            mail.push_str(" BODY=8BITMIME");
        }
        let result = if self.caps.pipelining {
            self.send_pipelined(&mail, rcpts).await?
        } else {
            self.send_lockstep(&mail, rcpts).await?
        };
        let (mail_reply, rcpt_replies, data_cmd) = result;
        let any_rcpt = rcpt_replies.iter().any(Reply::is_positive);
        let data_cmd = match data_cmd {
            Some(r) => r,
            None => {
                self.command("RSET").await?;
                return Ok(TxReplies {
                    mail: mail_reply,
                    rcpts: rcpt_replies,
                    data: None,
                });
            }
        };
        if data_cmd.code != 354 {
            if mail_reply.is_positive() && any_rcpt {
                self.command("RSET").await?;
                return Ok(TxReplies {
                    mail: mail_reply,
                    rcpts: rcpt_replies,
                    data: Some(data_cmd),
                });
            }
            self.command("RSET").await?;
            return Ok(TxReplies {
                mail: mail_reply,
                rcpts: rcpt_replies,
                data: None,
            });
        }
        if !mail_reply.is_positive() || !any_rcpt {
            // A server that says 354 with no valid recipient: end the empty message and reset.
            self.write(b".\r\n").await?;
            let _ = self.read_reply(self.timeouts.data).await?;
            self.command("RSET").await?;
            return Ok(TxReplies {
                mail: mail_reply,
                rcpts: rcpt_replies,
                data: None,
            });
        }
        let mut wire = Vec::with_capacity(body.len() + body.len() / 50 + 8);
        dot_stuff(body, &mut wire);
        self.write(&wire).await?;
        let data = self.read_reply(self.timeouts.data).await?;
        Ok(TxReplies {
            mail: mail_reply,
            rcpts: rcpt_replies,
            data: Some(data),
        })
    }

    /// MAIL, RCPTs and DATA in one write, replies read in order (RFC 2920 §3.1).
    async fn send_pipelined(
        &mut self,
        mail: &str,
        rcpts: &[&str],
    ) -> Result<(Reply, Vec<Reply>, Option<Reply>), ClientError> {
        let mut batch = format!("{mail}\r\n");
        for r in rcpts {
            batch.push_str(&format!("RCPT TO:<{r}>\r\n"));
        }
        batch.push_str("DATA\r\n");
        self.write(batch.as_bytes()).await?;
        let mail_reply = self.read_reply(self.timeouts.command).await?;
        let mut rcpt_replies = Vec::with_capacity(rcpts.len());
        for _ in rcpts {
            rcpt_replies.push(self.read_reply(self.timeouts.command).await?);
        }
        let data = self.read_reply(self.timeouts.command).await?;
        Ok((mail_reply, rcpt_replies, Some(data)))
    }

    /// One command at a time, for servers without PIPELINING.
    async fn send_lockstep(
        &mut self,
        mail: &str,
        rcpts: &[&str],
    ) -> Result<(Reply, Vec<Reply>, Option<Reply>), ClientError> {
        let mail_reply = self.command(mail).await?;
        if !mail_reply.is_positive() {
            let rcpt_replies = rcpts.iter().map(|_| mail_reply.clone()).collect();
            return Ok((mail_reply, rcpt_replies, None));
        }
        let mut rcpt_replies = Vec::with_capacity(rcpts.len());
        for r in rcpts {
            rcpt_replies.push(self.command(&format!("RCPT TO:<{r}>")).await?);
        }
        if !rcpt_replies.iter().any(Reply::is_positive) {
            return Ok((mail_reply, rcpt_replies, None));
        }
        let data = self.command("DATA").await?;
        Ok((mail_reply, rcpt_replies, Some(data)))
    }

    /// QUIT and close; errors do not matter any more.
    pub async fn quit(mut self) {
        if self.write(b"QUIT\r\n").await.is_ok() {
            let _ = self.read_reply(Duration::from_secs(5)).await;
        }
        match &mut self.stream {
            Stream::Plain(s) => {
                let _ = s.shutdown().await;
            }
            Stream::Tls(s) => {
                let _ = s.shutdown().await;
            }
            Stream::Closed => {}
        }
    }

    async fn command(&mut self, line: &str) -> Result<Reply, ClientError> {
        self.write(format!("{line}\r\n").as_bytes()).await?;
        self.read_reply(self.timeouts.command).await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let timeout = self.timeouts.data;
        let result = match &mut self.stream {
            Stream::Plain(s) => {
                tokio::time::timeout(timeout, async {
                    s.write_all(bytes).await?;
                    s.flush().await
                })
                .await
            }
            Stream::Tls(s) => {
                tokio::time::timeout(timeout, async {
                    s.write_all(bytes).await?;
                    s.flush().await
                })
                .await
            }
            Stream::Closed => return Err(ClientError::Network("connection closed".into())),
        };
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ClientError::Network(format!("write failed: {e}"))),
            Err(_) => Err(ClientError::Network("write timed out".into())),
        }
    }

    async fn read_reply(&mut self, timeout: Duration) -> Result<Reply, ClientError> {
        let mut lines: Vec<String> = Vec::new();
        loop {
            let line = self.read_line(timeout).await?;
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last || lines.len() > 100 {
                break;
            }
        }
        Reply::parse_lines(&lines)
            .ok_or_else(|| ClientError::Protocol(format!("not an SMTP reply: {:?}", lines.first())))
    }

    async fn read_line(&mut self, timeout: Duration) -> Result<String, ClientError> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf) {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                let text = String::from_utf8_lossy(&line)
                    .trim_end_matches(['\r', '\n'])
                    .to_owned();
                return Ok(text);
            }
            if self.buf.len() > 64 * 1024 {
                return Err(ClientError::Protocol("reply line too long".into()));
            }
            let mut chunk = [0u8; 8192];
            let read = match &mut self.stream {
                Stream::Plain(s) => tokio::time::timeout(timeout, s.read(&mut chunk)).await,
                Stream::Tls(s) => tokio::time::timeout(timeout, s.read(&mut chunk)).await,
                Stream::Closed => return Err(ClientError::Network("connection closed".into())),
            };
            match read {
                Err(_) => {
                    return Err(ClientError::Network(
                        "timed out waiting for the server's reply".into(),
                    ));
                }
                Ok(Err(e)) => return Err(ClientError::Network(format!("read failed: {e}"))),
                Ok(Ok(0)) => {
                    return Err(ClientError::Network(
                        "connection closed by the server".into(),
                    ));
                }
                Ok(Ok(n)) => self
                    .buf
                    .extend_from_slice(chunk.get(..n).unwrap_or_default()),
            }
        }
    }
}

fn parse_caps(ehlo: &Reply) -> Caps {
    let mut caps = Caps::default();
    for line in ehlo.text.lines().skip(1) {
        let mut words = line.split_whitespace();
        match words.next().map(str::to_ascii_uppercase).as_deref() {
            Some("PIPELINING") => caps.pipelining = true,
            Some("STARTTLS") => caps.starttls = true,
            Some("8BITMIME") => caps.eight_bit = true,
            Some("SIZE") => {
                caps.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0))
            }
            _ => {}
        }
    }
    caps
}

/// Client TLS configurations: one that verifies certificates and one for opportunistic TLS.
#[derive(Debug, Clone)]
pub struct TlsConfigs {
    /// webpki roots plus the optional extra CA.
    pub verified: Arc<rustls::ClientConfig>,
    /// Encrypts without checking who is at the other end (AsyncOS "Preferred").
    pub unverified: Arc<rustls::ClientConfig>,
}

impl TlsConfigs {
    /// `extra_ca`: a PEM file of CA certificates to trust besides the webpki roots.
    pub fn new(extra_ca: Option<&Path>) -> Result<TlsConfigs, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = extra_ca {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
            let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_slice())
                .collect::<Result<_, _>>()
                .map_err(|e| format!("CA file {} is not PEM: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!("CA file {} holds no certificate", path.display()));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| format!("CA file {}: {e}", path.display()))?;
            }
        }
        // TLS 1.2 is the minimum (rustls offers nothing older).
        let versions: &[&rustls::SupportedProtocolVersion] =
            &[&rustls::version::TLS13, &rustls::version::TLS12];
        let verified = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let unverified = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Opportunistic(provider)))
            .with_no_client_auth();
        Ok(TlsConfigs {
            verified: Arc::new(verified),
            unverified: Arc::new(unverified),
        })
    }
}

/// Accepts any certificate but still checks the handshake signatures, so the session is at least
/// bound to the key the server presented.
#[derive(Debug)]
struct Opportunistic(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for Opportunistic {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
