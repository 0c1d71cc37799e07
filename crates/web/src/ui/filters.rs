//! The content filter builder (*Mail Policies > Content Filters > Add Filter / Edit*): a filter's
//! conditions and actions chosen from lists instead of written as JSON, tested against a pasted
//! message before it is saved; and deleting and reordering filters.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use rampart_policy::{ContentFilter, Facts, FilterAction, FilterCondition};
use rampart_store::Role;
use serde::Deserialize;
use serde_json::{Value, json};

use super::policies::{Direction, find, policy_mut};
use super::{Layout, Posted, Ui, UiError, done, render, stage, working};
use crate::AppState;

/// Rows of the form: at least this many, one more than the filter has.
const CONDITION_ROWS: usize = 5;
const ACTION_ROWS: usize = 3;
/// A pasted test message is cut here.
const TEST_MAX: usize = 1 << 20;

/// (value, label) of the condition types.
pub(crate) const CONDITIONS: &[(&str, &str)] = &[
    ("", "—"),
    ("subject", "Subject matches"),
    ("header", "Header (name) matches"),
    ("body", "Body text matches"),
    ("attachment_name", "Attachment file name matches"),
    ("attachment_type", "Attachment type matches"),
    ("size_at_least", "Message size at least (bytes)"),
    ("remote_ip", "Client IP in (networks, comma-separated)"),
    ("spf", "SPF result is"),
    ("dkim", "DKIM result is"),
    ("dmarc", "DMARC result is"),
];

/// (value, label) of the action types.
pub(crate) const ACTIONS: &[(&str, &str)] = &[
    ("", "—"),
    ("deliver", "Deliver"),
    ("drop", "Drop"),
    ("bounce", "Bounce (value: the reply text)"),
    ("quarantine", "Quarantine"),
    ("add_header", "Add header (name, value)"),
    ("replace_header", "Replace header (name, value)"),
    ("tag_subject", "Tag subject (value: the tag)"),
    ("skip_remaining", "Skip remaining filters"),
];

/// One row of the form: type, name (a header's), value.
#[derive(Debug, Clone, Default)]
pub(crate) struct Row {
    pub kind: String,
    pub name: String,
    pub value: String,
}

fn condition_row(c: &FilterCondition) -> Row {
    let v = serde_json::to_value(c).unwrap_or_default();
    let text = |k: &str| match v.get(k).unwrap_or(&Value::Null) {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        _ => String::new(),
    };
    Row {
        kind: text("type"),
        name: text("name"),
        value: ["regex", "bytes", "networks", "result"]
            .iter()
            .map(|k| text(k))
            .find(|s| !s.is_empty())
            .unwrap_or_default(),
    }
}

fn action_row(a: &FilterAction) -> Row {
    let v = serde_json::to_value(a).unwrap_or_default();
    let text = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Row {
        kind: text("type"),
        name: text("name"),
        value: ["reply", "value", "tag"]
            .iter()
            .map(|k| text(k))
            .find(|s| !s.is_empty())
            .unwrap_or_default(),
    }
}

/// A condition from its row, or what is wrong with it in the form's words.
fn condition(i: usize, r: &Row) -> Result<FilterCondition, String> {
    let value = r.value.trim();
    let needs = |what: &str| format!("Condition {i}: enter {what} in Value");
    let v = match r.kind.as_str() {
        "header" => {
            if r.name.trim().is_empty() {
                return Err(format!("Condition {i}: enter the header's name in Name"));
            }
            json!({"type": "header", "name": r.name.trim(), "regex": value})
        }
        k @ ("subject" | "body" | "attachment_name" | "attachment_type") => {
            if value.is_empty() {
                return Err(needs("a regular expression"));
            }
            json!({"type": k, "regex": value})
        }
        "size_at_least" => {
            let bytes: u64 = value
                .parse()
                .map_err(|_| format!("Condition {i}: the size must be a whole number of bytes"))?;
            json!({"type": "size_at_least", "bytes": bytes})
        }
        "remote_ip" => {
            let networks: Vec<&str> = value
                .split([',', ' '])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            if networks.is_empty() {
                return Err(needs("one or more networks, e.g. 192.0.2.0/24"));
            }
            json!({"type": "remote_ip", "networks": networks})
        }
        k @ ("spf" | "dkim" | "dmarc") => json!({"type": k, "result": value.to_ascii_lowercase()}),
        other => return Err(format!("Condition {i}: unknown type {other:?}")),
    };
    serde_json::from_value(v).map_err(|_| {
        format!(
            "Condition {i}: the result must be pass, fail, softfail, neutral, none, temperror or permerror"
        )
    })
}

fn action(i: usize, r: &Row) -> Result<FilterAction, String> {
    let value = r.value.trim();
    let v = match r.kind.as_str() {
        k @ ("deliver" | "drop" | "quarantine" | "skip_remaining") => json!({"type": k}),
        "bounce" => json!({"type": "bounce", "reply": value}),
        k @ ("add_header" | "replace_header") => {
            if r.name.trim().is_empty() {
                return Err(format!("Action {i}: enter the header's name in Name"));
            }
            json!({"type": k, "name": r.name.trim(), "value": value})
        }
        "tag_subject" => {
            if value.is_empty() {
                return Err(format!("Action {i}: enter the tag in Value"));
            }
            json!({"type": "tag_subject", "tag": value})
        }
        other => return Err(format!("Action {i}: unknown type {other:?}")),
    };
    serde_json::from_value(v).map_err(|e| format!("Action {i}: {e}"))
}

/// The builder form as posted: `name`, `combine`, `c0_type`, `c0_name`, `c0_value`, …,
/// `a0_type`, …, the test's `message` and `client_ip`, and `op` (save or test).
#[derive(Debug, Default)]
pub(crate) struct Builder {
    pub index: Option<usize>,
    pub name: String,
    pub combine: String,
    pub conditions: Vec<Row>,
    pub actions: Vec<Row>,
    pub message: String,
    pub client_ip: String,
}

impl Builder {
    fn of(index: Option<usize>, f: Option<&ContentFilter>) -> Builder {
        let mut b = Builder {
            index,
            combine: "all".into(),
            client_ip: "192.0.2.1".into(),
            ..Builder::default()
        };
        if let Some(f) = f {
            b.name = f.name.clone();
            b.combine = if f.combine == rampart_policy::filters::Combine::Any {
                "any".into()
            } else {
                "all".into()
            };
            b.conditions = f.conditions.iter().map(condition_row).collect();
            b.actions = f.actions.iter().map(action_row).collect();
        }
        b.pad();
        b
    }

    /// Trailing empty rows go, then the rows are filled up to the form's size, with one
    /// empty row more than are used.
    fn pad(&mut self) {
        let empty = |r: &Row| r.kind.is_empty() && r.name.is_empty() && r.value.is_empty();
        while self.conditions.last().is_some_and(empty) {
            self.conditions.pop();
        }
        while self.actions.last().is_some_and(empty) {
            self.actions.pop();
        }
        let c = CONDITION_ROWS.max(self.conditions.len() + 1);
        self.conditions.resize(c, Row::default());
        let a = ACTION_ROWS.max(self.actions.len() + 1);
        self.actions.resize(a, Row::default());
    }

    fn from_form(f: &HashMap<String, String>) -> Builder {
        let get = |k: &str| f.get(k).cloned().unwrap_or_default();
        let rows = |prefix: &str| {
            let mut rows = Vec::new();
            for i in 0..50 {
                let kind = format!("{prefix}{i}_type");
                if !f.contains_key(&kind) {
                    break;
                }
                rows.push(Row {
                    kind: get(&kind),
                    name: get(&format!("{prefix}{i}_name")),
                    value: get(&format!("{prefix}{i}_value")),
                });
            }
            rows
        };
        let mut b = Builder {
            index: get("index").trim().parse().ok(),
            name: get("name"),
            combine: get("combine"),
            conditions: rows("c"),
            actions: rows("a"),
            message: get("message"),
            client_ip: get("client_ip"),
        };
        b.message.truncate(b.message.floor_char_boundary(TEST_MAX));
        b
    }

    /// The filter the form says, or every problem with it.
    fn filter(&self) -> Result<ContentFilter, Vec<String>> {
        let mut errors = Vec::new();
        let name = self.name.trim();
        if name.is_empty() {
            errors.push("Enter the filter's name.".to_owned());
        }
        let mut conditions = Vec::new();
        for (i, r) in self.conditions.iter().enumerate() {
            if !r.kind.is_empty() {
                match condition(i + 1, r) {
                    Ok(c) => conditions.push(c),
                    Err(e) => errors.push(e),
                }
            }
        }
        let mut actions = Vec::new();
        for (i, r) in self.actions.iter().enumerate() {
            if !r.kind.is_empty() {
                match action(i + 1, r) {
                    Ok(a) => actions.push(a),
                    Err(e) => errors.push(e),
                }
            }
        }
        if conditions.is_empty() {
            errors.push("Choose at least one condition.".to_owned());
        }
        if actions.is_empty() {
            errors.push("Choose at least one action.".to_owned());
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(ContentFilter {
            name: name.to_owned(),
            combine: if self.combine == "any" {
                rampart_policy::filters::Combine::Any
            } else {
                rampart_policy::filters::Combine::All
            },
            conditions,
            actions,
        })
    }
}

/// The outcome of *Test*: the verdict line and each condition's result.
#[derive(Debug)]
pub(crate) struct TestResult {
    pub matches: bool,
    /// (condition as the form shows it, matched).
    pub conditions: Vec<(String, bool)>,
    pub actions: Vec<String>,
}

#[derive(Template)]
#[template(path = "filter_builder.html")]
struct BuilderPage {
    l: Layout,
    direction: &'static str,
    policy: String,
    b: Builder,
    errors: Vec<String>,
    test: Option<TestResult>,
    conditions: &'static [(&'static str, &'static str)],
    actions: &'static [(&'static str, &'static str)],
}

/// A path segment: everything but letters, digits and `-_.~` percent-encoded.
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn builder_path(direction: Direction, policy: &str) -> String {
    format!(
        "/mail-policies/{}/{}/content-filters",
        direction.slug(),
        segment(policy)
    )
}

#[derive(Debug, Deserialize)]
pub(crate) struct BuilderQuery {
    #[serde(default)]
    index: Option<usize>,
}

pub(crate) async fn builder_form(
    State(state): State<AppState>,
    ui: Ui,
    Path((direction, name)): Path<(String, String)>,
    Query(q): Query<BuilderQuery>,
) -> Result<Response, UiError> {
    let direction = Direction::parse(&direction)?;
    let mut settings = working(&state, &ui).await?;
    let p = find(direction.of(&mut settings), &name)?;
    let filter = match q.index {
        Some(i) => Some(p.content_filters.get(i).ok_or_else(|| {
            UiError::NotFound(format!("Policy {name:?} has no filter {}.", i + 1))
        })?),
        None => None,
    };
    let title = match filter {
        Some(f) => format!("Edit Content Filter: {}", f.name),
        None => format!("Add Content Filter: {name}"),
    };
    Ok(render(&BuilderPage {
        l: Layout::new(&state, &ui, "policies", title),
        direction: direction.slug(),
        b: Builder::of(q.index, filter),
        policy: name,
        errors: Vec::new(),
        test: None,
        conditions: CONDITIONS,
        actions: ACTIONS,
    }))
}

pub(crate) async fn builder(
    State(state): State<AppState>,
    Path((direction, name)): Path<(String, String)>,
    Posted { ui, form }: Posted<HashMap<String, String>>,
) -> Result<Response, UiError> {
    let direction = Direction::parse(&direction)?;
    let b = Builder::from_form(&form);
    let testing = form.get("op").map(String::as_str) == Some("test");
    let mut settings = working(&state, &ui).await?;
    let title = match b.index {
        Some(_) => format!("Edit Content Filter: {}", b.name.trim()),
        None => format!("Add Content Filter: {name}"),
    };
    let show = |b: Builder, errors: Vec<String>, test: Option<TestResult>| {
        let status = if errors.is_empty() {
            axum::http::StatusCode::OK
        } else {
            axum::http::StatusCode::UNPROCESSABLE_ENTITY
        };
        let mut b = b;
        b.pad();
        let mut r = render(&BuilderPage {
            l: Layout::new(&state, &ui, "policies", title.clone()),
            direction: direction.slug(),
            policy: name.clone(),
            b,
            errors,
            test,
            conditions: CONDITIONS,
            actions: ACTIONS,
        });
        *r.status_mut() = status;
        r
    };
    let filter = match b.filter() {
        Ok(f) => f,
        Err(errors) => return Ok(show(b, errors, None)),
    };
    if testing {
        let ip = match b.client_ip.trim() {
            "" => None,
            s => match s.parse() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    let e = format!("Client IP: {s:?} is not an IP address.");
                    return Ok(show(b, vec![e], None));
                }
            },
        };
        if b.message.trim().is_empty() {
            let e = "Paste a message (headers, a blank line, the body) to test.".to_owned();
            return Ok(show(b, vec![e], None));
        }
        let message = b.message.replace("\r\n", "\n").replace('\n', "\r\n");
        let facts = Facts::from_message(message.as_bytes(), ip);
        return match rampart_policy::test_filter(&filter, &facts) {
            Ok(t) => {
                let rows = b.conditions.iter().filter(|r| !r.kind.is_empty());
                let conditions = rows
                    .zip(t.conditions)
                    .map(|(r, m)| (describe(r, CONDITIONS), m))
                    .collect();
                let actions = b
                    .actions
                    .iter()
                    .filter(|r| !r.kind.is_empty())
                    .map(|r| describe(r, ACTIONS))
                    .collect();
                let test = TestResult {
                    matches: t.matches,
                    conditions,
                    actions,
                };
                Ok(show(b, Vec::new(), Some(test)))
            }
            Err(problems) => Ok(show(
                b,
                problems.iter().map(|p| p.message.clone()).collect(),
                None,
            )),
        };
    }
    ui.require(Role::Admin)?;
    let policy = policy_mut(&mut settings, direction, &name)?;
    if let Some((i, _)) = policy
        .content_filters
        .iter()
        .enumerate()
        .find(|(i, f)| f.name == filter.name && Some(*i) != b.index)
    {
        let e = format!(
            "Filter {} is named {:?} already: choose another name.",
            i + 1,
            filter.name
        );
        return Ok(show(b, vec![e], None));
    }
    let description = match b.index {
        Some(i) if i < policy.content_filters.len() => {
            if let Some(slot) = policy.content_filters.get_mut(i) {
                *slot = filter.clone();
            }
            format!(
                "{}: policy {name:?} content filter {:?} edited",
                direction.title(),
                filter.name
            )
        }
        Some(i) => {
            return Err(UiError::NotFound(format!(
                "Policy {name:?} has no filter {}.",
                i + 1
            )));
        }
        None => {
            policy.content_filters.push(filter.clone());
            format!(
                "{}: policy {name:?} content filter {:?} added",
                direction.title(),
                filter.name
            )
        }
    };
    match stage(&state, &ui, &settings, &[direction.table()], description).await? {
        Ok(code) => Ok(done(&builder_path(direction, &name), code)),
        Err(errors) => Ok(show(b, errors, None)),
    }
}

/// A row in words, for the test's result.
fn describe(r: &Row, kinds: &[(&str, &str)]) -> String {
    let label = kinds
        .iter()
        .find(|(k, _)| *k == r.kind)
        .map_or(r.kind.as_str(), |(_, l)| l);
    let label = label.split(" (").next().unwrap_or(label);
    match (r.name.trim(), r.value.trim()) {
        ("", "") => label.to_owned(),
        ("", v) => format!("{label}: {v}"),
        (n, "") => format!("{label}: {n}"),
        (n, v) => format!("{label}: {n}: {v}"),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct RowForm {
    index: usize,
    #[serde(default)]
    to: String,
}

/// Deletes a filter, or moves it up or down (`to`), as a staged change.
pub(crate) async fn arrange(
    State(state): State<AppState>,
    Path((direction, name, op)): Path<(String, String, String)>,
    Posted { ui, form }: Posted<RowForm>,
) -> Result<Response, UiError> {
    ui.require(Role::Admin)?;
    let direction = Direction::parse(&direction)?;
    let mut settings = working(&state, &ui).await?;
    let policy = policy_mut(&mut settings, direction, &name)?;
    let n = policy.content_filters.len();
    let i = form.index;
    if i >= n {
        return Err(UiError::NotFound(format!(
            "Policy {name:?} has no filter {}.",
            i + 1
        )));
    }
    let filter_name = policy
        .content_filters
        .get(i)
        .map(|f| f.name.clone())
        .unwrap_or_default();
    let description = match (op.as_str(), form.to.as_str()) {
        ("delete", _) => {
            policy.content_filters.remove(i);
            format!(
                "{}: policy {name:?} content filter {filter_name:?} deleted",
                direction.title()
            )
        }
        ("move", "up") if i > 0 => {
            policy.content_filters.swap(i, i - 1);
            format!(
                "{}: policy {name:?} content filter {filter_name:?} moved up",
                direction.title()
            )
        }
        ("move", "down") if i + 1 < n => {
            policy.content_filters.swap(i, i + 1);
            format!(
                "{}: policy {name:?} content filter {filter_name:?} moved down",
                direction.title()
            )
        }
        ("move", _) => return Ok(done(&builder_path(direction, &name), "unchanged")),
        _ => return Err(UiError::NotFound("There is no such page.".into())),
    };
    match stage(&state, &ui, &settings, &[direction.table()], description).await? {
        Ok(code) => Ok(done(&builder_path(direction, &name), code)),
        Err(errors) => Err(UiError::BadRequest(errors.join(" "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_filters_round_trip() {
        let f: ContentFilter = serde_json::from_value(json!({
            "name": "no-exe", "combine": "any",
            "conditions": [
                {"type": "attachment_name", "regex": "\\.exe$"},
                {"type": "header", "name": "X-Mailer", "regex": "bulk"},
                {"type": "size_at_least", "bytes": 1000},
                {"type": "remote_ip", "networks": ["192.0.2.0/24", "10.0.0.0/8"]},
                {"type": "dmarc", "result": "fail"}
            ],
            "actions": [
                {"type": "add_header", "name": "X-Seen", "value": "yes"},
                {"type": "bounce", "reply": "No executables"}
            ]
        }))
        .unwrap();
        let b = Builder::of(Some(0), Some(&f));
        assert_eq!(b.conditions.len(), 6, "one empty row to add a condition");
        assert_eq!(b.actions.len(), 3);
        assert_eq!(b.conditions[3].value, "192.0.2.0/24, 10.0.0.0/8");
        assert_eq!(b.filter().unwrap(), f);
        let mut bad = b;
        bad.conditions[2].value = "big".into();
        bad.actions[0].name = String::new();
        assert_eq!(
            bad.filter().unwrap_err(),
            [
                "Condition 3: the size must be a whole number of bytes",
                "Action 1: enter the header's name in Name"
            ]
        );
    }
}
