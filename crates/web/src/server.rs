//! The HTTP(S) listener for the web UI and API, built for a hostile network: a cap on
//! connections in all and per client address, a deadline for each request's headers (which is
//! also the idle time allowed between requests), a deadline for whole requests, and TLS
//! handshakes done per connection with their own deadline, so no client can hold the listener,
//! its file descriptors or the mail side of the appliance.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::ClientAddr;

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long open connections may finish their requests after shutdown is signalled.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Limits of the web listener; from the `[web]` section of the bootstrap configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most connections at once.
    pub max_connections: u32,
    /// Most connections at once from one client address.
    pub max_connections_per_ip: u32,
    /// Deadline for a request's headers, for the idle time between requests, and for a whole
    /// request (reading its body and answering it).
    pub timeout: Duration,
}

/// Serves `app` on `listener` (over TLS when `tls` is given) until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = app.layer(tower_http::timeout::TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        limits.timeout,
    ));
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    let per_ip = Arc::new(PerIp::default());
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "web listener cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Over a limit the connection is closed at once: it costs a descriptor for microseconds.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "web connection refused: connection limit reached");
            continue;
        };
        let Some(held) = PerIp::enter(&per_ip, peer.ip(), limits.max_connections_per_ip) else {
            tracing::debug!(%peer, "web connection refused: per-address limit reached");
            continue;
        };
        while connections.try_join_next().is_some() {}
        let (app, tls, stop) = (app.clone(), tls.clone(), shutdown.clone());
        connections.spawn(async move {
            let _slot = slot;
            let _held = held;
            match tls {
                None => connection(tcp, peer, app, limits, stop).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => connection(stream, peer, app, limits, stop).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "web TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "web TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    connections.abort_all();
}

/// One HTTP/1.1 connection, ended gracefully when shutdown is signalled.
async fn connection<S>(
    stream: S,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(ClientAddr(peer)));
            app.clone().oneshot(req)
        });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.timeout)
        // Headers beyond 64 KiB are refused (431) rather than buffered.
        .max_buf_size(64 * 1024);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "web connection ended with an error");
            }
            return;
        }
        _ = stop.wait_for(|s| *s) => conn.as_mut().graceful_shutdown(),
    }
    let _ = conn.await;
}

/// Open connections per client address.
#[derive(Debug, Default)]
struct PerIp {
    counts: Mutex<HashMap<IpAddr, u32>>,
}

/// A connection counted against its address until dropped.
#[derive(Debug)]
struct Held {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    fn enter(per_ip: &Arc<PerIp>, ip: IpAddr, max: u32) -> Option<Held> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        let mut counts = per_ip.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Held {
            per_ip: per_ip.clone(),
            ip,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut counts = self.per_ip.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_address_counts_are_given_back() {
        let per_ip = Arc::new(PerIp::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = PerIp::enter(&per_ip, ip, 2).unwrap();
        let _b = PerIp::enter(&per_ip, "::ffff:192.0.2.1".parse().unwrap(), 2).unwrap();
        assert!(
            PerIp::enter(&per_ip, ip, 2).is_none(),
            "mapped IPv4 counts as IPv4"
        );
        assert!(PerIp::enter(&per_ip, "192.0.2.2".parse().unwrap(), 2).is_some());
        drop(a);
        assert!(PerIp::enter(&per_ip, ip, 2).is_some());
    }
}
