//! `rampart tdcconfig` and `rampart policyconfig`: the Threat Defense Connector and mail policy
//! settings from the command line. Changes are validated as a whole, saved in one transaction,
//! and picked up by a running appliance within a second.

use anyhow::{Result, anyhow};
use clap::Subcommand;
use rampart_policy::services::label;
use rampart_policy::{ScanAction, ServiceMode};
use rampart_settings::{MailPolicy, Settings, TdcChoice, TdcMode};
use rampart_store::Store;

#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// The policies in order, with their Threat Defense Connector column.
    List,
    /// Add a policy above DEFAULT (or at --position).
    Add {
        name: String,
        /// Sender pattern (repeatable): user@example.com, @example.com, @.example.com, user@.
        #[arg(long = "sender")]
        senders: Vec<String>,
        /// Recipient pattern (repeatable).
        #[arg(long = "recipient")]
        recipients: Vec<String>,
        #[arg(long)]
        position: Option<usize>,
    },
    /// Delete a policy (not DEFAULT).
    Delete { name: String },
    /// Set a policy's Threat Defense Connector choice.
    Tdc {
        name: String,
        /// default (use DEFAULT's choice), global, custom or no.
        #[arg(value_parser = ["default", "global", "custom", "no"])]
        mode: String,
        /// The custom Message Intake Address (with `custom`).
        #[arg(long, value_name = "ADDRESS")]
        intake_address: Option<String>,
    },
    /// Set a policy's Anti-Spam: mode, and the action and subject prefix per verdict.
    Antispam {
        name: String,
        /// default (use DEFAULT's setting), enabled or disabled.
        #[arg(value_parser = ["default", "enabled", "disabled"])]
        mode: String,
        /// Positively identified spam: deliver, drop, bounce or quarantine.
        #[arg(long, value_parser = ACTIONS)]
        positive_action: Option<String>,
        /// Subject prefix for delivered positive spam ("" = none).
        #[arg(long)]
        positive_prefix: Option<String>,
        /// Suspected spam scanning on or off.
        #[arg(long, value_parser = ["on", "off"])]
        suspect: Option<String>,
        /// Suspected spam: deliver, drop, bounce or quarantine.
        #[arg(long, value_parser = ACTIONS)]
        suspect_action: Option<String>,
        #[arg(long)]
        suspect_prefix: Option<String>,
    },
    /// Set a policy's Anti-Virus: mode, and the action and subject prefix per verdict.
    Antivirus {
        name: String,
        /// default (use DEFAULT's setting), enabled or disabled.
        #[arg(value_parser = ["default", "enabled", "disabled"])]
        mode: String,
        /// Virus infected messages: deliver, drop, bounce or quarantine.
        #[arg(long, value_parser = ACTIONS)]
        infected_action: Option<String>,
        #[arg(long)]
        infected_prefix: Option<String>,
        /// Unscannable messages: deliver, drop, bounce or quarantine.
        #[arg(long, value_parser = ACTIONS)]
        unscannable_action: Option<String>,
        #[arg(long)]
        unscannable_prefix: Option<String>,
    },
}

const ACTIONS: [&str; 4] = ["deliver", "drop", "bounce", "quarantine"];

/// Which engines the bootstrap file configures (a service without one reads `Disabled`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Engines {
    pub spam: bool,
    pub virus: bool,
}

/// The policy called `name`, to change.
fn named<'a>(table: &'a mut [MailPolicy], name: &str) -> Result<&'a mut MailPolicy> {
    table
        .iter_mut()
        .find(|p| p.name == name)
        .ok_or_else(|| anyhow!("no policy named {name:?}"))
}

fn service_mode(s: &str) -> ServiceMode {
    match s {
        "enabled" => ServiceMode::Enabled,
        "disabled" => ServiceMode::Disabled,
        _ => ServiceMode::Default,
    }
}

fn scan_action(s: &str) -> ScanAction {
    match s {
        "drop" => ScanAction::Drop,
        "bounce" => ScanAction::Bounce,
        "quarantine" => ScanAction::Quarantine,
        _ => ScanAction::Deliver,
    }
}

/// Validates and saves changed settings, read at `generation`; every problem is reported. A
/// save by someone else in between (the web UI, the API) is not overwritten: nothing is saved.
async fn save(store: &Store, settings: Settings, generation: i64) -> Result<()> {
    let changes = rampart_changes::Changes::new(store.clone(), None);
    let edit = |s: &mut Settings| {
        *s = settings.clone();
        Ok::<_, String>(())
    };
    match changes
        .apply(&crate::cli::cli_audit(), Some(generation), edit)
        .await
    {
        Ok(_) => Ok(()),
        Err(rampart_changes::ChangeError::Invalid(problems)) => Err(anyhow!(
            "the change is invalid, nothing was saved:\n{}",
            rampart_settings::SettingsErrors(problems)
        )),
        Err(e) => Err(anyhow!("nothing was saved: {e}")),
    }
}

pub(crate) async fn tdcconfig(
    store: &Store,
    enable: bool,
    disable: bool,
    intake_address: Option<String>,
    json: bool,
) -> Result<()> {
    let (mut settings, generation) = store.load_settings_at().await?;
    if enable || disable || intake_address.is_some() {
        if enable {
            settings.tdc.enabled = true;
        }
        if disable {
            settings.tdc.enabled = false;
        }
        if let Some(a) = intake_address {
            settings.tdc.intake_address = a.trim().to_owned();
        }
        save(store, settings.clone(), generation).await?;
        eprintln!(
            "Threat Defense Connector settings saved; a running appliance applies them within a second"
        );
    }
    let snapshot = settings.clone().compile().map_err(|e| anyhow!("{e}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&settings.tdc)?);
        return Ok(());
    }
    println!(
        "Threat Defense Connector: {}",
        if settings.tdc.enabled {
            "Enabled"
        } else {
            "Disabled"
        }
    );
    println!(
        "Message Intake Address: {}",
        if settings.tdc.intake_address.is_empty() {
            "(none)"
        } else {
            &settings.tdc.intake_address
        }
    );
    println!("\nIncoming Mail Policies:");
    for p in &settings.incoming_policies {
        println!("  {:<32} {}", p.name, describe(&snapshot, p));
    }
    Ok(())
}

fn describe(snapshot: &rampart_settings::Snapshot, p: &MailPolicy) -> String {
    let label = snapshot.tdc_label(p.tdc.mode);
    match p.tdc.mode {
        TdcMode::Custom => format!("{label} (custom: {})", p.tdc.intake_address),
        TdcMode::Global => format!("{label} (global)"),
        _ => label.to_owned(),
    }
}

pub(crate) async fn run(
    store: &Store,
    action: Option<Action>,
    outgoing: bool,
    json: bool,
    engines: Engines,
) -> Result<()> {
    let (mut settings, generation) = store.load_settings_at().await?;
    let table = if outgoing {
        &mut settings.outgoing_policies
    } else {
        &mut settings.incoming_policies
    };
    match action.unwrap_or(Action::List) {
        Action::List => {
            if json {
                println!("{}", serde_json::to_string_pretty(table)?);
                return Ok(());
            }
            let snapshot = settings.clone().compile().map_err(|e| anyhow!("{e}"))?;
            let table = if outgoing {
                &settings.outgoing_policies
            } else {
                &settings.incoming_policies
            };
            println!(
                "{:<4}{:<24} {:<30} {:<30} {:<14} {:<14} Threat Defense Connector",
                "#", "Policy", "Senders", "Recipients", "Anti-Spam", "Anti-Virus"
            );
            for (i, p) in table.iter().enumerate() {
                let list = |l: &[String]| {
                    if l.is_empty() {
                        "(any)".to_owned()
                    } else {
                        l.join(", ")
                    }
                };
                println!(
                    "{:<4}{:<24} {:<30} {:<30} {:<14} {:<14} {}",
                    i + 1,
                    p.name,
                    list(&p.senders),
                    list(&p.recipients),
                    label(p.antispam.mode, engines.spam),
                    label(p.antivirus.mode, engines.virus),
                    describe(&snapshot, p)
                );
            }
            return Ok(());
        }
        Action::Add {
            name,
            senders,
            recipients,
            position,
        } => {
            rampart_policy::edit::add(table, MailPolicy::new(name, senders, recipients), position)
                .map_err(|e| anyhow!("{e}"))?;
        }
        Action::Delete { name } => {
            rampart_policy::edit::delete(table, &name).map_err(|e| anyhow!("{e}"))?;
        }
        Action::Antispam {
            name,
            mode,
            positive_action,
            positive_prefix,
            suspect,
            suspect_action,
            suspect_prefix,
        } => {
            let p = named(table, &name)?;
            let a = &mut p.antispam;
            a.mode = service_mode(&mode);
            if let Some(x) = positive_action {
                a.positive.action = scan_action(&x);
            }
            if let Some(x) = positive_prefix {
                a.positive.subject_prefix = x;
            }
            if let Some(x) = suspect {
                a.suspect.enabled = x == "on";
            }
            if let Some(x) = suspect_action {
                a.suspect.action = scan_action(&x);
            }
            if let Some(x) = suspect_prefix {
                a.suspect.subject_prefix = x;
            }
        }
        Action::Antivirus {
            name,
            mode,
            infected_action,
            infected_prefix,
            unscannable_action,
            unscannable_prefix,
        } => {
            let p = named(table, &name)?;
            let a = &mut p.antivirus;
            a.mode = service_mode(&mode);
            if let Some(x) = infected_action {
                a.infected.action = scan_action(&x);
            }
            if let Some(x) = infected_prefix {
                a.infected.subject_prefix = x;
            }
            if let Some(x) = unscannable_action {
                a.unscannable.action = scan_action(&x);
            }
            if let Some(x) = unscannable_prefix {
                a.unscannable.subject_prefix = x;
            }
        }
        Action::Tdc {
            name,
            mode,
            intake_address,
        } => {
            let p = named(table, &name)?;
            p.tdc = TdcChoice {
                mode: match mode.as_str() {
                    "default" => TdcMode::Default,
                    "global" => TdcMode::Global,
                    "custom" => TdcMode::Custom,
                    _ => TdcMode::No,
                },
                intake_address: intake_address.unwrap_or_default(),
            };
        }
    }
    save(store, settings, generation).await?;
    eprintln!("policies saved; a running appliance applies them within a second");
    Ok(())
}
