//! *System Administration > Log Subscriptions*: the mail log's files and its syslog push, as an
//! AsyncOS administrator finds them, with the push's counters.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use rampart_maillog::SyslogStatus;

use super::{Layout, Ui, UiError, render};
use crate::AppState;

#[derive(Template)]
#[template(path = "log_subscriptions.html")]
struct LogsPage {
    l: Layout,
    /// The current file, or none when this appliance writes no mail log.
    path: Option<String>,
    /// (name, bytes, modified) of the current and rolled files, newest first.
    files: Vec<(String, u64, String)>,
    retain_files: u32,
    max_file_mib: f64,
    syslog: Option<SyslogStatus>,
    facility: String,
    framing: &'static str,
}

pub(crate) async fn page(State(state): State<AppState>, ui: Ui) -> Result<Response, UiError> {
    let path = state.options.mail_log.clone();
    let files = match &path {
        Some(p) => {
            let p = p.clone();
            tokio::task::spawn_blocking(move || log_files(&p))
                .await
                .map_err(UiError::internal)?
        }
        None => vec![],
    };
    let o = &state.options.logs;
    Ok(render(&LogsPage {
        l: Layout::new(&state, &ui, "admin", "Log Subscriptions"),
        path: path.map(|p| p.display().to_string()),
        files,
        retain_files: o.retain_files,
        max_file_mib: (o.max_file_bytes as f64 / 1_048_576.0 * 10.0).round() / 10.0,
        syslog: state.syslog.as_ref().map(|s| s.status()),
        facility: o.syslog_facility.clone(),
        framing: o.syslog_framing,
    }))
}

/// `mail_logs` and its rolled files `mail_logs.@<timestamp>.s`, newest first.
fn log_files(current: &std::path::Path) -> Vec<(String, u64, String)> {
    let Some(dir) = current.parent() else {
        return vec![];
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut files: Vec<(std::time::SystemTime, String, u64)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let ours =
                name == "mail_logs" || (name.starts_with("mail_logs.@") && name.ends_with(".s"));
            let meta = e.metadata().ok()?;
            ours.then(|| {
                (
                    meta.modified().unwrap_or(std::time::UNIX_EPOCH),
                    name,
                    meta.len(),
                )
            })
        })
        .collect();
    files.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
    files
        .into_iter()
        .map(|(at, name, len)| {
            let at = chrono::DateTime::<chrono::Utc>::from(at)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string();
            (name, len, at)
        })
        .collect()
}
