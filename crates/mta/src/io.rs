//! Buffered SMTP I/O over a plain or TLS stream: command lines out of a read buffer (so that
//! pipelined commands are served in order, RFC 2920), replies gathered and flushed only before
//! the session would wait for input.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use rampart_smtp::Reply;
use rampart_smtp::command::MAX_COMMAND_LINE;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_rustls::server::TlsStream;

/// The connection, before or after STARTTLS.
pub(crate) enum Stream<S> {
    Plain(S),
    Tls(Box<TlsStream<S>>),
    /// Only while the TLS handshake owns the stream.
    Upgrading,
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Upgrading => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Upgrading => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
            Stream::Upgrading => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Upgrading => Poll::Ready(Ok(())),
        }
    }
}

/// A line taken from the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A command line without its line ending.
    Command(Vec<u8>),
    /// A line longer than RFC 5321 allows; its bytes were discarded.
    TooLong,
}

pub(crate) struct Io<S> {
    pub(crate) stream: Stream<S>,
    buf: Vec<u8>,
    /// Start of unconsumed bytes in `buf`.
    pos: usize,
    out: Vec<u8>,
    /// Set while discarding the rest of an over-long line.
    discarding: bool,
    /// Longest a client may take to read our replies: one that stops reading is let go.
    write_timeout: std::time::Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Io<S> {
    pub(crate) fn new(stream: S, write_timeout: std::time::Duration) -> Io<S> {
        Io {
            stream: Stream::Plain(stream),
            buf: Vec::new(),
            pos: 0,
            out: Vec::with_capacity(256),
            discarding: false,
            write_timeout,
        }
    }

    /// Queues a reply; it is sent with the next flush.
    pub(crate) fn reply(&mut self, reply: &Reply) {
        reply.write_to(&mut self.out);
    }

    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            let write = async {
                self.stream.write_all(&self.out).await?;
                self.stream.flush().await
            };
            match tokio::time::timeout(self.write_timeout, write).await {
                Ok(r) => r?,
                Err(_) => return Err(io::ErrorKind::TimedOut.into()),
            }
            self.out.clear();
        }
        Ok(())
    }

    /// Whether unread client bytes are buffered (pipelined input).
    pub(crate) fn has_buffered_input(&self) -> bool {
        self.pos < self.buf.len()
    }

    /// Drops buffered input; used at STARTTLS, where anything sent before the handshake must not
    /// be taken as coming over TLS (CVE-2011-0411).
    pub(crate) fn discard_input(&mut self) {
        self.buf.clear();
        self.pos = 0;
    }

    /// The unread bytes, for the DATA decoder.
    pub(crate) fn buffered(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Takes the next complete line from the buffer, if there is one. Lines end with LF; a CR
    /// before it is removed. Over-long lines are reported once and skipped.
    pub(crate) fn take_line(&mut self) -> Option<Line> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        match memchr::memchr(b'\n', rest) {
            Some(n) => {
                let too_long = self.discarding || n + 1 > MAX_COMMAND_LINE;
                let line = rest.get(..n).unwrap_or_default();
                let line = line.strip_suffix(b"\r").unwrap_or(line).to_vec();
                self.consume(n + 1);
                if too_long {
                    self.discarding = false;
                    return Some(Line::TooLong);
                }
                Some(Line::Command(line))
            }
            None => {
                if rest.len() > MAX_COMMAND_LINE {
                    // Keep memory bounded: drop what we have and remember to drop the rest.
                    self.discarding = true;
                    self.buf.clear();
                    self.pos = 0;
                }
                None
            }
        }
    }

    /// Flushes pending replies, then reads more input. Returns 0 at end of stream. `bulk` asks for
    /// a large read (message data); command reads stay small, so that thousands of idle sessions
    /// hold little memory.
    pub(crate) async fn read_more(&mut self, bulk: bool) -> io::Result<usize> {
        self.flush().await?;
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        if bulk {
            self.buf.reserve(64 * 1024);
        } else {
            // An idle session keeps only a small buffer; a long line grows it as needed.
            if self.buf.is_empty() && self.buf.capacity() > 4096 {
                self.buf = Vec::new();
            }
            self.buf.reserve(512);
        }
        // `read_buf` appends to the vector and is cancel-safe (shutdown may interrupt the wait).
        self.stream.read_buf(&mut self.buf).await
    }

    pub(crate) async fn shutdown(&mut self) {
        if self.flush().await.is_ok() {
            let _ = tokio::time::timeout(self.write_timeout, self.stream.shutdown()).await;
        }
    }
}
