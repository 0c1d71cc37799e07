//! `rampart healthcheck`: asks the running appliance's `GET /api/v1/health` (for the container's
//! HEALTHCHECK, which cannot rely on curl being in the image).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use rampart_config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(crate) async fn check(config: &Config) -> Result<()> {
    let mut addr = config.web.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            [127, 0, 0, 1].into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let https = config.web.uses_https();
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        let request =
            format!("GET /api/v1/health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        let mut response = Vec::new();
        if https {
            // Our own appliance on this host: its certificate is usually self-signed, and what
            // is checked here is that it answers, not who it is.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let configs = rampart_delivery::client::TlsConfigs::new(None)
                .map_err(|e| anyhow::anyhow!("cannot set up TLS: {e}"))?;
            let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
            let mut s = tokio_rustls::TlsConnector::from(configs.unverified)
                .connect(name, tcp)
                .await
                .context("TLS handshake with the web listener failed")?;
            s.write_all(request.as_bytes()).await?;
            // The server may close without close_notify; what arrived is enough.
            let _ = s.read_to_end(&mut response).await;
        } else {
            let mut s = tcp;
            s.write_all(request.as_bytes()).await?;
            s.read_to_end(&mut response).await?;
        }
        anyhow::Ok(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .context("health check timed out")??;
    let text = String::from_utf8_lossy(&response);
    if !text.starts_with("HTTP/1.1 200") {
        bail!("unhealthy: {}", text.lines().next().unwrap_or("no answer"));
    }
    println!("healthy");
    Ok(())
}
