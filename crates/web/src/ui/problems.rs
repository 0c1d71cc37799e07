//! Validation problems in the words of the page the administrator typed into.
//!
//! The settings crate names a problem by its place in the stored tables (`rat[5]`,
//! `destination_controls[2] (example.com)`, `incoming_policies[0] (sales).content_filters[1]
//! (no-exe)`) and its fields by their JSON names, which is right for the API and `loadconfig`.
//! A form shows the row and the field as the page labels them, in one style: a sentence.

use rampart_settings::Problem;

/// One problem as a sentence for a page: `RAT row 6: Domain "x y" is not a domain, …`.
pub(crate) fn describe(p: &Problem) -> String {
    let message = sentence(&labels(&p.message));
    match place(&p.at) {
        Some(place) => format!("{place}: {message}"),
        None => message,
    }
}

/// Where a problem is, as the menus name it; `None` when it is about the settings as a whole.
fn place(at: &str) -> Option<String> {
    if at.is_empty() {
        return None;
    }
    let (head, rest) = split_entry(at);
    let (table, index, name) = head;
    let entry = |row_word: &str, named: &str| match (index, name) {
        (_, Some(n)) => format!("{named} {n}"),
        (Some(i), None) => format!("{row_word} row {}", i + 1),
        (None, None) => row_word.to_owned(),
    };
    let mut out = match table {
        "hat" => entry("HAT", "Sender group"),
        "rat" => entry("RAT", "RAT entry"),
        "smtp_routes" => entry("SMTP Routes", "SMTP route for"),
        "destination_controls" => entry("Destination Controls", "Destination control for"),
        "incoming_policies" => entry("Incoming Mail Policies", "Incoming policy"),
        "outgoing_policies" => entry("Outgoing Mail Policies", "Outgoing policy"),
        "bounce_profile" => "Bounce profile".to_owned(),
        "tdc" => "Threat Defense Connector settings".to_owned(),
        other => other.to_owned(),
    };
    // A filter inside a policy: `.content_filters[1] (no-exe)`.
    if let Some(inner) = rest.strip_prefix(".content_filters") {
        let ((_, index, name), _) = split_entry(inner);
        match (index, name) {
            (_, Some(n)) => out.push_str(&format!(", content filter {n}")),
            (Some(i), None) => out.push_str(&format!(", content filter {}", i + 1)),
            (None, None) => out.push_str(", content filters"),
        }
    } else if let Some(field) = rest.strip_prefix('.') {
        // A field named by a JSON path (`rat[0].action`).
        out.push_str(&format!(", {}", label(field.trim_matches('.'))));
    }
    Some(out)
}

/// Splits `table[3] (name).rest` into (`table`, 3, `name`) and `.rest`.
fn split_entry(at: &str) -> ((&str, Option<usize>, Option<&str>), &str) {
    let end = at.find(['[', ' ', '.']).unwrap_or(at.len());
    let (table, mut rest) = at.split_at(end);
    let mut index = None;
    if let Some(after) = rest.strip_prefix('[')
        && let Some((n, tail)) = after.split_once(']')
    {
        index = n.parse().ok();
        rest = tail;
    }
    let mut name = None;
    if let Some(after) = rest.strip_prefix(" (") {
        // Names may hold parentheses; the entry's name ends at the last `)` before a `.field`.
        let close = after
            .find(").")
            .or_else(|| after.rfind(')'))
            .unwrap_or(after.len());
        name = after.get(..close);
        rest = after.get(close + 1..).unwrap_or("");
    }
    ((table, index, name), rest)
}

/// The JSON field names a message may mention, and the labels of the form fields for them.
const FIELDS: &[(&str, &str)] = &[
    ("max_messages_per_connection", "Messages per Connection"),
    ("max_connections", "Maximum Connections"),
    ("initial_retry_secs", "Initial Time to Wait"),
    ("max_retry_secs", "Maximum Time to Wait"),
    ("max_queue_secs", "Maximum Time in Queue"),
    ("max_retries", "Maximum Number of Retries"),
    ("intake_address", "Message Intake Address"),
    ("verify_tls", "Verify Certificate"),
    ("hosts", "Hosts"),
    ("domain", "Domain"),
    ("action", "Action"),
];

fn label(field: &str) -> String {
    FIELDS
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, l)| (*l).to_owned())
        .unwrap_or_else(|| field.replace('_', " "))
}

/// Replaces the JSON field names in a message by the form's labels. Only names with an
/// underscore are replaced: one-word names (`domain`, `action`) are ordinary words in a sentence too.
fn labels(message: &str) -> String {
    let mut out = message.to_owned();
    for (field, label) in FIELDS.iter().filter(|(f, _)| f.contains('_')) {
        out = out.replace(field, label);
    }
    out
}

/// Capital first letter, one full stop at the end.
fn sentence(text: &str) -> String {
    let text = text.trim();
    let mut chars = text.chars();
    let mut out: String = match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !out.ends_with(['.', '?', '!']) {
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_read_as_the_page_labels_them() {
        let cases = [
            (
                "rat[5]",
                "domain \"x y\" is not a domain, a .domain (subdomains) or ALL",
                "RAT row 6: Domain \"x y\" is not a domain, a .domain (subdomains) or ALL.",
            ),
            (
                "smtp_routes[2] (example.com)",
                "needs at least one host",
                "SMTP route for example.com: Needs at least one host.",
            ),
            (
                "destination_controls[1] (example.org)",
                "max_connections must be 1-1000",
                "Destination control for example.org: Maximum Connections must be 1-1000.",
            ),
            (
                "bounce_profile",
                "max_retry_secs must not be below initial_retry_secs",
                "Bounce profile: Maximum Time to Wait must not be below Initial Time to Wait.",
            ),
            (
                "incoming_policies[0] (sales (EU)).content_filters[1] (no-exe)",
                "needs at least one action",
                "Incoming policy sales (EU), content filter no-exe: Needs at least one action.",
            ),
            (
                "rat[0].action",
                "unknown variant `maybe`, expected `accept` or `reject`",
                "RAT row 1, Action: Unknown variant `maybe`, expected `accept` or `reject`.",
            ),
            (
                "hat[3] (TRUSTED)",
                "host \"10.0.0\" is not an IP address",
                "Sender group TRUSTED: Host \"10.0.0\" is not an IP address.",
            ),
            ("", "the settings are empty.", "The settings are empty."),
            (
                "incoming_policies",
                "the DEFAULT policy must exist and be last",
                "Incoming Mail Policies: The DEFAULT policy must exist and be last.",
            ),
        ];
        for (at, message, want) in cases {
            assert_eq!(describe(&Problem::new(at, message)), want, "{at}");
        }
    }
}
