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
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        s.write_all(
            format!("GET /api/v1/health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
        let mut response = Vec::new();
        s.read_to_end(&mut response).await?;
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
