//! `GET /api/v1/reports/overview` (JSON) and `/reports/overview.csv` (one table as CSV).

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::Caller;
use crate::reports::{ReportTable, TOP_MAX, parse_range, report_csv, report_json};
use crate::{ApiError, AppState};

#[derive(Debug, Deserialize)]
pub(crate) struct ReportQuery {
    range: Option<String>,
    top: Option<usize>,
    table: Option<String>,
}

impl ReportQuery {
    fn range(&self) -> Result<rampart_store::ReportRange, ApiError> {
        parse_range(self.range.as_deref().unwrap_or("day")).map_err(ApiError::bad_request)
    }

    fn top(&self) -> Result<usize, ApiError> {
        match self.top {
            None => Ok(10),
            Some(n @ 1..=TOP_MAX) => Ok(n),
            Some(n) => Err(ApiError::bad_request(format!(
                "top must be 1-{TOP_MAX}, got {n}"
            ))),
        }
    }
}

fn query(
    q: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<ReportQuery, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text())))
}

/// `GET /api/v1/reports/overview?range=hour|day|week|month&top=10`.
pub(crate) async fn overview(
    State(state): State<AppState>,
    _caller: Caller,
    q: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query(q)?;
    let report = state.store.report(q.range()?, q.top()?).await?;
    Ok(Json(report_json(&report)))
}

/// `GET /api/v1/reports/overview.csv?range=…&table=series|sender_domains|…&top=…`.
pub(crate) async fn overview_csv(
    State(state): State<AppState>,
    _caller: Caller,
    q: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let table = ReportTable::parse(q.table.as_deref().unwrap_or("series"))
        .map_err(ApiError::bad_request)?;
    let report = state.store.report(q.range()?, q.top()?).await?;
    csv_response(&report, table)
}

/// A CSV download (also the Overview page's export links).
pub(crate) fn csv_response(
    report: &rampart_store::Report,
    table: ReportTable,
) -> Result<Response, ApiError> {
    let body = report_csv(report, table).map_err(ApiError::internal)?;
    let disposition = format!(
        "attachment; filename=\"{}\"",
        crate::reports::csv_file_name(report, table)
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}
