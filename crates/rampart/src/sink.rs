//! `rampart sink`: a small SMTP sink for labs, demos and tests (like Postfix's `smtp-sink`).
//! It accepts every message, stores each as an `.eml` file in a directory, logs one line per
//! message, and can be told to answer the end of DATA with any reply.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use rampart_smtp::{Command, DataDecoder, DataStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SinkArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:2626")]
    listen: SocketAddr,
    /// Directory for the received messages (created if missing); none = count only.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Reply to the end of DATA, e.g. "451 4.3.0 Try again later".
    #[arg(long, default_value = "250 2.0.0 Ok: queued")]
    reply: String,
    /// Name in the banner and EHLO reply.
    #[arg(long, default_value = "sink.localdomain")]
    hostname: String,
}

pub(crate) async fn run(args: SinkArgs) -> Result<()> {
    let valid = args.reply.len() > 4
        && args
            .reply
            .as_bytes()
            .first()
            .is_some_and(|b| (b'2'..=b'5').contains(b))
        && args
            .reply
            .get(..3)
            .is_some_and(|c| c.parse::<u16>().is_ok())
        && args.reply.as_bytes().get(3) == Some(&b' ');
    anyhow::ensure!(
        valid,
        "--reply must be an SMTP reply like \"250 2.0.0 Ok\" or \"451 4.3.0 Try later\""
    );
    if let Some(dir) = &args.dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!("sink listening on {}", listener.local_addr()?);
    let args = Arc::new(args);
    let counter = Arc::new(AtomicU64::new(0));
    loop {
        let (stream, peer) = listener.accept().await?;
        let args = args.clone();
        let counter = counter.clone();
        tokio::spawn(async move {
            if let Err(e) = session(stream, peer, &args, &counter).await {
                eprintln!("sink: session with {peer} failed: {e}");
            }
        });
    }
}

async fn session(
    mut s: TcpStream,
    peer: SocketAddr,
    args: &SinkArgs,
    counter: &AtomicU64,
) -> Result<()> {
    s.write_all(format!("220 {} ESMTP rampart sink\r\n", args.hostname).as_bytes())
        .await?;
    let mut buf: Vec<u8> = Vec::new();
    let (mut from, mut rcpts) = (String::new(), Vec::<String>::new());
    loop {
        let Some(i) = buf.iter().position(|b| *b == b'\n') else {
            if read(&mut s, &mut buf).await? == 0 {
                return Ok(());
            }
            continue;
        };
        let line: Vec<u8> = buf.drain(..=i).collect();
        let line = line.strip_suffix(b"\n").unwrap_or(&line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let reply = match Command::parse(line) {
            Ok(Command::Ehlo(_)) => format!(
                "250-{}\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 0",
                args.hostname
            ),
            Ok(Command::Helo(_)) => format!("250 {}", args.hostname),
            Ok(Command::Mail { from: f, .. }) => {
                from = f.map(|m| m.to_string()).unwrap_or_default();
                rcpts.clear();
                "250 2.1.0 Ok".into()
            }
            Ok(Command::Rcpt { to }) => {
                rcpts.push(to.to_string());
                "250 2.1.5 Ok".into()
            }
            Ok(Command::Data) if rcpts.is_empty() => "554 5.5.1 No valid recipients".into(),
            Ok(Command::Data) => {
                s.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut decoder = DataDecoder::new(usize::MAX, b"");
                loop {
                    if !buf.is_empty() {
                        match decoder.feed(&buf) {
                            DataStatus::Done { consumed } => {
                                buf.drain(..consumed);
                                break;
                            }
                            DataStatus::More => buf.clear(),
                        }
                    }
                    if read(&mut s, &mut buf).await? == 0 {
                        return Ok(());
                    }
                }
                let message = decoder.into_message();
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                let accepted = args.reply.starts_with('2');
                let mut stored = String::from("-");
                if let (Some(dir), true) = (&args.dir, accepted) {
                    let name = format!("{}-{n:06}.eml", chrono::Utc::now().format("%Y%m%dT%H%M%S"));
                    let path = dir.join(&name);
                    // Write to a temporary name first, so readers never see half a message.
                    let tmp = dir.join(format!(".{name}.tmp"));
                    tokio::fs::write(&tmp, &message).await?;
                    tokio::fs::rename(&tmp, &path).await?;
                    stored = path.display().to_string();
                }
                println!(
                    "sink: message {n} from <{from}> to {} {} bytes from {} -> {} ({})",
                    rcpts
                        .iter()
                        .map(|r| format!("<{r}>"))
                        .collect::<Vec<_>>()
                        .join(","),
                    message.len(),
                    peer.ip(),
                    args.reply.get(..3).unwrap_or(""),
                    stored
                );
                rcpts.clear();
                args.reply.clone()
            }
            Ok(Command::Rset) => {
                rcpts.clear();
                "250 2.0.0 Ok".into()
            }
            Ok(Command::Quit) => {
                s.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            Ok(Command::Noop) | Ok(Command::Vrfy) | Ok(Command::Help) => "250 2.0.0 Ok".into(),
            Ok(_) => "502 5.5.1 Not implemented".into(),
            Err(e) => e.reply().to_string(),
        };
        s.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}

async fn read(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut chunk = [0u8; 16 * 1024];
    let n = s.read(&mut chunk).await?;
    buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    Ok(n)
}
