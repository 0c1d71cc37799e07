//! Command-line interface. Subcommands follow AsyncOS names where AsyncOS has one.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use rampart_config::Config;
use rampart_settings::Settings;
use rampart_store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "rampart",
    version,
    about = "Rampart secure email gateway appliance"
)]
struct Cli {
    /// Bootstrap configuration file (TOML); without it, the embedded default is used.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the appliance: SMTP listeners, delivery, web UI and API.
    Serve {
        /// Runtime settings (a saveconfig file) to load on the very first start only.
        #[arg(long, env = "RAMPART_INITIAL_SETTINGS", value_name = "FILE")]
        initial_settings: Option<PathBuf>,
    },
    /// Write all runtime settings (HAT, RAT, ...) to FILE as TOML ("-" for standard output).
    Saveconfig { file: PathBuf },
    /// Validate FILE and apply all of its runtime settings at once, or nothing if any is invalid.
    /// FILE must name every table (as saveconfig writes it), so that nothing is reset by
    /// omission; with --partial only the tables it names are replaced and the rest are kept.
    Loadconfig {
        file: PathBuf,
        /// Replace only the tables FILE names; keep every other table as it is.
        #[arg(long)]
        partial: bool,
    },
    /// Print the configuration reference (every key of the --config file) as Markdown.
    ConfigReference,
    /// Run a small SMTP sink that stores every message it receives as an .eml file.
    Sink(crate::sink::SinkArgs),
    /// Exit 0 if the running appliance answers GET /api/v1/health (for container health checks).
    Healthcheck,
    /// Show or change the Threat Defense Connector settings (global switch and intake address).
    Tdcconfig {
        /// Turn the connector on (needs an intake address).
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Turn the connector off: nothing is journaled.
        #[arg(long)]
        disable: bool,
        /// The global Message Intake Address.
        #[arg(long, value_name = "ADDRESS")]
        intake_address: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List and change mail policies.
    Policyconfig {
        #[command(subcommand)]
        action: Option<crate::policyconfig::Action>,
        /// Work on the outgoing policies instead of the incoming ones.
        #[arg(long, global = true)]
        outgoing: bool,
        #[arg(long, global = true)]
        json: bool,
    },
    /// The Threat Defense journal ledger: every journal copy and what became of it.
    Ledger {
        /// How far back: e.g. 30m, 1h, 2d (default 1h).
        #[arg(long, default_value = "1h", value_parser = crate::status::parse_age)]
        since: i64,
        /// Only copies in this state.
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(
            rampart_tdc::LedgerState::ALL.map(rampart_tdc::LedgerState::as_str)
        ))]
        state: Option<String>,
        /// Queue the copies that failed or expired in the window again (journal replay): once
        /// each, never for a message whose copy was delivered; a running appliance sends them
        /// within a second.
        #[arg(long, conflicts_with = "state")]
        replay: bool,
        /// Cluster mode: `*` for the whole cluster's ledger, or a node's name (default: this
        /// node). A replay always runs on this node (it holds the messages).
        #[arg(long, conflicts_with = "replay")]
        node: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show the delivery figures per recipient host, as AsyncOS `tophosts` does.
    Tophosts {
        /// Order of the rows.
        #[arg(long, value_enum, default_value_t = crate::status::Sort::Active)]
        sort: crate::status::Sort,
        /// Cluster mode: `*` for the whole cluster (summed), or a node's name (as of its last
        /// heartbeat); default: this node.
        #[arg(long)]
        node: Option<String>,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Show the appliance's status: uptime, counters, queues and the connector.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Retry delivery now for one recipient host (a domain or the.tdc.queue), or for all.
    Deliverynow {
        /// The host as `tophosts` shows it; all hosts when left out.
        host: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one destination in detail (AsyncOS `hoststatus`): counters, last error, next retry,
    /// held or not; the.tdc.queue per intake address.
    Hoststatus {
        /// A destination domain or the.tdc.queue.
        host: String,
        #[arg(long)]
        json: bool,
    },
    /// Suspend delivery to a destination (AsyncOS `suspenddel`): its mail is accepted and waits.
    Suspenddel {
        host: String,
        #[arg(long)]
        json: bool,
    },
    /// Resume delivery to a destination held with `suspenddel` (AsyncOS `resumedel`).
    Resumedel {
        host: String,
        #[arg(long)]
        json: bool,
    },
    /// Show the end of a log and follow it as it grows (AsyncOS `tail`).
    Tail {
        /// The log to show.
        #[arg(value_parser = ["mail_logs"])]
        log: String,
        /// Lines to show before following.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        /// Print the last lines and exit instead of following.
        #[arg(long)]
        no_follow: bool,
    },
    /// List, add, change or remove appliance accounts.
    Userconfig {
        #[command(subcommand)]
        action: Option<crate::admin::UserAction>,
        #[arg(long, global = true)]
        json: bool,
    },
    /// The audit log: every configuration change, who made it, through what, and why.
    Auditlog {
        /// Most entries shown (newest first).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Apply the database migrations now: the local SQLite store's and, in cluster mode, the
    /// cluster database's (the appliance also applies them at start).
    Migrate,
    /// Cluster mode (AsyncOS `clusterconfig`): the cluster database, the settings generation,
    /// and every node with its last heartbeat and the generation it has in force.
    Clusterconfig {
        #[arg(long)]
        json: bool,
    },
    /// What the appliance would do with a connection and a message (AsyncOS `trace`): sender
    /// group, RAT, mail policy, verdicts and the Threat Defense journal. Nothing is sent.
    Trace {
        /// The client's IP address.
        #[arg(long)]
        client_ip: String,
        /// The HELO/EHLO name.
        #[arg(long, default_value = "")]
        helo: String,
        /// The envelope sender (empty for the null sender).
        #[arg(long, default_value = "")]
        from: String,
        /// An envelope recipient; repeat for more.
        #[arg(long = "to", required = true)]
        to: Vec<String>,
        /// A message file (headers, blank line, body) to evaluate the security services on.
        #[arg(long)]
        message: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// The log subscriptions (AsyncOS `logconfig`): the mail_logs file and its syslog push,
    /// with the push's counters as the running appliance last recorded them.
    Logconfig {
        #[arg(long)]
        json: bool,
    },
    /// The alert settings and the latest alerts (AsyncOS `alertconfig`). Change the settings
    /// with `loadconfig --partial` or the API (`/api/v1/alerts`).
    Alertconfig {
        /// Alerts of the log to show.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Search message tracking, or show one message's events with --mid.
    Tracking {
        #[arg(long)]
        mid: Option<u64>,
        #[arg(long)]
        sender: Option<String>,
        #[arg(long)]
        recipient: Option<String>,
        #[arg(long)]
        subject: Option<String>,
        /// The Message-ID header (a part of it).
        #[arg(long)]
        message_id: Option<String>,
        /// The sending client's IP address (exact).
        #[arg(long)]
        remote_ip: Option<String>,
        /// The mail policy (its exact name).
        #[arg(long)]
        policy: Option<String>,
        /// delivered, queued, bounced, quarantined, dropped, journaled, journal_failed, spam, virus.
        #[arg(long, value_parser = crate::status::parse_track_event)]
        event: Option<rampart_store::TrackEvent>,
        /// Only messages received within this time back: e.g. 30m, 1h, 2d.
        #[arg(long, value_parser = crate::status::parse_age)]
        since: Option<i64>,
        /// Most messages shown (newest first).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Matches skipped, to page through more than `limit`.
        #[arg(long, default_value_t = 0)]
        offset: u32,
        /// Cluster mode: `*` for the whole cluster, or a node's name (default: this node).
        #[arg(long)]
        node: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show the reports of Monitor > Overview: incoming mail by category, delivery and
    /// journaling outcomes, top senders, recipients and threat categories.
    Report {
        /// hour, day, week or month (30 days).
        #[arg(long, default_value = "day", value_parser = rampart_web::reports::parse_range)]
        range: rampart_store::ReportRange,
        /// Keys per top list.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
        top: u32,
        /// Print one table as CSV: series, sender_domains, sender_ips, recipients or threats.
        #[arg(long, value_parser = rampart_web::reports::ReportTable::parse)]
        csv: Option<rampart_web::reports::ReportTable>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rampart: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve { initial_settings } => {
                crate::serve::serve(load_config(cli.config.as_deref())?, initial_settings).await
            }
            Command::Saveconfig { file } => {
                saveconfig(&load_config(cli.config.as_deref())?, &file).await
            }
            Command::Loadconfig { file, partial } => {
                loadconfig(&load_config(cli.config.as_deref())?, &file, partial).await
            }
            Command::Trace {
                client_ip,
                helo,
                from,
                to,
                message,
                json,
            } => {
                let config = load_config(cli.config.as_deref())?;
                let message = match message {
                    Some(path) => Some(
                        String::from_utf8_lossy(
                            &std::fs::read(&path)
                                .with_context(|| format!("cannot read {}", path.display()))?,
                        )
                        .into_owned(),
                    ),
                    None => None,
                };
                let req = rampart_mta::TraceRequest {
                    client_ip,
                    helo,
                    sender: from,
                    recipients: to,
                    message,
                };
                crate::serve::trace(&config, req, json).await
            }
            Command::Logconfig { json } => {
                let config = load_config(cli.config.as_deref())?;
                let store = open_store(&config).await?;
                crate::admin::logconfig(&config, &store, json).await
            }
            Command::Alertconfig { limit, json } => {
                let store = open_store(&load_config(cli.config.as_deref())?).await?;
                crate::admin::alertconfig(&store, limit, json).await
            }
            Command::Report {
                range,
                top,
                csv,
                json,
            } => {
                let store = open_store(&load_config(cli.config.as_deref())?).await?;
                crate::status::report(&store, range, top as usize, csv, json).await
            }
            Command::Tophosts { sort, node, json } => {
                let store = open_store(&load_config(cli.config.as_deref())?).await?;
                let node = rampart_web::api::track_node(&store, node.as_deref())
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                crate::status::tophosts(&store, sort, node.as_deref(), json).await
            }
            Command::Tracking {
                mid,
                sender,
                recipient,
                subject,
                message_id,
                remote_ip,
                policy,
                event,
                since,
                limit,
                offset,
                node,
                json,
            } => {
                let store = open_store(&load_config(cli.config.as_deref())?).await?;
                let node = rampart_web::api::track_node(&store, node.as_deref())
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let filter = rampart_store::TrackFilter {
                    mid: mid.map(rampart_store::Mid),
                    sender,
                    recipient,
                    subject,
                    message_id,
                    remote_ip,
                    policy,
                    event,
                    since: since.map(|s| rampart_store::unix_now() - s),
                    until: None,
                    limit,
                    offset,
                };
                crate::status::tracking(&store, &filter, node.as_deref(), json).await
            }
            Command::Ledger {
                since,
                state,
                replay,
                node,
                json,
            } => {
                let store = open_store(&load_config(cli.config.as_deref())?).await?;
                if replay {
                    crate::status::replay(&store, since, json).await
                } else {
                    let state = state.as_deref().and_then(rampart_tdc::LedgerState::parse);
                    let node = rampart_web::api::track_node(&store, node.as_deref())
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    crate::status::ledger(&store, since, state, node.as_deref(), json).await
                }
            }
            Command::Tdcconfig {
                enable,
                disable,
                intake_address,
                json,
            } => {
                let store = open_store(&load_config(cli.config.as_deref())?).await?;
                crate::policyconfig::tdcconfig(&store, enable, disable, intake_address, json).await
            }
            Command::Policyconfig {
                action,
                outgoing,
                json,
            } => {
                let config = load_config(cli.config.as_deref())?;
                let store = open_store(&config).await?;
                let engines = crate::policyconfig::Engines {
                    spam: config.antispam.engine != rampart_config::SpamEngine::None,
                    virus: config.antivirus.engine != rampart_config::VirusEngine::None,
                };
                crate::policyconfig::run(&store, action, outgoing, json, engines).await
            }
            Command::Status { json } => {
                let store = open_store(&load_config(cli.config.as_deref())?).await?;
                crate::admin::status(&store, json).await
            }
            Command::Deliverynow { host, json } => {
                let store = open_store(&load_config(cli.config.as_deref())?).await?;
                crate::admin::deliverynow(&store, host.as_deref(), json).await
            }
            Command::Hoststatus { host, json } => {
                let store = open_store(&load_config(cli.config.as_deref())?).await?;
                crate::status::hoststatus(&store, &host, json).await
            }
            Command::Suspenddel { host, json } => {
                let store = open_store(&load_config(cli.config.as_deref())?).await?;
                crate::admin::suspenddel(&store, &host, json).await
            }
            Command::Resumedel { host, json } => {
                let store = open_store(&load_config(cli.config.as_deref())?).await?;
                crate::admin::resumedel(&store, &host, json).await
            }
            Command::Tail {
                log,
                lines,
                no_follow,
            } => {
                let config = load_config(cli.config.as_deref())?;
                crate::admin::tail(&config.data_dir.join("logs").join(log), lines, !no_follow).await
            }
            Command::Userconfig { action, json } => {
                let store = open_store(&load_config(cli.config.as_deref())?).await?;
                crate::admin::userconfig(&store, action, json).await
            }
            Command::Auditlog { limit, json } => {
                let store = open_store(&load_config(cli.config.as_deref())?).await?;
                crate::admin::auditlog(&store, limit, json).await
            }
            Command::Migrate => {
                let config = load_config(cli.config.as_deref())?;
                let store = open_store(&config).await?;
                println!(
                    "local database {}: up to date",
                    config.data_dir.join("rampart.db").display()
                );
                if store.cluster_migrate().await? {
                    let database = store
                        .cluster_health()
                        .map(|h| h.database)
                        .unwrap_or_default();
                    println!("cluster database {database}: up to date");
                }
                Ok(())
            }
            Command::Clusterconfig { json } => {
                let store = open_store(&load_config(cli.config.as_deref())?).await?;
                crate::admin::clusterconfig(&store, json).await
            }
            Command::Sink(args) => crate::sink::run(args).await,
            Command::Healthcheck => {
                crate::health::check(&load_config(cli.config.as_deref())?).await
            }
            Command::ConfigReference => {
                print!("{}", rampart_config::reference_markdown());
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rampart: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the configuration file (or the embedded default without one) and applies `RAMPART_*`
/// environment overrides.
pub(crate) fn load_config(path: Option<&Path>) -> Result<Config> {
    let text = match path {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?,
        None => String::new(),
    };
    let vars: Vec<(String, String)> = std::env::vars().collect();
    let text = crate::envconfig::apply(&text, &vars).map_err(|e| anyhow::anyhow!("{e}"))?;
    let source = path
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "the embedded default".into());
    Config::parse(&text)
        .map_err(|e| anyhow::anyhow!("configuration from {source} is invalid:\n{e}"))
}

/// Opens the store in the configured data dir (creating it on first use).
pub(crate) async fn open_store(config: &Config) -> Result<Store> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let path = config.data_dir.join("rampart.db");
    // A cluster database reached over TLS uses the process's one crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster =
        (!config.cluster.database_url.is_empty()).then(|| rampart_store::ClusterOptions {
            database_url: config.cluster.database_url.clone(),
            node_name: config.node_name().to_owned(),
        });
    Store::open_with(&path, cluster.as_ref())
        .await
        .with_context(|| format!("cannot open database {}", path.display()))
}

async fn saveconfig(config: &Config, file: &Path) -> Result<()> {
    let store = open_store(config).await?;
    let text = store.load_settings().await?.to_toml();
    if file == Path::new("-") {
        print!("{text}");
    } else {
        std::fs::write(file, text).with_context(|| format!("cannot write {}", file.display()))?;
        eprintln!("runtime settings written to {}", file.display());
    }
    Ok(())
}

async fn loadconfig(config: &Config, file: &Path, partial: bool) -> Result<()> {
    let text = if file == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?
    };
    let store = open_store(config).await?;
    // A read-modify-write of the stored settings, saved only if nobody saved meanwhile (the
    // web UI or the API of the running appliance); else applied again to the new settings.
    let changes = rampart_changes::Changes::new(store, None);
    let edit = |settings: &mut Settings| -> Result<Vec<String>> {
        if !partial {
            *settings = Settings::default();
        }
        let named = settings.apply_toml(&text).map_err(|e| {
            anyhow::anyhow!("{} is invalid, nothing was changed:\n{e}", file.display())
        })?;
        let missing: Vec<&str> = rampart_settings::TABLES
            .iter()
            .copied()
            .filter(|t| !named.iter().any(|n| n == t))
            .collect();
        if !partial && !missing.is_empty() {
            bail!(
                "{} does not name the table(s) {}: loading it would reset them to their defaults, so nothing was changed. \
                 Use `loadconfig --partial` to replace only the tables the file names, or add the missing ones \
                 (`rampart saveconfig` writes them all)",
                file.display(),
                missing.join(", ")
            );
        }
        Ok(named)
    };
    let named = match changes.apply(&cli_audit(), None, edit).await {
        Ok(saved) => saved.value,
        Err(rampart_changes::ChangeError::Edit(e)) => return Err(e),
        Err(rampart_changes::ChangeError::Invalid(problems)) => bail!(
            "{} is invalid, nothing was changed:\n{}",
            file.display(),
            rampart_settings::SettingsErrors(problems)
        ),
        Err(e) => bail!("{e}"),
    };
    let which = if partial {
        format!(" (tables {})", named.join(", "))
    } else {
        String::new()
    };
    eprintln!(
        "runtime settings loaded from {}{which}; a running appliance applies them within a second",
        file.display()
    );
    Ok(())
}

/// The audit record of a change made from the command line: the OS account and the exact command.
pub(crate) fn cli_audit() -> rampart_store::Audit {
    let who = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".to_owned());
    let command: Vec<String> = std::env::args().skip(1).collect();
    rampart_store::Audit::new(&who, "cli", format!("rampart {}", command.join(" ")))
}
