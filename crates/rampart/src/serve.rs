//! `rampart serve`: opens the store, starts the listeners and the background tasks, and shuts
//! down gracefully on SIGTERM or SIGINT.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use rampart_config::Config;
use rampart_maillog::MailLog;
use rampart_mta::{Mta, MtaConfig};
use rampart_settings::SharedSettings;
use rampart_store::{Role, Store, User};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long running SMTP sessions may take to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How often the settings generation is checked for changes made by other processes.
const SETTINGS_POLL: Duration = Duration::from_secs(1);

pub(crate) async fn serve(
    config: Config,
    initial_settings: Option<std::path::PathBuf>,
) -> Result<()> {
    init_tracing();
    // Catch SIGTERM before anything listens, so a stop request never finds the default action.
    let signals = Signals::install()?;
    // One crypto provider for the whole process (see docs/ARCHITECTURE.md).
    let _ = rustls::crypto::ring::default_provider().install_default();

    // Nothing the appliance writes is for other local users: the database holds every message
    // and the password hashes, the logs hold addresses and subjects.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let _lock = crate::data_dir::lock(&config.data_dir)?;
    crate::data_dir::protect(&config.data_dir);
    crate::data_dir::raise_fd_limit(&config);
    let store = crate::cli::open_store(&config).await?;
    store
        .set_meta("started_at", &rampart_store::unix_now().to_string())
        .await?;
    // Before any session takes a MID: spool files below it without their rows are orphans.
    let run_start = store.run_start_mid().await?;
    let (log, log_thread, syslog) = MailLog::open(
        &config.data_dir.join("logs"),
        config.logs.max_file_bytes,
        config.logs.retain_files as usize,
        syslog_config(&config)?,
    )
    .context("cannot open mail_logs")?;
    // Cluster mode: the shared settings and accounts first, so the checks below see them.
    let joined = if store.is_clustered() {
        crate::cluster::join(&store).await
    } else {
        None
    };
    if !store.is_clustered() || joined.is_some() {
        ensure_admin(&store).await?;
        if let Some(file) = initial_settings {
            load_initial_settings(&store, &file).await?;
        }
    } else {
        eprintln!(
            "rampart: the first-start account and initial settings are left to a start that reaches the cluster database"
        );
    }

    let settings = store.load_settings().await?;
    let snapshot = settings
        .compile()
        .map_err(|e| anyhow::anyhow!("stored runtime settings are invalid:\n{e}"))?;
    let shared: SharedSettings = Arc::new(ArcSwap::from_pointee(snapshot));
    let (stop_tx, stop_rx) = watch::channel(false);
    // In cluster mode the follower (started once the listeners are bound) does this.
    if !store.is_clustered() {
        tokio::spawn(watch_settings(
            store.clone(),
            shared.clone(),
            stop_rx.clone(),
        ));
    }

    let tls = crate::tls::server_config(&config)?;
    let (mta, engines, resolver) = build_mta(
        &config,
        &store,
        &shared,
        &log,
        Some(tokio_rustls::TlsAcceptor::from(tls.clone())),
        stop_rx.clone(),
    )?;
    tokio::spawn(check_engines(engines.clone(), log.clone()));
    let ca_file = Some(config.tdc.ca_file.as_path()).filter(|p| !p.as_os_str().is_empty());
    let client_tls =
        rampart_delivery::client::TlsConfigs::new(ca_file).map_err(|e| anyhow::anyhow!("{e}"))?;
    let engine = rampart_delivery::Engine::new(
        rampart_delivery::EngineConfig {
            hostname: config.hostname.clone(),
            port: config.delivery.port,
            timeouts: rampart_delivery::client::Timeouts {
                connect: Duration::from_secs(config.delivery.connect_timeout_secs),
                command: Duration::from_secs(config.delivery.command_timeout_secs),
                data: Duration::from_secs(config.delivery.data_timeout_secs),
            },
            tdc: rampart_tdc::TdcConfig {
                max_queue_age_secs: config.tdc.max_queue_age_secs,
                retry_delay_secs: config.tdc.retry_delay_secs,
                min_connections: config.tdc.min_connections,
                max_connections: config.tdc.max_connections,
                max_messages_per_connection: config.tdc.max_messages_per_connection,
                tls: match config.tdc.tls {
                    rampart_config::TlsMode::Off => rampart_tdc::TdcTls::Off,
                    rampart_config::TlsMode::Preferred => rampart_tdc::TdcTls::Preferred,
                    rampart_config::TlsMode::Required => rampart_tdc::TdcTls::Required,
                },
                remote_ip_header: config.tdc.remote_ip_header.clone(),
                copy_format: config.tdc.format == rampart_config::JournalFormat::Copy,
                envelope_sender: config.tdc.envelope_sender.clone(),
            },
        },
        store.clone(),
        shared.clone(),
        log.clone(),
        resolver.clone(),
        client_tls,
        stop_rx.clone(),
    );
    let delivery = tokio::spawn(engine.run());

    let mut smtp_tasks = Vec::new();
    let mut smtp_bound = Vec::new();
    for addr in &config.smtp.listen {
        let listener =
            listen(*addr).with_context(|| format!("cannot listen for SMTP on {addr}"))?;
        let bound = listener.local_addr()?;
        println!("smtp listening on {bound}");
        smtp_bound.push(bound.to_string());
        smtp_tasks.push(tokio::spawn(mta.clone().serve(listener)));
    }
    let own_hats: Vec<String> = shared
        .load()
        .settings()
        .listener_hats
        .iter()
        .map(|h| h.listener.clone())
        .collect();
    for l in &config.listeners {
        let name: Arc<str> = Arc::from(l.name.as_str());
        for addr in &l.listen {
            let listener = listen(*addr).with_context(|| {
                format!("cannot listen for SMTP on {addr} (listener {})", l.name)
            })?;
            let bound = listener.local_addr()?;
            println!("smtp listener {} listening on {bound}", l.name);
            smtp_tasks.push(tokio::spawn(
                mta.clone().serve_as(listener, Some(name.clone())),
            ));
        }
        if !own_hats.iter().any(|h| h.eq_ignore_ascii_case(&l.name)) {
            log.info(format!(
                "Listener {} has no HAT of its own yet: only loopback clients are accepted; add sender groups on the HAT Overview page (listener {})",
                l.name, l.name
            ));
        }
    }

    tokio::spawn(prune(
        store.clone(),
        config.retention.clone(),
        run_start,
        stop_rx.clone(),
    ));
    if let Some(syslog) = syslog.clone() {
        tokio::spawn(record_syslog_status(store.clone(), syslog, stop_rx.clone()));
    }
    let alerts = Arc::new(rampart_alerts::Alerts::new(
        store.clone(),
        shared.clone(),
        engines.clone(),
        config.data_dir.clone(),
        config.hostname.clone(),
    ));
    tokio::spawn(rampart_alerts::run(
        alerts.clone(),
        Duration::from_secs(config.alerts.check_secs),
        stop_rx.clone(),
    ));

    let web_listener = listen(config.web.listen)
        .with_context(|| format!("cannot listen for the web UI on {}", config.web.listen))?;
    let web_addr = web_listener.local_addr()?;
    let https = config.web.uses_https();
    println!("web listening on {web_addr}");
    println!(
        "Web UI and REST API: {}://{web_addr}/ (API under /api/v1; log in as an appliance account, e.g. admin)",
        if https { "https" } else { "http" }
    );
    let options = rampart_web::WebOptions {
        https,
        session_idle_secs: i64::try_from(config.web.session_timeout_mins.saturating_mul(60))
            .unwrap_or(i64::MAX),
        max_failed_logins: config.web.max_failed_logins,
        lockout: Duration::from_secs(config.web.lockout_mins.saturating_mul(60)),
        hostname: config.hostname.clone(),
        mail_log: Some(config.data_dir.join("logs").join("mail_logs")),
        message_body_hours: config.retention.message_body_hours,
        listeners: std::iter::once(rampart_web::ListenerInfo {
            name: config.smtp.interface.clone(),
            listen: config.smtp.listen.iter().map(ToString::to_string).collect(),
            main: true,
        })
        .chain(config.listeners.iter().map(|l| rampart_web::ListenerInfo {
            name: l.name.clone(),
            listen: l.listen.iter().map(ToString::to_string).collect(),
            main: false,
        }))
        .collect(),
        logs: rampart_web::LogOptions {
            retain_files: config.logs.retain_files,
            max_file_bytes: config.logs.max_file_bytes,
            syslog_facility: config.logs.syslog_facility.trim().to_ascii_lowercase(),
            syslog_framing: config.logs.syslog_framing.as_str(),
        },
    };
    if store.is_clustered() {
        let info = rampart_store::NodeInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            smtp: smtp_bound.join(" "),
            web: web_addr.to_string(),
            started_at: rampart_store::unix_now(),
        };
        // The settings loaded above are the local copy at `joined` (or an older one).
        let in_force = joined.or(store.settings_generation_local().await.ok());
        if let Some(g) = in_force {
            store.cluster_in_force(g);
        }
        tokio::spawn(crate::cluster::ship(store.clone(), stop_rx.clone()));
        tokio::spawn(crate::cluster::follow(
            store.clone(),
            shared.clone(),
            info,
            joined,
            stop_rx.clone(),
        ));
    }
    let app = rampart_web::router(
        rampart_web::AppState::new(store.clone(), shared.clone(), options)
            .with_engines(engines)
            .with_alerts(alerts)
            .with_tracer(mta.tracer())
            .with_syslog(syslog),
    );
    let web_tls = https.then(|| {
        // The appliance certificate, as for STARTTLS; browsers speak HTTP/1.1 to us.
        let mut c = (*tls).clone();
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(c))
    });
    let limits = rampart_web::server::Limits {
        max_connections: config.web.max_connections,
        max_connections_per_ip: config.web.max_connections_per_ip,
        timeout: Duration::from_secs(config.web.timeout_secs),
    };
    let web = tokio::spawn(rampart_web::server::serve(
        web_listener,
        web_tls,
        app,
        limits,
        stop_rx.clone(),
    ));

    log.info(format!(
        "Rampart {} starting, hostname {}",
        env!("CARGO_PKG_VERSION"),
        config.hostname
    ));
    signals.wait().await;
    log.info("Rampart shutting down");
    let _ = stop_tx.send(true);
    for t in smtp_tasks {
        let _ = t.await;
    }
    if !mta.drain(SHUTDOWN_GRACE).await {
        tracing::warn!("SMTP sessions still open after the shutdown grace period");
    }
    let _ = web.await;
    let _ = delivery.await;
    store.close().await;
    drop(mta);
    drop(log);
    // The log thread ends once every handle is gone; wait so the last lines reach the disk.
    let _ = tokio::task::spawn_blocking(move || log_thread.join()).await;
    Ok(())
}

/// Connections the kernel queues for a listener until it accepts them. The default of
/// `TcpListener::bind` (128) overflowed under a burst of 200 logins: the clients whose SYN was
/// dropped waited a second for its retransmission. Bounded by `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 1024;

/// A listening socket with [`LISTEN_BACKLOG`] (and `SO_REUSEADDR`, so a restart can bind again
/// while old connections linger in TIME_WAIT).
fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RAMPART_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Applies a settings file when this appliance's settings were never saved (its first start), so
/// a container comes up configured; later starts keep what the administrator changed since.
async fn load_initial_settings(store: &Store, file: &std::path::Path) -> Result<()> {
    let generation = store.settings_generation().await?;
    if generation > 0 {
        return Ok(());
    }
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read initial settings {}", file.display()))?;
    let settings = rampart_settings::Settings::from_toml(&text)
        .map_err(|e| anyhow::anyhow!("initial settings {} are invalid:\n{e}", file.display()))?;
    // Only onto settings never saved: nodes of a new cluster starting together load it once.
    match store
        .save_settings_if(
            &settings,
            &rampart_store::Audit::new(
                "system",
                "boot",
                format!("initial settings loaded from {}", file.display()),
            ),
            generation,
        )
        .await
    {
        Err(rampart_store::StoreError::Stale { .. }) => return Ok(()),
        other => other?,
    };
    eprintln!(
        "rampart: first start: runtime settings loaded from {}",
        file.display()
    );
    Ok(())
}

/// Creates the `admin` account on first start (SPEC §7).
async fn ensure_admin(store: &Store) -> Result<()> {
    if store.user_count().await? > 0 {
        return Ok(());
    }
    let (password, generated) = match std::env::var("RAMPART_ADMIN_PASSWORD") {
        Ok(p) if !p.is_empty() => (p, false),
        _ => (random_password(), true),
    };
    let hash = rampart_web::auth::hash_password(&password)
        .map_err(|e| anyhow::anyhow!("cannot hash password: {e}"))?;
    // Nodes of a cluster starting together: only one creates it.
    if !store
        .put_first_user(&User {
            name: "admin".into(),
            password_hash: hash,
            role: Role::Admin,
        })
        .await?
    {
        return Ok(());
    }
    if generated {
        eprintln!(
            "rampart: created the administrator account 'admin' with password: {password}\n\
             rampart: this is shown only once; set RAMPART_ADMIN_PASSWORD before the first start to choose it"
        );
    } else {
        eprintln!(
            "rampart: created the administrator account 'admin' with the password from RAMPART_ADMIN_PASSWORD"
        );
    }
    Ok(())
}

fn random_password() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(&rand::distr::Alphanumeric)
        .take(20)
        .map(char::from)
        .collect()
}

/// Reloads the settings snapshot whenever another process (the CLI) changed them.
async fn watch_settings(store: Store, shared: SharedSettings, mut stop: watch::Receiver<bool>) {
    let mut seen = store.settings_generation().await.unwrap_or(-1);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SETTINGS_POLL) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let Ok(generation) = store.settings_generation().await else {
            continue;
        };
        if generation == seen {
            continue;
        }
        match store.load_settings().await.map(|s| s.compile()) {
            Ok(Ok(snapshot)) => {
                shared.store(Arc::new(snapshot));
                seen = generation;
                tracing::info!(generation, "runtime settings reloaded");
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "stored settings are invalid; keeping the previous ones")
            }
            Err(e) => tracing::error!(error = %e, "cannot load settings"),
        }
    }
}

/// SIGTERM and SIGINT (Ctrl-C), registered at start-up.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let term =
                signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
            let int =
                signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
            Ok(Signals { term, int })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn wait(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The scanning engines of `[antispam]` and `[antivirus]`.
/// The MTA of `config`, with its engines, email authentication and resolver (shared with
/// delivery). `rampart trace` builds the same one, so a trace sees what sessions see.
fn build_mta(
    config: &Config,
    store: &Store,
    shared: &SharedSettings,
    log: &MailLog,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop_rx: watch::Receiver<bool>,
) -> Result<(
    Mta,
    Arc<rampart_scan::Engines>,
    Arc<dyn rampart_dns::Resolver>,
)> {
    let engines = Arc::new(engines(config)?);
    let resolver: Arc<dyn rampart_dns::Resolver> = Arc::new(
        rampart_dns::HickoryResolver::new(&config.dns.nameservers, Duration::from_secs(10))
            .map_err(|e| anyhow::anyhow!("cannot set up DNS: {e}"))?,
    );
    let mta = Mta::new(
        MtaConfig {
            hostname: config.hostname.clone(),
            interface: config.smtp.interface.clone(),
            max_message_size: config.smtp.max_message_size,
            max_recipients: config.smtp.max_recipients,
            max_connections: config.smtp.max_connections,
            max_connections_per_ip: config.smtp.max_connections_per_ip,
            timeout: Duration::from_secs(config.smtp.timeout_secs),
            max_session: Duration::from_secs(config.smtp.max_session_secs),
            max_errors: config.smtp.max_errors,
            max_junk_commands: config.smtp.max_junk_commands,
            max_hops: config.smtp.max_hops,
            reverse_dns_timeout: Duration::from_millis(config.smtp.reverse_dns_timeout_ms),
            max_memory_bytes: config.smtp.max_memory_bytes,
            remote_ip_header: config.tdc.remote_ip_header.clone(),
        },
        store.clone(),
        shared.clone(),
        log.clone(),
        tls,
        stop_rx,
    )
    .with_authenticator(
        rampart_emailauth::Authenticator::new(
            rampart_dns::resolver_config(&config.dns.nameservers),
            &config.hostname,
            Duration::from_secs(5),
        )
        .map_err(|e| anyhow::anyhow!("cannot set up email authentication: {e}"))?,
    )
    .with_engines(engines.clone())
    .with_resolver(resolver.clone());
    Ok((mta, engines, resolver))
}

/// `rampart trace`: what the appliance would do, with its committed settings and its engines;
/// nothing is sent, stored or logged.
pub(crate) async fn trace(
    config: &Config,
    req: rampart_mta::TraceRequest,
    json: bool,
) -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let store = crate::cli::open_store(config).await?;
    let snapshot = store
        .load_settings()
        .await?
        .compile()
        .map_err(|e| anyhow::anyhow!("stored runtime settings are invalid:\n{e}"))?;
    let shared: SharedSettings = Arc::new(ArcSwap::from_pointee(snapshot));
    let (log, _) = MailLog::memory();
    let (_stop_tx, stop_rx) = watch::channel(false);
    let (mta, _, _) = build_mta(config, &store, &shared, &log, None, stop_rx)?;
    let report = mta
        .tracer()
        .trace(&req)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", crate::status::trace_text(&report));
    }
    Ok(())
}

/// How often retention looks for finished messages to prune.
const PRUNE_EVERY: Duration = Duration::from_secs(300);

/// Retention (`[retention]`): empties old bodies and deletes old records of finished messages,
/// and keeps the reports' rollups small, at start and every few minutes. First, once, the spool
/// loses the files of messages an earlier run wrote but never committed (see `Store::sweep_spool`).
async fn prune(
    store: Store,
    retention: rampart_config::Retention,
    run_start: rampart_store::Mid,
    mut stop: watch::Receiver<bool>,
) {
    match store.sweep_spool(run_start).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            files = n,
            "spool: removed the body files of messages never accepted"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "spool: the sweep for files of messages never accepted failed")
        }
    }
    let body_secs =
        i64::try_from(retention.message_body_hours.saturating_mul(3600)).unwrap_or(i64::MAX);
    let record_secs =
        i64::try_from(retention.tracking_days.saturating_mul(86_400)).unwrap_or(i64::MAX);
    loop {
        let now = rampart_store::unix_now();
        match store
            .prune(
                now.saturating_sub(body_secs),
                now.saturating_sub(record_secs),
            )
            .await
        {
            Ok(p) if p != rampart_store::Pruned::default() => tracing::info!(
                bodies = p.bodies,
                records = p.records,
                "retention: pruned finished messages"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention: pruning failed"),
        }
        match store.cluster_prune(now.saturating_sub(record_secs)).await {
            Ok(n) if n > 0 => tracing::info!(records = n, "retention: pruned shipped tracking"),
            Ok(_) | Err(rampart_store::StoreError::Unavailable(_)) => {}
            Err(e) => tracing::warn!(error = %e, "retention: pruning shipped tracking failed"),
        }
        if let Err(e) = store.compact_reports().await {
            tracing::warn!(error = %e, "retention: compacting the reports failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

/// How often the syslog push's counters are written down for `rampart logconfig`.
const SYSLOG_STATUS_EVERY: Duration = Duration::from_secs(10);

/// Keeps the syslog push's counters in the store (`meta.syslog_status`), so that `rampart
/// logconfig`, another process, can show them.
async fn record_syslog_status(
    store: Store,
    syslog: Arc<rampart_maillog::Syslog>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let mut status = rampart_web::api::syslog_json(&syslog.status());
        if let Some(map) = status.as_object_mut() {
            map.insert("as_of".into(), rampart_store::unix_now().into());
        }
        if let Err(e) = store.set_meta("syslog_status", &status.to_string()).await {
            tracing::warn!(error = %e, "cannot record the syslog push's status");
        }
        tokio::select! {
            _ = tokio::time::sleep(SYSLOG_STATUS_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

/// The syslog push of `[logs]`, if one is configured.
fn syslog_config(config: &Config) -> Result<Option<rampart_maillog::SyslogConfig>> {
    use rampart_config::{SyslogFraming, SyslogScheme};
    let Some(target) = config
        .logs
        .syslog_target()
        .map_err(|e| anyhow::anyhow!("`logs.syslog`: {e}"))?
    else {
        return Ok(None);
    };
    let transport = match target.scheme {
        SyslogScheme::Udp => rampart_maillog::Transport::Udp,
        SyslogScheme::Tcp => rampart_maillog::Transport::Tcp,
        SyslogScheme::Tls => {
            let ca =
                Some(config.logs.syslog_ca_file.as_path()).filter(|p| !p.as_os_str().is_empty());
            let tls = rampart_delivery::client::TlsConfigs::new(ca)
                .map_err(|e| anyhow::anyhow!("`logs.syslog_ca_file`: {e}"))?;
            rampart_maillog::Transport::Tls(tls.verified)
        }
    };
    Ok(Some(rampart_maillog::SyslogConfig {
        transport,
        host: target.host,
        port: target.port,
        facility: config.logs.syslog_facility_code().unwrap_or(2),
        framing: match config.logs.syslog_framing {
            SyslogFraming::Newline => rampart_maillog::Framing::Newline,
            SyslogFraming::OctetCounting => rampart_maillog::Framing::OctetCounting,
        },
        hostname: config.hostname.clone(),
        queue_lines: config.logs.syslog_queue_lines as usize,
    }))
}

fn engines(config: &Config) -> anyhow::Result<rampart_scan::Engines> {
    use rampart_config::{OnScanError, SpamEngine, VirusEngine};
    let spam = match config.antispam.engine {
        SpamEngine::None => None,
        SpamEngine::Rspamd => Some(
            rampart_scan::SpamService::new(
                &config.antispam.url,
                Duration::from_secs(config.antispam.timeout_secs),
                config.antispam.max_scan_bytes,
                config.antispam.on_error == OnScanError::Accept,
            )
            .map_err(|e| anyhow::anyhow!("`antispam.url`: {e}"))?,
        ),
    };
    let virus = match config.antivirus.engine {
        VirusEngine::None => None,
        VirusEngine::Clamav => {
            let address =
                rampart_scan::ClamdAddress::parse(&config.antivirus.address).ok_or_else(|| {
                    anyhow::anyhow!(
                        "`antivirus.address`: {:?} is neither ip:port nor a socket path",
                        config.antivirus.address
                    )
                })?;
            Some(rampart_scan::VirusService::new(
                address,
                Duration::from_secs(config.antivirus.timeout_secs),
                config.antivirus.max_scan_bytes,
                config.antivirus.on_error == OnScanError::Accept,
            ))
        }
    };
    Ok(rampart_scan::Engines { spam, virus })
}

/// Says in the mail log at start whether each configured engine answers: an engine that is
/// down makes every message of a scanning policy wait (`451`), which an administrator should
/// see before the first complaint.
async fn check_engines(engines: Arc<rampart_scan::Engines>, log: MailLog) {
    if let Some(spam) = &engines.spam {
        match spam.client.ping().await {
            Ok(version) => log.info(format!(
                "Anti-Spam engine RSPAMD at {} is up ({version})",
                spam.url
            )),
            Err(e) => log.warning(format!("Anti-Spam engine RSPAMD is not reachable: {e}")),
        }
    }
    if let Some(virus) = &engines.virus {
        match virus.client.version().await {
            Ok(version) => log.info(format!(
                "Anti-Virus engine CLAMAV at {} is up ({version})",
                virus.address
            )),
            Err(e) => log.warning(format!("Anti-Virus engine CLAMAV is not reachable: {e}")),
        }
    }
}
