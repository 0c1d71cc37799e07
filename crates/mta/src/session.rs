//! One inbound SMTP session (RFC 5321 §3, §4), from the banner to QUIT.
//!
//! The read mode (commands or DATA) is kept apart from the transaction state: commands are taken
//! one line at a time from the buffer, so pipelined commands (RFC 2920) are answered in order and
//! their replies leave in one write when the session would next wait for input.

use std::net::{IpAddr, SocketAddr};

use rampart_dns::canonical_ip;
use rampart_maillog::line;
use rampart_settings::{FlowPolicy, HatMatch, TlsPolicy};
use rampart_smtp::reply::{code, replies};
use rampart_smtp::{
    Command, DataDecoder, DataStatus, Enhanced, MailParams, Mailbox, Reply, tls_names,
};
use rampart_store::{Icid, Mid};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::Instrument;

use crate::Mta;
use crate::io::{Io, Line, Stream};

/// Runs a session on an accepted connection, enforcing the connection limit and the HAT.
pub(crate) async fn run(
    mta: Mta,
    mut stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    listener: Option<std::sync::Arc<str>>,
) {
    let Ok(permit) = mta.connections.clone().try_acquire_owned() else {
        mta.refusal(format!(
            "Connection from {} refused: {} concurrent connections reached",
            peer.ip(),
            mta.config.max_connections
        ));
        let _ = stream
            .write_all(&replies::TOO_MANY_CONNECTIONS.to_wire())
            .await;
        return;
    };
    let peer_ip = canonical_ip(peer.ip());
    let Some(held) = PerIp::enter(&mta, peer_ip) else {
        mta.refusal(format!(
            "Connection from {peer_ip} refused: {} concurrent connections from this address reached",
            mta.config.max_connections_per_ip
        ));
        let _ = tokio::time::timeout(
            mta.config.timeout,
            stream.write_all(&replies::TOO_MANY_FROM_ADDRESS.to_wire()),
        )
        .await;
        return;
    };
    let icid = match mta.store.next_icid().await {
        Ok(i) => i,
        Err(e) => {
            tracing::error!(error = %e, "cannot allocate ICID");
            let _ = stream.write_all(&replies::STORAGE_FAILED.to_wire()).await;
            return;
        }
    };
    let rdns = crate::client_name(
        mta.resolver.as_deref(),
        peer_ip,
        mta.config.reverse_dns_timeout,
    )
    .await;
    let iface = listener.as_deref().unwrap_or(&mta.config.interface);
    mta.log.info(line::new_icid(
        icid,
        iface,
        canonical_ip(local.ip()),
        peer_ip,
        rdns.host.as_deref(),
        rdns.verified,
    ));
    let hat = mta
        .settings
        .load()
        .classify_on(listener.as_deref(), peer_ip, rdns.verified_name());
    mta.log.info(line::sender_group(
        icid,
        hat.policy.as_str(),
        &hat.group,
        &hat.matched,
    ));
    // The mail flow policy's own cap on connections from one address (this one included).
    if let Some(max) = hat.limits.max_connections_per_ip {
        let open = mta
            .per_ip
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&peer_ip)
            .copied()
            .unwrap_or(0);
        if open > max {
            mta.refusal(format!(
                "ICID {icid} refused: {open} concurrent connections from {peer_ip}, sender group {} allows {max}",
                hat.group
            ));
            let _ = tokio::time::timeout(
                mta.config.timeout,
                stream.write_all(&replies::TOO_MANY_FROM_ADDRESS.to_wire()),
            )
            .await;
            mta.log.info(line::icid_close(icid));
            return;
        }
    }
    // The span goes with the task (`instrument`), never entered across an await: a task moves
    // between worker threads, and a guard held over an await left the span on one thread's stack
    // while the task finished on another — tracing-subscriber then panicked in whatever task ran
    // next on that thread (a session or a delivery worker).
    let span = tracing::info_span!("smtp_session", icid = icid.0, peer = %peer_ip);
    async move {
        if hat.policy == FlowPolicy::Tcprefuse {
            drop(stream);
            mta.log.info(line::icid_close(icid));
            return;
        }
        let mut session = Session {
            io: Io::new(stream, mta.config.timeout),
            icid,
            peer: peer_ip,
            hat,
            helo: None,
            tls: None,
            tx: None,
            messages: 0,
            errors: 0,
            junk: 0,
            ends_at: tokio::time::Instant::now() + mta.config.max_session,
            mta: mta.clone(),
        };
        session.serve().await;
        // The last replies go out (within the write timeout) while the session still holds
        // its places in the connection limits, so a client that stops reading cannot gain
        // sockets by it; the places are then given back before the client sees the
        // connection close, so a client that reconnects at once (after a 421 for too many
        // messages, say) does not find its old connection still counted.
        let flushed = session.io.flush().await.is_ok();
        drop(held);
        drop(permit);
        if flushed {
            session.io.shutdown().await;
        }
        mta.log.info(line::icid_close(icid));
    }
    .instrument(span)
    .await
}

/// A session counted against its client's address until dropped.
struct PerIp {
    mta: Mta,
    ip: IpAddr,
}

impl PerIp {
    fn enter(mta: &Mta, ip: IpAddr) -> Option<PerIp> {
        let mut counts = mta.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= mta.config.max_connections_per_ip {
            return None;
        }
        *n += 1;
        Some(PerIp {
            mta: mta.clone(),
            ip,
        })
    }
}

impl Drop for PerIp {
    fn drop(&mut self) {
        let mut counts = self.mta.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// What the session does after a command.
enum Next {
    Continue,
    Quit,
    /// End the session without a further reply (the command's reply said why).
    Close,
    StartTls,
    Data,
}

/// The mail transaction between MAIL and the end of DATA.
struct Transaction {
    mid: Mid,
    from: Option<Mailbox>,
    rcpts: Vec<Mailbox>,
    /// Message memory reserved for it: at MAIL for the size the client declared (RFC 1870),
    /// growing during DATA as the message does.
    memory: Reservation,
    /// The size declared with `MAIL FROM:<…> SIZE=`.
    declared: Option<usize>,
}

/// Room for our `Received:` header and the buffer's first block, beside a declared size.
const HEADER_ROOM: usize = 16 * 1024;

struct Session<S> {
    mta: Mta,
    io: Io<S>,
    icid: Icid,
    peer: IpAddr,
    hat: HatMatch,
    helo: Option<String>,
    /// `(protocol, cipher)` once STARTTLS succeeded.
    tls: Option<(String, String)>,
    tx: Option<Transaction>,
    /// Messages accepted in this connection.
    messages: u32,
    /// Error replies sent so far.
    errors: u32,
    /// Commands that moved no mail since the last message (NOOP, RSET, VRFY, HELP, refused
    /// recipients, transactions abandoned before DATA).
    junk: u32,
    /// The session's absolute deadline (`smtp.max_session_secs`).
    ends_at: tokio::time::Instant,
}

/// Why waiting for input ended without input.
enum Wait {
    Input,
    Closed,
    TimedOut,
    /// The session reached its absolute deadline.
    Expired,
    ShuttingDown,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    async fn serve(&mut self) {
        if self.hat.policy == FlowPolicy::Reject {
            self.rejected().await;
            return;
        }
        self.io.reply(&Reply::owned(
            code::SERVICE_READY,
            None,
            format!("{} ESMTP Rampart", self.mta.config.hostname),
        ));
        loop {
            let Some(line) = self.next_line(true).await else {
                break;
            };
            let result = match line {
                Line::TooLong => Err(replies::LINE_TOO_LONG),
                Line::Command(bytes) => match Command::parse(&bytes) {
                    Ok(cmd) => self.handle(cmd).await,
                    Err(e) => Err(e.reply()),
                },
            };
            if self.junk > self.mta.config.max_junk_commands {
                self.io.reply(&replies::TOO_MANY_JUNK);
                self.mta.log.info(format!(
                    "ICID {} too many commands without mail, closing",
                    self.icid
                ));
                break;
            }
            match result {
                Ok(Next::Continue) => {}
                Ok(Next::Quit) => {
                    self.io.reply(&replies::BYE);
                    break;
                }
                Ok(Next::Close) => break,
                Ok(Next::Data) => {
                    if !self.receive_data().await {
                        break;
                    }
                }
                Ok(Next::StartTls) => {
                    if !self.start_tls().await {
                        break;
                    }
                }
                Err(reply) => {
                    self.io.reply(&reply);
                    if reply.is_permanent() {
                        self.errors += 1;
                        if self.errors >= self.mta.config.max_errors {
                            self.io.reply(&replies::TOO_MANY_ERRORS);
                            self.mta
                                .log
                                .info(format!("ICID {} too many errors, closing", self.icid));
                            break;
                        }
                    }
                }
            }
        }
        self.abort_transaction();
    }

    /// A REJECT client gets `554` instead of a banner and nothing but QUIT afterwards
    /// (RFC 5321 §3.1).
    async fn rejected(&mut self) {
        self.io.reply(&Reply::owned(
            code::TRANSACTION_FAILED,
            Some(Enhanced(5, 7, 1)),
            format!("{} Access denied", self.mta.config.hostname),
        ));
        while let Some(line) = self.next_line(true).await {
            if matches!(line, Line::Command(ref b) if Command::parse(b) == Ok(Command::Quit)) {
                self.io.reply(&replies::BYE);
                return;
            }
            self.io.reply(&replies::BAD_SEQUENCE);
            self.errors += 1;
            if self.errors >= self.mta.config.max_errors {
                self.io.reply(&replies::TOO_MANY_ERRORS);
                return;
            }
        }
    }

    /// The next command line, reading as needed. `None` when the session must end (the client
    /// left, timed out, or the appliance is shutting down); the reply for that is queued.
    async fn next_line(&mut self, interruptible: bool) -> Option<Line> {
        loop {
            if let Some(line) = self.io.take_line() {
                return Some(line);
            }
            match self.wait_input(interruptible, false).await {
                Wait::Input => {}
                Wait::Closed => return None,
                Wait::TimedOut => {
                    self.io.reply(&replies::TIMEOUT);
                    self.mta
                        .log
                        .info(format!("ICID {} timeout waiting for client", self.icid));
                    return None;
                }
                Wait::Expired => {
                    self.io.reply(&replies::SESSION_TOO_LONG);
                    self.mta.log.info(format!(
                        "ICID {} session lasted too long, closing",
                        self.icid
                    ));
                    return None;
                }
                Wait::ShuttingDown => {
                    self.io.reply(&replies::SHUTTING_DOWN);
                    return None;
                }
            }
        }
    }

    async fn wait_input(&mut self, interruptible: bool, bulk: bool) -> Wait {
        let mut shutdown = self.mta.shutdown.clone();
        if interruptible && *shutdown.borrow_and_update() {
            return Wait::ShuttingDown;
        }
        // Between commands the session's absolute deadline applies too; DATA in progress is
        // finished first (the deadline ends the session at its next command).
        let left = self
            .ends_at
            .saturating_duration_since(tokio::time::Instant::now());
        let expires = interruptible && left < self.mta.config.timeout;
        let timeout = if expires {
            left
        } else {
            self.mta.config.timeout
        };
        let read = tokio::time::timeout(timeout, self.io.read_more(bulk));
        let outcome = tokio::select! {
            r = read => match r {
                Err(_) if expires => Wait::Expired,
                Err(_) => Wait::TimedOut,
                Ok(Ok(0)) | Ok(Err(_)) => Wait::Closed,
                Ok(Ok(_)) => Wait::Input,
            },
            _ = shutdown.wait_for(|stop| *stop), if interruptible => Wait::ShuttingDown,
        };
        outcome
    }

    async fn handle(&mut self, cmd: Command) -> Result<Next, Reply> {
        match cmd {
            Command::Ehlo(host) => {
                self.abort_transaction();
                let mut text = format!(
                    "{}\nPIPELINING\nSIZE {}\n8BITMIME\nENHANCEDSTATUSCODES",
                    self.mta.config.hostname, self.mta.config.max_message_size
                );
                if self.mta.tls.is_some() && self.tls.is_none() && !self.tls_off() {
                    text.push_str("\nSTARTTLS");
                }
                self.helo = Some(host);
                self.io.reply(&Reply::owned(code::OK, None, text));
                Ok(Next::Continue)
            }
            Command::Helo(host) => {
                self.abort_transaction();
                self.helo = Some(host);
                self.io.reply(&Reply::owned(
                    code::OK,
                    None,
                    self.mta.config.hostname.clone(),
                ));
                Ok(Next::Continue)
            }
            Command::Mail { from, params } => self.mail(from, params).await,
            Command::Rcpt { to } => self.rcpt(to),
            Command::Data => {
                let tx = self.tx.as_ref().ok_or(replies::NEED_MAIL)?;
                if tx.rcpts.is_empty() {
                    return Err(replies::NO_VALID_RECIPIENTS);
                }
                Ok(Next::Data)
            }
            Command::Rset => {
                self.junk += 1;
                self.abort_transaction();
                self.io.reply(&replies::RESET);
                Ok(Next::Continue)
            }
            Command::Noop => {
                self.junk += 1;
                self.io.reply(&replies::OK);
                Ok(Next::Continue)
            }
            Command::Quit => Ok(Next::Quit),
            Command::Vrfy => {
                self.junk += 1;
                self.io.reply(&replies::VRFY);
                Ok(Next::Continue)
            }
            Command::Help => {
                self.junk += 1;
                self.io.reply(&replies::HELP);
                Ok(Next::Continue)
            }
            Command::StartTls => {
                if self.tls.is_some() {
                    Err(replies::ALREADY_TLS)
                } else if self.mta.tls.is_none() || self.tls_off() {
                    Err(replies::TLS_NOT_AVAILABLE)
                } else if self.tx.is_some() {
                    Err(replies::BAD_SEQUENCE)
                } else {
                    Ok(Next::StartTls)
                }
            }
            Command::NotImplemented(_) => Err(replies::NOT_IMPLEMENTED),
        }
    }

    /// The sender group's mail flow policy offers no STARTTLS.
    fn tls_off(&self) -> bool {
        self.hat.limits.tls == Some(TlsPolicy::Off)
    }

    /// MAIL FROM (RFC 5321 §4.1.1.2): starts a transaction and gives it its MID.
    async fn mail(&mut self, from: Option<Mailbox>, params: MailParams) -> Result<Next, Reply> {
        if self.helo.is_none() {
            return Err(replies::NEED_HELO);
        }
        if self.tx.is_some() {
            return Err(replies::NESTED_MAIL);
        }
        let (icid, group) = (self.icid, &self.hat.group);
        if self.hat.limits.tls == Some(TlsPolicy::Required) && self.tls.is_none() {
            self.mta.log.info(format!(
                "ICID {icid} MAIL refused: sender group {group} requires TLS, replied 530"
            ));
            return Err(replies::TLS_REQUIRED);
        }
        if let Some(max) = self.hat.limits.max_messages_per_connection
            && self.messages >= max
        {
            self.mta.log.info(format!(
                "ICID {icid} MAIL refused: {max} messages in this connection, the limit of sender group {group}; replied 421 and closed"
            ));
            self.io.reply(&replies::TOO_MANY_MESSAGES);
            return Ok(Next::Close);
        }
        if params
            .size
            .is_some_and(|s| s > self.mta.config.max_message_size)
        {
            return Err(replies::MESSAGE_TOO_BIG);
        }
        let mut memory = Reservation::default();
        let declared = params
            .size
            .map(|s| usize::try_from(s).unwrap_or(usize::MAX));
        if let Some(size) = declared {
            // RFC 1870 §6.1: 452 when the declared size does not fit now, before any data. The
            // buffer is then made that size at once, so an honest client's reservation never
            // has to grow (room for our Received: header included).
            if !memory.cover(&self.mta, size.saturating_add(HEADER_ROOM)) {
                self.mta.log.warning(format!(
                    "ICID {} MAIL refused: message memory (smtp.max_memory_bytes) in use by other sessions, replied 452",
                    self.icid
                ));
                return Err(replies::NO_MEMORY);
            }
        }
        let mid = self.mta.store.next_mid().await.map_err(|e| {
            tracing::error!(error = %e, "cannot allocate MID");
            replies::STORAGE_FAILED
        })?;
        let icid = self.icid;
        let sender = from.as_ref().map(ToString::to_string).unwrap_or_default();
        self.mta.log.info(line::start_mid(mid, icid));
        self.mta.log.info(line::from(mid, icid, &sender));
        self.tx = Some(Transaction {
            mid,
            from,
            rcpts: Vec::new(),
            memory,
            declared,
        });
        self.io.reply(&replies::SENDER_OK);
        Ok(Next::Continue)
    }

    /// RCPT TO (RFC 5321 §4.1.1.3), with the relay check: RELAY clients may send anywhere,
    /// everyone else only to domains the RAT accepts.
    fn rcpt(&mut self, to: Mailbox) -> Result<Next, Reply> {
        let max = self.mta.config.max_recipients as usize;
        let relay = self.hat.policy == FlowPolicy::Relay;
        let accepted = relay || self.mta.settings.load().rat_accepts(to.domain.as_str());
        let icid = self.icid;
        let tx = self.tx.as_mut().ok_or(replies::NEED_MAIL)?;
        if tx.rcpts.len() >= max {
            return Err(replies::TOO_MANY_RECIPIENTS);
        }
        let mid = tx.mid;
        if !accepted {
            self.mta
                .log
                .info(format!("MID {mid} ICID {icid} To: <{to}> Rejected by RAT"));
            // A refused recipient is an answer, not a protocol error: it must not use up
            // `max_errors` and end the session for the valid recipients beside it. It counts
            // as junk instead, so endless refused recipients still end the session.
            self.junk += 1;
            self.io.reply(&replies::RELAY_DENIED);
            return Ok(Next::Continue);
        }
        if let Some(limit) = self.hat.limits.max_recipients_per_hour
            && !self.mta.recipients_per_hour.take(self.peer, limit)
        {
            self.mta.log.info(format!(
                "MID {mid} ICID {icid} To: <{to}> Rejected: {limit} recipients this hour from {}, the limit of sender group {}; replied 452",
                self.peer, self.hat.group
            ));
            self.junk += 1;
            self.io.reply(&replies::RECIPIENT_RATE);
            return Ok(Next::Continue);
        }
        let rid = tx.rcpts.len();
        self.mta
            .log
            .info(line::to(mid, icid, rid as u32, &to.to_string()));
        tx.rcpts.push(to);
        self.io.reply(&replies::RECIPIENT_OK);
        Ok(Next::Continue)
    }

    /// DATA (RFC 5321 §4.1.1.4): reads the message, then commits it durably before `250`.
    /// Returns false when the connection is gone.
    async fn receive_data(&mut self) -> bool {
        let Some(mut tx) = self.tx.take() else {
            return true;
        };
        let (mid, icid) = (tx.mid, self.icid);
        let helo = self.helo.clone().unwrap_or_default();
        let single = match tx.rcpts.as_slice() {
            [one] => Some(one.to_string()),
            _ => None,
        };
        let prefix = crate::received::header(
            &helo,
            &self.peer.to_string(),
            &self.mta.config.hostname,
            self.tls.is_some(),
            mid.0,
            single.as_deref(),
        );
        let max = usize::try_from(self.mta.config.max_message_size).unwrap_or(usize::MAX);
        let mut decoder = DataDecoder::new(max, &prefix);
        if let Some(size) = tx.declared {
            decoder.expect(size);
        }
        // Memory the message holds is reserved from the appliance-wide budget as it grows, and
        // given back once the message is committed or refused.
        let mut reserved = std::mem::take(&mut tx.memory);
        let mut over_budget = false;
        self.io.reply(&replies::START_DATA);
        loop {
            let buffered = self.io.buffered();
            let len = buffered.len();
            let mut done = false;
            if len > 0 {
                match decoder.feed(buffered) {
                    DataStatus::Done { consumed } => {
                        self.io.consume(consumed);
                        done = true;
                    }
                    DataStatus::More => self.io.consume(len),
                }
            }
            if !over_budget && !reserved.cover(&self.mta, decoder.held()) {
                over_budget = true;
                decoder.discard();
                reserved = Reservation::default();
            }
            if done {
                break;
            }
            // DATA is not interrupted by shutdown: the message in flight is finished first.
            match self.wait_input(false, true).await {
                Wait::Input => {}
                Wait::TimedOut | Wait::Expired => {
                    self.io.reply(&replies::TIMEOUT);
                    self.mta
                        .log
                        .info(format!("MID {mid} ICID {icid} timeout during DATA"));
                    self.mta
                        .log
                        .info(format!("Message finished MID {mid} aborted"));
                    return false;
                }
                Wait::Closed | Wait::ShuttingDown => {
                    self.mta
                        .log
                        .info(format!("MID {mid} ICID {icid} lost connection during DATA"));
                    self.mta
                        .log
                        .info(format!("Message finished MID {mid} aborted"));
                    return false;
                }
            }
        }
        if decoder.too_big() {
            self.mta.log.info(format!(
                "MID {mid} ICID {icid} Receiving Failed: Message Size Too Large ({} bytes, limit {max})",
                decoder.size()
            ));
            self.mta
                .log
                .info(format!("Message finished MID {mid} aborted"));
            self.io.reply(&replies::MESSAGE_TOO_BIG);
            return true;
        }
        if over_budget {
            self.mta.log.warning(format!(
                "MID {mid} ICID {icid} Receiving Failed: message memory (smtp.max_memory_bytes) in use by other sessions, replied 452"
            ));
            self.mta
                .log
                .info(format!("Message finished MID {mid} aborted"));
            self.io.reply(&replies::NO_MEMORY);
            return true;
        }
        let body = decoder.into_message();
        let hops = rampart_smtp::message::received_count(&body);
        if hops > self.mta.config.max_hops as usize {
            self.mta.log.info(format!(
                "MID {mid} ICID {icid} Receiving Failed: mail loop detected ({hops} Received: headers, limit {})",
                self.mta.config.max_hops
            ));
            self.mta
                .log
                .info(format!("Message finished MID {mid} aborted"));
            self.io.reply(&replies::TOO_MANY_HOPS);
            return true;
        }
        let mut names = vec![self.mta.config.remote_ip_header.as_str()];
        names.extend(crate::OUR_HEADERS);
        let (body, removed) =
            rampart_smtp::message::strip_forged(body, &names, &self.mta.config.hostname);
        if !removed.is_empty() {
            self.mta.log.info(format!(
                "MID {mid} ICID {icid} removed client-supplied header(s): {}",
                removed.join(", ")
            ));
        }
        let reply = self.commit(tx, body).await;
        drop(reserved);
        if reply.code == code::OK {
            self.junk = 0;
            self.messages += 1;
        }
        self.io.reply(&reply);
        true
    }

    /// Runs the mail policies over an accepted message, commits every resulting MID with its
    /// queue rows in one transaction, and returns the reply for the client.
    async fn commit(&mut self, tx: Transaction, body: Vec<u8>) -> Reply {
        let (mid, icid) = (tx.mid, self.icid);
        let (message_id, subject) = header_fields(&body);
        let log = &self.mta.log;
        if let Some(id) = &message_id {
            log.info(line::message_id(mid, id));
        }
        if let Some(s) = &subject {
            log.info(line::subject(mid, s));
        }
        let sender = tx
            .from
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        log.info(line::ready(mid, body.len(), &sender));
        let envelope = crate::process::Envelope {
            mid,
            icid,
            from: tx.from.as_ref(),
            rcpts: &tx.rcpts,
            peer: self.peer,
            helo: self.helo.as_deref().unwrap_or_default(),
            hat: &self.hat,
            tls: self.tls.as_ref().map(|(p, _)| p.as_str()),
            message_id: message_id.as_deref(),
            subject: subject.as_deref(),
        };
        let processed = match crate::process::process(&self.mta, &envelope, body).await {
            Ok(p) => p,
            Err(reply) => return reply,
        };
        if processed.messages.is_empty() {
            for line in processed.log_after {
                log.info(line);
            }
            return processed.reply;
        }
        match self.mta.store.accept_all(processed.messages).await {
            Ok(()) => {
                for line in processed.log_after {
                    log.info(line);
                }
                processed.reply
            }
            Err(e) => {
                tracing::error!(error = %e, mid = mid.0, "cannot store message");
                log.warning(format!(
                    "MID {mid} ICID {icid} Receiving Failed: could not store message, replied 451"
                ));
                log.info(format!("Message finished MID {mid} aborted"));
                replies::STORAGE_FAILED
            }
        }
    }

    /// STARTTLS (RFC 3207): handshake, then the session starts over without EHLO.
    async fn start_tls(&mut self) -> bool {
        let Some(acceptor) = self.mta.tls.clone() else {
            return true;
        };
        self.io.reply(&replies::START_TLS);
        if self.io.flush().await.is_err() {
            return false;
        }
        if self.io.has_buffered_input() {
            self.mta.log.info(format!(
                "ICID {} discarded input pipelined after STARTTLS",
                self.icid
            ));
            self.io.discard_input();
        }
        let Stream::Plain(plain) = std::mem::replace(&mut self.io.stream, Stream::Upgrading) else {
            return false;
        };
        match tokio::time::timeout(self.mta.config.timeout, acceptor.accept(plain)).await {
            Ok(Ok(tls)) => {
                let (_, conn) = tls.get_ref();
                let protocol = conn
                    .protocol_version()
                    .map(|v| tls_names::protocol_name(&format!("{v:?}")))
                    .unwrap_or_default();
                let cipher = conn
                    .negotiated_cipher_suite()
                    .map(|c| tls_names::cipher_name(&format!("{:?}", c.suite())))
                    .unwrap_or_default();
                self.mta
                    .log
                    .info(line::icid_tls(self.icid, &protocol, &cipher));
                self.io.stream = Stream::Tls(Box::new(tls));
                self.tls = Some((protocol, cipher));
                self.helo = None;
                true
            }
            Ok(Err(e)) => {
                self.mta
                    .log
                    .info(format!("ICID {} TLS failed: {e}", self.icid));
                false
            }
            Err(_) => {
                self.mta.log.info(format!(
                    "ICID {} TLS failed: handshake timed out",
                    self.icid
                ));
                false
            }
        }
    }

    fn abort_transaction(&mut self) {
        if let Some(tx) = self.tx.take() {
            self.junk += 1;
            self.mta
                .log
                .info(format!("Message finished MID {} aborted", tx.mid));
        }
    }
}

/// Message memory held from the appliance-wide budget (`smtp.max_memory_bytes`), in KiB.
#[derive(Default)]
struct Reservation {
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    kib: usize,
}

impl Reservation {
    /// Grows the reservation to cover `bytes`; false when the budget has no room for them.
    fn cover(&mut self, mta: &Mta, bytes: usize) -> bool {
        let want = bytes.div_ceil(1024);
        if want <= self.kib {
            return true;
        }
        // Grow in steps of at least 256 KiB, so a large message takes few permits.
        let more = (want - self.kib).max(256);
        let Ok(n) = u32::try_from(more) else {
            return false;
        };
        match mta.memory.clone().try_acquire_many_owned(n) {
            Ok(p) => {
                match &mut self.permit {
                    Some(held) => held.merge(p),
                    None => self.permit = Some(p),
                }
                self.kib += more;
                true
            }
            Err(_) => false,
        }
    }
}

/// Message-ID (with angle brackets) and Subject of a stored message, from its header section.
fn header_fields(message: &[u8]) -> (Option<String>, Option<String>) {
    let end = memchr::memmem::find(message, b"\r\n\r\n")
        .map(|i| i + 4)
        .unwrap_or(message.len());
    let head = message.get(..end.min(1 << 20)).unwrap_or_default();
    let Some(parsed) = mail_parser::MessageParser::default().parse_headers(head) else {
        return (None, None);
    };
    let clean = |s: &str| s.chars().filter(|c| !c.is_control()).collect::<String>();
    (
        parsed.message_id().map(|id| format!("<{}>", clean(id))),
        parsed.subject().map(clean),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_are_found_and_cleaned() {
        let m = b"Received: x\r\nMessage-ID: <abc@example.com>\r\nSubject: =?UTF-8?Q?caf=C3=A9?= time\r\n\r\nSubject: not this\r\n";
        assert_eq!(
            header_fields(m),
            (
                Some("<abc@example.com>".into()),
                Some("caf\u{e9} time".into())
            )
        );
        assert_eq!(header_fields(b"\r\nbody only"), (None, None));
    }
}
